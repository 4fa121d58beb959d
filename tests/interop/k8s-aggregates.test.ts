/**
 * Interop: Service ranges as aggregates against a real top-of-rack router.
 * Network namespaces on one LAN (192.0.2.0/24): "api" runs the Kubernetes API
 * emulator (tests/k8s/emulator.ts, plain HTTP), "tor" runs BIRD (AS 65000),
 * n1..n3 each run `bgpctl watch-k8s` (AS 64512) with
 * `kubernetes.services.clusterIPRanges: [10.96.0.0/16]` and
 * `loadBalancerIPRanges: [203.0.113.0/24]`. BIRD's table must show each range
 * with one path per node (ECMP at the top-of-rack), the /32 of a Service with
 * externalTrafficPolicy Local only from the node with its ready endpoint, and
 * no /32 of a Cluster-policy Service inside a range; a cordoned node
 * withdraws its aggregates. Only documentation addresses (10.96/16 for the
 * Service range), only inside the lab's namespaces; every wait bounded. The
 * lab's label (temp dir, process names) is "sa-k8s-aggregates"; its
 * namespaces are named by lab.ts (per process, swept when stale).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { K8sStatus } from "../../lib/k8s/types.ts";
import { EmulatorControl } from "../k8s/emulator.ts";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";
import { BGPCTL_BIN, BirdInstance, Lab, REPO_ROOT, bgpctlCliArgv, buildNetwork, ensureBinary, ensurePackages, run } from "./lab.ts";

const NODES = ["n1", "n2", "n3"] as const;
type NodeName = (typeof NODES)[number];
const V4: Record<NodeName, string> = { n1: "192.0.2.1", n2: "192.0.2.2", n3: "192.0.2.3" };
const POD4: Record<NodeName, string> = { n1: "198.51.100.16/28", n2: "198.51.100.32/28", n3: "198.51.100.48/28" };
const TOR = "192.0.2.254";
const API = "192.0.2.100";
const CLUSTER_RANGE = "10.96.0.0/16";
const LB_RANGE = "203.0.113.0/24";
const WAIT = 15_000;

let lab: Lab;
let ns: Record<string, string>;
let ctl: EmulatorControl;
let bird: BirdInstance;
const sockets = new Map<NodeName, string>();

function startNode(n: NodeName, kubeconfig: string): void {
  const sock = lab.path(`${n}.sock`);
  sockets.set(n, sock);
  const cfg = lab.path(`${n}.yaml`);
  writeFileSync(
    cfg,
    [
      `controlSocket: ${sock}`,
      "kubernetes:",
      "  asn: 64512",
      "  peers:",
      `    - {address: ${TOR}, remoteAs: 65000, families: [ipv4], holdTime: 9}`,
      "  services:",
      `    clusterIPRanges: [${CLUSTER_RANGE}]`,
      `    loadBalancerIPRanges: [${LB_RANGE}]`,
      "  api:",
      "    watchTimeoutSeconds: 20",
      "",
    ].join("\n"),
  );
  lab.spawn(ns[n]!, [BGPCTL_BIN, "watch-k8s", "--config", cfg, "--node-name", n, "--kubeconfig", kubeconfig], { name: `sa-${n}` });
}

/** BIRD's next hops for a prefix (one per node that advertises it), sorted. */
async function torNextHops(prefix: string): Promise<string[]> {
  const routes = await bird.routes({ table: "master4" });
  return routes
    .filter((r) => r.prefix === prefix)
    .map((r) => r.nextHop ?? "")
    .sort();
}

async function waitTor(prefix: string, nextHops: string[], what: string): Promise<void> {
  const want = JSON.stringify([...nextHops].sort());
  await lab.waitFor(async () => JSON.stringify(await torNextHops(prefix)) === want, {
    timeoutMs: WAIT,
    intervalMs: 200,
    what: `ToR: ${prefix} from ${nextHops.join(", ") || "nobody"} (${what})`,
  });
}

