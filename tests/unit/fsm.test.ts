/**
 * RFC 4271 §8 state machine: timers, transitions, error NOTIFICATIONs and
 * connection collision resolution, driven with a ManualClock and a fake host.
 */
import { describe, expect, test } from "bun:test";
import { ManualClock } from "../../lib/core/clock.ts";
import { BgpError } from "../../lib/bgp/errors.ts";
import { type ConnId, Fsm, type FsmHost, type FsmOptions, RESTART_MIN_ESTABLISHED_MS, State, type StateChange } from "../../lib/bgp/fsm.ts";
import type { Negotiated } from "../../lib/bgp/negotiate.ts";
import type { NotificationMessage } from "../../lib/bgp/notification.ts";
import type { OpenMessage } from "../../lib/bgp/open.ts";

type Action =
  | { a: "connect"; conn: ConnId; t: number }
  | { a: "disconnect"; conn: ConnId; t: number; reason: string }
  | { a: "open"; conn: ConnId; t: number }
  | { a: "keepalive"; conn: ConnId; t: number }
  | { a: "notification"; conn: ConnId; t: number; code: number; subcode: number; data: Uint8Array };

class FakeHost implements FsmHost {
  actions: Action[] = [];
  states: StateChange[] = [];
  est: { conn: ConnId; n: Negotiated }[] = [];
  confirmed: ConnId[] = [];
  constructor(private clock: ManualClock) {}
  connect(conn: ConnId): void {
    this.actions.push({ a: "connect", conn, t: this.clock.now() });
  }
  disconnect(conn: ConnId, reason: string): void {
    this.actions.push({ a: "disconnect", conn, t: this.clock.now(), reason });
  }
  sendOpen(conn: ConnId, _open: OpenMessage): void {
    this.actions.push({ a: "open", conn, t: this.clock.now() });
  }
  sendKeepalive(conn: ConnId): void {
    this.actions.push({ a: "keepalive", conn, t: this.clock.now() });
  }
  sendNotification(conn: ConnId, n: NotificationMessage): void {
    this.actions.push({ a: "notification", conn, t: this.clock.now(), code: n.code, subcode: n.subcode, data: n.data });
  }
  openConfirmed(conn: ConnId, _n: Negotiated): void {
    this.confirmed.push(conn);
  }
  established(conn: ConnId, n: Negotiated): void {
    this.est.push({ conn, n });
  }
  stateChange(c: StateChange): void {
    this.states.push(c);
  }
  /** Actions of one kind (optionally on one connection). */
  of<K extends Action["a"]>(kind: K, conn?: ConnId): Extract<Action, { a: K }>[] {
    return this.actions.filter((x): x is Extract<Action, { a: K }> => x.a === kind && (conn === undefined || x.conn === conn));
  }
  last(): Action | undefined {
    return this.actions[this.actions.length - 1];
  }
  clear(): void {
    this.actions = [];
  }
}

const LOCAL_AS = 65001;
const PEER_AS = 65002;

function localOpen(routerId = "10.0.0.1", holdTime = 90, asn = LOCAL_AS): OpenMessage {
  return { version: 4, myAs: asn, holdTime, routerId, capabilities: [{ type: "four-octet-as", asn }] };
}
function peerOpen(routerId = "10.0.0.2", holdTime = 90, asn = PEER_AS): OpenMessage {
  return { version: 4, myAs: asn, holdTime, routerId, capabilities: [{ type: "four-octet-as", asn }] };
}

function setup(o: Partial<FsmOptions> = {}) {
  const clock = new ManualClock(0);
  const host = new FakeHost(clock);
  const fsm = new Fsm(host, { localOpen: localOpen(), expectedPeerAs: PEER_AS, clock, random: () => 1, ...o });
  return { clock, host, fsm };
}

const S = 1000;

/** Start active, connect, exchange OPENs and KEEPALIVEs: returns the Established connection id. */
function establish(fsm: Fsm, host: FakeHost, peer: OpenMessage = peerOpen()): ConnId {
  fsm.start();
  const conn = host.of("connect").at(-1)!.conn;
  fsm.tcpConnected(conn);
  fsm.openReceived(conn, peer);
  fsm.keepaliveReceived(conn);
  expect(fsm.state).toBe(State.Established);
  return conn;
}

describe("ManualClock", () => {
  test("fires due timers in order, including ones set while advancing", () => {
    const clock = new ManualClock(1000);
    const log: string[] = [];
    clock.setTimeout(() => log.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => {
      log.push(`a@${clock.now()}`);
      clock.setTimeout(() => log.push(`c@${clock.now()}`), 5);
    }, 10);
    const h = clock.setTimeout(() => log.push("never"), 15);
    clock.clearTimeout(h);
    expect(clock.advance(100)).toBe(3);
    expect(log).toEqual(["a@1010", "c@1015", "b@1020"]);
    expect(clock.now()).toBe(1100);
    expect(clock.pending).toBe(0);
  });

  test("a timer loop is cut off", () => {
    const clock = new ManualClock();
    clock.maxFiresPerAdvance = 50;
    const again = () => void clock.setTimeout(again, 0);
    again();
    expect(() => clock.advance(1)).toThrow(/timer loop/);
  });
});

