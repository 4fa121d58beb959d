/**
 * Seed corpus for the fuzzer: valid messages of every type built with the
 * codec's own encoders, plus the BGP messages found in the MRT dumps vendored
 * in tests/testdata/mrt (all of them required: a missing or unreadable dump
 * fails, it never shrinks the corpus silently). The MRT extraction is self-contained
 * (it does not use lib/mrt): BGP4MP records are found by their BGP marker,
 * TABLE_DUMP_V2 RIB entries are wrapped into UPDATEs.
 */
import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { MRT_SAMPLES, MRT_SAMPLE_DIR, loadMrtSample } from "../support/mrt-samples.ts";
import { type PathAttributes, emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { frame } from "../../lib/bgp/framer.ts";
import { KEEPALIVE, REFRESH_SUBTYPE, encodeNotification, encodeRouteRefresh, shutdownData } from "../../lib/bgp/notification.ts";
import { type Capability, type OpenMessage, encodeOpen } from "../../lib/bgp/open.ts";
import { parseIPv6, parsePrefix } from "../../lib/core/addr.ts";
import { type Prefix } from "../../lib/core/addr.ts";
import { AS_TRANS, MsgType, ROLE, SEG } from "../../lib/bgp/types.ts";
import { type EncodeContext, buildAnnouncements, buildWithdrawals, encodeEndOfRib, encodeUpdate } from "../../lib/bgp/update.ts";

export interface Seed {
  name: string;
  /** A whole message, header included. */
  msg: Uint8Array;
}

/** The vendored dumps (tests/testdata/mrt), resolved from this file. */
export const DEFAULT_MRT_DIR = MRT_SAMPLE_DIR;

function ctx(fourOctetAs: boolean, addPath: boolean, maxLen = 4096): EncodeContext {
  return { fourOctetAs, addPathSend: () => addPath, maxLen };
}

const ALL_CAPS: Capability[] = [
  { type: "multiprotocol", afi: 1, safi: 1 },
  { type: "multiprotocol", afi: 2, safi: 1 },
  { type: "route-refresh" },
  { type: "route-refresh-cisco" },
  { type: "enhanced-route-refresh" },
  { type: "four-octet-as", asn: 4_200_000_001 },
  {
    type: "graceful-restart",
    restarting: true,
    notification: true,
    restartTime: 300,
    families: [
      { afi: 1, safi: 1, forwardingPreserved: true },
      { afi: 2, safi: 1, forwardingPreserved: false },
    ],
  },
  {
    type: "add-path",
    families: [
      { afi: 1, safi: 1, send: true, receive: true },
      { afi: 2, safi: 1, send: true, receive: false },
    ],
  },
  { type: "extended-message" },
  { type: "extended-next-hop", entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] },
  { type: "role", role: ROLE.PEER },
  { type: "unknown", code: 73, value: Uint8Array.of(4, 104, 111, 115, 116) },
];

function openMsg(caps: Capability[], myAs = AS_TRANS, hold = 90): Uint8Array {
  const o: OpenMessage = { version: 4, myAs, holdTime: hold, routerId: "192.0.2.1", capabilities: caps };
  return encodeOpen(o);
}

function p(s: string, pathId?: number): Prefix {
  const x = parsePrefix(s);
  if (pathId !== undefined) x.pathId = pathId;
  return x;
}

function richAttrs(): PathAttributes {
  return {
    ...emptyAttributes(),
    origin: 0,
    asPath: asPathOf([
      { type: SEG.AS_SEQUENCE, asns: [65001, 4_200_000_001, 65002] },
      { type: SEG.AS_SET, asns: [65010, 65011] },
    ]),
    nextHop: Uint8Array.of(192, 0, 2, 1),
    med: 50,
    localPref: 100,
    atomicAggregate: true,
    aggregator: { asn: 4_200_000_009, address: "10.0.0.9" },
    communities: [0xfde90001, 0xffffff01],
    originatorId: "10.0.0.1",
    clusterList: ["10.255.0.1"],
    extCommunities: [Uint8Array.of(0, 2, 0xfd, 0xe9, 0, 0, 0, 7), Uint8Array.of(0x40, 3, 0, 0, 0, 0, 0, 1)],
    largeCommunities: [[4_200_000_001, 1, 2]],
    otc: 65001,
    unknown: [{ flags: 0xc0, type: 99, value: Uint8Array.of(1, 2, 3, 4) }],
  };
}