async function k8s(n: NodeName): Promise<K8sStatus> {
  const r = await run(bgpctlCliArgv(sockets.get(n)!, ["show", "k8s"], { json: true }), { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${n}: bgpctl show k8s -j: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as K8sStatus;
}

beforeAll(async () => {
  await ensurePackages();
  await ensureBinary();
  lab = await Lab.create("sa-k8s-aggregates");
  const members: Record<string, { ipv4?: string }> = { api: { ipv4: `${API}/24` }, tor: { ipv4: `${TOR}/24` } };
  for (const n of NODES) members[n] = { ipv4: `${V4[n]}/24` };
  const net = await buildNetwork(lab, { nodes: ["api", "tor", ...NODES], segments: [{ members }] });
  ns = net.ns;

  const unix = lab.path("apiserver.sock");
  const api = lab.spawn(ns.api!, [process.execPath, join(REPO_ROOT, "tests", "k8s", "emulator.ts"), "--listen", `${API}:6443`, "--unix", unix], {
    name: "sa-apiserver",
  });
  await lab.waitFor(() => api.lines.some((l) => l.text.startsWith("ready ")) || (!api.running && Promise.reject(new Error("emulator exited"))), {
    timeoutMs: 15_000,
    what: "the API emulator to listen",
    procs: [api],
  });
  ctl = new EmulatorControl(unix);
  const kubeconfig = lab.path("kubeconfig");
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nkind: Config\nclusters: [{name: lab, cluster: {server: "http://${API}:6443"}}]\nusers: [{name: node, user: {}}]\ncontexts: [{name: lab, context: {cluster: lab, user: node}}]\ncurrent-context: lab\n`,
  );
  bird = await BirdInstance.start(lab, ns.tor!, {
    routerId: TOR,
    localAs: 65000,
    peers: NODES.map((n) => ({ name: n, neighbor: V4[n], remoteAs: 64512, families: ["ipv4" as const], export: "none" as const })),
  });
  for (const n of NODES) await ctl.create("nodes", node(n, { ipv4: V4[n], podCIDRs: [POD4[n]] }));
  // web: Cluster policy, inside both ranges. local: externalTrafficPolicy Local, its endpoint on n2.
  await ctl.create("services", service("default", "web", { type: "LoadBalancer", clusterIPs: ["10.96.0.10"], ingress: ["203.0.113.10"] }));
  await ctl.create("endpointslices", endpointSlice("default", "web-1", "web", "IPv4", [{ address: "198.51.100.17", nodeName: "n1" }]));
  await ctl.create(
    "services",
    service("default", "local", { type: "LoadBalancer", clusterIPs: ["10.96.0.20"], ingress: ["203.0.113.20"], externalTrafficPolicy: "Local" }),
  );
  await ctl.create("endpointslices", endpointSlice("default", "local-1", "local", "IPv4", [{ address: "198.51.100.33", nodeName: "n2" }]));
  for (const n of NODES) startNode(n, kubeconfig);
}, 120_000);

afterAll(async () => {
  await lab?.cleanup();
});

describe("bgpctl watch-k8s: Service ranges as aggregates, seen by a BIRD top-of-rack router", () => {
  test(
    "every node advertises each range (BIRD has a path per node); a Local Service's /32 only from its endpoint's node; no /32 of a Cluster-policy Service inside a range; a cordoned node withdraws its aggregates",
    async () => {
      const all = NODES.map((n) => V4[n]);
      await waitTor(LB_RANGE, all, "the load balancer range from every node");
      await waitTor(CLUSTER_RANGE, all, "the Service CIDR from every node");
      await waitTor("203.0.113.20/32", [V4.n2], "the Local Service from n2 only");
      // BIRD, as birdc shows it: the range with a path from each node.
      const shown = await bird.command("show", "route", "for", "203.0.113.10", "all");
      for (const n of NODES) expect(shown).toContain(`via ${V4[n]}`);
      // Pod CIDRs arrived too, so the nodes' whole exports are in: the Cluster-policy Service has no /32.
      for (const n of NODES) await waitTor(POD4[n], [V4[n]], "pod CIDR");
      expect(await torNextHops("203.0.113.10/32")).toEqual([]);
      expect(await torNextHops("10.96.0.10/32")).toEqual([]);
      expect(await torNextHops("10.96.0.20/32")).toEqual([]);

      // show k8s says which form each IP takes and why.
      const s1 = await k8s("n1");
      expect(s1.serviceRanges.map((r) => [r.prefix, r.advertised])).toEqual([
        [CLUSTER_RANGE, true],
        [LB_RANGE, true],
      ]);
      const ipOf = (s: K8sStatus, svc: string, ip: string) => s.services.find((x) => x.name === svc)!.ips.find((i) => i.ip === ip)!;
      expect(ipOf(s1, "default/web", "203.0.113.10")).toMatchObject({ form: "aggregate", range: LB_RANGE });
      expect(ipOf(s1, "default/local", "203.0.113.20")).toMatchObject({ form: "none", range: LB_RANGE });
      expect(ipOf(await k8s("n2"), "default/local", "203.0.113.20")).toMatchObject({ form: "host", range: LB_RANGE });
      const text = await run(bgpctlCliArgv(sockets.get("n2")!, ["show", "k8s"]), { timeoutMs: 10_000 });
      expect(text.stdout).toMatch(/loadBalancerIP\s+203\.0\.113\.10\s+aggregate 203\.0\.113\.0\/24/);
      expect(text.stdout).toMatch(/loadBalancerIP\s+203\.0\.113\.20\s+host route\s+externalTrafficPolicy Local: 1 ready endpoint on this node/);

      // n3 is cordoned: it withdraws both aggregates; the others keep theirs.
      await ctl.patch("nodes", undefined, "n3", { spec: { unschedulable: true } });
      await waitTor(LB_RANGE, [V4.n1, V4.n2], "n3 cordoned");
      await waitTor(CLUSTER_RANGE, [V4.n1, V4.n2], "n3 cordoned");
      expect(await torNextHops(POD4.n3)).toEqual([V4.n3]);
    },
    60_000,
  );
});
