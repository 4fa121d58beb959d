/**
 * UPDATE message (RFC 4271 §4.3, RFC 4760 MP_REACH/MP_UNREACH, RFC 7911
 * ADD-PATH, RFC 8950 IPv6 next hop for IPv4, End-of-RIB of RFC 4724) with the
 * error handling of RFC 4271 §6.3 as revised by RFC 7606:
 *   - errors that make the NLRI impossible to locate reset the session
 *     (decodeUpdate throws BgpError with the NOTIFICATION to send);
 *   - attribute errors make the UPDATE "treat-as-withdraw" (its NLRI are
 *     withdrawn) or discard the attribute; both are reported in `issues`.
 * NLRI stay in the message buffer as checked blocks: walking them allocates
 * nothing, which keeps a full table cheap.
 */
import {
  AttrCache,
  sharedAttrCache,
  type AttrContext,
  type AttrIssue,
  type PathAttributes,
  type RawAttr,
  attrName,
  decodeAttributes,
  decodeScannedAttributes,
  emptyAttributes,
  scanAttributes,
  scanTable,
  SCAN_STRIDE,
  type AttributeBlocks,
  attributeBlocks,
  cachedIssues,
  encodeAttributes,
  splitAttributes,
} from "./attributes.ts";
import { Writer, copyInto, internNextHop, u16 } from "./bytes.ts";
import { BgpError } from "./errors.ts";
import { frame } from "./framer.ts";
import { addPathReceive, type Negotiated } from "./negotiate.ts";
import { checkNlri, nlriProblem, nlriToPrefixes, writePrefix } from "./prefix.ts";
import { parseAddr } from "../core/addr.ts";
import { AFI, type Afi, ATTR, BGP_HEADER_LEN, ERR, FLAG, type Family, MsgType, type Prefix, SAFI, UPDATE_SUB } from "./types.ts";

/** A checked NLRI field inside a message buffer. */
export interface NlriBlock {
  afi: Afi;
  safi: number;
  addPath: boolean;
  buf: Uint8Array;
  start: number;
  end: number;
  count: number;
}

export interface MpReach {
  afi: number;
  safi: number;
  /** 4, 16 or 32 (global + link-local) bytes. */
  nextHop: Uint8Array;
  nlri: NlriBlock | null;
}

export interface MpUnreach {
  afi: number;
  safi: number;
  withdrawn: NlriBlock | null;
}

export interface UpdateMessage {
  /** IPv4 unicast withdrawn routes field. */
  withdrawn: NlriBlock | null;
  /** IPv4 unicast NLRI field. */
  nlri: NlriBlock | null;
  mpReach: MpReach | null;
  mpUnreach: MpUnreach | null;
  /** Decoded attributes (shared, immutable when interned); null when the UPDATE has none. */
  attrs: PathAttributes | null;
  /** RFC 7606: the NLRI of this UPDATE must be handled as withdrawn. */
  treatAsWithdraw: boolean;
  issues: AttrIssue[];
  /** Set when the message is an End-of-RIB marker. */
  endOfRib: Family | null;
}

export interface UpdateContext extends AttrContext {
  addPathReceive: (afi: number, safi: number) => boolean;
  /** Negotiated families; MP attributes of other families are ignored. Undefined: accept IPv4/IPv6 unicast. */
  families?: Family[];
  /** Interning cache for attribute sets (sessions: the daemon-wide one of their context). */
  cache?: AttrCache;
  /**
   * Our own address on the session (4 or 16 bytes): a next hop equal to it
   * is semantically incorrect (RFC 4271 §6.3, RFC 7606 §7.3), the route is
   * treated as withdrawn.
   */
  ownAddress?: Uint8Array;
}

/** The decoding context of an Established session; `localAddress` is the socket's own address. */
export function updateContext(n: Negotiated, ibgp: boolean, localAddress?: string): UpdateContext {
  const own = localAddress ? parseAddr(localAddress.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, "")) : null;
  return {
    fourOctetAs: n.fourOctetAs,
    ibgp,
    addPathReceive: (afi, safi) => addPathReceive(n, afi, safi),
    families: n.families,
    cache: sharedAttrCache({ fourOctetAs: n.fourOctetAs, ibgp }),
    ownAddress: own?.addr,
  };
}

