/**
 * Tests of the Kubernetes API server emulator (tests/k8s/emulator.ts): that it
 * keeps the documented API semantics the client and reflector tests rely on —
 * paginated lists from a consistent snapshot, 410 for expired continue tokens
 * and resource versions, selectors, watches (resume, selector transitions,
 * bookmarks, timeouts, abrupt drops), injected failures, authentication
 * (tokens, TLS, client certificates), HTTP writes, and the CLI mode driven
 * through `EmulatorControl`. Traffic stays on 127.0.0.1 and unix sockets;
 * every wait is bounded.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { List, Node, Service, Status } from "../../lib/k8s/types.ts";
import { EmulatorControl, KubeEmulator, WATCH_END, WatchStream } from "./emulator.ts";
import { endpointSlice, node, secret, service } from "./fixtures.ts";
import { makePki, type Pki } from "./pki.ts";

const dir = mkdtempSync(join(tmpdir(), "bgpctl-k8s-emu-"));
let pki: Pki;
let otherPki: Pki;

beforeAll(() => {
  pki = makePki(join(dir, "pki"), { serverIPs: ["127.0.0.1"], serverNames: ["localhost"] });
  otherPki = makePki(join(dir, "other"), { serverIPs: ["127.0.0.1"] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function getJson<T = any>(url: string, init: RequestInit & Record<string, unknown> = {}): Promise<{ status: number; body: T; headers: Headers }> {
  const r = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) } as RequestInit);
  const text = await r.text();
  return { status: r.status, body: (text ? JSON.parse(text) : undefined) as T, headers: r.headers };
}

/** The next event of a watch; throws if the stream ended. */
async function nextEvent(w: WatchStream, ms = 5000): Promise<{ type: string; object: any }> {
  const e = await w.next(ms);
  if (e === WATCH_END) throw new Error("watch ended unexpectedly");
  return e;
}

function names(items: { metadata: { name: string; namespace?: string } }[]): string[] {
  return items.map((o) => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name));
}

/** Run `fn` with a fresh plain-HTTP emulator. */
async function withEmu(opts: Parameters<typeof KubeEmulator.start>[0], fn: (emu: KubeEmulator) => Promise<void>): Promise<void> {
  const emu = await KubeEmulator.start(opts);
  try {
    await fn(emu);
  } finally {
    await emu.stop();
  }
}

