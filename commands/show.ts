/**
 * `bgpctl show ...`. For now the one-shot looking glass:
 * `bgpctl show rib --peer ADDR --remote-as N --local-as N [...] [--json]`.
 */
import type { Command } from "commander";
import { UsageError, parseIntIn } from "../lib/cli/args.ts";
import { writeLine, flush } from "../lib/cli/output.ts";
import { addSessionFlags, type RawSessionFlags, sessionOptions } from "../lib/cli/session-flags.ts";
import { formatRibTable } from "../lib/standalone/format.ts";
import { collectRib } from "../lib/standalone/looking-glass.ts";

export function registerShow(program: Command): void {
  const show = program.command("show").description("show routes and sessions");
  addSessionFlags(show.command("rib").description("print the routes a peer sends (one-shot session with --peer)"))
    .option("--peer <addr>", "open a session to this peer, collect its table until End-of-RIB, print it")
    .option("--timeout <seconds>", "give up waiting for End-of-RIB after this long", "30")
    .option("--json", "print a JSON array")
    .action(async (flags: RawSessionFlags & { peer?: string; timeout: string; json?: boolean }) => {
      if (!flags.peer) throw new UsageError("show rib: --peer ADDR is required (there is no running daemon to ask yet)");
      const opts = sessionOptions(flags.peer, flags);
      const timeout = parseIntIn("--timeout", flags.timeout, 1, 86400);
      const r = await collectRib(opts, timeout * 1000);
      if (r.error) {
        process.stderr.write(`bgpctl: show rib: ${flags.peer}: ${r.error}\n`);
        process.exitCode = 1;
        return;
      }
      if (!r.complete) process.stderr.write(`bgpctl: show rib: ${flags.peer}: no End-of-RIB within ${timeout}s; the table may be incomplete\n`);
      if (flags.json) writeLine(JSON.stringify(r.routes));
      else process.stdout.write(formatRibTable(r.routes));
      flush();
    });
}
