/**
 * The Adj-RIB-Out's fast encoding path, checked against the general one:
 * prefixes written into NLRI form straight from their keys (`writeKeyNlri`)
 * give exactly `writePrefix`'s bytes; UPDATEs packed from NLRI bytes with
 * cached attribute blocks (`buildAnnouncementsNlri`, `buildWithdrawalsNlri`)
 * are byte for byte what `encodeUpdate` writes for the same parts, for IPv4
 * (NEXT_HOP) and IPv6 (MP_REACH/MP_UNREACH), 2- and 4-octet sessions,
 * ADD-PATH, unknown attributes and sets large enough for extended lengths;
 * and PrefixMap's read-then-write memo never answers for a key whose slot
 * changed (interleaved with removals and index rebuilds, against a Map).
 */
import { describe, expect, test } from "bun:test";
import { type PathAttributes, emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { Writer } from "../../lib/bgp/bytes.ts";
import { writePrefix } from "../../lib/bgp/prefix.ts";
import { ATTR, FLAG, type Prefix, SEG } from "../../lib/bgp/types.ts";
import { type EncodeContext, buildAnnouncements, buildWithdrawals, encodeUpdate, nlriBytes } from "../../lib/bgp/update.ts";
import { PrefixMap } from "../../lib/rib/prefix-map.ts";
import { type PrefixKey, keyText, prefixKey, prefixOfKey, writeKeyNlri } from "../../lib/rib/types.ts";
import { prefixToString } from "../../lib/core/addr.ts";

function rng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

/** A random prefix of the family with host bits cleared (as keys hold them). */
function randomPrefix(r: () => number, afi: 1 | 2): Prefix {
  const n = afi === 1 ? 4 : 16;
  const len = Math.floor(r() * (n * 8 + 1));
  const addr = new Uint8Array(n);
  for (let i = 0; i < n; i++) addr[i] = Math.floor(r() * 256);
  for (let bit = len; bit < n * 8; bit++) addr[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { afi, len, addr };
}

const ctx = (o: Partial<EncodeContext> = {}): EncodeContext => ({ fourOctetAs: true, addPathSend: () => false, maxLen: 4096, ...o });

function attrs(o: Partial<PathAttributes> = {}): PathAttributes {
  return { ...emptyAttributes(), origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65010, 4200000001, 3356] }]), ...o };
}

describe("NLRI straight from prefix keys", () => {
  for (const addPath of [false, true]) {
    test(`writeKeyNlri writes writePrefix's bytes for 4,000 random IPv4 and IPv6 prefixes of every length${addPath ? " (ADD-PATH, path id 1)" : ""}`, () => {
      const r = rng(addPath ? 7 : 3);
      for (let i = 0; i < 4000; i++) {
        const p = randomPrefix(r, i % 2 ? 2 : 1);
        const a = new Writer(32);
        const b = new Writer(32);
        writeKeyNlri(a, prefixKey(p), addPath, 1);
        writePrefix(b, { ...prefixOfKey(prefixKey(p)), pathId: 1 }, addPath);
        expect(a.finish()).toEqual(b.finish());
      }
    });
  }
});

describe("prefix text straight from keys", () => {
  test("keyText is the text of the key's prefix for 4,000 random IPv4 and IPv6 prefixes of every length", () => {
    const r = rng(11);
    for (let i = 0; i < 4000; i++) {
      const p = randomPrefix(r, i % 2 ? 2 : 1);
      expect(keyText(prefixKey(p))).toBe(prefixToString(p));
    }
  });
});

