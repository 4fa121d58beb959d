/**
 * Checking a plain value (a YAML document or a JSON request body) against a
 * zod schema of schema.ts, key by key, so that one bad key never hides
 * another: every issue is collected with its path (and whether it points at
 * a key or at the mapping holding a missing key), unknown keys get a
 * did-you-mean from the schema's own keys, alternatives (unions) report the
 * alternative the value was meant to be, and the valid parts come back even
 * when others are not (failed values are INVALID), for the cross-checks of
 * resolve.ts. Names with `ref` metadata are collected as references.
 *
 * Leaves (scalars, and anything without mappings inside) are parsed by zod
 * itself; this walks the mappings, lists, records, unions and pipes around them.
 */
import type { z } from "zod";
import { type PathSegment, formatPath, suggest } from "./reader.ts";
import { type RefKind, expectedText, metaOf } from "./schema.ts";

/** A value that failed validation (already reported). */
export const INVALID: unique symbol = Symbol("invalid");

export interface PathIssue {
  /** The path shown in the message. */
  path: PathSegment[];
  message: string;
  /** The node to point at when not `path` itself (e.g. the mapping of a missing key); trimmed to what exists. */
  at?: PathSegment[];
  /** Point at the key of `at ?? path` rather than its value. */
  key?: boolean;
  /** A value of the wrong kind for this alternative (set by the walker; decides which alternative of a union is reported). */
  shallow?: boolean;
  /** A missing or unknown key, and the explanation or did-you-mean in parentheses (for media that word these differently). */
  kind?: { key: "missing" | "unknown"; detail: string };
}

export interface Reference {
  kind: RefKind;
  name: string;
  path: PathSegment[];
}

/** What a walk collects. */
export class Findings {
  readonly issues: PathIssue[] = [];
  readonly refs: Reference[] = [];
  /** True when no issue lies at or below `path`. */
  valid(path: readonly PathSegment[]): boolean {
    const p = formatPath(path);
    return !this.issues.some((i) => {
      const q = formatPath(i.path);
      return q === p || q.startsWith(p + ".") || q.startsWith(p + "[") || p === "";
    });
  }
}

type Def = {
  type: string;
  innerType?: z.ZodType;
  defaultValue?: unknown;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  checks?: { _zod: { check: (payload: { value: unknown; issues: RawIssue[] }) => void } }[];
};
type RawIssue = { code?: string; path?: PathSegment[]; message?: string; input?: unknown };

/** `o[k] = v`, also for a key named `__proto__` (user-named mappings: policies, groups, labels). */
export function setKey(o: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

const isMapping = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** The kind of container a schema parses ("object", "array", ...), through wrappers. */
function baseType(s: z.ZodType): string {
  const d = s._zod.def as Def;
  if (d.innerType) return baseType(d.innerType);
  if (d.type === "pipe") return baseType(d.in!);
  return d.type;
}

/** Validate `value` against `schema` at `path`; the parsed value (partial where invalid, INVALID for a failed leaf). */
export function walk(schema: z.ZodType, value: unknown, path: PathSegment[], f: Findings): unknown {
  const d = schema._zod.def as Def;
  const start = f.issues.length;
  let out: unknown;
  switch (d.type) {
    case "optional":
      return value === undefined ? undefined : walk(d.innerType!, value, path, f);
    case "default":
      return value === undefined ? structuredClone(d.defaultValue) : walk(d.innerType!, value, path, f);
    case "prefault":
      return walk(d.innerType!, value === undefined ? structuredClone(d.defaultValue) : value, path, f);
    case "pipe": {
      const mid = walk(d.in!, value, path, f);
      out = f.issues.length > start ? mid : walk(d.out!, mid, path, f);
      break;
    }
    case "object":
      out = walkObject(schema, d, value, path, f);
      break;
    case "array":
      if (!Array.isArray(value)) return shapeError(schema, "a list", value, path, f);
      out = value.map((item, i) => walk(d.element!, item, [...path, i], f));
      break;
    case "record": {
      if (!isMapping(value)) return shapeError(schema, "a mapping", value, path, f);
      const o: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) setKey(o, k, walk(d.valueType!, v, [...path, k], f));
      out = o;
      break;
    }
    case "union":
      return walkUnion(schema, d, value, path, f);
    default:
      return leaf(schema, value, path, f);
  }
  if (f.issues.length > start || !d.checks?.length) return out;
  const payload = { value: out, issues: [] as RawIssue[] };
  for (const ch of d.checks) ch._zod.check(payload);
  for (const iss of payload.issues) f.issues.push({ path: [...path, ...(iss.path ?? [])], message: iss.message ?? expectedText("a valid value", iss.input) });
  return payload.issues.length ? INVALID : out;
}

