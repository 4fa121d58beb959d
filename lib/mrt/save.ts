/**
 * Saving an MRT byte stream to a file (`show rib --mrt FILE`): the bytes go
 * to a temporary file beside FILE (same directory, so the final rename is
 * atomic), checked record by record as they pass (MrtFramer: a stream that
 * stops inside a record, or a record header that cannot be right, is an
 * error). FILE appears, or is replaced, only when the whole stream arrived;
 * on any error the temporary file is removed and FILE is left as it was.
 */
import { open, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { MrtFramer } from "./framer.ts";
import { MRT_TYPE, TD2 } from "./types.ts";

export interface SavedMrt {
  /** Records written. */
  records: number;
  /** TABLE_DUMP_V2 RIB records among them (one per prefix). */
  prefixes: number;
  /** RIB entries (routes) in them. */
  routes: number;
  bytes: number;
}

/** Entry count of a TABLE_DUMP_V2 RIB record body (sequence, prefix, count). */
function entryCount(body: Uint8Array, generic: boolean): number {
  const p = 4 + (generic ? 3 : 0);
  const o = p + 1 + ((body[p]! + 7) >> 3);
  return o + 2 <= body.length ? (body[o]! << 8) | body[o + 1]! : 0;
}

/**
 * Write what `fill` produces (it calls `write` with each chunk, awaiting
 * it) to `file`. Resolves with what was written; rejects (FILE untouched)
 * when `fill` or the file system fails or the stream is not whole records.
 */
export async function saveMrt(file: string, fill: (write: (chunk: Uint8Array) => Promise<void>) => Promise<void>): Promise<SavedMrt> {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.partial`);
  const fh = await open(tmp, "wx", 0o644);
  const framer = new MrtFramer();
  const out: SavedMrt = { records: 0, prefixes: 0, routes: 0, bytes: 0 };
  let ok = false;
  try {
    await fill(async (chunk) => {
      framer.push(chunk);
      for (let r = framer.next(); r; r = framer.next()) {
        out.records++;
        const { type, subtype } = r.header;
        if (type === MRT_TYPE.TABLE_DUMP_V2 && subtype !== TD2.PEER_INDEX_TABLE) {
          out.prefixes++;
          out.routes += entryCount(r.body, subtype === TD2.RIB_GENERIC || subtype === TD2.RIB_GENERIC_ADDPATH);
        }
      }
      let o = 0;
      while (o < chunk.length) o += (await fh.write(chunk, o)).bytesWritten;
      out.bytes += chunk.length;
    });
    framer.finish();
    await fh.close();
    await rename(tmp, file);
    ok = true;
    return out;
  } finally {
    if (!ok) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
    }
  }
}
