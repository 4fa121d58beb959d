/**
 * What watch-k8s keeps of each object: the fields the derivation
 * (lib/k8s/derive.ts) and the overlay read, nothing else. The watch caches
 * hold tens of thousands of objects, and a real cluster's carry much more
 * than that: managedFields, `kubectl.kubernetes.io/last-applied-configuration`
 * (a copy of the object), a Node's images, capacity, conditions and system
 * info, an endpoint's targetRef, zone and hints. Trimmed on the way in, they
 * cost what bgpctl uses; and an update that changed only what was dropped
 * (a kubelet's status report, an endpoint's serving condition) is the same
 * trimmed object, which the reflector then keeps without telling anyone
 * (`sameObject`).
 *
 * Kept: metadata name, namespace, resourceVersion, deletionTimestamp; a
 * Node's labels (nodeSelector and the exclusion label), its `bgpctl.io/`
 * annotations, pod CIDRs, unschedulable and addresses; a Service's
 * `bgpctl.io/` annotations, type, cluster, external and load balancer IPs
 * and traffic policies; an EndpointSlice's service-name label and, per
 * endpoint, its addresses, whether it is ready and its node.
 */
import { sameValue } from "../config/diff.ts";
import { ANNOTATION_PREFIX } from "./annotations.ts";
import type { Endpoint, EndpointSlice, KubeObject, Node, ObjectMeta, Service } from "./types.ts";

const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

function meta(m: ObjectMeta, labels: Record<string, string> | undefined, annotations: boolean): ObjectMeta {
  const out: ObjectMeta = { name: m.name };
  if (m.namespace !== undefined) out.namespace = m.namespace;
  if (m.resourceVersion !== undefined) out.resourceVersion = m.resourceVersion;
  if (m.deletionTimestamp !== undefined) out.deletionTimestamp = m.deletionTimestamp;
  if (labels !== undefined) out.labels = labels;
  if (annotations && m.annotations) {
    let ours: Record<string, string> | undefined;
    for (const k in m.annotations) {
      if (!k.startsWith(ANNOTATION_PREFIX)) continue;
      (ours ??= {})[k] = m.annotations[k]!;
    }
    if (ours) out.annotations = ours;
  }
  return out;
}

/** The fields of `o` named (those it has). */
function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}

export function trimNode(n: Node): Node {
  const out: Node = { metadata: meta(n.metadata, n.metadata.labels, true) };
  if (n.spec) out.spec = pick(n.spec, ["podCIDR", "podCIDRs", "unschedulable"]);
  if (n.status?.addresses) out.status = { addresses: n.status.addresses.map((a) => ({ type: a.type, address: a.address })) };
  return out;
}

export function trimService(svc: Service): Service {
  const out: Service = { metadata: meta(svc.metadata, undefined, true) };
  if (svc.spec) out.spec = pick(svc.spec, ["type", "clusterIP", "clusterIPs", "externalIPs", "externalTrafficPolicy", "internalTrafficPolicy"]);
  const ingress = svc.status?.loadBalancer?.ingress;
  if (ingress) {
    out.status = {
      loadBalancer: {
        ingress: ingress.map((i) => pick(i, ["ip", "hostname"])),
      },
    };
  }
  return out;
}

export function trimSlice(s: EndpointSlice): EndpointSlice {
  const svc = s.metadata.labels?.[SERVICE_NAME_LABEL];
  const out: EndpointSlice = { metadata: meta(s.metadata, svc !== undefined ? { [SERVICE_NAME_LABEL]: svc } : undefined, false), addressType: s.addressType };
  if (s.endpoints) {
    out.endpoints = s.endpoints.map((e) => {
      const x: Endpoint = { addresses: e.addresses ?? [] };
      if (e.conditions?.ready !== undefined) x.conditions = { ready: e.conditions.ready };
      if (e.nodeName !== undefined) x.nodeName = e.nodeName;
      return x;
    });
  }
  return out;
}

/** Whether two trimmed objects say the same (their resourceVersion aside). */
export function sameObject(a: KubeObject, b: KubeObject): boolean {
  const ar = a as unknown as Record<string, unknown>;
  const br = b as unknown as Record<string, unknown>;
  for (const k in ar) if (k !== "metadata" && !sameValue(ar[k], br[k])) return false;
  for (const k in br) if (k !== "metadata" && !(k in ar) && br[k] !== undefined) return false;
  const am = a.metadata as unknown as Record<string, unknown>;
  const bm = b.metadata as unknown as Record<string, unknown>;
  for (const k in am) if (k !== "resourceVersion" && !sameValue(am[k], bm[k])) return false;
  for (const k in bm) if (k !== "resourceVersion" && !(k in am) && bm[k] !== undefined) return false;
  return true;
}
