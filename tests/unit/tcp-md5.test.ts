/**
 * TCP-MD5 (RFC 2385): the `struct tcp_md5sig` encoding (IPv4, IPv6, IPv4-mapped
 * on an IPv6 socket, delete), password checks (1..80 bytes of UTF-8), and real
 * keyed sockets over loopback (no root needed to set TCP_MD5SIG): Session and
 * Listener reaching Established with the same password over IPv4, IPv6 and
 * IPv4 to a dual-stack `::` listener (v4-mapped key); no session with a wrong
 * or a missing password; keys added to and removed from a listening socket at
 * run time; a refused MD5 connect reported, never thrown. Every wait is bounded.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import * as net from "node:net";
import {
  MD5SIG_OFF,
  TCP_MD5SIG_SIZE,
  TcpMd5Error,
  encodeSockaddr,
  encodeTcpMd5sig,
  md5Key,
  md5PasswordProblem,
  parseSocketAddress,
  removeTcpMd5Key,
  setTcpMd5Key,
} from "../../ffi/tcp-md5.ts";
import { connectTcp, createTcpListenSocket } from "../../ffi/tcp-socket.ts";
import { Listener } from "../../lib/bgp/listener.ts";
import { Session, type SessionConfig, State } from "../../lib/bgp/session.ts";
import { AFI } from "../../lib/core/addr.ts";
import { SAFI } from "../../lib/bgp/types.ts";
import { passwordOption } from "../../lib/cli/session-flags.ts";
import { type Clock, ManualClock, realClock } from "../../lib/core/clock.ts";
import { waitFor } from "../support/wait.ts";

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


function u16le(b: Uint8Array, off: number): number {
  return b[off]! | (b[off + 1]! << 8);
}

function allZero(b: Uint8Array): boolean {
  return b.every((x) => x === 0);
}

describe("struct tcp_md5sig encoding", () => {
  test("IPv4 peer on an IPv4 socket: AF_INET sockaddr, keylen, key at 136", () => {
    const b = encodeTcpMd5sig("192.0.2.1", "s3cret", 4);
    expect(b.length).toBe(TCP_MD5SIG_SIZE);
    expect(b.length).toBe(216);
    expect(u16le(b, 0)).toBe(2); // sa_family AF_INET (host order)
    expect([...b.subarray(2, 4)]).toEqual([0, 0]); // port 0
    expect([...b.subarray(4, 8)]).toEqual([192, 0, 2, 1]);
    expect(allZero(b.subarray(8, 128))).toBe(true); // rest of sockaddr_storage
    expect(b[MD5SIG_OFF.flags]).toBe(0);
    expect(b[MD5SIG_OFF.prefixlen]).toBe(0);
    expect(u16le(b, MD5SIG_OFF.keylen)).toBe(6);
    expect(allZero(b.subarray(132, 136))).toBe(true); // ifindex
    expect(new TextDecoder().decode(b.subarray(136, 142))).toBe("s3cret");
    expect(allZero(b.subarray(142))).toBe(true);
    expect(MD5SIG_OFF).toEqual({ addr: 0, flags: 128, prefixlen: 129, keylen: 130, ifindex: 132, key: 136 });
  });

  test("IPv6 peer on an IPv6 socket: AF_INET6 sockaddr_in6, address at 8..24, no scope", () => {
    const b = encodeTcpMd5sig("2001:db8::2", "k", 6);
    expect(u16le(b, 0)).toBe(10); // AF_INET6
    expect(allZero(b.subarray(2, 8))).toBe(true); // port, flowinfo
    expect([...b.subarray(8, 24)]).toEqual([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    expect(allZero(b.subarray(24, 128))).toBe(true); // scope id 0 and padding
    expect(u16le(b, MD5SIG_OFF.keylen)).toBe(1);
    expect(b[136]).toBe("k".charCodeAt(0));
  });

  test("IPv4 peer on an IPv6 socket: IPv4-mapped ::ffff:a.b.c.d, AF_INET6", () => {
    const b = encodeTcpMd5sig("192.0.2.7", "k", 6);
    expect(u16le(b, 0)).toBe(10);
    expect([...b.subarray(8, 24)]).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7]);
    // The mapped text form gives the same bytes.
    expect([...encodeTcpMd5sig("::ffff:192.0.2.7", "k", 6)]).toEqual([...b]);
  });

  test("IPv4-mapped text on an IPv4 socket is plain AF_INET; a real IPv6 peer there is refused", () => {
    const b = encodeTcpMd5sig("::ffff:192.0.2.7", "k", 4);
    expect(u16le(b, 0)).toBe(2);
    expect([...b.subarray(4, 8)]).toEqual([192, 0, 2, 7]);
    expect(() => encodeTcpMd5sig("2001:db8::1", "k", 4)).toThrow(TcpMd5Error);
  });

  test("delete: keylen 0 and no key bytes", () => {
    const b = encodeTcpMd5sig("192.0.2.1", null, 4);
    expect(u16le(b, MD5SIG_OFF.keylen)).toBe(0);
    expect(allZero(b.subarray(128))).toBe(true);
  });

  test("an 80-byte key fits; 81 bytes, an empty key or too many UTF-8 bytes is a clear error", () => {
    const k80 = "x".repeat(80);
    const b = encodeTcpMd5sig("192.0.2.1", k80, 4);
    expect(u16le(b, MD5SIG_OFF.keylen)).toBe(80);
    expect(b[215]).toBe("x".charCodeAt(0));
    expect(() => encodeTcpMd5sig("192.0.2.1", "x".repeat(81), 4)).toThrow(/81 bytes long; the kernel takes at most 80/);
    expect(() => md5Key("")).toThrow(/empty/);
    // 27 × "€" is 81 bytes of UTF-8 though only 27 characters.
    expect(md5PasswordProblem("€".repeat(27))).toMatch(/81 bytes/);
    expect(md5PasswordProblem("€".repeat(26))).toBeNull();
    expect([...md5Key("é")]).toEqual([0xc3, 0xa9]);
  });

  test("sockaddr encoding: port in network order, scope id from a numeric zone, bad text refused", () => {
    const v4 = encodeSockaddr("192.0.2.1", 179);
    expect(v4.length).toBe(16);
    expect([...v4.subarray(0, 8)]).toEqual([2, 0, 0, 179, 192, 0, 2, 1]);
    const v6 = encodeSockaddr("fe80::1%7", 0x1234);
    expect(v6.length).toBe(28);
    expect([...v6.subarray(2, 4)]).toEqual([0x12, 0x34]);
    expect(v6[24]).toBe(7);
    expect(parseSocketAddress("fe80::1%lo").scopeId).toBeGreaterThan(0);
    expect(() => parseSocketAddress("router.example")).toThrow(TcpMd5Error);
    expect(() => parseSocketAddress("fe80::1%no-such-if0")).toThrow(/no interface/);
  });

  test("Session refuses an unusable password at construction", () => {
    const base: SessionConfig = { peerAddress: "192.0.2.1", localAs: 65001, families: [V4] };
    expect(() => new Session({ ...base, password: "x".repeat(81) })).toThrow(/at most 80/);
    expect(() => new Session({ ...base, password: "" })).toThrow(/empty/);
    expect(new Session({ ...base, password: "x".repeat(80) }).config.password).toHaveLength(80);
  });

  test("bgpctl peer --password / --password-file", async () => {
    expect(passwordOption({})).toBeUndefined();
    expect(passwordOption({ password: "abc" })).toBe("abc");
    expect(() => passwordOption({ password: "x".repeat(81) })).toThrow(/--password: TCP-MD5 password is 81 bytes/);
    expect(() => passwordOption({ password: "a", passwordFile: "/x" })).toThrow(/give one of them/);
    const dir = (await import("node:fs")).mkdtempSync(`${(await import("node:os")).tmpdir()}/md5-`);
    cleanups.push(async () => (await import("node:fs")).rmSync(dir, { recursive: true, force: true }));
    const f = `${dir}/pw`;
    await Bun.write(f, "from file\n");
    expect(passwordOption({ passwordFile: f })).toBe("from file");
    await Bun.write(f, "\n");
    expect(() => passwordOption({ passwordFile: f })).toThrow(/--password-file: TCP-MD5 password is empty/);
    expect(() => passwordOption({ passwordFile: `${dir}/none` })).toThrow(/no such file/);
  });
});

// ---------------------------------------------------------------- sockets

async function listener(address: string, sessions: Session[] = []): Promise<Listener> {
  const l = new Listener(sessions);
  await l.listen({ address, port: 0 });
  cleanups.push(() => l.close());
  return l;
}

function session(cfg: Omit<SessionConfig, "families"> & Partial<Pick<SessionConfig, "families">>): Session {
  const s = new Session({ closeTimeout: 2000, holdTime: 3, connectRetry: 1, idleHoldTime: 0.2, families: [V4], ...cfg });
  cleanups.push(() => s.stop());
  return s;
}

/**
 * Segments the kernel dropped for TCP-MD5 in this network namespace so far
 * (TcpExt TCPMD5NotFound + TCPMD5Unexpected + TCPMD5Failure, /proc/net/netstat).
 */
