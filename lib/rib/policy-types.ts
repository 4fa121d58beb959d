/**
 * The policy language the RIB evaluates, as plain data: prefix-list entries,
 * terms with match / set / action, named policies and a peer's import or
 * export reference. The RIB owns these types; lib/config's schema produces
 * values of them from a file (and is checked against them at compile time),
 * and lib/rib/policy.ts compiles them into matchers.
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
  /** Names of prefix lists. */
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

/** Community changes: replace (first), then add and remove. */
export interface CommunitySet {
  add?: string[];
  remove?: string[];
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
 * "none". `undefined` = not configured: the RFC 8212 default (eBGP: nothing,
 * iBGP: all).
 */
export type PolicyRef = { kind: "all" } | { kind: "none" } | { kind: "chain"; names: string[] } | undefined;