describe("FSM: start and ConnectRetry", () => {
  test("ManualStart connects and enters Connect", () => {
    const { fsm, host } = setup();
    expect(fsm.state).toBe(State.Idle);
    fsm.start();
    expect(fsm.state).toBe(State.Connect);
    expect(host.of("connect").length).toBe(1);
    expect(host.states).toEqual([{ from: "Idle", to: "Connect", reason: "manual start" }]);
  });

  test("ConnectRetry timer retries the connection while in Connect", () => {
    const { fsm, host, clock } = setup({ connectRetryTime: 120 });
    fsm.start();
    const first = host.of("connect")[0]!.conn;
    clock.advance(119.999 * S);
    expect(host.of("connect").length).toBe(1);
    clock.advance(0.001 * S);
    expect(host.of("disconnect", first).length).toBe(1); // the stale attempt is abandoned
    expect(host.of("connect").length).toBe(2);
    expect(fsm.state).toBe(State.Connect);
    clock.advance(120 * S);
    expect(host.of("connect").length).toBe(3);
    expect(host.of("connect").map((x) => x.t)).toEqual([0, 120 * S, 240 * S]);
  });

  test("ConnectRetry is configurable and jittered between 0.75 and 1.0", () => {
    const { fsm, host, clock } = setup({ connectRetryTime: 10, random: () => 0 });
    fsm.start();
    clock.advance(7.5 * S);
    expect(host.of("connect").map((x) => x.t)).toEqual([0, 7.5 * S]);
  });

  test("connect failure goes to Active; ConnectRetry expiry goes back to Connect", () => {
    const { fsm, host, clock } = setup({ connectRetryTime: 30 });
    fsm.start();
    clock.advance(5 * S);
    fsm.tcpFailed(host.of("connect")[0]!.conn, "ECONNREFUSED");
    expect(fsm.state).toBe(State.Active);
    expect(host.states.at(-1)!.reason).toContain("ECONNREFUSED");
    clock.advance(29.999 * S);
    expect(fsm.state).toBe(State.Active);
    expect(host.of("connect").length).toBe(1);
    clock.advance(0.001 * S);
    expect(fsm.state).toBe(State.Connect);
    expect(host.of("connect").length).toBe(2);
    // ... and the retries go on from Active too
    fsm.tcpFailed(host.of("connect")[1]!.conn);
    clock.advance(30 * S);
    expect(host.of("connect").length).toBe(3);
  });

  test("passive start waits in Active and never connects", () => {
    const { fsm, host, clock } = setup({ passive: true });
    fsm.start();
    expect(fsm.state).toBe(State.Active);
    clock.advance(3600 * S);
    expect(host.of("connect").length).toBe(0);
    expect(fsm.state).toBe(State.Active);
    const c = fsm.incomingConnection()!;
    expect(c).not.toBeNull();
    expect(host.of("open", c).length).toBe(1);
    expect(fsm.state).toBe(State.OpenSent);
  });

  test("start while running is ignored", () => {
    const { fsm, host } = setup();
    fsm.start();
    fsm.start();
    expect(host.of("connect").length).toBe(1);
  });

  test("incoming connections are refused while Idle", () => {
    const { fsm } = setup();
    expect(fsm.incomingConnection()).toBeNull();
    expect(fsm.state).toBe(State.Idle);
  });
});

