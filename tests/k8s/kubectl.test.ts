/**
 * Cross-check of the Kubernetes API emulator (tests/k8s/emulator.ts) with a
 * real client: kubectl, over TLS with a bearer token, through a kubeconfig
 * that trusts the test CA. Lists (JSON and the plain table fallback), watches
 * (`get --watch -o json` sees objects created and changed after it started)
 * and a wrong token failing with Unauthorized.
 *
 * kubectl comes from PATH (`$KUBECTL` overrides); when missing and running as
 * root, Debian's `kubernetes-client` package is installed with apt-get. The
 * test fails, never skips, when kubectl cannot be had. Traffic stays on
 * 127.0.0.1; every process is bounded in time and killed by its own PID.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { KubeEmulator } from "./emulator.ts";
import { node, service } from "./fixtures.ts";
import { makePki } from "./pki.ts";
import { waitFor } from "../support/wait.ts";

const SEARCH_PATH = [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"].join(":");
const TOKEN = "kubectl-test-token";

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Run a command with a hard timeout (SIGKILL of its own PID). */
async function exec(argv: string[], timeoutMs: number, env: Record<string, string> = {}): Promise<Exec> {
  const proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: { ...process.env, PATH: SEARCH_PATH, ...env } });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(proc.pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code: timedOut ? null : code, stdout, stderr, timedOut };
  } finally {
    clearTimeout(timer);
  }
}

/** kubectl's path; installs Debian's kubernetes-client as root when missing. Throws (never skips) when it cannot. */
async function ensureKubectl(): Promise<string> {
  const override = process.env.KUBECTL;
  if (override) {
    if (!existsSync(override)) throw new Error(`kubectl test: $KUBECTL=${override} does not exist`);
    return override;
  }
  const find = () => Bun.which("kubectl", { PATH: SEARCH_PATH });
  let k = find();
  if (k) return k;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) {
    throw new Error("kubectl test: kubectl not found and not running as root, so it cannot be installed. Install it with: apt-get install -y kubernetes-client");
  }
  const apt = Bun.which("apt-get", { PATH: SEARCH_PATH });
  if (!apt) throw new Error("kubectl test: kubectl not found and apt-get is not available to install kubernetes-client");
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = () => exec([apt, "install", "-y", "--no-install-recommends", "kubernetes-client"], 300_000, env);
  let r = await install();
  if (r.code !== 0) {
    const upd = await exec([apt, "update"], 300_000, env);
    if (upd.code !== 0) throw new Error(`kubectl test: apt-get update failed (exit ${upd.code}):\n${upd.stderr.slice(-3000)}`);
    r = await install();
  }
  k = find();
  if (!k) {
    throw new Error(
      `kubectl test: could not install kubernetes-client (apt-get exit ${r.code}${r.timedOut ? ", timed out" : ""}):\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-3000)}`,
    );
  }
  return k;
}

let kubectl = "";
let emu: KubeEmulator;
const dir = mkdtempSync(join(tmpdir(), "bgpctl-kubectl-"));
let kubeconfig = "";
const running = new Set<Subprocess>();

function writeKubeconfig(path: string, server: string, caPem: string, token: string): void {
  writeFileSync(
    path,
    [
      "apiVersion: v1",
      "kind: Config",
      "clusters:",
      "- name: emulator",
      "  cluster:",
      `    server: ${server}`,
      `    certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
      "users:",
      "- name: tester",
      "  user:",
      `    token: ${token}`,
      "contexts:",
      "- name: emulator",
      "  context:",
      "    cluster: emulator",
      "    user: tester",
      "current-context: emulator",
      "",
    ].join("\n"),
  );
}

function kubectlArgs(args: string[], config = kubeconfig, requestTimeout = "10s"): string[] {
  return [kubectl, "--kubeconfig", config, "--cache-dir", join(dir, "cache"), "--request-timeout", requestTimeout, ...args];
}

async function k(args: string[], config = kubeconfig): Promise<Exec> {
  const r = await exec(kubectlArgs(args, config), 20_000);
  if (r.timedOut) throw new Error(`kubectl ${args.join(" ")} timed out; stderr: ${r.stderr.slice(-2000)}`);
  return r;
}

async function kOk(args: string[]): Promise<string> {
  const r = await k(args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")} failed (exit ${r.code}):\n${r.stderr.slice(-3000)}`);
  return r.stdout;
}

/** `kubectl get ... --watch -o json`, its stdout collected as it comes. */
function spawnWatch(args: string[]): { proc: Subprocess; out: () => string; err: () => string; stop: () => void } {
  const proc = Bun.spawn(kubectlArgs([...args, "--watch", "-o", "json"], kubeconfig, "60s"), {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PATH: SEARCH_PATH },
  });
  running.add(proc);
  let out = "";
  let err = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of proc.stdout) out += dec.decode(c, { stream: true });
  })();
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of proc.stderr) err += dec.decode(c, { stream: true });
  })();
  return {
    proc,
    out: () => out,
    err: () => err,
    stop: () => {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, "SIGKILL");
      running.delete(proc);
    },
  };
}

