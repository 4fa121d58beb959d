/**
 * A map from prefix keys (lib/rib/types.ts `PrefixKey`: a number for IPv4,
 * a 9-character string for IPv6) split into 64 shards by a hash of the key.
 * A JavaScript Map grows by rehashing every entry in one go: at a full
 * table's size (~786k entries) that one `set` holds the event loop for
 * hundreds of milliseconds. Sharded, a growth step rehashes a 64th of it.
 * Iteration walks the shards in turn; like a Map's, it is live (entries
 * deleted before they are reached are not visited; entries added to a shard
 * not yet reached are).
 */
import type { PrefixKey } from "../rib/types.ts";

const SHARD_BITS = 6;

function shardOf(k: PrefixKey): number {
  let h: number;
  if (typeof k === "number") {
    // k = address * 64 + length (address up to 2^32): mix the address and the length.
    h = Math.imul(((k / 64) >>> 0) ^ (k % 64), 0x9e3779b1);
  } else {
    h = 0x811c9dc5;
    for (let i = 0; i < k.length; i++) h = Math.imul(h ^ k.charCodeAt(i), 0x01000193);
    h = Math.imul(h, 0x9e3779b1);
  }
  return h >>> (32 - SHARD_BITS);
}

export class PrefixKeyMap<V> {
  private readonly shards: Map<PrefixKey, V>[] = Array.from({ length: 1 << SHARD_BITS }, () => new Map<PrefixKey, V>());
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(k: PrefixKey): V | undefined {
    return this.shards[shardOf(k)]!.get(k);
  }

  has(k: PrefixKey): boolean {
    return this.shards[shardOf(k)]!.has(k);
  }

  set(k: PrefixKey, v: V): this {
    const m = this.shards[shardOf(k)]!;
    const before = m.size;
    m.set(k, v);
    this.count += m.size - before;
    return this;
  }

  delete(k: PrefixKey): boolean {
    const gone = this.shards[shardOf(k)]!.delete(k);
    if (gone) this.count--;
    return gone;
  }

  clear(): void {
    for (const m of this.shards) m.clear();
    this.count = 0;
  }

  *values(): IterableIterator<V> {
    for (const m of this.shards) yield* m.values();
  }
}
