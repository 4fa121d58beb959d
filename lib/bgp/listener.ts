/**
 * The passive side of BGP transport: listens on one or more {address, port}
 * endpoints (port 0 picks a free port; see `endpoints` for what was bound)
 * and hands every accepted TCP connection to the Session whose peer address
 * is the connection's remote address (IPv4-mapped IPv6 matched as IPv4).
 * Connections from addresses no session is configured for are closed at once
 * and reported as a 'log' event naming the address. Sessions can be added and
 * removed while listening. Nothing here throws on connection handling.
 *
 * TCP-MD5 (RFC 2385): listening sockets on IP-literal addresses are created
 * through ffi/tcp-md5.ts (then handed to `net.createServer().listen({fd})`),
 * so they can carry keys: every listening socket holds the key of each peer
 * whose session has a `password` (an IPv4 peer on an IPv6 dual-stack socket in
 * IPv4-mapped form), set before `listen` for the sessions present then, and
 * added, changed or removed on the listening socket as sessions come and go,
 * without re-binding. A peer with a key here must sign its connections
 * with it (the kernel drops anything else: unsigned segments count as
 * TcpExtTCPMD5NotFound, wrong signatures as TcpExtTCPMD5Failure); peers
 * without a key must not sign (TcpExtTCPMD5Unexpected). Connections already
 * accepted keep the keys they were accepted with. A hostname as listen
 * address goes through plain `listen({host})` and can carry no key (logged).
 *
 * TTL: every listening socket sends with TTL (IPv6: hop limit) 255, like
 * BIRD's and FRR's, so our SYN-ACK passes the minimum-TTL check of a GTSM
 * peer (RFC 5082) that connects to us: the kernel answers a SYN from the
 * listening socket, before any session is known. The minimum TTL is NOT set
 * on the listening sockets: they are shared by peers with different
 * settings. Instead, each accepted connection gets its session's TTL and
 * minimum TTL as soon as it is matched to a peer (Session.acceptIncoming,
 * before anything is sent on it; the system default TTL for a session with
 * no TTL policy); the SYN and the handshake's last ACK are not checked.
 */
import * as net from "node:net";
import { type SocketFamily, familyFits, removeTcpMd5Key, setTcpMd5Key } from "../../ffi/tcp-md5.ts";
import { createTcpListenSocket, socketFd } from "../../ffi/tcp-socket.ts";
import { type TtlOptions, setTtlOptions } from "../../ffi/ttl.ts";
import type { LogLevel } from "./fsm.ts";
import { parseAddr } from "../core/addr.ts";
import { LogRateLimiter } from "../core/log.ts";
import { type Session, TypedEmitter, normalizeAddress } from "./session.ts";

export interface ListenEndpoint {
  /** Address to bind ("0.0.0.0", "::", "127.0.0.1", ...). */
  address: string;
  /** Port; 0 for an ephemeral port. */
  port: number;
}

export interface BoundEndpoint {
  address: string;
  port: number;
  family: "IPv4" | "IPv6";
}

export interface ListenerEvents {
  log: { level: LogLevel; msg: string };
  /** A connection was handed to a session. */
  accepted: { remoteAddress: string; remotePort: number; localAddress: string; localPort: number; session: Session };
  /** A connection was closed because no session wanted it. */
  rejected: { remoteAddress: string; remotePort: number; reason: string };
}

/** The TTL of listening sockets: answers (SYN-ACKs) pass any GTSM peer's check. */
const LISTEN_TTL: TtlOptions = { ttl: 255 };

function endpointOf(s: net.Server): BoundEndpoint | null {
  const a = s.address();
  if (!a || typeof a !== "object") return null;
  return { address: a.address, port: a.port, family: a.address.includes(":") ? "IPv6" : "IPv4" };
}

/** A listening server; `fd`/`family` when we created its socket (and can key it). */
interface Bound {
  server: net.Server;
  label: string;
  fd: number | null;
  family: SocketFamily | null;
  /** Normalised peer address → the password whose key is on the socket now. */
  keys: Map<string, string>;
}

export class Listener extends TypedEmitter<ListenerEvents> {
  private servers: Bound[] = [];
  /** Normalised peer address → sessions for it. */
  private byPeer = new Map<string, Session[]>();
  /** Peers whose sessions disagree on the password (warned once per state). */
  private conflicts = new Set<string>();
  /** Connections refused from unconfigured addresses: a few lines per address a minute, then a summary. */
  private readonly refusals = new LogRateLimiter((level, msg) => this.log(level, msg));

  constructor(sessions: Session[] = []) {
    super();
    for (const s of sessions) this.add(s);
  }

  /**
   * Register a session: connections from its peerAddress go to it, and with
   * a `password` the listening sockets get its TCP-MD5 key at once. Adding a
   * session again re-reads its password.
   */
  add(session: Session): void {
    const k = normalizeAddress(session.peerAddress);
    const l = this.byPeer.get(k) ?? [];
    if (!l.includes(session)) l.push(session);
    this.byPeer.set(k, l);
    this.syncKeys(k);
  }

