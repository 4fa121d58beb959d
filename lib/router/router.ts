/**
 * The daemon's route decision engine and the glue around it (OpenBGPD's RDE
 * in spirit): neighbours feed accepted routes into one Loc-RIB, local routes
 * (config, CLI) feed the same Loc-RIB, and every change of a best route is
 * offered to each neighbour's Adj-RIB-Out. Implements the control API.
 */
import { type PathAttributes, emptyAttributes, parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { Listener } from "../bgp/listener.ts";
import { parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import { attributesView } from "../bgp/route.ts";
import { type Prefix } from "../core/addr.ts";
import { CEASE_SUB, ORIGIN, SEG } from "../bgp/types.ts";
import {
  type AdvertiseRequest,
  ApiError,
  type MonitorEvent,
  type NeighborInfo,
  type PeerAddRequest,
  type RibEntry,
  type RibQuery,
  type RibSummary,
  type RouterApi,
} from "../api/types.ts";
import { diffConfig } from "../config/diff.ts";
import { loadConfig } from "../config/load.ts";
import type { AdvertiseConfig, PeerConfig, RouterConfig } from "../config/types.ts";
import { LocRib } from "../rib/loc-rib.ts";
import { type CompiledPolicies, compilePolicies } from "../rib/policy.ts";
import { type Route, type RouteSource, nextHopText, prefixKey } from "../rib/types.ts";
import { RtNetlink } from "../../ffi/rtnetlink.ts";
import { Fib } from "../fib/fib.ts";
import type { FibEntry, InterfacesInfo } from "../api/types.ts";
import type { K8sStatus } from "../k8s/types.ts";
import { Log } from "../core/log.ts";
import { Neighbor, type NeighborHost } from "./neighbor.ts";

type Monitor = { fn: (e: MonitorEvent) => void; neighbor?: string };

/** Hooks for a daemon whose configuration is derived (watch-k8s) rather than read from the file alone. */
export interface RouterOptions {
  /** Produce the configuration a reload applies (default: read configPath). */
  load?: () => RouterConfig | Promise<RouterConfig>;
  /** The Kubernetes controller's view, served as GET /v1/k8s. */
  k8s?: () => K8sStatus;
}

export class Router implements RouterApi, NeighborHost {
  config: RouterConfig;
  policies: CompiledPolicies;
  readonly log: Log;
  readonly locRib: LocRib;
  readonly peers = new Map<string, Neighbor>();
  private listener = new Listener();
  private readonly started = Date.now();
  private monitors = new Set<Monitor>();
  /** Local routes by "config" / "cli" origin, keyed by prefix text. */
  private localRoutes = new Map<string, { route: Route; origin: "config" | "cli" }>();
  readonly localSource: RouteSource;
  /** Kernel route programming, when `kernel.enabled`. */
  private fibState: { kernel: RtNetlink; fib: Fib; unsubscribe: () => void } | null = null;

  /** Present under watch-k8s (RouterApi.k8s). */
  readonly k8s?: () => K8sStatus;
  private readonly loadHook?: RouterOptions["load"];

  constructor(
    config: RouterConfig,
    readonly configPath: string | null,
    log?: Log,
    opts: RouterOptions = {},
  ) {
    this.config = config;
    if (opts.k8s) this.k8s = opts.k8s;
    this.loadHook = opts.load;
    this.log = log ?? new Log(config.log.level, config.log.format);
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
    this.locRib.subscribe((ch) => {
      for (const n of this.peers.values()) n.exportChange(ch.newBest, ch.key, ch.prefix);
      if (this.monitors.size) this.emit({ type: "best", time: now(), prefix: prefixToString(ch.prefix), route: ch.newBest ? this.entry(ch.newBest, true, false) : null });
    });
    this.log.tap((level, msg) => {
      if (this.monitors.size) this.emit({ type: "log", time: now(), level, msg });
    });
  }

  /** Listen, start the FIB (when enabled), start every neighbour, install the configured local routes. */
  async start(): Promise<void> {
    if (this.config.kernel.enabled) await this.startFib();
    try {
      await this.listener.listen(this.config.listen);
    } catch (e) {
      throw new Error(`cannot listen on ${this.config.listen.map((l) => `${l.address}:${l.port}`).join(", ")}: ${(e as Error).message}`);
    }
    this.listener.on("log", (l: { level: string; msg: string }) => this.log.at(l.level === "debug" ? "debug" : l.level, l.msg));
    for (const a of this.config.advertise) this.addLocal(a, "config");
    for (const p of this.config.peers) this.addNeighbor(p);
    this.log.info(`bgpctl running: AS ${this.config.asn}, router id ${this.config.routerId}, ${this.config.peers.length} peers`);
  }

  async stop(): Promise<void> {
    // The FIB first: closing the sessions withdraws their routes, which must not
    // reach the kernel when `retainOnExit` keeps them for a graceful restart.
    if (this.fibState) {
      this.fibState.unsubscribe();
      await this.fibState.fib.stop();
      this.fibState.kernel.close();
      this.fibState = null;
    }
    await Promise.all([...this.peers.values()].map((n) => n.stop(CEASE_SUB.ADMIN_SHUTDOWN, "bgpctl shutting down")));
    await this.listener.close();
  }

  /**
   * Open rtnetlink and start the reconciler before any session: it reads the
   * kernel's routes of ours first, so a restart keeps forwarding until every
   * peer has sent End-of-RIB (or the start-up deadline).
   */
  private async startFib(): Promise<void> {
    const k = this.config.kernel;
    let kernel: RtNetlink;
    try {
      kernel = await RtNetlink.open({ groups: true });
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
        startupDeadlineMs: k.startupDeadline * 1000,
      },
      (level, msg) => this.log.at(level, `kernel: ${msg}`),
    );
    fib.expectSources(this.config.peers.filter((p) => !p.shutdown).map((p) => p.address));
    try {
      await fib.start();
    } catch (e) {
      kernel.close();
      throw new Error(`kernel routes: ${(e as Error).message}`);
    }
    const unsubscribe = this.locRib.subscribe((ev) => fib.onLocRibChange(ev));
    this.fibState = { kernel, fib, unsubscribe };
    this.log.info(`kernel routes: table ${k.table}, protocol ${k.protocol}, metric ${k.metric}${k.ecmp ? ", ECMP" : ""}`);
  }

  // ------------------------------------------------------------ NeighborHost
  importRoute(source: RouteSource, key: Route["key"], pathId: number, route: Route | null): void {
    if (route) this.locRib.upsert(route);
    else this.locRib.remove(source.id, key, pathId);
  }
  acceptedCount(sourceId: string): number {
    return this.locRib.sourceCount(sourceId);
  }
  sourceDown(sourceId: string): void {
    this.locRib.removeSource(sourceId);
  }
  *bestRoutes(): Iterable<Route> {
    for (const r of this.locRib.bests()) yield r;
  }
  peerSynced(n: Neighbor): void {
    this.fibState?.fib.endOfRib(n.source.id);
  }
  stateChanged(n: Neighbor, from: NeighborInfo["state"], to: NeighborInfo["state"], reason: string): void {
    if (from === "Established" || to === "Established") this.log.info(`${n.name}: ${from} -> ${to}${reason ? ` (${reason})` : ""}`);
    if (this.monitors.size) this.emit({ type: "state", time: now(), peer: n.config.address, from, to, reason });
  }
  routeEvent(n: Neighbor, kind: "announce" | "withdraw", prefix: Prefix, route: Route | null): void {
    if (!this.monitors.size) return;
    const peer = n.config.address;
    if (kind === "withdraw" || !route) this.emit({ type: "withdraw", time: now(), peer, prefix: prefixToString(prefix) });
    else this.emit({ type: "announce", time: now(), peer, route: this.entry(route, false, false) });
  }

  private emit(e: MonitorEvent): void {
    for (const m of this.monitors) {
      if (m.neighbor && "peer" in e && e.peer !== m.neighbor) continue;
      try {
        m.fn(e);
      } catch {
        this.monitors.delete(m);
      }
    }
  }

  // ------------------------------------------------------------ neighbours
  private addNeighbor(p: PeerConfig): Neighbor {
    const n = new Neighbor(p, this);
    this.peers.set(p.address, n);
    this.listener.add(n.session);
    n.start();
    return n;
  }

  private async removeNeighbor(address: string, subcode: number, message?: string): Promise<void> {
    const n = this.peers.get(address);
    if (!n) return;
    this.peers.delete(address);
    this.listener.remove(n.session);
    await n.stop(subcode, message);
    this.locRib.removeSource(n.source.id);
  }

  private neighbor(address: string): Neighbor {
    const a = parseAddr(address);
    const n = a ? this.peers.get(address) ?? [...this.peers.values()].find((x) => parseAddr(x.config.address)?.addr.join() === a.addr.join()) : undefined;
    if (!n) throw new ApiError(404, `no neighbor ${address}`);
    return n;
  }

  // ------------------------------------------------------------ local routes
  private localRoute(a: AdvertiseConfig): Route {
    const prefix = parsePrefix(a.prefix);
    const attrs: PathAttributes = {
      ...emptyAttributes(),
      origin: ORIGIN.IGP,
      asPath: a.asPathPrepend ? [{ type: SEG.AS_SEQUENCE, asns: new Array<number>(a.asPathPrepend).fill(this.config.asn) }] : [],
      localPref: a.localPref ?? 100,
      med: a.med ?? null,
      communities: a.communities.map(parseCommunity),
      largeCommunities: a.largeCommunities.map(parseLargeCommunity),
    };
    return {
      prefix,
      key: prefixKey(prefix),
      pathId: 0,
      source: this.localSource,
      attrs,
      // An empty next hop means "self": each Adj-RIB-Out puts the session's local address.
      nextHop: a.nextHop ? parseAddr(a.nextHop)!.addr : new Uint8Array(0),
      learnedAt: performance.now(),
      igpCost: 0,
      reachable: true,
      stale: false,
    };
  }

  private addLocal(a: AdvertiseConfig, origin: "config" | "cli"): void {
    const route = this.localRoute(a);
    this.localRoutes.set(prefixToString(route.prefix), { route, origin });
    this.locRib.upsert(route);
  }

  private removeLocal(prefixText: string): boolean {
    const e = this.localRoutes.get(prefixText);
    if (!e) return false;
    this.localRoutes.delete(prefixText);
    this.locRib.remove(this.localSource.id, e.route.key, 0);
    return true;
  }

  // ------------------------------------------------------------ RouterApi
  summary() {
    return {
      routerId: this.config.routerId,
      asn: this.config.asn,
      uptimeSeconds: Math.floor((Date.now() - this.started) / 1000),
      neighbors: this.neighbors_(),
    };
  }

  private neighbors_(): NeighborInfo[] {
    return [...this.peers.values()].map((n) => n.info());
  }

  neighbors(address?: string): NeighborInfo[] {
    if (address) return [this.neighbor(address).info()];
    return this.neighbors_();
  }

  private entry(r: Route, best: boolean, multipath: boolean): RibEntry {
    const v = attributesView(r.attrs);
    const e: RibEntry = {
      prefix: prefixToString(r.prefix),
      nextHop: r.nextHop.length ? nextHopText(r.nextHop) : "self",
      asPath: v.asPath,
      origin: v.origin,
      med: v.med,
      localPref: v.localPref,
      communities: v.communities,
      largeCommunities: v.largeCommunities,
      peer: r.source.local ? "local" : r.source.address,
      best,
      multipath,
      ibgp: r.source.ibgp && !r.source.local,
      stale: r.stale,
    };
    if (r.pathId) e.pathId = r.pathId;
    if (v.originatorId) e.originatorId = v.originatorId;
    if (v.clusterList) e.clusterList = v.clusterList;
    return e;
  }

  rib(q: RibQuery): RibEntry[] {
    let routes: { r: Route; best: boolean; multipath: boolean }[] = [];
    let prefixes: Prefix[] | null = null;
    if (q.prefix) {
      let p: Prefix;
      try {
        p = q.prefix.includes("/") ? parsePrefix(q.prefix) : (() => {
          const a = parseAddr(q.prefix!);
          if (!a) throw new Error(`invalid prefix or address "${q.prefix}"`);
          return { afi: a.afi, len: a.addr.length * 8, addr: a.addr };
        })();
      } catch (e) {
        throw new ApiError(400, (e as Error).message);
      }
      prefixes = this.locRib.lookup(p, q.match ?? (q.prefix.includes("/") ? "exact" : "longest"));
    }
    if (q.neighbor && (q.table === "in" || q.table === "out")) {
      const n = this.neighbor(q.neighbor);
      const src = q.table === "in" ? n.adjIn.routes() : (n.adjOut?.routes() ?? []);
      for (const r of src) routes.push({ r, best: false, multipath: false });
    } else {
      const keys = prefixes ? prefixes.map(prefixKey) : null;
      for (const e of keys ? keys.map((k) => this.locRib.get(k)).filter((x) => !!x) : this.locRib.entries()) {
        for (const r of e!.routes) routes.push({ r, best: r === e!.best, multipath: e!.multipath.includes(r) && e!.multipath.length > 1 });
      }
      if (q.neighbor) {
        const n = this.neighbor(q.neighbor);
        routes = routes.filter((x) => x.r.source.id === n.source.id);
      }
    }
    if (prefixes && (q.table === "in" || q.table === "out")) {
      const want = new Set(prefixes.map(prefixKey));
      routes = routes.filter((x) => want.has(x.r.key));
    }
    if (q.family) routes = routes.filter((x) => (x.r.prefix.afi === 2) === (q.family === "ipv6"));
    if (q.bestOnly) routes = routes.filter((x) => x.best);
    if (q.community) {
      let c: number;
      try {
        c = parseCommunity(q.community);
      } catch (e) {
        throw new ApiError(400, (e as Error).message);
      }
      routes = routes.filter((x) => x.r.attrs.communities.includes(c));
    }
    if (q.asn !== undefined) routes = routes.filter((x) => (x.r.attrs.asPath ?? []).some((s) => s.asns.includes(q.asn!)));
    return routes.map((x) => this.entry(x.r, x.best, x.multipath));
  }

  ribSummary(): RibSummary {
    const fam = new Map<string, { prefixes: number; paths: number }>();
    for (const e of this.locRib.entries()) {
      const f = e.prefix.afi === 2 ? "ipv6-unicast" : "ipv4-unicast";
      const s = fam.get(f) ?? { prefixes: 0, paths: 0 };
      s.prefixes++;
      s.paths += e.routes.length;
      fam.set(f, s);
    }
    const peers: RibSummary["peers"] = [];
    for (const n of this.peers.values()) {
      const i = n.info();
      peers.push({ address: i.address, family: "all", received: i.received, accepted: i.accepted, advertised: i.advertised });
    }
    return { families: [...fam].map(([family, s]) => ({ family, ...s })), peers };
  }

  advertise(r: AdvertiseRequest): { added: string[] } {
    const added: string[] = [];
    const cfgs: AdvertiseConfig[] = [];
    for (const p of r.prefixes) {
      try {
        const pr = parsePrefix(p);
        if (r.nextHop && !parseAddr(r.nextHop)) throw new Error(`invalid next hop "${r.nextHop}"`);
        (r.communities ?? []).forEach(parseCommunity);
        (r.largeCommunities ?? []).forEach(parseLargeCommunity);
        cfgs.push({ prefix: prefixToString(pr), nextHop: r.nextHop, communities: r.communities ?? [], largeCommunities: r.largeCommunities ?? [], localPref: r.localPref, med: r.med });
      } catch (e) {
        throw new ApiError(400, (e as Error).message);
      }
    }
    for (const c of cfgs) {
      this.addLocal(c, "cli");
      added.push(c.prefix);
    }
    this.log.info(`advertise ${added.join(" ")}`);
    return { added };
  }

  withdraw(prefixes: string[]): { removed: string[] } {
    const removed: string[] = [];
    for (const p of prefixes) {
      let text: string;
      try {
        text = prefixToString(parsePrefix(p));
      } catch (e) {
        throw new ApiError(400, (e as Error).message);
      }
      if (this.removeLocal(text)) removed.push(text);
    }
    if (!removed.length) throw new ApiError(404, `not advertised: ${prefixes.join(" ")}`);
    this.log.info(`withdraw ${removed.join(" ")}`);
    return { removed };
  }

  peerAdd(r: PeerAddRequest): void {
    if (this.peers.has(r.address)) throw new ApiError(409, `neighbor ${r.address} exists`);
    const localAs = r.localAs ?? this.config.asn;
    const ref = (s?: string) => (s === undefined ? undefined : s === "all" ? { kind: "all" as const } : s === "none" ? { kind: "none" as const } : { kind: "chain" as const, names: [s] });
    for (const name of [r.import, r.export]) {
      if (name && name !== "all" && name !== "none" && !this.config.policies[name]) throw new ApiError(400, `policy "${name}" is not defined`);
    }
    const p: PeerConfig = {
      address: r.address,
      remoteAs: r.remoteAs,
      localAs,
      port: r.port ?? 179,
      localAddress: r.localAddress,
      passive: r.passive ?? false,
      holdTime: r.holdTime ?? 90,
      connectRetry: 120,
      families: r.families ?? ["ipv4", "ipv6"],
      nextHopSelf: r.nextHopSelf ?? false,
      routeReflectorClient: r.routeReflectorClient ?? false,
      multihop: false,
      import: ref(r.import),
      export: ref(r.export),
      description: r.description,
      shutdown: false,
      allowOwnAs: 0,
    };
    this.addNeighbor(p);
    this.log.info(`neighbor ${r.address} added`);
  }

  peerDelete(address: string): void {
    const n = this.neighbor(address);
    void this.removeNeighbor(n.config.address, CEASE_SUB.PEER_DECONFIGURED, "peer deleted");
    this.log.info(`neighbor ${address} deleted`);
  }

  peerUp(address: string): void {
    const n = this.neighbor(address);
    n.adminDown = false;
    n.session.start();
  }

  peerDown(address: string, message?: string): void {
    const n = this.neighbor(address);
    n.adminDown = true;
    void n.stop(CEASE_SUB.ADMIN_SHUTDOWN, message);
  }

  peerReset(address: string, soft?: "in" | "out"): void {
    const n = this.neighbor(address);
    if (soft === "in") {
      n.reimport();
      n.requestRefresh();
    } else if (soft === "out") {
      n.reexport();
    } else {
      void n.stop(CEASE_SUB.ADMIN_RESET, "reset by operator").then(() => {
        if (!n.adminDown) n.session.start();
      });
    }
  }

  async reload(): Promise<{ changes: string[] }> {
    if (!this.configPath && !this.loadHook) throw new ApiError(409, "no config file to reload");
    let next: RouterConfig;
    try {
      next = this.loadHook ? await this.loadHook() : loadConfig(this.configPath!);
    } catch (e) {
      this.log.error(`reload rejected, the running config stays in force:\n${(e as Error).message}`);
      throw new ApiError(400, (e as Error).message);
    }
    return { changes: await this.apply(next) };
  }

  /** Apply a new config as a diff: unaffected sessions keep running. */
  async apply(next: RouterConfig, what = "configuration reloaded"): Promise<string[]> {
    const d = diffConfig(this.config, next);
    const changes: string[] = [];
    if (d.globalChanged.some((f) => f === "asn" || f === "routerId" || f === "kernel")) {
      throw new ApiError(409, `changing ${d.globalChanged.join(", ")} needs a restart of bgpctl`);
    }
    let policies: CompiledPolicies;
    try {
      policies = compilePolicies(next.policies, next.prefixLists);
    } catch (e) {
      throw new ApiError(400, (e as Error).message);
    }
    this.config = next;
    this.policies = policies;
    if (d.globalChanged.includes("listen")) {
      const l = new Listener([...this.peers.values()].map((n) => n.session));
      await this.listener.close();
      this.listener = l;
      await l.listen(next.listen);
      changes.push("listen addresses changed");
    }
    if (d.globalChanged.includes("decision") || d.globalChanged.includes("multipath")) {
      this.locRib.setOptions({ alwaysCompareMed: next.decision.alwaysCompareMed, preferOldest: next.decision.preferOldest, multipath: next.multipath });
      changes.push("decision options changed");
    }
    for (const p of d.peersRemoved) {
      await this.removeNeighbor(p.address, CEASE_SUB.PEER_DECONFIGURED, "removed from the configuration");
      changes.push(`neighbor ${p.address} removed`);
    }
    let rrChanged = false;
    for (const c of d.peersChanged) {
      const n = this.peers.get(c.address)!;
      if (c.needsReset) {
        await this.removeNeighbor(c.address, CEASE_SUB.OTHER_CONFIG_CHANGE, `configuration changed: ${c.fields.join(", ")}`);
        this.addNeighbor(c.after);
        changes.push(`neighbor ${c.address} reset (${c.fields.join(", ")})`);
      } else {
        n.updateConfig(c.after);
        if (c.fields.includes("routeReflectorClient")) rrChanged = true;
        n.adminDown = c.after.shutdown;
        if (c.fields.includes("shutdown")) {
          if (c.after.shutdown) await n.stop(CEASE_SUB.ADMIN_SHUTDOWN, c.after.shutdownMessage);
          else n.start();
        }
        changes.push(`neighbor ${c.address} updated in place (${c.fields.join(", ")})`);
      }
    }
    for (const p of d.peersAdded) {
      this.addNeighbor(p);
      changes.push(`neighbor ${p.address} added`);
    }
    // Soft reconfiguration: re-run import over the stored Adj-RIB-In, ask for a
    // refresh where supported, re-evaluate exports.
    const policyPeers = new Set([...d.peersAffectedByPolicy, ...d.peersChanged.filter((c) => !c.needsReset).map((c) => c.address)]);
    for (const a of policyPeers) {
      const n = this.peers.get(a);
      if (!n) continue;
      n.reimport();
      n.requestRefresh();
      n.reexport();
      changes.push(`neighbor ${a}: policies re-applied`);
    }
    if (rrChanged || d.globalChanged.includes("clusterId")) {
      // Which routes are reflected to whom depends on every peer's client flag.
      for (const n of this.peers.values()) n.reexport();
      changes.push("route reflection re-evaluated");
    }
    // A prefix whose attributes changed is replaced in one step (no withdraw in between).
    const readded = new Set(d.advertiseAdded.map((a) => a.prefix));
    for (const a of d.advertiseRemoved) {
      if (readded.has(a.prefix)) continue;
      this.removeLocal(a.prefix);
      changes.push(`withdrew ${a.prefix}`);
    }
    for (const a of d.advertiseAdded) {
      const replaced = d.advertiseRemoved.some((r) => r.prefix === a.prefix);
      this.addLocal(a, "config");
      changes.push(`${replaced ? "updated" : "advertised"} ${a.prefix}`);
    }
    if (changes.length || what === "configuration reloaded") this.log.info(`${what}: ${changes.length ? changes.join("; ") : "no changes"}`);
    return changes;
  }

  fib(prefix?: string): FibEntry[] {
    if (!this.fibState) throw new ApiError(409, "kernel route programming is off (set kernel.enabled in the config)");
    try {
      return this.fibState.fib.status(prefix);
    } catch (e) {
      throw new ApiError(400, (e as Error).message);
    }
  }

  async interfaces(): Promise<InterfacesInfo> {
    if (this.fibState) return this.fibState.fib.interfaces();
    // Kernel programming off: ask rtnetlink once (dumps need no privilege).
    const k = await RtNetlink.open({});
    try {
      return { links: await k.dumpLinks(), addresses: await k.dumpAddresses() };
    } finally {
      k.close();
    }
  }

  monitor(fn: (e: MonitorEvent) => void, neighbor?: string): () => void {
    const m: Monitor = { fn, neighbor };
    this.monitors.add(m);
    return () => this.monitors.delete(m);
  }
}

function now(): string {
  return new Date().toISOString();
}
