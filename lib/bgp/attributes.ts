/**
 * Path attributes: decoding with the per-attribute error handling of RFC 7606
 * (session reset / treat-as-withdraw / attribute discard), the AS4_PATH and
 * AS4_AGGREGATOR merge of RFC 6793 for 2-octet peers, and a canonical encoder
 * (attributes in type order, extended length only when needed).
 *
 * Decoded attribute sets are immutable and may be interned: `AttrCache` maps
 * the raw attribute bytes to one shared object, so a full table with few
 * distinct attribute sets costs one parse per distinct set.
 */
import { Writer, copyInto, hex, internNextHop, u16, u32 } from "./bytes.ts";
import { BgpError } from "./errors.ts";
import { formatIPv4 } from "../core/addr.ts";
import { HashIndex } from "../core/hash-index.ts";
import { KeyArena } from "../core/key-arena.ts";
import { AS_TRANS, ATTR, ERR, FLAG, ORIGIN_NAMES, SEG, UPDATE_SUB } from "./types.ts";

/** One segment of an AS path, in its readable form (asPathSegments, asPathOf). */
export interface AsPathSegment {
  type: number;
  asns: number[];
}

/**
 * An AS path as the sets hold it: one Uint32Array of its segments in
 * order, each as its type, its count of ASes, then the ASes (a segment may
 * hold more than 255: the encoder splits it). One object of about 90 bytes
 * for a path of five ASes, where a list of segment objects was five
 * objects and about 150 bytes (the paths of a full table's sets were 11.6
 * of the 61 MB it adds, measured). Never changed in place: a set's path is
 * shared. Build one with asPathOf, read it with the helpers below.
 */
export type AsPath = Uint32Array;

/** The empty AS path (shared: never write into it). */
export const EMPTY_AS_PATH: AsPath = new Uint32Array(0);

export interface UnknownAttribute {
  flags: number;
  type: number;
  value: Uint8Array;
}

/** A decoded, immutable set of path attributes (MP_REACH/MP_UNREACH excluded). */
export interface PathAttributes {
  origin: number | null;
  /** The AS path (after the AS4_PATH merge for 2-octet sessions). */
  asPath: AsPath | null;
  /** IPv4 NEXT_HOP attribute (4 bytes). */
  nextHop: Uint8Array | null;
  med: number | null;
  localPref: number | null;
  atomicAggregate: boolean;
  aggregator: { asn: number; address: string } | null;
  /** RFC 1997 communities as unsigned 32-bit values. */
  communities: number[];
  originatorId: string | null;
  clusterList: string[];
  /** RFC 4360 extended communities, 8 bytes each. */
  extCommunities: Uint8Array[];
  /** RFC 8092 large communities, three 32-bit values each. */
  largeCommunities: [number, number, number][];
  otc: number | null;
  /** Unrecognised optional attributes, kept to be passed on (transitive ones). */
  unknown: UnknownAttribute[];
  /**
   * Types of recognised optional transitive attributes received with the
   * Partial bit set: RFC 4271 §5 says it must stay set when they are passed on.
   */
  partial?: number[];
  /**
   * Internal to the attribute caches (see AttrCache): the interning cache
   * the set is in, its key (a handle into the cache's KeyArena), its count
   * of holders and its decoding issues.
   * Not enumerable (spreads, JSON and comparisons skip them, so a set
   * derived by spreading one is not cached); null, or absent, on sets built
   * otherwise.
   */
  interned?: unknown;
  internKey?: number | null;
  internRefs?: number;
  internIssues?: AttrIssue[] | null;
}

/**
 * A set with no attributes: its lists new empty arrays, or all `shared`
 * (the decoder's frozen empty list, replaced by an array only where an
 * attribute is present).
 */
export function emptyAttributes(shared?: never[]): PathAttributes {
  return new AttrSet(shared);
}

/**
 * The sets emptyAttributes makes (the decoder's among them). The interning
 * cache's four fields are private fields behind accessors on the
 * prototype: not own properties, so a spread, JSON and comparisons skip
 * them (a set derived by spreading one is not cached) and every set still
 * has them in its own slots. (Before, four non-enumerable properties
 * defined on each new set, a runtime call each: a tenth of decoding a table
 * of new sets, in process.)
 */
class AttrSet implements PathAttributes {
  origin: number | null = null;
  asPath: AsPath | null = null;
  nextHop: Uint8Array | null = null;
  med: number | null = null;
  localPref: number | null = null;
  atomicAggregate = false;
  aggregator: { asn: number; address: string } | null = null;
  communities: number[];
  originatorId: string | null = null;
  clusterList: string[];
  extCommunities: Uint8Array[];
  largeCommunities: [number, number, number][];
  otc: number | null = null;
  unknown: UnknownAttribute[];
  declare partial?: number[];
  #interned: unknown = null;
  #internKey: number | null = null;
  #internRefs = 0;
  #internIssues: AttrIssue[] | null = null;

  constructor(shared?: never[]) {
    this.communities = shared ?? [];
    this.clusterList = shared ?? [];
    this.extCommunities = shared ?? [];
    this.largeCommunities = shared ?? [];
    this.unknown = shared ?? [];
  }

  get interned(): unknown {
    return this.#interned;
  }
  set interned(v: unknown) {
    this.#interned = v;
  }
  get internKey(): number | null {
    return this.#internKey;
  }
  set internKey(v: number | null) {
    this.#internKey = v;
  }
  get internRefs(): number {
    return this.#internRefs;
  }
  set internRefs(v: number) {
    this.#internRefs = v;
  }
  get internIssues(): AttrIssue[] | null {
    return this.#internIssues;
  }
  set internIssues(v: AttrIssue[] | null) {
    this.#internIssues = v;
  }
}

/** What the decoder needs to know about the session. */
export interface AttrContext {
  /** 4-octet AS numbers in AS_PATH/AGGREGATOR (RFC 6793 negotiated). */
  fourOctetAs: boolean;
  /** The peer is internal (iBGP): LOCAL_PREF, ORIGINATOR_ID, CLUSTER_LIST are accepted. */
  ibgp: boolean;
}

/** Outcome severity of an attribute error (RFC 7606 §2). */
export type ErrorAction = "treat-as-withdraw" | "attribute-discard";

export interface AttrIssue {
  action: ErrorAction;
  attr: number;
  reason: string;
}

/** Raw attribute as found in the attribute section. */
export interface RawAttr {
  flags: number;
  type: number;
  value: Uint8Array;
}

const WELL_KNOWN = new Set<number>([ATTR.ORIGIN, ATTR.AS_PATH, ATTR.NEXT_HOP, ATTR.LOCAL_PREF, ATTR.ATOMIC_AGGREGATE]);
/** Expected (optional, transitive) flags of the attributes we know. */
const EXPECTED_FLAGS: Record<number, number> = {
  [ATTR.ORIGIN]: FLAG.TRANSITIVE,
  [ATTR.AS_PATH]: FLAG.TRANSITIVE,
  [ATTR.NEXT_HOP]: FLAG.TRANSITIVE,
  [ATTR.MED]: FLAG.OPTIONAL,
  [ATTR.LOCAL_PREF]: FLAG.TRANSITIVE,
  [ATTR.ATOMIC_AGGREGATE]: FLAG.TRANSITIVE,
  [ATTR.AGGREGATOR]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
  [ATTR.COMMUNITIES]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
  [ATTR.ORIGINATOR_ID]: FLAG.OPTIONAL,
  [ATTR.CLUSTER_LIST]: FLAG.OPTIONAL,
  [ATTR.MP_REACH_NLRI]: FLAG.OPTIONAL,
  [ATTR.MP_UNREACH_NLRI]: FLAG.OPTIONAL,
  [ATTR.EXTENDED_COMMUNITIES]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
  [ATTR.AS4_PATH]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
  [ATTR.AS4_AGGREGATOR]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
  [ATTR.LARGE_COMMUNITY]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
  [ATTR.OTC]: FLAG.OPTIONAL | FLAG.TRANSITIVE,
};