function md5Drops(): number {
  const [keys, values] = readFileSync("/proc/net/netstat", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("TcpExt:"))
    .map((l) => l.trim().split(/\s+/));
  if (!keys || !values) throw new Error("/proc/net/netstat has no TcpExt lines");
  const names = ["TCPMD5NotFound", "TCPMD5Unexpected", "TCPMD5Failure"];
  const idx = names.map((n) => keys.indexOf(n));
  if (idx.some((i) => i < 0)) throw new Error(`/proc/net/netstat lacks one of ${names.join(", ")}`);
  return idx.reduce((sum, i) => sum + Number(values[i]), 0);
}

/** A (active, `aPw`) connects to B (passive, `bPw`) through B's listener on `listenAddr`; both sessions on `clock`. */
async function md5Pair(addr: string, listenAddr: string, aPw: string | undefined, bPw: string | undefined, clock: Clock = realClock) {
  const b = session({ peerAddress: addr, localAs: 65002, remoteAs: 65001, routerId: "2.2.2.2", passive: true, password: bPw, clock });
  const lb = await listener(listenAddr, [b]);
  const a = session({ peerAddress: addr, peerPort: lb.port(), localAddress: addr, localAs: 65001, remoteAs: 65002, routerId: "1.1.1.1", password: aPw, clock });
  const logs: string[] = [];
  a.on("log", (l) => logs.push(l.msg));
  return { a, b, lb, logs };
}

