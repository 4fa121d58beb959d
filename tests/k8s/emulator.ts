/**
 * A Kubernetes API server emulator for tests (no real kube-apiserver can be
 * installed here). It follows the documented API semantics ("API Concepts":
 * resource versions, efficient detection of changes, watch bookmarks,
 * retrieving large results in chunks) for the resources bgpctl reads: Nodes,
 * Services, EndpointSlices, Secrets, Events and Namespaces.
 *
 * Used two ways:
 *  - in-process: `await KubeEmulator.start({...})`, then write objects with
 *    `create/apply/patch/delete` and inject faults (`compact`, `dropWatches`,
 *    `failNext`) while the client under test talks to `emu.url`;
 *  - as a process (`bun tests/k8s/emulator.ts --listen ADDR:PORT ...`, e.g.
 *    inside a network namespace): it prints `ready <url>` once listening, and
 *    tests drive it over its unix-socket control listener with
 *    `EmulatorControl`, which has the same methods (async).
 *
 * What it does, in short:
 *  - one global, monotonically increasing resourceVersion; every write gets
 *    the next one; an event log of the last `compactionWindow` events backs
 *    watch resume and consistent paginated lists (older → 410 Expired);
 *  - LIST with label/field selectors, `limit`/`continue` served from the
 *    snapshot of the first page; WATCH (chunked JSON lines) from a
 *    resourceVersion or with synthetic ADDED events, bookmarks, timeouts,
 *    selector transitions sent as ADDED/DELETED, ERROR 410 for too old RVs;
 *  - writes over HTTP (POST/PUT/PATCH merge/DELETE, `/status`);
 *  - discovery (`/version`, `/api`, `/apis`...) so kubectl works;
 *  - bearer-token and client-certificate authentication, TLS.
 *
 * Details a client may notice, all as a real API server does them: items of
 * a LIST carry no kind/apiVersion (GET and watch objects do); an update that
 * changes nothing keeps the resourceVersion and sends no event; Services get
 * defaults (type ClusterIP, an allocated 10.96.x.y cluster IP when none is
 * given, clusterIP/clusterIPs/ipFamilies kept in step, the cluster IP kept
 * on an update that omits it); Secret stringData is folded into data;
 * remainingItemCount is left out when a selector is used. Deviation: writes
 * to the main object also change `status` (the `/status` subresource is the
 * same object), so tests can set status.loadBalancer either way.
 *
 * Authentication: with `tokens` set, a TCP request needs one of them as a
 * bearer token, or (with `tls.clientCa`) a client certificate that verified
 * against that CA (the certificate is requested, not required, so clients
 * without one still connect). Without tokens nothing is checked.
 *
 * Also exported for tests: `EmulatorControl` (the same operations over the
 * unix socket of an emulator process), `WatchStream` (reads a watch
 * response event by event, bounded) and `resourcePath`.
 *
 * Built on node:http / node:https rather than Bun.serve: Bun.serve sends the
 * headers of a streamed response only with its first body byte (an idle
 * watch would leave the client's fetch pending), and it does not tell the
 * handler whether a client certificate verified. Bun's node:http has
 * `res.flushHeaders()` and node:https gives `req.socket.authorized`.
 * `dropWatches()` destroys the watch sockets (`req.socket.destroy()`): the
 * client sees ECONNRESET / a truncated chunked body.
 *
 * Stats count only the TCP (client-facing) listener; the unix-socket
 * listener is the test control plane (no auth, no injected failures, not
 * counted).
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { KubeObject, Status } from "../../lib/k8s/types.ts";

export interface EmulatorOptions {
  hostname?: string; // default "127.0.0.1"
  port?: number; // default 0 (ephemeral)
  /** PEM text; absent → plain http. clientCa: also accept client certificates signed by it as authentication (requested, not required). */
  tls?: { cert: string; key: string; clientCa?: string };
  /** Accepted bearer tokens; undefined or [] → no authentication required. */
  tokens?: string[];
  /** An additional plain-HTTP listener on this path, no auth (test control plane); same handler. */
  unixSocket?: string;
  /** How many most recent events are kept for watch resume / pagination; default 1000. */
  compactionWindow?: number;
  /** BOOKMARK cadence on watches with allowWatchBookmarks=true; default 1000. */
  bookmarkIntervalMs?: number;
  /** When the client gives no timeoutSeconds; default 1800. */
  defaultWatchTimeoutSeconds?: number;
}

export type ResourceName = "nodes" | "services" | "endpointslices" | "secrets" | "events" | "namespaces";

export interface EmulatorStats {
  lists: number;
  watches: number;
  activeWatches: number;
  unauthorized: number;
  gone: number;
  requests: number;
  bookmarks: number;
  watchRequests: { path: string; query: Record<string, string> }[];
}

// ---------------------------------------------------------------------------
// Resource table

interface ResourceInfo {
  name: ResourceName;
  singular: string;
  kind: string;
  group: string; // "" for core
  version: string;
  namespaced: boolean;
  shortNames: string[];
  hasStatus: boolean;
}

const RESOURCES: Record<ResourceName, ResourceInfo> = {
  nodes: { name: "nodes", singular: "node", kind: "Node", group: "", version: "v1", namespaced: false, shortNames: ["no"], hasStatus: true },
  services: { name: "services", singular: "service", kind: "Service", group: "", version: "v1", namespaced: true, shortNames: ["svc"], hasStatus: true },
  endpointslices: {
    name: "endpointslices",
    singular: "endpointslice",
    kind: "EndpointSlice",
    group: "discovery.k8s.io",
    version: "v1",
    namespaced: true,
    shortNames: [],
    hasStatus: false,
  },
  secrets: { name: "secrets", singular: "secret", kind: "Secret", group: "", version: "v1", namespaced: true, shortNames: [], hasStatus: false },
  events: { name: "events", singular: "event", kind: "Event", group: "", version: "v1", namespaced: true, shortNames: ["ev"], hasStatus: false },
  namespaces: { name: "namespaces", singular: "namespace", kind: "Namespace", group: "", version: "v1", namespaced: false, shortNames: ["ns"], hasStatus: true },
};
const RESOURCE_NAMES = Object.keys(RESOURCES) as ResourceName[];
const VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"];

function apiVersionOf(r: ResourceInfo): string {
  return r.group ? `${r.group}/${r.version}` : r.version;
}

/** The REST path of a collection (namespace given → that namespace) or of one object. */
export function resourcePath(resource: ResourceName, namespace?: string, name?: string): string {
  const r = RESOURCES[resource];
  const base = r.group ? `/apis/${r.group}/${r.version}` : `/api/${r.version}`;
  const ns = r.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  return `${base}${ns}/${resource}${name !== undefined ? `/${encodeURIComponent(name)}` : ""}`;
}

// ---------------------------------------------------------------------------
// Errors as metav1.Status

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  406: "NotAcceptable",
  409: "Conflict",
  410: "Gone",
  415: "UnsupportedMediaType",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
  504: "Timeout",
};

