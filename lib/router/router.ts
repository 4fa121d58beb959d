/**
 * The daemon (`bgpctl run`, `bgpctl watch-k8s`): the control API's view of
 * the route engine. Answers queries from the engine's running state, sends
 * operator actions to the neighbours, and hands every change of what runs
 * (reload, peer add/delete) to the reconfigurer. Throws RouterError; the
 * control socket maps those to HTTP.
 */
import { asPathHas, parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { CEASE_SUB } from "../bgp/types.ts";
import type {
  AdvertiseRequest,
  BfdInfo,
  FibEntry,
  InterfacesInfo,
  MonitorEvent,
  NeighborInfo,
  PeerAddRequest,
  RibEntry,
  RibQuery,
  RibSummary,
  RouterApi,
  RouterSummary,
} from "../api/types.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { peerFromRequest, requestErrorText } from "../config/request.ts";
import { settingsGlobals } from "../config/resolve.ts";
import type { AdvertiseConfig, RouterConfig } from "../config/types.ts";
import { type Prefix, parseAddr, parsePrefix, prefixContains } from "../core/addr.ts";
import { Log } from "../core/log.ts";
import { type SlicerStats, sliced, slicer } from "../core/slices.ts";
import type { K8sStatus } from "../k8s/types.ts";
import type { LocRib, LocRibEntry, LookupMode } from "../rib/loc-rib.ts";
import { type Route, prefixKey, sameRoute } from "../rib/types.ts";
import { type EngineOptions, RouteEngine } from "./engine.ts";
import { conflict, invalid, notFound } from "./errors.ts";
import type { Neighbor } from "./neighbor.ts";
import { applyMrtDump, tableDumpRecords } from "./mrt-dump.ts";
import type { BfdTransport } from "../bfd/transport.ts";
import { BfdGlue } from "./bfd-glue.ts";
import type { CheckInfo } from "../health/mod.ts";
import { HealthGlue, type HealthGlueOptions } from "./health-glue.ts";
import { type AdvertiseDelta, Reconfigurer } from "./reconfigure.ts";
import { routeEntry } from "./view.ts";

/** Hooks for a daemon whose configuration is derived (watch-k8s) rather than read from the file alone, and for tests. */
export interface RouterOptions extends Partial<Omit<EngineOptions, "log">> {
  /** Produce the configuration a reload applies (default: read configPath). */
  load?: () => RouterConfig | Promise<RouterConfig>;
  /** The Kubernetes controller's view, served as GET /v1/k8s. */
  k8s?: () => K8sStatus;
  /** BFD's transport (default: UDP on the standard ports); tests pass an in-memory one. */
  bfdTransport?: BfdTransport;
  /** Health checks' loopback, probes and drain files (defaults: the real ones); tests pass their own. */
  health?: HealthGlueOptions;
}

export class Router implements RouterApi {
  readonly engine: RouteEngine;
  /** Reloads and run-time peer changes (its `metrics` endpoint is set by the daemon commands). */
  readonly reconf: Reconfigurer;
  /** Present under watch-k8s (RouterApi.k8s). */
  readonly k8s?: () => K8sStatus;
  private readonly loadHook?: RouterOptions["load"];
  /** BFD sessions of the neighbours with bfd.enabled (kept in line by sync() after every change of what runs). */
  readonly bfd: BfdGlue;
  /** Health-checked prefixes (`healthChecks:`; lib/router/health-glue.ts). */
  readonly health: HealthGlue;

  constructor(
    config: RouterConfig,
    readonly configPath: string | null,
    log?: Log,
    opts: RouterOptions = {},
  ) {
    if (opts.k8s) this.k8s = opts.k8s;
    this.loadHook = opts.load;
    this.engine = new RouteEngine(config, { log: log ?? new Log(config.log.level, config.log.format), clock: opts.clock, openKernel: opts.openKernel });
    this.reconf = new Reconfigurer(this.engine);
    this.bfd = new BfdGlue(this.engine, opts.bfdTransport ? { transport: opts.bfdTransport } : {});
    this.health = new HealthGlue(this.engine, opts.health);
    this.reconf.health = this.health;
  }

  get log(): Log {
    return this.engine.log;
  }
  /** The settings in force (peers and local routes: see the engine's running state). */
  get config(): RouterConfig {
    return this.engine.config;
  }
  get locRib(): LocRib {
    return this.engine.locRib;
  }
  get peers(): ReadonlyMap<string, Neighbor> {
    return this.engine.peers;
  }

  /** Start recording (mrtDump) first, so the first sessions' messages are in the dump, then the engine. */
  async start(): Promise<void> {
    await applyMrtDump(this.engine, this.engine.config.mrtDump);
    try {
      await this.engine.start();
      this.bfd.sync();
      this.health.apply(this.engine.config.healthChecks ?? []);
    } catch (e) {
      await applyMrtDump(this.engine, undefined);
      throw e;
    }
  }

  /** What `bgpctl shutdown` calls (set by the command running the daemon): a full, not graceful, stop. */
  onShutdownRequest: (() => void) | null = null;

  /** `bgpctl shutdown`: answered first, then the daemon stops for good (Cease/Hard Reset to every peer, kernel routes removed unless retainOnExit). */
  shutdown(): { ok: true } {
    const fn = this.onShutdownRequest;
    if (!fn) conflict("this daemon cannot be shut down from the control socket");
    setTimeout(fn, 10);
    return { ok: true };
  }

  /**
   * Stop the engine (`graceful`: as a graceful restart, see RouteEngine.stop),
   * then the recording (the sessions' last messages are in the dump).
   */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    this.bfd.stop();
    try {
      await this.health.stop();
      await this.engine.stop(opts);
    } finally {
      await applyMrtDump(this.engine, undefined);
    }
  }

  private neighbor(address: string): Neighbor {
    return this.engine.find(address) ?? notFound(`no neighbor ${address}`);
  }

  // ------------------------------------------------------------ queries
  summary(): RouterSummary {
    const c = this.engine.config;
    return {
      routerId: c.routerId,
      asn: c.asn,
      uptimeSeconds: Math.floor((Date.now() - this.engine.started) / 1000),
      neighbors: this.neighbors(),
      eventLoop: this.engine.loopLag.stats(),
      slices: sliceStats(),
    };
  }

  neighbors(address?: string): NeighborInfo[] {
    const withBfd = (n: Neighbor): NeighborInfo => {
      const bfd = this.bfd.state(n.config.address);
      return bfd === null ? n.info() : { ...n.info(), bfd };
    };
    if (address) return [withBfd(this.neighbor(address))];
    return [...this.engine.peers.values()].map(withBfd);
  }

  /**
   * The routes `show rib` asks for, produced lazily: a generator that walks
   * the Loc-RIB (or a neighbour's Adj-RIB-In/Out) applying the filters as it
   * goes, so the control socket can send the answer in slices (it yields to
   * the event loop between them; the table may change meanwhile, each prefix
   * is read in one step). The query is checked here, before the first entry:
   * a bad prefix or an unknown neighbour throws RouterError at once.
   * Order: table order; `shorter` shortest first; `limit` is the server's.
   */
  rib(q: RibQuery): Iterable<RibEntry> {
    const locRib = this.engine.locRib;
    const match = ribMatcher(q);
    const n = q.neighbor ? this.neighbor(q.neighbor) : null;
    const afi = q.family === "ipv4" ? 1 : q.family === "ipv6" ? 2 : undefined;
    const p = q.prefix === undefined ? null : queryPrefix(q.prefix);
    if (p && afi !== undefined && p.afi !== afi) return [];
    const mode = q.match ?? (q.prefix?.includes("/") ? "exact" : "longest");
    if (n && (q.table === "in" || q.table === "out")) {
      const adj = n;
      const table = q.table;
      // An adjacent table answers a prefix query by the relation to the query prefix; "longest" by the Loc-RIB's longest match.
      const inPrefix = !p ? null : prefixRelation(mode === "longest" ? (locRib.longestMatch(p)?.prefix ?? null) : p, mode === "longest" ? "exact" : mode);
      return (function* () {
        const src = table === "in" ? adj.adjIn.routes(afi) : (adj.adjOut?.routes(afi) ?? []);
        for (const r of src) if ((!inPrefix || inPrefix(r.prefix)) && match(r, false)) yield routeEntry(r, false, false);
      })();
    }
    const sourceId = n?.source.id;
    return (function* () {
      if (sourceId !== undefined && !p) {
        // One neighbour's routes: walk its own prefixes, not the table.
        for (const r of locRib.routesOf(sourceId)) {
          if (afi !== undefined && r.prefix.afi !== afi) continue;
          const e = locRib.get(r.key);
          if (e) yield* entryRoutes(e, match, sourceId, r);
        }
        return;
      }
      let entries: Iterable<LocRibEntry>;
      if (!p) entries = locRib.entries(afi);
      else if (mode === "longer") entries = longerEntries(locRib, p);
      else if (mode === "shorter") entries = locRib.shorter(p);
      else entries = [mode === "exact" ? locRib.get(prefixKey(p)) : locRib.longestMatch(p)].filter((e): e is LocRibEntry => !!e);
      for (const e of entries) yield* entryRoutes(e, match, sourceId);
    })();
  }

  /** Counts per family (kept by the Loc-RIB, no scan) and per peer. */
  ribSummary(): RibSummary {
    const locRib = this.engine.locRib;
    const families: RibSummary["families"] = [];
    for (const [afi, family] of [
      [1, "ipv4-unicast"],
      [2, "ipv6-unicast"],
    ] as const) {
      if (locRib.count(afi) > 0) families.push({ family, prefixes: locRib.count(afi), paths: locRib.pathCount(afi) });
    }
    const peers: RibSummary["peers"] = [];
    for (const n of this.engine.peers.values()) {
      const i = n.info();
      peers.push({ address: i.address, family: "all", received: i.received, accepted: i.accepted, advertised: i.advertised });
    }
    return { families, peers };
  }

  fib(prefix?: string): Iterable<FibEntry> {
    const fib = this.engine.fib ?? conflict("kernel route programming is off (set kernel.enabled in the config)");
    try {
      // The whole table is a lazy walk (streamed by the control socket); one prefix, an exact lookup.
      return prefix === undefined ? fib.walk() : fib.status(prefix);
    } catch (e) {
      invalid((e as Error).message);
    }
  }

  /**
   * `show rib --mrt`: the Loc-RIB (every candidate route, optionally of one
   * family) as TABLE_DUMP_V2 records, produced lazily: the control socket
   * pulls them in slices as the client writes them out.
   */
  ribMrt(family?: "ipv4" | "ipv6"): Iterable<Uint8Array> {
    const e = this.engine;
    return tableDumpRecords(
      {
        routerId: e.config.routerId,
        asn: e.config.asn,
        locRib: e.locRib,
        localSource: e.localSource,
        sources: [...e.peers.values()].map((n) => n.source),
        onSkipped: (n) => e.log.info(`show rib --mrt: ${n} routes of neighbours added during the dump left out (not in its peer table)`),
      },
      family === "ipv4" ? 1 : family === "ipv6" ? 2 : undefined,
    );
  }

  interfaces(): Promise<InterfacesInfo> {
    return this.engine.interfaces();
  }

  monitor(fn: (e: MonitorEvent) => void, neighbor?: string): () => void {
    return this.engine.monitor(fn, neighbor);
  }

  note(level: string, msg: string): void {
    this.log.at(level, msg);
  }

  // ------------------------------------------------------------ local routes
  /**
   * Originate prefixes, in slices of at most SLICE_MS with a turn of
   * the event loop between them (keepalives go out, other requests are
   * served); answers when all are in. Requests of advertise/withdraw are
   * applied one after the other, in arrival order.
   */
  advertise(r: AdvertiseRequest): Promise<{ added: string[] }> {
    return this.serialized(async () => {
      const e = this.engine;
      // The control socket checked the request against the schema: the prefixes are valid and canonical.
      this.refuseHealthPrefixes(r.prefixes);
      const added: string[] = [];
      await sliced(r.prefixes, (prefix) => {
        const c: AdvertiseConfig = {
          prefix,
          communities: r.communities ?? [],
          largeCommunities: r.largeCommunities ?? [],
          ...(r.nextHop !== undefined ? { nextHop: r.nextHop } : {}),
          ...(r.localPref !== undefined ? { localPref: r.localPref } : {}),
          ...(r.med !== undefined ? { med: r.med } : {}),
          ...(r.asPathPrepend !== undefined ? { asPathPrepend: r.asPathPrepend } : {}),
        };
        e.setLocal(c, "api");
        added.push(c.prefix);
      });
      e.log.info(`advertise ${listText(added)}`);
      return { added };
    });
  }

  /** Stop originating prefixes, in slices as advertise; RouterError not-found when none was advertised. */
  withdraw(prefixes: string[]): Promise<{ removed: string[] }> {
    return this.serialized(async () => {
      const e = this.engine;
      this.refuseHealthPrefixes(prefixes);
      const removed: string[] = [];
      await sliced(prefixes, (t) => {
        if (e.removeLocal(t)) removed.push(t);
      });
      if (!removed.length) notFound(`not advertised: ${listText(prefixes)}`);
      e.log.info(`withdraw ${listText(removed)}`);
      return { removed };
    });
  }

  /** The control API may not change a health check's prefix (RouterError conflict naming it). */
  private refuseHealthPrefixes(prefixes: readonly string[]): void {
    if (!this.health.size) return;
    for (const p of prefixes) {
      const check = this.health.ownerOf(p);
      if (check !== undefined) conflict(`${p} belongs to health check ${check}: use bgpctl check ${check} disable|enable`);
    }
  }

  // ------------------------------------------------------------ health checks
  /** `show checks`: every health check with its state, last result and counters. */
  checks(): CheckInfo[] {
    return this.health.info();
  }

  /** `bgpctl check NAME disable|enable`. */
  checkSetEnabled(name: string, enabled: boolean): CheckInfo {
    return this.health.setEnabled(name, enabled);
  }

  /** Runs local-route changes one at a time, in call order. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.localOps.then(fn);
    this.localOps = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
  private localOps: Promise<void> = Promise.resolve();

  // ------------------------------------------------------------ neighbours
  async peerAdd(r: PeerAddRequest): Promise<void> {
    const c = this.engine.config;
    let p;
    try {
      p = peerFromRequest(r, { asn: c.asn, policies: Object.keys(c.policies), globals: settingsGlobals(c) });
    } catch (e) {
      if (e instanceof ConfigError) invalid(requestErrorText(e).split("\n").join("; "));
      throw e;
    }
    await this.reconf.addPeer(p);
    this.bfd.sync();
  }

  peerDelete(address: string): Promise<void> {
    return this.reconf.deletePeer(address).finally(() => this.bfd.sync());
  }

  peerUp(address: string): void {
    const n = this.neighbor(address);
    n.adminDown = false;
    n.session.start();
    this.bfd.sync();
  }

  peerDown(address: string, message?: string): void {
    const n = this.neighbor(address);
    n.adminDown = true;
    void n.stop(CEASE_SUB.ADMIN_SHUTDOWN, message);
    this.bfd.sync();
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

  // ------------------------------------------------------------ reconfiguration
  /** Wraps every reload, whoever asks (SIGHUP or `bgpctl reload`): the daemon's systemd notifications (RELOADING=1 … READY=1). */
  aroundReload: (<T>(fn: () => Promise<T>) => Promise<T>) | null = null;

  /** Re-read the configuration and apply it as a diff (SIGHUP, `bgpctl reload`); rejects with the reason, the running configuration kept. */
  reload(): Promise<{ changes: string[] }> {
    const around = this.aroundReload;
    return around ? around(() => this.reloadNow()) : this.reloadNow();
  }

  private async reloadNow(): Promise<{ changes: string[] }> {
    if (!this.configPath && !this.loadHook) conflict("no config file to reload");
    let next: RouterConfig;
    try {
      next = this.loadHook ? await this.loadHook() : loadConfig(this.configPath!);
    } catch (e) {
      this.log.error(`reload rejected, the running configuration stays in force:\n${(e as Error).message}`);
      invalid((e as Error).message);
    }
    try {
      return { changes: await this.reconf.apply(next).finally(() => this.bfd.sync()) };
    } catch (e) {
      this.log.error(`reload rejected, the running configuration stays in force: ${(e as Error).message}`);
      throw e;
    }
  }

  /** `show bfd`: every BFD session with its BGP neighbour's state. */
  bfdSessions(): BfdInfo[] {
    return this.bfd.info();
  }

  /** Apply a configuration (a reload, or the Kubernetes controller's derived one) as a change of what runs; `delta` says which advertisements changed against the one it was derived after (see AdvertiseDelta). */
  apply(next: RouterConfig, what = "configuration reloaded", delta?: AdvertiseDelta): Promise<string[]> {
    return this.reconf.apply(next, what, delta).finally(() => this.bfd.sync());
  }
}

