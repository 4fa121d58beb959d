/**
 * MRT record decoder: turns framed records into typed records using the BGP
 * wire codec for everything BGP (attributes, NLRI, whole messages).
 *
 *   - TABLE_DUMP (RFC 6396 §4.2): 2-octet AS attributes, one entry per record.
 *   - TABLE_DUMP_V2 (§4.3, RFC 8050 §4): the peer index table, the AFI/SAFI
 *     specific RIB subtypes, RIB_GENERIC for IPv4/IPv6 unicast/multicast, and
 *     their ADD-PATH variants (path identifier per entry). Attributes are
 *     4-octet AS; MP_REACH_NLRI is the abbreviated form of §4.3.4 (next hop
 *     length + next hop), with the full RFC 4760 form accepted too.
 *   - BGP4MP / BGP4MP_ET (§4.4, RFC 8050 §3): state changes and messages; the
 *     message is checked with checkHeader and decoded with the codec, with an
 *     UpdateContext derived from the subtype: the ADDPATH subtypes carry path
 *     identifiers, the others do not, as bgpdump and mrtparse read them. Only
 *     when an UPDATE does not parse that way is the other reading tried
 *     (see otherReading); the record then says so in `fallback`.
 *
 * Structural damage (a field running past the record, a peer index outside
 * the peer table, a BGP length that disagrees with the record length) throws
 * MrtError with the record's offset. A BGP message that is framed correctly
 * but malformed is not fatal: the record carries the codec's BgpError.
 * Entry attributes are decoded as an iBGP session would (LOCAL_PREF,
 * ORIGINATOR_ID, CLUSTER_LIST kept), since a RIB dump shows what was stored.
 */
import {
  AFI,
  ATTR,
  type AttrIssue,
  AttrCache,
  cachedIssues,
  BGP_MAX_EXT_MSG,
  BgpError,
  MsgType,
  type OpenMessage,
  type PathAttributes,
  type Prefix,
  SAFI,
  type UpdateContext,
  checkHeader,
  decodeAttributes,
  decodeNotification,
  decodeOpen,
  decodeRouteRefresh,
  decodeUpdate,
  formatAddr,
  formatIPv4,
  nlriToPrefixes,
  splitAttributes,
} from "../bgp/mod.ts";
import { fromUtf8 } from "../bgp/bytes.ts";
import {
  BGP4MP,
  type Bgp4mpPeer,
  type BgpMessage,
  type MessageRecord,
  MRT_TYPE,
  MrtError,
  type MrtPeer,
  type MrtReadOptions,
  type MrtRecord,
  type PeerIndexRecord,
  type RawMrtRecord,
  type RibEntry,
  TABLE_DUMP_SUBTYPE,
  TD2,
} from "./types.ts";