/** An API error; thrown by the in-process methods too (message as the server would say it). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly statusMetadata?: Record<string, unknown>,
  ) {
    super(message);
  }
  status(): Status {
    const s: Status = { kind: "Status", apiVersion: "v1", metadata: this.statusMetadata ?? {}, status: "Failure", message: this.message, reason: this.reason, code: this.code };
    if (this.details) s.details = this.details;
    return s;
  }
}

function statusOf(code: number, message: string, reason = REASONS[code] ?? (code >= 500 ? "InternalError" : "BadRequest")): Status {
  return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code };
}

function notFound(r: ResourceInfo, name: string): ApiError {
  return new ApiError(404, "NotFound", `${qualified(r)} "${name}" not found`, detailsOf(r, name));
}
function qualified(r: ResourceInfo): string {
  return r.group ? `${r.name}.${r.group}` : r.name;
}
function detailsOf(r: ResourceInfo, name: string): Record<string, unknown> {
  return r.group ? { name, group: r.group, kind: r.name } : { name, kind: r.name };
}
function badRequest(message: string): ApiError {
  return new ApiError(400, "BadRequest", message);
}

// ---------------------------------------------------------------------------
// Selectors

type LabelReq =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "exists" | "!exists" }
  | { key: string; op: "in" | "notin"; values: string[] };

const LABEL_KEY = String.raw`[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?`;
const LABEL_VALUE = String.raw`([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?`;

/** Parse a label selector (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma = AND). */
export function parseLabelSelector(s: string): LabelReq[] {
  const terms: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      terms.push(cur);
      cur = "";
    } else cur += ch;
  }
  terms.push(cur);
  const reqs: LabelReq[] = [];
  for (const raw of terms) {
    const t = raw.trim();
    if (t === "") {
      if (terms.length === 1) continue;
      throw badRequest(`unable to parse requirement: found '', expected: identifier`);
    }
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^!\\s*(${LABEL_KEY})$`).exec(t))) reqs.push({ key: m[1]!, op: "!exists" });
    else if ((m = new RegExp(`^(${LABEL_KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`).exec(t))) {
      const values = m[4]!.split(",").map((v) => v.trim());
      if (values.some((v) => !new RegExp(`^${LABEL_VALUE}$`).test(v))) throw badRequest(`unable to parse requirement: invalid label value in '${t}'`);
      reqs.push({ key: m[1]!, op: m[3] as "in" | "notin", values });
    } else if ((m = new RegExp(`^(${LABEL_KEY})\\s*(==|=|!=)\\s*(${LABEL_VALUE})$`).exec(t))) {
      reqs.push({ key: m[1]!, op: m[3] === "!=" ? "!=" : "=", value: m[4]! });
    } else if ((m = new RegExp(`^(${LABEL_KEY})$`).exec(t))) reqs.push({ key: m[1]!, op: "exists" });
    else throw badRequest(`unable to parse requirement: invalid label selector term '${t}'`);
  }
  return reqs;
}

function labelsMatch(reqs: LabelReq[], labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  for (const r of reqs) {
    const has = Object.prototype.hasOwnProperty.call(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case "=":
        if (!has || v !== r.value) return false;
        break;
      case "!=":
        if (has && v === r.value) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "!exists":
        if (has) return false;
        break;
      case "in":
        if (!has || !r.values.includes(v!)) return false;
        break;
      case "notin":
        if (has && r.values.includes(v!)) return false;
        break;
    }
  }
  return true;
}

interface FieldReq {
  field: "metadata.name" | "metadata.namespace";
  neg: boolean;
  value: string;
}

/** Parse a field selector; only metadata.name and metadata.namespace are supported (as for every resource). */
export function parseFieldSelector(s: string): FieldReq[] {
  const reqs: FieldReq[] = [];
  for (const raw of s.split(",")) {
    const t = raw.trim();
    if (t === "") continue;
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(t);
    if (!m) throw badRequest(`invalid selector: '${t}'; can't understand '${t}'`);
    const field = m[1]!.trim();
    if (field !== "metadata.name" && field !== "metadata.namespace") throw badRequest(`field label not supported: ${field}`);
    reqs.push({ field, neg: m[2] === "!=", value: m[3]!.trim() });
  }
  return reqs;
}

function fieldsMatch(reqs: FieldReq[], o: KubeObject): boolean {
  for (const r of reqs) {
    const v = r.field === "metadata.name" ? o.metadata.name : (o.metadata.namespace ?? "");
    if ((v === r.value) === r.neg) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------
// Small helpers

/** JSON merge patch (RFC 7386). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return structuredClone(patch);
  const out: Record<string, unknown> =
    target !== null && typeof target === "object" && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function canonical(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(",")}}`;
}

/** Same object apart from metadata.resourceVersion (a no-op update keeps the RV, as etcd3 storage does). */
function sameObject(a: KubeObject, b: KubeObject): boolean {
  const strip = (o: KubeObject) => ({ ...o, metadata: { ...o.metadata, resourceVersion: undefined } });
  return canonical(strip(a)) === canonical(strip(b));
}

function nowTimestamp(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function keyOf(ns: string | undefined, name: string): string {
  return ns ? `${ns}/${name}` : name;
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: "meta.k8s.io/v1", rv, start })).toString("base64");
}

function decodeContinue(tok: string): { rv: number; start: string } {
  try {
    const o = JSON.parse(Buffer.from(tok, "base64").toString("utf8")) as { v?: string; rv?: unknown; start?: unknown };
    if (o.v !== "meta.k8s.io/v1" || typeof o.rv !== "number" || typeof o.start !== "string") throw new Error("bad");
    return { rv: o.rv, start: o.start };
  } catch {
    throw badRequest(`continue key is not valid: ${tok.slice(0, 64)}`);
  }
}

function parseRv(s: string, what: string): number {
  if (!/^\d+$/.test(s)) throw badRequest(`invalid ${what}: ${JSON.stringify(s)}`);
  return Number(s);
}

// ---------------------------------------------------------------------------
// The emulator

interface StoredEvent {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  resource: ResourceName;
  key: string;
  /** New state (ADDED/MODIFIED), or the last state with the deletion RV (DELETED). */
  object: KubeObject;
  /** State before the event; undefined for ADDED. */
  prev: KubeObject | undefined;
}

interface Watcher {
  resource: ResourceInfo;
  namespace: string | undefined;
  labels: LabelReq[];
  fields: FieldReq[];
  res: http.ServerResponse;
  socket: Socket;
  timers: ReturnType<typeof setTimeout>[];
  tcp: boolean;
  closed: boolean;
  /** Events at or below this RV are not sent (a watch from a future RV waits for it). */
  minRv: number;
}

interface FailRule {
  path: RegExp;
  remaining: number;
  status: number;
  retryAfterSeconds: number | undefined;
}

type Listener = "tcp" | "unix";

const BODY_LIMIT = 8 << 20;

export class KubeEmulator {
  readonly url: string;
  private rv = 1000;
  /** Events with rv > compactedRv are all in `events` (oldest first). */
  private compactedRv = 1000;
  private events: StoredEvent[] = [];
  private store = new Map<ResourceName, Map<string, KubeObject>>(RESOURCE_NAMES.map((r) => [r, new Map()]));
  private watchers = new Set<Watcher>();
  private failRules: FailRule[] = [];
  private nextClusterIp = 1;
  private readonly counters: EmulatorStats = {
    lists: 0,
    watches: 0,
    activeWatches: 0,
    unauthorized: 0,
    gone: 0,
    requests: 0,
    bookmarks: 0,
    watchRequests: [],
  };
  private stopped = false;

  private constructor(
    private readonly opts: Required<Pick<EmulatorOptions, "compactionWindow" | "bookmarkIntervalMs" | "defaultWatchTimeoutSeconds">> & EmulatorOptions,
    private readonly tcp: http.Server,
    private readonly unix: http.Server | undefined,
    private readonly sockets: Set<Socket>,
    url: string,
  ) {
    this.url = url;
  }

  static async start(opts: EmulatorOptions = {}): Promise<KubeEmulator> {
    const o = {
      ...opts,
      compactionWindow: opts.compactionWindow ?? 1000,
      bookmarkIntervalMs: opts.bookmarkIntervalMs ?? 1000,
      defaultWatchTimeoutSeconds: opts.defaultWatchTimeoutSeconds ?? 1800,
    };
    const hostname = opts.hostname ?? "127.0.0.1";
    let self: KubeEmulator | undefined;
    const handler = (listener: Listener) => (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (!self) {
        res.writeHead(503).end();
        return;
      }
      self.handle(listener, req, res).catch((e) => {
        try {
          if (!res.headersSent) self!.sendStatus(res, statusOf(500, `internal error: ${String(e)}`), listener === "tcp");
          else res.destroy();
        } catch {
          /* socket gone */
        }
      });
    };
    const tcp = opts.tls
      ? https.createServer(
          {
            cert: opts.tls.cert,
            key: opts.tls.key,
            ...(opts.tls.clientCa ? { ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: false } : {}),
          },
          handler("tcp"),
        )
      : http.createServer(handler("tcp"));
    const unix = opts.unixSocket ? http.createServer(handler("unix")) : undefined;
    const sockets = new Set<Socket>();
    for (const s of [tcp, unix]) {
      if (!s) continue;
      s.requestTimeout = 0;
      s.timeout = 0;
      s.on("connection", (sock: Socket) => {
        sockets.add(sock);
        sock.on("close", () => sockets.delete(sock));
      });
    }
    const port = await new Promise<number>((resolve, reject) => {
      tcp.once("error", reject);
      tcp.listen(opts.port ?? 0, hostname, () => {
        tcp.off("error", reject);
        resolve((tcp.address() as { port: number }).port);
      });
    });
    if (unix && opts.unixSocket) {
      if (existsSync(opts.unixSocket)) rmSync(opts.unixSocket, { force: true });
      const path = opts.unixSocket;
      await new Promise<void>((resolve, reject) => {
        unix.once("error", reject);
        unix.listen(path, () => {
          unix.off("error", reject);
          resolve();
        });
      });
    }
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    self = new KubeEmulator(o, tcp, unix, sockets, `${opts.tls ? "https" : "http"}://${host}:${port}`);
    return self;
  }

  // -------------------------------------------------------------------------
  // Public, in-process API

  get resourceVersion(): string {
    return String(this.rv);
  }

  get stats(): EmulatorStats {
    return { ...this.counters, activeWatches: this.tcpWatchCount(), watchRequests: this.counters.watchRequests.map((w) => ({ path: w.path, query: { ...w.query } })) };
  }

  create<T extends KubeObject>(resource: ResourceName, obj: T): T {
    return structuredClone(this.doCreate(RESOURCES[resource], obj, undefined, false)) as T;
  }

  apply<T extends KubeObject>(resource: ResourceName, obj: T): T {
    const r = RESOURCES[resource];
    const ns = r.namespaced ? (obj.metadata.namespace ?? "default") : undefined;
    return structuredClone(this.doUpdate(r, ns, obj.metadata.name, obj, { createIfMissing: true, checkRv: false })) as T;
  }

  patch<T extends KubeObject>(resource: ResourceName, namespace: string | undefined, name: string, patch: unknown): T {
    return structuredClone(this.doPatch(RESOURCES[resource], namespace, name, patch)) as T;
  }

  delete(resource: ResourceName, namespace: string | undefined, name: string): boolean {
    const r = RESOURCES[resource];
    if (!this.store.get(resource)!.has(keyOf(r.namespaced ? namespace : undefined, name))) return false;
    this.doDelete(r, namespace, name);
    return true;
  }

  get<T extends KubeObject>(resource: ResourceName, namespace: string | undefined, name: string): T | undefined {
    const r = RESOURCES[resource];
    const o = this.store.get(resource)!.get(keyOf(r.namespaced ? namespace : undefined, name));
    return o ? (structuredClone(o) as T) : undefined;
  }

  list<T extends KubeObject>(resource: ResourceName): T[] {
    return [...this.store.get(resource)!.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => structuredClone(o) as T);
  }

  compact(): void {
    this.events = [];
    this.compactedRv = this.rv;
  }

  dropWatches(): number {
    let n = 0;
    for (const w of [...this.watchers]) {
      n++;
      this.closeWatch(w, true);
    }
    return n;
  }

  failNext(path: RegExp, count: number, status: number, retryAfterSeconds?: number): void {
    if (count > 0) this.failRules.push({ path, remaining: count, status, retryAfterSeconds });
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const w of [...this.watchers]) this.closeWatch(w, true);
    const closeServer = (s: http.Server | undefined) =>
      s
        ? new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 3000);
            s.close(() => {
              clearTimeout(t);
              resolve();
            });
            (s as { closeAllConnections?: () => void }).closeAllConnections?.();
          })
        : Promise.resolve();
    for (const sock of this.sockets) sock.destroy();
    await Promise.all([closeServer(this.tcp), closeServer(this.unix)]);
    if (this.opts.unixSocket) rmSync(this.opts.unixSocket, { force: true });
  }

  // -------------------------------------------------------------------------
  // Storage

  private tcpWatchCount(): number {
    let n = 0;
    for (const w of this.watchers) if (w.tcp) n++;
    return n;
  }

  /** Fill kind/apiVersion, check name/namespace, apply the API server's defaulting. */
  private normalize(r: ResourceInfo, input: KubeObject, ns: string | undefined, old: KubeObject | undefined): KubeObject {
    if (input === null || typeof input !== "object" || Array.isArray(input)) throw badRequest("the body of the request was in an unknown format");
    const o = structuredClone(input) as KubeObject & Record<string, unknown>;
    if (!o.metadata || typeof o.metadata !== "object") o.metadata = { name: "" };
    if (o.kind !== undefined && o.kind !== r.kind) throw badRequest(`the kind of the object (${String(o.kind)}) does not match the resource (${r.kind})`);
    o.kind = r.kind;
    o.apiVersion = apiVersionOf(r);
    if (r.namespaced) o.metadata.namespace = ns;
    else delete o.metadata.namespace;
    if (!o.metadata.name || typeof o.metadata.name !== "string") throw new ApiError(422, "Invalid", `${r.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    if (old) {
      o.metadata.uid = old.metadata.uid;
      o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    } else {
      o.metadata.uid = randomUUID();
      o.metadata.creationTimestamp = nowTimestamp();
    }
    if (r.name === "secrets") {
      const s = o as { data?: Record<string, string>; stringData?: Record<string, string> };
      if (s.stringData) {
        s.data = { ...(s.data ?? {}) };
        for (const [k, v] of Object.entries(s.stringData)) s.data[k] = Buffer.from(String(v)).toString("base64");
        delete s.stringData;
      }
      if (!("type" in o)) o.type = "Opaque";
    }
    if (r.name === "services") this.defaultService(o as KubeObject & { spec?: Record<string, unknown> }, old as (KubeObject & { spec?: Record<string, unknown> }) | undefined);
    if (r.name === "namespaces") {
      const n = o as { status?: { phase?: string } };
      n.status = { phase: "Active", ...(n.status ?? {}) };
    }
    // Empty maps are omitted when the real server serializes (omitempty).
    if (o.metadata.labels && Object.keys(o.metadata.labels).length === 0) delete o.metadata.labels;
    if (o.metadata.annotations && Object.keys(o.metadata.annotations).length === 0) delete o.metadata.annotations;
    // kind and apiVersion first, as served.
    const { kind, apiVersion, ...rest } = o;
    return { kind, apiVersion, ...rest } as KubeObject;
  }

  /** Service defaulting: type, clusterIP/clusterIPs kept in step (and kept from the old object on update), allocation, ipFamilies. */
  private defaultService(o: KubeObject & { spec?: Record<string, unknown> }, old: (KubeObject & { spec?: Record<string, unknown> }) | undefined): void {
    const spec = (o.spec ??= {});
    spec.type ??= "ClusterIP";
    if (spec.type === "ExternalName") {
      delete spec.clusterIP;
      delete spec.clusterIPs;
      return;
    }
    if (spec.clusterIP === undefined && spec.clusterIPs === undefined && old?.spec && old.spec.type !== "ExternalName") {
      if (old.spec.clusterIP !== undefined) spec.clusterIP = old.spec.clusterIP;
      if (old.spec.clusterIPs !== undefined) spec.clusterIPs = structuredClone(old.spec.clusterIPs);
    }
    const ips = spec.clusterIPs as string[] | undefined;
    if (spec.clusterIP === undefined && ips?.length) spec.clusterIP = ips[0];
    if (spec.clusterIP === undefined || spec.clusterIP === "") {
      // From 10.96.128.0/17, away from the low addresses tests pick by hand.
      const n = this.nextClusterIp++;
      spec.clusterIP = `10.96.${128 + (Math.floor(n / 256) % 128)}.${n % 256}`;
    }
    if (!ips?.length) spec.clusterIPs = [spec.clusterIP];
    if (spec.clusterIP !== "None" && spec.ipFamilies === undefined) {
      spec.ipFamilies = (spec.clusterIPs as string[]).map((ip) => (ip.includes(":") ? "IPv6" : "IPv4"));
    }
  }

  private commit(r: ResourceInfo, key: string, next: KubeObject | undefined, prev: KubeObject | undefined): KubeObject {
    const rv = ++this.rv;
    const map = this.store.get(r.name)!;
    let ev: StoredEvent;
    if (next) {
      next.metadata.resourceVersion = String(rv);
      map.set(key, next);
      ev = { rv, type: prev ? "MODIFIED" : "ADDED", resource: r.name, key, object: next, prev };
    } else {
      const last = structuredClone(prev!);
      last.metadata.resourceVersion = String(rv);
      map.delete(key);
      ev = { rv, type: "DELETED", resource: r.name, key, object: last, prev };
    }
    this.events.push(ev);
    while (this.events.length > Math.max(0, this.opts.compactionWindow)) this.compactedRv = this.events.shift()!.rv;
    for (const w of [...this.watchers]) this.deliver(w, ev);
    return ev.object;
  }

  private doCreate(r: ResourceInfo, obj: KubeObject, pathNs: string | undefined, fromHttp: boolean): KubeObject {
    const input = structuredClone(obj) as KubeObject;
    if (input?.metadata && typeof input.metadata === "object") {
      if (fromHttp && input.metadata.resourceVersion) throw badRequest("resourceVersion should not be set on objects to be created");
      delete input.metadata.resourceVersion;
      if (!input.metadata.name && typeof (input.metadata as { generateName?: unknown }).generateName === "string") {
        input.metadata.name = (input.metadata as { generateName?: string }).generateName + Math.random().toString(36).slice(2, 7);
      }
    }
    let ns: string | undefined;
    if (r.namespaced) {
      const bodyNs = input?.metadata?.namespace;
      if (pathNs !== undefined && bodyNs && bodyNs !== pathNs) {
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
      ns = pathNs ?? bodyNs ?? "default";
    }
    const o = this.normalize(r, input, ns, undefined);
    const key = keyOf(ns, o.metadata.name);
    if (this.store.get(r.name)!.has(key)) {
      throw new ApiError(409, "AlreadyExists", `${qualified(r)} "${o.metadata.name}" already exists`, detailsOf(r, o.metadata.name));
    }
    return this.commit(r, key, o, undefined);
  }

  private doUpdate(
    r: ResourceInfo,
    ns: string | undefined,
    name: string,
    obj: KubeObject,
    opt: { createIfMissing: boolean; checkRv: boolean },
  ): KubeObject {
    ns = r.namespaced ? (ns ?? "default") : undefined;
    const key = keyOf(ns, name);
    const old = this.store.get(r.name)!.get(key);
    const meta = obj?.metadata;
    if (meta && typeof meta === "object") {
      if (meta.name !== undefined && meta.name !== name) throw badRequest(`the name of the object (${meta.name}) does not match the name on the URL (${name})`);
      if (r.namespaced && meta.namespace && meta.namespace !== ns) {
        throw badRequest("the namespace of the provided object does not match the namespace sent on the request");
      }
    }
    if (!old) {
      if (!opt.createIfMissing) throw notFound(r, name);
      const input = structuredClone(obj);
      input.metadata = { ...(input.metadata ?? {}), name };
      delete input.metadata.resourceVersion;
      return this.commit(r, key, this.normalize(r, input, ns, undefined), undefined);
    }
    if (opt.checkRv && meta?.resourceVersion && meta.resourceVersion !== old.metadata.resourceVersion) throw conflict(r, name);
    const input = structuredClone(obj);
    input.metadata = { ...(input.metadata ?? {}), name };
    const next = this.normalize(r, input, ns, old);
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    if (sameObject(next, old)) return old;
    return this.commit(r, key, next, old);
  }

  private doPatch(r: ResourceInfo, ns: string | undefined, name: string, patch: unknown): KubeObject {
    ns = r.namespaced ? ns : undefined;
    const key = keyOf(ns, name);
    const old = this.store.get(r.name)!.get(key);
    if (!old) throw notFound(r, name);
    if (patch === null || typeof patch !== "object" || Array.isArray(patch)) throw badRequest("the body of the merge patch must be a JSON object");
    const merged = mergePatch(old, patch) as KubeObject;
    if (!merged.metadata || merged.metadata.name !== name) throw badRequest("metadata.name cannot be changed by a patch");
    if (r.namespaced && merged.metadata.namespace !== ns) throw badRequest("metadata.namespace cannot be changed by a patch");
    const prv = (patch as { metadata?: { resourceVersion?: unknown } }).metadata?.resourceVersion;
    if (typeof prv === "string" && prv !== old.metadata.resourceVersion) throw conflict(r, name);
    const next = this.normalize(r, merged, ns, old);
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    if (sameObject(next, old)) return old;
    return this.commit(r, key, next, old);
  }

  private doDelete(r: ResourceInfo, ns: string | undefined, name: string): KubeObject {
    ns = r.namespaced ? ns : undefined;
    const key = keyOf(ns, name);
    const old = this.store.get(r.name)!.get(key);
    if (!old) throw notFound(r, name);
    return this.commit(r, key, undefined, old);
  }

  /** The objects of a resource as of `rv` (undoing newer retained events); throws Expired when history is gone. */
  private snapshot(r: ResourceInfo, rv: number, expired: () => ApiError): Map<string, KubeObject> {
    const map = new Map(this.store.get(r.name)!);
    if (rv >= this.rv) return map;
    if (rv < this.compactedRv) throw expired();
    for (let i = this.events.length - 1; i >= 0; i--) {
      const ev = this.events[i]!;
      if (ev.rv <= rv) break;
      if (ev.resource !== r.name) continue;
      if (ev.prev) map.set(ev.key, ev.prev);
      else map.delete(ev.key);
    }
    return map;
  }

  // -------------------------------------------------------------------------
  // HTTP

  private sendJson(res: http.ServerResponse, code: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { "Content-Type": "application/json", "Content-Length": String(Buffer.byteLength(text)), "Cache-Control": "no-cache, private", ...headers });
    res.end(text);
  }

  private sendStatus(res: http.ServerResponse, s: Status, counted: boolean, headers: Record<string, string> = {}): void {
    if (counted && s.code === 410) this.counters.gone++;
    this.sendJson(res, s.code, s, headers);
  }

  private authorized(req: http.IncomingMessage): boolean {
    const tokens = this.opts.tokens ?? [];
    if (tokens.length === 0) return true;
    const h = req.headers.authorization;
    if (h) {
      const m = /^Bearer\s+(.+)$/i.exec(h.trim());
      // As the real server's union authenticator: any method that succeeds wins.
      if (m && tokens.includes(m[1]!.trim())) return true;
    }
    if (this.opts.tls?.clientCa && (req.socket as Socket & { authorized?: boolean }).authorized === true) return true;
    return false;
  }

  private async readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req as AsyncIterable<Buffer>) {
      size += c.length;
      if (size > BODY_LIMIT) throw new ApiError(413, "RequestEntityTooLarge", "request entity too large");
      chunks.push(typeof c === "string" ? Buffer.from(c) : c);
    }
    return Buffer.concat(chunks).toString("utf8");
  }

  private async readJson(req: http.IncomingMessage): Promise<unknown> {
    const text = await this.readBody(req);
    try {
      return JSON.parse(text);
    } catch (e) {
      throw badRequest(`the body of the request could not be decoded as JSON: ${String(e)}`);
    }
  }

  private async handle(listener: Listener, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const tcp = listener === "tcp";
    const url = new URL(req.url ?? "/", "http://emulator");
    const path = url.pathname;
    const method = (req.method ?? "GET").toUpperCase();
    if (tcp) {
      this.counters.requests++;
      if (!this.authorized(req)) {
        this.counters.unauthorized++;
        req.resume();
        this.sendStatus(res, statusOf(401, "Unauthorized", "Unauthorized"), true);
        return;
      }
      const rule = this.failRules.find((f) => f.remaining > 0 && f.path.test(path));
      if (rule) {
        rule.remaining--;
        this.failRules = this.failRules.filter((f) => f.remaining > 0);
        req.resume();
        const headers: Record<string, string> = rule.retryAfterSeconds !== undefined ? { "Retry-After": String(rule.retryAfterSeconds) } : {};
        const msg =
          rule.status === 429
            ? "Too many requests, please try again later."
            : rule.status === 410
              ? "The resourceVersion for the provided request is too old."
              : `injected failure (${rule.status})`;
        const reason = rule.status === 410 ? "Expired" : undefined;
        const s = statusOf(rule.status, msg, reason);
        if (rule.retryAfterSeconds !== undefined) s.details = { retryAfterSeconds: rule.retryAfterSeconds };
        this.sendStatus(res, s, true, headers);
        return;
      }
    } else if (path.startsWith("/_emulator/")) {
      await this.handleControl(method, path, req, res);
      return;
    }
    try {
      await this.route(tcp, method, path, url.searchParams, req, res);
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      req.resume();
      this.sendStatus(res, e.status(), tcp);
    }
  }

  private async handleControl(method: string, path: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      if (method === "POST" && path === "/_emulator/compact") {
        req.resume();
        this.compact();
        this.sendJson(res, 200, { resourceVersion: this.resourceVersion });
      } else if (method === "POST" && path === "/_emulator/drop-watches") {
        req.resume();
        this.sendJson(res, 200, { dropped: this.dropWatches() });
      } else if (method === "POST" && path === "/_emulator/fail-next") {
        const b = (await this.readJson(req)) as { path?: string; flags?: string; count?: number; status?: number; retryAfterSeconds?: number };
        if (typeof b.path !== "string" || typeof b.count !== "number" || typeof b.status !== "number") throw badRequest("fail-next needs {path, count, status}");
        this.failNext(new RegExp(b.path, b.flags ?? ""), b.count, b.status, b.retryAfterSeconds ?? undefined);
        this.sendJson(res, 200, {});
      } else if (method === "GET" && path === "/_emulator/stats") {
        req.resume();
        this.sendJson(res, 200, { ...this.stats, resourceVersion: this.resourceVersion });
      } else {
        req.resume();
        this.sendStatus(res, statusOf(404, "the server could not find the requested resource", "NotFound"), false);
      }
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      this.sendStatus(res, e.status(), false);
    }
  }

  private discovery(path: string): unknown | undefined {
    const addr = this.tcp.address() as { port: number } | null;
    const serverAddress = `${this.opts.hostname ?? "127.0.0.1"}:${addr?.port ?? 0}`;
    const resourceList = (group: string) => ({
      kind: "APIResourceList",
      apiVersion: "v1",
      groupVersion: group ? `${group}/v1` : "v1",
      resources: RESOURCE_NAMES.map((n) => RESOURCES[n])
        .filter((r) => r.group === group)
        .flatMap((r) => [
          {
            name: r.name,
            singularName: r.singular,
            namespaced: r.namespaced,
            kind: r.kind,
            verbs: VERBS,
            ...(r.shortNames.length ? { shortNames: r.shortNames } : {}),
            storageVersionHash: Buffer.from(r.name).toString("base64").slice(0, 11),
          },
          ...(r.hasStatus ? [{ name: `${r.name}/status`, singularName: "", namespaced: r.namespaced, kind: r.kind, verbs: ["get", "patch", "update"] }] : []),
        ]),
    });
    const gv = { groupVersion: "discovery.k8s.io/v1", version: "v1" };
    const group = { name: "discovery.k8s.io", versions: [gv], preferredVersion: gv };
    switch (path.replace(/\/+$/, "") || "/") {
      case "/version":
        return {
          major: "1",
          minor: "30",
          gitVersion: "v1.30.0-bgpctl-emulator",
          gitCommit: "0000000000000000000000000000000000000000",
          gitTreeState: "clean",
          buildDate: "2024-04-17T00:00:00Z",
          goVersion: "go1.22.2",
          compiler: "gc",
          platform: "linux/amd64",
        };
      case "/api":
        return { kind: "APIVersions", versions: ["v1"], serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }] };
      case "/api/v1":
        return resourceList("");
      case "/apis":
        return { kind: "APIGroupList", apiVersion: "v1", groups: [group] };
      case "/apis/discovery.k8s.io":
        return { kind: "APIGroup", apiVersion: "v1", ...group };
      case "/apis/discovery.k8s.io/v1":
        return resourceList("discovery.k8s.io");
      default:
        return undefined;
    }
  }

  private async route(tcp: boolean, method: string, path: string, q: URLSearchParams, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      req.resume();
      res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8" }).end("ok");
      return;
    }
    const disc = this.discovery(path);
    if (disc !== undefined) {
      req.resume();
      if (method !== "GET") throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
      this.sendJson(res, 200, disc);
      return;
    }
    const target = parseTarget(path);
    if (!target) throw new ApiError(404, "NotFound", "the server could not find the requested resource");
    const { r, ns, name } = target;
    const isWatch = q.get("watch") === "true" || q.get("watch") === "1";
    if (name === undefined) {
      if (method === "GET") {
        if (isWatch) return this.watch(tcp, r, ns, q, path, req, res, undefined);
        return this.listHttp(tcp, r, ns, q, res);
      }
      if (method === "POST") {
        if (r.namespaced && ns === undefined) throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
        const body = (await this.readJson(req)) as KubeObject;
        this.sendJson(res, 201, this.doCreate(r, body, ns, true));
        return;
      }
      throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
    switch (method) {
      case "GET": {
        if (isWatch) return this.watch(tcp, r, ns, q, path, req, res, name);
        req.resume();
        const o = this.store.get(r.name)!.get(keyOf(ns, name));
        if (!o) throw notFound(r, name);
        this.sendJson(res, 200, o);
        return;
      }
      case "PUT": {
        const body = (await this.readJson(req)) as KubeObject;
        this.sendJson(res, 200, this.doUpdate(r, ns, name, body, { createIfMissing: false, checkRv: true }));
        return;
      }
      case "PATCH": {
        const ct = String(req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        if (ct !== "application/merge-patch+json" && ct !== "application/strategic-merge-patch+json") {
          req.resume();
          throw new ApiError(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json (got ${ct || "none"})`);
        }
        const body = await this.readJson(req);
        this.sendJson(res, 200, this.doPatch(r, ns, name, body));
        return;
      }
      case "DELETE": {
        req.resume();
        this.sendJson(res, 200, this.doDelete(r, ns, name));
        return;
      }
      default:
        req.resume();
        throw new ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
  }

  private listHttp(tcp: boolean, r: ResourceInfo, ns: string | undefined, q: URLSearchParams, res: http.ServerResponse): void {
    if (tcp) this.counters.lists++;
    const labels = parseLabelSelector(q.get("labelSelector") ?? "");
    const fields = parseFieldSelector(q.get("fieldSelector") ?? "");
    const limitStr = q.get("limit") ?? "";
    const limit = limitStr === "" ? 0 : Number(limitStr);
    if (!Number.isInteger(limit) || limit < 0) throw badRequest(`invalid limit: ${limitStr}`);
    const cont = q.get("continue") ?? "";
    const rvParam = q.get("resourceVersion") ?? "";
    const rvMatch = q.get("resourceVersionMatch") ?? "";
    let snapRv = this.rv;
    let start = "";
    const tooOld = () =>
      new ApiError(
        410,
        "Expired",
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, " +
          "or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an " +
          "inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.",
        undefined,
        { continue: encodeContinue(this.rv, start) },
      );
    if (cont) {
      if (rvParam !== "" && rvParam !== "0") throw badRequest("specifying resource version is not allowed when using continue");
      if (rvMatch) throw badRequest("resourceVersionMatch is forbidden when continue is provided");
      const c = decodeContinue(cont);
      snapRv = c.rv;
      start = c.start;
    } else if (rvMatch === "Exact") {
      snapRv = parseRv(rvParam, "resourceVersion");
      if (snapRv > this.rv) throw new ApiError(504, "Timeout", `Too large resource version: ${snapRv}, current: ${this.rv}`);
    } else if (rvMatch !== "" && rvMatch !== "NotOlderThan") {
      throw badRequest(`resourceVersionMatch: Unsupported value: "${rvMatch}"`);
    } else if (rvParam !== "" && rvParam !== "0") {
      parseRv(rvParam, "resourceVersion");
    }
    const map =
      cont || rvMatch === "Exact"
        ? this.snapshot(r, snapRv, cont ? tooOld : () => new ApiError(410, "Expired", `too old resource version: ${snapRv} (${this.compactedRv})`))
        : this.store.get(r.name)!;
    const all = [...map.entries()]
      .filter(([k, o]) => k >= start && (ns === undefined || o.metadata.namespace === ns) && labelsMatch(labels, o.metadata.labels) && fieldsMatch(fields, o))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    const page = limit > 0 ? all.slice(0, limit) : all;
    const meta: { resourceVersion: string; continue?: string; remainingItemCount?: number } = { resourceVersion: String(snapRv) };
    if (limit > 0 && all.length > limit) {
      meta.continue = encodeContinue(snapRv, `${page[page.length - 1]![0]}\u0000`);
      if (labels.length === 0 && fields.length === 0) meta.remainingItemCount = all.length - limit;
    }
    const items = page.map(([, o]) => {
      // Items of a list carry no kind/apiVersion, as the real server serves built-in types.
      const { kind: _k, apiVersion: _a, ...rest } = o as KubeObject & Record<string, unknown>;
      return rest;
    });
    this.sendJson(res, 200, { kind: `${r.kind}List`, apiVersion: apiVersionOf(r), metadata: meta, items });
  }

  // -------------------------------------------------------------------------
  // Watch

  private watch(
    tcp: boolean,
    r: ResourceInfo,
    ns: string | undefined,
    q: URLSearchParams,
    path: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string | undefined,
  ): void {
    req.resume();
    if (tcp) {
      this.counters.watches++;
      this.counters.watchRequests.push({ path, query: Object.fromEntries(q.entries()) });
    }
    const labels = parseLabelSelector(q.get("labelSelector") ?? "");
    const fields = parseFieldSelector(q.get("fieldSelector") ?? "");
    if (name !== undefined) fields.push({ field: "metadata.name", neg: false, value: name });
    const rvParam = q.get("resourceVersion") ?? "";
    const fromRv = rvParam === "" || rvParam === "0" ? undefined : parseRv(rvParam, "resourceVersion");
    const bookmarks = q.get("allowWatchBookmarks") === "true" || q.get("allowWatchBookmarks") === "1";
    const sendInitial = q.get("sendInitialEvents");
    if (sendInitial !== null && sendInitial !== "") {
      if (!bookmarks) throw new ApiError(422, "Invalid", "allowWatchBookmarks: Required value: sendInitialEvents requires setting allowWatchBookmarks to true");
      if ((q.get("resourceVersionMatch") ?? "") !== "NotOlderThan") {
        throw new ApiError(422, "Invalid", "resourceVersionMatch: Unsupported value: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan");
      }
    }
    const initialEvents = sendInitial === "true" || (sendInitial === null && fromRv === undefined);
    const tsStr = q.get("timeoutSeconds") ?? "";
    let timeoutSeconds = tsStr === "" ? 0 : Number(tsStr);
    if (!Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) throw badRequest(`invalid timeoutSeconds: ${tsStr}`);
    if (timeoutSeconds === 0) timeoutSeconds = this.opts.defaultWatchTimeoutSeconds;

    res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked", "Cache-Control": "no-cache, private" });
    res.flushHeaders();
    const w: Watcher = { resource: r, namespace: ns, labels, fields, res, socket: req.socket as Socket, timers: [], tcp, closed: false, minRv: fromRv ?? 0 };
    const write = (ev: unknown) => {
      if (!w.closed && !res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(ev)}\n`);
    };

    if (fromRv !== undefined && fromRv < this.compactedRv && sendInitial !== "true") {
      if (tcp) this.counters.gone++;
      write({ type: "ERROR", object: statusOf(410, `too old resource version: ${fromRv} (${this.compactedRv})`, "Expired") });
      res.end();
      return;
    }
    if (initialEvents) {
      const objs = [...this.store.get(r.name)!.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, o]) => o);
      for (const o of objs) if (this.matches(w, o)) write({ type: "ADDED", object: o });
      if (sendInitial === "true") {
        write(this.bookmark(r, { "k8s.io/initial-events-end": "true" }));
        if (tcp) this.counters.bookmarks++;
      }
    } else if (fromRv !== undefined) {
      for (const ev of this.events) if (ev.rv > fromRv) this.deliver(w, ev);
    }
    this.watchers.add(w);
    res.on("close", () => this.closeWatch(w, false));
    w.timers.push(
      setTimeout(() => {
        // Clean end of the stream, as the server's watch timeout does.
        this.closeWatch(w, false);
        if (!res.writableEnded && !res.destroyed) res.end();
      }, timeoutSeconds * 1000),
    );
    if (bookmarks && this.opts.bookmarkIntervalMs > 0) {
      w.timers.push(
        setInterval(() => {
          if (w.closed) return;
          write(this.bookmark(r));
          if (tcp) this.counters.bookmarks++;
        }, this.opts.bookmarkIntervalMs),
      );
    }
  }

  private bookmark(r: ResourceInfo, annotations?: Record<string, string>): unknown {
    return {
      type: "BOOKMARK",
      object: { kind: r.kind, apiVersion: apiVersionOf(r), metadata: { resourceVersion: this.resourceVersion, ...(annotations ? { annotations } : {}) } },
    };
  }

  private matches(w: Watcher, o: KubeObject): boolean {
    return (w.namespace === undefined || o.metadata.namespace === w.namespace) && labelsMatch(w.labels, o.metadata.labels) && fieldsMatch(w.fields, o);
  }

  /** Send one stored event to a watcher, turning selector transitions into ADDED/DELETED. */
  private deliver(w: Watcher, ev: StoredEvent): void {
    if (w.closed || ev.resource !== w.resource.name || ev.rv <= w.minRv) return;
    const nowM = ev.type !== "DELETED" && this.matches(w, ev.object);
    const wasM = ev.prev !== undefined && this.matches(w, ev.prev);
    let type: string | undefined;
    if (ev.type === "DELETED") type = wasM ? "DELETED" : undefined;
    else if (nowM) type = wasM ? "MODIFIED" : "ADDED";
    else if (wasM) type = "DELETED";
    if (!type) return;
    if (!w.res.writableEnded && !w.res.destroyed) w.res.write(`${JSON.stringify({ type, object: ev.object })}\n`);
  }

  private closeWatch(w: Watcher, abrupt: boolean): void {
    if (w.closed) return;
    w.closed = true;
    this.watchers.delete(w);
    for (const t of w.timers) clearTimeout(t as ReturnType<typeof setTimeout>);
    w.timers = [];
    if (abrupt) {
      // Tear the connection down mid-stream: no terminating chunk.
      w.socket.destroy();
      w.res.destroy();
    }
  }
}

function conflict(r: ResourceInfo, name: string): ApiError {
  return new ApiError(
    409,
    "Conflict",
    `Operation cannot be fulfilled on ${qualified(r)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    detailsOf(r, name),
  );
}

/** Map a REST path onto (resource, namespace, name); undefined when it names nothing we serve. */
function parseTarget(path: string): { r: ResourceInfo; ns: string | undefined; name: string | undefined; sub: string | undefined } | undefined {
  const seg = path.split("/").filter((s) => s.length > 0).map((s) => decodeURIComponent(s));
  let group: string;
  let rest: string[];
  if (seg[0] === "api" && seg[1] === "v1") {
    group = "";
    rest = seg.slice(2);
  } else if (seg[0] === "apis" && seg[1] === "discovery.k8s.io" && seg[2] === "v1") {
    group = "discovery.k8s.io";
    rest = seg.slice(3);
  } else return undefined;
  const inGroup = (n: string | undefined): ResourceInfo | undefined => {
    const r = n !== undefined ? RESOURCES[n as ResourceName] : undefined;
    return r && r.group === group ? r : undefined;
  };
  let ns: string | undefined;
  let r: ResourceInfo | undefined;
  let name: string | undefined;
  let sub: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3 && inGroup(rest[2])?.namespaced) {
    ns = rest[1];
    r = inGroup(rest[2]);
    name = rest[3];
    sub = rest[4];
    if (rest.length > 5) return undefined;
  } else {
    r = inGroup(rest[0]);
    name = rest[1];
    sub = rest[2];
    if (rest.length > 3) return undefined;
    // A namespaced resource is addressed across namespaces only as a collection.
    if (r?.namespaced && name !== undefined) return undefined;
  }
  if (!r) return undefined;
  if (sub !== undefined && (sub !== "status" || !r.hasStatus)) return undefined;
  return { r, ns, name, sub };
}

