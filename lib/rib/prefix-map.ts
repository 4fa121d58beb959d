/**
 * PrefixMap: the hash table the RIBs keep their prefixes in (prefix key →
 * value), instead of a JavaScript Map, for two reasons measured on a full
 * table:
 * - a Map rehashes all at once when it grows: one `set` into a Map of 786k
 *   entries held the event loop for 180 ms (335 ms at 1.5M); this table
 *   grows its index a few entries per write instead, so no write costs more
 *   than a constant;
 * - about 25 bytes per entry instead of about 55.
 *
 * Layout: entries live at stable positions in fixed-size chunks of keys and
 * values (a growing JavaScript array copies itself, which at a million
 * entries holds the loop for tens of milliseconds; chunks are never copied);
 * a removed entry leaves a hole that a later insert reuses. An
 * open-addressing index (Int32Array, linear probing; 0 empty, -1 removed)
 * finds a key's position: a slot holds position + 1 in its low 24 bits and
 * a 7-bit tag of the key above them, so a probe reads the key of a slot
 * (a cache miss of its own, in a chunk anywhere) only when the tags agree,
 * about one time in 128 for another key (so at most 2^24 - 1 entries).
 * Probes that pass other slots stay within a cache line or two, so the
 * index may be three quarters full (live plus removed marks) before a new
 * one is built alongside, STEP positions per write (a large one zeroed
 * first, a piece per write: ZERO_AT_ONCE_MAX), while lookups still use
 * the old one; the old index keeps room for the writes in between.
 * Building a new index costs a cache miss per entry it takes in, so a
 * filling table should be rebuilt rarely and while it is still small:
 * up to 2^20 slots (4 MB) an index grows sixteenfold (16, 256, 4,096,
 * 65,536, 2^20 slots), beyond that twofold, at most half full (or stays as
 * large as it is when removals filled it). A full IPv4 table is then
 * taken into its last index at 49,152 entries instead of 196,608 (growing
 * fourfold) or 393,216 (twofold): measured in process, a 560k table
 * received 5–10% faster (eight alternating pairs), the same 4 MB index
 * at the end; a table of 49k–196k entries holds up to 3 MB more index
 * than fourfold growth gave it. Past 4 MB, memory weighs more than
 * rebuilds.
 *
 * Iteration walks positions in order and reads the table live, as a Map
 * iterator does: entries removed meanwhile are skipped, entries added in a
 * new position are visited. An entry re-added into an earlier hole may be
 * missed by a walk already past it (a Map would visit it at the end); the
 * RIBs' walks tolerate that (what arrives meanwhile is handled on arrival).
 * Order is position order: insertion order until removals leave holes.
 *
 * Pins: another table may keep state by this one's positions (an
 * Adj-RIB-Out by the Loc-RIB's: lib/rib/adj-rib-out.ts) instead of a map of
 * its own. It pins each position it holds state for (`locate`, `pin`,
 * `unpin`). A pinned entry that is deleted becomes a ghost: gone for every
 * reader (get, has, size, walks), but its key and position stay, so the
 * pinning table can still read the key (to withdraw the prefix) and a
 * later `set` of the same key takes the same position again; the last
 * unpin removes it. `locate` of a key the map does not have adds it as a
 * ghost.
 */
import { IntStack } from "../core/chunked.ts";
import { type PrefixKey, isWideKey, wideKeyMix } from "./types.ts";

const HOLE: unique symbol = Symbol("hole");
/** The value of a deleted entry that is still pinned (see the module comment). */
const GHOST: unique symbol = Symbol("ghost");
/** Index positions migrated per write while a new index is built. */
const STEP = 16;
const MIN_INDEX = 16;
/** Up to this many slots an index grows sixteenfold; past it twofold, at most half full (see the module comment). */
const FAST_GROWTH_MAX = 1 << 20;
/**
 * A new index larger than this many slots is allocated without zeroing
 * and zeroed ZERO_STEP slots per write before the build starts. A zeroed
 * allocation of 2^20 slots (4 MB) held the event loop for 17 ms in one
 * write on this virtual machine (the daemon's longest turn in a
 * fan-in, found with a CPU profile aligned to a log of long turns;
 * touching a fresh 4 MB here is 1,024 page faults, 12–16 ms); zeroed
 * 64 KB per write, the faults are spread over 64 writes.
 */
