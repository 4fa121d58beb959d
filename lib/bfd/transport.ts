/**
 * BFD over UDP (RFC 5881 single hop, RFC 5883 multihop), on the runtime's
 * event loop (Bun.udpSocket; the TTL options go through ffi/udp-ttl.ts).
 *
 * - Receiving: one dual-stack socket per port, [::]:3784 for single hop and
 *   [::]:4784 for multihop (0.0.0.0 when IPv6 is unavailable), opened on
 *   first use. Single hop: datagrams with a TTL / hop limit other than 255
 *   are dropped by a socket filter in the kernel (RFC 5881 §5; the runtime
 *   gives no per-datagram TTL). Multihop: every TTL is accepted — bgpctl has
 *   no per-peer minimum TTL setting for BFD, and RFC 5883 §5 leaves the
 *   check to configuration; discriminators select the session.
 * - Sending: one socket per session, bound to the session's local address
 *   (or any, the kernel then picks the source by route) and a source port
 *   in 49152–65535 unique among our sessions (RFC 5881 §4), TTL 255.
 *
 * The interface (`BfdTransport`) is what lib/bfd/manager.ts needs; unit
 * tests use an in-memory one.
 */
import type { udp } from "bun";
import { setTtlOptions } from "../../ffi/ttl.ts";
import { attachMinTtlFilter } from "../../ffi/udp-ttl.ts";

export const SINGLE_HOP_PORT = 3784;
export const MULTIHOP_PORT = 4784;
const SRC_PORT_MIN = 49152;
const SRC_PORT_MAX = 65535;

/** Sends to one peer. */
export interface BfdSender {
  /** Our bound address ("0.0.0.0"/"::" when any). */
  readonly local: string;
  readonly port: number;
  /**
   * Send one datagram; an error text when the kernel refused it or reported
   * an error on the socket since the last send (ECONNREFUSED: an ICMP port
   * unreachable, the peer runs no BFD), else null.
   */
  send(packet: Uint8Array): string | null;
  close(): void;
}

export interface BfdTransport {
  /** Received datagrams: bytes, source address (v4-mapped addresses unmapped), and which port they came to. */
  onPacket: (data: Uint8Array, from: string, multihop: boolean) => void;
  /** A receiving socket reported an error (the socket stays open). */
  onError: (msg: string) => void;
  /** Make sure the receiving socket of this kind is open. */
  listen(multihop: boolean): Promise<void>;
  /** A sending socket towards `peer`, from `local` (null: any). */
  sender(peer: string, local: string | null, multihop: boolean): Promise<BfdSender>;
  close(): void;
}

export interface UdpTransportOptions {
  /** Receiving ports (tests use unprivileged, unused ones). */
  singleHopPort?: number;
  multihopPort?: number;
  /** Port packets are sent to (default: the standard port of the kind); two ends on one host use crossed ports. */
  remotePort?: number;
  /** Address the receiving sockets bind (default "::", falling back to "0.0.0.0"). */
  listenAddress?: string;
}

type UdpSocket = udp.Socket<"uint8array">;

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The socket's fd (Bun.udpSocket has it at run time; its type declarations do not list it). */
function fdOf(s: UdpSocket): number {
  const fd = (s as unknown as { fd?: unknown }).fd;
  if (typeof fd !== "number") throw new Error("the runtime's UDP socket exposes no fd (needed for the TTL options)");
  return fd;
}

/** The error text among a socket error callback's arguments (the runtime passes the error, declared second). */
function errorOf(args: unknown[]): string {
  const e = args.find((a) => a instanceof Error);
  return e ? (e as Error).message : "unknown socket error";
}

/** "::ffff:192.0.2.1" → "192.0.2.1". */
export function unmapped(a: string): string {
  return a.toLowerCase().startsWith("::ffff:") && a.includes(".") ? a.slice(7) : a;
}

export class UdpTransport implements BfdTransport {
  onPacket: BfdTransport["onPacket"] = () => {};
  onError: BfdTransport["onError"] = () => {};
  private readonly receivers = new Map<boolean, Promise<UdpSocket>>();
  private readonly senders = new Set<UdpSocket>();
  private readonly usedPorts = new Set<number>();
  private closed = false;

