/**
 * endIsRestart (lib/router/gr-helper.ts): which ends of a session count as a
 * restart of a graceful-restart peer (RFC 4724 §4.2, RFC 8538 §4). The
 * Cease/Connection Collision Resolution case was found by the interop lab
 * (tests/interop/graceful-restart.test.ts): the losing connection of a
 * collision closed after the session came up left that NOTIFICATION as the
 * session's last one, and the next plain TCP loss dropped the routes.
 */
import { expect, test } from "bun:test";
import type { Negotiated } from "../../lib/bgp/negotiate.ts";
import type { NotificationMessage } from "../../lib/bgp/notification.ts";
import { CEASE_SUB, ERR } from "../../lib/bgp/types.ts";
import { emptyAttributes } from "../../lib/bgp/attributes.ts";
import { AdjRibIn } from "../../lib/rib/adj-rib-in.ts";
import { type PrefixKey, makeRoute } from "../../lib/rib/types.ts";
import { GrHelper, endIsRestart } from "../../lib/router/gr-helper.ts";

function negotiated(gr: boolean, nBit: boolean): Negotiated {
  return {
    peerGracefulRestart: gr ? { restarting: false, notification: nBit, restartTime: 30, families: [{ afi: 1, safi: 1, forwardingPreserved: true }] } : null,
    gracefulNotification: gr && nBit,
    peerLongLivedGracefulRestart: null,
  } as unknown as Negotiated;
}

function note(code: number, subcode: number): NotificationMessage {
  return { code, subcode, data: new Uint8Array(0) } as NotificationMessage;
}

const collision = note(ERR.CEASE, CEASE_SUB.CONNECTION_COLLISION);
const admin = note(ERR.CEASE, CEASE_SUB.ADMIN_SHUTDOWN);
const hard = note(ERR.CEASE, CEASE_SUB.HARD_RESET);
const holdExpired = note(ERR.HOLD_TIMER, 0);

test("no graceful-restart capability: never a restart", () => {
  for (const n of [null, collision, admin, hard]) expect(endIsRestart(negotiated(false, false), { notification: n })).toBe(false);
});

test("without the N bit: only an end without NOTIFICATION (a Connection Collision Resolution Cease counts as none)", () => {
  const n = negotiated(true, false);
  expect(endIsRestart(n, { notification: null })).toBe(true);
  expect(endIsRestart(n, { notification: collision })).toBe(true);
  expect(endIsRestart(n, { notification: admin })).toBe(false);
  expect(endIsRestart(n, { notification: holdExpired })).toBe(false);
  expect(endIsRestart(n, { notification: hard })).toBe(false);
});

test("with the N bit on both sides (RFC 8538): any NOTIFICATION but Cease/Hard Reset", () => {
  const n = negotiated(true, true);
  expect(endIsRestart(n, { notification: null })).toBe(true);
  expect(endIsRestart(n, { notification: admin })).toBe(true);
  expect(endIsRestart(n, { notification: holdExpired })).toBe(true);
  expect(endIsRestart(n, { notification: collision })).toBe(true);
  expect(endIsRestart(n, { notification: hard })).toBe(false);
});

test("the log line names the cause: a collision's Cease on the peer's second connection is a lost connection, not a NOTIFICATION", () => {
  const lines: string[] = [];
  const source = { id: "192.0.2.2", address: "192.0.2.2", addressBytes: new Uint8Array([192, 0, 2, 2]), asn: 65002, routerId: 1, ibgp: false, rrClient: false, local: false };
  const helper = () =>
    new GrHelper({
      name: "neighbor 192.0.2.2 (AS 65002)",
      adjIn: new AdjRibIn(source),
      source,
      log: (_level, msg) => lines.push(msg),
      candidate: () => null,
      importRoute: () => {},
      withdrawn: () => {},
    });
  const n = { ...negotiated(true, true), families: [{ afi: 1, safi: 1 }] } as unknown as Negotiated;
  const cases: [NotificationMessage | null, string][] = [
    [null, "connection lost"],
    [collision, "connection lost"],
    [holdExpired, "NOTIFICATION (RFC 8538)"],
  ];
  for (const [notification, why] of cases) {
    lines.length = 0;
    const h = helper();
    expect(h.sessionDown(n, { notification })).toBe(true);
    expect(lines).toEqual([`neighbor 192.0.2.2 (AS 65002): graceful restart (${why}): keeping its ipv4-unicast routes as stale for its restart time of 30s`]);
    h.clear();
  }
});

test("End-of-RIB sweep: a stale route the peer re-announces unchanged while the sweep runs stays (unstale, its arrival kept); the others go", async () => {
  const source = { id: "192.0.2.2", address: "192.0.2.2", addressBytes: new Uint8Array([192, 0, 2, 2]), asn: 65002, routerId: 1, ibgp: false, rrClient: false, local: false };
  const adjIn = new AdjRibIn(source);
  const attrs = emptyAttributes();
  const nh = source.addressBytes;
  const mk = (i: number) => makeRoute((0xc6336400 + i * 16) * 64 + 28, 0, source, attrs, nh, 7); // 198.51.100.x/28
  for (let i = 0; i < 3; i++) adjIn.update(mk(i));
  const withdrawn: PrefixKey[] = [];
  const h = new GrHelper({
    name: "neighbor 192.0.2.2 (AS 65002)",
    adjIn,
    source,
    log: () => {},
    candidate: () => null,
    importRoute: () => {},
    withdrawn: (key) => {
      withdrawn.push(key);
      // While the sweep runs: the second route comes again, unchanged (the Adj-RIB-In keeps its arrival, unstale).
      if (withdrawn.length === 1) adjIn.update(mk(1));
    },
  });
  const n = { ...negotiated(true, false), families: [{ afi: 1, safi: 1 }] } as unknown as Negotiated;
  expect(h.sessionDown(n, { notification: null })).toBe(true);
  for (let i = 0; i < 20 && ![...adjIn.routes()].every((r) => r.stale); i++) await Bun.sleep(1);
  h.sessionUp(n, 60);
  h.endOfRib(1);
  for (let i = 0; i < 50 && withdrawn.length < 2; i++) await Bun.sleep(1);
  await Bun.sleep(5);
  h.clear();
  expect(withdrawn).toEqual([mk(0).key, mk(2).key]);
  const kept = [...adjIn.routes()];
  expect(kept.map((r) => [r.key, r.stale, r.learnedAt])).toEqual([[mk(1).key, false, 7]]);
});
