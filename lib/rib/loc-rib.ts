/**
 * Loc-RIB: for every prefix, all candidate routes (after import policy, from
 * every peer and every local source), the best route chosen by the decision
 * process and the multipath set. Subscribers (the kernel layer, Adj-RIB-Out)
 * get one event per prefix whose best route or multipath set actually
 * changed.
 *
 * Layout: one PrefixMap (lib/rib/prefix-map.ts) per family, prefix key → slot. A prefix whose only
 * candidate is selected (the common case: a full table from one peer) is
 * stored as that route's head alone (what it shares with the other routes
 * of its UPDATE, lib/rib/types.ts): no object per prefix at all; a read
 * makes the route again (a new object each time: compare heads or fields,
 * not route objects), and setting next-hop state or the stale mark on it
 * writes the new head back (`headMoved`). A route with an ADD-PATH id, or
 * not made by makeRoute, is stored as itself. A prefix with several
 * candidates (or an unselected one) holds an Entry: the candidates stored
 * the same way (heads), the selected ones among them, so a table that four
 * peers send costs an entry and its list per prefix, not four routes; the
 * decision runs over the heads through views it reuses. Per source only a count of its
 * prefixes is kept (the accepted count); a peer going down hands over the
 * keys of its Adj-RIB-In to remove. Prefixes are not stored: they are
 * derived from the keys when read. Lookups by prefix relation (longest match, longer,
 * shorter) probe the maps per prefix length or scan; they serve `show`, not
 * the hot path.
 *
 * Every candidate holds its attribute set in the daemon-wide interning cache
 * while it is in the table (holdAttributes / releaseAttributes, as the
 * Adj-RIB-In does for the routes it keeps itself): a neighbour's routes
 * accepted as they came are kept here alone (lib/rib/adj-rib-in.ts).
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
import { holdAttributes, releaseAttributes } from "../bgp/attributes.ts";
import { type Afi, type Prefix, maskAddr, prefixContains } from "../core/addr.ts";
import { type DecisionOptions, REASON_ONLY_PATH, compareCode, explainBest, multipathEqual, selectBest } from "./decision.ts";
import { sliced } from "../core/slices.ts";
import { type PositionTables, PrefixMap } from "./prefix-map.ts";
import { type HeadTable, type PrefixKey, type Route, type RouteSource, type StoredHead, headOf, isHead, isV4Key, prefixKey, prefixOfKey, routeOfHead, routesForDecision, sameAnnouncement, slotReachable, storedForm, storedPathId } from "./types.ts";

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
  readonly key: PrefixKey;
  /** The prefix (derived from the key when read). */
  readonly prefix: Prefix;
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

/** The events the Loc-RIB sends: the prefix is derived from the key only when a subscriber reads it. */
class RibEvent implements LocRibEvent {
  forwarding?: true;
  constructor(
    public key: PrefixKey,
    public oldBest: Route | null,
    public newBest: Route | null,
    public multipath: readonly Route[],
    public oldMultipath: readonly Route[],
  ) {}
  get prefix(): Prefix {
    return prefixOfKey(this.key);
  }
}

export type LocRibListener = (ev: LocRibEvent) => void;

/** Decides `reachable` / `igpCost` of the candidates (next-hop tracking); see lib/rib/nexthop.ts. */
export interface RouteTracker {
  /** A candidate enters the table (new, or replacing another): set its reachable and igpCost now. */
  track(route: Route): void;
  /** A candidate leaves the table (withdrawn or replaced). */
  untrack(route: Route): void;
  /** A prefix appeared, disappeared, or its best route or multipath set changed. */
  prefixChanged(key: PrefixKey): void;
}

/** How `LocRib.lookup` relates table prefixes to the query prefix. */
export type LookupMode = "exact" | "longest" | "longer" | "shorter";

/** A candidate as a table keeps it: its head, or the route itself when it has no head of its own (see headOf). */
type Stored = StoredHead | Route;

/**
 * A prefix with more than one candidate, or whose only candidate is not
 * selected (unreachable next hop). The common case, one selected candidate,
 * is stored as its route's head (see `Slot`). The candidates are stored the
 * same way, and so are the selected ones (`best`, `multipath`: the stored
 * candidates themselves), so a prefix that several peers send costs no
 * route object at all; routes are made when read.
 */
class Entry {
  best: Stored | null = null;
  multipath: readonly Stored[] = NO_STORED;
  reason: string | undefined = undefined;
  constructor(
    readonly key: PrefixKey,
    public stored: Stored[],
  ) {}
}

