/**
 * `bgpctl watch-k8s` configured the kube-router way, by flags on the
 * DaemonSet's command line, with or without a config file:
 *
 *   --cluster-asn N                    kubernetes.asn
 *   --peer-router-ips A,B              kubernetes.peers[*].address
 *   --peer-router-asns N[,M]           kubernetes.peers[*].remoteAs (one per address, or one for all)
 *   --peer-router-passwords-file FILE  kubernetes.peers[*].password (one per line, in the order of the addresses)
 *   --[no-]advertise-cluster-ip        kubernetes.services.clusterIPs
 *   --[no-]advertise-external-ip       kubernetes.services.externalIPs
 *   --[no-]advertise-loadbalancer-ip   kubernetes.services.loadBalancerIPs
 *   --cluster-ip-ranges CIDR,...       kubernetes.services.clusterIPRanges (advertised as aggregates)
 *   --external-ip-ranges CIDR,...      kubernetes.services.externalIPRanges
 *   --loadbalancer-ip-ranges CIDR,...  kubernetes.services.loadBalancerIPRanges
 *   --health-port N                    health.port (serves /healthz and /readyz)
 *   --node-name NAME                   kubernetes.nodeName
 *   --kubeconfig FILE                  kubernetes.kubeconfig
 *
 * Without --config the base is the text "kubernetes: {}" (every default).
 * With a file, a flag never silently wins over a key: a key the file sets
 * (found by reading its YAML) that disagrees with the flag is an error naming
 * both, the flag and the key with its file:line; an equal value is fine. The
 * flag values are then written into the file's YAML document and the result
 * is validated by the config loader itself, so every default that follows
 * from a value (peers' localAs from the cluster AS, ...) is derived once, by
 * the loader.
 *
 * Peers from the flags import nothing (`import: none`): the node announces
 * its pod CIDRs and Service IPs to them and installs none of their routes.
 * A file's kubernetes.peers entry says otherwise where wanted (`import: all`).
 */
