/**
 * The VXLAN overlay (lib/k8s/overlay.ts): the pure plan (VTEP MACs and
 * addresses, connected or overlay or unreachable per node and mode, MTU),
 * the reconciler against the fake kernel (device, addresses, neighbour and
 * FDB entries created, repaired, changed and removed; a foreign device left
 * alone; stop with and without removal), and the FIB's next-hop override
 * hook it feeds (lib/fib/fib.ts setNextHopOverrides: onlink hop instead of
 * the recursive resolution; a refusal reported and our route removed).
 */
import { describe, expect, test } from "bun:test";
import { emptyAttributes } from "../../lib/bgp/attributes.ts";
import { parseAddr, parsePrefix } from "../../lib/core/addr.ts";
import { Fib, type NextHopOverride } from "../../lib/fib/fib.ts";
import type { KernelAddress, KernelLink } from "../../lib/fib/types.ts";
import {
  OVERLAY_DEVICE,
  Overlay,
  type OverlayNode,
  type OverlaySettings,
  firstAddress,
  initialOverrides,
  neighborsOf,
  onConnectedSubnet,
  overlayNode,
  overridesOf,
  planOverlay,
  vtepMac,
} from "../../lib/k8s/overlay.ts";
import { type Route, prefixKey } from "../../lib/rib/types.ts";
import { FakeKernel } from "../support/fake-kernel.ts";
import { node } from "../k8s/fixtures.ts";

const S: OverlaySettings = { mode: "crossSubnet", vni: 4096, port: 4789, mtu: "auto" };
const ME: OverlayNode = { name: "n1", v4: "192.0.2.10", podCidrs: ["10.244.1.0/24"] };
/** On our subnet (192.0.2.0/26). */
const N2: OverlayNode = { name: "n2", v4: "192.0.2.11", podCidrs: ["10.244.2.0/24"] };
/** In another subnet. */
const N3: OverlayNode = { name: "n3", v4: "198.51.100.10", podCidrs: ["10.244.3.0/24"] };
const ETH0: KernelLink = { index: 2, name: "eth0", up: true, mtu: 1500 };
const ADDRS: KernelAddress[] = [
  { family: 4, ifindex: 1, address: "127.0.0.1", prefixLength: 8 },
  { family: 4, ifindex: 2, address: "192.0.2.10", prefixLength: 26 },
];

function plan(settings: Partial<OverlaySettings> = {}, nodes = [ME, N2, N3], o: { links?: KernelLink[]; addresses?: KernelAddress[]; me?: OverlayNode } = {}) {
  return planOverlay({ settings: { ...S, ...settings }, me: o.me ?? ME, nodes, links: o.links ?? [ETH0], addresses: o.addresses ?? ADDRS });
}

