/**
 * Peer failures (issue 10 §5): `bgpctl run` with the kernel on, between
 * BIRD-A (sends routes) and BIRD-B (receives them through us). BIRD-A is
 * SIGKILLed, cut off silently, and frozen (SIGSTOP); each time the failure
 * must be detected (TCP close, or the 3 s hold timer), BIRD-A's routes must
 * leave our kernel and BIRD-B, and when BIRD-A returns the session comes back
 * with its routes. While BIRD-A is away our connection attempts back off
 * (spaced, never a tight loop). Graceful restart is off on the BIRD side, so
 * nothing is kept stale.
 *
 *   flt-a (BIRD-A, AS 65002) 192.0.2.2/25 ─┐
 *                                         flt-sw (bridge br0)
 *   flt-d (bgpctl, AS 65001) 192.0.2.1/25 ─┘
 *                            192.0.2.129/25 ── 192.0.2.130/25 flt-b (BIRD-B, AS 65003)
 *
 * The A side goes through a bridge so that the link can be cut silently
 * (`ip link set … nomaster`: both carriers stay up, packets just stop).
 */
import { expect, test } from "bun:test";
import { BgpctlDaemon, BirdInstance, type Lab, useLab } from "./lab.ts";

let lab: Lab;
useLab("flt", (l) => (lab = l));

const D_A = "192.0.2.1";
const A = "192.0.2.2";
const D_B = "192.0.2.129";
const B = "192.0.2.130";
const ROUTES = ["198.51.100.0/25", "198.51.100.128/25", "203.0.113.0/24"];
const HOLD = 3;
/** Seconds between our connection attempts while BIRD-A is away. */
const CONNECT_RETRY = 2;

interface Topo {
  d: string;
  a: string;
  b: string;
  sw: string;
  /** The bridge port facing flt-a, in flt-sw. */
  swPortA: string;
}

async function topology(): Promise<Topo> {
  const d = await lab.addNamespace("flt-d");
  const a = await lab.addNamespace("flt-a");
  const b = await lab.addNamespace("flt-b");
  const sw = await lab.addNamespace("flt-sw");
  const da = await lab.connect(d, sw, { ifA: "veth-sw", ifB: "sw-d", a: { ipv4: `${D_A}/25` }, b: {} });
  const aa = await lab.connect(a, sw, { ifA: "veth-sw", ifB: "sw-a", a: { ipv4: `${A}/25` }, b: {} });
  await lab.connect(d, b, { ifA: "veth-b", ifB: "veth-d", a: { ipv4: `${D_B}/25` }, b: { ipv4: `${B}/25` } });
  for (const argv of [
    ["ip", "link", "add", "br0", "type", "bridge"],
    ["ip", "link", "set", da.ifB, "master", "br0"],
    ["ip", "link", "set", aa.ifB, "master", "br0"],
    ["ip", "link", "set", "br0", "up"],
  ]) {
    await lab.exec(sw, argv, { check: true });
  }
  return { d, a, b, sw, swPortA: aa.ifB };
}

/** Our kernel routes (protocol 186 in the main table) in flt-d. */
async function kernelRoutes(d: string): Promise<string[]> {
  const r = await lab.exec(d, ["ip", "-j", "route", "show", "proto", "186"], { check: true });
  return r.stdout.trim() ? (JSON.parse(r.stdout) as { dst: string }[]).map((x) => x.dst).sort() : [];
}

/** BIRD-B's routes learned from us. */
async function birdBRoutes(birdB: BirdInstance): Promise<string[]> {
  return (await birdB.routes({ protocol: "bgpctl", table: "master4" })).map((r) => r.prefix).sort();
}

