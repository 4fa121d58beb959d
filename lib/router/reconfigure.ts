/**
 * Changing what the daemon runs: a reload (SIGHUP, `bgpctl reload`, the
 * Kubernetes controller) and the control API's `peer add` / `peer delete`.
 *
 * Every change is diffed against the running state (the engine's neighbours
 * and local routes), never against a remembered copy of the last file, and is
 * done in two phases: `prepare` builds everything that can fail (policies,
 * neighbours, a new listener) without touching what runs, and only when all
 * of it succeeded `commit` swaps it in. A failed reload leaves the daemon
 * exactly as it was. Operations run one at a time.
 *
 * Size: a Kubernetes node originates tens of thousands of prefixes, so the
 * walks over advertisements and local routes run in slices of the shared
 * slicer (`sliced`: timers and I/O run between them). When no local
 * route was written since the last commit (LocalRoutes counts its writes),
 * an advertisement object that commit applied is known to run unchanged
 * without a lookup; otherwise one whose local route is still the one an
 * apply made needs no comparison (the Kubernetes controller hands over the
 * same objects for what did not change). Between the slices of `prepare`
 * the control API may change local routes; `commit` checks again what it
 * relies on (the file's version wins, as a reload's does).
 *
 * Ownership (GoBGP's precedent): a neighbour or a local route added through
 * the control API belongs to the API, and a reload leaves it alone; once the
 * file lists the same peer address or prefix, the file owns it from then on
 * (its settings are applied as a change, in place where possible). A reload
 * makes everything the file lists match the file, so a configured peer
 * deleted at run time comes back with the next reload.
 */
import { chainNames, diffPeer, diffSettings, sameValue } from "../config/diff.ts";
import type { AdvertiseConfig, HealthCheckConfig, PeerConfig, RouterConfig } from "../config/types.ts";
import { CEASE_SUB } from "../bgp/types.ts";
import { sliced } from "../core/slices.ts";
import { StringMap } from "../core/sharded-maps.ts";
import { Listener } from "../bgp/listener.ts";
import { type CompiledPolicies, compilePolicies } from "../rib/policy.ts";
import type { RouteEngine } from "./engine.ts";
import { conflict, invalid, notFound } from "./errors.ts";
import type { LocalRoute } from "./local-routes.ts";
import { applyMrtDump } from "./mrt-dump.ts";
import type { MetricsChange, MetricsEndpoint } from "../metrics/server.ts";
import type { Neighbor } from "./neighbor.ts";

/** Top-level settings only a restart of bgpctl can change. */
const RESTART_FIELDS = ["asn", "routerId", "kernel", "controlSocket", "health"] as const;

/**
 * What a derived configuration knows of its own advertisements against the
 * one it was derived after (the Kubernetes controller's deltas,
 * lib/k8s/derive-delta.ts): only `set` are new or changed, only `remove` are
 * gone, and `drop` are `from`'s objects no longer listed. While `from` is what
 * runs and no one else wrote a local route since, prepare looks at just those.
 */
export interface AdvertiseDelta {
  from: RouterConfig;
  set: readonly AdvertiseConfig[];
  remove: readonly string[];
  drop: readonly AdvertiseConfig[];
}

interface PeerStep {
  n: Neighbor;
  after: PeerConfig;
  fields: string[];
  reimport: boolean;
  reexport: boolean;
}

