/**
 * Interop: TCP-MD5 signatures (RFC 2385) between `bgpctl peer --password` and
 * BIRD 2 (`password "..."`) in network namespaces.
 *
 *   namespace a (bgpctl)  192.0.2.1/24 2001:db8::1/64  <-veth->  192.0.2.2/24 2001:db8::2/64  namespace b (bird)
 *
 * With the same password: Established and a route each way, with bgpctl
 * connecting (BIRD passive) and with bgpctl accepting (BIRD active), over
 * IPv4 and IPv6 transport, plus an IPv4 peer accepted on a dual-stack `::`
 * listener (key set in IPv4-mapped form); `ss` shows the key on the
 * connection. With a wrong password, without a password on one side: no
 * session within a bounded time, and the kernel counters of the dropping
 * side (TcpExtTCPMD5Failure / TCPMD5NotFound / TCPMD5Unexpected in that
 * namespace's /proc/net/netstat) go up.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { BGPCTL_BIN, BirdInstance, expectNoNotifications, run, startBgpctlPeer, usePair } from "./lab.ts";
import { sleep } from "../support/wait.ts";
import type { BgpctlPeer, BirdConfigSpec, BirdPeerSpec, PairTopology } from "./lab.ts";

const BGPCTL_AS = 65001;
const BIRD_AS = 65002;
const TEST_TIMEOUT = 45_000;
/** How long a mismatched pair is watched for a session that must not come up. */
const NO_SESSION_MS = 7_000;
const PASSWORD = "bgpctl-md5 secret/42";

let t: PairTopology;

usePair("md5", (p) => (t = p));

type Transport = "ipv4" | "ipv6";

function addrs(tr: Transport) {
  return tr === "ipv4" ? { bgpctl: t.addr.a4, bird: t.addr.b4 } : { bgpctl: t.addr.a6, bird: t.addr.b6 };
}

/** BIRD in namespace b with protocol "bgpctl" towards namespace a over `tr`, announcing one route per family. */
function startBird(tr: Transport, password: string | null, peer: Partial<BirdPeerSpec> = {}): Promise<BirdInstance> {
  const a = addrs(tr);
  const spec: BirdConfigSpec = {
    routerId: t.addr.b4,
    localAs: BIRD_AS,
    peers: [
      {
        name: "bgpctl",
        neighbor: a.bgpctl,
        localAddress: a.bird,
        remoteAs: BGPCTL_AS,
        passive: true,
        families: ["ipv4", "ipv6"],
        extra: password === null ? [] : [`password "${password}";`],
        ...peer,
      },
    ],
    routes: [{ prefix: "198.51.100.0/24" }, { prefix: "2001:db8:200::/48" }],
  };
  return BirdInstance.start(t.lab, t.b, spec, "bird");
}

function startBgpctl(tr: Transport, o: { password?: string; passwordFile?: string; passive?: boolean; localAddress?: string } = {}): BgpctlPeer {
  const a = addrs(tr);
  const extraArgs = ["--connect-retry", "2"];
  if (o.password !== undefined) extraArgs.push("--password", o.password);
  if (o.passwordFile !== undefined) extraArgs.push("--password-file", o.passwordFile);
  return startBgpctlPeer(t.lab, t.a, a.bird, {
    remoteAs: BIRD_AS,
    localAs: BGPCTL_AS,
    routerId: t.addr.a4,
    passive: o.passive,
    localAddress: o.localAddress ?? (o.passive ? undefined : a.bgpctl),
    families: ["ipv4", "ipv6"],
    advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
    nextHops: [t.addr.a4, t.addr.a6],
    extraArgs,
  });
}

