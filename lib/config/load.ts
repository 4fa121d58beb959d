/**
 * The YAML configuration of `bgpctl run`: parses and validates a config file
 * into the normalised `RouterConfig` of ./types.ts (defaults filled in, peer
 * groups merged into their peers, addresses and prefixes in canonical form,
 * every name resolved). Any problem throws a `ConfigError` listing every issue
 * found, each with the file, line and column of the offending YAML node and
 * the configuration path (`peers[2].remoteAs`), saying what was expected.
 *
 * Keys are camelCase; unknown keys are errors (with a did-you-mean), so a
 * typo never silently falls back to a default.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { LineCounter, type Node, isMap, isScalar, parseDocument } from "yaml";
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { formatAddr, parseAddr, parseIPv4, parsePrefix, prefixToString } from "../core/addr.ts";
import { AFI } from "../core/addr.ts";
import { ConfigError, type ConfigIssue, type Fields, Reader, indexPath, joinPath, suggest } from "./reader.ts";
import type {
  AdvertiseConfig,
  CommunitySet,
  FamilyName,
  MaxPrefix,
  PeerConfig,
  Policy,
  PolicyMatch,
  PolicyRef,
  PolicySet,
  PolicyTerm,
  PrefixMatch,
  RouterConfig,
  KernelConfig,
  KubePeerConfig,
  KubernetesConfig,
} from "./types.ts";

export { ConfigError, formatIssue, type ConfigIssue } from "./reader.ts";

/** Defaults of the top level and of every peer (the values `RouterConfig` carries when a key is absent). */
export const DEFAULTS = {
  listen: [{ address: "::", port: 179 }],
  controlSocket: "/run/bgpctl/bgpctl.sock",
  mrai: 0,
  multipathMaxPaths: 8,
  kernel: {
    enabled: false,
    table: 254,
    protocol: 186,
    metric: 20,
    ecmp: true,
    families: ["ipv4", "ipv6"] as FamilyName[],
    exclude: [] as string[],
    retainOnExit: false,
    startupDeadline: 60,
  },
  log: { level: "info", format: "text" },
  health: { address: "::", port: 9179 },
  kubernetes: {
    asn: 64512,
    mesh: true,
    advertisePodCidrs: true,
    advertisePodCidrsExternal: true,
    meshHoldTime: 90,
    meshPort: 179,
    services: {
      clusterIPs: true,
      externalIPs: true,
      loadBalancerIPs: true,
      withdrawWhenCordoned: true,
      withdrawWhenExcluded: true,
      requireEndpoints: true,
    },
    api: { pageSize: 500, watchTimeoutSeconds: 240 },
    secretNamespace: "kube-system",
  },
  peer: {
    port: 179,
    passive: false,
    holdTime: 90,
    connectRetry: 120,
    families: ["ipv4", "ipv6"] as FamilyName[],
    nextHopSelf: false,
    routeReflectorClient: false,
    multihop: false as number | false,
    shutdown: false,
    allowOwnAs: 0,
    asOverride: false,
    maxPrefixAction: "warn" as const,
    maxPrefixRestartAfter: 60,
  },
} as const;

/** The `kubernetes:` section with every key at its default (an empty section). */
export function defaultKubernetesConfig(): KubernetesConfig {
  const D = DEFAULTS.kubernetes;
  return {
    asn: D.asn,
    mesh: D.mesh,
    advertisePodCidrs: D.advertisePodCidrs,
    advertisePodCidrsExternal: D.advertisePodCidrsExternal,
    meshHoldTime: D.meshHoldTime,
    meshPort: D.meshPort,
    peers: [],
    services: { ...D.services, allowedRanges: [], communities: [], largeCommunities: [] },
    api: { ...D.api },
  };
}

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
  const { doc, r } = readDocument(text, sourceName);
  const cfg = new ConfigBuilder(r, sourceName).build(doc.contents as Node | null);
  if (r.issues.length || !cfg) throw new ConfigError(sortIssues(r.issues));
  return cfg;
}

/**
 * A YAML list of external peers read on its own, with the keys and checks of
 * `kubernetes.peers` entries except nodeSelector, group, password and
 * passwordFile (passwords come from passwordSecret): a node's
 * `bgpctl.io/peers` annotation. localAs defaults to `asn`; import and export
 * may name `policies`; an address may appear once. Empty text is no peers.
 * Throws ConfigError (positions within `text`).
 */
export function parsePeerList(text: string, sourceName: string, opts: { asn: number; policies: readonly string[] }): KubePeerConfig[] {
  const { doc, r } = readDocument(text, sourceName);
  const b = new ConfigBuilder(r, sourceName);
  const peers = b.peerList(doc.contents as Node | null, "peers", opts);
  if (r.issues.length || !peers) throw new ConfigError(sortIssues(r.issues));
  return peers;
}

/** Parse YAML text for a Reader; a syntax error throws ConfigError. */
function readDocument(text: string, sourceName: string): { doc: ReturnType<typeof parseDocument>; r: Reader } {
  const lines = new LineCounter();
  // Duplicate keys are reported by the Reader (with the rest), not as a YAML error.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  if (doc.errors.length) {
    const issues: ConfigIssue[] = doc.errors.map((e) => {
      const p = lines.linePos(e.pos[0]);
      const line = p.line === 0 ? 1 : p.line;
      const column = p.line === 0 ? e.pos[0] + 1 : p.col;
      return { file: sourceName, line, column, path: "", message: `YAML syntax error: ${e.message.split("\n")[0]}` };
    });
    throw new ConfigError(sortIssues(issues));
  }
  return { doc, r: new Reader(sourceName, lines, doc) };
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues
    .map((i, n) => ({ i, n }))
    .sort((a, b) => a.i.line - b.i.line || a.i.column - b.i.column || a.n - b.n)
    .map((x) => x.i);
}

// ---------------------------------------------------------------------------
// Keys

const TOP_KEYS = [
  "asn",
  "routerId",
  "listen",
  "controlSocket",
  "peers",
  "peerGroups",
  "advertise",
  "policies",
  "prefixLists",
  "multipath",
  "decision",
  "clusterId",
  "mrai",
  "kernel",
  "health",
  "kubernetes",
  "log",
] as const;

/** Keys a peer and a peer group share. */
const COMMON_PEER_KEYS = [
  "remoteAs",
  "localAs",
  "port",
  "localAddress",
  "passive",
  "holdTime",
  "keepalive",
  "connectRetry",
  "families",
  "nextHopSelf",
  "routeReflectorClient",
  "multihop",
  "import",
  "export",
  "maxPrefix",
  "description",
  "shutdown",
  "allowOwnAs",
  "asOverride",
  "addPath",
  "password",
  "passwordFile",
] as const;
type CommonKey = (typeof COMMON_PEER_KEYS)[number];

const PEER_KEYS = ["address", "group", ...COMMON_PEER_KEYS] as const;
const GROUP_KEYS = ["inherit", ...COMMON_PEER_KEYS] as const;
const ADVERTISE_KEYS = ["prefix", "nextHop", "communities", "largeCommunities", "localPref", "med", "asPathPrepend"] as const;
const TERM_KEYS = ["name", "match", "set", "action"] as const;
const MATCH_KEYS = ["prefix", "prefixList", "community", "largeCommunity", "asPath", "nextHop", "neighbor", "family", "source"] as const;
const KUBE_KEYS = [
  "nodeName",
  "kubeconfig",
  "asn",
  "routerId",
  "mesh",
  "advertisePodCidrs",
  "advertisePodCidrsExternal",
  "meshHoldTime",
  "meshPort",
  "peers",
  "services",
  "api",
] as const;
const KUBE_SERVICE_KEYS = [
  "clusterIPs",
  "externalIPs",
  "loadBalancerIPs",
  "allowedRanges",
  "communities",
  "largeCommunities",
  "withdrawWhenCordoned",
  "withdrawWhenExcluded",
  "requireEndpoints",
] as const;
const KUBE_PEER_KEYS = [...PEER_KEYS, "nodeSelector", "passwordSecret"] as const;
/** Keys of a peer in a node's peers annotation: no selector, groups or plain-text passwords. */
const PEER_LIST_KEYS = KUBE_PEER_KEYS.filter((k) => !["nodeSelector", "group", "password", "passwordFile"].includes(k));
const SET_KEYS = ["localPref", "med", "community", "largeCommunity", "nextHop", "asPathPrepend"] as const;
const FAMILIES: readonly FamilyName[] = ["ipv4", "ipv6"];
const U32 = 0xffffffff;
const ASN_WHAT = "an AS number 1..4294967295";
const POLICY_REF_WHAT = 'a policy name, a list of policy names, "all" or "none"';

