/**
 * Adj-RIB-In: the routes one peer sent us, before import policy, with their
 * attributes as received (the interned, shared attribute objects of the
 * decoder). Keeping them lets a policy change be re-applied without a session
 * reset (soft reconfiguration inbound), and carries the stale marks of route
 * refresh (RFC 7313) and graceful restart (RFC 4724).
 *
 * Storage is one PrefixMap per family, prefix key → Route; only prefixes
 * with more than one ADD-PATH path identifier hold a small array. The Route
 * objects are stored as given (nothing is wrapped or copied), so a full
 * table costs one table entry per route on top of the routes themselves.
 *
 * Every stored route holds its attribute set in the daemon-wide interning
 * cache (holdAttributes when stored, releaseAttributes when it leaves), so a
 * set is forgotten when the last route using it goes. Dropping a whole
 * table goes through `drain()`, which releases as it walks.
 */
import type { Afi } from "../core/addr.ts";
import { holdAttributes, releaseAttributes } from "../bgp/attributes.ts";
import { bytesEqual } from "../bgp/bytes.ts";
import { PrefixMap } from "./prefix-map.ts";
import { type PrefixKey, type Route, type RouteSource, withFields } from "./types.ts";

/** What `AdjRibIn.update` did. */
export interface AdjRibInChange {
  /**
   * "add": a new path; "replace": a path whose attributes or next hop changed;
   * "unchanged": a re-announcement with the same (interned) attributes and
   * next hop — nothing to do downstream, except clearing a stale mark when
   * `old.stale` is set.
   */
  op: "add" | "replace" | "unchanged";
  /** The route now stored. */
  route: Route;
  /** The route it replaced; null for "add". */
  old: Route | null;
}

type Slot = Route | Route[];

/** Same path as far as routing is concerned: attribute object, next hop, reachability. */
function samePath(a: Route, b: Route): boolean {
  return a.attrs === b.attrs && a.reachable === b.reachable && a.igpCost === b.igpCost && (a.nextHop === b.nextHop || bytesEqual(a.nextHop, b.nextHop));
}

export class AdjRibIn {
  private readonly v4 = new PrefixMap<number, Slot>();
  private readonly v6 = new PrefixMap<string, Slot>();
  private n4 = 0;
  private n6 = 0;

  /** `source` is informational (the peer these routes come from). */
  constructor(readonly source: RouteSource | null = null) {}

  private mapOf(key: PrefixKey): PrefixMap<PrefixKey, Slot> {
    return (typeof key === "number" ? this.v4 : this.v6) as PrefixMap<PrefixKey, Slot>;
  }

  private bump(key: PrefixKey, d: number): void {
    if (typeof key === "number") this.n4 += d;
    else this.n6 += d;
  }

  /** Store a received route (replacing the path with the same prefix and path id). */
  update(route: Route): AdjRibInChange {
    const key = route.key;
    const map = this.mapOf(key);
    const slot = map.get(key);
    if (slot === undefined) {
      map.set(key, route);
      this.bump(key, 1);
      holdAttributes(route.attrs);
      return { op: "add", route, old: null };
    }
    if (!Array.isArray(slot)) {
      if (slot.pathId !== route.pathId) {
        map.set(key, [slot, route]);
        this.bump(key, 1);
        holdAttributes(route.attrs);
        return { op: "add", route, old: null };
      }
      const stored = this.replacement(slot, route);
      if (stored !== slot) map.set(key, stored);
      return this.replaced(stored, route, slot);
    }
    for (let i = 0; i < slot.length; i++) {
      const old = slot[i]!;
      if (old.pathId !== route.pathId) continue;
      const stored = this.replacement(old, route);
      slot[i] = stored;
      return this.replaced(stored, route, old);
    }
    slot.push(route);
    this.bump(key, 1);
    holdAttributes(route.attrs);
    return { op: "add", route, old: null };
  }

  /** The change when `stored` took the place of `old` (`route` itself when the path changed, else an unchanged one). */
  private replaced(stored: Route, route: Route, old: Route): AdjRibInChange {
    if (stored !== route) return { op: "unchanged", route: stored, old };
    holdAttributes(route.attrs);
    releaseAttributes(old.attrs);
    return { op: "replace", route, old };
  }