const ZERO_AT_ONCE_MAX = 1 << 16;
const ZERO_STEP = 1 << 14;

/** An index of `n` slots whose contents are not zeroed yet (the caller zeroes it before use). */
function unzeroedIndex(n: number): Int32Array {
  const b = Buffer.allocUnsafeSlow(n * 4);
  return new Int32Array(b.buffer, b.byteOffset, n);
}
/**
 * Entries per storage chunk (a power of two). 512: a chunk's arrays (4 KB
 * each) come from the collector's blocks, which JavaScriptCore's warm-up
 * thread has already faulted in, where 4,096 (32 KB, allocated on their
 * own) were faulted in by the event loop: receiving a 560k table in
 * process, 2,000 fewer page faults on the event loop and 2–12% less of
 * its time on a core (five alternating pairs).
 */
const CHUNK_BITS = 9;
const CHUNK = 1 << CHUNK_BITS;
const CHUNK_MASK = CHUNK - 1;

/** The final mix of a 32-bit hash. */
function finish(h: number): number {
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 12)) >>> 0;
}

/**
 * An IPv4 key (address * 64 + length). Prefixes of one length that differ
 * only in their last four significant bits (sixteen neighbouring /24s,
 * say) land in one aligned run of sixteen index slots (64 bytes), in
 * address order; the rest of the prefix and its length are mixed to place
 * that run. Tables arrive, are looked up and are sent on in roughly address
 * order (allocation blocks), so consecutive lookups mostly touch a line
 * already in the cache, where a fully mixed hash costs a cache and TLB
 * miss each. At most sixteen keys share a run, whatever prefixes a peer
 * sends.
 */
function hashNum(k: number): number {
  if (k < 0) return hashV6Num(k);
  const len = (k >>> 0) & 63;
  // (A product: exact for a power of two as a quotient is, and a multiply where a double division takes several times as long.)
  const addr = (k * (1 / 64)) >>> 0;
  const n = len === 0 ? 0 : addr >>> (32 - len);
  // Host bits (none in keys from the wire) are mixed in too, so keys that have them never pile up on one slot.
  const host = addr ^ (n << (32 - len));
  return ((finish(Math.imul((n >>> 4) ^ Math.imul(len, 0x9e3779b1) ^ Math.imul(host, 0x27d4eb2f), 0x85ebca6b)) << 4) | (n & 15)) >>> 0;
}

/**
 * A numeric IPv6 key. A narrow one (lib/rib/types.ts: −(47 address bits
 * after the first three) * 64 − length, lengths 3..50, no bits past the
 * length): as hashNum places IPv4 keys, sixteen neighbouring prefixes of
 * one length in one run. A wide one (lengths 51..64, a few percent of a
 * table): mixed whole.
 */
function hashV6Num(k: number): number {
  if (isWideKey(k)) return finish(wideKeyMix(k));
  const m = -k;
  // (Not `m % 64`: on a double this large that is a call to fmod, and the hash took twice the time; see lowBits in
  // lib/rib/types.ts.)
  const len = (m >>> 0) & 63;
  // The prefix's own bits after the first three (len - 3 of them, up to 47), as a number: m is those bits times
  // 2^(56 - len), plus len (< 2^6); multiplying by an exact power of two and flooring takes the len away.
  const n = Math.floor(m * INV_POW2[V6_BITS + 6 - len]!);
  const lo = n >>> 0;
  const hi = (n * INV_POW2[32]!) >>> 0;
  return ((finish(Math.imul((lo >>> 4) ^ Math.imul(hi, 0x27d4eb2f) ^ Math.imul(len, 0x9e3779b1), 0x85ebca6b)) << 4) | (lo & 15)) >>> 0;
}

/** Address bits a numeric IPv6 key covers: its length's maximum. */
const V6_BITS = 50;
/** 2^-i for i in 0..56. */
const INV_POW2: Float64Array = Float64Array.from({ length: 57 }, (_, i) => 2 ** -i);

