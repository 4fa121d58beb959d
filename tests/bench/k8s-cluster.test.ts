/**
 * The k8s benchmark's cluster model (tests/bench/k8s-cluster.ts) against
 * watch-k8s's own derivation (lib/k8s/derive.ts): the prefixes the scenario
 * waits for, computed from the README's rules, must be exactly what the
 * node originates for the same objects; and every timed change must
 * announce a prefix the node does not have yet (and withdraw one it has),
 * or the latency measurement would time nothing.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config/load.ts";
import { derive } from "../../lib/k8s/derive.ts";
import type { EndpointSlice, Node, Service } from "../../lib/k8s/types.ts";
import { BENCH_NODE, changes, checkSize, clusterObjects, expectedPrefixes } from "./k8s-cluster.ts";

const SIZE = { nodes: 40, services: 1200 };
const CONFIG = `controlSocket: /nonexistent/bench.sock\nkubernetes:\n  nodeName: ${BENCH_NODE}\n  mesh: false\n  peers:\n    - {address: 192.0.2.100, remoteAs: 65003, import: none}\n`;

function cluster(extra: { services: Service[]; slices: EndpointSlice[] } = { services: [], slices: [] }) {
  const nodes: Node[] = [];
  const services: Service[] = [...extra.services];
  const slices: EndpointSlice[] = [...extra.slices];
  for (const { resource, object } of clusterObjects(SIZE, "192.0.2.1")) {
    if (resource === "nodes") nodes.push(object as Node);
    else if (resource === "services") services.push(object as Service);
    else slices.push(object as EndpointSlice);
  }
  return { nodes, services, slices };
}

function originated(c: ReturnType<typeof cluster>): Set<string> {
  const d = derive({ nodeName: BENCH_NODE, ...c, base: parseConfig(CONFIG, "bench.yaml"), secrets: new Map() });
  if (!d.config) throw new Error(`derive gave no config: ${JSON.stringify(d.status.problems)}`);
  return new Set(d.config.advertise.map((a) => a.prefix));
}

describe("k8s benchmark cluster model", () => {
  test("the expected prefixes are exactly what watch-k8s derives for the generated cluster, with every kind of Service IP present", () => {
    const want = expectedPrefixes(SIZE);
    expect([...originated(cluster())].sort()).toEqual([...want].sort());
    // Cluster IPs, LoadBalancer ingress IPs and external IPs all count, and some Services are left out by the rules.
    for (const range of ["10.96.", "10.80.", "10.64."]) expect([...want].some((p) => p.startsWith(range))).toBe(true);
    expect(want.size).toBeLessThan(1 + SIZE.services * 1.25);
  });

  test("each change announces a prefix not yet originated (and withdraws one that is); applied, they give the expected final set", () => {
    const plan = changes(SIZE, 20);
    const before = expectedPrefixes(SIZE);
    for (const c of plan) {
      expect(before.has(c.announce)).toBe(false);
      if (c.withdraw) expect(before.has(c.withdraw)).toBe(true);
    }
    // Apply the writes to the object lists as the emulator would (creates, and merge patches of the ingress).
    const c = cluster();
    for (const ch of plan) {
      for (const w of ch.writes) {
        if (w.op === "create") (w.resource === "services" ? c.services : c.slices).push(w.object as never);
        else {
          const s = c.services.find((x) => x.metadata.namespace === w.namespace && x.metadata.name === w.name)!;
          s.status = (w.patch as { status: Service["status"] }).status;
        }
      }
    }
    const after = originated(c);
    const want = new Set(before);
    for (const ch of plan) {
      want.add(ch.announce);
      if (ch.withdraw) want.delete(ch.withdraw);
    }
    expect([...after].sort()).toEqual([...want].sort());
  });

  test("bad sizes and too many changes are refused with a message naming the limit", () => {
    expect(() => checkSize({ nodes: 0, services: 10 })).toThrow("nodes must be 1..32768, got 0");
    expect(() => changes({ nodes: 10, services: 16 }, 10)).toThrow("10 changes need 5 Cluster-policy LoadBalancers with endpoints, the cluster of 16 Services has");
  });
});
