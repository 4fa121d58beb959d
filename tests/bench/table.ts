/**
 * A synthetic full-table feed for benchmarks: N IPv4 prefixes (mostly /24,
 * some shorter) in UPDATEs of 1–6 prefixes sharing one attribute set, AS
 * paths of 2–7 ASes from a pool, communities on a third of them. Deterministic
 * (seeded), pre-encoded as whole BGP messages so the sender spends no time
 * encoding during a run.
 */
import { type PathAttributes, emptyAttributes } from "../../lib/bgp/attributes.ts";
import { AFI, type Prefix } from "../../lib/core/addr.ts";
import { ORIGIN, SEG } from "../../lib/bgp/types.ts";
import { encodeUpdate } from "../../lib/bgp/update.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Table {
  messages: Uint8Array[];
  prefixes: number;
  bytes: number;
}

/** Build the feed. `peerAs` is the sender's AS (first in every path); `nextHop` the IPv4 next hop. */
export function buildTable(n: number, peerAs: number, nextHop: Uint8Array, seed = 1): Table {
  const r = rng(seed);
  const pool = Array.from({ length: 4000 }, (_, i) => (i < 3000 ? 1000 + i * 7 : 4200000000 + i));
  const messages: Uint8Array[] = [];
  let made = 0;
  let bytes = 0;
  // Walk the address space in /24 steps from 1.0.0.0, occasionally emitting a shorter prefix.
  let next = 0x01000000;
  const ctx = { fourOctetAs: true, addPathSend: () => false };
  while (made < n) {
    const group = Math.min(n - made, 1 + Math.floor(r() * 6));
    const prefixes: Prefix[] = [];
    for (let i = 0; i < group; i++) {
      const len = r() < 0.85 ? 24 : 16 + Math.floor(r() * 8);
      const size = 2 ** (32 - len);
      next = Math.ceil(next / size) * size;
      // Skip space routers refuse as martian: 10/8, 127/8, and 224/3 onwards.
      if (next >>> 24 === 10) next = 11 * 2 ** 24;
      if (next >>> 24 === 127) next = 128 * 2 ** 24;
      if (next >= 224 * 2 ** 24) throw new Error("table too large for the unicast space used");
      const addr = Uint8Array.of(next >>> 24, (next >>> 16) & 0xff, (next >>> 8) & 0xff, next & 0xff);
      prefixes.push({ afi: AFI.IPV4, len, addr });
      next += size;
    }
    const pathLen = 1 + Math.floor(r() * 6);
    const asns = [peerAs];
    for (let i = 0; i < pathLen; i++) asns.push(pool[Math.floor(r() * pool.length)]!);
    const a: PathAttributes = {
      ...emptyAttributes(),
      origin: r() < 0.9 ? ORIGIN.IGP : ORIGIN.INCOMPLETE,
      asPath: [{ type: SEG.AS_SEQUENCE, asns }],
      nextHop,
      med: r() < 0.3 ? Math.floor(r() * 1000) : null,
      communities: r() < 0.33 ? [((peerAs & 0xffff) << 16) | Math.floor(r() * 500)] : [],
    };
    const m = encodeUpdate({ attrs: a, nlri: prefixes }, ctx);
    messages.push(m);
    bytes += m.length;
    made += group;
  }
  return { messages, prefixes: made, bytes };
}

/** Concatenate messages into chunks of about `size` bytes, as a TCP stream would deliver them. */
export function toChunks(messages: Uint8Array[], size = 65536): Uint8Array[] {
  const total = messages.reduce((s, m) => s + m.length, 0);
  const all = new Uint8Array(total);
  let o = 0;
  for (const m of messages) {
    all.set(m, o);
    o += m.length;
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < total; i += size) out.push(all.subarray(i, Math.min(total, i + size)));
  return out;
}
