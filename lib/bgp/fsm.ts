/**
 * The BGP finite state machine of RFC 4271 §8, per peer, as a pure class: no
 * sockets, no runtime APIs. Time comes from an injected `Clock`, randomness
 * (timer jitter, RFC 4271 §10) from an injected source, and every action —
 * open a TCP connection, send OPEN / KEEPALIVE / NOTIFICATION, close a
 * connection, report a state change — goes out through an `FsmHost`.
 *
 * One `Fsm` handles up to two TCP connections to the same peer at once (the
 * one we initiate and the one the peer initiates) and resolves the collision
 * of §6.8: when an OPEN arrives on one connection while the other has already
 * received the peer's OPEN, the connection initiated by the speaker with the
 * higher BGP identifier (unsigned 32-bit; equal identifiers: higher AS, per
 * RFC 6286) survives and the other is closed with Cease/Connection Collision
 * Resolution. A connection colliding with an Established one is always the one
 * closed. The peer's state is that of its most advanced connection.
 *
 * Timers: ConnectRetry (jittered), Hold (large value until the OPEN exchange,
 * then the negotiated one; 0 = none), Keepalive (hold/3 jittered), DelayOpen
 * (optional), IdleHold (DampPeerOscillations: doubling on every consecutive
 * failure up to a cap, reset once a session has been Established for
 * `stableTime`).
 */
import type { Clock, TimerHandle } from "../core/clock.ts";
import { realClock } from "../core/clock.ts";
import { BgpError, notificationName } from "./errors.ts";
import { negotiate, type Negotiated } from "./negotiate.ts";
import { type NotificationMessage, describeNotification } from "./notification.ts";
import { type OpenMessage, openAs } from "./open.ts";
import { parseIPv4 } from "../core/addr.ts";
import { CEASE_SUB, ERR, FSM_SUB, OPEN_SUB } from "./types.ts";

export const State = {
  Idle: "Idle",
  Connect: "Connect",
  Active: "Active",
  OpenSent: "OpenSent",
  OpenConfirm: "OpenConfirm",
  Established: "Established",
} as const;
export type State = (typeof State)[keyof typeof State];

/** Identifies one TCP connection of a peer; allocated by the FSM. */
export type ConnId = number;
/** Who initiated a TCP connection: we did ("outgoing") or the peer did ("incoming"). */
export type Direction = "outgoing" | "incoming";

/** The events of RFC 4271 §8.1 (names as there), plus ROUTE-REFRESH receipt. */
export type FsmEvent =
  | { type: "ManualStart" }
  | { type: "ManualStart_with_PassiveTcpEstablishment" }
  | { type: "ManualStop"; subcode?: number; data?: Uint8Array; reason?: string; quiet?: boolean }
  | { type: "AutomaticStart" }
  | { type: "AutomaticStart_with_PassiveTcpEstablishment" }
  | { type: "AutomaticStart_with_DampPeerOscillations" }
  | { type: "AutomaticStart_with_DampPeerOscillations_and_PassiveTcpEstablishment" }
  | { type: "AutomaticStop"; subcode?: number; data?: Uint8Array; reason?: string; quiet?: boolean }
  | { type: "ConnectRetryTimer_Expires" }
  | { type: "HoldTimer_Expires"; conn: ConnId }
  | { type: "KeepaliveTimer_Expires"; conn: ConnId }
  | { type: "DelayOpenTimer_Expires"; conn: ConnId }
  | { type: "IdleHoldTimer_Expires" }
  | { type: "TcpConnection_Valid"; conn: ConnId }
  | { type: "Tcp_CR_Invalid"; reason?: string }
  | { type: "Tcp_CR_Acked"; conn: ConnId }
  | { type: "TcpConnectionConfirmed"; conn: ConnId }
  | { type: "TcpConnectionFails"; conn: ConnId; reason?: string }
  | { type: "BGPOpen"; conn: ConnId; open: OpenMessage }
  | { type: "BGPOpen_with_DelayOpenTimer_running"; conn: ConnId; open: OpenMessage }
  | { type: "BGPHeaderErr"; conn: ConnId; error: BgpError }
  | { type: "BGPOpenMsgErr"; conn: ConnId; error: BgpError }
  | { type: "OpenCollisionDump"; conn: ConnId }
  | { type: "NotifMsgVerErr"; conn: ConnId; notification: NotificationMessage }
  | { type: "NotifMsg"; conn: ConnId; notification: NotificationMessage }
  | { type: "KeepAliveMsg"; conn: ConnId }
  | { type: "UpdateMsg"; conn: ConnId }
  | { type: "UpdateMsgErr"; conn: ConnId; error: BgpError }
  | { type: "RouteRefreshMsg"; conn: ConnId }
  | { type: "RouteRefreshMsgErr"; conn: ConnId; error: BgpError };

