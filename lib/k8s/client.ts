/**
 * A small Kubernetes REST client on Bun's `fetch`: GET/LIST/POST with JSON,
 * watch streams with a watchdog, TLS against the configured CA (mTLS with a
 * client certificate), and bearer tokens from a file that is re-read when it
 * changes (bound service account tokens rotate) and right after a 401.
 * Non-2xx answers become `KubeApiError`s carrying the status, the reason and
 * message of the metav1.Status body, and Retry-After.
 */
import { readFile, stat } from "node:fs/promises";
import type { KubeConnection } from "./kubeconfig.ts";
import { parseListJson } from "./list-json.ts";
import type { List, Status, WatchEvent } from "./types.ts";
import { readWatchEvents } from "./watch-stream.ts";

/** A non-2xx answer of the API server. */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  /** HTTP status. */
  readonly status: number;
  /** metav1.Status reason ("NotFound", "Expired", "Forbidden", ...), when the body had one. */
  readonly reason?: string;
  /** From Retry-After (429/5xx) or the Status details. */
  readonly retryAfterSeconds?: number;

  constructor(message: string, status: number, reason?: string, retryAfterSeconds?: number) {
    super(message);
    this.status = status;
    if (reason !== undefined) this.reason = reason;
    if (retryAfterSeconds !== undefined) this.retryAfterSeconds = retryAfterSeconds;
  }
}

export type LogFn = (level: "debug" | "info" | "warn" | "error", msg: string) => void;

export interface KubeClientOptions {
  log?: LogFn;
  /** Default "bgpctl". */
  userAgent?: string;
  /** Timeout of non-watch requests, body included (default 30000). */
  requestTimeoutMs?: number;
  /** How often at most the token file is checked for changes (default 60000). */
  tokenRecheckMs?: number;
  /** A watch is aborted when nothing arrives for its timeoutSeconds plus this (default 30000). */
  watchGraceMs?: number;
}

/** Watch `timeoutSeconds` added when the caller gives none (below Bun's and proxies' idle limits). */
const DEFAULT_WATCH_TIMEOUT_S = 240;

export class KubeClient {
  readonly #conn: KubeConnection;
  readonly #log: LogFn;
  readonly #ua: string;
  readonly #timeoutMs: number;
  readonly #graceMs: number;
  readonly #tokens: TokenSource;

  constructor(conn: KubeConnection, opts: KubeClientOptions = {}) {
    this.#conn = conn;
    this.#log = opts.log ?? (() => {});
    this.#ua = opts.userAgent ?? "bgpctl";
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#graceMs = opts.watchGraceMs ?? 30_000;
    this.#tokens = new TokenSource(conn, opts.tokenRecheckMs ?? 60_000, this.#log);
  }

  /** GET a JSON object; throws KubeApiError on a non-2xx answer, Error on connection failures. */
  async get<T>(path: string, query?: Record<string, string>, signal?: AbortSignal): Promise<T> {
    return (await this.request("GET", path, undefined, query, signal)) as T;
  }

  /**
   * GET a list (one page: pass `limit`/`continue` in `query` to paginate),
   * parsed item by item in time slices (lib/k8s/list-json.ts): a page of
   * big objects is never parsed in one turn.
   */
  async list<T>(path: string, query?: Record<string, string>, signal?: AbortSignal): Promise<List<T>> {
    return (await this.request("GET", path, undefined, query, signal, parseListJson)) as List<T>;
  }

