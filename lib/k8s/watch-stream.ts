/**
 * Framing of a Kubernetes watch stream: the response body is one JSON object
 * per line. `LineSplitter` turns byte chunks split anywhere (mid-line,
 * mid-UTF-8 sequence, several lines per chunk, `\r\n` endings) into complete
 * lines; `parseWatchLine` parses one line into a watch event, and
 * `readWatchEvents` does both over a byte stream.
 */
import type { WatchEvent } from "./types.ts";

/** A malformed or truncated watch stream. */
export class WatchStreamError extends Error {
  override readonly name = "WatchStreamError";
}

/** Bytes in, complete lines out (without the line ending; blank lines dropped). */
export class LineSplitter {
  #decoder = new TextDecoder("utf-8", { fatal: true });
  #partial = "";

  /** Feeds one chunk; returns the lines it completed. Throws WatchStreamError on invalid UTF-8. */
  push(chunk: Uint8Array): string[] {
    let text: string;
    try {
      text = this.#decoder.decode(chunk, { stream: true });
    } catch {
      throw new WatchStreamError(`watch stream is not valid UTF-8 (after "${preview(this.#partial)}")`);
    }
    if (!text.includes("\n")) {
      this.#partial += text;
      return [];
    }
    const parts = (this.#partial + text).split("\n");
    this.#partial = parts.pop()!;
    const out: string[] = [];
    for (const p of parts) {
      const line = p.endsWith("\r") ? p.slice(0, -1) : p;
      if (line.trim() !== "") out.push(line);
    }
    return out;
  }

  /**
   * The stream ended cleanly. Returns a last line that ends without a newline
   * when it is a whole JSON value (servers end each event with "\n", but be
   * lenient); throws WatchStreamError("watch stream ended mid-event") when
   * bytes of an incomplete event (or UTF-8 sequence) are left over.
   */
  end(): string[] {
    let tail: string;
    try {
      tail = this.#partial + this.#decoder.decode();
    } catch {
      throw new WatchStreamError(`watch stream ended mid-event (inside a UTF-8 sequence after "${preview(this.#partial)}")`);
    }
    this.#partial = "";
    const line = tail.endsWith("\r") ? tail.slice(0, -1) : tail;
    if (line.trim() === "") return [];
    try {
      JSON.parse(line);
    } catch {
      throw new WatchStreamError(`watch stream ended mid-event ("${preview(line)}")`);
    }
    return [line];
  }
}

/** Parses one watch line; throws WatchStreamError naming the start of the line when it is not a watch event. */
export function parseWatchLine<T>(line: string): WatchEvent<T> {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch (e) {
    throw new WatchStreamError(`malformed watch event "${preview(line)}": ${e instanceof Error ? e.message : String(e)}`);
  }
  if (typeof v !== "object" || v === null || typeof (v as { type?: unknown }).type !== "string") {
    throw new WatchStreamError(`malformed watch event "${preview(line)}": no "type"`);
  }
  const o = (v as { object?: unknown }).object;
  if (typeof o !== "object" || o === null) throw new WatchStreamError(`malformed watch event "${preview(line)}": no "object"`);
  return v as WatchEvent<T>;
}

/**
 * Reads watch events from a byte stream until it ends. `onChunk` is called
 * for every chunk received (a watchdog's heartbeat). Throws WatchStreamError
 * on a truncated or malformed stream, and whatever the reader throws.
 */
export async function* readWatchEvents<T>(
  body: ReadableStream<Uint8Array>,
  onChunk?: () => void,
): AsyncGenerator<WatchEvent<T>> {
  const splitter = new LineSplitter();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onChunk?.();
      for (const line of splitter.push(value)) yield parseWatchLine<T>(line);
    }
    for (const line of splitter.end()) yield parseWatchLine<T>(line);
  } finally {
    // Early exit (consumer stopped, error): cancel the body so the connection is closed.
    reader.cancel().catch(() => {});
  }
}

function preview(s: string): string {
  const t = s.length > 80 ? `${s.slice(0, 80)}…` : s;
  return t.replace(/[\r\n]/g, " ");
}