describe("FSM: OpenSent and the hold timer", () => {
  test("TCP up sends OPEN and enters OpenSent; the large hold timer (240 s) expires with NOTIFICATION 4", () => {
    const { fsm, host, clock } = setup();
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    fsm.tcpConnected(c);
    expect(host.of("open", c).length).toBe(1);
    expect(fsm.state).toBe(State.OpenSent);
    clock.advance(239.999 * S);
    expect(host.of("notification").length).toBe(0);
    clock.advance(0.001 * S);
    const n = host.of("notification", c);
    expect(n.length).toBe(1);
    expect([n[0]!.code, n[0]!.subcode]).toEqual([4, 0]);
    expect(host.of("disconnect", c).length).toBe(1);
    expect(fsm.state).toBe(State.Idle);
    expect(host.states.at(-1)).toEqual({ from: "OpenSent", to: "Idle", reason: "hold timer expired" });
  });

  test("TCP failure in OpenSent goes back to Active (no back-off) and ConnectRetry restarts", () => {
    const { fsm, host, clock } = setup({ connectRetryTime: 20 });
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    clock.advance(3 * S);
    fsm.tcpConnected(c);
    fsm.tcpFailed(c, "reset");
    expect(fsm.state).toBe(State.Active);
    expect(fsm.failureCount).toBe(0);
    clock.advance(20 * S);
    expect(fsm.state).toBe(State.Connect);
    expect(host.of("connect").at(-1)!.t).toBe(23 * S);
  });

  test("OPEN in OpenSent: KEEPALIVE sent, OpenConfirm, negotiated hold = min of both", () => {
    const { fsm, host, clock } = setup({ localOpen: localOpen("10.0.0.1", 90) });
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    fsm.tcpConnected(c);
    fsm.openReceived(c, peerOpen("10.0.0.2", 30));
    expect(fsm.state).toBe(State.OpenConfirm);
    expect(host.of("keepalive", c).length).toBe(1);
    expect(host.confirmed).toEqual([c]);
    // negotiated hold 30 s: the hold timer now fires at 30 s, not 240 s
    clock.advance(29.999 * S);
    expect(host.of("notification").length).toBe(0);
    clock.advance(0.001 * S);
    expect(host.of("notification", c).map((x) => x.code)).toEqual([4]);
    expect(fsm.state).toBe(State.Idle);
  });

  test("the smaller hold time is ours when the peer offers more", () => {
    const { fsm, host } = setup({ localOpen: localOpen("10.0.0.1", 9) });
    establish(fsm, host, peerOpen("10.0.0.2", 180));
    expect(host.est[0]!.n.holdTime).toBe(9);
    expect(host.est[0]!.n.keepaliveTime).toBe(3);
  });

  test("bad peer AS: OPEN Message Error 2/2 and Idle", () => {
    const { fsm, host } = setup();
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    fsm.tcpConnected(c);
    fsm.openReceived(c, peerOpen("10.0.0.2", 90, 65999));
    const n = host.of("notification", c);
    expect([n[0]!.code, n[0]!.subcode]).toEqual([2, 2]);
    expect(fsm.state).toBe(State.Idle);
  });

  test("iBGP peer with our own BGP identifier: 2/3", () => {
    const { fsm, host } = setup({ expectedPeerAs: LOCAL_AS });
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    fsm.tcpConnected(c);
    fsm.openReceived(c, peerOpen("10.0.0.1", 90, LOCAL_AS));
    const n = host.of("notification", c);
    expect([n[0]!.code, n[0]!.subcode]).toEqual([2, 3]);
  });

  test("a decoding error sends its NOTIFICATION and closes", () => {
    const { fsm, host } = setup();
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    fsm.tcpConnected(c);
    fsm.messageError(c, new BgpError(1, 1, "marker is not all ones"));
    const n = host.of("notification", c);
    expect([n[0]!.code, n[0]!.subcode]).toEqual([1, 1]);
    expect(host.of("disconnect", c).length).toBe(1);
    expect(fsm.state).toBe(State.Idle);
  });
});

describe("FSM: unexpected messages (RFC 6608 subcodes)", () => {
  function opensent() {
    const x = setup();
    x.fsm.start();
    const c = x.host.of("connect")[0]!.conn;
    x.fsm.tcpConnected(c);
    return { ...x, c };
  }
  const lastNotif = (host: FakeHost) => {
    const n = host.of("notification").at(-1)!;
    return [n.code, n.subcode];
  };

  test("KEEPALIVE in OpenSent → 5/1", () => {
    const { fsm, host, c } = opensent();
    fsm.keepaliveReceived(c);
    expect(lastNotif(host)).toEqual([5, 1]);
    expect(fsm.state).toBe(State.Idle);
  });
  test("UPDATE in OpenSent → 5/1", () => {
    const { fsm, host, c } = opensent();
    fsm.updateReceived(c);
    expect(lastNotif(host)).toEqual([5, 1]);
  });
  test("UPDATE in OpenConfirm → 5/2", () => {
    const { fsm, host, c } = opensent();
    fsm.openReceived(c, peerOpen());
    fsm.updateReceived(c);
    expect(lastNotif(host)).toEqual([5, 2]);
    expect(fsm.state).toBe(State.Idle);
  });
  test("second OPEN in OpenConfirm → 5/2", () => {
    const { fsm, host, c } = opensent();
    fsm.openReceived(c, peerOpen());
    fsm.openReceived(c, peerOpen());
    expect(lastNotif(host)).toEqual([5, 2]);
  });
  test("ROUTE-REFRESH in OpenConfirm → 5/2", () => {
    const { fsm, host, c } = opensent();
    fsm.openReceived(c, peerOpen());
    fsm.routeRefreshReceived(c);
    expect(lastNotif(host)).toEqual([5, 2]);
  });
  test("OPEN in Established → 5/3", () => {
    const { fsm, host } = setup();
    const c = establish(fsm, host);
    fsm.openReceived(c, peerOpen());
    expect(lastNotif(host)).toEqual([5, 3]);
    expect(fsm.state).toBe(State.Idle);
    expect(host.states.at(-1)!.from).toBe(State.Established);
  });
  test("UPDATE error in Established sends that error", () => {
    const { fsm, host } = setup();
    const c = establish(fsm, host);
    fsm.messageError(c, new BgpError(3, 1, "malformed attribute list"));
    expect(lastNotif(host)).toEqual([3, 1]);
  });
  test("NOTIFICATION received in Established: Idle, nothing sent back", () => {
    const { fsm, host } = setup();
    const c = establish(fsm, host);
    fsm.notificationReceived(c, { code: 6, subcode: 2, data: new Uint8Array(0), message: "bye" });
    expect(host.of("notification").length).toBe(0);
    expect(host.of("disconnect", c).length).toBe(1);
    expect(fsm.state).toBe(State.Idle);
    expect(host.states.at(-1)!.reason).toContain('"bye"');
  });
  test("TCP failure in Established goes to Idle", () => {
    const { fsm, host } = setup();
    const c = establish(fsm, host);
    fsm.tcpFailed(c, "reset by peer");
    expect(fsm.state).toBe(State.Idle);
  });
});

