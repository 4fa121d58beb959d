/**
 * MRT writer (RFC 6396, RFC 8050): encodes the records bgpctl writes, with
 * the reader's constants and record shapes (types.ts), so that every record
 * read back with MrtDecoder gives what was written.
 *
 *   - TABLE_DUMP_V2 (§4.3), for `show rib --mrt`: PEER_INDEX_TABLE, then
 *     RIB_IPV4_UNICAST / RIB_IPV6_UNICAST records, one per prefix with all
 *     its entries; a prefix with ADD-PATH path identifiers uses the RFC 8050
 *     RIB_*_ADDPATH subtype instead. Peers are written with 4-octet AS
 *     numbers, attributes with 4-octet AS_PATH (§4.3.4), the next hop of an
 *     IPv6 (or IPv4-over-IPv6) route as the abbreviated MP_REACH_NLRI of
 *     §4.3.4 (next-hop length and next hop only), an IPv4 one as NEXT_HOP.
 *   - BGP4MP (§4.4), for mrtDump: plain BGP4MP (type 16, no microseconds:
 *     what bgpdump, BIRD and OpenBGPD write) with 4-octet AS fields:
 *     STATE_CHANGE_AS4 and MESSAGE_AS4; a message sent by us is
 *     MESSAGE_AS4_LOCAL (RFC 6396 §4.4.6/7); a session without 4-octet AS
 *     numbers uses MESSAGE / MESSAGE_LOCAL (2-octet AS_PATH inside), one
 *     that negotiated ADD-PATH the RFC 8050 *_ADDPATH subtypes.
 */
import { type PathAttributes, encodeAttributes } from "../bgp/attributes.ts";
import { Writer } from "../bgp/bytes.ts";
import { writePrefix } from "../bgp/prefix.ts";
import { AS_TRANS, ATTR, FLAG } from "../bgp/types.ts";
import { AFI, type Prefix, parseAddr, parseIPv4 } from "../core/addr.ts";
import { BGP4MP, BGP_STATE_NAMES, type Bgp4mpPeer, MRT_HEADER_LEN, MRT_TYPE, type MrtPeer, TD2 } from "./types.ts";

/** Start a record in `w`: the common header with a length patched by endRecord. */
function beginRecord(w: Writer, timestamp: number, type: number, subtype: number): number {
  const at = w.len;
  w.u32(timestamp >>> 0).u16(type).u16(subtype).u32(0);
  return at;
}

function endRecord(w: Writer, at: number): Uint8Array {
  const len = w.len - at - MRT_HEADER_LEN;
  const b = w.buf;
  b[at + 8] = len >>> 24;
  b[at + 9] = (len >>> 16) & 0xff;
  b[at + 10] = (len >>> 8) & 0xff;
  b[at + 11] = len & 0xff;
  return w.finish();
}

/** One whole record: the common header (RFC 6396 §2) and `body`. */
export function encodeMrtRecord(timestamp: number, type: number, subtype: number, body: Uint8Array): Uint8Array {
  const w = new Writer(MRT_HEADER_LEN + body.length);
  const at = beginRecord(w, timestamp, type, subtype);
  w.bytes(body);
  return endRecord(w, at);
}

function addrBytes(text: string, what: string): { afi: number; addr: Uint8Array } {
  const a = parseAddr(text);
  if (!a) throw new Error(`MRT writer: ${what} "${text}" is not an IPv4 or IPv6 address`);
  return a;
}

function idBytes(text: string | null, what: string): Uint8Array {
  if (text === null) return new Uint8Array(4);
  const b = parseIPv4(text);
  if (!b) throw new Error(`MRT writer: ${what} "${text}" is not a dotted quad`);
  return b;
}

// ------------------------------------------------------------ TABLE_DUMP_V2

/**
 * PEER_INDEX_TABLE (§4.3.1): the collector's BGP identifier, a view name and
 * the peers RIB entries refer to by index. Every peer gets a 4-octet AS field.
 */
