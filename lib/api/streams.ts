/**
 * The control socket's streamed answers, pull-based so that a client that
 * does not read stops the producer instead of growing the daemon: Bun pulls
 * the next chunk of a response body only when the socket has taken the
 * previous ones.
 *
 * - ribBody: `GET /v1/rib` as a JSON array written incrementally (`[`,
 *   entries separated by `,\n`, `]`; valid JSON once complete) or as NDJSON
 *   (one entry per line, then a RibStreamEnd line `{"end":{count,truncated}}`,
 *   so a reader can tell a complete answer from a cut connection). Each pull
 *   produces one slice (SLICE_MS or SLICE_ENTRIES entries) after a
 *   turn of the event loop, and stops after `limit` entries.
 *   `GET /v1/fib` (every kernel route's state) streams the same way, as a
 *   JSON array.
 * - mrtBody: `GET /v1/rib/mrt`, MRT records (bytes) pulled the same way,
 *   one chunk of at most MRT_CHUNK_BYTES per slice; a walk that fails
 *   half-way errors the stream, so the client sees a cut answer rather
 *   than a short file passed off as complete.
 * - MonitorFeed: one `GET /v1/monitor` client's bounded queue of encoded
 *   events between the router (push) and the socket (pull); the queue is
 *   what is really unsent, so its bound holds. Overflow cuts the client.
 */
import { SLICE_MS, nextTurn } from "../core/slices.ts";
import type { MonitorEvent, RibEntry, RibStreamEnd } from "./types.ts";

const encoder = new TextEncoder();

/** Most entries in one slice of a rib answer. */
export const SLICE_ENTRIES = 1000;

export type RibFormat = "json" | "ndjson";

/**
 * A body pulled in slices from `source`: `slice` fills one chunk per pull
 * (`first` on the first), a turn of the event loop runs between two, and the
 * iterator is released when the stream ends, fails or is cancelled.
 */
function slicedStream<T>(
  source: Iterable<T>,
  slice: (it: Iterator<T>, c: ReadableStreamDefaultController<Uint8Array>, first: boolean, release: () => void) => void,
): ReadableStream<Uint8Array> {
  const it = source[Symbol.iterator]();
  let first = true;
  let finished = false;
  const release = () => {
    if (finished) return;
    finished = true;
    it.return?.();
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(c) {
        if (!first) await nextTurn(); // timers and other sockets run between two slices
        if (finished) return;
        const f = first;
        first = false;
        slice(it, c, f, release);
      },
      cancel() {
        release();
      },
    },
    { highWaterMark: 0 },
  );
}

/** A `GET /v1/rib` (or `/v1/fib`) body: `entries` pulled in slices, framed as `format`, at most `limit` of them. */
export function ribBody<T = RibEntry>(entries: Iterable<T>, format: RibFormat, limit?: number): ReadableStream<Uint8Array> {
  let count = 0;
  return slicedStream(entries, (it, c, first, release) => {
    const parts: string[] = [];
    if (first && format === "json") parts.push("[");
    const end = performance.now() + SLICE_MS;
    let done = false;
    let truncated = false;
    try {
      for (let n = 0; n < SLICE_ENTRIES && performance.now() < end; n++) {
        if (limit !== undefined && count >= limit) {
          done = true;
          truncated = !it.next().done;
          break;
        }
        const r = it.next();
        if (r.done) {
          done = true;
          break;
        }
        const text = JSON.stringify(r.value);
        if (format === "ndjson") parts.push(text + "\n");
        else parts.push(count === 0 ? "\n" + text : ",\n" + text);
        count++;
      }
    } catch (e) {
      // The walk failed half-way: NDJSON says so in its last line; a JSON array is left unterminated (invalid), never passed off as complete.
      release();
      if (format === "ndjson") {
        c.enqueue(encoder.encode(parts.join("") + JSON.stringify({ error: (e as Error).message }) + "\n"));
        c.close();
      } else c.error(e);
      return;
    }
    if (done) {
      const tail: RibStreamEnd = { end: { count, truncated } };
      parts.push(format === "ndjson" ? JSON.stringify(tail) + "\n" : count === 0 ? "]\n" : "\n]\n");
      release();
    }
    if (parts.length) c.enqueue(encoder.encode(parts.join("")));
    if (done) c.close();
  });
}

