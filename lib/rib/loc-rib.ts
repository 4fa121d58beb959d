/**
 * Loc-RIB: for every prefix, all candidate routes (after import policy, from
 * every peer and every local source), the best route chosen by the decision
 * process and the multipath set. Subscribers (the kernel layer, Adj-RIB-Out)
 * get one event per prefix whose best route or multipath set actually
 * changed.
 *
 * Layout: one Map per family (prefix key → entry) and, per source, the set of
 * prefix keys it has routes for, so a peer going down is handled without a
 * scan of the table. Lookups by prefix relation (longest match, longer,
 * shorter) probe the maps per prefix length or scan; they serve `show`, not
 * the hot path.
 *
 * Next-hop reachability: an optional `RouteTracker` (lib/rib/nexthop.ts)
 * sees every candidate enter (`track`, before the selection runs, so it can
 * set `reachable` and `igpCost`) and leave (`untrack`), and every prefix
 * appear, disappear or change its selection (`prefixChanged`). When it
 * changes the reachability or cost of routes already in the table it sets
 * those two fields in place and calls `reevaluate(keys)` for their prefixes.
 * When it changes only where selected routes forward to (`Route.via`: the IGP
 * path to their next hop moved) it calls `forwardingChanged(routes)`, which
 * sends a `forwarding` event (same selection) to the subscribers that asked
 * for them (the FIB); the others never see such events.
 */
import { type Afi, type Prefix, maskAddr, prefixContains } from "../core/addr.ts";
import { type DecisionOptions, REASON_ONLY_PATH, selectBest } from "./decision.ts";
import { type PrefixKey, type Route, prefixKey } from "./types.ts";

/** One prefix of the Loc-RIB, as readers see it. */
export interface LocRibEntry {
  readonly prefix: Prefix;
  readonly key: PrefixKey;
  /** All candidates, in arrival order. */
  readonly routes: readonly Route[];
  /** The selected route; null when no candidate has a reachable next hop. */
  readonly best: Route | null;
  /** The multipath set (best first); empty when multipath is disabled or there is no best. */
  readonly multipath: readonly Route[];
  /** The decision step that chose `best` (see `Selection.reason`). */
  readonly reason: string | undefined;
}

/** A change of the selection for one prefix. */
export interface LocRibEvent {
  key: PrefixKey;
  prefix: Prefix;
  /** The best route before the change (null: there was none). */
  oldBest: Route | null;
  /** The best route now (null: the prefix is gone or unreachable). */
  newBest: Route | null;
  /** The multipath set now (empty when multipath is disabled or there is no best). */
  multipath: readonly Route[];
  /** The multipath set before the change. */
  oldMultipath: readonly Route[];
  /**
   * Only the forwarding hops (`Route.via`) of the selected routes changed:
   * best and multipath are the same as before. Sent only to subscribers
   * with `{forwarding: true}`.
   */
  forwarding?: true;
}

export type LocRibListener = (ev: LocRibEvent) => void;

/** Decides `reachable` / `igpCost` of the candidates (next-hop tracking); see lib/rib/nexthop.ts. */
export interface RouteTracker {
  /** A candidate enters the table (new, or replacing another): set its reachable and igpCost now. */
  track(route: Route): void;
  /** A candidate leaves the table (withdrawn or replaced). */
  untrack(route: Route): void;
  /** A prefix appeared, disappeared, or its best route or multipath set changed. */
  prefixChanged(key: PrefixKey, prefix: Prefix): void;
}

/** How `LocRib.lookup` relates table prefixes to the query prefix. */
export type LookupMode = "exact" | "longest" | "longer" | "shorter";

class Entry implements LocRibEntry {
  routes: Route[];
  best: Route | null = null;
  multipath: readonly Route[] = NONE;
  reason: string | undefined = undefined;
  constructor(
    readonly prefix: Prefix,
    readonly key: PrefixKey,
    first: Route,
  ) {
    this.routes = [first];
  }
}

const NONE: readonly Route[] = [];

