/**
 * Graceful restart between two in-process routers on loopback (A at
 * 127.0.0.1, passive; B at 127.0.0.2, connecting to A's port, so B can be
 * stopped and started again): the receiving speaker keeps a restarting
 * peer's routes stale and sweeps them at End-of-RIB or when a timer ends;
 * Hard Reset (RFC 8538) and a peer without the capability flush at once;
 * long-lived GR moves them to LLGR_STALE; the restarting speaker sets the R
 * bit and holds its initial table until the peer's End-of-RIB. The
 * interop labs (tests/interop/graceful-restart.test.ts) do the same against
 * BIRD and GoBGP.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../lib/config/load.ts";
import { Log } from "../../lib/core/log.ts";
import { Router } from "../../lib/router/router.ts";
import type { RibEntry } from "../../lib/api/types.ts";
import { formatNeighbors } from "../../lib/api/format.ts";
import { waitFor } from "../support/wait.ts";
import { tempDirs } from "../support/tmp.ts";

const A = "127.0.0.1";
const B = "127.0.0.2";
const dir = tempDirs("bgpctl-gr-")();
const running = new Set<Router>();

afterEach(async () => {
  await Promise.all([...running].map((r) => r.stop()));
  running.clear();
});

interface Node {
  router: Router;
  lines: string[];
  file: string;
}

let seq = 0;

/** A router from YAML (a file beside its control socket), started; `socket` names the control socket (the restart marker sits beside it). */
async function start(address: string, body: string, socket: string, port = 0): Promise<Node> {
  const asn = address === A ? 65001 : 65002;
  const file = join(dir, `r${++seq}.yaml`);
  const text = `asn: ${asn}\nrouterId: ${address === A ? "192.0.2.1" : "192.0.2.2"}\nlisten: {address: ${address}, port: ${port}}\ncontrolSocket: ${join(dir, socket)}\n${body}`;
  writeFileSync(file, text);
  const lines: string[] = [];
  const router = new Router(parseConfig(text, file), file, new Log("debug", "text", (l) => lines.push(l)), {});
  await router.start();
  running.add(router);
  return { router, lines, file };
}

async function stop(n: Node, graceful: boolean): Promise<void> {
  running.delete(n.router);
  await n.router.stop({ graceful });
}

function rib(n: Node, prefix?: string): RibEntry[] {
  return [...n.router.rib(prefix ? { prefix } : {})];
}

function neighbor(n: Node, peer: string) {
  return n.router.neighbors().find((x) => x.address === peer)!;
}

async function until(what: string, fn: () => boolean, timeoutMs = 10_000): Promise<void> {
  await waitFor(fn, { timeoutMs, what });
}

/** A (passive) with B as a peer; B connects to A's port and originates `routes`. */
async function pair(opts: { aGr?: string; bGr?: string; routes?: string[]; socketB?: string } = {}): Promise<{ a: Node; b: Node; startB: () => Promise<Node> }> {
  const a = await start(A, `peers:\n  - {address: ${B}, remoteAs: 65002, passive: true, localAddress: ${A}, import: all, export: all}\n${opts.aGr ?? ""}`, `a${seq}.sock`);
  const port = a.router.engine.listener.endpoints[0]!.port;
  const socketB = opts.socketB ?? `b${seq}.sock`;
  const routes = opts.routes ?? ["198.51.100.0/24", "203.0.113.0/24"];
  const startB = () =>
    start(
      B,
      `peers:\n  - {address: ${A}, remoteAs: 65001, port: ${port}, localAddress: ${B}, connectRetry: 1, import: all, export: all}\nadvertise: [${routes.join(", ")}]\n${opts.bGr ?? ""}`,
      socketB,
    );
  const b = await startB();
  await until("B's routes at A", () => rib(a).length === routes.length);
  return { a, b, startB };
}

