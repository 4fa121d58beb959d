/**
 * The daemon's route engine (OpenBGPD's RDE in spirit) and the running state
 * it owns: the neighbours, the listener, the locally originated routes, one
 * Loc-RIB, the FIB. Neighbours feed accepted routes into the Loc-RIB, local
 * routes (file, CLI) feed the same Loc-RIB, and every change of a best route
 * is offered to each neighbour's Adj-RIB-Out and to the kernel.
 *
 * This is the single source of truth of what runs: the control API reads it
 * (lib/router/router.ts) and reconfiguration diffs against it
 * (lib/router/reconfigure.ts); nothing else keeps a second copy.
 */
import { Listener } from "../bgp/listener.ts";
import { CEASE_SUB } from "../bgp/types.ts";
import type { MonitorEvent, NeighborInfo } from "../api/types.ts";
import type { AdvertiseConfig, PeerConfig, RouterConfig } from "../config/types.ts";
import { type Afi, parseAddr, prefixToString } from "../core/addr.ts";
import { type Clock, realClock } from "../core/clock.ts";
import type { Log } from "../core/log.ts";
import { LoopLagMonitor } from "../core/loop-lag.ts";
import { sliced } from "../core/slices.ts";
import { Fib } from "../fib/fib.ts";
import type { Kernel } from "../fib/types.ts";
import { LocRib } from "../rib/loc-rib.ts";
import { NextHopTracker } from "../rib/nexthop.ts";
import { kernelResolver } from "../fib/resolver.ts";
import { type CompiledPolicies, compilePolicies } from "../rib/policy.ts";
import { type Route, type RouteSource, keyText } from "../rib/types.ts";
import { RtNetlink } from "../../ffi/rtnetlink.ts";
import { Neighbor, type NeighborHost } from "./neighbor.ts";
import { ExportGroup, type GroupHost } from "./export-group.ts";
import type { PositionTables } from "../rib/prefix-map.ts";
import { routeEntry } from "./view.ts";
import { LocalRoutes, type Owner } from "./local-routes.ts";
import { RestartState } from "./gr-restart.ts";

export type { Owner } from "./local-routes.ts";

export interface EngineOptions {
  log: Log;
  /** Timers of sessions and the FIB (tests pass a ManualClock). */
  clock?: Clock;
  /** Opens the kernel interface (default rtnetlink); tests pass a fake kernel. */
  openKernel?: (opts: { groups: boolean }) => Promise<Kernel>;
}

type Monitor = { fn: (e: MonitorEvent) => void; neighbor?: string };

export class RouteEngine implements NeighborHost {
  /** The settings in force (the last configuration applied); peers and local routes live in `peers` and `localRoutes`. */
  config: RouterConfig;
  policies: CompiledPolicies;
  readonly log: Log;
  readonly clock: Clock;
  readonly locRib: LocRib;
  readonly peers = new Map<string, Neighbor>();
  /** The neighbours of `peers` as a list, for the walk every Loc-RIB change makes (a Map iterator per change otherwise); kept by attach/detach. */
  private peerList: Neighbor[] = [];
  /** Local routes by prefix text (set up in the constructor, with the local source). */
  readonly localRoutes: LocalRoutes;
  readonly localSource: RouteSource;
  listener = new Listener();
  readonly started = Date.now();
  /** Event-loop lag while the engine runs (`show summary`'s eventLoop). */
  readonly loopLag = new LoopLagMonitor();
  private readonly monitors = new Set<Monitor>();
  private readonly openKernel: (opts: { groups: boolean }) => Promise<Kernel>;
  private fibState: { kernel: Kernel; fib: Fib; unsubscribe: () => void } | null = null;
  /** Graceful restart, restarting speaker: set up by start(). */
  private restart: RestartState | null = null;
  /** Next-hop tracking (lib/rib/nexthop.ts); `kernel` is set when it opened its own (no FIB). */
  private nhState: { tracker: NextHopTracker; kernel: Kernel | null } | null = null;
  /** Update groups by export signature (lib/router/export-group.ts), and the idle neighbours waiting for a busy one. */
  readonly exportGroups = new Map<string, ExportGroup<Neighbor>>();
  private readonly groupWaiting = new Map<string, Set<Neighbor>>();
  private readonly groupHost: GroupHost = {
    mrai: () => this.config.mrai * 1000,
    idle: (g) => {
      const w = this.groupWaiting.get(g.signature);
      if (!w) return;
      this.groupWaiting.delete(g.signature);
      for (const n of w) if (this.peers.get(n.config.address) === n) n.joinGroup(g as ExportGroup<Neighbor>);
    },
  };