describe("FSM: Established, keepalives and hold timer", () => {
  test("KEEPALIVE in OpenConfirm establishes; host gets the negotiated capabilities", () => {
    const { fsm, host } = setup();
    const c = establish(fsm, host);
    expect(host.est.length).toBe(1);
    expect(host.est[0]!.conn).toBe(c);
    expect(host.est[0]!.n.peerRouterId).toBe("10.0.0.2");
    expect(fsm.negotiated?.holdTime).toBe(90);
    expect(fsm.establishedConn).toBe(c);
    expect(host.states.map((s) => s.to)).toEqual(["Connect", "OpenSent", "OpenConfirm", "Established"]);
  });

  test("keepalives every hold/3 (no jitter at factor 1.0); peer keepalives keep the session up", () => {
    const { fsm, host, clock } = setup({ localOpen: localOpen("10.0.0.1", 30) });
    const c = establish(fsm, host, peerOpen("10.0.0.2", 30));
    const t0 = host.of("keepalive", c)[0]!.t; // the one answering the OPEN
    for (let i = 0; i < 10; i++) {
      clock.advance(5 * S);
      fsm.keepaliveReceived(c);
    }
    const sent = host.of("keepalive", c).map((x) => x.t - t0);
    expect(sent).toEqual([0, 10 * S, 20 * S, 30 * S, 40 * S, 50 * S]);
    expect(fsm.state).toBe(State.Established);
  });

  test("keepalive jitter stays between 0.75 and 1.0 of hold/3", () => {
    let seed = 12345;
    const lcg = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 2 ** 32;
    };
    const { fsm, host, clock } = setup({ random: lcg, localOpen: localOpen("10.0.0.1", 90) });
    const c = establish(fsm, host, peerOpen("10.0.0.2", 90));
    for (let i = 0; i < 200; i++) {
      clock.advance(10 * S);
      fsm.keepaliveReceived(c);
    }
    const ts = host.of("keepalive", c).map((x) => x.t);
    expect(ts.length).toBeGreaterThan(60);
    const gaps = ts.slice(1).map((t, i) => t - ts[i]!);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(0.75 * 30 * S);
      expect(g).toBeLessThanOrEqual(30 * S);
    }
    // it is really jittered, not constant
    expect(new Set(gaps).size).toBeGreaterThan(10);
  });

  test("keepalive interval at the low end of the jitter range", () => {
    const { fsm, host, clock } = setup({ random: () => 0, localOpen: localOpen("10.0.0.1", 30) });
    const c = establish(fsm, host, peerOpen("10.0.0.2", 30));
    const t0 = host.of("keepalive", c)[0]!.t;
    clock.advance(7.5 * S - 1);
    expect(host.of("keepalive", c).length).toBe(1);
    clock.advance(1);
    expect(host.of("keepalive", c).map((x) => x.t - t0)).toEqual([0, 7.5 * S]);
  });

  test("hold timer expiry in Established: NOTIFICATION 4/0, Idle", () => {
    const { fsm, host, clock } = setup({ localOpen: localOpen("10.0.0.1", 9) });
    const c = establish(fsm, host, peerOpen("10.0.0.2", 9));
    clock.advance(8 * S);
    fsm.updateReceived(c); // any message restarts the hold timer
    clock.advance(8.999 * S);
    expect(fsm.state).toBe(State.Established);
    clock.advance(0.001 * S);
    expect(fsm.state).toBe(State.Idle);
    const n = host.of("notification", c);
    expect([n[0]!.code, n[0]!.subcode]).toEqual([4, 0]);
    expect(host.states.at(-1)).toEqual({ from: "Established", to: "Idle", reason: "hold timer expired" });
  });

  test("hold time 0 (ours): no keepalives and no hold timer", () => {
    const { fsm, host, clock } = setup({ localOpen: localOpen("10.0.0.1", 0) });
    const c = establish(fsm, host, peerOpen("10.0.0.2", 90));
    expect(fsm.negotiated!.holdTime).toBe(0);
    clock.advance(10 * 3600 * S);
    expect(host.of("keepalive", c).length).toBe(1); // only the one answering the OPEN
    expect(fsm.state).toBe(State.Established);
    expect(clock.pending).toBe(0);
  });

  test("hold time 0 (peer's): same", () => {
    const { fsm, host, clock } = setup();
    const c = establish(fsm, host, peerOpen("10.0.0.2", 0));
    clock.advance(10 * 3600 * S);
    expect(host.of("keepalive", c).length).toBe(1);
    expect(fsm.state).toBe(State.Established);
  });

  test("ManualStop sends Cease with the given subcode and data, goes Idle and stays there", () => {
    const { fsm, host, clock } = setup();
    const c = establish(fsm, host);
    const data = Uint8Array.of(3, 0x62, 0x79, 0x65);
    fsm.stop({ subcode: 2, data, reason: "maintenance" });
    const n = host.of("notification", c);
    expect([n[0]!.code, n[0]!.subcode]).toEqual([6, 2]);
    expect(Array.from(n[0]!.data)).toEqual(Array.from(data));
    expect(fsm.state).toBe(State.Idle);
    expect(host.states.at(-1)).toEqual({ from: "Established", to: "Idle", reason: "maintenance" });
    host.clear();
    clock.advance(3600 * S);
    expect(host.actions).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  test("ManualStop while connecting just drops the attempt", () => {
    const { fsm, host, clock } = setup();
    fsm.start();
    fsm.stop();
    expect(host.of("notification").length).toBe(0);
    expect(host.of("disconnect").length).toBe(1);
    expect(fsm.state).toBe(State.Idle);
    expect(clock.pending).toBe(0);
  });

  test("AutomaticStop sends Cease and restarts after IdleHold", () => {
    const { fsm, host, clock } = setup({ idleHoldTime: 5 });
    const c = establish(fsm, host);
    fsm.handle({ type: "AutomaticStop", subcode: 1, reason: "too many prefixes" });
    expect(host.of("notification", c).map((x) => [x.code, x.subcode])).toEqual([[6, 1]]);
    expect(fsm.state).toBe(State.Idle);
    clock.advance(5 * S);
    expect(fsm.state).toBe(State.Connect);
  });
});

