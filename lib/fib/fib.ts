/**
 * The FIB reconciler: turns the Loc-RIB's selection into the routes bgpctl
 * wants in the kernel (the desired state, one kernel route per prefix) and
 * keeps the kernel in line with it through the `Kernel` contract of
 * ./types.ts — batched, two `apply` calls in flight at most (the next built while the
 * kernel works on the last; a prefix with an operation in flight waits for
 * its answer before it is looked at again), repaired from the
 * kernel's multicast events, with a full compare (dump) on overrun and
 * periodically as a safety net.
 *
 * Rules (see also the `Fib` class comment):
 * - Ownership: only routes with our protocol in our table are ever replaced
 *   or deleted. Route identity in the kernel is (table, prefix, metric): a
 *   REPLACE overwrites whatever route holds that key, so when another
 *   protocol's route holds our key we do not install ours ("conflict").
 * - Never installed: locally originated routes (source.local or no next hop),
 *   next hops that are our own addresses, connected prefixes of the host
 *   (the interface subnets and the host addresses themselves) and prefixes
 *   inside an `exclude` entry (the prefix itself and every more specific one).
 * - Start-up: our routes found in the kernel are kept (not deleted) until the
 *   routing is synced (`allSourcesSynced()`, every expected source's
 *   `endOfRib()`, or the start-up deadline); then those no longer desired are
 *   removed. Desired routes are installed/replaced from the first moment.
 *   The hold applies to the prefixes of the start-up dump (withdrawn before
 *   the sync, their route stays until then); prefixes new in this run follow
 *   the RIB at once.
 * - Errors are per route and never block other routes; a failed route is
 *   logged once per (route, reason) and retried on link/address changes and
 *   at every full compare. A failed replace leaves the route that was there
 *   (it may still forward). A delete answered ESRCH/ENOENT counts as done.
 * - Next hops: 32-byte IPv6 next hops use the link-local address with the
 *   interface whose IPv6 subnet holds the global one (else the global); an
 *   IPv4 prefix with an IPv6 next hop gets `via6`; a lone link-local next hop
 *   has no interface and is reported as failed. ECMP next hops are
 *   deduplicated and sorted; weights are not set.
 * - Recursive next hops (RFC 4271 §5.1.3): a route whose next hop is not
 *   on-link carries its immediate forwarding hops (`Route.via`, set by the
 *   next-hop tracker, lib/rib/nexthop.ts); those are installed instead of the
 *   BGP next hop (an ECMP set: the union of its members' immediate hops),
 *   with their interface. Without `via` (on-link next hop, link-local next
 *   hop with its interface, no tracker) the next hop itself is installed.
 *   `onLocRibChange` takes the Loc-RIB's `forwarding` events (same best,
 *   new immediate hops) like any other: the desired route is recomputed.
 * - Next-hop overrides (`setNextHopOverrides`): a table from BGP next-hop
 *   address to the kernel next hop to install instead of the next hop and
 *   of its recursive resolution (an overlay's `VTEP dev vxlan onlink`), or
 *   to a refusal: routes via that next hop are reported failed with its
 *   reason and any of ours for them is removed (never installed through a
 *   resolution the table's owner knows to be wrong). A change re-derives
 *   every route. IPv6 refuses an onlink gateway that a route of another
 *   device covers, ours for the prefix included: when such a replace fails
 *   (EINVAL), the next attempt deletes ours first (both in one batch).
 * - Loop guard: when the kernel reports back a different route after three
 *   replaces of the same desired route, we stop replacing it until the next
 *   full compare.
 * - Time slices: no step holds the event loop for long, whatever the table
 *   size. Building batches (the reconcile queue, then a full scan walked
 *   with an iterator) is a task of the shared slicer (lib/core/slices.ts),
 *   bounded by its deadline and by `maxBatch`; a batch's kernel work is
 *   split into short sends by the kernel handle (ffi/rtnetlink.ts); full
 *   compares learn the dumped routes SLICE_MS at a time; stop() builds its
 *   deletes the same way. Events are handled one at a time as they come.
 */
import type { Clock, TimerHandle } from "../core/clock.ts";
import { realClock } from "../core/clock.ts";
import { type Prefix, formatIPv4, formatIPv6, maskAddr, parseAddr, parsePrefix, prefixContains } from "../core/addr.ts";
import type { LogLevel } from "../core/log.ts";
import { ChunkedQueue, SlotSet } from "../core/chunked.ts";
import { type SlicedTask, nextTurn, sliced, slicer, SLICE_MS } from "../core/slices.ts";
import type { LocRibEvent } from "../rib/loc-rib.ts";
import type { ForwardingHop, PrefixKey, Route, RouteForwarding } from "../rib/types.ts";
import { compareKeys, ipv4TextKey, isHead, isV4Key, keyText, prefixKey, prefixOfKey, storedForm } from "../rib/types.ts";
import { PrefixMap } from "../rib/prefix-map.ts";
import type {
  FibFamily,
  Kernel,
  KernelAddress,
  KernelError,
  KernelEvent,
  KernelLink,
  KernelNextHop,
  KernelOp,
  KernelRoute,
} from "./types.ts";

export const RT_TABLE_MAIN = 254;
export const RTPROT_BGP = 186;
export const RTN_UNICAST = 1;
/** Failure log lines per batch before they are summarised. */
const FAIL_LOGS_PER_BATCH = 20;
/** Replaces of one route in a row that the kernel does not confirm before we stop and wait for the full compare. */
const MAX_REPAIRS = 3;
/** Batches in flight: the next one is built while the kernel works on the last (they are applied in order). */
const MAX_INFLIGHT = 2;

export interface FibOptions {
  /** Kernel routing table (default 254, main). */
  table: number;
  /** rtm_protocol of our routes (default 186, RTPROT_BGP): how we recognise ours. */
  protocol: number;
  /** Metric (RTA_PRIORITY) of our routes (default 20). Part of the route's identity. */
  metric: number;
  /** Install the multipath set as one ECMP route (default true); otherwise the best path only. */
  ecmp: boolean;
  /** Families handled (default [4, 6]); prefixes and kernel routes of other families are ignored. */
  families: FibFamily[];
  /**
   * Prefixes never installed, with everything inside them: "10.0.0.0/8"
   * excludes 10.0.0.0/8 itself and every more specific prefix (10.1.0.0/16,
   * 10.1.2.3/32, ...), not the less specific 0.0.0.0/0. Default none.
   */
  exclude: string[];
  /** Leave our routes in the kernel on `stop()` (default false: remove them). */
  retainOnExit: boolean;
  /** Start-up sync deadline in ms (default 60000): stale routes are removed then at the latest. */
  startupDeadlineMs: number;
  /** Operations per `kernel.apply` call (default 4000; a batch is also cut when its time slice ends). */
  maxBatch: number;
  /** Full compare (dump) interval in ms (default 60000; 0 disables). */
  periodicCompareMs: number;
}

export const DEFAULT_FIB_OPTIONS: Readonly<FibOptions> = Object.freeze({
  table: RT_TABLE_MAIN,
  protocol: RTPROT_BGP,
  metric: 20,
  ecmp: true,
  families: [4, 6] as FibFamily[],
  exclude: [] as string[],
  retainOnExit: false,
  startupDeadlineMs: 60_000,
  maxBatch: 4000,
  periodicCompareMs: 60_000,
});

export type FibLog = (level: LogLevel, msg: string) => void;

/**
 * What to install for routes whose BGP next hop is one address (see
 * `Fib.setNextHopOverrides`): a kernel next hop (no recursive resolution),
 * or a refusal with its reason.
 */
export type NextHopOverride = KernelNextHop | { refuse: string };

export type FibState = "installed" | "pending" | "failed" | "conflict" | "excluded";

/** One prefix as `bgpctl show fib` shows it. */
export interface FibStatus {
  prefix: string;
  state: FibState;
  /**
   * The next hops of the desired route ("192.0.2.2", "fe80::1%eth0",
   * "2001:db8::1"); for a stale route of ours awaiting removal, those of
   * the kernel route; for an excluded one, the RIB's.
   */
  nextHops: string[];
  /** Why it is failed / in conflict / excluded / pending (when it is not plain). */
  reason?: string;
}

export type FibCounts = Record<FibState, number> & { total: number };

/** Counters for `show fib` and tests. */
export interface FibCounters {
  /** kernel.apply calls made. */
  applyCalls: number;
  /** Operations sent (replace + delete). */
  ops: number;
  /** Operations that failed. */
  opErrors: number;
  /** Full compares done (start, overrun, periodic). */
  resyncs: number;
  /** Overrun events received. */
  overruns: number;
}

/** What we want in the kernel for one prefix. */
type Want =
  | { kind: "none" }
  | { kind: "excluded"; reason: string }
  /** Wanted, but no usable next hop (reported as failed); `remove`: a refused next hop, our route goes. */
  | { kind: "unusable"; reason: string; remove?: boolean }
  | HopSet;

/**
 * One distinct set of kernel next hops of a family, shared by every prefix
 * that forwards through it (a full table has a handful). It is also such a
 * prefix's Want (kind "install", read from the prototype) and, once the
 * kernel has the route, what the prefix's entry keeps as ours: the route is
 * the prefix, the options' table, protocol and metric, and these hops, so
 * nothing per prefix is kept but the entry. The kernel route itself is made
 * when an operation needs it (`routeOf`). Read-only.
 */
