/**
 * BFD for the daemon's BGP neighbours (lib/bfd does the protocol): one BFD
 * session per neighbour with `bfd.enabled` that is not administratively
 * down, kept in line with the running neighbours by `sync()` (the router
 * calls it after start, reload, apply, peer add/delete/up/down).
 *
 * - Local address: the peer's `localAddress`, else the address of the BGP
 *   session if it is established when the BFD session starts, else none:
 *   the kernel picks the source by its route to the peer. A session keeps
 *   its address (and source port, RFC 5881 §4) for its life; a new
 *   `localAddress` is a new session.
 * - Kind: `bfd.multihop`, else the peer's `multihop` (set: RFC 5883 on 4784).
 * - Timers changed by a reload go to the running session (a Poll Sequence);
 *   nothing of BGP is reset. A change of kind starts a new BFD session.
 * - BFD Up → Down brings the BGP session down at once (as BIRD: BGP does not
 *   wait for BFD to come up): Cease/BFD Down (RFC 9384), or with
 *   `bfd.graceful` the TCP connection is closed without a NOTIFICATION, so
 *   graceful restart keeps the peer's routes as stale. A Down caused by the
 *   peer's AdminDown does not (RFC 5882 §3.2: the peer took BFD away, not
 *   the path).
 */
import type { BfdInfo } from "../api/types.ts";
import { BfdManager, type BfdPeerSpec, type BfdTransport, UdpTransport } from "../bfd/mod.ts";
import type { BfdStateChange } from "../bfd/session.ts";
import type { Clock } from "../core/clock.ts";
import type { RouteEngine } from "./engine.ts";
import type { Neighbor } from "./neighbor.ts";

export interface BfdGlueOptions {
  /** Default: UDP on the standard ports. */
  transport?: BfdTransport;
  clock?: Clock;
}

export class BfdGlue {
  private manager: BfdManager | null = null;
  private readonly opts: BfdGlueOptions;
  private stopped = false;

  constructor(
    private readonly engine: RouteEngine,
    opts: BfdGlueOptions = {},
  ) {
    this.opts = opts;
  }

  /** The manager, made on first need (no socket is opened while no peer has BFD). */
  private get bfd(): BfdManager {
    if (!this.manager) {
      this.manager = new BfdManager({
        transport: this.opts.transport ?? new UdpTransport(),
        clock: this.opts.clock ?? this.engine.clock,
        log: (level, msg) => this.engine.log.at(level, msg),
      });
    }
    return this.manager;
  }

  /** Bring the BFD sessions in line with the running neighbours. */
  sync(): void {
    if (this.stopped) return;
    const want = new Map<string, BfdPeerSpec>();
    for (const n of this.engine.peers.values()) {
      const b = n.config.bfd;
      if (!b?.enabled || n.adminDown) continue;
      want.set(n.config.address, this.specOf(n));
    }
    const m = this.manager;
    if (!m && want.size === 0) return;
    const bfd = this.bfd;
    for (const s of bfd.info()) if (!want.has(s.peer) && bfd.has(s.peer)) bfd.remove(s.peer);
    for (const [key, spec] of want) {
      const cur = bfd.spec(key);
      if (!cur) bfd.add(key, spec, (c) => this.changed(key, c));
      else if (cur.local !== spec.local || cur.multihop !== spec.multihop || cur.minTx !== spec.minTx || cur.minRx !== spec.minRx || cur.multiplier !== spec.multiplier) bfd.update(key, spec);
    }
  }

  private specOf(n: Neighbor): BfdPeerSpec {
    const c = n.config;
    const b = c.bfd;
    const cur = this.manager?.spec(c.address);
    return {
      peer: c.address,
      local: c.localAddress ?? (cur ? cur.local : localOf(n)),
      multihop: b.multihop ?? c.multihop !== false,
      minTx: b.minTx,
      minRx: b.minRx,
      multiplier: b.multiplier,
    };
  }

  private changed(key: string, c: BfdStateChange): void {
    if (c.from !== "Up" || c.to !== "Down" || c.cause === "peer-admin-down") return;
    const n = this.engine.peers.get(key);
    if (!n || n.adminDown) return;
    const graceful = n.config.bfd.graceful;
    this.engine.log.warn(
      `${n.name}: BFD went down (${c.cause}): ${graceful ? "closing the BGP connection without a NOTIFICATION (bfd.graceful)" : "closing the BGP session (Cease/BFD Down)"}`,
    );
    n.bfdDown(graceful);
  }

  /** The BFD state of a neighbour ("Up", "Down", ...), or null when it has no BFD session. */
  state(address: string): string | null {
    return this.manager?.has(address) ? this.manager.state(address) : null;
  }

  /** Every BFD session, for `show bfd`. */
  info(): BfdInfo[] {
    if (!this.manager) return [];
    return this.manager.info().map((s) => {
      const n = this.engine.peers.get(s.peer);
      // With no address of its own (sent from the kernel's choice), show the BGP session's.
      return { ...s, local: s.local ?? (n ? localOf(n) : null), bgpState: n?.session.state ?? "-", graceful: n?.config.bfd.graceful ?? false };
    });
  }

  /** AdminDown to every BFD peer, sockets closed. */
  stop(): void {
    this.stopped = true;
    this.manager?.close();
    this.manager = null;
  }
}

/** The local address of a neighbour's BGP session (v4-mapped unmapped), or null when it has no connection. */
function localOf(n: Neighbor): string | null {
  return n.session.localAddress?.replace(/^::ffff:/, "") ?? null;
}
