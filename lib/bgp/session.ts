/**
 * One BGP peering over TCP: binds the transport-free `Fsm` to node:net
 * sockets (IPv4 and IPv6, TCP_NODELAY, optional local address), builds our
 * OPEN from the configuration, frames and decodes what arrives, answers every
 * decoding error with the NOTIFICATION it calls for and closes, queues writes
 * while the socket buffer is full, and reports everything as typed events.
 * Socket errors never escape as exceptions or unhandled 'error' events; they
 * are reported as 'log' events.
 *
 * Connections from the peer are handed over by a `Listener` through
 * `acceptIncoming(socket)`; the FSM resolves collisions between those and the
 * connection we initiate.
 *
 * With `password` set (TCP-MD5, RFC 2385), outgoing connections are made
 * through ffi/tcp-socket.ts (the key must be on the socket before connect) and
 * still end up as node:net Sockets; a Listener keys its listening sockets for
 * the sessions it holds.
 *
 * TTL (lib/bgp/ttl.ts: eBGP TTL 1, `multihop`, GTSM `ttlSecurity`): our
 * connections with a TTL to set are made through ffi/tcp-socket.ts too, the
 * TTL and minimum TTL on the socket before the SYN (a peer two hops away
 * never sees a SYN sent with TTL 1); an accepted connection gets them in
 * `acceptIncoming`, before anything is sent on it (its TTL otherwise is the
 * listener's 255, see listener.ts, which is put back to the system default
 * when the policy has none). A setsockopt that fails fails that connection
 * (an outgoing one goes to the FSM as a failed connect, an incoming one is
 * closed): the session never comes up without the TTL protection it is
 * configured with; the error is logged once (with the errno) until a
 * connection gets its options again.
 *
 * Flow control, both ways (OpenBGPD's session engine throttling its RDE):
 * - In: received bytes are only appended to the connection's framer when
 *   they arrive (once Established, restarting the hold timer when a whole
 *   message is buffered); the shared slicer (lib/core/slices.ts) frames them
 *   and handles each message in time-bounded slices, in arrival order: OPEN,
 *   KEEPALIVE and NOTIFICATION as they come up, UPDATE and ROUTE-REFRESH
 *   decoded and handed on (the update handler or 'update' events). So a
 *   burst of data (a full table arriving several 512 KB reads at a time, or
 *   many sessions coming up at once) never holds the event loop, however
 *   cold the code. Above IN_HIGH buffered bytes the socket is paused (TCP
 *   backpressure reaches the peer) until they are below IN_LOW.
 * - Out: `writable` is false once OUT_HIGH bytes wait (ours plus the
 *   socket's buffer); a 'drain' event says it is below OUT_LOW again, so a
 *   producer (the neighbour's Adj-RIB-Out pump) writes only while the peer
 *   reads. The queue is a list with a head index: no copy per drain. A peer with a different or no key never answers
 * (the kernel drops the segments), so such a connect attempt just times out
 * at ConnectRetry, and lastError says so.
 */
import * as net from "node:net";
import { md5PasswordProblem } from "../../ffi/tcp-md5.ts";
import { connectTcp, peerFamily, socketFd } from "../../ffi/tcp-socket.ts";
import { TtlOptionError, readTtlOptions, setTtlOptions } from "../../ffi/ttl.ts";
import type { Clock } from "../core/clock.ts";
import { realClock } from "../core/clock.ts";
import { settleAttributes } from "./attributes.ts";
import { BgpError, carriesShutdownMessage } from "./errors.ts";
import { type Frame, Framer } from "./framer.ts";
import { type ConnId, type Direction, Fsm, type FsmHost, type LogLevel, State, type StateChange } from "./fsm.ts";
import { type Negotiated, hasFamily } from "./negotiate.ts";
import {
  KEEPALIVE,
  type NotificationMessage,
  type RouteRefreshMessage,
  decodeNotification,
  decodeRouteRefresh,
  describeNotification,
  encodeNotification,
  encodeRouteRefresh,
  shutdownData,
} from "./notification.ts";
import { type Capability, type OpenMessage, decodeOpen, encodeOpen, myAsField } from "./open.ts";
import { formatIPv4, formatIPv6, parseAddr } from "../core/addr.ts";
import { type SlicedTask, slicer } from "../core/slices.ts";
import { AFI, BGP_HEADER_LEN, BGP_MAX_EXT_MSG, BGP_MAX_MSG, CEASE_SUB, ERR, type Family, MsgType } from "./types.ts";
import { type UpdateContext, type UpdateMessage, decodeUpdateIn, updateContext } from "./update.ts";
import { observeUpdate } from "../metrics/hooks.ts";
import { type TtlPolicy, ttlPolicy, ttlSettingsProblem } from "./ttl.ts";

export { State } from "./fsm.ts";
export type { StateChange } from "./fsm.ts";

// ------------------------------------------------------------------ emitter

type Listener<T> = (payload: T) => void;

/**
 * A small typed event emitter. A listener that throws does not break the
 * emitter's caller: the exception is reported as a 'log' event (or on stderr
 * when there is no 'log' event or it is the log listener that throws).
 */
export class TypedEmitter<E extends object> {
  private handlers = new Map<keyof E, Listener<never>[]>();

  on<K extends keyof E>(ev: K, fn: Listener<E[K]>): this {
    const l = this.handlers.get(ev) ?? [];
    l.push(fn as Listener<never>);
    this.handlers.set(ev, l);
    return this;
  }

