/**
 * `bgpctl run` under systemd's notification protocol, with this test playing
 * systemd: the compiled binary (BGPCTL_BIN, else dist/bgpctl) is started with
 * NOTIFY_SOCKET (a socket of tests/support/notify-socket.ts), WATCHDOG_USEC
 * and WATCHDOG_PID (its own pid: `sh -c 'WATCHDOG_PID=$$ exec bgpctl ...'`),
 * and every message is checked: READY=1 only once the BGP listener accepts
 * connections (and the metrics endpoint answers), with a STATUS= line;
 * WATCHDOG=1 at WATCHDOG_USEC/2; RELOADING=1 with MONOTONIC_USEC= then
 * READY=1 around a reload, by SIGHUP or `bgpctl reload` (also a rejected one, which is one log
 * record); STOPPING=1 on SIGTERM, and exit 0. And `bgpctl watch-k8s`
 * against the API emulator in a network namespace of its own (`ops-` names):
 * STATUS= while it waits for its Node, READY=1 once the router runs (the
 * Node created then), its metrics endpoint with the Kubernetes series.
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";
import { withEmulatorNamespace } from "../support/emulator-ns.ts";
import { NotifySocket, type NotifyMessage } from "../support/notify-socket.ts";
import { parseExposition, sampleValue } from "../support/prom-text.ts";
import { tempDirs } from "../support/tmp.ts";
import { sleep, waitFor } from "../support/wait.ts";

const root = join(import.meta.dir, "..", "..");
const BIN = process.env.BGPCTL_BIN ?? join(root, "dist/bgpctl");
const dir = tempDirs("bgpctl-ops-sdnotify-e2e-")();
const cleanup: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanup.splice(0)) c();
});

/** A TCP port free right now on 127.0.0.1 (the kernel's pick, released). */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host: "127.0.0.1", port });
    c.once("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.once("error", () => resolve(false));
  });
}

test("READY after the listeners are up, STATUS, WATCHDOG cadence, RELOADING/READY on SIGHUP, STOPPING on SIGTERM", async () => {
  if (!existsSync(BIN)) throw new Error(`bgpctl binary ${BIN} not found: run \`npm run build\` or set BGPCTL_BIN`);
  const bgpPort = await freePort();
  const metricsPort = await freePort();
  const file = join(dir, "config.yaml");
  const head =
    `asn: 65001\nrouterId: 192.0.2.1\nlisten: {address: 127.0.0.1, port: ${bgpPort}}\ncontrolSocket: ${join(dir, "ctl.sock")}\n` +
    `metrics: {address: 127.0.0.1, port: ${metricsPort}}\n` +
    `peers:\n  - {address: 127.0.0.2, remoteAs: 65002, passive: true, import: all, export: all}\n`;
  writeFileSync(file, `${head}advertise: [198.51.100.0/24]\n`);
  const sock = await NotifySocket.open(join(dir, "notify.sock"));
  cleanup.push(() => sock.close());
  const logFile = join(dir, "daemon.log");
  const proc = Bun.spawn(["sh", "-c", 'WATCHDOG_PID=$$ exec "$0" run --config "$1"', BIN, file], {
    env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: "400000" },
    stdout: "ignore",
    stderr: Bun.file(logFile),
  });
  cleanup.push(() => proc.kill("SIGKILL"));
  const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");

  // READY=1: by then the BGP port accepts connections and the metrics endpoint answers.
  const ready = await sock.next((m) => m.fields.READY === "1", "READY=1", 0, 20_000);
  expect(await connects(bgpPort)).toBe(true);
  expect((await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).status).toBe(200);
  expect(ready.msg.fields.STATUS).toBe("0/1 peers established, 1 routes");
  // Nothing but watchdog pings may come before it (and none of those before READY either).
  expect(sock.messages.slice(0, ready.index)).toEqual([]);

  // WATCHDOG=1 every 200 ms (WATCHDOG_PID named the daemon itself).
  await sleep(1300);
  const pings = sock.messages.filter((m) => m.fields.WATCHDOG === "1");
  expect(pings.length).toBeGreaterThanOrEqual(4);
  expect(pings.length).toBeLessThanOrEqual(9);
  const gaps = pings.slice(1).map((p, i) => (p.at - pings[i]!.at) / 1000).sort((a, b) => a - b);
  const median = gaps[Math.floor(gaps.length / 2)]!;
  expect(median).toBeGreaterThan(150);
  expect(median).toBeLessThan(260);

  // SIGHUP with one more prefix: RELOADING=1 + MONOTONIC_USEC, then READY=1 with the new status.
  writeFileSync(file, `${head}advertise: [198.51.100.0/24, 203.0.113.0/24]\n`);
  let from = sock.messages.length;
  proc.kill("SIGHUP");
  const reloading = await sock.next((m) => m.fields.RELOADING === "1", "RELOADING=1", from);
  const mono = Number(reloading.msg.fields.MONOTONIC_USEC);
  expect(mono).toBeLessThanOrEqual(reloading.msg.at);
  expect(reloading.msg.at - mono).toBeLessThan(2_000_000);
  const reloaded = await sock.next((m) => m.fields.READY === "1", "READY=1 after the reload", reloading.index + 1);
  expect(reloaded.msg.fields.STATUS).toBe("0/1 peers established, 2 routes");

  // A file with two errors: rejected (one log record), READY=1 again, STATUS says so.
  writeFileSync(file, `${head}advertise: [198.51.100.0/24, 203.0.113.0/24]\nmrai: -1\nbogus: 1\n`);
  from = sock.messages.length;
  proc.kill("SIGHUP");
  const r2 = await sock.next((m) => m.fields.RELOADING === "1", "RELOADING=1 (bad file)", from);
  const back = await sock.next((m) => m.fields.READY === "1", "READY=1 after the rejected reload", r2.index + 1);
  expect(back.msg.fields.STATUS).toMatch(/^reload rejected \(.*config\.yaml:\d+:\d+: .*\), running configuration kept; 0\/1 peers established, 2 routes$/);
  await waitFor(() => log().includes("reload rejected"), { timeoutMs: 5000, what: "the rejection in the log", detail: log });
  const rejectedLines = log()
    .split("\n")
    .filter((l) => l.includes("reload rejected"));
  expect(rejectedLines).toHaveLength(1);
  // One record: both errors on the one line, none on lines of their own.
  expect(rejectedLines[0]).toMatch(/mrai/);
  expect(rejectedLines[0]).toMatch(/bogus/);
  expect(log().split("\n").filter((l) => l.startsWith(file) || /^\S+\.yaml:\d+/.test(l))).toEqual([]);

  // `bgpctl reload` over the control socket: the same RELOADING=1 … READY=1.
  writeFileSync(file, `${head}advertise: [198.51.100.0/24]\n`);
  from = sock.messages.length;
  const ctl = Bun.spawnSync([BIN, "reload", "-s", join(dir, "ctl.sock")], { stdout: "pipe", stderr: "pipe" });
  expect(ctl.exitCode).toBe(0);
  const r3 = await sock.next((m) => m.fields.RELOADING === "1", "RELOADING=1 (bgpctl reload)", from);
  const ready3 = await sock.next((m) => m.fields.READY === "1", "READY=1 after bgpctl reload", r3.index + 1);
  expect(ready3.msg.fields.STATUS).toBe("0/1 peers established, 1 routes");

  // SIGTERM: STOPPING=1, then a clean exit.
  from = sock.messages.length;
  proc.kill("SIGTERM");
  const stopping = await sock.next((m: NotifyMessage) => m.fields.STOPPING === "1", "STOPPING=1", from);
  expect(stopping.msg.fields.STATUS).toBe("stopping: closing sessions");
  expect(await proc.exited).toBe(0);
  expect(sock.messages.slice(stopping.index + 1).filter((m) => "WATCHDOG" in m.fields)).toEqual([]);
}, 60_000);

