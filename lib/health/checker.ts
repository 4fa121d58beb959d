/**
 * One running health check: runs its probe (./probes.ts) on the daemon's
 * clock — every `interval` seconds while UP or DOWN (or DISABLED), every
 * `fastInterval` while nothing is decided (INIT, RISING, FALLING) — never two
 * runs at once, feeds the results to the state machine (./state.ts), and
 * tells its owner about every state change, which is also logged once.
 *
 * Disabled (DISABLED, the "down" form whatever the probe says) while the
 * drain file exists or while `bgpctl check NAME disable` holds it; the drain
 * file is looked at before and after every run, and every `interval` while
 * disabled. Leaving DISABLED starts over at INIT with an immediate run. A
 * result that arrives after the check was disabled, enabled or stopped is
 * dropped.
 *
 * A reload that changes the check's settings updates it in place (`update`):
 * state, counters and the last result stay, the new settings (probe, timers,
 * thresholds) apply from the next run.
 */
import { existsSync } from "node:fs";
import type { HealthCheckConfig } from "../config/types.ts";
import type { Clock, TimerHandle } from "../core/clock.ts";
import type { Log } from "../core/log.ts";
import { type Probe, type ProbeResult, probeFor } from "./probes.ts";
import { CheckFsm, type CheckState } from "./state.ts";

/** Runs by outcome (a timeout is a failure for the state machine, counted apart). */
export interface CheckCounters {
  success: number;
  failure: number;
  timeout: number;
  /** State changes since start. */
  transitions: number;
}

/** A check as `show checks` (GET /v1/checks) shows it. */
export interface CheckInfo {
  name: string;
  state: CheckState;
  /** What is announced: "up" (the normal attributes), "degraded" or "withdrawn" (onDown). */
  announced: "up" | "degraded" | "withdrawn";
  /** Consecutive results toward the next decision (RISING/FALLING). */
  count: number;
  rise: number;
  fall: number;
  prefixes: string[];
  /** exec, http or tcp, and what it runs or reaches. */
  probe: string;
  /** false after `bgpctl check NAME disable`. */
  enabled: boolean;
  /** The drain file exists. */
  drained: boolean;
  /** When the state last changed (ISO time), and why ("check failed: exit 1", "drain file ... exists"). */
  since: string;
  reason: string;
  last: { ok: boolean; output: string; ms: number; at: string } | null;
  counters: CheckCounters;
}

export interface HealthCheckOptions {
  clock: Clock;
  log: Log;
  /** Called after every state change (the glue announces or withdraws). */
  onChange: (c: HealthCheck, from: CheckState) => void;
  /** The probe (default: from the configuration); tests pass their own. */
  probe?: (c: HealthCheckConfig) => Probe;
  /** Whether a file exists (default: node:fs existsSync). */
  exists?: (path: string) => boolean;
}

export class HealthCheck {
  readonly fsm: CheckFsm;
  readonly counters: CheckCounters = { success: 0, failure: 0, timeout: 0, transitions: 0 };
  last: (ProbeResult & { at: string }) | null = null;
  private probe: Probe;
  private timer: TimerHandle | null = null;
  private running = false;
  private stopped = true;
  /** Bumped by disable/enable/update: a run started before is dropped. */
  private gen = 0;
  private cliEnabled = true;
  private drained = false;
  private since = new Date().toISOString();
  private reason = "";

  constructor(
    public config: HealthCheckConfig,
    private readonly o: HealthCheckOptions,
  ) {
    this.fsm = new CheckFsm(config.rise, config.fall);
    this.probe = (o.probe ?? ((c) => probeFor(c, o.clock)))(config);
  }

  get name(): string {
    return this.config.name;
  }
  get state(): CheckState {
    return this.fsm.state;
  }
  /** The announced form is the normal one. */
  get up(): boolean {
    return this.fsm.up;
  }
  get enabled(): boolean {
    return this.cliEnabled;
  }

  /** Start checking (first run at once). */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stop: no more runs; a run in flight is dropped. */
  stop(): void {
    this.stopped = true;
    this.gen++;
    this.clearTimer();
  }

  /** New settings from a reload, in place (state and counters kept). */
  update(config: HealthCheckConfig): void {
    this.config = config;
    this.fsm.rise = config.rise;
    this.fsm.fall = config.fall;
    this.probe = (this.o.probe ?? ((c) => probeFor(c, this.o.clock)))(config);
    this.gen++;
    this.clearTimer();
    if (!this.stopped && !this.running) this.schedule(0);
  }

