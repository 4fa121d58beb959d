/**
 * BFD (lib/bfd): the control packet codec (round trip, every discard rule of
 * RFC 5880 §6.8.6 that needs only the packet), two sessions talking over an
 * in-memory wire on a ManualClock (three-way handshake, slow start, timer
 * negotiation, jitter bounds, detection timeout, Poll/Final on a change of
 * timers, AdminDown), the manager's demultiplexing, and the UDP transport's
 * TTL rules on real loopback sockets (TTL 255 sent; single hop drops TTL
 * below 255 in the kernel).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { ManualClock } from "../../lib/core/clock.ts";
import { BfdManager, BfdPacketError, BfdSession, type BfdStateChange, type BfdTransport, type ControlPacket, UdpTransport, decodeControl, encodeControl } from "../../lib/bfd/mod.ts";
import { readTtlOptions, setTtlOptions } from "../../ffi/ttl.ts";
import { waitFor } from "../support/wait.ts";
import { tempDirs } from "../support/tmp.ts";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../lib/config/load.ts";
import { Log } from "../../lib/core/log.ts";
import { Router } from "../../lib/router/router.ts";

const BASE: ControlPacket = {
  diag: 0,
  state: 1,
  poll: false,
  final: false,
  cpi: false,
  auth: false,
  demand: false,
  multipoint: false,
  detectMult: 3,
  myDisc: 0x11223344,
  yourDisc: 0,
  desiredMinTx: 1_000_000,
  requiredMinRx: 300_000,
  requiredMinEchoRx: 0,
};

function reason(buf: Uint8Array): string {
  try {
    decodeControl(buf);
  } catch (e) {
    expect(e).toBeInstanceOf(BfdPacketError);
    return (e as BfdPacketError).reason;
  }
  throw new Error("packet was accepted");
}

describe("BFD control packet codec", () => {
  test("round trip of every field, and the wire layout", () => {
    const p: ControlPacket = { ...BASE, diag: 3, state: 3, poll: true, cpi: true, demand: true, detectMult: 5, yourDisc: 0xdeadbeef, desiredMinTx: 300_000, requiredMinRx: 50_000, requiredMinEchoRx: 7 };
    const b = encodeControl(p);
    expect(b.length).toBe(24);
    expect(b[0]).toBe((1 << 5) | 3);
    expect(b[1]).toBe((3 << 6) | 0x20 | 0x08 | 0x02);
    expect(b[2]).toBe(5);
    expect(b[3]).toBe(24);
    expect([...b.subarray(8, 12)]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect(decodeControl(b)).toEqual(p);
    const f = { ...BASE, final: true, state: 0, diag: 7 };
    expect(decodeControl(encodeControl(f))).toEqual(f);
    // Trailing bytes beyond the length field are ignored.
    const longer = new Uint8Array(30);
    longer.set(encodeControl(BASE));
    expect(decodeControl(longer)).toEqual(BASE);
  });

  test("malformed packets are discarded with the failed check named", () => {
    const good = encodeControl(BASE);
    const mut = (f: (b: Uint8Array) => void, len = 24) => {
      const b = new Uint8Array(len);
      b.set(good.subarray(0, Math.min(len, 24)));
      f(b);
      return b;
    };
    expect(reason(good.subarray(0, 3))).toContain("shorter than a BFD header");
    expect(reason(mut((b) => (b[0] = (2 << 5) | 0)))).toBe("version 2, not 1");
    expect(reason(mut((b) => (b[3] = 20)))).toBe("length field 20, below the minimum 24");
    expect(reason(mut(() => {}, 23))).toBe("length field 24, beyond the 23-byte datagram");
    expect(reason(mut((b) => (b[2] = 0)))).toBe("detect multiplier 0");
    expect(reason(mut((b) => (b[1] = b[1]! | 0x01)))).toBe("multipoint (M) bit set");
    expect(reason(mut((b) => b.fill(0, 4, 8)))).toBe("My Discriminator 0");
    expect(reason(mut((b) => (b[1] = 3 << 6)))).toBe("Your Discriminator 0 in state Up");
    expect(reason(mut((b) => (b[1] = 2 << 6)))).toBe("Your Discriminator 0 in state Init");
    // A bit: 24 bytes is too short for an authentication section; with one, no authentication is configured.
    expect(reason(mut((b) => (b[1] = b[1]! | 0x04)))).toBe("length field 24, below the minimum 26");
    expect(
      reason(
        mut((b) => {
          b[1] = b[1]! | 0x04;
          b[3] = 28;
          b.set([1, 4, 1, 0x61], 24); // simple password "a"
        }, 28),
      ),
    ).toBe("authentication (A bit) present, none configured");
  });
});

/** Two sessions joined by a wire with 1 ms latency, each direction can be cut; every packet is recorded. */
function lab(a: Partial<{ minTx: number; minRx: number; multiplier: number }> = {}, b: Partial<{ minTx: number; minRx: number; multiplier: number }> = {}, random = () => 0.5) {
  const clock = new ManualClock(1000);
  const link = { ab: true, ba: true };
  const sent: { from: "a" | "b"; at: number; p: ControlPacket }[] = [];
  const changes: { who: "a" | "b"; at: number; c: BfdStateChange }[] = [];
  const sessions: { a?: BfdSession; b?: BfdSession } = {};
  const make = (who: "a" | "b", o: typeof a, disc: number) =>
    new BfdSession({
      minTx: 300,
      minRx: 300,
      multiplier: 3,
      ...o,
      localDisc: disc,
      clock,
      random,
      send: (bytes) => {
        const p = decodeControl(bytes);
        sent.push({ from: who, at: clock.now(), p });
        const up = who === "a" ? link.ab : link.ba;
        const to = who === "a" ? sessions.b : sessions.a;
        if (up) clock.setTimeout(() => to!.receive(decodeControl(bytes)), 1);
      },
    });
  const A = (sessions.a = make("a", a, 0xa));
  const B = (sessions.b = make("b", b, 0xb));
  A.onStateChange = (c) => changes.push({ who: "a", at: clock.now(), c });
  B.onStateChange = (c) => changes.push({ who: "b", at: clock.now(), c });
  return { clock, link, sent, changes, A, B };
}

