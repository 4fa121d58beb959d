/**
 * The restarting speaker's side of graceful restart (RFC 4724 §4.1): whether
 * this daemon is a restart of an earlier one, and the selection deferral
 * that follows.
 *
 * A restart is known by a marker file beside the control socket, written at
 * start and removed only by a full shutdown (`bgpctl shutdown`): a graceful
 * stop (SIGTERM) or a crash leaves it, so the next start sets the Restart
 * State bit and defers: initial tables go out to peers only when every
 * graceful-restart peer has sent End-of-RIB (or come up without the
 * capability), or when the longest `selectionDeferral` of those peers ends,
 * so peers never see a half-learned table (never wait forever: kube-router
 * #1323). The kernel keeps our routes meanwhile (the FIB's start-up sync).
 */
import { mkdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Negotiated } from "../bgp/negotiate.ts";
import type { PeerConfig } from "../config/types.ts";
import type { Log } from "../core/log.ts";

export class RestartState {
  /** This start is a restart (the marker was there). */
  readonly restarted: boolean;
  /** Graceful-restart peers whose End-of-RIB we wait for. */
  private readonly waiting = new Set<string>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private deferringNow: boolean;
  private readonly done: (() => void)[] = [];
  /** The longest selection deferral of the peers waited for, seconds (0 when not restarting). */
  readonly deferralSeconds: number;

  constructor(
    private readonly marker: string,
    peers: readonly PeerConfig[],
    private readonly log: Log,
  ) {
    let restarted = false;
    try {
      restarted = statSync(marker).isFile();
    } catch {
      /* absent: a fresh start */
    }
    const gr = peers.filter((p) => p.gracefulRestart.enabled && !p.shutdown);
    this.restarted = restarted && gr.length > 0;
    this.deferralSeconds = this.restarted ? Math.max(...gr.map((p) => p.gracefulRestart.selectionDeferral)) : 0;
    this.deferringNow = this.restarted;
    if (this.restarted) {
      for (const p of gr) this.waiting.add(p.address);
      log.info(
        `graceful restart: restarting (found ${marker}); initial tables wait for End-of-RIB from ${gr.length} peer${gr.length === 1 ? "" : "s"}, at most ${this.deferralSeconds}s`,
      );
      this.timer = setTimeout(() => this.finish(`selection deferral of ${this.deferralSeconds}s over, still waiting for ${[...this.waiting].join(", ")}`), this.deferralSeconds * 1000);
      this.timer.unref?.();
    }
    this.writeMarker();
  }

  /** The path of the marker for a control socket path. */
  static markerFor(controlSocket: string): string {
    return `${controlSocket}.restart`;
  }

  /** Best-path selection is deferred: initial tables wait. */
  get deferring(): boolean {
    return this.deferringNow;
  }

  /** Run `fn` when the deferral ends (at once when there is none). */
  whenDone(fn: () => void): void {
    if (!this.deferringNow) fn();
    else this.done.push(fn);
  }

  /**
   * A peer's session came up. Not waited for (RFC 4724 §4.1): a peer without
   * the capability, and one restarting too (Restart State bit): it defers its
   * own End-of-RIB until ours, so waiting for it would hold both sides until
   * a deferral timer.
   */
  established(address: string, n: Negotiated): void {
    if (!n.peerGracefulRestart) this.settle(address, "no graceful restart");
    else if (n.peerGracefulRestart.restarting) this.settle(address, "restarting too");
  }

  /** A peer sent End-of-RIB for every family (or was removed). */
  settle(address: string, _why = "End-of-RIB"): void {
    if (!this.deferringNow || !this.waiting.delete(address)) return;
    if (this.waiting.size === 0) this.finish("End-of-RIB from every graceful-restart peer");
  }

  private finish(why: string): void {
    if (!this.deferringNow) return;
    this.deferringNow = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.waiting.clear();
    this.log.info(`graceful restart: selection deferral ended (${why}); sending initial tables`);
    for (const fn of this.done.splice(0)) fn();
  }

  /** Stop timers; a full shutdown (not graceful) removes the marker, so the next start is a fresh one. */
  close(graceful: boolean): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (graceful) return;
    try {
      rmSync(this.marker, { force: true });
    } catch (e) {
      this.log.warn(`graceful restart: cannot remove ${this.marker}: ${(e as Error).message}`);
    }
  }

  private writeMarker(): void {
    try {
      mkdirSync(dirname(this.marker), { recursive: true });
      writeFileSync(this.marker, `${JSON.stringify({ pid: process.pid, started: new Date().toISOString() })}\n`);
    } catch (e) {
      this.log.warn(`graceful restart: cannot write ${this.marker} (a restart will not be known as one): ${(e as Error).message}`);
    }
  }
}
