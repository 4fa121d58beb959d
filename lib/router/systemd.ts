/**
 * The daemons' (`bgpctl run`, `bgpctl watch-k8s`) side of systemd
 * supervision, on top of the notification protocol (lib/core/sd-notify.ts):
 * READY=1 once the configuration is loaded and the listeners are up,
 * RELOADING=1 ... READY=1 around a reload, STOPPING=1 at shutdown, and a
 * STATUS= line ("3/4 peers established, 812345 routes") sent with each of
 * those and whenever it changes (checked every STATUS_INTERVAL_MS). Without
 * $NOTIFY_SOCKET every call does nothing.
 */
import { SdNotify } from "../core/sd-notify.ts";
import type { Log } from "../core/log.ts";
import type { Router } from "./router.ts";

/** How often the STATUS= line is recomputed (sent only when it changed). */
export const STATUS_INTERVAL_MS = 5000;

/** The one-line state of a running router for `systemctl status`. */
export function statusLine(router: Router): string {
  let up = 0;
  for (const n of router.peers.values()) if (n.established) up++;
  return `${up}/${router.peers.size} peers established, ${router.locRib.count()} routes`;
}

export class SystemdSupervision {
  private timer: ReturnType<typeof setInterval> | null = null;
  private lastStatus = "";

  constructor(
    private readonly notify: SdNotify | null,
    /** The running router (null while watch-k8s waits for its Node). */
    private readonly router: () => Router | null,
  ) {}

  /** From the environment systemd set ($NOTIFY_SOCKET, $WATCHDOG_USEC, $WATCHDOG_PID); logs to `log`. */
  static fromEnv(log: Log, router: () => Router | null): SystemdSupervision {
    return new SystemdSupervision(
      SdNotify.fromEnv((level, msg) => log.at(level, msg)),
      router,
    );
  }

  get enabled(): boolean {
    return this.notify !== null;
  }

  private currentStatus(): string | undefined {
    const r = this.router();
    return r ? statusLine(r) : undefined;
  }

  /** Tell systemd a status line (e.g. while watch-k8s waits for its Node). */
  status(text: string): void {
    if (!this.notify || text === this.lastStatus) return;
    this.lastStatus = text;
    this.notify.status(text);
  }

  /** READY=1 with the status line; starts the watchdog pings and the status updates. */
  ready(): void {
    if (!this.notify) return;
    const s = this.currentStatus();
    if (s !== undefined) this.lastStatus = s;
    this.notify.ready(s);
    this.timer ??= setInterval(() => {
      const now = this.currentStatus();
      if (now !== undefined) this.status(now);
    }, STATUS_INTERVAL_MS);
    this.timer.unref?.();
  }

  /** Run a reload between RELOADING=1 and READY=1 (READY=1 also when it is rejected: the old configuration runs on, and STATUS= says so). */
  async reload<T>(fn: () => Promise<T>): Promise<T> {
    this.notify?.reloading("reloading the configuration");
    let rejected: string | null = null;
    try {
      return await fn();
    } catch (e) {
      rejected = (e as Error).message.split("\n")[0]!;
      throw e;
    } finally {
      if (this.notify) {
        const s = this.currentStatus();
        const text = rejected === null ? s : `reload rejected (${rejected}), running configuration kept${s === undefined ? "" : `; ${s}`}`;
        if (text !== undefined) this.lastStatus = text;
        this.notify.send(text === undefined ? { READY: 1 } : { READY: 1, STATUS: text });
      }
    }
  }

  /** STOPPING=1; no more status updates or watchdog pings. */
  stopping(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.notify?.stopping("stopping: closing sessions");
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.notify?.close();
  }
}
