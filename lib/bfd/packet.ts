/**
 * BFD control packet codec (RFC 5880 §4.1, version 1), and the checks of
 * §6.8.6 that need nothing but the packet itself. Authentication is not
 * implemented: a packet with the A bit set is rejected (bgpctl never
 * configures authentication, and §6.8.6 says a packet with A set while no
 * authentication is in use MUST be discarded). Times on the wire are
 * microseconds; the decoded packet keeps them as microseconds too.
 */

/** Session states as on the wire (RFC 5880 §4.1). */
export const BfdState = { AdminDown: 0, Down: 1, Init: 2, Up: 3 } as const;
export type BfdStateName = "AdminDown" | "Down" | "Init" | "Up";
export const STATE_NAMES: readonly BfdStateName[] = ["AdminDown", "Down", "Init", "Up"];

/** Diagnostic codes (RFC 5880 §4.1). */
export const BfdDiag = {
  None: 0,
  ControlDetectionTimeExpired: 1,
  EchoFunctionFailed: 2,
  NeighborSignaledDown: 3,
  ForwardingPlaneReset: 4,
  PathDown: 5,
  ConcatenatedPathDown: 6,
  AdministrativelyDown: 7,
  ReverseConcatenatedPathDown: 8,
} as const;

const DIAG_TEXT = [
  "No Diagnostic",
  "Control Detection Time Expired",
  "Echo Function Failed",
  "Neighbor Signaled Session Down",
  "Forwarding Plane Reset",
  "Path Down",
  "Concatenated Path Down",
  "Administratively Down",
  "Reverse Concatenated Path Down",
];

/** "Control Detection Time Expired" for 1; "diagnostic N" for codes RFC 5880 does not name. */
export function diagText(d: number): string {
  return DIAG_TEXT[d] ?? `diagnostic ${d}`;
}

export const BFD_VERSION = 1;
/** Length of a control packet without authentication. */
export const BFD_PACKET_LEN = 24;

export interface ControlPacket {
  diag: number;
  state: number;
  poll: boolean;
  final: boolean;
  /** C: Control Plane Independent. */
  cpi: boolean;
  /** A: Authentication Present (never set by us; decode rejects it). */
  auth: boolean;
  demand: boolean;
  multipoint: boolean;
  detectMult: number;
  myDisc: number;
  yourDisc: number;
  /** Microseconds. */
  desiredMinTx: number;
  /** Microseconds. */
  requiredMinRx: number;
  /** Microseconds. */
  requiredMinEchoRx: number;
}

/** A received packet that §6.8.6 says to discard; `reason` says which check failed. */
export class BfdPacketError extends Error {
  constructor(readonly reason: string) {
    super(`BFD packet discarded: ${reason}`);
    this.name = "BfdPacketError";
  }
}

/** Encode a control packet (24 bytes, no authentication section). */
export function encodeControl(p: ControlPacket): Uint8Array {
  const b = new Uint8Array(BFD_PACKET_LEN);
  const v = new DataView(b.buffer);
  b[0] = (BFD_VERSION << 5) | (p.diag & 0x1f);
  b[1] = ((p.state & 3) << 6) | (p.poll ? 0x20 : 0) | (p.final ? 0x10 : 0) | (p.cpi ? 0x08 : 0) | (p.auth ? 0x04 : 0) | (p.demand ? 0x02 : 0) | (p.multipoint ? 0x01 : 0);
  b[2] = p.detectMult & 0xff;
  b[3] = BFD_PACKET_LEN;
  v.setUint32(4, p.myDisc >>> 0);
  v.setUint32(8, p.yourDisc >>> 0);
  v.setUint32(12, p.desiredMinTx >>> 0);
  v.setUint32(16, p.requiredMinRx >>> 0);
  v.setUint32(20, p.requiredMinEchoRx >>> 0);
  return b;
}

/**
 * Decode a received datagram, applying the packet-only checks of RFC 5880
 * §6.8.6 in their order: version, length (24, or 26 with A), length not
 * beyond the datagram, detect multiplier, M bit, My Discriminator, Your
 * Discriminator zero only in Down/AdminDown, then the A bit (no
 * authentication configured). Throws BfdPacketError naming the check.
 */
export function decodeControl(buf: Uint8Array): ControlPacket {
  if (buf.length < 4) throw new BfdPacketError(`datagram of ${buf.length} bytes, shorter than a BFD header`);
  const version = buf[0]! >> 5;
  if (version !== BFD_VERSION) throw new BfdPacketError(`version ${version}, not ${BFD_VERSION}`);
  const auth = (buf[1]! & 0x04) !== 0;
  const len = buf[3]!;
  if (len < (auth ? 26 : BFD_PACKET_LEN)) throw new BfdPacketError(`length field ${len}, below the minimum ${auth ? 26 : BFD_PACKET_LEN}`);
  if (len > buf.length) throw new BfdPacketError(`length field ${len}, beyond the ${buf.length}-byte datagram`);
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const p: ControlPacket = {
    diag: buf[0]! & 0x1f,
    state: buf[1]! >> 6,
    poll: (buf[1]! & 0x20) !== 0,
    final: (buf[1]! & 0x10) !== 0,
    cpi: (buf[1]! & 0x08) !== 0,
    auth,
    demand: (buf[1]! & 0x02) !== 0,
    multipoint: (buf[1]! & 0x01) !== 0,
    detectMult: buf[2]!,
    myDisc: v.getUint32(4),
    yourDisc: v.getUint32(8),
    desiredMinTx: v.getUint32(12),
    requiredMinRx: v.getUint32(16),
    requiredMinEchoRx: v.getUint32(20),
  };
  if (p.detectMult === 0) throw new BfdPacketError("detect multiplier 0");
  if (p.multipoint) throw new BfdPacketError("multipoint (M) bit set");
  if (p.myDisc === 0) throw new BfdPacketError("My Discriminator 0");
  if (p.yourDisc === 0 && p.state !== BfdState.Down && p.state !== BfdState.AdminDown) {
    throw new BfdPacketError(`Your Discriminator 0 in state ${STATE_NAMES[p.state]}`);
  }
  if (auth) throw new BfdPacketError("authentication (A bit) present, none configured");
  return p;
}
