/**
 * Client of the daemon's control socket (lib/api/server.ts): one method per
 * route, over HTTP/JSON on a Unix socket. A socket nobody listens on gives
 * DaemonUnreachable (naming the socket); an error answered by the daemon is
 * rethrown as ApiError with its status and message.
 */
import type {
  AdvertiseRequest,
  FibEntry,
  InterfacesInfo,
  MonitorEvent,
  NeighborInfo,
  PeerAddRequest,
  RibEntry,
  RibQuery,
  RibSummary,
  RouterApi,
} from "./types.ts";
import { ApiError } from "./types.ts";
import type { K8sStatus } from "../k8s/types.ts";

/** Where the daemon listens unless told otherwise (`-s/--socket`, env BGPCTL_SOCKET). */
export const DEFAULT_SOCKET_PATH = "/run/bgpctl/bgpctl.sock";

/** The socket to use: the flag, else env BGPCTL_SOCKET, else the default. */
export function resolveSocketPath(flag?: string): string {
  if (flag) return flag;
  const env = process.env.BGPCTL_SOCKET;
  return env ? env : DEFAULT_SOCKET_PATH;
}

export type Summary = ReturnType<RouterApi["summary"]>;

/** Nothing answers on the control socket. */
export class DaemonUnreachable extends Error {
  override readonly name = "DaemonUnreachable";
  constructor(readonly socketPath: string, detail?: string) {
    super(
      `no bgpctl daemon answers on ${socketPath} (is \`bgpctl run\` running? use -s/--socket to pick another socket)` +
        (detail ? `: ${detail}` : ""),
    );
  }
}

