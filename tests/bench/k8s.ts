/**
 * The Kubernetes-scale scenario (bgpctl only): the API emulator as a process
 * in the lab's daemon namespace (tests/bench/k8s-api.ts, loaded with the
 * generated cluster of tests/bench/k8s-cluster.ts, reached on loopback), one
 * `bgpctl watch-k8s` as node 0 of that cluster with a sink speaker as its
 * external (eBGP) peer. Measured:
 *
 * - start → originated: from spawning watch-k8s until the sink holds every
 *   prefix the node must originate (its pod CIDR and the Service IPs the
 *   documented rules advertise, counted from what was generated); also when
 *   its control socket first answered (caches synced, router started);
 * - peak RSS (VmHWM) of the daemon, and the event loop's worst and p99 lag
 *   from `show summary` (after the start, and at the end);
 * - Service changes, one every `changeMs` (not all at once): new Services
 *   and LoadBalancer ingress IP moves, each timed from just before its
 *   emulator write (over the control socket) to the moment the sink decoded
 *   the UPDATE announcing its prefix (and, for moves, withdrawing the old
 *   one); p50/p99/max of those latencies. At the end the sink must hold
 *   exactly the expected number of prefixes;
 * - meanwhile, `heartbeats` Node status updates a second (other Nodes in
 *   turn, a new Ready condition message: what kubelets' status reports look
 *   like to a watcher; at 5,000 Nodes and 20 a second, each Node about every
 *   four minutes), and the daemon's CPU time from the first change until the
 *   sink saw the last.
 *
 * Every wait is bounded; every process is stopped by PID and the lab removed.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EmulatorControl } from "../k8s/emulator.ts";
import { startWatchK8s, type WatchK8s } from "./daemons/bgpctl.ts";
import type { Daemon, EventLoopStats } from "./daemons/types.ts";
import { type Speaker, sink } from "./inject.ts";
import { DAEMON_V4, Lines, dropLab, makeLab, peakRss, pollUntil, spawnIn, stopProc, usage } from "./lab.ts";
import { BENCH_NODE, type ClusterSize, changes, expectedPrefixes, nodeName } from "./k8s-cluster.ts";
import type { Result } from "./scenarios.ts";

const API_SCRIPT = join(import.meta.dir, "k8s-api.ts");
const API_PORT = 6443;
const TOKEN = "bench-k8s-token";

export interface K8sOptions extends ClusterSize {
  /** Service changes to time after the start. */
  changes: number;
  /** Interval between two changes. */
  changeMs: number;
  /** Node status updates a second while the changes run (0: none). */
  heartbeats: number;
}