/** Bounds-checked reader over one record body; every overrun is an MrtError at the record's offset. */
class Cursor {
  pos = 0;
  constructor(
    readonly buf: Uint8Array,
    readonly recordOffset: number,
  ) {}
  get left(): number {
    return this.buf.length - this.pos;
  }
  fail(reason: string): never {
    throw new MrtError(this.recordOffset, reason);
  }
  need(n: number, what: string): void {
    if (this.left < n) this.fail(`record too short: ${what} needs ${n} bytes at body offset ${this.pos}, ${this.left} left`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }
  u16(what: string): number {
    this.need(2, what);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    this.pos += 4;
    return ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
  }
  bytes(n: number, what: string): Uint8Array {
    this.need(n, what);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }
  addr(afi: number, what: string): string {
    const n = afi === AFI.IPV6 ? 16 : 4;
    this.need(n, what);
    const s = formatAddr(afi, this.buf, this.pos);
    this.pos += n;
    return s;
  }
  end(what: string): void {
    if (this.left !== 0) this.fail(`${this.left} unexpected bytes after ${what}`);
  }
}

const RIB_FAMILY: Record<number, { afi: number; safi: number; addPath: boolean }> = {
  [TD2.RIB_IPV4_UNICAST]: { afi: AFI.IPV4, safi: SAFI.UNICAST, addPath: false },
  [TD2.RIB_IPV4_MULTICAST]: { afi: AFI.IPV4, safi: SAFI.MULTICAST, addPath: false },
  [TD2.RIB_IPV6_UNICAST]: { afi: AFI.IPV6, safi: SAFI.UNICAST, addPath: false },
  [TD2.RIB_IPV6_MULTICAST]: { afi: AFI.IPV6, safi: SAFI.MULTICAST, addPath: false },
  [TD2.RIB_IPV4_UNICAST_ADDPATH]: { afi: AFI.IPV4, safi: SAFI.UNICAST, addPath: true },
  [TD2.RIB_IPV4_MULTICAST_ADDPATH]: { afi: AFI.IPV4, safi: SAFI.MULTICAST, addPath: true },
  [TD2.RIB_IPV6_UNICAST_ADDPATH]: { afi: AFI.IPV6, safi: SAFI.UNICAST, addPath: true },
  [TD2.RIB_IPV6_MULTICAST_ADDPATH]: { afi: AFI.IPV6, safi: SAFI.MULTICAST, addPath: true },
};

const AS4_MESSAGE = new Set<number>([BGP4MP.MESSAGE_AS4, BGP4MP.MESSAGE_AS4_LOCAL, BGP4MP.MESSAGE_AS4_ADDPATH, BGP4MP.MESSAGE_AS4_LOCAL_ADDPATH]);
const LOCAL_MESSAGE = new Set<number>([
  BGP4MP.MESSAGE_LOCAL,
  BGP4MP.MESSAGE_AS4_LOCAL,
  BGP4MP.MESSAGE_LOCAL_ADDPATH,
  BGP4MP.MESSAGE_AS4_LOCAL_ADDPATH,
]);
const ADDPATH_MESSAGE = new Set<number>([
  BGP4MP.MESSAGE_ADDPATH,
  BGP4MP.MESSAGE_AS4_ADDPATH,
  BGP4MP.MESSAGE_LOCAL_ADDPATH,
  BGP4MP.MESSAGE_AS4_LOCAL_ADDPATH,
]);
const BGP4MP_NAME: Record<number, string> = Object.fromEntries(Object.entries(BGP4MP).map(([k, v]) => [v, `BGP4MP_${k}`]));
const MESSAGE_SUBTYPES = new Set<number>([BGP4MP.MESSAGE, ...AS4_MESSAGE, ...LOCAL_MESSAGE, ...ADDPATH_MESSAGE]);

function maxPrefixLen(afi: number): number {
  return afi === AFI.IPV6 ? 128 : 32;
}

/**
 * Stateful decoder for one MRT stream: remembers the last PEER_INDEX_TABLE
 * (RIB entries refer to it) and interns attribute sets.
 */
export class MrtDecoder {
  private peers: MrtPeer[] | null = null;
  /** One interning cache per decoding context: index (fourOctetAs ? 2 : 0) + (ibgp ? 1 : 0). */
  private readonly caches: (AttrCache | undefined)[] = [];
  /**
   * Families for which a speaker's recorded OPEN offered to send ADD-PATH
   * path identifiers, keyed by sender (peer or local side of a session).
   * BIRD writes such sessions with the plain MESSAGE subtypes instead of the
   * RFC 8050 ADDPATH ones, so the OPEN is the only hint in the file; it is
   * used only when an UPDATE does not parse as its subtype says.
   */
  private readonly addPathOffers = new Map<string, Set<string>>();

  constructor(private readonly opts: MrtReadOptions = {}) {}

  /** The peers of the most recent PEER_INDEX_TABLE, if any. */
  get peerTable(): readonly MrtPeer[] | null {
    return this.peers;
  }

