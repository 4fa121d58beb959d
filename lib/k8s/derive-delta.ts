/**
 * Service and EndpointSlice changes applied to the last derivation: what a
 * change costs is what it touches, not the size of the cluster.
 *
 * A complete run of lib/k8s/derive.ts walks every Node, Service and
 * EndpointSlice (tens of milliseconds at 20,000 Services, even with its
 * per-object cache); at a few Service or endpoint changes a second that is a
 * busy core on every node. `deriveDeltaSteps` starts from what the last
 * complete run left (`DeriveCache.state`) and applies the changes the watch
 * caches reported since: each slice change moves its Service's ready counts,
 * each changed Service is derived again, and only the prefixes whose
 * Services changed are settled again and moved in the sorted lists. It hands
 * over the new derivation (deep-equal to what a complete run over the same
 * objects gives: a unit test holds them together through random changes) and
 * which advertisements changed, so the router applies just those.
 *
 * It gives up (null: run a complete derivation) on what it does not patch:
 * this node's own Node changed, a Node came or went, another Node's view of
 * itself (address, AS, role, problems) changed, or no complete run is
 * there to start from. A Node that changed in nothing derive reads (its
 * status heartbeat, conditions) is taken without a run.
 */
import { sameValue } from "../config/diff.ts";
import type { AdvertiseConfig, RouterConfig } from "../config/types.ts";
import {
  type AdvertEntry,
  type DeriveCache,
  type Derived,
  type NodeEntry,
  type NodeView,
  type ServiceEntry,
  claimEntry,
  nodeEntry,
  prefixSortKey,
  publish,
  serviceEntryFor,
  settleClaims,
  sliceCounts,
  sortProblems,
  svcName,
} from "./derive.ts";
import type { EndpointSlice, K8sProblem, Node, Service } from "./types.ts";

/** What the watch caches reported since the last derivation's snapshot. */
export interface DeriveChanges {
  /** Nodes by name: the object now, null when deleted. */
  nodes: Map<string, Node | null>;
  /** Services changed ("namespace/name"). */
  services: Set<string>;
  /** EndpointSlice changes in the order they came: the object before (null when added) and after (null when deleted). */
  slices: { old: EndpointSlice | null; now: EndpointSlice | null }[];
}

export function noChanges(): DeriveChanges {
  return { nodes: new Map(), services: new Set(), slices: [] };
}

/** A delta's outcome: the derivation, and against the last one (for the router's apply, lib/router/reconfigure.ts's AdvertiseDelta): the advertisements new or changed, the prefixes gone, and last one's advertisement objects that are no longer in it. */
export interface DeltaResult {
  derived: Derived;
  /** The configuration it was derived after. */
  from: RouterConfig;
  set: AdvertiseConfig[];
  remove: string[];
  drop: AdvertiseConfig[];
}

/** Loop iterations between two yields. */
const STEP = 64;
const NO_ENDPOINTS = Object.freeze({ local: 0, total: 0 });

/** Index of `key` in the sorted `keys`, or -(insertion point) - 1. */
function find<T>(list: readonly T[], key: string, keyOf: (t: T) => string): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const k = keyOf(list[mid]!);
    if (k < key) lo = mid + 1;
    else if (k > key) hi = mid - 1;
    else return mid;
  }
  return -lo - 1;
}

const self = (s: string) => s;
const entryKey = (e: AdvertEntry) => e.key;

function sameView(a: NodeView, b: NodeView): boolean {
  return a.name === b.name && a.asn === b.asn && a.role === b.role && a.clusterId === b.clusterId && a.v4 === b.v4 && a.v6 === b.v6 && a.deleting === b.deleting;
}

/**
 * Apply `changes` to the last complete derivation for `base` and `nodeName`
 * (see the module doc); null when a complete run is needed. `serviceOf` gives
 * the watch cache's Service for a "namespace/name" now.
 */
