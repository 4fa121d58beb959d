/**
 * The policy engine: import and export filters of the RIB.
 *
 * `compilePolicies` turns the configured policies and prefix lists (plain data
 * from lib/rib/policy-types.ts) into matchers once: prefixes pre-parsed into
 * address words and length ranges, communities into numbers, AS path regular
 * expressions compiled, next hops and neighbours into bytes. Anything invalid
 * throws an Error naming the policy and term (or the prefix list and entry).
 *
 * `applyPolicy` evaluates a peer's PolicyRef (undefined = the RFC 8212
 * default, "all", "none", or a chain of policies) for one route:
 *   - terms run in order; a term matches when every present condition holds
 *     (inside a list, any entry); a matching term applies its `set`, then its
 *     action accept/reject ends the whole chain; without an action evaluation
 *     goes on with the next term, seeing the attributes as modified so far;
 *   - a policy that ends without a verdict hands over to the next policy of
 *     the chain; after the last one, that (last) policy's `default` applies.
 *
 * Attribute sets are interned and shared, so they are never mutated: `set`
 * works copy-on-write, and each set step is memoised per input attribute
 * object (`AttrMemo`, weak, on the compiled term), so a policy that sets something on
 * a million routes sharing one attribute set yields one shared output object.
 * When nothing changes, the very same `attrs` object is returned. Evaluating
 * a policy that matches nothing allocates nothing but the result object (and
 * not even that when the caller passes one to reuse).
 */
import { type AsPath, type PathAttributes, asPathString, attrShard, parseCommunity, parseLargeCommunity, prependAs } from "../bgp/attributes.ts";
import { WeakShards } from "../core/sharded-maps.ts";
import { formatAddr, parseAddr, parsePrefix } from "../core/addr.ts";
import { type Prefix } from "../core/addr.ts";
import type { CommunitySet, Policy, PolicyRef, PolicyTerm, PrefixMatch } from "./policy-types.ts";
export type { PolicyRef };
import { type Route, familyOfKey } from "./types.ts";

// ---------------------------------------------------------------- public types

/** What the policy needs to know about the session it runs for. */
export interface PolicyContext {
  direction: "import" | "export";
  /** Our AS on this session (what `asPathPrepend` prepends). */
  localAs: number;
  /** The peer's address (for messages). */
  peerAddress: string;
  /** Our address of the route's family on this session: the value of `nextHop: self` (null: unknown, `self` then leaves the next hop alone). */
  localAddress: Uint8Array | null;
}

/** The verdict on one route. */
export interface PolicyResult {
  accept: boolean;
  /** Attributes after the `set`s applied (the input object itself when nothing changed). */
  attrs: PathAttributes;
  /** Next hop after the `set`s (the route's own next hop object when not set). */
  nextHop: Uint8Array;
  /** Why: "policy P term T: accept", "policy P: default reject", "all", "no export policy (RFC 8212)", ... */
  reason: string;
  /** A term set the next hop (export uses it: eBGP next-hop-self is skipped then). */
  nextHopSet: boolean;
  /** A term set the MED (export uses it: a MED set by policy survives eBGP). */
  medSet: boolean;
}

/** A pre-parsed prefix entry: the prefix as 32-bit words (masked) and the accepted length range. */
export interface CompiledPrefixMatch {
  afi: 1 | 2;
  len: number;
  ge: number;
  le: number;
  /** The prefix's address as four signed 32-bit words (IPv4: only w[0]), host bits zero. */
  words: Int32Array;
  /** Masks of the prefix length per word. */
  masks: Int32Array;
  /** Original text, for `show`. */
  text: string;
}

interface CompiledListEdit<T> {
  replace: T[] | null;
  remove: T[];
  add: T[];
}

