/**
 * One configured neighbour of the daemon: its session, its Adj-RIB-In and
 * Adj-RIB-Out, counters and administrative state. Turns received UPDATEs into
 * routes (loop detection, import policy) for the Loc-RIB, and Loc-RIB changes
 * into UPDATEs (export policy, packing, MRAI) for the wire. Owned by Router.
 *
 * Input arrives from the session already sliced (lib/bgp/session.ts queues
 * received UPDATEs and hands them on in time-bounded slices). A re-announcement
 * of an unchanged route stops at the Adj-RIB-In.
 *
 * Output is pulled: Loc-RIB changes only queue in the Adj-RIB-Out; the
 * neighbour's pump (a task of the shared slicer, lib/core/slices.ts) packs
 * OUT_BATCH prefixes at a time into UPDATEs while the session is `writable`
 * (below its high watermark), stops when it is not, and is woken by the
 * session's 'drain'. Walks over the whole table (initial table, soft reset
 * out, route refresh) are jobs the pump advances only while little is
 * queued, so what waits for a slow peer stays bounded. End-of-RIB goes out
 * when the initial table's job is done and everything queued has been sent.
 * Soft reconfiguration inbound (reimport) is a sliced walk too.
 *
 * Graceful restart: as the receiving speaker, a restarting peer's routes are
 * kept stale (lib/router/gr-helper.ts); as the restarting speaker, our OPEN
 * carries the R and F bits the route engine says, and the initial table goes
 * out only once the engine's selection deferral ends (`startOutput`).
 *
 * Next step (not done): encode once per group of peers sharing an outbound
 * policy (an update group), instead of once per peer.
 */
import { type PathAttributes, asPathCount, asPathLeadingAs, asPathNumbers, emptyAttributes } from "../bgp/attributes.ts";
import { describeCapability, speakerCapabilities } from "../bgp/open.ts";
import { GrHelper } from "./gr-helper.ts";
import { type Negotiated, addPathSend, describeFamilies } from "../bgp/negotiate.ts";
import { ExportGroup, type GroupMember } from "./export-group.ts";
import { describeNotification, type NotificationMessage } from "../bgp/notification.ts";
import { siblingAddress } from "../bgp/local-address.ts";
import { Frame } from "../bgp/framer.ts";
import { Session } from "../bgp/session.ts";
import { AFI, type Afi, parseAddr, prefixToString } from "../core/addr.ts";
import { CEASE_SUB, type Family, SAFI, familyName } from "../bgp/types.ts";
import { type NlriBlock, type UpdateMessage, announcedBlocks, withdrawnBlocks } from "../bgp/update.ts";
import { walkNlriUntil } from "../bgp/prefix.ts";
import type { FamilyName, PeerConfig, RouterConfig } from "../config/types.ts";
import type { NeighborInfo, SessionState } from "../api/types.ts";
import { AdjRibIn, type CandidateStore } from "../rib/adj-rib-in.ts";
import { AdjRibOut } from "../rib/adj-rib-out.ts";
import type { PositionTables } from "../rib/prefix-map.ts";
import { type CompiledPolicies, LastVerdict, type PolicyContext, type PolicyResult, applyPolicy } from "../rib/policy.ts";
import { ReusedRoute, type Route, type RouteSource, familyOfKey, makeRoute, prefixKeyOfBytes, withFields } from "../rib/types.ts";
import type { Clock } from "../core/clock.ts";
import type { Log } from "../core/log.ts";
import { type SlicedTask, slicer } from "../core/slices.ts";
import type { WireTap } from "./mrt-dump.ts";

/** Prefixes packed per take from the Adj-RIB-Out. */
export const OUT_BATCH = 1000;
/** Table-walk steps between deadline checks. */
const JOB_STEPS = 256;

export function familiesOf(names: FamilyName[]): Family[] {
  return names.map((n) => ({ afi: n === "ipv6" ? AFI.IPV6 : AFI.IPV4, safi: SAFI.UNICAST }));
}

/** What import policy accepted of a route: its attributes and next hop, or AS_GIVEN (both as received). */
type ImportVerdict = { attrs: PathAttributes; nextHop: Uint8Array } | typeof AS_GIVEN;
/** The route accepted as it came (the usual verdict: no object made for it). */
const AS_GIVEN: unique symbol = Symbol("accepted as given");

function u32ip(s: string): number {
  const b = parseAddr(s)?.addr;
  return b && b.length === 4 ? ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 : 0;
}