/** The next hop (IPv4 NEXT_HOP, or MP_REACH_NLRI's, whose first 16 bytes are the global address) is our own address. */
function ownNextHop(ctx: UpdateContext, nh: Uint8Array): boolean {
  const own = ctx.ownAddress;
  if (!own || (nh.length !== own.length && !(own.length === 16 && nh.length === 32))) return false;
  for (let i = 0; i < own.length; i++) if (nh[i] !== own[i]) return false;
  return true;
}

function malformedList(msg: string): BgpError {
  return new BgpError(ERR.UPDATE, UPDATE_SUB.MALFORMED_ATTRIBUTE_LIST, msg);
}

function rawAttrBytes(a: RawAttr): Uint8Array {
  const w = new Writer(a.value.length + 4);
  const ext = (a.flags & FLAG.EXTENDED) !== 0;
  w.u8(a.flags).u8(a.type);
  if (ext) w.u16(a.value.length);
  else w.u8(a.value.length);
  return w.bytes(a.value).finish();
}

function optionalAttrError(a: RawAttr, msg: string): BgpError {
  return new BgpError(ERR.UPDATE, UPDATE_SUB.OPTIONAL_ATTRIBUTE_ERROR, msg, rawAttrBytes(a));
}

function block(buf: Uint8Array, start: number, end: number, afi: Afi, safi: number, addPath: boolean, count: number): NlriBlock | null {
  if (count === 0) return null;
  return { afi, safi, addPath, buf, start, end, count };
}

function familyAllowed(ctx: UpdateContext, afi: number, safi: number): boolean {
  const fs = ctx.families;
  if (fs) {
    // (A loop: a closure capturing afi and safi would cost a function and a scope object per MP_REACH/MP_UNREACH UPDATE.)
    for (let i = 0; i < fs.length; i++) if (fs[i]!.afi === afi && fs[i]!.safi === safi) return true;
    return false;
  }
  return (afi === AFI.IPV4 || afi === AFI.IPV6) && safi === SAFI.UNICAST;
}

function validNextHopLen(afi: number, len: number): boolean {
  if (afi === AFI.IPV6) return len === 16 || len === 32;
  return len === 4 || len === 16 || len === 32; // 16/32: RFC 8950 IPv6 next hop for IPv4
}

/** True for an IPv4 next hop that can never be a unicast gateway (0/8, multicast, class E, broadcast). */
function martianNextHop(nh: Uint8Array): boolean {
  const a = nh[0]!;
  return a === 0 || a >= 224;
}

/**
 * An UPDATE's issues until it has one (frozen: `addIssue` puts a new list
 * in its place), so that the common UPDATE, without any, allocates no list.
 */
const NO_ISSUES_YET: AttrIssue[] = Object.freeze([]) as unknown as AttrIssue[];

/** Where the attribute decoder reports a new set's issues (taken out at once). */
const decodeIssues: AttrIssue[] = [];

function addIssue(msg: UpdateMessage, i: AttrIssue): void {
  if (msg.issues === NO_ISSUES_YET) msg.issues = [];
  msg.issues.push(i);
}

/**
 * One MP_REACH_NLRI or MP_UNREACH_NLRI attribute of an UPDATE being decoded
 * (flags, type, its value at [vs, ve) of `buf`; `total`: the UPDATE's
 * attribute count), into `msg`: whether it is an MP_REACH_NLRI whose NLRI
 * field is not empty. Its errors reset the session (RFC 7606 §5.3, §7.11).
 */
