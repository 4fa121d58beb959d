/**
 * `npm run bench`: bgpctl against BIRD, FRR (bgpd without zebra), OpenBGPD
 * and GoBGP in one run, every daemon in its own network namespace, fed the
 * same deterministic Internet-shaped table (tests/bench/table.ts) by the same
 * injector process (tests/bench/speaker.ts), counted with each daemon's own
 * CLI (tests/bench/daemons/). Not a test: nothing here asserts a time. Root
 * only (namespaces); missing daemons are installed with apt-get, and one that
 * cannot be is reported "not available".
 *
 *   bun tests/bench/run.ts [--prefixes 560000] [--v6-prefixes 200000]
 *     [--fanin-prefixes 50000] [--only receive,transit,...]
 *     [--daemons bgpctl,bird,frr,openbgpd,gobgp] [--timeout 300] [--poll-ms 100]
 *     [--rounds 3] [--daemon-rounds gobgp=1] [--json FILE]
 *     [--k8s-nodes 5000] [--k8s-services 20000]
 *     [--k8s-changes 200] [--k8s-change-ms 100] [--k8s-heartbeats 20]
 *     [--no-probe]
 *
 * Rounds: this machine's speed drifts by tens of percent within minutes
 * (a shared virtual machine), so a BGP scenario runs `--rounds` times
 * (default 3; kernel once unless given, k8s always once: it repeats its
 * own changes), each round every daemon once, the order rotated each round
 * (round r starts with the r-th daemon) so that none always runs first or
 * right after another. `--daemon-rounds name=N,...` caps a daemon's
 * rounds (at the default size GoBGP takes minutes a scenario: `gobgp=1`
 * keeps it in the same run at one round, its row that round). A row is
 * the daemon's median round (its time, CPU, RSS and notes all from that
 * round), with the range of its times in the notes; the ratios are of
 * medians. The JSON has every round.
 *
 * Prints one table per scenario (time, peak RSS, bgpctl's ratio to each
 * daemon, and for bgpctl the event loop's worst and p99 lag from `show
 * summary` when the daemon reports them) and writes every result as JSON
 * (default: bench-results.json in a fresh temp directory; the path is printed).
 * The k8s scenario's table also has the p50 / p99 latency from a Service
 * change to its UPDATE on the wire. With only k8s selected no BGP table is
 * built (it needs none).
 *
 * The machine probes (tests/bench/probe.ts) run beside every BGP round
 * (`--no-probe`: not at all): each row's notes say how often and how long
 * the machine paused the cores (a real-time sleeper per core waking every
 * 2 ms, late by more than 5 ms), how long the memory probe's passes usually
 * took on a core and the slowest, and for bgpctl what both saw during its
 * longest turn on a core: a long turn the machine paused in is the
 * machine's. They take about 3% of a core, the same in every round.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { bgpctl } from "./daemons/bgpctl.ts";
import { bird } from "./daemons/bird.ts";
import { frr } from "./daemons/frr.ts";
import { gobgp } from "./daemons/gobgp.ts";
import { openbgpd } from "./daemons/openbgpd.ts";
import type { Daemon } from "./daemons/types.ts";
import { injectorSelfCheck } from "./inject.ts";
import { INJECT_AS, NEXT_HOP4, NEXT_HOP6, cleanupAll, log } from "./lab.ts";
import { medianRun } from "./rounds.ts";
import { KERNEL_TABLE, SCENARIOS, type Feeds, type Result, type ScenarioName, runIpBatch, runScenario } from "./scenarios.ts";
import { prefixToString } from "../../lib/core/addr.ts";
import { buildTable, churnGroups, concat, countPrefixes, encodeGroups, encodeWithdrawals, sliceGroups } from "./table.ts";

const ALL: Daemon[] = [bgpctl, bird, frr, openbgpd, gobgp];

const args = process.argv.slice(2);
function arg(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i >= 0 && args[i + 1] === undefined) throw new Error(`${name}: missing value`);
  return i >= 0 ? args[i + 1] : undefined;
}
function count(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a whole number, got "${v}"`);
  return n;
}
const NO_PROBE = args.includes("--no-probe");
for (const a of args) if (a !== "--no-probe" && a.startsWith("--") && !["--prefixes", "--v6-prefixes", "--fanin-prefixes", "--only", "--daemons", "--timeout", "--poll-ms", "--rounds", "--daemon-rounds", "--json", "--k8s-nodes", "--k8s-services", "--k8s-changes", "--k8s-change-ms", "--k8s-heartbeats"].includes(a)) throw new Error(`unknown option ${a}`);

const V4 = count("--prefixes", 560_000);
const V6 = count("--v6-prefixes", 200_000);
const FANIN = count("--fanin-prefixes", 50_000);
const TIMEOUT = count("--timeout", 300) * 1000;
const POLL = Math.max(20, count("--poll-ms", 100));
const ROUNDS = arg("--rounds") === undefined ? null : count("--rounds", 3);
if (ROUNDS === 0) throw new Error("--rounds: at least 1");
/** Rounds of a scenario (see the module comment). */
const roundsOf = (s: ScenarioName) => (s === "k8s" ? 1 : (ROUNDS ?? (s === "kernel" ? 1 : 3)));
/** Per-daemon caps on rounds (`--daemon-rounds gobgp=1,frr=2`). */
const DAEMON_ROUNDS = new Map<string, number>(
  (arg("--daemon-rounds")?.split(",") ?? []).map((kv) => {
    const m = /^([a-z]+)=([1-9][0-9]*)$/.exec(kv);
    if (!m) throw new Error(`--daemon-rounds: expected name=rounds (e.g. gobgp=1), got "${kv}"`);
    if (!ALL.some((d) => d.name === m[1])) throw new Error(`--daemon-rounds: unknown daemon "${m[1]}" (known: ${ALL.map((d) => d.name).join(", ")})`);
    return [m[1]!, Number(m[2])];
  }),
);
const K8S = { nodes: count("--k8s-nodes", 5000), services: count("--k8s-services", 20_000), changes: count("--k8s-changes", 200), changeMs: count("--k8s-change-ms", 100), heartbeats: count("--k8s-heartbeats", 20) };
const only = (arg("--only")?.split(",") ?? [...SCENARIOS]) as ScenarioName[];
for (const s of only) if (!SCENARIOS.includes(s)) throw new Error(`--only: unknown scenario "${s}" (known: ${SCENARIOS.join(", ")})`);
const names = arg("--daemons")?.split(",") ?? ALL.map((d) => d.name);
const daemons = names.map((n) => ALL.find((d) => d.name === n) ?? (() => { throw new Error(`--daemons: unknown daemon "${n}" (known: ${ALL.map((d) => d.name).join(", ")})`); })());
if (!daemons.some((d) => d.name === "bgpctl")) daemons.unshift(bgpctl);
if (process.getuid?.() !== 0) {
  console.error("tests/bench/run.ts needs root (network namespaces, port 179, apt-get for missing daemons)");
  process.exit(2);
}

