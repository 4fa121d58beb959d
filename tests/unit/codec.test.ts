/**
 * Unit tests of the BGP wire codec, one message type and capability at a time:
 * OPEN (+ RFC 9072), negotiation, the framer, NOTIFICATION (RFC 9003),
 * ROUTE-REFRESH (RFC 7313), UPDATE (IPv4, MP, AS4, communities, ADD-PATH,
 * End-of-RIB, packing) and prefix text forms (RFC 5952).
 */
import { describe, expect, test } from "bun:test";
import { type PathAttributes, type RawAttr, emptyAttributes, encodeAttributes, exportSlot, settleAttributes, sharedAttrCache, splitAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { BgpError } from "../../lib/bgp/errors.ts";
import { Framer, checkHeader, frame } from "../../lib/bgp/framer.ts";
import { addPathReceive, addPathSend, negotiate } from "../../lib/bgp/negotiate.ts";
import {
  KEEPALIVE,
  REFRESH_SUBTYPE,
  decodeNotification,
  decodeRouteRefresh,
  describeNotification,
  encodeNotification,
  encodeRouteRefresh,
  shutdownData,
} from "../../lib/bgp/notification.ts";
import { type Capability, type OpenMessage, decodeOpen, describeCapability, encodeOpen, myAsField, openAs } from "../../lib/bgp/open.ts";
import { formatIPv6, formatNextHop, parseIPv4, parseIPv6, parsePrefix, prefixToString } from "../../lib/core/addr.ts";
import { updateRoutes } from "../../lib/bgp/route.ts";
import { AFI, type Prefix } from "../../lib/core/addr.ts";
import { AS_TRANS, ATTR, FLAG, MsgType, ROLE, SAFI, SEG } from "../../lib/bgp/types.ts";
import {
  type EncodeContext,
  type UpdateContext,
  announcedBlocks,
  blockPrefixes,
  buildAnnouncements,
  buildWithdrawals,
  decodeUpdate,
  encodeEndOfRib,
  encodeUpdate,
  withdrawnBlocks,
} from "../../lib/bgp/update.ts";

// ---------------------------------------------------------------- helpers

function expectBgpError(fn: () => unknown, code: number, subcode: number, data?: number[] | Uint8Array): BgpError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(BgpError);
  const e = err as BgpError;
  expect([e.code, e.subcode]).toEqual([code, subcode]);
  if (data !== undefined) expect(Array.from(e.data)).toEqual(Array.from(data));
  return e;
}

/** Frame one whole message through a fresh Framer and return its single frame. */
function one(msg: Uint8Array, maxLen = 4096) {
  const f = new Framer();
  f.maxLen = maxLen;
  const frames = f.push(msg);
  expect(frames.length).toBe(1);
  expect(f.buffered).toBe(0);
  return frames[0]!;
}

function pfx(s: string, pathId?: number): Prefix {
  const p = parsePrefix(s);
  if (pathId !== undefined) p.pathId = pathId;
  return p;
}

const strs = (ps: Prefix[]) => ps.map((p) => (p.pathId !== undefined ? `${prefixToString(p)}#${p.pathId}` : prefixToString(p)));

function uctx(o: Partial<UpdateContext> & { addPath?: boolean } = {}): UpdateContext {
  const ap = o.addPath ?? false;
  return {
    fourOctetAs: o.fourOctetAs ?? true,
    ibgp: o.ibgp ?? false,
    addPathReceive: o.addPathReceive ?? (() => ap),
    families: o.families ?? [
      { afi: AFI.IPV4, safi: SAFI.UNICAST },
      { afi: AFI.IPV6, safi: SAFI.UNICAST },
    ],
  };
}

function ectx(o: Partial<EncodeContext> & { addPath?: boolean } = {}): EncodeContext {
  const ap = o.addPath ?? false;
  return { fourOctetAs: o.fourOctetAs ?? true, addPathSend: o.addPathSend ?? (() => ap), maxLen: o.maxLen ?? 4096 };
}

function attrs(p: Partial<PathAttributes>): PathAttributes {
  return { ...emptyAttributes(), ...p };
}

function rawAttrsOf(msg: Uint8Array): RawAttr[] {
  const body = msg.subarray(19);
  const wl = (body[0]! << 8) | body[1]!;
  const tal = (body[2 + wl]! << 8) | body[3 + wl]!;
  const r = splitAttributes(body, 4 + wl, 4 + wl + tal);
  expect(r.overrun).toBeNull();
  return r.attrs;
}

const ALL_CAPS: Capability[] = [
  { type: "multiprotocol", afi: AFI.IPV4, safi: SAFI.UNICAST },
  { type: "multiprotocol", afi: AFI.IPV6, safi: SAFI.UNICAST },
  { type: "route-refresh" },
  { type: "enhanced-route-refresh" },
  { type: "four-octet-as", asn: 4_200_000_001 },
  {
    type: "graceful-restart",
    restarting: true,
    notification: true,
    restartTime: 120,
    families: [
      { afi: AFI.IPV4, safi: SAFI.UNICAST, forwardingPreserved: true },
      { afi: AFI.IPV6, safi: SAFI.UNICAST, forwardingPreserved: false },
    ],
  },
  {
    type: "add-path",
    families: [
      { afi: AFI.IPV4, safi: SAFI.UNICAST, send: true, receive: true },
      { afi: AFI.IPV6, safi: SAFI.UNICAST, send: false, receive: true },
    ],
  },
  { type: "extended-message" },
  { type: "extended-next-hop", entries: [{ afi: AFI.IPV4, safi: SAFI.UNICAST, nextHopAfi: AFI.IPV6 }] },
  { type: "role", role: ROLE.CUSTOMER },
  { type: "unknown", code: 200, value: Uint8Array.of(1, 2, 3) },
];

function open(p: Partial<OpenMessage> = {}): OpenMessage {
  return { version: 4, myAs: 65001, holdTime: 90, routerId: "192.0.2.1", capabilities: [], ...p };
}

/** An OPEN body built by hand: fixed part then the raw optional parameter bytes. */
function openBody(o: { version?: number; myAs?: number; hold?: number; id?: number[]; params: number[] }): Uint8Array {
  const myAs = o.myAs ?? 65001;
  const hold = o.hold ?? 90;
  return Uint8Array.from([o.version ?? 4, myAs >> 8, myAs & 0xff, hold >> 8, hold & 0xff, ...(o.id ?? [192, 0, 2, 1]), o.params.length, ...o.params]);
}

// ---------------------------------------------------------------- OPEN

