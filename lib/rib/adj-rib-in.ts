/**
 * Adj-RIB-In: the routes one peer sent us, before import policy, with their
 * attributes as received (the interned, shared attribute objects of the
 * decoder). Keeping them lets a policy change be re-applied without a session
 * reset (soft reconfiguration inbound), and carries the stale marks of route
 * refresh (RFC 7313) and graceful restart (RFC 4724).
 *
 * Storage. Standalone (no store), every route is kept here: one PrefixMap
 * per family, prefix key → Route; only prefixes with more than one ADD-PATH
 * path identifier hold a small array. In the daemon the Adj-RIB-In is given
 * the Loc-RIB as its `store`, and a route the import policy accepts as it
 * came (the usual case) is kept by the Loc-RIB alone, as this source's
 * candidate: its own maps hold only the routes the Loc-RIB does not have as
 * given (rejected, or changed by policy). So a full table accepted as it is
 * costs one table entry and one lookup per route, not two (as BIRD keeps
 * no import table unless asked).
 *
 * The rule that makes it work: with a store, a route as given is kept here
 * exactly when the Loc-RIB does not hold that very route as this source's
 * candidate (`source` is compared by identity: the routes of an ended
 * session, still being removed, are not this one's). Whoever writes the
 * Loc-RIB for this source calls `keepHere(given)` before a write that does
 * not hold the route as given, or `heldByStore(given)` after one that does;
 * `update()` and `withdraw()` are each followed by that write (the
 * neighbour does all of it in one function).
 *
 * Every route kept here holds its attribute set in the daemon-wide
 * interning cache (holdAttributes when kept, releaseAttributes when it
 * leaves; the Loc-RIB does the same for its candidates), so a set is
 * forgotten when the last route using it goes. Dropping a whole table goes
 * through `drain()`, which releases what is kept here as it walks.
 */
import type { Afi } from "../core/addr.ts";
import { holdAttributes, releaseAttributes } from "../bgp/attributes.ts";
import { bytesEqual } from "../bgp/bytes.ts";
import { PrefixMap } from "./prefix-map.ts";
import { type PrefixKey, type Route, type RouteSource, isV4Key, keepable, withFields } from "./types.ts";

/** What `AdjRibIn.update` did (valid until its next call: the object is reused). */
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

/** Where an Adj-RIB-In with a store finds the routes it does not keep itself: the Loc-RIB's candidates. */
export interface CandidateStore {
  /** The candidate of a source (by id) for a prefix and path id, or null. */
  candidate(sourceId: string, key: PrefixKey, pathId: number): Route | null;
  /** Whether `source` itself has a candidate for a prefix and path id (`candidate` without making the route). */
  hasCandidate(source: RouteSource, key: PrefixKey, pathId: number): boolean;
  /** The candidates of a source (by id), optionally of one family: a live walk. */
  routesOf(sourceId: string, afi?: Afi): IterableIterator<Route>;
}

type Slot = Route | Route[];

/** Same path as far as routing is concerned: attribute object, next hop, reachability. */
function samePath(a: Route, b: Route): boolean {
  return a.attrs === b.attrs && a.reachable === b.reachable && a.igpCost === b.igpCost && (a.nextHop === b.nextHop || bytesEqual(a.nextHop, b.nextHop));
}

export class AdjRibIn {
  private readonly v4 = new PrefixMap<number, Slot>();
  private readonly v6 = new PrefixMap<PrefixKey, Slot>();
  private n4 = 0;
  private n6 = 0;

  /** `source`: the peer these routes come from (required with a store, whose candidates are told apart by it). */
  constructor(
    readonly source: RouteSource | null = null,
    private readonly store: CandidateStore | null = null,
  ) {
    if (store !== null && source === null) throw new Error("adj-rib-in: a store needs the source its routes come from");
  }