test(
  "BIRD-A SIGKILLed, cut off silently, frozen: detected (TCP, hold timer), routes out of the kernel and BIRD-B, back with back-off when BIRD-A returns",
  async () => {
    const t = await topology();
    const birdA = await BirdInstance.start(
      lab,
      t.a,
      {
        routerId: A,
        localAs: 65002,
        peers: [{ name: "bgpctl", neighbor: D_A, localAddress: A, remoteAs: 65001, holdTime: HOLD, families: ["ipv4"], export: "static", extra: ["graceful restart off;"] }],
        routes: ROUTES.map((prefix) => ({ prefix })),
      },
      "bird-a",
    );
    const birdB = await BirdInstance.start(
      lab,
      t.b,
      { routerId: B, localAs: 65003, peers: [{ name: "bgpctl", neighbor: D_B, localAddress: B, remoteAs: 65001, families: ["ipv4"], export: "none", extra: ["graceful restart off;"] }] },
      "bird-b",
    );
    const daemon = await BgpctlDaemon.start(lab, t.d, {
      asn: 65001,
      routerId: D_A,
      listen: { address: "0.0.0.0", port: 179 },
      log: { level: "debug" },
      kernel: { enabled: true, startupDeadline: 5 },
      peers: [
        { address: A, remoteAs: 65002, localAddress: D_A, holdTime: HOLD, connectRetry: CONNECT_RETRY, families: ["ipv4"], import: "all", export: "none" },
        { address: B, remoteAs: 65003, localAddress: D_B, families: ["ipv4"], import: "none", export: "all" },
      ],
    });
    const procs = [daemon.proc, birdA.proc, birdB.proc];
    let bird = birdA;

    /** Up: the session is Established and the routes are in our kernel and at BIRD-B. */
    const routesEverywhere = async (what: string, timeoutMs: number) => {
      await daemon.waitEstablished(A, timeoutMs, procs);
      await lab.waitFor(async () => (await kernelRoutes(t.d)).join() === ROUTES.join() && (await birdBRoutes(birdB)).join() === ROUTES.join(), { what: `${what}: BIRD-A's routes in our kernel and at BIRD-B`, timeoutMs, procs });
    };
    /** Down: the routes left our kernel and BIRD-B within `withinMs` of `since`; returns how long it took. */
    const routesGone = async (what: string, since: number, withinMs: number) => {
      await lab.waitFor(async () => (await kernelRoutes(t.d)).length === 0 && (await birdBRoutes(birdB)).length === 0, { what: `${what}: BIRD-A's routes out of our kernel and BIRD-B`, timeoutMs: withinMs, intervalMs: 50, procs });
      return Date.now() - since;
    };
    /** BIRD-B's session with us never went down. */
    const bUp = async () => expect((await daemon.neighbor(B)).state).toBe("Established");

    await daemon.waitEstablished(B, 20_000, procs);
    await routesEverywhere("start", 20_000);
    const bSince = Date.now() - (await daemon.neighbor(B)).uptimeSeconds * 1000;

    // (1) SIGKILL: the kernel closes BIRD-A's socket, our session sees the FIN at once.
    let t0 = Date.now();
    bird.proc.signal("SIGKILL");
    const killMs = await routesGone("SIGKILL", t0, 5_000);
    expect(killMs).toBeLessThan(2_000); // no hold timer involved
    expect((await daemon.neighbor(A)).state).not.toBe("Established");
    await bUp();
    // BIRD-A stays away for 10 s: our connection attempts (refused) wait the
    // idle hold first, then are spaced by ConnectRetry (with its jitter, at
    // least 0.75 x 2 s): never a tight loop.
    const awayFrom = Date.now();
    await Bun.sleep(10_000);
    const attempts = connectAttempts(daemon.proc.text()).filter((at) => at >= t0);
    const firstAfter = (attempts[0] ?? Infinity) - t0;
    const gaps = attempts.slice(1).map((at, i) => at - attempts[i]!);
    expect(attempts.length, "it does retry").toBeGreaterThanOrEqual(2);
    expect(firstAfter, "the first attempt waits the idle hold (5 s, jittered)").toBeGreaterThanOrEqual(3_500);
    expect(Math.min(...gaps), `attempts spaced by ConnectRetry: ${gaps.join(", ")} ms`).toBeGreaterThanOrEqual(0.75 * CONNECT_RETRY * 1000 - 100);
    expect(attempts.length).toBeLessThanOrEqual(Math.ceil((Date.now() - awayFrom) / (0.75 * CONNECT_RETRY * 1000)) + 1);
    bird = await BirdInstance.startWithConfig(lab, t.a, birdA.confPath, "bird-a");
    await routesEverywhere("BIRD-A restarted", 60_000);

    // (2) Silent link cut: nothing tells us but the hold timer (3 s).
    t0 = Date.now();
    await lab.exec(t.sw, ["ip", "link", "set", t.swPortA, "nomaster"], { check: true });
    const cutMs = await routesGone("link cut", t0, (HOLD + 4) * 1000);
    expect(cutMs).toBeGreaterThanOrEqual((HOLD - 2) * 1000); // it was the hold timer, not something faster
    expect((await daemon.neighbor(A)).lastError).toContain("Hold Timer Expired");
    await bUp();
    await lab.exec(t.sw, ["ip", "link", "set", t.swPortA, "master", "br0"], { check: true });
    await routesEverywhere("link restored", 90_000);

    // (3) SIGSTOP: TCP stays open, keepalives stop; the hold timer fires.
    t0 = Date.now();
    bird.pause();
    const stopMs = await routesGone("SIGSTOP", t0, (HOLD + 4) * 1000);
    expect(stopMs).toBeGreaterThanOrEqual((HOLD - 2) * 1000);
    expect((await daemon.neighbor(A)).lastError).toContain("Hold Timer Expired");
    await bUp();
    bird.resume();
    await routesEverywhere("BIRD-A resumed", 120_000);

    // BIRD-B's session was never reset through all of it.
    const b = await daemon.neighbor(B);
    expect(b.state).toBe("Established");
    expect(Date.now() - b.uptimeSeconds * 1000 - bSince).toBeLessThan(2_000);
    expect(daemon.proc.running).toBe(true);
    console.log(`peer-failure: SIGKILL detected in ${killMs} ms, link cut in ${cutMs} ms, SIGSTOP in ${stopMs} ms (hold time ${HOLD} s); with BIRD-A away the first connection attempt after ${firstAfter} ms, then every ${gaps.join(", ")} ms`);
  },
  300_000,
);

/** When the daemon's outgoing connection attempts to BIRD-A were refused (ms since the epoch, from its log). */
function connectAttempts(log: string): number[] {
  return [...log.matchAll(/^(\S+Z) warn 192\.0\.2\.2: outgoing connection error: ECONNREFUSED/gm)].map((m) => Date.parse(m[1]!));
}
