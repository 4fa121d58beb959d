/**
 * Tests of the MRT writer (lib/mrt/writer.ts): records built by hand byte by
 * byte from the RFC 6396 layouts (§2 header, §4.3.1 PEER_INDEX_TABLE, §4.3.2
 * RIB entries, §4.4 BGP4MP) compared with what the writer produces, and
 * round trips through the reader (lib/mrt/decoder.ts) for every subtype the
 * writer uses; and the rotating dump file (lib/mrt/dump.ts): names,
 * wall-clock-aligned rotation, the bounded queue.
 */
import { asPathOf } from "../../lib/bgp/attributes.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KEEPALIVE, SEG, emptyAttributes, encodeUpdate, type PathAttributes, parsePrefix, prefixToString } from "../../lib/bgp/mod.ts";
import {
  BGP4MP,
  type Bgp4mpPeer,
  type MessageRecord,
  type MrtRecord,
  MRT_TYPE,
  MrtDumpFile,
  type PeerIndexRecord,
  type RibRecord,
  type StateChangeRecord,
  TD2,
  bgpStateNumber,
  encodeBgp4mpMessage,
  encodeBgp4mpStateChange,
  encodePeerIndexTable,
  encodeRibRecord,
  messageSubtype,
  parseMrt,
  ribAttributes,
  strftime,
} from "../../lib/mrt/mod.ts";

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function attrs(over: Partial<PathAttributes>): PathAttributes {
  return { ...emptyAttributes(), origin: 0, ...over };
}

const peer4: Bgp4mpPeer = { peerAs: 65001, localAs: 4200000000, ifIndex: 0, afi: 1, peerAddress: "192.0.2.1", localAddress: "192.0.2.2" };
const peer6: Bgp4mpPeer = { peerAs: 65002, localAs: 65000, ifIndex: 0, afi: 2, peerAddress: "2001:db8::1", localAddress: "2001:db8::2" };

