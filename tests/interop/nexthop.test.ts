/**
 * Interop: next-hop tracking of `bgpctl run` (kernel routes on) against real
 * BIRD 2 peers in network namespaces. Next hops that are not on the shared
 * link are resolved through the routing table of bgpctl's namespace:
 *
 * (a) a second hop: BIRD (AS 65002) announces 198.51.100.0/24 with next hop
 *     203.0.113.5, which bgpctl reaches only through a static route
 *     (`203.0.113.0/24 dev ...` towards a router namespace holding that
 *     address). With the route the BGP route is best, in the kernel and
 *     exported to a third peer (BIRD, AS 65003); without it the route is
 *     unreachable (`show rib -j`: reachable false, not best; `u` in the
 *     human table), removed from the kernel and withdrawn from the third
 *     peer; restoring the static route brings all of it back.
 * (b) IGP cost: two iBGP peers (BIRD, AS 65001) announce the same prefix
 *     with next hops whose kernel routes have metrics 50 and 5: the lower
 *     metric wins (igpCost in `show rib -j`, the kernel route's gateway);
 *     changing the metrics flips the choice.
 * (c) recursive next hop (RFC 4271 §5.1.3): BIRD (iBGP, AS 65001) sits two
 *     routers away and announces 198.51.100.0/24 with its far-link address
 *     (203.0.113.2) as next hop; bgpctl reaches 203.0.113.0/24 through a
 *     static route via router R (192.0.2.2). The kernel would refuse that
 *     next hop as a gateway, so the route is installed via R's near address
 *     (proto 186), and `show rib -j` / `show fib -j` say so; moving the
 *     static route to router R2 (192.0.2.3) moves the kernel route's gateway
 *     while the BGP best route (and the session) stay as they were.
 *
 * One lab per file; namespaces are created by the lab (unique per process)
 * and removed with every process it started, by PID.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { FibEntry, RibEntry } from "../../lib/api/types.ts";
import { BgpctlDaemon, BirdInstance, Lab, birdConfig, buildNetwork, which, useLab } from "./lab.ts";
import type { BirdConfigSpec, DaemonConfigSpec } from "./lab.ts";

const X_AS = 65001;
const TEST_TIMEOUT = 90_000;
const PREFIX = "198.51.100.0/24";

let lab: Lab;
let IP = "ip";

useLab("nexthop", (l) => {
  lab = l;
  IP = which("ip") ?? "ip";
});

/** Start BIRD with `next hop address NH` on its IPv4 channel: the next hop it announces, whatever the session. */
async function birdWithNextHop(ns: string, spec: BirdConfigSpec, nextHop: string, name: string): Promise<BirdInstance> {
  const text = birdConfig(spec).replace(/^(\s*ipv4 \{ )/m, `$1next hop address ${nextHop}; `);
  if (!text.includes(`next hop address ${nextHop}`)) throw new Error(`no ipv4 channel to put the next hop in:\n${text}`);
  const path = lab.path(`${name}-${lab.processes.length + 1}.conf`);
  writeFileSync(path, text);
  return BirdInstance.startWithConfig(lab, ns, path, name);
}

async function ip(ns: string, ...args: string[]): Promise<string> {
  const r = await lab.exec(ns, [IP, ...args], { timeoutMs: 5000 });
  if (r.code !== 0) throw new Error(`ip ${args.join(" ")} failed (exit ${r.code}): ${r.stderr}`);
  return r.stdout;
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
}

/** Routes for PREFIX in the main table of a namespace. */
async function kernelRoute(ns: string): Promise<IpRoute[]> {
  const out = (await ip(ns, "-j", "-4", "route", "show", "table", "main", "exact", PREFIX)).trim();
  return out ? (JSON.parse(out) as IpRoute[]) : [];
}

function daemonConfig(peers: DaemonConfigSpec["peers"]): DaemonConfigSpec {
  return {
    asn: X_AS,
    routerId: "192.0.2.1",
    kernel: { enabled: true, table: 254, protocol: 186, metric: 20, families: ["ipv4"], startupDeadline: 5 },
    peers,
  };
}

describe("next-hop tracking against the kernel's routing table", () => {
  test(
    "(a) a next hop one hop away: usable only while a kernel route reaches it (best, installed, exported), unreachable otherwise",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b", "r", "c"],
        segments: [
          { members: { x: { ipv4: "192.0.2.1/26" }, b: { ipv4: "192.0.2.2/26" } } },
          { members: { x: { ipv4: "192.0.2.65/26" }, r: { ipv4: "192.0.2.66/26" } } },
          { members: { x: { ipv4: "192.0.2.129/26" }, c: { ipv4: "192.0.2.130/26" } } },
        ],
      });
      const { x, b, r, c } = net.ns as Record<"x" | "b" | "r" | "c", string>;
      const toR = net.ifaces[1]!.x!;
      await ip(r, "addr", "add", "203.0.113.5/32", "dev", "lo");
      // The second hop: 203.0.113.0/24 is reached through the link to r (a static route, metric 10).
      const staticRoute = ["203.0.113.0/24", "dev", toR, "proto", "static", "metric", "10"];
      await ip(x, "route", "add", ...staticRoute);

      const birdB = await birdWithNextHop(
        b,
        {
          routerId: "192.0.2.2",
          localAs: 65002,
          peers: [{ name: "bgpctl", neighbor: "192.0.2.1", localAddress: "192.0.2.2", remoteAs: X_AS, passive: true, families: ["ipv4"], export: "static", import: "none" }],
          routes: [{ prefix: PREFIX }],
        },
        "203.0.113.5",
        "bird-b",
      );
      const birdC = await BirdInstance.start(
        lab,
        c,
        { routerId: "192.0.2.130", localAs: 65003, peers: [{ name: "bgpctl", neighbor: "192.0.2.129", localAddress: "192.0.2.130", remoteAs: X_AS, passive: true, families: ["ipv4"], export: "none", import: "all" }] },
        "bird-c",
      );
      const d = await BgpctlDaemon.start(
        lab,
        x,
        daemonConfig([
          { address: "192.0.2.2", remoteAs: 65002, localAddress: "192.0.2.1", families: ["ipv4"], import: "all", export: "none" },
          { address: "192.0.2.130", remoteAs: 65003, localAddress: "192.0.2.129", families: ["ipv4"], import: "none", export: "all" },
        ]),
      );
      const procs = [d.proc, birdB.proc, birdC.proc];
      await d.waitEstablished("192.0.2.2", 20_000, procs);
      await d.waitEstablished("192.0.2.130", 20_000, procs);

      const usable = async (what: string): Promise<void> => {
        const [e] = await d.waitRib(PREFIX, (rs) => rs.length === 1 && rs[0]!.best && rs[0]!.reachable === true, 15_000, procs);
        expect(e).toMatchObject({ nextHop: "203.0.113.5", reachable: true, igpCost: 10, best: true, peer: "192.0.2.2" });
        await lab.waitFor(async () => (await kernelRoute(x)).some((k) => k.gateway === "203.0.113.5" && k.protocol === "bgp"), {
          timeoutMs: 15_000,
          what: `${what}: ${PREFIX} via 203.0.113.5 in the kernel`,
          procs,
        });
        await lab.waitFor(async () => (await birdC.routes({ protocol: "bgpctl" })).some((x) => x.prefix === PREFIX), {
          timeoutMs: 15_000,
          what: `${what}: BIRD C to learn ${PREFIX}`,
          procs,
        });
      };
      await usable("start");

      // Take the route to the next hop away.
      await ip(x, "route", "del", ...staticRoute);
      const [u] = await d.waitRib(PREFIX, (rs) => rs.length === 1 && rs[0]!.reachable === false, 15_000, procs);
      expect(u).toMatchObject({ nextHop: "203.0.113.5", reachable: false, best: false, igpCost: 0 });
      await lab.waitFor(async () => (await kernelRoute(x)).length === 0, { timeoutMs: 15_000, what: `${PREFIX} to leave the kernel`, procs });
      await lab.waitFor(async () => !(await birdC.routes({ protocol: "bgpctl" })).some((x) => x.prefix === PREFIX), {
        timeoutMs: 15_000,
        what: `BIRD C to see ${PREFIX} withdrawn`,
        procs,
      });
      const human = await d.command("show", "rib", PREFIX);
      expect(human).toContain("u = Next hop unreachable");
      expect(human.split("\n").some((l) => l.startsWith("u ") && l.includes(PREFIX))).toBe(true);
      // Still received, still in the Adj-RIB-In: only ineligible.
      expect((await d.adjRib("192.0.2.2", "in")).map((e: RibEntry) => e.prefix)).toContain(PREFIX);

      // Back.
      await ip(x, "route", "add", ...staticRoute);
      await usable("restored");
    },
    TEST_TIMEOUT,
  );

  test(
    "(b) two iBGP paths: the next hop with the lower kernel metric wins; new metrics flip the choice",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "i1", "i2"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/26" }, i1: { ipv4: "192.0.2.2/26" }, i2: { ipv4: "192.0.2.3/26" } } }],
      });
      const { x, i1, i2 } = net.ns as Record<"x" | "i1" | "i2", string>;
      const lan = net.ifaces[0]!.x!;
      const nh1 = "203.0.113.11";
      const nh2 = "203.0.113.12";
      await ip(x, "route", "add", `${nh1}/32`, "dev", lan, "proto", "static", "metric", "50");
      await ip(x, "route", "add", `${nh2}/32`, "dev", lan, "proto", "static", "metric", "5");
      const ibgpPeer = (self: string) => ({
        routerId: self,
        localAs: X_AS,
        peers: [{ name: "bgpctl", neighbor: "192.0.2.1", localAddress: self, remoteAs: X_AS, passive: true, families: ["ipv4" as const], export: "static" as const, import: "none" as const, nextHopSelf: false }],
        routes: [{ prefix: PREFIX }],
      });
      const b1 = await birdWithNextHop(i1, ibgpPeer("192.0.2.2"), nh1, "bird-i1");
      const b2 = await birdWithNextHop(i2, ibgpPeer("192.0.2.3"), nh2, "bird-i2");
      const d = await BgpctlDaemon.start(
        lab,
        x,
        daemonConfig([
          { address: "192.0.2.2", remoteAs: X_AS, localAddress: "192.0.2.1", families: ["ipv4"] },
          { address: "192.0.2.3", remoteAs: X_AS, localAddress: "192.0.2.1", families: ["ipv4"] },
        ]),
      );
      const procs = [d.proc, b1.proc, b2.proc];
      await d.waitEstablished("192.0.2.2", 20_000, procs);
      await d.waitEstablished("192.0.2.3", 20_000, procs);

      const bestVia = async (nh: string, costs: Record<string, number>): Promise<void> => {
        const rs = await d.waitRib(
          PREFIX,
          (rs) => rs.length === 2 && rs.every((e) => e.reachable === true && e.igpCost === costs[e.nextHop ?? ""]) && rs.some((e) => e.best && e.nextHop === nh),
          15_000,
          procs,
        );
        expect(rs.map((e) => [e.nextHop, e.igpCost, e.best]).sort()).toEqual(
          [
            [nh1, costs[nh1], nh === nh1],
            [nh2, costs[nh2], nh === nh2],
          ].sort(),
        );
        await lab.waitFor(async () => (await kernelRoute(x)).some((k) => k.gateway === nh && k.protocol === "bgp"), {
          timeoutMs: 15_000,
          what: `${PREFIX} via ${nh} in the kernel`,
          procs,
        });
      };
      await bestVia(nh2, { [nh1]: 50, [nh2]: 5 });

      // The path through nh2 becomes the expensive one.
      await ip(x, "route", "del", `${nh2}/32`, "dev", lan, "metric", "5");
      await ip(x, "route", "add", `${nh2}/32`, "dev", lan, "proto", "static", "metric", "80");
      await bestVia(nh1, { [nh1]: 50, [nh2]: 80 });
    },
    TEST_TIMEOUT,
  );

  test(
    "(c) a next hop two routers away is installed via the immediate hop; moving the IGP path moves the kernel route, not the best route",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "r", "r2", "b"],
        segments: [
          { members: { x: { ipv4: "192.0.2.1/26" }, r: { ipv4: "192.0.2.2/26" }, r2: { ipv4: "192.0.2.3/26" } } },
          { members: { r: { ipv4: "203.0.113.1/24" }, r2: { ipv4: "203.0.113.3/24" }, b: { ipv4: "203.0.113.2/24" } } },
        ],
      });
      const { x, r, r2, b } = net.ns as Record<"x" | "r" | "r2" | "b", string>;
      const near = net.ifaces[0]!.x!;
      const sysctl = which("sysctl");
      if (!sysctl) throw new Error("sysctl not found (procps): needed to let the router namespaces forward");
      for (const router of [r, r2]) {
        const res = await lab.exec(router, [sysctl, "-q", "-w", "net.ipv4.ip_forward=1"], { timeoutMs: 5000 });
        if (res.code !== 0) throw new Error(`sysctl ip_forward in ${router} failed: ${res.stderr}`);
      }
      // bgpctl reaches the far link through R; BIRD answers through R whichever way we send.
      await ip(x, "route", "add", "203.0.113.0/24", "via", "192.0.2.2", "proto", "static", "metric", "10");
      await ip(b, "route", "add", "192.0.2.0/26", "via", "203.0.113.1");

      // iBGP over two hops: multihop instead of the lab's `direct`; next hop self = BIRD's far address.
      const text = birdConfig({
        routerId: "203.0.113.2",
        localAs: X_AS,
        peers: [{ name: "bgpctl", neighbor: "192.0.2.1", localAddress: "203.0.113.2", remoteAs: X_AS, passive: true, families: ["ipv4"], export: "static", import: "none" }],
        routes: [{ prefix: PREFIX }],
      });
      if (!/^\s*direct;$/m.test(text)) throw new Error(`no 'direct;' to replace in the BIRD config:\n${text}`);
      const confPath = lab.path(`bird-far-${lab.processes.length + 1}.conf`);
      writeFileSync(confPath, text.replace(/^(\s*)direct;$/m, "$1multihop 3;"));
      const bird = await BirdInstance.startWithConfig(lab, b, confPath, "bird-far");
      const d = await BgpctlDaemon.start(lab, x, daemonConfig([{ address: "203.0.113.2", remoteAs: X_AS, localAddress: "192.0.2.1", families: ["ipv4"] }]));
      const procs = [d.proc, bird.proc];
      await d.waitEstablished("203.0.113.2", 30_000, procs);

      const installedVia = async (gw: string, what: string): Promise<IpRoute> =>
        lab.waitFor(
          async () => {
            const rs = await kernelRoute(x);
            return rs.length === 1 && rs[0]!.gateway === gw && rs[0]!.protocol === "bgp" ? rs[0]! : null;
          },
          { timeoutMs: 15_000, what: `${what}: ${PREFIX} via ${gw} proto bgp (only) in bgpctl's kernel table`, procs },
        );
      const viaR = await installedVia("192.0.2.2", "start");
      expect(viaR.dev).toBe(near);
      const [e1] = await d.waitRib(PREFIX, (rs) => rs.length === 1 && rs[0]!.best && rs[0]!.via?.[0] === "192.0.2.2", 15_000, procs);
      expect(e1).toMatchObject({ nextHop: "203.0.113.2", peer: "203.0.113.2", reachable: true, igpCost: 10, best: true, via: ["192.0.2.2"] });
      const raw = (await ip(x, "-j", "-4", "route", "show", "table", "main", "exact", PREFIX, "proto", "186")).trim();
      expect((JSON.parse(raw) as IpRoute[]).map((k) => k.gateway)).toEqual(["192.0.2.2"]);
      expect(await d.json<FibEntry[]>("show", "fib", PREFIX)).toEqual([{ prefix: PREFIX, state: "installed", nextHops: ["192.0.2.2"] }]);
      const before = await d.neighbor("203.0.113.2");

      // The IGP path to the next hop moves to R2: the kernel route follows; the BGP route does not change.
      await ip(x, "route", "replace", "203.0.113.0/24", "via", "192.0.2.3", "proto", "static", "metric", "10");
      await installedVia("192.0.2.3", "moved to R2");
      const [e2] = await d.waitRib(PREFIX, (rs) => rs.length === 1 && rs[0]!.via?.[0] === "192.0.2.3", 15_000, procs);
      expect(e2).toMatchObject({ nextHop: "203.0.113.2", peer: "203.0.113.2", reachable: true, igpCost: 10, best: true, via: ["192.0.2.3"] });
      expect(await d.json<FibEntry[]>("show", "fib", PREFIX)).toEqual([{ prefix: PREFIX, state: "installed", nextHops: ["192.0.2.3"] }]);
      const after = await d.neighbor("203.0.113.2");
      expect(after.state).toBe("Established");
      expect(after.uptimeSeconds).toBeGreaterThanOrEqual(before.uptimeSeconds); // no session reset
      expect(after.accepted).toBe(1);

      // The route to the next hop goes: unreachable, and out of the kernel.
      await ip(x, "route", "del", "203.0.113.0/24", "via", "192.0.2.3", "proto", "static", "metric", "10");
      await d.waitRib(PREFIX, (rs) => rs.length === 1 && rs[0]!.reachable === false && rs[0]!.via === undefined, 15_000, procs);
      await lab.waitFor(async () => (await kernelRoute(x)).length === 0, { timeoutMs: 15_000, what: `${PREFIX} to leave the kernel`, procs });
    },
    TEST_TIMEOUT,
  );
});
