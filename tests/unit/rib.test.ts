/**
 * Unit tests of the RIBs: Adj-RIB-In (add/replace/withdraw, ADD-PATH, stale
 * marking and sweeping, per-family counts) and Loc-RIB (selection events only
 * on real change, removeSource, option changes, longest-match / longer /
 * shorter lookups), plus a one-million-route scale check.
 */
import { describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { type PathAttributes, emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { maskAddr, parseAddr, parsePrefix, prefixToString } from "../../lib/core/addr.ts";
import { type Prefix } from "../../lib/core/addr.ts";
import { SEG } from "../../lib/bgp/types.ts";
import { AdjRibIn } from "../../lib/rib/adj-rib-in.ts";
import { ipv4ToNumber, selectBest } from "../../lib/rib/decision.ts";
import { LocRib, type LocRibEvent, type LookupMode } from "../../lib/rib/loc-rib.ts";
import { type Route, type RouteSource, makeRoute, prefixKey, prefixKeyOfBytes, prefixOfKey, sameRoute, withFields } from "../../lib/rib/types.ts";

const LOCAL_AS = 65000;
const sources = new Map<string, RouteSource>();

function peer(address: string, asn = 65001): RouteSource {
  const id = `${address}/${asn}`;
  let s = sources.get(id);
  if (!s) {
    s = {
      id: address,
      address,
      addressBytes: parseAddr(address)!.addr,
      asn,
      routerId: address.includes(":") ? 0x0a000001 : ipv4ToNumber(address),
      ibgp: asn === LOCAL_AS,
      rrClient: false,
      local: false,
    };
    sources.set(id, s);
  }
  return s;
}

const LOCAL: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: LOCAL_AS, routerId: 0, ibgp: false, rrClient: false, local: true };

const interned = new Map<string, PathAttributes>();
function attrs(path: number[], lp: number | null = null, med: number | null = null): PathAttributes {
  const k = `${path.join(" ")}|${lp}|${med}`;
  let a = interned.get(k);
  if (!a) {
    a = emptyAttributes();
    a.origin = 0;
    a.asPath = asPathOf(path.length ? [{ type: SEG.AS_SEQUENCE, asns: path }] : []);
    a.localPref = lp;
    a.med = med;
    interned.set(k, a);
  }
  return a;
}

interface Opts {
  lp?: number | null;
  med?: number | null;
  path?: number[];
  pathId?: number;
  reachable?: boolean;
  igp?: number;
  learnedAt?: number;
}

function route(prefix: string | Prefix, src: RouteSource, o: Opts = {}): Route {
  const p = typeof prefix === "string" ? parsePrefix(prefix) : prefix;
  return {
    prefix: p,
    key: prefixKey(p),
    pathId: o.pathId ?? 0,
    source: src,
    attrs: attrs(o.path ?? (src.local || src.ibgp ? [] : [src.asn]), o.lp ?? null, o.med ?? null),
    nextHop: src.addressBytes.length ? src.addressBytes : new Uint8Array(4),
    learnedAt: o.learnedAt ?? 0,
    igpCost: o.igp ?? 0,
    reachable: o.reachable ?? true,
    stale: false,
  };
}

const key = (s: string) => prefixKey(parsePrefix(s));

function recorder(rib: LocRib): LocRibEvent[] {
  const evs: LocRibEvent[] = [];
  rib.subscribe((e) => evs.push(e));
  return evs;
}

describe("Adj-RIB-In", () => {
  const P = peer("192.0.2.1");

  test("add, replace, unchanged, withdraw", () => {
    const rib = new AdjRibIn(P);
    const r1 = route("203.0.113.0/24", P);
    expect(rib.update(r1)).toEqual({ op: "add", route: r1, old: null });
    // Same interned attributes and next hop: unchanged, the stored route is kept.
    const again = route("203.0.113.0/24", P, { learnedAt: 99 });
    const u = rib.update(again);
    expect(u.op).toBe("unchanged");
    expect(u.route).toBe(r1);
    expect(sameRoute(rib.get(r1.key)!, r1)).toBe(true);
    // New attributes: replace.
    const r2 = route("203.0.113.0/24", P, { med: 5 });
    expect(rib.update(r2)).toEqual({ op: "replace", route: r2, old: r1 });
    expect(sameRoute(rib.get(r1.key)!, r2)).toBe(true);
    expect(rib.count).toBe(1);
    expect(rib.withdraw(r1.key)).toBe(r2);
    expect(rib.withdraw(r1.key)).toBeNull();
    expect(rib.count).toBe(0);
  });

  test("attributes are stored as given (shared interned object)", () => {
    const rib = new AdjRibIn(P);
    const a = route("198.51.100.0/24", P);
    const b = route("198.51.100.128/25", P);
    rib.update(a);
    rib.update(b);
    expect(rib.get(a.key)!.attrs).toBe(rib.get(b.key)!.attrs);
  });

  test("ADD-PATH: several path ids per prefix", () => {
    const rib = new AdjRibIn(P);
    const r0 = route("203.0.113.0/24", P, { pathId: 1 });
    const r1 = route("203.0.113.0/24", P, { pathId: 2, med: 1 });
    const r2 = route("203.0.113.0/24", P, { pathId: 3, med: 2 });
    rib.update(r0);
    rib.update(r1);
    expect(rib.update(r2).op).toBe("add");
    expect(rib.count).toBe(3);
    expect([...rib.routes()]).toEqual([r0, r1, r2]);
    expect(sameRoute(rib.get(r0.key, 2)!, r1)).toBe(true);
    expect(rib.get(r0.key, 0)).toBeNull();
    const r1b = route("203.0.113.0/24", P, { pathId: 2, med: 9 });
    expect(rib.update(r1b)).toEqual({ op: "replace", route: r1b, old: r1 });
    expect(rib.withdraw(r0.key, 7)).toBeNull();
    expect(rib.withdraw(r0.key, 1)).toBe(r0);
    expect(rib.withdraw(r0.key, 3)).toBe(r2);
    expect([...rib.routes()]).toEqual([r1b]);
    expect(sameRoute(rib.get(r0.key, 2)!, r1b)).toBe(true);
    expect(rib.count).toBe(1);
  });

  test("count and routes() per family", () => {
    const rib = new AdjRibIn(P);
    rib.update(route("10.0.0.0/8", P));
    rib.update(route("10.1.0.0/16", P));
    rib.update(route("2001:db8::/32", P));
    expect(rib.countOf(1)).toBe(2);
    expect(rib.countOf(2)).toBe(1);
    expect(rib.count).toBe(3);
    expect([...rib.routes(2)].map((r) => prefixToString(r.prefix))).toEqual(["2001:db8::/32"]);
    expect([...rib.routes()].length).toBe(3);
    expect(rib.withdraw(prefixKey(parsePrefix("2001:db8::/32")))).not.toBeNull();
    expect(rib.countOf(2)).toBe(0);
    expect(rib.count).toBe(2);
    expect([...rib.drain()].length).toBe(2);
  });
});

describe("Adj-RIB-In with the Loc-RIB as its store", () => {
  const P = peer("192.0.2.1");
  /** What the neighbour does: update, then policy (`policy` returns what is accepted), then the Loc-RIB write with keepHere before or heldByStore after it. */
  function announce(adj: AdjRibIn, loc: LocRib, r: Route, policy: (r: Route) => Route | null = (x) => x): void {
    const ch = adj.update(r);
    if (ch.op === "unchanged" && !ch.old?.stale) return;
    importRoute(adj, loc, ch.route, policy(ch.route));
  }
  function importRoute(adj: AdjRibIn, loc: LocRib, given: Route, accepted: Route | null): void {
    if (accepted !== given) adj.keepHere(given);
    if (accepted) loc.upsert(accepted);
    else loc.remove(P.id, given.key, given.pathId);
    if (accepted === given) adj.heldByStore(given);
  }
  function withdraw(adj: AdjRibIn, loc: LocRib, k: Route["key"], pathId = 0): Route | null {
    const had = adj.withdraw(k, pathId);
    loc.remove(P.id, k, pathId);
    return had;
  }

  test("routes accepted as they came are kept by the Loc-RIB alone; rejected and changed ones are kept here; each is found, counted and walked once", () => {
    const loc = new LocRib();
    const adj = new AdjRibIn(P, loc);
    const a = route("198.51.100.0/24", P);
    const b = route("198.51.100.128/25", P);
    const c = route("203.0.113.0/24", P);
    const cChanged = withFields(c, { attrs: attrs([P.asn], 200) });
    announce(adj, loc, a);
    announce(adj, loc, b, () => null);
    announce(adj, loc, c, () => cChanged);
    expect(adj.count).toBe(3);
    expect(adj.keptHere).toBe(2);
    expect(sameRoute(adj.get(a.key)!, a)).toBe(true);
    expect(sameRoute(adj.get(b.key)!, b)).toBe(true);
    expect(sameRoute(adj.get(c.key)!, c)).toBe(true);
    expect(sameRoute(loc.candidate(P.id, c.key)!, cChanged)).toBe(true);
    expect(new Set(adj.routes())).toEqual(new Set([a, b, c]));
    expect([...adj.routes()].length).toBe(3);
    // The same route again: unchanged (found through the Loc-RIB), nothing moves.
    expect(adj.update(route("198.51.100.0/24", P)).op).toBe("unchanged");
    // A policy change: the rejected one is accepted as it is, the accepted one rejected.
    importRoute(adj, loc, b, b);
    importRoute(adj, loc, a, null);
    expect(adj.keptHere).toBe(2);
    expect(sameRoute(adj.get(a.key)!, a)).toBe(true);
    expect(sameRoute(adj.get(b.key)!, b)).toBe(true);
    expect(loc.candidate(P.id, a.key)).toBeNull();
    expect(sameRoute(loc.candidate(P.id, b.key)!, b)).toBe(true);
    // Withdrawn, whichever way each is kept.
    expect(withdraw(adj, loc, a.key)).toBe(a);
    expect(withdraw(adj, loc, b.key)).toBe(b);
    expect(withdraw(adj, loc, c.key)).toBe(c);
    expect(withdraw(adj, loc, c.key)).toBeNull();
    expect(adj.count).toBe(0);
    expect(adj.keptHere).toBe(0);
    expect(loc.count()).toBe(0);
    expect([...adj.routes()]).toEqual([]);
  });

  test("drop (the daemon's withdrawal) and hasCandidate answer as withdraw and candidate do, whichever way a route is kept, ADD-PATH paths and another source's candidates included", () => {
    const Q = peer("192.0.2.9");
    const loc = new LocRib();
    const adj = new AdjRibIn(P, loc);
    const adjQ = new AdjRibIn(Q, loc);
    const a = route("198.51.100.0/24", P); // held by the Loc-RIB
    const b = route("198.51.100.128/25", P); // rejected: kept here
    const c = route("203.0.113.0/24", P); // accepted changed: kept here, the Loc-RIB holds the change
    const p1 = route("192.0.2.128/25", P, { pathId: 1 });
    const p2 = route("192.0.2.128/25", P, { pathId: 2, med: 1 });
    const q = route("198.51.100.0/24", Q); // another source, same prefix as a
    const q2 = route("10.1.0.0/16", Q);
    announce(adj, loc, a);
    announce(adj, loc, b, () => null);
    announce(adj, loc, c, () => withFields(c, { attrs: attrs([P.asn], 200) }));
    announce(adj, loc, p1);
    announce(adj, loc, p2);
    announce(adjQ, loc, q);
    announce(adjQ, loc, q2);
    const cases: [Route, number][] = [[a, 0], [b, 0], [c, 0], [p1, 1], [p2, 2], [p1, 3], [q2, 0], [route("192.0.2.0/24", P), 0]];
    for (const [r, id] of cases) expect(loc.hasCandidate(P, r.key, id), `${prefixToString(r.prefix)}#${id}`).toBe(loc.candidate(P.id, r.key, id) !== null);
    expect(loc.hasCandidate(Q, a.key, 0)).toBe(true);
    expect(loc.hasCandidate(Q, c.key, 0)).toBe(false);
    // drop: true once for each route of P's, false for what it does not have, counts follow; Q's routes stay.
    const drop = (k: Route["key"], id = 0) => {
      const had = adj.drop(k, id);
      loc.remove(P.id, k, id);
      return had;
    };
    expect([drop(a.key), drop(a.key), drop(b.key), drop(c.key), drop(p1.key, 1), drop(p1.key, 3), drop(p2.key, 2), drop(q2.key)]).toEqual([true, false, true, true, true, false, true, false]);
    expect(adj.count).toBe(0);
    expect(adj.keptHere).toBe(0);
    expect(adjQ.count).toBe(2);
    expect(loc.count()).toBe(2);
  });

  test("a full table accepted as it is keeps nothing here; replaced routes and ADD-PATH paths follow the Loc-RIB", () => {
    const loc = new LocRib();
    const adj = new AdjRibIn(P, loc);
    for (let i = 0; i < 200; i++) announce(adj, loc, route(`10.${i}.0.0/16`, P));
    expect(adj.count).toBe(200);
    expect(adj.keptHere).toBe(0);
    const r2 = route("10.7.0.0/16", P, { med: 5 });
    const ch = adj.update(r2);
    expect(ch.op).toBe("replace");
    importRoute(adj, loc, r2, r2);
    expect(sameRoute(adj.get(r2.key)!, r2)).toBe(true);
    const p1 = route("192.0.2.128/25", P, { pathId: 1 });
    const p2 = route("192.0.2.128/25", P, { pathId: 2, med: 1 });
    announce(adj, loc, p1);
    announce(adj, loc, p2, () => null);
    expect(sameRoute(adj.get(p1.key, 1)!, p1)).toBe(true);
    expect(sameRoute(adj.get(p1.key, 2)!, p2)).toBe(true);
    expect(adj.keptHere).toBe(1);
    expect(adj.count).toBe(202);
    expect([...adj.routes(1)].length).toBe(202);
  });

  test("a stale route re-announced unchanged is refreshed as an unstale copy, wherever it is kept", () => {
    const loc = new LocRib();
    const adj = new AdjRibIn(P, loc);
    const a = route("198.51.100.0/24", P, { learnedAt: 5 });
    const b = route("203.0.113.0/24", P, { learnedAt: 6 });
    announce(adj, loc, a);
    announce(adj, loc, b, () => null);
    a.stale = true;
    b.stale = true;
    announce(adj, loc, route("198.51.100.0/24", P, { learnedAt: 50 }));
    announce(adj, loc, route("203.0.113.0/24", P, { learnedAt: 60 }), () => null);
    const a2 = adj.get(a.key)!;
    const b2 = adj.get(b.key)!;
    expect([a2.stale, a2.learnedAt, b2.stale, b2.learnedAt]).toEqual([false, 5, false, 6]);
    expect(sameRoute(loc.candidate(P.id, a.key)!, a2)).toBe(true);
    expect(adj.keptHere).toBe(1);
    expect(adj.count).toBe(2);
  });

  test("routes of an ended session (another source object, same id) are not this one's; drain walks both kinds while they are removed", () => {
    const loc = new LocRib();
    const adj = new AdjRibIn(P, loc);
    const a = route("198.51.100.0/24", P);
    const b = route("203.0.113.0/24", P);
    announce(adj, loc, a);
    announce(adj, loc, b, () => null);
    const next = { ...P };
    const adj2 = new AdjRibIn(next, loc);
    expect(adj2.get(a.key)).toBeNull();
    expect([...adj2.routes()]).toEqual([]);
    const a2 = route("198.51.100.0/24", next);
    expect(adj2.update(a2).op).toBe("add");
    loc.upsert(a2);
    adj2.heldByStore(a2);
    const seen: Route[] = [];
    for (const r of adj.drain()) {
      seen.push(r);
      loc.remove(P.id, r.key, r.pathId, P);
    }
    // a was replaced by the new session's route before the drain: only b is left of the old session.
    expect(seen).toEqual([b]);
    expect(sameRoute(loc.candidate(P.id, a.key)!, a2)).toBe(true);
    expect(sameRoute(adj2.get(a.key)!, a2)).toBe(true);
  });

  test("a store needs a source", () => {
    expect(() => new AdjRibIn(null, new LocRib())).toThrow(/needs the source/);
  });
});

describe("Loc-RIB", () => {
  const A = peer("192.0.2.1", 65001);
  const B = peer("192.0.2.2", 65002);
  const C = peer("192.0.2.3", 65001);

  test("events only when the best route changes", () => {
    const rib = new LocRib();
    const evs = recorder(rib);
    const a = route("203.0.113.0/24", A);
    const ev = rib.upsert(a);
    expect(ev).not.toBeNull();
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ key: a.key, oldBest: null, newBest: a, multipath: [] });
    expect(prefixToString(evs[0]!.prefix)).toBe("203.0.113.0/24");
    // A worse route: no event.
    const b = route("203.0.113.0/24", B, { path: [65002, 1] });
    expect(rib.upsert(b)).toBeNull();
    // Same object again: no event.
    expect(rib.upsert(b)).toBeNull();
    expect(evs).toHaveLength(1);
    expect(rib.get(a.key)!.routes).toHaveLength(2);
    // Why a wins is worked out when read, and follows the runner-up even when the best stays.
    expect(rib.get(a.key)!.reason).toBe("as-path");
    // b becomes better (replaces B's route).
    const b2 = route("203.0.113.0/24", B, { lp: 200 });
    rib.upsert(b2);
    expect(evs).toHaveLength(2);
    expect(evs[1]).toMatchObject({ oldBest: a, newBest: b2 });
    expect(rib.get(a.key)!.reason).toBe("local-pref");
    expect(rib.get(a.key)!.routes).toHaveLength(2);
    // Removing the non-best: no event.
    expect(rib.remove(A.id, a.key)).toBeNull();
    expect(rib.remove(A.id, a.key)).toBeNull();
    expect(evs).toHaveLength(2);
    // Removing the last: event, entry gone.
    const last = rib.remove(B.id, a.key);
    expect(last).toMatchObject({ oldBest: b2, newBest: null });
    expect(evs).toHaveLength(3);
    expect(rib.get(a.key)).toBeNull();
    expect(rib.count()).toBe(0);
    expect(rib.pathCount()).toBe(0);
  });

  test("replacing the best route with new attributes is a change", () => {
    const rib = new LocRib();
    const evs = recorder(rib);
    rib.upsert(route("203.0.113.0/24", A));
    const a2 = route("203.0.113.0/24", A, { med: 7 });
    rib.upsert(a2);
    expect(evs).toHaveLength(2);
    expect(evs[1]!.newBest).toBe(a2);
    expect(sameRoute(rib.best(a2.key)!, a2)).toBe(true);
  });

  test("multipath set changes are events even when the best stays", () => {
    const rib = new LocRib({ multipath: { enabled: true, maxPaths: 4 } });
    const evs = recorder(rib);
    const a = route("203.0.113.0/24", A);
    const c = route("203.0.113.0/24", C);
    rib.upsert(a);
    expect(evs[0]!.multipath).toEqual([a]);
    rib.upsert(c);
    expect(evs).toHaveLength(2);
    expect(evs[1]).toMatchObject({ oldBest: a, newBest: a, multipath: [a, c], oldMultipath: [a] });
    // Different AS: not in the set, no event.
    rib.upsert(route("203.0.113.0/24", B));
    expect(evs).toHaveLength(2);
    // Relax: now it is.
    expect(rib.setOptions({ multipathRelax: true })).toBe(1);
    expect(evs[2]!.multipath.map((r) => r.source.id)).toEqual([A.id, B.id, C.id]);
    rib.remove(C.id, a.key);
    expect(evs[3]!.multipath.map((r) => r.source.id)).toEqual([A.id, B.id]);
  });

  test("unreachable routes stay candidates but are never best", () => {
    const rib = new LocRib();
    const evs = recorder(rib);
    const down = route("203.0.113.0/24", A, { reachable: false });
    expect(rib.upsert(down)).toBeNull();
    expect(evs).toHaveLength(0);
    expect(rib.count()).toBe(1);
    expect(rib.best(down.key)).toBeNull();
    expect(rib.longestMatch(parsePrefix("203.0.113.7/32"), true)).toBeNull();
    rib.upsert(route("203.0.113.0/24", A));
    expect(evs).toHaveLength(1);
    expect(rib.longestMatch(parsePrefix("203.0.113.7/32"), true)!.best).not.toBeNull();
  });

  test("removeSource: only its routes, events where the best changed", () => {
    const rib = new LocRib();
    const local = route("10.0.0.0/8", LOCAL);
    rib.upsert(local);
    for (let i = 0; i < 10; i++) {
      rib.upsert(route(`10.${i}.0.0/16`, A));
      rib.upsert(route(`10.${i}.0.0/16`, B, { path: [65002, 1] }));
      rib.upsert(route(`10.${i}.0.0/16`, A, { pathId: 5, med: 1 })); // ADD-PATH second path
    }
    rib.upsert(route("2001:db8::/32", A));
    expect(rib.count()).toBe(12);
    expect(rib.pathCount()).toBe(32);
    expect(rib.sourceIds().sort()).toEqual([A.id, B.id, "local"]);
    const evs = recorder(rib);
    expect(rib.removeSource(B.id)).toBe(10);
    expect(evs).toHaveLength(0); // B was never best
    expect(rib.removeSource(A.id)).toBe(21);
    expect(evs).toHaveLength(11);
    expect(evs.every((e) => e.newBest === null)).toBe(true);
    expect(rib.count()).toBe(1);
    expect(rib.count(2)).toBe(0);
    expect(rib.pathCount()).toBe(1);
    expect(sameRoute(rib.best(local.key)!, local)).toBe(true);
    expect(rib.removeSource(A.id)).toBe(0);
    expect(rib.sourceIds()).toEqual(["local"]);
    expect([...rib.routesOf("local")]).toEqual([local]);
  });

  test("remove keeps the source index right with ADD-PATH", () => {
    const rib = new LocRib();
    rib.upsert(route("10.0.0.0/24", A, { pathId: 1 }));
    rib.upsert(route("10.0.0.0/24", A, { pathId: 2 }));
    rib.remove(A.id, key("10.0.0.0/24"), 1);
    expect([...rib.routesOf(A.id)].map((r) => r.pathId)).toEqual([2]);
    expect(rib.removeSource(A.id)).toBe(1);
    expect(rib.count()).toBe(0);
  });

  test("routesOf: exactly a source's routes, in table order, through random adds, replacements and removals (both families, ADD-PATH)", () => {
    const rib = new LocRib();
    const srcs = [peer("192.0.2.101"), peer("192.0.2.102"), peer("192.0.2.103"), peer("2001:db8::104", 65004)];
    let seed = 7;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    const prefixOf = (i: number) => (i % 5 === 4 ? `2001:db8:${(i % 700).toString(16)}::/48` : `10.${(i >> 8) & 255}.${i & 255}.0/24`);
    for (let step = 0; step < 6000; step++) {
      const src = srcs[rnd(srcs.length)]!;
      const pfx = prefixOf(rnd(3000));
      const pathId = rnd(4) === 0 ? 1 + rnd(2) : 0;
      if (rnd(3) === 0) rib.remove(src.id, key(pfx), pathId);
      else rib.upsert(route(pfx, src, { pathId, med: rnd(3) }));
      if (step % 500 === 499) {
        for (const s of srcs) {
          const walked = [...rib.routesOf(s.id)].map((r) => `${r.key}#${r.pathId}`);
          const filtered = [...rib.walkCandidates()].filter((r) => r.source.id === s.id).map((r) => `${r.key}#${r.pathId}`);
          expect(walked).toEqual(filtered);
          for (const afi of [1, 2] as const) {
            expect([...rib.routesOf(s.id, afi)].map((r) => `${r.key}#${r.pathId}`)).toEqual([...rib.walkCandidates(afi)].filter((r) => r.source.id === s.id).map((r) => `${r.key}#${r.pathId}`));
          }
        }
      }
    }
    // Removed source by source, through removeSource and remove: nothing is left to walk.
    expect(rib.removeSource(srcs[0]!.id)).toBeGreaterThan(0);
    expect([...rib.routesOf(srcs[0]!.id)]).toEqual([]);
    for (const s of srcs.slice(1)) for (const r of [...rib.routesOf(s.id)]) rib.remove(s.id, r.key, r.pathId);
    expect(rib.count()).toBe(0);
    for (const s of srcs) expect([...rib.routesOf(s.id)]).toEqual([]);
  });

  test("routesOf passes over the stretches of the table where the source has no routes (twenty peers' blocks: one peer's walk visits its own)", () => {
    const rib = new LocRib();
    const srcs = Array.from({ length: 20 }, (_, i) => peer(`198.51.100.${i + 1}`));
    // Each peer's 2,000 prefixes arrive together: they lie together in the table.
    for (const [i, s] of srcs.entries()) for (let j = 0; j < 2000; j++) rib.upsert(route(`10.${i}.${j >> 3}.${(j & 7) << 5}/27`, s));
    const last = srcs[19]!;
    const proto = Object.getPrototypeOf((rib as unknown as { v4: object }).v4) as { holds(p: number): boolean };
    const holds = proto.holds;
    let visited = 0;
    proto.holds = function (this: unknown, p: number) {
      visited++;
      return holds.call(this, p);
    };
    let n = 0;
    try {
      for (const _ of rib.routesOf(last.id)) n++;
    } finally {
      proto.holds = holds;
    }
    expect(n).toBe(2000);
    // Its own 2,000 positions and at most the rest of the runs of 512 they share with others: not the table's 40,000.
    expect(visited).toBeLessThan(2000 + 2 * 512);
  });

  test("option change and reevaluate", () => {
    const rib = new LocRib();
    const a = route("203.0.113.0/24", A, { med: 50 }); // router id 192.0.2.1
    const b = route("203.0.113.0/24", B, { med: 10 });
    rib.upsert(a);
    rib.upsert(b);
    expect(sameRoute(rib.best(a.key)!, a)).toBe(true);
    const evs = recorder(rib);
    expect(rib.reevaluate()).toBe(0);
    expect(evs).toHaveLength(0);
    expect(rib.setOptions({ alwaysCompareMed: true })).toBe(1);
    expect(evs[0]).toMatchObject({ oldBest: a, newBest: b });
    expect(rib.options.alwaysCompareMed).toBe(true);
    expect(rib.reevaluate([a.key, key("198.51.100.0/24")])).toBe(0);
  });

  test("entries per family, longest match, longer, shorter", () => {
    const rib = new LocRib();
    for (const p of ["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.2.0.0/16", "11.0.0.0/8", "2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64", "2001:db9::/32"]) {
      rib.upsert(route(p, A));
    }
    const names = (es: { prefix: Prefix }[]) => es.map((e) => prefixToString(e.prefix));
    expect(rib.count(1)).toBe(7);
    expect(rib.count(2)).toBe(4);
    expect(names([...rib.entries(2)]).sort()).toEqual(["2001:db8:1:2::/64", "2001:db8:1::/48", "2001:db8::/32", "2001:db9::/32"]);
    expect(rib.bestCount()).toBe(11);

    expect(names([rib.longestMatch(parsePrefix("10.1.2.200/32"))!])).toEqual(["10.1.2.128/25"]);
    expect(names([rib.longestMatch(parsePrefix("10.1.2.5/32"))!])).toEqual(["10.1.2.0/24"]);
    expect(names([rib.longestMatch(parsePrefix("10.1.3.0/24"))!])).toEqual(["10.1.0.0/16"]);
    expect(names([rib.longestMatch(parsePrefix("192.168.0.1/32"))!])).toEqual(["0.0.0.0/0"]);
    expect(names([rib.longestMatch(parsePrefix("2001:db8:1:2::1/128"))!])).toEqual(["2001:db8:1:2::/64"]);
    expect(names([rib.longestMatch(parsePrefix("2001:db8:ffff::/48"))!])).toEqual(["2001:db8::/32"]);
    expect(rib.longestMatch(parsePrefix("2001:dba::/32"))).toBeNull();

    expect(names(rib.shorter(parsePrefix("10.1.2.128/25")))).toEqual(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25"]);
    expect(names(rib.shorter(parsePrefix("10.1.3.0/24")))).toEqual(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16"]);
    expect(names(rib.shorter(parsePrefix("2001:db8:1:2::/64")))).toEqual(["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64"]);

    expect(names(rib.longer(parsePrefix("10.0.0.0/8")))).toEqual(["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.2.0.0/16"]);
    expect(names(rib.longer(parsePrefix("10.1.0.0/16")))).toEqual(["10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25"]);
    expect(names(rib.longer(parsePrefix("10.3.0.0/16")))).toEqual([]);
    expect(names(rib.longer(parsePrefix("0.0.0.0/0")))).toHaveLength(7);
    expect(names(rib.longer(parsePrefix("2001:db8::/32")))).toEqual(["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64"]);
    expect(names(rib.longer(parsePrefix("2001:db8::/31")))).toEqual(["2001:db8::/32", "2001:db8:1::/48", "2001:db8:1:2::/64", "2001:db9::/32"]);

    const q = (s: string, m: LookupMode) => rib.lookup(parsePrefix(s), m).map(prefixToString);
    expect(q("10.1.0.0/16", "exact")).toEqual(["10.1.0.0/16"]);
    expect(q("10.1.0.0/17", "exact")).toEqual([]);
    expect(q("10.1.2.3/32", "longest")).toEqual(["10.1.2.0/24"]);
    expect(q("10.1.2.0/24", "shorter")).toEqual(["0.0.0.0/0", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24"]);
    expect(q("10.1.0.0/16", "longer")).toEqual(["10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25"]);
    expect(rib.lookup(parsePrefix("2001:db8:1::1/128"))).toHaveLength(1);
    expect([...rib.bests(2)]).toHaveLength(4);
  });

  test("a prefix's only selected route is stored as itself: reachability and multipath changes still give the right events", () => {
    const rib = new LocRib();
    const evs = recorder(rib);
    const r = route("203.0.113.0/24", A);
    rib.upsert(r);
    expect(evs).toHaveLength(1);
    expect(evs[0]).toMatchObject({ oldBest: null, newBest: r, multipath: [], oldMultipath: [] });
    expect(rib.get(r.key)).toMatchObject({ best: r, routes: [r], multipath: [], reason: "only-path" });
    // The next-hop tracker flips reachability in place, then asks for a re-run.
    r.reachable = false;
    expect(rib.reevaluate([r.key])).toBe(1);
    expect(evs[1]).toMatchObject({ oldBest: r, newBest: null });
    expect(rib.best(r.key)).toBeNull();
    expect(rib.get(r.key)!.routes).toEqual([r]);
    expect(rib.bestCount()).toBe(0);
    r.reachable = true;
    expect(rib.reevaluate([r.key])).toBe(1);
    expect(evs[2]).toMatchObject({ oldBest: null, newBest: r });
    expect(rib.reevaluate([r.key])).toBe(0);
    // Turning multipath on changes the set of every single-route prefix: one event each.
    expect(rib.setOptions({ multipath: { enabled: true, maxPaths: 4 } })).toBe(1);
    expect(evs[3]).toMatchObject({ oldBest: r, newBest: r, oldMultipath: [], multipath: [r] });
    expect(rib.get(r.key)!.multipath).toEqual([r]);
    // A second candidate and its withdrawal: back to the single route, no event when the best stays.
    const worse = route("203.0.113.0/24", B, { path: [65002, 1, 2] });
    rib.upsert(worse);
    expect(evs).toHaveLength(4);
    expect(rib.get(r.key)!.routes).toHaveLength(2);
    rib.remove(B.id, r.key);
    expect(evs).toHaveLength(4);
    expect(rib.get(r.key)).toMatchObject({ best: r, routes: [r], multipath: [r] });
    // Replacing it with an unreachable route of the same source: the prefix has no best.
    const down = route("203.0.113.0/24", A, { reachable: false, med: 5 });
    rib.upsert(down);
    expect(evs[4]).toMatchObject({ oldBest: r, newBest: null, oldMultipath: [r], multipath: [] });
    expect(rib.sourceCount(A.id)).toBe(1);
    expect(rib.pathCount()).toBe(1);
    rib.remove(A.id, r.key);
    expect(rib.count()).toBe(0);
    expect(rib.sourceCount(A.id)).toBe(0);
    expect(evs).toHaveLength(5);
  });

  test("removeSource of a source with single-route slots and shared ones", () => {
    const rib = new LocRib();
    for (let i = 0; i < 50; i++) {
      rib.upsert(route(`198.51.${i}.0/24`, A));
      rib.upsert(route(`198.51.${i}.0/24`, B, { path: [65002, 9] }));
    }
    for (let i = 0; i < 20; i++) rib.upsert(route(`203.0.${i}.0/24`, A));
    rib.upsert(route("2001:db8::/32", B));
    expect(rib.sourceCount(A.id)).toBe(70);
    expect(rib.removeSource(A.id)).toBe(70);
    expect(rib.sourceCount(A.id)).toBe(0);
    expect(rib.count()).toBe(51);
    expect([...rib.bests()].every((r) => r.source === B)).toBe(true);
    expect(rib.removeSource(B.id)).toBe(51);
    expect(rib.count()).toBe(0);
  });

  test("source counts stay exact whatever order sources come, go and come back in (against a model)", () => {
    const rib = new LocRib();
    const model = new Map<string, Set<string>>();
    const srcs = [A, B];
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 8) % n;
    const check = () => {
      for (const s of srcs) expect(rib.sourceCount(s.id)).toBe(model.get(s.id)?.size ?? 0);
      expect(rib.sourceIds().sort()).toEqual([...model].filter(([, v]) => v.size > 0).map(([k]) => k).sort());
    };
    for (let step = 0; step < 3000; step++) {
      const s = srcs[rnd(2)]!;
      const p = `198.51.${rnd(40)}.0/24`;
      const op = rnd(100);
      const set = model.get(s.id) ?? new Set<string>();
      model.set(s.id, set);
      if (op < 60) {
        rib.upsert(route(p, s, s === A ? {} : { path: [65002, 9] }));
        set.add(p);
      } else if (op < 95) {
        rib.remove(s.id, route(p, s).key);
        set.delete(p);
      } else if (op < 99) {
        expect(rib.removeSource(s.id)).toBe(set.size);
        set.clear();
      } else {
        rib.clear();
        model.clear();
      }
      if (step % 50 === 0) check();
    }
    check();
  });

  test("setOptionsSliced: the same re-run as setOptions, over several turns of the loop", async () => {
    const build = () => {
      const rib = new LocRib();
      for (let i = 0; i < 40_000; i++) {
        const p = `10.${i >> 8}.${i & 255}.0/24`;
        rib.upsert(route(p, A, { med: 50 }));
        rib.upsert(route(p, B, { med: 10 }));
      }
      return rib;
    };
    const sync = build();
    expect(sync.setOptions({ alwaysCompareMed: true })).toBe(40_000);
    const rib = build();
    const evs = recorder(rib);
    let ticks = 0;
    let during = 0;
    const timer = setInterval(() => {
      ticks++;
      if (evs.length > 0 && evs.length < 40_000) during++;
    }, 1);
    const changed = await rib.setOptionsSliced({ alwaysCompareMed: true });
    clearInterval(timer);
    expect(changed).toBe(40_000);
    expect(evs.every((e) => e.newBest!.source === B)).toBe(true);
    expect(during).toBeGreaterThan(0); // a timer ran while the table was half re-run
    expect(ticks).toBeGreaterThan(0);
    // A multipath switch is re-run in slices too, with the result setOptions gives.
    const syncMp = build();
    syncMp.setOptions({ alwaysCompareMed: true });
    expect(syncMp.setOptions({ multipath: { enabled: true, maxPaths: 2 } })).toBe(40_000);
    evs.length = 0;
    during = 0;
    const timer2 = setInterval(() => {
      if (evs.length > 0 && evs.length < 40_000) during++;
    }, 1);
    expect(await rib.setOptionsSliced({ multipath: { enabled: true, maxPaths: 2 } })).toBe(40_000);
    clearInterval(timer2);
    expect(during).toBeGreaterThan(0);
    for (const k of [...syncMp.bests()].slice(0, 500).map((r) => r.key)) expect(rib.get(k)!.multipath).toEqual(syncMp.get(k)!.multipath);
  });

  test("setOptionsSliced, multipath on and off: a prefix with its only route switches at once without an event; one with several candidates is selected again", async () => {
    const rib = new LocRib();
    const single = route("203.0.113.0/24", A);
    rib.upsert(single);
    const a = route("198.51.100.0/24", A);
    const c = route("198.51.100.0/24", C);
    rib.upsert(a);
    rib.upsert(c);
    const evs = recorder(rib);
    expect(await rib.setOptionsSliced({ multipath: { enabled: true, maxPaths: 4 } })).toBe(1);
    expect(evs).toHaveLength(1);
    expect(evs[0]!.key).toBe(a.key);
    expect(evs[0]!.multipath).toHaveLength(2);
    expect(rib.get(single.key)).toMatchObject({ best: single, multipath: [single] });
    expect(await rib.setOptionsSliced({ multipath: { enabled: false, maxPaths: 4 } })).toBe(1);
    expect(evs[1]!.multipath).toEqual([]);
    expect(rib.get(single.key)).toMatchObject({ best: single, multipath: [] });
    expect(rib.get(a.key)!.multipath).toEqual([]);
  });

  test("unsubscribe", () => {
    const rib = new LocRib();
    const evs: LocRibEvent[] = [];
    const off = rib.subscribe((e) => evs.push(e));
    rib.upsert(route("10.0.0.0/8", A));
    off();
    rib.upsert(route("11.0.0.0/8", A));
    expect(evs).toHaveLength(1);
  });
});

describe("Loc-RIB: a prefix's one selected candidate kept as its head; events reused", () => {
  const P = peer("192.0.2.1");
  const Q = peer("192.0.2.2", 65002);
  const mk = (p: string, src = P, o: { learnedAt?: number; pathId?: number } = {}) => makeRoute(key(p), o.pathId ?? 0, src, attrs([src.asn]), src.addressBytes, o.learnedAt ?? 1);

  test("no object per prefix: 20,000 routes sharing one head leave a handful of objects in the heap", () => {
    const rib = new LocRib();
    const at = attrs([65001, 64512]);
    Bun.gc(true);
    const before = heapStats().objectCount;
    for (let i = 0; i < 20_000; i++) rib.upsert(makeRoute((0x0a000000 + i * 256) * 64 + 24, 0, P, at, P.addressBytes, 7));
    Bun.gc(true);
    const grown = heapStats().objectCount - before;
    expect(rib.count()).toBe(20_000);
    expect(rib.bestCount()).toBe(20_000);
    // A route object kept per prefix would be 20,000 more; the table's storage chunks and one head are a few.
    expect(grown).toBeLessThan(2_000);
  });

  test("a read makes the route again; setting its next-hop state or stale mark moves the table's head; a read of an older head changes nothing", () => {
    const rib = new LocRib();
    const k = key("198.51.100.0/24");
    const r = mk("198.51.100.0/24");
    rib.upsert(r);
    const a = rib.best(k)!;
    const b = rib.best(k)!;
    expect(a).not.toBe(b);
    expect(sameRoute(a, b) && sameRoute(a, r)).toBe(true);
    expect([a.learnedAt, a.source, a.attrs]).toEqual([r.learnedAt, r.source, r.attrs]);
    a.igpCost = 20;
    expect(rib.best(k)!.igpCost).toBe(20);
    expect(sameRoute(rib.best(k)!, r)).toBe(false);
    b.igpCost = 30; // b was made from the head the table no longer holds
    expect(rib.best(k)!.igpCost).toBe(20);
    const c = rib.candidate(P.id, k)!;
    c.stale = true;
    expect(rib.get(k)!.best!.stale).toBe(true);
    // Unreachable, as the next-hop tracker marks it, then re-run: no best, an event.
    const evs = recorder(rib);
    rib.best(k)!.reachable = false;
    expect(rib.reevaluate([k])).toBe(1);
    expect(rib.best(k)).toBeNull();
    expect(evs.map((e) => [e.oldBest?.igpCost, e.newBest])).toEqual([[20, null]]);
    // Reachable again (the candidate now sits in an entry: its own object changes).
    rib.candidate(P.id, k)!.reachable = true;
    expect(rib.reevaluate([k])).toBe(1);
    expect(rib.best(k)!.stale).toBe(true);
  });

  test("the same route or head again is no change; a new announcement replaces it", () => {
    const rib = new LocRib();
    const evs = recorder(rib);
    const r = mk("203.0.113.0/24", P, { learnedAt: 5 });
    expect(rib.upsert(r)).not.toBeNull();
    expect(rib.upsert(r)).toBeNull();
    expect(rib.upsert(rib.best(r.key)!)).toBeNull();
    const r2 = mk("203.0.113.0/24", P, { learnedAt: 6 });
    const ev = rib.upsert(r2)!;
    expect(ev.oldBest!.learnedAt).toBe(5);
    expect(ev.newBest).toBe(r2);
    expect(evs).toHaveLength(2);
  });

  test("two candidates in an entry; one withdrawn: the other is a head again, and its changes still reach the table", () => {
    const rib = new LocRib();
    const k = key("192.0.2.0/24");
    rib.upsert(mk("192.0.2.0/24", P, { learnedAt: 1 }));
    rib.upsert(mk("192.0.2.0/24", Q, { learnedAt: 2 }));
    expect(rib.get(k)!.routes).toHaveLength(2);
    rib.remove(P.id, k);
    expect(rib.get(k)!.routes.map((r) => r.source.id)).toEqual([Q.id]);
    const q = rib.best(k)!;
    q.igpCost = 7;
    expect(rib.candidate(Q.id, k)!.igpCost).toBe(7);
    expect([...rib.walkCandidates()].map((r) => [r.source.id, r.igpCost])).toEqual([[Q.id, 7]]);
  });

  test("reused events: one object for every change, the right fields in each; a change made during a delivery gets its own", () => {
    const rib = new LocRib();
    rib.reuseEvents();
    const seen: string[] = [];
    const objs = new Set<LocRibEvent>();
    let nested = false;
    rib.subscribe((e) => {
      objs.add(e);
      seen.push(`${prefixToString(e.prefix)} ${e.oldBest?.learnedAt ?? "-"}→${e.newBest?.learnedAt ?? "-"}`);
      if (!nested && e.newBest?.learnedAt === 2) {
        nested = true;
        rib.upsert(mk("203.0.113.0/24", Q, { learnedAt: 9 })); // from inside the delivery
        // The outer event still says what it said.
        seen.push(`after nested: ${prefixToString(e.prefix)} ${e.newBest?.learnedAt}`);
      }
    });
    rib.upsert(mk("192.0.2.0/24", P, { learnedAt: 1 }));
    rib.upsert(mk("192.0.2.0/24", P, { learnedAt: 2 }));
    rib.remove(P.id, key("192.0.2.0/24"));
    expect(seen).toEqual(["192.0.2.0/24 -→1", "192.0.2.0/24 1→2", "203.0.113.0/24 -→9", "after nested: 192.0.2.0/24 2", "192.0.2.0/24 2→-"]);
    expect(objs.size).toBe(2);
  });

  test("several candidates per prefix keep no route object either: 3 peers × 10,000 prefixes add an entry and its list per prefix, not a route per candidate or for the best", () => {
    const rib = new LocRib();
    const R = peer("192.0.2.3", 65003);
    const sets = [P, Q, R].map((src) => [src, attrs([src.asn, 64512])] as const);
    Bun.gc(true);
    const before = heapStats().objectCount;
    for (const [src, at] of sets) for (let i = 0; i < 10_000; i++) rib.upsert(makeRoute((0x0a000000 + i * 256) * 64 + 24, 0, src, at, src.addressBytes, 7));
    Bun.gc(true);
    const grown = heapStats().objectCount - before;
    expect(rib.pathCount()).toBe(30_000);
    expect(rib.bestCount()).toBe(10_000);
    // Three heap cells per prefix (the entry, its list of heads and the list's storage); a route kept per candidate would be 30,000 more, a best route per prefix 10,000.
    expect(grown).toBeLessThan(3 * 10_000 + 2_000);
    expect(grown).toBeGreaterThan(2 * 10_000);
  });

  test("candidates of an entry: a read route's next-hop state is written back, the selection follows it; an unchanged selection sends nothing, a new announcement does", () => {
    const rib = new LocRib();
    const k = key("198.51.100.0/24");
    // Q's path is longer: P is best.
    rib.upsert(makeRoute(k, 0, P, attrs([P.asn]), P.addressBytes, 1));
    rib.upsert(makeRoute(k, 0, Q, attrs([Q.asn, 64512]), Q.addressBytes, 2));
    const evs = recorder(rib);
    expect(rib.best(k)!.source).toBe(P);
    // The IGP cost of the best changes (the tracker's doing): written back, same selection, no event.
    rib.candidate(P.id, k)!.igpCost = 40;
    expect(rib.reevaluate([k])).toBe(0);
    expect(rib.best(k)!.igpCost).toBe(40);
    expect(rib.get(k)!.routes.map((r) => [r.source.id, r.igpCost])).toEqual([[P.id, 40], [Q.id, 0]]);
    expect(evs).toHaveLength(0);
    // The best becomes unreachable: Q takes over (one event, the old best with its last state).
    rib.best(k)!.reachable = false;
    expect(rib.reevaluate([k])).toBe(1);
    expect(evs.map((e) => [e.oldBest?.source.id, e.oldBest?.reachable, e.newBest?.source.id])).toEqual([[P.id, false, Q.id]]);
    expect(rib.get(k)!.best!.source).toBe(Q);
    // A read of the entry shows its best among its routes (the same route), and why it won.
    const v = rib.get(k)!;
    expect(v.routes).toContain(v.best!);
    expect(v.reason).toBeString();
    // Q re-announces the same route: nothing; with new attributes: an event.
    expect(rib.upsert(rib.candidate(Q.id, k)!)).toBeNull();
    const q2 = makeRoute(k, 0, Q, attrs([Q.asn, 64513]), Q.addressBytes, 3);
    expect(rib.upsert(q2)!.newBest!.attrs).toBe(q2.attrs);
    expect(evs).toHaveLength(2);
  });

  test("routes handed out by one selection are not changed by the next (the decision's views are reused; what the table hands out is not)", () => {
    const rib = new LocRib();
    const got: Route[] = [];
    rib.subscribe((e) => e.newBest && got.push(e.newBest));
    for (const p of ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]) {
      rib.upsert(makeRoute(key(p), 0, P, attrs([P.asn, 64512]), P.addressBytes, 1));
      rib.upsert(makeRoute(key(p), 0, Q, attrs([Q.asn]), Q.addressBytes, 2)); // shorter: Q wins
    }
    expect(got.map((r) => [prefixToString(r.prefix), r.source.id])).toEqual([
      ["192.0.2.0/24", P.id],
      ["192.0.2.0/24", Q.id],
      ["198.51.100.0/24", P.id],
      ["198.51.100.0/24", Q.id],
      ["203.0.113.0/24", P.id],
      ["203.0.113.0/24", Q.id],
    ]);
  });

  test("an ADD-PATH route, or a route not made by makeRoute, is kept as itself", () => {
    const rib = new LocRib();
    const ap = mk("198.51.100.0/25", P, { pathId: 5 });
    rib.upsert(ap);
    expect(rib.best(ap.key)).toBe(ap);
    const plain = route("198.51.100.128/25", P);
    rib.upsert(plain);
    expect(rib.best(plain.key)).toBe(plain);
    expect(rib.candidate(P.id, plain.key)).toBe(plain);
  });
});

describe("Loc-RIB: selection as paths come and go", () => {
  test("after every change the selection is what selectBest over all the prefix's candidates gives (random paths from peers in three ASes; deterministic and always-compared MED, multipath off and on)", () => {
    // A new path that loses to the selected one leaves the selection as it is without a selection over all
    // candidates (LocRib.losesToBest): this checks that shortcut against the whole decision, MED across ASes included.
    let seed = 11;
    const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) % n;
    const peers = Array.from({ length: 8 }, (_, i) => peer(`203.0.113.${10 + i}`, 65101 + (i % 3)));
    const ids = (rs: readonly Route[]) => rs.map((r) => `${r.source.id}#${r.pathId}`);
    // New paths that left the selection as it was: where the shortcut may stand in for a selection.
    let unchanged = 0;
    for (const opts of [{}, { alwaysCompareMed: true }, { multipath: { enabled: true, maxPaths: 4 } }, { multipath: { enabled: true, maxPaths: 2 }, multipathRelax: true }]) {
      const rib = new LocRib(opts);
      const held = new Map<number, Map<string, Route>>();
      for (let op = 0; op < 6000; op++) {
        const k = (0xcb007100 + rnd(40) * 4) * 64 + 30; // forty /30s in 203.0.113.0/24
        const src = peers[rnd(peers.length)]!;
        const mine = held.get(k) ?? new Map<string, Route>();
        held.set(k, mine);
        if (rnd(5) === 0) {
          rib.remove(src.id, k, 0);
          mine.delete(src.id);
        } else {
          const path = [src.asn, ...Array.from({ length: rnd(3) }, () => 64600 + rnd(4))];
          const a = attrs(path, [null, 100, 200][rnd(3)]!, [null, 0, 10, 20][rnd(4)]!);
          const r = withFields(makeRoute(k, 0, src, a, src.addressBytes, rnd(3)), { reachable: rnd(10) !== 0, igpCost: rnd(2) });
          const had = mine.size;
          const before = rib.get(k)?.best ?? null;
          rib.upsert(r);
          mine.set(src.id, r);
          if (mine.size > had && before !== null && rib.get(k)!.best!.source.id === before.source.id) unchanged++;
        }
        const want = selectBest([...mine.values()], opts, false);
        const got = rib.get(k);
        expect(got === null ? null : (got.best?.source.id ?? null)).toBe(want.best?.source.id ?? null);
        expect(ids(got?.multipath ?? [])).toEqual(ids(want.multipath));
      }
    }
    expect(unchanged).toBeGreaterThan(1000);
  });
});