class HopSet {
  constructor(
    /** The set's identity: its hop keys, sorted, comma-separated. */
    readonly sig: string,
    readonly nextHops: KernelNextHop[],
  ) {}
  get kind(): "install" {
    return "install";
  }
}

/** Our route at our key as last known: the hop set we installed, or a route a dump or an event reported. */
type Ours = HopSet | KernelRoute;

/** What the full scan returns for a settled prefix it passed (see nextEntry). */
const SKIPPED: unique symbol = Symbol("skipped");

/** Entry.flags: in the reconcile queue. */
const QUEUED = 1;
/** Entry.flags: found in the start-up dump, not deleted before the start-up sync. */
const RETAINED = 2;
/** Entry.flags: an operation of its is in a batch in flight (not reconciled again until the answer). */
const BUSY = 4;

const WANT_NONE: Want = { kind: "none" };
const NO_ROUTES: readonly RouteForwarding[] = [];

/** A converted next hop (with its identity key), or why it cannot be used. */
type HopResult = { hop: KernelNextHop; self: string | null; key: string } | string;

/**
 * A prefix that is neither settled nor pending (see Slot): being reconciled
 * or in flight, with a multipath set, not installed (excluded, failed,
 * conflicting), or kept from the start-up dump. Kept small all the same: the
 * prefix is its key (text made when shown or sent), the desired route a
 * shared HopSet, and what only a prefix with a problem needs is in
 * `trouble`.
 */
class Entry {
  /** Its place in the failed set (SlotSet), -1 when not failed. */
  failedAt = -1;
  constructor(
    readonly key: PrefixKey,
    /** Its position in the table (PrefixMap.put; -1 until it is put there): reached there without a lookup while it is the table's. */
    public pos: number,
    /**
     * Loc-RIB input: what forwarding needs of the best route (null: none) and
     * of the multipath set; the routes' heads, not the route objects the
     * events carry (see storedForm).
     */
    public best: RouteForwarding | null,
    public mp: readonly RouteForwarding[],
    /** Cached desired state and the generation (address set) it was computed for. */
    public want: Want,
    public wantGen: number,
    /** Our route at our metric as the kernel holds it (last known), or null. */
    public ours: Ours | null,
    /** QUEUED, RETAINED, BUSY. */
    public flags: number,
    /** Failure, conflict, repair state and our routes at other metrics; null for the great majority of prefixes, which have none. */
    public trouble: Trouble | null,
  ) {}
}

/** Where an entry keeps its place in the failed set. */
const FAILED_AT = {
  get: (e: Entry): number => e.failedAt,
  set: (e: Entry, slot: number): void => {
    e.failedAt = slot;
  },
};

/**
 * The settled state of a prefix, which nearly every prefix of a full table
 * is in: its best route and multipath set, our route in the kernel with the
 * hop set they resolved to at address generation `gen`, and nothing queued,
 * in flight, failed, retained or otherwise in trouble. Such a prefix keeps
 * no entry: its slot in the table holds this, shared by the prefixes whose
 * routes share their heads (the routes of one UPDATE; with multipath, of one
 * UPDATE from each peer, whose multipath sets are then one shared list: see
 * sharedMultipath). An entry is made again (`entryAt`) as soon as anything
 * about the prefix changes.
 */
class Settled {
  /** The unconfirmed twin (made when first needed), or, on an unconfirmed one, the confirmed. */
  private twin: Settled | null = null;
  constructor(
    readonly best: RouteForwarding,
    readonly mp: readonly RouteForwarding[],
    readonly ours: HopSet,
    readonly gen: number,
    /**
     * False while a full compare's dump has not shown our route yet: it is
     * treated as absent (the scan after the dump installs it again).
     */
    readonly confirmed: boolean,
  ) {}

  /** This state awaiting the dump's confirmation. */
  unconfirmed(): Settled {
    if (!this.confirmed) return this;
    if (this.twin === null) {
      this.twin = new Settled(this.best, this.mp, this.ours, this.gen, false);
      this.twin.twin = this;
    }
    return this.twin;
  }

  /** This state, confirmed. */
  confirm(): Settled {
    return this.confirmed ? this : this.twin!;
  }
}

/**
 * What the table holds for a prefix: its entry, its settled state, or, for a
 * new prefix not reconciled yet, the forwarding of its best route alone
 * (pending: its table position is in the reconcile queue; the entry is made
 * when the queue reaches it, so a table arriving faster than the kernel
 * takes it does not wait as an entry per prefix).
 */
type Slot = Entry | Settled | RouteForwarding;

/** Whether a table slot holds a pending prefix (see Slot). */
function isPending(v: Slot): v is RouteForwarding {
  return !(v instanceof Entry) && !(v instanceof Settled);
}

/** What only a prefix with a problem needs (kept off `Entry` to keep a full table small). */
interface Trouble {
  /** Last failure: signature of the route it was for, and the reason. */
  failSig: string | null;
  failReason: string | null;
  /** Failed and not to be retried until the next retry trigger. */
  blocked: boolean;
  /** `sig|reason` last logged for a failure (log once). */
  failLogged: string | null;
  /**
   * Times the kernel reported our route at our key as something else than the
   * desired route with signature `repairSig` (or removed it), each answered
   * with a replace (loop guard).
   */
  repairs: number;
  repairSig: string | null;
  /** Conflicting protocol last logged (-1: none). */
  conflictLogged: number;
  /**
   * The kernel refused to replace our route by an onlink one (IPv6 refuses an
   * onlink gateway that a route of another device covers, ours included):
   * the next attempt deletes ours first.
   */
  deleteFirst: boolean;
  /** Our routes at other metrics (left from another configuration): always removed once allowed. */
  oursOther: KernelRoute[] | null;
}

/** Our routes at other metrics of an entry, or null (the common case). */
function othersOf(e: Entry): KernelRoute[] | null {
  return e.trouble === null ? null : e.trouble.oursOther;
}

function familyOf(key: PrefixKey): FibFamily {
  return isV4Key(key) ? 4 : 6;
}

/** The kernel's identity of one op, for logging. */
function describeOp(op: KernelOp): string {
  return `${op.op} ${op.route.prefix}`;
}

function isLinkLocal6(b: Uint8Array, off = 0): boolean {
  return b[off] === 0xfe && (b[off + 1]! & 0xc0) === 0x80;
}

function isZero(b: Uint8Array, off: number, len: number): boolean {
  for (let i = off; i < off + len; i++) if (b[i] !== 0) return false;
  return true;
}

function isV4Mapped(b: Uint8Array): boolean {
  return isZero(b, 0, 10) && b[10] === 0xff && b[11] === 0xff;
}

function errorText(e: KernelError): string {
  return e.message ? `${e.code}: ${e.message}` : e.code;
}

/**
 * Desired kernel state from the Loc-RIB, reconciled with the kernel.
 *
 * Wiring: `new Fib(kernel, opts, log, clock)`, `await fib.start()`, then feed
 * `fib.onLocRibChange(ev)` from `locRib.subscribe(..., {forwarding: true})`
 * (and, for routes already
 * in the Loc-RIB, `setDesired` for each); report `endOfRib(sourceId)` per
 * source (with `expectSources`) or `allSourcesSynced()`; `await fib.stop()`
 * on shutdown. The kernel handle stays the caller's (stop() does not close it).
 */
export class Fib {
  readonly options: Readonly<FibOptions>;
  private readonly kernel: Kernel;
  private readonly log: FibLog;
  private readonly clock: Clock;
  private readonly excludes: { text: string; prefix: Prefix }[];

  /** Every prefix we know of (a PrefixMap: growing it never rehashes a full table in one turn): its entry, or its settled state. */
  private readonly entries = new PrefixMap<PrefixKey, Slot>();
  /** The settled state made last (the next prefix to settle usually shares it: the routes of one UPDATE come in a row). */
  private lastSettled: Settled | null = null;
  /** The multipath set made last (see sharedMultipath). */
  private lastMultipath: readonly RouteForwarding[] = NO_ROUTES;
  /** Other protocols' routes at our (table, metric), by prefix: the conflicting protocol. */
  private readonly foreign = new PrefixMap<PrefixKey, number>();
  /** Prefixes of ours found in the start-up dump (for the start-up log line). */
  private keptAtStart = 0;
  /** Our routes found in the kernel at start, per family (4, 6). */
  private readonly keptByFamily = new Map<number, number>();
  /**
   * Prefixes to reconcile, in order (a queue): entries (QUEUED in their
   * flags marks membership) and the table positions of pending prefixes (a
   * position that no longer holds a pending prefix is passed over; one
   * reused by another pending prefix only has it reconciled sooner).
   */
  private readonly dirty = new ChunkedQueue<Entry | number>();
  private readonly failed = new SlotSet<Entry>(FAILED_AT);

