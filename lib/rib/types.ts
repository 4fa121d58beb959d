/**
 * The route model shared by the RIBs, the decision process and policy:
 * a path to a prefix, learned from a peer or originated locally, with its
 * (interned, immutable) attribute set. Protocol-independent in the BIRD sense:
 * nothing here touches the wire.
 */
import type { PathAttributes } from "../bgp/attributes.ts";
import type { Writer } from "../bgp/bytes.ts";
import { formatAddr } from "../core/addr.ts";
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
 * object or address bytes of its own. Hot paths use `key`.
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

/**
 * The forwarding hops of the stored routes that have any (routes whose next
 * hop resolves through a gateway or another route; `PathRoute` marks them in
 * its bits, so the others never look here).
 */
const viaOf = new WeakMap<PathRoute, readonly ForwardingHop[]>();

/** `bits` flags (below the igpCost multiple). */
const REACHABLE = 1;
const STALE = 2;
const HAS_VIA = 4;
/** igpCost is stored as bits / COST (arithmetic, not bit operators: it may pass 2^31). */
const COST = 8;

/**
 * The stored form of a route: every field but the prefix, which `key`
 * encodes; `igpCost`, `reachable`, `stale` and whether it has forwarding
 * hops share one number, `via` lives in a side table, and the path
 * identifier is a field only of ADD-PATH routes (`AddPathRoute`): six
 * fields, 64 bytes in JSC, instead of 112 with ten.
 */
class PathRoute implements Route {
  private bits: number;
  constructor(
    public key: PrefixKey,
    public source: RouteSource,
    public attrs: PathAttributes,
    public nextHop: Uint8Array,
    public learnedAt: number,
    igpCost: number,
    reachable: boolean,
    stale: boolean,
  ) {
    this.bits = igpCost * COST + (stale ? STALE : 0) + (reachable ? REACHABLE : 0);
  }
  get prefix(): Prefix {
    return prefixOfKey(this.key);
  }
  get pathId(): number {
    return 0;
  }
  private flag(f: number): boolean {
    return this.bits % (f * 2) >= f;
  }
  private setFlag(f: number, v: boolean): void {
    if (this.flag(f) !== v) this.bits += v ? f : -f;
  }
  get reachable(): boolean {
    return this.flag(REACHABLE);
  }
  set reachable(v: boolean) {
    this.setFlag(REACHABLE, v);
  }
  get stale(): boolean {
    return this.flag(STALE);
  }
  set stale(v: boolean) {
    this.setFlag(STALE, v);
  }
  get igpCost(): number {
    return (this.bits - (this.bits % COST)) / COST;
  }
  set igpCost(v: number) {
    this.bits = v * COST + (this.bits % COST);
  }
  get via(): readonly ForwardingHop[] | undefined {
    return this.flag(HAS_VIA) ? viaOf.get(this) : undefined;
  }
  set via(v: readonly ForwardingHop[] | undefined) {
    if (v !== undefined) viaOf.set(this, v);
    else if (this.flag(HAS_VIA)) viaOf.delete(this);
    this.setFlag(HAS_VIA, v !== undefined);
  }
}

/** A stored route with an ADD-PATH path identifier other than 0. */
class AddPathRoute extends PathRoute {
  constructor(
    key: PrefixKey,
    readonly id: number,
    source: RouteSource,
    attrs: PathAttributes,
    nextHop: Uint8Array,
    learnedAt: number,
    igpCost: number,
    reachable: boolean,
    stale: boolean,
  ) {
    super(key, source, attrs, nextHop, learnedAt, igpCost, reachable, stale);
  }
  override get pathId(): number {
    return this.id;
  }
}

/** A stored route (the path id a field only when it is not 0). */
function storedRoute(key: PrefixKey, pathId: number, source: RouteSource, attrs: PathAttributes, nextHop: Uint8Array, learnedAt: number, igpCost: number, reachable: boolean, stale: boolean): PathRoute {
  return pathId === 0
    ? new PathRoute(key, source, attrs, nextHop, learnedAt, igpCost, reachable, stale)
    : new AddPathRoute(key, pathId, source, attrs, nextHop, learnedAt, igpCost, reachable, stale);
}

