/**
 * Session TTL (lib/bgp/ttl.ts, ffi/ttl.ts, ffi/tcp-socket.ts): the policy
 * (eBGP TTL 1, multihop N, iBGP system default, GTSM 255 + min TTL
 * 256 - hops), then real sessions over loopback (IPv4, IPv6, IPv4 to a
 * dual-stack `::` listener) with the TTL and minimum TTL read back with
 * getsockopt on both ends: the connecting one (options set before the SYN)
 * and the accepted one (options set when the Listener hands it over). On the
 * wire: a listener with IP_MINTTL shows what TTL our SYN carries (TTL 1 is
 * dropped by min TTL 2, TCPMinTTLDrop counts it); a GTSM session does not
 * come up with a peer sending TTL 64; a GTSM client's handshake with our
 * Listener completes (its SYN-ACK goes out with TTL 255) and fails against a
 * plain server. A setsockopt failure on an accepted socket refuses it and is
 * logged once with the errno. Every wait is bounded.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectTcp, createTcpListenSocket, peerFamily, socketFd } from "../../ffi/tcp-socket.ts";
import { TtlOptionError, readTtlOptions, setTtlOptions } from "../../ffi/ttl.ts";
import { Listener } from "../../lib/bgp/listener.ts";
import { Session, type SessionConfig, State } from "../../lib/bgp/session.ts";
import { ttlPolicy, ttlSettingsProblem } from "../../lib/bgp/ttl.ts";
import { AFI } from "../../lib/core/addr.ts";
import { SAFI } from "../../lib/bgp/types.ts";
import { sleep, waitFor } from "../support/wait.ts";
import { sessionOptions } from "../../lib/cli/session-flags.ts";
import { StandaloneSpeaker } from "../../lib/standalone/speaker.ts";

const V4 = { afi: AFI.IPV4, safi: SAFI.UNICAST };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) {
    try {
      await cleanups.pop()!();
    } catch {
      /* best effort */
    }
  }
});

describe("TTL policy", () => {
  test("GTSM: TTL 255, min TTL 256 - hops", () => {
    expect(ttlPolicy({ ttlSecurity: 1 }, true)).toEqual({ ttl: 255, minTtl: 255, text: "TTL security: 1 hop (min TTL 255)" });
    expect(ttlPolicy({ ttlSecurity: 2, multihop: false }, false)).toEqual({ ttl: 255, minTtl: 254, text: "TTL security: 2 hops (min TTL 254)" });
    expect(ttlPolicy({ ttlSecurity: 254 }, null).minTtl).toBe(2);
  });

  test("multihop N: TTL N (eBGP and iBGP); eBGP without it: TTL 1; iBGP or unmanaged: system default", () => {
    expect(ttlPolicy({ multihop: 2 }, true)).toEqual({ ttl: 2, minTtl: null, text: "multihop: TTL 2" });
    expect(ttlPolicy({ multihop: 255 }, false).ttl).toBe(255);
    expect(ttlPolicy({ multihop: false }, true)).toEqual({ ttl: 1, minTtl: null, text: "directly connected: TTL 1" });
    expect(ttlPolicy({ multihop: false }, false)).toEqual({ ttl: null, minTtl: null, text: "system default TTL" });
    // Peer AS unknown (accept any), or TTL not managed at all: leave the system default.
    expect(ttlPolicy({ multihop: false }, null).ttl).toBeNull();
    expect(ttlPolicy({}, true).ttl).toBeNull();
  });

  test("bad settings are clear errors, also from the Session constructor", () => {
    expect(ttlSettingsProblem({ ttlSecurity: 2, multihop: 3 })).toMatch(/ttlSecurity and multihop are both set/);
    expect(ttlSettingsProblem({ ttlSecurity: 0 })).toMatch(/ttlSecurity 0: expected a hop count 1..254/);
    expect(ttlSettingsProblem({ multihop: 256 })).toMatch(/multihop 256: expected a TTL 1..255/);
    expect(ttlSettingsProblem({ ttlSecurity: 5, multihop: false })).toBeNull();
    const base: SessionConfig = { peerAddress: "192.0.2.1", localAs: 65001, remoteAs: 65002, families: [V4] };
    expect(() => new Session({ ...base, ttlSecurity: 1, multihop: 2 })).toThrow(/192.0.2.1: ttlSecurity and multihop/);
    expect(() => new Session({ ...base, ttlSecurity: 255 })).toThrow(/1..254/);
    expect(new Session({ ...base, multihop: false }).ttl.ttl).toBe(1);
  });
});

