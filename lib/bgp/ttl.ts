/**
 * The TTL policy of a BGP session (what BIRD and FRR do):
 *
 * - GTSM (RFC 5082, `ttlSecurity: HOPS`): send with TTL 255, accept only
 *   packets with TTL >= 256 - HOPS (IP_MINTTL / IPV6_MINHOPCOUNT), on our
 *   connections and on accepted ones.
 * - `multihop: N`: send with TTL N (eBGP or iBGP).
 * - eBGP without multihop: TTL 1 (directly connected).
 * - iBGP without multihop, or a session whose TTL is not managed
 *   (`multihop` absent): the system default.
 *
 * Pure: no sockets here (ffi/ttl.ts sets the options).
 */

export interface TtlSettings {
  /** eBGP multihop TTL 1..255; false: directly connected; absent: not managed (system default). */
  multihop?: number | false;
  /** GTSM hop count 1..254. */
  ttlSecurity?: number;
}

export interface TtlPolicy {
  /** TTL of our packets; null: the system default. */
  ttl: number | null;
  /** Minimum TTL of the peer's packets; null: no check. */
  minTtl: number | null;
  /** For logs and `show neighbors`. */
  text: string;
}

/** The problem with a TTL setting, or null when it is usable. */
export function ttlSettingsProblem(s: TtlSettings): string | null {
  const { multihop, ttlSecurity } = s;
  if (ttlSecurity !== undefined && (!Number.isInteger(ttlSecurity) || ttlSecurity < 1 || ttlSecurity > 254)) return `ttlSecurity ${ttlSecurity}: expected a hop count 1..254`;
  if (typeof multihop === "number" && (!Number.isInteger(multihop) || multihop < 1 || multihop > 255)) return `multihop ${multihop}: expected a TTL 1..255`;
  if (ttlSecurity !== undefined && typeof multihop === "number") return `ttlSecurity and multihop are both set; keep one (ttlSecurity: ${ttlSecurity} already allows ${ttlSecurity} hops)`;
  return null;
}

/** The policy for a session; `ebgp` is whether the peer's AS differs from ours (null: unknown). */
export function ttlPolicy(s: TtlSettings, ebgp: boolean | null): TtlPolicy {
  if (s.ttlSecurity !== undefined) {
    const h = s.ttlSecurity;
    return { ttl: 255, minTtl: 256 - h, text: `TTL security: ${h} hop${h === 1 ? "" : "s"} (min TTL ${256 - h})` };
  }
  if (typeof s.multihop === "number") return { ttl: s.multihop, minTtl: null, text: `multihop: TTL ${s.multihop}` };
  if (s.multihop === false && ebgp === true) return { ttl: 1, minTtl: null, text: "directly connected: TTL 1" };
  return { ttl: null, minTtl: null, text: "system default TTL" };
}
