/**
 * Interop: bgpctl against a real GoBGP (gobgpd 3.x) in network namespaces.
 *
 *   namespace a (bgpctl)  192.0.2.1/24 2001:db8::1/64  <-veth->  192.0.2.2/24 2001:db8::2/64  namespace b (gobgpd)
 *
 * One lab per file; every test starts its own gobgpd and bgpctl. gobgpd is
 * passive (its own connect loop waits >= 5 s between attempts), so bgpctl's
 * connect brings the session up quickly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { GobgpInstance, bgpctlShowRib, createPair, ensureBinary, expectNoNotifications, firstNh, startBgpctlPeer } from "./lab.ts";
import type { GobgpNeighborSpec, GobgpRoute, PairTopology, RouteSpec } from "./lab.ts";

const BGPCTL_AS = 65001;
const GOBGP_AS = 65002;
const TEST_TIMEOUT = 45_000;

let t: PairTopology;

beforeAll(async () => {
  await ensureBinary();
  t = await createPair("gobgp");
}, 600_000);

afterEach(async () => {
  await t?.lab.stopAll();
});

afterAll(async () => {
  await t?.lab.cleanup();
});

/** gobgpd in namespace b with one passive neighbor towards namespace a, plus routes in its global RIB. */
async function startGobgp(
  neighbor: Partial<GobgpNeighborSpec>,
  routes: (RouteSpec & { origin?: "igp" | "egp" | "incomplete" })[] = [],
  as = GOBGP_AS,
): Promise<GobgpInstance> {
  const g = await GobgpInstance.start(
    t.lab,
    t.b,
    {
      as,
      routerId: t.addr.b4,
      neighbors: [{ address: t.addr.a4, remoteAs: BGPCTL_AS, passive: true, ...neighbor }],
    },
    "gobgpd",
  );
  for (const r of routes) await g.addRoute(r);
  return g;
}

async function gobgpRoutes(g: GobgpInstance, prefixes: string[]): Promise<Map<string, GobgpRoute>> {
  return t.lab.waitFor(
    async () => {
      const all = [...(await g.rib("ipv4")), ...(await g.rib("ipv6"))];
      const m = new Map(all.filter((r) => r.neighbor !== null && r.neighbor !== "").map((r) => [r.prefix, r] as const));
      return prefixes.every((p) => m.has(p)) ? m : null;
    },
    { timeoutMs: 15_000, what: `GoBGP to learn ${prefixes.join(", ")} from bgpctl` },
  );
}


