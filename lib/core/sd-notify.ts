/**
 * The systemd notification protocol (sd_notify(3)), for `Type=notify`
 * services: newline-separated KEY=VALUE assignments sent as one datagram to
 * the Unix datagram socket named by $NOTIFY_SOCKET (a path, or "@name" in
 * the abstract namespace). What bgpctl sends:
 *
 *   READY=1                       the configuration is loaded and the listeners are up
 *   RELOADING=1 + MONOTONIC_USEC= a reload started (systemd >= 253 wants the
 *                                 CLOCK_MONOTONIC time with it), READY=1 when it ended
 *   STOPPING=1                    shutdown began
 *   STATUS=text                   a one-line state for `systemctl status`
 *   WATCHDOG=1                    every WATCHDOG_USEC/2 while the event loop runs,
 *                                 when $WATCHDOG_USEC is set (and $WATCHDOG_PID,
 *                                 if set, is our pid): a hung loop gets us restarted
 *
 * Without $NOTIFY_SOCKET (not started by systemd) `fromEnv` gives null and
 * nothing is sent. A message that cannot be sent is logged (the first of a
 * run of failures), never thrown: supervision must not take the daemon down.
 */
import { monotonicUsec } from "../../ffi/monotonic.ts";
import { UnixDatagramSender } from "../../ffi/unix-dgram.ts";

export type NotifyLog = (level: "info" | "warn" | "error", msg: string) => void;

/** The environment systemd sets for a notify service: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID. */
export type SdNotifyEnv = Record<string, string | undefined>;

export class SdNotify {
  private sender: UnixDatagramSender | null = null;
  private watchdogTimer: ReturnType<typeof setInterval> | null = null;
  /** A send failed and was logged; the next failure stays quiet until one succeeds. */
  private failing = false;

  /**
   * The notifier systemd asked for through the environment, or null when
   * $NOTIFY_SOCKET is unset or empty. $WATCHDOG_USEC is taken only when
   * $WATCHDOG_PID is unset or names `pid`; a bad value is logged and ignored.
   */
  static fromEnv(log: NotifyLog, env: SdNotifyEnv = process.env, pid: number = process.pid): SdNotify | null {
    const path = env.NOTIFY_SOCKET;
    if (!path) return null;
    let watchdogUsec: number | null = null;
    const w = env.WATCHDOG_USEC;
    if (w !== undefined && w !== "") {
      const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === "" || Number(env.WATCHDOG_PID) === pid;
      const usec = Number(w);
      if (!forUs) log("info", `systemd: WATCHDOG_USEC is for pid ${env.WATCHDOG_PID}, not ours (${pid}): no watchdog pings`);
      else if (!Number.isSafeInteger(usec) || usec <= 0) log("warn", `systemd: WATCHDOG_USEC=${w} is not a positive number of microseconds: no watchdog pings`);
      else watchdogUsec = usec;
    }
    return new SdNotify(path, watchdogUsec, log);
  }

  constructor(
    /** $NOTIFY_SOCKET. */
    readonly socketPath: string,
    /** $WATCHDOG_USEC (for us), or null: no watchdog. */
    readonly watchdogUsec: number | null,
    private readonly log: NotifyLog,
  ) {}

  /** Send assignments (one datagram); false (and logged) when it failed. */
  send(fields: Record<string, string | number | bigint>): boolean {
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${String(v).replace(/\n/g, " ")}`)
      .join("\n");
    try {
      this.sender ??= new UnixDatagramSender(this.socketPath);
      this.sender.send(`${text}\n`);
      this.failing = false;
      return true;
    } catch (e) {
      // The receiver may have been replaced (systemd re-executed): connect again next time.
      this.sender?.close();
      this.sender = null;
      if (!this.failing) this.log("warn", `systemd: cannot notify ${this.socketPath} (${text.split("\n")[0]}): ${(e as Error).message}`);
      this.failing = true;
      return false;
    }
  }

  /** READY=1, with a STATUS= line when given; starts the watchdog pings (if asked for) on the first call. */
  ready(status?: string): boolean {
    const ok = this.send(status === undefined ? { READY: 1 } : { READY: 1, STATUS: status });
    this.startWatchdog();
    return ok;
  }

  /** RELOADING=1 with the CLOCK_MONOTONIC time (systemd >= 253 requires MONOTONIC_USEC with it). */
  reloading(status?: string): boolean {
    const f: Record<string, string | number | bigint> = { RELOADING: 1, MONOTONIC_USEC: monotonicUsec() };
    if (status !== undefined) f.STATUS = status;
    return this.send(f);
  }

  /** STOPPING=1; the watchdog pings stop (systemd's stop timeout takes over). */
  stopping(status?: string): boolean {
    this.stopWatchdog();
    return this.send(status === undefined ? { STOPPING: 1 } : { STOPPING: 1, STATUS: status });
  }

  status(text: string): boolean {
    return this.send({ STATUS: text });
  }

  /** WATCHDOG=1 every WATCHDOG_USEC/2 from now on (a timer: it fires only while the event loop turns). */
  private startWatchdog(): void {
    if (this.watchdogUsec === null || this.watchdogTimer) return;
    const ms = Math.max(1, Math.floor(this.watchdogUsec / 2000));
    this.send({ WATCHDOG: 1 });
    this.watchdogTimer = setInterval(() => this.send({ WATCHDOG: 1 }), ms);
    this.watchdogTimer.unref?.();
  }

  private stopWatchdog(): void {
    if (this.watchdogTimer) clearInterval(this.watchdogTimer);
    this.watchdogTimer = null;
  }

  /** Stop the pings and close the socket. */
  close(): void {
    this.stopWatchdog();
    this.sender?.close();
    this.sender = null;
  }
}
