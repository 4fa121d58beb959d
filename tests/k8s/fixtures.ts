/**
 * Builders of Kubernetes objects for tests (Nodes, Services, EndpointSlices,
 * Secrets, Namespaces), shaped as a real cluster has them: node addresses
 * and pod CIDRs as the kubelet and node IPAM set them, Services with the
 * API server's defaults (cluster IPs, ip families, traffic policies),
 * EndpointSlices labelled as the EndpointSlice controller labels them.
 * Feed them to `KubeEmulator` / `EmulatorControl`.
 */
import type { EndpointSlice, Node, Secret, Service, ServicePort } from "../../lib/k8s/types.ts";

export interface NodeOptions {
  ipv4?: string;
  ipv6?: string;
  podCIDRs?: string[];
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Cordoned: spec.unschedulable plus the taint the node controller adds. */
  unschedulable?: boolean;
  /** The Ready condition; default true. */
  ready?: boolean;
}

/** A Node with InternalIP addresses per family (and its Hostname), pod CIDRs and a Ready condition. */
export function node(name: string, o: NodeOptions = {}): Node {
  const addresses: { type: string; address: string }[] = [];
  if (o.ipv4) addresses.push({ type: "InternalIP", address: o.ipv4 });
  if (o.ipv6) addresses.push({ type: "InternalIP", address: o.ipv6 });
  addresses.push({ type: "Hostname", address: name });
  const n: Node = {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", ...(o.labels ?? {}) },
      ...(o.annotations ? { annotations: { ...o.annotations } } : {}),
    },
    spec: {},
    status: {
      addresses,
      conditions: [
        o.ready === false
          ? { type: "Ready", status: "False", reason: "KubeletNotReady", message: "container runtime network not ready" }
          : { type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status" },
      ],
    },
  };
  if (o.podCIDRs?.length) {
    n.spec!.podCIDR = o.podCIDRs[0];
    n.spec!.podCIDRs = [...o.podCIDRs];
  }
  if (o.unschedulable) {
    n.spec!.unschedulable = true;
    n.spec!.taints = [{ key: "node.kubernetes.io/unschedulable", effect: "NoSchedule" }];
  }
  return n;
}

export interface ServiceOptions {
  type?: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName";
  clusterIPs?: string[];
  externalIPs?: string[];
  /** status.loadBalancer.ingress: IPs (or hostnames, for anything that is not an IP). */
  ingress?: string[];
  externalTrafficPolicy?: "Cluster" | "Local";
  internalTrafficPolicy?: "Cluster" | "Local";
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
  /** clusterIP None. */
  headless?: boolean;
  /** type ExternalName with this spec.externalName (and no cluster IP). */
  externalName?: string;
  ports?: ServicePort[];
}

function isIp(s: string): boolean {
  return /^[\d.]+$/.test(s) || s.includes(":");
}

/** A Service as the API server stores it (defaults filled in). */
export function service(ns: string, name: string, o: ServiceOptions = {}): Service {
  const type = o.externalName !== undefined ? "ExternalName" : (o.type ?? "ClusterIP");
  const external = type === "NodePort" || type === "LoadBalancer";
  const ports: ServicePort[] =
    o.ports ?? [{ name: "http", protocol: "TCP", port: 80, targetPort: 8080, ...(external ? { nodePort: 30080 } : {}) }];
  const s: Service = {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: ns,
      ...(o.labels ? { labels: { ...o.labels } } : {}),
      ...(o.annotations ? { annotations: { ...o.annotations } } : {}),
    },
    spec: { type },
    status: { loadBalancer: {} },
  };
  const spec = s.spec!;
  if (type === "ExternalName") {
    spec.externalName = o.externalName ?? `${name}.example.com`;
  } else {
    spec.selector = { app: name };
    spec.ports = ports;
    if (o.headless) {
      spec.clusterIP = "None";
      spec.clusterIPs = ["None"];
      spec.ipFamilies = (o.clusterIPs ?? []).length ? o.clusterIPs!.map((ip) => (ip.includes(":") ? "IPv6" : "IPv4")) : ["IPv4"];
    } else if (o.clusterIPs?.length) {
      spec.clusterIP = o.clusterIPs[0];
      spec.clusterIPs = [...o.clusterIPs];
      spec.ipFamilies = o.clusterIPs.map((ip) => (ip.includes(":") ? "IPv6" : "IPv4"));
    }
    spec.internalTrafficPolicy = o.internalTrafficPolicy ?? "Cluster";
    if (external || o.externalTrafficPolicy) spec.externalTrafficPolicy = o.externalTrafficPolicy ?? "Cluster";
  }
  if (o.externalIPs?.length) spec.externalIPs = [...o.externalIPs];
  if (o.ingress?.length) s.status = { loadBalancer: { ingress: o.ingress.map((a) => (isIp(a) ? { ip: a } : { hostname: a })) } };
  return s;
}

export interface EndpointOptions {
  address: string;
  nodeName: string;
  /** Default true; null leaves the condition unset (unknown), as the API omits a nil pointer. */
  ready?: boolean | null;
}

/** An EndpointSlice of `service`, labelled as the EndpointSlice controller does. */
export function endpointSlice(
  ns: string,
  name: string,
  service: string,
  addressType: "IPv4" | "IPv6" | "FQDN",
  endpoints: EndpointOptions[],
): EndpointSlice {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name,
      namespace: ns,
      labels: { "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" },
    },
    addressType,
    endpoints: endpoints.map((e, i) => {
      const ready = e.ready === undefined ? true : e.ready;
      return {
        addresses: [e.address],
        conditions: ready === null ? {} : { ready, serving: ready, terminating: false },
        nodeName: e.nodeName,
        targetRef: { kind: "Pod", name: `${service}-${i}`, namespace: ns },
      };
    }),
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
  };
}

/** An Opaque Secret; values are given as plain strings and stored base64 in `data`. */
export function secret(ns: string, name: string, values: Record<string, string>, type = "Opaque"): Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name, namespace: ns },
    type,
    data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, Buffer.from(v).toString("base64")])),
  };
}

/** A Namespace. */
export function namespace(name: string, labels?: Record<string, string>) {
  return { apiVersion: "v1", kind: "Namespace", metadata: { name, labels: { "kubernetes.io/metadata.name": name, ...(labels ?? {}) } } };
}
