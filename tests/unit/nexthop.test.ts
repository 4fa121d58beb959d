/**
 * Next-hop tracking (lib/rib/nexthop.ts) over a Loc-RIB, resolved through
 * the in-memory kernel (tests/support/fake-kernel.ts, `lookupRoute`) via the
 * kernel adapter (lib/fib/resolver.ts), with a ManualClock for the debounce
 * and the re-run slices. Covers: pending routes are not candidates; an
 * unresolvable next hop makes its routes ineligible and a kernel change
 * brings them back; the IGP metric decides between iBGP paths; a burst of
 * kernel changes is one re-lookup per tracked next hop and re-runs only the
 * affected prefixes; a next hop's first answer re-runs the routes that
 * waited for it without walking the Loc-RIB (a walk past the bound on
 * noted prefixes, and for any later change); blackhole/unreachable routes; local, "self",
 * link-local, IPv4-mapped and RFC 8950 next hops; recursion through another
 * BGP route (Loc-RIB, and our own kernel route), never through itself nor
 * mutually; big re-runs in slices; the immediate forwarding hops (`via`:
 * none on-link, the gateways of a gateway route, recursively those of the
 * route resolved through) and the forwarding events when only they change.
 */
import { describe, expect, test } from "bun:test";
import { type PathAttributes, emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { SEG } from "../../lib/bgp/types.ts";
import { formatAddr, parseAddr, parsePrefix } from "../../lib/core/addr.ts";
import { ManualClock } from "../../lib/core/clock.ts";
import { kernelResolver } from "../../lib/fib/resolver.ts";
import type { KernelRoute } from "../../lib/fib/types.ts";
import { ipv4ToNumber } from "../../lib/rib/decision.ts";
import { LocRib, type LocRibEvent } from "../../lib/rib/loc-rib.ts";
import { NextHopTracker, resolutionTarget } from "../../lib/rib/nexthop.ts";
import { type Route, type RouteSource, makeRoute, prefixKey } from "../../lib/rib/types.ts";
import { FakeKernel } from "../support/fake-kernel.ts";
import { settleTracker } from "../support/settle-tracker.ts";
import { formatRib } from "../../lib/api/format.ts";
import type { RibEntry } from "../../lib/api/types.ts";

const LOCAL_AS = 65000;
const OWN = { table: 254, protocol: 186 };

function ibgp(address: string): RouteSource {
  return { id: address, address, addressBytes: parseAddr(address)!.addr, asn: LOCAL_AS, routerId: ipv4ToNumber(address), ibgp: true, rrClient: false, local: false };
}
const LOCAL: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: LOCAL_AS, routerId: 0, ibgp: true, rrClient: false, local: true };

function attrs(): PathAttributes {
  const a = emptyAttributes();
  a.origin = 0;
  a.asPath = asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65010] }]);
  a.localPref = 100;
  return a;
}
const ATTRS = attrs();

function nh(text: string): Uint8Array {
  return parseAddr(text)!.addr;
}

function route(prefix: string, nextHop: string | Uint8Array, source = ibgp("192.0.2.10")): Route {
  return makeRoute(parsePrefix(prefix), 0, source, ATTRS, typeof nextHop === "string" ? nh(nextHop) : nextHop);
}

function kroute(prefix: string, p: Partial<KernelRoute> = {}): KernelRoute {
  return { family: prefix.includes(":") ? 6 : 4, prefix, table: 254, protocol: 4, metric: 0, nextHops: [{ gateway: "192.0.2.1" }], type: 1, ...p };
}

interface World {
  kernel: FakeKernel;
  rib: LocRib;
  tracker: NextHopTracker;
  clock: ManualClock;
  events: LocRibEvent[];
  settle(): Promise<void>;
  best(prefix: string): Route | null;
  /** The candidate as the Loc-RIB holds it now (it keeps a route's head, not the object given to it: next-hop changes show here). */
  cur(r: Route): Route;
  /** Whether `a` is the announcement `r` (source, attributes, arrival; whatever its next-hop state now). */
  same(a: Route | null, r: Route): boolean;
}

function world(opts: { sliceMs?: number; own?: boolean; pendingKeysMax?: number } = {}): World {
  const kernel = new FakeKernel();
  kernel.setLink({ index: 2, name: "eth0", up: true });
  kernel.addAddress({ family: 4, ifindex: 2, address: "192.0.2.100", prefixLength: 24 });
  kernel.addAddress({ family: 6, ifindex: 2, address: "2001:db8::100", prefixLength: 64 });
  const clock = new ManualClock(1_000);
  const rib = new LocRib({ multipath: { enabled: false, maxPaths: 1 } });
  const tracker = new NextHopTracker(kernelResolver(kernel, opts.own === false ? null : OWN), { clock, sliceMs: opts.sliceMs, pendingKeysMax: opts.pendingKeysMax });
  tracker.attach(rib);
  const events: LocRibEvent[] = [];
  rib.subscribe((e) => events.push(e));
  return {
    kernel,
    rib,
    tracker,
    clock,
    events,
    settle: () => settleTracker(tracker, clock),
    best(prefix: string) {
      return rib.best(prefixKey(parsePrefix(prefix)));
    },
    cur(r: Route) {
      return rib.candidate(r.source.id, r.key, r.pathId) ?? r;
    },
    same(a: Route | null, r: Route) {
      return a !== null && a.key === r.key && a.pathId === r.pathId && a.source === r.source && a.attrs === r.attrs && a.learnedAt === r.learnedAt;
    },
  };
}

