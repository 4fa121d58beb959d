/**
 * Service ranges as aggregates (`kubernetes.services.clusterIPRanges`,
 * `externalIPRanges`, `loadBalancerIPRanges`): the config checks (file:line
 * errors), the derivation (every node advertises each range; a
 * Cluster-policy IP inside one gets no host route; a Local-policy IP keeps
 * its host route on nodes with ready endpoints only; IPs outside every range
 * as before; kind switches, annotations, cordon; IPv4 and IPv6), the generated
 * policies (aggregates go to external peers, never into the mesh), the status
 * and its text, and the cache (a cached run after changes equals a fresh one).
 */
import { describe, expect, test } from "bun:test";
import { emptyAttributes } from "../../lib/bgp/attributes.ts";
import { parseAddr, parsePrefix } from "../../lib/core/addr.ts";
import { ConfigError, parseConfig } from "../../lib/config/load.ts";
import type { RouterConfig } from "../../lib/config/types.ts";
import { DeriveCache, type DeriveInput, type Derived, EXTERNAL_EXPORT, MESH_EXPORT, derive } from "../../lib/k8s/derive.ts";
import { formatK8sStatus } from "../../lib/k8s/format.ts";
import type { EndpointSlice, K8sServiceIp, Node, Service } from "../../lib/k8s/types.ts";
import { applyPolicy, compilePolicies } from "../../lib/rib/policy.ts";
import { type RouteSource, makeRoute } from "../../lib/rib/types.ts";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";

const LOCAL: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: 64512, routerId: 0, ibgp: false, rrClient: false, local: true };

const y = (...lines: string[]) => lines.join("\n") + "\n";

/** A config with these lines under `kubernetes.services:`. */
function base(...services: string[]): RouterConfig {
  return parseConfig(y("kubernetes:", "  services:", ...services.map((l) => `    ${l}`)), "t.yaml");
}