// ---------------------------------------------------------------------------
// Scalar readers shared by several sections

interface Addr {
  text: string;
  afi: number;
}

/** An IPv4/IPv6 address in canonical text (RFC 5952 for IPv6); a `%zone` suffix is kept when allowed. */
function readAddr(r: Reader, node: Node | null | undefined, path: string, allowZone = false, what = "an IPv4 or IPv6 address"): Addr | undefined {
  const s = isScalar(node) && typeof node.value === "string" ? node.value : undefined;
  if (s !== undefined) {
    const pct = s.indexOf("%");
    const zone = pct >= 0 ? s.slice(pct) : "";
    const a = parseAddr(pct >= 0 ? s.slice(0, pct) : s);
    if (a && (zone === "" || (allowZone && a.afi === AFI.IPV6 && zone.length > 1))) {
      return { text: formatAddr(a.afi, a.addr) + zone, afi: a.afi };
    }
  }
  return r.expected(node, path, what);
}

function readAsn(r: Reader, node: Node | null | undefined, path: string): number | undefined {
  const v = r.int(node, path, 1, U32, ASN_WHAT);
  if (v === 23456) {
    r.error(node, path, `expected ${ASN_WHAT}, got 23456 (AS_TRANS, reserved by RFC 6793)`);
    return undefined;
  }
  return v;
}

/** A dotted-quad identifier (router id, cluster id). */
function readDottedQuad(r: Reader, node: Node | null | undefined, path: string, what: string, nonZero: boolean): string | undefined {
  const s = isScalar(node) && typeof node.value === "string" ? node.value : undefined;
  const b = s !== undefined ? parseIPv4(s) : null;
  if (b && (!nonZero || b.some((x) => x !== 0))) return formatAddr(AFI.IPV4, b);
  return r.expected(node, path, what);
}

interface ParsedPrefix {
  text: string;
  afi: number;
  len: number;
  max: number;
}

function checkPrefix(s: string): ParsedPrefix | string {
  try {
    const p = parsePrefix(s.trim());
    return { text: prefixToString(p), afi: p.afi, len: p.len, max: p.afi === AFI.IPV6 ? 128 : 32 };
  } catch (e) {
    // parsePrefix says `invalid prefix "x": reason (did you mean y?)`; keep the reason.
    return (e as Error).message.replace(/^invalid prefix "[^"]*": /, "").replace(/ \((did you mean [^)]*)\)$/, "; $1");
  }
}

function readPrefix(r: Reader, node: Node | null | undefined, path: string): ParsedPrefix | undefined {
  const s = isScalar(node) && typeof node.value === "string" ? node.value : undefined;
  if (s === undefined) return r.expected(node, path, "a prefix ADDRESS/LENGTH");
  const p = checkPrefix(s);
  if (typeof p === "string") return r.expected(node, path, "a prefix ADDRESS/LENGTH", p);
  return p;
}

/**
 * A prefix-list entry: "10.0.0.0/8", "10.0.0.0/8 le 24", "10.0.0.0/8 ge 16 le 24"
 * or {prefix, ge?, le?}; ge/le must lie within prefix length..family maximum, ge ≤ le.
 */
function readPrefixEntry(r: Reader, node: Node | null | undefined, path: string): PrefixMatch | undefined {
  const ENTRY = '"PREFIX [ge N] [le N]" or {prefix, ge, le}';
  if (isMap(node)) {
    const f = r.fields(node, path, ["prefix", "ge", "le"], ENTRY);
    if (!f) return undefined;
    if (!f.has("prefix")) {
      r.error(f.node, f.at("prefix"), 'missing required key "prefix"');
      return undefined;
    }
    const p = readPrefix(r, f.get("prefix"), f.at("prefix"));
    if (!p) return undefined;
    let ok = true;
    let ge: number | undefined;
    let le: number | undefined;
    if (f.has("ge")) {
      ge = r.int(f.get("ge"), f.at("ge"), p.len, p.max, `ge ${p.len}..${p.max} (prefix length..${p.max})`);
      ok &&= ge !== undefined;
    }
    if (f.has("le")) {
      const lo = ge ?? p.len;
      le = r.int(f.get("le"), f.at("le"), lo, p.max, `le ${lo}..${p.max} (${ge !== undefined ? "ge" : "prefix length"}..${p.max})`);
      ok &&= le !== undefined;
    }
    return ok ? entry(p.text, ge, le) : undefined;
  }
  const s = isScalar(node) && typeof node.value === "string" ? node.value.trim() : undefined;
  if (s === undefined) return r.expected(node, path, `a prefix entry ${ENTRY}`);
  const tokens = s.split(/\s+/);
  const p = checkPrefix(tokens[0]!);
  if (typeof p === "string") return r.expected(node, path, `a prefix entry ${ENTRY}`, p);
  let ge: number | undefined;
  let le: number | undefined;
  for (let i = 1; i < tokens.length; i += 2) {
    const word = tokens[i]!.toLowerCase();
    const num = tokens[i + 1];
    if ((word !== "ge" && word !== "le") || num === undefined || !/^\d{1,3}$/.test(num) || (word === "ge" ? ge : le) !== undefined) {
      return r.expected(node, path, `a prefix entry ${ENTRY}`);
    }
    if (word === "ge") ge = Number(num);
    else le = Number(num);
  }
  if (ge !== undefined && (ge < p.len || ge > p.max)) {
    r.error(node, path, `expected ge ${p.len}..${p.max} (prefix length..${p.max}), got ge ${ge} in "${s}"`);
    return undefined;
  }
  if (le !== undefined && (le < (ge ?? p.len) || le > p.max)) {
    const lo = ge ?? p.len;
    r.error(node, path, `expected le ${lo}..${p.max} (${ge !== undefined ? "ge" : "prefix length"}..${p.max}), got le ${le} in "${s}"`);
    return undefined;
  }
  return entry(p.text, ge, le);
}

function entry(prefix: string, ge: number | undefined, le: number | undefined): PrefixMatch {
  const m: PrefixMatch = { prefix };
  if (ge !== undefined) m.ge = ge;
  if (le !== undefined) m.le = le;
  return m;
}

/** A community "A:B" or well-known name; numbers re-formatted without leading zeros. */
function readCommunity(r: Reader, node: Node | null | undefined, path: string): string | undefined {
  const s = isScalar(node) && typeof node.value === "string" ? node.value : undefined;
  if (s !== undefined) {
    try {
      parseCommunity(s);
      const m = /^(\d+):(\d+)$/.exec(s);
      return m ? `${Number(m[1])}:${Number(m[2])}` : s;
    } catch {
      // reported below
    }
  }
  return r.expected(node, path, "a community A:B (each 0..65535) or a well-known name such as no-export");
}

function readLargeCommunity(r: Reader, node: Node | null | undefined, path: string): string | undefined {
  const s = isScalar(node) && typeof node.value === "string" ? node.value : undefined;
  if (s !== undefined) {
    try {
      return parseLargeCommunity(s).join(":");
    } catch {
      // reported below
    }
  }
  return r.expected(node, path, "a large community A:B:C (each 0..4294967295)");
}

/** Items of a scalar-or-list value, each read by `read`; undefined if any item was invalid. */
function readMany<T>(r: Reader, node: Node | null | undefined, path: string, read: (n: Node | null, p: string) => T | undefined): T[] | undefined {
  let ok = true;
  const out: T[] = [];
  for (const it of r.oneOrMany(node, path)) {
    const v = read(it.node, it.path);
    if (v === undefined) ok = false;
    else out.push(v);
  }
  return ok ? out : undefined;
}

// ---------------------------------------------------------------------------
// Peers and peer groups

/** A parsed value that failed validation (already reported). */
const INVALID = Symbol("invalid");

interface LayerValue {
  value: unknown;
  node: Node | null;
}