describe("FSM: DelayOpen", () => {
  test("OPEN is sent when the DelayOpen timer expires", () => {
    const { fsm, host, clock } = setup({ delayOpenTime: 5 });
    fsm.start();
    const c = host.of("connect")[0]!.conn;
    fsm.tcpConnected(c);
    expect(host.of("open").length).toBe(0);
    expect(fsm.state).toBe(State.Connect);
    clock.advance(4.999 * S);
    expect(host.of("open").length).toBe(0);
    clock.advance(0.001 * S);
    expect(host.of("open", c).length).toBe(1);
    expect(fsm.state).toBe(State.OpenSent);
  });

  test("OPEN received while DelayOpen runs: OPEN + KEEPALIVE sent, straight to OpenConfirm", () => {
    const { fsm, host, clock } = setup({ delayOpenTime: 5, passive: true });
    fsm.start();
    const c = fsm.incomingConnection()!;
    expect(fsm.state).toBe(State.Active);
    clock.advance(1 * S);
    fsm.openReceived(c, peerOpen());
    expect(host.actions.filter((x) => x.conn === c).map((x) => x.a)).toEqual(["open", "keepalive"]);
    expect(fsm.state).toBe(State.OpenConfirm);
    clock.advance(10 * S);
    expect(host.of("open", c).length).toBe(1); // the DelayOpen timer was stopped
  });

  test("KEEPALIVE before any OPEN while DelayOpen runs is an FSM error", () => {
    const { fsm, host } = setup({ delayOpenTime: 5, passive: true });
    fsm.start();
    const c = fsm.incomingConnection()!;
    fsm.keepaliveReceived(c);
    expect(host.of("notification", c).map((x) => x.code)).toEqual([5]);
    expect(fsm.state).toBe(State.Idle);
  });
});