/** Most bytes in one chunk of an MRT answer. */
export const MRT_CHUNK_BYTES = 256 * 1024;

/** A `GET /v1/rib/mrt` body: `records` pulled in slices (SLICE_MS, MRT_CHUNK_BYTES), a turn of the event loop between two; a failed walk goes to `onError` too. */
export function mrtBody(records: Iterable<Uint8Array>, onError: (e: unknown) => void = () => {}): ReadableStream<Uint8Array> {
  return slicedStream(records, (it, c, _first, release) => {
    const parts: Uint8Array[] = [];
    let size = 0;
    let done = false;
    const end = performance.now() + SLICE_MS;
    try {
      while (size < MRT_CHUNK_BYTES && performance.now() < end) {
        const r = it.next();
        if (r.done) {
          done = true;
          break;
        }
        parts.push(r.value);
        size += r.value.length;
      }
    } catch (e) {
      release();
      onError(e);
      c.error(e);
      return;
    }
    if (size) c.enqueue(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size));
    if (done) {
      release();
      c.close();
    }
  });
}

/** Bounds of one monitor client's queue: whichever is reached first cuts the client. */
export interface MonitorLimits {
  maxEvents: number;
  maxBytes: number;
}

export const MONITOR_LIMITS: MonitorLimits = { maxEvents: 50_000, maxBytes: 8 * 1024 * 1024 };

/** Most bytes handed to the socket in one chunk. */
const MONITOR_CHUNK_BYTES = 64 * 1024;

/**
 * One monitor client's queue: events are encoded when pushed and wait here
 * until the socket takes them (the stream's pull). `push` returns false when
 * the queue would pass its bounds: the caller cuts the client (`cut`), which
 * drops the queue and ends the stream with an error.
 */
export class MonitorFeed {
  private queue: string[] = [];
  private head = 0;
  private bytes = 0;
  private wake: (() => void) | null = null;
  private state: "open" | "closing" | "cut" = "open";
  private ctrl: ReadableStreamDefaultController<Uint8Array> | null = null;
  readonly body: ReadableStream<Uint8Array>;

  constructor(
    readonly limits: MonitorLimits = MONITOR_LIMITS,
    onCancel: () => void = () => {},
  ) {
    this.body = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.ctrl = c;
        },
        pull: (c) => this.pull(c),
        cancel: () => {
          this.drop();
          onCancel();
        },
      },
      { highWaterMark: 0 },
    );
  }

  /** Events waiting to be sent. */
  get queuedEvents(): number {
    return this.queue.length - this.head;
  }
  /** Bytes waiting to be sent. */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** Queue an event; false (nothing queued) when that would pass the bounds. */
  push(e: MonitorEvent): boolean {
    if (this.state !== "open") return true;
    const line = JSON.stringify(e) + "\n";
    if (this.queuedEvents + 1 > this.limits.maxEvents || this.bytes + line.length > this.limits.maxBytes) return false;
    this.queue.push(line);
    this.bytes += line.length;
    this.notify();
    return true;
  }

  /** End the stream once what is queued has gone out. */
  close(): void {
    if (this.state !== "open") return;
    this.state = "closing";
    this.notify();
  }

  /**
   * Drop what is queued and end the stream (the client fell behind): what
   * the socket already took is all it gets. (Bun keeps a connection whose
   * peer never reads until the peer goes; only those bytes stay held.)
   */
  cut(): void {
    if (this.state === "cut") return;
    this.state = "cut";
    this.drop();
    try {
      this.ctrl?.close();
    } catch {
      /* the stream already ended */
    }
    this.notify();
  }

  private drop(): void {
    this.queue = [];
    this.head = 0;
    this.bytes = 0;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async pull(c: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    while (this.queuedEvents === 0 && this.state === "open") await new Promise<void>((r) => (this.wake = r));
    if (this.state === "cut") return;
    if (this.queuedEvents === 0) {
      c.close();
      return;
    }
    const parts: string[] = [];
    let size = 0;
    while (this.head < this.queue.length && (size === 0 || size + this.queue[this.head]!.length <= MONITOR_CHUNK_BYTES)) {
      const line = this.queue[this.head++]!;
      parts.push(line);
      size += line.length;
    }
    this.bytes -= size;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    c.enqueue(encoder.encode(parts.join("")));
  }
}