/**
 * An IPv6 key that is not a number: FNV-1a over its characters. (Placing sixteen neighbours in
 * one run, as hashNum does, measured slower here: a longer probe compares
 * strings, and a 200k-prefix index fits the cache anyway.)
 */
function hashStr(k: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
  return finish(h);
}

function hashOf(k: PrefixKey): number {
  return typeof k === "number" ? hashNum(k) : hashStr(k);
}

/** Position bits of an index slot. */
const POS_BITS = 24;
const POS_MASK = (1 << POS_BITS) - 1;
/** Most entries a map holds (positions + 1 must fit POS_BITS). */
const PREFIX_MAP_MAX = POS_MASK - 1;

/**
 * A key's tag, shifted into place (bits 24-30 of a slot): from bits the
 * slot does not already tell apart (hashNum keeps an IPv4 key's last four
 * significant bits as its place within a run, so the tag mixes the whole key).
 */
function tagOf(k: PrefixKey): number {
  const h = typeof k === "number" ? (isWideKey(k) ? wideKeyMix(k) : Math.imul((k >>> 0) ^ ((k * (1 / 4294967296)) >>> 0), 0x9e3779b1)) : Math.imul(hashStr(k), 0x85ebca6b);
  return (h >>> 25) << POS_BITS;
}

/** What a table keeping its state by another's positions uses of it (see Pins in the module comment). */
export interface PositionTable<K extends PrefixKey> {
  positionOf(k: K): number;
  locate(k: K): number;
  keyAt(p: number): K;
  pin(p: number): void;
  unpin(p: number): void;
}

/** Key tables by family (IPv4 keys, IPv6 keys), whose positions another table keeps its state by. */
export type PositionTables = readonly [PositionTable<number>, PositionTable<PrefixKey>];

export class PrefixMap<K extends PrefixKey, V> implements PositionTable<K> {
  private kc: K[][] = [];
  private vc: (V | typeof HOLE | typeof GHOST)[][] = [];
  /** Pin counts per position, per chunk (a chunk's array made at its first pin). */
  private pc: (Uint16Array | undefined)[] = [];
  /** Ghosts (deleted, still pinned): in the index, not in `live`. */
  private ghosts = 0;
  /** Pins held, all positions together. */
  private pins = 0;
  /** Positions in use (live or holes). */
  private end = 0;
  /** Positions of holes, to reuse. */
  private free = new IntStack();
  private live = 0;
  /** The index lookups use. */
  private idx: Int32Array = new Int32Array(MIN_INDEX);
  /** Live and removed marks in `idx`. */
  private used = 0;
  /** The index being built, how many of its slots are zeroed (it takes positions in once all are), and how many positions it has taken in. */
  private next: Int32Array | null = null;
  private zeroed = 0;
  private migrated = 0;
  /** Live and removed marks in `next`. */
  private nextUsed = 0;
  /**
   * The key last found in `idx` and its slot: a set or delete right after a
   * get of the same key (the RIBs' read-then-write pattern) skips the second
   * probe. Forgotten whenever a slot may have changed meaning (a removal,
   * a new index).
   */
  private lastKey: K | undefined = undefined;
  private lastSlot = -1;
  /**
   * The key last looked up and not found: absent until `set` inserts it
   * (whatever else is added, removed or re-indexed meanwhile), so a second
   * get of it (a route's Adj-RIB-In check, then its Loc-RIB write) and the
   * set that usually follows go without a probe.
   */
  private lastMiss: K | undefined = undefined;
  /**
   * For `lastMiss`: the slot of the lookup index its probe ended at (where
   * an insert of it goes while that index is in use and the slot still
   * free: a slot never becomes empty again in one index, so the probe path
   * to it stays without one) and its tag. The insert that usually follows
   * a missed lookup (a new prefix) then needs neither the hash nor the
   * probe again.
   */
  private missSlot = -1;
  private missTag = 0;
  /** The lookup index `missSlot` is a slot of (an index built since makes it stale). */
  private missIdx: Int32Array | null = null;
  /** Where the last probe of `find` that missed would have put the key. */
  private probeEnd = -1;
  private probeTag = 0;

