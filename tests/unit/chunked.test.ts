/**
 * lib/core/chunked.ts: the chunked stack, queue and slot set against a
 * plain array or Set doing the same, across chunk boundaries (1,024
 * elements a chunk).
 */
import { describe, expect, test } from "bun:test";
import { ChunkedQueue, IntStack, SlotSet } from "../../lib/core/chunked.ts";

/** A seeded generator (the same sequence every run). */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe("IntStack", () => {
  test("pops what was pushed, last first, through random runs across chunk boundaries", () => {
    const r = rng(7);
    const s = new IntStack();
    const model: number[] = [];
    for (let i = 0; i < 60_000; i++) {
      // Runs of pushes and pops long enough to cross several chunks both ways.
      const pushing = Math.floor(i / 2500) % 2 === 0 ? r() < 0.7 : r() < 0.3;
      if (pushing) {
        const v = Math.floor(r() * 2 ** 31) - 2 ** 30;
        s.push(v);
        model.push(v);
      } else {
        expect(s.pop()).toBe(model.pop());
      }
      expect(s.length).toBe(model.length);
    }
    while (model.length > 0) expect(s.pop()).toBe(model.pop());
    expect(s.pop()).toBeUndefined();
    expect(s.length).toBe(0);
  });

  test("at a chunk boundary, back and forth", () => {
    const s = new IntStack();
    for (let i = 0; i < 1024; i++) s.push(i);
    for (let k = 0; k < 5; k++) {
      s.push(5000 + k);
      expect(s.length).toBe(1025);
      expect(s.pop()).toBe(5000 + k);
      expect(s.pop()).toBe(1023);
      s.push(1023);
    }
    for (let i = 1023; i >= 0; i--) expect(s.pop()).toBe(i);
    expect(s.pop()).toBeUndefined();
  });

  test("clear empties it, and it fills again", () => {
    const s = new IntStack();
    for (let i = 0; i < 3000; i++) s.push(i);
    s.clear();
    expect(s.length).toBe(0);
    expect(s.pop()).toBeUndefined();
    s.push(42);
    expect(s.pop()).toBe(42);
  });
});

describe("ChunkedQueue", () => {
  test("shifts what was pushed, oldest first, through random runs across chunk boundaries", () => {
    const r = rng(11);
    const q = new ChunkedQueue<{ v: number }>();
    const model: { v: number }[] = [];
    let head = 0;
    for (let i = 0; i < 200_000; i++) {
      const pushing = Math.floor(i / 9000) % 2 === 0 ? r() < 0.75 : r() < 0.25;
      if (pushing) {
        const o = { v: i };
        q.push(o);
        model.push(o);
      } else {
        expect(q.shift()).toBe(head < model.length ? model[head++] : undefined);
      }
      expect(q.length).toBe(model.length - head);
      // Now and then, the walk sees exactly what is queued, in order, and leaves it there.
      if (i % 20_000 === 0) {
        expect([...q]).toEqual(model.slice(head));
        expect(q.length).toBe(model.length - head);
      }
    }
    expect([...q]).toEqual(model.slice(head));
    while (head < model.length) expect(q.shift()).toBe(model[head++]);
    expect(q.shift()).toBeUndefined();
    expect(q.length).toBe(0);
    expect([...q]).toEqual([]);
  });

  test("a long queue emptied from the front keeps its order while its spent chunks are trimmed", () => {
    const q = new ChunkedQueue<number>();
    for (let i = 0; i < 300_000; i++) q.push(i);
    // Interleave: take two, add one, for long enough that well over 64 chunks are spent.
    let next = 0;
    let added = 300_000;
    for (let k = 0; k < 100_000; k++) {
      expect(q.shift()).toBe(next++);
      expect(q.shift()).toBe(next++);
      q.push(added++);
    }
    expect(q.length).toBe(added - next);
    let i = next;
    for (const v of q) expect(v).toBe(i++);
    expect(i).toBe(added);
  });

  test("drain shifts as it goes, values pushed meanwhile included", () => {
    const q = new ChunkedQueue<number>();
    for (let i = 0; i < 2500; i++) q.push(i);
    const seen: number[] = [];
    for (const v of q.drain()) {
      seen.push(v);
      if (v === 10) q.push(9999);
      expect(q.length).toBe(2500 + (v >= 10 ? 1 : 0) - seen.length);
    }
    expect(seen.length).toBe(2501);
    expect(seen[2500]).toBe(9999);
    expect(q.length).toBe(0);
  });

  test("the walk does not see values pushed during it", () => {
    const q = new ChunkedQueue<number>();
    for (let i = 0; i < 1500; i++) q.push(i);
    let n = 0;
    for (const v of q) {
      if (n === 0) for (let k = 0; k < 2000; k++) q.push(-1);
      expect(v).toBe(n++);
    }
    expect(n).toBe(1500);
    expect(q.length).toBe(3500);
  });

  test("clear empties it, and it fills again", () => {
    const q = new ChunkedQueue<string>();
    for (let i = 0; i < 5000; i++) q.push(String(i));
    q.shift();
    q.clear();
    expect(q.length).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect([...q]).toEqual([]);
    q.push("a");
    q.push("b");
    expect([...q]).toEqual(["a", "b"]);
    expect(q.shift()).toBe("a");
  });
});