import { type Document, LineCounter, type Node, isMap, isScalar, isSeq, parseDocument } from "yaml";
import { md5PasswordProblem } from "../../ffi/tcp-md5.ts";
import { UsageError, parseAsn, parseIntIn, readFlagFile } from "../cli/args.ts";
import { ConfigError, loadConfig, parseConfig } from "../config/load.ts";
import type { KubePeerConfig, RouterConfig } from "../config/types.ts";
import { formatAddr, parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";

/** The flags as commander hands them over (attribute names). */
export interface K8sFlags {
  config?: string;
  nodeName?: string;
  kubeconfig?: string;
  clusterAsn?: string;
  peerRouterIps?: string;
  peerRouterAsns?: string;
  peerRouterPasswordsFile?: string;
  advertiseClusterIp?: boolean;
  advertiseExternalIp?: boolean;
  advertiseLoadbalancerIp?: boolean;
  clusterIpRanges?: string;
  externalIpRanges?: string;
  loadbalancerIpRanges?: string;
  healthPort?: string;
}

/** What a config built from flags alone calls its source. */
export const NO_CONFIG_FILE = "(no config file: defaults and flags)";

/** The base of a watch-k8s without a config file: a kubernetes section with every default. */
export const EMPTY_K8S_CONFIG = "kubernetes: {}\n";

type Path = readonly (string | number)[];

/** A flag that sets one key. `file` reads the key's value back from the validated file config. */
interface KeyFlag {
  attr: keyof K8sFlags;
  flag: string;
  path: Path;
  value: (raw: string | boolean) => string | number | boolean | string[];
  file: (c: RouterConfig) => string | number | boolean | string[] | undefined;
}

/** A comma-separated list of CIDRs (checked as the key's values are, when the config is parsed). */
function cidrList(flag: string, v: string): string[] {
  const list = v.split(",").map((x) => x.trim());
  if (list.some((x) => x === "")) throw new UsageError(`${flag}: expected comma-separated CIDRs such as 10.96.0.0/12,fd00:10:96::/112, got "${v}"`);
  return list.map((x) => {
    try {
      return prefixToString(parsePrefix(x));
    } catch (e) {
      throw new UsageError(`${flag}: ${(e as Error).message}`);
    }
  });
}

function sameValue(a: unknown, b: unknown): boolean {
  return Array.isArray(a) || Array.isArray(b) ? JSON.stringify(a) === JSON.stringify(b) : a === b;
}

function asnFlag(flag: string, v: string): number {
  const n = parseAsn(flag, v.trim());
  if (n === 23456) throw new UsageError(`${flag}: 23456 is AS_TRANS (RFC 6793), not an AS number to use`);
  return n;
}

function nonEmpty(flag: string, v: string): string {
  if (!v.trim()) throw new UsageError(`${flag}: empty value`);
  return v;
}

const KEY_FLAGS: readonly KeyFlag[] = [
  { attr: "nodeName", flag: "--node-name", path: ["kubernetes", "nodeName"], value: (v) => nonEmpty("--node-name", String(v)).trim(), file: (c) => c.kubernetes?.nodeName },
  { attr: "kubeconfig", flag: "--kubeconfig", path: ["kubernetes", "kubeconfig"], value: (v) => nonEmpty("--kubeconfig", String(v)), file: (c) => c.kubernetes?.kubeconfig },
  { attr: "clusterAsn", flag: "--cluster-asn", path: ["kubernetes", "asn"], value: (v) => asnFlag("--cluster-asn", String(v)), file: (c) => c.kubernetes?.asn },
  {
    attr: "advertiseClusterIp",
    flag: "--advertise-cluster-ip",
    path: ["kubernetes", "services", "clusterIPs"],
    value: Boolean,
    file: (c) => c.kubernetes?.services.clusterIPs,
  },
  {
    attr: "advertiseExternalIp",
    flag: "--advertise-external-ip",
    path: ["kubernetes", "services", "externalIPs"],
    value: Boolean,
    file: (c) => c.kubernetes?.services.externalIPs,
  },
  {
    attr: "advertiseLoadbalancerIp",
    flag: "--advertise-loadbalancer-ip",
    path: ["kubernetes", "services", "loadBalancerIPs"],
    value: Boolean,
    file: (c) => c.kubernetes?.services.loadBalancerIPs,
  },
  ...(
    [
      ["clusterIpRanges", "--cluster-ip-ranges", "clusterIPRanges"],
      ["externalIpRanges", "--external-ip-ranges", "externalIPRanges"],
      ["loadbalancerIpRanges", "--loadbalancer-ip-ranges", "loadBalancerIPRanges"],
    ] as const
  ).map(
    ([attr, flag, key]): KeyFlag => ({
      attr,
      flag,
      path: ["kubernetes", "services", key],
      value: (v) => cidrList(flag, String(v)),
      file: (c) => c.kubernetes?.services[key],
    }),
  ),
  { attr: "healthPort", flag: "--health-port", path: ["health", "port"], value: (v) => parseIntIn("--health-port", String(v), 1, 65535), file: (c) => c.health?.port },
];

// ---------------------------------------------------------------------------
// The peers of --peer-router-ips / --peer-router-asns / --peer-router-passwords-file

interface FlagPeer {
  address: string;
  remoteAs: number;
  /** undefined: no password (or no passwords file). */
  password?: string;
}

/** The peers the flags give, validated; empty when --peer-router-ips is absent. */
export function flagPeers(f: K8sFlags): { peers: FlagPeer[]; passwords: boolean } {
  if (f.peerRouterIps === undefined) {
    for (const [v, flag] of [
      [f.peerRouterAsns, "--peer-router-asns"],
      [f.peerRouterPasswordsFile, "--peer-router-passwords-file"],
    ] as const) {
      if (v !== undefined) throw new UsageError(`${flag} needs --peer-router-ips (the addresses it goes with)`);
    }
    return { peers: [], passwords: false };
  }
  const seen = new Set<string>();
  const addresses = f.peerRouterIps.split(",").map((raw) => {
    const a = parseAddr(raw.trim());
    if (!a) throw new UsageError(`--peer-router-ips: "${raw.trim()}" is not an IPv4 or IPv6 address`);
    const text = formatAddr(a.afi, a.addr);
    if (seen.has(text)) throw new UsageError(`--peer-router-ips: ${text} is given twice`);
    seen.add(text);
    return text;
  });
  if (f.peerRouterAsns === undefined) throw new UsageError("--peer-router-ips needs --peer-router-asns (one AS number per address, or one for all)");
  const asns = f.peerRouterAsns.split(",").map((v) => asnFlag("--peer-router-asns", v));
  if (asns.length !== 1 && asns.length !== addresses.length) {
    throw new UsageError(
      `--peer-router-asns: ${asns.length} AS numbers for ${addresses.length} addresses of --peer-router-ips (give one per address, in the same order, or one for all)`,
    );
  }
  const peers: FlagPeer[] = addresses.map((address, i) => ({ address, remoteAs: asns.length === 1 ? asns[0]! : asns[i]! }));
  if (f.peerRouterPasswordsFile === undefined) return { peers, passwords: false };
  const file = f.peerRouterPasswordsFile;
  const flag = "--peer-router-passwords-file";
  const lines = readFlagFile(flag, file).replace(/\r?\n$/, "").split(/\r?\n/);
  if (lines.length !== addresses.length) {
    throw new UsageError(`${flag}: ${file} has ${lines.length} line${lines.length === 1 ? "" : "s"} for ${addresses.length} addresses of --peer-router-ips (one password per line, in the same order; an empty line for none)`);
  }
  lines.forEach((pw, i) => {
    if (pw === "") return;
    const problem = md5PasswordProblem(pw);
    if (problem) throw new UsageError(`${flag}: ${file}:${i + 1}: the password for ${addresses[i]}: ${problem}`);
    peers[i]!.password = pw;
  });
  return { peers, passwords: true };
}

// ---------------------------------------------------------------------------
// The YAML document: which keys the file sets, and where

/** The file's YAML, with line positions. */
interface SourceDoc {
  name: string;
  doc: Document;
  lines: LineCounter;
}

function readSource(text: string, name: string): SourceDoc {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: false });
  return { name, doc, lines };
}