describe("next-hop tracking: reachability", () => {
  test("a route is no candidate until its next hop's first answer; then reachable with the metric as IGP cost", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10, nextHops: [{ gateway: "192.0.2.1" }] }));
    const r = route("198.51.100.0/24", "203.0.113.5");
    w.rib.upsert(r);
    expect(w.cur(r).reachable).toBe(false);
    expect(w.best("198.51.100.0/24")).toBeNull();
    expect(w.tracker.nextHops()).toMatchObject([{ nextHop: "203.0.113.5", state: "pending", routes: 1 }]);
    await w.settle();
    expect(w.cur(r).reachable).toBe(true);
    expect(w.cur(r).igpCost).toBe(10);
    expect(w.same(w.best("198.51.100.0/24"), r)).toBe(true);
    expect(w.tracker.nextHops()).toMatchObject([{ nextHop: "203.0.113.5", state: "reachable", igpCost: 10, routes: 1 }]);
    expect(w.kernel.lookups).toEqual(["203.0.113.5"]);
    // A second route with the same next hop is resolved at once from the cache.
    const r2 = route("198.51.100.128/25", "203.0.113.5");
    w.rib.upsert(r2);
    expect(w.cur(r2).reachable).toBe(true);
    expect(w.cur(r2).igpCost).toBe(10);
    expect(w.same(w.best("198.51.100.128/25"), r2)).toBe(true);
    expect(w.kernel.lookups.length).toBe(1);
  });

  test("unresolvable next hop: ineligible; the kernel route appears → best; removed → gone again", async () => {
    const w = world();
    const r = route("198.51.100.0/24", "203.0.113.5");
    w.rib.upsert(r);
    await w.settle();
    expect(w.cur(r).reachable).toBe(false);
    expect(w.best("198.51.100.0/24")).toBeNull();
    expect(w.rib.get(prefixKey(parsePrefix("198.51.100.0/24")))?.reason).toBe("unreachable");
    expect(w.events).toEqual([]);
    expect(w.tracker.nextHops()[0]).toMatchObject({ state: "unreachable", via: expect.stringContaining("ENETUNREACH") });

    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 7 }));
    await w.settle();
    expect(w.same(w.best("198.51.100.0/24"), r)).toBe(true);
    expect(w.cur(r).igpCost).toBe(7);
    expect(w.events.map((e) => [e.oldBest === null, w.same(e.newBest, r)])).toEqual([[true, true]]);

    w.kernel.ipRouteDel("203.0.113.0/24", 254, 7);
    await w.settle();
    expect(w.cur(r).reachable).toBe(false);
    expect(w.best("198.51.100.0/24")).toBeNull();
    expect(w.events.length).toBe(2);
    expect(w.events[1]!.newBest).toBeNull();
  });

  test("blackhole, unreachable and prohibit routes do not resolve a next hop", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("0.0.0.0/0", { metric: 1 }));
    w.kernel.ipRouteAdd(kroute("203.0.113.0/26", { type: 6, nextHops: [] }));
    w.kernel.ipRouteAdd(kroute("203.0.113.64/26", { type: 7, nextHops: [] }));
    w.kernel.ipRouteAdd(kroute("203.0.113.128/26", { type: 8, nextHops: [] }));
    const rs = ["203.0.113.1", "203.0.113.65", "203.0.113.129", "203.0.113.193"].map((h, i) => route(`198.51.100.${i * 16}/28`, h));
    for (const r of rs) w.rib.upsert(r);
    await w.settle();
    expect(rs.map((r) => w.cur(r).reachable)).toEqual([false, false, false, true]);
    const via = new Map(w.tracker.nextHops().map((n) => [n.nextHop, n.via]));
    expect(via.get("203.0.113.1")).toContain("EINVAL");
    expect(via.get("203.0.113.65")).toContain("EHOSTUNREACH");
    expect(via.get("203.0.113.129")).toContain("EACCES");
    expect(via.get("203.0.113.193")).toStartWith("0.0.0.0/0 via 192.0.2.1");
  });

  test("local routes, next hop self, link-local IPv6: reachable at cost 0 without a lookup; IPv4-mapped resolves in IPv4, RFC 8950 in IPv6", async () => {
    const w = world();
    const local = route("192.0.2.128/25", "203.0.113.99", LOCAL);
    const self = route("198.51.100.0/25", new Uint8Array(0));
    const ll = route("2001:db8:1::/48", "fe80::1");
    const both = new Uint8Array(32);
    both.set(nh("2001:db8::1"));
    both.set(nh("fe80::2"), 16);
    const zeroGlobal = new Uint8Array(32);
    zeroGlobal.set(nh("fe80::3"), 16);
    const llOnly = route("2001:db8:2::/48", zeroGlobal);
    const globalLl = route("2001:db8:3::/48", both);
    w.kernel.ipRouteAdd(kroute("2001:db8:ff::/48", { metric: 30, nextHops: [{ gateway: "2001:db8::1" }] }));
    const mapped = route("198.51.100.128/25", nh("::ffff:192.0.2.1"));
    const v4via6 = route("203.0.113.0/24", nh("2001:db8:ff::1"));
    for (const r of [local, self, ll, llOnly]) {
      w.rib.upsert(r);
      expect([w.cur(r).reachable, w.cur(r).igpCost]).toEqual([true, 0]);
    }
    w.rib.upsert(globalLl);
    w.rib.upsert(mapped);
    w.rib.upsert(v4via6);
    await w.settle();
    // The global address of a global+link-local pair is resolved (here: the connected subnet).
    expect(w.kernel.lookups.sort()).toEqual(["192.0.2.1", "2001:db8::1", "2001:db8:ff::1"]);
    expect([w.cur(globalLl).reachable, w.cur(globalLl).igpCost]).toEqual([true, 256]);
    expect([w.cur(mapped).reachable, w.cur(mapped).igpCost]).toEqual([true, 0]);
    expect([w.cur(v4via6).reachable, w.cur(v4via6).igpCost]).toEqual([true, 30]);
    expect(resolutionTarget(mapped)).toEqual({ afi: 1, addr: nh("192.0.2.1") });
  });

  test("a next hop that is one of our addresses or on loopback resolves (local route)", async () => {
    const w = world();
    const r = route("198.51.100.0/24", "192.0.2.100");
    w.rib.upsert(r);
    await w.settle();
    expect([w.cur(r).reachable, w.cur(r).igpCost]).toEqual([true, 0]);
    expect(w.tracker.nextHops()[0]!.via).toContain("(local)");
  });

  test("a first-arrival race never makes a path with an unresolved next hop best", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/25", { metric: 50 }));
    const a = route("198.51.100.0/24", "203.0.113.5", ibgp("192.0.2.20"));
    w.rib.upsert(a);
    await w.settle();
    expect(w.same(w.best("198.51.100.0/24"), a)).toBe(true);
    // b has the better router id (tie-breaker) but a next hop nobody can reach.
    const b = route("198.51.100.0/24", "203.0.113.200", ibgp("192.0.2.10"));
    w.rib.upsert(b);
    await w.settle();
    expect(w.cur(b).reachable).toBe(false);
    expect(w.events.every((e) => e.newBest !== b)).toBe(true);
    expect(w.same(w.best("198.51.100.0/24"), a)).toBe(true);
  });
});

