/**
 * OPEN message and capabilities (RFC 4271 §4.2, RFC 5492, RFC 9072 extended
 * optional parameters) with every capability the speaker understands; unknown
 * capabilities are kept as raw bytes so they can be shown, never fatal.
 */
import { Writer, u16, u32 } from "./bytes.ts";
import { BgpError } from "./errors.ts";
import { frame } from "./framer.ts";
import { formatIPv4, parseIPv4 } from "../core/addr.ts";
import { AS_TRANS, CAP, ERR, MsgType, OPEN_SUB, ROLE_NAMES, familyName } from "./types.ts";

export interface AddPathFamily {
  afi: number;
  safi: number;
  send: boolean;
  receive: boolean;
}

export interface GracefulRestartFamily {
  afi: number;
  safi: number;
  forwardingPreserved: boolean;
}

/** One family of the long-lived graceful restart capability (RFC 9494 §3). */
export interface LongLivedFamily {
  afi: number;
  safi: number;
  forwardingPreserved: boolean;
  /** Long-lived stale time, seconds (24 bits). */
  staleTime: number;
}

export type Capability =
  | { type: "multiprotocol"; afi: number; safi: number }
  | { type: "route-refresh" }
  | { type: "route-refresh-cisco" }
  | { type: "enhanced-route-refresh" }
  | { type: "four-octet-as"; asn: number }
  | {
      type: "graceful-restart";
      restarting: boolean;
      notification: boolean;
      restartTime: number;
      families: GracefulRestartFamily[];
    }
  | { type: "long-lived-graceful-restart"; families: LongLivedFamily[] }
  | { type: "add-path"; families: AddPathFamily[] }
  | { type: "extended-message" }
  | { type: "extended-next-hop"; entries: { afi: number; safi: number; nextHopAfi: number }[] }
  | { type: "role"; role: number }
  | { type: "unknown"; code: number; value: Uint8Array };

export interface OpenMessage {
  version: number;
  /** The 2-octet "My Autonomous System" field (AS_TRANS for 4-octet ASNs). */
  myAs: number;
  holdTime: number;
  /** BGP identifier, dotted quad. */
  routerId: string;
  capabilities: Capability[];
}

/** The real AS of an OPEN: the 4-octet AS capability if present, else the 2-octet field. */
export function openAs(o: OpenMessage): number {
  for (const c of o.capabilities) if (c.type === "four-octet-as") return c.asn;
  return o.myAs;
}

function openErr(sub: number, msg: string, data?: Uint8Array): BgpError {
  return new BgpError(ERR.OPEN, sub, msg, data);
}

