/**
 * `bgpctl mrt FILE [--json] [--add-path]`: print the records of an MRT dump
 * (RFC 6396 TABLE_DUMP, TABLE_DUMP_V2, BGP4MP/BGP4MP_ET, RFC 8050 ADD-PATH),
 * decoded with the same BGP codec as the wire. One line per record (per RIB
 * entry for table dumps), or one JSON object per line. The file is streamed
 * (gzip-compressed files too); output is written in large buffered chunks.
 * A truncated or corrupt file prints everything valid, then one error line
 * naming the byte offset of the bad record, and exits 1.
 */
import type { Command } from "commander";
import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { MrtDecoder, MrtError, MrtFramer, type MrtRecord, recordLines, recordObjects } from "../lib/mrt/mod.ts";

export interface MrtCommandOptions {
  json?: boolean;
  /** Decode BGP4MP message NLRI as ADD-PATH whatever the subtype (see MrtReadOptions.assumeAddPath). */
  addPath?: boolean;
}

/** Output sink; may return a promise to apply backpressure, or throw OutputClosed to stop early. */
export type Sink = (s: string) => void | Promise<void>;

/** Thrown by a sink whose reader went away (EPIPE, e.g. `bgpctl mrt FILE | head`): stop quietly. */
export class OutputClosed extends Error {
  override readonly name = "OutputClosed";
}

const CHUNK = 1 << 20;
const FLUSH_AT = 1 << 16;

/** Lines collected and handed to the sink in chunks of about 64 KiB. */
class LineBuffer {
  private parts: string[] = [];
  private size = 0;
  constructor(private readonly out: Sink) {}
  /** Add a line; returns a promise when the buffer was flushed to a sink that applies backpressure. */
  add(line: string): void | Promise<void> {
    this.parts.push(line);
    this.size += line.length + 1;
    if (this.size >= FLUSH_AT) return this.flush();
  }
  flush(): void | Promise<void> {
    if (this.parts.length === 0) return;
    const s = this.parts.join("\n") + "\n";
    this.parts = [];
    this.size = 0;
    return this.out(s);
  }
}

function fsMessage(e: unknown): string {
  const err = e as { code?: string; message?: string };
  switch (err.code) {
    case "ENOENT":
      return "no such file";
    case "EACCES":
      return "permission denied";
    case "EISDIR":
      return "is a directory";
    default:
      return err.message ?? String(e);
  }
}

/** Chunks of a file: plain, or gunzipped when it starts with the gzip magic. */
async function* fileChunks(file: string): AsyncGenerator<Uint8Array> {
  const fh = await open(file, "r");
  try {
    const magic = new Uint8Array(3);
    const { bytesRead: m } = await fh.read(magic, 0, 3, 0);
    if (m >= 2 && magic[0] === 0x1f && magic[1] === 0x8b) {
      // Loaded here, not at start: no other command needs zlib.
      const { createGunzip } = await import("node:zlib");
      for await (const c of createReadStream(file).pipe(createGunzip())) yield c as Uint8Array;
      return;
    }
    if (m === 3 && magic[0] === 0x42 && magic[1] === 0x5a && magic[2] === 0x68) {
      throw Object.assign(new Error("bzip2-compressed file: decompress it first (bunzip2)"), { code: "BZIP2" });
    }
    let pos = 0;
    for (;;) {
      const buf = new Uint8Array(CHUNK);
      const { bytesRead } = await fh.read(buf, 0, CHUNK, pos);
      if (bytesRead === 0) return;
      pos += bytesRead;
      yield bytesRead === CHUNK ? buf : buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
}

/**
 * Decode `file` and write its records to `out`. Returns the exit status: 0,
 * or 1 (after writing one line to `err`) when the file cannot be read, is
 * truncated or corrupt, or holds BGP messages the codec rejects.
 */
export async function runMrt(file: string, opts: MrtCommandOptions, out: Sink, err: (s: string) => void = (s) => void process.stderr.write(s)): Promise<number> {
  const buf = new LineBuffer(out);
  const framer = new MrtFramer();
  const decoder = new MrtDecoder({ assumeAddPath: opts.addPath === true });
  let malformed = 0;
  let firstMalformed = -1;
  let addPathHint = false;
  const emit = (rec: MrtRecord): void | Promise<void> => {
    if (rec.kind === "message" && rec.error) {
      if (malformed++ === 0) firstMalformed = rec.header.offset;
      if (rec.msgType === 2 && !rec.addPath) addPathHint = true;
    }
    let pending: void | Promise<void> = undefined;
    if (opts.json) for (const o of recordObjects(rec)) pending = buf.add(JSON.stringify(o)) ?? pending;
    else for (const l of recordLines(rec)) pending = buf.add(l) ?? pending;
    return pending;
  };
  try {
    for await (const chunk of fileChunks(file)) {
      framer.push(chunk);
      for (let r = framer.next(); r; r = framer.next()) {
        const p = emit(decoder.decode(r));
        if (p) await p;
      }
    }
    framer.finish();
    await buf.flush();
  } catch (e) {
    if (e instanceof OutputClosed) return 0;
    try {
      await buf.flush();
    } catch (e2) {
      if (e2 instanceof OutputClosed) return 0;
      throw e2;
    }
    if (e instanceof MrtError) err(`bgpctl: ${file}: ${e.message}\n`);
    else if (e && typeof e === "object" && typeof (e as { code?: unknown }).code === "string") {
      const code = (e as { code: string }).code;
      const gz = code.startsWith("Z_") ? `gzip: ${fsMessage(e)} after ${framer.offset + framer.buffered} decompressed bytes` : fsMessage(e);
      err(`bgpctl: ${file}: ${gz}\n`);
    }
    else throw e;
    return 1;
  }
  if (malformed > 0) {
    const hint = addPathHint ? " (if the session negotiated ADD-PATH, try --add-path)" : "";
    err(`bgpctl: ${file}: ${malformed} malformed BGP message${malformed === 1 ? "" : "s"}, the first at byte offset ${firstMalformed}${hint}\n`);
    return 1;
  }
  return 0;
}

/** A sink writing to stdout that waits for 'drain' when the pipe is full. */
function stdoutSink(): Sink {
  let broken = false;
  process.stdout.on("error", (e: NodeJS.ErrnoException) => {
    if (e.code === "EPIPE") broken = true;
    else throw e;
  });
  return (s) => {
    if (broken) throw new OutputClosed("stdout closed");
    if (!process.stdout.write(s)) {
      return new Promise<void>((resolve) => {
        const done = () => {
          process.stdout.off("drain", done);
          process.stdout.off("error", done);
          resolve();
        };
        process.stdout.on("drain", done);
        process.stdout.on("error", done);
      });
    }
  };
}

export function registerMrt(program: Command): void {
  program
    .command("mrt")
    .description("print the records of an MRT dump (TABLE_DUMP, TABLE_DUMP_V2, BGP4MP; gzip accepted)")
    .argument("<file>", "MRT file")
    .option("--json", "one JSON object per line (one per RIB entry, message or state change)")
    .option("--add-path", "decode every BGP4MP message with ADD-PATH path identifiers, whatever the subtype says (no fallback)")
    .action(async (file: string, opts: MrtCommandOptions) => {
      process.exitCode = await runMrt(file, opts, stdoutSink());
    });
}