const dir = mkdtempSync(join(tmpdir(), "bgpctl-bench-"));
const jsonPath = arg("--json") ?? join(dir, "bench-results.json");
/** The feed files (the JSON results stay); the whole directory when the results go elsewhere. */
const removeFeeds = () => {
  for (const f of ["full.bin", "churn.bin", "routes.batch", ...Array.from({ length: 20 }, (_, i) => `slice${i}.bin`)]) rmSync(join(dir, f), { force: true });
  // With --json elsewhere nothing of this run is left in the directory.
  if (arg("--json") !== undefined) rmSync(dir, { recursive: true, force: true });
};
const onSignal = (sig: string) => {
  log(`\n${sig}: stopping every process and removing the namespaces`);
  cleanupAll();
  removeFeeds();
  process.exit(130);
};
process.on("SIGINT", () => onSignal("SIGINT"));
process.on("SIGTERM", () => onSignal("SIGTERM"));

const fmtS = (ms?: number) => (ms === undefined ? "" : `${(ms / 1000).toFixed(2)} s`);
const fmtMB = (b?: number) => (b ? `${Math.round(b / 1e6)} MB` : "");

/**
 * Page faults, and where the daemon's main thread went: on a core, or
 * runnable and waiting for one (its other threads, a JIT compiler's, and
 * other processes had them). Known only for a daemon of one process; a
 * single-threaded daemon's main thread is all its CPU time, so only the
 * faults are shown for those whose main thread took (about) all of it, and
 * for those whose main thread took almost none of it (GoBGP: the Go
 * runtime runs its goroutines on other threads, and its main thread's
 * share says nothing).
 */