function sameList(a: readonly Route[], b: readonly Route[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.afi !== b.afi) return a.afi - b.afi;
  for (let i = 0; i < a.addr.length; i++) if (a.addr[i] !== b.addr[i]) return a.addr[i]! - b.addr[i]!;
  return a.len - b.len;
}

export class LocRib {
  private readonly v4 = new Map<number, Entry>();
  private readonly v6 = new Map<string, Entry>();
  /** Source id → keys of the prefixes it has routes for. */
  private readonly bySource = new Map<string, Set<PrefixKey>>();
  private readonly listeners: LocRibListener[] = [];
  /** The subscribers that also want forwarding-only events. */
  private readonly forwardingListeners: LocRibListener[] = [];
  private paths4 = 0;
  private paths6 = 0;
  private opts: DecisionOptions;
  private tracker: RouteTracker | null = null;

  constructor(opts: DecisionOptions = {}) {
    this.opts = { ...opts };
  }

  // ----------------------------------------------------------------- options

  /** The current decision options (a copy). */
  get options(): DecisionOptions {
    return { ...this.opts };
  }

  /**
   * Change decision options (merged into the current ones) and re-run the
   * selection of every prefix; returns the number of prefixes whose
   * selection changed (each one reported to subscribers).
   */
  setOptions(patch: DecisionOptions): number {
    this.opts = { ...this.opts, ...patch };
    return this.reevaluate();
  }

  // ------------------------------------------------------------ next hops

  /**
   * Install (or remove, with null) the next-hop tracker. The candidates
   * already in the table are handed to it and every prefix is re-run.
   */
  setTracker(t: RouteTracker | null): void {
    const old = this.tracker;
    this.tracker = t;
    if (old === null && t === null) return;
    for (const e of this.entries()) {
      for (const r of e.routes) {
        old?.untrack(r);
        t?.track(r);
      }
    }
    if (t !== null) this.reevaluate();
  }

  // ------------------------------------------------------------- subscribers

  /** Called when a subscriber throws (default: reported on stderr); the other subscribers still get the event. */
  onListenerError: (err: unknown, ev: LocRibEvent) => void = (err) => {
    process.stderr.write(`loc-rib: a subscriber failed: ${(err as Error).stack ?? String(err)}\n`);
  };

  /**
   * Subscribe to selection changes; with `forwarding`, also to changes of
   * where the selected routes forward to (events with `forwarding: true`).
   * Returns the unsubscribe function. A listener that throws is reported
   * through onListenerError.
   */
  subscribe(fn: LocRibListener, opts: { forwarding?: boolean } = {}): () => void {
    this.listeners.push(fn);
    if (opts.forwarding) this.forwardingListeners.push(fn);
    return () => {
      for (const ls of [this.listeners, this.forwardingListeners]) {
        const i = ls.indexOf(fn);
        if (i >= 0) ls.splice(i, 1);
      }
    };
  }

  // ----------------------------------------------------------------- updates

  private mapOf(key: PrefixKey): Map<PrefixKey, Entry> {
    return (typeof key === "number" ? this.v4 : this.v6) as Map<PrefixKey, Entry>;
  }

  private bump(key: PrefixKey, d: number): void {
    if (typeof key === "number") this.paths4 += d;
    else this.paths6 += d;
  }

  /**
   * Add a candidate route or replace the one with the same source and path
   * id. Returns the resulting event, or null when the selection did not
   * change.
   */
  upsert(route: Route): LocRibEvent | null {
    const key = route.key;
    const map = this.mapOf(key);
    const e = map.get(key);
    const sid = route.source.id;
    const t = this.tracker;
    if (e === undefined) {
      const ne = new Entry(route.prefix, key, route);
      map.set(key, ne);
      this.bump(key, 1);
      this.index(sid, key);
      if (t !== null) {
        t.prefixChanged(key, route.prefix);
        t.track(route);
      }
      return this.select(ne);
    }
    const rs = e.routes;
    let i = 0;
    while (i < rs.length && !(rs[i]!.source.id === sid && rs[i]!.pathId === route.pathId)) i++;
    if (i === rs.length) {
      rs.push(route);
      this.bump(key, 1);
      this.index(sid, key);
    } else if (rs[i] === route) {
      return null;
    } else {
      t?.untrack(rs[i]!);
      rs[i] = route;
    }
    t?.track(route);
    return this.select(e);
  }

