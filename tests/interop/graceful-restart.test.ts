/**
 * Graceful restart (issue 10 §1) against BIRD 2 and GoBGP, with `bgpctl run`
 * (the compiled binary) programming the kernel, in both roles:
 *
 * - restarting speaker: bgpctl SIGKILLed (a crash) or SIGTERMed (a planned
 *   restart) and started again on the same config and control socket. While
 *   it is away and while it comes back, `ip monitor route` in its namespace
 *   must show no deletion of a still-valid route, and BIRD and GoBGP must
 *   keep our prefix (polled every 100 ms). Back, our OPEN has the Restart
 *   State bit and the Forwarding State bit only for IPv4 (the family whose
 *   kernel routes were kept), selection waits for End-of-RIB from both
 *   peers, and only the routes the peers withdrew meanwhile leave the kernel.
 *   `bgpctl shutdown` afterwards is a Hard Reset: both peers drop our routes
 *   at once.
 * - receiving speaker: BIRD (`bird -R`) and GoBGP (`gobgpd -r`) SIGKILLed and
 *   started again: their routes stay in our kernel and at the other peer,
 *   marked stale in `show rib -j`, lose the mark when re-sent; a route not
 *   re-sent is swept at End-of-RIB. A peer that stays away longer than its
 *   restart time loses its routes then; with long-lived graceful restart
 *   (RFC 9494) they carry LLGR_STALE for the long-lived stale time first.
 *
 *   grl-a (BIRD-A, AS 65002) 192.0.2.2/25 ── 192.0.2.1/25   grl-d (bgpctl, AS 65001)
 *   grl-g (GoBGP-G, AS 65003) 192.0.2.130/25 ── 192.0.2.129/25 grl-d
 */
import { expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import {
  BgpctlDaemon,
  BirdInstance,
  type BirdConfigSpec,
  birdConfig,
  type DaemonConfigSpec,
  type GobgpConfigSpec,
  GobgpInstance,
  type Lab,
  type LabProcess,
  useLab,
} from "./lab.ts";
import { sleep } from "../support/wait.ts";

let lab: Lab;
useLab("grl", (l) => (lab = l));

const D_A = "192.0.2.1";
const A = "192.0.2.2";
const D_G = "192.0.2.129";
const G = "192.0.2.130";
const AS_D = 65001;
const AS_A = 65002;
const AS_G = 65003;
/** Originated by bgpctl. */
const OURS = "203.0.113.0/25";
/** From BIRD-A: one it keeps across a restart, one it withdraws meanwhile. */
const A_KEEP = "198.51.100.0/26";
const A_GONE = "198.51.100.64/26";
/** From GoBGP-G, likewise. */
const G_KEEP = "198.51.100.128/26";
const G_GONE = "198.51.100.192/26";

interface Topo {
  d: string;
  a: string;
  g: string;
}
let topo: Topo | null = null;

/** The three namespaces, made once for the file. */
async function topology(): Promise<Topo> {
  if (topo) return topo;
  const d = await lab.addNamespace("grl-d");
  const a = await lab.addNamespace("grl-a");
  const g = await lab.addNamespace("grl-g");
  await lab.connect(d, a, { ifA: "veth-a", ifB: "veth-d", a: { ipv4: `${D_A}/25` }, b: { ipv4: `${A}/25` } });
  await lab.connect(d, g, { ifA: "veth-g", ifB: "veth-d", a: { ipv4: `${D_G}/25` }, b: { ipv4: `${G}/25` } });
  topo = { d, a, g };
  return topo;
}

/** bgpctl: kernel on; BIRD-A with IPv4 and IPv6 (no IPv6 route anywhere), GoBGP-G with IPv4. */
interface DOpts {
  /** Keys over BIRD-A's and GoBGP-G's peer entries. */
  peerA?: Record<string, unknown>;
  peerG?: Record<string, unknown>;
  /** Seconds of selection deferral after our restart (default 20). */
  selectionDeferral?: number;
  /** The FIB's start-up deadline, seconds (default 60). */
  startupDeadline?: number;
}

function dConfig(o: DOpts = {}): DaemonConfigSpec {
  return {
    asn: AS_D,
    routerId: D_A,
    listen: { address: "0.0.0.0", port: 179 },
    kernel: { enabled: true, startupDeadline: o.startupDeadline ?? 60 },
    gracefulRestart: { restartTime: 30, selectionDeferral: o.selectionDeferral ?? 20 },
    peers: [
      { address: A, remoteAs: AS_A, import: "all", export: "all", connectRetry: 1, holdTime: 9, families: ["ipv4", "ipv6"], ...o.peerA },
      { address: G, remoteAs: AS_G, import: "all", export: "all", connectRetry: 1, holdTime: 9, families: ["ipv4"], ...o.peerG },
    ],
    advertise: [{ prefix: OURS }],
  };
}

function birdSpec(routes: string[], gr: { restartTime: number; longLivedStaleTime?: number }): BirdConfigSpec {
  return {
    routerId: A,
    localAs: AS_A,
    peers: [{ name: "bgpctl", neighbor: D_A, remoteAs: AS_D, localAddress: A, families: ["ipv4", "ipv6"], export: "static", gracefulRestart: gr }],
    routes: routes.map((prefix) => ({ prefix })),
  };
}

function gobgpSpec(restartTime: number, adminDown = false, holdTime = 9): GobgpConfigSpec {
  return {
    as: AS_G,
    routerId: G,
    neighbors: [{ address: D_G, remoteAs: AS_D, localAddress: G, families: ["ipv4"], adminDown, holdTime, gracefulRestart: { restartTime, notification: true } }],
  };
}

/** Our kernel routes (protocol 186, main table) in grl-d. */
async function kernelRoutes(): Promise<string[]> {
  const r = await lab.exec(topo!.d, ["ip", "-j", "route", "show", "proto", "186"], { check: true });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as { dst: string }[]).map((x) => x.dst).sort() : [];
}