/** The TCP-MD5 counters of a namespace (TcpExt in /proc/net/netstat). */
async function md5Counters(ns: string): Promise<{ failure: number; notFound: number; unexpected: number }> {
  const r = await t.lab.exec(ns, ["cat", "/proc/net/netstat"]);
  if (r.code !== 0) throw new Error(`cannot read /proc/net/netstat in ${ns}: ${r.stderr}`);
  const lines = r.stdout.split("\n").filter((l) => l.startsWith("TcpExt:"));
  if (lines.length < 2) throw new Error(`no TcpExt lines in /proc/net/netstat:\n${r.stdout}`);
  const names = lines[0]!.trim().split(/\s+/);
  const values = lines[1]!.trim().split(/\s+/);
  const get = (n: string): number => {
    const i = names.indexOf(n);
    if (i < 0) throw new Error(`no ${n} in TcpExt (kernel without TCP-MD5 counters?): ${names.join(" ")}`);
    return Number(values[i]);
  };
  return { failure: get("TCPMD5Failure"), notFound: get("TCPMD5NotFound"), unexpected: get("TCPMD5Unexpected") };
}

/** `ss` lines of the BGP connection(s) in `ns` with their extended info (md5keys for keyed sockets). */
async function bgpSockets(ns: string, state: "established" | "listening"): Promise<string> {
  const r = await t.lab.exec(ns, ["ss", "-tnie", "state", state, "( sport = :179 or dport = :179 )"]);
  return r.stdout;
}

/** Both sides Established, BIRD's route learned by bgpctl and bgpctl's by BIRD. */
async function expectSessionAndRoutes(peer: BgpctlPeer, bird: BirdInstance, tr: Transport): Promise<void> {
  const est = await peer.waitEstablished({ procs: [bird.proc] });
  expect(est.peerAs).toBe(BIRD_AS);
  await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
  const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [bird.proc] });
  expect(learned.get("198.51.100.0/24")).toMatchObject({ asPath: [BIRD_AS] });
  const got = await t.lab.waitFor(
    async () => {
      const m = new Map((await bird.routes({ protocol: "bgpctl" })).map((r) => [r.prefix, r] as const));
      return m.has("203.0.113.0/24") && m.has("2001:db8:100::/48") ? m : null;
    },
    { timeoutMs: 15_000, what: "BIRD to import bgpctl's routes", procs: [peer.proc, bird.proc] },
  );
  expect(got.get("203.0.113.0/24")).toMatchObject({ asPath: [BGPCTL_AS] });
  // The connection itself carries the key, on both ends.
  const a = addrs(tr);
  for (const ns of [t.a, t.b]) {
    const ss = await bgpSockets(ns, "established");
    expect(ss).toContain(a.bird);
    expect(ss).toMatch(/md5keys:/);
  }
  expectNoNotifications(peer);
}

/** Watch a mismatched pair for NO_SESSION_MS: neither side may reach Established. */
async function expectNoSession(peer: BgpctlPeer, bird: BirdInstance): Promise<void> {
  const end = Date.now() + NO_SESSION_MS;
  while (Date.now() < end) {
    expect(peer.find("established")).toBeUndefined();
    expect((await bird.protocol("bgpctl")).bgpState).not.toBe("Established");
    expect(peer.running).toBe(true);
    await sleep(500);
  }
  expect(peer.find("established")).toBeUndefined();
  expect((await bird.protocol("bgpctl")).bgpState).not.toBe("Established");
}

function warnings(peer: BgpctlPeer): string[] {
  return peer
    .events()
    .filter((e) => e.event === "log" && e.level === "warn")
    .map((e) => String(e.msg));
}

