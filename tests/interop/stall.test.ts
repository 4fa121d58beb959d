/**
 * Interop (issue 9 §1): a full table flows through one `bgpctl run` daemon to
 * another, both with a 3 s hold time, while `bgpctl show rib -j` runs on both,
 * and no session drops.
 *
 *   injector (AS 65010) ── r1 (AS 65001) ── r2 (AS 65002)
 *   198.51.100.2      198.51.100.1 / 192.0.2.1   192.0.2.2
 *
 * The injector (tests/interop/stall-injector.ts, a lib/bgp Session) sends a
 * generated table (tests/bench/table.ts; STALL_PREFIXES, default 300,000).
 * The test asserts behaviour, not time: every session stays Established from
 * start to end (the neighbour's `established` count does not move, neither
 * log has a hold timer expiry or a session leaving Established), both `show
 * rib -j` runs complete with valid JSON while the table is in flight, and r2
 * ends with every prefix.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { BgpctlDaemon, type Lab, type LabProcess, REPO_ROOT, buildNetwork, readLog, run, useLab } from "./lab.ts";
import { bgpctlCliArgv } from "./lab.ts";
import type { NeighborInfo } from "../../lib/api/types.ts";

const PREFIXES = Number(process.env.STALL_PREFIXES ?? 300_000);
const HOLD = 3;
const INJ = "198.51.100.2";
const R1_IN = "198.51.100.1";
const R1_OUT = "192.0.2.1";
const R2 = "192.0.2.2";

let lab: Lab;
useLab("stall", (l) => (lab = l));

function neighborOf(list: NeighborInfo[], address: string): NeighborInfo {
  const n = list.find((x) => x.address === address);
  if (!n) throw new Error(`no neighbour ${address} in ${JSON.stringify(list.map((x) => x.address))}`);
  return n;
}

/** Lines of a daemon's log that say a session went down or a hold timer ran out. */
function drops(p: LabProcess): string[] {
  return readLog(p)
    .split("\n")
    .filter((l) => /hold timer expired|Established -> /i.test(l));
}

/** `show rib -j` on a daemon, to the end; returns the number of entries (the JSON must parse). */
async function showRibCount(d: BgpctlDaemon): Promise<number> {
  const r = await run(bgpctlCliArgv(d.socket, ["show", "rib"], { json: true }), { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`show rib -j on ${d.name} failed (exit ${r.code}${r.timedOut ? ", timed out" : ""}): ${r.stderr.slice(0, 500)}`);
  const parsed = JSON.parse(r.stdout) as unknown;
  if (!Array.isArray(parsed)) throw new Error(`show rib -j on ${d.name}: not a JSON array`);
  return parsed.length;
}

describe("stall: a full table through a daemon with a 3 s hold time and show rib running", () => {
  test(`${PREFIXES} prefixes from an injector through r1 to r2: no session drops, r2 has every prefix`, async () => {
    const net = await buildNetwork(lab, {
      nodes: ["inj", "r1", "r2"],
      segments: [{ members: { inj: { ipv4: `${INJ}/24` }, r1: { ipv4: `${R1_IN}/24` } } }, { members: { r1: { ipv4: `${R1_OUT}/24` }, r2: { ipv4: `${R2}/24` } } }],
    });
    const peer = (address: string, remoteAs: number, extra: Record<string, unknown> = {}) => ({ address, remoteAs, families: ["ipv4" as const], holdTime: HOLD, connectRetry: 1, import: "all", export: "all", ...extra });
    const r1 = await BgpctlDaemon.start(lab, net.ns.r1!, { asn: 65001, routerId: R1_OUT, listen: { address: "0.0.0.0", port: 179 }, peers: [peer(INJ, 65010, { passive: true }), peer(R2, 65002)] }, "r1");
    const r2 = await BgpctlDaemon.start(lab, net.ns.r2!, { asn: 65002, routerId: R2, listen: { address: "0.0.0.0", port: 179 }, peers: [peer(R1_OUT, 65001, { passive: true })] }, "r2");
    await r1.waitEstablished(R2);
    const bun = join(REPO_ROOT, "node_modules", ".bin", "bun");
    const inj = lab.spawn(net.ns.inj!, [bun, join(import.meta.dir, "stall-injector.ts"), R1_IN, INJ, "65010", "65001", String(HOLD), String(PREFIXES)], { name: "injector" });
    await r1.waitEstablished(INJ, 30_000, [inj]);
    const ups = async () => {
      const [a, b] = await Promise.all([r1.neighbors(), r2.neighbors()]);
      return { inj: neighborOf(a, INJ), r2: neighborOf(a, R2), r1: neighborOf(b, R1_OUT) };
    };
    const before = await ups();
    const t0 = performance.now();

    // While the table is in flight: show rib -j on both (up to twice each), and the sessions watched.
    let flowing = true;
    const ribRuns: { daemon: string; entries: number; seconds: number }[] = [];
    const shows = [r1, r2].map(async (d) => {
      for (let i = 0; i < 2 && flowing; i++) {
        const s0 = performance.now();
        const entries = await showRibCount(d);
        ribRuns.push({ daemon: d.name, entries, seconds: Math.round((performance.now() - s0) / 100) / 10 });
      }
    });
    const states: string[] = [];
    try {
      await lab.waitFor(
        async () => {
          if (!inj.running) throw new Error("the injector exited");
          const u = await ups();
          for (const [k, n] of Object.entries(u)) if (n.state !== "Established") states.push(`${k}: ${n.state}`);
          return u.r1.received === PREFIXES && u.r1.accepted === PREFIXES ? u : null;
        },
        { timeoutMs: 150_000, intervalMs: 250, what: `r2 to have all ${PREFIXES} prefixes from r1`, procs: [r1.proc, r2.proc, inj] },
      );
    } finally {
      flowing = false;
      await Promise.all(shows);
    }
    const flowSeconds = Math.round(performance.now() - t0) / 1000;
    const after = await ups();
    // r1 holds the table too (from the injector), and sent all of it to r2.
    expect(after.inj.received).toBe(PREFIXES);
    expect(after.r2.advertised).toBe(PREFIXES);
    const elapsed = Math.floor((performance.now() - t0) / 1000);

    expect(inj.text()).toContain(`sent ${PREFIXES} prefixes`);
    expect(states).toEqual([]);
    for (const k of ["inj", "r2", "r1"] as const) {
      expect(after[k].state).toBe("Established");
      // Still the session of the start: never dropped and re-established in between.
      expect(after[k].uptimeSeconds).toBeGreaterThanOrEqual(before[k].uptimeSeconds + elapsed - 1);
    }
    expect(drops(r1.proc)).toEqual([]);
    expect(drops(r2.proc)).toEqual([]);
    expect(inj.text()).not.toMatch(/Established ->|NOTIFICATION/);
    // show rib ran (to the end, valid JSON) while the table was arriving, on both daemons.
    for (const d of [r1, r2]) expect(ribRuns.filter((r) => r.daemon === d.name).length).toBeGreaterThan(0);
    console.log(`table through r1 to r2 with show rib running: ${flowSeconds} s; show rib -j runs: ${JSON.stringify(ribRuns)}`);
    await inj.stop();
  }, 240_000);
});
