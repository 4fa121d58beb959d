/**
 * KeyArena: short byte strings (the keys of an intern table) packed into
 * shared chunks, each kept for an owner object and named by a number (its
 * handle), instead of a string or typed array per key. What the attribute
 * cache keeps of each set's raw bytes (lib/bgp/attributes.ts): a full
 * table brings tens of thousands of sets, and making a latin1 string of
 * each one's bytes cost about 300 ns and a heap object per set.
 *
 * A record is its length (2 bytes), its place in its chunk's owner list
 * (2 bytes), then the key. Chunks are CHUNK bytes (a key too long for one
 * gets a chunk of its own size). Removed keys leave dead bytes behind; a
 * chunk other than the one being filled is compacted away once less than a
 * quarter of it is live: its live keys are copied into the current chunk,
 * and their owners told their new handles (`moved`). So the chunks hold at
 * most four times the live bytes plus one chunk, and a removal costs at
 * most copying a quarter chunk, which the three quarters removed before it
 * paid for.
 *
 * Each key may also hold one value for its owner's other users (`aux`,
 * `setAux`): it moves with the key and goes when the key does. Kept per
 * chunk, beside the owner list, made only when a key of that chunk first
 * gets one.
 */

/** Bytes per chunk. */
const CHUNK = 16384;
/** Handle bits per chunk (a handle is chunk × 2^17 + offset): room for a key of up to 65,535 bytes in a chunk of its own. */
const SPAN_BITS = 17;
const SPAN_MASK = (1 << SPAN_BITS) - 1;
/** Chunks at most (handles stay below 2^32): 512 MB of keys in full chunks. */
const MAX_CHUNKS = 1 << (32 - SPAN_BITS);
/** Record header: length, owner slot. */
const HEAD = 4;

export class KeyArena<T extends object> {
  private chunks: (Uint8Array | null)[] = [];
  /** Per chunk: its owners by slot (null: removed or moved). */
  private owners: ((T | null)[] | null)[] = [];
  /** Per chunk: the keys' other values by slot (see aux); null until one is set. */
  private auxes: (unknown[] | null)[] = [];
  /** Per chunk: bytes of live records. */
  private live: number[] = [];
  /** Chunk numbers free for reuse. */
  private spare: number[] = [];
  /** Chunks to compact (see settle). */
  private sparse: number[] = [];
  private cur = -1;
  private off = CHUNK;
  private held = 0;

  /** `moved(owner, handle)`: an owner's key now has this handle (compaction). */
  constructor(private readonly moved: (owner: T, handle: number) => void) {}

  /** Bytes of live keys (headers included). */
  get liveBytes(): number {
    return this.held;
  }

  /** Bytes of chunks held. */
  get chunkBytes(): number {
    let n = 0;
    for (const c of this.chunks) if (c !== null) n += c.length;
    return n;
  }

  /** Keep bytes [from, to) of `src` for `owner`: the key's handle. */
  add(owner: T, src: Uint8Array, from: number, to: number): number {
    const h = this.reserve(owner, to - from);
    const b = this.chunks[h >>> SPAN_BITS]!;
    let o = (h & SPAN_MASK) + HEAD;
    for (let i = from; i < to; i++) b[o++] = src[i]!;
    if (this.sparse.length > 0) this.settle();
    return h;
  }

  /** The chunk a key is in (read it from `start(h)` for `length(h)` bytes). */
  bytes(h: number): Uint8Array {
    return this.chunks[h >>> SPAN_BITS]!;
  }

  start(h: number): number {
    return (h & SPAN_MASK) + HEAD;
  }

  length(h: number): number {
    const b = this.chunks[h >>> SPAN_BITS]!;
    const o = h & SPAN_MASK;
    return (b[o]! << 8) | b[o + 1]!;
  }

  /** The value kept with a key (setAux), or null. */
  aux(h: number): unknown {
    const list = this.auxes[h >>> SPAN_BITS];
    return list == null ? null : (list[this.slotOf(h)] ?? null);
  }

  /** Keep `v` with a key until the key goes (null: nothing). */
  setAux(h: number, v: unknown): void {
    const c = h >>> SPAN_BITS;
    const list = (this.auxes[c] ??= []);
    list[this.slotOf(h)] = v;
  }

