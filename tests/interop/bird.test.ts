/**
 * Interop: bgpctl against a real BIRD 2 in network namespaces.
 *
 *   namespace a (bgpctl)  192.0.2.1/24 2001:db8::1/64  <-veth->  192.0.2.2/24 2001:db8::2/64  namespace b (bird)
 *
 * One lab per file; every test starts its own BIRD and bgpctl and stops them
 * afterwards. BIRD is passive unless a test says otherwise, so bgpctl's own
 * connect is what brings the session up (no connection collision to resolve).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { BirdInstance, bgpctlShowRib, createPair, ensureBinary, expectNoNotifications, firstNh, startBgpctlPeer } from "./lab.ts";
import type { BirdConfigSpec, BirdPeerSpec, BirdRoute, PairTopology, RouteSpec } from "./lab.ts";

const BGPCTL_AS = 65001;
const BIRD_AS = 65002;
const TEST_TIMEOUT = 45_000;

let t: PairTopology;

beforeAll(async () => {
  await ensureBinary();
  t = await createPair("bird");
}, 600_000);

afterEach(async () => {
  await t?.lab.stopAll();
});

afterAll(async () => {
  await t?.lab.cleanup();
});

/** BIRD in namespace b with one protocol "bgpctl" towards namespace a. */
function startBird(peer: Partial<BirdPeerSpec>, routes: RouteSpec[] = [], localAs = BIRD_AS): Promise<BirdInstance> {
  const spec: BirdConfigSpec = {
    routerId: t.addr.b4,
    localAs,
    peers: [
      {
        name: "bgpctl",
        neighbor: t.addr.a4,
        localAddress: t.addr.b4,
        remoteAs: BGPCTL_AS,
        passive: true,
        ...peer,
      },
    ],
    routes,
  };
  return BirdInstance.start(t.lab, t.b, spec, "bird");
}

async function birdRoutesFrom(bird: BirdInstance, prefixes: string[]): Promise<Map<string, BirdRoute>> {
  return t.lab.waitFor(
    async () => {
      const m = new Map((await bird.routes({ protocol: "bgpctl" })).map((r) => [r.prefix, r] as const));
      return prefixes.every((p) => m.has(p)) ? m : null;
    },
    { timeoutMs: 15_000, what: `BIRD to import ${prefixes.join(", ")} from bgpctl` },
  );
}


