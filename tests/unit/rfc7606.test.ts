/**
 * RFC 7606 (revised UPDATE error handling) as a table: each row is an UPDATE
 * body built byte by byte and the action the decoder must take:
 *   - { reset: [code, subcode] }: decodeUpdate throws BgpError (session reset);
 *   - TAW: treat-as-withdraw, the announced prefixes come back as withdrawn;
 *   - { discard: type }: the attribute is dropped, the routes stay announced;
 *   - OK: no error at all (optionally with a check).
 * Each row cites the RFC section that decides it.
 */
import { describe, expect, test } from "bun:test";
import { AttrCache, emptyAttributes, holdAttributes, releaseAttributes, settleAttributes, sharedAttrCache, asPathSegments } from "../../lib/bgp/attributes.ts";
import { AdjRibIn } from "../../lib/rib/adj-rib-in.ts";
import { LocRib } from "../../lib/rib/loc-rib.ts";
import { makeRoute, prefixKey } from "../../lib/rib/types.ts";
import { BgpError } from "../../lib/bgp/errors.ts";
import { parsePrefix, prefixToString } from "../../lib/core/addr.ts";
import { ATTR } from "../../lib/bgp/types.ts";
import { type UpdateContext, type UpdateMessage, announcedBlocks, blockPrefixes, decodeUpdate, withdrawnBlocks } from "../../lib/bgp/update.ts";

// ---------------------------------------------------------------- wire builders

const u16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

/** One path attribute; the extended-length flag (0x10) selects a 2-byte length. */
function attr(flags: number, type: number, value: number[], len = value.length): number[] {
  return flags & 0x10 ? [flags, type, ...u16(len), ...value] : [flags, type, len, ...value];
}

const WT = 0x40; // well-known transitive
const OPT = 0x80; // optional non-transitive
const OT = 0xc0; // optional transitive

const ORIGIN = attr(WT, 1, [0]);
const AS_PATH = attr(WT, 2, [2, 2, ...u32(65001), ...u32(65002)]); // 4-octet session
const AS_PATH2 = attr(WT, 2, [2, 2, ...u16(65001), ...u16(65002)]); // 2-octet session
const NEXT_HOP = attr(WT, 3, [192, 0, 2, 1]);
const BASE = [...ORIGIN, ...AS_PATH, ...NEXT_HOP];
const BASE2 = [...ORIGIN, ...AS_PATH2, ...NEXT_HOP];
/** 10.0.1.0/24 and 172.16.0.0/16 */
const NLRI = [24, 10, 0, 1, 16, 172, 16];
const V4 = ["10.0.1.0/24", "172.16.0.0/16"];

const NH6 = [0x20, 0x01, 0x0d, 0xb8, ...new Array<number>(11).fill(0), 1]; // 2001:db8::1
/** 2001:db8::/32 */
const NLRI6 = [32, 0x20, 0x01, 0x0d, 0xb8];
const V6 = ["2001:db8::/32"];
function mpReach(afi: number, safi: number, nh: number[], nlri: number[], flags = OPT): number[] {
  return attr(flags, ATTR.MP_REACH_NLRI, [...u16(afi), safi, nh.length, ...nh, 0, ...nlri]);
}
function mpUnreach(afi: number, safi: number, nlri: number[]): number[] {
  return attr(OPT, ATTR.MP_UNREACH_NLRI, [...u16(afi), safi, ...nlri]);
}

/** An UPDATE body; wl / tal override the computed lengths. */
function update(o: { withdrawn?: number[]; attrs?: number[]; nlri?: number[]; wl?: number; tal?: number }): Uint8Array {
  const w = o.withdrawn ?? [];
  const a = o.attrs ?? [];
  return Uint8Array.from([...u16(o.wl ?? w.length), ...w, ...u16(o.tal ?? a.length), ...a, ...(o.nlri ?? [])]);
}
/** The usual shape: valid mandatory attributes plus `extra`, announcing NLRI. */
const withAttrs = (extra: number[], base = BASE) => update({ attrs: [...base, ...extra], nlri: NLRI });

// ---------------------------------------------------------------- the table

const TAW = "treat-as-withdraw" as const;
const OK = "ok" as const;
type Outcome = { reset: [number, number]; data?: number[] } | typeof TAW | { discard: number } | typeof OK;

interface Row {
  name: string;
  /** The RFC section deciding the outcome. */
  rfc: string;
  body: Uint8Array;
  ctx?: { fourOctetAs?: boolean; ibgp?: boolean };
  expect: Outcome;
  /** Prefixes the UPDATE announces (withdrawn instead under treat-as-withdraw). */
  announced?: string[];
  check?: (u: UpdateMessage) => void;
}

const ctxOf = (c: Row["ctx"] = {}): UpdateContext => ({
  fourOctetAs: c.fourOctetAs ?? true,
  ibgp: c.ibgp ?? false,
  addPathReceive: () => false,
  families: [
    { afi: 1, safi: 1 },
    { afi: 2, safi: 1 },
  ],
});

