/**
 * rtnetlink wire codec, pure (no sockets, no FFI): encode route
 * requests (RTM_NEWROUTE / RTM_DELROUTE with RTA_DST, RTA_GATEWAY, RTA_VIA,
 * RTA_OIF, RTA_TABLE, RTA_PRIORITY, RTA_MULTIPATH), dump requests
 * (RTM_GETROUTE with a strict-check table/protocol filter, RTM_GETLINK,
 * RTM_GETADDR) and single-address route lookups (RTM_GETROUTE with
 * RTM_F_FIB_MATCH, `ip route get ADDR fibmatch`), the overlay's link,
 * neighbour/FDB and address requests (RTM_NEWLINK of a VXLAN device,
 * RTM_DELLINK, RTM_NEWNEIGH/RTM_DELNEIGH/RTM_GETNEIGH of AF_INET, AF_INET6
 * and AF_BRIDGE, RTM_NEWADDR/RTM_DELADDR); decode what the kernel sends back (netlink message streams,
 * NLMSG_ERROR with the extended-ack TLVs, NLMSG_DONE, routes, links with
 * their VXLAN settings, addresses, neighbours, multicast notifications).
 *
 * Layouts (all host byte order, little-endian here, except addresses):
 *   nlmsghdr  16: len u32, type u16, flags u16, seq u32, pid u32
 *   rtmsg     12: family, dst_len, src_len, tos, table, protocol, scope, type (u8 each), flags u32
 *   rtattr     4: len u16, type u16, then the value, padded to 4
 *   rtnexthop  8: len u16, flags u8, hops u8 (weight - 1), ifindex i32, then nested rtattrs
 *   rtvia      2: family u16, then the address
 *   ifinfomsg 16: family u8, pad u8, type u16, index i32, flags u32, change u32
 *   ifaddrmsg  8: family, prefixlen, flags, scope (u8 each), index u32
 *   ndmsg     12: family u8, pad u8, pad u16, ifindex i32, state u16, flags u8, type u8
 *   nlmsgerr   4: error i32 (-errno, 0 = ack), then the request's header
 *              (only the header when NLM_F_CAPPED), then TLVs when NLM_F_ACK_TLVS
 *
 * Malformed input throws NetlinkDecodeError saying what and where; nothing
 * reads past the buffer.
 */
import { formatIPv4, formatIPv6, parseIPv6 } from "../lib/core/addr.ts";
import type {
  AddressOp,
  FibFamily,
  KernelAddress,
  KernelEvent,
  KernelLink,
  KernelNeighbor,
  KernelNextHop,
  KernelOp,
  KernelRoute,
  KernelVxlan,
  LinkOp,
  NeighborOp,
} from "../lib/fib/types.ts";

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_INET6 = 10;

export const NLMSG_HDRLEN = 16;
export const NLMSG_NOOP = 1;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;

export const NLM_F_REQUEST = 0x01;
export const NLM_F_MULTI = 0x02;
export const NLM_F_ACK = 0x04;
export const NLM_F_ECHO = 0x08;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP_FILTERED = 0x20;
/** GET requests */
export const NLM_F_ROOT = 0x100;
export const NLM_F_MATCH = 0x200;
export const NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH;
/** NEW requests */
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;
/** NLMSG_ERROR replies */
export const NLM_F_CAPPED = 0x100;
export const NLM_F_ACK_TLVS = 0x200;

export const NLMSGERR_ATTR_MSG = 1;
export const NLMSGERR_ATTR_OFFS = 2;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;

export const RTA_DST = 1;
export const RTA_SRC = 2;
export const RTA_IIF = 3;
export const RTA_OIF = 4;
export const RTA_GATEWAY = 5;
export const RTA_PRIORITY = 6;
export const RTA_PREFSRC = 7;
export const RTA_METRICS = 8;
export const RTA_MULTIPATH = 9;
export const RTA_TABLE = 15;
export const RTA_VIA = 18;
const RTA_MAX = 40;

export const RTN_UNICAST = 1;
export const RTN_LOCAL = 2;
export const RTN_BLACKHOLE = 6;
export const RTN_UNREACHABLE = 7;
export const RTN_PROHIBIT = 8;

export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
export const RT_SCOPE_NOWHERE = 255;

export const RT_TABLE_UNSPEC = 0;
export const RT_TABLE_MAIN = 254;

export const RTPROT_STATIC = 4;
export const RTPROT_BGP = 186;

export const RTM_F_CLONED = 0x200;
/** RTM_GETROUTE of one address: answer with the matching FIB entry, not the resolved dst. */
export const RTM_F_FIB_MATCH = 0x2000;

export const RTNH_F_ONLINK = 4;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINKINFO = 18;
const IFLA_MAX = 70;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
export const IFLA_VXLAN_ID = 1;
export const IFLA_VXLAN_LOCAL = 4;
export const IFLA_VXLAN_LEARNING = 7;
export const IFLA_VXLAN_PORT = 15;
export const IFLA_VXLAN_LOCAL6 = 17;
const IFLA_VXLAN_MAX = 30;
const NLA_F_NESTED = 0x8000;

export const AF_BRIDGE = 7;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;
export const NDA_DST = 1;
export const NDA_LLADDR = 2;
export const NDA_IFINDEX = 8;
const NDA_MAX = 16;
export const NUD_NOARP = 0x40;
export const NUD_PERMANENT = 0x80;
export const NTF_SELF = 0x02;
const NDMSG_LEN = 12;

export const IFF_UP = 0x1;
export const IFF_RUNNING = 0x40;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;
const IFA_MAX = 12;

/** Multicast groups (setsockopt NETLINK_ADD_MEMBERSHIP takes the number). */
export const RTNLGRP_LINK = 1;
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV4_ROUTE = 7;
export const RTNLGRP_IPV6_IFADDR = 9;
export const RTNLGRP_IPV6_ROUTE = 11;

const RTMSG_LEN = 12;
const IFINFOMSG_LEN = 16;
const IFADDRMSG_LEN = 8;
const RTNH_LEN = 8;

export function nlAlign(n: number): number {
  return (n + 3) & ~3;
}

/** Malformed netlink input (or an unencodable request). */
export class NetlinkDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetlinkDecodeError";
  }
}

/** A request that cannot be encoded (bad prefix, gateway of the wrong family, ...). */
export class NetlinkEncodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NetlinkEncodeError";
  }
}

// ---------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------