/** What `get`/`entries` show for an Entry: its candidates made routes again (the selected ones as the entry holds them). */
class EntryView implements LocRibEntry {
  constructor(
    readonly key: PrefixKey,
    readonly routes: readonly Route[],
    readonly best: Route | null,
    readonly multipath: readonly Route[],
    readonly reason: string | undefined,
  ) {}
  get prefix(): Prefix {
    return prefixOfKey(this.key);
  }
}

/** What `get`/`entries` show for a prefix stored as its one selected route. */
class SingleView implements LocRibEntry {
  readonly routes: readonly Route[];
  readonly multipath: readonly Route[];
  readonly reason = REASON_ONLY_PATH;
  constructor(
    readonly best: Route,
    mpOn: boolean,
  ) {
    this.routes = [best];
    this.multipath = mpOn ? this.routes : NONE;
  }
  get key(): PrefixKey {
    return this.best.key;
  }
  get prefix(): Prefix {
    return prefixOfKey(this.best.key);
  }
}

/**
 * A table slot: when the prefix's only candidate is selected (best; in the
 * multipath set alone when multipath is on), that route's head (or the
 * route itself when it has no head of its own: see headOf), else an Entry.
 * A full table from one peer is then one map entry per prefix and no
 * object per prefix at all.
 */
type Slot = StoredHead | Route | Entry;

const NONE: readonly Route[] = [];
const NO_STORED: readonly Stored[] = [];

/** An Entry's reason before anyone asked for it (view works it out). */
const UNEXPLAINED = "(unexplained)";

function sameList(a: readonly Stored[], b: readonly Stored[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameAnnouncement(a[i]!, b[i]!)) return false;
  return true;
}

function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.afi !== b.afi) return a.afi - b.afi;
  for (let i = 0; i < a.addr.length; i++) if (a.addr[i] !== b.addr[i]) return a.addr[i]! - b.addr[i]!;
  return a.len - b.len;
}

/** Positions per run in a source's index (see LocRib.bySource). */
const SOURCE_RUN_BITS = 9;
const NO_RUNS = new Uint16Array(0);

/** A source's prefixes in the Loc-RIB: how many, and how many per run of positions of the IPv4 and the IPv6 table. */
interface SourceIndex {
  n: number;
  runs: [Uint16Array, Uint16Array];
}

export class LocRib implements HeadTable {
  private readonly v4 = new PrefixMap<number, Slot>();
  private readonly v6 = new PrefixMap<PrefixKey, Slot>();
  /**
   * Source id → the prefixes it has routes for: how many, and how many in
   * each run of 2^SOURCE_RUN_BITS positions of each family's table (a
   * holder, so that the source last counted is kept at hand). The runs let
   * a walk of one source's routes (routesOf) pass over the stretches where
   * it has none without visiting them: with twenty peers' tables in the
   * Loc-RIB, one peer's walk otherwise went through the nineteen others'
   * prefixes, tens of milliseconds at a time between two of its own (no
   * slice could cut there), and a session's teardown was a walk of the
   * whole table per peer. 2 bytes per run of 512 positions per source.
   */
  private readonly bySource = new Map<string, SourceIndex>();
  /** The source last counted and its holder in bySource (a full table comes from one source: no Map lookup per route). */
  private lastSid: string | null = null;
  private lastCount: SourceIndex | null = null;
  private readonly listeners: LocRibListener[] = [];
  /** The subscribers that also want forwarding-only events. */
  private readonly forwardingListeners: LocRibListener[] = [];
  private paths4 = 0;
  private paths6 = 0;
  private opts: DecisionOptions;
  /** Multipath on, as the stored single-route slots reflect it (changes only through setOptions). */
  private mpOn: boolean;
  private tracker: RouteTracker | null = null;
  /** The candidates of the entry being selected, as routes for the decision (see routesForDecision). */
  private readonly decisionScratch: Route[] = [];
  /** The selected candidate alone, for losesToBest (its decision view in bestView). */
  private readonly bestStored: Stored[] = [];
  private readonly bestView: Route[] = [];

  constructor(opts: DecisionOptions = {}) {
    this.opts = { ...opts };
    this.mpOn = this.opts.multipath?.enabled === true;
  }

