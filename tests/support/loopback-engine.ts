/**
 * In-process route engines for unit tests, on loopback: engine A
 * (127.0.0.1, AS 65001, router id 192.0.2.1, its listener on a free port)
 * with passive peers, and Sessions that connect to it as those peers. The
 * engine's FSM timers run on a manual clock; the event loop is real.
 * Each engine has its control socket path (and so its graceful-restart
 * marker) in a directory of its own: an engine never takes another's
 * marker, or one a killed daemon left in /run/bgpctl, for a restart of
 * itself. Everything made is stopped and removed by the `cleanups` list the
 * caller runs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Session } from "../../lib/bgp/session.ts";
import { AFI, SAFI } from "../../lib/bgp/types.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { ManualClock } from "../../lib/core/clock.ts";
import { Log, type LogLevel } from "../../lib/core/log.ts";
import { RouteEngine } from "../../lib/router/engine.ts";

/** Engine A's address. */
export const ENGINE_ADDR = "127.0.0.1";
const V4 = [{ afi: AFI.IPV4, safi: SAFI.UNICAST }];

/**
 * Engine A with one passive peer per [address, AS] (import and export
 * everything, hold time 90 s, unless `imports` names another import policy
 * for a peer, defined in `policies`, YAML text under `policies:`); its log
 * lines are collected.
 */
export async function loopbackEngine(
  peers: readonly (readonly [string, number])[],
  o: { cleanups: (() => unknown)[]; level?: LogLevel; name?: string; imports?: Record<string, string>; policies?: string },
): Promise<{ engine: RouteEngine; port: number; lines: string[] }> {
  const list = peers.map(([addr, as]) => `  - {address: ${addr}, remoteAs: ${as}, passive: true, localAddress: ${ENGINE_ADDR}, import: ${o.imports?.[addr] ?? "all"}, export: all, holdTime: 90}\n`).join("");
  const dir = mkdtempSync(join(tmpdir(), "bgpctl-engine-"));
  o.cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const policies = o.policies ? `policies:\n${o.policies}` : "";
  const yaml = `asn: 65001\nrouterId: 192.0.2.1\nlisten: {address: ${ENGINE_ADDR}, port: 0}\ncontrolSocket: ${join(dir, "engine.sock")}\npeers:\n${list}${policies}`;
  const lines: string[] = [];
  const engine = new RouteEngine(parseConfig(yaml, o.name ?? "engine.yaml"), { log: new Log(o.level ?? "info", "text", (l) => lines.push(l)), clock: new ManualClock() });
  await engine.start();
  o.cleanups.push(() => engine.stop());
  return { engine, port: engine.listener.endpoints[0]!.port, lines };
}

/** An IPv4 Session from `local` (AS `as`) to engine A on `port`, once Established. */
export async function loopbackSpeaker(o: { local: string; as: number; port: number; routerId: string; cleanups: (() => unknown)[] }): Promise<Session> {
  const s = new Session({ peerAddress: ENGINE_ADDR, peerPort: o.port, localAddress: o.local, localAs: o.as, remoteAs: 65001, routerId: o.routerId, families: V4, clock: new ManualClock() });
  o.cleanups.push(() => s.stop());
  const up = new Promise<void>((res) => s.on("established", () => res()));
  s.start();
  await up;
  return s;
}