interface CompiledSet {
  localPref: number | null;
  med: number | null;
  community: CompiledListEdit<number> | null;
  largeCommunity: CompiledListEdit<[number, number, number]> | null;
  nextHopSelf: boolean;
  nextHop: Uint8Array | null;
  prepend: number;
  /** Whether the set touches the attributes at all (next hop alone does not). */
  touchesAttrs: boolean;
  /** Input attrs → output attrs (sets without prepend). */
  memo: AttrMemo;
  /** Per local AS, for sets with prepend. */
  memoByAs: Map<number, AttrMemo>;
}

/**
 * Input attribute set → output, held weakly, spread over WeakMaps by what
 * differs between sets (attrShard; lib/core/sharded-maps.ts): a full
 * table's 84,000 sets through a policy setting a community grew one WeakMap
 * past 65,536 entries, 17.5 ms for the evaluation that did it.
 */
type AttrMemo = WeakShards<PathAttributes, PathAttributes>;
const attrMemo = (): AttrMemo => new WeakShards(attrShard);

interface CompiledTerm {
  label: string;
  prefix: PrefixSet | null;
  /** One entry per named prefix list; the condition holds when any list matches. */
  prefixLists: PrefixSet[] | null;
  community: Uint32Array | null;
  /** Flat triples. */
  largeCommunity: Float64Array | null;
  asPath: RegExp | null;
  nextHop: Uint8Array[] | null;
  /** Neighbour condition present. */
  neighbor: boolean;
  neighborLocal: boolean;
  neighborAddrs: Uint8Array[];
  neighborTexts: string[];
  family: 0 | 1 | 2;
  /** Route source bits: 1 local, 2 iBGP, 4 eBGP; 0 = no condition. */
  source: number;
  set: CompiledSet | null;
  /** 0: none (continue), 1: accept, 2: reject. */
  action: 0 | 1 | 2;
  acceptReason: string;
  rejectReason: string;
}

interface CompiledPolicy {
  name: string;
  terms: CompiledTerm[];
  defaultAccept: boolean;
  defaultReason: string;
}

/** The result of compilePolicies: opaque to callers, shared by every peer. */
export interface CompiledPolicies {
  readonly policies: ReadonlyMap<string, CompiledPolicy>;
  readonly prefixLists: ReadonlyMap<string, PrefixSet>;
}

// ---------------------------------------------------------------- compile

function fail(where: string, msg: string): never {
  throw new Error(`${where}: ${msg}`);
}

function isUint32(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
}

/**
 * Pre-parse one prefix entry. ge defaults to the prefix length; le to the
 * family maximum (32/128) when ge is given (Cisco/FRR semantics), else the
 * prefix length. Requires len <= ge <= le <= 32/128. `where` prefixes error
 * messages.
 */
export function compilePrefixMatch(m: PrefixMatch, where: string): CompiledPrefixMatch {
  if (!m || typeof m.prefix !== "string") fail(where, "missing prefix");
  let p: Prefix;
  try {
    p = parsePrefix(m.prefix);
  } catch (e) {
    fail(where, (e as Error).message);
  }
  const max = p.afi === 2 ? 128 : 32;
  const ge = m.ge ?? p.len;
  const le = m.le ?? (m.ge !== undefined ? max : p.len);
  for (const [k, v] of [["ge", ge], ["le", le]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max) fail(where, `${m.prefix}: ${k} ${v} must be an integer in 0..${max}`);
  }
  if (ge < p.len) fail(where, `${m.prefix}: ge ${ge} is shorter than the prefix length ${p.len}`);
  if (le < ge) fail(where, `${m.prefix}: le ${le} is smaller than ge ${ge}`);
  const words = new Int32Array(4);
  const masks = new Int32Array(4);
  const nw = p.afi === 2 ? 4 : 1;
  for (let i = 0; i < nw; i++) {
    const bits = Math.max(0, Math.min(32, p.len - i * 32));
    const mask = bits === 0 ? 0 : bits === 32 ? -1 : (~0 << (32 - bits)) | 0;
    const a = p.addr;
    const w = (a[i * 4]! << 24) | (a[i * 4 + 1]! << 16) | (a[i * 4 + 2]! << 8) | a[i * 4 + 3]!;
    words[i] = w & mask;
    masks[i] = mask;
  }
  let text = m.prefix;
  if (m.ge !== undefined) text += ` ge ${ge}`;
  if (m.le !== undefined) text += ` le ${le}`;
  return { afi: p.afi, len: p.len, ge, le, words, masks, text };
}