/** Latency figures of one kind of event, in ms. */
export interface Latency {
  n: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Nearest-rank percentiles of a list of ms; undefined for an empty list. */
export function latency(ms: number[]): Latency | undefined {
  if (!ms.length) return undefined;
  const s = [...ms].sort((a, b) => a - b);
  const at = (p: number) => s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? 0;
  return { n: s.length, p50Ms: at(50), p99Ms: at(99), maxMs: s[s.length - 1]! };
}

/** `p`'s value, or `late` when it takes longer than `ms` (a daemon whose event loop is held does not answer). */
async function within<T, L>(p: Promise<T>, ms: number, late: L): Promise<T | L> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<L>((resolve) => (timer = setTimeout(() => resolve(late), ms)));
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

/** The daemon's event-loop stats, or null when it does not answer within 30 s. */
const loopStats = (dm: WatchK8s): Promise<EventLoopStats | null> => within(dm.eventLoop(), 30_000, null);

/** Current resident set of a process, in bytes; 0 when gone. */
function rssNow(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

const oneLine = (e: unknown) => (e instanceof Error ? e.message : String(e)).replace(/\s+/g, " ").slice(0, 300);

export async function runK8s(d: Daemon, k: K8sOptions, o: { timeoutMs: number; log: (s: string) => void }): Promise<Result> {
  const base: Result = { scenario: "k8s", daemon: d.name, status: "ok" };
  if (d.name !== "bgpctl") return { ...base, status: "not supported", detail: "k8s scenario: bgpctl watch-k8s only" };
  const why = d.unavailable();
  if (why) return { ...base, status: "not available", detail: why };
  const size = { nodes: k.nodes, services: k.services };
  let expected: Set<string>;
  let plan: ReturnType<typeof changes>;
  try {
    expected = expectedPrefixes(size);
    plan = changes(size, k.changes);
  } catch (e) {
    return { ...base, status: "error", detail: oneLine(e) };
  }
  const lab = makeLab("k8s", 1);
  const dir = mkdtempSync(join(tmpdir(), "bgpctl-bench-k8s-"));
  let api: Bun.Subprocess<"pipe", "pipe", "pipe"> | null = null;
  let daemon: WatchK8s | null = null;
  let sk: Speaker | null = null;
  const facts: Record<string, unknown> = { nodes: k.nodes, services: k.services, expectedPrefixes: expected.size };
  try {
    // The API server, loaded before the daemon starts.
    const unix = join(dir, "api.sock");
    api = spawnIn(lab.daemonNs, [process.execPath, API_SCRIPT, "--listen", `127.0.0.1:${API_PORT}`, "--unix", unix, "--token", TOKEN, "--nodes", String(k.nodes), "--services", String(k.services), "--daemon-addr", DAEMON_V4]);
    const apiOut = new Lines(api);
    const apiProc = api;
    if (!(await pollUntil(async () => apiOut.all.some((l) => l.startsWith("ready ")) || (apiProc.exitCode !== null && Promise.reject(new Error(`emulator exited ${apiProc.exitCode}: ${apiOut.last(5).join(" | ")}`))), 300_000, 50))) {
      throw new Error("the API emulator was not loaded within 300 s");
    }
    const [, url, objects, loadMs] = apiOut.all.find((l) => l.startsWith("ready "))!.split(" ");
    o.log(`  emulator: ${objects} objects loaded in ${(Number(loadMs) / 1000).toFixed(1)} s, ${url}; ${expected.size} prefixes to originate`);
    Object.assign(facts, { objects: Number(objects), emulatorLoadMs: Number(loadMs) });
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfig,
      `apiVersion: v1\nkind: Config\nclusters:\n  - name: bench\n    cluster: {server: "${url}"}\nusers:\n  - name: node\n    user: {token: ${TOKEN}}\ncontexts:\n  - name: bench\n    context: {cluster: bench, user: node}\ncurrent-context: bench\n`,
    );
    const ctl = new EmulatorControl(unix);

    // The sink keeps trying to connect while the daemon syncs its caches.
    sk = sink(lab, 0, { connectWithinMs: o.timeoutMs });
    const s = sk;
    const t0 = Date.now();
    daemon = startWatchK8s({ lab, dir, kubeconfig, nodeName: BENCH_NODE, sinks: 1 });
    const dm = daemon;
    const alive = () => {
      s.check("sink");
      if (dm.proc.exitCode !== null) throw new Error(`watch-k8s exited ${dm.proc.exitCode}: ${dm.output.last(5).join(" | ")}`);
      if (apiProc.exitCode !== null) throw new Error(`emulator exited ${apiProc.exitCode}: ${apiOut.last(5).join(" | ")}`);
    };
    let upAt = 0;
    let lastUpPoll = 0;
    let probing = false;
    let lastProgress = t0;
    /** A line every 15 s while waiting, so a stalled daemon shows how (CPU, memory, its last log line). */
    const progress = (state: string) => {
      if (Date.now() - lastProgress < 15_000) return;
      lastProgress = Date.now();
      o.log(`  … ${((lastProgress - t0) / 1000).toFixed(0)} s: ${state}; daemon ${(usage(dm.pid).cpuMs / 1000).toFixed(0)} s CPU, ${Math.round(rssNow(dm.pid) / 1e6)} MB; last log: ${dm.output.last(1).join("").slice(0, 200) || "(none)"}`);
    };
    const originated = await pollUntil(
      async () => {
        alive();
        // One probe of the control socket in flight at a time, timestamped when its answer arrives.
        if (!upAt && !probing && Date.now() - lastUpPoll >= 200) {
          lastUpPoll = Date.now();
          probing = true;
          void dm.up().then((ok) => {
            probing = false;
            if (ok && !upAt) upAt = Date.now();
          });
        }
        progress(`sink holds ${s.prefixes} of ${expected.size} prefixes (${s.updates} UPDATEs), control socket ${upAt ? "answered" : "not answering yet"}`);
        return s.prefixes >= expected.size;
      },
      o.timeoutMs,
      20,
    );
    const rss = () => peakRss(dm.pid);
    if (!originated) {
      return { ...base, status: "timeout", detail: `after ${o.timeoutMs / 1000} s the sink held ${s.prefixes} of ${expected.size} prefixes${upAt ? "" : "; the control socket never answered"}; log: ${dm.output.last(3, /warn|error/i).join(" | ")}`, rssBytes: rss(), k8s: facts };
    }
    const ms = s.countAt - t0;
    Object.assign(facts, { controlSocketUpMs: upAt ? upAt - t0 : null, startRssBytes: rss(), startEventLoop: await loopStats(dm), startUpdates: s.updates, startNlri: s.nlri });
    o.log(`  originated ${s.prefixes} prefixes in ${(ms / 1000).toFixed(2)} s (control socket up after ${upAt ? ((upAt - t0) / 1000).toFixed(2) + " s" : "?"}), ${s.updates} UPDATEs`);
    if (s.prefixes > expected.size) Object.assign(facts, { unexpectedPrefixes: s.prefixes - expected.size });

    // Timed changes.
    await s.watch(plan.flatMap((c) => [`+${c.announce}`, ...(c.withdraw ? [`-${c.withdraw}`] : [])]));
    const already = [...s.seen].filter(([, v]) => v.already).map(([p]) => p);
    if (already.length) throw new Error(`the sink already had the state of ${already.length} watched prefixes before any change (${already.slice(0, 3).join(", ")}): the scenario's cluster model is wrong`);
    const before = { updates: s.updates, nlri: s.nlri };
    const writeAt: number[] = [];
    const tc = Date.now();
    const cpu0 = usage(dm.pid).cpuMs;
    // Node status updates in the background (other Nodes in turn), until the changes are seen.
    let beating = k.heartbeats > 0;
    let beats = 0;
    const heartbeats = (async () => {
      const others = Math.max(1, k.nodes - 1);
      while (beating) {
        await Bun.sleep(Math.max(0, tc + (beats * 1000) / k.heartbeats - Date.now()));
        if (!beating) break;
        const name = nodeName(1 + (beats % others));
        beats++;
        await ctl.patch("nodes", undefined, name, { status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: `kubelet is posting ready status (${beats})` }] } });
      }
    })();
    for (let i = 0; i < plan.length; i++) {
      alive();
      await Bun.sleep(Math.max(0, tc + i * k.changeMs - Date.now()));
      const c = plan[i]!;
      for (const [j, w] of c.writes.entries()) {
        if (j === c.writes.length - 1) writeAt[i] = Date.now();
        if (w.op === "create") await ctl.create(w.resource, w.object);
        else await ctl.patch(w.resource, w.namespace, w.name, w.patch);
      }
    }
    const writesMs = Date.now() - tc;
    const finalCount = expected.size + plan.filter((c) => !c.withdraw).length;
    const seenAll = () => plan.filter((c) => s.seen.has(`+${c.announce}`)).length;
    const settled = await pollUntil(async () => (alive(), progress(`changes: ${seenAll()} of ${plan.length} announced on the wire`), plan.every((c) => s.seen.has(`+${c.announce}`) && (!c.withdraw || s.seen.has(`-${c.withdraw}`)) && s.prefixes === finalCount)), o.timeoutMs, 20);
    const changeCpuMs = usage(dm.pid).cpuMs - cpu0;
    const changeSpanMs = Date.now() - tc;
    beating = false;
    await heartbeats;
    const announce = plan.flatMap((c, i) => (s.seen.has(`+${c.announce}`) ? [s.seen.get(`+${c.announce}`)!.at - writeAt[i]!] : []));
    const withdraw = plan.flatMap((c, i) => (c.withdraw && s.seen.has(`-${c.withdraw}`) ? [s.seen.get(`-${c.withdraw}`)!.at - writeAt[i]!] : []));
    Object.assign(facts, {
      changes: plan.length,
      changeMs: k.changeMs,
      writesMs,
      settledAfterMs: changeSpanMs,
      heartbeats: beats,
      changeCpuMs,
      withdrawLatency: latency(withdraw),
      changeUpdates: s.updates - before.updates,
      changeNlri: s.nlri - before.nlri,
      finalPrefixes: s.prefixes,
    });
    const loop = await loopStats(dm);
    const result: Result = { ...base, ms, rssBytes: rss(), eventLoop: loop, latency: latency(announce), k8s: facts };
    const wl = latency(withdraw);
    let detail = `${k.nodes} Nodes, ${k.services} Services, ${expected.size} prefixes; control socket up after ${upAt ? ((upAt - t0) / 1000).toFixed(2) : "?"} s; ${plan.length} changes every ${k.changeMs} ms${k.heartbeats ? ` and ${beats} Node status updates` : ""}, daemon CPU ${(changeCpuMs / 1000).toFixed(2)} s in those ${(changeSpanMs / 1000).toFixed(1)} s: withdraw p50/p99 ${wl ? `${wl.p50Ms}/${wl.p99Ms} ms` : "none seen"}, max announce ${result.latency?.maxMs ?? "?"} ms, ${s.updates - before.updates} UPDATEs with ${s.nlri - before.nlri} prefixes sent meanwhile${loop ? "" : "; show summary did not answer within 30 s"}`;
    if (!settled) {
      const missing = plan.filter((c) => !s.seen.has(`+${c.announce}`) || (c.withdraw && !s.seen.has(`-${c.withdraw}`)));
      detail = `${o.timeoutMs / 1000} s after the last change: ${missing.length} of ${plan.length} changes not (fully) seen on the wire (first: ${missing[0]?.what ?? "none"}), sink holds ${s.prefixes} of ${finalCount} prefixes; ${detail}`;
      return { ...result, status: "error", detail };
    }
    const lat = result.latency!;
    o.log(`  changes: announce p50 ${lat.p50Ms} ms, p99 ${lat.p99Ms} ms, max ${lat.maxMs} ms over ${lat.n}`);
    return { ...result, detail };
  } catch (e) {
    return { ...base, status: "error", detail: oneLine(e), k8s: facts };
  } finally {
    if (sk) await sk.stop();
    if (daemon) {
      const warn = daemon.output.last(5, /warn|error/i);
      if (warn.length) o.log(`  watch-k8s log (last warnings): ${warn.join(" | ")}`);
      await daemon.stop();
    }
    if (api) await stopProc(api);
    dropLab(lab);
    rmSync(dir, { recursive: true, force: true });
  }
}