/** The validated keys of one peer or peer group. */
interface Layer {
  fields: Fields;
  values: Map<CommonKey, LayerValue>;
  /** "" for a peer, else the group's name. */
  group: string;
}

interface Reference {
  kind: "policy" | "prefix list" | "peer group";
  name: string;
  node: Node | null;
  path: string;
}

interface PolicyRefValue {
  ref: PolicyRef;
}

interface ShutdownValue {
  down: boolean;
  message?: string;
}

class ConfigBuilder {
  private readonly refs: Reference[] = [];
  /** Every name defined in each namespace (also those whose definition had errors, so they are not reported twice). */
  private readonly declared: Record<Reference["kind"], string[]> = { policy: [], "prefix list": [], "peer group": [] };
  private readonly groups = new Map<string, { layer: Layer; inherit?: { name: string; node: Node | null } }>();
  private asn: number | undefined;

  constructor(
    private readonly r: Reader,
    private readonly source: string,
  ) {}

  build(root: Node | null): RouterConfig | undefined {
    const r = this.r;
    if (root === null || (isScalar(root) && root.value === null)) {
      r.error(root, "", 'the configuration is empty: expected a mapping with at least "asn" and "routerId"');
      return undefined;
    }
    const top = r.fields(root, "", TOP_KEYS, "a mapping at the top level (asn, routerId, peers, ...)");
    if (!top) return undefined;

    // Under `kubernetes:` the AS number and router id come from the cluster (and the node).
    const k8s = top.has("kubernetes");
    if (k8s && !top.has("asn")) this.asn = this.kubeAsn(top.get("kubernetes"));
    else this.asn = this.required(top, "asn", " (our AS number)") ? readAsn(r, top.get("asn"), "asn") : undefined;
    const routerId =
      k8s && !top.has("routerId")
        ? "0.0.0.0"
        : this.required(top, "routerId", " (a dotted quad such as 192.0.2.1)")
          ? readDottedQuad(r, top.get("routerId"), "routerId", "a router id: a non-zero dotted quad such as 192.0.2.1", true)
          : undefined;
    const listen = top.has("listen") ? this.listen(top.get("listen"), "listen") : DEFAULTS.listen.map((l) => ({ ...l }));
    const controlSocket = top.has("controlSocket")
      ? r.str(top.get("controlSocket"), "controlSocket", "a socket path such as /run/bgpctl/bgpctl.sock")
      : DEFAULTS.controlSocket;

    const prefixLists = this.prefixLists(top);
    const policies = this.policies(top);
    this.peerGroups(top);
    const peers = this.peers(top);
    const kube = k8s ? this.kubernetes(top.get("kubernetes"), "kubernetes") : undefined;
    const advertise = this.advertise(top);

    const multipath = { enabled: false, maxPaths: 1 };
    if (top.has("multipath")) {
      const f = r.fields(top.get("multipath"), "multipath", ["enabled", "maxPaths"], "a mapping with enabled and maxPaths");
      if (f) {
        if (f.has("enabled")) multipath.enabled = r.bool(f.get("enabled"), f.at("enabled")) ?? false;
        multipath.maxPaths = multipath.enabled ? DEFAULTS.multipathMaxPaths : 1;
        if (f.has("maxPaths")) multipath.maxPaths = r.int(f.get("maxPaths"), f.at("maxPaths"), 1, 64, "a number of paths 1..64") ?? 1;
      }
    }
    const decision = { alwaysCompareMed: false, preferOldest: false };
    if (top.has("decision")) {
      const f = r.fields(top.get("decision"), "decision", ["alwaysCompareMed", "preferOldest"], "a mapping with alwaysCompareMed and preferOldest");
      if (f) {
        if (f.has("alwaysCompareMed")) decision.alwaysCompareMed = r.bool(f.get("alwaysCompareMed"), f.at("alwaysCompareMed")) ?? false;
        if (f.has("preferOldest")) decision.preferOldest = r.bool(f.get("preferOldest"), f.at("preferOldest")) ?? false;
      }
    }
    const clusterId = top.has("clusterId")
      ? readDottedQuad(r, top.get("clusterId"), "clusterId", "a cluster id: a dotted quad such as 192.0.2.1", false)
      : undefined;
    const mrai = top.has("mrai") ? r.int(top.get("mrai"), "mrai", 0, 65535, "an interval 0..65535 seconds") : DEFAULTS.mrai;
    const kernel = this.kernel(top, k8s);
    const health = top.has("health") ? this.health(top.get("health"), "health") : undefined;

    const log: RouterConfig["log"] = { ...DEFAULTS.log };
    if (top.has("log")) {
      const f = r.fields(top.get("log"), "log", ["level", "format"], "a mapping with level and format");
      if (f) {
        if (f.has("level")) log.level = r.choice(f.get("level"), f.at("level"), ["debug", "info", "warn", "error"] as const) ?? "info";
        if (f.has("format")) log.format = r.choice(f.get("format"), f.at("format"), ["text", "json"] as const) ?? "text";
      }
    }

    this.checkReferences();
    if (this.asn === undefined || routerId === undefined || controlSocket === undefined || mrai === undefined || !listen) return undefined;

    const cfg: RouterConfig = {
      source: this.source,
      asn: this.asn,
      routerId,
      listen,
      controlSocket,
      peers,
      advertise,
      policies,
      prefixLists,
      multipath,
      decision,
      mrai,
      kernel,
      log,
    };
    if (clusterId !== undefined) cfg.clusterId = clusterId;
    if (health) cfg.health = health;
    if (k8s) {
      if (!kube) return undefined;
      cfg.kubernetes = kube;
    }
    return cfg;
  }

  /** Report a missing required key at its mapping; true when present. */
  private required(f: Fields, key: string, what = ""): boolean {
    if (f.has(key)) return true;
    this.r.error(f.node, f.at(key), `missing required key "${key}"${what}`);
    return false;
  }

  private listen(node: Node | null | undefined, path: string): { address: string; port: number }[] | undefined {
    const r = this.r;
    const items = isMap(node) ? [{ node: node as Node | null, path }] : r.list(node, path, "{address, port} or a list of them")?.map((n, i) => ({ node: n, path: indexPath(path, i) }));
    if (!items) return undefined;
    const out: { address: string; port: number }[] = [];
    let ok = true;
    for (const it of items) {
      const f = r.fields(it.node, it.path, ["address", "port"], "a mapping with address and port");
      if (!f) {
        ok = false;
        continue;
      }
      const address = f.has("address") ? readAddr(r, f.get("address"), f.at("address"), true)?.text : DEFAULTS.listen[0]!.address;
      const port = f.has("port") ? r.int(f.get("port"), f.at("port"), 0, 65535, "a port 0..65535") : DEFAULTS.listen[0]!.port;
      if (address === undefined || port === undefined) ok = false;
      else out.push({ address, port });
    }
    return ok ? out : undefined;
  }

  // -- prefix lists and policies ------------------------------------------

  private prefixLists(top: Fields): Record<string, PrefixMatch[]> {
    const r = this.r;
    const out: Record<string, PrefixMatch[]> = {};
    if (absent(top, "prefixLists")) return out;
    const f = r.fields(top.get("prefixLists"), "prefixLists", anyKey(top.get("prefixLists")), "a mapping of prefix-list names to lists of prefix entries");
    if (!f) return out;
    for (const name of f.keys()) {
      this.declared["prefix list"].push(name);
      const path = f.at(name);
      const items = r.list(f.get(name), path, "a list of prefix entries");
      if (!items) continue;
      const entries: PrefixMatch[] = [];
      items.forEach((n, i) => {
        const e = readPrefixEntry(r, n, indexPath(path, i));
        if (e) entries.push(e);
      });
      out[name] = entries;
    }
    return out;
  }

