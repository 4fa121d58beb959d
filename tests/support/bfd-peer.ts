/**
 * A BFD peer in a process of its own, for tests that stall the test's own
 * event loop: lib/bfd's manager on UDP, one session to `--peer`, printing
 * each state change as a JSON line on stdout ("ready" once listening).
 *
 *   bun tests/support/bfd-peer.ts --listen PORT --send PORT --peer ADDR [--min-tx MS] [--min-rx MS] [--multiplier N]
 *
 * Exits on SIGTERM, or after --lifetime seconds (default 60) at the latest.
 */
import { parseArgs } from "node:util";
import { BfdManager, UdpTransport } from "../../lib/bfd/mod.ts";

const { values: v } = parseArgs({
  options: {
    listen: { type: "string" },
    send: { type: "string" },
    peer: { type: "string" },
    "min-tx": { type: "string", default: "300" },
    "min-rx": { type: "string", default: "300" },
    multiplier: { type: "string", default: "3" },
    lifetime: { type: "string", default: "60" },
  },
});
if (!v.listen || !v.send || !v.peer) throw new Error("bfd-peer: --listen, --send and --peer are required");
const listen = Number(v.listen);
const sendPort = Number(v.send);
// Receives on --listen, sends to --send: the two ends of a test on one host use crossed ports.
const transport = new UdpTransport({ singleHopPort: listen, multihopPort: listen + 1, remotePort: sendPort, listenAddress: v.peer });
const m = new BfdManager({ transport, log: () => {} });
await transport.listen(false);
m.add(v.peer, { peer: v.peer, local: v.peer, multihop: false, minTx: Number(v["min-tx"]), minRx: Number(v["min-rx"]), multiplier: Number(v.multiplier) }, (c) =>
  process.stdout.write(JSON.stringify({ state: c.to, at: Date.now() }) + "\n"),
);
process.stdout.write(JSON.stringify({ state: "ready", at: Date.now() }) + "\n");
const stop = () => {
  m.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
setTimeout(stop, Number(v.lifetime) * 1000);
