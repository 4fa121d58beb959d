/**
 * One BFD session (RFC 5880) in asynchronous mode, active role, no echo, no
 * authentication: the state machine (Down → Init → Up, AdminDown; §6.2,
 * §6.8.6), the diagnostics, the timer negotiation and the Poll/Final
 * sequence. It knows nothing of sockets or addresses: it is handed received
 * packets (already decoded and demultiplexed by lib/bfd/manager.ts) and
 * sends through a callback, on a Clock (tests drive it with ManualClock).
 *
 * Timers (all in ms here, µs on the wire):
 * - Transmit interval (§6.8.2, §6.8.7): max(DesiredMinTx in use, the peer's
 *   RequiredMinRx), each gap jittered to 75–100% of it (75–90% with a
 *   detect multiplier of 1). No periodic packets while the peer's
 *   RequiredMinRx is 0, or while the peer is in Demand mode with both sides Up.
 * - Detection time (§6.8.4): the peer's multiplier × max(RequiredMinRx in
 *   use, the peer's DesiredMinTx). Expiry in Init or Up: Down, diagnostic 1;
 *   in any state it forgets the peer's discriminator.
 * - Slow start (§6.8.3): while not Up, the DesiredMinTx we advertise (and
 *   use) is at least 1 s.
 * - Changes (§6.8.3): while Up, a change of the advertised DesiredMinTx or
 *   RequiredMinRx (a reload, or the move to Up ending the slow start) starts
 *   a Poll Sequence (§6.5): packets carry P until one with F comes back. An
 *   increased DesiredMinTx is used only once the Final arrives, a decreased
 *   one at once; a decreased RequiredMinRx counts for the detection time
 *   only after the Final, an increased one at once. A change while a poll is
 *   running is polled again after it. Not Up: applied at once, no poll.
 * - Event-loop stalls: a detection timer that fires more than STALL_MS late
 *   (the loop was held, e.g. by a garbage-collection pause) first gives the
 *   loop one turn to read packets that arrived meanwhile, so a stall of our
 *   own is not taken for a silent peer.
 * - A packet with P is answered at once with F (§6.8.6). A state change sends
 *   a packet at once (as BIRD and FRR do), so the three-way handshake does
 *   not wait out the 1 s slow-start gaps.
 */
import type { Clock, TimerHandle } from "../core/clock.ts";
import { BfdDiag, BfdState, type BfdStateName, type ControlPacket, STATE_NAMES, diagText, encodeControl } from "./packet.ts";

/** Configured timers of a session (ms) and the detect multiplier. */
export interface BfdParams {
  minTx: number;
  minRx: number;
  multiplier: number;
}

export interface BfdSessionOptions extends BfdParams {
  /** Our discriminator (nonzero, unique among our sessions). */
  localDisc: number;
  clock: Clock;
  /** Transmit one encoded control packet. */
  send: (packet: Uint8Array) => void;
  /** Jitter source in [0, 1) (default Math.random). */
  random?: () => number;
}

/** Why a session left Up (or Init) for Down. */
export type DownCause = "detection-timeout" | "peer-down" | "peer-admin-down" | "admin-down";

export interface BfdStateChange {
  from: BfdStateName;
  to: BfdStateName;
  /** Our diagnostic after the change. */
  diag: number;
  /** Set when the change is to Down or AdminDown. */
  cause?: DownCause;
}

/** A detection timer this late (ms) waits one more turn of the event loop before it counts. */
export const STALL_MS = 50;

/** Slow-start floor of the advertised DesiredMinTx while not Up (RFC 5880 §6.8.3), ms. */
export const SLOW_START_TX_MS = 1000;

