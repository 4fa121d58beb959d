/**
 * Tests of the Kubernetes derivation (lib/k8s/derive.ts): the node mesh
 * (families, local addresses, per-node AS, route reflectors and clients,
 * nodes being deleted), external peers (config with nodeSelector, the
 * bgpctl.io/peers annotation, Secret passwords), pod CIDRs and the generated
 * policies (compiled and evaluated by the real policy engine), every Service
 * rule with its reason, annotation problems, determinism; the annotation
 * parsers (lib/k8s/annotations.ts) and the status text (lib/k8s/format.ts).
 * Fixtures are inline object literals; the base config comes from parseConfig.
 */
import { describe, expect, test } from "bun:test";
import { emptyAttributes } from "../../lib/bgp/attributes.ts";
import { parseAddr, parsePrefix } from "../../lib/core/addr.ts";
import { parseConfig } from "../../lib/config/load.ts";
import type { PeerConfig, RouterConfig } from "../../lib/config/types.ts";
import {
  ANN,
  ANNOTATIONS,
  parseAsnAnnotation,
  parseBoolAnnotation,
  parseClusterIdAnnotation,
  parseCommunitiesAnnotation,
  parseLargeCommunitiesAnnotation,
  parsePeersAnnotation,
  parseRouterIdAnnotation,
  unknownAnnotations,
} from "../../lib/k8s/annotations.ts";
import { type DeriveInput, type Derived, GENERATED_PREFIX, comparePrefixes, derive, sortByPrefix } from "../../lib/k8s/derive.ts";
import { formatK8sStatus } from "../../lib/k8s/format.ts";
import type { EndpointSlice, K8sProblem, K8sServiceIp, K8sStatus, Node, Service } from "../../lib/k8s/types.ts";
import { applyPolicy, checkPolicyRef, compilePolicies } from "../../lib/rib/policy.ts";
import { type RouteSource, makeRoute } from "../../lib/rib/types.ts";
import { BfdSchema, GracefulRestartSchema } from "../../lib/config/schema.ts";

// ---------------------------------------------------------------------------
// fixtures

interface NodeOpts {
  v4?: string;
  v6?: string;
  podCIDRs?: string[];
  podCIDR?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  unschedulable?: boolean;
  deleting?: boolean;
  /** Extra addresses (after the InternalIPs). */
  addresses?: { type: string; address: string }[];
}

function node(name: string, o: NodeOpts = {}): Node {
  const addresses = [{ type: "Hostname", address: name }];
  if (o.v4) addresses.push({ type: "InternalIP", address: o.v4 });
  if (o.v6) addresses.push({ type: "InternalIP", address: o.v6 });
  addresses.push(...(o.addresses ?? []));
  const n: Node = {
    metadata: { name, labels: { "kubernetes.io/hostname": name, ...o.labels }, annotations: { ...o.annotations } },
    spec: {},
    status: { addresses },
  };
  if (o.podCIDRs) n.spec!.podCIDRs = o.podCIDRs;
  if (o.podCIDR) n.spec!.podCIDR = o.podCIDR;
  if (o.unschedulable) n.spec!.unschedulable = true;
  if (o.deleting) n.metadata.deletionTimestamp = "2024-01-01T00:00:00Z";
  return n;
}

interface SvcOpts {
  type?: string;
  clusterIP?: string;
  clusterIPs?: string[];
  externalIPs?: string[];
  lb?: { ip?: string; hostname?: string }[];
  etp?: string;
  itp?: string;
  annotations?: Record<string, string>;
}

function svc(ns: string, name: string, o: SvcOpts = {}): Service {
  const s: Service = {
    metadata: { name, namespace: ns, annotations: { ...o.annotations } },
    spec: { type: o.type ?? (o.lb ? "LoadBalancer" : "ClusterIP"), ports: [{ port: 80, protocol: "TCP" }] },
  };
  const sp = s.spec!;
  if (o.clusterIP !== undefined) sp.clusterIP = o.clusterIP;
  if (o.clusterIPs) sp.clusterIPs = o.clusterIPs;
  if (o.externalIPs) sp.externalIPs = o.externalIPs;
  if (o.etp) sp.externalTrafficPolicy = o.etp;
  if (o.itp) sp.internalTrafficPolicy = o.itp;
  if (o.lb) s.status = { loadBalancer: { ingress: o.lb } };
  return s;
}

interface Ep {
  addresses: string[];
  node?: string;
  /** undefined: no conditions at all. */
  ready?: boolean | null;
  hasConditions?: boolean;
}

let sliceSeq = 0;
function slice(ns: string, service: string, eps: Ep[], addressType = "IPv4"): EndpointSlice {
  return {
    metadata: { name: `${service}-${++sliceSeq}`, namespace: ns, labels: { "kubernetes.io/service-name": service } },
    addressType,
    endpoints: eps.map((e) => {
      const out: NonNullable<EndpointSlice["endpoints"]>[number] = { addresses: e.addresses };
      if (e.node) out.nodeName = e.node;
      if (e.ready !== undefined || e.hasConditions) out.conditions = e.ready === undefined ? {} : { ready: e.ready };
      return out;
    }),
  };
}

/** The base config from YAML lines under a `kubernetes:` section (plus optional top-level lines). */
function baseConfig(kube: string[] = [], top: string[] = []): RouterConfig {
  const lines = [...top, kube.length ? "kubernetes:" : "kubernetes: {}", ...kube.map((l) => `  ${l}`)];
  return parseConfig(lines.join("\n") + "\n", "t.yaml");
}

const BASE = baseConfig();

function run(p: Partial<DeriveInput> & { nodes: Node[] }): Derived {
  return derive({
    nodeName: p.nodeName ?? "node-a",
    nodes: p.nodes,
    services: p.services ?? [],
    slices: p.slices ?? [],
    base: p.base ?? BASE,
    secrets: p.secrets ?? new Map(),
  });
}

function cfg(d: Derived): RouterConfig {
  expect(d.config).not.toBeNull();
  return d.config!;
}

function peer(d: Derived, address: string): PeerConfig {
  const p = cfg(d).peers.find((x) => x.address === address);
  if (!p) throw new Error(`no peer ${address}; peers: ${cfg(d).peers.map((x) => x.address).join(", ")}`);
  return p;
}

const addrs = (d: Derived) => cfg(d).peers.map((p) => p.address);
const prefixes = (d: Derived) => cfg(d).advertise.map((a) => a.prefix);
const problemsOf = (d: Derived, object: string) => d.status.problems.filter((p) => p.object === object);

function ipStatus(d: Derived, service: string, ip: string): K8sServiceIp {
  const s = d.status.services.find((x) => x.name === service);
  if (!s) throw new Error(`no service ${service}`);
  const i = s.ips.find((x) => x.ip === ip);
  if (!i) throw new Error(`no ip ${ip} in ${service}: ${JSON.stringify(s.ips)}`);
  return i;
}

/** Three IPv4 nodes with pod CIDRs. */
const A = node("node-a", { v4: "10.0.0.1", podCIDRs: ["10.244.1.0/24"] });
const B = node("node-b", { v4: "10.0.0.2", podCIDRs: ["10.244.2.0/24"] });
const C = node("node-c", { v4: "10.0.0.3", podCIDRs: ["10.244.3.0/24"] });

// ---------------------------------------------------------------------------
// the node mesh

