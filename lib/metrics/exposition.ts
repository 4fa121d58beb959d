/**
 * The Prometheus text exposition format (version 0.0.4), written by hand:
 * `# HELP` and `# TYPE` lines, then the family's samples, label values and
 * help texts escaped as the format wants. The daemon's scrape writes tens of
 * thousands of per-peer series; prom-client took about 20 µs per series
 * (label hashing and validation, then formatting), 1.4 s of event loop for
 * 5,000 peers, where a plain string costs about 0.5 µs and can be built in
 * slices.
 */

export type MetricType = "counter" | "gauge" | "histogram";

/** Escape a label value: backslash, double quote and newline. */
export function escapeLabelValue(v: string): string {
  return /[\\"\n]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n") : v;
}

/** Escape a HELP text: backslash and newline. */
export function escapeHelp(v: string): string {
  return /[\\\n]/.test(v) ? v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n") : v;
}

/** A sample value as the format spells it (+Inf, -Inf, NaN, else the number). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

/** `{a="x",b="y"}` for label pairs (names are the caller's constants, valid by construction); "" for none. */
export function labelText(labels: readonly (readonly [string, string])[]): string {
  if (labels.length === 0) return "";
  return `{${labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(",")}}`;
}

/** Text is gathered in blocks of about this many characters (a few joins of large strings, not one of 100,000 small ones). */
const BLOCK = 1 << 16;

/** Appends families to one exposition text; `text()` is the whole of it. */
export class ExpositionWriter {
  private readonly blocks: string[] = [];
  private cur = "";

  private add(s: string): void {
    this.cur += s;
    if (this.cur.length >= BLOCK) {
      this.blocks.push(this.cur);
      this.cur = "";
    }
  }

  /** Start a family: its HELP and TYPE lines. Its samples must follow before the next family. */
  family(name: string, type: MetricType, help: string): void {
    this.add(`# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`);
  }

  /** One sample; `labels` is labelText() output (precomputed for series written often). */
  sample(name: string, labels: string, value: number): void {
    this.add(`${name}${labels} ${formatValue(value)}\n`);
  }

  /** The text in blocks of about 64 KiB (joining 8 MB at once would hold the event loop for tens of milliseconds). */
  finish(): string[] {
    if (this.cur !== "") this.blocks.push(this.cur);
    this.cur = "";
    return this.blocks;
  }
}

/** A response body that encodes and sends one block per pull, as the client reads. */
export function blocksBody(blocks: readonly string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (i < blocks.length) controller.enqueue(enc.encode(blocks[i++]!));
      else controller.close();
    },
  });
}

/**
 * A histogram with fixed bucket bounds, cheap to observe (no labels, one
 * array increment): the bucket counts are kept per bucket and made
 * cumulative when written.
 */
export class FixedHistogram {
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending (the +Inf bucket is implied). */
    readonly bounds: readonly number[],
  ) {
    for (let i = 1; i < bounds.length; i++) if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`histogram ${name}: bucket bounds must ascend`);
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(v: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && v > b[i]!) i++;
    this.counts[i]!++;
    this.sum += v;
    this.count++;
  }

  /** The family: cumulative `_bucket` series with `le`, then `_sum` and `_count`. */
  write(w: ExpositionWriter): void {
    w.family(this.name, "histogram", this.help);
    let acc = 0;
    for (let i = 0; i <= this.bounds.length; i++) {
      acc += this.counts[i]!;
      w.sample(`${this.name}_bucket`, labelText([["le", i < this.bounds.length ? formatValue(this.bounds[i]!) : "+Inf"]]), acc);
    }
    w.sample(`${this.name}_sum`, "", this.sum);
    w.sample(`${this.name}_count`, "", this.count);
  }
}