function errors(text: string): string[] {
  try {
    parseConfig(text, "t.yaml");
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("expected a ConfigError");
}

const RANGES = [
  "clusterIPRanges: [10.96.0.0/12, 'fd00:96::/108']",
  "externalIPRanges: [198.51.100.0/26]",
  "loadBalancerIPRanges: [203.0.113.0/24, '2001:db8:b::/64']",
];

const N1 = node("n1", { ipv4: "192.0.2.1", ipv6: "2001:db8::1", podCIDRs: ["10.244.1.0/24"] });
const N2 = node("n2", { ipv4: "192.0.2.2", ipv6: "2001:db8::2", podCIDRs: ["10.244.2.0/24"] });

function run(o: { base: RouterConfig; services?: Service[]; slices?: EndpointSlice[]; nodes?: Node[]; nodeName?: string }, cache?: DeriveCache): Derived {
  const input: DeriveInput = {
    nodeName: o.nodeName ?? "n1",
    nodes: o.nodes ?? [N1, N2],
    services: o.services ?? [],
    slices: o.slices ?? [],
    base: o.base,
    secrets: new Map(),
  };
  return derive(input, cache);
}

const prefixes = (d: Derived) => d.config!.advertise.map((a) => a.prefix);

function ip(d: Derived, svc: string, addr: string): K8sServiceIp {
  const s = d.status.services.find((x) => x.name === svc);
  const i = s?.ips.find((x) => x.ip === addr);
  if (!i) throw new Error(`no ${addr} in ${svc}: ${JSON.stringify(s)}`);
  return i;
}

/** A dual-stack LoadBalancer Service "default/NAME" with an external IP, its endpoints on `on` nodes. */
function lbService(name: string, o: { cip: string[]; ext?: string[]; lb: string[]; etp?: "Local" | "Cluster"; itp?: "Local" | "Cluster"; annotations?: Record<string, string> }) {
  return service("default", name, {
    type: "LoadBalancer",
    clusterIPs: o.cip,
    ...(o.ext ? { externalIPs: o.ext } : {}),
    ingress: o.lb,
    ...(o.etp ? { externalTrafficPolicy: o.etp } : {}),
    ...(o.itp ? { internalTrafficPolicy: o.itp } : {}),
    ...(o.annotations ? { annotations: o.annotations } : {}),
  });
}

const eps = (svc: string, on: string[], name = `${svc}-1`) =>
  endpointSlice("default", name, svc, "IPv4", on.map((n, i) => ({ address: `10.244.9.${i + 1}`, nodeName: n })));

describe("config", () => {
  test("defaults are empty lists: today's behaviour, every Service IP a host route", () => {
    const k = parseConfig("kubernetes: {}\n", "t.yaml").kubernetes!;
    expect([k.services.clusterIPRanges, k.services.externalIPRanges, k.services.loadBalancerIPRanges]).toEqual([[], [], []]);
    const d = run({ base: parseConfig("kubernetes: {}\n", "t.yaml"), services: [lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"] })], slices: [eps("web", ["n2"])] });
    expect(prefixes(d)).toEqual(["10.96.0.10/32", "10.244.1.0/24", "203.0.113.9/32"]);
    expect(d.status.serviceRanges).toEqual([]);
    expect(ip(d, "default/web", "10.96.0.10")).toEqual({ ip: "10.96.0.10", kind: "clusterIP", advertised: true, form: "host", reason: "internalTrafficPolicy Cluster" });
  });

  test("ranges are canonical prefixes; one or a list; both families", () => {
    const k = base("clusterIPRanges: 10.96.0.0/12", "loadBalancerIPRanges: ['2001:DB8:0:0::/64', 203.0.113.0/24]").kubernetes!;
    expect(k.services.clusterIPRanges).toEqual(["10.96.0.0/12"]);
    expect(k.services.loadBalancerIPRanges).toEqual(["2001:db8::/64", "203.0.113.0/24"]);
  });

  test("bad ranges: not a prefix, host bits, default route, overlaps within and across lists, outside allowedRanges or of a family it lacks; each at its file:line", () => {
    expect(errors(y("kubernetes:", "  services:", "    clusterIPRanges: [10.96.0.1/12]"))).toEqual([
      't.yaml:3:23: kubernetes.services.clusterIPRanges[0]: expected a prefix ADDRESS/LENGTH, got "10.96.0.1/12" (host bits set; did you mean 10.96.0.0/12?)',
    ]);
    expect(errors(y("kubernetes:", "  services:", "    externalIPRanges: nope"))[0]).toStartWith("t.yaml:3:23: kubernetes.services.externalIPRanges: expected a prefix ADDRESS/LENGTH");
    expect(
      errors(
        y(
          "kubernetes:",
          "  services:",
          "    allowedRanges: [10.0.0.0/8, 203.0.113.0/24]",
          "    clusterIPRanges: [10.96.0.0/16, 10.96.1.0/24, 'fd00::/108', 0.0.0.0/0]",
          "    externalIPRanges: [10.96.0.0/12]",
          "    loadBalancerIPRanges:",
          "      - 203.0.113.0/24",
          "      - 198.51.100.0/24",
        ),
      ),
    ).toEqual([
      't.yaml:4:37: kubernetes.services.clusterIPRanges[1]: expected a Service range overlapping no other, got "10.96.1.0/24" (overlaps 10.96.0.0/16 of clusterIPRanges[0])',
      't.yaml:4:51: kubernetes.services.clusterIPRanges[2]: expected a Service range inside kubernetes.services.allowedRanges, got "fd00::/108" (allowedRanges has no IPv6 prefix)',
      't.yaml:4:65: kubernetes.services.clusterIPRanges[3]: expected a Service range, got "0.0.0.0/0" (a default route would attract all traffic to every node)',
      't.yaml:5:24: kubernetes.services.externalIPRanges[0]: expected a Service range overlapping no other, got "10.96.0.0/12" (overlaps 10.96.0.0/16 of clusterIPRanges[0]; an address may be in one range only)',
      't.yaml:8:9: kubernetes.services.loadBalancerIPRanges[1]: expected a Service range inside kubernetes.services.allowedRanges, got "198.51.100.0/24" (outside kubernetes.services.allowedRanges)',
    ]);
    // The same range twice is an overlap too.
    expect(errors(y("kubernetes:", "  services:", "    loadBalancerIPRanges: [203.0.113.0/24, 203.0.113.0/24]"))[0]).toContain("overlaps 203.0.113.0/24 of loadBalancerIPRanges[0]");
  });
});

describe("derivation", () => {
  const B = base(...RANGES);

  test("every range is advertised by every node (with the services' communities), to external peers and not into the mesh", () => {
    const b = parseConfig(
      y("kubernetes:", "  peers: [{address: 192.0.2.254, remoteAs: 65000}]", "  services:", ...[...RANGES, "communities: ['64512:100']"].map((l) => `    ${l}`)),
      "t.yaml",
    );
    for (const me of ["n1", "n2"]) {
      const d = run({ base: b, nodeName: me });
      const adv = d.config!.advertise.filter((a) => !a.prefix.startsWith("10.244."));
      expect(adv.map((a) => a.prefix)).toEqual(["10.96.0.0/12", "198.51.100.0/26", "203.0.113.0/24", "2001:db8:b::/64", "fd00:96::/108"]);
      for (const a of adv) expect(a.communities).toEqual(["64512:100"]);
      expect(d.status.serviceRanges.map((r) => [r.prefix, r.kind, r.advertised, r.reason])).toEqual([
        ["10.96.0.0/12", "clusterIP", true, "advertised by every node"],
        ["198.51.100.0/26", "externalIP", true, "advertised by every node"],
        ["203.0.113.0/24", "loadBalancerIP", true, "advertised by every node"],
        ["2001:db8:b::/64", "loadBalancerIP", true, "advertised by every node"],
        ["fd00:96::/108", "clusterIP", true, "advertised by every node"],
      ]);
      expect(d.status.originated.find((o) => o.prefix === "10.96.0.0/12")).toEqual({
        prefix: "10.96.0.0/12",
        kind: "clusterIP",
        aggregate: true,
        communities: ["64512:100"],
        largeCommunities: [],
      });
      // The generated policies: a range goes to external peers, not to mesh peers.
      const c = d.config!;
      const compiled = compilePolicies(c.policies, c.prefixLists);
      const exported = (peerAddress: string, prefix: string) => {
        const p = c.peers.find((x) => x.address === peerAddress)!;
        const route = makeRoute(parsePrefix(prefix), 0, LOCAL, emptyAttributes(), parseAddr("192.0.2.1")!.addr);
        const ctx = { direction: "export" as const, localAs: p.localAs, peerAddress, localAddress: null };
        return applyPolicy(p.export, p.remoteAs === p.localAs ? "ibgp" : "ebgp", route, ctx, compiled).accept;
      };
      const mesh = me === "n1" ? "192.0.2.2" : "192.0.2.1";
      expect(c.peers.find((x) => x.address === mesh)!.export).toEqual({ kind: "chain", names: [MESH_EXPORT] });
      expect(c.peers.find((x) => x.address === "192.0.2.254")!.export).toEqual({ kind: "chain", names: [EXTERNAL_EXPORT] });
      for (const p of ["10.96.0.0/12", "fd00:96::/108"]) {
        expect(exported("192.0.2.254", p)).toBe(true);
        expect(exported(mesh, p)).toBe(false);
      }
    }
  });

  test("Cluster-policy Service IPs inside a range get no host route; the aggregate covers them (IPv4 and IPv6, every kind)", () => {
    const s = lbService("web", { cip: ["10.96.0.10", "fd00:96::a"], ext: ["198.51.100.7"], lb: ["203.0.113.9", "2001:db8:b::9"] });
    const d = run({ base: B, services: [s], slices: [eps("web", ["n2"])] });
    expect(prefixes(d).filter((p) => p.endsWith("/32") || p.endsWith("/128"))).toEqual([]);
    expect(d.status.services[0]!.ips).toEqual([
      { ip: "10.96.0.10", kind: "clusterIP", advertised: true, form: "aggregate", range: "10.96.0.0/12", reason: "internalTrafficPolicy Cluster: covered by Service range 10.96.0.0/12" },
      { ip: "fd00:96::a", kind: "clusterIP", advertised: true, form: "aggregate", range: "fd00:96::/108", reason: "internalTrafficPolicy Cluster: covered by Service range fd00:96::/108" },
      { ip: "198.51.100.7", kind: "externalIP", advertised: true, form: "aggregate", range: "198.51.100.0/26", reason: "externalTrafficPolicy Cluster: covered by Service range 198.51.100.0/26" },
      { ip: "203.0.113.9", kind: "loadBalancerIP", advertised: true, form: "aggregate", range: "203.0.113.0/24", reason: "externalTrafficPolicy Cluster: covered by Service range 203.0.113.0/24" },
      { ip: "2001:db8:b::9", kind: "loadBalancerIP", advertised: true, form: "aggregate", range: "2001:db8:b::/64", reason: "externalTrafficPolicy Cluster: covered by Service range 2001:db8:b::/64" },
    ]);
    // requireEndpoints does not apply to a range: covered without any endpoint too.
    const none = run({ base: B, services: [s] });
    expect(ip(none, "default/web", "203.0.113.9").form).toBe("aggregate");
    expect(prefixes(none)).toContain("203.0.113.0/24");
  });

  test("Local-policy Service IPs inside a range keep their host route, only on nodes with ready endpoints", () => {
    const s = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9", "2001:db8:b::9"], etp: "Local", itp: "Local" });
    const slices = [eps("web", ["n1", "n1"])];
    const on = run({ base: B, services: [s], slices, nodeName: "n1" });
    const off = run({ base: B, services: [s], slices, nodeName: "n2" });
    expect(prefixes(on)).toContain("203.0.113.9/32");
    expect(prefixes(on)).toContain("2001:db8:b::9/128");
    expect(prefixes(on)).toContain("10.96.0.10/32");
    expect(prefixes(off).filter((p) => p.endsWith("/32") || p.endsWith("/128"))).toEqual([]);
    // ...while both nodes advertise the aggregates.
    for (const d of [on, off]) for (const p of ["10.96.0.0/12", "203.0.113.0/24", "2001:db8:b::/64"]) expect(prefixes(d)).toContain(p);
    expect(ip(on, "default/web", "203.0.113.9")).toEqual({
      ip: "203.0.113.9",
      kind: "loadBalancerIP",
      advertised: true,
      form: "host",
      range: "203.0.113.0/24",
      reason: "externalTrafficPolicy Local: 2 ready endpoints on this node (inside Service range 203.0.113.0/24; the host routes of nodes with one steer it)",
    });
    expect(ip(off, "default/web", "10.96.0.10")).toMatchObject({
      advertised: false,
      form: "none",
      range: "10.96.0.0/12",
      reason: "internalTrafficPolicy Local: no ready endpoint on this node (inside Service range 10.96.0.0/12; the host routes of nodes with one steer it)",
    });
    // The host route carries the Service's own communities, as without ranges.
    const tagged = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], etp: "Local", annotations: { "bgpctl.io/communities": "65000:42" } });
    const t = run({ base: B, services: [tagged], slices, nodeName: "n1" });
    expect(t.config!.advertise.find((a) => a.prefix === "203.0.113.9/32")!.communities).toEqual(["65000:42"]);
    expect(t.config!.advertise.find((a) => a.prefix === "203.0.113.0/24")!.communities).toEqual([]);
  });

  test("IPs outside every range of their kind are advertised as before (an IP in another kind's range too), and say so", () => {
    const s = lbService("web", { cip: ["10.112.0.1", "fd00:97::1"], ext: ["203.0.113.50"], lb: ["192.0.2.77"] });
    const d = run({ base: B, services: [s], slices: [eps("web", ["n2"])] });
    expect(prefixes(d)).toEqual(expect.arrayContaining(["10.112.0.1/32", "fd00:97::1/128", "203.0.113.50/32", "192.0.2.77/32"]));
    // 10.96.0.0/12 ends at 10.111.255.255.
    expect(ip(d, "default/web", "10.112.0.1").form).toBe("host");
    expect(ip(d, "default/web", "fd00:97::1")).toMatchObject({ form: "host", reason: "internalTrafficPolicy Cluster; outside every kubernetes.services.clusterIPRanges range" });
    expect(ip(d, "default/web", "203.0.113.50")).toMatchObject({ form: "host", reason: "externalTrafficPolicy Cluster; outside every kubernetes.services.externalIPRanges range" });
    expect(ip(d, "default/web", "192.0.2.77")).toMatchObject({ form: "host", reason: "externalTrafficPolicy Cluster; outside every kubernetes.services.loadBalancerIPRanges range" });
    expect(ip(d, "default/web", "fd00:97::1").range).toBeUndefined();
  });

  test("a kind switched off switches its ranges off; an annotation cannot take an IP out of an aggregate", () => {
    const s = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"] });
    const slices = [eps("web", ["n2"])];
    const off = run({ base: base(...RANGES, "loadBalancerIPs: false"), services: [s], slices });
    expect(prefixes(off)).not.toContain("203.0.113.0/24");
    expect(prefixes(off)).not.toContain("203.0.113.9/32");
    expect(off.status.serviceRanges.find((r) => r.prefix === "203.0.113.0/24")).toEqual({
      prefix: "203.0.113.0/24",
      kind: "loadBalancerIP",
      advertised: false,
      reason: "kubernetes.services.loadBalancerIPs false",
    });
    expect(ip(off, "default/web", "203.0.113.9")).toMatchObject({ form: "none", reason: "load balancer IPs not advertised (kubernetes.services.loadBalancerIPs false)" });
    // The annotation switching the kind on for one Service: a host route (its range is not advertised).
    const on = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], annotations: { "bgpctl.io/advertise-loadbalancer-ips": "true" } });
    const d2 = run({ base: base(...RANGES, "loadBalancerIPs: false"), services: [on], slices });
    expect(prefixes(d2)).toContain("203.0.113.9/32");
    expect(ip(d2, "default/web", "203.0.113.9").form).toBe("host");
    // An annotation switching a kind off, inside an advertised range: still covered by the aggregate.
    const no = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], annotations: { "bgpctl.io/advertise-cluster-ip": "false" } });
    const d3 = run({ base: B, services: [no], slices });
    expect(ip(d3, "default/web", "10.96.0.10")).toMatchObject({
      advertised: true,
      form: "aggregate",
      range: "10.96.0.0/12",
      reason: "cluster IPs not advertised (annotation bgpctl.io/advertise-cluster-ip): no host route, but inside Service range 10.96.0.0/12, which every node advertises",
    });
  });

  test("a cordoned node (or one excluded) withdraws its aggregates with its Service IPs", () => {
    const cordoned = node("n1", { ipv4: "192.0.2.1", podCIDRs: ["10.244.1.0/24"], unschedulable: true });
    const s = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], etp: "Local" });
    const d = run({ base: B, nodes: [cordoned, N2], services: [s], slices: [eps("web", ["n1"])] });
    expect(prefixes(d)).toEqual(["10.244.1.0/24"]);
    expect(d.status.serviceRanges.every((r) => !r.advertised && r.reason === "node is cordoned")).toBe(true);
    expect(ip(d, "default/web", "203.0.113.9")).toMatchObject({ advertised: false, form: "none", reason: "node is cordoned" });
    const kept = run({ base: base(...RANGES, "withdrawWhenCordoned: false"), nodes: [cordoned, N2], services: [s], slices: [eps("web", ["n1"])] });
    expect(prefixes(kept)).toEqual(expect.arrayContaining(["10.96.0.0/12", "203.0.113.0/24", "203.0.113.9/32"]));
    const excluded = node("n1", { ipv4: "192.0.2.1", labels: { "node.kubernetes.io/exclude-from-external-load-balancers": "" } });
    expect(prefixes(run({ base: B, nodes: [excluded, N2] }))).toEqual([]);
  });

  test("a range equal to the config file's advertisement or a pod CIDR is advertised once, as that", () => {
    const b = parseConfig(
      y("advertise:", "  - {prefix: 203.0.113.0/24, communities: ['65000:7']}", "kubernetes:", "  services:", "    loadBalancerIPRanges: [203.0.113.0/24, 10.244.1.0/24]"),
      "t.yaml",
    );
    const d = run({ base: b });
    expect(d.config!.advertise).toEqual([
      { prefix: "10.244.1.0/24", communities: [], largeCommunities: [] },
      { prefix: "203.0.113.0/24", communities: ["65000:7"], largeCommunities: [] },
    ]);
    expect(d.status.serviceRanges.map((r) => [r.prefix, r.advertised, r.reason])).toEqual([
      ["10.244.1.0/24", true, "also this node's pod CIDR; advertised as the pod CIDR"],
      ["203.0.113.0/24", true, "the config file's advertise entry for it is used"],
    ]);
    expect(d.status.originated.find((o) => o.prefix === "10.244.1.0/24")!.kind).toBe("podCIDR");
  });

  test("a /32 range and a Local Service on exactly that IP: one route, the aggregate's", () => {
    const s = lbService("one", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], etp: "Local" });
    const d = run({ base: base("loadBalancerIPRanges: [203.0.113.9/32]"), services: [s], slices: [eps("one", ["n1"])] });
    expect(prefixes(d).filter((p) => p === "203.0.113.9/32")).toHaveLength(1);
    expect(d.status.originated.find((o) => o.prefix === "203.0.113.9/32")).toMatchObject({ aggregate: true, kind: "loadBalancerIP" });
    expect(d.status.originated.find((o) => o.prefix === "203.0.113.9/32")!.service).toBeUndefined();
  });
});