/** The shared slicer's stats for `show summary`, times to 0.01 ms. */
function sliceStats(): SlicerStats {
  const st = slicer.stats;
  const ms = (x: number) => Math.round(x * 100) / 100;
  const out: SlicerStats = { turns: st.turns, longestMs: ms(st.longestMs), over20: st.over20 };
  if (st.longestOnCoreMs !== undefined) {
    out.longestOnCoreMs = ms(st.longestOnCoreMs);
    out.over20OnCore = st.over20OnCore;
    out.longestOnCoreAt = st.longestOnCoreAt;
  }
  return out;
}

// ------------------------------------------------------------ show rib helpers

/** The prefix of a query; a bare address is a host prefix (for the longest match). */
function queryPrefix(text: string): Prefix {
  if (text.includes("/")) {
    try {
      return parsePrefix(text);
    } catch (e) {
      invalid((e as Error).message);
    }
  }
  const a = parseAddr(text) ?? invalid(`invalid prefix or address "${text}"`);
  return { afi: a.afi, len: a.addr.length * 8, addr: a.addr };
}

/** The per-route filters of a query (community or large community, AS in the path, best only), parsed once. */
function ribMatcher(q: RibQuery): (r: Route, best: boolean) => boolean {
  let comm: number | null = null;
  let large: [number, number, number] | null = null;
  if (q.community) {
    try {
      if (/^\d+:\d+:\d+$/.test(q.community)) large = parseLargeCommunity(q.community);
      else comm = parseCommunity(q.community);
    } catch (e) {
      invalid((e as Error).message);
    }
  }
  const asn = q.asn;
  const bestOnly = q.bestOnly === true;
  return (r, best) =>
    (!bestOnly || best) &&
    (comm === null || r.attrs.communities.includes(comm)) &&
    (large === null || r.attrs.largeCommunities.some((l) => l[0] === large![0] && l[1] === large![1] && l[2] === large![2])) &&
    (asn === undefined || asPathHas(r.attrs.asPath, asn));
}

