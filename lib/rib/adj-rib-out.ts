/**
 * Adj-RIB-Out of one peer: what we advertise to it, and the outbound
 * processing that decides it.
 *
 * For every Loc-RIB best-route change the daemon calls `exportRoute`, which
 * decides what this peer should now have for that prefix, in this order:
 *   (a) nothing back to the peer the route came from;
 *   (g) well-known communities: NO_ADVERTISE to nobody, NO_EXPORT and
 *       NO_EXPORT_SUBCONFED not to eBGP peers (checked on the route as it
 *       is in the Loc-RIB, before export policy, so an export policy may
 *       attach NO_EXPORT for the peer to honour); LLGR_STALE only to peers
 *       doing long-lived graceful restart (RFC 9494);
 *   (b) iBGP split horizon with route reflection (RFC 4456): an iBGP-learned
 *       route goes to another iBGP peer only when the source or the target is
 *       a route-reflector client; reflected routes get ORIGINATOR_ID (when
 *       absent: the source's router id) and our cluster id prepended to
 *       CLUSTER_LIST; nothing goes to an iBGP peer whose router id is the
 *       route's ORIGINATOR_ID;
 *   (c) eBGP sender-side loop prevention: not to a peer whose AS is in the
 *       AS_PATH, unless `asOverride` (then the peer's AS is replaced by ours);
 *   (d) export policy (RFC 8212 default: nothing to eBGP, all to iBGP);
 *   (e) eBGP rewrites: prepend our AS, next hop self (unless policy set one),
 *       LOCAL_PREF, ORIGINATOR_ID and CLUSTER_LIST removed, MED removed
 *       unless the route is local or policy set it;
 *   (f) iBGP: LOCAL_PREF present (100 when absent), AS path unchanged, next
 *       hop unchanged unless policy set one, `nextHopSelf`, or the route has
 *       none (a local route).
 * The result is kept per prefix, so an identical re-export sends nothing and
 * a withdrawal goes out only for a prefix that was advertised.
 *
 * Changes are queued; `take(n)` (pulled by the daemon while the peer's socket
 * is writable, see lib/router/neighbor.ts) packs the next n queued prefixes,
 * in the order they were queued, into UPDATEs: withdrawals first, then
 * announcements grouped by identical (attributes, next hop), as few messages
 * as fit 4096 bytes (65535 with RFC 8654 extended messages); `flush` takes
 * everything at once. Output attribute sets are memoised per input set, so a
 * full table sharing few attribute sets packs into few groups.
 * The walks over the whole table (`requeue`, `resyncSteps`) are generators
 * that yield per prefix, so the caller can spread them over event-loop turns.
 *
 * Peers that would be sent the same UPDATEs share one Adj-RIB-Out (update
 * groups: lib/router/export-group.ts).
 *
 * A queued prefix is marked in the one table itself (its value is a Pending
 * until taken) and its table position is put in a FIFO: an export costs one
 * table lookup and a take none, with no second map of queued prefixes.
 *
 * ADD-PATH (RFC 7911) send: only the best path is advertised, with path
 * identifier 1 (withdrawn with path identifier 1 too).
 */
import { type AsPathSegment, LLGR_STALE, type PathAttributes } from "../bgp/attributes.ts";
import { bytesEqual } from "../bgp/bytes.ts";
import { type Negotiated, addPathSend, hasFamily } from "../bgp/negotiate.ts";
import { formatAddr, parseAddr } from "../core/addr.ts";
import { AFI, type Afi } from "../core/addr.ts";
import { BGP_MAX_EXT_MSG, BGP_MAX_MSG, ORIGIN, SAFI } from "../bgp/types.ts";
import { type EncodeContext, type NlriBytes, buildAnnouncementsNlri, buildWithdrawalsNlri, encodeEndOfRib } from "../bgp/update.ts";
import { Writer } from "../bgp/bytes.ts";
import { DEFAULT_LOCAL_PREF } from "./decision.ts";
import { type CompiledPolicies, LastVerdict, type PolicyContext, type PolicyRef, type PolicyResult, applyPolicy, prependAs } from "./policy.ts";
import { PrefixMap } from "./prefix-map.ts";
import { type PrefixKey, type Route, familyOfKey, withFields, writeKeyNlri } from "./types.ts";

export const NO_EXPORT = 0xffffff01;
export const NO_ADVERTISE = 0xffffff02;
export const NO_EXPORT_SUBCONFED = 0xffffff03;

type FamilyName = "ipv4" | "ipv6";

