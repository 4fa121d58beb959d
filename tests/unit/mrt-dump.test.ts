/**
 * The mrtDump recorder (lib/router/mrt-dump.ts) on its own: what a
 * neighbour's session tap and state changes turn into, read back with the
 * MRT reader. Messages written back to back are split into one record each;
 * IPv4-mapped socket addresses are recorded as IPv4; state changes carry the
 * last connection's local address; the subtype follows what was negotiated
 * (4-octet AS or not, ADD-PATH per family and direction); a recorder swapped
 * or stopped by applyMrtDump closes its file after writing what it queued.
 */
import { asPathOf } from "../../lib/bgp/attributes.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KEEPALIVE, SEG, type UpdateMessage, blockPrefixes, emptyAttributes, encodeUpdate, parsePrefix, prefixToString } from "../../lib/bgp/mod.ts";
import type { Negotiated } from "../../lib/bgp/negotiate.ts";
import { Log } from "../../lib/core/log.ts";
import { BGP4MP, type MessageRecord, type MrtRecord, type StateChangeRecord, parseMrt } from "../../lib/mrt/mod.ts";
import { MrtRecorder, type RecorderHost, applyMrtDump } from "../../lib/router/mrt-dump.ts";
import type { Neighbor } from "../../lib/router/neighbor.ts";

const dir = mkdtempSync(join(tmpdir(), "bgpctl-mrt-rec-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const quiet = () => new Log("error", "text", () => {});

/** The parts of a neighbour the recorder reads. */
function neighbor(negotiated: Partial<Negotiated> | null): Neighbor {
  return {
    config: { address: "192.0.2.1", remoteAs: 65001, localAs: 4200000000, localAddress: undefined },
    session: { negotiated: negotiated && { fourOctetAs: true, addPath: new Map(), ...negotiated } },
  } as unknown as Neighbor;
}

function read(file: string): MrtRecord[] {
  return [...parseMrt(new Uint8Array(readFileSync(file)))];
}

const attrs = { ...emptyAttributes(), origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001] }]), nextHop: Uint8Array.from([192, 0, 2, 1]) };
const v4Update = (pathId?: number) =>
  encodeUpdate({ attrs, nlri: [{ ...parsePrefix("198.51.100.0/24"), ...(pathId !== undefined ? { pathId } : {}) }] }, { fourOctetAs: true, addPathSend: () => pathId !== undefined }, false);
const v6Update = encodeUpdate(
  { attrs: { ...attrs, nextHop: null }, mpReach: { afi: 2, safi: 1, nextHop: new Uint8Array(16), nlri: [parsePrefix("2001:db8::/32")] } },
  { fourOctetAs: true, addPathSend: () => false },
  false,
);