export function knownAttribute(type: number): boolean {
  return EXPECTED_FLAGS[type] !== undefined;
}

const ATTR_NAMES: Record<number, string> = {
  1: "ORIGIN",
  2: "AS_PATH",
  3: "NEXT_HOP",
  4: "MULTI_EXIT_DISC",
  5: "LOCAL_PREF",
  6: "ATOMIC_AGGREGATE",
  7: "AGGREGATOR",
  8: "COMMUNITIES",
  9: "ORIGINATOR_ID",
  10: "CLUSTER_LIST",
  14: "MP_REACH_NLRI",
  15: "MP_UNREACH_NLRI",
  16: "EXTENDED_COMMUNITIES",
  17: "AS4_PATH",
  18: "AS4_AGGREGATOR",
  32: "LARGE_COMMUNITY",
  35: "OTC",
};
export function attrName(type: number): string {
  return ATTR_NAMES[type] ?? `attribute ${type}`;
}

/** Parse AS_PATH / AS4_PATH segments; null if malformed. */
export function parseAsPath(v: Uint8Array, asLen: 2 | 4, start = 0, end = v.length): AsPath | null {
  // Framing first (and the size), then one array filled.
  let o = start;
  let size = 0;
  while (o < end) {
    if (end - o < 2) return null;
    const type = v[o]!;
    const n = v[o + 1]!;
    if (type < SEG.AS_SET || type > SEG.AS_CONFED_SET || n === 0) return null;
    if (o + 2 + n * asLen > end) return null;
    size += 2 + n;
    o += 2 + n * asLen;
  }
  const p = new Uint32Array(size);
  let k = 0;
  for (o = start; o < end; ) {
    const n = v[o + 1]!;
    p[k++] = v[o]!;
    p[k++] = n;
    o += 2;
    for (let i = 0; i < n; i++, o += asLen) p[k++] = asLen === 4 ? u32(v, o) : u16(v, o);
  }
  return p;
}

/** The compact form of a list of segments (empty segments kept as they are). */
export function asPathOf(segs: readonly AsPathSegment[]): AsPath {
  let size = 0;
  for (const s of segs) size += 2 + s.asns.length;
  const p = new Uint32Array(size);
  let k = 0;
  for (const s of segs) {
    p[k++] = s.type;
    p[k++] = s.asns.length;
    for (const a of s.asns) p[k++] = a;
  }
  return p;
}

/** A path of one AS_SEQUENCE of `asns` (the empty path when there are none). */
export function asSequence(asns: readonly number[]): AsPath {
  if (asns.length === 0) return EMPTY_AS_PATH;
  const p = new Uint32Array(2 + asns.length);
  p[0] = SEG.AS_SEQUENCE;
  p[1] = asns.length;
  p.set(asns, 2);
  return p;
}

/** The segments of a path, readable (new objects: for display, JSON and tests). */
export function asPathSegments(p: AsPath | null): AsPathSegment[] {
  const out: AsPathSegment[] = [];
  if (p === null) return out;
  for (let k = 0; k < p.length; ) {
    const n = p[k + 1]!;
    out.push({ type: p[k]!, asns: Array.from(p.subarray(k + 2, k + 2 + n)) });
    k += 2 + n;
  }
  return out;
}

/** RFC 4271 §9.1.2.2 path length: AS_SET counts 1, confederation segments 0. */
export function asPathLength(p: AsPath): number {
  let n = 0;
  for (let k = 0; k < p.length; k += 2 + p[k + 1]!) {
    if (p[k] === SEG.AS_SEQUENCE) n += p[k + 1]!;
    else if (p[k] === SEG.AS_SET) n += 1;
  }
  return n;
}

/** Whether `asn` is anywhere in the path. */
export function asPathHas(p: AsPath | null, asn: number): boolean {
  return asPathCount(p, asn) > 0;
}

/** How many times `asn` is in the path (all segments). */
export function asPathCount(p: AsPath | null, asn: number): number {
  if (p === null) return 0;
  let c = 0;
  for (let k = 0; k < p.length; ) {
    const e = k + 2 + p[k + 1]!;
    for (let i = k + 2; i < e; i++) if (p[i] === asn) c++;
    k = e;
  }
  return c;
}

/** The leftmost AS when the path starts with an AS_SEQUENCE (RFC 4271 §6.3's check); -1 otherwise. */
export function asPathLeadingAs(p: AsPath | null): number {
  return p !== null && p.length > 2 && p[0] === SEG.AS_SEQUENCE && p[1]! > 0 ? p[2]! : -1;
}

/**
 * The neighbouring AS (RFC 4271 §9.1.2.2 (c)): the first AS of the leading
 * AS_SEQUENCE, confederation segments skipped; -1 when the path is empty
 * or starts (after them) with anything else.
 */
export function asPathNeighbor(p: AsPath | null): number {
  if (p === null) return -1;
  for (let k = 0; k < p.length; k += 2 + p[k + 1]!) {
    const t = p[k]!;
    if (t === SEG.AS_CONFED_SEQUENCE || t === SEG.AS_CONFED_SET) continue;
    return t === SEG.AS_SEQUENCE && p[k + 1]! > 0 ? p[k + 2]! : -1;
  }
  return -1;
}

/** The path with every `from` replaced by `to` (the path itself when it has none). */
export function asPathReplace(p: AsPath | null, from: number, to: number): AsPath | null {
  if (p === null || !asPathHas(p, from)) return p;
  const out = p.slice();
  for (let k = 0; k < out.length; ) {
    const e = k + 2 + out[k + 1]!;
    for (let i = k + 2; i < e; i++) if (out[i] === from) out[i] = to;
    k = e;
  }
  return out;
}

/**
 * Prepend `asn` `n` times: extend a leading AS_SEQUENCE or start one; no
 * segment exceeds 255 ASes (an overflowing sequence is split, front first).
 * Returns a new path.
 */
export function prependAs(path: AsPath | null, asn: number, n: number): AsPath {
  const p = path ?? EMPTY_AS_PATH;
  const lead = p.length >= 2 && p[0] === SEG.AS_SEQUENCE;
  const leadLen = lead ? p[1]! : 0;
  const total = n + leadLen;
  const rest = lead ? 2 + leadLen : 0;
  const segs = Math.ceil(total / 255);
  const out = new Uint32Array(segs * 2 + total + (p.length - rest));
  let k = 0;
  let done = 0;
  for (let sgm = 0; sgm < segs; sgm++) {
    const c = Math.min(255, total - done);
    out[k++] = SEG.AS_SEQUENCE;
    out[k++] = c;
    for (let i = 0; i < c; i++, done++) out[k++] = done < n ? asn : p[2 + done - n]!;
  }
  // (A loop, not set(subarray): a path's rest is a few numbers, and a view made per exported set was 4–5% of the transit benchmark's profile.)
  for (let i = rest; i < p.length; i++) out[k++] = p[i]!;
  return out;
}

