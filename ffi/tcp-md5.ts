/**
 * TCP-MD5 signatures (RFC 2385) for BGP sessions: `TCP_MD5SIG` keys on TCP
 * sockets that bgpctl creates itself (through libc.ts), because the key has
 * to be on the socket before `connect` or `listen`, and node:net cannot
 * create a socket without connecting or listening it at once.
 *
 * - `encodeTcpMd5sig` builds `struct tcp_md5sig` (216 bytes: a 128-byte
 *   sockaddr_storage with the peer address, u8 flags, u8 prefixlen, u16
 *   keylen, i32 ifindex, key[80]); keylen 0 deletes the key. On an IPv6
 *   socket an IPv4 peer must be given in IPv4-mapped form (::ffff:a.b.c.d,
 *   AF_INET6): that is what the kernel matches IPv4 connections to a
 *   dual-stack socket against (an AF_INET address there is EINVAL).
 * - `connectTcpMd5` opens a non-blocking socket, binds the optional local
 *   address, sets the key, starts `connect` (EINPROGRESS) and hands the fd to
 *   the runtime with `net.connect({fd})`, which gives a real node:net Socket
 *   (data/close/error/drain events, write/end/destroy, setNoDelay,
 *   local/remoteAddress). Bun treats an fd as connected the moment it is
 *   handed over: it emits 'connect' synchronously inside `net.connect`,
 *   whether the handshake is done or not (checked with a peer that drops the
 *   SYNs). So the end of the handshake is watched here instead, with a zero-
 *   timeout `poll(POLLOUT)` and `SO_ERROR` on a close-on-exec duplicate of
 *   the fd (so a descriptor number the runtime closed and reused is never
 *   touched), on a short backing-off timer; `onConnected` runs when it
 *   completes, and a failure destroys the socket with a `SysError`
 *   ('error' then 'close', like any failed connect); data arriving first
 *   triggers the check at once, so `onConnected` always precedes the first
 *   'data' a later listener sees. Do not read `remoteAddress`/`remotePort`
 *   before `onConnected`: Bun caches the first answer, and before the
 *   handshake that is undefined for good. A peer that refuses answers with
 *   an unsigned RST, which the kernel drops on a keyed socket, so a refused
 *   connect looks like no answer at all (the caller's timer ends it).
 *   `Bun.connect({fd, socket})` was the other candidate: its `open` also
 *   fires at once, it reports a refused connect as a bare end/close with no
 *   error, and its socket is not a node:net Socket (handler callbacks
 *   instead of events, terminate() rather than destroy()), so the session
 *   code would need an adapter.
 * - `createTcpListenSocket` opens, SO_REUSEADDRs, binds and (after the keys
 *   are set) listens a socket for `net.createServer().listen({fd})`. Keys
 *   can be added and removed on the listening fd at any time with
 *   `setTcpMd5Key`/`removeTcpMd5Key`; accepted connections inherit the keys
 *   the listener had when they arrived.
 *
 * Nothing here blocks. Invalid input (an address that is not an IP literal,
 * an empty password or one longer than 80 bytes) throws `TcpMd5Error`;
 * failing system calls throw `SysError` (libc.ts).
 */
import * as net from "node:net";
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

