/**
 * A list/watch reflector for one resource, the way client-go's works: a
 * paginated LIST fills a local cache (replaced only when the whole list
 * succeeded), then a WATCH from the list's resourceVersion keeps it current,
 * resumed from the last resourceVersion seen (events and bookmarks) when it
 * ends or the connection fails; a 410 Gone relists and hands subscribers the
 * exact difference. Failures back off exponentially with jitter (honouring
 * Retry-After); `stop()` ends everything promptly.
 *
 * Subscribers get batches, synchronously and in order: one event per watch
 * event, and after every (re)list all the differences between the old cache
 * and the new list in one batch (no batch when nothing differs). A list of
 * tens of thousands of objects is taken in and compared in time slices (the
 * cache is swapped in one step at the end).
 */
import { sliced } from "../core/slices.ts";
import { StringMap } from "../core/sharded-maps.ts";
import { KubeApiError, type KubeClient, type LogFn } from "./client.ts";
import { type K8sResourceStatus, type KubeObject, type Status, objectKey } from "./types.ts";

/** What to list and watch. */
export interface ResourceSpec {
  /** "nodes" (names the resource in logs and status). */
  name: string;
  /** "/api/v1/nodes" or "/apis/discovery.k8s.io/v1/endpointslices". */
  path: string;
  kind: string;
  labelSelector?: string;
  fieldSelector?: string;
}

export type ReflectorEvent<T> =
  | { type: "added"; object: T }
  | { type: "modified"; object: T; old: T }
  | { type: "deleted"; object: T };

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Growth per failure (default 2). */
  factor?: number;
  /** Relative jitter: the delay is scaled by a factor in [1 - jitter, 1 + jitter] (default 0.2), then capped at maxMs. */
  jitter?: number;
}

export interface ReflectorOptions {
  /** LIST page size (default 500). */
  pageSize?: number;
  /** Watch timeoutSeconds (default 240; must be below 290, under Bun's fetch idle timeout). */
  watchTimeoutSeconds?: number;
  /** Default 800 ms doubling to 30 s, jitter 0.2. */
  backoff?: BackoffOptions;
  log?: LogFn;
  /** Random source of the jitter (default Math.random). */
  random?: () => number;
  /** A watch that ends in under this with no event counts as an error (default 1000). */
  minWatchMs?: number;
  /** What of each object is kept (lib/k8s/trim.ts); default all of it. */
  transform?: (o: KubeObject) => KubeObject;
  /** Whether an update says nothing new (lib/k8s/trim.ts's sameObject): the cached object is kept and no one is told. Default: compared by resourceVersion only. */
  same?: (cached: KubeObject, next: KubeObject) => boolean;
}

/** Retry-After beyond this is not believed. */
const MAX_RETRY_AFTER_MS = 300_000;

/** Exponential back-off with jitter: `next()` gives the delay before the next attempt, `reset()` after a success. */
export class Backoff {
  readonly #initial: number;
  readonly #max: number;
  readonly #factor: number;
  readonly #jitter: number;
  readonly #random: () => number;
  #attempt = 0;

