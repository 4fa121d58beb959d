/**
 * The normalised router configuration: what `lib/config` produces from the
 * YAML file (defaults filled in, peer groups merged, names resolved) and what
 * the daemon, the RIB and policy consume. Plain data, no logic.
 */

export type FamilyName = "ipv4" | "ipv6";

/** One prefix-list entry: `prefix` with an optional length range (ge/le, inclusive). */
export interface PrefixMatch {
  prefix: string;
  /** Minimum prefix length matched (default: the prefix's own length). */
  ge?: number;
  /** Maximum prefix length matched (default: the family maximum when ge is given, as in Cisco/FRR prefix lists; else the prefix's own length). */
  le?: number;
}

/** Conditions of a policy term; all present conditions must hold (AND); inside a list any entry may match (OR). */
export interface PolicyMatch {
  /** Inline prefix entries. */
  prefix?: PrefixMatch[];
  /** Names of prefix lists (top-level `prefixLists`). */
  prefixList?: string[];
  /** Route carries any of these communities ("A:B" or well-known names). */
  community?: string[];
  /** Route carries any of these large communities ("A:B:C"). */
  largeCommunity?: string[];
  /** Regular expression over the AS path text "65001 65002 {65003,65004}" (empty string for an empty path). */
  asPath?: string;
  /** Next hop is one of these addresses. */
  nextHop?: string[];
  /** Route was learned from one of these neighbour addresses ("local" matches originated routes). */
  neighbor?: string[];
  /** Route is of this family. */
  family?: FamilyName;
  /** Route came from: "local" (originated here), "ibgp" or "ebgp" peers. */
  source?: ("local" | "ibgp" | "ebgp")[];
}

export interface CommunitySet {
  add?: string[];
  remove?: string[];
  /** Replace all communities with this list (applied before add/remove). */
  replace?: string[];
}

export interface PolicySet {
  localPref?: number;
  med?: number;
  community?: CommunitySet;
  largeCommunity?: CommunitySet;
  /** "self" (the session's local address) or an address. */
  nextHop?: string;
  /** Prepend our own AS this many times (1..32). */
  asPathPrepend?: number;
}

export interface PolicyTerm {
  /** Optional name, shown in logs and `show`. */
  name?: string;
  match?: PolicyMatch;
  set?: PolicySet;
  /** accept/reject end evaluation; absent: apply `set` and go on to the next term. */
  action?: "accept" | "reject";
}

export interface Policy {
  name: string;
  terms: PolicyTerm[];
  /** Verdict when no term decided (default reject). */
  default: "accept" | "reject";
}

/**
 * A peer's import or export: a chain of policy names evaluated in order (the
 * first accept/reject wins; the last policy's default applies), or "all" /
 * "none". `undefined` = not configured: RFC 8212 default (eBGP: nothing,
 * iBGP: all).
 */
export type PolicyRef = { kind: "all" } | { kind: "none" } | { kind: "chain"; names: string[] } | undefined;

export interface MaxPrefix {
  limit: number;
  action: "warn" | "restart";
  /** Seconds before reconnecting after a max-prefix teardown (action restart). */
  restartAfter: number;
}

export interface PeerConfig {
  address: string;
  remoteAs: number;
  localAs: number;
  port: number;
  localAddress?: string;
  passive: boolean;
  holdTime: number;
  keepalive?: number;
  connectRetry: number;
  families: FamilyName[];
  nextHopSelf: boolean;
  routeReflectorClient: boolean;
  /** eBGP multihop TTL, or false for directly connected (TTL 1 for eBGP). */
  multihop: number | false;
  import: PolicyRef;
  export: PolicyRef;
  /** Per family; the same limit for every family when given once. */
  maxPrefix?: MaxPrefix;
  description?: string;
  /** Administratively down (with an optional shutdown message). */
  shutdown: boolean;
  shutdownMessage?: string;
  /** Accept our own AS in received AS paths up to this many times (0: loop detection on). */
  allowOwnAs: number;
  /** Send routes back to the AS they came from (eBGP), normally suppressed. */
  asOverride?: boolean;
  addPath?: { send: boolean; receive: boolean };
  /** The peer group it was built from, if any. */
  group?: string;
  /** TCP-MD5 (RFC 2385) key, resolved from `password` / `passwordFile` (or a Kubernetes Secret). Never shown. */
  password?: string;
}

export interface AdvertiseConfig {
  prefix: string;
  nextHop?: string;
  communities: string[];
  largeCommunities: string[];
  localPref?: number;
  med?: number;
  asPathPrepend?: number;
}