/** What a neighbour needs from the router it belongs to; its Adj-RIB-In's store is the host's Loc-RIB (CandidateStore). */
export interface NeighborHost extends CandidateStore {
  readonly config: RouterConfig;
  readonly policies: CompiledPolicies;
  readonly log: Log;
  readonly clock: Clock;
  /** A route accepted by import policy, or removed (route null) for (source, key, pathId). */
  importRoute(source: RouteSource, key: Route["key"], pathId: number, route: Route | null): void;
  /** The neighbour's session went down: drop all its routes, `routes` (its Adj-RIB-In of that session, learned from `source`). */
  sourceDown(source: RouteSource, routes: Iterable<Route>): void;
  /** Prefixes of this source in the Loc-RIB, i.e. accepted by import policy. */
  acceptedCount(sourceId: string): number;
  /** Every current best route, to fill a new Adj-RIB-Out. */
  bestRoutes(): Iterable<Route>;
  /** The current best route of a prefix, if any. */
  bestRoute(key: Route["key"]): Route | null;
  /** The Loc-RIB's prefix tables, which Adj-RIB-Outs keep their state by (AdjRibOutOptions.positions). */
  readonly positionTables: PositionTables;
  stateChanged(n: Neighbor, from: SessionState, to: SessionState, reason: string): void;
  /** The neighbour sent End-of-RIB for every negotiated family (initial table complete). */
  peerSynced(n: Neighbor): void;
  /** We restarted and are in restart recovery: the R bit of our OPENs (RFC 4724 §3). */
  readonly restarting: boolean;
  /** Best-path selection is deferred after our restart: initial tables wait (RFC 4724 §4.1). */
  readonly deferring: boolean;
  /** The F bit of a family in our OPENs: its forwarding state was kept. */
  forwardingKept(afi: number): boolean;
  routeEvent(n: Neighbor, kind: "announce" | "withdraw", key: Route["key"], route: Route | null): void;
  /** While set, sees every message and state change of every session (mrtDump: lib/router/mrt-dump.ts sets it). */
  wire?: WireTap | null;
  /** The neighbour has nothing queued (its update group may take it: lib/router/export-group.ts). */
  outputIdle?(n: Neighbor): void;
  /** The neighbour left its update group (`empty`: nobody is left in it). */
  groupLeft?(g: ExportGroup<Neighbor>, empty: boolean): void;
}

/**
 * Who may share an update group with whom (lib/router/export-group.ts): the
 * same string for peers that are sent the same UPDATEs; null for a peer that
 * is never grouped (iBGP, `asOverride`, no first-AS check).
 */
export function exportSignature(c: PeerConfig, n: Negotiated, localAddress: string, otherAddress: string | null): string | null {
  if (c.remoteAs === c.localAs || c.asOverride || !c.enforceFirstAs || c.routeReflectorClient) return null;
  const fams = n.families.map((f) => `${f.afi}/${f.safi}`).sort();
  return JSON.stringify([
    c.localAs,
    c.remoteAs,
    c.export ?? null,
    c.nextHopSelf,
    localAddress,
    otherAddress,
    n.fourOctetAs,
    fams,
    addPathSend(n, AFI.IPV4, SAFI.UNICAST),
    addPathSend(n, AFI.IPV6, SAFI.UNICAST),
    n.extendedMessage,
    n.extendedNextHop.map((f) => `${f.afi}/${f.safi}`).sort(),
    n.peerLongLivedGracefulRestart !== null,
  ]);
}

export class Neighbor implements GroupMember {
  readonly session: Session;
  /** The routes of the current session (a new, empty one per session; those the Loc-RIB holds as they came are kept there alone). */
  adjIn: AdjRibIn;
  adjOut: AdjRibOut | null = null;
  /** Where this neighbour's routes come from: a new object (same id) per session, so the routes of an ended session can be told apart while they are removed. */
  source: RouteSource;
  /** When the session last changed between up and down (ms). */
  private since = Date.now();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private restartTimer: ReturnType<typeof setTimeout> | null = null;
  adminDown: boolean;
  private maxPrefixTripped = false;
  /** Families whose End-of-RIB arrived on the current session. */
  private eor = new Set<string>();
  /**
   * The UPDATE being processed (null: none), possibly over several slices,
   * and where it stands (block index, offset in it); see onUpdate. One
   * object, reused for every UPDATE.
   */
  private readonly cursor: { u: UpdateMessage | null; blocks: NlriBlock[]; withdrawn: number; i: number; off: number; at: number } = { u: null, blocks: [], withdrawn: 0, i: 0, off: 0, at: 0 };
  /** The RFC 8212 "no policy" warnings were logged. */
  private warned = false;
  /** Routes treated as withdrawn on this session because the first AS was not the peer's (RFC 7606 §7.2). */
  firstAsFailures = 0;
  /** Output pump: a slicer task while there is output and the session is writable. */
  private readonly pump: SlicedTask = { step: (deadline) => this.pumpStep(deadline) };
  /** The pump has work (it may be waiting for 'drain'). */
  private pumping = false;
  /** Table walks feeding the Adj-RIB-Out, run in order. */
  private jobs: Iterator<void>[] = [];
  /** End-of-RIB is to follow the initial table. */
  private eorDue = false;
  /** Enhanced route refresh: EoRR markers (afi, safi) to send once the re-sent routes are out. */
  private eorrDue: [number, number][] = [];
  /** What was negotiated on the current (or last) Established session. */
  private lastNegotiated: Negotiated | null = null;
  /** The NOTIFICATION sent or received on the current session's way down, if any. */
  private lastNotification: NotificationMessage | null = null;
  /** Graceful restart, receiving speaker: the routes of a restarting peer, kept stale. */
  readonly grHelper: GrHelper;
  /** Stopped for our own graceful restart: the session's end leaves the routes alone. */
  private exiting = false;
  /** Established while our selection deferral runs: the initial table waits for startOutput(). */
  private outputHeld = false;
  /** The update group whose Adj-RIB-Out (`adjOut`) and output this neighbour shares, if any. */
  group: ExportGroup<Neighbor> | null = null;
  /** Who it may share one with (exportSignature), for the current session. */
  exportSig: string | null = null;

