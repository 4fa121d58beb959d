/**
 * Capability negotiation: from our OPEN and the peer's OPEN, the typed facts
 * every later layer uses (families, 4-octet AS, ADD-PATH per family and
 * direction, route refresh, graceful restart, extended message, extended next
 * hop, role, hold time). Also checks the peer's OPEN against what we expect
 * (RFC 4271 §6.2, RFC 9234 role pairs).
 */
import { BgpError } from "./errors.ts";
import { type Capability, type GracefulRestartFamily, type LongLivedFamily, type OpenMessage, openAs } from "./open.ts";
import { AFI, AS_TRANS, ERR, type Family, OPEN_SUB, ROLE, SAFI, familyName } from "./types.ts";

export interface Negotiated {
  localAs: number;
  peerAs: number;
  peerRouterId: string;
  /** Families both sides announced (IPv4 unicast when neither sent multiprotocol). */
  families: Family[];
  fourOctetAs: boolean;
  holdTime: number;
  keepaliveTime: number;
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  extendedMessage: boolean;
  /** key `${afi}/${safi}`: do we send / receive path identifiers. */
  addPath: Map<string, { send: boolean; receive: boolean }>;
  /** Families where IPv4 NLRI may carry an IPv6 next hop (RFC 8950), both sides agreeing. */
  extendedNextHop: Family[];
  /** The peer's graceful-restart capability, if any. */
  peerGracefulRestart: { restarting: boolean; notification: boolean; restartTime: number; families: GracefulRestartFamily[] } | null;
  /** Both sides announced graceful restart, and both with the N bit (RFC 8538): a NOTIFICATION other than Hard Reset is a restart too. */
  gracefulNotification: boolean;
  /** The peer's long-lived graceful restart families (RFC 9494), when both sides announced the capability; else null. */
  peerLongLivedGracefulRestart: LongLivedFamily[] | null;
  localRole: number | null;
  peerRole: number | null;
  /** Everything the peer announced, unknown capabilities included. */
  peerCapabilities: Capability[];
}

export function familyKey(afi: number, safi: number): string {
  return `${afi}/${safi}`;
}

function mpFamilies(o: OpenMessage): Family[] {
  const out: Family[] = [];
  for (const c of o.capabilities) if (c.type === "multiprotocol") out.push({ afi: c.afi, safi: c.safi });
  return out;
}

function has(o: OpenMessage, t: Capability["type"]): boolean {
  return o.capabilities.some((c) => c.type === t);
}

/** Valid role pairs (RFC 9234 §4.2): local role → the role the peer must have. */
const ROLE_PAIR: Record<number, number> = {
  [ROLE.PROVIDER]: ROLE.CUSTOMER,
  [ROLE.CUSTOMER]: ROLE.PROVIDER,
  [ROLE.RS]: ROLE.RS_CLIENT,
  [ROLE.RS_CLIENT]: ROLE.RS,
  [ROLE.PEER]: ROLE.PEER,
};

export interface NegotiateOptions {
  /** The AS we expect the peer to have (undefined: accept any, e.g. for a looking glass). */
  expectedPeerAs?: number;
  /** RFC 9234 strict mode: the peer must announce a role. */
  strictRole?: boolean;
  /** Our configured keepalive interval, seconds (undefined: a third of the hold time). */
  keepaliveTime?: number;
}

/**
 * Negotiate. Throws BgpError (OPEN error) when the peer's OPEN must be
 * rejected: wrong AS, role mismatch.
 */
