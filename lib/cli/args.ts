/**
 * Validation of command-line values (ASNs, addresses, prefixes, timers,
 * communities) with messages that name the flag and what was expected.
 * Every parser throws UsageError, which the entry point turns into one line
 * on stderr and exit code 2.
 */
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { parseAddr, parseIPv4, parsePrefix } from "../core/addr.ts";
import { AFI, type Prefix } from "../core/addr.ts";
import { type Family, SAFI } from "../bgp/types.ts";
import { readFileSync } from "node:fs";

export class UsageError extends Error {
  override readonly name = "UsageError";
}

export function parseAsn(flag: string, v: string): number {
  if (!/^\d{1,10}$/.test(v) || Number(v) < 1 || Number(v) > 4294967295) {
    throw new UsageError(`${flag}: "${v}" is not an AS number (1..4294967295)`);
  }
  return Number(v);
}

export function parseIntIn(flag: string, v: string, min: number, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new UsageError(`${flag}: "${v}" must be an integer in ${min}..${max}`);
  return Number(v);
}

export function parseHoldTime(flag: string, v: string): number {
  const n = parseIntIn(flag, v, 0, 65535);
  if (n === 1 || n === 2) throw new UsageError(`${flag}: hold time must be 0 or at least 3 seconds (RFC 4271 §4.2), got ${n}`);
  return n;
}

export function parseIpAddress(flag: string, v: string): string {
  const a = parseAddr(v);
  if (!a) throw new UsageError(`${flag}: "${v}" is not an IPv4 or IPv6 address`);
  return v;
}

export function parseRouterId(flag: string, v: string): string {
  const a = parseIPv4(v);
  if (!a || (a[0] === 0 && a[1] === 0 && a[2] === 0 && a[3] === 0)) {
    throw new UsageError(`${flag}: "${v}" is not a router id (a non-zero dotted quad such as 192.0.2.1)`);
  }
  return v;
}

export function parsePrefixArg(flag: string, v: string): Prefix {
  try {
    return parsePrefix(v);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

export function parseCommunityArg(flag: string, v: string): number {
  try {
    return parseCommunity(v);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

export function parseLargeCommunityArg(flag: string, v: string): [number, number, number] {
  try {
    return parseLargeCommunity(v);
  } catch (e) {
    throw new UsageError(`${flag}: ${(e as Error).message}`);
  }
}

/** "ipv4,ipv6" (also ipv4-unicast / ipv6-unicast) → families. */
export function parseFamilies(flag: string, v: string): Family[] {
  const out: Family[] = [];
  for (const raw of v.split(",")) {
    const s = raw.trim().toLowerCase();
    let f: Family;
    if (s === "ipv4" || s === "ipv4-unicast") f = { afi: AFI.IPV4, safi: SAFI.UNICAST };
    else if (s === "ipv6" || s === "ipv6-unicast") f = { afi: AFI.IPV6, safi: SAFI.UNICAST };
    else throw new UsageError(`${flag}: unknown family "${raw}" (expected ipv4, ipv6 or both, comma-separated)`);
    if (!out.some((x) => x.afi === f.afi)) out.push(f);
  }
  if (!out.length) throw new UsageError(`${flag}: no family given`);
  return out;
}

/** Commander collector for repeatable flags. */
export function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

/** The text of a file a flag names; UsageError naming the flag, the file and why it cannot be read. */
export function readFlagFile(flag: string, path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (e as Error).message;
    throw new UsageError(`${flag}: ${path}: ${why}`);
  }
}