/**
 * Map key of a prefix: a number for IPv4 (address * 64 + length, exact in a
 * double), a short string for IPv6. Cheap to build, no formatting.
 */
export type PrefixKey = number | string;

export function prefixKey(p: Prefix): PrefixKey {
  const a = p.addr;
  if (p.afi === 1) return (((a[0]! * 256 + a[1]!) * 256 + a[2]!) * 256 + a[3]!) * 64 + p.len;
  let s = String.fromCharCode(p.len);
  for (let i = 0; i < 16; i += 2) s += String.fromCharCode((a[i]! << 8) | a[i + 1]!);
  return s;
}

/**
 * The key of a prefix given as `len` bits of address starting at `buf[off]`
 * (the NLRI form: only the bytes the length needs; bits past it are
 * ignored). What the UPDATE reader uses, without a Prefix object.
 */
export function prefixKeyOfBytes(afi: Afi, len: number, buf: Uint8Array, off: number): PrefixKey {
  const n = (len + 7) >> 3;
  if (afi === 1) {
    let v = 0;
    for (let i = 0; i < 4; i++) v = v * 256 + (i < n ? buf[off + i]! : 0);
    if (len < 32) v -= v % 2 ** (32 - len);
    return v * 64 + len;
  }
  let s = String.fromCharCode(len);
  for (let i = 0; i < 16; i += 2) {
    let w = ((i < n ? buf[off + i]! : 0) << 8) | (i + 1 < n ? buf[off + i + 1]! : 0);
    const bit = i * 8;
    if (len < bit + 16) w = len <= bit ? 0 : w & (0xffff << (16 - (len - bit))) & 0xffff;
    s += String.fromCharCode(w);
  }
  return s;
}

/** The prefix a key stands for (a fresh object; the inverse of prefixKey, path id aside). */
export function prefixOfKey(k: PrefixKey): Prefix {
  if (typeof k === "number") {
    const len = k % 64;
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
 * Append the prefix of `k` in NLRI form (with path id `pathId` first when
 * `addPath`), straight from the key: what the Adj-RIB-Out packs UPDATEs
 * from, without a Prefix object.
 */
export function writeKeyNlri(w: Writer, k: PrefixKey, addPath: boolean, pathId: number): void {
  if (addPath) w.u32(pathId);
  if (typeof k === "number") {
    const len = k % 64;
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
  return typeof k === "number" ? 1 : 2;
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
 * A freshly learned route (reachable, IGP cost 0, not stale), learned now. In
 * a Loc-RIB with a next-hop tracker, entering the table sets the real
 * reachability and cost.
 */
export function makeRoute(prefix: Prefix | PrefixKey, pathId: number, source: RouteSource, attrs: PathAttributes, nextHop: Uint8Array, learnedAt = performance.now()): Route {
  const key = typeof prefix === "object" ? prefixKey(prefix) : prefix;
  return storedRoute(key, pathId, source, attrs, nextHop, learnedAt, 0, true, false);
}

/**
 * A copy of a stored route with some fields changed (what `{...route, x}`
 * would be, but keeping the derived prefix; an object spread would drop it).
 */
export function withFields(r: Route, f: Partial<Omit<Route, "prefix" | "key">>): Route {
  const c = storedRoute(r.key, f.pathId ?? r.pathId, f.source ?? r.source, f.attrs ?? r.attrs, f.nextHop ?? r.nextHop, f.learnedAt ?? r.learnedAt, f.igpCost ?? r.igpCost, f.reachable ?? r.reachable, f.stale ?? r.stale);
  const via = "via" in f ? f.via : r.via;
  if (via !== undefined) c.via = via;
  return c;
}
