/**
 * The benchmark scenarios and the one routine that runs any of them against
 * one daemon: a fresh lab (tests/bench/lab.ts), the scenario's speakers
 * started and loaded (holding), the daemon started with them as its peers,
 * sinks connected, injectors connected and replaying their pre-encoded
 * files, then polling (bounded rate, bounded time) until the goal is met:
 *
 * - receive: one session sends the full table; done when the daemon's own
 *   CLI counts every prefix accepted;
 * - fanin-distinct: 20 sessions × 50k distinct prefixes (CLI count);
 * - fanin-same: 4 sessions × the same full table (CLI count, 4 × N routes);
 * - transit: one session in, one sink out; done when the sink holds it all;
 * - fanout: one session in, 4 sinks; done when every sink holds it all;
 * - churn: as transit, then 10% of the table withdrawn and re-announced with
 *   new attributes (a marker community); timed from that burst until the
 *   sink holds the whole table again with every churned prefix marked.
 * - kernel: as receive, with the daemon installing into a kernel table;
 *   done when the kernel table holds every prefix (KernelCounter: the
 *   kernel's counters, confirmed by `ip route`).
 * - k8s: bgpctl watch-k8s against the Kubernetes API emulator (5,000 Nodes,
 *   20,000 Services by default): time to originate everything, then the
 *   latency of Service changes to the wire (tests/bench/k8s.ts; bgpctl only).
 *
 * Times start when the (last) injector reaches Established and end at the
 * poll (or the sink report) that sees the goal met; a CLI count is polled
 * every `pollMs` (100) until it is within a tenth of the goal, then every
 * 20 ms, the period never under a fiftieth (a hundredth near the goal) of
 * the time so far. Peak RSS is the VmHWM sum over the daemon's processes,
 * read before stopping it. Over the same span as the time: the daemon's CPU
 * time, its minor page faults, (one process only) its main thread's time
 * on a core and waiting for one (lab.ts `usage`), and this harness's own
 * CPU time (collected its own garbage first). Beside every round (unless
 * `probe` is off) the machine probes (tests/bench/probe.ts) run from
 * before the daemon starts: what they saw from the daemon's start to the
 * end of the round is the round's `probe`, and for bgpctl what they saw
 * during the daemon's longest turn on a core.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Speaker, injector, sink } from "./inject.ts";
import { type Usage, dropLab, killPid, makeLab, out, peakRss, pollUntil, procStart, processTree, usage, usedSince } from "./lab.ts";
import type { Daemon, EventLoopStats, Running } from "./daemons/types.ts";
import { type K8sOptions, type Latency, runK8s } from "./k8s.ts";
import { Probe, type ProbeSummary, probeSummary } from "./probe.ts";

/** How often a daemon's CLI is polled once its count is within a tenth of the goal (ms). */
const FINE_POLL_MS = 20;

export const SCENARIOS = ["receive", "fanin-distinct", "fanin-same", "transit", "fanout", "churn", "kernel", "k8s"] as const;
export type ScenarioName = (typeof SCENARIOS)[number];

/** Files of pre-encoded UPDATEs and their prefix counts, made once per run by run.ts. */
export interface Feeds {
  full: { file: string; prefixes: number; v4: number; v6: number };
  /** 20 distinct slices for fanin-distinct. */
  slices: { file: string; prefixes: number }[];
  churn: { file: string; prefixes: number };
  /** `ip -batch` file installing the full table into KERNEL_TABLE (kernel scenario baseline). */
  ipBatch: string;
}

export const KERNEL_TABLE = 100;
/** How often the kernel scenario counts the kernel table (ms; see KernelCounter). */
const KERNEL_POLL_MS = 250;

