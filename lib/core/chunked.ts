/**
 * A stack of integers, a queue of values and a set of objects kept in
 * fixed-size chunks, for lists that grow with a table: a prefix table's
 * free positions after a peer's full table is torn down, the kernel routes
 * waiting to be installed, a walk's collected routes, the routes that
 * failed to install when an uplink went. A JavaScript array grows by
 * copying itself into new, larger storage, so the one push that grows an
 * array of half a million elements copies all of them into fresh memory
 * (measured in Bun: 15–49 ms for the push at 440k, 660k and 990k
 * elements, the event loop held meanwhile). Here a push adds at most one
 * chunk, and a chunk emptied by pops or shifts is let go (one kept for the
 * next push, so a list moving back and forth over a chunk boundary does
 * not make and drop one each time).
 */

/** Elements per chunk (a power of two): 4 KB of integers, 8 KB of references. */
const CHUNK_BITS = 10;
const CHUNK = 1 << CHUNK_BITS;

/** A last-in, first-out stack of 32-bit integers. */
export class IntStack {
  private chunks: Int32Array[] = [];
  private n = 0;
  /** An emptied chunk kept for the next push past a boundary. */
  private spare: Int32Array | null = null;

  get length(): number {
    return this.n;
  }

  push(v: number): void {
    const c = this.n >>> CHUNK_BITS;
    if (c === this.chunks.length) {
      this.chunks.push(this.spare ?? new Int32Array(CHUNK));
      this.spare = null;
    }
    this.chunks[c]![this.n & (CHUNK - 1)] = v;
    this.n++;
  }

  /** The last value pushed, removed; undefined when empty. */
  pop(): number | undefined {
    if (this.n === 0) return undefined;
    this.n--;
    const c = this.n >>> CHUNK_BITS;
    const v = this.chunks[c]![this.n & (CHUNK - 1)]!;
    // A chunk left empty goes (the one before it stays until it is empty too).
    if ((this.n & (CHUNK - 1)) === 0) this.spare = this.chunks.pop()!;
    return v;
  }

  clear(): void {
    this.chunks = [];
    this.n = 0;
    this.spare = null;
  }
}

/**
 * A first-in, first-out queue of values. A shifted value's slot is
 * cleared at once (the queue keeps no object alive that it has handed
 * out); iteration visits the queued values in order, without removing them.
 */
export class ChunkedQueue<T> {
  private chunks: (T | undefined)[][] = [];
  /** Chunks before this index are spent (shifted out entirely); dropped from the list in batches. */
  private first = 0;
  /** Next to shift, within chunks[first]. */
  private head = 0;
  /** Next free slot, within the last chunk. */
  private tail = CHUNK;
  private n = 0;
  private spare: (T | undefined)[] | null = null;

  get length(): number {
    return this.n;
  }

  push(v: T): void {
    if (this.tail === CHUNK) {
      this.chunks.push(this.spare ?? new Array<T | undefined>(CHUNK));
      this.spare = null;
      this.tail = 0;
    }
    this.chunks[this.chunks.length - 1]![this.tail++] = v;
    this.n++;
  }

  /** The oldest value, removed; undefined when empty. */
  shift(): T | undefined {
    if (this.n === 0) return undefined;
    const c = this.chunks[this.first]!;
    const v = c[this.head]!;
    c[this.head++] = undefined;
    this.n--;
    if (this.n === 0) {
      // Empty: start over in the chunk kept (no list of spent chunks to keep).
      this.spare = c;
      this.chunks = [];
      this.first = 0;
      this.head = 0;
      this.tail = CHUNK;
    } else if (this.head === CHUNK) {
      this.spare = c;
      this.chunks[this.first++] = EMPTY_CHUNK as (T | undefined)[];
      this.head = 0;
      // The spent chunks' places go once they are half of the list (a short copy of chunk references).
      if (this.first >= 64 && this.first * 2 >= this.chunks.length) {
        this.chunks = this.chunks.slice(this.first);
        this.first = 0;
      }
    }
    return v;
  }

  clear(): void {
    this.chunks = [];
    this.first = 0;
    this.head = 0;
    this.tail = CHUNK;
    this.n = 0;
    this.spare = null;
  }

  /** Shift every value, oldest first, as the walk reaches it (values pushed meanwhile too), until the queue is empty. */
  *drain(): IterableIterator<T> {
    while (this.n > 0) yield this.shift()!;
  }

  /**
   * The queued values, oldest first, left in the queue: those queued when
   * the walk starts (values pushed meanwhile are not visited). The queue
   * must not be shifted during the walk.
   */
  *[Symbol.iterator](): IterableIterator<T> {
    let left = this.n;
    let ci = this.first;
    let i = this.head;
    const chunks = this.chunks;
    while (left > 0) {
      if (i === CHUNK) {
        ci++;
        i = 0;
      }
      yield chunks[ci]![i++] as T;
      left--;
    }
  }
}

/** What a spent chunk's place in the list holds until the list is trimmed. */
const EMPTY_CHUNK: readonly unknown[] = Object.freeze([]);

/** Where a SlotSet member keeps its place in the set (-1 when it is in none). */
export interface SlotOf<T> {
  get(t: T): number;
  set(t: T, slot: number): void;
}

/**
 * A set of objects that each keep their own place (slot) in it, in
 * chunks: membership is the object's slot, so adding and deleting need
 * no hash and never rehash the whole set, as a growing Set does (measured
 * in Bun: 68 ms for the one add at 393,216 members). A deleted member's
 * slot is reused by a later add. `values()` walks the slots in order and
 * reads the set live: members deleted meanwhile are skipped, members
 * added at new slots are visited (one added into an earlier slot may be
 * missed).
 */
export class SlotSet<T extends object> {
  private chunks: (T | undefined)[][] = [];
  /** Slots in use, members or holes. */
  private end = 0;
  private holes = new IntStack();
  private n = 0;

  constructor(private readonly slot: SlotOf<T>) {}

  get size(): number {
    return this.n;
  }

  has(t: T): boolean {
    const s = this.slot.get(t);
    return s >= 0 && s < this.end && this.chunks[s >>> CHUNK_BITS]![s & (CHUNK - 1)] === t;
  }

  add(t: T): void {
    if (this.has(t)) return;
    let s = this.holes.pop();
    if (s === undefined) {
      s = this.end++;
      if ((s & (CHUNK - 1)) === 0) this.chunks.push(new Array<T | undefined>(CHUNK));
    }
    this.chunks[s >>> CHUNK_BITS]![s & (CHUNK - 1)] = t;
    this.slot.set(t, s);
    this.n++;
  }

  /** Take `t` out; false when it was not in. */
  delete(t: T): boolean {
    if (!this.has(t)) return false;
    const s = this.slot.get(t);
    this.chunks[s >>> CHUNK_BITS]![s & (CHUNK - 1)] = undefined;
    this.slot.set(t, -1);
    if (--this.n === 0) this.clear();
    else this.holes.push(s);
    return true;
  }

  /** Empty the set (the members' slots are not reset: `has` no longer finds them). */
  clear(): void {
    this.chunks = [];
    this.end = 0;
    this.holes.clear();
    this.n = 0;
  }

  *values(): IterableIterator<T> {
    for (let s = 0; s < this.end; s++) {
      const t = this.chunks[s >>> CHUNK_BITS]![s & (CHUNK - 1)];
      if (t !== undefined) yield t;
    }
  }
}
