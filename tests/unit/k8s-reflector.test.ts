/**
 * Tests of the list/watch reflector (lib/k8s/reflector.ts): the back-off
 * math with an injected random source; stream edge cases against a small
 * scripted HTTP server in this file (truncated streams, ERROR events, ADDED
 * for known keys, a continue token expiring mid-list, empty watches,
 * throwing subscribers, 403s); and the client-go behaviours against the API
 * emulator (tests/k8s/emulator.ts) over TLS: paginated lists, watch resume
 * without relist, bookmarks, 410 relist with an exact diff, reconnect after
 * dropped watches, Retry-After, token rotation, waitSynced and a prompt stop.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeClient } from "../../lib/k8s/client.ts";
import { Backoff, Reflector, type ReflectorEvent, type ReflectorOptions, type ResourceSpec } from "../../lib/k8s/reflector.ts";
import type { EndpointSlice, KubeObject, Node } from "../../lib/k8s/types.ts";
import { type EmulatorOptions, KubeEmulator } from "../k8s/emulator.ts";
import { node } from "../k8s/fixtures.ts";
import { sameObject, trimNode } from "../../lib/k8s/trim.ts";
import { type Pki, makePki } from "../k8s/pki.ts";
import { waitFor } from "../support/wait.ts";

const tmp = mkdtempSync(join(tmpdir(), "bgpctl-k8s-reflector-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

type Level = "debug" | "info" | "warn" | "error";
function logger() {
  const lines: { level: Level; msg: string }[] = [];
  const log = (level: Level, msg: string) => {
    lines.push({ level, msg });
  };
  return { lines, log, has: (re: RegExp, level?: Level) => lines.some((l) => re.test(l.msg) && (!level || l.level === level)) };
}

const NODES: ResourceSpec = { name: "nodes", path: "/api/v1/nodes", kind: "Node" };

function mkNode(name: string, rv: string, labels?: Record<string, string>): Node {
  return { apiVersion: "v1", kind: "Node", metadata: { name, ...(rv ? { resourceVersion: rv } : {}), ...(labels ? { labels } : {}) } };
}

/** Short one-line summary of a batch: "added a", "modified b 3->4", "deleted c". */
function summary(batch: ReflectorEvent<Node>[]): string[] {
  return batch.map((e) =>
    e.type === "modified" ? `modified ${e.object.metadata.name} ${e.old.metadata.resourceVersion}->${e.object.metadata.resourceVersion}` : `${e.type} ${e.object.metadata.name}`,
  );
}

// ---------------------------------------------------------------------------
// Back-off

describe("Backoff", () => {
  test("doubling from initial to the cap, no jitter at random() = 0.5", () => {
    const b = new Backoff({ initialMs: 800, maxMs: 30_000 }, () => 0.5);
    expect(Array.from({ length: 8 }, () => b.next())).toEqual([800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]);
    expect(b.attempts).toBe(8);
    b.reset();
    expect(b.next()).toBe(800);
  });

  test("jitter spans [1-j, 1+j] and never exceeds the cap", () => {
    const lo = new Backoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2 }, () => 0);
    const hi = new Backoff({ initialMs: 1000, maxMs: 5000, jitter: 0.2 }, () => 1);
    expect([lo.next(), lo.next(), lo.next(), lo.next()]).toEqual([800, 1600, 3200, 4000]);
    expect([hi.next(), hi.next(), hi.next(), hi.next()]).toEqual([1200, 2400, 4800, 5000]);
    const r = new Backoff({ initialMs: 800, maxMs: 30_000 }, Math.random);
    for (let i = 0; i < 200; i++) {
      const d = r.next();
      expect(d).toBeGreaterThanOrEqual(i === 0 ? 640 : 0);
      expect(d).toBeLessThanOrEqual(30_000);
    }
  });

  test("factor and Retry-After: max(backoff, retryAfter)", () => {
    const b = new Backoff({ initialMs: 100, maxMs: 10_000, factor: 3, jitter: 0 }, () => 0.9);
    expect(b.next()).toBe(100);
    expect(b.next(2000)).toBe(2000); // Retry-After wins
    expect(b.next(500)).toBe(900); // back-off wins
    expect(b.next(60_000)).toBe(60_000); // Retry-After may exceed the cap
  });
});

