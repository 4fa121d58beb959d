/**
 * MRT readers: iterate the decoded records of an in-memory buffer
 * (`parseMrt`) or of a stream of chunks (`readMrt`, for files of any size).
 * Both yield every valid record in order and then throw MrtError at the first
 * truncated or corrupt record, so a consumer always sees everything valid
 * before the damage.
 */
import { MrtDecoder } from "./decoder.ts";
import { MrtFramer } from "./framer.ts";
import type { MrtReadOptions, MrtRecord, RawMrtRecord } from "./types.ts";

/** Framed (undecoded) records of a buffer; throws MrtError on truncation. */
export function* splitMrt(bytes: Uint8Array, opts: MrtReadOptions = {}): Generator<RawMrtRecord> {
  const f = new MrtFramer(opts.maxRecordLength);
  f.push(bytes);
  for (let r = f.next(); r; r = f.next()) yield r;
  f.finish();
}

/** Decoded records of a whole file held in memory. Records reference `bytes`. */
export function* parseMrt(bytes: Uint8Array, opts: MrtReadOptions = {}): Generator<MrtRecord> {
  const d = new MrtDecoder(opts);
  for (const r of splitMrt(bytes, opts)) yield d.decode(r);
}

/**
 * Decoded records of a byte stream (e.g. file chunks). Records reference the
 * chunks, which the source must not reuse.
 */
export async function* readMrt(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>, opts: MrtReadOptions = {}): AsyncGenerator<MrtRecord> {
  const f = new MrtFramer(opts.maxRecordLength);
  const d = new MrtDecoder(opts);
  for await (const chunk of source) {
    f.push(chunk);
    for (let r = f.next(); r; r = f.next()) yield d.decode(r);
  }
  f.finish();
}
