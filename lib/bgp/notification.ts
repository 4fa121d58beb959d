/**
 * NOTIFICATION (RFC 4271 §4.5) with the shutdown communication of RFC 8203 /
 * RFC 9003 on Cease/Administrative Shutdown and Administrative Reset;
 * KEEPALIVE; ROUTE-REFRESH (RFC 2918) with the BoRR/EoRR subtypes of RFC 7313.
 */
import { BgpError, carriesShutdownMessage, notificationName } from "./errors.ts";
import { Writer, fromUtf8, u16, utf8 } from "./bytes.ts";
import { frame } from "./framer.ts";
import { CEASE_SUB, ERR, MsgType, ROUTE_REFRESH_SUB } from "./types.ts";

export interface NotificationMessage {
  code: number;
  subcode: number;
  data: Uint8Array;
  /** The shutdown communication, when the NOTIFICATION carries one (also inside a Hard Reset). */
  message?: string;
  /** Cease/Hard Reset (RFC 8538 §3): the Cease subcode it carries in its data. */
  hardResetOf?: number;
}

/** Maximum shutdown communication length (RFC 9003). */
export const SHUTDOWN_MSG_MAX = 255;

export function decodeNotification(body: Uint8Array): NotificationMessage {
  const code = body[0]!;
  const subcode = body[1]!;
  const data = body.slice(2);
  const n: NotificationMessage = { code, subcode, data };
  let inner = subcode;
  let rest = data;
  if (code === ERR.CEASE && subcode === CEASE_SUB.HARD_RESET && data.length >= 1) {
    // RFC 8538 §3: the data is the Cease subcode it stands for, then that subcode's data.
    inner = n.hardResetOf = data[0]!;
    rest = data.subarray(1);
  }
  if (carriesShutdownMessage(code, inner) && rest.length >= 1) {
    const len = rest[0]!;
    if (len > 0 && len + 1 <= rest.length) n.message = fromUtf8(rest.subarray(1, 1 + len));
  }
  return n;
}

export function encodeNotification(code: number, subcode: number, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const w = new Writer(2 + data.length);
  w.u8(code).u8(subcode).bytes(data);
  return frame(MsgType.NOTIFICATION, w.finish());
}

/** Data for a Cease with a shutdown communication: length byte + UTF-8, cut to 255 bytes on a character boundary. */
export function shutdownData(message: string): Uint8Array {
  let b = utf8(message);
  if (b.length > SHUTDOWN_MSG_MAX) {
    let cut = SHUTDOWN_MSG_MAX;
    while (cut > 0 && (b[cut]! & 0xc0) === 0x80) cut--;
    b = b.subarray(0, cut);
  }
  const out = new Uint8Array(1 + b.length);
  out[0] = b.length;
  out.set(b, 1);
  return out;
}

/** NOTIFICATION for a protocol error thrown by the decoder. */
export function encodeErrorNotification(e: BgpError): Uint8Array {
  return encodeNotification(e.code, e.subcode, e.data);
}

export function describeNotification(n: NotificationMessage): string {
  let s = `${notificationName(n.code, n.subcode)} (${n.code}/${n.subcode})`;
  if (n.hardResetOf !== undefined) s += ` for ${notificationName(n.code, n.hardResetOf).replace(/^Cease\//, "")}`;
  if (n.message !== undefined) s += `: "${n.message}"`;
  else if (n.data.length && n.hardResetOf === undefined && !carriesShutdownMessage(n.code, n.subcode)) s += ` data ${Array.from(n.data.subarray(0, 32), (x) => x.toString(16).padStart(2, "0")).join("")}`;
  return s;
}

export const KEEPALIVE: Uint8Array = frame(MsgType.KEEPALIVE, new Uint8Array(0));

export const REFRESH_SUBTYPE = { NORMAL: 0, BORR: 1, EORR: 2 } as const;

export interface RouteRefreshMessage {
  afi: number;
  safi: number;
  /** 0 normal request, 1 BoRR, 2 EoRR (RFC 7313). */
  subtype: number;
}

/** Decode a ROUTE-REFRESH body; `raw` (the whole message) becomes the NOTIFICATION data on error (RFC 7313 §5). */
export function decodeRouteRefresh(body: Uint8Array, raw: Uint8Array = body): RouteRefreshMessage {
  if (body.length !== 4) {
    throw new BgpError(ERR.ROUTE_REFRESH, ROUTE_REFRESH_SUB.INVALID_MESSAGE_LENGTH, `ROUTE-REFRESH body length ${body.length}`, raw.slice());
  }
  return { afi: u16(body, 0), safi: body[3]!, subtype: body[2]! };
}

export function encodeRouteRefresh(r: RouteRefreshMessage): Uint8Array {
  return frame(MsgType.ROUTE_REFRESH, new Writer(4).u16(r.afi).u8(r.subtype).u8(r.safi).finish());
}
