/**
 * The YAML configuration of `bgpctl run` / `watch-k8s`: reads a file into
 * the normalised `RouterConfig` of ./types.ts. What is specific to YAML lives
 * here: the document becomes a plain value (aliases resolved, `<<` merge keys
 * applied, duplicate and non-text keys reported) while every value and key
 * node is remembered by its path, so that each issue of the schema
 * (schema.ts, walked by walk.ts) and of the cross-checks (resolve.ts) is
 * reported at the file, line and column of the offending node, as
 * `FILE:LINE:COLUMN: PATH: message`, all issues at once, in file order.
 *
 * Keys are camelCase; unknown keys are errors (with a did-you-mean), so a
 * typo never silently falls back to a default.
 */
import { readFileSync } from "node:fs";
import { type Document, LineCounter, type Node, isAlias, isMap, isScalar, isSeq, parseDocument } from "yaml";
import { ConfigError, type ConfigIssue, type PathSegment, describe, formatPath } from "./reader.ts";
import { z } from "zod";
import { type SettingsGlobals, peerDefaults, resolveConfig, resolveKubePeerList } from "./resolve.ts";
import { AnnotationPeerSchema, DocumentSchema, HealthSchema, KernelSchema, KubernetesSchema, SecretRefSchema } from "./schema.ts";
import type { KubePeerConfig, KubernetesConfig, RouterConfig } from "./types.ts";
import { Findings, type PathIssue, placeIssue, setKey, walk } from "./walk.ts";

export { ConfigError, formatIssue, type ConfigIssue } from "./reader.ts";

/** The `kubernetes:` section with every key at its default (an empty section). */
export function defaultKubernetesConfig(): KubernetesConfig {
  return { ...KubernetesSchema.parse({}), peers: [] };
}

/** Defaults of the sections and of every peer (the values `RouterConfig` carries when a key is absent), from the schema. */
export const DEFAULTS = {
  peer: peerDefaults(),
  kernel: KernelSchema.parse({}),
  health: HealthSchema.parse({}),
  kubernetes: { ...defaultKubernetesConfig(), secretNamespace: SecretRefSchema.shape.namespace.parse(undefined) },
} as const;

/** Read and validate a configuration file. Throws ConfigError (also when the file cannot be read). */
export function loadConfig(path: string): RouterConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : (e as Error).message;
    throw new ConfigError([{ file: path, line: 0, column: 0, path: "", message: `cannot read the configuration: ${why}` }]);
  }
  return parseConfig(text, path);
}

/** Validate configuration text; `sourceName` names it in messages and becomes `RouterConfig.source`. */
export function parseConfig(text: string, sourceName: string): RouterConfig {
  const y = new YamlValue(text, sourceName);
  if (y.value === null || y.value === undefined) {
    throw new ConfigError([{ file: sourceName, line: 1, column: 1, path: "", message: 'the configuration is empty: expected a mapping with at least "asn" and "routerId"' }]);
  }
  const value = walk(DocumentSchema, y.value, [], y.f);
  const cfg = resolveConfig(value, { f: y.f, line: (p) => y.line(p), source: sourceName });
  y.throwIfIssues();
  return cfg!;
}

/**
 * A YAML list of external peers read on its own, with the keys and checks of
 * `kubernetes.peers` entries except nodeSelector, group, password and
 * passwordFile (passwords come from passwordSecret): a node's
 * `bgpctl.io/peers` annotation. localAs defaults to `asn`; import and export
 * may name `policies`; an address may appear once. Empty text is no peers.
 * Throws ConfigError (positions within `text`).
 */
export function parsePeerList(text: string, sourceName: string, opts: { asn: number; policies: readonly string[]; globals?: SettingsGlobals }): KubePeerConfig[] {
  const y = new YamlValue(text, sourceName, ["peers"]);
  if (y.value === null || y.value === undefined) return [];
  const schema = z.array(AnnotationPeerSchema).meta({ what: "a list of peers such as - {address: 192.0.2.254, remoteAs: 65000}" });
  const value = walk(schema, y.value, ["peers"], y.f);
  const peers = resolveKubePeerList(value, ["peers"], opts, { f: y.f, line: (p) => y.line(p) });
  y.throwIfIssues();
  return peers;
}

/** A parsed YAML text: its plain value, and the key and value node of every path in it. */
class YamlValue {
  readonly f = new Findings();
  readonly value: unknown;
  private readonly lines = new LineCounter();
  private readonly doc: Document;
  private readonly nodes = new Map<string, { key?: Node; value: Node | null }>();
  /** Problems of the YAML itself (duplicate keys, merge sources), as positioned issues. */
  private readonly yamlIssues: ConfigIssue[] = [];