  /** Remove the route of a source with this prefix and path id. Returns the event, or null when nothing changed. */
  remove(sourceId: string, key: PrefixKey, pathId = 0): LocRibEvent | null {
    const map = this.mapOf(key);
    const e = map.get(key);
    if (e === undefined) return null;
    const rs = e.routes;
    let i = 0;
    let others = false;
    let found = -1;
    for (; i < rs.length; i++) {
      const r = rs[i]!;
      if (r.source.id !== sourceId) continue;
      if (r.pathId === pathId) found = i;
      else others = true;
    }
    if (found < 0) return null;
    this.tracker?.untrack(rs[found]!);
    rs.splice(found, 1);
    this.bump(key, -1);
    if (!others) this.unindex(sourceId, key);
    return this.afterRemoval(map, e);
  }

  /**
   * Remove every route of a source (peer down, local source withdrawn).
   * Returns the number of routes removed; changes are reported to
   * subscribers.
   */
  removeSource(sourceId: string): number {
    const keys = this.bySource.get(sourceId);
    if (keys === undefined) return 0;
    this.bySource.delete(sourceId);
    let n = 0;
    for (const key of keys) {
      const map = this.mapOf(key);
      const e = map.get(key);
      if (e === undefined) continue;
      const rs = e.routes;
      let w = 0;
      const t = this.tracker;
      for (let i = 0; i < rs.length; i++) {
        const r = rs[i]!;
        if (r.source.id !== sourceId) rs[w++] = r;
        else t?.untrack(r);
      }
      const removed = rs.length - w;
      if (removed === 0) continue;
      rs.length = w;
      n += removed;
      this.bump(key, -removed);
      this.afterRemoval(map, e);
    }
    return n;
  }

  /**
   * Re-run the selection of the given prefixes (default: all) — after an
   * option change, or when reachability / IGP costs were updated. Returns
   * the number of prefixes whose selection changed.
   */
  reevaluate(keys?: Iterable<PrefixKey>): number {
    let n = 0;
    if (keys === undefined) {
      // Collect first: listeners may modify the table.
      const all: Entry[] = [];
      for (const e of this.v4.values()) all.push(e);
      for (const e of this.v6.values()) all.push(e);
      for (const e of all) if (this.mapOf(e.key).get(e.key) === e && this.select(e)) n++;
      return n;
    }
    for (const key of keys) {
      const e = this.mapOf(key).get(key);
      if (e !== undefined && this.select(e)) n++;
    }
    return n;
  }

  /**
   * The forwarding hops (`via`) of these routes changed, nothing else: send a
   * `forwarding` event for each prefix where one of them is the best route or
   * in the multipath set (once per prefix). Returns the number of events.
   */
  forwardingChanged(routes: Iterable<Route>): number {
    if (this.forwardingListeners.length === 0) return 0;
    const done = new Set<PrefixKey>();
    for (const r of routes) {
      const e = this.mapOf(r.key).get(r.key);
      if (e === undefined || done.has(e.key) || (e.best !== r && !e.multipath.includes(r))) continue;
      done.add(e.key);
      const ev: LocRibEvent = { key: e.key, prefix: e.prefix, oldBest: e.best, newBest: e.best, multipath: e.multipath, oldMultipath: e.multipath, forwarding: true };
      this.deliver(this.forwardingListeners, ev);
    }
    return done.size;
  }

  /** Drop everything (no events). */
  clear(): void {
    const t = this.tracker;
    if (t !== null) for (const e of this.entries()) for (const r of e.routes) t.untrack(r);
    this.v4.clear();
    this.v6.clear();
    this.bySource.clear();
    this.paths4 = 0;
    this.paths6 = 0;
  }

