/**
 * Unit tests of HashIndex (lib/core/hash-index.ts), the intern tables'
 * index: items found by hash and equality, colliding hashes, removal and
 * reuse of holes, rebuilds that drop removed marks, and a long random run
 * checked against a plain model.
 */
import { describe, expect, test } from "bun:test";
import { HashIndex } from "../../lib/core/hash-index.ts";

interface Item {
  key: string;
}
const byKey = (t: Item, k: string) => t.key === k;
/** A deliberately poor hash: many keys share one value. */
const weak = (k: string) => k.length % 4;
const good = (k: string) => {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
  return h >>> 0;
};

describe("HashIndex", () => {
  test("finds items by hash and equality, colliding hashes included; removes exactly the item given", () => {
    const ix = new HashIndex<Item>();
    const items = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}` }));
    for (const t of items) ix.add(weak(t.key), t);
    expect(ix.size).toBe(200);
    for (const t of items) expect(ix.find(weak(t.key), byKey, t.key)).toBe(t);
    expect(ix.find(weak("nope"), byKey, "nope")).toBeUndefined();
    // An equal item that is not the one added is not removed.
    expect(ix.remove(weak("k5"), { key: "k5" })).toBe(false);
    expect(ix.remove(weak("k5"), items[5]!)).toBe(true);
    expect(ix.remove(weak("k5"), items[5]!)).toBe(false);
    expect(ix.find(weak("k5"), byKey, "k5")).toBeUndefined();
    expect(ix.size).toBe(199);
    // Items past the removed one on the same probe path are still found.
    for (const t of items) if (t !== items[5]) expect(ix.find(weak(t.key), byKey, t.key)).toBe(t);
  });

  test("churn: removed marks do not pile up (the index is rebuilt), holes are reused, everything stays findable", () => {
    const ix = new HashIndex<Item>();
    const live = new Map<string, Item>();
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 1000; i++) {
        const t = { key: `r${round}-${i}` };
        ix.add(good(t.key), t);
        live.set(t.key, t);
      }
      // Remove all but the last 100 of this round.
      for (let i = 0; i < 900; i++) {
        const k = `r${round}-${i}`;
        expect(ix.remove(good(k), live.get(k)!)).toBe(true);
        live.delete(k);
      }
    }
    expect(ix.size).toBe(live.size);
    for (const [k, t] of live) expect(ix.find(good(k), byKey, k)).toBe(t);
    // 50,000 added, 5,000 live: the item storage is bounded by the live count plus one round, not by all ever added.
    const positions = (ix as unknown as { end: number }).end;
    expect(positions).toBeGreaterThan(1000); // (positions span several storage chunks of 512)
    expect(positions).toBeLessThanOrEqual(6000);
    ix.clear();
    expect(ix.size).toBe(0);
    expect(ix.find(good("r49-950"), byKey, "r49-950")).toBeUndefined();
  });

  test("random operations agree with a Map", () => {
    let seed = 7;
    const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    // Half the keys hash well, half collide heavily.
    const hash = (key: string) => (key.charCodeAt(1) % 2 === 0 ? good(key) : weak(key));
    const ix = new HashIndex<Item>();
    const model = new Map<string, Item>();
    for (let step = 0; step < 20000; step++) {
      const k = `x${Math.floor(rnd() * 3000)}`;
      const have = model.get(k);
      const r = rnd();
      if (r < 0.45 && !have) {
        const t = { key: k };
        ix.add(hash(k), t);
        model.set(k, t);
      } else if (r < 0.8 && have) {
        expect(ix.remove(hash(k), have)).toBe(true);
        model.delete(k);
      } else expect(ix.find(hash(k), byKey, k)).toBe(have);
      if (step % 1000 === 0) expect(ix.size).toBe(model.size);
    }
    for (const [k, t] of model) expect(ix.find(hash(k), byKey, k)).toBe(t);
  });
});
