/**
 * The attribute encoder (lib/bgp/attributes.ts: encodeAttributes,
 * encodeAttributeBlocks, one pass in type order) against a plain oracle
 * written here (each attribute's value built on its own, then sorted by
 * type), over random sets of every kind: 2- and 4-octet sessions (AS_TRANS,
 * AS4_PATH, AS4_AGGREGATOR), AS paths over 255 ASes, confederation
 * segments, extended lengths, unknown attributes of any type, Partial bits,
 * MP attributes merged in; and the decoder reading the bytes back. Also the
 * interning of next hops the decoder uses.
 */
import { describe, expect, test } from "bun:test";
import {
  type AsPathSegment,
  type PathAttributes,
  type RawAttr,
  decodeAttributes,
  emptyAttributes,
  encodeAttributeBlocks,
  encodeAttributes,
  splitAttributes,
  asPathOf,
  asPathSegments,
} from "../../lib/bgp/attributes.ts";
import { Writer, internNextHop } from "../../lib/bgp/bytes.ts";
import { AS_TRANS, ATTR, FLAG, SEG } from "../../lib/bgp/types.ts";

function rng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

// ---------------------------------------------------------------- oracle

function ipv4(s: string): number[] {
  return s.split(".").map(Number);
}

function asPathValue(segs: AsPathSegment[], asLen: 2 | 4, as4Only: boolean): Uint8Array {
  const w = new Writer(64);
  for (const s of segs) {
    if (as4Only && s.type !== SEG.AS_SEQUENCE && s.type !== SEG.AS_SET) continue;
    for (let i = 0; i < s.asns.length; i += 255) {
      const chunk = s.asns.slice(i, i + 255);
      w.u8(s.type).u8(chunk.length);
      for (const asn of chunk) asLen === 4 ? w.u32(asn) : w.u16(asn > 0xffff ? AS_TRANS : asn);
    }
  }
  return w.finish();
}

function oracle(a: PathAttributes, fourOctetAs: boolean, markPartial: boolean, withNextHop: boolean, extra: RawAttr[]): Uint8Array {
  const items: RawAttr[] = [];
  const push = (flags: number, type: number, value: Uint8Array) => {
    if (flags === (FLAG.OPTIONAL | FLAG.TRANSITIVE) && a.partial?.includes(type)) flags |= FLAG.PARTIAL;
    items.push({ flags, type, value });
  };
  const u32s = (xs: number[]) => {
    const w = new Writer(4 * xs.length);
    for (const x of xs) w.u32(x);
    return w.finish();
  };
  if (a.origin !== null) push(FLAG.TRANSITIVE, ATTR.ORIGIN, Uint8Array.of(a.origin));
  if (a.asPath !== null) {
    const segs = asPathSegments(a.asPath);
    push(FLAG.TRANSITIVE, ATTR.AS_PATH, asPathValue(segs, fourOctetAs ? 4 : 2, false));
    if (!fourOctetAs && segs.some((s) => s.asns.some((x) => x > 0xffff))) push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.AS4_PATH, asPathValue(segs, 4, true));
  }
  if (withNextHop && a.nextHop !== null) push(FLAG.TRANSITIVE, ATTR.NEXT_HOP, a.nextHop);
  if (a.med !== null) push(FLAG.OPTIONAL, ATTR.MED, u32s([a.med]));
  if (a.localPref !== null) push(FLAG.TRANSITIVE, ATTR.LOCAL_PREF, u32s([a.localPref]));
  if (a.atomicAggregate) push(FLAG.TRANSITIVE, ATTR.ATOMIC_AGGREGATE, new Uint8Array(0));
  if (a.aggregator !== null) {
    const g = a.aggregator;
    const asn = fourOctetAs ? u32s([g.asn]) : Uint8Array.of(...(g.asn > 0xffff ? [AS_TRANS >> 8, AS_TRANS & 255] : [g.asn >> 8, g.asn & 255]));
    push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.AGGREGATOR, Uint8Array.of(...asn, ...ipv4(g.address)));
    if (!fourOctetAs && g.asn > 0xffff) push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.AS4_AGGREGATOR, Uint8Array.of(...u32s([g.asn]), ...ipv4(g.address)));
  }
  if (a.communities.length) push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.COMMUNITIES, u32s(a.communities));
  if (a.originatorId !== null) push(FLAG.OPTIONAL, ATTR.ORIGINATOR_ID, Uint8Array.from(ipv4(a.originatorId)));
  if (a.clusterList.length) push(FLAG.OPTIONAL, ATTR.CLUSTER_LIST, Uint8Array.from(a.clusterList.flatMap(ipv4)));
  if (a.extCommunities.length) push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.EXTENDED_COMMUNITIES, Uint8Array.from(a.extCommunities.flatMap((c) => [...c])));
  if (a.largeCommunities.length) push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.LARGE_COMMUNITY, u32s(a.largeCommunities.flat()));
  if (a.otc !== null) push(FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.OTC, u32s([a.otc]));
  for (const u of a.unknown) items.push({ flags: (markPartial ? u.flags | FLAG.PARTIAL : u.flags) & 0xf0, type: u.type, value: u.value });
  for (const x of extra) items.push(x);
  items.sort((x, y) => x.type - y.type);
  const w = new Writer(256);
  for (const it of items) {
    const ext = it.value.length > 255;
    w.u8(ext ? it.flags | FLAG.EXTENDED : it.flags & ~FLAG.EXTENDED).u8(it.type);
    ext ? w.u16(it.value.length) : w.u8(it.value.length);
    w.bytes(it.value);
  }
  return w.finish();
}