test("watch-k8s: STATUS while waiting for its Node, READY=1 once the router runs, Kubernetes metrics, STOPPING=1", async () => {
  if (!existsSync(BIN)) throw new Error(`bgpctl binary ${BIN} not found: run \`npm run build\` or set BGPCTL_BIN`);
  if (process.getuid?.() !== 0) throw new Error("this test needs root: it runs watch-k8s and the API emulator in a network namespace of its own");
  await withEmulatorNamespace(`ops-sd${process.pid}`, dir, async ({ ns, ctl, kubeconfig, procs: local, sh }) => {
    await ctl.create("services", service("default", "web", { clusterIPs: ["10.96.0.10"], externalIPs: ["203.0.113.10"] }));
    await ctl.create("endpointslices", endpointSlice("default", "web-1", "web", "IPv4", [{ address: "10.244.1.5", nodeName: "n1" }]));
    const file = join(dir, "k8s.yaml");
    writeFileSync(file, `kubernetes: {kubeconfig: ${kubeconfig}, nodeName: n1, asn: 65010}\nmetrics: {address: 127.0.0.1, port: 19180}\ncontrolSocket: ${join(dir, "k8s.sock")}\n`);
    // A socket file works across network namespaces (an abstract one would not).
    const sock = await NotifySocket.open(join(dir, "k8s-notify.sock"));
    cleanup.push(() => sock.close());
    const logFile = join(dir, "watch-k8s.log");
    const daemon = Bun.spawn(["ip", "netns", "exec", ns, BIN, "watch-k8s", "--config", file], {
      stdout: "ignore",
      stderr: Bun.file(logFile),
      env: { ...process.env, NOTIFY_SOCKET: sock.path },
    });
    local.push(daemon);
    const log = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "");
    // No Node n1 yet: a status line, no READY.
    const waiting = await sock.next((m) => m.fields.STATUS !== undefined, "a STATUS= line while waiting", 0, 20_000);
    expect(waiting.msg.fields.STATUS).toContain("waiting");
    await sleep(1500);
    expect(sock.messages.some((m) => "READY" in m.fields)).toBe(false);
    await ctl.create("nodes", node("n1", { ipv4: "192.0.2.11", podCIDRs: ["10.244.1.0/24"] }));
    const ready = await sock.next((m) => m.fields.READY === "1", "READY=1 once the router runs", 0, 30_000);
    expect(ready.msg.fields.STATUS).toMatch(/^0\/0 peers established, \d+ routes$/);
    // The metrics endpoint (inside the namespace) has the reflectors' series.
    const code = 'const r = await fetch("http://127.0.0.1:19180/metrics"); process.stdout.write(await r.text());';
    const families = parseExposition(sh(["ip", "netns", "exec", ns, process.execPath, "-e", code]));
    expect(sampleValue(families, "bgpctl_k8s_synced", { resource: "nodes" })).toBe(1);
    expect(sampleValue(families, "bgpctl_k8s_lists_total", { resource: "services" })).toBeGreaterThanOrEqual(1);
    expect(sampleValue(families, "bgpctl_k8s_watch_events_total", { resource: "nodes", type: "ADDED" })).toBe(1);
    const from = sock.messages.length;
    daemon.kill("SIGTERM");
    await sock.next((m) => m.fields.STOPPING === "1", "STOPPING=1", from);
    expect(await Promise.race([daemon.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
    expect(log()).not.toContain(" error ");
  });
}, 90_000);