function usageNote(r: Result): string {
  if (r.faults === undefined) return "";
  // What the harness itself took from the cores meanwhile (polling, speakers): a check that it is not what decided the time.
  const faults = `${r.faults.toLocaleString("en-US")} page faults${r.harnessCpuMs !== undefined ? `; harness CPU ${fmtS(r.harnessCpuMs)}` : ""}`;
  if (r.mainCpuMs === undefined || r.cpuMs === undefined || r.mainCpuMs >= r.cpuMs * 0.95 || r.mainCpuMs < r.cpuMs * 0.05) return faults;
  return `main thread ${fmtS(r.mainCpuMs)} on a core, ${fmtS(r.mainWaitMs)} waiting for one; ${faults}`;
}

/** The machine probes in the round: the cores' pauses, the memory passes; for bgpctl, what they saw in its longest turn on a core. */
function probeNote(r: Result): string {
  const p = r.probe;
  if (!p) return "";
  const pauses = p.pausesMeasured ? `machine paused ${p.pauses} times over 5 ms${p.pauses ? `, longest ${p.longestPauseMs.toFixed(1)} ms` : ""}` : "pauses not measured (needs root, chrt, taskset)";
  const turn = r.eventLoop?.longestTurnOnCoreMs !== undefined ? `; in bgpctl's longest turn on a core: ${p.pauseInTurn !== undefined ? `a pause of ${p.pauseInTurn.toFixed(1)} ms` : p.pausesMeasured ? "no pause" : "pauses unknown"}, memory pass ${p.stallNear !== undefined ? `${p.stallNear.toFixed(1)} ms` : "none"}` : "";
  return `${pauses}; memory passes ${p.usualMs.toFixed(1)} ms on a core, slowest ${p.maxMs.toFixed(1)} ms (${p.over20} of ${p.passes} over 20 ms)${turn}`;
}

/** bgpctl's longest turn of work, and the most time on a core one took (the rest of a long turn was waiting for a core). */
function turnText(e: NonNullable<Result["eventLoop"]>): string {
  if (e.longestTurnMs === undefined) return "";
  return ` (${e.longestTurnMs.toFixed(0)} ms${e.longestTurnOnCoreMs !== undefined ? `, ${e.longestTurnOnCoreMs.toFixed(0)} ms` : ""})`;
}