// ---------------------------------------------------------------- random sets

const UNKNOWN_TYPES = [11, 12, 13, 19, 20, 21, 25, 29, 33, 40, 77, 99, 128, 200, 255];

function randomSet(r: () => number): PathAttributes {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const asn = () => (r() < 0.3 ? 0x10000 + Math.floor(r() * 4e9) : 1 + Math.floor(r() * 65000));
  const ip = () => `${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}`;
  const list = <T>(n: number, f: () => T) => Array.from({ length: n }, f);
  const a = emptyAttributes();
  if (r() < 0.9) a.origin = Math.floor(r() * 3);
  if (r() < 0.9) {
    const segs: AsPathSegment[] = [];
    const n = Math.floor(r() * 3) + (r() < 0.2 ? 0 : 1);
    for (let i = 0; i < n; i++) segs.push({ type: pick([SEG.AS_SEQUENCE, SEG.AS_SEQUENCE, SEG.AS_SET, SEG.AS_CONFED_SEQUENCE, SEG.AS_CONFED_SET]), asns: list(r() < 0.1 ? 200 + Math.floor(r() * 400) : 1 + Math.floor(r() * 6), asn) });
    a.asPath = asPathOf(segs);
  }
  if (r() < 0.5) a.nextHop = Uint8Array.of(192, 0, 2, Math.floor(r() * 256));
  if (r() < 0.4) a.med = Math.floor(r() * 4294967296);
  if (r() < 0.4) a.localPref = Math.floor(r() * 4294967296);
  a.atomicAggregate = r() < 0.2;
  if (r() < 0.3) a.aggregator = { asn: asn(), address: ip() };
  if (r() < 0.5) a.communities = list(r() < 0.1 ? 70 + Math.floor(r() * 40) : 1 + Math.floor(r() * 5), () => Math.floor(r() * 4294967296));
  if (r() < 0.2) a.originatorId = ip();
  if (r() < 0.2) a.clusterList = list(1 + Math.floor(r() * 4), ip);
  if (r() < 0.3) a.extCommunities = list(1 + Math.floor(r() * 4), () => Uint8Array.from(list(8, () => Math.floor(r() * 256))));
  if (r() < 0.3) a.largeCommunities = list(1 + Math.floor(r() * 30), () => [asn(), Math.floor(r() * 4294967296), Math.floor(r() * 4294967296)] as [number, number, number]);
  if (r() < 0.2) a.otc = asn();
  if (r() < 0.3) {
    const types = [...new Set(list(1 + Math.floor(r() * 3), () => pick(UNKNOWN_TYPES)))];
    a.unknown = types.map((type) => ({ flags: pick([0xc0, 0xe0, 0xd0]), type, value: Uint8Array.from(list(r() < 0.1 ? 300 : Math.floor(r() * 20), () => Math.floor(r() * 256))) }));
  }
  if (r() < 0.2) a.partial = [pick([ATTR.AGGREGATOR, ATTR.COMMUNITIES, ATTR.LARGE_COMMUNITY, ATTR.EXTENDED_COMMUNITIES, ATTR.OTC])];
  return a;
}

const MP: RawAttr[] = [
  { flags: FLAG.OPTIONAL, type: ATTR.MP_REACH_NLRI, value: Uint8Array.of(0, 2, 1, 16, ...new Array(16).fill(1), 0, 48, 0x20, 1, 0xd, 0xb8, 0, 1) },
  { flags: FLAG.OPTIONAL, type: ATTR.MP_UNREACH_NLRI, value: Uint8Array.of(0, 2, 1) },
];

