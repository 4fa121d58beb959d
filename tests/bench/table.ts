/**
 * Deterministic, Internet-shaped routing tables for the benchmark suite (no
 * download): seeded, so every run and every daemon sees the same bytes.
 *
 * Shape, after the public IPv4/IPv6 tables:
 * - prefix lengths: IPv4 about 60% /24, then /22, /23, /21, /20 … a long tail
 *   to /8; IPv6 about half /48, then /32, /44, /40, /36, /29 … to /64;
 * - addresses clustered like allocations: each "organisation" holds a block
 *   (a /16 inside a unicast /8 for IPv4, a /32 inside 2000::/4 for IPv6) and
 *   announces a handful of prefixes (sometimes overlapping more-specifics)
 *   from it, all with the same origin AS;
 * - AS paths of realistic length (mean about 4.5 including the sending peer):
 *   peer, optionally a tier-1, 0–3 transits, the origin, sometimes prepended;
 *   about 45,000 origin ASes with a fixed upstream chain each, so a few tens
 *   of thousands of distinct paths (about 50k for the default sizes);
 * - a share of routes with communities (about 40%) and large communities
 *   (about 6%), MED on some.
 *
 * Prefixes that share one attribute set are packed into as few UPDATEs as fit
 * 4096 bytes, as a real speaker sends them. IPv6 goes in MP_REACH_NLRI.
 * `churn` re-announces a share of the table with new attributes (a marker
 * community) after withdrawing it.
 */
import { type PathAttributes, emptyAttributes, asPathOf, asPathSegments } from "../../lib/bgp/attributes.ts";
import { AFI, type Prefix } from "../../lib/core/addr.ts";
import { ORIGIN, SAFI, SEG } from "../../lib/bgp/types.ts";
import { buildAnnouncements, buildWithdrawals, encodeEndOfRib, type EncodeContext } from "../../lib/bgp/update.ts";

/** The community every churned re-announcement carries: 64512:9999. */
export const CHURN_MARKER = ((64512 << 16) | 9999) >>> 0;

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Pick from [value, weight] pairs. */
function weighted(r: () => number, table: readonly (readonly [number, number])[]): number {
  const total = table.reduce((s, [, w]) => s + w, 0);
  let x = r() * total;
  for (const [v, w] of table) {
    x -= w;
    if (x < 0) return v;
  }
  return table[table.length - 1]![0];
}

const V4_LENGTHS = [
  [24, 600], [23, 95], [22, 120], [21, 45], [20, 45], [19, 28], [18, 15], [17, 10], [16, 25],
  [15, 4], [14, 4], [13, 3], [12, 2], [11, 1], [10, 1], [9, 0.5], [8, 0.5],
] as const;
const V6_LENGTHS = [
  [48, 500], [32, 120], [44, 80], [40, 60], [36, 40], [46, 30], [47, 30], [29, 30], [45, 20],
  [42, 15], [34, 10], [33, 10], [28, 10], [56, 15], [64, 15], [38, 10], [30, 5],
] as const;
/** First octets never used: 0, 10, 100 (CGN share), 127, 169, 172, 192, 198 (documentation/private mix), 224+. */
const V4_SKIP = new Set([0, 10, 100, 127, 169, 172, 192, 198]);

/** One group of prefixes sharing an attribute set. */
export interface RouteGroup {
  afi: number;
  prefixes: Prefix[];
  attrs: PathAttributes;
}

export interface TableOptions {
  v4: number;
  v6: number;
  /** The sending peer's AS, first in every path. */
  peerAs: number;
  nextHop4: Uint8Array;
  nextHop6: Uint8Array;
  seed?: number;
}

export interface Table {
  groups: RouteGroup[];
  v4: number;
  v6: number;
  prefixes: number;
  distinctPaths: number;
}

interface Org {
  origin: number;
  upstream: number[];
  prepend: number;
}

