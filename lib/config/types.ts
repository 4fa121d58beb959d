/**
 * The normalised router configuration: what `lib/config` produces from the
 * YAML file (defaults filled in, peer groups merged, names resolved) and what
 * the daemon, the RIB and policy consume. Plain data, no logic: the types
 * are derived from the schema (schema.ts), so a key added there appears here.
 */
import type { z } from "zod";
import type {
  AdvertiseEntrySchema,
  BfdSchema,
  GracefulRestartSchema,
  HealthCheckSchema,
  CommunitySetSchema,
  KernelSchema,
  KubernetesSchema,
  PeerConfigSchema,
  PolicyMatchSchema,
  PolicySchema,
  PolicySetSchema,
  PolicyTermSchema,
  SecretRefSchema,
  maxPrefix,
} from "./schema.ts";

import type * as rib from "../rib/policy-types.ts";

// The policy language is the RIB's (lib/rib/policy-types.ts); the schema must
// produce exactly it, which these compile-time checks hold it to.
export type { CommunitySet, FamilyName, Policy, PolicyMatch, PolicyRef, PolicySet, PolicyTerm, PrefixMatch } from "../rib/policy-types.ts";
import type { Policy, PolicyRef, PrefixMatch } from "../rib/policy-types.ts";
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const schemaMatchesRib: [
  Same<z.output<typeof PolicyMatchSchema>, rib.PolicyMatch>,
  Same<z.output<ReturnType<typeof CommunitySetSchema>>, rib.CommunitySet>,
  Same<z.output<typeof PolicySetSchema>, rib.PolicySet>,
  Same<z.output<typeof PolicyTermSchema>, rib.PolicyTerm>,
  Same<{ name: string } & z.output<typeof PolicySchema>, rib.Policy>,
] = [true, true, true, true, true];
void schemaMatchesRib;
export type MaxPrefix = z.output<ReturnType<typeof maxPrefix>>;
/**
 * A peer with its groups merged and every default applied. `import`/`export`
 * are always present (undefined: not configured, the RFC 8212 default).
 */
export type PeerConfig = Omit<z.output<typeof PeerConfigSchema>, "import" | "export" | "asOverride"> & {
  import: PolicyRef;
  export: PolicyRef;
  /** Send routes back to the AS they came from (eBGP), normally suppressed (default false). */
  asOverride?: boolean;
};
export type AdvertiseConfig = z.output<typeof AdvertiseEntrySchema>;
/** One `healthChecks:` entry (lib/health): prefixes announced while a local check passes. */
export type HealthCheckConfig = z.output<typeof HealthCheckSchema>;
/** Kernel route programming (the FIB): off unless enabled (on by default under `kubernetes:`). */
export type KernelConfig = Omit<z.output<typeof KernelSchema>, "enabled"> & { enabled: boolean };
/** A Kubernetes Secret key holding a TCP-MD5 password. */
export type SecretRef = z.output<typeof SecretRefSchema>;

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
export type KubernetesConfig = Omit<z.output<typeof KubernetesSchema>, "peers"> & { peers: KubePeerConfig[] };

export interface RouterConfig {
  /** The file it came from (for messages). */
  source: string;
  asn: number;
  routerId: string;
  listen: { address: string; port: number }[];
  controlSocket: string;
  peers: PeerConfig[];
  advertise: AdvertiseConfig[];
  /** Health-checked prefixes (`healthChecks:`); absent or empty: none. */
  healthChecks?: HealthCheckConfig[];
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
  /** The top-level `gracefulRestart:` as written (every peer already has it merged in; kept for peers made later: `peer add`, Kubernetes). */
  gracefulRestart?: Partial<GracefulRestartConfig>;
  /** The top-level `bfd:` as written, likewise. */
  bfd?: Partial<BfdConfig>;
  /** Prometheus metrics endpoint, off when absent. */
  metrics?: { address: string; port: number; path: string };
  /** MRT BGP4MP recording of every session, off when absent. */
  mrtDump?: { file: string; rotate: number };
}
/** Graceful restart settings of one peer (merged, defaults applied). */
export type GracefulRestartConfig = z.output<typeof GracefulRestartSchema>;
/** BFD settings of one peer (merged, defaults applied; times in ms). */
export type BfdConfig = z.output<typeof BfdSchema>;