  /** A key's place in its chunk's owner list (from its record header). */
  private slotOf(h: number): number {
    const b = this.chunks[h >>> SPAN_BITS]!;
    const o = h & SPAN_MASK;
    return (b[o + 2]! << 8) | b[o + 3]!;
  }

  /** Let a key go (its handle is not valid afterwards), and the value kept with it. */
  free(h: number): void {
    const c = h >>> SPAN_BITS;
    const b = this.chunks[c]!;
    const o = h & SPAN_MASK;
    const n = HEAD + ((b[o]! << 8) | b[o + 1]!);
    const slot = (b[o + 2]! << 8) | b[o + 3]!;
    this.owners[c]![slot] = null;
    const list = this.auxes[c];
    if (list != null && slot < list.length) list[slot] = undefined;
    this.live[c]! -= n;
    this.held -= n;
    if (c !== this.cur && this.live[c]! * 4 < b.length) {
      this.sparse.push(c);
      this.settle();
    }
  }

  /** Drop every key. */
  clear(): void {
    this.chunks = [];
    this.owners = [];
    this.auxes = [];
    this.live = [];
    this.spare = [];
    this.sparse = [];
    this.cur = -1;
    this.off = CHUNK;
    this.held = 0;
  }

  /** A record of `len` bytes for `owner` (its bytes not written yet): its handle. */
  private reserve(owner: T, len: number): number {
    if (len > 0xffff) throw new RangeError(`key arena: a key of ${len} bytes (at most 65,535)`);
    const n = HEAD + len;
    let c: number;
    if (n > CHUNK) c = this.newChunk(n, false);
    else {
      if (this.off + n > CHUNK) this.newChunk(CHUNK, true);
      c = this.cur;
    }
    const b = this.chunks[c]!;
    const o = c === this.cur ? this.off : 0;
    const list = this.owners[c]!;
    const slot = list.length;
    list.push(owner);
    b[o] = len >>> 8;
    b[o + 1] = len & 0xff;
    b[o + 2] = slot >>> 8;
    b[o + 3] = slot & 0xff;
    this.live[c]! += n;
    this.held += n;
    if (c === this.cur) this.off += n;
    return c * (SPAN_MASK + 1) + o;
  }

  /** A new chunk of `size` bytes: the one filled from now on when `current` (the one before it compacted if sparse), else one for a single key. */
  private newChunk(size: number, current: boolean): number {
    const c = this.spare.length > 0 ? this.spare.pop()! : this.chunks.length;
    if (c >= MAX_CHUNKS) throw new RangeError(`key arena: full (${MAX_CHUNKS} chunks)`);
    this.chunks[c] = new Uint8Array(size);
    this.owners[c] = [];
    this.auxes[c] = null;
    this.live[c] = 0;
    if (current) {
      const old = this.cur;
      this.cur = c;
      this.off = 0;
      if (old >= 0 && this.live[old]! * 4 < CHUNK) this.sparse.push(old);
    }
    return c;
  }

  /** Compact the sparse chunks: their live keys into the current one, their owners told. */
  private settle(): void {
    while (this.sparse.length > 0) {
      const c = this.sparse.pop()!;
      const b = this.chunks[c];
      if (b === null || b === undefined || c === this.cur || this.live[c]! * 4 >= b.length) continue;
      const list = this.owners[c]!;
      const auxes = this.auxes[c];
      for (let o = 0; o < b.length && this.live[c]! > 0; ) {
        const len = (b[o]! << 8) | b[o + 1]!;
        const slot = (b[o + 2]! << 8) | b[o + 3]!;
        const owner = list[slot];
        if (owner !== null && owner !== undefined) {
          const h = this.reserve(owner, len);
          const to = this.chunks[h >>> SPAN_BITS]!;
          to.set(b.subarray(o + HEAD, o + HEAD + len), (h & SPAN_MASK) + HEAD);
          const v = auxes?.[slot];
          if (v != null) this.setAux(h, v);
          this.live[c]! -= HEAD + len;
          this.held -= HEAD + len;
          this.moved(owner, h);
        }
        o += HEAD + len;
      }
      // (The walk stops once no live byte is left, so never reads past the last record written.)
      this.chunks[c] = null;
      this.owners[c] = null;
      this.auxes[c] = null;
      this.live[c] = 0;
      this.spare.push(c);
    }
  }
}
