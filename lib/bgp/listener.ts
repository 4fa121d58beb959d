/**
 * The passive side of BGP transport: listens on one or more {address, port}
 * endpoints (port 0 picks a free port; see `endpoints` for what was bound)
 * and hands every accepted TCP connection to the Session whose peer address
 * is the connection's remote address (IPv4-mapped IPv6 matched as IPv4).
 * Connections from addresses no session is configured for are closed at once
 * and reported as a 'log' event naming the address. Sessions can be added and
 * removed while listening. Nothing here throws on connection handling.
 */
import * as net from "node:net";
import type { LogLevel } from "./fsm.ts";
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

function endpointOf(s: net.Server): BoundEndpoint | null {
  const a = s.address();
  if (!a || typeof a !== "object") return null;
  return { address: a.address, port: a.port, family: a.address.includes(":") ? "IPv6" : "IPv4" };
}

export class Listener extends TypedEmitter<ListenerEvents> {
  private servers: net.Server[] = [];
  /** Normalised peer address → sessions for it. */
  private byPeer = new Map<string, Session[]>();

  constructor(sessions: Session[] = []) {
    super();
    for (const s of sessions) this.add(s);
  }

  /** Register a session: connections from its peerAddress go to it. */
  add(session: Session): void {
    const k = normalizeAddress(session.peerAddress);
    const l = this.byPeer.get(k) ?? [];
    if (!l.includes(session)) l.push(session);
    this.byPeer.set(k, l);
  }

  /** Unregister a session (its existing connections are not touched). */
  remove(session: Session): void {
    const k = normalizeAddress(session.peerAddress);
    const l = this.byPeer.get(k);
    if (!l) return;
    const i = l.indexOf(session);
    if (i >= 0) l.splice(i, 1);
    if (l.length === 0) this.byPeer.delete(k);
  }

  get sessions(): Session[] {
    return [...this.byPeer.values()].flat();
  }

  /** What is bound now, with the real port numbers. */
  get endpoints(): BoundEndpoint[] {
    const out: BoundEndpoint[] = [];
    for (const s of this.servers) {
      const e = endpointOf(s);
      if (e) out.push(e);
    }
    return out;
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
    const bound: net.Server[] = [];
    try {
      for (const ep of list) bound.push(await this.listenOne(ep));
    } catch (e) {
      await Promise.all(bound.map((s) => this.closeServer(s)));
      this.servers = this.servers.filter((s) => !bound.includes(s));
      throw e;
    }
    return bound.map(endpointOf).filter((e): e is BoundEndpoint => e !== null);
  }

  private listenOne(ep: ListenEndpoint): Promise<net.Server> {
    return new Promise((resolve, reject) => {
      const server = net.createServer({ pauseOnConnect: false }, (sock) => this.onConnection(sock));
      let listening = false;
      server.on("error", (e) => {
        if (!listening) {
          this.log("error", `cannot listen on [${ep.address}]:${ep.port}: ${e.message}`);
          reject(e);
        } else {
          this.log("error", `listener [${ep.address}]:${ep.port}: ${e.message}`);
        }
      });
      try {
        server.listen({ host: ep.address, port: ep.port }, () => {
          listening = true;
          this.servers.push(server);
          const a = server.address();
          this.log("info", `listening on [${ep.address}]:${a && typeof a === "object" ? a.port : ep.port}`);
          resolve(server);
        });
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
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
    await Promise.all(servers.map((s) => this.closeServer(s)));
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
        this.log("warn", reason);
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
