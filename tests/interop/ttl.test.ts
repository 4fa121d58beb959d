/**
 * Interop: session TTL (eBGP TTL 1, `multihop`, GTSM `ttlSecurity`) between
 * the `bgpctl run` daemon and BIRD 2 in network namespaces:
 *
 *   near (BIRD, AS 65002)  192.0.2.2  2001:db8:1::2
 *        | veth, one hop
 *   us (bgpctl, AS 65001)  192.0.2.1  2001:db8:1::1 ; 198.51.100.1 + .3
 *        | veth
 *   r (IPv4 forwarding, no BGP)  198.51.100.2 | 198.51.100.65
 *        | veth
 *   far (BIRD, AS 65003)  198.51.100.66 + .67
 *
 * (a) Directly connected, GTSM on both sides (`ttl security on` in BIRD,
 *     `ttlSecurity: 1` here): Established over IPv4 and IPv6.
 * (b) Two hops, eBGP (BIRD `multihop 2`) without `multihop` here: our
 *     packets leave with TTL 1 and die at r (its ICMP time-exceeded counter
 *     goes up): not Established for 8 s and BIRD never gets our OPEN. After
 *     a reload with `multihop: 2`: Established, BIRD got our OPEN.
 * (c) Two hops, GTSM on both sides (BIRD `ttl security on` + `multihop 2`),
 *     `ttlSecurity: 1` here: BIRD's packets arrive with TTL 254, below our
 *     minimum 255, and are dropped (TCPMinTTLDrop goes up in our namespace),
 *     while ours (TTL 255, 254 on arrival) pass BIRD's minimum 254 (BIRD gets
 *     our OPEN): not Established. After a reload with `ttlSecurity: 2`:
 *     Established. `show neighbors` shows each session's TTL mode.
 * (b) and (c) run side by side, on two address pairs, to keep the lab short.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BgpctlDaemon, BirdInstance, Lab, buildNetwork, ensureBinary, ensurePackages } from "./lab.ts";
import type { DaemonConfigSpec, DaemonPeerSpec, Network } from "./lab.ts";
import { sleep } from "../support/wait.ts";

const US_AS = 65001;
const NEAR_AS = 65002;
const FAR_AS = 65003;
/** How long a session that must not come up is watched. */
const NO_SESSION_MS = 8_000;

const NEAR4 = "192.0.2.2";
const NEAR6 = "2001:db8:1::2";
/** Far BIRD addresses: one for case (b), one for case (c). */
const FAR_B = "198.51.100.66";
const FAR_C = "198.51.100.67";
/** Our addresses towards far, same order. */
const US_B = "198.51.100.1";
const US_C = "198.51.100.3";

let lab: Lab;
let net: Network;
let far: BirdInstance;
let us: BgpctlDaemon;

function daemonConfig(farB: Partial<DaemonPeerSpec>, farC: Partial<DaemonPeerSpec>): DaemonConfigSpec {
  const common = { import: "all", export: "none", connectRetry: 2, holdTime: 9 };
  return {
    asn: US_AS,
    routerId: "192.0.2.1",
    peers: [
      { address: NEAR4, remoteAs: NEAR_AS, ttlSecurity: 1, families: ["ipv4"], ...common },
      { address: NEAR6, remoteAs: NEAR_AS, ttlSecurity: 1, families: ["ipv6"], ...common },
      { address: FAR_B, remoteAs: FAR_AS, localAddress: US_B, families: ["ipv4"], ...common, ...farB },
      { address: FAR_C, remoteAs: FAR_AS, localAddress: US_C, families: ["ipv4"], ttlSecurity: 1, ...common, ...farC },
    ],
  };
}

/** A counter of a namespace's /proc/net/{snmp,netstat} ("Icmp", "OutTimeExcds"). */
async function counter(ns: string, file: "snmp" | "netstat", group: string, name: string): Promise<number> {
  const r = await lab.exec(ns, ["cat", `/proc/net/${file}`], { check: true });
  const [keys, values] = r.stdout
    .split("\n")
    .filter((l) => l.startsWith(`${group}:`))
    .map((l) => l.trim().split(/\s+/));
  const i = keys?.indexOf(name) ?? -1;
  if (!keys || !values || i < 0) throw new Error(`no ${group} ${name} in /proc/net/${file} of ${lab.shortName(ns)}`);
  return Number(values[i]);
}

/** Lines of far's BIRD output about protocol `proto` receiving our OPEN (needs `debug packets`). */
function openSeenBy(bird: BirdInstance, proto: string): string[] {
  return bird.proc.text().split("\n").filter((l) => l.includes(`${proto}: Got OPEN`));
}

