/**
 * Update groups (lib/router/export-group.ts), in process on loopback: one
 * RouteEngine A fed a generated table by an injector session I (AS 65002),
 * exporting to three peers of one AS (P, Q, R: 65003) and one of another
 * (S: 65004).
 *
 * Covers: the three share one Adj-RIB-Out and each Loc-RIB change is
 * exported once for them, while each gets the whole table (the same UPDATEs
 * as the lone peer S); a member that stops reading is split off after
 * SLOW_MS with what it was given and what was queued, the others get
 * everything meanwhile, and it gets everything once it reads; a route
 * refresh from one member splits it off, it gets the table again, the
 * others get nothing extra, and it joins again once idle; a member whose
 * session ends leaves the others going; iBGP peers are never grouped.
 */
import { afterEach, describe, expect, test } from "bun:test";
import * as net from "node:net";
import { formatNeighbors } from "../../lib/api/format.ts";
import { Framer } from "../../lib/bgp/framer.ts";
import { KEEPALIVE } from "../../lib/bgp/notification.ts";
import { encodeOpen } from "../../lib/bgp/open.ts";
import { Session } from "../../lib/bgp/session.ts";
import { AFI, MsgType, SAFI } from "../../lib/bgp/types.ts";
import { type UpdateMessage, announcedBlocks, blockPrefixes, decodeUpdate } from "../../lib/bgp/update.ts";
import { parseAddr } from "../../lib/core/addr.ts";
import { SLOW_MS } from "../../lib/router/export-group.ts";
import type { PrefixMap } from "../../lib/rib/prefix-map.ts";
import { buildTable, encodeGroups } from "../bench/table.ts";
import { ENGINE_ADDR, loopbackEngine, loopbackSpeaker } from "../support/loopback-engine.ts";
import { waitFor } from "../support/wait.ts";

const A = ENGINE_ADDR;
const I = "127.0.0.2";
const P = "127.0.0.3";
const Q = "127.0.0.4";
const R = "127.0.0.5";
const S = "127.0.0.6";
const T = "127.0.0.7";
const V4 = [{ afi: AFI.IPV4, safi: SAFI.UNICAST }];
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Engine A: I (65002), P, Q, R (65003), S (65004) and T (iBGP). */
function engineA(): ReturnType<typeof loopbackEngine> {
  return loopbackEngine([[I, 65002], [P, 65003], [Q, 65003], [R, 65003], [S, 65004], [T, 65001]], { cleanups, level: "debug", name: "groups.yaml" });
}

function speaker(local: string, as: number, port: number, routerId: string): Promise<Session> {
  return loopbackSpeaker({ local, as, port, routerId, cleanups });
}

interface Seen {
  prefixes: number;
  messages: number;
  bytes: number;
}

const ctx = { fourOctetAs: true, ibgp: false, addPathReceive: () => false };

/** UPDATEs with routes (End-of-RIB, sent before a peer joins a group, is not counted). */
function count(u: UpdateMessage, seen: Seen): void {
  if (u.endOfRib) return;
  seen.messages++;
  for (const b of announcedBlocks(u)) seen.prefixes += blockPrefixes(b).length;
}

function receiver(s: Session): Seen {
  const seen: Seen = { prefixes: 0, messages: 0, bytes: 0 };
  s.on("update", (u) => count(u, seen));
  return seen;
}

function table(n: number): { msgs: Uint8Array[]; n: number } {
  const nh = parseAddr(I)!.addr;
  const t = buildTable({ v4: n, v6: 0, peerAs: 65002, nextHop4: nh, nextHop6: new Uint8Array(16) });
  const msgs = encodeGroups(t.groups, { nextHop4: nh, nextHop6: new Uint8Array(16) });
  let k = 0;
  for (const m of msgs) for (const b of announcedBlocks(decodeUpdate(m.subarray(19), ctx))) k += blockPrefixes(b).length;
  return { msgs, n: k };
}