export type FsmEventType = FsmEvent["type"];

export interface StateChange {
  from: State;
  to: State;
  reason: string;
}

import type { LogLevel } from "../core/log.ts";
export type { LogLevel };

/** What the FSM asks its environment to do. Calls are synchronous; the host may call back into the FSM (events are queued). */
export interface FsmHost {
  /** Open a TCP connection to the peer; report with `tcpConnected(conn)` or `tcpFailed(conn)`. */
  connect(conn: ConnId): void;
  /** Close a connection (flush what was sent on it first) or abort a pending connect. Called once per connection. */
  disconnect(conn: ConnId, reason: string): void;
  sendOpen(conn: ConnId, open: OpenMessage): void;
  /** Our OPEN as of now, asked before each OPEN is sent (absent: the one given in the options). */
  localOpen?(): OpenMessage;
  sendKeepalive(conn: ConnId): void;
  sendNotification(conn: ConnId, n: NotificationMessage): void;
  /** The peer's OPEN on `conn` was accepted (OpenConfirm): capabilities now apply to what arrives next. */
  openConfirmed(conn: ConnId, negotiated: Negotiated): void;
  /** `conn` reached Established (called after the matching stateChange). */
  established(conn: ConnId, negotiated: Negotiated): void;
  stateChange(change: StateChange): void;
  log?(level: LogLevel, msg: string): void;
}

export interface FsmOptions {
  /** Our OPEN, sent on every connection; its holdTime is the hold time we offer. */
  localOpen: OpenMessage;
  /** The AS the peer must have (undefined: any). */
  expectedPeerAs?: number;
  /** RFC 9234 strict mode. */
  strictRole?: boolean;
  /** Never initiate connections (PassiveTcpEstablishment). */
  passive?: boolean;
  /** Seconds (default 120). Jittered. */
  connectRetryTime?: number;
  /** DelayOpen in seconds; 0 or undefined = no DelayOpen. */
  delayOpenTime?: number;
  /** Configured keepalive interval, seconds: the negotiated one is the smaller of it and a third of the hold time (default: a third). */
  keepaliveTime?: number;
  /** Hold time used until the OPENs are exchanged, seconds (default 240). */
  largeHoldTime?: number;
  /** First IdleHold time in seconds (default 5). */
  idleHoldTime?: number;
  /** IdleHold cap in seconds (default 120). */
  idleHoldMaxTime?: number;
  /** Double IdleHold on consecutive failures (default true). */
  dampPeerOscillations?: boolean;
  /**
   * Graceful restart helper (RFC 4724 §4.2): a new connection while the
   * session is Established from a peer that announced graceful restart means
   * the peer restarted: the old session is dropped (no NOTIFICATION) and the
   * new one goes on, instead of losing as a collision.
   */
  gracefulRestart?: boolean;
  /** Seconds Established before the failure count resets (default 60). */
  stableTime?: number;
  /** Restart by itself (after IdleHold) when a session fails (default true). */
  automaticRestart?: boolean;
  clock?: Clock;
  /** Uniform [0,1) source for jitter (default Math.random). */
  random?: () => number;
}

type ConnState = Exclude<State, "Idle">;

interface Conn {
  id: ConnId;
  dir: Direction;
  state: ConnState;
  tcpUp: boolean;
  openSent: boolean;
  peerOpen: OpenMessage | null;
  negotiated: Negotiated | null;
  /** Current hold time in ms (0: none). */
  holdMs: number;
  /**
   * When the hold timer really expires (clock ms). Received messages only move
   * this deadline; the armed timer re-arms itself for the remainder when it
   * fires early, so a full table costs no timer churn per UPDATE.
   */
  holdDeadline: number;
  hold?: TimerHandle;
  keepalive?: TimerHandle;
  delayOpen?: TimerHandle;
  /** Accepted while another connection was already Established: the peer may have restarted (RFC 4724 §4.2). */
  afterEstablished?: boolean;
  /** When it became Established (clock ms). */
  establishedAt?: number;
}

/**
 * A new connection from the peer within this long after a session came up,
 * whose OPEN does not say the peer restarted (no R bit), is a collision, not a
 * restart: both sides connecting at once reach each other a few milliseconds
 * apart, and taking the second for a restart made both drop the session and
 * retry together, again and again.
 */
export const RESTART_MIN_ESTABLISHED_MS = 3000;

/** Read-only view of one connection. */
export interface ConnectionInfo {
  id: ConnId;
  direction: Direction;
  state: ConnState;
  tcpUp: boolean;
  peerRouterId: string | null;
}

