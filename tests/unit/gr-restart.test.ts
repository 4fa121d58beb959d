/**
 * RestartState (lib/router/gr-restart.ts), the restarting speaker's selection
 * deferral: who is waited for after a restart (RFC 4724 §4.1). A peer that is
 * restarting too (Restart State bit) is not waited for: it holds its own
 * End-of-RIB until ours, so two bgpctl restarting together would otherwise
 * both wait for their deferral timers.
 */
import { afterEach, expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Negotiated } from "../../lib/bgp/negotiate.ts";
import type { PeerConfig } from "../../lib/config/types.ts";
import { Log } from "../../lib/core/log.ts";
import { RestartState } from "../../lib/router/gr-restart.ts";
import { tempDirs } from "../support/tmp.ts";

const dir = tempDirs("bgpctl-gr-restart-")();
const states: RestartState[] = [];
afterEach(() => {
  for (const s of states.splice(0)) s.close(false);
});

function peer(address: string, selectionDeferral = 30): PeerConfig {
  return { address, shutdown: false, gracefulRestart: { enabled: true, restartTime: 120, notification: true, longLivedStaleTime: 0, selectionDeferral } } as unknown as PeerConfig;
}

function negotiated(gr: null | { restarting: boolean }): Negotiated {
  return { peerGracefulRestart: gr ? { restarting: gr.restarting, notification: false, restartTime: 120, families: [] } : null } as unknown as Negotiated;
}

let seq = 0;
/** A RestartState over a marker that exists (a restart), or not (a fresh start). */
function restartState(restart: boolean, peers: PeerConfig[]): { s: RestartState; lines: string[]; marker: string } {
  const marker = join(dir, `s${++seq}.sock.restart`);
  if (restart) writeFileSync(marker, "{}\n");
  const lines: string[] = [];
  const s = new RestartState(marker, peers, new Log("info", "text", (l) => lines.push(l)));
  states.push(s);
  return { s, lines, marker };
}

test("a fresh start writes the marker and does not defer", () => {
  const { s, marker } = restartState(false, [peer("192.0.2.2")]);
  expect(s.restarted).toBe(false);
  expect(s.deferring).toBe(false);
  expect(existsSync(marker)).toBe(true);
});

test("after a restart: deferral until End-of-RIB from every graceful-restart peer; one without the capability and one restarting too are not waited for", () => {
  const { s, lines } = restartState(true, [peer("192.0.2.2"), peer("192.0.2.3"), peer("192.0.2.4", 50)]);
  expect(s.restarted).toBe(true);
  expect(s.deferralSeconds).toBe(50);
  let done = 0;
  s.whenDone(() => done++);
  s.established("192.0.2.2", negotiated({ restarting: false }));
  expect(s.deferring).toBe(true);
  s.established("192.0.2.3", negotiated(null));
  s.established("192.0.2.4", negotiated({ restarting: true }));
  expect(s.deferring).toBe(true);
  expect(done).toBe(0);
  s.settle("192.0.2.2");
  expect(s.deferring).toBe(false);
  expect(done).toBe(1);
  expect(lines.join("\n")).toContain("selection deferral ended (End-of-RIB from every graceful-restart peer)");
});

test("the marker stays after a graceful stop and goes after a full one", () => {
  const { s, marker } = restartState(true, [peer("192.0.2.2")]);
  s.close(true);
  expect(existsSync(marker)).toBe(true);
  s.close(false);
  expect(existsSync(marker)).toBe(false);
});