/** Whether a prefix stands in `mode` relation to `p` (exact, longer: inside it, shorter: containing it); nothing matches a null `p`. */
function prefixRelation(p: Prefix | null, mode: LookupMode): (x: Prefix) => boolean {
  if (!p) return () => false;
  if (mode === "longer") return (x) => prefixContains(p, x);
  if (mode === "shorter") return (x) => prefixContains(x, p);
  return (x) => x.len === p.len && prefixContains(p, x);
}

/** The Loc-RIB entries inside `p`, walked lazily in table order. */
function* longerEntries(locRib: LocRib, p: Prefix): Generator<LocRibEntry> {
  const inside = prefixRelation(p, "longer");
  for (const e of locRib.entries(p.afi)) if (inside(e.prefix)) yield e;
}

/** The routes of one Loc-RIB entry that pass the filters (all of them, or `only`), read in one step. */
function* entryRoutes(e: LocRibEntry, match: (r: Route, best: boolean) => boolean, sourceId?: string, only?: Route): Generator<RibEntry> {
  const out: RibEntry[] = [];
  const mp = e.multipath.length > 1;
  for (const r of only ? [only] : e.routes) {
    if (sourceId !== undefined && r.source.id !== sourceId) continue;
    const best = sameRoute(r, e.best);
    if (match(r, best)) out.push(routeEntry(r, best, mp && e.multipath.some((m) => sameRoute(r, m))));
  }
  yield* out;
}

// ------------------------------------------------------------ log text

/** A list of prefixes for a log line: all of them when few, else the first ones and the count. */
function listText(list: readonly string[], max = 8): string {
  return list.length <= max ? list.join(" ") : `${list.slice(0, max).join(" ")} ... (${list.length} prefixes)`;
}