describe("OPEN", () => {
  test("round trip with every capability", () => {
    const o = open({ myAs: myAsField(4_200_000_001), capabilities: ALL_CAPS });
    const wire = encodeOpen(o);
    const f = one(wire);
    expect(f.type).toBe(MsgType.OPEN);
    expect(f.body[9]).not.toBe(255); // plain optional parameters
    const d = decodeOpen(f.body);
    expect(d).toEqual(o);
    expect(d.myAs).toBe(AS_TRANS);
    expect(openAs(d)).toBe(4_200_000_001);
  });

  test("describeCapability shows each capability, unknown ones as raw", () => {
    const text = ALL_CAPS.map(describeCapability);
    expect(text).toEqual([
      "multiprotocol ipv4-unicast",
      "multiprotocol ipv6-unicast",
      "route refresh",
      "enhanced route refresh",
      "4-octet AS 4200000001",
      "graceful restart (time 120s, restarting, notification, ipv4-unicast(F) ipv6-unicast)",
      "add-path ipv4-unicast:send/receive ipv6-unicast:receive",
      "extended message",
      "extended next hop ipv4-unicast via ipv6",
      "role customer",
      "unknown capability 200 (3 bytes)",
    ]);
  });

  test("unknown capability keeps its raw value", () => {
    const body = openBody({ params: [2, 6, 0xc8, 4, 0xde, 0xad, 0xbe, 0xef] });
    const d = decodeOpen(body);
    expect(d.capabilities).toEqual([{ type: "unknown", code: 0xc8, value: Uint8Array.of(0xde, 0xad, 0xbe, 0xef) }]);
  });

  test("several capabilities in one optional parameter", () => {
    // one parameter: MP ipv6-unicast + route refresh + 4-octet AS
    const body = openBody({ params: [2, 14, 1, 4, 0, 2, 0, 1, 2, 0, 65, 4, 0, 0, 0xfd, 0xe9] });
    expect(decodeOpen(body).capabilities).toEqual([
      { type: "multiprotocol", afi: 2, safi: 1 },
      { type: "route-refresh" },
      { type: "four-octet-as", asn: 65001 },
    ]);
  });

  test("RFC 9072 extended optional parameters, built by hand", () => {
    // caps: MP ipv4-unicast, route refresh
    const caps = [1, 4, 0, 1, 0, 1, 2, 0];
    const param = [2, 0, caps.length, ...caps]; // extended: type, 2-byte length
    const body = Uint8Array.from([4, 0xfd, 0xe9, 0, 90, 192, 0, 2, 1, 255, 255, 0, param.length, ...param]);
    const d = decodeOpen(body);
    expect(d.capabilities).toEqual([{ type: "multiprotocol", afi: 1, safi: 1 }, { type: "route-refresh" }]);
    // also decodes through the framer
    expect(decodeOpen(one(frame(MsgType.OPEN, body)).body)).toEqual(d);
  });

  test("encodeOpen switches to RFC 9072 only beyond 255 bytes of parameters", () => {
    // each capability in its own parameter: 2 (param hdr) + 2 (cap hdr) + value
    const atLimit = open({ capabilities: [{ type: "unknown", code: 201, value: new Uint8Array(251).fill(7) }] });
    const b1 = one(encodeOpen(atLimit)).body;
    expect(b1[9]).toBe(255);
    expect(b1[10]).toBe(2); // first parameter type, not the 255 escape
    expect(decodeOpen(b1)).toEqual(atLimit);

    const over = open({ capabilities: [{ type: "unknown", code: 201, value: new Uint8Array(252).fill(7) }] });
    const b2 = one(encodeOpen(over)).body;
    expect([b2[9], b2[10]]).toEqual([255, 255]);
    expect(decodeOpen(b2)).toEqual(over);

    const many: Capability[] = [];
    for (let i = 0; i < 60; i++) many.push({ type: "multiprotocol", afi: AFI.IPV6, safi: 100 + i });
    const big = open({ capabilities: [...many, ...ALL_CAPS] });
    const b3 = one(encodeOpen(big)).body;
    expect([b3[9], b3[10]]).toEqual([255, 255]);
    expect(decodeOpen(b3)).toEqual(big);
  });

  test("unsupported version → 2/1 with the supported version 4 as data", () => {
    expectBgpError(() => decodeOpen(openBody({ version: 3, params: [] })), 2, 1, [0x00, 0x04]);
  });

  test("hold time 1 and 2 → 2/6; 0 and 3 are fine", () => {
    expectBgpError(() => decodeOpen(openBody({ hold: 1, params: [] })), 2, 6);
    expectBgpError(() => decodeOpen(openBody({ hold: 2, params: [] })), 2, 6);
    expect(decodeOpen(openBody({ hold: 0, params: [] })).holdTime).toBe(0);
    expect(decodeOpen(openBody({ hold: 3, params: [] })).holdTime).toBe(3);
  });

  test("router id 0.0.0.0 → 2/3", () => {
    expectBgpError(() => decodeOpen(openBody({ id: [0, 0, 0, 0], params: [] })), 2, 3);
  });

  test("unsupported optional parameter type → 2/4", () => {
    expectBgpError(() => decodeOpen(openBody({ params: [1, 2, 0, 0] })), 2, 4);
  });

  test("malformed capability lengths are OPEN errors", () => {
    // multiprotocol with length 3
    let e = expectBgpError(() => decodeOpen(openBody({ params: [2, 5, 1, 3, 0, 1, 0] })), 2, 0);
    expect(e.message).toContain("multiprotocol");
    // 4-octet AS with length 2
    expectBgpError(() => decodeOpen(openBody({ params: [2, 4, 65, 2, 0, 1] })), 2, 0);
    // capability claiming more bytes than its parameter has
    e = expectBgpError(() => decodeOpen(openBody({ params: [2, 3, 1, 4, 0] })), 2, 0);
    // parameter overrunning the optional parameters
    expectBgpError(() => decodeOpen(openBody({ params: [2, 9, 2, 0] })), 2, 0);
    // optional parameters length disagreeing with the message
    const b = openBody({ params: [2, 2, 2, 0] });
    expectBgpError(() => decodeOpen(b.subarray(0, b.length - 1)), 2, 0);
    // graceful restart with a partial family
    expectBgpError(() => decodeOpen(openBody({ params: [2, 5, 64, 3, 0, 120, 0] })), 2, 0);
  });

  test("ADD-PATH with an invalid Send/Receive value is ignored, not fatal (RFC 7911 §4)", () => {
    const d = decodeOpen(openBody({ params: [2, 6, 69, 4, 0, 1, 1, 7] }));
    expect(d.capabilities).toEqual([{ type: "unknown", code: 69, value: Uint8Array.of(0, 1, 1, 7) }]);
  });
});

// ---------------------------------------------------------------- negotiate