// ---------------------------------------------------------------------------
// Scripted HTTP server for stream edge cases

type Handler = (url: URL) => Response;

/** Plain-HTTP server answering from queues: one for LISTs, one for WATCHes; an open, silent watch when the queue is empty. */
class Scripted {
  readonly requests: URL[] = [];
  readonly lists: Handler[] = [];
  readonly watches: Handler[] = [];
  open = 0;
  readonly #server: ReturnType<typeof Bun.serve>;
  listFallback: Handler = () => listOf([], "1");

  constructor() {
    this.#server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      idleTimeout: 0,
      fetch: (req) => {
        const u = new URL(req.url);
        this.requests.push(u);
        if (u.searchParams.get("watch") === "true") return (this.watches.shift() ?? (() => this.#hang()))(u);
        return (this.lists.shift() ?? this.listFallback)(u);
      },
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.#server.port}`;
  }

  watchRequests(): URL[] {
    return this.requests.filter((u) => u.searchParams.get("watch") === "true");
  }

  listRequests(): URL[] {
    return this.requests.filter((u) => u.searchParams.get("watch") !== "true");
  }

  /** A watch that sends one bookmark-free blank line (so the headers go out) and then nothing, until cancelled. */
  #hang(): Response {
    this.open++;
    const self = this;
    return new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode("\n"));
        },
        cancel() {
          self.open--;
        },
      }),
      { headers: { "content-type": "application/json" } },
    );
  }

  stop(): void {
    this.#server.stop(true);
  }
}

function listOf(items: Node[], rv: string, cont?: string): Response {
  return Response.json({ kind: "NodeList", apiVersion: "v1", metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) }, items });
}

function status(code: number, reason: string, message: string, headers?: Record<string, string>): Response {
  return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", code, reason, message }, { status: code, headers });
}

/** A watch answer streaming these lines (objects are JSON-encoded, strings sent raw), then closing. */
function stream(lines: (object | string)[]): Handler {
  return () => {
    const text = lines.map((l) => (typeof l === "string" ? l : `${JSON.stringify(l)}\n`)).join("");
    return new Response(text, { headers: { "content-type": "application/json" } });
  };
}

const ev = (type: string, o: Node) => ({ type, object: o });

const fast: ReflectorOptions = { backoff: { initialMs: 20, maxMs: 100, jitter: 0 }, minWatchMs: 0, random: () => 0.5 };

