/**
 * bgpctl itself: `bgpctl run` from the compiled binary ($BGPCTL_BIN, else
 * dist/bgpctl), counted through its control socket (the `accepted` count of
 * each injector neighbor, what `bgpctl show neighbors` prints), with the
 * event loop's lag read from `show summary` (`.eventLoop`) when present.
 * Also `bgpctl watch-k8s` as one Kubernetes node (the k8s scenario,
 * tests/bench/k8s.ts): `startWatchK8s`.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiClient } from "../../../lib/api/client.ts";
import { DAEMON_AS, DAEMON_V4, INJECT_AS, type Lab, Lines, SINK_AS, injectorAddr, sinkAddr, spawnIn, stopProc } from "../lab.ts";
import { type Daemon, type EventLoopStats, awaitUp, firstLine, injectorSet } from "./types.ts";

const BIN = process.env.BGPCTL_BIN ?? join(import.meta.dir, "../../../dist/bgpctl");

/** The event loop's figures of a `show summary` answer (null from a build that reports none). */
function loopStats(summary: unknown): EventLoopStats | null {
  const s = summary as { eventLoop?: EventLoopStats; slices?: { longestMs: number; longestOnCoreMs?: number; longestOnCoreAt?: number } };
  return s.eventLoop ? { ...s.eventLoop, longestTurnMs: s.slices?.longestMs, longestTurnOnCoreMs: s.slices?.longestOnCoreMs, longestTurnOnCoreAt: s.slices?.longestOnCoreAt } : null;
}

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
        return loopStats(await api.summary());
      },
      stop: () => stopProc(p),
    };
  },
};

/** A running `bgpctl watch-k8s`: its control socket answers only once the caches are synced and the router runs. */
export interface WatchK8s {
  pid: number;
  proc: Bun.Subprocess<"pipe", "pipe", "pipe">;
  output: Lines;
  /** The control socket answers (`show summary`). */
  up(): Promise<boolean>;
  eventLoop(): Promise<EventLoopStats | null>;
  stop(): Promise<void>;
}

/**
 * Start `bgpctl watch-k8s` in the lab's daemon namespace as node `nodeName`,
 * reading the API through `kubeconfig`, without the node mesh, with the
 * sinks as external peers (eBGP from the cluster AS 64512; they connect).
 * Returns at once: the caller times the start.
 */
export function startWatchK8s(spec: { lab: Lab; dir: string; kubeconfig: string; nodeName: string; sinks: number }): WatchK8s {
  const conf = join(spec.dir, "watch-k8s.yaml");
  const sock = join(spec.dir, "bgpctl.sock");
  const peers: string[] = [];
  for (let i = 0; i < spec.sinks; i++) peers.push(`    - {address: ${sinkAddr(i)}, remoteAs: ${SINK_AS}, passive: true, holdTime: 240, families: [ipv4, ipv6], import: none}`);
  writeFileSync(
    conf,
    `controlSocket: ${sock}\nlog: {level: info}\nlisten: {address: "${DAEMON_V4}", port: 179}\nkubernetes:\n  nodeName: ${spec.nodeName}\n  kubeconfig: ${spec.kubeconfig}\n  mesh: false\n  peers:\n${peers.join("\n")}\n`,
  );
  const p = spawnIn(spec.lab.daemonNs, [BIN, "watch-k8s", "--config", conf]);
  const api = new ApiClient(sock);
  return {
    pid: p.pid,
    proc: p,
    output: new Lines(p),
    up: () => api.summary().then(() => true, () => false),
    async eventLoop() {
      return loopStats(await api.summary());
    },
    stop: () => stopProc(p),
  };
}