function decodeCapability(code: number, v: Uint8Array): Capability {
  const bad = (what: string) => openErr(0, `malformed ${what} capability (length ${v.length})`);
  switch (code) {
    case CAP.MULTIPROTOCOL:
      if (v.length !== 4) throw bad("multiprotocol");
      return { type: "multiprotocol", afi: u16(v, 0), safi: v[3]! };
    case CAP.ROUTE_REFRESH:
      if (v.length !== 0) throw bad("route refresh");
      return { type: "route-refresh" };
    case CAP.ROUTE_REFRESH_CISCO:
      return { type: "route-refresh-cisco" };
    case CAP.ENHANCED_ROUTE_REFRESH:
      if (v.length !== 0) throw bad("enhanced route refresh");
      return { type: "enhanced-route-refresh" };
    case CAP.FOUR_OCTET_AS:
      if (v.length !== 4) throw bad("4-octet AS");
      return { type: "four-octet-as", asn: u32(v, 0) };
    case CAP.EXTENDED_MESSAGE:
      if (v.length !== 0) throw bad("extended message");
      return { type: "extended-message" };
    case CAP.ROLE:
      if (v.length !== 1) throw bad("role");
      return { type: "role", role: v[0]! };
    case CAP.GRACEFUL_RESTART: {
      if (v.length < 2 || (v.length - 2) % 4 !== 0) throw bad("graceful restart");
      const w = u16(v, 0);
      const families: GracefulRestartFamily[] = [];
      for (let o = 2; o < v.length; o += 4) {
        families.push({ afi: u16(v, o), safi: v[o + 2]!, forwardingPreserved: (v[o + 3]! & 0x80) !== 0 });
      }
      return {
        type: "graceful-restart",
        restarting: (w & 0x8000) !== 0,
        notification: (w & 0x4000) !== 0,
        restartTime: w & 0x0fff,
        families,
      };
    }
    case CAP.LONG_LIVED_GRACEFUL_RESTART: {
      if (v.length % 7 !== 0) throw bad("long-lived graceful restart");
      const families: LongLivedFamily[] = [];
      for (let o = 0; o < v.length; o += 7) {
        families.push({ afi: u16(v, o), safi: v[o + 2]!, forwardingPreserved: (v[o + 3]! & 0x80) !== 0, staleTime: (v[o + 4]! << 16) | (v[o + 5]! << 8) | v[o + 6]! });
      }
      return { type: "long-lived-graceful-restart", families };
    }
    case CAP.ADD_PATH: {
      if (v.length === 0 || v.length % 4 !== 0) throw bad("ADD-PATH");
      const families: AddPathFamily[] = [];
      for (let o = 0; o < v.length; o += 4) {
        const sr = v[o + 3]!;
        // RFC 7911 §4: any other Send/Receive value: the capability SHOULD be
        // treated as not understood and ignored (kept raw, like an unknown one).
        if (sr < 1 || sr > 3) return { type: "unknown", code, value: v.slice() };
        families.push({ afi: u16(v, o), safi: v[o + 2]!, receive: (sr & 1) !== 0, send: (sr & 2) !== 0 });
      }
      return { type: "add-path", families };
    }
    case CAP.EXTENDED_NEXT_HOP: {
      if (v.length === 0 || v.length % 6 !== 0) throw bad("extended next hop");
      const entries = [];
      for (let o = 0; o < v.length; o += 6) {
        entries.push({ afi: u16(v, o), safi: u16(v, o + 2), nextHopAfi: u16(v, o + 4) });
      }
      return { type: "extended-next-hop", entries };
    }
    default:
      return { type: "unknown", code, value: v.slice() };
  }
}

function decodeCapabilities(p: Uint8Array, out: Capability[]): void {
  let o = 0;
  while (o < p.length) {
    if (p.length - o < 2) throw openErr(0, "truncated capability header");
    const code = p[o]!;
    const len = p[o + 1]!;
    if (o + 2 + len > p.length) throw openErr(0, `capability ${code} overruns its parameter`);
    out.push(decodeCapability(code, p.subarray(o + 2, o + 2 + len)));
    o += 2 + len;
  }
}

/** Decode an OPEN body (after the header). Throws BgpError with the right OPEN subcode. */
export function decodeOpen(body: Uint8Array): OpenMessage {
  if (body.length < 10) throw new BgpError(ERR.HEADER, 2, "OPEN too short");
  const version = body[0]!;
  if (version !== 4) {
    throw openErr(OPEN_SUB.UNSUPPORTED_VERSION, `unsupported BGP version ${version}`, Uint8Array.of(0, 4));
  }
  const myAs = u16(body, 1);
  const holdTime = u16(body, 3);
  if (holdTime === 1 || holdTime === 2) {
    throw openErr(OPEN_SUB.UNACCEPTABLE_HOLD_TIME, `unacceptable hold time ${holdTime}`);
  }
  const id = body.subarray(5, 9);
  const routerId = formatIPv4(id);
  if (u32(id, 0) === 0) throw openErr(OPEN_SUB.BAD_BGP_IDENTIFIER, "BGP identifier 0.0.0.0");
  let optLen = body[9]!;
  let o = 10;
  let extended = false;
  // RFC 9072: non-extended length 255 and first type 255 => extended format.
  if (optLen === 255 && body.length >= 13 && body[10] === 255) {
    extended = true;
    optLen = u16(body, 11);
    o = 13;
  }
  if (o + optLen !== body.length) throw openErr(0, `optional parameters length ${optLen} does not match message`);
  const capabilities: Capability[] = [];
  const end = o + optLen;
  while (o < end) {
    const hdr = extended ? 3 : 2;
    if (end - o < hdr) throw openErr(0, "truncated optional parameter");
    const type = body[o]!;
    const len = extended ? u16(body, o + 1) : body[o + 1]!;
    const p = body.subarray(o + hdr, o + hdr + len);
    if (o + hdr + len > end) throw openErr(0, "optional parameter overruns OPEN");
    if (type !== 2) {
      throw openErr(OPEN_SUB.UNSUPPORTED_OPTIONAL_PARAMETER, `unsupported optional parameter ${type}`);
    }
    decodeCapabilities(p, capabilities);
    o += hdr + len;
  }
  return { version, myAs, holdTime, routerId, capabilities };
}

