/**
 * TCP sockets that bgpctl creates itself (through libc.ts) because some of
 * their options must be in place before the first packet: a TCP-MD5 key
 * (RFC 2385, tcp-md5.ts) before `connect` or `listen`, and the TTL and
 * minimum TTL (ttl.ts: eBGP TTL 1, multihop, GTSM) before the SYN — a peer
 * two hops away never sees a SYN sent with TTL 1, and a GTSM peer drops a
 * SYN-ACK below its minimum TTL. node:net cannot create a socket without
 * connecting or listening it at once.
 *
 * - `connectTcp` opens a non-blocking socket, binds the optional local
 *   address, sets the key and the TTL options, starts `connect`
 *   (EINPROGRESS) and hands the fd to the runtime with `net.connect({fd})`,
 *   which gives a real node:net Socket (data/close/error/drain events,
 *   write/end/destroy, setNoDelay, local/remoteAddress). Bun treats an fd as
 *   connected the moment it is handed over: it emits 'connect' synchronously
 *   inside `net.connect`, whether the handshake is done or not (checked with
 *   a peer that drops the SYNs). So the end of the handshake is watched here
 *   instead, with a zero-timeout `poll(POLLOUT)` and `SO_ERROR` on a
 *   close-on-exec duplicate of the fd (so a descriptor number the runtime
 *   closed and reused is never touched), on a short backing-off timer;
 *   `onConnected` runs when it completes, and a failure destroys the socket
 *   with a `SysError` ('error' then 'close', like any failed connect); data
 *   arriving first triggers the check at once, so `onConnected` always
 *   precedes the first 'data' a later listener sees. Do not read
 *   `remoteAddress`/`remotePort` before `onConnected`: Bun caches the first
 *   answer, and before the handshake that is undefined for good. With a
 *   key, a peer that refuses answers with an unsigned RST, which the kernel
 *   drops on a keyed socket, so a refused connect looks like no answer at all
 *   (the caller's timer ends it). `Bun.connect({fd, socket})` was the other
 *   candidate: its `open` also fires at once, it reports a refused connect
 *   as a bare end/close with no error, and its socket is not a node:net
 *   Socket (handler callbacks instead of events, terminate() rather than
 *   destroy()), so the session code would need an adapter.
 * - `createTcpListenSocket` opens, SO_REUSEADDRs, binds and (after the keys
 *   and TTL are set) listens a socket for `net.createServer().listen({fd})`.
 *   Keys can be added and removed on the listening fd at any time with
 *   `setTcpMd5Key`/`removeTcpMd5Key`; accepted connections inherit the keys
 *   and the TTL the listener had when they arrived.
 * - `socketFd` is the fd of a runtime socket (for setsockopt on accepted
 *   connections).
 *
 * Nothing here blocks. Invalid input (an address that is not an IP literal,
 * an empty password or one longer than 80 bytes) throws `TcpMd5Error`;
 * failing system calls throw `SysError` (libc.ts).
 */
import * as net from "node:net";
import * as libc from "./libc.ts";
import { type SocketFamily, TCP_MD5SIG, TcpMd5Error, encodeSockaddr, encodeTcpMd5sig, familyFits, isV4Mapped, parseSocketAddress, setTcpMd5Key } from "./tcp-md5.ts";
import { type PeerFamily, type TtlOptions, setTtlOptions } from "./ttl.ts";

function openTcpSocket(family: SocketFamily): number {
  return libc.socket(family === 6 ? libc.AF_INET6 : libc.AF_INET, libc.SOCK_STREAM | libc.SOCK_NONBLOCK | libc.SOCK_CLOEXEC, 0);
}

/** The family of the packets exchanged with `peer` (an IP literal, a %zone ignored): 4 for IPv4 and IPv4-mapped IPv6, else 6. */
export function peerFamily(peer: string): PeerFamily {
  const a = parseSocketAddress(peer.split("%")[0]!);
  return a.family === 4 || isV4Mapped(a.bytes) ? 4 : 6;
}

/** The file descriptor of a node:net Socket or Server (Bun: `_handle.fd`), or null when it has none (yet). */
export function socketFd(s: net.Socket | net.Server): number | null {
  const fd = (s as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === "number" && fd >= 0 ? fd : null;
}

export interface TcpConnectOptions {
  host: string;
  port: number;
  /** Source address (port chosen by the kernel). */
  localAddress?: string;
  /** TCP-MD5 key; absent: unsigned. */
  password?: string;
  /** TTL / minimum TTL, set before the SYN. */
  ttl?: TtlOptions;
  /** Called (never synchronously) when the TCP handshake has completed. */
  onConnected: () => void;
}

/**
 * Connect to `host`:`port`, with the TCP-MD5 key `password` and the TTL
 * options `ttl` on the socket before the SYN. Returns the node:net Socket at
 * once (before the handshake completes: wait for `onConnected`, not for
 * 'connect', which Bun emits at hand-over). A failed handshake destroys the
 * socket with a SysError ('error', then 'close'). Throws (TcpMd5Error,
 * SysError) only for what fails before the hand-over: a bad address or
 * password, socket/bind/setsockopt errors, or connect failing at once
 * (ENETUNREACH, ...).
 */
export function connectTcp(o: TcpConnectOptions): net.Socket {
  const peer = parseSocketAddress(o.host);
  const local = o.localAddress !== undefined ? parseSocketAddress(o.localAddress) : null;
  if (local && local.family !== peer.family) throw new TcpMd5Error(`local address ${o.localAddress} and peer ${o.host} are of different address families`);
  const key = o.password !== undefined ? encodeTcpMd5sig(o.host, o.password, peer.family) : null;
  const fd = openTcpSocket(peer.family);
  let watch = -1;
  try {
    if (local) libc.bind(fd, encodeSockaddr(local, 0, peer.family));
    if (key) libc.setsockoptBytes(fd, libc.IPPROTO_TCP, TCP_MD5SIG, key);
    if (o.ttl) setTtlOptions(fd, peerFamily(o.host), o.ttl);
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
  /** Why the TTL options could not be set, or null (the socket listens anyway). */
  ttlError: string | null;
}

/**
 * A listening TCP socket on `address`:`port` (port 0: the kernel picks one)
 * for `net.createServer().listen({fd})`: SO_REUSEADDR, bound, with the
 * TCP-MD5 keys of `keys` (peer address → password; peers of the other
 * family on an IPv4 socket are skipped) and the TTL options `ttl` (for both
 * IPv4 and IPv6 packets on an IPv6 socket, which is dual-stack) set before
 * `listen`. An IPv6 wildcard socket stays dual-stack (the system default),
 * its IPv4 peers keyed in IPv4-mapped form. Throws SysError (bind:
 * EADDRINUSE, ...) or TcpMd5Error (address not an IP literal), after closing
 * the socket.
 */
export function createTcpListenSocket(address: string, port: number, keys: Iterable<[string, string]> = [], backlog = 511, ttl?: TtlOptions): TcpListenSocket {
  const a = parseSocketAddress(address);
  const fd = openTcpSocket(a.family);
  const keyErrors: { peer: string; error: string }[] = [];
  let ttlError: string | null = null;
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
    if (ttl) {
      try {
        for (const f of a.family === 6 ? ([4, 6] as const) : ([4] as const)) setTtlOptions(fd, f, ttl);
      } catch (e) {
        ttlError = e instanceof Error ? e.message : String(e);
      }
    }
    libc.listen(fd, backlog);
  } catch (e) {
    libc.close(fd);
    throw e;
  }
  return { fd, family: a.family, keyErrors, ttlError };
}
