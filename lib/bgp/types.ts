/**
 * Protocol constants and the value types shared by the BGP codec, the
 * session layer and every consumer (RIB, MRT, CLI). No logic lives here.
 */

export const BGP_HEADER_LEN = 19;
export const BGP_MAX_MSG = 4096;
/** RFC 8654 extended message size. */
export const BGP_MAX_EXT_MSG = 65535;
export const AS_TRANS = 23456;

export const MsgType = {
  OPEN: 1,
  UPDATE: 2,
  NOTIFICATION: 3,
  KEEPALIVE: 4,
  ROUTE_REFRESH: 5,
} as const;
export type MsgType = (typeof MsgType)[keyof typeof MsgType];

export { AFI, type Afi, type Prefix } from "../core/addr.ts";
export const SAFI = { UNICAST: 1, MULTICAST: 2 } as const;

/** An address family: AFI + SAFI. */
export interface Family {
  afi: number;
  safi: number;
}

export function familyName(afi: number, safi: number): string {
  const a = afi === 1 ? "ipv4" : afi === 2 ? "ipv6" : `afi${afi}`;
  const s = safi === 1 ? "unicast" : safi === 2 ? "multicast" : `safi${safi}`;
  return `${a}-${s}`;
}

/** Path attribute type codes. */
export const ATTR = {
  ORIGIN: 1,
  AS_PATH: 2,
  NEXT_HOP: 3,
  MED: 4,
  LOCAL_PREF: 5,
  ATOMIC_AGGREGATE: 6,
  AGGREGATOR: 7,
  COMMUNITIES: 8,
  ORIGINATOR_ID: 9,
  CLUSTER_LIST: 10,
  MP_REACH_NLRI: 14,
  MP_UNREACH_NLRI: 15,
  EXTENDED_COMMUNITIES: 16,
  AS4_PATH: 17,
  AS4_AGGREGATOR: 18,
  LARGE_COMMUNITY: 32,
  OTC: 35,
} as const;

/** Attribute flag bits. */
export const FLAG = {
  OPTIONAL: 0x80,
  TRANSITIVE: 0x40,
  PARTIAL: 0x20,
  EXTENDED: 0x10,
} as const;

export const ORIGIN = { IGP: 0, EGP: 1, INCOMPLETE: 2 } as const;
export const ORIGIN_NAMES = ["igp", "egp", "incomplete"] as const;

export const SEG = {
  AS_SET: 1,
  AS_SEQUENCE: 2,
  AS_CONFED_SEQUENCE: 3,
  AS_CONFED_SET: 4,
} as const;

/** Capability codes (IANA). */
export const CAP = {
  MULTIPROTOCOL: 1,
  ROUTE_REFRESH: 2,
  EXTENDED_NEXT_HOP: 5,
  EXTENDED_MESSAGE: 6,
  ROLE: 9,
  GRACEFUL_RESTART: 64,
  FOUR_OCTET_AS: 65,
  ADD_PATH: 69,
  ENHANCED_ROUTE_REFRESH: 70,
  LONG_LIVED_GRACEFUL_RESTART: 71,
  ROUTE_REFRESH_CISCO: 128,
} as const;

/** NOTIFICATION error codes (RFC 4271 §4.5 and updates). */
export const ERR = {
  HEADER: 1,
  OPEN: 2,
  UPDATE: 3,
  HOLD_TIMER: 4,
  FSM: 5,
  CEASE: 6,
  ROUTE_REFRESH: 7,
} as const;

export const HEADER_SUB = {
  CONNECTION_NOT_SYNCHRONIZED: 1,
  BAD_MESSAGE_LENGTH: 2,
  BAD_MESSAGE_TYPE: 3,
} as const;

export const OPEN_SUB = {
  UNSUPPORTED_VERSION: 1,
  BAD_PEER_AS: 2,
  BAD_BGP_IDENTIFIER: 3,
  UNSUPPORTED_OPTIONAL_PARAMETER: 4,
  UNACCEPTABLE_HOLD_TIME: 6,
  UNSUPPORTED_CAPABILITY: 7,
  ROLE_MISMATCH: 11,
} as const;

export const UPDATE_SUB = {
  MALFORMED_ATTRIBUTE_LIST: 1,
  UNRECOGNIZED_WELL_KNOWN: 2,
  MISSING_WELL_KNOWN: 3,
  ATTRIBUTE_FLAGS_ERROR: 4,
  ATTRIBUTE_LENGTH_ERROR: 5,
  INVALID_ORIGIN: 6,
  INVALID_NEXT_HOP: 8,
  OPTIONAL_ATTRIBUTE_ERROR: 9,
  INVALID_NETWORK_FIELD: 10,
  MALFORMED_AS_PATH: 11,
} as const;

export const FSM_SUB = {
  UNSPECIFIED: 0,
  OPENSENT: 1,
  OPENCONFIRM: 2,
  ESTABLISHED: 3,
} as const;

export const CEASE_SUB = {
  MAX_PREFIXES: 1,
  ADMIN_SHUTDOWN: 2,
  PEER_DECONFIGURED: 3,
  ADMIN_RESET: 4,
  CONNECTION_REJECTED: 5,
  OTHER_CONFIG_CHANGE: 6,
  CONNECTION_COLLISION: 7,
  OUT_OF_RESOURCES: 8,
  HARD_RESET: 9,
  BFD_DOWN: 10,
} as const;

export const ROUTE_REFRESH_SUB = {
  INVALID_MESSAGE_LENGTH: 1,
} as const;

/** BGP role values (RFC 9234). */
export const ROLE = {
  PROVIDER: 0,
  RS: 1,
  RS_CLIENT: 2,
  CUSTOMER: 3,
  PEER: 4,
} as const;
export const ROLE_NAMES = ["provider", "rs", "rs-client", "customer", "peer"] as const;

