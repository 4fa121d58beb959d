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
import { endIsRestart } from "../../lib/router/gr-helper.ts";

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
