/**
 * The watch-k8s runtime: keeps list/watch caches of Nodes, Services and
 * EndpointSlices, and after every change re-derives the router configuration
 * (lib/k8s/derive.ts) and applies it to the running router as a diff — peers
 * come and go without touching the other sessions, Service IPs are
 * originated and withdrawn — and reports what it derived (`bgpctl show k8s`).
 *
 * Nothing holds the event loop at any cluster size: each derivation runs in
 * time slices and remembers per object what it found (`DeriveCache`), the
 * router starts with the derived peers and then takes the advertisements
 * through the same sliced apply as every later change, and a burst of
 * changes is coalesced into one run (a 20 ms debounce, and at most one
 * more run queued behind the one in progress).
 *
 * A change costs what it touches: the watch caches' events since the last
 * derivation are kept (`DeriveChanges`, bounded: past 50,000 the next run is
 * a complete one), and Service and EndpointSlice changes, and Node changes
 * in nothing the derivation reads, are applied to the last derivation
 * (lib/k8s/derive-delta.ts) and handed to the router with the advertisements
 * they changed, which it applies alone. Anything else (this node, a Node's
 * address, a reload, a Secret) takes a complete derivation.
 *
 * Nothing is derived from a partial view: the router starts only when every
 * cache has completed its first full list and this node's Node object exists.
 * Problems found in objects (bad annotation values) are logged once each,
 * naming the object, and ignored.
 *
 * The VXLAN overlay to nodes on other subnets (lib/k8s/overlay.ts) follows
 * every derivation and reload: it gets the Nodes and `kubernetes.overlay`,
 * and hands the FIB its next-hop overrides; `stop({graceful: false})`
 * (`bgpctl shutdown`) removes it, a graceful stop keeps it.
 */
import { hostname } from "node:os";
import { sameValue } from "../config/diff.ts";
import type { RouterConfig, SecretRef } from "../config/types.ts";
import type { LinkKernel } from "../fib/types.ts";
import { RtNetlink } from "../../ffi/rtnetlink.ts";
import { RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR, RTNLGRP_LINK } from "../../ffi/rtmsg.ts";
import { Router } from "../router/router.ts";
import type { Log } from "../core/log.ts";
import { KubeClient } from "./client.ts";
import { runSliced } from "../core/slices.ts";
import { DeriveCache, type DeriveInput, type Derived, derive, deriveSliced, svcName } from "./derive.ts";
import { type DeltaResult, type DeriveChanges, deriveDeltaSteps, noChanges } from "./derive-delta.ts";
import { type KubeConnection, resolveConnection } from "./kubeconfig.ts";
import { Overlay, type OverlaySettings, initialOverrides, overlayNode } from "./overlay.ts";
import { Reflector, type ReflectorEvent } from "./reflector.ts";
import { sameObject, trimNode, trimService, trimSlice } from "./trim.ts";
import type { EndpointSlice, K8sProblem, K8sStatus, Node, Secret, Service } from "./types.ts";

export interface ControllerOptions {
  /** The file's configuration (with its kubernetes section). */
  base: RouterConfig;
  /** Re-read the file (SIGHUP / `bgpctl reload`); throws ConfigError on a bad file. */
  reloadBase: () => RouterConfig;
  configPath: string;
  /** --node-name (wins over the config's kubernetes.nodeName, NODE_NAME and the hostname). */
  nodeName?: string;
  /** --kubeconfig (wins over the config's kubernetes.kubeconfig). */
  kubeconfig?: string;
  log: Log;
  /** Environment (tests); default process.env. */
  env?: Record<string, string | undefined>;
  /** Called once the router runs (to start the control socket etc. before sessions). */
  beforeStart?: (router: Router) => Promise<void>;
  /** Opens the overlay's kernel interface (default rtnetlink with events); tests pass a fake. */
  openLinkKernel?: () => Promise<LinkKernel>;
}

/** Node name: flag, config, NODE_NAME (downward API), hostname. */
export function resolveNodeName(flag: string | undefined, base: RouterConfig, env: Record<string, string | undefined>): string {
  const n = flag ?? base.kubernetes?.nodeName ?? env.NODE_NAME ?? hostname();
  return n.trim();
}