export interface Result {
  scenario: ScenarioName;
  daemon: string;
  status: "ok" | "timeout" | "error" | "not available" | "not supported";
  ms?: number;
  /** The daemon's CPU time (user + system, its process tree) over the same span as `ms`. */
  cpuMs?: number;
  /** Over the same span: the daemon's minor page faults, and its main thread's time on a core and waiting for one (lab.ts `usage`). */
  faults?: number;
  mainCpuMs?: number;
  mainWaitMs?: number;
  rssBytes?: number;
  eventLoop?: EventLoopStats | null;
  detail?: string;
  /** k8s: from a Service change's emulator write to its prefix's UPDATE at the sink. */
  latency?: Latency;
  /** k8s: sizes, start milestones, withdraw latencies, UPDATE counts (tests/bench/k8s.ts). */
  k8s?: Record<string, unknown>;
  /** Which of the scenario's rounds (from 1), when it ran more than one (tests/bench/run.ts). */
  round?: number;
  /** This harness's own CPU time over the same span as `ms` (its polling and speaker bookkeeping: what it took from the cores the daemon runs on). */
  harnessCpuMs?: number;
  /** What the machine probes saw from the daemon's start to the end of the round (tests/bench/probe.ts). */
  probe?: ProbeSummary;
}

interface Plan {
  files: string[];
  sinks: number;
  /** Routes the daemon's CLI must count (sum over injectors), or 0 when sinks decide. */
  accepted: number;
  /** Prefixes every sink must hold, or 0. */
  sinkPrefixes: number;
  kernelTable?: number;
}

function plan(s: Exclude<ScenarioName, "k8s">, f: Feeds): Plan {
  const N = f.full.prefixes;
  switch (s) {
    case "receive":
      return { files: [f.full.file], sinks: 0, accepted: N, sinkPrefixes: 0 };
    case "fanin-distinct":
      return { files: f.slices.map((x) => x.file), sinks: 0, accepted: f.slices.reduce((a, x) => a + x.prefixes, 0), sinkPrefixes: 0 };
    case "fanin-same":
      return { files: [f.full.file, f.full.file, f.full.file, f.full.file], sinks: 0, accepted: 4 * N, sinkPrefixes: 0 };
    case "transit":
    case "churn":
      return { files: [f.full.file], sinks: 1, accepted: 0, sinkPrefixes: N };
    case "fanout":
      return { files: [f.full.file], sinks: 4, accepted: 0, sinkPrefixes: N };
    case "kernel":
      return { files: [f.full.file], sinks: 0, accepted: 0, sinkPrefixes: 0, kernelTable: KERNEL_TABLE };
  }
}

/** Routes in a namespace's kernel table (IPv4 + IPv6), counted from `ip route` output. */
async function kernelRoutes(ns: string, table: number): Promise<number> {
  let n = 0;
  for (const fam of ["-4", "-6"]) {
    const s = await out(["ip", "-n", ns, fam, "route", "show", "table", String(table)], 60_000).catch((e: Error) => {
      if (/table does not exist/.test(e.message)) return ""; // nothing installed yet
      throw e;
    });
    for (let i = s.indexOf("\n"); i >= 0; i = s.indexOf("\n", i + 1)) n++;
  }
  return n;
}

/**
 * Counts the routes installed into a namespace's kernel table while an
 * installer runs, from the kernel's own counters: the table's IPv4 routes
 * from /proc/net/fib_triestat, the namespace's IPv6 routes from
 * /proc/net/rt6_stats (fib_rt_entries, all tables) less those it had when
 * the counter was made. One poll costs a walk of the IPv4 trie in the
 * kernel and formats nothing; counting with `ip route` (as this suite did
 * before) formatted every route of the table on each poll, up to 760,000
 * a second, which kept most of one of the two cores busy and slowed every
 * installer alike. Once the counters reach the goal, `ip route` confirms
 * it; if it does not (the namespace's other IPv6 routes changed
 * meanwhile), the polls count with `ip route` from then on.
 */
class KernelCounter {
  private exact = false;
  /** When (Date.now()) the last count was read: the counters, or the listing once counting with `ip route`. */
  readAt = 0;
  /** This process's CPU usage at `readAt` (the listing that confirms a count comes after it, outside the measured span). */
  cpuAt: NodeJS.CpuUsage = process.cpuUsage();
  private constructor(
    private readonly ns: string,
    private readonly table: number,
    private readonly v6Before: number,
  ) {}

  private read(): void {
    this.readAt = Date.now();
    this.cpuAt = process.cpuUsage();
  }