describe("show k8s", () => {
  test("the Service ranges section and each IP's form", () => {
    const s = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], etp: "Local" });
    const o = lbService("out", { cip: ["fd00:97::1"], lb: ["192.0.2.77"] });
    const d = run({ base: base(...RANGES, "externalIPs: false"), services: [s, o], slices: [eps("web", ["n1"]), eps("out", ["n2"])] });
    const text = formatK8sStatus({ ...d.status, synced: true, resources: [] });
    const lines = text.split("\n");
    expect(lines).toContain("Service ranges (5):");
    expect(lines.some((l) => /^\s+PREFIX\s+KIND\s+STATE\s+REASON$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+10\.96\.0\.0\/12\s+clusterIP\s+ADVERTISED\s+advertised by every node$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+198\.51\.100\.0\/26\s+externalIP\s+withdrawn\s+kubernetes\.services\.externalIPs false$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+10\.96\.0\.0\/12\s+clusterIP\s+\(Service range\)\s+-\s+-$/.test(l))).toBe(true);
    expect(lines.some((l) => /^\s+SERVICE\s+TYPE\s+POLICY\s+READY\s+KIND\s+IP\s+FORM\s+REASON$/.test(l))).toBe(true);
    expect(lines.some((l) => /clusterIP\s+10\.96\.0\.10\s+aggregate 10\.96\.0\.0\/12\s+internalTrafficPolicy Cluster: covered by Service range 10\.96\.0\.0\/12$/.test(l))).toBe(true);
    expect(lines.some((l) => /loadBalancerIP\s+203\.0\.113\.9\s+host route\s+externalTrafficPolicy Local: 1 ready endpoint on this node \(inside/.test(l))).toBe(true);
    expect(lines.some((l) => /loadBalancerIP\s+192\.0\.2\.77\s+host route\s+externalTrafficPolicy Cluster; outside every kubernetes\.services\.loadBalancerIPRanges range$/.test(l))).toBe(true);
    const n2 = run({ base: base(...RANGES), services: [s], slices: [eps("web", ["n1"])], nodeName: "n2" });
    const t2 = formatK8sStatus({ ...n2.status, synced: true, resources: [] });
    expect(t2).toMatch(/loadBalancerIP\s+203\.0\.113\.9\s+not advertised\s+externalTrafficPolicy Local: no ready endpoint on this node/);
  });
});

