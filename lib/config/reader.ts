/**
 * Configuration problems and how they read: the `ConfigError` that lists
 * every problem of a configuration as `FILE:LINE:COLUMN: PATH: message`,
 * configuration paths (`peers[2].remoteAs`), how a found value is shown in
 * "expected X, got Y", and the did-you-mean for a misspelt word. Shared by
 * the YAML loader (load.ts), the schema (schema.ts) and the control API's
 * request validation (request.ts).
 */

/** One problem in a configuration file. `line`/`column` are 1-based; 0 when unknown (a whole-file problem, or a request body). */
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
  if (!where) return i.path ? `${i.path}: ${i.message}` : i.message;
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

/** A step in a configuration path: a mapping key or a list index. */
export type PathSegment = string | number;

/** `base.key`, or `base["odd key"]` for keys that are not plain names. */
export function joinPath(base: string, key: string): string {
  if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) return base ? `${base}.${key}` : key;
  return `${base}[${JSON.stringify(key)}]`;
}

export function indexPath(base: string, i: number): string {
  return `${base}[${i}]`;
}

/** The text of a path: `peers[2].remoteAs`. */
export function formatPath(path: readonly PathSegment[]): string {
  let s = "";
  for (const seg of path) s = typeof seg === "number" ? indexPath(s, seg) : joinPath(s, seg);
  return s;
}

/** How a found value is shown in "expected X, got Y". */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return "an empty value";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return JSON.stringify(v.length > 60 ? v.slice(0, 57) + "..." : v);
  if (typeof v === "number" || typeof v === "boolean" || typeof v === "bigint") return String(v);
  if (typeof v === "object") return "a mapping";
  return "an unsupported value";
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