// ---------------------------------------------------------------------------
// Remote control (a KubeEmulator running as a process, over its unix socket)

/** Drives an emulator process over its unix-socket listener, with the in-process methods made async. */
export class EmulatorControl {
  constructor(readonly unixPath: string) {}

  private async call(method: string, path: string, body?: unknown, contentType = "application/json"): Promise<{ status: number; json: unknown }> {
    const r = await fetch(`http://localhost${path}`, {
      method,
      unix: this.unixPath,
      headers: body !== undefined ? { "Content-Type": contentType } : {},
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    const text = await r.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = text;
    }
    return { status: r.status, json };
  }

  private static fail(what: string, r: { status: number; json: unknown }): Error {
    const s = r.json as Partial<Status> | undefined;
    return new ApiError(r.status, s?.reason ?? REASONS[r.status] ?? "Unknown", `${what}: HTTP ${r.status}: ${s?.message ?? JSON.stringify(r.json)}`);
  }

  private static nsOf(resource: ResourceName, obj: KubeObject): string | undefined {
    return RESOURCES[resource].namespaced ? (obj.metadata.namespace ?? "default") : undefined;
  }

  async create<T extends KubeObject>(resource: ResourceName, obj: T): Promise<T> {
    const body = structuredClone(obj);
    delete body.metadata.resourceVersion;
    const r = await this.call("POST", resourcePath(resource, EmulatorControl.nsOf(resource, obj)), body);
    if (r.status !== 201) throw EmulatorControl.fail(`create ${resource} ${obj.metadata.name}`, r);
    return r.json as T;
  }

  async apply<T extends KubeObject>(resource: ResourceName, obj: T): Promise<T> {
    const body = structuredClone(obj);
    delete body.metadata.resourceVersion;
    const ns = EmulatorControl.nsOf(resource, obj);
    const r = await this.call("PUT", resourcePath(resource, ns, obj.metadata.name), body);
    if (r.status === 200) return r.json as T;
    if (r.status === 404) return this.create(resource, obj);
    throw EmulatorControl.fail(`apply ${resource} ${obj.metadata.name}`, r);
  }

  async patch<T extends KubeObject>(resource: ResourceName, namespace: string | undefined, name: string, patch: unknown): Promise<T> {
    const r = await this.call("PATCH", resourcePath(resource, namespace, name), patch, "application/merge-patch+json");
    if (r.status !== 200) throw EmulatorControl.fail(`patch ${resource} ${name}`, r);
    return r.json as T;
  }

  async delete(resource: ResourceName, namespace: string | undefined, name: string): Promise<boolean> {
    const r = await this.call("DELETE", resourcePath(resource, namespace, name));
    if (r.status === 200) return true;
    if (r.status === 404) return false;
    throw EmulatorControl.fail(`delete ${resource} ${name}`, r);
  }

  async get<T extends KubeObject>(resource: ResourceName, namespace: string | undefined, name: string): Promise<T | undefined> {
    const r = await this.call("GET", resourcePath(resource, namespace, name));
    if (r.status === 200) return r.json as T;
    if (r.status === 404) return undefined;
    throw EmulatorControl.fail(`get ${resource} ${name}`, r);
  }

  /** All objects of a resource (items of a list carry no kind/apiVersion, as from a real server). */
  async list<T extends KubeObject>(resource: ResourceName): Promise<T[]> {
    const r = await this.call("GET", resourcePath(resource));
    if (r.status !== 200) throw EmulatorControl.fail(`list ${resource}`, r);
    return (r.json as { items: T[] }).items;
  }

  async compact(): Promise<void> {
    const r = await this.call("POST", "/_emulator/compact");
    if (r.status !== 200) throw EmulatorControl.fail("compact", r);
  }

  async dropWatches(): Promise<number> {
    const r = await this.call("POST", "/_emulator/drop-watches");
    if (r.status !== 200) throw EmulatorControl.fail("drop-watches", r);
    return (r.json as { dropped: number }).dropped;
  }

  async failNext(path: RegExp, count: number, status: number, retryAfterSeconds?: number): Promise<void> {
    const r = await this.call("POST", "/_emulator/fail-next", { path: path.source, flags: path.flags, count, status, retryAfterSeconds });
    if (r.status !== 200) throw EmulatorControl.fail("fail-next", r);
  }

  /** The emulator's stats, plus its current resourceVersion. */
  async stats(): Promise<EmulatorStats & { resourceVersion: string }> {
    const r = await this.call("GET", "/_emulator/stats");
    if (r.status !== 200) throw EmulatorControl.fail("stats", r);
    return r.json as EmulatorStats & { resourceVersion: string };
  }
}

// ---------------------------------------------------------------------------
// A reader of watch streams, for tests

/** What `WatchStream.next` returns when the stream ended cleanly. */
export const WATCH_END = Symbol("watch end");

/**
 * Reads a watch response line by line. `next(ms)` gives the next event,
 * `WATCH_END` on a clean end, and throws on a network error or when nothing
 * comes within `ms`.
 */
export class WatchStream {
  private buf = "";
  private readonly dec = new TextDecoder();
  private pending: ReturnType<ReadableStreamDefaultReader<Uint8Array>["read"]> | undefined;
  private ended = false;
  private constructor(
    readonly response: Response,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly abort: AbortController,
  ) {}