describe("cache", () => {
  test("a cached run after each change equals a fresh one; an unchanged aggregate is handed over as the same object", () => {
    const b = base(...RANGES);
    const cache = new DeriveCache();
    const web = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"] });
    const slices = [eps("web", ["n1"])];
    const step = (what: string, o: Parameters<typeof run>[0]) => {
      const cached = run(o, cache);
      expect({ what, d: cached }).toEqual({ what, d: run(o) });
      return cached;
    };
    const d1 = step("start", { base: b, services: [web], slices });
    expect(prefixes(d1)).not.toContain("203.0.113.9/32");
    // The Service turns Local: its host route appears (endpoint here), the aggregate object stays the same.
    const local = lbService("web", { cip: ["10.96.0.10"], lb: ["203.0.113.9"], etp: "Local" });
    const d2 = step("Local", { base: b, services: [local], slices });
    expect(prefixes(d2)).toContain("203.0.113.9/32");
    const agg = (d: Derived) => d.config!.advertise.find((a) => a.prefix === "203.0.113.0/24")!;
    expect(agg(d2)).toBe(agg(d1));
    // Its endpoint moves away: the host route goes.
    const d3 = step("endpoint moved", { base: b, services: [local], slices: [eps("web", ["n2"])] });
    expect(prefixes(d3)).not.toContain("203.0.113.9/32");
    // Cordoned: every aggregate goes; uncordoned: they come back.
    const cordoned = node("n1", { ipv4: "192.0.2.1", ipv6: "2001:db8::1", podCIDRs: ["10.244.1.0/24"], unschedulable: true });
    const d4 = step("cordoned", { base: b, nodes: [cordoned, N2], services: [local], slices });
    expect(prefixes(d4)).toEqual(["10.244.1.0/24"]);
    const d5 = step("uncordoned", { base: b, services: [local], slices });
    expect(prefixes(d5)).toEqual(expect.arrayContaining(["10.96.0.0/12", "203.0.113.0/24", "203.0.113.9/32"]));
    // Another config (ranges off): started afresh, no aggregate left over.
    const d6 = step("no ranges", { base: parseConfig("kubernetes: {}\n", "t.yaml"), services: [local], slices });
    expect(prefixes(d6)).toEqual(["10.96.0.10/32", "10.244.1.0/24", "203.0.113.9/32"]);
  });
});
