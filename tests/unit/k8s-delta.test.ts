/**
 * Service and EndpointSlice changes applied to the last derivation
 * (lib/k8s/derive-delta.ts): through random changes (Services added, moved,
 * deleted, sharing IPs with other Services, pod CIDRs, Service ranges and the
 * file's own advertisements; slices whose endpoints become ready or not, move
 * node or Service; Nodes that change in nothing derive reads), every delta
 * gives exactly what a complete derivation over the same objects gives, and
 * names exactly the advertisements that changed. What it does not patch (this
 * node, a Node's address or AS, a Node added) asks for a complete run.
 */
import { describe, expect, test } from "bun:test";
import { parseConfig } from "../../lib/config/load.ts";
import type { AdvertiseConfig, RouterConfig } from "../../lib/config/types.ts";
import { DeriveCache, type Derived, derive } from "../../lib/k8s/derive.ts";
import { type DeriveChanges, type DeltaResult, deriveDeltaSteps, noChanges } from "../../lib/k8s/derive-delta.ts";
import { type EndpointSlice, type Node, type Service, objectKey } from "../../lib/k8s/types.ts";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";

const ME = "node-0";

function runToEnd<T>(g: Generator<void, T>): T {
  for (;;) {
    const r = g.next();
    if (r.done) return r.value;
  }
}

/** A small cluster whose objects change at random, with the change log a controller keeps. */
class World {
  nodes = new Map<string, Node>();
  services = new Map<string, Service>();
  slices = new Map<string, EndpointSlice>();
  log: DeriveChanges = noChanges();
  private seed: number;

  constructor(
    seed: number,
    readonly base: RouterConfig,
  ) {
    this.seed = seed;
    for (let i = 0; i < 6; i++) {
      const name = `node-${i}`;
      this.nodes.set(name, node(name, { ipv4: `192.0.2.${10 + i}`, podCIDRs: i === 0 ? ["10.244.0.0/24", "10.88.0.7/32"] : [`10.244.${i}.0/24`] }));
    }
    for (let i = 0; i < 60; i++) this.addService();
  }