async function birdHas(bird: BirdInstance, prefix: string): Promise<boolean> {
  return (await bird.routes({ protocol: "bgpctl", table: "master4" })).some((r) => r.prefix === prefix);
}

async function gobgpHas(g: GobgpInstance, prefix: string): Promise<boolean> {
  return (await g.rib("ipv4")).some((r) => r.prefix === prefix);
}

/** BIRD's `show protocols all bgpctl` text of one capability section ("Local" or "Neighbor"). */
async function birdCaps(bird: BirdInstance, side: "Local" | "Neighbor"): Promise<string> {
  const raw = (await bird.protocol("bgpctl")).raw;
  const from = raw.indexOf(`${side} capabilities`);
  if (from < 0) throw new Error(`no ${side} capabilities in:\n${raw}`);
  const rest = raw.slice(from + 1);
  const end = rest.search(/\n\s*(Neighbor capabilities|Session:)/);
  return end < 0 ? rest : rest.slice(0, end);
}

/**
 * What must not happen during a restart: `ip -o monitor route` in grl-d
 * (started before, read after: a "Deleted" line for a route that stays
 * valid), and peers' tables polled every 100 ms (a prefix that must stay
 * there missing once, or a check failing, counts as a miss).
 */
class Watch {
  readonly monitor: LabProcess;
  readonly misses: string[] = [];
  samples = 0;
  private running = true;
  private readonly loop: Promise<void>;
  private readonly t0 = Date.now();

  constructor(checks: { what: string; ok: () => Promise<boolean> }[]) {
    this.monitor = lab.spawn(topo!.d, ["ip", "-o", "monitor", "route"], { name: "ip-monitor" });
    this.loop = (async () => {
      // Bounded: at most 2 minutes of samples.
      for (let i = 0; i < 1200 && this.running; i++) {
        const started = Date.now();
        await Promise.all(
          checks.map(async (c) => {
            let ok = false;
            let why = "absent";
            // A check that cannot answer (birdc busy with a reconfiguration, say) is asked once more.
            for (let attempt = 0; attempt < 2; attempt++) {
              try {
                ok = await c.ok();
                why = "absent";
                break;
              } catch (e) {
                why = `check failed: ${(e as Error).message.replace(/\s+/g, " ").slice(0, 400)}`;
                await sleep(50);
              }
            }
            if (!ok) this.misses.push(`${c.what} at +${Date.now() - this.t0} ms: ${why}`);
          }),
        );
        this.samples++;
        await sleep(Math.max(0, 100 - (Date.now() - started)));
      }
    })();
  }

  /** Give the monitor a moment to subscribe (it prints nothing until a change). */
  async ready(): Promise<void> {
    await sleep(300);
    if (!this.monitor.running) throw new Error(`ip monitor exited:\n${this.monitor.describe()}`);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await sleep(200); // the last kernel changes reach the monitor
    await this.monitor.stop("SIGTERM", 3000);
  }

