/**
 * bgpctl itself: `bgpctl run` from the compiled binary ($BGPCTL_BIN, else
 * dist/bgpctl), counted through its control socket (the `accepted` count of
 * each injector neighbor, what `bgpctl show neighbors` prints), with the
 * event loop's lag read from `show summary` (`.eventLoop`) when present.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiClient } from "../../../lib/api/client.ts";
import { DAEMON_AS, DAEMON_V4, INJECT_AS, SINK_AS, injectorAddr, sinkAddr, spawnIn, stopProc } from "../lab.ts";
import { type Daemon, type EventLoopStats, awaitUp, firstLine, injectorSet } from "./types.ts";

const BIN = process.env.BGPCTL_BIN ?? join(import.meta.dir, "../../../dist/bgpctl");

export const bgpctl: Daemon = {
  name: "bgpctl",
  unavailable: () => (Bun.file(BIN).size > 0 ? null : `not available (${BIN} missing: npm run build, or set BGPCTL_BIN)`),
  version: () => `bgpctl ${firstLine([BIN, "--version"])} (${BIN})`,
  async start(spec) {
    const conf = join(spec.dir, "bgpctl.yaml");
    const sock = join(spec.dir, "bgpctl.sock");
    const peers: string[] = [];
    for (let i = 0; i < spec.injectors; i++) peers.push(`  - {address: ${injectorAddr(i)}, remoteAs: ${INJECT_AS}, passive: true, holdTime: 240, families: [ipv4, ipv6], import: all, export: none}`);
    for (let i = 0; i < spec.sinks; i++) peers.push(`  - {address: ${sinkAddr(i)}, remoteAs: ${SINK_AS}, passive: true, holdTime: 240, families: [ipv4, ipv6], import: none, export: all}`);
    const kernel = spec.kernelTable ? `kernel: {enabled: true, table: ${spec.kernelTable}, families: [ipv4, ipv6]}\n` : "";
    writeFileSync(conf, `asn: ${DAEMON_AS}\nrouterId: ${DAEMON_V4}\nlisten: {address: "::", port: 179}\ncontrolSocket: ${sock}\nlog: {level: warn}\nmrai: 0\n${kernel}peers:\n${peers.join("\n")}\n`);
    const p = spawnIn(spec.lab.daemonNs, [BIN, "run", "--config", conf]);
    const api = new ApiClient(sock);
    await awaitUp(p, "bgpctl run", () => api.summary().then(() => true));
    const injectors = injectorSet(spec.injectors);
    return {
      pid: p.pid,
      async accepted() {
        let n = 0;
        for (const nb of await api.neighbors()) if (injectors.has(nb.address)) n += nb.accepted;
        return n;
      },
      async eventLoop() {
        const s = (await api.summary()) as { eventLoop?: EventLoopStats };
        return s.eventLoop ?? null;
      },
      stop: () => stopProc(p),
    };
  },
};