/** Build the route groups (not yet encoded). */
export function buildTable(o: TableOptions): Table {
  const r = rng(o.seed ?? 1);
  // AS pools: 15 tier-1s, 3,000 transits, origins drawn from 16- and 32-bit space (private and our own ASes avoided).
  const tier1 = Array.from({ length: 15 }, (_, i) => 174 + i * 997);
  const transit = Array.from({ length: 3000 }, (_, i) => 2000 + i * 19);
  // About 45,000 origin ASes (as many as announce routes on the Internet); an
  // origin's upstream chain is fixed (seeded by the AS), so its blocks share paths.
  const origins = Array.from({ length: 45_000 }, (_, i) => (i < 27_000 ? 1000 + i * 2 + (i % 2) : 131072 + i * 6));
  const newOrg = (): Org => {
    const origin = origins[Math.floor(r() * origins.length)]!;
    const ro = rng(origin);
    const hops = weighted(ro, [[0, 15], [1, 45], [2, 28], [3, 12]]);
    const upstream: number[] = [];
    if (ro() < 0.7) upstream.push(tier1[Math.floor(ro() * tier1.length)]!);
    for (let i = 0; i < hops; i++) upstream.push(transit[Math.floor(ro() * transit.length)]!);
    return { origin, upstream, prepend: ro() < 0.1 ? 1 + Math.floor(ro() * 3) : 0 };
  };
  const attrsFor = (org: Org, variant: number): PathAttributes => {
    const asns = [o.peerAs, ...org.upstream];
    // A second variant of the same organisation goes through another transit.
    if (variant > 0) asns.splice(1, 0, transit[(org.origin + variant * 7) % transit.length]!);
    asns.push(org.origin);
    for (let i = 0; i < org.prepend; i++) asns.push(org.origin);
    const communities: number[] = [];
    if (r() < 0.4) {
      const n = 1 + Math.floor(r() * 5);
      const tag = (asns[1] ?? o.peerAs) & 0xffff;
      for (let i = 0; i < n; i++) communities.push(((tag << 16) | Math.floor(r() * 3000)) >>> 0);
      communities.sort((a, b) => a - b);
    }
    const largeCommunities: [number, number, number][] = r() < 0.06 ? [[org.origin, 1 + Math.floor(r() * 9), Math.floor(r() * 1000)]] : [];
    return {
      ...emptyAttributes(),
      origin: r() < 0.92 ? ORIGIN.IGP : ORIGIN.INCOMPLETE,
      asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns }]),
      med: r() < 0.2 ? Math.floor(r() * 500) : null,
      communities: [...new Set(communities)],
      largeCommunities,
    };
  };
  const groups: RouteGroup[] = [];
  const paths = new Set<string>();
  const gen = (afi: number, want: number) => {
    const seen = new Set<string | number>();
    let made = 0;
    let guard = 0;
    while (made < want) {
      if (++guard > want * 4 + 1000) throw new Error(`table generator: could not place ${want} distinct ${afi === AFI.IPV4 ? "IPv4" : "IPv6"} prefixes`);
      const org = newOrg();
      // Cluster size: geometric-ish, mean about 9.
      const size = Math.min(want - made, 1 + Math.floor(-Math.log(1 - r()) * 8));
      const variants = r() < 0.25 ? 2 : 1;
      const byVariant: Prefix[][] = Array.from({ length: variants }, () => []);
      const block = afi === AFI.IPV4 ? v4Block(r) : v6Block(r);
      let cursor = 0n;
      for (let i = 0; i < size; i++) {
        const len = weighted(r, afi === AFI.IPV4 ? V4_LENGTHS : V6_LENGTHS);
        const p = place(afi, block, len, cursor);
        cursor = p.next;
        const key = afi === AFI.IPV4 ? keyV4(p.prefix) : `${p.prefix.addr.join(".")}/${len}`;
        if (seen.has(key)) continue;
        seen.add(key);
        byVariant[i % variants]!.push(p.prefix);
        made++;
      }
      byVariant.forEach((ps, v) => {
        if (!ps.length) return;
        const attrs = attrsFor(org, v);
        paths.add(asPathSegments(attrs.asPath)[0]!.asns.join(" "));
        groups.push({ afi, prefixes: ps, attrs });
      });
    }
  };
  gen(AFI.IPV4, o.v4);
  gen(AFI.IPV6, o.v6);
  return { groups, v4: o.v4, v6: o.v6, prefixes: o.v4 + o.v6, distinctPaths: paths.size };
}

function keyV4(p: Prefix): number {
  return ((p.addr[0]! << 24) >>> 0) * 64 + ((p.addr[1]! << 16) | (p.addr[2]! << 8) | p.addr[3]!) * 64 + p.len;
}

/** An allocation block: its base address as a bigint and its length. */
interface Block {
  base: bigint;
  len: number;
  bits: number;
}

function v4Block(r: () => number): Block {
  let a: number;
  do a = 1 + Math.floor(r() * 222);
  while (V4_SKIP.has(a));
  return { base: (BigInt(a) << 24n) | (BigInt(Math.floor(r() * 256)) << 16n), len: 16, bits: 32 };
}

