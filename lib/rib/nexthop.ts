/**
 * Next-hop tracking (RFC 4271 §9.1.2.1, BIRD's host cache): decides whether
 * the next hop of every Loc-RIB candidate is reachable and at what IGP cost,
 * by resolving it through an "IGP table" (the kernel's FIB in the daemon, a
 * fake in tests) and, recursively, through the Loc-RIB itself.
 *
 * Protocol-independent: the table below is a `NextHopResolver` (one async
 * lookup per address plus a "something changed" signal); the Loc-RIB calls
 * this tracker (as its `RouteTracker`) whenever a candidate enters or leaves
 * and whenever a prefix appears, disappears or changes its best route.
 *
 * What is cached, per distinct next-hop address (there are few):
 * - the resolver's answer (reachable, metric, matching prefix, whether that
 *   prefix is a route we installed ourselves); looked up once when the next
 *   hop is first used, and again, for every tracked next hop, after a
 *   resolver change signal (kernel route/link/address event), debounced;
 * - the resolution derived from it and the Loc-RIB: reachable, IGP cost,
 *   the chain of BGP prefixes it goes through (empty when the IGP resolves
 *   it directly) and the immediate forwarding hops (RFC 4271 §5.1.3);
 * - the number of routes using it (not the routes: a change of some next
 *   hops' resolution walks the Loc-RIB's candidates in time-bounded slices,
 *   as BIRD's next-hop update walks its table, and re-runs the decision for
 *   the prefixes whose routes use them). The exception is a next hop's
 *   first answer: the routes that entered while it was pending, unreachable
 *   until then, are the only ones it changes, so their prefixes are noted
 *   as they enter (up to a bound for all next hops together) and the answer
 *   re-runs those alone: a next hop first seen when the Loc-RIB already
 *   holds a table (the second family's, a new peer's) does not walk it.
 *
 * Resolution of a next hop N (longest match wins, RFC 4271 §9.1.2.1):
 * - L = the most specific Loc-RIB prefix holding N (any prefix with
 *   candidates, best route or not), K = the resolver's match for N;
 * - if L is more specific than K (or K is one of our own routes, i.e. L's
 *   route installed by us), N resolves recursively through L: unreachable
 *   when L has no best route, else as L's best route's next hop, with its
 *   cost; the chain is L then that next hop's chain;
 * - otherwise through K: reachable when the resolver found a usable route
 *   (not unreachable/blackhole/prohibit), cost = its metric, chain empty.
 * Immediate hops (what the FIB installs, BIRD's "recursive" gateway mode):
 * through K, K's gateways with their interfaces (N itself when K is a
 * connected route: N is on-link); through L, the immediate hops of L's best
 * route's next hop (that next hop itself when it is on-link). A route's
 * `via` is set to them unless they are just its own next hop (on-link: the
 * FIB installs the next hop as it is). When only the immediate hops of a
 * selected route change (the IGP path to its next hop moved), the Loc-RIB
 * is told (`forwardingChanged`) so that the kernel route follows.
 * A route is reachable when its next hop's resolution is and the chain does
 * not contain the route's own prefix: a route never resolves through itself
 * or through a route that depends on it (mutually recursive routes all
 * fail). Counting prefixes without a best route in the longest match keeps
 * such routes unreachable instead of flapping (resolvable while absent from
 * the table, unresolvable once in it).
 *
 * Not looked up (reachable, cost 0): locally originated routes, next hop
 * "self" (empty or zero), IPv6 link-local next hops (they name the session's
 * link). An IPv4-mapped IPv6 next hop (::ffff:a.b.c.d) resolves as the IPv4
 * address, as the FIB installs it; any other IPv6 next hop of an IPv4 route
 * (RFC 8950) resolves in IPv6.
 *
 * Before the first answer for a next hop its routes are unreachable (not
 * candidates): the answer comes within milliseconds, and a route never wins
 * on a first-arrival race only to be replaced once the real costs are known.
 */
import { type Afi, type Prefix, formatAddr, maskAddr, prefixToString } from "../core/addr.ts";
import { type Clock, type TimerHandle, realClock } from "../core/clock.ts";
import type { LocRib, RouteTracker } from "./loc-rib.ts";
import { type ForwardingHop, type PrefixKey, type Route, forwardingHopText, isWideKey, prefixKey, wideKeyMix } from "./types.ts";