// ---------------------------------------------------------------- sockets

function session(cfg: Omit<SessionConfig, "families"> & Partial<Pick<SessionConfig, "families">>): Session {
  const s = new Session({ closeTimeout: 2000, holdTime: 3, connectRetry: 1, idleHoldTime: 0.2, families: [V4], ...cfg });
  cleanups.push(() => s.stop());
  return s;
}

async function listener(address: string, sessions: Session[]): Promise<Listener> {
  const l = new Listener(sessions);
  await l.listen({ address, port: 0 });
  cleanups.push(() => l.close());
  return l;
}

type Ttl = Pick<SessionConfig, "multihop" | "ttlSecurity">;

/**
 * A (active, AS 65001 unless `aAs`) connects to B (passive, AS 65002 unless
 * `bAs`) through B's Listener on `listenAddr`, both for peer `addr`.
 */
async function pair(addr: string, listenAddr: string, aTtl: Ttl, bTtl: Ttl, o: { aAs?: number; bAs?: number; closeTimeout?: number } = {}) {
  const aAs = o.aAs ?? 65001;
  const bAs = o.bAs ?? 65002;
  const closeTimeout = o.closeTimeout ?? 2000;
  const b = session({ peerAddress: addr, localAs: bAs, remoteAs: aAs, routerId: "192.0.2.2", passive: true, closeTimeout, ...bTtl });
  const lb = await listener(listenAddr, [b]);
  const a = session({ peerAddress: addr, peerPort: lb.port(), localAddress: addr, localAs: aAs, remoteAs: bAs, routerId: "192.0.2.1", closeTimeout, ...aTtl });
  const logs: string[] = [];
  for (const s of [a, b]) s.on("log", (l) => logs.push(`${l.level} ${l.msg}`));
  a.start();
  b.start();
  return { a, b, lb, logs };
}

async function established(a: Session, b: Session, logs: string[]): Promise<void> {
  await waitFor(() => a.state === State.Established && b.state === State.Established, {
    timeoutMs: 5000,
    what: "both sessions Established",
    detail: () => logs.slice(-20).join("\n"),
  });
}

/** The system default TTL for loopback traffic of `family` (what a socket without IP_TTL reports). */
function defaultTtl(family: 4 | 6): number {
  const p = family === 4 ? "/proc/sys/net/ipv4/ip_default_ttl" : "/proc/sys/net/ipv6/conf/lo/hop_limit";
  return Number(readFileSync(p, "utf8").trim());
}

/** TcpExt TCPMinTTLDrop of this network namespace: segments dropped by a socket's minimum TTL. */
function minTtlDrops(): number {
  const [keys, values] = readFileSync("/proc/net/netstat", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("TcpExt:"))
    .map((l) => l.trim().split(/\s+/));
  if (!keys || !values) throw new Error("/proc/net/netstat has no TcpExt lines");
  const i = keys.indexOf("TCPMinTTLDrop");
  if (i < 0) throw new Error("/proc/net/netstat has no TCPMinTTLDrop (kernel older than 5.16?)");
  return Number(values[i]);
}

const TRANSPORTS = [
  { name: "IPv4", addr: "127.0.0.1", listen: "127.0.0.1", family: 4 as const },
  { name: "IPv6", addr: "::1", listen: "::1", family: 6 as const },
  { name: "IPv4 on a dual-stack :: listener", addr: "127.0.0.1", listen: "::", family: 4 as const },
];

