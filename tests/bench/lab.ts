/**
 * The benchmark's lab: a pair of network namespaces per daemon run (the
 * daemon's, and the peers' where the injector and sink speakers run), joined
 * by one veth pair on documentation addresses; processes started there and
 * stopped by PID; peak RSS of a process tree from /proc; every namespace
 * removed at the end, also on failure or a signal.
 *
 * Addresses: the daemon 192.0.2.1 / 2001:db8::1 (AS 65001); injectors
 * 192.0.2.10+i / 2001:db8::10+i (AS 65002); sinks 192.0.2.100+i (AS 65003).
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";

export const DAEMON_V4 = "192.0.2.1";
export const DAEMON_V6 = "2001:db8::1";
export const DAEMON_AS = 65001;
export const INJECT_AS = 65002;
export const SINK_AS = 65003;
export const injectorAddr = (i: number) => `192.0.2.${10 + i}`;
export const sinkAddr = (i: number) => `192.0.2.${100 + i}`;
/** The next hops written into the pre-encoded tables: the first injector's addresses. */
export const NEXT_HOP4 = Uint8Array.of(192, 0, 2, 10);
export const NEXT_HOP6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10);

const PREFIX = `bench-${process.pid}-`;
const created: string[] = [];
const procs = new Set<Bun.Subprocess>();
let serial = 0;

export function log(s: string): void {
  process.stdout.write(s + "\n");
}

