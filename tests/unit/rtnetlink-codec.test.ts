/**
 * Tests of the rtnetlink wire codec (ffi/rtmsg.ts), no kernel needed:
 * byte-exact encodings checked against hand-computed layouts of the Linux
 * ABI (nlmsghdr, rtmsg, rtattr, rtnexthop, rtvia, ifinfomsg, ifaddrmsg),
 * encode → decode round trips for every route shape (gateway, device,
 * multipath with weights, RTA_VIA, IPv6 link-local, tables ≥ 256,
 * delete), decoding of hand-built kernel replies (NLMSG_ERROR with and
 * without ext-ack, capped and uncapped; multi-part dumps; NLMSG_DONE with an
 * error), and malformed input (every truncation of valid messages) failing
 * with NetlinkDecodeError, never anything else.
 */
import { describe, expect, test } from "bun:test";
import type { KernelOp, KernelRoute } from "../../lib/fib/types.ts";
import { errnoName } from "../../ffi/libc.ts";
import {
  AF_INET,
  AF_INET6,
  decodeAddress,
  decodeDone,
  decodeError,
  decodeEvent,
  decodeLink,
  decodeRoute,
  encodeAddressDump,
  encodeLinkDump,
  encodeRouteDump,
  encodeRouteOp,
  NetlinkDecodeError,
  NetlinkEncodeError,
  NLM_F_ACK,
  NLM_F_ACK_TLVS,
  NLM_F_CAPPED,
  NLM_F_CREATE,
  NLM_F_DUMP,
  NLM_F_MULTI,
  NLM_F_REPLACE,
  NLM_F_REQUEST,
  NLMSG_DONE,
  NLMSG_ERROR,
  NlWriter,
  parseAttrs,
  parseMessages,
  RT_SCOPE_LINK,
  RT_SCOPE_NOWHERE,
  RT_SCOPE_UNIVERSE,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELROUTE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  writeRouteOp,
} from "../../ffi/rtmsg.ts";

// ---------------------------------------------------------------------------
// Hand-built bytes (independent of NlWriter)
// ---------------------------------------------------------------------------