/** Is the attribute of this type present in the decoded attributes? */
function present(u: UpdateMessage, type: number): boolean {
  const a = u.attrs!;
  switch (type) {
    case ATTR.MED:
      return a.med !== null;
    case ATTR.LOCAL_PREF:
      return a.localPref !== null;
    case ATTR.ATOMIC_AGGREGATE:
      return a.atomicAggregate;
    case ATTR.AGGREGATOR:
      return a.aggregator !== null;
    case ATTR.ORIGINATOR_ID:
      return a.originatorId !== null;
    case ATTR.CLUSTER_LIST:
      return a.clusterList.length > 0;
    case ATTR.AS4_PATH: // discarded: the path stays the plain AS_PATH
      return asPathSegments(a.asPath).some((s) => s.asns.some((x) => x > 0xffff));
    case ATTR.AS4_AGGREGATOR:
      return a.aggregator !== null && a.aggregator.asn > 0xffff;
  }
  throw new Error(`no presence check for attribute ${type}`);
}

const prefixes = (blocks: ReturnType<typeof announcedBlocks>) => blocks.flatMap((b) => blockPrefixes(b).map(prefixToString));

const ROWS: Row[] = [
  // ------------------------------------------------------------ session reset
  { name: "withdrawn routes length overruns the message", rfc: "RFC 4271 §6.3", body: update({ wl: 50, withdrawn: [24, 10, 0, 1] }), expect: { reset: [3, 1] } },
  { name: "total attribute length overruns the message", rfc: "RFC 4271 §6.3", body: update({ attrs: BASE, tal: BASE.length + 20, nlri: NLRI }), expect: { reset: [3, 1] } },
  { name: "NLRI prefix length 33", rfc: "RFC 7606 §5.3, RFC 4271 §6.3", body: update({ attrs: BASE, nlri: [33, 10, 0, 0, 0, 0] }), expect: { reset: [3, 10] } },
  { name: "NLRI prefix overruns the field", rfc: "RFC 7606 §5.3", body: update({ attrs: BASE, nlri: [24, 10, 0] }), expect: { reset: [3, 10] } },
  { name: "withdrawn prefix length 33", rfc: "RFC 7606 §5.3", body: update({ withdrawn: [33, 10, 0, 0, 0, 0] }), expect: { reset: [3, 10] } },
  { name: "withdrawn prefix overruns the field", rfc: "RFC 7606 §5.3", body: update({ withdrawn: [24, 10] }), expect: { reset: [3, 10] } },
  {
    name: "unrecognized well-known attribute",
    rfc: "RFC 4271 §6.3 (data: the attribute)",
    body: withAttrs([WT, 99, 2, 1, 2]),
    expect: { reset: [3, 2], data: [WT, 99, 2, 1, 2] },
  },
  {
    name: "unrecognized well-known attribute, extended length",
    rfc: "RFC 4271 §6.3 (data: the attribute)",
    body: withAttrs(attr(WT | 0x10, 99, [7])),
    expect: { reset: [3, 2], data: [WT | 0x10, 99, 0, 1, 7] },
  },
  {
    name: "duplicate MP_REACH_NLRI",
    rfc: "RFC 7606 §3 g",
    body: update({ attrs: [...mpReach(2, 1, NH6, NLRI6), ...ORIGIN, ...AS_PATH, ...mpReach(2, 1, NH6, NLRI6)] }),
    expect: { reset: [3, 1] },
  },
  { name: "duplicate MP_UNREACH_NLRI", rfc: "RFC 7606 §3 g", body: update({ attrs: [...mpUnreach(2, 1, NLRI6), ...mpUnreach(2, 1, [])] }), expect: { reset: [3, 1] } },
  {
    name: "MP_REACH_NLRI next hop length 5 for IPv6",
    rfc: "RFC 7606 §7.11, RFC 4760 §7 (data: the attribute)",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...mpReach(2, 1, [1, 2, 3, 4, 5], NLRI6)] }),
    expect: { reset: [3, 9], data: mpReach(2, 1, [1, 2, 3, 4, 5], NLRI6) },
  },
  {
    name: "MP_REACH_NLRI prefix length 129",
    rfc: "RFC 7606 §5.3, §7.11",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...mpReach(2, 1, NH6, [129, ...new Array<number>(17).fill(0)])] }),
    expect: { reset: [3, 9] },
  },
  {
    name: "MP_UNREACH_NLRI prefix length 129",
    rfc: "RFC 7606 §5.3, §7.12",
    body: update({ attrs: mpUnreach(2, 1, [129, ...new Array<number>(17).fill(0)]) }),
    expect: { reset: [3, 9] },
  },
  {
    name: "MP_REACH_NLRI next hop length overruns the attribute",
    rfc: "RFC 7606 §7.11",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(OPT, 14, [0, 2, 1, 40, ...NH6])] }),
    expect: { reset: [3, 9] },
  },
  { name: "MP_REACH_NLRI shorter than 5 bytes", rfc: "RFC 7606 §7.11", body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(OPT, 14, [0, 2, 1])] }), expect: { reset: [3, 9] } },
  {
    name: "MP_REACH_NLRI with the transitive flag",
    rfc: "RFC 7606 §3 c + §7.11 (a malformed MP_REACH_NLRI resets)",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...mpReach(2, 1, NH6, NLRI6, OT)] }),
    expect: { reset: [3, 4] },
  },
  {
    name: "MP_UNREACH_NLRI overrunning the attribute section",
    rfc: "RFC 7606 §4 (a more severe error), §7.12: its NLRI cannot be located",
    body: update({ attrs: [...BASE, ...attr(OPT, 15, [0, 2, 1, ...NLRI6], 30)], nlri: NLRI }),
    expect: { reset: [3, 9] },
  },
  {
    name: "attribute error in an UPDATE with no reachable NLRI",
    rfc: "RFC 7606 §5.2",
    body: update({ withdrawn: [24, 10, 0, 1], attrs: [...attr(WT, 1, [7]), ...AS_PATH] }),
    expect: { reset: [3, 1] },
  },
  {
    name: "stray bytes after the attributes of an UPDATE with no reachable NLRI",
    rfc: "RFC 7606 §5.2",
    body: update({ attrs: [...mpUnreach(2, 1, NLRI6), ...ORIGIN, 0x40] }),
    expect: { reset: [3, 1] },
  },

  // ------------------------------------------------------------ treat-as-withdraw
  { name: "attribute length overruns the attribute section", rfc: "RFC 7606 §4", body: withAttrs(attr(OPT, 4, [0, 0, 0, 1], 10)), expect: TAW },
  { name: "extended attribute length overruns the attribute section", rfc: "RFC 7606 §4", body: withAttrs(attr(OT | 0x10, 8, [0, 0, 0, 1], 300)), expect: TAW },
  { name: "1 stray byte at the end of the attributes", rfc: "RFC 7606 §4", body: withAttrs([0x40]), expect: TAW },
  { name: "2 stray bytes at the end of the attributes", rfc: "RFC 7606 §4", body: withAttrs([0x40, 1]), expect: TAW },
  { name: "3 bytes of an extended-length header", rfc: "RFC 7606 §4", body: withAttrs([0x50, 8, 0]), expect: TAW },
  { name: "ORIGIN length 2", rfc: "RFC 7606 §7.1", body: update({ attrs: [...attr(WT, 1, [0, 0]), ...AS_PATH, ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  { name: "ORIGIN value 3", rfc: "RFC 7606 §7.1", body: update({ attrs: [...attr(WT, 1, [3]), ...AS_PATH, ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  {
    name: "AS_PATH segment overruns the attribute",
    rfc: "RFC 7606 §7.2",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [2, 3, ...u32(65001), ...u32(65002)]), ...NEXT_HOP], nlri: NLRI }),
    expect: TAW,
  },
  { name: "AS_PATH zero-length segment", rfc: "RFC 7606 §7.2", body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [2, 0]), ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  {
    name: "AS_PATH unknown segment type 5",
    rfc: "RFC 7606 §7.2",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [5, 1, ...u32(65001)]), ...NEXT_HOP], nlri: NLRI }),
    expect: TAW,
  },
  {
    name: "AS_PATH trailing byte after the last segment",
    rfc: "RFC 7606 §7.2",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [2, 1, ...u32(65001), 2]), ...NEXT_HOP], nlri: NLRI }),
    expect: TAW,
  },
  {
    name: "AS_PATH containing AS 0",
    rfc: "RFC 7607 §2",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [2, 2, ...u32(65001), ...u32(0)]), ...NEXT_HOP], nlri: NLRI }),
    expect: TAW,
  },
  {
    name: "AS_PATH with a confederation segment from an external peer",
    rfc: "RFC 7606 §7.2, RFC 5065 §5",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [3, 1, ...u32(65100), 2, 1, ...u32(65001)]), ...NEXT_HOP], nlri: NLRI }),
    expect: TAW,
  },
  {
    name: "AS_PATH of odd length on a 2-octet session",
    rfc: "RFC 7606 §7.2",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [2, 2, 0xfd, 0xe9, 0xfd]), ...NEXT_HOP], nlri: NLRI }),
    ctx: { fourOctetAs: false },
    expect: TAW,
  },
  { name: "NEXT_HOP length 5", rfc: "RFC 7606 §7.3", body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(WT, 3, [192, 0, 2, 1, 0])], nlri: NLRI }), expect: TAW },
  { name: "martian NEXT_HOP 0.0.0.0", rfc: "RFC 4271 §6.3 (semantically incorrect), RFC 7606 §7.3", body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(WT, 3, [0, 0, 0, 0])], nlri: NLRI }), expect: TAW },
  { name: "class E NEXT_HOP 240.0.0.1", rfc: "RFC 4271 §6.3, RFC 7606 §7.3", body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(WT, 3, [240, 0, 0, 1])], nlri: NLRI }), expect: TAW },
  { name: "multicast NEXT_HOP 224.0.0.5", rfc: "RFC 4271 §6.3, RFC 7606 §7.3", body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(WT, 3, [224, 0, 0, 5])], nlri: NLRI }), expect: TAW },
  { name: "MED length 3", rfc: "RFC 7606 §7.4", body: withAttrs(attr(OPT, 4, [0, 0, 1])), expect: TAW },
  { name: "LOCAL_PREF length 3 from an internal peer", rfc: "RFC 7606 §7.5", body: withAttrs(attr(WT, 5, [0, 0, 100])), ctx: { ibgp: true }, expect: TAW },
  { name: "COMMUNITIES length 5", rfc: "RFC 7606 §7.8", body: withAttrs(attr(OT, 8, [0, 0, 0, 1, 2])), expect: TAW },
  { name: "COMMUNITIES length 0", rfc: "RFC 7606 §7.8 (a non-zero multiple of 4)", body: withAttrs(attr(OT, 8, [])), expect: TAW },
  { name: "ORIGINATOR_ID length 5 from an internal peer", rfc: "RFC 7606 §7.9", body: withAttrs(attr(OPT, 9, [1, 2, 3, 4, 5])), ctx: { ibgp: true }, expect: TAW },
  { name: "CLUSTER_LIST length 5 from an internal peer", rfc: "RFC 7606 §7.10", body: withAttrs(attr(OPT, 10, [1, 2, 3, 4, 5])), ctx: { ibgp: true }, expect: TAW },
  { name: "CLUSTER_LIST length 0 from an internal peer", rfc: "RFC 7606 §7.10 (a non-zero multiple of 4)", body: withAttrs(attr(OPT, 10, [])), ctx: { ibgp: true }, expect: TAW },
  { name: "EXTENDED_COMMUNITIES length 7", rfc: "RFC 7606 §7.14", body: withAttrs(attr(OT, 16, [0, 2, 0, 1, 0, 0, 0])), expect: TAW },
  { name: "EXTENDED_COMMUNITIES length 0", rfc: "RFC 7606 §7.14 (a non-zero multiple of 8)", body: withAttrs(attr(OT, 16, [])), expect: TAW },
  { name: "LARGE_COMMUNITY length 13", rfc: "RFC 8092 §6", body: withAttrs(attr(OT, 32, new Array<number>(13).fill(1))), expect: TAW },
  { name: "LARGE_COMMUNITY length 0", rfc: "RFC 8092 §6 (a non-zero multiple of 12)", body: withAttrs(attr(OT, 32, [])), expect: TAW },
  { name: "OTC length 3", rfc: "RFC 9234 §5", body: withAttrs(attr(OT, 35, [0, 0, 1])), expect: TAW },
  { name: "ORIGIN with the optional flag", rfc: "RFC 7606 §3 c", body: update({ attrs: [...attr(OT, 1, [0]), ...AS_PATH, ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  { name: "AS_PATH without the transitive flag", rfc: "RFC 7606 §3 c", body: update({ attrs: [...ORIGIN, ...attr(0x00, 2, []), ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  { name: "NEXT_HOP with the optional flag", rfc: "RFC 7606 §3 c", body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(OPT, 3, [192, 0, 2, 1])], nlri: NLRI }), expect: TAW },
  { name: "MED with the transitive flag", rfc: "RFC 7606 §3 c", body: withAttrs(attr(OT, 4, [0, 0, 0, 1])), expect: TAW },
  { name: "missing ORIGIN", rfc: "RFC 7606 §3 d", body: update({ attrs: [...AS_PATH, ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  { name: "missing AS_PATH", rfc: "RFC 7606 §3 d", body: update({ attrs: [...ORIGIN, ...NEXT_HOP], nlri: NLRI }), expect: TAW },
  { name: "missing NEXT_HOP", rfc: "RFC 7606 §3 d", body: update({ attrs: [...ORIGIN, ...AS_PATH], nlri: NLRI }), expect: TAW },
  { name: "NLRI with no path attributes at all", rfc: "RFC 7606 §3 d", body: update({ nlri: NLRI }), expect: TAW },
  {
    name: "MP_REACH_NLRI without AS_PATH: the IPv6 NLRI are withdrawn",
    rfc: "RFC 7606 §3 d",
    body: update({ attrs: [...ORIGIN, ...mpReach(2, 1, NH6, NLRI6)] }),
    expect: TAW,
    announced: V6,
  },
  {
    name: "MP_REACH_NLRI with malformed COMMUNITIES: the IPv6 NLRI are withdrawn",
    rfc: "RFC 7606 §7.8",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...attr(OT, 8, [1, 2, 3]), ...mpReach(2, 1, NH6, NLRI6)] }),
    expect: TAW,
    announced: V6,
  },

  // ------------------------------------------------------------ attribute discard
  { name: "LOCAL_PREF from an external peer", rfc: "RFC 7606 §7.5", body: withAttrs(attr(WT, 5, [0, 0, 0, 100])), expect: { discard: ATTR.LOCAL_PREF } },
  { name: "ATOMIC_AGGREGATE length 1", rfc: "RFC 7606 §7.6", body: withAttrs(attr(WT, 6, [0])), expect: { discard: ATTR.ATOMIC_AGGREGATE } },
  { name: "AGGREGATOR length 6 on a 4-octet session", rfc: "RFC 7606 §7.7", body: withAttrs(attr(OT, 7, [0xfd, 0xe9, 10, 0, 0, 1])), expect: { discard: ATTR.AGGREGATOR } },
  {
    name: "AGGREGATOR length 8 on a 2-octet session",
    rfc: "RFC 7606 §7.7",
    body: withAttrs(attr(OT, 7, [...u32(65001), 10, 0, 0, 1]), BASE2),
    ctx: { fourOctetAs: false },
    expect: { discard: ATTR.AGGREGATOR },
  },
  { name: "AGGREGATOR with AS 0", rfc: "RFC 7607 §2, RFC 7606 §7.7", body: withAttrs(attr(OT, 7, [...u32(0), 10, 0, 0, 1])), expect: { discard: ATTR.AGGREGATOR } },
  { name: "ORIGINATOR_ID from an external peer", rfc: "RFC 7606 §7.9", body: withAttrs(attr(OPT, 9, [10, 0, 0, 1])), expect: { discard: ATTR.ORIGINATOR_ID } },
  { name: "CLUSTER_LIST from an external peer", rfc: "RFC 7606 §7.10", body: withAttrs(attr(OPT, 10, [10, 0, 0, 1])), expect: { discard: ATTR.CLUSTER_LIST } },
  {
    name: "malformed AS4_PATH from a 2-octet peer",
    rfc: "RFC 6793 §6",
    body: withAttrs(attr(OT, 17, [2, 2, ...u32(4_200_000_001)]), BASE2),
    ctx: { fourOctetAs: false },
    expect: { discard: ATTR.AS4_PATH },
  },
  {
    name: "AS4_PATH containing AS 0 from a 2-octet peer",
    rfc: "RFC 7607 §2, RFC 6793 §6",
    body: withAttrs(attr(OT, 17, [2, 2, ...u32(4_200_000_001), ...u32(0)]), BASE2),
    ctx: { fourOctetAs: false },
    expect: { discard: ATTR.AS4_PATH },
  },
  {
    name: "AS4_PATH with a confederation segment from a 2-octet peer",
    rfc: "RFC 6793 §6",
    body: withAttrs(attr(OT, 17, [3, 1, ...u32(4_200_000_001)]), BASE2),
    ctx: { fourOctetAs: false },
    expect: { discard: ATTR.AS4_PATH },
  },
  { name: "AS4_PATH from a 4-octet peer", rfc: "RFC 6793 §4.1", body: withAttrs(attr(OT, 17, [2, 1, ...u32(4_200_000_001)])), expect: { discard: ATTR.AS4_PATH } },
  {
    name: "AS4_AGGREGATOR from a 4-octet peer",
    rfc: "RFC 6793 §4.1",
    body: withAttrs([...attr(OT, 7, [...u32(23456), 10, 0, 0, 1]), ...attr(OT, 18, [...u32(4_200_000_001), 10, 0, 0, 1])]),
    expect: { discard: ATTR.AS4_AGGREGATOR },
  },
  {
    name: "AS4_AGGREGATOR of length 6 from a 2-octet peer",
    rfc: "RFC 6793 §6",
    body: withAttrs([...attr(OT, 7, [...u16(23456), 10, 0, 0, 1]), ...attr(OT, 18, [0, 1, 10, 0, 0, 1])], BASE2),
    ctx: { fourOctetAs: false },
    expect: { discard: ATTR.AS4_AGGREGATOR },
  },
  {
    name: "duplicate attribute: the second is discarded",
    rfc: "RFC 7606 §3 g",
    body: withAttrs([...attr(OPT, 4, u32(10)), ...attr(OPT, 4, u32(20))]),
    expect: { discard: ATTR.MED },
    check: (u) => expect(u.attrs!.med).toBe(10),
  },
  {
    name: "duplicate malformed attribute after a good one: discarded, no withdraw",
    rfc: "RFC 7606 §3 g",
    body: withAttrs([...attr(OT, 8, u32(1)), ...attr(OT, 8, [1, 2, 3])]),
    expect: { discard: ATTR.COMMUNITIES },
    check: (u) => expect(u.attrs!.communities).toEqual([1]),
  },

  // ------------------------------------------------------------ no error
  {
    name: "MP_REACH_NLRI of an unnegotiated family is ignored",
    rfc: "RFC 4760 §6 (ignored, no reset)",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...mpReach(2, 2, NH6, NLRI6)] }),
    expect: OK,
    announced: [],
    check: (u) => {
      expect(u.mpReach!.nlri).toBeNull();
      expect(u.issues.map((i) => [i.action, i.attr])).toEqual([["attribute-discard", ATTR.MP_REACH_NLRI]]);
    },
  },
  {
    name: "MP_REACH_NLRI of an unnegotiated family with a bad next hop length is still ignored",
    rfc: "RFC 4760 §6",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...mpReach(25, 70, [1, 2, 3], [0xff, 0xff])] }),
    expect: OK,
    announced: [],
  },
  {
    name: "a withdraw-only UPDATE needs no path attributes",
    rfc: "RFC 4271 §4.3, RFC 7606 §3 d",
    body: update({ withdrawn: [24, 10, 0, 1] }),
    expect: OK,
    announced: [],
    check: (u) => expect(prefixes(withdrawnBlocks(u))).toEqual(["10.0.1.0/24"]),
  },
  {
    name: "an MP_UNREACH_NLRI-only UPDATE needs no other attributes",
    rfc: "RFC 4760 §4, RFC 7606 §3 d",
    body: update({ attrs: mpUnreach(2, 1, NLRI6) }),
    expect: OK,
    announced: [],
    check: (u) => expect(prefixes(withdrawnBlocks(u))).toEqual(V6),
  },
  {
    name: "MP_REACH_NLRI needs no NEXT_HOP attribute",
    rfc: "RFC 4760 §3, RFC 7606 §3 d",
    body: update({ attrs: [...ORIGIN, ...AS_PATH, ...mpReach(2, 1, NH6, NLRI6)] }),
    expect: OK,
    announced: V6,
  },
  {
    name: "confederation segments from an internal peer",
    rfc: "RFC 5065 §5",
    body: update({ attrs: [...ORIGIN, ...attr(WT, 2, [3, 1, ...u32(65100), 2, 1, ...u32(65001)]), ...NEXT_HOP], nlri: NLRI }),
    ctx: { ibgp: true },
    expect: OK,
  },
  { name: "empty AS_PATH from an internal peer", rfc: "RFC 4271 §5.1.2", body: update({ attrs: [...ORIGIN, ...attr(WT, 2, []), ...NEXT_HOP], nlri: NLRI }), ctx: { ibgp: true }, expect: OK },
  {
    name: "unknown optional non-transitive attribute is quietly ignored",
    rfc: "RFC 4271 §5",
    body: withAttrs(attr(OPT, 200, [1, 2, 3])),
    expect: OK,
    check: (u) => expect(u.attrs!.unknown).toEqual([]),
  },
  {
    name: "unknown optional transitive attribute is kept",
    rfc: "RFC 4271 §5",
    body: withAttrs(attr(OT, 200, [1, 2, 3])),
    expect: OK,
    check: (u) => expect(u.attrs!.unknown.map((x) => x.type)).toEqual([200]),
  },
];