  /**
   * The prefix tables (IPv4, IPv6) for Adj-RIB-Outs to keep their state
   * by position in (lib/rib/adj-rib-out.ts): what they pin stays, as a
   * ghost no reader sees, until they let go.
   */
  get positionTables(): PositionTables {
    return [this.v4, this.v6];
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
    // The single-route slots show the multipath set of the old options until re-run.
    const n = this.reevaluate();
    this.mpOn = this.opts.multipath?.enabled === true;
    return n;
  }

  /**
   * setOptions for a running table: the new options apply to every selection
   * made from now on, and every prefix is re-run in slices of the shared
   * slicer (a full table is about a second of work). Resolves with the number
   * of prefixes whose selection changed.
   *
   * Multipath on/off: a prefix stored as its single route stands for the
   * multipath set of the current mode ([route] with multipath on, none
   * without), so it changes mode at once and without an event — a set of one
   * forwards as the best route alone. Only prefixes with several candidates
   * are selected again (in the slices); until then they show the set chosen
   * under the old options, as with any other option.
   */
  async setOptionsSliced(patch: DecisionOptions): Promise<number> {
    const next = { ...this.opts, ...patch };
    this.mpOn = next.multipath?.enabled === true;
    this.opts = next;
    let n = 0;
    const keys = this.liveKeys();
    await sliced(keys, (k) => {
      if (this.rerun(k)) n++;
    });
    return n;
  }

  /** Every prefix key, walking the live table. */
  private *liveKeys(): IterableIterator<PrefixKey> {
    yield* this.v4.keys();
    yield* this.v6.keys();
  }

  // ------------------------------------------------------------ next hops

