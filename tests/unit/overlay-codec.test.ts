/**
 * The overlay's rtnetlink codec (ffi/rtmsg.ts) and requests (ffi/rtnetlink.ts
 * LinkKernel): exact bytes of the VXLAN RTM_NEWLINK (port in network byte
 * order, nested IFLA_LINKINFO), neighbour / FDB / address requests and the
 * onlink flag; encode → decode round trips; bad input refused with what and
 * where. Then, in a network namespace of the test's own (ov-<pid>-codec,
 * root), the real kernel: a device, address, neighbour, FDB entry and onlink
 * route made through RtNetlink are what `ip -d link`, `ip addr`, `ip neigh`,
 * `bridge fdb` and `ip route` show, and our dumps decode what they show.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  NetlinkEncodeError,
  NLM_F_ACK,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  NlWriter,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTNH_F_ONLINK,
  decodeLink,
  decodeNeighbor,
  decodeRoute,
  encodeAddressOp,
  encodeLinkOp,
  encodeNeighborDump,
  encodeRouteOp,
  parseMac,
  parseMessages,
  writeNeighborOp,
} from "../../ffi/rtmsg.ts";
import type { KernelNeighbor } from "../../lib/fib/types.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const u16 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint16(off, true);
const u32 = (b: Uint8Array, off: number) => new DataView(b.buffer, b.byteOffset).getUint32(off, true);

/** The kernel's answer to a request, as if it were a notification: same body, RTM_NEW* type. */
function asReply(req: Uint8Array, type: number): ReturnType<typeof parseMessages>[number] {
  const m = parseMessages(req)[0]!;
  return { ...m, type };
}