function table(s: ScenarioName, rows: Result[]): string {
  const ours = rows.find((r) => r.daemon === "bgpctl" && r.status === "ok");
  const k8s = s === "k8s";
  const time = s === "churn" ? "settle" : k8s ? "start → all originated" : "time";
  const lines = [
    `| daemon | ${time} | CPU | peak RSS | bgpctl time ÷ this | bgpctl CPU ÷ this | bgpctl RSS ÷ this | event loop max / p99 (longest turn, on a core) |${k8s ? " change → UPDATE p50 | p99 |" : ""} notes |`,
    `|---|---|---|---|---|---|---|---|${k8s ? "---|---|" : ""}---|`,
  ];
  for (const r of rows) {
    const ok = r.status === "ok";
    const tr = ok && ours && r.daemon !== "bgpctl" ? (ours.ms! / r.ms!).toFixed(2) : "";
    const cr = ok && ours && r.daemon !== "bgpctl" && ours.cpuMs !== undefined && r.cpuMs ? (ours.cpuMs / r.cpuMs).toFixed(2) : "";
    const mr = ok && ours && r.daemon !== "bgpctl" && r.rssBytes ? (ours.rssBytes! / r.rssBytes).toFixed(2) : "";
    const el = r.daemon === "bgpctl" ? (r.eventLoop ? `${r.eventLoop.maxLagMs.toFixed(0)} / ${r.eventLoop.p99LagMs.toFixed(0)} ms${turnText(r.eventLoop)}` : "n/a") : "";
    const lat = k8s ? ` ${r.latency ? `${r.latency.p50Ms} ms` : ""} | ${r.latency ? `${r.latency.p99Ms} ms` : ""} |` : "";
    lines.push(`| ${r.daemon} | ${ok ? fmtS(r.ms) : r.status} | ${fmtS(r.cpuMs)} | ${fmtMB(r.rssBytes)} | ${tr} | ${cr} | ${mr} | ${el} |${lat} ${[usageNote(r), probeNote(r), r.detail].filter(Boolean).join("; ")} |`);
  }
  return lines.join("\n");
}

/** The pre-encoded feeds of the BGP scenarios (none needed when only k8s runs), logged with the injector's self-check. */
async function prepareFeeds() {
  const t = performance.now();
  const nh = { nextHop4: NEXT_HOP4, nextHop6: NEXT_HOP6 };
  const full = buildTable({ v4: V4, v6: V6, peerAs: INJECT_AS, ...nh, seed: 1 });
  const fullFile = join(dir, "full.bin");
  const fullBytes = concat(encodeGroups(full.groups, nh));
  writeFileSync(fullFile, fullBytes);
  const churn = churnGroups(full, 0.1);
  const churnFile = join(dir, "churn.bin");
  writeFileSync(churnFile, concat([...encodeWithdrawals(churn), ...encodeGroups(churn, nh, false)]));
  const feeds: Feeds = {
    full: { file: fullFile, prefixes: full.prefixes, v4: V4, v6: V6 },
    slices: [],
    churn: { file: churnFile, prefixes: countPrefixes(churn) },
    ipBatch: join(dir, "routes.batch"),
  };
  if (only.includes("kernel")) {
    const lines: string[] = [];
    for (const g of full.groups) {
      const via = g.afi === 1 ? "192.0.2.10" : "2001:db8::10";
      for (const p of g.prefixes) lines.push(`route replace ${prefixToString(p)} via ${via} table ${KERNEL_TABLE}`);
    }
    writeFileSync(feeds.ipBatch, lines.join("\n") + "\n");
  }
  if (only.includes("fanin-distinct")) {
    const big = buildTable({ v4: 20 * FANIN, v6: 0, peerAs: INJECT_AS, ...nh, seed: 2 });
    sliceGroups(big.groups, 20, FANIN).forEach((g, i) => {
      const file = join(dir, `slice${i}.bin`);
      writeFileSync(file, concat(encodeGroups(g, nh)));
      feeds.slices.push({ file, prefixes: countPrefixes(g) });
    });
  }
  const updates = encodeGroups(full.groups, nh).length;
  log(`table: ${V4} IPv4 + ${V6} IPv6 prefixes, ${full.groups.length} attribute sets, ${full.distinctPaths} distinct AS paths, ${updates} UPDATEs, ${(fullBytes.length / 1e6).toFixed(1)} MB; churn ${feeds.churn.prefixes} prefixes; built in ${((performance.now() - t) / 1000).toFixed(1)} s`);
  const self = await injectorSelfCheck(fullFile, fullBytes.length);
  log(`injector self-check (null receiver): ${(self.ms / 1000).toFixed(2)} s for the table, ${self.mbps.toFixed(0)} MB/s, ${Math.round(full.prefixes / (self.ms / 1000)).toLocaleString("en-US")} prefixes/s`);
  return { feeds, table: { v4: V4, v6: V6, updates, bytes: fullBytes.length, attributeSets: full.groups.length, distinctPaths: full.distinctPaths }, injector: self };
}