describe("bgpctl <-> GoBGP", () => {
  test(
    "eBGP over IPv4 transport, IPv4 + IPv6 families, communities and large communities both ways",
    async () => {
      const { lab, a, addr } = t;
      const g = await startGobgp({}, [
        {
          prefix: "198.51.100.0/24",
          nextHop: addr.b4,
          origin: "igp",
          med: 50,
          communities: ["65002:200"],
          largeCommunities: ["65002:3:4"],
        },
        { prefix: "2001:db8:200::/48", nextHop: addr.b6, communities: ["65002:201"], largeCommunities: ["65002:3:5"] },
      ]);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: GOBGP_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4", "ipv6"],
        advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
        nextHops: [addr.a4, addr.a6],
        communities: ["65001:100"],
        largeCommunities: ["65001:1:2"],
      });
      const est = await peer.waitEstablished({ procs: [g.proc] });
      expect(est.peerAs).toBe(GOBGP_AS);
      expect(est.routerId).toBe(addr.b4);
      expect(est.families).toEqual(expect.arrayContaining(["ipv4-unicast", "ipv6-unicast"]));
      const n = await g.waitEstablished(addr.a4, 15_000, [peer.proc]);
      expect(n.routerId).toBe(addr.a4);
      expect(n.remoteCapabilities).toEqual(expect.arrayContaining(["MultiProtocolCapability", "FourOctetASNCapability"]));

      const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [g.proc] });
      expect(learned.get("198.51.100.0/24")).toMatchObject({
        nextHop: addr.b4,
        asPath: [GOBGP_AS],
        origin: "igp",
        med: 50,
        communities: ["65002:200"],
        largeCommunities: ["65002:3:4"],
        peer: addr.b4,
      });
      expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);
      expect(learned.get("2001:db8:200::/48")).toMatchObject({
        asPath: [GOBGP_AS],
        communities: ["65002:201"],
        largeCommunities: ["65002:3:5"],
      });
      // No End-of-RIB check here: GoBGP sends End-of-RIB only when graceful
      // restart is negotiated (see the `show rib` test).

      const got = await gobgpRoutes(g, ["203.0.113.0/24", "2001:db8:100::/48"]);
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
    "iBGP session: LOCAL_PREF and empty AS path both ways",
    async () => {
      const { lab, a, addr } = t;
      const g = await startGobgp(
        {},
        [
          { prefix: "198.51.100.0/24", nextHop: addr.b4, localPref: 200, communities: ["65001:300"] },
          { prefix: "2001:db8:200::/48", nextHop: addr.b6, localPref: 150 },
        ],
        BGPCTL_AS,
      );
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: BGPCTL_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4", "ipv6"],
        advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
        nextHops: [addr.a4, addr.a6],
        largeCommunities: ["65001:1:2"],
      });
      const est = await peer.waitEstablished({ procs: [g.proc] });
      expect(est.peerAs).toBe(BGPCTL_AS);
      await g.waitEstablished(addr.a4, 15_000, [peer.proc]);

      const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [g.proc] });
      expect(learned.get("198.51.100.0/24")).toMatchObject({
        nextHop: addr.b4,
        asPath: [],
        localPref: 200,
        communities: ["65001:300"],
      });
      expect(learned.get("2001:db8:200::/48")).toMatchObject({ asPath: [], localPref: 150 });
      expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);

      const got = await gobgpRoutes(g, ["203.0.113.0/24", "2001:db8:100::/48"]);
      expect(got.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [], largeCommunities: ["65001:1:2"] });
      expect(got.get("2001:db8:100::/48")).toMatchObject({ nextHop: addr.a6, asPath: [] });
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "IPv6 transport session carrying IPv6 and IPv4 routes",
    async () => {
      const { lab, a, addr } = t;
      const g = await startGobgp({ address: addr.a6, localAddress: addr.b6 }, [
        { prefix: "2001:db8:200::/48", nextHop: addr.b6, communities: ["65002:201"] },
        // GoBGP needs an explicit IPv4 next hop for IPv4 routes over an IPv6 session.
        { prefix: "198.51.100.0/24", nextHop: addr.b4, largeCommunities: ["65002:3:4"] },
      ]);
      const peer = startBgpctlPeer(lab, a, addr.b6, {
        remoteAs: GOBGP_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        localAddress: addr.a6,
        families: ["ipv4", "ipv6"],
        advertise: ["2001:db8:100::/48", "203.0.113.0/24"],
        nextHops: [addr.a4, addr.a6],
        communities: ["65001:100"],
      });
      await peer.waitEstablished({ procs: [g.proc] });
      await g.waitEstablished(addr.a6, 15_000, [peer.proc]);

      const learned = await peer.waitRoutes(["2001:db8:200::/48", "198.51.100.0/24"], { procs: [g.proc] });
      expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);
      expect(learned.get("2001:db8:200::/48")).toMatchObject({ asPath: [GOBGP_AS], communities: ["65002:201"], peer: addr.b6 });
      expect(learned.get("198.51.100.0/24")).toMatchObject({ nextHop: addr.b4, asPath: [GOBGP_AS], largeCommunities: ["65002:3:4"] });

      const got = await gobgpRoutes(g, ["2001:db8:100::/48", "203.0.113.0/24"]);
      expect(got.get("2001:db8:100::/48")).toMatchObject({ nextHop: addr.a6, asPath: [BGPCTL_AS], communities: ["65001:100"] });
      expect(got.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [BGPCTL_AS], communities: ["65001:100"] });
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "4-octet ASNs on both sides (4200000001 <-> 4200000002)",
    async () => {
      const { lab, a, addr } = t;
      const g = await startGobgp({ remoteAs: 4200000001 }, [{ prefix: "198.51.100.0/24", nextHop: addr.b4, asPath: [4200000009, 65010] }], 4200000002);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: 4200000002,
        localAs: 4200000001,
        routerId: addr.a4,
        families: ["ipv4"],
        advertise: ["203.0.113.0/24"],
        nextHops: [addr.a4],
      });
      const est = await peer.waitEstablished({ procs: [g.proc] });
      expect(est.peerAs).toBe(4200000002);
      const n = await g.waitEstablished(addr.a4, 15_000, [peer.proc]);
      expect(n.peerAs).toBe(4200000001);
      expect(n.remoteCapabilities).toContain("FourOctetASNCapability");

      const learned = await peer.waitRoutes(["198.51.100.0/24"], { procs: [g.proc] });
      expect(learned.get("198.51.100.0/24")?.asPath).toEqual([4200000002, 4200000009, 65010]);
      const got = await gobgpRoutes(g, ["203.0.113.0/24"]);
      expect(got.get("203.0.113.0/24")?.asPath).toEqual([4200000001]);
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "hold timer expiry: gobgpd stopped with SIGSTOP, bgpctl sends NOTIFICATION 4 within ~5 s",
    async () => {
      const { lab, a, addr } = t;
      const g = await startGobgp({ holdTime: 3, keepaliveInterval: 1 });
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: GOBGP_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
      });
      const est = await peer.waitEstablished({ procs: [g.proc] });
      expect(est.holdTime).toBe(3);
      await g.waitEstablished(addr.a4, 15_000, [peer.proc]);
      g.pause();
      const t0 = Date.now();
      try {
        const n = await peer.waitEvent("notification", (e) => e.direction === "sent" && e.code === 4, {
          timeoutMs: 7000,
          what: "a hold-timer-expired NOTIFICATION (code 4) to be sent",
        });
        expect(n.code).toBe(4);
        expect(Date.now() - t0).toBeLessThan(5500);
        await peer.waitEvent("state", (e) => e.from === "Established", {
          timeoutMs: 2000,
          what: "the session to leave Established",
        });
      } finally {
        g.resume();
      }
    },
    TEST_TIMEOUT,
  );

  test(
    "GoBGP administrative shutdown with a message: `gobgp neighbor ADDR shutdown --reason \"maintenance window\"`",
    async () => {
      const { lab, a, addr } = t;
      const g = await startGobgp({});
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: GOBGP_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
      });
      await peer.waitEstablished({ procs: [g.proc] });
      await g.waitEstablished(addr.a4, 15_000, [peer.proc]);
      await g.disable(addr.a4, "maintenance window");
      const n = await peer.waitEvent("notification", (e) => e.direction === "received", {
        timeoutMs: 10_000,
        procs: [g.proc],
        what: "the Administrative Shutdown NOTIFICATION",
      });
      expect(n.code).toBe(6);
      expect(n.subcode).toBe(2);
      expect(n.message).toBe("maintenance window");
      await peer.waitEvent("state", (e) => e.from === "Established", { timeoutMs: 5000, what: "the session to leave Established" });
    },
    TEST_TIMEOUT,
  );

  test(
    "route refresh capability advertised; `gobgp neighbor ADDR softresetout` re-sends and the session stays up",
    async () => {
      // GoBGP 3.x has no CLI verb that sends ROUTE-REFRESH (`softresetin` only
      // re-filters its own Adj-RIB-In), so this checks the capability and that
      // re-sent routes are taken in stride. The ROUTE-REFRESH path is covered by
      // the BIRD suite (`birdc reload in`).
      const { lab, a, addr } = t;
      const g = await startGobgp({}, [{ prefix: "198.51.100.0/24", nextHop: addr.b4, communities: ["65002:200"] }]);
      const peer = startBgpctlPeer(lab, a, addr.b4, {
        remoteAs: GOBGP_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4"],
        advertise: ["203.0.113.0/24"],
        nextHops: [addr.a4],
      });
      await peer.waitEstablished({ procs: [g.proc] });
      const n = await g.waitEstablished(addr.a4, 15_000, [peer.proc]);
      expect(n.remoteCapabilities).toContain("RouteRefreshCapability");
      await peer.waitRoutes(["198.51.100.0/24"], { procs: [g.proc] });
      await gobgpRoutes(g, ["203.0.113.0/24"]);
      const sentBefore = Number((await g.neighbor(addr.a4)).messages.sent.update ?? 0);

      await g.softResetOut(addr.a4);
      await lab.waitFor(async () => Number((await g.neighbor(addr.a4)).messages.sent.update ?? 0) > sentBefore, {
        timeoutMs: 10_000,
        what: "GoBGP to re-send its routes after softresetout",
      });
      await Bun.sleep(1000);
      expect((await g.neighbor(addr.a4)).state).toBe("established");
      expect(peer.routes().get("198.51.100.0/24")).toMatchObject({ nextHop: addr.b4, communities: ["65002:200"] });
      expect((await gobgpRoutes(g, ["203.0.113.0/24"])).get("203.0.113.0/24")).toMatchObject({ asPath: [BGPCTL_AS] });
      expect(peer.running).toBe(true);
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );

  test(
    "`bgpctl show rib --json` returns every route of the peer after End-of-RIB and exits 0",
    async () => {
      // GoBGP sends End-of-RIB only when graceful restart is negotiated: it is
      // enabled on GoBGP's side here, so bgpctl gets End-of-RIB as soon as it
      // advertises the graceful restart capability too.
      const { lab, a, addr } = t;
      await startGobgp({ gracefulRestart: true }, [
        { prefix: "198.51.100.0/25", nextHop: addr.b4, communities: ["65002:1"] },
        { prefix: "198.51.100.128/25", nextHop: addr.b4, largeCommunities: ["65002:2:3"] },
        { prefix: "203.0.113.0/24", nextHop: addr.b4, med: 7 },
        { prefix: "2001:db8:200::/48", nextHop: addr.b6 },
        { prefix: "2001:db8:201::/48", nextHop: addr.b6, communities: ["65002:4"] },
      ]);
      const res = await bgpctlShowRib(lab, a, addr.b4, {
        remoteAs: GOBGP_AS,
        localAs: BGPCTL_AS,
        routerId: addr.a4,
        families: ["ipv4", "ipv6"],
        timeoutS: 10,
      });
      expect(res.code).toBe(0);
      expect(res.routes.map((r) => r.prefix).sort()).toEqual(
        ["198.51.100.0/25", "198.51.100.128/25", "2001:db8:200::/48", "2001:db8:201::/48", "203.0.113.0/24"].sort(),
      );
      const by = new Map(res.routes.map((r) => [r.prefix, r] as const));
      expect(by.get("198.51.100.0/25")).toMatchObject({ nextHop: addr.b4, asPath: [GOBGP_AS], communities: ["65002:1"] });
      expect(by.get("198.51.100.128/25")).toMatchObject({ largeCommunities: ["65002:2:3"] });
      expect(by.get("203.0.113.0/24")).toMatchObject({ med: 7 });
      expect(firstNh(by.get("2001:db8:201::/48")?.nextHop)).toBe(addr.b6);
      expect(by.get("2001:db8:201::/48")).toMatchObject({ communities: ["65002:4"], peer: addr.b4 });
      // It must have finished on End-of-RIB, not by running into --timeout 10.
      expect(res.elapsedMs).toBeLessThan(6_000);
    },
    TEST_TIMEOUT,
  );

  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    test(
      `${sig} to \`bgpctl peer\`: exits 0, GoBGP receives Cease/Administrative Shutdown`,
      async () => {
        const { lab, a, addr } = t;
        const g = await startGobgp({});
        const peer = startBgpctlPeer(lab, a, addr.b4, {
          remoteAs: GOBGP_AS,
          localAs: BGPCTL_AS,
          routerId: addr.a4,
          families: ["ipv4"],
        });
        await peer.waitEstablished({ procs: [g.proc] });
        await g.waitEstablished(addr.a4, 15_000, [peer.proc]);
        peer.proc.signal(sig);
        expect(await peer.proc.waitExit(5000)).toBe(true);
        expect(peer.proc.exitCode).toBe(0);
        await lab.waitFor(
          () => /notification-received code 6\(cease\) subcode 2\(administrative shutdown\)/.test(g.proc.text()),
          { timeoutMs: 5000, what: "GoBGP to log the received Administrative Shutdown" },
        );
        expect((await g.neighbor(addr.a4)).state).not.toBe("established");
        expect(peer.find("notification", (e) => e.direction === "sent")).toMatchObject({ code: 6, subcode: 2 });
      },
      TEST_TIMEOUT,
    );
  }
});
