/**
 * `show rib --mrt` on a large table, through the real control socket:
 * a Loc-RIB of 150,000 prefixes with two routes each is streamed as
 * TABLE_DUMP_V2 (GET /v1/rib/mrt: tableDumpRecords in mrtBody's slices) and
 * saved by the client (ApiClient.ribMrt + saveMrt), in this one process: a
 * lag probe shows the event loop kept turning throughout, the bytes came in
 * many bounded chunks, and the file holds every route. Also the endpoint's
 * input checks, and a stream cut half-way leaving the target file untouched.
 */
import { asPathOf, asPathSegments } from "../../lib/bgp/attributes.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SEG, emptyAttributes } from "../../lib/bgp/mod.ts";
import { ApiClient } from "../../lib/api/client.ts";
import { type ApiServer, startApiServer } from "../../lib/api/server.ts";
import { MRT_CHUNK_BYTES, mrtBody } from "../../lib/api/streams.ts";
import type { RouterApi } from "../../lib/api/types.ts";
import { LoopLagMonitor } from "../../lib/core/loop-lag.ts";
import { type PeerIndexRecord, type RibRecord, parseMrt, saveMrt } from "../../lib/mrt/mod.ts";
import { LocRib } from "../../lib/rib/loc-rib.ts";
import { type RouteSource, makeRoute } from "../../lib/rib/types.ts";
import { tableDumpRecords } from "../../lib/router/mrt-dump.ts";

const N = 150_000;
const dir = mkdtempSync(join(tmpdir(), "bgpctl-mrt-stream-"));
const sock = join(dir, "api.sock");
let server: ApiServer;

function source(id: string, asn: number, routerId: number): RouteSource {
  const a = id.split(".").map(Number);
  return { id, address: id, addressBytes: Uint8Array.from(a), asn, routerId, ibgp: false, rrClient: false, local: false };
}
const s1 = source("192.0.2.1", 65001, 0xc0000201);
const s2 = source("192.0.2.2", 65002, 0xc0000202);
const local: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: 65000, routerId: 0, ibgp: true, rrClient: false, local: true };

const locRib = new LocRib();
/** Fails the walk at prefix `failAt` when set (a walk that breaks half-way). */
let failAt = -1;
/** What the server logged. */
const notes: string[] = [];

