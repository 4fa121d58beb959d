/**
 * The daemon's BFD sessions: one per peer key (the BGP peer's address),
 * their discriminators, the sockets (through a BfdTransport) and the
 * demultiplexing of received packets (RFC 5880 §6.3): by Your Discriminator
 * when nonzero; when zero (the peer has not learnt ours yet) by source
 * address and kind (single hop / multihop) — the runtime's UDP sockets do
 * not tell the receiving interface, and bgpctl has at most one session per
 * peer address, so the source address alone is unambiguous.
 *
 * Everything runs on the event loop: a received packet is a few field reads
 * and at most one send, a timer firing is one send. Removing a session
 * takes it to AdminDown (the peer is told, RFC 5880 §6.8.16) and closes it
 * after two transmit intervals (at most 2 s) of AdminDown packets.
 */
import { type Clock, type TimerHandle, realClock } from "../core/clock.ts";
import { parseAddr } from "../core/addr.ts";
import { BfdPacketError, BfdState, decodeControl, diagText } from "./packet.ts";
import { type BfdParams, BfdSession, type BfdStateChange } from "./session.ts";
import { type BfdSender, type BfdTransport, unmapped } from "./transport.ts";

/** What a session is for: the peer, our address, the kind, the timers. */
export interface BfdPeerSpec extends BfdParams {
  peer: string;
  /** Our source address; null: chosen by the kernel's route to the peer. */
  local: string | null;
  multihop: boolean;
}

/** One session as `show bfd` sees it. */
export interface BfdSessionInfo {
  peer: string;
  local: string | null;
  multihop: boolean;
  state: string;
  remoteState: string;
  /** Our diagnostic (text). */
  diag: string;
  remoteDiag: string;
  localDiscriminator: number;
  remoteDiscriminator: number;
  /** Configured (ms). */
  minTx: number;
  minRx: number;
  multiplier: number;
  remoteMultiplier: number;
  /** Negotiated transmit interval, before jitter (ms). */
  txInterval: number;
  /** Negotiated receive interval (ms). */
  rxInterval: number;
  /** Detection time (ms); 0 until the peer was heard. */
  detectionTime: number;
  /** Longest gap between our periodic packets since the session came Up (ms; over txInterval: our timers ran late). */
  maxTxGap: number;
  /** Seconds in the current state. */
  uptimeSeconds: number;
  lastDown: string | null;
  /** Last transmit error, while it lasts. */
  error: string | null;
  polling: boolean;
  packets: { sent: number; received: number };
}

export interface BfdManagerOptions {
  transport: BfdTransport;
  clock?: Clock;
  log: (level: "debug" | "info" | "warn" | "error", msg: string) => void;
  random?: () => number;
  /** Retry delay after a socket could not be opened, ms (default 5000). */
  retryMs?: number;
}

/** Bytes of an address for comparison (any spelling, v4-mapped unmapped); null when not an address. */
function addrKey(a: string): string | null {
  const p = parseAddr(unmapped(a.replace(/%.*$/, "")));
  return p ? `${p.afi}:${p.addr.join(".")}` : null;
}

interface Entry {
  key: string;
  spec: BfdPeerSpec;
  addr: string | null;
  session: BfdSession;
  sender: BfdSender | null;
  error: string | null;
  retry: TimerHandle | null;
  /** Set while being removed (AdminDown, closing). */
  closing: TimerHandle | null;
  listeners: ((c: BfdStateChange) => void)[];
}

export class BfdManager {
  private readonly entries = new Map<string, Entry>();
  private readonly byDisc = new Map<number, Entry>();
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly retryMs: number;
  /** Packets dropped before reaching a session, by reason (a counter, and one debug line each). */
  readonly dropped = new Map<string, number>();

  constructor(private readonly o: BfdManagerOptions) {
    this.clock = o.clock ?? realClock;
    this.random = o.random ?? Math.random;
    this.retryMs = o.retryMs ?? 5000;
    o.transport.onPacket = (data, from, multihop) => this.receive(data, from, multihop);
    o.transport.onError = (msg) => {
      this.dropped.set("error", (this.dropped.get("error") ?? 0) + 1);
      this.o.log("warn", `BFD: ${msg}`);
    };
  }