function mpAttribute(msg: UpdateMessage, ctx: UpdateContext, buf: Uint8Array, flags: number, type: number, vs: number, ve: number, total: number): boolean {
  const len = ve - vs;
  if ((flags & (FLAG.OPTIONAL | FLAG.TRANSITIVE)) !== FLAG.OPTIONAL) {
    throw new BgpError(ERR.UPDATE, UPDATE_SUB.ATTRIBUTE_FLAGS_ERROR, `${attrName(type)} has wrong flags`, rawAttrBytes(rawAt(buf, flags, type, vs, ve)));
  }
  if (type === ATTR.MP_REACH_NLRI) {
    if (msg.mpReach) throw malformedList("MP_REACH_NLRI appears twice");
    if (len < 5) throw optionalAttrError(rawAt(buf, flags, type, vs, ve), `MP_REACH_NLRI length ${len}`);
    const afi = u16(buf, vs);
    const safi = buf[vs + 2]!;
    const nhl = buf[vs + 3]!;
    if (4 + nhl + 1 > len) throw optionalAttrError(rawAt(buf, flags, type, vs, ve), `MP_REACH_NLRI next hop length ${nhl} overruns the attribute`);
    const mp: MpReach = { afi, safi, nextHop: internNextHop(buf, vs + 4, vs + 4 + nhl), nlri: null };
    msg.mpReach = mp;
    const encodesNlri = 4 + nhl + 1 < len;
    if (!familyAllowed(ctx, afi, safi)) {
      addIssue(msg, { action: "attribute-discard", attr: type, reason: `MP_REACH_NLRI for unnegotiated family ${afi}/${safi} ignored` });
      return encodesNlri;
    }
    if (!validNextHopLen(afi, nhl)) throw optionalAttrError(rawAt(buf, flags, type, vs, ve), `MP_REACH_NLRI next hop length ${nhl} invalid for AFI ${afi}`);
    const ns = vs + 4 + nhl + 1;
    const ap = ctx.addPathReceive(afi, safi);
    const c = checkNlri(buf, ns, ve, afi, ap);
    if (c < 0) throw optionalAttrError(rawAt(buf, flags, type, vs, ve), `MP_REACH_NLRI: ${nlriProblem}`);
    mp.nlri = block(buf, ns, ve, afi as Afi, safi, ap, c);
    return encodesNlri;
  }
  if (msg.mpUnreach) throw malformedList("MP_UNREACH_NLRI appears twice");
  if (len < 3) throw optionalAttrError(rawAt(buf, flags, type, vs, ve), `MP_UNREACH_NLRI length ${len}`);
  const afi = u16(buf, vs);
  const safi = buf[vs + 2]!;
  const mu: MpUnreach = { afi, safi, withdrawn: null };
  msg.mpUnreach = mu;
  if (!familyAllowed(ctx, afi, safi)) {
    addIssue(msg, { action: "attribute-discard", attr: type, reason: `MP_UNREACH_NLRI for unnegotiated family ${afi}/${safi} ignored` });
    return false;
  }
  const ap = ctx.addPathReceive(afi, safi);
  const c = checkNlri(buf, vs + 3, ve, afi, ap);
  if (c < 0) throw optionalAttrError(rawAt(buf, flags, type, vs, ve), `MP_UNREACH_NLRI: ${nlriProblem}`);
  mu.withdrawn = block(buf, vs + 3, ve, afi as Afi, safi, ap, c);
  // Alone in the UPDATE, empty: End-of-RIB for its family (RFC 4724 §2).
  if (c === 0 && total === 1 && !msg.nlri && !msg.withdrawn) msg.endOfRib = { afi, safi };
  return false;
}

/** An attribute as a RawAttr (a view of its value): for the error paths. */
function rawAt(buf: Uint8Array, flags: number, type: number, vs: number, ve: number): RawAttr {
  return { flags, type, value: buf.subarray(vs, ve) };
}

/**
 * Decode an UPDATE body. Throws BgpError only when the session must be reset;
 * otherwise the result tells what to do (treat-as-withdraw, discarded attributes).
 */
export function decodeUpdate(body: Uint8Array, ctx: UpdateContext): UpdateMessage {
  return decodeUpdateIn(body, 0, body.length, ctx);
}

/**
 * `decodeUpdate` of the body at [start, end) of `buf` (a received chunk: no
 * view made per message). Offsets in what it returns (NLRI blocks) are
 * `buf`'s.
 */