  rnd(): number {
    this.seed = (this.seed * 1103515245 + 12345) % 2147483648;
    return this.seed / 2147483648;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rnd() * xs.length)]!;
  }

  private n = 0;
  /** A Service of a random kind, IPs from small pools (so Services share them), with 0–2 slices. */
  addService(name = `svc-${this.n++}`): void {
    const ns = this.pick(["a", "b"]);
    const type = this.pick(["ClusterIP", "LoadBalancer", "NodePort"] as const);
    const annotations: Record<string, string> = {};
    if (this.rnd() < 0.3) annotations["bgpctl.io/communities"] = this.pick(["65000:1", "65000:2,no-export", "no-export", "bogus"]);
    if (this.rnd() < 0.15) annotations["bgpctl.io/large-communities"] = this.pick(["65000:1:1", "65000:2:2"]);
    if (this.rnd() < 0.1) annotations["bgpctl.io/advertise-cluster-ip"] = this.pick(["false", "true", "maybe"]);
    const s = service(ns, name, {
      type,
      clusterIPs: [`10.96.0.${Math.floor(this.rnd() * 30)}`],
      ...(this.rnd() < 0.2 ? { externalIPs: [`198.51.100.${Math.floor(this.rnd() * 8)}`] } : {}),
      ...(type === "LoadBalancer" ? { ingress: [`10.88.0.${Math.floor(this.rnd() * 16)}`] } : {}),
      externalTrafficPolicy: this.pick(["Cluster", "Local"] as const),
      internalTrafficPolicy: this.pick(["Cluster", "Cluster", "Local"] as const),
      annotations,
    });
    this.setService(s);
    const slices = Math.floor(this.rnd() * 3);
    for (let i = 0; i < slices; i++) this.setSlice(this.slice(ns, `${name}-${i}`, name));
  }

  slice(ns: string, name: string, svc: string): EndpointSlice {
    const eps = Array.from({ length: 1 + Math.floor(this.rnd() * 3) }, (_, i) => ({
      address: `10.244.9.${i}`,
      nodeName: this.pick([ME, "node-1", "node-2"]),
      ready: this.pick([true, true, false, null] as const),
    }));
    return endpointSlice(ns, name, svc, "IPv4", eps);
  }

  setService(s: Service): void {
    this.services.set(objectKey(s), s);
    this.log.services.add(objectKey(s));
  }
  deleteService(key: string): void {
    this.services.delete(key);
    this.log.services.add(key);
  }
  setSlice(s: EndpointSlice): void {
    const key = objectKey(s);
    this.log.slices.push({ old: this.slices.get(key) ?? null, now: s });
    this.slices.set(key, s);
  }
  deleteSlice(key: string): void {
    this.log.slices.push({ old: this.slices.get(key)!, now: null });
    this.slices.delete(key);
  }
  setNode(n: Node): void {
    this.nodes.set(n.metadata.name, n);
    this.log.nodes.set(n.metadata.name, n);
  }

  /** One random change. */
  change(): void {
    const r = this.rnd();
    const keys = [...this.services.keys()];
    if (r < 0.15) this.addService();
    else if (r < 0.25 && keys.length) {
      const key = this.pick(keys);
      this.deleteService(key);
      for (const [k, s] of this.slices) if (s.metadata.namespace === key.split("/")[0] && s.metadata.labels?.["kubernetes.io/service-name"] === key.split("/")[1] && this.rnd() < 0.7) this.deleteSlice(k);
    } else if (r < 0.5 && keys.length) {
      // A Service changed: its load balancer IP moves, or its communities.
      const s = this.services.get(this.pick(keys))!;
      const next: Service = structuredClone(s);
      if (this.rnd() < 0.5 && next.spec?.type === "LoadBalancer") next.status = { loadBalancer: { ingress: [{ ip: `10.88.0.${Math.floor(this.rnd() * 16)}` }] } };
      else next.metadata.annotations = { ...(next.metadata.annotations ?? {}), "bgpctl.io/communities": this.pick(["65000:3", "65000:1", "no-export"]) };
      this.setService(next);
    } else if (r < 0.8 && this.slices.size) {
      // A slice's endpoints change (readiness, node), or it moves to another Service.
      const key = this.pick([...this.slices.keys()]);
      const s = this.slices.get(key)!;
      const svc = this.rnd() < 0.15 ? this.pick(keys).split("/")[1]! : s.metadata.labels!["kubernetes.io/service-name"]!;
      if (this.rnd() < 0.2) this.deleteSlice(key);
      else this.setSlice(this.slice(s.metadata.namespace!, s.metadata.name, svc));
    } else if (r < 0.95) {
      // Another Node's heartbeat: a new object, nothing derive reads changed.
      const n = structuredClone(this.nodes.get(this.pick(["node-1", "node-2", "node-3"]))!);
      n.status!.conditions = [{ type: "Ready", status: "True", reason: "KubeletReady", message: `heartbeat ${this.rnd()}` }];
      this.setNode(n);
    } else {
      // Something a delta does not patch: another Node's AS, or this node cordoned or not.
      if (this.rnd() < 0.5) {
        const n = structuredClone(this.nodes.get("node-4")!);
        n.metadata.annotations = { "bgpctl.io/asn": String(this.pick([65001, 65002])) };
        this.setNode(n);
      } else {
        const n = structuredClone(this.nodes.get(ME)!);
        n.spec = { ...n.spec, unschedulable: !n.spec?.unschedulable };
        this.setNode(n);
      }
    }
  }

  input() {
    return { nodeName: ME, nodes: [...this.nodes.values()], services: [...this.services.values()], slices: [...this.slices.values()], base: this.base, secrets: new Map<string, string>() };
  }
  take(): DeriveChanges {
    const l = this.log;
    this.log = noChanges();
    return l;
  }
}

const BASES: Record<string, RouterConfig> = {
  plain: parseConfig(`kubernetes:\n  nodeName: ${ME}\n  mesh: false\n`, "plain.yaml"),
  ranges: parseConfig(
    [
      "advertise:",
      "  - {prefix: 10.88.0.5/32, communities: ['65000:99']}",
      "  - {prefix: 10.200.0.0/16}",
      "kubernetes:",
      `  nodeName: ${ME}`,
      "  mesh: false",
      "  services:",
      "    loadBalancerIPRanges: [10.88.0.8/29]",
      "    externalIPs: true",
      "    requireEndpoints: true",
      "    withdrawWhenCordoned: true",
      "    communities: ['65000:10']",
    ].join("\n"),
    "ranges.yaml",
  ),
};