describe("negotiate", () => {
  const mp = (afi: number, safi = 1): Capability => ({ type: "multiprotocol", afi, safi });

  test("families: intersection, and implicit IPv4 unicast", () => {
    const n1 = negotiate(open({ capabilities: [mp(1), mp(2)] }), open({ capabilities: [mp(2), mp(1, 2)] }));
    expect(n1.families).toEqual([{ afi: 2, safi: 1 }]);
    // neither side sends multiprotocol: IPv4 unicast
    expect(negotiate(open(), open()).families).toEqual([{ afi: 1, safi: 1 }]);
    // only one side sends multiprotocol: the other only does IPv4 unicast
    expect(negotiate(open({ capabilities: [mp(1), mp(2)] }), open()).families).toEqual([{ afi: 1, safi: 1 }]);
    expect(negotiate(open(), open({ capabilities: [mp(2)] })).families).toEqual([]);
  });

  test("hold time is the minimum, keepalive a third of it", () => {
    const n = negotiate(open({ holdTime: 90 }), open({ holdTime: 30 }));
    expect([n.holdTime, n.keepaliveTime]).toEqual([30, 10]);
    const z = negotiate(open({ holdTime: 90 }), open({ holdTime: 0 }));
    expect([z.holdTime, z.keepaliveTime]).toEqual([0, 0]);
    expect(negotiate(open({ holdTime: 10 }), open({ holdTime: 240 })).keepaliveTime).toBe(3);
  });

  test("4-octet AS", () => {
    const four: Capability = { type: "four-octet-as", asn: 4_200_000_002 };
    const local = open({ capabilities: [{ type: "four-octet-as", asn: 65001 }] });
    const n = negotiate(local, open({ myAs: AS_TRANS, capabilities: [four] }), { expectedPeerAs: 4_200_000_002 });
    expect(n.fourOctetAs).toBe(true);
    expect(n.peerAs).toBe(4_200_000_002);
    expect(n.localAs).toBe(65001);
    // an old peer: 2-octet session
    const o = negotiate(local, open({ myAs: 65002 }));
    expect(o.fourOctetAs).toBe(false);
    expect(o.peerAs).toBe(65002);
  });

  test("bad peer AS → 2/2", () => {
    expectBgpError(() => negotiate(open(), open({ myAs: 65002 }), { expectedPeerAs: 65003 }), 2, 2, [0xfd, 0xea]);
    // RFC 7607 §2: peer AS 0
    expectBgpError(() => negotiate(open(), open({ myAs: 0 })), 2, 2);
    expectBgpError(() => negotiate(open(), open({ myAs: AS_TRANS, capabilities: [{ type: "four-octet-as", asn: 0 }] })), 2, 2);
    // a 2-octet field disagreeing with a 2-octet-sized 4-octet AS capability
    expectBgpError(() => negotiate(open(), open({ myAs: 65002, capabilities: [{ type: "four-octet-as", asn: 65005 }] })), 2, 2);
  });

  test("ADD-PATH directions: we send when we send and they receive", () => {
    const local = open({
      capabilities: [
        mp(1),
        mp(2),
        {
          type: "add-path",
          families: [
            { afi: 1, safi: 1, send: true, receive: true },
            { afi: 2, safi: 1, send: true, receive: false },
          ],
        },
      ],
    });
    const peer = open({
      capabilities: [
        mp(1),
        mp(2),
        {
          type: "add-path",
          families: [
            { afi: 1, safi: 1, send: false, receive: true },
            { afi: 2, safi: 1, send: true, receive: true },
          ],
        },
      ],
    });
    const n = negotiate(local, peer);
    expect([addPathSend(n, 1, 1), addPathReceive(n, 1, 1)]).toEqual([true, false]);
    expect([addPathSend(n, 2, 1), addPathReceive(n, 2, 1)]).toEqual([true, false]);
    const r = negotiate(peer, local); // the other way round
    expect([addPathSend(r, 1, 1), addPathReceive(r, 1, 1)]).toEqual([false, true]);
    expect([addPathSend(r, 2, 1), addPathReceive(r, 2, 1)]).toEqual([false, true]);
    // no ADD-PATH on one side: nothing
    const none = negotiate(open({ capabilities: [mp(1)] }), peer);
    expect(none.addPath.size).toBe(0);
  });

  test("roles (RFC 9234): valid pairs and mismatches → 2/11", () => {
    const role = (r: number): Capability => ({ type: "role", role: r });
    const ok = (l: number, p: number) => negotiate(open({ capabilities: [role(l)] }), open({ capabilities: [role(p)] }));
    expect(ok(ROLE.PROVIDER, ROLE.CUSTOMER).peerRole).toBe(ROLE.CUSTOMER);
    expect(ok(ROLE.CUSTOMER, ROLE.PROVIDER).localRole).toBe(ROLE.CUSTOMER);
    expect(ok(ROLE.PEER, ROLE.PEER).peerRole).toBe(ROLE.PEER);
    expect(ok(ROLE.RS, ROLE.RS_CLIENT).peerRole).toBe(ROLE.RS_CLIENT);
    expectBgpError(() => ok(ROLE.PROVIDER, ROLE.PROVIDER), 2, 11);
    expectBgpError(() => ok(ROLE.PEER, ROLE.CUSTOMER), 2, 11);
    // no peer role: fine unless strict
    expect(negotiate(open({ capabilities: [role(ROLE.PEER)] }), open()).peerRole).toBeNull();
    expectBgpError(() => negotiate(open({ capabilities: [role(ROLE.PEER)] }), open(), { strictRole: true }), 2, 11);
    // several Role capabilities with different values (RFC 9234 §4.2)
    expectBgpError(() => negotiate(open({ capabilities: [role(ROLE.PROVIDER)] }), open({ capabilities: [role(ROLE.CUSTOMER), role(ROLE.PEER)] })), 2, 11);
  });

  test("other capabilities", () => {
    const n = negotiate(open({ capabilities: ALL_CAPS.filter((c) => c.type !== "role") }), open({ myAs: AS_TRANS, capabilities: ALL_CAPS }));
    expect(n.routeRefresh).toBe(true);
    expect(n.enhancedRouteRefresh).toBe(true);
    expect(n.extendedMessage).toBe(true);
    expect(n.extendedNextHop).toEqual([{ afi: 1, safi: 1 }]);
    expect(n.peerGracefulRestart?.restartTime).toBe(120);
    expect(n.peerGracefulRestart?.families.length).toBe(2);
    expect(n.peerCapabilities.some((c) => c.type === "unknown")).toBe(true);
    expect(negotiate(open(), open({ capabilities: [{ type: "extended-message" }] })).extendedMessage).toBe(false);
    expect(negotiate(open({ capabilities: [{ type: "route-refresh" }] }), open({ capabilities: [{ type: "route-refresh-cisco" }] })).routeRefresh).toBe(true);
  });
});

// ---------------------------------------------------------------- framer