export function decodeUpdateIn(buf: Uint8Array, start: number, end: number, ctx: UpdateContext): UpdateMessage {
  if (end - start < 4) throw malformedList("UPDATE shorter than 4 bytes");
  const wl = u16(buf, start);
  if (start + 2 + wl + 2 > end) throw malformedList(`withdrawn routes length ${wl} overruns the message`);
  const tal = u16(buf, start + 2 + wl);
  const attrStart = start + 4 + wl;
  const attrEnd = attrStart + tal;
  if (attrEnd > end) throw malformedList(`total path attribute length ${tal} overruns the message`);

  const ap4 = ctx.addPathReceive(AFI.IPV4, SAFI.UNICAST);
  const wc = checkNlri(buf, start + 2, start + 2 + wl, AFI.IPV4, ap4);
  if (wc < 0) throw new BgpError(ERR.UPDATE, UPDATE_SUB.INVALID_NETWORK_FIELD, `withdrawn routes: ${nlriProblem}`);
  const nc = checkNlri(buf, attrEnd, end, AFI.IPV4, ap4);
  if (nc < 0) throw new BgpError(ERR.UPDATE, UPDATE_SUB.INVALID_NETWORK_FIELD, `NLRI: ${nlriProblem}`);

  const msg: UpdateMessage = {
    withdrawn: block(buf, start + 2, start + 2 + wl, AFI.IPV4, SAFI.UNICAST, ap4, wc),
    nlri: block(buf, attrEnd, end, AFI.IPV4, SAFI.UNICAST, ap4, nc),
    mpReach: null,
    mpUnreach: null,
    attrs: null,
    treatAsWithdraw: false,
    issues: NO_ISSUES_YET,
    endOfRib: null,
  };
  if (tal === 0) {
    if (wl === 0 && end - start === 4) msg.endOfRib = { afi: AFI.IPV4, safi: SAFI.UNICAST };
    if (msg.nlri) {
      msg.treatAsWithdraw = true;
      addIssue(msg, { action: "treat-as-withdraw", attr: 0, reason: "NLRI without path attributes" });
    }
    return msg;
  }

  // One pass over the attribute headers; views are made only where needed.
  const scanned = scanAttributes(buf, attrStart, attrEnd);
  let overrun: string | null = null;
  let nonMp: RawAttr[] | null = null;
  let total: number;
  /** An MP_REACH_NLRI with a non-empty NLRI field, of any family (RFC 7606 §5.2). */
  let mpReachEncodesNlri = false;
  let mpCount = 0;
  // MP_REACH / MP_UNREACH: located first; errors here reset the session (RFC 7606 §5.3, §7.11).
  if (scanned < 0) {
    const split = splitAttributes(buf, attrStart, attrEnd);
    overrun = split.overrun;
    const raw = split.attrs;
    // RFC 7606 §4: treat-as-withdraw "unless some other, more severe error is
    // encountered". An MP_REACH_NLRI / MP_UNREACH_NLRI that overruns the section
    // is malformed and its NLRI cannot be located: session reset (§7.11, §5.3).
    const last = raw[raw.length - 1];
    const at = last ? last.value.byteOffset - buf.byteOffset + last.value.length : attrStart;
    const t = attrEnd - at >= 2 ? buf[at + 1]! : -1;
    if (t === ATTR.MP_REACH_NLRI || t === ATTR.MP_UNREACH_NLRI) {
      throw new BgpError(ERR.UPDATE, UPDATE_SUB.OPTIONAL_ATTRIBUTE_ERROR, `${attrName(t)}: ${overrun}`, buf.slice(at, attrEnd));
    }
    msg.treatAsWithdraw = true;
    addIssue(msg, { action: "treat-as-withdraw", attr: 0, reason: overrun! });
    nonMp = raw.filter((a) => a.type !== ATTR.MP_REACH_NLRI && a.type !== ATTR.MP_UNREACH_NLRI);
    total = raw.length;
    for (const a of raw) {
      if (a.type !== ATTR.MP_REACH_NLRI && a.type !== ATTR.MP_UNREACH_NLRI) continue;
      mpCount++;
      const vs = a.value.byteOffset - buf.byteOffset;
      if (mpAttribute(msg, ctx, buf, a.flags, a.type, vs, vs + a.value.length, total)) mpReachEncodesNlri = true;
    }
  } else {
    // Straight from the scan table (no view or object per attribute: every IPv6 UPDATE has one).
    total = scanned;
    const sc = scanTable();
    for (let i = 0; i < scanned; i++) {
      const j = i * SCAN_STRIDE;
      const type = sc[j + 1]!;
      if (type !== ATTR.MP_REACH_NLRI && type !== ATTR.MP_UNREACH_NLRI) continue;
      mpCount++;
      const flags = sc[j]!;
      if (mpAttribute(msg, ctx, buf, flags, type, sc[j + 2]! + (flags & FLAG.EXTENDED ? 4 : 3), sc[j + 3]!, total)) mpReachEncodesNlri = true;
    }
  }
  const otherAttrs = total - mpCount;

  // Other attributes, interned by their raw bytes (the scan table is still ours:
  // nothing above scans again).
  let attrs: PathAttributes;
  let issues: AttrIssue[];
  const cache = ctx.cache;
  const hit = cache && scanned > 0 && otherAttrs > 0 ? cache.lookupScan(buf, scanned) : undefined;
  if (hit !== undefined) {
    attrs = hit;
    issues = cachedIssues(hit);
  } else {
    decodeIssues.length = 0; // (a decode that threw left its own)
    attrs = scanned >= 0 ? decodeScannedAttributes(buf, scanned, ctx, decodeIssues) : decodeAttributes(nonMp ?? [], ctx, decodeIssues);
    issues = decodeIssues.length === 0 ? NO_ISSUES_YET : decodeIssues.splice(0);
    if (cache && scanned > 0 && otherAttrs > 0) cache.insertScan(buf, scanned, attrs, issues);
  }
  msg.attrs = attrs;
  for (const i of issues) {
    addIssue(msg, i);
    if (i.action === "treat-as-withdraw") msg.treatAsWithdraw = true;
  }
  // RFC 7606 §5.2: attributes but no reachable NLRI means the NLRI may not have
  // been located correctly; any error other than attribute discard is a session reset.
  if (msg.treatAsWithdraw && !msg.nlri && !mpReachEncodesNlri) {
    const first = msg.issues.find((i) => i.action === "treat-as-withdraw");
    throw malformedList(`UPDATE without reachable NLRI has a malformed attribute: ${first?.reason ?? "?"}`);
  }

  // Well-known mandatory attributes (RFC 7606 §3.d: missing ones mean treat-as-withdraw).
  const at = msg.attrs;
  const hasReach = !!(msg.nlri || msg.mpReach?.nlri);
  if (hasReach && !msg.treatAsWithdraw) {
    if (at.origin === null || at.asPath === null || (msg.nlri && at.nextHop === null)) {
      const missing = [at.origin === null && "ORIGIN", at.asPath === null && "AS_PATH", msg.nlri && at.nextHop === null && "NEXT_HOP"].filter(Boolean);
      msg.treatAsWithdraw = true;
      addIssue(msg, { action: "treat-as-withdraw", attr: 0, reason: `missing well-known attribute ${missing.join(", ")}` });
    } else if (msg.nlri && at.nextHop && martianNextHop(at.nextHop)) {
      msg.treatAsWithdraw = true;
      addIssue(msg, { action: "treat-as-withdraw", attr: ATTR.NEXT_HOP, reason: `invalid NEXT_HOP ${at.nextHop.join(".")}` });
    } else if ((msg.nlri && at.nextHop && ownNextHop(ctx, at.nextHop)) || (msg.mpReach?.nlri && ownNextHop(ctx, msg.mpReach.nextHop))) {
      msg.treatAsWithdraw = true;
      addIssue(msg, { action: "treat-as-withdraw", attr: msg.nlri ? ATTR.NEXT_HOP : ATTR.MP_REACH_NLRI, reason: "the next hop is our own address on this session" });
    }
  }
  return msg;
}