  /** The "Deleted" lines of the monitor that name `prefix`. */
  deleted(prefix: string): string[] {
    return this.monitor.lines.filter((l) => l.text.startsWith("Deleted") && l.text.split(/\s+/).includes(prefix)).map((l) => l.text);
  }
}

/** Everything up: BIRD-A (A_KEEP, A_GONE), GoBGP-G (G_KEEP, G_GONE), bgpctl; every table complete. */
async function startAll(opts: { birdGr: { restartTime: number; longLivedStaleTime?: number }; gobgpRestart: number; gobgpHold?: number; d?: DOpts }) {
  const t = await topology();
  // A daemon of an earlier test stopped gracefully (SIGTERM) and left its kernel routes: start clean.
  await lab.exec(t.d, ["ip", "route", "flush", "proto", "186"], { check: true });
  const birdA = await BirdInstance.start(lab, t.a, birdSpec([A_KEEP, A_GONE], opts.birdGr), "bird-a");
  const g = await GobgpInstance.start(lab, t.g, gobgpSpec(opts.gobgpRestart, false, opts.gobgpHold), "gobgp-g");
  await g.addRoute({ prefix: G_KEEP });
  await g.addRoute({ prefix: G_GONE });
  const d = await BgpctlDaemon.start(lab, t.d, dConfig(opts.d), "bgpctl");
  await d.waitEstablished(A, 20_000, [birdA.proc]);
  await d.waitEstablished(G, 20_000, [g.proc]);
  await lab.waitFor(
    async () => {
      const k = await kernelRoutes();
      return [A_KEEP, A_GONE, G_KEEP, G_GONE].every((p) => k.includes(p));
    },
    { timeoutMs: 15_000, what: "all four peer routes in grl-d's kernel" },
  );
  await lab.waitFor(async () => (await birdHas(birdA, OURS)) && (await birdHas(birdA, G_KEEP)), { timeoutMs: 15_000, what: "BIRD-A to have our prefix and G_KEEP" });
  await lab.waitFor(async () => (await gobgpHas(g, OURS)) && (await gobgpHas(g, A_KEEP)), { timeoutMs: 15_000, what: "GoBGP-G to have our prefix and A_KEEP" });
  return { t, birdA, g, d };
}

/**
 * bgpctl restarts (SIGKILL or SIGTERM) while BIRD-A and GoBGP-G help; each
 * withdraws one route while bgpctl is away. Returns what the caller checks
 * further.
 */
