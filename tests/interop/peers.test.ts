/**
 * Interop: `bgpctl peer` and `bgpctl show rib` against real peers, BIRD 2 and
 * GoBGP (gobgpd 3.x), in network namespaces.
 *
 *   namespace a (bgpctl)  192.0.2.1/24 2001:db8::1/64  <-veth->  192.0.2.2/24 2001:db8::2/64  namespace b (peer)
 *
 * Every shared scenario runs once per peer through that peer's adapter
 * (lab.ts BIRD_PEER, GOBGP_PEER: config writer, start/stop, the routes it
 * learned, its view of the session, shutdown). The scenarios that genuinely
 * differ (a 2-octet-only BIRD; how each daemon re-sends or asks for routes)
 * follow, one block per peer. One lab for the file; every test starts its own
 * peer and bgpctl and stops them afterwards. The peer is passive unless a
 * test says otherwise, so bgpctl's own connect brings the session up.
 */
import { describe, expect, test } from "bun:test";
import {
  BIRD_PEER,
  type BgpctlPeer,
  type BgpctlSessionOptions,
  GOBGP_PEER,
  type PairTopology,
  type PeerAdapter,
  type PeerSpec,
  type RunningPeer,
  bgpctlShowRib,
  expectNoNotifications,
  firstNh,
  peerRoutesFrom,
  startBgpctlPeer,
  usePair,
} from "./lab.ts";
import { sleep } from "../support/wait.ts";

const BGPCTL_AS = 65001;
const PEER_AS = 65002;
const TEST_TIMEOUT = 45_000;

let t: PairTopology;

usePair("peers", (p) => (t = p));

/** The peer in namespace b: eBGP AS 65002 towards bgpctl's IPv4 address unless `over` says otherwise. */
function startPeer<D>(P: PeerAdapter<D>, over: Partial<PeerSpec> = {}): Promise<RunningPeer<D>> {
  return P.start(t, { localAs: PEER_AS, remoteAs: BGPCTL_AS, neighbor: t.addr.a4, ...over });
}

/** The routes the peer learned from bgpctl, once all of `prefixes` are there. */
function learnedFrom(P: PeerAdapter<unknown>, p: RunningPeer<unknown>, prefixes: string[]) {
  return peerRoutesFrom(t.lab, p, prefixes, P.name);
}

/** `bgpctl peer` towards the peer's IPv4 address, eBGP 65001 -> 65002, IPv4 only unless told otherwise. */
function startBgpctl(opts: Partial<BgpctlSessionOptions> = {}, peerAddress = t.addr.b4): BgpctlPeer {
  return startBgpctlPeer(t.lab, t.a, peerAddress, {
    remoteAs: PEER_AS,
    localAs: BGPCTL_AS,
    routerId: t.addr.a4,
    families: ["ipv4"],
    ...opts,
  });
}

/** The peer (passive unless `spec` says otherwise), then `bgpctl peer` connecting to it; both sides waited until Established. */
async function establish<D>(P: PeerAdapter<D>, spec: Partial<PeerSpec> = {}, opts: Partial<BgpctlSessionOptions> = {}, peerAddress = t.addr.b4) {
  const p = await startPeer(P, spec);
  const peer = startBgpctl(opts, peerAddress);
  const est = await peer.waitEstablished({ procs: [p.proc] });
  const view = await p.waitEstablished(15_000, [peer.proc]);
  return { p, peer, est, view };
}

const PEERS: readonly PeerAdapter<unknown>[] = [BIRD_PEER, GOBGP_PEER];