  get size(): number {
    return this.live;
  }

  private find(idx: Int32Array, k: K): number {
    const mask = idx.length - 1;
    const tag = tagOf(k);
    let free = -1;
    for (let i = hashOf(k) & mask; ; i = (i + 1) & mask) {
      const p = idx[i]!;
      if (p === 0) {
        // Where the key would go (the first removed mark on its path, else this empty slot): see missSlot.
        this.probeEnd = free < 0 ? i : free;
        this.probeTag = tag;
        return -1;
      }
      // An index slot never points to a hole: removal marks it first.
      if (p > 0) {
        if ((p & ~POS_MASK) === tag) {
          const at = (p & POS_MASK) - 1;
          if (this.kc[at >>> CHUNK_BITS]![at & CHUNK_MASK] === k) return i;
        }
      } else if (free < 0) free = i;
    }
  }

  /** The position an index slot holds (it holds one: > 0). */
  private posIn(idx: Int32Array, i: number): number {
    return (idx[i]! & POS_MASK) - 1;
  }

  /** Put position `pos` (holding key `k`, not in it yet) into the index being built. */
  private place(k: PrefixKey, pos: number): void {
    const idx = this.next!;
    const mask = idx.length - 1;
    let i = hashOf(k) & mask;
    while (idx[i]! > 0) i = (i + 1) & mask;
    if (idx[i] === 0) this.nextUsed++;
    idx[i] = tagOf(k) | (pos + 1);
  }

  /** `find` in the lookup index, through the last-found memo. */
  private findCur(k: K): number {
    if (k === this.lastKey) return this.lastSlot;
    if (k === this.lastMiss) return -1;
    const i = this.find(this.idx, k);
    if (i >= 0) {
      this.lastKey = k;
      this.lastSlot = i;
    } else {
      this.lastMiss = k;
      this.missIdx = this.idx;
      this.missSlot = this.probeEnd;
      this.missTag = this.probeTag;
    }
    return i;
  }

  get(k: K): V | undefined {
    const i = this.findCur(k);
    if (i < 0) return undefined;
    const v = this.valAt(this.posIn(this.idx, i));
    return v === GHOST ? undefined : (v as V);
  }

  has(k: K): boolean {
    const i = this.findCur(k);
    return i >= 0 && this.valAt(this.posIn(this.idx, i)) !== GHOST;
  }

  set(k: K, v: V): this {
    this.put(k, v);
    return this;
  }

  /**
   * `set`, returning the entry's position: it stays the entry's until its
   * key is deleted, and `keyAt`/`valueAt`/`setValueAt` reach it there
   * without a lookup.
   */
  put(k: K, v: V): number {
    const i = this.findCur(k);
    if (i >= 0) {
      const at = this.posIn(this.idx, i);
      if (this.valAt(at) === GHOST) {
        this.ghosts--;
        this.live++;
      }
      this.setVal(at, v);
      return at;
    }
    const pos = this.insert(k, v);
    this.live++;
    this.grow();
    return pos;
  }

  /** Add `k` (not in the map) at a new position with value `v` (a ghost's too): its position. */
  private insert(k: K, v: V | typeof GHOST): number {
    let pos: number;
    if (this.free.length > 0) pos = this.free.pop()!;
    else {
      if (this.end >= PREFIX_MAP_MAX) throw new RangeError(`prefix table full: at most ${PREFIX_MAP_MAX} prefixes`);
      pos = this.end++;
      if ((pos & CHUNK_MASK) === 0) {
        this.kc.push(new Array<K>(CHUNK));
        this.vc.push(new Array<V | typeof HOLE>(CHUNK).fill(HOLE));
      }
    }
    this.kc[pos >>> CHUNK_BITS]![pos & CHUNK_MASK] = k;
    this.setVal(pos, v);
    // Into the lookup index (a removed mark on the probe path is reused), where its missed lookup ended when it can.
    const idx = this.idx;
    let j: number;
    let tag: number;
    // (The lookup index may have been replaced since the miss: a removal carries the build of the next one on and may
    // finish it. That the slot is still free holds while only inserts take slots, each forgetting lastMiss: checked all
    // the same, so that no change elsewhere can make an insert overwrite a slot.)
    if (k === this.lastMiss && this.missIdx === idx && idx[this.missSlot]! <= 0) {
      j = this.missSlot;
      tag = this.missTag;
    } else {
      const mask = idx.length - 1;
      j = hashOf(k) & mask;
      while (idx[j]! > 0) j = (j + 1) & mask;
      tag = tagOf(k);
    }
    if (idx[j] === 0) this.used++;
    idx[j] = tag | (pos + 1);
    this.lastMiss = undefined;
    this.lastKey = k;
    this.lastSlot = j;
    if (this.next !== null && pos < this.migrated) this.place(k, pos);
    return pos;
  }