const RANK: Record<State, number> = {
  Idle: 0,
  Connect: 1,
  Active: 1,
  OpenSent: 2,
  OpenConfirm: 3,
  Established: 4,
};

/** How a connection ends, which decides what the peer does when it was the last one. */
type CloseKind =
  /** Error: the peer goes Idle, back-off, automatic restart. */
  | "error"
  /**
   * The peer closed on purpose (a Cease: shutdown, reset, de-configured,
   * connection rejected, collision): Idle and automatic restart after the base
   * IdleHold, not counted as a failure for damping.
   */
  | "cease"
  /** TCP failed before the OPEN exchange: back to Active, ConnectRetry restarted. */
  | "fail"
  /** Collision loser or abandoned connect attempt: no effect on the peer. */
  | "quiet";

/** BGP identifier as an unsigned 32-bit number (0 if unparsable). */
export function routerIdValue(id: string): number {
  const b = parseIPv4(id);
  if (!b) return 0;
  return b[0]! * 0x1000000 + b[1]! * 0x10000 + b[2]! * 0x100 + b[3]!;
}

const MAX_EVENTS_PER_DISPATCH = 10_000;

export class Fsm {
  private readonly host: FsmHost;
  private readonly clock: Clock;
  private readonly random: () => number;
  private localOpen: OpenMessage;
  private readonly opts: FsmOptions;

  private conns = new Map<ConnId, Conn>();
  private nextConnId = 0;
  private running = false;
  private passiveMode = false;
  private connectRetryTimer: TimerHandle | undefined;
  private idleHoldTimer: TimerHandle | undefined;
  private stableTimer: TimerHandle | undefined;
  private failures = 0;
  private lastIdleHoldMs = 0;

  private queue: FsmEvent[] = [];
  private busy = false;
  private reason = "";
  private deferred: (() => void)[] = [];
  private reported: State = State.Idle;

  constructor(host: FsmHost, opts: FsmOptions) {
    this.host = host;
    this.opts = opts;
    this.localOpen = opts.localOpen;
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? Math.random;
  }

  // ---------------------------------------------------------------- queries

  /** The peer's state: that of its most advanced connection, else Idle/Connect/Active. */
  get state(): State {
    let best: State | null = null;
    for (const c of this.conns.values()) {
      if (best === null || RANK[c.state] > RANK[best] || (RANK[c.state] === RANK[best] && c.state === State.Connect)) best = c.state;
    }
    if (best !== null) return best;
    if (!this.running || this.idleHoldTimer !== undefined) return State.Idle;
    return State.Active;
  }

  /** True between a start and a ManualStop (also while waiting in IdleHold). */
  get started(): boolean {
    return this.running;
  }

  get passive(): boolean {
    return this.passiveMode;
  }

  /** Consecutive failures counted for DampPeerOscillations. */
  get failureCount(): number {
    return this.failures;
  }

  /** The IdleHold time last used, ms (0 if none yet). */
  get idleHoldMs(): number {
    return this.lastIdleHoldMs;
  }

  /** The Established connection, if any. */
  get establishedConn(): ConnId | null {
    for (const c of this.conns.values()) if (c.state === State.Established) return c.id;
    return null;
  }

  /** Capabilities negotiated on the Established connection. */
  get negotiated(): Negotiated | null {
    for (const c of this.conns.values()) if (c.state === State.Established) return c.negotiated;
    return null;
  }

  connectionState(conn: ConnId): ConnState | null {
    return this.conns.get(conn)?.state ?? null;
  }

  connections(): ConnectionInfo[] {
    return [...this.conns.values()].map((c) => ({
      id: c.id,
      direction: c.dir,
      state: c.state,
      tcpUp: c.tcpUp,
      peerRouterId: c.peerOpen?.routerId ?? null,
    }));
  }

  /** Drop the session without a NOTIFICATION (TCP closed, as when the connection fails) and start again after the idle hold. */
  drop(reason: string): void {
    this.handle({ type: "AutomaticStop", reason, quiet: true });
  }

  /** Replace our OPEN (takes effect on the next connection). */
  setLocalOpen(open: OpenMessage): void {
    this.localOpen = open;
  }

  // ------------------------------------------------------- convenience input

  /** ManualStart (or ManualStart_with_PassiveTcpEstablishment). */
  start(opts: { passive?: boolean } = {}): void {
    const passive = opts.passive ?? this.opts.passive ?? false;
    this.handle({ type: passive ? "ManualStart_with_PassiveTcpEstablishment" : "ManualStart" });
  }

  /** ManualStop: Cease (default Administrative Shutdown) on every open connection, Idle, no restart. */
  stop(opts: { subcode?: number; data?: Uint8Array; reason?: string; quiet?: boolean } = {}): void {
    this.handle({ type: "ManualStop", ...opts });
  }