/**
 * RFC 6793 §4.2.3: rebuild the real AS path from a 2-octet AS_PATH and an
 * AS4_PATH. When AS_PATH has fewer ASes than AS4_PATH, AS4_PATH is ignored.
 */
export function mergeAs4Path(asPath: AsPath, as4Path: AsPath): AsPath {
  const n2 = asPathLength(asPath);
  const n4 = asPathLength(as4Path);
  if (n2 < n4) return asPath;
  const as4 = asPathSegments(as4Path);
  let keep = n2 - n4;
  const out: AsPathSegment[] = [];
  // Segments are taken from the front. A confederation segment counts 0 and is
  // kept when it leads or follows a wholly kept segment (RFC 6793 §4.2.3: "SHALL
  // be prepended if it is either the leading path segment or is adjacent to a
  // path segment that is prepended").
  let prevWhole = true;
  for (const s of asPathSegments(asPath)) {
    if (s.type !== SEG.AS_SEQUENCE && s.type !== SEG.AS_SET) {
      if (!prevWhole) break;
      out.push(s);
      continue;
    }
    if (keep === 0) break;
    if (s.type === SEG.AS_SEQUENCE) {
      const take = Math.min(keep, s.asns.length);
      out.push({ type: s.type, asns: s.asns.slice(0, take) });
      keep -= take;
      prevWhole = take === s.asns.length;
    } else {
      out.push(s);
      keep -= 1;
    }
  }
  // join a trailing sequence with a leading AS4 sequence
  const first = as4[0];
  const last = out[out.length - 1];
  if (last && first && last.type === SEG.AS_SEQUENCE && first.type === SEG.AS_SEQUENCE && last.asns.length + first.asns.length <= 255) {
    last.asns.push(...first.asns);
    out.push(...as4.slice(1));
  } else {
    out.push(...as4);
  }
  return asPathOf(out);
}

/** The flat list of ASes of the path (sets flattened in order), for display and JSON. */
export function asPathNumbers(p: AsPath | null): number[] {
  const out: number[] = [];
  if (p === null) return out;
  for (let k = 0; k < p.length; ) {
    const e = k + 2 + p[k + 1]!;
    for (let i = k + 2; i < e; i++) out.push(p[i]!);
    k = e;
  }
  return out;
}

/** "65001 65002 {65003,65004} (65005)" — the usual text form. */
export function asPathString(p: AsPath | null): string {
  if (!p) return "";
  return asPathSegments(p)
    .map((s) => {
      const a = s.asns.join(s.type === SEG.AS_SEQUENCE || s.type === SEG.AS_CONFED_SEQUENCE ? " " : ",");
      switch (s.type) {
        case SEG.AS_SET:
          return `{${a}}`;
        case SEG.AS_CONFED_SEQUENCE:
          return `(${a})`;
        case SEG.AS_CONFED_SET:
          return `[${a}]`;
        default:
          return a;
      }
    })
    .join(" ");
}

/** RFC 9494 well-known communities. */
export const LLGR_STALE = 0xffff0006;
export const NO_LLGR = 0xffff0007;

export function communityString(c: number): string {
  switch (c >>> 0) {
    case LLGR_STALE:
      return "llgr-stale";
    case NO_LLGR:
      return "no-llgr";
    case 0xffffff01:
      return "no-export";
    case 0xffffff02:
      return "no-advertise";
    case 0xffffff03:
      return "no-export-subconfed";
    case 0xffff029a:
      return "graceful-shutdown";
    case 0xffffff04:
      return "no-peer";
    case 0xffff0000:
      return "accept-own";
    case 0xffff029b:
      return "blackhole";
  }
  return `${c >>> 16}:${c & 0xffff}`;
}

/** Plain "a:b" form (well-known values too), as JSON output uses. */
export function communityPair(c: number): string {
  return `${c >>> 16}:${c & 0xffff}`;
}

export function largeCommunityString(l: [number, number, number]): string {
  return `${l[0]}:${l[1]}:${l[2]}`;
}

/** RFC 4360 text: route target / origin for the common types, else hex. */
export function extCommunityString(b: Uint8Array): string {
  const type = b[0]!;
  const sub = b[1]!;
  const name = sub === 2 ? "rt" : sub === 3 ? "ro" : null;
  if (name && (type === 0x00 || type === 0x40)) return `${name}:${u16(b, 2)}:${u32(b, 4)}`;
  if (name && (type === 0x01 || type === 0x41)) return `${name}:${formatIPv4(b, 2)}:${u16(b, 6)}`;
  if (name && (type === 0x02 || type === 0x42)) return `${name}:${u32(b, 2)}:${u16(b, 6)}`;
  return `0x${hex(b)}`;
}

/** Parse "A:B" (or a well-known name) into a 32-bit community. Throws Error on bad input. */
export function parseCommunity(s: string): number {
  const named: Record<string, number> = {
    "no-export": 0xffffff01,
    "no-advertise": 0xffffff02,
    "no-export-subconfed": 0xffffff03,
    "no-peer": 0xffffff04,
    "graceful-shutdown": 0xffff029a,
    blackhole: 0xffff029b,
    "llgr-stale": LLGR_STALE,
    "no-llgr": NO_LLGR,
  };
  if (named[s] !== undefined) return named[s]!;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(s);
  if (!m || Number(m[1]) > 65535 || Number(m[2]) > 65535) {
    throw new Error(`invalid community "${s}": expected A:B with A and B in 0..65535`);
  }
  return ((Number(m[1]) << 16) | Number(m[2])) >>> 0;
}