  private cache(fourOctetAs: boolean, ibgp: boolean): AttrCache {
    const i = (fourOctetAs ? 2 : 0) + (ibgp ? 1 : 0);
    return (this.caches[i] ??= new AttrCache(50_000));
  }

  /** Decode one framed record. Throws MrtError for a structurally corrupt record. */
  decode(r: RawMrtRecord): MrtRecord {
    const { type } = r.header;
    switch (type) {
      case MRT_TYPE.TABLE_DUMP:
        return this.tableDump(r);
      case MRT_TYPE.TABLE_DUMP_V2:
        return this.tableDumpV2(r);
      case MRT_TYPE.BGP4MP:
      case MRT_TYPE.BGP4MP_ET:
        return this.bgp4mp(r);
      default:
        return { kind: "unknown", header: r.header, body: r.body, reason: `unsupported MRT type ${type}` };
    }
  }

  // ------------------------------------------------------------ TABLE_DUMP

  private tableDump(r: RawMrtRecord): MrtRecord {
    const st = r.header.subtype;
    if (st !== TABLE_DUMP_SUBTYPE.AFI_IPV4 && st !== TABLE_DUMP_SUBTYPE.AFI_IPV6) {
      return { kind: "unknown", header: r.header, body: r.body, reason: `unsupported TABLE_DUMP subtype ${st}` };
    }
    const afi = st === TABLE_DUMP_SUBTYPE.AFI_IPV6 ? AFI.IPV6 : AFI.IPV4;
    const alen = afi === AFI.IPV6 ? 16 : 4;
    const c = new Cursor(r.body, r.header.offset);
    const view = c.u16("view number");
    const sequence = c.u16("sequence number");
    const addrBytes = c.bytes(alen, "prefix");
    const len = c.u8("prefix length");
    if (len > maxPrefixLen(afi)) c.fail(`prefix length ${len} exceeds ${maxPrefixLen(afi)}`);
    const status = c.u8("status");
    const originated = c.u32("originated time");
    const peerAddress = c.addr(afi, "peer address");
    const peerAs = c.u16("peer AS");
    const attrLen = c.u16("attribute length");
    const rawAttrs = c.bytes(attrLen, "attributes");
    c.end("the attributes");
    const addr = new Uint8Array(alen);
    const n = (len + 7) >> 3;
    addr.set(addrBytes.subarray(0, n));
    if (len & 7) addr[n - 1]! &= (0xff << (8 - (len & 7))) & 0xff;
    const prefix: Prefix = { afi, len, addr };
    const peer: MrtPeer = { bgpId: null, address: peerAddress, afi, asn: peerAs };
    const entry = this.entry(0, peer, originated, undefined, rawAttrs, false);
    return { kind: "rib", header: r.header, sequence, afi, safi: SAFI.UNICAST, prefix, addPath: false, entries: [entry], view, status };
  }

  // --------------------------------------------------------- TABLE_DUMP_V2

  private tableDumpV2(r: RawMrtRecord): MrtRecord {
    const st = r.header.subtype;
    if (st === TD2.PEER_INDEX_TABLE) return this.peerIndex(r);
    const fam = RIB_FAMILY[st];
    if (fam) return this.rib(r, fam.afi, fam.safi, fam.addPath, false);
    if (st === TD2.RIB_GENERIC || st === TD2.RIB_GENERIC_ADDPATH) return this.rib(r, 0, 0, st === TD2.RIB_GENERIC_ADDPATH, true);
    return { kind: "unknown", header: r.header, body: r.body, reason: `unsupported TABLE_DUMP_V2 subtype ${st}` };
  }