/** A growable byte buffer that netlink messages are written into, back to back. */
export class NlWriter {
  buf: Uint8Array;
  private dv: DataView;
  off = 0;

  constructor(capacity = 4096) {
    this.buf = new Uint8Array(capacity);
    this.dv = new DataView(this.buf.buffer);
  }

  reset(): void {
    this.off = 0;
  }

  ensure(n: number): void {
    if (this.off + n <= this.buf.byteLength) return;
    let cap = this.buf.byteLength * 2;
    while (cap < this.off + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.off));
    this.buf = nb;
    this.dv = new DataView(nb.buffer);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.off++] = v;
  }
  u16(v: number): void {
    this.ensure(2);
    this.dv.setUint16(this.off, v, true);
    this.off += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.off, v >>> 0, true);
    this.off += 4;
  }
  /** A 32-bit value in network byte order (an IPv4 address). */
  u32be(v: number): void {
    this.ensure(4);
    this.dv.setUint32(this.off, v >>> 0, false);
    this.off += 4;
  }
  i32(v: number): void {
    this.ensure(4);
    this.dv.setInt32(this.off, v, true);
    this.off += 4;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.off);
    this.off += b.byteLength;
  }
  zeros(n: number): void {
    this.ensure(n);
    this.buf.fill(0, this.off, this.off + n);
    this.off += n;
  }
  pad(): void {
    const p = nlAlign(this.off) - this.off;
    if (p) this.zeros(p);
  }

  /** Start a message; returns its offset for endMessage. */
  beginMessage(type: number, flags: number, seq: number, pid = 0): number {
    this.pad();
    const start = this.off;
    this.u32(0);
    this.u16(type);
    this.u16(flags);
    this.u32(seq);
    this.u32(pid);
    return start;
  }
  endMessage(start: number): void {
    this.pad();
    this.dv.setUint32(start, this.off - start, true);
  }
  /** Set flags of an already written message (e.g. add NLM_F_ACK to the last of a batch). */
  orFlags(start: number, flags: number): void {
    this.dv.setUint16(start + 6, this.dv.getUint16(start + 6, true) | flags, true);
  }

  beginAttr(type: number): number {
    this.pad();
    const start = this.off;
    this.u16(0);
    this.u16(type);
    return start;
  }
  endAttr(start: number): void {
    this.dv.setUint16(start, this.off - start, true);
    this.pad();
  }
  attrU32(type: number, v: number): void {
    this.pad();
    this.u16(8);
    this.u16(type);
    this.u32(v);
  }
  attrBytes(type: number, b: Uint8Array): void {
    this.pad();
    this.u16(4 + b.byteLength);
    this.u16(type);
    this.bytes(b);
    this.pad();
  }
  attrString(type: number, s: string): void {
    const enc = new TextEncoder().encode(s);
    const b = new Uint8Array(enc.byteLength + 1);
    b.set(enc);
    this.attrBytes(type, b);
  }

  /** A copy of the bytes written so far. */
  take(): Uint8Array {
    return this.buf.slice(0, this.off);
  }
}

// ---------------------------------------------------------------------------
// Addresses and prefixes
// ---------------------------------------------------------------------------

function familyOf(f: FibFamily): number {
  if (f === 4) return AF_INET;
  if (f === 6) return AF_INET6;
  throw new NetlinkEncodeError(`invalid family ${String(f)}: expected 4 or 6`);
}

/**
 * Dotted quad in s[from, to) as a 32-bit number (-1 if invalid), without
 * allocating (the hot path of encoding many IPv4 routes); same rules as
 * lib/bgp parseIPv4 (four parts 0..255, no leading zeros).
 */
function parseIPv4Num(s: string, from: number, to: number): number {
  let v = 0;
  let part = 0;
  let n = 0;
  let digits = 0;
  let lead0 = false;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3 || (lead0 && digits > 1)) return -1;
      v = v * 256 + n;
      part++;
      n = 0;
      digits = 0;
      continue;
    }
    if (c < 48 || c > 57 || digits === 3) return -1;
    if (digits === 0) lead0 = c === 48;
    n = n * 10 + (c - 48);
    if (n > 255) return -1;
    digits++;
  }
  return part === 4 ? v : -1;
}

function v4Bytes(v: number): Uint8Array {
  return new Uint8Array([v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255]);
}

/** Mask of the host bits of an IPv4 /len, as an unsigned number. */
function v4HostMask(len: number): number {
  return len >= 32 ? 0 : 0xffffffff >>> len;
}

/** Parse "a.b.c.d/n" / "x::/n" of the given family; host bits must be clear. */
export function parseRoutePrefix(prefix: string, family: FibFamily): { addr: Uint8Array; len: number } {
  const slash = prefix.indexOf("/");
  const end = slash < 0 ? prefix.length : slash;
  let addr: Uint8Array | null;
  if (family === 6) addr = parseIPv6(prefix.slice(0, end));
  else {
    const v = parseIPv4Num(prefix, 0, end);
    addr = v < 0 ? null : v4Bytes(v);
  }
  if (!addr) throw new NetlinkEncodeError(`invalid IPv${family} prefix "${prefix}"`);
  const max = addr.byteLength * 8;
  let len = max;
  if (slash >= 0) {
    const ls = prefix.slice(slash + 1);
    if (!/^\d{1,3}$/.test(ls) || Number(ls) > max) throw new NetlinkEncodeError(`invalid prefix length in "${prefix}": expected 0..${max}`);
    len = Number(ls);
  }
  for (let bit = len; bit < max; bit++) {
    if (addr[bit >> 3]! & (0x80 >> (bit & 7))) throw new NetlinkEncodeError(`invalid prefix "${prefix}": host bits set beyond /${len}`);
  }
  return { addr, len };
}

/** Gateways repeat across many routes: parse each once (bounded cache). */
interface Gateway {
  family: number;
  addr: Uint8Array;
  /** IPv4: the address as a number. */
  v4: number;
}

const gatewayCache = new Map<string, Gateway>();

function parseGateway(gw: string): Gateway {
  let g = gatewayCache.get(gw);
  if (!g) {
    g = parseGatewayText(gw);
    if (gatewayCache.size >= 4096) gatewayCache.clear();
    gatewayCache.set(gw, g);
  }
  return g;
}