describe("the plan", () => {
  test("VTEP MACs: 02:b6 and the IPv4 bytes; IPv6 hashed, stable, distinct", () => {
    expect(vtepMac("192.0.2.10")).toBe("02:b6:c0:00:02:0a");
    expect(vtepMac("198.51.100.10")).toBe("02:b6:c6:33:64:0a");
    const a = vtepMac("2001:db8::a");
    expect(a).toMatch(/^02:b6(:[0-9a-f]{2}){4}$/);
    expect(vtepMac("2001:db8:0::a")).toBe(a);
    expect(vtepMac("2001:db8::b")).not.toBe(a);
    expect(() => vtepMac("nope")).toThrow('invalid underlay address "nope"');
    expect(firstAddress("10.244.2.0/24")).toBe("10.244.2.0");
    expect(firstAddress("2001:db8:1:2::/64")).toBe("2001:db8:1:2::");
  });

  test("connected subnet: inside one of our interface subnets, not our /32s", () => {
    expect(onConnectedSubnet("192.0.2.11", ADDRS)).toBe(true);
    expect(onConnectedSubnet("192.0.2.70", ADDRS)).toBe(false);
    expect(onConnectedSubnet("198.51.100.10", ADDRS)).toBe(false);
    expect(onConnectedSubnet("10.244.2.0", [{ family: 4, ifindex: 9, address: "10.244.1.0", prefixLength: 32 }])).toBe(false);
  });

  test("crossSubnet: the node on our subnet connected, the other through the overlay; device from our address, MTU underlay - 50", () => {
    const p = plan();
    expect(p.device).toEqual({ name: OVERLAY_DEVICE, vni: 4096, port: 4789, local: "192.0.2.10", family: 4, mac: "02:b6:c0:00:02:0a", mtu: 1450, vteps: ["10.244.1.0"] });
    expect(p.problems).toEqual([]);
    expect(p.peers).toEqual([
      { node: "n2", underlay: "192.0.2.11", mac: "02:b6:c0:00:02:0b", hops: [{ nextHop: "192.0.2.11", family: 4, path: "connected" }] },
      { node: "n3", underlay: "198.51.100.10", mac: "02:b6:c6:33:64:0a", hops: [{ nextHop: "198.51.100.10", family: 4, path: "overlay", vtep: "10.244.3.0" }] },
    ]);
    expect(plan({ mtu: 1400 }).device!.mtu).toBe(1400);
    expect(plan({}, [ME, N3], { links: [{ ...ETH0, mtu: 9000 }] }).device!.mtu).toBe(8950);
    // A cluster on one subnet needs no device (and a missing pod CIDR of ours is no problem then).
    expect(plan({}, [ME, N2])).toMatchObject({ device: null, problems: [] });
    expect(plan({}, [{ ...ME, podCidrs: [] }, N2], { me: { ...ME, podCidrs: [] } })).toMatchObject({ device: null, problems: [] });
    expect(plan({ mode: "always" }, [ME, N2]).device).not.toBeNull();
    const guess = plan({}, [ME, N3], { addresses: ADDRS.slice(0, 1) });
    expect(guess.device!.mtu).toBe(1450);
    expect(guess.problems).toEqual(["no interface holds 192.0.2.10 (or its MTU is unknown): overlay MTU 1450 assumed"]);
  });

  test("always: every node through the overlay; none: no device, the node in another subnet unreachable", () => {
    expect(plan({ mode: "always" }).peers.map((p) => p.hops.map((h) => `${p.node}:${h.path}:${h.vtep}`))).toEqual([["n2:overlay:10.244.2.0"], ["n3:overlay:10.244.3.0"]]);
    const none = plan({ mode: "none" });
    expect(none.device).toBeNull();
    expect(none.peers.map((p) => p.hops)).toEqual([
      [{ nextHop: "192.0.2.11", family: 4, path: "connected" }],
      [{ nextHop: "198.51.100.10", family: 4, path: "unreachable", reason: "unreachable: node n3 (198.51.100.10) is not on a connected subnet and kubernetes.overlay.mode is none" }],
    ]);
  });

  test("what the overlay cannot carry is unreachable, with the reason", () => {
    const noCidr = plan({}, [{ ...ME, podCidrs: [] }, N2, N3], { me: { ...ME, podCidrs: [] } });
    expect(noCidr.device).toBeNull();
    expect(noCidr.problems).toEqual(["Node n1 has no pod CIDR: no VTEP address, no overlay device"]);
    expect(noCidr.peers[1]!.hops[0]!.reason).toBe(
      "unreachable: node n3 (198.51.100.10) is not on a connected subnet and the overlay has no device (Node n1 has no pod CIDR: no VTEP address, no overlay device)",
    );
    const theirs = plan({}, [ME, { ...N3, podCidrs: [] }]);
    expect(theirs.peers[0]!.hops[0]).toMatchObject({ path: "unreachable", reason: "unreachable: node n3 (198.51.100.10) is not on a connected subnet and has no IPv4 pod CIDR for a VTEP address" });
    expect(theirs.device).toBeNull(); // no node rides the overlay
  });

  test("dual stack: the IPv6 next hop rides the IPv4 device with an IPv6 VTEP", () => {
    const me = { ...ME, v6: "2001:db8::a", podCidrs: ["10.244.1.0/24", "2001:db8:1:1::/64"] };
    const n3 = { ...N3, v6: "2001:db8:5::a", podCidrs: ["10.244.3.0/24", "2001:db8:1:3::/64"] };
    const p = plan({}, [me, n3], { me, addresses: [...ADDRS, { family: 6, ifindex: 2, address: "2001:db8::a", prefixLength: 64 }] });
    expect(p.device!.vteps).toEqual(["10.244.1.0", "2001:db8:1:1::"]);
    expect(p.peers[0]!.hops).toEqual([
      { nextHop: "198.51.100.10", family: 4, path: "overlay", vtep: "10.244.3.0" },
      { nextHop: "2001:db8:5::a", family: 6, path: "overlay", vtep: "2001:db8:1:3::" },
    ]);
    expect(neighborsOf(p, 7).map((n) => `${n.family} ${n.ip} ${n.mac}`)).toEqual([
      "bridge 198.51.100.10 02:b6:c6:33:64:0a",
      "4 10.244.3.0 02:b6:c6:33:64:0a",
      "6 2001:db8:1:3:: 02:b6:c6:33:64:0a",
    ]);
  });

  test("override table: the overlay's hops onlink on the device, refusals with their reason; a device problem refuses the overlay's nodes", () => {
    expect([...overridesOf(plan(), { ifindex: 7 })]).toEqual([["198.51.100.10", { gateway: "10.244.3.0", ifindex: 7, onlink: true }]]);
    expect([...overridesOf(plan(), { problem: "boom" })]).toEqual([["198.51.100.10", { refuse: "unreachable: node n3 (198.51.100.10) needs the overlay: boom" }]]);
    expect([...overridesOf(plan({ mode: "none" }), { ifindex: 7 })]).toEqual([
      ["198.51.100.10", { refuse: "unreachable: node n3 (198.51.100.10) is not on a connected subnet and kubernetes.overlay.mode is none" }],
    ]);
    // Before the first reconcile: our device in line carries at once, else refused meanwhile.
    const dev: KernelLink = { index: 9, name: OVERLAY_DEVICE, up: true, mtu: 1450, kind: "vxlan", mac: "02:b6:c0:00:02:0a", vxlan: { id: 4096, port: 4789, local: "192.0.2.10", learning: false } };
    const input = { settings: S, me: ME, nodes: [ME, N2, N3], addresses: ADDRS };
    expect(initialOverrides({ ...input, links: [ETH0, dev] }).get("198.51.100.10")).toEqual({ gateway: "10.244.3.0", ifindex: 9, onlink: true });
    expect(initialOverrides({ ...input, links: [ETH0] }).get("198.51.100.10")).toEqual({ refuse: "unreachable: node n3 (198.51.100.10) needs the overlay: the overlay device is being set up" });
  });

  test("a Node as the overlay sees it: first InternalIP per family, pod CIDRs canonical, bad ones skipped", () => {
    const n = node("n9", { ipv4: "192.0.2.9", ipv6: "2001:db8::9", podCIDRs: ["10.244.9.0/24", "bad", "2001:db8:9::/64"] });
    expect(overlayNode(n)).toEqual({ name: "n9", v4: "192.0.2.9", v6: "2001:db8::9", podCidrs: ["10.244.9.0/24", "2001:db8:9::/64"] });
  });
});

