/**
 * The `bgpctl.io/` annotations of Nodes and Services: the table of every
 * annotation (`ANNOTATIONS`, which the README's table is checked against) and
 * one parse function per value. Every parser returns `{ value }` or
 * `{ error }`, the error saying what was expected and what was found (the
 * caller reports it as a K8sProblem and treats the annotation as absent).
 * Pure functions, no Kubernetes access.
 */
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { formatAddr, parseIPv4 } from "../core/addr.ts";
import { AFI } from "../core/addr.ts";
import { ConfigError, parsePeerList } from "../config/load.ts";
import { suggest } from "../config/reader.ts";
import type { KubePeerConfig } from "../config/types.ts";

export const ANNOTATION_PREFIX = "bgpctl.io/";

/** The annotation keys. */
export const ANN = {
  asn: "bgpctl.io/asn",
  routerId: "bgpctl.io/router-id",
  routeReflector: "bgpctl.io/route-reflector",
  routeReflectorClient: "bgpctl.io/route-reflector-client",
  peers: "bgpctl.io/peers",
  advertiseClusterIp: "bgpctl.io/advertise-cluster-ip",
  advertiseExternalIps: "bgpctl.io/advertise-external-ips",
  advertiseLoadBalancerIps: "bgpctl.io/advertise-loadbalancer-ips",
  communities: "bgpctl.io/communities",
  largeCommunities: "bgpctl.io/large-communities",
} as const;

export interface AnnotationInfo {
  key: string;
  on: "Node" | "Service";
  example: string;
  description: string;
}

/** Every annotation bgpctl reads (the README table is generated from / checked against this). */
export const ANNOTATIONS: readonly AnnotationInfo[] = [
  {
    key: ANN.asn,
    on: "Node",
    example: "65010",
    description: "This node's AS number, overriding kubernetes.asn (eBGP-per-node designs); nodes only mesh with nodes of the same AS.",
  },
  {
    key: ANN.routerId,
    on: "Node",
    example: "192.0.2.10",
    description: "This node's BGP router id (a dotted quad), e.g. for IPv6-only nodes; kubernetes.routerId overrides it.",
  },
  {
    key: ANN.routeReflector,
    on: "Node",
    example: "10.0.0.1",
    description: "This node is a route reflector for this cluster id (a dotted quad, or a number 1..4294967295).",
  },
  {
    key: ANN.routeReflectorClient,
    on: "Node",
    example: "10.0.0.1",
    description: "This node is a client of the route reflectors with this cluster id (same formats); it peers only with them.",
  },
  {
    key: ANN.peers,
    on: "Node",
    example: "- {address: 192.0.2.254, remoteAs: 65000}",
    description:
      "External peers of this node, a YAML or JSON list of peers with the keys of kubernetes.peers entries (address, remoteAs, port, holdTime, multihop, import, export, maxPrefix, ..., passwordSecret: {name, key, namespace}) but no nodeSelector, group or plain-text password.",
  },
  {
    key: ANN.advertiseClusterIp,
    on: "Service",
    example: "false",
    description: "true/false: advertise this Service's cluster IPs, overriding kubernetes.services.clusterIPs.",
  },
  {
    key: ANN.advertiseExternalIps,
    on: "Service",
    example: "true",
    description: "true/false: advertise this Service's external IPs, overriding kubernetes.services.externalIPs.",
  },
  {
    key: ANN.advertiseLoadBalancerIps,
    on: "Service",
    example: "true",
    description: "true/false: advertise this Service's load balancer IPs, overriding kubernetes.services.loadBalancerIPs.",
  },
  {
    key: ANN.communities,
    on: "Service",
    example: "65000:100, no-export",
    description: "Communities added to this Service's routes (comma-separated A:B or well-known names), after kubernetes.services.communities.",
  },
  {
    key: ANN.largeCommunities,
    on: "Service",
    example: "65000:1:2",
    description: "Large communities added to this Service's routes (comma-separated A:B:C), after kubernetes.services.largeCommunities.",
  },
];

export type Parsed<T> = { value: T } | { error: string };

const U32 = 0xffffffff;
const ASN_WHAT = "an AS number 1..4294967295";

/** How a value is shown in messages: strings quoted, lists and mappings by kind. */
export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a mapping";
  return String(v);
}

function expected(what: string, got: unknown, detail?: string): { error: string } {
  return { error: `expected ${what}, got ${describeValue(got)}${detail ? ` (${detail})` : ""}` };
}

function asnOf(v: unknown): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= 1 && v <= U32 && v !== 23456 ? v : undefined;
}

/** `bgpctl.io/asn`: an AS number 1..4294967295 (23456, AS_TRANS, refused). */
export function parseAsnAnnotation(text: string): Parsed<number> {
  const s = text.trim();
  const v = /^\d{1,10}$/.test(s) ? asnOf(Number(s)) : undefined;
  if (v !== undefined) return { value: v };
  return expected(ASN_WHAT, text, s === "23456" ? "AS_TRANS, reserved by RFC 6793" : undefined);
}

