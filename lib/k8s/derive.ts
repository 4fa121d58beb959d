/**
 * From Kubernetes state to router configuration: a pure function of the
 * Nodes, Services and EndpointSlices the watcher holds, the config file (its
 * `kubernetes:` section) and the resolved Secret values, giving a normal
 * `RouterConfig` (the daemon applies it as a diff) plus the status
 * `bgpctl show k8s` prints.
 *
 * - Peers: the iBGP node mesh (or route reflectors and their clients, chosen
 *   by Node annotation), one session per address family both nodes have;
 *   external peers of `kubernetes.peers` whose nodeSelector matches this
 *   node, and of this node's `bgpctl.io/peers` annotation.
 * - Routes: this node's pod CIDRs, the configured Service ranges
 *   (`kubernetes.services.*IPRanges`, aggregates every node advertises), and
 *   the IPs of Services (cluster, external and load balancer IPs) that are
 *   advertised by the rules of `serviceIpDecision` (kind switches, allowed
 *   ranges, cordon/exclude, traffic policies and endpoint readiness; an IP a
 *   Service range covers needs no host route unless its policy is Local).
 * - Generated policies `k8s-mesh-export` and `k8s-external-export` (and the
 *   prefix list `k8s-pod-cidrs`) keep Service IPs and routes learned from
 *   external peers out of the mesh, and decide whether pod CIDRs go outside.
 *
 * The output is deterministic: the same input (in any array order) gives a
 * deep-equal config, so the daemon's diff never churns sessions.
 *
 * Scale (tens of thousands of Services): the derivation is a generator
 * (`deriveSteps`) that yields wherever it may be cut, run to the end by
 * `derive` or in time slices of the shared slicer by `deriveSliced`; its
 * sorts are merge sorts that yield too. A `DeriveCache` kept between runs
 * makes a run cost little more than a walk: what each Node, EndpointSlice and
 * Service gives is remembered per object (the watch caches replace an object
 * when it changes), and an unchanged advertisement is handed over as the same
 * object as last time (the reconfigurer then needs no comparison).
 */
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { formatAddr, parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import { AFI, type Prefix } from "../core/addr.ts";
import { DEFAULTS, defaultKubernetesConfig } from "../config/load.ts";
import { type SettingsGlobals, mergeSettings, settingsGlobals } from "../config/resolve.ts";
import { runSliced } from "../core/slices.ts";
import { StringMap } from "../core/sharded-maps.ts";
import type {
  AdvertiseConfig,
  FamilyName,
  KubePeerConfig,
  KubernetesConfig,
  PeerConfig,
  Policy,
  PolicyTerm,
  PrefixMatch,
  RouterConfig,
  SecretRef,
} from "../config/types.ts";
import {
  ANN,
  type Parsed,
  canonicalCommunity,
  canonicalLargeCommunity,
  parseAsnAnnotation,
  parseBoolAnnotation,
  parseClusterIdAnnotation,
  parseCommunitiesAnnotation,
  parseLargeCommunitiesAnnotation,
  parsePeersAnnotation,
  parseRouterIdAnnotation,
  unknownAnnotations,
} from "./annotations.ts";
import type {
  EndpointSlice,
  K8sOriginated,
  K8sPeerKind,
  K8sPeerStatus,
  K8sProblem,
  K8sServiceIp,
  K8sServiceIpForm,
  K8sServiceStatus,
  K8sStatus,
  Node,
  OriginKind,
  Service,
} from "./types.ts";

export const GENERATED_PREFIX = "k8s-";
export const MESH_EXPORT = "k8s-mesh-export";
export const EXTERNAL_EXPORT = "k8s-external-export";
export const POD_CIDRS_LIST = "k8s-pod-cidrs";
export const EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers";
export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

export interface DeriveInput {
  nodeName: string;
  nodes: Node[];
  services: Service[];
  slices: EndpointSlice[];
  /** The file's config; base.kubernetes is set (KubernetesConfig). base.peers / base.advertise / base.policies are kept and extended. */
  base: RouterConfig;
  /** Resolved Secret values: key `${namespace}/${name}/${key}` → password text. Missing → the peer is configured without a password and a problem is reported. */
  secrets: ReadonlyMap<string, string>;
}

export interface Derived {
  /** null when this node's Node object is missing or has no usable address (status.nodeFound false, a problem says why). */
  config: RouterConfig | null;
  status: Omit<K8sStatus, "synced" | "resources">;
  /** Secret references this derivation needed (so the runtime fetches them). */
  secretRefs: SecretRef[];
}

type Role = K8sStatus["role"];

/** What every Node says about itself (annotations parsed once). */
export interface NodeView {
  name: string;
  node: Node;
  asn: number;
  role: Role;
  clusterId?: string;
  v4?: string;
  v6?: string;
  deleting: boolean;
}

/** Key of a resolved Secret value in DeriveInput.secrets. */
export function secretKey(ref: SecretRef): string {
  return `${ref.namespace}/${ref.name}/${ref.key}`;
}

/** FNV-1a (32 bit) of the UTF-8 name as a dotted quad, never 0.0.0.0: the router id of a node without IPv4. */
export function routerIdFromName(name: string): string {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(name)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  if (h === 0) h = 1;
  return `${h >>> 24}.${(h >>> 16) & 255}.${(h >>> 8) & 255}.${h & 255}`;
}

// ---------------------------------------------------------------------------
// the cache between runs

/** What one Node gives (independent of the other objects). */
export interface NodeEntry {
  view: NodeView;
  problems: K8sProblem[];
  peers?: KubePeerConfig[];
}

/** One generated advertisement in the cache: what this run found for its prefix, and what was handed over last. */
export interface AdvertEntry {
  prefix: string;
  /** The run that last found the prefix (and `walked`: that saw it in last run's order). */
  run: number;
  walked: number;
  /** This run's: a pod CIDR, or the kind of IP of the first Service (by name) advertising it; with more Services, their merged communities and names. */
  kind: OriginKind;
  /** The Services advertising it, by name (each once); empty for a pod CIDR or Service range. */
  svcs: ServiceResult[];
  merged: { communities: string[]; largeCommunities: string[]; services: string[] } | null;
  /** A Service range's aggregate (with the services' communities); null otherwise. */
  range: RangeAttrs | null;
  /** The advertisement and status line handed over last (the same objects while equal). */
  adv: AdvertiseConfig | null;
  orig: K8sOriginated | null;
  /** Sort key of the prefix. */
  key: string;
}

const NONE: readonly string[] = Object.freeze([]);

function sameList(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** What one Service gives, for the ready counts and withdrawal it was derived with. */
export interface ServiceEntry {
  local: number;
  total: number;
  withdrawn: string | undefined;
  result: ServiceResult;
  problems: K8sProblem[];
}

/**
 * Results of earlier runs, per object (held weakly: a replaced or deleted
 * object's entry goes with it). Valid for one config file and node name: a
 * run with another `base` or `nodeName` starts afresh.
 */
export class DeriveCache {
  private base: RouterConfig | null = null;
  private nodeName = "";
  nodes = new WeakMap<Node, NodeEntry>();
  slices = new WeakMap<EndpointSlice, { key: string; local: number; total: number } | null>();
  services = new WeakMap<Service, ServiceEntry>();
  /** "namespace/name" of each Service. */
  names = new WeakMap<Service, string>();
  /** Generated advertisements by prefix (this run's and last run's), and last run's in order. */
  adverts = new StringMap<AdvertEntry>();
  order: AdvertEntry[] = [];
  /** Ready endpoint counts by "namespace/service" (entries of this run carry its number). */
  ready = new StringMap<{ run: number; local: number; total: number }>();
  /** The number of the run in progress (entries stamped with an older one are stale). */
  run = 0;
  /** What the last complete run left for a delta to start from (lib/k8s/derive-delta.ts); null before one, and after a reset. */
  state: DeriveState | null = null;

  /** Forget everything when the run's config file or node name is not the cached one. */
  use(base: RouterConfig, nodeName: string): void {
    if (this.base === base && this.nodeName === nodeName) return;
    this.base = base;
    this.nodeName = nodeName;
    this.nodes = new WeakMap();
    this.slices = new WeakMap();
    this.services = new WeakMap();
    this.names = new WeakMap();
    this.adverts = new StringMap();
    this.order = [];
    this.ready = new StringMap();
    this.state = null;
  }
}

/**
 * The last complete derivation as a delta (lib/k8s/derive-delta.ts) patches
 * it: everything that does not depend on Services and EndpointSlices, and the
 * sorted lists that do. The lists are shared with `derived` (a delta copies
 * before it changes one).
 */
export interface DeriveState {
  derived: Derived;
  run: number;
  /** Every Node's entry, by name. */
  nodeNames: string[];
  nodeEntries: NodeEntry[];
  /** Every Service's entry, by "namespace/name", and its status (status.services). */
  svcNames: string[];
  svcEntries: ServiceEntry[];
  svcStatuses: K8sServiceStatus[];
  /** The generated advertisements in order (cache.order), and their status lines (status.originated). */
  genAdv: AdvertiseConfig[];
  originated: K8sOriginated[];
  /** The problems found outside Services. */
  problems: K8sProblem[];
  ctx: ServiceContext;
  basePrefixes: Set<string>;
  /** What a Node's entry depends on besides the Node. */
  kube: KubernetesConfig;
  policyNames: Set<string>;
  globals: SettingsGlobals;
}

/** Loop iterations between two yields of a derivation (each is a few microseconds at most). */
const STEP = 64;

/**
 * `items` ordered by `keyOf` (text order; equal keys keep their order), as a
 * natural merge sort that yields every few thousand moves: the runs already
 * in order are found and merged pairwise, so a list that is mostly in order
 * (the API server lists objects by name; last run's order) costs a few
 * passes. Each key is computed once.
 */
export function* sortedBy<T>(items: readonly T[], keyOf: (t: T) => string): Generator<void, T[]> {
  const n = items.length;
  let a = items.slice();
  let ka: string[] = new Array<string>(n);
  let runs: number[] = [0];
  for (let i = 0; i < n; i++) {
    ka[i] = keyOf(items[i]!);
    if (i > 0 && ka[i - 1]! > ka[i]!) runs.push(i);
    if ((i & (STEP - 1)) === 0) yield;
  }
  runs.push(n);
  let b = new Array<T>(n);
  let kb: string[] = new Array<string>(n);
  let moved = 0;
  while (runs.length > 2) {
    const next: number[] = [0];
    for (let r = 0; r + 1 < runs.length; r += 2) {
      const lo = runs[r]!;
      const mid = runs[r + 1]!;
      const hi = r + 2 < runs.length ? runs[r + 2]! : mid;
      let i = lo;
      let j = mid;
      for (let k = lo; k < hi; k++) {
        if (i < mid && (j >= hi || ka[i]! <= ka[j]!)) {
          b[k] = a[i]!;
          kb[k] = ka[i++]!;
        } else {
          b[k] = a[j]!;
          kb[k] = ka[j++]!;
        }
      }
      next.push(hi);
      moved += hi - lo;
      if (moved >= 4096) {
        moved = 0;
        yield;
      }
    }
    [a, b] = [b, a];
    [ka, kb] = [kb, ka];
    runs = next;
  }
  return a;
}

/** Run a derivation's steps to the end, synchronously. */
function runToEnd<T>(steps: Generator<void, T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

// ---------------------------------------------------------------------------
// ordering helpers

function addrKey(s: string): { afi: number; bytes: Uint8Array } | null {
  const a = parseAddr(s);
  return a ? { afi: a.afi, bytes: a.addr } : null;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** IPv4 before IPv6, then numerically; unparseable text last, by text. */
export function compareAddresses(x: string, y: string): number {
  const a = addrKey(x);
  const b = addrKey(y);
  if (a && b) return a.afi - b.afi || compareBytes(a.bytes, b.bytes);
  if (a || b) return a ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

function tryPrefix(s: string): Prefix | null {
  try {
    return parsePrefix(s);
  } catch {
    return null;
  }
}

/** By family, address, then length; unparseable text last. */
export function comparePrefixes(x: string, y: string): number {
  const a = tryPrefix(x);
  const b = tryPrefix(y);
  if (a && b) return a.afi - b.afi || compareBytes(a.addr, b.addr) || a.len - b.len;
  if (a || b) return a ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * `items` sorted as comparePrefixes orders their prefixes, each prefix parsed
 * once (a sort comparing with comparePrefixes parses both on every
 * comparison: seconds at 20,000 Services).
 */
export function sortByPrefix<T>(items: T[], prefixOf: (t: T) => string): T[] {
  return runToEnd(sortedBy(items, (t) => prefixSortKey(prefixOf(t))));
}

/** A text whose order is comparePrefixes' order: parsed prefixes by family, address bytes and length (hex compares as the bytes do), then others by text. */
export function prefixSortKey(text: string): string {
  const p = tryPrefix(text);
  return p ? `${p.afi}${hexOf(p.addr)}${p.len.toString(16).padStart(2, "0")}` : `9${text}`;
}

/** A text whose order is compareAddresses' order (IPv4, IPv6, then unparsable text). */
function addressSortKey(text: string): string {
  const a = parseAddr(text);
  return a ? `${a.afi}${hexOf(a.addr)}` : `9${text}`;
}

function hexOf(bytes: Uint8Array): string {
  let h = "";
  for (const b of bytes) h += (b < 16 ? "0" : "") + b.toString(16);
  return h;
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function contains(p: Prefix, afi: number, addr: Uint8Array): boolean {
  if (p.afi !== afi) return false;
  for (let bit = 0; bit < p.len; bit++) {
    const m = 0x80 >> (bit & 7);
    if ((p.addr[bit >> 3]! & m) !== (addr[bit >> 3]! & m)) return false;
  }
  return true;
}

/** Append communities not already present (compared by value, so "no-export" and "65535:65281" are one). */
function mergeCommunities(into: string[], add: readonly string[], parse: (s: string) => unknown): void {
  const key = (s: string) => {
    try {
      return String(parse(s));
    } catch {
      return s;
    }
  };
  const have = new Set(into.map(key));
  for (const c of add) {
    const k = key(c);
    if (!have.has(k)) {
      have.add(k);
      into.push(c);
    }
  }
}

function canonicalAll(list: readonly string[], canon: (s: string) => string): string[] {
  return list.map((c) => {
    try {
      return canon(c);
    } catch {
      return c;
    }
  });
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

// ---------------------------------------------------------------------------
// derive

/** Derive in one go (tests, `show k8s` before the first run). */
export function derive(input: DeriveInput, cache?: DeriveCache): Derived {
  return runToEnd(deriveSteps(input, cache));
}

/** Derive in time slices of the shared slicer (the daemon: never holds the event loop). */
export function deriveSliced(input: DeriveInput, cache?: DeriveCache): Promise<Derived> {
  return runSliced(deriveSteps(input, cache));
}

/** The derivation, as steps (see the module doc). */
export function* deriveSteps(input: DeriveInput, cache: DeriveCache = new DeriveCache()): Generator<void, Derived> {
  const { nodeName, base, secrets } = input;
  cache.use(base, nodeName);
  cache.run++;
  const kube: KubernetesConfig = base.kubernetes ?? defaultKubernetesConfig();
  const globals = settingsGlobals(base);
  const problems: K8sProblem[] = [];
  const problem = (object: string, message: string, field?: string) => {
    const p: K8sProblem = { object, message };
    if (field !== undefined) p.field = field;
    problems.push(p);
  };

  // Policy names import/export may use: the file's and the generated ones.
  const policyNames = new Set([...Object.keys(base.policies ?? {}), MESH_EXPORT, EXTERNAL_EXPORT]);

  // -- every Node's view of itself, sorted by name ----------------------------
  const nodes = yield* sortedBy(input.nodes, (n) => n.metadata.name);
  const views: NodeView[] = [];
  const nodeEntries: NodeEntry[] = [];
  let myPeersAnnotation: KubePeerConfig[] = [];
  let count = 0;
  for (const n of nodes) {
    if ((++count & (STEP - 1)) === 0) yield;
    const cached = cache.nodes.get(n);
    if (cached) {
      views.push(cached.view);
      nodeEntries.push(cached);
      if (cached.problems.length) problems.push(...cached.problems);
      if (cached.peers && n.metadata.name === nodeName) myPeersAnnotation = cached.peers;
      continue;
    }
    const e = nodeEntry(n, nodeName, kube, policyNames, globals);
    cache.nodes.set(n, e);
    views.push(e.view);
    nodeEntries.push(e);
    if (e.problems.length) problems.push(...e.problems);
    if (e.peers && n.metadata.name === nodeName) myPeersAnnotation = e.peers;
  }


  const me = views.find((v) => v.name === nodeName);
  const status: Derived["status"] = {
    node: nodeName,
    nodeFound: me !== undefined,
    asn: me?.asn ?? kube.asn,
    routerId: kube.routerId ?? "",
    role: me?.role ?? "mesh",
    addresses: {},
    podCidrs: [],
    peers: [],
    serviceRanges: [],
    originated: [],
    services: [],
    problems,
  };
  const secretRefs: SecretRef[] = [];
  const done = (config: RouterConfig | null): Derived => {
    status.problems = sortProblems(problems);
    return { config, status, secretRefs: sortRefs(secretRefs) };
  };

  if (!me) {
    problem(`Node/${nodeName}`, `no Node object named ${JSON.stringify(nodeName)} (set --node-name or NODE_NAME)`);
    return done(null);
  }
  const myObj = `Node/${me.name}`;
  if (me.clusterId !== undefined) status.clusterId = me.clusterId;
  if (me.v4) status.addresses.ipv4 = me.v4;
  if (me.v6) status.addresses.ipv6 = me.v6;

  // router id: config, annotation, IPv4 InternalIP, hash of the name
  const ridAnn = me.node.metadata.annotations?.[ANN.routerId];
  const ridParsed = ridAnn !== undefined ? parseRouterIdAnnotation(ridAnn) : undefined;
  const routerId = kube.routerId ?? (ridParsed && "value" in ridParsed ? ridParsed.value : undefined) ?? me.v4 ?? routerIdFromName(me.name);
  status.routerId = routerId;

  // pod CIDRs
  const podCidrs = nodePodCidrs(me.node, (c, why, field) => problem(myObj, `pod CIDR ${JSON.stringify(c)} is not a prefix (${why}); ignored`, field));
  podCidrs.sort(comparePrefixes);
  status.podCidrs = podCidrs;

  if (!me.v4 && !me.v6) {
    problem(myObj, "the Node has no InternalIP address in status.addresses; nothing to peer from");
    return done(null);
  }

  // -- peers ------------------------------------------------------------------
  interface Candidate {
    peer: PeerConfig;
    status: K8sPeerStatus;
    /** Who produced it, for clash messages. */
    what: string;
  }
  const peers = new Map<string, Candidate>();

  if (kube.mesh) yield* meshPeers(me, views, kube, globals, peers, problem);

  // External peers: the config's (matching nodeSelector), then the annotation's.
  const labels = me.node.metadata.labels ?? {};
  const password = (ref: SecretRef, address: string): string | undefined => {
    secretRefs.push({ ...ref });
    const v = secrets.get(secretKey(ref));
    if (v === undefined) {
      problem(
        `Secret/${ref.namespace}/${ref.name}`,
        `key ${JSON.stringify(ref.key)} is not available (Secret or key missing, or not read yet); peer ${address} is configured without a password`,
        ref.key,
      );
    }
    return v;
  };
  const addExternal = (peer: PeerConfig, source: "config" | "annotation", what: string) => {
    const st: K8sPeerStatus = { address: peer.address, asn: peer.remoteAs, kind: "external", source, families: [...peer.families] };
    const prev = peers.get(peer.address);
    if (prev) {
      if (prev.status.source === "config" && source === "config") {
        problem(myObj, `peer ${peer.address} is selected twice (${prev.what} and ${what}); ${prev.what} is used`);
        return;
      }
      problem(myObj, `peer ${peer.address} of ${what} is also ${prev.what}; ${what} is used`, source === "annotation" ? ANN.peers : undefined);
    }
    peers.set(peer.address, { peer, status: st, what });
  };
  /** A peer of kubernetes.peers or of this node's annotation, on this node. */
  const external = (kp: KubePeerConfig, source: "config" | "annotation", what: string) => {
    const t = kp.peer;
    const peer: PeerConfig = {
      ...t,
      localAs: me.asn,
      families: [...t.families],
      export: t.export ?? { kind: "chain", names: [EXTERNAL_EXPORT] },
    };
    if (t.import?.kind === "chain") peer.import = { kind: "chain", names: [...t.import.names] };
    if (t.export?.kind === "chain") peer.export = { kind: "chain", names: [...t.export.names] };
    if (t.password === undefined && kp.passwordSecret) {
      const pw = password(kp.passwordSecret, t.address);
      if (pw !== undefined) peer.password = pw;
      else delete peer.password;
    }
    addExternal(peer, source, what);
  };
  (kube.peers ?? []).forEach((kp, i) => {
    if (Object.entries(kp.nodeSelector ?? {}).every(([k, v]) => labels[k] === v)) external(kp, "config", `kubernetes.peers[${i}]`);
  });
  myPeersAnnotation.forEach((kp, i) => external(kp, "annotation", `${ANN.peers} peers[${i}]`));

  // The file's own peers win over generated ones.
  const basePeers = base.peers ?? [];
  for (const bp of basePeers) {
    const g = peers.get(bp.address);
    if (g) {
      problem(myObj, `peer ${bp.address} of ${g.what} is also in the config file's peers; the config file's peer is used`, g.status.source === "annotation" ? ANN.peers : undefined);
      peers.delete(bp.address);
    }
  }
  const generated = yield* sortedBy([...peers.values()], (c) => addressSortKey(c.peer.address));
  status.peers = generated.map((c) => c.status);
  const allPeers = basePeers.length ? yield* sortedBy([...basePeers, ...generated.map((c) => c.peer)], (p) => addressSortKey(p.address)) : generated.map((c) => c.peer);

  // -- generated prefix list and policies --------------------------------------
  const prefixLists: Record<string, PrefixMatch[]> = { ...(base.prefixLists ?? {}) };
  const policies: Record<string, Policy> = { ...(base.policies ?? {}) };
  const hasPods = podCidrs.length > 0;
  const genLists: Record<string, PrefixMatch[]> = {};
  if (hasPods) genLists[POD_CIDRS_LIST] = podCidrs.map((prefix) => ({ prefix }));
  const meshTerms: PolicyTerm[] = [];
  if (hasPods) meshTerms.push({ name: "pod-cidrs", match: { source: ["local"], prefixList: [POD_CIDRS_LIST] }, action: "accept" });
  meshTerms.push({ name: "reflect-ibgp", match: { source: ["ibgp"] }, action: "accept" });
  const extTerms: PolicyTerm[] = [];
  if (hasPods) {
    extTerms.push({
      name: "pod-cidrs",
      match: { source: ["local"], prefixList: [POD_CIDRS_LIST] },
      action: kube.advertisePodCidrsExternal ? "accept" : "reject",
    });
  }
  extTerms.push({ name: "local", match: { source: ["local"] }, action: "accept" });
  const genPolicies: Record<string, Policy> = {
    [MESH_EXPORT]: { name: MESH_EXPORT, terms: meshTerms, default: "reject" },
    [EXTERNAL_EXPORT]: { name: EXTERNAL_EXPORT, terms: extTerms, default: "reject" },
  };
  for (const [name, list] of Object.entries(genLists)) {
    if (name in prefixLists) problem(myObj, `the config file defines prefix list ${name}; it replaces the generated one`);
    else prefixLists[name] = list;
  }
  for (const [name, pol] of Object.entries(genPolicies)) {
    if (name in policies) problem(myObj, `the config file defines policy ${name}; it replaces the generated one`);
    else policies[name] = pol;
  }

  // -- routes -------------------------------------------------------------------
  const baseAdvertise = base.advertise ?? [];
  // The prefixes of this run, in the cache's lasting table (a Map built afresh every run would rehash in one go as it grows).
  const run = cache.run;
  const touched: AdvertEntry[] = [];
  const claim = (prefix: string): AdvertEntry => claimEntry(cache, prefix);
  const basePrefixes = new Set(baseAdvertise.map((a) => a.prefix));
  const baseHas = (prefix: string) => basePrefixes.has(prefix);
  if (kube.advertisePodCidrs) {
    for (const prefix of podCidrs) {
      if (baseHas(prefix)) continue;
      const e = claim(prefix);
      e.run = run;
      e.kind = "podCIDR";
      e.svcs.length = 0;
      e.merged = null;
      e.range = null;
      touched.push(e);
    }
  }

  let withdrawn: string | undefined;
  if (kube.services.withdrawWhenCordoned && me.node.spec?.unschedulable === true) withdrawn = "node is cordoned";
  else if (kube.services.withdrawWhenExcluded && Object.prototype.hasOwnProperty.call(labels, EXCLUDE_LABEL)) withdrawn = `node has label ${EXCLUDE_LABEL}`;
  if (withdrawn) status.servicesWithdrawn = withdrawn;

  // Service ranges: aggregates every node advertises (unless it withdraws its Service IPs).
  const sctx = serviceContext(kube, withdrawn);
  const rangeState = (r: ServiceRange): { advertised: boolean; reason: string } => {
    if (!r.active) return { advertised: false, reason: `kubernetes.services.${KIND_TEXT[r.kind].setting} false` };
    if (withdrawn) return { advertised: false, reason: withdrawn };
    if (baseHas(r.text)) return { advertised: true, reason: "the config file's advertise entry for it is used" };
    const e = claim(r.text);
    // A pod CIDR equal to the range: the pod CIDR route stays as it is.
    if (e.run === run) return { advertised: true, reason: "also this node's pod CIDR; advertised as the pod CIDR" };
    e.run = run;
    e.kind = r.kind;
    e.svcs.length = 0;
    e.merged = null;
    e.range = sctx.rangeAttrs;
    touched.push(e);
    return { advertised: true, reason: "advertised by every node" };
  };
  for (const r of sctx.allRanges) status.serviceRanges.push({ prefix: r.text, kind: r.kind, ...rangeState(r) });

  const problemsOutsideServices = problems.length;
  const svc = yield* deriveServices(input.services, input.slices, me.name, sctx, problems, cache);
  yield;
  const svcStatuses = new Array<K8sServiceStatus>(svc.entries.length);
  for (let i = 0; i < svc.entries.length; i++) svcStatuses[i] = svc.entries[i]!.result.status;
  status.services = svcStatuses;
  yield;
  count = 0;
  const shared: AdvertEntry[] = [];
  for (const { result: s } of svc.entries) {
    if ((++count & (STEP - 1)) === 0) yield;
    for (const ip of s.advertise) {
      const prefix = ip.prefix;
      if (baseHas(prefix)) continue;
      const e = claim(prefix);
      if (e.run !== run) {
        // The first Service with this IP: nothing is copied unless another one shares it.
        e.run = run;
        e.kind = ip.kind;
        e.svcs.length = 0;
        e.svcs.push(s);
        e.merged = null;
        e.range = null;
        touched.push(e);
        continue;
      }
      if (e.kind === "podCIDR" || e.range) continue; // a /32 pod CIDR or Service range: that route stays as it is
      if (e.svcs[e.svcs.length - 1] === s) continue; // the same IP twice in one Service (as two kinds)
      e.svcs.push(s);
      if (e.svcs.length === 2) shared.push(e);
    }
  }
  for (const e of shared) settleClaims(e);
  // Sorted from last run's order (still there first, new ones after: the sort has little to do); prefixes gone leave the table.
  const unsorted: AdvertEntry[] = [];
  count = 0;
  for (const e of cache.order) {
    if ((++count & (STEP - 1)) === 0) yield;
    if (e.run === run) {
      e.walked = run;
      unsorted.push(e);
    } else if (cache.adverts.get(e.prefix) === e) cache.adverts.delete(e.prefix);
  }
  for (const e of touched) if (e.walked !== run) unsorted.push(e);
  const sorted = yield* sortedBy(unsorted, (e) => e.key);
  cache.order = sorted;
  yield;
  // An advertisement (and its status line) equal to last run's is handed over as last run's object.
  const genAdv: AdvertiseConfig[] = [];
  count = 0;
  for (const e of sorted) {
    if ((++count & (STEP - 1)) === 0) yield;
    publish(e);
    status.originated.push(e.orig!);
    genAdv.push(e.adv!);
  }
  // The file's advertisements merged in (without them, the generated list is already in order).
  const advertise = baseAdvertise.length ? yield* sortedBy([...baseAdvertise, ...genAdv], (a) => cache.adverts.get(a.prefix)?.key ?? prefixSortKey(a.prefix)) : genAdv;

  const config: RouterConfig = {
    ...base,
    asn: me.asn,
    routerId,
    peers: allPeers,
    advertise,
    policies,
    prefixLists,
  };
  if (me.role === "reflector" && me.clusterId !== undefined) config.clusterId = me.clusterId;
  const derived = done(config);
  cache.state = {
    derived,
    run,
    nodeNames: views.map((v) => v.name),
    nodeEntries,
    svcNames: svc.names,
    svcEntries: svc.entries,
    svcStatuses,
    genAdv,
    originated: status.originated,
    problems: problems.slice(0, problemsOutsideServices),
    ctx: sctx,
    basePrefixes,
    kube,
    policyNames,
    globals,
  };
  return derived;
}

/** The cache's entry for a prefix, made (unclaimed: run 0) when it has none. */
export function claimEntry(cache: DeriveCache, prefix: string): AdvertEntry {
  let e = cache.adverts.get(prefix);
  if (e === undefined) {
    e = { prefix, run: 0, walked: 0, kind: "podCIDR", svcs: [], merged: null, range: null, adv: null, orig: null, key: prefixSortKey(prefix) };
    cache.adverts.set(prefix, e);
  }
  return e;
}

/** An advertisement shared by several Services: the first one's kind of IP, everyone's communities merged, their names (in name order). */
export function settleClaims(e: AdvertEntry): void {
  const first = e.svcs[0]!;
  for (const a of first.advertise) {
    if (a.prefix === e.prefix) {
      e.kind = a.kind;
      break;
    }
  }
  if (e.svcs.length === 1) {
    e.merged = null;
    return;
  }
  const m = { communities: [...first.communities], largeCommunities: [...first.largeCommunities], services: [first.status.name] };
  for (let i = 1; i < e.svcs.length; i++) {
    const s = e.svcs[i]!;
    mergeCommunities(m.communities, s.communities, parseCommunity);
    mergeCommunities(m.largeCommunities, s.largeCommunities, parseLargeCommunity);
    if (!m.services.includes(s.status.name)) m.services.push(s.status.name);
  }
  e.merged = m;
}

/** Set an entry's advertisement and status line, keeping last run's objects while they are equal (the reconfigurer then needs no comparison). */
export function publish(e: AdvertEntry): void {
  const first = e.svcs.length ? e.svcs[0]! : null;
  const comms = e.merged?.communities ?? first?.communities ?? e.range?.communities ?? NONE;
  const large = e.merged?.largeCommunities ?? first?.largeCommunities ?? e.range?.largeCommunities ?? NONE;
  const aggregate = e.range !== null;
  const service = e.kind === "podCIDR" || aggregate ? undefined : e.merged ? e.merged.services.join(", ") : first!.status.name;
  if (e.adv === null || !sameList(e.adv.communities, comms) || !sameList(e.adv.largeCommunities, large)) {
    e.adv = { prefix: e.prefix, communities: [...comms], largeCommunities: [...large] };
  }
  const o = e.orig;
  if (o === null || o.kind !== e.kind || o.service !== service || (o.aggregate === true) !== aggregate || !sameList(o.communities, comms) || !sameList(o.largeCommunities, large)) {
    e.orig = {
      prefix: e.prefix,
      kind: e.kind,
      ...(service !== undefined ? { service } : {}),
      ...(aggregate ? { aggregate: true as const } : {}),
      communities: [...comms],
      largeCommunities: [...large],
    };
  }
}

/** What one Node says about itself (annotations parsed, problems found), as derive's cache keeps it. */
export function nodeEntry(n: Node, nodeName: string, kube: KubernetesConfig, policyNames: Set<string>, globals: SettingsGlobals): NodeEntry {
  const e: NodeEntry = { view: undefined as unknown as NodeView, problems: [] };
  const problem = problemCollector(e.problems);
  const obj = `Node/${n.metadata.name}`;
  const ann = n.metadata.annotations ?? {};
  const get = annotationReader(obj, ann, problem);
  for (const u of unknownAnnotations(ann, "Node")) problem(obj, u.message, u.key);
  const asn = get(ANN.asn, parseAsnAnnotation) ?? kube.asn;
  get(ANN.routerId, parseRouterIdAnnotation); // validated for every node; used for our own below
  const rr = get(ANN.routeReflector, parseClusterIdAnnotation);
  const rrc = get(ANN.routeReflectorClient, parseClusterIdAnnotation);
  const peers = get(ANN.peers, (s) => parsePeersAnnotation(s, { asn, policies: [...policyNames], globals }));
  if (n.metadata.name === nodeName && peers) e.peers = peers;
  let role: Role = "mesh";
  let clusterId: string | undefined;
  if (rr !== undefined) {
    role = "reflector";
    clusterId = rr;
    if (rrc !== undefined) {
      problem(obj, `both ${ANN.routeReflector} and ${ANN.routeReflectorClient} are set; the node is a route reflector (cluster id ${rr})`, ANN.routeReflectorClient);
    }
  } else if (rrc !== undefined) {
    role = "reflector-client";
    clusterId = rrc;
  }
  const v: NodeView = { name: n.metadata.name, node: n, asn, role, deleting: !!n.metadata.deletionTimestamp };
  if (clusterId !== undefined) v.clusterId = clusterId;
  const isMe = n.metadata.name === nodeName;
  const ips = nodeInternalIPs(n, (bad) => {
    if (isMe) problem(obj, `InternalIP ${JSON.stringify(bad)} is not an IP address; ignored`, "status.addresses");
  });
  if (ips.v4 !== undefined) v.v4 = ips.v4;
  if (ips.v6 !== undefined) v.v6 = ips.v6;
  e.view = v;
  return e;
}

/** A Node's first InternalIP of each family (canonical text); `bad` sees each one that is not an address. */
export function nodeInternalIPs(n: Node, bad?: (address: string) => void): { v4?: string; v6?: string } {
  const out: { v4?: string; v6?: string } = {};
  for (const a of n.status?.addresses ?? []) {
    if (a.type !== "InternalIP") continue;
    const p = parseAddr(a.address);
    if (!p) {
      bad?.(a.address);
      continue;
    }
    const text = formatAddr(p.afi, p.addr);
    if (p.afi === AFI.IPV4) out.v4 ??= text;
    else out.v6 ??= text;
  }
  return out;
}

/**
 * A Node's pod CIDRs (spec.podCIDRs, else spec.podCIDR), canonical and
 * without repeats; `bad` sees each value that is not a prefix, why, and its field.
 */
export function nodePodCidrs(n: Node, bad?: (cidr: string, why: string, field: string) => void): string[] {
  const spec = n.spec ?? {};
  const raw = spec.podCIDRs && spec.podCIDRs.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [];
  const out: string[] = [];
  for (const c of raw) {
    let t: string;
    try {
      t = prefixToString(parsePrefix(c.trim()));
    } catch (e) {
      bad?.(c, (e as Error).message.replace(/^invalid prefix "[^"]*": /, ""), spec.podCIDRs?.length ? "spec.podCIDRs" : "spec.podCIDR");
      continue;
    }
    if (!out.includes(t)) out.push(t);
  }
  return out;
}

/** A `problem(object, message, field?)` function appending to `into`. */
function problemCollector(into: K8sProblem[]): (object: string, message: string, field?: string) => void {
  return (object, message, field) => {
    const p: K8sProblem = { object, message };
    if (field !== undefined) p.field = field;
    into.push(p);
  };
}

export function sortProblems(ps: K8sProblem[]): K8sProblem[] {
  const seen = new Set<string>();
  const out: K8sProblem[] = [];
  for (const p of ps) {
    const k = JSON.stringify([p.object, p.field ?? "", p.message]);
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(p);
  }
  return out.sort((a, b) => byText(a.object, b.object) || byText(a.field ?? "", b.field ?? "") || byText(a.message, b.message));
}

function sortRefs(refs: SecretRef[]): SecretRef[] {
  const m = new Map<string, SecretRef>();
  for (const r of refs) m.set(secretKey(r), r);
  return [...m.entries()].sort((a, b) => byText(a[0], b[0])).map((e) => e[1]);
}

// ---------------------------------------------------------------------------
// the node mesh

/** Whether two nodes peer, and whether the other is our route-reflector client. */
function meshRelation(me: NodeView, other: NodeView): { peer: boolean; client: boolean } {
  const no = { peer: false, client: false };
  switch (me.role) {
    case "reflector":
      if (other.role === "reflector" || other.role === "mesh") return { peer: true, client: false };
      return other.clusterId === me.clusterId ? { peer: true, client: true } : no;
    case "reflector-client":
      return other.role === "reflector" && other.clusterId === me.clusterId ? { peer: true, client: false } : no;
    case "mesh":
      return other.role === "reflector" || other.role === "mesh" ? { peer: true, client: false } : no;
  }
}

const KIND_OF_ROLE: Record<Role, K8sPeerKind> = { mesh: "node", reflector: "reflector", "reflector-client": "reflector-client" };

function* meshPeers(
  me: NodeView,
  views: NodeView[],
  kube: KubernetesConfig,
  globals: SettingsGlobals,
  out: Map<string, { peer: PeerConfig; status: K8sPeerStatus; what: string }>,
  problem: (object: string, message: string, field?: string) => void,
): Generator<void, void> {
  const sameAs = views.filter((v) => v.name !== me.name && v.asn === me.asn && !v.deleting && (v.v4 || v.v6));
  if (me.role === "reflector-client" && !sameAs.some((v) => v.role === "reflector" && v.clusterId === me.clusterId)) {
    problem(`Node/${me.name}`, `no route reflector with cluster id ${me.clusterId} (in AS ${me.asn}); no mesh peers`, ANN.routeReflectorClient);
    return;
  }
  let count = 0;
  for (const other of sameAs) {
    if ((++count & (STEP - 1)) === 0) yield;
    const rel = meshRelation(me, other);
    if (!rel.peer) continue;
    for (const fam of ["ipv4", "ipv6"] as FamilyName[]) {
      const mine = fam === "ipv4" ? me.v4 : me.v6;
      const theirs = fam === "ipv4" ? other.v4 : other.v6;
      if (!mine || !theirs) continue;
      if (theirs === mine) {
        problem(`Node/${other.name}`, `has the same InternalIP ${theirs} as this node (${me.name}); not peered`);
        continue;
      }
      const prev = out.get(theirs);
      if (prev) {
        problem(`Node/${other.name}`, `has the same InternalIP ${theirs} as ${prev.what}; only ${prev.what} is peered`);
        continue;
      }
      // Every key a mesh session does not set itself keeps the schema's default, as a file peer would.
      const peer: PeerConfig = {
        ...DEFAULTS.peer,
        families: [fam],
        address: theirs,
        remoteAs: me.asn,
        localAs: me.asn,
        port: kube.meshPort,
        localAddress: mine,
        holdTime: kube.meshHoldTime,
        routeReflectorClient: rel.client,
        import: { kind: "all" },
        export: { kind: "chain", names: [MESH_EXPORT] },
        description: `k8s node ${other.name}`,
        gracefulRestart: mergeSettings("gracefulRestart", globals.gracefulRestart ? [globals.gracefulRestart] : []),
        bfd: mergeSettings("bfd", globals.bfd ? [globals.bfd] : []),
      };
      out.set(theirs, {
        peer,
        status: { address: theirs, asn: me.asn, kind: KIND_OF_ROLE[other.role], node: other.name, source: "mesh", families: [fam] },
        what: `node ${other.name}`,
      });
    }
  }
}

// ---------------------------------------------------------------------------
// Services

type IpKind = Exclude<OriginKind, "podCIDR">;

export interface ServiceResult {
  status: K8sServiceStatus;
  /** Advertised IPs as host prefixes. */
  advertise: { prefix: string; kind: IpKind }[];
  communities: string[];
  largeCommunities: string[];
}

const KIND_TEXT: Record<
  IpKind,
  {
    what: string;
    setting: "clusterIPs" | "externalIPs" | "loadBalancerIPs";
    ranges: "clusterIPRanges" | "externalIPRanges" | "loadBalancerIPRanges";
    annotation: string;
    field: string;
  }
> = {
  clusterIP: { what: "cluster IPs", setting: "clusterIPs", ranges: "clusterIPRanges", annotation: ANN.advertiseClusterIp, field: "spec.clusterIPs" },
  externalIP: { what: "external IPs", setting: "externalIPs", ranges: "externalIPRanges", annotation: ANN.advertiseExternalIps, field: "spec.externalIPs" },
  loadBalancerIP: {
    what: "load balancer IPs",
    setting: "loadBalancerIPs",
    ranges: "loadBalancerIPRanges",
    annotation: ANN.advertiseLoadBalancerIps,
    field: "status.loadBalancer.ingress",
  },
};

/** The communities of every Service route (kubernetes.services.communities / largeCommunities), which Service ranges carry alone. */
interface RangeAttrs {
  communities: string[];
  largeCommunities: string[];
}

/** A configured Service range; `active` when its kind is advertised (kubernetes.services.clusterIPs, ...). */
interface ServiceRange {
  text: string;
  p: Prefix;
  kind: IpKind;
  active: boolean;
}

/** What a derivation's Services share: the config, whether this node withdraws its Service IPs, allowed and aggregated ranges, the global communities. */
function serviceContext(kube: KubernetesConfig, withdrawn: string | undefined): ServiceContext {
  const sv = kube.services;
  const allRanges: ServiceRange[] = [];
  for (const kind of Object.keys(KIND_TEXT) as IpKind[]) {
    const kt = KIND_TEXT[kind];
    for (const text of sv[kt.ranges]) {
      const p = tryPrefix(text);
      if (p) allRanges.push({ text: prefixToString(p), p, kind, active: sv[kt.setting] });
    }
  }
  allRanges.sort((a, b) => comparePrefixes(a.text, b.text));
  const globalComms = canonicalAll(sv.communities, canonicalCommunity);
  const globalLarge = canonicalAll(sv.largeCommunities, canonicalLargeCommunity);
  return {
    kube,
    withdrawn,
    ranges: sv.allowedRanges.map(tryPrefix).filter((p): p is Prefix => p !== null),
    allRanges,
    aggregates: allRanges.filter((r) => r.active),
    rangeAttrs: { communities: globalComms, largeCommunities: globalLarge },
    globalComms,
    globalLarge,
  };
}

function* deriveServices(
  services: readonly Service[],
  slices: readonly EndpointSlice[],
  nodeName: string,
  ctx: ServiceContext,
  problems: K8sProblem[],
  cache: DeriveCache,
): Generator<void, { names: string[]; entries: ServiceEntry[] }> {
  // Ready endpoint counts per "namespace/service" (each slice's share remembered).
  const ready = cache.ready;
  const run = cache.run;
  let count = 0;
  for (const s of slices) {
    if ((++count & (STEP - 1)) === 0) yield;
    let c = cache.slices.get(s);
    if (c === undefined) {
      c = sliceCounts(s, nodeName);
      cache.slices.set(s, c);
    }
    if (c === null) continue;
    let r = ready.get(c.key);
    if (r === undefined) ready.set(c.key, (r = { run, local: 0, total: 0 }));
    else if (r.run !== run) {
      r.run = run;
      r.local = 0;
      r.total = 0;
    }
    r.local += c.local;
    r.total += c.total;
  }
  count = 0;
  for (const [key, r] of ready) {
    if ((++count & (STEP - 1)) === 0) yield;
    if (r.run !== run) ready.delete(key);
  }
  // One name string per Service object (kept: a Map lookup with a string already hashed is cheap).
  const nameOf = (svc: Service) => {
    let n = cache.names.get(svc);
    if (n === undefined) cache.names.set(svc, (n = svcName(svc)));
    return n;
  };
  const sorted = yield* sortedBy(services, nameOf);
  const names = new Array<string>(sorted.length);
  const entries = new Array<ServiceEntry>(sorted.length);
  count = 0;
  for (let i = 0; i < sorted.length; i++) {
    if ((++count & (STEP - 1)) === 0) yield;
    const svc = sorted[i]!;
    const name = nameOf(svc);
    const e = serviceEntryFor(svc, ready.get(name) ?? NO_ENDPOINTS, ctx, cache); // only this run's ready entries are left
    names[i] = name;
    entries[i] = e;
    if (e.problems.length) problems.push(...e.problems);
  }
  return { names, entries };
}

const NO_ENDPOINTS = Object.freeze({ local: 0, total: 0 });

/** A Service's entry for these ready counts: the cached one while they (and the withdrawal) are the same, else made and cached. */
export function serviceEntryFor(svc: Service, counts: { local: number; total: number }, ctx: ServiceContext, cache: DeriveCache): ServiceEntry {
  let e = cache.services.get(svc);
  if (!e || e.local !== counts.local || e.total !== counts.total || e.withdrawn !== ctx.withdrawn) {
    e = serviceEntry(svc, counts, ctx);
    cache.services.set(svc, e);
  }
  return e;
}

/** What a derivation's Services share. */
export interface ServiceContext {
  kube: KubernetesConfig;
  withdrawn: string | undefined;
  /** kubernetes.services.allowedRanges. */
  ranges: Prefix[];
  /** Every configured Service range, and those of advertised kinds (whose aggregates cover Cluster-policy IPs). */
  allRanges: ServiceRange[];
  aggregates: ServiceRange[];
  rangeAttrs: RangeAttrs;
  globalComms: string[];
  globalLarge: string[];
}

/** One EndpointSlice's ready endpoints (all, and on `nodeName`) and the Service they count for; null without a service name label. */
export function sliceCounts(s: EndpointSlice, nodeName: string): { key: string; local: number; total: number } | null {
  const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
  if (!svc) return null;
  const r = { key: `${s.metadata.namespace ?? ""}/${svc}`, local: 0, total: 0 };
  for (const e of s.endpoints ?? []) {
    if (e.conditions?.ready === false) continue; // nil means ready (API docs)
    const n = e.addresses?.length ?? 0;
    r.total += n;
    if (e.nodeName === nodeName) r.local += n;
  }
  return r;
}

/** What one Service gives with these ready counts: its status, advertised IPs, communities and problems. */
function serviceEntry(svc: Service, counts: { local: number; total: number }, c: ServiceContext): ServiceEntry {
  const { withdrawn, globalComms, globalLarge } = c;
  const e: ServiceEntry = { local: counts.local, total: counts.total, withdrawn, result: undefined as unknown as ServiceResult, problems: [] };
  const problem = problemCollector(e.problems);
  {
    const name = svcName(svc);
    const obj = `Service/${name}`;
    const spec = svc.spec ?? {};
    const ann = svc.metadata.annotations ?? {};
    const get = annotationReader(obj, ann, problem);
    for (const u of unknownAnnotations(ann, "Service")) problem(obj, u.message, u.key);
    const override: Record<IpKind, boolean | undefined> = {
      clusterIP: get(ANN.advertiseClusterIp, parseBoolAnnotation),
      externalIP: get(ANN.advertiseExternalIps, parseBoolAnnotation),
      loadBalancerIP: get(ANN.advertiseLoadBalancerIps, parseBoolAnnotation),
    };
    const communities = [...globalComms];
    mergeCommunities(communities, get(ANN.communities, parseCommunitiesAnnotation) ?? [], parseCommunity);
    const largeCommunities = [...globalLarge];
    mergeCommunities(largeCommunities, get(ANN.largeCommunities, parseLargeCommunitiesAnnotation) ?? [], parseLargeCommunity);

    const st: K8sServiceStatus = { name, type: spec.type ?? "ClusterIP", readyLocal: counts.local, readyTotal: counts.total, ips: [] };
    if (spec.externalTrafficPolicy !== undefined) st.externalTrafficPolicy = spec.externalTrafficPolicy;
    if (spec.internalTrafficPolicy !== undefined) st.internalTrafficPolicy = spec.internalTrafficPolicy;
    const res: ServiceResult = { status: st, advertise: [], communities, largeCommunities };
    e.result = res;
    if (spec.type === "ExternalName") {
      st.ignored = "type ExternalName";
      return e;
    }
    if (spec.clusterIP === "None" || spec.clusterIPs?.[0] === "None") {
      st.ignored = "headless";
      return e;
    }

    const candidates: { kind: IpKind; text: string; hostname?: boolean }[] = [];
    const cips = spec.clusterIPs && spec.clusterIPs.length ? spec.clusterIPs : spec.clusterIP ? [spec.clusterIP] : [];
    for (const ip of cips) if (ip && ip !== "None") candidates.push({ kind: "clusterIP", text: ip });
    for (const ip of spec.externalIPs ?? []) if (ip) candidates.push({ kind: "externalIP", text: ip });
    for (const ing of svc.status?.loadBalancer?.ingress ?? []) {
      if (ing.ip) candidates.push({ kind: "loadBalancerIP", text: ing.ip });
      else if (ing.hostname) candidates.push({ kind: "loadBalancerIP", text: ing.hostname, hostname: true });
    }
    const seen = new Set<string>();
    for (const cand of candidates) {
      if (cand.hostname) {
        st.ips.push({ ip: cand.text, kind: cand.kind, advertised: false, form: "none", reason: "load balancer ingress has a hostname, not an IP" });
        continue;
      }
      const parsed = parseAddr(cand.text.trim());
      const text = parsed ? formatAddr(parsed.afi, parsed.addr) : cand.text;
      const k = `${cand.kind} ${text}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const d = serviceIpDecision(cand.kind, cand.text, parsed, override[cand.kind], spec, counts, c);
      if (d.invalid) problem(obj, `${cand.kind} ${JSON.stringify(cand.text)} is not an IP address; not advertised`, KIND_TEXT[cand.kind].field);
      const ipStatus: K8sServiceIp = { ip: text, kind: cand.kind, advertised: d.form !== "none", form: d.form, reason: d.reason };
      if (d.range) ipStatus.range = d.range;
      st.ips.push(ipStatus);
      if (d.form === "host" && parsed) res.advertise.push({ prefix: `${text}/${parsed.afi === AFI.IPV6 ? 128 : 32}`, kind: cand.kind });
    }
  }
  return e;
}

export function svcName(s: Service): string {
  return `${s.metadata.namespace ?? ""}/${s.metadata.name}`;
}

/**
 * The decision on one Service IP: the first failing rule wins. Inside an
 * advertised Service range of its kind, an IP whose traffic policy for that
 * kind is Cluster has no host route (the aggregate every node advertises
 * covers it); with policy Local it keeps its host route from the nodes with
 * ready endpoints, which is more specific than the aggregate and so steers
 * its traffic. A Service annotation switching its kind off cannot take an IP
 * out of an aggregate.
 */
function serviceIpDecision(
  kind: IpKind,
  raw: string,
  parsed: { afi: number; addr: Uint8Array } | null,
  override: boolean | undefined,
  spec: NonNullable<Service["spec"]>,
  counts: { local: number; total: number },
  c: ServiceContext,
): { form: K8sServiceIpForm; reason: string; range?: string; invalid?: boolean } {
  const kt = KIND_TEXT[kind];
  const { kube, withdrawn } = c;
  const sv = kube.services;
  const none = (reason: string) => ({ form: "none" as const, reason });
  // The advertised range of this kind holding the IP (ranges of a kind switched off globally are not advertised).
  const range = parsed ? c.aggregates.find((r) => r.kind === kind && contains(r.p, parsed.afi, parsed.addr))?.text : undefined;
  // 1. the kind's switch (the annotation overrides the global one)
  if (override === false) {
    const why = `${kt.what} not advertised (annotation ${kt.annotation})`;
    if (range && !withdrawn) return { form: "aggregate", range, reason: `${why}: no host route, but inside Service range ${range}, which every node advertises` };
    return none(why);
  }
  if (override === undefined && !sv[kt.setting]) return none(`${kt.what} not advertised (kubernetes.services.${kt.setting} false)`);
  // 2. the IP itself
  if (!parsed) return { ...none(`invalid IP address ${JSON.stringify(raw)}`), invalid: true };
  // 3. allowed ranges (Service ranges lie inside them: the config requires it)
  if (c.ranges.length > 0 && !c.ranges.some((p) => contains(p, parsed.afi, parsed.addr))) return none("outside kubernetes.services.allowedRanges");
  // 4. the node withdraws its Service IPs (and its Service ranges)
  if (withdrawn) return none(withdrawn);
  // 5./6. traffic policy and endpoints
  const policyName = kind === "clusterIP" ? "internalTrafficPolicy" : "externalTrafficPolicy";
  const policy = kind === "clusterIP" ? spec.internalTrafficPolicy : spec.externalTrafficPolicy;
  const inRange = range ? { range } : {};
  if (policy === "Local") {
    const where = range ? ` (inside Service range ${range}; the host routes of nodes with one steer it)` : "";
    if (counts.local === 0) return { form: "none", ...inRange, reason: `${policyName} Local: no ready endpoint on this node${where}` };
    return { form: "host", ...inRange, reason: `${policyName} Local: ${plural(counts.local, "ready endpoint", "ready endpoints")} on this node${where}` };
  }
  if (range) return { form: "aggregate", range, reason: `${policyName} Cluster: covered by Service range ${range}` };
  if (sv.requireEndpoints && counts.total === 0) return none("no ready endpoint in the cluster");
  const outside = sv[kt.ranges].length > 0 ? `; outside every kubernetes.services.${kt.ranges} range` : "";
  return { form: "host", reason: `${policyName} Cluster${outside}` };
}

/** Reads annotations of one object: a bad value becomes a problem (naming the object and key) and reads as absent. */
function annotationReader(obj: string, ann: Record<string, string>, problem: (object: string, message: string, field?: string) => void) {
  return <T>(key: string, parse: (s: string) => Parsed<T>): T | undefined => {
    const text = ann[key];
    if (text === undefined) return undefined;
    const r = parse(text);
    if ("error" in r) {
      problem(obj, `${r.error}; annotation ignored`, key);
      return undefined;
    }
    return r.value;
  };
}