  constructor(config: RouterConfig, opts: EngineOptions) {
    this.config = config;
    this.log = opts.log;
    this.clock = opts.clock ?? realClock;
    this.openKernel = opts.openKernel ?? ((o) => RtNetlink.open(o));
    this.policies = compilePolicies(config.policies, config.prefixLists);
    this.locRib = new LocRib({
      alwaysCompareMed: config.decision.alwaysCompareMed,
      preferOldest: config.decision.preferOldest,
      multipath: config.multipath,
    });
    this.localSource = {
      id: "local",
      address: "",
      addressBytes: new Uint8Array(0),
      asn: config.asn,
      routerId: 0,
      ibgp: true,
      rrClient: false,
      local: true,
    };
    this.localRoutes = new LocalRoutes(() => this.config.asn, this.localSource);
    // Its subscribers (below, the FIB's, monitors) read each event while it is delivered: one event object serves them all.
    this.locRib.reuseEvents();
    this.locRib.onListenerError = (err, ev) => this.log.error(`a Loc-RIB subscriber failed on ${prefixToString(ev.prefix)}: ${(err as Error).stack ?? String(err)}`);
    this.locRib.subscribe((ch) => {
      const list = this.peerList;
      for (let i = 0; i < list.length; i++) {
        const n = list[i]!;
        try {
          n.exportChange(ch.newBest, ch.key);
        } catch (e) {
          // One neighbour's failure must not keep the change from the others.
          this.log.error(`${n.name}: export of ${prefixToString(ch.prefix)} failed: ${(e as Error).stack ?? e}`);
        }
      }
      if (this.monitors.size) this.emit({ type: "best", time: now(), prefix: prefixToString(ch.prefix), route: ch.newBest ? routeEntry(ch.newBest, true, false) : null });
    });
    this.log.tap((level, msg) => {
      if (this.monitors.size) this.emit({ type: "log", time: now(), level, msg });
    });
  }

  /** Start the FIB (when enabled) first, then listen, originate the configured routes and start every neighbour. */
  async start(): Promise<void> {
    this.loopLag.start();
    this.restart = new RestartState(RestartState.markerFor(this.config.controlSocket), this.config.peers, this.log);
    this.restart.whenDone(() => {
      for (const n of this.peers.values()) n.startOutput();
    });
    if (this.config.kernel.enabled) await this.startFib();
    await this.startNextHops(); // next-hop tracking: before any route enters the Loc-RIB
    try {
      await this.listener.listen(this.config.listen);
    } catch (e) {
      await this.stopNextHops();
      await this.stopFib();
      throw new Error(`cannot listen on ${this.config.listen.map((l) => `${l.address}:${l.port}`).join(", ")}: ${(e as Error).message}`);
    }
    this.listenerLogs(this.listener);
    for (const a of this.config.advertise) this.setLocal(a, "config");
    for (const p of this.config.peers) this.attach(this.createNeighbor(p, "config"));
    this.log.info(`bgpctl running: AS ${this.config.asn}, router id ${this.config.routerId}, ${this.config.peers.length} peers`);
  }