  /**
   * Unregister a session (its existing connections are not touched); the key
   * for its peer leaves the listening sockets unless another session for the
   * same peer has one.
   */
  remove(session: Session): void {
    const k = normalizeAddress(session.peerAddress);
    const l = this.byPeer.get(k);
    if (!l) return;
    const i = l.indexOf(session);
    if (i >= 0) l.splice(i, 1);
    if (l.length === 0) this.byPeer.delete(k);
    this.syncKeys(k);
  }

  get sessions(): Session[] {
    return [...this.byPeer.values()].flat();
  }

  /** What is bound now, with the real port numbers. */
  get endpoints(): BoundEndpoint[] {
    const out: BoundEndpoint[] = [];
    for (const b of this.servers) {
      const e = endpointOf(b.server);
      if (e) out.push(e);
    }
    return out;
  }

  /**
   * The TCP-MD5 keys on the listening sockets: one entry per endpoint, with
   * the peers keyed there (passwords not shown). For `show` and tests.
   */
  get md5Keys(): { endpoint: BoundEndpoint | null; keyable: boolean; peers: string[] }[] {
    return this.servers.map((b) => ({ endpoint: endpointOf(b.server), keyable: b.fd !== null, peers: [...b.keys.keys()].sort() }));
  }

  /** The password wanted for `peer`: that of its first session with one (a conflict is logged). */
  private wantedPassword(peer: string): string | undefined {
    const withPw = (this.byPeer.get(peer) ?? []).filter((s) => s.config.password !== undefined);
    const pw = withPw[0]?.config.password;
    const conflict = withPw.some((s) => s.config.password !== pw);
    if (conflict && !this.conflicts.has(peer)) {
      this.log("warn", `sessions for ${peer} have different TCP-MD5 passwords; the listening sockets use the first one's`);
    }
    if (conflict) this.conflicts.add(peer);
    else this.conflicts.delete(peer);
    return pw;
  }

  /** Make every keyable listening socket hold the wanted key for `peer` (none when no session has a password). */
  private syncKeys(peer: string): void {
    if (this.servers.length === 0) return;
    const pw = this.wantedPassword(peer);
    for (const b of this.servers) this.syncKey(b, peer, pw);
  }