  constructor(private readonly opts: UdpTransportOptions = {}) {}

  listen(multihop: boolean): Promise<void> {
    let r = this.receivers.get(multihop);
    if (!r) {
      r = this.openReceiver(multihop);
      this.receivers.set(multihop, r);
      // A failed open is retried by the next call.
      r.catch(() => this.receivers.delete(multihop));
    }
    return r.then(() => undefined);
  }

  private async openReceiver(multihop: boolean): Promise<UdpSocket> {
    const port = multihop ? (this.opts.multihopPort ?? MULTIHOP_PORT) : (this.opts.singleHopPort ?? SINGLE_HOP_PORT);
    const addrs = this.opts.listenAddress ? [this.opts.listenAddress] : ["::", "0.0.0.0"];
    let last: unknown;
    for (const hostname of addrs) {
      let s: UdpSocket;
      try {
        s = await Bun.udpSocket({
          hostname,
          port,
          binaryType: "uint8array",
          socket: {
            data: (_s, data, _port, from) => {
              try {
                this.onPacket(data, unmapped(from), multihop);
              } catch (e) {
                // A bug in handling one packet must not take the daemon down (this runs outside any other handler).
                this.onError(`handling a packet from ${from}: ${(e as Error).stack ?? e}`);
              }
            },
            error: (...args: unknown[]) => this.onError(`UDP port ${port}: ${errorOf(args)}`),
          },
        });
      } catch (e) {
        last = e;
        continue;
      }
      try {
        // Single hop: only TTL 255 (RFC 5881 §5), dropped in the kernel.
        if (!multihop) attachMinTtlFilter(fdOf(s), 255);
      } catch (e) {
        s.close();
        throw new Error(`BFD: cannot filter TTL on UDP [${hostname}]:${port}: ${errText(e)}`);
      }
      if (this.closed) {
        s.close();
        throw new Error("BFD transport closed");
      }
      return s;
    }
    throw new Error(`BFD: cannot listen on UDP port ${port}: ${errText(last)}`);
  }

  async sender(peer: string, local: string | null, multihop: boolean): Promise<BfdSender> {
    const v6 = peer.includes(":");
    const hostname = local ?? (v6 ? "::" : "0.0.0.0");
    const pick = () => SRC_PORT_MIN + Math.floor(Math.random() * (SRC_PORT_MAX - SRC_PORT_MIN + 1));
    let last: unknown;
    for (let i = 0; i < 32; i++) {
      const port = pick();
      if (this.usedPorts.has(port)) continue;
      let s: UdpSocket;
      let pending: string | null = null;
      try {
        // Errors (an ICMP port unreachable comes back as ECONNREFUSED on the next receive) are reported by the next send.
        s = await Bun.udpSocket({ hostname, port, binaryType: "uint8array", socket: { error: (...args: unknown[]) => void (pending = errorOf(args)) } });
      } catch (e) {
        last = e;
        continue;
      }
      try {
        setTtlOptions(fdOf(s), v6 ? 6 : 4, { ttl: 255 });
      } catch (e) {
        s.close();
        throw new Error(`BFD: cannot set TTL 255 on the socket to ${peer}: ${errText(e)}`);
      }
      this.senders.add(s);
      this.usedPorts.add(port);
      const dstPort = this.opts.remotePort ?? (multihop ? (this.opts.multihopPort ?? MULTIHOP_PORT) : (this.opts.singleHopPort ?? SINGLE_HOP_PORT));
      return {
        local: hostname,
        port,
        send: (packet) => {
          const reported = pending;
          pending = null;
          try {
            return s.send(packet, dstPort, peer) ? reported : "send buffer full";
          } catch (e) {
            return errText(e);
          }
        },
        close: () => {
          if (!this.senders.delete(s)) return;
          this.usedPorts.delete(port);
          s.close();
        },
      };
    }
    throw new Error(`BFD: cannot bind a source port for ${peer} on ${hostname}: ${last ? errText(last) : "no free port found"}`);
  }

  close(): void {
    this.closed = true;
    for (const s of this.senders) s.close();
    this.senders.clear();
    this.usedPorts.clear();
    for (const r of this.receivers.values()) r.then((s) => s.close(), () => {});
    this.receivers.clear();
  }
}