describe("node mesh", () => {
  test("three IPv4 nodes: one iBGP session to each other node, with the mesh defaults", () => {
    const d = run({ nodes: [C, A, B] });
    expect(addrs(d)).toEqual(["10.0.0.2", "10.0.0.3"]);
    const expected: PeerConfig = {
      address: "10.0.0.2",
      remoteAs: 64512,
      localAs: 64512,
      port: 179,
      localAddress: "10.0.0.1",
      passive: false,
      holdTime: 90,
      connectRetry: 120,
      families: ["ipv4"],
      nextHopSelf: false,
      routeReflectorClient: false,
      multihop: false,
      import: { kind: "all" },
      export: { kind: "chain", names: ["k8s-mesh-export"] },
      description: "k8s node node-b",
      shutdown: false,
      allowOwnAs: 0,
      enforceFirstAs: true,
      asOverride: false,
      gracefulRestart: GracefulRestartSchema.parse({}),
      bfd: BfdSchema.parse({}),
    };
    expect(peer(d, "10.0.0.2")).toEqual(expected);
    expect(peer(d, "10.0.0.3").description).toBe("k8s node node-c");
    expect(d.status.peers).toEqual([
      { address: "10.0.0.2", asn: 64512, kind: "node", node: "node-b", source: "mesh", families: ["ipv4"] },
      { address: "10.0.0.3", asn: 64512, kind: "node", node: "node-c", source: "mesh", families: ["ipv4"] },
    ]);
    expect(cfg(d).asn).toBe(64512);
    expect(cfg(d).routerId).toBe("10.0.0.1");
    expect(d.status).toMatchObject({ node: "node-a", nodeFound: true, role: "mesh", asn: 64512, routerId: "10.0.0.1", addresses: { ipv4: "10.0.0.1" } });
    expect(d.status.problems).toEqual([]);
    // node-b's view is the mirror image
    const b = run({ nodeName: "node-b", nodes: [A, B, C] });
    expect(addrs(b)).toEqual(["10.0.0.1", "10.0.0.3"]);
    expect(peer(b, "10.0.0.1").localAddress).toBe("10.0.0.2");
  });

  test("dual stack: two sessions per dual-stack pair, one per shared family, each with its own local address", () => {
    const a = node("node-a", { v4: "10.0.0.1", v6: "fd00::0001" });
    const b = node("node-b", { v4: "10.0.0.2", v6: "FD00:0:0::2" });
    const c = node("node-c", { v4: "10.0.0.3" });
    const v6only = node("node-d", { v6: "fd00::4" });
    const d = run({ nodes: [a, b, c, v6only] });
    expect(addrs(d)).toEqual(["10.0.0.2", "10.0.0.3", "fd00::2", "fd00::4"]);
    expect(peer(d, "10.0.0.2")).toMatchObject({ families: ["ipv4"], localAddress: "10.0.0.1" });
    expect(peer(d, "fd00::2")).toMatchObject({ families: ["ipv6"], localAddress: "fd00::1", description: "k8s node node-b" });
    expect(peer(d, "fd00::4")).toMatchObject({ families: ["ipv6"], localAddress: "fd00::1" });
    expect(d.status.addresses).toEqual({ ipv4: "10.0.0.1", ipv6: "fd00::1" });
    // an IPv4-only node shares no family with an IPv6-only node
    const fromC = run({ nodeName: "node-c", nodes: [a, b, c, v6only] });
    expect(addrs(fromC)).toEqual(["10.0.0.1", "10.0.0.2"]);
  });

  test("the first InternalIP per family is used; external addresses and bad InternalIPs are skipped", () => {
    const a = node("node-a", {
      addresses: [
        { type: "ExternalIP", address: "203.0.113.1" },
        { type: "InternalIP", address: "not-an-ip" },
        { type: "InternalIP", address: "10.0.0.1" },
        { type: "InternalIP", address: "10.0.0.99" },
      ],
    });
    const d = run({ nodes: [a, B] });
    expect(d.status.addresses).toEqual({ ipv4: "10.0.0.1" });
    expect(peer(d, "10.0.0.2").localAddress).toBe("10.0.0.1");
    expect(problemsOf(d, "Node/node-a")).toEqual([
      { object: "Node/node-a", field: "status.addresses", message: 'InternalIP "not-an-ip" is not an IP address; ignored' },
    ]);
  });

  test("meshPort and meshHoldTime come from the config; mesh: false turns the mesh off", () => {
    const d = run({ nodes: [A, B], base: baseConfig(["meshPort: 1790", "meshHoldTime: 30"]) });
    expect(peer(d, "10.0.0.2")).toMatchObject({ port: 1790, holdTime: 30 });
    const off = run({ nodes: [A, B, C], base: baseConfig(["mesh: false"]) });
    expect(cfg(off).peers).toEqual([]);
    expect(off.status.peers).toEqual([]);
  });

  test("a per-node AS annotation splits the mesh: nodes only peer within their AS", () => {
    const b = node("node-b", { v4: "10.0.0.2", annotations: { "bgpctl.io/asn": "65010" } });
    const d = run({ nodes: [A, b, C] });
    expect(addrs(d)).toEqual(["10.0.0.3"]);
    expect(peer(d, "10.0.0.3")).toMatchObject({ remoteAs: 64512, localAs: 64512 });
    const fromB = run({ nodeName: "node-b", nodes: [A, b, C] });
    expect(cfg(fromB).asn).toBe(65010);
    expect(fromB.status.asn).toBe(65010);
    expect(cfg(fromB).peers).toEqual([]);
    // two nodes in AS 65010 mesh with each other in that AS
    const c = node("node-c", { v4: "10.0.0.3", annotations: { "bgpctl.io/asn": "65010" } });
    const fromB2 = run({ nodeName: "node-b", nodes: [A, b, c] });
    expect(addrs(fromB2)).toEqual(["10.0.0.3"]);
    expect(peer(fromB2, "10.0.0.3")).toMatchObject({ remoteAs: 65010, localAs: 65010 });
  });

  test("the cluster AS comes from kubernetes.asn", () => {
    const d = run({ nodes: [A, B], base: baseConfig(["asn: 65100"]) });
    expect(cfg(d).asn).toBe(65100);
    expect(peer(d, "10.0.0.2")).toMatchObject({ remoteAs: 65100, localAs: 65100 });
  });

  test("nodes being deleted are not peered with; nodes without an address are skipped silently", () => {
    const gone = node("node-b", { v4: "10.0.0.2", deleting: true });
    const noAddr = node("node-x", {});
    const d = run({ nodes: [A, gone, C, noAddr] });
    expect(addrs(d)).toEqual(["10.0.0.3"]);
    expect(d.status.problems).toEqual([]);
  });

  test("two nodes claiming the same InternalIP: the first by name is peered, the other reported", () => {
    const b2 = node("node-b2", { v4: "10.0.0.2" });
    const d = run({ nodes: [b2, A, B] });
    expect(addrs(d)).toEqual(["10.0.0.2"]);
    expect(peer(d, "10.0.0.2").description).toBe("k8s node node-b");
    expect(problemsOf(d, "Node/node-b2")).toHaveLength(1);
    expect(problemsOf(d, "Node/node-b2")[0]!.message).toContain("same InternalIP 10.0.0.2");
  });
});

// ---------------------------------------------------------------------------
// route reflectors

describe("route reflectors", () => {
  const rr = (name: string, v4: string, cluster: string) => node(name, { v4, annotations: { "bgpctl.io/route-reflector": cluster } });
  const client = (name: string, v4: string, cluster: string) => node(name, { v4, annotations: { "bgpctl.io/route-reflector-client": cluster } });
  const rr1 = rr("rr1", "10.0.1.1", "10.0.0.1");
  const rr2 = rr("rr2", "10.0.1.2", "167772162"); // 10.0.0.2 as a number
  const c1 = client("c1", "10.0.2.1", "10.0.0.1");
  const c1b = client("c1b", "10.0.2.11", "167772161"); // also cluster 10.0.0.1
  const c2 = client("c2", "10.0.2.2", "10.0.0.2");
  const m = node("m", { v4: "10.0.3.1" });
  const all = [rr1, rr2, c1, c1b, c2, m];

  test("a reflector peers with other reflectors, mesh nodes and the clients of its own cluster (as RR clients)", () => {
    const d = run({ nodeName: "rr1", nodes: all });
    expect(addrs(d)).toEqual(["10.0.1.2", "10.0.2.1", "10.0.2.11", "10.0.3.1"]);
    expect(peer(d, "10.0.2.1").routeReflectorClient).toBe(true);
    expect(peer(d, "10.0.2.11").routeReflectorClient).toBe(true);
    expect(peer(d, "10.0.1.2").routeReflectorClient).toBe(false);
    expect(peer(d, "10.0.3.1").routeReflectorClient).toBe(false);
    expect(cfg(d).clusterId).toBe("10.0.0.1");
    expect(d.status).toMatchObject({ role: "reflector", clusterId: "10.0.0.1" });
    expect(d.status.peers.map((p) => [p.address, p.kind, p.node])).toEqual([
      ["10.0.1.2", "reflector", "rr2"],
      ["10.0.2.1", "reflector-client", "c1"],
      ["10.0.2.11", "reflector-client", "c1b"],
      ["10.0.3.1", "node", "m"],
    ]);
    // rr2's cluster id, given as a number, is the dotted quad 10.0.0.2; its client is c2 only
    const d2 = run({ nodeName: "rr2", nodes: all });
    expect(cfg(d2).clusterId).toBe("10.0.0.2");
    expect(addrs(d2)).toEqual(["10.0.1.1", "10.0.2.2", "10.0.3.1"]);
    expect(peer(d2, "10.0.2.2").routeReflectorClient).toBe(true);
  });

  test("a client peers only with the reflectors of its cluster id", () => {
    const d = run({ nodeName: "c1", nodes: all });
    expect(addrs(d)).toEqual(["10.0.1.1"]);
    expect(peer(d, "10.0.1.1").routeReflectorClient).toBe(false);
    expect(d.status.peers).toEqual([{ address: "10.0.1.1", asn: 64512, kind: "reflector", node: "rr1", source: "mesh", families: ["ipv4"] }]);
    expect(d.status).toMatchObject({ role: "reflector-client", clusterId: "10.0.0.1" });
    expect(cfg(d).clusterId).toBeUndefined();
    expect(addrs(run({ nodeName: "c1b", nodes: all }))).toEqual(["10.0.1.1"]);
    expect(addrs(run({ nodeName: "c2", nodes: all }))).toEqual(["10.0.1.2"]);
  });

  test("a mesh node peers with reflectors and mesh nodes, not with clients", () => {
    const m2 = node("m2", { v4: "10.0.3.2" });
    const d = run({ nodeName: "m", nodes: [...all, m2] });
    expect(addrs(d)).toEqual(["10.0.1.1", "10.0.1.2", "10.0.3.2"]);
    expect(d.status.peers.map((p) => p.kind)).toEqual(["reflector", "reflector", "node"]);
  });

  test("a client whose cluster has no reflector gets a problem and no mesh peers", () => {
    const lost = client("lost", "10.0.2.9", "10.9.9.9");
    const d = run({ nodeName: "lost", nodes: [...all, lost] });
    expect(cfg(d).peers).toEqual([]);
    expect(d.status.problems).toEqual([
      {
        object: "Node/lost",
        field: "bgpctl.io/route-reflector-client",
        message: "no route reflector with cluster id 10.9.9.9 (in AS 64512); no mesh peers",
      },
    ]);
  });

  test("a reflector being deleted does not count: its clients report the problem", () => {
    const dying = rr("rr1", "10.0.1.1", "10.0.0.1");
    dying.metadata.deletionTimestamp = "2024-01-01T00:00:00Z";
    const d = run({ nodeName: "c1", nodes: [dying, c1, m] });
    expect(cfg(d).peers).toEqual([]);
    expect(d.status.problems.map((p) => p.message)).toEqual(["no route reflector with cluster id 10.0.0.1 (in AS 64512); no mesh peers"]);
  });

  test("both reflector annotations on one node: a problem, and the node is a reflector", () => {
    const both = node("node-a", {
      v4: "10.0.0.1",
      annotations: { "bgpctl.io/route-reflector": "10.0.0.7", "bgpctl.io/route-reflector-client": "10.0.0.7" },
    });
    const cl = client("node-b", "10.0.0.2", "10.0.0.7");
    const d = run({ nodes: [both, cl] });
    expect(d.status.role).toBe("reflector");
    expect(cfg(d).clusterId).toBe("10.0.0.7");
    expect(peer(d, "10.0.0.2").routeReflectorClient).toBe(true);
    expect(problemsOf(d, "Node/node-a")).toHaveLength(1);
    expect(problemsOf(d, "Node/node-a")[0]).toMatchObject({ field: "bgpctl.io/route-reflector-client" });
    // and node-b sees node-a as its reflector
    expect(addrs(run({ nodeName: "node-b", nodes: [both, cl] }))).toEqual(["10.0.0.1"]);
  });

  test("a bad cluster id is a problem and the annotation is ignored (the node stays in the mesh)", () => {
    const bad = node("node-b", { v4: "10.0.0.2", annotations: { "bgpctl.io/route-reflector": "ten" } });
    const d = run({ nodes: [A, bad] });
    expect(addrs(d)).toEqual(["10.0.0.2"]);
    expect(d.status.peers[0]!.kind).toBe("node");
    expect(d.status.problems).toEqual([
      {
        object: "Node/node-b",
        field: "bgpctl.io/route-reflector",
        message: 'expected a cluster id: a dotted quad such as 10.0.0.1 or a number 1..4294967295, got "ten"; annotation ignored',
      },
    ]);
  });
});

