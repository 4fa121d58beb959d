/**
 * What changed between two normalised configurations, for a reload (SIGHUP)
 * that keeps unaffected sessions running: peers added, removed and changed
 * (and whether a change needs a new session or can be applied in place),
 * advertisements added and removed, policies whose meaning changed, global
 * settings that changed, and the peers a policy change affects.
 */
import type { AdvertiseConfig, PeerConfig, PolicyRef, RouterConfig } from "./types.ts";

export interface PeerChange {
  address: string;
  before: PeerConfig;
  after: PeerConfig;
  /** The PeerConfig keys whose values differ, in PeerConfig order. */
  fields: string[];
  /** Only a new session applies the change (the session is torn down and re-established). */
  needsReset: boolean;
  /** Only import and/or export changed: re-run the policies, the session stays. */
  policyOnly: boolean;
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
  /** Top-level settings that changed: asn, routerId, listen, controlSocket, multipath, decision, clusterId, mrai, log. */
  globalChanged: string[];
  /** Peers present before and after (not added) whose import or export chain names a changed policy. */
  peersAffectedByPolicy: string[];
}

/** Peer keys whose change only a new session can apply (negotiated in OPEN, or transport). */
export const RESET_FIELDS: readonly (keyof PeerConfig)[] = [
  "remoteAs",
  "localAs",
  "port",
  "localAddress",
  "families",
  "addPath",
  "holdTime",
  "passive",
  "multihop",
  "password",
];

const PEER_FIELDS: readonly (keyof PeerConfig)[] = [
  "address",
  "remoteAs",
  "localAs",
  "port",
  "localAddress",
  "passive",
  "holdTime",
  "keepalive",
  "connectRetry",
  "families",
  "nextHopSelf",
  "routeReflectorClient",
  "multihop",
  "import",
  "export",
  "maxPrefix",
  "description",
  "shutdown",
  "shutdownMessage",
  "allowOwnAs",
  "asOverride",
  "addPath",
  "group",
  "password",
];

const GLOBAL_FIELDS: readonly (keyof RouterConfig)[] = [
  "asn",
  "routerId",
  "listen",
  "controlSocket",
  "multipath",
  "decision",
  "clusterId",
  "mrai",
  "kernel",
  "health",
  "log",
];

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
  const keys = new Set([...Object.keys(ao), ...Object.keys(bo)]);
  for (const k of keys) if (!sameValue(ao[k], bo[k])) return false;
  return true;
}

function chainNames(ref: PolicyRef): string[] {
  return ref?.kind === "chain" ? ref.names : [];
}

/** Every key of PeerConfig that differs (listed keys first, then any others, e.g. fields added later). */
function peerFieldsChanged(a: PeerConfig, b: PeerConfig): string[] {
  const ao = a as unknown as Record<string, unknown>;
  const bo = b as unknown as Record<string, unknown>;
  const keys = [...PEER_FIELDS] as string[];
  for (const k of [...Object.keys(ao), ...Object.keys(bo)]) if (!keys.includes(k)) keys.push(k);
  return keys.filter((k) => !sameValue(ao[k], bo[k]));
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
    const fields = peerFieldsChanged(before, after);
    if (!fields.length) continue;
    const needsReset = fields.some((f) => (RESET_FIELDS as readonly string[]).includes(f));
    const policyOnly = fields.every((f) => f === "import" || f === "export");
    peersChanged.push({ address: after.address, before, after, fields, needsReset, policyOnly });
  }

  // Advertisements are compared whole: a changed attribute withdraws the old and adds the new.
  const advertiseAdded = next.advertise.filter((a) => !old.advertise.some((b) => sameValue(a, b)));
  const advertiseRemoved = old.advertise.filter((a) => !next.advertise.some((b) => sameValue(a, b)));

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

  const changedSet = new Set(policiesChanged);
  const peersAffectedByPolicy = next.peers
    .filter((p) => oldPeers.has(p.address))
    .filter((p) => [...chainNames(p.import), ...chainNames(p.export)].some((n) => changedSet.has(n)))
    .map((p) => p.address);

  return { peersAdded, peersRemoved, peersChanged, advertiseAdded, advertiseRemoved, policiesChanged, globalChanged, peersAffectedByPolicy };
}