  private afterRemoval(map: Map<PrefixKey, Entry>, e: Entry): LocRibEvent | null {
    if (e.routes.length > 0) return this.select(e);
    map.delete(e.key);
    this.tracker?.prefixChanged(e.key, e.prefix);
    const oldBest = e.best;
    const oldMp = e.multipath;
    e.best = null;
    e.multipath = NONE;
    e.reason = undefined;
    if (oldBest === null && oldMp.length === 0) return null;
    return this.emit(e, oldBest, oldMp);
  }

  private index(sid: string, key: PrefixKey): void {
    let s = this.bySource.get(sid);
    if (s === undefined) this.bySource.set(sid, (s = new Set()));
    s.add(key);
  }

  private unindex(sid: string, key: PrefixKey): void {
    const s = this.bySource.get(sid);
    if (s === undefined) return;
    s.delete(key);
    if (s.size === 0) this.bySource.delete(sid);
  }

  /** Run the decision for one entry; emit and return the event when the selection changed. */
  private select(e: Entry): LocRibEvent | null {
    const oldBest = e.best;
    const oldMp = e.multipath;
    let best: Route | null;
    let mp: readonly Route[];
    const rs = e.routes;
    if (rs.length === 1 && rs[0]!.reachable) {
      // The common case of a single candidate, without the selection object.
      best = rs[0]!;
      e.reason = REASON_ONLY_PATH;
      const mpOn = this.opts.multipath?.enabled === true;
      if (best === oldBest && (mpOn ? oldMp.length === 1 && oldMp[0] === best : oldMp.length === 0)) return null;
      mp = mpOn ? [best] : NONE;
    } else {
      const sel = selectBest(rs, this.opts);
      e.reason = sel.reason;
      best = sel.best;
      mp = sel.multipath.length === 0 ? NONE : sel.multipath;
      if (best === oldBest && sameList(mp, oldMp)) return null;
    }
    e.best = best;
    e.multipath = mp;
    return this.emit(e, oldBest, oldMp);
  }

  private emit(e: Entry, oldBest: Route | null, oldMp: readonly Route[]): LocRibEvent {
    const ev: LocRibEvent = { key: e.key, prefix: e.prefix, oldBest, newBest: e.best, multipath: e.multipath, oldMultipath: oldMp };
    this.tracker?.prefixChanged(e.key, e.prefix);
    this.deliver(this.listeners, ev);
    return ev;
  }

  private deliver(ls: LocRibListener[], ev: LocRibEvent): void {
    // One failing listener must not keep the change from the others, nor abort the caller's UPDATE.
    for (const fn of ls.length === 1 ? ls : ls.slice()) {
      try {
        fn(ev);
      } catch (err) {
        this.onListenerError(err, ev);
      }
    }
  }

  // ----------------------------------------------------------------- queries

  /** The entry of a prefix, or null. */
  get(key: PrefixKey): LocRibEntry | null {
    return this.mapOf(key).get(key) ?? null;
  }

  /** The best route of a prefix, or null. */
  best(key: PrefixKey): Route | null {
    return this.mapOf(key).get(key)?.best ?? null;
  }

  /** How many prefixes a source has a route for (its accepted count), without a scan. */
  sourceCount(sourceId: string): number {
    return this.bySource.get(sourceId)?.size ?? 0;
  }

  /** The candidate routes of a source (for `show`): scans that source's prefixes. */
  *routesOf(sourceId: string): IterableIterator<Route> {
    const keys = this.bySource.get(sourceId);
    if (keys === undefined) return;
    for (const key of keys) {
      const e = this.mapOf(key).get(key);
      if (e !== undefined) for (const r of e.routes) if (r.source.id === sourceId) yield r;
    }
  }

