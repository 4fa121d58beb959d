/**
 * From the checked document (walk.ts over schema.ts) to the normalised
 * `RouterConfig`: the rules that span several keys or sections. Peer groups
 * are merged into their peers (a peer's own keys first, then its group's,
 * then the group's ancestors'; inheritance cycles are errors), the schema's
 * defaults fill what no layer sets (localAs from asn), cross-field checks
 * (keepalive < holdTime, routeReflectorClient only for iBGP, localAddress of
 * the peer's family, one of password/passwordFile), duplicates (peers,
 * advertisements), references (policies, prefix lists, peer groups) and the
 * defaults that depend on other sections (kubernetes: asn, router id,
 * kernel routes on; multipath maxPaths). The same `resolvePeer` builds a
 * peer of the file, of a node annotation and of a `peer add` request.
 *
 * Works on partial input: values that failed the schema are INVALID (already
 * reported) and the checks that need them are skipped, so every independent
 * problem is still reported.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve as resolvePath } from "node:path";
import { z } from "zod";
import { AFI, parseAddr, parsePrefix } from "../core/addr.ts";
import { type PathSegment, suggest } from "./reader.ts";
import { BfdSchema, type DocumentSchema, GracefulRestartSchema, PeerConfigSchema, type RefKind, expectedText } from "./schema.ts";
import type { AdvertiseConfig, HealthCheckConfig, KubePeerConfig, KubernetesConfig, PeerConfig, Policy, PrefixMatch, RouterConfig, SecretRef } from "./types.ts";
import { type Findings, INVALID, setKey } from "./walk.ts";

/** What resolving needs besides the document: where its issues go, and line numbers for "first defined at line N". */
export interface ResolveContext {
  f: Findings;
  /** The top-level `gracefulRestart:` and `bfd:` mappings as written: the last layer of every peer's merge. */
  globals?: SettingsGlobals;
  /** The 1-based line of the value at a path (0 when unknown). */
  line: (path: PathSegment[]) => number;
  /** The configuration file (passwordFile is relative to it); absent for requests. */
  source?: string;
}

type Obj = Record<string, unknown>;

