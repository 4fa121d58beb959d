/**
 * Interop: `bgpctl watch-k8s` as a cluster of nodes. Network namespaces on
 * one LAN (192.0.2.0/24, 2001:db8::/64): "api" runs the Kubernetes API
 * emulator (tests/k8s/emulator.ts, TLS with its own CA, bearer token),
 * "tor" runs BIRD as the top-of-rack router (AS 65000), n1..n4 each run
 * `bgpctl watch-k8s` (AS 64512) and program their own namespace's kernel.
 * The test drives the cluster by writing Node, Service and EndpointSlice
 * objects to the emulator (over its unix-socket control listener) and checks
 * the result where it lands (the ToR sessions are TCP-MD5 signed with a
 * password the nodes read from a Secret): session tables (`bgpctl show neighbors -j`), the
 * nodes' kernels (`ip -j route`), BIRD's table, and `bgpctl show k8s -j`.
 *
 * The tests run in order on one cluster: each builds on the state the
 * previous one left (as a cluster evolves). Only documentation addresses,
 * only inside the lab's namespaces; every wait bounded.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { MonitorEvent, NeighborInfo } from "../../lib/api/types.ts";
import type { K8sStatus } from "../../lib/k8s/types.ts";
import { EmulatorControl } from "../k8s/emulator.ts";
import { endpointSlice, node, secret, service } from "../k8s/fixtures.ts";
import { makePki } from "../k8s/pki.ts";
import {
  BGPCTL_BIN,
  BirdInstance,
  Lab,
  type LabProcess,
  REPO_ROOT,
  bgpctlCliArgv,
  buildNetwork,
  ensureBinary,
  ensurePackages,
  run,
  which,
} from "./lab.ts";
import { sleep } from "../support/wait.ts";

const TEST_TIMEOUT = 120_000;
const WAIT = 40_000;
const TOKEN = "bgpctl-lab-token-7f3a";
const NODES = ["n1", "n2", "n3", "n4"] as const;
type NodeName = (typeof NODES)[number];
const V4: Record<NodeName, string> = { n1: "192.0.2.1", n2: "192.0.2.2", n3: "192.0.2.3", n4: "192.0.2.4" };
const V6: Record<NodeName, string> = { n1: "2001:db8::1", n2: "2001:db8::2", n3: "2001:db8::3", n4: "2001:db8::4" };
const POD4: Record<NodeName, string> = { n1: "198.51.100.16/28", n2: "198.51.100.32/28", n3: "198.51.100.48/28", n4: "198.51.100.64/28" };
const POD6: Record<NodeName, string> = { n1: "2001:db8:1:1::/64", n2: "2001:db8:1:2::/64", n3: "2001:db8:1:3::/64", n4: "2001:db8:1:4::/64" };
const TOR = "192.0.2.254";
const TOR_ROUTE = "198.51.100.240/28";
const API = "192.0.2.100";
const TOR_PASSWORD = "tor-md5-secret";

let lab: Lab;
let ns: Record<string, string>;
let ctl: EmulatorControl;
let bird: BirdInstance;
let IP = "ip";
const procs = new Map<NodeName, LabProcess>();
const sockets = new Map<NodeName, string>();
let kubeconfig = "";

function nodeObject(n: NodeName, extra: { annotations?: Record<string, string>; labels?: Record<string, string> } = {}) {
  return node(n, { ipv4: V4[n], ipv6: V6[n], podCIDRs: [POD4[n], POD6[n]], ...extra });
}

function nodeConfig(n: NodeName): string {
  const sock = lab.path(`${n}.sock`);
  sockets.set(n, sock);
  return [
    `controlSocket: ${sock}`,
    "health:",
    "  port: 9179",
    "log:",
    "  level: debug",
    "multipath:",
    "  enabled: true",
    "kubernetes:",
    "  asn: 64512",
    "  peers:",
    `    - address: ${TOR}`,
    "      remoteAs: 65000",
    "      families: [ipv4]",
    "      import: all",
    "      holdTime: 9",
    "      passwordSecret: {name: bgpctl-peers, key: tor}",
    "  services:",
    "    allowedRanges: [203.0.113.0/24]",
    "  api:",
    "    watchTimeoutSeconds: 20",
    "",
  ].join("\n");
}

function startNode(n: NodeName): LabProcess {
  const cfg = lab.path(`${n}.yaml`);
  writeFileSync(cfg, nodeConfig(n));
  const p = lab.spawn(ns[n]!, [BGPCTL_BIN, "watch-k8s", "--config", cfg, "--node-name", n, "--kubeconfig", kubeconfig], { name: n });
  procs.set(n, p);
  return p;
}

/** GET the node's health endpoint from inside its namespace: "STATUS body". */
async function health(n: NodeName, path: string): Promise<string> {
  const code = `const r = await fetch("http://127.0.0.1:9179${path}"); console.log(r.status + " " + (await r.text()).trim());`;
  const r = await lab.exec(ns[n]!, [process.execPath, "-e", code], { timeoutMs: 10_000 });
  return r.stdout.trim() || `error: ${r.stderr.trim()}`;
}

