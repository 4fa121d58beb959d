/**
 * The machine probes, beside each benchmark round, for what the machine
 * itself takes from a daemon (this file is both the probes' program and the
 * harness's handle on them).
 *
 * Pauses: one sleeper per core, pinned to it (taskset) at the lowest
 * real-time priority (chrt -f 1: it runs the moment it wakes, ahead of
 * every ordinary thread), waking every 2 ms and reporting each wake-up
 * later than 5 ms: for that long its core ran nothing of this machine's,
 * the virtual machine's processor not being run by its host. The guest
 * counts no steal time here, so such a pause is charged to whichever
 * thread was current, as time on a core: found with `perf record -a`
 * (which samples idle cores too) during a bgpctl turn of 39.8 ms on a
 * core, with no sample at all on either core for 33 ms of it, and 20 ms
 * 90 ms before; both cores at once. Heaviest after a daemon kept both
 * cores busy for minutes (OpenBGPD's fan-in rounds). Needs root, chrt and
 * taskset; without them the pauses are not measured (said in the notes).
 *
 * Memory passes: a process that every 50 ms reads one cache line in each
 * 4 KiB page of a 128 MiB buffer it filled at start (the pages in a
 * scattered order) and times each pass by its thread's CPU time, usually
 * about 1.2 ms. Nothing in a pass allocates, calls the kernel or waits, so
 * a pass far over the usual is the machine making memory slower for every
 * process at that moment, not the probe's own work. On the benchmark's
 * virtual machine, in episodes of minutes, about twice a second a pass
 * takes 5–60 ms on a core with no page fault the guest counts (a C loop
 * over 256 MB shows the same).
 *
 * The harness sets what both saw beside the daemon's longest turn on a
 * core (`show summary`'s `longestOnCoreAt`): `pauseInTurn`, `stallNear`.
 *
 * Run as a process: `bun probe.ts [--mb N] [--every MS]` prints
 * {"event":"ready"} once its buffer is filled, then one line per pass,
 * `{"at":Date.now() at the pass's end,"cpu":ms on a core,"wall":ms}`;
 * `bun probe.ts --pauses [--every MS] [--over MS]` prints {"event":"ready"},
 * then `{"pause":ms late,"at":Date.now() at the wake-up}` for each late
 * wake-up. Imported: `Probe` starts and reads them, `probeSummary` sums a
 * window.
 */
import { writeSync } from "node:fs";
import { cpus } from "node:os";
import { threadCpuMs } from "../../ffi/monotonic.ts";
import { forEachLine } from "./lab.ts";

/** One pass: when it ended (Date.now()), its time on a core and by the clock (ms). */
export interface Pass {
  at: number;
  cpu: number;
  wall: number;
}

/** A wake-up of a core's sleeper `ms` late, at `at` (Date.now()): its core ran nothing of the machine's in [at − ms, at]. */
export interface Pause {
  at: number;
  ms: number;
}

/** A sleeper's wake-ups later than this are pauses (ms). */
export const PAUSE_OVER_MS = 5;

/** The probes over a window of a round (tests/bench/scenarios.ts `Result.probe`). */
export interface ProbeSummary {
  /** Pauses measured (root, chrt and taskset present); when false the pause fields say nothing. */
  pausesMeasured: boolean;
  /** Pauses of any core over PAUSE_OVER_MS in the window, and the longest (ms). */
  pauses: number;
  longestPauseMs: number;
  /** bgpctl: the longest pause of a core overlapping the daemon's longest turn on a core (ms); absent when none did. */
  pauseInTurn?: number;
  passes: number;
  /** Median time on a core of a pass (ms): the usual. */
  usualMs: number;
  /** The slowest pass on a core (ms) and when it ended (Date.now()). */
  maxMs: number;
  maxAt: number;
  /** Passes over 20 ms on a core. */
  over20: number;
  /**
   * bgpctl: the slowest pass on a core that ended during the daemon's
   * longest turn on a core or within 60 ms after it (the probe sleeps 50 ms
   * between passes, so a stall in that turn shows in the next pass at the
   * latest); absent when no pass ended in that window.
   */
  stallNear?: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor(s.length / 2)]! : 0;
};

/**
 * The passes that ended in [from, to]; `turn`: the daemon's longest turn on a core (its end, Date.now(), and its
 * length) to find the probe's view of that moment.
 */
export function probeSummary(passes: Pass[], from: number, to: number, turn?: { at: number; ms: number }, pauses: Pause[] | null = null): ProbeSummary | undefined {
  const w = passes.filter((p) => p.at >= from && p.at <= to);
  if (w.length === 0) return undefined;
  let max = w[0]!;
  for (const p of w) if (p.cpu > max.cpu) max = p;
  const pw = (pauses ?? []).filter((p) => p.at >= from && p.at - p.ms <= to);
  const out: ProbeSummary = {
    pausesMeasured: pauses !== null,
    pauses: pw.length,
    longestPauseMs: round2(Math.max(0, ...pw.map((p) => p.ms))),
    passes: w.length,
    usualMs: round2(median(w.map((p) => p.cpu))),
    maxMs: round2(max.cpu),
    maxAt: max.at,
    over20: w.filter((p) => p.cpu > 20).length,
  };
  if (turn) {
    const near = passes.filter((p) => p.at >= turn.at - turn.ms && p.at <= turn.at + 60);
    if (near.length) out.stallNear = round2(Math.max(...near.map((p) => p.cpu)));
    // A pause [at − ms, at] overlapping the turn [turn.at − turn.ms, turn.at].
    const inTurn = pw.filter((p) => p.at - p.ms < turn.at && p.at > turn.at - turn.ms);
    if (inTurn.length) out.pauseInTurn = round2(Math.max(...inTurn.map((p) => p.ms)));
  }
  return out;
}