describe("graceful restart between two bgpctl routers", () => {
  test("a peer that stops gracefully: its routes stay, marked stale; back with the same routes: the marks go at its End-of-RIB; the others are swept", async () => {
    const { a, b } = await pair();
    expect(neighbor(a, B).gracefulRestart).toMatchObject({ enabled: true, peerRestartTime: 120, notification: true, stale: null });
    await stop(b, true);
    await until("A sees B down, B's routes marked stale", () => neighbor(a, B).state !== "Established" && rib(a).every((r) => r.stale));
    expect(rib(a).map((r) => [r.prefix, r.stale])).toEqual([
      ["198.51.100.0/24", true],
      ["203.0.113.0/24", true],
    ]);
    expect(neighbor(a, B).gracefulRestart!.stale).toMatchObject({ families: ["ipv4-unicast", "ipv6-unicast"], phase: "restart" });
    expect(formatNeighbors([neighbor(a, B)])).toMatch(
      /Graceful restart: peer restart time 120s, notification \(RFC 8538\), ipv4-unicast ipv6-unicast routes stale: peer restarting, 1[12]\ds left/,
    );
    expect(a.lines.some((l) => l.includes("keeping its ipv4-unicast, ipv6-unicast routes as stale for its restart time of 120s"))).toBe(true);

    // B comes back (a restart: its marker is there) with one of the two routes.
    running.delete(b.router);
    const b2 = await start(
      B,
      `peers:\n  - {address: ${A}, remoteAs: 65001, port: ${a.router.engine.listener.endpoints[0]!.port}, localAddress: ${B}, connectRetry: 1, import: all, export: all}\nadvertise: [198.51.100.0/24]\n`,
      b.router.config.controlSocket.split("/").at(-1)!,
    );
    expect(b2.lines.some((l) => l.includes("graceful restart: restarting"))).toBe(true);
    await until("B's End-of-RIB sweeps the stale route at A", () => rib(a).length === 1 && !rib(a)[0]!.stale).catch((e) => {
      throw new Error(`${e.message}\n${JSON.stringify(rib(a))}\nA:\n${a.lines.slice(-30).join("")}\nB:\n${b2.lines.slice(-30).join("")}`);
    });
    expect(rib(a)[0]!.prefix).toBe("198.51.100.0/24");
    expect(neighbor(a, B).gracefulRestart!.stale).toBeNull();
    // B, restarting, held its initial table until A's End-of-RIB, then sent it.
    await until("B's deferral ends", () => b2.lines.some((l) => l.includes("selection deferral ended (End-of-RIB from every graceful-restart peer)")));
  }, 30_000);

  test("bgpctl shutdown (not graceful): Hard Reset, the peer drops our routes at once and the restart marker goes", async () => {
    const { a, b } = await pair();
    const marker = `${b.router.config.controlSocket}.restart`;
    expect(existsSync(marker)).toBe(true);
    await stop(b, false);
    await until("A drops B's routes", () => rib(a).length === 0);
    // RFC 8538 §3: the Hard Reset carries the Cease it stands for, and its shutdown communication.
    expect(a.lines.some((l) => l.includes('received NOTIFICATION Cease/Hard Reset (6/9) for Administrative Shutdown: "bgpctl shutting down"'))).toBe(true);
    expect(existsSync(marker)).toBe(false);
  }, 30_000);

  test("restart time over before the peer is back: the stale routes are removed", async () => {
    const { a, b } = await pair({ bGr: "gracefulRestart: {restartTime: 1}\n" });
    await stop(b, true);
    await until("stale at A", () => rib(a).length === 2 && rib(a).every((r) => r.stale));
    await until("removed after B's restart time (1 s)", () => rib(a).length === 0, 5000);
    expect(a.lines.some((l) => l.includes("restart time over, not back"))).toBe(true);
  }, 30_000);

  test("long-lived graceful restart: after the restart time, LLGR_STALE and least preferred; removed after the long-lived time; NO_LLGR routes go at once", async () => {
    const llgr = "gracefulRestart: {restartTime: 1, longLivedStaleTime: 2}\n";
    const { a, b } = await pair({ aGr: llgr, bGr: llgr, routes: ["198.51.100.0/24", "203.0.113.0/24", "{prefix: 192.0.2.128/25, communities: [no-llgr]}"] });
    expect(neighbor(a, B).gracefulRestart!.longLived).toBe(true);
    await stop(b, true);
    await until("all three stale during the restart time", () => rib(a).length === 3 && rib(a).every((r) => r.stale));
    await until("LLGR_STALE at A; the NO_LLGR route gone", () => rib(a).length === 2 && rib(a).every((r) => r.stale && r.communities.includes("65535:6")), 5000);
    expect(rib(a).map((r) => r.prefix)).toEqual(["198.51.100.0/24", "203.0.113.0/24"]);
    expect(neighbor(a, B).gracefulRestart!.stale!.phase).toBe("long-lived");
    await until("removed after the long-lived stale time (2 s)", () => rib(a).length === 0, 6000);
  }, 30_000);

  test("restarting speaker: the initial table waits for End-of-RIB from every graceful-restart peer, at most selectionDeferral", async () => {
    const { a, b } = await pair({ bGr: "gracefulRestart: {selectionDeferral: 2}\n" });
    await stop(b, true);
    await until("stale at A", () => rib(a).every((r) => r.stale));
    // B comes back with a second peer that never answers: B waits for its End-of-RIB until the deferral ends.
    const port = a.router.engine.listener.endpoints[0]!.port;
    const t0 = performance.now();
    const b2 = await start(
      B,
      `peers:\n  - {address: ${A}, remoteAs: 65001, port: ${port}, localAddress: ${B}, connectRetry: 1, import: all, export: all}\n` +
        `  - {address: 127.0.0.3, remoteAs: 65003, passive: true, localAddress: ${B}}\nadvertise: [198.51.100.0/24]\ngracefulRestart: {selectionDeferral: 2}\n`,
      b.router.config.controlSocket.split("/").at(-1)!,
    );
    await until("B Established with A", () => neighbor(b2, A).state === "Established");
    await Bun.sleep(500);
    expect(rib(a).every((r) => r.stale)).toBe(true); // nothing sent yet: still the stale routes
    await until("B's routes after the deferral", () => rib(a).length === 1 && !rib(a)[0]!.stale, 6000);
    expect(performance.now() - t0).toBeGreaterThan(1800);
    expect(b2.lines.some((l) => l.includes("selection deferral of 2s over, still waiting for 127.0.0.3"))).toBe(true);
  }, 30_000);

  test("both restart at once (R bit on both sides): neither waits for the other's End-of-RIB", async () => {
    const { a, b } = await pair();
    const sockA = a.router.config.controlSocket.split("/").at(-1)!;
    const sockB = b.router.config.controlSocket.split("/").at(-1)!;
    await stop(a, true);
    await stop(b, true);
    // A again (passive, on a new port), then B pointing at it: both find their markers.
    const a2 = await start(A, `peers:\n  - {address: ${B}, remoteAs: 65002, passive: true, localAddress: ${A}, import: all, export: all}\nadvertise: [192.0.2.128/25]\n`, sockA);
    const port = a2.router.engine.listener.endpoints[0]!.port;
    const b2 = await start(B, `peers:\n  - {address: ${A}, remoteAs: 65001, port: ${port}, localAddress: ${B}, connectRetry: 1, import: all, export: all}\nadvertise: [198.51.100.0/24]\n`, sockB);
    for (const n of [a2, b2]) expect(n.lines.some((l) => l.includes("graceful restart: restarting"))).toBe(true);
    await until("each has the other's route", () => rib(a2).length === 2 && rib(b2).length === 2, 5000);
    for (const n of [a2, b2]) expect(n.lines.some((l) => l.includes("selection deferral ended (End-of-RIB from every graceful-restart peer)"))).toBe(true);
  }, 30_000);

  test("gracefulRestart.enabled: false at the receiver: the routes go at once", async () => {
    const { a, b } = await pair({ aGr: "gracefulRestart: {enabled: false}\n" });
    expect(neighbor(a, B).gracefulRestart!.enabled).toBe(false);
    await stop(b, true);
    await until("A drops B's routes", () => rib(a).length === 0);
  }, 30_000);
});