  private policies(top: Fields): Record<string, Policy> {
    const r = this.r;
    const out: Record<string, Policy> = {};
    if (absent(top, "policies")) return out;
    const f = r.fields(top.get("policies"), "policies", anyKey(top.get("policies")), "a mapping of policy names to policies");
    if (!f) return out;
    for (const name of f.keys()) {
      this.declared.policy.push(name);
      const path = f.at(name);
      if (name === "all" || name === "none") {
        r.error(f.keyNode(name), path, `policy name "${name}" is reserved (import/export "${name}" needs no policy)`);
        continue;
      }
      const node = f.get(name);
      let termNodes: { node: Node | null; path: string }[] | undefined;
      let dflt: "accept" | "reject" = "reject";
      if (isMap(node)) {
        const pf = r.fields(node, path, ["terms", "default"], "a list of terms or a mapping with terms and default");
        if (!pf) continue;
        if (pf.has("default")) dflt = r.choice(pf.get("default"), pf.at("default"), ["accept", "reject"] as const) ?? "reject";
        termNodes = pf.has("terms") ? r.list(pf.get("terms"), pf.at("terms"), "a list of policy terms")?.map((n, i) => ({ node: n, path: indexPath(pf.at("terms"), i) })) : [];
      } else {
        termNodes = r.list(node, path, "a list of terms or a mapping with terms and default")?.map((n, i) => ({ node: n, path: indexPath(path, i) }));
      }
      if (!termNodes) continue;
      const terms: PolicyTerm[] = [];
      for (const t of termNodes) {
        const term = this.term(t.node, t.path);
        if (term) terms.push(term);
      }
      out[name] = { name, terms, default: dflt };
    }
    return out;
  }

  private term(node: Node | null, path: string): PolicyTerm | undefined {
    const r = this.r;
    const f = r.fields(node, path, TERM_KEYS, "a policy term: a mapping with match, set and action");
    if (!f) return undefined;
    const term: PolicyTerm = {};
    if (f.has("name")) {
      const n = r.str(f.get("name"), f.at("name"), "a term name");
      if (n !== undefined) term.name = n;
    }
    if (f.has("match")) {
      const m = this.match(f.get("match"), f.at("match"));
      if (m) term.match = m;
    }
    if (f.has("set")) {
      const s = this.set(f.get("set"), f.at("set"));
      if (s) term.set = s;
    }
    if (f.has("action")) {
      const a = r.choice(f.get("action"), f.at("action"), ["accept", "reject"] as const);
      if (a) term.action = a;
    }
    return term;
  }

  private match(node: Node | null | undefined, path: string): PolicyMatch | undefined {
    const r = this.r;
    const f = r.fields(node, path, MATCH_KEYS, "a mapping of match conditions");
    if (!f) return undefined;
    const m: PolicyMatch = {};
    if (f.has("prefix")) {
      const v = readMany(r, f.get("prefix"), f.at("prefix"), (n, p) => readPrefixEntry(r, n, p));
      if (v) m.prefix = v;
    }
    if (f.has("prefixList")) {
      const v = readMany(r, f.get("prefixList"), f.at("prefixList"), (n, p) => {
        const name = r.str(n, p, "a prefix-list name");
        if (name !== undefined) this.refs.push({ kind: "prefix list", name, node: n, path: p });
        return name;
      });
      if (v) m.prefixList = v;
    }
    if (f.has("community")) {
      const v = readMany(r, f.get("community"), f.at("community"), (n, p) => readCommunity(r, n, p));
      if (v) m.community = v;
    }
    if (f.has("largeCommunity")) {
      const v = readMany(r, f.get("largeCommunity"), f.at("largeCommunity"), (n, p) => readLargeCommunity(r, n, p));
      if (v) m.largeCommunity = v;
    }
    if (f.has("asPath")) {
      const n = f.get("asPath");
      const s = isScalar(n) && typeof n.value === "string" ? n.value : undefined;
      if (s === undefined) r.expected(n, f.at("asPath"), "a regular expression over the AS path (a string)");
      else {
        try {
          new RegExp(s);
          m.asPath = s;
        } catch (e) {
          r.expected(n, f.at("asPath"), "a valid regular expression", (e as Error).message);
        }
      }
    }
    if (f.has("nextHop")) {
      const v = readMany(r, f.get("nextHop"), f.at("nextHop"), (n, p) => readAddr(r, n, p)?.text);
      if (v) m.nextHop = v;
    }
    if (f.has("neighbor")) {
      const v = readMany(r, f.get("neighbor"), f.at("neighbor"), (n, p) =>
        isScalar(n) && n.value === "local" ? "local" : readAddr(r, n, p, false, 'a neighbour address or "local"')?.text,
      );
      if (v) m.neighbor = v;
    }
    if (f.has("family")) {
      const v = r.choice(f.get("family"), f.at("family"), FAMILIES);
      if (v) m.family = v;
    }
    if (f.has("source")) {
      const v = readMany(r, f.get("source"), f.at("source"), (n, p) => r.choice(n, p, ["local", "ibgp", "ebgp"] as const));
      if (v) m.source = v;
    }
    return m;
  }

  private set(node: Node | null | undefined, path: string): PolicySet | undefined {
    const r = this.r;
    const f = r.fields(node, path, SET_KEYS, "a mapping of attribute changes");
    if (!f) return undefined;
    const s: PolicySet = {};
    if (f.has("localPref")) {
      const v = r.int(f.get("localPref"), f.at("localPref"), 0, U32, "a local preference 0..4294967295");
      if (v !== undefined) s.localPref = v;
    }
    if (f.has("med")) {
      const v = r.int(f.get("med"), f.at("med"), 0, U32, "a MED 0..4294967295");
      if (v !== undefined) s.med = v;
    }
    if (f.has("community")) {
      const v = this.communitySet(f.get("community"), f.at("community"), (n, p) => readCommunity(r, n, p));
      if (v) s.community = v;
    }
    if (f.has("largeCommunity")) {
      const v = this.communitySet(f.get("largeCommunity"), f.at("largeCommunity"), (n, p) => readLargeCommunity(r, n, p));
      if (v) s.largeCommunity = v;
    }
    if (f.has("nextHop")) {
      const n = f.get("nextHop");
      const v = isScalar(n) && n.value === "self" ? "self" : readAddr(r, n, f.at("nextHop"), false, '"self" or an IPv4 or IPv6 address')?.text;
      if (v !== undefined) s.nextHop = v;
    }
    if (f.has("asPathPrepend")) {
      const v = r.int(f.get("asPathPrepend"), f.at("asPathPrepend"), 1, 32, "a prepend count 1..32");
      if (v !== undefined) s.asPathPrepend = v;
    }
    return s;
  }

  private communitySet(node: Node | null | undefined, path: string, read: (n: Node | null, p: string) => string | undefined): CommunitySet | undefined {
    const r = this.r;
    const f = r.fields(node, path, ["add", "remove", "replace"], "a mapping with add, remove and/or replace");
    if (!f) return undefined;
    const out: CommunitySet = {};
    for (const k of ["add", "remove", "replace"] as const) {
      if (!f.has(k)) continue;
      const v = readMany(r, f.get(k), f.at(k), read);
      if (v) out[k] = v;
    }
    return out;
  }

  // -- peers ----------------------------------------------------------------

  /** `kernel:` — FIB programming; every key optional, off by default. */
  private kernel(top: Fields, k8s: boolean): KernelConfig {
    const r = this.r;
    // With a kubernetes section the node installs what it learns unless told otherwise.
    const k: KernelConfig = { ...DEFAULTS.kernel, enabled: k8s, families: [...DEFAULTS.kernel.families], exclude: [] };
    if (!top.has("kernel")) return k;
    const keys = ["enabled", "table", "protocol", "metric", "ecmp", "families", "exclude", "retainOnExit", "startupDeadline"];
    const f = r.fields(top.get("kernel"), "kernel", keys, "a mapping of kernel route settings");
    if (!f) return k;
    if (f.has("enabled")) k.enabled = r.bool(f.get("enabled"), f.at("enabled")) ?? k.enabled;
    if (f.has("table")) k.table = r.int(f.get("table"), f.at("table"), 1, 0xffffffff, "a routing table id 1..4294967295 (254 is main)") ?? k.table;
    if (f.has("protocol")) k.protocol = r.int(f.get("protocol"), f.at("protocol"), 1, 255, "a route protocol number 1..255 (186 is bgp)") ?? k.protocol;
    if (f.has("metric")) k.metric = r.int(f.get("metric"), f.at("metric"), 0, 0xffffffff, "a metric 0..4294967295") ?? k.metric;
    if (f.has("ecmp")) k.ecmp = r.bool(f.get("ecmp"), f.at("ecmp")) ?? k.ecmp;
    if (f.has("retainOnExit")) k.retainOnExit = r.bool(f.get("retainOnExit"), f.at("retainOnExit")) ?? false;
    if (f.has("startupDeadline")) k.startupDeadline = r.int(f.get("startupDeadline"), f.at("startupDeadline"), 0, 3600, "a deadline 0..3600 seconds") ?? k.startupDeadline;
    if (f.has("families")) {
      const fams = readMany(r, f.get("families"), f.at("families"), (x, xp) => r.choice(x, xp, FAMILIES));
      if (fams && fams.length) k.families = FAMILIES.filter((x) => fams.includes(x));
      else if (fams) r.expected(f.get("families"), f.at("families"), "a list of families (ipv4, ipv6)", "the list is empty");
    }
    if (f.has("exclude")) {
      const ps = readMany(r, f.get("exclude"), f.at("exclude"), (x, xp) => readPrefix(r, x, xp));
      if (ps) k.exclude = ps.map((p) => p.text);
    }
    return k;
  }