describe("byte layout (RFC 6396)", () => {
  test("PEER_INDEX_TABLE and one RIB_IPV4_UNICAST record, built by hand", () => {
    const t = 1700000000; // 0x6553f100
    const pit = encodePeerIndexTable(t, "192.0.2.254", "v", [{ bgpId: "192.0.2.1", address: "192.0.2.1", afi: 1, asn: 65001 }]);
    // §2 header: timestamp, type 13, subtype 1, length; §4.3.1 body:
    // collector id, view name length + name, peer count, peer (type 0x02: IPv4 address, 4-octet AS; id; address; AS).
    // prettier-ignore
    const wantPit = Uint8Array.from([
      0x65, 0x53, 0xf1, 0x00, 0x00, 0x0d, 0x00, 0x01, 0x00, 0x00, 0x00, 0x16,
      192, 0, 2, 254, 0x00, 0x01, 0x76, 0x00, 0x01,
      0x02, 192, 0, 2, 1, 192, 0, 2, 1, 0x00, 0x00, 0xfd, 0xe9,
    ]);
    expect([...pit]).toEqual([...wantPit]);

    const a = attrs({ asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001] }]) });
    const nh = Uint8Array.from([192, 0, 2, 1]);
    const ab = ribAttributes(a, nh, 1);
    // ORIGIN igp; AS_PATH (4-octet): one AS_SEQUENCE of 65001; NEXT_HOP 192.0.2.1.
    // prettier-ignore
    const wantAttrs = Uint8Array.from([
      0x40, 1, 1, 0,
      0x40, 2, 6, 2, 1, 0x00, 0x00, 0xfd, 0xe9,
      0x40, 3, 4, 192, 0, 2, 1,
    ]);
    expect([...ab]).toEqual([...wantAttrs]);
    const rib = encodeRibRecord(t, 7, parsePrefix("198.51.100.0/23"), [{ peerIndex: 0, originated: 1699999999, attrs: ab }]);
    // §4.3.2: sequence, prefix length, prefix (3 bytes for a /23), entry count, entry (peer index, originated time, attribute length, attributes).
    // prettier-ignore
    const wantRib = concat([
      Uint8Array.from([0x65, 0x53, 0xf1, 0x00, 0x00, 0x0d, 0x00, 0x02, 0x00, 0x00, 0x00, 0x26]),
      Uint8Array.from([0, 0, 0, 7, 23, 198, 51, 100, 0x00, 0x01]),
      Uint8Array.from([0x00, 0x00, 0x65, 0x53, 0xf0, 0xff, 0x00, wantAttrs.length]),
      wantAttrs,
    ]);
    expect([...rib]).toEqual([...wantRib]);
  });

  test("BGP4MP_MESSAGE_AS4 and STATE_CHANGE_AS4, built by hand", () => {
    const t = 0x01020304;
    const msg = encodeBgp4mpMessage(t, peer4, KEEPALIVE, { local: false, fourOctetAs: true, addPath: false });
    // §4.4.3: peer AS, local AS (4 octets each), interface index, AFI, peer address, local address, BGP message.
    // prettier-ignore
    const fields = [0x00, 0x00, 0xfd, 0xe9, 0xfa, 0x56, 0xea, 0x00, 0x00, 0x00, 0x00, 0x01, 192, 0, 2, 1, 192, 0, 2, 2];
    const want = concat([Uint8Array.from([1, 2, 3, 4, 0x00, 0x10, 0x00, 0x04, 0, 0, 0, fields.length + 19]), Uint8Array.from(fields), KEEPALIVE]);
    expect([...msg]).toEqual([...want]);
    const st = encodeBgp4mpStateChange(t, peer4, bgpStateNumber("OpenConfirm"), bgpStateNumber("Established"));
    const wantSt = concat([Uint8Array.from([1, 2, 3, 4, 0x00, 0x10, 0x00, 0x05, 0, 0, 0, fields.length + 4]), Uint8Array.from(fields), Uint8Array.from([0, 5, 0, 6])]);
    expect([...st]).toEqual([...wantSt]);
  });

  test("subtypes by label (RFC 6396 §4.4, RFC 8050 §3)", () => {
    const s = (local: boolean, fourOctetAs: boolean, addPath: boolean) => messageSubtype({ local, fourOctetAs, addPath });
    expect(s(false, true, false)).toBe(BGP4MP.MESSAGE_AS4);
    expect(s(true, true, false)).toBe(BGP4MP.MESSAGE_AS4_LOCAL);
    expect(s(false, false, false)).toBe(BGP4MP.MESSAGE);
    expect(s(true, false, false)).toBe(BGP4MP.MESSAGE_LOCAL);
    expect(s(false, true, true)).toBe(BGP4MP.MESSAGE_AS4_ADDPATH);
    expect(s(true, true, true)).toBe(BGP4MP.MESSAGE_AS4_LOCAL_ADDPATH);
    expect(s(false, false, true)).toBe(BGP4MP.MESSAGE_ADDPATH);
    expect(s(true, false, true)).toBe(BGP4MP.MESSAGE_LOCAL_ADDPATH);
  });

  test("bad input is refused with the field named", () => {
    expect(() => encodePeerIndexTable(0, "not-an-id", "", [])).toThrow(/collector BGP ID "not-an-id"/);
    expect(() => encodeBgp4mpMessage(0, { ...peer4, localAddress: "2001:db8::2" }, KEEPALIVE, { local: false, fourOctetAs: true, addPath: false })).toThrow(/different families/);
    expect(() => encodeBgp4mpMessage(0, { ...peer4, peerAddress: "x" }, KEEPALIVE, { local: false, fourOctetAs: true, addPath: false })).toThrow(/peer address "x"/);
    expect(() => bgpStateNumber("Dancing")).toThrow(/unknown BGP state/);
    expect(() => encodeRibRecord(0, 0, parsePrefix("192.0.2.0/24"), [{ peerIndex: 0, originated: 0, attrs: new Uint8Array(70000) }])).toThrow(/65535/);
  });
});