  once<K extends keyof E>(ev: K, fn: Listener<E[K]>): this {
    const w: Listener<E[K]> = (p) => {
      this.off(ev, w);
      fn(p);
    };
    return this.on(ev, w);
  }

  off<K extends keyof E>(ev: K, fn: Listener<E[K]>): this {
    const l = this.handlers.get(ev);
    if (!l) return this;
    const i = l.indexOf(fn as Listener<never>);
    if (i >= 0) l.splice(i, 1);
    return this;
  }

  listenerCount<K extends keyof E>(ev: K): number {
    return this.handlers.get(ev)?.length ?? 0;
  }

  /** Call the listeners of `ev`; true when there was at least one. */
  emit<K extends keyof E>(ev: K, payload: E[K]): boolean {
    const l = this.handlers.get(ev);
    if (!l || l.length === 0) return false;
    for (const fn of [...l]) {
      try {
        (fn as Listener<E[K]>)(payload);
      } catch (err) {
        const msg = `listener of '${String(ev)}' threw: ${err instanceof Error ? err.message : String(err)}`;
        if (ev !== "log" && this.handlers.get("log" as keyof E)?.length) {
          this.emit("log" as K, { level: "error", msg } as E[K]);
        } else {
          console.error(msg);
        }
      }
    }
    return true;
  }
}

// ------------------------------------------------------------------ helpers

/** Canonical text of an address: IPv4-mapped IPv6 becomes IPv4, IPv6 in RFC 5952 form, zone dropped. */
export function normalizeAddress(a: string): string {
  const p = parseAddr(a.trim());
  if (!p) return a.trim().toLowerCase();
  if (p.afi === AFI.IPV4) return formatIPv4(p.addr);
  const b = p.addr;
  let mapped = b[10] === 0xff && b[11] === 0xff;
  for (let i = 0; i < 10 && mapped; i++) if (b[i] !== 0) mapped = false;
  return mapped ? formatIPv4(b, 12) : formatIPv6(b);
}

/** A BGP identifier from a local address: an IPv4 address itself, else a 32-bit hash of the IPv6 address (never 0.0.0.0). */
export function routerIdFromAddress(addr: string): string {
  const n = normalizeAddress(addr);
  const p = parseAddr(n);
  if (!p) return "192.0.2.1";
  if (p.afi === AFI.IPV4) return n;
  let h = 0x811c9dc5;
  for (const x of p.addr) h = Math.imul(h ^ x, 0x01000193) >>> 0;
  if (h === 0) h = 1;
  return formatIPv4(Uint8Array.of(h >>> 24, (h >>> 16) & 0xff, (h >>> 8) & 0xff, h & 0xff));
}

// ------------------------------------------------------------------ session

export interface SessionConfig {
  peerAddress: string;
  /** Default 179. */
  peerPort?: number;
  /** Source address for our connections. */
  localAddress?: string;
  localAs: number;
  /** The AS the peer must have; undefined accepts any. */
  remoteAs?: number;
  /** BGP identifier; default: derived from the local address of the first connection. */
  routerId?: string;
  /** Seconds, default 90 (0: no keepalives / no hold timer). */
  holdTime?: number;
  /** Keepalive interval, seconds (default: a third of the negotiated hold time; never more than that). */
  keepalive?: number;
  /** Seconds, default 120. */
  connectRetry?: number;
  /** Never initiate connections; wait for the peer. */
  passive?: boolean;
  /**
   * TCP-MD5 (RFC 2385) password: signs our connections to the peer, and the
   * Listener this session is added to requires it on the peer's connections.
   * 1..80 bytes of UTF-8. Absent: plain TCP.
   */
  password?: string;
  /**
   * TTL of our packets (lib/bgp/ttl.ts): a number 1..255 (eBGP multihop);
   * false: directly connected (an eBGP session sends with TTL 1); absent:
   * the TTL is not managed (system default).
   */
  multihop?: number | false;
  /** GTSM (RFC 5082) hop count 1..254: send with TTL 255, accept only TTL >= 256 - hops. Excludes a numeric multihop. */
  ttlSecurity?: number;
  /** DelayOpen time in seconds (off when absent or 0). */
  delayOpen?: number;
  families: Family[];
  /** Extra capabilities (add-path, graceful-restart, role, extended-message...); a function is asked again for every OPEN sent (graceful restart's R and F bits change). */
  capabilities?: Capability[] | (() => Capability[]);
  clock?: Clock;
  /** IdleHold tuning (seconds); see FsmOptions. */
  idleHoldTime?: number;
  idleHoldMaxTime?: number;
  dampPeerOscillations?: boolean;
  /** Graceful restart helper: a new connection while Established from a GR peer replaces the old session (see FsmOptions). */
  gracefulRestart?: boolean;
  /** Jitter source (default Math.random). */
  random?: () => number;
  /** Upper bound for stop() and for flushing a closing connection, ms (default 3000). */
  closeTimeout?: number;
  /** Output watermarks in bytes (defaults OUT_HIGH, OUT_LOW). */
  outHigh?: number;
  outLow?: number;
  /** Bounds in bytes of the received input not yet handled (defaults IN_HIGH, IN_LOW). */
  inHigh?: number;
  inLow?: number;
  /**
   * Sees every whole message received ("in": its Frame, whose `raw` view is
   * made only when read, so a tap that records nothing costs no view) and
   * sent ("out": the bytes, several messages back to back when written at
   * once), on any connection: the MRT recorder's tap.
   */
  tap?: (dir: "in" | "out", msg: Uint8Array | Frame, conn: { localAddress?: string | undefined; remoteAddress?: string | undefined }) => void;
}