function encodeCapability(w: Writer, c: Capability): void {
  const start = w.len;
  w.u8(0).u8(0);
  switch (c.type) {
    case "multiprotocol":
      w.patch8(start, CAP.MULTIPROTOCOL);
      w.u16(c.afi).u8(0).u8(c.safi);
      break;
    case "route-refresh":
      w.patch8(start, CAP.ROUTE_REFRESH);
      break;
    case "route-refresh-cisco":
      w.patch8(start, CAP.ROUTE_REFRESH_CISCO);
      break;
    case "enhanced-route-refresh":
      w.patch8(start, CAP.ENHANCED_ROUTE_REFRESH);
      break;
    case "four-octet-as":
      w.patch8(start, CAP.FOUR_OCTET_AS);
      w.u32(c.asn);
      break;
    case "extended-message":
      w.patch8(start, CAP.EXTENDED_MESSAGE);
      break;
    case "role":
      w.patch8(start, CAP.ROLE);
      w.u8(c.role);
      break;
    case "graceful-restart":
      w.patch8(start, CAP.GRACEFUL_RESTART);
      w.u16((c.restarting ? 0x8000 : 0) | (c.notification ? 0x4000 : 0) | (c.restartTime & 0x0fff));
      for (const f of c.families) w.u16(f.afi).u8(f.safi).u8(f.forwardingPreserved ? 0x80 : 0);
      break;
    case "long-lived-graceful-restart":
      w.patch8(start, CAP.LONG_LIVED_GRACEFUL_RESTART);
      for (const f of c.families) w.u16(f.afi).u8(f.safi).u8(f.forwardingPreserved ? 0x80 : 0).u8((f.staleTime >>> 16) & 0xff).u16(f.staleTime & 0xffff);
      break;
    case "add-path":
      w.patch8(start, CAP.ADD_PATH);
      for (const f of c.families) w.u16(f.afi).u8(f.safi).u8((f.receive ? 1 : 0) | (f.send ? 2 : 0));
      break;
    case "extended-next-hop":
      w.patch8(start, CAP.EXTENDED_NEXT_HOP);
      for (const e of c.entries) w.u16(e.afi).u16(e.safi).u16(e.nextHopAfi);
      break;
    case "unknown":
      w.patch8(start, c.code);
      w.bytes(c.value);
      break;
  }
  const len = w.len - start - 2;
  if (len > 255) throw new Error(`capability ${c.type} too long`);
  w.patch8(start + 1, len);
}

/**
 * Encode a whole OPEN message (with header). Each capability goes in its own
 * optional parameter (as BIRD and most speakers do); the RFC 9072 extended
 * format is used only when the parameters exceed 255 bytes.
 */
export function encodeOpen(o: OpenMessage): Uint8Array {
  const params = new Writer(128);
  for (const c of o.capabilities) {
    const cw = new Writer(32);
    encodeCapability(cw, c);
    params.u8(2).u8(cw.len).bytes(cw.finish());
  }
  const id = parseIPv4(o.routerId);
  if (!id) throw new Error(`invalid router id "${o.routerId}"`);
  const w = new Writer(64 + params.len);
  w.u8(o.version).u16(o.myAs).u16(o.holdTime).bytes(id);
  if (params.len <= 255) {
    w.u8(params.len).bytes(params.finish());
  } else {
    // RFC 9072 extended optional parameters
    const ext = new Writer(params.len + 64);
    for (const c of o.capabilities) {
      const cw = new Writer(32);
      encodeCapability(cw, c);
      ext.u8(2).u16(cw.len).bytes(cw.finish());
    }
    w.u8(255).u8(255).u16(ext.len).bytes(ext.finish());
  }
  return frame(MsgType.OPEN, w.finish());
}

