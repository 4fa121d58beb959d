/**
 * The daemon (`bgpctl run`, `bgpctl watch-k8s`): the control API's view of
 * the route engine. Answers queries from the engine's running state, sends
 * operator actions to the neighbours, and hands every change of what runs
 * (reload, peer add/delete) to the reconfigurer. Throws RouterError; the
 * control socket maps those to HTTP.
 */
import { parseCommunity } from "../bgp/attributes.ts";
import { CEASE_SUB } from "../bgp/types.ts";
import type {
  AdvertiseRequest,
  FibEntry,
  InterfacesInfo,
  MonitorEvent,
  NeighborInfo,
  PeerAddRequest,
  RibEntry,
  RibQuery,
  RibSummary,
  RouterApi,
} from "../api/types.ts";
import { ConfigError, loadConfig } from "../config/load.ts";
import { peerFromRequest, requestErrorText } from "../config/request.ts";
import type { RouterConfig } from "../config/types.ts";
import { type Prefix, parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import { Log } from "../core/log.ts";
import type { K8sStatus } from "../k8s/types.ts";
import type { LocRib } from "../rib/loc-rib.ts";
import { type Route, prefixKey } from "../rib/types.ts";
import { type EngineOptions, RouteEngine } from "./engine.ts";
import { conflict, invalid, notFound } from "./errors.ts";
import type { Neighbor } from "./neighbor.ts";
import { Reconfigurer } from "./reconfigure.ts";
import { routeEntry } from "./view.ts";

/** Hooks for a daemon whose configuration is derived (watch-k8s) rather than read from the file alone, and for tests. */
export interface RouterOptions extends Partial<Omit<EngineOptions, "log">> {
  /** Produce the configuration a reload applies (default: read configPath). */
  load?: () => RouterConfig | Promise<RouterConfig>;
  /** The Kubernetes controller's view, served as GET /v1/k8s. */
  k8s?: () => K8sStatus;
}

export class Router implements RouterApi {
  readonly engine: RouteEngine;
  private readonly reconf: Reconfigurer;
  /** Present under watch-k8s (RouterApi.k8s). */
  readonly k8s?: () => K8sStatus;
  private readonly loadHook?: RouterOptions["load"];

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

  start(): Promise<void> {
    return this.engine.start();
  }

  stop(): Promise<void> {
    return this.engine.stop();
  }

  private neighbor(address: string): Neighbor {
    return this.engine.find(address) ?? notFound(`no neighbor ${address}`);
  }

  // ------------------------------------------------------------ queries
  summary() {
    const c = this.engine.config;
    return { routerId: c.routerId, asn: c.asn, uptimeSeconds: Math.floor((Date.now() - this.engine.started) / 1000), neighbors: this.neighbors() };
  }

  neighbors(address?: string): NeighborInfo[] {
    if (address) return [this.neighbor(address).info()];
    return [...this.engine.peers.values()].map((n) => n.info());
  }

  rib(q: RibQuery): RibEntry[] {
    const locRib = this.engine.locRib;
    let routes: { r: Route; best: boolean; multipath: boolean }[] = [];
    let prefixes: Prefix[] | null = null;
    if (q.prefix) {
      let p: Prefix;
      if (q.prefix.includes("/")) {
        try {
          p = parsePrefix(q.prefix);
        } catch (e) {
          invalid((e as Error).message);
        }
      } else {
        const a = parseAddr(q.prefix) ?? invalid(`invalid prefix or address "${q.prefix}"`);
        p = { afi: a.afi, len: a.addr.length * 8, addr: a.addr };
      }
      prefixes = locRib.lookup(p, q.match ?? (q.prefix.includes("/") ? "exact" : "longest"));
    }
    if (q.neighbor && (q.table === "in" || q.table === "out")) {
      const n = this.neighbor(q.neighbor);
      const src = q.table === "in" ? n.adjIn.routes() : (n.adjOut?.routes() ?? []);
      for (const r of src) routes.push({ r, best: false, multipath: false });
    } else {
      const keys = prefixes ? prefixes.map(prefixKey) : null;
      for (const e of keys ? keys.map((k) => locRib.get(k)).filter((x) => !!x) : locRib.entries()) {
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
        invalid((e as Error).message);
      }
      routes = routes.filter((x) => x.r.attrs.communities.includes(c));
    }
    if (q.asn !== undefined) routes = routes.filter((x) => (x.r.attrs.asPath ?? []).some((s) => s.asns.includes(q.asn!)));
    return routes.map((x) => routeEntry(x.r, x.best, x.multipath));
  }

  ribSummary(): RibSummary {
    const fam = new Map<string, { prefixes: number; paths: number }>();
    for (const e of this.engine.locRib.entries()) {
      const f = e.prefix.afi === 2 ? "ipv6-unicast" : "ipv4-unicast";
      const s = fam.get(f) ?? { prefixes: 0, paths: 0 };
      s.prefixes++;
      s.paths += e.routes.length;
      fam.set(f, s);
    }
    const peers: RibSummary["peers"] = [];
    for (const n of this.engine.peers.values()) {
      const i = n.info();
      peers.push({ address: i.address, family: "all", received: i.received, accepted: i.accepted, advertised: i.advertised });
    }
    return { families: [...fam].map(([family, s]) => ({ family, ...s })), peers };
  }

  fib(prefix?: string): FibEntry[] {
    const fib = this.engine.fib ?? conflict("kernel route programming is off (set kernel.enabled in the config)");
    try {
      return fib.status(prefix);
    } catch (e) {
      invalid((e as Error).message);
    }
  }

  interfaces(): Promise<InterfacesInfo> {
    return this.engine.interfaces();
  }

  monitor(fn: (e: MonitorEvent) => void, neighbor?: string): () => void {
    return this.engine.monitor(fn, neighbor);
  }

  // ------------------------------------------------------------ local routes
  advertise(r: AdvertiseRequest): { added: string[] } {
    const e = this.engine;
    const cfgs = r.prefixes.map((p) => ({
      prefix: prefixToString(parsePrefix(p)),
      communities: r.communities ?? [],
      largeCommunities: r.largeCommunities ?? [],
      ...(r.nextHop !== undefined ? { nextHop: r.nextHop } : {}),
      ...(r.localPref !== undefined ? { localPref: r.localPref } : {}),
      ...(r.med !== undefined ? { med: r.med } : {}),
      ...(r.asPathPrepend !== undefined ? { asPathPrepend: r.asPathPrepend } : {}),
    }));
    for (const c of cfgs) e.setLocal(c, "api");
    const added = cfgs.map((c) => c.prefix);
    e.log.info(`advertise ${added.join(" ")}`);
    return { added };
  }

  withdraw(prefixes: string[]): { removed: string[] } {
    const e = this.engine;
    const removed: string[] = [];
    for (const p of prefixes) {
      let text: string;
      try {
        text = prefixToString(parsePrefix(p));
      } catch (err) {
        invalid((err as Error).message);
      }
      if (e.removeLocal(text)) removed.push(text);
    }
    if (!removed.length) notFound(`not advertised: ${prefixes.join(" ")}`);
    e.log.info(`withdraw ${removed.join(" ")}`);
    return { removed };
  }

  // ------------------------------------------------------------ neighbours
  async peerAdd(r: PeerAddRequest): Promise<void> {
    const c = this.engine.config;
    let p;
    try {
      p = peerFromRequest(r, { asn: c.asn, policies: Object.keys(c.policies) });
    } catch (e) {
      if (e instanceof ConfigError) invalid(requestErrorText(e).split("\n").join("; "));
      throw e;
    }
    await this.reconf.addPeer(p);
  }

  peerDelete(address: string): Promise<void> {
    return this.reconf.deletePeer(address);
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

  // ------------------------------------------------------------ reconfiguration
  async reload(): Promise<{ changes: string[] }> {
    if (!this.configPath && !this.loadHook) conflict("no config file to reload");
    let next: RouterConfig;
    try {
      next = this.loadHook ? await this.loadHook() : loadConfig(this.configPath!);
    } catch (e) {
      this.log.error(`reload rejected, the running configuration stays in force:\n${(e as Error).message}`);
      invalid((e as Error).message);
    }
    try {
      return { changes: await this.reconf.apply(next) };
    } catch (e) {
      this.log.error(`reload rejected, the running configuration stays in force: ${(e as Error).message}`);
      throw e;
    }
  }

  /** Apply a configuration (a reload, or the Kubernetes controller's derived one) as a change of what runs. */
  apply(next: RouterConfig, what = "configuration reloaded"): Promise<string[]> {
    return this.reconf.apply(next, what);
  }
}