  private links = new Map<number, KernelLink>();
  private addresses = new Map<string, KernelAddress>();
  /** Connected prefixes (subnets and host addresses), by key. */
  private connected = new Set<PrefixKey>();
  /** Our own addresses, canonical text. */
  private own = new Set<string>();
  /** IPv6 subnets of our addresses with their interface (next-hop interface resolution). */
  private subnets6: { prefix: Prefix; ifindex: number }[] = [];
  /** Bumped on every address change: invalidates cached desired routes. */
  private gen = 0;
  /** The addresses the derived sets were made from (their ids, sorted). */
  private addressSig: string | null = null;
  private readonly gwCache = new Map<string, string>();
  private failLogBudget = FAIL_LOGS_PER_BATCH;
  private failLogsSuppressed = 0;
  /** Shared next-hop lists by signature, per family (see hopSet). */
  private readonly hopSets = [new Map<string, HopSet>(), new Map<string, HopSet>()];
  private hopCache = new WeakMap<Uint8Array, { gen: number; family: FibFamily; res: HopResult }>();
  /** Next-hop overrides by canonical address text, and the reasons of the refusals among them. */
  private overrides: ReadonlyMap<string, NextHopOverride> = new Map();
  private refusals = new Set<string>();
  /** `viaHops` results per `Route.via` list (the routes of one next hop share it). */
  private viaCache = new WeakMap<readonly ForwardingHop[], { gen: number; family: FibFamily; res: HopResult[] }>();

  private starting: Promise<void> | null = null;
  private started = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private synced = false;
  private expected: Set<string> | null = null;
  private readonly eor = new Set<string>();

  private unwatch: (() => void) | null = null;
  /** Events held while a dump runs; replayed after it. */
  private evBuffer: KernelEvent[] | null = null;
  private resyncing: Promise<void> | null = null;
  private resyncAgain = false;
  private needFullScan = false;
  /** The full scan under way (every prefix looked at once), walked a slice at a time over the table's positions. */
  private scan: Iterator<number> | null = null;
  /** Start-up sync completed (why), its stale routes counted while the scan after it removes them. */
  private staleLog: string | null = null;
  private staleCount = 0;
  /** Batch building: a task of the shared slicer. */
  private readonly task: SlicedTask = { step: (deadline) => this.step(deadline) };
  /** Batches sent and not yet answered (at most MAX_INFLIGHT). */
  private readonly inflight = new Set<Promise<void>>();
  /** Entries met while busy, put back in the queue when a batch is answered (QUEUED stays set). */
  private deferred: Entry[] = [];
  private idleWaiters: (() => void)[] = [];

  private deadlineTimer: TimerHandle | null = null;
  private periodicTimer: TimerHandle | null = null;
  private retryTimer: TimerHandle | null = null;
  /** The failed routes still to retry (retryFailed), walked by the batch builder; null when none. */
  private retryWalk: Iterator<Entry> | null = null;

  readonly counters: FibCounters = { applyCalls: 0, ops: 0, opErrors: 0, resyncs: 0, overruns: 0 };

  constructor(kernel: Kernel, opts: Partial<FibOptions> = {}, log?: FibLog, clock: Clock = realClock) {
    const o: FibOptions = { ...DEFAULT_FIB_OPTIONS, ...stripUndefined(opts) };
    if (!Number.isInteger(o.table) || o.table < 1 || o.table > 0xffffffff) throw new Error(`fib: table must be 1..4294967295, got ${o.table}`);
    if (!Number.isInteger(o.protocol) || o.protocol < 0 || o.protocol > 255) throw new Error(`fib: protocol must be 0..255, got ${o.protocol}`);
    if (!Number.isInteger(o.metric) || o.metric < 0 || o.metric > 0xffffffff) throw new Error(`fib: metric must be 0..4294967295, got ${o.metric}`);
    if (!Number.isInteger(o.maxBatch) || o.maxBatch < 1) throw new Error(`fib: maxBatch must be a positive integer, got ${o.maxBatch}`);
    for (const f of o.families) if (f !== 4 && f !== 6) throw new Error(`fib: family must be 4 or 6, got ${String(f)}`);
    this.excludes = o.exclude.map((text) => {
      try {
        return { text, prefix: parsePrefix(text) };
      } catch (err) {
        throw new Error(`fib: exclude: ${(err as Error).message}`);
      }
    });
    o.families = [...new Set(o.families)];
    o.exclude = [...o.exclude];
    this.options = Object.freeze(o);
    this.kernel = kernel;
    this.log = log ?? (() => {});
    this.clock = clock;
  }

  // ------------------------------------------------------------- lifecycle