async function cliJson<T>(n: NodeName, ...sub: string[]): Promise<T> {
  const r = await run(bgpctlCliArgv(sockets.get(n)!, sub, { json: true }), { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${n}: bgpctl ${sub.join(" ")} -j: exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

const neighbors = (n: NodeName) => cliJson<NeighborInfo[]>(n, "show", "neighbors");
const k8s = (n: NodeName) => cliJson<K8sStatus>(n, "show", "k8s");

/** Established peer addresses of a node. */
async function established(n: NodeName): Promise<string[]> {
  return (await neighbors(n)).filter((x) => x.state === "Established").map((x) => x.address).sort();
}

/** The node's kernel routes of protocol bgp (186): prefix -> gateways. */
async function kernelRoutes(n: NodeName): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const fam of ["-4", "-6"]) {
    const r = await lab.exec(ns[n]!, [IP, "-j", fam, "route", "show", "proto", "186"]);
    if (r.code !== 0) throw new Error(`ip route in ${n}: ${r.stderr}`);
    for (const e of JSON.parse(r.stdout || "[]") as { dst: string; gateway?: string; nexthops?: { gateway?: string }[] }[]) {
      const dst = e.dst.includes("/") ? e.dst : `${e.dst}/${e.dst.includes(":") ? 128 : 32}`;
      const gws = e.nexthops ? e.nexthops.map((h) => h.gateway ?? "") : [e.gateway ?? ""];
      out.set(dst, gws.sort());
    }
  }
  return out;
}

/** Wait until every listed node's peers are exactly `want(n)` and Established. */
async function waitMesh(want: Partial<Record<NodeName, string[]>>, what: string): Promise<void> {
  await lab.waitFor(
    async () => {
      for (const [n, peers] of Object.entries(want) as [NodeName, string[]][]) {
        const all = (await neighbors(n)).map((x) => `${x.address}=${x.state}`).sort();
        const exp = peers.map((p) => `${p}=Established`).sort();
        if (JSON.stringify(all) !== JSON.stringify(exp)) return false;
      }
      return true;
    },
    { timeoutMs: WAIT, intervalMs: 250, what },
  );
}

function meshPeersOf(n: NodeName, members: NodeName[]): string[] {
  return [...members.filter((m) => m !== n).flatMap((m) => [V4[m], V6[m]]), TOR];
}

/** Wait until node n's kernel has exactly these pod CIDR routes (prefix -> gateway) among the lab's pod CIDRs. */
async function waitPodRoutes(n: NodeName, from: NodeName[], what: string): Promise<void> {
  const want = new Map<string, string[]>();
  for (const m of from) {
    want.set(POD4[m], [V4[m]]);
    want.set(POD6[m], [V6[m]]);
  }
  const podPrefixes = new Set(NODES.flatMap((m) => [POD4[m], POD6[m]]));
  await lab.waitFor(
    async () => {
      const k = await kernelRoutes(n);
      const have = [...k].filter(([p]) => podPrefixes.has(p));
      if (have.length !== want.size) return false;
      return have.every(([p, gws]) => JSON.stringify(gws) === JSON.stringify(want.get(p)));
    },
    { timeoutMs: WAIT, intervalMs: 250, what: `${n}: ${what}` },
  );
}

/** BIRD's paths for a prefix: the next hops (one per node that advertises it). */
async function torPaths(prefix: string): Promise<{ nextHop: string; communities: string[] }[]> {
  const routes = await bird.routes({ table: "master4" });
  return routes
    .filter((r) => r.prefix === prefix)
    .map((r) => ({ nextHop: r.nextHop ?? "", communities: r.communities }))
    .sort((a, b) => a.nextHop.localeCompare(b.nextHop));
}

async function waitTor(prefix: string, nextHops: string[], what: string): Promise<{ nextHop: string; communities: string[] }[]> {
  const want = JSON.stringify([...nextHops].sort());
  return lab.waitFor(
    async () => {
      const p = await torPaths(prefix);
      return JSON.stringify(p.map((x) => x.nextHop)) === want ? p : null;
    },
    { timeoutMs: WAIT, intervalMs: 250, what: `ToR: ${prefix} from ${nextHops.join(", ") || "nobody"} (${what})` },
  );
}

/** Lines of a node's output since index `from` that report a session of `peer` leaving Established. */
function sessionDrops(n: NodeName, peer: string, from = 0): string[] {
  return procs
    .get(n)!
    .lines.slice(from)
    .map((l) => l.text)
    .filter((t) => t.includes(peer) && /Established -> /.test(t));
}

beforeAll(async () => {
  await ensurePackages();
  await ensureBinary();
  lab = await Lab.create("k8s");
  IP = which("ip") ?? "ip";
  const members: Record<string, { ipv4?: string; ipv6?: string }> = {
    api: { ipv4: `${API}/24` },
    tor: { ipv4: `${TOR}/24`, ipv6: "2001:db8::fe/64" },
  };
  for (const n of NODES) members[n] = { ipv4: `${V4[n]}/24`, ipv6: `${V6[n]}/64` };
  const net = await buildNetwork(lab, { nodes: ["api", "tor", ...NODES], segments: [{ members }] });
  ns = net.ns;

  // The API server: TLS with a CA of our own, bearer-token auth, a short compaction window.
  const pki = makePki(lab.dir, { serverIPs: [API] });
  const unix = lab.path("apiserver.sock");
  const api = lab.spawn(
    ns.api!,
    [
      process.execPath,
      join(REPO_ROOT, "tests", "k8s", "emulator.ts"),
      "--listen",
      `${API}:6443`,
      "--cert",
      pki.paths.serverCert,
      "--key",
      pki.paths.serverKey,
      "--token",
      TOKEN,
      "--unix",
      unix,
      "--compaction",
      "100",
      "--bookmark-ms",
      "2000",
    ],
    { name: "apiserver" },
  );
  await lab.waitFor(() => api.lines.some((l) => l.text.startsWith("ready ")) || (!api.running && Promise.reject(new Error("emulator exited"))), {
    timeoutMs: 15_000,
    what: "the API emulator to listen",
    procs: [api],
  });
  ctl = new EmulatorControl(unix);
  // The ToR sessions are TCP-MD5 signed, with the password from this Secret.
  await ctl.create("secrets", secret("kube-system", "bgpctl-peers", { tor: TOR_PASSWORD }));
  kubeconfig = lab.path("kubeconfig");
  writeFileSync(
    kubeconfig,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "  - name: lab",
      "    cluster:",
      `      server: https://${API}:6443`,
      `      certificate-authority: ${pki.paths.ca}`,
      "users:",
      "  - name: node",
      "    user:",
      `      token: ${TOKEN}`,
      "contexts:",
      "  - name: lab",
      "    context: {cluster: lab, user: node}",
      "current-context: lab",
      "",
    ].join("\n"),
  );

  bird = await BirdInstance.start(lab, ns.tor!, {
    routerId: TOR,
    localAs: 65000,
    peers: NODES.map((n) => ({ name: n, neighbor: V4[n], remoteAs: 64512, families: ["ipv4" as const], export: "static" as const, extra: [`password "${TOR_PASSWORD}";`] })),
    routes: [{ prefix: TOR_ROUTE }],
  });
}, 600_000);