describe("next-hop tracking: IGP cost and re-runs", () => {
  test("the lower IGP metric wins between two iBGP paths; a metric change flips the best", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.1/32", { metric: 20 }));
    w.kernel.ipRouteAdd(kroute("203.0.113.2/32", { metric: 5 }));
    const a = route("198.51.100.0/24", "203.0.113.1", ibgp("192.0.2.10"));
    const b = route("198.51.100.0/24", "203.0.113.2", ibgp("192.0.2.20"));
    w.rib.upsert(a);
    w.rib.upsert(b);
    await w.settle();
    expect([w.cur(a).igpCost, w.cur(b).igpCost]).toEqual([20, 5]);
    expect(w.same(w.best("198.51.100.0/24"), b)).toBe(true);
    expect(w.rib.get(prefixKey(parsePrefix("198.51.100.0/24")))!.reason).toBe("igp-cost");
    // The path via .2 gets more expensive: a wins.
    w.kernel.ipRouteDel("203.0.113.2/32", 254, 5);
    w.kernel.ipRouteAdd(kroute("203.0.113.2/32", { metric: 40 }));
    await w.settle();
    expect(w.cur(b).igpCost).toBe(40);
    expect(w.same(w.best("198.51.100.0/24"), a)).toBe(true);
  });

  test("a burst of kernel changes is one re-lookup per tracked next hop; only the affected prefixes are re-run", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/25", { metric: 10 }));
    w.kernel.ipRouteAdd(kroute("203.0.113.128/25", { metric: 10 }));
    const viaA: Route[] = [];
    const viaB: Route[] = [];
    for (let i = 0; i < 50; i++) {
      const ra = route(`198.51.${i}.0/24`, "203.0.113.1");
      const rb = route(`198.18.${i}.0/24`, "203.0.113.129");
      viaA.push(ra);
      viaB.push(rb);
      w.rib.upsert(ra);
      w.rib.upsert(rb);
    }
    await w.settle();
    expect(w.kernel.lookups.length).toBe(2);
    w.events.length = 0;
    const reruns = w.tracker.stats.prefixesRerun;
    // Ten unrelated changes and one that matters (next hop A's route gets a better metric), all within the debounce.
    for (let i = 0; i < 10; i++) w.kernel.ipRouteAdd(kroute(`192.0.2.${i * 8}/29`, { metric: 1 }));
    w.kernel.ipRouteAdd(kroute("203.0.113.0/26", { metric: 3 }));
    await w.settle();
    expect(w.kernel.lookups.length).toBe(4); // both tracked next hops once more, nothing else
    expect(viaA.every((r) => w.cur(r).igpCost === 3)).toBe(true);
    expect(viaB.every((r) => w.cur(r).igpCost === 10)).toBe(true);
    expect(w.tracker.stats.prefixesRerun - reruns).toBe(50); // only A's prefixes
    expect(w.events).toEqual([]); // single candidates: the best did not change, nothing to tell
  });

  test("a next hop first seen with a table in the Loc-RIB: its first answer re-runs the routes that waited for it, without walking the table", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10 }));
    w.kernel.ipRouteAdd(kroute("2001:db8:ff::/48", { family: 6, metric: 20, nextHops: [{ gateway: "2001:db8::1" }] }));
    for (let i = 0; i < 20_000; i++) w.rib.upsert(route(`10.${i >> 8}.${i & 255}.0/24`, "203.0.113.1"));
    await w.settle();
    expect(w.rib.bestCount()).toBe(20_000);
    const walks = w.tracker.stats.walks;
    const reruns = w.tracker.stats.prefixesRerun;
    // A second family's table (a new next hop) arrives while the first lookup of its next hop is out; one of its
    // routes is replaced and one withdrawn meanwhile.
    const v6 = Array.from({ length: 500 }, (_, i) => route(`2001:db8:${(i + 1).toString(16)}::/48`, "2001:db8:ff::5"));
    for (const r of v6) w.rib.upsert(r);
    const replaced = route("2001:db8:1::/48", "2001:db8:ff::5", ibgp("192.0.2.10"));
    w.rib.upsert(replaced);
    w.rib.remove(v6[1]!.source.id, v6[1]!.key, 0);
    expect(v6.every((r) => !w.cur(r).reachable)).toBe(true);
    await w.settle();
    expect(w.tracker.stats.walks).toBe(walks);
    expect(w.tracker.stats.prefixesRerun - reruns).toBe(499);
    expect(w.rib.bestCount(2)).toBe(499);
    for (const r of v6.slice(2)) expect([w.cur(r).reachable, w.cur(r).igpCost]).toEqual([true, 20]);
    expect(w.same(w.best("2001:db8:1::/48"), replaced)).toBe(true);
    expect(w.best("2001:db8:2::/48")).toBeNull();
    expect(w.rib.bestCount(1)).toBe(20_000);
    // A later change of that next hop's resolution is not a first answer: the re-run walks.
    w.kernel.ipRouteAdd(kroute("2001:db8:ff::/56", { family: 6, metric: 5, nextHops: [{ gateway: "2001:db8::1" }] }));
    await w.settle();
    expect(w.tracker.stats.walks).toBe(walks + 1);
    for (const r of v6.slice(2)) expect(w.cur(r).igpCost).toBe(5);
  });

  test("a first answer that leaves the routes unreachable, then a kernel route: every route of the next hop follows, those added after the first answer too", async () => {
    const w = world();
    const before = Array.from({ length: 50 }, (_, i) => route(`198.51.100.${i}/32`, "198.18.0.1"));
    for (const r of before) w.rib.upsert(r);
    await w.settle();
    expect(w.tracker.nextHops()).toMatchObject([{ nextHop: "198.18.0.1", state: "unreachable", routes: 50 }]);
    const after = Array.from({ length: 50 }, (_, i) => route(`198.51.100.${100 + i}/32`, "198.18.0.1"));
    for (const r of after) w.rib.upsert(r);
    w.kernel.ipRouteAdd(kroute("198.18.0.0/15", { metric: 7 }));
    await w.settle();
    for (const r of [...before, ...after]) expect([w.cur(r).reachable, w.cur(r).igpCost]).toEqual([true, 7]);
    expect(w.rib.bestCount()).toBe(100);
  });

  test("past the bound on noted prefixes, a first answer re-runs by walking the table, and every route that waited becomes reachable", async () => {
    const w = world({ pendingKeysMax: 100 });
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10 }));
    const rs = Array.from({ length: 300 }, (_, i) => route(`10.0.${i >> 8}.${i & 255}/32`, i % 2 ? "203.0.113.1" : "203.0.113.2"));
    for (const r of rs) w.rib.upsert(r);
    await w.settle();
    expect(w.tracker.stats.walks).toBe(1);
    expect(rs.every((r) => w.cur(r).reachable && w.cur(r).igpCost === 10)).toBe(true);
    expect(w.rib.bestCount()).toBe(300);
  });

  test("a big re-run is sliced (the event loop is never held for long)", async () => {
    const w = world({ sliceMs: 1 });
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10 }));
    const n = 30_000;
    for (let i = 0; i < n; i++) w.rib.upsert(route(`10.${i >> 8}.${i & 255}.0/24`, "203.0.113.1"));
    await w.settle();
    expect(w.rib.bestCount()).toBe(n);
    const slices = w.tracker.stats.slices;
    w.tracker.stats.longestSliceMs = 0;
    w.kernel.ipRouteDel("203.0.113.0/24", 254, 10);
    await w.settle();
    expect(w.rib.bestCount()).toBe(0);
    // Spread over turns (a 1 ms budget, 30k routes): behaviour, not a time, is asserted here.
    expect(w.tracker.stats.slices - slices).toBeGreaterThan(2);
    expect(w.events.length).toBe(2 * n);
  });
});