  has(key: string): boolean {
    const e = this.entries.get(key);
    return !!e && !e.closing;
  }

  spec(key: string): BfdPeerSpec | undefined {
    const e = this.entries.get(key);
    return e && !e.closing ? e.spec : undefined;
  }

  /** Start a session for `key`; `onChange` hears its state changes. Replaces a session being removed under the same key. */
  add(key: string, spec: BfdPeerSpec, onChange: (c: BfdStateChange) => void): void {
    const old = this.entries.get(key);
    if (old && !old.closing) throw new Error(`internal: BFD session ${key} added twice`);
    if (old) this.dispose(old);
    const disc = this.newDiscriminator();
    const e: Entry = { key, spec: { ...spec }, addr: addrKey(spec.peer), session: null as unknown as BfdSession, sender: null, error: null, retry: null, closing: null, listeners: [onChange] };
    e.session = new BfdSession({
      ...spec,
      localDisc: disc,
      clock: this.clock,
      random: this.random,
      send: (p) => this.transmit(e, p),
    });
    e.session.onStateChange = (c) => this.stateChanged(e, c);
    this.entries.set(key, e);
    this.byDisc.set(disc, e);
    void this.open(e);
  }

  /**
   * Apply a changed spec: new timers by a Poll Sequence (no reset); a new
   * local address, kind (single hop / multihop) or peer address is a new
   * session (a session keeps its source address and port, RFC 5881 §4).
   */
  update(key: string, spec: BfdPeerSpec): void {
    const e = this.entries.get(key);
    if (!e || e.closing) throw new Error(`internal: no BFD session ${key} to update`);
    const was = e.spec;
    if (was.peer !== spec.peer || was.multihop !== spec.multihop || was.local !== spec.local) {
      const listeners = e.listeners;
      this.remove(key);
      this.add(key, spec, listeners[0]!);
      return;
    }
    e.spec = { ...spec };
    if (was.minTx !== spec.minTx || was.minRx !== spec.minRx || was.multiplier !== spec.multiplier) {
      this.o.log("info", `BFD ${spec.peer}: timers now tx ${spec.minTx} ms, rx ${spec.minRx} ms, multiplier ${spec.multiplier}${e.session.state === BfdState.Up ? " (poll sequence)" : ""}`);
      e.session.setParams(spec);
    }
  }

  /** Take a session down administratively and close it shortly after (the peer hears AdminDown). */
  remove(key: string): void {
    const e = this.entries.get(key);
    if (!e || e.closing) return;
    const wait = Math.min(2000, 2 * e.session.txInterval);
    e.closing = this.clock.setTimeout(() => this.dispose(e), wait);
    e.session.adminDown();
  }

  /** Every session, for `show bfd`. */
  info(): BfdSessionInfo[] {
    const now = this.clock.now();
    return [...this.entries.values()].map((e) => {
      const s = e.session;
      return {
        peer: e.spec.peer,
        local: e.spec.local,
        multihop: e.spec.multihop,
        state: s.stateName,
        remoteState: s.remoteStateName,
        diag: diagText(s.localDiag),
        remoteDiag: diagText(s.remoteDiag),
        localDiscriminator: s.localDisc,
        remoteDiscriminator: s.remoteDisc,
        minTx: e.spec.minTx,
        minRx: e.spec.minRx,
        multiplier: e.spec.multiplier,
        remoteMultiplier: s.remoteMult,
        txInterval: Math.round(s.txInterval),
        rxInterval: Math.round(s.rxInterval),
        detectionTime: Math.round(s.detectionTime),
        maxTxGap: Math.round(s.maxTxGap),
        uptimeSeconds: Math.floor((now - s.since) / 1000),
        lastDown: s.lastDown,
        error: e.error,
        polling: s.polling,
        packets: { sent: s.counters.tx, received: s.counters.rx },
      };
    });
  }

  /** The state of the session for `key` ("Up", ...), or null. */
  state(key: string): string | null {
    return this.entries.get(key)?.session.stateName ?? null;
  }