describe("prefix keys", () => {
  test("from NLRI bytes and back, for every length of both families (random addresses, bits past the length ignored)", () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) & 0xff;
    let checked = 0;
    for (const afi of [1, 2] as const) {
      const bits = afi === 1 ? 32 : 128;
      for (let len = 0; len <= bits; len++) {
        for (let t = 0; t < 20; t++) {
          const raw = Uint8Array.from({ length: bits / 8 }, rnd);
          const masked = maskAddr(raw, len);
          const k = prefixKey({ afi, len, addr: masked });
          expect(prefixKeyOfBytes(afi, len, raw, 0)).toBe(k);
          // At an offset, with only the bytes the length needs (as in an UPDATE).
          const n = (len + 7) >> 3;
          const wire = new Uint8Array(3 + n);
          wire.set(raw.subarray(0, n), 3);
          expect(prefixKeyOfBytes(afi, len, wire, 3)).toBe(k);
          expect(prefixOfKey(k)).toEqual({ afi, len, addr: masked });
          checked++;
        }
      }
    }
    expect(checked).toBe(20 * (33 + 129));
  });

  test("a stored route's prefix comes from its key, and the copy helper keeps it", () => {
    const A = peer("192.0.2.1", 65001);
    const r = makeRoute(parsePrefix("2001:db8:1::/48"), 0, A, attrs([65001]), parseAddr("2001:db8::1")!.addr);
    expect(prefixToString(r.prefix)).toBe("2001:db8:1::/48");
    expect(Object.keys(r)).not.toContain("prefix");
    const byKey = makeRoute(key("198.51.100.0/24"), 0, A, attrs([65001]), new Uint8Array([192, 0, 2, 1]));
    expect(prefixToString(byKey.prefix)).toBe("198.51.100.0/24");
    // Every combination of igpCost, reachable, stale and forwarding hops reads back, large costs too.
    const hops = [{ addr: new Uint8Array([192, 0, 2, 254]), ifindex: 3 }];
    for (const cost of [0, 1, 7, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]) {
      for (const reachable of [true, false]) {
        for (const stale of [true, false]) {
          for (const via of [undefined, hops]) {
            byKey.igpCost = cost;
            byKey.via = via === undefined ? hops : undefined;
            byKey.reachable = !reachable;
            byKey.reachable = reachable;
            byKey.stale = !stale;
            byKey.stale = stale;
            byKey.via = via;
            expect([byKey.igpCost, byKey.reachable, byKey.stale, byKey.via]).toEqual([cost, reachable, stale, via]);
          }
        }
      }
    }
    byKey.igpCost = 0;
    byKey.reachable = true;
    byKey.stale = false;
    byKey.via = hops;
    const c = withFields(byKey, { stale: true, igpCost: 7 });
    expect(prefixToString(c.prefix)).toBe("198.51.100.0/24");
    expect(c).toMatchObject({ key: byKey.key, stale: true, igpCost: 7, attrs: byKey.attrs, source: A, pathId: 0 });
    expect(c.via).toBe(hops);
    expect(withFields(byKey, { via: undefined }).via).toBeUndefined();
    // An ADD-PATH path id is kept, by copies too; a copy may change it.
    const ap = makeRoute(key("198.51.100.0/24"), 7, A, attrs([65001]), new Uint8Array([192, 0, 2, 1]));
    expect([ap.pathId, withFields(ap, { stale: true }).pathId, withFields(ap, { pathId: 0 }).pathId, withFields(byKey, { pathId: 9 }).pathId]).toEqual([7, 7, 0, 9]);
  });

  test("the routes of one UPDATE share everything but their prefix; a change to one route's next-hop state or stale mark is that route's alone", () => {
    const A = peer("192.0.2.1", 65001);
    const B = peer("192.0.2.2", 65002);
    const at = attrs([65001, 64500]);
    const nh = new Uint8Array([192, 0, 2, 1]);
    const headOf = (r: Route) => (r as unknown as { h: object }).h;
    const update = (source: typeof A, n: number, t: number, a = at, hop = nh) => Array.from({ length: n }, (_, i) => makeRoute(key(`198.51.100.${i * 4}/30`), 0, source, a, hop, t));
    const rs = update(A, 8, 100);
    // One shared part for the UPDATE; another time, source, attribute set or next hop is another.
    expect(new Set(rs.map(headOf)).size).toBe(1);
    expect(headOf(update(A, 1, 101)[0]!)).not.toBe(headOf(rs[0]!));
    expect(headOf(update(B, 1, 100)[0]!)).not.toBe(headOf(rs[0]!));
    expect(headOf(update(A, 1, 100, attrs([65001]))[0]!)).not.toBe(headOf(rs[0]!));
    expect(headOf(update(A, 1, 100, at, new Uint8Array([192, 0, 2, 9]))[0]!)).not.toBe(headOf(rs[0]!));
    // Each setter changes its route alone.
    const hops = [{ addr: new Uint8Array([192, 0, 2, 254]) }];
    rs[0]!.stale = true;
    rs[1]!.igpCost = 20;
    rs[2]!.reachable = false;
    rs[3]!.via = hops;
    const state = (r: Route) => [r.stale, r.igpCost, r.reachable, r.via];
    expect(rs.slice(0, 5).map(state)).toEqual([
      [true, 0, true, undefined],
      [false, 20, true, undefined],
      [false, 0, false, undefined],
      [false, 0, true, hops],
      [false, 0, true, undefined],
    ]);
    for (const r of rs) expect([r.key, r.source, r.attrs, r.nextHop, r.learnedAt]).toEqual([r.key, A, at, nh, 100]);
    // Siblings making the same changes in the same order (the tracker settling a next hop) share the result again.
    const more = update(A, 6, 200);
    for (const r of more) {
      r.reachable = true;
      r.igpCost = 10;
      r.via = hops;
    }
    expect(new Set(more.map(headOf)).size).toBe(1);
    expect(more.map(state)).toEqual(more.map(() => [false, 10, true, hops]));
    // Graceful restart marks them all stale: still one shared part; one refreshed route leaves it alone.
    for (const r of more) r.stale = true;
    expect(new Set(more.map(headOf)).size).toBe(1);
    more[0]!.stale = false;
    expect(more.map((r) => r.stale)).toEqual([false, true, true, true, true, true]);
    expect(withFields(more[1]!, { stale: false }).stale).toBe(false);
    expect(more[1]!.stale).toBe(true);
  });
});