/** Not writable above this many queued output bytes. */
export const OUT_HIGH = 1 << 20;
/** 'drain' once output falls below this many bytes. */
export const OUT_LOW = 256 << 10;
/** Pause reading the socket above this many bytes of received messages waiting to be processed. */
export const IN_HIGH = 4 << 20;
/** Resume reading below this many. */
export const IN_LOW = 1 << 20;

export interface MessageCounts {
  open: number;
  update: number;
  notification: number;
  keepalive: number;
  routeRefresh: number;
  total: number;
}

export interface SessionCounters {
  in: MessageCounts;
  out: MessageCounts;
  /** How many times the session reached Established. */
  established: number;
  /** Text of the last error (NOTIFICATION sent or received, socket error), or null. */
  lastError: string | null;
}

export interface SessionEvents {
  state: StateChange;
  established: Negotiated;
  update: UpdateMessage;
  notificationReceived: NotificationMessage;
  notificationSent: NotificationMessage;
  routeRefresh: RouteRefreshMessage;
  /** The Established connection's queued output fell below the low watermark: `writable` again. */
  drain: null;
  log: { level: LogLevel; msg: string };
}

export interface StopOptions {
  /** Cease subcode (default 2, Administrative Shutdown). */
  subcode?: number;
  /** RFC 9003 shutdown communication (for subcodes 2 and 4). */
  message?: string;
  /** No NOTIFICATION: the TCP connection just closes (a graceful restart: the peer keeps our routes). */
  quiet?: boolean;
  /** With subcode Hard Reset (RFC 8538 §3): the Cease subcode it stands for, carried (with its data) in the data field. */
  hardResetOf?: number;
}

interface Tcp {
  id: ConnId;
  dir: Direction;
  socket: net.Socket;
  framer: Framer;
  connected: boolean;
  /** Output waiting for the socket: queue[qHead..], qBytes bytes. */
  queue: Uint8Array[];
  qHead: number;
  qBytes: number;
  blocked: boolean;
  /** Reading is paused because the received bytes not yet handled (the framer's `buffered`) went over their bound. */
  paused: boolean;
  /** An UPDATE the update handler has not finished with (it goes on in the next slice), and the time spent on it so far. */
  partial: UpdateMessage | null;
  partialMs: number;
  /** Frames and processes the input in slices. */
  task: SlicedTask;
  closing: boolean;
  closed: boolean;
  whenClosed: Promise<void>;
  markClosed: () => void;
  killTimer?: ReturnType<typeof setTimeout>;
  ctx: UpdateContext | null;
}

function zeroCounts(): MessageCounts {
  return { open: 0, update: 0, notification: 0, keepalive: 0, routeRefresh: 0, total: 0 };
}

const COUNT_KEY: Record<number, keyof MessageCounts> = {
  [MsgType.OPEN]: "open",
  [MsgType.UPDATE]: "update",
  [MsgType.NOTIFICATION]: "notification",
  [MsgType.KEEPALIVE]: "keepalive",
  [MsgType.ROUTE_REFRESH]: "routeRefresh",
};