describe("bgpctl <-> BIRD 2", () => {
  test(
    "eBGP over IPv4 transport, IPv4 + IPv6 families, communities and large communities both ways",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({}, [
        { prefix: "198.51.100.0/24", communities: ["65002:200"], largeCommunities: ["65002:3:4"], med: 50 },
        { prefix: "2001:db8:200::/48", communities: ["65002:201"], largeCommunities: ["65002:3:5"] },
      ]);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4", "ipv6"],
        advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
        nextHops: [addr.a4, addr.a6],
        communities: ["65001:100"],
        largeCommunities: ["65001:1:2"],
      });
      const est = await peer.waitEstablished({ procs: [bird.proc] });
      expect(est.peerAs).toBe(BIRD_AS);
      expect(est.routerId).toBe(addr.b4);
      expect(est.families).toEqual(expect.arrayContaining(["ipv4-unicast", "ipv6-unicast"]));
      expect(peer.find("state", (e) => e.to === "Established")).toBeDefined();

      const proto = await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      expect(proto.neighborAs).toBe(BGPCTL_AS);
      expect(proto.neighborId).toBe(addr.a4);
      expect(proto.session).toBe("external AS4");

      // BIRD -> bgpctl
      const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [bird.proc] });
      expect(learned.get("198.51.100.0/24")).toMatchObject({
        nextHop: addr.b4,
        asPath: [BIRD_AS],
        origin: "igp",
        med: 50,
        communities: ["65002:200"],
        largeCommunities: ["65002:3:4"],
        peer: addr.b4,
      });
      const v6 = learned.get("2001:db8:200::/48");
      expect(firstNh(v6?.nextHop)).toBe(addr.b6);
      expect(v6).toMatchObject({ asPath: [BIRD_AS], communities: ["65002:201"], largeCommunities: ["65002:3:5"] });
      await peer.waitEvent("eor", (e) => e.family === "ipv4-unicast", { procs: [bird.proc] });
      await peer.waitEvent("eor", (e) => e.family === "ipv6-unicast", { procs: [bird.proc] });

      // bgpctl -> BIRD (IPv6 next hop carried in MP_REACH_NLRI)
      const got = await birdRoutesFrom(bird, ["203.0.113.0/24", "2001:db8:100::/48"]);
      expect(got.get("203.0.113.0/24")).toMatchObject({
        nextHop: addr.a4,
        asPath: [BGPCTL_AS],
        communities: ["65001:100"],
        largeCommunities: ["65001:1:2"],
      });
      expect(got.get("2001:db8:100::/48")).toMatchObject({
        nextHop: addr.a6,
        asPath: [BGPCTL_AS],
        communities: ["65001:100"],
        largeCommunities: ["65001:1:2"],
      });
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "iBGP with bgpctl passive (BIRD connects): LOCAL_PREF and empty AS path",
    async () => {
      const { lab, a, addr } = t;
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BGPCTL_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        passive: true,
        families: ["ipv4", "ipv6"],
        advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
        nextHops: [addr.a4, addr.a6],
        communities: ["65001:100"],
      });
      await lab.waitListening(a, 179, 10_000, [peer.proc]);
      const bird = await startBird({ remoteAs: BGPCTL_AS, passive: false }, [
        { prefix: "198.51.100.0/24", localPref: 200, communities: ["65001:300"] },
        { prefix: "2001:db8:200::/48", localPref: 150 },
      ], BGPCTL_AS);
      const est = await peer.waitEstablished({ procs: [bird.proc] });
      expect(est.peerAs).toBe(BGPCTL_AS);
      const proto = await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      expect(proto.session).toBe("internal AS4");

      const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [bird.proc] });
      expect(learned.get("198.51.100.0/24")).toMatchObject({
        nextHop: addr.b4,
        asPath: [],
        localPref: 200,
        communities: ["65001:300"],
      });
      expect(learned.get("2001:db8:200::/48")).toMatchObject({ asPath: [], localPref: 150 });
      expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);

      const got = await birdRoutesFrom(bird, ["203.0.113.0/24", "2001:db8:100::/48"]);
      expect(got.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [], communities: ["65001:100"] });
      expect(got.get("2001:db8:100::/48")).toMatchObject({ nextHop: addr.a6, asPath: [] });
      expect(got.get("203.0.113.0/24")?.localPref).not.toBeNull();
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "IPv6 transport session carrying IPv6 and IPv4 routes",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({ neighbor: addr.a6, localAddress: addr.b6 }, [
        { prefix: "2001:db8:200::/48", communities: ["65002:201"], largeCommunities: ["65002:3:5"] },
        { prefix: "198.51.100.0/24", communities: ["65002:200"] },
      ]);
      const peer = startBgpctlPeer(lab, a, addr.b6, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        localAddress: addr.a6,
        families: ["ipv4", "ipv6"],
        advertise: ["2001:db8:100::/48", "203.0.113.0/24"],
        nextHops: [addr.a4, addr.a6],
        largeCommunities: ["65001:1:2"],
      });
      const est = await peer.waitEstablished({ procs: [bird.proc] });
      expect(est.families).toEqual(expect.arrayContaining(["ipv4-unicast", "ipv6-unicast"]));
      const proto = await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      expect(proto.raw).toContain(`Neighbor address: ${addr.a6}`);

      const learned = await peer.waitRoutes(["2001:db8:200::/48", "198.51.100.0/24"], { procs: [bird.proc] });
      expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);
      expect(learned.get("2001:db8:200::/48")).toMatchObject({
        asPath: [BIRD_AS],
        communities: ["65002:201"],
        largeCommunities: ["65002:3:5"],
        peer: addr.b6,
      });
      expect(learned.get("198.51.100.0/24")).toMatchObject({ nextHop: addr.b4, asPath: [BIRD_AS], communities: ["65002:200"] });

      const got = await birdRoutesFrom(bird, ["2001:db8:100::/48", "203.0.113.0/24"]);
      expect(got.get("2001:db8:100::/48")).toMatchObject({ nextHop: addr.a6, asPath: [BGPCTL_AS], largeCommunities: ["65001:1:2"] });
      expect(got.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [BGPCTL_AS], largeCommunities: ["65001:1:2"] });
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "4-octet ASNs on both sides (4200000001 <-> 4200000002)",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({ remoteAs: 4200000001 }, [{ prefix: "198.51.100.0/24", asPath: [4200000009] }], 4200000002);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: 4200000002,
        localAs: 4200000001,
        routerId: addr.a4,
        families: ["ipv4"],
        advertise: ["203.0.113.0/24"],
        nextHops: [addr.a4],
      });
      const est = await peer.waitEstablished({ procs: [bird.proc] });
      expect(est.peerAs).toBe(4200000002);
      const proto = await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      expect(proto.neighborAs).toBe(4200000001);
      expect(proto.session).toBe("external AS4");
      expect(proto.neighborCapabilities).toContain("4-octet AS numbers");

      const learned = await peer.waitRoutes(["198.51.100.0/24"], { procs: [bird.proc] });
      expect(learned.get("198.51.100.0/24")?.asPath).toEqual([4200000002, 4200000009]);
      const got = await birdRoutesFrom(bird, ["203.0.113.0/24"]);
      expect(got.get("203.0.113.0/24")?.asPath).toEqual([4200000001]);
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "2-octet-only BIRD (enable as4 off): session up, AS path rebuilt from AS_PATH + AS4_PATH",
    async () => {
      const { lab, a, addr } = t;
      // BIRD without the 4-octet capability encodes 4-octet ASNs as AS_TRANS in
      // AS_PATH and sends the real ones in AS4_PATH (RFC 6793 "OLD" speaker).
      const bird = await startBird({ as4: false }, [
        { prefix: "198.51.100.0/24", asPath: [4200000005, 4200000006] },
        { prefix: "198.51.101.0/24", asPath: [65010] },
      ]);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
        advertise: ["203.0.113.0/24"],
        nextHops: [addr.a4],
      });
      const est = await peer.waitEstablished({ procs: [bird.proc] });
      expect(est.peerAs).toBe(BIRD_AS);
      const proto = await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      expect(proto.session).toBe("external");
      expect(proto.localCapabilities).not.toContain("4-octet AS numbers");
      expect(proto.neighborAs).toBe(BGPCTL_AS);

      const learned = await peer.waitRoutes(["198.51.100.0/24", "198.51.101.0/24"], { procs: [bird.proc] });
      expect(learned.get("198.51.100.0/24")?.asPath).toEqual([BIRD_AS, 4200000005, 4200000006]);
      expect(learned.get("198.51.101.0/24")?.asPath).toEqual([BIRD_AS, 65010]);
      const got = await birdRoutesFrom(bird, ["203.0.113.0/24"]);
      expect(got.get("203.0.113.0/24")?.asPath).toEqual([BGPCTL_AS]);
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "4-octet local AS against a 2-octet-only BIRD configured with AS_TRANS: BIRD refuses with Bad Peer AS",
    async () => {
      // BIRD reads the 4-octet AS capability even with `enable as4 off`, so a
      // 2-octet-only BIRD cannot peer with a 4-octet AS: it answers the OPEN
      // with NOTIFICATION 2/2, which bgpctl must report.
      const { lab, a, addr } = t;
      const bird = await startBird({ remoteAs: 23456, as4: false });
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: 4200000001,
        routerId: addr.a4,
        families: ["ipv4"],
      });
      const n = await peer.waitEvent("notification", (e) => e.direction === "received", {
        procs: [bird.proc],
        what: "a NOTIFICATION from BIRD",
      });
      expect(n.code).toBe(2);
      expect(n.subcode).toBe(2);
      expect(bird.proc.text("stderr")).toMatch(/Bad peer AS: 4200000001/);
      expect(peer.find("established")).toBeUndefined();
    },
    TEST_TIMEOUT,
  );

  test(
    "hold timer expiry: BIRD stopped with SIGSTOP, bgpctl sends NOTIFICATION 4 within ~5 s",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({ holdTime: 3, keepaliveTime: 1 });
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
      });
      const est = await peer.waitEstablished({ procs: [bird.proc] });
      expect(est.holdTime).toBe(3);
      await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      bird.pause();
      const t0 = Date.now();
      try {
        const n = await peer.waitEvent("notification", (e) => e.direction === "sent" && e.code === 4, {
          timeoutMs: 7000,
          what: "a hold-timer-expired NOTIFICATION (code 4) to be sent",
        });
        const elapsed = Date.now() - t0;
        expect(n.code).toBe(4);
        expect(elapsed).toBeLessThan(5500);
        await peer.waitEvent("state", (e) => e.from === "Established", {
          timeoutMs: 2000,
          what: "the session to leave Established",
        });
      } finally {
        bird.resume();
      }
    },
    TEST_TIMEOUT,
  );

  test(
    "BIRD administrative shutdown with a message: `birdc disable bgpctl \"maintenance window\"`",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({});
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
      });
      await peer.waitEstablished({ procs: [bird.proc] });
      await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      await bird.disable("bgpctl", "maintenance window");
      const n = await peer.waitEvent("notification", (e) => e.direction === "received", {
        timeoutMs: 10_000,
        procs: [bird.proc],
        what: "the Administrative Shutdown NOTIFICATION",
      });
      expect(n.code).toBe(6);
      expect(n.subcode).toBe(2);
      expect(n.message).toBe("maintenance window");
      expect(typeof n.text).toBe("string");
      await peer.waitEvent("state", (e) => e.from === "Established", { timeoutMs: 5000, what: "the session to leave Established" });
    },
    TEST_TIMEOUT,
  );

  test(
    "route refresh: `birdc reload in` makes bgpctl re-send its routes; `birdc reload out` keeps the session",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({}, [{ prefix: "198.51.100.0/24" }]);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4", "ipv6"],
        advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
        nextHops: [addr.a4, addr.a6],
      });
      await peer.waitEstablished({ procs: [bird.proc] });
      const proto = await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      expect(proto.neighborCapabilities).toContain("Route refresh");
      await birdRoutesFrom(bird, ["203.0.113.0/24", "2001:db8:100::/48"]);
      await peer.waitRoutes(["198.51.100.0/24"], { procs: [bird.proc] });
      const before = (await bird.protocol("bgpctl")).channels.ipv4?.importUpdatesReceived ?? 0;

      await bird.reloadIn("bgpctl");
      await peer.waitEvent("route-refresh", (e) => e.family === "ipv4-unicast" && (e.direction ?? "received") === "received", {
        timeoutMs: 10_000,
        procs: [bird.proc],
        what: "a received ROUTE-REFRESH for ipv4-unicast",
      });
      await lab.waitFor(
        async () => ((await bird.protocol("bgpctl")).channels.ipv4?.importUpdatesReceived ?? 0) > before,
        { timeoutMs: 10_000, what: "BIRD to receive bgpctl's IPv4 routes again after the ROUTE-REFRESH" },
      );
      const after = await birdRoutesFrom(bird, ["203.0.113.0/24", "2001:db8:100::/48"]);
      expect(after.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [BGPCTL_AS] });

      await bird.reloadOut("bgpctl");
      // Give both sides a moment to process the re-sent routes, then check nothing broke.
      await Bun.sleep(1000);
      expect((await bird.protocol("bgpctl")).bgpState).toBe("Established");
      expect(peer.routes().has("198.51.100.0/24")).toBe(true);
      expect(peer.running).toBe(true);
      expectNoNotifications(peer);
      expect(peer.all("state", (e) => e.from === "Established")).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  test(
    "`bgpctl show rib --json` returns every route of the peer after End-of-RIB and exits 0",
    async () => {
      const { lab, a, addr } = t;
      await startBird({ families: ["ipv4", "ipv6"] }, [
        { prefix: "198.51.100.0/25", communities: ["65002:1"] },
        { prefix: "198.51.100.128/25", largeCommunities: ["65002:2:3"] },
        { prefix: "203.0.113.0/24", med: 7 },
        { prefix: "2001:db8:200::/48" },
        { prefix: "2001:db8:201::/48", communities: ["65002:4"] },
      ]);
      const res = await bgpctlShowRib(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4", "ipv6"],
        timeoutS: 10,
      });
      expect(res.code).toBe(0);
      const prefixes = res.routes.map((r) => r.prefix).sort();
      expect(prefixes).toEqual(
        ["198.51.100.0/25", "198.51.100.128/25", "2001:db8:200::/48", "2001:db8:201::/48", "203.0.113.0/24"].sort(),
      );
      const by = new Map(res.routes.map((r) => [r.prefix, r] as const));
      expect(by.get("198.51.100.0/25")).toMatchObject({ nextHop: addr.b4, asPath: [BIRD_AS], communities: ["65002:1"] });
      expect(by.get("198.51.100.128/25")).toMatchObject({ largeCommunities: ["65002:2:3"] });
      expect(by.get("203.0.113.0/24")).toMatchObject({ med: 7 });
      expect(firstNh(by.get("2001:db8:201::/48")?.nextHop)).toBe(addr.b6);
      expect(by.get("2001:db8:201::/48")).toMatchObject({ communities: ["65002:4"], peer: addr.b4 });
      // It must have finished on End-of-RIB, not by running into --timeout 10.
      expect(res.elapsedMs).toBeLessThan(6_000);
    },
    TEST_TIMEOUT,
  );

  test(
    "SIGTERM to `bgpctl peer`: exits 0, BIRD receives Cease/Administrative Shutdown",
    async () => {
      const { lab, a, addr } = t;
      const bird = await startBird({});
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BIRD_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
      });
      await peer.waitEstablished({ procs: [bird.proc] });
      await bird.waitEstablished("bgpctl", 15_000, [peer.proc]);
      peer.proc.signal("SIGTERM");
      const exited = await peer.proc.waitExit(5000);
      expect(exited).toBe(true);
      expect(peer.proc.exitCode).toBe(0);
      await lab.waitFor(() => /bgpctl: Received: Administrative shutdown/.test(bird.proc.text("stderr")), {
        timeoutMs: 5000,
        what: "BIRD to log the received Administrative Shutdown",
      });
      expect((await bird.protocol("bgpctl")).bgpState).not.toBe("Established");
      const n = peer.find("notification", (e) => e.direction === "sent");
      expect(n).toMatchObject({ code: 6, subcode: 2 });
    },
    TEST_TIMEOUT,
  );
});
