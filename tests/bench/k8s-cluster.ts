/**
 * The Kubernetes-scale scenario's cluster, generated deterministically from
 * its sizes (so the emulator process that serves it and the orchestrator that
 * checks the result build the same one): Nodes with pod CIDRs, Services of
 * every advertised kind with their EndpointSlices, the prefixes the
 * benchmarked node must originate by the rules the README documents, and the
 * list of Service changes to time afterwards.
 *
 * Shapes (all Service and pod addresses in 10.x, as the test rules require):
 * - Node i: pod CIDR 10.(128 + i/256).(i%256).0/24 (up to 32,768 Nodes);
 *   the benchmarked node (index 0, `BENCH_NODE`) has the lab's daemon
 *   address as InternalIP, the others a 2001:db8:1::/64 address (never
 *   contacted: the scenario runs without the node mesh).
 * - Service k (namespace ns-(k%50)): cluster IP 10.96.0.0 + 1 + k; every
 *   8th is a LoadBalancer with an ingress IP in 10.80.0.0/13, every 8th
 *   (offset 4) has an external IP in 10.64.0.0/13; every 4th LoadBalancer
 *   and every 4th Service with external IPs has externalTrafficPolicy Local,
 *   every 16th (offset 2) internalTrafficPolicy Local; every 50th (offset 7)
 *   is headless, every 50th (offset 13) has no ready endpoint.
 * - EndpointSlice per Service: 3 endpoints on Nodes (7k+j) mod N, pod IPs
 *   inside those Nodes' pod CIDRs.
 *
 * Advertised by the benchmarked node (README "Service IPs", requireEndpoints
 * on by default): its own pod CIDR, and each Service IP of a non-headless
 * Service whose traffic policy (internal for cluster IPs, external for the
 * others) is Local and that has a ready endpoint on this node, or Cluster and
 * has a ready endpoint anywhere.
 *
 * Dressed (`clusterObjects(size, addr, {dressed: true})`, what the bench's
 * emulator serves): every object also carries what a real cluster's do and
 * bgpctl never reads, about the size it is there: a uid, a creation time and
 * managedFields; a Node its cloud and role labels, kubelet annotations,
 * capacity, five conditions, node info and 30 images (about 8 KB of JSON);
 * a Service the `kubectl.kubernetes.io/last-applied-configuration`
 * annotation; an endpoint its targetRef's uid, zone and hints.
 *
 * Changes (`changes(i)`): even i creates a new Service (its EndpointSlice
 * first, then the Service, which is the write that is timed) with cluster
 * IP in 10.112.0.0/16; odd i moves an advertised Cluster-policy
 * LoadBalancer's ingress IP to a new one in 10.88.0.0/13 (the old one must
 * be withdrawn).
 */
import type { EndpointSlice, Node, Service } from "../../lib/k8s/types.ts";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";

export const BENCH_NODE = "node-00000";
export const NAMESPACES = 50;
const ENDPOINTS = 3;
const MAX_NODES = 32_768;
const MAX_SERVICES = 500_000;

export interface ClusterSize {
  nodes: number;
  services: number;
}

/** A dotted quad from a 32-bit number. */
export function ipv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}
const base = (a: number, b: number) => ((a << 24) >>> 0) + (b << 16);

export function checkSize(s: ClusterSize): void {
  if (!Number.isInteger(s.nodes) || s.nodes < 1 || s.nodes > MAX_NODES) throw new Error(`k8s cluster: nodes must be 1..${MAX_NODES}, got ${s.nodes}`);
  if (!Number.isInteger(s.services) || s.services < 0 || s.services > MAX_SERVICES) throw new Error(`k8s cluster: services must be 0..${MAX_SERVICES}, got ${s.services}`);
}

export const nodeName = (i: number) => `node-${String(i).padStart(5, "0")}`;
/** Node i's pod CIDR (a /24) as its first address, a number. */
const podBase = (i: number) => base(10, 128 + (i >> 8)) + ((i & 255) << 8);
export const podCidr = (i: number) => `${ipv4(podBase(i))}/24`;

