/**
 * Client of the daemon's control socket (lib/api/server.ts): one method per
 * route, over HTTP/JSON on a Unix socket. A socket nobody listens on gives
 * DaemonUnreachable (naming the socket); an error answered by the daemon is
 * rethrown as ApiError with its status and message. Streamed answers
 * (`ribStream`, `monitor`) are read line by line as they arrive, never
 * buffered whole.
 */
import type {
  AdvertiseRequest,
  BfdInfo,
  CheckInfo,
  FibEntry,
  InterfacesInfo,
  MonitorEvent,
  NeighborInfo,
  PeerAddRequest,
  RibEntry,
  RibQuery,
  RibStreamEnd,
  RibSummary,
  RouterSummary,
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

export type Summary = RouterSummary;

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

function ribParams(q: RibQuery, format?: "ndjson"): string {
  const p = new URLSearchParams();
  if (q.prefix !== undefined) p.set("prefix", q.prefix);
  if (q.match !== undefined) p.set("match", q.match);
  if (q.neighbor !== undefined) p.set("neighbor", q.neighbor);
  if (q.table !== undefined) p.set("table", q.table);
  if (q.community !== undefined) p.set("community", q.community);
  if (q.asn !== undefined) p.set("as", String(q.asn));
  if (q.bestOnly !== undefined) p.set("best", q.bestOnly ? "true" : "false");
  if (q.family !== undefined) p.set("family", q.family);
  if (q.limit !== undefined) p.set("limit", String(q.limit));
  if (format !== undefined) p.set("format", format);
  const s = p.toString();
  return s ? `?${s}` : "";
}

/**
 * The chunks of a streamed body as they arrive. A read error (the connection
 * dropped) ends them when `brokenOff` is null, else throws
 * brokenOff(reason). `signal` cancels the read; leaving early cancels it too.
 */
async function* bodyChunks(body: ReadableStream<Uint8Array>, brokenOff: ((reason: string) => Error) | null, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const reader = body.getReader();
  const onAbort = () => {
    reader.cancel().catch(() => {});
  };
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      let r: Awaited<ReturnType<typeof reader.read>>;
      try {
        r = await reader.read();
      } catch (e) {
        if (brokenOff === null) return;
        throw brokenOff((e as Error).message);
      }
      if (r.done) return;
      yield r.value;
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    reader.cancel().catch(() => {});
  }
}

/**
 * The lines of a streamed body as they arrive (split across chunks or not),
 * the last one even without a newline; blank lines skipped. Read errors and
 * `signal` as bodyChunks.
 */
async function* bodyLines(body: ReadableStream<Uint8Array>, brokenOff: ((reason: string) => Error) | null, signal?: AbortSignal): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of bodyChunks(body, brokenOff, signal)) {
    buf += decoder.decode(chunk, { stream: true });
    let start = 0;
    let nl: number;
    while ((nl = buf.indexOf("\n", start)) >= 0) {
      const line = buf.slice(start, nl);
      start = nl + 1;
      if (line.trim() !== "") yield line;
    }
    buf = buf.slice(start);
  }
  buf += decoder.decode();
  if (buf.trim() !== "") yield buf;
}