  constructor(opts: BackoffOptions, random: () => number = Math.random) {
    this.#initial = opts.initialMs;
    this.#max = opts.maxMs;
    this.#factor = opts.factor ?? 2;
    this.#jitter = opts.jitter ?? 0.2;
    this.#random = random;
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  /** The next delay in ms: initial·factor^n with jitter, capped at maxMs, and at least `minMs` (a Retry-After). */
  next(minMs = 0): number {
    const base = Math.min(this.#max, this.#initial * this.#factor ** this.#attempt);
    this.#attempt++;
    const jittered = base * (1 + this.#jitter * (2 * this.#random() - 1));
    return Math.max(Math.round(Math.min(this.#max, Math.max(0, jittered))), minMs);
  }

  reset(): void {
    this.#attempt = 0;
  }
}

type WatchOutcome = { kind: "ended" } | { kind: "gone"; why: string } | { kind: "failed"; error: unknown };

export class Reflector<T extends KubeObject> {
  readonly #client: KubeClient;
  readonly #spec: ResourceSpec;
  readonly #pageSize: number;
  readonly #watchTimeout: number;
  readonly #minWatchMs: number;
  readonly #log: LogFn;
  readonly #backoff: Backoff;
  readonly #ac = new AbortController();
  readonly #transform: ((o: T) => T) | undefined;
  readonly #same: ((cached: T, next: T) => boolean) | undefined;
  /** Updates that said nothing new (`same`). */
  #unchanged = 0;
  readonly #subs = new Set<(events: ReflectorEvent<T>[]) => void>();
  readonly #syncWaiters = new Set<(ok: boolean) => void>();
  /** By objectKey (a StringMap: tens of thousands of objects never rehash at once). */
  #cache = new StringMap<T>();
  #rv = "";
  #synced = false;
  #started = false;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #sleepTimer: ReturnType<typeof setTimeout> | undefined;
  #wake: (() => void) | undefined;
  #lists = 0;
  #watches = 0;
  #relists = 0;
  #errors = 0;
  /** Watch events received, by type (the metrics' bgpctl_k8s_watch_events_total). */
  readonly #watchEvents: Record<string, number> = { ADDED: 0, MODIFIED: 0, DELETED: 0, BOOKMARK: 0 };
  #lastError: string | null = null;

  constructor(client: KubeClient, spec: ResourceSpec, opts: ReflectorOptions = {}) {
    this.#client = client;
    this.#spec = spec;
    this.#pageSize = opts.pageSize ?? 500;
    this.#watchTimeout = opts.watchTimeoutSeconds ?? 240;
    if (!(this.#watchTimeout >= 1 && this.#watchTimeout < 290)) {
      throw new RangeError(`reflector ${spec.name}: watchTimeoutSeconds ${this.#watchTimeout} must be in [1, 290)`);
    }
    this.#minWatchMs = opts.minWatchMs ?? 1000;
    this.#transform = opts.transform as ((o: T) => T) | undefined;
    this.#same = opts.same as ((cached: T, next: T) => boolean) | undefined;
    this.#log = opts.log ?? (() => {});
    this.#backoff = new Backoff(opts.backoff ?? { initialMs: 800, maxMs: 30_000 }, opts.random);
  }

  /** Starts the list/watch loop (once). */
  start(): void {
    if (this.#started) return;
    if (this.#stopped) throw new Error(`reflector ${this.#spec.name}: start() after stop()`);
    this.#started = true;
    this.#loop = this.#run().catch((e) => this.#log("error", `${this.#spec.name}: reflector loop failed: ${text(e)}`));
  }

  /** Aborts the watch or list in flight and the back-off timer; resolves when the loop has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#ac.abort();
    clearTimeout(this.#sleepTimer);
    this.#wake?.();
    for (const w of this.#syncWaiters) w(false);
    this.#syncWaiters.clear();
    await this.#loop;
  }

  /** The first full LIST completed. */
  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves true once synced; false on timeout or stop. */
  waitSynced(timeoutMs?: number): Promise<boolean> {
    if (this.#synced) return Promise.resolve(true);
    if (this.#stopped) return Promise.resolve(false);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.#syncWaiters.delete(done);
        resolve(ok);
      };
      this.#syncWaiters.add(done);
      if (timeoutMs !== undefined) timer = setTimeout(() => done(false), timeoutMs);
    });
  }

  /** The cached object with this objectKey() ("ns/name" or "name"). */
  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  items(): T[] {
    return [...this.#cache.values()];
  }

  /** Adds a batch listener (see the module doc); returns unsubscribe. A listener that throws is logged. */
  subscribe(fn: (events: ReflectorEvent<T>[]) => void): () => void {
    this.#subs.add(fn);
    return () => {
      this.#subs.delete(fn);
    };
  }

  /** Counters for `bgpctl show k8s`: lists = full LISTs completed, relists = those after the first (410 Gone), watches = WATCH requests. */
  status(): K8sResourceStatus {
    return {
      resource: this.#spec.name,
      synced: this.#synced,
      objects: this.#cache.size,
      resourceVersion: this.#rv,
      lists: this.#lists,
      watches: this.#watches,
      relists: this.#relists,
      errors: this.#errors,
      lastError: this.#lastError,
      watchEvents: { ...this.#watchEvents },
      unchanged: this.#unchanged,
    };
  }

  // -------------------------------------------------------------------------

  async #run(): Promise<void> {
    let needList = true;
    while (!this.#stopped) {
      let delay = 0;
      let justListed = false;
      if (needList) {
        try {
          if (!(await this.#list())) break;
          needList = false;
          justListed = true;
        } catch (e) {
          if (this.#stopped) break;
          this.#failed(e, "list");
          await this.#sleep(this.#backoff.next(retryAfterMs(e)));
          continue;
        }
      }
      const start = performance.now();
      const { outcome, events } = await this.#watch();
      if (this.#stopped) break;
      const elapsed = performance.now() - start;
      const good = events > 0 || (elapsed >= this.#minWatchMs && !(outcome.kind === "failed" && outcome.error instanceof KubeApiError));
      if (good) this.#backoff.reset();
      if (outcome.kind === "ended" && !good) {
        this.#failed(new Error(`watch ended after ${Math.round(elapsed)} ms without any event`), "watch");
        delay = this.#backoff.next();
      } else if (outcome.kind === "gone") {
        this.#log("info", `${this.#spec.name}: watch from resourceVersion ${this.#rv} expired (${outcome.why}); relisting`);
        needList = true;
        if (!good && justListed) delay = this.#backoff.next(); // gone right after a list: don't spin
      } else if (outcome.kind === "failed") {
        this.#failed(outcome.error, "watch");
        delay = this.#backoff.next(retryAfterMs(outcome.error));
      }
      if (delay > 0) await this.#sleep(delay);
    }
  }

  /** One full paginated LIST, then the cache swap and the diff batch. False when stopped meanwhile. */
  async #list(): Promise<boolean> {
    const base: Record<string, string> = {};
    if (this.#spec.labelSelector) base.labelSelector = this.#spec.labelSelector;
    if (this.#spec.fieldSelector) base.fieldSelector = this.#spec.fieldSelector;
    for (let restarts = 0; ; restarts++) {
      // After the continue token expired twice, fall back to one unpaginated list (as client-go's pager does).
      const paged = restarts < 2 && this.#pageSize > 0;
      const items: T[] = [];
      let rv = "";
      let cont = "";
      try {
        do {
          const q: Record<string, string> = { ...base };
          if (paged) q.limit = String(this.#pageSize);
          if (cont) q.continue = cont;
          const page = await this.#client.list<T>(this.#spec.path, q, this.#ac.signal);
          if (this.#stopped) return false;
          if (!page || !Array.isArray(page.items)) throw new Error(`LIST ${this.#spec.path}: answer is not a list`);
          // Trimmed page by page: a list of whole objects is never held at once.
          const tr = this.#transform;
          if (tr) for (const o of page.items) items.push(o?.metadata?.name ? tr(o) : o);
          else items.push(...page.items);
          if (!rv) rv = page.metadata?.resourceVersion ?? "";
          cont = page.metadata?.continue ?? "";
        } while (cont);
      } catch (e) {
        if (cont && e instanceof KubeApiError && e.status === 410 && !this.#stopped) {
          this.#log("warn", `${this.#spec.name}: list continue token expired mid-list; restarting the list from scratch`);
          continue;
        }
        throw e;
      }
      if (!rv) throw new Error(`LIST ${this.#spec.path}: the list has no resourceVersion`);
      return await this.#replace(items, rv);
    }
  }

  /** Swap in a complete list (built and compared in slices; nothing else writes the cache meanwhile: no watch runs during a list). False when stopped meanwhile. */
  async #replace(items: T[], rv: string): Promise<boolean> {
    const next = new StringMap<T>();
    // Keys in the list's order (the batch follows it).
    const keys: string[] = [];
    await sliced(items, (o) => {
      if (!o?.metadata?.name) {
        this.#log("warn", `${this.#spec.name}: list item without metadata.name ignored`);
        return;
      }
      // (Already trimmed, as its page came: #list.)
      const k = objectKey(o);
      const old = this.#cache.get(k);
      if (!next.has(k)) keys.push(k);
      // Unchanged since the cache took it: the cached object stays (the caches downstream know it).
      next.set(k, old !== undefined && (old.metadata.resourceVersion === o.metadata.resourceVersion || this.#same?.(old, o)) ? old : o);
    });
    const batch: ReflectorEvent<T>[] = [];
    await sliced(keys, (k) => {
      const o = next.get(k)!;
      const old = this.#cache.get(k);
      if (!old) batch.push({ type: "added", object: o });
      else if (old !== o) batch.push({ type: "modified", object: o, old });
    });
    await sliced(this.#cache, ([k, old]) => {
      if (!next.has(k)) batch.push({ type: "deleted", object: old });
    });
    if (this.#stopped) return false;
    this.#cache = next;
    this.#rv = rv;
    this.#lists++;
    if (this.#synced) this.#relists++;
    const first = !this.#synced;
    this.#synced = true;
    this.#log(first ? "info" : "debug", `${this.#spec.name}: listed ${next.size} objects at resourceVersion ${rv} (${batch.length} changes)`);
    if (first) {
      for (const w of [...this.#syncWaiters]) w(true);
    }
    if (batch.length) this.#emit(batch);
    return true;
  }

  /** One watch from the last resourceVersion; never throws. `events` counts data and bookmark events. */
  async #watch(): Promise<{ outcome: WatchOutcome; events: number }> {
    const q: Record<string, string> = {
      resourceVersion: this.#rv,
      allowWatchBookmarks: "true",
      timeoutSeconds: String(this.#watchTimeout),
    };
    if (this.#spec.labelSelector) q.labelSelector = this.#spec.labelSelector;
    if (this.#spec.fieldSelector) q.fieldSelector = this.#spec.fieldSelector;
    this.#watches++;
    let events = 0;
    try {
      for await (const ev of this.#client.watch<T>(this.#spec.path, q, this.#ac.signal)) {
        if (this.#stopped) break;
        if (ev.type === "ERROR") {
          const s = ev.object as Partial<Status>;
          if (s.code === 410 || s.reason === "Expired" || s.reason === "Gone") {
            return { outcome: { kind: "gone", why: `ERROR event ${s.code ?? ""} ${s.reason ?? ""}`.trim() }, events };
          }
          const msg = `watch ERROR event ${s.code ?? "?"} ${s.reason ?? ""}${s.message ? `: ${s.message}` : ""}`;
          return { outcome: { kind: "failed", error: new Error(msg) }, events };
        }
        events++;
        if (ev.type in this.#watchEvents) this.#watchEvents[ev.type]!++;
        if (ev.type === "BOOKMARK") {
          const rv = ev.object?.metadata?.resourceVersion;
          if (rv) this.#rv = rv;
          continue;
        }
        if (ev.type === "ADDED" || ev.type === "MODIFIED" || ev.type === "DELETED") this.#apply(ev.type, ev.object);
        else this.#log("warn", `${this.#spec.name}: unknown watch event type ${String((ev as { type: unknown }).type)} ignored`);
      }
      return { outcome: { kind: "ended" }, events };
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 410) return { outcome: { kind: "gone", why: "410 Gone" }, events };
      return { outcome: { kind: "failed", error: e }, events };
    }
  }

  #apply(type: "ADDED" | "MODIFIED" | "DELETED", o: T): void {
    if (!o?.metadata?.name) {
      this.#log("warn", `${this.#spec.name}: ${type} event without metadata.name ignored`);
      return;
    }
    if (o.metadata.resourceVersion) this.#rv = o.metadata.resourceVersion;
    const key = objectKey(o);
    const old = this.#cache.get(key);
    if (type === "DELETED") {
      if (!old) return;
      this.#cache.delete(key);
      // What the cache held goes (what subscribers were told of).
      this.#emit([{ type: "deleted", object: old }]);
      return;
    }
    const t = this.#transform ? this.#transform(o) : o;
    if (old !== undefined && this.#same?.(old, t)) {
      this.#unchanged++;
      return;
    }
    this.#cache.set(key, t);
    this.#emit(old ? [{ type: "modified", object: t, old }] : [{ type: "added", object: t }]);
  }

  #emit(batch: ReflectorEvent<T>[]): void {
    for (const fn of [...this.#subs]) {
      try {
        fn(batch);
      } catch (e) {
        this.#log("error", `${this.#spec.name}: subscriber failed: ${text(e)}`);
      }
    }
  }

  #failed(e: unknown, what: "list" | "watch"): void {
    this.#errors++;
    const msg = text(e);
    this.#lastError = msg;
    const r = this.#spec.name;
    if (e instanceof KubeApiError && e.status === 401) {
      this.#log("error", `${r}: ${what} unauthorized (401): the API server rejected the credentials (expired or revoked token?); backing off, the token file is re-read: ${msg}`);
    } else if (e instanceof KubeApiError && e.status === 403) {
      this.#log("error", `${r}: ${what} forbidden (403): bgpctl needs RBAC get, list and watch on ${r}${groupOf(this.#spec.path)}; backing off: ${msg}`);
    } else {
      this.#log("warn", `${r}: ${what} failed, backing off: ${msg}`);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#stopped) return resolve();
      this.#wake = () => {
        this.#wake = undefined;
        resolve();
      };
      this.#sleepTimer = setTimeout(() => this.#wake?.(), ms);
    });
  }
}

function retryAfterMs(e: unknown): number {
  if (e instanceof KubeApiError && e.retryAfterSeconds !== undefined) return Math.min(e.retryAfterSeconds * 1000, MAX_RETRY_AFTER_MS);
  return 0;
}

function groupOf(path: string): string {
  const m = /^\/apis\/([^/]+)\//.exec(path);
  return m ? ` (API group ${m[1]})` : " (core API group)";
}

function text(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