export class BfdSession {
  readonly localDisc: number;
  state: number = BfdState.Down;
  localDiag: number = BfdDiag.None;
  remoteDisc = 0;
  remoteState: number = BfdState.Down;
  remoteDiag = 0;
  remoteDemand = false;
  /** The peer's RequiredMinRx, µs (§6.8.1: initially 1). */
  remoteMinRx = 1;
  /** The peer's DesiredMinTx, µs (0 until the first packet). */
  remoteMinTx = 0;
  /** The peer's detect multiplier (0 until the first packet). */
  remoteMult = 0;
  /** When the state last changed (clock ms). */
  since: number;
  /** Text of the last change to Down (or AdminDown): cause and diagnostic. */
  lastDown: string | null = null;
  readonly counters = { tx: 0, rx: 0, pollsSent: 0, finalsReceived: 0 };
  /** Longest gap between two of our periodic packets since the session last came Up (ms): how late our timers ran. */
  maxTxGap = 0;
  private lastTxAt = 0;
  /** Called on every state change. */
  onStateChange: ((c: BfdStateChange) => void) | null = null;

  private params: BfdParams;
  private readonly clock: Clock;
  private readonly sendFn: (p: Uint8Array) => void;
  private readonly random: () => number;
  /** Advertised values (ms) last applied. */
  private advTx: number;
  private advRx: number;
  /** Values in use for our transmit rate and our detection time (ms); differ from advTx/advRx during a poll. */
  private usedTx: number;
  private usedRx: number;
  /** The advertised values a running Poll Sequence is confirming, or null. */
  private poll: { tx: number; rx: number } | null = null;
  /** Values changed during a poll: poll again after it. */
  private pollAgain = false;
  private txTimer: TimerHandle | null = null;
  private nextTxAt = 0;
  private detectTimer: TimerHandle | null = null;
  private detectDue = 0;
  private lastRx = 0;
  private closed = false;

  constructor(o: BfdSessionOptions) {
    this.localDisc = o.localDisc;
    this.params = { minTx: o.minTx, minRx: o.minRx, multiplier: o.multiplier };
    this.clock = o.clock;
    this.sendFn = o.send;
    this.random = o.random ?? Math.random;
    this.since = this.clock.now();
    this.advTx = this.usedTx = this.advertisedTx();
    this.advRx = this.usedRx = this.params.minRx;
  }

  get stateName(): BfdStateName {
    return STATE_NAMES[this.state]!;
  }
  get remoteStateName(): BfdStateName {
    return STATE_NAMES[this.remoteState]!;
  }
  get config(): Readonly<BfdParams> {
    return this.params;
  }
  /** A Poll Sequence is running. */
  get polling(): boolean {
    return this.poll !== null;
  }

  /** The DesiredMinTx we advertise now (ms): the configured one, at least 1 s while not Up. */
  advertisedTx(): number {
    return this.state === BfdState.Up ? this.params.minTx : Math.max(SLOW_START_TX_MS, this.params.minTx);
  }

  /** The RequiredMinRx we advertise (ms). */
  get advertisedRx(): number {
    return this.advRx;
  }

  /** Negotiated transmit interval before jitter (ms): max(our DesiredMinTx in use, the peer's RequiredMinRx). */
  get txInterval(): number {
    return Math.max(this.usedTx, this.remoteMinRx / 1000);
  }

  /** Negotiated receive interval (ms): max(our RequiredMinRx in use, the peer's DesiredMinTx). */
  get rxInterval(): number {
    return Math.max(this.usedRx, this.remoteMinTx / 1000);
  }

  /** Detection time (ms): the peer's multiplier × the receive interval; 0 before the first packet. */
  get detectionTime(): number {
    return this.remoteMult * this.rxInterval;
  }

  /** Begin: state Down, transmitting at the slow-start rate. */
  start(): void {
    this.transmit();
  }

  /** Stop every timer; the session sends nothing more. */
  close(): void {
    this.closed = true;
    this.clearTx();
    if (this.detectTimer) this.clock.clearTimeout(this.detectTimer);
    this.detectTimer = null;
  }