export function* deriveDeltaSteps(
  base: RouterConfig,
  nodeName: string,
  changes: DeriveChanges,
  serviceOf: (key: string) => Service | undefined,
  cache: DeriveCache,
): Generator<void, DeltaResult | null> {
  cache.use(base, nodeName);
  const st = cache.state;
  if (st === null || st.derived.config === null || st.run !== cache.run) return null;
  const last = st.derived;
  const lastConfig = last.config!;
  const run = st.run;
  let count = 0;

  // -- Nodes: only those that changed in nothing derive reads (checked before anything is changed)
  const nodeSteps: { i: number; e: NodeEntry }[] = [];
  for (const [name, n] of changes.nodes) {
    if ((++count & (STEP - 1)) === 0) yield;
    if (name === nodeName || n === null) return null;
    const i = find(st.nodeNames, name, self);
    if (i < 0) return null;
    let e = cache.nodes.get(n);
    if (e === undefined) {
      e = nodeEntry(n, nodeName, st.kube, st.policyNames, st.globals);
      cache.nodes.set(n, e);
    }
    const was = st.nodeEntries[i]!;
    if (e !== was && (!sameView(was.view, e.view) || !sameValue(was.problems, e.problems))) return null;
    nodeSteps.push({ i, e });
  }
  for (const s of nodeSteps) st.nodeEntries[s.i] = s.e;

  // -- EndpointSlices: ready counts move by what each change took away and added
  const dirty = new Set<string>(changes.services);
  const ready = cache.ready;
  const move = (s: EndpointSlice, sign: number) => {
    let c = cache.slices.get(s);
    if (c === undefined) {
      c = sliceCounts(s, nodeName);
      cache.slices.set(s, c);
    }
    if (c === null) return;
    dirty.add(c.key);
    let r = ready.get(c.key);
    if (r === undefined) ready.set(c.key, (r = { run, local: 0, total: 0 }));
    r.local += sign * c.local;
    r.total += sign * c.total;
    if (r.local === 0 && r.total === 0) ready.delete(c.key);
  };
  for (const c of changes.slices) {
    if ((++count & (STEP - 1)) === 0) yield;
    if (c.old) move(c.old, -1);
    if (c.now) move(c.now, 1);
  }

  // -- Services: derived again; their prefixes' claims follow
  let statuses = st.svcStatuses;
  let servicesMoved = false;
  const touched = new Set<AdvertEntry>();
  let problemsChanged = false;
  for (const key of dirty) {
    if ((++count & (STEP - 1)) === 0) yield;
    const obj = serviceOf(key);
    const svc = obj !== undefined && svcName(obj) === key ? obj : undefined;
    const i = find(st.svcNames, key, self);
    const old: ServiceEntry | null = i >= 0 ? st.svcEntries[i]! : null;
    const e = svc ? serviceEntryFor(svc, ready.get(key) ?? NO_ENDPOINTS, st.ctx, cache) : null;
    if (e === old) continue;
    if (!servicesMoved) {
      servicesMoved = true;
      statuses = statuses.slice();
    }
    if (old && e) {
      st.svcEntries[i] = e;
      statuses[i] = e.result.status;
    } else if (e) {
      const at = -i - 1;
      st.svcNames.splice(at, 0, key);
      st.svcEntries.splice(at, 0, e);
      statuses.splice(at, 0, e.result.status);
    } else {
      st.svcNames.splice(i, 1);
      st.svcEntries.splice(i, 1);
      statuses.splice(i, 1);
    }
    if (old?.problems.length || e?.problems.length) problemsChanged = true;
    if (old) {
      for (const a of old.result.advertise) {
        const pe = cache.adverts.get(a.prefix);
        if (pe === undefined || pe.run !== run) continue;
        const j = pe.svcs.indexOf(old.result);
        if (j < 0) continue;
        pe.svcs.splice(j, 1);
        touched.add(pe);
      }
    }
    if (e) {
      const r = e.result;
      for (const a of r.advertise) {
        if (st.basePrefixes.has(a.prefix)) continue;
        const pe = claimEntry(cache, a.prefix);
        if (pe.run !== run) {
          pe.run = run;
          pe.kind = a.kind;
          pe.svcs.length = 0;
          pe.merged = null;
          pe.range = null;
        } else if (pe.kind === "podCIDR" || pe.range !== null) {
          continue; // a pod CIDR or Service range: that route stays as it is
        }
        if (pe.svcs.includes(r)) continue; // the same IP twice in one Service (as two kinds)
        let at = pe.svcs.length;
        while (at > 0 && pe.svcs[at - 1]!.status.name > key) at--;
        pe.svcs.splice(at, 0, r);
        touched.add(pe);
      }
    }
  }

  // Nothing changed (a Node's heartbeat, a slice with the same ready counts): the last derivation as it is.
  if (touched.size === 0 && !problemsChanged && !servicesMoved) return { derived: last, from: lastConfig, set: [], remove: [], drop: [] };

  // -- the prefixes whose Services changed: settled again, moved in the sorted lists
  const order = cache.order;
  const genAdv = st.genAdv.slice();
  const originated = st.originated.slice();
  const set: AdvertiseConfig[] = [];
  const remove: string[] = [];
  const drop: AdvertiseConfig[] = [];
  for (const pe of touched) {
    if ((++count & (STEP - 1)) === 0) yield;
    const j = find(order, pe.key, entryKey);
    if (pe.svcs.length === 0) {
      if (j >= 0) {
        order.splice(j, 1);
        drop.push(genAdv[j]!);
        genAdv.splice(j, 1);
        originated.splice(j, 1);
        remove.push(pe.prefix);
      }
      pe.run = 0;
      cache.adverts.delete(pe.prefix);
      continue;
    }
    settleClaims(pe);
    const before = j >= 0 ? pe.adv : null;
    publish(pe);
    if (j >= 0) {
      genAdv[j] = pe.adv!;
      originated[j] = pe.orig!;
    } else {
      const at = -j - 1;
      pe.walked = run;
      order.splice(at, 0, pe);
      genAdv.splice(at, 0, pe.adv!);
      originated.splice(at, 0, pe.orig!);
    }
    if (pe.adv !== before) {
      set.push(pe.adv!);
      if (before !== null) drop.push(before);
    }
  }

  let problems = last.status.problems;
  if (problemsChanged) {
    const all: K8sProblem[] = st.problems.slice();
    for (const e of st.svcEntries) {
      if ((++count & (STEP - 1)) === 0) yield;
      if (e.problems.length) all.push(...e.problems);
    }
    problems = sortProblems(all);
  }

  // The file's advertisements merged in by prefix order (they and the generated ones never share a prefix).
  const baseAdv = base.advertise ?? [];
  let advertise = genAdv;
  if (baseAdv.length) {
    const keyed = baseAdv.map((a) => ({ a, key: prefixSortKey(a.prefix) })).sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : 0));
    advertise = [];
    let b = 0;
    for (let g = 0; g < genAdv.length; g++) {
      if ((++count & (STEP - 1)) === 0) yield;
      const k = order[g]!.key;
      while (b < keyed.length && keyed[b]!.key <= k) advertise.push(keyed[b++]!.a);
      advertise.push(genAdv[g]!);
    }
    while (b < keyed.length) advertise.push(keyed[b++]!.a);
  }

  const derived: Derived = {
    config: { ...lastConfig, advertise },
    status: { ...last.status, services: statuses, originated, problems },
    secretRefs: last.secretRefs,
  };
  st.derived = derived;
  st.svcStatuses = statuses;
  st.genAdv = genAdv;
  st.originated = originated;
  return { derived, from: lastConfig, set, remove, drop };
}