/** What watch-k8s lists and watches (RBAC: get, list, watch on each). */
export const RESOURCES = {
  nodes: { name: "nodes", path: "/api/v1/nodes", kind: "Node" },
  services: { name: "services", path: "/api/v1/services", kind: "Service" },
  endpointslices: { name: "endpointslices", path: "/apis/discovery.k8s.io/v1/endpointslices", kind: "EndpointSlice" },
} as const;

/** Events kept between two derivations; past this many, the next one is a complete run. */
const MAX_CHANGES = 50_000;
/** A batch of more events than this (a relist's) is not kept, event by event: the next run is a complete one. */
const MAX_BATCH = 2_000;

export class KubeController {
  readonly nodeName: string;
  readonly connection: KubeConnection;
  private readonly client: KubeClient;
  private readonly nodes: Reflector<Node>;
  private readonly services: Reflector<Service>;
  private readonly slices: Reflector<EndpointSlice>;
  private base: RouterConfig;
  private router: Router | null = null;
  private last: Derived | null = null;
  private readonly cache = new DeriveCache();
  /** The watch caches' events since the last derivation's snapshot; null past MAX_CHANGES (the next run is a complete one). */
  private changes: DeriveChanges | null = noChanges();
  /** The derivation in progress (see exclusive). */
  private deriving: Promise<unknown> = Promise.resolve();
  /** Derivations run: complete and delta (show k8s, metrics). */
  private readonly derivations = { complete: 0, delta: 0 };
  /** Events are kept from the first snapshot on. */
  private recording = false;
  /** The next reconcile hands the overlay the Nodes and settings: a Node came, went or changed what the overlay reads, or a reload. */
  private overlayDue = false;
  private readonly secrets = new Map<string, string>();
  private readonly secretFetchedAt = new Map<string, number>();
  private readonly problemsLogged = new Set<string>();
  private readonly log: Log;
  private stopped = false;
  private pending = false;
  private running: Promise<void> | null = null;
  private debounce: ReturnType<typeof setTimeout> | null = null;
  private wake: (() => void) | null = null;
  private unsubscribers: (() => void)[] = [];
  /** Why the last apply was refused (needs a restart), shown in show k8s problems. */
  private applyProblem: K8sProblem | null = null;
  /** The VXLAN overlay and its kernel handle, made on first use (kernel routes on). */
  private overlay: { overlay: Overlay; kernel: LinkKernel } | null = null;
  private overlayOpening: Promise<Overlay | null> | null = null;

  constructor(private readonly opts: ControllerOptions) {
    this.log = opts.log;
    this.base = opts.base;
    const env = opts.env ?? process.env;
    this.nodeName = resolveNodeName(opts.nodeName, opts.base, env);
    this.connection = resolveConnection({ kubeconfig: opts.kubeconfig ?? opts.base.kubernetes?.kubeconfig, env });
    const klog = (level: "debug" | "info" | "warn" | "error", msg: string) => this.log.at(level, `kubernetes: ${msg}`);
    this.client = new KubeClient(this.connection, { log: klog, userAgent: "bgpctl" });
    const api = opts.base.kubernetes!.api;
    const ropts = { pageSize: api.pageSize, watchTimeoutSeconds: api.watchTimeoutSeconds, log: klog };
    // Only what the derivation reads is kept (lib/k8s/trim.ts); an update of nothing else is no change.
    this.nodes = new Reflector<Node>(this.client, RESOURCES.nodes, { ...ropts, transform: (o) => trimNode(o as Node), same: sameObject });
    this.services = new Reflector<Service>(this.client, RESOURCES.services, { ...ropts, transform: (o) => trimService(o as Service), same: sameObject });
    this.slices = new Reflector<EndpointSlice>(this.client, RESOURCES.endpointslices, { ...ropts, transform: (o) => trimSlice(o as EndpointSlice), same: sameObject });
  }

  /** The running router (null until the first complete derivation). */
  get current(): Router | null {
    return this.router;
  }