beforeAll(async () => {
  await ensurePackages();
  await ensureBinary();
  lab = await Lab.create("ttl");
  net = await buildNetwork(lab, {
    nodes: ["ttl-us", "ttl-near", "ttl-r", "ttl-far"],
    segments: [
      { members: { "ttl-us": { ipv4: "192.0.2.1/24", ipv6: "2001:db8:1::1/64" }, "ttl-near": { ipv4: `${NEAR4}/24`, ipv6: `${NEAR6}/64` } } },
      { members: { "ttl-us": { ipv4: `${US_B}/26` }, "ttl-r": { ipv4: "198.51.100.2/26" } } },
      { members: { "ttl-r": { ipv4: "198.51.100.65/26" }, "ttl-far": { ipv4: `${FAR_B}/26` } } },
    ],
  });
  const [usNs, rNs, farNs] = [net.ns["ttl-us"]!, net.ns["ttl-r"]!, net.ns["ttl-far"]!];
  await lab.exec(usNs, ["ip", "addr", "add", `${US_C}/26`, "dev", net.ifaces[1]!["ttl-us"]!], { check: true });
  await lab.exec(farNs, ["ip", "addr", "add", `${FAR_C}/26`, "dev", net.ifaces[2]!["ttl-far"]!], { check: true });
  await lab.exec(usNs, ["ip", "route", "add", "198.51.100.64/26", "via", "198.51.100.2"], { check: true });
  await lab.exec(farNs, ["ip", "route", "add", "198.51.100.0/26", "via", "198.51.100.65"], { check: true });
  await lab.exec(rNs, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"], { check: true });

  const near = BirdInstance.start(lab, net.ns["ttl-near"]!, {
    routerId: NEAR4,
    localAs: NEAR_AS,
    peers: [
      { name: "gtsm4", neighbor: "192.0.2.1", localAddress: NEAR4, remoteAs: US_AS, families: ["ipv4"], extra: ["ttl security on;"] },
      { name: "gtsm6", neighbor: "2001:db8:1::1", localAddress: NEAR6, remoteAs: US_AS, families: ["ipv6"], extra: ["ttl security on;"] },
    ],
  }, "bird-near");
  const farStart = BirdInstance.start(lab, farNs, {
    routerId: FAR_B,
    localAs: FAR_AS,
    peers: [
      { name: "mh", neighbor: US_B, localAddress: FAR_B, remoteAs: US_AS, families: ["ipv4"], extra: ["multihop 2;"], debug: ["states", "events", "packets"] },
      { name: "gtsm2", neighbor: US_C, localAddress: FAR_C, remoteAs: US_AS, families: ["ipv4"], extra: ["multihop 2;", "ttl security on;"], debug: ["states", "events", "packets"] },
    ],
  }, "bird-far");
  [, far] = await Promise.all([near, farStart]);
  us = await BgpctlDaemon.start(lab, usNs, daemonConfig({}, {}), "bgpctl-ttl");
}, 60_000);

afterAll(async () => {
  await lab?.cleanup();
}, 30_000);

describe("session TTL against BIRD", () => {
  test("(a) directly connected, GTSM on both sides: Established over IPv4 and IPv6", async () => {
    for (const a of [NEAR4, NEAR6]) await us.waitEstablished(a, 15_000);
    const out = await us.command("show", "neighbors", NEAR4);
    expect(out).toContain("TTL security: 1 hop (min TTL 255)");
  }, 30_000);

  test("(b) two hops without multihop, (c) two hops with ttlSecurity 1: no session; the kernel says why", async () => {
    const [usNs, rNs] = [net.ns["ttl-us"]!, net.ns["ttl-r"]!];
    const timeExceeded = await counter(rNs, "snmp", "Icmp", "OutTimeExcds");
    const minTtlDrops = await counter(usNs, "netstat", "TcpExt", "TCPMinTTLDrop");
    const deadline = Date.now() + NO_SESSION_MS;
    while (Date.now() < deadline) {
      for (const a of [FAR_B, FAR_C]) expect((await us.neighbor(a)).state).not.toBe("Established");
      await sleep(500);
    }
    // BIRD without our OPEN (b) never gets there. With GTSM (c) it may, for a moment: its OPEN can reach
    // our accepted socket's buffer before the minimum TTL is set on it (a known gap, see lib/bgp/listener.ts),
    // we answer, and only its KEEPALIVE is dropped — our side, checked above, never comes up.
    expect((await far.protocol("mh")).bgpState).not.toBe("Established");
    // (b): our packets died of TTL at r, BIRD never got our OPEN.
    expect(await counter(rNs, "snmp", "Icmp", "OutTimeExcds")).toBeGreaterThan(timeExceeded);
    expect(openSeenBy(far, "mh")).toEqual([]);
    expect((await us.command("show", "neighbors", FAR_B))).toContain("Directly connected: TTL 1");
    // (c): BIRD's packets (TTL 254 on arrival) fell below our minimum TTL 255, while
    // ours (sent with 255) passed BIRD's minimum 254: BIRD got our OPEN.
    expect(await counter(usNs, "netstat", "TcpExt", "TCPMinTTLDrop")).toBeGreaterThan(minTtlDrops);
    expect(openSeenBy(far, "gtsm2").length).toBeGreaterThan(0);
    expect(await us.command("show", "neighbors", FAR_C)).toContain("TTL security: 1 hop (min TTL 255)");
  }, 30_000);

  test("(b) with multihop: 2 and (c) with ttlSecurity: 2 (after a reload): Established", async () => {
    us.writeConfig(daemonConfig({ multihop: 2 }, { ttlSecurity: 2 }));
    const r = await us.reload();
    expect(r.code).toBe(0);
    for (const a of [FAR_B, FAR_C]) await us.waitEstablished(a, 20_000, [far.proc]);
    for (const p of ["mh", "gtsm2"]) await far.waitEstablished(p, 10_000);
    expect(openSeenBy(far, "mh").length).toBeGreaterThan(0);
    expect(await us.command("show", "neighbors", FAR_B)).toContain("Multihop: TTL 2");
    expect(await us.command("show", "neighbors", FAR_C)).toContain("TTL security: 2 hops (min TTL 254)");
    // The GTSM sessions one hop away were not touched by the reload.
    for (const a of [NEAR4, NEAR6]) expect((await us.neighbor(a)).state).toBe("Established");
    expect(readFileSync(us.configPath, "utf8")).toContain("ttlSecurity: 2");
  }, 40_000);
});