/** Everything a reload will do, built without touching the running state. */
interface Plan {
  next: RouterConfig;
  policies: CompiledPolicies;
  /** A new listener, already bound, when `listen` changed. */
  listener: Listener | null;
  /** The metrics endpoint started, moved (already bound) or stopped, when `metrics` changed. */
  metrics: MetricsChange | null;
  remove: Neighbor[];
  replace: { old: Neighbor; fresh: Neighbor; fields: string[] }[];
  inPlace: PeerStep[];
  /** Neighbours the file now owns with nothing to change. */
  adopt: Neighbor[];
  add: Neighbor[];
  setLocal: AdvertiseConfig[];
  /** Advertisements the running state already has (as an API route with the same settings: the file takes it over). */
  adoptLocal: AdvertiseConfig[];
  removeLocal: string[];
  /** Advertisements of prefixes a health check of `next` owns (possible only in a derived configuration: a file that does it is refused): the check decides, these are left out. */
  underCheck: { prefix: string; check: string }[];
  policiesChanged: Set<string>;
  globalChanged: string[];
  /** Made from an AdvertiseDelta: only its advertisements were looked at. */
  delta: AdvertiseDelta | null;
}

export class Reconfigurer {
  private queue: Promise<unknown> = Promise.resolve();
  /** The local route each applied advertisement object made (or was found equal to): while that route runs, the object needs no comparison. */
  private applied = new WeakMap<AdvertiseConfig, LocalRoute>();
  /** Prefix → number of the last prepare whose configuration lists it: a lasting table (a Set built every reload would rehash in one go as it grows). */
  private listed = new StringMap<number>();
  private prepares = 0;
  /** Commits made; each stamps the advertisement objects it applied with its number. */
  private commits = 0;
  private stamp = new WeakMap<AdvertiseConfig, number>();
  /** The local routes' version when the last commit ended with no other writer in between (-1: none did). */
  private cleanVersion = -1;
  /** Prefixes reported as left out for a health check (reported once while it lasts). */
  private readonly underCheckLogged = new Set<string>();

  /** The Prometheus endpoint the daemon serves (set by `bgpctl run` / `watch-k8s`): a reload starts, moves or stops it, touching nothing else. */
  metrics: MetricsEndpoint | null = null;
  /** The health checks (set by the Router): a reload adds, removes and changes checks, before the file's local routes (a prefix may move between them). */
  health: { apply(list: readonly HealthCheckConfig[]): string[] } | null = null;

  constructor(private readonly e: RouteEngine) {}

  /** Run `fn` after every earlier reconfiguration finished (success or not). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Apply a new configuration; resolves with the changes made, rejects (changing nothing) when it cannot be applied. */
  apply(next: RouterConfig, what = "configuration reloaded", delta?: AdvertiseDelta): Promise<string[]> {
    return this.serial(async () => {
      const plan = await this.prepare(next, delta);
      const changes = await this.commit(plan);
      if (changes.length || what === "configuration reloaded") this.e.log.info(`${what}: ${changes.length ? changesText(changes) : "no changes"}`);
      return changes;
    });
  }

  /** Add a neighbour from the control API (owned by the API). */
  addPeer(p: PeerConfig): Promise<void> {
    return this.serial(async () => {
      if (this.e.find(p.address)) conflict(`neighbor ${p.address} exists`);
      for (const name of [...chainNames(p.import), ...chainNames(p.export)]) {
        if (!this.e.config.policies[name]) invalid(`policy "${name}" is not defined`);
      }
      this.e.attach(this.e.createNeighbor(p, "api"));
      this.e.log.info(`neighbor ${p.address} added`);
    });
  }

  /** Delete a neighbour (whoever added it); resolves once its session is closed. */
  deletePeer(address: string): Promise<void> {
    return this.serial(async () => {
      const n = this.e.find(address) ?? notFound(`no neighbor ${address}`);
      await this.e.detach(n, CEASE_SUB.PEER_DECONFIGURED, "peer deleted");
      this.e.log.info(`neighbor ${n.config.address} deleted${n.owner === "config" ? " (it is in the config file: the next reload brings it back)" : ""}`);
    });
  }

  // ------------------------------------------------------------------ prepare