describe("MrtRecorder", () => {
  test("messages and state changes of one session, as the reader sees them", async () => {
    const file = join(dir, "one.mrt");
    const rec = new MrtRecorder({ file, rotate: 0 }, quiet());
    const conn = { localAddress: "::ffff:192.0.2.2", remoteAddress: "::ffff:192.0.2.1" };
    // Before the session: no connection, the configured peer and an unknown local address.
    rec.state(neighbor(null), "Idle", "Connect");
    rec.message(neighbor(null), "out", KEEPALIVE, conn);
    // Established, ADD-PATH received for IPv4 unicast only.
    const ap = neighbor({ addPath: new Map([["1/1", { send: false, receive: true }]]) });
    rec.message(ap, "in", v4Update(7), conn);
    rec.message(ap, "in", v6Update, conn);
    // Two UPDATEs written at once: two records.
    rec.message(ap, "out", Buffer.concat([v4Update(), v4Update()]), conn);
    // A session without 4-octet AS numbers.
    rec.message(neighbor({ fourOctetAs: false }), "in", encodeUpdate({ attrs, nlri: [parsePrefix("203.0.113.0/24")] }, { fourOctetAs: false, addPathSend: () => false }, false), conn);
    rec.state(ap, "Established", "Idle");
    rec.state(ap, "Idle", "Idle"); // not a change: nothing written
    await rec.close();

    const recs = read(file);
    expect(recs.map((r) => r.header.subtype)).toEqual([
      BGP4MP.STATE_CHANGE_AS4,
      BGP4MP.MESSAGE_AS4_LOCAL,
      BGP4MP.MESSAGE_AS4_ADDPATH,
      BGP4MP.MESSAGE_AS4,
      BGP4MP.MESSAGE_AS4_LOCAL,
      BGP4MP.MESSAGE_AS4_LOCAL,
      BGP4MP.MESSAGE,
      BGP4MP.STATE_CHANGE_AS4,
    ]);
    const first = recs[0] as StateChangeRecord;
    expect(first.peer).toEqual({ peerAs: 65001, localAs: 4200000000, ifIndex: 0, afi: 1, peerAddress: "192.0.2.1", localAddress: "0.0.0.0" });
    const last = recs.at(-1) as StateChangeRecord;
    expect(last.peer.localAddress).toBe("192.0.2.2");
    expect([last.oldState, last.newState]).toEqual([6, 1]);
    const msgs = recs.filter((r): r is MessageRecord => r.kind === "message");
    for (const m of msgs) {
      expect(m.error).toBeNull();
      expect(m.peer.peerAddress).toBe("192.0.2.1");
      expect(m.peer.localAddress).toBe("192.0.2.2");
    }
    // The ADD-PATH UPDATE reads back with its path identifier.
    expect(msgs[1]!.addPath).toBe(true);
    const u = msgs[1]!.message as { type: "update"; update: UpdateMessage };
    expect(blockPrefixes(u.update.nlri).map((p) => [prefixToString(p), p.pathId])).toEqual([["198.51.100.0/24", 7]]);
    // 2-octet AS fields: the 4-octet local AS is AS_TRANS.
    expect(msgs[5]!.peer.localAs).toBe(23456);
  });

  test("IPv6 link-local addresses are recorded without their zone", async () => {
    const file = join(dir, "ll.mrt");
    const rec = new MrtRecorder({ file, rotate: 0 }, quiet());
    rec.message(neighbor(null), "in", KEEPALIVE, { localAddress: "fe80::2%eth0", remoteAddress: "fe80::1%eth0" });
    await rec.close();
    const m = read(file)[0] as MessageRecord;
    expect([m.peer.peerAddress, m.peer.localAddress, m.peer.afi]).toEqual(["fe80::1", "fe80::2", 2]);
    expect(rec.file.stats.dropped).toBe(0);
  });

  test("a message that cannot be recorded is counted as dropped, never thrown at the session", async () => {
    const logs: string[] = [];
    const log = new Log("info", "text", (l) => void logs.push(l));
    const file = join(dir, "bad.mrt");
    const rec = new MrtRecorder({ file, rotate: 0 }, log);
    const cut = v4Update().subarray(0, 30); // claims more bytes than it has
    expect(() => rec.message(neighbor(null), "in", cut, {})).not.toThrow();
    await rec.close();
    expect(rec.file.stats.dropped).toBe(1);
    expect(logs.join("")).toContain("cannot record a message of 192.0.2.1");
  });
});

describe("applyMrtDump", () => {
  test("start, unchanged, moved, stopped: each old file gets what it queued", async () => {
    const host: RecorderHost = { log: quiet(), wire: null };
    const a = join(dir, "a.mrt");
    const b = join(dir, "b.mrt");
    expect(await applyMrtDump(host, undefined)).toBeNull();
    expect(await applyMrtDump(host, { file: a, rotate: 0 })).toBe(`mrtDump to ${a}`);
    const first = host.wire;
    expect(first).toBeInstanceOf(MrtRecorder);
    expect(await applyMrtDump(host, { file: a, rotate: 0 })).toBeNull();
    expect(host.wire).toBe(first);
    host.wire!.state(neighbor(null), "Idle", "Connect");
    expect(await applyMrtDump(host, { file: b, rotate: 60 })).toBe(`mrtDump to ${b}, a new file every 60s`);
    host.wire!.state(neighbor(null), "Connect", "Active");
    expect(read(a)).toHaveLength(1);
    expect(await applyMrtDump(host, undefined)).toBe("mrtDump stopped");
    expect(host.wire).toBeNull();
    expect(read(b)).toHaveLength(1);
  });
});