/** A fake kernel with eth0 192.0.2.10/26, an Overlay on it, and the override tables it handed over. */
function setup(periodicMs = 0) {
  const k = new FakeKernel();
  k.setLink(ETH0);
  k.addAddress(ADDRS[1]!);
  const tables: ReadonlyMap<string, NextHopOverride>[] = [];
  const logs: string[] = [];
  const o = new Overlay({ kernel: k, setOverrides: (t) => tables.push(t), log: (l, m) => logs.push(`${l} ${m}`), periodicMs });
  const dev = () => [...k.links.values()].find((l) => l.name === OVERLAY_DEVICE);
  const entries = () => [...k.neighbors.values()].map((n) => `${n.family} ${n.ip} ${n.mac}`).sort();
  return { k, o, tables, logs, dev, entries, last: () => tables[tables.length - 1]! };
}

describe("the reconciler", () => {
  test("creates the device, its VTEP address, the neighbour and FDB entries, and hands over the overrides", async () => {
    const { k, o, dev, entries, last } = setup();
    await o.update(S, ME, [ME, N2, N3]);
    const d = dev()!;
    expect(d).toMatchObject({ mtu: 1450, mac: "02:b6:c0:00:02:0a", up: true, kind: "vxlan", vxlan: { id: 4096, port: 4789, local: "192.0.2.10", learning: false } });
    expect(k.addresses.filter((a) => a.ifindex === d.index).map((a) => `${a.address}/${a.prefixLength}`)).toEqual(["10.244.1.0/32"]);
    expect(entries()).toEqual(["4 10.244.3.0 02:b6:c6:33:64:0a", "bridge 198.51.100.10 02:b6:c6:33:64:0a"]);
    expect([...last()]).toEqual([["198.51.100.10", { gateway: "10.244.3.0", ifindex: d.index, onlink: true }]]);
    const st = o.status()!;
    expect(st).toMatchObject({ mode: "crossSubnet", state: "up", ifindex: d.index, mtu: 1450, local: "192.0.2.10", vteps: ["10.244.1.0"], problems: [] });
    expect(st.nodes).toEqual([
      { node: "n2", nextHop: "192.0.2.11", underlay: "192.0.2.11", mac: "02:b6:c0:00:02:0b", path: "connected", installed: false },
      { node: "n3", nextHop: "198.51.100.10", underlay: "198.51.100.10", mac: "02:b6:c6:33:64:0a", path: "overlay", vtep: "10.244.3.0", installed: true },
    ]);
    // In line: a second reconcile changes nothing.
    const n = k.linkLog.length;
    await o.reconcileNow();
    expect(k.linkLog.length).toBe(n);
    await o.stop();
  });

  test("a node that leaves takes its entries and override; one that comes adds them", async () => {
    const { o, entries, last } = setup();
    await o.update(S, ME, [ME, N2, N3]);
    await o.update(S, ME, [ME, N2]);
    expect(entries()).toEqual([]);
    expect(last().size).toBe(0);
    const n4: OverlayNode = { name: "n4", v4: "203.0.113.4", podCidrs: ["10.244.4.0/24"] };
    await o.update(S, ME, [ME, N2, n4]);
    expect(entries()).toEqual(["4 10.244.4.0 02:b6:cb:00:71:04", "bridge 203.0.113.4 02:b6:cb:00:71:04"]);
    await o.stop();
  });

  test("preview: before new Nodes reach the router, their overrides (on the device in place) go to the FIB; a Node that left keeps its entry until the update", async () => {
    const { o, dev, last, tables } = setup();
    o.preview(S, ME, [ME, N3]); // nothing before the first reconcile (initialOverrides covers the start)
    expect(tables).toEqual([]);
    await o.update(S, ME, [ME, N3]);
    const n4: OverlayNode = { name: "n4", v4: "203.0.113.4", podCidrs: ["10.244.4.0/24"] };
    o.preview(S, ME, [ME, N3, n4]);
    const i = dev()!.index;
    expect([...last()].sort()).toEqual([
      ["198.51.100.10", { gateway: "10.244.3.0", ifindex: i, onlink: true }],
      ["203.0.113.4", { gateway: "10.244.4.0", ifindex: i, onlink: true }],
    ]);
    o.preview(S, ME, [ME, n4]);
    expect(last().has("198.51.100.10")).toBe(true);
    await o.update(S, ME, [ME, n4]);
    expect([...last().keys()]).toEqual(["203.0.113.4"]);
    // Only new Nodes are looked at; with another VNI (a new device) they are refused until it is there.
    const before = tables.length;
    o.preview({ ...S, vni: 7 }, ME, [ME, n4]);
    expect(tables.length).toBe(before);
    const n5: OverlayNode = { name: "n5", v4: "203.0.113.5", podCidrs: ["10.244.5.0/24"] };
    o.preview({ ...S, vni: 7 }, ME, [ME, n4, n5]);
    expect(last().get("203.0.113.5")).toEqual({ refuse: "unreachable: node n5 (203.0.113.5) needs the overlay: the overlay device is being set up" });
    expect(last().get("203.0.113.4")).toEqual({ gateway: "10.244.4.0", ifindex: i, onlink: true });
    await o.stop();
  });

  test("repairs: the device deleted (link event), an entry changed, a stale entry of ours; the kernel's own dynamic entries stay", async () => {
    const { k, o, dev, entries, last } = setup();
    await o.update(S, ME, [ME, N3]);
    const first = dev()!.index;
    k.removeLink(first);
    await Bun.sleep(50); // the link event's debounce
    await o.whenIdle();
    const again = dev()!;
    expect(again.index).not.toBe(first);
    expect(entries()).toEqual(["4 10.244.3.0 02:b6:c6:33:64:0a", "bridge 198.51.100.10 02:b6:c6:33:64:0a"]);
    expect(last().get("198.51.100.10")).toEqual({ gateway: "10.244.3.0", ifindex: again.index, onlink: true });
    k.neighbors.set(`4|${again.index}|10.244.3.0`, { family: 4, ifindex: again.index, ip: "10.244.3.0", mac: "02:00:00:00:00:01", state: 0x80, flags: 0 });
    k.neighbors.set(`4|${again.index}|10.244.9.0`, { family: 4, ifindex: again.index, ip: "10.244.9.0", mac: "02:00:00:00:00:09", state: 0x80, flags: 0 });
    k.neighbors.set(`4|${again.index}|10.244.8.8`, { family: 4, ifindex: again.index, ip: "10.244.8.8", mac: "02:00:00:00:00:08", state: 0x02, flags: 0 });
    k.setLink({ ...again, mtu: 1300 });
    await o.reconcileNow();
    expect(entries()).toEqual(["4 10.244.3.0 02:b6:c6:33:64:0a", "4 10.244.8.8 02:00:00:00:00:08", "bridge 198.51.100.10 02:b6:c6:33:64:0a"]);
    expect(dev()!.mtu).toBe(1450);
    await o.stop();
  });

  test("a periodic compare repairs what no event reported", async () => {
    const { k, o, dev } = setup(30);
    await o.update(S, ME, [ME, N3]);
    k.neighbors.clear();
    k.removeAddress(k.addresses.find((a) => a.address === "10.244.1.0")!);
    await Bun.sleep(120);
    await o.whenIdle();
    expect(k.neighbors.size).toBe(2);
    expect(k.addresses.some((a) => a.address === "10.244.1.0" && a.ifindex === dev()!.index)).toBe(true);
    await o.stop();
  });

  test("other VXLAN settings on our device: recreated; a link of that name that is not ours: reported, never touched, its nodes refused", async () => {
    const { k, o, dev, logs, last } = setup();
    await o.update(S, ME, [ME, N3]);
    const first = dev()!.index;
    await o.update({ ...S, vni: 5000 }, ME, [ME, N3]);
    expect(dev()!.index).not.toBe(first);
    expect(dev()!.vxlan!.id).toBe(5000);
    await o.stop({ remove: true });

    const s2 = setup();
    s2.k.setLink({ index: 50, name: OVERLAY_DEVICE, up: true, mtu: 1500, kind: "veth", mac: "aa:bb:cc:00:00:01" });
    await s2.o.update(S, ME, [ME, N3]);
    expect(s2.k.linkLog).toEqual([]);
    expect(s2.k.links.get(50)).toMatchObject({ kind: "veth", mtu: 1500 });
    const problem = `a link named ${OVERLAY_DEVICE} exists and is not bgpctl's (kind veth, MAC aa:bb:cc:00:00:01); not touched`;
    expect(s2.o.status()).toMatchObject({ state: "error", problems: [problem] });
    expect(s2.last().get("198.51.100.10")).toEqual({ refuse: `unreachable: node n3 (198.51.100.10) needs the overlay: ${problem}` });
    expect(s2.logs).toContain(`warn overlay: ${problem}`);
    await s2.o.stop({ remove: true });
    expect(s2.k.links.has(50)).toBe(true);
    expect(logs.some((l) => l.includes("recreating it"))).toBe(true);
    void k;
    void last;
  });

  test("mode none removes the device and refuses the other subnet's node; back on, it is made again", async () => {
    const { o, dev, last } = setup();
    await o.update(S, ME, [ME, N3]);
    await o.update({ ...S, mode: "none" }, ME, [ME, N3]);
    expect(dev()).toBeUndefined();
    expect(last().get("198.51.100.10")).toEqual({ refuse: "unreachable: node n3 (198.51.100.10) is not on a connected subnet and kubernetes.overlay.mode is none" });
    expect(o.status()).toMatchObject({ mode: "none", state: "absent" });
    await o.update(S, ME, [ME, N3]);
    expect(dev()).toBeDefined();
    await o.stop();
  });

  test("stop: graceful keeps the device; remove (bgpctl shutdown) refuses the overlay's nodes first, then deletes the device", async () => {
    const a = setup();
    await a.o.update(S, ME, [ME, N3]);
    await a.o.stop();
    expect(a.dev()).toBeDefined();
    const b = setup();
    await b.o.update(S, ME, [ME, N3]);
    await b.o.stop({ remove: true });
    expect(b.dev()).toBeUndefined();
    expect(b.k.neighbors.size).toBe(0);
    expect(b.last().get("198.51.100.10")).toEqual({ refuse: "unreachable: node n3 (198.51.100.10) needs the overlay: overlay removed (bgpctl shutdown)" });
  });
});