/** Whether a prefix is matched by a compiled entry (family, length range, leading bits). */
export function prefixMatches(m: CompiledPrefixMatch, p: Prefix): boolean {
  if (p.afi !== m.afi || p.len < m.ge || p.len > m.le) return false;
  const a = p.addr;
  const w0 = (a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!;
  if ((w0 & m.masks[0]!) !== m.words[0]) return false;
  if (m.afi === 1 || m.len <= 32) return true;
  for (let i = 1; i < 4; i++) {
    const mask = m.masks[i]!;
    if (mask === 0) return true;
    const o = i * 4;
    const w = (a[o]! << 24) | (a[o + 1]! << 16) | (a[o + 2]! << 8) | a[o + 3]!;
    if ((w & mask) !== m.words[i]) return false;
  }
  return true;
}

interface TrieNode {
  zero: TrieNode | null;
  one: TrieNode | null;
  /** Entries whose prefix ends at this node. */
  here: CompiledPrefixMatch[] | null;
}

/** Lists up to this size are scanned; longer ones get a binary trie per family. */
const LINEAR_MAX = 8;

/**
 * A set of prefix entries (a prefix list, or a term's inline entries) with a
 * match test. Small sets are scanned in order; larger ones are walked as a
 * bit trie, so the cost is bounded by the prefix length, not the list size.
 */
export class PrefixSet {
  private readonly linear: CompiledPrefixMatch[] | null;
  private readonly roots: (TrieNode | null)[] = [null, null, null];

  constructor(readonly entries: CompiledPrefixMatch[]) {
    if (entries.length <= LINEAR_MAX) {
      this.linear = entries;
      return;
    }
    this.linear = null;
    for (const e of entries) {
      let node = (this.roots[e.afi] ??= { zero: null, one: null, here: null });
      for (let bit = 0; bit < e.len; bit++) {
        const w = e.words[bit >>> 5]!;
        const one = ((w >>> (31 - (bit & 31))) & 1) === 1;
        if (one) node = node.one ??= { zero: null, one: null, here: null };
        else node = node.zero ??= { zero: null, one: null, here: null };
      }
      (node.here ??= []).push(e);
    }
  }

  matches(p: Prefix): boolean {
    const lin = this.linear;
    if (lin !== null) {
      for (let i = 0; i < lin.length; i++) if (prefixMatches(lin[i]!, p)) return true;
      return false;
    }
    let node = this.roots[p.afi] ?? null;
    const a = p.addr;
    const len = p.len;
    for (let bit = 0; node !== null; bit++) {
      const here = node.here;
      if (here !== null) {
        for (let i = 0; i < here.length; i++) {
          const e = here[i]!;
          if (len >= e.ge && len <= e.le) return true;
        }
      }
      if (bit >= len) return false;
      node = (a[bit >>> 3]! >>> (7 - (bit & 7))) & 1 ? node.one : node.zero;
    }
    return false;
  }
}

function compileEdit<T>(
  s: CommunitySet,
  parse: (x: string) => T,
  eq: (a: T, b: T) => boolean,
  where: string,
  what: string,
): CompiledListEdit<T> {
  if (typeof s !== "object" || s === null) fail(where, `set.${what} must be an object with add/remove/replace`);
  const conv = (xs: string[] | undefined, k: string): T[] => {
    if (xs === undefined) return [];
    if (!Array.isArray(xs)) fail(where, `set.${what}.${k} must be a list`);
    const out: T[] = [];
    for (const x of xs) {
      let v: T;
      try {
        v = parse(x);
      } catch (e) {
        fail(where, `set.${what}.${k}: ${(e as Error).message}`);
      }
      if (!out.some((y) => eq(y, v))) out.push(v);
    }
    return out;
  };
  return { replace: s.replace !== undefined ? conv(s.replace, "replace") : null, remove: conv(s.remove, "remove"), add: conv(s.add, "add") };
}

function parseAddrOrFail(s: string, where: string, what: string): Uint8Array {
  const a = typeof s === "string" ? parseAddr(s) : null;
  if (!a) fail(where, `${what}: "${s}" is not an IP address`);
  return a.addr;
}

function compileTerm(policy: string, t: PolicyTerm, i: number, lists: Map<string, PrefixSet>): CompiledTerm {
  const label = t?.name ? `"${t.name}"` : `#${i + 1}`;
  const where = `policy "${policy}" term ${label}`;
  if (typeof t !== "object" || t === null) fail(where, "not an object");
  const m = t.match ?? {};
  const term: CompiledTerm = {
    label,
    prefix: null,
    prefixLists: null,
    community: null,
    largeCommunity: null,
    asPath: null,
    nextHop: null,
    neighbor: false,
    neighborLocal: false,
    neighborAddrs: [],
    neighborTexts: [],
    family: 0,
    source: 0,
    set: null,
    action: 0,
    acceptReason: `policy "${policy}" term ${label}: accept`,
    rejectReason: `policy "${policy}" term ${label}: reject`,
  };
  const list = <T>(v: T[] | undefined, k: string): T[] | undefined => {
    if (v !== undefined && !Array.isArray(v)) fail(where, `match.${k} must be a list`);
    return v;
  };
  const prefix = list(m.prefix, "prefix");
  if (prefix) term.prefix = new PrefixSet(prefix.map((p, j) => compilePrefixMatch(p, `${where} prefix ${j + 1}`)));
  const pl = list(m.prefixList, "prefixList");
  if (pl) {
    term.prefixLists = pl.map((n) => {
      const l = lists.get(n);
      if (!l) fail(where, `unknown prefix list "${n}"`);
      return l;
    });
  }
  const comm = list(m.community, "community");
  if (comm) {
    term.community = Uint32Array.from(
      comm.map((c) => {
        try {
          return parseCommunity(c);
        } catch (e) {
          fail(where, `match.community: ${(e as Error).message}`);
        }
      }),
    );
  }
  const lc = list(m.largeCommunity, "largeCommunity");
  if (lc) {
    const flat: number[] = [];
    for (const c of lc) {
      try {
        flat.push(...parseLargeCommunity(c));
      } catch (e) {
        fail(where, `match.largeCommunity: ${(e as Error).message}`);
      }
    }
    term.largeCommunity = Float64Array.from(flat);
  }
  if (m.asPath !== undefined) {
    if (typeof m.asPath !== "string") fail(where, "match.asPath must be a regular expression string");
    try {
      term.asPath = new RegExp(m.asPath);
    } catch (e) {
      fail(where, `match.asPath: invalid regular expression ${JSON.stringify(m.asPath)}: ${(e as Error).message}`);
    }
  }
  const nh = list(m.nextHop, "nextHop");
  if (nh) term.nextHop = nh.map((a) => parseAddrOrFail(a, where, "match.nextHop"));
  const nb = list(m.neighbor, "neighbor");
  if (nb) {
    term.neighbor = true;
    for (const n of nb) {
      if (n === "local") term.neighborLocal = true;
      else {
        const a = parseAddrOrFail(n, where, "match.neighbor");
        term.neighborAddrs.push(a);
        term.neighborTexts.push(formatAddr(a.length === 16 ? 2 : 1, a));
      }
    }
  }
  if (m.family !== undefined) {
    if (m.family !== "ipv4" && m.family !== "ipv6") fail(where, `match.family must be "ipv4" or "ipv6", not ${JSON.stringify(m.family)}`);
    term.family = m.family === "ipv4" ? 1 : 2;
  }
  const src = list(m.source, "source");
  if (src) {
    for (const k of src) {
      const bit = k === "local" ? 1 : k === "ibgp" ? 2 : k === "ebgp" ? 4 : 0;
      if (!bit) fail(where, `match.source entries must be "local", "ibgp" or "ebgp", not ${JSON.stringify(k)}`);
      term.source |= bit;
    }
  }
  if (t.action !== undefined) {
    if (t.action !== "accept" && t.action !== "reject") fail(where, `action must be "accept" or "reject", not ${JSON.stringify(t.action)}`);
    term.action = t.action === "accept" ? 1 : 2;
  }
  if (t.set !== undefined) term.set = compileSet(t.set, where);
  return term;
}

function compileSet(s: PolicyTerm["set"] & object, where: string): CompiledSet {
  if (typeof s !== "object" || s === null) fail(where, "set must be an object");
  const out: CompiledSet = {
    localPref: null,
    med: null,
    community: null,
    largeCommunity: null,
    nextHopSelf: false,
    nextHop: null,
    prepend: 0,
    touchesAttrs: false,
    memo: attrMemo(),
    memoByAs: new Map(),
  };
  if (s.localPref !== undefined) {
    if (!isUint32(s.localPref)) fail(where, `set.localPref ${s.localPref} must be an integer in 0..4294967295`);
    out.localPref = s.localPref;
  }
  if (s.med !== undefined) {
    if (!isUint32(s.med)) fail(where, `set.med ${s.med} must be an integer in 0..4294967295`);
    out.med = s.med;
  }
  if (s.community !== undefined) out.community = compileEdit(s.community, parseCommunity, (a, b) => a === b, where, "community");
  if (s.largeCommunity !== undefined) out.largeCommunity = compileEdit(s.largeCommunity, parseLargeCommunity, sameLarge, where, "largeCommunity");
  if (s.nextHop !== undefined) {
    if (s.nextHop === "self") out.nextHopSelf = true;
    else out.nextHop = parseAddrOrFail(s.nextHop, where, "set.nextHop");
  }
  if (s.asPathPrepend !== undefined) {
    const n = s.asPathPrepend;
    if (!Number.isInteger(n) || n < 1 || n > 32) fail(where, `set.asPathPrepend ${n} must be an integer in 1..32`);
    out.prepend = n;
  }
  out.touchesAttrs = out.localPref !== null || out.med !== null || out.community !== null || out.largeCommunity !== null || out.prepend > 0;
  return out;
}

/**
 * Compile every policy and prefix list. Throws an Error naming the policy and
 * term (or prefix list and entry) for anything invalid: bad prefixes or
 * ranges, communities, regular expressions, addresses, unknown prefix lists,
 * out-of-range values, unknown actions.
 */
export function compilePolicies(policies: Record<string, Policy>, prefixLists: Record<string, PrefixMatch[]>): CompiledPolicies {
  const lists = new Map<string, PrefixSet>();
  for (const [name, entries] of Object.entries(prefixLists ?? {})) {
    if (!Array.isArray(entries)) throw new Error(`prefix list "${name}": must be a list of prefix entries`);
    lists.set(name, new PrefixSet(entries.map((e, i) => compilePrefixMatch(e, `prefix list "${name}" entry ${i + 1}`))));
  }
  const out = new Map<string, CompiledPolicy>();
  for (const [name, p] of Object.entries(policies ?? {})) {
    if (typeof p !== "object" || p === null) throw new Error(`policy "${name}": not an object`);
    if (!Array.isArray(p.terms)) throw new Error(`policy "${name}": terms must be a list`);
    const def = p.default ?? "reject";
    if (def !== "accept" && def !== "reject") throw new Error(`policy "${name}": default must be "accept" or "reject", not ${JSON.stringify(def)}`);
    out.set(name, {
      name,
      terms: p.terms.map((t, i) => compileTerm(name, t, i, lists)),
      defaultAccept: def === "accept",
      defaultReason: `policy "${name}": default ${def}`,
    });
  }
  return { policies: out, prefixLists: lists };
}

/** Throws when a PolicyRef names a policy that was not compiled (for config validation). */
export function checkPolicyRef(ref: PolicyRef, compiled: CompiledPolicies, where: string): void {
  if (ref?.kind !== "chain") return;
  if (ref.names.length === 0) throw new Error(`${where}: empty policy chain`);
  for (const n of ref.names) if (!compiled.policies.has(n)) throw new Error(`${where}: unknown policy "${n}"`);
}

/**
 * Whether the outcome of `ref` may depend on the prefix itself (a prefix or
 * prefix-list condition in a policy it runs; an unknown policy counts as
 * one). When it does not, routes of one family with the same attribute set,
 * next hop and source get the same result, and callers may reuse it.
 */
export function policyUsesPrefix(ref: PolicyRef, compiled: CompiledPolicies): boolean {
  if (ref?.kind !== "chain") return false;
  for (const n of ref.names) {
    const pol = compiled.policies.get(n);
    if (pol === undefined) return true;
    for (const t of pol.terms) if (t.prefix !== null || t.prefixLists !== null) return true;
  }
  return false;
}

/**
 * The last verdict of a decision that depends on a route only through its
 * attribute set, next hop, source, family and a `tag` the caller derives
 * from the source's mutable fields; and otherwise only on the objects it is
 * `ready` under (compared by identity) and on a policy. The next route
 * with the same ones (the prefixes of one UPDATE) reuses it, unless the
 * policy looks at the prefix itself (policyUsesPrefix), which is worked out
 * once per set of objects, not per route. The import and export decisions
 * keep one each (lib/router/neighbor.ts, lib/rib/adj-rib-out.ts).
 */
export class LastVerdict<T> {
  private attrs: PathAttributes | null = null;
  private nextHop: Uint8Array | null = null;
  private source: Route["source"] | null = null;
  private afi = 0;
  private tag = 0;
  private verdict: T | undefined = undefined;
  private under: [unknown, unknown, CompiledPolicies] | null = null;
  private usable = false;

  /** Whether verdicts may be reused under `a`, `b`, the policy `ref` and the compiled policies (a change of any object starts afresh). */
  ready(a: unknown, b: unknown, ref: PolicyRef, compiled: CompiledPolicies): boolean {
    const u = this.under;
    if (u === null || u[0] !== a || u[1] !== b || u[2] !== compiled) {
      this.under = [a, b, compiled];
      this.usable = !policyUsesPrefix(ref, compiled);
      this.attrs = null;
    }
    return this.usable;
  }

  /** The verdict remembered for a route like this one, or undefined. */
  get(route: Route, afi: number, tag: number): T | undefined {
    return this.attrs === route.attrs && this.nextHop === route.nextHop && this.source === route.source && this.afi === afi && this.tag === tag ? this.verdict : undefined;
  }

  remember(route: Route, afi: number, tag: number, verdict: T): T {
    this.attrs = route.attrs;
    this.nextHop = route.nextHop;
    this.source = route.source;
    this.afi = afi;
    this.tag = tag;
    this.verdict = verdict;
    return verdict;
  }

  /** Start afresh (what it is ready under may have changed in place). */
  reset(): void {
    this.under = null;
    this.attrs = null;
  }
}

// ---------------------------------------------------------------- evaluate

/** asPathString per AS path (paths are shared by the routes of an interned attribute set), spread by length and last AS (a table's tens of thousands of paths in one WeakMap rehash at once). */
const pathText = new WeakShards<AsPath, string>((p) => p.length * 31 + (p[p.length - 1] ?? 0));

function asPathText(segs: AsPath | null): string {
  if (!segs || segs.length === 0) return "";
  let s = pathText.get(segs);
  if (s === undefined) {
    s = asPathString(segs);
    pathText.set(segs, s);
  }
  return s;
}

function sameBytes(a: Uint8Array, b: Uint8Array, bo: number): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[bo + i]) return false;
  return true;
}