describe("Framer", () => {
  const upd = encodeEndOfRib(1, 1);
  const notif = encodeNotification(6, 2, shutdownData("bye"));
  const op = encodeOpen(open({ capabilities: ALL_CAPS }));

  test("several messages in one chunk", () => {
    const all = new Uint8Array(KEEPALIVE.length + op.length + upd.length + notif.length);
    let o = 0;
    for (const m of [KEEPALIVE, op, upd, notif]) {
      all.set(m, o);
      o += m.length;
    }
    const frames = new Framer().push(all);
    expect(frames.map((f) => f.type)).toEqual([4, 1, 2, 3]);
    expect(Array.from(frames[1]!.raw)).toEqual(Array.from(op));
    expect(Array.from(frames[3]!.body)).toEqual(Array.from(notif.subarray(19)));
  });

  test("one message split byte by byte", () => {
    const f = new Framer();
    const out = [];
    for (let i = 0; i < op.length; i++) {
      const frames = f.push(op.subarray(i, i + 1));
      if (i < op.length - 1) {
        expect(frames.length).toBe(0);
        expect(f.buffered).toBe(i + 1);
      }
      out.push(...frames);
    }
    expect(out.length).toBe(1);
    expect(Array.from(out[0]!.raw)).toEqual(Array.from(op));
    expect(f.buffered).toBe(0);
  });

  test("frames are zero-copy views of the chunk; a partial tail is kept across pushes", () => {
    const f = new Framer();
    const two = new Uint8Array(KEEPALIVE.length * 2 + 5);
    two.set(KEEPALIVE, 0);
    two.set(KEEPALIVE, KEEPALIVE.length);
    two.set(KEEPALIVE.subarray(0, 5), KEEPALIVE.length * 2);
    const frames = f.push(two);
    expect(frames.length).toBe(2);
    expect(frames[0]!.raw.buffer).toBe(two.buffer); // no copy on the hot path
    expect(f.buffered).toBe(5);
    const [last] = f.push(KEEPALIVE.slice(5));
    expect(Array.from(last!.raw)).toEqual(Array.from(KEEPALIVE));
    expect(f.buffered).toBe(0);
  });

  test("pulled (append, then next one at a time): the same frames as pushed, however the stream is split; hasMessage says when next() has one", () => {
    const stream = new Uint8Array(op.length + KEEPALIVE.length * 2 + notif.length);
    stream.set(op, 0);
    stream.set(KEEPALIVE, op.length);
    stream.set(notif, op.length + KEEPALIVE.length);
    stream.set(KEEPALIVE, op.length + KEEPALIVE.length + notif.length);
    const ends = [op.length, op.length + 19, op.length + 19 + notif.length, stream.length];
    const whole = new Framer().push(stream).map((f) => Array.from(f.raw));
    expect(whole.length).toBe(4);
    for (const size of [1, 2, 7, 19, 20, 33, stream.length]) {
      const f = new Framer();
      const got: number[][] = [];
      for (let o = 0; o < stream.length; o += size) {
        f.append(stream.subarray(o, Math.min(stream.length, o + size)));
        const received = Math.min(stream.length, o + size);
        // hasMessage: exactly when the first unframed message is complete.
        const framedUpTo = got.length ? ends[got.length - 1]! : 0;
        expect(f.hasMessage()).toBe(received >= ends[got.length]!);
        expect(f.buffered).toBe(received - framedUpTo);
        for (let m = f.next(); m !== null; m = f.next()) got.push(Array.from(m.raw));
        expect(f.hasMessage()).toBe(false);
      }
      expect(got).toEqual(whole);
      expect(f.buffered).toBe(0);
    }
  });

  test("pulled: a bad header is thrown by next(), after the good messages before it", () => {
    const f = new Framer();
    const bad = KEEPALIVE.slice();
    bad[3] = 0;
    f.append(KEEPALIVE);
    f.append(bad);
    expect(f.next()!.type).toBe(MsgType.KEEPALIVE);
    expectBgpError(() => f.next(), 1, 1);
  });

  test("a 64 KiB message fed one byte at a time is framed once, in linear time", () => {
    const f = new Framer();
    f.maxLen = 65535;
    const m = new Uint8Array(65535);
    m.fill(0xff, 0, 18);
    m[18] = 2;
    let n = 0;
    for (let i = 0; i < m.length; i++) n += f.push(m.subarray(i, i + 1)).length;
    expect(n).toBe(1);
    expect(f.buffered).toBe(0);
  });

  const hdr = (len: number, type: number, marker = 0xff) => {
    const b = new Uint8Array(Math.max(len, 19));
    b.fill(marker, 0, 16);
    b[16] = len >> 8;
    b[17] = len & 0xff;
    b[18] = type;
    return b;
  };

  test("marker not all ones → 1/1", () => {
    const b = hdr(19, 4);
    b[7] = 0xfe;
    expectBgpError(() => new Framer().push(b), 1, 1);
  });

  test("length < 19 or > 4096 → 1/2 with the length as data", () => {
    expectBgpError(() => new Framer().push(hdr(18, 4)), 1, 2, [0x00, 0x12]);
    expectBgpError(() => new Framer().push(hdr(4097, 2)), 1, 2, [0x10, 0x01]);
    expectBgpError(() => new Framer().push(hdr(22, 2)), 1, 2, [0x00, 0x16]); // UPDATE minimum 23
    expectBgpError(() => new Framer().push(hdr(28, 1)), 1, 2, [0x00, 0x1c]); // OPEN minimum 29
    expectBgpError(() => new Framer().push(hdr(20, 3)), 1, 2, [0x00, 0x14]); // NOTIFICATION minimum 21
    expectBgpError(() => checkHeader(hdr(22, 5), 0, 4096), 1, 2, [0x00, 0x16]); // ROUTE-REFRESH minimum 23
  });

  test("> 4096 is allowed once maxLen is 65535 (RFC 8654), never for OPEN", () => {
    const big = hdr(5000, 2);
    big[19 + 1] = 0; // withdrawn length 0 ...
    big[19 + 2] = (5000 - 23) >> 8; // ... total attribute length covering the rest
    big[19 + 3] = (5000 - 23) & 0xff;
    const f = new Framer();
    f.maxLen = 65535;
    expect(f.push(big).length).toBe(1);
    expect(checkHeader(hdr(65535, 2), 0, 65535)).toBe(65535);
    const f2 = new Framer();
    f2.maxLen = 65535;
    expectBgpError(() => f2.push(hdr(4097, 1)), 1, 2, [0x10, 0x01]);
  });

  test("bad message type → 1/3 with the type as data", () => {
    expectBgpError(() => new Framer().push(hdr(19, 6)), 1, 3, [6]);
    expectBgpError(() => new Framer().push(hdr(19, 0)), 1, 3, [0]);
  });

  test("KEEPALIVE of length 20 → 1/2", () => {
    expectBgpError(() => new Framer().push(hdr(20, 4)), 1, 2, [0x00, 0x14]);
  });

  test("a header error is raised as soon as the header is complete", () => {
    const f = new Framer();
    const b = hdr(19, 9);
    expect(f.push(b.subarray(0, 18)).length).toBe(0);
    expectBgpError(() => f.push(b.subarray(18)), 1, 3, [9]);
  });
});

// ---------------------------------------------------------------- NOTIFICATION

describe("NOTIFICATION", () => {
  test("shutdown communication round trip (RFC 9003, UTF-8)", () => {
    const text = "maintenance — back at 14:00 UTC ✓ 🛠";
    const msg = encodeNotification(6, 2, shutdownData(text));
    const n = decodeNotification(one(msg).body);
    expect(n.code).toBe(6);
    expect(n.subcode).toBe(2);
    expect(n.message).toBe(text);
    expect(describeNotification(n)).toBe(`Cease/Administrative Shutdown (6/2): "${text}"`);
    // Administrative Reset carries one too
    expect(decodeNotification(one(encodeNotification(6, 4, shutdownData("reset"))).body).message).toBe("reset");
    // an empty communication
    const e = decodeNotification(one(encodeNotification(6, 2, shutdownData(""))).body);
    expect(e.message).toBeUndefined();
    expect(describeNotification(e)).toBe("Cease/Administrative Shutdown (6/2)");
  });

  test("truncation at 255 bytes on a character boundary", () => {
    const cases: [string, number][] = [
      ["a".repeat(300), 255],
      ["é".repeat(200), 254], // 2-byte characters: 127 fit
      ["€".repeat(100), 255], // 3-byte: exactly 85
      ["x" + "€".repeat(100), 253], // 3-byte shifted by one: 84 after the x
      ["🛠".repeat(80), 252], // 4-byte: 63
    ];
    for (const [s, len] of cases) {
      const d = shutdownData(s);
      expect(d[0]).toBe(len);
      expect(d.length).toBe(len + 1);
      const n = decodeNotification(one(encodeNotification(6, 2, d)).body);
      expect(n.message!.includes("\ufffd")).toBe(false);
      expect(s.startsWith(n.message!)).toBe(true);
      expect(new TextEncoder().encode(n.message!).length).toBe(len);
    }
  });

  test("describeNotification", () => {
    const n = decodeNotification(one(encodeNotification(3, 1, Uint8Array.of(0xde, 0xad))).body);
    expect(describeNotification(n)).toBe("UPDATE Message Error/Malformed Attribute List (3/1) data dead");
    expect(describeNotification(decodeNotification(Uint8Array.of(4, 0)))).toBe("Hold Timer Expired (4/0)");
    expect(describeNotification(decodeNotification(Uint8Array.of(2, 11)))).toBe("OPEN Message Error/Role Mismatch (2/11)");
    expect(describeNotification(decodeNotification(Uint8Array.of(9, 9)))).toBe("code 9/subcode 9 (9/9)");
  });
});

