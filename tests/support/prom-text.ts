/**
 * A strict parser of the Prometheus text exposition format (version 0.0.4),
 * for the metrics tests: every line must be a HELP or TYPE line, a comment,
 * empty, or a sample; names and label names must be valid; label values
 * and HELP texts may only use the format's escapes; each family has one
 * TYPE, before its samples, and its samples are contiguous; no series
 * appears twice; counters are non-negative; a histogram's buckets are
 * cumulative with `le` ascending and end with +Inf equal to `_count`.
 * Anything else throws, naming the line.
 */

export interface Sample {
  /** The sample's own name (e.g. x_bucket). */
  name: string;
  /** The family it belongs to (x for x_bucket, x_sum, x_count of a histogram). */
  family: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  help: string;
  samples: Sample[];
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(["counter", "gauge", "histogram", "summary", "untyped"]);

function fail(n: number, line: string, why: string): never {
  throw new Error(`exposition line ${n}: ${why}: ${JSON.stringify(line)}`);
}

/** The text of an escaped HELP docstring (only \\ and \n are escapes). */
function unescapeHelp(s: string, n: number, line: string): string {
  return s.replace(/\\(.?)/g, (_, c: string) => {
    if (c === "\\") return "\\";
    if (c === "n") return "\n";
    fail(n, line, `bad escape \\${c} in HELP`);
  });
}

function parseValue(s: string, n: number, line: string): number {
  if (s === "+Inf") return Infinity;
  if (s === "-Inf") return -Infinity;
  if (s === "NaN") return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) fail(n, line, `bad value "${s}"`);
  return Number(s);
}

/** The labels of `{...}` starting at text[i] === "{"; returns them and the index after "}". */
function parseLabels(text: string, i: number, n: number, line: string): { labels: Record<string, string>; end: number } {
  const labels: Record<string, string> = {};
  i++; // "{"
  for (;;) {
    if (text[i] === "}") return { labels, end: i + 1 };
    const eq = text.indexOf("=", i);
    if (eq < 0) fail(n, line, "label without =");
    const name = text.slice(i, eq);
    if (!LABEL.test(name) || name.startsWith("__")) fail(n, line, `bad label name "${name}"`);
    if (name in labels) fail(n, line, `label "${name}" twice`);
    if (text[eq + 1] !== '"') fail(n, line, `label "${name}" value not quoted`);
    let v = "";
    let j = eq + 2;
    for (;;) {
      const c = text[j];
      if (c === undefined) fail(n, line, "unterminated label value");
      if (c === "\n") fail(n, line, "raw newline in label value");
      if (c === '"') break;
      if (c === "\\") {
        const e = text[j + 1];
        if (e === "\\") v += "\\";
        else if (e === '"') v += '"';
        else if (e === "n") v += "\n";
        else fail(n, line, `bad escape \\${e ?? ""} in label value`);
        j += 2;
        continue;
      }
      v += c;
      j++;
    }
    labels[name] = v;
    i = j + 1;
    if (text[i] === ",") {
      i++;
      if (text[i] === "}") fail(n, line, "trailing comma in labels");
    } else if (text[i] !== "}") fail(n, line, `expected , or } after label "${name}"`);
  }
}

function seriesKey(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`)
    .join(",")}}`;
}

/** The family a sample name belongs to, given the families typed so far. */
function familyOf(name: string, families: Map<string, Family>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length);
      const f = families.get(base);
      if (f && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) return base;
    }
  }
  return name;
}

