/**
 * One configured neighbour of the daemon: its session, its Adj-RIB-In and
 * Adj-RIB-Out, counters and administrative state. Turns received UPDATEs into
 * routes (loop detection, import policy) for the Loc-RIB, and Loc-RIB changes
 * into UPDATEs (export policy, packing, MRAI) for the wire. Owned by Router.
 */
import { type PathAttributes } from "../bgp/attributes.ts";
import { describeCapability, speakerCapabilities } from "../bgp/open.ts";
import { type Negotiated, describeFamilies } from "../bgp/negotiate.ts";
import { describeNotification, type NotificationMessage } from "../bgp/notification.ts";
import { siblingAddress } from "../bgp/local-address.ts";
import { Session } from "../bgp/session.ts";
import { AFI, type Prefix, parseAddr, prefixToString } from "../core/addr.ts";
import { CEASE_SUB, type Family, SAFI, SEG, familyName } from "../bgp/types.ts";
import { type UpdateMessage, announcedBlocks, blockPrefixes, withdrawnBlocks } from "../bgp/update.ts";
import type { FamilyName, PeerConfig, RouterConfig } from "../config/types.ts";
import type { NeighborInfo, SessionState } from "../api/types.ts";
import { AdjRibIn } from "../rib/adj-rib-in.ts";
import { AdjRibOut } from "../rib/adj-rib-out.ts";
import { type CompiledPolicies, type PolicyContext, applyPolicy } from "../rib/policy.ts";
import { type Route, type RouteSource, makeRoute, prefixKey } from "../rib/types.ts";
import type { Clock } from "../core/clock.ts";
import type { Log } from "../core/log.ts";

export function familiesOf(names: FamilyName[]): Family[] {
  return names.map((n) => ({ afi: n === "ipv6" ? AFI.IPV6 : AFI.IPV4, safi: SAFI.UNICAST }));
}

function u32ip(s: string): number {
  const b = parseAddr(s)?.addr;
  return b && b.length === 4 ? ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0 : 0;
}

/** What a neighbour needs from the router it belongs to. */
export interface NeighborHost {
  readonly config: RouterConfig;
  readonly policies: CompiledPolicies;
  readonly log: Log;
  readonly clock: Clock;
  /** A route accepted by import policy, or removed (route null) for (source, key, pathId). */
  importRoute(source: RouteSource, key: Route["key"], pathId: number, route: Route | null): void;
  /** The neighbour's session went down: drop all its routes. */
  sourceDown(sourceId: string): void;
  /** Prefixes of this source in the Loc-RIB, i.e. accepted by import policy. */
  acceptedCount(sourceId: string): number;
  /** Every current best route, to fill a new Adj-RIB-Out. */
  bestRoutes(): Iterable<Route>;
  stateChanged(n: Neighbor, from: SessionState, to: SessionState, reason: string): void;
  /** The neighbour sent End-of-RIB for every negotiated family (initial table complete). */
  peerSynced(n: Neighbor): void;
  routeEvent(n: Neighbor, kind: "announce" | "withdraw", prefix: Prefix, route: Route | null): void;
}