/** Gaps between the periodic packets one side sent in [from, to) (F answers and state-change packets excluded by the caller's window). */
function gaps(sent: { from: string; at: number; p: ControlPacket }[], who: string, from: number, to: number): number[] {
  const t = sent.filter((s) => s.from === who && s.at >= from && s.at < to && !s.p.final).map((s) => s.at);
  return t.slice(1).map((x, i) => x - t[i]!);
}

describe("BFD session state machine and timers", () => {
  test("three-way handshake to Up; slow start at 1 s while not Up; then a poll moves to the configured 300 ms", () => {
    const { clock, link, sent, changes, A, B } = lab();
    link.ab = false; // B is not listening yet
    A.start();
    // Before B speaks: A sends Down packets advertising 1 s DesiredMinTx, ~750..1000 ms apart.
    clock.advance(3000);
    link.ab = true;
    expect(sent.every((s) => s.p.state === 1 && s.p.desiredMinTx === 1_000_000 && s.p.requiredMinRx === 300_000)).toBe(true);
    for (const g of gaps(sent, "a", 0, 4000)) expect(g).toBeGreaterThanOrEqual(750), expect(g).toBeLessThanOrEqual(1000);
    const t0 = clock.now();
    B.start();
    clock.advance(10);
    expect(A.stateName).toBe("Up");
    expect(B.stateName).toBe("Up");
    expect(changes.map((c) => `${c.who}:${c.c.from}->${c.c.to}`)).toEqual(["a:Down->Init", "b:Down->Up", "a:Init->Up"]);
    // Going Up changed the advertised DesiredMinTx (1 s → 300 ms): a Poll Sequence, answered with Final.
    const polls = sent.filter((s) => s.at >= t0 && s.p.poll);
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(polls.every((s) => s.p.state === 3 && s.p.desiredMinTx === 300_000)).toBe(true);
    expect(sent.some((s) => s.at >= t0 && s.p.final)).toBe(true);
    expect(A.polling || B.polling).toBe(false);
    expect(A.txInterval).toBe(300);
    expect(A.detectionTime).toBe(900);
    // Steady state: packets 225..300 ms apart, no P; the session stays Up.
    const t1 = clock.now();
    clock.advance(5000);
    expect(A.stateName).toBe("Up");
    const g = gaps(sent, "a", t1, clock.now());
    expect(g.length).toBeGreaterThan(15);
    for (const x of g) expect(x).toBeGreaterThanOrEqual(225), expect(x).toBeLessThanOrEqual(300);
    expect(sent.filter((s) => s.at >= t1).every((s) => !s.p.poll && s.p.yourDisc !== 0)).toBe(true);
  });

  test("timer negotiation (§6.8.2, §6.8.4): tx = max(our DesiredMinTx, their RequiredMinRx), detection = their multiplier × max(our RequiredMinRx, their DesiredMinTx)", () => {
    const { clock, sent, A, B } = lab({ minTx: 300, minRx: 300, multiplier: 3 }, { minTx: 100, minRx: 500, multiplier: 5 });
    A.start();
    B.start();
    clock.advance(3000);
    expect(A.stateName).toBe("Up");
    expect(A.txInterval).toBe(500);
    expect(A.detectionTime).toBe(5 * 300);
    expect(B.txInterval).toBe(300);
    expect(B.detectionTime).toBe(3 * 500);
    const t = clock.now();
    clock.advance(6000);
    for (const x of gaps(sent, "a", t, clock.now())) expect(x).toBeGreaterThanOrEqual(375), expect(x).toBeLessThanOrEqual(500);
    for (const x of gaps(sent, "b", t, clock.now())) expect(x).toBeGreaterThanOrEqual(225), expect(x).toBeLessThanOrEqual(300);
  });

  test("jitter: 75% to 100% of the interval, at most 90% with a detect multiplier of 1", () => {
    for (const [mult, r, lo, hi] of [
      [3, 0, 225, 225],
      [3, 0.999999, 299.9, 300],
      [1, 0, 225, 225],
      [1, 0.999999, 269.9, 270],
    ] as const) {
      const { clock, sent, A, B } = lab({ multiplier: mult }, {}, () => r);
      A.start();
      B.start();
      clock.advance(3000);
      const t = clock.now();
      clock.advance(3000);
      const g = gaps(sent, "a", t, clock.now());
      expect(g.length).toBeGreaterThan(5);
      for (const x of g) expect(x).toBeGreaterThanOrEqual(lo - 1e-6), expect(x).toBeLessThanOrEqual(hi + 1e-6);
    }
  });

  test("silence for the detection time takes the session Down (diagnostic 1); the peer learns it (diagnostic 3); both come back", () => {
    const { clock, link, changes, A, B } = lab();
    A.start();
    B.start();
    clock.advance(3000);
    expect(A.stateName).toBe("Up");
    link.ab = false; // A's packets stop reaching B
    const cut = clock.now();
    clock.advance(1000);
    const down = changes.find((c) => c.who === "b" && c.c.to === "Down")!;
    expect(down.c).toEqual({ from: "Up", to: "Down", diag: 1, cause: "detection-timeout" });
    expect(down.at - cut).toBeGreaterThan(600);
    expect(down.at - cut).toBeLessThanOrEqual(901);
    expect(B.remoteDisc).toBe(0);
    expect(B.lastDown).toBe("detection-timeout: Control Detection Time Expired");
    // B's Down packets reach A: A goes Down, neighbour signaled.
    const aDown = changes.find((c) => c.who === "a" && c.c.to === "Down")!;
    expect(aDown.c).toEqual({ from: "Up", to: "Down", diag: 3, cause: "peer-down" });
    // Slow start again while down.
    expect(B.advertisedTx()).toBe(1000);
    link.ab = true;
    clock.advance(3000);
    expect(A.stateName).toBe("Up");
    expect(B.stateName).toBe("Up");
  });

  test("a change of timers while Up is a Poll Sequence: a longer DesiredMinTx is used only after the Final, a shorter RequiredMinRx counts for detection only after it", () => {
    const { clock, link, sent, A, B } = lab();
    A.start();
    B.start();
    clock.advance(3000);
    link.ba = false; // hold back B's answers: the poll stays open
    const t = clock.now();
    const finals = A.counters.finalsReceived;
    A.setParams({ minTx: 600, minRx: 100, multiplier: 3 });
    expect(A.polling).toBe(true);
    expect(A.txInterval).toBe(300); // not yet 600
    expect(A.detectionTime).toBe(900); // still 3 × 300 until the Final
    clock.advance(250);
    const during = sent.filter((s) => s.from === "a" && s.at >= t);
    expect(during.length).toBeGreaterThan(0);
    expect(during.every((s) => s.p.poll && s.p.desiredMinTx === 600_000 && s.p.requiredMinRx === 100_000)).toBe(true);
    link.ba = true;
    clock.advance(400);
    expect(A.polling).toBe(false);
    expect(A.counters.finalsReceived).toBe(finals + 1);
    expect(A.txInterval).toBe(600);
    expect(A.detectionTime).toBe(3 * 300); // B still sends every 300 ms: max(100, 300)
    expect(B.detectionTime).toBe(3 * 600); // B's view: our DesiredMinTx is 600 now
    expect(A.stateName).toBe("Up");
    expect(B.stateName).toBe("Up");
    // A shorter DesiredMinTx is used at once, before the Final.
    A.setParams({ minTx: 300, minRx: 300, multiplier: 3 });
    expect(A.txInterval).toBe(300);
    clock.advance(2000);
    expect(A.polling).toBe(false);
    expect(A.stateName).toBe("Up");
  });

  test("timers changed while not Up apply at once, with no poll", () => {
    const { clock, link, sent, A } = lab();
    link.ab = false; // B never hears A: A stays Down
    A.start();
    A.setParams({ minTx: 2000, minRx: 400, multiplier: 4 });
    expect(A.polling).toBe(false);
    expect(A.txInterval).toBe(2000);
    clock.advance(5000);
    expect(sent.every((s) => !s.p.poll)).toBe(true);
    expect(sent.at(-1)!.p).toMatchObject({ desiredMinTx: 2_000_000, requiredMinRx: 400_000, detectMult: 4 });
  });

  test("AdminDown: the peer goes Down with diagnostic 3 and cause peer-admin-down, and it does not come back until AdminDown ends", () => {
    const { clock, sent, changes, A, B } = lab();
    A.start();
    B.start();
    clock.advance(3000);
    A.adminDown();
    clock.advance(20);
    expect(sent.filter((s) => s.from === "a").at(-1)!.p).toMatchObject({ state: 0, diag: 7 });
    expect(changes.find((c) => c.who === "b" && c.c.to === "Down")!.c).toEqual({ from: "Up", to: "Down", diag: 3, cause: "peer-admin-down" });
    clock.advance(5000);
    expect(A.stateName).toBe("AdminDown");
    expect(B.stateName).toBe("Down");
    A.adminUp();
    clock.advance(3000);
    expect(A.stateName).toBe("Up");
    expect(B.stateName).toBe("Up");
  });

  test("a peer asking for no packets (RequiredMinRx 0) gets none", () => {
    const clock = new ManualClock(0);
    const out: Uint8Array[] = [];
    const s = new BfdSession({ minTx: 300, minRx: 300, multiplier: 3, localDisc: 1, clock, send: (b) => out.push(b) });
    s.start();
    s.receive({ ...BASE, requiredMinRx: 0 });
    const n = out.length;
    // Nothing periodic; the next packet is the state change when the detection time (3 × 1 s) runs out.
    clock.advance(2900);
    expect(out.length).toBe(n);
    clock.advance(200);
    expect(out.length).toBe(n + 1);
    expect(decodeControl(out.at(-1)!)).toMatchObject({ state: 1, diag: 1 });
    clock.advance(10_000);
    expect(out.length).toBe(n + 1);
    s.close();
  });
});

