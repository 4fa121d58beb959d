/**
 * GoBGP (`gobgpd`), its gRPC API on 127.0.0.1 inside the daemon's namespace,
 * counted with its own CLI (`gobgp neighbor`: the Accepted column of each
 * injector) run in that namespace.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DAEMON_AS, DAEMON_V4, INJECT_AS, SINK_AS, injectorAddr, out, sinkAddr, spawnIn, stopProc } from "../lab.ts";
import { type Daemon, awaitUp, ensureInstalled, firstLine, injectorSet, sumLastColumn } from "./types.ts";

export const gobgp: Daemon = {
  name: "gobgp",
  unavailable: () => ensureInstalled("gobgpd", "gobgpd") ?? (Bun.which("gobgp") ? null : "not available (gobgp CLI missing)"),
  version: () => firstLine(["gobgpd", "--version"]),
  async start(spec) {
    const conf = join(spec.dir, "gobgpd.toml");
    const lines = [`[global.config]`, `  as = ${DAEMON_AS}`, `  router-id = "${DAEMON_V4}"`, `  port = 179`, `  local-address-list = ["${DAEMON_V4}"]`];
    const nbr = (addr: string, as: number) =>
      lines.push(
        `[[neighbors]]`,
        `  [neighbors.config]`,
        `    neighbor-address = "${addr}"`,
        `    peer-as = ${as}`,
        `  [neighbors.timers.config]`,
        `    hold-time = 240`,
        `  [neighbors.transport.config]`,
        `    passive-mode = true`,
        `  [[neighbors.afi-safis]]`,
        `    [neighbors.afi-safis.config]`,
        `      afi-safi-name = "ipv4-unicast"`,
        `  [[neighbors.afi-safis]]`,
        `    [neighbors.afi-safis.config]`,
        `      afi-safi-name = "ipv6-unicast"`,
      );
    for (let i = 0; i < spec.injectors; i++) nbr(injectorAddr(i), INJECT_AS);
    for (let i = 0; i < spec.sinks; i++) nbr(sinkAddr(i), SINK_AS);
    writeFileSync(conf, lines.join("\n") + "\n");
    const ns = spec.lab.daemonNs;
    const p = spawnIn(ns, ["gobgpd", "-f", conf, "--api-hosts", "127.0.0.1:50051", "--disable-stdlog", "--pprof-disable"]);
    const cli = (...a: string[]) => out(["ip", "netns", "exec", ns, "gobgp", "-u", "127.0.0.1", "-p", "50051", ...a]);
    await awaitUp(p, "gobgpd", async () => (await cli("global")).includes("AS"));
    const injectors = injectorSet(spec.injectors);
    return {
      pid: p.pid,
      accepted: async () => sumLastColumn(await cli("neighbor"), injectors),
      stop: () => stopProc(p),
    };
  },
};