beforeAll(async () => {
  kubectl = await ensureKubectl();
  const pki = makePki(join(dir, "pki"), { serverIPs: ["127.0.0.1"] });
  emu = await KubeEmulator.start({ tls: { cert: pki.serverCert, key: pki.serverKey }, tokens: [TOKEN] });
  kubeconfig = join(dir, "kubeconfig");
  writeKubeconfig(kubeconfig, emu.url, pki.caCert, TOKEN);
  writeKubeconfig(join(dir, "kubeconfig-wrong"), emu.url, pki.caCert, "not-the-token");
  emu.create("nodes", node("node-a", { ipv4: "192.0.2.11", podCIDRs: ["10.244.1.0/24"] }));
  emu.create("nodes", node("node-b", { ipv4: "192.0.2.12", podCIDRs: ["10.244.2.0/24"] }));
  emu.create("services", service("default", "web", { clusterIPs: ["10.96.0.10"] }));
  emu.create("services", service("kube-system", "dns", { clusterIPs: ["10.96.0.53"] }));
}, 660_000);

afterAll(async () => {
  for (const p of running) {
    if (p.exitCode === null && p.signalCode === null) process.kill(p.pid, "SIGKILL");
  }
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("kubectl against the emulator", () => {
  test("get nodes -o json lists the nodes", async () => {
    const list = JSON.parse(await kOk(["get", "nodes", "-o", "json"]));
    expect(list.items.map((n: any) => n.metadata.name)).toEqual(["node-a", "node-b"]);
    expect(list.items[0].kind).toBe("Node");
    expect(list.items[0].spec.podCIDRs).toEqual(["10.244.1.0/24"]);
    expect(list.items[1].status.addresses).toContainEqual({ type: "InternalIP", address: "192.0.2.12" });
  });

  test("get nodes --chunk-size=1 pages through continue tokens", async () => {
    const lists = emu.stats.lists;
    const list = JSON.parse(await kOk(["get", "nodes", "-o", "json", "--chunk-size=1"]));
    expect(list.items.map((n: any) => n.metadata.name)).toEqual(["node-a", "node-b"]);
    expect(emu.stats.lists - lists).toBe(2);
  });

  test("get services -A -o json lists services of every namespace", async () => {
    const list = JSON.parse(await kOk(["get", "services", "-A", "-o", "json"]));
    expect(list.items.map((s: any) => `${s.metadata.namespace}/${s.metadata.name}`)).toEqual(["default/web", "kube-system/dns"]);
    expect(list.items[0].spec.clusterIP).toBe("10.96.0.10");
    // Short names from discovery work too.
    const one = JSON.parse(await kOk(["get", "svc", "-n", "kube-system", "dns", "-o", "json"]));
    expect(one.metadata.name).toBe("dns");
  });

  test("get nodes (human output, plain-list fallback) names them", async () => {
    const out = await kOk(["get", "nodes"]);
    const lines = out.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["node-a", "node-b"]);
  });

  test("get nodes --watch -o json prints nodes created and changed after it started", async () => {
    const before = emu.stats.watches;
    const w = spawnWatch(["get", "nodes"]);
    try {
      const detail = () => `stdout:\n${w.out().slice(-3000)}\nstderr:\n${w.err().slice(-3000)}`;
      await waitFor(() => w.out().includes('"node-b"'), { timeoutMs: 10_000, what: "the initial list", intervalMs: 25, detail });
      await waitFor(() => emu.stats.activeWatches >= 1 && emu.stats.watches > before, { timeoutMs: 10_000, what: "kubectl's watch request", intervalMs: 25, detail });
      emu.create("nodes", node("node-c", { ipv4: "192.0.2.13" }));
      await waitFor(() => w.out().includes('"node-c"'), { timeoutMs: 10_000, what: "node-c", intervalMs: 25, detail });
      emu.patch("nodes", undefined, "node-a", { metadata: { labels: { "bgpctl.test/watched": "yes" } } });
      await waitFor(() => w.out().includes('"bgpctl.test/watched": "yes"'), { timeoutMs: 10_000, what: "the node-a change", intervalMs: 25, detail });
      const req = emu.stats.watchRequests.at(-1)!;
      expect(req.path).toBe("/api/v1/nodes");
      expect(req.query.watch).toBe("true");
      expect(Number(req.query.resourceVersion)).toBeGreaterThan(0);
    } finally {
      w.stop();
    }
  });

  test("get services -A --watch -o json prints services created and changed after it started", async () => {
    const before = emu.stats.watches;
    const w = spawnWatch(["get", "services", "-A"]);
    try {
      const detail = () => `stdout:\n${w.out().slice(-3000)}\nstderr:\n${w.err().slice(-3000)}`;
      await waitFor(() => w.out().includes('"dns"'), { timeoutMs: 10_000, what: "the initial list", intervalMs: 25, detail });
      await waitFor(() => emu.stats.activeWatches >= 1 && emu.stats.watches > before, { timeoutMs: 10_000, what: "kubectl's watch request", intervalMs: 25, detail });
      emu.create("services", service("team", "api", { type: "LoadBalancer", clusterIPs: ["10.96.0.77"] }));
      await waitFor(() => w.out().includes('"10.96.0.77"'), { timeoutMs: 10_000, what: "team/api", intervalMs: 25, detail });
      emu.patch("services", "default", "web", { status: { loadBalancer: { ingress: [{ ip: "198.51.100.80" }] } } });
      await waitFor(() => w.out().includes('"198.51.100.80"'), { timeoutMs: 10_000, what: "the web status change", intervalMs: 25, detail });
    } finally {
      w.stop();
    }
  });

  test("a wrong token fails with Unauthorized", async () => {
    const unauthorizedBefore = emu.stats.unauthorized;
    const r = await k(["get", "nodes", "-o", "json"], join(dir, "kubeconfig-wrong"));
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/Unauthorized|provide credentials/);
    expect(emu.stats.unauthorized).toBeGreaterThan(unauthorizedBefore);
  });
});
