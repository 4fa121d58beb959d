/**
 * The Prometheus metrics (lib/metrics): a daemon (in-process routers on
 * loopback, as tests/unit/router.test.ts) with two peers, scraped over HTTP;
 * every line goes through a strict parser of the text exposition format
 * (tests/support/prom-text.ts), and the key series carry the values the
 * peers' sessions really had. `bgpctl show metrics` (the CLI, over the
 * control socket) prints the same series. A reload starts, moves and stops
 * the endpoint without touching the sessions, and a reload whose metrics
 * address cannot be bound is rejected, the endpoint staying where it was.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { startApiServer } from "../../lib/api/server.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { Log } from "../../lib/core/log.ts";
import { routerMetrics } from "../../lib/metrics/mod.ts";
import type { DaemonMetrics, MetricsEndpoint } from "../../lib/metrics/mod.ts";
import { Router, type RouterOptions } from "../../lib/router/router.ts";
import { ExpositionWriter, FixedHistogram, labelText } from "../../lib/metrics/exposition.ts";
import type { K8sStatus } from "../../lib/k8s/types.ts";
import { FakeKernel } from "../support/fake-kernel.ts";
import { type Family, parseExposition, sampleValue, seriesKeys } from "../support/prom-text.ts";
import { tempDirs } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

const A = "127.0.0.1";
const B = "127.0.0.2";
const C = "127.0.0.3";
const ROOT = join(import.meta.dir, "..", "..");
const dir = tempDirs("bgpctl-ops-metrics-")();
const cleanup: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** A port nothing listens on right now (the kernel's pick, released). */
function freePort(): number {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const p = s.port!;
  s.stop(true);
  return p;
}

interface Node {
  router: Router;
  file: string;
  port: number;
  metrics: DaemonMetrics;
  endpoint: MetricsEndpoint;
  socket: string;
  lines: string[];
  write(body: string): void;
}

let seq = 0;
async function node(address: string, asn: number, body: string, opts: RouterOptions = {}): Promise<Node> {
  const file = join(dir, `m${++seq}.yaml`);
  const socket = join(dir, `m${seq}.sock`);
  const head = `asn: ${asn}\nrouterId: 192.0.2.${seq}\nlisten: {address: ${address}, port: 0}\ncontrolSocket: ${socket}\n`;
  const write = (b: string) => writeFileSync(file, head + b);
  write(body);
  const lines: string[] = [];
  const config = parseConfig(head + body, file);
  const router = new Router(config, file, new Log("info", "text", (l) => lines.push(l)), opts);
  const { metrics, endpoint } = routerMetrics(router);
  const api = await startApiServer(router, socket, { metrics: () => metrics.text() });
  await router.start();
  await endpoint.start(config.metrics);
  cleanup.push(async () => {
    await router.stop();
    await api.close();
    await endpoint.close();
  });
  return { router, file, port: router.engine.listener.endpoints[0]!.port, metrics, endpoint, socket, lines, write };
}

async function established(r: Router, peer: string): Promise<void> {
  const st = () => r.neighbors().find((n) => n.address === peer)?.state;
  await waitFor(() => st() === "Established", { timeoutMs: 10_000, what: `${peer} Established`, detail: () => `state ${st()}` });
}

async function scrape(url: string): Promise<{ text: string; families: Map<string, Family>; contentType: string | null }> {
  const res = await fetch(url);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, families: parseExposition(text), contentType: res.headers.get("content-type") };
}

/** A with two eBGP peers: B sends three IPv4 prefixes, C two. */
async function lab(metricsPort: number) {
  const b = await node(B, 65002, `peers:\n  - {address: ${A}, remoteAs: 65001, passive: true, localAddress: ${B}, import: all, export: all}\nadvertise: [198.51.100.0/26, 198.51.100.64/26, 198.51.100.128/26]\n`);
  const c = await node(C, 65003, `peers:\n  - {address: ${A}, remoteAs: 65001, passive: true, localAddress: ${C}, import: all, export: all}\nadvertise: [203.0.113.0/25, 203.0.113.128/25]\n`);
  const aPeers =
    `peers:\n` +
    `  - {address: ${B}, remoteAs: 65002, port: ${b.port}, localAddress: ${A}, import: all, export: all}\n` +
    `  - {address: ${C}, remoteAs: 65003, port: ${c.port}, localAddress: ${A}, import: all, export: all}\n` +
    `advertise: [192.0.2.0/25]\n`;
  const a = await node(A, 65001, `${aPeers}metrics: {address: 127.0.0.1, port: ${metricsPort}, path: /metrics}\n`);
  await established(a.router, B);
  await established(a.router, C);
  // Every table complete: A holds its own, B's and C's prefixes; B and C hold theirs and what A passes on.
  const all = [a, b, c];
  await waitFor(() => all.every((x) => x.router.locRib.count(1) === 6), {
    timeoutMs: 10_000,
    what: "A, B and C to hold 6 IPv4 prefixes each",
    detail: () => all.map((x) => x.router.locRib.count(1)).join(", "),
  });
  return { a, b, c, aPeers };
}