/** The blocks whose prefixes are announced by this UPDATE (none under treat-as-withdraw), added to `out`. */
export function announcedBlocks(u: UpdateMessage, out: NlriBlock[] = []): NlriBlock[] {
  if (u.treatAsWithdraw) return out;
  if (u.nlri) out.push(u.nlri);
  if (u.mpReach?.nlri) out.push(u.mpReach.nlri);
  return out;
}

/** The blocks whose prefixes are withdrawn (including announced ones under treat-as-withdraw), added to `out`. */
export function withdrawnBlocks(u: UpdateMessage, out: NlriBlock[] = []): NlriBlock[] {
  if (u.withdrawn) out.push(u.withdrawn);
  if (u.mpUnreach?.withdrawn) out.push(u.mpUnreach.withdrawn);
  if (u.treatAsWithdraw) {
    if (u.nlri) out.push(u.nlri);
    if (u.mpReach?.nlri) out.push(u.mpReach.nlri);
  }
  return out;
}

export function blockPrefixes(b: NlriBlock | null): Prefix[] {
  return b ? nlriToPrefixes(b.buf, b.start, b.end, b.afi, b.addPath) : [];
}

// ---------------------------------------------------------------- encoding

export interface EncodeContext {
  fourOctetAs: boolean;
  addPathSend: (afi: number, safi: number) => boolean;
  /** Maximum message size: 4096, or 65535 with extended messages. */
  maxLen: number;
}

export interface UpdateParts {
  withdrawn?: Prefix[];
  attrs?: PathAttributes | null;
  mpReach?: { afi: number; safi: number; nextHop: Uint8Array; nlri: Prefix[] } | null;
  mpUnreach?: { afi: number; safi: number; withdrawn: Prefix[] } | null;
  nlri?: Prefix[];
}

