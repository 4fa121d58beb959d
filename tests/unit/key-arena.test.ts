/**
 * Unit tests of KeyArena (lib/core/key-arena.ts), where the attribute
 * cache keeps its sets' raw bytes: keys read back as written, empty and
 * chunk-sized keys, compaction of sparse chunks (owners told their new
 * handles, live bytes bounded by a quarter per chunk), the values kept
 * with keys, and a long random run checked against a plain model.
 */
import { describe, expect, test } from "bun:test";
import { KeyArena } from "../../lib/core/key-arena.ts";

interface Owner {
  id: number;
  handle: number;
}

function arena(): KeyArena<Owner> {
  return new KeyArena<Owner>((o, h) => {
    o.handle = h;
  });
}

function read(a: KeyArena<Owner>, h: number): number[] {
  const b = a.bytes(h);
  const s = a.start(h);
  return Array.from(b.subarray(s, s + a.length(h)));
}

/** Deterministic bytes for key `id` of length `len`. */
function keyOf(id: number, len: number): Uint8Array {
  const k = new Uint8Array(len);
  for (let i = 0; i < len; i++) k[i] = (id * 31 + i * 7) & 0xff;
  return k;
}

/** About ten chunks of 60-byte keys: 2,500 owners, key i of owner i. */
function fill(a: KeyArena<Owner>): Owner[] {
  const owners: Owner[] = [];
  for (let i = 0; i < 2_500; i++) {
    const o = { id: i, handle: -1 };
    o.handle = a.add(o, keyOf(i, 60), 0, 60);
    owners.push(o);
  }
  return owners;
}

describe("KeyArena", () => {
  test("keys read back as written, from a range of a larger buffer; empty keys; a key larger than a chunk", () => {
    const a = arena();
    const src = keyOf(1, 100);
    const o1 = { id: 1, handle: -1 };
    o1.handle = a.add(o1, src, 10, 60);
    expect(read(a, o1.handle)).toEqual(Array.from(src.subarray(10, 60)));
    const o2 = { id: 2, handle: -1 };
    o2.handle = a.add(o2, src, 5, 5);
    expect(a.length(o2.handle)).toBe(0);
    const big = keyOf(3, 40_000);
    const o3 = { id: 3, handle: -1 };
    o3.handle = a.add(o3, big, 0, big.length);
    expect(read(a, o3.handle)).toEqual(Array.from(big));
    // The first key is still intact next to them.
    expect(read(a, o1.handle)).toEqual(Array.from(src.subarray(10, 60)));
    expect(a.liveBytes).toBe(4 + 50 + 4 + 0 + 4 + 40_000);
    a.free(o3.handle);
    a.free(o2.handle);
    a.free(o1.handle);
    expect(a.liveBytes).toBe(0);
    expect(() => a.add(o1, new Uint8Array(70_000), 0, 70_000)).toThrow(/65,535/);
  });

  test("a chunk less than a quarter live is compacted: its keys move, their owners get the new handles, its memory goes", () => {
    const a = arena();
    const owners = fill(a);
    const full = a.chunkBytes;
    expect(full).toBeGreaterThanOrEqual(2_500 * 64);
    // Remove nine keys of every ten: each chunk but the current one falls under a quarter live and is compacted.
    const kept = owners.filter((o) => o.id % 10 === 0);
    const before = new Map(kept.map((o) => [o, o.handle]));
    for (const o of owners) if (o.id % 10 !== 0) a.free(o.handle);
    expect(a.liveBytes).toBe(kept.length * 64);
    let moved = 0;
    for (const o of kept) {
      expect(read(a, o.handle)).toEqual(Array.from(keyOf(o.id, 60)));
      if (o.handle !== before.get(o)) moved++;
    }
    expect(moved).toBeGreaterThan(kept.length / 2);
    // At most four times the live bytes plus the chunk being filled (and one it may have just left).
    expect(a.chunkBytes).toBeLessThanOrEqual(4 * a.liveBytes + 2 * 16_384);
    expect(a.chunkBytes).toBeLessThan(full / 3);
  });

  test("a value kept with a key moves with it when its chunk is compacted, and goes when the key goes", () => {
    const a = arena();
    const owners = fill(a);
    // Values on every fifth key; none on the others.
    for (const o of owners) if (o.id % 5 === 0) a.setAux(o.handle, { of: o.id });
    expect(a.aux(owners[1]!.handle)).toBeNull();
    // Free nine in ten: the chunks are compacted and the kept keys move (with their values).
    const kept = owners.filter((o) => o.id % 10 === 0 || o.id % 10 === 1);
    const before = new Map(kept.map((o) => [o, o.handle]));
    for (const o of owners) if (o.id % 10 > 1) a.free(o.handle);
    let moved = 0;
    for (const o of kept) {
      if (o.handle !== before.get(o)) moved++;
      expect(a.aux(o.handle)).toEqual(o.id % 5 === 0 ? { of: o.id } : null);
    }
    expect(moved).toBeGreaterThan(kept.length / 2);
    // A key freed takes its value with it: a new key in its place has none.
    const gone = kept[0]!;
    a.free(gone.handle);
    const fresh = { id: -1, handle: -1 };
    fresh.handle = a.add(fresh, keyOf(99_999, 60), 0, 60);
    for (const o of kept.slice(1)) expect(a.aux(o.handle)).toEqual(o.id % 5 === 0 ? { of: o.id } : null);
    expect(a.aux(fresh.handle)).toBeNull();
    a.setAux(fresh.handle, "x");
    expect(a.aux(fresh.handle)).toBe("x");
    a.clear();
    const again = { id: 1, handle: -1 };
    again.handle = a.add(again, keyOf(1, 60), 0, 60);
    expect(a.aux(again.handle)).toBeNull();
  });

  test("random adds and frees against a model: every live key reads back, memory stays bounded by the live bytes", () => {
    const a = arena();
    let seed = 7;
    const rnd = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const live: Owner[] = [];
    const lens = new Map<Owner, number>();
    let worst = 0;
    for (let step = 0; step < 60_000; step++) {
      if (live.length === 0 || rnd(100) < 52) {
        const len = rnd(10) === 0 ? rnd(3_000) : rnd(120);
        const o = { id: step, handle: -1 };
        o.handle = a.add(o, keyOf(step, len), 0, len);
        live.push(o);
        lens.set(o, len);
      } else {
        const i = rnd(live.length);
        const o = live[i]!;
        live[i] = live[live.length - 1]!;
        live.pop();
        a.free(o.handle);
        lens.delete(o);
      }
      if (step % 5_000 === 4_999) {
        for (const o of live) expect(read(a, o.handle)).toEqual(Array.from(keyOf(o.id, lens.get(o)!)));
        worst = Math.max(worst, a.chunkBytes - 4 * a.liveBytes);
      }
    }
    expect(a.liveBytes).toBe(live.reduce((n, o) => n + 4 + lens.get(o)!, 0));
    // Dedicated chunks of long keys aside (under 3,000 bytes here: none), two chunks of slack at most.
    expect(worst).toBeLessThanOrEqual(2 * 16_384);
    a.clear();
    expect(a.liveBytes).toBe(0);
    expect(a.chunkBytes).toBe(0);
  });
});