describe("metrics: the Prometheus endpoint of a daemon with two peers", () => {
  test("every line parses strictly, and the key series carry the sessions' real values", async () => {
    const port = freePort();
    const { a, b, c } = await lab(port);
    const url = `http://127.0.0.1:${port}/metrics`;
    expect(a.endpoint.url).toBe(url);
    // Wait until A has seen B's and C's End-of-RIB (their UPDATE counts are final).
    await waitFor(() => a.router.peers.get(B)!.session.counters.in.update >= 2 && a.router.peers.get(C)!.session.counters.in.update >= 2, { timeoutMs: 5000, what: "End-of-RIB from B and C" });
    const { text, families, contentType } = await scrape(url);
    expect(contentType).toContain("text/plain");
    expect(contentType).toContain("version=0.0.4");

    // Conventions: the bgpctl_ prefix, _total on counters (and only there), HELP on every family.
    for (const f of families.values()) {
      expect(f.name.startsWith("bgpctl_")).toBe(true);
      expect(f.help.length).toBeGreaterThan(10);
      if (f.type === "counter") expect(f.name.endsWith("_total")).toBe(true);
      else expect(f.name.endsWith("_total")).toBe(false);
    }

    for (const [peer, n] of [
      [B, 3],
      [C, 2],
    ] as const) {
      // State: 1 for Established, 0 for the five others.
      expect(sampleValue(families, "bgpctl_peer_state", { peer, state: "Established" })).toBe(1);
      const others = families.get("bgpctl_peer_state")!.samples.filter((s) => s.labels.peer === peer && s.labels.state !== "Established");
      expect(others.map((s) => s.labels.state).sort()).toEqual(["Active", "Connect", "Idle", "OpenConfirm", "OpenSent"]);
      expect(others.every((s) => s.value === 0)).toBe(true);
      // Prefixes: what the peer sent, accepted by `import: all`; A advertises its own prefix plus the other peer's.
      expect(sampleValue(families, "bgpctl_peer_prefixes_received", { peer, family: "ipv4-unicast" })).toBe(n);
      expect(sampleValue(families, "bgpctl_peer_prefixes_received", { peer, family: "ipv6-unicast" })).toBe(0);
      expect(sampleValue(families, "bgpctl_peer_prefixes_accepted", { peer })).toBe(n);
      expect(sampleValue(families, "bgpctl_peer_prefixes_advertised", { peer, family: "ipv4-unicast" })).toBe(1 + (5 - n));
      expect(sampleValue(families, "bgpctl_peer_uptime_seconds", { peer })).toBeGreaterThanOrEqual(0);
      expect(sampleValue(families, "bgpctl_peer_established_total", { peer })).toBe(1);
      expect(sampleValue(families, "bgpctl_peer_flaps_total", { peer })).toBe(0);
      expect(sampleValue(families, "bgpctl_peer_info", { peer, remote_as: peer === B ? "65002" : "65003", local_as: "65001" })).toBe(1);
      // Messages: what the peer's side counted as sent, at least; exactly one OPEN each way.
      const remote = (peer === B ? b : c).router.peers.get(A)!.session.counters;
      const rx = (type: string) => sampleValue(families, "bgpctl_peer_messages_received_total", { peer, type })!;
      const tx = (type: string) => sampleValue(families, "bgpctl_peer_messages_sent_total", { peer, type })!;
      expect(rx("open")).toBe(1);
      expect(tx("open")).toBe(1);
      expect(rx("update")).toBe(remote.out.update); // the peer's table and End-of-RIB, all of it processed
      expect(rx("update")).toBeGreaterThanOrEqual(2);
      expect(rx("keepalive")).toBeGreaterThanOrEqual(1);
      expect(tx("keepalive")).toBeGreaterThanOrEqual(1);
      expect(tx("update")).toBeGreaterThanOrEqual(2);
      expect(rx("notification")).toBe(0);
      expect(rx("route_refresh")).toBe(0);
    }
    expect(sampleValue(families, "bgpctl_rib_prefixes", { family: "ipv4-unicast" })).toBe(6);
    expect(sampleValue(families, "bgpctl_rib_prefixes", { family: "ipv6-unicast" })).toBe(0);
    expect(sampleValue(families, "bgpctl_router_info", { router_id: a.router.config.routerId, asn: "65001" })).toBe(1);
    expect(sampleValue(families, "bgpctl_start_time_seconds")).toBeCloseTo(a.router.engine.started / 1000, 3);
    // The UPDATE histogram is process-wide: at least the UPDATEs A processed.
    const updatesIn = [B, C].reduce((s, p) => s + a.router.peers.get(p)!.session.counters.in.update, 0);
    expect(sampleValue(families, "bgpctl_update_processing_seconds_count")).toBeGreaterThanOrEqual(updatesIn);
    expect(families.get("bgpctl_update_processing_seconds")!.type).toBe("histogram");
    expect(sampleValue(families, "bgpctl_event_loop_lag_max_seconds")).toBeGreaterThanOrEqual(0);
    // Sessions and the scrape itself ran as sliced work.
    expect(sampleValue(families, "bgpctl_event_loop_turn_max_seconds")).toBeGreaterThan(0);
    expect(families.get("bgpctl_event_loop_turns_over_20ms_total")!.type).toBe("counter");
    expect(sampleValue(families, "bgpctl_event_loop_turn_max_cpu_seconds")).toBeGreaterThanOrEqual(0);
    expect(sampleValue(families, "bgpctl_event_loop_turn_max_cpu_seconds")).toBeLessThanOrEqual(sampleValue(families, "bgpctl_event_loop_turn_max_seconds")! + 0.0005);
    expect(families.get("bgpctl_event_loop_turns_over_20ms_cpu_total")!.type).toBe("counter");
    expect(sampleValue(families, "bgpctl_process_resident_memory_bytes")).toBeGreaterThan(1e6);
    // No FIB (kernel off), no Kubernetes, no BFD: those families have no series.
    for (const name of ["bgpctl_fib_routes", "bgpctl_k8s_watch_events_total", "bgpctl_bfd_session_state"]) expect(families.get(name)?.samples.length ?? 0).toBe(0);

    // Other paths 404, other methods 405; HEAD answers like GET.
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/metrics/x`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(404);
    expect((await fetch(url, { method: "POST" })).status).toBe(405);
    expect((await fetch(url, { method: "HEAD" })).status).toBe(200);

    // `bgpctl show metrics`: the same series, through the control socket.
    const proc = Bun.spawn([process.execPath, join(ROOT, "main.ts"), "show", "metrics", "-s", a.socket], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    const cli = parseExposition(out);
    expect([...cli.keys()]).toEqual([...families.keys()]);
    expect(seriesKeys(cli).sort()).toEqual(seriesKeys(families).sort());
    expect(text.length).toBeGreaterThan(1000);
  }, 30_000);

  test("a flap counts: the session back up is Established once more and one flap", async () => {
    const port = freePort();
    const { a } = await lab(port);
    a.router.peerReset(B);
    await waitFor(() => a.router.peers.get(B)!.session.counters.established === 2 && a.router.neighbors(B)[0]!.state === "Established", { timeoutMs: 15_000, what: "B re-established" });
    const { families } = await scrape(`http://127.0.0.1:${port}/metrics`);
    expect(sampleValue(families, "bgpctl_peer_established_total", { peer: B })).toBe(2);
    expect(sampleValue(families, "bgpctl_peer_flaps_total", { peer: B })).toBe(1);
    expect(sampleValue(families, "bgpctl_peer_messages_sent_total", { peer: B, type: "notification" })).toBe(1);
    expect(sampleValue(families, "bgpctl_peer_flaps_total", { peer: C })).toBe(0);
  }, 30_000);
});

