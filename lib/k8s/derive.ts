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
 * - Routes: this node's pod CIDRs, and the IPs of Services (cluster, external
 *   and load balancer IPs) that are advertised by the rules of
 *   `serviceIpDecision` (kind switches, allowed ranges, cordon/exclude,
 *   traffic policies and endpoint readiness).
 * - Generated policies `k8s-mesh-export` and `k8s-external-export` (and the
 *   prefix list `k8s-pod-cidrs`) keep Service IPs and routes learned from
 *   external peers out of the mesh, and decide whether pod CIDRs go outside.
 *
 * The output is deterministic: the same input (in any array order) gives a
 * deep-equal config, so the daemon's diff never churns sessions.
 */
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { formatAddr, parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import { AFI, type Prefix } from "../core/addr.ts";
import { DEFAULTS, defaultKubernetesConfig } from "../config/load.ts";
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
interface NodeView {
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
  const keyed = items.map((item) => {
    const text = prefixOf(item);
    const p = tryPrefix(text);
    // Parsed prefixes first, by family, address bytes and length (hex compares as the bytes do); others by text.
    const key = p ? `${p.afi}${Buffer.from(p.addr).toString("hex")}${p.len.toString(16).padStart(2, "0")}` : `9${text}`;
    return { key, item };
  });
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return keyed.map((k) => k.item);
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

export function derive(input: DeriveInput): Derived {
  const { nodeName, base, secrets } = input;
  const kube: KubernetesConfig = base.kubernetes ?? defaultKubernetesConfig();
  const problems: K8sProblem[] = [];
  const problem = (object: string, message: string, field?: string) => {
    const p: K8sProblem = { object, message };
    if (field !== undefined) p.field = field;
    problems.push(p);
  };

  // Policy names import/export may use: the file's and the generated ones.
  const policyNames = new Set([...Object.keys(base.policies ?? {}), MESH_EXPORT, EXTERNAL_EXPORT]);

  // -- every Node's view of itself, sorted by name ----------------------------
  const nodes = [...input.nodes].sort((a, b) => byText(a.metadata.name, b.metadata.name));
  const views: NodeView[] = [];
  let myPeersAnnotation: KubePeerConfig[] = [];
  for (const n of nodes) {
    const obj = `Node/${n.metadata.name}`;
    const ann = n.metadata.annotations ?? {};
    const get = annotationReader(obj, ann, problem);
    for (const u of unknownAnnotations(ann, "Node")) problem(obj, u.message, u.key);
    const asn = get(ANN.asn, parseAsnAnnotation) ?? kube.asn;
    get(ANN.routerId, parseRouterIdAnnotation); // validated for every node; used for our own below
    const rr = get(ANN.routeReflector, parseClusterIdAnnotation);
    const rrc = get(ANN.routeReflectorClient, parseClusterIdAnnotation);
    const peers = get(ANN.peers, (s) => parsePeersAnnotation(s, { asn, policies: [...policyNames] }));
    if (n.metadata.name === nodeName && peers) myPeersAnnotation = peers;
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
    for (const a of n.status?.addresses ?? []) {
      if (a.type !== "InternalIP") continue;
      const p = parseAddr(a.address);
      if (!p) {
        if (isMe) problem(obj, `InternalIP ${JSON.stringify(a.address)} is not an IP address; ignored`, "status.addresses");
        continue;
      }
      const text = formatAddr(p.afi, p.addr);
      if (p.afi === AFI.IPV4) v.v4 ??= text;
      else v.v6 ??= text;
    }
    views.push(v);
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
  const spec = me.node.spec ?? {};
  const rawCidrs = spec.podCIDRs && spec.podCIDRs.length ? spec.podCIDRs : spec.podCIDR ? [spec.podCIDR] : [];
  const podCidrs: string[] = [];
  for (const c of rawCidrs) {
    const p = tryPrefix(c.trim());
    if (!p) {
      let why = "";
      try {
        parsePrefix(c.trim());
      } catch (e) {
        why = (e as Error).message.replace(/^invalid prefix "[^"]*": /, "");
      }
      problem(myObj, `pod CIDR ${JSON.stringify(c)} is not a prefix (${why}); ignored`, spec.podCIDRs?.length ? "spec.podCIDRs" : "spec.podCIDR");
      continue;
    }
    const t = prefixToString(p);
    if (!podCidrs.includes(t)) podCidrs.push(t);
  }
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

  if (kube.mesh) meshPeers(me, views, kube, peers, problem);

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
  const generated = [...peers.values()].sort((a, b) => compareAddresses(a.peer.address, b.peer.address));
  status.peers = generated.map((c) => c.status);
  const allPeers = [...basePeers, ...generated.map((c) => c.peer)].sort((a, b) => compareAddresses(a.address, b.address));

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
  const advertised = new Map<string, { adv: AdvertiseConfig; orig: K8sOriginated; services: string[] }>();
  const baseHas = (prefix: string) => baseAdvertise.some((a) => a.prefix === prefix);
  if (kube.advertisePodCidrs) {
    for (const prefix of podCidrs) {
      if (baseHas(prefix)) continue;
      advertised.set(prefix, {
        adv: { prefix, communities: [], largeCommunities: [] },
        orig: { prefix, kind: "podCIDR", communities: [], largeCommunities: [] },
        services: [],
      });
    }
  }

  let withdrawn: string | undefined;
  if (kube.services.withdrawWhenCordoned && spec.unschedulable === true) withdrawn = "node is cordoned";
  else if (kube.services.withdrawWhenExcluded && Object.prototype.hasOwnProperty.call(labels, EXCLUDE_LABEL)) withdrawn = `node has label ${EXCLUDE_LABEL}`;
  if (withdrawn) status.servicesWithdrawn = withdrawn;

  const serviceStatuses = deriveServices(input.services, input.slices, me.name, kube, withdrawn, problem);
  status.services = serviceStatuses.map((s) => s.status);
  for (const s of serviceStatuses) {
    for (const ip of s.advertise) {
      const prefix = ip.prefix;
      if (baseHas(prefix)) continue;
      const have = advertised.get(prefix);
      if (!have) {
        advertised.set(prefix, {
          adv: { prefix, communities: [...s.communities], largeCommunities: [...s.largeCommunities] },
          orig: { prefix, kind: ip.kind, service: s.status.name, communities: [], largeCommunities: [] },
          services: [s.status.name],
        });
        continue;
      }
      if (have.orig.kind === "podCIDR") continue; // a /32 pod CIDR: the pod CIDR route stays as it is
      mergeCommunities(have.adv.communities, s.communities, parseCommunity);
      mergeCommunities(have.adv.largeCommunities, s.largeCommunities, parseLargeCommunity);
      if (!have.services.includes(s.status.name)) have.services.push(s.status.name);
    }
  }
  const genAdvertise = sortByPrefix([...advertised.values()], (g) => g.adv.prefix);
  status.originated = genAdvertise.map((g) => {
    const o: K8sOriginated = { ...g.orig, communities: [...g.adv.communities], largeCommunities: [...g.adv.largeCommunities] };
    if (g.services.length) o.service = g.services.join(", ");
    return o;
  });
  const advertise = sortByPrefix([...baseAdvertise, ...genAdvertise.map((g) => g.adv)], (a) => a.prefix);

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
  return done(config);
}


function sortProblems(ps: K8sProblem[]): K8sProblem[] {
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

function meshPeers(
  me: NodeView,
  views: NodeView[],
  kube: KubernetesConfig,
  out: Map<string, { peer: PeerConfig; status: K8sPeerStatus; what: string }>,
  problem: (object: string, message: string, field?: string) => void,
): void {
  const sameAs = views.filter((v) => v.name !== me.name && v.asn === me.asn && !v.deleting && (v.v4 || v.v6));
  if (me.role === "reflector-client" && !sameAs.some((v) => v.role === "reflector" && v.clusterId === me.clusterId)) {
    problem(`Node/${me.name}`, `no route reflector with cluster id ${me.clusterId} (in AS ${me.asn}); no mesh peers`, ANN.routeReflectorClient);
    return;
  }
  for (const other of sameAs) {
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

interface ServiceResult {
  status: K8sServiceStatus;
  /** Advertised IPs as host prefixes. */
  advertise: { prefix: string; kind: IpKind }[];
  communities: string[];
  largeCommunities: string[];
}

const KIND_TEXT: Record<IpKind, { what: string; setting: "clusterIPs" | "externalIPs" | "loadBalancerIPs"; annotation: string; field: string }> = {
  clusterIP: { what: "cluster IPs", setting: "clusterIPs", annotation: ANN.advertiseClusterIp, field: "spec.clusterIPs" },
  externalIP: { what: "external IPs", setting: "externalIPs", annotation: ANN.advertiseExternalIps, field: "spec.externalIPs" },
  loadBalancerIP: { what: "load balancer IPs", setting: "loadBalancerIPs", annotation: ANN.advertiseLoadBalancerIps, field: "status.loadBalancer.ingress" },
};

function deriveServices(
  services: Service[],
  slices: EndpointSlice[],
  nodeName: string,
  kube: KubernetesConfig,
  withdrawn: string | undefined,
  problem: (object: string, message: string, field?: string) => void,
): ServiceResult[] {
  const sv = kube.services;
  // Ready endpoint counts per "namespace/service".
  const ready = new Map<string, { local: number; total: number }>();
  for (const s of slices) {
    const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!svc) continue;
    const key = `${s.metadata.namespace ?? ""}/${svc}`;
    const r = ready.get(key) ?? { local: 0, total: 0 };
    for (const e of s.endpoints ?? []) {
      if (e.conditions?.ready === false) continue; // nil means ready (API docs)
      const n = e.addresses?.length ?? 0;
      r.total += n;
      if (e.nodeName === nodeName) r.local += n;
    }
    ready.set(key, r);
  }
  const ranges = sv.allowedRanges.map(tryPrefix).filter((p): p is Prefix => p !== null);
  const globalComms = canonicalAll(sv.communities, canonicalCommunity);
  const globalLarge = canonicalAll(sv.largeCommunities, canonicalLargeCommunity);

  const sorted = [...services].sort((a, b) => byText(svcName(a), svcName(b)));
  const out: ServiceResult[] = [];
  for (const svc of sorted) {
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

    const counts = ready.get(`${svc.metadata.namespace ?? ""}/${svc.metadata.name}`) ?? { local: 0, total: 0 };
    const st: K8sServiceStatus = { name, type: spec.type ?? "ClusterIP", readyLocal: counts.local, readyTotal: counts.total, ips: [] };
    if (spec.externalTrafficPolicy !== undefined) st.externalTrafficPolicy = spec.externalTrafficPolicy;
    if (spec.internalTrafficPolicy !== undefined) st.internalTrafficPolicy = spec.internalTrafficPolicy;
    const res: ServiceResult = { status: st, advertise: [], communities, largeCommunities };
    out.push(res);
    if (spec.type === "ExternalName") {
      st.ignored = "type ExternalName";
      continue;
    }
    if (spec.clusterIP === "None" || spec.clusterIPs?.[0] === "None") {
      st.ignored = "headless";
      continue;
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
    for (const c of candidates) {
      if (c.hostname) {
        st.ips.push({ ip: c.text, kind: c.kind, advertised: false, reason: "load balancer ingress has a hostname, not an IP" });
        continue;
      }
      const parsed = parseAddr(c.text.trim());
      const text = parsed ? formatAddr(parsed.afi, parsed.addr) : c.text;
      const k = `${c.kind} ${text}`;
      if (seen.has(k)) continue;
      seen.add(k);
      const d = serviceIpDecision(c.kind, c.text, parsed, override[c.kind], spec, counts, ranges, kube, withdrawn);
      if (d.invalid) problem(obj, `${c.kind} ${JSON.stringify(c.text)} is not an IP address; not advertised`, KIND_TEXT[c.kind].field);
      const ipStatus: K8sServiceIp = { ip: text, kind: c.kind, advertised: d.advertised, reason: d.reason };
      st.ips.push(ipStatus);
      if (d.advertised && parsed) res.advertise.push({ prefix: `${text}/${parsed.afi === AFI.IPV6 ? 128 : 32}`, kind: c.kind });
    }
  }
  return out;
}

function svcName(s: Service): string {
  return `${s.metadata.namespace ?? ""}/${s.metadata.name}`;
}

/** The decision on one Service IP: the first failing rule wins. */
function serviceIpDecision(
  kind: IpKind,
  raw: string,
  parsed: { afi: number; addr: Uint8Array } | null,
  override: boolean | undefined,
  spec: NonNullable<Service["spec"]>,
  counts: { local: number; total: number },
  ranges: Prefix[],
  kube: KubernetesConfig,
  withdrawn: string | undefined,
): { advertised: boolean; reason: string; invalid?: boolean } {
  const kt = KIND_TEXT[kind];
  const sv = kube.services;
  // 1. the kind's switch (the annotation overrides the global one)
  if (override === false) return { advertised: false, reason: `${kt.what} not advertised (annotation ${kt.annotation})` };
  if (override === undefined && !sv[kt.setting]) return { advertised: false, reason: `${kt.what} not advertised (kubernetes.services.${kt.setting} false)` };
  // 2. the IP itself
  if (!parsed) return { advertised: false, reason: `invalid IP address ${JSON.stringify(raw)}`, invalid: true };
  // 3. allowed ranges
  if (ranges.length > 0 && !ranges.some((p) => contains(p, parsed.afi, parsed.addr))) {
    return { advertised: false, reason: "outside kubernetes.services.allowedRanges" };
  }
  // 4. the node withdraws its Service IPs
  if (withdrawn) return { advertised: false, reason: withdrawn };
  // 5./6. traffic policy and endpoints
  const policyName = kind === "clusterIP" ? "internalTrafficPolicy" : "externalTrafficPolicy";
  const policy = kind === "clusterIP" ? spec.internalTrafficPolicy : spec.externalTrafficPolicy;
  if (policy === "Local") {
    if (counts.local === 0) return { advertised: false, reason: `${policyName} Local: no ready endpoint on this node` };
    return { advertised: true, reason: `${policyName} Local: ${plural(counts.local, "ready endpoint", "ready endpoints")} on this node` };
  }
  if (sv.requireEndpoints && counts.total === 0) return { advertised: false, reason: "no ready endpoint in the cluster" };
  return { advertised: true, reason: `${policyName} Cluster` };
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
