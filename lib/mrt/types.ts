/**
 * MRT (RFC 6396, RFC 8050 ADD-PATH extensions) constants, the decoded record
 * types the reader yields, and `MrtError`, the one error the reader throws for
 * a truncated or structurally corrupt record (it names the record's byte
 * offset). BGP content is represented with the BGP codec's own types.
 */
import type { AttrIssue, BgpError, NotificationMessage, OpenMessage, PathAttributes, Prefix, RouteRefreshMessage, UpdateMessage } from "../bgp/mod.ts";

/** MRT common header length (RFC 6396 §2). */
export const MRT_HEADER_LEN = 12;

/** MRT record types this reader knows (RFC 6396 §4). */
export const MRT_TYPE = {
  TABLE_DUMP: 12,
  TABLE_DUMP_V2: 13,
  BGP4MP: 16,
  BGP4MP_ET: 17,
  ISIS_ET: 33,
  OSPFV3_ET: 49,
} as const;

/** Types whose header carries a 4-byte microsecond timestamp (RFC 6396 §3). */
export function isExtendedTimestampType(type: number): boolean {
  return type === MRT_TYPE.BGP4MP_ET || type === MRT_TYPE.ISIS_ET || type === MRT_TYPE.OSPFV3_ET;
}

/** TABLE_DUMP subtypes (RFC 6396 §4.2): the AFI of the dumped prefix. */
export const TABLE_DUMP_SUBTYPE = { AFI_IPV4: 1, AFI_IPV6: 2 } as const;

/** TABLE_DUMP_V2 subtypes (RFC 6396 §4.3, RFC 8050 §4). */
export const TD2 = {
  PEER_INDEX_TABLE: 1,
  RIB_IPV4_UNICAST: 2,
  RIB_IPV4_MULTICAST: 3,
  RIB_IPV6_UNICAST: 4,
  RIB_IPV6_MULTICAST: 5,
  RIB_GENERIC: 6,
  RIB_IPV4_UNICAST_ADDPATH: 8,
  RIB_IPV4_MULTICAST_ADDPATH: 9,
  RIB_IPV6_UNICAST_ADDPATH: 10,
  RIB_IPV6_MULTICAST_ADDPATH: 11,
  RIB_GENERIC_ADDPATH: 12,
} as const;

/** BGP4MP / BGP4MP_ET subtypes (RFC 6396 §4.4, RFC 8050 §3). */
export const BGP4MP = {
  STATE_CHANGE: 0,
  MESSAGE: 1,
  MESSAGE_AS4: 4,
  STATE_CHANGE_AS4: 5,
  MESSAGE_LOCAL: 6,
  MESSAGE_AS4_LOCAL: 7,
  MESSAGE_ADDPATH: 8,
  MESSAGE_AS4_ADDPATH: 9,
  MESSAGE_LOCAL_ADDPATH: 10,
  MESSAGE_AS4_LOCAL_ADDPATH: 11,
} as const;

/** BGP FSM state names as numbered in BGP4MP STATE_CHANGE (RFC 6396 §4.4.1). */
export const BGP_STATE_NAMES: Record<number, string> = {
  1: "Idle",
  2: "Connect",
  3: "Active",
  4: "OpenSent",
  5: "OpenConfirm",
  6: "Established",
};

export function bgpStateName(n: number): string {
  return BGP_STATE_NAMES[n] ?? `unknown(${n})`;
}

/** A truncated or corrupt MRT record. `offset` is the byte offset of the record in the input. */
export class MrtError extends Error {
  override readonly name = "MrtError";
  constructor(
    readonly offset: number,
    /** What is wrong, without the offset (e.g. "truncated record: length 150 but only 40 bytes follow"). */
    readonly reason: string,
  ) {
    super(`${reason} at byte offset ${offset}`);
  }
}

/** The MRT common header of one record. */
export interface MrtHeader {
  /** Byte offset of the record (its header) in the input. */
  offset: number;
  /** Seconds since the Unix epoch. */
  timestamp: number;
  /** Microseconds of an _ET record; null for other types. */
  microseconds: number | null;
  type: number;
  subtype: number;
  /** The length field as written (for _ET types it includes the 4-byte microseconds). */
  length: number;
}

/** One framed record: the header and its message bytes (after the microseconds of _ET types). */
export interface RawMrtRecord {
  header: MrtHeader;
  body: Uint8Array;
}

/** A peer of a TABLE_DUMP_V2 PEER_INDEX_TABLE (or the single peer of a TABLE_DUMP entry). */
export interface MrtPeer {
  /** Peer BGP identifier, dotted quad (null for TABLE_DUMP, which does not record it). */
  bgpId: string | null;
  /** Peer IP address (text). */
  address: string;
  /** 1 (IPv4) or 2 (IPv6): the family of `address`. */
  afi: number;
  asn: number;
}

