/**
 * BIRD 2 (`bird -f`), counted with `birdc show protocols all` (the sum of
 * each injector channel's "imported" routes). Kernel scenario: a kernel
 * protocol per family exporting everything into the given table.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DAEMON_AS, DAEMON_V4, DAEMON_V6, INJECT_AS, SINK_AS, injectorAddr, out, sinkAddr, spawnIn, stopProc } from "../lab.ts";
import { type Daemon, awaitUp, ensureInstalled, firstLine } from "./types.ts";

export const bird: Daemon = {
  name: "bird",
  unavailable: () => ensureInstalled("bird", "bird2") ?? (Bun.which("birdc") ? null : "not available (birdc missing)"),
  version: () => firstLine(["bird", "--version"]),
  async start(spec) {
    const conf = join(spec.dir, "bird.conf");
    const sock = join(spec.dir, "bird.ctl");
    const lines = [`router id ${DAEMON_V4};`, "protocol device { scan time 10; }"];
    if (spec.kernelTable) {
      lines.push(`protocol kernel k4 { kernel table ${spec.kernelTable}; ipv4 { export all; import none; }; }`);
      lines.push(`protocol kernel k6 { kernel table ${spec.kernelTable}; ipv6 { export all; import none; }; }`);
    }
    for (let i = 0; i < spec.injectors; i++) {
      lines.push(`protocol bgp in${i} { local ${DAEMON_V4} as ${DAEMON_AS}; neighbor ${injectorAddr(i)} as ${INJECT_AS}; passive on; hold time 240;
  ipv4 { import all; export none; }; ipv6 { import all; export none; }; }`);
    }
    for (let i = 0; i < spec.sinks; i++) {
      lines.push(`protocol bgp out${i} { local ${DAEMON_V4} as ${DAEMON_AS}; neighbor ${sinkAddr(i)} as ${SINK_AS}; passive on; hold time 240;
  ipv4 { import none; export all; }; ipv6 { import none; export all; next hop address ${DAEMON_V6}; }; }`);
    }
    writeFileSync(conf, lines.join("\n") + "\n");
    const p = spawnIn(spec.lab.daemonNs, ["bird", "-f", "-c", conf, "-s", sock]);
    await awaitUp(p, "BIRD", async () => (await out(["birdc", "-s", sock, "show", "status"])).includes("Daemon is up"));
    return {
      pid: p.pid,
      async accepted() {
        const s = await out(["birdc", "-s", sock, "show", "protocols", "all"]);
        let n = 0;
        // Channel blocks of the injector protocols: "Routes: N imported, ..."
        for (const block of s.split(/\n(?=\S)/)) {
          if (!/^in\d+\s/.test(block)) continue;
          for (const m of block.matchAll(/Routes:\s+(\d+) imported/g)) n += Number(m[1]);
        }
        return n;
      },
      stop: () => stopProc(p),
    };
  },
};
