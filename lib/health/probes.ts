/**
 * The probes of a health check: one run each, bounded in time, answering
 * pass or fail with a short output for `show checks`.
 *
 * - exec: the command runs without a shell (a string is split into arguments
 *   by splitCommand; a list is used as is) unless `shell: true` (/bin/sh -c).
 *   It runs in its own process group (setsid), so at the timeout the whole
 *   group is killed with SIGKILL (a shell's children too) and the run fails.
 *   stdout and stderr are read to the end (a chatty command never blocks on
 *   a full pipe) but only the first OUTPUT_MAX bytes are kept. Exit status 0
 *   passes.
 * - http: GET url (no redirects followed), passes on status expectStatus;
 *   aborted at the timeout.
 * - tcp: a connect to address:port passes; closed at once.
 *
 * Timeouts go through the Clock (lib/core/clock.ts) the daemon uses.
 */
import { connect } from "node:net";
import type { HealthCheckConfig } from "../config/types.ts";
import type { Clock } from "../core/clock.ts";
import { splitCommand } from "./command.ts";

/** Bytes of a command's output kept (the rest is read and dropped). */
export const OUTPUT_MAX = 4096;
/** How long the output is read after the command ended (see execProbe). */
const READ_GRACE_MS = 200;

export interface ProbeResult {
  ok: boolean;
  /** What the probe said: a command's first OUTPUT_MAX bytes of output, the HTTP status, the connect error, "timeout after N s". */
  output: string;
  /** How long the run took, ms. */
  ms: number;
  /** The run hit its timeout (killed or aborted). */
  timedOut: boolean;
}

/** One run of a check, failing at `timeoutMs`. */
export type Probe = (timeoutMs: number) => Promise<ProbeResult>;

/** The argv an exec check runs. */
export function execArgv(exec: string | string[], shell: boolean): string[] {
  if (shell) return ["/bin/sh", "-c", Array.isArray(exec) ? exec.join(" ") : exec];
  const argv = Array.isArray(exec) ? exec : splitCommand(exec);
  if (!argv.length) throw new Error("empty command");
  return argv;
}

/** Wait for `p` or the timeout; `onTimeout` runs when the timeout wins. */
function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number, onTimeout: () => void): Promise<T | "timeout"> {
  return new Promise((resolve, reject) => {
    const h = clock.setTimeout(() => {
      onTimeout();
      resolve("timeout");
    }, ms);
    p.then(
      (v) => {
        clock.clearTimeout(h);
        resolve(v);
      },
      (e) => {
        clock.clearTimeout(h);
        reject(e);
      },
    );
  });
}

/** What a command printed: the first OUTPUT_MAX bytes of stdout and stderr together, and how much more. */
interface Kept {
  chunks: Uint8Array[];
  size: number;
  dropped: number;
  /** The readers, cancelled when the command is killed (a process outside its group may hold the pipe). */
  readers: { cancel(): Promise<void> }[];
}

/** Read a stream to its end, keeping at most OUTPUT_MAX bytes in total (shared by stdout and stderr). */
async function drain(stream: ReadableStream<Uint8Array>, keep: Kept): Promise<void> {
  const reader = stream.getReader();
  keep.readers.push(reader);
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return;
    const room = OUTPUT_MAX - keep.size;
    if (room > 0) {
      const part = value.byteLength <= room ? value : value.subarray(0, room);
      keep.chunks.push(part.slice());
      keep.size += part.byteLength;
    }
    keep.dropped += Math.max(0, value.byteLength - Math.max(0, room));
  }
}

const secs = (ms: number) => `${Math.round(ms) / 1000} s`;