afterAll(async () => {
  await lab?.cleanup();
});

describe("bgpctl watch-k8s: a cluster of nodes against a Kubernetes API emulator and a BIRD top-of-rack router", () => {
  test(
    "three nodes come up from Node objects: dual-stack full mesh, each node's pod CIDRs in the other nodes' kernels, ToR routes learned",
    async () => {
      for (const n of ["n1", "n2", "n3"] as const) await ctl.create("nodes", nodeObject(n));
      for (const n of ["n1", "n2", "n3"] as const) startNode(n);
      const members: NodeName[] = ["n1", "n2", "n3"];
      await waitMesh(Object.fromEntries(members.map((n) => [n, meshPeersOf(n, members)])), "the 3-node mesh and the ToR sessions");
      for (const n of members) await waitPodRoutes(n, members.filter((m) => m !== n), "pod CIDRs of the other nodes");
      // Routes from the ToR are installed too (import: all).
      const k1 = await kernelRoutes("n1");
      expect(k1.get(TOR_ROUTE)).toEqual([TOR]);
      const s = await k8s("n1");
      expect(s.synced).toBe(true);
      expect(s.nodeFound).toBe(true);
      expect(s.role).toBe("mesh");
      expect(s.asn).toBe(64512);
      expect(s.routerId).toBe(V4.n1);
      expect(s.podCidrs.sort()).toEqual([POD4.n1, POD6.n1].sort());
      expect(s.peers.filter((p) => p.source === "mesh").map((p) => p.address).sort()).toEqual([V4.n2, V4.n3, V6.n2, V6.n3].sort());
      expect(s.peers.find((p) => p.address === TOR)?.source).toBe("config");
      // The ToR gets each node's pod CIDR from that node.
      await waitTor(POD4.n2, [V4.n2], "pod CIDR of n2");
      // The text form names the sections.
      const text = await run(bgpctlCliArgv(sockets.get("n1")!, ["show", "k8s"]), { timeoutMs: 10_000 });
      expect(text.code).toBe(0);
      expect(text.stdout).toContain("n1");
      expect(text.stdout).toContain(POD4.n1);
    },
    TEST_TIMEOUT,
  );

  test(
    "a fourth Node joins and one is deleted: mesh and kernel routes follow, no process restarts and no other session is reset",
    async () => {
      const mark = Object.fromEntries((["n1", "n2", "n3"] as const).map((n) => [n, procs.get(n)!.lines.length]));
      const pids = (["n1", "n2", "n3"] as const).map((n) => procs.get(n)!.pid);
      const upBefore = (await neighbors("n1")).find((x) => x.address === V4.n2)!.uptimeSeconds;
      const t0 = Date.now();

      // n4's daemon starts first and waits for its Node object: alive, not ready.
      startNode("n4");
      await lab.waitFor(async () => (await health("n4", "/healthz")).startsWith("200"), { timeoutMs: 10_000, what: "n4's health endpoint" });
      expect(procs.get("n4")!.running).toBe(true);
      // Not ready: first its initial lists (a moment under load), then its own Node object.
      const notReady = await lab.waitFor(async () => {
        const r = await health("n4", "/readyz");
        return r.includes("waiting for Node n4") ? r : null;
      }, { timeoutMs: 10_000, what: "n4's readyz to wait for its Node object" });
      expect(notReady).toStartWith("503");
      expect(await established("n1")).not.toContain(V4.n4);
      await ctl.create("nodes", nodeObject("n4"));
      const four: NodeName[] = ["n1", "n2", "n3", "n4"];
      await waitMesh(Object.fromEntries(four.map((n) => [n, meshPeersOf(n, four)])), "the 4-node mesh");
      expect(await health("n4", "/readyz")).toStartWith("200");
      for (const n of four) await waitPodRoutes(n, four.filter((m) => m !== n), "pod CIDRs with n4");

      // n3 is deleted: the others drop it (Cease) and its pod CIDRs leave their kernels.
      await ctl.delete("nodes", undefined, "n3");
      const three: NodeName[] = ["n1", "n2", "n4"];
      await waitMesh(Object.fromEntries(three.map((n) => [n, meshPeersOf(n, three)])), "the mesh without n3");
      for (const n of three) await waitPodRoutes(n, three.filter((m) => m !== n), "pod CIDRs without n3");
      procs.get("n3")!.signal("SIGTERM");
      expect(await procs.get("n3")!.waitExit(10_000)).toBe(true);
      expect(procs.get("n3")!.exitCode).toBe(0);

      // Nothing restarted, and the n1<->n2 sessions stayed up throughout.
      expect([procs.get("n1")!.pid, procs.get("n2")!.pid]).toEqual([pids[0]!, pids[1]!]);
      expect(procs.get("n1")!.running && procs.get("n2")!.running).toBe(true);
      for (const peer of [V4.n2, V6.n2]) expect(sessionDrops("n1", peer, mark.n1)).toEqual([]);
      for (const peer of [V4.n1, V6.n1]) expect(sessionDrops("n2", peer, mark.n2)).toEqual([]);
      const upAfter = (await neighbors("n1")).find((x) => x.address === V4.n2)!.uptimeSeconds;
      expect(upAfter).toBeGreaterThanOrEqual(upBefore + Math.floor((Date.now() - t0) / 1000) - 2);
    },
    TEST_TIMEOUT,
  );

  test(
    "a LoadBalancer Service: the ToR learns the ingress IP from every node; with externalTrafficPolicy Local only from nodes with a ready endpoint, withdrawn when it goes unready",
    async () => {
      const live: NodeName[] = ["n1", "n2", "n4"];
      await ctl.create(
        "services",
        service("default", "web", {
          type: "LoadBalancer",
          clusterIPs: ["10.96.0.10"],
          ingress: ["203.0.113.10"],
          annotations: { "bgpctl.io/communities": "65000:42" },
        }),
      );
      await ctl.create("endpointslices", endpointSlice("default", "web-abc", "web", "IPv4", [{ address: "198.51.100.17", nodeName: "n1" }]));
      const paths = await waitTor("203.0.113.10/32", live.map((n) => V4[n]), "Cluster policy: every node");
      for (const p of paths) expect(p.communities).toContain("65000:42");
      // The cluster IP is outside allowedRanges: not advertised, and show k8s says why.
      expect(await torPaths("10.96.0.10/32")).toEqual([]);
      const web = (await k8s("n2")).services.find((s) => s.name === "default/web")!;
      const cip = web.ips.find((i) => i.ip === "10.96.0.10")!;
      expect(cip.advertised).toBe(false);
      expect(cip.reason).toContain("allowedRanges");
      expect(web.ips.find((i) => i.ip === "203.0.113.10")!.advertised).toBe(true);
      // Service IPs stay out of the mesh: no node installs another node's Service route.
      expect((await kernelRoutes("n2")).has("203.0.113.10/32")).toBe(false);

      await ctl.patch("services", "default", "web", { spec: { externalTrafficPolicy: "Local" } });
      await waitTor("203.0.113.10/32", [V4.n1], "Local policy: only n1 has a ready endpoint");
      const w2 = (await k8s("n2")).services.find((s) => s.name === "default/web")!;
      expect(w2.ips.find((i) => i.ip === "203.0.113.10")!.reason).toContain("no ready endpoint on this node");

      // The endpoint goes unready: withdrawn everywhere.
      await ctl.apply("endpointslices", endpointSlice("default", "web-abc", "web", "IPv4", [{ address: "198.51.100.17", nodeName: "n1", ready: false }]));
      await waitTor("203.0.113.10/32", [], "the last ready endpoint went away");
      // Ready again on n1 and n4.
      await ctl.apply(
        "endpointslices",
        endpointSlice("default", "web-abc", "web", "IPv4", [
          { address: "198.51.100.17", nodeName: "n1" },
          { address: "198.51.100.65", nodeName: "n4" },
        ]),
      );
      await waitTor("203.0.113.10/32", [V4.n1, V4.n4], "ready endpoints on n1 and n4");
    },
    TEST_TIMEOUT,
  );

  test(
    "route reflectors by annotation: n1 reflects for clients n2 and n4, which stop peering with each other but still learn each other's pod CIDRs",
    async () => {
      const mark2 = procs.get("n2")!.lines.length;
      await ctl.patch("nodes", undefined, "n1", { metadata: { annotations: { "bgpctl.io/route-reflector": "0.0.0.1" } } });
      await ctl.patch("nodes", undefined, "n2", { metadata: { annotations: { "bgpctl.io/route-reflector-client": "0.0.0.1" } } });
      await ctl.patch("nodes", undefined, "n4", { metadata: { annotations: { "bgpctl.io/route-reflector-client": "0.0.0.1" } } });
      await waitMesh(
        {
          n1: [V4.n2, V6.n2, V4.n4, V6.n4, TOR],
          n2: [V4.n1, V6.n1, TOR],
          n4: [V4.n1, V6.n1, TOR],
        },
        "clients peer only with the reflector",
      );
      const n1peers = await neighbors("n1");
      for (const a of [V4.n2, V4.n4, V6.n2, V6.n4]) expect(n1peers.find((x) => x.address === a)!.routeReflectorClient).toBe(true);
      // Reflected: n2 reaches n4's pods via n4 itself (the next hop is kept), and the other way round.
      await waitPodRoutes("n2", ["n1", "n4"], "n4's pod CIDRs reflected by n1");
      await waitPodRoutes("n4", ["n1", "n2"], "n2's pod CIDRs reflected by n1");
      expect((await k8s("n2")).role).toBe("reflector-client");
      const s1 = await k8s("n1");
      expect(s1.role).toBe("reflector");
      expect(s1.clusterId).toBe("0.0.0.1");
      // n2's session with the reflector was not reset by becoming a client.
      expect(sessionDrops("n2", V4.n1, mark2)).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  test(
    "the API forces a relist (410 after compaction) and drops every watch mid-stream: the controller ends in the right state with no spurious withdraw",
    async () => {
      // Watch every best-route change on n1 and n2 from here on.
      const monitors = (["n1", "n2"] as const).map((n) =>
        lab.spawn(ns[n]!, bgpctlCliArgv(sockets.get(n)!, ["monitor"], { json: true }), { name: `monitor-${n}` }),
      );
      await sleep(500);
      const before = await ctl.stats();
      const relistsBefore = Object.fromEntries((await k8s("n1")).resources.map((r) => [r.resource, r.relists]));

      // Every watch is cut, and reconnecting fails (503, Retry-After 1) for a
      // while; meanwhile the objects change and the history is compacted, so
      // the nodes learn the changes only by relisting after a 410.
      await ctl.failNext(/^\/api\/v1\/(nodes|services)$|^\/apis\/discovery\.k8s\.io\/v1\/endpointslices$/, 27, 503, 1);
      const dropped = await ctl.dropWatches();
      expect(dropped).toBeGreaterThan(0);
      await ctl.create("services", service("default", "api", { type: "LoadBalancer", clusterIPs: ["10.96.0.20"], ingress: ["203.0.113.20"] }));
      await ctl.create("endpointslices", endpointSlice("default", "api-1", "api", "IPv4", [{ address: "198.51.100.18", nodeName: "n1" }]));
      await ctl.delete("services", "default", "web");
      await ctl.create(
        "services",
        service("default", "web", {
          type: "LoadBalancer",
          clusterIPs: ["10.96.0.10"],
          ingress: ["203.0.113.10"],
          externalTrafficPolicy: "Local",
          annotations: { "bgpctl.io/communities": "65000:42" },
        }),
      );
      // (the Service was deleted and re-created identical in between: what stays valid must not flap)
      await ctl.compact();

      await waitTor("203.0.113.20/32", [V4.n1, V4.n2, V4.n4], "the Service created during the outage");
      await lab.waitFor(
        async () => {
          const s = await k8s("n1");
          return s.resources.every((r) => r.synced) && s.resources.some((r) => r.relists > (relistsBefore[r.resource] ?? 0));
        },
        { timeoutMs: WAIT, what: "n1 to relist after 410" },
      );
      const after = await ctl.stats();
      expect(after.gone).toBeGreaterThan(before.gone);
      await sleep(1500);
      for (const m of monitors) m.signal("SIGINT");
      for (const m of monitors) await m.waitExit(5000);
      const events = (m: LabProcess) =>
        m.lines
          .map((l) => {
            try {
              return JSON.parse(l.text) as MonitorEvent;
            } catch {
              return null;
            }
          })
          .filter((e): e is MonitorEvent & { type: "best" } => e?.type === "best");
      // The monitors saw the change that did happen (so they were listening)...
      expect(events(monitors[0]!).some((e) => e.prefix === "203.0.113.20/32" && e.route !== null)).toBe(true);
      const withdrawn = monitors.flatMap((m) => events(m).filter((e) => e.route === null).map((e) => `${m.name}: ${e.prefix}`));
      // Nothing that stayed valid was withdrawn: the pod CIDRs, the ToR route, the web Service IP.
      expect(withdrawn).toEqual([]);
      await waitTor("203.0.113.10/32", [V4.n1, V4.n4], "web unchanged");
    },
    TEST_TIMEOUT,
  );

  test(
    "a bad annotation value is reported naming the object and ignored; the rest keeps working",
    async () => {
      const mark = procs.get("n2")!.lines.length;
      await ctl.patch("nodes", undefined, "n2", { metadata: { annotations: { "bgpctl.io/asn": "sixty-five" } } });
      await ctl.patch("services", "default", "api", { metadata: { annotations: { "bgpctl.io/communities": "65000:42, not-a-community" } } });
      await lab.waitFor(
        () =>
          procs
            .get("n2")!
            .lines.slice(mark)
            .some((l) => l.text.includes("Node/n2") && l.text.includes("bgpctl.io/asn") && l.text.includes("sixty-five")),
        { timeoutMs: WAIT, what: "n2 to log the bad bgpctl.io/asn annotation naming Node/n2" },
      );
      const s = await k8s("n1");
      const p = s.problems.find((x) => x.object === "Service/default/api" && x.field === "bgpctl.io/communities");
      expect(p?.message).toContain("not-a-community");
      // Ignored: n2 keeps AS 64512 and its sessions; the Service is still advertised.
      expect((await k8s("n2")).asn).toBe(64512);
      expect(await established("n2")).toEqual([V4.n1, V6.n1, TOR].sort());
      await waitTor("203.0.113.20/32", [V4.n1, V4.n2, V4.n4], "the api Service still advertised");
      // And a new, good object still works.
      await ctl.create("services", service("default", "dns", { clusterIPs: ["203.0.113.53"], externalIPs: ["203.0.113.54"] }));
      await ctl.create("endpointslices", endpointSlice("default", "dns-1", "dns", "IPv4", [{ address: "198.51.100.66", nodeName: "n4" }]));
      await waitTor("203.0.113.54/32", [V4.n1, V4.n2, V4.n4], "externalIP of a new Service");
      await waitTor("203.0.113.53/32", [V4.n1, V4.n2, V4.n4], "cluster IP inside allowedRanges");
    },
    TEST_TIMEOUT,
  );

  test(
    "a rolling restart of n2's daemon (SIGTERM, then a new process): graceful restart keeps n2's pod CIDR in n1's and n4's kernels and on the ToR, and the others' in n2's kernel, throughout",
    async () => {
      const watched: NodeName[] = ["n1", "n2", "n4"];
      // `ip monitor route` in each namespace: any deletion of a pod CIDR route shows up as a "Deleted" line.
      const monitors = watched.map((n) => lab.spawn(ns[n]!, [IP, "-o", "monitor", "route"], { name: `monitor-${n}` }));
      await sleep(300);
      let torMisses = 0;
      let polling = true;
      const poller = (async () => {
        for (let i = 0; polling && i < 600; i++) {
          if ((await torPaths(POD4.n2)).length === 0) torMisses++;
          await sleep(100);
        }
      })();
      try {
        const mark = procs.get("n1")!.lines.length;
        const old = procs.get("n2")!;
        old.signal("SIGTERM");
        expect(await old.waitExit(10_000)).toBe(true);
        expect(old.exitCode).toBe(0);
        expect(old.lines.some((l) => l.text.includes("stopping (graceful restart)"))).toBe(true);
        await lab.waitFor(() => procs.get("n1")!.lines.slice(mark).some((l) => l.text.includes("graceful restart (connection lost)")), {
          timeoutMs: WAIT,
          what: "n1 to keep n2's routes as stale",
        });
        const n2 = startNode("n2");
        await lab.waitFor(() => n2.lines.some((l) => l.text.includes("graceful restart: restarting")), { timeoutMs: WAIT, what: "n2 to start as a restart", procs: [n2] });
        await lab.waitFor(() => n2.lines.some((l) => l.text.includes("selection deferral ended (End-of-RIB from every graceful-restart peer)")), {
          timeoutMs: WAIT,
          what: "n2's selection deferral to end on End-of-RIB",
          procs: [n2],
        });
        await waitMesh({ n2: [V4.n1, V6.n1, TOR] }, "n2 back with n1 and the ToR");
        await waitPodRoutes("n1", ["n2", "n4"], "pod CIDRs after n2's restart");
        await waitPodRoutes("n2", ["n1", "n4"], "pod CIDRs in n2 after its restart");
        await sleep(1000);
      } finally {
        polling = false;
        await poller.catch(() => {});
      }
      for (const m of monitors) await m.stop("SIGTERM", 3000);
      const pods = new Set(NODES.flatMap((m) => [POD4[m], POD6[m]]));
      const deleted = monitors.flatMap((m, i) => m.lines.filter((l) => l.text.startsWith("Deleted") && [...pods].some((p) => l.text.includes(p))).map((l) => `${watched[i]}: ${l.text}`));
      expect(deleted).toEqual([]);
      expect(torMisses).toBe(0);
      // The stale marks are gone at n1 (End-of-RIB from the restarted n2).
      const n1n2 = (await neighbors("n1")).find((x) => x.address === V4.n2)!;
      expect(n1n2.gracefulRestart?.stale ?? null).toBeNull();
    },
    TEST_TIMEOUT,
  );
});