  constructor(
    public config: PeerConfig,
    private readonly host: NeighborHost,
    /** Who added it: the config file (reloads manage it) or the control API (reloads leave it). */
    public owner: "config" | "api" = "config",
  ) {
    const addr = parseAddr(config.address);
    this.source = {
      id: config.address,
      address: config.address,
      addressBytes: addr ? addr.addr : new Uint8Array(0),
      asn: config.remoteAs,
      routerId: 0,
      ibgp: config.remoteAs === config.localAs,
      rrClient: config.routeReflectorClient,
      local: false,
    };
    this.adjIn = new AdjRibIn(this.source, host);
    this.adminDown = config.shutdown;
    this.session = new Session({
      peerAddress: config.address,
      peerPort: config.port,
      localAddress: config.localAddress,
      localAs: config.localAs,
      remoteAs: config.remoteAs,
      routerId: host.config.routerId,
      holdTime: config.holdTime,
      ...(config.keepalive !== undefined ? { keepalive: config.keepalive } : {}),
      clock: host.clock,
      tap: (dir, msg, conn) => host.wire?.message(this, dir, msg instanceof Frame ? msg.raw : msg, conn),
      connectRetry: config.connectRetry,
      passive: config.passive,
      ...(config.password !== undefined ? { password: config.password } : {}),
      multihop: config.multihop,
      ...(config.ttlSecurity !== undefined ? { ttlSecurity: config.ttlSecurity } : {}),
      families: familiesOf(config.families),
      gracefulRestart: config.gracefulRestart.enabled,
      // Asked again for every OPEN: the R and F bits follow the engine's restart state.
      capabilities: () => {
        const gr = config.gracefulRestart;
        return [
          ...speakerCapabilities(
            familiesOf(config.families),
            gr.enabled
              ? {
                  restartTime: gr.restartTime,
                  notification: gr.notification,
                  restarting: host.restarting,
                  forwarding: (afi) => host.forwardingKept(afi),
                  longLivedStaleTime: gr.longLivedStaleTime,
                }
              : null,
          ),
          ...(config.addPath
            ? [{ type: "add-path" as const, families: familiesOf(config.families).map((f) => ({ ...f, send: config.addPath!.send, receive: config.addPath!.receive })) }]
            : []),
        ];
      },
    });
    const self = this;
    this.grHelper = new GrHelper({
      get name() {
        return self.name;
      },
      get adjIn() {
        return self.adjIn;
      },
      get source() {
        return self.source;
      },
      log: (level, msg) => host.log.at(level, msg),
      candidate: (key, pathId) => host.candidate(self.source.id, key, pathId),
      importRoute: (key, pathId, route) => self.toLocRib(key, pathId, route === null ? null : self.adjIn.get(key, pathId), route),
      withdrawn: (key) => host.routeEvent(self, "withdraw", key, null),
    });
    const s = this.session;
    s.on("state", (e) => {
      host.wire?.state(this, e.from, e.to);
      this.onState(e.from as SessionState, e.to as SessionState, e.reason);
    });
    s.on("established", (n) => this.onEstablished(n));
    s.updateHandler = (u, deadline) => this.onUpdate(u, deadline);
    s.on("routeRefresh", (r) => this.onRouteRefresh(r.afi, r.safi, r.subtype));
    s.on("drain", () => {
      if (this.group) this.group.drained();
      else if (this.pumping) slicer.wake(this.pump);
    });
    s.on("notificationReceived", (n: NotificationMessage) => {
      this.lastNotification = n;
      // Logged once: an Established session's state-change line names the NOTIFICATION as its cause.
      if (!this.established) host.log.warn(`${this.name}: received NOTIFICATION ${describeNotification(n)}`);
    });
    s.on("notificationSent", (n: NotificationMessage) => {
      this.lastNotification = n;
      host.log.info(`${this.name}: sent NOTIFICATION ${describeNotification(n)}`);
    });
    s.on("log", (l) => {
      if (l.level !== "debug") host.log.at(l.level, l.msg);
    });
  }

  get name(): string {
    return `neighbor ${this.config.address} (AS ${this.config.remoteAs})`;
  }

  get established(): boolean {
    return this.session.state === "Established";
  }

  start(): void {
    if (!this.warned) {
      // Said once, when the neighbour first runs (not for one a failed reload built and dropped).
      this.warned = true;
      const log = this.host.log;
      if (!this.config.import && !this.source.ibgp) log.warn(`${this.name}: no import policy: nothing is accepted from this eBGP peer (RFC 8212); set \`import: all\` to accept everything`);
      if (!this.config.export && !this.source.ibgp) log.warn(`${this.name}: no export policy: nothing is sent to this eBGP peer (RFC 8212); set \`export: all\` to send everything`);
    }
    if (!this.adminDown) this.session.start();
  }

  /**
   * Stop the session with a Cease. When the N bit was negotiated (RFC 8538)
   * a Cease would be taken as a restart, so the peer would keep our routes:
   * it goes as Hard Reset instead, which makes it drop them. `graceful`: no
   * NOTIFICATION at all, the TCP connection just closes — a graceful restart
   * of ours, the peer keeps our routes for our restart time.
   */
  async stop(subcode: number = CEASE_SUB.ADMIN_SHUTDOWN, message?: string, graceful = false): Promise<void> {
    this.clearTimers();
    if (graceful) {
      // The daemon is going away for a restart: its routes stay where they are (nothing to remove or keep stale).
      this.exiting = true;
      return this.session.stop({ quiet: true });
    }
    const hard = this.session.negotiated?.gracefulNotification === true && subcode !== CEASE_SUB.HARD_RESET;
    await this.session.stop({ subcode: hard ? CEASE_SUB.HARD_RESET : subcode, message, hardResetOf: hard ? subcode : undefined });
  }