describe("metrics: kernel routes, Kubernetes and BFD", () => {
  test("the FIB's routes by state and its kernel operations", async () => {
    const k = new FakeKernel();
    k.setLink({ index: 1, name: "lo", up: true });
    k.addAddress({ family: 4, ifindex: 1, address: A, prefixLength: 8 });
    const b = await node(B, 65002, `peers:\n  - {address: ${A}, remoteAs: 65001, passive: true, localAddress: ${B}, import: all, export: all}\nadvertise: [198.51.100.0/26, 198.51.100.64/26, 10.9.0.0/16]\n`);
    const port = freePort();
    const a = await node(
      A,
      65001,
      `kernel: {enabled: true, startupDeadline: 1, exclude: [10.9.0.0/16]}\npeers:\n  - {address: ${B}, remoteAs: 65002, port: ${b.port}, localAddress: ${A}, import: all, export: all}\nmetrics: {address: 127.0.0.1, port: ${port}}\n`,
      { openKernel: async () => k },
    );
    await established(a.router, B);
    await waitFor(() => k.get("198.51.100.0/26") !== undefined && k.get("198.51.100.64/26") !== undefined, { timeoutMs: 5000, what: "B's routes in the fake kernel" });
    await a.router.engine.fib!.whenIdle();
    const { families } = await scrape(`http://127.0.0.1:${port}/metrics`);
    expect(sampleValue(families, "bgpctl_fib_routes", { state: "installed" })).toBe(2);
    expect(sampleValue(families, "bgpctl_fib_routes", { state: "excluded" })).toBe(1);
    expect(sampleValue(families, "bgpctl_fib_routes", { state: "failed" })).toBe(0);
    expect(sampleValue(families, "bgpctl_fib_routes", { state: "conflict" })).toBe(0);
    expect(sampleValue(families, "bgpctl_fib_kernel_operations_total")).toBe(a.router.engine.fib!.counters.ops);
    expect(sampleValue(families, "bgpctl_fib_kernel_operations_total")).toBeGreaterThanOrEqual(2);
    expect(sampleValue(families, "bgpctl_fib_kernel_errors_total")).toBe(0);
  }, 30_000);

  test("Kubernetes reflector counters and the BFD hook", async () => {
    const resources: K8sStatus["resources"] = [
      { resource: "nodes", synced: true, objects: 3, resourceVersion: "7", lists: 2, watches: 5, relists: 1, errors: 4, lastError: "410 Gone", watchEvents: { ADDED: 3, MODIFIED: 9, DELETED: 1, BOOKMARK: 2 }, unchanged: 7 },
      { resource: "services", synced: false, objects: 0, resourceVersion: "", lists: 0, watches: 0, relists: 0, errors: 1, lastError: "forbidden" },
    ];
    const config = parseConfig(`asn: 65001\nrouterId: 192.0.2.9\nlisten: {address: ${A}, port: 0}\ncontrolSocket: ${join(dir, "k.sock")}\n`, "k.yaml");
    const router = new Router(config, null, new Log("error", "text", () => {}), { k8s: () => ({ resources, derivations: { complete: 2, delta: 31 } }) as K8sStatus });
    const { metrics } = routerMetrics(router, { bfd: () => [{ peer: B, state: "Up" }, { peer: C, state: "Down" }] });
    const families = parseExposition(await metrics.text());
    expect(sampleValue(families, "bgpctl_k8s_watch_events_total", { resource: "nodes", type: "MODIFIED" })).toBe(9);
    expect(sampleValue(families, "bgpctl_k8s_watch_events_total", { resource: "nodes", type: "BOOKMARK" })).toBe(2);
    expect(sampleValue(families, "bgpctl_k8s_relists_total", { resource: "nodes" })).toBe(1);
    expect(sampleValue(families, "bgpctl_k8s_errors_total", { resource: "services" })).toBe(1);
    expect(sampleValue(families, "bgpctl_k8s_lists_total", { resource: "nodes" })).toBe(2);
    expect(sampleValue(families, "bgpctl_k8s_watches_total", { resource: "nodes" })).toBe(5);
    expect(sampleValue(families, "bgpctl_k8s_objects", { resource: "nodes" })).toBe(3);
    expect(sampleValue(families, "bgpctl_k8s_synced", { resource: "services" })).toBe(0);
    expect(sampleValue(families, "bgpctl_k8s_derivations_total", { kind: "complete" })).toBe(2);
    expect(sampleValue(families, "bgpctl_k8s_unchanged_total", { resource: "nodes" })).toBe(7);
    expect(sampleValue(families, "bgpctl_k8s_unchanged_total", { resource: "services" })).toBe(0);
    expect(sampleValue(families, "bgpctl_k8s_derivations_total", { kind: "delta" })).toBe(31);
    expect(sampleValue(families, "bgpctl_bfd_session_state", { peer: B, state: "Up" })).toBe(1);
    expect(sampleValue(families, "bgpctl_bfd_session_state", { peer: B, state: "Down" })).toBe(0);
    expect(sampleValue(families, "bgpctl_bfd_session_state", { peer: C, state: "Down" })).toBe(1);
    // A second scrape after a change: counters follow, nothing is duplicated (the snapshot is rebuilt).
    resources[0]!.watchEvents!.ADDED = 4;
    const again = parseExposition(await metrics.text());
    expect(sampleValue(again, "bgpctl_k8s_watch_events_total", { resource: "nodes", type: "ADDED" })).toBe(4);
  });
});