class B {
  bytes: number[] = [];
  u8(...v: number[]): this {
    this.bytes.push(...v);
    return this;
  }
  u16(v: number): this {
    return this.u8(v & 0xff, (v >> 8) & 0xff);
  }
  u32(v: number): this {
    return this.u8(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  i32(v: number): this {
    return this.u32(v >>> 0);
  }
  pad(): this {
    while (this.bytes.length % 4) this.bytes.push(0);
    return this;
  }
  attr(type: number, value: number[]): this {
    this.u16(4 + value.length).u16(type).u8(...value);
    return this.pad();
  }
  attrU32(type: number, v: number): this {
    return this.attr(type, new B().u32(v).bytes);
  }
  get length(): number {
    return this.bytes.length;
  }
  out(): Uint8Array {
    return new Uint8Array(this.bytes);
  }
}

function nlmsg(type: number, flags: number, seq: number, body: number[], pid = 0): number[] {
  const b = new B().u32(16 + body.length).u16(type).u16(flags).u32(seq).u32(pid).u8(...body);
  return b.pad().bytes;
}

function rtmsg(o: { family: number; dstLen: number; table: number; protocol: number; scope: number; type: number; flags?: number }): B {
  return new B().u8(o.family, o.dstLen, 0, 0, o.table, o.protocol, o.scope, o.type).u32(o.flags ?? 0);
}

const cstr = (s: string) => [...new TextEncoder().encode(s), 0];
const v4 = (s: string) => s.split(".").map(Number);

function route(p: Partial<KernelRoute> & { prefix: string }): KernelRoute {
  return { family: 4, table: 254, protocol: 186, metric: 0, nextHops: [], type: 1, ...p };
}

function roundTrip(op: KernelOp, seq = 7): { msg: ReturnType<typeof parseMessages>[number]; route: KernelRoute } {
  const buf = encodeRouteOp(op, seq);
  const msgs = parseMessages(buf);
  expect(msgs.length).toBe(1);
  const r = decodeRoute(msgs[0]!);
  expect(r).not.toBeNull();
  return { msg: msgs[0]!, route: r! };
}

// ---------------------------------------------------------------------------

describe("route requests: exact bytes", () => {
  test("RTM_NEWROUTE 203.0.113.0/24 via 192.0.2.2 table 1000 proto 186 metric 20, ACK", () => {
    const got = encodeRouteOp(
      { op: "replace", route: route({ prefix: "203.0.113.0/24", table: 1000, metric: 20, nextHops: [{ gateway: "192.0.2.2" }] }) },
      0x01020304,
      NLM_F_ACK,
    );
    const body = rtmsg({ family: AF_INET, dstLen: 24, table: 0, protocol: 186, scope: RT_SCOPE_UNIVERSE, type: 1 })
      .attr(1 /* RTA_DST */, v4("203.0.113.0"))
      .attrU32(15 /* RTA_TABLE */, 1000)
      .attrU32(6 /* RTA_PRIORITY */, 20)
      .attr(5 /* RTA_GATEWAY */, v4("192.0.2.2"));
    const want = nlmsg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, 0x01020304, body.bytes);
    expect([...got]).toEqual(want);
    expect(got.length).toBe(16 + 12 + 8 * 4);
  });

  test("device route: scope link, RTA_OIF, table < 256 in rtm_table too", () => {
    const got = encodeRouteOp({ op: "replace", route: route({ prefix: "198.51.100.0/24", table: 100, protocol: 200, nextHops: [{ ifindex: 3 }] }) }, 1);
    const body = rtmsg({ family: AF_INET, dstLen: 24, table: 100, protocol: 200, scope: RT_SCOPE_LINK, type: 1 })
      .attr(1, v4("198.51.100.0"))
      .attrU32(15, 100)
      .attrU32(6, 0)
      .attrU32(4 /* RTA_OIF */, 3);
    expect([...got]).toEqual(nlmsg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, 1, body.bytes));
  });

  test("RTA_MULTIPATH: rtnexthop entries with weights (hops = weight - 1), ifindex and nested RTA_GATEWAY / RTA_VIA", () => {
    const got = encodeRouteOp(
      {
        op: "replace",
        route: route({ prefix: "203.0.113.64/26", nextHops: [{ gateway: "192.0.2.2", ifindex: 3 }, { gateway: "2001:db8::2", via6: true, weight: 5 }] }),
      },
      9,
    );
    const via = new B().u16(AF_INET6).u8(0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 2).bytes;
    const nh1 = new B().u16(8 + 8).u8(0, 0).i32(3).attr(5, v4("192.0.2.2")).bytes;
    const nh2 = new B().u16(8 + 4 + 18 + 2).u8(0, 4).i32(0).attr(18 /* RTA_VIA */, via).bytes;
    const body = rtmsg({ family: AF_INET, dstLen: 26, table: 254, protocol: 186, scope: RT_SCOPE_UNIVERSE, type: 1 })
      .attr(1, v4("203.0.113.64"))
      .attrU32(15, 254)
      .attrU32(6, 0)
      .attr(9 /* RTA_MULTIPATH */, [...nh1, ...nh2]);
    expect([...got]).toEqual(nlmsg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, 9, body.bytes));
  });

  test("RTM_DELROUTE: dst, table, metric, protocol; scope NOWHERE; no next hops; no CREATE/REPLACE", () => {
    const got = encodeRouteOp({ op: "delete", route: route({ prefix: "203.0.113.0/24", table: 1000, protocol: 200, metric: 7, nextHops: [{ gateway: "192.0.2.2" }] }) }, 2);
    const body = rtmsg({ family: AF_INET, dstLen: 24, table: 0, protocol: 200, scope: RT_SCOPE_NOWHERE, type: 1 })
      .attr(1, v4("203.0.113.0"))
      .attrU32(15, 1000)
      .attrU32(6, 7);
    expect([...got]).toEqual(nlmsg(RTM_DELROUTE, NLM_F_REQUEST, 2, body.bytes));
  });