function parseGatewayText(gw: string): Gateway {
  if (gw.includes(":")) {
    const a = parseIPv6(gw);
    if (!a) throw new NetlinkEncodeError(`invalid IPv6 gateway "${gw}"`);
    return { family: AF_INET6, addr: a, v4: 0 };
  }
  const v = parseIPv4Num(gw, 0, gw.length);
  if (v < 0) throw new NetlinkEncodeError(`invalid IPv4 gateway "${gw}"`);
  return { family: AF_INET, addr: v4Bytes(v), v4: v };
}

function formatAddr(family: number, b: Uint8Array, off = 0): string {
  return family === AF_INET6 ? formatIPv6(b, off) : formatIPv4(b, off);
}

// ---------------------------------------------------------------------------
// Route requests
// ---------------------------------------------------------------------------

/** Write one next hop's gateway: RTA_GATEWAY of the route's family, or RTA_VIA (an IPv6 gateway of an IPv4 route). */
function writeGateway(w: NlWriter, routeFamily: number, nh: KernelNextHop): void {
  if (nh.gateway === undefined) return;
  const gw = parseGateway(nh.gateway);
  if (gw.family === routeFamily && !nh.via6) {
    if (gw.family === AF_INET) {
      w.pad();
      w.u16(8);
      w.u16(RTA_GATEWAY);
      w.u32be(gw.v4);
    } else w.attrBytes(RTA_GATEWAY, gw.addr);
    return;
  }
  if (routeFamily === AF_INET && gw.family === AF_INET6) {
    // struct rtvia: family (u16, host order), address
    const v = new Uint8Array(2 + gw.addr.byteLength);
    new DataView(v.buffer).setUint16(0, AF_INET6, true);
    v.set(gw.addr, 2);
    w.attrBytes(RTA_VIA, v);
    return;
  }
  throw new NetlinkEncodeError(
    nh.via6 ? `via6 next hop "${nh.gateway}" must be an IPv6 address of an IPv4 route` : `gateway "${nh.gateway}" is not an IPv${routeFamily === AF_INET6 ? 6 : 4} address`,
  );
}

function defaultScope(route: KernelRoute): number {
  if (route.family === 6) return RT_SCOPE_UNIVERSE;
  if (route.type === RTN_LOCAL) return RT_SCOPE_HOST;
  if (route.type !== RTN_UNICAST) return RT_SCOPE_UNIVERSE;
  for (const nh of route.nextHops) if (nh.gateway !== undefined) return RT_SCOPE_UNIVERSE;
  return RT_SCOPE_LINK;
}

/**
 * Append one RTM_NEWROUTE (op "replace": NLM_F_CREATE|NLM_F_REPLACE) or
 * RTM_DELROUTE (op "delete": matched by table, dst, metric and protocol,
 * any scope and next hops) to `w`. `extraFlags` is ORed in (e.g. NLM_F_ACK).
 * Returns the message's offset. Throws NetlinkEncodeError for a route that
 * cannot be encoded; `w` is then left as it was.
 */
export function writeRouteOp(w: NlWriter, op: KernelOp, seq: number, extraFlags = 0): number {
  const mark = w.off;
  try {
    return writeRouteOpUnsafe(w, op, seq, extraFlags);
  } catch (e) {
    w.off = mark;
    throw e;
  }
}

function writeRouteOpUnsafe(w: NlWriter, op: KernelOp, seq: number, extraFlags: number): number {
  const r = op.route;
  const family = familyOf(r.family);
  // IPv4 without allocating; IPv6 through parseRoutePrefix.
  let v4 = -1;
  let len: number;
  let addr: Uint8Array | null = null;
  const slash = family === AF_INET ? r.prefix.indexOf("/") : -1;
  if (slash > 0 && (v4 = parseIPv4Num(r.prefix, 0, slash)) >= 0 && (len = parsePrefixLen(r.prefix, slash + 1, 32)) >= 0) {
    if ((v4 & v4HostMask(len)) !== 0) throw new NetlinkEncodeError(`invalid prefix "${r.prefix}": host bits set beyond /${len}`);
  } else {
    ({ addr, len } = parseRoutePrefix(r.prefix, r.family));
  }
  const del = op.op === "delete";
  if (!del && op.op !== "replace") throw new NetlinkEncodeError(`unknown op "${String((op as { op: unknown }).op)}"`);
  checkU32("table", r.table);
  checkU32("metric", r.metric);
  checkU8("protocol", r.protocol);
  checkU8("type", r.type);
  if (r.scope !== undefined) checkU8("scope", r.scope);
  const flags = NLM_F_REQUEST | (del ? 0 : NLM_F_CREATE | NLM_F_REPLACE) | extraFlags;
  const start = w.beginMessage(del ? RTM_DELROUTE : RTM_NEWROUTE, flags, seq);
  // rtmsg
  w.u8(family);
  w.u8(len);
  w.u8(0); // src_len
  w.u8(0); // tos
  w.u8(r.table < 256 ? r.table : RT_TABLE_UNSPEC);
  w.u8(r.protocol);
  w.u8(del ? RT_SCOPE_NOWHERE : (r.scope ?? defaultScope(r)));
  w.u8(r.type);
  w.u32(!del && r.nextHops.length === 1 && r.nextHops[0]!.onlink ? RTNH_F_ONLINK : 0); // rtm_flags
  if (len > 0) {
    if (addr) w.attrBytes(RTA_DST, addr);
    else {
      w.u16(8);
      w.u16(RTA_DST);
      w.u32be(v4);
    }
  }
  w.attrU32(RTA_TABLE, r.table);
  w.attrU32(RTA_PRIORITY, r.metric);
  if (!del) {
    const nhs = r.nextHops;
    if (nhs.length === 1) {
      const nh = nhs[0]!;
      writeGateway(w, family, nh);
      if (nh.ifindex) w.attrU32(RTA_OIF, nh.ifindex);
    } else if (nhs.length > 1) {
      const mp = w.beginAttr(RTA_MULTIPATH);
      for (const nh of nhs) {
        const weight = nh.weight ?? 1;
        if (!Number.isInteger(weight) || weight < 1 || weight > 256) throw new NetlinkEncodeError(`next hop weight ${weight}: expected 1..256`);
        const rtnh = w.off;
        w.u16(0);
        w.u8(nh.onlink ? RTNH_F_ONLINK : 0); // rtnh_flags
        w.u8(weight - 1); // rtnh_hops
        w.i32(nh.ifindex ?? 0);
        writeGateway(w, family, nh);
        w.pad();
        new DataView(w.buf.buffer).setUint16(rtnh, w.off - rtnh, true);
      }
      w.endAttr(mp);
    }
  }
  w.endMessage(start);
  return start;
}

