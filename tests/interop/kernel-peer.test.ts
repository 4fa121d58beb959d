/**
 * `bgpctl peer --kernel`: the single-session speaker installs the routes it
 * learns from BIRD in the kernel of its namespace (our protocol, our table),
 * follows withdrawals, and removes its routes on SIGTERM.
 *
 *   namespace a (bgpctl) 192.0.2.1/24  <-veth->  192.0.2.2/24 namespace b (BIRD)
 */
import { expect, test } from "bun:test";
import { BGPCTL_BIN, BirdInstance, type PairTopology, usePair } from "./lab.ts";

let t: PairTopology;

usePair("kpeer", (p) => (t = p));

type IpRoute = { dst: string; gateway?: string; protocol?: string; metric?: number };
async function routes(table: string, proto: string): Promise<IpRoute[]> {
  const r = await t.lab.exec(t.a, ["ip", "-j", "route", "show", "table", table, "proto", proto]);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as IpRoute[]) : [];
}

test("bgpctl peer --kernel --kernel-table 1000 --kernel-protocol 200: BIRD's routes installed, withdrawn, removed on exit", async () => {
  const bird = await BirdInstance.start(
    t.lab,
    t.b,
    {
      routerId: t.addr.b4,
      localAs: 65002,
      peers: [{ name: "bgpctl", neighbor: t.addr.a4, localAddress: t.addr.b4, remoteAs: 65001, passive: true }],
      routes: [{ prefix: "198.51.100.0/24" }, { prefix: "203.0.113.0/25" }],
    },
    "bird-kpeer",
  );
  const proc = t.lab.spawn(
    t.a,
    [BGPCTL_BIN, "peer", t.addr.b4, "--remote-as", "65002", "--local-as", "65001", "--family", "ipv4", "--kernel", "--kernel-table", "1000", "--kernel-protocol", "200", "--json"],
    { name: "bgpctl-kpeer" },
  );
  const installed = await t.lab.waitFor(
    async () => {
      const rs = await routes("1000", "200");
      return rs.length === 2 ? rs : null;
    },
    { timeoutMs: 20_000, what: "both routes in table 1000 proto 200", procs: [proc, bird.proc] },
  );
  expect(installed.map((r) => r.dst).sort()).toEqual(["198.51.100.0/24", "203.0.113.0/25"]);
  for (const r of installed) expect(r.gateway).toBe(t.addr.b4);
  expect(await routes("main", "200")).toEqual([]);
  // Withdraw: BIRD stops exporting the static routes.
  await bird.command("disable", "static_ipv4");
  await t.lab.waitFor(async () => (await routes("1000", "200")).length === 0, { timeoutMs: 10_000, what: "the routes to be withdrawn from the kernel" });
  await bird.command("enable", "static_ipv4");
  await t.lab.waitFor(async () => (await routes("1000", "200")).length === 2, { timeoutMs: 10_000, what: "the routes back" });
  proc.signal("SIGTERM");
  expect(await proc.waitExit(10_000)).toBe(true);
  expect(proc.exitCode).toBe(0);
  expect(await routes("1000", "200")).toEqual([]);
}, 60_000);