  delete(k: K): boolean {
    const i = this.findCur(k);
    if (i < 0) return false;
    const pos = this.posIn(this.idx, i);
    const v = this.valAt(pos);
    if (v === GHOST) return false;
    if (this.pinsAt(pos) > 0) {
      this.setVal(pos, GHOST);
      this.live--;
      this.ghosts++;
      return true;
    }
    this.live--;
    this.removeAt(i, pos, k);
    return true;
  }

  /** Take the entry at position `pos` (index slot `i`, key `k`; no longer counted live) out of the map. */
  private removeAt(i: number, pos: number, k: K): void {
    this.idx[i] = -1;
    this.lastKey = undefined;
    if (this.next !== null && pos < this.migrated) {
      const j = this.find(this.next, k);
      if (j >= 0) this.next[j] = -1;
    }
    this.setVal(pos, HOLE);
    if (this.live === 0 && this.ghosts === 0 && this.next === null) {
      this.clear();
      return;
    }
    this.free.push(pos);
    this.grow();
  }

  private pinsAt(pos: number): number {
    const c = this.pc[pos >>> CHUNK_BITS];
    return c === undefined ? 0 : c[pos & CHUNK_MASK]!;
  }

  /** The position of `k`, an entry's or a ghost's; -1 when the map has neither. */
  positionOf(k: K): number {
    const i = this.findCur(k);
    return i < 0 ? -1 : this.posIn(this.idx, i);
  }

  /**
   * The position of `k` (an entry's or a ghost's), `k` added as a ghost
   * when the map has neither: pin it before anything else changes the map
   * (an unpinned ghost stays until a pin and unpin remove it).
   */
  locate(k: K): number {
    const i = this.findCur(k);
    if (i >= 0) return this.posIn(this.idx, i);
    const pos = this.insert(k, GHOST);
    this.ghosts++;
    this.grow();
    return pos;
  }

  /** One more holder of state for position `p` (an entry's or a ghost's). */
  pin(p: number): void {
    const ci = p >>> CHUNK_BITS;
    const c = (this.pc[ci] ??= new Uint16Array(CHUNK));
    if (c[p & CHUNK_MASK] === 0xffff) throw new RangeError("prefix table: more than 65535 pins of one position");
    c[p & CHUNK_MASK]!++;
    this.pins++;
  }

  /** One holder fewer for position `p`; a ghost whose last holder left is removed. */
  unpin(p: number): void {
    const c = this.pc[p >>> CHUNK_BITS];
    if (c === undefined || c[p & CHUNK_MASK] === 0) throw new Error(`prefix table: position ${p} is not pinned`);
    this.pins--;
    if (--c[p & CHUNK_MASK]! > 0 || this.valAt(p) !== GHOST) return;
    const k = this.keyAt(p);
    const i = this.findCur(k);
    this.ghosts--;
    this.removeAt(i, p, k);
  }

  /** Ghosts in the map (deleted entries still pinned), for tests. */
  get ghostCount(): number {
    return this.ghosts;
  }

  /** Pins held, all positions together, for tests. */
  get pinCount(): number {
    return this.pins;
  }

  /** Slots of the index lookups use, for tests. */
  get indexSlots(): number {
    return this.idx.length;
  }

