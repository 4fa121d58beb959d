/**
 * Unit tests of the FIB reconciler (lib/fib/fib.ts) against the in-memory
 * FakeKernel (tests/support/fake-kernel.ts): what is installed (best path, ECMP,
 * IPv6 link-local next hops, IPv4 via IPv6), what never is (local routes,
 * own next hops, connected and excluded prefixes, other protocols' keys),
 * start-up retention and stale cleanup, stop, repair from kernel events,
 * resync after overrun and periodically, unreachable next hops and batching;
 * recursive next hops (RFC 4271 §5.1.3): a route's immediate forwarding
 * hops (`via`) installed instead of its next hop, alone and driven by the
 * next-hop tracker (lib/rib/nexthop.ts) over the same fake kernel.
 */
import { describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { turnCounter } from "../support/turns.ts";
import { emptyAttributes } from "../../lib/bgp/attributes.ts";
import { ManualClock } from "../../lib/core/clock.ts";
import { parseAddr, parseIPv6, parsePrefix } from "../../lib/core/addr.ts";
import { FakeKernel } from "../support/fake-kernel.ts";
import { settleTracker } from "../support/settle-tracker.ts";
import { Fib, type FibOptions } from "../../lib/fib/fib.ts";
import type { LogLevel as FibLogLevel } from "../../lib/core/log.ts";
import type { Kernel, KernelRoute } from "../../lib/fib/types.ts";
import { kernelResolver } from "../../lib/fib/resolver.ts";
import { LocRib, type LocRibEvent } from "../../lib/rib/loc-rib.ts";
import { NextHopTracker } from "../../lib/rib/nexthop.ts";
import { type Route, type RouteSource, makeRoute, prefixKey } from "../../lib/rib/types.ts";

const TABLE = 254;
const BGP = 186;

function source(address: string, local = false): RouteSource {
  return {
    id: local ? "local" : address,
    address: local ? "" : address,
    addressBytes: local ? new Uint8Array(0) : parseAddr(address)!.addr,
    asn: local ? 65000 : 65001,
    routerId: 1,
    ibgp: false,
    rrClient: false,
    local,
  };
}

/** A route; `nh` is an address text, "global|link-local" for 32 bytes, or "" for none. */
function rt(prefix: string, nh: string, o: { local?: boolean; src?: string; pathId?: number } = {}): Route {
  const p = parsePrefix(prefix);
  let nextHop: Uint8Array;
  if (nh === "") nextHop = new Uint8Array(0);
  else if (nh.includes("|")) {
    const [g, l] = nh.split("|");
    nextHop = new Uint8Array(32);
    nextHop.set(parseIPv6(g!)!, 0);
    nextHop.set(parseIPv6(l!)!, 16);
  } else nextHop = parseAddr(nh)!.addr;
  return {
    prefix: p,
    key: prefixKey(p),
    pathId: o.pathId ?? 0,
    source: source(o.src ?? (nh.split("|")[0] || "192.0.2.200"), o.local ?? false),
    attrs: emptyAttributes(),
    nextHop,
    learnedAt: 0,
    igpCost: 0,
    reachable: true,
    stale: false,
  };
}

function ours(prefix: string, gws: string[], metric = 20, protocol = BGP): KernelRoute {
  return {
    family: prefix.includes(":") ? 6 : 4,
    prefix,
    table: TABLE,
    protocol,
    metric,
    nextHops: gws.map((g) => ({ gateway: g })),
    type: 1,
  };
}

function gateways(r: KernelRoute | undefined): string[] {
  return (r?.nextHops ?? []).map((h) => h.gateway ?? "").sort();
}

interface Setup {
  k: FakeKernel;
  fib: Fib;
  clock: ManualClock;
  logs: { level: FibLogLevel; msg: string }[];
  set(r: Route | string | null, mp?: Route[]): void;
}

/** A host with eth0 (192.0.2.1/24, 2001:db8:1::1/64, fe80::1/64) and eth1 (198.18.0.1/24). */
function setup(opts: Partial<FibOptions> = {}, prepare?: (k: FakeKernel) => void): Setup {
  const k = new FakeKernel();
  k.setLink({ index: 1, name: "lo", up: true });
  k.setLink({ index: 2, name: "eth0", up: true });
  k.setLink({ index: 3, name: "eth1", up: true });
  k.addAddress({ family: 4, ifindex: 1, address: "127.0.0.1", prefixLength: 8 });
  k.addAddress({ family: 4, ifindex: 2, address: "192.0.2.1", prefixLength: 24 });
  k.addAddress({ family: 6, ifindex: 2, address: "2001:db8:1::1", prefixLength: 64 });
  k.addAddress({ family: 6, ifindex: 2, address: "fe80::1", prefixLength: 64 });
  k.addAddress({ family: 4, ifindex: 3, address: "198.18.0.1", prefixLength: 24 });
  k.addAddress({ family: 6, ifindex: 3, address: "fe80::3", prefixLength: 64 });
  prepare?.(k);
  const clock = new ManualClock(0);
  const logs: { level: FibLogLevel; msg: string }[] = [];
  const fib = new Fib(k, { periodicCompareMs: 0, ...opts }, (level, msg) => logs.push({ level, msg }), clock);
  return {
    k,
    fib,
    clock,
    logs,
    set(r, mp = []) {
      if (typeof r === "string") fib.setDesired(prefixKey(parsePrefix(r)), null, []);
      else if (r) fib.setDesired(r.key, r, mp);
    },
  };
}

async function started(opts: Partial<FibOptions> = {}, prepare?: (k: FakeKernel) => void): Promise<Setup> {
  const s = setup(opts, prepare);
  await s.fib.start();
  return s;
}

describe("fib: what gets installed", () => {
  test("best path is installed with our table, protocol and metric", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    const r = s.k.get("203.0.113.0/24");
    expect(r).toBeDefined();
    expect(r!.protocol).toBe(BGP);
    expect(r!.table).toBe(TABLE);
    expect(r!.metric).toBe(20);
    expect(r!.type).toBe(1);
    expect(gateways(r)).toEqual(["192.0.2.2"]);
    expect(s.fib.status("203.0.113.0/24")).toEqual([{ prefix: "203.0.113.0/24", state: "installed", nextHops: ["192.0.2.2"] }]);
    expect(s.fib.counts()).toEqual({ installed: 1, pending: 0, failed: 0, conflict: 0, excluded: 0, total: 1 });
  });

  test("options: table, protocol and metric are honoured", async () => {
    const s = await started({ table: 100, protocol: 200, metric: 7 });
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24", 100, 7)?.protocol).toBe(200);
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
  });

  test("ECMP: the multipath set becomes one route with several next hops", async () => {
    const s = await started();
    const a = rt("203.0.113.0/24", "192.0.2.2");
    const b = rt("203.0.113.0/24", "192.0.2.3");
    const c = rt("203.0.113.0/24", "192.0.2.3", { src: "192.0.2.99" }); // same next hop twice: one hop
    s.set(a, [a, b, c]);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2", "192.0.2.3"]);
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
    // Same set in another order: nothing to do.
    const before = s.k.applyCalls;
    s.set(b, [b, a]);
    await s.fib.whenIdle();
    expect(s.k.applyCalls).toBe(before);
  });

  test("ECMP disabled: the best path only", async () => {
    const s = await started({ ecmp: false });
    const a = rt("203.0.113.0/24", "192.0.2.2");
    const b = rt("203.0.113.0/24", "192.0.2.3");
    s.set(a, [a, b]);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
  });

  test("withdraw removes the route and forgets the prefix", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.set("203.0.113.0/24");
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    expect(s.fib.status()).toEqual([]);
  });

  test("a next-hop change replaces the route in place (no delete)", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.set(rt("203.0.113.0/24", "192.0.2.3"));
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.3"]);
    expect(s.k.opLog.map((o) => o.op)).toEqual(["replace", "replace"]);
    expect(s.k.list({ protocol: BGP }).length).toBe(1);
  });

  test("changes to one prefix are coalesced before they reach the kernel", async () => {
    const s = await started();
    for (let i = 2; i < 50; i++) s.set(rt("203.0.113.0/24", `192.0.2.${i}`));
    s.set(rt("198.51.100.0/24", "192.0.2.2"));
    s.set("198.51.100.0/24");
    await s.fib.whenIdle();
    expect(s.k.opLog).toEqual([{ op: "replace", prefix: "203.0.113.0/24", error: null }]);
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.49"]);
  });

  test("local routes (ours to originate) are not installed, and remove an earlier learned route", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.set(rt("203.0.113.0/24", "", { local: true }));
    s.set(rt("198.51.100.0/24", "0.0.0.0", { local: true }));
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP })).toEqual([]);
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "excluded", reason: "locally originated" });
    expect(s.fib.counts().excluded).toBe(2);
  });

  test("a next hop that is one of our addresses is not installed", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.1"));
    const a = rt("198.51.100.0/24", "192.0.2.1");
    const b = rt("198.51.100.0/24", "192.0.2.5");
    s.set(a, [a, b]); // ECMP: only the other hop
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "excluded", reason: "next hop 192.0.2.1 is a local address" });
    expect(gateways(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.5"]);
  });

  test("connected prefixes and host addresses are never installed", async () => {
    const s = await started();
    s.set(rt("192.0.2.0/24", "198.18.0.2"));
    s.set(rt("192.0.2.1/32", "198.18.0.2"));
    s.set(rt("2001:db8:1::/64", "2001:db8:1::2"));
    s.set(rt("192.0.2.128/25", "198.18.0.2")); // inside, but not the connected prefix itself
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).map((r) => r.prefix)).toEqual(["192.0.2.128/25"]);
    expect(s.fib.status("192.0.2.0/24")[0]).toMatchObject({ state: "excluded", reason: "connected prefix" });
    expect(s.fib.status("2001:db8:1::/64")[0]!.state).toBe("excluded");
  });

  test("a prefix becoming connected has our route removed; connected no more, it is installed", async () => {
    const s = await started();
    s.fib.allSourcesSynced();
    s.set(rt("10.9.9.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.get("10.9.9.0/24")).toBeDefined();
    const addr = { family: 4 as const, ifindex: 3, address: "10.9.9.1", prefixLength: 24 };
    s.k.addAddress(addr);
    await s.fib.whenIdle();
    expect(s.k.get("10.9.9.0/24")).toBeUndefined();
    s.k.removeAddress(addr);
    await s.fib.whenIdle();
    expect(s.k.get("10.9.9.0/24")).toBeDefined();
  });

  test("excluded prefixes: the prefix itself and everything more specific", async () => {
    const s = await started({ exclude: ["10.0.0.0/8", "2001:db8:ff::/48"] });
    s.set(rt("10.0.0.0/8", "192.0.2.2"));
    s.set(rt("10.1.2.0/24", "192.0.2.2"));
    s.set(rt("0.0.0.0/0", "192.0.2.2")); // less specific: not excluded
    s.set(rt("2001:db8:ff:1::/64", "2001:db8:1::2"));
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).map((r) => r.prefix)).toEqual(["0.0.0.0/0"]);
    expect(s.fib.status("10.1.2.0/24")[0]).toMatchObject({ state: "excluded", reason: "excluded (10.0.0.0/8)", nextHops: ["192.0.2.2"] });
    expect(s.fib.status("2001:db8:ff:1::/64")[0]!.state).toBe("excluded");
  });

  test("bad options are rejected", () => {
    const k = new FakeKernel();
    expect(() => new Fib(k, { exclude: ["10.0.0.1/8"] })).toThrow(/exclude.*host bits/);
    expect(() => new Fib(k, { maxBatch: 0 })).toThrow(/maxBatch/);
    expect(() => new Fib(k, { protocol: 300 })).toThrow(/protocol/);
  });
});