  /**
   * A TCP connection from the peer was accepted. Returns its id, or null when
   * the FSM refuses it (Idle, or a second connection is already pending beside
   * an Established one): the caller then closes the socket. `attach` runs with
   * the id before the FSM acts on the connection (e.g. sends its OPEN).
   */
  incomingConnection(attach?: (conn: ConnId) => void): ConnId | null {
    if (this.running && this.idleHoldTimer !== undefined) {
      // Damped in IdleHold: damping limits how often *we* connect. Refusing the
      // peer too would let two damped speakers refuse each other forever, so
      // the peer's connection ends the hold and is taken.
      this.clearTimer("idleHoldTimer");
      this.why("incoming connection during idle hold: automatic start");
      this.begin(this.opts.passive ?? false);
    }
    if (this.state === State.Idle) {
      this.handle({ type: "Tcp_CR_Invalid", reason: "incoming connection while Idle" });
      return null;
    }
    const est = this.establishedConn;
    if (est !== null) {
      for (const c of this.conns.values()) {
        if (c.id !== est) {
          this.handle({ type: "Tcp_CR_Invalid", reason: "incoming connection while another one already collides with the Established session" });
          return null;
        }
      }
    }
    const id = ++this.nextConnId;
    const conn = this.newConn(id, "incoming", State.Active);
    if (est !== null) conn.afterEstablished = true;
    this.conns.set(id, conn);
    attach?.(id);
    this.handle({ type: "TcpConnectionConfirmed", conn: id });
    return id;
  }

  tcpConnected(conn: ConnId): void {
    this.handle({ type: "Tcp_CR_Acked", conn });
  }
  tcpFailed(conn: ConnId, reason?: string): void {
    this.handle({ type: "TcpConnectionFails", conn, reason });
  }
  openReceived(conn: ConnId, open: OpenMessage): void {
    this.handle({ type: "BGPOpen", conn, open });
  }
  keepaliveReceived(conn: ConnId): void {
    this.handle({ type: "KeepAliveMsg", conn });
  }
  updateReceived(conn: ConnId): void {
    // Fast path for the common case (an UPDATE in Established): only the hold
    // deadline moves. Anything else goes through the full dispatch.
    const c = this.conns.get(conn);
    if (c && c.state === State.Established && !this.busy && this.queue.length === 0) {
      this.restartHold(c);
      return;
    }
    this.handle({ type: "UpdateMsg", conn });
  }
  /**
   * Whole messages arrived on the Established connection, to be read in
   * turn: the hold timer restarts now (RFC 4271 §4.4: the peer is alive),
   * so it never runs out behind our own backlog. Nothing else changes.
   */
  messageArrived(conn: ConnId): void {
    const c = this.conns.get(conn);
    if (c && c.state === State.Established && !this.busy && this.queue.length === 0) this.restartHold(c);
  }
  routeRefreshReceived(conn: ConnId): void {
    this.handle({ type: "RouteRefreshMsg", conn });
  }
  notificationReceived(conn: ConnId, notification: NotificationMessage): void {
    this.handle({ type: "NotifMsg", conn, notification });
  }
  /** A received message could not be decoded: send `error` as NOTIFICATION and close. */
  messageError(conn: ConnId, error: BgpError): void {
    if (error.code === ERR.HEADER) this.handle({ type: "BGPHeaderErr", conn, error });
    else if (error.code === ERR.OPEN) this.handle({ type: "BGPOpenMsgErr", conn, error });
    else if (error.code === ERR.ROUTE_REFRESH) this.handle({ type: "RouteRefreshMsgErr", conn, error });
    else this.handle({ type: "UpdateMsgErr", conn, error });
  }

  // ---------------------------------------------------------------- dispatch

  /** Feed one event. Re-entrant calls (from host callbacks) are queued and run in order. */
  handle(ev: FsmEvent): void {
    this.queue.push(ev);
    if (this.busy) return;
    this.busy = true;
    try {
      let n = 0;
      while (this.queue.length > 0) {
        if (++n > MAX_EVENTS_PER_DISPATCH) {
          this.log("error", `FSM event loop exceeded ${MAX_EVENTS_PER_DISPATCH} events; dropping ${this.queue.length}`);
          this.queue.length = 0;
          break;
        }
        const e = this.queue.shift()!;
        this.reason = "";
        try {
          this.dispatch(e);
        } catch (err) {
          this.log("error", `FSM: ${e.type} failed: ${err instanceof Error ? err.message : String(err)}`);
        }
        const to = this.state;
        if (to !== this.reported) {
          const from = this.reported;
          this.reported = to;
          this.safe(() => this.host.stateChange({ from, to, reason: this.reason || e.type }));
        }
        const d = this.deferred;
        this.deferred = [];
        for (const f of d) this.safe(f);
      }
    } finally {
      this.busy = false;
    }
  }