// ---------------------------------------------------------------------------
// own node, router id

describe("own node and router id", () => {
  test("no Node object named like us: config null and a problem", () => {
    const d = run({ nodeName: "ghost", nodes: [A, B] });
    expect(d.config).toBeNull();
    expect(d.status.nodeFound).toBe(false);
    expect(d.status.problems).toEqual([{ object: "Node/ghost", message: 'no Node object named "ghost" (set --node-name or NODE_NAME)' }]);
    expect(d.status.peers).toEqual([]);
  });

  test("our Node without any InternalIP: config null and a problem", () => {
    const a = node("node-a", { addresses: [{ type: "ExternalIP", address: "203.0.113.1" }] });
    const d = run({ nodes: [a, B] });
    expect(d.config).toBeNull();
    expect(d.status.nodeFound).toBe(true);
    expect(problemsOf(d, "Node/node-a")).toHaveLength(1);
    expect(problemsOf(d, "Node/node-a")[0]!.message).toContain("no InternalIP");
  });

  test("router id: kubernetes.routerId, else the annotation, else the IPv4 InternalIP, else a hash of the name", () => {
    expect(cfg(run({ nodes: [A] })).routerId).toBe("10.0.0.1");
    const annotated = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/router-id": "192.0.2.55" } });
    expect(cfg(run({ nodes: [annotated] })).routerId).toBe("192.0.2.55");
    expect(cfg(run({ nodes: [annotated], base: baseConfig(["routerId: 192.0.2.99"]) })).routerId).toBe("192.0.2.99");
    // FNV-1a 32 of "node-v6" = 0x234acafc (computed independently)
    const v6 = node("node-v6", { v6: "fd00::6" });
    const d = run({ nodeName: "node-v6", nodes: [v6] });
    expect(cfg(d).routerId).toBe("35.74.202.252");
    expect(d.status.routerId).toBe("35.74.202.252");
    // a bad router-id annotation is ignored with a problem
    const bad = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/router-id": "0.0.0.0" } });
    const db = run({ nodes: [bad] });
    expect(cfg(db).routerId).toBe("10.0.0.1");
    expect(db.status.problems).toEqual([
      {
        object: "Node/node-a",
        field: "bgpctl.io/router-id",
        message: 'expected a router id: a non-zero dotted quad such as 192.0.2.1, got "0.0.0.0"; annotation ignored',
      },
    ]);
  });

  test("a bad AS annotation is ignored with one problem; the node stays in the cluster AS", () => {
    const b = node("node-b", { v4: "10.0.0.2", annotations: { "bgpctl.io/asn": "AS65010" } });
    const d = run({ nodes: [A, b] });
    expect(peer(d, "10.0.0.2").remoteAs).toBe(64512);
    expect(d.status.problems).toEqual([
      { object: "Node/node-b", field: "bgpctl.io/asn", message: 'expected an AS number 1..4294967295, got "AS65010"; annotation ignored' },
    ]);
  });

  test("the rest of the file's config is carried over", () => {
    const base = baseConfig([], ["mrai: 5", "controlSocket: /tmp/x.sock"]);
    const c = cfg(run({ nodes: [A, B], base }));
    expect(c.mrai).toBe(5);
    expect(c.controlSocket).toBe("/tmp/x.sock");
    expect(c.kubernetes).toEqual(base.kubernetes);
    expect(c.kernel).toEqual(base.kernel);
  });
});

// ---------------------------------------------------------------------------
// pod CIDRs and generated policies

function localSource(asn = 64512): RouteSource {
  return { id: "local", address: "", addressBytes: new Uint8Array(0), asn, routerId: 0, ibgp: false, rrClient: false, local: true };
}
function peerSource(address: string, ibgp: boolean): RouteSource {
  return { id: address, address, addressBytes: parseAddr(address)!.addr, asn: ibgp ? 64512 : 65000, routerId: 1, ibgp, rrClient: false, local: false };
}

/** Evaluate `peer`'s export policy of the derived config on one route. */
function exports(c: RouterConfig, peerAddress: string, prefix: string, source: RouteSource): boolean {
  const compiled = compilePolicies(c.policies, c.prefixLists);
  const p = c.peers.find((x) => x.address === peerAddress)!;
  const route = makeRoute(parsePrefix(prefix), 0, source, emptyAttributes(), parseAddr("10.0.0.1")!.addr);
  const ctx = { direction: "export" as const, localAs: p.localAs, peerAddress, localAddress: null };
  return applyPolicy(p.export, p.remoteAs === p.localAs ? "ibgp" : "ebgp", route, ctx, compiled).accept;
}

/** The derived config passes the policy compiler and every peer's import/export names a compiled policy. */
function validates(c: RouterConfig): void {
  const compiled = compilePolicies(c.policies, c.prefixLists);
  for (const p of c.peers) {
    checkPolicyRef(p.import, compiled, `peer ${p.address} import`);
    checkPolicyRef(p.export, compiled, `peer ${p.address} export`);
  }
}

const TOR = ["peers:", "  - address: 192.0.2.254", "    remoteAs: 65000"];

describe("pod CIDRs and generated policies", () => {
  test("pod CIDRs (canonical) are originated and listed in k8s-pod-cidrs", () => {
    const a = node("node-a", { v4: "10.0.0.1", podCIDRs: ["fd00:10:244:1:0::/80", "10.244.1.0/24"] });
    const d = run({ nodes: [a, B] });
    expect(d.status.podCidrs).toEqual(["10.244.1.0/24", "fd00:10:244:1::/80"]);
    expect(cfg(d).advertise).toEqual([
      { prefix: "10.244.1.0/24", communities: [], largeCommunities: [] },
      { prefix: "fd00:10:244:1::/80", communities: [], largeCommunities: [] },
    ]);
    expect(cfg(d).prefixLists["k8s-pod-cidrs"]).toEqual([{ prefix: "10.244.1.0/24" }, { prefix: "fd00:10:244:1::/80" }]);
    expect(d.status.originated).toEqual([
      { prefix: "10.244.1.0/24", kind: "podCIDR", communities: [], largeCommunities: [] },
      { prefix: "fd00:10:244:1::/80", kind: "podCIDR", communities: [], largeCommunities: [] },
    ]);
  });

  test("spec.podCIDR is used when podCIDRs is absent; a bad pod CIDR is a problem", () => {
    const a = node("node-a", { v4: "10.0.0.1", podCIDR: "10.244.7.0/24" });
    expect(run({ nodes: [a] }).status.podCidrs).toEqual(["10.244.7.0/24"]);
    const bad = node("node-a", { v4: "10.0.0.1", podCIDRs: ["10.244.1.1/24", "10.244.2.0/24"] });
    const d = run({ nodes: [bad] });
    expect(d.status.podCidrs).toEqual(["10.244.2.0/24"]);
    expect(prefixes(d)).toEqual(["10.244.2.0/24"]);
    expect(d.status.problems).toHaveLength(1);
    expect(d.status.problems[0]).toMatchObject({ object: "Node/node-a", field: "spec.podCIDRs" });
    expect(d.status.problems[0]!.message).toContain('"10.244.1.1/24"');
  });

  test("advertisePodCidrs false: nothing originated (the list stays for the policies)", () => {
    const d = run({ nodes: [A, B], base: baseConfig(["advertisePodCidrs: false"]) });
    expect(cfg(d).advertise).toEqual([]);
    expect(d.status.originated).toEqual([]);
    expect(d.status.podCidrs).toEqual(["10.244.1.0/24"]);
  });

  test("the generated policies, exactly", () => {
    const c = cfg(run({ nodes: [A, B] }));
    expect(c.policies["k8s-mesh-export"]).toEqual({
      name: "k8s-mesh-export",
      default: "reject",
      terms: [
        { name: "pod-cidrs", match: { source: ["local"], prefixList: ["k8s-pod-cidrs"] }, action: "accept" },
        { name: "reflect-ibgp", match: { source: ["ibgp"] }, action: "accept" },
      ],
    });
    expect(c.policies["k8s-external-export"]).toEqual({
      name: "k8s-external-export",
      default: "reject",
      terms: [
        { name: "pod-cidrs", match: { source: ["local"], prefixList: ["k8s-pod-cidrs"] }, action: "accept" },
        { name: "local", match: { source: ["local"] }, action: "accept" },
      ],
    });
    const ext = cfg(run({ nodes: [A, B], base: baseConfig(["advertisePodCidrsExternal: false"]) }));
    expect(ext.policies["k8s-external-export"]!.terms[0]!.action).toBe("reject");
    for (const name of [...Object.keys(c.policies), ...Object.keys(c.prefixLists)]) expect(name.startsWith(GENERATED_PREFIX)).toBe(true);
  });

  test("without pod CIDRs: no prefix list and no terms referencing it; the config still compiles", () => {
    const a = node("node-a", { v4: "10.0.0.1" });
    const c = cfg(run({ nodes: [a, B], base: baseConfig(TOR) }));
    expect(c.prefixLists).toEqual({});
    expect(c.policies["k8s-mesh-export"]!.terms).toEqual([{ name: "reflect-ibgp", match: { source: ["ibgp"] }, action: "accept" }]);
    expect(c.policies["k8s-external-export"]!.terms).toEqual([{ name: "local", match: { source: ["local"] }, action: "accept" }]);
    expect(() => validates(c)).not.toThrow();
  });

  test("the generated config compiles, and the policies do what they say (real policy engine)", () => {
    const svcs = [svc("default", "web", { clusterIP: "10.96.0.10" })];
    const slices = [slice("default", "web", [{ addresses: ["10.244.1.5"], node: "node-a" }])];
    for (const external of [true, false]) {
      const base = baseConfig([...TOR, `advertisePodCidrsExternal: ${external}`]);
      const c = cfg(run({ nodes: [A, B], services: svcs, slices, base }));
      expect(() => validates(c)).not.toThrow();
      // mesh: own pod CIDR yes, Service IPs no, iBGP-learned yes (reflection), eBGP-learned no
      expect(exports(c, "10.0.0.2", "10.244.1.0/24", localSource())).toBe(true);
      expect(exports(c, "10.0.0.2", "10.96.0.10/32", localSource())).toBe(false);
      expect(exports(c, "10.0.0.2", "10.244.3.0/24", peerSource("10.0.0.3", true))).toBe(true);
      expect(exports(c, "10.0.0.2", "198.51.100.0/24", peerSource("192.0.2.254", false))).toBe(false);
      // external: Service IPs yes, pod CIDR per advertisePodCidrsExternal, learned routes no
      expect(exports(c, "192.0.2.254", "10.96.0.10/32", localSource())).toBe(true);
      expect(exports(c, "192.0.2.254", "10.244.1.0/24", localSource())).toBe(external);
      expect(exports(c, "192.0.2.254", "10.244.2.0/24", peerSource("10.0.0.2", true))).toBe(false);
      expect(exports(c, "192.0.2.254", "198.51.100.0/24", peerSource("192.0.2.253", false))).toBe(false);
    }
  });

  test("the file's own advertise, policies and prefix lists are kept; the file's definitions win over generated names", () => {
    const base = baseConfig(
      [],
      [
        "advertise:",
        "  - 203.0.113.0/24",
        "  - 10.244.1.0/24",
        "prefixLists:",
        "  mine: [192.0.2.0/24]",
        "policies:",
        "  keep:",
        "    terms: [{action: accept}]",
      ],
    );
    const d = run({ nodes: [A, B], base });
    const c = cfg(d);
    expect(prefixes(d)).toEqual(["10.244.1.0/24", "203.0.113.0/24"]);
    expect(d.status.originated).toEqual([]); // the pod CIDR is already in the file's advertise
    expect(c.policies.keep).toEqual(base.policies.keep!);
    expect(c.prefixLists.mine).toEqual(base.prefixLists.mine!);
    expect(Object.keys(c.policies).sort()).toEqual(["k8s-external-export", "k8s-mesh-export", "keep"]);
    expect(() => validates(c)).not.toThrow();
  });
});