  test("default route has no RTA_DST", () => {
    const got = encodeRouteOp({ op: "replace", route: route({ prefix: "0.0.0.0/0", nextHops: [{ gateway: "192.0.2.1" }] }) }, 3);
    const t = parseAttrs(got, 16 + 12, got.length, 32);
    expect(t[1 * 2]).toBe(-1);
    expect(decodeRoute(parseMessages(got)[0]!)!.prefix).toBe("0.0.0.0/0");
  });

  test("dump requests: RTM_GETROUTE with strict-check filter, RTM_GETLINK, RTM_GETADDR", () => {
    const r = encodeRouteDump(4, 11, { table: 1000, protocol: 200 });
    const body = rtmsg({ family: AF_INET, dstLen: 0, table: 0, protocol: 200, scope: 0, type: 0 }).attrU32(15, 1000);
    expect([...r]).toEqual(nlmsg(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 11, body.bytes));
    const r6 = encodeRouteDump(6, 12, { table: 254 });
    expect([...r6]).toEqual(nlmsg(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 12, rtmsg({ family: AF_INET6, dstLen: 0, table: 254, protocol: 0, scope: 0, type: 0 }).attrU32(15, 254).bytes));
    const all = encodeRouteDump(4, 13);
    expect(all.length).toBe(28);
    expect([...encodeLinkDump(14)]).toEqual(nlmsg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 14, new Array(16).fill(0)));
    expect([...encodeAddressDump(15)]).toEqual(nlmsg(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 15, new Array(8).fill(0)));
  });
});

