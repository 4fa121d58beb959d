/**
 * `bgpctl show ...`: the daemon's state over its control socket
 * (`show summary`, `show neighbors [ADDR]`, `show rib [PREFIX [longer|shorter]] [filters]`,
 * `show rib summary`; implemented in commands/ctl.ts), and the one-shot
 * looking glass that needs no daemon:
 * `bgpctl show rib --peer ADDR --remote-as N --local-as N [...] [--json]`.
 */
import type { Command } from "commander";
import { UsageError, parseIntIn } from "../lib/cli/args.ts";
import { writeLine, flush } from "../lib/cli/output.ts";
import { addSessionFlags, sessionOptions } from "../lib/cli/session-flags.ts";
import { formatRibTable } from "../lib/standalone/format.ts";
import { collectRib } from "../lib/standalone/looking-glass.ts";
import { type CtlFlags, SHOW_RIB_DAEMON_KEYS, type ShowRibFlags, addCtlFlags, rejectFlags, showFib, showInterfaces, showK8s, showNeighbors, showRib, showSummary } from "./ctl.ts";

export function registerShow(program: Command): void {
  const show = program.command("show").description("show routes and sessions");

  addCtlFlags(show.command("summary").description("one line per neighbour: AS, messages, up/down time, state or prefixes received")).action(
    (flags: CtlFlags) => showSummary(flags),
  );

  addCtlFlags(
    show
      .command("neighbors")
      .alias("neighbor")
      .argument("[addr]", "only this neighbour")
      .description("neighbour details: state, timers, capabilities, counters, last error"),
  ).action((addr: string | undefined, flags: CtlFlags) => showNeighbors(addr, flags));

  addCtlFlags(
    show
      .command("fib")
      .argument("[prefix]", "only this prefix")
      .description("the routes bgpctl programs into the kernel, with their sync state (installed, pending, failed + reason, conflict, excluded)"),
  ).action((prefix: string | undefined, flags: CtlFlags) => showFib(prefix, flags));

  addCtlFlags(
    show
      .command("k8s")
      .description("under watch-k8s: what the controller derived from Kubernetes (peers, originated prefixes, per-Service state and why, problems)"),
  ).action((flags: CtlFlags) => showK8s(flags));

  addCtlFlags(show.command("interfaces").description("links and addresses as bgpctl sees them (rtnetlink)")).action((flags: CtlFlags) => showInterfaces(flags));

  const rib = addSessionFlags(
    show
      .command("rib")
      .argument("[args...]", "PREFIX (or address) [longer|shorter], or summary")
      .usage("[PREFIX [longer|shorter]] [--neighbor ADDR [--in|--out]] [--community C] [--as N] [--best] [--family ipv4|ipv6]  |  summary  |  --peer ADDR --remote-as N --local-as N [...]")
      .description("the daemon's routes (Loc-RIB; with --neighbor its Adj-RIB-In/Out), or with --peer a one-shot session's table"),
  )
    .option("--peer <addr>", "no daemon: open a session to this peer, collect its table until End-of-RIB, print it")
    .option("--timeout <seconds>", "with --peer: give up waiting for End-of-RIB after this long", "30")
    .option("-j, --json", "print JSON")
    .option("--neighbor <addr>", "routes learned from (or with --out, sent to) this neighbour")
    .option("--in", "with --neighbor: its Adj-RIB-In (before import policy)")
    .option("--out", "with --neighbor: its Adj-RIB-Out (what we send it)")
    .option("--as <asn>", "routes whose AS path contains this AS")
    .option("--best", "only the best path of each prefix");
  addCtlFlags(rib, false).action(async (args: string[], flags: ShowRibFlags & { peer?: string; timeout: string }, cmd: Command) => {
    if (!flags.peer) return showRib(args, flags, cmd);
    if (args.length) throw new UsageError(`show rib --peer: unexpected argument "${args[0]}" (the one-shot session prints the peer's whole table)`);
    rejectFlags(cmd, SHOW_RIB_DAEMON_KEYS, "asks the daemon and does not apply with --peer (a one-shot session)");
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