describe("metrics: the daemon's BFD sessions", () => {
  test("a peer with bfd.enabled and no BFD answer: its session is exported as Down", async () => {
    const port = freePort();
    const a = await node(A, 65001, `peers:\n  - {address: ${B}, remoteAs: 65002, passive: true, localAddress: ${A}, bfd: {enabled: true}}\nmetrics: {address: 127.0.0.1, port: ${port}}\n`);
    await waitFor(() => a.router.bfdSessions().length === 1, { timeoutMs: 5000, what: "A's BFD session for B" });
    const { families } = await scrape(`http://127.0.0.1:${port}/metrics`);
    const state = a.router.bfdSessions()[0]!.state;
    expect(["Down", "Init", "AdminDown"]).toContain(state);
    expect(sampleValue(families, "bgpctl_bfd_session_state", { peer: B, state })).toBe(1);
    expect(sampleValue(families, "bgpctl_bfd_session_state", { peer: B, state: "Up" })).toBe(0);
  }, 20_000);
});

describe("metrics: reload starts, moves and stops the endpoint without touching sessions", () => {
  test("add, move, change path, bad address (rejected, stays), remove", async () => {
    const { a, aPeers } = await lab(freePort());
    const sessions = () => [B, C].map((p) => a.router.peers.get(p)!.session.counters.established);
    const before = sessions();
    const p1 = a.endpoint.url!;

    // Move to another port.
    const port2 = freePort();
    a.write(`${aPeers}metrics: {address: 127.0.0.1, port: ${port2}}\n`);
    let r = await a.router.reload();
    expect(r.changes).toContain(`metrics endpoint moved to 127.0.0.1:${port2}/metrics`);
    expect(a.endpoint.url).toBe(`http://127.0.0.1:${port2}/metrics`);
    await scrape(a.endpoint.url!);
    await expect(fetch(p1)).rejects.toThrow();

    // A new path only: no rebinding; the old path is 404 now.
    a.write(`${aPeers}metrics: {address: 127.0.0.1, port: ${port2}, path: /prom}\n`);
    r = await a.router.reload();
    expect(r.changes).toContain("metrics path /prom");
    await scrape(`http://127.0.0.1:${port2}/prom`);
    expect((await fetch(`http://127.0.0.1:${port2}/metrics`)).status).toBe(404);

    // An address that cannot be bound (not ours): rejected with one log record; the endpoint stays.
    const errorsBefore = a.lines.filter((l) => / error /.test(l)).length;
    a.write(`${aPeers}metrics: {address: 192.0.2.77, port: ${port2}}\n`);
    await expect(a.router.reload()).rejects.toThrow(/metrics endpoint: cannot listen on 192\.0\.2\.77/);
    expect(a.lines.filter((l) => / error /.test(l)).length - errorsBefore).toBe(1);
    await scrape(`http://127.0.0.1:${port2}/prom`);

    // Removed: stopped.
    a.write(aPeers);
    r = await a.router.reload();
    expect(r.changes).toContain("metrics endpoint stopped");
    expect(a.endpoint.url).toBeNull();
    await expect(fetch(`http://127.0.0.1:${port2}/prom`)).rejects.toThrow();

    // Added again.
    const port3 = freePort();
    a.write(`${aPeers}metrics: {address: 127.0.0.1, port: ${port3}}\n`);
    r = await a.router.reload();
    expect(r.changes).toContain(`metrics endpoint started on 127.0.0.1:${port3}/metrics`);
    const { families } = await scrape(`http://127.0.0.1:${port3}/metrics`);
    expect(sampleValue(families, "bgpctl_peer_state", { peer: B, state: "Established" })).toBe(1);
    // No session was reset by any of it.
    expect(sessions()).toEqual(before);
    expect([B, C].map((p) => a.router.neighbors(p)[0]!.state)).toEqual(["Established", "Established"]);
  }, 30_000);
});

