/**
 * FRR's `bgpd` alone, without zebra (`-Z`: no RIB manager, no kernel; `-S`:
 * no user switch), listening on the daemon address. Counted with `vtysh -d
 * bgpd` on the run's own vty socket directory (`show bgp summary json`: each
 * injector's pfxRcd, IPv4 plus IPv6); vtysh talks to bgpd's vty socket
 * directly and needs neither zebra nor watchfrr. IPv6 routes sent to sinks
 * over the IPv4 session get the daemon's IPv6 address as next hop (a
 * route-map: without zebra bgpd knows no interface addresses), and no
 * minimum advertisement interval towards them (as every other daemon here). No kernel
 * scenario: bgpd without zebra cannot install routes.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DAEMON_AS, DAEMON_V4, DAEMON_V6, INJECT_AS, SINK_AS, injectorAddr, out, sinkAddr, spawnIn, stopProc } from "../lab.ts";
import { type Daemon, awaitUp, ensureInstalled, firstLine, injectorSet } from "./types.ts";

const BGPD = "/usr/lib/frr/bgpd";

export const frr: Daemon = {
  name: "frr",
  unavailable: () => ensureInstalled(BGPD, "frr") ?? (Bun.which("vtysh") ? null : "not available (vtysh missing)"),
  version: () => firstLine([BGPD, "--version"]),
  async start(spec) {
    const conf = join(spec.dir, "bgpd.conf");
    const nbr: string[] = [];
    const af4: string[] = [];
    const af6: string[] = [];
    const add = (addr: string, as: number, out: boolean) => {
      nbr.push(` neighbor ${addr} remote-as ${as}`, ` neighbor ${addr} passive`, ` neighbor ${addr} timers 80 240`);
      af4.push(`  neighbor ${addr} activate`);
      af6.push(`  neighbor ${addr} activate`);
      if (out) {
        nbr.push(` neighbor ${addr} advertisement-interval 0`);
        af6.push(`  neighbor ${addr} route-map V6NH out`);
      }
    };
    for (let i = 0; i < spec.injectors; i++) add(injectorAddr(i), INJECT_AS, false);
    for (let i = 0; i < spec.sinks; i++) add(sinkAddr(i), SINK_AS, true);
    writeFileSync(
      conf,
      [
        "frr defaults traditional",
        "hostname bench",
        "log stdout warnings",
        `router bgp ${DAEMON_AS}`,
        ` bgp router-id ${DAEMON_V4}`,
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        ...nbr,
        " address-family ipv4 unicast",
        ...af4,
        " exit-address-family",
        " address-family ipv6 unicast",
        ...af6,
        " exit-address-family",
        "route-map V6NH permit 10",
        ` set ipv6 next-hop global ${DAEMON_V6}`,
        "",
      ].join("\n"),
    );
    const vty = spec.dir;
    const p = spawnIn(spec.lab.daemonNs, [BGPD, "-Z", "-S", "-f", conf, "-i", join(spec.dir, "bgpd.pid"), "--vty_socket", vty, "-l", DAEMON_V4, "-l", DAEMON_V6, "-p", "179", "-P", "0"]);
    const vtysh = (cmd: string) => out(["vtysh", "--vty_socket", vty, "-d", "bgpd", "-c", cmd]);
    await awaitUp(p, "FRR bgpd", async () => (await vtysh("show bgp summary json")).includes("ipv4Unicast"));
    const injectors = injectorSet(spec.injectors);
    return {
      pid: p.pid,
      async accepted() {
        const j = JSON.parse(await vtysh("show bgp summary json")) as Record<string, { peers?: Record<string, { pfxRcd?: number }> }>;
        let n = 0;
        for (const fam of ["ipv4Unicast", "ipv6Unicast"]) for (const [a, peer] of Object.entries(j[fam]?.peers ?? {})) if (injectors.has(a)) n += peer.pfxRcd ?? 0;
        return n;
      },
      stop: () => stopProc(p),
    };
  },
};