function v6Block(r: () => number): Block {
  // 2000::/4 .. 2c00::/6-ish, a /32 each: first 32 bits 0x2001xxxx .. 0x2c0fxxxx.
  const hi = 0x2001 + Math.floor(r() * 0x0c00);
  const lo = Math.floor(r() * 0x10000);
  return { base: (BigInt(hi) << 112n) | (BigInt(lo) << 96n), len: 32, bits: 128 };
}

/** The next aligned prefix of length `len` inside (or, if shorter, covering) the block, from offset `cursor`. */
function place(afi: number, b: Block, len: number, cursor: bigint): { prefix: Prefix; next: bigint } {
  const bits = BigInt(b.bits);
  if (len <= b.len) {
    const size = 1n << (bits - BigInt(len));
    const base = (b.base / size) * size;
    return { prefix: toPrefix(afi, base, len), next: cursor };
  }
  const size = 1n << (bits - BigInt(len));
  const span = 1n << (bits - BigInt(b.len));
  let off = ((cursor + size - 1n) / size) * size;
  if (off + size > span) off = 0n; // wrap: overlapping more-specifics, as real tables have
  return { prefix: toPrefix(afi, b.base + off, len), next: off + size };
}

function toPrefix(afi: number, v: bigint, len: number): Prefix {
  const n = afi === AFI.IPV4 ? 4 : 16;
  const addr = new Uint8Array(n);
  for (let i = n - 1; i >= 0; i--) {
    addr[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { afi: afi as Prefix["afi"], len, addr };
}

const CTX: EncodeContext = { fourOctetAs: true, addPathSend: () => false, maxLen: 4096 };

/** Encode groups as UPDATEs (one attribute set per message, packed), End-of-RIB for each family at the end. */
export function encodeGroups(groups: RouteGroup[], o: Pick<TableOptions, "nextHop4" | "nextHop6">, eor = true): Uint8Array[] {
  const out: Uint8Array[] = [];
  let v6 = false;
  for (const g of groups) {
    if (g.afi === AFI.IPV6) v6 = true;
    out.push(...buildAnnouncements(g.afi, SAFI.UNICAST, g.prefixes, g.attrs, g.afi === AFI.IPV4 ? o.nextHop4 : o.nextHop6, CTX));
  }
  if (eor) {
    out.push(encodeEndOfRib(AFI.IPV4, SAFI.UNICAST));
    if (v6) out.push(encodeEndOfRib(AFI.IPV6, SAFI.UNICAST));
  }
  return out;
}

/** Withdrawals of every prefix in the groups, packed per family. */
export function encodeWithdrawals(groups: RouteGroup[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const afi of [AFI.IPV4, AFI.IPV6]) {
    const ps = groups.filter((g) => g.afi === afi).flatMap((g) => g.prefixes);
    if (ps.length) out.push(...buildWithdrawals(afi, SAFI.UNICAST, ps, CTX));
  }
  return out;
}

/** Every `1/share`-th group, re-announced with new attributes (one more transit, the churn marker community). */
export function churnGroups(t: Table, share = 0.1): RouteGroup[] {
  const step = Math.max(1, Math.round(1 / share));
  return t.groups
    .filter((_, i) => i % step === 0)
    .map((g) => {
      const asns = asPathSegments(g.attrs.asPath)[0]!.asns;
      return {
        afi: g.afi,
        prefixes: g.prefixes,
        attrs: { ...g.attrs, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [asns[0]!, 3356, ...asns.slice(1)] }]), communities: [...g.attrs.communities, CHURN_MARKER] },
      };
    });
}

/** Split groups into `n` slices of whole groups, each about `per` prefixes. */
export function sliceGroups(groups: RouteGroup[], n: number, per: number): RouteGroup[][] {
  const out: RouteGroup[][] = Array.from({ length: n }, () => []);
  let i = 0;
  let have = 0;
  for (const g of groups) {
    if (i >= n) break;
    out[i]!.push(g);
    have += g.prefixes.length;
    if (have >= per) {
      i++;
      have = 0;
    }
  }
  return out;
}

/** One contiguous buffer of messages, the way a file of them is written and sent. */
export function concat(messages: Uint8Array[]): Uint8Array {
  const all = new Uint8Array(messages.reduce((s, m) => s + m.length, 0));
  let o = 0;
  for (const m of messages) {
    all.set(m, o);
    o += m.length;
  }
  return all;
}

export function countPrefixes(groups: RouteGroup[]): number {
  return groups.reduce((s, g) => s + g.prefixes.length, 0);
}