/** Decimal prefix length s[from..] in 0..max, or -1. */
function parsePrefixLen(s: string, from: number, max: number): number {
  const n = s.length - from;
  if (n < 1 || n > 3) return -1;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v <= max ? v : -1;
}

function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new NetlinkEncodeError(`${what} ${v}: expected 0..4294967295`);
}
function checkU8(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 255) throw new NetlinkEncodeError(`${what} ${v}: expected 0..255`);
}

/** One route request as its own buffer. */
export function encodeRouteOp(op: KernelOp, seq: number, extraFlags = 0): Uint8Array {
  const w = new NlWriter(256);
  writeRouteOp(w, op, seq, extraFlags);
  return w.take();
}

/**
 * RTM_GETROUTE dump of one family. With NETLINK_GET_STRICT_CHK on the socket
 * the kernel filters by rtm_table/rtm_protocol (and RTA_TABLE, needed for
 * table ids ≥ 256).
 */
export function encodeRouteDump(family: FibFamily, seq: number, filter: { table?: number; protocol?: number } = {}): Uint8Array {
  const w = new NlWriter(64);
  const start = w.beginMessage(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, seq);
  const table = filter.table ?? 0;
  if (filter.table !== undefined) checkU32("table", filter.table);
  if (filter.protocol !== undefined) checkU8("protocol", filter.protocol);
  w.u8(familyOf(family));
  w.u8(0);
  w.u8(0);
  w.u8(0);
  w.u8(table < 256 ? table : RT_TABLE_UNSPEC);
  w.u8(filter.protocol ?? 0);
  w.u8(0); // scope
  w.u8(0); // type
  w.u32(0);
  if (filter.table !== undefined) w.attrU32(RTA_TABLE, table);
  w.endMessage(start);
  return w.take();
}

/**
 * RTM_GETROUTE for one address (4 or 16 bytes), like `ip route get ADDR
 * fibmatch`: the kernel runs its full lookup (policy rules, every table) and
 * answers with the FIB entry that matched (RTM_NEWROUTE: dst/len, table,
 * protocol, priority, gateway/oif), or an error when the lookup fails
 * (ENETUNREACH: no route; EHOSTUNREACH, EINVAL, EACCES: an unreachable,
 * blackhole or prohibit route). Needs no privilege.
 */
export function encodeRouteGet(family: FibFamily, addr: Uint8Array, seq: number): Uint8Array {
  const f = familyOf(family);
  const need = f === AF_INET ? 4 : 16;
  if (addr.byteLength !== need) throw new NetlinkEncodeError(`route lookup: ${addr.byteLength}-byte address for IPv${family}, need ${need}`);
  const w = new NlWriter(64);
  const start = w.beginMessage(RTM_GETROUTE, NLM_F_REQUEST, seq);
  w.u8(f);
  w.u8(need * 8); // dst_len: a full-length address (strict checking allows 0 or full)
  w.u8(0); // src_len
  w.u8(0); // tos
  w.u8(RT_TABLE_UNSPEC);
  w.u8(0); // protocol
  w.u8(0); // scope
  w.u8(0); // type
  w.u32(RTM_F_FIB_MATCH);
  w.attrBytes(RTA_DST, addr);
  w.endMessage(start);
  return w.take();
}

/** RTM_GETLINK dump (all links). */
export function encodeLinkDump(seq: number): Uint8Array {
  const w = new NlWriter(64);
  const start = w.beginMessage(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq);
  w.zeros(IFINFOMSG_LEN);
  w.endMessage(start);
  return w.take();
}

