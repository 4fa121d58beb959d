/**
 * The orchestrator's handle on a speaker process (tests/bench/speaker.ts):
 * starts it in the peers' namespace, follows its JSON-line events (when it
 * became Established, when a file was written, the sink's latest counts) and
 * sends it commands (a sink's watch list of prefixes, whose arrival times it
 * then records). Also the injector self-check: its send rate into a
 * null receiver, so the reports can show it is not the bottleneck.
 */
import { join } from "node:path";
import { type Lab, DAEMON_V4, DAEMON_AS, INJECT_AS, SINK_AS, forEachLine, injectorAddr, sinkAddr, spawnIn, stopProc, makeLab, dropLab, pollUntil } from "./lab.ts";

const SPEAKER = join(import.meta.dir, "speaker.ts");

export interface SpeakerEvent {
  event: string;
  at?: number;
  ms?: number;
  bytes?: number;
  prefixes?: number;
  marked?: number;
  message?: string;
  file?: string;
  updates?: number;
  nlri?: number;
  count?: number;
  prefix?: string;
  withdrawn?: boolean;
  already?: boolean;
}

/** When a watched prefix was announced or withdrawn (sink), Date.now() in the speaker. */
export interface Seen {
  at: number;
  /** It already was in that state when the watch was set. */
  already: boolean;
}

export class Speaker {
  readonly proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  /** Started with --hold: loaded, waiting for `go()` to connect. */
  ready = false;
  established = 0;
  sent: SpeakerEvent[] = [];
  prefixes = 0;
  marked = 0;
  countAt = 0;
  /** Sink: running totals of UPDATE messages and announced prefixes received. */
  updates = 0;
  nlri = 0;
  /** Sink: watched prefixes seen, by "+P" (announced) / "-P" (withdrawn). */
  seen = new Map<string, Seen>();
  private watchAcks = 0;
  errors: string[] = [];
  closed = false;
  nullResult: SpeakerEvent | null = null;
  stderr = "";

  constructor(ns: string, argv: string[]) {
    this.proc = spawnIn(ns, [process.execPath, SPEAKER, ...argv]);
    void this.read();
    void new Response(this.proc.stderr).text().then((t) => (this.stderr = t));
  }

  private async read(): Promise<void> {
    await forEachLine(this.proc.stdout, (line) => {
      let e: SpeakerEvent;
      try {
        e = JSON.parse(line) as SpeakerEvent;
      } catch {
        this.errors.push(`unparsable speaker output: ${line}`);
        return;
      }
      if (e.event === "established") this.established = e.at!;
      else if (e.event === "ready") this.ready = true;
      else if (e.event === "sent") this.sent.push(e);
      else if (e.event === "count") {
        this.prefixes = e.prefixes!;
        this.marked = e.marked!;
        this.countAt = e.at!;
        this.updates = e.updates ?? 0;
        this.nlri = e.nlri ?? 0;
      } else if (e.event === "seen") this.seen.set(`${e.withdrawn ? "-" : "+"}${e.prefix}`, { at: e.at!, already: e.already === true });
      else if (e.event === "watching") this.watchAcks++; else if (e.event === "error") this.errors.push(e.message!);
      else if (e.event === "closed") this.closed = true;
      else if (e.event === "null-done") this.nullResult = e;
    });
  }

  /** A speaker started with --hold: connect now. */
  go(): void {
    this.command("go");
  }

  command(line: string): void {
    this.proc.stdin.write(line + "\n");
    this.proc.stdin.flush();
  }

  /**
   * Sink: record when each of these prefixes is announced ("+P") or
   * withdrawn ("-P"), into `seen`; resolves once the sink has the list.
   */
  async watch(prefixes: string[]): Promise<void> {
    const acks = this.watchAcks;
    for (let i = 0; i < prefixes.length; i += 500) this.command(`watch ${prefixes.slice(i, i + 500).join(" ")}`);
    const want = acks + Math.ceil(prefixes.length / 500);
    if (!(await pollUntil(async () => (this.check("sink"), this.watchAcks >= want), 10_000, 10))) throw new Error("sink: the watch list was not acknowledged within 10 s");
  }

  /** Throw with the speaker's own errors if it has failed. */
  check(what: string): void {
    if (this.errors.length) throw new Error(`${what}: ${this.errors.join("; ")}`);
    if (this.proc.exitCode !== null && !this.closed) throw new Error(`${what} exited ${this.proc.exitCode}: ${this.stderr.trim()}`);
  }

  stop(): Promise<void> {
    return stopProc(this.proc);
  }
}

/**
 * An injector (index i: address 192.0.2.10+i, AS 65002) that sends `file` once Established with the daemon;
 * with `hold`, it connects only on `go()` (start it before the daemon, wait for `ready`).
 */
export function injector(lab: Lab, i: number, file: string, opts: { port?: number; hold?: boolean } = {}): Speaker {
  const hold = opts.hold ? ["--hold"] : [];
  return new Speaker(lab.peersNs, ["inject", "--local", injectorAddr(i), "--peer", DAEMON_V4, "--as", String(INJECT_AS), "--peer-as", String(DAEMON_AS), "--port", String(opts.port ?? 179), "--file", file, ...hold]);
}

/**
 * A sink (index i: address 192.0.2.100+i, AS 65003) counting what the daemon sends it; it keeps trying to connect
 * for `connectWithinMs` (default 60 s); with `hold`, from `go()` on.
 */
export function sink(lab: Lab, i: number, opts: { connectWithinMs?: number; hold?: boolean } = {}): Speaker {
  const retries = opts.connectWithinMs ? ["--connect-retries", String(Math.ceil(opts.connectWithinMs / 250))] : [];
  const hold = opts.hold ? ["--hold"] : [];
  return new Speaker(lab.peersNs, ["sink", "--local", sinkAddr(i), "--peer", DAEMON_V4, "--as", String(SINK_AS), "--peer-as", String(DAEMON_AS), ...retries, ...hold]);
}

/**
 * The injector against a receiver that discards everything: how fast it
 * writes `file` when nothing upstream slows it (MB/s and prefixes/s).
 */
export async function injectorSelfCheck(file: string, bytes: number): Promise<{ ms: number; mbps: number }> {
  const lab = makeLab("null", 1);
  const nul = new Speaker(lab.daemonNs, ["null", "--local", DAEMON_V4, "--peer", injectorAddr(0), "--as", String(DAEMON_AS), "--peer-as", String(INJECT_AS), "--port", "179"]);
  const inj = injector(lab, 0, file);
  try {
    const ok = await pollUntil(async () => {
      inj.check("injector (self-check)");
      nul.check("null receiver");
      return inj.sent.length > 0;
    }, 120_000, 20);
    if (!ok) throw new Error("injector self-check: the file was not written within 120 s");
    const ms = inj.sent[0]!.ms!;
    return { ms, mbps: bytes / 1e6 / (ms / 1000) };
  } finally {
    await inj.stop();
    await nul.stop();
    dropLab(lab);
  }
}