/**
 * A kernel that keeps nothing: every operation succeeds and is counted
 * (`applied`), nothing is stored (the fake kernel keeps every route it is
 * given, which a count of heap cells would include). One link and address.
 */
function keepsNothing(applied: (n: number) => void): Kernel {
  return {
    dumpRoutes: async () => [],
    dumpLinks: async () => [{ index: 2, name: "eth0", up: true }],
    dumpAddresses: async () => [{ family: 4, ifindex: 2, address: "192.0.2.1", prefixLength: 24 }],
    apply: async (ops) => {
      applied(ops.length);
      return ops.map(() => null);
    },
    lookupRoute: async () => ({ error: { errno: 101, code: "ENETUNREACH", message: "" } }),
    watch: () => () => {},
    close: () => {},
  };
}

/** After a full collection, the heap cells of a type added since `before` (heapStats().objectTypeCounts). */
async function grownSince(before: Record<string, number>): Promise<(type: string) => number> {
  Bun.gc(true);
  await Bun.sleep(0);
  Bun.gc(true);
  const after = heapStats().objectTypeCounts;
  return (t) => (after[t] ?? 0) - (before[t] ?? 0);
}

/**
 * A FIB over `kernel`, started and synced, in batches of 500 (what the last
 * batch leaves for a conservative scan of the stack to find stays far below
 * the heap-cell bounds of the tests that count them).
 */
async function syncedFib(kernel: Kernel): Promise<Fib> {
  const fib = new Fib(kernel, { table: TABLE, metric: 20, maxBatch: 500 });
  await fib.start();
  fib.allSourcesSynced();
  return fib;
}

/** Give the FIB n /24s from 10.0.0.0/24 up, the routes of one UPDATE (one head); the route objects are garbage once given. */
function feedOneUpdate(fib: Fib, n: number): void {
  const src = source("192.0.2.2");
  const attrs = emptyAttributes();
  const nh = parseAddr("192.0.2.2")!.addr;
  for (let i = 0; i < n; i++) {
    const r = makeRoute((0x0a000000 + i * 256) * 64 + 24, 0, src, attrs, nh, 5);
    fib.setDesired(r.key, r, []);
  }
}

describe("fib: what it keeps per prefix", () => {
  test("the heads of the routes it is given, not the route objects: 2,000 routes of one UPDATE installed, none of them kept alive", async () => {
    const s = await started();
    const src = source("192.0.2.2");
    const attrs = emptyAttributes();
    const nh = parseAddr("192.0.2.2")!.addr;
    const refs: WeakRef<Route>[] = [];
    // Made in a function of its own, so that no route stays on this frame's stack.
    (() => {
      for (let i = 0; i < 2_000; i++) {
        const r = makeRoute((0x0a000000 + i * 256) * 64 + 24, 0, src, attrs, nh, 5);
        refs.push(new WeakRef(r));
        s.fib.setDesired(r.key, r, []);
      }
    })();
    await s.fib.whenIdle();
    expect([...s.k.routes.values()].filter((r) => r.protocol === BGP)).toHaveLength(2_000);
    Bun.gc(true);
    await Bun.sleep(0);
    Bun.gc(true);
    // (A conservative scan may still see a few.)
    expect(refs.filter((w) => w.deref() !== undefined).length).toBeLessThan(20);
    // What it kept is what it shows.
    expect(s.fib.status("10.0.5.0/24")).toEqual([{ prefix: "10.0.5.0/24", state: "installed", nextHops: ["192.0.2.2"] }]);
  });
  test("an installed prefix keeps no heap cell of its own: the table holds a settled state shared by the routes of one UPDATE (no entry, prefix text, kernel route or desired-state object per prefix)", async () => {
    // A kernel that keeps nothing (the fake one keeps every route it is given, which would be counted too).
    let applied = 0;
    const fib = await syncedFib(keepsNothing((n) => (applied += n)));
    await fib.whenIdle();
    const N = 50_000;
    Bun.gc(true);
    const before = heapStats().objectTypeCounts;
    feedOneUpdate(fib, N);
    await fib.whenIdle();
    expect(applied).toBe(N);
    expect(fib.counts().installed).toBe(N);
    const grew = await grownSince(before);
    // The prefix index's storage only; before: an entry per prefix, and before that the entry, the desired route and the prefix's text (four strings: a rope and its parts).
    expect(grew("Object")).toBeLessThan(N / 10);
    expect(grew("string")).toBeLessThan(N / 10);
    // What it keeps is enough to show and to remove what it installed.
    expect(fib.status("10.0.5.0/24")).toEqual([{ prefix: "10.0.5.0/24", state: "installed", nextHops: ["192.0.2.2"] }]);
    await fib.stop();
    expect(applied).toBe(2 * N);
  });
});