  /**
   * Start the caches, wait (as long as it takes, logging why) until they are
   * synced and this node's Node object exists, then start the router with the
   * derived configuration. Resolves once the router runs; rejects only when
   * the router cannot start (e.g. the BGP port is taken) or on stop().
   */
  async start(): Promise<Router> {
    this.log.info(`kubernetes: API server ${this.connection.server} (${this.connection.source}), node ${this.nodeName}`);
    this.unsubscribers.push(
      this.nodes.subscribe((evs) =>
        this.record(evs, (c, ev) => {
          c.nodes.set(ev.object.metadata.name, ev.type === "deleted" ? null : ev.object);
          if (ev.type !== "modified" || !sameValue(overlayNode(ev.old), overlayNode(ev.object))) this.overlayDue = true;
        }),
      ),
      this.services.subscribe((evs) => this.record(evs, (c, ev) => c.services.add(svcName(ev.object)))),
      this.slices.subscribe((evs) =>
        this.record(evs, (c, ev) => c.slices.push({ old: ev.type === "added" ? null : ev.type === "modified" ? ev.old : ev.object, now: ev.type === "deleted" ? null : ev.object })),
      ),
    );
    for (const r of [this.nodes, this.services, this.slices]) r.start();
    const startedAt = Date.now();
    let lastWaitLog = 0;
    for (;;) {
      if (this.stopped) throw new Error("stopped before the router started");
      if (this.synced()) {
        const d = await this.exclusive(() => this.deriveNow());
        if (d.config) {
          this.last = d;
          this.logProblems(d.status.problems);
          // The overlay first: its device and entries are in place when the first routes come.
          await this.syncOverlay(d.config.kernel.enabled);
          // Started without the advertisements (the engine would originate them in one go); they follow as a sliced apply.
          const router = new Router({ ...d.config, advertise: [] }, this.opts.configPath, this.log, { load: () => this.reloadConfig(), k8s: () => this.status() });
          if (this.opts.beforeStart) await this.opts.beforeStart(router);
          await router.start();
          this.router = router;
          this.primeOverlay(router);
          if (d.config.advertise.length) await this.applyDerived(router, d.config);
          await this.syncOverlay(d.config.kernel.enabled);
          this.log.info(
            `kubernetes: node ${this.nodeName}: AS ${d.config.asn}, router id ${d.config.routerId}, role ${d.status.role}, ${d.status.peers.length} peers, ${d.status.originated.length} originated prefixes`,
          );
          // Changes that arrived while starting.
          this.changed();
          return router;
        }
        if (Date.now() - lastWaitLog > 30_000) {
          lastWaitLog = Date.now();
          this.logProblems(d.status.problems, true);
          this.log.warn(`kubernetes: waiting for Node ${this.nodeName} to exist and have an address`);
        }
      } else if (Date.now() - lastWaitLog > 30_000 && Date.now() - startedAt > 5_000) {
        lastWaitLog = Date.now();
        const waiting = this.resourceStatus().filter((r) => !r.synced);
        this.log.warn(`kubernetes: waiting for the first list of ${waiting.map((r) => `${r.resource}${r.lastError ? ` (${r.lastError})` : ""}`).join(", ")}`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /**
   * Stop watching. `graceful: false` (`bgpctl shutdown`) also removes the
   * overlay device (with its neighbour and FDB entries); a graceful stop
   * (the default: SIGTERM, a restart) leaves it, like the kernel routes.
   */
  async stop(opts: { graceful?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.wake?.();
    if (this.debounce) clearTimeout(this.debounce);
    for (const u of this.unsubscribers) u();
    await Promise.all([this.nodes.stop(), this.services.stop(), this.slices.stop()]);
    if (this.running) await this.running.catch(() => {});
    if (this.overlayOpening) await this.overlayOpening;
    const o = this.overlay;
    this.overlay = null;
    if (o) {
      try {
        await o.overlay.stop({ remove: opts.graceful === false });
      } finally {
        o.kernel.close();
      }
    }
  }

  /** Readiness: caches synced and the router running. */
  ready(): { ready: boolean; reason: string } {
    if (!this.synced()) return { ready: false, reason: `waiting for the first list of ${this.resourceStatus().filter((r) => !r.synced).map((r) => r.resource).join(", ")}` };
    if (!this.router) return { ready: false, reason: `waiting for Node ${this.nodeName}` };
    return { ready: true, reason: `node ${this.nodeName}: caches synced, router running` };
  }

  status(): K8sStatus {
    const resources = this.resourceStatus();
    const synced = resources.every((r) => r.synced);
    // Before the first complete derivation: what the caches hold so far.
    const s = this.last?.status ?? derive(this.input()).status;
    const problems = [...s.problems];
    if (this.applyProblem) problems.push(this.applyProblem);
    const overlay = this.overlay?.overlay.status();
    return { ...s, synced, problems, resources, derivations: { ...this.derivations }, ...(overlay ? { overlay } : {}) };
  }

  private synced(): boolean {
    return this.nodes.synced && this.services.synced && this.slices.synced;
  }

  private resourceStatus(): K8sStatus["resources"] {
    return [this.nodes.status(), this.services.status(), this.slices.status()];
  }

  /** Keep a batch of watch events for the next derivation, then re-derive soon. */
  private record<T>(events: ReflectorEvent<T>[], add: (c: DeriveChanges, ev: ReflectorEvent<T>) => void): void {
    const c = this.changes;
    // Before the first snapshot nothing is kept (that snapshot holds it all); a batch of a (re)list too big to keep is a complete run, decided without walking it.
    if (this.recording && c !== null) {
      if (events.length > MAX_BATCH) {
        this.changes = null;
        this.overlayDue = true;
      } else {
        for (const ev of events) add(c, ev);
        if (c.nodes.size + c.services.size + c.slices.length > MAX_CHANGES) this.changes = null;
      }
    }
    this.changed();
  }

  /** A cache changed: re-derive soon (changes arriving together are applied together). */
  private changed(): void {
    if (this.stopped) return;
    if (!this.router) {
      this.wake?.();
      return;
    }
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.kick();
    }, 20);
  }

  /** Run one reconcile at a time; a change during a run schedules one more. */
  private kick(): void {
    if (this.running) {
      this.pending = true;
      return;
    }
    this.running = this.reconcile()
      .catch((e) => this.log.error(`kubernetes: reconcile failed: ${(e as Error).message}`))
      .finally(() => {
        this.running = null;
        if (this.pending && !this.stopped) {
          this.pending = false;
          this.kick();
        }
      });
  }

  private async reconcile(): Promise<void> {
    const router = this.router;
    if (!router || this.stopped) return;
    const { d, delta } = await this.deriveNext();
    if (d.status.problems !== this.last?.status.problems) this.logProblems(d.status.problems);
    if (!d.config) {
      // Our Node vanished or lost its address: keep what runs (withdrawing
      // everything on a transient API glitch would hurt more), and say so.
      this.last = { ...d, config: this.last?.config ?? null };
      this.log.error(`kubernetes: ${d.status.problems.map((p) => `${p.object}: ${p.message}`).join("; ") || `Node ${this.nodeName} unusable`}; keeping the running configuration`);
      return;
    }
    this.last = d;
    // Only what the overlay reads of Nodes, and its settings, move it (a delta with none of those leaves it).
    const overlay = this.overlayDue || delta === null;
    this.overlayDue = false;
    // The overlay's overrides for new Nodes go to the FIB before their sessions can bring routes.
    const settings = overlay ? this.overlaySettings() : null;
    const n = settings ? this.overlayNodes() : null;
    if (n && settings) this.overlay?.overlay.preview(settings, n.me, n.nodes);
    // Nothing changed and it runs already (a Node's heartbeat): nothing to apply.
    if (!(delta !== null && delta.derived.config === router.engine.config)) await this.applyDerived(router, d.config, delta ?? undefined);
    if (overlay) await this.syncOverlay(d.config.kernel.enabled);
  }

  /** The next derivation: the changes since the last one applied to it when they can be, else a complete run. */
  private deriveNext(): Promise<{ d: Derived; delta: DeltaResult | null }> {
    return this.exclusive(() => this.deriveNextNow());
  }

  private async deriveNextNow(): Promise<{ d: Derived; delta: DeltaResult | null }> {
    const changes = this.changes;
    this.changes = noChanges();
    if (changes !== null) {
      const services = this.services;
      const serviceOf = (key: string) => services.get(key) ?? (key.startsWith("/") ? services.get(key.slice(1)) : undefined);
      const r = await runSliced(deriveDeltaSteps(this.base, this.nodeName, changes, serviceOf, this.cache));
      // A Secret due to be read again and changed: a complete run (the peers' passwords).
      if (r !== null && !(await this.fetchSecrets(r.derived.secretRefs))) {
        this.derivations.delta++;
        return { d: r.derived, delta: r };
      }
    }
    return { d: await this.deriveNow(), delta: null };
  }

  /**
   * `kubernetes.overlay`, or null when the overlay has nothing to do: without
   * the node mesh no route has a node's address as next hop (mesh switched
   * off by a reload: mode none, which removes the device).
   */
  private overlaySettings(): OverlaySettings | null {
    const kube = this.base.kubernetes!;
    if (kube.mesh) return kube.overlay;
    return this.overlay ? { ...kube.overlay, mode: "none" } : null;
  }

  /** This node and every Node as the overlay sees them; null while our Node is missing. */
  private overlayNodes(): { me: ReturnType<typeof overlayNode>; nodes: ReturnType<typeof overlayNode>[] } | null {
    const nodes = this.nodes.items().map(overlayNode);
    const me = nodes.find((n) => n.name === this.nodeName);
    return me ? { me, nodes } : null;
  }

  /**
   * Right after the router (and its FIB) started, before any route: the
   * overlay's override table (its device was set up before the router
   * started), or, when it has none yet, one from the FIB's view of links and
   * addresses that refuses what needs the overlay.
   */
  private primeOverlay(router: Router): void {
    const fib = router.engine.fib;
    const n = this.overlayNodes();
    const settings = this.overlaySettings();
    if (!fib || !n || !settings) return;
    const ready = this.overlay?.overlay.overrides();
    if (ready) return fib.setNextHopOverrides(ready);
    const { links, addresses } = fib.interfaces();
    fib.setNextHopOverrides(initialOverrides({ settings, me: n.me, nodes: n.nodes, links, addresses }));
  }

  /** The overlay, made (and its kernel handle opened) on first use; null when kernel routes are off or the handle cannot be opened. Its overrides go to the running router's FIB (none before the router runs: `primeOverlay` hands them over then). */
  private ensureOverlay(kernelRoutes: boolean): Promise<Overlay | null> {
    if (this.overlay) return Promise.resolve(this.overlay.overlay);
    if (this.overlayOpening) return this.overlayOpening;
    if (!kernelRoutes) return Promise.resolve(null);
    // Link and address events only, with a small buffer: route events are the FIB's.
    const events = [RTNLGRP_LINK, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR];
    const open = this.opts.openLinkKernel ?? (() => RtNetlink.open({ groups: true, eventGroups: events, rcvbuf: 1 << 20 }));
    this.overlayOpening = open().then(
      (kernel) => {
        this.overlayOpening = null;
        if (this.stopped) {
          kernel.close();
          return null;
        }
        const overlay = new Overlay({
          kernel,
          setOverrides: (t) => this.router?.engine.fib?.setNextHopOverrides(t),
          log: (level, msg) => this.log.at(level, msg),
        });
        this.overlay = { overlay, kernel };
        return overlay;
      },
      (e) => {
        this.overlayOpening = null;
        this.log.error(`overlay: cannot open rtnetlink: ${(e as Error).message}`);
        return null;
      },
    );
    return this.overlayOpening;
  }

  /** Hand the overlay the current Nodes and settings and wait for its reconcile (nothing without kernel routes). */
  private async syncOverlay(kernelRoutes: boolean): Promise<void> {
    if (this.stopped || !this.overlaySettings()) return;
    const n = this.overlayNodes();
    if (!n) return;
    const overlay = await this.ensureOverlay(kernelRoutes);
    const settings = this.overlaySettings();
    if (!overlay || this.stopped || !settings) return;
    await overlay.update(settings, n.me, n.nodes);
  }

  /** Hand a derived configuration to the router; a refusal (needs a restart) is logged once and shown as a problem. */
  private async applyDerived(router: Router, config: RouterConfig, delta?: DeltaResult): Promise<void> {
    try {
      await router.apply(config, "kubernetes", delta);
      this.applyProblem = null;
    } catch (e) {
      const msg = (e as Error).message;
      const p = { object: `Node/${this.nodeName}`, message: `not applied: ${msg}` };
      if (this.applyProblem?.message !== p.message) this.log.error(`kubernetes: Node/${this.nodeName}: ${p.message}`);
      this.applyProblem = p;
    }
  }

  /** SIGHUP / `bgpctl reload`: re-read the file, derive again, hand the result to Router.apply. */
  private async reloadConfig(): Promise<RouterConfig> {
    const base = this.opts.reloadBase();
    if (!base.kubernetes) throw new Error(`${this.opts.configPath}: the kubernetes: section is gone; watch-k8s needs it`);
    this.base = base;
    const d = await this.exclusive(() => this.deriveNow());
    if (!d.config) throw new Error(d.status.problems.map((p) => `${p.object}: ${p.message}`).join("; ") || `Node ${this.nodeName} unusable`);
    this.last = d;
    // The overlay follows the reloaded settings once the router has applied them (the next reconcile).
    this.overlayDue = true;
    this.changed();
    return d.config;
  }

  /**
   * Run one derivation at a time: a reload's and a reconcile's would otherwise
   * interleave their slices over the one cache (a delta patches the last
   * run's lists in place).
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.deriving.then(fn, fn);
    this.deriving = run.catch(() => undefined);
    return run;
  }

  /** A complete derivation from the caches; fetch Secrets the result refers to and derive again when one was new. */
  private async deriveNow(): Promise<Derived> {
    let d = await deriveSliced(this.snapshot(), this.cache);
    this.derivations.complete++;
    if (await this.fetchSecrets(d.secretRefs)) {
      d = await deriveSliced(this.snapshot(), this.cache);
      this.derivations.complete++;
    }
    return d;
  }

  /** The caches' objects for a complete run: every event so far is in them, so the change log starts afresh. */
  private snapshot(): DeriveInput {
    this.changes = noChanges();
    this.recording = true;
    return this.input();
  }

  private input(): DeriveInput {
    return {
      nodeName: this.nodeName,
      nodes: this.nodes.items(),
      services: this.services.items(),
      slices: this.slices.items(),
      base: this.base,
      secrets: this.secrets,
    };
  }

  /** GET each referenced Secret not fetched in the last 5 minutes; true when a value changed. */
  private async fetchSecrets(refs: SecretRef[]): Promise<boolean> {
    let changed = false;
    for (const ref of refs) {
      const id = `${ref.namespace}/${ref.name}/${ref.key}`;
      const at = this.secretFetchedAt.get(id) ?? 0;
      if (Date.now() - at < (this.secrets.has(id) ? 300_000 : 30_000)) continue;
      this.secretFetchedAt.set(id, Date.now());
      try {
        const s = await this.client.get<Secret>(`/api/v1/namespaces/${encodeURIComponent(ref.namespace)}/secrets/${encodeURIComponent(ref.name)}`);
        const raw = s.data?.[ref.key];
        const value = raw !== undefined ? Buffer.from(raw, "base64").toString("utf8").replace(/\r?\n$/, "") : s.stringData?.[ref.key];
        if (value === undefined) {
          this.log.warn(`kubernetes: Secret/${ref.namespace}/${ref.name} has no key "${ref.key}"`);
          continue;
        }
        if (this.secrets.get(id) !== value) {
          this.secrets.set(id, value);
          changed = true;
        }
      } catch (e) {
        this.log.warn(`kubernetes: cannot read Secret/${ref.namespace}/${ref.name}: ${(e as Error).message}`);
      }
    }
    return changed;
  }

  /** Log each problem once (until it goes away and comes back). */
  private logProblems(problems: K8sProblem[], force = false): void {
    const now = new Set<string>();
    for (const p of problems) {
      const line = `${p.object}: ${p.field ? `${p.field}: ` : ""}${p.message}`;
      now.add(line);
      if (force || !this.problemsLogged.has(line)) this.log.warn(`kubernetes: ${line}`);
    }
    this.problemsLogged.clear();
    for (const l of now) this.problemsLogged.add(l);
  }
}