describe("RFC 7606 error handling table", () => {
  for (const row of ROWS) {
    test(`${row.name} (${row.rfc})`, () => {
      const ctx = ctxOf(row.ctx);
      const want = row.expect;
      const announced = row.announced ?? V4;
      if (typeof want === "object" && "reset" in want) {
        let err: unknown;
        try {
          decodeUpdate(row.body, ctx);
        } catch (e) {
          err = e;
        }
        expect(err).toBeInstanceOf(BgpError);
        const e = err as BgpError;
        expect([e.code, e.subcode]).toEqual(want.reset);
        if (want.data) expect(Array.from(e.data)).toEqual(want.data);
        return;
      }
      const u = decodeUpdate(row.body, ctx);
      if (want === TAW) {
        expect(u.treatAsWithdraw).toBe(true);
        expect(u.issues.some((i) => i.action === "treat-as-withdraw")).toBe(true);
        expect(announcedBlocks(u)).toEqual([]);
        const w = prefixes(withdrawnBlocks(u));
        for (const p of announced) expect(w).toContain(p);
      } else if (want === OK) {
        expect(u.treatAsWithdraw).toBe(false);
        expect(u.issues.filter((i) => i.action === "treat-as-withdraw")).toEqual([]);
        expect(prefixes(announcedBlocks(u))).toEqual(announced);
      } else {
        expect(u.treatAsWithdraw).toBe(false);
        expect(u.issues.some((i) => i.action === "attribute-discard" && i.attr === want.discard)).toBe(true);
        expect(u.issues.filter((i) => i.action === "treat-as-withdraw")).toEqual([]);
        if (!row.check) expect(present(u, want.discard)).toBe(false);
        expect(prefixes(announcedBlocks(u))).toEqual(announced);
      }
      row.check?.(u);
    });
  }
});