/** A next hop condition entry against a next hop of 4, 16 or 32 (global + link-local) bytes. */
function nextHopIs(want: Uint8Array, nh: Uint8Array): boolean {
  if (want.length === 4) return nh.length === 4 && sameBytes(want, nh, 0);
  if (nh.length < 16) return false;
  return sameBytes(want, nh, 0) || (nh.length >= 32 && sameBytes(want, nh, 16));
}

function termMatches(t: CompiledTerm, route: Route, attrs: PathAttributes, nextHop: Uint8Array): boolean {
  if (t.family !== 0 && familyOfKey(route.key) !== t.family) return false;
  if (t.source !== 0 && (t.source & (route.source.local ? 1 : route.source.ibgp ? 2 : 4)) === 0) return false;
  if (t.prefix !== null || t.prefixLists !== null) {
    // Made only for prefix conditions: a stored route's prefix is derived from its key.
    const p = route.prefix;
    if (t.prefix !== null && !t.prefix.matches(p)) return false;
    if (t.prefixLists !== null) {
      let ok = false;
      for (let i = 0; i < t.prefixLists.length && !ok; i++) ok = t.prefixLists[i]!.matches(p);
      if (!ok) return false;
    }
  }
  if (t.neighbor) {
    const src = route.source;
    let ok = false;
    if (src.local) ok = t.neighborLocal;
    else {
      const b = src.addressBytes;
      for (let i = 0; i < t.neighborAddrs.length && !ok; i++) {
        const a = t.neighborAddrs[i]!;
        ok = b.length === a.length ? sameBytes(a, b, 0) : b.length === 0 && t.neighborTexts[i] === src.address;
      }
    }
    if (!ok) return false;
  }
  if (t.nextHop !== null) {
    let ok = false;
    for (let i = 0; i < t.nextHop.length && !ok; i++) ok = nextHopIs(t.nextHop[i]!, nextHop);
    if (!ok) return false;
  }
  if (t.community !== null) {
    const want = t.community;
    const have = attrs.communities;
    let ok = false;
    for (let i = 0; i < have.length && !ok; i++) {
      const c = have[i]!;
      for (let j = 0; j < want.length; j++) {
        if (want[j] === c) {
          ok = true;
          break;
        }
      }
    }
    if (!ok) return false;
  }
  if (t.largeCommunity !== null) {
    const want = t.largeCommunity;
    const have = attrs.largeCommunities;
    let ok = false;
    for (let i = 0; i < have.length && !ok; i++) {
      const l = have[i]!;
      for (let j = 0; j < want.length; j += 3) {
        if (want[j] === l[0] && want[j + 1] === l[1] && want[j + 2] === l[2]) {
          ok = true;
          break;
        }
      }
    }
    if (!ok) return false;
  }
  if (t.asPath !== null && !t.asPath.test(asPathText(attrs.asPath))) return false;
  return true;
}