  private async prepare(next: RouterConfig, delta?: AdvertiseDelta): Promise<Plan> {
    const e = this.e;
    const restart = RESTART_FIELDS.filter((k) => !sameValue(e.config[k], next[k]));
    if (restart.length) conflict(`changing ${restart.join(", ")} needs a restart of bgpctl`);
    let policies: CompiledPolicies;
    try {
      policies = compilePolicies(next.policies, next.prefixLists);
    } catch (err) {
      invalid((err as Error).message);
    }
    const d = diffSettings(e.config, next);
    const plan: Plan = {
      next,
      policies,
      listener: null,
      metrics: null,
      remove: [],
      replace: [],
      inPlace: [],
      adopt: [],
      add: [],
      setLocal: [],
      adoptLocal: [],
      removeLocal: [],
      underCheck: [],
      policiesChanged: new Set(d.policiesChanged),
      globalChanged: d.globalChanged.filter((k) => !(RESTART_FIELDS as readonly string[]).includes(k)),
      delta: null,
    };

    // Peers: the file's list against the running neighbours.
    const wanted = new Map(next.peers.map((p) => [p.address, p]));
    for (const n of e.peers.values()) {
      const want = wanted.get(n.config.address);
      if (!want) {
        if (n.owner === "config") plan.remove.push(n);
        continue;
      }
      wanted.delete(n.config.address);
      const c = diffPeer(n.config, want);
      if (c.needsReset) plan.replace.push({ old: n, fresh: e.createNeighbor(want, "config"), fields: c.fields });
      else if (c.fields.length) plan.inPlace.push({ n, after: want, fields: c.fields, reimport: c.reimport, reexport: c.reexport });
      else if (n.owner !== "config") plan.adopt.push(n);
    }
    for (const p of wanted.values()) plan.add.push(e.createNeighbor(p, "config"));

    // Local routes: the file's advertisements against what is originated.
    const run = ++this.prepares;
    // Nothing wrote a local route since the last commit: an object it applied is still exactly what runs.
    const quiet = e.localRoutes.version === this.cleanVersion;
    const lastCommit = this.commits;
    const checked = new Map<string, string>();
    for (const h of next.healthChecks ?? []) for (const p of h.prefixes) checked.set(p, h.name);
    const visit = (a: AdvertiseConfig) => {
      const check = checked.get(a.prefix);
      if (check !== undefined) {
        plan.underCheck.push({ prefix: a.prefix, check });
        return;
      }
      this.listed.set(a.prefix, run);
      if (quiet && this.stamp.get(a) === lastCommit) return;
      const cur = e.localRoutes.get(a.prefix);
      if (cur !== undefined && this.applied.get(a) === cur && cur.owner === "config") return;
      if (!cur || !cur.matches(a)) plan.setLocal.push(a);
      else if (cur.owner !== "config") plan.adoptLocal.push(a);
      else this.applied.set(a, cur);
    };
    if (delta !== undefined && delta.from === e.config && quiet) {
      // Everything else is what runs: the delta's advertisements alone.
      plan.delta = delta;
      await sliced(delta.set, visit);
      await sliced(delta.remove, (prefix) => {
        this.listed.delete(prefix);
        if (e.localRoutes.get(prefix)?.owner === "config") plan.removeLocal.push(prefix);
      });
    } else {
      await sliced(next.advertise, visit);
      // Only the last applied configuration's prefixes can be owned by the file
      // (every reload sets each of its prefixes as the file's), so only those
      // are looked at, not every originated prefix.
      await sliced(e.config.advertise, (a) => {
        if (this.listed.get(a.prefix) === run) return;
        this.listed.delete(a.prefix);
        if (e.localRoutes.get(a.prefix)?.owner === "config") plan.removeLocal.push(a.prefix);
      });
    }

    // Last, the steps with an outside effect: bind the new metrics address, then
    // the new listen addresses. The old ones are closed first (the new ones may
    // reuse their ports) and rebound if a new one fails, so a failed reload
    // keeps listening as before.
    if (this.metrics) plan.metrics = await this.metrics.prepare(next.metrics);
    if (plan.globalChanged.includes("listen")) {
      try {
        plan.listener = await this.swapListener(next);
      } catch (err) {
        await plan.metrics?.abort();
        throw err;
      }
    }
    return plan;
  }