function mpReachValue(r: NonNullable<UpdateParts["mpReach"]>, addPath: boolean): Uint8Array {
  const w = new Writer(64);
  w.u16(r.afi).u8(r.safi).u8(r.nextHop.length).bytes(r.nextHop).u8(0);
  for (const p of r.nlri) writePrefix(w, p, addPath);
  return w.finish();
}

function mpUnreachValue(u: NonNullable<UpdateParts["mpUnreach"]>, addPath: boolean): Uint8Array {
  const w = new Writer(64);
  w.u16(u.afi).u8(u.safi);
  for (const p of u.withdrawn) writePrefix(w, p, addPath);
  return w.finish();
}

/**
 * Encode one UPDATE (whole message with header) from its parts, with no
 * packing or size check. Attributes are written in type order.
 */
export function encodeUpdate(parts: UpdateParts, ctx: Pick<EncodeContext, "fourOctetAs" | "addPathSend">, markPartial = true): Uint8Array {
  const ap4 = ctx.addPathSend(AFI.IPV4, SAFI.UNICAST);
  const extra: RawAttr[] = [];
  if (parts.mpReach) {
    extra.push({ flags: FLAG.OPTIONAL, type: ATTR.MP_REACH_NLRI, value: mpReachValue(parts.mpReach, ctx.addPathSend(parts.mpReach.afi, parts.mpReach.safi)) });
  }
  if (parts.mpUnreach) {
    extra.push({
      flags: FLAG.OPTIONAL,
      type: ATTR.MP_UNREACH_NLRI,
      value: mpUnreachValue(parts.mpUnreach, ctx.addPathSend(parts.mpUnreach.afi, parts.mpUnreach.safi)),
    });
  }
  const attrBytes = parts.attrs
    ? encodeAttributes(parts.attrs, ctx.fourOctetAs, extra, markPartial)
    : extra.length
      ? encodeAttributes(emptyAttributes(), ctx.fourOctetAs, extra, markPartial)
      : new Uint8Array(0);
  const w = new Writer(64 + attrBytes.length);
  const wlAt = w.len;
  w.u16(0);
  for (const p of parts.withdrawn ?? []) writePrefix(w, p, ap4);
  w.patch16(wlAt, w.len - 2);
  w.u16(attrBytes.length).bytes(attrBytes);
  for (const p of parts.nlri ?? []) writePrefix(w, p, ap4);
  return frame(MsgType.UPDATE, w.finish());
}


/** End-of-RIB marker for a family (RFC 4724 §2). */
export function encodeEndOfRib(afi: number, safi: number): Uint8Array {
  if (afi === AFI.IPV4 && safi === SAFI.UNICAST) return frame(MsgType.UPDATE, new Uint8Array(4));
  return encodeUpdate({ mpUnreach: { afi, safi, withdrawn: [] } }, { fourOctetAs: true, addPathSend: () => false });
}

/** Prefixes in NLRI wire form, back to back (`buf[0..len)`), as `writePrefix` writes them. */
export interface NlriBytes {
  buf: Uint8Array;
  len: number;
}

/** The prefixes in NLRI wire form (path ids included under ADD-PATH). */
export function nlriBytes(prefixes: readonly Prefix[], addPath: boolean): NlriBytes {
  const w = new Writer(prefixes.length * (addPath ? 9 : 5) + 16);
  for (const p of prefixes) writePrefix(w, p, addPath);
  return { buf: w.buf, len: w.len };
}

/** End offsets of the runs of whole prefixes of `nlri` that fit `budget` bytes each. */
function nlriRuns(nlri: NlriBytes, addPath: boolean, budget: number): number[] {
  const ends: number[] = [];
  const b = nlri.buf;
  let runStart = 0;
  let off = 0;
  while (off < nlri.len) {
    const size = (addPath ? 4 : 0) + 1 + ((b[off + (addPath ? 4 : 0)]! + 7) >> 3);
    if (off + size - runStart > budget && off > runStart) {
      ends.push(off);
      runStart = off;
    }
    off += size;
  }
  if (off > runStart) ends.push(off);
  return ends;
}

/** Header of a path attribute with a value of `len` bytes (extended length above 255). */
function attrHeader(out: Uint8Array, at: number, flags: number, type: number, len: number): number {
  if (len > 255) {
    out[at] = flags | FLAG.EXTENDED;
    out[at + 1] = type;
    out[at + 2] = len >> 8;
    out[at + 3] = len & 0xff;
    return at + 4;
  }
  out[at] = flags & ~FLAG.EXTENDED;
  out[at + 1] = type;
  out[at + 2] = len;
  return at + 3;
}