export function negotiate(local: OpenMessage, peer: OpenMessage, opts: NegotiateOptions = {}): Negotiated {
  const localAs = openAs(local);
  const peerFour = has(peer, "four-octet-as");
  const peerAs = openAs(peer);
  if (peerAs === 0 || peer.myAs === 0) {
    // RFC 7607 §2: zero as the peer AS in an OPEN MUST be rejected with Bad Peer AS.
    throw new BgpError(ERR.OPEN, OPEN_SUB.BAD_PEER_AS, "peer AS 0", Uint8Array.of(peer.myAs >> 8, peer.myAs & 0xff));
  }
  if (peerFour && peer.myAs !== AS_TRANS && peer.myAs !== peerAs && peerAs <= 0xffff) {
    // RFC 6793 §4.1 leaves this to the implementation; a disagreeing 2-octet field is a bad peer AS.
    throw new BgpError(ERR.OPEN, OPEN_SUB.BAD_PEER_AS, `peer AS field ${peer.myAs} disagrees with its 4-octet AS ${peerAs}`);
  }
  if (opts.expectedPeerAs !== undefined && peerAs !== opts.expectedPeerAs) {
    const d = Uint8Array.of(peer.myAs >> 8, peer.myAs & 0xff);
    throw new BgpError(ERR.OPEN, OPEN_SUB.BAD_PEER_AS, `peer AS ${peerAs}, expected ${opts.expectedPeerAs}`, d);
  }
  const lf = mpFamilies(local);
  const pf = mpFamilies(peer);
  let families: Family[];
  if (lf.length === 0 && pf.length === 0) families = [{ afi: AFI.IPV4, safi: SAFI.UNICAST }];
  else if (lf.length === 0) families = pf.filter((f) => f.afi === AFI.IPV4 && f.safi === SAFI.UNICAST);
  else if (pf.length === 0) families = lf.filter((f) => f.afi === AFI.IPV4 && f.safi === SAFI.UNICAST);
  else families = lf.filter((a) => pf.some((b) => a.afi === b.afi && a.safi === b.safi));

  const holdTime = Math.min(local.holdTime, peer.holdTime);
  const addPath = new Map<string, { send: boolean; receive: boolean }>();
  const lap = local.capabilities.find((c) => c.type === "add-path");
  const pap = peer.capabilities.find((c) => c.type === "add-path");
  if (lap?.type === "add-path" && pap?.type === "add-path") {
    for (const f of families) {
      const l = lap.families.find((x) => x.afi === f.afi && x.safi === f.safi);
      const p = pap.families.find((x) => x.afi === f.afi && x.safi === f.safi);
      if (!l || !p) continue;
      const send = l.send && p.receive;
      const receive = l.receive && p.send;
      if (send || receive) addPath.set(familyKey(f.afi, f.safi), { send, receive });
    }
  }
  const extendedNextHop: Family[] = [];
  const lenh = local.capabilities.find((c) => c.type === "extended-next-hop");
  const penh = peer.capabilities.find((c) => c.type === "extended-next-hop");
  if (lenh?.type === "extended-next-hop" && penh?.type === "extended-next-hop") {
    for (const e of lenh.entries) {
      if (penh.entries.some((x) => x.afi === e.afi && x.safi === e.safi && x.nextHopAfi === e.nextHopAfi)) {
        extendedNextHop.push({ afi: e.afi, safi: e.safi });
      }
    }
  }
  const gr = peer.capabilities.find((c) => c.type === "graceful-restart");
  const llgr = peer.capabilities.find((c) => c.type === "long-lived-graceful-restart");
  const lrole = local.capabilities.find((c) => c.type === "role");
  const prole = peer.capabilities.find((c) => c.type === "role");
  const localRole = lrole?.type === "role" ? lrole.role : null;
  const peerRole = prole?.type === "role" ? prole.role : null;
  if (peer.capabilities.some((c) => c.type === "role" && c.role !== peerRole)) {
    // RFC 9234 §4.2: several Role capabilities with different values MUST be rejected.
    throw new BgpError(ERR.OPEN, OPEN_SUB.ROLE_MISMATCH, "peer announced conflicting roles");
  }
  if (localRole !== null && peerRole !== null && ROLE_PAIR[localRole] !== peerRole) {
    throw new BgpError(ERR.OPEN, OPEN_SUB.ROLE_MISMATCH, `role mismatch: local ${localRole}, peer ${peerRole}`);
  }
  if (localRole !== null && peerRole === null && opts.strictRole) {
    throw new BgpError(ERR.OPEN, OPEN_SUB.ROLE_MISMATCH, "peer announced no role (strict mode)");
  }
  const both = (t: Capability["type"]) => has(local, t) && has(peer, t);
  return {
    localAs,
    peerAs,
    peerRouterId: peer.routerId,
    families,
    fourOctetAs: has(local, "four-octet-as") && peerFour,
    holdTime,
    // RFC 4271 §10: a third of the hold time by default; a configured interval never exceeds that (as FRR does).
    keepaliveTime: opts.keepaliveTime !== undefined ? Math.min(opts.keepaliveTime, Math.floor(holdTime / 3)) : Math.floor(holdTime / 3),
    routeRefresh: has(local, "route-refresh") && (has(peer, "route-refresh") || has(peer, "route-refresh-cisco")),
    enhancedRouteRefresh: both("enhanced-route-refresh"),
    extendedMessage: both("extended-message"),
    addPath,
    extendedNextHop,
    peerGracefulRestart: gr?.type === "graceful-restart" ? { restarting: gr.restarting, notification: gr.notification, restartTime: gr.restartTime, families: gr.families } : null,
    gracefulNotification: gr?.type === "graceful-restart" && gr.notification && local.capabilities.some((c) => c.type === "graceful-restart" && c.notification),
    peerLongLivedGracefulRestart: llgr?.type === "long-lived-graceful-restart" && has(local, "long-lived-graceful-restart") ? llgr.families : null,
    localRole,
    peerRole,
    peerCapabilities: peer.capabilities,
  };
}

// (Both are asked for every UPDATE received or built: a session without ADD-PATH answers without making a family key.)
export function addPathSend(n: Negotiated, afi: number, safi: number): boolean {
  return n.addPath.size > 0 && (n.addPath.get(familyKey(afi, safi))?.send ?? false);
}
export function addPathReceive(n: Negotiated, afi: number, safi: number): boolean {
  return n.addPath.size > 0 && (n.addPath.get(familyKey(afi, safi))?.receive ?? false);
}
export function hasFamily(n: Negotiated, afi: number, safi: number): boolean {
  return n.families.some((f) => f.afi === afi && f.safi === safi);
}
export function describeFamilies(fs: Family[]): string {
  return fs.map((f) => familyName(f.afi, f.safi)).join(" ");
}
