/**
 * The Kubernetes shapes bgpctl reads (the subset of Node, Service,
 * EndpointSlice, Secret and Status it uses, as the API serves them in JSON)
 * and the status the controller reports (`bgpctl show k8s`). Plain data.
 */

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface NodeAddress {
  type: "InternalIP" | "ExternalIP" | "Hostname" | "InternalDNS" | "ExternalDNS" | string;
  address: string;
}

export interface Node extends KubeObject {
  spec?: {
    podCIDR?: string;
    podCIDRs?: string[];
    unschedulable?: boolean;
    taints?: { key: string; value?: string; effect: string }[];
  };
  status?: {
    addresses?: NodeAddress[];
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface ServicePort {
  name?: string;
  protocol?: string;
  port: number;
  targetPort?: number | string;
  nodePort?: number;
}

export interface Service extends KubeObject {
  spec?: {
    type?: "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName" | string;
    clusterIP?: string;
    clusterIPs?: string[];
    externalIPs?: string[];
    externalName?: string;
    externalTrafficPolicy?: "Cluster" | "Local" | string;
    internalTrafficPolicy?: "Cluster" | "Local" | string;
    ipFamilies?: string[];
    selector?: Record<string, string>;
    ports?: ServicePort[];
    loadBalancerIP?: string;
  };
  status?: {
    loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] };
  };
}

export interface Endpoint {
  addresses: string[];
  conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
  nodeName?: string;
  zone?: string;
  targetRef?: { kind?: string; name?: string; namespace?: string };
}

/** discovery.k8s.io/v1 EndpointSlice; `metadata.labels["kubernetes.io/service-name"]` names its Service. */
export interface EndpointSlice extends KubeObject {
  addressType: "IPv4" | "IPv6" | "FQDN" | string;
  endpoints?: Endpoint[] | null;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
}

export interface Secret extends KubeObject {
  type?: string;
  /** Base64 values. */
  data?: Record<string, string>;
  stringData?: Record<string, string>;
}

/** metav1.Status, as carried by error responses and watch ERROR events. */
export interface Status {
  kind: "Status";
  apiVersion: "v1";
  metadata?: Record<string, unknown>;
  status: "Success" | "Failure";
  message?: string;
  reason?: string;
  details?: Record<string, unknown>;
  code: number;
}

export interface ListMeta {
  resourceVersion?: string;
  continue?: string;
  remainingItemCount?: number;
}

export interface List<T> {
  apiVersion?: string;
  kind?: string;
  metadata: ListMeta;
  items: T[];
}

/** One line of a watch stream. */
export type WatchEvent<T> =
  | { type: "ADDED" | "MODIFIED" | "DELETED"; object: T }
  | { type: "BOOKMARK"; object: { kind?: string; apiVersion?: string; metadata: { resourceVersion: string; annotations?: Record<string, string> } } }
  | { type: "ERROR"; object: Status };

/** "namespace/name", or "name" for cluster-scoped objects. */
export function objectKey(o: KubeObject): string {
  return o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name;
}

// ---------------------------------------------------------------------------
// What the controller derived (`bgpctl show k8s`)

/** A problem found in a Kubernetes object (bad annotation value, ...): reported once and ignored. */
export interface K8sProblem {
  /** "Node/node-a", "Service/default/web". */
  object: string;
  /** The annotation (or field) at fault, when there is one. */
  field?: string;
  message: string;
}

export type K8sPeerKind = "node" | "reflector" | "reflector-client" | "external";

export interface K8sPeerStatus {
  address: string;
  asn: number;
  kind: K8sPeerKind;
  /** The Node it stands for (mesh peers). */
  node?: string;
  /** Where it came from: the node mesh, `kubernetes.peers[i]` of the config, or this node's peers annotation. */
  source: "mesh" | "config" | "annotation";
  families: ("ipv4" | "ipv6")[];
}

export type OriginKind = "podCIDR" | "clusterIP" | "externalIP" | "loadBalancerIP";

export interface K8sOriginated {
  prefix: string;
  kind: OriginKind;
  /** "namespace/name" for Service IPs. */
  service?: string;
  /** A Service range of `kubernetes.services.*IPRanges` (of kind `kind`), advertised as an aggregate. */
  aggregate?: true;
  communities: string[];
  largeCommunities: string[];
}

/**
 * The route a Service IP reaches the network by from this node: its own host
 * route (/32, /128), the aggregate of a configured Service range holding it,
 * or none.
 */
export type K8sServiceIpForm = "host" | "aggregate" | "none";

export interface K8sServiceIp {
  ip: string;
  kind: Exclude<OriginKind, "podCIDR">;
  /** This node advertises a route covering the IP: its host route, or the aggregate holding it (`form` says which). */
  advertised: boolean;
  form: K8sServiceIpForm;
  /** The configured Service range holding the IP, when one of its kind is advertised (form "aggregate"; or "host"/"none" with a Local policy). */
  range?: string;
  /** Why (not) advertised, e.g. "externalTrafficPolicy Local: ready endpoint on this node", "outside allowed ranges". */
  reason: string;
}

/** A Service range of `kubernetes.services.clusterIPRanges` / `externalIPRanges` / `loadBalancerIPRanges` and whether this node advertises it. */
export interface K8sServiceRange {
  prefix: string;
  kind: Exclude<OriginKind, "podCIDR">;
  advertised: boolean;
  /** Why not, e.g. "kubernetes.services.clusterIPs false", "node is cordoned"; "advertised by every node" when advertised. */
  reason: string;
}

export interface K8sServiceStatus {
  /** "namespace/name". */
  name: string;
  type: string;
  externalTrafficPolicy?: string;
  internalTrafficPolicy?: string;
  /** Ready endpoints on this node / in the whole cluster. */
  readyLocal: number;
  readyTotal: number;
  ips: K8sServiceIp[];
  /** Set when the whole Service is skipped (ExternalName, headless). */
  ignored?: string;
}

export interface K8sResourceStatus {
  /** "nodes", "services", "endpointslices". */
  resource: string;
  synced: boolean;
  objects: number;
  resourceVersion: string;
  lists: number;
  watches: number;
  relists: number;
  errors: number;
  lastError: string | null;
  /** Watch events received, by type (ADDED, MODIFIED, DELETED, BOOKMARK); for the metrics. */
  watchEvents?: Record<string, number>;
  /** Updates that changed nothing bgpctl reads (lib/k8s/trim.ts): kept out of the cache, no one told. */
  unchanged?: number;
}

export interface K8sStatus {
  node: string;
  /** Every reflector has completed its first full list. */
  synced: boolean;
  /** This node's Node object exists. */
  nodeFound: boolean;
  asn: number;
  routerId: string;
  role: "mesh" | "reflector" | "reflector-client";
  clusterId?: string;
  addresses: { ipv4?: string; ipv6?: string };
  podCidrs: string[];
  /** Set when Service IPs are withdrawn from this node, with the reason (cordoned, exclude label). */
  servicesWithdrawn?: string;
  peers: K8sPeerStatus[];
  /** The configured Service ranges (aggregates), in the order of comparePrefixes. */
  serviceRanges: K8sServiceRange[];
  originated: K8sOriginated[];
  services: K8sServiceStatus[];
  problems: K8sProblem[];
  resources: K8sResourceStatus[];
  /** Derivations run since start: complete ones (every object walked) and those applying the watch events since the last one (lib/k8s/derive-delta.ts). */
  derivations?: { complete: number; delta: number };
  /** The VXLAN overlay (lib/k8s/overlay.ts); absent before it first ran or without kernel routes. */
  overlay?: import("./overlay.ts").OverlayStatus;
}
