/**
 * Small byte helpers for the codec: a growable big-endian writer and
 * bounds-free readers (callers validate lengths before reading).
 */

export class Writer {
  buf: Uint8Array;
  len = 0;
  constructor(initial = 256) {
    this.buf = new Uint8Array(initial);
  }
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.len + n) size *= 2;
    const b = new Uint8Array(size);
    b.set(this.buf.subarray(0, this.len));
    this.buf = b;
  }
  u8(v: number): this {
    this.ensure(1);
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u16(v: number): this {
    this.ensure(2);
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  u32(v: number): this {
    this.ensure(4);
    this.buf[this.len++] = (v >>> 24) & 0xff;
    this.buf[this.len++] = (v >>> 16) & 0xff;
    this.buf[this.len++] = (v >>> 8) & 0xff;
    this.buf[this.len++] = v & 0xff;
    return this;
  }
  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.len);
    this.len += b.length;
    return this;
  }
  /** Overwrite a u16 at an earlier position (for length fields). */
  patch16(at: number, v: number): void {
    this.buf[at] = (v >>> 8) & 0xff;
    this.buf[at + 1] = v & 0xff;
  }
  patch8(at: number, v: number): void {
    this.buf[at] = v & 0xff;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.len);
  }
}

/**
 * Copy src[from, to) into dst at `at`; returns the offset after it. A loop,
 * not `dst.set(src.subarray(...))`: the view each subarray makes costs more
 * than copying the few dozen bytes of an attribute block or NLRI run.
 */
export function copyInto(dst: Uint8Array, at: number, src: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) dst[at++] = src[i]!;
  return at;
}

export function u16(b: Uint8Array, o: number): number {
  return (b[o]! << 8) | b[o + 1]!;
}

export function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: false });
export function utf8(s: string): Uint8Array {
  return enc.encode(s);
}
export function fromUtf8(b: Uint8Array): string {
  return dec.decode(b);
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function hex(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += b[i]!.toString(16).padStart(2, "0");
  return s;
}

/** Distinct values `internNextHop` shares at most (beyond them it copies, so a flood of distinct values cannot grow it). */
const NEXT_HOP_INTERN_MAX = 4096;
const nextHops = new Map<number | string, Uint8Array>();

/**
 * The bytes `b[start, end)` as a shared, never-modified array: one object
 * per distinct next hop for the whole daemon (a full table has a handful of
 * next hops and a hundred thousand attribute sets and UPDATEs naming them).
 * Callers must not write into the result.
 */
export function internNextHop(b: Uint8Array, start: number, end: number): Uint8Array {
  // An IPv4 next hop (the usual case) is keyed by its number, not a string built byte by byte.
  if (end - start === 4) return internKeyed(u32(b, start), b, start, end);
  // Longer ones (IPv6): first the last one given out (an UPDATE's usually is the one before's), then by a string key.
  const last = lastLong;
  if (last !== null && last.length === end - start) {
    let i = 0;
    while (i < last.length && last[i] === b[start + i]) i++;
    if (i === last.length) return last;
  }
  const v = internKeyed(bytesKey(b, start, end), b, start, end);
  lastLong = v;
  return v;
}

/** The last next hop longer than 4 bytes internNextHop gave out. */
let lastLong: Uint8Array | null = null;

function internKeyed(k: number | string, b: Uint8Array, start: number, end: number): Uint8Array {
  const have = nextHops.get(k);
  if (have !== undefined) return have;
  const v = b.slice(start, end);
  if (nextHops.size < NEXT_HOP_INTERN_MAX) nextHops.set(k, v);
  return v;
}

/**
 * A string key of the bytes: their count, then two bytes to a character for
 * each whole 16 (an IPv6 address: one call makes a flat string), then a
 * character per byte left. The count first: keys of different lengths never
 * meet.
 */
function bytesKey(b: Uint8Array, start: number, end: number): string {
  let k = String.fromCharCode(end - start);
  let i = start;
  for (; i + 16 <= end; i += 16) {
    k += String.fromCharCode(
      (b[i]! << 8) | b[i + 1]!,
      (b[i + 2]! << 8) | b[i + 3]!,
      (b[i + 4]! << 8) | b[i + 5]!,
      (b[i + 6]! << 8) | b[i + 7]!,
      (b[i + 8]! << 8) | b[i + 9]!,
      (b[i + 10]! << 8) | b[i + 11]!,
      (b[i + 12]! << 8) | b[i + 13]!,
      (b[i + 14]! << 8) | b[i + 15]!,
    );
  }
  for (; i < end; i++) k += String.fromCharCode(b[i]!);
  return k;
}