export function makeNode(i: number, daemonAddr: string): Node {
  return i === 0
    ? node(nodeName(i), { ipv4: daemonAddr, podCIDRs: [podCidr(i)] })
    : node(nodeName(i), { ipv6: `2001:db8:1::${(i + 1).toString(16)}`, podCIDRs: [podCidr(i)] });
}

interface ServiceShape {
  ns: string;
  name: string;
  clusterIP: string;
  lb?: string;
  external?: string;
  etpLocal: boolean;
  itpLocal: boolean;
  headless: boolean;
  /** Nodes of its endpoints (empty: none ready). */
  endpointNodes: number[];
}

function shape(k: number, nodes: number): ServiceShape {
  const lb = k % 8 === 0;
  const ext = k % 8 === 4;
  const s: ServiceShape = {
    ns: `ns-${k % NAMESPACES}`,
    name: `svc-${k}`,
    clusterIP: ipv4(base(10, 96) + 1 + k),
    etpLocal: (lb || ext) && (k >> 3) % 4 === 0,
    itpLocal: k % 16 === 2,
    headless: k % 50 === 7,
    endpointNodes: k % 50 === 13 ? [] : Array.from({ length: ENDPOINTS }, (_, j) => (7 * k + j) % nodes),
  };
  if (lb) s.lb = ipv4(base(10, 80) + 1 + k);
  if (ext) s.external = ipv4(base(10, 64) + 1 + k);
  return s;
}

function serviceObject(s: ServiceShape): Service {
  return service(s.ns, s.name, {
    type: s.lb ? "LoadBalancer" : "ClusterIP",
    ...(s.headless ? { headless: true } : { clusterIPs: [s.clusterIP] }),
    ...(s.lb ? { ingress: [s.lb] } : {}),
    ...(s.external ? { externalIPs: [s.external] } : {}),
    ...(s.lb || s.external ? { externalTrafficPolicy: s.etpLocal ? "Local" : "Cluster" } : {}),
    internalTrafficPolicy: s.itpLocal ? "Local" : "Cluster",
  });
}

function sliceObject(s: ServiceShape, nodes: number): EndpointSlice {
  // With no ready endpoint: one that is not ready (as a crash-looping Deployment has).
  const eps = s.endpointNodes.length ? s.endpointNodes.map((n, j) => ({ n, ready: true, j })) : [{ n: 0, ready: false, j: 0 }];
  return endpointSlice(
    s.ns,
    `${s.name}-abcde`,
    s.name,
    "IPv4",
    eps.map((e) => ({ address: ipv4(podBase(e.n % nodes) + 2 + e.j), nodeName: nodeName(e.n % nodes), ready: e.ready })),
  );
}

/** The Service IPs (as /32 prefixes) the benchmarked node advertises for one Service. */
function advertised(s: ServiceShape): string[] {
  if (s.headless) return [];
  const total = s.endpointNodes.length;
  const local = s.endpointNodes.filter((n) => n === 0).length;
  const ok = (localPolicy: boolean) => (localPolicy ? local > 0 : total > 0);
  const out: string[] = [];
  if (ok(s.itpLocal)) out.push(`${s.clusterIP}/32`);
  for (const ip of [s.lb, s.external]) if (ip && ok(s.etpLocal)) out.push(`${ip}/32`);
  return out;
}