export function parseLargeCommunity(s: string): [number, number, number] {
  const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(s);
  const ok = m && [m[1], m[2], m[3]].every((x) => Number(x) <= 0xffffffff);
  if (!m || !ok) throw new Error(`invalid large community "${s}": expected A:B:C with each part in 0..4294967295`);
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/**
 * Split the attribute section into raw attributes. A framing error (an
 * attribute overrunning the section, or leftover bytes too short for a header)
 * is RFC 7606 §4 treat-as-withdraw: returned in `overrun`, with the attributes
 * read before it.
 */
export function splitAttributes(buf: Uint8Array, start: number, end: number): { attrs: RawAttr[]; overrun: string | null } {
  const attrs: RawAttr[] = [];
  let o = start;
  while (o < end) {
    if (end - o < 3) return { attrs, overrun: `${end - o} stray bytes at the end of the attributes` };
    const flags = buf[o]!;
    const type = buf[o + 1]!;
    const ext = (flags & FLAG.EXTENDED) !== 0;
    if (ext && end - o < 4) return { attrs, overrun: `truncated header of ${attrName(type)}` };
    const len = ext ? u16(buf, o + 2) : buf[o + 2]!;
    const vs = o + (ext ? 4 : 3);
    if (vs + len > end) return { attrs, overrun: `${attrName(type)} length ${len} overruns the attributes` };
    attrs.push({ flags, type, value: buf.subarray(vs, vs + len) });
    o = vs + len;
  }
  return { attrs, overrun: null };
}

function updErr(sub: number, msg: string, a?: RawAttr): BgpError {
  let data: Uint8Array | undefined;
  if (a) {
    const w = new Writer(a.value.length + 4);
    writeAttr(w, a.flags, a.type, a.value, (a.flags & FLAG.EXTENDED) !== 0);
    data = w.finish();
  }
  return new BgpError(ERR.UPDATE, sub, msg, data);
}

/**
 * Decode the non-MP attributes. Throws BgpError only for errors that require
 * a session reset (an unrecognised well-known attribute). Other problems are
 * collected in `issues`; the caller applies treat-as-withdraw when any issue
 * says so.
 */
export function decodeAttributes(raw: RawAttr[], ctx: AttrContext, issues: AttrIssue[]): PathAttributes {
  const a = beginSet();
  for (let i = 0; i < raw.length; i++) {
    const r = raw[i]!;
    if (!isMp(r.type)) decodeOne(a, r.flags, r.type, r.value, 0, r.value.length, ctx, issues);
  }
  return endSet(a, ctx, issues);
}

/**
 * Decode the non-MP attributes found by the last `scanAttributes(buf, …)`
 * straight from the message buffer (no per-attribute views).
 */
export function decodeScannedAttributes(buf: Uint8Array, n: number, ctx: AttrContext, issues: AttrIssue[]): PathAttributes {
  const a = beginSet();
  for (let i = 0; i < n; i++) {
    const j = i * SCAN_STRIDE;
    const type = scan[j + 1]!;
    if (isMp(type)) continue;
    const flags = scan[j]!;
    decodeOne(a, flags, type, buf, scan[j + 2]! + (flags & FLAG.EXTENDED ? 4 : 3), scan[j + 3]!, ctx, issues);
  }
  return endSet(a, ctx, issues);
}

/** Attribute types seen in the current decode: `seenMark[type] === seenGen`. */
const seenMark = new Uint32Array(256);
let seenGen = 0;
/** AS4_PATH and AS4_AGGREGATOR of the set being decoded: merged at its end (RFC 6793). */
let as4Path: AsPath | null = null;
let as4Agg: { asn: number; address: string } | null = null;

/*
 * The decoder proper: beginSet, decodeOne per attribute (flags, type, and
 * the value as bytes [s, e) of b), endSet. Per-attribute RFC 7606 handling.
 * Plain functions over module state, no closures: a decoder that made
 * accessor or reporting closures cost nine functions and three scope
 * objects per UPDATE, and every UPDATE of a new set comes through here.
 * A set's lists start as the shared frozen empty list and get an array of
 * their exact size when the attribute is there.
 */
function beginSet(): PathAttributes {
  const a = emptyAttributes(EMPTY_LIST);
  if (++seenGen === 0xffffffff) {
    seenMark.fill(0);
    seenGen = 1;
  }
  as4Path = null;
  as4Agg = null;
  return a;
}

function withdraw(issues: AttrIssue[], attr: number, reason: string): void {
  issues.push({ action: "treat-as-withdraw", attr, reason });
}

function discard(issues: AttrIssue[], attr: number, reason: string): void {
  issues.push({ action: "attribute-discard", attr, reason });
}

/** A confederation segment in the path. */
function hasConfed(p: AsPath): boolean {
  for (let k = 0; k < p.length; k += 2 + p[k + 1]!) if (p[k] === SEG.AS_CONFED_SEQUENCE || p[k] === SEG.AS_CONFED_SET) return true;
  return false;
}

/** A large community already in the list (RFC 8092 §3: redundant values are removed); a Set past 16 values. */
function seenLarge(list: [number, number, number][], dup: Set<string> | null, x: number, y: number, z: number): boolean {
  if (dup !== null) {
    const k = `${x}:${y}:${z}`;
    if (dup.has(k)) return true;
    dup.add(k);
    return false;
  }
  for (let i = 0; i < list.length; i++) {
    const l = list[i]!;
    if (l[0] === x && l[1] === y && l[2] === z) return true;
  }
  return false;
}

function decodeOne(a: PathAttributes, flags: number, type: number, b: Uint8Array, s: number, e: number, ctx: AttrContext, issues: AttrIssue[]): void {
  const vlen = e - s;
  if (seenMark[type] === seenGen) {
    discard(issues, type, `duplicate ${attrName(type)} ignored`);
    return;
  }
  seenMark[type] = seenGen;
  const expected = EXPECTED_FLAGS[type];
  if (expected === undefined) {
    if (!(flags & FLAG.OPTIONAL)) {
      throw updErr(UPDATE_SUB.UNRECOGNIZED_WELL_KNOWN, `unrecognized well-known attribute ${type}`, { flags, type, value: b.subarray(s, e) });
    }
    if (flags & FLAG.TRANSITIVE) {
      if (a.unknown === EMPTY_LIST) a.unknown = [];
      a.unknown.push({ flags, type, value: b.slice(s, e) });
    }
    return;
  }
  if ((flags & (FLAG.OPTIONAL | FLAG.TRANSITIVE)) !== expected) {
    withdraw(issues, type, `${attrName(type)} has wrong flags 0x${flags.toString(16)}`);
    return;
  }
  if (flags & FLAG.PARTIAL && expected === (FLAG.OPTIONAL | FLAG.TRANSITIVE)) (a.partial ??= []).push(type);
  const asLen: 2 | 4 = ctx.fourOctetAs ? 4 : 2;
  switch (type) {
    case ATTR.ORIGIN:
      if (vlen !== 1) withdraw(issues, type, `ORIGIN length ${vlen}`);
      else if (b[s]! > 2) withdraw(issues, type, `invalid ORIGIN ${b[s]}`);
      else a.origin = b[s]!;
      break;
    case ATTR.AS_PATH: {
      const p = parseAsPath(b, asLen, s, e);
      if (!p) withdraw(issues, type, "malformed AS_PATH");
      else if (!ctx.ibgp && hasConfed(p)) withdraw(issues, type, "AS_PATH with confederation segments from an external peer");
      else if (asPathHas(p, 0)) withdraw(issues, type, "AS_PATH contains AS 0"); // RFC 7607
      else a.asPath = p;
      break;
    }
    case ATTR.NEXT_HOP:
      if (vlen !== 4) withdraw(issues, type, `NEXT_HOP length ${vlen}`);
      else a.nextHop = internNextHop(b, s, e);
      break;
    case ATTR.MED:
      if (vlen !== 4) withdraw(issues, type, `MULTI_EXIT_DISC length ${vlen}`);
      else a.med = u32(b, s);
      break;
    case ATTR.LOCAL_PREF:
      if (!ctx.ibgp) discard(issues, type, "LOCAL_PREF from an external peer ignored");
      else if (vlen !== 4) withdraw(issues, type, `LOCAL_PREF length ${vlen}`);
      else a.localPref = u32(b, s);
      break;
    case ATTR.ATOMIC_AGGREGATE:
      if (vlen !== 0) discard(issues, type, `ATOMIC_AGGREGATE length ${vlen}`);
      else a.atomicAggregate = true;
      break;
    case ATTR.AGGREGATOR: {
      const want = asLen + 4;
      if (vlen !== want) discard(issues, type, `AGGREGATOR length ${vlen}, expected ${want}`);
      else {
        const asn = asLen === 4 ? u32(b, s) : u16(b, s);
        if (asn === 0) discard(issues, type, "AGGREGATOR with AS 0");
        else a.aggregator = { asn, address: formatIPv4(b, s + asLen) };
      }
      break;
    }
    case ATTR.COMMUNITIES:
      // RFC 7606 §7.8: malformed unless the length is a non-zero multiple of 4.
      if (vlen === 0 || vlen % 4 !== 0) withdraw(issues, type, `COMMUNITIES length ${vlen}`);
      else {
        const list = new Array<number>(vlen >> 2);
        for (let k = 0; k < list.length; k++) list[k] = u32(b, s + k * 4);
        a.communities = list;
      }
      break;
    case ATTR.ORIGINATOR_ID:
      if (!ctx.ibgp) discard(issues, type, "ORIGINATOR_ID from an external peer ignored");
      else if (vlen !== 4) withdraw(issues, type, `ORIGINATOR_ID length ${vlen}`);
      else a.originatorId = formatIPv4(b, s);
      break;
    case ATTR.CLUSTER_LIST:
      if (!ctx.ibgp) discard(issues, type, "CLUSTER_LIST from an external peer ignored");
      else if (vlen === 0 || vlen % 4 !== 0) withdraw(issues, type, `CLUSTER_LIST length ${vlen}`);
      else {
        const list = new Array<string>(vlen >> 2);
        for (let k = 0; k < list.length; k++) list[k] = formatIPv4(b, s + k * 4);
        a.clusterList = list;
      }
      break;
    case ATTR.EXTENDED_COMMUNITIES:
      // RFC 7606 §7.14: malformed unless the length is a non-zero multiple of 8.
      if (vlen === 0 || vlen % 8 !== 0) withdraw(issues, type, `EXTENDED_COMMUNITIES length ${vlen}`);
      else {
        const list = new Array<Uint8Array>(vlen >> 3);
        for (let k = 0; k < list.length; k++) list[k] = b.slice(s + k * 8, s + k * 8 + 8);
        a.extCommunities = list;
      }
      break;
    case ATTR.LARGE_COMMUNITY:
      if (vlen === 0 || vlen % 12 !== 0) withdraw(issues, type, `LARGE_COMMUNITY length ${vlen}`);
      else {
        // RFC 8092 §3: a receiver MUST silently remove redundant values.
        const list: [number, number, number][] = [];
        const dup = vlen > 16 * 12 ? new Set<string>() : null;
        for (let o = s; o < e; o += 12) {
          const x = u32(b, o);
          const y = u32(b, o + 4);
          const z = u32(b, o + 8);
          if (!seenLarge(list, dup, x, y, z)) list.push([x, y, z]);
        }
        a.largeCommunities = list;
      }
      break;
    case ATTR.AS4_PATH: {
      if (ctx.fourOctetAs) {
        discard(issues, type, "AS4_PATH from a 4-octet peer ignored");
        break;
      }
      const p = parseAsPath(b, 4, s, e);
      if (!p || asPathHas(p, 0) || hasConfed(p)) discard(issues, type, "malformed AS4_PATH");
      else as4Path = p;
      break;
    }
    case ATTR.AS4_AGGREGATOR:
      if (ctx.fourOctetAs) discard(issues, type, "AS4_AGGREGATOR from a 4-octet peer ignored");
      else if (vlen !== 8 || u32(b, s) === 0) discard(issues, type, `malformed AS4_AGGREGATOR (length ${vlen})`);
      else as4Agg = { asn: u32(b, s), address: formatIPv4(b, s + 4) };
      break;
    case ATTR.OTC:
      if (vlen !== 4) withdraw(issues, type, `OTC length ${vlen}`);
      else a.otc = u32(b, s);
      break;
  }
}

function endSet(a: PathAttributes, ctx: AttrContext, issues: AttrIssue[]): PathAttributes {
  // RFC 6793 §4.2.3: "When both of the attributes are received" (AGGREGATOR and
  // AS4_AGGREGATOR), a non-AS_TRANS AGGREGATOR means AS4_AGGREGATOR and AS4_PATH
  // are ignored; with only one of them there is nothing to choose between.
  if (!ctx.fourOctetAs && (as4Path || as4Agg)) {
    if (as4Agg && a.aggregator && a.aggregator.asn !== AS_TRANS) {
      discard(issues, ATTR.AS4_AGGREGATOR, "AS4 attributes ignored: AGGREGATOR is not AS_TRANS");
    } else {
      if (as4Agg && a.aggregator) a.aggregator = as4Agg;
      if (as4Path && a.asPath) a.asPath = mergeAs4Path(a.asPath, as4Path);
    }
  }
  as4Path = null;
  as4Agg = null;
  return a;
}

// Frozen: a decoded set is shared by every route carrying it, so nothing may change it in place.
// A decoded set's absent lists all point to it (five fewer objects per set; a full table has tens of thousands).
const EMPTY_LIST: never[] = Object.freeze([]) as unknown as never[];

export interface DecodedAttrs {
  attrs: PathAttributes;
  issues: AttrIssue[];
}

/** The interning cache `a` is in, if any. */
function cacheOf(a: PathAttributes): AttrCache | null {
  return (a.interned as AttrCache | null | undefined) ?? null;
}

/**
 * The export side's slot of a set (lib/rib/adj-rib-out.ts, EntryMemo): one
 * value kept beside the set's key in its interning cache, gone when the
 * set leaves the cache, so nothing it holds outlives the set there; no
 * field on the set itself (a fifth hidden field measured 2.3 MB more heap
 * for a full table). undefined for a set in no cache: it has no slot.
 */
export function exportSlot(a: PathAttributes): unknown {
  const c = cacheOf(a);
  return c === null ? undefined : c.auxOf(a);
}

/**
 * A number for spreading memos keyed by attribute sets over WeakMaps
 * (lib/core/sharded-maps.ts's WeakShards), from what differs between the
 * sets of a table (AS path, MED, local preference, communities): sets are
 * never changed, so it is the same every time, interned or not (a policy's
 * output sets are not).
 */
export function attrShard(a: PathAttributes): number {
  const p = a.asPath;
  let h = 0;
  if (p !== null && p.length > 0) h = Math.imul(p.length, 0x9e3779b1) ^ Math.imul(p[p.length - 1]!, 0x85ebca6b) ^ p[p.length >> 1]!;
  h = Math.imul(h ^ (a.med ?? 0), 0x01000193) ^ (a.localPref ?? 0);
  const c = a.communities;
  if (c.length > 0) h = Math.imul(h ^ c.length, 0x01000193) ^ c[c.length - 1]!;
  return h ^ (h >>> 15) ^ (h >>> 23);
}

/** Set the export side's slot of a set in a cache (exportSlot is not undefined). */
export function setExportSlot(a: PathAttributes, v: unknown): void {
  cacheOf(a)!.setAuxOf(a, v);
}

/**
 * A route holding `a` was stored (in an Adj-RIB-In): an interned set stays
 * in its cache while any route holds it. Sets that were not interned are
 * ignored.
 */
export function holdAttributes(a: PathAttributes): void {
  if (cacheOf(a) !== null) a.internRefs!++;
}

/** A route holding `a` left; the last one takes the set out of its cache. */
export function releaseAttributes(a: PathAttributes): void {
  const c = cacheOf(a);
  if (c !== null && --a.internRefs! <= 0) c.drop(a);
}

/**
 * The receiver is done with an UPDATE whose attributes are `a`: a set no
 * route holds (nothing was stored with it) leaves its cache now.
 */
export function settleAttributes(a: PathAttributes | null): void {
  if (a === null) return;
  const c = cacheOf(a);
  if (c !== null && a.internRefs! <= 0) c.drop(a);
}

/**
 * Layout of the attribute scan table filled by `scanAttributes`: four ints
 * per attribute (flags, type, offset of the attribute header, offset just
 * past its value).
 */
export const SCAN_STRIDE = 4;
let scan = new Int32Array(64 * SCAN_STRIDE);

/**
 * Walk the attribute headers of [start, end) into the shared scan table
 * without allocating. Returns the number of attributes, or -1 when the
 * section does not frame exactly (RFC 7606 §4: use splitAttributes to learn why).
 * The table is valid until the next call.
 */
export function scanAttributes(buf: Uint8Array, start: number, end: number): number {
  scannedBuf = null; // a new scan: the last lookupScan's hash is not its
  let n = 0;
  let o = start;
  while (o < end) {
    if (end - o < 3) return -1;
    const flags = buf[o]!;
    const ext = (flags & FLAG.EXTENDED) !== 0;
    if (ext && end - o < 4) return -1;
    const len = ext ? (buf[o + 2]! << 8) | buf[o + 3]! : buf[o + 2]!;
    const ve = o + (ext ? 4 : 3) + len;
    if (ve > end) return -1;
    if ((n + 1) * SCAN_STRIDE > scan.length) {
      const bigger = new Int32Array(scan.length * 2);
      bigger.set(scan);
      scan = bigger;
    }
    const i = n * SCAN_STRIDE;
    scan[i] = flags;
    scan[i + 1] = buf[o + 1]!;
    scan[i + 2] = o;
    scan[i + 3] = ve;
    n++;
    o = ve;
  }
  return n;
}

/** The scan table (see SCAN_STRIDE) as last filled by scanAttributes. */
export function scanTable(): Int32Array {
  return scan;
}

function isMp(type: number): boolean {
  return type === ATTR.MP_REACH_NLRI || type === ATTR.MP_UNREACH_NLRI;
}

/** Where insertScan gathers a key's bytes when an MP attribute splits them. */
let keyScratch = new Uint8Array(256);

function fnv(h: number, buf: Uint8Array, s: number, e: number): number {
  for (let i = s; i < e; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  return h >>> 0;
}

/**
 * The arena whose keys keyMatchesScan and keyMatchesBytes read: the cache
 * doing the lookup sets it first (module state, as the scan table is: an
 * equality test for the index takes one argument, and a closure per lookup
 * would cost an object).
 */
let lookupArena: KeyArena<PathAttributes> | null = null;

/** Whether a cached set's key is the non-MP attribute bytes of the last scan of `buf` (scanned: its attribute count). */
function keyMatchesScan(a: PathAttributes, buf: Uint8Array): boolean {
  const arena = lookupArena!;
  const h = a.internKey!;
  const key = arena.bytes(h);
  let k = arena.start(h);
  const end = k + arena.length(h);
  for (let i = 0; i < scanned; i++) {
    const j = i * SCAN_STRIDE;
    if (isMp(scan[j + 1]!)) continue;
    const e = scan[j + 3]!;
    if (k + e - scan[j + 2]! > end) return false;
    for (let o = scan[j + 2]!; o < e; o++) if (key[k++] !== buf[o]) return false;
  }
  return k === end;
}
/** The attribute count keyMatchesScan reads the scan table for; the buffer and hash of the last lookupScan. */
let scanned = 0;
let scannedBuf: Uint8Array | null = null;
let scannedHash = 0;

function keyMatchesBytes(a: PathAttributes, bytes: Uint8Array): boolean {
  const arena = lookupArena!;
  const h = a.internKey!;
  const n = arena.length(h);
  if (n !== bytes.length) return false;
  const key = arena.bytes(h);
  const s = arena.start(h);
  for (let i = 0; i < n; i++) if (key[s + i] !== bytes[i]) return false;
  return true;
}

/** A set's key moved in its arena (compaction). */
function keyMoved(a: PathAttributes, h: number): void {
  a.internKey = h;
}

/**
 * Cache of decoded attribute sets, keyed by the raw bytes of the non-MP
 * attributes (hash, then a byte compare). A full table with few distinct
 * attribute sets costs one parse per distinct set; a lookup allocates
 * nothing. What the cache keeps of a set (its key's handle, its count of
 * holders, its decoding issues) is in the set's own hidden fields (see
 * PathAttributes), and the sets are found through a HashIndex: about 190
 * bytes per set fewer than an entry object in a JavaScript Map. The keys'
 * bytes are in the cache's KeyArena (lib/core/key-arena.ts), not a string
 * per set.
 *
 * Two kinds:
 * - bounded (`new AttrCache(limit)`, for MRT files): holds what it decoded,
 *   cleared when it reaches `limit` entries;
 * - interning (`sharedAttrCache`, for sessions): one per decoding context
 *   for the whole daemon, so every session sending the same attributes
 *   shares one object. Reference-counted, never wiped: the Adj-RIB-Ins
 *   count the routes holding each set (holdAttributes/releaseAttributes),
 *   and a set leaves when the last one goes, or, when nothing stored it,
 *   once its UPDATE was handled (settleAttributes). No weak reference or
 *   finalizer per set (they cost about 200 bytes each in JavaScriptCore).
 */
export class AttrCache {
  private index = new HashIndex<PathAttributes>();
  /** The sets' keys (a set's `internKey` is its handle here). */
  private keys = new KeyArena<PathAttributes>(keyMoved);
  constructor(
    readonly limit = 200_000,
    readonly interning = false,
  ) {}

  get size(): number {
    return this.index.size;
  }

  /** Bytes of the sets' keys held (see KeyArena: the chunks hold at most four times this plus one chunk). */
  get keyBytes(): number {
    return this.keys.liveBytes;
  }

  /** Bytes of the chunks holding the keys. */
  get keyChunkBytes(): number {
    return this.keys.chunkBytes;
  }

  /** The value kept beside a set of this cache's key (exportSlot); null when none. */
  auxOf(a: PathAttributes): unknown {
    return this.keys.aux(a.internKey!);
  }

  /** Keep `v` beside a set of this cache's key, until the set leaves. */
  setAuxOf(a: PathAttributes, v: unknown): void {
    this.keys.setAux(a.internKey!, v);
  }

  /** Take `a` out (idempotent). */
  drop(a: PathAttributes): void {
    if (a.interned !== this) return;
    a.interned = null;
    const h = a.internKey!;
    const start = this.keys.start(h);
    this.index.remove(fnv(0x811c9dc5, this.keys.bytes(h), start, start + this.keys.length(h)), a);
    this.keys.free(h);
    a.internKey = null;
  }

  private hashScan(buf: Uint8Array, n: number): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < n; i++) {
      const j = i * SCAN_STRIDE;
      if (!isMp(scan[j + 1]!)) h = fnv(h, buf, scan[j + 2]!, scan[j + 3]!);
    }
    return h;
  }

  /** Add `a` under hash `h`, its key bytes [from, to) of `src`. */
  private put(h: number, src: Uint8Array, from: number, to: number, a: PathAttributes, issues: AttrIssue[]): void {
    if (!this.interning && this.index.size >= this.limit) {
      this.index.clear();
      this.keys.clear();
    }
    // Its key and issues are the set's own fields: a set belongs to one cache (decoded by it), never two.
    if (a.internKey != null) throw new Error("attribute cache: this set is already in a cache");
    a.internKey = this.keys.add(a, src, from, to);
    a.internIssues = issues.length ? issues : NO_ISSUES;
    if (this.interning) a.interned = this;
    this.index.add(h, a);
  }

  /** Look up the non-MP attributes of the last scan of `buf` (n attributes); their issues: cachedIssues. */
  lookupScan(buf: Uint8Array, n: number): PathAttributes | undefined {
    scanned = n;
    scannedBuf = buf;
    scannedHash = this.hashScan(buf, n);
    lookupArena = this.keys;
    const hit = this.index.find(scannedHash, keyMatchesScan, buf);
    if (hit !== undefined) scannedBuf = null; // (no insert follows: the message is not kept for one)
    return hit;
  }

  /** Add the set decoded from the last scan of `buf` (n attributes), usually after a lookupScan of it missed (its hash is reused). */
  insertScan(buf: Uint8Array, n: number, attrs: PathAttributes, issues: AttrIssue[]): void {
    const h = buf === scannedBuf && n === scanned ? scannedHash : this.hashScan(buf, n);
    scannedBuf = null;
    // The non-MP attributes: one run of `buf` unless an MP attribute sits between them, then gathered into one.
    let from = -1;
    let to = -1;
    let runs = 0;
    let len = 0;
    for (let i = 0; i < n; i++) {
      const j = i * SCAN_STRIDE;
      if (isMp(scan[j + 1]!)) continue;
      if (scan[j + 2]! !== to) runs++;
      if (from < 0) from = scan[j + 2]!;
      to = scan[j + 3]!;
      len += to - scan[j + 2]!;
    }
    if (runs <= 1) {
      this.put(h, buf, from < 0 ? 0 : from, from < 0 ? 0 : to, attrs, issues);
      return;
    }
    if (keyScratch.length < len) keyScratch = new Uint8Array(Math.max(len, keyScratch.length * 2));
    let k = 0;
    for (let i = 0; i < n; i++) {
      const j = i * SCAN_STRIDE;
      if (isMp(scan[j + 1]!)) continue;
      k = copyInto(keyScratch, k, buf, scan[j + 2]!, scan[j + 3]!);
    }
    this.put(h, keyScratch, 0, len, attrs, issues);
  }

  /** Look up by a plain byte string (e.g. the attributes of an MRT RIB entry); its issues: cachedIssues. */
  get(bytes: Uint8Array): PathAttributes | undefined {
    lookupArena = this.keys;
    return this.index.find(fnv(0x811c9dc5, bytes, 0, bytes.length), keyMatchesBytes, bytes);
  }

  set(bytes: Uint8Array, value: DecodedAttrs): void {
    this.put(fnv(0x811c9dc5, bytes, 0, bytes.length), bytes, 0, bytes.length, value.attrs, value.issues);
  }
}