describe("LIST", () => {
  test("pagination serves a consistent snapshot across 3 pages", async () => {
    await withEmu({}, async (emu) => {
      for (const ns of ["alpha", "beta"]) for (let i = 0; i < 4; i++) emu.create("services", service(ns, `svc-${i}`));
      // 8 services; pages of 3 → 3 pages.
      const base = `${emu.url}/api/v1/services?limit=3`;
      const p1 = await getJson<List<Service>>(base);
      expect(p1.status).toBe(200);
      expect(p1.body.kind).toBe("ServiceList");
      const snap = p1.body.metadata.resourceVersion!;
      expect(snap).toBe(emu.resourceVersion);
      expect(names(p1.body.items)).toEqual(["alpha/svc-0", "alpha/svc-1", "alpha/svc-2"]);
      expect(p1.body.metadata.remainingItemCount).toBe(5);
      expect(typeof p1.body.metadata.continue).toBe("string");
      // Items of a list carry no kind/apiVersion, as from a real server.
      expect((p1.body.items[0] as Service).kind).toBeUndefined();

      // Change the world between pages.
      emu.delete("services", "alpha", "svc-3"); // not yet served: must still appear
      emu.create("services", service("alpha", "svc-9")); // created after the snapshot: must not appear
      emu.patch("services", "beta", "svc-0", { metadata: { labels: { changed: "yes" } } }); // old state must be served
      emu.delete("services", "beta", "svc-3");

      const p2 = await getJson<List<Service>>(`${base}&continue=${encodeURIComponent(p1.body.metadata.continue!)}`);
      expect(p2.status).toBe(200);
      expect(p2.body.metadata.resourceVersion).toBe(snap);
      expect(names(p2.body.items)).toEqual(["alpha/svc-3", "beta/svc-0", "beta/svc-1"]);
      expect(p2.body.items[1]!.metadata.labels?.changed).toBeUndefined();
      expect(p2.body.metadata.remainingItemCount).toBe(2);

      const p3 = await getJson<List<Service>>(`${base}&continue=${encodeURIComponent(p2.body.metadata.continue!)}`);
      expect(p3.status).toBe(200);
      expect(names(p3.body.items)).toEqual(["beta/svc-2", "beta/svc-3"]);
      expect(p3.body.metadata.continue).toBeUndefined();
      expect(p3.body.metadata.remainingItemCount).toBeUndefined();
      expect(p3.body.metadata.resourceVersion).toBe(snap);

      // A fresh list sees the current state.
      const now = await getJson<List<Service>>(`${emu.url}/api/v1/services`);
      expect(names(now.body.items)).toEqual([
        "alpha/svc-0",
        "alpha/svc-1",
        "alpha/svc-2",
        "alpha/svc-9",
        "beta/svc-0",
        "beta/svc-1",
        "beta/svc-2",
      ]);
      expect(now.body.metadata.resourceVersion).toBe(emu.resourceVersion);
      expect(emu.stats.lists).toBe(4);
    });
  });

  test("an expired continue token gets 410 Expired (compact and compaction window)", async () => {
    await withEmu({ compactionWindow: 5 }, async (emu) => {
      for (let i = 0; i < 4; i++) emu.create("nodes", node(`n${i}`));
      const p1 = await getJson<List<Node>>(`${emu.url}/api/v1/nodes?limit=2`);
      const tok = p1.body.metadata.continue!;
      // Still within the window after a couple of writes.
      emu.create("nodes", node("n4"));
      const ok = await getJson<List<Node>>(`${emu.url}/api/v1/nodes?limit=2&continue=${encodeURIComponent(tok)}`);
      expect(ok.status).toBe(200);
      expect(names(ok.body.items)).toEqual(["n2", "n3"]);
      // Push the snapshot out of the retained window.
      for (let i = 0; i < 6; i++) emu.patch("nodes", undefined, "n0", { metadata: { labels: { i: String(i) } } });
      const gone = await getJson<Status>(`${emu.url}/api/v1/nodes?limit=2&continue=${encodeURIComponent(tok)}`);
      expect(gone.status).toBe(410);
      expect(gone.body).toMatchObject({ kind: "Status", apiVersion: "v1", status: "Failure", reason: "Expired", code: 410 });
      expect(gone.body.message).toContain("The provided continue parameter is too old to display a consistent list result");

      // compact() expires a token from just before it.
      const q1 = await getJson<List<Node>>(`${emu.url}/api/v1/nodes?limit=2`);
      emu.create("nodes", node("n5"));
      emu.compact();
      const gone2 = await getJson<Status>(`${emu.url}/api/v1/nodes?limit=2&continue=${encodeURIComponent(q1.body.metadata.continue!)}`);
      expect(gone2.status).toBe(410);
      expect(gone2.body.reason).toBe("Expired");
      expect(emu.stats.gone).toBe(2);
      // A garbage token is a 400.
      const bad = await getJson<Status>(`${emu.url}/api/v1/nodes?limit=2&continue=garbage`);
      expect(bad.status).toBe(400);
      expect(bad.body.reason).toBe("BadRequest");
    });
  });

  test("label and field selectors", async () => {
    await withEmu({}, async (emu) => {
      emu.create("nodes", node("a", { labels: { role: "edge", zone: "z1" } }));
      emu.create("nodes", node("b", { labels: { role: "core", zone: "z2" } }));
      emu.create("nodes", node("c", { labels: { zone: "z1" } }));
      const sel = async (q: string) => names((await getJson<List<Node>>(`${emu.url}/api/v1/nodes?${q}`)).body.items);
      expect(await sel("labelSelector=role%3Dedge")).toEqual(["a"]);
      expect(await sel("labelSelector=role%3D%3Dedge")).toEqual(["a"]);
      expect(await sel("labelSelector=role!%3Dedge")).toEqual(["b", "c"]);
      expect(await sel("labelSelector=role")).toEqual(["a", "b"]);
      expect(await sel("labelSelector=!role")).toEqual(["c"]);
      expect(await sel(`labelSelector=${encodeURIComponent("zone=z1,role")}`)).toEqual(["a"]);
      expect(await sel(`labelSelector=${encodeURIComponent("role in (core,edge),zone notin (z1)")}`)).toEqual(["b"]);
      expect(await sel("fieldSelector=metadata.name%3Db")).toEqual(["b"]);
      expect(await sel("fieldSelector=metadata.name!%3Db")).toEqual(["a", "c"]);

      emu.create("services", service("x", "web"));
      emu.create("services", service("y", "web"));
      emu.create("endpointslices", endpointSlice("x", "web-abc", "web", "IPv4", [{ address: "10.0.0.1", nodeName: "a" }]));
      const svc = await getJson<List<Service>>(`${emu.url}/api/v1/services?fieldSelector=metadata.namespace%3Dy`);
      expect(names(svc.body.items)).toEqual(["y/web"]);
      const nsList = await getJson<List<Service>>(`${emu.url}/api/v1/namespaces/x/services`);
      expect(names(nsList.body.items)).toEqual(["x/web"]);
      const eps = await getJson<List<any>>(
        `${emu.url}/apis/discovery.k8s.io/v1/namespaces/x/endpointslices?labelSelector=${encodeURIComponent("kubernetes.io/service-name=web")}`,
      );
      expect(eps.body.kind).toBe("EndpointSliceList");
      expect(eps.body.apiVersion).toBe("discovery.k8s.io/v1");
      expect(names(eps.body.items)).toEqual(["x/web-abc"]);

      const badLabel = await getJson<Status>(`${emu.url}/api/v1/nodes?labelSelector=${encodeURIComponent("a=(b")}`);
      expect(badLabel.status).toBe(400);
      const badField = await getJson<Status>(`${emu.url}/api/v1/nodes?fieldSelector=spec.foo%3Dbar`);
      expect(badField.status).toBe(400);
      expect(badField.body.message).toContain("field label not supported");
    });
  });
});