describe("TTL read back from both ends of real sessions over loopback", () => {
  for (const tr of TRANSPORTS) {
    test(`${tr.name}: eBGP without multihop sends with TTL 1, no min TTL`, async () => {
      const { a, b, logs } = await pair(tr.addr, tr.listen, { multihop: false }, { multihop: false });
      await established(a, b, logs);
      expect(a.socketTtl).toEqual({ ttl: 1, minTtl: 0 });
      expect(b.socketTtl).toEqual({ ttl: 1, minTtl: 0 });
    });

    test(`${tr.name}: multihop N sends with TTL N (each side its own)`, async () => {
      const { a, b, logs } = await pair(tr.addr, tr.listen, { multihop: 3 }, { multihop: 7 });
      await established(a, b, logs);
      expect(a.socketTtl).toEqual({ ttl: 3, minTtl: 0 });
      expect(b.socketTtl).toEqual({ ttl: 7, minTtl: 0 });
    });

    test(`${tr.name}: iBGP without multihop keeps the system default (also on the accepted socket, whose listener sends with 255)`, async () => {
      const { a, b, logs } = await pair(tr.addr, tr.listen, { multihop: false }, { multihop: false }, { aAs: 65010, bAs: 65010 });
      await established(a, b, logs);
      const d = defaultTtl(tr.family);
      expect(d).not.toBe(255);
      expect(a.socketTtl).toEqual({ ttl: d, minTtl: 0 });
      expect(b.socketTtl).toEqual({ ttl: d, minTtl: 0 });
    });

    test(`${tr.name}: GTSM sends with TTL 255 and requires 256 - hops, connecting and accepting`, async () => {
      const { a, b, logs } = await pair(tr.addr, tr.listen, { ttlSecurity: 1 }, { ttlSecurity: 3 });
      await established(a, b, logs);
      expect(a.socketTtl).toEqual({ ttl: 255, minTtl: 255 });
      expect(b.socketTtl).toEqual({ ttl: 255, minTtl: 253 });
    });
  }

  test("GTSM against a peer sending TTL 64: no session, and the kernel counts min-TTL drops", async () => {
    const before = minTtlDrops();
    // Dropped segments include the FINs: close without waiting for a graceful end.
    const { a, b } = await pair("127.0.0.1", "127.0.0.1", { multihop: 64 }, { ttlSecurity: 1 }, { closeTimeout: 300 });
    await sleep(2500);
    expect(a.state).not.toBe(State.Established);
    expect(b.state).not.toBe(State.Established);
    expect(minTtlDrops()).toBeGreaterThan(before);
  });
});

/** A plain node:net server on a socket of ours with IP_MINTTL `minTtl`; counts accepted connections. */
async function minTtlServer(minTtl: number): Promise<{ port: number; accepted: () => number }> {
  const ls = createTcpListenSocket("127.0.0.1", 0, [], 16, { minTtl });
  let n = 0;
  const server = net.createServer((s) => {
    n++;
    s.on("error", () => {});
    s.destroy();
  });
  await new Promise<void>((r) => server.listen({ fd: ls.fd } as net.ListenOptions, () => r()));
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.address() as net.AddressInfo).port, accepted: () => n };
}

/** Whether a raw connect to `port` with `minTtl` on our socket completes its handshake within `ms`. */
function handshakes(port: number, minTtl: number, ms: number, host = "127.0.0.1"): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connectTcp({ host, port, ttl: { minTtl }, onConnected: () => done(true) });
    s.on("error", () => done(false));
    const t = setTimeout(() => done(false), ms);
    function done(ok: boolean) {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    }
  });
}

describe("TTL on the wire", () => {
  test("an eBGP session's SYN carries TTL 1: a listener requiring TTL 2 never sees it; with multihop 2 it does", async () => {
    const strict = await minTtlServer(2);
    const before = minTtlDrops();
    const direct = session({ peerAddress: "127.0.0.1", peerPort: strict.port, localAs: 65001, remoteAs: 65002, multihop: false, closeTimeout: 300 });
    direct.start();
    await sleep(1500);
    expect(strict.accepted()).toBe(0);
    expect(minTtlDrops()).toBeGreaterThan(before);
    await direct.stop();

    const hop2 = session({ peerAddress: "127.0.0.1", peerPort: strict.port, localAs: 65001, remoteAs: 65002, multihop: 2, closeTimeout: 300 });
    hop2.start();
    await waitFor(() => strict.accepted() > 0, { timeoutMs: 3000, what: "the TTL 2 connection to be accepted" });
  });

  test("our Listener answers a GTSM client with TTL 255 (its handshake completes); a plain server's TTL 64 answer is dropped", async () => {
    const b = session({ peerAddress: "127.0.0.1", localAs: 65002, remoteAs: 65001, passive: true, ttlSecurity: 1 });
    const lb = await listener("127.0.0.1", [b]);
    expect(await handshakes(lb.port(), 255, 2000)).toBe(true);
    const plain = net.createServer((s) => s.on("error", () => {}));
    await new Promise<void>((r) => plain.listen({ host: "127.0.0.1", port: 0 }, () => r()));
    cleanups.push(() => new Promise<void>((r) => plain.close(() => r())));
    expect(await handshakes((plain.address() as net.AddressInfo).port, 255, 1000)).toBe(false);
  });

  test("a Listener on a host name (a socket the runtime creates) answers with TTL 255 too", async () => {
    // Sessions for either answer of "localhost", so the connection is kept (a refused one is closed at once).
    const sessions = ["127.0.0.1", "::1"].map((a) => session({ peerAddress: a, localAs: 65002, remoteAs: 65001, passive: true, ttlSecurity: 1 }));
    const lb = await listener("localhost", sessions);
    const ep = lb.endpoints[0]!;
    const host = ep.address === "::" ? "::1" : ep.address === "0.0.0.0" ? "127.0.0.1" : ep.address;
    expect(await handshakes(ep.port, 255, 2000, host)).toBe(true);
  });
});