async function ourRestart(how: "SIGKILL" | "SIGTERM") {
  const { birdA, g, d } = await startAll({ birdGr: { restartTime: 30 }, gobgpRestart: 30 });
  expect((await d.neighbor(G)).gracefulRestart?.notification).toBe(true);
  expect((await d.neighbor(A)).gracefulRestart?.notification).toBe(false); // BIRD 2.0 has no RFC 8538
  const watch = new Watch([
    { what: `BIRD-A: ${OURS}`, ok: () => birdHas(birdA, OURS) },
    { what: `BIRD-A: ${G_KEEP} (through us)`, ok: () => birdHas(birdA, G_KEEP) },
    { what: `GoBGP-G: ${OURS}`, ok: () => gobgpHas(g, OURS) },
    { what: `GoBGP-G: ${A_KEEP} (through us)`, ok: () => gobgpHas(g, A_KEEP) },
  ]);
  await watch.ready();
  await d.waitEstablished(A);
  await d.waitEstablished(G);
  if (how === "SIGKILL") {
    d.proc.signal("SIGKILL");
    expect(await d.proc.waitExit(5000)).toBe(true);
  } else {
    const from = d.proc.lines.length;
    expect(await d.stop()).toBe(0);
    // What the stop logged (a collision at start may have sent a NOTIFICATION before).
    const stopLog = d.proc.lines.slice(from).map((l) => l.text).join("\n");
    expect(stopLog).toContain("graceful restart: stopped; 2 peers keep our routes");
    expect(stopLog).not.toContain("sent NOTIFICATION");
  }
  expect(existsSync(`${d.socket}.restart`)).toBe(true);
  // Both peers go into their helper mode: no NOTIFICATION came, they keep our routes.
  await lab.waitFor(async () => (await birdA.protocol("bgpctl")).raw.includes("Neighbor graceful restart active"), {
    timeoutMs: 10_000,
    what: "BIRD-A: neighbor graceful restart active",
  });
  await lab.waitFor(async () => (await g.neighbor(D_G)).state !== "established", { timeoutMs: 10_000, what: "GoBGP-G: session down" });
  expect(birdA.proc.text()).toContain("Neighbor graceful restart detected");
  // While we are away: BIRD-A and GoBGP-G each withdraw one route.
  writeFileSync(birdA.confPath, birdConfig(birdSpec([A_KEEP], { restartTime: 30 })));
  await birdA.command("configure");
  await g.delRoute(G_GONE);
  await sleep(500);
  const d2 = await BgpctlDaemon.restart(d);
  await d2.waitEstablished(A, 20_000, [birdA.proc]);
  await d2.waitEstablished(G, 20_000, [g.proc]);
  await lab.waitFor(() => d2.proc.text().includes("graceful restart: selection deferral ended (End-of-RIB from every graceful-restart peer)"), {
    timeoutMs: 15_000,
    what: "bgpctl: selection deferral ended on End-of-RIB",
  });
  // Only what the peers withdrew leaves the kernel (after the sync), the rest stays.
  await lab.waitFor(
    async () => {
      const k = await kernelRoutes();
      return !k.includes(A_GONE) && !k.includes(G_GONE) && k.includes(A_KEEP) && k.includes(G_KEEP) ? k : null;
    },
    { timeoutMs: 15_000, what: "grl-d's kernel: A_GONE and G_GONE removed, A_KEEP and G_KEEP kept" },
  );
  await lab.waitFor(async () => !(await birdA.protocol("bgpctl")).raw.includes("Neighbor graceful restart active"), {
    timeoutMs: 15_000,
    what: "BIRD-A: graceful restart of bgpctl done",
  });
  await lab.waitFor(async () => !(await birdHas(birdA, G_GONE)) && !(await gobgpHas(g, A_GONE)), {
    timeoutMs: 15_000,
    what: "BIRD-A and GoBGP-G: the routes withdrawn meanwhile swept",
  });
  await watch.stop();
  expect(watch.samples).toBeGreaterThan(10);
  expect(watch.misses).toEqual([]);
  expect([...watch.deleted(A_KEEP), ...watch.deleted(G_KEEP)]).toEqual([]);
  // The monitor did see the deletions that had to happen.
  expect(watch.deleted(A_GONE).length).toBeGreaterThan(0);
  expect(watch.deleted(G_GONE).length).toBeGreaterThan(0);
  // Our OPEN to BIRD-A: Restart State bit, Forwarding State bit for IPv4 only (no IPv6 route was in the kernel).
  const caps = await birdCaps(birdA, "Neighbor");
  expect(caps).toContain("Restart recovery");
  expect(caps).toMatch(/AF supported:\s+ipv4 ipv6/);
  expect(caps).toMatch(/AF preserved:\s+ipv4\s*(\n|$)/);
  const log = d2.proc.text();
  expect(log).toContain("graceful restart: restarting (found");
  expect(log).not.toContain("selection deferral of");
  return { birdA, g, d: d2 };
}

test(
  "bgpctl SIGKILLed and restarted: no kernel delete and no withdrawal at BIRD or GoBGP of a valid route; R bit, F bit for IPv4 only; deferral ends on End-of-RIB; only what the peers withdrew is removed",
  async () => {
    await ourRestart("SIGKILL");
  },
  90_000,
);

test(
  "bgpctl SIGTERM (planned restart): sessions close without NOTIFICATION, same guarantees; then `bgpctl shutdown` is a Hard Reset: BIRD and GoBGP drop our routes at once",
  async () => {
    const { birdA, g, d } = await ourRestart("SIGTERM");
    const t0 = Date.now();
    expect(await d.shutdown()).toBe(0);
    const log = d.proc.text();
    expect(log).toMatch(new RegExp(`neighbor ${G.replace(/\./g, "\\.")} .*sent NOTIFICATION.*Hard Reset`, "i"));
    expect(existsSync(`${d.socket}.restart`)).toBe(false);
    await lab.waitFor(async () => !(await birdHas(birdA, OURS)) && !(await gobgpHas(g, OURS)), { timeoutMs: 5000, what: "BIRD-A and GoBGP-G to drop our prefix" });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect((await birdA.protocol("bgpctl")).raw).not.toContain("Neighbor graceful restart active");
    // The kernel routes went with the shutdown (retainOnExit is off).
    expect(await kernelRoutes()).toEqual([]);
  },
  90_000,
);

