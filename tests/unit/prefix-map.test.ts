/**
 * PrefixMap (lib/rib/prefix-map.ts) against a JavaScript Map as the model:
 * random sets, deletes and clears of IPv4 (number) and IPv6 (negative number, string) keys
 * through several index rebuilds; walks that run while the table changes;
 * and the property it exists for, no write that rebuilds the whole index at
 * once (counted, not timed).
 */
import { describe, expect, test } from "bun:test";
import { PrefixMap } from "../../lib/rib/prefix-map.ts";
import { type PrefixKey, prefixKey } from "../../lib/rib/types.ts";

function rng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

const v4 = (i: number): number => prefixKey({ afi: 1, len: 24, addr: new Uint8Array([10 + (i >>> 16), (i >>> 8) & 0xff, i & 0xff, 0]) }) as number;
/** IPv6 /48s in 2001::/16: numeric keys (negative). */
const v6 = (i: number): number => prefixKey({ afi: 2, len: 48, addr: new Uint8Array([0x20, 0x01, (i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) }) as number;
/** IPv6 /64s in 2001:db8::/32: string keys. */
const v6s = (i: number): string => prefixKey({ afi: 2, len: 64, addr: new Uint8Array([0x20, 0x01, 0x0d, 0xb8, (i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff, 0, 0, 0, 0, 0, 0, 0, 0]) }) as string;

function same<K extends PrefixKey>(m: PrefixMap<K, number>, model: Map<K, number>): void {
  expect(m.size).toBe(model.size);
  const got = [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  const want = [...model.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  expect(got).toEqual(want);
}

describe("PrefixMap", () => {
  for (const [name, keyOf] of [["IPv4 keys", v4], ["IPv6 numeric keys", v6], ["IPv6 string keys", v6s]] as const) {
    test(`${name}: random sets, deletes and clears agree with a Map, through index rebuilds`, () => {
      const r = rng(name.length);
      const m = new PrefixMap<PrefixKey, number>();
      const model = new Map<PrefixKey, number>();
      for (let step = 0; step < 60_000; step++) {
        const x = r();
        // Growth first, then churn, so both kinds of rebuild happen.
        const k = keyOf(Math.floor(r() * (step < 30_000 ? 40_000 : 8_000)));
        if (x < 0.6) {
          m.set(k, step);
          model.set(k, step);
        } else if (x < 0.9999) {
          expect(m.delete(k)).toBe(model.delete(k));
        } else {
          m.clear();
          model.clear();
        }
        if (step % 997 === 0) {
          expect(m.get(k)).toBe(model.get(k));
          expect(m.has(k)).toBe(model.has(k));
        }
        if (step % 9_973 === 0) same(m, model);
      }
      same(m, model);
      for (const k of model.keys()) expect(m.get(k)).toBe(model.get(k));
      expect(m.get(keyOf(1_000_000))).toBeUndefined();
    });
  }

  for (const [name, keyOf] of [["IPv4 keys", v4], ["IPv6 numeric keys", v6], ["IPv6 string keys", v6s]] as const) {
    test(`${name}: an insert goes where the missed lookup of its key ended, also after other inserts, removals and index rebuilds in between`, () => {
      const r = rng(7 + name.length);
      const m = new PrefixMap<PrefixKey, number>();
      const model = new Map<PrefixKey, number>();
      let inserted = 0;
      for (let step = 0; step < 40_000; step++) {
        // Look up an absent key (the miss remembers where its probe ended), then 0-3 other writes, then set the key.
        const k = keyOf(Math.floor(r() * 30_000));
        expect(m.get(k)).toBe(model.get(k));
        for (let n = Math.floor(r() * 4); n > 0; n--) {
          const o = keyOf(Math.floor(r() * 30_000));
          if (r() < 0.55) {
            m.set(o, -step);
            model.set(o, -step);
          } else expect(m.delete(o)).toBe(model.delete(o));
        }
        if (!model.has(k)) inserted++;
        m.set(k, step);
        model.set(k, step);
        // Each key found where it was put: a lookup right after, and (now and then) all of them.
        expect(m.get(k)).toBe(step);
        if (step % 4_999 === 0) {
          same(m, model);
          for (const key of model.keys()) expect(m.get(key)).toBe(model.get(key));
        }
      }
      expect(inserted).toBeGreaterThan(10_000);
      same(m, model);
      for (const key of model.keys()) expect(m.get(key)).toBe(model.get(key));
      for (const key of [...model.keys()]) expect(m.delete(key)).toBe(true);
      expect(m.size).toBe(0);
    });
  }

  test("a missed lookup, then removals that finish building a new index, then the insert: the key goes into the new index where lookups find it", () => {
    for (const keyOf of [v4, v6, v6s] as ((i: number) => PrefixKey)[]) {
      const m = new PrefixMap<PrefixKey, number>();
      const internals = m as unknown as { next: Int32Array | null; idx: Int32Array };
      let n = 0;
      // Fill until a new index is being built alongside the one lookups use.
      while (internals.next === null) m.set(keyOf(n), n++);
      const before = internals.idx;
      const fresh = keyOf(1_000_000);
      expect(m.get(fresh)).toBeUndefined(); // the miss: its probe ended in the old index
      // Removals carry the build on; the last of them puts the new index in place.
      let gone = 0;
      while (internals.next !== null) m.delete(keyOf(gone++));
      expect(internals.idx).not.toBe(before);
      m.set(fresh, -1);
      expect(m.get(keyOf(n - 1))).toBe(n - 1); // (another lookup first: the next one is not served from memory)
      expect(m.get(fresh)).toBe(-1);
      for (let i = gone; i < n; i++) expect(m.get(keyOf(i))).toBe(i);
      expect(m.size).toBe(n - gone + 1);
    }
  });

  test("IPv4 keys of every length, dense runs of neighbours, /0, /32s and keys with host bits set: found, told apart and removed as a Map would", () => {
    const key = (a: number, len: number) => prefixKey({ afi: 1, len, addr: new Uint8Array([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff]) }) as number;
    const keys: number[] = [];
    // Every length at one address, and its neighbours at that length (the last significant bits differ).
    for (let len = 0; len <= 32; len++) for (let i = 0; i < 40; i++) keys.push(key(len === 0 ? 0 : (0xc6336400 + i * 2 ** (32 - len)) >>> 0, len));
    // 5,000 consecutive /32s (one block of Service addresses) and 3,000 consecutive /24s.
    for (let i = 0; i < 5000; i++) keys.push(key(0xcb007100 + i, 32));
    for (let i = 0; i < 3000; i++) keys.push(key((0x0a000000 + i * 256) >>> 0, 24));
    // Same network bits, host bits set: distinct keys, never piled on one run.
    for (let i = 0; i < 20; i++) keys.push(key(0xc0000200 + i, 24));
    const uniq = [...new Set(keys)];
    const m = new PrefixMap<number, number>();
    const model = new Map<number, number>();
    uniq.forEach((k, i) => {
      m.set(k, i);
      model.set(k, i);
    });
    same(m, model);
    for (const k of uniq) expect(m.get(k)).toBe(model.get(k));
    // Remove every third, then look all up again (removed marks on the probe paths).
    uniq.forEach((k, i) => {
      if (i % 3 === 0) expect(m.delete(k)).toBe(model.delete(k));
    });
    for (const k of uniq) expect(m.get(k)).toBe(model.get(k));
    same(m, model);
  });

  test("insertion order without removals; [Symbol.iterator], keys and values agree", () => {
    const m = new PrefixMap<number, string>();
    for (let i = 0; i < 1000; i++) m.set(v4(i), `v${i}`);
    m.set(v4(5), "again"); // an update keeps the position
    expect([...m.keys()]).toEqual(Array.from({ length: 1000 }, (_, i) => v4(i)));
    expect([...m.values()][5]).toBe("again");
    expect([...m].map(([k]) => k)).toEqual([...m.keys()]);
  });

  test("put's position reaches its entry without a lookup for as long as the key is in the table, through index rebuilds and other removals", () => {
    const m = new PrefixMap<number, string>();
    const at = new Map<number, number>();
    for (let i = 0; i < 20_000; i++) at.set(i * 64 + 24, m.put(i * 64 + 24, `v${i}`));
    // Others removed (their holes reused by new keys), values replaced by key and by position.
    for (let i = 0; i < 20_000; i += 3) m.delete(i * 64 + 24);
    for (let i = 0; i < 5_000; i++) m.set(1e9 + i, "new");
    expect(m.put(64 + 24, "again")).toBe(at.get(64 + 24)!);
    for (let i = 1; i < 20_000; i++) {
      if (i % 3 === 0) continue;
      const k = i * 64 + 24;
      const p = at.get(k)!;
      expect(m.keyAt(p)).toBe(k);
      if (i % 2 === 0) m.setValueAt(p, `w${i}`);
      expect(m.valueAt(p)).toBe(i === 1 ? "again" : i % 2 === 0 ? `w${i}` : `v${i}`);
      expect(m.get(k)).toBe(m.valueAt(p));
    }
  });

  test("holds: whether a position has an entry now (freed, reused, past the end, negative)", () => {
    const m = new PrefixMap<number, string>();
    const a = m.put(10 * 64 + 24, "a");
    const b = m.put(11 * 64 + 24, "b");
    expect([m.holds(a), m.holds(b), m.holds(b + 1), m.holds(-1)]).toEqual([true, true, false, false]);
    m.delete(10 * 64 + 24);
    expect(m.holds(a)).toBe(false);
    expect(m.put(12 * 64 + 24, "c")).toBe(a); // the hole reused
    expect(m.holds(a)).toBe(true);
    m.delete(11 * 64 + 24);
    m.delete(12 * 64 + 24); // empty: cleared
    expect([m.holds(a), m.holds(b)]).toEqual([false, false]);
  });

  test("a walk while the table changes: removed entries skipped, new ones visited, none twice", () => {
    const m = new PrefixMap<number, number>();
    for (let i = 0; i < 5000; i++) m.set(v4(i), i);
    const seen = new Set<number>();
    let n = 0;
    for (const [k, v] of m) {
      expect(seen.has(k)).toBe(false);
      seen.add(k);
      if (n++ === 100) {
        for (let i = 4000; i < 5000; i++) m.delete(v4(i)); // ahead of the walk
        for (let i = 5000; i < 20_000; i++) m.set(v4(i), i); // new positions (holes first): grows the index meanwhile
      }
      expect(m.get(k)).toBe(v);
    }
    // Everything never removed was visited; nothing removed before the walk reached it was.
    for (let i = 0; i < 4000; i++) expect(seen.has(v4(i))).toBe(true);
    for (let i = 20_000 - 13_000; i < 20_000; i++) expect(seen.has(v4(i))).toBe(true);
    expect(m.size).toBe(19_000);
  });

  test("no write rebuilds the whole index: a million inserts, each touching a bounded number of positions", () => {
    const m = new PrefixMap<number, number>();
    // Instrument: the most index positions any one set() took in while a new index was built.
    let worst = 0;
    const proto = PrefixMap.prototype as unknown as { place: (k: PrefixKey, pos: number) => void };
    const place = proto.place;
    let perWrite = 0;
    proto.place = function (this: unknown, k: PrefixKey, pos: number) {
      perWrite++;
      return place.call(this, k, pos);
    };
    try {
      for (let i = 0; i < 1_000_000; i++) {
        perWrite = 0;
        m.set(i * 64 + 24, i);
        if (perWrite > worst) worst = perWrite;
      }
    } finally {
      proto.place = place;
    }
    expect(m.size).toBe(1_000_000);
    expect(worst).toBeGreaterThan(0); // rebuilds happened
    expect(worst).toBeLessThanOrEqual(17); // STEP positions, plus the entry itself
    for (let i = 0; i < 1_000_000; i += 997) expect(m.get(i * 64 + 24)).toBe(i);
  });

  test("a large new index is zeroed a piece per write before it is used (its memory comes unzeroed, recycled memory may hold anything)", () => {
    const m = new PrefixMap<number, number>();
    const alloc = Buffer.allocUnsafeSlow;
    const fill = Int32Array.prototype.fill;
    const big: number[] = [];
    let zeroedThisWrite = 0;
    let worst = 0;
    // Memory as the allocator may hand it back: three slots in four read as a live position with a tag (0x55555555),
    // the fourth as empty, so that an index used unzeroed fails at once (a lookup meets a position that does not
    // exist) instead of probing forever for an empty slot.
    Buffer.allocUnsafeSlow = ((size: number) => {
      big.push(size / 4);
      const b = alloc(size).fill(0x55);
      const w = new Int32Array(b.buffer, b.byteOffset, size / 4);
      for (let i = 3; i < w.length; i += 4) w[i] = 0;
      return b;
    }) as typeof Buffer.allocUnsafeSlow;
    Int32Array.prototype.fill = function (this: Int32Array, v: number, start?: number, end?: number) {
      if (v === 0) zeroedThisWrite += (end ?? this.length) - (start ?? 0);
      return fill.call(this, v, start, end);
    } as typeof fill;
    try {
      for (let i = 0; i < 900_000; i++) {
        zeroedThisWrite = 0;
        m.set(v4(i) as number, i);
        if (zeroedThisWrite > worst) worst = zeroedThisWrite;
      }
    } finally {
      Buffer.allocUnsafeSlow = alloc;
      Int32Array.prototype.fill = fill;
    }
    expect(big).toEqual([1_048_576, 2_097_152]); // the indexes past 65,536 slots
    expect(worst).toBe(16_384);
    expect(m.size).toBe(900_000);
    for (let i = 0; i < 900_000; i += 7) expect(m.get(v4(i) as number)).toBe(i);
    expect(m.get(v4(900_001) as number)).toBeUndefined();
  });

  test("index size: sixteenfold up to 2^20 slots, twofold (at most half full) past them; removals alone never grow it", () => {
    const m = new PrefixMap<number, number>();
    const sizes: number[] = [];
    const fill = (to: number) => {
      for (let i = m.size; i < to; i++) {
        m.set(v4(i) as number, i);
        if (m.indexSlots !== sizes[sizes.length - 1]) sizes.push(m.indexSlots);
      }
    };
    fill(900_000);
    expect(sizes).toEqual([16, 256, 4096, 65_536, 1_048_576, 2_097_152]);
    // Each index was built when the one before it was three quarters full.
    const m2 = new PrefixMap<number, number>();
    for (let i = 0; i < 49_151; i++) m2.set(v4(i) as number, i);
    expect(m2.indexSlots).toBe(65_536);
    for (let i = 49_151; i < 49_151 + 20_000; i++) m2.set(v4(i) as number, i);
    expect(m2.indexSlots).toBe(1_048_576);
    for (let i = 69_151; i < 786_431; i++) m2.set(v4(i) as number, i);
    expect(m2.indexSlots).toBe(1_048_576);
    for (let i = 786_431; i < 886_431; i++) m2.set(v4(i) as number, i);
    expect(m2.indexSlots).toBe(2_097_152); // 786,432 entries: half full in 2,097,152 slots
    // Churn at a steady size: removal marks fill the index, rebuilt at the same size.
    const m3 = new PrefixMap<number, number>();
    for (let i = 0; i < 100_000; i++) m3.set(v4(i) as number, i);
    const slots = m3.indexSlots;
    for (let i = 0; i < 1_000_000; i++) {
      m3.delete(v4(i) as number);
      m3.set(v4(i + 100_000) as number, i);
    }
    expect(m3.size).toBe(100_000);
    expect(m3.indexSlots).toBe(slots);
  });

  for (const [name, keyOf] of [["IPv4 keys", v4], ["IPv6 numeric keys", v6], ["IPv6 string keys", v6s]] as const) {
    test(`${name}: pins: a deleted pinned entry is a ghost no reader sees, keeps its key and position, comes back there when set again, and goes with its last unpin`, () => {
      const r = rng(name.length * 7);
      const m = new PrefixMap<PrefixKey, number>();
      const model = new Map<PrefixKey, number>();
      // What a holder of state by position would keep: key → [position, pins].
      const held = new Map<PrefixKey, [number, number]>();
      const ghosts = () => [...held.keys()].filter((k) => !model.has(k)).length;
      for (let step = 0; step < 40_000; step++) {
        const x = r();
        const k = keyOf(Math.floor(r() * (step < 20_000 ? 20_000 : 4_000)));
        if (x < 0.4) {
          const pos = m.put(k, step);
          model.set(k, step);
          const h = held.get(k);
          if (h) expect(pos).toBe(h[0]);
        } else if (x < 0.65) {
          expect(m.delete(k)).toBe(model.delete(k));
        } else if (x < 0.85) {
          const pos = m.locate(k);
          m.pin(pos);
          const h = held.get(k);
          if (h) {
            expect(pos).toBe(h[0]);
            h[1]++;
          } else held.set(k, [pos, 1]);
        } else {
          const h = held.get(k);
          if (!h) continue;
          expect(m.keyAt(h[0])).toBe(k);
          m.unpin(h[0]);
          if (--h[1] === 0) held.delete(k);
        }
        if (step % 5000 === 0) {
          same(m as PrefixMap<PrefixKey, number>, model);
          expect(m.ghostCount).toBe(ghosts());
          for (const [hk, [pos]] of held) {
            expect(m.positionOf(hk)).toBe(pos);
            expect(m.keyAt(pos)).toBe(hk);
            expect(m.has(hk)).toBe(model.has(hk));
          }
        }
      }
      same(m as PrefixMap<PrefixKey, number>, model);
      expect([...m.keys()].length).toBe(model.size);
      for (const [, h] of held) for (let i = 0; i < h[1]; i++) m.unpin(h[0]);
      expect(m.ghostCount).toBe(0);
      expect(m.pinCount).toBe(0);
      same(m as PrefixMap<PrefixKey, number>, model);
      // Every ghost gone, the map empties to nothing once the entries go too.
      for (const k of [...model.keys()]) m.delete(k);
      expect(m.size).toBe(0);
      expect([...m.positions()]).toEqual([]);
    });
  }

  test("pins: unpinning a position that is not pinned, or clearing a map with pins, is an error", () => {
    const m = new PrefixMap<number, number>();
    const p = m.put(v4(1), 1);
    expect(() => m.unpin(p)).toThrow("not pinned");
    m.pin(p);
    expect(() => m.clear()).toThrow("pinned");
    m.unpin(p);
    m.clear();
    expect(m.size).toBe(0);
  });
});
