/**
 * Unit tests of the decision process (lib/rib/decision.ts): one test per
 * tie-breaker showing that it decides and that earlier steps take
 * precedence, deterministic MED (order independence), and the composition of
 * the multipath set.
 */
import { describe, expect, test } from "bun:test";
import { type AsPathSegment, type PathAttributes, emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { parseAddr, parsePrefix } from "../../lib/core/addr.ts";
import { SEG } from "../../lib/bgp/types.ts";
import {
  type DecisionOptions,
  STEP,
  cmpAsPath,
  cmpLocalPref,
  cmpMed,
  DECISION_STEPS,
  compareCode,
  compareRoutes,
  ipv4ToNumber,
  neighborAs,
  rankRoutes,
  selectBest,
} from "../../lib/rib/decision.ts";
import { type Route, type RouteSource, prefixKey } from "../../lib/rib/types.ts";

const LOCAL_AS = 65000;

interface R {
  peer?: string;
  asn?: number;
  ibgp?: boolean;
  local?: boolean;
  routerId?: string;
  lp?: number | null;
  med?: number | null;
  origin?: number | null;
  path?: number[] | AsPathSegment[];
  igp?: number;
  learnedAt?: number;
  reachable?: boolean;
  originatorId?: string;
  clusterList?: string[];
  pathId?: number;
  prefix?: string;
}

const attrCache = new Map<string, PathAttributes>();

/** Interned attributes: equal inputs give the same object. */
function attrs(o: R): PathAttributes {
  const path: AsPathSegment[] =
    o.path === undefined || o.path.length === 0
      ? []
      : typeof o.path[0] === "number"
        ? [{ type: SEG.AS_SEQUENCE, asns: o.path as number[] }]
        : (o.path as AsPathSegment[]);
  const k = JSON.stringify([path, o.lp, o.med, o.origin, o.originatorId, o.clusterList]);
  let a = attrCache.get(k);
  if (!a) {
    a = emptyAttributes();
    a.asPath = asPathOf(path);
    a.origin = o.origin === undefined ? 0 : o.origin;
    a.localPref = o.lp ?? null;
    a.med = o.med ?? null;
    a.originatorId = o.originatorId ?? null;
    a.clusterList = o.clusterList ?? [];
    attrCache.set(k, a);
  }
  return a;
}

function source(o: R): RouteSource {
  if (o.local) {
    return { id: "local", address: "", addressBytes: new Uint8Array(0), asn: LOCAL_AS, routerId: 0, ibgp: false, rrClient: false, local: true };
  }
  const address = o.peer ?? "192.0.2.1";
  const ibgp = o.ibgp ?? false;
  return {
    id: address,
    address,
    addressBytes: parseAddr(address)!.addr,
    asn: o.asn ?? (ibgp ? LOCAL_AS : 65001),
    routerId: ipv4ToNumber(o.routerId ?? (address.includes(":") ? "10.9.9.9" : address)),
    ibgp,
    rrClient: false,
    local: false,
  };
}

function route(o: R = {}): Route {
  const prefix = parsePrefix(o.prefix ?? "203.0.113.0/24");
  const src = source(o);
  const path = o.path ?? (o.local || src.ibgp ? [] : [src.asn]);
  return {
    prefix,
    key: prefixKey(prefix),
    pathId: o.pathId ?? 0,
    source: src,
    attrs: attrs({ ...o, path }),
    nextHop: src.addressBytes.length ? src.addressBytes : new Uint8Array(4),
    learnedAt: o.learnedAt ?? 1000,
    igpCost: o.igp ?? 0,
    reachable: o.reachable ?? true,
    stale: false,
  };
}

/** a must beat b at `step`, in both argument orders, and selectBest agrees. */
function decides(a: Route, b: Route, step: string, opts: DecisionOptions = {}): void {
  expect(compareRoutes(a, b, opts)).toEqual({ winner: -1, step });
  expect(compareRoutes(b, a, opts)).toEqual({ winner: 1, step });
  expect(selectBest([a, b], opts).best).toBe(a);
  expect(selectBest([b, a], opts).best).toBe(a);
  expect(selectBest([b, a], opts).reason).toBe(step);
}

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  const out: T[][] = [];
  xs.forEach((x, i) => {
    for (const rest of permutations([...xs.slice(0, i), ...xs.slice(i + 1)])) out.push([x, ...rest]);
  });
  return out;
}