export function encodePeerIndexTable(timestamp: number, collectorId: string, viewName: string, peers: readonly MrtPeer[]): Uint8Array {
  if (peers.length > 0xffff) throw new Error(`MRT writer: ${peers.length} peers do not fit a PEER_INDEX_TABLE (at most 65535)`);
  const name = new TextEncoder().encode(viewName);
  if (name.length > 0xffff) throw new Error("MRT writer: view name longer than 65535 bytes");
  const w = new Writer(64 + peers.length * 25);
  const at = beginRecord(w, timestamp, MRT_TYPE.TABLE_DUMP_V2, TD2.PEER_INDEX_TABLE);
  w.bytes(idBytes(collectorId, "collector BGP ID")).u16(name.length).bytes(name).u16(peers.length);
  for (const p of peers) {
    const a = addrBytes(p.address, "peer address");
    w.u8((a.afi === AFI.IPV6 ? 1 : 0) | 2).bytes(idBytes(p.bgpId, "peer BGP ID")).bytes(a.addr).u32(p.asn);
  }
  return endRecord(w, at);
}

/** One RIB entry to write: the peer's index in the peer table, when the route was learned, its attributes (see ribAttributes). */
export interface RibEntryOut {
  peerIndex: number;
  /** Seconds since the epoch. */
  originated: number;
  /** RFC 8050 path identifier; any entry with one makes the record an ADDPATH subtype (the others then carry 0). */
  pathId?: number;
  attrs: Uint8Array;
}

/**
 * One RIB_IPV4_UNICAST / RIB_IPV6_UNICAST record (§4.3.2), or its RFC 8050
 * ADDPATH subtype when an entry carries a path identifier. Throws when an
 * entry's attributes pass 65535 bytes or there are more than 65535 entries.
 */
export function encodeRibRecord(timestamp: number, sequence: number, prefix: Prefix, entries: readonly RibEntryOut[]): Uint8Array {
  if (entries.length > 0xffff) throw new Error(`MRT writer: ${entries.length} entries for one prefix (at most 65535)`);
  const addPath = entries.some((e) => e.pathId !== undefined);
  const v6 = prefix.afi === AFI.IPV6;
  const subtype = v6 ? (addPath ? TD2.RIB_IPV6_UNICAST_ADDPATH : TD2.RIB_IPV6_UNICAST) : addPath ? TD2.RIB_IPV4_UNICAST_ADDPATH : TD2.RIB_IPV4_UNICAST;
  let size = MRT_HEADER_LEN + 24;
  for (const e of entries) size += 12 + e.attrs.length;
  const w = new Writer(size);
  const at = beginRecord(w, timestamp, MRT_TYPE.TABLE_DUMP_V2, subtype);
  w.u32(sequence >>> 0);
  writePrefix(w, prefix, false);
  w.u16(entries.length);
  for (const e of entries) {
    if (e.attrs.length > 0xffff) throw new Error(`MRT writer: attributes of ${e.attrs.length} bytes do not fit a RIB entry (at most 65535)`);
    w.u16(e.peerIndex).u32(e.originated >>> 0);
    if (addPath) w.u32((e.pathId ?? 0) >>> 0);
    w.u16(e.attrs.length).bytes(e.attrs);
  }
  return endRecord(w, at);
}

/**
 * The attributes of a RIB entry (§4.3.4): 4-octet AS numbers; for an IPv4
 * prefix with an IPv4 next hop, NEXT_HOP is the route's next hop; otherwise
 * the next hop (16 or 32 bytes, or 4 for an IPv6 prefix with an IPv4 next
 * hop) goes in an abbreviated MP_REACH_NLRI and there is no NEXT_HOP.
 * Attributes are written as stored (no Partial bit added).
 */