export function sh(argv: string[], timeoutMs = 60_000): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** Run a command to completion (asynchronously: the orchestrator keeps polling meanwhile). */
export async function out(argv: string[], timeoutMs = 30_000): Promise<string> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: timeoutMs });
  const [s, e, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${argv.join(" ")} exited ${code}: ${e.trim() || s.trim()}`);
  return s;
}

export interface Lab {
  daemonNs: string;
  peersNs: string;
}

/** Two fresh namespaces joined by a veth pair, with `speakers` injector/sink addresses on the peers' side. */
export function makeLab(tag: string, speakers = 24): Lab {
  const n = ++serial;
  const daemonNs = `${PREFIX}${n}-${tag}-d`;
  const peersNs = `${PREFIX}${n}-${tag}-p`;
  for (const ns of [daemonNs, peersNs]) {
    sh(["ip", "netns", "add", ns]);
    created.push(ns);
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
  }
  sh(["ip", "-n", daemonNs, "link", "add", "bd", "type", "veth", "peer", "name", "bp", "netns", peersNs]);
  sh(["ip", "-n", daemonNs, "addr", "add", `${DAEMON_V4}/24`, "dev", "bd"]);
  sh(["ip", "-n", daemonNs, "addr", "add", `${DAEMON_V6}/64`, "dev", "bd", "nodad"]);
  sh(["ip", "-n", daemonNs, "link", "set", "bd", "up"]);
  const batch: string[] = [];
  for (let i = 0; i < speakers; i++) batch.push(`addr add ${injectorAddr(i)}/24 dev bp`, `addr add 2001:db8::${(0x10 + i).toString(16)}/64 dev bp nodad`);
  for (let i = 0; i < 8; i++) batch.push(`addr add ${sinkAddr(i)}/24 dev bp`);
  batch.push("link set bp up");
  Bun.spawnSync(["ip", "-n", peersNs, "-batch", "-"], { stdin: new TextEncoder().encode(batch.join("\n") + "\n"), stdout: "ignore", stderr: "pipe" });
  sh(["ip", "-n", peersNs, "link", "set", "bp", "up"]);
  return { daemonNs, peersNs };
}

/** Remove a lab's namespaces (and so its links). */
export function dropLab(l: Lab): void {
  for (const ns of [l.daemonNs, l.peersNs]) {
    Bun.spawnSync(["ip", "netns", "del", ns], { stdout: "ignore", stderr: "ignore" });
    const i = created.indexOf(ns);
    if (i >= 0) created.splice(i, 1);
  }
}

/** Start a process inside a namespace (`ip netns exec` execs it: the PID is the process's own). */
export function spawnIn(ns: string, argv: string[], env: Record<string, string> = {}): Bun.Subprocess<"pipe", "pipe", "pipe"> {
  const p = Bun.spawn(["ip", "netns", "exec", ns, ...argv], { stdout: "pipe", stderr: "pipe", stdin: "pipe", env: { ...process.env, ...env } });
  procs.add(p);
  void p.exited.then(() => procs.delete(p));
  return p;
}

/**
 * Call `fn` with each complete line of `s` as it comes (without its newline); resolves at the end of the stream
 * with what followed the last newline ("" when nothing did).
 */
export async function forEachLine(s: ReadableStream<Uint8Array>, fn: (line: string) => void): Promise<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const c of s) {
    buf += dec.decode(c, { stream: true });
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      fn(line);
    }
  }
  return buf;
}

/** The lines a process writes to stdout and stderr, collected as they come (keeps its pipes drained). */
export class Lines {
  readonly all: string[] = [];
  constructor(p: Bun.Subprocess<"pipe", "pipe", "pipe">, readonly max = 10_000) {
    void this.read(p.stdout);
    void this.read(p.stderr);
  }
  private async read(s: ReadableStream<Uint8Array>): Promise<void> {
    const push = (l: string) => {
      if (this.all.length < this.max) this.all.push(l);
    };
    const tail = await forEachLine(s, push);
    if (tail) push(tail);
  }
  /** The last `n` lines matching `re`, for error reports. */
  last(n: number, re = /./): string[] {
    return this.all.filter((l) => re.test(l)).slice(-n);
  }
}

/** SIGTERM, then SIGKILL after 3 s. */
export async function stopProc(p: Bun.Subprocess): Promise<void> {
  if (p.exitCode !== null || p.signalCode) return;
  p.kill("SIGTERM");
  await Promise.race([p.exited, Bun.sleep(3000)]);
  if (p.exitCode === null && !p.signalCode) {
    p.kill("SIGKILL");
    await Promise.race([p.exited, Bun.sleep(2000)]);
  }
}

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22): with the PID, names it uniquely. */
export function procStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/** Kill by PID a process we did not spawn directly (a daemon's forked children), only if it is still the same process. */
export function killPid(pid: number, start: string | null): void {
  if (start === null || procStart(pid) !== start) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    /* exited meanwhile */
  }
}

/** The PID and all its descendants, from /proc. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(join("/proc", d, "stat"), "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(d));
      children.set(ppid, list);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** Sum of the peak resident set (VmHWM) of a process tree, in bytes; 0 when gone. */
export function peakRss(root: number): number {
  let total = 0;
  for (const pid of processTree(root)) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
      if (m) total += Number(m[1]) * 1024;
    } catch {
      /* exited meanwhile */
    }
  }
  return total;
}

let clockTicks = 0;

/**
 * What a daemon has used so far: CPU time (user + system) of its process
 * tree in ms, what it spent whatever else shared the cores meanwhile (the
 * wall-clock times of a noisy machine vary far more); its minor page faults
 * (each first touch of a memory page: on this kind of virtual machine about
 * 10 µs apiece, so memory costs time); and its main thread's time on a core
 * and time runnable but waiting for one (/proc/PID/task/PID/schedstat, in
 * ms; only for a daemon of one process: the main thread of OpenBGPD's
 * parent is not where its work is). Children that already exited are not
 * counted.
 */
export interface Usage {
  cpuMs: number;
  faults: number;
  mainCpuMs?: number;
  mainWaitMs?: number;
}

export function usage(root: number): Usage {
  if (clockTicks === 0) clockTicks = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;
  let ticks = 0;
  let faults = 0;
  const tree = processTree(root);
  for (const pid of tree) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      faults += Number(f[7]);
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited meanwhile */
    }
  }
  const use: Usage = { cpuMs: (ticks * 1000) / clockTicks, faults };
  if (tree.length !== 1) return use;
  try {
    const [run, wait] = readFileSync(`/proc/${root}/task/${root}/schedstat`, "utf8").trim().split(" ").map(Number);
    use.mainCpuMs = run! / 1e6;
    use.mainWaitMs = wait! / 1e6;
  } catch {
    /* exited, or no schedstat in this kernel */
  }
  return use;
}

/** The usage between two readings (the main thread's when both have it). */
export function usedSince(a: Usage, b: Usage): Usage {
  const use: Usage = { cpuMs: b.cpuMs - a.cpuMs, faults: b.faults - a.faults };
  if (a.mainCpuMs !== undefined && b.mainCpuMs !== undefined) {
    use.mainCpuMs = b.mainCpuMs - a.mainCpuMs;
    use.mainWaitMs = b.mainWaitMs! - a.mainWaitMs!;
  }
  return use;
}

/** Stop everything still running and remove every namespace this run made. */
export function cleanupAll(): void {
  for (const p of procs) {
    if (p.exitCode !== null) continue;
    // Children first (OpenBGPD's engines), each only if still the same process.
    for (const [pid, start] of processTree(p.pid).map((pid) => [pid, procStart(pid)] as const)) killPid(pid, start);
  }
  for (const ns of created.splice(0)) Bun.spawnSync(["ip", "netns", "del", ns], { stdout: "ignore", stderr: "ignore" });
}

/** Poll `fn` until it returns true, at most every `intervalMs`, giving up after `timeoutMs`. */
export async function pollUntil(fn: () => Promise<boolean>, timeoutMs: number, intervalMs: number | (() => number)): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    const t = performance.now();
    if (await fn()) return true;
    const every = typeof intervalMs === "number" ? intervalMs : intervalMs();
    await Bun.sleep(Math.max(0, every - (performance.now() - t)));
  }
  return false;
}