describe("fib: next hops", () => {
  test("IPv6 with a 32-byte next hop: the link-local with the interface of the global's subnet", async () => {
    const s = await started();
    s.set(rt("2001:db8:100::/48", "2001:db8:1::2|fe80::2"));
    await s.fib.whenIdle();
    const r = s.k.get("2001:db8:100::/48");
    expect(r?.nextHops).toEqual([{ gateway: "fe80::2", ifindex: 2 }]);
    expect(s.fib.status("2001:db8:100::/48")[0]).toMatchObject({ state: "installed", nextHops: ["fe80::2%eth0"] });
  });

  test("IPv6 32-byte next hop whose global is in no connected subnet: the global address", async () => {
    const s = await started();
    s.set(rt("2001:db8:100::/48", "2001:db8:99::2|fe80::2"));
    await s.fib.whenIdle();
    expect(gateways(s.k.get("2001:db8:100::/48"))).toEqual(["2001:db8:99::2"]);
  });

  test("IPv6 16-byte global next hop; a lone link-local one cannot be used", async () => {
    const s = await started();
    s.set(rt("2001:db8:100::/48", "2001:db8:1::2"));
    s.set(rt("2001:db8:200::/48", "fe80::2"));
    await s.fib.whenIdle();
    expect(gateways(s.k.get("2001:db8:100::/48"))).toEqual(["2001:db8:1::2"]);
    expect(s.k.get("2001:db8:200::/48")).toBeUndefined();
    expect(s.fib.status("2001:db8:200::/48")[0]).toMatchObject({ state: "failed", reason: "link-local next hop fe80::2 without an interface" });
  });

  test("IPv4 prefix with an IPv6 next hop: via6 (RFC 8950)", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "2001:db8:1::2"));
    s.set(rt("198.51.100.0/24", "2001:db8:1::2|fe80::2"));
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")?.nextHops).toEqual([{ gateway: "2001:db8:1::2", via6: true, ifindex: 2 }]);
    expect(s.k.get("198.51.100.0/24")?.nextHops).toEqual([{ gateway: "fe80::2", ifindex: 2, via6: true }]);
  });

  test("families: only the configured ones are handled", async () => {
    const s = await started({ families: [4] });
    s.set(rt("2001:db8:100::/48", "2001:db8:1::2"));
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).map((r) => r.prefix)).toEqual(["203.0.113.0/24"]);
  });
});

describe("fib: other protocols", () => {
  test("another protocol's route at our key is never touched: conflict reported, ours skipped", async () => {
    const s = await started({}, (k) => {
      k.ipRouteAdd(ours("203.0.113.0/24", ["198.18.0.9"], 20, 4));
      k.ipRouteAdd(ours("198.51.100.0/24", ["198.18.0.9"], 100, 4)); // other metric: coexists
    });
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    s.set(rt("198.51.100.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toMatchObject({ protocol: 4, nextHops: [{ gateway: "198.18.0.9" }] });
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "conflict", reason: "conflict with proto 4" });
    expect(s.k.get("198.51.100.0/24")?.protocol).toBe(BGP);
    expect(s.k.get("198.51.100.0/24", TABLE, 100)?.protocol).toBe(4);
    expect(s.logs.filter((l) => l.msg.includes("conflict with proto 4")).length).toBe(1);
    // Withdraw and stop: the other route stays.
    s.set("203.0.113.0/24");
    await s.fib.stop();
    expect(s.k.get("203.0.113.0/24")?.protocol).toBe(4);
    expect(s.k.get("198.51.100.0/24", TABLE, 100)?.protocol).toBe(4);
    expect(s.k.list({ protocol: BGP })).toEqual([]);
  });

  test("another protocol taking our key later: conflict; when it goes, ours comes back", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.k.ipRouteReplace(ours("203.0.113.0/24", ["198.18.0.9"], 20, 3)); // "ip route replace ... proto boot"
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")?.protocol).toBe(3);
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "conflict", reason: "conflict with proto 3" });
    // Routing changes meanwhile: still not fighting.
    s.set(rt("203.0.113.0/24", "192.0.2.7"));
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")?.protocol).toBe(3);
    s.k.ipRouteDel("203.0.113.0/24", TABLE, 20);
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toMatchObject({ protocol: BGP, nextHops: [{ gateway: "192.0.2.7" }] });
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
  });

  test("routes in other tables and of other protocols are ignored by the dump and never deleted", async () => {
    const s = await started({}, (k) => {
      k.ipRouteAdd({ ...ours("203.0.113.0/24", ["192.0.2.9"]), table: 100 }); // our protocol, other table
      k.ipRouteAdd(ours("198.51.100.0/24", ["192.0.2.9"], 0, 2)); // kernel route
    });
    s.fib.allSourcesSynced();
    await s.fib.whenIdle();
    await s.fib.stop();
    expect(s.k.routes.size).toBe(2);
    expect(s.k.opLog).toEqual([]);
  });
});