describe("Reflector against a scripted server", () => {
  let srv: Scripted;
  let refl: Reflector<Node> | undefined;
  afterEach(async () => {
    await refl?.stop();
    refl = undefined;
    srv?.stop();
  });

  function start(opts: ReflectorOptions = {}, spec: ResourceSpec = NODES) {
    const lg = logger();
    const client = new KubeClient({ server: srv.url, insecure: false, source: "test" }, { log: lg.log });
    const r = new Reflector<Node>(client, spec, { ...fast, log: lg.log, ...opts });
    const batches: string[][] = [];
    r.subscribe((b) => batches.push(summary(b)));
    refl = r;
    r.start();
    return { r, lg, batches };
  }

  test("list then watch: query parameters, events in order, ADDED for a known key is modified, DELETED unknown ignored", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("a", "5"), mkNode("b", "6")], "10"));
    srv.watches.push(
      stream([
        ev("ADDED", mkNode("a", "11")),
        ev("MODIFIED", mkNode("c", "12")),
        ev("DELETED", mkNode("zz", "13")),
        ev("DELETED", mkNode("b", "14")),
        { type: "BOOKMARK", object: { kind: "Node", apiVersion: "v1", metadata: { resourceVersion: "20" } } },
      ]),
    );
    const { r, batches } = start({ watchTimeoutSeconds: 7 }, { ...NODES, labelSelector: "role=bgp", fieldSelector: "metadata.name!=x" });
    await waitFor(() => srv.watchRequests().length >= 2, { timeoutMs: 5000, what: "the re-watch" });
    expect(batches).toEqual([["added a", "added b"], ["modified a 5->11"], ["added c"], ["deleted b"]]);
    const [l] = srv.listRequests();
    expect(l!.pathname).toBe("/api/v1/nodes");
    expect(Object.fromEntries(l!.searchParams)).toEqual({ labelSelector: "role=bgp", fieldSelector: "metadata.name!=x", limit: "500" });
    const [w1, w2] = srv.watchRequests();
    expect(Object.fromEntries(w1!.searchParams)).toEqual({
      resourceVersion: "10",
      allowWatchBookmarks: "true",
      timeoutSeconds: "7",
      labelSelector: "role=bgp",
      fieldSelector: "metadata.name!=x",
      watch: "true",
    });
    expect(w2!.searchParams.get("resourceVersion")).toBe("20"); // bookmark advanced it
    expect(r.items().map((n) => n.metadata.name).sort()).toEqual(["a", "c"]);
    expect(r.get("a")!.metadata.resourceVersion).toBe("11");
    expect(r.status()).toMatchObject({ resource: "nodes", synced: true, objects: 2, resourceVersion: "20", lists: 1, watches: 2, relists: 0, errors: 0 });
  });

  test("a truncated stream is an error: back off, resume from the last RV, no relist", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("a", "5")], "10"));
    srv.watches.push(stream([ev("ADDED", mkNode("b", "11")), '{"type":"ADDED","object":{"metadata":{"na']));
    const { r, lg } = start();
    await waitFor(() => srv.watchRequests().length >= 2, { timeoutMs: 5000, what: "the resumed watch" });
    expect(srv.watchRequests()[1]!.searchParams.get("resourceVersion")).toBe("11");
    expect(srv.listRequests().length).toBe(1);
    expect(r.status().errors).toBe(1);
    expect(r.status().lastError).toContain("watch stream ended mid-event");
    expect(lg.has(/nodes: watch failed, backing off: .*ended mid-event/, "warn")).toBe(true);
    expect(r.get("b")).toBeDefined();
  });

  test("malformed JSON line: error naming the line, resume from the last RV", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([], "10"));
    srv.watches.push(stream([ev("ADDED", mkNode("b", "11")), "{this is not json}\n", ev("ADDED", mkNode("c", "12"))]));
    const { r } = start();
    await waitFor(() => srv.watchRequests().length >= 2, { timeoutMs: 5000, what: "the resumed watch" });
    expect(r.status().lastError).toContain('malformed watch event "{this is not json}"');
    expect(srv.watchRequests()[1]!.searchParams.get("resourceVersion")).toBe("11");
    expect(r.get("c")).toBeUndefined();
  });

  test("ERROR event (not 410): logged, counted, re-watch from the same RV without relist", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([], "10"));
    srv.watches.push(stream([{ type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", code: 500, reason: "InternalError", message: "etcd hiccup" } }]));
    const { r, lg } = start();
    await waitFor(() => srv.watchRequests().length >= 2, { timeoutMs: 5000, what: "the re-watch" });
    expect(srv.watchRequests()[1]!.searchParams.get("resourceVersion")).toBe("10");
    expect(srv.listRequests().length).toBe(1);
    expect(r.status().errors).toBe(1);
    expect(lg.has(/watch ERROR event 500 InternalError: etcd hiccup/)).toBe(true);
  });

  test("ERROR 410 event: relist, one batch with exactly the differences", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("keep", "1"), mkNode("mod", "2"), mkNode("del", "3")], "10"));
    srv.watches.push(stream([{ type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", code: 410, reason: "Expired", message: "too old resource version: 10 (50)" } }]));
    srv.lists.push(() => listOf([mkNode("keep", "1"), mkNode("mod", "40"), mkNode("new", "41")], "50"));
    const { r, batches, lg } = start();
    await waitFor(() => srv.watchRequests().length >= 2, { timeoutMs: 5000, what: "the watch after the relist" });
    expect(batches).toEqual([["added keep", "added mod", "added del"], ["modified mod 2->40", "added new", "deleted del"]]);
    expect(srv.watchRequests()[1]!.searchParams.get("resourceVersion")).toBe("50");
    expect(r.status()).toMatchObject({ lists: 2, relists: 1, errors: 0, resourceVersion: "50", objects: 3 });
    expect(lg.has(/expired .*relisting/)).toBe(true);
  });

  test("HTTP 410 on the watch request also relists", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("a", "1")], "10"));
    srv.watches.push(() => status(410, "Expired", "too old resource version"));
    srv.lists.push(() => listOf([mkNode("a", "1")], "60"));
    const { r, batches } = start();
    await waitFor(() => srv.watchRequests().length >= 2, { timeoutMs: 5000, what: "the watch after the relist" });
    expect(batches).toEqual([["added a"]]); // nothing changed: no batch
    expect(r.status()).toMatchObject({ lists: 2, relists: 1, resourceVersion: "60" });
  });

  test("continue token expiring mid-list restarts the list; the cache is swapped once, complete", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("a", "1"), mkNode("b", "2")], "10", "tok1"));
    srv.lists.push(() => status(410, "Expired", "The provided continue parameter is too old"));
    srv.lists.push(() => listOf([mkNode("a", "1"), mkNode("b", "2")], "30", "tok2"));
    srv.lists.push(() => listOf([mkNode("c", "3")], "30"));
    const { r, batches, lg } = start({ pageSize: 2 });
    await waitFor(() => r.synced, { timeoutMs: 5000, what: "sync" });
    expect(batches).toEqual([["added a", "added b", "added c"]]);
    const lists = srv.listRequests().map((u) => u.searchParams.get("continue"));
    expect(lists).toEqual([null, "tok1", null, "tok2"]);
    expect(r.status()).toMatchObject({ lists: 1, relists: 0, resourceVersion: "30", objects: 3, errors: 0 });
    expect(lg.has(/continue token expired mid-list; restarting/)).toBe(true);
  });

  test("a list failing on a later page leaves the cache alone and is retried after back-off", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("a", "1")], "10", "t"));
    srv.lists.push(() => status(500, "InternalError", "boom"));
    srv.lists.push(() => listOf([mkNode("a", "1")], "11", "t"));
    srv.lists.push(() => listOf([mkNode("b", "2")], "11"));
    const { r, batches } = start({ pageSize: 1 });
    expect(await r.waitSynced(3000)).toBe(true);
    expect(batches).toEqual([["added a", "added b"]]);
    expect(r.status()).toMatchObject({ errors: 1, lists: 1 });
    expect(r.status().lastError).toContain("500 InternalError: boom");
  });

  test("a watch that ends at once with no event counts as an error and backs off", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([], "10"));
    srv.watches.push(stream([]), stream([]));
    const { r } = start({ minWatchMs: 1000, backoff: { initialMs: 150, maxMs: 1000, jitter: 0 } });
    await waitFor(() => srv.watchRequests().length >= 3, { timeoutMs: 5000, what: "three watches" });
    expect(r.status().errors).toBe(2);
    expect(r.status().lastError).toMatch(/watch ended after \d+ ms without any event/);
    expect(srv.listRequests().length).toBe(1);
  });

  test("403: a clear RBAC error, back-off, then recovery", async () => {
    srv = new Scripted();
    srv.lists.push(() => status(403, "Forbidden", 'nodes is forbidden: User "system:serviceaccount:kube-system:bgpctl" cannot list resource "nodes"'));
    srv.lists.push(() => listOf([mkNode("a", "1")], "10"));
    const { r, lg } = start();
    expect(await r.waitSynced(3000)).toBe(true);
    expect(lg.has(/nodes: list forbidden \(403\): bgpctl needs RBAC get, list and watch on nodes \(core API group\)/, "error")).toBe(true);
    expect(r.status().errors).toBe(1);
  });

  test("a throwing subscriber is logged and does not stop the others or the loop", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([mkNode("a", "1")], "10"));
    srv.watches.push(stream([ev("ADDED", mkNode("b", "11"))]));
    const lg = logger();
    const r = new Reflector<Node>(new KubeClient({ server: srv.url, insecure: false, source: "t" }), NODES, { ...fast, log: lg.log });
    refl = r;
    const seen: string[] = [];
    r.subscribe(() => {
      throw new Error("consumer bug");
    });
    const unsub = r.subscribe((b) => seen.push(...summary(b)));
    r.start();
    await waitFor(() => seen.length >= 2, { timeoutMs: 5000, what: "both events" });
    expect(seen).toEqual(["added a", "added b"]);
    expect(lg.has(/nodes: subscriber failed: consumer bug/, "error")).toBe(true);
    unsub();
  });

  test("stop() during a silent watch and during back-off is prompt", async () => {
    srv = new Scripted();
    srv.lists.push(() => listOf([], "10"));
    const { r } = start();
    await waitFor(() => srv.open === 1, { timeoutMs: 5000, what: "an open watch" });
    let t = performance.now();
    await r.stop();
    expect(performance.now() - t).toBeLessThan(500);
    await waitFor(() => srv.open === 0, { timeoutMs: 5000, what: "the server to see the watch closed" });

    srv.listFallback = () => status(503, "ServiceUnavailable", "down");
    const { r: r2 } = start({ backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await waitFor(() => r2.status().errors === 1, { timeoutMs: 5000, what: "the first failure" });
    t = performance.now();
    await r2.stop();
    expect(performance.now() - t).toBeLessThan(200);
    expect(await r2.waitSynced(10)).toBe(false);
  });

  test("waitSynced: false on timeout or stop, true once listed", async () => {
    srv = new Scripted();
    srv.listFallback = () => status(503, "ServiceUnavailable", "down");
    const { r } = start();
    expect(await r.waitSynced(100)).toBe(false);
    expect(r.synced).toBe(false);
    const pending = r.waitSynced();
    srv.listFallback = () => listOf([], "10");
    expect(await pending).toBe(true);
    expect(r.synced).toBe(true);
    expect(await r.waitSynced(0)).toBe(true);
  });

  test("watchTimeoutSeconds must stay below 290", () => {
    const client = new KubeClient({ server: "http://127.0.0.1:1", insecure: false, source: "t" });
    expect(() => new Reflector<Node>(client, NODES, { watchTimeoutSeconds: 300 })).toThrow(/must be in \[1, 290\)/);
  });
});

