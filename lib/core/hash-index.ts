/**
 * HashIndex: a set of objects found by a 32-bit hash and an equality test,
 * for the intern tables (attribute sets, outgoing attribute entries) in
 * place of a `Map<hash, item | item[]>`: about 20 bytes per item where
 * JavaScriptCore's Map took about 120 (heap snapshot of 28,600 interned
 * attribute sets: 3.4 MB of Map storage).
 *
 * Items sit at positions in chunks of 512 (a removed one leaves a hole that
 * a later add reuses): a chunk is never copied, where one growing array
 * was copied at every growth and its new storage, hundreds of kilobytes,
 * faulted in by the event loop (chunks of 4 KB come from the collector's
 * blocks, made resident ahead by JavaScriptCore's warm-up thread: a 560k
 * table received in process, 300–2,500 fewer page faults on the event
 * loop, five alternating pairs). An
 * open-addressing index (Int32Array, linear probing; 0 empty,
 * -1 removed) finds them. A slot holds position + 1 in its low 24 bits and
 * the hash's top 7 bits above them (bits the slot's place does not
 * already tell, below 2^25 slots), so a probe reads an item (a cache miss
 * of its own) only when those agree: about one time in 128 for another
 * item (so at most 2^24 - 1 items). When the index is half full (live
 * items and removed marks) it is rebuilt, twice as large if the live items
 * need it: a linear pass over the positions, about a millisecond per
 * hundred thousand items.
 */
import { IntStack } from "./chunked.ts";

const POS_BITS = 24;
const POS_MASK = (1 << POS_BITS) - 1;

/** The tag of hash `h`, shifted into place. */
function tagOf(h: number): number {
  return (h >>> 25) << POS_BITS;
}

/** Positions per storage chunk (a power of two). */
const CHUNK_BITS = 9;
const CHUNK = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK - 1;

export class HashIndex<T extends object> {
  /** Items and their hashes by position, in chunks (see the module comment); `end`: positions in use, live or holes. */
  private items: (T | null)[][] = [];
  private hashes: number[][] = [];
  private end = 0;
  private free = new IntStack();
  private idx = new Int32Array(16);
  /** Live items and removed marks in `idx`. */
  private used = 0;
  private live = 0;

  get size(): number {
    return this.live;
  }

  /** The item of hash `h` that `eq(item, arg)` accepts, if any. */
  find<A>(h: number, eq: (item: T, arg: A) => boolean, arg: A): T | undefined {
    const i = this.slot(h, eq, arg);
    return i < 0 ? undefined : this.itemAt((this.idx[i]! & POS_MASK) - 1)!;
  }

  private itemAt(p: number): T | null {
    return this.items[p >>> CHUNK_BITS]![p & CHUNK_MASK]!;
  }

  /** The index slot of the item of hash `h` that `eq(item, arg)` accepts, or -1. */
  private slot<A>(h: number, eq: (item: T, arg: A) => boolean, arg: A): number {
    const idx = this.idx;
    const mask = idx.length - 1;
    const tag = tagOf(h);
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const p = idx[i]!;
      if (p === 0) return -1;
      if (p > 0 && (p & ~POS_MASK) === tag && eq(this.itemAt((p & POS_MASK) - 1)!, arg)) return i;
    }
  }

  /** Add `t` under hash `h` (it must not be in the index already). */
  add(h: number, t: T): void {
    let pos: number;
    if (this.free.length > 0) pos = this.free.pop()!;
    else {
      pos = this.end;
      if (pos >= POS_MASK) throw new RangeError(`hash index full: at most ${POS_MASK} items`);
      this.end++;
      if ((pos & CHUNK_MASK) === 0) {
        this.items.push(new Array<T | null>(CHUNK).fill(null));
        this.hashes.push(new Array<number>(CHUNK).fill(0));
      }
    }
    this.items[pos >>> CHUNK_BITS]![pos & CHUNK_MASK] = t;
    this.hashes[pos >>> CHUNK_BITS]![pos & CHUNK_MASK] = h;
    this.live++;
    const idx = this.idx;
    const mask = idx.length - 1;
    let i = h & mask;
    while (idx[i]! > 0) i = (i + 1) & mask;
    if (idx[i] === 0) this.used++;
    idx[i] = tagOf(h) | (pos + 1);
    if (this.used * 2 >= idx.length) this.rebuild();
  }

  /** Remove `t` (added under hash `h`); false when it is not there. */
  remove(h: number, t: T): boolean {
    const i = this.slot(h, same, t);
    if (i < 0) return false;
    const p = (this.idx[i]! & POS_MASK) - 1;
    this.idx[i] = -1;
    this.items[p >>> CHUNK_BITS]![p & CHUNK_MASK] = null;
    this.free.push(p);
    this.live--;
    return true;
  }

  clear(): void {
    this.items = [];
    this.hashes = [];
    this.end = 0;
    this.free.clear();
    this.idx = new Int32Array(16);
    this.used = 0;
    this.live = 0;
  }

  /** A new index sized for the live items (at most a third full), without removed marks. */
  private rebuild(): void {
    let n = 16;
    while (n < this.live * 3) n *= 2;
    const idx = new Int32Array(n);
    const mask = n - 1;
    for (let p = 0; p < this.end; p++) {
      const c = p >>> CHUNK_BITS;
      if (this.items[c]![p & CHUNK_MASK] === null) continue;
      const h = this.hashes[c]![p & CHUNK_MASK]!;
      let i = h & mask;
      while (idx[i] !== 0) i = (i + 1) & mask;
      idx[i] = tagOf(h) | (p + 1);
    }
    this.idx = idx;
    this.used = this.live;
  }
}

/** Identity (remove takes out the very item given, not an equal one). */
function same(a: object, b: object): boolean {
  return a === b;
}