/** The 2-octet My AS value for an ASN (AS_TRANS when it does not fit). */
export function myAsField(asn: number): number {
  return asn > 0xffff ? AS_TRANS : asn;
}

/** One-line human description of a capability, as `show` prints it. */
export function describeCapability(c: Capability): string {
  switch (c.type) {
    case "multiprotocol":
      return `multiprotocol ${familyName(c.afi, c.safi)}`;
    case "four-octet-as":
      return `4-octet AS ${c.asn}`;
    case "graceful-restart":
      return `graceful restart (time ${c.restartTime}s${c.restarting ? ", restarting" : ""}${c.notification ? ", notification" : ""}${
        c.families.length ? ", " + c.families.map((f) => familyName(f.afi, f.safi) + (f.forwardingPreserved ? "(F)" : "")).join(" ") : ""
      })`;
    case "long-lived-graceful-restart":
      return `long-lived graceful restart (${c.families.map((f) => `${familyName(f.afi, f.safi)} ${f.staleTime}s${f.forwardingPreserved ? "(F)" : ""}`).join(" ")})`;
    case "add-path":
      return `add-path ${c.families
        .map((f) => `${familyName(f.afi, f.safi)}:${f.send && f.receive ? "send/receive" : f.send ? "send" : "receive"}`)
        .join(" ")}`;
    case "extended-next-hop":
      return `extended next hop ${c.entries.map((e) => `${familyName(e.afi, e.safi)} via ${e.nextHopAfi === 2 ? "ipv6" : "ipv4"}`).join(" ")}`;
    case "role":
      return `role ${ROLE_NAMES[c.role] ?? c.role}`;
    case "unknown":
      return `unknown capability ${c.code} (${c.value.length} bytes)`;
    default:
      return c.type.replace(/-/g, " ");
  }
}

/** Our graceful restart settings for one session's OPEN (RFC 4724, 8538, 9494). */
export interface GracefulRestartOffer {
  restartTime: number;
  /** RFC 8538 N bit. */
  notification: boolean;
  /** R bit: we restarted and are still in restart recovery. */
  restarting: boolean;
  /** F bit of a family: its forwarding state was kept across our restart. */
  forwarding: (afi: number, safi: number) => boolean;
  /** RFC 9494 long-lived stale time; 0: no LLGR capability. */
  longLivedStaleTime: number;
}

/**
 * The optional capabilities bgpctl announces on every session besides
 * multiprotocol, route refresh and 4-octet AS (which the session adds):
 * extended messages (RFC 8654), extended next hop for IPv4 unicast (RFC 8950:
 * IPv4 routes with IPv6 next hops, installed with RTA_VIA), and, unless `gr`
 * is null, graceful restart (RFC 4724 with the RFC 8538 N bit) and long-lived
 * graceful restart (RFC 9494) when its stale time is set. GoBGP, for one,
 * sends End-of-RIB only to speakers announcing graceful restart.
 */
export function speakerCapabilities(families: { afi: number; safi: number }[], gr: GracefulRestartOffer | null): Capability[] {
  const v4 = families.filter((f) => f.afi === 1);
  const caps: Capability[] = [
    { type: "extended-message" },
    ...(v4.length ? [{ type: "extended-next-hop" as const, entries: v4.map((f) => ({ afi: f.afi, safi: f.safi, nextHopAfi: 2 })) }] : []),
  ];
  if (gr) {
    caps.push({
      type: "graceful-restart",
      restarting: gr.restarting,
      notification: gr.notification,
      restartTime: gr.restartTime,
      families: families.map((f) => ({ afi: f.afi, safi: f.safi, forwardingPreserved: gr.forwarding(f.afi, f.safi) })),
    });
    if (gr.longLivedStaleTime > 0) {
      caps.push({
        type: "long-lived-graceful-restart",
        families: families.map((f) => ({ afi: f.afi, safi: f.safi, forwardingPreserved: gr.forwarding(f.afi, f.safi), staleTime: gr.longLivedStaleTime })),
      });
    }
  }
  return caps;
}
