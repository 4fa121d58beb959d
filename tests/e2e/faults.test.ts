/**
 * Faults and bad input at the daemon (issue 10 §5): one `bgpctl run` on
 * loopback with two well-behaved peers (tests/support/bgp-peer.ts, the real
 * codec and FSM, each holding routes and receiving the others') and raw test
 * peers (tests/support/raw-peer.ts) that send, case after case, the
 * malformed messages of RFC 7606 and the fatal errors of RFC 4271 §6:
 *
 * - on one live session per kind of peer (4-octet eBGP, 2-octet eBGP, iBGP):
 *   every RFC 7606 §7 per-attribute rule (plus §3 c flags, §3 d missing
 *   mandatory attributes, §3 g duplicates, §4 overruns, §7.2 first AS, RFC
 *   6793 §6, RFC 8092 §6). Treat-as-withdraw: a route first announced validly
 *   leaves the Loc-RIB and the other peers; attribute discard: the route is
 *   there without the attribute (in `show rib` and in what the other peer is
 *   sent); and the session stays up, no NOTIFICATION;
 * - one connection per case, from its own address: the session resets of
 *   RFC 4271 §6.1 (header), §6.2 (OPEN), §6.3 and RFC 7606 §3 g / §5.2 / §5.3
 *   (UPDATE), §6.5 (hold timer), §6.6 and RFC 6608 (FSM), RFC 7313 §5
 *   (ROUTE-REFRESH): the NOTIFICATION code/subcode (and data where the RFC
 *   fixes it), the connection closed, the neighbour's last error naming it.
 *
 * After every case the well-behaved peers' sessions never went down (their
 * own FSMs count it; the daemon's uptime agrees), their routes are still in
 * the daemon and at each other, and the daemon is running.
 * Loopback only (127.0.0.0/8), port 17420; no root needed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { RibEntry } from "../../lib/api/types.ts";
import type { PathAttributes } from "../../lib/bgp/attributes.ts";
import { TestPeer, pathFrom } from "../support/bgp-peer.ts";
import { Daemon } from "../support/daemon.ts";
import { EXT, MSG, OPT, OT, RawPeer, WT, attr, cap, keepalive, message, mpReach, mpUnreach, nlri, open, u16, u32, update, v6Bytes } from "../support/raw-peer.ts";
import { tempDirs } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

const PORT = 17420;
const HOST = "127.0.0.1";
const AS = 65000;
const ROUTER_ID = "192.0.2.100";
const GOOD1 = { addr: "127.0.0.2", as: 65002, routes: ["198.51.100.0/25", "2001:db8:1::/48"] };
const GOOD2 = { addr: "127.0.0.3", as: 65003, routes: ["198.51.100.128/25"] };
const BAD_AS = 65100;
/** The live malformed-UPDATE sessions: 4-octet eBGP, 2-octet eBGP, iBGP. */
const LIVE = { four: "127.0.1.1", two: "127.0.1.2", ibgp: "127.0.1.3" } as const;
type LiveKind = keyof typeof LIVE;
/** One address per fatal case: 127.0.2.1 ... */
const FATAL_PEERS = 40;
const fatalAddr = (i: number) => `127.0.2.${i + 1}`;

const tmp = tempDirs("bgpctl-faults-");
let daemon: Daemon;
let good1: TestPeer;
let good2: TestPeer;
let goodSince = 0;
const live = {} as Record<LiveKind, RawPeer>;
const NH6 = v6Bytes("::1");

function config(sock: string): string {
  const peer = (addr: string, as: number, extra = "") => `  - {address: ${addr}, remoteAs: ${as}, passive: true, families: [ipv4, ipv6], import: all, ${extra}}`;
  return [
    `asn: ${AS}`,
    `routerId: ${ROUTER_ID}`,
    `listen: {address: ${HOST}, port: ${PORT}}`,
    `controlSocket: ${sock}`,
    `log: {level: debug}`,
    `peers:`,
    peer(GOOD1.addr, GOOD1.as, "export: all"),
    peer(GOOD2.addr, GOOD2.as, "export: all"),
    peer(LIVE.four, BAD_AS, "export: none"),
    peer(LIVE.two, BAD_AS, "export: none"),
    peer(LIVE.ibgp, AS, "export: none"),
    ...Array.from({ length: FATAL_PEERS }, (_, i) => peer(fatalAddr(i), FATAL[i]?.ibgp ? AS : BAD_AS, "export: none")),
    "",
  ].join("\n");
}

const openFor = (kind: LiveKind | "fatal", local: string, o: { hold?: number } = {}) =>
  open({
    asn: kind === "ibgp" ? AS : BAD_AS,
    id: local,
    hold: o.hold ?? 90,
    caps: [cap.mp(1, 1), cap.mp(2, 1), cap.routeRefresh(), ...(kind === "two" ? [] : [cap.fourOctetAs(kind === "ibgp" ? AS : BAD_AS)])],
  });