  static async make(ns: string, table: number): Promise<KernelCounter> {
    return new KernelCounter(ns, table, await KernelCounter.v6Entries(ns));
  }

  private static async v6Entries(ns: string): Promise<number> {
    const f = (await out(["ip", "netns", "exec", ns, "cat", "/proc/net/rt6_stats"])).trim().split(/\s+/);
    if (f.length < 4) throw new Error(`/proc/net/rt6_stats in ${ns}: unexpected "${f.join(" ")}"`);
    return parseInt(f[3]!, 16);
  }

  /** The routes in the table now; `goal`: the count it is waiting for (confirmed with `ip route` when reached). */
  async count(goal: number): Promise<number> {
    if (this.exact) {
      const n = await kernelRoutes(this.ns, this.table);
      this.read();
      return n;
    }
    const trie = await out(["ip", "netns", "exec", this.ns, "cat", "/proc/net/fib_triestat"]);
    const at = trie.indexOf(`\nId ${this.table}:\n`);
    const m = at < 0 ? null : /Prefixes:\s+(\d+)/.exec(trie.slice(at, at + 400));
    const n = (m ? Number(m[1]) : 0) + (await KernelCounter.v6Entries(this.ns)) - this.v6Before;
    this.read();
    if (n < goal) return n;
    const listed = await kernelRoutes(this.ns, this.table);
    if (listed < goal) {
      this.exact = true;
      this.read();
    }
    return listed;
  }
}

/**
 * The kernel scenario's baseline: `ip -batch` installing the same routes into
 * a fresh daemon namespace (as tests/bench/fib.ts does for /32s), timed as
 * the daemons are: until the poll of the table (KernelCounter, every
 * KERNEL_POLL_MS) that counts every route. The time the process took to
 * exit is in the notes.
 */
export async function runIpBatch(f: Feeds, timeoutMs: number): Promise<Result> {
  const base: Result = { scenario: "kernel", daemon: "ip -batch", status: "ok" };
  const lab = makeLab("ipbatch", 1);
  try {
    const counter = await KernelCounter.make(lab.daemonNs, KERNEL_TABLE);
    const t = Date.now();
    let exitedMs = 0;
    let failed: Error | null = null;
    const run = out(["ip", "-n", lab.daemonNs, "-batch", f.ipBatch], 600_000).then(
      () => void (exitedMs = Date.now() - t),
      (e: Error) => void (failed = e),
    );
    let n = 0;
    let doneMs = 0;
    const seen = await pollUntil(
      async () => {
        if (failed) throw failed;
        n = await counter.count(f.full.prefixes);
        if (n >= f.full.prefixes) doneMs = counter.readAt - t;
        return n >= f.full.prefixes;
      },
      timeoutMs,
      KERNEL_POLL_MS,
    );
    await run;
    if (failed) throw failed;
    if (!seen) return { ...base, status: "error", detail: `ip -batch installed ${n} of ${f.full.prefixes} within ${timeoutMs / 1000} s` };
    return { ...base, ms: doneMs, detail: `ip -batch exited after ${(exitedMs / 1000).toFixed(2)} s` };
  } catch (e) {
    return { ...base, status: "error", detail: (e as Error).message.replace(/\s+/g, " ").slice(0, 300) };
  } finally {
    dropLab(lab);
  }
}

export interface RunOptions {
  timeoutMs: number;
  /** Poll interval for the daemon's CLI. */
  pollMs: number;
  log: (s: string) => void;
  /** The k8s scenario's cluster size and changes. */
  k8s: K8sOptions;
  /** Run the machine probes beside each round (tests/bench/probe.ts). */
  probe: boolean;
}

/** This process's CPU time (user + system) since `from` (process.cpuUsage), in ms. */
function cpuMsSince(from: NodeJS.CpuUsage): number {
  return cpuMsBetween(from, process.cpuUsage());
}

/** This process's CPU time (user + system) between two process.cpuUsage() readings, in ms. */
function cpuMsBetween(from: NodeJS.CpuUsage, to: NodeJS.CpuUsage): number {
  return Math.round((to.user - from.user + to.system - from.system) / 1000);
}