  private peerGroups(top: Fields): void {
    const r = this.r;
    if (absent(top, "peerGroups")) return;
    const f = r.fields(top.get("peerGroups"), "peerGroups", anyKey(top.get("peerGroups")), "a mapping of group names to peer settings");
    if (!f) return;
    for (const name of f.keys()) {
      this.declared["peer group"].push(name);
      const path = f.at(name);
      const gf = r.fields(f.get(name), path, GROUP_KEYS, "a mapping of peer settings", (k) =>
        k === "address" ? "a peer group cannot set the address; list peers under peers" : k === "group" ? 'use "inherit" to base a peer group on another' : undefined,
      );
      if (!gf) continue;
      const entry: { layer: Layer; inherit?: { name: string; node: Node | null } } = { layer: this.layer(gf, name) };
      if (gf.has("inherit")) {
        const n = gf.get("inherit") ?? null;
        const parent = r.str(n, gf.at("inherit"), "a peer group name");
        if (parent !== undefined) {
          entry.inherit = { name: parent, node: n };
          this.refs.push({ kind: "peer group", name: parent, node: n, path: gf.at("inherit") });
        }
      }
      this.groups.set(name, entry);
    }
    // Inheritance cycles, each reported once, at the `inherit` of the first group of the cycle in file order.
    const reported = new Set<string>();
    for (const start of this.groups.keys()) {
      const seen: string[] = [];
      let g: string | undefined = start;
      while (g !== undefined && this.groups.has(g) && !seen.includes(g)) {
        seen.push(g);
        g = this.groups.get(g)!.inherit?.name;
      }
      if (g === undefined || !seen.includes(g)) continue;
      const cycle = seen.slice(seen.indexOf(g));
      const key = [...cycle].sort().join("\0");
      if (reported.has(key)) continue;
      reported.add(key);
      const inh = this.groups.get(g)!.inherit!;
      r.error(inh.node, joinPath(joinPath("peerGroups", g), "inherit"), `peer group inheritance cycle: ${[...cycle, g].join(" -> ")}`);
    }
  }

  /** Validate the common peer keys of a peer or group mapping. */
  private layer(f: Fields, group: string): Layer {
    const values = new Map<CommonKey, LayerValue>();
    for (const k of COMMON_PEER_KEYS) {
      if (!f.has(k)) continue;
      const node = f.get(k) ?? null;
      const v = this.peerValue(k, node, f.at(k));
      values.set(k, { value: v === undefined ? INVALID : v, node });
    }
    return { fields: f, values, group };
  }

  private peerValue(k: CommonKey, n: Node | null, p: string): unknown {
    const r = this.r;
    switch (k) {
      case "remoteAs":
      case "localAs":
        return readAsn(r, n, p);
      case "port":
        return r.int(n, p, 1, 65535, "a port 1..65535");
      case "localAddress":
        return readAddr(r, n, p, true);
      case "passive":
      case "nextHopSelf":
      case "routeReflectorClient":
      case "asOverride":
        return r.bool(n, p);
      case "holdTime": {
        const v = r.int(n, p, 0, 65535, "a hold time of 0 or 3..65535 seconds");
        if (v === 1 || v === 2) return r.expected(n, p, "a hold time of 0 or 3..65535 seconds", "RFC 4271 forbids 1 and 2");
        return v;
      }
      case "keepalive":
        return r.int(n, p, 1, 65535, "a keepalive interval 1..65535 seconds");
      case "connectRetry":
        return r.int(n, p, 1, 65535, "a connect retry interval 1..65535 seconds");
      case "families": {
        const fams = readMany(r, n, p, (x, xp) => r.choice(x, xp, FAMILIES));
        if (!fams) return undefined;
        if (fams.length === 0) return r.expected(n, p, "a list of families (ipv4, ipv6)", "the list is empty");
        const dup = fams.find((x, i) => fams.indexOf(x) !== i);
        if (dup) return r.expected(n, p, "a list of distinct families", `${dup} is listed twice`);
        return FAMILIES.filter((x) => fams.includes(x));
      }
      case "multihop": {
        const v = isScalar(n) ? n.value : undefined;
        if (v === false) return false;
        if (v === true) return 255;
        return r.int(n, p, 1, 255, "true, false or a TTL 1..255");
      }
      case "import":
      case "export":
        return this.policyRef(n, p);
      case "maxPrefix":
        return this.maxPrefix(n, p);
      case "description":
        return r.str(n, p, "a description (a string)");
      case "shutdown": {
        const v = isScalar(n) ? n.value : undefined;
        if (typeof v === "boolean") return { down: v } satisfies ShutdownValue;
        if (typeof v === "string") {
          const bytes = new TextEncoder().encode(v).length;
          if (bytes > 255) return r.expected(n, p, "a shutdown message of at most 255 bytes (RFC 9003)", `${bytes} bytes`);
          return (v ? { down: true, message: v } : { down: true }) satisfies ShutdownValue;
        }
        return r.expected(n, p, "true, false or a shutdown message");
      }
      case "allowOwnAs":
        return r.int(n, p, 0, 10, "a count 0..10");
      case "password": {
        const v = r.str(n, p, "a TCP-MD5 password (1..80 bytes)");
        if (v === undefined) return undefined;
        const bytes = new TextEncoder().encode(v).length;
        if (bytes > 80) return r.expected(n, p, "a TCP-MD5 password of at most 80 bytes (RFC 2385, Linux TCP_MD5SIG_MAXKEYLEN)", `${bytes} bytes`);
        return v;
      }
      case "passwordFile": {
        const file = r.str(n, p, "the path of a file holding the TCP-MD5 password");
        if (file === undefined) return undefined;
        const full = resolvePath(dirname(resolvePath(this.source)), file);
        let text: string;
        try {
          text = readFileSync(full, "utf8").replace(/\r?\n$/, "");
        } catch (e) {
          const code = (e as { code?: string }).code;
          return r.expected(n, p, "a readable password file", `${full}: ${code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (e as Error).message}`);
        }
        const bytes = new TextEncoder().encode(text).length;
        if (bytes === 0 || bytes > 80) return r.expected(n, p, "a password file holding 1..80 bytes (one line)", `${full} holds ${bytes} bytes`);
        return text;
      }
      case "addPath": {
        const f = r.fields(n, p, ["send", "receive"], "a mapping with send and receive");
        if (!f) return undefined;
        const send = f.has("send") ? r.bool(f.get("send"), f.at("send")) : false;
        const receive = f.has("receive") ? r.bool(f.get("receive"), f.at("receive")) : false;
        return send === undefined || receive === undefined ? undefined : { send, receive };
      }
    }
  }