/**
 * The interning cache of eBGP 4-octet sessions, sets that differ by one
 * optional attribute seeded from `seed` (`setOf(n)` decodes set n), and a
 * peer 192.0.2.`octet` that sends them: for the reference-count tests.
 */
function heldSetsFixture(seed: number, octet: number) {
  const ctx: UpdateContext = { ...ctxOf(), cache: sharedAttrCache({ fourOctetAs: true, ibgp: false }) };
  const cache = ctx.cache!;
  const setOf = (n: number) => decodeUpdate(withAttrs(attr(OPT, 4, u32(seed + n))), ctx).attrs!;
  const address = `192.0.2.${octet}`;
  const src = { id: address, address, addressBytes: new Uint8Array([192, 0, 2, octet]), asn: 65000 + octet, routerId: 1, ibgp: false, rrClient: false, local: false };
  return { cache, setOf, before: cache.size, src, nh: new Uint8Array([192, 0, 2, octet]) };
}

describe("RFC 7606 details", () => {
  test("the strongest action wins when several errors occur (§3 j)", () => {
    // attribute discard (ATOMIC_AGGREGATE) + treat-as-withdraw (MED) → treat-as-withdraw
    const u = decodeUpdate(withAttrs([...attr(WT, 6, [0]), ...attr(OPT, 4, [1])]), ctxOf());
    expect(u.treatAsWithdraw).toBe(true);
    expect(u.issues.map((i) => i.action).sort()).toEqual(["attribute-discard", "treat-as-withdraw"]);
    // + an unrecognized well-known attribute → session reset
    expect(() => decodeUpdate(withAttrs([...attr(OPT, 4, [1]), WT, 99, 0]), ctxOf())).toThrow(BgpError);
  });

  test("attributes read before an overrun are still decoded, and the NLRI found by the total length (§4)", () => {
    const u = decodeUpdate(withAttrs([...attr(OPT, 4, u32(7)), ...attr(OT, 8, [1, 2], 200)]), ctxOf());
    expect(u.treatAsWithdraw).toBe(true);
    expect(u.attrs!.med).toBe(7);
    expect(prefixes(withdrawnBlocks(u))).toEqual(V4);
  });

  test("treat-as-withdraw results are the same through the attribute cache", () => {
    const c: UpdateContext = { ...ctxOf(), cache: new AttrCache() };
    const body = withAttrs(attr(OPT, 4, [0, 0, 1]));
    const a = decodeUpdate(body, c);
    const b = decodeUpdate(body, c);
    expect(a.treatAsWithdraw).toBe(true);
    expect(b.treatAsWithdraw).toBe(true);
    expect(b.issues).toEqual(a.issues);
  });

  test("the daemon-wide cache: one object per attribute set across sessions of a context, counted by the routes holding it, gone with the last one", () => {
    const make = (ibgp: boolean): UpdateContext => ({ ...ctxOf({ ibgp }), cache: sharedAttrCache({ fourOctetAs: true, ibgp }) });
    // An attribute set no other test uses (MED 0x5eed5).
    const body = withAttrs(attr(OPT, 4, u32(0x5eed5)));
    const s1 = make(false);
    const s2 = make(false);
    expect(s2.cache).toBe(s1.cache!);
    const cache = s1.cache!;
    const before = cache.size;
    const held = decodeUpdate(body, s1).attrs!;
    expect(cache.size).toBe(before + 1);
    expect(decodeUpdate(body, s2).attrs).toBe(held);
    // Another context decodes the same bytes on its own (iBGP and eBGP read some attributes differently).
    const other = decodeUpdate(body, make(true)).attrs!;
    expect(other).not.toBe(held);
    settleAttributes(other); // nothing stored it: out of its cache
    // Two routes hold it (an Adj-RIB-In), the UPDATE is done: it stays.
    holdAttributes(held);
    holdAttributes(held);
    settleAttributes(held);
    expect(decodeUpdate(body, s1).attrs).toBe(held);
    releaseAttributes(held);
    expect(decodeUpdate(body, s2).attrs).toBe(held);
    // The last one goes: so does the set (a fresh object next time, nothing stale handed out).
    releaseAttributes(held);
    expect(cache.size).toBe(before);
    const again = decodeUpdate(body, s1).attrs!;
    expect(again).not.toBe(held);
    expect(again.med).toBe(0x5eed5);
    expect(cache.size).toBe(before + 1);
    // A set derived from an interned one by spreading it is not counted as the original.
    const derived = { ...again, med: 1 };
    holdAttributes(derived);
    releaseAttributes(derived);
    expect(decodeUpdate(body, s1).attrs).toBe(again);
    settleAttributes(again);
    expect(cache.size).toBe(before);
    // Sets of the bounded kind (MRT files) and sets built by hand are ignored.
    const m = new AttrCache();
    const mrt = decodeUpdate(body, { ...ctxOf(), cache: m }).attrs!;
    releaseAttributes(mrt);
    settleAttributes(mrt);
    expect(m.size).toBe(1);
  });

  test("an Adj-RIB-In holds the sets of its routes: replaced, withdrawn and drained routes release them", () => {
    const { cache, setOf, before, src, nh } = heldSetsFixture(0x5eed0, 9);
    const rib = new AdjRibIn(src);
    const [a, b, c] = [setOf(1), setOf(2), setOf(3)];
    for (const s of [a, b, c]) settleAttributes(s); // as the session does after each UPDATE: nothing holds them yet
    expect(cache.size).toBe(before);
    const a1 = setOf(1);
    const b1 = setOf(2);
    rib.update(makeRoute(prefixKey(parsePrefix("198.51.100.0/24")), 0, src, a1, nh));
    rib.update(makeRoute(prefixKey(parsePrefix("198.51.100.128/25")), 0, src, a1, nh));
    rib.update(makeRoute(prefixKey(parsePrefix("203.0.113.0/24")), 0, src, b1, nh));
    for (const s of [a1, b1]) settleAttributes(s);
    expect(cache.size).toBe(before + 2);
    // Replaced: the old set loses a holder, the new one gains one; an identical re-announcement changes nothing.
    rib.update(makeRoute(prefixKey(parsePrefix("198.51.100.128/25")), 0, src, b1, nh));
    rib.update(makeRoute(prefixKey(parsePrefix("203.0.113.0/24")), 0, src, b1, nh));
    expect(setOf(1)).toBe(a1);
    // Withdrawn: a1's last holder goes.
    rib.withdraw(prefixKey(parsePrefix("198.51.100.0/24")));
    expect(cache.size).toBe(before + 1);
    expect(setOf(1)).not.toBe(a1);
    settleAttributes(setOf(1));
    // Drained (a session down): released as the walk goes.
    const seen = [...rib.drain()].length;
    expect(seen).toBe(2);
    expect(cache.size).toBe(before);
    const rib2 = new AdjRibIn(src);
    const c1 = setOf(3);
    rib2.update(makeRoute(prefixKey(parsePrefix("192.0.2.0/25")), 0, src, c1, nh));
    settleAttributes(c1);
    expect(cache.size).toBe(before + 1);
    rib2.withdraw(prefixKey(parsePrefix("192.0.2.0/25")));
    expect(cache.size).toBe(before);
  });
});

