/**
 * RFC 4271 §6.3 / RFC 7606 §7.3: a next hop that is the receiving speaker's
 * own address on the session is semantically incorrect — the UPDATE is
 * treated as withdrawn (logged, no NOTIFICATION), for the IPv4 NEXT_HOP and
 * for MP_REACH_NLRI's next hop; the same message on a session with another
 * local address is accepted.
 */
import { expect, test } from "bun:test";
import { AFI, ATTR, SAFI, SEG } from "../../lib/bgp/types.ts";
import { emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { type UpdateContext, decodeUpdate, encodeUpdate, updateContext } from "../../lib/bgp/update.ts";
import { parsePrefix } from "../../lib/core/addr.ts";
import type { Negotiated } from "../../lib/bgp/negotiate.ts";

const attrs = { ...emptyAttributes(), origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001] }]) };
const enc = { fourOctetAs: true, addPathSend: () => false };
const v4 = encodeUpdate({ attrs: { ...attrs, nextHop: Uint8Array.of(192, 0, 2, 1) }, nlri: [parsePrefix("203.0.113.0/24")] }, enc).subarray(19);
const v6 = encodeUpdate({ attrs, mpReach: { afi: AFI.IPV6, safi: SAFI.UNICAST, nextHop: Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), nlri: [parsePrefix("2001:db8:1::/48")] } }, enc).subarray(19);

const negotiated = { fourOctetAs: true, families: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }], addPath: new Map() } as unknown as Negotiated;
const ctx = (local: string): UpdateContext => updateContext(negotiated, false, local);

test("IPv4 NEXT_HOP equal to our address (also as a v4-mapped socket address): treat-as-withdraw", () => {
  for (const local of ["192.0.2.1", "::ffff:192.0.2.1"]) {
    const u = decodeUpdate(v4, ctx(local));
    expect(u.treatAsWithdraw).toBe(true);
    expect(u.issues).toEqual([{ action: "treat-as-withdraw", attr: ATTR.NEXT_HOP, reason: "the next hop is our own address on this session" }]);
  }
  expect(decodeUpdate(v4, ctx("192.0.2.2")).treatAsWithdraw).toBe(false);
});

test("MP_REACH_NLRI next hop equal to our IPv6 address: treat-as-withdraw", () => {
  const u = decodeUpdate(v6, ctx("2001:db8::1"));
  expect(u.treatAsWithdraw).toBe(true);
  expect(u.issues[0]?.attr).toBe(ATTR.MP_REACH_NLRI);
  expect(decodeUpdate(v6, ctx("2001:db8::2")).treatAsWithdraw).toBe(false);
  expect(decodeUpdate(v6, ctx("192.0.2.1")).treatAsWithdraw).toBe(false);
});