describe("round trip through the reader", () => {
  test("a table dump: peers, IPv4 and IPv6 prefixes, local routes, ADD-PATH entries", () => {
    const peers = [
      { bgpId: "192.0.2.1", address: "192.0.2.1", afi: 1, asn: 65001 },
      { bgpId: "192.0.2.9", address: "2001:db8::9", afi: 2, asn: 4200000001 },
      { bgpId: "192.0.2.254", address: "0.0.0.0", afi: 1, asn: 65000 },
    ];
    const a1 = attrs({ asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001, 4200000005] }]), med: 10, communities: [((65001 << 16) | 7) >>> 0], largeCommunities: [[65001, 1, 2]] });
    const a2 = attrs({ asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [4200000001] }]), localPref: 200 });
    const local = attrs({ asPath: asPathOf([]), localPref: 100 });
    const nh4 = Uint8Array.from([192, 0, 2, 1]);
    const nh6 = new Uint8Array(16);
    nh6.set([0x20, 0x01, 0x0d, 0xb8], 0);
    nh6[15] = 9;
    const bytes = concat([
      encodePeerIndexTable(100, "192.0.2.254", "bgpctl", peers),
      encodeRibRecord(101, 0, parsePrefix("198.51.100.0/24"), [
        { peerIndex: 0, originated: 90, attrs: ribAttributes(a1, nh4, 1) },
        { peerIndex: 2, originated: 91, attrs: ribAttributes(local, Uint8Array.from([0, 0, 0, 0]), 1) },
      ]),
      encodeRibRecord(102, 1, parsePrefix("2001:db8:100::/48"), [{ peerIndex: 1, originated: 92, attrs: ribAttributes(a2, nh6, 2) }]),
      encodeRibRecord(103, 2, parsePrefix("203.0.113.0/25"), [
        { peerIndex: 0, originated: 93, pathId: 5, attrs: ribAttributes(a1, nh4, 1) },
        { peerIndex: 0, originated: 94, pathId: 6, attrs: ribAttributes(a2, nh4, 1) },
      ]),
      // An IPv4 prefix with an IPv6 next hop (RFC 8950) goes in MP_REACH_NLRI.
      encodeRibRecord(104, 3, parsePrefix("192.0.2.128/25"), [{ peerIndex: 1, originated: 95, attrs: ribAttributes(a2, nh6, 1) }]),
    ]);
    const recs = [...parseMrt(bytes)];
    expect(recs.map((r) => [r.header.type, r.header.subtype, r.header.timestamp])).toEqual([
      [MRT_TYPE.TABLE_DUMP_V2, TD2.PEER_INDEX_TABLE, 100],
      [MRT_TYPE.TABLE_DUMP_V2, TD2.RIB_IPV4_UNICAST, 101],
      [MRT_TYPE.TABLE_DUMP_V2, TD2.RIB_IPV6_UNICAST, 102],
      [MRT_TYPE.TABLE_DUMP_V2, TD2.RIB_IPV4_UNICAST_ADDPATH, 103],
      [MRT_TYPE.TABLE_DUMP_V2, TD2.RIB_IPV4_UNICAST, 104],
    ]);
    const pit = recs[0] as PeerIndexRecord;
    expect(pit.collectorId).toBe("192.0.2.254");
    expect(pit.viewName).toBe("bgpctl");
    expect(pit.peers).toEqual(peers);
    const r1 = recs[1] as RibRecord;
    expect(prefixToString(r1.prefix)).toBe("198.51.100.0/24");
    expect(r1.sequence).toBe(0);
    expect(r1.entries.map((e) => [e.peerIndex, e.originated, e.issues.length, e.error])).toEqual([
      [0, 90, 0, null],
      [2, 91, 0, null],
    ]);
    expect(r1.entries[0]!.attrs).toMatchObject({ asPath: a1.asPath, med: 10, communities: a1.communities, largeCommunities: a1.largeCommunities });
    expect([...r1.entries[0]!.nextHop!]).toEqual([...nh4]);
    expect(r1.entries[1]!.attrs!.localPref).toBe(100);
    const r2 = recs[2] as RibRecord;
    expect(prefixToString(r2.prefix)).toBe("2001:db8:100::/48");
    expect(r2.entries[0]!.peer.asn).toBe(4200000001);
    expect(r2.entries[0]!.attrs).toMatchObject({ asPath: a2.asPath, localPref: 200, nextHop: null });
    expect([...r2.entries[0]!.nextHop!]).toEqual([...nh6]);
    expect(r2.entries[0]!.issues).toEqual([]);
    const r3 = recs[3] as RibRecord;
    expect(r3.addPath).toBe(true);
    expect(r3.entries.map((e) => e.pathId)).toEqual([5, 6]);
    const r4 = recs[4] as RibRecord;
    expect([...r4.entries[0]!.nextHop!]).toEqual([...nh6]);
  });

  test("BGP4MP messages and state changes, received and sent, 2- and 4-octet, ADD-PATH", () => {
    const a = attrs({ asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001, 4200000005] }]), nextHop: Uint8Array.from([192, 0, 2, 1]) });
    const p = parsePrefix("198.51.100.0/24");
    const up4 = encodeUpdate({ attrs: a, nlri: [p] }, { fourOctetAs: true, addPathSend: () => false }, false);
    const up2 = encodeUpdate({ attrs: a, nlri: [p] }, { fourOctetAs: false, addPathSend: () => false }, false);
    const upAp = encodeUpdate({ attrs: a, nlri: [{ ...p, pathId: 3 }] }, { fourOctetAs: true, addPathSend: () => true }, false);
    const bytes = concat([
      encodeBgp4mpStateChange(10, peer6, 4, 5),
      encodeBgp4mpMessage(11, peer4, up4, { local: false, fourOctetAs: true, addPath: false }),
      encodeBgp4mpMessage(12, peer4, up4, { local: true, fourOctetAs: true, addPath: false }),
      encodeBgp4mpMessage(13, peer4, up2, { local: false, fourOctetAs: false, addPath: false }),
      encodeBgp4mpMessage(14, peer6, upAp, { local: true, fourOctetAs: true, addPath: true }),
    ]);
    const recs: MrtRecord[] = [...parseMrt(bytes)];
    const st = recs[0] as StateChangeRecord;
    expect(st.kind).toBe("state");
    expect(st.peer).toEqual({ ...peer6 });
    expect([st.oldState, st.newState]).toEqual([4, 5]);
    const msgs = recs.slice(1) as MessageRecord[];
    expect(msgs.map((m) => [m.header.subtype, m.local, m.fourOctetAs, m.addPath, m.error])).toEqual([
      [BGP4MP.MESSAGE_AS4, false, true, false, null],
      [BGP4MP.MESSAGE_AS4_LOCAL, true, true, false, null],
      [BGP4MP.MESSAGE, false, false, false, null],
      [BGP4MP.MESSAGE_AS4_LOCAL_ADDPATH, true, true, true, null],
    ]);
    expect(msgs[0]!.peer).toEqual(peer4);
    // 2-octet AS fields: the 4-octet local AS became AS_TRANS; the AS path came back whole through AS4_PATH.
    expect(msgs[2]!.peer.localAs).toBe(23456);
    for (const m of msgs) {
      expect(m.message!.type).toBe("update");
      const u = (m.message as { type: "update"; update: { attrs: PathAttributes | null } }).update;
      expect(u.attrs!.asPath).toEqual(a.asPath);
    }
    expect([...msgs[3]!.raw]).toEqual([...upAp]);
  });
});