// ---------------------------------------------------------------- ROUTE-REFRESH

describe("ROUTE-REFRESH", () => {
  test("normal, BoRR and EoRR subtypes round trip (RFC 2918, RFC 7313)", () => {
    for (const subtype of [REFRESH_SUBTYPE.NORMAL, REFRESH_SUBTYPE.BORR, REFRESH_SUBTYPE.EORR]) {
      const r = { afi: AFI.IPV6, safi: SAFI.UNICAST, subtype };
      const f = one(encodeRouteRefresh(r));
      expect(f.type).toBe(MsgType.ROUTE_REFRESH);
      expect(f.raw.length).toBe(23);
      expect(decodeRouteRefresh(f.body, f.raw)).toEqual(r);
    }
  });

  test("wrong length → 7/1 with the whole message as data", () => {
    const f = one(frame(MsgType.ROUTE_REFRESH, Uint8Array.of(0, 1, 1, 1, 0)));
    expectBgpError(() => decodeRouteRefresh(f.body, f.raw), 7, 1, f.raw);
  });
});

// ---------------------------------------------------------------- UPDATE

describe("UPDATE", () => {
  const base = attrs({
    origin: 0,
    asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001, 4_200_000_001, 65002] }]),
    nextHop: Uint8Array.of(192, 0, 2, 1),
    med: 10,
  });

  test("an interned set keeps its cache fields out of sight: Object.keys, a spread and JSON show the attributes alone, and a spread copy is no set of the cache", () => {
    const ctx = { ...uctx(), cache: sharedAttrCache({ fourOctetAs: true, ibgp: false }) };
    const msg = encodeUpdate({ attrs: { ...base, communities: [0xfde80001] }, nlri: [pfx("198.51.100.0/24")], withdrawn: [] }, ectx());
    const a = decodeUpdate(one(msg).body, ctx).attrs!;
    expect(decodeUpdate(one(msg).body, ctx).attrs).toBe(a); // interned: the same set again
    expect(exportSlot(a)).not.toBeUndefined(); // (a set in a cache has a slot there)
    const names = ["origin", "asPath", "nextHop", "med", "localPref", "atomicAggregate", "aggregator", "communities", "originatorId", "clusterList", "extCommunities", "largeCommunities", "otc", "unknown"];
    expect(Object.keys(a)).toEqual(names);
    const copy = { ...a, med: 20 };
    expect(Object.keys(copy)).toEqual(names);
    expect(exportSlot(copy)).toBeUndefined();
    const json = JSON.parse(JSON.stringify(a, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Uint8Array) : v)));
    expect(Object.keys(json)).toEqual(names);
    expect(json.communities).toEqual([0xfde80001]);
    settleAttributes(a); // no route holds it: it leaves the cache
    expect(exportSlot(a)).toBeUndefined();
  });

  test("IPv4 traditional round trip", () => {
    const nlri = ["10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/0", "10.1.2.3/32", "172.16.128.0/17"].map((s) => pfx(s));
    const withdrawn = ["198.51.100.0/24"].map((s) => pfx(s));
    const msg = encodeUpdate({ attrs: base, nlri, withdrawn }, ectx());
    const u = decodeUpdate(one(msg).body, uctx());
    expect(u.treatAsWithdraw).toBe(false);
    expect(u.issues).toEqual([]);
    expect(u.endOfRib).toBeNull();
    expect(u.attrs).toEqual(base);
    expect(u.nlri!.count).toBe(5);
    expect(strs(blockPrefixes(u.nlri))).toEqual(strs(nlri));
    expect(strs(blockPrefixes(u.withdrawn))).toEqual(["198.51.100.0/24"]);
    const v = updateRoutes(u);
    expect(v.announced[0]).toMatchObject({ prefix: "10.0.0.0/8", nextHop: "192.0.2.1", asPath: [65001, 4_200_000_001, 65002], origin: "igp", med: 10 });
    expect(v.withdrawn).toEqual([{ prefix: "198.51.100.0/24" }]);
  });

  test("IPv6 MP_REACH with a 32-byte (global + link-local) next hop", () => {
    const nh = new Uint8Array(32);
    nh.set(parseIPv6("2001:db8::1")!, 0);
    nh.set(parseIPv6("fe80::1")!, 16);
    const prefixes = ["2001:db8:1::/48", "2001:db8:2:3::/64", "::/0", "2001:db8::1/128"].map((s) => pfx(s));
    const [msg, ...rest] = buildAnnouncements(AFI.IPV6, SAFI.UNICAST, prefixes, base, nh, ectx());
    expect(rest.length).toBe(0);
    const u = decodeUpdate(one(msg!).body, uctx());
    expect(u.treatAsWithdraw).toBe(false);
    expect(u.nlri).toBeNull();
    expect(u.attrs!.nextHop).toBeNull(); // IPv6 routes carry no NEXT_HOP attribute
    expect(u.mpReach!.afi).toBe(AFI.IPV6);
    expect(u.mpReach!.nextHop.length).toBe(32);
    expect(formatNextHop(u.mpReach!.nextHop)).toBe("2001:db8::1");
    expect(formatIPv6(u.mpReach!.nextHop, 16)).toBe("fe80::1");
    expect(strs(blockPrefixes(u.mpReach!.nlri))).toEqual(strs(prefixes));
    expect(updateRoutes(u).announced.map((r) => r.nextHop)).toEqual(["2001:db8::1", "2001:db8::1", "2001:db8::1", "2001:db8::1"]);
  });

  describe("AS4_PATH on a 2-octet session (RFC 6793 §4.2.3)", () => {
    const two = uctx({ fourOctetAs: false });
    const seg = (type: number, asns: number[]) => ({ type, asns });
    /** UPDATE with hand-chosen 2-octet AS_PATH / AGGREGATOR and 4-octet AS4 attributes. */
    function as4Update(o: { path: { type: number; asns: number[] }[]; as4?: { type: number; asns: number[] }[]; agg?: number; as4agg?: number }) {
      const enc2 = (segs: { type: number; asns: number[] }[], w: 2 | 4) => {
        const out: number[] = [];
        for (const s of segs) {
          out.push(s.type, s.asns.length);
          for (const a of s.asns) out.push(...(w === 4 ? [a >>> 24, (a >>> 16) & 0xff] : []), (a >>> 8) & 0xff, a & 0xff);
        }
        return out;
      };
      const at: number[] = [0x40, 1, 1, 0];
      const p = enc2(o.path, 2);
      at.push(0x40, 2, p.length, ...p, 0x40, 3, 4, 192, 0, 2, 1);
      if (o.agg !== undefined) at.push(0xc0, 7, 6, o.agg >> 8, o.agg & 0xff, 10, 0, 0, 1);
      if (o.as4) {
        const q = enc2(o.as4, 4);
        at.push(0xc0, 17, q.length, ...q);
      }
      if (o.as4agg !== undefined) {
        const a = o.as4agg;
        at.push(0xc0, 18, 8, a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff, 10, 0, 0, 2);
      }
      return Uint8Array.from([0, 0, at.length >> 8, at.length & 0xff, ...at, 24, 10, 0, 1]);
    }

    test("merge: leading AS_PATH ASes + AS4_PATH", () => {
      const u = decodeUpdate(
        as4Update({ path: [seg(2, [65001, AS_TRANS, AS_TRANS, 65002])], as4: [seg(2, [4_200_000_001, 4_200_000_002, 65002])] }),
        two,
      );
      expect(u.treatAsWithdraw).toBe(false);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(2, [65001, 4_200_000_001, 4_200_000_002, 65002])]));
    });

    test("AS_PATH shorter than AS4_PATH → AS4_PATH ignored", () => {
      const u = decodeUpdate(as4Update({ path: [seg(2, [65001, AS_TRANS])], as4: [seg(2, [4_200_000_001, 4_200_000_002, 65002])] }), two);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(2, [65001, AS_TRANS])]));
    });

    test("AS_SET counts as one AS", () => {
      const u = decodeUpdate(as4Update({ path: [seg(2, [65001, AS_TRANS]), seg(1, [65003, 65004])], as4: [seg(2, [4_200_000_001]), seg(1, [65003, 65004])] }), two);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(2, [65001, 4_200_000_001]), seg(1, [65003, 65004])]));
    });

    test("a non-AS_TRANS AGGREGATOR with an AS4_AGGREGATOR → AS4 attributes ignored", () => {
      const u = decodeUpdate(as4Update({ path: [seg(2, [65001, AS_TRANS])], as4: [seg(2, [4_200_000_001])], agg: 65005, as4agg: 4_200_000_009 }), two);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(2, [65001, AS_TRANS])]));
      expect(u.attrs!.aggregator).toEqual({ asn: 65005, address: "10.0.0.1" });
      expect(u.issues.some((i) => i.action === "attribute-discard")).toBe(true);
      expect(u.treatAsWithdraw).toBe(false);
    });

    test("an AS_TRANS AGGREGATOR → AS4_AGGREGATOR used and the path merged", () => {
      const u = decodeUpdate(as4Update({ path: [seg(2, [65001, AS_TRANS])], as4: [seg(2, [4_200_000_001])], agg: AS_TRANS, as4agg: 4_200_000_009 }), two);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(2, [65001, 4_200_000_001])]));
      expect(u.attrs!.aggregator).toEqual({ asn: 4_200_000_009, address: "10.0.0.2" });
    });

    test("a non-AS_TRANS AGGREGATOR alone does not block the AS4_PATH", () => {
      // the rule applies "when both of the attributes are received"
      const u = decodeUpdate(as4Update({ path: [seg(2, [65001, AS_TRANS])], as4: [seg(2, [4_200_000_001])], agg: 65005 }), two);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(2, [65001, 4_200_000_001])]));
      expect(u.attrs!.aggregator!.asn).toBe(65005);
    });

    test("confederation segments that lead or are adjacent are kept", () => {
      const ib = uctx({ fourOctetAs: false, ibgp: true });
      const u = decodeUpdate(as4Update({ path: [seg(3, [65100]), seg(2, [65001, AS_TRANS])], as4: [seg(2, [4_200_000_001])] }), ib);
      expect(u.attrs!.asPath).toEqual(asPathOf([seg(3, [65100]), seg(2, [65001, 4_200_000_001])]));
      const v = decodeUpdate(as4Update({ path: [seg(3, [65100]), seg(2, [AS_TRANS])], as4: [seg(2, [4_200_000_001])] }), ib);
      expect(v.attrs!.asPath).toEqual(asPathOf([seg(3, [65100]), seg(2, [4_200_000_001])]));
    });
  });

  test("encoding for a 2-octet peer: AS_TRANS in AS_PATH/AGGREGATOR plus AS4_PATH/AS4_AGGREGATOR", () => {
    const a = attrs({ ...base, aggregator: { asn: 4_200_000_009, address: "10.9.9.9" } });
    const msg = encodeUpdate({ attrs: a, nlri: [pfx("10.0.0.0/8")] }, ectx({ fourOctetAs: false }));
    const raw = rawAttrsOf(msg);
    const asPath = raw.find((r) => r.type === ATTR.AS_PATH)!;
    expect(Array.from(asPath.value)).toEqual([2, 3, 0xfd, 0xe9, AS_TRANS >> 8, AS_TRANS & 0xff, 0xfd, 0xea]);
    const as4 = raw.find((r) => r.type === ATTR.AS4_PATH)!;
    expect(as4.flags & (FLAG.OPTIONAL | FLAG.TRANSITIVE)).toBe(FLAG.OPTIONAL | FLAG.TRANSITIVE);
    expect(as4.value.length).toBe(2 + 3 * 4);
    const agg = raw.find((r) => r.type === ATTR.AGGREGATOR)!;
    expect(Array.from(agg.value.subarray(0, 2))).toEqual([AS_TRANS >> 8, AS_TRANS & 0xff]);
    expect(raw.some((r) => r.type === ATTR.AS4_AGGREGATOR)).toBe(true);
    // and it decodes back to the real values on a 2-octet session
    const u = decodeUpdate(msg.subarray(19), uctx({ fourOctetAs: false }));
    expect(u.attrs!.asPath).toEqual(base.asPath);
    expect(u.attrs!.aggregator).toEqual({ asn: 4_200_000_009, address: "10.9.9.9" });
    // a 4-octet peer gets no AS4 attributes
    const raw4 = rawAttrsOf(encodeUpdate({ attrs: a, nlri: [pfx("10.0.0.0/8")] }, ectx()));
    expect(raw4.some((r) => r.type === ATTR.AS4_PATH || r.type === ATTR.AS4_AGGREGATOR)).toBe(false);
  });

  test("communities, large and extended communities, ORIGINATOR_ID/CLUSTER_LIST (iBGP)", () => {
    const a = attrs({
      ...base,
      localPref: 200,
      atomicAggregate: true,
      aggregator: { asn: 65010, address: "10.0.0.10" },
      communities: [0xfde90064, 0xffffff01],
      largeCommunities: [
        [4_200_000_001, 1, 2],
        [65001, 0, 4_294_967_295],
      ],
      extCommunities: [Uint8Array.of(0x00, 0x02, 0xfd, 0xe9, 0, 0, 0, 100)],
      originatorId: "192.0.2.99",
      clusterList: ["10.255.0.1", "10.255.0.2"],
      otc: 65001,
    });
    const msg = encodeUpdate({ attrs: a, nlri: [pfx("10.0.0.0/8")] }, ectx());
    const u = decodeUpdate(one(msg).body, uctx({ ibgp: true }));
    expect(u.issues).toEqual([]);
    expect(u.attrs).toEqual(a);
    const r = updateRoutes(u).announced[0]!;
    expect(r.communities).toEqual(["65001:100", "65535:65281"]);
    expect(r.largeCommunities).toEqual(["4200000001:1:2", "65001:0:4294967295"]);
    expect(r.extCommunities).toEqual(["rt:65001:100"]);
    expect(r.clusterList).toEqual(["10.255.0.1", "10.255.0.2"]);
    // the same bytes from an external peer: iBGP-only attributes discarded
    const e = decodeUpdate(one(msg).body, uctx({ ibgp: false }));
    expect(e.treatAsWithdraw).toBe(false);
    expect(e.attrs!.localPref).toBeNull();
    expect(e.attrs!.originatorId).toBeNull();
    expect(e.attrs!.clusterList).toEqual([]);
    expect(e.issues.map((i) => i.attr).sort((x, y) => x - y)).toEqual([ATTR.LOCAL_PREF, ATTR.ORIGINATOR_ID, ATTR.CLUSTER_LIST]);
  });

  test("duplicate large communities are removed on receipt (RFC 8092 §3)", () => {
    const lc = [0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2];
    const at = [0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, 0x40, 3, 4, 192, 0, 2, 1, 0xc0, 32, 36, ...lc, ...lc, ...lc.slice(0, 11), 3];
    const u = decodeUpdate(Uint8Array.from([0, 0, 0, at.length, ...at, 8, 10]), uctx());
    expect(u.treatAsWithdraw).toBe(false);
    expect(u.attrs!.largeCommunities).toEqual([
      [65001, 1, 2],
      [65001, 1, 3],
    ]);
  });

  test("duplicate large communities are removed past 16 values too (the decoder's second way of finding them)", () => {
    // 40 values, 25 distinct (the last 15 repeat the first 15): the first of each is kept, in order.
    const vals = Array.from({ length: 40 }, (_, i) => [65001, i % 25, 7]);
    const want: number[][] = [];
    for (const v of vals) if (!want.some((w) => w[0] === v[0] && w[1] === v[1] && w[2] === v[2])) want.push(v);
    const lc = vals.flatMap(([a, b, c]) => [a! >>> 24, (a! >> 16) & 255, (a! >> 8) & 255, a! & 255, 0, 0, b! >> 8, b! & 255, 0, 0, 0, c!]);
    const at = [0x40, 1, 1, 0, 0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9, 0x40, 3, 4, 192, 0, 2, 1, 0xd0, 32, lc.length >> 8, lc.length & 255, ...lc];
    const u = decodeUpdate(Uint8Array.from([0, 0, at.length >> 8, at.length & 255, ...at, 8, 10]), uctx());
    expect(u.treatAsWithdraw).toBe(false);
    expect(want.length).toBe(25);
    expect(u.attrs!.largeCommunities).toEqual(want as [number, number, number][]);
  });

  test("absent list attributes of a decoded set share one frozen empty list; present ones have exactly their values", () => {
    const at = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 192, 0, 2, 1, 0xc0, 8, 8, 0, 1, 0, 2, 0, 3, 0, 4];
    const u = decodeUpdate(Uint8Array.from([0, 0, 0, at.length, ...at, 8, 10]), uctx());
    const a = u.attrs!;
    expect(a.communities).toEqual([0x10002, 0x30004]);
    expect(a.communities.length).toBe(2);
    expect(Object.isFrozen(a.largeCommunities)).toBe(true);
    expect(a.largeCommunities as unknown).toBe(a.extCommunities);
    expect(a.unknown as unknown).toBe(a.clusterList);
    expect(u.issues).toEqual([]);
    // A set decoded with an issue reports it, and the next clean UPDATE does not inherit it.
    const bad = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 192, 0, 2, 1, 0x40, 6, 1, 0];
    const ub = decodeUpdate(Uint8Array.from([0, 0, 0, bad.length, ...bad, 8, 10]), uctx());
    expect(ub.issues.map((i) => i.action)).toEqual(["attribute-discard"]);
    const again = [0x40, 1, 1, 1, 0x40, 2, 0, 0x40, 3, 4, 192, 0, 2, 1];
    expect(decodeUpdate(Uint8Array.from([0, 0, 0, again.length, ...again, 8, 10]), uctx()).issues).toEqual([]);
  });

  test("an unknown optional transitive attribute is passed on with the Partial bit", () => {
    const at = [0x40, 1, 1, 0, 0x40, 2, 0, 0x40, 3, 4, 192, 0, 2, 1, 0xc0, 99, 3, 1, 2, 3, 0x80, 98, 1, 9];
    const u = decodeUpdate(Uint8Array.from([0, 0, 0, at.length, ...at, 8, 10]), uctx({ ibgp: true }));
    expect(u.treatAsWithdraw).toBe(false);
    // the optional non-transitive one is dropped, the transitive one kept
    expect(u.attrs!.unknown).toEqual([{ flags: 0xc0, type: 99, value: Uint8Array.of(1, 2, 3) }]);
    const out = encodeAttributes(u.attrs!, true);
    const r = splitAttributes(out, 0, out.length).attrs.find((x) => x.type === 99)!;
    expect(r.flags).toBe(0xe0);
    expect(Array.from(r.value)).toEqual([1, 2, 3]);
    const plain = encodeAttributes(u.attrs!, true, [], false);
    expect(splitAttributes(plain, 0, plain.length).attrs.find((x) => x.type === 99)!.flags).toBe(0xc0);
    // an attribute long enough for the extended length bit keeps it readable
    const long = encodeAttributes(attrs({ unknown: [{ flags: 0xc0, type: 77, value: new Uint8Array(300) }] }), true);
    const lr = splitAttributes(long, 0, long.length).attrs[0]!;
    expect([lr.flags, lr.value.length]).toEqual([0xf0, 300]);
  });

  test("End-of-RIB: IPv4 empty UPDATE, IPv6 empty MP_UNREACH", () => {
    const v4 = encodeEndOfRib(1, 1);
    expect(v4.length).toBe(23);
    const u4 = decodeUpdate(one(v4).body, uctx());
    expect(u4.endOfRib).toEqual({ afi: 1, safi: 1 });
    expect(u4.issues).toEqual([]);
    const u6 = decodeUpdate(one(encodeEndOfRib(2, 1)).body, uctx());
    expect(u6.endOfRib).toEqual({ afi: 2, safi: 1 });
    expect(u6.issues).toEqual([]);
    expect(u6.treatAsWithdraw).toBe(false);
    expect(withdrawnBlocks(u6)).toEqual([]);
    // an ordinary withdrawal is not an End-of-RIB
    const w = decodeUpdate(one(buildWithdrawals(2, 1, [pfx("2001:db8::/32")], ectx())[0]!).body, uctx());
    expect(w.endOfRib).toBeNull();
  });

  test("ADD-PATH NLRI with path identifiers (RFC 7911)", () => {
    const v4 = [pfx("10.0.0.0/8", 1), pfx("10.0.0.0/8", 2), pfx("192.0.2.0/24", 0xffffffff)];
    const msg = encodeUpdate({ attrs: base, nlri: v4, withdrawn: [pfx("10.9.0.0/16", 7)] }, ectx({ addPath: true }));
    const u = decodeUpdate(one(msg).body, uctx({ addPath: true }));
    expect(strs(blockPrefixes(u.nlri))).toEqual(["10.0.0.0/8#1", "10.0.0.0/8#2", "192.0.2.0/24#4294967295"]);
    expect(strs(blockPrefixes(u.withdrawn))).toEqual(["10.9.0.0/16#7"]);
    expect(updateRoutes(u).announced.map((r) => r.pathId)).toEqual([1, 2, 0xffffffff]);

    const v6 = [pfx("2001:db8::/32", 10), pfx("2001:db8::/32", 11)];
    const [m6] = buildAnnouncements(2, 1, v6, base, parseIPv6("2001:db8::1")!, ectx({ addPathSend: (afi) => afi === 2 }));
    const u6 = decodeUpdate(one(m6!).body, uctx({ addPathReceive: (afi) => afi === 2 }));
    expect(strs(blockPrefixes(u6.mpReach!.nlri))).toEqual(["2001:db8::/32#10", "2001:db8::/32#11"]);
  });

  /** Decode a list of UPDATEs; return the announced and withdrawn prefix sets. */
  function decodeAll(msgs: Uint8Array[], maxLen: number, ctx: UpdateContext) {
    const f = new Framer();
    f.maxLen = maxLen;
    const announced: string[] = [];
    const withdrawn: string[] = [];
    for (const m of msgs) {
      expect(m.length).toBeLessThanOrEqual(maxLen);
      for (const fr of f.push(m)) {
        const u = decodeUpdate(fr.body, ctx);
        expect(u.treatAsWithdraw).toBe(false);
        expect(u.issues).toEqual([]);
        for (const b of announcedBlocks(u)) announced.push(...strs(blockPrefixes(b)));
        for (const b of withdrawnBlocks(u)) withdrawn.push(...strs(blockPrefixes(b)));
      }
    }
    return { announced, withdrawn };
  }

  function manyV4(n: number, withPathIds = false): Prefix[] {
    const out: Prefix[] = [];
    for (let i = 0; i < n; i++) {
      const k = i % 5;
      const len = [24, 32, 20, 28, 22][k]!;
      // a distinct first octet per length, the index in the network bits: all distinct
      const v = (((100 + k) << 24) | ((i << (32 - len)) & 0x00ffffff)) >>> 0;
      const p: Prefix = { afi: AFI.IPV4, len, addr: Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff) };
      if (withPathIds) p.pathId = i % 3;
      out.push(p);
    }
    return out;
  }

  function manyV6(n: number): Prefix[] {
    const out: Prefix[] = [];
    for (let i = 0; i < n; i++) out.push(pfx(`2001:db8:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}00::/${i % 2 ? 56 : 64}`));
    return out;
  }

  test("buildAnnouncements packs 2000 prefixes into ≤ 4096-byte messages (and fewer with 65535)", () => {
    const ps = manyV4(2000);
    expect(new Set(strs(ps)).size).toBe(2000);
    const small = buildAnnouncements(1, 1, ps, base, Uint8Array.of(192, 0, 2, 1), ectx());
    expect(small.length).toBeGreaterThan(2);
    const r1 = decodeAll(small, 4096, uctx());
    expect(r1.announced.sort()).toEqual(strs(ps).sort());
    expect(r1.announced.length).toBe(ps.length);
    // all but the last message are nearly full
    for (const m of small.slice(0, -1)) expect(m.length).toBeGreaterThan(4096 - 10);

    const big = buildAnnouncements(1, 1, ps, base, Uint8Array.of(192, 0, 2, 1), ectx({ maxLen: 65535 }));
    expect(big.length).toBeLessThan(small.length);
    expect(Math.max(...big.map((m) => m.length))).toBeGreaterThan(4096);
    expect(decodeAll(big, 65535, uctx()).announced.sort()).toEqual(strs(ps).sort());

    // IPv6 in MP_REACH, with ADD-PATH on IPv4 for good measure
    const p6 = manyV6(2000);
    const nh = parseIPv6("2001:db8::1")!;
    const m6 = buildAnnouncements(2, 1, p6, base, nh, ectx());
    expect(decodeAll(m6, 4096, uctx()).announced.sort()).toEqual(strs(p6).sort());
    const m6big = buildAnnouncements(2, 1, p6, base, nh, ectx({ maxLen: 65535 }));
    expect(m6big.length).toBeLessThan(m6.length);
    expect(decodeAll(m6big, 65535, uctx()).announced.sort()).toEqual(strs(p6).sort());

    const pa = manyV4(2000, true);
    const ma = buildAnnouncements(1, 1, pa, base, Uint8Array.of(192, 0, 2, 1), ectx({ addPath: true }));
    expect(decodeAll(ma, 4096, uctx({ addPath: true })).announced.sort()).toEqual(strs(pa).sort());
  });

  test("buildWithdrawals packs likewise", () => {
    const ps = manyV4(2000);
    for (const maxLen of [4096, 65535]) {
      const ms = buildWithdrawals(1, 1, ps, ectx({ maxLen }));
      const r = decodeAll(ms, maxLen, uctx());
      expect(r.withdrawn.sort()).toEqual(strs(ps).sort());
      expect(r.announced).toEqual([]);
    }
    const p6 = manyV6(2000);
    const small = buildWithdrawals(2, 1, p6, ectx());
    const big = buildWithdrawals(2, 1, p6, ectx({ maxLen: 65535 }));
    expect(big.length).toBeLessThan(small.length);
    expect(decodeAll(small, 4096, uctx()).withdrawn.sort()).toEqual(strs(p6).sort());
    expect(decodeAll(big, 65535, uctx()).withdrawn.sort()).toEqual(strs(p6).sort());
  });
});