export function ribAttributes(attrs: PathAttributes, nextHop: Uint8Array, afi: number): Uint8Array {
  if (afi === AFI.IPV4 && nextHop.length === 4) {
    const a = attrs.nextHop === nextHop ? attrs : { ...attrs, nextHop };
    return encodeAttributes(a, true, [], false);
  }
  const mp = new Uint8Array(1 + nextHop.length);
  mp[0] = nextHop.length;
  mp.set(nextHop, 1);
  return encodeAttributes(attrs.nextHop === null ? attrs : { ...attrs, nextHop: null }, true, [{ flags: FLAG.OPTIONAL, type: ATTR.MP_REACH_NLRI, value: mp }], false);
}

// ------------------------------------------------------------------- BGP4MP

/** How a BGP message is labelled: sent by us, 4-octet AS numbers in it, ADD-PATH NLRI. */
export interface MessageLabel {
  local: boolean;
  fourOctetAs: boolean;
  addPath: boolean;
}

/** The BGP4MP subtype of a message (RFC 6396 §4.4, RFC 8050 §3). */
export function messageSubtype(l: MessageLabel): number {
  if (l.addPath) {
    if (l.fourOctetAs) return l.local ? BGP4MP.MESSAGE_AS4_LOCAL_ADDPATH : BGP4MP.MESSAGE_AS4_ADDPATH;
    return l.local ? BGP4MP.MESSAGE_LOCAL_ADDPATH : BGP4MP.MESSAGE_ADDPATH;
  }
  if (l.fourOctetAs) return l.local ? BGP4MP.MESSAGE_AS4_LOCAL : BGP4MP.MESSAGE_AS4;
  return l.local ? BGP4MP.MESSAGE_LOCAL : BGP4MP.MESSAGE;
}

/** The fixed fields that start every BGP4MP record (§4.4.1); the two addresses must be of one family. */
function writePeerFields(w: Writer, p: Bgp4mpPeer, as4: boolean): void {
  const peer = addrBytes(p.peerAddress, "peer address");
  const local = addrBytes(p.localAddress, "local address");
  if (peer.afi !== local.afi) throw new Error(`MRT writer: peer address ${p.peerAddress} and local address ${p.localAddress} are of different families`);
  if (as4) w.u32(p.peerAs).u32(p.localAs);
  else w.u16(p.peerAs > 0xffff ? AS_TRANS : p.peerAs).u16(p.localAs > 0xffff ? AS_TRANS : p.localAs);
  w.u16(p.ifIndex).u16(peer.afi).bytes(peer.addr).bytes(local.addr);
}

/** A BGP4MP message record: `message` is one whole BGP message, header included. `peer.afi` is taken from the addresses. */
export function encodeBgp4mpMessage(timestamp: number, peer: Bgp4mpPeer, message: Uint8Array, label: MessageLabel): Uint8Array {
  const w = new Writer(MRT_HEADER_LEN + 44 + message.length);
  const at = beginRecord(w, timestamp, MRT_TYPE.BGP4MP, messageSubtype(label));
  writePeerFields(w, peer, label.fourOctetAs);
  w.bytes(message);
  return endRecord(w, at);
}

/** A BGP4MP_STATE_CHANGE_AS4 record (§4.4.5); states numbered as in §4.4.1 (see bgpStateNumber). */
export function encodeBgp4mpStateChange(timestamp: number, peer: Bgp4mpPeer, oldState: number, newState: number): Uint8Array {
  const w = new Writer(MRT_HEADER_LEN + 48);
  const at = beginRecord(w, timestamp, MRT_TYPE.BGP4MP, BGP4MP.STATE_CHANGE_AS4);
  writePeerFields(w, peer, true);
  w.u16(oldState).u16(newState);
  return endRecord(w, at);
}

const STATE_NUMBERS: Record<string, number> = Object.fromEntries(Object.entries(BGP_STATE_NAMES).map(([n, name]) => [name, Number(n)]));

/** The BGP4MP number of an FSM state name ("Idle" 1 ... "Established" 6); throws for another name. */
export function bgpStateNumber(name: string): number {
  const n = STATE_NUMBERS[name];
  if (n === undefined) throw new Error(`MRT writer: unknown BGP state "${name}"`);
  return n;
}