/** What decoding a cached set found (a lookup returns the set alone: no object per hit). */
export function cachedIssues(a: PathAttributes): AttrIssue[] {
  return a.internIssues ?? NO_ISSUES;
}

/**
 * No issues: frozen, as the decoder's own empty list (lib/bgp/update.ts) is,
 * so that the loop over a message's issues always sees one kind of array (a
 * plain one here made JSC's optimised decodeUpdate fail its array
 * speculation and be compiled again).
 */
const NO_ISSUES: AttrIssue[] = Object.freeze([]) as unknown as AttrIssue[];

const shared: AttrCache[] = [];

/**
 * The daemon-wide weak attribute cache for one decoding context (4-octet AS
 * or not, iBGP or not: the same bytes decode differently across them).
 */
export function sharedAttrCache(ctx: AttrContext): AttrCache {
  const i = (ctx.fourOctetAs ? 1 : 0) + (ctx.ibgp ? 2 : 0);
  return (shared[i] ??= new AttrCache(Infinity, true));
}

// ---------------------------------------------------------------- encoding

export function writeAttr(w: Writer, flags: number, type: number, value: Uint8Array, forceExtended = false): void {
  const ext = forceExtended || value.length > 255;
  w.u8(ext ? flags | FLAG.EXTENDED : flags & ~FLAG.EXTENDED).u8(type);
  if (ext) w.u16(value.length);
  else w.u8(value.length);
  w.bytes(value);
}

