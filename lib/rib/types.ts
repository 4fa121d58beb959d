/**
 * The route model shared by the RIBs, the decision process and policy:
 * a path to a prefix, learned from a peer or originated locally, with its
 * (interned, immutable) attribute set. Protocol-independent in the BIRD sense:
 * nothing here touches the wire.
 */
import type { PathAttributes } from "../bgp/attributes.ts";
import type { Writer } from "../bgp/bytes.ts";
import { formatAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import type { Afi, Prefix } from "../core/addr.ts";

/** What the RIB needs to know about where a route came from. */
export interface RouteSource {
  /** Stable id: the peer's address, or "local" for originated routes. */
  id: string;
  /** Peer address text ("" for local routes). */
  address: string;
  /** Peer address bytes (4 or 16; empty for local) — the last tie-breaker. */
  addressBytes: Uint8Array;
  /** The peer's AS (our AS for local routes). */
  asn: number;
  /** The peer's BGP identifier as an unsigned 32-bit number (0 for local). */
  routerId: number;
  /** Learned over iBGP (peer AS == local AS). */
  ibgp: boolean;
  /** The peer is one of our route-reflector clients (RFC 4456). */
  rrClient: boolean;
  /** A locally originated route (config, CLI, Kubernetes). */
  local: boolean;
}

/**
 * An immediate forwarding hop (RFC 4271 §5.1.3): the neighbour packets for a
 * route are handed to, found by resolving its next hop recursively.
 */
export interface ForwardingHop {
  /** Gateway address, 4 or 16 bytes (an IPv6 one may be link-local, then `ifindex` names its link). */
  addr: Uint8Array;
  /** Output interface, when the resolution knows it. */
  ifindex?: number;
}

/**
 * One path to one prefix. Immutable once in a RIB (replace it to change it),
 * except `reachable`, `igpCost` and `via`: the Loc-RIB's next-hop tracker
 * (lib/rib/nexthop.ts) sets them in place and re-runs the prefix.
 *
 * Routes the daemon stores are `PathRoute`s (see makeRoute): their `prefix`
 * is computed from `key` when asked for, so a stored route holds no prefix
 * object or address bytes of its own (hot paths use `key`), and all their
 * other fields live in a head shared with the routes of the same UPDATE.
 */
export interface Route {
  /** The prefix (without path id); derived from `key` on the stored routes. */
  readonly prefix: Prefix;
  /** Key of the prefix (see prefixKey). */
  key: PrefixKey;
  /** ADD-PATH path identifier as received (0 without ADD-PATH). */
  pathId: number;
  source: RouteSource;
  /** Attributes after import policy. */
  attrs: PathAttributes;
  /** Next hop: 4, 16 or 32 (global + link-local) bytes. */
  nextHop: Uint8Array;
  /** When the route was learned (ms, monotonic): the "oldest eBGP route" tie-breaker. */
  learnedAt: number;
  /** IGP cost to the next hop (the metric of the route resolving it); 0 for local routes, "self" and link-local next hops, and without next-hop tracking. */
  igpCost: number;
  /** Whether the next hop resolves (RFC 4271 §9.1.2.1); an unreachable route is never best nor exported. */
  reachable: boolean;
  /** Marked stale during graceful restart / route refresh (shown as `S`). */
  stale: boolean;
  /**
   * The immediate forwarding hops when the next hop is not on-link (it
   * resolves through a gateway route or, recursively, through another BGP
   * route): what the FIB installs instead of `nextHop`. Absent when the next
   * hop is itself the forwarding hop (on-link, link-local, local routes, no
   * tracking). Set by the next-hop tracker.
   */
  via?: readonly ForwardingHop[];
}

/** `RouteHead.flags` bits. */
const REACHABLE = 1;
const STALE = 2;

/**
 * Everything about a stored route but its prefix (and ADD-PATH id): what
 * the routes of one UPDATE have in common (source, attribute set, next hop,
 * arrival time) and the next-hop state that follows from them
 * (reachability, IGP cost and forwarding hops, the same for every route
 * with that next hop). Immutable: a route that changes one of them moves to
 * another head (see `derive`).
 */
class RouteHead {
  /**
   * The head `derive` last made from this one: the routes sharing this head
   * make the same change one after another (the tracker settling a next hop,
   * graceful restart marking a peer's routes stale), and so share its result.
   */
  next: RouteHead | null = null;
  constructor(
    readonly source: RouteSource,
    readonly attrs: PathAttributes,
    readonly nextHop: Uint8Array,
    readonly learnedAt: number,
    readonly igpCost: number,
    readonly flags: number,
    readonly via: readonly ForwardingHop[] | undefined,
  ) {}

  /** This head with other next-hop state: the one last made that way when it matches. */
  derive(igpCost: number, flags: number, via: readonly ForwardingHop[] | undefined): RouteHead {
    const n = this.next;
    if (n !== null && n.igpCost === igpCost && n.flags === flags && n.via === via) return n;
    return (this.next = new RouteHead(this.source, this.attrs, this.nextHop, this.learnedAt, igpCost, flags, via));
  }
}

/** The head last made for a new route: the next route of the same UPDATE (same everything) shares it. */
let lastHead: RouteHead | null = null;

function headFor(source: RouteSource, attrs: PathAttributes, nextHop: Uint8Array, learnedAt: number, igpCost: number, flags: number, via: readonly ForwardingHop[] | undefined): RouteHead {
  const h = lastHead;
  if (h !== null && h.attrs === attrs && h.nextHop === nextHop && h.source === source && h.learnedAt === learnedAt && h.igpCost === igpCost && h.flags === flags && h.via === via) return h;
  return (lastHead = new RouteHead(source, attrs, nextHop, learnedAt, igpCost, flags, via));
}

/**
 * What a stored route reads through its head, on a class of its own: JSC
 * gives an object as many inline slots as its class defines fields plus the
 * non-function properties (accessors too) of its class's prototype, so
 * these accessors on PathRoute's own prototype would make every route 64
 * bytes instead of 32 (measured).
 */
abstract class HeadView {
  abstract key: PrefixKey;
  protected abstract h: RouteHead;
  get prefix(): Prefix {
    return prefixOfKey(this.key);
  }
  get pathId(): number {
    return 0;
  }
  get source(): RouteSource {
    return this.h.source;
  }
  get attrs(): PathAttributes {
    return this.h.attrs;
  }
  get nextHop(): Uint8Array {
    return this.h.nextHop;
  }
  get learnedAt(): number {
    return this.h.learnedAt;
  }
  get reachable(): boolean {
    return (this.h.flags & REACHABLE) !== 0;
  }
  set reachable(v: boolean) {
    const h = this.h;
    if (this.reachable !== v) this.moveTo(h.derive(h.igpCost, h.flags ^ REACHABLE, h.via));
  }
  get stale(): boolean {
    return (this.h.flags & STALE) !== 0;
  }
  set stale(v: boolean) {
    const h = this.h;
    if (this.stale !== v) this.moveTo(h.derive(h.igpCost, h.flags ^ STALE, h.via));
  }
  get igpCost(): number {
    return this.h.igpCost;
  }
  set igpCost(v: number) {
    const h = this.h;
    if (h.igpCost !== v) this.moveTo(h.derive(v, h.flags, h.via));
  }
  get via(): readonly ForwardingHop[] | undefined {
    return this.h.via;
  }
  set via(v: readonly ForwardingHop[] | undefined) {
    const h = this.h;
    if (h.via !== v) this.moveTo(h.derive(h.igpCost, h.flags, v));
  }
  /** The route now has head `h` (a method, not a field: see above). */
  protected moveTo(h: RouteHead): void {
    this.h = h;
  }
}

/**
 * The stored form of a route: its prefix key and a head shared with the
 * other routes of its UPDATE (two fields, 32 bytes in JSC; a full table of
 * 560k routes in about 84k UPDATEs has as many heads as UPDATEs, 80 bytes
 * each). The path identifier is a field only of ADD-PATH routes
 * (`AddPathRoute`). Setting `reachable`, `igpCost`, `stale` or `via` moves
 * this route alone to another head.
 */
class PathRoute extends HeadView implements Route {
  // Class fields, not only assignments in the constructor: JSC sizes a derived class's objects by its field definitions.
  key: PrefixKey;
  protected h: RouteHead;
  constructor(key: PrefixKey, h: RouteHead) {
    super();
    this.key = key;
    this.h = h;
  }
}

/**
 * One route object a receiver points at each prefix it handles in turn
 * (Neighbor.announced), so that a received table makes no object per
 * prefix: 760,000 of them, 24 MB the collector went through, for the
 * benchmark's table. It stands for its prefix only while that prefix is
 * handled: whatever keeps a route keeps its head (`storedForm`, as the
 * Loc-RIB and the FIB do) or `keepable(route)` (as the Adj-RIB-In does).
 */
export class ReusedRoute extends PathRoute {
  constructor() {
    super(0, null as unknown as RouteHead);
  }
  /** This route as `makeRoute(key, 0, source, attrs, nextHop, learnedAt)` would make it. */
  point(key: PrefixKey, source: RouteSource, attrs: PathAttributes, nextHop: Uint8Array, learnedAt: number): this {
    this.key = key;
    this.h = headFor(source, attrs, nextHop, learnedAt, 0, REACHABLE, undefined);
    return this;
  }
}

/** A stored route with an ADD-PATH path identifier other than 0 (48 bytes). */
class AddPathRoute extends PathRoute {
  constructor(
    key: PrefixKey,
    readonly id: number,
    h: RouteHead,
  ) {
    super(key, h);
  }
  override get pathId(): number {
    return this.id;
  }
}

/**
 * A table that stores a route as its head alone (the Loc-RIB, for a prefix
 * whose one candidate is selected): told when a route it handed out moves
 * to another head, so that the change is its own too.
 */
export interface HeadTable {
  headMoved(key: PrefixKey, from: RouteHead, to: RouteHead): void;
}

/**
 * A route a HeadTable made from a stored head: a new object per read, so
 * compare heads (`headOf`), not routes. Setting its next-hop state or stale
 * mark writes the new head back to the table (when it still holds the old
 * one), as setting them on a stored route object did.
 */
class SlotRoute extends PathRoute {
  readonly table: HeadTable;
  constructor(key: PrefixKey, h: RouteHead, table: HeadTable) {
    super(key, h);
    this.table = table;
  }
  protected override moveTo(h: RouteHead): void {
    const from = this.h;
    this.h = h;
    this.table.headMoved(this.key, from, h);
  }
}

/**
 * A read-only route over a head, for the decision process alone: the
 * Loc-RIB runs it over a prefix's stored candidates (heads) through these,
 * one object per position reused by every selection, so a selection makes
 * no route per candidate.
 */
class DecisionView extends PathRoute {
  point(key: PrefixKey, h: RouteHead): this {
    this.key = key;
    this.h = h;
    return this;
  }
  protected override moveTo(): void {
    throw new Error("a route viewed for the decision process is read-only");
  }
}
const decisionViews: DecisionView[] = [];

/**
 * The candidates of prefix `key` as stored (heads, or routes kept as
 * themselves) as routes for the decision process, in `out` (position i is
 * candidate i): heads through views that the next call reuses, so nothing
 * of them may be kept past the selection (map a chosen one back by its
 * position).
 */
export function routesForDecision(key: PrefixKey, stored: readonly (RouteHead | Route)[], out: Route[]): Route[] {
  out.length = stored.length;
  for (let i = 0; i < stored.length; i++) {
    const m = stored[i]!;
    if (!(m instanceof RouteHead)) out[i] = m;
    else out[i] = decisionViews[i]?.point(key, m) ?? (decisionViews[i] = new DecisionView(key, m));
  }
  return out;
}

/** The ADD-PATH id of a stored candidate (a head stands for path id 0). */
export function storedPathId(m: RouteHead | Route): number {
  return m instanceof RouteHead ? 0 : m.pathId;
}

/**
 * The same announcement of one prefix (routes, or candidates as stored: a
 * head, or a route kept as itself): the same source and path id, with the
 * same attributes, next hop and arrival. Next-hop state and the stale mark
 * aside: a route moves to another head when they change, and stays the
 * same announcement (the Loc-RIB's change detection, the graceful-restart
 * sweep).
 */
export function sameAnnouncement(a: RouteHead | Route | null, b: RouteHead | Route | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return a.source === b.source && storedPathId(a) === storedPathId(b) && a.attrs === b.attrs && a.nextHop === b.nextHop && a.learnedAt === b.learnedAt;
}

/** What a stored route without ADD-PATH id shares with the routes of its UPDATE; see RouteHead. */
export type StoredHead = RouteHead;

/** The head of a stored route with path id 0 (one `makeRoute`/`withFields` made, or a HeadTable read), else null: such a route can be kept as its head alone. */
export function headOf(r: Route): RouteHead | null {
  return r instanceof PathRoute && !(r instanceof AddPathRoute) ? (r as unknown as { h: RouteHead }).h : null;
}

/** Whether a table slot holds a head (see headOf). */
export function isHead(x: unknown): x is RouteHead {
  return x instanceof RouteHead;
}

/** What forwarding needs of a route: where it came from (local or not), its next hop, and its immediate hops. */
export type RouteForwarding = Pick<Route, "source" | "nextHop" | "via">;

/**
 * What a table keeps of a route: its head when it has one (shared with the
 * routes of its UPDATE: no object per prefix), else the route itself. A
 * change of next-hop state or stale mark moves a route to another head, so
 * what was kept stays what the route was.
 */
export function storedForm(r: Route): RouteHead | Route {
  return headOf(r) ?? r;
}

/** The same stored route: one object, or two a table made from one head for one prefix (compare routes from a table with this, not ===). */
export function sameRoute(a: Route, b: Route | null): boolean {
  if (a === b) return true;
  if (b === null || a.key !== b.key) return false;
  const h = headOf(a);
  return h !== null && h === headOf(b);
}

/** Whether the route a slot holds (a head, or a route) has a reachable next hop, without making a route of a head. */
export function slotReachable(x: RouteHead | Route): boolean {
  return x instanceof RouteHead ? (x.flags & REACHABLE) !== 0 : x.reachable;
}

/** The route of prefix `key` kept as head `h` by `table`, as a route object again. */
export function routeOfHead(key: PrefixKey, h: RouteHead, table: HeadTable): Route {
  return new SlotRoute(key, h, table);
}

/** A stored route (the path id a field only when it is not 0). */
function storedRoute(key: PrefixKey, pathId: number, source: RouteSource, attrs: PathAttributes, nextHop: Uint8Array, learnedAt: number, igpCost: number, reachable: boolean, stale: boolean, via: readonly ForwardingHop[] | undefined): PathRoute {
  const h = headFor(source, attrs, nextHop, learnedAt, igpCost, (reachable ? REACHABLE : 0) | (stale ? STALE : 0), via);
  return pathId === 0 ? new PathRoute(key, h) : new AddPathRoute(key, pathId, h);
}

/**
 * Map key of a prefix, exact in a double where it can be:
 * - IPv4: address * 64 + length (0 .. 2^38: never negative);
 * - IPv6 in 2000::/3 (global unicast, where the Internet's table is) with a
 *   length of 3 to 50 and no bits set past it: −(the 47 address bits after
 *   the first three, as a number) * 64 − length (negative, never 0). A
 *   number instead of a string per prefix: receiving 200,000 IPv6 prefixes
 *   in process, making and comparing the string keys took a third of the
 *   time (496 → 368 ms with numbers), and each was a heap object;
 * - IPv6 in 2000::/3 with a length of 51 to 64 (/56s and /64s are in the
 *   Internet's table too) and no bits set past it: a negative number above
 *   −2, whose bits are the prefix's (the sign bit set, the exponent's top
 *   bit clear, the other 62 bits the address's 61 bits after the first
 *   three up to the length, then a 1, then zeros; see v6Wide). The same
 *   type as every other key: with these prefixes as strings, 3% of the
 *   benchmark's IPv6 table, the per-route code compiled for numbers was
 *   thrown away and compiled again for both when they arrived;
 * - any other IPv6 prefix: a string of nine UTF-16 units, the length and
 *   the address's eight 16-bit words.
 * A prefix has one key; `familyOfKey` tells its family. Cheap to build, no
 * formatting.
 */
export type PrefixKey = number | string;

/** Lengths an IPv6 prefix in 2000::/3 has a narrow (integer) number for (see PrefixKey). */
const V6_NUM_MIN = 3;
const V6_NUM_MAX = 50;
/** 2^18: the low part of a numeric IPv6 key's 47 address bits (bits 32..49 of the address). */
const V6_LO = 262144;

/**
 * The number of the IPv6 prefix of `len` bits (V6_NUM_MIN..V6_NUM_MAX) whose
 * address starts with bytes b0..b6 (b0's top three bits 001); bits past the
 * length are cleared.
 */
function v6Num(len: number, b0: number, b1: number, b2: number, b3: number, b4: number, b5: number, b6: number): number {
  // Address bits 3..31 (hi) and 32..49 (lo), each masked to the length in 32-bit integers (see lowBits).
  let hi = ((b0 & 0x1f) << 24) | (b1 << 16) | (b2 << 8) | b3;
  let lo = (b4 << 10) | (b5 << 2) | (b6 >>> 6);
  if (len <= 32) {
    hi &= -1 << (32 - len);
    lo = 0;
  } else lo &= -1 << (V6_NUM_MAX - len);
  return -((hi * V6_LO + lo) * 64 + len);
}

/**
 * The low 32 bits of a non-negative integer below 2^53 (an IPv4 key, a
 * numeric IPv6 key's magnitude): ToUint32 is exact there, and JSC compiles
 * it to a truncation, where `%` on a double above 2^31 is a call to the C
 * library's fmod. Measured (200,000 keys of the benchmark table, in one
 * process): an IPv4 key from NLRI bytes 45 → 8 ns with the masking in
 * 32-bit integers, a numeric IPv6 key's hash 11–14 → 6 ns.
 */
function lowBits(x: number): number {
  return x >>> 0;
}

/** Lengths an IPv6 prefix in 2000::/3 has a wide number for (see PrefixKey and v6Wide). */
const V6_WIDE_MAX = 64;
/** Scratch for reading and writing a double's bits (little-endian words: [0] low, [1] high). */
const F64 = new Float64Array(1);
const U32 = new Uint32Array(F64.buffer);

/**
 * The wide number of the IPv6 prefix of `len` bits (V6_NUM_MAX + 1 ..
 * V6_WIDE_MAX) whose first 64 address bits are `hi`, `lo` (hi's top three
 * bits 001, bits past the length clear). Its 64 bits: the sign bit, a 0
 * (so the magnitude is below 2, never a NaN, an infinity or a narrow key's
 * at least 3), then 62 bits v = the address bits 3..len−1, a 1 after them
 * (the length is where that last 1 is), zeros; v's top bit is inverted so
 * that the common 2000::/4 addresses, whose bit 3 is 0, are not subnormal
 * numbers (which are still exact, only slower in arithmetic the keys never
 * see). Distinct prefixes have distinct bits, so distinct numbers.
 */
function v6Wide(len: number, hi: number, lo: number): number {
  // B = the address shifted left by three (its 001 dropped), then the marker at bit 66 − len (2..15); v = B >>> 2.
  const bhi = (hi << 3) | (lo >>> 29);
  const blo = (lo << 3) | (1 << (66 - len));
  U32[1] = (0x80000000 | (((bhi >>> 2) ^ (1 << 29)) & 0x3fffffff)) >>> 0;
  U32[0] = ((blo >>> 2) | (bhi << 30)) >>> 0;
  return F64[0]!;
}

/** Whether numeric key `k` is a wide IPv6 key (see v6Wide): the others are IPv4 (≥ 0) or narrow (≤ −3). */
export function isWideKey(k: number): boolean {
  return k < 0 && k > -2;
}

/**
 * A 32-bit mix of all the bits of wide key `k` (arithmetic on the number
 * itself sees only its magnitude): what hash tables and filters of numeric
 * keys use for these.
 */
export function wideKeyMix(k: number): number {
  F64[0] = k;
  return Math.imul(U32[0]! ^ Math.imul(U32[1]!, 0x27d4eb2f), 0x85ebca6b) >>> 0;
}

/** Put the first eight address bytes of wide key `k` into `out[0..7]`; returns its length (the inverse of v6Wide). */
function v6WideBytes(k: number, out: Uint8Array): number {
  F64[0] = k;
  const vhi = (U32[1]! & 0x3fffffff) ^ (1 << 29);
  const vlo = U32[0]!;
  const bhi = (vhi << 2) | (vlo >>> 30);
  let blo = vlo << 2;
  const p = 31 - Math.clz32(blo & -blo);
  blo &= ~(1 << p);
  const hi = (bhi >>> 3) | 0x20000000;
  const lo = (blo >>> 3) | ((bhi & 7) << 29);
  out[0] = hi >>> 24;
  out[1] = (hi >>> 16) & 0xff;
  out[2] = (hi >>> 8) & 0xff;
  out[3] = hi & 0xff;
  out[4] = lo >>> 24;
  out[5] = (lo >>> 16) & 0xff;
  out[6] = (lo >>> 8) & 0xff;
  out[7] = lo & 0xff;
  return 66 - p;
}

/** The wide key of an IPv6 prefix of `len` bits (51..64) from its first eight address bytes, bits past the length cleared. */
function v6WideOf(len: number, b0: number, b1: number, b2: number, b3: number, b4: number, b5: number, b6: number, b7: number): number {
  const hi = (b0 << 24) | (b1 << 16) | (b2 << 8) | b3;
  let lo = (b4 << 24) | (b5 << 16) | (b6 << 8) | b7;
  if (len < 64) lo &= -1 << (64 - len);
  return v6Wide(len, hi, lo);
}

/** Put the first seven address bytes of numeric IPv6 key `k` into `out[0..6]`; returns its length (the inverse of v6Num). */
function v6NumBytes(k: number, out: Uint8Array): number {
  const len = lowBits(-k) & 63;
  const v = (-k - len) / 64;
  const lo = lowBits(v) & (V6_LO - 1);
  const hi = (v - lo) / V6_LO;
  out[0] = 0x20 | (hi >>> 24);
  out[1] = (hi >>> 16) & 0xff;
  out[2] = (hi >>> 8) & 0xff;
  out[3] = hi & 0xff;
  out[4] = lo >>> 10;
  out[5] = (lo >>> 2) & 0xff;
  out[6] = (lo & 3) << 6;
  return len;
}

/** The string key of an IPv6 prefix from its length and eight 16-bit words. */
function v6Str(len: number, w0: number, w1: number, w2: number, w3: number, w4: number, w5: number, w6: number, w7: number): string {
  return String.fromCharCode(len, w0, w1, w2, w3, w4, w5, w6, w7);
}

/** Whether `k` is an IPv4 key. */
export function isV4Key(k: PrefixKey): k is number {
  return typeof k === "number" && k >= 0;
}

export function prefixKey(p: Prefix): PrefixKey {
  const a = p.addr;
  if (p.afi === 1) return (((a[0]! * 256 + a[1]!) * 256 + a[2]!) * 256 + a[3]!) * 64 + p.len;
  const len = p.len;
  if (len >= V6_NUM_MIN && len <= V6_WIDE_MAX && (a[0]! & 0xe0) === 0x20 && hostBitsClear(a, len)) {
    if (len <= V6_NUM_MAX) return v6Num(len, a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!);
    return v6WideOf(len, a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!, a[6]!, a[7]!);
  }
  return v6Words(len, a, 0, 16, 128); // (kept as given, host bits too)
}

/**
 * The string key of the IPv6 prefix of `len` bits whose address is the `n`
 * bytes at `buf[off]` (zeros past them), bits past `keep` cleared. No
 * closures here: a function whose variables a closure captures gets a scope
 * object on every call.
 */
function v6Words(len: number, buf: Uint8Array, off: number, n: number, keep: number): string {
  const b = V6_BYTES;
  for (let i = 0; i < 16; i++) {
    const bit = i * 8;
    b[i] = i >= n || keep <= bit ? 0 : keep >= bit + 8 ? buf[off + i]! : buf[off + i]! & (0xff << (bit + 8 - keep)) & 0xff;
  }
  return v6Str(len, (b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!, (b[4]! << 8) | b[5]!, (b[6]! << 8) | b[7]!, (b[8]! << 8) | b[9]!, (b[10]! << 8) | b[11]!, (b[12]! << 8) | b[13]!, (b[14]! << 8) | b[15]!);
}
/** Scratch bytes of v6Words and writeKeyNlri. */
const V6_BYTES = new Uint8Array(16);

/** Whether the 16-byte address `a` has no bit set past its first `len`. */
function hostBitsClear(a: Uint8Array, len: number): boolean {
  const i = len >> 3;
  if ((len & 7) !== 0 && (a[i]! & (0xff >> (len & 7))) !== 0) return false;
  for (let j = (len + 7) >> 3; j < 16; j++) if (a[j] !== 0) return false;
  return true;
}

/**
 * The key of a prefix written as canonical IPv4 text ("a.b.c.d/n": no
 * leading zeros, lengths 0..32), read in place without the general parser:
 * null for any other text, and for host bits set unless `mask` (then they
 * are cleared). What bulk advertise/withdraw requests and kernel route
 * texts are read with.
 */
export function ipv4TextKey(s: string, mask: boolean): number | null {
  let v = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  const n = s.length;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return null; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return null;
    } else if (c === 46 || c === 47) {
      if (digits === 0 || (c === 46) !== dots < 3) return null;
      v = v * 256 + octet;
      octet = 0;
      digits = 0;
      if (c === 47) break;
      dots++;
    } else return null;
  }
  if (i >= n - 1 || n - i > 3) return null;
  let len = 0;
  for (let j = i + 1; j < n; j++) {
    const c = s.charCodeAt(j);
    if (c < 48 || c > 57 || (j > i + 1 && len === 0)) return null;
    len = len * 10 + (c - 48);
  }
  if (len > 32) return null;
  const host = len === 32 ? 0 : v % 2 ** (32 - len);
  if (host !== 0 && !mask) return null;
  return (v - host) * 64 + len;
}