const round2 = (x: number) => Math.round(x * 100) / 100;

/** One probe process and its JSON lines. */
class ProbeProc {
  readonly proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  ready = false;
  bad = "";
  stderr = "";

  constructor(argv: string[], env: Record<string, string | undefined>, onLine: (e: Record<string, number>) => void) {
    this.proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env });
    void this.read(onLine);
    void new Response(this.proc.stderr).text().then((t) => (this.stderr = t));
  }

  private async read(onLine: (e: Record<string, number>) => void): Promise<void> {
    await forEachLine(this.proc.stdout, (line) => {
      try {
        const e = JSON.parse(line) as Record<string, number> & { event?: string };
        if (e.event === "ready") this.ready = true;
        else onLine(e);
      } catch {
        this.bad ||= line;
      }
    });
  }
}

/** Whether the pause sleepers can run here: root (real-time priority), chrt and taskset. */
function canMeasurePauses(): boolean {
  return process.getuid?.() === 0 && Bun.which("chrt") !== null && Bun.which("taskset") !== null;
}

/**
 * The probes as child processes of the harness (not in a lab's namespace: they need no network): the memory
 * passes, and (`pauses`, when this machine can) one pause sleeper per core.
 */
export class Probe {
  readonly passes: Pass[] = [];
  /** null: pauses not measured. */
  readonly pauses: Pause[] | null;
  private readonly procs: ProbeProc[] = [];

  constructor(opts: { mb?: number; everyMs?: number; pauses?: boolean } = {}) {
    const me = [process.execPath, import.meta.path];
    this.procs.push(new ProbeProc([...me, "--mb", String(opts.mb ?? 128), "--every", String(opts.everyMs ?? 50)], process.env, (e) => this.passes.push({ at: e.at!, cpu: e.cpu!, wall: e.wall! })));
    this.pauses = opts.pauses !== false && canMeasurePauses() ? [] : null;
    if (this.pauses) {
      const pauses = this.pauses;
      // The interpreter only (no JIT): a loop this small needs none, and no compiler thread then runs at real-time priority.
      const env = { ...process.env, BUN_JSC_useJIT: "false" };
      for (let core = 0; core < cpus().length; core++) {
        this.procs.push(new ProbeProc(["chrt", "-f", "1", "taskset", "-c", String(core), ...me, "--pauses"], env, (e) => pauses.push({ at: e.at!, ms: e.pause! })));
      }
    }
  }

  get ready(): boolean {
    return this.procs.every((p) => p.ready);
  }

  /** Throw if a probe has failed (exited, or wrote what is not its output). */
  check(): void {
    for (const p of this.procs) {
      if (p.bad) throw new Error(`probe: unparsable output: ${p.bad.slice(0, 200)}`);
      if (p.proc.exitCode !== null) throw new Error(`probe exited ${p.proc.exitCode}: ${p.stderr.trim().slice(0, 300)}`);
    }
  }

  async stop(): Promise<void> {
    for (const p of this.procs) p.proc.kill("SIGKILL");
    await Promise.all(this.procs.map((p) => p.proc.exited));
  }
}

/** A pause sleeper: wakes every `every` ms (blocking, on a futex), reports wake-ups more than `over` ms late. */
function pauses(every: number, over: number): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  writeSync(1, `{"event":"ready"}\n`);
  for (;;) {
    const t0 = performance.now();
    Atomics.wait(cell, 0, 0, every);
    const late = performance.now() - t0 - every;
    if (late > over) writeSync(1, `{"pause":${late.toFixed(2)},"at":${Date.now()}}\n`);
  }
}

function main(argv: string[]): void {
  const arg = (name: string, dflt: number) => {
    const i = argv.indexOf(name);
    const v = i >= 0 ? Number(argv[i + 1]) : dflt;
    if (!Number.isInteger(v) || v <= 0) throw new Error(`probe: ${name} must be a positive integer, got ${argv[i + 1]}`);
    return v;
  };
  if (argv.includes("--pauses")) return pauses(arg("--every", 2), arg("--over", PAUSE_OVER_MS));
  const mb = arg("--mb", 128);
  const every = arg("--every", 50);
  const pages = mb * 256;
  const buf = new Uint8Array(mb * 1024 * 1024);
  buf.fill(1); // every page touched (present) before the first pass
  process.stdout.write(`{"event":"ready"}\n`);
  let sink = 0;
  const pass = () => {
    const w0 = performance.now();
    const c0 = threadCpuMs();
    // 7919 is a prime, so coprime with `pages` (mb × 256) unless mb is a multiple of it: i → i·7919 mod pages visits every page once, scattered.
    for (let i = 0; i < pages; i++) sink += buf[((i * 7919) % pages) * 4096 + ((i & 63) << 6)]!;
    const cpu = threadCpuMs() - c0;
    const wall = performance.now() - w0;
    process.stdout.write(`{"at":${Date.now()},"cpu":${cpu.toFixed(3)},"wall":${wall.toFixed(3)}}\n`);
    setTimeout(pass, every);
  };
  setTimeout(pass, every);
}

if (import.meta.main) main(process.argv.slice(2));