  private peerIndex(r: RawMrtRecord): PeerIndexRecord {
    const c = new Cursor(r.body, r.header.offset);
    const collectorId = formatIPv4(c.bytes(4, "collector BGP ID"));
    const nameLen = c.u16("view name length");
    const viewName = fromUtf8(c.bytes(nameLen, "view name"));
    const count = c.u16("peer count");
    const peers: MrtPeer[] = [];
    for (let i = 0; i < count; i++) {
      const t = c.u8(`peer ${i} type`);
      const afi = t & 1 ? AFI.IPV6 : AFI.IPV4;
      const bgpId = formatIPv4(c.bytes(4, `peer ${i} BGP ID`));
      const address = c.addr(afi, `peer ${i} address`);
      const asn = t & 2 ? c.u32(`peer ${i} AS`) : c.u16(`peer ${i} AS`);
      peers.push({ bgpId, address, afi, asn });
    }
    c.end(`the ${count} peer entries`);
    this.peers = peers;
    return { kind: "peer-index", header: r.header, collectorId, viewName, peers };
  }

  private rib(r: RawMrtRecord, afi: number, safi: number, addPath: boolean, generic: boolean): MrtRecord {
    const c = new Cursor(r.body, r.header.offset);
    const sequence = c.u32("sequence number");
    if (generic) {
      afi = c.u16("AFI");
      safi = c.u8("SAFI");
      if ((afi !== AFI.IPV4 && afi !== AFI.IPV6) || (safi !== SAFI.UNICAST && safi !== SAFI.MULTICAST)) {
        // RFC 6396 §4.3.3: unrecognised AFI/SAFI, discard the rest of the record.
        return { kind: "unknown", header: r.header, body: r.body, reason: `RIB_GENERIC for unsupported AFI ${afi} SAFI ${safi}` };
      }
    }
    const pstart = c.pos;
    const len = c.u8("prefix length");
    if (len > maxPrefixLen(afi)) c.fail(`prefix length ${len} exceeds ${maxPrefixLen(afi)}`);
    c.need((len + 7) >> 3, "prefix");
    c.pos += (len + 7) >> 3;
    const prefix = nlriToPrefixes(c.buf, pstart, c.pos, afi as 1 | 2, false)[0]!;
    const count = c.u16("entry count");
    const peers = this.peers;
    if (count > 0 && !peers) c.fail("RIB record before any PEER_INDEX_TABLE");
    const entries: RibEntry[] = [];
    for (let i = 0; i < count; i++) {
      const peerIndex = c.u16(`entry ${i} peer index`);
      const originated = c.u32(`entry ${i} originated time`);
      const pathId = addPath ? c.u32(`entry ${i} path identifier`) : undefined;
      const attrLen = c.u16(`entry ${i} attribute length`);
      const rawAttrs = c.bytes(attrLen, `entry ${i} attributes`);
      const peer = peers![peerIndex];
      if (!peer) c.fail(`entry ${i} refers to peer index ${peerIndex} but the peer table has ${peers!.length} peers`);
      entries.push(this.entry(peerIndex, peer, originated, pathId, rawAttrs, true));
    }
    c.end(`the ${count} RIB entries`);
    return { kind: "rib", header: r.header, sequence, afi, safi, prefix, addPath, entries };
  }