  private policyRef(n: Node | null, p: string): PolicyRefValue | undefined {
    const r = this.r;
    const v = isScalar(n) ? n.value : undefined;
    if (v === "all" || v === "none") return { ref: { kind: v } };
    if (typeof v === "string" && v !== "") {
      this.refs.push({ kind: "policy", name: v, node: n, path: p });
      return { ref: { kind: "chain", names: [v] } };
    }
    const items = isScalar(n) || !n ? undefined : r.resolve(n);
    const list = items ? r.list(items, p, POLICY_REF_WHAT) : r.expected(n, p, POLICY_REF_WHAT);
    if (!list) return undefined;
    if (list.length === 0) return r.expected(n, p, POLICY_REF_WHAT, 'an empty list; use "none" to send or accept nothing');
    const names: string[] = [];
    let ok = true;
    list.forEach((item, i) => {
      const ip = indexPath(p, i);
      const s = isScalar(item) ? item.value : undefined;
      if (s === "all" || s === "none") {
        r.error(item, ip, `"${s}" cannot be part of a policy chain; use it alone, or a policy with default accept/reject`);
        ok = false;
      } else {
        const name = r.str(item, ip, "a policy name");
        if (name === undefined) ok = false;
        else {
          names.push(name);
          this.refs.push({ kind: "policy", name, node: item, path: ip });
        }
      }
    });
    return ok ? { ref: { kind: "chain", names } } : undefined;
  }

  private maxPrefix(n: Node | null, p: string): MaxPrefix | undefined {
    const r = this.r;
    const LIMIT = "a prefix limit 1..4294967295";
    if (isScalar(n) && typeof n.value === "number") {
      const limit = r.int(n, p, 1, U32, LIMIT);
      return limit === undefined ? undefined : { limit, action: DEFAULTS.peer.maxPrefixAction, restartAfter: DEFAULTS.peer.maxPrefixRestartAfter };
    }
    const f = r.fields(n, p, ["limit", "action", "restartAfter"], "a prefix limit or a mapping with limit, action and restartAfter");
    if (!f) return undefined;
    if (!this.required(f, "limit")) return undefined;
    const limit = r.int(f.get("limit"), f.at("limit"), 1, U32, LIMIT);
    const action = f.has("action") ? r.choice(f.get("action"), f.at("action"), ["warn", "restart"] as const) : DEFAULTS.peer.maxPrefixAction;
    const restartAfter = f.has("restartAfter")
      ? r.int(f.get("restartAfter"), f.at("restartAfter"), 1, 65535, "a delay 1..65535 seconds")
      : DEFAULTS.peer.maxPrefixRestartAfter;
    if (limit === undefined || action === undefined || restartAfter === undefined) return undefined;
    return { limit, action, restartAfter };
  }

  /** The group chain of a group name: its layer and its ancestors', nearest first; stops at cycles and undefined groups. */
  private groupChain(name: string | undefined): Layer[] {
    const out: Layer[] = [];
    const seen = new Set<string>();
    while (name !== undefined && !seen.has(name)) {
      const g = this.groups.get(name);
      if (!g) break;
      seen.add(name);
      out.push(g.layer);
      name = g.inherit?.name;
    }
    return out;
  }

  private peers(top: Fields): PeerConfig[] {
    const r = this.r;
    const out: PeerConfig[] = [];
    if (absent(top, "peers")) return out;
    const items = r.list(top.get("peers"), "peers", "a list of peers");
    if (!items) return out;
    const seen = new Map<string, Node | null>();
    items.forEach((node, i) => {
      const path = indexPath("peers", i);
      const f = r.fields(node, path, PEER_KEYS, "a peer: a mapping with address, remoteAs, ...", (k) =>
        k === "inherit" ? 'use "group" to base a peer on a peer group' : undefined,
      );
      if (!f) return;
      let address: Addr | undefined;
      if (this.required(f, "address", " (the peer's IPv4 or IPv6 address)")) {
        address = readAddr(r, f.get("address"), f.at("address"), true);
        if (address) {
          const first = seen.get(address.text);
          if (first !== undefined) {
            r.error(f.get("address"), f.at("address"), `duplicate peer ${address.text} (first defined at line ${r.position(first).line})`);
          } else seen.set(address.text, f.get("address") ?? null);
        }
      }
      let group: string | undefined;
      if (f.has("group")) {
        const n = f.get("group") ?? null;
        group = r.str(n, f.at("group"), "a peer group name");
        if (group !== undefined) this.refs.push({ kind: "peer group", name: group, node: n, path: f.at("group") });
      }
      const own = this.layer(f, "");
      const peer = this.mergePeer(f, path, address, group, [own, ...this.groupChain(group)]);
      if (peer) out.push(peer);
    });
    return out;
  }

  /** Build a peer from its layers (own keys first, then its group's, then the group's ancestors'), with the cross-checks. */
  private mergePeer(f: Fields, path: string, address: Addr | undefined, group: string | undefined, layers: Layer[]): PeerConfig | undefined {
    const r = this.r;
    const own = layers[0]!;
    let ok = address !== undefined;
    const pick = (k: CommonKey): (LayerValue & { layer: Layer }) | undefined => {
      for (const l of layers) {
        const v = l.values.get(k);
        if (v) return { ...v, layer: l };
      }
      return undefined;
    };
    /** The value of `k`, the default when no layer sets it; undefined when it was invalid. */
    const get = <T>(k: CommonKey, dflt: T): T | undefined => {
      const v = pick(k);
      if (!v) return dflt;
      if (v.value === INVALID) {
        ok = false;
        return undefined;
      }
      return v.value as T;
    };
    /** Where to report a problem with merged keys: the first of them the peer sets itself, else the peer. */
    const where = (...ks: CommonKey[]): Node => {
      for (const k of ks) {
        const n = own.fields.get(k);
        if (n !== undefined) return n ?? f.node;
      }
      return f.node;
    };
    const inGroup = (k: CommonKey): string => {
      const v = pick(k);
      return v && v.layer.group ? ` (set in peer group "${v.layer.group}")` : "";
    };

    const remoteAs = get<number | undefined>("remoteAs", undefined);
    if (!pick("remoteAs")) {
      const why = group !== undefined ? ` (not set in the peer or its peer group "${group}")` : " (the peer's AS number)";
      r.error(f.node, joinPath(path, "remoteAs"), `missing required key "remoteAs"${why}`);
      ok = false;
    }
    const localAs = get<number | undefined>("localAs", this.asn);
    const port = get("port", DEFAULTS.peer.port);
    const localAddress = get<Addr | undefined>("localAddress", undefined);
    const passive = get("passive", DEFAULTS.peer.passive);
    const holdTime = get<number>("holdTime", DEFAULTS.peer.holdTime);
    const keepalive = get<number | undefined>("keepalive", undefined);
    const connectRetry = get("connectRetry", DEFAULTS.peer.connectRetry);
    const families = get<FamilyName[]>("families", [...DEFAULTS.peer.families]);
    const nextHopSelf = get("nextHopSelf", DEFAULTS.peer.nextHopSelf);
    const rrc = get("routeReflectorClient", DEFAULTS.peer.routeReflectorClient);
    const multihop = get<number | false>("multihop", DEFAULTS.peer.multihop);
    const imp = get<PolicyRefValue | undefined>("import", undefined);
    const exp = get<PolicyRefValue | undefined>("export", undefined);
    const maxPrefix = get<MaxPrefix | undefined>("maxPrefix", undefined);
    const description = get<string | undefined>("description", undefined);
    const shutdown = get<ShutdownValue>("shutdown", { down: DEFAULTS.peer.shutdown });
    const allowOwnAs = get("allowOwnAs", DEFAULTS.peer.allowOwnAs);
    const asOverride = get("asOverride", DEFAULTS.peer.asOverride);
    const addPath = get<{ send: boolean; receive: boolean } | undefined>("addPath", undefined);
    const password = get<string | undefined>("password", undefined) ?? get<string | undefined>("passwordFile", undefined);
    if (pick("password") && pick("passwordFile")) {
      r.error(where("passwordFile"), joinPath(path, "passwordFile"), "password and passwordFile are both set; keep one");
      ok = false;
    }

    if (rrc && remoteAs !== undefined && localAs !== undefined && remoteAs !== localAs) {
      r.error(
        where("routeReflectorClient", "remoteAs"),
        joinPath(path, "routeReflectorClient"),
        `routeReflectorClient requires an iBGP peer (remoteAs equal to localAs ${localAs}), got remoteAs ${remoteAs}${inGroup("routeReflectorClient")}`,
      );
      ok = false;
    }
    if (keepalive !== undefined && holdTime !== undefined && (holdTime === 0 || keepalive >= holdTime)) {
      const msg =
        holdTime === 0
          ? "keepalive has no effect with holdTime 0 (no keepalives are sent); remove it"
          : `expected a keepalive interval less than holdTime ${holdTime}, got ${keepalive}${inGroup("keepalive")}`;
      r.error(where("keepalive", "holdTime"), joinPath(path, "keepalive"), msg);
      ok = false;
    }
    if (address && localAddress && address.afi !== localAddress.afi) {
      const fam = address.afi === AFI.IPV6 ? "IPv6" : "IPv4";
      r.error(where("localAddress"), joinPath(path, "localAddress"), `expected an ${fam} local address for ${fam} peer ${address.text}, got "${localAddress.text}"${inGroup("localAddress")}`);
      ok = false;
    }
    if (!ok || !address || remoteAs === undefined || localAs === undefined) return undefined;
    if (port === undefined || passive === undefined || holdTime === undefined || connectRetry === undefined || families === undefined) return undefined;
    if (nextHopSelf === undefined || rrc === undefined || multihop === undefined || shutdown === undefined || allowOwnAs === undefined || asOverride === undefined) return undefined;

    const peer: PeerConfig = {
      address: address.text,
      remoteAs,
      localAs,
      port,
      passive,
      holdTime,
      connectRetry,
      families,
      nextHopSelf,
      routeReflectorClient: rrc,
      multihop,
      import: imp?.ref,
      export: exp?.ref,
      shutdown: shutdown.down,
      allowOwnAs,
      asOverride,
    };
    if (localAddress) peer.localAddress = localAddress.text;
    if (keepalive !== undefined) peer.keepalive = keepalive;
    if (maxPrefix) peer.maxPrefix = maxPrefix;
    if (description !== undefined) peer.description = description;
    if (shutdown.message !== undefined) peer.shutdownMessage = shutdown.message;
    if (addPath) peer.addPath = addPath;
    if (group !== undefined) peer.group = group;
    if (password !== undefined) peer.password = password;
    return peer;
  }