  /** AdminDown to every peer (one packet each), then close all sockets. */
  close(): void {
    for (const e of [...this.entries.values()]) {
      e.session.adminDown();
      this.dispose(e);
    }
    this.o.transport.close();
  }

  // ------------------------------------------------------------ internals

  private newDiscriminator(): number {
    for (;;) {
      const d = (1 + Math.floor(this.random() * 0xfffffffe)) >>> 0;
      if (d !== 0 && !this.byDisc.has(d)) return d;
    }
  }

  private async open(e: Entry): Promise<void> {
    if (e.retry) this.clock.clearTimeout(e.retry);
    e.retry = null;
    const spec = e.spec;
    try {
      await this.o.transport.listen(spec.multihop);
      const s = await this.o.transport.sender(spec.peer, spec.local, spec.multihop);
      if (this.entries.get(e.key) !== e || e.closing) {
        s.close();
        return;
      }
      e.sender = s;
      e.error = null;
      this.o.log("debug", `BFD ${spec.peer}: sending from ${s.local} port ${s.port}${spec.multihop ? " (multihop)" : ""}`);
      if (e.session.counters.tx === 0) e.session.start();
    } catch (err) {
      if (this.entries.get(e.key) !== e || e.closing) return;
      const msg = (err as Error).message;
      if (e.error !== msg) this.o.log("warn", `BFD ${spec.peer}: ${msg}; retrying every ${this.retryMs / 1000} s`);
      e.error = msg;
      e.retry = this.clock.setTimeout(() => void this.open(e), this.retryMs);
    }
  }

  private transmit(e: Entry, packet: Uint8Array): void {
    if (!e.sender) return;
    const err = e.sender.send(packet);
    if (err && e.error !== err) this.o.log("warn", `BFD ${e.spec.peer}: send failed: ${err}`);
    e.error = err;
  }

  private dispose(e: Entry): void {
    if (e.closing) this.clock.clearTimeout(e.closing);
    if (e.retry) this.clock.clearTimeout(e.retry);
    e.session.close();
    e.sender?.close();
    e.sender = null;
    if (this.entries.get(e.key) === e) this.entries.delete(e.key);
    if (this.byDisc.get(e.session.localDisc) === e) this.byDisc.delete(e.session.localDisc);
  }

  private stateChanged(e: Entry, c: BfdStateChange): void {
    const why = c.cause ? ` (${c.cause}, ${diagText(c.diag)})` : "";
    this.o.log(c.to === "Up" || c.from === "Up" ? "info" : "debug", `BFD ${e.spec.peer}: ${c.from} -> ${c.to}${why}`);
    if (e.closing) return;
    for (const fn of e.listeners) {
      try {
        fn(c);
      } catch (err) {
        this.o.log("error", `BFD ${e.spec.peer}: a state listener failed: ${(err as Error).stack ?? err}`);
      }
    }
  }

  private drop(reason: string, from: string): void {
    this.dropped.set(reason, (this.dropped.get(reason) ?? 0) + 1);
    this.o.log("debug", `BFD: packet from ${from} dropped: ${reason}`);
  }

  /** Demultiplex and hand one received datagram to its session. */
  private receive(data: Uint8Array, from: string, multihop: boolean): void {
    let p;
    try {
      p = decodeControl(data);
    } catch (err) {
      if (err instanceof BfdPacketError) return this.drop(err.reason, from);
      throw err;
    }
    let e: Entry | undefined;
    const src = addrKey(from);
    if (p.yourDisc !== 0) {
      e = this.byDisc.get(p.yourDisc);
      if (!e) return this.drop(`no session with discriminator ${p.yourDisc}`, from);
      if (e.spec.multihop !== multihop) return this.drop(`discriminator ${p.yourDisc} is a ${e.spec.multihop ? "multihop" : "single-hop"} session`, from);
    } else {
      for (const x of this.entries.values()) {
        if (x.addr === src && x.spec.multihop === multihop) {
          e = x;
          break;
        }
      }
      if (!e) return this.drop("no session for this source address", from);
    }
    e.session.receive(p);
  }
}