  private async swapListener(next: RouterConfig): Promise<Listener> {
    const e = this.e;
    const old = e.listener;
    const sessions = old.sessions;
    // What is bound now, with the real ports (a configured port 0 got one from the kernel).
    const was = old.endpoints.map((b) => ({ address: b.address, port: b.port }));
    await old.close();
    const fresh = new Listener(sessions);
    e.listenerLogs(fresh);
    try {
      await fresh.listen(next.listen);
      return fresh;
    } catch (err) {
      const back = new Listener(sessions);
      e.listenerLogs(back);
      try {
        await back.listen(was);
      } catch (err2) {
        e.log.error(`reload: cannot listen on the old addresses again: ${(err2 as Error).message}`);
      }
      e.listener = back;
      invalid(`cannot listen on ${next.listen.map((l) => `[${l.address}]:${l.port}`).join(", ")}: ${(err as Error).message}`);
    }
  }

  // ------------------------------------------------------------------ commit

  private async commit(p: Plan): Promise<string[]> {
    const e = this.e;
    const changes: string[] = [];
    e.config = p.next;
    e.policies = p.policies;
    if (p.listener) {
      e.listener = p.listener;
      changes.push("listen addresses changed");
    }
    if (p.metrics) {
      p.metrics.commit();
      changes.push(p.metrics.what);
    }
    if (p.globalChanged.includes("log")) {
      e.log.level = p.next.log.level;
      e.log.format = p.next.log.format;
      changes.push("log settings changed");
    }
    if (p.globalChanged.includes("decision") || p.globalChanged.includes("multipath")) {
      await e.locRib.setOptionsSliced({ alwaysCompareMed: p.next.decision.alwaysCompareMed, preferOldest: p.next.decision.preferOldest, multipath: p.next.multipath });
      changes.push("decision options changed");
    }
    if (p.globalChanged.includes("mrai")) changes.push(`mrai ${p.next.mrai}s`);
    if (p.globalChanged.includes("mrtDump")) {
      const what = await applyMrtDump(e, p.next.mrtDump);
      if (what) changes.push(what);
    }

    for (const n of p.remove) {
      await e.detach(n, CEASE_SUB.PEER_DECONFIGURED, "removed from the configuration");
      changes.push(`neighbor ${n.config.address} removed`);
    }
    for (const r of p.replace) {
      await e.detach(r.old, CEASE_SUB.OTHER_CONFIG_CHANGE, `configuration changed: ${r.fields.join(", ")}`);
      e.attach(r.fresh);
      changes.push(`neighbor ${r.fresh.config.address} reset (${r.fields.join(", ")})`);
    }
    let rrChanged = false;
    const reimport = new Set<Neighbor>();
    const reexport = new Set<Neighbor>();
    for (const s of p.inPlace) {
      const wasDown = s.n.config.shutdown;
      s.n.owner = "config";
      s.n.updateConfig(s.after);
      if (s.fields.includes("routeReflectorClient")) rrChanged = true;
      if (s.reimport) reimport.add(s.n);
      if (s.reexport) reexport.add(s.n);
      if (s.fields.includes("shutdown") && s.after.shutdown !== wasDown) {
        s.n.adminDown = s.after.shutdown;
        if (s.after.shutdown) await s.n.stop(CEASE_SUB.ADMIN_SHUTDOWN, s.after.shutdownMessage);
        else s.n.start();
      }
      changes.push(`neighbor ${s.n.config.address} updated in place (${s.fields.join(", ")})`);
    }
    for (const n of p.adopt) {
      n.owner = "config";
      changes.push(`neighbor ${n.config.address} is now managed by the config file`);
    }
    for (const n of p.add) {
      e.attach(n);
      changes.push(`neighbor ${n.config.address} added`);
    }

    // Policies whose definition changed: re-run them where they are used.
    if (p.policiesChanged.size) {
      for (const n of e.peers.values()) {
        if (chainNames(n.config.import).some((x) => p.policiesChanged.has(x))) reimport.add(n);
        if (chainNames(n.config.export).some((x) => p.policiesChanged.has(x))) reexport.add(n);
      }
    }
    // Which routes are reflected to whom depends on every peer's client flag.
    if (rrChanged || p.globalChanged.includes("clusterId")) {
      for (const n of e.peers.values()) reexport.add(n);
      changes.push("route reflection re-evaluated");
    }
    // Soft reconfiguration from the stored Adj-RIB-In (it holds every received
    // route, before policy), so the peer is not asked to send anything again.
    for (const n of reimport) {
      n.reimport();
      changes.push(`neighbor ${n.config.address}: import re-evaluated`);
    }
    for (const n of reexport) {
      n.reexport();
      changes.push(`neighbor ${n.config.address}: export re-evaluated`);
    }

    if (this.health) changes.push(...this.health.apply(p.next.healthChecks ?? []));
    const underCheck = new Set(p.underCheck.map((u) => u.prefix));
    // (A delta's plan names only the prefixes it changed: the others stay as they were logged.)
    if (!p.delta) for (const x of this.underCheckLogged) if (!underCheck.has(x)) this.underCheckLogged.delete(x);
    for (const u of p.underCheck) {
      if (this.underCheckLogged.has(u.prefix)) continue;
      this.underCheckLogged.add(u.prefix);
      changes.push(`advertise ${u.prefix} left out: health check ${u.check} decides that prefix`);
    }
    // The local routes in slices; the control API may have changed some since prepare.
    const v0 = e.localRoutes.version;
    let own = 0;
    await sliced(p.removeLocal, (prefix) => {
      if (e.localRoutes.get(prefix)?.owner !== "config") return; // taken over by the API meanwhile
      e.removeLocal(prefix);
      own++;
      changes.push(`withdrew ${prefix}`);
    });
    await sliced(p.adoptLocal, (a) => {
      const cur = e.localRoutes.get(a.prefix);
      if (cur && cur.matches(a)) {
        e.localRoutes.adopt(a.prefix, "config");
        this.applied.set(a, e.localRoutes.get(a.prefix)!);
      } else {
        e.setLocal(a, "config"); // withdrawn or changed by the API meanwhile
        own++;
        this.applied.set(a, e.localRoutes.get(a.prefix)!);
      }
    });
    // A prefix whose attributes changed is replaced in one step (no withdraw in between).
    await sliced(p.setLocal, (a) => {
      const replaced = e.localRoutes.has(a.prefix);
      e.setLocal(a, "config");
      own++;
      this.applied.set(a, e.localRoutes.get(a.prefix)!);
      changes.push(`${replaced ? "updated" : "advertised"} ${a.prefix}`);
    });
    if (p.delta) {
      // The objects listed before keep their stamp (the last commit's number, as every one in the running configuration has); the new ones get it, the dropped ones lose it.
      const commit = this.commits;
      for (const a of p.delta.drop) this.stamp.delete(a);
      await sliced(p.delta.set, (a) => this.stamp.set(a, commit));
    } else {
      const commit = ++this.commits;
      await sliced(p.next.advertise, (a) => this.stamp.set(a, commit));
    }
    // Clean when every local-route write since v0 was this commit's own.
    this.cleanVersion = e.localRoutes.version - v0 === own ? e.localRoutes.version : -1;
    return changes;
  }
}

/** The changes of one apply for the log: all of them when few, else the first ones and how many there were. */
export function changesText(changes: readonly string[], max = 20): string {
  return changes.length <= max ? changes.join("; ") : `${changes.slice(0, max).join("; ")}; ... (${changes.length} changes)`;
}