/**
 * Announce prefixes of one family with one attribute set, packed into as few
 * UPDATEs as fit `maxLen`. IPv4 unicast with an IPv4 next hop uses the NLRI
 * field and NEXT_HOP; everything else goes in MP_REACH_NLRI.
 */
export function buildAnnouncements(afi: number, safi: number, prefixes: Prefix[], attrs: PathAttributes, nextHop: Uint8Array, ctx: EncodeContext): Uint8Array[] {
  return buildAnnouncementsNlri(afi, safi, nlriBytes(prefixes, ctx.addPathSend(afi, safi)), attrs, nextHop, ctx);
}

/**
 * `buildAnnouncements` for prefixes already in NLRI form (`nlri` is copied,
 * so the caller may reuse its buffer). The attribute set is encoded once per
 * set object and session kind (`attributeBlocks`); each message is written
 * in one piece.
 */
export function buildAnnouncementsNlri(afi: number, safi: number, nlri: NlriBytes, attrs: PathAttributes, nextHop: Uint8Array, ctx: EncodeContext): Uint8Array[] {
  return buildAnnouncementsBlocks(afi, safi, nlri, attributeBlocks(attrs, ctx.fourOctetAs), nextHop, ctx);
}

/**
 * Framed messages written one after the other into one growable buffer,
 * reused from batch to batch: what the UPDATE builders write into. A
 * daemon's output copies each batch out once (`take`); a message array per
 * batch made an array per message and a copy to join them (`split` gives
 * them one by one, for the callers that want them so).
 */
export class MessageSink {
  buf: Uint8Array;
  /** Bytes written. */
  len = 0;
  /** Messages written. */
  count = 0;
  constructor(initial = 4096) {
    this.buf = new Uint8Array(initial);
  }

  /** Start a message of type `type` with `bodyLen` body bytes (header written, body zeroed): the offset of its first byte. Read `buf` after this call (it may grow). */
  message(type: number, bodyLen: number): number {
    const len = BGP_HEADER_LEN + bodyLen;
    if (this.len + len > this.buf.length) {
      let size = this.buf.length * 2;
      while (size < this.len + len) size *= 2;
      const b = new Uint8Array(size);
      copyInto(b, 0, this.buf, 0, this.len);
      this.buf = b;
    }
    const at = this.len;
    const b = this.buf;
    b.fill(0xff, at, at + 16);
    b[at + 16] = len >> 8;
    b[at + 17] = len & 0xff;
    b[at + 18] = type;
    b.fill(0, at + BGP_HEADER_LEN, at + len);
    this.len += len;
    this.count++;
    return at;
  }

  /** The messages written, in one buffer of their own; the sink is empty again. */
  take(): Uint8Array {
    const out = this.buf.slice(0, this.len);
    this.clear();
    return out;
  }

  /** Forget what was written (the buffer stays, for the next messages). */
  clear(): void {
    this.len = 0;
    this.count = 0;
  }

  /** The messages written, each in a buffer of its own; the sink is empty again. */
  split(): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let at = 0; at < this.len; ) {
      const len = u16(this.buf, at + 16);
      out.push(this.buf.slice(at, at + len));
      at += len;
    }
    this.clear();
    return out;
  }
}

/**
 * `buildAnnouncementsNlri` for an attribute set already in wire form
 * (`attributeBlocks`/`encodeAttributeBlocks`, encoded for this session kind).
 */
export function buildAnnouncementsBlocks(afi: number, safi: number, nlri: NlriBytes, blk: AttributeBlocks, nextHop: Uint8Array, ctx: EncodeContext): Uint8Array[] {
  const sink = new MessageSink();
  writeAnnouncementsBlocks(sink, afi, safi, nlri, blk, nextHop, ctx);
  return sink.split();
}