/** Whether a raw keyed connect to `port` completes its handshake within `ms`. */
async function handshakes(host: string, port: number, password: string, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    let s: net.Socket | null = null;
    const t = setTimeout(() => {
      s?.destroy();
      resolve(false);
    }, ms);
    s = connectTcp({
      host,
      port,
      password,
      onConnected: () => {
        clearTimeout(t);
        s?.destroy();
        resolve(true);
      },
    });
    s.on("error", () => {});
  });
}

describe("TCP-MD5 sockets over loopback", () => {
  test("IPv4: the same password on both sides reaches Established; keys show on the listener", async () => {
    const { a, b, lb } = await md5Pair("127.0.0.1", "127.0.0.1", "bgp-md5-v4", "bgp-md5-v4");
    expect(lb.md5Keys).toEqual([{ endpoint: expect.anything(), keyable: true, peers: ["127.0.0.1"] }]);
    a.start();
    b.start();
    await waitFor(() => a.state === State.Established && b.state === State.Established, { timeoutMs: 5000, what: "Established" });
    expect(a.remoteAddress).toBe("127.0.0.1");
    expect(a.remotePort).toBe(lb.port());
    expect(a.localAddress).toBe("127.0.0.1");
  });

  test("IPv6 (::1): Established with TCP-MD5", async () => {
    const { a, b, logs } = await md5Pair("::1", "::1", "bgp-md5-v6", "bgp-md5-v6");
    a.start();
    b.start();
    await waitFor(() => a.state === State.Established && b.state === State.Established, { timeoutMs: 5000, what: "Established" });
    expect(a.remoteAddress).toBe("::1");
    expect(logs.filter((l) => /unexpected|error/i.test(l))).toEqual([]);
  });

  test("IPv4 peer to a dual-stack :: listener: the key is set IPv4-mapped and it works", async () => {
    const { a, b, lb } = await md5Pair("127.0.0.1", "::", "mapped", "mapped");
    expect(lb.md5Keys[0]!.peers).toEqual(["127.0.0.1"]);
    a.start();
    b.start();
    await waitFor(() => a.state === State.Established && b.state === State.Established, { timeoutMs: 5000, what: "Established" });
  });

  // The sessions' timers run on a manual clock: once the kernel has dropped
  // a's SYN (a TCP-MD5 counter moved), 2.5 s of ConnectRetry (1 s) go by at once.
  test("a wrong password: no connection, and lastError points at TCP-MD5", async () => {
    const clock = new ManualClock();
    const { a, b } = await md5Pair("127.0.0.1", "127.0.0.1", "right", "wrong", clock);
    const drops = md5Drops();
    a.start();
    b.start();
    await waitFor(() => md5Drops() > drops, { timeoutMs: 3000, what: "the kernel to drop a SYN signed with the other key" });
    clock.advance(2500);
    expect(a.state).not.toBe(State.Established);
    expect(b.state).not.toBe(State.Established);
    expect(a.counters.established).toBe(0);
    expect(a.counters.lastError).toMatch(/TCP-MD5/);
  });

  test("no password against a keyed listener: no connection", async () => {
    const clock = new ManualClock();
    const { a, b } = await md5Pair("127.0.0.1", "127.0.0.1", undefined, "only-b", clock);
    const drops = md5Drops();
    a.start();
    b.start();
    await waitFor(() => md5Drops() > drops, { timeoutMs: 3000, what: "the keyed listener's kernel to drop an unsigned SYN" });
    clock.advance(2500);
    expect(a.counters.established).toBe(0);
    expect(b.counters.established).toBe(0);
  });

  test("keys follow sessions added to and removed from a listener that is already listening", async () => {
    const l = await listener("127.0.0.1");
    const port = l.port();
    expect(l.md5Keys[0]!.peers).toEqual([]);
    // No key on the listener: a signed connect is dropped.
    expect(await handshakes("127.0.0.1", port, "later", 1500)).toBe(false);
    const b = session({ peerAddress: "127.0.0.1", localAs: 65002, remoteAs: 65001, passive: true, password: "later" });
    l.add(b);
    expect(l.md5Keys[0]!.peers).toEqual(["127.0.0.1"]);
    expect(await handshakes("127.0.0.1", port, "later", 3000)).toBe(true);
    const a = session({ peerAddress: "127.0.0.1", peerPort: port, localAs: 65001, remoteAs: 65002, password: "later" });
    a.start();
    b.start();
    await waitFor(() => a.state === State.Established && b.state === State.Established, { timeoutMs: 5000, what: "Established" });
    await a.stop();
    await b.stop();
    l.remove(b);
    expect(l.md5Keys[0]!.peers).toEqual([]);
    expect(await handshakes("127.0.0.1", port, "later", 1500)).toBe(false);
  });

  test("two sessions for one peer: the key stays until the last one with a password goes", async () => {
    const l = await listener("127.0.0.1");
    const s1 = session({ peerAddress: "127.0.0.1", localAddress: "127.0.0.1", localAs: 65002, passive: true, password: "one" });
    const s2 = session({ peerAddress: "127.0.0.1", localAddress: "127.0.0.2", localAs: 65002, passive: true, password: "one" });
    l.add(s1);
    l.add(s2);
    l.remove(s1);
    expect(l.md5Keys[0]!.peers).toEqual(["127.0.0.1"]);
    l.remove(s2);
    expect(l.md5Keys[0]!.peers).toEqual([]);
  });

  test("raw API: onConnected comes before the first data, even when the peer talks at once", async () => {
    const ls = createTcpListenSocket("127.0.0.1", 0, [["127.0.0.1", "chatty"]]);
    const server = net.createServer((sock) => {
      sock.on("error", () => {});
      sock.end("hello");
    });
    await new Promise<void>((r) => server.listen({ fd: ls.fd } as net.ListenOptions, r));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    for (let i = 0; i < 20; i++) {
      const order: string[] = [];
      const s: net.Socket = connectTcp({ host: "127.0.0.1", port, password: "chatty", onConnected: () => order.push("connected") });
      s.on("error", (e) => order.push(`error ${e.message}`));
      s.on("data", () => order.push("data"));
      await new Promise<void>((r) => s.on("close", () => r()));
      expect(order.slice(0, 2)).toEqual(["connected", "data"]);
    }
  });

  test("raw API: set and remove a key on a listening socket; removing twice says there was none", () => {
    const ls = createTcpListenSocket("::", 0, [["127.0.0.1", "k1"], ["::1", "k2"]]);
    try {
      expect(ls.family).toBe(6);
      expect(ls.keyErrors).toEqual([]);
      expect(removeTcpMd5Key(ls.fd, 6, "127.0.0.1")).toBe(true);
      expect(removeTcpMd5Key(ls.fd, 6, "127.0.0.1")).toBe(false);
      setTcpMd5Key(ls.fd, 6, "127.0.0.1", "k3");
      expect(removeTcpMd5Key(ls.fd, 6, "::1")).toBe(true);
    } finally {
      // Never handed to the runtime: ours to close.
      const { close } = require("../../ffi/libc.ts") as typeof import("../../ffi/libc.ts");
      close(ls.fd);
    }
  });

  test("a peer that refuses (unsigned RST, dropped by the kernel) looks like silence: lastError says why", async () => {
    // A port that was just free: nothing listens there. The RST it answers with
    // carries no signature, so the kernel drops it (TcpExtTCPMD5NotFound).
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, "127.0.0.1", r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const a = session({ peerAddress: "127.0.0.1", peerPort: port, localAs: 65001, password: "nobody-home" });
    a.start();
    await waitFor(() => a.counters.lastError !== null, { timeoutMs: 3000, what: "a connect error" });
    expect(a.counters.lastError).toMatch(/no answer \(TCP-MD5/);
    expect(a.state).not.toBe(State.Established);
  });

  test("a connect that fails before the hand-over (bind to an address not on the host) is reported, not thrown", async () => {
    const a = session({ peerAddress: "127.0.0.1", peerPort: 179, localAddress: "203.0.113.254", localAs: 65001, password: "pw" });
    const logs: string[] = [];
    a.on("log", (l) => logs.push(`${l.level} ${l.msg}`));
    a.start();
    await waitFor(() => a.counters.lastError !== null, { timeoutMs: 3000, what: "a connect error" });
    expect(a.counters.lastError).toMatch(/bind: EADDRNOTAVAIL/);
    expect(logs.some((l) => l.startsWith("warn") && /connect to 127.0.0.1 failed: bind: EADDRNOTAVAIL/.test(l))).toBe(true);
    expect(a.state).not.toBe(State.Established);
  });

  test("listen errors from the FFI path name the cause", async () => {
    const l1 = await listener("127.0.0.1");
    const l2 = new Listener();
    await expect(l2.listen({ address: "127.0.0.1", port: l1.port() })).rejects.toThrow(/EADDRINUSE/);
    expect(l2.endpoints).toEqual([]);
  });
});