/** A command as a probe (see the module doc). */
export function execProbe(argv: string[], clock: Clock): Probe {
  return async (timeoutMs) => {
    const t0 = performance.now();
    let proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
    try {
      proc = Bun.spawn(argv, { stdin: "ignore", stdout: "pipe", stderr: "pipe", detached: true });
    } catch (e) {
      return { ok: false, output: `cannot run ${argv[0]}: ${(e as Error).message}`, ms: performance.now() - t0, timedOut: false };
    }
    const keep: Kept = { chunks: [], size: 0, dropped: 0, readers: [] };
    const reads = Promise.all([drain(proc.stdout, keep), drain(proc.stderr, keep)]).then(() => "read" as const);
    const r = await withTimeout(clock, proc.exited, timeoutMs, () => killGroup(proc.pid));
    // The rest of the output: the pipes close when the command (or its killed group) is gone; a
    // process that left the group may hold them open, so they are cut after READ_GRACE_MS.
    const read = await withTimeout(clock, reads, READ_GRACE_MS, () => {
      for (const x of keep.readers) x.cancel().catch(() => undefined);
    });
    if (read === "timeout") void reads.catch(() => undefined);
    const text = new TextDecoder().decode(Buffer.concat(keep.chunks)).trimEnd() + (keep.dropped ? ` [... ${keep.dropped} more bytes]` : "");
    const ms = performance.now() - t0;
    if (r === "timeout") return { ok: false, output: `timeout after ${secs(timeoutMs)}, killed${text ? `: ${text}` : ""}`, ms, timedOut: true };
    return { ok: r === 0, output: r === 0 ? text : `exit ${r}${proc.signalCode ? ` (${proc.signalCode})` : ""}${text ? `: ${text}` : ""}`, ms, timedOut: false };
  };
}

/** SIGKILL a process group (the child is its leader: spawned detached), else the child alone. */
function killGroup(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
}

/** An HTTP GET as a probe. */
export function httpProbe(url: string, expectStatus: number, clock: Clock): Probe {
  return async (timeoutMs) => {
    const t0 = performance.now();
    const ac = new AbortController();
    try {
      const r = await withTimeout(clock, fetch(url, { signal: ac.signal, redirect: "manual", headers: { "user-agent": "bgpctl-healthcheck" } }), timeoutMs, () => ac.abort());
      if (r === "timeout") return { ok: false, output: `timeout after ${secs(timeoutMs)}`, ms: performance.now() - t0, timedOut: true };
      await r.body?.cancel().catch(() => undefined);
      const ok = r.status === expectStatus;
      return { ok, output: `HTTP ${r.status}${ok ? "" : ` (expected ${expectStatus})`}`, ms: performance.now() - t0, timedOut: false };
    } catch (e) {
      return { ok: false, output: (e as Error).message, ms: performance.now() - t0, timedOut: false };
    }
  };
}

/** A TCP connect as a probe. */
export function tcpProbe(address: string, port: number, clock: Clock): Probe {
  return async (timeoutMs) => {
    const t0 = performance.now();
    const sock = connect({ host: address, port });
    const connected = new Promise<string>((resolve, reject) => {
      sock.once("connect", () => resolve(`connected to ${address} port ${port}`));
      sock.once("error", (e) => reject(e));
    });
    try {
      const r = await withTimeout(clock, connected, timeoutMs, () => sock.destroy());
      if (r === "timeout") return { ok: false, output: `timeout after ${secs(timeoutMs)}`, ms: performance.now() - t0, timedOut: true };
      return { ok: true, output: r, ms: performance.now() - t0, timedOut: false };
    } catch (e) {
      return { ok: false, output: (e as Error).message, ms: performance.now() - t0, timedOut: false };
    } finally {
      sock.destroy();
    }
  };
}

/** The probe a check's configuration asks for (exactly one of exec, http, tcp: the schema ensures it). */
export function probeFor(c: HealthCheckConfig, clock: Clock): Probe {
  if (c.exec !== undefined) return execProbe(execArgv(c.exec, c.shell), clock);
  if (c.http) return httpProbe(c.http.url, c.http.expectStatus, clock);
  if (c.tcp) return tcpProbe(c.tcp.address, c.tcp.port, clock);
  throw new Error(`health check ${c.name}: no exec, http or tcp`);
}
