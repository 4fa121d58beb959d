/**
 * The TTL (IPv4) / unicast hop limit (IPv6) of a TCP socket and its minimum
 * accepted TTL (GTSM, RFC 5082), through setsockopt on the socket's fd:
 * IP_TTL and IP_MINTTL for an IPv4 peer (also on an AF_INET6 socket whose
 * peer is IPv4-mapped: its packets are IPv4, and Linux takes SOL_IP options
 * there), IPV6_UNICAST_HOPS and IPV6_MINHOPCOUNT for an IPv6 peer.
 *
 * `ttl: -1` puts the TTL back to the system default (the route's hop limit
 * or net.ipv4.ip_default_ttl / net.ipv6.conf.*.hop_limit); `minTtl: 0` turns
 * the check off. A failing setsockopt throws a TtlOptionError (a SysError)
 * naming the option and the value ("setsockopt(IP_MINTTL=255): EPERM (...)").
 */
import * as libc from "./libc.ts";

export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IP_TTL = 2;
export const IP_MINTTL = 21;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MINHOPCOUNT = 73;

/** A setsockopt of a TTL option failed. */
export class TtlOptionError extends libc.SysError {
  constructor(
    readonly option: string,
    readonly value: number,
    errno: number,
  ) {
    super(`setsockopt(${option}=${value})`, errno);
    this.name = "TtlOptionError";
  }
}

/** What to set; an absent field is left as it is. */
export interface TtlOptions {
  /** 1..255, or -1 for the system default. */
  ttl?: number;
  /** 0..255 (0: no check). */
  minTtl?: number;
}

/** The family of the packets a socket exchanges with its peer (not the socket's own family). */
export type PeerFamily = 4 | 6;

function names(peer: PeerFamily) {
  return peer === 4
    ? { level: IPPROTO_IP, ttl: IP_TTL, min: IP_MINTTL, ttlName: "IP_TTL", minName: "IP_MINTTL" }
    : { level: IPPROTO_IPV6, ttl: IPV6_UNICAST_HOPS, min: IPV6_MINHOPCOUNT, ttlName: "IPV6_UNICAST_HOPS", minName: "IPV6_MINHOPCOUNT" };
}

/** Set the TTL and/or minimum TTL of socket `fd` for a peer of `peer` family. Throws TtlOptionError. */
export function setTtlOptions(fd: number, peer: PeerFamily, o: TtlOptions): void {
  const n = names(peer);
  for (const [opt, name, v] of [
    [n.ttl, n.ttlName, o.ttl],
    [n.min, n.minName, o.minTtl],
  ] as const) {
    if (v === undefined) continue;
    const e = libc.trySetsockoptInt(fd, n.level, opt, v);
    if (e !== 0) throw new TtlOptionError(name, v, e);
  }
}

/** The TTL and minimum TTL socket `fd` has for a peer of `peer` family (what getsockopt reads back). */
export function readTtlOptions(fd: number, peer: PeerFamily): { ttl: number; minTtl: number } {
  const n = names(peer);
  return { ttl: libc.getsockoptInt(fd, n.level, n.ttl), minTtl: libc.getsockoptInt(fd, n.level, n.min) };
}