beforeAll(async () => {
  const dir = tmp();
  daemon = new Daemon(dir, config(Daemon.socketIn(dir)));
  await daemon.ready();
  good1 = new TestPeer({ local: GOOD1.addr, daemon: HOST, port: PORT, localAs: GOOD1.as, daemonAs: AS }).start();
  good2 = new TestPeer({ local: GOOD2.addr, daemon: HOST, port: PORT, localAs: GOOD2.as, daemonAs: AS }).start();
  await good1.waitEstablished();
  await good2.waitEstablished();
  good1.announce(GOOD1.routes, pathFrom(GOOD1.as), Uint8Array.from(NH6));
  good2.announce(GOOD2.routes, pathFrom(GOOD2.as));
  await waitFor(() => good1.received.has(GOOD2.routes[0]!) && good2.received.has(GOOD1.routes[0]!) && good2.received.has(GOOD1.routes[1]!), {
    what: "the good peers' routes at each other",
    timeoutMs: 10_000,
    intervalMs: 20,
    detail: () => daemon.logTail(),
  });
  goodSince = Date.now();
  for (const kind of Object.keys(LIVE) as LiveKind[]) {
    const p = await RawPeer.connect(LIVE[kind], HOST, PORT);
    await p.handshake(openFor(kind, LIVE[kind]));
    p.keepAlive(3000);
    live[kind] = p;
  }
  await waitFor(async () => (await daemon.neighbors()).filter((n) => n.state === "Established").length === 5, { what: "five sessions Established", timeoutMs: 10_000, intervalMs: 20, retryErrors: true });
}, 40_000);

afterAll(async () => {
  for (const p of Object.values(live)) p?.close();
  await Promise.all([good1?.stop(), good2?.stop()]);
  await daemon?.stop();
});

/** The well-behaved peers were never reset, hold their routes at the daemon and at each other; the daemon runs. */
async function othersUnaffected(after: string): Promise<void> {
  const why = `after ${after}`;
  expect(daemon.alive, `${why}: the daemon is running`).toBe(true);
  expect({ downs: good1.downs, established: good1.established }, `${why}: good peer 1 never reset`).toEqual({ downs: 0, established: 1 });
  expect({ downs: good2.downs, established: good2.established }, `${why}: good peer 2 never reset`).toEqual({ downs: 0, established: 1 });
  const ns = await daemon.neighbors();
  const up = Math.floor((Date.now() - goodSince) / 1000);
  for (const g of [GOOD1, GOOD2]) {
    const n = ns.find((x) => x.address === g.addr)!;
    expect(n.state, `${why}: ${g.addr} Established`).toBe("Established");
    expect(n.uptimeSeconds, `${why}: ${g.addr} uptime never restarted`).toBeGreaterThanOrEqual(up - 1);
  }
  const rib = await daemon.rib();
  for (const g of [GOOD1, GOOD2]) for (const r of g.routes) expect(rib.some((e) => e.prefix === r && e.peer === g.addr), `${why}: ${r} from ${g.addr} in the Loc-RIB`).toBe(true);
  for (const r of GOOD1.routes) expect(good2.received.has(r), `${why}: good peer 2 still has ${r}`).toBe(true);
  for (const r of GOOD2.routes) expect(good1.received.has(r), `${why}: good peer 1 still has ${r}`).toBe(true);
}

async function routesOf(prefix: string, peer: string): Promise<RibEntry[]> {
  return (await daemon.rib({ prefix, match: "exact" })).filter((e) => e.peer === peer);
}

// ---------------------------------------------------------------- RFC 7606: the session stays up

const ORIGIN = attr(WT, 1, [0]);
/** AS_PATH of one AS_SEQUENCE (4-octet ASes); with no AS the empty AS_PATH of an internal route. */
const asPath4 = (...asns: number[]) => attr(WT, 2, asns.length ? [2, asns.length, ...asns.flatMap(u32)] : []);
const asPath2 = (...asns: number[]) => attr(WT, 2, [2, asns.length, ...asns.flatMap(u16)]);
const nextHop = (a: string) => attr(WT, 3, a.split(".").map(Number));
const community = (a: number, b: number) => attr(OT, 8, [...u16(a), ...u16(b)]);

interface LiveCase {
  name: string;
  rfc: string;
  on: LiveKind;
  /** IPv6 in MP_REACH_NLRI instead of IPv4 NLRI. */
  v6?: boolean;
  /** The attributes of the malformed UPDATE, built for the case's prefix (MP_REACH needs it). */
  attrs: (p: number[]) => number[];
  expect:
    | "withdraw"
    | {
        /** The attribute is gone: check the Loc-RIB entry and what good peer 1 was sent. */
        discard: (e: RibEntry, sent: PathAttributes) => void;
      };
}