function sameLarge(a: [number, number, number], b: [number, number, number]): boolean {
  return a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
}

/**
 * replace → remove → add, without duplicates. Returns null when the list
 * would be unchanged (same values in the same order).
 */
function editList<T>(cur: T[], e: CompiledListEdit<T>, eq: (a: T, b: T) => boolean): T[] | null {
  const base = e.replace ?? cur;
  const out: T[] = [];
  const has = (x: T) => {
    for (const y of out) if (eq(x, y)) return true;
    return false;
  };
  const removed = (x: T) => {
    for (const y of e.remove) if (eq(x, y)) return true;
    return false;
  };
  for (const x of base) if (!removed(x) && !has(x)) out.push(x);
  for (const x of e.add) if (!has(x)) out.push(x);
  if (out.length === cur.length) {
    let same = true;
    for (let i = 0; i < out.length && same; i++) same = eq(out[i]!, cur[i]!);
    if (same) return null;
  }
  return out;
}

/** The attribute part of a set, copy-on-write; returns `a` itself when nothing changes. */
function computeSet(s: CompiledSet, a: PathAttributes, localAs: number): PathAttributes {
  let c: PathAttributes | null = null;
  if (s.localPref !== null && a.localPref !== s.localPref) (c ??= { ...a }).localPref = s.localPref;
  if (s.med !== null && a.med !== s.med) (c ??= { ...a }).med = s.med;
  if (s.community !== null) {
    const l = editList(a.communities, s.community, (x, y) => x === y);
    if (l) (c ??= { ...a }).communities = l;
  }
  if (s.largeCommunity !== null) {
    const l = editList(a.largeCommunities, s.largeCommunity, sameLarge);
    if (l) (c ??= { ...a }).largeCommunities = l;
  }
  if (s.prepend > 0) (c ??= { ...a }).asPath = prependAs(a.asPath, localAs, s.prepend);
  return c ?? a;
}