describe("FSM: IdleHold back-off (DampPeerOscillations)", () => {
  /** Fail the session in OpenSent via an error NOTIFICATION from the peer (FSM error, not a Cease). */
  function failOnce(fsm: Fsm, host: FakeHost): void {
    const c = host.of("connect").at(-1)!.conn;
    fsm.tcpConnected(c);
    fsm.notificationReceived(c, { code: 5, subcode: 1, data: new Uint8Array(0) });
    expect(fsm.state).toBe(State.Idle);
  }

  test("IdleHold doubles on each failure and is capped", () => {
    const { fsm, host, clock } = setup({ idleHoldTime: 5, idleHoldMaxTime: 120 });
    fsm.start();
    const seen: number[] = [];
    for (let i = 0; i < 8; i++) {
      failOnce(fsm, host);
      seen.push(fsm.idleHoldMs / S);
      const n = host.of("connect").length;
      clock.advance(fsm.idleHoldMs - 1);
      expect(fsm.state).toBe(State.Idle); // still damped
      expect(host.of("connect").length).toBe(n);
      clock.advance(1);
      expect(fsm.state).toBe(State.Connect); // automatic start
      expect(host.of("connect").length).toBe(n + 1);
    }
    expect(seen).toEqual([5, 10, 20, 40, 80, 120, 120, 120]);
  });

  test("an incoming connection during IdleHold ends the hold and is accepted (two damped peers never refuse each other forever)", () => {
    const { fsm, host } = setup({ idleHoldTime: 5 });
    fsm.start();
    failOnce(fsm, host);
    expect(fsm.state).toBe(State.Idle);
    const c = fsm.incomingConnection();
    expect(c).not.toBeNull();
    expect(fsm.state).not.toBe(State.Idle);
  });

  test("a Cease from the peer (shutdown, reset, connection rejected) restarts after the base IdleHold without growing it", () => {
    const { fsm, host, clock } = setup({ idleHoldTime: 5, idleHoldMaxTime: 120 });
    fsm.start();
    for (const subcode of [2, 5, 4, 5, 3]) {
      const c = host.of("connect").at(-1)!.conn;
      fsm.tcpConnected(c);
      fsm.notificationReceived(c, { code: 6, subcode, data: new Uint8Array(0) });
      expect(fsm.state).toBe(State.Idle);
      expect(fsm.idleHoldMs).toBe(5 * S);
      expect(fsm.failureCount).toBe(0);
      clock.advance(5 * S);
      expect(fsm.state).toBe(State.Connect);
    }
  });

  test("graceful restart helper (RFC 4724 §4.2): the peer's new connection while Established replaces the old session when it announced graceful restart; else it loses as a collision", () => {
    const gr: OpenMessage = { ...peerOpen(), capabilities: [...peerOpen().capabilities, { type: "graceful-restart", restarting: true, notification: false, restartTime: 120, families: [] }] };
    for (const helper of [true, false]) {
      const { fsm, host } = setup({ gracefulRestart: helper });
      const old = establish(fsm, host, gr);
      host.clear();
      const c = fsm.incomingConnection()!;
      fsm.tcpConnected(c);
      fsm.openReceived(c, gr);
      if (helper) {
        // The old one closed without a NOTIFICATION; the new one answers the OPEN.
        expect(host.of("notification")).toEqual([]);
        expect(host.of("disconnect", old).length).toBe(1);
        expect(host.of("keepalive", c).length).toBe(1);
        expect(host.states.at(-1)).toMatchObject({ from: "Established" });
        fsm.keepaliveReceived(c);
        expect(fsm.state).toBe(State.Established);
        expect(fsm.establishedConn).toBe(c);
      } else {
        expect(host.of("notification", c)).toMatchObject([{ code: 6, subcode: 7 }]);
        expect(fsm.establishedConn).toBe(old);
      }
    }
  });

  test("graceful restart helper: a new connection just after the session came up, without the R bit, is a collision (both sides connected at once); later, it is a restart", () => {
    const gr: OpenMessage = { ...peerOpen(), capabilities: [...peerOpen().capabilities, { type: "graceful-restart", restarting: false, notification: false, restartTime: 120, families: [] }] };
    const { fsm, host, clock } = setup({ gracefulRestart: true });
    const old = establish(fsm, host, gr);
    host.clear();
    clock.advance(RESTART_MIN_ESTABLISHED_MS - 1000);
    const early = fsm.incomingConnection()!;
    fsm.tcpConnected(early);
    fsm.openReceived(early, gr);
    expect(host.of("notification", early)).toMatchObject([{ code: 6, subcode: 7 }]);
    expect(fsm.establishedConn).toBe(old);
    clock.advance(1000);
    host.clear();
    const late = fsm.incomingConnection()!;
    fsm.tcpConnected(late);
    fsm.openReceived(late, gr);
    expect(host.of("notification")).toEqual([]);
    expect(host.of("disconnect", old).length).toBe(1);
    fsm.keepaliveReceived(late);
    expect(fsm.establishedConn).toBe(late);
  });

  test("graceful restart helper: a collision at start (the peer's connection accepted before ours was Established) stays a collision", () => {
    const gr: OpenMessage = { ...peerOpen(), capabilities: [...peerOpen().capabilities, { type: "graceful-restart", restarting: false, notification: false, restartTime: 120, families: [] }] };
    const { fsm, host } = setup({ gracefulRestart: true });
    fsm.start();
    const out = host.of("connect").at(-1)!.conn;
    const inc = fsm.incomingConnection()!;
    fsm.tcpConnected(out);
    fsm.openReceived(out, gr);
    fsm.keepaliveReceived(out);
    expect(fsm.establishedConn).toBe(out);
    host.clear();
    fsm.openReceived(inc, gr);
    expect(host.of("notification", inc)).toMatchObject([{ code: 6, subcode: 7 }]);
    expect(fsm.establishedConn).toBe(out);
  });

  test("the peer's connection is still refused after a ManualStop (administratively down)", () => {
    const { fsm } = setup({ idleHoldTime: 5 });
    fsm.start();
    fsm.stop();
    expect(fsm.incomingConnection()).toBeNull();
  });

  test("the back-off resets after the session was Established for the stable time", () => {
    const { fsm, host, clock } = setup({ idleHoldTime: 5, idleHoldMaxTime: 300, stableTime: 60, localOpen: localOpen("10.0.0.1", 0) });
    fsm.start();
    for (let i = 0; i < 3; i++) {
      failOnce(fsm, host);
      clock.advance(fsm.idleHoldMs);
    }
    expect(fsm.idleHoldMs).toBe(20 * S);
    // Established but short-lived: still counts
    let c = host.of("connect").at(-1)!.conn;
    fsm.tcpConnected(c);
    fsm.openReceived(c, peerOpen());
    fsm.keepaliveReceived(c);
    clock.advance(59 * S);
    fsm.tcpFailed(c);
    expect(fsm.idleHoldMs).toBe(40 * S);
    clock.advance(40 * S);
    // Established and stable for 60 s: reset
    c = host.of("connect").at(-1)!.conn;
    fsm.tcpConnected(c);
    fsm.openReceived(c, peerOpen());
    fsm.keepaliveReceived(c);
    clock.advance(60 * S);
    expect(fsm.failureCount).toBe(0);
    fsm.tcpFailed(c);
    expect(fsm.idleHoldMs).toBe(5 * S);
  });

  test("ManualStart during IdleHold starts at once and resets the back-off", () => {
    const { fsm, host } = setup({ idleHoldTime: 5 });
    fsm.start();
    failOnce(fsm, host);
    expect(fsm.failureCount).toBe(1);
    fsm.start();
    expect(fsm.state).toBe(State.Connect);
    expect(fsm.failureCount).toBe(0);
  });

  test("without damping IdleHold stays constant", () => {
    const { fsm, host, clock } = setup({ idleHoldTime: 5, dampPeerOscillations: false });
    fsm.start();
    for (let i = 0; i < 4; i++) {
      failOnce(fsm, host);
      expect(fsm.idleHoldMs).toBe(5 * S);
      clock.advance(5 * S);
    }
  });
});