/** The node at `path`, undefined when absent or null (`key:` with nothing after it). */
function nodeAt(src: SourceDoc, path: Path): Node | undefined {
  const n = src.doc.getIn(path, true) as Node | undefined;
  if (n === undefined || n === null || (isScalar(n) && n.value === null)) return undefined;
  return n;
}

/** "file:line" of the key at the end of `path` (of the item itself for a list index). */
function where(src: SourceDoc, path: Path): string {
  const parent = path.length > 1 ? (src.doc.getIn(path.slice(0, -1), true) as Node | undefined) : src.doc.contents;
  const last = path[path.length - 1];
  let offset: number | undefined;
  if (isMap(parent)) {
    const pair = parent.items.find((p) => isScalar(p.key) && p.key.value === last);
    offset = (pair?.key as Node | undefined)?.range?.[0];
  } else if (isSeq(parent) && typeof last === "number") {
    offset = (parent.items[last] as Node | undefined)?.range?.[0];
  }
  return offset === undefined ? src.name : `${src.name}:${src.lines.linePos(offset).line}`;
}

/** Sets `path` in the document, turning absent or null sections on the way into mappings. */
function setIn(src: SourceDoc, path: Path, value: unknown): void {
  for (let i = 1; i < path.length; i++) {
    const sub = path.slice(0, i);
    if (nodeAt(src, sub) === undefined) src.doc.setIn(sub, src.doc.createNode({}));
  }
  src.doc.setIn(path, src.doc.createNode(value));
}

