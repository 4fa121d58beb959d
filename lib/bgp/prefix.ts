/**
 * Prefixes in wire form: the NLRI encoding of RFC 4271 §4.3 / RFC 4760 with
 * optional ADD-PATH path identifiers (RFC 7911). NLRI walking validates every
 * length before it reads, and visiting prefixes needs no allocation. Address
 * and prefix text live in lib/core/addr.ts.
 */
import { Writer } from "./bytes.ts";
import { type Afi, type Prefix, addrLen } from "../core/addr.ts";

/** Why the last `checkNlri` that returned -1 failed. */
export let nlriProblem = "";

/**
 * Validate an NLRI field without allocating: every prefix length within the
 * family's maximum and every prefix inside the field. Returns the number of
 * prefixes, or -1 (the reason then in `nlriProblem`).
 */
export function checkNlri(buf: Uint8Array, start: number, end: number, afi: number, addPath: boolean): number {
  const max = addrLen(afi) * 8;
  let off = start;
  let count = 0;
  while (off < end) {
    if (addPath) {
      if (end - off < 5) return nlriFails(`truncated path identifier at offset ${off - start}`);
      off += 4;
    }
    const len = buf[off]!;
    if (len > max) return nlriFails(`prefix length ${len} exceeds ${max}`);
    const n = (len + 7) >> 3;
    if (off + 1 + n > end) return nlriFails(`prefix of length ${len} overruns NLRI field`);
    off += 1 + n;
    count++;
  }
  return count;
}

function nlriFails(reason: string): -1 {
  nlriProblem = reason;
  return -1;
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
  walkNlriUntil(buf, start, end, addPath, fn, Infinity);
}

/**
 * walkNlri from `start`, stopping at `deadline` (performance.now()
 * milliseconds, looked at every 64 prefixes): returns the offset reached,
 * `end` when the field is done, so the walk can go on from there later.
 */
export function walkNlriUntil(
  buf: Uint8Array,
  start: number,
  end: number,
  addPath: boolean,
  fn: (buf: Uint8Array, addrOff: number, len: number, pathId: number) => void,
  deadline: number,
): number {
  let off = start;
  let n = 0;
  while (off < end) {
    if ((++n & 63) === 0 && performance.now() >= deadline) return off;
    let pathId = 0;
    if (addPath) {
      pathId = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
      off += 4;
    }
    const len = buf[off]!;
    fn(buf, off + 1, len, pathId);
    off += 1 + ((len + 7) >> 3);
  }
  return off;
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
  // Byte by byte: a subarray view per prefix costs more than the copy.
  for (let i = 0; i < n; i++) w.u8(p.addr[i]!);
}

export function prefixWireLen(p: Prefix, addPath: boolean): number {
  return (addPath ? 4 : 0) + 1 + ((p.len + 7) >> 3);
}