/** RTM_GETADDR dump; family AF_UNSPEC (default) for both families. */
export function encodeAddressDump(seq: number, family: number = AF_UNSPEC): Uint8Array {
  const w = new NlWriter(64);
  const start = w.beginMessage(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq);
  w.u8(family);
  w.zeros(IFADDRMSG_LEN - 1);
  w.endMessage(start);
  return w.take();
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

export interface NlMessage {
  type: number;
  flags: number;
  seq: number;
  pid: number;
  /** The payload after the 16-byte header (a view, not a copy). */
  payload: Uint8Array;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** Split a datagram into netlink messages. Throws NetlinkDecodeError on a bad length. */
export function parseMessages(buf: Uint8Array): NlMessage[] {
  const out: NlMessage[] = [];
  const dv = view(buf);
  let off = 0;
  while (off < buf.byteLength) {
    const rem = buf.byteLength - off;
    if (rem < NLMSG_HDRLEN) throw new NetlinkDecodeError(`truncated netlink header at offset ${off}: ${rem} bytes, need ${NLMSG_HDRLEN}`);
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN) throw new NetlinkDecodeError(`bad netlink message length ${len} at offset ${off} (less than the header)`);
    if (len > rem) throw new NetlinkDecodeError(`truncated netlink message at offset ${off}: length ${len}, ${rem} bytes remain`);
    out.push({
      type: dv.getUint16(off + 4, true),
      flags: dv.getUint16(off + 6, true),
      seq: dv.getUint32(off + 8, true),
      pid: dv.getUint32(off + 12, true),
      payload: buf.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += Math.min(nlAlign(len), rem);
  }
  return out;
}

/**
 * Attributes of buf[start, end): a table indexed by type (flags
 * NLA_F_NESTED / NLA_F_NET_BYTEORDER masked off) holding [valueOffset,
 * valueLength], -1 when absent. Types above `max` are skipped; the last
 * occurrence of a type wins.
 */
export function parseAttrs(buf: Uint8Array, start: number, end: number, max: number, what = "attribute"): Int32Array {
  const t = new Int32Array((max + 1) * 2).fill(-1);
  const dv = view(buf);
  let off = start;
  while (off < end) {
    const rem = end - off;
    if (rem < 4) throw new NetlinkDecodeError(`truncated ${what} header at offset ${off}: ${rem} bytes, need 4`);
    const len = dv.getUint16(off, true);
    const type = dv.getUint16(off + 2, true) & 0x3fff;
    if (len < 4) throw new NetlinkDecodeError(`bad ${what} length ${len} (type ${type}) at offset ${off}`);
    if (len > rem) throw new NetlinkDecodeError(`truncated ${what} (type ${type}) at offset ${off}: length ${len}, ${rem} bytes remain`);
    if (type <= max) {
      t[type * 2] = off + 4;
      t[type * 2 + 1] = len - 4;
    }
    off += Math.min(nlAlign(len), rem);
  }
  return t;
}

function attrU32(buf: Uint8Array, t: Int32Array, type: number, name: string): number | undefined {
  const o = t[type * 2]!;
  if (o < 0) return undefined;
  if (t[type * 2 + 1]! < 4) throw new NetlinkDecodeError(`${name}: ${t[type * 2 + 1]} bytes, need 4`);
  return view(buf).getUint32(o, true);
}

function attrAddr(buf: Uint8Array, t: Int32Array, type: number, family: number, name: string): Uint8Array | undefined {
  const o = t[type * 2]!;
  if (o < 0) return undefined;
  const need = family === AF_INET6 ? 16 : 4;
  if (t[type * 2 + 1]! < need) throw new NetlinkDecodeError(`${name}: ${t[type * 2 + 1]} bytes, need ${need} for ${family === AF_INET6 ? "IPv6" : "IPv4"}`);
  return buf.subarray(o, o + need);
}

function attrString(buf: Uint8Array, t: Int32Array, type: number): string | undefined {
  const o = t[type * 2]!;
  if (o < 0) return undefined;
  let e = o + t[type * 2 + 1]!;
  const nul = buf.indexOf(0, o);
  if (nul >= 0 && nul < e) e = nul;
  return new TextDecoder().decode(buf.subarray(o, e));
}

/** The outcome carried by NLMSG_ERROR (errno 0 = an ACK) or NLMSG_DONE. */
export interface NlAck {
  /** Positive errno; 0 for success. */
  errno: number;
  /** NLMSGERR_ATTR_MSG, the kernel's extended-ack text ("" when none). */
  message: string;
  /** NLMSGERR_ATTR_OFFS: byte offset of the offending attribute in the request. */
  offset?: number;
  /** Type and sequence number of the request, from the echoed header (NLMSG_ERROR only). */
  requestType?: number;
  requestSeq?: number;
}

function parseAckTlvs(buf: Uint8Array, start: number, ack: NlAck): void {
  const t = parseAttrs(buf, start, buf.byteLength, 8, "ext-ack attribute");
  ack.message = attrString(buf, t, NLMSGERR_ATTR_MSG) ?? "";
  const offs = attrU32(buf, t, NLMSGERR_ATTR_OFFS, "NLMSGERR_ATTR_OFFS");
  if (offs !== undefined) ack.offset = offs;
}

/** Decode an NLMSG_ERROR message (error code, echoed request header, ext-ack TLVs). */
export function decodeError(m: NlMessage): NlAck {
  const p = m.payload;
  if (p.byteLength < 4) throw new NetlinkDecodeError(`truncated NLMSG_ERROR: ${p.byteLength} bytes, need at least 4`);
  const dv = view(p);
  const code = dv.getInt32(0, true);
  const ack: NlAck = { errno: code < 0 ? -code : code, message: "" };
  if (p.byteLength >= 4 + NLMSG_HDRLEN) {
    const origLen = dv.getUint32(4, true);
    ack.requestType = dv.getUint16(8, true);
    ack.requestSeq = dv.getUint32(12, true);
    if (m.flags & NLM_F_ACK_TLVS) {
      // The request is echoed whole unless capped (NETLINK_CAP_ACK) or an ACK.
      const echoed = m.flags & NLM_F_CAPPED || code === 0 ? NLMSG_HDRLEN : Math.max(NLMSG_HDRLEN, origLen);
      const tlvStart = 4 + nlAlign(echoed);
      if (tlvStart > p.byteLength) throw new NetlinkDecodeError(`truncated NLMSG_ERROR: echoed request of ${echoed} bytes, ${p.byteLength - 4} remain`);
      parseAckTlvs(p, tlvStart, ack);
    }
  } else if (m.flags & NLM_F_ACK_TLVS) {
    throw new NetlinkDecodeError(`truncated NLMSG_ERROR: ${p.byteLength} bytes, no room for the echoed header`);
  }
  return ack;
}

/** Decode NLMSG_DONE: the dump's final status (errno 0 on success) and ext-ack TLVs. */
export function decodeDone(m: NlMessage): NlAck {
  const p = m.payload;
  if (p.byteLength < 4) return { errno: 0, message: "" };
  const code = view(p).getInt32(0, true);
  const ack: NlAck = { errno: code < 0 ? -code : 0, message: "" };
  if (m.flags & NLM_F_ACK_TLVS) parseAckTlvs(p, 4, ack);
  return ack;
}

function toFib(family: number): FibFamily | null {
  return family === AF_INET ? 4 : family === AF_INET6 ? 6 : null;
}

function decodeGateway(buf: Uint8Array, t: Int32Array, family: number, nh: KernelNextHop): void {
  const gw = attrAddr(buf, t, RTA_GATEWAY, family, "RTA_GATEWAY");
  if (gw) {
    nh.gateway = formatAddr(family, gw);
    return;
  }
  const vo = t[RTA_VIA * 2]!;
  if (vo < 0) return;
  const vl = t[RTA_VIA * 2 + 1]!;
  if (vl < 2) throw new NetlinkDecodeError(`RTA_VIA: ${vl} bytes, need at least 2`);
  const vf = view(buf).getUint16(vo, true);
  const need = vf === AF_INET6 ? 16 : vf === AF_INET ? 4 : -1;
  if (need < 0) throw new NetlinkDecodeError(`RTA_VIA: unsupported address family ${vf}`);
  if (vl < 2 + need) throw new NetlinkDecodeError(`RTA_VIA: ${vl} bytes, need ${2 + need}`);
  nh.gateway = formatAddr(vf, buf, vo + 2);
  if (vf === AF_INET6 && family === AF_INET) nh.via6 = true;
}

/**
 * Decode an RTM_NEWROUTE/RTM_DELROUTE message body into a KernelRoute; null
 * for families other than IPv4/IPv6. Next hops carry `ifindex` when the
 * kernel reports one and `weight` only when it is not 1.
 */
export function decodeRoute(m: NlMessage): KernelRoute | null {
  const p = m.payload;
  if (p.byteLength < RTMSG_LEN) throw new NetlinkDecodeError(`truncated rtmsg: ${p.byteLength} bytes, need ${RTMSG_LEN}`);
  const family = p[0]!;
  const fib = toFib(family);
  if (fib === null) return null;
  const dstLen = p[1]!;
  const t = parseAttrs(p, RTMSG_LEN, p.byteLength, RTA_MAX, "route attribute");
  const dst = attrAddr(p, t, RTA_DST, family, "RTA_DST");
  const prefix = `${dst ? formatAddr(family, dst) : fib === 4 ? "0.0.0.0" : "::"}/${dstLen}`;
  const route: KernelRoute = {
    family: fib,
    prefix,
    table: attrU32(p, t, RTA_TABLE, "RTA_TABLE") ?? p[4]!,
    protocol: p[5]!,
    metric: attrU32(p, t, RTA_PRIORITY, "RTA_PRIORITY") ?? 0,
    nextHops: [],
    type: p[7]!,
    scope: p[6]!,
  };
  const mpo = t[RTA_MULTIPATH * 2]!;
  if (mpo >= 0) {
    const end = mpo + t[RTA_MULTIPATH * 2 + 1]!;
    const dv = view(p);
    let off = mpo;
    while (off < end) {
      const rem = end - off;
      if (rem < RTNH_LEN) throw new NetlinkDecodeError(`truncated rtnexthop at offset ${off}: ${rem} bytes, need ${RTNH_LEN}`);
      const len = dv.getUint16(off, true);
      if (len < RTNH_LEN || len > rem) throw new NetlinkDecodeError(`bad rtnexthop length ${len} at offset ${off} (${rem} bytes remain)`);
      const nh: KernelNextHop = {};
      if (p[off + 2]! & RTNH_F_ONLINK) nh.onlink = true;
      const hops = p[off + 3]!;
      const ifindex = dv.getInt32(off + 4, true);
      const nt = parseAttrs(p, off + RTNH_LEN, off + len, RTA_MAX, "next-hop attribute");
      decodeGateway(p, nt, family, nh);
      if (ifindex) nh.ifindex = ifindex;
      if (hops !== 0) nh.weight = hops + 1;
      route.nextHops.push(nh);
      off += Math.min(nlAlign(len), rem);
    }
  } else {
    const nh: KernelNextHop = {};
    decodeGateway(p, t, family, nh);
    const oif = attrU32(p, t, RTA_OIF, "RTA_OIF");
    if (oif) nh.ifindex = oif;
    if (nh.gateway !== undefined && view(p).getUint32(8, true) & RTNH_F_ONLINK) nh.onlink = true;
    if (nh.gateway !== undefined || nh.ifindex !== undefined) route.nextHops.push(nh);
  }
  return route;
}

/** rtm_flags of a route message (RTM_F_CLONED marks cache entries). */
export function routeFlags(m: NlMessage): number {
  return m.payload.byteLength >= RTMSG_LEN ? view(m.payload).getUint32(8, true) : 0;
}

/**
 * Decode an RTM_NEWLINK/RTM_DELLINK body. `up` means IFF_UP and IFF_RUNNING.
 * With `details`: also `adminUp` (IFF_UP), `mac` (a 6-byte IFLA_ADDRESS),
 * and from IFLA_LINKINFO `kind` and, for a VXLAN device, `vxlan`.
 */
export function decodeLink(m: NlMessage, details = false): KernelLink {
  const p = m.payload;
  if (p.byteLength < IFINFOMSG_LEN) throw new NetlinkDecodeError(`truncated ifinfomsg: ${p.byteLength} bytes, need ${IFINFOMSG_LEN}`);
  const dv = view(p);
  const index = dv.getInt32(4, true);
  const flags = dv.getUint32(8, true);
  const t = parseAttrs(p, IFINFOMSG_LEN, p.byteLength, IFLA_MAX, "link attribute");
  const link: KernelLink = { index, name: attrString(p, t, IFLA_IFNAME) ?? "", up: (flags & IFF_UP) !== 0 && (flags & IFF_RUNNING) !== 0 };
  const mtu = attrU32(p, t, IFLA_MTU, "IFLA_MTU");
  if (mtu !== undefined) link.mtu = mtu;
  if (!details) return link;
  link.adminUp = (flags & IFF_UP) !== 0;
  if (t[IFLA_ADDRESS * 2 + 1] === 6) link.mac = formatMac(p, t[IFLA_ADDRESS * 2]!);
  const lo = t[IFLA_LINKINFO * 2]!;
  if (lo >= 0) {
    const li = parseAttrs(p, lo, lo + t[IFLA_LINKINFO * 2 + 1]!, IFLA_INFO_DATA, "link info attribute");
    const kind = attrString(p, li, IFLA_INFO_KIND);
    if (kind !== undefined) link.kind = kind;
    const d = li[IFLA_INFO_DATA * 2]!;
    if (kind === "vxlan" && d >= 0) link.vxlan = decodeVxlan(p, d, d + li[IFLA_INFO_DATA * 2 + 1]!);
  }
  return link;
}

function decodeVxlan(p: Uint8Array, start: number, end: number): KernelVxlan {
  const t = parseAttrs(p, start, end, IFLA_VXLAN_MAX, "vxlan attribute");
  const x: KernelVxlan = { id: attrU32(p, t, IFLA_VXLAN_ID, "IFLA_VXLAN_ID") ?? 0, port: 0, learning: false };
  const local = attrAddr(p, t, IFLA_VXLAN_LOCAL, AF_INET, "IFLA_VXLAN_LOCAL") ?? attrAddr(p, t, IFLA_VXLAN_LOCAL6, AF_INET6, "IFLA_VXLAN_LOCAL6");
  if (local) x.local = local.byteLength === 4 ? formatIPv4(local) : formatIPv6(local);
  const po = t[IFLA_VXLAN_PORT * 2]!;
  if (po >= 0) {
    if (t[IFLA_VXLAN_PORT * 2 + 1]! < 2) throw new NetlinkDecodeError(`IFLA_VXLAN_PORT: ${t[IFLA_VXLAN_PORT * 2 + 1]} bytes, need 2`);
    x.port = view(p).getUint16(po, false); // network byte order
  }
  const lo = t[IFLA_VXLAN_LEARNING * 2]!;
  if (lo >= 0 && t[IFLA_VXLAN_LEARNING * 2 + 1]! >= 1) x.learning = p[lo] !== 0;
  return x;
}

// ---------------------------------------------------------------------------
// Links, neighbours, FDB entries and addresses (the overlay's requests)
// ---------------------------------------------------------------------------

function formatMac(b: Uint8Array, off: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push(b[off + i]!.toString(16).padStart(2, "0"));
  return parts.join(":");
}

/** "02:b6:c0:00:02:0a" as 6 bytes; throws NetlinkEncodeError otherwise. */
export function parseMac(text: string): Uint8Array {
  const m = /^([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2}):([0-9a-fA-F]{2})$/.exec(text);
  if (!m) throw new NetlinkEncodeError(`invalid MAC address "${text}": expected six hex bytes separated by colons`);
  return new Uint8Array(m.slice(1).map((h) => parseInt(h, 16)));
}

function ifinfomsg(w: NlWriter, index: number, flags: number, change: number): void {
  w.u8(AF_UNSPEC);
  w.u8(0);
  w.u16(0); // ifi_type
  w.i32(index);
  w.u32(flags);
  w.u32(change);
}

/** An address of either family as bytes (parseGateway's rules). */
function addrBytes(text: string, what: string): Gateway {
  try {
    return parseGateway(text);
  } catch {
    throw new NetlinkEncodeError(`invalid ${what} "${text}"`);
  }
}

/**
 * One link request: RTM_NEWLINK creating a VXLAN device (NLM_F_CREATE|EXCL:
 * name, MTU, MAC, IFLA_LINKINFO kind "vxlan" with the VNI, local address,
 * port in network byte order and learning), RTM_NEWLINK changing a link by
 * index (MTU, MAC, up/down), or RTM_DELLINK. NLM_F_ACK set.
 */
export function encodeLinkOp(op: LinkOp, seq: number): Uint8Array {
  const w = new NlWriter(256);
  if (op.op === "delete") {
    const start = w.beginMessage(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    ifinfomsg(w, op.index, 0, 0);
    w.endMessage(start);
    return w.take();
  }
  if (op.op === "set") {
    const start = w.beginMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
    ifinfomsg(w, op.index, op.up ? IFF_UP : 0, op.up === undefined ? 0 : IFF_UP);
    if (op.mtu !== undefined) w.attrU32(IFLA_MTU, checkedU32("mtu", op.mtu));
    if (op.mac !== undefined) w.attrBytes(IFLA_ADDRESS, parseMac(op.mac));
    w.endMessage(start);
    return w.take();
  }
  if (op.op !== "create-vxlan") throw new NetlinkEncodeError(`unknown link op "${String((op as { op: unknown }).op)}"`);
  if (!/^[^\s/:]{1,15}$/.test(op.name)) throw new NetlinkEncodeError(`invalid link name "${op.name}": 1..15 characters, no space, slash or colon`);
  const x = op.vxlan;
  if (!Number.isInteger(x.id) || x.id < 0 || x.id > 0xffffff) throw new NetlinkEncodeError(`VNI ${x.id}: expected 0..16777215`);
  if (!Number.isInteger(x.port) || x.port < 1 || x.port > 65535) throw new NetlinkEncodeError(`VXLAN port ${x.port}: expected 1..65535`);
  const start = w.beginMessage(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
  ifinfomsg(w, 0, op.up ? IFF_UP : 0, op.up ? IFF_UP : 0);
  w.attrString(IFLA_IFNAME, op.name);
  w.attrU32(IFLA_MTU, checkedU32("mtu", op.mtu));
  w.attrBytes(IFLA_ADDRESS, parseMac(op.mac));
  const li = w.beginAttr(IFLA_LINKINFO | NLA_F_NESTED);
  w.attrString(IFLA_INFO_KIND, "vxlan");
  const data = w.beginAttr(IFLA_INFO_DATA | NLA_F_NESTED);
  w.attrU32(IFLA_VXLAN_ID, x.id);
  if (x.local !== undefined) {
    const a = addrBytes(x.local, "VXLAN local address");
    w.attrBytes(a.family === AF_INET ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, a.addr);
  }
  const port = new Uint8Array(2);
  new DataView(port.buffer).setUint16(0, x.port, false); // network byte order
  w.attrBytes(IFLA_VXLAN_PORT, port);
  w.attrBytes(IFLA_VXLAN_LEARNING, new Uint8Array([x.learning ? 1 : 0]));
  w.endAttr(data);
  w.endAttr(li);
  w.endMessage(start);
  return w.take();
}

function checkedU32(what: string, v: number): number {
  checkU32(what, v);
  return v;
}

function ndFamily(f: KernelNeighbor["family"]): number {
  if (f === "bridge") return AF_BRIDGE;
  return familyOf(f);
}

/**
 * RTM_NEWNEIGH (op "replace": NLM_F_CREATE|NLM_F_REPLACE) or RTM_DELNEIGH
 * for a neighbour (`ip neigh replace IP lladdr MAC dev X nud permanent`) or
 * an FDB entry (family "bridge": `bridge fdb replace MAC dev X dst IP self
 * permanent`, NDA_DST the remote VTEP). Appended to `w`; returns the message's offset.
 */
export function writeNeighborOp(w: NlWriter, op: NeighborOp, seq: number, extraFlags = 0): number {
  const n = op.neighbor;
  const mark = w.off;
  try {
    if (op.op !== "replace" && op.op !== "delete") throw new NetlinkEncodeError(`unknown neighbour op "${String((op as { op: unknown }).op)}"`);
    checkU8("neighbour flags", n.flags);
    if (!Number.isInteger(n.state) || n.state < 0 || n.state > 0xffff) throw new NetlinkEncodeError(`neighbour state ${n.state}: expected 0..65535`);
    if (!Number.isInteger(n.ifindex) || n.ifindex < 1) throw new NetlinkEncodeError(`neighbour ifindex ${n.ifindex}: expected a link index`);
    const ip = n.ip === undefined ? undefined : addrBytes(n.ip, "neighbour address");
    if (n.family !== "bridge" && (ip === undefined || ip.family !== familyOf(n.family))) {
      throw new NetlinkEncodeError(`neighbour of IPv${n.family} needs an IPv${n.family} address, got ${n.ip === undefined ? "none" : `"${n.ip}"`}`);
    }
    if (n.family === "bridge" && n.mac === undefined) throw new NetlinkEncodeError("FDB entry without a MAC address");
    const mac = n.mac === undefined ? undefined : parseMac(n.mac);
    const del = op.op === "delete";
    const start = w.beginMessage(del ? RTM_DELNEIGH : RTM_NEWNEIGH, NLM_F_REQUEST | (del ? 0 : NLM_F_CREATE | NLM_F_REPLACE) | extraFlags, seq);
    w.u8(ndFamily(n.family));
    w.u8(0);
    w.u16(0);
    w.i32(n.ifindex);
    w.u16(n.state);
    w.u8(n.flags);
    w.u8(0); // ndm_type
    if (ip) w.attrBytes(NDA_DST, ip.addr);
    if (mac) w.attrBytes(NDA_LLADDR, mac);
    w.endMessage(start);
    return start;
  } catch (e) {
    w.off = mark;
    throw e;
  }
}

/**
 * RTM_GETNEIGH dump of one family's neighbours (4, 6) or FDB entries
 * ("bridge") of one link: strict checking wants a clean header, so the link
 * goes in NDA_IFINDEX for neighbours and in ndm_ifindex (the port filter)
 * for FDB entries.
 */
export function encodeNeighborDump(family: KernelNeighbor["family"], ifindex: number, seq: number): Uint8Array {
  const w = new NlWriter(64);
  const start = w.beginMessage(RTM_GETNEIGH, NLM_F_REQUEST | NLM_F_DUMP, seq);
  w.u8(ndFamily(family));
  w.u8(0);
  w.u16(0);
  w.i32(family === "bridge" ? ifindex : 0);
  w.u16(0);
  w.u8(0);
  w.u8(0);
  if (family !== "bridge") w.attrU32(NDA_IFINDEX, ifindex);
  w.endMessage(start);
  return w.take();
}

/** Decode an RTM_NEWNEIGH/RTM_DELNEIGH body; null for families other than IPv4, IPv6 and bridge. */
export function decodeNeighbor(m: NlMessage): KernelNeighbor | null {
  const p = m.payload;
  if (p.byteLength < NDMSG_LEN) throw new NetlinkDecodeError(`truncated ndmsg: ${p.byteLength} bytes, need ${NDMSG_LEN}`);
  const fam = p[0]!;
  const family: KernelNeighbor["family"] | null = fam === AF_BRIDGE ? "bridge" : toFib(fam);
  if (family === null) return null;
  const dv = view(p);
  const n: KernelNeighbor = { family, ifindex: dv.getInt32(4, true), state: dv.getUint16(8, true), flags: p[10]! };
  const t = parseAttrs(p, NDMSG_LEN, p.byteLength, NDA_MAX, "neighbour attribute");
  const dl = t[NDA_DST * 2 + 1]!;
  if (dl >= 0) {
    if (dl !== 4 && dl !== 16) throw new NetlinkDecodeError(`NDA_DST: ${dl} bytes, need 4 or 16`);
    n.ip = formatAddr(dl === 16 ? AF_INET6 : AF_INET, p, t[NDA_DST * 2]!);
  }
  if (t[NDA_LLADDR * 2 + 1] === 6) n.mac = formatMac(p, t[NDA_LLADDR * 2]!);
  return n;
}

/** RTM_NEWADDR (NLM_F_CREATE|NLM_F_REPLACE) or RTM_DELADDR of one address (IFA_LOCAL and IFA_ADDRESS), NLM_F_ACK set. */
/** IFA_F_NODAD: no duplicate address detection for an IPv6 address. */
const IFA_F_NODAD = 0x02;

export function encodeAddressOp(op: AddressOp, seq: number): Uint8Array {
  const a = op.address;
  const f = familyOf(a.family);
  const b = addrBytes(a.address, "address");
  if (b.family !== f) throw new NetlinkEncodeError(`address "${a.address}" is not an IPv${a.family} address`);
  const max = f === AF_INET ? 32 : 128;
  if (!Number.isInteger(a.prefixLength) || a.prefixLength < 0 || a.prefixLength > max) throw new NetlinkEncodeError(`prefix length ${a.prefixLength}: expected 0..${max}`);
  const del = op.op === "delete";
  const w = new NlWriter(64);
  const start = w.beginMessage(del ? RTM_DELADDR : RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | (del ? 0 : NLM_F_CREATE | (op.exclusive ? NLM_F_EXCL : NLM_F_REPLACE)), seq);
  w.u8(f);
  w.u8(a.prefixLength);
  w.u8(f === AF_INET6 ? IFA_F_NODAD : 0); // an IPv6 address usable at once (no duplicate address detection)
  w.u8(a.scope ?? RT_SCOPE_UNIVERSE);
  w.u32(a.ifindex);
  w.attrBytes(IFA_LOCAL, b.addr);
  w.attrBytes(IFA_ADDRESS, b.addr);
  w.endMessage(start);
  return w.take();
}

/** Decode an RTM_NEWADDR/RTM_DELADDR body (IFA_LOCAL, else IFA_ADDRESS); null for other families. */
export function decodeAddress(m: NlMessage): KernelAddress | null {
  const p = m.payload;
  if (p.byteLength < IFADDRMSG_LEN) throw new NetlinkDecodeError(`truncated ifaddrmsg: ${p.byteLength} bytes, need ${IFADDRMSG_LEN}`);
  const family = p[0]!;
  const fib = toFib(family);
  if (fib === null) return null;
  const t = parseAttrs(p, IFADDRMSG_LEN, p.byteLength, IFA_MAX, "address attribute");
  const a = attrAddr(p, t, IFA_LOCAL, family, "IFA_LOCAL") ?? attrAddr(p, t, IFA_ADDRESS, family, "IFA_ADDRESS");
  if (!a) throw new NetlinkDecodeError("address message without IFA_LOCAL or IFA_ADDRESS");
  return { family: fib, ifindex: view(p).getUint32(4, true), address: formatAddr(family, a), prefixLength: p[1]!, scope: p[3]! };
}

/** A multicast notification as a KernelEvent; null for messages that are not one (or cloned routes). */
export function decodeEvent(m: NlMessage): KernelEvent | null {
  switch (m.type) {
    case RTM_NEWROUTE:
    case RTM_DELROUTE: {
      if (routeFlags(m) & RTM_F_CLONED) return null;
      const route = decodeRoute(m);
      if (!route) return null;
      return { type: m.type === RTM_NEWROUTE ? "route-added" : "route-deleted", route };
    }
    case RTM_NEWLINK:
    case RTM_DELLINK:
      return { type: "link", link: decodeLink(m), removed: m.type === RTM_DELLINK };
    case RTM_NEWADDR:
    case RTM_DELADDR: {
      const address = decodeAddress(m);
      return address ? { type: "address", address, removed: m.type === RTM_DELADDR } : null;
    }
    default:
      return null;
  }
}