/** Kernel route programming (the FIB): off unless enabled. */
export interface KernelConfig {
  enabled: boolean;
  /** Routing table id (254 = main). */
  table: number;
  /** rtm_protocol of our routes (186 = RTPROT_BGP). */
  protocol: number;
  /** Route priority (metric). */
  metric: number;
  /** Install multipath sets as one ECMP route. */
  ecmp: boolean;
  families: FamilyName[];
  /** Prefixes never installed (with their more specifics), e.g. the node's own pod CIDR. */
  exclude: string[];
  /** Leave our routes in the kernel on exit (with graceful restart). */
  retainOnExit: boolean;
  /** Seconds after start-up before stale routes are removed even without End-of-RIB from every peer. */
  startupDeadline: number;
}

/** A Kubernetes Secret key holding a TCP-MD5 password. */
export interface SecretRef {
  namespace: string;
  name: string;
  key: string;
}

/** An external (top-of-rack) peer of `kubernetes.peers`: a peer template plus the nodes it applies to. */
export interface KubePeerConfig {
  /** The peer as on any router (address, remoteAs, ...); localAs is filled in per node. */
  peer: PeerConfig;
  /** Label equality selector (matchLabels); empty selects every node. */
  nodeSelector: Record<string, string>;
  /** Password from a Secret (resolved at run time). */
  passwordSecret?: SecretRef;
}

/** The `kubernetes:` section: what `bgpctl watch-k8s` derives peers and routes from. */
export interface KubernetesConfig {
  /** This node's name (else --node-name, NODE_NAME, the hostname). */
  nodeName?: string;
  /** Kubeconfig file (else --kubeconfig, KUBECONFIG, in-cluster, ~/.kube/config). */
  kubeconfig?: string;
  /** The cluster's AS number (default 64512); a node annotation may override it per node. */
  asn: number;
  /** Router id override (else the node's annotation, its IPv4 InternalIP, or one derived from its name). */
  routerId?: string;
  /** iBGP sessions between the nodes (full mesh, or reflectors by annotation). */
  mesh: boolean;
  /** Originate this node's pod CIDRs (to the mesh, and to external peers when advertisePodCidrsExternal). */
  advertisePodCidrs: boolean;
  /** Also send the pod CIDRs to external peers. */
  advertisePodCidrsExternal: boolean;
  /** Hold time of mesh sessions. */
  meshHoldTime: number;
  /** BGP port of the other nodes. */
  meshPort: number;
  peers: KubePeerConfig[];
  services: {
    clusterIPs: boolean;
    externalIPs: boolean;
    loadBalancerIPs: boolean;
    /** Only Service IPs inside these prefixes are advertised; empty: any. */
    allowedRanges: string[];
    /** Added to every Service route. */
    communities: string[];
    largeCommunities: string[];
    /** Withdraw Service IPs when the node is cordoned (spec.unschedulable). */
    withdrawWhenCordoned: boolean;
    /** Withdraw Service IPs when the node has the label node.kubernetes.io/exclude-from-external-load-balancers. */
    withdrawWhenExcluded: boolean;
    /** externalTrafficPolicy Cluster: advertise only while the Service has a ready endpoint somewhere. */
    requireEndpoints: boolean;
  };
  api: {
    /** LIST page size. */
    pageSize: number;
    /** WATCH timeoutSeconds (< 290: Bun's fetch idle timeout is 300 s). */
    watchTimeoutSeconds: number;
  };
}

export interface RouterConfig {
  /** The file it came from (for messages). */
  source: string;
  asn: number;
  routerId: string;
  listen: { address: string; port: number }[];
  controlSocket: string;
  peers: PeerConfig[];
  advertise: AdvertiseConfig[];
  policies: Record<string, Policy>;
  prefixLists: Record<string, PrefixMatch[]>;
  multipath: { enabled: boolean; maxPaths: number };
  decision: {
    /** Compare MED between routes from different neighbour ASes. */
    alwaysCompareMed: boolean;
    /** Prefer the oldest eBGP route before router id (RFC 5004). */
    preferOldest: boolean;
  };
  /** Route-reflector cluster id (default: router id). */
  clusterId?: string;
  /** Minimum route advertisement interval, seconds (eBGP and iBGP). */
  mrai: number;
  kernel: KernelConfig;
  /** HTTP health endpoint (/healthz, /readyz), off when absent. */
  health?: { address: string; port: number };
  /** Present when the file has a `kubernetes:` section (`bgpctl watch-k8s`). */
  kubernetes?: KubernetesConfig;
  log: { level: "debug" | "info" | "warn" | "error"; format: "text" | "json" };
}