  /** Decode the attributes of one RIB entry with the codec; MP_REACH_NLRI is handled here (abbreviated form). */
  private entry(peerIndex: number, peer: MrtPeer, originated: number, pathId: number | undefined, rawAttrs: Uint8Array, fourOctetAs: boolean): RibEntry {
    const e: RibEntry = { peerIndex, peer, originated, attrs: null, nextHop: null, issues: [], error: null, rawAttrs };
    if (pathId !== undefined) e.pathId = pathId;
    if (rawAttrs.length === 0) return e;
    const { attrs: raw, overrun } = splitAttributes(rawAttrs, 0, rawAttrs.length);
    if (overrun) e.issues.push({ action: "treat-as-withdraw", attr: 0, reason: overrun });
    let mpSeen = false;
    for (const a of raw) {
      if (a.type === ATTR.MP_UNREACH_NLRI) {
        e.issues.push({ action: "attribute-discard", attr: a.type, reason: "MP_UNREACH_NLRI in a RIB entry ignored" });
      } else if (a.type === ATTR.MP_REACH_NLRI) {
        if (mpSeen) {
          e.issues.push({ action: "attribute-discard", attr: a.type, reason: "duplicate MP_REACH_NLRI ignored" });
          continue;
        }
        mpSeen = true;
        const nh = ribMpNextHop(a.value);
        if (typeof nh === "string") e.issues.push({ action: "attribute-discard", attr: a.type, reason: nh });
        else e.nextHop = nh;
      }
    }
    let attrs: PathAttributes;
    let issues: AttrIssue[];
    try {
      const cache = this.cache(fourOctetAs, true);
      const key = overrun ? null : rawAttrs;
      const hit = key === null ? undefined : cache.get(key);
      if (hit) {
        attrs = hit;
        issues = cachedIssues(hit);
      } else {
        issues = [];
        attrs = decodeAttributes(raw, { fourOctetAs, ibgp: true }, issues);
        if (key !== null) cache.set(key, { attrs, issues });
      }
    } catch (err) {
      if (!(err instanceof BgpError)) throw err;
      e.error = err;
      return e;
    }
    e.attrs = attrs;
    if (issues.length) e.issues.push(...issues);
    if (!e.nextHop && attrs.nextHop) e.nextHop = attrs.nextHop;
    return e;
  }

  // ---------------------------------------------------------------- BGP4MP

  private bgpPeer(c: Cursor, as4: boolean): Bgp4mpPeer {
    const peerAs = as4 ? c.u32("peer AS") : c.u16("peer AS");
    const localAs = as4 ? c.u32("local AS") : c.u16("local AS");
    const ifIndex = c.u16("interface index");
    const afi = c.u16("address family");
    if (afi !== AFI.IPV4 && afi !== AFI.IPV6) c.fail(`unknown address family ${afi}`);
    const peerAddress = c.addr(afi, "peer address");
    const localAddress = c.addr(afi, "local address");
    return { peerAs, localAs, ifIndex, afi, peerAddress, localAddress };
  }

  private bgp4mp(r: RawMrtRecord): MrtRecord {
    const st = r.header.subtype;
    const c = new Cursor(r.body, r.header.offset);
    if (st === BGP4MP.STATE_CHANGE || st === BGP4MP.STATE_CHANGE_AS4) {
      const peer = this.bgpPeer(c, st === BGP4MP.STATE_CHANGE_AS4);
      const oldState = c.u16("old state");
      const newState = c.u16("new state");
      c.end("the new state");
      return { kind: "state", header: r.header, peer, oldState, newState };
    }
    if (!MESSAGE_SUBTYPES.has(st)) {
      return { kind: "unknown", header: r.header, body: r.body, reason: `unsupported BGP4MP subtype ${st}` };
    }
    const fourOctetAs = AS4_MESSAGE.has(st);
    const peer = this.bgpPeer(c, fourOctetAs);
    const labelled = ADDPATH_MESSAGE.has(st);
    const forced = this.opts.assumeAddPath === true;
    const local = LOCAL_MESSAGE.has(st);
    const sender = `${local ? "local" : "peer"}|${peer.peerAddress}|${peer.localAddress}`;
    const raw = c.buf.subarray(c.pos);
    if (raw.length < 19) c.fail(`BGP message truncated: ${raw.length} bytes, a header needs 19`);
    const msgLen = (raw[16]! << 8) | raw[17]!;
    if (msgLen !== raw.length) c.fail(`BGP message length ${msgLen} does not match the ${raw.length} bytes left in the record`);
    const rec: MessageRecord = {
      kind: "message",
      header: r.header,
      peer,
      local,
      fourOctetAs,
      addPath: labelled || forced,
      fallback: null,
      msgType: raw[18]!,
      raw,
      message: null,
      error: null,
    };
    const ibgp = peer.peerAs === peer.localAs;
    const decode = (addPath: (afi: number, safi: number) => boolean) =>
      this.message(raw, { fourOctetAs, ibgp, addPathReceive: addPath, cache: this.cache(fourOctetAs, ibgp) });
    try {
      checkHeader(raw, 0, BGP_MAX_EXT_MSG);
      try {
        // The subtype says whether NLRI carry path identifiers (RFC 8050 §3);
        // --add-path (assumeAddPath) forces them.
        rec.message = decode(() => rec.addPath);
      } catch (err) {
        if (!(err instanceof BgpError) || forced || raw[18] !== MsgType.UPDATE) throw err;
        const other = this.otherReading(st, labelled, sender);
        if (!other) throw err;
        try {
          rec.message = decode(other.addPath);
        } catch (err2) {
          if (!(err2 instanceof BgpError)) throw err2;
          throw err; // neither reading parses: report the labelled one's error
        }
        rec.addPath = !labelled;
        rec.fallback = other.note;
      }
      if (rec.message.type === "open") this.noteAddPathOffer(sender, rec.message.open);
    } catch (err) {
      if (!(err instanceof BgpError)) throw err;
      rec.error = err;
    }
    return rec;
  }