  /**
   * What to store when `route` replaces `old`: `route` itself when the path
   * changed; `old` for an identical re-announcement (its learnedAt is kept);
   * for an identical re-announcement of a stale route, an unstale copy that
   * keeps learnedAt.
   */
  private replacement(old: Route, route: Route): Route {
    if (!samePath(old, route)) return route;
    if (!old.stale) return old;
    return withFields(route, { learnedAt: old.learnedAt, stale: false });
  }

  /** Remove a path; returns the removed route, or null when there was none. */
  withdraw(key: PrefixKey, pathId = 0): Route | null {
    const map = this.mapOf(key);
    const slot = map.get(key);
    if (slot === undefined) return null;
    if (!Array.isArray(slot)) {
      if (slot.pathId !== pathId) return null;
      map.delete(key);
      this.bump(key, -1);
      releaseAttributes(slot.attrs);
      return slot;
    }
    const i = slot.findIndex((r) => r.pathId === pathId);
    if (i < 0) return null;
    const old = slot[i]!;
    slot.splice(i, 1);
    if (slot.length === 1) map.set(key, slot[0]!);
    this.bump(key, -1);
    releaseAttributes(old.attrs);
    return old;
  }

  /** The stored path for a prefix and path id. */
  get(key: PrefixKey, pathId = 0): Route | null {
    const slot = this.mapOf(key).get(key);
    if (slot === undefined) return null;
    if (!Array.isArray(slot)) return slot.pathId === pathId ? slot : null;
    return slot.find((r) => r.pathId === pathId) ?? null;
  }

  /** All stored paths for a prefix (every path id). */
  paths(key: PrefixKey): Route[] {
    const slot = this.mapOf(key).get(key);
    if (slot === undefined) return [];
    return Array.isArray(slot) ? slot.slice() : [slot];
  }

  /** Every stored route, optionally of one family (IPv4 first). */
  *routes(afi?: Afi): IterableIterator<Route> {
    if (afi !== 2) yield* slotRoutes(this.v4.values());
    if (afi !== 1) yield* slotRoutes(this.v6.values());
  }

  /** Number of stored paths (both families). */
  get count(): number {
    return this.n4 + this.n6;
  }

  /** Number of stored paths of one family. */
  countOf(afi: Afi): number {
    return afi === 1 ? this.n4 : this.n6;
  }

  /** Number of stored paths per family (families with none left out). */
  countsByFamily(): Map<Afi, number> {
    const m = new Map<Afi, number>();
    if (this.n4 > 0) m.set(1, this.n4);
    if (this.n6 > 0) m.set(2, this.n6);
    return m;
  }

  /** Number of distinct prefixes, optionally of one family. */
  prefixCount(afi?: Afi): number {
    return afi === 1 ? this.v4.size : afi === 2 ? this.v6.size : this.v4.size + this.v6.size;
  }

  /**
   * Every stored route, each releasing its attribute set once walked past:
   * how a table that is dropped as a whole (session down) is taken apart,
   * in whatever slices the walker takes. The Adj-RIB-In must not be used
   * for anything else afterwards.
   */
  *drain(): IterableIterator<Route> {
    for (const r of this.routes()) {
      yield r;
      releaseAttributes(r.attrs);
    }
  }

  /** Forget everything, or one family (a walk, to release the attribute sets); returns the number of paths dropped. */
  clear(afi?: Afi): number {
    for (const r of this.routes(afi)) releaseAttributes(r.attrs);
    let n = 0;
    if (afi !== 2) {
      n += this.n4;
      this.v4.clear();
      this.n4 = 0;
    }
    if (afi !== 1) {
      n += this.n6;
      this.v6.clear();
      this.n6 = 0;
    }
    return n;
  }

  /** Number of stale paths (a scan; for `show`). */
  staleCount(afi?: Afi): number {
    let n = 0;
    for (const r of this.routes(afi)) if (r.stale) n++;
    return n;
  }
}

function* slotRoutes(slots: IterableIterator<Slot>): IterableIterator<Route> {
  for (const s of slots) {
    if (Array.isArray(s)) yield* s;
    else yield s;
  }
}