function isV4Mapped(b: Uint8Array): boolean {
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

function openTcpSocket(family: SocketFamily): number {
  return libc.socket(family === 6 ? libc.AF_INET6 : libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0);
}

export interface TcpMd5ConnectOptions {
  host: string;
  port: number;
  /** Source address (port chosen by the kernel). */
  localAddress?: string;
  password: string;
  /** Called (never synchronously) when the TCP handshake has completed. */
  onConnected: () => void;
}

/**
 * Connect to `host`:`port` with the TCP-MD5 key `password`. Returns the
 * node:net Socket at once (before the handshake completes: wait for
 * `onConnected`, not for 'connect', which Bun emits at hand-over). A failed
 * handshake destroys the socket with a SysError ('error', then 'close').
 * Throws (TcpMd5Error, SysError) only for what fails before the hand-over:
 * a bad address or password, socket/bind/setsockopt errors, or connect
 * failing at once (ENETUNREACH, ...).
 */
export function connectTcpMd5(o: TcpMd5ConnectOptions): net.Socket {
  const peer = parseSocketAddress(o.host);
  const local = o.localAddress !== undefined ? parseSocketAddress(o.localAddress) : null;
  if (local && local.family !== peer.family) throw new TcpMd5Error(`local address ${o.localAddress} and peer ${o.host} are of different address families`);
  const key = encodeTcpMd5sig(o.host, o.password, peer.family);
  const fd = openTcpSocket(peer.family);
  let watch = -1;
  try {
    if (local) libc.bind(fd, encodeSockaddr(local, 0, peer.family));
    libc.setsockoptBytes(fd, libc.IPPROTO_TCP, TCP_MD5SIG, key);
    const e = libc.tryConnect(fd, encodeSockaddr(peer, o.port, peer.family));
    if (e !== 0 && e !== libc.Errno.EINPROGRESS) throw new libc.SysError("connect", e);
    watch = libc.dupCloexec(fd);
  } catch (e) {
    libc.close(fd);
    if (watch >= 0) libc.close(watch);
    throw e;
  }
  // From here the runtime owns `fd` (and closes it); `watch` is ours.
  const socket = net.connect({ fd } as unknown as net.NetConnectOpts);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let delay = 1;
  const finish = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (watch >= 0) libc.close(watch);
    watch = -1;
  };
  socket.once("close", finish);
  // Data can arrive before the timer looks (the peer's OPEN right after the
  // handshake): that proves the handshake, so report it before anyone sees the data.
  socket.prependListener("data", () => {
    if (watch >= 0) check();
  });
  const check = () => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    if (watch < 0) return;
    if (socket.destroyed) return finish();
    let failure: Error | null = null;
    let done = false;
    try {
      const rev = libc.pollNow(watch, libc.POLLOUT);
      if (rev & (libc.POLLOUT | libc.POLLERR | libc.POLLHUP | libc.POLLNVAL)) {
        done = true;
        const soErr = libc.getsockoptInt(watch, libc.SOL_SOCKET, libc.SO_ERROR);
        if (soErr !== 0) failure = new libc.SysError("connect", soErr);
        else if (!(rev & libc.POLLOUT)) failure = new libc.SysError("connect", libc.Errno.ENOTCONN);
      }
    } catch (e) {
      done = true;
      failure = e instanceof Error ? e : new Error(String(e));
    }
    if (!done) {
      delay = Math.min(delay * 2, 100);
      timer = setTimeout(check, delay);
      return;
    }
    finish();
    if (failure) {
      socket.destroy(failure);
      return;
    }
    try {
      o.onConnected();
    } catch (e) {
      socket.destroy(e instanceof Error ? e : new Error(String(e)));
    }
  };
  timer = setTimeout(check, 0);
  return socket;
}

export interface TcpListenSocket {
  fd: number;
  family: SocketFamily;
  /** Keys that could not be set (the socket listens anyway). */
  keyErrors: { peer: string; error: string }[];
}

/**
 * A listening TCP socket on `address`:`port` (port 0: the kernel picks one)
 * for `net.createServer().listen({fd})`: SO_REUSEADDR, bound, with the
 * TCP-MD5 keys of `keys` (peer address → password; peers of the other
 * family on an IPv4 socket are skipped) set before `listen`. An IPv6
 * wildcard socket stays dual-stack (the system default), its IPv4 peers
 * keyed in IPv4-mapped form. Throws SysError (bind: EADDRINUSE, ...) or
 * TcpMd5Error (address not an IP literal), after closing the socket.
 */
export function createTcpListenSocket(address: string, port: number, keys: Iterable<[string, string]> = [], backlog = 511): TcpListenSocket {
  const a = parseSocketAddress(address);
  const fd = openTcpSocket(a.family);
  const keyErrors: { peer: string; error: string }[] = [];
  try {
    libc.setsockoptInt(fd, libc.SOL_SOCKET, libc.SO_REUSEADDR, 1);
    libc.bind(fd, encodeSockaddr(a, port, a.family));
    for (const [peer, password] of keys) {
      try {
        if (!familyFits(a.family, peer)) continue;
        setTcpMd5Key(fd, a.family, peer, password);
      } catch (e) {
        keyErrors.push({ peer, error: e instanceof Error ? e.message : String(e) });
      }
    }
    libc.listen(fd, backlog);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return { fd, family: a.family, keyErrors };
}