  // -- health and kubernetes -------------------------------------------------

  /** `health: {address, port}`: the HTTP health endpoint. */
  private health(node: Node | null | undefined, path: string): { address: string; port: number } | undefined {
    const r = this.r;
    const f = r.fields(node, path, ["address", "port"], "a mapping with address and port");
    if (!f) return undefined;
    const h: { address: string; port: number } = { ...DEFAULTS.health };
    if (f.has("address")) {
      const a = readAddr(this.r, f.get("address"), f.at("address"));
      if (!a) return undefined;
      h.address = a.text;
    }
    if (f.has("port")) {
      const v = r.int(f.get("port"), f.at("port"), 1, 65535, "a port 1..65535");
      if (v === undefined) return undefined;
      h.port = v;
    }
    return h;
  }

  /** kubernetes.asn read ahead of the rest (peers default their localAs to it); errors are reported by kubernetes(). */
  private kubeAsn(node: Node | null | undefined): number {
    if (!isMap(node)) return DEFAULTS.kubernetes.asn;
    const pair = node.items.find((p) => isScalar(p.key) && p.key.value === "asn");
    const v = pair && isScalar(pair.value) ? pair.value.value : undefined;
    return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= U32 && v !== 23456 ? v : DEFAULTS.kubernetes.asn;
  }

  /** `kubernetes:` — what watch-k8s derives peers and routes from; every key optional. */
  private kubernetes(node: Node | null | undefined, path: string): KubernetesConfig | undefined {
    const r = this.r;
    const k = defaultKubernetesConfig();
    if (node === null || (isScalar(node) && node.value === null)) return k; // `kubernetes:` alone: all defaults
    const f = r.fields(node, path, KUBE_KEYS, "a mapping of Kubernetes settings (asn, mesh, peers, services, ...)");
    if (!f) return undefined;
    let ok = true;
    const str = (key: "nodeName" | "kubeconfig", what: string) => {
      if (!f.has(key)) return;
      const v = r.str(f.get(key), f.at(key), what);
      if (v === undefined) ok = false;
      else k[key] = v;
    };
    str("nodeName", "a Node name");
    str("kubeconfig", "the path of a kubeconfig file");
    if (f.has("asn")) {
      const v = readAsn(r, f.get("asn"), f.at("asn"));
      if (v === undefined) ok = false;
      else k.asn = v;
    }
    if (f.has("routerId")) {
      const v = readDottedQuad(r, f.get("routerId"), f.at("routerId"), "a router id: a non-zero dotted quad such as 192.0.2.1", true);
      if (v === undefined) ok = false;
      else k.routerId = v;
    }
    const bool = (ff: Fields, key: string, set: (v: boolean) => void) => {
      if (!ff.has(key)) return;
      const v = r.bool(ff.get(key), ff.at(key));
      if (v === undefined) ok = false;
      else set(v);
    };
    bool(f, "mesh", (v) => (k.mesh = v));
    bool(f, "advertisePodCidrs", (v) => (k.advertisePodCidrs = v));
    bool(f, "advertisePodCidrsExternal", (v) => (k.advertisePodCidrsExternal = v));
    if (f.has("meshHoldTime")) {
      const v = r.int(f.get("meshHoldTime"), f.at("meshHoldTime"), 0, 65535, "a hold time of 0 or 3..65535 seconds");
      if (v === undefined || v === 1 || v === 2) {
        if (v !== undefined) r.expected(f.get("meshHoldTime"), f.at("meshHoldTime"), "a hold time of 0 or 3..65535 seconds", "RFC 4271 forbids 1 and 2");
        ok = false;
      } else k.meshHoldTime = v;
    }
    if (f.has("meshPort")) {
      const v = r.int(f.get("meshPort"), f.at("meshPort"), 1, 65535, "a port 1..65535");
      if (v === undefined) ok = false;
      else k.meshPort = v;
    }
    if (f.has("services")) {
      const sf = r.fields(f.get("services"), f.at("services"), KUBE_SERVICE_KEYS, "a mapping of Service advertisement settings");
      if (!sf) ok = false;
      else {
        const sv = k.services;
        for (const key of ["clusterIPs", "externalIPs", "loadBalancerIPs", "withdrawWhenCordoned", "withdrawWhenExcluded", "requireEndpoints"] as const) {
          bool(sf, key, (v) => (sv[key] = v));
        }
        if (sf.has("allowedRanges")) {
          const v = readMany(r, sf.get("allowedRanges"), sf.at("allowedRanges"), (x, xp) => readPrefix(r, x, xp));
          if (v) sv.allowedRanges = v.map((p) => p.text);
          else ok = false;
        }
        if (sf.has("communities")) {
          const v = readMany(r, sf.get("communities"), sf.at("communities"), (x, xp) => readCommunity(r, x, xp));
          if (v) sv.communities = v;
          else ok = false;
        }
        if (sf.has("largeCommunities")) {
          const v = readMany(r, sf.get("largeCommunities"), sf.at("largeCommunities"), (x, xp) => readLargeCommunity(r, x, xp));
          if (v) sv.largeCommunities = v;
          else ok = false;
        }
      }
    }
    if (f.has("api")) {
      const af = r.fields(f.get("api"), f.at("api"), ["pageSize", "watchTimeoutSeconds"], "a mapping with pageSize and watchTimeoutSeconds");
      if (!af) ok = false;
      else {
        if (af.has("pageSize")) {
          const v = r.int(af.get("pageSize"), af.at("pageSize"), 1, 10000, "a page size 1..10000");
          if (v === undefined) ok = false;
          else k.api.pageSize = v;
        }
        if (af.has("watchTimeoutSeconds")) {
          const v = r.int(af.get("watchTimeoutSeconds"), af.at("watchTimeoutSeconds"), 10, 289, "a watch timeout 10..289 seconds (Bun's HTTP idle timeout is 300 s)");
          if (v === undefined) ok = false;
          else k.api.watchTimeoutSeconds = v;
        }
      }
    }
    if (f.has("peers") && !absent(f, "peers")) {
      const items = r.list(f.get("peers"), f.at("peers"), "a list of external peers");
      if (!items) ok = false;
      else {
        items.forEach((item, i) => {
          const p = this.kubePeer(item, indexPath(f.at("peers"), i));
          if (p) k.peers.push(p);
          else ok = false;
        });
      }
    }
    return ok ? k : undefined;
  }