/** Small deterministic PRNG for the shuffles. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function shuffle<T>(xs: T[], r: () => number): T[] {
  const a = xs.slice();
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

describe("tie-breakers", () => {
  test("0: an unreachable next hop never wins", () => {
    const good = route({ peer: "192.0.2.2", lp: 50, path: [65001, 1, 2, 3] });
    const bad = route({ peer: "192.0.2.1", lp: 500, reachable: false });
    decides(good, bad, STEP.REACHABLE);
    const sel = selectBest([bad, route({ peer: "192.0.2.3", reachable: false })]);
    expect(sel.best).toBeNull();
    expect(sel.multipath).toEqual([]);
    expect(sel.reason).toBe("unreachable");
    expect(selectBest([bad]).best).toBeNull();
    expect(selectBest([]).best).toBeNull();
    expect(selectBest([]).reason).toBe("no-routes");
  });

  test("1: highest LOCAL_PREF wins over every later step", () => {
    // The loser is better at every later step: shorter path, IGP origin, eBGP, lower address.
    const a = route({ peer: "192.0.2.9", ibgp: true, lp: 200, path: [65001, 65002, 65003], origin: 2, med: 500, igp: 50 });
    const b = route({ peer: "192.0.2.1", lp: 150, path: [65001] });
    decides(a, b, STEP.LOCAL_PREF);
  });

  test("1: absent LOCAL_PREF counts as 100", () => {
    const none = route({ peer: "192.0.2.2", lp: null });
    expect(cmpLocalPref(none, route({ peer: "192.0.2.1", lp: 100 }))).toBe(0);
    decides(none, route({ peer: "192.0.2.1", lp: 99 }), STEP.LOCAL_PREF);
    decides(route({ peer: "192.0.2.3", lp: 101 }), none, STEP.LOCAL_PREF);
  });

  test("1b: a local route beats a learned one with equal LOCAL_PREF, not a higher one", () => {
    const local = route({ local: true, origin: 2 });
    const learned = route({ peer: "192.0.2.1", path: [] as number[], origin: 0 });
    decides(local, learned, STEP.LOCAL_ORIGIN);
    // With a longer path too: 1b comes before the AS path length.
    decides(local, route({ peer: "192.0.2.1", path: [65001] }), STEP.LOCAL_ORIGIN);
    // Higher LOCAL_PREF on the learned route still wins (step 1 first).
    decides(route({ peer: "192.0.2.1", lp: 200 }), local, STEP.LOCAL_PREF);
  });

  test("2: shortest AS_PATH wins over ORIGIN and later steps", () => {
    const a = route({ peer: "192.0.2.9", path: [65001, 1], origin: 2, med: 100 });
    const b = route({ peer: "192.0.2.1", path: [65001, 1, 2], origin: 0, med: 0 });
    decides(a, b, STEP.AS_PATH);
  });

  test("2: AS_SET counts 1, confederation segments 0", () => {
    const set = route({ peer: "192.0.2.9", path: [{ type: SEG.AS_SEQUENCE, asns: [65001] }, { type: SEG.AS_SET, asns: [1, 2, 3, 4] }] });
    const seq3 = route({ peer: "192.0.2.1", path: [65001, 1, 2] });
    expect(cmpAsPath(set, seq3)).toBeLessThan(0);
    decides(set, seq3, STEP.AS_PATH);
    const confed = route({
      peer: "192.0.2.8",
      path: [
        { type: SEG.AS_CONFED_SEQUENCE, asns: [64512, 64513, 64514] },
        { type: SEG.AS_CONFED_SET, asns: [64515] },
        { type: SEG.AS_SEQUENCE, asns: [65001] },
      ],
    });
    const seq1 = route({ peer: "192.0.2.1", path: [65001] });
    expect(cmpAsPath(confed, seq1)).toBe(0);
    decides(confed, seq3, STEP.AS_PATH);
    // The neighbour AS skips confederation segments.
    expect(neighborAs(confed)).toBe(65001);
  });

  test("3: lowest ORIGIN wins over MED and later steps", () => {
    const a = route({ peer: "192.0.2.9", origin: 1, med: 1000, igp: 9 });
    const b = route({ peer: "192.0.2.1", origin: 2, med: 0 });
    decides(a, b, STEP.ORIGIN);
    decides(route({ peer: "192.0.2.9", origin: 0 }), a, STEP.ORIGIN);
  });

  test("4: lowest MED wins between routes from the same neighbour AS", () => {
    const a = route({ peer: "192.0.2.9", ibgp: true, path: [65001], med: 10, igp: 50 });
    const b = route({ peer: "192.0.2.1", path: [65001], med: 20 });
    // MED comes before eBGP over iBGP.
    decides(a, b, STEP.MED);
  });

  test("4: MED is skipped between different neighbour ASes unless alwaysCompareMed", () => {
    const a = route({ peer: "192.0.2.9", asn: 65001, med: 10 });
    const b = route({ peer: "192.0.2.1", asn: 65002, med: 20 });
    expect(cmpMed(a, b, {})).toBe(0);
    decides(b, a, STEP.ROUTER_ID);
    decides(a, b, STEP.MED, { alwaysCompareMed: true });
  });

  test("4: a missing MED counts as 0", () => {
    const none = route({ peer: "192.0.2.9", med: null });
    decides(none, route({ peer: "192.0.2.1", med: 1 }), STEP.MED);
    expect(compareRoutes(none, route({ peer: "192.0.2.1", med: 0 })).step).toBe(STEP.ROUTER_ID);
  });

  test("4: local and empty-path routes count as coming from our own AS", () => {
    const l1 = route({ local: true, med: 5 });
    const i1 = route({ peer: "10.0.0.1", ibgp: true, path: [] as number[] });
    expect(neighborAs(l1)).toBe(LOCAL_AS);
    expect(neighborAs(i1)).toBe(LOCAL_AS);
    const i2 = route({ peer: "10.0.0.2", ibgp: true, path: [] as number[], med: 7, routerId: "1.1.1.1" });
    const i3 = route({ peer: "10.0.0.3", ibgp: true, path: [] as number[], med: 3, routerId: "9.9.9.9" });
    decides(i3, i2, STEP.MED);
  });

  test("5: eBGP over iBGP wins over IGP cost", () => {
    const e = route({ peer: "192.0.2.9", igp: 100 });
    const i = route({ peer: "192.0.2.1", ibgp: true, path: [65001], igp: 1 });
    decides(e, i, STEP.EBGP);
  });

  test("6: lowest IGP cost wins over router id", () => {
    const a = route({ peer: "10.0.0.9", ibgp: true, path: [65001], igp: 5 });
    const b = route({ peer: "10.0.0.1", ibgp: true, path: [65001], igp: 10 });
    decides(a, b, STEP.IGP_COST);
  });

  test("7: preferOldest: the oldest eBGP route wins before router id; off: router id", () => {
    const old = route({ peer: "192.0.2.9", asn: 65002, learnedAt: 100 });
    const young = route({ peer: "192.0.2.1", asn: 65003, learnedAt: 200 });
    decides(old, young, STEP.OLDEST, { preferOldest: true });
    decides(young, old, STEP.ROUTER_ID, { preferOldest: false });
    decides(young, old, STEP.ROUTER_ID);
    // Not applied between iBGP routes.
    const io = route({ peer: "10.0.0.9", ibgp: true, path: [65001], learnedAt: 1 });
    const iy = route({ peer: "10.0.0.1", ibgp: true, path: [65001], learnedAt: 2 });
    decides(iy, io, STEP.ROUTER_ID, { preferOldest: true });
  });

  test("8: lowest router id (unsigned)", () => {
    const a = route({ peer: "192.0.2.9", routerId: "10.0.0.1" });
    const b = route({ peer: "192.0.2.1", routerId: "200.0.0.1" });
    decides(a, b, STEP.ROUTER_ID);
  });

  test("8: ORIGINATOR_ID is used instead of the router id", () => {
    // a's peer has the higher router id, but the lower ORIGINATOR_ID.
    const a = route({ peer: "10.0.0.9", ibgp: true, routerId: "9.9.9.9", originatorId: "1.1.1.1", path: [65001] });
    const b = route({ peer: "10.0.0.1", ibgp: true, routerId: "2.2.2.2", path: [65001] });
    decides(a, b, STEP.ROUTER_ID);
    const c = route({ peer: "10.0.0.1", ibgp: true, routerId: "0.0.0.1", originatorId: "200.1.1.1", path: [65001] });
    decides(a, c, STEP.ROUTER_ID);
  });

  test("9: shortest CLUSTER_LIST", () => {
    const a = route({ peer: "10.0.0.9", ibgp: true, originatorId: "1.1.1.1", clusterList: ["10.0.0.9"], path: [65001] });
    const b = route({ peer: "10.0.0.1", ibgp: true, originatorId: "1.1.1.1", clusterList: ["10.0.0.1", "10.0.0.2"], path: [65001] });
    decides(a, b, STEP.CLUSTER_LIST);
  });

  test("10: lowest peer address, IPv4 before IPv6", () => {
    const a = route({ peer: "192.0.2.1", routerId: "1.1.1.1" });
    const b = route({ peer: "192.0.2.2", routerId: "1.1.1.1" });
    decides(a, b, STEP.PEER_ADDRESS);
    const v6 = route({ peer: "2001:db8::1", routerId: "1.1.1.1" });
    const v4 = route({ peer: "255.255.255.255", routerId: "1.1.1.1" });
    decides(v4, v6, STEP.PEER_ADDRESS);
    decides(v6, route({ peer: "2001:db8::2", routerId: "1.1.1.1" }), STEP.PEER_ADDRESS);
  });

  test("final: lowest path id", () => {
    const a = route({ peer: "192.0.2.1", pathId: 1 });
    const b = route({ peer: "192.0.2.1", pathId: 2 });
    decides(a, b, STEP.PATH_ID);
    expect(compareRoutes(a, route({ peer: "192.0.2.1", pathId: 1 }))).toEqual({ winner: 0, step: STEP.EQUAL });
  });
});

describe("deterministic MED", () => {
  test("the classic order-dependent case gives the same best in every order", () => {
    // Pairwise, r1 beats r2 (router id), r2 beats r3 (router id), r3 beats r1 (MED): a cycle.
    const r1 = route({ peer: "192.0.2.1", asn: 65001, med: 10, routerId: "1.0.0.1" });
    const r2 = route({ peer: "192.0.2.2", asn: 65002, med: 0, routerId: "1.0.0.2" });
    const r3 = route({ peer: "192.0.2.3", asn: 65001, med: 5, routerId: "1.0.0.3" });
    expect(compareRoutes(r1, r2).winner).toBe(-1);
    expect(compareRoutes(r2, r3).winner).toBe(-1);
    expect(compareRoutes(r3, r1).winner).toBe(-1);
    // Group 65001 → r3 (MED), then r3 vs r2 → r2 (router id).
    for (const p of permutations([r1, r2, r3])) {
      const sel = selectBest(p);
      expect(sel.best).toBe(r2);
      expect(sel.reason).toBe(STEP.ROUTER_ID);
    }
    // With alwaysCompareMed the order is total: r2 (MED 0).
    for (const p of permutations([r1, r2, r3])) expect(selectBest(p, { alwaysCompareMed: true }).best).toBe(r2);
  });

  test("random candidate sets: shuffled input, same result", () => {
    const r = rng(42);
    for (let round = 0; round < 200; round++) {
      const n = 2 + Math.floor(r() * 8);
      const routes: Route[] = [];
      for (let i = 0; i < n; i++) {
        const asn = 65001 + Math.floor(r() * 3);
        const ibgp = r() < 0.3;
        routes.push(
          route({
            peer: `192.0.2.${i + 1}`,
            asn: ibgp ? LOCAL_AS : asn,
            ibgp,
            path: ibgp ? [asn] : [asn, ...(r() < 0.5 ? [1] : [])],
            med: r() < 0.2 ? null : Math.floor(r() * 4),
            routerId: `1.0.0.${Math.floor(r() * 250) + 1}`,
            igp: Math.floor(r() * 2),
            learnedAt: Math.floor(r() * 5),
            reachable: r() > 0.1,
          }),
        );
      }
      const opts: DecisionOptions = { multipath: { enabled: true, maxPaths: 3 }, preferOldest: r() < 0.5 };
      const ref = selectBest(routes, opts);
      const ranked = rankRoutes(routes, opts);
      for (let k = 0; k < 10; k++) {
        const s = shuffle(routes, r);
        const sel = selectBest(s, opts);
        expect(sel.best).toBe(ref.best);
        expect(sel.multipath).toEqual(ref.multipath);
        expect(sel.reason).toBe(ref.reason!);
        expect(rankRoutes(s, opts)).toEqual(ranked);
      }
      if (ref.best) expect(ranked[0]).toBe(ref.best);
    }
  });
});

describe("multipath", () => {
  const on = (maxPaths = 8, relax = false): DecisionOptions => ({ multipath: { enabled: true, maxPaths }, multipathRelax: relax });

  test("disabled: empty; enabled and alone: just the best", () => {
    const a = route({ peer: "192.0.2.1" });
    expect(selectBest([a]).multipath).toEqual([]);
    expect(selectBest([a, route({ peer: "192.0.2.2" })]).multipath).toEqual([]);
    expect(selectBest([a], on()).multipath).toEqual([a]);
    expect(selectBest([a, route({ peer: "192.0.2.2", lp: 50 })], on()).multipath).toEqual([a]);
  });

  test("equal routes from the same neighbour AS, best first", () => {
    const a = route({ peer: "192.0.2.3", asn: 65001, routerId: "1.0.0.1" });
    const b = route({ peer: "192.0.2.1", asn: 65001, routerId: "1.0.0.3" });
    const c = route({ peer: "192.0.2.2", asn: 65001, routerId: "1.0.0.2" });
    const sel = selectBest([b, c, a], on());
    expect(sel.best).toBe(a);
    expect(sel.multipath).toEqual([a, c, b]);
  });

  test("other neighbour ASes only with multipathRelax", () => {
    const a = route({ peer: "192.0.2.1", asn: 65001, routerId: "1.0.0.1" });
    const b = route({ peer: "192.0.2.2", asn: 65002, routerId: "1.0.0.2" });
    expect(selectBest([a, b], on()).multipath).toEqual([a]);
    expect(selectBest([a, b], on(8, true)).multipath).toEqual([a, b]);
    // Path length must still match under relax.
    const longer = route({ peer: "192.0.2.3", asn: 65003, path: [65003, 1] });
    expect(selectBest([a, b, longer], on(8, true)).multipath).toEqual([a, b]);
  });

  test("capped at maxPaths, by the remaining tie-breakers", () => {
    const rs = [4, 2, 3, 1].map((i) => route({ peer: `192.0.2.${i}`, asn: 65001, routerId: `1.0.0.${i}` }));
    const sel = selectBest(rs, on(2));
    expect(sel.multipath.map((r) => r.source.address)).toEqual(["192.0.2.1", "192.0.2.2"]);
    expect(selectBest(rs, on(1)).multipath.map((r) => r.source.address)).toEqual(["192.0.2.1"]);
    expect(selectBest(rs, on(16)).multipath.length).toBe(4);
  });

  test("differing IGP cost, MED, reachability are excluded", () => {
    const a = route({ peer: "10.0.0.1", ibgp: true, path: [65001], igp: 10 });
    const costly = route({ peer: "10.0.0.2", ibgp: true, path: [65001], igp: 20 });
    const med = route({ peer: "10.0.0.3", ibgp: true, path: [65001], igp: 10, med: 5 });
    const down = route({ peer: "10.0.0.4", ibgp: true, path: [65001], igp: 10, reachable: false });
    const same = route({ peer: "10.0.0.5", ibgp: true, path: [65001], igp: 10 });
    expect(selectBest([a, costly, med, down, same], on()).multipath).toEqual([a, same]);
  });

  test("iBGP and eBGP routes are not mixed", () => {
    const e = route({ peer: "192.0.2.1", asn: 65001 });
    const i = route({ peer: "10.0.0.1", ibgp: true, path: [65001] });
    const sel = selectBest([i, e], on(8, true));
    expect(sel.best).toBe(e);
    expect(sel.multipath).toEqual([e]);
  });
});

describe("compareCode", () => {
  test("agrees with DECISION_STEPS, step by step in its order, on random pairs (its steps are called directly)", () => {
    const r = rng(9);
    const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)]!;
    const mk = (i: number) =>
      route({
        peer: pick(["192.0.2.1", "192.0.2.2", "2001:db8::1"]),
        asn: pick([65001, 65002]),
        ibgp: r() < 0.3,
        local: r() < 0.05,
        routerId: pick(["1.0.0.1", "1.0.0.2", "255.0.0.1"]),
        lp: pick([null, 100, 200]),
        med: pick([null, 0, 5]),
        origin: pick([0, 1, 2]),
        path: pick([[65001], [65002, 1], [65001, 2, 3]]),
        igp: pick([0, 1]),
        learnedAt: pick([1, 2]),
        reachable: r() > 0.1,
        originatorId: pick([undefined, "9.9.9.9"]),
        clusterList: pick([[], ["1.1.1.1"]]),
        pathId: pick([0, 1]),
        prefix: `203.0.113.${i % 2}/32`,
      });
    const byTable = (a: Route, b: Route, opts: DecisionOptions) => {
      for (let i = 0; i < DECISION_STEPS.length; i++) {
        const d = DECISION_STEPS[i]!.compare(a, b, opts);
        if (d !== 0) return d < 0 ? -(i + 1) : i + 1;
      }
      return 0;
    };
    const seen = new Set<number>();
    for (let i = 0; i < 5000; i++) {
      const a = mk(i);
      const b = r() < 0.1 ? a : mk(i + 1);
      const opts: DecisionOptions = { alwaysCompareMed: r() < 0.3, preferOldest: r() < 0.5 };
      const c = compareCode(a, b, opts);
      expect(c).toBe(byTable(a, b, opts));
      seen.add(Math.abs(c));
    }
    // Most steps decided some pair (the check is not vacuous).
    expect(seen.size).toBeGreaterThanOrEqual(10);
  });
});

describe("helpers", () => {
  test("ipv4ToNumber", () => {
    expect(ipv4ToNumber("1.2.3.4")).toBe(0x01020304);
    expect(ipv4ToNumber("255.255.255.255")).toBe(0xffffffff);
    expect(ipv4ToNumber("1.2.3")).toBe(0);
    expect(ipv4ToNumber("1.2.3.256")).toBe(0);
  });

  test("rankRoutes: decision order, unreachable last", () => {
    const a = route({ peer: "192.0.2.1", lp: 300 });
    const b = route({ peer: "192.0.2.2", lp: 200 });
    const c = route({ peer: "192.0.2.3", lp: 400, reachable: false });
    const d = route({ peer: "192.0.2.4", lp: 100 });
    expect(rankRoutes([d, c, b, a])).toEqual([a, b, d, c]);
  });
});