/** Every object of the cluster, in creation order (Nodes, then each Service's EndpointSlice and Service); `dressed`: with what real clusters add (see the module doc). */
export function* clusterObjects(
  size: ClusterSize,
  daemonAddr: string,
  o: { dressed?: boolean } = {},
): Generator<{ resource: "nodes" | "services" | "endpointslices"; object: Node | Service | EndpointSlice }> {
  checkSize(size);
  const d = o.dressed ? dress : <T>(_i: number, x: T) => x;
  for (let i = 0; i < size.nodes; i++) yield { resource: "nodes", object: d(i, dressNode(o.dressed, i, makeNode(i, daemonAddr))) };
  for (let k = 0; k < size.services; k++) {
    const s = shape(k, size.nodes);
    yield { resource: "endpointslices", object: d(MAX_NODES + 2 * k, dressSlice(o.dressed, k, sliceObject(s, size.nodes))) };
    const svc = serviceObject(s);
    if (o.dressed) svc.metadata.annotations = { ...(svc.metadata.annotations ?? {}), "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify({ apiVersion: "v1", kind: "Service", metadata: { name: s.name, namespace: s.ns }, spec: svc.spec }) };
    yield { resource: "services", object: d(MAX_NODES + 2 * k + 1, svc) };
  }
}

const uid = (i: number) => `${(0x5e000000 + i).toString(16)}-1c2d-4e5f-8a9b-${String(i).padStart(12, "0")}`;
const STAMP = "2026-11-02T08:15:42Z";

/** What every object carries: a uid, a creation time, managedFields. */
function dress<T extends Node | Service | EndpointSlice>(i: number, o: T): T {
  const m = o.metadata as unknown as Record<string, unknown>;
  m.uid = uid(i);
  m.creationTimestamp = STAMP;
  m.managedFields = [
    { manager: "kube-controller-manager", operation: "Update", apiVersion: "v1", time: STAMP, fieldsType: "FieldsV1", fieldsV1: { "f:metadata": { "f:labels": { ".": {} } }, "f:spec": { "f:ports": { ".": {} } } } },
    { manager: "kubectl-client-side-apply", operation: "Update", apiVersion: "v1", time: STAMP, fieldsType: "FieldsV1", fieldsV1: { "f:metadata": { "f:annotations": { ".": {}, "f:kubectl.kubernetes.io/last-applied-configuration": {} } } } },
  ];
  return o;
}

function dressNode(on: boolean | undefined, i: number, n: Node): Node {
  if (!on) return n;
  n.metadata.labels = {
    ...n.metadata.labels,
    "beta.kubernetes.io/arch": "amd64",
    "beta.kubernetes.io/os": "linux",
    "kubernetes.io/arch": "amd64",
    "node.kubernetes.io/instance-type": "m6i.2xlarge",
    "topology.kubernetes.io/region": "eu-west-1",
    "topology.kubernetes.io/zone": `eu-west-1${"abc"[i % 3]}`,
    "node-role.kubernetes.io/worker": "",
  };
  n.metadata.annotations = {
    "node.alpha.kubernetes.io/ttl": "0",
    "volumes.kubernetes.io/controller-managed-attach-detach": "true",
    "csi.volume.kubernetes.io/nodeid": JSON.stringify({ "ebs.csi.aws.com": `i-0${(0xabc000 + i).toString(16)}` }),
    "kubeadm.alpha.kubernetes.io/cri-socket": "unix:///run/containerd/containerd.sock",
  };
  const st = n.status as NonNullable<Node["status"]> & Record<string, unknown>;
  const res = { cpu: "8", "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0", "hugepages-2Mi": "0", memory: "32386544Ki", pods: "110" };
  st.capacity = res;
  st.allocatable = { ...res, cpu: "7910m", memory: "31371760Ki" };
  st.conditions = ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable", "Ready"].map((type) => ({
    type,
    status: type === "Ready" ? "True" : "False",
    lastHeartbeatTime: STAMP,
    lastTransitionTime: STAMP,
    reason: type === "Ready" ? "KubeletReady" : `KubeletHasNo${type}`,
    message: type === "Ready" ? "kubelet is posting ready status" : `kubelet has no ${type.toLowerCase()}`,
  }));
  st.daemonEndpoints = { kubeletEndpoint: { Port: 10250 } };
  st.nodeInfo = {
    machineID: uid(i).replace(/-/g, ""),
    systemUUID: uid(i),
    bootID: uid(i + 1),
    kernelVersion: "6.1.0-27-cloud-amd64",
    osImage: "Debian GNU/Linux 12 (bookworm)",
    containerRuntimeVersion: "containerd://1.7.22",
    kubeletVersion: "v1.31.2",
    kubeProxyVersion: "v1.31.2",
    operatingSystem: "linux",
    architecture: "amd64",
  };
  st.images = Array.from({ length: 30 }, (_, j) => ({
    names: [`registry.example.com/team-${j % 7}/service-${j}@sha256:${(j * 2654435761 + i).toString(16).padStart(16, "0").repeat(4)}`, `registry.example.com/team-${j % 7}/service-${j}:v1.${j}.${i % 10}`],
    sizeBytes: 10_000_000 + j * 1_234_567,
  }));
  return n;
}