/**
 * The key of a prefix written as text ("203.0.113.0/24", "2001:db8::/32"),
 * as `prefixKey(parsePrefix(s))` gives it, and throwing as parsePrefix does:
 * canonical IPv4 text is read in place (a bulk advertise or withdraw reads
 * one per prefix), anything else through parsePrefix.
 */
export function textKey(s: string): PrefixKey {
  return ipv4TextKey(s, false) ?? prefixKey(parsePrefix(s));
}

/**
 * The key of a prefix given as `len` bits of address starting at `buf[off]`
 * (the NLRI form: only the bytes the length needs; bits past it are
 * ignored). What the UPDATE reader uses, without a Prefix object.
 */
export function prefixKeyOfBytes(afi: Afi, len: number, buf: Uint8Array, off: number): PrefixKey {
  const n = (len + 7) >> 3;
  if (afi === 1) {
    // In 32-bit integers (see lowBits): the address, its bits past the length cleared, then unsigned.
    let v = 0;
    for (let i = 0; i < 4; i++) v = (v << 8) | (i < n ? buf[off + i]! : 0);
    if (len < 32) v &= len === 0 ? 0 : -1 << (32 - len);
    return (v >>> 0) * 64 + len;
  }
  // (Bytes past the NLRI's are 0.)
  if (len >= V6_NUM_MIN && len <= V6_WIDE_MAX && (buf[off]! & 0xe0) === 0x20) {
    if (len <= V6_NUM_MAX) return v6Num(len, buf[off]!, n > 1 ? buf[off + 1]! : 0, n > 2 ? buf[off + 2]! : 0, n > 3 ? buf[off + 3]! : 0, n > 4 ? buf[off + 4]! : 0, n > 5 ? buf[off + 5]! : 0, n > 6 ? buf[off + 6]! : 0);
    // (len 51..64: seven or eight bytes.)
    return v6WideOf(len, buf[off]!, buf[off + 1]!, buf[off + 2]!, buf[off + 3]!, buf[off + 4]!, buf[off + 5]!, buf[off + 6]!, n > 7 ? buf[off + 7]! : 0);
  }
  return v6Words(len, buf, off, n, len);
}