/** An in-memory transport: what the manager sends is recorded; tests inject received packets. */
class FakeTransport implements BfdTransport {
  onPacket: BfdTransport["onPacket"] = () => {};
  onError: BfdTransport["onError"] = () => {};
  sent: { peer: string; p: ControlPacket }[] = [];
  listening = new Set<boolean>();
  async listen(multihop: boolean): Promise<void> {
    this.listening.add(multihop);
  }
  async sender(peer: string, local: string | null) {
    return { local: local ?? "0.0.0.0", port: 49152, send: (b: Uint8Array) => (this.sent.push({ peer, p: decodeControl(b) }), null), close: () => {} };
  }
  close(): void {}
}

describe("BFD manager", () => {
  test("demultiplexes by Your Discriminator, else by source address and kind; counts what it drops", async () => {
    const clock = new ManualClock(0);
    const t = new FakeTransport();
    const logs: string[] = [];
    const m = new BfdManager({ transport: t, clock, log: (l, msg) => logs.push(`${l} ${msg}`) });
    const seen: string[] = [];
    m.add("192.0.2.2", { peer: "192.0.2.2", local: null, multihop: false, minTx: 300, minRx: 300, multiplier: 3 }, (c) => seen.push(`2:${c.to}`));
    m.add("2001:db8::3", { peer: "2001:db8::3", local: "2001:db8::1", multihop: true, minTx: 300, minRx: 300, multiplier: 3 }, (c) => seen.push(`3:${c.to}`));
    await waitFor(() => t.sent.length >= 2, { what: "both sessions to send", timeoutMs: 1000 });
    expect([...t.listening].sort()).toEqual([false, true]);
    const disc2 = t.sent.find((s) => s.peer === "192.0.2.2")!.p.myDisc;
    // Your Discriminator 0: by source (a v4-mapped spelling too) and kind.
    t.onPacket(encodeControl({ ...BASE, myDisc: 77 }), "::ffff:192.0.2.2", false);
    expect(seen).toEqual(["2:Init"]);
    t.onPacket(encodeControl({ ...BASE, myDisc: 78 }), "2001:db8::3", false); // multihop session, single-hop port
    expect(m.dropped.get("no session for this source address")).toBe(1);
    t.onPacket(encodeControl({ ...BASE, myDisc: 78 }), "2001:0db8:0::3", true);
    expect(seen).toEqual(["2:Init", "3:Init"]);
    // Nonzero: by discriminator, whatever the source.
    t.onPacket(encodeControl({ ...BASE, state: 3, myDisc: 77, yourDisc: disc2 }), "192.0.2.99", false);
    expect(seen).toEqual(["2:Init", "3:Init", "2:Up"]);
    t.onPacket(encodeControl({ ...BASE, state: 3, myDisc: 77, yourDisc: 12345 }), "192.0.2.2", false);
    expect(m.dropped.get("no session with discriminator 12345")).toBe(1);
    t.onPacket(encodeControl({ ...BASE, state: 3, myDisc: 77, yourDisc: disc2 }), "192.0.2.2", true);
    expect(m.dropped.get(`discriminator ${disc2} is a single-hop session`)).toBe(1);
    t.onPacket(new Uint8Array(3), "192.0.2.2", false);
    expect(m.dropped.size).toBe(4);
    const info = m.info().find((i) => i.peer === "192.0.2.2")!;
    expect(info).toMatchObject({ state: "Up", remoteState: "Up", remoteDiscriminator: 77, txInterval: 300, detectionTime: 3 * 1000, multihop: false });
    // The move to Up started a poll (1 s → 300 ms); the peer's Final ends it.
    t.onPacket(encodeControl({ ...BASE, state: 3, final: true, myDisc: 77, yourDisc: disc2 }), "192.0.2.2", false);
    expect(m.info().find((i) => i.peer === "192.0.2.2")!.polling).toBe(false);
    // A reload's new timers: a poll, no reset.
    m.update("192.0.2.2", { peer: "192.0.2.2", local: null, multihop: false, minTx: 500, minRx: 500, multiplier: 3 });
    expect(m.info().find((i) => i.peer === "192.0.2.2")!).toMatchObject({ state: "Up", polling: true });
    expect(t.sent.at(-1)!.p).toMatchObject({ poll: true, desiredMinTx: 500_000 });
    // Removal: AdminDown goes out, the session is gone after a short while.
    m.remove("192.0.2.2");
    expect(t.sent.at(-1)!.p).toMatchObject({ state: 0, diag: 7 });
    expect(seen.at(-1)).toBe("2:Up");
    clock.advance(2000);
    expect(m.info().map((i) => i.peer)).toEqual(["2001:db8::3"]);
    // A new local address is a new session (its source address and port stay for its life).
    const disc3 = t.sent.filter((s) => s.peer === "2001:db8::3").at(-1)!.p.myDisc;
    m.update("2001:db8::3", { peer: "2001:db8::3", local: "2001:db8::9", multihop: true, minTx: 300, minRx: 300, multiplier: 3 });
    await waitFor(() => t.sent.filter((s) => s.peer === "2001:db8::3").at(-1)!.p.myDisc !== disc3, { what: "the new session's first packet", timeoutMs: 1000 });
    expect(t.sent.filter((s) => s.peer === "2001:db8::3").at(-2)!.p).toMatchObject({ state: 0, myDisc: disc3 });
    expect(m.info().filter((i) => i.peer === "2001:db8::3").map((i) => [i.local, i.state])).toEqual([["2001:db8::9", "Down"]]);
    m.close();
  });
});