/** Turns a fetch failure into DaemonUnreachable when nothing listens; anything else gets the socket path added. */
function connectError(socketPath: string, e: unknown): Error {
  const code = (e as { code?: string }).code;
  if (code === "ENOENT" || code === "ECONNREFUSED" || code === "ENOTSOCK" || code === "ConnectionRefused" || code === "FailedToOpenSocket") {
    return new DaemonUnreachable(socketPath);
  }
  if (code === "EACCES" || code === "EPERM") {
    return new Error(`permission denied on the control socket ${socketPath} (needs to be root or in the socket's group)`);
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new Error(`control socket ${socketPath}: ${msg}`);
}

function ribParams(q: RibQuery): string {
  const p = new URLSearchParams();
  if (q.prefix !== undefined) p.set("prefix", q.prefix);
  if (q.match !== undefined) p.set("match", q.match);
  if (q.neighbor !== undefined) p.set("neighbor", q.neighbor);
  if (q.table !== undefined) p.set("table", q.table);
  if (q.community !== undefined) p.set("community", q.community);
  if (q.asn !== undefined) p.set("as", String(q.asn));
  if (q.bestOnly !== undefined) p.set("best", q.bestOnly ? "true" : "false");
  if (q.family !== undefined) p.set("family", q.family);
  const s = p.toString();
  return s ? `?${s}` : "";
}

export class ApiClient {
  constructor(readonly socketPath: string) {}

  private async send(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<Response> {
    const init: RequestInit & { unix: string } = { method, unix: this.socketPath };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { "content-type": "application/json" };
    }
    if (signal) init.signal = signal;
    let res: Response;
    try {
      res = await fetch(`http://localhost${path}`, init);
    } catch (e) {
      if (signal?.aborted) throw e;
      throw connectError(this.socketPath, e);
    }
    if (!res.ok) {
      const text = await res.text().catch(() => "");
      let msg = text.trim() || res.statusText || `HTTP ${res.status}`;
      try {
        const j = JSON.parse(text) as { error?: unknown };
        if (typeof j.error === "string") msg = j.error;
      } catch {
        /* not JSON: keep the text */
      }
      throw new ApiError(res.status, msg);
    }
    return res;
  }

  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.send(method, path, body);
    const text = await res.text();
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new Error(`control socket ${this.socketPath}: the daemon answered ${method} ${path} with invalid JSON`);
    }
  }

  summary(): Promise<Summary> {
    return this.call("GET", "/v1/summary");
  }

  neighbors(address?: string): Promise<NeighborInfo[]> {
    return this.call("GET", address === undefined ? "/v1/neighbors" : `/v1/neighbors?address=${encodeURIComponent(address)}`);
  }

  rib(q: RibQuery = {}): Promise<RibEntry[]> {
    return this.call("GET", `/v1/rib${ribParams(q)}`);
  }

  ribSummary(): Promise<RibSummary> {
    return this.call("GET", "/v1/rib/summary");
  }

  fib(prefix?: string): Promise<FibEntry[]> {
    return this.call("GET", prefix === undefined ? "/v1/fib" : `/v1/fib?prefix=${encodeURIComponent(prefix)}`);
  }

  interfaces(): Promise<InterfacesInfo> {
    return this.call("GET", "/v1/interfaces");
  }

  k8s(): Promise<K8sStatus> {
    return this.call("GET", "/v1/k8s");
  }

  advertise(r: AdvertiseRequest): Promise<{ added: string[] }> {
    return this.call("POST", "/v1/advertise", r);
  }

  withdraw(prefixes: string[]): Promise<{ removed: string[] }> {
    return this.call("POST", "/v1/withdraw", { prefixes });
  }

  async peerAdd(r: PeerAddRequest): Promise<void> {
    await this.call("POST", "/v1/peers", r);
  }

  async peerDelete(address: string): Promise<void> {
    await this.call("DELETE", `/v1/peers/${encodeURIComponent(address)}`);
  }

  async peerUp(address: string): Promise<void> {
    await this.call("POST", `/v1/peers/${encodeURIComponent(address)}/up`, {});
  }

  async peerDown(address: string, message?: string): Promise<void> {
    await this.call("POST", `/v1/peers/${encodeURIComponent(address)}/down`, message === undefined ? {} : { message });
  }

  async peerReset(address: string, soft?: "in" | "out"): Promise<void> {
    await this.call("POST", `/v1/peers/${encodeURIComponent(address)}/reset`, soft === undefined ? {} : { soft });
  }

  reload(): Promise<{ changes: string[] }> {
    return this.call("POST", "/v1/reload", {});
  }

  /**
   * Streams events to `onEvent` until `signal` aborts (resolves) or the daemon
   * ends the stream or the connection drops (resolves too: check
   * `signal.aborted` to tell which).
   * Lines split across chunks are reassembled; a line that is not JSON is
   * reported as a log event rather than ending the stream.
   */
  async monitor(neighbor: string | undefined, onEvent: (e: MonitorEvent) => void, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return;
    const path = neighbor === undefined ? "/v1/monitor" : `/v1/monitor?neighbor=${encodeURIComponent(neighbor)}`;
    let res: Response;
    try {
      res = await this.send("GET", path, undefined, signal);
    } catch (e) {
      if (signal?.aborted) return;
      throw e;
    }
    if (!res.body) return;
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    const emit = (line: string) => {
      if (line.trim() === "") return;
      let e: MonitorEvent;
      try {
        e = JSON.parse(line) as MonitorEvent;
      } catch {
        e = { type: "log", time: new Date().toISOString(), level: "warn", msg: `unparsable monitor line: ${line.slice(0, 200)}` };
      }
      onEvent(e);
    };
    const onAbort = () => {
      reader.cancel().catch(() => {});
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        let r: Awaited<ReturnType<typeof reader.read>>;
        try {
          r = await reader.read();
        } catch {
          // The connection dropped (daemon stopped or killed): the stream has ended.
          return;
        }
        if (r.done) break;
        buf += decoder.decode(r.value, { stream: true });
        let start = 0;
        let nl: number;
        while ((nl = buf.indexOf("\n", start)) >= 0) {
          emit(buf.slice(start, nl));
          start = nl + 1;
          if (signal?.aborted) return;
        }
        buf = buf.slice(start);
      }
      buf += decoder.decode();
      if (!signal?.aborted) emit(buf);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }
}