/** `buildAnnouncementsBlocks`, the messages written into `sink`. */
export function writeAnnouncementsBlocks(sink: MessageSink, afi: number, safi: number, nlri: NlriBytes, blk: AttributeBlocks, nextHop: Uint8Array, ctx: EncodeContext): void {
  if (nlri.len === 0) return;
  const addPath = ctx.addPathSend(afi, safi);
  const traditional = afi === AFI.IPV4 && safi === SAFI.UNICAST && nextHop.length === 4;
  const ab = blk.bytes;
  const lowEnd = blk.lowEnd;
  const midEnd = blk.midEnd;
  const fixed = ab.length;
  // MP_REACH_NLRI value before its NLRI: AFI, SAFI, next hop length, next hop, reserved.
  const mpHead = 5 + nextHop.length;
  const overhead = BGP_HEADER_LEN + 4 + fixed + (traditional ? 3 + nextHop.length : 4 + mpHead);
  const budget = ctx.maxLen - overhead;
  if (budget < 40) throw new Error("path attributes too large for one UPDATE");
  let from = 0;
  for (const to of nlriRuns(nlri, addPath, budget)) {
    const run = to - from;
    const mpLen = mpHead + run;
    const attrLen = fixed + (traditional ? 3 + nextHop.length : (mpLen > 255 ? 4 : 3) + mpLen);
    const at = sink.message(MsgType.UPDATE, 4 + attrLen + (traditional ? run : 0));
    const out = sink.buf;
    let o = at + BGP_HEADER_LEN + 2; // withdrawn routes length 0
    out[o++] = attrLen >> 8;
    out[o++] = attrLen & 0xff;
    o = copyInto(out, o, ab, 0, lowEnd);
    if (traditional) {
      o = attrHeader(out, o, FLAG.TRANSITIVE, ATTR.NEXT_HOP, nextHop.length);
      o = copyInto(out, o, nextHop, 0, nextHop.length);
      o = copyInto(out, o, ab, lowEnd, midEnd);
    } else {
      o = copyInto(out, o, ab, lowEnd, midEnd);
      o = attrHeader(out, o, FLAG.OPTIONAL, ATTR.MP_REACH_NLRI, mpLen);
      out[o++] = afi >> 8;
      out[o++] = afi & 0xff;
      out[o++] = safi;
      out[o++] = nextHop.length;
      o = copyInto(out, o, nextHop, 0, nextHop.length);
      out[o++] = 0;
      o = copyInto(out, o, nlri.buf, from, to);
    }
    o = copyInto(out, o, ab, midEnd, ab.length);
    if (traditional) copyInto(out, o, nlri.buf, from, to);
    from = to;
  }
}

/** Withdraw prefixes of one family, packed into as few UPDATEs as fit. */
export function buildWithdrawals(afi: number, safi: number, prefixes: Prefix[], ctx: EncodeContext): Uint8Array[] {
  return buildWithdrawalsNlri(afi, safi, nlriBytes(prefixes, ctx.addPathSend(afi, safi)), ctx);
}

/** `buildWithdrawals` for prefixes already in NLRI form (copied). */
export function buildWithdrawalsNlri(afi: number, safi: number, nlri: NlriBytes, ctx: EncodeContext): Uint8Array[] {
  const sink = new MessageSink();
  writeWithdrawalsNlri(sink, afi, safi, nlri, ctx);
  return sink.split();
}

/** `buildWithdrawalsNlri`, the messages written into `sink`. */
export function writeWithdrawalsNlri(sink: MessageSink, afi: number, safi: number, nlri: NlriBytes, ctx: EncodeContext): void {
  if (nlri.len === 0) return;
  const addPath = ctx.addPathSend(afi, safi);
  const traditional = afi === AFI.IPV4 && safi === SAFI.UNICAST;
  const budget = ctx.maxLen - (BGP_HEADER_LEN + 4 + (traditional ? 0 : 4 + 3));
  let from = 0;
  for (const to of nlriRuns(nlri, addPath, budget)) {
    const run = to - from;
    if (traditional) {
      const at = sink.message(MsgType.UPDATE, 4 + run);
      const out = sink.buf;
      out[at + BGP_HEADER_LEN] = run >> 8;
      out[at + BGP_HEADER_LEN + 1] = run & 0xff;
      copyInto(out, at + BGP_HEADER_LEN + 2, nlri.buf, from, to);
      // total path attribute length 0 (zeroed)
    } else {
      const mpLen = 3 + run;
      const attrLen = (mpLen > 255 ? 4 : 3) + mpLen;
      const at = sink.message(MsgType.UPDATE, 4 + attrLen);
      const out = sink.buf;
      let o = at + BGP_HEADER_LEN + 2;
      out[o++] = attrLen >> 8;
      out[o++] = attrLen & 0xff;
      o = attrHeader(out, o, FLAG.OPTIONAL, ATTR.MP_UNREACH_NLRI, mpLen);
      out[o++] = afi >> 8;
      out[o++] = afi & 0xff;
      out[o++] = safi;
      copyInto(out, o, nlri.buf, from, to);
    }
    from = to;
  }
}
