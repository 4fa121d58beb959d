/**
 * What every benchmarked daemon adapter provides: whether it is installed,
 * how to start it in a lab namespace with a given set of peers, how to ask
 * it (with its own CLI) how many routes it has accepted, and how to stop it.
 * One adapter per daemon in this folder; tests/bench/scenarios.ts drives them.
 */
import { type Lab, injectorAddr, pollUntil, stopProc } from "../lab.ts";

/** The peers a run configures: injectors send the table in, sinks receive what the daemon exports. */
export interface RunSpec {
  lab: Lab;
  /** Scratch directory for this run's config, sockets and logs. */
  dir: string;
  injectors: number;
  sinks: number;
  /** Install the best routes into the kernel (kernel scenario); table number. */
  kernelTable?: number;
}

export interface EventLoopStats {
  maxLagMs: number;
  p99LagMs: number;
  samples: number;
  /** The longest turn of the daemon's sliced work (`show summary`'s `slices.longestMs`), when it reports one. */
  longestTurnMs?: number;
  /** The most time on a core one turn took (`slices.longestOnCoreMs`): the longest turn without its waits for a core. */
  longestTurnOnCoreMs?: number;
  /** When that turn ended (`slices.longestOnCoreAt`, Date.now() milliseconds). */
  longestTurnOnCoreAt?: number;
}

export interface Running {
  /** The daemon's main PID (its children count towards RSS). */
  pid: number;
  /** Routes accepted from the injectors, summed over sessions and families. */
  accepted(): Promise<number>;
  /** bgpctl only: the event loop's lag, when the daemon reports it. */
  eventLoop?(): Promise<EventLoopStats | null>;
  stop(): Promise<void>;
}

export interface Daemon {
  /** Short name used on the command line (--daemons). */
  name: string;
  /** Why it cannot run here, or null when it can (installing it first when root). */
  unavailable(): string | null;
  /** Version line for the report. */
  version(): string;
  start(spec: RunSpec): Promise<Running>;
}

/** Install a Debian package when root and the binary is missing; returns the reason when it stays missing. */
export function ensureInstalled(binary: string, pkg: string): string | null {
  if (Bun.which(binary) || Bun.file(binary).size > 0) return null;
  if (process.getuid?.() === 0) {
    const r = Bun.spawnSync(["apt-get", "install", "-y", "--no-install-recommends", pkg], { stdout: "ignore", stderr: "pipe", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" }, timeout: 300_000 });
    if (r.exitCode !== 0) return `not available (apt-get install ${pkg} failed: ${r.stderr.toString().trim().split("\n").pop()})`;
    if (Bun.which(binary) || Bun.file(binary).size > 0) return null;
  }
  return `not available (${pkg} not installed${process.getuid?.() === 0 ? "" : "; run as root to install it"})`;
}

/** First line of a command's output, for version strings. */
export function firstLine(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "";
}

/** Wait (up to 15 s, polling every 100 ms) until `probe` says the daemon answers; otherwise stop it and throw with its stderr. */
export async function awaitUp(p: Bun.Subprocess<"pipe", "pipe", "pipe">, name: string, probe: () => Promise<boolean>): Promise<void> {
  if (await pollUntil(() => probe().catch(() => false), 15_000, 100)) return;
  await stopProc(p);
  throw new Error(`${name} did not start: ${await new Response(p.stderr).text()}`);
}

/** The injectors' addresses of a run. */
export function injectorSet(n: number): Set<string> {
  return new Set(Array.from({ length: n }, (_, i) => injectorAddr(i)));
}

/** Sum the last column of the lines of a CLI table whose first column is one of `peers` (OpenBGPD's and GoBGP's neighbor lists). */
export function sumLastColumn(text: string, peers: Set<string>): number {
  let n = 0;
  for (const line of text.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (peers.has(f[0]!) && /^\d+$/.test(f[f.length - 1]!)) n += Number(f[f.length - 1]);
  }
  return n;
}
