/**
 * Unit tests of lib/fib/keymap.ts, the sharded prefix-key map behind the
 * FIB's per-prefix state: it behaves as a Map (get/set/delete/size, live
 * iteration) for IPv4 and IPv6 keys, and real-shaped keys (/24s, /48s) are
 * spread over the shards, so that no shard — and no single rehash — holds
 * much more than its share of a full table.
 */
import { describe, expect, test } from "bun:test";
import { parsePrefix } from "../../lib/core/addr.ts";
import { PrefixKeyMap } from "../../lib/fib/keymap.ts";
import { prefixKey } from "../../lib/rib/types.ts";

const v4 = (i: number) => prefixKey(parsePrefix(`${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}.0/24`));
const v6 = (i: number) => prefixKey(parsePrefix(`2001:db8:${(i & 0xffff).toString(16)}::/48`));

describe("PrefixKeyMap", () => {
  test("get, set, delete and size, for IPv4 and IPv6 keys, as a Map", () => {
    const m = new PrefixKeyMap<string>();
    const ref = new Map<number | string, string>();
    for (let i = 0; i < 5000; i++) {
      for (const k of [v4(i), v6(i)]) {
        m.set(k, `a${i}`);
        ref.set(k, `a${i}`);
      }
    }
    m.set(v4(7), "again");
    ref.set(v4(7), "again");
    expect(m.size).toBe(ref.size);
    for (let i = 0; i < 5000; i += 3) {
      expect(m.delete(v4(i))).toBe(true);
      ref.delete(v4(i));
    }
    expect(m.delete(v4(0))).toBe(false);
    expect(m.size).toBe(ref.size);
    for (const [k, v] of ref) expect(m.get(k)).toBe(v);
    expect(m.has(v4(0))).toBe(false);
    expect(m.get(v4(1))).toBe("a1");
    expect([...m.values()].sort()).toEqual([...ref.values()].sort());
    m.clear();
    expect(m.size).toBe(0);
    expect([...m.values()]).toEqual([]);
  });

  test("iteration is live: entries deleted before they are reached are skipped", () => {
    const m = new PrefixKeyMap<number>();
    for (let i = 0; i < 1000; i++) m.set(v4(i), i);
    const seen: number[] = [];
    for (const v of m.values()) {
      seen.push(v);
      if (seen.length === 1) for (let i = 0; i < 1000; i++) if (i !== v && i % 2 === 0) m.delete(v4(i));
    }
    // The first value, then every odd one (500 of them, one fewer if the first was odd).
    expect(seen.length).toBe(seen[0]! % 2 === 0 ? 501 : 500);
    expect(seen.slice(1).every((v) => v % 2 === 1)).toBe(true);
    expect(new Set(seen).size).toBe(seen.length);
  });

  test("a table of /24s and /48s is spread over the shards", () => {
    for (const key of [v4, v6]) {
      const m = new PrefixKeyMap<number>();
      const N = 64_000;
      for (let i = 0; i < N; i++) m.set(key(i), i);
      const sizes = (m as unknown as { shards: Map<unknown, unknown>[] }).shards.map((s) => s.size);
      expect(sizes.length).toBe(64);
      // Each shard holds about N/64 = 1000; none more than twice that.
      expect(Math.max(...sizes)).toBeLessThan(2000);
      expect(Math.min(...sizes)).toBeGreaterThan(500);
    }
  });
});