/**
 * The string form of an IPv6 key (what every IPv6 key would be without the
 * numeric ones): ordered by address, then length, when compared by its
 * address words first.
 */
export function v6KeyString(k: PrefixKey): string {
  if (typeof k === "string") return k;
  const p = prefixOfKey(k);
  return v6Words(p.len, p.addr, 0, 16, 128);
}

/** Keys in address order: IPv4 first, then IPv6; by address, then length. */
export function compareKeys(a: PrefixKey, b: PrefixKey): number {
  const v4a = isV4Key(a);
  if (v4a !== isV4Key(b)) return v4a ? -1 : 1;
  if (v4a) return (a as number) - (b as number);
  // Narrow IPv6 numbers are −(address bits * 64 + length): reversed.
  if (typeof a === "number" && typeof b === "number" && !isWideKey(a) && !isWideKey(b)) return b - a;
  const ka = v6KeyString(a);
  const kb = v6KeyString(b);
  const sa = ka.slice(1);
  const sb = kb.slice(1);
  if (sa !== sb) return sa < sb ? -1 : 1;
  return ka.charCodeAt(0) - kb.charCodeAt(0);
}

/** The prefix a key stands for (a fresh object; the inverse of prefixKey, path id aside). */
export function prefixOfKey(k: PrefixKey): Prefix {
  if (typeof k === "number") {
    if (k < 0) {
      const addr = new Uint8Array(16);
      return { afi: 2, len: isWideKey(k) ? v6WideBytes(k, addr) : v6NumBytes(k, addr), addr };
    }
    const len = lowBits(k) & 63;
    const n = (k - len) / 64;
    return { afi: 1, len, addr: new Uint8Array([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]) };
  }
  const addr = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    const c = k.charCodeAt(i + 1);
    addr[i * 2] = c >>> 8;
    addr[i * 2 + 1] = c & 0xff;
  }
  return { afi: 2, len: k.charCodeAt(0), addr };
}