/** `show rib PREFIX -j`: the entry learned from `peer`, or null. */
async function ribFrom(d: BgpctlDaemon, prefix: string, peer: string) {
  return (await d.rib(prefix)).find((e) => e.prefix === prefix && e.peer === peer) ?? null;
}

test(
  "BIRD restarting (SIGKILL, then bird -R): its routes stay in our kernel and at GoBGP, stale while it is away, refreshed when re-sent, the one not re-sent swept at End-of-RIB; killed again and not back: removed after its restart time of 3 s",
  async () => {
    const { t, birdA, g, d } = await startAll({ birdGr: { restartTime: 20 }, gobgpRestart: 30 });
    expect((await d.neighbor(A)).gracefulRestart?.peerRestartTime).toBe(20);
    const watch = new Watch([{ what: `GoBGP-G: ${A_KEEP} (through us)`, ok: () => gobgpHas(g, A_KEEP) }]);
    await watch.ready();
    birdA.proc.signal("SIGKILL");
    expect(await birdA.proc.waitExit(5000)).toBe(true);
    // Kept, marked stale, for BIRD's restart time.
    const n = await lab.waitFor(async () => (await d.neighbor(A)).gracefulRestart?.stale ?? null, { timeoutMs: 10_000, what: "bgpctl: BIRD-A's routes kept stale" });
    expect(n.phase).toBe("restart");
    expect(n.families).toContain("ipv4-unicast");
    expect(n.secondsLeft).toBeGreaterThan(10);
    expect(n.secondsLeft).toBeLessThanOrEqual(20);
    await lab.waitFor(async () => (await ribFrom(d, A_KEEP, A))?.stale === true && (await ribFrom(d, A_GONE, A))?.stale === true, {
      timeoutMs: 5000,
      what: "show rib: BIRD-A's routes marked stale",
    });
    expect((await d.command("show", "rib", A_KEEP)).split("\n").some((l) => l.includes(A_KEEP) && /\bS/.test(l))).toBe(true);
    // Back with the Restart State bit (and its restart time now 3 s), without A_GONE.
    const birdA2 = await BirdInstance.restart(birdA, birdSpec([A_KEEP], { restartTime: 3 }), true);
    await d.waitEstablished(A, 20_000, [birdA2.proc]);
    expect(await birdCaps(birdA2, "Local")).toContain("Restart recovery");
    await lab.waitFor(async () => (await ribFrom(d, A_KEEP, A))?.stale === false && (await ribFrom(d, A_GONE, A)) === null, {
      timeoutMs: 15_000,
      what: "show rib: A_KEEP refreshed (not stale), A_GONE swept",
    });
    await lab.waitFor(async () => !(await kernelRoutes()).includes(A_GONE) && !(await gobgpHas(g, A_GONE)), {
      timeoutMs: 5000,
      what: "A_GONE out of our kernel and GoBGP-G",
    });
    expect((await d.neighbor(A)).gracefulRestart?.stale).toBeNull();
    expect(d.proc.text()).toContain("graceful restart (connection lost): keeping its ipv4-unicast, ipv6-unicast routes as stale for its restart time of 20s");
    await watch.stop();
    expect(watch.misses).toEqual([]);
    expect(watch.deleted(A_KEEP)).toEqual([]);
    expect(watch.deleted(A_GONE).length).toBeGreaterThan(0);
    expect((await kernelRoutes()).includes(A_KEEP)).toBe(true);

    // The restart time: killed again, not back. Kept for 3 s (BIRD's new restart time), then removed.
    expect((await d.neighbor(A)).gracefulRestart?.peerRestartTime).toBe(3);
    const t0 = Date.now();
    birdA2.proc.signal("SIGKILL");
    expect(await birdA2.proc.waitExit(5000)).toBe(true);
    await lab.waitFor(async () => (await ribFrom(d, A_KEEP, A))?.stale === true, { timeoutMs: 2000, what: "A_KEEP stale again" });
    await lab.waitFor(async () => !(await kernelRoutes()).includes(A_KEEP), { timeoutMs: 10_000, what: "A_KEEP out of the kernel after the restart time" });
    const gone = Date.now() - t0;
    expect(gone).toBeGreaterThan(2500);
    expect(gone).toBeLessThan(7000);
    expect(await ribFrom(d, A_KEEP, A)).toBeNull();
    await lab.waitFor(async () => !(await gobgpHas(g, A_KEEP)), { timeoutMs: 5000, what: "GoBGP-G: A_KEEP withdrawn" });
    expect(d.proc.text()).toContain("restart time over, not back");
    void t;
  },
  90_000,
);