export async function runScenario(s: ScenarioName, d: Daemon, f: Feeds, o: RunOptions): Promise<Result> {
  if (s === "k8s") return runK8s(d, o.k8s, o);
  const p = plan(s, f);
  const base: Result = { scenario: s, daemon: d.name, status: "ok" };
  const why = d.unavailable();
  if (why) return { ...base, status: "not available", detail: why };
  if (s === "kernel" && d.name !== "bgpctl" && d.name !== "bird") return { ...base, status: "not supported", detail: "kernel scenario: bgpctl and BIRD only" };
  const lab = makeLab(d.name, Math.max(p.files.length, 1));
  const dir = mkdtempSync(join(tmpdir(), `bgpctl-bench-${d.name}-`));
  const speakers: Speaker[] = [];
  let running: Running | null = null;
  let probe: Probe | null = null;
  let daemonStart = 0;
  /** The round's result with what the probes saw since the daemon started, and (bgpctl) during its longest turn on a core. */
  const withProbe = (res: Result): Result => {
    if (!probe || !daemonStart) return res;
    const e = res.eventLoop;
    const turn = e?.longestTurnOnCoreAt !== undefined && e.longestTurnOnCoreMs !== undefined ? { at: e.longestTurnOnCoreAt, ms: e.longestTurnOnCoreMs } : undefined;
    const summary = probeSummary(probe.passes, daemonStart, Date.now(), turn, probe.pauses);
    return summary ? { ...res, probe: summary } : res;
  };
  try {
    const counter = p.kernelTable ? await KernelCounter.make(lab.daemonNs, p.kernelTable) : null;
    // Every speaker is started (a Bun process each, up to 24) and loaded before the daemon: their start-up then
    // falls before the daemon's life rather than in its first seconds, where its event-loop figures counted the
    // wait for a core as lag (fan-in-distinct: lags of 90–180 ms in whose windows the daemon's process had 5 ms of
    // CPU in 87, the twenty injectors starting up the rest; `perf record -a -e sched:sched_switch`).
    const sinks = Array.from({ length: p.sinks }, (_, i) => sink(lab, i, { hold: true }));
    const injectors = p.files.map((file, i) => injector(lab, i, file, { hold: true }));
    speakers.push(...sinks, ...injectors);
    probe = o.probe ? new Probe() : null;
    const checkAll = () => {
      speakers.forEach((x, i) => x.check(`speaker ${i}`));
      probe?.check();
    };
    if (!(await pollUntil(async () => (checkAll(), speakers.every((x) => x.ready) && (probe?.ready ?? true)), 30_000, 20))) throw new Error("speakers (or the probe) not started within 30 s");
    daemonStart = Date.now();
    running = await d.start({ lab, dir, injectors: p.files.length, sinks: p.sinks, kernelTable: p.kernelTable });
    const r = running;
    for (const x of sinks) x.go();
    if (sinks.length && !(await pollUntil(async () => (checkAll(), sinks.every((x) => x.established > 0)), 30_000, 50))) throw new Error("sinks did not reach Established within 30 s");
    // The harness's own garbage (the tables it built: gigabytes at the default size) collected now, not by a
    // collection on both cores in the middle of a measured span (measured: up to 280 ms of this process's CPU
    // inside a one-second receive round).
    Bun.gc(true);
    for (const x of injectors) x.go();
    if (!(await pollUntil(async () => (checkAll(), injectors.every((x) => x.established > 0)), 30_000, 20))) throw new Error("injectors did not reach Established within 30 s");
    const t0 = Math.max(...injectors.map((x) => x.established));
    const use0 = usage(r.pid);
    let harness0 = process.cpuUsage();
    let doneAt = 0;
    let useAt: Usage = use0;
    let have = "";
    // Near the goal (the last tenth of the routes) the CLI is polled every FINE_POLL_MS: a count polled every 100 ms
    // alone would put up to 100 ms on a time of well under a second, on each daemon alike.
    let near = false;
    const goal = async (): Promise<boolean> => {
      checkAll();
      if (p.accepted) {
        const n = await r.accepted();
        near = n >= p.accepted * 0.9;
        have = `${n} of ${p.accepted} routes`;
        if (n >= p.accepted) [doneAt, useAt] = [Date.now(), usage(r.pid)];
        return n >= p.accepted;
      }
      if (p.sinkPrefixes) {
        have = sinks.map((x) => x.prefixes).join(", ") + ` of ${p.sinkPrefixes} prefixes`;
        if (sinks.every((x) => x.prefixes >= p.sinkPrefixes)) {
          doneAt = Math.max(...sinks.map((x) => x.countAt));
          useAt = usage(r.pid);
          return true;
        }
        return false;
      }
      const n = await counter!.count(f.full.prefixes);
      have = `${n} of ${f.full.prefixes} kernel routes`;
      if (n >= f.full.prefixes) [doneAt, useAt] = [counter!.readAt, usage(r.pid)];
      return n >= f.full.prefixes;
    };
    // A poll's period is also at least a hundredth of the time so far near the goal (a fiftieth before): a daemon
    // that takes 20 s is not asked 100 times in its last two seconds (each ask a process this harness spawns; with
    // FRR, 20–36 ms of this harness's CPU per `vtysh` poll, seconds per run, on the cores the daemon needs), and
    // the time's resolution stays about 1% of it.
    const interval = p.kernelTable
      ? Math.max(o.pollMs, KERNEL_POLL_MS)
      : p.accepted
        ? () => {
            const elapsed = Date.now() - t0;
            return near ? Math.max(Math.min(o.pollMs, FINE_POLL_MS), elapsed / 100) : Math.max(o.pollMs, elapsed / 50);
          }
        : 20;
    if (!(await pollUntil(goal, o.timeoutMs, interval))) {
      return withProbe({ ...base, status: "timeout", detail: `after ${o.timeoutMs / 1000} s: ${have}`, rssBytes: peakRss(r.pid), eventLoop: r.eventLoop ? await r.eventLoop() : undefined });
    }
    let ms = doneAt - t0;
    let used = usedSince(use0, useAt);
    let harnessCpuMs = counter ? cpuMsBetween(harness0, counter.cpuAt) : cpuMsSince(harness0);
    const sent = injectors[0]!.sent[0];
    let detail = sent ? `injector wrote its ${(sent.bytes! / 1e6).toFixed(1)} MB in ${(sent.ms! / 1000).toFixed(2)} s` : "";
    if (s === "churn") {
      const sk = sinks[0]!;
      Bun.gc(true);
      const t1 = Date.now();
      const use1 = usage(r.pid);
      harness0 = process.cpuUsage();
      injectors[0]!.command(`send ${f.churn.file}`);
      const settled = await pollUntil(async () => (checkAll(), sk.marked >= f.churn.prefixes && sk.prefixes >= p.sinkPrefixes && sk.countAt >= t1), o.timeoutMs, 20);
      if (!settled) return withProbe({ ...base, status: "timeout", detail: `churn: after ${o.timeoutMs / 1000} s the sink held ${sk.prefixes} prefixes, ${sk.marked} of ${f.churn.prefixes} re-announced`, rssBytes: peakRss(r.pid) });
      detail = `full table first in ${(ms / 1000).toFixed(2)} s`;
      ms = sk.countAt - t1;
      used = usedSince(use1, usage(r.pid));
      harnessCpuMs = cpuMsSince(harness0);
    }
    return withProbe({ ...base, ms, cpuMs: used.cpuMs, faults: used.faults, mainCpuMs: used.mainCpuMs, mainWaitMs: used.mainWaitMs, harnessCpuMs, rssBytes: peakRss(r.pid), eventLoop: r.eventLoop ? await r.eventLoop() : undefined, detail });
  } catch (e) {
    return { ...base, status: "error", detail: (e as Error).message.replace(/\s+/g, " ").slice(0, 300) };
  } finally {
    await Promise.all([...speakers.map((x) => x.stop()), probe?.stop()]);
    if (running) {
      // Forked helpers (OpenBGPD's engines) are stopped by PID if the daemon left them behind.
      const tree = processTree(running.pid).map((pid) => [pid, procStart(pid)] as const);
      await running.stop();
      for (const [pid, start] of tree) killPid(pid, start);
    }
    dropLab(lab);
    rmSync(dir, { recursive: true, force: true });
  }
}