// ---------------------------------------------------------------------------
// external peers

describe("external peers", () => {
  const kubePeers = [
    "peers:",
    "  - address: 192.0.2.254",
    "    remoteAs: 65000",
    "    nodeSelector: {rack: r1}",
    "  - address: 192.0.2.253",
    "    remoteAs: 65000",
    "    nodeSelector: {rack: r2}",
    "  - address: 2001:db8::fe",
    "    remoteAs: 65001",
    "    export: none",
    "    import: all",
    "  - address: 192.0.2.250",
    "    remoteAs: 65002",
    "    nodeSelector: {rack: r1, zone: z1}",
  ];

  test("kubernetes.peers apply to the nodes their nodeSelector matches (all labels; empty selects every node)", () => {
    const base = baseConfig(kubePeers);
    const a = node("node-a", { v4: "10.0.0.1", labels: { rack: "r1" } });
    const d = run({ nodes: [a], base });
    expect(addrs(d)).toEqual(["192.0.2.254", "2001:db8::fe"]);
    const tor = peer(d, "192.0.2.254");
    expect(tor).toEqual({ ...base.kubernetes!.peers[0]!.peer, localAs: 64512, export: { kind: "chain", names: ["k8s-external-export"] } });
    expect(tor.import).toBeUndefined();
    expect(peer(d, "2001:db8::fe")).toMatchObject({ import: { kind: "all" }, export: { kind: "none" }, remoteAs: 65001 });
    expect(d.status.peers).toEqual([
      { address: "192.0.2.254", asn: 65000, kind: "external", source: "config", families: ["ipv4", "ipv6"] },
      { address: "2001:db8::fe", asn: 65001, kind: "external", source: "config", families: ["ipv4", "ipv6"] },
    ]);
    const both = node("node-a", { v4: "10.0.0.1", labels: { rack: "r1", zone: "z1" } });
    expect(addrs(run({ nodes: [both], base }))).toEqual(["192.0.2.250", "192.0.2.254", "2001:db8::fe"]);
    const r2 = node("node-a", { v4: "10.0.0.1", labels: { rack: "r2" } });
    expect(addrs(run({ nodes: [r2], base }))).toEqual(["192.0.2.253", "2001:db8::fe"]);
  });

  test("the external peer's localAs is the node's AS (per-node AS annotation)", () => {
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/asn": "65010" } });
    const d = run({ nodes: [a], base: baseConfig(TOR) });
    expect(peer(d, "192.0.2.254")).toMatchObject({ localAs: 65010, remoteAs: 65000 });
  });

  test("the bgpctl.io/peers annotation (YAML) adds this node's own peers, with defaults and policies", () => {
    const yaml = [
      "- address: 192.0.2.100",
      "  remoteAs: 65100",
      "- {address: '2001:db8::0:64', remoteAs: 65101, port: 1179, holdTime: 30, multihop: 4, passive: true,",
      "   families: [ipv6], description: leaf, import: all, export: [k8s-external-export]}",
    ].join("\n");
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/peers": yaml } });
    const d = run({ nodes: [a, B] });
    expect(d.status.problems).toEqual([]);
    expect(peer(d, "192.0.2.100")).toEqual({
      address: "192.0.2.100",
      remoteAs: 65100,
      localAs: 64512,
      port: 179,
      passive: false,
      holdTime: 90,
      connectRetry: 120,
      families: ["ipv4", "ipv6"],
      nextHopSelf: false,
      routeReflectorClient: false,
      multihop: false,
      import: undefined,
      export: { kind: "chain", names: ["k8s-external-export"] },
      shutdown: false,
      allowOwnAs: 0,
      enforceFirstAs: true,
      asOverride: false,
      gracefulRestart: GracefulRestartSchema.parse({}),
      bfd: BfdSchema.parse({}),
    });
    expect(peer(d, "2001:db8::64")).toMatchObject({
      remoteAs: 65101,
      port: 1179,
      holdTime: 30,
      multihop: 4,
      passive: true,
      families: ["ipv6"],
      description: "leaf",
      import: { kind: "all" },
      export: { kind: "chain", names: ["k8s-external-export"] },
    });
    expect(d.status.peers.filter((p) => p.source === "annotation").map((p) => p.address)).toEqual(["192.0.2.100", "2001:db8::64"]);
    expect(() => validates(cfg(d))).not.toThrow();
  });

  test("another node's peers annotation does not apply to us (but its errors are reported cluster-wide)", () => {
    const b = node("node-b", { v4: "10.0.0.2", annotations: { "bgpctl.io/peers": "- {address: 192.0.2.100, remoteAs: 65100}" } });
    const c = node("node-c", { v4: "10.0.0.3", annotations: { "bgpctl.io/peers": "- {address: 192.0.2.101}" } });
    const d = run({ nodes: [A, b, c] });
    expect(addrs(d)).toEqual(["10.0.0.2", "10.0.0.3"]);
    expect(d.status.problems.map((p) => [p.object, p.field])).toEqual([["Node/node-c", "bgpctl.io/peers"]]);
    expect(addrs(run({ nodeName: "node-b", nodes: [A, b, c] }))).toEqual(["10.0.0.1", "10.0.0.3", "192.0.2.100"]);
  });

  test("the annotation in JSON works too", () => {
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/peers": '[{"address": "192.0.2.100", "remoteAs": 65100}]' } });
    expect(addrs(run({ nodes: [a] }))).toEqual(["192.0.2.100"]);
  });

  test("a bad peers annotation: one problem naming index and key, the annotation ignored, everything else proceeds", () => {
    const yaml = ["- {address: 192.0.2.100, remoteAs: 65100}", "- {address: 192.0.2.101, remoteAs: x}"].join("\n");
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/peers": yaml } });
    const d = run({ nodes: [a, B], base: baseConfig(TOR) });
    expect(addrs(d)).toEqual(["10.0.0.2", "192.0.2.254"]);
    expect(d.status.problems).toEqual([
      {
        object: "Node/node-a",
        field: "bgpctl.io/peers",
        message: 'peers[1].remoteAs: expected an AS number 1..4294967295, got "x"; annotation ignored',
      },
    ]);
  });

  test("peers annotation errors: unknown keys with did-you-mean, missing keys, unknown policies, bad YAML", () => {
    const policies = ["k8s-external-export", "mine"];
    const err = (text: string) => {
      const r = parsePeersAnnotation(text, { asn: 64512, policies });
      expect("error" in r).toBe(true);
      return (r as { error: string }).error;
    };
    expect(err("- {address: 192.0.2.1, remoteAS: 65000}")).toBe(
      'peers[0].remoteAs: missing required key "remoteAs" (the peer\'s AS number); peers[0].remoteAS: unknown key "remoteAS" (did you mean "remoteAs"?)',
    );
    expect(err("- {remoteAs: 65000}")).toBe("peers[0].address: missing required key \"address\" (the peer's IPv4 or IPv6 address)");
    expect(err("- {address: 192.0.2.1, remoteAs: 65000, export: mines}")).toBe('peers[0].export: policy "mines" is not defined (did you mean "mine"?)');
    expect(err("- {address: 192.0.2.1, remoteAs: 65000, holdTime: 2}")).toBe(
      "peers[0].holdTime: expected a hold time of 0 or 3..65535 seconds, got 2 (RFC 4271 forbids 1 and 2)",
    );
    expect(err("- {address: 192.0.2.1, remoteAs: 65000, families: [ipv5]}")).toBe('peers[0].families[0]: expected ipv4 or ipv6, got "ipv5" (did you mean ipv4?)');
    expect(err("- {address: 192.0.2.1, remoteAs: 65000, passwordSecret: {name: s}}")).toBe(
      'peers[0].passwordSecret.key: missing required key "key" (the key in the Secret\'s data)',
    );
    expect(err("- {address: 192.0.2.1, remoteAs: 65000}\n- {address: 192.0.2.01, remoteAs: 65000}")).toBe(
      'peers[1].address: expected an IPv4 or IPv6 address, got "192.0.2.01"',
    );
    expect(err("- {address: 192.0.2.1, remoteAs: 65000}\n- {address: 192.0.2.1, remoteAs: 65001}")).toBe("peers[1].address: duplicate peer 192.0.2.1 (first at line 1)");
    expect(err("address: 192.0.2.1")).toBe("peers: expected a list of peers such as - {address: 192.0.2.254, remoteAs: 65000}, got a mapping");
    expect(err("- {address: [")).toStartWith("line 1: YAML syntax error: ");
    // Plain-text passwords stay out of annotations (anyone who can read Nodes reads them).
    expect(err("- {address: 192.0.2.1, remoteAs: 65000, password: x}")).toStartWith('peers[0].password: unknown key "password"');
    expect(err("- {address: 192.0.2.1, remoteAs: 65000, password: x}")).toContain("use passwordSecret");
    expect(err("- 192.0.2.1")).toBe('peers[0]: expected a peer: a mapping with address, remoteAs, ..., got "192.0.2.1"');
    // empty annotation: no peers
    expect(parsePeersAnnotation("", { asn: 64512, policies })).toEqual({ value: [] });
  });

  test("Secret passwords: present → set; missing → no password, a problem, and the reference is returned", () => {
    const base = baseConfig([
      "peers:",
      "  - address: 192.0.2.254",
      "    remoteAs: 65000",
      "    passwordSecret: {name: bgp, key: tor}",
      "  - address: 192.0.2.253",
      "    remoteAs: 65000",
      "    passwordSecret: {name: bgp, key: other, namespace: net}",
    ]);
    const yaml = "- {address: 192.0.2.100, remoteAs: 65100, passwordSecret: {name: leaf, key: pw, namespace: default}}";
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/peers": yaml } });
    const secrets = new Map([
      ["kube-system/bgp/tor", "s3cret"],
      ["default/leaf/pw", "leafpw"],
    ]);
    const d = run({ nodes: [a], base, secrets });
    expect(peer(d, "192.0.2.254").password).toBe("s3cret");
    expect(peer(d, "192.0.2.100").password).toBe("leafpw");
    expect(peer(d, "192.0.2.253").password).toBeUndefined();
    expect("password" in peer(d, "192.0.2.253")).toBe(false);
    expect(d.secretRefs).toEqual([
      { namespace: "default", name: "leaf", key: "pw" },
      { namespace: "kube-system", name: "bgp", key: "tor" },
      { namespace: "net", name: "bgp", key: "other" },
    ]);
    expect(d.status.problems).toEqual([
      {
        object: "Secret/net/bgp",
        field: "other",
        message: 'key "other" is not available (Secret or key missing, or not read yet); peer 192.0.2.253 is configured without a password',
      },
    ]);
    // without the secrets at all: every peer without password, every ref still requested
    const none = run({ nodes: [a], base });
    expect(cfg(none).peers.every((p) => p.password === undefined)).toBe(true);
    expect(none.secretRefs).toHaveLength(3);
    expect(none.status.problems).toHaveLength(3);
    // a peer not selected for this node needs no Secret
    const sel = baseConfig(["peers:", "  - address: 192.0.2.254", "    remoteAs: 65000", "    nodeSelector: {rack: r9}", "    passwordSecret: {name: bgp, key: tor}"]);
    expect(run({ nodes: [A], base: sel }).secretRefs).toEqual([]);
  });

  test("an external peer on a mesh address wins over the mesh peer (with a problem); the file's peers win over everything", () => {
    const base = baseConfig(["peers:", "  - address: 10.0.0.2", "    remoteAs: 65000"]);
    const d = run({ nodes: [A, B, C], base });
    expect(peer(d, "10.0.0.2")).toMatchObject({ remoteAs: 65000, export: { kind: "chain", names: ["k8s-external-export"] } });
    expect(d.status.peers.find((p) => p.address === "10.0.0.2")).toMatchObject({ kind: "external", source: "config" });
    expect(d.status.problems).toHaveLength(1);
    expect(d.status.problems[0]!.message).toBe("peer 10.0.0.2 of kubernetes.peers[0] is also node node-b; kubernetes.peers[0] is used");

    const fileBase = baseConfig([], ["peers:", "  - address: 10.0.0.3", "    remoteAs: 65333"]);
    const f = run({ nodes: [A, B, C], base: fileBase });
    expect(peer(f, "10.0.0.3")).toEqual(fileBase.peers[0]!);
    expect(addrs(f)).toEqual(["10.0.0.2", "10.0.0.3"]);
    expect(f.status.peers.map((p) => p.address)).toEqual(["10.0.0.2"]);
    expect(f.status.problems.map((p) => p.message)).toEqual([
      "peer 10.0.0.3 of node node-c is also in the config file's peers; the config file's peer is used",
    ]);
  });

  test("the annotation's peer wins over a config peer with the same address", () => {
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/peers": "- {address: 192.0.2.254, remoteAs: 65099}" } });
    const d = run({ nodes: [a], base: baseConfig(TOR) });
    expect(peer(d, "192.0.2.254").remoteAs).toBe(65099);
    expect(d.status.peers).toEqual([{ address: "192.0.2.254", asn: 65099, kind: "external", source: "annotation", families: ["ipv4", "ipv6"] }]);
    expect(d.status.problems).toHaveLength(1);
    expect(d.status.problems[0]).toMatchObject({ object: "Node/node-a", field: "bgpctl.io/peers" });
  });
});