/**
 * Encode a set of attributes (without MP_REACH/MP_UNREACH) in type order,
 * with `extra` raw attributes (MP_REACH_NLRI, MP_UNREACH_NLRI) put in by
 * type. For a 2-octet session, 4-octet ASNs become AS_TRANS with AS4_PATH /
 * AS4_AGGREGATOR carrying the real values (RFC 6793 §4.2.2).
 */
export function encodeAttributes(a: PathAttributes, fourOctetAs: boolean, extra: readonly RawAttr[] = [], markPartial = true): Uint8Array {
  const w = setScratch;
  w.len = 0;
  writeAttributeSet(w, a, fourOctetAs, markPartial, true, extra);
  return w.buf.slice(0, w.len);
}

/**
 * A set's attributes in wire form, NEXT_HOP left out, in three blocks by
 * type, one after the other in `bytes`: below NEXT_HOP (ORIGIN, AS_PATH) up
 * to `lowEnd`, between NEXT_HOP and MP_REACH_NLRI (MED ... CLUSTER_LIST) up
 * to `midEnd`, above MP_UNREACH_NLRI (extended and large communities,
 * AS4_PATH, unknown ones ...) to the end. An UPDATE is these blocks with
 * its NEXT_HOP or MP_REACH_NLRI put in between, in type order.
 */