function applySet(s: CompiledSet, r: PolicyResult, ctx: PolicyContext): void {
  if (s.touchesAttrs) {
    let memo = s.memo;
    if (s.prepend > 0) {
      let m = s.memoByAs.get(ctx.localAs);
      if (!m) s.memoByAs.set(ctx.localAs, (m = attrMemo()));
      memo = m;
    }
    let next = memo.get(r.attrs);
    if (next === undefined) {
      next = computeSet(s, r.attrs, ctx.localAs);
      memo.set(r.attrs, next);
    }
    r.attrs = next;
    if (s.med !== null) r.medSet = true;
  }
  if (s.nextHopSelf) {
    if (ctx.localAddress) {
      r.nextHop = ctx.localAddress;
      r.nextHopSet = true;
    }
  } else if (s.nextHop !== null) {
    r.nextHop = s.nextHop;
    r.nextHopSet = true;
  }
}

const REASON_8212 = { import: "no import policy (RFC 8212)", export: "no export policy (RFC 8212)" } as const;
const REASON_IBGP = { import: "no import policy: iBGP accepts all", export: "no export policy: iBGP accepts all" } as const;

function verdict(r: PolicyResult, accept: boolean, reason: string): PolicyResult {
  r.accept = accept;
  r.reason = reason;
  return r;
}