  /**
   * Subscribe to kernel events, dump links, addresses and our table, and
   * start reconciling. Our routes found are kept until the start-up sync.
   * Rejects if the initial dump fails (nothing is changed then).
   */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error("fib: stopped"));
    if (this.starting) return this.starting;
    this.starting = (async () => {
      this.evBuffer = [];
      this.unwatch = this.kernel.watch((ev) => {
        try {
          this.onKernelEvent(ev);
        } catch (err) {
          // Our view of the kernel may now be wrong: say so, and compare again.
          this.log("error", `fib: handling a kernel event failed: ${(err as Error).stack ?? String(err)}; comparing with the kernel again`);
          void this.resync();
        }
      });
      try {
        await this.fullCompare(true);
      } catch (err) {
        this.unwatch?.();
        this.unwatch = null;
        this.evBuffer = null;
        this.starting = null;
        this.resolveIdle(true);
        throw err;
      }
      if (this.stopped) return;
      this.started = true;
      const kept = this.keptAtStart;
      const o = this.options;
      this.log(
        "info",
        `fib: table ${o.table} protocol ${o.protocol} metric ${o.metric}: ${kept} routes of ours found` +
          (this.synced ? "" : `, kept until the routing is synced (deadline ${o.startupDeadlineMs} ms)`),
      );
      if (!this.synced) this.deadlineTimer = this.clock.setTimeout(() => this.completeStartup("start-up deadline"), o.startupDeadlineMs);
      this.armPeriodic();
      if (this.resyncAgain) void this.resync(); // an overrun hit the initial dump
      this.schedule();
    })();
    return this.starting;
  }

  /**
   * Stop: unsubscribe, finish the batches in flight, then remove all our routes
   * (unless `retainOnExit`, or `retain`: a graceful restart of ours). Changes
   * received after stop() are ignored.
   */
  stop(opts: { retain?: boolean } = {}): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopped = true;
    this.stopping = (async () => {
      this.unwatch?.();
      this.unwatch = null;
      for (const t of [this.deadlineTimer, this.periodicTimer, this.retryTimer]) if (t) this.clock.clearTimeout(t);
      this.deadlineTimer = this.periodicTimer = this.retryTimer = null;
      if (this.starting) await this.starting.catch(() => {});
      if (this.resyncing) await this.resyncing.catch(() => {});
      await this.allAnswered();
      slicer.cancel(this.task);
      this.scan = null;
      // What to delete, as (prefix, route of ours) pairs; the kernel routes are made a batch at a time.
      const owners = new ChunkedQueue<PrefixKey>();
      const subjects = new ChunkedQueue<Ours>();
      await sliced(this.entries.positions(), (pos) => {
        const key = this.entries.keyAt(pos);
        const v = this.entries.valueAt(pos);
        if (v instanceof Settled) {
          if (v.confirmed) {
            owners.push(key);
            subjects.push(v.ours);
          }
          return;
        }
        if (!(v instanceof Entry)) return; // pending: nothing of ours yet
        if (v.ours) {
          owners.push(key);
          subjects.push(v.ours);
        }
        for (const r of v.trouble?.oursOther ?? []) {
          owners.push(key);
          subjects.push(r);
        }
      });
      if (this.options.retainOnExit || opts.retain || !this.started) {
        if (this.started) this.log("info", `fib: stopped, ${owners.length} routes retained in table ${this.options.table}`);
      } else {
        let removed = 0;
        let errors = 0;
        const n = this.options.maxBatch;
        while (owners.length > 0) {
          // A batch at a time, taken off the queues (what they hold is let go as it goes).
          const keys: PrefixKey[] = [];
          const ours: Ours[] = [];
          const chunk: KernelOp[] = [];
          while (chunk.length < n && owners.length > 0) {
            const key = owners.shift()!;
            const o = subjects.shift()!;
            keys.push(key);
            ours.push(o);
            chunk.push({ op: "delete", route: this.routeOf(key, o) });
          }
          let res: (KernelError | null)[];
          try {
            this.counters.applyCalls++;
            this.counters.ops += chunk.length;
            res = await this.kernel.apply(chunk);
          } catch (err) {
            this.log("error", `fib: removing routes on stop failed: ${(err as Error).message}`);
            errors += chunk.length;
            continue;
          }
          for (let j = 0; j < chunk.length; j++) {
            const r = res[j];
            if (r && r.code !== "ESRCH" && r.code !== "ENOENT") {
              errors++;
              this.counters.opErrors++;
              if (errors <= 10) this.log("warn", `fib: ${describeOp(chunk[j]!)} on stop: ${errorText(r)}`);
            } else {
              removed++;
              const key = keys[j]!;
              const v = this.entries.get(key);
              if (v instanceof Settled) this.entries.delete(key);
              else if (v instanceof Entry && v.ours === ours[j]) v.ours = null;
            }
          }
        }
        this.log("info", `fib: stopped, ${removed} routes removed${errors ? `, ${errors} failed` : ""}`);
      }
      for (const x of this.dirty) if (x instanceof Entry) x.flags &= ~QUEUED;
      for (const e of this.deferred) e.flags &= ~QUEUED;
      this.dirty.clear();
      this.deferred = [];
      this.resolveIdle(true);
    })();
    return this.stopping;
  }

  /** Resolves when every change received so far has been applied (or has failed) and nothing is in flight. */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.schedule();
    });
  }

  // ------------------------------------------------------------- input

  /** Loc-RIB subscriber: the selection of one prefix changed. */
  onLocRibChange(ev: LocRibEvent): void {
    this.setDesired(ev.key, ev.newBest, ev.multipath);
  }

  /**
   * Set the selection of one prefix: the best route (null: none) and the
   * multipath set (best first; empty without multipath). The kernel route is
   * derived from it (see the module comment for what is never installed).
   */
  setDesired(key: PrefixKey, route: Route | null, multipath: readonly Route[] = []): void {
    if (this.stopped) return;
    const family = familyOf(key);
    if (!this.options.families.includes(family)) return;
    const v = this.entries.get(key);
    const best = route === null ? null : storedForm(route);
    const mp = route === null || multipath.length === 0 ? NO_ROUTES : this.sharedMultipath(multipath);
    // Settled on these very heads (a re-announcement, or an event that changes nothing forwarding needs): nothing to do.
    // Heads only: they never change (a route whose next-hop state changes moves to another head), where a route
    // object without one may have changed in place. (One settled under older addresses, or not yet confirmed by a
    // dump, is the full scan's: one is always pending then.)
    if (v instanceof Settled && v.best === best && v.mp === mp && isHead(best)) return;
    if (v === undefined || isPending(v)) {
      if (best === null) {
        // Withdrawn before it was reconciled: forgotten (its position in the queue is passed over).
        if (v !== undefined) this.entries.delete(key);
        return;
      }
      if (mp === NO_ROUTES) {
        // New (or still pending): pending, its position queued once.
        const pos = this.entries.put(key, best);
        if (v === undefined) {
          this.dirty.push(pos);
          this.schedule();
        }
        return;
      }
    }
    const e = v === undefined ? this.newEntry(key) : this.entryAt(key, v);
    e.best = best;
    e.mp = mp;
    e.wantGen = -1;
    this.enqueue(e);
    this.schedule();
  }

  /**
   * Replace the next-hop override table: BGP next-hop address (canonical
   * text, "192.0.2.10", "2001:db8::a") → the kernel next hop to install for
   * every route via it (instead of the next hop or its recursive resolution),
   * or `{refuse: reason}`: such routes are not installed (failed, with the
   * reason) and ours for them are removed. Every route is derived again.
   */
  setNextHopOverrides(table: ReadonlyMap<string, NextHopOverride>): void {
    if (this.stopped) return;
    if (sameOverrides(this.overrides, table)) return;
    this.overrides = new Map(table);
    this.refusals = new Set();
    for (const o of table.values()) if ("refuse" in o) this.refusals.add(o.refuse);
    this.gen++;
    this.needFullScan = true;
    this.retryFailed();
  }

  /** The override table in force. */
  nextHopOverrides(): ReadonlyMap<string, NextHopOverride> {
    return this.overrides;
  }

  /**
   * Declare the sources (peer ids) whose End-of-RIB completes the start-up
   * sync; without it only `allSourcesSynced()` or the deadline complete it.
   */
  expectSources(ids: Iterable<string>): void {
    this.expected = new Set(ids);
    for (const id of this.eor) this.expected.delete(id);
    if (this.expected.size === 0) this.completeStartup("every expected source synced");
  }

  /** A source finished its initial table (End-of-RIB for all its families, or it went down for good). */
  endOfRib(sourceId: string): void {
    this.eor.add(sourceId);
    if (this.expected && this.expected.delete(sourceId) && this.expected.size === 0) this.completeStartup("every expected source synced");
  }

  /** Every source is synced: remove our routes from before the start that are no longer desired. */
  allSourcesSynced(): void {
    this.completeStartup("all sources synced");
  }

  /** How many of our routes of a family (4 or 6) were in the kernel when the FIB started: forwarding kept across a restart. */
  keptAtStartOf(family: number): number {
    return this.keptByFamily.get(family) ?? 0;
  }

  /** Whether the start-up sync is complete (stale routes may be removed). */
  get isSynced(): boolean {
    return this.synced;
  }

  private completeStartup(why: string): void {
    if (this.synced) return;
    this.synced = true;
    if (this.deadlineTimer) this.clock.clearTimeout(this.deadlineTimer);
    this.deadlineTimer = null;
    // The full scan that follows removes the stale routes (entries still RETAINED are
    // released as it reaches them) and counts them for the log line at its end.
    if (this.started) {
      this.staleLog = why;
      this.staleCount = 0;
    }
    this.needFullScan = true;
    this.scan = null; // a scan under way started before the sync: start over
    this.schedule();
  }

  // ------------------------------------------------------------- queries

  /** Per-prefix state (all prefixes known, sorted by family and address; or the one given, exact match). */
  status(prefix?: string): FibStatus[] {
    if (prefix !== undefined) {
      const p = parsePrefix(prefix);
      const k = prefixKey(p);
      const v = this.entries.get(k);
      return v ? [this.statusOf(this.viewOf(k, v))] : [];
    }
    const all: PrefixKey[] = [...this.entries.keys()];
    all.sort(compareKeys);
    return all.map((k) => this.statusOf(this.viewOf(k, this.entries.get(k)!)));
  }

  /** Every prefix's state, in table order (not sorted), made one at a time as the walk is pulled: what `GET /v1/fib` streams. */
  *walk(): IterableIterator<FibStatus> {
    for (const [k, v] of this.entries) yield this.statusOf(this.viewOf(k, v));
  }

  /** Number of prefixes per state. */
  counts(): FibCounts {
    const c: FibCounts = { installed: 0, pending: 0, failed: 0, conflict: 0, excluded: 0, total: 0 };
    for (const _ of this.tally(c, Infinity));
    return c;
  }

  /**
   * Count the prefixes per state into `c`, yielding after every `every`
   * prefixes: a walk the caller runs in slices (what the metrics count),
   * without making a status per prefix.
   */
  *tally(c: FibCounts, every: number): Generator<void, void> {
    let n = 0;
    for (const pos of this.entries.positions()) {
      const v = this.entries.valueAt(pos);
      if (v instanceof Settled && v.confirmed && v.gen === this.gen) c.installed++;
      else c[this.stateOf(this.viewOf(this.entries.keyAt(pos), v)).state]++;
      c.total++;
      if (++n >= every) {
        n = 0;
        yield;
      }
    }
  }

  /** Links and addresses as last seen from the kernel (for `show interfaces`). */
  interfaces(): { links: KernelLink[]; addresses: KernelAddress[] } {
    const links = [...this.links.values()].sort((a, b) => a.index - b.index);
    const addresses = [...this.addresses.values()].sort((a, b) => a.ifindex - b.ifindex || a.family - b.family || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    return { links, addresses };
  }

  private stateOf(e: Entry): { state: FibState; reason?: string } {
    const w = this.wantOf(e);
    switch (w.kind) {
      case "excluded":
        return { state: "excluded", reason: w.reason };
      case "unusable":
        return { state: "failed", reason: w.reason };
      case "none":
        if (e.ours === null && othersOf(e) === null) return { state: "pending", reason: "withdrawn" };
        if (e.flags & RETAINED && !this.synced) return { state: "pending", reason: "stale: kept until the start-up sync" };
        return { state: "pending", reason: "stale: removal pending" };
      case "install": {
        const fp = this.foreign.get(e.key);
        if (fp !== undefined) return { state: "conflict", reason: `conflict with proto ${fp}` };
        if (e.ours && this.matches(e.ours, w)) return othersOf(e) ? { state: "installed", reason: "removal of our route at another metric pending" } : { state: "installed" };
        const t = e.trouble;
        if (t !== null && t.failSig === w.sig && t.failReason !== null) return { state: "failed", reason: t.failReason };
        if (t !== null && t.repairSig === w.sig && t.repairs >= MAX_REPAIRS) return { state: "pending", reason: "the kernel reports a different route" };
        return { state: "pending" };
      }
    }
  }

  private statusOf(e: Entry): FibStatus {
    const s = this.stateOf(e);
    const w = this.wantOf(e);
    let hops: string[];
    if (w.kind === "install") hops = w.nextHops.map((h) => this.hopText(h));
    else if (w.kind === "none") hops = (e.ours?.nextHops ?? []).map((h) => this.hopText(h));
    else hops = this.ribHops(e);
    const out: FibStatus = { prefix: keyText(e.key), state: s.state, nextHops: hops };
    if (s.reason !== undefined) out.reason = s.reason;
    return out;
  }

  private hopText(h: KernelNextHop): string {
    const dev = h.ifindex === undefined ? "" : (this.links.get(h.ifindex)?.name ?? String(h.ifindex));
    if (h.gateway === undefined) return dev ? `dev ${dev}` : "";
    const a = parseAddr(h.gateway);
    const gw = a ? this.normGw(h.gateway) : h.gateway;
    if (h.onlink) return `${gw} dev ${dev} onlink`;
    return dev && a?.afi === 2 && isLinkLocal6(a.addr) ? `${gw}%${dev}` : gw;
  }

  private ribHops(e: Entry): string[] {
    if (e.best === null) return [];
    const rs = this.options.ecmp && e.mp.length > 0 ? e.mp : [e.best];
    const out: string[] = [];
    for (const r of rs) {
      const nh = r.nextHop;
      const t = nh.length === 4 ? formatIPv4(nh) : nh.length >= 16 ? formatIPv6(nh) : "";
      if (t && !out.includes(t)) out.push(t);
    }
    return out;
  }

  // ------------------------------------------------------------- desired state

  /**
   * The entry of a prefix in the table (`v`: what the table holds, when the
   * caller has it): a settled prefix gets one again, in its place.
   */
  private entryAt(key: PrefixKey, v: Slot | undefined = this.entries.get(key)): Entry {
    if (v instanceof Entry) return v;
    if (v instanceof Settled) return this.place(this.entryOfSettled(key, -1, v));
    // Pending: the entry takes its place in the queue (the position left there is passed over).
    const e = this.place(new Entry(key, -1, v!, NO_ROUTES, WANT_NONE, -1, null, 0, null));
    this.enqueue(e);
    return e;
  }

  /** Put an entry in the table, with its position. */
  private place(e: Entry): Entry {
    e.pos = this.entries.put(e.key, e);
    return e;
  }

  /** An entry with a settled prefix's state at position `pos` (not put in the table). */
  private entryOfSettled(key: PrefixKey, pos: number, s: Settled): Entry {
    const current = s.gen === this.gen;
    return new Entry(key, pos, s.best, s.mp, current ? s.ours : WANT_NONE, current ? s.gen : -1, s.confirmed ? s.ours : null, 0, null);
  }

  /** What a query reads for a prefix: its entry, or one made for the query from its settled or pending state. */
  private viewOf(key: PrefixKey, v: Slot): Entry {
    if (v instanceof Entry) return v;
    if (v instanceof Settled) return this.entryOfSettled(key, -1, v);
    return new Entry(key, -1, v, NO_ROUTES, WANT_NONE, -1, null, QUEUED, null);
  }

  /**
   * Let an entry go when its prefix is settled (see Settled): the table
   * holds the shared settled state instead.
   */
  private settle(e: Entry): void {
    const best = e.best;
    const ours = e.ours;
    if (best === null || e.flags !== 0 || e.trouble !== null || !(ours instanceof HopSet)) return;
    if (e.wantGen !== this.gen || e.want !== ours) return;
    let s = this.lastSettled;
    if (s === null || s.best !== best || s.mp !== e.mp || s.ours !== ours || s.gen !== this.gen) this.lastSettled = s = new Settled(best, e.mp, ours, this.gen, true);
    if (this.entries.holds(e.pos) && this.entries.valueAt(e.pos) === e) this.entries.setValueAt(e.pos, s);
  }

  /**
   * A multipath set as the FIB keeps it (its routes' heads), shared with the
   * last one made when it has the same heads: the prefixes of one UPDATE
   * from each peer come in a row, and then share one list (and can share a
   * settled state).
   */
  private sharedMultipath(routes: readonly Route[]): readonly RouteForwarding[] {
    const last = this.lastMultipath;
    if (last.length === routes.length) {
      let same = true;
      for (let i = 0; i < routes.length; i++) {
        const f = storedForm(routes[i]!);
        // (Heads only, as for the best: a route object without one may have changed in place.)
        if (last[i] !== f || !isHead(f)) {
          same = false;
          break;
        }
      }
      if (same) return last;
    }
    return (this.lastMultipath = routes.map(storedForm));
  }

  private newEntry(key: PrefixKey): Entry {
    const e = new Entry(key, -1, null, NO_ROUTES, WANT_NONE, -1, null, 0, null);
    return this.place(e);
  }

  private wantOf(e: Entry): Want {
    if (e.wantGen === this.gen) return e.want;
    e.want = this.computeWant(e);
    e.wantGen = this.gen;
    return e.want;
  }

  private computeWant(e: Entry): Want {
    const best = e.best;
    if (best === null) return WANT_NONE;
    if (this.excludes.length > 0) {
      const x = this.excludeOf(e.key);
      if (x !== null) return { kind: "excluded", reason: `excluded (${x})` };
    }
    if (this.connected.has(e.key)) return { kind: "excluded", reason: "connected prefix" };
    if (best.source.local || best.nextHop.length === 0 || isZero(best.nextHop, 0, best.nextHop.length)) {
      return { kind: "excluded", reason: "locally originated" };
    }
    const family = familyOf(e.key);
    const routes = this.options.ecmp && e.mp.length > 0 ? e.mp : [best];
    const hops: KernelNextHop[] = [];
    const keys: string[] = [];
    let self: string | null = null;
    let problem: string | null = null;
    for (const r of routes) {
      if (r.source.local || r.nextHop.length === 0 || isZero(r.nextHop, 0, r.nextHop.length)) continue;
      const h = this.hopFor(family, r.nextHop);
      // Not on-link: the immediate hops the next hop resolves to (unless it is unusable, one of our
      // addresses, or a link-local next hop that has its interface already).
      const via = r.via;
      const immediate = via !== undefined && via.length > 0 && typeof h !== "string" && h.self === null && h.hop.ifindex === undefined ? this.viaHops(family, via) : [h];
      for (const x of immediate) {
        if (typeof x === "string") {
          problem ??= x;
          continue;
        }
        if (x.self !== null) {
          self ??= x.self;
          continue;
        }
        const k = x.key;
        if (keys.length > 0 && keys.includes(k)) continue;
        keys.push(k);
        hops.push(x.hop);
      }
    }
    if (hops.length === 0) {
      if (problem !== null) return this.refusals.has(problem) ? { kind: "unusable", reason: problem, remove: true } : { kind: "unusable", reason: problem };
      if (self !== null) return { kind: "excluded", reason: `next hop ${self} is a local address` };
      return { kind: "excluded", reason: "locally originated" };
    }
    if (hops.length > 1) {
      // Order-independent: sort by the hop key.
      const idx = keys.map((k, i) => [k, i] as const).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const sorted = idx.map(([, i]) => hops[i]!);
      hops.length = 0;
      hops.push(...sorted);
      keys.sort();
    }
    return this.hopSet(family, keys.length === 1 ? keys[0]! : keys.join(","), hops);
  }

  /** The `exclude` entry that covers a prefix (the first), or null. */
  private excludeOf(key: PrefixKey): string | null {
    const p = prefixOfKey(key);
    for (const x of this.excludes) if (prefixContains(x.prefix, p)) return x.text;
    return null;
  }

  /** The kernel route for our route `o` of a prefix (made for an operation when `o` is a hop set). */
  private routeOf(key: PrefixKey, o: Ours): KernelRoute {
    if (!(o instanceof HopSet)) return o;
    const opts = this.options;
    return { family: familyOf(key), prefix: keyText(key), table: opts.table, protocol: opts.protocol, metric: opts.metric, nextHops: o.nextHops, type: RTN_UNICAST };
  }

  /**
   * One shared hop set (next-hop list and signature) per distinct set and
   * family: a full table has a handful of next-hop sets, not one array (or
   * one desired route) per prefix. Read-only.
   */
  private hopSet(family: FibFamily, sig: string, hops: KernelNextHop[]): HopSet {
    const m = this.hopSets[family === 4 ? 0 : 1];
    let hs = m.get(sig);
    if (hs === undefined) {
      if (m.size >= 65536) m.clear();
      hs = new HopSet(sig, hops);
      m.set(sig, hs);
    }
    return hs;
  }

  /**
   * `toHop`, cached per next-hop buffer (routes of one UPDATE share it) and
   * address generation. The hop objects are shared between routes: read-only.
   */
  private hopFor(family: FibFamily, nh: Uint8Array): HopResult {
    const c = this.hopCache.get(nh);
    if (c !== undefined && c.gen === this.gen && c.family === family) return c.res;
    const h = this.toHop(family, nh);
    const res: HopResult = typeof h === "string" ? h : { hop: h.hop, self: h.self, key: hopKey(h.hop) };
    this.hopCache.set(nh, { gen: this.gen, family, res });
    return res;
  }

  /**
   * The kernel next hops for a route's immediate forwarding hops (`via`),
   * each with the interface the resolution found, cached per list and
   * address generation. A link-local gateway needs that interface.
   */
  private viaHops(family: FibFamily, via: readonly ForwardingHop[]): HopResult[] {
    const c = this.viaCache.get(via);
    if (c !== undefined && c.gen === this.gen && c.family === family) return c.res;
    const res = via.map((fh): HopResult => {
      let h: { hop: KernelNextHop; self: string | null } | string;
      if (fh.addr.length === 16 && isLinkLocal6(fh.addr)) {
        if (fh.ifindex === undefined) return `link-local gateway ${formatIPv6(fh.addr)} without an interface`;
        const gw = formatIPv6(fh.addr);
        h = { hop: family === 4 ? { gateway: gw, via6: true } : { gateway: gw }, self: this.own.has(gw) ? gw : null };
      } else {
        h = this.toHop(family, fh.addr);
        if (typeof h === "string") return h;
      }
      const hop = fh.ifindex === undefined ? h.hop : { ...h.hop, ifindex: fh.ifindex };
      return { hop, self: h.self, key: hopKey(hop) };
    });
    this.viaCache.set(via, { gen: this.gen, family, res });
    return res;
  }

  /**
   * The kernel next hop for a BGP next hop (4, 16 or 32 bytes), an error text
   * when unusable, and `self` set when it is one of our addresses.
   */
  private toHop(family: FibFamily, nh: Uint8Array): { hop: KernelNextHop; self: string | null } | string {
    if (this.overrides.size > 0) {
      const o = this.overrides.get(nh.length === 4 ? formatIPv4(nh) : nh.length >= 16 ? (isV4Mapped(nh) ? formatIPv4(nh, 12) : formatIPv6(nh)) : "");
      if (o !== undefined) return "refuse" in o ? o.refuse : { hop: o, self: null };
    }
    if (nh.length === 4) {
      const gw = formatIPv4(nh);
      if (family === 6) return `IPv4 next hop ${gw} for an IPv6 prefix`;
      return { hop: { gateway: gw }, self: this.own.has(gw) ? gw : null };
    }
    if (nh.length !== 16 && nh.length !== 32) return `unsupported next hop length ${nh.length}`;
    if (family === 4 && isV4Mapped(nh)) {
      const gw = formatIPv4(nh, 12);
      return { hop: { gateway: gw }, self: this.own.has(gw) ? gw : null };
    }
    const global = formatIPv6(nh);
    const via6 = family === 4;
    if (this.own.has(global)) return { hop: { gateway: global }, self: global };
    if (nh.length === 32 && isLinkLocal6(nh, 16)) {
      const ll = formatIPv6(nh, 16);
      if (this.own.has(ll)) return { hop: { gateway: ll }, self: ll };
      const ifindex = isLinkLocal6(nh) ? undefined : this.ifindexFor(nh.subarray(0, 16));
      if (ifindex !== undefined) return { hop: via6 ? { gateway: ll, ifindex, via6 } : { gateway: ll, ifindex }, self: null };
    }
    if (isLinkLocal6(nh)) return `link-local next hop ${global} without an interface`;
    return { hop: via6 ? { gateway: global, via6 } : { gateway: global }, self: null };
  }

  /** The interface whose IPv6 subnet holds this address (longest match), or undefined. */
  private ifindexFor(addr: Uint8Array): number | undefined {
    let best: { prefix: Prefix; ifindex: number } | undefined;
    const p: Prefix = { afi: 2, len: 128, addr };
    for (const s of this.subnets6) if (prefixContains(s.prefix, p) && (!best || s.prefix.len > best.prefix.len)) best = s;
    return best?.ifindex;
  }

  private normGw(gw: string): string {
    let n = this.gwCache.get(gw);
    if (n === undefined) {
      const a = parseAddr(gw);
      n = a ? (a.afi === 1 ? formatIPv4(a.addr) : formatIPv6(a.addr)) : gw;
      if (this.gwCache.size > 65536) this.gwCache.clear();
      this.gwCache.set(gw, n);
    }
    return n;
  }

  /**
   * Whether our route `have` (a kernel route: ifindex compared only when we
   * set it, weights ignored) is the desired route with hop set `want`.
   */
  private matches(have: Ours, want: HopSet): boolean {
    if (have instanceof HopSet) return have === want || have.sig === want.sig;
    const o = this.options;
    if (have.protocol !== o.protocol || have.metric !== o.metric || (have.type ?? RTN_UNICAST) !== RTN_UNICAST) return false;
    const hh = have.nextHops;
    const wh = want.nextHops;
    if (hh.length !== wh.length) return false;
    outer: for (const w of wh) {
      for (const h of hh) {
        if (h.gateway === undefined || this.normGw(h.gateway) !== w.gateway) continue;
        if (w.ifindex !== undefined && h.ifindex !== w.ifindex) continue;
        if (!!w.onlink !== !!h.onlink) continue;
        continue outer;
      }
      return false;
    }
    return true;
  }

  // ------------------------------------------------------------- reconcile

  /**
   * Add the operations that bring one prefix in line to `ops` (none when it
   * already is or must not be touched), each with what it is for in
   * `subjects`: the route of ours it deletes, or the hop set it installs.
   */
  private reconcile(e: Entry, ops: KernelOp[], subjects: Ours[]): void {
    const canDelete = this.synced || !(e.flags & RETAINED);
    const others = othersOf(e);
    if (others && canDelete) {
      for (const r of others) {
        ops.push({ op: "delete", route: r });
        subjects.push(r);
      }
    }
    const w = this.wantOf(e);
    if (w.kind === "install") {
      const fp = this.foreign.get(e.key);
      if (fp !== undefined) {
        if (e.trouble?.conflictLogged !== fp) {
          this.troubleOf(e).conflictLogged = fp;
          this.log("warn", `fib: ${keyText(e.key)} not installed: conflict with proto ${fp} (table ${this.options.table} metric ${this.options.metric})`);
        }
        return;
      }
      const t = e.trouble;
      if (t !== null && t.conflictLogged !== -1) {
        t.conflictLogged = -1;
        this.tidy(e);
      }
      if (e.ours && this.matches(e.ours, w)) {
        // Keep the shared hop set rather than the copy a dump or event decoded.
        e.ours = w;
        this.clearFailure(e, "installed");
        return;
      }
      if (t !== null && t.blocked && t.failSig === w.sig) return;
      if (t !== null && t.repairSig === w.sig && t.repairs >= MAX_REPAIRS) {
        // The kernel keeps reporting something else after our replaces (e.g. a
        // partial multipath notification): do not loop; the full compare decides.
        if (t.repairs === MAX_REPAIRS) {
          t.repairs++;
          this.log("warn", `fib: ${keyText(e.key)}: the kernel reports a different route after ${MAX_REPAIRS} replaces; left to the periodic compare`);
        }
        return;
      }
      if (t !== null && t.deleteFirst && e.ours) this.deleteOurs(e, ops, subjects);
      ops.push({ op: "replace", route: this.routeOf(e.key, w) });
      subjects.push(w);
      return;
    }
    if (w.kind === "unusable") {
      // Keep whatever of ours is there (it may still forward), unless the next hop is refused; report once.
      this.recordFailure(e, "", w.reason);
      if (w.remove && e.ours && canDelete) this.deleteOurs(e, ops, subjects);
      return;
    }
    this.clearFailure(e, "no longer wanted");
    if (e.ours && canDelete) this.deleteOurs(e, ops, subjects);
  }

  private deleteOurs(e: Entry, ops: KernelOp[], subjects: Ours[]): void {
    const o = e.ours!;
    ops.push({ op: "delete", route: this.routeOf(e.key, o) });
    subjects.push(o);
  }

  /** Record a failure; logged once per (route, reason), at most FAIL_LOGS_PER_BATCH lines per batch (then a summary). */
  private recordFailure(e: Entry, sig: string, reason: string): void {
    const t = this.troubleOf(e);
    t.failSig = sig;
    t.failReason = reason;
    t.blocked = true;
    this.failed.add(e);
    const k = `${sig}|${reason}`;
    if (t.failLogged !== k) {
      t.failLogged = k;
      if (this.failLogBudget > 0) {
        this.failLogBudget--;
        this.log("warn", `fib: ${keyText(e.key)}${sig ? ` via ${sig}` : ""} not installed: ${reason}`);
      } else {
        this.failLogsSuppressed++;
      }
    }
  }

  private flushFailureLogs(): void {
    if (this.failLogsSuppressed > 0) this.log("warn", `fib: ${this.failLogsSuppressed} more routes not installed (see bgpctl show fib)`);
    this.failLogsSuppressed = 0;
    this.failLogBudget = FAIL_LOGS_PER_BATCH;
  }

  private clearFailure(e: Entry, outcome: "installed" | "no longer wanted"): void {
    const t = e.trouble;
    if (t === null || t.failReason === null) return;
    if (t.failLogged !== null) this.log("info", `fib: ${keyText(e.key)} ${outcome} (was failing: ${t.failReason})`);
    t.failSig = t.failReason = t.failLogged = null;
    t.blocked = false;
    this.failed.delete(e);
    this.tidy(e);
  }

  private troubleOf(e: Entry): Trouble {
    return (e.trouble ??= { failSig: null, failReason: null, blocked: false, failLogged: null, repairs: 0, repairSig: null, conflictLogged: -1, deleteFirst: false, oursOther: null });
  }

  /** Drop the trouble record once nothing is left in it. */
  private tidy(e: Entry): void {
    const t = e.trouble;
    if (t !== null && t.failReason === null && t.failLogged === null && t.repairs === 0 && t.conflictLogged === -1 && !t.deleteFirst && t.oursOther === null) e.trouble = null;
  }

  /** The kernel reported our route at our key as something else than the desired one (or removed it): one more repair. */
  private countRepair(e: Entry): void {
    const w = this.wantOf(e);
    if (w.kind !== "install") return;
    const t = this.troubleOf(e);
    if (t.repairSig === w.sig) t.repairs++;
    else {
      t.repairSig = w.sig;
      t.repairs = 1;
    }
  }

  private resetRepairs(e: Entry): void {
    if (e.trouble === null || e.trouble.repairs === 0) return;
    e.trouble.repairs = 0;
    this.tidy(e);
  }

  private enqueue(e: Entry): void {
    if (e.flags & QUEUED) return;
    e.flags |= QUEUED;
    this.dirty.push(e);
  }

  /**
   * Retry every failed route (links/addresses changed, full compare): a walk
   * over them that the batch builder takes in its slices, each unblocked and
   * reconciled in turn (a full table can fail at once, an uplink gone, and
   * every link event retries it: never all in one turn). A new trigger
   * restarts the walk.
   */
  private retryFailed(): void {
    if (this.failed.size > 0) this.retryWalk = this.failed.values();
    this.schedule();
  }

  /**
   * After a prefix's reconcile or operation: forget its entry when nothing is
   * left (no input, nothing of ours in the kernel), or let it go for the
   * shared settled state.
   */
  private release(e: Entry): void {
    if (e.best === null && e.ours === null && othersOf(e) === null && !(e.flags & (QUEUED | BUSY))) {
      if (this.entries.get(e.key) === e) this.entries.delete(e.key);
      this.failed.delete(e);
      return;
    }
    this.settle(e);
  }

  private canRun(): boolean {
    return this.started && !this.stopped && this.resyncing === null;
  }

  private schedule(): void {
    if (this.stopped) return;
    slicer.wake(this.task);
  }

  private isIdle(): boolean {
    if (this.stopped) return this.stopping === null || this.inflight.size === 0;
    if (!this.started) return this.starting === null;
    return (
      this.inflight.size === 0 &&
      this.resyncing === null &&
      this.dirty.length === 0 &&
      this.retryWalk === null &&
      !this.needFullScan &&
      this.scan === null &&
      !slicer.isReady(this.task)
    );
  }

  private resolveIdle(force = false): void {
    if (!force && !this.isIdle()) return;
    const ws = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of ws) w();
  }

  /**
   * The next entry to reconcile: the queue first, then the retry walk over
   * failed routes (unblocking each), then the full scan (both skipping
   * entries queued meanwhile); null when none is left, SKIPPED for a settled
   * prefix the scan passed (one step each: the caller's deadline check counts
   * them, or a scan of a settled table would be one long turn).
   */
  private nextEntry(): Entry | null | typeof SKIPPED {
    if (this.dirty.length > 0) {
      const x = this.dirty.shift()!;
      if (x instanceof Entry) {
        x.flags &= ~QUEUED;
        return x;
      }
      // A pending prefix gets its entry now; a position that holds no pending prefix is passed over.
      if (!this.entries.holds(x)) return SKIPPED;
      const v = this.entries.valueAt(x);
      if (!isPending(v)) return SKIPPED;
      const e = new Entry(this.entries.keyAt(x), x, v, NO_ROUTES, WANT_NONE, -1, null, 0, null);
      this.entries.setValueAt(x, e);
      return e;
    }
    while (this.retryWalk !== null) {
      const r = this.retryWalk.next();
      if (r.done) {
        this.retryWalk = null;
        break;
      }
      const e = r.value;
      if (e.trouble !== null) e.trouble.blocked = false;
      if (!(e.flags & QUEUED)) return e;
    }
    while (this.scan !== null) {
      const r = this.scan.next();
      if (r.done) {
        this.scan = null;
        this.scanDone();
        break;
      }
      const pos = r.value;
      const v = this.entries.valueAt(pos);
      if (v instanceof Settled) {
        // Settled under the addresses of now, and confirmed by the kernel: nothing to look at.
        if (v.confirmed && v.gen === this.gen) return SKIPPED;
        const e = this.entryOfSettled(this.entries.keyAt(pos), pos, v);
        this.entries.setValueAt(pos, e);
        return e;
      }
      if (!(v instanceof Entry)) return SKIPPED; // pending: the queue has it
      if (!(v.flags & QUEUED)) return v;
    }
    return null;
  }

  private scanDone(): void {
    if (this.staleLog === null) return;
    this.log("info", `fib: start-up sync complete (${this.staleLog}): removing ${this.staleCount} stale routes`);
    this.staleLog = null;
  }

  /**
   * One slice of batch building (a slicer step): reconcile queued entries,
   * then the full scan, until the deadline or `maxBatch` operations, and send
   * them; up to MAX_INFLIGHT batches in flight (an answer wakes the task). An
   * entry whose operation is in flight waits for its answer (`deferred`).
   */
  private step(deadline: number): boolean {
    if (!this.canRun() || this.inflight.size >= MAX_INFLIGHT) {
      this.resolveIdle();
      return false;
    }
    if (this.needFullScan) {
      this.needFullScan = false;
      this.scan = this.entries.positions();
    }
    const max = this.options.maxBatch;
    const ops: KernelOp[] = [];
    const owners: Entry[] = [];
    const subjects: Ours[] = [];
    let n = 0;
    let more = false;
    for (;;) {
      if ((++n & 31) === 0 && performance.now() >= deadline) {
        more = true;
        break;
      }
      const e = this.nextEntry();
      if (e === null) break;
      if (e === SKIPPED) continue;
      if (e.flags & BUSY) {
        // Its operation is in flight: our view of it changes with the answer.
        e.flags |= QUEUED;
        this.deferred.push(e);
        continue;
      }
      // The start-up sync came: release a route kept from the start-up dump, counting it if it goes.
      const stale = (e.flags & RETAINED) !== 0 && this.synced;
      if (stale) e.flags &= ~RETAINED;
      const before = ops.length;
      this.reconcile(e, ops, subjects);
      if (ops.length === before) {
        this.release(e);
        continue;
      }
      if (stale && this.staleLog !== null) {
        for (let i = before; i < ops.length; i++) {
          if (ops[i]!.op === "delete") {
            this.staleCount++;
            break;
          }
        }
      }
      for (let i = before; i < ops.length; i++) owners.push(e);
      e.flags |= BUSY;
      if (ops.length >= max) {
        more = true;
        break;
      }
    }
    this.flushFailureLogs(); // failures found while reconciling (unusable next hops)
    if (ops.length === 0) {
      if (!more) this.resolveIdle();
      return more;
    }
    const p: Promise<void> = this.runBatch(ops, owners, subjects).finally(() => {
      this.inflight.delete(p);
      this.schedule();
    });
    this.inflight.add(p);
    return more && this.inflight.size < MAX_INFLIGHT;
  }

  /** Wait until no batch is in flight. */
  private async allAnswered(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all(this.inflight);
  }

  /** Send one batch; `owners[i]` is the entry of `ops[i]`, `subjects[i]` what it is for (see reconcile). */
  private async runBatch(ops: KernelOp[], owners: Entry[], subjects: Ours[]): Promise<void> {
    this.counters.applyCalls++;
    this.counters.ops += ops.length;
    let res: (KernelError | null)[];
    try {
      res = await this.kernel.apply(ops);
    } catch (err) {
      const msg = (err as Error)?.message ?? String(err);
      this.log("error", `fib: kernel apply of ${ops.length} operations failed: ${msg}; retrying in 1 s`);
      const ke: KernelError = { errno: 0, code: "EIO", message: `apply failed: ${msg}` };
      res = ops.map(() => ke);
      if (!this.retryTimer && !this.stopped) {
        this.retryTimer = this.clock.setTimeout(() => {
          this.retryTimer = null;
          this.retryFailed();
        }, 1000);
      }
    }
    for (const e of owners) e.flags &= ~BUSY;
    if (this.deferred.length > 0) {
      for (const e of this.deferred) this.dirty.push(e);
      this.deferred = [];
    }
    for (let i = 0; i < ops.length; i++) {
      const op = ops[i]!;
      const e = owners[i]!;
      const of = subjects[i]!;
      const r = res[i] ?? (i < res.length ? null : ({ errno: 0, code: "EIO", message: "no result from the kernel" } as KernelError));
      if (op.op === "delete") {
        if (r && r.code !== "ESRCH" && r.code !== "ENOENT") {
          this.counters.opErrors++;
          this.log("warn", `fib: ${describeOp(op)} failed: ${errorText(r)}`);
          continue;
        }
        if (e.ours === of) e.ours = null;
        const t = e.trouble;
        if (t !== null && t.oursOther !== null) {
          const rest = t.oursOther.filter((x) => x !== of);
          t.oursOther = rest.length ? rest : null;
          this.tidy(e);
        }
        this.release(e);
        continue;
      }
      // A replace installs a hop set; its failure is the desired route's while the desired hops are the same.
      const hs = of as HopSet;
      const w = this.wantOf(e);
      const sig = w.kind === "install" && w.sig === hs.sig ? w.sig : null;
      if (r === null) {
        e.ours = hs;
        if (e.trouble?.deleteFirst) {
          e.trouble.deleteFirst = false;
          this.tidy(e);
        }
        if (sig !== null) this.clearFailure(e, "installed");
        continue;
      }
      this.counters.opErrors++;
      this.resetRepairs(e); // not a route the kernel reported differently: failures have their own retry rules
      if (r.code === "EINVAL" && e.ours !== null && e.ours !== hs && !e.trouble?.deleteFirst && hs.nextHops.some((h) => h.onlink)) {
        // Our route in place covers the onlink gateway (IPv6): delete it, then replace, in one batch.
        this.troubleOf(e).deleteFirst = true;
        this.enqueue(e);
        continue;
      }
      if (sig !== null) this.recordFailure(e, sig, errorText(r));
      else this.enqueue(e); // the desired route changed meanwhile: try the new one
    }
    for (const e of owners) this.settle(e);
    this.flushFailureLogs();
  }

  // ------------------------------------------------------------- kernel view

  /**
   * Dump links, addresses and our table (every protocol: ours and the ones
   * that could conflict), rebuild the view of the kernel, then compare
   * everything. With `initial`, our routes found are marked retained.
   */
  private async fullCompare(initial: boolean): Promise<void> {
    this.counters.resyncs++;
    this.evBuffer ??= [];
    const o = this.options;
    const [links, addrs, ...routeLists] = await Promise.all([
      this.kernel.dumpLinks(),
      this.kernel.dumpAddresses(),
      ...o.families.map((f) => this.kernel.dumpRoutes(f, { table: o.table })),
    ]);
    if (this.stopped) {
      this.evBuffer = null;
      return;
    }
    this.links = new Map(links.map((l) => [l.index, l]));
    this.addresses = new Map(addrs.map((a) => [addrId(a), a]));
    this.rebuildAddresses();
    // A slice at a time (a full table is hundreds of thousands of routes); events
    // keep going to evBuffer and the batch builder waits until the view is whole.
    this.scan = null;
    await sliced(this.entries.positions(), (pos) => {
      const e = this.entries.valueAt(pos);
      if (e instanceof Settled) {
        this.entries.setValueAt(pos, e.unconfirmed());
        return;
      }
      if (!(e instanceof Entry)) return; // pending: nothing of ours known
      e.ours = null;
      const t = e.trouble;
      if (t !== null) {
        t.oursOther = null;
        t.repairs = 0;
        this.tidy(e);
      }
    });
    this.foreign.clear();
    for (const list of routeLists) await sliced(list, (r) => this.learnRoute(r, initial));
    if (this.stopped) {
      this.evBuffer = null;
      return;
    }
    // Events that came during the dump, in order; new ones go on being buffered until the end.
    const buf = this.evBuffer ?? [];
    for (let i = 0; i < buf.length; ) {
      const end = performance.now() + SLICE_MS;
      while (i < buf.length && performance.now() < end) this.handleEvent(buf[i++]!);
      if (i < buf.length) await nextTurn();
    }
    this.evBuffer = null;
    this.needFullScan = true;
    // Failed routes are retried (the walk comes before the full scan, which would skip them while they are blocked).
    if (this.failed.size > 0) this.retryWalk = this.failed.values();
  }

  /** Record a kernel route from a dump. */
  private learnRoute(r: KernelRoute, initial: boolean): void {
    const o = this.options;
    if (r.table !== o.table || !o.families.includes(r.family)) return;
    const key = this.keyOf(r.prefix);
    if (key === null) return;
    if (r.protocol === o.protocol) {
      const v = this.entries.get(key);
      if (v instanceof Settled && r.metric === o.metric && !(initial && !this.synced) && this.matches(r, v.ours)) {
        this.entries.set(key, v.confirm());
        return;
      }
      const e = v === undefined ? this.newEntry(key) : this.entryAt(key, v);
      if (r.metric === o.metric) e.ours = r;
      else (this.troubleOf(e).oursOther ??= []).push(r);
      if (initial && !this.synced && !(e.flags & RETAINED)) {
        e.flags |= RETAINED;
        this.keptAtStart++;
        this.keptByFamily.set(r.family, (this.keptByFamily.get(r.family) ?? 0) + 1);
      }
    } else if (r.metric === o.metric) {
      this.foreign.set(key, r.protocol);
    }
  }

  private keyOf(text: string): PrefixKey | null {
    const k4 = ipv4TextKey(text, true);
    if (k4 !== null) return k4;
    const p = kernelPrefix(text);
    return p === null ? null : prefixKey(p);
  }

  /**
   * Derive what next hops and exclusions need from the addresses; a new
   * generation (every desired route derived again) only when they changed:
   * a full compare's dump that finds the same addresses leaves the settled
   * prefixes settled.
   */
  private rebuildAddresses(): void {
    const sig = [...this.addresses.keys()].sort().join(" ");
    if (sig === this.addressSig) return;
    this.addressSig = sig;
    this.connected = new Set();
    this.own = new Set();
    this.subnets6 = [];
    for (const a of this.addresses.values()) {
      const p = parseAddr(a.address);
      if (!p) continue;
      this.own.add(p.afi === 1 ? formatIPv4(p.addr) : formatIPv6(p.addr));
      const max = p.afi === 1 ? 32 : 128;
      const len = Math.max(0, Math.min(max, a.prefixLength));
      this.connected.add(prefixKey({ afi: p.afi, len: max, addr: p.addr }));
      const net: Prefix = { afi: p.afi, len, addr: maskAddr(p.addr, len) };
      this.connected.add(prefixKey(net));
      if (p.afi === 2) this.subnets6.push({ prefix: net, ifindex: a.ifindex });
    }
    this.gen++;
  }

  private onKernelEvent(ev: KernelEvent): void {
    if (this.stopped) return;
    if (this.evBuffer) {
      if (ev.type === "overrun") {
        // The dump under way may already miss changes: compare again afterwards.
        this.counters.overruns++;
        this.resyncAgain = true;
        this.evBuffer.length = 0;
        return;
      }
      this.evBuffer.push(ev);
      return;
    }
    this.handleEvent(ev);
  }

  private handleEvent(ev: KernelEvent): void {
    switch (ev.type) {
      case "overrun":
        this.counters.overruns++;
        this.log("warn", "fib: kernel event overrun (ENOBUFS): resynchronising with a dump");
        void this.resync();
        return;
      case "link":
        if (ev.removed) this.links.delete(ev.link.index);
        else this.links.set(ev.link.index, ev.link);
        this.retryFailed();
        return;
      case "address":
        if (ev.removed) this.addresses.delete(addrId(ev.address));
        else this.addresses.set(addrId(ev.address), ev.address);
        this.rebuildAddresses();
        this.needFullScan = true;
        this.retryFailed();
        return;
      case "route-added":
      case "route-deleted":
        this.routeEvent(ev.route, ev.type === "route-added");
        return;
      case "applied":
        return; // our own changes: apply()'s results already told us
    }
  }

  private routeEvent(r: KernelRoute, added: boolean): void {
    const o = this.options;
    if (r.table !== o.table || !o.families.includes(r.family)) return;
    // Another protocol's route at another metric is no concern of ours.
    if (r.protocol !== o.protocol && r.metric !== o.metric) return;
    const key = this.keyOf(r.prefix);
    if (key === null) return;
    const v = this.entries.get(key);
    // Our own change echoed back for a settled prefix: nothing to do.
    if (v instanceof Settled && added && v.confirmed && r.protocol === o.protocol && r.metric === o.metric && this.matches(r, v.ours)) return;
    let e = v === undefined ? undefined : this.entryAt(key, v);
    if (r.protocol === o.protocol) {
      if (added) {
        e ??= this.newEntry(key);
        if (r.metric === o.metric) {
          e.ours = r;
          // A REPLACE of ours over another protocol's route took its key.
          this.foreign.delete(key);
          const w = this.wantOf(e);
          // Our own change echoed back: nothing to do.
          if (w.kind === "install" && this.matches(r, w)) {
            e.ours = w; // the shared hop set, not the decoded copy
            this.resetRepairs(e);
            this.clearFailure(e, "installed");
            if (othersOf(e) === null) return;
          } else this.countRepair(e);
        } else {
          const rest = (othersOf(e) ?? []).filter((x) => x.metric !== r.metric);
          rest.push(r);
          this.troubleOf(e).oursOther = rest;
        }
      } else {
        if (!e) return;
        if (r.metric === o.metric) {
          e.ours = null;
          this.countRepair(e);
        } else {
          const t = e.trouble;
          if (t !== null && t.oursOther !== null) {
            const rest = t.oursOther.filter((x) => x.metric !== r.metric);
            t.oursOther = rest.length ? rest : null;
            this.tidy(e);
          }
        }
      }
      this.enqueue(e);
      this.schedule();
      return;
    }
    if (added) {
      this.foreign.set(key, r.protocol);
      // The key is the other route's now: ours was replaced (or shadowed).
      if (e) e.ours = null;
    } else {
      if (this.foreign.get(key) === r.protocol) this.foreign.delete(key);
    }
    if (e) {
      this.enqueue(e);
      this.schedule();
    }
  }

  /** Full compare with the kernel (overrun, periodic); coalesced when one is running. */
  resync(): Promise<void> {
    if (this.stopped || !this.started) return this.starting ?? Promise.resolve();
    if (this.resyncing) {
      this.resyncAgain = true;
      return this.resyncing;
    }
    this.resyncing = (async () => {
      try {
        do {
          this.resyncAgain = false;
          await this.allAnswered();
          await this.fullCompare(false);
        } while (this.resyncAgain && !this.stopped);
      } catch (err) {
        this.evBuffer = null;
        this.log("error", `fib: resync failed: ${(err as Error)?.message ?? String(err)}`);
        this.needFullScan = true;
      }
    })().finally(() => {
      this.resyncing = null;
      this.schedule();
    });
    return this.resyncing;
  }

  private armPeriodic(): void {
    const ms = this.options.periodicCompareMs;
    if (!(ms > 0) || this.stopped) return;
    this.periodicTimer = this.clock.setTimeout(() => {
      this.periodicTimer = null;
      void this.resync().finally(() => this.armPeriodic());
    }, ms);
  }
}

/** A kernel prefix text ("a.b.c.d/n", "x::/n", or an address alone), host bits masked; null if unparsable. */
function kernelPrefix(text: string): Prefix | null {
  const slash = text.indexOf("/");
  const a = parseAddr(slash < 0 ? text : text.slice(0, slash));
  if (!a) return null;
  const max = a.afi === 1 ? 32 : 128;
  const lenText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return null;
  const len = Number(lenText);
  if (len > max) return null;
  return { afi: a.afi, len, addr: maskAddr(a.addr, len) };
}

/** Identity of a kernel next hop within a route (dedup and the desired route's signature). */
function hopKey(h: KernelNextHop): string {
  return h.ifindex === undefined ? h.gateway! : `${h.gateway}%${h.ifindex}`;
}

function sameOverrides(a: ReadonlyMap<string, NextHopOverride>, b: ReadonlyMap<string, NextHopOverride>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) {
    const w = b.get(k);
    if (w === undefined || JSON.stringify(v) !== JSON.stringify(w)) return false;
  }
  return true;
}

function addrId(a: KernelAddress): string {
  return `${a.family}|${a.ifindex}|${a.address}/${a.prefixLength}`;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