export interface AttributeBlocks {
  readonly bytes: Uint8Array;
  readonly lowEnd: number;
  readonly midEnd: number;
}

/** Per session kind (4-octet AS, Partial bit marked: index fourOctetAs + 2 * markPartial), set object → its blocks. */
const blockCaches = [0, 1, 2, 3].map(() => new WeakMap<PathAttributes, AttributeBlocks>());

/**
 * The blocks of `a` (its NEXT_HOP aside), cached per set object and session
 * kind, so that the same set sent in many UPDATEs, or to many peers, is
 * encoded once (one buffer per set).
 */
export function attributeBlocks(a: PathAttributes, fourOctetAs: boolean, markPartial = true): AttributeBlocks {
  const cache = blockCaches[(fourOctetAs ? 1 : 0) + (markPartial ? 2 : 0)]!;
  const hit = cache.get(a);
  if (hit !== undefined) return hit;
  const b = encodeAttributeBlocks(a, fourOctetAs, markPartial);
  cache.set(a, b);
  return b;
}

/** The blocks of `a` (its NEXT_HOP aside), encoded afresh (nothing cached). */
export function encodeAttributeBlocks(a: PathAttributes, fourOctetAs: boolean, markPartial = true): AttributeBlocks {
  const w = setScratch;
  w.len = 0;
  writeAttributeSet(w, a, fourOctetAs, markPartial, false, NO_RAW);
  return { bytes: w.buf.slice(0, w.len), lowEnd: setLow, midEnd: setMid };
}

/** Where sets are encoded (then copied out). */
const setScratch = new Writer(512);
const NO_RAW: readonly RawAttr[] = [];

// The state of one writeAttributeSet: its writer, the raw attributes still to merge in, and the block ends found.
let setW: Writer = setScratch;
let setOthers: readonly RawAttr[] = NO_RAW;
let setNext = 0;
let setStart = 0;
let setLow = -1;
let setMid = -1;

/**
 * Write `a`'s attributes into `w` in type order, in one pass (no value
 * buffers, no sort): the known ones from their fields, the unknown ones and
 * `extra` merged in by type; NEXT_HOP only when `withNextHop`. Leaves the
 * block ends (see AttributeBlocks, from where it started) in setLow/setMid.
 */
