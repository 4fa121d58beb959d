/**
 * Interop lab harness: network namespaces joined by veth pairs, real BGP peers
 * (BIRD 2 and GoBGP) and the bgpctl binary running inside them.
 *
 * Network rule: every packet stays inside namespaces this harness creates (or
 * loopback), and the addresses used in them come from the documentation ranges
 * only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32).
 *
 * Every wait is bounded in time and in iterations. Everything created is torn
 * down by `Lab.cleanup()`; a process-exit hook and a sweep of stale namespaces
 * left by dead runs back that up.
 */
import { afterAll, afterEach, beforeAll, expect } from "bun:test";
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import YAML from "yaml";
import { sleep, waitFor } from "../support/wait.ts";
import type { NeighborInfo, RibEntry } from "../../lib/api/types.ts";

export const REPO_ROOT = resolve(import.meta.dir, "../..");

// ---------------------------------------------------------------------------
// Small process helpers
// ---------------------------------------------------------------------------

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number;
  /** true when the command was killed because it ran past its timeout */
  timedOut: boolean;
}

export interface RunOptions {
  timeoutMs?: number;
  /** throw when the exit code is not 0 */
  check?: boolean;
  cwd?: string;
  env?: Record<string, string | undefined>;
}

const SEARCH_PATH = [
  ...(process.env.PATH ?? "").split(":").filter((p) => p.length > 0),
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
].join(":");

/** Absolute path of a program, or null when it is not installed. */
export function which(bin: string): string | null {
  return Bun.which(bin, { PATH: SEARCH_PATH }) ?? null;
}

function mustWhich(bin: string): string {
  const p = which(bin);
  if (!p) throw new Error(`interop lab: required program '${bin}' not found in ${SEARCH_PATH}`);
  return p;
}

function describeArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(" ");
}

/** Run a command on the host with a hard timeout; output is collected in memory. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const env = { ...process.env, PATH: SEARCH_PATH, ...(opts.env ?? {}) };
  const proc = Bun.spawn([...argv], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    cwd: opts.cwd ?? REPO_ROOT,
    env,
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      proc.kill("SIGKILL");
    } catch {
      /* already gone */
    }
  }, timeoutMs);
  try {
    const [stdout, stderr, code] = await Promise.all([
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
      proc.exited,
    ]);
    const res: ExecResult = { stdout, stderr, code: timedOut ? -1 : code, timedOut };
    if (opts.check && res.code !== 0) {
      throw new Error(
        `command failed (${timedOut ? `timed out after ${timeoutMs} ms` : `exit ${code}`}): ${describeArgv(argv)}\n` +
          `stdout:\n${stdout.slice(-4000)}\nstderr:\n${stderr.slice(-4000)}`,
      );
    }
    return res;
  } finally {
    clearTimeout(timer);
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

// ---------------------------------------------------------------------------
// Bounded polling
// ---------------------------------------------------------------------------

export interface WaitOptions {
  timeoutMs: number;
  /** what we are waiting for, used in the timeout message */
  what: string;
  intervalMs?: number;
  /** processes whose recent output goes into the timeout message */
  procs?: readonly LabProcess[];
}

// ---------------------------------------------------------------------------
// Long-running processes with captured output
// ---------------------------------------------------------------------------

export interface OutputLine {
  /** ms since the process was started */
  t: number;
  stream: "stdout" | "stderr";
  text: string;
}

export class LabProcess {
  readonly lines: OutputLine[] = [];
  readonly startedAt = Date.now();
  exitCode: number | null = null;
  signalCode: string | null = null;
  /** resolves with the exit code (null when killed by a signal) once output is drained */
  readonly exited: Promise<number | null>;
  private readonly proc: Subprocess<"ignore", "pipe", "pipe">;

  constructor(
    readonly name: string,
    readonly ns: string | null,
    readonly argv: readonly string[],
    readonly logFile: string,
    env?: Record<string, string | undefined>,
    cwd?: string,
  ) {
    writeFileSync(logFile, `# ${ns ? `[netns ${ns}] ` : ""}${describeArgv(argv)}\n`);
    this.proc = Bun.spawn([...argv], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      cwd: cwd ?? REPO_ROOT,
      env: { ...process.env, PATH: SEARCH_PATH, ...(env ?? {}) },
    });
    const pumps = [this.pump(this.proc.stdout, "stdout"), this.pump(this.proc.stderr, "stderr")];
    this.exited = this.proc.exited.then(async (code) => {
      // Give the readers a bounded moment to drain what is left in the pipes.
      await Promise.race([Promise.all(pumps), sleep(1000)]);
      this.signalCode = this.proc.signalCode === null ? null : String(this.proc.signalCode);
      this.exitCode = this.signalCode ? null : code;
      this.log(`# exited: code=${this.exitCode} signal=${this.signalCode}`);
      return this.exitCode;
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private log(text: string): void {
    try {
      appendFileSync(this.logFile, text + "\n");
    } catch {
      /* log dir may be gone during late cleanup */
    }
  }

  private async pump(stream: ReadableStream<Uint8Array>, which: "stdout" | "stderr"): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const reader = stream.getReader();
    const push = (text: string) => {
      this.lines.push({ t: Date.now() - this.startedAt, stream: which, text });
      this.log(`${(Date.now() - this.startedAt).toString().padStart(6)} ${which === "stdout" ? "out" : "err"}| ${text}`);
    };
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          push(buf.slice(0, nl).replace(/\r$/, ""));
          buf = buf.slice(nl + 1);
        }
      }
    } catch {
      /* stream torn down */
    }
    buf += decoder.decode();
    if (buf.length > 0) push(buf);
  }

  /** All captured lines of one stream (or both), as text. */
  text(stream?: "stdout" | "stderr"): string {
    return this.lines
      .filter((l) => !stream || l.stream === stream)
      .map((l) => l.text)
      .join("\n");
  }

  /** A short human description with the last `n` lines of output. */
  describe(n = 20): string {
    const state = this.running ? `running pid ${this.pid}` : `exited code=${this.exitCode} signal=${this.signalCode}`;
    const tail = this.lines.slice(-n).map((l) => `  ${l.stream === "stdout" ? "out" : "err"}| ${l.text}`);
    return `--- ${this.name} (${state}; log ${this.logFile}) last ${tail.length} lines ---\n${tail.join("\n")}`;
  }

  /** Send a signal to this process (by its own PID). No-op once it has exited. */
  signal(sig: NodeJS.Signals): void {
    if (!this.running) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      /* raced with exit */
    }
  }

  /** Wait for exit, bounded. Returns true if the process has exited. */
  async waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.running) {
      await this.exited;
      return true;
    }
    const r = await Promise.race([this.exited.then(() => true), sleep(timeoutMs).then(() => false)]);
    return r;
  }

  /**
   * Stop the process: `signal` (SIGTERM by default) plus SIGCONT in case it was
   * stopped, then SIGKILL if it is still alive after `timeoutMs`.
   */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 5000): Promise<number | null> {
    if (this.running) {
      this.signal(signal);
      this.signal("SIGCONT");
      if (!(await this.waitExit(timeoutMs))) {
        this.signal("SIGKILL");
        await this.waitExit(3000);
      }
    }
    return this.running ? null : await this.exited;
  }
}

// ---------------------------------------------------------------------------
// Packages and privileges
// ---------------------------------------------------------------------------

interface RequiredPackage {
  pkg: string;
  bins: string[];
}

const REQUIRED_PACKAGES: RequiredPackage[] = [
  { pkg: "iproute2", bins: ["ip"] },
  { pkg: "bird2", bins: ["bird", "birdc"] },
  { pkg: "gobgpd", bins: ["gobgpd", "gobgp"] },
];

function missingPackages(): RequiredPackage[] {
  return REQUIRED_PACKAGES.filter((p) => p.bins.some((b) => which(b) === null));
}

function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/**
 * Make sure BIRD 2 and GoBGP are installed. Installs them with apt-get when
 * missing and running as root (apt-get update first if the plain install
 * fails). Throws - never skips - when they cannot be had.
 */
export async function ensurePackages(): Promise<void> {
  let missing = missingPackages();
  if (missing.length === 0) return;
  const names = missing.map((m) => m.pkg);
  if (!isRoot()) {
    throw new Error(
      `interop lab: packages missing (${names.join(", ")}) and not running as root, so they cannot be installed. ` +
        `Install them with: apt-get install -y ${names.join(" ")}`,
    );
  }
  const aptGet = which("apt-get");
  if (!aptGet) throw new Error(`interop lab: packages missing (${names.join(", ")}) and apt-get is not available`);
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const install = () => run([aptGet, "install", "-y", "--no-install-recommends", ...names], { timeoutMs: 600_000, env });
  let res = await install();
  if (res.code !== 0) {
    const upd = await run([aptGet, "update"], { timeoutMs: 600_000, env });
    if (upd.code !== 0) {
      throw new Error(`interop lab: apt-get update failed (exit ${upd.code}):\n${upd.stderr.slice(-3000)}`);
    }
    res = await install();
  }
  missing = missingPackages();
  if (res.code !== 0 || missing.length > 0) {
    throw new Error(
      `interop lab: could not install ${names.join(", ")} (apt-get exit ${res.code}; still missing: ` +
        `${missing.map((m) => m.pkg).join(", ") || "none"}):\n${res.stdout.slice(-2000)}\n${res.stderr.slice(-3000)}`,
    );
  }
}

/** Throws unless we are root (namespaces, veth and port 179 need it). */
export function requireRoot(): void {
  if (!isRoot()) {
    throw new Error("interop lab: must run as root (network namespaces, veth pairs and BGP port 179 need it)");
  }
}

// ---------------------------------------------------------------------------
// The lab: namespaces, links, processes
// ---------------------------------------------------------------------------

export interface EndpointAddresses {
  /** e.g. "192.0.2.1/24" */
  ipv4?: string;
  /** e.g. "2001:db8::1/64" */
  ipv6?: string;
}

export interface LinkSpec {
  a: EndpointAddresses;
  b: EndpointAddresses;
  /** interface names inside the namespaces (default "veth-<other ns short name>") */
  ifA?: string;
  ifB?: string;
}

export interface SpawnOptions {
  name: string;
  env?: Record<string, string | undefined>;
  cwd?: string;
}

