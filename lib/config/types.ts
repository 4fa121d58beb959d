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
  log: { level: "debug" | "info" | "warn" | "error"; format: "text" | "json" };
}