  /** Every prefix entry, optionally of one family (IPv4 first; map order, not sorted). */
  *entries(afi?: Afi): IterableIterator<LocRibEntry> {
    if (afi !== 2) yield* this.v4.values();
    if (afi !== 1) yield* this.v6.values();
  }

  /** The best route of every prefix that has one, optionally of one family. */
  *bests(afi?: Afi): IterableIterator<Route> {
    if (afi !== 2) for (const e of this.v4.values()) if (e.best !== null) yield e.best;
    if (afi !== 1) for (const e of this.v6.values()) if (e.best !== null) yield e.best;
  }

  /** Number of prefixes, optionally of one family. */
  count(afi?: Afi): number {
    return afi === 1 ? this.v4.size : afi === 2 ? this.v6.size : this.v4.size + this.v6.size;
  }

  /** Number of candidate routes (paths), optionally of one family. */
  pathCount(afi?: Afi): number {
    return afi === 1 ? this.paths4 : afi === 2 ? this.paths6 : this.paths4 + this.paths6;
  }

  /** Number of prefixes with a best route, optionally of one family (a scan). */
  bestCount(afi?: Afi): number {
    let n = 0;
    for (const e of this.entries(afi)) if (e.best !== null) n++;
    return n;
  }

  /** Ids of the sources that have routes in the table. */
  sourceIds(): string[] {
    return [...this.bySource.keys()];
  }

  /** The entry at a prefix of the same family as `p`, masked to `len` bits. */
  private at(p: Prefix, len: number): Entry | undefined {
    if (p.afi === 1) {
      const a = p.addr;
      const n = ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
      const masked = len === 0 ? 0 : (n & (0xffffffff << (32 - len))) >>> 0;
      return this.v4.get(masked * 64 + len);
    }
    return this.v6.get(prefixKey({ afi: 2, len, addr: maskAddr(p.addr, len) }) as string);
  }

  /**
   * Longest-prefix match: the most specific entry containing `p` (an address
   * is a /32 or /128 prefix), or null. With `withBest`, only entries with a
   * best route count (forwarding lookup).
   */
  longestMatch(p: Prefix, withBest = false): LocRibEntry | null {
    for (let len = p.len; len >= 0; len--) {
      const e = this.at(p, len);
      if (e !== undefined && (!withBest || e.best !== null)) return e;
    }
    return null;
  }

  /**
   * The prefixes in the table related to `p` (for `show rib PREFIX [MODE]`):
   * "exact" — `p` itself; "longest" — the longest match; "shorter" — `p` and
   * every less specific prefix containing it (shortest first); "longer" — `p`
   * and every more specific prefix (address order). Empty when none.
   */
  lookup(p: Prefix, mode: LookupMode = "longest"): Prefix[] {
    switch (mode) {
      case "exact": {
        const e = this.at(p, p.len);
        return e ? [e.prefix] : [];
      }
      case "longest": {
        const e = this.longestMatch(p);
        return e ? [e.prefix] : [];
      }
      case "shorter":
        return this.shorter(p).map((e) => e.prefix);
      case "longer":
        return this.longer(p).map((e) => e.prefix);
    }
  }

  /** Entries for `p` and every less specific prefix containing it, shortest first (`show rib P shorter`). */
  shorter(p: Prefix): LocRibEntry[] {
    const out: LocRibEntry[] = [];
    for (let len = 0; len <= p.len; len++) {
      const e = this.at(p, len);
      if (e !== undefined) out.push(e);
    }
    return out;
  }

  /** Entries for `p` and every more specific prefix inside it, in address order (`show rib P longer`); a scan of the family. */
  longer(p: Prefix): LocRibEntry[] {
    const out: Entry[] = [];
    if (p.len === 0) {
      for (const e of this.entries(p.afi)) out.push(e as Entry);
    } else {
      const map = p.afi === 1 ? this.v4 : this.v6;
      for (const e of map.values()) if (prefixContains(p, e.prefix)) out.push(e);
    }
    return out.sort((a, b) => comparePrefixes(a.prefix, b.prefix));
  }
}