const results: Result[] = [];
try {
  const prepared = only.some((s) => s !== "k8s") ? await prepareFeeds() : null;
  const feeds: Feeds = prepared?.feeds ?? { full: { file: "", prefixes: 0, v4: 0, v6: 0 }, slices: [], churn: { file: "", prefixes: 0 }, ipBatch: "" };
  if (only.includes("k8s")) log(`k8s: ${K8S.nodes} Nodes, ${K8S.services} Services, ${K8S.changes} changes every ${K8S.changeMs} ms, ${K8S.heartbeats} Node status updates a second meanwhile`);
  log(`machine: ${cpus().length} cores; daemons: ${daemons.map((d) => (d.unavailable() ? `${d.name} (${d.unavailable()})` : d.version())).join("; ")}`);
  const report: string[] = [];
  for (const s of only) {
    const n = roundsOf(s);
    const runs = new Map<string, Result[]>(daemons.map((d) => [d.name, []]));
    for (let round = 0; round < n; round++) {
      for (let i = 0; i < daemons.length; i++) {
        const d = daemons[(i + round) % daemons.length]!;
        const dn = Math.min(n, DAEMON_ROUNDS.get(d.name) ?? n);
        if (round >= dn) continue;
        // A daemon that is missing, or does not support the scenario, is not tried again.
        if (["not available", "not supported"].includes(runs.get(d.name)![0]?.status ?? "")) continue;
        log(`${s} / ${d.name}${dn > 1 ? ` (round ${round + 1} of ${dn})` : ""} ...`);
        const r = await runScenario(s, d, feeds, { timeoutMs: TIMEOUT, pollMs: POLL, log, k8s: K8S, probe: !NO_PROBE });
        log(`  ${r.status}${r.ms !== undefined ? ` ${fmtS(r.ms)}` : ""}${r.cpuMs !== undefined ? ` (CPU ${fmtS(r.cpuMs)})` : ""}${r.rssBytes ? `, ${fmtMB(r.rssBytes)}` : ""}${r.detail ? ` (${r.detail})` : ""}`);
        runs.get(d.name)!.push(r);
        results.push(n > 1 ? { ...r, round: round + 1 } : r);
      }
    }
    const rows: Result[] = daemons.map((d) => medianRun(runs.get(d.name)!));
    if (s === "kernel") {
      log("kernel / ip -batch ...");
      const r = await runIpBatch(feeds, TIMEOUT);
      log(`  ${r.status}${r.ms !== undefined ? ` ${fmtS(r.ms)}` : ""}${r.detail ? ` (${r.detail})` : ""}`);
      rows.push(r);
      results.push(r);
    }
    report.push(`### ${s}\n\n${table(s, rows)}\n`);
  }
  log(`\n${report.join("\n")}`);
  writeFileSync(jsonPath, JSON.stringify({ date: new Date().toISOString(), cores: cpus().length, argv: process.argv.slice(2), rounds: Object.fromEntries(only.map((s) => [s, roundsOf(s)])), daemonRounds: Object.fromEntries(DAEMON_ROUNDS), table: prepared?.table ?? null, injector: prepared?.injector ?? null, k8s: only.includes("k8s") ? K8S : null, results }, null, 2));
  log(`results: ${jsonPath}`);
} finally {
  cleanupAll();
  removeFeeds();
}
process.exit(0);