describe("WATCH", () => {
  test("from a resourceVersion: retained events in order, then live ones; DELETED carries the last state", async () => {
    await withEmu({}, async (emu) => {
      emu.create("nodes", node("a"));
      const rv0 = emu.resourceVersion;
      emu.create("nodes", node("b"));
      emu.patch("nodes", undefined, "a", { metadata: { labels: { x: "1" } } });
      const w = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${rv0}`);
      try {
        expect(w.response.status).toBe(200);
        expect(w.response.headers.get("content-type")).toBe("application/json");
        expect(w.response.headers.get("transfer-encoding")).toBe("chunked");
        const e1 = await nextEvent(w);
        const e2 = await nextEvent(w);
        expect(e1.type).toBe("ADDED");
        expect(e1.object.metadata.name).toBe("b");
        expect(e1.object.kind).toBe("Node");
        expect(e2.type).toBe("MODIFIED");
        expect(e2.object.metadata.labels.x).toBe("1");
        emu.delete("nodes", undefined, "b");
        const e3 = await nextEvent(w);
        expect(e3.type).toBe("DELETED");
        expect(e3.object.metadata.name).toBe("b");
        expect(e3.object.metadata.resourceVersion).toBe(emu.resourceVersion);
        const rvs = [e1, e2, e3].map((e) => Number(e.object.metadata.resourceVersion));
        expect([...rvs].sort((x, y) => x - y)).toEqual(rvs);
        expect(new Set(rvs).size).toBe(3);
        // Other resources do not leak in.
        emu.create("services", service("default", "s"));
        emu.create("nodes", node("c"));
        const e4 = await nextEvent(w);
        expect(e4.object.metadata.name).toBe("c");
        expect(emu.stats.activeWatches).toBe(1);
        expect(emu.stats.watchRequests).toEqual([{ path: "/api/v1/nodes", query: { watch: "true", resourceVersion: rv0 } }]);
      } finally {
        w.close();
      }
    });
  });

  test("without resourceVersion: synthetic ADDED for current objects; label selector transitions become ADDED/DELETED", async () => {
    await withEmu({}, async (emu) => {
      emu.create("services", service("ns1", "in", { labels: { bgp: "yes" } }));
      emu.create("services", service("ns1", "out"));
      emu.create("services", service("ns2", "in", { labels: { bgp: "yes" } }));
      const w = await WatchStream.open(`${emu.url}/api/v1/namespaces/ns1/services?watch=1&labelSelector=bgp%3Dyes`);
      try {
        const first = await nextEvent(w);
        expect([first.type, first.object.metadata.namespace, first.object.metadata.name]).toEqual(["ADDED", "ns1", "in"]);
        emu.patch("services", "ns1", "in", { metadata: { labels: { bgp: null } } }); // stops matching
        emu.patch("services", "ns1", "out", { metadata: { labels: { bgp: "yes" } } }); // starts matching
        emu.patch("services", "ns2", "in", { metadata: { labels: { other: "1" } } }); // other namespace
        emu.patch("services", "ns1", "out", { spec: { externalIPs: ["192.0.2.10"] } }); // still matching
        emu.delete("services", "ns1", "in"); // no longer matching: nothing
        emu.delete("services", "ns1", "out");
        const evs: [string, string][] = [];
        for (let i = 0; i < 4; i++) {
          const e = await nextEvent(w);
          evs.push([e.type, e.object.metadata.name]);
        }
        expect(evs).toEqual([
          ["DELETED", "in"],
          ["ADDED", "out"],
          ["MODIFIED", "out"],
          ["DELETED", "out"],
        ]);
      } finally {
        w.close();
      }
    });
  });

  test("from a resourceVersion older than the retained history: ERROR 410 event, then the stream ends", async () => {
    await withEmu({}, async (emu) => {
      emu.create("nodes", node("a"));
      const old = emu.resourceVersion;
      emu.create("nodes", node("b"));
      emu.compact();
      const w = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${Number(old) - 1}`);
      try {
        expect(w.response.status).toBe(200);
        const e = await nextEvent(w);
        expect(e.type).toBe("ERROR");
        expect(e.object).toMatchObject({ kind: "Status", code: 410, reason: "Expired", status: "Failure" });
        expect(e.object.message).toMatch(/^too old resource version: \d+ \(\d+\)$/);
        expect(await w.next()).toBe(WATCH_END);
        expect(emu.stats.gone).toBe(1);
      } finally {
        w.close();
      }
      // Watching from the current RV right after compact() works.
      const w2 = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${emu.resourceVersion}`);
      try {
        emu.create("nodes", node("c"));
        const e = await nextEvent(w2);
        expect([e.type, e.object.metadata.name]).toEqual(["ADDED", "c"]);
      } finally {
        w2.close();
      }
    });
  });

  test("the compaction window bounds watch resume: the oldest retained RV works, one before gets 410", async () => {
    await withEmu({ compactionWindow: 3 }, async (emu) => {
      const rvs: string[] = [];
      for (let i = 0; i < 6; i++) rvs.push(emu.create("nodes", node(`n${i}`)).metadata.resourceVersion!);
      // Retained: the events of n3, n4, n5; resuming from n2's RV needs only those.
      const ok = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${rvs[2]}&fieldSelector=metadata.name!%3Dn4`);
      try {
        expect((await nextEvent(ok)).object.metadata.name).toBe("n3");
        expect((await nextEvent(ok)).object.metadata.name).toBe("n5");
      } finally {
        ok.close();
      }
      const old = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${rvs[1]}`);
      try {
        expect(await old.next()).toMatchObject({ type: "ERROR", object: { code: 410, reason: "Expired" } });
        expect(await old.next()).toBe(WATCH_END);
      } finally {
        old.close();
      }
      // A watch from a future RV sends nothing until the RV passes it.
      const future = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${Number(emu.resourceVersion) + 1}`);
      try {
        emu.create("nodes", node("skipped"));
        emu.create("nodes", node("sent"));
        expect((await nextEvent(future)).object.metadata.name).toBe("sent");
      } finally {
        future.close();
      }
    });
  });

  test("an idle watch gets its headers at once; bookmarks carry the current resourceVersion", async () => {
    await withEmu({ bookmarkIntervalMs: 100 }, async (emu) => {
      emu.create("nodes", node("a"));
      const t0 = Date.now();
      const idle = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${emu.resourceVersion}`, {}, 1000);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(idle.response.status).toBe(200);
      idle.close();

      const w = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${emu.resourceVersion}&allowWatchBookmarks=true`);
      try {
        const b1 = await w.next(2000);
        expect(b1).toEqual({ type: "BOOKMARK", object: { kind: "Node", apiVersion: "v1", metadata: { resourceVersion: emu.resourceVersion } } });
        emu.create("services", service("default", "s")); // bumps the global RV, no node event
        const seen = await w.until((e) => e.type === "BOOKMARK" && e.object.metadata.resourceVersion === emu.resourceVersion, 2000);
        expect(seen.every((e) => e.type === "BOOKMARK")).toBe(true);
        expect(emu.stats.bookmarks).toBeGreaterThanOrEqual(2);
      } finally {
        w.close();
      }
    });
  });

  test("sendInitialEvents: ADDED events then a BOOKMARK marking their end", async () => {
    await withEmu({ bookmarkIntervalMs: 60_000 }, async (emu) => {
      emu.create("nodes", node("a"));
      emu.create("nodes", node("b"));
      const w = await WatchStream.open(
        `${emu.url}/api/v1/nodes?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=`,
      );
      try {
        const evs = await w.until((e) => e.type === "BOOKMARK", 2000);
        expect(evs.map((e) => [e.type, e.object.metadata.name ?? null])).toEqual([
          ["ADDED", "a"],
          ["ADDED", "b"],
          ["BOOKMARK", null],
        ]);
        expect(evs[2]!.object.metadata.annotations).toEqual({ "k8s.io/initial-events-end": "true" });
      } finally {
        w.close();
      }
    });
  });

  test("timeoutSeconds ends the stream cleanly", async () => {
    await withEmu({}, async (emu) => {
      const t0 = Date.now();
      const w = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&timeoutSeconds=1&resourceVersion=${emu.resourceVersion}`);
      try {
        expect(emu.stats.activeWatches).toBe(1);
        expect(await w.next(3000)).toBe(WATCH_END);
        const took = Date.now() - t0;
        expect(took).toBeGreaterThanOrEqual(900);
        expect(took).toBeLessThan(2500);
        expect(emu.stats.activeWatches).toBe(0);
      } finally {
        w.close();
      }
    });
  });

  test("dropWatches tears the connections down: the client sees an error, not a clean end", async () => {
    await withEmu({}, async (emu) => {
      const ws = await Promise.all(
        [1, 2].map(() => WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${emu.resourceVersion}`)),
      );
      try {
        emu.create("nodes", node("a"));
        for (const w of ws) expect(await w.next()).toMatchObject({ type: "ADDED" });
        expect(emu.stats.activeWatches).toBe(2);
        expect(emu.dropWatches()).toBe(2);
        for (const w of ws) {
          let err: unknown = null;
          try {
            await w.next(3000);
          } catch (e) {
            err = e;
          }
          expect(String(err)).toMatch(/ECONNRESET|closed|reset|terminated|network/i);
        }
        expect(emu.stats.activeWatches).toBe(0);
        // The server keeps serving.
        expect((await getJson(`${emu.url}/api/v1/nodes`)).status).toBe(200);
      } finally {
        for (const w of ws) w.close();
      }
    });
  });
});