function base(kind: LiveKind, tag: number, o: { path?: number[]; v6?: boolean } = {}): number[] {
  const path = o.path ?? (kind === "two" ? asPath2(BAD_AS) : kind === "ibgp" ? asPath4() : asPath4(BAD_AS));
  return [...ORIGIN, ...path, ...(o.v6 ? [] : nextHop(LIVE[kind])), ...community(BAD_AS, tag), ...(kind === "ibgp" ? attr(WT, 5, u32(100)) : [])];
}

/** The usual shape: valid mandatory attributes (with the case's tag community) plus `extra`. */
const withExtra = (kind: LiveKind, extra: number[]) => (tag: number) => (_p: number[]) => [...base(kind, tag), ...extra];

const LIVE_CASES: ((tag: number) => LiveCase)[] = [
  // treat-as-withdraw
  (t) => ({ name: "ORIGIN length 2", rfc: "7606 §7.1", on: "four", attrs: () => [...attr(WT, 1, [0, 0]), ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "ORIGIN value 3", rfc: "7606 §7.1", on: "four", attrs: () => [...attr(WT, 1, [3]), ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "AS_PATH segment overruns the attribute", rfc: "7606 §7.2", on: "four", attrs: () => [...ORIGIN, ...attr(WT, 2, [2, 3, ...u32(BAD_AS)]), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "AS_PATH unknown segment type 9", rfc: "7606 §7.2", on: "four", attrs: () => [...ORIGIN, ...attr(WT, 2, [9, 1, ...u32(BAD_AS)]), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "AS_PATH zero-length segment", rfc: "7606 §7.2", on: "four", attrs: () => [...ORIGIN, ...attr(WT, 2, [2, 0]), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "AS_PATH with a confederation segment from an external peer", rfc: "7606 §7.2, RFC 5065 §5", on: "four", attrs: () => [...ORIGIN, ...attr(WT, 2, [3, 1, ...u32(65500), 2, 1, ...u32(BAD_AS)]), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "AS_PATH first AS not the peer's (enforceFirstAs)", rfc: "7606 §7.2, 4271 §6.3", on: "four", attrs: () => [...ORIGIN, ...asPath4(64999), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "AS_PATH containing AS 0", rfc: "RFC 7607", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS, 0), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "NEXT_HOP length 5", rfc: "7606 §7.3", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...attr(WT, 3, [127, 0, 1, 1, 0]), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "NEXT_HOP 0.0.0.0 (semantically incorrect)", rfc: "7606 §7.3, 4271 §6.3", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop("0.0.0.0"), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "NEXT_HOP multicast 224.0.0.5", rfc: "7606 §7.3, 4271 §6.3", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop("224.0.0.5"), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "MULTI_EXIT_DISC length 3", rfc: "7606 §7.4", on: "four", attrs: withExtra("four", attr(OPT, 4, [0, 0, 1]))(t), expect: "withdraw" }),
  (t) => ({ name: "LOCAL_PREF length 3 from an internal peer", rfc: "7606 §7.5", on: "ibgp", attrs: () => [...ORIGIN, ...asPath4(), ...nextHop(LIVE.ibgp), ...community(BAD_AS, t), ...attr(WT, 5, [0, 0, 100])], expect: "withdraw" }),
  (t) => ({ name: "COMMUNITIES length 5", rfc: "7606 §7.8", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...attr(OT, 8, [0, 0, 0, 1, 2])], expect: "withdraw" }),
  (t) => ({ name: "COMMUNITIES length 0", rfc: "7606 §7.8", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...attr(OT, 8, [])], expect: "withdraw" }),
  (t) => ({ name: "ORIGINATOR_ID length 5 from an internal peer", rfc: "7606 §7.9", on: "ibgp", attrs: withExtra("ibgp", attr(OPT, 9, [1, 2, 3, 4, 5]))(t), expect: "withdraw" }),
  (t) => ({ name: "CLUSTER_LIST length 6 from an internal peer", rfc: "7606 §7.10", on: "ibgp", attrs: withExtra("ibgp", attr(OPT, 10, [1, 2, 3, 4, 5, 6]))(t), expect: "withdraw" }),
  (t) => ({ name: "EXTENDED_COMMUNITIES length 7", rfc: "7606 §7.14", on: "four", attrs: withExtra("four", attr(OT, 16, [0, 2, 0, 1, 0, 0, 0]))(t), expect: "withdraw" }),
  (t) => ({ name: "LARGE_COMMUNITY length 13", rfc: "RFC 8092 §6", on: "four", attrs: withExtra("four", attr(OT, 32, new Array<number>(13).fill(1)))(t), expect: "withdraw" }),
  (t) => ({ name: "LARGE_COMMUNITY length 0", rfc: "RFC 8092 §6", on: "four", attrs: withExtra("four", attr(OT, 32, []))(t), expect: "withdraw" }),
  (t) => ({ name: "ORIGIN with the optional flag", rfc: "7606 §3 c", on: "four", attrs: () => [...attr(OT, 1, [0]), ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "NEXT_HOP with the optional flag", rfc: "7606 §3 c", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...attr(OPT, 3, [127, 0, 1, 1]), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "COMMUNITIES without the transitive flag", rfc: "7606 §3 c", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...attr(OPT, 8, u32(0xfde80001))], expect: "withdraw" }),
  (t) => ({ name: "NEXT_HOP is the daemon's own address on the session", rfc: "4271 §6.3 (semantically incorrect), 7606 §7.3", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop(HOST), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "OTC length 3", rfc: "RFC 9234 §5", on: "four", attrs: withExtra("four", attr(OT, 35, [0, 0, 1]))(t), expect: "withdraw" }),
  (t) => ({ name: "missing ORIGIN", rfc: "7606 §3 d", on: "four", attrs: () => [...asPath4(BAD_AS), ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "missing AS_PATH", rfc: "7606 §3 d", on: "four", attrs: () => [...ORIGIN, ...nextHop(LIVE.four), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "missing NEXT_HOP", rfc: "7606 §3 d", on: "four", attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...community(BAD_AS, t)], expect: "withdraw" }),
  (t) => ({ name: "NLRI with no path attributes at all", rfc: "7606 §3 d", on: "four", attrs: () => [], expect: "withdraw" }),
  (t) => ({ name: "attribute length overruns the attribute section", rfc: "7606 §4", on: "four", attrs: () => [...base("four", t), ...attr(OPT, 4, u32(1), 10)], expect: "withdraw" }),
  (t) => ({ name: "stray byte after the attributes", rfc: "7606 §4", on: "four", attrs: () => [...base("four", t), 0x40], expect: "withdraw" }),
  (t) => ({ name: "IPv6: MP_REACH_NLRI without AS_PATH", rfc: "7606 §3 d", on: "four", v6: true, attrs: (p) => [...ORIGIN, ...community(BAD_AS, t), ...mpReach(2, 1, NH6, p)], expect: "withdraw" }),
  (t) => ({ name: "IPv6: MP_REACH_NLRI with malformed COMMUNITIES", rfc: "7606 §7.8", on: "four", v6: true, attrs: (p) => [...ORIGIN, ...asPath4(BAD_AS), ...attr(OT, 8, [1, 2, 3]), ...mpReach(2, 1, NH6, p)], expect: "withdraw" }),
  // attribute discard
  (t) => ({
    name: "LOCAL_PREF from an external peer",
    rfc: "7606 §7.5",
    on: "four",
    attrs: withExtra("four", attr(WT, 5, u32(777)))(t),
    expect: { discard: (e) => expect(e.localPref).not.toBe(777) },
  }),
  (t) => ({
    name: "ATOMIC_AGGREGATE length 1",
    rfc: "7606 §7.6",
    on: "four",
    attrs: withExtra("four", [...attr(WT, 6, [0]), ...attr(OT, 7, [...u32(BAD_AS), 192, 0, 2, 9])])(t),
    expect: { discard: (_e, sent) => expect({ atomic: sent.atomicAggregate, aggregator: sent.aggregator }).toEqual({ atomic: false, aggregator: { asn: BAD_AS, address: "192.0.2.9" } }) },
  }),
  (t) => ({
    name: "AGGREGATOR length 6 on a 4-octet session",
    rfc: "7606 §7.7",
    on: "four",
    attrs: withExtra("four", [...attr(WT, 6, []), ...attr(OT, 7, [...u16(BAD_AS), 192, 0, 2, 9])])(t),
    expect: { discard: (_e, sent) => expect({ atomic: sent.atomicAggregate, aggregator: sent.aggregator }).toEqual({ atomic: true, aggregator: null }) },
  }),
  (t) => ({
    name: "AGGREGATOR length 8 on a 2-octet session",
    rfc: "7606 §7.7",
    on: "two",
    attrs: withExtra("two", attr(OT, 7, [...u32(BAD_AS), 192, 0, 2, 9]))(t),
    expect: { discard: (_e, sent) => expect(sent.aggregator).toBeNull() },
  }),
  (t) => ({
    name: "AGGREGATOR with AS 0",
    rfc: "RFC 7607 §2, 7606 §7.7",
    on: "four",
    attrs: withExtra("four", attr(OT, 7, [...u32(0), 192, 0, 2, 9]))(t),
    expect: { discard: (_e, sent) => expect(sent.aggregator).toBeNull() },
  }),
  (t) => ({
    name: "ORIGINATOR_ID from an external peer",
    rfc: "7606 §7.9",
    on: "four",
    attrs: withExtra("four", attr(OPT, 9, [192, 0, 2, 9]))(t),
    expect: { discard: (e) => expect(e.originatorId).toBeUndefined() },
  }),
  (t) => ({
    name: "CLUSTER_LIST from an external peer",
    rfc: "7606 §7.10",
    on: "four",
    attrs: withExtra("four", attr(OPT, 10, [192, 0, 2, 9]))(t),
    expect: { discard: (e) => expect(e.clusterList ?? []).toEqual([]) },
  }),
  (t) => ({
    name: "malformed AS4_PATH from a 2-octet peer",
    rfc: "RFC 6793 §6",
    on: "two",
    attrs: withExtra("two", attr(OT, 17, [2, 2, ...u32(4_200_000_001)]))(t),
    expect: { discard: (e) => expect(e.asPath).toEqual([BAD_AS]) },
  }),
  (t) => ({
    name: "AS4_PATH from a 4-octet peer",
    rfc: "RFC 6793 §4.1",
    on: "four",
    attrs: withExtra("four", attr(OT, 17, [2, 1, ...u32(4_200_000_001)]))(t),
    expect: { discard: (e) => expect(e.asPath).toEqual([BAD_AS]) },
  }),
  (t) => ({
    name: "AS4_AGGREGATOR of length 6 from a 2-octet peer",
    rfc: "RFC 6793 §6",
    on: "two",
    attrs: withExtra("two", [...attr(OT, 7, [...u16(23456), 192, 0, 2, 9]), ...attr(OT, 18, [0, 1, 192, 0, 2, 9])])(t),
    expect: { discard: (_e, sent) => expect(sent.aggregator?.asn).toBe(23456) },
  }),
  (t) => ({
    name: "duplicate MULTI_EXIT_DISC: the second is discarded",
    rfc: "7606 §3 g",
    on: "four",
    attrs: withExtra("four", [...attr(OPT, 4, u32(10)), ...attr(OPT, 4, u32(20))])(t),
    expect: { discard: (e) => expect(e.med).toBe(10) },
  }),
  (t) => ({
    name: "duplicate COMMUNITIES: the second is discarded",
    rfc: "7606 §3 g",
    on: "four",
    attrs: () => [...base("four", t), ...community(BAD_AS, 60000)],
    expect: { discard: (e) => expect(e.communities).toEqual([`${BAD_AS}:${t}`]) },
  }),
  (t) => ({
    name: "MP_REACH_NLRI of an unnegotiated family (IPv4 VPN) beside IPv4 NLRI: ignored",
    rfc: "RFC 4760 §7, 7606 §3 (not an error: control case)",
    on: "four",
    attrs: withExtra("four", mpReach(1, 128, [0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 1, 1], [88, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 203, 0, 113]))(t),
    expect: { discard: (e) => expect(e.communities).toEqual([`${BAD_AS}:${t}`]) },
  }),
  (t) => ({
    name: "COMMUNITIES with the extended-length flag on a short value",
    rfc: "4271 §4.3 (not an error: control case)",
    on: "four",
    attrs: () => [...ORIGIN, ...asPath4(BAD_AS), ...nextHop(LIVE.four), ...attr(OT | EXT, 8, [...u16(BAD_AS), ...u16(t)])],
    expect: { discard: (e) => expect(e.communities).toEqual([`${BAD_AS}:${t}`]) },
  }),
  (t) => ({
    name: "unknown optional transitive attribute (extended length): kept, passed on",
    rfc: "4271 §5 (not an error: control case)",
    on: "four",
    attrs: withExtra("four", attr(OT | EXT, 250, [1, 2, 3]))(t),
    expect: { discard: (_e, sent) => expect(sent.unknown.map((u) => [u.type, [...u.value]])).toEqual([[250, [1, 2, 3]]]) },
  }),
];

describe("RFC 7606 on live sessions: treat-as-withdraw and attribute discard, never a reset", () => {
  const cases = LIVE_CASES.map((make, i) => make(i + 1));
  cases.forEach((c, i) => {
    const tag = i + 1;
    const prefix = c.v6 ? `2001:db8:ff:${tag.toString(16)}::/64` : `203.0.113.${tag}/32`;
    test(`${c.name} (RFC ${c.rfc}) → ${c.expect === "withdraw" ? "treat-as-withdraw" : "attribute discard"}`, async () => {
      const peer = live[c.on];
      const from = LIVE[c.on];
      const p = nlri(prefix);
      const wrap = (attrs: number[]) => (c.v6 ? update({ attrs }) : update({ attrs, nlri: p }));
      if (c.expect === "withdraw") {
        // First valid, so the treat-as-withdraw has a route to remove.
        const valid = c.v6 ? [...ORIGIN, ...(c.on === "two" ? asPath2(BAD_AS) : asPath4(BAD_AS)), ...community(BAD_AS, tag), ...mpReach(2, 1, NH6, p)] : base(c.on, tag);
        peer.send(wrap(valid));
        await waitFor(async () => (await routesOf(prefix, from)).length === 1 && good1.received.has(prefix), { what: `${prefix} in the Loc-RIB and at good peer 1`, timeoutMs: 5000, intervalMs: 10, retryErrors: true, detail: () => daemon.logTail() });
        peer.send(wrap(c.attrs(p)));
        await waitFor(async () => (await routesOf(prefix, from)).length === 0 && !good1.received.has(prefix), { what: `${prefix} withdrawn from the Loc-RIB and good peer 1`, timeoutMs: 5000, intervalMs: 10, retryErrors: true, detail: () => daemon.logTail() });
      } else {
        peer.send(wrap(c.attrs(p)));
        const [e] = await waitFor(async () => {
          const rs = await routesOf(prefix, from);
          return rs.length === 1 && good1.received.has(prefix) ? rs : null;
        }, { what: `${prefix} in the Loc-RIB and at good peer 1`, timeoutMs: 5000, intervalMs: 10, retryErrors: true, detail: () => daemon.logTail() });
        c.expect.discard(e!, good1.received.get(prefix)!);
      }
      // The session stays up: no NOTIFICATION, not closed, Established at the daemon.
      expect(peer.notification()).toBeNull();
      expect(peer.closed).toBe(false);
      expect((await daemon.neighbor(from)).state).toBe("Established");
      await othersUnaffected(c.name);
    }, 15_000);
  });
});

// ---------------------------------------------------------------- session resets

interface FatalCase {
  name: string;
  rfc: string;
  /**
   * When the bytes go: "connect" right after TCP is up (the daemon is in
   * OpenSent), "openconfirm" after our OPEN and the daemon's, "established"
   * after the whole handshake. `open` replaces our OPEN (OPEN errors: sent at connect).
   */
  at: "connect" | "openconfirm" | "established";
  send: Uint8Array[];
  hold?: number;
  /** The daemon has this peer as internal (remoteAs = its own AS). */
  ibgp?: boolean;
  expect: [number, number];
  /** The NOTIFICATION's data where the RFC fixes it. */
  data?: number[];
  timeoutMs?: number;
}

const GOOD_ATTRS = [...ORIGIN, ...asPath4(BAD_AS), ...nextHop("127.0.2.1")];
const NLRI1 = nlri("203.0.113.200/32");

const FATAL: FatalCase[] = [
  // RFC 4271 §6.1 message header errors
  { name: "marker not all ones", rfc: "4271 §6.1", at: "established", send: [message(MSG.KEEPALIVE, [], { marker: [...new Array<number>(15).fill(0xff), 0] })], expect: [1, 1] },
  { name: "marker not all ones before OPEN", rfc: "4271 §6.1", at: "connect", send: [message(MSG.OPEN, [4], { marker: new Array<number>(16).fill(0) })], expect: [1, 1] },
  { name: "length field 18 (below the header)", rfc: "4271 §6.1", at: "established", send: [message(MSG.KEEPALIVE, [], { length: 18 })], expect: [1, 2], data: u16(18) },
  { name: "length field 4097", rfc: "4271 §6.1", at: "established", send: [message(MSG.UPDATE, new Array<number>(4078).fill(0), { length: 4097 })], expect: [1, 2], data: u16(4097) },
  { name: "KEEPALIVE of length 20", rfc: "4271 §6.1", at: "established", send: [message(MSG.KEEPALIVE, [0])], expect: [1, 2], data: u16(20) },
  { name: "UPDATE shorter than 23 bytes", rfc: "4271 §6.1", at: "established", send: [message(MSG.UPDATE, [0, 0])], expect: [1, 2], data: u16(21) },
  { name: "NOTIFICATION shorter than 21 bytes", rfc: "4271 §6.1", at: "established", send: [message(MSG.NOTIFICATION, [6])], expect: [1, 2], data: u16(20) },
  { name: "OPEN shorter than 29 bytes", rfc: "4271 §6.1", at: "connect", send: [message(MSG.OPEN, [4, ...u16(BAD_AS), 0, 90])], expect: [1, 2], data: u16(24) },
  { name: "message type 9", rfc: "4271 §6.1", at: "established", send: [message(9, [])], expect: [1, 3], data: [9] },
  // RFC 4271 §6.2 OPEN errors
  { name: "BGP version 3", rfc: "4271 §6.2", at: "connect", send: [open({ version: 3, asn: BAD_AS, id: "127.0.2.1" })], expect: [2, 1], data: u16(4) },
  { name: "peer AS not the configured one", rfc: "4271 §6.2", at: "connect", send: [open({ asn: 64999, id: "127.0.2.1", caps: [cap.mp(1, 1), cap.fourOctetAs(64999)] })], expect: [2, 2] },
  { name: "4-octet AS capability not the configured AS", rfc: "RFC 6793 §4.1, 4271 §6.2", at: "connect", send: [open({ asn: BAD_AS, id: "127.0.2.1", caps: [cap.mp(1, 1), cap.fourOctetAs(4_200_000_001)] })], expect: [2, 2] },
  { name: "BGP identifier 0.0.0.0", rfc: "4271 §6.2, RFC 6286", at: "connect", send: [open({ asn: BAD_AS, id: "0.0.0.0", caps: [cap.mp(1, 1)] })], expect: [2, 3] },
  { name: "internal peer with our own BGP identifier", rfc: "4271 §6.2, RFC 6286 §2.2", at: "connect", ibgp: true, send: [open({ asn: AS, id: ROUTER_ID, caps: [cap.mp(1, 1), cap.fourOctetAs(AS)] })], expect: [2, 3] },
  { name: "hold time 1", rfc: "4271 §6.2", at: "connect", send: [open({ asn: BAD_AS, id: "127.0.2.1", hold: 1, caps: [cap.mp(1, 1)] })], expect: [2, 6] },
  { name: "hold time 2", rfc: "4271 §6.2", at: "connect", send: [open({ asn: BAD_AS, id: "127.0.2.1", hold: 2, caps: [cap.mp(1, 1)] })], expect: [2, 6] },
  { name: "unsupported optional parameter 99", rfc: "4271 §6.2", at: "connect", send: [open({ asn: BAD_AS, id: "127.0.2.1", params: [99, 2, 0, 0] })], expect: [2, 4] },
  { name: "optional parameters length not matching the message", rfc: "4271 §6.2 (unspecific)", at: "connect", send: [open({ asn: BAD_AS, id: "127.0.2.1", caps: [cap.mp(1, 1)], optLen: 20 })], expect: [2, 0] },
  // RFC 4271 §6.3 and RFC 7606: the UPDATE errors that still reset
  { name: "withdrawn routes length overruns the message", rfc: "4271 §6.3", at: "established", send: [update({ wl: 50, withdrawn: NLRI1 })], expect: [3, 1] },
  { name: "total path attribute length overruns the message", rfc: "4271 §6.3", at: "established", send: [update({ attrs: GOOD_ATTRS, tal: GOOD_ATTRS.length + 20, nlri: NLRI1 })], expect: [3, 1] },
  { name: "NLRI prefix length 33", rfc: "7606 §5.3, 4271 §6.3", at: "established", send: [update({ attrs: GOOD_ATTRS, nlri: [33, 203, 0, 113, 1, 0] })], expect: [3, 10] },
  { name: "NLRI prefix overruns the field", rfc: "7606 §5.3", at: "established", send: [update({ attrs: GOOD_ATTRS, nlri: [24, 203, 0] })], expect: [3, 10] },
  { name: "withdrawn prefix length 33", rfc: "7606 §5.3", at: "established", send: [update({ withdrawn: [33, 203, 0, 113, 1, 0] })], expect: [3, 10] },
  { name: "unrecognized well-known attribute", rfc: "4271 §6.3", at: "established", send: [update({ attrs: [...GOOD_ATTRS, WT, 99, 2, 1, 2], nlri: NLRI1 })], expect: [3, 2], data: [WT, 99, 2, 1, 2] },
  { name: "MP_REACH_NLRI twice", rfc: "7606 §3 g", at: "established", send: [update({ attrs: [...mpReach(2, 1, NH6, nlri("2001:db8:ff::/48")), ...ORIGIN, ...asPath4(BAD_AS), ...mpReach(2, 1, NH6, nlri("2001:db8:ff::/48"))] })], expect: [3, 1] },
  { name: "MP_UNREACH_NLRI twice", rfc: "7606 §3 g", at: "established", send: [update({ attrs: [...mpUnreach(2, 1, nlri("2001:db8:ff::/48")), ...mpUnreach(2, 1, [])] })], expect: [3, 1] },
  { name: "MP_REACH_NLRI next hop length 5", rfc: "7606 §7.11, RFC 4760 §7", at: "established", send: [update({ attrs: [...ORIGIN, ...asPath4(BAD_AS), ...mpReach(2, 1, [1, 2, 3, 4, 5], nlri("2001:db8:ff::/48"))] })], expect: [3, 9] },
  { name: "MP_REACH_NLRI prefix length 129", rfc: "7606 §5.3, §7.11", at: "established", send: [update({ attrs: [...ORIGIN, ...asPath4(BAD_AS), ...mpReach(2, 1, NH6, [129, ...new Array<number>(17).fill(0)])] })], expect: [3, 9] },
  { name: "MP_UNREACH_NLRI prefix length 129", rfc: "7606 §5.3, §7.12", at: "established", send: [update({ attrs: mpUnreach(2, 1, [129, ...new Array<number>(17).fill(0)]) })], expect: [3, 9] },
  { name: "MP_REACH_NLRI with the transitive flag", rfc: "7606 §3 c, §7.11", at: "established", send: [update({ attrs: [...ORIGIN, ...asPath4(BAD_AS), ...mpReach(2, 1, NH6, nlri("2001:db8:ff::/48"), OT)] })], expect: [3, 4] },
  { name: "malformed attribute in an UPDATE with no NLRI to withdraw", rfc: "7606 §5.2", at: "established", send: [update({ withdrawn: NLRI1, attrs: [...attr(WT, 1, [7]), ...asPath4(BAD_AS)] })], expect: [3, 1] },
  // RFC 7313 §5: ROUTE-REFRESH of the wrong length
  { name: "ROUTE-REFRESH of length 24", rfc: "RFC 7313 §5", at: "established", send: [message(MSG.ROUTE_REFRESH, [0, 1, 0, 1, 0])], expect: [7, 1] },
  // RFC 4271 §6.6 / RFC 6608: messages in the wrong state
  { name: "UPDATE before OPEN", rfc: "4271 §6.6, RFC 6608", at: "connect", send: [update({ attrs: GOOD_ATTRS, nlri: NLRI1 })], expect: [5, 1] },
  { name: "KEEPALIVE before OPEN", rfc: "4271 §6.6, RFC 6608", at: "connect", send: [keepalive()], expect: [5, 1] },
  { name: "UPDATE in OpenConfirm", rfc: "4271 §6.6, RFC 6608", at: "openconfirm", send: [update({ attrs: GOOD_ATTRS, nlri: NLRI1 })], expect: [5, 2] },
  { name: "a second OPEN in Established", rfc: "4271 §6.6, RFC 6608", at: "established", send: [open({ asn: BAD_AS, id: "127.0.2.1", caps: [cap.mp(1, 1)] })], expect: [5, 3] },
  // RFC 4271 §6.5: the peer goes silent
  { name: "no KEEPALIVE within the hold time (3 s)", rfc: "4271 §6.5", at: "established", hold: 3, send: [], expect: [4, 0], timeoutMs: 6000 },
];

describe("RFC 4271 §6 session resets: the NOTIFICATION the RFCs name, other sessions untouched", () => {
  test("the cases fit the configured fatal-case peers", () => {
    expect(FATAL.length).toBeLessThanOrEqual(FATAL_PEERS);
  });
  FATAL.forEach((c, i) => {
    test(`${c.name} (RFC ${c.rfc}) → NOTIFICATION ${c.expect.join("/")}`, async () => {
      const local = fatalAddr(i);
      const p = await RawPeer.connect(local, HOST, PORT);
      try {
        const ourOpen = openFor("fatal", local, { hold: c.hold ?? 90 });
        if (c.at === "established") await p.handshake(ourOpen);
        else if (c.at === "openconfirm") {
          p.send(ourOpen);
          await p.take(MSG.OPEN);
        }
        for (const m of c.send) p.send(m);
        const n = await p.notified(c.timeoutMs ?? 5000);
        expect([n.code, n.subcode]).toEqual(c.expect);
        if (c.data) expect([...n.data]).toEqual(c.data);
        const nb = await waitFor(async () => {
          const x = await daemon.neighbor(local);
          return x.state !== "Established" && x.lastError?.includes(`(${c.expect.join("/")})`) ? x : null;
        }, { what: `${local}'s last error to name ${c.expect.join("/")}`, timeoutMs: 3000, intervalMs: 10, retryErrors: true });
        expect(nb.lastError).toStartWith("sent ");
      } finally {
        p.close();
      }
      await othersUnaffected(c.name);
    }, 15_000);
  });

  test("a connection from an address that is no peer is closed without a session", async () => {
    const p = await RawPeer.connect("127.0.3.1", HOST, PORT);
    try {
      p.send(open({ asn: BAD_AS, id: "127.0.3.1", caps: [cap.mp(1, 1)] }));
      await waitFor(() => p.closed, { what: "the daemon to close the connection", timeoutMs: 5000, intervalMs: 10 });
      expect(p.frames.filter((f) => f.type === MSG.OPEN || f.type === MSG.KEEPALIVE)).toEqual([]);
    } finally {
      p.close();
    }
    await othersUnaffected("an unknown peer");
  });

  test("an OPEN with an unknown capability is not an error (RFC 5492 §5): the session comes up", async () => {
    const local = fatalAddr(FATAL_PEERS - 1);
    const p = await RawPeer.connect(local, HOST, PORT);
    try {
      await p.handshake(open({ asn: BAD_AS, id: local, caps: [cap.mp(1, 1), cap.fourOctetAs(BAD_AS), cap.raw(200, [1, 2, 3])] }));
      await waitFor(async () => (await daemon.neighbor(local)).state === "Established", { what: `${local} Established`, timeoutMs: 3000, intervalMs: 10, retryErrors: true });
      expect(p.notification()).toBeNull();
    } finally {
      p.close();
    }
    await othersUnaffected("an unknown capability");
  });
});

test("after every case: the live malformed-UPDATE sessions are still up and the daemon is healthy", async () => {
  for (const kind of Object.keys(LIVE) as LiveKind[]) {
    expect(live[kind].closed, `${kind} session open`).toBe(false);
    expect(live[kind].notification(), `${kind}: no NOTIFICATION`).toBeNull();
    expect(live[kind].framingError).toBeNull();
    expect((await daemon.neighbor(LIVE[kind])).state).toBe("Established");
  }
  await othersUnaffected("all cases");
  expect(daemon.log()).not.toMatch(/uncaught|unhandled|TypeError|RangeError/i);
});