/** The prefixes whose advertisement object differs between two configurations (added, changed or gone). */
function changedPrefixes(before: readonly AdvertiseConfig[], after: readonly AdvertiseConfig[]): { set: string[]; remove: string[] } {
  const was = new Map(before.map((a) => [a.prefix, a]));
  const now = new Set(after.map((a) => a.prefix));
  return {
    set: after.filter((a) => was.get(a.prefix) !== a).map((a) => a.prefix).sort(),
    remove: before.filter((a) => !now.has(a.prefix)).map((a) => a.prefix).sort(),
  };
}

describe("derivation deltas", () => {
  for (const [name, base] of Object.entries(BASES)) {
    test(`${name}: 400 rounds of random changes, each delta equal to a complete derivation and naming exactly the advertisements it changed`, () => {
      for (const seed of [1, 2, 3]) {
        const w = new World(seed * 7919, base);
        const cache = new DeriveCache();
        w.take();
        let last: Derived = derive(w.input(), cache);
        let deltas = 0;
        let full = 0;
        for (let round = 0; round < 400; round++) {
          const k = 1 + Math.floor(w.rnd() * 4);
          for (let i = 0; i < k; i++) w.change();
          const changes = w.take();
          const r: DeltaResult | null = runToEnd(deriveDeltaSteps(base, ME, changes, (key) => w.services.get(key), cache));
          const want = derive(w.input());
          if (r === null) {
            full++;
            last = derive(w.input(), cache);
            expect(last).toEqual(want);
            continue;
          }
          deltas++;
          expect({ seed, round, d: r.derived }).toEqual({ seed, round, d: want });
          const c = changedPrefixes(last.config!.advertise, r.derived.config!.advertise);
          expect({ seed, round, set: r.set.map((a) => a.prefix).sort(), remove: [...r.remove].sort() }).toEqual({ seed, round, ...c });
          // What it names are the new configuration's own objects.
          const objs = new Set(r.derived.config!.advertise);
          expect(r.set.every((a) => objs.has(a))).toBe(true);
          last = r.derived;
        }
        // Most rounds are deltas; the few Node changes it does not patch took complete runs.
        expect(deltas).toBeGreaterThan(300);
        expect(full).toBeGreaterThan(0);
      }
    });
  }

  test("gives up without a complete run before it, on this node's Node, a Node added or deleted, or another Node's address", () => {
    const base = BASES.plain!;
    const w = new World(5, base);
    const cache = new DeriveCache();
    const delta = (c: DeriveChanges) => runToEnd(deriveDeltaSteps(base, ME, c, (key) => w.services.get(key), cache));
    expect(delta(noChanges())).toBeNull();
    derive(w.input(), cache);
    expect(delta(noChanges())).not.toBeNull();
    const moved = structuredClone(w.nodes.get("node-2")!);
    moved.status!.addresses = [{ type: "InternalIP", address: "192.0.2.99" }];
    const cases: [string, DeriveChanges][] = [
      ["this node", { ...noChanges(), nodes: new Map([[ME, structuredClone(w.nodes.get(ME)!)]]) }],
      ["a Node added", { ...noChanges(), nodes: new Map([["node-9", node("node-9", { ipv4: "192.0.2.50" })]]) }],
      ["a Node deleted", { ...noChanges(), nodes: new Map([["node-3", null]]) }],
      ["another Node's address", { ...noChanges(), nodes: new Map([["node-2", moved]]) }],
    ];
    for (const [what, c] of cases) expect({ what, r: delta(c) }).toEqual({ what, r: null });
    // Another Node's heartbeat (a new object, nothing derive reads changed): the last derivation itself, nothing to apply.
    const last = delta(noChanges())!.derived;
    const beat = structuredClone(w.nodes.get("node-3")!);
    beat.status!.conditions = [{ type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status (2)" }];
    const r = delta({ ...noChanges(), nodes: new Map([["node-3", beat]]) })!;
    expect(r.derived).toBe(last);
    expect([r.set, r.remove, r.drop]).toEqual([[], [], []]);
    // Another config file: the cache starts afresh, so no delta either.
    expect(runToEnd(deriveDeltaSteps(BASES.ranges!, ME, noChanges(), () => undefined, cache))).toBeNull();
  });
});
