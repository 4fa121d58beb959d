/**
 * What changed between two normalised configurations, for a reload (SIGHUP)
 * that keeps unaffected sessions running: peers added, removed and changed
 * (and, from each changed key's `reload` metadata in the schema, whether a
 * new session is needed, or re-running import or export), advertisements
 * added and removed, policies whose meaning changed, global settings that
 * changed, and the peers a policy change affects.
 */
import { type ReloadEffect, DocumentSchema, PeerConfigSchema, metaOf } from "./schema.ts";
import type { AdvertiseConfig, PeerConfig, PolicyRef, RouterConfig } from "./types.ts";

export interface PeerChange {
  address: string;
  before: PeerConfig;
  after: PeerConfig;
  /** The PeerConfig keys whose values differ, in schema order. */
  fields: string[];
  /** A changed key only a new session can apply (negotiated in OPEN, timers, transport): the session is torn down and re-established. */
  needsReset: boolean;
  /** A changed key decides what import accepts (import, allowOwnAs, enforceFirstAs): re-run import over the Adj-RIB-In (and ask for a route refresh). */
  reimport: boolean;
  /** A changed key decides what is sent (export, nextHopSelf, routeReflectorClient, asOverride): re-evaluate the Adj-RIB-Out. */
  reexport: boolean;
}

export interface ConfigDiff {
  peersAdded: PeerConfig[];
  peersRemoved: PeerConfig[];
  peersChanged: PeerChange[];
  /**
   * Advertisements to originate. An advertisement whose attributes changed
   * appears twice: the old one in advertiseRemoved and the new one here.
   */
  advertiseAdded: AdvertiseConfig[];
  advertiseRemoved: AdvertiseConfig[];
  /** Policies added, removed, redefined, or whose referenced prefix lists changed (sorted). */
  policiesChanged: string[];
  /** Top-level settings (reload effect "global") that changed: asn, routerId, listen, controlSocket, multipath, decision, clusterId, mrai, kernel, health, log. */
  globalChanged: string[];
  /** Peers present before and after (not added) whose import or export chain names a changed policy. */
  peersAffectedByPolicy: string[];
}

/** The PeerConfig keys, in schema order, with what a change of each needs. */
const PEER_EFFECTS: ReadonlyMap<string, ReloadEffect> = new Map(
  Object.entries(PeerConfigSchema.shape).map(([k, s]) => [k, metaOf(s).reload ?? "reset"]),
);

/** The PeerConfig keys whose change only a new session can apply. */
export const RESET_FIELDS: readonly string[] = [...PEER_EFFECTS].filter(([, e]) => e === "reset").map(([k]) => k);

const GLOBAL_FIELDS = Object.entries(DocumentSchema.shape)
  .filter(([, s]) => metaOf(s).reload === "global")
  .map(([k]) => k as keyof RouterConfig);

/** Structural equality of plain config data (key order does not matter; undefined equals absent). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((x, i) => sameValue(x, bb[i]));
  }
  const ao = a as Record<string, unknown>;
  const bo = b as Record<string, unknown>;
  for (const k in ao) if (!sameValue(ao[k], bo[k])) return false;
  // Keys only b has: equal only when undefined there (absent in a).
  for (const k in bo) if (!(k in ao) && bo[k] !== undefined) return false;
  return true;
}

/** The policy names of an import/export chain ([] for all, none or unset). */
export function chainNames(ref: PolicyRef): string[] {
  return ref?.kind === "chain" ? ref.names : [];
}

/**
 * What changed between two configurations of one peer and what applying it
 * needs. A key unknown to the schema (none today) is treated as needing a new session.
 */
export function diffPeer(before: PeerConfig, after: PeerConfig): Omit<PeerChange, "address" | "before" | "after"> {
  const a = before as unknown as Record<string, unknown>;
  const b = after as unknown as Record<string, unknown>;
  const keys = [...PEER_EFFECTS.keys()];
  for (const k of [...Object.keys(a), ...Object.keys(b)]) if (!keys.includes(k)) keys.push(k);
  const fields = keys.filter((k) => !sameValue(a[k], b[k]));
  const effect = (e: ReloadEffect) => fields.some((f) => (PEER_EFFECTS.get(f) ?? "reset") === e);
  return { fields, needsReset: effect("reset"), reimport: effect("reimport"), reexport: effect("reexport") };
}

/**
 * The part of a diff that does not depend on the peers or advertisements
 * (policies, prefix lists, global settings): what a reload that compares
 * peers and local routes against the running state needs, without walking
 * tens of thousands of advertisements.
 */
export function diffSettings(old: RouterConfig, next: RouterConfig): Pick<ConfigDiff, "policiesChanged" | "globalChanged"> {
  const prefixListsChanged = new Set<string>();
  for (const name of new Set([...Object.keys(old.prefixLists), ...Object.keys(next.prefixLists)])) {
    if (!sameValue(old.prefixLists[name], next.prefixLists[name])) prefixListsChanged.add(name);
  }
  const policiesChanged: string[] = [];
  for (const name of new Set([...Object.keys(old.policies), ...Object.keys(next.policies)])) {
    const a = old.policies[name];
    const b = next.policies[name];
    const usesChangedList = (p: typeof a) => !!p?.terms.some((t) => t.match?.prefixList?.some((l) => prefixListsChanged.has(l)));
    if (!sameValue(a, b) || usesChangedList(a) || usesChangedList(b)) policiesChanged.push(name);
  }
  policiesChanged.sort();

  const globalChanged = GLOBAL_FIELDS.filter((k) => !sameValue(old[k], next[k])) as string[];

  return { policiesChanged, globalChanged };
}

export function diffConfig(old: RouterConfig, next: RouterConfig): ConfigDiff {
  const oldPeers = new Map(old.peers.map((p) => [p.address, p]));
  const nextPeers = new Map(next.peers.map((p) => [p.address, p]));
  const peersAdded = next.peers.filter((p) => !oldPeers.has(p.address));
  const peersRemoved = old.peers.filter((p) => !nextPeers.has(p.address));
  const peersChanged: PeerChange[] = [];
  for (const after of next.peers) {
    const before = oldPeers.get(after.address);
    if (!before) continue;
    const d = diffPeer(before, after);
    if (d.fields.length) peersChanged.push({ address: after.address, before, after, ...d });
  }

  // Advertisements are compared whole: a changed attribute withdraws the old and adds the new.
  // Matched by prefix first: a Kubernetes node has tens of thousands of them.
  const byPrefix = (list: RouterConfig["advertise"]) => {
    const m = new Map<string, RouterConfig["advertise"]>();
    for (const a of list) {
      const l = m.get(a.prefix);
      if (l) l.push(a);
      else m.set(a.prefix, [a]);
    }
    return m;
  };
  const oldAdv = byPrefix(old.advertise);
  const nextAdv = byPrefix(next.advertise);
  const advertiseAdded = next.advertise.filter((a) => !oldAdv.get(a.prefix)?.some((b) => sameValue(a, b)));
  const advertiseRemoved = old.advertise.filter((a) => !nextAdv.get(a.prefix)?.some((b) => sameValue(a, b)));

  const { policiesChanged, globalChanged } = diffSettings(old, next);

  const changedSet = new Set(policiesChanged);
  const peersAffectedByPolicy = next.peers
    .filter((p) => oldPeers.has(p.address))
    .filter((p) => [...chainNames(p.import), ...chainNames(p.export)].some((n) => changedSet.has(n)))
    .map((p) => p.address);

  return { peersAdded, peersRemoved, peersChanged, advertiseAdded, advertiseRemoved, policiesChanged, globalChanged, peersAffectedByPolicy };
}