  private safe(f: () => void): void {
    try {
      f();
    } catch (err) {
      this.log("error", `FSM host callback failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private log(level: LogLevel, msg: string): void {
    try {
      this.host.log?.(level, msg);
    } catch {
      /* a failing logger must not break the FSM */
    }
  }

  private why(reason: string): void {
    this.reason = reason;
  }

  private dispatch(e: FsmEvent): void {
    switch (e.type) {
      case "ManualStart":
        return this.manualStart(this.opts.passive ?? false);
      case "ManualStart_with_PassiveTcpEstablishment":
        return this.manualStart(true);
      case "AutomaticStart":
      case "AutomaticStart_with_DampPeerOscillations":
        return this.automaticStart(this.opts.passive ?? false);
      case "AutomaticStart_with_PassiveTcpEstablishment":
      case "AutomaticStart_with_DampPeerOscillations_and_PassiveTcpEstablishment":
        return this.automaticStart(true);
      case "ManualStop":
        return this.stopAll(e.subcode ?? CEASE_SUB.ADMIN_SHUTDOWN, e.data, e.reason ?? "manual stop", false, e.quiet);
      case "AutomaticStop":
        return this.stopAll(e.subcode ?? 0, e.data, e.reason ?? "automatic stop", true, e.quiet);
      case "ConnectRetryTimer_Expires":
        return this.connectRetryExpired();
      case "IdleHoldTimer_Expires":
        this.idleHoldTimer = undefined;
        if (this.running) {
          this.why("idle hold timer expired: automatic start");
          this.begin(this.opts.passive ?? false);
        }
        return;
      case "Tcp_CR_Invalid":
        this.log("info", `refused connection: ${e.reason ?? "invalid"}`);
        return;
      case "TcpConnection_Valid":
        return;
    }
    const c = this.conns.get(e.conn);
    if (!c) return; // stale event for a connection already closed
    switch (e.type) {
      case "HoldTimer_Expires": {
        c.hold = undefined;
        const left = c.holdDeadline - this.clock.now();
        if (left > 0 && c.holdMs > 0) {
          c.hold = this.clock.setTimeout(() => this.handle({ type: "HoldTimer_Expires", conn: c.id }), left);
          return;
        }
        return this.closeConn(c, { code: ERR.HOLD_TIMER, subcode: 0, data: new Uint8Array(0) }, "error", "hold timer expired");
      }
      case "KeepaliveTimer_Expires":
        c.keepalive = undefined;
        if ((c.state === State.OpenConfirm || c.state === State.Established) && c.holdMs > 0) {
          this.host.sendKeepalive(c.id);
          this.armKeepalive(c);
        }
        return;
      case "DelayOpenTimer_Expires":
        c.delayOpen = undefined;
        if (c.tcpUp && !c.openSent) {
          this.why("delay open timer expired");
          this.sendOpen(c);
        }
        return;
      case "Tcp_CR_Acked":
      case "TcpConnectionConfirmed":
        return this.tcpUp(c);
      case "TcpConnectionFails": {
        const reason = `connection ${c.tcpUp ? "lost" : "failed"}${e.reason ? `: ${e.reason}` : ""}`;
        const late = c.state === State.OpenConfirm || c.state === State.Established;
        return this.closeConn(c, null, late ? "error" : "fail", reason);
      }
      case "BGPOpen":
      case "BGPOpen_with_DelayOpenTimer_running":
        return this.openMsg(c, e.open);
      case "BGPHeaderErr":
      case "BGPOpenMsgErr":
        return this.closeConn(c, errorNotification(e.error), "error", `${notificationName(e.error.code, e.error.subcode)}: ${e.error.message}`);
      case "UpdateMsgErr":
      case "RouteRefreshMsgErr":
        if (c.state !== State.Established) return this.unexpected(c, e.type === "UpdateMsgErr" ? "UPDATE" : "ROUTE-REFRESH");
        return this.closeConn(c, errorNotification(e.error), "error", `${notificationName(e.error.code, e.error.subcode)}: ${e.error.message}`);
      case "OpenCollisionDump":
        return this.closeConn(c, ceaseCollision(), "quiet", "connection collision resolution");
      case "NotifMsg":
      case "NotifMsgVerErr":
        return this.closeConn(c, null, e.notification.code === ERR.CEASE ? "cease" : "error", `received NOTIFICATION ${describeNotification(e.notification)}`);
      case "KeepAliveMsg":
        if (c.state === State.OpenConfirm) return this.toEstablished(c);
        if (c.state === State.Established) return this.restartHold(c);
        return this.unexpected(c, "KEEPALIVE");
      case "UpdateMsg":
      case "RouteRefreshMsg":
        if (c.state === State.Established) return this.restartHold(c);
        return this.unexpected(c, e.type === "UpdateMsg" ? "UPDATE" : "ROUTE-REFRESH");
    }
  }

  // ------------------------------------------------------------ peer level

  private manualStart(passive: boolean): void {
    if (this.running && this.idleHoldTimer === undefined) {
      this.log("debug", "start ignored: already started");
      return;
    }
    this.clearTimer("idleHoldTimer");
    this.running = true;
    this.failures = 0;
    this.why(passive ? "manual start (passive)" : "manual start");
    this.begin(passive);
  }

  private automaticStart(passive: boolean): void {
    if (this.running) {
      // Running, or damped in IdleHold: the IdleHold timer restarts us.
      this.log("debug", "automatic start ignored: already started or damped");
      return;
    }
    this.running = true;
    this.why("automatic start");
    this.begin(passive);
  }

  private begin(passive: boolean): void {
    this.passiveMode = passive;
    if (!passive) {
      this.connectOut();
      this.armConnectRetry();
    }
  }

  private connectOut(): void {
    const id = ++this.nextConnId;
    this.conns.set(id, this.newConn(id, "outgoing", State.Connect));
    this.host.connect(id);
  }

  private newConn(id: ConnId, dir: Direction, state: ConnState): Conn {
    return { id, dir, state, tcpUp: false, openSent: false, peerOpen: null, negotiated: null, holdMs: 0, holdDeadline: 0 };
  }

  /** Close every connection (with a Cease, unless `quiet`: then the TCP connection just closes, as a graceful restart needs). */
  private stopAll(subcode: number, data: Uint8Array | undefined, reason: string, automatic: boolean, quiet = false): void {
    const wasRunning = this.running || this.conns.size > 0;
    for (const c of [...this.conns.values()]) {
      this.clearConnTimers(c);
      if (c.tcpUp && c.openSent && !quiet) {
        this.host.sendNotification(c.id, { code: ERR.CEASE, subcode, data: data ?? new Uint8Array(0) });
      }
      this.conns.delete(c.id);
      this.host.disconnect(c.id, reason);
    }
    this.clearTimer("connectRetryTimer");
    this.clearTimer("idleHoldTimer");
    this.clearTimer("stableTimer");
    this.why(reason);
    if (automatic && this.running && (this.opts.automaticRestart ?? true)) {
      this.enterIdleHold();
    } else {
      if (!wasRunning) this.log("debug", "stop: not started");
      this.running = false;
      if (!automatic) this.failures = 0;
    }
  }

  private connectRetryExpired(): void {
    this.connectRetryTimer = undefined;
    if (!this.running || this.idleHoldTimer !== undefined || this.passiveMode) return;
    for (const c of [...this.conns.values()]) {
      if (c.dir === "outgoing" && !c.tcpUp) this.closeConn(c, null, "quiet", "connect attempt timed out");
    }
    if (this.conns.size === 0) {
      this.why("connect retry timer expired");
      this.connectOut();
      this.armConnectRetry();
    }
  }

  /** Wait IdleHold before restarting; `failure` counts towards damping (a Cease from the peer does not). */
  private enterIdleHold(failure = true): void {
    this.clearTimer("connectRetryTimer");
    this.clearTimer("stableTimer");
    if (failure) this.failures++;
    const base = (this.opts.idleHoldTime ?? 5) * 1000;
    const cap = Math.max(base, (this.opts.idleHoldMaxTime ?? 120) * 1000);
    const damp = (this.opts.dampPeerOscillations ?? true) && failure;
    const ms = damp ? Math.min(cap, base * 2 ** Math.min(30, this.failures - 1)) : base;
    this.lastIdleHoldMs = ms;
    this.idleHoldTimer = this.clock.setTimeout(() => this.handle({ type: "IdleHoldTimer_Expires" }), ms);
    this.log("info", failure ? `idle hold ${ms / 1000}s (failure ${this.failures})` : `idle hold ${ms / 1000}s (the peer closed the session)`);
  }

  // ------------------------------------------------------ connection level

  private tcpUp(c: Conn): void {
    if (c.tcpUp) return;
    c.tcpUp = true;
    // ConnectRetry bounds a pending connect; with none left it is not needed.
    if (![...this.conns.values()].some((o) => o.dir === "outgoing" && !o.tcpUp)) this.clearTimer("connectRetryTimer");
    const delay = (this.opts.delayOpenTime ?? 0) * 1000;
    this.why(c.dir === "outgoing" ? "connection established" : "connection accepted");
    if (delay > 0) {
      c.delayOpen = this.clock.setTimeout(() => this.handle({ type: "DelayOpenTimer_Expires", conn: c.id }), delay);
    } else {
      this.sendOpen(c);
    }
  }

  private sendOpen(c: Conn): void {
    this.clearTimer2(c, "delayOpen");
    if (this.host.localOpen) this.localOpen = this.host.localOpen();
    this.host.sendOpen(c.id, this.localOpen);
    c.openSent = true;
    c.state = State.OpenSent;
    c.holdMs = (this.opts.largeHoldTime ?? 240) * 1000;
    this.restartHold(c);
  }

  private openMsg(c: Conn, open: OpenMessage): void {
    if (c.state === State.OpenConfirm || c.state === State.Established) return this.unexpected(c, "OPEN");
    if (c.state !== State.OpenSent && !(c.tcpUp && c.delayOpen !== undefined)) return this.unexpected(c, "OPEN");
    const delayed = !c.openSent;
    let n: Negotiated;
    try {
      n = negotiate(this.localOpen, open, { expectedPeerAs: this.opts.expectedPeerAs, strictRole: this.opts.strictRole, keepaliveTime: this.opts.keepaliveTime });
      const peerAs = openAs(open);
      if (open.routerId === this.localOpen.routerId && peerAs === openAs(this.localOpen)) {
        throw new BgpError(ERR.OPEN, OPEN_SUB.BAD_BGP_IDENTIFIER, `peer uses our own BGP identifier ${open.routerId}`, parseIPv4(open.routerId) ?? undefined);
      }
    } catch (err) {
      if (!(err instanceof BgpError)) throw err;
      return this.closeConn(c, errorNotification(err), "error", `rejected OPEN: ${err.message}`);
    }
    c.peerOpen = open;
    c.negotiated = n;
    // Collision detection (RFC 4271 §6.8).
    for (const o of [...this.conns.values()]) {
      if (o === c) continue;
      if (o.state === State.Established) {
        // Only a connection the peer opened after the session came up (BIRD's rule): a collision at start is not a restart.
        const restarted = n.peerGracefulRestart?.restarting === true || this.clock.now() - (o.establishedAt ?? 0) >= RESTART_MIN_ESTABLISHED_MS;
        if (this.opts.gracefulRestart && c.afterEstablished && o.negotiated?.peerGracefulRestart && restarted) {
          this.closeConn(o, null, "quiet", "the peer restarted: a new connection while Established, with graceful restart (RFC 4724 §4.2)");
          this.log("info", "the peer restarted: a new connection while Established; the old session is dropped without NOTIFICATION (RFC 4724 §4.2)");
          continue;
        }
        return this.closeConn(c, ceaseCollision(), "quiet", `connection collision with the Established ${o.dir} connection`);
      }
      if (o.peerOpen === null) continue;
      const keep: Direction = this.localWins(open) ? "outgoing" : "incoming";
      const loser = c.dir === o.dir || o.dir !== keep ? o : c;
      this.closeConn(loser, ceaseCollision(), "quiet", `connection collision: keeping the ${keep} connection (${this.localOpen.routerId} vs ${open.routerId})`);
      if (loser === c) return;
    }
    if (delayed) {
      this.clearTimer2(c, "delayOpen");
      this.host.sendOpen(c.id, this.localOpen);
      c.openSent = true;
    }
    this.host.sendKeepalive(c.id);
    c.state = State.OpenConfirm;
    this.why(`OPEN received from ${open.routerId}`);
    this.host.openConfirmed(c.id, n);
    c.holdMs = n.holdTime * 1000;
    if (c.holdMs > 0) {
      this.restartHold(c);
      this.armKeepalive(c);
    } else {
      this.clearTimer2(c, "hold");
      this.clearTimer2(c, "keepalive");
    }
  }

  /** True when we have the higher BGP identifier (equal: the higher AS, RFC 6286). */
  private localWins(peer: OpenMessage): boolean {
    const l = routerIdValue(this.localOpen.routerId);
    const p = routerIdValue(peer.routerId);
    if (l !== p) return l > p;
    return openAs(this.localOpen) > openAs(peer);
  }

  private toEstablished(c: Conn): void {
    c.state = State.Established;
    c.establishedAt = this.clock.now();
    this.restartHold(c);
    for (const o of [...this.conns.values()]) {
      if (o.dir === "outgoing" && !o.tcpUp) this.closeConn(o, null, "quiet", "connect attempt abandoned: session established");
    }
    this.clearTimer("connectRetryTimer");
    this.clearTimer("stableTimer");
    if (this.opts.dampPeerOscillations ?? true) {
      this.stableTimer = this.clock.setTimeout(() => {
        this.stableTimer = undefined;
        this.failures = 0;
      }, (this.opts.stableTime ?? 60) * 1000);
    } else {
      this.failures = 0;
    }
    this.why("KEEPALIVE received");
    const n = c.negotiated!;
    const id = c.id;
    this.deferred.push(() => this.host.established(id, n));
  }

  private unexpected(c: Conn, what: string): void {
    const sub =
      c.state === State.OpenSent
        ? FSM_SUB.OPENSENT
        : c.state === State.OpenConfirm
          ? FSM_SUB.OPENCONFIRM
          : c.state === State.Established
            ? FSM_SUB.ESTABLISHED
            : FSM_SUB.UNSPECIFIED;
    const n: NotificationMessage = { code: ERR.FSM, subcode: sub, data: new Uint8Array(0) };
    this.closeConn(c, n, "error", `unexpected ${what} in ${c.state}`);
  }

  private closeConn(c: Conn, notif: NotificationMessage | null, kind: CloseKind, reason: string): void {
    if (!this.conns.has(c.id)) return;
    this.clearConnTimers(c);
    const wasEstablished = c.state === State.Established;
    if (notif && c.tcpUp) this.host.sendNotification(c.id, notif);
    this.conns.delete(c.id);
    this.host.disconnect(c.id, reason);
    if (kind !== "quiet" || this.reason === "") this.why(reason);
    if (kind !== "quiet") this.log(kind === "error" || kind === "cease" ? "warn" : "info", reason);
    if (wasEstablished) this.clearTimer("stableTimer");
    if (this.conns.size > 0 || !this.running) return;
    if (kind === "error" || kind === "cease") {
      if (this.opts.automaticRestart ?? true) this.enterIdleHold(kind === "error");
      else {
        this.running = false;
        this.clearTimer("connectRetryTimer");
      }
    } else if (!this.passiveMode) {
      // Back to Active: retry the connection when ConnectRetry expires.
      this.armConnectRetry();
    }
  }

  // ---------------------------------------------------------------- timers

  private jitter(ms: number): number {
    const r = Math.min(1, Math.max(0, this.random()));
    return ms * (0.75 + 0.25 * r);
  }

  private armConnectRetry(): void {
    this.clearTimer("connectRetryTimer");
    const ms = this.jitter((this.opts.connectRetryTime ?? 120) * 1000);
    this.connectRetryTimer = this.clock.setTimeout(() => this.handle({ type: "ConnectRetryTimer_Expires" }), ms);
  }

  private restartHold(c: Conn): void {
    if (c.holdMs <= 0) {
      this.clearTimer2(c, "hold");
      return;
    }
    const now = this.clock.now();
    // A shorter hold than the armed one (OpenSent's large value → negotiated) needs a new timer.
    if (c.hold !== undefined && c.holdDeadline <= now + c.holdMs) {
      c.holdDeadline = now + c.holdMs;
      return;
    }
    this.clearTimer2(c, "hold");
    c.holdDeadline = now + c.holdMs;
    c.hold = this.clock.setTimeout(() => this.handle({ type: "HoldTimer_Expires", conn: c.id }), c.holdMs);
  }

  private armKeepalive(c: Conn): void {
    this.clearTimer2(c, "keepalive");
    const ka = c.negotiated ? Math.max(1, c.negotiated.keepaliveTime) * 1000 : c.holdMs / 3;
    if (c.holdMs > 0) c.keepalive = this.clock.setTimeout(() => this.handle({ type: "KeepaliveTimer_Expires", conn: c.id }), this.jitter(ka));
  }

  private clearTimer(name: "connectRetryTimer" | "idleHoldTimer" | "stableTimer"): void {
    const h = this[name];
    if (h !== undefined) this.clock.clearTimeout(h);
    this[name] = undefined;
  }

  private clearTimer2(c: Conn, name: "hold" | "keepalive" | "delayOpen"): void {
    const h = c[name];
    if (h !== undefined) this.clock.clearTimeout(h);
    c[name] = undefined;
  }

  private clearConnTimers(c: Conn): void {
    this.clearTimer2(c, "hold");
    this.clearTimer2(c, "keepalive");
    this.clearTimer2(c, "delayOpen");
  }
}

function errorNotification(e: BgpError): NotificationMessage {
  return { code: e.code, subcode: e.subcode, data: e.data };
}

function ceaseCollision(): NotificationMessage {
  return { code: ERR.CEASE, subcode: CEASE_SUB.CONNECTION_COLLISION, data: new Uint8Array(0) };
}