function dressSlice(on: boolean | undefined, k: number, s: EndpointSlice): EndpointSlice {
  if (!on) return s;
  s.metadata.labels = { ...s.metadata.labels, "app.kubernetes.io/name": `svc-${k}`, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" };
  for (const [j, e] of (s.endpoints ?? []).entries()) {
    e.zone = `eu-west-1${"abc"[j % 3]}`;
    e.targetRef = { ...e.targetRef, uid: uid(1_000_000 + 3 * k + j) } as typeof e.targetRef;
    (e as unknown as Record<string, unknown>).hints = { forZones: [{ name: e.zone }] };
  }
  return s;
}

/** The prefixes the benchmarked node originates towards its external peer once it has the whole cluster. */
export function expectedPrefixes(size: ClusterSize): Set<string> {
  checkSize(size);
  const out = new Set<string>([podCidr(0)]);
  for (let k = 0; k < size.services; k++) for (const p of advertised(shape(k, size.nodes))) out.add(p);
  return out;
}

/** One timed change: the writes (the last one is timed), the prefix that must appear, and the one that must go. */
export interface Change {
  what: string;
  writes: (
    | { op: "create"; resource: "services" | "endpointslices"; object: Service | EndpointSlice }
    | { op: "patch"; resource: "services"; namespace: string; name: string; patch: unknown }
  )[];
  announce: string;
  withdraw?: string;
}

/** `count` changes on a cluster of `size`; throws when the cluster has too few LoadBalancers to move. */
export function changes(size: ClusterSize, count: number): Change[] {
  checkSize(size);
  const movable: ServiceShape[] = [];
  for (let k = 0; k < size.services && movable.length < count; k++) {
    const s = shape(k, size.nodes);
    if (s.lb && !s.etpLocal && !s.headless && s.endpointNodes.length) movable.push(s);
  }
  const out: Change[] = [];
  for (let i = 0; i < count; i++) {
    const j = i >> 1;
    if (i % 2 === 0) {
      if (j >= 65_000) throw new Error(`k8s changes: at most 130,000 changes, asked for ${count}`);
      const s: ServiceShape = { ns: `ns-${j % NAMESPACES}`, name: `new-${j}`, clusterIP: ipv4(base(10, 112) + 1 + j), etpLocal: false, itpLocal: false, headless: false, endpointNodes: [(j + 1) % size.nodes] };
      out.push({ what: `new Service ${s.ns}/${s.name}`, writes: [{ op: "create", resource: "endpointslices", object: sliceObject(s, size.nodes) }, { op: "create", resource: "services", object: serviceObject(s) }], announce: `${s.clusterIP}/32` });
    } else {
      const s = movable[j];
      if (!s) throw new Error(`k8s changes: ${count} changes need ${Math.ceil(count / 2)} Cluster-policy LoadBalancers with endpoints, the cluster of ${size.services} Services has ${movable.length}`);
      const ip = ipv4(base(10, 88) + 1 + j);
      out.push({
        what: `LoadBalancer ${s.ns}/${s.name} ingress ${s.lb} -> ${ip}`,
        writes: [{ op: "patch", resource: "services", namespace: s.ns, name: s.name, patch: { status: { loadBalancer: { ingress: [{ ip }] } } } }],
        announce: `${ip}/32`,
        withdraw: `${s.lb}/32`,
      });
    }
  }
  return out;
}