describe("overlay requests: bytes", () => {
  test("RTM_NEWLINK vxlan: CREATE|EXCL|ACK, up, name, MTU, MAC, IFLA_LINKINFO{kind vxlan, data{id, local, port (network order), learning 0}}", () => {
    const b = encodeLinkOp({ op: "create-vxlan", name: "vxlan.bgpctl", vxlan: { id: 4096, local: "192.0.2.10", port: 4789, learning: false }, mtu: 1450, mac: "02:b6:c0:00:02:0a", up: true }, 7);
    expect(u16(b, 4)).toBe(RTM_NEWLINK);
    expect(u16(b, 6)).toBe(0x01 | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
    expect(u32(b, 8)).toBe(7);
    expect(hex(b.subarray(16, 32))).toBe("00000000" + "00000000" + "01000000" + "01000000"); // AF_UNSPEC, index 0, IFF_UP, change IFF_UP
    const h = hex(b.subarray(32));
    expect(h).toContain("11000300" + hex(new TextEncoder().encode("vxlan.bgpctl\0"))); // IFLA_IFNAME
    expect(h).toContain("08000400" + "aa050000"); // IFLA_MTU 1450
    expect(h).toContain("0a000100" + "02b6c000020a"); // IFLA_ADDRESS
    expect(h).toContain("0a000100" + hex(new TextEncoder().encode("vxlan\0"))); // IFLA_INFO_KIND
    expect(h).toContain("08000100" + "00100000"); // IFLA_VXLAN_ID 4096
    expect(h).toContain("08000400" + "c000020a"); // IFLA_VXLAN_LOCAL 192.0.2.10
    expect(h).toContain("06000f00" + "12b5"); // IFLA_VXLAN_PORT 4789, big-endian
    expect(h).toContain("05000700" + "00"); // IFLA_VXLAN_LEARNING 0
    // Nested attributes carry NLA_F_NESTED: IFLA_LINKINFO (18) and IFLA_INFO_DATA (2).
    expect(h).toMatch(/[0-9a-f]{4}1280/);
    expect(h).toMatch(/[0-9a-f]{4}0280/);
    // Decoded back (a RTM_NEWLINK with the same body), with the details.
    expect(decodeLink(asReply(b, RTM_NEWLINK), true)).toEqual({
      index: 0,
      name: "vxlan.bgpctl",
      up: false, // IFF_RUNNING is the kernel's to set
      mtu: 1450,
      adminUp: true,
      mac: "02:b6:c0:00:02:0a",
      kind: "vxlan",
      vxlan: { id: 4096, local: "192.0.2.10", port: 4789, learning: false },
    });
    expect(decodeLink(asReply(b, RTM_NEWLINK))).toEqual({ index: 0, name: "vxlan.bgpctl", up: false, mtu: 1450 });
  });

  test("link set and delete; bad names, VNIs, ports and MACs refused", () => {
    const set = encodeLinkOp({ op: "set", index: 9, mtu: 1400 }, 1);
    expect(hex(set.subarray(16, 32))).toBe("00000000" + "09000000" + "00000000" + "00000000"); // no up change asked
    expect(hex(set.subarray(32))).toBe("08000400" + "78050000");
    const del = encodeLinkOp({ op: "delete", index: 9 }, 1);
    expect(u16(del, 4)).toBe(17);
    expect(del.byteLength).toBe(32);
    const bad = (op: Parameters<typeof encodeLinkOp>[0], msg: string) => expect(() => encodeLinkOp(op, 1)).toThrow(new NetlinkEncodeError(msg));
    const x = { id: 1, port: 4789, learning: false };
    bad({ op: "create-vxlan", name: "a-name-that-is-too-long", vxlan: x, mtu: 1450, mac: "02:00:00:00:00:01", up: true }, 'invalid link name "a-name-that-is-too-long": 1..15 characters, no space, slash or colon');
    bad({ op: "create-vxlan", name: "vx", vxlan: { ...x, id: 1 << 24 }, mtu: 1450, mac: "02:00:00:00:00:01", up: true }, "VNI 16777216: expected 0..16777215");
    bad({ op: "create-vxlan", name: "vx", vxlan: { ...x, port: 0 }, mtu: 1450, mac: "02:00:00:00:00:01", up: true }, "VXLAN port 0: expected 1..65535");
    bad({ op: "create-vxlan", name: "vx", vxlan: x, mtu: 1450, mac: "02:00:00:00:01", up: true }, 'invalid MAC address "02:00:00:00:01": expected six hex bytes separated by colons');
    expect(hex(parseMac("02:B6:c0:00:02:0A"))).toBe("02b6c000020a");
  });

  test("neighbour and FDB entries: ndmsg, NDA_DST, NDA_LLADDR, REPLACE; decoded back", () => {
    const w = new NlWriter();
    const neigh: KernelNeighbor = { family: 4, ifindex: 5, ip: "10.244.2.0", mac: "02:b6:c6:33:64:0a", state: 0x80, flags: 0 };
    const fdb: KernelNeighbor = { family: "bridge", ifindex: 5, ip: "198.51.100.10", mac: "02:b6:c6:33:64:0a", state: 0x80, flags: 0x02 };
    writeNeighborOp(w, { op: "replace", neighbor: neigh }, 1, NLM_F_ACK);
    writeNeighborOp(w, { op: "replace", neighbor: fdb }, 2, NLM_F_ACK);
    writeNeighborOp(w, { op: "delete", neighbor: fdb }, 3);
    const ms = parseMessages(w.take());
    expect(ms.map((m) => [m.type, m.flags, m.seq])).toEqual([
      [RTM_NEWNEIGH, 0x01 | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, 1],
      [RTM_NEWNEIGH, 0x01 | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, 2],
      [29, 0x01, 3],
    ]);
    expect(hex(ms[0]!.payload)).toBe("02000000" + "05000000" + "8000" + "00" + "00" + "08000100" + "0af40200" + "0a000200" + "02b6c633640a0000");
    expect(hex(ms[1]!.payload.subarray(0, 12))).toBe("07000000" + "05000000" + "8000" + "02" + "00");
    expect(decodeNeighbor(ms[0]!)).toEqual(neigh);
    expect(decodeNeighbor(ms[1]!)).toEqual(fdb);
    expect(() => writeNeighborOp(w, { op: "replace", neighbor: { ...neigh, ip: "2001:db8::1" } }, 4)).toThrow('neighbour of IPv4 needs an IPv4 address, got "2001:db8::1"');
    expect(() => writeNeighborOp(w, { op: "replace", neighbor: { ...fdb, mac: undefined } }, 4)).toThrow("FDB entry without a MAC address");
    // Dumps: the link in NDA_IFINDEX for neighbours, in ndm_ifindex for FDB entries (strict checking).
    expect(hex(encodeNeighborDump(6, 5, 1).subarray(16))).toBe("0a000000" + "00000000" + "0000" + "00" + "00" + "08000800" + "05000000");
    expect(hex(encodeNeighborDump("bridge", 5, 1).subarray(16))).toBe("07000000" + "05000000" + "0000" + "00" + "00");
  });

  test("addresses: RTM_NEWADDR with IFA_LOCAL and IFA_ADDRESS; onlink routes carry RTNH_F_ONLINK and decode with it", () => {
    const a = encodeAddressOp({ op: "add", address: { family: 4, ifindex: 5, address: "10.244.1.0", prefixLength: 32 } }, 1);
    expect(u16(a, 4)).toBe(20);
    expect(hex(a.subarray(16))).toBe("02" + "20" + "00" + "00" + "05000000" + "08000200" + "0af40100" + "08000100" + "0af40100");
    expect(() => encodeAddressOp({ op: "add", address: { family: 4, ifindex: 5, address: "10.244.1.0", prefixLength: 33 } }, 1)).toThrow("prefix length 33: expected 0..32");
    const route = { family: 4 as const, prefix: "10.244.2.0/24", table: 254, protocol: 186, metric: 20, type: 1, nextHops: [{ gateway: "10.244.2.0", ifindex: 5, onlink: true }] };
    const r = encodeRouteOp({ op: "replace", route }, 1);
    expect(u32(r, 16 + 8) & RTNH_F_ONLINK).toBe(RTNH_F_ONLINK);
    expect(decodeRoute(parseMessages(r)[0]!)).toEqual({ ...route, scope: 0 });
    const mp = { ...route, nextHops: [{ gateway: "10.244.2.0", ifindex: 5, onlink: true }, { gateway: "10.244.3.0", ifindex: 5, onlink: true }] };
    expect(decodeRoute(parseMessages(encodeRouteOp({ op: "replace", route: mp }, 1))[0]!)).toEqual({ ...mp, scope: 0 });
  });
});

// ---------------------------------------------------------------------------
// Against the kernel

const NS = `ov-${process.pid}-codec`;
const IP = Bun.which("ip") ?? "ip";
const BRIDGE = Bun.which("bridge") ?? "bridge";
let dir = "";

function sh(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

afterAll(() => {
  Bun.spawnSync([IP, "netns", "del", NS]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("overlay requests: the kernel", () => {
  test("what RtNetlink makes is what ip/bridge show, and our dumps decode it", async () => {
    if (process.getuid?.() !== 0) throw new Error("this test needs root (network namespaces)");
    dir = mkdtempSync(join(tmpdir(), "bgpctl-overlay-codec-"));
    sh([IP, "netns", "add", NS]);
    sh([IP, "-n", NS, "link", "add", "u0", "type", "veth", "peer", "name", "u1"]);
    sh([IP, "-n", NS, "addr", "add", "192.0.2.10/26", "dev", "u0"]);
    sh([IP, "-n", NS, "-6", "addr", "add", "2001:db8:1::10/64", "dev", "u0", "nodad"]);
    sh([IP, "-n", NS, "link", "set", "u0", "up"]);
    sh([IP, "-n", NS, "link", "set", "u1", "up"]);
    const script = join(dir, "make.ts");
    writeFileSync(
      script,
      `
import { RtNetlink } from ${JSON.stringify(join(import.meta.dir, "..", "..", "ffi", "rtnetlink.ts"))};
const k = await RtNetlink.open();
const out: Record<string, unknown> = {};
out.create = await k.linkOp({ op: "create-vxlan", name: "vxlan.bgpctl", vxlan: { id: 4096, local: "192.0.2.10", port: 4789, learning: false }, mtu: 1450, mac: "02:b6:c0:00:02:0a", up: true });
out.again = (await k.linkOp({ op: "create-vxlan", name: "vxlan.bgpctl", vxlan: { id: 1, port: 4789, learning: false }, mtu: 1450, mac: "02:b6:c0:00:02:0a", up: true }))?.code;
const dev = (await k.dumpLinkDetails()).find((l) => l.name === "vxlan.bgpctl")!;
out.dev = dev;
out.addr = await k.addressOp({ op: "add", address: { family: 4, ifindex: dev.index, address: "10.244.1.0", prefixLength: 32 } });
out.neigh = await k.neighborOps([
  { op: "replace", neighbor: { family: 4, ifindex: dev.index, ip: "10.244.2.0", mac: "02:b6:c6:33:64:0a", state: 0x80, flags: 0 } },
  { op: "replace", neighbor: { family: "bridge", ifindex: dev.index, ip: "198.51.100.10", mac: "02:b6:c6:33:64:0a", state: 0x80, flags: 2 } },
  { op: "replace", neighbor: { family: 4, ifindex: 4242, ip: "10.244.9.0", mac: "02:b6:c6:33:64:0b", state: 0x80, flags: 0 } },
  { op: "delete", neighbor: { family: 4, ifindex: dev.index, ip: "10.244.7.0", state: 0x80, flags: 0 } },
]);
out.route = await k.apply([{ op: "replace", route: { family: 4, prefix: "10.244.2.0/24", table: 254, protocol: 186, metric: 20, type: 1, nextHops: [{ gateway: "10.244.2.0", ifindex: dev.index, onlink: true }] } }]);
out.neighbors = await k.dumpNeighbors(4, dev.index);
// An IPv6 underlay: IFLA_VXLAN_LOCAL6, an FDB entry with an IPv6 destination.
out.create6 = await k.linkOp({ op: "create-vxlan", name: "vx6", vxlan: { id: 4097, local: "2001:db8:1::10", port: 4790, learning: false }, mtu: 1430, mac: "02:b6:11:22:33:44", up: true });
const dev6 = (await k.dumpLinkDetails()).find((l) => l.name === "vx6")!;
out.dev6 = dev6;
out.fdb6op = await k.neighborOps([{ op: "replace", neighbor: { family: "bridge", ifindex: dev6.index, ip: "2001:db8:2::10", mac: "02:b6:55:66:77:88", state: 0x80, flags: 2 } }]);
out.fdb6 = await k.dumpNeighbors("bridge", dev6.index);
out.fdb = await k.dumpNeighbors("bridge", dev.index);
out.routes = await k.dumpRoutes(4, { table: 254, protocol: 186 });
console.log(JSON.stringify(out));
k.close();
`,
    );
    const out = JSON.parse(sh([IP, "netns", "exec", NS, process.execPath, script]));
    expect(out.create).toBeNull();
    expect(out.again).toBe("EEXIST");
    expect(out.addr).toBeNull();
    expect(out.neigh.map((r: { code: string } | null) => r?.code ?? null)).toEqual([null, null, "ENODEV", "ENOENT"]);
    expect(out.route).toEqual([null]);

    const link = JSON.parse(sh([IP, "-n", NS, "-d", "-j", "link", "show", "dev", "vxlan.bgpctl"]))[0];
    expect(link.ifindex).toBe(out.dev.index);
    expect(out.dev).toEqual({
      index: link.ifindex,
      name: "vxlan.bgpctl",
      up: true,
      mtu: link.mtu,
      adminUp: true,
      mac: link.address,
      kind: link.linkinfo.info_kind,
      vxlan: { id: link.linkinfo.info_data.id, local: link.linkinfo.info_data.local, port: link.linkinfo.info_data.port, learning: link.linkinfo.info_data.learning },
    });
    expect([link.mtu, link.address, link.linkinfo.info_data.id, link.linkinfo.info_data.port, link.linkinfo.info_data.learning]).toEqual([1450, "02:b6:c0:00:02:0a", 4096, 4789, false]);

    const addrs = JSON.parse(sh([IP, "-n", NS, "-4", "-j", "addr", "show", "dev", "vxlan.bgpctl"]))[0].addr_info;
    expect(addrs.map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`)).toEqual(["10.244.1.0/32"]);

    const neigh = JSON.parse(sh([IP, "-n", NS, "-4", "-j", "neigh", "show", "dev", "vxlan.bgpctl"]));
    expect(neigh).toEqual([{ dst: "10.244.2.0", lladdr: "02:b6:c6:33:64:0a", state: ["PERMANENT"] }]);
    expect(out.neighbors).toEqual([{ family: 4, ifindex: link.ifindex, ip: "10.244.2.0", mac: "02:b6:c6:33:64:0a", state: 0x80, flags: 0 }]);

    const fdb = JSON.parse(sh([BRIDGE, "-n", NS, "-j", "fdb", "show", "dev", "vxlan.bgpctl"]));
    expect(fdb.map((f: { mac: string; dst: string; flags: string[]; state: string }) => [f.mac, f.dst, f.flags, f.state])).toEqual([["02:b6:c6:33:64:0a", "198.51.100.10", ["self"], "permanent"]]);
    expect(out.fdb).toEqual([{ family: "bridge", ifindex: link.ifindex, ip: "198.51.100.10", mac: "02:b6:c6:33:64:0a", state: 0x80, flags: 0x02 }]);

    const routes = JSON.parse(sh([IP, "-n", NS, "-j", "route", "show", "proto", "186"]));
    // (ip omits "protocol" when filtering by it)
    expect(routes).toEqual([{ dst: "10.244.2.0/24", gateway: "10.244.2.0", dev: "vxlan.bgpctl", metric: 20, flags: ["onlink"] }]);
    expect(out.create6).toBeNull();
    expect(out.fdb6op).toEqual([null]);
    const link6 = JSON.parse(sh([IP, "-n", NS, "-d", "-j", "link", "show", "dev", "vx6"]))[0];
    expect([link6.mtu, link6.linkinfo.info_data.id, link6.linkinfo.info_data.local6, link6.linkinfo.info_data.port]).toEqual([1430, 4097, "2001:db8:1::10", 4790]);
    expect(out.dev6.vxlan).toEqual({ id: 4097, local: "2001:db8:1::10", port: 4790, learning: false });
    const fdb6 = JSON.parse(sh([BRIDGE, "-n", NS, "-j", "fdb", "show", "dev", "vx6"]));
    expect(fdb6.map((f: { mac: string; dst: string }) => [f.mac, f.dst])).toEqual([["02:b6:55:66:77:88", "2001:db8:2::10"]]);
    expect(out.fdb6).toEqual([{ family: "bridge", ifindex: link6.ifindex, ip: "2001:db8:2::10", mac: "02:b6:55:66:77:88", state: 0x80, flags: 0x02 }]);
    expect(out.routes).toEqual([{ family: 4, prefix: "10.244.2.0/24", table: 254, protocol: 186, metric: 20, type: 1, scope: 0, nextHops: [{ gateway: "10.244.2.0", ifindex: link.ifindex, onlink: true }] }]);
  }, 30_000);
});