  /**
   * Install (or remove, with null) the next-hop tracker. The candidates
   * already in the table are handed to it and every prefix is re-run. A
   * tracker removed or replaced is not told of the candidates leaving it:
   * it is discarded with its state (its owner detaches it at shutdown, when
   * a walk of the whole table would only hold the loop).
   */
  setTracker(t: RouteTracker | null): void {
    this.tracker = t;
    if (t === null) return;
    for (const r of this.candidates()) t.track(r);
    this.reevaluate();
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

  private mapOf(key: PrefixKey): PrefixMap<PrefixKey, Slot> {
    return (isV4Key(key) ? this.v4 : this.v6) as PrefixMap<PrefixKey, Slot>;
  }

  /** The tables of a family, or both (IPv4 first). */
  private tables(afi?: Afi): PrefixMap<PrefixKey, Slot>[] {
    const v4 = this.v4 as PrefixMap<PrefixKey, Slot>;
    const v6 = this.v6 as PrefixMap<PrefixKey, Slot>;
    return afi === 1 ? [v4] : afi === 2 ? [v6] : [v4, v6];
  }

  /** A single-candidate slot as a route (made again from a head). */
  private routeAt(key: PrefixKey, slot: StoredHead | Route): Route {
    return isHead(slot) ? routeOfHead(key, slot, this) : slot;
  }

  /** A route this table handed out moved from head `from` to `to` (next-hop state, stale mark): the slot follows when it still holds `from`. */
  headMoved(key: PrefixKey, from: StoredHead, to: StoredHead): void {
    const map = this.mapOf(key);
    const s = map.get(key);
    if (s === from) {
      map.set(key, to);
      return;
    }
    if (!(s instanceof Entry)) return;
    const i = s.stored.indexOf(from);
    if (i < 0) return;
    s.stored[i] = to;
    if (s.best === from) s.best = to;
    if (s.multipath.includes(from)) s.multipath = s.multipath.map((x) => (x === from ? to : x));
  }

  /** A stored candidate of prefix `key` as a route (null stays null). */
  private made(key: PrefixKey, s: Stored | null): Route | null {
    return s === null ? null : this.routeAt(key, s);
  }

  /** Stored candidates as routes, `best` (made already) in the place of `bestS`. */
  private madeList(key: PrefixKey, list: readonly Stored[], bestS: Stored | null, best: Route | null): readonly Route[] {
    if (list.length === 0) return NONE;
    return list.map((s) => (s === bestS && best !== null ? best : this.routeAt(key, s)));
  }

  private bump(key: PrefixKey, d: number): void {
    if (isV4Key(key)) this.paths4 += d;
    else this.paths6 += d;
  }

  /** The multipath set a single selected route stands for. */
  private single(r: Route): readonly Route[] {
    return this.mpOn ? [r] : NONE;
  }

  /** A slot as an Entry (a single-route slot is turned into one, in the map). */
  private entryOf(map: PrefixMap<PrefixKey, Slot>, key: PrefixKey, slot: Slot): Entry {
    if (slot instanceof Entry) return slot;
    const s = isHead(slot) ? slot : storedForm(slot);
    const e = new Entry(key, [s]);
    e.best = s;
    e.multipath = this.mpOn ? [s] : NO_STORED;
    e.reason = REASON_ONLY_PATH;
    map.set(key, e);
    return e;
  }

  /** A candidate enters the table: it holds its attribute set, and the tracker sets its reachability. */
  private enter(route: Route): void {
    holdAttributes(route.attrs);
    this.tracker?.track(route);
  }

  /** A candidate leaves the table. */
  private leave(route: Route): void {
    this.tracker?.untrack(route);
    releaseAttributes(route.attrs);
  }

  /** `route` takes the place of candidate `old` (the new set held before the old one is let go: it may be the same). */
  private swap(old: Route, route: Route): void {
    this.tracker?.untrack(old);
    holdAttributes(route.attrs);
    releaseAttributes(old.attrs);
    this.tracker?.track(route);
  }

  /**
   * Add a candidate route or replace the one with the same source and path
   * id. Returns the resulting event, or null when the selection did not
   * change.
   */
  upsert(route: Route): LocRibEvent | null {
    const key = route.key;
    const map = this.mapOf(key);
    const slot = map.get(key);
    const sid = route.source.id;
    const t = this.tracker;
    if (slot === undefined) {
      this.bump(key, 1);
      t?.prefixChanged(key);
      this.enter(route);
      if (route.reachable) {
        this.index(sid, 1, map, map.put(key, storedForm(route)));
        return this.emit(key, null, NONE, route, this.single(route));
      }
      const e = new Entry(key, [storedForm(route)]);
      this.index(sid, 1, map, map.put(key, e));
      return this.select(map, e);
    }
    let cur = slot;
    if (!(slot instanceof Entry)) {
      // The same route (or head) again: nothing changes.
      if (slot === route || slot === headOf(route)) return null;
      const old = this.routeAt(key, slot);
      if (old.source.id === sid && old.pathId === route.pathId) {
        // Replacing the only, selected candidate: the common update.
        this.swap(old, route);
        if (route.reachable) {
          map.set(key, storedForm(route));
          return this.emit(key, old, this.single(old), route, this.single(route));
        }
      }
      cur = old;
    }
    const e = this.entryOf(map, key, cur);
    const ms = e.stored;
    let i = 0;
    let sourceHad = false;
    for (; i < ms.length; i++) {
      const m = ms[i]!;
      if (m.source.id !== sid) continue;
      if (storedPathId(m) === route.pathId) break;
      sourceHad = true;
    }
    // (Stored after it entered: the tracker may have moved it to another head.)
    if (i === ms.length) {
      this.bump(key, 1);
      if (!sourceHad) this.index(sid, 1, map, map.positionOf(key));
      this.enter(route);
      ms.push(storedForm(route));
      if (this.losesToBest(e, route)) return null;
    } else if (ms[i] === route || ms[i] === headOf(route)) {
      return null;
    } else if (slot instanceof Entry) {
      this.swap(this.routeAt(key, ms[i]!), route);
      ms[i] = storedForm(route);
    } else {
      // The single-slot replacement above, with an unreachable new route (already tracked).
      ms[i] = storedForm(route);
    }
    return this.select(map, e);
  }

  /**
   * Remove the route of a source with this prefix and path id. Returns the
   * event, or null when nothing changed. With `only`, only a route carrying
   * that very source object goes (a neighbour's routes of an ended session,
   * not those of the next session, which has a new source object).
   */
  remove(sourceId: string, key: PrefixKey, pathId = 0, only?: RouteSource): LocRibEvent | null {
    const map = this.mapOf(key);
    const slot = map.get(key);
    if (slot === undefined) return null;
    if (!(slot instanceof Entry)) {
      if (slot.source.id !== sourceId || (only !== undefined && slot.source !== only)) return null;
      const r = this.routeAt(key, slot);
      if (r.pathId !== pathId) return null;
      this.leave(r);
      this.index(sourceId, -1, map, map.positionOf(key));
      map.delete(key);
      this.bump(key, -1);
      this.tracker?.prefixChanged(key);
      return this.emit(key, r, this.single(r), null, NONE);
    }
    const ms = slot.stored;
    let others = false;
    let found = -1;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i]!;
      if (m.source.id !== sourceId) continue;
      if (storedPathId(m) === pathId && (only === undefined || m.source === only)) found = i;
      else others = true;
    }
    if (found < 0) return null;
    this.leave(this.routeAt(key, ms[found]!));
    ms.splice(found, 1);
    this.bump(key, -1);
    if (!others) this.index(sourceId, -1, map, map.positionOf(key));
    return this.afterRemoval(map, slot);
  }

  /**
   * Remove every route of a source (a scan of the table: the daemon's
   * neighbours remove theirs in slices with `remove`, walking their own
   * Adj-RIB-In). Returns the number of routes removed; changes are reported
   * to subscribers.
   */
  removeSource(sourceId: string): number {
    if (!this.bySource.has(sourceId)) return 0;
    // Collect first: listeners may modify the table.
    const keys: PrefixKey[] = [];
    for (const m of this.tables()) {
      for (const [key, slot] of m) {
        if (slot instanceof Entry ? slot.stored.some((m) => m.source.id === sourceId) : slot.source.id === sourceId) keys.push(key);
      }
    }
    let n = 0;
    for (const key of keys) {
      const map = this.mapOf(key);
      const slot = map.get(key);
      if (slot === undefined) continue;
      if (!(slot instanceof Entry)) {
        if (slot.source.id === sourceId) {
          this.remove(sourceId, key, this.routeAt(key, slot).pathId);
          n++;
        }
        continue;
      }
      const ms = slot.stored;
      let w = 0;
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i]!;
        if (m.source.id !== sourceId) ms[w++] = m;
        else this.leave(this.routeAt(key, m));
      }
      const removed = ms.length - w;
      if (removed === 0) continue;
      ms.length = w;
      n += removed;
      this.bump(key, -removed);
      this.index(sourceId, -1, map, map.positionOf(key));
      this.afterRemoval(map, slot);
    }
    this.forgetSource(sourceId);
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
      const all: PrefixKey[] = [...this.v4.keys(), ...this.v6.keys()];
      for (const key of all) if (this.rerun(key)) n++;
      return n;
    }
    for (const key of keys) if (this.rerun(key)) n++;
    return n;
  }

  private rerun(key: PrefixKey): boolean {
    const map = this.mapOf(key);
    const slot = map.get(key);
    if (slot === undefined) return false;
    if (!(slot instanceof Entry)) {
      // Still reachable, and the multipath set the same: nothing to do.
      if (slotReachable(slot) && this.mpOn === (this.opts.multipath?.enabled === true)) return false;
      return this.select(map, this.entryOf(map, key, slot)) !== null;
    }
    return this.select(map, slot) !== null;
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
      const slot = this.mapOf(r.key).get(r.key);
      if (slot === undefined || done.has(r.key)) continue;
      let best: Route | null;
      let mp: readonly Route[];
      if (slot instanceof Entry) {
        const s = headOf(r) ?? r;
        if (slot.best !== s && !slot.multipath.includes(s)) continue;
        best = this.made(r.key, slot.best);
        mp = this.madeList(r.key, slot.multipath, slot.best, best);
      } else {
        if (slot !== r && slot !== headOf(r)) continue;
        best = r;
        mp = this.single(r);
      }
      done.add(r.key);
      const ev = new RibEvent(r.key, best, best, mp, mp);
      ev.forwarding = true;
      this.deliver(this.forwardingListeners, ev);
    }
    return done.size;
  }

  /** Drop everything (no events). */
  clear(): void {
    for (const r of this.candidates()) this.leave(r);
    this.v4.clear();
    this.v6.clear();
    this.bySource.clear();
    this.lastSid = this.lastCount = null;
    this.paths4 = 0;
    this.paths6 = 0;
  }

  /**
   * Every candidate route, walking the live table: prefixes added meanwhile
   * are visited, removed ones skipped. For scans spread over turns (the
   * next-hop tracker's re-runs).
   */
  *walkCandidates(afi?: Afi): IterableIterator<Route> {
    for (const m of this.tables(afi)) {
      for (const p of m.positions()) {
        const slot = m.valueAt(p);
        const key = m.keyAt(p);
        if (slot instanceof Entry) for (const s of slot.stored.slice()) yield this.routeAt(key, s);
        else yield this.routeAt(key, slot);
      }
    }
  }

  /** The candidate routes of the prefixes `keys` (those in the table; a prefix given twice, twice), as walkCandidates gives them. */
  *candidatesAt(keys: readonly PrefixKey[]): IterableIterator<Route> {
    for (const key of keys) {
      const slot = this.mapOf(key).get(key);
      if (slot === undefined) continue;
      if (slot instanceof Entry) for (const s of slot.stored.slice()) yield this.routeAt(key, s);
      else yield this.routeAt(key, slot);
    }
  }

  /** Every candidate route (for the tracker hand-over; collected first). */
  private candidates(): Route[] {
    return [...this.walkCandidates()];
  }

  private afterRemoval(map: PrefixMap<PrefixKey, Slot>, e: Entry): LocRibEvent | null {
    if (e.stored.length > 0) return this.select(map, e);
    map.delete(e.key);
    this.tracker?.prefixChanged(e.key);
    const oldBest = e.best;
    const oldMp = e.multipath;
    e.best = null;
    e.multipath = NO_STORED;
    e.reason = undefined;
    if (oldBest === null && oldMp.length === 0) return null;
    const old = this.made(e.key, oldBest);
    return this.emit(e.key, old, this.madeList(e.key, oldMp, oldBest, old), null, NONE);
  }

  /** Source `sid` gains (d = 1) or loses (d = -1) its routes for the prefix at position `pos` of `map`. */
  private index(sid: string, d: number, map: PrefixMap<PrefixKey, Slot>, pos: number): void {
    let c = sid === this.lastSid ? this.lastCount : (this.bySource.get(sid) ?? null);
    if (c === null) {
      if (d <= 0) return;
      this.bySource.set(sid, (c = { n: 0, runs: [NO_RUNS, NO_RUNS] }));
    }
    c.n += d;
    if (c.n <= 0) return this.forgetSource(sid);
    this.lastSid = sid;
    this.lastCount = c;
    const f = map === (this.v4 as PrefixMap<PrefixKey, Slot>) ? 0 : 1;
    const run = pos >>> SOURCE_RUN_BITS;
    let runs = c.runs[f];
    if (run >= runs.length) {
      const grown = new Uint16Array(Math.max(run + 1, runs.length * 2, 16));
      grown.set(runs);
      c.runs[f] = runs = grown;
    }
    runs[run]! += d;
  }

  private forgetSource(sid: string): void {
    this.bySource.delete(sid);
    if (this.lastSid === sid) this.lastSid = this.lastCount = null;
  }

  /**
   * Whether `route`, a candidate just added to `e` (a path it did not have:
   * nothing replaced or removed), leaves the selection as it is: it loses to
   * the selected route in the decision's pairwise order (`compareCode`, which
   * compares MED only where `selectBest` does) and is not one the multipath
   * set would take. Then one comparison stands for a selection over every
   * candidate: the best of the candidates and one more that loses to it is
   * that best (with deterministic MED, the newcomer's neighbour-AS group
   * keeps its best or gets the newcomer, and the best beats both). A whole
   * selection for every path as it came cost more with every peer that sends
   * the prefix: in process, twelve peers each sending the same 100,000
   * prefixes took 2.0–2.2 s, the last ones 170–310 ms a table; with this
   * 1.24–1.25 s, 78–93 ms (four peers showed no difference).
   */
  private losesToBest(e: Entry, route: Route): boolean {
    const b = e.best;
    if (b === null) return false;
    this.bestStored[0] = b;
    const best = routesForDecision(e.key, this.bestStored, this.bestView)[0]!;
    this.bestStored.length = 0;
    const loses = compareCode(route, best, this.opts) > 0 && !(this.opts.multipath?.enabled === true && multipathEqual(best, route, this.opts));
    this.bestView.length = 0;
    // The runner-up may be the newcomer now: `show` works the reason out again.
    if (loses) e.reason = UNEXPLAINED;
    return loses;
  }

  /**
   * Run the decision for an entry; emit and return the event when the
   * selection changed. An entry left with one selected candidate goes back
   * to being a single-route slot.
   */
  private select(map: PrefixMap<PrefixKey, Slot>, e: Entry): LocRibEvent | null {
    const oldBest = e.best;
    const oldMp = e.multipath;
    let best: Stored | null;
    let mp: readonly Stored[];
    const ms = e.stored;
    const mpOn = this.opts.multipath?.enabled === true;
    if (ms.length === 1 && slotReachable(ms[0]!)) {
      best = ms[0]!;
      mp = mpOn ? [best] : NO_STORED;
      e.reason = REASON_ONLY_PATH;
      map.set(e.key, best);
    } else {
      // Over the stored candidates as they are: no route made per candidate.
      const rs = routesForDecision(e.key, ms, this.decisionScratch);
      // The reason is worked out when the entry is read (see view): it costs a second selection.
      const sel = selectBest(rs, this.opts, false);
      e.reason = sel.best !== null && sel.reason === undefined ? UNEXPLAINED : sel.reason;
      best = sel.best === null ? null : ms[rs.indexOf(sel.best)]!;
      mp = sel.multipath.length === 0 ? NO_STORED : sel.multipath.map((r) => ms[rs.indexOf(r)]!);
      rs.length = 0;
    }
    e.best = best;
    e.multipath = mp;
    if (sameAnnouncement(best, oldBest) && sameList(mp, oldMp)) return null;
    const oldR = this.made(e.key, oldBest);
    const newR = this.made(e.key, best);
    return this.emit(e.key, oldR, this.madeList(e.key, oldMp, oldBest, oldR), newR, this.madeList(e.key, mp, best, newR));
  }

  /**
   * Deliver every selection change in one reused event object (see
   * reuseEvents), or null: a new object per change.
   */
  private shared: RibEvent | null = null;
  /** Deliveries under way (a listener that changes the table gets an event of its own). */
  private delivering = 0;

  /**
   * Subscribers read each event while it is delivered and keep nothing of it
   * but its fields (the daemon's: export, FIB, monitors): from now on one
   * event object serves every change, not an object per change. What
   * upsert and remove return is then that object too, valid until the next
   * change. A change made from inside a delivery gets an object of its own.
   */
  reuseEvents(): void {
    this.shared ??= new RibEvent(0, null, null, NONE, NONE);
  }

  private emit(key: PrefixKey, oldBest: Route | null, oldMp: readonly Route[], newBest: Route | null, mp: readonly Route[]): LocRibEvent {
    let ev = this.shared;
    if (ev !== null && this.delivering === 0) {
      ev.key = key;
      ev.oldBest = oldBest;
      ev.newBest = newBest;
      ev.multipath = mp;
      ev.oldMultipath = oldMp;
    } else ev = new RibEvent(key, oldBest, newBest, mp, oldMp);
    this.tracker?.prefixChanged(key);
    this.delivering++;
    try {
      this.deliver(this.listeners, ev);
    } finally {
      this.delivering--;
    }
    return ev;
  }

  private deliver(ls: LocRibListener[], ev: LocRibEvent): void {
    // One failing listener must not keep the change from the others, nor abort the caller's UPDATE.
    // A copy only when a listener could unsubscribe another during the walk (no array per change otherwise).
    for (const fn of ls.length <= 1 ? ls : ls.slice()) {
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
    const slot = this.mapOf(key).get(key);
    return slot === undefined ? null : this.view(key, slot);
  }

  private view(key: PrefixKey, slot: Slot): LocRibEntry {
    if (!(slot instanceof Entry)) return new SingleView(this.routeAt(key, slot), this.mpOn);
    const best = this.made(key, slot.best);
    // One route per candidate, the selected ones among them.
    const routes = this.madeList(key, slot.stored, slot.best, best);
    if (slot.reason === UNEXPLAINED) slot.reason = explainBest(routes, best!, this.opts);
    return new EntryView(key, routes, best, this.madeList(key, slot.multipath, slot.best, best), slot.reason);
  }

  /** The candidate route of a source for a prefix and path id, or null. */
  candidate(sourceId: string, key: PrefixKey, pathId = 0): Route | null {
    const slot = this.mapOf(key).get(key);
    if (slot === undefined) return null;
    if (!(slot instanceof Entry)) {
      if (slot.source.id !== sourceId) return null;
      const r = this.routeAt(key, slot);
      return r.pathId === pathId ? r : null;
    }
    for (const s of slot.stored) if (s.source.id === sourceId && storedPathId(s) === pathId) return this.routeAt(key, s);
    return null;
  }

  /** Whether `source` itself has a candidate for the prefix and path id: `candidate` without making the route. */
  hasCandidate(source: RouteSource, key: PrefixKey, pathId = 0): boolean {
    const slot = this.mapOf(key).get(key);
    if (slot === undefined) return false;
    if (!(slot instanceof Entry)) return slot.source === source && storedPathId(slot) === pathId;
    for (const s of slot.stored) if (s.source === source && storedPathId(s) === pathId) return true;
    return false;
  }

  /** The best route of a prefix, or null. */
  best(key: PrefixKey): Route | null {
    const slot = this.mapOf(key).get(key);
    return slot === undefined ? null : slot instanceof Entry ? this.made(key, slot.best) : this.routeAt(key, slot);
  }

  /** How many prefixes a source has a route for (its accepted count), without a scan. */
  sourceCount(sourceId: string): number {
    return this.bySource.get(sourceId)?.n ?? 0;
  }

  /**
   * The candidate routes of a source, optionally of one family, in table
   * order: a live walk of the runs of positions where the source has
   * prefixes (bySource), passing over the rest of the table; between two
   * routes it yields, at most the rest of a run is visited.
   */
  *routesOf(sourceId: string, afi?: Afi): IterableIterator<Route> {
    if (!this.bySource.has(sourceId)) return;
    for (const m of this.tables(afi)) {
      const f = m === (this.v4 as PrefixMap<PrefixKey, Slot>) ? 0 : 1;
      // A live walk: the source's runs are read afresh at each one (it may have gained or lost prefixes meanwhile).
      for (let run = 0; ; run++) {
        const c = this.bySource.get(sourceId);
        if (c === undefined) return;
        const runs = c.runs[f];
        while (run < runs.length && runs[run] === 0) run++;
        if (run >= runs.length) break;
        const end = Math.min(m.positionEnd, (run + 1) << SOURCE_RUN_BITS);
        for (let p = run << SOURCE_RUN_BITS; p < end; p++) {
          if (!m.holds(p)) continue;
          const slot = m.valueAt(p);
          const key = m.keyAt(p);
          if (slot instanceof Entry) {
            for (const s of slot.stored.slice()) if (s.source.id === sourceId) yield this.routeAt(key, s);
          } else if (slot.source.id === sourceId) yield this.routeAt(key, slot);
        }
      }
    }
  }

  /** Every prefix entry, optionally of one family (IPv4 first; map order, not sorted). */
  *entries(afi?: Afi): IterableIterator<LocRibEntry> {
    for (const m of this.tables(afi)) for (const p of m.positions()) yield this.view(m.keyAt(p), m.valueAt(p));
  }

  /** The best route of every prefix that has one, optionally of one family. */
  *bests(afi?: Afi): IterableIterator<Route> {
    for (const m of this.tables(afi)) {
      for (const p of m.positions()) {
        const s = m.valueAt(p);
        const b = s instanceof Entry ? this.made(m.keyAt(p), s.best) : this.routeAt(m.keyAt(p), s);
        if (b !== null) yield b;
      }
    }
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
    for (const m of this.tables(afi)) for (const s of m.values()) if (!(s instanceof Entry) || s.best !== null) n++;
    return n;
  }

  /** Ids of the sources that have routes in the table. */
  sourceIds(): string[] {
    return [...this.bySource.keys()];
  }

  /** The entry at a prefix of the same family as `p`, masked to `len` bits. */
  private at(p: Prefix, len: number): LocRibEntry | undefined {
    const k = this.keyAt(p, len);
    const s = this.mapOf(k).get(k);
    return s === undefined ? undefined : this.view(k, s);
  }

  /** The key of `p` masked to `len` bits. */
  private keyAt(p: Prefix, len: number): PrefixKey {
    if (p.afi === 1) {
      const a = p.addr;
      const n = ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
      const masked = len === 0 ? 0 : (n & (0xffffffff << (32 - len))) >>> 0;
      return masked * 64 + len;
    }
    return prefixKey({ afi: 2, len, addr: maskAddr(p.addr, len) });
  }

  /**
   * Longest-prefix match: the most specific entry containing `p` (an address
   * is a /32 or /128 prefix), or null. With `withBest`, only entries with a
   * best route count (forwarding lookup).
   */
  longestMatch(p: Prefix, withBest = false): LocRibEntry | null {
    for (let len = p.len; len >= 0; len--) {
      const k = this.keyAt(p, len);
      const s = this.mapOf(k).get(k);
      if (s !== undefined && (!withBest || !(s instanceof Entry) || s.best !== null)) return this.view(k, s);
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
    const out: LocRibEntry[] = [];
    if (p.len === 0) {
      for (const e of this.entries(p.afi)) out.push(e);
    } else {
      const map = (p.afi === 1 ? this.v4 : this.v6) as PrefixMap<PrefixKey, Slot>;
      for (const [key, s] of map) {
        const ep = prefixOfKey(key);
        if (prefixContains(p, ep)) out.push(this.view(key, s));
      }
    }
    return out.sort((a, b) => comparePrefixes(a.prefix, b.prefix));
  }
}