/** How a streamed `show rib` answer ended. */
export type RibStreamInfo = RibStreamEnd["end"];

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

  /** `GET /v1/metrics`: the Prometheus text exposition, as the metrics endpoint serves it. */
  async metrics(): Promise<string> {
    return (await this.send("GET", "/v1/metrics")).text();
  }

  neighbors(address?: string): Promise<NeighborInfo[]> {
    return this.call("GET", address === undefined ? "/v1/neighbors" : `/v1/neighbors?address=${encodeURIComponent(address)}`);
  }

  /** The whole answer as one array (`GET /v1/rib`, the JSON array form). */
  rib(q: RibQuery = {}): Promise<RibEntry[]> {
    return this.call("GET", `/v1/rib${ribParams(q)}`);
  }

  /**
   * The answer entry by entry as the daemon streams it (NDJSON): calls
   * `onEntries` with each batch of entries that arrived together (awaited:
   * the next chunk is read only after, so a slow consumer slows the daemon's
   * producer rather than filling memory). Resolves with the count and
   * whether `limit` truncated it; rejects if the stream breaks off or the
   * daemon reports an error half-way.
   */
  async ribStream(q: RibQuery, onEntries: (batch: RibEntry[]) => void | Promise<void>): Promise<RibStreamInfo> {
    const path = `/v1/rib${ribParams(q, "ndjson")}`;
    const res = await this.send("GET", path);
    if (!res.body) throw new Error(`control socket ${this.socketPath}: the daemon answered GET ${path} with no body`);
    const where = `control socket ${this.socketPath}: the answer to GET ${path}`;
    let batch: RibEntry[] = [];
    for await (const line of bodyLines(res.body, (reason) => new Error(`${where} broke off: ${reason}`))) {
      let v: RibEntry | RibStreamEnd | { error: string };
      try {
        v = JSON.parse(line);
      } catch {
        throw new Error(`${where} has a line that is not JSON: ${line.slice(0, 200)}`);
      }
      if ("end" in v) {
        if (batch.length) await onEntries(batch);
        return v.end;
      }
      if ("error" in v) throw new Error(`show rib: the daemon failed half-way: ${v.error}`);
      batch.push(v);
      if (batch.length >= 512) {
        await onEntries(batch);
        batch = [];
      }
    }
    throw new Error(`${where} ended early (the daemon closed the stream before its end line)`);
  }

  /**
   * `GET /v1/rib/mrt`: the Loc-RIB as MRT TABLE_DUMP_V2 bytes, handed to
   * `onChunk` as they arrive (awaited: a slow writer slows the daemon's
   * producer). Rejects if the stream breaks off.
   */
  async ribMrt(family: "ipv4" | "ipv6" | undefined, onChunk: (chunk: Uint8Array) => void | Promise<void>): Promise<void> {
    const path = family === undefined ? "/v1/rib/mrt" : `/v1/rib/mrt?family=${family}`;
    const res = await this.send("GET", path);
    if (!res.body) throw new Error(`control socket ${this.socketPath}: the daemon answered GET ${path} with no body`);
    const brokenOff = (reason: string) => new Error(`control socket ${this.socketPath}: the answer to GET ${path} broke off: ${reason}`);
    for await (const chunk of bodyChunks(res.body, brokenOff)) await onChunk(chunk);
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

  bfd(): Promise<BfdInfo[]> {
    return this.call("GET", "/v1/bfd");
  }

  checks(): Promise<CheckInfo[]> {
    return this.call("GET", "/v1/checks");
  }

  checkSetEnabled(name: string, enabled: boolean): Promise<CheckInfo> {
    return this.call("POST", `/v1/checks/${encodeURIComponent(name)}`, { enabled });
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

  shutdown(): Promise<{ ok: true }> {
    return this.call("POST", "/v1/shutdown", {});
  }

  /**
   * Streams events to `onEvent` until `signal` aborts (resolves) or the daemon
   * ends the stream or the connection drops (resolves too: check
   * `signal.aborted` to tell which).
   * Lines split across chunks are reassembled; a line that is not JSON is
   * reported as a log event rather than ending the stream. With `onLine`,
   * each line goes there as the daemon wrote it instead (`monitor -j`: no
   * parse and re-encode, so the CLI keeps up with a busy daemon).
   */
  async monitor(neighbor: string | undefined, onEvent: (e: MonitorEvent) => void, signal?: AbortSignal, onLine?: (line: string) => void): Promise<void> {
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
    const body = res.body;
    const emit = (line: string) => {
      let e: MonitorEvent;
      try {
        e = JSON.parse(line) as MonitorEvent;
      } catch {
        e = { type: "log", time: new Date().toISOString(), level: "warn", msg: `unparsable monitor line: ${line.slice(0, 200)}` };
      }
      onEvent(e);
    };
    // A dropped connection (daemon stopped or killed) ends the lines: the stream has ended.
    for await (const line of bodyLines(body, null, signal)) {
      if (signal?.aborted) return;
      if (onLine) onLine(line);
      else emit(line);
    }
  }
}
