/**
 * MRT record framer: splits a byte stream, fed in chunks of any size, into
 * records (common header + body), like the BGP Framer does for messages.
 * Memory is only ever allocated for bytes that have actually arrived: a length
 * field is never trusted to size a buffer, and a length above the configured
 * limit is reported as corrupt instead of being waited for.
 */
import { DEFAULT_MAX_RECORD_LENGTH, MRT_HEADER_LEN, MrtError, type MrtHeader, type RawMrtRecord, isExtendedTimestampType } from "./types.ts";

function be32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

export class MrtFramer {
  private chunks: Uint8Array[] = [];
  /** Bytes of chunks[0] already consumed. */
  private head = 0;
  private avail = 0;
  /** Absolute offset of the next record. */
  private pos = 0;
  private readonly maxLen: number;

  constructor(maxRecordLength = DEFAULT_MAX_RECORD_LENGTH) {
    this.maxLen = maxRecordLength;
  }

  /** Add bytes. The framer keeps a reference: the caller must not reuse `chunk`. */
  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.avail += chunk.length;
  }

  /** Byte offset of the next (not yet complete) record. */
  get offset(): number {
    return this.pos;
  }

  /** Bytes received but not yet returned as records. */
  get buffered(): number {
    return this.avail;
  }

  /** The first `n` (<= avail) buffered bytes, contiguous: a view when possible, else a copy of exactly n bytes. */
  private peek(n: number): Uint8Array {
    const c0 = this.chunks[0]!;
    if (c0.length - this.head >= n) return c0.subarray(this.head, this.head + n);
    const out = new Uint8Array(n);
    let got = 0;
    for (let i = 0; got < n; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.head : 0;
      const take = Math.min(n - got, c.length - from);
      out.set(c.subarray(from, from + take), got);
      got += take;
    }
    return out;
  }

  private consume(n: number): void {
    this.avail -= n;
    this.pos += n;
    while (n > 0) {
      const c0 = this.chunks[0]!;
      const left = c0.length - this.head;
      if (n < left) {
        this.head += n;
        return;
      }
      n -= left;
      this.chunks.shift();
      this.head = 0;
    }
  }

  /**
   * The next complete record, or null when more bytes are needed.
   * Throws MrtError for a header that cannot be right (length over the limit,
   * an _ET record too short for its microseconds).
   */
  next(): RawMrtRecord | null {
    if (this.avail < MRT_HEADER_LEN) return null;
    const c0 = this.chunks[0]!;
    const contiguous = c0.length - this.head >= MRT_HEADER_LEN;
    const h = contiguous ? c0 : this.peek(MRT_HEADER_LEN);
    const o = contiguous ? this.head : 0;
    const timestamp = be32(h, o);
    const type = (h[o + 4]! << 8) | h[o + 5]!;
    const subtype = (h[o + 6]! << 8) | h[o + 7]!;
    const length = be32(h, o + 8);
    const et = isExtendedTimestampType(type);
    if (length > this.maxLen) {
      throw new MrtError(this.pos, `record length ${length} exceeds the limit of ${this.maxLen} bytes`);
    }
    if (et && length < 4) {
      throw new MrtError(this.pos, `extended-timestamp record length ${length} is shorter than its 4-byte microseconds field`);
    }
    const total = MRT_HEADER_LEN + length;
    if (this.avail < total) return null;
    const header: MrtHeader = { offset: this.pos, timestamp, microseconds: null, type, subtype, length };
    const bodyStart = MRT_HEADER_LEN + (et ? 4 : 0);
    let body: Uint8Array;
    if (c0.length - this.head >= total) {
      if (et) header.microseconds = be32(c0, this.head + MRT_HEADER_LEN);
      body = c0.subarray(this.head + bodyStart, this.head + total);
    } else {
      const rec = this.peek(total);
      if (et) header.microseconds = be32(rec, MRT_HEADER_LEN);
      body = rec.subarray(bodyStart);
    }
    this.consume(total);
    return { header, body };
  }

  /** Call at end of input: throws MrtError naming the offset of an incomplete last record. */
  finish(): void {
    if (this.avail === 0) return;
    if (this.avail < MRT_HEADER_LEN) {
      throw new MrtError(this.pos, `truncated record header (${this.avail} of ${MRT_HEADER_LEN} bytes)`);
    }
    const h = this.peek(MRT_HEADER_LEN);
    const length = be32(h, 8);
    throw new MrtError(this.pos, `truncated record: length ${length} but only ${this.avail - MRT_HEADER_LEN} bytes follow the header`);
  }
}
