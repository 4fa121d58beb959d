/**
 * Prefix keys (lib/rib/types.ts `PrefixKey`): an IPv6 prefix in 2000::/3 of
 * length 3..64 with no bits past its length is a negative number (3..50 an
 * integer of at most −3, 51..64 a number above −2 made of the prefix's
 * bits), any other IPv6 prefix the nine-unit string, an IPv4 prefix a number
 * from 0 up. Every
 * reader of a key agrees with the prefix it was made from: the UPDATE
 * reader's keys (`prefixKeyOfBytes`, bits past the length ignored), the
 * key's prefix, text and NLRI bytes, its family, address order
 * (`compareKeys`), and the string form every IPv6 key had before
 * (`v6KeyString`).
 */
import { describe, expect, test } from "bun:test";
import { Writer, internNextHop } from "../../lib/bgp/bytes.ts";
import { writePrefix } from "../../lib/bgp/prefix.ts";
import type { Prefix } from "../../lib/bgp/types.ts";
import { parsePrefix, prefixToString } from "../../lib/core/addr.ts";
import { PrefixMap } from "../../lib/rib/prefix-map.ts";
import { type PrefixKey, compareKeys, familyOfKey, isV4Key, keyText, prefixKey, prefixKeyOfBytes, prefixOfKey, textKey, v6KeyString, writeKeyNlri } from "../../lib/rib/types.ts";

function rng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