  /**
   * The reading to fall back to when an UPDATE does not parse as its subtype
   * says. An ADDPATH subtype falls back to plain NLRI. A plain subtype falls
   * back to path identifiers only for the families the sender's recorded OPEN
   * offered to send with ADD-PATH (BIRD writes such sessions with the plain
   * subtypes); with no such OPEN in the file there is no other reading.
   */
  private otherReading(st: number, labelled: boolean, sender: string): { addPath: (afi: number, safi: number) => boolean; note: string } | null {
    const name = `${BGP4MP_NAME[st] ?? "subtype"} (${st})`;
    if (labelled) return { addPath: () => false, note: `${name} says path identifiers, but the NLRI only parse without them` };
    const offered = this.addPathOffers.get(sender);
    if (!offered || offered.size === 0) return null;
    return {
      addPath: (afi, safi) => offered.has(`${afi}/${safi}`),
      note: `${name} says no path identifiers, but the NLRI only parse with them (the sender's OPEN offered ADD-PATH)`,
    };
  }

  private noteAddPathOffer(sender: string, open: OpenMessage): void {
    const fams = new Set<string>();
    for (const c of open.capabilities) {
      if (c.type === "add-path") for (const f of c.families) if (f.send) fams.add(`${f.afi}/${f.safi}`);
    }
    this.addPathOffers.set(sender, fams);
  }

  private message(raw: Uint8Array, ctx: UpdateContext): BgpMessage {
    const body = raw.subarray(19);
    switch (raw[18]) {
      case MsgType.OPEN:
        return { type: "open", open: decodeOpen(body) };
      case MsgType.UPDATE:
        return { type: "update", update: decodeUpdate(body, ctx) };
      case MsgType.NOTIFICATION:
        return { type: "notification", notification: decodeNotification(body) };
      case MsgType.KEEPALIVE:
        return { type: "keepalive" };
      default:
        return { type: "route-refresh", refresh: decodeRouteRefresh(body, raw) };
    }
  }
}

/**
 * Next hop of an MP_REACH_NLRI in a RIB entry: the abbreviated form of RFC 6396
 * §4.3.4 (next hop length, next hop), or the full RFC 4760 form that some
 * writers use. Returns an error string when neither fits.
 */
export function ribMpNextHop(v: Uint8Array): Uint8Array | string {
  let nh: Uint8Array | null = null;
  if (v.length >= 1 && v[0] === v.length - 1) nh = v.subarray(1);
  else if (v.length >= 5 && 4 + v[3]! + 1 <= v.length) nh = v.subarray(4, 4 + v[3]!);
  if (!nh) return `malformed MP_REACH_NLRI in RIB entry (length ${v.length})`;
  if (nh.length !== 4 && nh.length !== 16 && nh.length !== 32) return `MP_REACH_NLRI next hop length ${nh.length} invalid`;
  return nh.slice();
}