/** What the Adj-RIB-Out needs to know of its peer (a configured peer has all of it). */
export interface ExportPeer {
  address: string;
  remoteAs: number;
  /** Our own next hop on everything sent. */
  nextHopSelf: boolean;
  /** The peer is one of our route-reflector clients (RFC 4456). */
  routeReflectorClient: boolean;
  /** Replace the peer's AS in AS paths by ours instead of suppressing such routes. */
  asOverride?: boolean;
  /** Export policy (absent: the RFC 8212 default). */
  export?: PolicyRef;
}

export interface AdjRibOutOptions {
  peer: ExportPeer;
  /** Our AS on this session. */
  localAs: number;
  /** Our BGP identifier (dotted quad). */
  routerId: string;
  /** Route-reflector cluster id (dotted quad; usually the router id). */
  clusterId: string;
  negotiated: Negotiated;
  /** Our address of the session (4 or 16 bytes; empty when unknown). */
  localAddress: Uint8Array;
  /** Our address of the other family (for next hop self of that family), if any. */
  otherLocalAddress?: Uint8Array | null;
  policies: CompiledPolicies;
  /**
   * The Loc-RIB route a prefix is advertised from (its best route), for
   * `routes()`/`get()`: entries keep no route of their own.
   */
  origin: (key: PrefixKey) => Route | null;
}

/** What exportRoute did to this peer's Adj-RIB-Out for the prefix. */
export interface ExportResult {
  /** announce: new or changed route queued; withdraw: withdrawal queued; none: nothing to send. */
  change: "announce" | "withdraw" | "none";
  /** Why (for logs): "unchanged", "learned from this peer", the policy verdict, ... */
  reason: string;
}

/**
 * What one prefix is advertised with: attributes, next hop and export
 * generation. Immutable and shared: every prefix advertised with the same
 * (attributes, next hop) in one generation points to one object, so the
 * Adj-RIB-Out costs one map entry per prefix and nothing else.
 */
interface OutEntry {
  readonly attrs: PathAttributes;
  /** Interned next hop (one object per distinct value). */
  readonly nextHop: Uint8Array;
  /** Export generation (see resync). */
  readonly stamp: number;
}

/**
 * A prefix with a queued change, in place of its entry until `take` sends
 * it: what the peer is to have (null: withdrawn) and what it was last given
 * (null: nothing). Immutable (a change makes a new one), so a copy of the
 * table (adoptFrom) may share them.
 */
class Pending {
  constructor(
    readonly cur: OutEntry | null,
    readonly prev: OutEntry | null,
  ) {}
}

/** The entry a table value stands for (a queued withdrawal: none). */
function current(v: OutEntry | Pending): OutEntry | null {
  return v instanceof Pending ? v.cur : v;
}

/** Queue of numbers, first in first out, in fixed-size chunks (never one big array copied as it grows). */
class Fifo {
  private chunks: number[][] = [];
  /** Next to take in chunks[0]. */
  private head = 0;
  private n = 0;

  get length(): number {
    return this.n;
  }

  push(k: number): void {
    let last = this.chunks[this.chunks.length - 1];
    if (last === undefined || last.length === QUEUE_CHUNK) this.chunks.push((last = []));
    last.push(k);
    this.n++;
  }

  /** The oldest one (undefined when empty). */
  shift(): number | undefined {
    if (this.n === 0) return undefined;
    const c = this.chunks[0]!;
    const k = c[this.head++]!;
    this.n--;
    if (this.head === c.length && (c.length === QUEUE_CHUNK || this.n === 0)) {
      this.chunks.shift();
      this.head = 0;
    }
    return k;
  }

  clone(): Fifo {
    const q = new Fifo();
    q.chunks = this.chunks.map((c) => c.slice());
    q.head = this.head;
    q.n = this.n;
    return q;
  }
}
const QUEUE_CHUNK = 4096;

/** What the peer is to be sent for a route (attributes and next hop as rewritten), or why nothing. */
type Decision = { attrs: PathAttributes; nextHop: Uint8Array; reason: string } | string;

