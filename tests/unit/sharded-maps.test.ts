/**
 * lib/core/sharded-maps.ts against a plain Map through random operations:
 * get, has, set (new and replacing), delete (present and absent), size,
 * clear and the iterations (the same entries, in shard order).
 */
import { describe, expect, test } from "bun:test";
import { StringMap, WeakShards } from "../../lib/core/sharded-maps.ts";

describe("StringMap", () => {
  test("100,000 random operations over keys of every shape give what a Map gives", () => {
    let seed = 11;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const keys = [
      "",
      "a",
      "é",
      "ns/svc",
      "10.96.0.1/32",
      "2001:db8::1/128",
      ...Array.from({ length: 3000 }, (_, i) => `ns-${i % 37}/svc-${i}${i % 5 === 0 ? "-\u{1F600}" : ""}`),
    ];
    const m = new StringMap<number>();
    const ref = new Map<string, number>();
    for (let i = 0; i < 100_000; i++) {
      const k = keys[Math.floor(rnd() * keys.length)]!;
      const r = rnd();
      if (r < 0.45) {
        expect(m.set(k, i)).toBe(m);
        ref.set(k, i);
      } else if (r < 0.7) expect(m.delete(k)).toBe(ref.delete(k));
      else if (r < 0.85) expect(m.get(k)).toBe(ref.get(k));
      else if (r < 0.99995) expect(m.has(k)).toBe(ref.has(k));
      else {
        m.clear();
        ref.clear();
      }
      if (i % 997 === 0) expect(m.size).toBe(ref.size);
    }
    expect(m.size).toBe(ref.size);
    const byKey = (a: [string, number], b: [string, number]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);
    expect([...m].sort(byKey)).toEqual([...ref].sort(byKey));
    expect([...m.keys()].sort()).toEqual([...ref.keys()].sort());
    expect([...m.values()].sort((a, b) => a - b)).toEqual([...ref.values()].sort((a, b) => a - b));
    // Deleting while iterating (as a run's stale entries are dropped) visits every entry once.
    const seen: string[] = [];
    for (const [k] of m) {
      seen.push(k);
      if (k.length % 2 === 0) m.delete(k);
    }
    expect(seen.sort()).toEqual([...ref.keys()].sort());
    expect(m.size).toBe([...ref.keys()].filter((k) => k.length % 2 !== 0).length);
  });

  test("entries spread over the shards: 65,536 keys leave no shard with more than a few hundred", () => {
    const m = new StringMap<number>();
    for (let i = 0; i < 65_536; i++) m.set(`ns-${i % 50}/svc-${i}`, i);
    const shards = (m as unknown as { shards: (Map<string, number> | undefined)[] }).shards;
    const sizes = shards.map((s) => s?.size ?? 0);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(65_536);
    expect(Math.max(...sizes)).toBeLessThan(400);
    expect(Math.min(...sizes)).toBeGreaterThan(150);
  });

  test("WeakShards: what a WeakMap gives, over the 64 WeakMaps the keys' numbers pick", () => {
    const keys = Array.from({ length: 5000 }, (_, i) => ({ n: i * 7 - 300 }));
    const w = new WeakShards<{ n: number }, number>((k) => k.n);
    const ref = new WeakMap<{ n: number }, number>();
    let seed = 3;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    for (let i = 0; i < 50_000; i++) {
      const k = keys[Math.floor(rnd() * keys.length)]!;
      if (rnd() < 0.4) {
        expect(w.set(k, i)).toBe(w);
        ref.set(k, i);
      } else {
        expect(w.get(k)).toBe(ref.get(k));
        expect(w.has(k)).toBe(ref.has(k));
      }
    }
    const maps = (w as unknown as { maps: (WeakMap<object, number> | undefined)[] }).maps;
    expect(maps.filter((m) => m !== undefined).length).toBe(64);
  });
});