// ---------------------------------------------------------------------------
// Services

describe("Services", () => {
  const me = A;
  const ready = (n = 1, where = "node-a"): Ep => ({ addresses: Array.from({ length: n }, (_, i) => `10.244.1.${10 + i}`), node: where });
  function derived(services: Service[], slices: EndpointSlice[] = [], kube: string[] = [], nodes: Node[] = [me, B]): Derived {
    return run({ nodes, services, slices, base: baseConfig(kube) });
  }

  test("cluster, external and load balancer IPs with endpoints are advertised as host routes", () => {
    const s = svc("default", "web", {
      clusterIPs: ["10.96.0.10", "fd00:96::000a"],
      externalIPs: ["198.51.100.7"],
      lb: [{ ip: "203.0.113.9" }],
    });
    const d = derived([s], [slice("default", "web", [ready(1, "node-b")])]);
    expect(prefixes(d)).toEqual(["10.96.0.10/32", "10.244.1.0/24", "198.51.100.7/32", "203.0.113.9/32", "fd00:96::a/128"]);
    const st = d.status.services[0]!;
    expect(st).toMatchObject({ name: "default/web", type: "LoadBalancer", readyLocal: 0, readyTotal: 1 });
    expect(st.ips).toEqual([
      { ip: "10.96.0.10", kind: "clusterIP", advertised: true, form: "host", reason: "internalTrafficPolicy Cluster" },
      { ip: "fd00:96::a", kind: "clusterIP", advertised: true, form: "host", reason: "internalTrafficPolicy Cluster" },
      { ip: "198.51.100.7", kind: "externalIP", advertised: true, form: "host", reason: "externalTrafficPolicy Cluster" },
      { ip: "203.0.113.9", kind: "loadBalancerIP", advertised: true, form: "host", reason: "externalTrafficPolicy Cluster" },
    ]);
    expect(d.status.originated.find((o) => o.prefix === "203.0.113.9/32")).toEqual({
      prefix: "203.0.113.9/32",
      kind: "loadBalancerIP",
      service: "default/web",
      communities: [],
      largeCommunities: [],
    });
  });

  test("spec.clusterIP is used when clusterIPs is absent", () => {
    const d = derived([svc("default", "web", { clusterIP: "10.96.0.10" })], [slice("default", "web", [ready()])]);
    expect(ipStatus(d, "default/web", "10.96.0.10").advertised).toBe(true);
  });

  test("1. kinds switched off globally or by annotation (annotation overrides either way)", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", externalIPs: ["198.51.100.7"], lb: [{ ip: "203.0.113.9" }] });
    const sl = [slice("default", "web", [ready()])];
    const off = derived([s], sl, ["services: {clusterIPs: false, externalIPs: false, loadBalancerIPs: false}"]);
    expect(ipStatus(off, "default/web", "10.96.0.10").reason).toBe("cluster IPs not advertised (kubernetes.services.clusterIPs false)");
    expect(ipStatus(off, "default/web", "198.51.100.7").reason).toBe("external IPs not advertised (kubernetes.services.externalIPs false)");
    expect(ipStatus(off, "default/web", "203.0.113.9").reason).toBe("load balancer IPs not advertised (kubernetes.services.loadBalancerIPs false)");
    expect(prefixes(off)).toEqual(["10.244.1.0/24"]);

    const ann = svc("default", "web", {
      clusterIP: "10.96.0.10",
      externalIPs: ["198.51.100.7"],
      lb: [{ ip: "203.0.113.9" }],
      annotations: { "bgpctl.io/advertise-cluster-ip": "false", "bgpctl.io/advertise-external-ips": "false", "bgpctl.io/advertise-loadbalancer-ips": "FALSE" },
    });
    const d = derived([ann], sl);
    expect(ipStatus(d, "default/web", "10.96.0.10")).toEqual({
      ip: "10.96.0.10",
      kind: "clusterIP",
      advertised: false,
      form: "none",
      reason: "cluster IPs not advertised (annotation bgpctl.io/advertise-cluster-ip)",
    });
    expect(ipStatus(d, "default/web", "198.51.100.7").reason).toBe("external IPs not advertised (annotation bgpctl.io/advertise-external-ips)");
    expect(ipStatus(d, "default/web", "203.0.113.9").reason).toBe("load balancer IPs not advertised (annotation bgpctl.io/advertise-loadbalancer-ips)");

    const on = svc("default", "web", { clusterIP: "10.96.0.10", annotations: { "bgpctl.io/advertise-cluster-ip": "true" } });
    const d2 = derived([on], sl, ["services: {clusterIPs: false}"]);
    expect(ipStatus(d2, "default/web", "10.96.0.10").advertised).toBe(true);
    expect(prefixes(d2)).toContain("10.96.0.10/32");
  });

  test("2. an invalid IP: a problem, not advertised; the Service's other IPs proceed", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", externalIPs: ["198.51.100.300"] });
    const d = derived([s], [slice("default", "web", [ready()])]);
    expect(ipStatus(d, "default/web", "198.51.100.300")).toEqual({
      ip: "198.51.100.300",
      kind: "externalIP",
      advertised: false,
      form: "none",
      reason: 'invalid IP address "198.51.100.300"',
    });
    expect(ipStatus(d, "default/web", "10.96.0.10").advertised).toBe(true);
    expect(d.status.problems).toEqual([
      { object: "Service/default/web", field: "spec.externalIPs", message: 'externalIP "198.51.100.300" is not an IP address; not advertised' },
    ]);
  });

  test("3. allowedRanges", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", externalIPs: ["198.51.100.7", "2001:db8::7"] });
    const d = derived([s], [slice("default", "web", [ready()])], ["services: {allowedRanges: [198.51.100.0/24, '2001:db8::/32']}"]);
    expect(ipStatus(d, "default/web", "10.96.0.10")).toMatchObject({ advertised: false, reason: "outside kubernetes.services.allowedRanges" });
    expect(ipStatus(d, "default/web", "198.51.100.7").advertised).toBe(true);
    expect(ipStatus(d, "default/web", "2001:db8::7").advertised).toBe(true);
    expect(prefixes(d)).toEqual(["10.244.1.0/24", "198.51.100.7/32", "2001:db8::7/128"]);
  });

  test("4. a cordoned node, or one with the exclude label, withdraws its Service IPs", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", lb: [{ ip: "203.0.113.9" }] });
    const sl = [slice("default", "web", [ready()])];
    const cordoned = node("node-a", { v4: "10.0.0.1", podCIDRs: ["10.244.1.0/24"], unschedulable: true });
    const d = derived([s], sl, [], [cordoned, B]);
    expect(ipStatus(d, "default/web", "10.96.0.10")).toMatchObject({ advertised: false, reason: "node is cordoned" });
    expect(ipStatus(d, "default/web", "203.0.113.9")).toMatchObject({ advertised: false, reason: "node is cordoned" });
    expect(d.status.servicesWithdrawn).toBe("node is cordoned");
    expect(prefixes(d)).toEqual(["10.244.1.0/24"]); // pod CIDRs stay
    expect(addrs(d)).toEqual(["10.0.0.2"]); // sessions stay

    const kept = derived([s], sl, ["services: {withdrawWhenCordoned: false}"], [cordoned, B]);
    expect(ipStatus(kept, "default/web", "203.0.113.9").advertised).toBe(true);
    expect(kept.status.servicesWithdrawn).toBeUndefined();

    const excluded = node("node-a", { v4: "10.0.0.1", labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } });
    const e = derived([s], sl, [], [excluded, B]);
    const why = "node has label node.kubernetes.io/exclude-from-external-load-balancers";
    expect(ipStatus(e, "default/web", "203.0.113.9")).toMatchObject({ advertised: false, reason: why });
    expect(e.status.servicesWithdrawn).toBe(why);
    expect(derived([s], sl, ["services: {withdrawWhenExcluded: false}"], [excluded, B]).status.servicesWithdrawn).toBeUndefined();

    // a bad IP of a withdrawn Service is still caught before the withdrawal; allowedRanges too
    const bad = svc("default", "bad", { clusterIP: "10.96.0.300" });
    expect(ipStatus(derived([bad], [], [], [cordoned]), "default/bad", "10.96.0.300").reason).toBe('invalid IP address "10.96.0.300"');
  });

  test("5. externalTrafficPolicy Local: ready endpoints on this node only (ready false / null / absent)", () => {
    const s = svc("default", "web", { lb: [{ ip: "203.0.113.9" }], etp: "Local" });
    const reason = (slices: EndpointSlice[]) => ipStatus(derived([s], slices), "default/web", "203.0.113.9");
    expect(reason([])).toEqual({ ip: "203.0.113.9", kind: "loadBalancerIP", advertised: false, form: "none", reason: "externalTrafficPolicy Local: no ready endpoint on this node" });
    expect(reason([slice("default", "web", [ready(3, "node-b")])]).reason).toBe("externalTrafficPolicy Local: no ready endpoint on this node");
    expect(reason([slice("default", "web", [{ ...ready(), ready: false }])]).advertised).toBe(false);
    expect(reason([slice("default", "web", [{ ...ready(), ready: null }])])).toMatchObject({
      advertised: true,
      reason: "externalTrafficPolicy Local: 1 ready endpoint on this node",
    });
    expect(reason([slice("default", "web", [{ ...ready(), hasConditions: true }])]).advertised).toBe(true); // conditions: {}
    expect(reason([slice("default", "web", [ready()])]).advertised).toBe(true); // no conditions at all
    expect(reason([slice("default", "web", [ready(2)]), slice("default", "web", [ready(1, "node-b"), { ...ready(), ready: false }])]).reason).toBe(
      "externalTrafficPolicy Local: 2 ready endpoints on this node",
    );
    const d = derived([s], [slice("default", "web", [ready(2), { ...ready(1), ready: false }, ready(4, "node-b")])]);
    expect(d.status.services[0]).toMatchObject({ readyLocal: 2, readyTotal: 6, externalTrafficPolicy: "Local" });
  });

  test("5. internalTrafficPolicy Local applies to cluster IPs; externalTrafficPolicy to external IPs only", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", externalIPs: ["198.51.100.7"], itp: "Local" });
    const d = derived([s], [slice("default", "web", [ready(1, "node-b")])]);
    expect(ipStatus(d, "default/web", "10.96.0.10")).toMatchObject({ advertised: false, reason: "internalTrafficPolicy Local: no ready endpoint on this node" });
    expect(ipStatus(d, "default/web", "198.51.100.7")).toMatchObject({ advertised: true, reason: "externalTrafficPolicy Cluster" });
    const e = svc("default", "web", { clusterIP: "10.96.0.10", externalIPs: ["198.51.100.7"], etp: "Local" });
    const d2 = derived([e], [slice("default", "web", [ready(1, "node-b")])]);
    expect(ipStatus(d2, "default/web", "10.96.0.10").advertised).toBe(true);
    expect(ipStatus(d2, "default/web", "198.51.100.7").advertised).toBe(false);
    const d3 = derived([s], [slice("default", "web", [ready(1)])]);
    expect(ipStatus(d3, "default/web", "10.96.0.10").reason).toBe("internalTrafficPolicy Local: 1 ready endpoint on this node");
  });

  test("6. Cluster policy: no ready endpoint anywhere withdraws (unless requireEndpoints is false)", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", lb: [{ ip: "203.0.113.9" }] });
    const d = derived([s], [slice("default", "web", [{ ...ready(2, "node-b"), ready: false }])]);
    expect(ipStatus(d, "default/web", "203.0.113.9")).toMatchObject({ advertised: false, reason: "no ready endpoint in the cluster" });
    expect(ipStatus(d, "default/web", "10.96.0.10")).toMatchObject({ advertised: false, reason: "no ready endpoint in the cluster" });
    const relaxed = derived([s], [], ["services: {requireEndpoints: false}"]);
    expect(ipStatus(relaxed, "default/web", "203.0.113.9")).toMatchObject({ advertised: true, reason: "externalTrafficPolicy Cluster" });
    // a ready endpoint on another node is enough
    const other = derived([s], [slice("default", "web", [ready(1, "node-c")])]);
    expect(ipStatus(other, "default/web", "203.0.113.9").advertised).toBe(true);
  });

  test("endpoints are matched by namespace and the service-name label", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10" });
    const wrongNs = slice("other", "web", [ready()]);
    const wrongName = slice("default", "web2", [ready()]);
    const unlabelled: EndpointSlice = { metadata: { name: "x", namespace: "default" }, addressType: "IPv4", endpoints: [{ addresses: ["10.244.1.1"] }] };
    const d = derived([s], [wrongNs, wrongName, unlabelled]);
    expect(d.status.services[0]).toMatchObject({ readyLocal: 0, readyTotal: 0 });
    expect(ipStatus(d, "default/web", "10.96.0.10").reason).toBe("no ready endpoint in the cluster");
  });

  test("a load balancer ingress with a hostname only is listed, not advertised", () => {
    const s = svc("default", "web", { lb: [{ hostname: "lb.example.com" }, { ip: "203.0.113.9" }] });
    const d = derived([s], [slice("default", "web", [ready()])]);
    expect(d.status.services[0]!.ips).toEqual([
      { ip: "lb.example.com", kind: "loadBalancerIP", advertised: false, form: "none", reason: "load balancer ingress has a hostname, not an IP" },
      { ip: "203.0.113.9", kind: "loadBalancerIP", advertised: true, form: "host", reason: "externalTrafficPolicy Cluster" },
    ]);
  });

  test("ExternalName and headless Services are ignored", () => {
    const ext = svc("default", "ext", { type: "ExternalName", externalIPs: ["198.51.100.1"] });
    ext.spec!.externalName = "example.com";
    const headless = svc("default", "db", { clusterIP: "None", externalIPs: ["198.51.100.2"] });
    const d = derived([ext, headless], [slice("default", "db", [ready()])]);
    expect(d.status.services.map((s) => [s.name, s.ignored, s.ips.length])).toEqual([
      ["default/db", "headless", 0],
      ["default/ext", "type ExternalName", 0],
    ]);
    expect(prefixes(d)).toEqual(["10.244.1.0/24"]);
  });

  test("communities: global then per-Service, canonical, deduplicated; large communities likewise", () => {
    const s = svc("default", "web", {
      clusterIP: "10.96.0.10",
      annotations: { "bgpctl.io/communities": "65000:0100, no-export, 65535:65281, 0100:07", "bgpctl.io/large-communities": "65000:1:01, 65000:1:1" },
    });
    const d = derived([s], [slice("default", "web", [ready()])], ["services: {communities: ['65000:100'], largeCommunities: ['65000:0:0']}"]);
    const adv = cfg(d).advertise.find((a) => a.prefix === "10.96.0.10/32")!;
    expect(adv).toEqual({ prefix: "10.96.0.10/32", communities: ["65000:100", "no-export", "100:7"], largeCommunities: ["65000:0:0", "65000:1:1"] });
    expect(d.status.originated.find((o) => o.prefix === "10.96.0.10/32")).toMatchObject({ communities: adv.communities, largeCommunities: adv.largeCommunities });
    // pod CIDRs carry none
    expect(cfg(d).advertise.find((a) => a.prefix === "10.244.1.0/24")).toEqual({ prefix: "10.244.1.0/24", communities: [], largeCommunities: [] });
  });

  test("the same IP in two Services: one route, communities merged, both Services list it", () => {
    const a = svc("default", "a", { externalIPs: ["198.51.100.7"], annotations: { "bgpctl.io/communities": "65000:1" } });
    const b = svc("default", "b", { lb: [{ ip: "198.51.100.7" }], annotations: { "bgpctl.io/communities": "65000:2, 65000:1" } });
    const d = derived([b, a], [slice("default", "a", [ready()]), slice("default", "b", [ready()])]);
    const advs = cfg(d).advertise.filter((x) => x.prefix === "198.51.100.7/32");
    expect(advs).toEqual([{ prefix: "198.51.100.7/32", communities: ["65000:1", "65000:2"], largeCommunities: [] }]);
    expect(ipStatus(d, "default/a", "198.51.100.7").advertised).toBe(true);
    expect(ipStatus(d, "default/b", "198.51.100.7").advertised).toBe(true);
    expect(d.status.originated.filter((o) => o.prefix === "198.51.100.7/32")).toEqual([
      { prefix: "198.51.100.7/32", kind: "externalIP", service: "default/a, default/b", communities: ["65000:1", "65000:2"], largeCommunities: [] },
    ]);
    // one of them not advertising: the route stays, with only the other's communities
    const b2 = svc("default", "b", { lb: [{ ip: "198.51.100.7" }], etp: "Local", annotations: { "bgpctl.io/communities": "65000:2" } });
    const d2 = derived([a, b2], [slice("default", "a", [ready(1, "node-b")]), slice("default", "b", [ready(1, "node-b")])]);
    expect(cfg(d2).advertise.filter((x) => x.prefix === "198.51.100.7/32")).toEqual([{ prefix: "198.51.100.7/32", communities: ["65000:1"], largeCommunities: [] }]);
  });

  test("a Service IP already in the file's advertise is not duplicated (the file's entry wins)", () => {
    const base = baseConfig([], ["advertise:", "  - {prefix: 198.51.100.7/32, communities: ['65000:9']}"]);
    const s = svc("default", "a", { externalIPs: ["198.51.100.7"] });
    const d = run({ nodes: [A], services: [s], slices: [slice("default", "a", [ready()])], base });
    expect(cfg(d).advertise.filter((x) => x.prefix === "198.51.100.7/32")).toEqual([{ prefix: "198.51.100.7/32", communities: ["65000:9"], largeCommunities: [] }]);
    expect(d.status.originated.map((o) => o.prefix)).toEqual(["10.244.1.0/24"]);
  });

  test("bad Service annotations: one problem each, naming the object; the annotation is ignored, others unaffected", () => {
    const bad = svc("default", "bad", {
      clusterIP: "10.96.0.10",
      annotations: {
        "bgpctl.io/advertise-cluster-ip": "yes",
        "bgpctl.io/communities": "65000:1, 70000:1",
        "bgpctl.io/large-communities": "1:2",
        "bgpctl.io/advertise-clusterip": "false",
        "example.com/other": "x",
      },
    });
    const good = svc("default", "good", { clusterIP: "10.96.0.11", annotations: { "bgpctl.io/communities": "65000:5" } });
    const d = derived([bad, good], [slice("default", "bad", [ready()]), slice("default", "good", [ready()])], ["services: {communities: ['65000:100']}"]);
    const ps: K8sProblem[] = d.status.problems;
    expect(ps).toEqual([
      {
        object: "Service/default/bad",
        field: "bgpctl.io/advertise-cluster-ip",
        message: 'expected "true" or "false", got "yes"; annotation ignored',
      },
      {
        object: "Service/default/bad",
        field: "bgpctl.io/advertise-clusterip",
        message: 'unknown annotation "bgpctl.io/advertise-clusterip" (did you mean "bgpctl.io/advertise-cluster-ip"?); ignored',
      },
      {
        object: "Service/default/bad",
        field: "bgpctl.io/communities",
        message:
          'expected a comma-separated list of communities A:B (each 0..65535) or well-known names such as no-export, got "65000:1, 70000:1" ("70000:1" is not a community); annotation ignored',
      },
      {
        object: "Service/default/bad",
        field: "bgpctl.io/large-communities",
        message: 'expected a comma-separated list of large communities A:B:C (each 0..4294967295), got "1:2" ("1:2" is not a large community); annotation ignored',
      },
    ]);
    // treated as absent: advertised under the global switch, with the global communities only
    expect(cfg(d).advertise.find((a) => a.prefix === "10.96.0.10/32")).toEqual({ prefix: "10.96.0.10/32", communities: ["65000:100"], largeCommunities: [] });
    expect(cfg(d).advertise.find((a) => a.prefix === "10.96.0.11/32")).toEqual({ prefix: "10.96.0.11/32", communities: ["65000:100", "65000:5"], largeCommunities: [] });
  });

  test("Node annotations on a Service (and unknown Node annotations) are reported", () => {
    const s = svc("default", "web", { clusterIP: "10.96.0.10", annotations: { "bgpctl.io/asn": "65000" } });
    const a = node("node-a", { v4: "10.0.0.1", annotations: { "bgpctl.io/route-reflektor": "1.2.3.4", "bgpctl.io/communities": "65000:1" } });
    const d = run({ nodes: [a], services: [s] });
    expect(d.status.problems).toEqual([
      { object: "Node/node-a", field: "bgpctl.io/communities", message: "bgpctl.io/communities is a Service annotation, it has no effect on a Node; ignored" },
      {
        object: "Node/node-a",
        field: "bgpctl.io/route-reflektor",
        message: 'unknown annotation "bgpctl.io/route-reflektor" (did you mean "bgpctl.io/route-reflector"?); ignored',
      },
      { object: "Service/default/web", field: "bgpctl.io/asn", message: "bgpctl.io/asn is a Node annotation, it has no effect on a Service; ignored" },
    ]);
  });

  test("Services are listed sorted by namespace/name, every one of them", () => {
    const list = [svc("kube-system", "dns", { clusterIP: "10.96.0.10" }), svc("default", "z", { clusterIP: "10.96.0.12" }), svc("default", "a", { clusterIP: "10.96.0.11" })];
    const d = derived(list);
    expect(d.status.services.map((s) => s.name)).toEqual(["default/a", "default/z", "kube-system/dns"]);
  });
});