describe("next-hop tracking: recursion (RFC 4271 §9.1.2.1)", () => {
  test("a next hop resolves through another BGP route in the Loc-RIB, at that route's IGP cost; withdrawing it makes the dependant unreachable", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("192.0.2.0/25", { metric: 15 }));
    const base = route("203.0.113.0/24", "192.0.2.7");
    const dep = route("198.51.100.0/24", "203.0.113.9", ibgp("192.0.2.20"));
    w.rib.upsert(base);
    w.rib.upsert(dep);
    await w.settle();
    expect([w.cur(base).reachable, w.cur(base).igpCost]).toEqual([true, 15]);
    expect([w.cur(dep).reachable, w.cur(dep).igpCost]).toEqual([true, 15]);
    expect(w.tracker.nextHops().find((x) => x.nextHop === "203.0.113.9")!.via).toContain("203.0.113.0/24 (BGP via 192.0.2.7");
    w.rib.remove(base.source.id, base.key);
    await w.settle();
    expect(w.cur(dep).reachable).toBe(false);
    expect(w.best("198.51.100.0/24")).toBeNull();
    // Back again: the dependant follows.
    w.rib.upsert(route("203.0.113.0/24", "192.0.2.7"));
    await w.settle();
    expect(w.same(w.best("198.51.100.0/24"), dep)).toBe(true);
  });

  test("an IPv6 next hop resolves through BGP /64 and /56 routes in the Loc-RIB (wide number keys): each one's arrival and withdrawal is noticed", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("2001:db8:ff::/48", { family: 6, metric: 15, nextHops: [{ gateway: "2001:db8::1" }] }));
    const base = route("2001:db8:7:1::/64", "2001:db8:ff::7");
    const dep = route("2001:db8:9::/48", "2001:db8:7:1::9", ibgp("192.0.2.20"));
    w.rib.upsert(dep);
    await w.settle();
    expect(w.cur(dep).reachable).toBe(false); // nothing covers 2001:db8:7:1::9 yet
    w.rib.upsert(base);
    await w.settle();
    expect([w.cur(base).reachable, w.cur(base).igpCost]).toEqual([true, 15]);
    expect([w.cur(dep).reachable, w.cur(dep).igpCost]).toEqual([true, 15]);
    expect(w.tracker.nextHops().find((x) => x.nextHop === "2001:db8:7:1::9")!.via).toContain("2001:db8:7:1::/64 (BGP via 2001:db8:ff::7");
    w.rib.remove(base.source.id, base.key);
    await w.settle();
    expect(w.cur(dep).reachable).toBe(false);
    // A /56 around it (another wide key) resolves it again.
    w.rib.upsert(route("2001:db8:7::/56", "2001:db8:ff::7"));
    await w.settle();
    expect(w.same(w.best("2001:db8:9::/48"), dep)).toBe(true);
    expect(w.tracker.nextHops().find((x) => x.nextHop === "2001:db8:7:1::9")!.via).toContain("2001:db8:7::/56 (BGP via 2001:db8:ff::7");
  });

  test("a prefix covering a next hop is still noticed after other next hops were let go (the covering-prefix filter set again from the prefixes left)", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("192.0.2.0/25", { metric: 15 }));
    // Three next hops sharing only their first few covering prefixes: letting two go leaves fewer covering prefixes
    // than went, and the filter is set again from those left.
    const gone1 = route("198.51.100.0/24", "198.18.7.9", ibgp("192.0.2.20"));
    const gone2 = route("198.51.100.0/25", "100.64.3.9", ibgp("192.0.2.22"));
    const dep = route("198.51.100.128/25", "203.0.113.77", ibgp("192.0.2.21"));
    for (const r of [gone1, gone2, dep]) w.rib.upsert(r);
    await w.settle();
    expect(w.cur(dep).reachable).toBe(false); // nothing covers 203.0.113.77 yet
    w.rib.remove(gone1.source.id, gone1.key);
    w.rib.remove(gone2.source.id, gone2.key);
    w.clock.advance(20_000); // unused past keepUnusedMs: let go
    await w.settle();
    expect(w.tracker.nextHops().map((x) => x.nextHop)).toEqual(["203.0.113.77"]);
    // A route for 203.0.113.0/24 now resolves the remaining one.
    w.rib.upsert(route("203.0.113.0/24", "192.0.2.7"));
    await w.settle();
    expect([w.cur(dep).reachable, w.cur(dep).igpCost]).toEqual([true, 15]);
  });

  test("our own kernel route answering the lookup is followed into the Loc-RIB", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("192.0.2.0/25", { metric: 15 }));
    const base = route("203.0.113.0/24", "192.0.2.7");
    w.rib.upsert(base);
    await w.settle();
    // What the FIB would install for `base`, with our protocol.
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { protocol: OWN.protocol, metric: 20, nextHops: [{ gateway: "192.0.2.7" }] }));
    const dep = route("198.51.100.0/24", "203.0.113.9", ibgp("192.0.2.20"));
    w.rib.upsert(dep);
    await w.settle();
    expect([w.cur(dep).reachable, w.cur(dep).igpCost]).toEqual([true, 15]);
    // Our kernel route stays (retained) while the Loc-RIB route goes: nothing left to resolve through.
    w.rib.remove(base.source.id, base.key);
    await w.settle();
    expect(w.cur(dep).reachable).toBe(true); // the kernel route still forwards (start-up leftovers resolve)
    expect(w.tracker.nextHops().find((x) => x.nextHop === "203.0.113.9")!.via).toContain("proto 186");
  });

  test("a route never resolves through itself: next hop inside its own prefix stays unreachable (no flapping)", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("0.0.0.0/0", { metric: 1 }));
    const r = route("203.0.113.0/24", "203.0.113.9");
    w.rib.upsert(r);
    await w.settle();
    expect(w.cur(r).reachable).toBe(false);
    expect(w.events).toEqual([]);
    expect(w.tracker.nextHops()[0]!.via).toContain("203.0.113.0/24 (BGP, no usable route)");
    // As if a FIB had installed it anyway (e.g. retained): still through itself.
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { protocol: OWN.protocol, metric: 20 }));
    await w.settle();
    expect(w.cur(r).reachable).toBe(false);
    // A more specific IGP route to the next hop does resolve it.
    w.kernel.ipRouteAdd(kroute("203.0.113.8/29", { metric: 4 }));
    await w.settle();
    expect([w.cur(r).reachable, w.cur(r).igpCost]).toEqual([true, 4]);
    expect(w.events.length).toBe(1);
  });

  test("mutually recursive routes are both unreachable, whatever the arrival order", async () => {
    for (const order of [0, 1]) {
      const w = world();
      w.kernel.ipRouteAdd(kroute("0.0.0.0/0", { metric: 1 }));
      const r1 = route("198.51.100.0/24", "203.0.113.9");
      const r2 = route("203.0.113.0/24", "198.51.100.9", ibgp("192.0.2.20"));
      const [first, second] = order === 0 ? [r1, r2] : [r2, r1];
      w.rib.upsert(first);
      await w.settle();
      expect(w.cur(first).reachable).toBe(true); // alone, it resolves through the default route
      w.rib.upsert(second);
      await w.settle();
      expect([w.cur(r1).reachable, w.cur(r2).reachable]).toEqual([false, false]);
      expect(w.rib.bestCount()).toBe(0);
      // Stable: further kernel churn changes nothing.
      w.kernel.ipRouteAdd(kroute("192.0.2.128/25", { metric: 1 }));
      await w.settle();
      expect(w.rib.bestCount()).toBe(0);
    }
  });

  test("a chain of two recursive hops carries the IGP cost of the bottom route", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("192.0.2.0/25", { metric: 9 }));
    const a = route("203.0.113.0/24", "192.0.2.7");
    const b = route("198.51.100.0/24", "203.0.113.9", ibgp("192.0.2.20"));
    const c = route("198.18.0.0/15", "198.51.100.9", ibgp("192.0.2.30"));
    w.rib.upsert(c);
    w.rib.upsert(b);
    w.rib.upsert(a);
    await w.settle();
    expect([a, b, c].map((r) => [w.cur(r).reachable, w.cur(r).igpCost])).toEqual([[true, 9], [true, 9], [true, 9]]);
    w.kernel.ipRouteDel("192.0.2.0/25", 254, 9);
    await w.settle();
    // 192.0.2.7 is still on the connected /24 (metric 0).
    expect([a, b, c].map((r) => [w.cur(r).reachable, w.cur(r).igpCost])).toEqual([[true, 0], [true, 0], [true, 0]]);
    w.kernel.removeLink(2);
    await w.settle();
    expect([a, b, c].map((r) => w.cur(r).reachable)).toEqual([false, false, false]);
  });
});