describe("SlotSet", () => {
  interface Item {
    id: number;
    at: number;
  }
  const slotOf = { get: (t: Item) => t.at, set: (t: Item, s: number) => void (t.at = s) };

  test("membership, size and the members walked match a Set through random adds and deletes", () => {
    const r = rng(3);
    const items: Item[] = Array.from({ length: 5000 }, (_, id) => ({ id, at: -1 }));
    const set = new SlotSet<Item>(slotOf);
    const model = new Set<Item>();
    for (let i = 0; i < 100_000; i++) {
      const t = items[Math.floor(r() * items.length)]!;
      // Phases that mostly add, then mostly delete, so the set grows over several chunks and empties again.
      const adding = Math.floor(i / 12_000) % 2 === 0 ? r() < 0.8 : r() < 0.2;
      if (adding) {
        set.add(t);
        model.add(t);
      } else {
        expect(set.delete(t)).toBe(model.delete(t));
      }
      expect(set.size).toBe(model.size);
      if (i % 5000 === 0) {
        for (const x of items) expect(set.has(x)).toBe(model.has(x));
        expect(new Set(set.values())).toEqual(model);
        expect([...set.values()].length).toBe(model.size);
      }
    }
    for (const x of items) {
      expect(set.has(x)).toBe(model.has(x));
      // A member's slot is its own; a non-member's is -1.
      if (!model.has(x)) expect(x.at).toBe(-1);
    }
  });

  test("the walk is live: members deleted ahead are skipped, members added at new slots are visited", () => {
    const items: Item[] = Array.from({ length: 3000 }, (_, id) => ({ id, at: -1 }));
    const set = new SlotSet<Item>(slotOf);
    for (let i = 0; i < 2000; i++) set.add(items[i]!);
    const seen: number[] = [];
    for (const t of set.values()) {
      seen.push(t.id);
      if (t.id === 0) {
        for (let i = 1000; i < 2000; i++) set.delete(items[i]!); // ahead: skipped
        for (let i = 2000; i < 3000; i++) set.add(items[i]!); // into the freed slots 1000-1999, ahead of the walk: visited
      }
    }
    expect(seen.length).toBe(2000);
    expect(new Set(seen)).toEqual(new Set([...Array(1000).keys()].concat([...Array(1000).keys()].map((i) => 2000 + i))));
  });

  test("emptied, it starts over; a former member is not found by its old slot", () => {
    const a: Item = { id: 1, at: -1 };
    const b: Item = { id: 2, at: -1 };
    const set = new SlotSet<Item>(slotOf);
    set.add(a);
    set.add(a);
    expect(set.size).toBe(1);
    expect(set.delete(a)).toBe(true);
    expect(set.delete(a)).toBe(false);
    set.add(b);
    expect(b.at).toBe(0);
    expect(set.has(a)).toBe(false);
    expect(set.has(b)).toBe(true);
    set.clear();
    expect(set.has(b)).toBe(false);
    expect(set.size).toBe(0);
    expect([...set.values()]).toEqual([]);
  });
});