// ---------------------------------------------------------------- prefixes

describe("prefixes", () => {
  test("parse and format", () => {
    expect(prefixToString(parsePrefix("10.0.0.0/8"))).toBe("10.0.0.0/8");
    expect(prefixToString(parsePrefix("0.0.0.0/0"))).toBe("0.0.0.0/0");
    expect(prefixToString(parsePrefix("192.0.2.1/32"))).toBe("192.0.2.1/32");
    expect(prefixToString(parsePrefix("2001:DB8:0:0::/64"))).toBe("2001:db8::/64");
    expect(prefixToString(parsePrefix("::/0"))).toBe("::/0");
    expect(parsePrefix("2001:db8::/32").afi).toBe(AFI.IPV6);
  });

  test("RFC 5952 IPv6 text", () => {
    const f = (s: string) => formatIPv6(parseIPv6(s)!);
    expect(f("2001:0db8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(f("2001:db8:0:0:1:0:0:1")).toBe("2001:db8::1:0:0:1"); // first of equal runs (§4.2.3)
    expect(f("2001:0:0:1:0:0:0:1")).toBe("2001:0:0:1::1"); // the longest run (§4.2.3)
    expect(f("2001:db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1"); // a single 0 is not compressed (§4.2.2)
    expect(f("2001:DB8::ABCD")).toBe("2001:db8::abcd"); // lower case (§4.3)
    expect(f("0:0:0:0:0:0:0:0")).toBe("::");
    expect(f("::1")).toBe("::1");
    expect(f("fe80:0:0:0:0:0:0:0")).toBe("fe80::");
    expect(f("::ffff:192.0.2.1")).toBe("::ffff:192.0.2.1"); // §5
    expect(f("1:2:3:4:5:6:7::")).toBe("1:2:3:4:5:6:7:0");
  });

  test("host bits are rejected with a helpful message", () => {
    expect(() => parsePrefix("10.0.0.1/8")).toThrow(/host bits set \(did you mean 10\.0\.0\.0\/8\?\)/);
    expect(() => parsePrefix("2001:db8::1/32")).toThrow(/did you mean 2001:db8::\/32\?/);
    expect(() => parsePrefix("192.168.1.128/24")).toThrow(/192\.168\.1\.0\/24/);
  });

  test("invalid text is rejected", () => {
    for (const s of ["10.0.0.0", "10.0.0.0/33", "300.0.0.0/8", "01.0.0.0/8", "2001:db8::/129", "1.2.3.4::/64", "2001:db8:::/48", "x/8", "10.0.0.0/-1"]) {
      expect(() => parsePrefix(s)).toThrow(/invalid prefix/);
    }
    expect(parseIPv4("1.2.3")).toBeNull();
    expect(parseIPv6("1:2:3:4:5:6:7:8:9")).toBeNull();
    expect(parseIPv6("1.2.3.4::")).toBeNull();
  });
});