function ipText(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 0xff}.${(n >>> 8) & 0xff}.${n & 0xff}`;
}

function pathHasAs(path: AsPathSegment[] | null, asn: number): boolean {
  if (!path) return false;
  for (const s of path) for (const a of s.asns) if (a === asn) return true;
  return false;
}

function replaceAs(path: AsPathSegment[] | null, from: number, to: number): AsPathSegment[] | null {
  if (!pathHasAs(path, from)) return path;
  return path!.map((s) => ({ type: s.type, asns: s.asns.map((a) => (a === from ? to : a)) }));
}

function sameArray<T>(a: T[], b: T[], eq: (x: T, y: T) => boolean): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!eq(a[i]!, b[i]!)) return false;
  return true;
}

const eqPrim = <T>(x: T, y: T) => x === y;
const eqBytes = (x: Uint8Array, y: Uint8Array) => bytesEqual(x, y);

/** Structural equality of two attribute sets (what would go on the wire). */
export function attrsEqual(a: PathAttributes, b: PathAttributes): boolean {
  if (a === b) return true;
  if (a.origin !== b.origin || a.med !== b.med || a.localPref !== b.localPref || a.atomicAggregate !== b.atomicAggregate) return false;
  if (a.originatorId !== b.originatorId || a.otc !== b.otc) return false;
  if ((a.nextHop === null) !== (b.nextHop === null) || (a.nextHop && !bytesEqual(a.nextHop, b.nextHop!))) return false;
  if ((a.asPath === null) !== (b.asPath === null)) return false;
  if (a.asPath && !sameArray(a.asPath, b.asPath!, (x, y) => x.type === y.type && sameArray(x.asns, y.asns, eqPrim))) return false;
  if ((a.aggregator === null) !== (b.aggregator === null)) return false;
  if (a.aggregator && (a.aggregator.asn !== b.aggregator!.asn || a.aggregator.address !== b.aggregator!.address)) return false;
  if (!sameArray(a.communities, b.communities, eqPrim)) return false;
  if (!sameArray(a.clusterList, b.clusterList, eqPrim)) return false;
  if (!sameArray(a.extCommunities, b.extCommunities, eqBytes)) return false;
  if (!sameArray(a.largeCommunities, b.largeCommunities, (x, y) => x[0] === y[0] && x[1] === y[1] && x[2] === y[2])) return false;
  if (!sameArray(a.unknown, b.unknown, (x, y) => x.type === y.type && x.flags === y.flags && bytesEqual(x.value, y.value))) return false;
  return sameArray(a.partial ?? [], b.partial ?? [], eqPrim);
}

function mix(h: number, v: number): number {
  return Math.imul(h ^ (v | 0), 0x01000193);
}

function mixStr(h: number, s: string): number {
  for (let i = 0; i < s.length; i++) h = mix(h, s.charCodeAt(i));
  return h;
}

/** A hash of the fields attrsEqual compares (cheap ones in full, byte fields by length). */
function attrsHash(a: PathAttributes): number {
  let h = 0x811c9dc5;
  h = mix(h, a.origin ?? -1);
  h = mix(h, a.med ?? -1);
  h = mix(h, a.localPref ?? -1);
  h = mix(h, a.atomicAggregate ? 1 : 0);
  h = mix(h, a.otc ?? -1);
  if (a.asPath) for (const s of a.asPath) {
    h = mix(h, s.type + 1000);
    for (const x of s.asns) h = mix(h, x);
  }
  for (const c of a.communities) h = mix(h, c);
  for (const l of a.largeCommunities) h = mix(mix(mix(h, l[0]), l[1]), l[2]);
  if (a.originatorId) h = mixStr(h, a.originatorId);
  for (const c of a.clusterList) h = mixStr(h, c);
  if (a.aggregator) h = mixStr(mix(h, a.aggregator.asn), a.aggregator.address);
  h = mix(h, a.extCommunities.length);
  h = mix(h, a.unknown.length);
  if (a.nextHop) for (const b of a.nextHop) h = mix(h, b);
  return h >>> 0;
}

function sameEntry(a: OutEntry | null, b: OutEntry | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.nextHop === b.nextHop && attrsEqual(a.attrs, b.attrs);
}

function afiOf(f: Afi | FamilyName | number): number {
  return f === "ipv4" ? AFI.IPV4 : f === "ipv6" ? AFI.IPV6 : f;
}

export class AdjRibOut {
  private peer: ExportPeer;
  private readonly localAs: number;
  private clusterId: string;
  private readonly n: Negotiated;
  private policies: CompiledPolicies;
  private readonly ibgp: boolean;
  private readonly peerAddrBytes: Uint8Array;
  private readonly peerId: string;
  private readonly peerRouterId: string;
  private readonly enc: EncodeContext;
  /** Next hop self per AFI (index 1, 2), null when we have no usable address. */
  private readonly selfNh: (Uint8Array | null)[] = [null, null, null];
  private readonly familyOk: boolean[] = [false, false, false];
  private readonly addPath: boolean[] = [false, false, false];
  /** Scratch buffer the UPDATE builders copy NLRI from. */
  private readonly nlriScratch = new Writer(8192);
  private readonly extNh4: boolean;
  private readonly policyCtx: PolicyContext[];
  private readonly scratch: PolicyResult;

  /**
   * What the peer has, per prefix: its entry, or a Pending while a change
   * is queued (one table lookup per export and per prefix sent, no second
   * map of queued prefixes).
   */
  private out = new PrefixMap<PrefixKey, OutEntry | Pending>();
  /** The table positions (PrefixMap.put) of the prefixes holding a Pending, in the order they were queued: a take reads and writes them there, without a lookup. */
  private queue = new Fifo();
  private readonly counts = [0, 0, 0];
  private gen = 0;
  /** The shared entries of the current generation: attributes → entry (its one next hop), or next hop → entry when there are several. */
  private entries = new WeakMap<PathAttributes, OutEntry | Map<Uint8Array, OutEntry>>();
  private readonly origin: (key: PrefixKey) => Route | null;
  private readonly nhIntern = new Map<string, Uint8Array>();
  /** Output attribute memos: policy output attrs → rewritten attrs. */
  private readonly memoEbgp = [new WeakMap<PathAttributes, PathAttributes>(), new WeakMap<PathAttributes, PathAttributes>()];
  private readonly memoIbgp = new WeakMap<PathAttributes, PathAttributes>();
  private memoReflect = new WeakMap<PathAttributes, Map<string, PathAttributes>>();
  /** Outgoing attribute sets by hash, held weakly: one lives as long as an entry or route uses it (no wholesale clear, no dead sets kept). */
  private readonly interned = new Map<number, WeakRef<PathAttributes> | WeakRef<PathAttributes>[]>();
  private readonly internSweep = new FinalizationRegistry<number>((h) => this.sweepInterned(h));

  constructor(o: AdjRibOutOptions) {
    this.peer = o.peer;
    this.localAs = o.localAs;
    this.clusterId = o.clusterId;
    this.n = o.negotiated;
    this.policies = o.policies;
    this.origin = o.origin;
    this.ibgp = o.peer.remoteAs === o.localAs;
    const pa = parseAddr(o.peer.address);
    this.peerAddrBytes = pa ? pa.addr : new Uint8Array(0);
    this.peerId = pa ? formatAddr(pa.afi, pa.addr) : o.peer.address;
    this.peerRouterId = o.negotiated.peerRouterId;
    this.enc = {
      fourOctetAs: o.negotiated.fourOctetAs,
      addPathSend: (afi, safi) => addPathSend(o.negotiated, afi, safi),
      maxLen: o.negotiated.extendedMessage ? BGP_MAX_EXT_MSG : BGP_MAX_MSG,
    };
    this.extNh4 = o.negotiated.extendedNextHop.some((f) => f.afi === AFI.IPV4 && f.safi === SAFI.UNICAST);
    const addrs = [o.localAddress, o.otherLocalAddress ?? null].filter((a): a is Uint8Array => !!a && (a.length === 4 || a.length === 16));
    const v4 = addrs.find((a) => a.length === 4) ?? null;
    const v6 = addrs.find((a) => a.length === 16) ?? null;
    this.selfNh[AFI.IPV4] = v4 ? this.intern(v4) : v6 && this.extNh4 ? this.intern(v6) : null;
    this.selfNh[AFI.IPV6] = v6 ? this.intern(v6) : null;
    for (const afi of [AFI.IPV4, AFI.IPV6]) {
      this.familyOk[afi] = hasFamily(o.negotiated, afi, SAFI.UNICAST);
      this.addPath[afi] = addPathSend(o.negotiated, afi, SAFI.UNICAST);
    }
    const ctx = (afi: number): PolicyContext => ({ direction: "export", localAs: o.localAs, peerAddress: o.peer.address, localAddress: this.selfNh[afi] ?? null });
    this.policyCtx = [ctx(AFI.IPV4), ctx(AFI.IPV4), ctx(AFI.IPV6)];
    this.scratch = { accept: false, attrs: null as unknown as PathAttributes, nextHop: new Uint8Array(0), reason: "", nextHopSet: false, medSet: false };
  }

  /**
   * Take a peer configuration changed in place (export chain, route-reflector
   * client, next-hop-self, ...; never the fields that need a new session) and
   * the current compiled policies; re-export every route afterwards.
   */
  reconfigure(peer: ExportPeer, policies: CompiledPolicies, clusterId: string): void {
    this.peer = peer;
    this.policies = policies;
    this.last.reset();
    if (clusterId !== this.clusterId) {
      this.clusterId = clusterId;
      this.memoReflect = new WeakMap();
    }
  }

  /** Use new compiled policies (after a reload); re-export every route afterwards to apply them. */
  setPolicies(p: CompiledPolicies): void {
    this.policies = p;
    this.last.reset();
  }

  /**
   * Take over a copy of another Adj-RIB-Out's state — what its peer has and
   * what is queued for it — for a peer it was shared with (an update group
   * member leaving the group: lib/router/export-group.ts). Both must export
   * alike (the same export signature).
   */
  adoptFrom(src: AdjRibOut): void {
    this.out = src.out.clone();
    this.queue = src.queue.clone();
    for (let i = 0; i < this.counts.length; i++) this.counts[i] = src.counts[i]!;
    this.gen = src.gen;
    // The same next hop objects, so an unchanged route compares equal by identity (entries hold src's).
    for (const [k, v] of src.nhIntern) this.nhIntern.set(k, v);
    for (const afi of [AFI.IPV4, AFI.IPV6]) {
      const nh = this.selfNh[afi];
      if (nh) this.selfNh[afi] = this.intern(nh);
    }
  }

  /** Whether this peer is internal (iBGP). */
  get isIbgp(): boolean {
    return this.ibgp;
  }

  /** Number of prefixes with a queued change (announce or withdraw). */
  get pendingCount(): number {
    return this.queue.length;
  }

  private intern(nh: Uint8Array): Uint8Array {
    let k = "";
    for (let i = 0; i < nh.length; i++) k += String.fromCharCode(nh[i]!);
    let v = this.nhIntern.get(k);
    if (!v) this.nhIntern.set(k, (v = nh.slice()));
    return v;
  }

  /** A next hop usable for a prefix of `afi` on this session (interned), or null. */
  private usableNh(afi: number, nh: Uint8Array): Uint8Array | null {
    if (afi === AFI.IPV4) {
      if (nh.length === 4) return this.intern(nh);
      if ((nh.length === 16 || nh.length === 32) && this.extNh4) return this.intern(nh.length === 32 ? nh.subarray(0, 16) : nh);
      return null;
    }
    // IPv6: the global address only; a link-local part is meaningful only on the link it came from.
    if (nh.length === 16) return this.intern(nh);
    if (nh.length === 32) return this.intern(nh.subarray(0, 16));
    return null;
  }

  /**
   * The new Loc-RIB best for `key` (null: none any more): decide what the
   * peer should have, and queue the change if it differs from what it has.
   */
  exportRoute(route: Route | null, key: PrefixKey): ExportResult {
    const afi = familyOfKey(key);
    let attrs: PathAttributes | null = null;
    let nh: Uint8Array | null = null;
    let reason: string;
    if (!this.familyOk[afi]) reason = "family not negotiated";
    else if (route === null) reason = "withdrawn";
    else if (!route.reachable) reason = "next hop unreachable";
    else {
      const r = this.decideMemo(route, afi);
      if (typeof r === "string") reason = r;
      else {
        attrs = r.attrs;
        nh = r.nextHop;
        reason = r.reason;
      }
    }
    // (A peer that was never given anything, as one with no export, skips the lookup.)
    const v = this.out.size === 0 ? undefined : this.out.get(key);
    const old = v === undefined ? null : current(v);
    if (attrs === null || nh === null) {
      if (!old) return { change: "none", reason };
      this.remove(key, v!);
      return { change: "withdraw", reason };
    }
    if (old && old.nextHop === nh && (old.attrs === attrs || attrsEqual(old.attrs, attrs))) {
      if (old.stamp !== this.gen) this.out.set(key, v instanceof Pending ? new Pending(this.entry(old.attrs, nh), v.prev) : this.entry(old.attrs, nh));
      return { change: "none", reason: "unchanged" };
    }
    this.change(key, v, this.entry(attrs, nh));
    if (!old) this.counts[afi]!++;
    return { change: "announce", reason };
  }

  /** Queue `cur` (null: a withdrawal) for a prefix whose table value is `v`. */
  private change(key: PrefixKey, v: OutEntry | Pending | undefined, cur: OutEntry | null): void {
    if (v instanceof Pending) this.out.set(key, new Pending(cur, v.prev));
    else this.queue.push(this.out.put(key, new Pending(cur, v ?? null)));
  }

  /** The shared entry of the current generation for (attrs, nextHop). */
  private entry(attrs: PathAttributes, nextHop: Uint8Array): OutEntry {
    const had = this.entries.get(attrs);
    if (had !== undefined && !(had instanceof Map) && had.nextHop === nextHop) return had;
    let e = had instanceof Map ? had.get(nextHop) : undefined;
    if (e !== undefined) return e;
    e = { attrs, nextHop, stamp: this.gen };
    if (had === undefined) this.entries.set(attrs, e);
    else if (had instanceof Map) had.set(nextHop, e);
    else this.entries.set(attrs, new Map([[had.nextHop, had], [nextHop, e]]));
    return e;
  }

  /** Withdraw a prefix whose table value is `v` (it stands for an entry). */
  private remove(key: PrefixKey, v: OutEntry | Pending): void {
    this.change(key, v, null);
    this.counts[familyOfKey(key)]!--;
  }

  /** The last decision, reused for the next route like it (the prefixes of one UPDATE, of one table dump). */
  private readonly last = new LastVerdict<Decision>();

  /**
   * decide() through the last decision, made under this peer and these
   * policies (reconfigure and setPolicies start afresh); the source's
   * router id and route-reflector-client flag, which may change in place,
   * are part of the match.
   */
  private decideMemo(route: Route, afi: number): Decision {
    if (!this.last.ready(this.peer, null, this.peer.export, this.policies)) return this.decide(route, afi);
    const tag = route.source.routerId * 2 + (route.source.rrClient ? 1 : 0);
    return this.last.get(route, afi, tag) ?? this.last.remember(route, afi, tag, this.decide(route, afi));
  }

  /** Rules (a)–(g) for one route: the attributes and next hop to send, or why not. */
  private decide(route: Route, afi: number): Decision {
    const src = route.source;
    const peer = this.peer;
    // (a) not back to where it came from
    if (!src.local && (src.id === this.peerId || src.id === peer.address || (src.addressBytes.length > 0 && bytesEqual(src.addressBytes, this.peerAddrBytes)))) {
      return "learned from this peer";
    }
    // (g) well-known communities
    const comms = route.attrs.communities;
    for (let i = 0; i < comms.length; i++) {
      const c = comms[i]!;
      if (c === NO_ADVERTISE) return "NO_ADVERTISE";
      if (!this.ibgp && (c === NO_EXPORT || c === NO_EXPORT_SUBCONFED)) return c === NO_EXPORT ? "NO_EXPORT" : "NO_EXPORT_SUBCONFED";
      if (c === LLGR_STALE && !this.n.peerLongLivedGracefulRestart) return "LLGR_STALE, and the peer does no long-lived graceful restart";
    }
    // (b) iBGP split horizon / route reflection
    let reflectOriginator: string | null = null;
    if (this.ibgp) {
      if (!src.local && src.ibgp) {
        if (!src.rrClient && !peer.routeReflectorClient) return "iBGP split horizon";
        reflectOriginator = route.attrs.originatorId ?? ipText(src.routerId);
        if (reflectOriginator === this.peerRouterId) return "not reflected to the originator";
      } else if (route.attrs.originatorId !== null && route.attrs.originatorId === this.peerRouterId) {
        return "not sent to the originator";
      }
    } else if (!peer.asOverride && pathHasAs(route.attrs.asPath, peer.remoteAs)) {
      // (c) sender-side loop prevention
      return `peer AS ${peer.remoteAs} in the AS path`;
    }
    // (d) export policy
    const pr = applyPolicy(peer.export, this.ibgp ? "ibgp" : "ebgp", route, this.policyCtx[afi]!, this.policies, this.scratch);
    if (!pr.accept) return pr.reason;
    if (!this.ibgp) {
      // (e) eBGP
      const nh = pr.nextHopSet ? this.usableNh(afi, pr.nextHop) : this.selfNh[afi]!;
      if (!nh) return pr.nextHopSet ? "next hop set by policy is not usable for this family" : `no ${afi === AFI.IPV6 ? "IPv6" : "IPv4"} next hop on this session`;
      const keepMed = src.local || pr.medSet;
      const memo = this.memoEbgp[keepMed ? 1 : 0]!;
      let a = memo.get(pr.attrs);
      if (!a) memo.set(pr.attrs, (a = this.internAttrs(this.rewriteEbgp(pr.attrs, keepMed))));
      return { attrs: a, nextHop: nh, reason: pr.reason };
    }
    // (f) iBGP
    let nh: Uint8Array | null;
    if (pr.nextHopSet) nh = this.usableNh(afi, pr.nextHop);
    else if (peer.nextHopSelf || route.nextHop.length === 0) nh = this.selfNh[afi]!;
    else nh = this.usableNh(afi, route.nextHop) ?? this.selfNh[afi]!;
    if (!nh) return `no usable ${afi === AFI.IPV6 ? "IPv6" : "IPv4"} next hop`;
    let a: PathAttributes | undefined;
    if (reflectOriginator === null) {
      a = this.memoIbgp.get(pr.attrs);
      if (!a) this.memoIbgp.set(pr.attrs, (a = this.internAttrs(this.rewriteIbgp(pr.attrs, null))));
    } else {
      let m = this.memoReflect.get(pr.attrs);
      if (!m) this.memoReflect.set(pr.attrs, (m = new Map()));
      a = m.get(reflectOriginator);
      if (!a) m.set(reflectOriginator, (a = this.internAttrs(this.rewriteIbgp(pr.attrs, reflectOriginator))));
    }
    return { attrs: a, nextHop: nh, reason: pr.reason };
  }

  /**
   * One object per distinct outgoing attribute set (structural), so that
   * routes whose input sets were equal but distinct objects still share one
   * output object: identical re-exports compare by identity and flush packs
   * them together. Held weakly (as the decoder's attribute cache): a set
   * leaves when nothing uses it any more.
   */
  private internAttrs(a: PathAttributes): PathAttributes {
    const h = attrsHash(a);
    const b = this.interned.get(h);
    if (b !== undefined) {
      if (Array.isArray(b)) {
        for (const r of b) {
          const x = r.deref();
          if (x !== undefined && attrsEqual(a, x)) return x;
        }
      } else {
        const x = b.deref();
        if (x !== undefined && attrsEqual(a, x)) return x;
      }
    }
    const ref = new WeakRef(a);
    this.internSweep.register(a, h);
    if (b === undefined) this.interned.set(h, ref);
    else if (Array.isArray(b)) b.push(ref);
    else this.interned.set(h, b.deref() === undefined ? ref : [b, ref]);
    return a;
  }

  /** Distinct outgoing attribute sets held (live or not yet swept), for tests. */
  get internedSets(): number {
    let n = 0;
    for (const b of this.interned.values()) n += Array.isArray(b) ? b.length : 1;
    return n;
  }

  /** Drop the collected sets of bucket `h`. */
  private sweepInterned(h: number): void {
    const b = this.interned.get(h);
    if (b === undefined) return;
    if (!Array.isArray(b)) {
      if (b.deref() === undefined) this.interned.delete(h);
      return;
    }
    const live = b.filter((r) => r.deref() !== undefined);
    if (live.length === 0) this.interned.delete(h);
    else if (live.length === 1) this.interned.set(h, live[0]!);
    else if (live.length !== b.length) this.interned.set(h, live);
  }

  private rewriteEbgp(a: PathAttributes, keepMed: boolean): PathAttributes {
    const path = this.peer.asOverride ? replaceAs(a.asPath, this.peer.remoteAs, this.localAs) : a.asPath;
    return {
      ...a,
      origin: a.origin ?? ORIGIN.IGP,
      asPath: prependAs(path, this.localAs, 1),
      nextHop: null,
      med: keepMed ? a.med : null,
      localPref: null,
      originatorId: null,
      // The received set's own empty list when it has none (sets are never changed in place).
      clusterList: a.clusterList.length === 0 ? a.clusterList : [],
    };
  }

  private rewriteIbgp(a: PathAttributes, originator: string | null): PathAttributes {
    const c: PathAttributes = {
      ...a,
      origin: a.origin ?? ORIGIN.IGP,
      asPath: a.asPath ?? [],
      nextHop: null,
      localPref: a.localPref ?? DEFAULT_LOCAL_PREF,
    };
    if (originator !== null) {
      c.originatorId = originator;
      c.clusterList = [this.clusterId, ...a.clusterList];
    }
    return c;
  }

  /**
   * The UPDATEs for every change queued since the last flush: withdrawals
   * first, then announcements grouped by (attributes, next hop), packed.
   * Cheap when nothing is queued.
   */
  flush(): Uint8Array[] {
    return this.take(Infinity);
  }

  /**
   * The UPDATEs for the next `max` queued prefixes (oldest queued first; a
   * change that cancelled out counts, and sends nothing):
   * withdrawals first, then announcements grouped by (attributes, next hop),
   * packed. Empty when nothing is queued.
   */
  take(max: number): Uint8Array[] {
    if (this.queue.length === 0) return [];
    // Keys, not Prefix objects: they are written into NLRI form straight from the key.
    const wd: PrefixKey[][] = [[], [], []];
    const groups: Map<PathAttributes, Map<Uint8Array, PrefixKey[]>>[] = [new Map(), new Map(), new Map()];
    for (let n = 0; n < max; n++) {
      const at = this.queue.shift();
      if (at === undefined) break;
      // A queued prefix is never deleted before this: the position is still its own.
      const key = this.out.keyAt(at);
      const p = this.out.valueAt(at) as Pending;
      const cur = p.cur;
      if (cur === null) this.out.delete(key);
      else this.out.setValueAt(at, cur);
      if (sameEntry(p.prev, cur)) continue;
      const afi = familyOfKey(key);
      if (cur === null) {
        wd[afi]!.push(key);
        continue;
      }
      const g = groups[afi]!;
      let byNh = g.get(cur.attrs);
      if (!byNh) g.set(cur.attrs, (byNh = new Map()));
      let list = byNh.get(cur.nextHop);
      if (!list) byNh.set(cur.nextHop, (list = []));
      list.push(key);
    }
    const msgs: Uint8Array[] = [];
    for (const afi of [AFI.IPV4, AFI.IPV6]) {
      if (wd[afi]!.length) for (const m of buildWithdrawalsNlri(afi, SAFI.UNICAST, this.nlriOf(afi, wd[afi]!), this.enc)) msgs.push(m);
    }
    for (const afi of [AFI.IPV4, AFI.IPV6]) {
      for (const [attrs, byNh] of groups[afi]!) {
        for (const [nh, list] of byNh) for (const m of buildAnnouncementsNlri(afi, SAFI.UNICAST, this.nlriOf(afi, list), attrs, nh, this.enc)) msgs.push(m);
      }
    }
    return msgs;
  }

  /** The keys in NLRI form (path id 1 under ADD-PATH send), in a scratch buffer the builders copy from. */
  private nlriOf(afi: number, keys: readonly PrefixKey[]): NlriBytes {
    const w = this.nlriScratch;
    w.len = 0;
    const addPath = this.addPath[afi]!;
    for (const k of keys) writeKeyNlri(w, k, addPath, 1);
    return w;
  }

  /** End-of-RIB markers (RFC 4724) for every negotiated family: send after the initial table. */
  endOfRib(): Uint8Array[] {
    return this.n.families.map((f) => encodeEndOfRib(f.afi, f.safi));
  }

  /**
   * The peer asked for a route refresh (RFC 2918) of a family (all families
   * when afi is undefined): re-queue every advertised prefix of it, and
   * return the flushed UPDATEs (everything queued, the re-queued table
   * included). Enhanced route refresh markers (BoRR/EoRR) are the caller's.
   */
  refresh(afi?: number, safi: number = SAFI.UNICAST): Uint8Array[] {
    for (const _ of this.requeue(afi, safi));
    return this.flush();
  }

  /** Re-queue every advertised prefix of a family (all when afi is undefined), one prefix per step. */
  *requeue(afi?: number, safi: number = SAFI.UNICAST): Generator<void> {
    if (safi !== SAFI.UNICAST) return;
    for (const [key, v] of this.out) {
      if (afi !== undefined && familyOfKey(key) !== afi) continue;
      // prev null: "the peer has nothing", so take() sends it even when unchanged.
      // (A queued withdrawal stays as it is: the peer may have the prefix.)
      if (v instanceof Pending) {
        if (v.cur !== null) this.out.set(key, new Pending(v.cur, null));
      } else this.change(key, undefined, v);
      yield;
    }
  }

  /**
   * Call right after exporting every Loc-RIB best route again (soft reset
   * out): withdraws whatever was not exported since the previous resync (or
   * since construction), then starts a new generation.
   */
  resync(): void {
    for (const _ of this.resyncSteps());
  }

  /** resync() one prefix per step (the generation moves on when the walk is complete). */
  *resyncSteps(): Generator<void> {
    const gen = this.gen;
    for (const [key, v] of this.out) {
      const e = current(v);
      if (e !== null && e.stamp !== gen) this.remove(key, v);
      yield;
    }
    this.gen = gen + 1;
    this.entries = new WeakMap();
  }

  /** Number of prefixes advertised (including queued changes), for a family or in total. */
  advertisedCount(family?: Afi | FamilyName | number): number {
    if (family === undefined) return this.counts[AFI.IPV4]! + this.counts[AFI.IPV6]!;
    return this.counts[afiOf(family)] ?? 0;
  }

  /**
   * The advertised routes as the peer gets them (attributes and next hop as
   * sent, `source` where they were learned), for `show rib --neighbor X
   * --out`: a walk, one route made per step.
   */
  *routes(family?: Afi | FamilyName | number): IterableIterator<Route> {
    const want = family === undefined ? 0 : afiOf(family);
    for (const [key, v] of this.out) {
      if (want && familyOfKey(key) !== want) continue;
      const e = current(v);
      const r = e === null ? null : this.sent(key, e);
      if (r !== null) yield r;
    }
  }

  /** The advertised route of one prefix, if any (same shape as routes()). */
  get(key: PrefixKey): Route | null {
    const v = this.out.get(key);
    const e = v === undefined ? null : current(v);
    return e !== null ? this.sent(key, e) : null;
  }

  private sent(key: PrefixKey, e: OutEntry): Route | null {
    const from = this.origin(key);
    return from === null ? null : withFields(from, { pathId: this.addPath[familyOfKey(key)] ? 1 : 0, attrs: e.attrs, nextHop: e.nextHop, stale: false });
  }
}