describe("attribute sets held with the Loc-RIB as the Adj-RIB-In's store", () => {
  test("a set is held by whichever table keeps the route; the routes of an ended session, replaced or drained, release every set", () => {
    const { cache, setOf, before, src, nh } = heldSetsFixture(0x7eed0, 8);
    const loc = new LocRib();
    const adj = new AdjRibIn(src, loc);
    const k1 = prefixKey(parsePrefix("198.51.100.0/24"));
    const k2 = prefixKey(parsePrefix("203.0.113.0/24"));
    // Accepted as it came (the Loc-RIB holds it) and rejected (kept here).
    const a = setOf(1);
    const ra = makeRoute(k1, 0, src, a, nh);
    adj.update(ra);
    loc.upsert(ra);
    adj.heldByStore(ra);
    const b = setOf(2);
    const rb = makeRoute(k2, 0, src, b, nh);
    adj.update(rb);
    adj.keepHere(rb);
    for (const s of [a, b]) settleAttributes(s);
    expect(cache.size).toBe(before + 2);
    expect(adj.keptHere).toBe(1);
    // Moved the other way by a policy change: still held once each.
    adj.keepHere(ra);
    loc.remove(src.id, k1);
    loc.upsert(rb);
    adj.heldByStore(rb);
    expect(cache.size).toBe(before + 2);
    expect(setOf(1)).toBe(a);
    // The session ends; the next one (a new source object) replaces one route before the old table is drained.
    const next = { ...src };
    const adj2 = new AdjRibIn(next, loc);
    const c = setOf(3);
    const rc = makeRoute(k2, 0, next, c, nh);
    adj2.update(rc);
    loc.upsert(rc);
    adj2.heldByStore(rc);
    settleAttributes(c);
    for (const r of adj.drain()) loc.remove(src.id, r.key, r.pathId, src);
    expect(cache.size).toBe(before + 1);
    expect(setOf(3)).toBe(c);
    for (const r of adj2.drain()) loc.remove(next.id, r.key, r.pathId, next);
    expect(cache.size).toBe(before);
  });
});