/**
 * The prefix text of a key ("203.0.113.0/24", "2001:db8::/32"): what a table
 * that keeps only keys shows and logs, made when asked for.
 */
export function keyText(k: PrefixKey): string {
  if (!isV4Key(k)) return prefixToString(prefixOfKey(k));
  const len = lowBits(k) & 63;
  const n = (k - len) / 64;
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}/${len}`;
}

/**
 * Append the prefix of `k` in NLRI form (with path id `pathId` first when
 * `addPath`), straight from the key: what the Adj-RIB-Out packs UPDATEs
 * from, without a Prefix object.
 */
export function writeKeyNlri(w: Writer, k: PrefixKey, addPath: boolean, pathId: number): void {
  if (addPath) w.u32(pathId);
  if (typeof k === "number" && k < 0) {
    const b = V6_BYTES;
    const len = isWideKey(k) ? v6WideBytes(k, b) : v6NumBytes(k, b);
    w.u8(len);
    // (len 3..64: one to eight bytes)
    for (let i = 0, n = (len + 7) >> 3; i < n; i++) w.u8(b[i]!);
    return;
  }
  if (typeof k === "number") {
    const len = lowBits(k) & 63;
    const n = (k - len) / 64;
    w.u8(len);
    if (len > 0) w.u8(n >>> 24);
    if (len > 8) w.u8((n >>> 16) & 0xff);
    if (len > 16) w.u8((n >>> 8) & 0xff);
    if (len > 24) w.u8(n & 0xff);
    return;
  }
  const len = k.charCodeAt(0);
  w.u8(len);
  const bytes = (len + 7) >> 3;
  for (let i = 0; i < bytes; i++) {
    const c = k.charCodeAt(1 + (i >> 1));
    w.u8(i & 1 ? c & 0xff : c >>> 8);
  }
}

export function familyOfKey(k: PrefixKey): Afi {
  return isV4Key(k) ? 1 : 2;
}

export function nextHopText(nh: Uint8Array): string {
  if (nh.length === 4) return formatAddr(1, nh);
  if (nh.length >= 16) return formatAddr(2, nh.subarray(0, 16));
  return "";
}

/** "192.0.2.66"; a link-local one with its interface index: "fe80::1%2". */
export function forwardingHopText(h: ForwardingHop): string {
  const t = formatAddr(h.addr.length === 4 ? 1 : 2, h.addr);
  return h.ifindex !== undefined && h.addr.length === 16 && h.addr[0] === 0xfe && (h.addr[1]! & 0xc0) === 0x80 ? `${t}%${h.ifindex}` : t;
}

/**
 * A freshly learned route (reachable, IGP cost 0, not stale), learned now
 * unless `learnedAt` says when. In a Loc-RIB with a next-hop tracker,
 * entering the table sets the real reachability and cost. Routes made one
 * after another with the same source, attribute set, next hop and
 * `learnedAt` (an UPDATE's prefixes: give them one time) share everything
 * but their prefix.
 */
export function makeRoute(prefix: Prefix | PrefixKey, pathId: number, source: RouteSource, attrs: PathAttributes, nextHop: Uint8Array, learnedAt = performance.now()): Route {
  const key = typeof prefix === "object" ? prefixKey(prefix) : prefix;
  return storedRoute(key, pathId, source, attrs, nextHop, learnedAt, 0, true, false, undefined);
}

/**
 * Route `r` for prefix `key` instead: the same head when `r` is kept as one
 * (path id 0, as makeRoute makes it), so that routes made alike for many
 * prefixes (the prefixes of one advertisement) share it, as an UPDATE's do.
 */
export function withKey(r: Route, key: PrefixKey): Route {
  const h = headOf(r);
  if (h !== null) return new PathRoute(key, h);
  return storedRoute(key, r.pathId, r.source, r.attrs, r.nextHop, r.learnedAt, r.igpCost, r.reachable, r.stale, r.via);
}

/**
 * A copy of a stored route with some fields changed (what `{...route, x}`
 * would be, but keeping the derived prefix; an object spread would drop it).
 */
export function withFields(r: Route, f: Partial<Omit<Route, "prefix" | "key">>): Route {
  return storedRoute(r.key, f.pathId ?? r.pathId, f.source ?? r.source, f.attrs ?? r.attrs, f.nextHop ?? r.nextHop, f.learnedAt ?? r.learnedAt, f.igpCost ?? r.igpCost, f.reachable ?? r.reachable, f.stale ?? r.stale, "via" in f ? f.via : r.via);
}

/** A route that may be kept past the handling of its prefix: `r` itself, or a copy of a ReusedRoute. */
export function keepable(r: Route): Route {
  return r instanceof ReusedRoute ? withFields(r, {}) : r;
}