/** What a resolver answers for one address. */
export interface NextHopAnswer {
  /** A usable route matched (not unreachable, blackhole or prohibit). */
  reachable: boolean;
  /** Metric of the matching route; 0 when none. */
  metric: number;
  /** Prefix of the matching route; null when the lookup failed. */
  prefix: Prefix | null;
  /** The matching route is one we installed from the Loc-RIB (resolve through the Loc-RIB instead). */
  own: boolean;
  /** For people: "203.0.113.0/24 via 192.0.2.2 metric 10", or why the lookup failed. */
  via: string;
  /**
   * The immediate hops of the matching route: its gateways with their
   * interfaces, the looked-up address itself (with the interface) for a
   * connected route. Absent or empty: the address is its own forwarding hop.
   */
  hops?: readonly ForwardingHop[];
}

/** The table next hops are resolved in (the kernel's FIB in the daemon). */
export interface NextHopResolver {
  /** Look up one address (4 or 16 bytes); never rejects (failure = unreachable answer). */
  resolve(afi: Afi, addr: Uint8Array): Promise<NextHopAnswer>;
  /** Subscribe to "the table changed, answers may be stale"; returns the unsubscribe function. */
  onChange(fn: () => void): () => void;
}

/** The resolution of one next hop, as the decision process sees it. */
export interface Resolution {
  reachable: boolean;
  /** IGP cost (the metric of the IGP route at the bottom of the chain). */
  cost: number;
  /** Loc-RIB prefixes the resolution goes through (outermost first); empty when the IGP resolves it. */
  chain: readonly PrefixKey[];
  /** For people: how it resolved, or why not. */
  via: string;
  /** Immediate forwarding hops (may be the next hop itself); empty when unknown or not reachable. */
  hops: readonly ForwardingHop[];
  /** What a route using this next hop forwards to (`Route.via`): `hops`, or undefined when they are only the next hop itself. */
  forward: readonly ForwardingHop[] | undefined;
}

/** One tracked next hop, for `show` and tests. */
export interface NextHopInfo {
  nextHop: string;
  /** "pending" until the first answer. */
  state: "pending" | "reachable" | "unreachable";
  igpCost: number;
  via: string;
  /** The immediate forwarding hops ("192.0.2.2", "fe80::1%2"); the next hop itself when on-link; empty when unreachable. */
  hops: string[];
  /** Number of candidate routes using it. */
  routes: number;
}

export interface NextHopTrackerOptions {
  /** Times the debounce and the forgetting of unused next hops (re-run slices yield with setImmediate). */
  clock?: Clock;
  /** Wait this long after a change signal before re-resolving, batching bursts (ms, default 50). */
  debounceMs?: number;
  /** Time budget of one slice of a re-run before yielding to the event loop (ms, default 8). */
  sliceMs?: number;
  /** Keep an unused next hop's answer this long in case routes come back (ms, default 10 s). */
  keepUnusedMs?: number;
  /** Most prefixes noted for next hops waiting for their first answer, all together (see Nh.pendingKeys; default 262,144). */
  pendingKeysMax?: number;
  log?: (level: "debug" | "info" | "warn", msg: string) => void;
}