beforeAll(async () => {
  const a1 = { ...emptyAttributes(), origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001, 64512] }]) };
  const a2 = { ...emptyAttributes(), origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65002] }]), med: 5 };
  const nh1 = Uint8Array.from([192, 0, 2, 1]);
  const nh2 = Uint8Array.from([192, 0, 2, 2]);
  for (let i = 0; i < N; i++) {
    const p = { afi: 1 as const, len: 24, addr: Uint8Array.from([10 + (i >> 16), (i >> 8) & 255, i & 255, 0]) };
    locRib.upsert(makeRoute(p, 0, s1, a1, nh1));
    locRib.upsert(makeRoute(p, 0, s2, a2, nh2));
  }
  locRib.upsert(makeRoute({ afi: 2, len: 48, addr: Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, 0, 1, ...new Array(10).fill(0)]) }, 0, local, { ...emptyAttributes(), origin: 0, asPath: asPathOf([]) }, new Uint8Array(16)));
  const api = {
    ribMrt(family?: "ipv4" | "ipv6") {
      const records = tableDumpRecords({ routerId: "192.0.2.254", asn: 65000, locRib, localSource: local, sources: [s1, s2] }, family === "ipv4" ? 1 : family === "ipv6" ? 2 : undefined);
      return (function* () {
        let i = 0;
        for (const r of records) {
          if (i++ === failAt) throw new Error("the table went away");
          yield r;
        }
      })();
    },
    note(_level: string, msg: string) {
      notes.push(msg);
    },
  } as unknown as RouterApi;
  server = await startApiServer(api, sock);
}, 60_000);

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("GET /v1/rib/mrt", () => {
  test(
    `${N} prefixes x 2 routes: streamed in bounded chunks while the loop keeps turning; the file holds every route`,
    async () => {
      const client = new ApiClient(sock);
      const file = join(dir, "big.mrt");
      const sizes: number[] = [];
      const { result: saved, lag, ms: tookMs } = await LoopLagMonitor.measure(() =>
        saveMrt(file, (write) =>
          client.ribMrt(undefined, async (chunk) => {
            sizes.push(chunk.length);
            await write(chunk);
          }),
        ),
      );
      expect(saved).toMatchObject({ prefixes: N + 1, routes: 2 * N + 1, records: N + 2 });
      // Many slices (the socket may join some on the way).
      expect(sizes.length).toBeGreaterThan(saved.bytes / MRT_CHUNK_BYTES / 2);
      const s = lag.stats();
      expect(s.samples).toBeGreaterThan(tookMs / 100); // on average one firing per 100 ms of the run at least (one every 5 ms asked)
      expect(lag.percentile(95)).toBeLessThan(50);
      expect(s.maxLagMs).toBeLessThan(1000);

      const recs = [...parseMrt(new Uint8Array(readFileSync(file)))];
      const pit = recs[0] as PeerIndexRecord;
      expect(pit.peers.map((p) => [p.address, p.asn])).toEqual([
        ["192.0.2.1", 65001],
        ["192.0.2.2", 65002],
        ["0.0.0.0", 65000],
      ]);
      const ribs = recs.slice(1) as RibRecord[];
      expect(ribs).toHaveLength(N + 1);
      expect(ribs.map((r) => r.sequence)).toEqual(ribs.map((_, i) => i));
      expect(ribs[0]!.entries.map((e) => [e.peer.address, asPathSegments(e.attrs!.asPath)[0]!.asns])).toEqual([
        ["192.0.2.1", [65001, 64512]],
        ["192.0.2.2", [65002]],
      ]);
      expect(ribs.at(-1)!.entries[0]!.peer.address).toBe("0.0.0.0");
      const now = Date.now() / 1000;
      for (const e of ribs[0]!.entries) expect(Math.abs(e.originated - now)).toBeLessThan(600);
    },
    120_000,
  );

  test("the body's chunks: at most MRT_CHUNK_BYTES plus one record each, produced only when pulled", async () => {
    let produced = 0;
    const records = (function* () {
      for (const r of tableDumpRecords({ routerId: "192.0.2.254", asn: 65000, locRib, localSource: local, sources: [s1, s2] })) {
        produced++;
        yield r;
      }
    })();
    const reader = mrtBody(records).getReader();
    const first = await reader.read();
    expect(first.value!.length).toBeLessThanOrEqual(MRT_CHUNK_BYTES + 1024);
    // Nothing is produced ahead of the reader.
    await Bun.sleep(50);
    const early = produced;
    expect(early).toBeLessThan(N / 2);
    let max = first.value!.length;
    let n = 1;
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      max = Math.max(max, r.value.length);
      n++;
    }
    expect(produced).toBe(N + 2);
    expect(n).toBeGreaterThan(5);
    expect(max).toBeLessThanOrEqual(MRT_CHUNK_BYTES + 1024);
  });

  test("one family; bad queries are refused with the field named", async () => {
    const client = new ApiClient(sock);
    const parts: Uint8Array[] = [];
    await client.ribMrt("ipv6", (c) => void parts.push(c));
    const recs = [...parseMrt(new Uint8Array(Buffer.concat(parts)))];
    expect(recs.map((r) => r.kind)).toEqual(["peer-index", "rib"]);
    const get = (q: string) => fetch(`http://localhost/v1/rib/mrt${q}`, { unix: sock } as RequestInit);
    const bad = await get("?family=ipv5");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain('family: "ipv5" must be ipv4 or ipv6');
    const unknown = await get("?prefix=10.0.0.0/8");
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { error: string }).error).toContain("prefix: unknown query parameter");
    expect((await fetch("http://localhost/v1/rib/mrt", { unix: sock, method: "POST" } as RequestInit)).status).toBe(405);
  });

  test("a walk that fails half-way: the client sees the break, the target file is left as it was", async () => {
    const file = join(dir, "kept.mrt");
    writeFileSync(file, "old contents");
    failAt = 50_000;
    try {
      const client = new ApiClient(sock);
      await expect(saveMrt(file, (write) => client.ribMrt(undefined, write))).rejects.toThrow();
    } finally {
      failAt = -1;
    }
    expect(readFileSync(file, "utf8")).toBe("old contents");
    expect(notes.join("\n")).toContain("GET /v1/rib/mrt: the table walk failed, the answer is cut: the table went away");
    expect(readdirSync(dir).filter((f) => f.includes("partial"))).toEqual([]);
    expect(existsSync(file)).toBe(true);
  });
});