  /** Remove every entry (none may be pinned: whoever pins keeps its state by these positions). */
  clear(): void {
    if (this.pins > 0) throw new Error(`prefix table: cleared with ${this.pins} pinned position(s)`);
    this.kc = [];
    this.vc = [];
    this.pc = [];
    this.ghosts = 0;
    this.end = 0;
    this.free.clear();
    this.live = 0;
    this.idx = new Int32Array(MIN_INDEX);
    this.used = 0;
    this.next = null;
    this.migrated = 0;
    this.nextUsed = 0;
    this.lastKey = undefined;
    this.lastMiss = undefined;
  }

  /** Start a new index when this one is three quarters full, and carry the build on by STEP positions. */
  private grow(): void {
    if (this.next === null) {
      if (this.used * 4 < this.idx.length * 3) return;
      // Sized for the live entries (see the module comment): larger when they fill it, the same when removals do.
      const held = this.live + this.ghosts;
      let n = this.idx.length;
      while (held * 2 >= n) n *= 2;
      if (n > this.idx.length && this.idx.length < FAST_GROWTH_MAX) n = Math.min(FAST_GROWTH_MAX, this.idx.length * 16);
      const later = n > ZERO_AT_ONCE_MAX;
      this.next = later ? unzeroedIndex(n) : new Int32Array(n);
      this.zeroed = later ? 0 : n;
      this.migrated = 0;
      this.nextUsed = 0;
    }
    if (this.zeroed < this.next.length) {
      const z = Math.min(this.next.length, this.zeroed + ZERO_STEP);
      this.next.fill(0, this.zeroed, z);
      this.zeroed = z;
      return;
    }
    const end = Math.min(this.end, this.migrated + STEP);
    for (let p = this.migrated; p < end; p++) if (this.valAt(p) !== HOLE) this.place(this.keyAt(p), p);
    this.migrated = end;
    if (end < this.end) return;
    this.idx = this.next;
    this.lastKey = undefined;
    this.used = this.nextUsed;
    this.next = null;
    this.migrated = 0;
    this.nextUsed = 0;
  }

  /** The key at a position `put` returned (while that key is in the map). */
  keyAt(p: number): K {
    return this.kc[p >>> CHUNK_BITS]![p & CHUNK_MASK]!;
  }

  /** Whether a position holds an entry now (a position once returned by `put` may since have been freed, or reused). */
  holds(p: number): boolean {
    if (p < 0 || p >= this.end) return false;
    const v = this.valAt(p);
    return v !== HOLE && v !== GHOST;
  }

  /** The value at a position `put` returned (while its key is in the map). */
  valueAt(p: number): V {
    return this.valAt(p) as V;
  }

  /** Replace the value at a position `put` returned (while its key is in the map). */
  setValueAt(p: number, v: V): void {
    this.setVal(p, v);
  }

  private valAt(p: number): V | typeof HOLE | typeof GHOST {
    return this.vc[p >>> CHUNK_BITS]![p & CHUNK_MASK]!;
  }

  private setVal(p: number, v: V | typeof HOLE | typeof GHOST): void {
    this.vc[p >>> CHUNK_BITS]![p & CHUNK_MASK] = v;
  }

  /** One past the last position in use (entries, holes and ghosts below it): the bound of a walk by positions. */
  get positionEnd(): number {
    return this.end;
  }

  /** The positions of the entries (see `put`), in order: a live walk, as `entries`. */
  *positions(): IterableIterator<number> {
    for (let p = 0; p < this.end; p++) if (this.holds(p)) yield p;
  }

  *keys(): IterableIterator<K> {
    for (let p = 0; p < this.end; p++) if (this.holds(p)) yield this.keyAt(p);
  }

  *values(): IterableIterator<V> {
    for (let p = 0; p < this.end; p++) {
      const v = this.valAt(p);
      if (v !== HOLE && v !== GHOST) yield v;
    }
  }

  *entries(): IterableIterator<[K, V]> {
    for (let p = 0; p < this.end; p++) {
      const v = this.valAt(p);
      if (v !== HOLE && v !== GHOST) yield [this.keyAt(p), v];
    }
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }
}