describe("faults and auth", () => {
  test("failNext answers the next N matching requests with a Status and Retry-After", async () => {
    await withEmu({}, async (emu) => {
      emu.failNext(/^\/api\/v1\/nodes$/, 2, 429, 3);
      const r1 = await getJson<Status>(`${emu.url}/api/v1/nodes?limit=10`);
      expect(r1.status).toBe(429);
      expect(r1.headers.get("retry-after")).toBe("3");
      expect(r1.body).toMatchObject({ kind: "Status", reason: "TooManyRequests", code: 429 });
      // Another path is not affected.
      expect((await getJson(`${emu.url}/api/v1/services`)).status).toBe(200);
      expect((await getJson(`${emu.url}/api/v1/nodes`)).status).toBe(429);
      expect((await getJson(`${emu.url}/api/v1/nodes`)).status).toBe(200);
      emu.failNext(/nodes/, 1, 500);
      const r2 = await getJson<Status>(`${emu.url}/api/v1/nodes?watch=true`);
      expect(r2.status).toBe(500);
      expect(r2.headers.get("retry-after")).toBeNull();
      expect(r2.body.reason).toBe("InternalError");
      emu.failNext(/nodes/, 1, 503, 1);
      const r3 = await getJson<Status>(`${emu.url}/api/v1/nodes`);
      expect([r3.status, r3.body.reason, r3.headers.get("retry-after")]).toEqual([503, "ServiceUnavailable", "1"]);
    });
  });

  test("bearer tokens: 401 Status on missing or wrong, 200 on right; the unix listener needs none", async () => {
    const sock = join(dir, "auth.sock");
    await withEmu({ tokens: ["t0k3n", "other"], unixSocket: sock }, async (emu) => {
      const none = await getJson<Status>(`${emu.url}/api/v1/nodes`);
      expect(none.status).toBe(401);
      expect(none.body).toEqual({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 });
      const wrong = await getJson<Status>(`${emu.url}/api/v1/nodes`, { headers: { Authorization: "Bearer nope" } });
      expect(wrong.status).toBe(401);
      const right = await getJson(`${emu.url}/api/v1/nodes`, { headers: { Authorization: "Bearer t0k3n" } });
      expect(right.status).toBe(200);
      const watchNoAuth = await getJson<Status>(`${emu.url}/api/v1/nodes?watch=true`);
      expect(watchNoAuth.status).toBe(401);
      expect(emu.stats.unauthorized).toBe(3);
      const viaUnix = await getJson(`http://localhost/api/v1/nodes`, { unix: sock });
      expect(viaUnix.status).toBe(200);
      expect(emu.stats.requests).toBe(4); // the unix listener is not counted
    });
  });

  test("TLS: the emulator's CA verifies, an unrelated CA does not; client certificates authenticate", async () => {
    const emu = await KubeEmulator.start({ tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert }, tokens: ["tok"] });
    try {
      expect(emu.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const ok = await getJson(`${emu.url}/version`, { tls: { ca: pki.caCert }, headers: { Authorization: "Bearer tok" } });
      expect(ok.status).toBe(200);
      expect(ok.body.gitVersion).toBe("v1.30.0-bgpctl-emulator");
      let err: unknown = null;
      try {
        await getJson(`${emu.url}/version`, { tls: { ca: otherPki.caCert }, headers: { Authorization: "Bearer tok" } });
      } catch (e) {
        err = e;
      }
      expect(String(err)).toMatch(/certificate|self.signed|verify/i);
      // mTLS: a client certificate from the cluster CA needs no token.
      const cert = await getJson(`${emu.url}/api/v1/nodes`, { tls: { ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey } });
      expect(cert.status).toBe(200);
      // One from another CA is not authentication (the handshake still succeeds: requested, not required).
      const badCert = await getJson(`${emu.url}/api/v1/nodes`, { tls: { ca: pki.caCert, cert: otherPki.clientCert, key: otherPki.clientKey } });
      expect(badCert.status).toBe(401);
      const noCert = await getJson(`${emu.url}/api/v1/nodes`, { tls: { ca: pki.caCert } });
      expect(noCert.status).toBe(401);
      // A watch over TLS streams too.
      const w = await WatchStream.open(`${emu.url}/api/v1/nodes?watch=true&resourceVersion=${emu.resourceVersion}`, {
        tls: { ca: pki.caCert },
        headers: { Authorization: "Bearer tok" },
      });
      try {
        emu.create("nodes", node("tls-node"));
        expect(await w.next()).toMatchObject({ type: "ADDED", object: { metadata: { name: "tls-node" } } });
        expect(emu.dropWatches()).toBe(1);
        await expect(w.next(3000)).rejects.toThrow();
      } finally {
        w.close();
      }
    } finally {
      await emu.stop();
    }
  });
});

