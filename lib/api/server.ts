/**
 * The daemon's control socket: serves a RouterApi as HTTP/JSON on a Unix
 * socket (Bun.serve with `unix`), for the CLI (lib/api/client.ts) and any
 * other local tool. Every request is validated here, before it reaches the
 * router; errors are answered as `{"error": "message"}` with status 400 (bad
 * input, naming the field), 404 (unknown route or peer), 405 (wrong method),
 * 409 (conflict) or 500, never by crashing. Long answers are streamed
 * (lib/api/streams.ts), produced only as fast as the client reads and in
 * slices that leave the event loop free: `GET /v1/rib` (a JSON array written
 * incrementally, or NDJSON with `format=ndjson`, at most `limit` entries),
 * and `GET /v1/monitor`, events as JSON lines for as long as the client
 * stays connected, through a bounded queue per client (a client that falls
 * 50,000 events or 8 MiB behind is disconnected, and the log says which).
 *
 * Routes:
 *   GET    /v1/summary
 *   GET    /v1/neighbors[?address=A]
 *   GET    /v1/rib?prefix=&match=&neighbor=&table=&community=&as=&best=&family=&limit=&format=json|ndjson
 *   GET    /v1/rib/summary
 *   GET    /v1/rib/mrt[?family=ipv4|ipv6]  → application/octet-stream: TABLE_DUMP_V2 (RFC 6396), streamed
 *   GET    /v1/fib[?prefix=]
 *   GET    /v1/interfaces
 *   GET    /v1/bfd                    BFD sessions (show bfd)
 *   GET    /v1/checks                 health checks (show checks)
 *   POST   /v1/checks/:name           {enabled: boolean}  (bgpctl check NAME disable|enable)
 *   GET    /v1/k8s                    (watch-k8s only: what the controller derived)
 *   POST   /v1/advertise              AdvertiseRequest
 *   POST   /v1/withdraw               {prefixes}
 *   POST   /v1/peers                  PeerAddRequest
 *   DELETE /v1/peers/:address
 *   POST   /v1/peers/:address/up
 *   POST   /v1/peers/:address/down    {message?}
 *   POST   /v1/peers/:address/reset   {soft?: "in"|"out"}
 *   POST   /v1/reload
 *   POST   /v1/shutdown               (stop for good; SIGTERM is a graceful restart)
 *   GET    /v1/monitor[?neighbor=A]   → application/x-ndjson stream of MonitorEvent
 *   GET    /v1/metrics                → Prometheus text exposition (options.metrics)
 */
import { chmodSync, lstatSync, mkdirSync, rmSync, type Stats } from "node:fs";
import { createConnection } from "node:net";
import { dirname } from "node:path";
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { ConfigError } from "../config/reader.ts";
import { advertiseFromRequest, checkPeerRequest, requestErrorText, withdrawFromRequest } from "../config/request.ts";
import { parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import { nextTurn } from "../core/slices.ts";
import { ipv4TextKey } from "../rib/types.ts";
import { RouterError, type RouterErrorKind } from "../router/errors.ts";
import { MONITOR_LIMITS, MonitorFeed, type MonitorLimits, type RibFormat, mrtBody, ribBody } from "./streams.ts";
import { type AdvertiseRequest, ApiError, type MonitorEvent, type PeerAddRequest, type RibQuery, type RouterApi } from "./types.ts";

export interface ApiServerOptions {
  /** Permissions of the socket file (default 0o660: owner and group may control the router). */
  mode?: number;
  /** Seconds before an idle connection is closed; 0 (the default) never, which `monitor` streams need. */
  idleTimeout?: number;
  /** Bounds of each monitor client's queue (default 50,000 events / 8 MiB). */
  monitorLimits?: MonitorLimits;
  /** Where the server logs (a monitor client cut for falling behind); default the router's `log`, else stderr. */
  log?: (level: "info" | "warn" | "error", msg: string) => void;
  /** The Prometheus exposition text for `GET /v1/metrics` (`bgpctl show metrics`); without it, 409. */
  metrics?: () => Promise<string | ReadableStream<Uint8Array>>;
}

export interface ApiServer {
  /** The socket path served. */
  readonly path: string;
  /** Ends monitor streams, stops listening and removes the socket file. */
  close(): Promise<void>;
}

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with the terminating NUL). */
const MAX_SOCKET_PATH = 107;
const MAX_BODY = 16 * 1024 * 1024;