function confedAttrs(): PathAttributes {
  return {
    ...emptyAttributes(),
    origin: 2,
    asPath: asPathOf([
      { type: SEG.AS_CONFED_SEQUENCE, asns: [65100, 65101] },
      { type: SEG.AS_CONFED_SET, asns: [65102] },
      { type: SEG.AS_SEQUENCE, asns: [65001] },
    ]),
    nextHop: Uint8Array.of(10, 1, 1, 1),
    localPref: 200,
  };
}

function manyPrefixes(n: number, afi: 1 | 2): Prefix[] {
  const out: Prefix[] = [];
  for (let i = 0; i < n; i++) {
    if (afi === 1) out.push(p(`10.${(i >> 8) & 0xff}.${i & 0xff}.0/24`));
    else out.push(p(`2001:db8:${i.toString(16)}::/48`));
  }
  return out;
}

/** Valid messages of every type, built with the encoders. */
export function encoderSeeds(): Seed[] {
  const s: Seed[] = [];
  const add = (name: string, msg: Uint8Array) => s.push({ name, msg });
  add("keepalive", KEEPALIVE);
  add("open-all-caps", openMsg(ALL_CAPS));
  add("open-minimal", openMsg([], 65001, 180));
  add("open-mp-v6", openMsg([{ type: "multiprotocol", afi: 2, safi: 1 }, { type: "four-octet-as", asn: 65001 }], 65001, 0));
  const many: Capability[] = [];
  for (let i = 0; i < 40; i++) many.push({ type: "multiprotocol", afi: 1 + (i % 2), safi: 1 + i });
  add("open-rfc9072", openMsg([...many, ...ALL_CAPS]));
  add("notification-shutdown", encodeNotification(6, 2, shutdownData("maintenance ✓ back soon")));
  add("notification-reset", encodeNotification(6, 4, shutdownData("")));
  add("notification-update-error", encodeNotification(3, 2, Uint8Array.of(0x40, 99, 1, 0)));
  add("notification-hold", encodeNotification(4, 0));
  add("notification-open-version", encodeNotification(2, 1, Uint8Array.of(0, 4)));
  for (const subtype of [REFRESH_SUBTYPE.NORMAL, REFRESH_SUBTYPE.BORR, REFRESH_SUBTYPE.EORR]) {
    add(`route-refresh-${subtype}`, encodeRouteRefresh({ afi: 2, safi: 1, subtype }));
  }
  add("eor-v4", encodeEndOfRib(1, 1));
  add("eor-v6", encodeEndOfRib(2, 1));

  const rich = richAttrs();
  const nlri4 = [p("10.0.0.0/8"), p("192.168.1.0/24"), p("0.0.0.0/0"), p("198.51.100.7/32"), p("172.16.128.0/17")];
  for (const four of [true, false]) {
    add(`update-v4-rich-${four ? "as4" : "as2"}`, encodeUpdate({ attrs: rich, nlri: nlri4, withdrawn: [p("203.0.113.0/24")] }, ctx(four, false)));
    add(`update-v4-addpath-${four ? "as4" : "as2"}`, encodeUpdate({ attrs: rich, nlri: nlri4.map((x, i) => ({ ...x, pathId: i + 1 })) }, ctx(four, true)));
  }
  add("update-confed", encodeUpdate({ attrs: confedAttrs(), nlri: [p("10.2.0.0/16")] }, ctx(true, false)));
  add("update-withdraw-v4", buildWithdrawals(1, 1, [p("10.0.0.0/8"), p("10.1.0.0/16")], ctx(true, false))[0]!);
  add("update-withdraw-v6", buildWithdrawals(2, 1, [p("2001:db8::/32"), p("2001:db8:1::/48", 3)], ctx(true, true))[0]!);

  const nh32 = new Uint8Array(32);
  nh32.set(parseIPv6("2001:db8::1")!, 0);
  nh32.set(parseIPv6("fe80::1")!, 16);
  const v6 = { ...rich, nextHop: null };
  add("update-v6-nh32", buildAnnouncements(2, 1, [p("2001:db8::/32"), p("::/0"), p("2001:db8:1:2::/64")], v6, nh32, ctx(true, false))[0]!);
  add("update-v6-nh16-addpath", buildAnnouncements(2, 1, [p("2001:db8::/32", 7), p("2001:db8::/32", 8)], v6, parseIPv6("2001:db8::2")!, ctx(true, true))[0]!);
  add("update-v4-nh-v6", buildAnnouncements(1, 1, [p("10.9.0.0/16")], v6, parseIPv6("2001:db8::3")!, ctx(true, false))[0]!);
  add(
    "update-reach-and-unreach",
    encodeUpdate(
      {
        attrs: { ...rich, nextHop: Uint8Array.of(192, 0, 2, 1) },
        nlri: [p("10.3.0.0/16")],
        withdrawn: [p("10.4.0.0/16")],
        mpReach: { afi: 2, safi: 1, nextHop: parseIPv6("2001:db8::9")!, nlri: [p("2001:db8:9::/48")] },
        mpUnreach: { afi: 2, safi: 1, withdrawn: [p("2001:db8:a::/48")] },
      },
      ctx(true, false),
    ),
  );
  const full4 = buildAnnouncements(1, 1, manyPrefixes(1500, 1), rich, Uint8Array.of(192, 0, 2, 1), ctx(true, false));
  add("update-v4-full", full4[0]!);
  const full6 = buildAnnouncements(2, 1, manyPrefixes(900, 2), v6, parseIPv6("2001:db8::1")!, ctx(true, false));
  add("update-v6-full", full6[0]!);
  add("update-v4-extended", buildAnnouncements(1, 1, manyPrefixes(3000, 1), rich, Uint8Array.of(192, 0, 2, 1), ctx(true, false, 65535))[0]!);
  // an unknown optional transitive attribute with an extended length
  add(
    "update-long-unknown",
    encodeUpdate({ attrs: { ...rich, unknown: [{ flags: 0xc0, type: 200, value: new Uint8Array(300).fill(0x5a) }] }, nlri: [p("10.5.0.0/16")] }, ctx(true, false)),
  );
  return s;
}