  /** BFD saw the path fail (lib/router/bfd-glue.ts): down at once, then reconnect — Cease/BFD Down, or with `graceful` no NOTIFICATION (a restart for graceful restart). */
  bfdDown(graceful: boolean): void {
    if (graceful) return this.session.drop("BFD down");
    void this.stop(CEASE_SUB.BFD_DOWN, "BFD down").then(() => {
      if (!this.adminDown) this.session.start();
    });
  }

  private clearTimers(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.flushTimer = this.restartTimer = null;
    this.stopPump();
  }

  private stopPump(): void {
    slicer.cancel(this.pump);
    slicer.cancel(this.reimportTask);
    this.reimportWalk = null;
    this.pumping = false;
    this.jobs = [];
    this.eorDue = false;
    this.eorrDue = [];
  }

  private onState(from: SessionState, to: SessionState, reason: string): void {
    if (from === "Established" || to === "Established") this.since = Date.now();
    this.ctxCache = null;
    if (from === "Established" && to !== "Established") {
      this.leaveGroup(null);
      this.stopPump();
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.flushTimer = null;
      // Its own (a group's was closed by the last member leaving): the Loc-RIB positions it held are let go.
      void this.adjOut?.close();
      this.adjOut = null;
      this.outputHeld = false;
      const n = this.lastNegotiated;
      const kept = this.exiting || (n !== null && this.config.gracefulRestart.enabled && this.grHelper.sessionDown(n, { notification: this.lastNotification }));
      if (!kept) {
        // The ended session's routes leave the Loc-RIB in slices (a full table is seconds of work);
        // a new session starts with a new Adj-RIB-In and source and may already send meanwhile.
        this.newSession();
      }
      this.lastNotification = null;
    }
    this.host.stateChanged(this, from, to, reason);
  }

  /** Remove the routes kept stale for a restarting peer now (the peer is removed, or shut down). */
  dropStale(): void {
    if (!this.grHelper.active) return;
    this.grHelper.clear();
    this.newSession();
  }

  /** Drop the routes of the session that ended (in slices) for a new source object and Adj-RIB-In. */
  private newSession(): void {
    const old = this.adjIn;
    const oldSource = this.source;
    this.source = { ...oldSource };
    this.adjIn = new AdjRibIn(this.source, this.host);
    this.host.sourceDown(oldSource, old.drain());
  }

  private onEstablished(n: Negotiated): void {
    this.source.routerId = u32ip(n.peerRouterId);
    this.lastNegotiated = n;
    this.lastNotification = null;
    this.grHelper.sessionUp(n, this.config.gracefulRestart.selectionDeferral);
    this.eor.clear();
    this.firstAsFailures = 0;
    this.maxPrefixTripped = false;
    this.adjOut = this.makeAdjOut(n);
    this.host.log.info(`${this.name}: established, families ${describeFamilies(n.families)}`);
    if (this.host.deferring && !n.peerGracefulRestart?.restarting) {
      // After our restart: the initial table waits for the end of selection deferral
      // (not for a peer restarting too: it waits for our End-of-RIB, RFC 4724 §4.1).
      this.outputHeld = true;
      return;
    }
    this.eorDue = true;
    this.addJob(this.exportAll(this.adjOut));
  }

  /** A new Adj-RIB-Out for the session negotiated as `n`; sets `exportSig` to match. */
  private makeAdjOut(n: Negotiated): AdjRibOut {
    const local = this.session.localAddress ?? "";
    const la = parseAddr(local.replace(/^::ffff:/, ""));
    const other = la ? siblingAddress(local, la.afi === AFI.IPV4 ? AFI.IPV6 : AFI.IPV4) : null;
    this.exportSig = this.signature(n);
    return new AdjRibOut({
      peer: this.config,
      localAs: this.config.localAs,
      routerId: this.host.config.routerId,
      clusterId: this.host.config.clusterId ?? this.host.config.routerId,
      negotiated: n,
      localAddress: la ? la.addr : new Uint8Array(0),
      otherLocalAddress: other ? parseAddr(other)?.addr : undefined,
      policies: this.host.policies,
      origin: (key) => this.host.bestRoute(key),
      positions: this.host.positionTables,
    });
  }

  // ------------------------------------------------------------ update groups (lib/router/export-group.ts)

  /** exportSignature of this neighbour's current configuration and session. */
  private signature(n: Negotiated): string | null {
    const local = this.session.localAddress ?? "";
    const la = parseAddr(local.replace(/^::ffff:/, ""));
    if (!la) return null;
    return exportSignature(this.config, n, local, siblingAddress(local, la.afi === AFI.IPV4 ? AFI.IPV6 : AFI.IPV4));
  }

  get writable(): boolean {
    return this.session.writable;
  }

  send(batch: Uint8Array, count: number): void {
    this.session.sendUpdateBatch(batch, count);
  }