const JSON_HEADERS = { "content-type": "application/json" };

/** How the daemon's errors are answered. */
const ROUTER_ERROR_STATUS: Record<RouterErrorKind, number> = { invalid: 400, "not-found": 404, conflict: 409 };

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body) + "\n", { status, headers: JSON_HEADERS });
}

function errorResponse(status: number, message: string, extra?: Record<string, string>): Response {
  return new Response(JSON.stringify({ error: message }) + "\n", { status, headers: { ...JSON_HEADERS, ...extra } });
}

function bad(message: string): never {
  throw new ApiError(400, message);
}

// ---------------------------------------------------------------------------
// Input validation: each check names the field it rejects.
// ---------------------------------------------------------------------------

function checkAddress(field: string, v: unknown): string {
  if (typeof v !== "string" || !parseAddr(v)) bad(`${field}: ${JSON.stringify(v)} is not an IPv4 or IPv6 address`);
  return v;
}

/** Canonical text of a prefix ("10.0.0.0/8", lower-case compressed IPv6). */
function checkPrefix(field: string, v: unknown): string {
  if (typeof v !== "string") bad(`${field}: expected a prefix string such as "192.0.2.0/24", got ${JSON.stringify(v)}`);
  try {
    return prefixToString(parsePrefix(v));
  } catch (e) {
    bad(`${field}: ${(e as Error).message}`);
  }
}

/** A prefix, or a bare address for a longest-match lookup. */
function checkPrefixOrAddress(field: string, v: string): string {
  if (!v.includes("/")) {
    if (!parseAddr(v)) bad(`${field}: "${v}" is not a prefix (ADDRESS/LENGTH) or an address`);
    return v;
  }
  return checkPrefix(field, v);
}

function checkAsn(field: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 4294967295) bad(`${field}: ${JSON.stringify(v)} is not an AS number (1..4294967295)`);
  return v;
}

function checkString(field: string, v: unknown, maxLen = 1024): string {
  if (typeof v !== "string") bad(`${field}: expected a string, got ${JSON.stringify(v)}`);
  if (v.length > maxLen) bad(`${field}: longer than ${maxLen} characters`);
  return v;
}

function checkCommunity(field: string, v: unknown): string {
  if (typeof v !== "string") bad(`${field}: expected a community string such as "65001:100", got ${JSON.stringify(v)}`);
  try {
    parseCommunity(v);
  } catch (e) {
    bad(`${field}: ${(e as Error).message}`);
  }
  return v;
}

function checkLargeCommunity(field: string, v: unknown): string {
  if (typeof v !== "string") bad(`${field}: expected a large community string such as "65001:1:2", got ${JSON.stringify(v)}`);
  try {
    parseLargeCommunity(v);
  } catch (e) {
    bad(`${field}: ${(e as Error).message}`);
  }
  return v;
}

function checkKeys(obj: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) if (!allowed.includes(k)) bad(`${k}: unknown field (expected ${allowed.join(", ")})`);
}

/** Largest `limit` of a rib query. */
const MAX_LIMIT = 100_000_000;