/** A route's immediate forwarding hops as "address%ifindex" (undefined: the next hop itself). */
function viaOf(r: Route): string[] | undefined {
  return r.via?.map((h) => `${formatAddr(h.addr.length === 4 ? 1 : 2, h.addr)}%${h.ifindex ?? "-"}`);
}

describe("next-hop tracking: immediate forwarding hops (RFC 4271 §5.1.3)", () => {
  test("an on-link next hop (connected subnet or device route) is its own forwarding hop: no via", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10, nextHops: [{ ifindex: 2 }] }));
    const onSubnet = route("198.51.100.0/24", "192.0.2.7");
    const onDevice = route("198.51.100.128/25", "203.0.113.5");
    w.rib.upsert(onSubnet);
    w.rib.upsert(onDevice);
    await w.settle();
    expect([w.cur(onSubnet).reachable, w.cur(onDevice).reachable]).toEqual([true, true]);
    expect([viaOf(w.cur(onSubnet)), viaOf(w.cur(onDevice))]).toEqual([undefined, undefined]);
    expect(w.tracker.nextHops().map((x) => [x.nextHop, x.hops])).toEqual([
      ["192.0.2.7", ["192.0.2.7"]],
      ["203.0.113.5", ["203.0.113.5"]],
    ]);
  });

  test("a next hop behind a gateway route forwards to that gateway with its interface; a multipath kernel route gives all its gateways", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/25", { metric: 10, nextHops: [{ gateway: "192.0.2.1" }] }));
    w.kernel.ipRouteAdd(kroute("203.0.113.128/25", { metric: 10, nextHops: [{ gateway: "192.0.2.1" }, { gateway: "192.0.2.2" }] }));
    const single = route("198.51.100.0/24", "203.0.113.5");
    const multi = route("198.51.100.128/25", "203.0.113.130");
    w.rib.upsert(single);
    w.rib.upsert(multi);
    await w.settle();
    expect(viaOf(w.cur(single))).toEqual(["192.0.2.1%2"]);
    expect(viaOf(w.cur(multi))).toEqual(["192.0.2.1%2", "192.0.2.2%2"]);
    // Routes of one next hop share its list (the FIB caches per list).
    const again = route("198.51.100.64/26", "203.0.113.5");
    w.rib.upsert(again);
    expect(w.cur(again).via).toBe(w.cur(single).via!);
  });

  test("a next hop resolved recursively through a Loc-RIB route forwards to that route's immediate hops", async () => {
    const w = world();
    const base = route("203.0.113.0/24", "192.0.2.7");
    const dep = route("198.51.100.0/24", "203.0.113.9", ibgp("192.0.2.20"));
    w.rib.upsert(base);
    w.rib.upsert(dep);
    await w.settle();
    // base's next hop is on-link: dep forwards to it.
    expect([viaOf(w.cur(base)), viaOf(w.cur(dep))]).toEqual([undefined, ["192.0.2.7%2"]]);
    // The IGP now reaches 192.0.2.7 through a gateway: both move to it, selections unchanged.
    const fwd: LocRibEvent[] = [];
    w.rib.subscribe((e) => e.forwarding && fwd.push(e), { forwarding: true });
    w.events.length = 0;
    w.kernel.ipRouteAdd(kroute("192.0.2.0/29", { metric: 3, nextHops: [{ gateway: "192.0.2.100" }] }));
    await w.settle();
    expect([viaOf(w.cur(base)), viaOf(w.cur(dep))]).toEqual([["192.0.2.100%2"], ["192.0.2.100%2"]]);
    expect(w.events).toEqual([]);
    const named = (r: Route | null) => (r === null ? "none" : w.same(r, base) ? "base" : w.same(r, dep) ? "dep" : "other");
    expect(fwd.map((e) => [named(e.newBest), e.oldBest === e.newBest])).toEqual(expect.arrayContaining([["base", true], ["dep", true]]));
    expect(fwd.length).toBe(2);
    // A two-level chain: c's next hop lies in dep's prefix.
    const c = route("198.18.0.0/15", "198.51.100.9", ibgp("192.0.2.30"));
    w.rib.upsert(c);
    await w.settle();
    expect(viaOf(w.cur(c))).toEqual(["192.0.2.100%2"]);
    expect(w.tracker.nextHops().find((x) => x.nextHop === "198.51.100.9")!.hops).toEqual(["192.0.2.100"]);
  });

  test("the IGP route's gateway changing: via updated in place and a forwarding event for selected routes only; unreachable clears it", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.1/32", { metric: 5, nextHops: [{ gateway: "192.0.2.1" }] }));
    w.kernel.ipRouteAdd(kroute("203.0.113.2/32", { metric: 50, nextHops: [{ gateway: "192.0.2.1" }] }));
    const a = route("198.51.100.0/24", "203.0.113.1", ibgp("192.0.2.10"));
    const b = route("198.51.100.0/24", "203.0.113.2", ibgp("192.0.2.20"));
    w.rib.upsert(a);
    w.rib.upsert(b);
    const fwd: LocRibEvent[] = [];
    w.rib.subscribe((e) => e.forwarding && fwd.push(e), { forwarding: true });
    await w.settle();
    expect(w.same(w.best("198.51.100.0/24"), a)).toBe(true);
    const selections = w.events.length;
    // The non-best path moves: nobody needs telling.
    w.kernel.ipRouteReplace(kroute("203.0.113.2/32", { metric: 50, nextHops: [{ gateway: "192.0.2.2" }] }));
    await w.settle();
    expect(viaOf(w.cur(b))).toEqual(["192.0.2.2%2"]);
    expect(fwd).toEqual([]);
    // The best path moves: same selection, one forwarding event; plain subscribers see nothing.
    w.kernel.ipRouteReplace(kroute("203.0.113.1/32", { metric: 5, nextHops: [{ gateway: "192.0.2.3" }] }));
    await w.settle();
    expect(viaOf(w.cur(a))).toEqual(["192.0.2.3%2"]);
    expect(w.cur(a).igpCost).toBe(5);
    expect(fwd.length).toBe(1);
    // The event's route is a's, with the new hops (what the FIB installs).
    expect(fwd[0]!.forwarding).toBe(true);
    expect(w.same(fwd[0]!.newBest, a)).toBe(true);
    expect(fwd[0]!.oldBest).toBe(fwd[0]!.newBest);
    expect(viaOf(fwd[0]!.newBest!)).toEqual(["192.0.2.3%2"]);
    expect(w.events.length).toBe(selections);
    expect(w.tracker.stats.forwardingChanges).toBe(1);
    // Unreachable: no forwarding hops, b takes over.
    w.kernel.ipRouteDel("203.0.113.1/32", 254, 5);
    await w.settle();
    expect([w.cur(a).reachable, viaOf(w.cur(a))]).toEqual([false, undefined]);
    expect(w.same(w.best("198.51.100.0/24"), b)).toBe(true);
  });
});