describe("metrics: the exposition writer", () => {
  test("escapes label values and HELP texts as the format wants; a histogram is cumulative with +Inf = count", () => {
    const w = new ExpositionWriter();
    w.family("bgpctl_x", "gauge", "Help with \\ and\na newline.");
    w.sample("bgpctl_x", labelText([["peer", 'a"b\\c\nd']]), 1.5);
    w.sample("bgpctl_x", labelText([["peer", "inf"]]), Infinity);
    const h = new FixedHistogram("bgpctl_h_seconds", "A histogram.", [0.1, 1]);
    for (const v of [0.05, 0.1, 0.5, 2, 3]) h.observe(v);
    h.write(w);
    const text = w.finish().join("");
    const f = parseExposition(text);
    expect(f.get("bgpctl_x")!.help).toBe("Help with \\ and\na newline.");
    expect(f.get("bgpctl_x")!.samples.map((x) => x.labels.peer)).toEqual(['a"b\\c\nd', "inf"]);
    expect(sampleValue(f, "bgpctl_x", { peer: "inf" })).toBe(Infinity);
    expect(sampleValue(f, "bgpctl_h_seconds_bucket", { le: "0.1" })).toBe(2);
    expect(sampleValue(f, "bgpctl_h_seconds_bucket", { le: "1" })).toBe(3);
    expect(sampleValue(f, "bgpctl_h_seconds_bucket", { le: "+Inf" })).toBe(5);
    expect(sampleValue(f, "bgpctl_h_seconds_count")).toBe(5);
    expect(sampleValue(f, "bgpctl_h_seconds_sum")).toBeCloseTo(5.65, 10);
    expect(() => new FixedHistogram("bgpctl_bad", "x", [1, 1])).toThrow(/ascend/);
  });

  test("a scrape of 2,000 neighbours runs in slices: timers fire while it is written", async () => {
    let peers = "peers:\n";
    for (let i = 0; i < 2000; i++) peers += `  - {address: 198.51.${100 + (i >> 8)}.${i & 255}, remoteAs: 65002, passive: true, import: all, export: all}\n`;
    const config = parseConfig(`asn: 65001\nrouterId: 192.0.2.9\nlisten: {address: ${A}, port: 0}\ncontrolSocket: ${join(dir, "big.sock")}\n${peers}`, "big.yaml");
    const router = new Router(config, null, new Log("error", "text", () => {}));
    const { metrics } = routerMetrics(router);
    await router.start();
    cleanup.push(() => router.stop());
    let ticks = 0;
    let done = false;
    const tick = () => {
      ticks++;
      if (!done) setTimeout(tick, 0);
    };
    setTimeout(tick, 0);
    const text = await metrics.text();
    done = true;
    const f = parseExposition(text);
    expect(f.get("bgpctl_peer_state")!.samples).toHaveLength(2000 * 6);
    const last = f.get("bgpctl_peer_state")!.samples.filter((x) => x.labels.peer === "198.51.107.207");
    expect(last.map((x) => x.value).reduce((a, b) => a + b)).toBe(1); // one current state (a passive peer waits in Active)
    expect(last.find((x) => x.value === 1)!.labels.state).toBe(router.neighbors("198.51.107.207")[0]!.state);
    expect(ticks).toBeGreaterThan(1);
  }, 30_000);
});