describe("route requests: encode → decode round trips", () => {
  const cases: [string, KernelRoute][] = [
    ["IPv4 via gateway + oif", route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.2", ifindex: 3 }], metric: 20 })],
    ["IPv4 table 1000 proto 200", route({ prefix: "198.51.100.7/32", table: 1000, protocol: 200, nextHops: [{ gateway: "192.0.2.2" }] })],
    ["table 4294967295", route({ prefix: "198.51.100.0/24", table: 0xffffffff, nextHops: [{ gateway: "192.0.2.2" }], metric: 0xffffffff })],
    ["device route", route({ prefix: "192.0.2.0/24", nextHops: [{ ifindex: 2 }], scope: RT_SCOPE_LINK })],
    ["blackhole", route({ prefix: "203.0.113.0/24", type: 6, nextHops: [] })],
    ["ECMP with weights", route({ prefix: "203.0.113.64/26", nextHops: [{ gateway: "192.0.2.2", ifindex: 3 }, { gateway: "198.51.100.2", ifindex: 5, weight: 3 }, { gateway: "192.0.2.3", ifindex: 3, weight: 256 }] })],
    ["IPv4 via IPv6 (RTA_VIA)", route({ prefix: "203.0.113.128/25", nextHops: [{ gateway: "2001:db8::2", via6: true, ifindex: 3 }] })],
    ["ECMP mixing RTA_GATEWAY and RTA_VIA", route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.2" }, { gateway: "fe80::1", via6: true, ifindex: 4 }] })],
    ["IPv6 global gateway", route({ family: 6, prefix: "2001:db8:100::/48", metric: 1024, nextHops: [{ gateway: "2001:db8::2" }] })],
    ["IPv6 link-local gateway + ifindex", route({ family: 6, prefix: "2001:db8:200::/48", metric: 1024, nextHops: [{ gateway: "fe80::1", ifindex: 7 }] })],
    ["IPv6 ECMP", route({ family: 6, prefix: "2001:db8::/32", metric: 1024, nextHops: [{ gateway: "fe80::1", ifindex: 2 }, { gateway: "fe80::2", ifindex: 3 }] })],
    ["IPv6 default", route({ family: 6, prefix: "::/0", metric: 1024, nextHops: [{ gateway: "2001:db8::1" }] })],
    ["IPv6 /128", route({ family: 6, prefix: "2001:db8::1:0:0:1/128", metric: 1024, nextHops: [{ ifindex: 2 }] })],
  ];
  for (const [name, r] of cases) {
    test(name, () => {
      const { msg, route: back } = roundTrip({ op: "replace", route: r });
      expect(msg.type).toBe(RTM_NEWROUTE);
      expect(msg.seq).toBe(7);
      expect(msg.flags).toBe(NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE);
      const scope = r.scope ?? (r.family === 6 || r.type !== 1 || r.nextHops.some((n) => n.gateway) ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
      expect(back).toEqual({ ...r, scope });
    });
  }

  test("delete decodes back to the route without next hops", () => {
    const r = route({ prefix: "203.0.113.0/24", table: 1000, protocol: 200, metric: 5, nextHops: [{ gateway: "192.0.2.2" }] });
    const { msg, route: back } = roundTrip({ op: "delete", route: r });
    expect(msg.type).toBe(RTM_DELROUTE);
    expect(back).toEqual({ ...r, nextHops: [], scope: RT_SCOPE_NOWHERE });
  });

  test("many messages in one buffer, ACK on the last only", () => {
    const w = new NlWriter(16);
    let last = 0;
    for (let i = 0; i < 100; i++) last = writeRouteOp(w, { op: "replace", route: route({ prefix: `198.51.100.${i}/32`, nextHops: [{ gateway: "192.0.2.2" }] }) }, 1000 + i);
    w.orFlags(last, NLM_F_ACK);
    const msgs = parseMessages(w.take());
    expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 1000 + i));
    expect(msgs.filter((m) => m.flags & NLM_F_ACK).map((m) => m.seq)).toEqual([1099]);
    expect(msgs.map((m) => decodeRoute(m)!.prefix)).toEqual(Array.from({ length: 100 }, (_, i) => `198.51.100.${i}/32`));
  });

  test("an unencodable route throws NetlinkEncodeError and leaves the writer as it was", () => {
    const bad: [KernelRoute, RegExp][] = [
      [route({ prefix: "203.0.113.1/24" }), /host bits/],
      [route({ prefix: "203.0.113.0/33" }), /prefix length/],
      [route({ prefix: "203.0.113/24" }), /invalid IPv4 prefix/],
      [route({ prefix: "2001:db8::/32" }), /invalid IPv4 prefix/],
      [route({ family: 6, prefix: "2001:db8::/129" }), /prefix length/],
      [route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.256" }] }), /invalid IPv4 gateway/],
      [route({ family: 6, prefix: "2001:db8::/32", nextHops: [{ gateway: "192.0.2.1" }] }), /not an IPv6 address/],
      [route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.1", via6: true }] }), /must be an IPv6 address/],
      [route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.1", weight: 0 }, { gateway: "192.0.2.2" }] }), /weight/],
      [route({ prefix: "203.0.113.0/24", table: -1 }), /table/],
      [route({ prefix: "203.0.113.0/24", protocol: 256 }), /protocol/],
    ];
    for (const [r, re] of bad) {
      const w = new NlWriter(64);
      writeRouteOp(w, { op: "replace", route: route({ prefix: "192.0.2.0/24" }) }, 1);
      const before = w.off;
      expect(() => writeRouteOp(w, { op: "replace", route: r }, 2)).toThrow(NetlinkEncodeError);
      expect(() => writeRouteOp(w, { op: "replace", route: r }, 2)).toThrow(re);
      expect(w.off).toBe(before);
      expect(parseMessages(w.take()).length).toBe(1);
    }
  });
});

describe("kernel replies", () => {
  const reqHdr = (type: number, seq: number, len: number) => new B().u32(len).u16(type).u16(NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE).u32(seq).u32(0).bytes;

  test("NLMSG_ERROR, capped, with ext-ack message and offset", () => {
    const tlvs = new B().attr(1 /* NLMSGERR_ATTR_MSG */, cstr("Nexthop has invalid gateway")).attrU32(2 /* OFFS */, 56).bytes;
    const body = new B().i32(-101).u8(...reqHdr(RTM_NEWROUTE, 42, 60)).u8(...tlvs).bytes;
    const msgs = parseMessages(new Uint8Array(nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 42, body, 1234)));
    expect(msgs.length).toBe(1);
    expect(msgs[0]!.pid).toBe(1234);
    const a = decodeError(msgs[0]!);
    expect(a).toEqual({ errno: 101, message: "Nexthop has invalid gateway", offset: 56, requestType: RTM_NEWROUTE, requestSeq: 42 });
    expect(errnoName(a.errno)).toBe("ENETUNREACH");
  });

  test("NLMSG_ERROR, uncapped: the whole request is echoed before the TLVs", () => {
    const req = encodeRouteOp({ op: "replace", route: route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "203.0.113.99" }] }) }, 5);
    const tlvs = new B().attr(1, cstr("Nexthop has invalid gateway")).bytes;
    const body = new B().i32(-101).u8(...req).u8(...tlvs).bytes;
    const a = decodeError(parseMessages(new Uint8Array(nlmsg(NLMSG_ERROR, NLM_F_ACK_TLVS, 5, body)))[0]!);
    expect(a.errno).toBe(101);
    expect(a.message).toBe("Nexthop has invalid gateway");
    expect(a.requestSeq).toBe(5);
  });

  test("NLMSG_ERROR without ext-ack, and an ACK (error 0)", () => {
    const e = decodeError(parseMessages(new Uint8Array(nlmsg(NLMSG_ERROR, NLM_F_CAPPED, 8, new B().i32(-3).u8(...reqHdr(RTM_DELROUTE, 8, 44)).bytes)))[0]!);
    expect(e).toEqual({ errno: 3, message: "", requestType: RTM_DELROUTE, requestSeq: 8 });
    const ack = decodeError(parseMessages(new Uint8Array(nlmsg(NLMSG_ERROR, NLM_F_CAPPED, 9, new B().i32(0).u8(...reqHdr(RTM_NEWROUTE, 9, 44)).bytes)))[0]!);
    expect(ack.errno).toBe(0);
  });

  test("multi-part dump across datagrams, then NLMSG_DONE", () => {
    const rt = (dst: string, gw: string, oif: number) =>
      nlmsg(
        RTM_NEWROUTE,
        NLM_F_MULTI,
        77,
        rtmsg({ family: AF_INET, dstLen: 32, table: 0, protocol: 200, scope: 0, type: 1 })
          .attrU32(15, 1000)
          .attr(1, v4(dst))
          .attr(5, v4(gw))
          .attrU32(4, oif)
          .attr(12 /* RTA_CACHEINFO, ignored */, new Array(32).fill(0xee))
          .bytes,
        999,
      );
    const d1 = new Uint8Array([...rt("198.51.100.1", "192.0.2.2", 3), ...rt("198.51.100.2", "192.0.2.3", 3)]);
    const d2 = new Uint8Array([...rt("198.51.100.3", "192.0.2.4", 4), ...nlmsg(NLMSG_DONE, NLM_F_MULTI, 77, new B().i32(0).bytes)]);
    const got: KernelRoute[] = [];
    let done = false;
    for (const d of [d1, d2]) {
      for (const m of parseMessages(d)) {
        expect(m.seq).toBe(77);
        if (m.type === NLMSG_DONE) {
          expect(decodeDone(m).errno).toBe(0);
          done = true;
        } else got.push(decodeRoute(m)!);
      }
    }
    expect(done).toBe(true);
    expect(got).toEqual([
      { family: 4, prefix: "198.51.100.1/32", table: 1000, protocol: 200, metric: 0, nextHops: [{ gateway: "192.0.2.2", ifindex: 3 }], type: 1, scope: 0 },
      { family: 4, prefix: "198.51.100.2/32", table: 1000, protocol: 200, metric: 0, nextHops: [{ gateway: "192.0.2.3", ifindex: 3 }], type: 1, scope: 0 },
      { family: 4, prefix: "198.51.100.3/32", table: 1000, protocol: 200, metric: 0, nextHops: [{ gateway: "192.0.2.4", ifindex: 4 }], type: 1, scope: 0 },
    ]);
  });

  test("NLMSG_DONE carrying a dump error with ext-ack", () => {
    const body = new B().i32(-2).attr(1, cstr("ipv4: FIB table does not exist")).bytes;
    const a = decodeDone(parseMessages(new Uint8Array(nlmsg(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS, 3, body)))[0]!);
    expect(a).toEqual({ errno: 2, message: "ipv4: FIB table does not exist" });
  });

  test("links: ifinfomsg, IFLA_IFNAME, IFLA_MTU, IFF_UP/IFF_RUNNING; RTM_DELLINK event", () => {
    const body = (flags: number) =>
      new B()
        .u8(0, 0)
        .u16(1 /* ARPHRD_ETHER */)
        .i32(5)
        .u32(flags)
        .u32(0xffffffff)
        .attr(3, cstr("veth0a"))
        .attrU32(4, 9000)
        .attr(1 /* IFLA_ADDRESS */, [2, 0, 0, 0, 0, 1]).bytes;
    const up = parseMessages(new Uint8Array(nlmsg(RTM_NEWLINK, 0, 0, body(0x1 | 0x40 | 0x1000))))[0]!;
    expect(decodeLink(up)).toEqual({ index: 5, name: "veth0a", up: true, mtu: 9000 });
    const adminUpNoCarrier = parseMessages(new Uint8Array(nlmsg(RTM_NEWLINK, 0, 0, body(0x1))))[0]!;
    expect(decodeLink(adminUpNoCarrier).up).toBe(false);
    const del = parseMessages(new Uint8Array(nlmsg(RTM_DELLINK, 0, 0, body(0))))[0]!;
    expect(decodeEvent(del)).toEqual({ type: "link", link: { index: 5, name: "veth0a", up: false, mtu: 9000 }, removed: true });
  });

  test("addresses: IFA_LOCAL preferred over IFA_ADDRESS (IPv4 peer), IFA_ADDRESS for IPv6", () => {
    const a4 = new B().u8(AF_INET, 24, 0x80, 0).u32(3).attr(1, v4("192.0.2.254")).attr(2, v4("192.0.2.1")).attr(3 /* IFA_LABEL */, cstr("veth0a")).bytes;
    expect(decodeAddress(parseMessages(new Uint8Array(nlmsg(RTM_NEWADDR, 0, 0, a4)))[0]!)).toEqual({ family: 4, ifindex: 3, address: "192.0.2.1", prefixLength: 24, scope: 0 });
    const v6 = [0xfe, 0x80, ...new Array(13).fill(0), 1];
    const a6 = new B().u8(AF_INET6, 64, 0, 253).u32(3).attr(1, v6).bytes;
    const ev = decodeEvent(parseMessages(new Uint8Array(nlmsg(RTM_DELADDR, 0, 0, a6)))[0]!);
    expect(ev).toEqual({ type: "address", address: { family: 6, ifindex: 3, address: "fe80::1", prefixLength: 64, scope: 253 }, removed: true });
  });

  test("route events; cloned routes are not events", () => {
    const req = encodeRouteOp({ op: "replace", route: route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.2" }] }) }, 1);
    const m = parseMessages(req)[0]!;
    expect(decodeEvent(m)).toMatchObject({ type: "route-added", route: { prefix: "203.0.113.0/24" } });
    expect(decodeEvent({ ...m, type: RTM_DELROUTE })).toMatchObject({ type: "route-deleted", route: { prefix: "203.0.113.0/24" } });
    const cloned = m.payload.slice();
    new DataView(cloned.buffer).setUint32(8, 0x200, true);
    expect(decodeEvent({ ...m, payload: cloned })).toBeNull();
    expect(decodeEvent({ ...m, type: 99 })).toBeNull();
  });

  test("RTA_VIA with an IPv4 address inside an IPv4 route is a plain gateway", () => {
    const via = new B().u16(AF_INET).u8(...v4("192.0.2.9")).bytes;
    const body = rtmsg({ family: AF_INET, dstLen: 24, table: 254, protocol: 186, scope: 0, type: 1 }).attr(1, v4("203.0.113.0")).attr(18, via).bytes;
    expect(decodeRoute(parseMessages(new Uint8Array(nlmsg(RTM_NEWROUTE, 0, 0, body)))[0]!)!.nextHops).toEqual([{ gateway: "192.0.2.9" }]);
  });

  test("non-IP families decode to null", () => {
    const body = rtmsg({ family: 28 /* AF_MPLS */, dstLen: 20, table: 254, protocol: 0, scope: 0, type: 1 }).bytes;
    expect(decodeRoute(parseMessages(new Uint8Array(nlmsg(RTM_NEWROUTE, 0, 0, body)))[0]!)).toBeNull();
  });
});

describe("malformed input", () => {
  const expectDecodeError = (f: () => unknown, re: RegExp) => {
    let err: unknown;
    try {
      f();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(NetlinkDecodeError);
    expect((err as Error).message).toMatch(re);
  };

  test("netlink headers: short, length below 16, length past the end", () => {
    expectDecodeError(() => parseMessages(new Uint8Array(10)), /truncated netlink header at offset 0: 10 bytes, need 16/);
    expectDecodeError(() => parseMessages(new Uint8Array(new B().u32(8).u16(1).u16(0).u32(0).u32(0).bytes)), /bad netlink message length 8/);
    expectDecodeError(() => parseMessages(new Uint8Array(new B().u32(100).u16(24).u16(0).u32(0).u32(0).bytes)), /truncated netlink message at offset 0: length 100, 16 bytes remain/);
    expect(parseMessages(new Uint8Array(0))).toEqual([]);
  });

  test("attributes: length past the end, length below 4, partial header", () => {
    const good = rtmsg({ family: AF_INET, dstLen: 24, table: 254, protocol: 186, scope: 0, type: 1 }).bytes;
    const past = [...good, ...new B().u16(40).u16(1).u8(203, 0, 113, 0).bytes];
    expectDecodeError(() => decodeRoute(parseMessages(new Uint8Array(nlmsg(RTM_NEWROUTE, 0, 0, past)))[0]!), /truncated route attribute \(type 1\) at offset 12: length 40, 8 bytes remain/);
    const tiny = [...good, ...new B().u16(2).u16(1).bytes];
    expectDecodeError(() => decodeRoute(parseMessages(new Uint8Array(nlmsg(RTM_NEWROUTE, 0, 0, tiny)))[0]!), /bad route attribute length 2/);
    const partial = new Uint8Array([...good, 8, 0]);
    const msg = { type: RTM_NEWROUTE, flags: 0, seq: 0, pid: 0, payload: partial };
    expectDecodeError(() => decodeRoute(msg), /truncated route attribute header at offset 12: 2 bytes, need 4/);
  });

  test("values of the wrong size, bad rtnexthop, unknown RTA_VIA family", () => {
    const base = () => rtmsg({ family: AF_INET, dstLen: 24, table: 254, protocol: 186, scope: 0, type: 1 });
    const dec = (b: B) => decodeRoute(parseMessages(new Uint8Array(nlmsg(RTM_NEWROUTE, 0, 0, b.bytes)))[0]!);
    expectDecodeError(() => dec(base().attr(1, [203, 0, 113])), /RTA_DST: 3 bytes, need 4 for IPv4/);
    expectDecodeError(() => dec(base().attr(15, [1, 0])), /RTA_TABLE: 2 bytes, need 4/);
    expectDecodeError(() => dec(base().attr(9, new B().u16(40).u8(0, 0).i32(1).bytes)), /bad rtnexthop length 40/);
    expectDecodeError(() => dec(base().attr(9, [8, 0, 0, 0])), /truncated rtnexthop/);
    expectDecodeError(() => dec(base().attr(18, new B().u16(99).u8(1, 2, 3, 4).bytes)), /RTA_VIA: unsupported address family 99/);
    expectDecodeError(() => dec(base().attr(18, new B().u16(AF_INET6).u8(1, 2, 3, 4).bytes)), /RTA_VIA: 6 bytes, need 18/);
    expectDecodeError(() => decodeRoute({ type: RTM_NEWROUTE, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(11) }), /truncated rtmsg: 11 bytes, need 12/);
    expectDecodeError(() => decodeLink({ type: RTM_NEWLINK, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(15) }), /truncated ifinfomsg/);
    expectDecodeError(() => decodeAddress({ type: RTM_NEWADDR, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(7) }), /truncated ifaddrmsg/);
    expectDecodeError(() => decodeError({ type: NLMSG_ERROR, flags: 0, seq: 0, pid: 0, payload: new Uint8Array(2) }), /truncated NLMSG_ERROR/);
    const echoedTooLong = new B().i32(-22).u32(400).u16(RTM_NEWROUTE).u16(1).u32(0).u32(0).bytes;
    expectDecodeError(() => decodeError({ type: NLMSG_ERROR, flags: NLM_F_ACK_TLVS, seq: 0, pid: 0, payload: new Uint8Array(echoedTooLong) }), /echoed request of 400 bytes/);
  });

  test("every truncation of valid messages fails cleanly (NetlinkDecodeError or a shorter valid decode)", () => {
    const samples: Uint8Array[] = [
      encodeRouteOp({ op: "replace", route: route({ prefix: "203.0.113.64/26", nextHops: [{ gateway: "192.0.2.2", ifindex: 3 }, { gateway: "2001:db8::2", via6: true, weight: 2 }] }) }, 1),
      encodeRouteOp({ op: "replace", route: route({ family: 6, prefix: "2001:db8::/32", nextHops: [{ gateway: "fe80::1", ifindex: 2 }] }) }, 2),
      new Uint8Array(nlmsg(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 4, new B().i32(-101).u8(...new Array(16).fill(0)).attr(1, cstr("Nexthop has invalid gateway")).bytes)),
      new Uint8Array(nlmsg(RTM_NEWLINK, 0, 0, new B().u8(0, 0).u16(1).i32(5).u32(1).u32(0).attr(3, cstr("veth0a")).attrU32(4, 1500).bytes)),
      new Uint8Array(nlmsg(RTM_NEWADDR, 0, 0, new B().u8(AF_INET, 24, 0, 0).u32(3).attr(2, v4("192.0.2.1")).bytes)),
    ];
    let decodeErrors = 0;
    for (const full of samples) {
      for (let cut = 0; cut < full.length; cut++) {
        // Truncate the datagram, and separately keep the header length but cut the payload.
        const variants = [full.slice(0, cut)];
        if (cut >= 16) {
          const v = full.slice(0, cut);
          new DataView(v.buffer).setUint32(0, cut, true);
          variants.push(v);
        }
        for (const v of variants) {
          try {
            for (const m of parseMessages(v)) {
              if (m.type === NLMSG_ERROR) decodeError(m);
              else decodeEvent(m);
            }
          } catch (e) {
            if (!(e instanceof NetlinkDecodeError)) throw e;
            decodeErrors++;
          }
        }
      }
    }
    expect(decodeErrors).toBeGreaterThan(100);
  });
});