/** Where a route's next hop is resolved: an address, or nowhere (reachable at cost 0). */
export function resolutionTarget(route: Route): { afi: Afi; addr: Uint8Array } | null {
  const nh = route.nextHop;
  if (route.source.local || nh.length === 0) return null;
  if (nh.length === 4) return nh[0] === 0 && nh[1] === 0 && nh[2] === 0 && nh[3] === 0 ? null : { afi: 1, addr: nh };
  if (nh.length !== 16 && nh.length !== 32) return null;
  let zero = true;
  for (let i = 0; i < 16; i++) if (nh[i] !== 0) zero = false;
  // "::" (a link-local-only next hop, or none) and link-local fe80::/10: the session's link.
  if (zero || (nh[0] === 0xfe && (nh[1]! & 0xc0) === 0x80)) return null;
  let mapped = nh[10] === 0xff && nh[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (nh[i] !== 0) mapped = false;
  if (mapped) return { afi: 1, addr: nh.subarray(12, 16) };
  return { afi: 2, addr: nh.length === 16 ? nh : nh.subarray(0, 16) };
}

function addrKey(afi: Afi, addr: Uint8Array): string {
  return String.fromCharCode(afi, ...addr);
}

/** Re-runs in one second before they are spaced out by the debounce (a guard against feedback loops). */
const MAX_RERUNS_PER_SECOND = 200;

const NO_HOPS: readonly ForwardingHop[] = [];

const UNRESOLVED_PENDING: Resolution = { reachable: false, cost: 0, chain: [], via: "waiting for the first lookup", hops: NO_HOPS, forward: undefined };

/**
 * Most prefix keys the tracker notes for next hops waiting for their first
 * answer, all of them together (8 bytes each; the default of
 * `pendingKeysMax`); past it, a next hop's first answer re-runs by walking
 * the Loc-RIB.
 */
const PENDING_KEYS_MAX = 262_144;

/** An unreachable resolution. */
function unreachable(chain: readonly PrefixKey[], via: string): Resolution {
  return { reachable: false, cost: 0, chain, via, hops: NO_HOPS, forward: undefined };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two hop lists are the same (same order: answers list them in the kernel's order). */
export function sameHops(a: readonly ForwardingHop[] | undefined, b: readonly ForwardingHop[] | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.ifindex !== b[i]!.ifindex || !sameBytes(a[i]!.addr, b[i]!.addr)) return false;
  return true;
}

/** A reachable resolution of the next hop at `addr` with these immediate hops (`forward` derived). */
function reachableVia(cost: number, chain: readonly PrefixKey[], via: string, hops: readonly ForwardingHop[], addr: Uint8Array): Resolution {
  const onLink = hops.every((h) => sameBytes(h.addr, addr));
  return { reachable: true, cost, chain, via, hops, forward: onLink ? undefined : hops };
}

/** The route's forwarding hops under a resolution (none when it does not use it). */
function forwardOf(r: Route, res: Resolution): readonly ForwardingHop[] | undefined {
  return routeReachable(r, res) ? res.forward : undefined;
}


class Nh {
  /** Number of candidate routes using it. */
  routes = 0;
  answer: NextHopAnswer | null = null;
  /** The resolution now (null: to be recomputed). */
  res: Resolution | null = null;
  /** The resolution last applied to all of its routes. */
  applied: Resolution = UNRESOLVED_PENDING;
  /** Generation of the resolver's table the last lookup was started in; -1 = none yet. */
  lookupGen = -1;
  lookingUp = false;
  unusedSince = -1;
  /** Taken out of the tracker (a route's next-hop buffer may still point here: byBuf). */
  destroyed = false;
  readonly text: string;
  readonly host: Prefix;
  /** Loc-RIB keys of every prefix that could hold this address (for invalidation). */
  readonly covers: PrefixKey[] = [];
  /**
   * The prefixes whose routes were given the pending resolution (tracked
   * before the first answer): the only routes of this next hop that the
   * first answer changes, so its re-run visits them instead of walking the
   * Loc-RIB (a next hop first seen with a full table in it: a second
   * family's table, a new peer's). Null once a re-run took them, or when
   * the notes went past the tracker's bound (then the re-run walks).
   */
  pendingKeys: PrefixKey[] | null = [];
  constructor(
    readonly key: string,
    readonly afi: Afi,
    readonly addr: Uint8Array,
  ) {
    this.text = formatAddr(afi, addr);
    this.host = { afi, len: addr.length * 8, addr };
    for (let len = 0; len <= addr.length * 8; len++) this.covers.push(prefixKey({ afi, len, addr: maskAddr(addr, len) }));
  }
}

function sameResolution(a: Resolution, b: Resolution): boolean {
  if (a === b) return true;
  if (a.reachable !== b.reachable || a.cost !== b.cost || a.chain.length !== b.chain.length) return false;
  for (let i = 0; i < a.chain.length; i++) if (a.chain[i] !== b.chain[i]) return false;
  return sameHops(a.hops, b.hops);
}

/** Reachability of one route under its next hop's resolution (never through itself). */
function routeReachable(r: Route, res: Resolution): boolean {
  if (!res.reachable) return false;
  // (A loop, not includes(): the chain is a key or two, and this runs twice for every route that enters the Loc-RIB.)
  const c = res.chain;
  for (let i = 0; i < c.length; i++) if (c[i] === r.key) return false;
  return true;
}

/** Bits of NextHopTracker's filter before `covered`. */
const COVERED_BITS = 1 << 16;

/** A numeric key's bit in that filter (exact integers below 2^53: their two 32-bit halves mixed; a wide IPv6 key, whose magnitude is below 2: its bits). */
function coveredBit(k: number): number {
  if (isWideKey(k)) return wideKeyMix(k) >>> 16;
  return Math.imul((k >>> 0) ^ Math.imul((k * (1 / 4294967296)) >>> 0, 0x85ebca6b), 0x9e3779b1) >>> 16;
}

export class NextHopTracker implements RouteTracker {
  private rib: LocRib | null = null;
  private readonly byKey = new Map<string, Nh>();
  /** Fast path: routes of one UPDATE share the next-hop buffer. */
  private readonly byBuf = new WeakMap<Uint8Array, Nh>();
  /** Loc-RIB key → number of tracked next hops that prefix could hold. */
  private readonly covered = new Map<PrefixKey, number>();
  /**
   * A filter before `covered`, which the Loc-RIB asks about every prefix it
   * adds or changes: one bit per 16-bit hash of a numeric key, set for the
   * numeric keys in `covered` (a clear bit: not there; strings always ask
   * the map). Set again from `covered` once about half its bits are of
   * keys that left it (next hops let go): see destroy.
   */
  private readonly coveredBits = new Int32Array(COVERED_BITS / 32);
  /** Keys gone from `covered` since its filter was last set from it (their bits may still be set). */
  private staleBits = 0;
  private readonly clock: Clock;
  private readonly debounceMs: number;
  private readonly sliceMs: number;
  private readonly keepUnusedMs: number;
  private readonly log: NonNullable<NextHopTrackerOptions["log"]>;
  private unsubscribe: (() => void) | null = null;
  /** Generation of the resolver's table: bumped by every change signal. */
  private gen = 0;
  private debounce: TimerHandle | null = null;
  private lookupsInFlight = 0;
  /** A re-run is wanted (resolutions may have changed). */
  private dirty = false;
  /** A re-run is queued (setImmediate) or running (its slices in progress). */
  private rerunQueued = false;
  private running = false;
  private gcTimer: TimerHandle | null = null;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;
  private burst = 0;
  private burstStart = -Infinity;
  /** Counters (tests, diagnostics). */
  readonly stats = { lookups: 0, reruns: 0, walks: 0, prefixesRerun: 0, forwardingChanges: 0, slices: 0, longestSliceMs: 0 };
  /** Keys in every next hop's `pendingKeys` together, and their bound. */
  private pendingNoted = 0;
  private readonly pendingKeysMax: number;

  constructor(
    private readonly resolver: NextHopResolver,
    opts: NextHopTrackerOptions = {},
  ) {
    this.clock = opts.clock ?? realClock;
    this.debounceMs = opts.debounceMs ?? 50;
    this.sliceMs = opts.sliceMs ?? 8;
    this.keepUnusedMs = opts.keepUnusedMs ?? 10_000;
    this.pendingKeysMax = opts.pendingKeysMax ?? PENDING_KEYS_MAX;
    this.log = opts.log ?? (() => {});
  }

  /** Track the candidates of `rib` (existing ones included) and follow the resolver's changes. */
  attach(rib: LocRib): void {
    if (this.rib) throw new Error("next-hop tracker: already attached to a Loc-RIB");
    this.rib = rib;
    rib.setTracker(this);
    this.unsubscribe = this.resolver.onChange(() => this.tableChanged());
  }

  /** Stop following changes and let the Loc-RIB go (routes keep their last reachability). */
  detach(): void {
    this.stopped = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    for (const t of [this.debounce, this.gcTimer]) if (t) this.clock.clearTimeout(t);
    this.debounce = this.gcTimer = null;
    this.rib?.setTracker(null);
    this.rib = null;
    this.wakeIdle();
  }

  // ------------------------------------------------------------ RouteTracker

  track(route: Route): void {
    let nh = this.tracked(route);
    if (nh === undefined) {
      const t = resolutionTarget(route);
      if (t === null) {
        route.reachable = true;
        route.igpCost = 0;
        route.via = undefined;
        return;
      }
      nh = this.nhOf(route, t);
      if (nh === undefined) {
        const key = addrKey(t.afi, t.addr);
        nh = this.create(key, t.afi, t.addr);
        this.byBufSet(route.nextHop, nh);
      }
    }
    nh.routes++;
    nh.unusedSince = -1;
    const res = this.resolutionOf(nh);
    if (res === UNRESOLVED_PENDING) this.notePending(nh, route.key);
    route.reachable = routeReachable(route, res);
    route.igpCost = res.reachable ? res.cost : 0;
    route.via = forwardOf(route, res);
  }

  untrack(route: Route): void {
    let nh = this.tracked(route);
    if (nh === undefined) {
      const t = resolutionTarget(route);
      if (t === null) return;
      nh = this.nhOf(route, t);
    }
    if (nh === undefined || nh.routes === 0) return;
    nh.routes--;
    this.maybeUnused(nh);
  }

  /**
   * The fast path of track/untrack: the tracked next hop of a route's
   * next-hop buffer, known from an earlier route with that very buffer (the
   * routes of one UPDATE share it), without working out its target again.
   */
  private tracked(route: Route): Nh | undefined {
    if (route.source.local) return undefined;
    const buf = route.nextHop;
    let nh: Nh | undefined;
    if (buf === this.lastBuf) nh = this.lastNh;
    else {
      nh = this.byBuf.get(buf);
      this.lastBuf = buf;
      this.lastNh = nh;
    }
    return nh !== undefined && !nh.destroyed ? nh : undefined;
  }

  /**
   * The last buffer `tracked` looked up and what byBuf held for it: the
   * routes of an UPDATE come one after another with one buffer, so most
   * routes need no WeakMap lookup. Forgotten whenever byBuf changes
   * (byBufSet).
   */
  private lastBuf: Uint8Array | null = null;
  private lastNh: Nh | undefined = undefined;

  private byBufSet(buf: Uint8Array, nh: Nh): void {
    this.byBuf.set(buf, nh);
    this.lastBuf = null;
    this.lastNh = undefined;
  }

  /** The tracked next hop a route uses (`t`: its resolution target), if tracked. */
  private nhOf(route: Route, t: { afi: Afi; addr: Uint8Array }): Nh | undefined {
    const nh = this.byBuf.get(route.nextHop);
    if (nh !== undefined && this.byKey.get(nh.key) === nh && nh.afi === t.afi) return nh;
    const found = this.byKey.get(addrKey(t.afi, t.addr));
    if (found !== undefined) this.byBufSet(route.nextHop, found);
    return found;
  }

  /** A route of prefix `key` got the pending resolution of `nh` (see Nh.pendingKeys). */
  private notePending(nh: Nh, key: PrefixKey): void {
    const keys = nh.pendingKeys;
    if (keys === null) return;
    if (this.pendingNoted >= this.pendingKeysMax) {
      this.pendingNoted -= keys.length;
      nh.pendingKeys = null;
      return;
    }
    keys.push(key);
    this.pendingNoted++;
  }

  prefixChanged(key: PrefixKey): void {
    if (typeof key === "number") {
      const b = coveredBit(key);
      if ((this.coveredBits[b >>> 5]! & (1 << (b & 31))) === 0) return;
    }
    if (this.covered.has(key)) this.invalidate();
  }

  // ------------------------------------------------------------ queries

  /** The tracked next hops (for `show` and tests), in address order. */
  nextHops(): NextHopInfo[] {
    const out: NextHopInfo[] = [];
    for (const nh of this.byKey.values()) {
      const res = this.resolutionOf(nh);
      out.push({
        nextHop: nh.text,
        state: nh.answer === null ? "pending" : res.reachable ? "reachable" : "unreachable",
        igpCost: res.reachable ? res.cost : 0,
        via: res.via,
        hops: res.hops.map(forwardingHopText),
        routes: nh.routes,
      });
    }
    return out.sort((a, b) => (a.nextHop < b.nextHop ? -1 : a.nextHop > b.nextHop ? 1 : 0));
  }

  /** Every answer is in and applied: no lookup in flight, no re-run queued or running. */
  get settledNow(): boolean {
    return this.lookupsInFlight === 0 && !this.rerunQueued && !this.running && !this.dirty;
  }

  /** Settled, and no re-resolve is waiting for its debounce either. */
  get idle(): boolean {
    return this.settledNow && this.debounce === null;
  }

  /**
   * Resolves once every answer asked for so far is in and applied (a
   * debounced re-resolve still to come does not count): e.g. before telling
   * the FIB that a peer's initial routes are complete.
   */
  settled(): Promise<void> {
    if (this.settledNow || this.stopped) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // ------------------------------------------------------------ internals

  private create(key: string, afi: Afi, addr: Uint8Array): Nh {
    // A copy (new Uint8Array, not slice(): next hops may be Buffer views into a reused receive buffer).
    const nh = new Nh(key, afi, new Uint8Array(addr));
    this.byKey.set(key, nh);
    for (const k of nh.covers) {
      this.covered.set(k, (this.covered.get(k) ?? 0) + 1);
      this.markCovered(k);
    }
    this.lookup(nh);
    return nh;
  }

  private destroy(nh: Nh): void {
    nh.destroyed = true;
    if (nh.pendingKeys !== null) this.pendingNoted -= nh.pendingKeys.length;
    nh.pendingKeys = null;
    this.byKey.delete(nh.key);
    for (const k of nh.covers) {
      const n = (this.covered.get(k) ?? 1) - 1;
      if (n > 0) this.covered.set(k, n);
      else if (this.covered.delete(k)) this.staleBits++;
    }
    // The bits of keys gone stay set (the filter lets more through, never less) until as many are gone as are left:
    // then it is set again from the keys left, a cost of one per key gone, however many next hops go at once.
    if (this.staleBits > 0 && this.staleBits >= this.covered.size) {
      this.staleBits = 0;
      this.coveredBits.fill(0);
      for (const k of this.covered.keys()) this.markCovered(k);
    }
  }

  /** Set a key's bit in the filter before `covered` (numeric keys only: strings always ask the map). */
  private markCovered(k: PrefixKey): void {
    if (typeof k !== "number") return;
    const b = coveredBit(k);
    this.coveredBits[b >>> 5]! |= 1 << (b & 31);
  }

  private maybeUnused(nh: Nh): void {
    if (nh.routes > 0) return;
    nh.unusedSince = this.clock.now();
    if (this.gcTimer === null && !this.stopped) this.gcTimer = this.clock.setTimeout(() => this.gc(), this.keepUnusedMs);
  }

  private gc(): void {
    this.gcTimer = null;
    const now = this.clock.now();
    let left = false;
    for (const nh of [...this.byKey.values()]) {
      if (nh.routes > 0 || nh.unusedSince < 0) continue;
      if (now - nh.unusedSince >= this.keepUnusedMs) this.destroy(nh);
      else left = true;
    }
    if (left && !this.stopped) this.gcTimer = this.clock.setTimeout(() => this.gc(), this.keepUnusedMs);
  }

  /** Ask the resolver about one next hop (again when the table changed meanwhile). */
  private lookup(nh: Nh): void {
    if (nh.lookingUp || this.stopped) return;
    nh.lookingUp = true;
    this.lookupsInFlight++;
    this.stats.lookups++;
    const gen = this.gen;
    nh.lookupGen = gen;
    this.resolver.resolve(nh.afi, nh.addr).then(
      (a) => this.answered(nh, gen, a),
      (e: unknown) => this.answered(nh, gen, { reachable: false, metric: 0, prefix: null, own: false, via: `lookup failed: ${(e as Error).message}` }),
    );
  }

  private answered(nh: Nh, gen: number, a: NextHopAnswer): void {
    nh.lookingUp = false;
    this.lookupsInFlight--;
    if (this.stopped) return this.wakeIdle();
    const before = nh.answer;
    nh.answer = a;
    if (
      before === null ||
      before.reachable !== a.reachable ||
      before.metric !== a.metric ||
      before.own !== a.own ||
      before.via !== a.via ||
      !sameHops(before.hops ?? NO_HOPS, a.hops ?? NO_HOPS)
    ) {
      if (before === null || before.reachable !== a.reachable) {
        this.log(a.reachable ? "debug" : "info", `next hop ${nh.text}: ${a.reachable ? "reachable" : "unreachable"} (${a.via})`);
      }
      this.invalidate();
    }
    // The table changed while we asked: ask again (the debounce timer does, when it is still to fire).
    if (gen !== this.gen && this.debounce === null && this.byKey.get(nh.key) === nh) this.lookup(nh);
    this.maybeIdle();
  }

  /** The resolver's table changed: re-resolve every tracked next hop after the debounce. */
  private tableChanged(): void {
    this.gen++;
    if (this.debounce !== null || this.stopped) return;
    this.debounce = this.clock.setTimeout(() => {
      this.debounce = null;
      // Next hops first looked up after the change already have a fresh answer (or one on the way).
      for (const nh of this.byKey.values()) if (nh.lookupGen < this.gen) this.lookup(nh);
      this.maybeIdle();
    }, this.debounceMs);
  }

  /** Resolutions may have changed: recompute them and re-run affected prefixes soon. */
  private invalidate(): void {
    for (const nh of this.byKey.values()) nh.res = null;
    this.dirty = true;
    if (!this.rerunQueued && !this.running && !this.stopped) this.queueRerun();
  }

  private queueRerun(): void {
    this.rerunQueued = true;
    // Re-runs feed each other (a changed best can change a recursive next hop). That settles
    // in a few rounds; should it ever not, slow down to one round per debounce instead of spinning.
    const now = this.clock.now();
    if (now - this.burstStart > 1000) {
      this.burstStart = now;
      this.burst = 0;
    }
    if (++this.burst <= MAX_RERUNS_PER_SECOND) {
      setImmediate(() => this.rerun());
      return;
    }
    if (this.burst === MAX_RERUNS_PER_SECOND + 1) this.log("warn", `next hops: resolutions keep changing (recursive routes feeding each other?); re-running every ${this.debounceMs} ms`);
    this.clock.setTimeout(() => this.rerun(), this.debounceMs);
  }

  private resolutionOf(nh: Nh): Resolution {
    if (nh.res === null) nh.res = this.resolve(nh, []);
    return nh.res;
  }

  /** Resolve one next hop; `path` holds the next hops being resolved above it (loop guard). */
  private resolve(nh: Nh, path: Nh[]): Resolution {
    if (nh.res !== null) return nh.res;
    const a = nh.answer;
    if (a === null) return UNRESOLVED_PENDING;
    const L = this.rib?.longestMatch(nh.host) ?? null;
    const kLen = a.prefix === null ? -1 : a.prefix.len;
    let res: Resolution;
    if (L !== null && (L.prefix.len > kLen || (a.own && L.prefix.len >= kLen))) {
      res = this.throughBgp(nh, L.key, L.prefix, L.best, path);
    } else {
      res = a.reachable ? reachableVia(a.metric, [], a.via, a.hops?.length ? a.hops : [{ addr: nh.addr }], nh.addr) : unreachable([], a.via);
    }
    // Memoise only top-level results: a result computed under a loop guard depends on `path`.
    if (path.length === 0) nh.res = res;
    return res;
  }

  /** Recursive resolution through the Loc-RIB prefix `key` (its best route's next hop). */
  private throughBgp(nh: Nh, key: PrefixKey, prefix: Prefix, best: Route | null, path: Nh[]): Resolution {
    const p = prefixToString(prefix);
    if (best === null) return unreachable([key], `${p} (BGP, no usable route)`);
    const t = resolutionTarget(best);
    // A local route has no forwarding hop to offer: the next hop is installed as it is.
    if (t === null) return { reachable: true, cost: 0, chain: [key], via: `${p} (BGP, local)`, hops: NO_HOPS, forward: undefined };
    const next = this.byKey.get(addrKey(t.afi, t.addr));
    if (next === undefined) return unreachable([key], `${p} (BGP, next hop not tracked)`);
    if (next === nh || path.includes(next)) return unreachable([key], `${p} (BGP, recursion loop)`);
    path.push(nh);
    const r = this.resolve(next, path);
    path.pop();
    const chain = [key, ...r.chain];
    if (!r.reachable || r.chain.includes(key)) return unreachable(chain, `${p} (BGP via ${next.text}: ${r.reachable ? "resolves through itself" : r.via})`);
    // Forwarded like the route it resolves through: to that route's next hop's immediate hops.
    const hops = r.hops.length > 0 ? r.hops : [{ addr: next.addr }];
    return reachableVia(r.cost, chain, `${p} (BGP via ${next.text}, ${r.via})`, hops, nh.addr);
  }

  /**
   * Recompute every resolution, and for the next hops whose resolution
   * changed update their routes and re-run the decision for those prefixes,
   * in slices of at most `sliceMs`.
   */
  private rerun(): void {
    this.rerunQueued = false;
    if (this.stopped || this.rib === null) return this.wakeIdle();
    this.dirty = false;
    this.running = true;
    this.stats.reruns++;
    const changed = new Set<Nh>();
    // The prefixes to visit when every changed next hop is leaving the pending resolution with its notes (see
    // Nh.pendingKeys); null: walk the Loc-RIB.
    let visit: PrefixKey[][] | null = [];
    for (const nh of this.byKey.values()) {
      const res = this.resolutionOf(nh);
      let noted: PrefixKey[] | null = null;
      if (res !== UNRESOLVED_PENDING && nh.pendingKeys !== null) {
        noted = nh.pendingKeys;
        this.pendingNoted -= noted.length;
        nh.pendingKeys = null;
      }
      if (sameResolution(res, nh.applied)) continue;
      nh.applied = res;
      if (nh.routes === 0) continue;
      changed.add(nh);
      // Notes are taken by the first re-run after the first answer: with them, this is that answer's change.
      if (visit !== null) {
        if (noted !== null) visit.push(noted);
        else visit = null;
      }
    }
    if (changed.size === 0) return this.slice(null, changed);
    if (visit !== null) return this.slice(this.rib.candidatesAt(visit.flat()), changed);
    this.stats.walks++;
    this.slice(this.rib.walkCandidates(), changed);
  }

  /** One slice of the walk over the Loc-RIB's candidates, for the routes of the `changed` next hops. */
  private slice(walk: Iterator<Route> | null, changed: Set<Nh>): void {
    if (this.stopped || this.rib === null) {
      this.running = false;
      return this.wakeIdle();
    }
    this.stats.slices++;
    const t0 = performance.now();
    let done = walk === null;
    while (!done) {
      const keys: PrefixKey[] = [];
      /** Routes whose forwarding hops alone changed (their prefixes' kernel routes must follow). */
      const moved: Route[] = [];
      for (let n = 0; n < 256; n++) {
        const step = walk!.next();
        if (step.done) {
          done = true;
          break;
        }
        const r = step.value;
        const t = resolutionTarget(r);
        const nh = t === null ? undefined : this.nhOf(r, t);
        if (nh === undefined || !changed.has(nh)) continue;
        const res = this.resolutionOf(nh);
        const reach = routeReachable(r, res);
        const cost = res.reachable ? res.cost : 0;
        const via = reach ? res.forward : undefined;
        if (!sameHops(r.via, via)) {
          r.via = via;
          moved.push(r);
        }
        if (r.reachable === reach && r.igpCost === cost) continue;
        r.reachable = reach;
        r.igpCost = cost;
        keys.push(r.key);
      }
      // Per batch, inside the time budget: re-running a prefix emits Loc-RIB events (they may
      // invalidate again: a later re-run handles that). Selected routes whose forwarding hops
      // changed get a new kernel route for the same selection, told before the re-run, against
      // the selection it was made for (a selection change is an event anyway).
      if (moved.length > 0) this.stats.forwardingChanges += this.rib.forwardingChanged(moved);
      this.rib.reevaluate(keys);
      this.stats.prefixesRerun += keys.length;
      if (performance.now() - t0 >= this.sliceMs) break;
    }
    this.stats.longestSliceMs = Math.max(this.stats.longestSliceMs, performance.now() - t0);
    if (!done) {
      setImmediate(() => this.slice(walk, changed));
      return;
    }
    this.running = false;
    if (this.dirty && !this.rerunQueued) this.queueRerun();
    this.maybeIdle();
  }

  private maybeIdle(): void {
    if (this.settledNow) this.wakeIdle();
  }

  private wakeIdle(): void {
    const w = this.idleWaiters;
    this.idleWaiters = [];
    for (const fn of w) fn();
  }
}