describe("metrics: the strict exposition parser rejects what Prometheus would", () => {
  const ok = "# HELP x_total A counter.\n# TYPE x_total counter\nx_total{a=\"q\\\"\\\\\\n\"} 1\n";
  test("a valid exposition parses, escapes included", () => {
    const f = parseExposition(ok);
    expect(f.get("x_total")!.samples[0]!.labels.a).toBe('q"\\\n');
  });
  test.each([
    ["no final newline", ok.slice(0, -1)],
    ["sample without TYPE", "y 1\n"],
    ["duplicate series", `${ok}x_total{a="q\\"\\\\\\n"} 2\n`],
    ["bad escape", '# TYPE x gauge\nx{a="\\t"} 1\n'],
    ["bad name", "# TYPE 1x gauge\n"],
    ["bad value", "# TYPE x gauge\nx 1,5\n"],
    ["negative counter", "# TYPE x_total counter\nx_total -1\n"],
    ["second TYPE", "# TYPE x gauge\n# TYPE x gauge\n"],
    ["non-contiguous", "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 1\n"],
    ["trailing comma", '# TYPE x gauge\nx{a="b",} 1\n'],
    ["histogram +Inf != count", '# TYPE h histogram\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n'],
    ["histogram not cumulative", '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n'],
  ])("%s", (_what, text) => {
    expect(() => parseExposition(text)).toThrow();
  });
});