describe("fib: start-up and shutdown", () => {
  const prepare = (k: FakeKernel) => {
    k.ipRouteAdd(ours("203.0.113.0/24", ["192.0.2.2"])); // still desired, same
    k.ipRouteAdd(ours("198.51.100.0/24", ["192.0.2.2"])); // desired, other next hop
    k.ipRouteAdd(ours("100.64.0.0/16", ["192.0.2.2"])); // not desired (stale)
    k.ipRouteAdd(ours("100.65.0.0/16", ["192.0.2.2"], 30)); // ours at another metric (stale)
  };

  async function boot(opts: Partial<FibOptions> = {}): Promise<Setup> {
    const s = await started(opts, prepare);
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    s.set(rt("198.51.100.0/24", "192.0.2.3"));
    await s.fib.whenIdle();
    // Desired routes are in place; nothing of ours was deleted.
    expect(s.k.opLog).toEqual([{ op: "replace", prefix: "198.51.100.0/24", error: null }]);
    expect(s.k.get("100.64.0.0/16")).toBeDefined();
    expect(s.k.get("100.65.0.0/16", TABLE, 30)).toBeDefined();
    expect(s.fib.status("100.64.0.0/16")[0]).toMatchObject({ state: "pending", reason: "stale: kept until the start-up sync", nextHops: ["192.0.2.2"] });
    return s;
  }

  function expectCleaned(s: Setup): void {
    expect(s.k.list({ protocol: BGP }).map((r) => r.prefix).sort()).toEqual(["198.51.100.0/24", "203.0.113.0/24"]);
    expect(gateways(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.3"]);
    expect(s.fib.status().map((x) => x.prefix)).toEqual(["198.51.100.0/24", "203.0.113.0/24"]);
  }

  test("existing routes are kept until allSourcesSynced(), then the stale ones are removed", async () => {
    const s = await boot();
    // A withdrawal during start-up of a prefix we had at start: kept too.
    s.set("203.0.113.0/24");
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toBeDefined();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    s.clock.advance(59_000);
    await s.fib.whenIdle();
    expect(s.k.get("100.64.0.0/16")).toBeDefined();
    expect(s.fib.isSynced).toBe(false);
    s.fib.allSourcesSynced();
    await s.fib.whenIdle();
    expectCleaned(s);
    expect(s.logs.some((l) => l.msg.includes("removing 2 stale routes"))).toBe(true);
  });

  test("the start-up deadline removes stale routes", async () => {
    const s = await boot({ startupDeadlineMs: 10_000 });
    s.clock.advance(9_999);
    await s.fib.whenIdle();
    expect(s.k.get("100.64.0.0/16")).toBeDefined();
    s.clock.advance(1);
    await s.fib.whenIdle();
    expectCleaned(s);
  });

  test("End-of-RIB from every expected source completes the start-up", async () => {
    const s = await boot();
    s.fib.expectSources(["192.0.2.2", "192.0.2.3"]);
    s.fib.endOfRib("192.0.2.2");
    await s.fib.whenIdle();
    expect(s.k.get("100.64.0.0/16")).toBeDefined();
    s.fib.endOfRib("192.0.2.3");
    await s.fib.whenIdle();
    expectCleaned(s);
  });

  test("prefixes new in this run are removed on withdraw even before the sync", async () => {
    const s = await boot();
    s.set(rt("192.168.0.0/16", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.get("192.168.0.0/16")).toBeDefined();
    s.set("192.168.0.0/16");
    await s.fib.whenIdle();
    expect(s.k.get("192.168.0.0/16")).toBeUndefined();
  });

  test("changes before start() completes are applied after the initial dump", async () => {
    const s = setup({}, prepare);
    s.set(rt("192.168.0.0/16", "192.0.2.2"));
    expect(s.k.applyCalls).toBe(0);
    await s.fib.start();
    await s.fib.whenIdle();
    expect(s.k.get("192.168.0.0/16")?.protocol).toBe(BGP);
  });

  test("stop() removes our routes, and only ours", async () => {
    const s = await boot();
    s.k.ipRouteAdd(ours("192.168.0.0/16", ["192.0.2.9"], 20, 4));
    await s.fib.stop();
    expect(s.k.list({ protocol: BGP })).toEqual([]);
    expect(s.k.get("192.168.0.0/16")?.protocol).toBe(4);
    expect(s.k.maxInFlight).toBeLessThanOrEqual(2);
    // Nothing happens after stop.
    s.set(rt("10.0.0.0/8", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.get("10.0.0.0/8")).toBeUndefined();
  });

  test("stop() with retainOnExit leaves the routes", async () => {
    const s = await boot({ retainOnExit: true });
    const before = s.k.list({ protocol: BGP }).length;
    await s.fib.stop();
    expect(s.k.list({ protocol: BGP }).length).toBe(before);
    expect(s.logs.some((l) => l.msg.includes("retained"))).toBe(true);
  });

  test("start() rejects when the dump fails and changes nothing", async () => {
    const s = setup();
    s.k.dumpRoutes = async () => {
      throw new Error("EPERM");
    };
    await expect(s.fib.start()).rejects.toThrow("EPERM");
    expect(s.k.applyCalls).toBe(0);
  });
});

describe("fib: repair and resync", () => {
  test("a route of ours deleted by someone else is re-installed", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.k.ipRouteDel("203.0.113.0/24", TABLE, 20);
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
  });

  test("a route of ours changed by someone else is replaced with the desired one", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.k.ipRouteReplace(ours("203.0.113.0/24", ["198.18.0.5"]));
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
  });

  test("a route of ours we do not want, added by someone else after the sync, is removed", async () => {
    const s = await started();
    s.fib.allSourcesSynced();
    await s.fib.whenIdle();
    s.k.ipRouteAdd(ours("10.10.0.0/16", ["192.0.2.9"]));
    await s.fib.whenIdle();
    expect(s.k.get("10.10.0.0/16")).toBeUndefined();
  });

  test("overrun: lost events are recovered by a dump and compare", async () => {
    const s = await started();
    s.fib.allSourcesSynced();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    s.set(rt("198.51.100.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    const dumps = s.k.dumpCalls;
    s.k.overrun(() => {
      s.k.ipRouteDel("203.0.113.0/24", TABLE, 20); // ours gone
      s.k.ipRouteReplace(ours("198.51.100.0/24", ["198.18.0.5"])); // ours changed
      s.k.ipRouteAdd(ours("10.10.0.0/16", ["192.0.2.9"])); // stale of ours
      s.k.ipRouteAdd(ours("192.168.0.0/16", ["192.0.2.9"], 20, 4)); // foreign at our key
    });
    s.set(rt("192.168.0.0/16", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.dumpCalls).toBeGreaterThan(dumps);
    expect(s.fib.counters.overruns).toBe(1);
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
    expect(gateways(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2"]);
    expect(s.k.get("10.10.0.0/16")).toBeUndefined();
    expect(s.k.get("192.168.0.0/16")?.protocol).toBe(4);
    expect(s.fib.status("192.168.0.0/16")[0]!.state).toBe("conflict");
  });

  test("the periodic compare repairs changes no event told about", async () => {
    const s = await started({ periodicCompareMs: 60_000 });
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.k.silently(() => s.k.ipRouteDel("203.0.113.0/24", TABLE, 20));
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    s.clock.advance(60_000);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
    expect(s.fib.counters.resyncs).toBe(2);
    // Re-armed.
    expect(s.clock.pendingDelays()).toContain(60_000);
    await s.fib.stop();
  });
});

/** After the start-up sync: 203.0.113.0/24 over two gateways (multipath) and 198.51.100.0/24 over one, applied. */
async function installPair(s: Awaited<ReturnType<typeof started>>): Promise<void> {
  s.fib.allSourcesSynced();
  const a = rt("203.0.113.0/24", "192.0.2.2");
  const b = rt("203.0.113.0/24", "192.0.2.3");
  s.set(a, [a, b]);
  s.set(rt("198.51.100.0/24", "192.0.2.2"));
  await s.fib.whenIdle();
}

describe("fib: kernel event timing", () => {
  test("events arriving after apply() resolved: same end state", async () => {
    const s = await started();
    s.k.asyncEvents = true;
    await installPair(s);
    await new Promise((r) => setImmediate(r));
    await s.fib.whenIdle();
    s.set(rt("203.0.113.0/24", "192.0.2.4"));
    s.set("198.51.100.0/24");
    s.k.ipRouteDel("203.0.113.0/24", TABLE, 20);
    for (let i = 0; i < 5; i++) {
      await s.fib.whenIdle();
      await new Promise((r) => setImmediate(r));
    }
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.4"]);
    expect(s.k.get("198.51.100.0/24")).toBeUndefined();
    expect(s.fib.counts()).toMatchObject({ installed: 1, total: 1 });
  });

  test("a kernel that reports back a different route: no replace loop", async () => {
    const s = await started();
    s.k.asyncEvents = true;
    // As a kernel announcing a multipath route one next hop at a time would.
    s.k.mangleEvents = (e) => (e.type === "route-added" && e.route.nextHops.length > 1 ? { ...e, route: { ...e.route, nextHops: e.route.nextHops.slice(0, 1) } } : e);
    const a = rt("203.0.113.0/24", "192.0.2.2");
    const b = rt("203.0.113.0/24", "192.0.2.3");
    s.set(a, [a, b]);
    for (let i = 0; i < 20; i++) {
      await s.fib.whenIdle();
      await new Promise((r) => setImmediate(r));
    }
    const replaces = s.k.opLog.filter((o) => o.prefix === "203.0.113.0/24").length;
    expect(replaces).toBeLessThanOrEqual(3);
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2", "192.0.2.3"]);
    expect(s.logs.filter((l) => l.msg.includes("reports a different route")).length).toBe(1);
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "pending", reason: "the kernel reports a different route" });
    // The full compare (a dump) sees the real route.
    await s.fib.resync();
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
  });
});

describe("fib: errors", () => {
  test("unreachable next hop: failed with the kernel's reason, logged once, other routes unaffected, installed once reachable", async () => {
    const s = await started({ periodicCompareMs: 60_000 });
    s.k.strictGateways = true;
    s.set(rt("203.0.113.0/24", "10.9.9.9"));
    s.set(rt("198.51.100.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.get("198.51.100.0/24")).toBeDefined();
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    expect(s.fib.status("203.0.113.0/24")[0]).toEqual({
      prefix: "203.0.113.0/24",
      state: "failed",
      nextHops: ["10.9.9.9"],
      reason: "ENETUNREACH: Nexthop has invalid gateway",
    });
    const failLogs = () => s.logs.filter((l) => l.msg.includes("203.0.113.0/24") && l.msg.includes("ENETUNREACH"));
    expect(failLogs().length).toBe(1);
    // Not retried on unrelated activity.
    const attempts = () => s.k.opLog.filter((o) => o.prefix === "203.0.113.0/24").length;
    s.set(rt("192.168.0.0/16", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(attempts()).toBe(1);
    // Retried on a link event and on the periodic compare: still failing, not logged again.
    s.k.setLink({ index: 4, name: "eth2", up: false });
    await s.fib.whenIdle();
    s.clock.advance(60_000);
    await s.fib.whenIdle();
    expect(attempts()).toBe(3);
    expect(failLogs().length).toBe(1);
    expect(s.fib.counts().failed).toBe(1);
    // An address makes it reachable.
    s.k.setLink({ index: 4, name: "eth2", up: true });
    s.k.addAddress({ family: 4, ifindex: 4, address: "10.9.9.1", prefixLength: 24 });
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["10.9.9.9"]);
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
    expect(s.logs.some((l) => l.level === "info" && l.msg.includes("203.0.113.0/24 installed (was failing"))).toBe(true);
    await s.fib.stop();
  });

  test("an injected EHOSTUNREACH is reported and retried when a link changes", async () => {
    const s = await started();
    s.k.failGateway("192.0.2.66", "EHOSTUNREACH");
    s.set(rt("203.0.113.0/24", "192.0.2.66"));
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "failed", reason: "EHOSTUNREACH: Nexthop has invalid gateway" });
    s.k.reachable("192.0.2.66");
    s.k.setLink({ index: 3, name: "eth1", up: true });
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
  });

  test("a new next hop for a failed route is tried at once", async () => {
    const s = await started();
    s.k.failGateway("192.0.2.66");
    s.set(rt("203.0.113.0/24", "192.0.2.66"));
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("failed");
    s.set(rt("203.0.113.0/24", "192.0.2.67"));
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
    expect(s.fib.counts().failed).toBe(0);
  });

  test("a failed replace leaves the route that was there; failures of a burst are summarised in the log", async () => {
    const s = await started();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    s.k.failGateway("192.0.2.66");
    s.set(rt("203.0.113.0/24", "192.0.2.66"));
    for (let i = 0; i < 50; i++) s.set(rt(`100.64.${i}.0/24`, "192.0.2.66"));
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
    expect(s.fib.status("203.0.113.0/24")[0]).toMatchObject({ state: "failed", nextHops: ["192.0.2.66"] });
    expect(s.fib.counts().failed).toBe(51);
    const warns = s.logs.filter((l) => l.level === "warn");
    expect(warns.length).toBe(21);
    expect(warns[20]!.msg).toContain("31 more routes not installed");
  });

  test("apply() rejecting: routes marked failed and retried after a second", async () => {
    const s = await started();
    s.k.applyReject = new Error("socket closed");
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("failed");
    s.k.applyReject = null;
    s.clock.advance(1000);
    await s.fib.whenIdle();
    expect(s.fib.status("203.0.113.0/24")[0]!.state).toBe("installed");
  });
});

describe("fib: batching", () => {
  test("a 100k-prefix burst: batches of at most maxBatch (cut short only by the time slice), each op once, at most two in flight", async () => {
    const s = await started({ maxBatch: 1000 });
    const N = 100_000;
    for (let i = 0; i < N; i++) {
      const p = `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`;
      s.set(rt(p, "192.0.2.2"));
    }
    expect(s.k.applyCalls).toBe(0); // scheduled on the next tick
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).length).toBe(N);
    expect(s.k.opsApplied).toBe(N);
    expect(s.k.applyCalls).toBeGreaterThanOrEqual(Math.ceil(N / 1000));
    // Batches are cut by maxBatch or by the slice's time budget, never one route at a time.
    expect(N / s.k.applyCalls).toBeGreaterThan(100);
    expect(Math.max(...s.k.batchSizes)).toBeLessThanOrEqual(1000);
    expect(s.k.maxInFlight).toBeLessThanOrEqual(2);
    expect(s.fib.counts().installed).toBe(N);
    // Withdraw everything: another ~100 calls.
    const calls = s.k.applyCalls;
    for (let i = 0; i < N; i++) s.set(`10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`);
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).length).toBe(0);
    expect(s.k.opsApplied).toBe(2 * N);
    expect(N / (s.k.applyCalls - calls)).toBeGreaterThan(100);
    expect(s.k.maxInFlight).toBeLessThanOrEqual(2);
    expect(s.fib.status()).toEqual([]);
  }, 60_000);
});

describe("fib: wiring", () => {
  test("driven by a Loc-RIB subscription; interfaces() reports links and addresses", async () => {
    const s = await started();
    const rib = new LocRib({ multipath: { enabled: true, maxPaths: 4 } });
    rib.subscribe((ev) => s.fib.onLocRibChange(ev));
    const a = rt("203.0.113.0/24", "192.0.2.2");
    const b = rt("203.0.113.0/24", "192.0.2.3");
    rib.upsert(a);
    rib.upsert(b);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2", "192.0.2.3"]);
    rib.removeSource(a.source.id);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.3"]);
    rib.removeSource(b.source.id);
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    const ifs = s.fib.interfaces();
    expect(ifs.links.map((l) => l.name)).toEqual(["lo", "eth0", "eth1"]);
    expect(ifs.addresses.some((x) => x.address === "2001:db8:1::1" && x.ifindex === 2)).toBe(true);
  });
});

/** Kernel next hops as "gateway%ifindex", sorted. */
function hops(r: KernelRoute | undefined): string[] {
  return (r?.nextHops ?? []).map((h) => `${h.gateway ?? ""}%${h.ifindex ?? "-"}`).sort();
}

function withVia(r: Route, ...via: [string, number?][]): Route {
  r.via = via.map(([a, ifindex]) => (ifindex === undefined ? { addr: parseAddr(a)!.addr } : { addr: parseAddr(a)!.addr, ifindex }));
  return r;
}

describe("fib: recursive next hops (RFC 4271 §5.1.3)", () => {
  test("a route's immediate hops (via) are installed instead of its next hop, with their interface; without via the next hop is", async () => {
    const s = await started();
    s.k.strictGateways = true;
    s.set(withVia(rt("198.51.100.0/24", "203.0.113.5"), ["192.0.2.2", 2]));
    s.set(rt("198.51.100.128/25", "203.0.113.5")); // no resolution info: as before, and refused
    await s.fib.whenIdle();
    expect(hops(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2%2"]);
    expect(s.fib.status("198.51.100.0/24")).toEqual([{ prefix: "198.51.100.0/24", state: "installed", nextHops: ["192.0.2.2"] }]);
    expect(s.fib.status("198.51.100.128/25")[0]).toMatchObject({ state: "failed", nextHops: ["203.0.113.5"], reason: "ENETUNREACH: Nexthop has invalid gateway" });
    // A link-local IGP gateway with its interface (IPv6), and via6 for an IPv4 prefix.
    s.set(withVia(rt("2001:db8:99::/48", "2001:db8:77::1"), ["fe80::2", 3]));
    s.set(withVia(rt("198.18.7.0/24", "2001:db8:77::1"), ["fe80::2", 3]));
    await s.fib.whenIdle();
    expect(s.k.get("2001:db8:99::/48")!.nextHops).toEqual([{ gateway: "fe80::2", ifindex: 3 }]);
    expect(s.k.get("198.18.7.0/24")!.nextHops).toEqual([{ gateway: "fe80::2", ifindex: 3, via6: true }]);
    expect(s.fib.status("2001:db8:99::/48")[0]!.nextHops).toEqual(["fe80::2%eth1"]);
    // A link-local gateway without an interface cannot be used.
    s.set(withVia(rt("2001:db8:98::/48", "2001:db8:77::1"), ["fe80::2"]));
    await s.fib.whenIdle();
    expect(s.fib.status("2001:db8:98::/48")[0]).toMatchObject({ state: "failed", reason: "link-local gateway fe80::2 without an interface" });
  });

  test("ECMP: the union of the members' immediate hops, deduplicated; a link-local next hop with its interface keeps it; a local next hop stays local", async () => {
    const s = await started();
    const a = withVia(rt("198.51.100.0/24", "203.0.113.1"), ["192.0.2.2", 2]);
    const b = withVia(rt("198.51.100.0/24", "203.0.113.2", { src: "192.0.2.20" }), ["192.0.2.2", 2], ["198.18.0.2", 3]);
    const c = rt("198.51.100.0/24", "192.0.2.9", { src: "192.0.2.30" }); // on-link
    s.set(a, [a, b, c]);
    // The global of a 32-byte next hop is on eth0's subnet: the link-local with eth0, whatever via says.
    s.set(withVia(rt("2001:db8:50::/48", "2001:db8:1::2|fe80::2"), ["2001:db8:1::99", 2]));
    // Our own address as next hop: not installed, via or not.
    s.set(withVia(rt("198.51.100.0/25", "192.0.2.1"), ["192.0.2.2", 2]));
    await s.fib.whenIdle();
    expect(hops(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2%2", "192.0.2.9%2", "198.18.0.2%3"]); // the kernel fills in the on-link hop's interface
    expect(hops(s.k.get("2001:db8:50::/48"))).toEqual(["fe80::2%2"]);
    expect(s.fib.status("198.51.100.0/25")[0]).toMatchObject({ state: "excluded", reason: "next hop 192.0.2.1 is a local address" });
  });
});

interface Tracked {
  s: Setup;
  rib: LocRib;
  tracker: NextHopTracker;
  /** Selection events (a plain subscriber: no forwarding events). */
  selections: LocRibEvent[];
  settle(): Promise<void>;
}

/** FIB + Loc-RIB + next-hop tracker over one fake kernel that refuses gateways that are not on-link, wired as the daemon does. */
async function tracked(): Promise<Tracked> {
  const s = await started({}, (k) => (k.strictGateways = true));
  const rib = new LocRib({ multipath: { enabled: true, maxPaths: 4 } });
  const tracker = new NextHopTracker(kernelResolver(s.k, { table: TABLE, protocol: BGP }), { clock: s.clock });
  tracker.attach(rib);
  rib.subscribe((ev) => s.fib.onLocRibChange(ev), { forwarding: true });
  const selections: LocRibEvent[] = [];
  rib.subscribe((ev) => selections.push(ev));
  return {
    s,
    rib,
    tracker,
    selections,
    // Our installs come back as kernel events the tracker re-resolves on.
    settle: () => settleTracker(tracker, s.clock, () => s.fib.whenIdle(), 300),
  };
}

/** An IGP (static) route in the main table. */
function igp(prefix: string, gateway: string, metric = 10): KernelRoute {
  return { family: 4, prefix, table: TABLE, protocol: 4, metric, nextHops: [{ gateway }], type: 1 };
}

describe("fib with next-hop tracking: immediate hops in the kernel", () => {
  test("an on-link next hop is installed as it is; one behind a gateway route via that gateway", async () => {
    const t = await tracked();
    expect(t.s.k.ipRouteAdd(igp("203.0.113.0/24", "192.0.2.2"))).toBeNull();
    const onLink = rt("198.18.1.0/24", "192.0.2.7");
    const behind = rt("198.51.100.0/24", "203.0.113.5", { src: "192.0.2.20" });
    t.rib.upsert(onLink);
    t.rib.upsert(behind);
    await t.settle();
    expect(hops(t.s.k.get("198.18.1.0/24"))).toEqual(["192.0.2.7%2"]);
    expect(onLink.via).toBeUndefined();
    expect(hops(t.s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2%2"]);
    expect(t.s.fib.status("198.51.100.0/24")).toEqual([{ prefix: "198.51.100.0/24", state: "installed", nextHops: ["192.0.2.2"] }]);
    expect(t.s.k.opLog.filter((o) => o.error !== null)).toEqual([]);
  });

  test("recursive: a next hop resolved through another BGP route is installed via that route's immediate hop", async () => {
    const t = await tracked();
    expect(t.s.k.ipRouteAdd(igp("192.0.2.64/26", "192.0.2.2"))).toBeNull();
    const base = rt("203.0.113.0/24", "192.0.2.70"); // behind 192.0.2.2
    const dep = rt("198.51.100.0/24", "203.0.113.9", { src: "192.0.2.20" }); // behind base
    t.rib.upsert(dep);
    t.rib.upsert(base);
    await t.settle();
    expect(hops(t.s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2%2"]);
    expect(hops(t.s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2%2"]);
    // The IGP path under base moves: both kernel routes follow, no selection changes.
    const n = t.selections.length;
    expect(t.s.k.ipRouteReplace(igp("192.0.2.64/26", "198.18.0.2"))).toBeNull();
    await t.settle();
    expect(hops(t.s.k.get("203.0.113.0/24"))).toEqual(["198.18.0.2%3"]);
    expect(hops(t.s.k.get("198.51.100.0/24"))).toEqual(["198.18.0.2%3"]);
    expect(t.selections.length).toBe(n);
  });

  test("ECMP: the multipath set is installed as the union of the members' immediate hops", async () => {
    const t = await tracked();
    t.s.k.ipRouteAdd(igp("203.0.113.1/32", "192.0.2.2"));
    t.s.k.ipRouteAdd(igp("203.0.113.2/32", "198.18.0.2"));
    t.s.k.ipRouteAdd(igp("203.0.113.3/32", "192.0.2.2"));
    const rs = ["203.0.113.1", "203.0.113.2", "203.0.113.3"].map((nh, i) => rt("198.51.100.0/24", nh, { src: `192.0.2.${20 + i}` }));
    for (const r of rs) t.rib.upsert(r);
    await t.settle();
    expect(t.rib.get(rs[0]!.key)!.multipath.length).toBe(3);
    expect(hops(t.s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2%2", "198.18.0.2%3"]);
  });

  test("the IGP route's gateway changes: the kernel route moves without a best-route change; unreachable: removed", async () => {
    const t = await tracked();
    t.s.k.ipRouteAdd(igp("203.0.113.0/24", "192.0.2.2"));
    const r = rt("198.51.100.0/24", "203.0.113.5");
    t.rib.upsert(r);
    await t.settle();
    expect(hops(t.s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2%2"]);
    const n = t.selections.length;
    const ops = t.s.k.opLog.length;
    expect(t.s.k.ipRouteReplace(igp("203.0.113.0/24", "198.18.0.2"))).toBeNull();
    await t.settle();
    expect(hops(t.s.k.get("198.51.100.0/24"))).toEqual(["198.18.0.2%3"]);
    expect(t.s.k.get("198.51.100.0/24")!.protocol).toBe(BGP);
    expect(t.rib.best(r.key)).toBe(r);
    expect(t.selections.length).toBe(n);
    expect(t.s.k.opLog.slice(ops)).toEqual([{ op: "replace", prefix: "198.51.100.0/24", error: null }]);
    // The IGP route goes: the next hop is unreachable, our route leaves the kernel.
    expect(t.s.k.ipRouteDel("203.0.113.0/24", TABLE, 10)).toBeNull();
    await t.settle();
    expect(r.reachable).toBe(false);
    expect(t.s.k.get("198.51.100.0/24")).toBeUndefined();
    expect(t.s.fib.status()).toEqual([]);
  });
});


const v4 = (i: number) => `10.${(i >> 16) & 0xff}.${(i >> 8) & 0xff}.${i & 0xff}/32`;

/** A started, synced FIB (batches of 1000) with n /32 routes of ours installed. */
async function installedTable(n: number): Promise<Setup> {
  const s = await started({ maxBatch: 1000 });
  s.fib.allSourcesSynced();
  for (let i = 0; i < n; i++) s.set(rt(v4(i), "192.0.2.2"));
  await s.fib.whenIdle();
  return s;
}

describe("fib: time slices (the event loop keeps turning, nothing is lost or reordered)", () => {
  test("with no batch cap, a 100k burst is still built a slice at a time: several batches, the loop turning between them, each route sent once", async () => {
    const s = await started({ maxBatch: 1_000_000 });
    s.fib.allSourcesSynced();
    await s.fib.whenIdle();
    const N = 100_000;
    for (let i = 0; i < N; i++) s.set(rt(v4(i), "192.0.2.2"));
    const turns = turnCounter();
    await s.fib.whenIdle();
    const n = turns.stop();
    // Reconciling 100k prefixes takes far longer than one slice: the time budget, not maxBatch, cut the batches.
    expect(s.k.applyCalls).toBeGreaterThan(1);
    expect(n).toBeGreaterThan(s.k.applyCalls);
    expect(s.k.opsApplied).toBe(N);
    expect(s.k.list({ protocol: BGP }).length).toBe(N);
    expect(s.fib.counts()).toMatchObject({ installed: N, total: N });
  }, 60_000);

  test("changes made while batches are in flight end in the last state: withdraw after add, change after change, add-then-withdraw never sent", async () => {
    const s = await started({ maxBatch: 500 });
    s.k.applyDelayTurns = 4; // a slow kernel: the next batch is built while one is in flight
    s.fib.allSourcesSynced();
    const N = 20_000;
    for (let i = 0; i < N; i++) s.set(rt(v4(i), "192.0.2.2"));
    // Let the first batches go out, then change everything again while more are queued and one is in flight.
    for (let t = 0; t < 3; t++) await new Promise((r) => setImmediate(r));
    expect(s.k.applyCalls).toBeGreaterThan(0);
    expect(s.k.opsApplied).toBeLessThan(N);
    for (let i = 0; i < N; i++) {
      if (i % 2 === 0) s.set(v4(i));
      else if (i % 3 === 0) s.set(rt(v4(i), "192.0.2.3"));
    }
    s.set(rt("198.51.100.0/24", "192.0.2.2"));
    s.set("198.51.100.0/24");
    await s.fib.whenIdle();
    const want = new Map<string, string>();
    for (let i = 1; i < N; i += 2) want.set(v4(i), i % 3 === 0 ? "192.0.2.3" : "192.0.2.2");
    const have = s.k.list({ protocol: BGP });
    expect(have.length).toBe(want.size);
    for (const r of have) expect([r.prefix, gateways(r)]).toEqual([r.prefix, [want.get(r.prefix)!]]);
    expect(s.k.opLog.some((o) => o.prefix === "198.51.100.0/24")).toBe(false);
    expect(s.k.maxInFlight).toBe(2);
    expect(s.fib.counts()).toMatchObject({ installed: want.size, pending: 0, total: want.size });
  }, 60_000);

  test("a link event retries 100k failed routes in the batch builder's slices, not in the event's own turn: each retried once, installed once their gateway is usable", async () => {
    const s = await started({ maxBatch: 1000 });
    s.fib.allSourcesSynced();
    s.k.failGateway("192.0.2.66");
    const N = 100_000;
    for (let i = 0; i < N; i++) s.set(rt(v4(i), "192.0.2.66"));
    await s.fib.whenIdle();
    expect(s.fib.counts().failed).toBe(N);
    const tried = s.k.opLog.length;
    s.k.reachable("192.0.2.66");
    s.k.setLink({ index: 3, name: "eth1", up: true });
    // The event itself queued nothing route by route (counted, not timed): the failed routes are walked later, in slices.
    const queued = s.fib as unknown as { dirty: { length: number } };
    expect(queued.dirty.length).toBe(0);
    // A second trigger while the walk is under way restarts it; nothing is tried twice.
    await new Promise((r) => setImmediate(r));
    s.k.setLink({ index: 3, name: "eth1", up: true });
    const turns = turnCounter();
    await s.fib.whenIdle();
    expect(turns.stop()).toBeGreaterThan(2);
    expect(s.k.opLog.length - tried).toBe(N);
    expect(s.fib.counts()).toMatchObject({ installed: N, failed: 0, total: N });
    expect(s.k.list({ protocol: BGP }).length).toBe(N);
  }, 60_000);

  test("a big start-up table of ours is learned across turns, kept until the sync, then the stale routes go in slices and are counted once", async () => {
    const N = 30_000;
    const s = setup({ maxBatch: 1000 }, (k) => {
      for (let i = 0; i < N; i++) k.ipRouteAdd(ours(v4(i), ["192.0.2.2"]));
    });
    const turns = turnCounter();
    await s.fib.start();
    expect(turns.stop()).toBeGreaterThan(1);
    // Half of them are still wanted.
    for (let i = 0; i < N; i += 2) s.set(rt(v4(i), "192.0.2.2"));
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).length).toBe(N);
    expect(s.k.opsApplied).toBe(0); // the wanted ones are there already; the others are kept
    s.fib.allSourcesSynced();
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP }).length).toBe(N / 2);
    expect(s.k.opsApplied).toBe(N / 2);
    expect(s.k.applyCalls).toBeGreaterThanOrEqual(N / 2 / 1000);
    expect(s.logs.filter((l) => l.msg.includes("start-up sync complete")).map((l) => l.msg)).toEqual([
      `fib: start-up sync complete (all sources synced): removing ${N / 2} stale routes`,
    ]);
    expect(s.fib.counts()).toMatchObject({ installed: N / 2, total: N / 2 });
  }, 60_000);

  test("a full compare of a big table (overrun) is learned across turns; stop() removes everything in batches", async () => {
    const N = 30_000;
    const s = await installedTable(N);
    const applied = s.k.opsApplied;
    // Lose events: someone removes a few of ours meanwhile.
    s.k.dropEvents = true;
    for (let i = 0; i < 10; i++) s.k.ipRouteDel(v4(i), TABLE, 20);
    s.k.dropEvents = false;
    const turns = turnCounter();
    s.k.overrun();
    await s.fib.whenIdle();
    expect(turns.stop()).toBeGreaterThan(1);
    expect(s.k.opsApplied - applied).toBe(10); // only the missing ones are sent again
    expect(s.k.list({ protocol: BGP }).length).toBe(N);
    const stopTurns = turnCounter();
    await s.fib.stop();
    expect(stopTurns.stop()).toBeGreaterThanOrEqual(N / 1000);
    expect(s.k.list({ protocol: BGP })).toEqual([]);
  }, 60_000);
});

describe("fib: pending prefixes (no entry until the queue reaches them)", () => {
  test("a table arriving faster than the kernel takes it waits in the queue without an entry per prefix, then is installed in order", async () => {
    // A kernel that answers only when told: the FIB sends its first batches and waits.
    const gates: (() => void)[] = [];
    let applied = 0;
    const kernel: Kernel = {
      ...keepsNothing(() => {}),
      apply: (ops) =>
        new Promise((resolve) =>
          gates.push(() => {
            applied += ops.length;
            resolve(ops.map(() => null));
          }),
        ),
    };
    const fib = await syncedFib(kernel);
    const N = 20_000;
    Bun.gc(true);
    const before = heapStats().objectTypeCounts;
    feedOneUpdate(fib, N);
    (() => {
      const src = source("192.0.2.2");
      const attrs = emptyAttributes();
      const nh = parseAddr("192.0.2.2")!.addr;
      // Two of them withdrawn and one changed while pending.
      fib.setDesired((0x0a000000 + 1 * 256) * 64 + 24, null);
      fib.setDesired((0x0a000000 + 19_999 * 256) * 64 + 24, null);
      const other = makeRoute((0x0a000000 + 2 * 256) * 64 + 24, 0, src, attrs, parseAddr("192.0.2.3")!.addr, 5);
      fib.setDesired(other.key, other, []);
      // A new prefix takes a withdrawn one's table position, queued twice then: installed once.
      const late = makeRoute((0xcb007100 + 0) * 64 + 24, 0, src, attrs, nh, 5);
      fib.setDesired(late.key, late, []);
    })();
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    Bun.gc(true);
    const waiting = heapStats().objectTypeCounts;
    // The batches in flight (two of 500) have entries, operations and kernel routes; the rest of the table waits as queued positions.
    expect((waiting.Object ?? 0) - (before.Object ?? 0)).toBeLessThan(N / 4);
    expect(gates.length).toBe(2);
    expect(fib.counts()).toMatchObject({ pending: N - 1, total: N - 1 });
    for (let i = 0; i < 1000 && (gates.length > 0 || applied < N - 1); i++) {
      for (const g of gates.splice(0)) g();
      await new Promise((r) => setImmediate(r));
    }
    await fib.whenIdle();
    expect(applied).toBe(N - 1);
    expect(fib.counts()).toMatchObject({ installed: N - 1, total: N - 1 });
    expect(fib.status("203.0.113.0/24")).toEqual([{ prefix: "203.0.113.0/24", state: "installed", nextHops: ["192.0.2.2"] }]);
    expect(fib.status("10.0.1.0/24")).toEqual([]);
    expect(fib.status("10.0.2.0/24")).toEqual([{ prefix: "10.0.2.0/24", state: "installed", nextHops: ["192.0.2.3"] }]);
    const stopping = fib.stop({ retain: true });
    await stopping;
  }, 60_000);
});

describe("fib: pending prefixes, met before the queue reaches them", () => {
  test("a kernel event or a multipath set for a pending prefix gives it its entry; its queued position is then passed over", async () => {
    const s = await started();
    s.fib.allSourcesSynced();
    await s.fib.whenIdle();
    s.set(rt("203.0.113.0/24", "192.0.2.2"));
    s.set(rt("198.51.100.0/24", "192.0.2.2"));
    // Both pending. Someone installs a route of our protocol at the first one's key; the second gets a multipath set.
    s.k.ipRouteAdd(ours("203.0.113.0/24", ["198.18.0.9"]));
    const a = rt("198.51.100.0/24", "192.0.2.2");
    const b = rt("198.51.100.0/24", "192.0.2.3", { src: "192.0.2.3" });
    s.fib.setDesired(a.key, a, [a, b]);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2"]);
    expect(gateways(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2", "192.0.2.3"]);
    expect(s.fib.counts()).toMatchObject({ installed: 2, total: 2 });
  });
});

describe("fib: settled prefixes (no entry of their own)", () => {
  test("with multipath, a prefix whose routes share their heads with the prefix before it (the same UPDATE from each peer) keeps no heap cell of its own either", async () => {
    let applied = 0;
    const fib = await syncedFib(keepsNothing((n) => (applied += n)));
    const attrs = emptyAttributes();
    const a = source("192.0.2.2");
    const b = source("192.0.2.3");
    const nhA = parseAddr("192.0.2.2")!.addr;
    const nhB = parseAddr("192.0.2.3")!.addr;
    const N = 20_000;
    Bun.gc(true);
    const before = heapStats().objectTypeCounts;
    (() => {
      // Each peer's routes made in a row, as an UPDATE's are (they share a head); then the selections.
      const keys = Array.from({ length: N }, (_, i) => (0x0a000000 + i * 256) * 64 + 24);
      const ras = keys.map((k) => makeRoute(k, 0, a, attrs, nhA, 5));
      const rbs = keys.map((k) => makeRoute(k, 0, b, attrs, nhB, 5));
      for (let i = 0; i < N; i++) fib.setDesired(keys[i]!, ras[i]!, [ras[i]!, rbs[i]!]);
    })();
    await fib.whenIdle();
    expect(applied).toBe(N);
    const grew = await grownSince(before);
    // Before: an entry and a list of the multipath set's heads per prefix.
    expect(grew("Object")).toBeLessThan(N / 10);
    expect(grew("Array")).toBeLessThan(N / 10);
    expect(fib.status("10.0.5.0/24")).toEqual([{ prefix: "10.0.5.0/24", state: "installed", nextHops: ["192.0.2.2", "192.0.2.3"] }]);
    await fib.stop({ retain: true });
  });

  test("a full scan over a settled table passes them a few per step, however many there are", async () => {
    const N = 30_000;
    const s = await installedTable(N);
    const applied = s.k.opsApplied;
    // Every step of the batch builder is given a deadline already past: it may look at 32 prefixes, then yield.
    const f = s.fib as unknown as { step(deadline: number): boolean };
    const step = f.step.bind(f);
    let steps = 0;
    f.step = () => {
      steps++;
      return step(performance.now() - 1);
    };
    s.k.overrun(); // a full compare: the dump confirms every route, then the scan passes every prefix
    await s.fib.whenIdle();
    expect(s.k.opsApplied).toBe(applied);
    expect(steps).toBeGreaterThanOrEqual(N / 32);
    expect(s.fib.counts()).toMatchObject({ installed: N, total: N });
  }, 60_000);

  test("counting prefixes per state (the metrics) is a walk that yields every so many prefixes", async () => {
    const s = await started();
    s.fib.allSourcesSynced();
    for (let i = 0; i < 100; i++) s.set(rt(v4(i), "192.0.2.2"));
    s.set(rt("192.0.2.0/24", "192.0.2.2")); // connected: excluded
    await s.fib.whenIdle();
    const c = { installed: 0, pending: 0, failed: 0, conflict: 0, excluded: 0, total: 0 };
    let yields = 0;
    for (const _ of s.fib.tally(c, 10)) yields++;
    expect(yields).toBe(10);
    expect(c).toEqual({ installed: 100, pending: 0, failed: 0, conflict: 0, excluded: 1, total: 101 });
    expect(s.fib.counts()).toEqual(c);
  });

  test("a settled prefix the kernel lost while events were lost is installed again by the full compare; a new address re-derives settled prefixes", async () => {
    const s = await started();
    s.fib.allSourcesSynced();
    for (let i = 0; i < 100; i++) s.set(rt(v4(i), "192.0.2.2"));
    await s.fib.whenIdle();
    const applied = s.k.opsApplied;
    s.k.dropEvents = true;
    s.k.ipRouteDel(v4(7), TABLE, 20);
    s.k.dropEvents = false;
    expect(s.fib.status(v4(7))[0]!.state).toBe("installed"); // not known yet
    await s.fib.resync();
    await s.fib.whenIdle();
    expect(s.k.opsApplied - applied).toBe(1);
    expect(gateways(s.k.get(v4(7)))).toEqual(["192.0.2.2"]);
    // The next hop becomes one of our addresses: no longer installed, every settled prefix is looked at again.
    s.k.addAddress({ family: 4, ifindex: 2, address: "192.0.2.2", prefixLength: 24 });
    await s.fib.whenIdle();
    expect(s.k.list({ protocol: BGP })).toEqual([]);
    expect(s.fib.status(v4(7))[0]).toMatchObject({ state: "excluded", reason: "next hop 192.0.2.2 is a local address" });
  });
});

describe("fib: a kernel that does not echo our own changes (RtNetlink's socket filter)", () => {
  test("installs, repairs a route someone else removed, and never loops", async () => {
    const s = await started();
    s.k.echoOwnChanges = false;
    await installPair(s);
    expect(gateways(s.k.get("203.0.113.0/24"))).toEqual(["192.0.2.2", "192.0.2.3"]);
    expect(s.fib.counts()).toMatchObject({ installed: 2, total: 2 });
    const ops = s.k.opsApplied;
    s.k.ipRouteDel("198.51.100.0/24", TABLE, 20);
    await s.fib.whenIdle();
    expect(gateways(s.k.get("198.51.100.0/24"))).toEqual(["192.0.2.2"]);
    expect(s.k.opsApplied - ops).toBe(1);
    s.set("203.0.113.0/24");
    await s.fib.whenIdle();
    expect(s.k.get("203.0.113.0/24")).toBeUndefined();
    expect(s.logs.some((l) => l.msg.includes("reports a different route"))).toBe(false);
  });
});