describe("next-hop tracking: forwarding changes at scale", () => {
  test("30k selected routes whose IGP gateway moves: via updated and one forwarding event each, in slices", async () => {
    const w = world({ sliceMs: 1 });
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10, nextHops: [{ gateway: "192.0.2.1" }] }));
    const n = 30_000;
    const rs: Route[] = [];
    for (let i = 0; i < n; i++) {
      const r = route(`10.${i >> 8}.${i & 255}.0/24`, "203.0.113.1");
      rs.push(r);
      w.rib.upsert(r);
    }
    await w.settle();
    expect(w.rib.bestCount()).toBe(n);
    let fwd = 0;
    w.rib.subscribe((e) => void (e.forwarding && fwd++), { forwarding: true });
    const slices = w.tracker.stats.slices;
    w.tracker.stats.longestSliceMs = 0;
    w.events.length = 0;
    w.kernel.ipRouteReplace(kroute("203.0.113.0/24", { metric: 10, nextHops: [{ gateway: "192.0.2.2" }] }));
    await w.settle();
    expect(rs.every((r) => viaOf(w.cur(r))?.join() === "192.0.2.2%2")).toBe(true);
    expect(fwd).toBe(n);
    expect(w.events).toEqual([]);
    expect(w.tracker.stats.slices - slices).toBeGreaterThan(2);
  });
});