describe("BFD over UDP: TTL rules", () => {
  const open: { close(): void }[] = [];
  afterEach(() => {
    for (const o of open.splice(0)) o.close();
  });

  for (const [family, host] of [
    ["IPv4", "127.0.0.1"],
    ["IPv6", "::1"],
  ] as const) {
    test(`${family}: sent with TTL 255; single hop accepts 255 only, multihop any TTL`, async () => {
      const port = 20000 + Math.floor(Math.random() * 20000);
      const tr = new UdpTransport({ singleHopPort: port, multihopPort: port + 1, listenAddress: "::" });
      open.push(tr);
      const got: { from: string; multihop: boolean }[] = [];
      tr.onPacket = (_d, from, multihop) => got.push({ from, multihop });
      await tr.listen(false);
      await tr.listen(true);
      const s = await tr.sender(host, host, false);
      expect(s.port).toBeGreaterThanOrEqual(49152); // RFC 5881 §4 source port range
      expect(s.send(encodeControl(BASE))).toBeNull();
      await waitFor(() => got.length === 1, { what: "the TTL 255 packet", timeoutMs: 2000 });
      expect(got[0]).toEqual({ from: host, multihop: false });
      // A plain socket at TTL 64: dropped on the single-hop port, accepted on the multihop one.
      const plain = await Bun.udpSocket({ hostname: host, port: 0 });
      open.push(plain);
      const pfd = (plain as unknown as { fd: number }).fd;
      setTtlOptions(pfd, family === "IPv6" ? 6 : 4, { ttl: 64 });
      expect(readTtlOptions(pfd, family === "IPv6" ? 6 : 4).ttl).toBe(64);
      plain.send(encodeControl(BASE), port, host);
      plain.send(encodeControl(BASE), port + 1, host);
      await waitFor(() => got.length >= 2, { what: "the TTL 64 packet on the multihop port", timeoutMs: 2000 });
      await Bun.sleep(100);
      expect(got.slice(1)).toEqual([{ from: host, multihop: true }]);
    });
  }
});