  /** Nothing queued, walking or due: the state an update group may be joined in. */
  get outputIdleNow(): boolean {
    return !this.pumping && !this.flushTimer && !this.outputHeld && this.jobs.length === 0 && !this.eorDue && this.eorrDue.length === 0 && this.adjOut !== null && this.adjOut.pendingCount === 0;
  }

  /** Join `g` (both idle: they hold the same export); from now on its Adj-RIB-Out is ours. */
  joinGroup(g: ExportGroup<Neighbor>): void {
    if (this.group || this.exportSig !== g.signature || !this.outputIdleNow) return;
    this.group = g;
    // Our own Adj-RIB-Out (unless we found the group with it) holds what the group's does: let go of it.
    if (this.adjOut !== g.out) void this.adjOut?.close();
    this.adjOut = g.out;
    g.add(this);
    this.host.log.debug(`${this.name}: shares the output of ${g.members.length} peer(s) of AS ${this.config.remoteAs} (update group)`);
  }

  /** Split off from the update group (a slow reader). */
  splitOff(why: string): void {
    this.leaveGroup(why);
  }

  /**
   * Leave the update group. With `why` (split off, route refresh, re-export)
   * the neighbour goes on alone from a copy of the group's state; with null
   * (the session ended) it just goes.
   */
  private leaveGroup(why: string | null): void {
    const g = this.group;
    if (!g) return;
    this.group = null;
    const last = g.members.length === 1;
    const empty = g.remove(this);
    this.host.groupLeft?.(g, empty);
    if (why === null) {
      // The session ended: the group's Adj-RIB-Out is the others' (closed with the last of them), never ours to close.
      if (empty) void g.out.close();
      this.adjOut = null;
      return;
    }
    if (last) {
      this.adjOut = g.out;
      this.exportSig = this.signature(this.lastNegotiated!);
    } else {
      const own = this.makeAdjOut(this.lastNegotiated!);
      own.adoptFrom(g.out);
      this.adjOut = own;
    }
    this.host.log.info(`${this.name}: leaves its update group: ${why}`);
    if (this.adjOut.pendingCount > 0) this.startPump();
  }

  /** The route engine's selection deferral ended: send the initial table held back, then End-of-RIB. */
  startOutput(): void {
    if (!this.outputHeld || !this.adjOut) return;
    this.outputHeld = false;
    this.eorDue = true;
    this.addJob(this.exportAll(this.adjOut));
  }

  /** Offer every Loc-RIB best route to `out`, one route per step. */
  private *exportAll(out: AdjRibOut): Generator<void> {
    for (const r of this.host.bestRoutes()) {
      out.exportRoute(r, r.key);
      yield;
    }
  }

  private addJob(job: Iterator<void>): void {
    this.jobs.push(job);
    this.startPump();
  }

  private startPump(): void {
    if (!this.adjOut) return;
    if (this.group) return this.group.wake();
    this.pumping = true;
    slicer.wake(this.pump);
  }

  /**
   * One slice of output: while the session is writable, send what is queued
   * (OUT_BATCH prefixes per take), or advance the table walks when little is
   * queued; End-of-RIB when the initial table is out. False when done or
   * waiting for 'drain'.
   */
  private pumpStep(deadline: number): boolean {
    const out = this.adjOut;
    if (!out) return (this.pumping = false);
    for (;;) {
      if (!this.session.writable) return false; // 'drain' wakes us
      if (out.pendingCount >= OUT_BATCH || (this.jobs.length === 0 && out.pendingCount > 0)) {
        const b = out.takeBatch(OUT_BATCH);
        if (b !== null) this.session.sendUpdateBatch(b.bytes, b.count);
      } else if (this.jobs.length > 0) {
        const job = this.jobs[0]!;
        for (let i = 0; i < JOB_STEPS; i++) {
          if (job.next().done) {
            this.jobs.shift();
            break;
          }
        }
      } else {
        if (this.eorDue) {
          this.eorDue = false;
          for (const m of out.endOfRib()) this.session.sendUpdate(m);
        }
        for (const [afi, safi] of this.eorrDue.splice(0)) this.session.sendRouteRefresh(afi, safi, 2);
        this.pumping = false;
        if (this.exportSig !== null && this.flushTimer === null) this.host.outputIdle?.(this);
        return false;
      }
      if (performance.now() >= deadline) return true;
    }
  }

  /**
   * One received UPDATE into the Adj-RIB-In and (after policy) the Loc-RIB,
   * processed until `deadline` (the session's slice):
   * withdrawals first, then announcements, each prefix straight from the
   * NLRI bytes to its key (no Prefix object per route). Returns false when
   * the deadline came first; the session then calls again with the same
   * message in its next slice, and this goes on where it stopped.
   */
  private onUpdate(u: UpdateMessage, deadline: number): boolean {
    const c = this.cursor;
    if (c.u !== u) {
      for (const i of u.issues) this.host.log.warn(`${this.name}: malformed UPDATE, ${i.action}: ${i.reason}`);
      const blocks = c.blocks;
      blocks.length = 0;
      withdrawnBlocks(u, blocks);
      c.withdrawn = blocks.length;
      if (u.attrs) announcedBlocks(u, blocks);
      c.u = u;
      c.i = 0;
      c.off = blocks[0]?.start ?? 0;
      c.at = performance.now();
    }
    while (c.i < c.blocks.length) {
      const b = c.blocks[c.i]!;
      this.walkAfi = b.afi;
      let off: number;
      if (c.i < c.withdrawn) off = walkNlriUntil(b.buf, c.off, b.end, b.addPath, this.onWithdrawnNlri, deadline);
      else {
        this.walkAttrs = u.attrs!;
        this.walkNextHop = b === u.nlri ? u.attrs!.nextHop! : u.mpReach!.nextHop;
        this.walkAt = c.at;
        off = walkNlriUntil(b.buf, c.off, b.end, b.addPath, this.onAnnouncedNlri, deadline);
      }
      if (off < b.end) {
        c.off = off;
        return false;
      }
      c.i++;
      c.off = c.blocks[c.i]?.start ?? 0;
    }
    c.u = null;
    c.blocks.length = 0; // (nothing of the message kept)
    this.walkAttrs = null;
    this.checkMaxPrefix();
    if (u.endOfRib) this.endOfRib(u.endOfRib);
    return true;
  }