function show(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** The disagreements between the peer flags and the file's kubernetes.peers. */
function peerConflicts(src: SourceDoc, fileCfg: RouterConfig, f: K8sFlags, peers: FlagPeer[], passwords: boolean): string[] {
  const filePeers: KubePeerConfig[] = fileCfg.kubernetes?.peers ?? [];
  const at = where(src, ["kubernetes", "peers"]);
  const mine = peers.map((p) => p.address).sort();
  const theirs = filePeers.map((p) => p.peer.address).sort();
  if (mine.join(",") !== theirs.join(",")) {
    return [`--peer-router-ips ${f.peerRouterIps} disagrees with kubernetes.peers at ${at} (${theirs.length ? theirs.join(", ") : "no peers"})`];
  }
  const out: string[] = [];
  filePeers.forEach((kp, i) => {
    const p = peers.find((x) => x.address === kp.peer.address)!;
    const item: Path = ["kubernetes", "peers", i];
    const keyOf = (k: string) => (nodeAt(src, [...item, k]) !== undefined ? where(src, [...item, k]) : where(src, item));
    if (p.remoteAs !== kp.peer.remoteAs) {
      out.push(`--peer-router-asns gives ${p.address} AS ${p.remoteAs}; kubernetes.peers[${i}].remoteAs is ${kp.peer.remoteAs} at ${keyOf("remoteAs")}`);
    }
    if (!passwords) return;
    if (kp.passwordSecret) {
      out.push(`--peer-router-passwords-file sets the password of ${p.address}; kubernetes.peers[${i}] takes it from passwordSecret at ${keyOf("passwordSecret")}`);
    } else if (p.password !== kp.peer.password) {
      // Never print a password: say which side has one.
      const key = nodeAt(src, [...item, "passwordFile"]) !== undefined ? "passwordFile" : "password";
      const mineText = p.password === undefined ? "gives no password for" : "gives a different password for";
      out.push(`--peer-router-passwords-file ${mineText} ${p.address} than kubernetes.peers[${i}].${key} at ${keyOf(key)}`);
    }
  });
  return out;
}

/** The peer list the flags add to a file (or to no file) that has no kubernetes.peers. */
function peerDocValue(peers: FlagPeer[]): Record<string, unknown>[] {
  return peers.map((p) => ({ address: p.address, remoteAs: p.remoteAs, import: "none", ...(p.password !== undefined ? { password: p.password } : {}) }));
}

/**
 * The watch-k8s configuration: the file (or every default without one) with
 * the flags applied. UsageError for bad flag values and for flags that
 * disagree with keys the file sets; ConfigError for a bad file.
 */
export function k8sConfig(f: K8sFlags): RouterConfig {
  const path = f.config;
  const fileCfg = path === undefined ? parseConfig(EMPTY_K8S_CONFIG, NO_CONFIG_FILE) : loadConfig(path);
  if (!fileCfg.kubernetes) {
    throw new Error(`${fileCfg.source}: no kubernetes: section; watch-k8s derives its peers and routes from it (an empty "kubernetes: {}" takes every default)`);
  }
  // The text loadConfig validated is read again for positions; it was valid a moment ago.
  const src = readSource(path === undefined ? EMPTY_K8S_CONFIG : readFlagFile("--config", path), fileCfg.source);
  if (src.doc.errors.length) throw new Error(`${fileCfg.source}: changed while being read; try again`);

  const conflicts: string[] = [];
  let changed = false;
  for (const k of KEY_FLAGS) {
    const raw = f[k.attr];
    if (raw === undefined) continue;
    const value = k.value(raw);
    if (nodeAt(src, k.path) !== undefined) {
      const theirs = k.file(fileCfg);
      if (!sameValue(theirs, value)) {
        const flag = typeof value === "boolean" ? (value ? k.flag : k.flag.replace(/^--/, "--no-")) : `${k.flag} ${raw}`;
        conflicts.push(`${flag} disagrees with ${k.path.join(".")}: ${show(theirs)} at ${where(src, k.path)}`);
      }
      continue;
    }
    setIn(src, k.path, value);
    changed = true;
  }
  const { peers, passwords } = flagPeers(f);
  if (peers.length) {
    if (nodeAt(src, ["kubernetes", "peers"]) !== undefined) conflicts.push(...peerConflicts(src, fileCfg, f, peers, passwords));
    else {
      setIn(src, ["kubernetes", "peers"], peerDocValue(peers));
      changed = true;
    }
  }
  if (conflicts.length === 1) throw new UsageError(`${conflicts[0]} (give one of them, or the same value in both)`);
  if (conflicts.length) {
    throw new UsageError(`${conflicts.length} flags disagree with ${fileCfg.source} (give each setting once, or the same value in both):\n  ${conflicts.join("\n  ")}`);
  }
  if (!changed) return fileCfg;
  try {
    return parseConfig(src.doc.toString(), fileCfg.source);
  } catch (e) {
    // The file and the flags are each valid on their own; name both sides without positions in text the user never wrote.
    if (e instanceof ConfigError) throw new UsageError(`the flags do not fit ${fileCfg.source}: ${e.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`);
    throw e;
  }
}