  /** GET `url` (watch=true is up to the caller) with `init` (headers, tls, unix...). */
  static async open(url: string, init: RequestInit & Record<string, unknown> = {}, headersTimeoutMs = 5000): Promise<WatchStream> {
    const abort = new AbortController();
    const t = setTimeout(() => abort.abort(new Error(`watch: no response headers within ${headersTimeoutMs} ms`)), headersTimeoutMs);
    try {
      const r = await fetch(url, { ...init, signal: abort.signal, timeout: false } as RequestInit);
      if (!r.body) throw new Error(`watch: HTTP ${r.status} without a body`);
      return new WatchStream(r, r.body.getReader() as ReadableStreamDefaultReader<Uint8Array>, abort);
    } finally {
      clearTimeout(t);
    }
  }

  async next(ms = 5000): Promise<{ type: string; object: any } | typeof WATCH_END> {
    const deadline = Date.now() + ms;
    for (let i = 0; i < 100_000; i++) {
      const nl = this.buf.indexOf("\n");
      if (nl >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line.trim() === "") continue;
        return JSON.parse(line);
      }
      if (this.ended) return WATCH_END;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`watch: no event within ${ms} ms`);
      this.pending ??= this.reader.read();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), left)));
      const x = await Promise.race([this.pending, timeout]).finally(() => clearTimeout(timer));
      if (x === "timeout") continue;
      this.pending = undefined;
      if (x.done) {
        this.ended = true;
        if (this.buf.trim() !== "") throw new Error(`watch: stream ended inside a line: ${this.buf.slice(0, 200)}`);
        continue;
      }
      this.buf += this.dec.decode(x.value, { stream: true });
    }
    throw new Error("watch: too many reads");
  }

  /** Events until `pred` matches one (returned last), bounded by `ms` overall. */
  async until(pred: (ev: { type: string; object: any }) => boolean, ms = 5000): Promise<{ type: string; object: any }[]> {
    const deadline = Date.now() + ms;
    const seen: { type: string; object: any }[] = [];
    for (let i = 0; i < 10_000; i++) {
      const ev = await this.next(Math.max(1, deadline - Date.now()));
      if (ev === WATCH_END) throw new Error(`watch ended before the expected event; got ${JSON.stringify(seen.map((e) => e.type))}`);
      seen.push(ev);
      if (pred(ev)) return seen;
    }
    throw new Error("watch: too many events");
  }

  close(): void {
    this.abort.abort();
    this.reader.cancel().catch(() => {});
  }
}