describe("UPDATEs from NLRI bytes and cached attribute blocks", () => {
  const r = rng(11);
  const v4 = Array.from({ length: 40 }, () => randomPrefix(r, 1));
  const v6 = Array.from({ length: 40 }, () => randomPrefix(r, 2));
  const nh4 = Uint8Array.of(192, 0, 2, 1);
  const nh6 = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1);
  const sets: [string, PathAttributes][] = [
    ["plain", attrs()],
    ["MED, LOCAL_PREF, communities, large communities, extended communities", attrs({ med: 5, localPref: 200, communities: [0xfde80001, 0xfde80002], largeCommunities: [[65000, 1, 2]], extCommunities: [Uint8Array.of(0, 2, 0xfd, 0xe8, 0, 0, 0, 7)] })],
    ["ORIGINATOR_ID, CLUSTER_LIST, AGGREGATOR, OTC", attrs({ originatorId: "192.0.2.7", clusterList: ["192.0.2.8"], aggregator: { asn: 4200000002, address: "192.0.2.9" }, otc: 65001, atomicAggregate: true })],
    ["unknown transitive attribute (Partial set when sent)", attrs({ unknown: [{ flags: FLAG.OPTIONAL | FLAG.TRANSITIVE, type: 99, value: Uint8Array.of(1, 2, 3) }] })],
    ["communities long enough for an extended length", attrs({ communities: Array.from({ length: 100 }, (_, i) => 0xfde80000 + i) })],
  ];
  for (const [name, a] of sets) {
    for (const four of [true, false]) {
      for (const addPath of [false, true]) {
        test(`${name}, ${four ? "4" : "2"}-octet session${addPath ? ", ADD-PATH" : ""}: byte for byte what encodeUpdate writes`, () => {
          const c = ctx({ fourOctetAs: four, addPathSend: () => addPath });
          const ids = (ps: Prefix[]) => ps.map((p) => ({ ...p, pathId: 1 }));
          const [m4, ...more4] = buildAnnouncements(1, 1, ids(v4), a, nh4, c);
          expect(more4).toEqual([]);
          expect(m4).toEqual(encodeUpdate({ attrs: { ...a, nextHop: nh4 }, nlri: ids(v4) }, c));
          const [m6, ...more6] = buildAnnouncements(2, 1, ids(v6), a, nh6, c);
          expect(more6).toEqual([]);
          expect(m6).toEqual(encodeUpdate({ attrs: { ...a, nextHop: null }, mpReach: { afi: 2, safi: 1, nextHop: nh6, nlri: ids(v6) } }, c));
          expect(buildWithdrawals(1, 1, ids(v4), c)).toEqual([encodeUpdate({ withdrawn: ids(v4) }, c)]);
          expect(buildWithdrawals(2, 1, ids(v6), c)).toEqual([encodeUpdate({ mpUnreach: { afi: 2, safi: 1, withdrawn: ids(v6) } }, c)]);
        });
      }
    }
  }

  test("packing: 3,000 IPv6 prefixes split at prefix boundaries into messages of at most 4096 bytes, all of them sent once, in order", () => {
    const rr = rng(5);
    const ps = Array.from({ length: 3000 }, () => randomPrefix(rr, 2));
    const a = attrs();
    const msgs = buildAnnouncements(2, 1, ps, a, nh6, ctx());
    expect(msgs.length).toBeGreaterThan(5);
    for (const m of msgs) expect(m.length).toBeLessThanOrEqual(4096);
    // Re-encoding each message's share with the general encoder gives the same bytes: the runs are whole prefixes.
    let at = 0;
    for (const m of msgs) {
      let n = 0;
      for (let k = 1; k <= ps.length - at; k++) {
        const want = encodeUpdate({ attrs: a, mpReach: { afi: 2, safi: 1, nextHop: nh6, nlri: ps.slice(at, at + k) } }, ctx());
        if (want.length === m.length) {
          expect(m).toEqual(want);
          n = k;
          break;
        }
      }
      expect(n).toBeGreaterThan(0);
      at += n;
    }
    expect(at).toBe(ps.length);
    expect(nlriBytes(ps, false).len).toBe(ps.reduce((s, p) => s + 1 + ((p.len + 7) >> 3), 0));
  });

  test("the same set object is encoded once: a second message reuses its blocks (identity of the cached object)", () => {
    const a = attrs({ communities: [1, 2, 3] });
    const m1 = buildAnnouncements(1, 1, v4.slice(0, 3), a, nh4, ctx());
    // Mutating a set after it was sent is not allowed; the cache shows it by sending what it first encoded.
    (a as { communities: number[] }).communities = [9];
    const m2 = buildAnnouncements(1, 1, v4.slice(0, 3), a, nh4, ctx());
    expect(m2).toEqual(m1);
    expect(ATTR.COMMUNITIES).toBe(8);
  });
});

describe("PrefixMap read-then-write memo", () => {
  test("get then set/delete of the same key, interleaved with other removals, inserts and index rebuilds, agree with a Map", () => {
    const r = rng(21);
    const m = new PrefixMap<PrefixKey, number>();
    const model = new Map<PrefixKey, number>();
    const key = (i: number): PrefixKey => (i % 3 === 0 ? prefixKey({ afi: 2, len: 64, addr: Uint8Array.of(0x20, 1, 0xd, 0xb8, i >> 8, i & 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }) : (i * 256 + 24) * 64 + 24);
    for (let step = 0; step < 80_000; step++) {
      const k = key(Math.floor(r() * (step < 40_000 ? 20_000 : 3_000)));
      expect(m.get(k)).toBe(model.get(k));
      const x = r();
      if (x < 0.3) {
        // Something else changes between the read and the write.
        const o = key(Math.floor(r() * 20_000));
        m.delete(o);
        model.delete(o);
      } else if (x < 0.5) {
        const o = key(Math.floor(r() * 20_000));
        m.set(o, -step);
        model.set(o, -step);
      }
      if (r() < 0.6) {
        m.set(k, step);
        model.set(k, step);
      } else {
        expect(m.delete(k)).toBe(model.delete(k));
      }
      if (step % 997 === 0) {
        // A lookup then a write of the same key (the RIBs' pattern, through the map's memo of it).
        expect(m.has(k)).toBe(model.has(k));
        if (!model.has(k)) {
          m.set(k, 1);
          model.set(k, 1);
        }
      }
    }
    expect(m.size).toBe(model.size);
    for (const [k, v] of model) expect(m.get(k)).toBe(v);
  });
});
