/**
 * TTL handling for UDP sockets the runtime created (Bun.udpSocket exposes
 * its fd), for BFD (RFC 5881 §5: sent with TTL 255, received only with 255):
 *
 * - sending with TTL 255: ffi/ttl.ts `setTtlOptions`, as for TCP.
 * - `attachMinTtlFilter`: a classic BPF socket filter that drops datagrams
 *   whose IPv4 TTL / IPv6 hop limit is below a minimum, before they are
 *   queued on the socket. IP_MINTTL / IPV6_MINHOPCOUNT would be simpler but
 *   Linux enforces them for TCP only (checked on kernel 6.18: a UDP socket
 *   with IP_MINTTL 255 still receives TTL 64 datagrams), and the runtime's
 *   UDP sockets hand over no control messages (no IP_RECVTTL). The filter
 *   reads the network header (SKF_NET_OFF), so one filter serves a
 *   dual-stack socket: IPv4 (also as v4-mapped) and IPv6 datagrams alike.
 */
import { ptr } from "bun:ffi";
import * as libc from "./libc.ts";

const SO_ATTACH_FILTER = 26;
/** Offset base of the network header in classic BPF loads (SKF_NET_OFF = -0x100000). */
const SKF_NET_OFF = 0xfff00000;

/** The filter program: accept (whole datagram) when TTL/hop limit ≥ min, else drop; non-IP: drop. */
function minTtlProgram(min: number): Uint8Array {
  // [code, jt, jf, k]; BPF_LD|B|ABS 0x30, ALU AND K 0x54, JEQ K 0x15, JA 0x05, JGE K 0x35, RET K 0x06.
  const ins: [number, number, number, number][] = [
    [0x30, 0, 0, SKF_NET_OFF], // A = first byte of the IP header
    [0x54, 0, 0, 0xf0], // A &= 0xf0 (version nibble)
    [0x15, 0, 2, 0x40], // IPv4? else to 5
    [0x30, 0, 0, SKF_NET_OFF + 8], // A = IPv4 TTL
    [0x05, 0, 0, 2], // to 7
    [0x15, 0, 3, 0x60], // IPv6? else to 9 (drop)
    [0x30, 0, 0, SKF_NET_OFF + 7], // A = IPv6 hop limit
    [0x35, 0, 1, min], // A >= min? accept : drop
    [0x06, 0, 0, 0x40000], // accept
    [0x06, 0, 0, 0], // drop
  ];
  const code = new Uint8Array(ins.length * 8);
  const v = new DataView(code.buffer);
  ins.forEach(([c, jt, jf, k], i) => {
    v.setUint16(i * 8, c, true);
    v.setUint8(i * 8 + 2, jt);
    v.setUint8(i * 8 + 3, jf);
    v.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return code;
}

/** Drop received datagrams with a TTL / hop limit below `min` (1..255) on this socket; throws SysError. */
export function attachMinTtlFilter(fd: number, min: number): void {
  if (!Number.isInteger(min) || min < 1 || min > 255) throw new RangeError(`minimum TTL ${min}: expected 1..255`);
  const code = minTtlProgram(min);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (64-bit: pointer at offset 8).
  const fprog = new Uint8Array(16);
  const v = new DataView(fprog.buffer);
  v.setUint16(0, code.byteLength / 8, true);
  v.setBigUint64(8, BigInt(ptr(code)), true);
  libc.setsockoptBytes(fd, libc.SOL_SOCKET, SO_ATTACH_FILTER, fprog);
}