function writeAttributeSet(w: Writer, a: PathAttributes, fourOctetAs: boolean, markPartial: boolean, withNextHop: boolean, extra: readonly RawAttr[]): void {
  setW = w;
  setStart = w.len;
  setLow = -1;
  setMid = -1;
  setNext = 0;
  setOthers = a.unknown.length === 0 && extra.length === 0 ? NO_RAW : otherAttrs(a, extra, markPartial);
  const asLen = fourOctetAs ? 4 : 2;
  if (a.origin !== null) {
    head(a, FLAG.TRANSITIVE, ATTR.ORIGIN, 1);
    w.u8(a.origin);
  }
  let as4 = false;
  if (a.asPath !== null) {
    head(a, FLAG.TRANSITIVE, ATTR.AS_PATH, asPathBytes(a.asPath, asLen, false));
    as4 = writeAsPath(w, a.asPath, asLen, false);
  }
  if (withNextHop && a.nextHop !== null) {
    head(a, FLAG.TRANSITIVE, ATTR.NEXT_HOP, a.nextHop.length);
    w.bytes(a.nextHop);
  }
  if (a.med !== null) {
    head(a, FLAG.OPTIONAL, ATTR.MED, 4);
    w.u32(a.med);
  }
  if (a.localPref !== null) {
    head(a, FLAG.TRANSITIVE, ATTR.LOCAL_PREF, 4);
    w.u32(a.localPref);
  }
  if (a.atomicAggregate) head(a, FLAG.TRANSITIVE, ATTR.ATOMIC_AGGREGATE, 0);
  if (a.aggregator !== null) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.AGGREGATOR, asLen + 4);
    if (fourOctetAs) w.u32(a.aggregator.asn);
    else w.u16(a.aggregator.asn > 0xffff ? AS_TRANS : a.aggregator.asn);
    writeIPv4(w, a.aggregator.address);
  }
  if (a.communities.length) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.COMMUNITIES, a.communities.length * 4);
    for (const c of a.communities) w.u32(c);
  }
  if (a.originatorId !== null) {
    head(a, FLAG.OPTIONAL, ATTR.ORIGINATOR_ID, 4);
    writeIPv4(w, a.originatorId);
  }
  if (a.clusterList.length) {
    head(a, FLAG.OPTIONAL, ATTR.CLUSTER_LIST, a.clusterList.length * 4);
    for (const c of a.clusterList) writeIPv4(w, c);
  }
  if (a.extCommunities.length) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.EXTENDED_COMMUNITIES, a.extCommunities.length * 8);
    for (const c of a.extCommunities) w.bytes(c);
  }
  if (as4) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.AS4_PATH, asPathBytes(a.asPath!, 4, true));
    writeAsPath(w, a.asPath!, 4, true);
  }
  if (!fourOctetAs && a.aggregator !== null && a.aggregator.asn > 0xffff) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.AS4_AGGREGATOR, 8);
    w.u32(a.aggregator.asn);
    writeIPv4(w, a.aggregator.address);
  }
  if (a.largeCommunities.length) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.LARGE_COMMUNITY, a.largeCommunities.length * 12);
    for (const l of a.largeCommunities) w.u32(l[0]).u32(l[1]).u32(l[2]);
  }
  if (a.otc !== null) {
    head(a, FLAG.OPTIONAL | FLAG.TRANSITIVE, ATTR.OTC, 4);
    w.u32(a.otc);
  }
  reach(256);
}

/**
 * The unknown attributes and `extra`, by type. Unknown transitive ones are
 * passed on with the Partial bit set (RFC 4271 §5); the four low-order flag
 * bits MUST be zero when sent (RFC 4271 §4.3).
 */
function otherAttrs(a: PathAttributes, extra: readonly RawAttr[], markPartial: boolean): RawAttr[] {
  const out: RawAttr[] = [];
  for (const u of a.unknown) out.push({ flags: (markPartial ? u.flags | FLAG.PARTIAL : u.flags) & 0xf0, type: u.type, value: u.value });
  for (const x of extra) out.push(x);
  return out.sort((x, y) => x.type - y.type);
}

/** Write the merged-in attributes of a type below `type`, and note where the blocks end. */
function reach(type: number): void {
  const o = setOthers;
  while (setNext < o.length && o[setNext]!.type < type) {
    const x = o[setNext++]!;
    mark(x.type);
    writeAttr(setW, x.flags, x.type, x.value);
  }
  mark(type);
}

function mark(type: number): void {
  if (setLow < 0 && type > ATTR.NEXT_HOP) setLow = setW.len - setStart;
  if (setMid < 0 && type > ATTR.MP_UNREACH_NLRI) setMid = setW.len - setStart;
}

/** An attribute's header (extended length only when needed), after whatever comes before its type. */
function head(a: PathAttributes, flags: number, type: number, len: number): void {
  reach(type);
  // A recognised optional transitive attribute received with Partial keeps it (RFC 4271 §5).
  if (flags === (FLAG.OPTIONAL | FLAG.TRANSITIVE) && a.partial?.includes(type)) flags |= FLAG.PARTIAL;
  const w = setW;
  if (len > 255) w.u8(flags | FLAG.EXTENDED).u8(type).u16(len);
  else w.u8(flags & ~FLAG.EXTENDED).u8(type).u8(len);
}

/** Whether an AS path segment goes into AS4_PATH (RFC 6793 §4.2.2: no confederation segments). */
function inAs4Path(type: number): boolean {
  return type === SEG.AS_SEQUENCE || type === SEG.AS_SET;
}

/** Encoded size of an AS path (AS4_PATH: its segments only); a segment over 255 ASes is written as several. */
function asPathBytes(p: AsPath, asLen: number, as4Only: boolean): number {
  let n = 0;
  for (let k = 0; k < p.length; k += 2 + p[k + 1]!) {
    if (as4Only && !inAs4Path(p[k]!)) continue;
    const c = p[k + 1]!;
    n += Math.ceil(c / 255) * 2 + c * asLen;
  }
  return n;
}

/** Write an AS path; returns whether a 2-octet encoding replaced any ASN by AS_TRANS. */
function writeAsPath(w: Writer, p: AsPath, asLen: number, as4Only: boolean): boolean {
  let trans = false;
  for (let k = 0; k < p.length; k += 2 + p[k + 1]!) {
    const type = p[k]!;
    const c = p[k + 1]!;
    if (as4Only && !inAs4Path(type)) continue;
    for (let i = 0; i < c; i += 255) {
      const end = Math.min(c, i + 255);
      w.u8(type).u8(end - i);
      for (let j = i; j < end; j++) {
        const asn = p[k + 2 + j]!;
        if (asLen === 4) w.u32(asn);
        else if (asn > 0xffff) {
          w.u16(AS_TRANS);
          trans = true;
        } else w.u16(asn);
      }
    }
  }
  return trans;
}

/** Write a dotted-quad IPv4 address as four bytes. */
function writeIPv4(w: Writer, s: string): void {
  let v = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      w.u8(v);
      v = 0;
    } else v = v * 10 + (c - 48);
  }
  w.u8(v);
}

export function originName(o: number | null): string {
  return o === null ? "?" : (ORIGIN_NAMES[o] ?? String(o));
}

export { WELL_KNOWN };