describe("BFD and a held event loop", () => {
  test("a detection timer that fires late (the loop was held) waits one more turn: a packet that arrived meanwhile keeps the session Up", () => {
    const manual = new ManualClock(1000);
    let skew = 0;
    const clock = { now: () => manual.now() + skew, setTimeout: manual.setTimeout.bind(manual), clearTimeout: manual.clearTimeout.bind(manual) };
    const s = new BfdSession({ minTx: 300, minRx: 300, multiplier: 3, localDisc: 1, clock, send: () => {} });
    const changes: string[] = [];
    s.onStateChange = (c) => changes.push(c.to);
    s.start();
    const peer = { ...BASE, myDisc: 9, desiredMinTx: 300_000 };
    s.receive({ ...peer, state: 1 });
    s.receive({ ...peer, state: 3, yourDisc: 1 });
    expect(s.stateName).toBe("Up");
    // The timer is due 900 ms after the last packet; it runs 1 s late (as after a long pause of the loop).
    skew = 1000;
    manual.advance(900);
    expect(s.stateName).toBe("Up");
    s.receive({ ...peer, state: 3, yourDisc: 1 }); // read in the same turn, after the timers
    manual.advance(5);
    expect(s.stateName).toBe("Up");
    // Nothing arrives for real: down after the detection time, once the deferred check runs on time.
    skew = 0;
    manual.advance(901);
    expect(changes).toEqual(["Init", "Up", "Down"]);
    expect(s.localDiag).toBe(1);
    s.close();
  });


  test("a 1.5 s stall of our loop (peer in another process, still sending every 300 ms) does not take the session down; the stall shows in maxTxGap", async () => {
    const p1 = 20000 + Math.floor(Math.random() * 20000);
    const p2 = p1 + 2;
    // Both at 300 ms; our multiplier 10 gives the peer a 3 s detection time, ours is 3 × 300 ms: only our side is tested.
    const child = Bun.spawn([process.execPath, `${import.meta.dir}/../support/bfd-peer.ts`, "--listen", String(p2), "--send", String(p1), "--peer", "127.0.0.1", "--lifetime", "30"], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const lines: string[] = [];
    void (async () => {
      const dec = new TextDecoder();
      for await (const chunk of child.stdout) lines.push(...dec.decode(chunk).split("\n").filter(Boolean));
    })();
    const m = new BfdManager({ transport: new UdpTransport({ singleHopPort: p1, multihopPort: p1 + 1, remotePort: p2, listenAddress: "127.0.0.1" }), log: () => {} });
    try {
      await waitFor(() => lines.some((l) => l.includes("ready")), { what: "the peer process", timeoutMs: 10_000 });
      const changes: string[] = [];
      m.add("127.0.0.1", { peer: "127.0.0.1", local: "127.0.0.1", multihop: false, minTx: 300, minRx: 300, multiplier: 10 }, (c) => changes.push(c.to));
      await waitFor(() => m.state("127.0.0.1") === "Up" && !m.info()[0]!.polling, { what: "Up", timeoutMs: 10_000 });
      expect(m.info()[0]!.detectionTime).toBe(900);
      const t0 = performance.now();
      while (performance.now() - t0 < 1500) {
        /* hold the loop, as a long garbage-collection pause would */
      }
      await Bun.sleep(300);
      expect(changes.filter((c) => c !== "Init" && c !== "Up")).toEqual([]);
      expect(m.state("127.0.0.1")).toBe("Up");
      await waitFor(() => m.info()[0]!.maxTxGap >= 1500, { what: "the stall in maxTxGap", timeoutMs: 2000 });
      expect(lines.filter((l) => l.includes('"Down"'))).toEqual([]);
    } finally {
      m.close();
      child.kill();
      await child.exited;
    }
  }, 30_000);
});

describe("BFD in the daemon (lib/router/bfd-glue.ts), with an in-memory BFD transport", () => {
  const running: Router[] = [];
  const dir = tempDirs("bgpctl-bfd-")();
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.stop()));
  });

  /** A router from YAML (written to a file for reloads), started on 127.0.0.x port 0. */
  async function node(addr: string, asn: number, body: string, transport: FakeTransport) {
    const file = join(dir, `${addr}-${Math.random().toString(36).slice(2)}.yaml`);
    const head = `asn: ${asn}\nrouterId: ${addr === "127.0.0.1" ? "192.0.2.1" : "192.0.2.2"}\nlisten: {address: ${addr}, port: 0}\ncontrolSocket: ${join(dir, `${asn}.sock`)}\n`;
    writeFileSync(file, head + body);
    const lines: string[] = [];
    const router = new Router(parseConfig(head + body, file), file, new Log("debug", "text", (l) => lines.push(l)), { clock: new ManualClock(), bfdTransport: transport });
    await router.start();
    running.push(router);
    return { router, lines, write: (b: string) => writeFileSync(file, head + b), port: router.engine.listener.endpoints[0]!.port };
  }

  const peerOf = (r: Router, address = "127.0.0.2") => r.neighbors().find((n) => n.address === address)!;

  for (const graceful of [false, true]) {
    test(`a session per BFD peer; peer down/up, reload of timers (poll, no reset); BFD down takes BGP down ${graceful ? "without a NOTIFICATION (bfd.graceful)" : "with Cease/BFD Down"}`, async () => {
      const tb = new FakeTransport();
      const b = await node("127.0.0.2", 65002, `peers:\n  - {address: 127.0.0.1, remoteAs: 65001, passive: true, import: all, export: all}\n`, tb);
      const ta = new FakeTransport();
      const peer = (bfd: string) => `peers:\n  - {address: 127.0.0.2, remoteAs: 65002, port: ${b.port}, localAddress: 127.0.0.1, import: all, export: all, bfd: {${bfd}}}\n`;
      const a = await node("127.0.0.1", 65001, peer(`enabled: true, graceful: ${graceful}`), ta);
      await waitFor(() => peerOf(a.router).state === "Established", { what: "BGP Established", timeoutMs: 10_000 });
      // The BFD session exists from the start, from the configured local address; the peer comes up.
      await waitFor(() => ta.sent.length > 0, { what: "a first BFD packet", timeoutMs: 2000 });
      expect(ta.sent[0]!.peer).toBe("127.0.0.2");
      const disc = ta.sent[0]!.p.myDisc;
      ta.onPacket(encodeControl({ ...BASE, myDisc: 5, desiredMinTx: 300_000 }), "127.0.0.2", false);
      ta.onPacket(encodeControl({ ...BASE, state: 3, myDisc: 5, yourDisc: disc, desiredMinTx: 300_000 }), "127.0.0.2", false);
      ta.onPacket(encodeControl({ ...BASE, state: 3, final: true, myDisc: 5, yourDisc: disc, desiredMinTx: 300_000 }), "127.0.0.2", false); // ends the poll of the move to Up
      expect(a.router.bfdSessions()).toMatchObject([{ peer: "127.0.0.2", local: "127.0.0.1", state: "Up", bgpState: "Established", graceful, txInterval: 300 }]);
      expect(peerOf(a.router).bfd).toBe("Up");
      expect(b.router.bfdSessions()).toEqual([]);
      expect(tb.listening.size).toBe(0); // no BFD peer: no socket
      // A reload with new timers: a poll sequence on the same session, BGP untouched.
      const estBefore = a.lines.filter((l) => l.includes("-> Established")).length;
      a.write(peer(`enabled: true, graceful: ${graceful}, minTx: 500`));
      await a.router.reload();
      expect(ta.sent.at(-1)!.p).toMatchObject({ poll: true, desiredMinTx: 500_000, myDisc: disc });
      ta.onPacket(encodeControl({ ...BASE, state: 3, final: true, myDisc: 5, yourDisc: disc, desiredMinTx: 300_000 }), "127.0.0.2", false);
      expect(a.router.bfdSessions()[0]).toMatchObject({ state: "Up", polling: false, txInterval: 500 });
      expect(peerOf(a.router).state).toBe("Established");
      // peer down: AdminDown to the BFD peer, session gone; peer up: a new one.
      a.router.peerDown("127.0.0.2");
      expect(ta.sent.at(-1)!.p).toMatchObject({ state: 0, diag: 7, myDisc: disc });
      expect(peerOf(a.router).bfd).toBeUndefined();
      a.router.peerUp("127.0.0.2");
      await waitFor(() => peerOf(a.router).state === "Established", { what: "BGP Established again", timeoutMs: 10_000 });
      const disc2 = ta.sent.at(-1)!.p.myDisc;
      expect(disc2).not.toBe(disc);
      ta.onPacket(encodeControl({ ...BASE, myDisc: 6 }), "127.0.0.2", false);
      ta.onPacket(encodeControl({ ...BASE, state: 3, myDisc: 6, yourDisc: disc2 }), "127.0.0.2", false);
      expect(peerOf(a.router).bfd).toBe("Up");
      // The peer's AdminDown: BFD Down, BGP stays (RFC 5882 §3.2).
      ta.onPacket(encodeControl({ ...BASE, state: 0, diag: 7, myDisc: 6, yourDisc: disc2 }), "127.0.0.2", false);
      expect(peerOf(a.router).bfd).toBe("Down");
      await Bun.sleep(100);
      expect(peerOf(a.router).state).toBe("Established");
      ta.onPacket(encodeControl({ ...BASE, myDisc: 6, yourDisc: disc2 }), "127.0.0.2", false);
      ta.onPacket(encodeControl({ ...BASE, state: 3, myDisc: 6, yourDisc: disc2 }), "127.0.0.2", false);
      expect(peerOf(a.router).bfd).toBe("Up");
      // The peer reports Down (it lost us): BGP goes down at once.
      const est = a.lines.filter((l) => l.includes("-> Established")).length;
      expect(est).toBeGreaterThan(estBefore);
      const bMark = b.lines.length;
      ta.onPacket(encodeControl({ ...BASE, state: 1, diag: 1, myDisc: 6, yourDisc: disc2 }), "127.0.0.2", false);
      expect(peerOf(a.router).state).not.toBe("Established");
      expect(a.lines.join("\n")).toContain(graceful ? "closing the BGP connection without a NOTIFICATION (bfd.graceful)" : "closing the BGP session (Cease/BFD Down)");
      const bLog = await waitFor(() => b.lines.slice(bMark).find((l) => l.includes("Established -> Idle")) && b.lines.slice(bMark).join("\n"), { what: "B to see the session end", timeoutMs: 5000, detail: () => b.lines.slice(bMark).join("\n") });
      if (graceful) {
        // A lost connection: B's graceful-restart helper keeps our routes as stale.
        expect(bLog).not.toMatch(/received NOTIFICATION/);
        expect(bLog).toContain("graceful restart (connection lost): keeping its");
      } else {
        // Cease/BFD Down; inside a Hard Reset (its data: subcode 10) since both sides negotiated RFC 8538.
        expect(bLog).toMatch(/received NOTIFICATION Cease\/(BFD Down|Hard Reset \(6\/9\).*(BFD Down|data 0a))/);
      }
      // Peer removed from the file: its BFD session goes (AdminDown).
      a.write("peers: []\n");
      await a.router.reload();
      expect(ta.sent.at(-1)!.p).toMatchObject({ state: 0, myDisc: disc2 });
      expect(a.router.bfdSessions().filter((s) => s.state !== "AdminDown")).toEqual([]);
    }, 30_000);
  }
});