  private mapOf(key: PrefixKey): PrefixMap<PrefixKey, Slot> {
    return (isV4Key(key) ? this.v4 : this.v6) as PrefixMap<PrefixKey, Slot>;
  }

  private bump(key: PrefixKey, d: number): void {
    if (isV4Key(key)) this.n4 += d;
    else this.n6 += d;
  }

  /** The path kept here for a prefix and path id. */
  private own(key: PrefixKey, pathId: number): Route | null {
    const map = this.mapOf(key);
    if (map.size === 0) return null;
    const slot = map.get(key);
    if (slot === undefined) return null;
    if (!Array.isArray(slot)) return slot.pathId === pathId ? slot : null;
    const i = pathIndex(slot, pathId);
    return i < 0 ? null : slot[i]!;
  }

  /** Keep `route` here (replacing the path with its prefix and path id). */
  private keep(given: Route): void {
    // (The route object a neighbour reuses for every prefix it receives is kept as a copy.)
    const route = keepable(given);
    const key = route.key;
    const map = this.mapOf(key);
    const slot = map.get(key);
    holdAttributes(route.attrs);
    let old: Route | null = null;
    if (slot === undefined) map.set(key, route);
    else if (!Array.isArray(slot)) {
      if (slot.pathId === route.pathId) old = slot;
      map.set(key, old !== null ? route : [slot, route]);
    } else {
      const i = pathIndex(slot, route.pathId);
      if (i >= 0) {
        old = slot[i]!;
        slot[i] = route;
      } else slot.push(route);
    }
    if (old !== null) releaseAttributes(old.attrs);
  }

  /** Stop keeping the path of a prefix and path id here; returns it, or null. */
  private unkeep(key: PrefixKey, pathId: number): Route | null {
    const map = this.mapOf(key);
    if (map.size === 0) return null;
    const slot = map.get(key);
    if (slot === undefined) return null;
    let old: Route;
    if (!Array.isArray(slot)) {
      if (slot.pathId !== pathId) return null;
      map.delete(key);
      old = slot;
    } else {
      const i = pathIndex(slot, pathId);
      if (i < 0) return null;
      old = slot[i]!;
      slot.splice(i, 1);
      if (slot.length === 1) map.set(key, slot[0]!);
    }
    releaseAttributes(old.attrs);
    return old;
  }

  /** The path the store holds as given for a prefix and path id (none when one is kept here). */
  private shared(key: PrefixKey, pathId: number): Route | null {
    const c = this.store!.candidate(this.source!.id, key, pathId);
    return c !== null && c.source === this.source ? c : null;
  }

  /**
   * Store a received route (replacing the path with the same prefix and
   * path id). With a store, an "add" or "replace" (or an unstale copy) is
   * placed by the Loc-RIB write that must follow (keepHere / heldByStore).
   */
  update(route: Route): AdjRibInChange {
    const old = this.get(route.key, route.pathId);
    if (old === null) {
      this.bump(route.key, 1);
      if (this.store === null) this.keep(route);
      return this.changed("add", route, null);
    }
    const stored = this.replacement(old, route);
    if (stored === old) return this.changed("unchanged", old, old);
    if (this.store === null) this.keep(stored);
    return this.changed(stored === route ? "replace" : "unchanged", stored, old);
  }

  /** What update returns: one object, reused by every call (an object per received route otherwise); read it before the next update. */
  private readonly change: AdjRibInChange = { op: "add", route: null as unknown as Route, old: null };