// ---------------------------------------------------------------------------
// Against the API emulator (TLS on 127.0.0.1, bearer token)

describe("Reflector against the emulator", () => {
  let pki: Pki;
  let emu: KubeEmulator | undefined;
  let refl: Reflector<KubeObject> | undefined;
  let tokenFile: string;

  beforeAll(() => {
    pki = makePki(join(tmp, "pki"), { serverIPs: ["127.0.0.1"] });
    tokenFile = join(tmp, "token");
  });
  afterEach(async () => {
    await refl?.stop();
    refl = undefined;
    await emu?.stop();
    emu = undefined;
  });

  async function startEmu(opts: EmulatorOptions = {}): Promise<KubeEmulator> {
    emu = await KubeEmulator.start({ hostname: "127.0.0.1", tls: { cert: pki.serverCert, key: pki.serverKey }, tokens: ["tok-a"], ...opts });
    return emu;
  }

  const deleted: KubeObject[] = [];
  function reflector<T extends KubeObject = Node>(opts: ReflectorOptions = {}, spec: ResourceSpec = NODES, token = "tok-a") {
    writeFileSync(tokenFile, token);
    const lg = logger();
    const client = new KubeClient({ server: emu!.url, ca: pki.caCert, tokenFile, insecure: false, source: "test" }, { log: lg.log });
    const r = new Reflector<T>(client, spec, { ...fast, backoff: { initialMs: 20, maxMs: 200, jitter: 0 }, log: lg.log, ...opts });
    const batches: string[][] = [];
    r.subscribe((b) => {
      batches.push(summary(b as unknown as ReflectorEvent<Node>[]));
      for (const ev of b) if (ev.type === "deleted") deleted.push(ev.object);
    });
    refl = r as unknown as Reflector<KubeObject>;
    return { r, lg, batches };
  }

  const seed = (e: KubeEmulator, ...names: string[]) => names.map((n) => e.create("nodes", mkNode(n, "")));

  test("paginated LIST (pageSize 2 over 5 objects), one batch, waitSynced", async () => {
    const e = await startEmu();
    seed(e, "n1", "n2", "n3", "n4", "n5");
    const { r, batches } = reflector({ pageSize: 2 });
    expect(await r.waitSynced(20)).toBe(false); // not started
    r.start();
    expect(await r.waitSynced(5000)).toBe(true);
    expect(e.stats.lists).toBe(3);
    expect(batches).toEqual([["added n1", "added n2", "added n3", "added n4", "added n5"]]);
    expect(r.status()).toMatchObject({ resource: "nodes", synced: true, objects: 5, lists: 1, relists: 0, errors: 0, resourceVersion: e.resourceVersion });
    await waitFor(() => e.stats.watches === 1, { timeoutMs: 5000, what: "the watch" });
    expect(e.stats.watchRequests[0]!.query).toMatchObject({ resourceVersion: e.resourceVersion, allowWatchBookmarks: "true", timeoutSeconds: "240", watch: "true" });
  });

  test("waitSynced stays false while the LIST fails, true once it completes", async () => {
    const e = await startEmu();
    seed(e, "a");
    e.failNext(/^\/api\/v1\/nodes$/, 3, 503);
    const { r } = reflector({ backoff: { initialMs: 100, maxMs: 100, jitter: 0 } });
    r.start();
    expect(await r.waitSynced(150)).toBe(false);
    expect(r.synced).toBe(false);
    expect(r.items()).toEqual([]);
    expect(await r.waitSynced(5000)).toBe(true);
    expect(r.status()).toMatchObject({ errors: 3, lists: 1, objects: 1 });
    expect(r.status().lastError).toContain("503");
  });

  test("a watch ending at its timeout is resumed from the last RV, without a relist", async () => {
    const e = await startEmu({ bookmarkIntervalMs: 0 });
    seed(e, "a", "b");
    const { r, batches } = reflector({ watchTimeoutSeconds: 1, minWatchMs: 200 });
    r.start();
    await r.waitSynced(5000);
    const rv0 = e.resourceVersion;
    await waitFor(() => e.stats.watches >= 2, { timeoutMs: 5000, what: "a second watch" });
    const aRv = r.get("a")!.metadata.resourceVersion;
    const modified = e.patch<Node>("nodes", undefined, "a", { metadata: { labels: { x: "1" } } }).metadata.resourceVersion!;
    await waitFor(() => batches.length === 2, { timeoutMs: 5000, what: "the modification" });
    await waitFor(() => e.stats.watches >= 3, { timeoutMs: 5000, what: "a third watch" });
    e.create("nodes", mkNode("c", ""));
    await waitFor(() => batches.length === 3, { timeoutMs: 5000, what: "the addition" });
    expect(batches.slice(1)).toEqual([[`modified a ${aRv}->${modified}`], ["added c"]]);
    expect(e.stats.lists).toBe(1);
    expect(r.status()).toMatchObject({ lists: 1, relists: 0, errors: 0, resourceVersion: e.resourceVersion });
    const rvs = e.stats.watchRequests.map((w) => w.query.resourceVersion);
    expect(rvs[0]).toBe(rv0);
    expect(rvs[1]).toBe(rv0); // nothing happened during the first watch
    expect(rvs).toContain(modified); // a watch resumed from the modification's RV
    expect(rvs.map(Number)).toEqual([...rvs.map(Number)].sort((x, y) => x - y)); // never backwards
  }, 15_000);

  test("bookmarks advance the resourceVersion the next watch starts from", async () => {
    const e = await startEmu({ bookmarkIntervalMs: 100 });
    seed(e, "a");
    const { r, batches } = reflector({ watchTimeoutSeconds: 1, minWatchMs: 200 });
    r.start();
    await r.waitSynced(5000);
    for (let i = 0; i < 3; i++) e.create("services", { apiVersion: "v1", kind: "Service", metadata: { name: `s${i}`, namespace: "default" } });
    const target = e.resourceVersion;
    await waitFor(() => r.status().resourceVersion === target, { timeoutMs: 5000, what: "a bookmark at the new RV" });
    await waitFor(() => e.stats.watchRequests.some((w) => w.query.resourceVersion === target), { timeoutMs: 5000, what: "a watch from the bookmark's RV" });
    expect(batches.length).toBe(1); // no node event, only the initial list
    expect(e.stats.bookmarks).toBeGreaterThan(0);
    expect(e.stats.lists).toBe(1);
  }, 10_000);

  test("410 after compact(): relist, and one batch with exactly the changes made while disconnected", async () => {
    const e = await startEmu({ bookmarkIntervalMs: 0 });
    seed(e, "keep", "mod", "del");
    const { r, batches, lg } = reflector({ backoff: { initialMs: 50, maxMs: 50, jitter: 0 } });
    r.start();
    await r.waitSynced(5000);
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
    const modRv = r.get("mod")!.metadata.resourceVersion;
    // Keep the reflector out while the cluster changes and history is compacted.
    e.failNext(/^\/api\/v1\/nodes$/, 3, 503);
    expect(e.dropWatches()).toBe(1);
    e.delete("nodes", undefined, "del");
    e.patch("nodes", undefined, "mod", { metadata: { labels: { changed: "yes" } } });
    e.create("nodes", mkNode("new", ""));
    e.compact();
    await waitFor(() => r.status().relists === 1, { timeoutMs: 5000, what: "the relist" });
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch after the relist" });
    expect(batches).toEqual([
      ["added del", "added keep", "added mod"],
      [`modified mod ${modRv}->${e.get("nodes", undefined, "mod")!.metadata.resourceVersion}`, "added new", "deleted del"],
    ]);
    expect(e.stats.gone).toBe(1);
    expect(r.items().map((n) => n.metadata.name).sort()).toEqual(["keep", "mod", "new"]);
    expect(r.status()).toMatchObject({ lists: 2, relists: 1, errors: 4, resourceVersion: e.resourceVersion }); // drop + 3×503
    expect(lg.has(/expired .*relisting/)).toBe(true);
  });

  test("dropWatches: reconnect and catch up from history, no relist", async () => {
    const e = await startEmu({ bookmarkIntervalMs: 0 });
    seed(e, "a", "b");
    const { r, batches } = reflector();
    r.start();
    await r.waitSynced(5000);
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
    e.failNext(/^\/api\/v1\/nodes$/, 2, 503);
    e.dropWatches();
    e.delete("nodes", undefined, "a");
    e.create("nodes", mkNode("c", ""));
    await waitFor(() => batches.length === 3, { timeoutMs: 5000, what: "the missed events" });
    expect(batches).toEqual([["added a", "added b"], ["deleted a"], ["added c"]]);
    expect(e.stats.lists).toBe(1);
    expect(e.stats.gone).toBe(0);
    expect(r.status()).toMatchObject({ lists: 1, relists: 0, errors: 3 });
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
  });

  test("Retry-After of a 503 is honoured (max of back-off and Retry-After)", async () => {
    const e = await startEmu({ bookmarkIntervalMs: 0 });
    seed(e, "a");
    const { r } = reflector();
    r.start();
    await r.waitSynced(5000);
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
    e.failNext(/^\/api\/v1\/nodes$/, 1, 503, 1);
    const t0 = performance.now();
    e.dropWatches();
    e.create("nodes", mkNode("late", ""));
    await waitFor(() => r.get("late") !== undefined, { timeoutMs: 5000, what: "the event after the Retry-After" });
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(3000);
    expect(r.status().lists).toBe(1);
  });

  test("429 with Retry-After on the LIST delays the sync", async () => {
    const e = await startEmu();
    e.failNext(/^\/api\/v1\/nodes$/, 1, 429, 1);
    const { r } = reflector();
    const t0 = performance.now();
    r.start();
    expect(await r.waitSynced(5000)).toBe(true);
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(3000);
  });

  test("401 with a stale token: clear error, back-off; the rotated token file is picked up", async () => {
    const e = await startEmu();
    seed(e, "a");
    const { r, lg } = reflector({ backoff: { initialMs: 50, maxMs: 50, jitter: 0 } }, NODES, "expired-token");
    r.start();
    await waitFor(() => r.status().errors >= 2, { timeoutMs: 5000, what: "two failures" });
    expect(r.synced).toBe(false);
    expect(lg.has(/nodes: list unauthorized \(401\): the API server rejected the credentials/, "error")).toBe(true);
    writeFileSync(tokenFile, "tok-a\n");
    expect(await r.waitSynced(5000)).toBe(true);
    expect(lg.has(/token file .* changed/)).toBe(true);
  });

  test("403 names the resource and the RBAC verbs needed", async () => {
    const e = await startEmu();
    e.failNext(/endpointslices$/, 1, 403);
    const spec: ResourceSpec = { name: "endpointslices", path: "/apis/discovery.k8s.io/v1/endpointslices", kind: "EndpointSlice", labelSelector: "kubernetes.io/service-name" };
    e.create("endpointslices", { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "web-1", namespace: "prod", labels: { "kubernetes.io/service-name": "web" } }, addressType: "IPv4", endpoints: [] } as EndpointSlice);
    e.create("endpointslices", { apiVersion: "discovery.k8s.io/v1", kind: "EndpointSlice", metadata: { name: "other", namespace: "prod" }, addressType: "IPv4" } as EndpointSlice);
    const { r, lg } = reflector<EndpointSlice>({}, spec);
    r.start();
    expect(await r.waitSynced(5000)).toBe(true);
    expect(lg.has(/endpointslices: list forbidden \(403\): bgpctl needs RBAC get, list and watch on endpointslices \(API group discovery\.k8s\.io\)/, "error")).toBe(true);
    expect(r.items().map((s) => s.metadata.name)).toEqual(["web-1"]); // selector applied
    expect(r.get("prod/web-1")).toBeDefined();
  });

  test("stop() ends an active watch promptly and closes it on the server", async () => {
    const e = await startEmu();
    seed(e, "a");
    const { r } = reflector();
    r.start();
    await r.waitSynced(5000);
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
    const t = performance.now();
    await r.stop();
    expect(performance.now() - t).toBeLessThan(500);
    await waitFor(() => e.stats.activeWatches === 0, { timeoutMs: 5000, what: "the server to see the watch closed" });
    const w = e.stats.watches;
    await Bun.sleep(100);
    expect(e.stats.watches).toBe(w); // nothing restarted
    refl = undefined;
  });

  test("trimmed objects: an update of nothing kept (a kubelet's status report) is no event and keeps the cached object, nor is it one after a relist; a kept field's change is; a deletion hands over the cached object", async () => {
    const e = await startEmu({ bookmarkIntervalMs: 0 });
    e.create("nodes", node("a", { ipv4: "192.0.2.1", podCIDRs: ["10.244.0.0/24"] }));
    e.create("nodes", node("b", { ipv4: "192.0.2.2" }));
    const { r, batches } = reflector({ transform: (o) => trimNode(o as Node), same: sameObject, backoff: { initialMs: 50, maxMs: 50, jitter: 0 } });
    r.start();
    await r.waitSynced(5000);
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
    const a0 = r.get("a")!;
    // Only what derive reads is kept.
    expect(a0.status).toEqual({ addresses: [{ type: "InternalIP", address: "192.0.2.1" }, { type: "Hostname", address: "a" }] });
    expect(a0.spec).toEqual({ podCIDR: "10.244.0.0/24", podCIDRs: ["10.244.0.0/24"] });
    // A status report and a foreign annotation: no event, the same cached object, counted.
    e.patch("nodes", undefined, "a", { status: { conditions: [{ type: "Ready", status: "True", reason: "KubeletReady", message: "again" }] } });
    e.patch("nodes", undefined, "a", { metadata: { annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" } } });
    await waitFor(() => r.status().unchanged === 2, { timeoutMs: 5000, what: "two unchanged updates" });
    expect(r.get("a")).toBe(a0);
    expect(batches.length).toBe(1);
    // A bgpctl annotation is kept: an event.
    e.patch("nodes", undefined, "a", { metadata: { annotations: { "bgpctl.io/asn": "65009" } } });
    await waitFor(() => batches.length === 2, { timeoutMs: 5000, what: "the annotation's event" });
    expect(batches[1]![0]).toStartWith("modified a ");
    expect(r.get("a")!.metadata.annotations).toEqual({ "bgpctl.io/asn": "65009" });
    // While disconnected, a status report on b; then a relist (410): no event for b, the cached object kept.
    e.failNext(/^\/api\/v1\/nodes$/, 1, 503);
    const b0 = r.get("b")!;
    expect(e.dropWatches()).toBe(1);
    e.patch("nodes", undefined, "b", { status: { conditions: [{ type: "Ready", status: "False", reason: "KubeletNotReady", message: "x" }] } });
    e.compact();
    await waitFor(() => r.status().relists === 1, { timeoutMs: 5000, what: "the relist" });
    expect(r.get("b")).toBe(b0);
    expect(batches.length).toBe(2);
    // A deletion: subscribers get the object they were given.
    const a1 = r.get("a")!;
    await waitFor(() => e.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch after the relist" });
    e.delete("nodes", undefined, "a");
    await waitFor(() => batches.length === 3, { timeoutMs: 5000, what: "the deletion" });
    expect(deleted[deleted.length - 1]).toBe(a1);
  });
});

