/**
 * lib/core/chunked.ts: the chunked stack and queue against plain arrays
 * doing the same, across chunk boundaries (1,024 elements a chunk).
 */
import { describe, expect, test } from "bun:test";
import { ChunkedQueue, IntStack } from "../../lib/core/chunked.ts";

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