  /**
   * An End-of-RIB marker received. A method of its own: its closures, in
   * onUpdate, made JSC allocate a scope object on every UPDATE.
   */
  private endOfRib(eor: NonNullable<UpdateMessage["endOfRib"]>): void {
    const n = this.session.negotiated;
    const had = n ? n.families.every((f) => this.eor.has(`${f.afi}/${f.safi}`)) : false;
    this.eor.add(`${eor.afi}/${eor.safi}`);
    if (eor.safi === SAFI.UNICAST) this.grHelper.endOfRib(eor.afi as 1 | 2);
    if (n && !had && n.families.every((f) => this.eor.has(`${f.afi}/${f.safi}`))) this.host.peerSynced(this);
  }

  /**
   * What the NLRI walk of the block in hand passes on to each prefix (its
   * family; for announcements the attributes, next hop and arrival time),
   * and the two callbacks, made once: closures made per block would cost a
   * function and scope objects per UPDATE.
   */
  private walkAfi: Afi = 1;
  private walkAttrs: PathAttributes | null = null;
  private walkNextHop: Uint8Array = new Uint8Array(0);
  private walkAt = 0;
  private readonly onWithdrawnNlri = (buf: Uint8Array, o: number, len: number, pathId: number): void => this.withdrawn(prefixKeyOfBytes(this.walkAfi, len, buf, o), pathId);
  private readonly onAnnouncedNlri = (buf: Uint8Array, o: number, len: number, pathId: number): void =>
    this.announced(prefixKeyOfBytes(this.walkAfi, len, buf, o), pathId, this.walkAttrs!, this.walkNextHop, this.walkAt);

  private withdrawn(key: Route["key"], pathId: number): void {
    const had = this.adjIn.drop(key, pathId);
    if (had) this.host.routeEvent(this, "withdraw", key, null);
    this.importDecision(key, pathId, null);
  }

  /** The route object each announced prefix (path id 0) is handled as, in turn (see ReusedRoute). */
  private readonly incoming = new ReusedRoute();

  /** One announced prefix; `at`: when its UPDATE arrived (one time for all its routes, which then share all but their prefix). */
  private announced(key: Route["key"], pathId: number, attrs: PathAttributes, nextHop: Uint8Array, at: number): void {
    const ch = this.adjIn.update(pathId === 0 ? this.incoming.point(key, this.source, attrs, nextHop, at) : makeRoute(key, pathId, this.source, attrs, nextHop, at));
    // The same attributes (interned: identity) and next hop again: nothing changes past the Adj-RIB-In
    // (the route keeps its age; no policy, Loc-RIB, export or FIB work). A stale one is refreshed.
    if (ch.op === "unchanged" && !ch.old?.stale) return;
    const route = ch.route; // (ch is the Adj-RIB-In's, reused by its next update)
    this.host.routeEvent(this, "announce", key, route);
    this.importDecision(route.key, pathId, route);
  }

  /** Loop detection and import policy for one received route (or its withdrawal). */
  importDecision(key: Route["key"], pathId: number, route: Route | null): void {
    let accepted: Route | null = null;
    if (route) {
      const v = this.importVerdict(route);
      if (v !== null) accepted = v === AS_GIVEN ? route : withFields(route, { attrs: v.attrs, nextHop: v.nextHop });
    }
    this.toLocRib(key, pathId, route, accepted);
  }

  /**
   * The last import verdict (null: not accepted), reused for the next route
   * like it (the prefixes of one UPDATE) while the peer's and the router's
   * configuration and the policies are the same objects (reimport starts
   * afresh).
   */
  private readonly lastImport = new LastVerdict<ImportVerdict | null>();

  /** Loops, first AS and import policy: the attributes and next hop accepted, or null. */
  private importVerdict(route: Route): ImportVerdict | null {
    const afi = familyOfKey(route.key);
    const policies = this.host.policies;
    const reuse = this.lastImport.ready(this.config, this.host.config, this.config.import, policies);
    if (reuse) {
      const v = this.lastImport.get(route, afi, 0);
      if (v !== undefined) return v;
    }
    let verdict: ImportVerdict | null = null;
    if (!this.loops(route) && this.firstAsOk(route)) {
      const r = applyPolicy(this.config.import, this.source.ibgp ? "ibgp" : "ebgp", route, this.policyCtx("import"), policies, this.policyOut);
      if (r.accept) verdict = r.attrs === route.attrs && r.nextHop === route.nextHop ? AS_GIVEN : { attrs: r.attrs, nextHop: r.nextHop };
    }
    return reuse ? this.lastImport.remember(route, afi, 0, verdict) : verdict;
  }