test(
  "GoBGP restarting (SIGKILL, then gobgpd -r): its routes stay in our kernel and at BIRD, stale while it is away, refreshed when re-sent, the one not re-sent swept at End-of-RIB",
  async () => {
    const { birdA, g, d } = await startAll({ birdGr: { restartTime: 30 }, gobgpRestart: 20 });
    expect((await d.neighbor(G)).gracefulRestart?.peerRestartTime).toBe(20);
    const watch = new Watch([{ what: `BIRD-A: ${G_KEEP} (through us)`, ok: () => birdHas(birdA, G_KEEP) }]);
    await watch.ready();
    g.proc.signal("SIGKILL");
    expect(await g.proc.waitExit(5000)).toBe(true);
    const n = await lab.waitFor(async () => (await d.neighbor(G)).gracefulRestart?.stale ?? null, { timeoutMs: 10_000, what: "bgpctl: GoBGP-G's routes kept stale" });
    expect(n).toMatchObject({ phase: "restart", families: ["ipv4-unicast"] });
    await lab.waitFor(async () => (await ribFrom(d, G_KEEP, G))?.stale === true && (await ribFrom(d, G_GONE, G))?.stale === true, {
      timeoutMs: 5000,
      what: "show rib: GoBGP-G's routes marked stale",
    });
    // Back with -r (Restart State and Forwarding State bits): the session starts once G_KEEP is in its table.
    const g2 = await GobgpInstance.restart(g, gobgpSpec(20, true), true);
    await g2.addRoute({ prefix: G_KEEP });
    await g2.enable(D_G);
    await d.waitEstablished(G, 20_000, [g2.proc]);
    await lab.waitFor(async () => (await ribFrom(d, G_KEEP, G))?.stale === false && (await ribFrom(d, G_GONE, G)) === null, {
      timeoutMs: 15_000,
      what: "show rib: G_KEEP refreshed (not stale), G_GONE swept",
    });
    await lab.waitFor(async () => !(await kernelRoutes()).includes(G_GONE) && !(await birdHas(birdA, G_GONE)), {
      timeoutMs: 5000,
      what: "G_GONE out of our kernel and BIRD-A",
    });
    expect((await d.neighbor(G)).gracefulRestart?.stale).toBeNull();
    // GoBGP-G waited for our End-of-RIB (it restarted), and had ours.
    await lab.waitFor(async () => await gobgpHas(g2, OURS), { timeoutMs: 10_000, what: "GoBGP-G: our prefix again" });
    await watch.stop();
    expect(watch.misses).toEqual([]);
    expect(watch.deleted(G_KEEP)).toEqual([]);
    expect(watch.deleted(G_GONE).length).toBeGreaterThan(0);
    expect((await kernelRoutes()).includes(G_KEEP)).toBe(true);
  },
  90_000,
);