describe("next-hop tracking: bookkeeping", () => {
  test("withdrawn and replaced routes are no longer tracked; an unused next hop is forgotten later", async () => {
    const w = world();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10 }));
    const r = route("198.51.100.0/24", "203.0.113.5");
    w.rib.upsert(r);
    await w.settle();
    const r2 = route("198.51.100.0/24", "203.0.113.6");
    w.rib.upsert(r2); // replaces r (same source, path id)
    await w.settle();
    expect(w.tracker.nextHops().map((x) => [x.nextHop, x.routes])).toEqual([["203.0.113.5", 0], ["203.0.113.6", 1]]);
    w.rib.removeSource(r2.source.id);
    expect(w.tracker.nextHops().map((x) => x.routes)).toEqual([0, 0]);
    w.clock.advance(20_000);
    expect(w.tracker.nextHops()).toEqual([]);
  });

  test("detach stops following the kernel", async () => {
    const w = world();
    const r = route("198.51.100.0/24", "203.0.113.5");
    w.rib.upsert(r);
    await w.settle();
    w.tracker.detach();
    w.kernel.ipRouteAdd(kroute("203.0.113.0/24", { metric: 10 }));
    await new Promise((x) => setImmediate(x));
    w.clock.advance(1000);
    expect(w.kernel.lookups.length).toBe(1);
    expect(w.cur(r).reachable).toBe(false);
  });
});

describe("show rib", () => {
  test("an unreachable route is flagged u (with a legend line); reachable ones keep *", () => {
    const base: RibEntry = { prefix: "198.51.100.0/24", nextHop: "203.0.113.5", asPath: [65002], origin: "igp", med: null, localPref: 100, communities: [], largeCommunities: [], peer: "192.0.2.2", best: false, multipath: false, ibgp: false, stale: false, reachable: false, igpCost: 0 };
    const text = formatRib([base, { ...base, nextHop: "203.0.113.6", peer: "192.0.2.3", best: true, reachable: true, igpCost: 10 }]);
    const lines = text.split("\n");
    expect(lines).toContain("u = Next hop unreachable (not a candidate for best)");
    expect(lines.find((l) => l.includes("203.0.113.5"))).toStartWith("u ");
    expect(lines.find((l) => l.includes("203.0.113.6"))).toStartWith("*> ");
    expect(formatRib([{ ...base, reachable: true }])).not.toContain("u = Next hop unreachable");
  });
});