describe("bgpctl <-> BIRD 2 with TCP-MD5", () => {
  for (const tr of ["ipv4", "ipv6"] as const) {
    test(
      `${tr} transport, bgpctl connects (BIRD passive): Established, routes both ways, keyed sockets`,
      async () => {
        const bird = await startBird(tr, PASSWORD);
        const peer = startBgpctl(tr, { password: PASSWORD });
        await expectSessionAndRoutes(peer, bird, tr);
      },
      TEST_TIMEOUT,
    );

    test(
      `${tr} transport, bgpctl accepts (--passive, BIRD connects): Established, routes both ways, keyed listener`,
      async () => {
        const file = t.lab.path(`pw-${tr}`);
        writeFileSync(file, `${PASSWORD}\n`, { mode: 0o600 });
        const peer = startBgpctl(tr, { passwordFile: file, passive: true });
        await t.lab.waitListening(t.a, 179, 5000, [peer.proc]);
        const listening = await bgpSockets(t.a, "listening");
        expect(listening).toContain(`md5keys:${addrs(tr).bird}/${tr === "ipv4" ? 32 : 128}`);
        const bird = await startBird(tr, PASSWORD, { passive: false });
        await expectSessionAndRoutes(peer, bird, tr);
      },
      TEST_TIMEOUT,
    );
  }

  test(
    "IPv4 peer accepted on a dual-stack :: listener: the key is set IPv4-mapped",
    async () => {
      const peer = startBgpctl("ipv4", { password: PASSWORD, passive: true, localAddress: "::" });
      await t.lab.waitListening(t.a, 179, 5000, [peer.proc]);
      const listening = await bgpSockets(t.a, "listening");
      // One dual-stack socket (not v6only), keyed through the mapped address; the kernel files it as an IPv4 key.
      expect(listening).toMatch(/\*:179\b[^\n]*v6only:0/);
      expect(listening).toContain(`md5keys:${t.addr.b4}/32`);
      const bird = await startBird("ipv4", PASSWORD, { passive: false });
      await expectSessionAndRoutes(peer, bird, "ipv4");
    },
    TEST_TIMEOUT,
  );

  test(
    "wrong password, bgpctl connecting: no session; BIRD's kernel counts TCPMD5Failure; bgpctl says why",
    async () => {
      const bird = await startBird("ipv4", PASSWORD);
      const before = await md5Counters(t.b);
      const peer = startBgpctl("ipv4", { password: "not the password" });
      await expectNoSession(peer, bird);
      const after = await md5Counters(t.b);
      expect(after.failure).toBeGreaterThan(before.failure);
      expect(warnings(peer).some((w) => /TCP-MD5.*same password/.test(w))).toBe(true);
    },
    TEST_TIMEOUT,
  );

  test(
    "wrong password, bgpctl accepting: no session; bgpctl's kernel counts TCPMD5Failure",
    async () => {
      const peer = startBgpctl("ipv6", { password: "not the password", passive: true });
      await t.lab.waitListening(t.a, 179, 5000, [peer.proc]);
      const before = await md5Counters(t.a);
      const bird = await startBird("ipv6", PASSWORD, { passive: false });
      await expectNoSession(peer, bird);
      const after = await md5Counters(t.a);
      expect(after.failure).toBeGreaterThan(before.failure);
    },
    TEST_TIMEOUT,
  );

  test(
    "bgpctl without a password against BIRD with one: no session; BIRD's kernel counts TCPMD5NotFound",
    async () => {
      const bird = await startBird("ipv4", PASSWORD);
      const before = await md5Counters(t.b);
      const peer = startBgpctl("ipv4", {});
      await expectNoSession(peer, bird);
      const after = await md5Counters(t.b);
      expect(after.notFound).toBeGreaterThan(before.notFound);
    },
    TEST_TIMEOUT,
  );

  test(
    "bgpctl with a password against BIRD without one: no session; BIRD's kernel counts TCPMD5Unexpected",
    async () => {
      const bird = await startBird("ipv4", null);
      const before = await md5Counters(t.b);
      const peer = startBgpctl("ipv4", { password: PASSWORD });
      await expectNoSession(peer, bird);
      const after = await md5Counters(t.b);
      expect(after.unexpected).toBeGreaterThan(before.unexpected);
    },
    TEST_TIMEOUT,
  );

  test(
    "the CLI refuses a password over 80 bytes and --password on the daemon forms",
    async () => {
      const long = await run([BGPCTL_BIN, "peer", t.addr.b4, "--remote-as", "1", "--local-as", "2", "--password", "x".repeat(81)], { timeoutMs: 15_000 });
      expect(long.code).not.toBe(0);
      expect(long.stderr).toMatch(/--password: TCP-MD5 password is 81 bytes long; the kernel takes at most 80/);
      const add = await run([BGPCTL_BIN, "peer", "add", t.addr.b4, "--remote-as", "1", "--password", "x"], { timeoutMs: 15_000 });
      expect(add.code).not.toBe(0);
      expect(add.stderr).toMatch(/--password applies to a foreground session/);
    },
    TEST_TIMEOUT,
  );
});
