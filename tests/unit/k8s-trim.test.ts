/**
 * What watch-k8s keeps of each object (lib/k8s/trim.ts): the derivation over
 * trimmed objects is the derivation over whole ones, for the bench's cluster
 * and for objects carrying what real clusters add (managedFields, a
 * last-applied annotation, a Node's images and conditions, endpoints'
 * targetRef, zone and serving conditions); what is dropped is gone, and
 * `sameObject` tells a status report from a change of something kept.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config/load.ts";
import { derive } from "../../lib/k8s/derive.ts";
import { sameObject, trimNode, trimService, trimSlice } from "../../lib/k8s/trim.ts";
import type { EndpointSlice, Node, Service } from "../../lib/k8s/types.ts";
import { BENCH_NODE, clusterObjects } from "../bench/k8s-cluster.ts";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";

/** What an API server and its controllers add to an object, which bgpctl never reads. */
function bloat<T extends { metadata: { annotations?: Record<string, string> } }>(o: T, i: number): T {
  const x = structuredClone(o) as T & Record<string, unknown>;
  const m = x.metadata as Record<string, unknown>;
  m.uid = `uid-${i}`;
  m.creationTimestamp = "2026-01-01T00:00:00Z";
  m.managedFields = [{ manager: "kubelet", operation: "Update", fieldsV1: { "f:status": { "f:conditions": {} } } }];
  m.annotations = { ...(o.metadata.annotations ?? {}), "kubectl.kubernetes.io/last-applied-configuration": JSON.stringify(o) };
  return x;
}

function input(nodes: Node[], services: Service[], slices: EndpointSlice[], base = BASE) {
  return { nodeName: BENCH_NODE, nodes, services, slices, base, secrets: new Map<string, string>() };
}
const BASE = parseConfig(`kubernetes:\n  nodeName: ${BENCH_NODE}\n  mesh: true\n  services: {loadBalancerIPRanges: [10.80.0.0/24]}\n`, "trim.yaml");

describe("trimmed objects", () => {
  test("the bench's cluster, dressed as a real one: the derivation over trimmed objects equals the one over whole objects", () => {
    const nodes: Node[] = [];
    const services: Service[] = [];
    const slices: EndpointSlice[] = [];
    for (const { resource, object } of clusterObjects({ nodes: 60, services: 600 }, "2001:db8::1", { dressed: true })) {
      if (resource === "nodes") nodes.push(object as Node);
      else if (resource === "services") services.push(object as Service);
      else slices.push(object as EndpointSlice);
    }
    expect(JSON.stringify(nodes[5]).length).toBeGreaterThan(5000);
    // Annotations bgpctl reads, and bad ones it reports, survive the trim.
    nodes[1]!.metadata.annotations!["bgpctl.io/asn"] = "65009";
    nodes[2]!.metadata.annotations!["bgpctl.io/route-reflector"] = "not-an-id";
    services[3]!.metadata.annotations!["bgpctl.io/communities"] = "65000:1,bogus";
    services[4]!.metadata.annotations!["bgpctl.io/unknown"] = "x";
    const whole = derive(input(nodes, services, slices));
    const trimmed = derive(input(nodes.map(trimNode), services.map(trimService), slices.map(trimSlice)));
    expect(trimmed).toEqual(whole);
    expect(whole.status.problems.length).toBeGreaterThan(2);
    expect(whole.config!.peers.length).toBeGreaterThan(50);
  });

  test("what is kept and what goes", () => {
    const n = bloat(node("n1", { ipv4: "192.0.2.7", podCIDRs: ["10.244.1.0/24"], labels: { zone: "a" }, annotations: { "bgpctl.io/asn": "65001", "other.io/x": "y" }, unschedulable: true }), 1);
    expect(trimNode(n)).toEqual({
      metadata: { name: "n1", labels: { "kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux", zone: "a" }, annotations: { "bgpctl.io/asn": "65001" } },
      spec: { podCIDR: "10.244.1.0/24", podCIDRs: ["10.244.1.0/24"], unschedulable: true },
      status: { addresses: [{ type: "InternalIP", address: "192.0.2.7" }, { type: "Hostname", address: "n1" }] },
    });
    const s = bloat(service("ns", "web", { type: "LoadBalancer", clusterIPs: ["10.96.0.9"], ingress: ["10.80.0.9"], externalTrafficPolicy: "Local", labels: { app: "web" } }), 2);
    expect(trimService(s)).toEqual({
      metadata: { name: "web", namespace: "ns" },
      spec: { type: "LoadBalancer", clusterIP: "10.96.0.9", clusterIPs: ["10.96.0.9"], externalTrafficPolicy: "Local", internalTrafficPolicy: "Cluster" },
      status: { loadBalancer: { ingress: [{ ip: "10.80.0.9" }] } },
    });
    const sl = bloat(endpointSlice("ns", "web-x", "web", "IPv4", [{ address: "10.244.1.5", nodeName: "n1", ready: false }, { address: "10.244.1.6", nodeName: "n2", ready: null }]), 3);
    expect(trimSlice(sl)).toEqual({
      metadata: { name: "web-x", namespace: "ns", labels: { "kubernetes.io/service-name": "web" } },
      addressType: "IPv4",
      endpoints: [{ addresses: ["10.244.1.5"], conditions: { ready: false }, nodeName: "n1" }, { addresses: ["10.244.1.6"], nodeName: "n2" }],
    });
  });

  test("sameObject: a status report or a resourceVersion alone is the same object; a kept field is not", () => {
    const a = trimNode({ ...node("n1", { ipv4: "192.0.2.7" }), metadata: { name: "n1", resourceVersion: "5" } });
    const beat = node("n1", { ipv4: "192.0.2.7", ready: false });
    expect(sameObject(a, trimNode({ ...beat, metadata: { name: "n1", resourceVersion: "6" } }))).toBe(true);
    expect(sameObject(a, trimNode({ ...node("n1", { ipv4: "192.0.2.8" }), metadata: { name: "n1", resourceVersion: "6" } }))).toBe(false);
    expect(sameObject(a, trimNode({ ...beat, metadata: { name: "n1", resourceVersion: "6", annotations: { "bgpctl.io/asn": "65001" } } }))).toBe(false);
    expect(sameObject(a, trimNode({ ...beat, metadata: { name: "n1", resourceVersion: "6", deletionTimestamp: "2026-01-01T00:00:00Z" } }))).toBe(false);
    const sl = endpointSlice("ns", "x", "web", "IPv4", [{ address: "10.244.1.5", nodeName: "n1" }]);
    const serving = structuredClone(sl);
    serving.endpoints![0]!.conditions!.serving = false;
    expect(sameObject(trimSlice(sl), trimSlice(serving))).toBe(true);
    const notReady = structuredClone(sl);
    notReady.endpoints![0]!.conditions!.ready = false;
    expect(sameObject(trimSlice(sl), trimSlice(notReady))).toBe(false);
  });
});