/** Parse a whole exposition; throws on the first violation. Families in order of appearance. */
export function parseExposition(text: string): Map<string, Family> {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("exposition does not end with a newline");
  const families = new Map<string, Family>();
  const series = new Set<string>();
  const closed = new Set<string>();
  const typed = new Set<string>();
  const helped = new Set<string>();
  let current: string | null = null;
  const lines = text.split("\n");
  lines.pop(); // after the final newline
  lines.forEach((line, idx) => {
    const n = idx + 1;
    if (line.trim() === "") return;
    if (line.startsWith("#")) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(line);
      if (!m) {
        if (/^#\s*(HELP|TYPE)\b/.test(line)) fail(n, line, "malformed HELP/TYPE line");
        return; // a comment
      }
      const [, kind, name, rest] = m as unknown as [string, "HELP" | "TYPE", string, string];
      if (!NAME.test(name)) fail(n, line, `bad metric name "${name}"`);
      let f = families.get(name);
      if (closed.has(name) || (f && f.samples.length > 0)) fail(n, line, `${kind} for ${name} after its samples`);
      if (!f) {
        f = { name, type: "untyped", help: "", samples: [] };
        families.set(name, f);
      }
      if (kind === "TYPE") {
        if (typed.has(name)) fail(n, line, `second TYPE for ${name}`);
        if (!TYPES.has(rest)) fail(n, line, `unknown type "${rest}"`);
        typed.add(name);
        f.type = rest as Family["type"];
      } else {
        if (helped.has(name)) fail(n, line, `second HELP for ${name}`);
        helped.add(name);
        f.help = unescapeHelp(rest, n, line);
      }
      if (current !== null && current !== name) closed.add(current);
      current = name;
      return;
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nm) fail(n, line, "not a sample line");
    const name = nm[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === "{") {
      const l = parseLabels(line, i, n, line);
      labels = l.labels;
      i = l.end;
    }
    if (line[i] !== " ") fail(n, line, "expected a space before the value");
    const parts = line.slice(i + 1).split(" ");
    if (parts.length < 1 || parts.length > 2 || parts[0] === "") fail(n, line, "expected a value and an optional timestamp");
    const value = parseValue(parts[0]!, n, line);
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1]!)) fail(n, line, `bad timestamp "${parts[1]}"`);
    const family = familyOf(name, families);
    const f = families.get(family);
    if (!f || !typed.has(family)) fail(n, line, `sample of ${family} without a TYPE line before it`);
    if (closed.has(family)) fail(n, line, `samples of ${family} are not contiguous`);
    if (current !== null && current !== family) closed.add(current);
    current = family;
    const key = seriesKey(name, labels);
    if (series.has(key)) fail(n, line, `duplicate series ${key}`);
    series.add(key);
    if (f.type === "counter" && !(value >= 0)) fail(n, line, "counter value is not a non-negative number");
    if (f.type === "histogram" && name === `${family}_bucket` && !("le" in labels)) fail(n, line, "histogram bucket without le");
    f.samples.push({ name, family, labels, value });
  });
  for (const f of families.values()) if (f.type === "histogram") checkHistogram(f);
  return families;
}

function checkHistogram(f: Family): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number; sum?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const k = seriesKey("", rest);
    const g = groups.get(k) ?? { buckets: [] };
    groups.set(k, g);
    if (s.name === `${f.name}_bucket`) g.buckets.push([parseValue(le!, 0, le!), s.value]);
    else if (s.name === `${f.name}_count`) g.count = s.value;
    else if (s.name === `${f.name}_sum`) g.sum = s.value;
  }
  for (const [k, g] of groups) {
    if (g.count === undefined || g.sum === undefined) throw new Error(`histogram ${f.name}${k}: _count or _sum missing`);
    if (g.buckets.length === 0 || g.buckets.at(-1)![0] !== Infinity) throw new Error(`histogram ${f.name}${k}: no +Inf bucket last`);
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new Error(`histogram ${f.name}${k}: le not ascending`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new Error(`histogram ${f.name}${k}: buckets not cumulative`);
    }
    if (g.buckets.at(-1)![1] !== g.count) throw new Error(`histogram ${f.name}${k}: +Inf bucket ${g.buckets.at(-1)![1]} != _count ${g.count}`);
  }
}

/** The value of one series (exact labels), or undefined. */
export function sampleValue(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  const fam = families.get(familyOf(name, families));
  const want = seriesKey(name, labels);
  return fam?.samples.find((s) => seriesKey(s.name, s.labels) === want)?.value;
}

/** Every series key (name and labels, no value) of an exposition. */
export function seriesKeys(families: Map<string, Family>): string[] {
  return [...families.values()].flatMap((f) => f.samples.map((s) => seriesKey(s.name, s.labels)));
}
