/**
 * A Map from strings that never grows all at once: its entries are spread by
 * a hash of the key over up to 256 Maps, so that when one of them outgrows
 * its table and rehashes, it moves a 256th of the entries. A JavaScriptCore
 * Map rehashes everything it holds when it doubles: one `set` at 16,384
 * string keys took 10 ms (measured, Bun 1.4), at 393,216 85 ms, and the
 * tables keyed by object name or prefix text (the Kubernetes watch caches,
 * the derivation's prefixes, the reconfigurer's listed prefixes) grow to
 * tens of thousands at start, inside a slice that has 20 ms in all.
 *
 * Iteration goes shard by shard (not in insertion order); everything else is
 * a Map's: get, set, has, delete, size, clear, iteration of entries, keys
 * and values. The hash (FNV-1a over the UTF-16 code units) costs tens of
 * nanoseconds for a key of a few dozen characters.
 */

const SHARDS = 256;

function shardOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return (h ^ (h >>> 16)) & (SHARDS - 1);
}

export class StringMap<V> {
  private readonly shards: (Map<string, V> | undefined)[] = new Array(SHARDS);
  private n = 0;

  get size(): number {
    return this.n;
  }

  get(key: string): V | undefined {
    return this.shards[shardOf(key)]?.get(key);
  }

  has(key: string): boolean {
    return this.shards[shardOf(key)]?.has(key) ?? false;
  }

  set(key: string, value: V): this {
    const i = shardOf(key);
    let m = this.shards[i];
    if (m === undefined) this.shards[i] = m = new Map();
    const before = m.size;
    m.set(key, value);
    this.n += m.size - before;
    return this;
  }

  delete(key: string): boolean {
    const m = this.shards[shardOf(key)];
    if (m === undefined || !m.delete(key)) return false;
    this.n--;
    return true;
  }

  clear(): void {
    this.shards.fill(undefined);
    this.n = 0;
  }

  *entries(): IterableIterator<[string, V]> {
    for (const m of this.shards) if (m !== undefined) yield* m.entries();
  }

  *keys(): IterableIterator<string> {
    for (const m of this.shards) if (m !== undefined) yield* m.keys();
  }

  *values(): IterableIterator<V> {
    for (const m of this.shards) if (m !== undefined) yield* m.values();
  }

  [Symbol.iterator](): IterableIterator<[string, V]> {
    return this.entries();
  }
}