// ---------------------------------------------------------------- MRT

/** Every well-framed BGP message found in a byte string (marker, sane length). */
function scanMessages(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i + 19 <= b.length; i++) {
    let marker = true;
    for (let k = 0; k < 16; k++) {
      if (b[i + k] !== 0xff) {
        marker = false;
        break;
      }
    }
    if (!marker) continue;
    const len = (b[i + 16]! << 8) | b[i + 17]!;
    const type = b[i + 18]!;
    if (len < 19 || i + len > b.length || type < 1 || type > 5) continue;
    out.push(b.slice(i, i + len));
    i += len - 1;
  }
  return out;
}

/** TABLE_DUMP_V2 RIB_IPV4_UNICAST / RIB_IPV6_UNICAST entries as UPDATE messages. */
function ribUpdates(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  let o = 0;
  while (o + 12 <= b.length) {
    const type = (b[o + 4]! << 8) | b[o + 5]!;
    const sub = (b[o + 6]! << 8) | b[o + 7]!;
    const len = ((b[o + 8]! << 24) | (b[o + 9]! << 16) | (b[o + 10]! << 8) | b[o + 11]!) >>> 0;
    const start = o + 12;
    const end = start + len;
    if (end > b.length) break;
    if (type === 13 && (sub === 2 || sub === 4)) {
      const afi = sub === 2 ? 1 : 2;
      let q = start + 4;
      const plen = b[q]!;
      const pbytes = (plen + 7) >> 3;
      const prefix = b.slice(q, q + 1 + pbytes);
      q += 1 + pbytes;
      if (q + 2 > end) break;
      const count = (b[q]! << 8) | b[q + 1]!;
      q += 2;
      for (let e = 0; e < count && q + 8 <= end; e++) {
        const alen = (b[q + 6]! << 8) | b[q + 7]!;
        const as = q + 8;
        if (as + alen > end) break;
        const attrs = rewriteRibAttrs(b.subarray(as, as + alen), afi, prefix);
        const body = new Uint8Array(4 + attrs.length + (afi === 1 ? prefix.length : 0));
        body[2] = attrs.length >> 8;
        body[3] = attrs.length & 0xff;
        body.set(attrs, 4);
        if (afi === 1) body.set(prefix, 4 + attrs.length);
        if (19 + body.length <= 4096) out.push(frame(MsgType.UPDATE, body));
        q = as + alen;
      }
    }
    o = end;
  }
  return out;
}