/**
 * Evaluate a peer's import or export policy for one route. `defaultFor`
 * chooses the RFC 8212 behaviour when `ref` is undefined (eBGP: reject,
 * iBGP: accept unchanged). Never mutates the route or its attributes. Pass
 * `out` to reuse a result object (no allocation at all then).
 */
export function applyPolicy(
  ref: PolicyRef,
  defaultFor: "ibgp" | "ebgp",
  route: Route,
  ctx: PolicyContext,
  compiled: CompiledPolicies,
  out?: PolicyResult,
): PolicyResult {
  const r: PolicyResult = out ?? { accept: false, attrs: route.attrs, nextHop: route.nextHop, reason: "", nextHopSet: false, medSet: false };
  r.attrs = route.attrs;
  r.nextHop = route.nextHop;
  r.nextHopSet = false;
  r.medSet = false;
  if (ref === undefined) {
    return defaultFor === "ebgp" ? verdict(r, false, REASON_8212[ctx.direction]) : verdict(r, true, REASON_IBGP[ctx.direction]);
  }
  if (ref.kind === "all") return verdict(r, true, "all");
  if (ref.kind === "none") return verdict(r, false, "none");
  const names = ref.names;
  if (names.length === 0) return verdict(r, false, "empty policy chain");
  let last: CompiledPolicy | undefined;
  for (let n = 0; n < names.length; n++) {
    const pol = compiled.policies.get(names[n]!);
    if (pol === undefined) return verdict(r, false, `unknown policy "${names[n]}"`);
    last = pol;
    const terms = pol.terms;
    for (let i = 0; i < terms.length; i++) {
      const t = terms[i]!;
      if (!termMatches(t, route, r.attrs, r.nextHop)) continue;
      if (t.action === 2) return verdict(r, false, t.rejectReason);
      if (t.set !== null) applySet(t.set, r, ctx);
      if (t.action === 1) return verdict(r, true, t.acceptReason);
    }
  }
  return verdict(r, last!.defaultAccept, last!.defaultReason);
}