export function parseRibQuery(params: URLSearchParams): RibQuery {
  const allowed = ["prefix", "match", "neighbor", "table", "community", "as", "best", "family", "limit", "format"];
  for (const k of params.keys()) if (!allowed.includes(k)) bad(`${k}: unknown query parameter (expected ${allowed.join(", ")})`);
  const q: RibQuery = {};
  const prefix = params.get("prefix");
  if (prefix !== null && prefix !== "") q.prefix = checkPrefixOrAddress("prefix", prefix);
  const match = params.get("match");
  if (match !== null && match !== "") {
    if (match !== "exact" && match !== "longer" && match !== "shorter") bad(`match: "${match}" must be exact, longer or shorter`);
    if (q.prefix === undefined) bad("match: needs a prefix");
    q.match = match;
  }
  const neighbor = params.get("neighbor");
  if (neighbor !== null && neighbor !== "") q.neighbor = checkAddress("neighbor", neighbor);
  const table = params.get("table");
  if (table !== null && table !== "") {
    if (table !== "in" && table !== "out" && table !== "loc") bad(`table: "${table}" must be in, out or loc`);
    if (q.neighbor === undefined && table !== "loc") bad(`table: "${table}" needs a neighbor`);
    q.table = table;
  }
  const community = params.get("community");
  if (community !== null && community !== "") {
    if (/^\d+:\d+:\d+$/.test(community)) checkLargeCommunity("community", community);
    else checkCommunity("community", community);
    q.community = community;
  }
  const as = params.get("as");
  if (as !== null && as !== "") {
    if (!/^\d{1,10}$/.test(as)) bad(`as: "${as}" is not an AS number (1..4294967295)`);
    q.asn = checkAsn("as", Number(as));
  }
  const best = params.get("best");
  if (best !== null) {
    if (best === "" || best === "1" || best === "true" || best === "yes") q.bestOnly = true;
    else if (best === "0" || best === "false" || best === "no") q.bestOnly = false;
    else bad(`best: "${best}" must be true or false`);
  }
  const family = params.get("family");
  if (family !== null && family !== "") {
    if (family !== "ipv4" && family !== "ipv6") bad(`family: "${family}" must be ipv4 or ipv6`);
    q.family = family;
  }
  const limit = params.get("limit");
  if (limit !== null && limit !== "") {
    if (!/^\d{1,9}$/.test(limit) || Number(limit) < 1 || Number(limit) > MAX_LIMIT) bad(`limit: "${limit}" must be a number of entries 1..${MAX_LIMIT}`);
    q.limit = Number(limit);
  }
  return q;
}

/** `format=` of `GET /v1/rib`: json (an array, the default) or ndjson (lines, then `{"end":{count,truncated}}`). */
export function parseRibFormat(params: URLSearchParams): RibFormat {
  const f = params.get("format");
  if (f === null || f === "" || f === "json") return "json";
  if (f === "ndjson") return "ndjson";
  bad(`format: "${f}" must be json or ndjson`);
}

/** Runs a request check of lib/config/request.ts; its ConfigError becomes a 400 naming each bad field (one line). */
function viaSchema<T>(check: () => T): T {
  try {
    return check();
  } catch (e) {
    if (e instanceof ConfigError) bad(requestErrorText(e).split("\n").join("; "));
    throw e;
  }
}

/** Prefixes the request schema checks per turn of the event loop. */
const CHECK_SLICE = 1000;

/**
 * A schema check of a request with a `prefixes` list of any length: its
 * first result (the rest of the body checked with the first prefix) and
 * every prefix in canonical form. A long list is checked slice by slice
 * with a turn of the event loop between, errors naming the index in the
 * whole list; a prefix already in canonical IPv4 form (what `ipv4TextKey`
 * reads: the great majority of a bulk request) is taken as it is, the
 * schema checks the others (200k prefixes took a second through it). A 400
 * as viaSchema.
 */
