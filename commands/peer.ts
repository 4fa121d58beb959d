/**
 * `bgpctl peer ADDR ...`: run one BGP session in the foreground, print state
 * changes and every route received or withdrawn (JSON lines with --json),
 * announce the given prefixes; SIGINT/SIGTERM sends Cease/Administrative
 * Shutdown and exits 0.
 */
import type { Command } from "commander";
import { addSessionFlags, type RawSessionFlags, sessionOptions } from "../lib/cli/session-flags.ts";
import { formatEvent } from "../lib/standalone/format.ts";
import { type PeerEvent, StandaloneSpeaker } from "../lib/standalone/speaker.ts";
import { writeLine } from "../lib/cli/output.ts";

export function registerPeer(program: Command): void {
  addSessionFlags(program.command("peer").argument("<addr>", "the peer's address").description("run one BGP session in the foreground"))
    .option("--shutdown-message <text>", "shutdown communication sent on exit (RFC 9003)", "bgpctl peer stopped")
    .option("--json", "one JSON object per line")
    .option("-v, --verbose", "also print debug messages")
    .action(async (addr: string, flags: RawSessionFlags & { json?: boolean; verbose?: boolean; shutdownMessage: string }) => {
      const opts = sessionOptions(addr, flags);
      const print = (e: PeerEvent) => {
        if (e.event === "log" && e.level === "debug" && !flags.verbose) return;
        writeLine(flags.json ? JSON.stringify(e) : formatEvent(e));
      };
      const speaker = new StandaloneSpeaker(opts, print);
      let stopping = false;
      const stopped = new Promise<void>((resolve) => {
        const onSignal = () => {
          if (stopping) return;
          stopping = true;
          speaker.stop(flags.shutdownMessage).finally(resolve);
        };
        process.on("SIGINT", onSignal);
        process.on("SIGTERM", onSignal);
      });
      await speaker.start();
      await stopped;
    });
}
