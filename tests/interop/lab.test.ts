/**
 * Harness self-test: peers BIRD with GoBGP inside namespaces, so the lab, the
 * config writers, the parsers and the admin commands used against bgpctl are
 * validated against two real implementations independently of bgpctl.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import {
  BirdInstance,
  GobgpInstance,
  createPair,
  parseBirdProtocol,
  parseBirdRoutes,
  parseGobgpRib,
} from "./lab.ts";
import type { PairTopology } from "./lab.ts";

describe("parsers (no network)", () => {
  test("parseBirdRoutes reads prefixes, next hops, paths and communities", () => {
    const out = [
      "BIRD 2.0.12 ready.",
      "Table master4:",
      "198.51.100.0/24      unicast [peer1 18:19:16.776] * (100) [AS65002?]",
      "\tvia 192.0.2.2 on va",
      "\tType: BGP univ",
      "\tBGP.origin: Incomplete",
      "\tBGP.as_path: 65002 4200000005",
      "\tBGP.next_hop: 192.0.2.2",
      "\tBGP.med: 10",
      "\tBGP.local_pref: 100",
      "\tBGP.community: (65002,200) (65002,201)",
      "\tBGP.large_community: (65002, 3, 4)",
      "                     unicast [peer2 18:19:17.000] (100) [AS65003i]",
      "\tvia 192.0.2.3 on va",
      "\tBGP.origin: IGP",
      "\tBGP.as_path: 65003",
      "\tBGP.next_hop: 192.0.2.3",
      "203.0.113.0/24       blackhole [s4 18:19:09.512] * (200)",
      "\tType: static univ",
      "",
      "Table master6:",
      "2001:db8:200::/48    unicast [peer1 18:19:16.794 from 2001:db8::2] * (100) [AS65002?]",
      "\tvia 2001:db8::2 on va",
      "\tBGP.next_hop: 2001:db8::2 fe80::1",
    ].join("\n");
    const r = parseBirdRoutes(out);
    expect(r.length).toBe(4);
    expect(r[0]).toMatchObject({
      prefix: "198.51.100.0/24",
      table: "master4",
      protocol: "peer1",
      primary: true,
      nextHop: "192.0.2.2",
      asPath: [65002, 4200000005],
      origin: "incomplete",
      med: 10,
      localPref: 100,
      communities: ["65002:200", "65002:201"],
      largeCommunities: ["65002:3:4"],
    });
    expect(r[1]).toMatchObject({ prefix: "198.51.100.0/24", protocol: "peer2", primary: false, asPath: [65003], origin: "igp" });
    expect(r[2]).toMatchObject({ prefix: "203.0.113.0/24", type: "blackhole", protocol: "s4", asPath: [] });
    expect(r[3]).toMatchObject({ prefix: "2001:db8:200::/48", table: "master6", nextHop: "2001:db8::2" });
    expect(r[3]?.nextHops).toEqual(["2001:db8::2", "fe80::1"]);
  });

  test("parseBirdProtocol reads state, AS numbers, capabilities and channel counters", () => {
    const out = [
      "BIRD 2.0.12 ready.",
      "Name       Proto      Table      State  Since         Info",
      "peer1      BGP        ---        up     18:19:10.479  Established   ",
      "  BGP state:          Established",
      "    Neighbor address: 192.0.2.2",
      "    Neighbor AS:      4200000002",
      "    Local AS:         65001",
      "    Neighbor ID:      192.0.2.2",
      "    Local capabilities",
      "      Multiprotocol",
      "        AF announced: ipv4 ipv6",
      "      Route refresh",
      "      4-octet AS numbers",
      "    Neighbor capabilities",
      "      Multiprotocol",
      "        AF announced: ipv4",
      "      Extended next hop",
      "        IPv6 nexthop: ipv4",
      "    Session:          external AS4",
      "    Hold timer:       8.749/9",
      "  Channel ipv4",
      "    State:          UP",
      "    Routes:         2 imported, 1 exported, 0 preferred",
      "    Route change stats:     received   rejected   filtered    ignored   accepted",
      "      Import updates:              3          0          0          0          2",
      "      Import withdraws:            0          0        ---          0          0",
    ].join("\n");
    const p = parseBirdProtocol(out);
    expect(p).not.toBeNull();
    expect(p).toMatchObject({
      name: "peer1",
      state: "up",
      info: "Established",
      bgpState: "Established",
      neighborAs: 4200000002,
      localAs: 65001,
      session: "external AS4",
      holdTime: 9,
    });
    expect(p?.localCapabilities).toEqual(["Multiprotocol", "Route refresh", "4-octet AS numbers"]);
    expect(p?.neighborCapabilities).toEqual(["Multiprotocol", "Extended next hop"]);
    expect(p?.channels.ipv4).toMatchObject({ state: "UP", importUpdatesReceived: 3, importUpdatesAccepted: 2, routesImported: 2, routesExported: 1 });
  });

  test("parseGobgpRib reads gobgp -j output", () => {
    const out = JSON.stringify({
      "203.0.113.0/24": [
        {
          nlri: { prefix: "203.0.113.0/24" },
          best: true,
          attrs: [
            { type: 1, value: 0 },
            { type: 2, as_paths: [{ segment_type: 2, num: 2, asns: [65001, 4200000005] }] },
            { type: 3, nexthop: "192.0.2.1" },
            { type: 4, metric: 7 },
            { type: 8, communities: [65001 * 65536 + 100] },
            { type: 32, value: [{ ASN: 65001, LocalData1: 1, LocalData2: 2 }] },
          ],
          "neighbor-ip": "192.0.2.1",
        },
      ],
      "2001:db8:100::/48": [{ best: true, attrs: [{ type: 14, nexthop: "2001:db8::1", afi: 2, safi: 1 }] }],
    });
    const r = parseGobgpRib(out);
    expect(r[0]).toMatchObject({
      prefix: "203.0.113.0/24",
      nextHop: "192.0.2.1",
      asPath: [65001, 4200000005],
      origin: "igp",
      med: 7,
      communities: ["65001:100"],
      largeCommunities: ["65001:1:2"],
      neighbor: "192.0.2.1",
      best: true,
    });
    expect(r[1]).toMatchObject({ prefix: "2001:db8:100::/48", nextHop: "2001:db8::1" });
    expect(parseGobgpRib("null")).toEqual([]);
  });
});

describe("lab self-test: BIRD <-> GoBGP in namespaces", () => {
  let t: PairTopology;

  beforeAll(async () => {
    t = await createPair("selftest");
  }, 600_000);

  afterEach(async () => {
    await t?.lab.stopAll();
  });

  afterAll(async () => {
    await t?.lab.cleanup();
  });

  test("routes with communities cross both ways, IPv4 and IPv6 over an IPv4 session", async () => {
    const { lab, a, b, addr } = t;
    const bird = await BirdInstance.start(lab, a, {
      routerId: addr.a4,
      localAs: 65001,
      peers: [{ name: "gobgp", neighbor: addr.b4, remoteAs: 65002, localAddress: addr.a4, passive: false }],
      routes: [
        { prefix: "203.0.113.0/24", communities: ["65001:100"], largeCommunities: ["65001:1:2"], med: 5 },
        { prefix: "2001:db8:100::/48", communities: ["65001:101"], largeCommunities: ["65001:1:3"] },
      ],
    });
    // `ip netns exec` execs in place: the PID we hold is BIRD's own.
    expect(readFileSync(`/proc/${bird.proc.pid}/comm`, "utf8").trim()).toBe("bird");
    const gobgp = await GobgpInstance.start(lab, b, {
      as: 65002,
      routerId: addr.b4,
      neighbors: [{ address: addr.a4, remoteAs: 65001, localAddress: addr.b4, passive: true }],
    });
    expect(readFileSync(`/proc/${gobgp.proc.pid}/comm`, "utf8").trim()).toBe("gobgpd");
    await gobgp.waitEstablished(addr.a4, 15_000, [bird.proc]);
    const proto = await bird.waitEstablished("gobgp");
    expect(proto.neighborAs).toBe(65002);
    expect(proto.session).toBe("external AS4");

    await gobgp.addRoute({
      prefix: "198.51.100.0/24",
      nextHop: addr.b4,
      origin: "igp",
      med: 20,
      communities: ["65002:200"],
      largeCommunities: ["65002:3:4"],
    });
    await gobgp.addRoute({ prefix: "2001:db8:200::/48", nextHop: addr.b6, communities: ["65002:201"], largeCommunities: ["65002:3:5"] });

    const g4 = await lab.waitFor(async () => (await gobgp.rib("ipv4")).find((r) => r.prefix === "203.0.113.0/24"), {
      timeoutMs: 10_000,
      what: "GoBGP to learn 203.0.113.0/24",
    });
    expect(g4).toMatchObject({
      nextHop: addr.a4,
      asPath: [65001],
      origin: "igp",
      med: 5,
      communities: ["65001:100"],
      largeCommunities: ["65001:1:2"],
    });
    const g6 = await lab.waitFor(async () => (await gobgp.rib("ipv6")).find((r) => r.prefix === "2001:db8:100::/48"), {
      timeoutMs: 10_000,
      what: "GoBGP to learn 2001:db8:100::/48",
    });
    expect(g6).toMatchObject({ nextHop: addr.a6, asPath: [65001], communities: ["65001:101"], largeCommunities: ["65001:1:3"] });

    const routes = await lab.waitFor(
      async () => {
        const r = await bird.routes({ protocol: "gobgp" });
        return r.length >= 2 ? r : null;
      },
      { timeoutMs: 10_000, what: "BIRD to learn GoBGP's routes" },
    );
    expect(routes.find((r) => r.prefix === "198.51.100.0/24")).toMatchObject({
      nextHop: addr.b4,
      asPath: [65002],
      origin: "igp",
      med: 20,
      communities: ["65002:200"],
      largeCommunities: ["65002:3:4"],
    });
    expect(routes.find((r) => r.prefix === "2001:db8:200::/48")).toMatchObject({
      nextHop: addr.b6,
      asPath: [65002],
      communities: ["65002:201"],
      largeCommunities: ["65002:3:5"],
    });
  }, 60_000);

  test("iBGP (BIRD `direct`, next hop self): LOCAL_PREF kept, AS path empty", async () => {
    const { lab, a, b, addr } = t;
    const bird = await BirdInstance.start(lab, a, {
      routerId: addr.a4,
      localAs: 65001,
      peers: [{ name: "gobgp", neighbor: addr.b4, localAddress: addr.a4, remoteAs: 65001 }],
      routes: [{ prefix: "203.0.113.0/24", localPref: 200 }, { prefix: "2001:db8:100::/48" }],
    });
    const gobgp = await GobgpInstance.start(lab, b, {
      as: 65001,
      routerId: addr.b4,
      neighbors: [{ address: addr.a4, remoteAs: 65001, passive: true }],
    });
    const p = await bird.waitEstablished("gobgp", 15_000, [gobgp.proc]);
    expect(p.session).toBe("internal AS4");
    const g4 = await lab.waitFor(async () => (await gobgp.rib("ipv4")).find((r) => r.prefix === "203.0.113.0/24"), {
      timeoutMs: 10_000,
      what: "GoBGP to learn 203.0.113.0/24",
    });
    expect(g4).toMatchObject({ nextHop: addr.a4, asPath: [], localPref: 200 });
    const g6 = await lab.waitFor(async () => (await gobgp.rib("ipv6")).find((r) => r.prefix === "2001:db8:100::/48"), {
      timeoutMs: 10_000,
      what: "GoBGP to learn 2001:db8:100::/48",
    });
    expect(g6).toMatchObject({ nextHop: addr.a6, asPath: [] });
    await gobgp.addRoute({ prefix: "198.51.100.0/24", nextHop: addr.b4, localPref: 300 });
    await gobgp.addRoute({ prefix: "2001:db8:200::/48", nextHop: addr.b6 });
    const routes = await lab.waitFor(
      async () => {
        const r = await bird.routes({ protocol: "gobgp" });
        return r.length >= 2 ? r : null;
      },
      { timeoutMs: 10_000, what: "BIRD to import GoBGP's iBGP routes" },
    );
    expect(routes.find((r) => r.prefix === "198.51.100.0/24")).toMatchObject({ nextHop: addr.b4, asPath: [], localPref: 300 });
    expect(routes.find((r) => r.prefix === "2001:db8:200::/48")).toMatchObject({ nextHop: addr.b6, asPath: [] });
  }, 60_000);

  test("route refresh: `birdc reload in` sends ROUTE-REFRESH; `gobgp neighbor ADDR softresetout` re-sends", async () => {
    const { lab, a, b, addr } = t;
    const bird = await BirdInstance.start(lab, a, {
      routerId: addr.a4,
      localAs: 65001,
      peers: [
        { name: "gobgp", neighbor: addr.b4, remoteAs: 65002, passive: false, debug: ["states", "events", "packets"] },
      ],
      routes: [{ prefix: "203.0.113.0/24" }],
    });
    const gobgp = await GobgpInstance.start(lab, b, {
      as: 65002,
      routerId: addr.b4,
      neighbors: [{ address: addr.a4, remoteAs: 65001, passive: true }],
    });
    await gobgp.waitEstablished(addr.a4, 15_000, [bird.proc]);
    await gobgp.addRoute({ prefix: "198.51.100.0/24", nextHop: addr.b4 });
    await lab.waitFor(async () => (await bird.routes({ protocol: "gobgp" })).length === 1, {
      timeoutMs: 10_000,
      what: "BIRD to learn 198.51.100.0/24",
    });
    const refreshCount = async (): Promise<number> => {
      const n = (await gobgp.neighbor(addr.a4)).raw as { state?: { messages?: { received?: { refresh?: number } } } };
      return Number(n.state?.messages?.received?.refresh ?? 0);
    };
    const before = await refreshCount();
    const updatesBefore = (await bird.protocol("gobgp")).channels.ipv4?.importUpdatesReceived ?? 0;
    await bird.reloadIn("gobgp");
    await lab.waitFor(async () => (await refreshCount()) > before, {
      timeoutMs: 10_000,
      what: "GoBGP to count a received ROUTE-REFRESH after `birdc reload in`",
    });
    // GoBGP answered by re-sending its route.
    await lab.waitFor(
      async () => ((await bird.protocol("gobgp")).channels.ipv4?.importUpdatesReceived ?? 0) > updatesBefore,
      { timeoutMs: 10_000, what: "BIRD to receive the route again" },
    );

    // `softresetout` makes GoBGP re-send its Adj-RIB-Out (its `softresetin` sends no ROUTE-REFRESH).
    const updatesMid = (await bird.protocol("gobgp")).channels.ipv4?.importUpdatesReceived ?? 0;
    await gobgp.softResetOut(addr.a4);
    await lab.waitFor(
      async () => ((await bird.protocol("gobgp")).channels.ipv4?.importUpdatesReceived ?? 0) > updatesMid,
      { timeoutMs: 10_000, what: "BIRD to receive GoBGP's routes again after `gobgp neighbor ADDR softresetout`" },
    );
    expect(bird.proc.text("stderr")).not.toMatch(/Got ROUTE-REFRESH/);
    expect((await gobgp.neighbor(addr.a4)).state).toBe("established");
    expect((await bird.protocol("gobgp")).bgpState).toBe("Established");
  }, 60_000);

  test("shutdown communication both ways: `birdc disable NAME \"msg\"` and `gobgp neighbor ADDR shutdown --reason msg`", async () => {
    const { lab, a, b, addr } = t;
    const bird = await BirdInstance.start(lab, a, {
      routerId: addr.a4,
      localAs: 65001,
      peers: [{ name: "gobgp", neighbor: addr.b4, remoteAs: 65002, passive: false }],
    });
    const gobgp = await GobgpInstance.start(lab, b, {
      as: 65002,
      routerId: addr.b4,
      neighbors: [{ address: addr.a4, remoteAs: 65001, passive: true }],
    });
    await bird.waitEstablished("gobgp", 15_000, [gobgp.proc]);

    await gobgp.disable(addr.a4, "gobgp maintenance");
    const down = await lab.waitFor(
      async () => {
        const p = await bird.protocol("gobgp");
        return p.message === "gobgp maintenance" ? p : null;
      },
      { timeoutMs: 10_000, what: "BIRD to show GoBGP's shutdown communication" },
    );
    expect(down.bgpState).not.toBe("Established");
    expect(bird.proc.text("stderr")).toMatch(/Received: Administrative shutdown: "gobgp maintenance"/);

    await gobgp.enable(addr.a4);
    await bird.waitEstablished("gobgp", 15_000, [gobgp.proc]);
    await bird.disable("gobgp", "maintenance window");
    await lab.waitFor(() => /Communicated-Reason="maintenance window"/.test(gobgp.proc.text()), {
      timeoutMs: 10_000,
      what: "GoBGP to log BIRD's shutdown communication",
    });
    expect(gobgp.proc.text()).toMatch(/received notification.*Code=6.*Subcode=2|Code=6.*Subcode=2/);
  }, 60_000);

  test("IPv6 transport with a 2-octet-only BIRD (enable as4 off): AS4_PATH carries 4-octet ASNs", async () => {
    const { lab, a, b, addr } = t;
    const bird = await BirdInstance.start(lab, a, {
      routerId: addr.a4,
      localAs: 65001,
      peers: [{ name: "gobgp", neighbor: addr.b6, localAddress: addr.a6, remoteAs: 65002, as4: false }],
      routes: [
        { prefix: "203.0.113.0/24", asPath: [4200000005, 4200000006] },
        { prefix: "2001:db8:100::/48" },
      ],
    });
    const gobgp = await GobgpInstance.start(lab, b, {
      as: 65002,
      routerId: addr.b4,
      neighbors: [{ address: addr.a6, remoteAs: 65001, localAddress: addr.b6, passive: true }],
    });
    const p = await bird.waitEstablished("gobgp", 15_000, [gobgp.proc]);
    expect(p.session).toBe("external");
    expect(p.localCapabilities).not.toContain("4-octet AS numbers");
    const g4 = await lab.waitFor(async () => (await gobgp.rib("ipv4")).find((r) => r.prefix === "203.0.113.0/24"), {
      timeoutMs: 10_000,
      what: "GoBGP to learn 203.0.113.0/24",
    });
    expect(g4).toMatchObject({ nextHop: addr.a4, asPath: [65001, 4200000005, 4200000006] });
    const g6 = await lab.waitFor(async () => (await gobgp.rib("ipv6")).find((r) => r.prefix === "2001:db8:100::/48"), {
      timeoutMs: 10_000,
      what: "GoBGP to learn 2001:db8:100::/48",
    });
    expect(g6).toMatchObject({ nextHop: addr.a6, asPath: [65001] });
    // An IPv4 route over the IPv6 session needs an explicit IPv4 next hop from GoBGP.
    await gobgp.addRoute({ prefix: "198.51.100.0/24", nextHop: addr.b4 });
    const r = await lab.waitFor(async () => (await bird.routes({ protocol: "gobgp" })).find((x) => x.prefix === "198.51.100.0/24"), {
      timeoutMs: 10_000,
      what: "BIRD to learn 198.51.100.0/24 over the IPv6 session",
    });
    expect(r).toMatchObject({ nextHop: addr.b4, asPath: [65002] });
  }, 60_000);

  test("hold timer: a stopped GoBGP is detected by BIRD within the hold time", async () => {
    const { lab, a, b, addr } = t;
    const bird = await BirdInstance.start(lab, a, {
      routerId: addr.a4,
      localAs: 65001,
      peers: [{ name: "gobgp", neighbor: addr.b4, remoteAs: 65002, passive: false, holdTime: 3 }],
    });
    const gobgp = await GobgpInstance.start(lab, b, {
      as: 65002,
      routerId: addr.b4,
      neighbors: [{ address: addr.a4, remoteAs: 65001, holdTime: 3, keepaliveInterval: 1, passive: true }],
    });
    const up = await bird.waitEstablished("gobgp", 15_000, [gobgp.proc]);
    expect(up.holdTime).toBe(3);
    gobgp.pause();
    const t0 = Date.now();
    try {
      await lab.waitFor(async () => (await bird.protocol("gobgp")).bgpState !== "Established", {
        timeoutMs: 6000,
        what: "BIRD to drop the session after hold timer expiry",
      });
      expect(Date.now() - t0).toBeLessThan(5500);
      expect(bird.proc.text("stderr")).toMatch(/Hold timer expired/i);
    } finally {
      gobgp.resume();
    }
  }, 60_000);
});
