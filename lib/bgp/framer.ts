/**
 * Streaming BGP message framer: turns a TCP byte stream into whole messages.
 * Handles several messages per chunk and a message split over chunks; checks
 * the marker, the length against the negotiated limit (4096, or 65535 with
 * RFC 8654) and the per-type minimum lengths of RFC 4271 §6.1.
 */
import { BgpError } from "./errors.ts";
import { BGP_HEADER_LEN, BGP_MAX_MSG, ERR, HEADER_SUB, MsgType } from "./types.ts";

/**
 * One framed message: where it lies in the received bytes (no copy). Its
 * views are made when read: an UPDATE is read through `body` alone, and a
 * typed-array view costs about as much to make as a small UPDATE's framing.
 */
export class Frame {
  constructor(
    readonly type: number,
    /** The received bytes the message lies in, and its offset there (to read it without a view: `decodeUpdateIn`). */
    readonly buf: Uint8Array,
    readonly off: number,
    /** The message's length, header included. */
    readonly length: number,
  ) {}
  /** The whole message including the header. */
  get raw(): Uint8Array {
    return this.buf.subarray(this.off, this.off + this.length);
  }
  /** The body: raw.subarray(19). */
  get body(): Uint8Array {
    return this.buf.subarray(this.off + BGP_HEADER_LEN, this.off + this.length);
  }
}

const MIN_LEN: Record<number, number> = {
  [MsgType.OPEN]: 29,
  [MsgType.UPDATE]: 23,
  [MsgType.NOTIFICATION]: 21,
  [MsgType.KEEPALIVE]: 19,
  [MsgType.ROUTE_REFRESH]: 23,
};

function lengthError(len: number): BgpError {
  const d = new Uint8Array(2);
  d[0] = len >> 8;
  d[1] = len & 0xff;
  return new BgpError(ERR.HEADER, HEADER_SUB.BAD_MESSAGE_LENGTH, `bad message length ${len}`, d);
}

/**
 * Check one message header at `off` in `buf` (at least 19 bytes available).
 * Returns the total length. Throws BgpError per RFC 4271 §6.1.
 */
export function checkHeader(buf: Uint8Array, off: number, maxLen: number): number {
  for (let i = 0; i < 16; i++) {
    if (buf[off + i] !== 0xff) {
      throw new BgpError(ERR.HEADER, HEADER_SUB.CONNECTION_NOT_SYNCHRONIZED, "marker is not all ones");
    }
  }
  const len = (buf[off + 16]! << 8) | buf[off + 17]!;
  const type = buf[off + 18]!;
  const min = MIN_LEN[type];
  if (min === undefined) {
    throw new BgpError(ERR.HEADER, HEADER_SUB.BAD_MESSAGE_TYPE, `bad message type ${type}`, Uint8Array.of(type));
  }
  if (len < min || len > maxLen) throw lengthError(len);
  if (type === MsgType.KEEPALIVE && len !== BGP_HEADER_LEN) throw lengthError(len);
  if (type === MsgType.OPEN && len > BGP_MAX_MSG) throw lengthError(len); // OPEN never extended
  return len;
}

/**
 * Either pushed (`push`: a chunk in, the messages it completes out) or
 * pulled (`append` chunks as they arrive, `next` one message at a time, so a
 * reader can frame a large backlog in time-bounded slices). Frames are views
 * into the chunks (or into a private join of the tail of one chunk and the
 * start of the next), so callers must not overwrite a chunk afterwards;
 * socket data buffers are never reused, and callers that reuse a buffer pass
 * a copy. Cost is linear in the bytes received, however the stream is split:
 * a join copies only the bytes of the one message that spans chunks.
 */
export class Framer {
  /** The chunk being framed, and the offset of its first unframed byte. */
  private cur: Uint8Array = new Uint8Array(0);
  private off = 0;
  /** Chunks appended after `cur`, oldest first (from index `head`). */
  private queue: Uint8Array[] = [];
  private head = 0;
  /** Unframed bytes in `cur` and `queue`. */
  private size = 0;
  /** Maximum message length; raise to 65535 once extended message is negotiated. */
  maxLen = BGP_MAX_MSG;

  /**
   * Feed a chunk; returns the complete messages it finishes. Throws BgpError on
   * a bad header (the session must send the NOTIFICATION and close).
   */
  push(chunk: Uint8Array): Frame[] {
    this.append(chunk);
    const out: Frame[] = [];
    for (let f = this.next(); f !== null; f = this.next()) out.push(f);
    return out;
  }

  /** Add received bytes, to be framed by `next`. */
  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.off === this.cur.length && this.head === this.queue.length) {
      this.cur = chunk;
      this.off = 0;
      this.queue = [];
      this.head = 0;
    } else this.queue.push(chunk);
    this.size += chunk.length;
  }

  /**
   * The next whole message, or null until more bytes arrive. Throws BgpError
   * on a bad header (RFC 4271 §6.1), as `push` does.
   */
  next(): Frame | null {
    for (;;) {
      const avail = this.cur.length - this.off;
      let need = BGP_HEADER_LEN;
      if (avail >= BGP_HEADER_LEN) {
        need = checkHeader(this.cur, this.off, this.maxLen);
        if (avail >= need) {
          const f = new Frame(this.cur[this.off + 18]!, this.cur, this.off, need);
          this.off += need;
          this.size -= need;
          return f;
        }
      }
      if (this.size < need || this.head === this.queue.length) return null;
      if (avail === 0) {
        this.cur = this.queue[this.head++]!;
        this.off = 0;
        continue;
      }
      // A message (or header) spans chunks: join its bytes only (its start here, the rest from the next chunks).
      const joined = new Uint8Array(need);
      joined.set(this.cur.subarray(this.off), 0);
      let o = avail;
      while (o < need) {
        const c = this.queue[this.head]!;
        const take = Math.min(c.length, need - o);
        joined.set(take === c.length ? c : c.subarray(0, take), o);
        o += take;
        if (take === c.length) this.head++;
        else this.queue[this.head] = c.subarray(take);
      }
      // The joined bytes come first; what is left of the chunk they end in stays queued after them.
      this.cur = joined;
      this.off = 0;
    }
  }

  /** At least one whole message is buffered, by the first one's length field (nothing is framed or checked). */
  hasMessage(): boolean {
    if (this.size < BGP_HEADER_LEN) return false;
    return this.size >= ((this.byteAt(16) << 8) | this.byteAt(17));
  }

  /** The unframed byte at position `i` (i < size). */
  private byteAt(i: number): number {
    const avail = this.cur.length - this.off;
    if (i < avail) return this.cur[this.off + i]!;
    i -= avail;
    for (let h = this.head; ; h++) {
      const c = this.queue[h]!;
      if (i < c.length) return c[i]!;
      i -= c.length;
    }
  }

  /** Bytes received and not yet framed. */
  get buffered(): number {
    return this.size;
  }
}

/** Prepend the 19-byte header to a body. */
export function frame(type: number, body: Uint8Array): Uint8Array {
  const len = BGP_HEADER_LEN + body.length;
  const out = new Uint8Array(len);
  out.fill(0xff, 0, 16);
  out[16] = len >> 8;
  out[17] = len & 0xff;
  out[18] = type;
  out.set(body, BGP_HEADER_LEN);
  return out;
}