export class Neighbor {
  readonly session: Session;
  readonly adjIn = new AdjRibIn();
  adjOut: AdjRibOut | null = null;
  readonly source: RouteSource;
  /** When the session last changed between up and down (ms). */
  private since = Date.now();
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private restartTimer: ReturnType<typeof setTimeout> | null = null;
  adminDown: boolean;
  private maxPrefixTripped = false;
  /** Families whose End-of-RIB arrived on the current session. */
  private eor = new Set<string>();
  /** The RFC 8212 "no policy" warnings were logged. */
  private warned = false;
  /** Routes treated as withdrawn on this session because the first AS was not the peer's (RFC 7606 §7.2). */
  firstAsFailures = 0;

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
      connectRetry: config.connectRetry,
      passive: config.passive,
      ...(config.password !== undefined ? { password: config.password } : {}),
      families: familiesOf(config.families),
      capabilities: [
        ...speakerCapabilities(familiesOf(config.families)),
        ...(config.addPath
          ? [{ type: "add-path" as const, families: familiesOf(config.families).map((f) => ({ ...f, send: config.addPath!.send, receive: config.addPath!.receive })) }]
          : []),
      ],
    });
    const s = this.session;
    s.on("state", (e) => this.onState(e.from as SessionState, e.to as SessionState, e.reason));
    s.on("established", (n) => this.onEstablished(n));
    s.on("update", (u) => this.onUpdate(u));
    s.on("routeRefresh", (r) => this.onRouteRefresh(r.afi, r.safi, r.subtype));
    s.on("notificationReceived", (n: NotificationMessage) => host.log.warn(`${this.name}: received NOTIFICATION ${describeNotification(n)}`));
    s.on("notificationSent", (n: NotificationMessage) => host.log.info(`${this.name}: sent NOTIFICATION ${describeNotification(n)}`));
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

  async stop(subcode: number = CEASE_SUB.ADMIN_SHUTDOWN, message?: string): Promise<void> {
    this.clearTimers();
    await this.session.stop({ subcode, message });
  }

  private clearTimers(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.flushTimer = this.restartTimer = null;
  }

  private onState(from: SessionState, to: SessionState, reason: string): void {
    if (from === "Established" || to === "Established") this.since = Date.now();
    this.ctxCache = null;
    if (from === "Established" && to !== "Established") {
      this.adjOut = null;
      this.adjIn.clear();
      this.host.sourceDown(this.source.id);
    }
    this.host.stateChanged(this, from, to, reason);
  }

  private onEstablished(n: Negotiated): void {
    this.source.routerId = u32ip(n.peerRouterId);
    this.eor.clear();
    this.firstAsFailures = 0;
    this.maxPrefixTripped = false;
    const local = this.session.localAddress ?? "";
    const la = parseAddr(local.replace(/^::ffff:/, ""));
    const other = la ? siblingAddress(local, la.afi === AFI.IPV4 ? AFI.IPV6 : AFI.IPV4) : null;
    this.adjOut = new AdjRibOut({
      peer: this.config,
      localAs: this.config.localAs,
      routerId: this.host.config.routerId,
      clusterId: this.host.config.clusterId ?? this.host.config.routerId,
      negotiated: n,
      localAddress: la ? la.addr : new Uint8Array(0),
      otherLocalAddress: other ? parseAddr(other)?.addr : undefined,
      policies: this.host.policies,
    });
    this.host.log.info(`${this.name}: established, families ${describeFamilies(n.families)}`);
    for (const r of this.host.bestRoutes()) this.adjOut.exportRoute(r, r.key, r.prefix);
    this.sendQueued();
    for (const m of this.adjOut.endOfRib()) this.session.sendUpdate(m);
  }

  /** Import one received UPDATE into Adj-RIB-In and (after policy) the Loc-RIB. */
  private onUpdate(u: UpdateMessage): void {
    for (const i of u.issues) this.host.log.warn(`${this.name}: malformed UPDATE, ${i.action}: ${i.reason}`);
    for (const b of withdrawnBlocks(u)) for (const p of blockPrefixes(b)) this.withdrawn(p, p.pathId ?? 0);
    const attrs = u.attrs;
    if (attrs) {
      for (const b of announcedBlocks(u)) {
        const nh = b === u.nlri ? attrs.nextHop! : u.mpReach!.nextHop;
        for (const p of blockPrefixes(b)) this.announced(p, p.pathId ?? 0, attrs, nh);
      }
    }
    this.checkMaxPrefix();
    if (u.endOfRib) {
      const n = this.session.negotiated;
      const had = n ? n.families.every((f) => this.eor.has(`${f.afi}/${f.safi}`)) : false;
      this.eor.add(`${u.endOfRib.afi}/${u.endOfRib.safi}`);
      if (n && !had && n.families.every((f) => this.eor.has(`${f.afi}/${f.safi}`))) this.host.peerSynced(this);
    }
  }

  private withdrawn(p: Prefix, pathId: number): void {
    const key = prefixKey(p);
    const had = this.adjIn.withdraw(key, pathId);
    if (had) this.host.routeEvent(this, "withdraw", p, null);
    this.importDecision(key, pathId, null);
  }

  private announced(p: Prefix, pathId: number, attrs: PathAttributes, nextHop: Uint8Array): void {
    const route = makeRoute(p, pathId, this.source, attrs, nextHop);
    const key = route.key;
    this.adjIn.update(route);
    this.host.routeEvent(this, "announce", p, route);
    this.importDecision(key, pathId, route);
  }

  /** Loop detection and import policy for one received route (or its withdrawal). */
  importDecision(key: Route["key"], pathId: number, route: Route | null): void {
    let accepted: Route | null = null;
    if (route && !this.loops(route) && this.firstAsOk(route)) {
      const r = applyPolicy(this.config.import, this.source.ibgp ? "ibgp" : "ebgp", route, this.policyCtx("import"), this.host.policies);
      if (r.accept) accepted = r.attrs === route.attrs && r.nextHop === route.nextHop ? route : { ...route, attrs: r.attrs, nextHop: r.nextHop };
    }
    this.host.importRoute(this.source, key, pathId, accepted);
  }

  /** Our own AS in the path more often than allowOwnAs: a loop (RFC 4271 §9.1.2). */
  private loops(r: Route): boolean {
    const own = this.config.localAs;
    let n = 0;
    for (const s of r.attrs.asPath ?? []) for (const a of s.asns) if (a === own) n++;
    if (n > this.config.allowOwnAs) return true;
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
    const first = r.attrs.asPath?.[0];
    if (first && first.type === SEG.AS_SEQUENCE && first.asns[0] === this.config.remoteAs) return true;
    if (this.firstAsFailures++ === 0) {
      const got = first && first.asns.length ? `AS ${first.asns[0]}` : "an empty AS_PATH";
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

  /** Re-run import policy over the stored Adj-RIB-In (soft reconfiguration inbound). */
  reimport(): void {
    for (const r of [...this.adjIn.routes()]) this.importDecision(r.key, r.pathId, r);
  }

  private checkMaxPrefix(): void {
    const mp = this.config.maxPrefix;
    if (!mp || this.maxPrefixTripped) return;
    for (const [fam, n] of this.adjIn.countsByFamily()) {
      if (n <= mp.limit) continue;
      this.maxPrefixTripped = true;
      const what = `${this.name}: ${n} ${fam === AFI.IPV6 ? "IPv6" : "IPv4"} prefixes received, over the limit of ${mp.limit}`;
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
      return;
    }
  }

  private onRouteRefresh(afi: number, safi: number, subtype: number): void {
    if (subtype !== 0 || !this.adjOut) return;
    this.host.log.info(`${this.name}: route refresh requested for ${familyName(afi, safi)}`);
    for (const m of this.adjOut.refresh(afi, safi)) this.session.sendUpdate(m);
  }

  /** A Loc-RIB best route changed: queue the export; flushed after MRAI (or at once). */
  exportChange(route: Route | null, key: Route["key"], prefix: Prefix): void {
    if (!this.adjOut) return;
    this.adjOut.exportRoute(route, key, prefix);
    if (this.flushTimer) return;
    const mrai = this.host.config.mrai * 1000;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.sendQueued();
    }, mrai);
  }

  sendQueued(): void {
    if (!this.adjOut) return;
    for (const m of this.adjOut.flush()) this.session.sendUpdate(m);
  }

  /** Re-evaluate every export after an export policy change (soft out). */
  reexport(): void {
    if (!this.adjOut) return;
    this.adjOut.reconfigure(this.config, this.host.policies, this.host.config.clusterId ?? this.host.config.routerId);
    for (const r of this.host.bestRoutes()) this.adjOut.exportRoute(r, r.key, r.prefix);
    this.adjOut.resync();
    this.sendQueued();
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
    };
  }
}


