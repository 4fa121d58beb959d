/**
 * IP addresses and prefixes as text and bytes, shared by every layer (codec,
 * RIB, FIB, FFI, config, Kubernetes): parsing and formatting (RFC 5952 for
 * IPv6), prefix text with host-bit checks, masking. No BGP here: the NLRI
 * wire encoding lives in lib/bgp/prefix.ts.
 */

/** Address family numbers (IANA AFI): 1 IPv4, 2 IPv6. */
export const AFI = { IPV4: 1, IPV6: 2 } as const;
export type Afi = (typeof AFI)[keyof typeof AFI];

/**
 * An IP prefix. `addr` holds exactly the significant bytes padded to the full
 * address length (4 or 16), host bits zero. `pathId` is set when the NLRI
 * came with an ADD-PATH path identifier.
 */
export interface Prefix {
  afi: Afi;
  len: number;
  addr: Uint8Array;
  pathId?: number;
}

export function addrLen(afi: number): number {
  return afi === AFI.IPV6 ? 16 : 4;
}

/** Parse a dotted-quad IPv4 address; null if it is not one. */
export function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split(".");
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return null;
    const n = Number(p);
    if (n > 255 || (p.length > 1 && p[0] === "0")) return null;
    out[i] = n;
  }
  return out;
}

/** Parse an IPv6 address (with ::, optional trailing dotted quad); null if invalid. */
export function parseIPv6(s: string): Uint8Array | null {
  const pct = s.indexOf("%");
  if (pct >= 0) s = s.slice(0, pct);
  if (s.length === 0 || s.length > 45) return null;
  const out = new Uint8Array(16);
  const dbl = s.indexOf("::");
  if (dbl !== s.lastIndexOf("::")) return null;
  // A trailing dotted quad is only allowed as the last 32 bits of the address.
  const parseGroups = (part: string, v4Allowed: boolean): number[] | null => {
    if (part === "") return [];
    const gs = part.split(":");
    const words: number[] = [];
    for (let i = 0; i < gs.length; i++) {
      const g = gs[i]!;
      if (v4Allowed && i === gs.length - 1 && g.includes(".")) {
        const v4 = parseIPv4(g);
        if (!v4) return null;
        words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return null;
        words.push(parseInt(g, 16));
      }
    }
    return words;
  };
  let words: number[];
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl), false);
    const tail = parseGroups(s.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseGroups(s, true);
    if (!all || all.length !== 8) return null;
    words = all;
  }
  for (let i = 0; i < 8; i++) {
    out[i * 2] = words[i]! >> 8;
    out[i * 2 + 1] = words[i]! & 0xff;
  }
  return out;
}

/** Parse an address of either family. */
export function parseAddr(s: string): { afi: Afi; addr: Uint8Array } | null {
  if (s.includes(":")) {
    const a = parseIPv6(s);
    return a ? { afi: AFI.IPV6, addr: a } : null;
  }
  const a = parseIPv4(s);
  return a ? { afi: AFI.IPV4, addr: a } : null;
}

export function formatIPv4(b: Uint8Array, off = 0): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** RFC 5952 canonical text of a 16-byte IPv6 address. */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const w: number[] = [];
  for (let i = 0; i < 8; i++) w.push((b[off + i * 2]! << 8) | b[off + i * 2 + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  // IPv4-mapped ::ffff:a.b.c.d
  if (bestStart === 0 && bestLen === 5 && w[5] === 0xffff) {
    return `::ffff:${formatIPv4(b, off + 12)}`;
  }
  const hex = (from: number, to: number) => w.slice(from, to).map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

export function formatAddr(afi: number, b: Uint8Array, off = 0): string {
  return afi === AFI.IPV6 ? formatIPv6(b, off) : formatIPv4(b, off);
}

/** Format a next hop of 4, 16 or 32 bytes (global + link-local). */
export function formatNextHop(b: Uint8Array): string {
  if (b.length === 4) return formatIPv4(b);
  if (b.length === 16) return formatIPv6(b);
  if (b.length === 32) return formatIPv6(b, 0);
  if (b.length === 24) return formatIPv6(b, 8); // RD + IPv6, not for unicast
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export function prefixToString(p: Prefix): string {
  return `${formatAddr(p.afi, p.addr)}/${p.len}`;
}

/** Parse "a.b.c.d/n" or "x::/n"; host bits must be zero. Throws Error with a clear message. */
export function parsePrefix(s: string): Prefix {
  const slash = s.indexOf("/");
  if (slash < 0) throw new Error(`invalid prefix "${s}": expected ADDRESS/LENGTH`);
  const a = parseAddr(s.slice(0, slash));
  if (!a) throw new Error(`invalid prefix "${s}": bad address`);
  const lenStr = s.slice(slash + 1);
  const max = a.afi === AFI.IPV6 ? 128 : 32;
  if (!/^\d{1,3}$/.test(lenStr) || Number(lenStr) > max) {
    throw new Error(`invalid prefix "${s}": length must be 0..${max}`);
  }
  const len = Number(lenStr);
  for (let bit = len; bit < max; bit++) {
    if (a.addr[bit >> 3]! & (0x80 >> (bit & 7))) {
      throw new Error(`invalid prefix "${s}": host bits set (did you mean ${prefixToString({ afi: a.afi, len, addr: maskAddr(a.addr, len) })}?)`);
    }
  }
  return { afi: a.afi, len, addr: a.addr };
}

/** A copy of `addr` with every bit after the first `len` cleared. */
export function maskAddr(addr: Uint8Array, len: number): Uint8Array {
  // A copy even of a Node Buffer (whose slice() is a view: masking it would zero the caller's bytes).
  const out = new Uint8Array(addr);
  for (let bit = len; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

/** Whether `outer` contains `inner` (same family, outer.len <= inner.len, same leading bits). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.afi !== inner.afi || outer.len > inner.len) return false;
  const full = outer.len >> 3;
  for (let i = 0; i < full; i++) if (outer.addr[i] !== inner.addr[i]) return false;
  const rem = outer.len & 7;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return (outer.addr[full]! & m) === (inner.addr[full]! & m);
}