function route(prefix: string, nh: string, via?: string): Route {
  const p = parsePrefix(prefix);
  const r: Route = {
    prefix: p,
    key: prefixKey(p),
    pathId: 0,
    source: { id: nh, address: nh, addressBytes: parseAddr(nh)!.addr, asn: 64512, routerId: 1, ibgp: true, rrClient: false, local: false },
    attrs: emptyAttributes(),
    nextHop: parseAddr(nh)!.addr,
    learnedAt: 0,
    igpCost: 0,
    reachable: true,
    stale: false,
  };
  if (via) r.via = [{ addr: parseAddr(via)!.addr }];
  return r;
}

describe("the FIB's next-hop overrides", () => {
  test("an override hop replaces the recursive resolution (onlink on the device); a refusal removes our route and says why", async () => {
    const k = new FakeKernel();
    k.strictGateways = true;
    k.setLink(ETH0);
    k.addAddress(ADDRS[1]!);
    k.setLink({ index: 7, name: OVERLAY_DEVICE, up: true, mtu: 1450 });
    const fib = new Fib(k, { periodicCompareMs: 0 });
    await fib.start();
    fib.allSourcesSynced();
    // Resolved through the default router (192.0.2.1): what the overlay exists to prevent.
    fib.setDesired(prefixKey(parsePrefix("10.244.3.0/24")), route("10.244.3.0/24", "198.51.100.10", "192.0.2.1"));
    await fib.whenIdle();
    expect(k.get("10.244.3.0/24")!.nextHops).toEqual([{ gateway: "192.0.2.1", ifindex: 2 }]);

    fib.setNextHopOverrides(new Map([["198.51.100.10", { gateway: "10.244.3.0", ifindex: 7, onlink: true }]]));
    await fib.whenIdle();
    expect(k.get("10.244.3.0/24")!.nextHops).toEqual([{ gateway: "10.244.3.0", ifindex: 7, onlink: true }]);
    expect(fib.status("10.244.3.0/24")).toEqual([{ prefix: "10.244.3.0/24", state: "installed", nextHops: [`10.244.3.0 dev ${OVERLAY_DEVICE} onlink`] }]);
    // The same table again changes nothing.
    const ops = k.opsApplied;
    fib.setNextHopOverrides(new Map([["198.51.100.10", { gateway: "10.244.3.0", ifindex: 7, onlink: true }]]));
    await fib.whenIdle();
    expect(k.opsApplied).toBe(ops);

    const why = "unreachable: node n3 (198.51.100.10) is not on a connected subnet and kubernetes.overlay.mode is none";
    fib.setNextHopOverrides(new Map([["198.51.100.10", { refuse: why }]]));
    await fib.whenIdle();
    expect(k.get("10.244.3.0/24")).toBeUndefined();
    expect(fib.status("10.244.3.0/24")).toEqual([{ prefix: "10.244.3.0/24", state: "failed", nextHops: ["198.51.100.10"], reason: why }]);

    // Without the table: back to the plain rules (the recursive resolution).
    fib.setNextHopOverrides(new Map());
    await fib.whenIdle();
    expect(k.get("10.244.3.0/24")!.nextHops).toEqual([{ gateway: "192.0.2.1", ifindex: 2 }]);
    await fib.stop();
  });

  test("IPv6: our route through another device covering the onlink gateway is deleted first (the kernel refuses to replace it)", async () => {
    const k = new FakeKernel();
    k.setLink(ETH0);
    k.addAddress({ family: 6, ifindex: 2, address: "2001:db8::10", prefixLength: 64 });
    k.setLink({ index: 7, name: OVERLAY_DEVICE, up: true, mtu: 1450 });
    const fib = new Fib(k, { periodicCompareMs: 0 });
    await fib.start();
    fib.allSourcesSynced();
    const key = prefixKey(parsePrefix("2001:db8:f:3::/64"));
    // A node on our subnet: on-link via eth0 (crossSubnet) ...
    fib.setDesired(key, route("2001:db8:f:3::/64", "2001:db8::11"));
    await fib.whenIdle();
    expect(k.get("2001:db8:f:3::/64")!.nextHops).toEqual([{ gateway: "2001:db8::11", ifindex: 2 }]);
    // ... then carried by the overlay (mode always): the gateway 2001:db8:f:3:: is inside our route via eth0.
    fib.setNextHopOverrides(new Map([["2001:db8::11", { gateway: "2001:db8:f:3::", ifindex: 7, onlink: true }]]));
    await fib.whenIdle();
    expect(k.get("2001:db8:f:3::/64")!.nextHops).toEqual([{ gateway: "2001:db8:f:3::", ifindex: 7, onlink: true }]);
    expect(k.opLog.slice(-3).map((o) => `${o.op} ${o.error}`)).toEqual(["replace EINVAL", "delete null", "replace null"]);
    expect(fib.status("2001:db8:f:3::/64")[0]!.state).toBe("installed");
    await fib.stop();
  });
});