  /**
   * Any method with an optional JSON body; returns the parsed JSON answer
   * (null when empty), parsed by `parse` when given (JSON.parse otherwise).
   */
  async request(method: string, path: string, body?: unknown, query?: Record<string, string>, signal?: AbortSignal, parse?: (text: string) => Promise<unknown>): Promise<unknown> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
    const url = this.#url(path, query);
    try {
      const res = await this.#send(method, url, sig, false, body);
      const text = await res.text();
      if (!text) return null;
      try {
        return parse ? await parse(text) : JSON.parse(text);
      } catch {
        throw new Error(`${method} ${url}: answer is not JSON ("${text.slice(0, 60)}")`);
      }
    } catch (e) {
      if (timeout.aborted && !signal?.aborted) throw new Error(`${method} ${url}: no answer within ${this.#timeoutMs} ms`);
      throw e;
    }
  }

  /**
   * A watch stream: yields parsed events (ERROR events included) until the
   * server ends the stream (returns) or the connection fails (throws). Adds
   * `watch=true`, and `timeoutSeconds=240` when the query has none. When
   * nothing at all (not even a bookmark) arrives for timeoutSeconds + the
   * grace period, the stream is aborted and the generator throws. Aborting
   * `signal` ends the generator without an error.
   */
  async *watch<T>(path: string, query: Record<string, string>, signal?: AbortSignal): AsyncGenerator<WatchEvent<T>> {
    if (signal?.aborted) return;
    const q: Record<string, string> = { ...query, watch: "true" };
    q.timeoutSeconds ??= String(DEFAULT_WATCH_TIMEOUT_S);
    const idleMs = Number(q.timeoutSeconds) * 1000 + this.#graceMs;
    const url = this.#url(path, q);
    const ac = new AbortController();
    const onAbort = () => ac.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    let idle = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        idle = true;
        ac.abort(new Error("watch idle"));
      }, idleMs);
    };
    arm();
    let connected = false;
    try {
      const res = await this.#send("GET", url, ac.signal, true);
      connected = true;
      if (!res.body) throw new Error("empty answer");
      for await (const ev of readWatchEvents<T>(res.body, arm)) yield ev;
    } catch (e) {
      if (signal?.aborted) return;
      if (idle) throw new Error(`watch ${url}: nothing received for ${Math.round(idleMs / 1000)} s (not even a bookmark); connection presumed dead`);
      if (!connected) throw e; // already names the request
      throw new Error(`watch ${url}: ${errText(e)}`, { cause: e });
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      ac.abort();
    }
  }

  #url(path: string, query?: Record<string, string>): string {
    const base = this.#conn.server.replace(/\/+$/, "");
    const qs = query && Object.keys(query).length ? `?${new URLSearchParams(query)}` : "";
    return `${base}${path.startsWith("/") ? path : `/${path}`}${qs}`;
  }

  /** One request, retried once after a 401 when the token file holds a new token. */
  async #send(method: string, url: string, signal: AbortSignal, watch: boolean, body?: unknown): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const headers: Record<string, string> = { Accept: "application/json", "User-Agent": this.#ua };
      const token = await this.#tokens.get();
      if (token) headers.Authorization = `Bearer ${token}`;
      if (body !== undefined) headers["Content-Type"] = "application/json";
      const init: BunFetchRequestInit = {
        method,
        headers,
        signal,
        redirect: "manual",
        tls: {
          rejectUnauthorized: !this.#conn.insecure,
          ...(this.#conn.ca ? { ca: this.#conn.ca } : {}),
          ...(this.#conn.cert ? { cert: this.#conn.cert, key: this.#conn.key } : {}),
        },
      };
      if (body !== undefined) init.body = JSON.stringify(body);
      if (watch) init.timeout = false;
      let res: Response;
      try {
        res = await fetch(url, init);
      } catch (e) {
        throw new Error(`${method} ${url}: ${this.#connText(e)}`, { cause: e });
      }
      if (res.status === 401 && attempt === 0 && (await this.#tokens.reload(true))) {
        await res.body?.cancel().catch(() => {});
        this.#log("info", `${method} ${url}: 401 Unauthorized; the token file changed, retrying with the new token`);
        continue;
      }
      if (res.status < 200 || res.status > 299) throw await apiError(method, url, res);
      return res;
    }
  }

  #connText(e: unknown): string {
    const code = (e as { code?: unknown }).code;
    const text = errText(e);
    if (typeof code === "string" && /CERT|SELF_SIGNED|ISSUER|ALTNAME|HOSTNAME|TLS|SSL/.test(code)) {
      const ca = this.#conn.ca ? "the configured CA" : "the system CAs (no CA configured)";
      return `TLS verification failed: the server certificate is not trusted by ${ca} (${code}: ${text}); check the CA of ${this.#conn.source}`;
    }
    return text;
  }
}

async function apiError(method: string, url: string, res: Response): Promise<KubeApiError> {
  let text = "";
  try {
    text = await res.text();
  } catch {
    // The body is lost; the status line still says enough.
  }
  let reason: string | undefined;
  let message: string | undefined;
  let retryAfter: number | undefined;
  try {
    const s = JSON.parse(text) as Partial<Status>;
    if (s && s.kind === "Status") {
      if (typeof s.reason === "string" && s.reason) reason = s.reason;
      if (typeof s.message === "string" && s.message) message = s.message;
      const ra = (s.details as { retryAfterSeconds?: unknown } | undefined)?.retryAfterSeconds;
      if (typeof ra === "number" && ra > 0) retryAfter = ra;
    }
  } catch {
    if (text.trim()) message = text.trim().slice(0, 200);
  }
  if (res.status === 429 || res.status >= 500) {
    const h = parseRetryAfter(res.headers.get("retry-after"));
    if (h !== undefined) retryAfter = h;
  }
  const path = new URL(url).pathname;
  const what = `${res.status} ${reason ?? res.statusText ?? ""}`.trim();
  return new KubeApiError(`${method} ${path}: ${what}${message ? `: ${message}` : ""}`, res.status, reason, retryAfter);
}

/** Retry-After as seconds: an integer, or an HTTP date. */
function parseRetryAfter(v: string | null): number | undefined {
  if (!v) return undefined;
  const t = v.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const d = Date.parse(t);
  if (Number.isNaN(d)) return undefined;
  return Math.max(0, Math.ceil((d - Date.now()) / 1000));
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The bearer token: static, or a file re-read when its mtime/size changes (checked at most every recheckMs) and on demand. */
class TokenSource {
  readonly #file?: string;
  readonly #recheckMs: number;
  readonly #log: LogFn;
  #token?: string;
  #stamp = "";
  #checkedAt = Number.NEGATIVE_INFINITY;

  constructor(conn: KubeConnection, recheckMs: number, log: LogFn) {
    if (conn.token) this.#token = conn.token;
    if (conn.tokenFile) this.#file = conn.tokenFile;
    this.#recheckMs = recheckMs;
    this.#log = log;
  }

  async get(): Promise<string | undefined> {
    if (this.#file && performance.now() - this.#checkedAt >= this.#recheckMs) await this.reload(false);
    return this.#token;
  }

  /** Re-reads the file (when changed, or always with `force`); true when the token changed. */
  async reload(force: boolean): Promise<boolean> {
    if (!this.#file) return false;
    this.#checkedAt = performance.now();
    try {
      const st = await stat(this.#file);
      const stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      if (!force && stamp === this.#stamp) return false;
      const token = (await readFile(this.#file, "utf8")).trim();
      this.#stamp = stamp;
      if (!token) {
        this.#log("warn", `token file ${this.#file} is empty; keeping the previous token`);
        return false;
      }
      const changed = token !== this.#token;
      if (changed && this.#token !== undefined) this.#log("info", `token file ${this.#file} changed; using the new token`);
      this.#token = token;
      return changed;
    } catch (e) {
      this.#log("warn", `token file ${this.#file}: ${errText(e)}; keeping the previous token`);
      return false;
    }
  }
}