export interface PeerIndexRecord {
  kind: "peer-index";
  header: MrtHeader;
  collectorId: string;
  viewName: string;
  peers: MrtPeer[];
}

/** One RIB entry: one path for the record's prefix from one peer. */
export interface RibEntry {
  peerIndex: number;
  peer: MrtPeer;
  /** Originated time, seconds since the epoch. */
  originated: number;
  /** RFC 8050 path identifier (ADD-PATH subtypes only). */
  pathId?: number;
  /** Decoded attributes (shared and immutable); null when the entry has none or they could not be decoded. */
  attrs: PathAttributes | null;
  /** Next hop: MP_REACH_NLRI's (abbreviated form, RFC 6396 §4.3.4) if present, else NEXT_HOP. */
  nextHop: Uint8Array | null;
  /** Attribute problems the codec reported (RFC 7606 style), plus MP_REACH_NLRI problems. */
  issues: AttrIssue[];
  /** Set when the codec rejected the attributes outright (e.g. an unrecognised well-known attribute). */
  error: BgpError | null;
  /** The raw attribute bytes of the entry. */
  rawAttrs: Uint8Array;
}

/** A TABLE_DUMP_V2 RIB record (all RIB subtypes) or a TABLE_DUMP (v1) entry. */
export interface RibRecord {
  kind: "rib";
  header: MrtHeader;
  sequence: number;
  afi: number;
  safi: number;
  /** The prefix; its `pathId` is unset (path identifiers are per entry). */
  prefix: Prefix;
  /** RFC 8050 ADD-PATH subtype: entries carry a path identifier. */
  addPath: boolean;
  entries: RibEntry[];
  /** TABLE_DUMP (v1) only: view number and status octet. */
  view?: number;
  status?: number;
}

/** The fixed fields that start every BGP4MP record. */
export interface Bgp4mpPeer {
  peerAs: number;
  localAs: number;
  ifIndex: number;
  /** Address family of the two addresses. */
  afi: number;
  peerAddress: string;
  localAddress: string;
}

export interface StateChangeRecord {
  kind: "state";
  header: MrtHeader;
  peer: Bgp4mpPeer;
  oldState: number;
  newState: number;
}

/** A BGP message decoded with the wire codec. */
export type BgpMessage =
  | { type: "open"; open: OpenMessage }
  | { type: "update"; update: UpdateMessage }
  | { type: "notification"; notification: NotificationMessage }
  | { type: "keepalive" }
  | { type: "route-refresh"; refresh: RouteRefreshMessage };

export interface MessageRecord {
  kind: "message";
  header: MrtHeader;
  peer: Bgp4mpPeer;
  /** MESSAGE_LOCAL subtypes: the message was sent by the local side (else received from the peer). */
  local: boolean;
  /** The UPDATE context used: 4-octet AS numbers in attributes. */
  fourOctetAs: boolean;
  /** The UPDATE context used: NLRI carry path identifiers (from the subtype, --add-path, or a fallback). */
  addPath: boolean;
  /**
   * Null when the message was read as its subtype says (or as --add-path
   * forces). Otherwise why the other reading was used: the labelled one did
   * not parse (e.g. ADD-PATH NLRI under a plain subtype from BIRD).
   */
  fallback: string | null;
  /** BGP message type from the header (0 when the header itself is unreadable). */
  msgType: number;
  /** The whole BGP message, header included. */
  raw: Uint8Array;
  /** The decoded message; null when `error` is set. */
  message: BgpMessage | null;
  /** The codec's error when the message is malformed (the MRT record itself is intact). */
  error: BgpError | null;
}

/** A record of a type or subtype this reader does not decode (skipped per RFC 6396 §4). */
export interface UnknownRecord {
  kind: "unknown";
  header: MrtHeader;
  body: Uint8Array;
  reason: string;
}

export type MrtRecord = PeerIndexRecord | RibRecord | StateChangeRecord | MessageRecord | UnknownRecord;

export interface MrtReadOptions {
  /**
   * Decode the NLRI of every BGP4MP message as ADD-PATH, whatever the subtype
   * says, with no fallback to plain NLRI. Off by default: the subtype decides,
   * and the other reading is tried only when that one does not parse (see
   * MessageRecord.fallback).
   */
  assumeAddPath?: boolean;
  /** Largest accepted record length (default 64 MiB); a larger length field is reported as corrupt. */
  maxRecordLength?: number;
}

export const DEFAULT_MAX_RECORD_LENGTH = 64 * 1024 * 1024;
