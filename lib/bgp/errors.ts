/**
 * The only exception type the BGP decoder throws. It carries what the session
 * must put in the NOTIFICATION it sends before closing (RFC 4271 §6).
 */
import { CEASE_SUB, ERR } from "./types.ts";

export class BgpError extends Error {
  override readonly name = "BgpError";
  constructor(
    readonly code: number,
    readonly subcode: number,
    message: string,
    readonly data: Uint8Array = new Uint8Array(0),
  ) {
    super(message);
  }
}

const CODE_NAMES: Record<number, string> = {
  1: "Message Header Error",
  2: "OPEN Message Error",
  3: "UPDATE Message Error",
  4: "Hold Timer Expired",
  5: "Finite State Machine Error",
  6: "Cease",
  7: "ROUTE-REFRESH Message Error",
};

const SUBCODE_NAMES: Record<number, Record<number, string>> = {
  1: { 1: "Connection Not Synchronized", 2: "Bad Message Length", 3: "Bad Message Type" },
  2: {
    1: "Unsupported Version Number",
    2: "Bad Peer AS",
    3: "Bad BGP Identifier",
    4: "Unsupported Optional Parameter",
    6: "Unacceptable Hold Time",
    7: "Unsupported Capability",
    11: "Role Mismatch",
  },
  3: {
    1: "Malformed Attribute List",
    2: "Unrecognized Well-known Attribute",
    3: "Missing Well-known Attribute",
    4: "Attribute Flags Error",
    5: "Attribute Length Error",
    6: "Invalid ORIGIN Attribute",
    8: "Invalid NEXT_HOP Attribute",
    9: "Optional Attribute Error",
    10: "Invalid Network Field",
    11: "Malformed AS_PATH",
  },
  5: {
    0: "Unspecified Error",
    1: "Receive Unexpected Message in OpenSent State",
    2: "Receive Unexpected Message in OpenConfirm State",
    3: "Receive Unexpected Message in Established State",
  },
  6: {
    1: "Maximum Number of Prefixes Reached",
    2: "Administrative Shutdown",
    3: "Peer De-configured",
    4: "Administrative Reset",
    5: "Connection Rejected",
    6: "Other Configuration Change",
    7: "Connection Collision Resolution",
    8: "Out of Resources",
    9: "Hard Reset",
    10: "BFD Down",
  },
  7: { 1: "Invalid Message Length" },
};

/** Human name of a NOTIFICATION code/subcode, e.g. "Cease/Administrative Shutdown". */
export function notificationName(code: number, subcode: number): string {
  const c = CODE_NAMES[code] ?? `code ${code}`;
  const s = SUBCODE_NAMES[code]?.[subcode] ?? (subcode === 0 ? "" : `subcode ${subcode}`);
  return s ? `${c}/${s}` : c;
}

/** True for the Cease subcodes that may carry a shutdown communication (RFC 9003). */
export function carriesShutdownMessage(code: number, subcode: number): boolean {
  return code === ERR.CEASE && (subcode === CEASE_SUB.ADMIN_SHUTDOWN || subcode === CEASE_SUB.ADMIN_RESET);
}
