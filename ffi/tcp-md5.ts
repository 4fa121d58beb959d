/**
 * TCP-MD5 signatures (RFC 2385) for BGP sessions: `TCP_MD5SIG` keys on TCP
 * sockets, and the socket addresses they (and tcp-socket.ts, which creates
 * the sockets: the key has to be on a socket before `connect` or `listen`)
 * are built from.
 *
 * - `encodeTcpMd5sig` builds `struct tcp_md5sig` (216 bytes: a 128-byte
 *   sockaddr_storage with the peer address, u8 flags, u8 prefixlen, u16
 *   keylen, i32 ifindex, key[80]); keylen 0 deletes the key. On an IPv6
 *   socket an IPv4 peer must be given in IPv4-mapped form (::ffff:a.b.c.d,
 *   AF_INET6): that is what the kernel matches IPv4 connections to a
 *   dual-stack socket against (an AF_INET address there is EINVAL).
 * - `setTcpMd5Key`/`removeTcpMd5Key` add, replace and delete the key of one
 *   peer on a socket (a listening one at any time: accepted connections
 *   inherit the keys the listener had when they arrived).
 * - `parseSocketAddress`/`encodeSockaddr` turn IP literals (with an IPv6
 *   %zone) into sockaddr_in / sockaddr_in6.
 *
 * Nothing here blocks. Invalid input (an address that is not an IP literal,
 * an empty password or one longer than 80 bytes) throws `TcpMd5Error`;
 * failing system calls throw `SysError` (libc.ts).
 */
import { parseIPv4, parseIPv6 } from "../lib/core/addr.ts";
import * as libc from "./libc.ts";

export const TCP_MD5SIG = 14;
export const TCP_MD5SIG_MAXKEYLEN = 80;
export const TCP_MD5SIG_SIZE = 216;
/** Offsets in struct tcp_md5sig. */
export const MD5SIG_OFF = { addr: 0, flags: 128, prefixlen: 129, keylen: 130, ifindex: 132, key: 136 } as const;

export const SOCKADDR_IN_SIZE = 16;
export const SOCKADDR_IN6_SIZE = 28;

/** The address family of a socket: 4 (AF_INET) or 6 (AF_INET6). */
export type SocketFamily = 4 | 6;

/** Invalid TCP-MD5 input (password, address); not a system call failure. */
export class TcpMd5Error extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = "TcpMd5Error";
  }
}

/** The problem with a TCP-MD5 password (empty, longer than 80 bytes of UTF-8), or null when it is usable. */
export function md5PasswordProblem(password: string): string | null {
  if (password.length === 0) return "TCP-MD5 password is empty";
  const n = Buffer.byteLength(password, "utf8");
  if (n > TCP_MD5SIG_MAXKEYLEN) return `TCP-MD5 password is ${n} bytes long; the kernel takes at most ${TCP_MD5SIG_MAXKEYLEN} (TCP_MD5SIG_MAXKEYLEN)`;
  return null;
}

/** The key bytes of a password (UTF-8); TcpMd5Error when it is empty or longer than 80 bytes. */
export function md5Key(password: string): Uint8Array {
  const p = md5PasswordProblem(password);
  if (p) throw new TcpMd5Error(p);
  return new Uint8Array(Buffer.from(password, "utf8"));
}

export interface SocketAddress {
  family: SocketFamily;
  /** 4 or 16 bytes. */
  bytes: Uint8Array;
  /** IPv6 scope (interface index) from a %zone suffix; 0 when none. */
  scopeId: number;
}

/** Parse an IP literal ("192.0.2.1", "2001:db8::1", "fe80::1%eth0"); TcpMd5Error when it is not one. */
export function parseSocketAddress(text: string): SocketAddress {
  const s = text.trim();
  if (!s.includes(":")) {
    const b = parseIPv4(s);
    if (!b) throw new TcpMd5Error(`"${text}" is not an IPv4 or IPv6 address`);
    return { family: 4, bytes: b, scopeId: 0 };
  }
  const b = parseIPv6(s);
  if (!b) throw new TcpMd5Error(`"${text}" is not an IPv4 or IPv6 address`);
  let scopeId = 0;
  const pct = s.indexOf("%");
  if (pct >= 0) {
    const zone = s.slice(pct + 1);
    scopeId = /^\d+$/.test(zone) ? Number(zone) : libc.ifNameToIndex(zone);
    if (!scopeId) throw new TcpMd5Error(`"${text}": no interface "${zone}"`);
  }
  return { family: 6, bytes: b, scopeId };
}