/** `bgpctl.io/router-id`: a non-zero dotted quad. */
export function parseRouterIdAnnotation(text: string): Parsed<string> {
  const b = parseIPv4(text.trim());
  if (b && b.some((x) => x !== 0)) return { value: formatAddr(AFI.IPV4, b) };
  return expected("a router id: a non-zero dotted quad such as 192.0.2.1", text);
}

/** `bgpctl.io/route-reflector(-client)`: a cluster id, a dotted quad or a number 1..4294967295 (converted to a dotted quad). */
export function parseClusterIdAnnotation(text: string): Parsed<string> {
  const s = text.trim();
  const b = parseIPv4(s);
  if (b) return { value: formatAddr(AFI.IPV4, b) };
  if (/^\d{1,10}$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= U32) return { value: `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}` };
  }
  return expected("a cluster id: a dotted quad such as 10.0.0.1 or a number 1..4294967295", text);
}

/** The `bgpctl.io/advertise-*` switches: "true" or "false". */
export function parseBoolAnnotation(text: string): Parsed<boolean> {
  const s = text.trim().toLowerCase();
  if (s === "true") return { value: true };
  if (s === "false") return { value: false };
  return expected('"true" or "false"', text);
}

/** A community in the config loader's canonical text: "A:B" without leading zeros, well-known names kept. Throws on bad input. */
export function canonicalCommunity(s: string): string {
  parseCommunity(s);
  const m = /^(\d+):(\d+)$/.exec(s);
  return m ? `${Number(m[1])}:${Number(m[2])}` : s;
}

/** A large community "A:B:C" without leading zeros. Throws on bad input. */
export function canonicalLargeCommunity(s: string): string {
  return parseLargeCommunity(s).join(":");
}

function commaList(text: string, canon: (s: string) => string, what: string, one: string): Parsed<string[]> {
  const out: string[] = [];
  for (const raw of text.split(",")) {
    const s = raw.trim();
    if (s === "") continue;
    let c: string;
    try {
      c = canon(s);
    } catch {
      return expected(what, text, `${JSON.stringify(s)} is not ${one}`);
    }
    if (!out.includes(c)) out.push(c);
  }
  return { value: out };
}

/** `bgpctl.io/communities`: comma-separated communities, canonical text, deduplicated. */
export function parseCommunitiesAnnotation(text: string): Parsed<string[]> {
  return commaList(
    text,
    canonicalCommunity,
    "a comma-separated list of communities A:B (each 0..65535) or well-known names such as no-export",
    "a community",
  );
}

/** `bgpctl.io/large-communities`: comma-separated large communities, canonical text, deduplicated. */
export function parseLargeCommunitiesAnnotation(text: string): Parsed<string[]> {
  return commaList(text, canonicalLargeCommunity, "a comma-separated list of large communities A:B:C (each 0..4294967295)", "a large community");
}

// ---------------------------------------------------------------------------
// bgpctl.io/peers

/**
 * `bgpctl.io/peers`: a YAML (or JSON, which is YAML) list of external peers,
 * read by the config loader with the keys and checks of `kubernetes.peers`
 * (lib/config/load.ts parsePeerList). Any problem makes the whole annotation
 * an error: one message, problems separated by "; ", each naming the list
 * index and key (`peers[1].remoteAs: expected an AS number 1..4294967295, got "x"`).
 */
export function parsePeersAnnotation(text: string, opts: Parameters<typeof parsePeerList>[2]): Parsed<KubePeerConfig[]> {
  try {
    return { value: parsePeerList(text, ANN.peers, opts) };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return { error: e.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : `line ${i.line}: ${i.message}`)).join("; ") };
  }
}

// ---------------------------------------------------------------------------
// unknown keys

/**
 * The `bgpctl.io/` annotations of an object that bgpctl does not know (or that
 * belong to the other kind of object), each with a message (did-you-mean when
 * close to a known key).
 */
export function unknownAnnotations(annotations: Record<string, string> | undefined, on: "Node" | "Service"): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  if (!annotations) return out;
  const mine = ANNOTATIONS.filter((a) => a.on === on).map((a) => a.key);
  for (const key of Object.keys(annotations).sort()) {
    if (!key.startsWith(ANNOTATION_PREFIX) || mine.includes(key)) continue;
    const other = ANNOTATIONS.find((a) => a.key === key);
    if (other) {
      out.push({ key, message: `${key} is a ${other.on} annotation, it has no effect on a ${on}; ignored` });
      continue;
    }
    const s = suggest(key.slice(ANNOTATION_PREFIX.length), mine.map((k) => k.slice(ANNOTATION_PREFIX.length)));
    out.push({
      key,
      message: `unknown annotation ${JSON.stringify(key)}${s ? ` (did you mean ${JSON.stringify(ANNOTATION_PREFIX + s)}?)` : ""}; ignored`,
    });
  }
  return out;
}