  /** `root`: the path of the whole text (a list of peers on its own is `peers`). */
  constructor(
    text: string,
    private readonly file: string,
    root: PathSegment[] = [],
  ) {
    // Duplicate keys are reported with the rest, not as a YAML error.
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: false });
    if (this.doc.errors.length) {
      const issues = this.doc.errors.map((e) => ({ file, ...this.pos(e.pos[0]), path: "", message: `YAML syntax error: ${e.message.split("\n")[0]}` }));
      throw new ConfigError(sortIssues(issues));
    }
    const top = this.resolve(this.doc.contents);
    this.value = isScalar(top) && top.value === null ? null : this.convert(top, root, undefined, 0);
  }

  private pos(offset: number): { line: number; column: number } {
    const p = this.lines.linePos(offset);
    return p.line === 0 ? { line: 1, column: offset + 1 } : { line: p.line, column: p.col };
  }

  private at(node: Node | null | undefined): { line: number; column: number } {
    return this.pos(node?.range ? node.range[0] : 0);
  }

  /** The 1-based line of the value at `path` (0 when it is not in the document). */
  line(path: PathSegment[]): number {
    const n = this.nodes.get(formatPath(placeIssue({ path, message: "" }, (p) => this.nodes.has(formatPath(p))).at));
    return n ? this.at(n.value).line : 0;
  }

  private resolve(node: unknown): Node | null {
    let n = node;
    for (let hops = 0; isAlias(n) && hops < 100; hops++) n = n.resolve(this.doc) ?? null;
    return n === undefined || n === null || isAlias(n) ? null : (n as Node);
  }

  private yamlIssue(node: Node | null | undefined, path: PathSegment[], message: string): void {
    this.yamlIssues.push({ file: this.file, ...this.at(node), path: formatPath(path), message });
  }

  /** The plain value of a node, remembering where each part is. */
  private convert(node: Node | null, path: PathSegment[], key: Node | undefined, depth: number): unknown {
    this.nodes.set(formatPath(path), { key, value: node });
    if (depth > 64) {
      this.yamlIssue(node, path, "nested too deeply (a recursive alias?)");
      return undefined;
    }
    if (isSeq(node)) return node.items.map((item, i) => this.convert(this.resolve(item), [...path, i], undefined, depth + 1));
    if (!isMap(node)) return isScalar(node) ? node.value : null;
    const out: Record<string, unknown> = {};
    const firstKey = new Map<string, Node>();
    const merged: { k: string; key: Node; value: Node | null }[] = [];
    for (const pair of node.items) {
      const keyNode = this.resolve(pair.key);
      const k = isScalar(keyNode) ? keyNode.value : undefined;
      if (typeof k !== "string" && typeof k !== "number") {
        this.yamlIssue(keyNode ?? node, path, `expected a key name, got ${describe(shown(keyNode))}`);
        continue;
      }
      const name = String(k);
      if (name === "<<") {
        this.mergeSources(pair.value, path, merged);
        continue;
      }
      const prior = firstKey.get(name);
      if (prior) {
        this.yamlIssue(keyNode, [...path, name], `duplicate key "${name}" (first at line ${this.at(prior).line})`);
        continue;
      }
      firstKey.set(name, keyNode!);
      setKey(out, name, this.convert(this.resolve(pair.value), [...path, name], keyNode!, depth + 1));
    }
    // The mapping's own keys win over merged ones; earlier merge sources over later ones (YAML merge key semantics).
    for (const m of merged) {
      if (Object.hasOwn(out, m.k)) continue;
      setKey(out, m.k, this.convert(m.value, [...path, m.k], m.key, depth + 1));
    }
    return out;
  }

  private mergeSources(value: unknown, path: PathSegment[], into: { k: string; key: Node; value: Node | null }[]): void {
    const v = this.resolve(value);
    const sources = isSeq(v) ? v.items.map((i) => this.resolve(i)) : [v];
    for (const src of sources) {
      if (!isMap(src)) {
        this.yamlIssue(src, [...path, "<<"], `expected a mapping (or list of mappings) to merge, got ${describe(shown(src))}`);
        continue;
      }
      for (const pair of src.items) {
        const keyNode = this.resolve(pair.key);
        const k = isScalar(keyNode) ? keyNode.value : undefined;
        if ((typeof k === "string" || typeof k === "number") && !into.some((m) => m.k === String(k))) into.push({ k: String(k), key: keyNode!, value: this.resolve(pair.value) });
      }
    }
  }

  /** Throws the ConfigError of every issue found (YAML, schema and cross-checks), in file order. */
  throwIfIssues(): void {
    const issues = [...this.yamlIssues, ...this.f.issues.map((i) => this.place(i))];
    if (issues.length) throw new ConfigError(sortIssues(issues));
  }

  private place(i: PathIssue): ConfigIssue {
    const { shown, at } = placeIssue(i, (p) => this.nodes.has(formatPath(p)));
    const n = this.nodes.get(formatPath(at));
    const node = i.key && n?.key ? n.key : (n?.value ?? (at.length ? undefined : this.resolve(this.doc.contents)));
    return { file: this.file, ...this.at(node), path: shown, message: i.message };
  }
}

/** A node as `describe` shows it: a scalar's value, or an empty mapping or list for its kind. */
function shown(n: Node | null): unknown {
  return isScalar(n) ? n.value : isMap(n) ? {} : isSeq(n) ? [] : null;
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((i, n) => ({ i, n }))
    .sort((a, b) => a.i.line - b.i.line || a.i.column - b.i.column || a.n - b.n)
    .map((x) => x.i);
}