/** One peer or peer-group mapping as checked: its keys (INVALID where invalid) and where it is. */
interface Layer {
  value: Obj;
  path: PathSegment[];
  /** "" for the peer itself, else the group's name. */
  group: string;
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const afiOf = (addr: string) => parseAddr(addr.replace(/%.*$/, ""))?.afi;

/** The top-level settings mappings that every peer merges under its own (as written: keys optional). */
export type SettingsGlobals = { bfd?: Obj; gracefulRestart?: Obj };

/**
 * A settings mapping (`bfd`, `gracefulRestart`) from written layers, nearest
 * first: each key from the first layer that sets it, else its default.
 */
export function mergeSettings<K extends "bfd" | "gracefulRestart">(k: K, layers: readonly Obj[]): PeerConfig[K] {
  const merged: Obj = {};
  for (let i = layers.length - 1; i >= 0; i--) Object.assign(merged, layers[i]);
  const schema = k === "bfd" ? BfdSchema : GracefulRestartSchema;
  return schema.parse(merged) as PeerConfig[K];
}

/** The top-level settings of a configuration, for peers made from it later (`peer add`, Kubernetes). */
export function settingsGlobals(c: { bfd?: object; gracefulRestart?: object }): SettingsGlobals {
  const g: SettingsGlobals = {};
  if (c.bfd) g.bfd = c.bfd as Obj;
  if (c.gracefulRestart) g.gracefulRestart = c.gracefulRestart as Obj;
  return g;
}

/** The default of a PeerConfig key (the schema's `.default()`), undefined for keys without one. */
export function peerDefault<K extends keyof PeerConfig>(k: K): PeerConfig[K] | undefined {
  const s = PeerConfigSchema.shape[k];
  const d = s._zod.def as { type: string; defaultValue?: unknown };
  if (d.type === "prefault") return s.parse(undefined) as PeerConfig[K];
  return d.type === "default" ? (structuredClone(d.defaultValue) as PeerConfig[K]) : undefined;
}

/** Every PeerConfig key with a default, at its default. */
export function peerDefaults() {
  const out: Obj = {};
  for (const k of Object.keys(PeerConfigSchema.shape) as (keyof PeerConfig)[]) {
    const v = peerDefault(k);
    if (v !== undefined) out[k] = v;
  }
  return out as { [K in keyof PeerDefaultKeys]: PeerConfig[K] };
}
type Shape = typeof PeerConfigSchema.shape;
type PeerDefaultKeys = { [K in keyof Shape as Shape[K] extends z.ZodDefault<z.ZodType> | z.ZodPrefault<z.ZodType> ? K : never]: true };

/** A valid string field of a layer, if any. */
function name(l: Obj | undefined, k: string): string | undefined {
  const v = l?.[k];
  return typeof v === "string" ? v : undefined;
}

/**
 * Reads each `passwordFile` (relative to the configuration file) into the
 * layer's password: a file that cannot be read, or holds no or more than 80
 * bytes, is reported at the key.
 */
function readPasswordFile(layer: Layer, ctx: ResolveContext): void {
  const file = layer.value.passwordFile;
  if (typeof file !== "string") return;
  const full = resolvePath(dirname(resolvePath(ctx.source ?? ".")), file);
  const path = [...layer.path, "passwordFile"];
  let text: string;
  try {
    text = readFileSync(full, "utf8").replace(/\r?\n$/, "");
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : (e as Error).message;
    ctx.f.issues.push({ path, message: expectedText("a readable password file", file, `${full}: ${why}`) });
    layer.value.passwordFile = INVALID;
    return;
  }
  const bytes = new TextEncoder().encode(text).length;
  if (bytes === 0 || bytes > 80) {
    ctx.f.issues.push({ path, message: expectedText("a password file holding 1..80 bytes (one line)", file, `${full} holds ${bytes} bytes`) });
    layer.value.passwordFile = INVALID;
    return;
  }
  layer.value.passwordFile = { text };
}

/**
 * One peer from its layers (its own keys first, then its group's, then the
 * group's ancestors'), with the schema's defaults and the cross-checks;
 * undefined after reporting when anything it needs is invalid.
 */
export function resolvePeer(layers: Layer[], asn: number | undefined, ctx: ResolveContext): PeerConfig | undefined {
  const { f } = ctx;
  const own = layers[0]!;
  const path = own.path;
  let ok = true;
  const pick = (k: string): { value: unknown; layer: Layer } | undefined => {
    for (const l of layers) if (Object.hasOwn(l.value, k)) return { value: l.value[k], layer: l };
    return undefined;
  };
  /** The layers' value of `k` (undefined when none sets it); marks the peer invalid when that value is. */
  const get = (k: string): unknown => {
    const v = pick(k);
    if (!v) return undefined;
    if (v.value === INVALID || !f.valid([...v.layer.path, k])) {
      ok = false;
      return undefined;
    }
    return v.value;
  };
  /** Where to report a problem with merged keys: the first of them the peer sets itself, else the peer. */
  const where = (...ks: string[]): PathSegment[] => {
    for (const k of ks) if (Object.hasOwn(own.value, k)) return [...path, k];
    return path;
  };
  const inGroup = (k: string): string => {
    const g = pick(k)?.layer.group;
    return g ? ` (set in peer group "${g}")` : "";
  };

  const peer: Obj = {};
  for (const k of Object.keys(PeerConfigSchema.shape) as (keyof PeerConfig)[]) {
    if (k === "bfd" || k === "gracefulRestart") {
      // Merged key by key: the peer's own keys, its groups', then the top level's, over the defaults.
      const written: Obj[] = [];
      for (const l of layers) {
        if (!Object.hasOwn(l.value, k)) continue;
        if (l.value[k] === INVALID || !f.valid([...l.path, k])) ok = false;
        else if (isObj(l.value[k])) written.push(l.value[k] as Obj);
      }
      peer[k] = mergeSettings(k, [...written, ...(ctx.globals?.[k] ? [ctx.globals[k]] : [])]);
      continue;
    }
    const v = get(k);
    const value = v !== undefined ? v : peerDefault(k);
    if (value !== undefined || k === "import" || k === "export") peer[k] = value;
  }
  if (!pick("remoteAs") && f.valid([...path, "remoteAs"])) {
    const group = name(own.value, "group");
    const why = group !== undefined ? ` (not set in the peer or its peer group "${group}")` : " (the peer's AS number)";
    f.issues.push({ path: [...path, "remoteAs"], at: path, message: `missing required key "remoteAs"${why}` });
    ok = false;
  }
  peer.localAs ??= asn;
  const shutdown = get("shutdown") as { down: boolean; message?: string } | undefined;
  peer.shutdown = shutdown?.down ?? peerDefault("shutdown");
  if (shutdown?.message !== undefined) peer.shutdownMessage = shutdown.message;
  const file = get("passwordFile") as { text: string } | undefined;
  if (file) peer.password = file.text;
  if (pick("password") && pick("passwordFile")) {
    f.issues.push({ path: [...path, "passwordFile"], at: where("passwordFile"), message: "password and passwordFile are both set; keep one" });
    ok = false;
  }

  const { remoteAs, localAs, routeReflectorClient: rrc, keepalive, holdTime, address, localAddress } = peer as Partial<PeerConfig>;
  if (rrc && remoteAs !== undefined && localAs !== undefined && remoteAs !== localAs) {
    f.issues.push({
      path: [...path, "routeReflectorClient"],
      at: where("routeReflectorClient", "remoteAs"),
      message: `routeReflectorClient requires an iBGP peer (remoteAs equal to localAs ${localAs}), got remoteAs ${remoteAs}${inGroup("routeReflectorClient")}`,
    });
    ok = false;
  }
  if (keepalive !== undefined && holdTime !== undefined && (holdTime === 0 || keepalive >= holdTime)) {
    const message =
      holdTime === 0
        ? "keepalive has no effect with holdTime 0 (no keepalives are sent); remove it"
        : `expected a keepalive interval less than holdTime ${holdTime}, got ${keepalive}${inGroup("keepalive")}`;
    f.issues.push({ path: [...path, "keepalive"], at: where("keepalive", "holdTime"), message });
    ok = false;
  }
  if (peer.ttlSecurity !== undefined && peer.multihop !== false && pick("multihop")) {
    f.issues.push({
      path: [...path, "ttlSecurity"],
      at: where("ttlSecurity", "multihop"),
      message: `ttlSecurity and multihop are both set; keep one (ttlSecurity: ${peer.ttlSecurity} already allows ${peer.ttlSecurity} hops)${inGroup("ttlSecurity")}`,
    });
    ok = false;
  }
  if (address && localAddress && afiOf(address) !== afiOf(localAddress)) {
    const fam = afiOf(address) === AFI.IPV6 ? "IPv6" : "IPv4";
    f.issues.push({
      path: [...path, "localAddress"],
      at: where("localAddress"),
      message: `expected an ${fam} local address for ${fam} peer ${address}, got "${localAddress}"${inGroup("localAddress")}`,
    });
    ok = false;
  }
  if (!ok || address === undefined || remoteAs === undefined || localAs === undefined) return undefined;
  return peer as unknown as PeerConfig;
}

/** The checked peer groups: each one's layer, the group it inherits from, and the ancestors of a group. */
class PeerGroups {
  private readonly groups = new Map<string, { layer: Layer; inherit?: string }>();
  constructor(groups: unknown, ctx: ResolveContext) {
    if (!isObj(groups)) return;
    for (const [g, v] of Object.entries(groups)) {
      if (!isObj(v)) continue;
      const layer = { value: v, path: ["peerGroups", g], group: g };
      readPasswordFile(layer, ctx);
      this.groups.set(g, { layer, inherit: name(v, "inherit") });
    }
    // Inheritance cycles, each reported once, at the `inherit` of the first group of the cycle in file order.
    const reported = new Set<string>();
    for (const start of this.groups.keys()) {
      const seen: string[] = [];
      let g: string | undefined = start;
      while (g !== undefined && this.groups.has(g) && !seen.includes(g)) {
        seen.push(g);
        g = this.groups.get(g)!.inherit;
      }
      if (g === undefined || !seen.includes(g)) continue;
      const cycle = seen.slice(seen.indexOf(g));
      const key = [...cycle].sort().join("\0");
      if (reported.has(key)) continue;
      reported.add(key);
      ctx.f.issues.push({ path: ["peerGroups", g, "inherit"], message: `peer group inheritance cycle: ${[...cycle, g].join(" -> ")}` });
    }
  }