/** P, Q, R (one AS) and S up, each idle with the (empty) initial table, the three in one group. */
async function setup() {
  const { engine, port, lines } = await engineA();
  const peers = { p: await speaker(P, 65003, port, "192.0.2.3"), q: await speaker(Q, 65003, port, "192.0.2.4"), r: await speaker(R, 65003, port, "192.0.2.5"), s: await speaker(S, 65004, port, "192.0.2.6") };
  const seen = { p: receiver(peers.p), q: receiver(peers.q), r: receiver(peers.r), s: receiver(peers.s) };
  const group = () => engine.peers.get(Q)!.group;
  await waitFor(() => (group()?.members.length ?? 0) === 3, { timeoutMs: 10_000, what: "P, Q and R in one update group", detail: () => `${[...engine.exportGroups.values()].map((g) => g.members.map((m) => m.name).join("+")).join(", ")}` });
  const inj = await speaker(I, 65002, port, "192.0.2.2");
  return { engine, port, lines, peers, seen, inj, group };
}

describe("update groups", () => {
  test("three peers of one AS share one Adj-RIB-Out: each change is exported once for them, each gets the whole table, as the lone peer of another AS does", async () => {
    const { engine, seen, inj, group } = await setup();
    const g = group()!;
    expect(new Set([P, Q, R].map((a) => engine.peers.get(a)!.adjOut)).size).toBe(1);
    expect(engine.peers.get(S)!.adjOut).not.toBe(g.out);
    const { msgs, n } = table(20_000);
    for (const m of msgs) inj.sendUpdate(m);
    await waitFor(() => [seen.p, seen.q, seen.r, seen.s].every((x) => x.prefixes === n), { timeoutMs: 60_000, intervalMs: 20, what: `${n} prefixes at P, Q, R and S`, detail: () => JSON.stringify(seen) });
    // One export per Loc-RIB change for the three of them, not three.
    expect(g.stats.exports).toBe(n);
    // The same messages to each member (S, alone, packs its own).
    expect(seen.q).toEqual(seen.p);
    expect(seen.r).toEqual(seen.p);
    expect(g.stats.messages).toBe(seen.p.messages);
    for (const a of [P, Q, R]) expect(engine.peers.get(a)!.info().advertised).toBe(n);
    expect(engine.peers.get(P)!.info().updateGroup).toEqual([Q, R]);
    expect(formatNeighbors([engine.peers.get(Q)!.info()])).toContain(`Update group: shares its UPDATEs with ${P}, ${R}`);
    expect(engine.peers.get(S)!.info().updateGroup).toBeUndefined();
    // An iBGP peer is never grouped.
    const t = await speaker(T, 65001, engine.listener.endpoints[0]!.port, "192.0.2.7");
    receiver(t);
    await waitFor(() => engine.peers.get(T)!.outputIdleNow, { timeoutMs: 30_000, what: "T's initial table sent" });
    expect(engine.peers.get(T)!.group).toBeNull();
    expect(engine.peers.get(T)!.exportSig).toBeNull();
  }, 90_000);

  test("a member that stops reading is split off after SLOW_MS with its state: the others get everything meanwhile, and it does once it reads", async () => {
    const { engine, port, lines } = await engineA();
    // P: a raw speaker that completes the handshake and reads until told to stop.
    const framer = new Framer();
    const seenP: Seen = { prefixes: 0, messages: 0, bytes: 0 };
    const open = new Session({ peerAddress: A, localAs: 65003, remoteAs: 65001, routerId: "192.0.2.3", families: V4 }).buildOpen();
    const sock = net.connect({ host: A, port, localAddress: P });
    cleanups.push(() => sock.destroy());
    sock.on("error", () => {});
    sock.on("connect", () => {
      sock.write(encodeOpen(open));
      sock.write(KEEPALIVE);
    });
    sock.on("data", (chunk: Uint8Array) => {
      for (const f of framer.push(chunk)) if (f.type === MsgType.UPDATE) count(decodeUpdate(f.body, ctx), seenP);
    });
    const q = await speaker(Q, 65003, port, "192.0.2.4");
    const r = await speaker(R, 65003, port, "192.0.2.5");
    const seenQ = receiver(q);
    const seenR = receiver(r);
    const nP = () => engine.peers.get(P)!;
    await waitFor(() => (engine.peers.get(Q)!.group?.members.length ?? 0) === 3, { timeoutMs: 10_000, what: "P, Q and R grouped" });
    sock.pause();
    const inj = await speaker(I, 65002, port, "192.0.2.2");
    const { msgs, n } = table(450_000);
    const t0 = Date.now();
    for (const m of msgs) inj.sendUpdate(m);
    await waitFor(() => seenQ.prefixes === n && seenR.prefixes === n, { timeoutMs: 60_000, intervalMs: 20, what: `${n} prefixes at Q and R while P does not read`, detail: () => `Q ${seenQ.prefixes}, R ${seenR.prefixes}` });
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(SLOW_MS - 500);
    expect(nP().group).toBeNull();
    expect(engine.peers.get(Q)!.group!.members.length).toBe(2);
    expect(lines.some((l) => l.includes(`${P}`) && l.includes("leaves its update group: it read too slowly"))).toBe(true);
    expect(seenP.prefixes).toBeLessThan(n);
    sock.resume();
    await waitFor(() => seenP.prefixes === n, { timeoutMs: 60_000, intervalMs: 20, what: `${n} prefixes at P once it reads`, detail: () => `P ${seenP.prefixes}` });
    // Nothing twice, nothing missing: P's count is exactly the table.
    expect(seenP.prefixes).toBe(n);
    // Idle again, it joins the others.
    await waitFor(() => nP().group !== null && nP().group!.members.length === 3, { timeoutMs: 10_000, what: "P back in the group" });
  }, 120_000);

  test("a route refresh from one member splits it off: it gets the table again, the others nothing more; it joins again once idle; a member going down leaves the others going", async () => {
    const { engine, lines, peers, seen, inj, group } = await setup();
    const { msgs, n } = table(5_000);
    for (const m of msgs) inj.sendUpdate(m);
    await waitFor(() => [seen.p, seen.q, seen.r].every((x) => x.prefixes === n), { timeoutMs: 60_000, intervalMs: 20, what: `${n} prefixes at P, Q and R` });
    const before = { ...seen.p };
    peers.q.sendRouteRefresh(AFI.IPV4, SAFI.UNICAST, 0);
    await waitFor(() => seen.q.prefixes === 2 * n, { timeoutMs: 30_000, intervalMs: 20, what: "Q gets the table again", detail: () => `Q ${seen.q.prefixes}` });
    expect(lines.some((l) => l.includes(Q) && l.includes("leaves its update group: the peer asked for a route refresh"))).toBe(true);
    await waitFor(() => (group()?.members.length ?? 0) === 3, { timeoutMs: 10_000, what: "Q back in the group" });
    expect(seen.p).toEqual(before);
    expect(seen.r).toEqual(before);
    // R goes down: P and Q still get a change.
    await peers.r.stop();
    await waitFor(() => group()!.members.length === 2, { timeoutMs: 10_000, what: "R out of the group" });
    const { msgs: more, n: m } = table(6_000);
    for (const x of more) inj.sendUpdate(x);
    await waitFor(() => seen.p.prefixes >= before.prefixes + (m - n) && seen.q.prefixes >= 2 * n + (m - n), { timeoutMs: 30_000, intervalMs: 20, what: "the new routes at P and Q" });
    expect(engine.peers.get(P)!.adjOut).toBe(engine.peers.get(Q)!.adjOut);
    // Each Adj-RIB-Out keeps its state by the Loc-RIB's positions, pinning each prefix it holds: the group's and S's
    // hold the whole table; Q's own (split off for the refresh) let go when Q joined again; R's going left the group's.
    await waitFor(() => seen.s.prefixes >= m, { timeoutMs: 30_000, intervalMs: 20, what: "the new routes at S" });
    const [v4] = engine.locRib.positionTables as unknown as [PrefixMap<number, unknown>];
    expect(engine.locRib.count()).toBe(m);
    expect(v4.pinCount).toBe(2 * m);
    // S goes down: its Adj-RIB-Out lets go; the group's stays.
    await peers.s.stop();
    await waitFor(() => v4.pinCount === m, { timeoutMs: 10_000, what: "S's positions let go", detail: () => `${v4.pinCount} pins` });
    expect(v4.ghostCount).toBe(0);
  }, 90_000);
});