test(
  "long-lived graceful restart with BIRD (RFC 9494): killed and not back, its routes carry LLGR_STALE after its restart time of 2 s, stay installed, are withdrawn from GoBGP (no LLGR), then go after its long-lived stale time of 4 s",
  async () => {
    const { birdA, g, d } = await startAll({ birdGr: { restartTime: 2, longLivedStaleTime: 4 }, gobgpRestart: 30, d: { peerA: { gracefulRestart: { longLivedStaleTime: 60 } } } });
    expect((await d.neighbor(A)).gracefulRestart).toMatchObject({ longLived: true, peerRestartTime: 2 });
    const t0 = Date.now();
    birdA.proc.signal("SIGKILL");
    expect(await birdA.proc.waitExit(5000)).toBe(true);
    await lab.waitFor(async () => (await ribFrom(d, A_KEEP, A))?.stale === true, { timeoutMs: 2000, what: "A_KEEP stale" });
    expect((await ribFrom(d, A_KEEP, A))?.communities).not.toContain("65535:6");
    const r = await lab.waitFor(
      async () => {
        const e = await ribFrom(d, A_KEEP, A);
        return e?.communities.includes("65535:6") ? e : null;
      },
      { timeoutMs: 5000, what: "A_KEEP with LLGR_STALE" },
    );
    expect(Date.now() - t0).toBeGreaterThan(1500);
    expect(r).toMatchObject({ stale: true, best: true });
    expect((await d.neighbor(A)).gracefulRestart?.stale?.phase).toBe("long-lived");
    // The only route for the prefix: least preferred, still the best, still installed.
    expect(await kernelRoutes()).toContain(A_KEEP);
    // Not for GoBGP-G, which does no LLGR: withdrawn there (RFC 9494: LLGR_STALE routes only to LLGR speakers).
    expect((await d.neighbor(G)).gracefulRestart?.longLived).toBe(false);
    await lab.waitFor(async () => !(await gobgpHas(g, A_KEEP)), { timeoutMs: 2000, what: "GoBGP-G (no LLGR): A_KEEP withdrawn once LLGR_STALE" });
    expect(await kernelRoutes()).toContain(A_KEEP);
    await lab.waitFor(async () => (await ribFrom(d, A_KEEP, A)) === null && !(await kernelRoutes()).includes(A_KEEP), {
      timeoutMs: 10_000,
      what: "A_KEEP removed after the long-lived stale time",
    });
    const gone = Date.now() - t0;
    expect(gone).toBeGreaterThan(5000);
    expect(gone).toBeLessThan(10_000);
    expect((await d.neighbor(A)).gracefulRestart?.stale).toBeNull();
  },
  60_000,
);

test(
  "GoBGP frozen (SIGSTOP): our hold timer expires and we send a NOTIFICATION; with RFC 8538 negotiated that is a restart: its routes stay stale in the kernel and at BIRD while it is frozen, and are there, not stale, once it is back",
  async () => {
    const { birdA, g, d } = await startAll({ birdGr: { restartTime: 30 }, gobgpRestart: 20, gobgpHold: 3, d: { peerG: { holdTime: 3 } } });
    expect((await d.neighbor(G)).gracefulRestart?.notification).toBe(true);
    const watch = new Watch([{ what: `BIRD-A: ${G_KEEP} (through us)`, ok: () => birdHas(birdA, G_KEEP) }]);
    await watch.ready();
    g.pause();
    try {
      await lab.waitFor(async () => (await ribFrom(d, G_KEEP, G))?.stale === true, { timeoutMs: 8000, what: "GoBGP-G's routes stale after our hold timer" });
      expect(d.proc.text()).toMatch(/neighbor 192\.0\.2\.130 .*sent NOTIFICATION Hold Timer Expired/i);
      expect(d.proc.text()).toContain("neighbor 192.0.2.130 (AS 65003): graceful restart (NOTIFICATION (RFC 8538)): keeping its ipv4-unicast routes as stale for its restart time of 20s");
      expect((await d.neighbor(G)).gracefulRestart?.stale?.phase).toBe("restart");
      await sleep(1000);
      // Checked up to here: GoBGP did not restart, so its next OPEN has no Forwarding State bit and
      // RFC 4724 §4.2 has its stale routes removed when it is back (replaced at once by its UPDATEs).
      await watch.stop();
    } finally {
      g.resume();
    }
    expect(watch.misses).toEqual([]);
    expect([...watch.deleted(G_KEEP), ...watch.deleted(G_GONE)]).toEqual([]);
    await d.waitEstablished(G, 20_000, [g.proc]);
    await lab.waitFor(async () => (await ribFrom(d, G_KEEP, G))?.stale === false && (await d.neighbor(G)).gracefulRestart?.stale === null, {
      timeoutMs: 15_000,
      what: "GoBGP-G back: its routes there, not stale",
    });
    await lab.waitFor(async () => (await kernelRoutes()).join() === [A_KEEP, A_GONE, G_KEEP, G_GONE].sort().join() && (await birdHas(birdA, G_KEEP)), {
      timeoutMs: 10_000,
      what: "GoBGP-G's routes in our kernel and at BIRD-A",
    });
  },
  60_000,
);

