/**
 * Reading a parsed YAML document with positions: the `ConfigError` that lists
 * every problem of a configuration file as `FILE:LINE:COLUMN: PATH: message`,
 * and a `Reader` that walks YAML nodes, checks their types and ranges, and
 * collects issues (instead of stopping at the first) pointing at the
 * offending node. The configuration schema itself lives in load.ts.
 */
import { type Document, type LineCounter, type Node, type YAMLMap, isAlias, isMap, isScalar, isSeq } from "yaml";

/** One problem in a configuration file. `line`/`column` are 1-based; 0 when the file could not be read at all. */
export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  /** Where in the configuration, e.g. `peers[2].remoteAs`; "" for YAML syntax errors and whole-file problems. */
  path: string;
  /** What was expected (and what was found). */
  message: string;
}

/** One line of a ConfigError: `FILE:LINE:COLUMN: PATH: message` (position and path left out when unknown). */
export function formatIssue(i: ConfigIssue): string {
  const where = i.line > 0 ? `${i.file}:${i.line}:${i.column}` : i.file;
  return i.path ? `${where}: ${i.path}: ${i.message}` : `${where}: ${i.message}`;
}

/** An invalid configuration: every issue found, in file order; `message` is one formatted line per issue. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly issues: ConfigIssue[];
  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.issues = issues;
  }
}

/** `base.key`, or `base["odd key"]` for keys that are not plain names. */
export function joinPath(base: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

export function indexPath(base: string, i: number): string {
  return `${base}[${i}]`;
}

function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/**
 * The closest of `candidates` to a misspelt `word`: the same name up to case,
 * `-` and `_` (remote_as, Remote-AS → remoteAs), or within a small edit distance.
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, "");
  const w = norm(word);
  const same = candidates.find((c) => norm(c) === w);
  if (same) return same;
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = editDistance(w, norm(c));
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  const limit = w.length <= 4 ? 1 : w.length <= 8 ? 2 : 3;
  return bestD <= limit ? best : undefined;
}

/** A mapping whose keys were checked: each known key with its key node and (alias-resolved) value node. */
export class Fields {
  constructor(
    readonly node: YAMLMap,
    readonly path: string,
    private readonly entries: Map<string, { key: Node; value: Node | null }>,
  ) {}
  has(k: string): boolean {
    return this.entries.has(k);
  }
  /** The value node of key `k` (null for an empty value), undefined when the key is absent. */
  get(k: string): Node | null | undefined {
    return this.entries.get(k)?.value;
  }
  keyNode(k: string): Node | undefined {
    return this.entries.get(k)?.key;
  }
  keys(): string[] {
    return [...this.entries.keys()];
  }
  /** The configuration path of key `k`. */
  at(k: string): string {
    return joinPath(this.path, k);
  }
}

/** Something with a source range (any parsed node). */
type Located = { range?: readonly [number, number, number] | null } | null | undefined;

/** Walks YAML nodes of one document, checking types, and collects issues. */
export class Reader {
  readonly issues: ConfigIssue[] = [];
  constructor(
    readonly file: string,
    private readonly lines: LineCounter,
    private readonly doc: Document,
  ) {}

  /** Record a problem at `node` (the start of its range; 1:1 when it has none). */
  error(node: Located, path: string, message: string): void {
    const pos = this.position(node);
    this.issues.push({ file: this.file, line: pos.line, column: pos.column, path, message });
  }

  position(node: Located): { line: number; column: number } {
    const off = node?.range ? node.range[0] : 0;
    const p = this.lines.linePos(off);
    return p.line === 0 ? { line: 1, column: off + 1 } : { line: p.line, column: p.col };
  }

  /** The node an alias points to (other nodes unchanged); null for a missing node. */
  resolve(node: unknown): Node | null {
    let n = node;
    for (let hops = 0; isAlias(n) && hops < 100; hops++) n = n.resolve(this.doc) ?? null;
    return n === undefined || n === null || isAlias(n) ? null : (n as Node);
  }

  /** How a found value is shown in "expected X, got Y". */
  describe(node: Node | null | undefined): string {
    if (!node) return "an empty value";
    if (isMap(node)) return "a mapping";
    if (isSeq(node)) return "a list";
    if (isScalar(node)) {
      const v = node.value;
      if (v === null || v === undefined) return "an empty value";
      if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
      if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
      return JSON.stringify(v) ?? String(v);
    }
    return "an unsupported YAML value";
  }

  expected(node: Node | null | undefined, path: string, what: string, detail?: string): undefined {
    this.error(node, path, `expected ${what}, got ${this.describe(node)}${detail ? ` (${detail})` : ""}`);
    return undefined;
  }

  /**
   * Check that `node` is a mapping and that every key is one of `allowed`;
   * unknown keys are reported with a did-you-mean, duplicate keys too.
   * `<<` merge keys (`<<: *anchor`) are applied; the mapping's own keys win.
   * `hint` may explain a specific unknown key instead of a suggestion.
   */
  fields(
    node: Node | null | undefined,
    path: string,
    allowed: readonly string[],
    what = "a mapping",
    hint?: (key: string) => string | undefined,
  ): Fields | undefined {
    const n = this.resolve(node);
    if (!isMap(n)) return this.expected(n, path, what);
    const entries = new Map<string, { key: Node; value: Node | null }>();
    const merged = new Map<string, { key: Node; value: Node | null }>();
    for (const pair of n.items) {
      const keyNode = this.resolve(pair.key);
      const key = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof key !== "string" && typeof key !== "number") {
        this.error(keyNode ?? n, path, `expected a key name, got ${this.describe(keyNode)}`);
        continue;
      }
      const k = String(key);
      if (k === "<<") {
        this.merge(pair.value, path, allowed, merged, hint);
        continue;
      }
      if (!allowed.includes(k)) {
        this.unknownKey(keyNode!, path, k, allowed, hint);
        continue;
      }
      const prior = entries.get(k);
      if (prior) {
        this.error(keyNode, joinPath(path, k), `duplicate key "${k}" (first at line ${this.position(prior.key).line})`);
        continue;
      }
      entries.set(k, { key: keyNode!, value: this.resolve(pair.value) });
    }
    for (const [k, v] of merged) if (!entries.has(k)) entries.set(k, v);
    return new Fields(n, path, entries);
  }

  private unknownKey(
    keyNode: Node,
    path: string,
    k: string,
    allowed: readonly string[],
    hint?: (key: string) => string | undefined,
  ): void {
    const h = hint?.(k);
    const s = h === undefined ? suggest(k, allowed) : undefined;
    const extra = h !== undefined ? ` (${h})` : s !== undefined ? ` (did you mean "${s}"?)` : "";
    this.error(keyNode, joinPath(path, k), `unknown key "${k}"${extra}`);
  }

  private merge(
    value: unknown,
    path: string,
    allowed: readonly string[],
    into: Map<string, { key: Node; value: Node | null }>,
    hint?: (key: string) => string | undefined,
  ): void {
    const v = this.resolve(value);
    const sources = isSeq(v) ? v.items.map((i) => this.resolve(i)) : [v];
    for (const src of sources) {
      if (!isMap(src)) {
        this.expected(src, joinPath(path, "<<"), "a mapping (or list of mappings) to merge");
        continue;
      }
      for (const pair of src.items) {
        const keyNode = this.resolve(pair.key);
        const key = isScalar(keyNode) ? keyNode.value : undefined;
        if (typeof key !== "string" && typeof key !== "number") continue;
        const k = String(key);
        if (!allowed.includes(k)) {
          this.unknownKey(keyNode!, path, k, allowed, hint);
          continue;
        }
        // Earlier merge sources win over later ones (YAML merge key semantics).
        if (!into.has(k)) into.set(k, { key: keyNode!, value: this.resolve(pair.value) });
      }
    }
  }

  /** The items of a list (alias-resolved), or undefined after reporting. */
  list(node: Node | null | undefined, path: string, what = "a list"): (Node | null)[] | undefined {
    const n = this.resolve(node);
    if (!isSeq(n)) return this.expected(n, path, what);
    return n.items.map((i) => this.resolve(i));
  }

  /** A single scalar or a list of them: the item nodes with their paths. */
  oneOrMany(node: Node | null | undefined, path: string): { node: Node | null; path: string }[] {
    const n = this.resolve(node);
    if (isSeq(n)) return n.items.map((i, idx) => ({ node: this.resolve(i), path: indexPath(path, idx) }));
    return [{ node: n, path }];
  }

  /** An integer in min..max. */
  int(node: Node | null | undefined, path: string, min: number, max: number, what?: string): number | undefined {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === "number" && Number.isInteger(v) && v >= min && v <= max) return v;
    return this.expected(node, path, what ?? `an integer ${min}..${max}`);
  }

  bool(node: Node | null | undefined, path: string): boolean | undefined {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === "boolean") return v;
    return this.expected(node, path, "true or false");
  }

  /** A string scalar (numbers are not strings). */
  str(node: Node | null | undefined, path: string, what = "a string", allowEmpty = false): string | undefined {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === "string" && (allowEmpty || v.length > 0)) return v;
    return this.expected(node, path, what);
  }

  /** One of a fixed set of words. */
  choice<T extends string>(node: Node | null | undefined, path: string, values: readonly T[]): T | undefined {
    const v = isScalar(node) ? node.value : undefined;
    if (typeof v === "string" && (values as readonly string[]).includes(v)) return v as T;
    const words = values.map((x) => x);
    const what = words.length === 2 ? `${words[0]} or ${words[1]}` : `one of ${words.join(", ")}`;
    const s = typeof v === "string" ? suggest(v, values) : undefined;
    return this.expected(node, path, what, s !== undefined ? `did you mean ${s}?` : undefined);
  }
}
