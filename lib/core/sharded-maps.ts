/**
 * Maps that never grow all at once: their entries are spread over many
 * smaller Maps (or WeakMaps) by a hash of the key, so that when one of them
 * outgrows its table and rehashes, it moves a small share of the entries. A
 * JavaScriptCore Map rehashes everything it holds when it doubles: one `set`
 * at 16,384 string keys took 10 ms (measured, Bun 1.4), at 393,216 85 ms; a
 * WeakMap at 65,536 keys 13–17 ms. Tables that grow with a routing table or
 * a cluster (the Kubernetes watch caches, the derivation's prefixes, the
 * reconfigurer's listed prefixes, the policy memos per attribute set) reach
 * that inside a slice that has 20 ms in all.
 *
 * - `StringMap`: string keys, spread by FNV-1a over the UTF-16 code units
 *   (tens of nanoseconds for a key of a few dozen characters) over 256
 *   Maps. Iteration goes shard by shard (not in insertion order);
 *   everything else is a Map's.
 * - `WeakShards`: object keys held weakly, spread by a number the caller
 *   derives from the key (it must not change while the key lives, or an
 *   entry is not found again) over 64 WeakMaps: get, set, has.
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

const WEAK_SHARDS = 64;

export class WeakShards<K extends object, V> {
  private readonly maps: (WeakMap<K, V> | undefined)[] = new Array(WEAK_SHARDS);

  /** `shardOf`: any integer from the key (its low six bits pick the WeakMap). */
  constructor(private readonly shardOf: (k: K) => number) {}

  get(k: K): V | undefined {
    return this.maps[this.shardOf(k) & (WEAK_SHARDS - 1)]?.get(k);
  }

  has(k: K): boolean {
    return this.maps[this.shardOf(k) & (WEAK_SHARDS - 1)]?.has(k) ?? false;
  }

  set(k: K, v: V): this {
    (this.maps[this.shardOf(k) & (WEAK_SHARDS - 1)] ??= new WeakMap()).set(k, v);
    return this;
  }
}