describe("dump file (mrtDump)", () => {
  const dir = mkdtempSync(join(tmpdir(), "bgpctl-mrt-dump-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const rec = (n: number) => encodeBgp4mpStateChange(n, peer4, 1, 2);

  test("strftime conversions", () => {
    const d = new Date(2026, 0, 2, 3, 4, 5);
    expect(strftime("a/%Y%m%d.%H%M%S-100%%.mrt", d)).toBe("a/20260102.030405-100%.mrt");
  });

  test("rotation: files named by the rotation time, aligned to multiples of the interval, every record in order", async () => {
    let now = Date.UTC(2026, 0, 1, 0, 0, 7) + 300; // 0.3 s past a 1-second boundary, 7 s past the minute
    const logs: string[] = [];
    const f = new MrtDumpFile({ file: join(dir, "rot/u.%H%M%S.mrt"), rotate: 5, log: (_l, m) => logs.push(m), now: () => now });
    const name = (t: number) => strftime("u.%H%M%S.mrt", new Date(t));
    // The first file is named by the last 5-second boundary, 00:00:05.
    expect(f.stats.file).toBe(join(dir, "rot", name(Date.UTC(2026, 0, 1, 0, 0, 5))));
    f.write(rec(1));
    f.write(rec(2));
    now = Date.UTC(2026, 0, 1, 0, 0, 10);
    f.rotate(now);
    f.write(rec(3));
    now = Date.UTC(2026, 0, 1, 0, 0, 15);
    f.rotate(now);
    f.rotate(now); // the same boundary twice: one file
    f.write(rec(4));
    await f.close();
    f.write(rec(5)); // after close: dropped, counted
    expect(f.stats).toMatchObject({ written: 4, dropped: 1, queuedBytes: 0 });
    const files = readdirSync(join(dir, "rot")).sort();
    expect(files).toEqual([name(Date.UTC(2026, 0, 1, 0, 0, 5)), name(Date.UTC(2026, 0, 1, 0, 0, 10)), name(Date.UTC(2026, 0, 1, 0, 0, 15))].sort());
    const ts = (file: string) => [...parseMrt(new Uint8Array(readFileSync(join(dir, "rot", file))))].map((r) => r.header.timestamp);
    expect(ts(name(Date.UTC(2026, 0, 1, 0, 0, 5)))).toEqual([1, 2]);
    expect(ts(name(Date.UTC(2026, 0, 1, 0, 0, 10)))).toEqual([3]);
    expect(ts(name(Date.UTC(2026, 0, 1, 0, 0, 15)))).toEqual([4]);
    expect(logs.join("\n")).toContain("1 record dropped (the dump is closed)");
  });

  test("a full queue drops and counts records, and says so once a minute", async () => {
    let now = 1_000_000;
    const logs: string[] = [];
    const size = rec(0).length;
    const f = new MrtDumpFile({ file: join(dir, "full.mrt"), rotate: 0, log: (_l, m) => logs.push(m), maxBuffered: size * 3, now: () => now });
    // Written synchronously, one after the other: the first write takes the first record; three more fit the queue.
    for (let i = 0; i < 10; i++) f.write(rec(i));
    now += 1000;
    for (let i = 10; i < 12; i++) f.write(rec(i));
    expect(f.stats.dropped).toBeGreaterThanOrEqual(6);
    expect(logs.length).toBe(1);
    expect(logs[0]).toMatch(/mrtDump: 1 record dropped \(the disk does not keep up/);
    now += 60_000;
    f.write(rec(99));
    await f.close();
    const written = f.stats.written;
    expect(written + f.stats.dropped).toBe(13);
    expect([...parseMrt(new Uint8Array(readFileSync(join(dir, "full.mrt"))))].length).toBe(written);
    expect(logs.length).toBeGreaterThanOrEqual(2);
  });

  test("a file that cannot be opened: its records dropped, the reason logged", async () => {
    const logs: string[] = [];
    const f = new MrtDumpFile({ file: "/proc/no-such-dir/x.mrt", rotate: 0, log: (_l, m) => logs.push(m) });
    f.write(rec(1));
    await f.close();
    expect(f.stats).toMatchObject({ written: 0, dropped: 1 });
    expect(logs.join("\n")).toContain("cannot write /proc/no-such-dir/x.mrt");
  });
});