/** A random IPv6 prefix, host bits clear; in 2000::/3 three times in four, of any length, lengths 3..64 twice as often as the rest. */
function randomV6(r: () => number): Prefix {
  const addr = new Uint8Array(16);
  for (let i = 0; i < 16; i++) addr[i] = Math.floor(r() * 256);
  if (r() < 0.75) addr[0] = 0x20 | (addr[0]! & 0x1f);
  const len = r() < 0.5 ? 3 + Math.floor(r() * 62) : Math.floor(r() * 129);
  for (let bit = len; bit < 128; bit++) addr[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { afi: 2, len, addr };
}

/** The string key every IPv6 prefix had before numeric keys: its length, then its eight 16-bit words. */
function stringForm(p: Prefix): string {
  let s = String.fromCharCode(p.len);
  for (let i = 0; i < 16; i += 2) s += String.fromCharCode((p.addr[i]! << 8) | p.addr[i + 1]!);
  return s;
}

const numeric = (p: Prefix) => p.afi === 2 && p.len >= 3 && p.len <= 64 && (p.addr[0]! & 0xe0) === 0x20;

/** Address order: IPv4 first, then by address bytes, then by length. */
function compareModel(a: Prefix, b: Prefix): number {
  if (a.afi !== b.afi) return a.afi - b.afi;
  for (let i = 0; i < a.addr.length; i++) if (a.addr[i] !== b.addr[i]) return a.addr[i]! - b.addr[i]!;
  return a.len - b.len;
}

describe("prefix keys", () => {
  test("20,000 random IPv6 prefixes: a number exactly when in 2000::/3 with length 3..64, and every reader agrees with the prefix", () => {
    const r = rng(7);
    let numbers = 0;
    let wide = 0;
    for (let n = 0; n < 20_000; n++) {
      const p = randomV6(r);
      const k = prefixKey(p);
      expect(typeof k === "number").toBe(numeric(p));
      if (typeof k === "number") {
        numbers++;
        expect(k).toBeLessThan(0);
        if (p.len <= 50) {
          expect(Number.isSafeInteger(k)).toBe(true);
          expect(k).toBeLessThanOrEqual(-3);
        } else {
          wide++;
          expect(k).toBeGreaterThan(-2);
          expect(Number.isNaN(k)).toBe(false);
        }
      }
      expect(isV4Key(k)).toBe(false);
      expect(familyOfKey(k)).toBe(2);
      expect(prefixOfKey(k)).toEqual(p);
      expect(keyText(k)).toBe(prefixToString(p));
      expect(textKey(prefixToString(p))).toBe(k);
      expect(v6KeyString(k)).toBe(stringForm(p));
      // The UPDATE reader's key: the NLRI's bytes, with noise in the bits past the length and after the last byte.
      const nb = (p.len + 7) >> 3;
      const buf = new Uint8Array(3 + nb + 4).fill(0xff);
      buf.set(p.addr.subarray(0, nb), 3);
      if (p.len & 7) buf[3 + nb - 1]! |= 0xff >> (p.len & 7);
      expect(prefixKeyOfBytes(2, p.len, buf, 3)).toBe(k);
      const w1 = new Writer();
      writeKeyNlri(w1, k, false, 0);
      const w2 = new Writer();
      writePrefix(w2, p, false);
      expect([...w1.finish()]).toEqual([...w2.finish()]);
    }
    expect(numbers).toBeGreaterThan(8_000);
    expect(wide).toBeGreaterThan(1_500);
  });

  test("the edges of the numeric ranges: lengths 2, 3, 50, 51, 64, 65, the range's first and last addresses, other ranges, host bits set", () => {
    const cases: [string, "number" | "string"][] = [
      ["::/0", "string"],
      ["c000::/2", "string"],
      ["2000::/3", "number"],
      ["3fff:ffff:ffff:c000::/50", "number"],
      ["3fff:ffff:ffff:e000::/51", "number"],
      ["2000::/51", "number"],
      ["3fff:ffff:ffff:ffff::/64", "number"],
      ["2000::/64", "number"],
      ["3fff:ffff:ffff:ffff:8000::/65", "string"],
      ["3000::/56", "number"],
      ["2001:db8::/32", "number"],
      ["2001:db8:1::/48", "number"],
      ["2001:db8:1:2::/64", "number"],
      ["2001:db8:1:200::/56", "number"],
      ["2001:db8::1/128", "string"],
      ["4000::/3", "string"],
      ["1fff:ffff:ffff:c000::/50", "string"],
      ["1fff:ffff:ffff:ffff::/64", "string"],
      ["fd00:10:96::/48", "string"],
      ["::/3", "string"],
    ];
    for (const [text, kind] of cases) {
      const p = parsePrefix(text);
      const k = prefixKey(p);
      expect([text, typeof k]).toEqual([text, kind]);
      expect(keyText(k)).toBe(text);
      expect(prefixOfKey(k)).toEqual(p);
    }
    // Host bits set (not from the wire: a Prefix made by hand): the string form, kept as given, not the masked prefix's number.
    const masked = parsePrefix("2001:db8:1::/48");
    const host = { ...masked, addr: masked.addr.slice() };
    host.addr[15] = 1;
    const hk = prefixKey(host);
    expect(typeof hk).toBe("string");
    expect(hk).not.toBe(prefixKey(masked));
    expect(prefixOfKey(hk)).toEqual(host);
    host.addr[15] = 0;
    host.addr[6] = 0x80; // bit 48: past a /48's length, inside the numeric range's 50 bits
    expect(typeof prefixKey(host)).toBe("string");
    expect(prefixOfKey(prefixKey(host))).toEqual(host);
  });

  test("distinct prefixes have distinct keys, equal prefixes equal ones (100,000 random prefixes of both families)", () => {
    const r = rng(11);
    const byKey = new Map<PrefixKey, string>();
    for (let n = 0; n < 100_000; n++) {
      let p: Prefix;
      if (n % 4 === 0) {
        const len = Math.floor(r() * 33);
        const v = Math.floor(r() * 2 ** 32);
        const a = len === 0 ? 0 : v - (v % 2 ** (32 - len));
        p = { afi: 1, len, addr: new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]) };
      } else p = randomV6(r);
      const k = prefixKey(p);
      const text = prefixToString(p);
      const had = byKey.get(k);
      if (had !== undefined) expect(had).toBe(text);
      else byKey.set(k, text);
      expect(familyOfKey(k)).toBe(p.afi);
    }
    expect(new Set(byKey.values()).size).toBe(byKey.size);
  });

  test("compareKeys is address order (IPv4 first, then address, then length) across IPv4, numeric and string IPv6 keys", () => {
    const r = rng(5);
    const ps: Prefix[] = [];
    for (let n = 0; n < 3_000; n++) ps.push(randomV6(r));
    // Neighbours that differ only past bit 50, or only in length, or sit across the numeric range's edges.
    for (const t of ["2001:db8::/32", "2001:db8::/48", "2001:db8::/64", "2001:db8::/50", "2001:db8::/51", "2001:db8:0:8000::/49", "2001:db8:0:4000::/51", "2001:db8:0:1::/64", "2001:db8:0:1::/65", "3fff:ffff:ffff:ffff::/64", "2000::/64", "2000::/3", "c000::/2", "::/0", "10.0.0.0/8", "10.0.0.0/24", "0.0.0.0/0"]) ps.push(parsePrefix(t));
    const byKey = [...ps].map((p) => ({ p, k: prefixKey(p) })).sort((a, b) => compareKeys(a.k, b.k));
    const byModel = [...ps].sort(compareModel);
    expect(byKey.map((x) => prefixToString(x.p))).toEqual(byModel.map(prefixToString));
  });

  test("a PrefixMap holds narrow, wide and string IPv6 keys side by side: dense runs of /48s and /64s found, told apart and removed as a Map would", () => {
    const keys: PrefixKey[] = [];
    for (let i = 0; i < 20_000; i++) keys.push(prefixKey(parsePrefix(`2001:db8:${i.toString(16)}::/48`)));
    for (let i = 0; i < 5_000; i++) keys.push(prefixKey(parsePrefix(`2001:db8:1:${i.toString(16)}::/64`)));
    // Every numeric length at one address (all ones after 001, cut to the length).
    for (let len = 3; len <= 50; len++) {
      const addr = new Uint8Array(16).fill(0xff);
      addr[0] = 0x3f;
      for (let bit = len; bit < 128; bit++) addr[bit >> 3]! &= ~(0x80 >> (bit & 7));
      keys.push(prefixKey({ afi: 2, len, addr }));
    }
    // Every wide length at one address, and at the range's first.
    for (let len = 51; len <= 64; len++) {
      for (const fill of [0xff, 0]) {
        const addr = new Uint8Array(16).fill(fill);
        addr[0] = fill ? 0x3f : 0x20;
        for (let bit = len; bit < 128; bit++) addr[bit >> 3]! &= ~(0x80 >> (bit & 7));
        keys.push(prefixKey({ afi: 2, len, addr }));
      }
    }
    keys.push(prefixKey(parsePrefix("2001:db8::1/128")), prefixKey(parsePrefix("::/0")));
    expect(keys.filter((k) => typeof k === "number").length).toBe(20_000 + 5_000 + 48 + 28);
    expect(keys.filter((k) => typeof k === "string").length).toBe(2);
    const m = new PrefixMap<PrefixKey, number>();
    const model = new Map<PrefixKey, number>();
    keys.forEach((k, i) => {
      m.set(k, i);
      model.set(k, i);
    });
    expect(m.size).toBe(model.size);
    for (const k of keys) expect(m.get(k)).toBe(model.get(k));
    keys.forEach((k, i) => {
      if (i % 3 === 0) expect(m.delete(k)).toBe(model.delete(k));
    });
    for (const k of keys) expect(m.get(k)).toBe(model.get(k));
    expect(m.size).toBe(model.size);
  });

  test("next hops are shared per distinct bytes, never across lengths", () => {
    const a = new Uint8Array(16);
    const b = new Uint8Array(8);
    for (let i = 0; i < 8; i++) a[2 * i + 1] = b[i] = i + 1; // the 16-byte address's words equal the 8 bytes' values
    const ia = internNextHop(a, 0, 16);
    const ib = internNextHop(b, 0, 8);
    expect(ia.length).toBe(16);
    expect(ib.length).toBe(8);
    expect([...ia]).toEqual([...a]);
    expect([...ib]).toEqual([...b]);
    expect(internNextHop(a.slice(), 0, 16)).toBe(ia);
    const ll = new Uint8Array(32);
    ll.set(a);
    ll[16] = 0xfe;
    ll[17] = 0x80;
    const il = internNextHop(ll, 0, 32);
    expect([...il]).toEqual([...ll]);
    expect(internNextHop(ll.slice(), 0, 32)).toBe(il);
    expect(il).not.toBe(ia);
  });
});