for (const P of PEERS) {
  describe(`bgpctl <-> ${P.name}`, () => {
    test(
      "eBGP over IPv4 transport, IPv4 + IPv6 families, communities and large communities both ways",
      async () => {
        const { addr } = t;
        const { p, peer, est, view } = await establish(
          P,
          {
            endOfRib: true,
            routes: [
              { prefix: "198.51.100.0/24", origin: "igp", communities: ["65002:200"], largeCommunities: ["65002:3:4"], med: 50 },
              { prefix: "2001:db8:200::/48", communities: ["65002:201"], largeCommunities: ["65002:3:5"] },
            ],
          },
          {
            families: ["ipv4", "ipv6"],
            advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
            nextHops: [addr.a4, addr.a6],
            communities: ["65001:100"],
            largeCommunities: ["65001:1:2"],
          },
        );
        expect(est.peerAs).toBe(PEER_AS);
        expect(est.routerId).toBe(addr.b4);
        expect(est.families).toEqual(expect.arrayContaining(["ipv4-unicast", "ipv6-unicast"]));
        expect(peer.find("state", (e) => e.to === "Established")).toBeDefined();
        expect(view.neighborAs).toBe(BGPCTL_AS);
        expect(view.neighborId).toBe(addr.a4);
        expect(view.capabilities).toEqual(expect.arrayContaining(["multiprotocol", "four-octet-as"]));

        // peer -> bgpctl
        const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [p.proc] });
        expect(learned.get("198.51.100.0/24")).toMatchObject({
          nextHop: addr.b4,
          asPath: [PEER_AS],
          origin: "igp",
          med: 50,
          communities: ["65002:200"],
          largeCommunities: ["65002:3:4"],
          peer: addr.b4,
        });
        const v6 = learned.get("2001:db8:200::/48");
        expect(firstNh(v6?.nextHop)).toBe(addr.b6);
        expect(v6).toMatchObject({ asPath: [PEER_AS], communities: ["65002:201"], largeCommunities: ["65002:3:5"] });
        await peer.waitEvent("eor", (e) => e.family === "ipv4-unicast", { procs: [p.proc] });
        await peer.waitEvent("eor", (e) => e.family === "ipv6-unicast", { procs: [p.proc] });

        // bgpctl -> peer (IPv6 next hop carried in MP_REACH_NLRI)
        const got = await learnedFrom(P, p, ["203.0.113.0/24", "2001:db8:100::/48"]);
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

    // BIRD connects promptly, so bgpctl waits passively; gobgpd's connect loop
    // waits >= 5 s, so there bgpctl connects.
    test(
      `iBGP (${P.connectsPromptly ? `bgpctl passive, ${P.name} connects` : "bgpctl connects"}): LOCAL_PREF and empty AS path both ways`,
      async () => {
        const { lab, a, addr } = t;
        const spec: Partial<PeerSpec> = {
          localAs: BGPCTL_AS,
          connects: P.connectsPromptly,
          routes: [
            { prefix: "198.51.100.0/24", localPref: 200, communities: ["65001:300"] },
            { prefix: "2001:db8:200::/48", localPref: 150 },
          ],
        };
        const bgpctl = () =>
          startBgpctl({
            remoteAs: BGPCTL_AS,
            passive: P.connectsPromptly,
            families: ["ipv4", "ipv6"],
            advertise: ["203.0.113.0/24", "2001:db8:100::/48"],
            nextHops: [addr.a4, addr.a6],
            communities: ["65001:100"],
            largeCommunities: ["65001:1:2"],
          });
        let peer: BgpctlPeer;
        let p: RunningPeer<unknown>;
        if (P.connectsPromptly) {
          peer = bgpctl();
          await lab.waitListening(a, 179, 10_000, [peer.proc]);
          p = await startPeer(P, spec);
        } else {
          p = await startPeer(P, spec);
          peer = bgpctl();
        }
        const est = await peer.waitEstablished({ procs: [p.proc] });
        expect(est.peerAs).toBe(BGPCTL_AS);
        expect((await p.waitEstablished(15_000, [peer.proc])).neighborAs).toBe(BGPCTL_AS);

        const learned = await peer.waitRoutes(["198.51.100.0/24", "2001:db8:200::/48"], { procs: [p.proc] });
        expect(learned.get("198.51.100.0/24")).toMatchObject({
          nextHop: addr.b4,
          asPath: [],
          localPref: 200,
          communities: ["65001:300"],
        });
        expect(learned.get("2001:db8:200::/48")).toMatchObject({ asPath: [], localPref: 150 });
        expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);

        const got = await learnedFrom(P, p, ["203.0.113.0/24", "2001:db8:100::/48"]);
        expect(got.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [], communities: ["65001:100"], largeCommunities: ["65001:1:2"] });
        expect(got.get("2001:db8:100::/48")).toMatchObject({ nextHop: addr.a6, asPath: [] });
        expect(got.get("203.0.113.0/24")?.localPref).not.toBeNull();
        expectNoNotifications(peer);
      },
      TEST_TIMEOUT,
    );

    test(
      "IPv6 transport session carrying IPv6 and IPv4 routes",
      async () => {
        const { addr } = t;
        const { p, peer, est, view } = await establish(
          P,
          {
            neighbor: addr.a6,
            routes: [
              { prefix: "2001:db8:200::/48", communities: ["65002:201"], largeCommunities: ["65002:3:5"] },
              // an IPv4 route over an IPv6 session: GoBGP gets the explicit IPv4 next hop from its adapter
              { prefix: "198.51.100.0/24", communities: ["65002:200"], largeCommunities: ["65002:3:4"] },
            ],
          },
          {
            localAddress: addr.a6,
            families: ["ipv4", "ipv6"],
            advertise: ["2001:db8:100::/48", "203.0.113.0/24"],
            nextHops: [addr.a4, addr.a6],
            communities: ["65001:100"],
            largeCommunities: ["65001:1:2"],
          },
          addr.b6,
        );
        expect(est.families).toEqual(expect.arrayContaining(["ipv4-unicast", "ipv6-unicast"]));
        expect(view.neighborAddress).toBe(addr.a6);

        const learned = await peer.waitRoutes(["2001:db8:200::/48", "198.51.100.0/24"], { procs: [p.proc] });
        expect(firstNh(learned.get("2001:db8:200::/48")?.nextHop)).toBe(addr.b6);
        expect(learned.get("2001:db8:200::/48")).toMatchObject({
          asPath: [PEER_AS],
          communities: ["65002:201"],
          largeCommunities: ["65002:3:5"],
          peer: addr.b6,
        });
        expect(learned.get("198.51.100.0/24")).toMatchObject({
          nextHop: addr.b4,
          asPath: [PEER_AS],
          communities: ["65002:200"],
          largeCommunities: ["65002:3:4"],
        });

        const got = await learnedFrom(P, p, ["2001:db8:100::/48", "203.0.113.0/24"]);
        expect(got.get("2001:db8:100::/48")).toMatchObject({ nextHop: addr.a6, asPath: [BGPCTL_AS], communities: ["65001:100"], largeCommunities: ["65001:1:2"] });
        expect(got.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [BGPCTL_AS], communities: ["65001:100"], largeCommunities: ["65001:1:2"] });
        expectNoNotifications(peer);
      },
      TEST_TIMEOUT,
    );

    test(
      "4-octet ASNs on both sides (4200000001 <-> 4200000002)",
      async () => {
        const { addr } = t;
        const { p, peer, est, view } = await establish(
          P,
          { localAs: 4200000002, remoteAs: 4200000001, routes: [{ prefix: "198.51.100.0/24", asPath: [4200000009, 65010] }] },
          { remoteAs: 4200000002, localAs: 4200000001, advertise: ["203.0.113.0/24"], nextHops: [addr.a4] },
        );
        expect(est.peerAs).toBe(4200000002);
        expect(view.neighborAs).toBe(4200000001);
        expect(view.capabilities).toContain("four-octet-as");

        const learned = await peer.waitRoutes(["198.51.100.0/24"], { procs: [p.proc] });
        expect(learned.get("198.51.100.0/24")?.asPath).toEqual([4200000002, 4200000009, 65010]);
        const got = await learnedFrom(P, p, ["203.0.113.0/24"]);
        expect(got.get("203.0.113.0/24")?.asPath).toEqual([4200000001]);
        expectNoNotifications(peer);
      },
      TEST_TIMEOUT,
    );

    test(
      `hold timer expiry: ${P.process} stopped with SIGSTOP, bgpctl sends NOTIFICATION 4 within ~5 s`,
      async () => {
        const { p, peer, est } = await establish(P, { holdTime: 3, keepalive: 1 });
        expect(est.holdTime).toBe(3);
        p.pause();
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
          p.resume();
        }
      },
      TEST_TIMEOUT,
    );

    test(
      `${P.name} administrative shutdown with a message: \`${P.shutdownCommand}\``,
      async () => {
        const { p, peer } = await establish(P);
        await p.shutdown("maintenance window");
        const n = await peer.waitEvent("notification", (e) => e.direction === "received", {
          timeoutMs: 10_000,
          procs: [p.proc],
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
      "`bgpctl show rib --json` returns every route of the peer after End-of-RIB and exits 0",
      async () => {
        const { lab, a, addr } = t;
        await startPeer(P, {
          endOfRib: true,
          routes: [
            { prefix: "198.51.100.0/25", communities: ["65002:1"] },
            { prefix: "198.51.100.128/25", largeCommunities: ["65002:2:3"] },
            { prefix: "203.0.113.0/24", med: 7 },
            { prefix: "2001:db8:200::/48" },
            { prefix: "2001:db8:201::/48", communities: ["65002:4"] },
          ],
        });
        const res = await bgpctlShowRib(lab, a, addr.b4, {
          remoteAs: PEER_AS,
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
        expect(by.get("198.51.100.0/25")).toMatchObject({ nextHop: addr.b4, asPath: [PEER_AS], communities: ["65002:1"] });
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
        `${sig} to \`bgpctl peer\`: exits 0, ${P.name} receives Cease/Administrative Shutdown`,
        async () => {
          const { p, peer } = await establish(P);
          peer.proc.signal(sig);
          expect(await peer.proc.waitExit(5000)).toBe(true);
          expect(peer.proc.exitCode).toBe(0);
          await t.lab.waitFor(() => p.loggedShutdownReceived(), {
            timeoutMs: 5000,
            what: `${P.name} to log the received Administrative Shutdown`,
          });
          expect(await p.established()).toBe(false);
          expect(peer.find("notification", (e) => e.direction === "sent")).toMatchObject({ code: 6, subcode: 2 });
        },
        TEST_TIMEOUT,
      );
    }
  });
}

describe("bgpctl <-> BIRD 2 only", () => {
  test(
    "2-octet-only BIRD (enable as4 off): session up, AS path rebuilt from AS_PATH + AS4_PATH",
    async () => {
      // BIRD without the 4-octet capability encodes 4-octet ASNs as AS_TRANS in
      // AS_PATH and sends the real ones in AS4_PATH (RFC 6793 "OLD" speaker).
      const { addr } = t;
      const { p, peer, est } = await establish(
        BIRD_PEER,
        {
          as4: false,
          routes: [
            { prefix: "198.51.100.0/24", asPath: [4200000005, 4200000006] },
            { prefix: "198.51.101.0/24", asPath: [65010] },
          ],
        },
        { advertise: ["203.0.113.0/24"], nextHops: [addr.a4] },
      );
      expect(est.peerAs).toBe(PEER_AS);
      const proto = await p.daemon.protocol("bgpctl");
      expect(proto.session).toBe("external");
      expect(proto.localCapabilities).not.toContain("4-octet AS numbers");
      expect(proto.neighborAs).toBe(BGPCTL_AS);

      const learned = await peer.waitRoutes(["198.51.100.0/24", "198.51.101.0/24"], { procs: [p.proc] });
      expect(learned.get("198.51.100.0/24")?.asPath).toEqual([PEER_AS, 4200000005, 4200000006]);
      expect(learned.get("198.51.101.0/24")?.asPath).toEqual([PEER_AS, 65010]);
      const got = await learnedFrom(BIRD_PEER, p, ["203.0.113.0/24"]);
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
      const p = await startPeer(BIRD_PEER, { remoteAs: 23456, as4: false });
      const peer = startBgpctl({ localAs: 4200000001 });
      const n = await peer.waitEvent("notification", (e) => e.direction === "received", {
        procs: [p.proc],
        what: "a NOTIFICATION from BIRD",
      });
      expect(n.code).toBe(2);
      expect(n.subcode).toBe(2);
      expect(p.proc.text("stderr")).toMatch(/Bad peer AS: 4200000001/);
      expect(peer.find("established")).toBeUndefined();
    },
    TEST_TIMEOUT,
  );

  test(
    "route refresh: `birdc reload in` makes bgpctl re-send its routes; `birdc reload out` keeps the session",
    async () => {
      const { lab, addr } = t;
      const { p, peer, view } = await establish(
        BIRD_PEER,
        { routes: [{ prefix: "198.51.100.0/24" }] },
        { families: ["ipv4", "ipv6"], advertise: ["203.0.113.0/24", "2001:db8:100::/48"], nextHops: [addr.a4, addr.a6] },
      );
      const bird = p.daemon;
      expect(view.capabilities).toContain("route-refresh");
      await learnedFrom(BIRD_PEER, p, ["203.0.113.0/24", "2001:db8:100::/48"]);
      await peer.waitRoutes(["198.51.100.0/24"], { procs: [p.proc] });
      const before = (await bird.protocol("bgpctl")).channels.ipv4?.importUpdatesReceived ?? 0;

      await bird.reloadIn("bgpctl");
      await peer.waitEvent("route-refresh", (e) => e.family === "ipv4-unicast" && (e.direction ?? "received") === "received", {
        timeoutMs: 10_000,
        procs: [p.proc],
        what: "a received ROUTE-REFRESH for ipv4-unicast",
      });
      await lab.waitFor(async () => ((await bird.protocol("bgpctl")).channels.ipv4?.importUpdatesReceived ?? 0) > before, {
        timeoutMs: 10_000,
        what: "BIRD to receive bgpctl's IPv4 routes again after the ROUTE-REFRESH",
      });
      const after = await learnedFrom(BIRD_PEER, p, ["203.0.113.0/24", "2001:db8:100::/48"]);
      expect(after.get("203.0.113.0/24")).toMatchObject({ nextHop: addr.a4, asPath: [BGPCTL_AS] });

      await bird.reloadOut("bgpctl");
      // Give both sides a moment to process the re-sent routes, then check nothing broke.
      await sleep(1000);
      expect(await p.established()).toBe(true);
      expect(peer.routes().has("198.51.100.0/24")).toBe(true);
      expect(peer.running).toBe(true);
      expectNoNotifications(peer);
      expect(peer.all("state", (e) => e.from === "Established")).toEqual([]);
    },
    TEST_TIMEOUT,
  );
});

describe("bgpctl <-> GoBGP only", () => {
  test(
    "route refresh capability advertised; `gobgp neighbor ADDR softresetout` re-sends and the session stays up",
    async () => {
      // GoBGP 3.x has no CLI verb that sends ROUTE-REFRESH (`softresetin` only
      // re-filters its own Adj-RIB-In), so this checks the capability and that
      // re-sent routes are taken in stride. The ROUTE-REFRESH path is covered by
      // the BIRD block (`birdc reload in`).
      const { lab, addr } = t;
      const { p, peer, view } = await establish(
        GOBGP_PEER,
        { routes: [{ prefix: "198.51.100.0/24", communities: ["65002:200"] }] },
        { advertise: ["203.0.113.0/24"], nextHops: [addr.a4] },
      );
      const g = p.daemon;
      expect(view.capabilities).toContain("route-refresh");
      await peer.waitRoutes(["198.51.100.0/24"], { procs: [p.proc] });
      await learnedFrom(GOBGP_PEER, p, ["203.0.113.0/24"]);
      const sentBefore = Number((await g.neighbor(addr.a4)).messages.sent.update ?? 0);

      await g.softResetOut(addr.a4);
      await lab.waitFor(async () => Number((await g.neighbor(addr.a4)).messages.sent.update ?? 0) > sentBefore, {
        timeoutMs: 10_000,
        what: "GoBGP to re-send its routes after softresetout",
      });
      await sleep(1000);
      expect(await p.established()).toBe(true);
      expect(peer.routes().get("198.51.100.0/24")).toMatchObject({ nextHop: addr.b4, communities: ["65002:200"] });
      expect((await learnedFrom(GOBGP_PEER, p, ["203.0.113.0/24"])).get("203.0.113.0/24")).toMatchObject({ asPath: [BGPCTL_AS] });
      expect(peer.running).toBe(true);
      expectNoNotifications(peer);
    },
    TEST_TIMEOUT,
  );
});