describe("the attribute cache's key: the bytes of the non-MP attributes", () => {
  test("the same attributes around different MP_REACH_NLRI share one set; a byte changed anywhere (high bytes too) or one more attribute is another set", () => {
    const c: UpdateContext = { ...ctxOf(), cache: new AttrCache() };
    const comm = (v: number) => attr(OT, ATTR.COMMUNITIES, u32(v));
    const v6 = (nlri: number[], extra: number[]) => update({ attrs: [...ORIGIN, ...mpReach(2, 1, NH6, nlri), ...AS_PATH, ...extra] });
    const a = decodeUpdate(v6(NLRI6, comm(0xfffe0080)), c);
    // The same non-MP attributes, split around an MP_REACH_NLRI with other NLRI: one object.
    const b = decodeUpdate(v6([48, 0x20, 0x01, 0x0d, 0xb8, 0, 1], comm(0xfffe0080)), c);
    expect(b.attrs).toBe(a.attrs!);
    // A high byte changed (0x80 → 0x81), a high byte lowered (0xff → 0x7f), one more attribute, one less: all distinct.
    const others = [comm(0xfffe0081), comm(0x7ffe0080), [...comm(0xfffe0080), ...attr(OPT, 4, u32(1))], []].map((x) => decodeUpdate(v6(NLRI6, x), c).attrs);
    for (const o of others) expect(o).not.toBe(a.attrs!);
    expect(new Set(others).size).toBe(others.length);
    expect(others[0]!.communities).toEqual([0xfffe0081]);
    expect(others[1]!.communities).toEqual([0x7ffe0080]);
    // The plain byte-string form (MRT): bytes that are a prefix of a stored key do not match it.
    const m = new AttrCache();
    const bytes = Uint8Array.from([...ORIGIN, ...AS_PATH, 0xff, 0x80]);
    const own = emptyAttributes();
    m.set(bytes, { attrs: own, issues: [] });
    expect(m.get(bytes.slice())).toBe(own);
    // A set is in one cache at most (its key is its own field).
    expect(() => m.set(Uint8Array.of(1, 2, 3), { attrs: a.attrs!, issues: [] })).toThrow(/already in a cache/);
    expect(m.get(bytes.subarray(0, bytes.length - 1))).toBeUndefined();
    expect(m.get(Uint8Array.from([...bytes.subarray(0, bytes.length - 1), 0x81]))).toBeUndefined();
  });

  test("a bounded cache (MRT) starts afresh at its limit, its key bytes with it; what it holds after reads back", () => {
    const m = new AttrCache(1000);
    const key = (n: number) => Uint8Array.from([...ORIGIN, ...AS_PATH, ...attr(OPT, 4, u32(n))]);
    const sets = Array.from({ length: 1000 }, (_, n) => {
      const a = emptyAttributes();
      m.set(key(n), { attrs: a, issues: [] });
      return a;
    });
    expect(m.size).toBe(1000);
    expect(m.get(key(999))).toBe(sets[999]!);
    const full = m.keyBytes;
    expect(full).toBe(1000 * (4 + key(0).length));
    // The 1001st: everything before it is let go, keys included.
    const next = emptyAttributes();
    m.set(key(1000), { attrs: next, issues: [] });
    expect(m.size).toBe(1);
    expect(m.keyBytes).toBe(4 + key(0).length);
    expect(m.keyChunkBytes).toBeLessThan(full);
    expect(m.get(key(5))).toBeUndefined();
    expect(m.get(key(1000))).toBe(next);
  });
});