  private syncKey(b: Bound, peer: string, pw: string | undefined): void {
    if (b.keys.get(peer) === pw) return;
    if (b.fd === null || b.family === null) {
      if (pw !== undefined) this.log("error", `listener ${b.label}: cannot set the TCP-MD5 key for ${peer} (not listening on an IP address); its connections will fail`);
      return;
    }
    try {
      if (!familyFits(b.family, peer)) return;
      if (pw === undefined) {
        removeTcpMd5Key(b.fd, b.family, peer);
        b.keys.delete(peer);
        this.log("info", `listener ${b.label}: TCP-MD5 key for ${peer} removed`);
      } else {
        setTcpMd5Key(b.fd, b.family, peer, pw);
        b.keys.set(peer, pw);
        this.log("info", `listener ${b.label}: TCP-MD5 key for ${peer} set`);
      }
    } catch (e) {
      this.log("error", `listener ${b.label}: TCP-MD5 key for ${peer}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** Peer address → password, for every peer a session wants a key for. */
  private wantedKeys(): Map<string, string> {
    const m = new Map<string, string>();
    for (const peer of this.byPeer.keys()) {
      const pw = this.wantedPassword(peer);
      if (pw !== undefined) m.set(peer, pw);
    }
    return m;
  }

  /** The bound port of the first endpoint (or the one bound to `address`). */
  port(address?: string): number {
    const eps = this.endpoints;
    const e = address === undefined ? eps[0] : eps.find((x) => normalizeAddress(x.address) === normalizeAddress(address));
    if (!e) throw new Error(address === undefined ? "listener is not listening" : `not listening on ${address}`);
    return e.port;
  }

  /** Listen on each endpoint. Rejects (after closing what this call bound) if one cannot be bound. */
  async listen(endpoints: ListenEndpoint | ListenEndpoint[]): Promise<BoundEndpoint[]> {
    const list = Array.isArray(endpoints) ? endpoints : [endpoints];
    const bound: Bound[] = [];
    try {
      for (const ep of list) bound.push(await this.listenOne(ep));
    } catch (e) {
      this.servers = this.servers.filter((b) => !bound.includes(b));
      await Promise.all(bound.map((b) => this.closeServer(b.server)));
      throw e;
    }
    return bound.map((b) => endpointOf(b.server)).filter((e): e is BoundEndpoint => e !== null);
  }

  private listenOne(ep: ListenEndpoint): Promise<Bound> {
    return new Promise((resolve, reject) => {
      const label = `[${ep.address}]:${ep.port}`;
      const server = net.createServer({ pauseOnConnect: false }, (sock) => this.onConnection(sock));
      let listening = false;
      let b: Bound | null = null;
      server.on("error", (e) => {
        if (!listening) {
          reject(e); // the caller reports it (one record, not one here too)
        } else {
          this.log("error", `listener ${label}: ${e.message}`);
        }
      });
      const onListening = () => {
        listening = true;
        const a = server.address();
        const port = a && typeof a === "object" ? a.port : ep.port;
        const bound: Bound = b ?? { server, label, fd: null, family: null, keys: new Map() };
        bound.label = `[${ep.address}]:${port}`;
        this.servers.push(bound);
        if (bound.fd === null) this.setListenTtl(bound.label, server);
        const nKeys = bound.keys.size;
        this.log("info", `listening on ${bound.label}${nKeys ? ` (TCP-MD5 keys for ${nKeys} peer${nKeys === 1 ? "" : "s"})` : ""}`);
        // Sessions added while the socket was being set up.
        for (const peer of new Set([...this.byPeer.keys(), ...bound.keys.keys()])) this.syncKey(bound, peer, this.wantedPassword(peer));
        resolve(bound);
      };
      try {
        if (parseAddr(ep.address.trim()) === null) {
          // Not an IP literal: let the runtime resolve it; no TCP-MD5 keys possible.
          server.listen({ host: ep.address, port: ep.port }, onListening);
          return;
        }
        const keys = this.wantedKeys();
        const ls = createTcpListenSocket(ep.address, ep.port, keys, undefined, LISTEN_TTL);
        const set = new Map([...keys].filter(([peer]) => familyFits(ls.family, peer) && !ls.keyErrors.some((k) => k.peer === peer)));
        for (const k of ls.keyErrors) this.log("error", `listener ${label}: TCP-MD5 key for ${k.peer}: ${k.error}`);
        if (ls.ttlError) this.log("error", `listener ${label}: TTL 255 not set (${ls.ttlError}); GTSM peers cannot connect to us, only we to them`);
        b = { server, label, fd: ls.fd, family: ls.family, keys: set };
        server.listen({ fd: ls.fd } as net.ListenOptions, onListening);
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e))); // the caller reports it
      }
    });
  }

  /** TTL 255 on a listening socket the runtime created (a hostname endpoint); a failure is logged. */
  private setListenTtl(label: string, server: net.Server): void {
    const fd = socketFd(server);
    const a = server.address();
    const v6 = a !== null && typeof a === "object" && a.address.includes(":");
    try {
      if (fd === null) throw new Error("no file descriptor");
      for (const f of v6 ? ([4, 6] as const) : ([4] as const)) setTtlOptions(fd, f, LISTEN_TTL);
    } catch (e) {
      this.log("error", `listener ${label}: TTL 255 not set (${e instanceof Error ? e.message : String(e)}); GTSM peers cannot connect to us, only we to them`);
    }
  }

  private closeServer(s: net.Server): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 2000);
      try {
        s.close(() => {
          clearTimeout(t);
          resolve();
        });
      } catch {
        clearTimeout(t);
        resolve();
      }
    });
  }

  /** Stop listening on every endpoint (connections already handed over stay with their sessions). */
  async close(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    this.refusals.flush();
    await Promise.all(servers.map((b) => this.closeServer(b.server)));
  }

  private log(level: LogLevel, msg: string): void {
    this.emit("log", { level, msg });
  }

  private pick(remote: string, local: string): Session | null {
    const l = this.byPeer.get(remote);
    if (!l || l.length === 0) return null;
    if (l.length === 1) return l[0]!;
    return (
      l.find((s) => s.config.localAddress !== undefined && normalizeAddress(s.config.localAddress) === local) ??
      l.find((s) => s.config.localAddress === undefined) ??
      l[0]!
    );
  }

  private onConnection(sock: net.Socket): void {
    sock.on("error", () => {}); // the session (or the rejection below) takes over reporting
    try {
      const remote = normalizeAddress(sock.remoteAddress ?? "");
      const remotePort = sock.remotePort ?? 0;
      const local = normalizeAddress(sock.localAddress ?? "");
      const s = this.pick(remote, local);
      if (!s) {
        const reason = `connection from unconfigured address ${remote || "?"} (port ${remotePort}) refused`;
        this.refusals.line(remote, "warn", reason, `refused connections from ${remote || "?"}`);
        this.emit("rejected", { remoteAddress: remote, remotePort, reason });
        sock.destroy();
        return;
      }
      this.emit("accepted", { remoteAddress: remote, remotePort, localAddress: local, localPort: sock.localPort ?? 0, session: s });
      s.acceptIncoming(sock);
    } catch (e) {
      this.log("error", `incoming connection: ${e instanceof Error ? e.message : String(e)}`);
      try {
        sock.destroy();
      } catch {
        /* ignore */
      }
    }
  }
}