describe("FSM: connection collision (RFC 4271 §6.8)", () => {
  /** Outgoing connection up (OpenSent) and an incoming one accepted (OpenSent). */
  function twoConnections(localId: string, o: Partial<FsmOptions> = {}) {
    const x = setup({ localOpen: localOpen(localId), ...o });
    x.fsm.start();
    const out = x.host.of("connect")[0]!.conn;
    x.fsm.tcpConnected(out);
    const inc = x.fsm.incomingConnection()!;
    expect(inc).not.toBeNull();
    expect(x.fsm.connectionState(out)).toBe(State.OpenSent);
    expect(x.fsm.connectionState(inc)).toBe(State.OpenSent);
    return { ...x, out, inc };
  }
  const ceases = (host: FakeHost, conn: ConnId) => host.of("notification", conn).filter((n) => n.code === 6 && n.subcode === 7).length;

  test("higher local id keeps the connection it initiated (OPEN on outgoing first)", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.9");
    fsm.openReceived(out, peerOpen("10.0.0.2"));
    expect(fsm.connectionState(out)).toBe(State.OpenConfirm);
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    expect(ceases(host, inc)).toBe(1);
    expect(host.of("disconnect", inc).length).toBe(1);
    expect(ceases(host, out)).toBe(0);
    expect(fsm.connectionState(inc)).toBeNull();
    expect(fsm.connectionState(out)).toBe(State.OpenConfirm);
    fsm.keepaliveReceived(out);
    expect(fsm.state).toBe(State.Established);
    expect(fsm.establishedConn).toBe(out);
  });

  test("higher local id keeps the connection it initiated (OPEN on incoming first)", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.9");
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    expect(fsm.connectionState(inc)).toBe(State.OpenConfirm);
    fsm.openReceived(out, peerOpen("10.0.0.2"));
    expect(ceases(host, inc)).toBe(1);
    expect(ceases(host, out)).toBe(0);
    expect(fsm.connectionState(out)).toBe(State.OpenConfirm);
  });

  test("lower local id keeps the connection the peer initiated (OPEN on outgoing first)", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.1");
    fsm.openReceived(out, peerOpen("10.0.0.2"));
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    expect(ceases(host, out)).toBe(1);
    expect(ceases(host, inc)).toBe(0);
    expect(fsm.connectionState(out)).toBeNull();
    expect(fsm.connectionState(inc)).toBe(State.OpenConfirm);
    expect(host.of("keepalive", inc).length).toBe(1);
    fsm.keepaliveReceived(inc);
    expect(fsm.establishedConn).toBe(inc);
  });

  test("lower local id keeps the connection the peer initiated (OPEN on incoming first)", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.1");
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    fsm.openReceived(out, peerOpen("10.0.0.2"));
    expect(ceases(host, out)).toBe(1);
    expect(ceases(host, inc)).toBe(0);
    expect(fsm.connectionState(inc)).toBe(State.OpenConfirm);
    // the peer state never left OpenConfirm, let alone went Idle
    expect(host.states.some((s) => s.to === State.Idle)).toBe(false);
  });

  test("identifiers compare as unsigned 32-bit numbers", () => {
    const { fsm, host, out, inc } = twoConnections("200.0.0.1");
    fsm.openReceived(out, peerOpen("10.0.0.2"));
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    expect(ceases(host, inc)).toBe(1); // 200.0.0.1 > 10.0.0.2: our outgoing survives
    expect(fsm.connectionState(out)).toBe(State.OpenConfirm);
  });

  test("peer with the highest bit set in its identifier wins against us", () => {
    const { fsm, host, out, inc } = twoConnections("127.255.255.255");
    fsm.openReceived(out, peerOpen("128.0.0.0"));
    fsm.openReceived(inc, peerOpen("128.0.0.0"));
    expect(ceases(host, out)).toBe(1);
    expect(fsm.connectionState(inc)).toBe(State.OpenConfirm);
  });

  test("equal identifiers (eBGP): the higher AS wins (RFC 6286)", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.5");
    fsm.openReceived(out, peerOpen("10.0.0.5")); // peer AS 65002 > ours 65001
    fsm.openReceived(inc, peerOpen("10.0.0.5"));
    expect(ceases(host, out)).toBe(1);
    expect(fsm.connectionState(inc)).toBe(State.OpenConfirm);
  });

  test("no collision decision while the other connection has not received an OPEN", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.1");
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    expect(host.of("notification").length).toBe(0);
    expect(fsm.connectionState(out)).toBe(State.OpenSent);
    expect(fsm.connectionState(inc)).toBe(State.OpenConfirm);
    expect(fsm.state).toBe(State.OpenConfirm);
  });

  test("the Established session wins over a new connection, whatever the identifiers", () => {
    // we have the lower id, so a normal collision would keep the peer's connection
    const { fsm, host, clock } = setup({ localOpen: localOpen("10.0.0.1") });
    const out = establish(fsm, host, peerOpen("10.0.0.2"));
    const inc = fsm.incomingConnection()!;
    expect(inc).not.toBeNull();
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    expect(ceases(host, inc)).toBe(1);
    expect(host.of("disconnect", inc).length).toBe(1);
    expect(ceases(host, out)).toBe(0);
    expect(fsm.state).toBe(State.Established);
    expect(fsm.establishedConn).toBe(out);
    expect(host.states.at(-1)!.to).toBe(State.Established);
    clock.advance(30 * S);
    fsm.keepaliveReceived(out);
    expect(fsm.state).toBe(State.Established);
  });

  test("an Established incoming connection also wins against a second incoming one", () => {
    const { fsm, host } = setup({ localOpen: localOpen("10.0.0.9"), passive: true });
    fsm.start();
    const inc = fsm.incomingConnection()!;
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    fsm.keepaliveReceived(inc);
    expect(fsm.state).toBe(State.Established);
    const inc2 = fsm.incomingConnection()!;
    fsm.openReceived(inc2, peerOpen("10.0.0.2"));
    expect(ceases(host, inc2)).toBe(1);
    expect(fsm.establishedConn).toBe(inc);
    // only one extra connection is tracked beside an Established one
    const inc3 = fsm.incomingConnection();
    expect(inc3).not.toBeNull();
    expect(fsm.incomingConnection()).toBeNull();
  });

  test("a pending outgoing attempt is abandoned once the incoming connection is Established", () => {
    const { fsm, host } = setup({ localOpen: localOpen("10.0.0.1") });
    fsm.start();
    const out = host.of("connect")[0]!.conn;
    const inc = fsm.incomingConnection()!;
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    fsm.keepaliveReceived(inc);
    expect(fsm.state).toBe(State.Established);
    expect(host.of("disconnect", out).length).toBe(1);
    expect(fsm.connections().length).toBe(1);
  });

  test("losing a collision-dumped connection does not take the session down", () => {
    const { fsm, host, out, inc } = twoConnections("10.0.0.1");
    fsm.openReceived(out, peerOpen("10.0.0.2"));
    fsm.openReceived(inc, peerOpen("10.0.0.2"));
    // late events for the closed connection are ignored
    fsm.keepaliveReceived(out);
    fsm.tcpFailed(out);
    expect(fsm.state).toBe(State.OpenConfirm);
    fsm.keepaliveReceived(inc);
    expect(fsm.state).toBe(State.Established);
    expect(host.est.length).toBe(1);
  });
});