const NS_PREFIX = "bgpctl-";
let nsCounter = 0;
const liveLabs = new Set<Lab>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const lab of liveLabs) lab.cleanupSync();
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) {
    process.once(sig, () => {
      for (const lab of liveLabs) lab.cleanupSync();
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  }
}

/** Remove namespaces left behind by earlier runs whose process is gone. */
async function sweepStaleNamespaces(ip: string): Promise<void> {
  const res = await run([ip, "netns", "list"], { timeoutMs: 10_000 });
  if (res.code !== 0) return;
  for (const line of res.stdout.split("\n")) {
    const name = line.trim().split(/\s+/)[0] ?? "";
    const m = /^bgpctl-(\d+)-\d+$/.exec(name);
    if (!m) continue;
    const ownerPid = Number(m[1]);
    if (ownerPid === process.pid || pidAlive(ownerPid)) continue;
    const pids = await run([ip, "netns", "pids", name], { timeoutMs: 10_000 });
    for (const p of pids.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
      try {
        process.kill(Number(p), "SIGKILL");
      } catch {
        /* gone */
      }
    }
    await run([ip, "netns", "del", name], { timeoutMs: 10_000 });
  }
}

export class Lab {
  readonly dir: string;
  readonly namespaces: string[] = [];
  readonly processes: LabProcess[] = [];
  /** set when a wait timed out: the log directory is then kept for inspection */
  failed = false;
  private cleaned = false;
  private readonly ip: string;
  private readonly shortNames = new Map<string, string>();

  private constructor(readonly label: string) {
    this.ip = mustWhich("ip");
    this.dir = mkdtempSync(join(tmpdir(), `bgpctl-interop-${label}-`));
  }

  /** Create a lab (requires root). Also sweeps namespaces left by dead runs. */
  static async create(label = "lab"): Promise<Lab> {
    requireRoot();
    installExitHook();
    const lab = new Lab(label.replace(/[^\w-]/g, "_"));
    liveLabs.add(lab);
    await sweepStaleNamespaces(lab.ip);
    return lab;
  }

  /** Path of a file inside this lab's temp dir. */
  path(name: string): string {
    return join(this.dir, name);
  }

  /** Create a namespace with loopback up and IPv6 DAD off; returns its full name. */
  async addNamespace(short: string): Promise<string> {
    const name = `${NS_PREFIX}${process.pid}-${++nsCounter}`;
    await run([this.ip, "netns", "add", name], { check: true, timeoutMs: 10_000 });
    this.namespaces.push(name);
    this.shortNames.set(name, short);
    await this.exec(name, [this.ip, "link", "set", "lo", "up"], { check: true });
    await this.exec(
      name,
      [
        mustWhich("sysctl"),
        "-q",
        "-w",
        "net.ipv6.conf.all.accept_dad=0",
        "net.ipv6.conf.default.accept_dad=0",
        "net.ipv6.conf.all.disable_ipv6=0",
        "net.ipv6.conf.default.disable_ipv6=0",
      ],
      { check: true },
    );
    return name;
  }

  /** The short label a namespace was created with. */
  shortName(ns: string): string {
    return this.shortNames.get(ns) ?? ns;
  }

  /**
   * Join two namespaces with a veth pair, give both ends the given addresses
   * (IPv6 with `nodad`) and bring them up. Both ends are created directly in
   * their namespaces, so nothing ever appears in the host namespace.
   */
  async connect(nsA: string, nsB: string, spec: LinkSpec): Promise<{ ifA: string; ifB: string }> {
    const ifA = spec.ifA ?? `veth-${this.shortName(nsB)}`.slice(0, 15);
    const ifB = spec.ifB ?? `veth-${this.shortName(nsA)}`.slice(0, 15);
    await run([this.ip, "link", "add", ifA, "netns", nsA, "type", "veth", "peer", "name", ifB, "netns", nsB], {
      check: true,
      timeoutMs: 10_000,
    });
    const sysctl = mustWhich("sysctl");
    for (const [ns, ifname, addrs] of [
      [nsA, ifA, spec.a],
      [nsB, ifB, spec.b],
    ] as const) {
      await this.exec(ns, [sysctl, "-q", "-w", `net.ipv6.conf.${ifname}.accept_dad=0`], { check: true });
      if (addrs.ipv4) await this.exec(ns, [this.ip, "addr", "add", addrs.ipv4, "dev", ifname], { check: true });
      if (addrs.ipv6) {
        await this.exec(ns, [this.ip, "-6", "addr", "add", addrs.ipv6, "dev", ifname, "nodad"], { check: true });
      }
      await this.exec(ns, [this.ip, "link", "set", ifname, "up"], { check: true });
    }
    // Wait (bounded) until both ends are operationally up and IPv6 addresses are not tentative.
    await this.waitFor(
      async () => {
        for (const [ns, ifname] of [
          [nsA, ifA],
          [nsB, ifB],
        ] as const) {
          const r = await this.exec(ns, [this.ip, "-o", "addr", "show", "dev", ifname]);
          if (r.code !== 0 || r.stdout.includes("tentative")) return false;
          const l = await this.exec(ns, [this.ip, "-o", "link", "show", "dev", ifname]);
          if (!/state UP|LOWER_UP/.test(l.stdout)) return false;
        }
        return true;
      },
      { timeoutMs: 5000, what: `veth ${ifA}<->${ifB} to come up` },
    );
    return { ifA, ifB };
  }

  /** Run a command inside a namespace (`ip netns exec`). */
  exec(ns: string, argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
    return run([this.ip, "netns", "exec", ns, ...argv], opts);
  }

  /**
   * Start a long-running process inside a namespace. `ip netns exec` execs the
   * program in place, so the returned PID is the program's own PID.
   */
  spawn(ns: string, argv: readonly string[], opts: SpawnOptions): LabProcess {
    const safe = opts.name.replace(/[^\w.-]/g, "_");
    const logFile = join(this.dir, `${String(this.processes.length + 1).padStart(2, "0")}-${safe}.log`);
    const p = new LabProcess(opts.name, ns, [this.ip, "netns", "exec", ns, ...argv], logFile, opts.env, opts.cwd);
    this.processes.push(p);
    return p;
  }

  /**
   * Bounded polling (tests/support/wait.ts) with the lab's conventions: every
   * 100 ms by default, a predicate that throws counts as "not yet", and the
   * timeout message carries the recent output of `procs` (default: the lab's
   * processes). A timeout keeps the lab directory for inspection.
   */
  async waitFor<T>(predicate: () => T | Promise<T>, opts: WaitOptions): Promise<NonNullable<T>> {
    const { procs = this.recentProcesses(), ...rest } = opts;
    try {
      return await waitFor(predicate, {
        ...rest,
        intervalMs: Math.max(10, opts.intervalMs ?? 100),
        retryErrors: true,
        detail: () => procs.map((p) => p.describe(25)).join("\n"),
      });
    } catch (e) {
      this.failed = true;
      throw e;
    }
  }

  /** Running processes plus the last few that exited. */
  recentProcesses(): LabProcess[] {
    const running = this.processes.filter((p) => p.running);
    const exited = this.processes.filter((p) => !p.running).slice(-3);
    return [...exited, ...running];
  }

  /** Wait until something listens on TCP `port` inside `ns` (reads /proc/net/tcp{,6} there). */
  async waitListening(ns: string, port: number, timeoutMs = 5000, procs?: LabProcess[]): Promise<void> {
    const hex = port.toString(16).toUpperCase().padStart(4, "0");
    await this.waitFor(
      async () => {
        const r = await this.exec(ns, [mustWhich("cat"), "/proc/net/tcp", "/proc/net/tcp6"]);
        return r.stdout.split("\n").some((l) => {
          const f = l.trim().split(/\s+/);
          return f[1]?.endsWith(`:${hex}`) === true && f[3] === "0A";
        });
      },
      { timeoutMs, what: `a TCP listener on port ${port} in ${this.shortName(ns)}`, ...(procs ? { procs } : {}) },
    );
  }

  /** Stop every still-running process of the lab (SIGTERM, then SIGKILL). */
  async stopAll(timeoutMs = 3000): Promise<void> {
    await Promise.all(this.processes.filter((p) => p.running).map((p) => p.stop("SIGTERM", timeoutMs)));
  }

  /** Stop processes, delete namespaces, remove the temp dir (kept if something failed). */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    await this.stopAll();
    for (const ns of [...this.namespaces].reverse()) {
      const pids = await run([this.ip, "netns", "pids", ns], { timeoutMs: 10_000 });
      for (const p of pids.stdout.split(/\s+/).filter((s) => /^\d+$/.test(s))) {
        // Only processes inside our own namespace can be listed here.
        try {
          process.kill(Number(p), "SIGKILL");
        } catch {
          /* gone */
        }
      }
      await run([this.ip, "netns", "del", ns], { timeoutMs: 10_000 });
    }
    this.namespaces.length = 0;
    this.cleaned = true;
    liveLabs.delete(this);
    if (this.failed || process.env.BGPCTL_INTEROP_KEEP === "1") {
      console.error(`interop lab: logs kept in ${this.dir}`);
    } else {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  /** Synchronous last-resort cleanup for process exit. */
  cleanupSync(): void {
    if (this.cleaned) return;
    for (const p of this.processes) {
      if (p.running) {
        try {
          process.kill(p.pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
    for (const ns of this.namespaces) Bun.spawnSync([this.ip, "netns", "del", ns]);
    this.namespaces.length = 0;
    this.cleaned = true;
    liveLabs.delete(this);
  }
}

// ---------------------------------------------------------------------------
// Shared route shapes and parsing helpers
// ---------------------------------------------------------------------------

export type Family = "ipv4" | "ipv6";

export function familyOf(prefixOrAddr: string): Family {
  return prefixOrAddr.includes(":") ? "ipv6" : "ipv4";
}

/** A route as seen on a peer (BIRD or GoBGP), normalised. */
export interface PeerRoute {
  prefix: string;
  /** first next hop (the global one for IPv6) */
  nextHop: string | null;
  asPath: number[];
  origin: "igp" | "egp" | "incomplete" | null;
  med: number | null;
  localPref: number | null;
  /** "asn:value" */
  communities: string[];
  /** "global:local1:local2" */
  largeCommunities: string[];
}

export interface RouteSpec {
  prefix: string;
  communities?: string[];
  largeCommunities?: string[];
  med?: number;
  localPref?: number;
  /** AS numbers to put in the path before the router's own AS is prepended on eBGP export */
  asPath?: number[];
  /** explicit next hop (GoBGP); BIRD derives it from the session */
  nextHop?: string;
  /** ORIGIN (default: the daemon's own, igp for BIRD's static routes, incomplete for GoBGP's) */
  origin?: "igp" | "egp" | "incomplete";
}

function splitPair(s: string, n: 2 | 3): number[] {
  const parts = s.split(":").map((x) => Number(x));
  if (parts.length !== n || parts.some((x) => !Number.isInteger(x) || x < 0)) {
    throw new Error(`bad ${n === 2 ? "community" : "large community"} '${s}'`);
  }
  return parts;
}

// ---------------------------------------------------------------------------
// BIRD 2
// ---------------------------------------------------------------------------

export interface BirdPeerSpec {
  /** protocol name in bird.conf */
  name: string;
  neighbor: string;
  remoteAs: number;
  /** local address of the session */
  localAddress?: string;
  /** neighbor TCP port (default 179) */
  port?: number;
  families?: Family[];
  import?: "all" | "none";
  /** "static": only the routes from `routes` (default "all") */
  export?: "all" | "none" | "static";
  holdTime?: number;
  keepaliveTime?: number;
  /** false: `enable as4 off` (a 2-octet-only speaker) */
  as4?: boolean;
  passive?: boolean;
  /** iBGP defaults to `direct` + next hop self so no IGP is needed */
  nextHopSelf?: boolean;
  /** BIRD debug flags for the protocol (default states, events) */
  debug?: string[];
  /** raw extra lines put inside the protocol block */
  extra?: string[];
  /**
   * Graceful restart on (BIRD's default is `aware`: the capability without
   * restarting families): `graceful restart on; graceful restart time N;`,
   * with `longLivedStaleTime` also `long lived graceful restart on; long lived
   * stale time N;` (RFC 9494).
   */
  gracefulRestart?: { restartTime: number; longLivedStaleTime?: number };
}

export interface BirdConfigSpec {
  routerId: string;
  localAs: number;
  peers: BirdPeerSpec[];
  /** static routes (blackhole) exported with the given BGP attributes */
  routes?: RouteSpec[];
}

export function birdConfig(spec: BirdConfigSpec): string {
  const out: string[] = [];
  out.push(`# generated by tests/interop/lab.ts`);
  out.push(`log stderr all;`);
  out.push(`router id ${spec.routerId};`);
  out.push(`protocol device { scan time 10; }`);
  for (const fam of ["ipv4", "ipv6"] as const) {
    const routes = (spec.routes ?? []).filter((r) => familyOf(r.prefix) === fam);
    if (routes.length === 0) continue;
    out.push(`protocol static static_${fam} {`);
    out.push(`  ${fam};`);
    for (const r of routes) {
      const stmts: string[] = [];
      for (const asn of [...(r.asPath ?? [])].reverse()) stmts.push(`bgp_path.prepend(${asn});`);
      for (const c of r.communities ?? []) {
        const [a, b] = splitPair(c, 2);
        stmts.push(`bgp_community.add((${a},${b}));`);
      }
      for (const c of r.largeCommunities ?? []) {
        const [a, b, d] = splitPair(c, 3);
        stmts.push(`bgp_large_community.add((${a},${b},${d}));`);
      }
      if (r.localPref !== undefined) stmts.push(`bgp_local_pref = ${r.localPref};`);
      if (r.origin !== undefined) stmts.push(`bgp_origin = ORIGIN_${r.origin.toUpperCase()};`);
      out.push(`  route ${r.prefix} blackhole${stmts.length ? ` { ${stmts.join(" ")} }` : ""};`);
    }
    out.push(`}`);
  }
  for (const p of spec.peers) {
    const ibgp = p.remoteAs === spec.localAs;
    const hold = p.holdTime ?? 9;
    out.push(`protocol bgp ${p.name} {`);
    out.push(`  debug { ${(p.debug ?? ["states", "events"]).join(", ")} };`);
    out.push(`  local${p.localAddress ? ` ${p.localAddress}` : ""} as ${spec.localAs};`);
    out.push(`  neighbor ${p.neighbor}${p.port ? ` port ${p.port}` : ""} as ${p.remoteAs};`);
    out.push(`  hold time ${hold};`);
    out.push(`  keepalive time ${p.keepaliveTime ?? Math.max(1, Math.floor(hold / 3))};`);
    out.push(`  startup hold time 5;`);
    out.push(`  connect retry time 1;`);
    out.push(`  connect delay time 1;`);
    out.push(`  error wait time 1, 2;`);
    out.push(`  error forget time 5;`);
    if (p.as4 === false) out.push(`  enable as4 off;`);
    if (p.passive) out.push(`  passive on;`);
    if (p.gracefulRestart) {
      out.push(`  graceful restart on;`, `  graceful restart time ${p.gracefulRestart.restartTime};`);
      const ll = p.gracefulRestart.longLivedStaleTime;
      if (ll !== undefined) out.push(`  long lived graceful restart on;`, `  long lived stale time ${ll};`);
    }
    for (const l of p.extra ?? []) out.push(`  ${l}`);
    const exp = p.export ?? "all";
    // MED set on a static route is dropped by BIRD towards eBGP peers unless the
    // export filter sets it, so MEDs are applied here.
    const exportFor = (fam: Family): string => {
      const meds = (spec.routes ?? []).filter((r) => r.med !== undefined && familyOf(r.prefix) === fam);
      if (exp === "none") return "export none;";
      if (meds.length === 0) return exp === "static" ? "export where source = RTS_STATIC;" : "export all;";
      const f = exp === "static" ? ["if source != RTS_STATIC then reject;"] : [];
      for (const r of meds) f.push(`if net = ${r.prefix} then bgp_med = ${r.med};`);
      f.push("accept;");
      return `export filter { ${f.join(" ")} };`;
    };
    // iBGP is multihop by default in BIRD; `direct` makes it a directly connected
    // session whose next hops resolve on the interface (no IGP needed).
    if (ibgp) out.push(`  direct;`);
    for (const fam of p.families ?? (["ipv4", "ipv6"] as const)) {
      const ch = [`import ${p.import ?? "all"};`, exportFor(fam)];
      if (p.nextHopSelf ?? ibgp) ch.push("next hop self;");
      out.push(`  ${fam} { ${ch.join(" ")} };`);
    }
    out.push(`}`);
  }
  return out.join("\n") + "\n";
}

export interface BirdChannelInfo {
  state: string | null;
  /** "Import updates" received column */
  importUpdatesReceived: number | null;
  importUpdatesAccepted: number | null;
  routesImported: number | null;
  routesExported: number | null;
  raw: Record<string, string>;
}

export interface BirdProtocolInfo {
  name: string;
  /** up | down | start | ... */
  state: string;
  info: string;
  bgpState: string | null;
  neighborAs: number | null;
  localAs: number | null;
  neighborId: string | null;
  neighborAddress: string | null;
  session: string | null;
  lastError: string | null;
  message: string | null;
  holdTime: number | null;
  localCapabilities: string[];
  neighborCapabilities: string[];
  channels: Record<string, BirdChannelInfo>;
  raw: string;
}

export interface BirdRoute extends PeerRoute {
  table: string;
  protocol: string;
  type: string;
  primary: boolean;
  /** all next hops listed in BGP.next_hop */
  nextHops: string[];
  attrs: Record<string, string>;
}

function stripBirdBanner(out: string): string[] {
  return out.split("\n").filter((l) => !/^BIRD [\d.]+ ready\.$/.test(l.trim()));
}

/** Parse `birdc show protocols all NAME`. */
export function parseBirdProtocol(out: string): BirdProtocolInfo | null {
  const lines = stripBirdBanner(out);
  const hdr = lines.findIndex((l) => /^Name\s+Proto\s+Table\s+State/.test(l));
  if (hdr < 0 || !lines[hdr + 1]) return null;
  const head = (lines[hdr + 1] ?? "").trim().split(/\s+/);
  // Name Proto Table State Since(1-2 tokens) Info...
  let rest = head.slice(4);
  if (rest[0] && /^\d{4}-\d{2}-\d{2}$/.test(rest[0])) rest = rest.slice(1);
  const info: BirdProtocolInfo = {
    name: head[0] ?? "",
    state: head[3] ?? "",
    info: rest.slice(1).join(" "),
    bgpState: null,
    neighborAs: null,
    localAs: null,
    neighborId: null,
    neighborAddress: null,
    session: null,
    lastError: null,
    message: null,
    holdTime: null,
    localCapabilities: [],
    neighborCapabilities: [],
    channels: {},
    raw: out,
  };
  let capList: string[] | null = null;
  let capIndent = 0;
  let channel: BirdChannelInfo | null = null;
  for (const line of lines.slice(hdr + 2)) {
    if (line.trim() === "") continue;
    const indent = line.length - line.trimStart().length;
    const t = line.trim();
    const ch = /^Channel (\S+)$/.exec(t);
    if (ch && indent <= 2) {
      channel = {
        state: null,
        importUpdatesReceived: null,
        importUpdatesAccepted: null,
        routesImported: null,
        routesExported: null,
        raw: {},
      };
      info.channels[ch[1] ?? ""] = channel;
      capList = null;
      continue;
    }
    if (capList && indent > capIndent) {
      const name = t.replace(/:.*$/, "");
      if (indent === capIndent + 2) capList.push(name);
      continue;
    }
    capList = null;
    if (t === "Local capabilities") {
      capList = info.localCapabilities;
      capIndent = indent;
      continue;
    }
    if (t === "Neighbor capabilities") {
      capList = info.neighborCapabilities;
      capIndent = indent;
      continue;
    }
    const kv = /^([^:]+):\s*(.*)$/.exec(t);
    if (!kv) continue;
    const key = (kv[1] ?? "").trim();
    const val = (kv[2] ?? "").trim();
    if (channel) {
      channel.raw[key] = val;
      if (key === "State") channel.state = val;
      if (key === "Import updates") {
        const nums = val.split(/\s+/).map((x) => (x === "---" ? NaN : Number(x)));
        channel.importUpdatesReceived = Number.isFinite(nums[0]) ? (nums[0] ?? null) : null;
        channel.importUpdatesAccepted = Number.isFinite(nums[4]) ? (nums[4] ?? null) : null;
      }
      if (key === "Routes") {
        const m = /(\d+) imported, (?:\d+ filtered, )?(\d+) exported/.exec(val);
        if (m) {
          channel.routesImported = Number(m[1]);
          channel.routesExported = Number(m[2]);
        }
      }
      continue;
    }
    switch (key) {
      case "BGP state":
        info.bgpState = val;
        break;
      case "Neighbor AS":
        info.neighborAs = Number(val);
        break;
      case "Local AS":
        info.localAs = Number(val);
        break;
      case "Neighbor ID":
        info.neighborId = val;
        break;
      case "Neighbor address":
        info.neighborAddress = val;
        break;
      case "Session":
        info.session = val;
        break;
      case "Last error":
        info.lastError = val;
        break;
      case "Message":
        info.message = val;
        break;
      case "Hold timer": {
        const m = /\/(\d+)/.exec(val);
        if (m) info.holdTime = Number(m[1]);
        break;
      }
    }
  }
  return info;
}

function birdOrigin(v: string | undefined): PeerRoute["origin"] {
  if (!v) return null;
  const l = v.toLowerCase();
  return l === "igp" ? "igp" : l === "egp" ? "egp" : l === "incomplete" ? "incomplete" : null;
}

/** Parse `birdc show route all ...` output. */
export function parseBirdRoutes(out: string): BirdRoute[] {
  const routes: BirdRoute[] = [];
  let table = "";
  let prefix = "";
  let cur: BirdRoute | null = null;
  const finish = () => {
    if (!cur) return;
    const a = cur.attrs;
    const nh = (a["BGP.next_hop"] ?? "").split(/\s+/).filter((x) => x.length > 0);
    cur.nextHops = nh;
    cur.nextHop = nh[0] ?? cur.nextHop;
    cur.asPath = (a["BGP.as_path"] ?? "").match(/\d+/g)?.map(Number) ?? [];
    cur.origin = birdOrigin(a["BGP.origin"]);
    cur.med = a["BGP.med"] !== undefined ? Number(a["BGP.med"]) : null;
    cur.localPref = a["BGP.local_pref"] !== undefined ? Number(a["BGP.local_pref"]) : null;
    cur.communities = [...(a["BGP.community"] ?? "").matchAll(/\((\d+),\s*(\d+)\)/g)].map((m) => `${m[1]}:${m[2]}`);
    cur.largeCommunities = [...(a["BGP.large_community"] ?? "").matchAll(/\((\d+),\s*(\d+),\s*(\d+)\)/g)].map(
      (m) => `${m[1]}:${m[2]}:${m[3]}`,
    );
    routes.push(cur);
    cur = null;
  };
  for (const line of stripBirdBanner(out)) {
    if (line.trim() === "") continue;
    const tm = /^Table (\S+):$/.exec(line);
    if (tm) {
      finish();
      table = tm[1] ?? "";
      continue;
    }
    // "<prefix>   unicast [proto time ...] * (100) [AS65002i]" or "   unicast [...]" for an alternative
    const rm = /^(\S+)?\s+(\w+)\s+\[(\S+)\s[^\]]*\]\s*(\*)?/.exec(line);
    if (rm && !line.startsWith("\t")) {
      finish();
      if (rm[1]) prefix = rm[1];
      cur = {
        prefix,
        table,
        protocol: rm[3] ?? "",
        type: rm[2] ?? "",
        primary: rm[4] === "*",
        nextHop: null,
        nextHops: [],
        asPath: [],
        origin: null,
        med: null,
        localPref: null,
        communities: [],
        largeCommunities: [],
        attrs: {},
      };
      continue;
    }
    if (!cur) continue;
    const t = line.trim();
    const via = /^via (\S+)/.exec(t);
    if (via) {
      cur.nextHop = via[1] ?? null;
      continue;
    }
    const kv = /^([\w.]+):\s*(.*)$/.exec(t);
    if (kv) cur.attrs[kv[1] ?? ""] = kv[2] ?? "";
  }
  finish();
  return routes;
}

export class BirdInstance {
  private constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly name: string,
    readonly confPath: string,
    readonly socket: string,
    readonly proc: LabProcess,
  ) {}

  /** Write bird.conf for `spec` into the lab dir and start `bird -f` in `ns`; waits until birdc answers. */
  static async start(lab: Lab, ns: string, spec: BirdConfigSpec, name = "bird"): Promise<BirdInstance> {
    const uniq = `${name}-${lab.processes.length + 1}`;
    const confPath = lab.path(`${uniq}.conf`);
    writeFileSync(confPath, birdConfig(spec));
    return BirdInstance.startWithConfig(lab, ns, confPath, name, spec.peers.length > 0);
  }

  /**
   * Start BIRD again after it died (e.g. SIGKILL), in the same namespace on
   * the same config file rewritten for `spec`; `recovery`: `bird -R`, a
   * graceful restart (Restart State and Forwarding State bits in its OPENs).
   */
  static async restart(prev: BirdInstance, spec: BirdConfigSpec, recovery: boolean): Promise<BirdInstance> {
    if (prev.proc.running) throw new Error(`${prev.name} is still running: stop or kill it first`);
    writeFileSync(prev.confPath, birdConfig(spec));
    return BirdInstance.startWithConfig(prev.lab, prev.ns, prev.confPath, prev.name.replace(/-\d+$/, ""), spec.peers.length > 0, recovery ? ["-R"] : []);
  }

  /** Start `bird -f` in `ns` on an existing config file (checked with `bird -p` first); waits until birdc answers. */
  static async startWithConfig(lab: Lab, ns: string, confPath: string, name = "bird", waitForBgpPort = true, extraArgs: string[] = []): Promise<BirdInstance> {
    const uniq = `${name}-${lab.processes.length + 1}`;
    const socket = lab.path(`${uniq}.ctl`);
    const check = await lab.exec(ns, [mustWhich("bird"), "-p", "-c", confPath]);
    if (check.code !== 0) {
      throw new Error(`bird.conf rejected:\n${check.stderr}${check.stdout}\n--- ${confPath} ---\n${readFileSync(confPath, "utf8")}`);
    }
    const proc = lab.spawn(ns, [mustWhich("bird"), "-f", "-c", confPath, "-s", socket, ...extraArgs], { name: uniq });
    const bird = new BirdInstance(lab, ns, uniq, confPath, socket, proc);
    await lab.waitFor(
      async () => {
        if (!proc.running) throw new Error("bird exited");
        const r = await bird.birdc("show", "status");
        return r.code === 0 && /Daemon is up and running/.test(r.stdout);
      },
      { timeoutMs: 5000, intervalMs: 50, what: `${uniq} to answer on its control socket`, procs: [proc] },
    );
    if (waitForBgpPort) await lab.waitListening(ns, 179, 5000, [proc]);
    return bird;
  }

  /** Run birdc against this instance's control socket. */
  birdc(...args: string[]): Promise<ExecResult> {
    return run([mustWhich("birdc"), "-s", this.socket, ...args], { timeoutMs: 10_000 });
  }

  /** Run a birdc command and throw on a birdc-level error (syntax error, unknown protocol, ...). */
  async command(...args: string[]): Promise<string> {
    const r = await this.birdc(...args);
    const text = r.stdout + r.stderr;
    if (r.code !== 0 || /syntax error|No protocols match|Unknown command|Access denied/i.test(text)) {
      throw new Error(`birdc ${describeArgv(args)} failed (exit ${r.code}):\n${text}`);
    }
    return r.stdout;
  }

  async protocol(protoName: string): Promise<BirdProtocolInfo> {
    const out = await this.command("show", "protocols", "all", protoName);
    const info = parseBirdProtocol(out);
    if (!info) throw new Error(`could not parse 'show protocols all ${protoName}':\n${out}`);
    return info;
  }

  async waitEstablished(protoName: string, timeoutMs = 15_000, procs?: LabProcess[]): Promise<BirdProtocolInfo> {
    return this.lab.waitFor(
      async () => {
        const p = await this.protocol(protoName);
        return p.bgpState === "Established" ? p : null;
      },
      { timeoutMs, what: `BIRD protocol ${protoName} to be Established`, procs: [this.proc, ...(procs ?? [])] },
    );
  }

  /** `show route all` (optionally for one protocol / table), parsed. */
  async routes(opts: { protocol?: string; table?: string } = {}): Promise<BirdRoute[]> {
    const tables = opts.table ? [opts.table] : ["master4", "master6"];
    const routes: BirdRoute[] = [];
    for (const t of tables) {
      const args = ["show", "route", "all", "table", t];
      if (opts.protocol) args.push("protocol", opts.protocol);
      routes.push(...parseBirdRoutes(await this.command(...args)));
    }
    return routes;
  }

  /** `disable NAME ["message"]`: Cease/Administrative Shutdown with an optional shutdown communication. */
  async disable(protoName: string, message?: string): Promise<string> {
    const args = ["disable", protoName];
    if (message !== undefined) args.push(JSON.stringify(message));
    return this.command(...args);
  }

  async enable(protoName: string): Promise<string> {
    return this.command("enable", protoName);
  }

  /** `reload in NAME`: BIRD asks the peer for its routes again (sends ROUTE-REFRESH). */
  async reloadIn(protoName: string): Promise<string> {
    return this.command("reload", "in", protoName);
  }

  /** `reload out NAME`: BIRD re-sends its routes to the peer. */
  async reloadOut(protoName: string): Promise<string> {
    return this.command("reload", "out", protoName);
  }

  pause(): void {
    this.proc.signal("SIGSTOP");
  }

  resume(): void {
    this.proc.signal("SIGCONT");
  }

  stop(): Promise<number | null> {
    return this.proc.stop("SIGTERM", 3000);
  }
}

// ---------------------------------------------------------------------------
// GoBGP
// ---------------------------------------------------------------------------

export interface GobgpNeighborSpec {
  address: string;
  remoteAs: number;
  localAddress?: string;
  /** neighbor TCP port (default 179) */
  port?: number;
  passive?: boolean;
  holdTime?: number;
  keepaliveInterval?: number;
  connectRetry?: number;
  families?: Family[];
  /**
   * Enable graceful restart (RFC 4724) for the neighbor and its families
   * (`true`: restart time 30 s). GoBGP sends End-of-RIB only when graceful
   * restart is enabled on its side. `notification`: RFC 8538 (the N bit);
   * `longLivedTime`: RFC 9494 per family with that stale time.
   */
  gracefulRestart?: boolean | { restartTime: number; notification?: boolean; longLivedTime?: number };
  /** `admin-down`: configured but not started until `gobgp neighbor ADDR enable` */
  adminDown?: boolean;
}

export interface GobgpConfigSpec {
  as: number;
  routerId: string;
  /** BGP listen port (default 179) */
  listenPort?: number;
  neighbors: GobgpNeighborSpec[];
}

export function gobgpConfig(spec: GobgpConfigSpec): string {
  const out: string[] = [];
  out.push(`# generated by tests/interop/lab.ts`);
  out.push(`[global.config]`);
  out.push(`  as = ${spec.as}`);
  out.push(`  router-id = "${spec.routerId}"`);
  out.push(`  port = ${spec.listenPort ?? 179}`);
  for (const n of spec.neighbors) {
    const hold = n.holdTime ?? 9;
    out.push(``);
    out.push(`[[neighbors]]`);
    out.push(`  [neighbors.config]`);
    out.push(`    neighbor-address = "${n.address}"`);
    out.push(`    peer-as = ${n.remoteAs}`);
    if (n.adminDown) out.push(`    admin-down = true`);
    out.push(`  [neighbors.timers.config]`);
    out.push(`    connect-retry = ${n.connectRetry ?? 1}`);
    out.push(`    hold-time = ${hold}`);
    out.push(`    keepalive-interval = ${n.keepaliveInterval ?? Math.max(1, Math.floor(hold / 3))}`);
    out.push(`    idle-hold-time-after-reset = 1`);
    out.push(`  [neighbors.transport.config]`);
    out.push(`    passive-mode = ${n.passive ? "true" : "false"}`);
    if (n.localAddress) out.push(`    local-address = "${n.localAddress}"`);
    if (n.port) out.push(`    remote-port = ${n.port}`);
    const gr = n.gracefulRestart === true ? { restartTime: 30 } : n.gracefulRestart || null;
    if (gr) {
      out.push(`  [neighbors.graceful-restart.config]`);
      out.push(`    enabled = true`);
      out.push(`    restart-time = ${gr.restartTime}`);
      if (gr.notification) out.push(`    notification-enabled = true`);
      if (gr.longLivedTime !== undefined) out.push(`    long-lived-enabled = true`);
    }
    for (const fam of n.families ?? (["ipv4", "ipv6"] as const)) {
      out.push(`  [[neighbors.afi-safis]]`);
      out.push(`    [neighbors.afi-safis.config]`);
      out.push(`      afi-safi-name = "${fam}-unicast"`);
      if (gr) {
        out.push(`    [neighbors.afi-safis.mp-graceful-restart.config]`);
        out.push(`      enabled = true`);
      }
      if (gr?.longLivedTime !== undefined) {
        out.push(`    [neighbors.afi-safis.long-lived-graceful-restart.config]`);
        out.push(`      enabled = true`);
        out.push(`      restart-time = ${gr.longLivedTime}`);
      }
    }
  }
  return out.join("\n") + "\n";
}

const GOBGP_SESSION_STATES: Record<number, string> = {
  0: "unknown",
  1: "idle",
  2: "connect",
  3: "active",
  4: "opensent",
  5: "openconfirm",
  6: "established",
};

export interface GobgpNeighborInfo {
  address: string;
  /** lower-case FSM state name: idle, connect, active, opensent, openconfirm, established */
  state: string;
  peerAs: number | null;
  routerId: string | null;
  adminState: string | null;
  /** capability names the neighbor advertised, e.g. "RouteRefreshCapability", "FourOctetASNCapability" */
  remoteCapabilities: string[];
  /** message counters, e.g. messages.received.update, messages.sent.notification */
  messages: { received: Record<string, number>; sent: Record<string, number> };
  raw: unknown;
}

export interface GobgpRoute extends PeerRoute {
  neighbor: string | null;
  best: boolean;
}

type Json = Record<string, unknown>;

function asObj(v: unknown): Json {
  return v !== null && typeof v === "object" ? (v as Json) : {};
}

function parseGobgpPath(prefix: string, p: Json): GobgpRoute {
  const r: GobgpRoute = {
    prefix,
    nextHop: null,
    asPath: [],
    origin: null,
    med: null,
    localPref: null,
    communities: [],
    largeCommunities: [],
    neighbor: typeof p["neighbor-ip"] === "string" ? (p["neighbor-ip"] as string) : null,
    best: p.best === true,
  };
  for (const a of (Array.isArray(p.attrs) ? p.attrs : []) as Json[]) {
    switch (a.type) {
      case 1:
        r.origin = (["igp", "egp", "incomplete"] as const)[Number(a.value)] ?? null;
        break;
      case 2:
        for (const seg of (Array.isArray(a.as_paths) ? a.as_paths : []) as Json[]) {
          for (const asn of (Array.isArray(seg.asns) ? seg.asns : []) as number[]) r.asPath.push(Number(asn));
        }
        break;
      case 3:
        r.nextHop = String(a.nexthop);
        break;
      case 4:
        r.med = Number(a.metric);
        break;
      case 5:
        r.localPref = Number(a.value);
        break;
      case 8:
        for (const c of (Array.isArray(a.communities) ? a.communities : []) as number[]) {
          r.communities.push(`${Math.floor(c / 65536)}:${c % 65536}`);
        }
        break;
      case 14:
        if (a.nexthop !== undefined) r.nextHop = String(a.nexthop);
        break;
      case 32:
        for (const lc of (Array.isArray(a.value) ? a.value : []) as Json[]) {
          r.largeCommunities.push(`${lc.ASN}:${lc.LocalData1}:${lc.LocalData2}`);
        }
        break;
    }
  }
  return r;
}

/** Parse `gobgp ... rib -j` output: {"prefix": [path, ...], ...}. */
export function parseGobgpRib(out: string): GobgpRoute[] {
  const t = out.trim();
  if (t === "" || t === "null") return [];
  const obj = asObj(JSON.parse(t));
  const routes: GobgpRoute[] = [];
  for (const [prefix, paths] of Object.entries(obj)) {
    for (const p of (Array.isArray(paths) ? paths : []) as Json[]) routes.push(parseGobgpPath(prefix, p));
  }
  return routes;
}

export class GobgpInstance {
  private constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly name: string,
    readonly confPath: string,
    readonly apiPort: number,
    readonly proc: LabProcess,
  ) {}

  /**
   * Write a TOML config and start gobgpd in `ns` with its gRPC API on the
   * namespace's own loopback; waits until the API answers. `opts.confPath`:
   * the config file of an earlier gobgpd to rewrite and reuse; `opts.args`:
   * extra gobgpd flags (e.g. `-r`, a graceful restart).
   */
  static async start(
    lab: Lab,
    ns: string,
    spec: GobgpConfigSpec,
    name = "gobgpd",
    apiPort = 50051,
    opts: { args?: string[]; confPath?: string } = {},
  ): Promise<GobgpInstance> {
    const uniq = `${name}-${lab.processes.length + 1}`;
    const confPath = opts.confPath ?? lab.path(`${uniq}.toml`);
    writeFileSync(confPath, gobgpConfig(spec));
    const proc = lab.spawn(
      ns,
      [
        mustWhich("gobgpd"),
        "-f",
        confPath,
        "-t",
        "toml",
        "-p",
        "-l",
        "info",
        "--api-hosts",
        `127.0.0.1:${apiPort}`,
        "--pprof-disable",
        ...(opts.args ?? []),
      ],
      { name: uniq },
    );
    const g = new GobgpInstance(lab, ns, uniq, confPath, apiPort, proc);
    await lab.waitFor(
      async () => {
        if (!proc.running) throw new Error("gobgpd exited");
        const r = await g.cli("global");
        return r.code === 0 && /AS:/.test(r.stdout);
      },
      { timeoutMs: 8000, intervalMs: 100, what: `${uniq} API to answer`, procs: [proc] },
    );
    // Neighbors from the config file are added right after the API comes up.
    await lab.waitFor(
      async () => {
        const r = await g.cli("neighbor", "-j");
        if (r.code !== 0) return false;
        const arr = JSON.parse(r.stdout || "[]") as unknown[];
        return Array.isArray(arr) && arr.length >= spec.neighbors.length;
      },
      { timeoutMs: 5000, what: `${uniq} to load its neighbors`, procs: [proc] },
    );
    await lab.waitListening(ns, spec.listenPort ?? 179, 5000, [proc]);
    return g;
  }

  /**
   * Start gobgpd again after it died (e.g. SIGKILL): same namespace, API
   * port and config file (rewritten for `spec`); `restarting`: `gobgpd -r`,
   * a graceful restart (Restart State and Forwarding State bits).
   */
  static async restart(prev: GobgpInstance, spec: GobgpConfigSpec, restarting: boolean): Promise<GobgpInstance> {
    if (prev.proc.running) throw new Error(`${prev.name} is still running: stop or kill it first`);
    const name = prev.name.replace(/-\d+$/, "");
    return GobgpInstance.start(prev.lab, prev.ns, spec, name, prev.apiPort, { confPath: prev.confPath, args: restarting ? ["-r"] : [] });
  }

  /** Run the gobgp client inside the namespace against this daemon. */
  cli(...args: string[]): Promise<ExecResult> {
    return this.lab.exec(this.ns, [mustWhich("gobgp"), "-u", "127.0.0.1", "-p", String(this.apiPort), ...args], {
      timeoutMs: 10_000,
    });
  }

  async command(...args: string[]): Promise<string> {
    const r = await this.cli(...args);
    if (r.code !== 0) throw new Error(`gobgp ${describeArgv(args)} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  async neighbor(address: string): Promise<GobgpNeighborInfo> {
    const out = await this.command("neighbor", address, "-j");
    const obj = asObj(JSON.parse(out));
    const state = asObj(obj.state);
    const conf = asObj(obj.conf);
    const ss = state.session_state;
    const stateName =
      typeof ss === "number" ? (GOBGP_SESSION_STATES[ss] ?? String(ss)) : String(ss ?? "unknown").toLowerCase();
    return {
      address,
      state: stateName,
      peerAs: typeof state.peer_asn === "number" ? state.peer_asn : typeof conf.peer_asn === "number" ? conf.peer_asn : null,
      routerId: typeof state.router_id === "string" ? state.router_id : null,
      adminState: state.admin_state !== undefined ? String(state.admin_state) : null,
      remoteCapabilities: ((Array.isArray(state.remote_cap) ? state.remote_cap : []) as Json[]).map((c) =>
        String(c.type_url ?? "").replace(/^.*\./, ""),
      ),
      messages: {
        received: asObj(asObj(state.messages).received) as Record<string, number>,
        sent: asObj(asObj(state.messages).sent) as Record<string, number>,
      },
      raw: obj,
    };
  }

  async waitEstablished(address: string, timeoutMs = 15_000, procs?: LabProcess[]): Promise<GobgpNeighborInfo> {
    return this.lab.waitFor(
      async () => {
        const n = await this.neighbor(address);
        return n.state === "established" ? n : null;
      },
      { timeoutMs, what: `GoBGP neighbor ${address} to be established`, procs: [this.proc, ...(procs ?? [])] },
    );
  }

  /** The global RIB of one family. */
  async rib(family: Family): Promise<GobgpRoute[]> {
    return parseGobgpRib(await this.command("global", "rib", "-a", family, "-j"));
  }

  /** Adj-RIB-In of one neighbor. */
  async adjIn(address: string, family: Family): Promise<GobgpRoute[]> {
    return parseGobgpRib(await this.command("neighbor", address, "adj-in", "-a", family, "-j"));
  }

  /** `gobgp global rib -a FAMILY add PREFIX [nexthop NH] [origin O] [med N] [local-pref N] [community ...] [large-community ...]` */
  async addRoute(r: RouteSpec): Promise<void> {
    const args = ["global", "rib", "-a", familyOf(r.prefix), "add", r.prefix];
    if (r.nextHop) args.push("nexthop", r.nextHop);
    if (r.origin) args.push("origin", r.origin);
    if (r.asPath && r.asPath.length > 0) args.push("aspath", r.asPath.join(" "));
    if (r.med !== undefined) args.push("med", String(r.med));
    if (r.localPref !== undefined) args.push("local-pref", String(r.localPref));
    if (r.communities && r.communities.length > 0) args.push("community", r.communities.join(","));
    if (r.largeCommunities && r.largeCommunities.length > 0) args.push("large-community", r.largeCommunities.join(","));
    await this.command(...args);
  }

  async delRoute(prefix: string): Promise<void> {
    await this.command("global", "rib", "-a", familyOf(prefix), "del", prefix);
  }

  /**
   * `gobgp neighbor ADDR softresetin`: re-runs import policy over GoBGP's own
   * Adj-RIB-In. Checked against BIRD: GoBGP 3.10 sends NO ROUTE-REFRESH for it
   * (nor for `softreset`), so GoBGP cannot be used to make a peer re-send.
   */
  async softResetIn(address: string, family?: Family): Promise<void> {
    await this.command("neighbor", address, "softresetin", ...(family ? ["-a", family] : []));
  }

  /** `gobgp neighbor ADDR softresetout`: re-sends our routes to the peer. */
  async softResetOut(address: string, family?: Family): Promise<void> {
    await this.command("neighbor", address, "softresetout", ...(family ? ["-a", family] : []));
  }

  /**
   * Cease/Administrative Shutdown, optionally with a shutdown communication.
   * GoBGP 3.x only puts `--reason` into the NOTIFICATION for the (deprecated)
   * `shutdown` verb; `disable` sends an empty communication.
   */
  async disable(address: string, reason?: string): Promise<void> {
    if (reason !== undefined) await this.command("neighbor", address, "shutdown", "--reason", reason);
    else await this.command("neighbor", address, "disable");
  }

  async enable(address: string): Promise<void> {
    await this.command("neighbor", address, "enable");
  }

  pause(): void {
    this.proc.signal("SIGSTOP");
  }

  resume(): void {
    this.proc.signal("SIGCONT");
  }

  stop(): Promise<number | null> {
    return this.proc.stop("SIGTERM", 3000);
  }
}

// ---------------------------------------------------------------------------
// bgpctl
// ---------------------------------------------------------------------------

export const BGPCTL_BIN = process.env.BGPCTL_BIN ?? join(REPO_ROOT, "dist", "bgpctl");

/** Newest modification time (ms) of the sources that go into the binary. */
function newestSourceMtime(): number {
  let newest = 0;
  const visit = (p: string): void => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) if (e !== "node_modules") visit(join(p, e));
    } else if (/\.(ts|json)$/.test(p)) {
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  for (const p of ["main.ts", "package.json", "commands", "lib", "ffi"]) visit(join(REPO_ROOT, p));
  return newest;
}

/**
 * Path of the compiled bgpctl binary; builds it with `npm run build` when it
 * is missing or older than its sources (or when BGPCTL_INTEROP_REBUILD=1).
 * BGPCTL_BIN points at a prebuilt binary instead (never rebuilt). Throws when
 * it cannot build.
 */
export async function ensureBinary(): Promise<string> {
  if (process.env.BGPCTL_BIN) {
    if (!existsSync(BGPCTL_BIN)) throw new Error(`interop: BGPCTL_BIN=${BGPCTL_BIN} does not exist`);
    return BGPCTL_BIN;
  }
  const fresh = existsSync(BGPCTL_BIN) && statSync(BGPCTL_BIN).mtimeMs >= newestSourceMtime();
  if (fresh && process.env.BGPCTL_INTEROP_REBUILD !== "1") return BGPCTL_BIN;
  const npm = which("npm");
  const res = npm
    ? await run([npm, "run", "build"], { cwd: REPO_ROOT, timeoutMs: 300_000 })
    : await run([join(REPO_ROOT, "node_modules", ".bin", "bun"), "build", "--compile", "main.ts", "--outfile", "dist/bgpctl"], {
        cwd: REPO_ROOT,
        timeoutMs: 300_000,
      });
  if (res.code !== 0 || !existsSync(BGPCTL_BIN)) {
    throw new Error(
      `interop: could not build ${BGPCTL_BIN} (exit ${res.code}):\n${res.stdout.slice(-3000)}\n${res.stderr.slice(-3000)}`,
    );
  }
  return BGPCTL_BIN;
}

export interface BgpctlSessionOptions {
  remoteAs: number;
  localAs: number;
  routerId?: string;
  /** peer TCP port */
  port?: number;
  localAddress?: string;
  passive?: boolean;
  holdTime?: number;
  families?: Family[];
  advertise?: string[];
  /** one `--next-hop` per value (an IPv4 one for IPv4 routes, an IPv6 one for IPv6 routes) */
  nextHops?: string[];
  communities?: string[];
  largeCommunities?: string[];
  extraArgs?: string[];
}

export function bgpctlSessionArgs(o: BgpctlSessionOptions): string[] {
  const a = ["--remote-as", String(o.remoteAs), "--local-as", String(o.localAs)];
  if (o.routerId) a.push("--router-id", o.routerId);
  if (o.port !== undefined) a.push("--port", String(o.port));
  if (o.localAddress) a.push("--local-address", o.localAddress);
  if (o.passive) a.push("--passive");
  if (o.holdTime !== undefined) a.push("--hold-time", String(o.holdTime));
  if (o.families && o.families.length > 0) a.push("--family", o.families.join(","));
  for (const p of o.advertise ?? []) a.push("--advertise", p);
  for (const nh of o.nextHops ?? []) a.push("--next-hop", nh);
  for (const c of o.communities ?? []) a.push("--community", c);
  for (const c of o.largeCommunities ?? []) a.push("--large-community", c);
  a.push(...(o.extraArgs ?? []));
  return a;
}

export interface StateEvent {
  event: "state";
  from: string;
  to: string;
  reason?: string;
}
export interface EstablishedEvent {
  event: "established";
  peerAs: number;
  routerId: string;
  holdTime: number;
  families: string[];
  capabilities: string[];
}
export interface BgpctlRoute {
  prefix: string;
  nextHop: string;
  asPath: number[];
  origin: string;
  med: number | null;
  localPref: number | null;
  communities: string[];
  largeCommunities: string[];
  peer: string;
}
export interface AnnounceEvent extends BgpctlRoute {
  event: "announce";
}
export interface WithdrawEvent {
  event: "withdraw";
  prefix: string;
  peer: string;
}
export interface EorEvent {
  event: "eor";
  family: string;
}
export interface NotificationEvent {
  event: "notification";
  direction: "received" | "sent";
  code: number;
  subcode: number;
  message: string | null;
  text: string;
}
export interface RouteRefreshEvent {
  event: "route-refresh";
  family: string;
  direction?: string;
}
export interface BgpctlEventMap {
  state: StateEvent;
  established: EstablishedEvent;
  announce: AnnounceEvent;
  withdraw: WithdrawEvent;
  eor: EorEvent;
  notification: NotificationEvent;
  "route-refresh": RouteRefreshEvent;
}
export type BgpctlEventName = keyof BgpctlEventMap;
export type BgpctlEvent = BgpctlEventMap[BgpctlEventName];

/** A running `bgpctl peer ... --json` process and its parsed event stream. */
export class BgpctlPeer {
  private parsedUpTo = 0;
  private readonly parsed: Json[] = [];

  constructor(
    readonly lab: Lab,
    readonly proc: LabProcess,
    readonly address: string,
  ) {}

  /** Every JSON object printed on stdout so far, in order. */
  events(): Json[] {
    const lines = this.proc.lines;
    for (; this.parsedUpTo < lines.length; this.parsedUpTo++) {
      const l = lines[this.parsedUpTo];
      if (!l || l.stream !== "stdout") continue;
      const t = l.text.trim();
      if (!t.startsWith("{")) continue;
      try {
        const v = JSON.parse(t) as unknown;
        if (v && typeof v === "object" && !Array.isArray(v)) this.parsed.push(v as Json);
      } catch {
        /* not JSON */
      }
    }
    return this.parsed;
  }

  all<K extends BgpctlEventName>(kind: K, pred?: (e: BgpctlEventMap[K]) => boolean): BgpctlEventMap[K][] {
    return this.events()
      .filter((e) => e.event === kind)
      .map((e) => e as unknown as BgpctlEventMap[K])
      .filter((e) => !pred || pred(e));
  }

  find<K extends BgpctlEventName>(kind: K, pred?: (e: BgpctlEventMap[K]) => boolean): BgpctlEventMap[K] | undefined {
    return this.all(kind, pred)[0];
  }

  /** Wait (bounded) for an event; extra processes' output goes into the timeout message. */
  async waitEvent<K extends BgpctlEventName>(
    kind: K,
    pred: ((e: BgpctlEventMap[K]) => boolean) | undefined,
    opts: { timeoutMs?: number; what?: string; procs?: LabProcess[] } = {},
  ): Promise<BgpctlEventMap[K]> {
    return this.lab.waitFor(() => this.find(kind, pred), {
      timeoutMs: opts.timeoutMs ?? 15_000,
      what: `bgpctl ${opts.what ?? `'${kind}' event`}`,
      procs: [this.proc, ...(opts.procs ?? [])],
    });
  }

  waitEstablished(opts: { timeoutMs?: number; procs?: LabProcess[] } = {}): Promise<EstablishedEvent> {
    return this.waitEvent("established", undefined, { ...opts, what: "session to be established" });
  }

  /** Current routes learned: last announce per prefix, minus later withdraws. */
  routes(): Map<string, AnnounceEvent> {
    const m = new Map<string, AnnounceEvent>();
    for (const e of this.events()) {
      if (e.event === "announce") m.set(String(e.prefix), e as unknown as AnnounceEvent);
      if (e.event === "withdraw") m.delete(String(e.prefix));
    }
    return m;
  }

  /** Wait until the given prefixes are all announced; returns them. */
  async waitRoutes(prefixes: string[], opts: { timeoutMs?: number; procs?: LabProcess[] } = {}): Promise<Map<string, AnnounceEvent>> {
    return this.lab.waitFor(
      () => {
        const r = this.routes();
        return prefixes.every((p) => r.has(p)) ? r : null;
      },
      { timeoutMs: opts.timeoutMs ?? 15_000, what: `bgpctl to learn ${prefixes.join(", ")}`, procs: [this.proc, ...(opts.procs ?? [])] },
    );
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** Signal the process and wait (bounded) for its exit code. */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 5000): Promise<number | null> {
    return this.proc.stop(signal, timeoutMs);
  }
}

/** Start `bgpctl peer ADDR ... --json` in a namespace. */
export function startBgpctlPeer(
  lab: Lab,
  ns: string,
  address: string,
  opts: BgpctlSessionOptions,
  name = "bgpctl",
): BgpctlPeer {
  const argv = [BGPCTL_BIN, "peer", address, ...bgpctlSessionArgs(opts), "--json"];
  const proc = lab.spawn(ns, argv, { name: `${name}-${lab.processes.length + 1}` });
  return new BgpctlPeer(lab, proc, address);
}

export interface ShowRibResult {
  code: number | null;
  routes: BgpctlRoute[];
  stdout: string;
  stderr: string;
  elapsedMs: number;
  proc: LabProcess;
}

/** Run `bgpctl show rib --peer ADDR ... --json` in a namespace and parse its JSON array. */
export async function bgpctlShowRib(
  lab: Lab,
  ns: string,
  address: string,
  opts: BgpctlSessionOptions & { timeoutS?: number },
  waitMs = 30_000,
): Promise<ShowRibResult> {
  const argv = [BGPCTL_BIN, "show", "rib", "--peer", address, ...bgpctlSessionArgs(opts)];
  if (opts.timeoutS !== undefined) argv.push("--timeout", String(opts.timeoutS));
  argv.push("--json");
  const started = Date.now();
  const proc = lab.spawn(ns, argv, { name: `bgpctl-show-rib-${lab.processes.length + 1}` });
  if (!(await proc.waitExit(waitMs))) {
    const desc = proc.describe(30);
    await proc.stop("SIGKILL", 2000);
    lab.failed = true;
    throw new Error(`bgpctl show rib did not exit within ${waitMs} ms\n${desc}`);
  }
  const code = await proc.exited;
  const stdout = proc.text("stdout");
  const stderr = proc.text("stderr");
  let routes: BgpctlRoute[] = [];
  const start = stdout.indexOf("[");
  if (start >= 0) {
    try {
      routes = JSON.parse(stdout.slice(start)) as BgpctlRoute[];
    } catch (e) {
      throw new Error(`bgpctl show rib printed unparsable JSON (${(e as Error).message}):\n${stdout}\n${stderr}`);
    }
  }
  return { code, routes, stdout, stderr, elapsedMs: Date.now() - started, proc };
}

// ---------------------------------------------------------------------------
// Convenience: the two-namespace topology used by the interop suites
// ---------------------------------------------------------------------------

export interface PairTopology {
  lab: Lab;
  /** namespace "a": bgpctl side */
  a: string;
  /** namespace "b": the peer side */
  b: string;
  addr: {
    a4: string;
    b4: string;
    a6: string;
    b6: string;
  };
}

/**
 * Two namespaces joined by one veth pair:
 *   a: 192.0.2.1/24 2001:db8::1/64  <->  b: 192.0.2.2/24 2001:db8::2/64
 */
/**
 * The lab lifecycle of one interop test file: before its tests, install what
 * is missing, build the binary and make the lab (`make`: a bare Lab or a
 * topology holding one); after each test stop the lab's processes; after all,
 * remove its namespaces. `set` receives what `make` built.
 */
function useFixture<T>(make: () => Promise<T>, labOf: (t: T) => Lab, set: (t: T) => void): void {
  let made: T | undefined;
  beforeAll(async () => {
    await ensurePackages();
    await ensureBinary();
    made = await make();
    set(made);
  }, 600_000);
  afterEach(async () => {
    if (made !== undefined) await labOf(made).stopAll();
  });
  afterAll(async () => {
    if (made !== undefined) await labOf(made).cleanup();
  });
}

/** A bare Lab for the file's tests (see useFixture). */
export function useLab(label: string, set: (lab: Lab) => void): void {
  useFixture(() => Lab.create(label), (l) => l, set);
}

/** The two-namespace pair topology for the file's tests (see useFixture). */
export function usePair(label: string, set: (t: PairTopology) => void): void {
  useFixture(() => createPair(label), (t) => t.lab, set);
}

export async function createPair(label: string): Promise<PairTopology> {
  await ensurePackages();
  const lab = await Lab.create(label);
  try {
    const a = await lab.addNamespace("a");
    const b = await lab.addNamespace("b");
    await lab.connect(a, b, {
      a: { ipv4: "192.0.2.1/24", ipv6: "2001:db8::1/64" },
      b: { ipv4: "192.0.2.2/24", ipv6: "2001:db8::2/64" },
    });
    return { lab, a, b, addr: { a4: "192.0.2.1", b4: "192.0.2.2", a6: "2001:db8::1", b6: "2001:db8::2" } };
  } catch (e) {
    await lab.cleanup();
    throw e;
  }
}

/** Read a lab process log file (for debugging from tests). */
export function readLog(p: LabProcess): string {
  try {
    return readFileSync(p.logFile, "utf8");
  } catch {
    return "";
  }
}

/** First address of a next-hop string (a peer may report "global link-local"). */
export function firstNh(nh: string | null | undefined): string {
  return String(nh ?? "").split(/[\s,]+/)[0] ?? "";
}

/** The bgpctl peer has sent or received no NOTIFICATION. */
export function expectNoNotifications(peer: BgpctlPeer): void {
  expect(peer.all("notification")).toEqual([]);
}

// ---------------------------------------------------------------------------
// The peer under test behind one interface (tests/interop/peers.test.ts runs
// every shared scenario once per adapter): config writer, start/stop, the
// routes the peer learned from bgpctl, its view of the session, shutdown.
// ---------------------------------------------------------------------------

/** The peer daemon in namespace b of a PairTopology, with one session towards bgpctl. */
export interface PeerSpec {
  /** the peer's own AS */
  localAs: number;
  /** bgpctl's AS */
  remoteAs: number;
  /** bgpctl's address: the session runs over its family */
  neighbor: string;
  /** the peer's address for the session (default: its address of the neighbor's family) */
  localAddress?: string;
  /** the peer opens the connection (default: passive, bgpctl connects) */
  connects?: boolean;
  holdTime?: number;
  keepalive?: number;
  /** false: a 2-octet-only speaker (BIRD `enable as4 off`; GoBGP cannot) */
  as4?: boolean;
  /** the peer must send End-of-RIB (GoBGP does only with graceful restart enabled) */
  endOfRib?: boolean;
  /** routes the peer originates; one without nextHop gets the peer's address of its family */
  routes?: RouteSpec[];
}

/** The peer's view of its session with bgpctl, the same shape for every daemon. */
export interface PeerSessionView {
  /** bgpctl's AS as the peer saw it */
  neighborAs: number | null;
  /** bgpctl's BGP identifier as the peer saw it */
  neighborId: string | null;
  neighborAddress: string | null;
  /**
   * Capabilities bgpctl advertised, by RFC name: "multiprotocol",
   * "route-refresh", "four-octet-as", "graceful-restart", ... (a name this
   * table does not know is kept as the daemon spelled it).
   */
  capabilities: string[];
}

export interface RunningPeer<D> {
  /** the daemon itself, for what only this peer can do */
  readonly daemon: D;
  readonly proc: LabProcess;
  waitEstablished(timeoutMs?: number, procs?: LabProcess[]): Promise<PeerSessionView>;
  established(): Promise<boolean>;
  /** the routes the peer has learned from bgpctl, both families */
  learned(): Promise<PeerRoute[]>;
  /** Cease/Administrative Shutdown with a shutdown communication (RFC 9003) */
  shutdown(message: string): Promise<void>;
  /** the peer's log shows a received Cease/Administrative Shutdown */
  loggedShutdownReceived(): boolean;
  pause(): void;
  resume(): void;
}

export interface PeerAdapter<D = unknown> {
  /** "BIRD 2", "GoBGP": used in test names */
  readonly name: string;
  /** the daemon's process name */
  readonly process: string;
  /** the peer's command for a shutdown with a message, for test names */
  readonly shutdownCommand: string;
  /** opens connections promptly (gobgpd's connect loop waits >= 5 s, so the labs keep it passive) */
  readonly connectsPromptly: boolean;
  start(t: PairTopology, spec: PeerSpec): Promise<RunningPeer<D>>;
}

/** The peer's session address and next hops: b4/b6 for the family of each. */
function peerAddressFor(t: PairTopology, addr: string): string {
  return familyOf(addr) === "ipv6" ? t.addr.b6 : t.addr.b4;
}

const BIRD_CAPS: Record<string, string> = {
  Multiprotocol: "multiprotocol",
  "Route refresh": "route-refresh",
  "4-octet AS numbers": "four-octet-as",
  "Graceful restart": "graceful-restart",
  "Enhanced refresh": "enhanced-route-refresh",
  "Extended message": "extended-message",
  "Extended next hop": "extended-next-hop",
  "ADD-PATH": "add-path",
  "Long-lived graceful restart": "long-lived-graceful-restart",
};

const GOBGP_CAPS: Record<string, string> = {
  MultiProtocolCapability: "multiprotocol",
  RouteRefreshCapability: "route-refresh",
  FourOctetASNCapability: "four-octet-as",
  GracefulRestartCapability: "graceful-restart",
  EnhancedRouteRefreshCapability: "enhanced-route-refresh",
  ExtendedMessageCapability: "extended-message",
  ExtendedNexthopCapability: "extended-next-hop",
  AddPathCapability: "add-path",
  LongLivedGracefulRestartCapability: "long-lived-graceful-restart",
};

/** BIRD 2: one `protocol bgp bgpctl`, static routes for the peer's own. */
export const BIRD_PEER: PeerAdapter<BirdInstance> = {
  name: "BIRD 2",
  process: "bird",
  shutdownCommand: 'birdc disable bgpctl "maintenance window"',
  connectsPromptly: true,
  async start(t, spec) {
    // BIRD derives next hops from the session and always sends End-of-RIB.
    const bird = await BirdInstance.start(
      t.lab,
      t.b,
      {
        routerId: t.addr.b4,
        localAs: spec.localAs,
        peers: [
          {
            name: "bgpctl",
            neighbor: spec.neighbor,
            localAddress: spec.localAddress ?? peerAddressFor(t, spec.neighbor),
            remoteAs: spec.remoteAs,
            passive: !spec.connects,
            ...(spec.holdTime !== undefined ? { holdTime: spec.holdTime } : {}),
            ...(spec.keepalive !== undefined ? { keepaliveTime: spec.keepalive } : {}),
            ...(spec.as4 === false ? { as4: false } : {}),
          },
        ],
        routes: spec.routes ?? [],
      },
      "bird",
    );
    return {
      daemon: bird,
      proc: bird.proc,
      async waitEstablished(timeoutMs = 15_000, procs) {
        const p = await bird.waitEstablished("bgpctl", timeoutMs, procs);
        return {
          neighborAs: p.neighborAs,
          neighborId: p.neighborId,
          neighborAddress: p.neighborAddress,
          capabilities: p.neighborCapabilities.map((c) => BIRD_CAPS[c] ?? c),
        };
      },
      established: async () => (await bird.protocol("bgpctl")).bgpState === "Established",
      learned: () => bird.routes({ protocol: "bgpctl" }),
      shutdown: async (message) => void (await bird.disable("bgpctl", message)),
      loggedShutdownReceived: () => /bgpctl: Received: Administrative shutdown/.test(bird.proc.text("stderr")),
      pause: () => bird.pause(),
      resume: () => bird.resume(),
    };
  },
};

/** GoBGP: one neighbor, routes added to its global RIB with explicit next hops. */
export const GOBGP_PEER: PeerAdapter<GobgpInstance> = {
  name: "GoBGP",
  process: "gobgpd",
  shutdownCommand: 'gobgp neighbor ADDR shutdown --reason "maintenance window"',
  connectsPromptly: false,
  async start(t, spec) {
    if (spec.as4 === false) throw new Error("GoBGP cannot be a 2-octet-only speaker (PeerSpec.as4 = false)");
    const g = await GobgpInstance.start(
      t.lab,
      t.b,
      {
        as: spec.localAs,
        routerId: t.addr.b4,
        neighbors: [
          {
            address: spec.neighbor,
            remoteAs: spec.remoteAs,
            passive: !spec.connects,
            localAddress: spec.localAddress ?? peerAddressFor(t, spec.neighbor),
            ...(spec.holdTime !== undefined ? { holdTime: spec.holdTime } : {}),
            ...(spec.keepalive !== undefined ? { keepaliveInterval: spec.keepalive } : {}),
            // GoBGP sends End-of-RIB only when graceful restart is negotiated.
            ...(spec.endOfRib ? { gracefulRestart: true } : {}),
          },
        ],
      },
      "gobgpd",
    );
    for (const r of spec.routes ?? []) await g.addRoute({ ...r, nextHop: r.nextHop ?? peerAddressFor(t, r.prefix) });
    return {
      daemon: g,
      proc: g.proc,
      async waitEstablished(timeoutMs = 15_000, procs) {
        const n = await g.waitEstablished(spec.neighbor, timeoutMs, procs);
        return {
          neighborAs: n.peerAs,
          neighborId: n.routerId,
          neighborAddress: n.address,
          capabilities: n.remoteCapabilities.map((c) => GOBGP_CAPS[c] ?? c),
        };
      },
      established: async () => (await g.neighbor(spec.neighbor)).state === "established",
      learned: async () => {
        const all = [...(await g.rib("ipv4")), ...(await g.rib("ipv6"))];
        return all.filter((r) => r.neighbor !== null && r.neighbor !== "");
      },
      shutdown: (message) => g.disable(spec.neighbor, message),
      loggedShutdownReceived: () => /notification-received code 6\(cease\) subcode 2\(administrative shutdown\)/.test(g.proc.text()),
      pause: () => g.pause(),
      resume: () => g.resume(),
    };
  },
};

/** Wait until the peer has learned every one of `prefixes` from bgpctl; returns them by prefix. */
export async function peerRoutesFrom(lab: Lab, peer: RunningPeer<unknown>, prefixes: string[], what: string): Promise<Map<string, PeerRoute>> {
  return lab.waitFor(
    async () => {
      const m = new Map((await peer.learned()).map((r) => [r.prefix, r] as const));
      return prefixes.every((p) => m.has(p)) ? m : null;
    },
    { timeoutMs: 15_000, what: `${what} to learn ${prefixes.join(", ")} from bgpctl`, procs: [peer.proc] },
  );
}

// ---------------------------------------------------------------------------
// Generic N-namespace topologies (point-to-point veths and bridged LANs)
// ---------------------------------------------------------------------------

export interface SegmentSpec {
  /** node name -> its addresses on this segment (the node's interface gets the next free "ethN" name) */
  members: Record<string, EndpointAddresses>;
}

export interface NetworkSpec {
  /** node names; each becomes one namespace */
  nodes: string[];
  /**
   * Segments: one with two members is a plain veth pair; one with three or
   * more is a LAN: a bridge in its own "switch" namespace with one veth per
   * member (so nothing is created in the host namespace).
   */
  segments: SegmentSpec[];
}

export interface Network {
  lab: Lab;
  /** node name -> namespace */
  ns: Record<string, string>;
  /** per segment (same order as the spec): node name -> interface name inside the node */
  ifaces: Record<string, string>[];
  /** switch namespaces created for LAN segments */
  switches: string[];
}

/** The address part of "192.0.2.1/24" (returns the input when there is no prefix length). */
export function addrOf(cidr: string): string {
  return cidr.replace(/\/\d+$/, "");
}

/**
 * Build a topology inside an existing lab: one namespace per node, and per
 * segment either a veth pair or a bridged LAN. Waits (bounded) until every
 * interface is up and no IPv6 address is tentative.
 */
export async function buildNetwork(lab: Lab, spec: NetworkSpec): Promise<Network> {
  const ipBin = mustWhich("ip");
  const sysctl = mustWhich("sysctl");
  const ns: Record<string, string> = {};
  for (const n of spec.nodes) ns[n] = await lab.addNamespace(n);
  const ifCount = new Map<string, number>();
  const nextIf = (node: string): string => {
    const k = ifCount.get(node) ?? 0;
    ifCount.set(node, k + 1);
    return `eth${k}`;
  };
  const nsOf = (node: string): string => {
    const n = ns[node];
    if (!n) throw new Error(`buildNetwork: segment member '${node}' is not a node`);
    return n;
  };
  const ifaces: Record<string, string>[] = [];
  const switches: string[] = [];
  const configure = async (nsName: string, ifname: string, addrs: EndpointAddresses): Promise<void> => {
    await lab.exec(nsName, [sysctl, "-q", "-w", `net.ipv6.conf.${ifname}.accept_dad=0`], { check: true });
    if (addrs.ipv4) await lab.exec(nsName, [ipBin, "addr", "add", addrs.ipv4, "dev", ifname], { check: true });
    if (addrs.ipv6) await lab.exec(nsName, [ipBin, "-6", "addr", "add", addrs.ipv6, "dev", ifname, "nodad"], { check: true });
    await lab.exec(nsName, [ipBin, "link", "set", ifname, "up"], { check: true });
  };
  const toCheck: [string, string][] = [];
  for (const [si, seg] of spec.segments.entries()) {
    const members = Object.entries(seg.members);
    const names: Record<string, string> = {};
    if (members.length < 2) throw new Error(`buildNetwork: segment ${si} has fewer than two members`);
    if (members.length === 2) {
      const [[na, aa], [nb, ab]] = members as [[string, EndpointAddresses], [string, EndpointAddresses]];
      const ifA = nextIf(na);
      const ifB = nextIf(nb);
      await lab.connect(nsOf(na), nsOf(nb), { a: aa, b: ab, ifA, ifB });
      names[na] = ifA;
      names[nb] = ifB;
    } else {
      const sw = await lab.addNamespace(`sw${si}`);
      switches.push(sw);
      await lab.exec(sw, [ipBin, "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0", "mcast_snooping", "0"], {
        check: true,
      });
      await lab.exec(sw, [ipBin, "link", "set", "br0", "up"], { check: true });
      for (const [pi, [node, addrs]] of members.entries()) {
        const ifname = nextIf(node);
        const port = `p${pi}`;
        await run([ipBin, "link", "add", ifname, "netns", nsOf(node), "type", "veth", "peer", "name", port, "netns", sw], {
          check: true,
          timeoutMs: 10_000,
        });
        await lab.exec(sw, [ipBin, "link", "set", port, "master", "br0"], { check: true });
        await lab.exec(sw, [ipBin, "link", "set", port, "up"], { check: true });
        await configure(nsOf(node), ifname, addrs);
        names[node] = ifname;
        toCheck.push([nsOf(node), ifname], [sw, port]);
      }
    }
    ifaces.push(names);
  }
  await lab.waitFor(
    async () => {
      for (const [n, ifname] of toCheck) {
        const r = await lab.exec(n, [ipBin, "-o", "addr", "show", "dev", ifname]);
        if (r.code !== 0 || r.stdout.includes("tentative")) return false;
        const l = await lab.exec(n, [ipBin, "-o", "link", "show", "dev", ifname]);
        if (!/LOWER_UP/.test(l.stdout)) return false;
      }
      return true;
    },
    { timeoutMs: 5000, what: "LAN ports to come up" },
  );
  return { lab, ns, ifaces, switches };
}

/** `ping` once from a namespace (bounded); true when answered. Only lab addresses should be pinged. */
export async function pingOnce(lab: Lab, ns: string, address: string): Promise<boolean> {
  const ping = which("ping");
  if (!ping) return true; // nothing to check with
  const r = await lab.exec(ns, [ping, "-c", "1", "-W", "1", address], { timeoutMs: 3000 });
  return r.code === 0;
}

// ---------------------------------------------------------------------------
// The bgpctl daemon (`bgpctl run`) and its control-socket CLI
// ---------------------------------------------------------------------------

/** A peer entry of the daemon's YAML config (camelCase keys as in lib/config). */
export interface DaemonPeerSpec {
  address: string;
  remoteAs: number;
  import?: string | string[];
  export?: string | string[];
  passive?: boolean;
  holdTime?: number;
  connectRetry?: number;
  localAddress?: string;
  families?: Family[];
  routeReflectorClient?: boolean;
  maxPrefix?: { limit: number; action: "warn" | "restart"; restartAfter?: number };
  description?: string;
  [key: string]: unknown;
}

/** The daemon's YAML config, written as-is (extra keys allowed). */
export interface DaemonConfigSpec {
  asn: number;
  routerId: string;
  listen?: { address: string; port: number } | { address: string; port: number }[];
  clusterId?: string;
  multipath?: { enabled: boolean; maxPaths?: number };
  peers: DaemonPeerSpec[];
  policies?: Record<string, unknown[]>;
  prefixLists?: Record<string, unknown[]>;
  advertise?: { prefix: string; communities?: string[]; [key: string]: unknown }[];
  [key: string]: unknown;
}

/** YAML text for a daemon config (block style, one key per line, so errors name useful lines). */
export function bgpctlDaemonConfig(spec: DaemonConfigSpec): string {
  return `# generated by tests/interop/lab.ts\n${YAML.stringify(spec, { lineWidth: 0 })}`;
}

/**
 * Where the CLI's flags go. Kept in one place so a change of the CLI's
 * flag placement needs one edit: `bgpctl <sub...> <args...> -s SOCK [-j]`.
 */
export function bgpctlCliArgv(socket: string, sub: readonly string[], opts: { json?: boolean } = {}): string[] {
  return [BGPCTL_BIN, ...sub, "-s", socket, ...(opts.json ? ["-j"] : [])];
}

/** A running `bgpctl run --config FILE -s SOCKET` inside a namespace. */
export class BgpctlDaemon {
  private constructor(
    readonly lab: Lab,
    readonly ns: string,
    readonly name: string,
    readonly configPath: string,
    readonly socket: string,
    readonly proc: LabProcess,
  ) {}

  /**
   * Write the config into the lab dir (a spec, or raw YAML text), start the
   * daemon in `ns` and wait (bounded) until its control socket answers.
   */
  static async start(lab: Lab, ns: string, config: DaemonConfigSpec | string, name = "bgpctld"): Promise<BgpctlDaemon> {
    const uniq = `${name}-${lab.processes.length + 1}`;
    const configPath = lab.path(`${uniq}.yaml`);
    writeFileSync(configPath, typeof config === "string" ? config : bgpctlDaemonConfig(config));
    return BgpctlDaemon.launch(lab, ns, uniq, configPath, lab.path(`${uniq}.sock`));
  }

  /**
   * Start the daemon again after it stopped or died, on the same config file
   * and control socket path (so a graceful restart finds its marker).
   */
  static async restart(prev: BgpctlDaemon): Promise<BgpctlDaemon> {
    if (prev.proc.running) throw new Error(`${prev.name} is still running: stop or kill it first`);
    return BgpctlDaemon.launch(prev.lab, prev.ns, `${prev.name.replace(/-\d+$/, "")}-${prev.lab.processes.length + 1}`, prev.configPath, prev.socket);
  }

  private static async launch(lab: Lab, ns: string, uniq: string, configPath: string, socket: string): Promise<BgpctlDaemon> {
    const proc = lab.spawn(ns, [BGPCTL_BIN, "run", "--config", configPath, "-s", socket], { name: uniq });
    const d = new BgpctlDaemon(lab, ns, uniq, configPath, socket, proc);
    await lab.waitFor(
      async () => {
        if (!proc.running) throw new Error(`${uniq} exited`);
        const r = await d.cli(["show", "summary"], { json: true });
        return r.code === 0;
      },
      { timeoutMs: 10_000, intervalMs: 100, what: `${uniq} control socket to answer`, procs: [proc] },
    );
    return d;
  }

  /** Run the CLI against this daemon's socket (on the host: the socket is a file in the lab dir). */
  cli(sub: readonly string[], opts: { json?: boolean; timeoutMs?: number } = {}): Promise<ExecResult> {
    return run(bgpctlCliArgv(this.socket, sub, opts), { timeoutMs: opts.timeoutMs ?? 10_000 });
  }

  /** Run a CLI command, throw on a non-zero exit. */
  async command(...sub: string[]): Promise<string> {
    const r = await this.cli(sub);
    if (r.code !== 0) throw new Error(`bgpctl ${describeArgv(sub)} -s ${this.socket} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  }

  /** Run a `-j` CLI command and parse its JSON. */
  async json<T>(...sub: string[]): Promise<T> {
    const r = await this.cli(sub, { json: true });
    if (r.code !== 0) throw new Error(`bgpctl ${describeArgv(sub)} -j failed (exit ${r.code}):\n${r.stdout}${r.stderr}`);
    try {
      return JSON.parse(r.stdout) as T;
    } catch (e) {
      throw new Error(`bgpctl ${describeArgv(sub)} -j printed unparsable JSON (${(e as Error).message}):\n${r.stdout}`);
    }
  }

  neighbors(): Promise<NeighborInfo[]> {
    return this.json<NeighborInfo[]>("show", "neighbors");
  }

  async neighbor(address: string): Promise<NeighborInfo> {
    const arr = await this.json<NeighborInfo[]>("show", "neighbors", address);
    const n = arr.find((x) => x.address === address);
    if (!n) throw new Error(`bgpctl show neighbors ${address}: not in ${JSON.stringify(arr)}`);
    return n;
  }

  rib(prefix?: string): Promise<RibEntry[]> {
    return this.json<RibEntry[]>("show", "rib", ...(prefix ? [prefix] : []));
  }

  /** `show rib --neighbor ADDR --in|--out -j`: a neighbour's Adj-RIB-In (before import policy) or Adj-RIB-Out. */
  adjRib(address: string, table: "in" | "out"): Promise<RibEntry[]> {
    return this.json<RibEntry[]>("show", "rib", "--neighbor", address, `--${table}`);
  }

  async waitEstablished(address: string, timeoutMs = 15_000, procs: LabProcess[] = []): Promise<NeighborInfo> {
    return this.lab.waitFor(
      async () => {
        const n = await this.neighbor(address);
        return n.state === "Established" ? n : null;
      },
      { timeoutMs, what: `${this.name}: neighbor ${address} Established`, procs: [this.proc, ...procs] },
    );
  }

  /** Wait until `show rib PREFIX -j` satisfies `pred` (bounded); returns the entries. */
  async waitRib(prefix: string, pred: (r: RibEntry[]) => boolean, timeoutMs = 15_000, procs: LabProcess[] = []): Promise<RibEntry[]> {
    return this.lab.waitFor(
      async () => {
        const r = (await this.rib(prefix)).filter((e) => e.prefix === prefix);
        return pred(r) ? r : null;
      },
      { timeoutMs, what: `${this.name}: show rib ${prefix} to match`, procs: [this.proc, ...procs] },
    );
  }

  /** Replace the config file (spec or raw YAML); does not reload. */
  writeConfig(config: DaemonConfigSpec | string): void {
    writeFileSync(this.configPath, typeof config === "string" ? config : bgpctlDaemonConfig(config));
  }

  /** `bgpctl reload -s SOCK` (the result, whatever the exit code). */
  reload(): Promise<ExecResult> {
    return this.cli(["reload"], { timeoutMs: 15_000 });
  }

  sighup(): void {
    this.proc.signal("SIGHUP");
  }

  advertise(prefixes: string[], communities: string[] = []): Promise<ExecResult> {
    return this.cli(["advertise", ...prefixes, ...communities.flatMap((c) => ["--community", c])]);
  }

  withdraw(prefixes: string[]): Promise<ExecResult> {
    return this.cli(["withdraw", ...prefixes]);
  }

  /** SIGTERM: a graceful restart when the peers do graceful restart (sessions closed without NOTIFICATION, kernel routes kept). */
  stop(): Promise<number | null> {
    return this.proc.stop("SIGTERM", 5000);
  }

  /** `bgpctl shutdown`: stop for good (Cease/Hard Reset, kernel routes removed unless retainOnExit); the exit code. */
  async shutdown(timeoutMs = 10_000): Promise<number | null> {
    const r = await this.cli(["shutdown"]);
    if (r.code !== 0) throw new Error(`${this.name}: bgpctl shutdown failed: ${r.stderr}`);
    if (!(await this.proc.waitExit(timeoutMs))) return this.proc.stop("SIGKILL", 3000);
    return this.proc.exited;
  }
}