describe("HTTP API", () => {
  test("discovery and unknown paths", async () => {
    await withEmu({}, async (emu) => {
      const api = await getJson(`${emu.url}/api`);
      expect(api.body).toMatchObject({ kind: "APIVersions", versions: ["v1"] });
      const v1 = await getJson(`${emu.url}/api/v1`);
      expect(v1.body.kind).toBe("APIResourceList");
      const nodes = v1.body.resources.find((r: any) => r.name === "nodes");
      expect(nodes).toMatchObject({ singularName: "node", namespaced: false, kind: "Node", shortNames: ["no"] });
      expect(nodes.verbs).toContain("watch");
      expect(v1.body.resources.find((r: any) => r.name === "services")).toMatchObject({ namespaced: true, shortNames: ["svc"] });
      const apis = await getJson(`${emu.url}/apis`);
      expect(apis.body.groups[0]).toMatchObject({ name: "discovery.k8s.io", preferredVersion: { groupVersion: "discovery.k8s.io/v1" } });
      const dv1 = await getJson(`${emu.url}/apis/discovery.k8s.io/v1`);
      expect(dv1.body.resources[0]).toMatchObject({ name: "endpointslices", kind: "EndpointSlice", namespaced: true });
      expect((await getJson(`${emu.url}/apis/discovery.k8s.io`)).body.kind).toBe("APIGroup");
      for (const p of ["/openapi/v2", "/api/v1/pods", "/apis/discovery.k8s.io/v1/nodes", "/api/v1/services/x", "/api/v1/nodes/a/b/c"]) {
        const r = await getJson<Status>(`${emu.url}${p}`);
        expect([p, r.status, r.body.kind, r.body.reason]).toEqual([p, 404, "Status", "NotFound"]);
      }
    });
  });

  test("POST 201/409, GET, PUT (404, conflict), PATCH merge, /status, DELETE", async () => {
    await withEmu({}, async (emu) => {
      const coll = `${emu.url}/api/v1/namespaces/default/services`;
      const post = (body: unknown) =>
        getJson(coll, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
      const created = await post(service("default", "web", { clusterIPs: ["10.96.0.50"] }));
      expect(created.status).toBe(201);
      expect(created.body).toMatchObject({ kind: "Service", apiVersion: "v1", metadata: { name: "web", namespace: "default" } });
      expect(created.body.metadata.uid).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.body.metadata.resourceVersion).toBe(emu.resourceVersion);
      expect(created.body.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const dup = await post(service("default", "web"));
      expect([dup.status, dup.body.reason, dup.body.message]).toEqual([409, "AlreadyExists", 'services "web" already exists']);
      const wrongNs = await post(service("other", "web2"));
      expect(wrongNs.status).toBe(400);

      const obj = `${coll}/web`;
      const got = await getJson<Service>(obj);
      expect(got.body.spec?.clusterIP).toBe("10.96.0.50");

      const put = (url: string, body: unknown) => getJson<any>(url, { method: "PUT", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
      const upd = structuredClone(got.body);
      upd.spec!.externalIPs = ["192.0.2.1"];
      const put1 = await put(obj, upd);
      expect(put1.status).toBe(200);
      expect(put1.body.spec.externalIPs).toEqual(["192.0.2.1"]);
      expect(put1.body.metadata.uid).toBe(created.body.metadata.uid);
      const stale = await put(obj, upd); // upd still has the old resourceVersion
      expect([stale.status, stale.body.reason]).toEqual([409, "Conflict"]);
      const missing = await put(`${coll}/nope`, service("default", "nope"));
      expect([missing.status, missing.body.reason]).toEqual([404, "NotFound"]);

      const rvBefore = emu.resourceVersion;
      const patched = await getJson<any>(obj, {
        method: "PATCH",
        body: JSON.stringify({ metadata: { labels: { a: "1" } }, spec: { externalIPs: null } }),
        headers: { "Content-Type": "application/merge-patch+json" },
      });
      expect(patched.status).toBe(200);
      expect(patched.body.metadata.labels).toEqual({ a: "1" });
      expect(patched.body.spec.externalIPs).toBeUndefined();
      expect(Number(patched.body.metadata.resourceVersion)).toBe(Number(rvBefore) + 1);
      // A no-op patch keeps the resourceVersion.
      const noop = await getJson<any>(obj, {
        method: "PATCH",
        body: JSON.stringify({ metadata: { labels: { a: "1" } } }),
        headers: { "Content-Type": "application/strategic-merge-patch+json" },
      });
      expect(noop.body.metadata.resourceVersion).toBe(patched.body.metadata.resourceVersion);
      const jsonPatch = await getJson<Status>(obj, { method: "PATCH", body: "[]", headers: { "Content-Type": "application/json-patch+json" } });
      expect(jsonPatch.status).toBe(415);

      const st = await getJson<any>(`${obj}/status`, {
        method: "PATCH",
        body: JSON.stringify({ status: { loadBalancer: { ingress: [{ ip: "198.51.100.7" }] } } }),
        headers: { "Content-Type": "application/merge-patch+json" },
      });
      expect(st.status).toBe(200);
      expect(emu.get<Service>("services", "default", "web")?.status?.loadBalancer?.ingress).toEqual([{ ip: "198.51.100.7" }]);

      const del = await getJson<any>(obj, { method: "DELETE" });
      expect(del.status).toBe(200);
      expect(del.body.metadata.name).toBe("web");
      expect((await getJson<Status>(obj, { method: "DELETE" })).status).toBe(404);
      expect((await getJson<Status>(obj)).body.message).toBe('services "web" not found');
      expect((await getJson<Status>(coll, { method: "DELETE" })).status).toBe(405);

      // Cluster-scoped and group resources.
      const n = await getJson(`${emu.url}/api/v1/nodes`, { method: "POST", body: JSON.stringify(node("n1")), headers: { "Content-Type": "application/json" } });
      expect(n.status).toBe(201);
      const eps = await getJson(`${emu.url}/apis/discovery.k8s.io/v1/namespaces/default/endpointslices`, {
        method: "POST",
        body: JSON.stringify(endpointSlice("default", "web-1", "web", "IPv4", [{ address: "10.1.0.1", nodeName: "n1", ready: null }])),
        headers: { "Content-Type": "application/json" },
      });
      expect(eps.status).toBe(201);
      expect(eps.body.apiVersion).toBe("discovery.k8s.io/v1");
      expect(eps.body.endpoints[0].conditions).toEqual({});
    });
  });

  test("in-process writes: create throws on duplicates, apply replaces, secrets stringData, no-op apply", async () => {
    await withEmu({}, async (emu) => {
      const a = emu.create("nodes", node("a", { ipv4: "192.0.2.1", podCIDRs: ["10.244.1.0/24"] }));
      expect(a.kind).toBe("Node");
      expect(a.spec?.podCIDR).toBe("10.244.1.0/24");
      expect(() => emu.create("nodes", node("a"))).toThrow(/already exists/);
      const rv = emu.resourceVersion;
      expect(emu.apply("nodes", node("a", { ipv4: "192.0.2.1", podCIDRs: ["10.244.1.0/24"] })).metadata.resourceVersion).toBe(rv);
      const b = emu.apply("nodes", node("a", { ipv4: "192.0.2.2" }));
      expect(b.metadata.uid).toBe(a.metadata.uid);
      expect(Number(b.metadata.resourceVersion)).toBe(Number(rv) + 1);
      const s = emu.create("secrets", { metadata: { name: "pw", namespace: "kube-system" }, stringData: { password: "hunter2" } } as any);
      expect((s as any).data).toEqual({ password: Buffer.from("hunter2").toString("base64") });
      expect((s as any).stringData).toBeUndefined();
      expect(emu.create("secrets", secret("kube-system", "x", { k: "v" })).metadata.namespace).toBe("kube-system");
      expect(() => emu.patch("nodes", undefined, "zz", {})).toThrow(/not found/);
      expect(emu.delete("nodes", undefined, "a")).toBe(true);
      expect(emu.delete("nodes", undefined, "a")).toBe(false);
      expect(emu.get("nodes", undefined, "a")).toBeUndefined();
      expect(emu.list("secrets").map((o) => o.metadata.name)).toEqual(["pw", "x"]);
    });
  });
});

describe("CLI mode", () => {
  test("a subprocess prints `ready <url>` and is driven through EmulatorControl over its unix socket", async () => {
    const sock = join(dir, "cli.sock");
    const proc = Bun.spawn(
      [
        process.execPath,
        join(import.meta.dir, "emulator.ts"),
        "--listen",
        "127.0.0.1:0",
        "--cert",
        pki.paths.serverCert,
        "--key",
        pki.paths.serverKey,
        "--client-ca",
        pki.paths.ca,
        "--token",
        "cli-token",
        "--unix",
        sock,
        "--compaction",
        "50",
        "--bookmark-ms",
        "200",
      ],
      { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
    );
    try {
      const reader = proc.stdout.getReader();
      let out = "";
      const deadline = Date.now() + 10_000;
      while (!out.includes("\n") && Date.now() < deadline) {
        const x = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
        if (!x || x.done) break;
        out += new TextDecoder().decode(x.value);
      }
      reader.releaseLock();
      const m = /^ready (https:\/\/127\.0\.0\.1:\d+)\n$/.exec(out);
      if (!m) throw new Error(`no ready line: ${JSON.stringify(out)}; stderr: ${await new Response(proc.stderr).text()}`);
      const url = m[1]!;
      const ctl = new EmulatorControl(sock);
      const auth = { tls: { ca: pki.caCert }, headers: { Authorization: "Bearer cli-token" } };

      const created = await ctl.create("nodes", node("cli-a", { ipv4: "192.0.2.5" }));
      expect(created.metadata.resourceVersion).toMatch(/^\d+$/);
      await expect(ctl.create("nodes", node("cli-a"))).rejects.toThrow(/409/);
      const w = await WatchStream.open(`${url}/api/v1/nodes?watch=true&resourceVersion=${created.metadata.resourceVersion}&allowWatchBookmarks=true`, auth);
      try {
        await ctl.apply("nodes", node("cli-b"));
        await ctl.apply("nodes", node("cli-b", { labels: { x: "y" } }));
        await ctl.patch("nodes", undefined, "cli-a", { metadata: { annotations: { note: "hi" } } });
        await ctl.apply("services", service("default", "web", { ingress: ["198.51.100.1"] }));
        expect((await ctl.get<Service>("services", "default", "web"))?.status?.loadBalancer?.ingress).toEqual([{ ip: "198.51.100.1" }]);
        expect(await ctl.delete("nodes", undefined, "cli-b")).toBe(true);
        expect(await ctl.delete("nodes", undefined, "cli-b")).toBe(false);
        expect(await ctl.get("nodes", undefined, "cli-b")).toBeUndefined();
        const evs = await w.until((e) => e.type === "DELETED", 5000);
        expect(evs.filter((e) => e.type !== "BOOKMARK").map((e) => [e.type, e.object.metadata.name])).toEqual([
          ["ADDED", "cli-b"],
          ["MODIFIED", "cli-b"],
          ["MODIFIED", "cli-a"],
          ["DELETED", "cli-b"],
        ]);
        await w.until((e) => e.type === "BOOKMARK", 3000);
        expect(await ctl.dropWatches()).toBe(1);
        await expect(w.next(3000)).rejects.toThrow();
      } finally {
        w.close();
      }

      await ctl.failNext(/^\/api\/v1\/nodes$/, 1, 429, 2);
      const failed = await getJson(`${url}/api/v1/nodes`, auth);
      expect([failed.status, failed.headers.get("retry-after")]).toEqual([429, "2"]);
      const old = (await ctl.stats()).resourceVersion;
      await ctl.apply("nodes", node("cli-c"));
      await ctl.compact();
      const w2 = await WatchStream.open(`${url}/api/v1/nodes?watch=true&resourceVersion=${Number(old) - 1}`, auth);
      try {
        expect(await w2.next()).toMatchObject({ type: "ERROR", object: { code: 410 } });
      } finally {
        w2.close();
      }
      const unauth = await getJson(`${url}/api/v1/nodes`, { tls: { ca: pki.caCert } });
      expect(unauth.status).toBe(401);
      const st = await ctl.stats();
      expect(st.watches).toBe(2);
      expect(st.gone).toBe(1);
      expect(st.unauthorized).toBe(1);
      expect(st.bookmarks).toBeGreaterThanOrEqual(1);
      expect((await ctl.list("nodes")).map((n) => n.metadata.name)).toEqual(["cli-a", "cli-c"]);

      proc.kill("SIGTERM");
      const code = await Promise.race([proc.exited, Bun.sleep(5000).then(() => "timeout")]);
      expect(code).toBe(0);
    } finally {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid, "SIGKILL");
    }
  });
});