describe("scale", () => {
  test(
    "1,000,000 IPv4 routes from one source insert and remove",
    () => {
      const N = 1_000_000;
      const P = peer("192.0.2.1", 65001);
      const at = attrs([65001, 3356, 15169]);
      const nh = P.addressBytes;
      const routes: Route[] = new Array(N);
      for (let i = 0; i < N; i++) {
        // /24s from 1.0.0.0 upward
        const n = 0x01000000 + i * 256;
        const prefix: Prefix = { afi: 1, len: 24, addr: new Uint8Array([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, 0]) };
        routes[i] = { prefix, key: prefixKey(prefix), pathId: 0, source: P, attrs: at, nextHop: nh, learnedAt: 0, igpCost: 0, reachable: true, stale: false };
      }

      const adj = new AdjRibIn(P);
      let t = performance.now();
      for (let i = 0; i < N; i++) adj.update(routes[i]!);
      const adjIn = performance.now() - t;
      expect(adj.countOf(1)).toBe(N);

      const rib = new LocRib({ multipath: { enabled: false, maxPaths: 1 } });
      let events = 0;
      rib.subscribe(() => events++);
      t = performance.now();
      for (let i = 0; i < N; i++) rib.upsert(routes[i]!);
      const locIn = performance.now() - t;
      expect(rib.count(1)).toBe(N);
      expect(events).toBe(N);
      expect(rib.longestMatch(parsePrefix("1.2.3.4/32"))!.best).toBe(routes[0x0203]!);

      t = performance.now();
      const removed = rib.removeSource(P.id);
      const locOut = performance.now() - t;
      expect(removed).toBe(N);
      expect(rib.count()).toBe(0);
      expect(events).toBe(2 * N);

      t = performance.now();
      for (let i = 0; i < N; i++) adj.withdraw(routes[i]!.key, 0);
      const adjOut = performance.now() - t;
      expect(adj.count).toBe(0);

      // Per-route removal from the Loc-RIB as well.
      for (let i = 0; i < N; i++) rib.upsert(routes[i]!);
      t = performance.now();
      for (let i = 0; i < N; i++) rib.remove(P.id, routes[i]!.key, 0);
      const locRemove = performance.now() - t;
      expect(rib.count()).toBe(0);

      const ms = (x: number) => `${x.toFixed(0)} ms`;
      console.log(
        `1M IPv4 routes: Adj-RIB-In insert ${ms(adjIn)}, withdraw ${ms(adjOut)}; ` +
          `Loc-RIB insert ${ms(locIn)}, removeSource ${ms(locOut)}, remove one by one ${ms(locRemove)}`,
      );
    },
    120_000,
  );
});