  /** A list of peers on its own (parsePeerList). */
  peerList(node: Node | null, path: string, opts: { asn: number; policies: readonly string[] }): KubePeerConfig[] | undefined {
    const r = this.r;
    if (node === null || (isScalar(node) && node.value === null)) return [];
    this.asn = opts.asn;
    this.declared.policy.push(...opts.policies);
    const items = r.list(node, path, "a list of peers such as - {address: 192.0.2.254, remoteAs: 65000}");
    if (!items) return undefined;
    const out: KubePeerConfig[] = [];
    const seen = new Map<string, Node | null>();
    items.forEach((item, i) => {
      const p = this.kubePeer(item, indexPath(path, i), PEER_LIST_KEYS, (k) =>
        k === "password" || k === "passwordFile"
          ? "use passwordSecret: annotations are readable by anyone who can read Nodes"
          : k === "nodeSelector"
            ? "the peers of a node's annotation are that node's own"
            : undefined,
      );
      if (!p) return;
      const first = seen.get(p.peer.address);
      const at = isMap(item) ? (item.items.find((x) => isScalar(x.key) && x.key.value === "address")?.value as Node | null) : item;
      if (first !== undefined) r.error(at, joinPath(indexPath(path, i), "address"), `duplicate peer ${p.peer.address} (first at line ${r.position(first).line})`);
      else {
        seen.set(p.peer.address, at);
        out.push(p);
      }
    });
    this.checkReferences();
    return out;
  }

  /** One entry of kubernetes.peers: a peer (as under peers:) plus nodeSelector and passwordSecret. */
  private kubePeer(node: Node | null, path: string, keys: readonly string[] = KUBE_PEER_KEYS, hint?: (key: string) => string | undefined): KubePeerConfig | undefined {
    const r = this.r;
    const f = r.fields(node, path, keys, "a peer: a mapping with address, remoteAs, ...", hint);
    if (!f) return undefined;
    if (!this.required(f, "address", " (the peer's IPv4 or IPv6 address)")) return undefined;
    const address = readAddr(r, f.get("address"), f.at("address"), true);
    let group: string | undefined;
    if (f.has("group")) {
      const n = f.get("group") ?? null;
      group = r.str(n, f.at("group"), "a peer group name");
      if (group !== undefined) this.refs.push({ kind: "peer group", name: group, node: n, path: f.at("group") });
    }
    const peer = this.mergePeer(f, path, address, group, [this.layer(f, ""), ...this.groupChain(group)]);
    const nodeSelector: Record<string, string> = {};
    let ok = peer !== undefined;
    if (f.has("nodeSelector")) {
      const sn = f.get("nodeSelector");
      const sf = r.fields(sn, f.at("nodeSelector"), anyKey(sn), "a mapping of node labels to values (matchLabels)");
      if (!sf) ok = false;
      else {
        for (const key of sf.keys()) {
          const n = sf.get(key);
          const v = isScalar(n) && (typeof n.value === "string" || typeof n.value === "number" || typeof n.value === "boolean") ? String(n.value) : undefined;
          if (v === undefined) {
            r.expected(n, sf.at(key), "a label value (a string)");
            ok = false;
          } else nodeSelector[key] = v;
        }
      }
    }
    let passwordSecret: KubePeerConfig["passwordSecret"];
    if (f.has("passwordSecret")) {
      const sf = r.fields(f.get("passwordSecret"), f.at("passwordSecret"), ["name", "key", "namespace"], "a mapping with name, key and namespace");
      if (!sf) ok = false;
      else if (!this.required(sf, "name", " (the Secret's name)") || !this.required(sf, "key", " (the key in the Secret's data)")) ok = false;
      else {
        const name = r.str(sf.get("name"), sf.at("name"), "a Secret name");
        const key = r.str(sf.get("key"), sf.at("key"), "a key of the Secret");
        const namespace = sf.has("namespace") ? r.str(sf.get("namespace"), sf.at("namespace"), "a namespace") : DEFAULTS.kubernetes.secretNamespace;
        if (name === undefined || key === undefined || namespace === undefined) ok = false;
        else passwordSecret = { namespace, name, key };
      }
      if (peer?.password !== undefined) {
        r.error(f.get("passwordSecret"), f.at("passwordSecret"), "passwordSecret and password/passwordFile are both set; keep one");
        ok = false;
      }
    }
    if (!ok || !peer) return undefined;
    const out: KubePeerConfig = { peer, nodeSelector };
    if (passwordSecret) out.passwordSecret = passwordSecret;
    return out;
  }

  // -- advertisements -------------------------------------------------------

  private advertise(top: Fields): AdvertiseConfig[] {
    const r = this.r;
    const out: AdvertiseConfig[] = [];
    if (absent(top, "advertise")) return out;
    const items = r.list(top.get("advertise"), "advertise", "a list of prefixes to advertise");
    if (!items) return out;
    const seen = new Map<string, Node | null>();
    items.forEach((node, i) => {
      const path = indexPath("advertise", i);
      let f: Fields | undefined;
      let prefixNode: Node | null | undefined = node;
      let prefixPath = path;
      if (!isScalar(node)) {
        f = r.fields(node, path, ADVERTISE_KEYS, "a prefix or a mapping with prefix, nextHop, communities, ...");
        if (!f) return;
        if (!this.required(f, "prefix")) return;
        prefixNode = f.get("prefix");
        prefixPath = f.at("prefix");
      }
      const p = readPrefix(r, prefixNode, prefixPath);
      if (p) {
        const first = seen.get(p.text);
        if (first !== undefined) r.error(prefixNode, prefixPath, `duplicate advertised prefix ${p.text} (first at line ${r.position(first).line})`);
        else seen.set(p.text, prefixNode ?? null);
      }
      const a: AdvertiseConfig = { prefix: p?.text ?? "", communities: [], largeCommunities: [] };
      let ok = p !== undefined;
      if (f) {
        if (f.has("nextHop")) {
          const nh = readAddr(r, f.get("nextHop"), f.at("nextHop"));
          if (nh && p && p.afi === AFI.IPV6 && nh.afi === AFI.IPV4) {
            r.expected(f.get("nextHop"), f.at("nextHop"), `an IPv6 next hop for IPv6 prefix ${p.text}`);
            ok = false;
          } else if (nh) a.nextHop = nh.text;
          else ok = false;
        }
        if (f.has("communities")) {
          const v = readMany(r, f.get("communities"), f.at("communities"), (n, pp) => readCommunity(r, n, pp));
          if (v) a.communities = v;
          else ok = false;
        }
        if (f.has("largeCommunities")) {
          const v = readMany(r, f.get("largeCommunities"), f.at("largeCommunities"), (n, pp) => readLargeCommunity(r, n, pp));
          if (v) a.largeCommunities = v;
          else ok = false;
        }
        const num = (k: "localPref" | "med" | "asPathPrepend", min: number, max: number, what: string) => {
          if (!f!.has(k)) return;
          const v = r.int(f!.get(k), f!.at(k), min, max, what);
          if (v === undefined) ok = false;
          else a[k] = v;
        };
        num("localPref", 0, U32, "a local preference 0..4294967295");
        num("med", 0, U32, "a MED 0..4294967295");
        num("asPathPrepend", 1, 32, "a prepend count 1..32");
      }
      if (ok) out.push(a);
    });
    return out;
  }

  // -- references -----------------------------------------------------------

  private checkReferences(): void {
    for (const ref of this.refs) {
      const names = this.declared[ref.kind];
      if (names.includes(ref.name)) continue;
      const s = suggest(ref.name, names);
      this.r.error(ref.node, ref.path, `${ref.kind} "${ref.name}" is not defined${s !== undefined ? ` (did you mean "${s}"?)` : ""}`);
    }
  }
}

/** A section that is not there, or left empty (`peers:` with every entry commented out). */
function absent(f: Fields, key: string): boolean {
  const n = f.get(key);
  return n === undefined || n === null || (isScalar(n) && n.value === null);
}

/** For user-named mappings (policies, groups, prefix lists): every key is allowed. */
function anyKey(node: Node | null | undefined): string[] {
  if (!isMap(node)) return [];
  const out: string[] = [];
  for (const p of node.items) {
    const k = isScalar(p.key) ? p.key.value : undefined;
    if (typeof k === "string" || typeof k === "number") out.push(String(k));
  }
  return out;
}