describe("TTL option failures", () => {
  test("setTtlOptions names the option, the value and the errno; readTtlOptions reads back", () => {
    const ls = createTcpListenSocket("127.0.0.1", 0);
    cleanups.push(() => require("../../ffi/libc.ts").close(ls.fd));
    setTtlOptions(ls.fd, 4, { ttl: 9, minTtl: 3 });
    expect(readTtlOptions(ls.fd, 4)).toEqual({ ttl: 9, minTtl: 3 });
    let err: unknown = null;
    try {
      setTtlOptions(ls.fd, 4, { minTtl: 256 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TtlOptionError);
    expect((err as TtlOptionError).message).toBe("setsockopt(IP_MINTTL=256): EINVAL (Invalid argument)");
    expect(peerFamily("::ffff:192.0.2.1")).toBe(4);
    expect(peerFamily("2001:db8::1")).toBe(6);
    expect(peerFamily("fe80::1%no-such-if0")).toBe(6);
  });

  test("an accepted socket that cannot take the TTL is refused, the error logged once with the errno", async () => {
    // A Unix-domain stream socket has no IP_TTL: setsockopt fails like a broken TCP socket would.
    const path = join(tmpdir(), `bgpctl-ttl-${process.pid}.sock`);
    const accepted: net.Socket[] = [];
    const server = net.createServer((s) => accepted.push(s));
    await new Promise<void>((r) => server.listen(path, () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const s = session({ peerAddress: "192.0.2.9", localAs: 65001, remoteAs: 65002, passive: true, ttlSecurity: 1 });
    const logs: { level: string; msg: string }[] = [];
    s.on("log", (l) => logs.push(l));
    s.start();
    const clients = [net.connect(path), net.connect(path)];
    for (const c of clients) c.on("error", () => {});
    cleanups.push(() => clients.forEach((c) => c.destroy()));
    await waitFor(() => accepted.length === 2, { timeoutMs: 2000, what: "two Unix connections" });
    expect(socketFd(accepted[0]!)).not.toBeNull();
    for (const sock of accepted) s.acceptIncoming(sock);
    const errors = logs.filter((l) => l.level === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toMatch(/^192\.0\.2\.9: incoming connection refused: cannot set TTL security: 1 hop \(min TTL 255\): setsockopt\(IP_TTL=255\): E[A-Z]+ /);
    await waitFor(() => accepted.every((x) => x.destroyed), { timeoutMs: 2000, what: "the refused sockets to be closed" });
    expect(s.state).not.toBe(State.Established);
    expect(s.counters.lastError).toMatch(/setsockopt\(IP_TTL=255\)/);
  });
});

describe("bgpctl peer: --multihop and --ttl-security", () => {
  const base = { remoteAs: "65002", localAs: "65001", port: "179", holdTime: "90", connectRetry: "5", family: "ipv4", kernelTable: "254", kernelProtocol: "186", kernelMetric: "20" };

  test("reach the one-shot session's config; eBGP without them sends with TTL 1", () => {
    const plain = new StandaloneSpeaker(sessionOptions("192.0.2.2", base), () => {});
    expect(plain.session.config.multihop).toBe(false);
    const mh = new StandaloneSpeaker(sessionOptions("192.0.2.2", { ...base, multihop: "3" }), () => {});
    expect(mh.session.config.multihop).toBe(3);
    const gtsm = new StandaloneSpeaker(sessionOptions("192.0.2.2", { ...base, ttlSecurity: "2" }), () => {});
    expect(gtsm.session.config.ttlSecurity).toBe(2);
    expect(ttlPolicy({ multihop: plain.session.config.multihop ?? false }, true)).toMatchObject({ ttl: 1 });
  });

  test("bad values and both at once are usage errors naming the flag", () => {
    expect(() => sessionOptions("192.0.2.2", { ...base, multihop: "0" })).toThrow("--multihop");
    expect(() => sessionOptions("192.0.2.2", { ...base, ttlSecurity: "255" })).toThrow("--ttl-security");
    expect(() => sessionOptions("192.0.2.2", { ...base, multihop: "2", ttlSecurity: "2" })).toThrow("--multihop and --ttl-security: give one of them");
  });
});