  private changed(op: AdjRibInChange["op"], route: Route, old: Route | null): AdjRibInChange {
    const c = this.change;
    c.op = op;
    c.route = route;
    c.old = old;
    return c;
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

  /**
   * The Loc-RIB is about to be written without `given` (the route as stored
   * here) as this source's candidate: it is rejected, or changed by policy.
   * Keeps it here. Called before that write, so that its attribute set is
   * held throughout. No-op without a store.
   */
  keepHere(given: Route): void {
    if (this.store !== null) this.keep(given);
  }

  /**
   * The Loc-RIB now holds `given` itself, accepted as it came: it is no
   * longer kept here. Called after that write. No-op without a store.
   */
  heldByStore(given: Route): void {
    if (this.store !== null) this.unkeep(given.key, given.pathId);
  }

  /**
   * Remove a path: whether there was one. With a store, the caller takes it
   * out of the Loc-RIB next; the store is asked without making the route it
   * holds (the daemon's withdrawals: a route object made per withdrawn
   * prefix only to test it, and another by the Loc-RIB's removal, made
   * route objects 12% of the event loop's samples in the churn benchmark's
   * profile).
   */
  drop(key: PrefixKey, pathId = 0): boolean {
    let had = this.unkeep(key, pathId) !== null;
    if (!had && this.store !== null) had = this.store.hasCandidate(this.source!, key, pathId);
    if (had) this.bump(key, -1);
    return had;
  }

  /** `drop`, returning the removed route (null when there was none). */
  withdraw(key: PrefixKey, pathId = 0): Route | null {
    const r = this.get(key, pathId);
    if (r !== null) this.drop(key, pathId);
    return r;
  }

  /** The stored path for a prefix and path id. */
  get(key: PrefixKey, pathId = 0): Route | null {
    const own = this.own(key, pathId);
    if (own !== null || this.store === null) return own;
    return this.shared(key, pathId);
  }

  /** Every stored route, optionally of one family (IPv4 first; with a store, then the Loc-RIB's share, a walk of its table). */
  *routes(afi?: Afi): IterableIterator<Route> {
    yield* this.kept(afi);
    yield* this.sharedRoutes(afi);
  }

  /** The routes kept here. */
  private *kept(afi?: Afi): IterableIterator<Route> {
    if (afi !== 2) yield* slotRoutes(this.v4.values());
    if (afi !== 1) yield* slotRoutes(this.v6.values());
  }

  /** The routes the store holds as given (a walk of its table). */
  private *sharedRoutes(afi?: Afi): IterableIterator<Route> {
    if (this.store === null || this.count === 0) return;
    for (const r of this.store.routesOf(this.source!.id, afi)) if (r.source === this.source && this.own(r.key, r.pathId) === null) yield r;
  }

  /** Number of stored paths (both families). */
  get count(): number {
    return this.n4 + this.n6;
  }

  /** Number of stored paths of one family. */
  countOf(afi: Afi): number {
    return afi === 1 ? this.n4 : this.n6;
  }

  /** Number of paths kept here rather than by the store (all of them without one). */
  get keptHere(): number {
    let n = 0;
    for (const m of [this.v4, this.v6] as PrefixMap<PrefixKey, Slot>[]) for (const s of m.values()) n += Array.isArray(s) ? s.length : 1;
    return n;
  }

  /**
   * Every stored route, each releasing its attribute set once walked past:
   * how a table that is dropped as a whole (session down) is taken apart,
   * in whatever slices the walker takes (it takes each route out of the
   * Loc-RIB as it goes). The Adj-RIB-In must not be used for anything else
   * afterwards.
   */
  *drain(): IterableIterator<Route> {
    for (const r of this.kept()) {
      yield r;
      releaseAttributes(r.attrs);
    }
    // Released by the Loc-RIB as they leave it.
    yield* this.sharedRoutes();
  }
}

/**
 * Where the path with this id is in a prefix's list, or -1. A loop, not
 * findIndex with a closure: a function that makes a closure over its
 * arguments allocates a scope object on every call, and these run for every
 * received route.
 */
function pathIndex(slot: readonly Route[], pathId: number): number {
  for (let i = 0; i < slot.length; i++) if (slot[i]!.pathId === pathId) return i;
  return -1;
}

function* slotRoutes(slots: IterableIterator<Slot>): IterableIterator<Route> {
  for (const s of slots) {
    if (Array.isArray(s)) yield* s;
    else yield s;
  }
}