async function checkSliced<T>(body: Record<string, unknown>, check: (b: Record<string, unknown>) => T[], prefixOf: (t: T) => string): Promise<{ first: T; prefixes: string[] }> {
  const list = body.prefixes;
  if (!Array.isArray(list) || list.length <= CHECK_SLICE) {
    const all = viaSchema(() => check(body));
    return { first: all[0]!, prefixes: all.map(prefixOf) };
  }
  const first = viaSchema(() => check({ ...body, prefixes: list.slice(0, 1) }))[0]!;
  const out = new Array<string>(list.length);
  for (let o = 0; o < list.length; o += CHECK_SLICE) {
    if (o > 0) await nextTurn();
    const others: number[] = [];
    for (let i = o; i < Math.min(o + CHECK_SLICE, list.length); i++) {
      const x: unknown = list[i];
      if (typeof x === "string" && ipv4TextKey(x, false) !== null) out[i] = x;
      else others.push(i);
    }
    if (others.length === 0) continue;
    try {
      const checked = check({ ...body, prefixes: others.map((i) => list[i]) });
      for (let k = 0; k < others.length; k++) out[others[k]!] = prefixOf(checked[k]!);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      const at = (line: string) => line.replace(/^prefixes\[(\d+)\]/, (_, k: string) => `prefixes[${others[Number(k)]}]`);
      bad(requestErrorText(e).split("\n").map(at).join("; "));
    }
  }
  return { first, prefixes: out };
}

/** `POST /v1/advertise`: checked by the schema of a file advertisement; the keys given, prefixes and communities in canonical form. */
export async function parseAdvertiseRequest(body: Record<string, unknown>): Promise<AdvertiseRequest> {
  const { first, prefixes } = await checkSliced(body, advertiseFromRequest, (a) => a.prefix);
  const given = Object.entries(first).filter(([k]) => k !== "prefix" && Object.hasOwn(body, k));
  return { ...Object.fromEntries(given), prefixes };
}

/** `POST /v1/withdraw`: {prefixes}, checked as the prefixes of an advertisement; canonical form. */
export async function parseWithdrawRequest(body: Record<string, unknown>): Promise<string[]> {
  return (await checkSliced(body, withdrawFromRequest, (p) => p)).prefixes;
}

/**
 * `POST /v1/peers`: checked against the schema of a peer in the file (every
 * peer key but group and passwordFile; types, ranges, unknown keys); passed
 * on unchanged: the router builds the peer with peerFromRequest (policy
 * names, cross-checks, the file's defaults).
 */
export function parsePeerAddRequest(body: Record<string, unknown>): PeerAddRequest {
  return viaSchema(() => checkPeerRequest(body)) as PeerAddRequest;
}