test(
  "bgpctl restarts while GoBGP stays away: selection deferral ends on its timer (4 s), BIRD gets our table and never lost our prefix; GoBGP's old kernel routes go at the FIB's start-up deadline",
  async () => {
    const { birdA, g, d } = await startAll({ birdGr: { restartTime: 30 }, gobgpRestart: 30, d: { selectionDeferral: 4, startupDeadline: 6 } });
    const watch = new Watch([{ what: `BIRD-A: ${OURS}`, ok: () => birdHas(birdA, OURS) }]);
    await watch.ready();
    d.proc.signal("SIGKILL");
    g.proc.signal("SIGKILL");
    expect(await d.proc.waitExit(5000)).toBe(true);
    expect(await g.proc.waitExit(5000)).toBe(true);
    const d2 = await BgpctlDaemon.restart(d);
    const t0 = Date.now();
    await d2.waitEstablished(A, 20_000, [birdA.proc]);
    await lab.waitFor(() => d2.proc.text().includes("graceful restart: selection deferral ended (selection deferral of 4s over, still waiting for 192.0.2.130)"), {
      timeoutMs: 10_000,
      what: "bgpctl: selection deferral ended by its timer",
    });
    const deferred = Date.now() - t0;
    expect(deferred).toBeGreaterThan(3000);
    expect(deferred).toBeLessThan(7000);
    // BIRD-A gets our table and End-of-RIB: its graceful restart of us is over, G_KEEP (no longer ours to give) swept there.
    await lab.waitFor(async () => !(await birdA.protocol("bgpctl")).raw.includes("Neighbor graceful restart active") && !(await birdHas(birdA, G_KEEP)), {
      timeoutMs: 10_000,
      what: "BIRD-A: our End-of-RIB, G_KEEP swept",
    });
    // The kernel: BIRD-A's routes stay; GoBGP-G's (never synced) go at the start-up deadline (max of 6 s and the deferral).
    await lab.waitFor(async () => !(await kernelRoutes()).includes(G_KEEP), { timeoutMs: 10_000, what: "G_KEEP out of the kernel at the start-up deadline" });
    expect(Date.now() - t0).toBeGreaterThan(5000);
    expect(await kernelRoutes()).toEqual([A_KEEP, A_GONE]);
    await watch.stop();
    expect(watch.misses).toEqual([]);
    expect([...watch.deleted(A_KEEP), ...watch.deleted(A_GONE)]).toEqual([]);
    expect(watch.deleted(G_KEEP).length).toBeGreaterThan(0);
  },
  60_000,
);

test(
  "bgpctl and GoBGP restart at once (SIGKILL both; gobgpd -r): both deferrals end without their timers; our kernel keeps GoBGP's routes, BIRD keeps our prefix",
  async () => {
    const { birdA, g, d } = await startAll({ birdGr: { restartTime: 30 }, gobgpRestart: 30, d: { selectionDeferral: 30 } });
    const watch = new Watch([{ what: `BIRD-A: ${OURS}`, ok: () => birdHas(birdA, OURS) }]);
    await watch.ready();
    d.proc.signal("SIGKILL");
    g.proc.signal("SIGKILL");
    expect(await d.proc.waitExit(5000)).toBe(true);
    expect(await g.proc.waitExit(5000)).toBe(true);
    const d2 = await BgpctlDaemon.restart(d);
    const g2 = await GobgpInstance.restart(g, gobgpSpec(30, true), true);
    await g2.addRoute({ prefix: G_KEEP });
    await g2.enable(D_G);
    const t0 = Date.now();
    await d2.waitEstablished(G, 20_000, [g2.proc]);
    await lab.waitFor(() => d2.proc.text().includes("graceful restart: selection deferral ended (End-of-RIB from every graceful-restart peer)"), {
      timeoutMs: 10_000,
      what: "bgpctl: selection deferral ended without its timer",
    });
    // GoBGP got our table and End-of-RIB, finished its own deferral and sent its routes.
    await lab.waitFor(async () => (await gobgpHas(g2, OURS)) && (await ribFrom(d2, G_KEEP, G)) !== null, { timeoutMs: 10_000, what: "GoBGP-G has our prefix, we have G_KEEP" });
    expect(Date.now() - t0).toBeLessThan(10_000);
    await lab.waitFor(async () => !(await kernelRoutes()).includes(G_GONE), { timeoutMs: 10_000, what: "G_GONE (not re-sent) out of the kernel" });
    await watch.stop();
    expect(watch.misses).toEqual([]);
    expect([...watch.deleted(G_KEEP), ...watch.deleted(A_KEEP), ...watch.deleted(A_GONE)]).toEqual([]);
    expect(await kernelRoutes()).toEqual([A_KEEP, A_GONE, G_KEEP].sort());
    expect(d2.proc.text()).not.toContain("selection deferral of 30s over");
  },
  60_000,
);
