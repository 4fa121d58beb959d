/**
 * Streaming BGP message framer: turns a TCP byte stream into whole messages.
 * Handles several messages per chunk and a message split over chunks; checks
 * the marker, the length against the negotiated limit (4096, or 65535 with
 * RFC 8654) and the per-type minimum lengths of RFC 4271 §6.1.
 */
import { BgpError } from "./errors.ts";
import { BGP_HEADER_LEN, BGP_MAX_MSG, ERR, HEADER_SUB, MsgType } from "./types.ts";

/** One framed message: type and the body (bytes after the 19-byte header). */
export interface Frame {
  type: number;
  /** The whole message including the header. */
  raw: Uint8Array;
  /** The body: raw.subarray(19). */
  body: Uint8Array;
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

export class Framer {
  /** Chunks received that do not yet complete a message, oldest first. */
  private pending: Uint8Array[] = [];
  private pendingLen = 0;
  /** Bytes needed before the pending chunks are worth joining (a header, then a whole message). */
  private need = BGP_HEADER_LEN;
  /** Maximum message length; raise to 65535 once extended message is negotiated. */
  maxLen = BGP_MAX_MSG;

  /**
   * Feed a chunk; returns the complete messages it finishes. Throws BgpError on
   * a bad header (the session must send the NOTIFICATION and close).
   * Frames are views into `chunk` (or into a private join of earlier chunks),
   * so the caller must not overwrite `chunk` afterwards; socket data buffers
   * are never reused, and callers that reuse a buffer pass a copy.
   * Cost is linear in the bytes received, however the stream is split.
   */
  push(chunk: Uint8Array): Frame[] {
    if (this.pendingLen > 0) {
      this.pending.push(chunk);
      this.pendingLen += chunk.length;
      // Still short of a header, or of the message its header announced.
      if (this.pendingLen < this.need) return [];
      const joined = new Uint8Array(this.pendingLen);
      let o = 0;
      for (const c of this.pending) {
        joined.set(c, o);
        o += c.length;
      }
      this.pending = [];
      this.pendingLen = 0;
      chunk = joined;
    }
    const out: Frame[] = [];
    let off = 0;
    while (chunk.length - off >= BGP_HEADER_LEN) {
      const len = checkHeader(chunk, off, this.maxLen);
      if (chunk.length - off < len) {
        this.need = len;
        break;
      }
      const raw = chunk.subarray(off, off + len);
      out.push({ type: raw[18]!, raw, body: raw.subarray(BGP_HEADER_LEN) });
      off += len;
    }
    if (off < chunk.length) {
      const rest = chunk.subarray(off);
      if (rest.length < BGP_HEADER_LEN) this.need = BGP_HEADER_LEN;
      this.pending = [rest];
      this.pendingLen = rest.length;
    } else {
      this.need = BGP_HEADER_LEN;
    }
    return out;
  }

  /** Bytes buffered that do not yet form a whole message. */
  get buffered(): number {
    return this.pendingLen;
  }
}

/** Prepend the 19-byte header to a body. */
export function frame(type: number, body: Uint8Array): Uint8Array {
  const out = message(type, body.length);
  out.set(body, BGP_HEADER_LEN);
  return out;
}

/** A whole message of `bodyLen` body bytes: the header written, the body (from offset 19) left to fill. */
export function message(type: number, bodyLen: number): Uint8Array {
  const len = BGP_HEADER_LEN + bodyLen;
  const out = new Uint8Array(len);
  out.fill(0xff, 0, 16);
  out[16] = len >> 8;
  out[17] = len & 0xff;
  out[18] = type;
  return out;
}