/**
 * RIB entries abbreviate MP_REACH_NLRI to the next hop (RFC 6396 §4.3.4);
 * rebuild a full one carrying the entry's prefix.
 */
function rewriteRibAttrs(a: Uint8Array, afi: number, prefix: Uint8Array): Uint8Array {
  const parts: number[] = [];
  let o = 0;
  while (o + 3 <= a.length) {
    const flags = a[o]!;
    const type = a[o + 1]!;
    const ext = (flags & 0x10) !== 0;
    if (ext && o + 4 > a.length) break;
    const len = ext ? (a[o + 2]! << 8) | a[o + 3]! : a[o + 2]!;
    const vs = o + (ext ? 4 : 3);
    if (vs + len > a.length) break;
    const v = a.subarray(vs, vs + len);
    if (type === 14 && len >= 1 && v[0]! + 1 === len) {
      const value = [0, afi, 1, ...v, 0, ...prefix];
      parts.push(0x90, 14, value.length >> 8, value.length & 0xff, ...value);
    } else {
      parts.push(...a.subarray(o, vs + len));
    }
    o = vs + len;
  }
  return Uint8Array.from(parts);
}

/** Seeds of one MRT dump's bytes: its BGP4MP messages and its RIB entries as UPDATEs. */
function seedsOf(name: string, b: Uint8Array, out: Seed[]): void {
  scanMessages(b).forEach((m, i) => out.push({ name: `mrt:${name}#${i}`, msg: m }));
  ribUpdates(b).forEach((m, i) => out.push({ name: `mrt-rib:${name}#${i}`, msg: m }));
}

/**
 * BGP messages from MRT dumps. The default directory is the vendored one, and
 * every vendored dump must be there (loadMrtSample throws naming the file).
 * Another directory (`npm run fuzz -- --mrt DIR`) must exist; its regular
 * files other than README/LICENSE/NOTICE are all read, and an unreadable one
 * is an error.
 */
export function mrtSeeds(dir = DEFAULT_MRT_DIR): Seed[] {
  const out: Seed[] = [];
  if (dir === DEFAULT_MRT_DIR) {
    for (const name of MRT_SAMPLES) seedsOf(name, loadMrtSample(name), out);
    return out;
  }
  if (!existsSync(dir)) throw new Error(`fuzz seeds: MRT directory ${dir} does not exist`);
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (!statSync(path).isFile() || /^(README|LICENSE|NOTICE)/i.test(name)) continue;
    seedsOf(name, new Uint8Array(readFileSync(path)), out);
  }
  if (out.length === 0) throw new Error(`fuzz seeds: no BGP message found in the MRT files of ${dir}`);
  return out;
}