// ---------------------------------------------------------------------------
// CLI

function usage(msg: string): never {
  process.stderr.write(
    `${msg}\nusage: bun tests/k8s/emulator.ts --listen ADDR:PORT [--cert F --key F] [--client-ca F] [--token T]... [--unix PATH] ` +
      `[--compaction N] [--bookmark-ms N] [--watch-timeout S]\n`,
  );
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  const o: EmulatorOptions = {};
  let cert: string | undefined;
  let key: string | undefined;
  let clientCa: string | undefined;
  const tokens: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--listen": {
        const v = val();
        const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(v);
        if (!m) usage(`bad --listen ${v}`);
        o.hostname = m[1] ?? m[2]!;
        o.port = Number(m[3]);
        break;
      }
      case "--cert":
        cert = readFileSync(val(), "utf8");
        break;
      case "--key":
        key = readFileSync(val(), "utf8");
        break;
      case "--client-ca":
        clientCa = readFileSync(val(), "utf8");
        break;
      case "--token":
        tokens.push(val());
        break;
      case "--unix":
        o.unixSocket = val();
        break;
      case "--compaction":
        o.compactionWindow = Number(val());
        break;
      case "--bookmark-ms":
        o.bookmarkIntervalMs = Number(val());
        break;
      case "--watch-timeout":
        o.defaultWatchTimeoutSeconds = Number(val());
        break;
      default:
        usage(`unknown argument ${a}`);
    }
  }
  if (o.port === undefined) usage("--listen is required");
  if ((cert === undefined) !== (key === undefined)) usage("--cert and --key go together");
  if (clientCa && !cert) usage("--client-ca needs --cert/--key");
  if (cert && key) o.tls = { cert, key, ...(clientCa ? { clientCa } : {}) };
  if (tokens.length) o.tokens = tokens;
  const emu = await KubeEmulator.start(o);
  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    const hard = setTimeout(() => process.exit(0), 3000);
    emu.stop().finally(() => {
      clearTimeout(hard);
      process.exit(0);
    });
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdout.write(`ready ${emu.url}\n`);
}

if (import.meta.main) {
  main(process.argv.slice(2)).catch((e) => {
    process.stderr.write(`emulator: ${e instanceof Error ? e.stack : String(e)}\n`);
    process.exit(1);
  });
}
