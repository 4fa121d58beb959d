/**
 * An MRT dump file that rotates: the file side of `mrtDump: {file, rotate}`.
 * Records (already encoded, lib/mrt/writer.ts) are appended to the file
 * named by strftime of `file` (%Y %m %d %H %M %S, local time, %% a percent
 * sign); every `rotate` seconds, aligned to the wall clock (multiples of
 * `rotate` since the epoch, as OpenBGPD's `dump all in FILE SECONDS`), a new
 * file is started, named by the rotation time. A file that exists is
 * appended to; missing directories are created.
 *
 * Writing never blocks the caller: `write` queues the record, and one
 * asynchronous write at a time takes everything queued. The queue is
 * bounded (`maxBuffered` bytes): when the disk does not keep up, records are
 * dropped and counted, and the log says so at most once a minute. A file
 * that cannot be opened or written is reported the same way (its records are
 * dropped), and the next rotation tries again.
 */
import { mkdir, open, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

/** strftime conversions of a dump file name: %Y %m %d %H %M %S (local time) and %%. */
export function strftime(pattern: string, d: Date): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return pattern.replace(/%([YmdHMS%])/g, (_, c: string) => {
    switch (c) {
      case "Y":
        return String(d.getFullYear());
      case "m":
        return two(d.getMonth() + 1);
      case "d":
        return two(d.getDate());
      case "H":
        return two(d.getHours());
      case "M":
        return two(d.getMinutes());
      case "S":
        return two(d.getSeconds());
      default:
        return "%";
    }
  });
}

export interface MrtDumpFileOptions {
  /** The file name pattern (strftime conversions). */
  file: string;
  /** Seconds between two files, aligned to the wall clock; 0: one file, never rotated. */
  rotate: number;
  /** Where problems are reported (dropped records, files that cannot be written). */
  log: (level: "info" | "warn" | "error", msg: string) => void;
  /** Most bytes queued for the disk (default 16 MiB): beyond, records are dropped. */
  maxBuffered?: number;
  /** Wall clock, ms (tests). */
  now?: () => number;
}

export interface MrtDumpStats {
  /** Records written to disk. */
  written: number;
  /** Records dropped: queue full, or a file that could not be opened or written. */
  dropped: number;
  /** Bytes waiting to be written. */
  queuedBytes: number;
  /** The file records go to now. */
  file: string;
}

/** A run of records for one file. */
interface Segment {
  path: string;
  chunks: Uint8Array[];
}

const DROP_LOG_MS = 60_000;

export class MrtDumpFile {
  private readonly maxBuffered: number;
  private readonly now: () => number;
  private readonly segments: Segment[] = [];
  private queued = 0;
  private fh: FileHandle | null = null;
  private fhPath: string | null = null;
  private writing: Promise<void> | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private readonly stats_ = { written: 0, dropped: 0 };
  /** Drops not yet reported, and when the last report was made. */
  private unreported = 0;
  private lastReport = -Infinity;
  private lastReason = "";

  constructor(private readonly opts: MrtDumpFileOptions) {
    if (!opts.file) throw new Error("mrtDump: file is empty");
    if (!Number.isInteger(opts.rotate) || opts.rotate < 0) throw new Error(`mrtDump: rotate ${opts.rotate} is not a whole number of seconds >= 0`);
    this.maxBuffered = opts.maxBuffered ?? 16 << 20;
    this.now = opts.now ?? Date.now;
    const t = this.now();
    const start = opts.rotate > 0 ? Math.floor(t / 1000 / opts.rotate) * opts.rotate * 1000 : t;
    this.segments.push({ path: strftime(opts.file, new Date(start)), chunks: [] });
    this.schedule();
  }

  get stats(): MrtDumpStats {
    return { ...this.stats_, queuedBytes: this.queued, file: this.current.path };
  }

  private get current(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  /** Queue one record for the current file; dropped (and counted) when the queue is full or the dump is closed. */
  write(record: Uint8Array): void {
    if (this.closed) return this.discard(1, "the dump is closed");
    if (this.queued + record.length > this.maxBuffered) return this.discard(1, `the disk does not keep up (${this.maxBuffered} bytes queued)`);
    this.current.chunks.push(record);
    this.queued += record.length;
    this.kick();
  }

  /** Start the next file now (the rotation timer calls it at each boundary). */
  rotate(at = this.now()): void {
    const path = strftime(this.opts.file, new Date(at));
    if (path === this.current.path) return;
    this.segments.push({ path, chunks: [] });
    this.kick();
  }

  private schedule(): void {
    const r = this.opts.rotate;
    if (r === 0 || this.closed) return;
    const t = this.now();
    const next = (Math.floor(t / 1000 / r) + 1) * r * 1000;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.rotate(next);
      this.schedule();
    }, next - t);
    this.timer.unref?.();
  }

  /** Count `n` records as dropped for `reason` (reported at most once a minute). */
  discard(n: number, reason: string): void {
    this.stats_.dropped += n;
    this.unreported += n;
    this.lastReason = reason;
    this.report();
  }

  /** Say how many records were dropped, at most once a minute. */
  private report(): void {
    if (this.unreported === 0) return;
    const t = this.now();
    if (t - this.lastReport < DROP_LOG_MS) return;
    this.lastReport = t;
    this.opts.log("warn", `mrtDump: ${this.unreported} record${this.unreported === 1 ? "" : "s"} dropped (${this.lastReason}); ${this.stats_.dropped} in all`);
    this.unreported = 0;
  }

  /** Start the writer unless it runs; it is started again if records arrived while it was finishing. */
  private kick(): void {
    if (this.writing) return;
    this.writing = this.flush().finally(() => {
      this.writing = null;
      this.report();
      if (this.segments.length > 1 || this.segments[0]!.chunks.length) this.kick();
    });
  }

  /** Write what is queued, one write at a time, file by file, until nothing is left. */
  private async flush(): Promise<void> {
    for (;;) {
      const seg = this.segments[0]!;
      if (seg.chunks.length) {
        const chunks = seg.chunks;
        seg.chunks = [];
        const bytes = chunks.reduce((n, c) => n + c.length, 0);
        await this.writeOut(seg.path, chunks, bytes);
        this.queued -= bytes;
        continue;
      }
      if (this.segments.length > 1) {
        this.segments.shift();
        continue;
      }
      return;
    }
  }

  private async writeOut(path: string, chunks: Uint8Array[], bytes: number): Promise<void> {
    try {
      if (this.fhPath !== path) {
        await this.closeFile();
        await mkdir(dirname(path), { recursive: true });
        this.fh = await open(path, "a", 0o640);
        this.fhPath = path;
      }
      await this.fh!.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes));
      this.stats_.written += chunks.length;
    } catch (e) {
      await this.closeFile();
      this.discard(chunks.length, `cannot write ${path}: ${(e as Error).message}`);
    }
  }

  private async closeFile(): Promise<void> {
    const fh = this.fh;
    this.fh = null;
    this.fhPath = null;
    if (fh) {
      try {
        await fh.close();
      } catch (e) {
        this.opts.log("error", `mrtDump: closing a dump file failed: ${(e as Error).message}`);
      }
    }
  }

  /** Stop rotating, write what is queued, close the file. Later writes are dropped. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    while (this.writing) await this.writing;
    await this.closeFile();
    if (this.unreported) {
      this.lastReport = -Infinity;
      this.report();
    }
  }
}