  /** The layers of a group and its ancestors, nearest first; stops at cycles and undefined groups. */
  chain(g: string | undefined): Layer[] {
    const out: Layer[] = [];
    const seen = new Set<string>();
    while (g !== undefined && !seen.has(g)) {
      const e = this.groups.get(g);
      if (!e) break;
      seen.add(g);
      out.push(e.layer);
      g = e.inherit;
    }
    return out;
  }
}

/** A list of peers (`peers`, `kubernetes.peers`, an annotation): each resolved, addresses once. */
function resolvePeerList(
  items: unknown,
  path: PathSegment[],
  groups: PeerGroups | undefined,
  asn: number | undefined,
  ctx: ResolveContext,
  duplicate: (address: string, firstLine: number) => string,
): { peer: PeerConfig; value: Obj; path: PathSegment[] }[] {
  const out: { peer: PeerConfig; value: Obj; path: PathSegment[] }[] = [];
  if (!Array.isArray(items)) return out;
  const seen = new Map<string, PathSegment[]>();
  items.forEach((item, i) => {
    if (!isObj(item)) return;
    const own: Layer = { value: item, path: [...path, i], group: "" };
    readPasswordFile(own, ctx);
    const address = name(item, "address");
    let dup = false;
    if (address !== undefined) {
      const first = seen.get(address);
      if (first) {
        ctx.f.issues.push({ path: [...own.path, "address"], message: duplicate(address, ctx.line(first)) });
        dup = true;
      } else seen.set(address, [...own.path, "address"]);
    }
    const peer = resolvePeer([own, ...(groups?.chain(name(item, "group")) ?? [])], asn, ctx);
    if (peer && !dup) out.push({ peer, value: item, path: own.path });
  });
  return out;
}

/** A Kubernetes peer: the peer, its node selector and password Secret. */
function kubePeer(p: { peer: PeerConfig; value: Obj; path: PathSegment[] }, ctx: ResolveContext): KubePeerConfig | undefined {
  const secret = p.value.passwordSecret;
  if (secret !== undefined && p.peer.password !== undefined) {
    ctx.f.issues.push({ path: [...p.path, "passwordSecret"], message: "passwordSecret and password/passwordFile are both set; keep one" });
    return undefined;
  }
  if (!ctx.f.valid(p.path)) return undefined;
  const out: KubePeerConfig = { peer: p.peer, nodeSelector: (p.value.nodeSelector as Record<string, string>) ?? {} };
  if (secret !== undefined) out.passwordSecret = secret as SecretRef;
  return out;
}

/** References to names that are not defined, with a did-you-mean. */
function checkReferences(ctx: ResolveContext, declared: Record<RefKind, readonly string[]>): void {
  for (const ref of ctx.f.refs) {
    const names = declared[ref.kind];
    if (names.includes(ref.name)) continue;
    const s = suggest(ref.name, names);
    ctx.f.issues.push({ path: ref.path, message: `${ref.kind} "${ref.name}" is not defined${s !== undefined ? ` (did you mean "${s}"?)` : ""}` });
  }
}

/** The peers of a node's annotation (or any list of Kubernetes peers on its own). */
export function resolveKubePeerList(items: unknown, path: PathSegment[], opts: { asn: number; policies: readonly string[]; globals?: SettingsGlobals }, ctx: ResolveContext): KubePeerConfig[] {
  if (opts.globals) ctx = { ...ctx, globals: opts.globals };
  const list = resolvePeerList(items, path, undefined, opts.asn, ctx, (a, line) => `duplicate peer ${a} (first at line ${line})`);
  const out = list.map((p) => kubePeer(p, ctx)).filter((p) => p !== undefined);
  checkReferences(ctx, { policy: opts.policies, "prefix list": [], "peer group": [] });
  return out;
}

/** A single peer of a request: the same defaults and checks as a peer of the file. */
export function resolveRequestPeer(value: unknown, opts: { asn: number; policies: readonly string[]; globals?: SettingsGlobals }, ctx: ResolveContext): PeerConfig | undefined {
  if (opts.globals) ctx = { ...ctx, globals: opts.globals };
  if (!isObj(value)) return undefined;
  const peer = resolvePeer([{ value, path: [], group: "" }], opts.asn, ctx);
  checkReferences(ctx, { policy: opts.policies, "prefix list": [], "peer group": [] });
  return peer;
}

type Doc = Partial<z.output<typeof DocumentSchema>> & Obj;

/** The whole configuration; undefined when anything was reported. */
export function resolveConfig(docValue: unknown, ctx: ResolveContext): RouterConfig | undefined {
  const { f } = ctx;
  if (!isObj(docValue)) return undefined;
  const doc = docValue as Doc;
  const valid = <T>(k: string): T | undefined => (Object.hasOwn(doc, k) && doc[k] !== INVALID && f.valid([k]) ? (doc[k] as T) : undefined);

  // Under `kubernetes:` the AS number and router id come from the cluster (and the node).
  const kube = isObj(doc.kubernetes) ? (doc.kubernetes as Obj) : undefined;
  const k8s = Object.hasOwn(doc, "kubernetes");
  let asn = valid<number>("asn");
  if (!Object.hasOwn(doc, "asn")) {
    if (k8s) asn = typeof kube?.asn === "number" && f.valid(["kubernetes", "asn"]) ? kube.asn : 64512;
    else f.issues.push({ path: ["asn"], at: [], message: 'missing required key "asn" (our AS number)' });
  }
  let routerId = valid<string>("routerId");
  if (!Object.hasOwn(doc, "routerId")) {
    if (k8s) routerId = "0.0.0.0";
    else f.issues.push({ path: ["routerId"], at: [], message: 'missing required key "routerId" (a dotted quad such as 192.0.2.1)' });
  }

  const policyNames = isObj(doc.policies) ? Object.keys(doc.policies) : [];
  for (const n of policyNames) {
    if (n === "all" || n === "none") f.issues.push({ path: ["policies", n], key: true, message: `policy name "${n}" is reserved (import/export "${n}" needs no policy)` });
  }
  const globals: SettingsGlobals = {};
  for (const k of ["bfd", "gracefulRestart"] as const) {
    const g = valid<Obj>(k);
    if (g) globals[k] = g;
  }
  ctx = { ...ctx, globals };
  const groups = new PeerGroups(doc.peerGroups, ctx);
  const peers = resolvePeerList(doc.peers, ["peers"], groups, asn, ctx, (a, line) => `duplicate peer ${a} (first defined at line ${line})`).map((p) => p.peer);
  const kubePeers = resolvePeerList(kube?.peers, ["kubernetes", "peers"], groups, asn, ctx, (a, line) => `duplicate peer ${a} (first defined at line ${line})`)
    .map((p) => kubePeer(p, ctx))
    .filter((p) => p !== undefined);
  const advertise = resolveAdvertise(doc.advertise, ctx);
  const healthChecks = resolveHealthChecks(doc.healthChecks, doc.advertise, ctx);
  checkReferences(ctx, {
    policy: policyNames,
    "prefix list": isObj(doc.prefixLists) ? Object.keys(doc.prefixLists) : [],
    "peer group": isObj(doc.peerGroups) ? Object.keys(doc.peerGroups) : [],
  });
  if (f.issues.length || asn === undefined || routerId === undefined) return undefined;

  const d = doc as z.output<typeof DocumentSchema>;
  const policies: Record<string, Policy> = {};
  for (const [n, p] of Object.entries(d.policies)) setKey(policies, n, { name: n, terms: p.terms, default: p.default });
  const cfg: RouterConfig = {
    source: ctx.source ?? "",
    asn,
    routerId,
    listen: d.listen,
    controlSocket: d.controlSocket,
    peers,
    advertise,
    policies,
    prefixLists: d.prefixLists as Record<string, PrefixMatch[]>,
    multipath: { enabled: d.multipath.enabled, maxPaths: d.multipath.maxPaths ?? (d.multipath.enabled ? 8 : 1) },
    decision: d.decision,
    mrai: d.mrai,
    kernel: { ...d.kernel, enabled: d.kernel.enabled ?? k8s },
    log: d.log,
  };
  if (globals.bfd) cfg.bfd = globals.bfd;
  if (globals.gracefulRestart) cfg.gracefulRestart = globals.gracefulRestart;
  if (d.metrics) cfg.metrics = d.metrics;
  if (d.mrtDump) cfg.mrtDump = d.mrtDump;
  if (d.clusterId !== undefined) cfg.clusterId = d.clusterId;
  if (d.health) cfg.health = d.health;
  if (healthChecks.length) cfg.healthChecks = healthChecks;
  if (k8s) cfg.kubernetes = { ...(d.kubernetes as Omit<KubernetesConfig, "peers">), peers: kubePeers };
  return cfg;
}

/** Advertisements: each prefix once, a next hop of the prefix's family. */
function resolveAdvertise(items: unknown, ctx: ResolveContext): AdvertiseConfig[] {
  const out: AdvertiseConfig[] = [];
  if (!Array.isArray(items)) return out;
  const seen = new Map<string, PathSegment[]>();
  items.forEach((a, i) => {
    if (!isObj(a) || typeof a.prefix !== "string") return;
    const path: PathSegment[] = ["advertise", i, "prefix"];
    const first = seen.get(a.prefix);
    if (first) ctx.f.issues.push({ path, message: `duplicate advertised prefix ${a.prefix} (first at line ${ctx.line(first)})` });
    else seen.set(a.prefix, path);
    const problem = nextHopProblem(a.prefix, a.nextHop);
    if (problem) ctx.f.issues.push({ path: ["advertise", i, "nextHop"], message: problem });
    if (ctx.f.valid(["advertise", i])) out.push(a as unknown as AdvertiseConfig);
  });
  return out;
}

/** Health checks: each name once, each prefix in one check only and not also under `advertise` (who would own it?). */
function resolveHealthChecks(items: unknown, advertise: unknown, ctx: ResolveContext): HealthCheckConfig[] {
  const out: HealthCheckConfig[] = [];
  if (!Array.isArray(items)) return out;
  const advertised = new Map<string, PathSegment[]>();
  if (Array.isArray(advertise)) advertise.forEach((a, i) => isObj(a) && typeof a.prefix === "string" && advertised.set(a.prefix, ["advertise", i]));
  const names = new Map<string, PathSegment[]>();
  const prefixes = new Map<string, PathSegment[]>();
  items.forEach((c, i) => {
    if (!isObj(c)) return;
    if (typeof c.name === "string") {
      const first = names.get(c.name);
      if (first) ctx.f.issues.push({ path: ["healthChecks", i, "name"], message: `duplicate health check name ${c.name} (first at line ${ctx.line(first)})` });
      else names.set(c.name, ["healthChecks", i, "name"]);
    }
    if (Array.isArray(c.prefixes)) {
      c.prefixes.forEach((p, j) => {
        if (typeof p !== "string") return;
        const path: PathSegment[] = ["healthChecks", i, "prefixes", j];
        const adv = advertised.get(p);
        if (adv) ctx.f.issues.push({ path, message: `prefix ${p} is also under advertise (line ${ctx.line(adv)}): a prefix is either advertised always or health-checked, not both` });
        const first = prefixes.get(p);
        if (first) ctx.f.issues.push({ path, message: `prefix ${p} is in two health checks (first at line ${ctx.line(first)})` });
        else prefixes.set(p, path);
      });
    }
    if (ctx.f.valid(["healthChecks", i])) out.push(c as unknown as HealthCheckConfig);
  });
  return out;
}

/** An IPv4 next hop for an IPv6 prefix cannot be used; the message, or undefined when fine. */
function nextHopProblem(prefix: string, nextHop: unknown): string | undefined {
  if (typeof nextHop !== "string") return undefined;
  if (parsePrefix(prefix).afi === AFI.IPV6 && afiOf(nextHop) === AFI.IPV4) return expectedText(`an IPv6 next hop for IPv6 prefix ${prefix}`, nextHop);
  return undefined;
}