  /**
   * Stop. `graceful` (SIGTERM): a graceful restart of ours — sessions with
   * peers that announced graceful restart close without a NOTIFICATION (they
   * keep our routes for our restart time), the others with a Cease, and our
   * kernel routes stay for the next start to take over. Otherwise (`bgpctl
   * shutdown`) every session ends with a Cease (Hard Reset under RFC 8538)
   * and the kernel routes go unless `retainOnExit`.
   */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    const graceful = opts.graceful === true;
    this.loopLag.stop();
    await this.stopNextHops();
    // The FIB first: closing the sessions withdraws their routes, which must not
    // reach the kernel when they are kept for a restart.
    const keeps = (n: Neighbor) => graceful && n.config.gracefulRestart.enabled && n.session.negotiated?.peerGracefulRestart != null;
    const kept = [...this.peers.values()].filter(keeps).length;
    await this.stopFib(graceful);
    await Promise.all([...this.peers.values()].map((n) => (keeps(n) ? n.stop(CEASE_SUB.ADMIN_SHUTDOWN, undefined, true) : n.stop(CEASE_SUB.ADMIN_SHUTDOWN, "bgpctl shutting down"))));
    // Timers of peers' restarts we were helping with end with us.
    for (const n of this.peers.values()) n.grHelper.clear();
    if (graceful) this.log.info(`graceful restart: stopped; ${kept} peer${kept === 1 ? "" : "s"} keep our routes for our restart time; kernel routes kept`);
    this.restart?.close(graceful);
    await this.listener.close();
  }

  listenerLogs(l: Listener): void {
    l.on("log", (e: { level: string; msg: string }) => this.log.at(e.level, e.msg));
  }

  /**
   * Open the kernel interface and start the reconciler before any session: it
   * reads the kernel's routes of ours first, so a restart keeps forwarding
   * until every peer has sent End-of-RIB (or the start-up deadline).
   */
  private async startFib(): Promise<void> {
    const k = this.config.kernel;
    let kernel: Kernel;
    try {
      kernel = await this.openKernel({ groups: true });
    } catch (e) {
      throw new Error(`kernel routes: cannot open rtnetlink: ${(e as Error).message}`);
    }
    const fib = new Fib(
      kernel,
      {
        table: k.table,
        protocol: k.protocol,
        metric: k.metric,
        ecmp: k.ecmp,
        families: k.families.map((f) => (f === "ipv6" ? 6 : 4)),
        exclude: k.exclude,
        retainOnExit: k.retainOnExit,
        // After a restart of ours the kernel routes stay at least as long as selection is deferred.
        startupDeadlineMs: Math.max(k.startupDeadline, this.restart?.deferralSeconds ?? 0) * 1000,
      },
      (level, msg) => this.log.at(level, `kernel: ${msg}`),
      this.clock,
    );
    fib.expectSources(this.config.peers.filter((p) => !p.shutdown).map((p) => p.address));
    try {
      await fib.start();
    } catch (e) {
      kernel.close();
      throw new Error(`kernel routes: ${(e as Error).message}`);
    }
    // With `forwarding`: the immediate hops of a selected route moved (next-hop tracking) → new kernel route.
    const unsubscribe = this.locRib.subscribe((ev) => fib.onLocRibChange(ev), { forwarding: true });
    this.fibState = { kernel, fib, unsubscribe };
    this.log.info(`kernel routes: table ${k.table}, protocol ${k.protocol}, metric ${k.metric}${k.ecmp ? ", ECMP" : ""}`);
  }

  private async stopFib(retain = false): Promise<void> {
    const s = this.fibState;
    if (!s) return;
    this.fibState = null;
    s.unsubscribe();
    await s.fib.stop({ retain });
    s.kernel.close();
  }

  // ------------------------------------------------------------ next-hop tracking
  /**
   * Resolve every candidate's next hop in the kernel's FIB (`ip route get`,
   * no privilege needed): unresolvable → not a candidate, the resolving
   * route's metric → IGP cost. Shares the FIB's rtnetlink when it runs (and
   * then knows our own routes by table and protocol), else opens its own.
   */
  private async startNextHops(): Promise<void> {
    const fib = this.fibState;
    let kernel: Kernel;
    try {
      kernel = fib ? fib.kernel : await this.openKernel({ groups: true });
    } catch (e) {
      throw new Error(`next-hop tracking: cannot open rtnetlink: ${(e as Error).message}`);
    }
    const k = this.config.kernel;
    const tracker = new NextHopTracker(kernelResolver(kernel, fib ? { table: k.table, protocol: k.protocol } : null), {
      clock: this.clock,
      log: (level, msg) => this.log.at(level, msg),
    });
    tracker.attach(this.locRib);
    this.nhState = { tracker, kernel: fib ? null : kernel };
  }

  private async stopNextHops(): Promise<void> {
    const s = this.nhState;
    if (!s) return;
    this.nhState = null;
    s.tracker.detach();
    s.kernel?.close();
  }

  get nextHops(): NextHopTracker | null {
    return this.nhState?.tracker ?? null;
  }

  get fib(): Fib | null {
    return this.fibState?.fib ?? null;
  }

  /** Links and addresses: the FIB's view when it runs, else one rtnetlink dump. */
  async interfaces(): Promise<ReturnType<Fib["interfaces"]>> {
    if (this.fibState) return this.fibState.fib.interfaces();
    const k = await this.openKernel({ groups: false });
    try {
      return { links: await k.dumpLinks(), addresses: await k.dumpAddresses() };
    } finally {
      k.close();
    }
  }

  // ------------------------------------------------------------ NeighborHost
  outputIdle(n: Neighbor): void {
    const sig = n.exportSig;
    if (sig === null || n.group || !n.adjOut) return;
    const g = this.exportGroups.get(sig);
    if (!g) {
      const founded = new ExportGroup<Neighbor>(sig, n.adjOut, this.groupHost);
      this.exportGroups.set(sig, founded);
      n.joinGroup(founded);
      if (founded.members.length === 0) this.exportGroups.delete(sig);
    } else if (g.idle) n.joinGroup(g);
    else {
      let w = this.groupWaiting.get(sig);
      if (!w) this.groupWaiting.set(sig, (w = new Set()));
      w.add(n);
    }
  }
  groupLeft(g: ExportGroup<Neighbor>, empty: boolean): void {
    if (empty && this.exportGroups.get(g.signature) === g) this.exportGroups.delete(g.signature);
  }
  importRoute(source: RouteSource, key: Route["key"], pathId: number, route: Route | null): void {
    if (route) this.locRib.upsert(route);
    else this.locRib.remove(source.id, key, pathId);
  }
  acceptedCount(sourceId: string): number {
    return this.locRib.sourceCount(sourceId);
  }
  sourceDown(source: RouteSource, routes: Iterable<Route>): void {
    // In slices: only the routes of that session (its source object), whatever arrives meanwhile.
    void sliced(routes, (r) => this.locRib.remove(source.id, r.key, r.pathId, source));
  }
  bestRoute(key: Route["key"]): Route | null {
    return this.locRib.best(key);
  }
  get positionTables(): PositionTables {
    return this.locRib.positionTables;
  }
  *bestRoutes(): Iterable<Route> {
    for (const r of this.locRib.bests()) yield r;
  }
  candidate(sourceId: string, key: Route["key"], pathId: number): Route | null {
    return this.locRib.candidate(sourceId, key, pathId);
  }

  hasCandidate(source: RouteSource, key: Route["key"], pathId: number): boolean {
    return this.locRib.hasCandidate(source, key, pathId);
  }

  routesOf(sourceId: string, afi?: Afi): IterableIterator<Route> {
    return this.locRib.routesOf(sourceId, afi);
  }
  get restarting(): boolean {
    return this.restart?.deferring ?? false;
  }
  get deferring(): boolean {
    return this.restart?.deferring ?? false;
  }
  forwardingKept(afi: number): boolean {
    const k = this.config.kernel;
    const fam = afi === 2 ? "ipv6" : "ipv4";
    const fib = this.fibState?.fib;
    // Not programming this family: forwarding does not depend on us. Once the start-up sync is
    // done the kernel holds what we keep up to date; before it, only what was there at start.
    if (!k.enabled || !k.families.includes(fam) || !fib || fib.isSynced) return true;
    return fib.keptAtStartOf(afi === 2 ? 6 : 4) > 0;
  }
  peerSynced(n: Neighbor): void {
    // Next-hop tracking: the peer's routes count once their next hops' first lookups are in (before
    // that they are no candidates: an initial table sent at the end of selection deferral would lack them).
    const synced = () => {
      this.restart?.settle(n.config.address);
      this.fibState?.fib.endOfRib(n.source.id);
    };
    const nh = this.nhState?.tracker;
    if (nh) void nh.settled().then(synced);
    else synced();
  }
  stateChanged(n: Neighbor, from: NeighborInfo["state"], to: NeighborInfo["state"], reason: string): void {
    const neg = n.session.negotiated;
    if (to === "Established" && neg) this.restart?.established(n.config.address, neg);
    if (from === "Established" || to === "Established") this.log.info(`${n.name}: ${from} -> ${to}${reason ? ` (${reason})` : ""}`);
    if (this.monitors.size) this.emit({ type: "state", time: now(), peer: n.config.address, from, to, reason });
  }
  routeEvent(n: Neighbor, kind: "announce" | "withdraw", key: Route["key"], route: Route | null): void {
    if (!this.monitors.size) return;
    const peer = n.config.address;
    if (kind === "withdraw" || !route) this.emit({ type: "withdraw", time: now(), peer, prefix: keyText(key) });
    else this.emit({ type: "announce", time: now(), peer, route: routeEntry(route, false, false) });
  }

  // ------------------------------------------------------------ monitors
  monitor(fn: (e: MonitorEvent) => void, neighbor?: string): () => void {
    const m: Monitor = { fn, neighbor };
    this.monitors.add(m);
    return () => this.monitors.delete(m);
  }

  private emit(e: MonitorEvent): void {
    for (const m of this.monitors) {
      if (m.neighbor && "peer" in e && e.peer !== m.neighbor) continue;
      try {
        m.fn(e);
      } catch (err) {
        // Unsubscribe first: the log line below is itself a monitor event.
        this.monitors.delete(m);
        this.log.warn(`monitor subscriber failed and was removed: ${(err as Error).message}`);
      }
    }
  }

  // ------------------------------------------------------------ neighbours
  /** A neighbour for `p`, not yet registered or started (building it has no side effects). */
  createNeighbor(p: PeerConfig, owner: Exclude<Owner, "health">): Neighbor {
    return new Neighbor(p, this, owner);
  }

  /** Register a neighbour with the listener and start it. */
  attach(n: Neighbor): void {
    if (this.peers.has(n.config.address)) throw new Error(`internal: neighbour ${n.config.address} attached twice`);
    this.peers.set(n.config.address, n);
    this.peerList = [...this.peers.values()];
    this.listener.add(n.session);
    n.start();
  }

  /** Stop a neighbour (Cease with `subcode`), unregister it and drop its routes. */
  async detach(n: Neighbor, subcode: number, message?: string): Promise<void> {
    if (this.peers.get(n.config.address) === n) {
      this.peers.delete(n.config.address);
      this.peerList = [...this.peers.values()];
    }
    this.listener.remove(n.session);
    this.restart?.settle(n.config.address, "removed");
    // Stopping ends its session, and with it its routes (sourceDown, in slices); routes kept
    // stale for a restart of the peer go too.
    await n.stop(subcode, message);
    n.dropStale();
  }

  /** The neighbour at `address` (any spelling of the address), or undefined. */
  find(address: string): Neighbor | undefined {
    const direct = this.peers.get(address);
    if (direct) return direct;
    const a = parseAddr(address);
    if (!a) return undefined;
    const want = a.addr.join();
    return [...this.peers.values()].find((x) => x.source.addressBytes.join() === want);
  }

  // ------------------------------------------------------------ local routes
  /** Originate `a` (replacing any local route for the same prefix in one step). */
  setLocal(a: AdvertiseConfig, owner: Owner): void {
    this.locRib.upsert(this.localRoutes.set(a, owner));
  }

  /** Stop originating a prefix; false when it was not originated. */
  removeLocal(prefixText: string): boolean {
    const key = this.localRoutes.delete(prefixText);
    if (key === undefined) return false;
    this.locRib.remove(this.localSource.id, key, 0);
    return true;
  }
}

function now(): string {
  return new Date().toISOString();
}