/** Whether 16 address bytes are an IPv4-mapped IPv6 address (::ffff:a.b.c.d). */
export function isV4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16 || b[10] !== 0xff || b[11] !== 0xff) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return true;
}

/**
 * sockaddr_in (16 bytes) or sockaddr_in6 (28 bytes) of `addr` for a socket of
 * `socketFamily` (default: the address's own): an IPv4 address on an IPv6
 * socket becomes IPv4-mapped; an IPv6 address (other than an IPv4-mapped one)
 * on an IPv4 socket is a TcpMd5Error.
 */
export function encodeSockaddr(addr: SocketAddress | string, port: number, socketFamily?: SocketFamily): Uint8Array {
  const a = typeof addr === "string" ? parseSocketAddress(addr) : addr;
  const fam = socketFamily ?? a.family;
  if (fam === 4) {
    let v4: Uint8Array;
    if (a.family === 4) v4 = a.bytes;
    else if (isV4Mapped(a.bytes)) v4 = a.bytes.subarray(12, 16);
    else throw new TcpMd5Error(`IPv6 address ${typeof addr === "string" ? addr : "given"} on an IPv4 socket`);
    const b = new Uint8Array(SOCKADDR_IN_SIZE);
    const v = new DataView(b.buffer);
    v.setUint16(0, libc.AF_INET, true);
    v.setUint16(2, port, false);
    b.set(v4, 4);
    return b;
  }
  const b = new Uint8Array(SOCKADDR_IN6_SIZE);
  const v = new DataView(b.buffer);
  v.setUint16(0, libc.AF_INET6, true);
  v.setUint16(2, port, false);
  // flowinfo (4..8) stays 0
  if (a.family === 4) {
    b[18] = 0xff;
    b[19] = 0xff;
    b.set(a.bytes, 20);
  } else {
    b.set(a.bytes, 8);
    v.setUint32(24, a.scopeId, true);
  }
  return b;
}

/** Whether a socket of `socketFamily` can carry a key for (and talk to) `peer`. */
export function familyFits(socketFamily: SocketFamily, peer: string): boolean {
  const a = parseSocketAddress(peer);
  return socketFamily === 6 || a.family === 4 || isV4Mapped(a.bytes);
}

/**
 * struct tcp_md5sig for `peer` on a socket of `socketFamily`, with the key of
 * `password`, or keylen 0 (delete the key) when `password` is null. Flags,
 * prefix length and ifindex stay 0 (they only count with TCP_MD5SIG_EXT).
 */
export function encodeTcpMd5sig(peer: string, password: string | null, socketFamily: SocketFamily): Uint8Array {
  const key = password === null ? new Uint8Array(0) : md5Key(password);
  const a = parseSocketAddress(peer);
  const out = new Uint8Array(TCP_MD5SIG_SIZE);
  const sa = encodeSockaddr({ ...a, scopeId: 0 }, 0, socketFamily);
  out.set(sa, MD5SIG_OFF.addr);
  new DataView(out.buffer).setUint16(MD5SIG_OFF.keylen, key.length, true);
  out.set(key, MD5SIG_OFF.key);
  return out;
}

/** Set (or replace) the TCP-MD5 key for `peer` on socket `fd`. Throws SysError/TcpMd5Error. */
export function setTcpMd5Key(fd: number, socketFamily: SocketFamily, peer: string, password: string): void {
  libc.setsockoptBytes(fd, libc.IPPROTO_TCP, TCP_MD5SIG, encodeTcpMd5sig(peer, password, socketFamily));
}

/** Remove the TCP-MD5 key for `peer` from socket `fd`: true when removed, false when there was none. */
export function removeTcpMd5Key(fd: number, socketFamily: SocketFamily, peer: string): boolean {
  const e = libc.trySetsockoptBytes(fd, libc.IPPROTO_TCP, TCP_MD5SIG, encodeTcpMd5sig(peer, null, socketFamily));
  if (e === 0) return true;
  if (e === libc.Errno.ENOENT) return false;
  throw new libc.SysError("setsockopt(TCP_MD5SIG)", e);
}