describe("attribute encoding", () => {
  test("2,000 random sets, 2- and 4-octet, Partial marked or not, with and without MP attributes: the oracle's bytes exactly", () => {
    const r = rng(20261204);
    for (let i = 0; i < 2000; i++) {
      const a = randomSet(r);
      const four = r() < 0.5;
      const mark = r() < 0.7;
      const extra = r() < 0.3 ? MP.slice(0, 1 + Math.floor(r() * 2)) : [];
      expect(encodeAttributes(a, four, extra, mark)).toEqual(oracle(a, four, mark, true, extra));
      // The blocks: the same without NEXT_HOP, cut where NEXT_HOP and the MP attributes would go.
      const b = encodeAttributeBlocks(a, four, mark);
      expect(b.bytes).toEqual(oracle(a, four, mark, false, []));
      const { attrs: raw, overrun } = splitAttributes(b.bytes, 0, b.bytes.length);
      expect(overrun).toBeNull();
      let off = 0;
      for (const x of raw) {
        if (x.type < ATTR.NEXT_HOP) expect(off).toBeLessThan(b.lowEnd);
        else expect(off).toBeGreaterThanOrEqual(b.lowEnd);
        if (x.type < ATTR.MP_REACH_NLRI) expect(off).toBeLessThan(b.midEnd);
        else expect(off).toBeGreaterThanOrEqual(b.midEnd);
        off += (x.flags & FLAG.EXTENDED ? 4 : 3) + x.value.length;
      }
    }
  });

  test("what is encoded decodes back to the same set (4-octet; 2-octet paths through AS4_PATH)", () => {
    const r = rng(7);
    for (let i = 0; i < 1000; i++) {
      const a = randomSet(r);
      // What a decoder can give back: no confederation segments from this test's external view, no duplicate large communities.
      const kept = a.asPath === null ? null : asPathSegments(a.asPath).filter((s) => s.type === SEG.AS_SEQUENCE || s.type === SEG.AS_SET);
      a.asPath = kept === null || kept.length === 0 ? null : asPathOf(kept);
      a.largeCommunities = a.largeCommunities.filter((l, j) => a.largeCommunities.findIndex((m) => m[0] === l[0] && m[1] === l[1] && m[2] === l[2]) === j);
      a.unknown = a.unknown.filter((u) => u.flags & FLAG.TRANSITIVE);
      // A Partial mark is carried by its attribute: none without it.
      const present: Record<number, boolean> = { [ATTR.AGGREGATOR]: a.aggregator !== null, [ATTR.COMMUNITIES]: a.communities.length > 0, [ATTR.LARGE_COMMUNITY]: a.largeCommunities.length > 0, [ATTR.EXTENDED_COMMUNITIES]: a.extCommunities.length > 0, [ATTR.OTC]: a.otc !== null };
      if (a.partial) a.partial = a.partial.filter((t) => present[t]);
      for (const four of [true, false]) {
        const bytes = encodeAttributes(a, four, [], false);
        const issues: { reason: string }[] = [];
        const back = decodeAttributes(splitAttributes(bytes, 0, bytes.length).attrs, { fourOctetAs: four, ibgp: true }, issues as never);
        expect(issues).toEqual([]);
        // (Unknown attributes go out in type order, with the extended-length bit only when needed.)
        const norm = (x: PathAttributes) => ({
          ...x,
          partial: x.partial ?? [],
          unknown: x.unknown.map((u) => ({ ...u, flags: u.flags & ~FLAG.EXTENDED })).sort((p, q) => p.type - q.type),
        });
        if (asPathSegments(a.asPath).some((s) => s.asns.length > 255)) continue; // split on the wire into several segments
        expect(norm(back)).toEqual(norm(a));
      }
    }
  });
});

describe("next hops", () => {
  test("interned: equal bytes give one object (IPv4 by number, IPv6 by bytes), different bytes different ones, never the caller's buffer", () => {
    const buf = Uint8Array.of(0, 192, 0, 2, 1, 0, 192, 0, 2, 1, 192, 0, 2, 2);
    const a = internNextHop(buf, 1, 5);
    expect(internNextHop(buf, 6, 10)).toBe(a);
    expect(a).toEqual(Uint8Array.of(192, 0, 2, 1));
    expect(a.buffer).not.toBe(buf.buffer);
    expect(internNextHop(buf, 10, 14)).not.toBe(a);
    const v6 = Uint8Array.of(0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 1);
    const b = internNextHop(v6, 0, 16);
    expect(internNextHop(v6.slice(), 0, 16)).toBe(b);
    expect(internNextHop(Uint8Array.of(0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 2), 0, 16)).not.toBe(b);
  });
});