  /** `bgpctl check NAME disable|enable`: as the drain file, from the CLI. */
  setEnabled(enabled: boolean): void {
    if (enabled === this.cliEnabled) return;
    this.cliEnabled = enabled;
    this.gen++;
    this.clearTimer();
    this.evaluateDisabled();
    if (!this.stopped && !this.running) this.schedule(this.fsm.state === "DISABLED" ? this.config.interval * 1000 : 0);
  }

  info(announced: CheckInfo["announced"]): CheckInfo {
    const c = this.config;
    return {
      name: c.name,
      state: this.fsm.state,
      announced,
      count: this.fsm.count,
      rise: c.rise,
      fall: c.fall,
      prefixes: [...c.prefixes],
      probe: describeProbe(c),
      enabled: this.cliEnabled,
      drained: this.drained,
      since: this.since,
      reason: this.reason,
      last: this.last ? { ok: this.last.ok, output: this.last.output, ms: Math.round(this.last.ms), at: this.last.at } : null,
      counters: { ...this.counters },
    };
  }

  private schedule(ms: number): void {
    this.clearTimer();
    this.timer = this.o.clock.setTimeout(() => {
      this.timer = null;
      void this.run().catch((e) => this.o.log.error(`health check ${this.name}: ${(e as Error).stack ?? e}`));
    }, ms);
  }

  private clearTimer(): void {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = null;
  }

  private next(): number {
    return (this.fsm.transient ? this.config.fastInterval : this.config.interval) * 1000;
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    if (this.evaluateDisabled()) return this.schedule(this.config.interval * 1000);
    const gen = this.gen;
    this.running = true;
    let r: ProbeResult;
    try {
      r = await this.probe(this.config.timeout * 1000);
    } catch (e) {
      r = { ok: false, output: `probe failed: ${(e as Error).message}`, ms: 0, timedOut: false };
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (gen !== this.gen) {
      // Disabled, enabled or changed meanwhile: that code scheduled nothing while we ran.
      if (!this.timer) this.schedule(this.fsm.state === "DISABLED" ? this.config.interval * 1000 : 0);
      return;
    }
    this.last = { ...r, at: new Date().toISOString() };
    if (r.ok) this.counters.success++;
    else if (r.timedOut) this.counters.timeout++;
    else this.counters.failure++;
    if (this.evaluateDisabled()) return this.schedule(this.config.interval * 1000);
    const was = this.fsm.feed(r.ok);
    if (was) this.changed(was, r.ok ? "check passed" : `check failed: ${oneLine(r.output)}`);
    this.schedule(this.next());
  }

  /** Enter or leave DISABLED as the drain file and the CLI say; true while disabled. */
  private evaluateDisabled(): boolean {
    const f = this.config.drainFile;
    const exists = this.o.exists ?? existsSync;
    this.drained = f !== undefined && exists(f);
    const want = this.drained || !this.cliEnabled;
    if (want) {
      const was = this.fsm.disable();
      if (was) this.changed(was, this.drained ? `drain file ${f} exists` : "disabled from the CLI");
    } else {
      const was = this.fsm.enable();
      if (was) this.changed(was, this.cliEnabled && f !== undefined ? `drain file ${f} gone` : "enabled from the CLI");
    }
    return want;
  }

  private changed(from: CheckState, reason: string): void {
    this.counters.transitions++;
    this.since = new Date().toISOString();
    this.reason = reason;
    const to = this.fsm.state;
    const msg = `health check ${this.name}: ${from} -> ${to} (${reason})`;
    if (to === "DOWN") this.o.log.warn(msg);
    else this.o.log.info(msg);
    this.o.onChange(this, from);
  }

}

/** "exec dig +time=1 ...", "http http://...", "tcp 127.0.0.1:53". */
export function describeProbe(c: HealthCheckConfig): string {
  if (c.exec !== undefined) return `exec${c.shell ? " (shell)" : ""} ${Array.isArray(c.exec) ? c.exec.join(" ") : c.exec}`;
  if (c.http) return `http ${c.http.url} (expect ${c.http.expectStatus})`;
  if (c.tcp) return `tcp ${c.tcp.address.includes(":") ? `[${c.tcp.address}]` : c.tcp.address}:${c.tcp.port}`;
  return "none";
}

/** The first line of an output, at most 200 characters. */
export function oneLine(s: string): string {
  const l = s.split("\n").find((x) => x.trim() !== "") ?? "";
  return l.length > 200 ? `${l.slice(0, 200)}...` : l;
}
