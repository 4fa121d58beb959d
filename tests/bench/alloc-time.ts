/**
 * `npm run bench:alloc`: what a received table costs in process, for
 * memory work (not part of `npm test`; asserts nothing; no root). Engine A
 * (tests/support/loopback-engine.ts) with one eBGP peer on loopback; the
 * table (tests/bench/table.ts, `--prefixes`, default 560,000 IPv4) decoded
 * and handed to the neighbour's UPDATE handler directly, no socket.
 *
 *   bun tests/bench/alloc.ts [--prefixes 560000]
 *
 * Prints:
 * - live: the heap and typed arrays a full table adds after a full
 *   collection, per route, and the objects it adds;
 * - allocations by type per received route (the import path: Adj-RIB-In,
 *   policy, Loc-RIB, export), and per new attribute set (the decoder), on
 *   100,000 prefixes, counted with the collector off: the script runs
 *   itself again with BUN_JSC_useGC=false and reads `heapStats()` before
 *   and after. Counts are of objects made, whether they stay or not; an
 *   object made per route that does not stay is garbage the collector
 *   works through (and, until it does, resident memory).
 */
import { heapStats } from "bun:jsc";
import { settleAttributes } from "../../lib/bgp/attributes.ts";
import { type UpdateMessage, decodeUpdate, updateContext } from "../../lib/bgp/update.ts";
import { parseAddr } from "../../lib/core/addr.ts";
import { loopbackEngine, loopbackSpeaker } from "../support/loopback-engine.ts";
import { buildTable, encodeGroups } from "./table.ts";

const args = process.argv.slice(2);
const flag = (name: string, dflt: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const mode = args.includes("--count-import") ? "import" : args.includes("--count-decode") ? "decode" : "live";
const N = mode === "live" ? flag("prefixes", 560_000) : 100_000;

interface Neighbor {
  session: { negotiated: unknown };
  onUpdate(u: UpdateMessage, deadline: number): boolean;
}

const cleanups: (() => unknown)[] = [];
const I = "127.0.0.2";
const { engine, port } = await loopbackEngine([[I, 65002]], { cleanups, name: "alloc.yaml", level: "warn" });
await loopbackSpeaker({ local: I, as: 65002, port, routerId: "192.0.2.2", cleanups });
// The neighbour's UPDATE handler is private: this measures it from outside, as the session calls it.
const n = engine.peers.get(I)! as unknown as Neighbor;
for (let i = 0; i < 200 && !n.session.negotiated; i++) await Bun.sleep(10);
const ctx = updateContext(n.session.negotiated as Parameters<typeof updateContext>[0], false, "127.0.0.1");
const nh = parseAddr(I)!.addr;
const table = buildTable({ v4: N, v6: 0, peerAs: 65002, nextHop4: nh, nextHop6: new Uint8Array(16) });
const bodies = encodeGroups(table.groups, { nextHop4: nh, nextHop6: new Uint8Array(16) }, false).map((m) => m.subarray(19));
const feed = (b: Uint8Array) => {
  const u = decodeUpdate(b, ctx);
  n.onUpdate(u, Infinity);
  settleAttributes(u.attrs);
};
// The first UPDATE, then a pause: its next hop's first lookup is in, as it is for the rest of a real table.
feed(bodies.shift()!);
await Bun.sleep(300);

function countsSince(before: Record<string, number>, per: number, label: string): void {
  const after = heapStats().objectTypeCounts as Record<string, number>;
  const rows = Object.keys(after)
    .map((k) => [k, after[k]! - (before[k] ?? 0)] as const)
    .filter(([, d]) => d > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 8);
  console.log(`${label}: ${rows.map(([k, d]) => `${k} ${(d / per).toFixed(2)}`).join(", ")}`);
}

if (mode === "live") {
  Bun.gc(true);
  const h0 = heapStats();
  const t0 = performance.now();
  for (const b of bodies) feed(b);
  const ms = performance.now() - t0;
  // (The messages stay alive, as they were before: the difference is the table's.)
  await Bun.sleep(100);
  Bun.gc(true);
  const h1 = heapStats();
  const routes = engine.locRib.count();
  const heap = h1.heapSize - h0.heapSize;
  const extra = h1.extraMemorySize - h0.extraMemorySize;
  console.log(`live: ${routes} routes in ${ms.toFixed(0)} ms; heap +${(heap / 1048576).toFixed(1)} MB, typed arrays +${(extra / 1048576).toFixed(1)} MB, ${((heap + extra) / routes).toFixed(0)} bytes per route; +${h1.objectCount - h0.objectCount} objects (${((h1.objectCount - h0.objectCount) / routes).toFixed(2)} per route)`);
  bodies.length = 0;
} else if (mode === "import") {
  const us = bodies.map((b) => decodeUpdate(b, ctx));
  const before = heapStats().objectTypeCounts as Record<string, number>;
  for (const u of us) n.onUpdate(u, Infinity);
  countsSince(before, table.prefixes, "allocations per received route (import)");
} else {
  const before = heapStats().objectTypeCounts as Record<string, number>;
  for (const b of bodies) settleAttributes(decodeUpdate(b, ctx).attrs);
  countsSince(before, bodies.length, "allocations per new attribute set (decode)");
}

for (const c of cleanups.splice(0).reverse()) await c();
process.exit(0);