/** The request body as a JSON object; an empty body is `{}`. */
async function readBody(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    bad(`request body is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad("request body must be a JSON object");
  return v as Record<string, unknown>;
}

function noQuery(url: URL): void {
  for (const k of url.searchParams.keys()) bad(`${k}: unknown query parameter (this route takes none)`);
}

// ---------------------------------------------------------------------------
// Socket file handling
// ---------------------------------------------------------------------------

function statOrNull(path: string): Stats | null {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw e;
  }
}

/** Whether something accepts connections on the socket: true (answers), false (refused: stale), or an error. */
function probeSocket(path: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = createConnection({ path });
    const timer = setTimeout(() => {
      // Connected-but-silent or a full backlog: someone holds it; do not steal it.
      sock.destroy();
      resolve(true);
    }, timeoutMs);
    sock.once("connect", () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      sock.destroy();
      if (e.code === "ECONNREFUSED" || e.code === "ENOENT") resolve(false);
      else reject(new Error(`cannot check the control socket ${path}: ${e.message}`));
    });
  });
}

async function prepareSocketPath(path: string): Promise<void> {
  if (Buffer.byteLength(path) > MAX_SOCKET_PATH) {
    throw new Error(`control socket path ${path} is too long (${Buffer.byteLength(path)} bytes, at most ${MAX_SOCKET_PATH})`);
  }
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const st = statOrNull(path);
  if (!st) return;
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; not removing it`);
  if (await probeSocket(path)) throw new Error(`another bgpctl daemon is running on ${path}`);
  rmSync(path, { force: true }); // stale: left by a daemon that did not exit cleanly
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

interface MonitorStream {
  close(): void;
}

export async function startApiServer(api: RouterApi, socketPath: string, opts: ApiServerOptions = {}): Promise<ApiServer> {
  const mode = opts.mode ?? 0o660;
  const limits = opts.monitorLimits ?? MONITOR_LIMITS;
  const log = opts.log ?? ((level: string, msg: string) => (api.note ? api.note(level, msg) : console.error(`${level}: ${msg}`)));
  await prepareSocketPath(socketPath);
  const monitors = new Set<MonitorStream>();
  let monitorSeq = 0;

  /** `GET /v1/monitor`: the router's events through this client's bounded queue (MonitorFeed). */
  function monitor(req: Request, url: URL): Response {
    for (const k of url.searchParams.keys()) if (k !== "neighbor") bad(`${k}: unknown query parameter (expected neighbor)`);
    const nb = url.searchParams.get("neighbor");
    const neighbor = nb === null || nb === "" ? undefined : checkAddress("neighbor", nb);
    const name = `monitor client #${++monitorSeq}${neighbor ? ` of neighbor ${neighbor}` : ""} (connected ${new Date().toISOString()})`;
    let unsubscribe: (() => void) | null = null;
    let done = false;
    const entry: MonitorStream = { close: () => finish() };
    const finish = () => {
      if (done) return;
      done = true;
      monitors.delete(entry);
      const u = unsubscribe;
      unsubscribe = null;
      try {
        u?.();
      } catch (e) {
        log("warn", `${name}: unsubscribing failed: ${(e as Error).message}`);
      }
      feed.close();
    };
    const feed = new MonitorFeed(limits, finish);
    const send = (e: MonitorEvent) => {
      if (done || feed.push(e)) return;
      const queued = `${feed.queuedEvents} events, ${feed.queuedBytes} bytes unsent`;
      finish();
      feed.cut();
      // After finish(): this log line is itself a monitor event, not for this client any more.
      log("warn", `${name} disconnected: not reading, its queue is full (${queued}; limit ${limits.maxEvents} events / ${limits.maxBytes} bytes)`);
    };
    // The first line makes the response headers go out at once.
    send({ type: "log", time: new Date().toISOString(), level: "info", msg: neighbor ? `monitoring ${neighbor}` : "monitoring" });
    monitors.add(entry);
    try {
      unsubscribe = api.monitor(send, neighbor);
    } catch (e) {
      send({ type: "log", time: new Date().toISOString(), level: "error", msg: `monitor: ${(e as Error).message}` });
      finish();
    }
    req.signal.addEventListener("abort", finish, { once: true });
    return new Response(feed.body, { headers: { "content-type": "application/x-ndjson", "cache-control": "no-store" } });
  }

  async function route(req: Request, url: URL): Promise<Response> {
    const parts = url.pathname.split("/").filter((s) => s !== "");
    if (parts[0] !== "v1") return errorResponse(404, `no such route: ${req.method} ${url.pathname}`);
    let seg: string[];
    try {
      seg = parts.slice(1).map(decodeURIComponent);
    } catch {
      bad(`bad percent-encoding in ${url.pathname}`);
    }
    const method = req.method;
    const only = (...allowed: string[]): Response | null =>
      allowed.includes(method) ? null : errorResponse(405, `${method} not allowed on ${url.pathname} (use ${allowed.join(" or ")})`, { allow: allowed.join(", ") });
    const path = seg.join("/");

    switch (path) {
      case "summary":
        return only("GET") ?? (noQuery(url), json(await api.summary()));
      case "neighbors": {
        const m = only("GET");
        if (m) return m;
        for (const k of url.searchParams.keys()) if (k !== "address") bad(`${k}: unknown query parameter (expected address)`);
        const a = url.searchParams.get("address");
        return json(await api.neighbors(a === null || a === "" ? undefined : checkAddress("address", a)));
      }
      case "rib": {
        const m = only("GET");
        if (m) return m;
        const q = parseRibQuery(url.searchParams);
        const format = parseRibFormat(url.searchParams);
        const { limit, ...query } = q;
        // The router checks the query before the first byte: its errors still get their status.
        const entries = await api.rib(query);
        const type = format === "ndjson" ? "application/x-ndjson" : "application/json";
        return new Response(ribBody(entries, format, limit), { headers: { "content-type": type, "cache-control": "no-store" } });
      }
      case "rib/mrt": {
        const m = only("GET");
        if (m) return m;
        for (const k of url.searchParams.keys()) if (k !== "family") bad(`${k}: unknown query parameter (expected family)`);
        const f = url.searchParams.get("family");
        if (f !== null && f !== "" && f !== "ipv4" && f !== "ipv6") bad(`family: "${f}" must be ipv4 or ipv6`);
        if (!api.ribMrt) return errorResponse(409, "this daemon cannot write MRT table dumps");
        const records = api.ribMrt(f === "ipv4" || f === "ipv6" ? f : undefined);
        const failed = (e: unknown) => log("error", `GET /v1/rib/mrt: the table walk failed, the answer is cut: ${(e as Error).message}`);
        return new Response(mrtBody(records, failed), { headers: { "content-type": "application/octet-stream", "cache-control": "no-store" } });
      }
      case "rib/summary":
        return only("GET") ?? (noQuery(url), json(await api.ribSummary()));
      case "fib": {
        const m = only("GET");
        if (m) return m;
        for (const k of url.searchParams.keys()) if (k !== "prefix") bad(`${k}: unknown query parameter (expected prefix)`);
        const p = url.searchParams.get("prefix");
        const entries = await api.fib(p === null || p === "" ? undefined : p);
        return new Response(ribBody(entries, "json"), { headers: { "content-type": "application/json", "cache-control": "no-store" } });
      }
      case "interfaces":
        return only("GET") ?? (noQuery(url), json(await api.interfaces()));
      case "bfd": {
        const m = only("GET");
        if (m) return m;
        noQuery(url);
        if (!api.bfdSessions) return errorResponse(409, "this daemon runs no BFD");
        return json(api.bfdSessions());
      }
      case "checks": {
        const m = only("GET");
        if (m) return m;
        noQuery(url);
        return json(api.checks ? api.checks() : []);
      }
      case "k8s": {
        const m = only("GET");
        if (m) return m;
        noQuery(url);
        if (!api.k8s) return errorResponse(409, "this daemon is not running under bgpctl watch-k8s (no Kubernetes state)");
        return json(api.k8s());
      }
      case "advertise": {
        const m = only("POST");
        if (m) return m;
        noQuery(url);
        return json(await api.advertise(await parseAdvertiseRequest(await readBody(req))));
      }
      case "withdraw": {
        const m = only("POST");
        if (m) return m;
        noQuery(url);
        return json(await api.withdraw(await parseWithdrawRequest(await readBody(req))));
      }
      case "peers": {
        const m = only("POST");
        if (m) return m;
        noQuery(url);
        await api.peerAdd(parsePeerAddRequest(await readBody(req)));
        return json({ ok: true });
      }
      case "reload": {
        const m = only("POST");
        if (m) return m;
        noQuery(url);
        const body = await readBody(req);
        checkKeys(body, []);
        return json(await api.reload());
      }
      case "shutdown": {
        const m = only("POST");
        if (m) return m;
        noQuery(url);
        checkKeys(await readBody(req), []);
        return json(await api.shutdown());
      }
      case "monitor":
        return only("GET") ?? monitor(req, url);
      case "metrics": {
        const m = only("GET");
        if (m) return m;
        noQuery(url);
        if (!opts.metrics) return errorResponse(409, "this daemon serves no metrics");
        return new Response(await opts.metrics(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8", "cache-control": "no-store" } });
      }
    }

    if (seg[0] === "checks" && seg.length === 2) {
      const m = only("POST");
      if (m) return m;
      noQuery(url);
      const body = await readBody(req);
      checkKeys(body, ["enabled"]);
      if (typeof body.enabled !== "boolean") bad(`enabled: ${JSON.stringify(body.enabled)} must be true or false`);
      if (!api.checkSetEnabled) return errorResponse(409, "this daemon runs no health checks");
      return json(api.checkSetEnabled(seg[1]!, body.enabled));
    }
    if (seg[0] === "peers" && (seg.length === 2 || seg.length === 3)) {
      const address = checkAddress("address", seg[1]);
      if (seg.length === 2) {
        const m = only("DELETE");
        if (m) return m;
        noQuery(url);
        await api.peerDelete(address);
        return json({ ok: true });
      }
      const action = seg[2];
      if (action === "up" || action === "down" || action === "reset") {
        const m = only("POST");
        if (m) return m;
        noQuery(url);
        const body = await readBody(req);
        if (action === "up") {
          checkKeys(body, []);
          await api.peerUp(address);
        } else if (action === "down") {
          checkKeys(body, ["message"]);
          if (body.message !== undefined) {
            const msg = checkString("message", body.message);
            // RFC 9003: at most 255 octets of UTF-8
            if (Buffer.byteLength(msg) > 255) bad(`message: longer than 255 bytes of UTF-8 (RFC 9003)`);
            await api.peerDown(address, msg);
          } else await api.peerDown(address);
        } else {
          checkKeys(body, ["soft"]);
          if (body.soft !== undefined) {
            if (body.soft !== "in" && body.soft !== "out") bad(`soft: ${JSON.stringify(body.soft)} must be "in" or "out"`);
            await api.peerReset(address, body.soft);
          } else await api.peerReset(address);
        }
        return json({ ok: true });
      }
    }
    return errorResponse(404, `no such route: ${method} ${url.pathname}`);
  }

  const serveOptions = {
    unix: socketPath,
    idleTimeout: opts.idleTimeout ?? 0,
    maxRequestBodySize: MAX_BODY,
    async fetch(req: Request): Promise<Response> {
      let url: URL;
      try {
        url = new URL(req.url);
      } catch {
        return errorResponse(400, "bad request URL");
      }
      try {
        return await route(req, url);
      } catch (e) {
        if (e instanceof RouterError) return errorResponse(ROUTER_ERROR_STATUS[e.kind], e.message);
        if (e instanceof ApiError) {
          const status = Number.isInteger(e.status) && e.status >= 400 && e.status <= 599 ? e.status : 500;
          return errorResponse(status, e.message);
        }
        return errorResponse(500, e instanceof Error ? e.message : String(e));
      }
    },
    error(e: Error): Response {
      return errorResponse(500, e.message);
    },
  };

  // Create the socket without group/other write access from the first moment, then set the wanted mode.
  const oldMask = process.umask(0o177);
  let server: ReturnType<typeof Bun.serve>;
  try {
    // The type definitions allow idleTimeout only with hostname/port, but Bun
    // applies it to Unix sockets too (without it, a quiet monitor stream is cut after 10 s).
    server = Bun.serve(serveOptions as unknown as Parameters<typeof Bun.serve>[0]);
  } catch (e) {
    throw new Error(`cannot listen on the control socket ${socketPath}: ${(e as Error).message}`);
  } finally {
    process.umask(oldMask);
  }
  chmodSync(socketPath, mode);
  const ino = lstatSync(socketPath).ino;

  let closed: Promise<void> | null = null;
  return {
    path: socketPath,
    close() {
      closed ??= (async () => {
        // End the monitor streams cleanly, give their last chunks a moment to
        // go out, then cut whatever is left.
        for (const m of [...monitors]) m.close();
        const graceful = server.stop(false);
        const timer = new Promise<void>((r) => setTimeout(r, 500).unref());
        await Promise.race([graceful, timer]);
        await server.stop(true);
        const st = statOrNull(socketPath);
        if (st && st.isSocket() && st.ino === ino) rmSync(socketPath, { force: true });
      })();
      return closed;
    },
  };
}