  /** The result object import policy evaluation fills, reused (read at once, never kept). */
  private readonly policyOut: PolicyResult = { accept: false, attrs: emptyAttributes(), nextHop: new Uint8Array(0), reason: "", nextHopSet: false, medSet: false };

  /**
   * Every Loc-RIB write for this peer's routes: `accepted` (null: none) for
   * the prefix and path id whose route as stored in the Adj-RIB-In is
   * `given` (null: withdrawn from it). The Adj-RIB-In keeps `given` itself
   * unless the Loc-RIB now holds that very route.
   */
  private toLocRib(key: Route["key"], pathId: number, given: Route | null, accepted: Route | null): void {
    if (given !== null && accepted !== given) this.adjIn.keepHere(given);
    this.host.importRoute(this.source, key, pathId, accepted);
    if (given !== null && accepted === given) this.adjIn.heldByStore(given);
  }

  /** Our own AS in the path more often than allowOwnAs: a loop (RFC 4271 §9.1.2). */
  private loops(r: Route): boolean {
    const own = this.config.localAs;
    if (asPathCount(r.attrs.asPath, own) > this.config.allowOwnAs) return true;
    // RFC 4456: our router id as ORIGINATOR_ID, or our cluster id in CLUSTER_LIST.
    if (this.source.ibgp) {
      if (r.attrs.originatorId === this.host.config.routerId) return true;
      const cid = this.host.config.clusterId ?? this.host.config.routerId;
      if (r.attrs.clusterList.includes(cid)) return true;
    }
    return false;
  }

  /**
   * RFC 4271 §6.3 / RFC 7606 §7.2: on an eBGP session the leftmost AS of the
   * AS_PATH must be the peer's AS, else the route is treated as withdrawn
   * (BIRD, FRR and Cisco check it by default). `enforceFirstAs: false` turns
   * it off, for route servers that do not prepend their AS.
   */
  private firstAsOk(r: Route): boolean {
    if (this.source.ibgp || this.config.enforceFirstAs === false) return true;
    if (asPathLeadingAs(r.attrs.asPath) === this.config.remoteAs) return true;
    if (this.firstAsFailures++ === 0) {
      const first = asPathNumbers(r.attrs.asPath)[0];
      const got = first !== undefined ? `AS ${first}` : "an empty AS_PATH";
      this.host.log.warn(`${this.name}: ${prefixToString(r.prefix)} has ${got} first, not the peer's AS ${this.config.remoteAs}: treated as withdrawn (RFC 7606 §7.2; further ones are counted, set enforceFirstAs: false for a route server)`);
    }
    return false;
  }

  /** Policy context per direction, built once per session (the local address is fixed while it is up). */
  private ctxCache: { import: PolicyContext; export: PolicyContext } | null = null;
  policyCtx(direction: "import" | "export"): PolicyContext {
    if (!this.ctxCache) {
      const local = (this.session.localAddress ?? "").replace(/^::ffff:/, "");
      const base = { localAs: this.config.localAs, peerAddress: this.config.address, localAddress: parseAddr(local)?.addr ?? null };
      this.ctxCache = { import: { ...base, direction: "import" }, export: { ...base, direction: "export" } };
    }
    return this.ctxCache[direction];
  }

  /**
   * Re-run import policy over the stored Adj-RIB-In (soft reconfiguration
   * inbound), in slices; a new call restarts the walk (the newest policy
   * wins). UPDATEs arriving meanwhile are imported with the new policy already.
   */
  reimport(): void {
    this.lastImport.reset();
    this.reimportWalk = this.adjIn.routes();
    slicer.wake(this.reimportTask);
  }

  private reimportWalk: Iterator<Route> | null = null;
  private readonly reimportTask: SlicedTask = {
    step: (deadline) => {
      const walk = this.reimportWalk;
      if (!walk) return false;
      for (let i = 1; ; i++) {
        const s = walk.next();
        if (s.done) {
          this.reimportWalk = null;
          return false;
        }
        this.importDecision(s.value.key, s.value.pathId, s.value);
        if ((i & 63) === 0 && performance.now() >= deadline) return true;
      }
    },
  };

  private checkMaxPrefix(): void {
    const mp = this.config.maxPrefix;
    if (!mp || this.maxPrefixTripped) return;
    const fam = this.adjIn.countOf(1) > mp.limit ? 1 : this.adjIn.countOf(2) > mp.limit ? 2 : 0;
    if (fam !== 0) this.tripMaxPrefix(fam, mp);
  }