  /** Take the session administratively down (§6.8.16): AdminDown, diagnostic 7, told to the peer at once. */
  adminDown(): void {
    if (this.state === BfdState.AdminDown) return;
    this.changeState(BfdState.AdminDown, BfdDiag.AdministrativelyDown, "admin-down");
  }

  /** Leave AdminDown: Down again, and the session comes back up with the peer. */
  adminUp(): void {
    if (this.state !== BfdState.AdminDown) return;
    this.changeState(BfdState.Down, BfdDiag.None);
  }

  /** New configured timers (a reload): applied at once when not Up, by a Poll Sequence when Up. */
  setParams(p: BfdParams): void {
    this.params = { ...p };
    this.applyAdvertised();
    this.retime();
  }

  /** A received packet for this session (§6.8.6, after the packet-only checks and demultiplexing). */
  receive(p: ControlPacket): void {
    if (this.closed) return;
    this.counters.rx++;
    this.remoteDisc = p.myDisc;
    this.remoteState = p.state;
    this.remoteDiag = p.diag;
    this.remoteDemand = p.demand;
    this.remoteMinRx = p.requiredMinRx;
    this.remoteMinTx = p.desiredMinTx;
    this.remoteMult = p.detectMult;
    if (p.final && this.poll) this.finishPoll();
    this.lastRx = this.clock.now();
    if (this.state === BfdState.AdminDown) {
      this.retime();
      return;
    }
    if (p.state === BfdState.AdminDown) {
      if (this.state !== BfdState.Down) this.changeState(BfdState.Down, BfdDiag.NeighborSignaledDown, "peer-admin-down");
    } else if (this.state === BfdState.Down) {
      if (p.state === BfdState.Down) this.changeState(BfdState.Init, this.localDiag);
      else if (p.state === BfdState.Init) this.changeState(BfdState.Up, this.localDiag);
    } else if (this.state === BfdState.Init) {
      if (p.state === BfdState.Init || p.state === BfdState.Up) this.changeState(BfdState.Up, this.localDiag);
    } else if (p.state === BfdState.Down) {
      this.changeState(BfdState.Down, BfdDiag.NeighborSignaledDown, "peer-down");
    }
    if (p.poll) this.send(false, true);
    this.retime();
  }

  // ------------------------------------------------------------ internals

  private changeState(to: number, diag: number, cause?: DownCause): void {
    const from = this.state;
    this.state = to;
    this.localDiag = diag;
    this.since = this.clock.now();
    if (to === BfdState.Up) this.maxTxGap = 0;
    if (to === BfdState.Down || to === BfdState.AdminDown) {
      this.poll = null;
      this.pollAgain = false;
      if (cause) this.lastDown = `${cause}: ${diagText(diag)}`;
    }
    this.applyAdvertised();
    this.onStateChange?.({ from: STATE_NAMES[from]!, to: STATE_NAMES[to]!, diag, ...(cause ? { cause } : {}) });
    if (this.closed) return;
    // Tell the peer at once (an Up starting a poll has sent already).
    if (!this.poll || to !== BfdState.Up) this.transmit();
    this.retime();
  }

  /** Bring the values in use in line with what we advertise now (§6.8.3). */
  private applyAdvertised(): void {
    const tx = this.advertisedTx();
    const rx = this.params.minRx;
    if (tx === this.advTx && rx === this.advRx) return;
    this.advTx = tx;
    this.advRx = rx;
    if (this.state !== BfdState.Up) {
      this.usedTx = tx;
      this.usedRx = rx;
      return;
    }
    this.usedTx = Math.min(this.usedTx, tx);
    this.usedRx = Math.max(this.usedRx, rx);
    if (this.poll) this.pollAgain = true;
    else this.startPoll();
  }

  private startPoll(): void {
    this.poll = { tx: this.advTx, rx: this.advRx };
    this.counters.pollsSent++;
    if (!this.closed) this.transmit();
  }