function shapeError(schema: z.ZodType, what: string, value: unknown, path: PathSegment[], f: Findings): typeof INVALID {
  f.issues.push({ path, message: expectedText(metaOf(schema).what ?? what, value), shallow: true });
  return INVALID;
}

function walkObject(schema: z.ZodType, d: Def, value: unknown, path: PathSegment[], f: Findings): unknown {
  if (!isMapping(value)) return shapeError(schema, "a mapping", value, path, f);
  const shape = d.shape!;
  const known = Object.keys(shape);
  const meta = metaOf(schema);
  for (const k of Object.keys(value)) {
    if (Object.hasOwn(shape, k)) continue;
    const hint = meta.hints && Object.hasOwn(meta.hints, k) ? meta.hints[k] : undefined;
    const s = hint === undefined ? suggest(k, known) : undefined;
    const extra = hint !== undefined ? ` (${hint})` : s !== undefined ? ` (did you mean "${s}"?)` : "";
    f.issues.push({ path: [...path, k], message: `unknown key "${k}"${extra}`, key: true, kind: { key: "unknown", detail: extra } });
  }
  const o: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(shape)) {
    let v = value[k];
    const m = metaOf(s);
    if (v === null && m.emptyOk) v = baseType(s) === "array" ? [] : {};
    if (v === undefined && s._zod.optin === undefined) {
      const detail = m.required ? ` (${m.required})` : "";
      f.issues.push({ path: [...path, k], at: path, message: `missing required key "${k}"${detail}`, kind: { key: "missing", detail } });
      continue;
    }
    const r = walk(s, v, [...path, k], f);
    if (r !== undefined) setKey(o, k, r);
  }
  return o;
}

/** The alternative that parses the value; else the one the value was meant to be (its issues go beyond "wrong kind"); else "expected WHAT". */
function walkUnion(schema: z.ZodType, d: Def, value: unknown, path: PathSegment[], f: Findings): unknown {
  const here = formatPath(path);
  const tries: { t: Findings; v: unknown }[] = [];
  for (const o of d.options!.filter((o) => mayAccept(o, value))) {
    const t = new Findings();
    tries.push({ t, v: walk(o, value, path, t) });
    if (t.issues.length === 0) break;
  }
  const pick = tries.find((x) => x.t.issues.length === 0) ?? tries.find((x) => x.t.issues.some((i) => !i.shallow || formatPath(i.path) !== here));
  if (pick) {
    f.issues.push(...pick.t.issues);
    f.refs.push(...pick.t.refs);
    return pick.v;
  }
  const what = metaOf(schema).what;
  if (what === undefined) {
    f.issues.push(...tries[0]!.t.issues);
    return INVALID;
  }
  return shapeError(schema, what, value, path, f);
}

/** False when the alternative cannot take a value of this kind at all (it would only say "wrong kind"); saves trying it. */
function mayAccept(s: z.ZodType, value: unknown): boolean {
  switch (baseType(s)) {
    case "object":
    case "record":
      return isMapping(value);
    case "array":
      return Array.isArray(value);
    case "string":
    case "enum":
      return typeof value === "string";
    case "number":
      return typeof value === "number";
    case "boolean":
      return typeof value === "boolean";
    default:
      return true;
  }
}

/** A value without mappings inside, parsed by zod; one issue per path (the first). */
function leaf(schema: z.ZodType, value: unknown, path: PathSegment[], f: Findings): unknown {
  const r = schema.safeParse(value);
  if (r.success) {
    const ref = metaOf(schema).ref;
    if (ref && typeof r.data === "string") f.refs.push({ kind: ref, name: r.data, path });
    return r.data;
  }
  const seen = new Set<string>();
  for (const iss of r.error.issues) {
    const p = [...path, ...(iss.path as PathSegment[])];
    const key = formatPath(p);
    if (seen.has(key)) continue;
    seen.add(key);
    const shallow = iss.path.length === 0 && (iss.code === "invalid_type" || iss.code === "invalid_value");
    f.issues.push({ path: p, message: iss.message, shallow });
  }
  return INVALID;
}

/**
 * Where an issue is shown and pointed at, given which paths exist in the
 * input: a path below a scalar (`community: x` checked as `[x]`) is cut back
 * to the value written; an explicit `at` (a missing key's mapping, a merged
 * key's peer) is cut back the same way while the shown path stays.
 */
export function placeIssue(i: PathIssue, exists: (p: PathSegment[]) => boolean): { shown: string; at: PathSegment[] } {
  const trim = (p: PathSegment[]) => {
    let q = p;
    while (q.length && !exists(q)) q = q.slice(0, -1);
    return q;
  };
  if (i.at) return { shown: formatPath(i.path), at: trim(i.at) };
  const t = trim(i.path);
  return { shown: formatPath(t), at: t };
}
