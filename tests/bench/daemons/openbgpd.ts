/**
 * OpenBGPD (`bgpd -d -f FILE`: parent, session engine and route decision
 * engine processes; RSS counts all three). Counted with OpenBGPD's own CLI,
 * called by full path (/usr/sbin/bgpctl, not ours) on the run's control
 * socket: `show summary`, the PrfRcvd column of each injector. `fib-update
 * no` except in the kernel scenario.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DAEMON_AS, DAEMON_V4, DAEMON_V6, INJECT_AS, SINK_AS, injectorAddr, out, sinkAddr, spawnIn, stopProc } from "../lab.ts";
import { type Daemon, awaitUp, ensureInstalled, injectorSet, sumLastColumn } from "./types.ts";

const BGPD = "/usr/sbin/bgpd";
const CLI = "/usr/sbin/bgpctl";

export const openbgpd: Daemon = {
  name: "openbgpd",
  unavailable: () => ensureInstalled(CLI, "openbgpd"),
  version: () => {
    const r = Bun.spawnSync([BGPD, "-V"], { stdout: "pipe", stderr: "pipe" });
    return (r.stdout.toString() + r.stderr.toString()).trim().split("\n")[0] ?? "OpenBGPD";
  },
  async start(spec) {
    const conf = join(spec.dir, "bgpd.conf");
    const sock = join(spec.dir, "bgpd.sock");
    const lines = [
      `AS ${DAEMON_AS}`,
      `router-id ${DAEMON_V4}`,
      `listen on ${DAEMON_V4}`,
      `socket "${sock}"`,
      `holdtime 240`,
      `fib-update ${spec.kernelTable ? "yes" : "no"}`,
    ];
    for (let i = 0; i < spec.injectors; i++) lines.push(`neighbor ${injectorAddr(i)} {\n  remote-as ${INJECT_AS}\n  passive\n  announce IPv4 unicast\n  announce IPv6 unicast\n}`);
    for (let i = 0; i < spec.sinks; i++) lines.push(`neighbor ${sinkAddr(i)} {\n  remote-as ${SINK_AS}\n  passive\n  local-address ${DAEMON_V4}\n  local-address ${DAEMON_V6}\n  announce IPv4 unicast\n  announce IPv6 unicast\n}`);
    lines.push("allow from any", "allow to any");
    writeFileSync(conf, lines.join("\n") + "\n");
    // Its engines chroot into the _openbgpd user's home, which systemd's unit would create (RuntimeDirectory).
    mkdirSync("/run/openbgpd", { recursive: true });
    const p = spawnIn(spec.lab.daemonNs, [BGPD, "-d", "-f", conf]);
    const cli = (...a: string[]) => out([CLI, "-s", sock, ...a]);
    await awaitUp(p, "OpenBGPD", async () => (await cli("show", "summary")).includes("Neighbor"));
    const injectors = injectorSet(spec.injectors);
    return {
      pid: p.pid,
      accepted: async () => sumLastColumn(await cli("show", "summary"), injectors),
      stop: () => stopProc(p),
    };
  },
};