// ---------------------------------------------------------------------------
// determinism

function shuffle<T>(xs: T[], seed: number): T[] {
  const out = [...xs];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

describe("determinism", () => {
  const base = baseConfig([...TOR, "services: {communities: ['65000:100']}"], ["advertise: [203.0.113.0/24]"]);
  const nodes = [
    node("node-a", { v4: "10.0.0.1", v6: "fd00::1", podCIDRs: ["10.244.1.0/24", "fd00:244:1::/64"], annotations: { "bgpctl.io/peers": "- {address: 192.0.2.100, remoteAs: 65100}" } }),
    node("node-b", { v4: "10.0.0.2", v6: "fd00::2" }),
    node("node-c", { v4: "10.0.0.3" }),
    node("node-d", { v6: "fd00::4", annotations: { "bgpctl.io/asn": "bad" } }),
    node("node-e", { v4: "10.0.0.5", deleting: true }),
  ];
  const services = [
    svc("default", "web", { clusterIPs: ["10.96.0.10", "fd00:96::a"], lb: [{ ip: "203.0.113.9" }], etp: "Local" }),
    svc("default", "api", { clusterIP: "10.96.0.11", externalIPs: ["198.51.100.7", "198.51.100.8"], annotations: { "bgpctl.io/communities": "65000:2" } }),
    svc("default", "api2", { externalIPs: ["198.51.100.7"], annotations: { "bgpctl.io/communities": "65000:3" } }),
    svc("kube-system", "dns", { clusterIP: "10.96.0.2", annotations: { "bgpctl.io/advertise-cluster-ip": "maybe" } }),
  ];
  const slices = [
    slice("default", "web", [{ addresses: ["10.244.1.5"], node: "node-a" }, { addresses: ["10.244.2.5"], node: "node-b", ready: false }]),
    slice("default", "api", [{ addresses: ["10.244.2.6"], node: "node-b" }]),
    slice("default", "api2", [{ addresses: ["10.244.2.7"], node: "node-b" }]),
    slice("kube-system", "dns", [{ addresses: ["10.244.3.2"], node: "node-c" }]),
  ];
  const input: DeriveInput = { nodeName: "node-a", nodes, services, slices, base, secrets: new Map() };

  test("deriving twice gives deep-equal output", () => {
    const a = derive(input);
    const b = derive(input);
    expect(b).toEqual(a);
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
    expect(cfg(a).peers.length).toBe(6);
  });

  test("reordering every input array gives the same config and status (byte for byte)", () => {
    const ref = derive(input);
    for (let seed = 1; seed <= 8; seed++) {
      const d = derive({ ...input, nodes: shuffle(nodes, seed), services: shuffle(services, seed + 100), slices: shuffle(slices, seed + 200) });
      expect(JSON.stringify(d.config)).toBe(JSON.stringify(ref.config));
      expect(JSON.stringify(d.status)).toBe(JSON.stringify(ref.status));
    }
  });

  test("peers are sorted by address and advertisements by prefix", () => {
    const c = cfg(derive(input));
    expect(c.peers.map((p) => p.address)).toEqual(["10.0.0.2", "10.0.0.3", "192.0.2.100", "192.0.2.254", "fd00::2", "fd00::4"]);
    expect(c.advertise.map((a) => a.prefix)).toEqual([
      "10.96.0.2/32",
      "10.96.0.10/32",
      "10.96.0.11/32",
      "10.244.1.0/24",
      "198.51.100.7/32",
      "198.51.100.8/32",
      "203.0.113.0/24",
      "203.0.113.9/32",
      "fd00:96::a/128",
      "fd00:244:1::/64",
    ]);
    expect(() => validates(c)).not.toThrow();
  });

  test("the input is not mutated", () => {
    const before = JSON.stringify({ nodes, services, slices, base });
    derive(input);
    expect(JSON.stringify({ nodes, services, slices, base })).toBe(before);
  });
});

// ---------------------------------------------------------------------------
// annotation parsers and table

describe("annotations", () => {
  test("the table lists every annotation once, with the bgpctl.io/ prefix", () => {
    const keys = ANNOTATIONS.map((a) => a.key);
    expect(new Set(keys).size).toBe(keys.length);
    expect([...keys].sort()).toEqual(Object.values(ANN).sort());
    for (const a of ANNOTATIONS) {
      expect(a.key.startsWith("bgpctl.io/")).toBe(true);
      expect(a.description.length).toBeGreaterThan(20);
      expect(a.example.length).toBeGreaterThan(0);
    }
    expect(ANNOTATIONS.filter((a) => a.on === "Node").map((a) => a.key)).toEqual([
      "bgpctl.io/asn",
      "bgpctl.io/router-id",
      "bgpctl.io/route-reflector",
      "bgpctl.io/route-reflector-client",
      "bgpctl.io/peers",
    ]);
  });

  test("the examples parse", () => {
    const parsers: Record<string, (s: string) => unknown> = {
      [ANN.asn]: parseAsnAnnotation,
      [ANN.routerId]: parseRouterIdAnnotation,
      [ANN.routeReflector]: parseClusterIdAnnotation,
      [ANN.routeReflectorClient]: parseClusterIdAnnotation,
      [ANN.peers]: (s) => parsePeersAnnotation(s, { asn: 64512, policies: [] }),
      [ANN.advertiseClusterIp]: parseBoolAnnotation,
      [ANN.advertiseExternalIps]: parseBoolAnnotation,
      [ANN.advertiseLoadBalancerIps]: parseBoolAnnotation,
      [ANN.communities]: parseCommunitiesAnnotation,
      [ANN.largeCommunities]: parseLargeCommunitiesAnnotation,
    };
    for (const a of ANNOTATIONS) expect(parsers[a.key]!(a.example)).toHaveProperty("value");
  });

  test("scalar parsers", () => {
    expect(parseAsnAnnotation(" 65010 ")).toEqual({ value: 65010 });
    expect(parseAsnAnnotation("4294967295")).toEqual({ value: 4294967295 });
    expect(parseAsnAnnotation("0")).toEqual({ error: 'expected an AS number 1..4294967295, got "0"' });
    expect(parseAsnAnnotation("4294967296")).toHaveProperty("error");
    expect(parseAsnAnnotation("23456")).toEqual({ error: 'expected an AS number 1..4294967295, got "23456" (AS_TRANS, reserved by RFC 6793)' });
    expect(parseClusterIdAnnotation("1")).toEqual({ value: "0.0.0.1" });
    expect(parseClusterIdAnnotation("4294967295")).toEqual({ value: "255.255.255.255" });
    expect(parseClusterIdAnnotation("167772161")).toEqual({ value: "10.0.0.1" });
    expect(parseClusterIdAnnotation("10.0.0.1")).toEqual({ value: "10.0.0.1" });
    expect(parseClusterIdAnnotation("0")).toHaveProperty("error");
    expect(parseClusterIdAnnotation("10.0.0.256")).toHaveProperty("error");
    expect(parseRouterIdAnnotation("192.0.2.1")).toEqual({ value: "192.0.2.1" });
    expect(parseRouterIdAnnotation("fd00::1")).toHaveProperty("error");
    expect(parseBoolAnnotation("True")).toEqual({ value: true });
    expect(parseBoolAnnotation("false")).toEqual({ value: false });
    expect(parseBoolAnnotation("1")).toEqual({ error: 'expected "true" or "false", got "1"' });
    expect(parseCommunitiesAnnotation("")).toEqual({ value: [] });
    expect(parseCommunitiesAnnotation("65000:100, no-export,,blackhole")).toEqual({ value: ["65000:100", "no-export", "blackhole"] });
    expect(parseLargeCommunitiesAnnotation("4294967295:0:007")).toEqual({ value: ["4294967295:0:7"] });
  });

  test("unknown annotations: only bgpctl.io/ keys, with did-you-mean when close", () => {
    expect(unknownAnnotations({ "bgpctl.io/asn": "1", "other.io/x": "y" }, "Node")).toEqual([]);
    expect(unknownAnnotations({ "bgpctl.io/ASN": "1" }, "Node")).toEqual([
      { key: "bgpctl.io/ASN", message: 'unknown annotation "bgpctl.io/ASN" (did you mean "bgpctl.io/asn"?); ignored' },
    ]);
    expect(unknownAnnotations({ "bgpctl.io/zzzzzzzz": "1" }, "Service")).toEqual([{ key: "bgpctl.io/zzzzzzzz", message: 'unknown annotation "bgpctl.io/zzzzzzzz"; ignored' }]);
  });
});

// ---------------------------------------------------------------------------
// the status text

describe("formatK8sStatus", () => {
  test("header, sections and one line per Service IP with its reason", () => {
    const a = node("node-a", { v4: "10.0.0.1", podCIDRs: ["10.244.1.0/24"], annotations: { "bgpctl.io/asn": "x" } });
    const services = [
      svc("default", "web", { clusterIP: "10.96.0.10", lb: [{ ip: "203.0.113.9" }], etp: "Local" }),
      svc("default", "ext", { type: "ExternalName" }),
    ];
    const slices = [slice("default", "web", [{ addresses: ["10.244.1.5"], node: "node-a" }])];
    const d = run({ nodes: [a, B], services, slices, base: baseConfig(TOR) });
    const st: K8sStatus = {
      ...d.status,
      synced: true,
      resources: [
        { resource: "nodes", synced: true, objects: 2, resourceVersion: "1234", lists: 1, watches: 3, relists: 0, errors: 0, lastError: null },
        { resource: "services", synced: true, objects: 2, resourceVersion: "99", lists: 2, watches: 1, relists: 1, errors: 1, lastError: "410 Gone" },
      ],
    };
    const text = formatK8sStatus(st);
    const lines = text.split("\n");
    expect(lines[0]).toBe("Kubernetes node node-a");
    expect(text).toContain("AS 64512, router id 10.0.0.1, role mesh");
    expect(text).toContain("Sync: synced");
    expect(text).toContain("Pod CIDRs: 10.244.1.0/24");
    for (const h of ["Resources (2):", "Peers (2):", "Originated (3):", "Services (2):", "Problems (1):"]) expect(lines).toContain(h);
    expect(lines.some((l) => /^\s+ADDRESS\s+AS\s+KIND\s+SOURCE\s+NODE\s+FAMILIES$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+10\.0\.0\.2\s+64512\s+node\s+mesh\s+node-b\s+ipv4$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+services\s+yes\s+2\s+99\s+2\s+1\s+1\s+1\s+410 Gone$/.test(l))).toBe(true);
    const lbLine = lines.find((l) => l.includes("203.0.113.9") && !l.includes("/32"))!;
    expect(lbLine).toMatch(/loadBalancerIP\s+203\.0\.113\.9\s+host route\s+externalTrafficPolicy Local: 1 ready endpoint on this node$/);
    expect(lines.find((l) => l.includes("default/ext"))).toMatch(/ignored\s+type ExternalName$/);
    expect(text).toContain('  Node/node-a bgpctl.io/asn: expected an AS number 1..4294967295, got "x"; annotation ignored');
    // columns aligned: the IP column starts at the same offset on every Services line
    const svcLines = lines.slice(lines.indexOf("Services (2):") + 1, lines.indexOf("Services (2):") + 5);
    const col = svcLines[0]!.indexOf("IP ");
    expect(svcLines.slice(1).every((l) => l.length > col && l[col - 1] === " ")).toBe(true);
    expect(svcLines.filter((l) => l.slice(col).startsWith("10.96.0.10") || l.slice(col).startsWith("203.0.113.9"))).toHaveLength(2);
  });

  test("empty sections and a missing node", () => {
    const d = run({ nodeName: "ghost", nodes: [] });
    const text = formatK8sStatus({ ...d.status, synced: false, resources: [] });
    expect(text).toContain("Kubernetes node ghost (Node object not found)");
    expect(text).toContain("Sync: not synced");
    for (const s of ["Resources: none", "Peers: none", "Service ranges: none", "Originated: none", "Services: none", "Problems (1):"]) expect(text).toContain(s);
    expect(text).toContain('no Node object named "ghost"');
    expect(text).not.toMatch(/\x1b\[/);
  });
});

describe("sortByPrefix", () => {
  test("orders as comparePrefixes does (families, addresses, lengths, unparsable text last), parsing each prefix once", () => {
    const texts = ["2001:db8::/32", "10.0.0.0/8", "not a prefix", "10.0.0.0/16", "9.255.255.255/32", "2001:db8::/48", "192.0.2.0/24", "10.1.0.0/16", "::/0", "0.0.0.0/0", "a-name", "203.0.113.128/25"];
    let seed = 3;
    for (let round = 0; round < 20; round++) {
      const shuffled = texts.map((t) => ({ t, r: (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) })).sort((a, b) => a.r - b.r).map((x) => ({ prefix: x.t }));
      expect(sortByPrefix(shuffled, (x) => x.prefix).map((x) => x.prefix)).toEqual([...texts].sort(comparePrefixes));
    }
  });
});