  /** Over the limit for family `fam`: warn, or close the session and restart it later (apart from checkMaxPrefix, which runs per UPDATE: its closures would cost a scope object per call). */
  private tripMaxPrefix(fam: Afi, mp: NonNullable<PeerConfig["maxPrefix"]>): void {
    this.maxPrefixTripped = true;
    const what = `${this.name}: ${this.adjIn.countOf(fam)} ${fam === AFI.IPV6 ? "IPv6" : "IPv4"} prefixes received, over the limit of ${mp.limit}`;
    if (mp.action === "warn") {
      this.host.log.warn(what);
      return;
    }
    this.host.log.error(`${what}: closing the session (Cease/Maximum Number of Prefixes Reached), reconnecting in ${mp.restartAfter}s`);
    // RFC 4486 §4: data = AFI (2), SAFI (1), upper bound (4).
    void this.session.stop({ subcode: CEASE_SUB.MAX_PREFIXES }).then(() => {
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (!this.adminDown) this.session.start();
      }, mp.restartAfter * 1000);
    });
  }

  private onRouteRefresh(afi: number, safi: number, subtype: number): void {
    if (subtype !== 0 || !this.adjOut) return;
    this.leaveGroup("the peer asked for a route refresh");
    this.host.log.info(`${this.name}: route refresh requested for ${familyName(afi, safi)}`);
    this.addJob(this.refreshJob(this.adjOut, afi, safi, this.session.negotiated?.enhancedRouteRefresh === true));
  }

  /**
   * Re-send a family's advertised routes. With enhanced route refresh (RFC
   * 7313 §4), they go between a BoRR, sent when the walk starts, and an EoRR,
   * sent once everything queued up to the walk's end is out (see pumpStep).
   */
  private *refreshJob(out: AdjRibOut, afi: number, safi: number, enhanced: boolean): Generator<void> {
    if (enhanced) this.session.sendRouteRefresh(afi, safi, 1);
    yield* out.requeue(afi, safi);
    if (enhanced) this.eorrDue.push([afi, safi]);
  }

  /** A Loc-RIB best route changed: queue the export; the pump sends it after MRAI (or at once, or with the output in progress). */
  exportChange(route: Route | null, key: Route["key"]): void {
    if (this.group) return this.group.exportChange(route, key, this);
    if (!this.adjOut || this.outputHeld || this.adjOut.givesNothing) return;
    const r = this.adjOut.exportRoute(route, key);
    if (r.change === "none" || this.flushTimer || this.pumping) return;
    this.armFlush();
  }

  /**
   * Start output after the MRAI. Its own method: a closure made in
   * exportChange, which runs for every Loc-RIB change, would cost a scope
   * object on every call, taken or not.
   */
  private armFlush(): void {
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.startPump();
    }, this.host.config.mrai * 1000);
  }

  /** Whether output is still being produced (queued changes, table walks, End-of-RIB). */
  get outputBusy(): boolean {
    return this.pumping || this.flushTimer !== null;
  }

  /** Re-evaluate every export after an export policy change (soft out), in slices. */
  reexport(): void {
    this.leaveGroup("its export is evaluated again");
    const out = this.adjOut;
    if (!out) return;
    out.reconfigure(this.config, this.host.policies, this.host.config.clusterId ?? this.host.config.routerId);
    const self = this;
    this.addJob(
      (function* () {
        yield* self.exportAll(out);
        yield* out.resyncSteps();
      })(),
    );
  }

  /** A configuration change applied in place (no new session): takes effect with the next reimport/reexport. */
  updateConfig(c: PeerConfig): void {
    this.config = c;
    // Routes already in the Loc-RIB share this object: reflection decisions follow.
    this.source.rrClient = c.routeReflectorClient;
  }

  /** Ask the peer to send its routes again (route refresh), when it supports it. */
  requestRefresh(): boolean {
    const n = this.session.negotiated;
    if (!n?.routeRefresh) return false;
    for (const f of n.families) this.session.sendRouteRefresh(f.afi, f.safi, 0);
    return true;
  }

  info(): NeighborInfo {
    const n = this.session.negotiated;
    const c = this.session.counters;
    return {
      address: this.config.address,
      remoteAs: this.config.remoteAs,
      localAs: this.config.localAs,
      description: this.config.description,
      state: this.session.state as SessionState,
      uptimeSeconds: Math.floor((Date.now() - this.since) / 1000),
      received: this.adjIn.count,
      accepted: this.host.acceptedCount(this.source.id),
      advertised: this.adjOut?.advertisedCount() ?? 0,
      capabilities: n ? [...n.families.map((f) => familyName(f.afi, f.safi)), ...n.peerCapabilities.filter((x) => x.type !== "multiprotocol").map(describeCapability)] : [],
      lastError: c.lastError,
      messages: { received: c.in.total, sent: c.out.total },
      outQueue: this.session.outQueue,
      holdTime: n?.holdTime ?? null,
      keepaliveTime: n?.keepaliveTime ?? null,
      routerId: n?.peerRouterId ?? null,
      localAddress: this.session.localAddress,
      adminDown: this.adminDown,
      routeReflectorClient: this.config.routeReflectorClient,
      ttl: this.session.ttl.text,
      gracefulRestart: this.grInfo(n),
      ...(this.group && this.group.members.length > 1 ? { updateGroup: this.group.members.filter((m) => m !== this).map((m) => m.config.address) } : {}),
    };
  }

  private grInfo(n: Negotiated | null): NeighborInfo["gracefulRestart"] {
    const stale = this.grHelper.status();
    const peer = (n ?? this.lastNegotiated)?.peerGracefulRestart;
    return {
      enabled: this.config.gracefulRestart.enabled,
      peerRestartTime: peer?.restartTime ?? null,
      notification: (n ?? this.lastNegotiated)?.gracefulNotification ?? false,
      longLived: ((n ?? this.lastNegotiated)?.peerLongLivedGracefulRestart?.length ?? 0) > 0,
      stale,
    };
  }
}