  private finishPoll(): void {
    const p = this.poll!;
    this.counters.finalsReceived++;
    this.poll = null;
    this.usedTx = p.tx;
    this.usedRx = p.rx;
    if (this.pollAgain || p.tx !== this.advTx || p.rx !== this.advRx) {
      this.pollAgain = false;
      this.usedTx = Math.min(this.usedTx, this.advTx);
      this.usedRx = Math.max(this.usedRx, this.advRx);
      this.startPoll();
    }
  }

  private packet(poll: boolean, final: boolean): Uint8Array {
    const c: ControlPacket = {
      diag: this.localDiag,
      state: this.state,
      poll,
      final,
      cpi: false,
      auth: false,
      demand: false,
      multipoint: false,
      detectMult: this.params.multiplier,
      myDisc: this.localDisc,
      yourDisc: this.remoteDisc,
      desiredMinTx: this.advTx * 1000,
      requiredMinRx: this.advRx * 1000,
      requiredMinEchoRx: 0,
    };
    return encodeControl(c);
  }

  private send(poll: boolean, final: boolean): void {
    if (this.closed) return;
    this.counters.tx++;
    this.sendFn(this.packet(poll, final));
  }

  /** Send a periodic packet now (P set while polling) and schedule the next one. */
  private transmit(): void {
    const now = this.clock.now();
    if (this.state === BfdState.Up && this.lastTxAt > 0 && now - this.since > 0) this.maxTxGap = Math.max(this.maxTxGap, Math.min(now - this.lastTxAt, now - this.since));
    this.lastTxAt = now;
    this.send(this.poll !== null, false);
    this.scheduleTx();
  }

  /** Whether periodic transmission is allowed now (§6.8.7). */
  private get periodic(): boolean {
    if (this.remoteMinRx === 0) return false;
    return !(this.remoteDemand && this.state === BfdState.Up && this.remoteState === BfdState.Up && !this.poll);
  }

  /** A jittered gap (§6.8.7): 75–100% of the interval, 75–90% with a detect multiplier of 1. */
  private jittered(interval: number): number {
    const span = this.params.multiplier === 1 ? 0.15 : 0.25;
    return interval * (0.75 + this.random() * span);
  }

  private clearTx(): void {
    if (this.txTimer) this.clock.clearTimeout(this.txTimer);
    this.txTimer = null;
  }

  private scheduleTx(): void {
    this.clearTx();
    if (this.closed || !this.periodic) return;
    const gap = this.jittered(this.txInterval);
    this.nextTxAt = this.clock.now() + gap;
    this.txTimer = this.clock.setTimeout(() => {
      this.txTimer = null;
      this.transmit();
    }, gap);
  }

  /** After a change of intervals or state: bring the next transmission forward if it is now due sooner, and re-arm detection. */
  private retime(): void {
    if (this.closed) return;
    if (!this.periodic) this.clearTx();
    else if (!this.txTimer || this.nextTxAt - this.clock.now() > this.txInterval) this.scheduleTx();
    this.armDetection();
  }

  private armDetection(): void {
    if (this.detectTimer) this.clock.clearTimeout(this.detectTimer);
    this.detectTimer = null;
    if (this.remoteMult === 0) return;
    this.detectDue = this.lastRx + this.detectionTime;
    this.detectTimer = this.clock.setTimeout(() => this.detectionExpired(false), Math.max(0, this.detectDue - this.clock.now()));
  }

  private detectionExpired(deferred: boolean): void {
    this.detectTimer = null;
    if (!deferred && this.clock.now() - this.detectDue > STALL_MS) {
      // Our loop was held: read what arrived meanwhile first (a packet re-arms the timer).
      this.detectTimer = this.clock.setTimeout(() => this.detectionExpired(true), 1);
      return;
    }
    this.remoteDisc = 0;
    this.remoteMult = 0;
    this.remoteState = BfdState.Down;
    if (this.state === BfdState.Init || this.state === BfdState.Up) {
      this.changeState(BfdState.Down, BfdDiag.ControlDetectionTimeExpired, "detection-timeout");
    }
  }
}
