/**
 * IP addresses and prefixes in wire form: parsing and formatting (RFC 5952 for
 * IPv6) and the NLRI encoding of RFC 4271 §4.3 / RFC 4760 with optional
 * ADD-PATH path identifiers (RFC 7911). NLRI walking validates every length
 * before it reads, and visiting prefixes needs no allocation.
 */
import { Writer } from "./bytes.ts";
import { AFI, type Afi, type Prefix } from "./types.ts";

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

function maskAddr(addr: Uint8Array, len: number): Uint8Array {
  const out = addr.slice();
  for (let bit = len; bit < out.length * 8; bit++) out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return out;
}

/** Result of checking an NLRI field: the number of prefixes or an error message. */
export type NlriCheck = { ok: true; count: number } | { ok: false; reason: string };

/**
 * Validate an NLRI field without allocating: every prefix length within the
 * family's maximum and every prefix inside the field.
 */
export function checkNlri(buf: Uint8Array, start: number, end: number, afi: number, addPath: boolean): NlriCheck {
  const max = addrLen(afi) * 8;
  let off = start;
  let count = 0;
  while (off < end) {
    if (addPath) {
      if (end - off < 5) return { ok: false, reason: `truncated path identifier at offset ${off - start}` };
      off += 4;
    }
    const len = buf[off]!;
    if (len > max) return { ok: false, reason: `prefix length ${len} exceeds ${max}` };
    const n = (len + 7) >> 3;
    if (off + 1 + n > end) return { ok: false, reason: `prefix of length ${len} overruns NLRI field` };
    off += 1 + n;
    count++;
  }
  return { ok: true, count };
}

/**
 * Visit each prefix of an already-checked NLRI field. The callback gets the
 * buffer, the offset of the first address byte, the prefix length and the
 * path identifier (0 without ADD-PATH). No allocation.
 */
export function walkNlri(
  buf: Uint8Array,
  start: number,
  end: number,
  addPath: boolean,
  fn: (buf: Uint8Array, addrOff: number, len: number, pathId: number) => void,
): void {
  let off = start;
  while (off < end) {
    let pathId = 0;
    if (addPath) {
      pathId = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
      off += 4;
    }
    const len = buf[off]!;
    fn(buf, off + 1, len, pathId);
    off += 1 + ((len + 7) >> 3);
  }
}

/** Materialise the prefixes of a checked NLRI field (for display and tests, not the hot path). */
export function nlriToPrefixes(buf: Uint8Array, start: number, end: number, afi: Afi, addPath: boolean): Prefix[] {
  const out: Prefix[] = [];
  const alen = addrLen(afi);
  walkNlri(buf, start, end, addPath, (b, o, len, pathId) => {
    const addr = new Uint8Array(alen);
    const n = (len + 7) >> 3;
    addr.set(b.subarray(o, o + n));
    if (len & 7) addr[n - 1]! &= (0xff << (8 - (len & 7))) & 0xff;
    const p: Prefix = { afi, len, addr };
    if (addPath) p.pathId = pathId;
    out.push(p);
  });
  return out;
}

/** Append one prefix in NLRI form. */
export function writePrefix(w: Writer, p: Prefix, addPath: boolean): void {
  if (addPath) w.u32(p.pathId ?? 0);
  w.u8(p.len);
  const n = (p.len + 7) >> 3;
  w.bytes(p.addr.subarray(0, n));
}

export function prefixWireLen(p: Prefix, addPath: boolean): number {
  return (addPath ? 4 : 0) + 1 + ((p.len + 7) >> 3);
}