/** The FSM's reason for closing an outgoing connection that ConnectRetry caught still connecting. */
const CONNECT_TIMED_OUT = "connect attempt timed out";

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class Session extends TypedEmitter<SessionEvents> {
  readonly config: Readonly<SessionConfig>;
  private readonly fsm: Fsm;
  private readonly tcps = new Map<ConnId, Tcp>();
  /** Connections being closed (flushing), awaited by stop(). */
  private readonly closingTcps = new Set<Tcp>();
  private routerId: string | null;
  private readonly countIn = zeroCounts();
  private readonly countOut = zeroCounts();
  private establishedCount = 0;
  private lastError: string | null = null;
  /** What the TTL options of our sockets are. */
  readonly ttl: TtlPolicy;
  /** The last socket option failure logged (logged again only after a connection got its options). */
  private sockoptFailure: string | null = null;
  /**
   * Instead of the 'update' event: received UPDATEs are handed to this, in
   * order, with the slice's deadline (performance.now() milliseconds). It
   * returns true when done with the message, false when the deadline came
   * first: it is then called again with the same message in the next slice
   * (before any later message), and must go on where it stopped. So one
   * UPDATE of thousands of prefixes (RFC 8654 extended messages) never holds
   * the event loop.
   */
  updateHandler: ((u: UpdateMessage, deadline: number) => boolean) | null = null;

  constructor(config: SessionConfig) {
    super();
    this.config = { ...config };
    this.routerId = config.routerId ?? null;
    const hold = config.holdTime ?? 90;
    if (hold !== 0 && (hold < 3 || hold > 65535)) throw new RangeError(`hold time ${hold}: must be 0 or 3..65535`);
    if (config.password !== undefined) {
      const p = md5PasswordProblem(config.password);
      if (p) throw new RangeError(`${config.peerAddress}: ${p}`);
    }
    const tp = ttlSettingsProblem(config);
    if (tp) throw new RangeError(`${config.peerAddress}: ${tp}`);
    this.ttl = ttlPolicy(config, config.remoteAs === undefined ? null : config.remoteAs !== config.localAs);
    this.fsm = new Fsm(this.host(), {
      localOpen: this.buildOpen(),
      expectedPeerAs: config.remoteAs,
      passive: config.passive ?? false,
      connectRetryTime: config.connectRetry ?? 120,
      keepaliveTime: config.keepalive,
      delayOpenTime: config.delayOpen ?? 0,
      idleHoldTime: config.idleHoldTime,
      idleHoldMaxTime: config.idleHoldMaxTime,
      dampPeerOscillations: config.dampPeerOscillations,
      gracefulRestart: config.gracefulRestart,
      clock: config.clock ?? realClock,
      random: config.random,
    });
  }

  /** Our OPEN as it is (or will be) sent. */
  buildOpen(): OpenMessage {
    const c = this.config;
    const caps: Capability[] = [];
    for (const f of c.families) caps.push({ type: "multiprotocol", afi: f.afi, safi: f.safi });
    caps.push({ type: "route-refresh" }, { type: "enhanced-route-refresh" }, { type: "four-octet-as", asn: c.localAs });
    const fixed = new Set<Capability["type"]>(["route-refresh", "enhanced-route-refresh", "four-octet-as"]);
    const extra = typeof c.capabilities === "function" ? c.capabilities() : (c.capabilities ?? []);
    for (const x of extra) {
      if (fixed.has(x.type)) continue;
      if (x.type === "multiprotocol" && caps.some((y) => y.type === "multiprotocol" && y.afi === x.afi && y.safi === x.safi)) continue;
      caps.push(x);
    }
    return {
      version: 4,
      myAs: myAsField(c.localAs),
      holdTime: c.holdTime ?? 90,
      routerId: this.routerId ?? "0.0.0.0",
      capabilities: caps,
    };
  }

  // ------------------------------------------------------------ public API

  get state(): State {
    return this.fsm.state;
  }

  get peerAddress(): string {
    return this.config.peerAddress;
  }

  /** Capabilities of the Established session, else null. */
  get negotiated(): Negotiated | null {
    return this.fsm.negotiated;
  }

  /** Our BGP identifier (null until derived from the first connection when not configured). */
  get localRouterId(): string | null {
    return this.routerId;
  }

  private get establishedTcp(): Tcp | null {
    const id = this.fsm.establishedConn;
    return id === null ? null : (this.tcps.get(id) ?? null);
  }

  /** Local address of the Established TCP connection (IPv4-mapped shown as IPv4), else null. */
  get localAddress(): string | null {
    const a = this.establishedTcp?.socket.localAddress;
    return a ? normalizeAddress(a) : null;
  }
  get localPort(): number | null {
    return this.establishedTcp?.socket.localPort ?? null;
  }
  get remoteAddress(): string | null {
    const a = this.establishedTcp?.socket.remoteAddress;
    return a ? normalizeAddress(a) : null;
  }
  get remotePort(): number | null {
    return this.establishedTcp?.socket.remotePort ?? null;
  }

  /**
   * The TTL and minimum TTL the Established connection's socket has (read
   * back with getsockopt; minTtl 0: no check), else null.
   */
  get socketTtl(): { ttl: number; minTtl: number } | null {
    const t = this.establishedTcp;
    const fd = t ? socketFd(t.socket) : null;
    if (!t || fd === null) return null;
    return readTtlOptions(fd, peerFamily(t.socket.remoteAddress ?? this.config.peerAddress));
  }

  /** Messages waiting for the Established connection's socket buffer to drain. */
  get outQueue(): number {
    const t = this.establishedTcp;
    return t ? t.queue.length - t.qHead : 0;
  }
  /** Bytes waiting in outQueue. */
  get outQueueBytes(): number {
    return this.establishedTcp?.qBytes ?? 0;
  }
  /** Output bytes not yet handed to the kernel: our queue plus the socket's own buffer. */
  get outBytes(): number {
    const t = this.establishedTcp;
    return t ? t.qBytes + (t.socket.writableLength ?? 0) : 0;
  }
  /** Established and below the high watermark: a producer may write more ('drain' says when it is again). */
  get writable(): boolean {
    const t = this.establishedTcp;
    return !!t && !t.closing && this.outBytes < (this.config.outHigh ?? OUT_HIGH);
  }
  /** Whether reading from the Established connection is paused (input over its bound). */
  get readPaused(): boolean {
    return this.establishedTcp?.paused ?? false;
  }

  get counters(): SessionCounters {
    return { in: { ...this.countIn }, out: { ...this.countOut }, established: this.establishedCount, lastError: this.lastError };
  }

  /** The FSM's view of the TCP connections (for `show`). */
  connections(): ReturnType<Fsm["connections"]> {
    return this.fsm.connections();
  }

  /** ManualStart: connect (unless passive) and accept connections from the peer. */
  start(): void {
    this.fsm.start({ passive: this.config.passive ?? false });
  }

  /**
   * ManualStop: send Cease (default Administrative Shutdown, with `message` as
   * RFC 9003 shutdown communication) on every open connection and close them.
   * Resolves when the sockets are closed, or after `closeTimeout` at most.
   */
  /** Close the session without a NOTIFICATION (as a lost connection) and connect again after the idle hold: BFD down for a graceful-restart peer. */
  drop(reason: string): void {
    this.fsm.drop(reason);
  }

  async stop(opts: StopOptions = {}): Promise<void> {
    const subcode = opts.subcode ?? CEASE_SUB.ADMIN_SHUTDOWN;
    const inner = opts.hardResetOf ?? subcode;
    const own = opts.message !== undefined && carriesShutdownMessage(ERR.CEASE, inner) ? shutdownData(opts.message) : new Uint8Array(0);
    const data = opts.hardResetOf !== undefined ? Uint8Array.of(opts.hardResetOf, ...own) : own;
    this.fsm.stop({ subcode, data, reason: opts.message ? `stopped: ${opts.message}` : opts.quiet ? "stopped (graceful restart: no NOTIFICATION)" : "stopped", quiet: opts.quiet });
    // Called from inside an FSM callback the stop is queued; let it run first.
    await Promise.resolve();
    const pending = [...this.closingTcps].filter((t) => !t.closed);
    if (pending.length === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((r) => {
      timer = setTimeout(r, this.config.closeTimeout ?? 3000);
    });
    await Promise.race([Promise.all(pending.map((t) => t.whenClosed)), timeout]);
    clearTimeout(timer);
    for (const t of pending) if (!t.closed) t.socket.destroy();
  }

  /** Send a whole, already framed UPDATE on the Established connection. False when not Established. */
  sendUpdate(bytes: Uint8Array): boolean {
    const t = this.establishedTcp;
    if (!t) return false;
    return this.write(t, bytes, MsgType.UPDATE);
  }

  /**
   * Send several framed UPDATEs as one socket write (one pass through the
   * stream machinery instead of one per message). False when not Established.
   */
  sendUpdates(msgs: readonly Uint8Array[]): boolean {
    if (msgs.length === 0) return true;
    if (msgs.length === 1) return this.sendUpdate(msgs[0]!);
    return this.sendUpdateBatch(Buffer.concat(msgs), msgs.length);
  }

  /**
   * Send `count` framed UPDATEs already joined into one buffer (what an
   * update group hands each member: joined once for all of them), as one
   * socket write counted per message. False when not Established.
   */
  sendUpdateBatch(bytes: Uint8Array, count: number): boolean {
    const t = this.establishedTcp;
    if (!t) return false;
    if (!this.write(t, bytes, MsgType.UPDATE)) return false;
    this.countOut.update += count - 1;
    this.countOut.total += count - 1;
    return true;
  }

  /**
   * Send ROUTE-REFRESH (subtype 0 request, 1 BoRR, 2 EoRR). False when not
   * Established or the peer did not negotiate route refresh (enhanced route
   * refresh for subtypes 1 and 2).
   */
  sendRouteRefresh(afi: number, safi: number, subtype = 0): boolean {
    const t = this.establishedTcp;
    const n = this.negotiated;
    if (!t || !n) return false;
    if (subtype === 0 ? !n.routeRefresh : !n.enhancedRouteRefresh) return false;
    return this.write(t, encodeRouteRefresh({ afi, safi, subtype }), MsgType.ROUTE_REFRESH);
  }

  /** Take a TCP connection from the peer (from a Listener). Refused connections are closed. */
  acceptIncoming(socket: net.Socket): void {
    if (!this.applyTtl(socket)) {
      socket.on("error", () => {});
      socket.destroy();
      return;
    }
    try {
      socket.setNoDelay(true);
      const id = this.fsm.incomingConnection((conn) => {
        this.deriveRouterId(socket);
        this.track(conn, "incoming", socket, true);
      });
      if (id === null) {
        this.log("info", `refused connection from ${normalizeAddress(socket.remoteAddress ?? "?")} in state ${this.state}`);
        this.rejectSocket(socket);
      }
    } catch (e) {
      this.log("error", `accepting connection failed: ${errText(e)}`);
      socket.on("error", () => {});
      socket.destroy();
    }
  }

  // ------------------------------------------------------------- internals

  private log(level: LogLevel, msg: string): void {
    this.emit("log", { level, msg: `${this.config.peerAddress}: ${msg}` });
  }

  /** Whether this session's connections are made by ffi/tcp-socket.ts (options before the SYN). */
  private get ownSocket(): boolean {
    return this.config.password !== undefined || this.ttl.ttl !== null || this.ttl.minTtl !== null;
  }

  /** Log a socket option failure once (until options succeed again); it is also the session's lastError. */
  private sockoptFailed(msg: string): void {
    this.lastError = msg;
    if (this.sockoptFailure === msg) return;
    this.sockoptFailure = msg;
    this.log("error", msg);
  }

  /**
   * Put this session's TTL policy on an accepted socket (the system default
   * TTL when it has none: the listener's is 255). False, after logging, when
   * that fails: the connection must not be used.
   */
  private applyTtl(socket: net.Socket): boolean {
    const { ttl, minTtl } = this.ttl;
    try {
      const fd = socketFd(socket);
      if (fd === null) throw new Error("the accepted socket has no file descriptor");
      setTtlOptions(fd, peerFamily(socket.remoteAddress ?? this.config.peerAddress), { ttl: ttl ?? -1, minTtl: minTtl ?? 0 });
      this.sockoptFailure = null;
      return true;
    } catch (e) {
      this.sockoptFailed(`incoming connection refused: cannot set ${this.ttl.text}: ${errText(e)}`);
      return false;
    }
  }

  private rejectSocket(socket: net.Socket): void {
    socket.on("error", (e) => this.log("debug", `refused socket: ${errText(e)}`));
    try {
      socket.end(encodeNotification(ERR.CEASE, CEASE_SUB.CONNECTION_REJECTED));
    } catch {
      /* already gone */
    }
    const t = setTimeout(() => socket.destroy(), this.config.closeTimeout ?? 3000);
    socket.once("close", () => clearTimeout(t));
  }

  private deriveRouterId(socket: net.Socket): void {
    if (this.routerId !== null) return;
    const local = socket.localAddress ?? this.config.localAddress;
    if (!local) return;
    this.routerId = routerIdFromAddress(local);
    this.fsm.setLocalOpen(this.buildOpen());
    this.log("info", `router id ${this.routerId} (from local address ${normalizeAddress(local)})`);
  }

  private host(): FsmHost {
    return {
      connect: (conn) => this.connect(conn),
      disconnect: (conn, reason) => {
        const t = this.tcps.get(conn);
        if (!t) return;
        this.tcps.delete(conn);
        if (t.dir === "outgoing" && !t.connected && !t.closed && this.config.password !== undefined && reason === CONNECT_TIMED_OUT) {
          // A peer without our key (or with another one) drops our SYNs without a word.
          this.lastError = `connect to ${this.config.peerAddress}: no answer (TCP-MD5: does the peer have the same password?)`;
          this.log("warn", `${reason}: no answer to a TCP-MD5 signed connect; does the peer have the same password?`);
        } else if (t.dir === "outgoing" && !t.connected && !t.closed && this.ttl.ttl !== null && this.ttl.ttl < 255 && reason === CONNECT_TIMED_OUT) {
          // A SYN whose TTL runs out on the way gets no answer (at most an ICMP time exceeded from a router).
          this.lastError = `connect to ${this.config.peerAddress}: no answer (sent with TTL ${this.ttl.ttl}: is the peer further away? see multihop)`;
        }
        this.log("debug", `closing ${t.dir} connection: ${reason}`);
        this.closeTcp(t);
      },
      ...(typeof this.config.capabilities === "function" ? { localOpen: () => this.buildOpen() } : {}),
      sendOpen: (conn, open) => {
        const t = this.tcps.get(conn);
        if (t) this.write(t, encodeOpen(open), MsgType.OPEN);
      },
      sendKeepalive: (conn) => {
        const t = this.tcps.get(conn);
        if (t) this.write(t, KEEPALIVE, MsgType.KEEPALIVE);
      },
      sendNotification: (conn, n) => {
        const t = this.tcps.get(conn);
        if (!t) return;
        const bytes = encodeNotification(n.code, n.subcode, n.data);
        this.write(t, bytes, MsgType.NOTIFICATION);
        const sent = decodeNotification(bytes.subarray(19));
        // Closing the losing connection of a collision is routine, not an error worth reporting.
        if (!(n.code === ERR.CEASE && n.subcode === CEASE_SUB.CONNECTION_COLLISION)) this.lastError = `sent ${describeNotification(sent)}`;
        this.emit("notificationSent", sent);
      },
      openConfirmed: (conn, n) => {
        const t = this.tcps.get(conn);
        if (!t) return;
        t.framer.maxLen = n.extendedMessage ? BGP_MAX_EXT_MSG : BGP_MAX_MSG;
        t.ctx = updateContext(n, n.peerAs === n.localAs, t.socket.localAddress);
      },
      established: (_conn, n) => {
        this.establishedCount++;
        // `show neighbors` shows the last error of a session that is down, not of one that recovered.
        this.lastError = null;
        this.emit("established", n);
      },
      stateChange: (c) => this.emit("state", c),
      // A received NOTIFICATION is reported once, through 'notificationReceived' (the neighbour's log line); the FSM's closing line only at debug.
      log: (level, msg) => this.log(msg.startsWith("received NOTIFICATION") ? "debug" : level, msg),
    };
  }

  private connect(conn: ConnId): void {
    const c = this.config;
    const port = c.peerPort ?? 179;
    let socket: net.Socket;
    let tcp: Tcp | null = null;
    const own = this.ownSocket;
    try {
      if (own) {
        const { ttl, minTtl } = this.ttl;
        // The handshake ends later: connectTcp calls back (never synchronously, so `tcp` is set by then).
        socket = connectTcp({
          host: c.peerAddress,
          port,
          localAddress: c.localAddress,
          ...(c.password !== undefined ? { password: c.password } : {}),
          ...(ttl !== null || minTtl !== null ? { ttl: { ...(ttl !== null ? { ttl } : {}), ...(minTtl !== null ? { minTtl } : {}) } } : {}),
          onConnected: () => {
            if (tcp) this.outgoingConnected(tcp);
          },
        });
        this.sockoptFailure = null;
      } else {
        const family = net.isIPv6(c.peerAddress.split("%")[0]!) ? 6 : 4;
        const opts: net.TcpNetConnectOpts = { host: c.peerAddress, port, family };
        if (c.localAddress) opts.localAddress = c.localAddress;
        socket = net.connect(opts);
      }
    } catch (e) {
      if (e instanceof TtlOptionError) this.sockoptFailed(`connect to ${c.peerAddress} failed: cannot set ${this.ttl.text}: ${errText(e)}`);
      else {
        this.log("warn", `connect to ${c.peerAddress} failed: ${errText(e)}`);
        this.lastError = `connect: ${errText(e)}`;
      }
      this.fsm.tcpFailed(conn, errText(e));
      return;
    }
    const t = this.track(conn, "outgoing", socket, false);
    tcp = t;
    if (!own) socket.once("connect", () => this.outgoingConnected(t));
  }

  private outgoingConnected(t: Tcp): void {
    if (t.closing || t.closed) return;
    const c = this.config;
    const socket = t.socket;
    t.connected = true;
    try {
      socket.setNoDelay(true);
    } catch {
      /* not fatal */
    }
    this.deriveRouterId(socket);
    const md5 = c.password !== undefined ? " (TCP-MD5)" : "";
    const ttl = this.ttl.ttl !== null || this.ttl.minTtl !== null ? ` (${this.ttl.text})` : "";
    this.log("debug", `connected ${normalizeAddress(socket.localAddress ?? "?")}:${socket.localPort} -> ${c.peerAddress}:${c.peerPort ?? 179}${md5}${ttl}`);
    this.fsm.tcpConnected(t.id);
  }

  private track(id: ConnId, dir: Direction, socket: net.Socket, connected: boolean): Tcp {
    let markClosed = () => {};
    const whenClosed = new Promise<void>((r) => {
      markClosed = r;
    });
    const t: Tcp = {
      id,
      dir,
      socket,
      framer: new Framer(),
      connected,
      queue: [],
      qHead: 0,
      qBytes: 0,
      blocked: false,
      partial: null,
      partialMs: 0,
      paused: false,
      task: { step: (deadline) => this.processInput(t, deadline) },
      closing: false,
      closed: false,
      whenClosed,
      markClosed,
      ctx: null,
    };
    this.tcps.set(id, t);
    socket.on("error", (e) => {
      const msg = errText(e);
      if (!t.closing) this.lastError = `${dir} connection: ${msg}`;
      this.log(t.closing ? "debug" : "warn", `${dir} connection error: ${msg}`);
    });
    socket.on("data", (chunk: Uint8Array) => this.onData(t, chunk));
    socket.on("drain", () => this.onDrain(t));
    socket.on("close", () => {
      t.closed = true;
      this.dropInput(t);
      if (t.killTimer) clearTimeout(t.killTimer);
      this.closingTcps.delete(t);
      t.markClosed();
      if (this.tcps.get(id) === t) {
        this.tcps.delete(id);
        this.fsm.tcpFailed(id, t.connected ? "closed by peer" : "could not connect");
      }
    });
    return t;
  }

  private closeTcp(t: Tcp): void {
    if (t.closing) return;
    t.closing = true;
    this.dropInput(t);
    if (t.closed) return;
    this.closingTcps.add(t);
    const s = t.socket;
    try {
      if (!t.connected || s.destroyed) {
        s.destroy();
        return;
      }
      for (let i = t.qHead; i < t.queue.length; i++) s.write(t.queue[i]!);
      t.queue = [];
      t.qHead = t.qBytes = 0;
      s.end();
    } catch (e) {
      this.log("debug", `close: ${errText(e)}`);
      s.destroy();
      return;
    }
    t.killTimer = setTimeout(() => s.destroy(), this.config.closeTimeout ?? 3000);
  }

  private write(t: Tcp, bytes: Uint8Array, type: number): boolean {
    if (t.closing || t.closed || t.socket.destroyed) return false;
    this.config.tap?.("out", bytes, t.socket);
    const k = COUNT_KEY[type];
    if (k) this.countOut[k]++;
    this.countOut.total++;
    if (t.blocked || t.queue.length > t.qHead) {
      t.queue.push(bytes);
      t.qBytes += bytes.length;
      return true;
    }
    try {
      if (!t.socket.write(bytes)) t.blocked = true;
    } catch (e) {
      this.log("warn", `write failed: ${errText(e)}`);
      return false;
    }
    return true;
  }

  private onDrain(t: Tcp): void {
    t.blocked = false;
    const q = t.queue;
    try {
      while (t.qHead < q.length && !t.blocked && !t.closing) {
        const b = q[t.qHead]!;
        q[t.qHead++] = undefined as unknown as Uint8Array;
        t.qBytes -= b.length;
        if (!t.socket.write(b)) t.blocked = true;
      }
    } catch (e) {
      this.log("warn", `write failed: ${errText(e)}`);
    }
    if (t.qHead === q.length) {
      t.queue = [];
      t.qHead = 0;
    } else if (t.qHead > 1024 && t.qHead * 2 > q.length) {
      // Amortised compaction: each message is moved at most once more.
      t.queue = q.slice(t.qHead);
      t.qHead = 0;
    }
    if (!t.closing && this.fsm.establishedConn === t.id && this.outBytes < (this.config.outLow ?? OUT_LOW)) this.emit("drain", null);
  }

  // ------------------------------------------------------------- input

  /** Pause reading while the received bytes not yet handled are over IN_HIGH. */
  private boundInput(t: Tcp): void {
    if (!t.paused && t.framer.buffered > (this.config.inHigh ?? IN_HIGH)) {
      t.paused = true;
      t.socket.pause();
    }
  }

  /**
   * One slice of the received input: the UPDATE in progress, then message
   * after message framed, handled in order until the deadline. True when
   * more is left.
   */
  private processInput(t: Tcp, deadline: number): boolean {
    for (;;) {
      if (t.closing) return false;
      // The time after each step when the step read the clock (an UPDATE's handling does), else 0: one clock read fewer per UPDATE.
      let now = 0;
      if (t.partial !== null) {
        try {
          now = this.continueUpdate(t, t.partial, deadline, performance.now());
        } catch (e) {
          t.partial = null;
          this.inputFailed(t, e, "handling UPDATE");
        }
        if (t.partial !== null) break; // out of time
      } else {
        now = this.frameNext(t, deadline);
        if (now < 0) break;
      }
      if ((now || performance.now()) >= deadline) break;
    }
    if (t.paused && !t.closing && t.framer.buffered <= (this.config.inLow ?? IN_LOW)) {
      t.paused = false;
      t.socket.resume();
    }
    return (t.partial !== null || t.framer.hasMessage()) && !t.closing;
  }

  /**
   * Frame the next buffered message and handle it (no UPDATE is in
   * progress: processInput frames only then, so messages are handled in
   * arrival order). Returns -1 when no whole message is buffered or the
   * stream does not frame (then the connection is being closed), else the
   * clock after handling when that read it (0 when not).
   */
  private frameNext(t: Tcp, deadline: number): number {
    let f: Frame | null;
    try {
      f = t.framer.next();
    } catch (e) {
      t.framer = new Framer(); // the rest of the stream is not read: the connection goes down
      this.inputFailed(t, e, "framing");
      return -1;
    }
    if (f === null) return -1;
    try {
      return this.onFrame(t, f, deadline);
    } catch (e) {
      t.partial = null;
      this.inputFailed(t, e, `handling ${COUNT_KEY[f.type] ?? f.type}`);
      return 0;
    }
  }

  /** A ROUTE-REFRESH of the Established connection: handed on for a negotiated family. */
  private handleRouteRefresh(f: Frame): void {
    const r = decodeRouteRefresh(f.body, f.raw);
    const n = this.fsm.negotiated;
    if (n && hasFamily(n, r.afi, r.safi)) this.emit("routeRefresh", r);
    else this.log("info", `ignoring ROUTE-REFRESH for unnegotiated family ${r.afi}/${r.safi}`);
  }

  /** Decode an UPDATE of the Established connection and hand it on (its hold timer already restarted); returns the clock after. */
  private handleUpdate(t: Tcp, f: Frame, ctx: UpdateContext, deadline: number): number {
    const start = performance.now();
    const u = decodeUpdateIn(f.buf, f.off + BGP_HEADER_LEN, f.off + f.length, ctx);
    if (this.updateHandler === null) {
      this.emit("update", u);
      settleAttributes(u.attrs);
      const now = performance.now();
      observeUpdate(now - start);
      return now;
    }
    t.partialMs = 0;
    return this.continueUpdate(t, u, deadline, start);
  }

  /** A received message that could not be framed or handled: a BgpError is the peer's (NOTIFICATION, close), anything else ours (logged). */
  private inputFailed(t: Tcp, e: unknown, what: string): void {
    if (e instanceof BgpError) this.fsm.messageError(t.id, e);
    else this.log("error", `${what} failed: ${errText(e)}`);
  }

  /** Hand `u` to the update handler until it is done (then observed, with the time of every part) or the deadline (then kept for the next slice); returns the clock after. */
  private continueUpdate(t: Tcp, u: UpdateMessage, deadline: number, start: number): number {
    t.partial = u;
    const done = this.updateHandler!(u, deadline);
    const now = performance.now();
    t.partialMs += now - start;
    if (!done) return now;
    t.partial = null;
    settleAttributes(u.attrs);
    observeUpdate(t.partialMs);
    return now;
  }

  private dropInput(t: Tcp): void {
    slicer.cancel(t.task);
    t.partial = null;
    t.framer = new Framer();
  }

  private onData(t: Tcp, chunk: Uint8Array): void {
    if (t.closing) return;
    // Framed and handled in slices (processInput), in arrival order: the OPEN exchange too,
    // so twenty sessions coming up at once (each Established runs the neighbour's set-up, slow while the
    // code is cold) take twenty turns, not one. The peer is alive: once Established, a whole message
    // from it restarts the hold timer now, not when its turn comes.
    t.framer.append(chunk);
    if (t.ctx !== null && this.fsm.connectionState(t.id) === State.Established && t.framer.hasMessage()) this.fsm.messageArrived(t.id);
    this.boundInput(t);
    slicer.wake(t.task);
  }

  /** A message just framed (see frameNext): returns the clock after handling an UPDATE, else 0. */
  private onFrame(t: Tcp, f: Frame, deadline: number): number {
    this.config.tap?.("in", f, t.socket);
    const k = COUNT_KEY[f.type];
    if (k) this.countIn[k]++;
    this.countIn.total++;
    const established = this.fsm.connectionState(t.id) === State.Established;
    switch (f.type) {
      case MsgType.OPEN:
        this.fsm.openReceived(t.id, decodeOpen(f.body));
        return 0;
      case MsgType.KEEPALIVE:
        this.fsm.keepaliveReceived(t.id);
        return 0;
      case MsgType.NOTIFICATION: {
        const n = decodeNotification(f.body);
        this.lastError = `received ${describeNotification(n)}`;
        this.emit("notificationReceived", n);
        this.fsm.notificationReceived(t.id, n);
        return 0;
      }
      case MsgType.UPDATE: {
        const ctx = t.ctx;
        // The hold timer restarts now, once framed (outside Established, the FSM's error).
        this.fsm.updateReceived(t.id);
        if (!established || ctx === null) return 0;
        return this.handleUpdate(t, f, ctx, deadline);
      }
      case MsgType.ROUTE_REFRESH: {
        if (!established) {
          this.fsm.routeRefreshReceived(t.id); // unexpected: FSM error
          return 0;
        }
        // In order with the UPDATEs around it (enhanced route refresh markers delimit them).
        this.fsm.routeRefreshReceived(t.id);
        if (this.fsm.connectionState(t.id) === State.Established) this.handleRouteRefresh(f);
        return 0;
      }
    }
    return 0;
  }
}
