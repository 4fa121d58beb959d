/**
 * `bgpctl show ...`: the daemon's state over its control socket
 * (`show summary`, `show neighbors [ADDR]`, `show rib [PREFIX [longer|shorter]] [filters]`,
 * `show rib summary`; implemented in commands/ctl.ts; `show metrics`, the
 * Prometheus text; `show rib --mrt FILE`, the daemon's table as an MRT
 * TABLE_DUMP_V2 file), and the one-shot
 * looking glass that needs no daemon:
 * `bgpctl show rib --peer ADDR --remote-as N --local-as N [...] [--json]`.
 */
import type { Command } from "commander";
import { UsageError, collect, parseIntIn } from "../lib/cli/args.ts";
import { daemonAndOneShot, groupOptions, rejectFlags, rejectOtherForm, setFormsUsage } from "../lib/cli/forms.ts";
import { saveMrt } from "../lib/mrt/save.ts";
import { writeLine, flush } from "../lib/cli/output.ts";
import { addSessionFlags, sessionOptions } from "../lib/cli/session-flags.ts";
import { formatRibTable } from "../lib/standalone/format.ts";
import { collectRib } from "../lib/standalone/looking-glass.ts";
import { formatBfd, formatChecks } from "../lib/api/format.ts";
import { type CtlFlags, ONESHOT_SESSION_KEYS, SHOW_RIB_DAEMON_KEYS, type ShowRibFlags, addCtlFlags, ctlClient, showFib, showInterfaces, showK8s, showNeighbors, showRib, showSummary } from "./ctl.ts";

/** `show rib` asking the daemon, and `show rib --peer`: the one-shot looking glass, no daemon. */
const { daemon: RIB_DAEMON, oneShot: RIB_ONESHOT } = daemonAndOneShot(
  "show rib",
  {
    usage: "[PREFIX [longer|shorter]] [--neighbor ADDR [--in|--out]] [--community C] [--as N] [--best] [--family ipv4|ipv6] [-s SOCKET]",
    heading: "Daemon form (asks bgpctl run over its control socket):",
    short: "[PREFIX] [filters] [-s SOCKET]",
  },
  {
    usage: "--peer ADDR --remote-as N --local-as N [--router-id ID] [--port P] [--local-address A] [--passive] [--family ipv4,ipv6] [--timeout S]",
    heading: "One-shot form (no daemon: a session of its own to --peer):",
    short: "--peer ADDR --remote-as N --local-as N ...",
  },
);

/**
 * `show rib --mrt FILE [--family F]`: the daemon streams its Loc-RIB as
 * TABLE_DUMP_V2 (GET /v1/rib/mrt), written here to FILE (saveMrt: whole
 * records or nothing; a relative FILE is relative to the current directory).
 */
async function showRibMrt(file: string, args: string[], flags: ShowRibFlags, cmd: Command): Promise<void> {
  if (args.length) throw new UsageError(`show rib --mrt: unexpected argument "${args[0]}" (the snapshot is the whole table; only --family narrows it)`);
  rejectFlags(cmd, ["neighbor", "in", "out", "as", "best", "community", "largeCommunity", "limit", "ndjson", "json"], "does not apply to show rib --mrt");
  if (file === "") throw new UsageError("show rib --mrt: the file name is empty");
  let family: "ipv4" | "ipv6" | undefined;
  if (cmd.getOptionValueSource("family") === "cli") {
    if (flags.family !== "ipv4" && flags.family !== "ipv6") throw new UsageError(`--family: "${flags.family}" must be ipv4 or ipv6 with --mrt`);
    family = flags.family;
  }
  const client = ctlClient(flags);
  let saved;
  try {
    saved = await saveMrt(file, (write) => client.ribMrt(family, write));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === "string" && code.startsWith("E")) throw new Error(`show rib --mrt: ${file}: ${(e as Error).message}`);
    throw e;
  }
  process.stderr.write(`bgpctl: wrote ${saved.prefixes} prefixes, ${saved.routes} routes (${saved.records} MRT records, ${saved.bytes} bytes) to ${file}\n`);
}

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
    show.command("bfd").description("BFD sessions: peer, addresses, state, remote state, diagnostic, negotiated intervals, detection time, since, BGP state, last down reason"),
  ).action(async (flags: CtlFlags) => {
    const list = await ctlClient(flags).bfd();
    if (flags.json) writeLine(JSON.stringify(list));
    else process.stdout.write(formatBfd(list));
    flush();
  });

  addCtlFlags(show.command("checks").description("health checks: state, what is announced, prefixes, last result and output, counters")).action(async (flags: CtlFlags) => {
    const list = await ctlClient(flags).checks();
    if (flags.json) writeLine(JSON.stringify(list));
    else process.stdout.write(formatChecks(list));
    flush();
  });

  addCtlFlags(
    show
      .command("k8s")
      .description("under watch-k8s: what the controller derived from Kubernetes (peers, originated prefixes, per-Service state and why, problems)"),
  ).action((flags: CtlFlags) => showK8s(flags));

  addCtlFlags(show.command("metrics").description("the Prometheus metrics, as the metrics endpoint serves them (text exposition format)"), false).action(
    async (flags: CtlFlags) => {
      process.stdout.write(await ctlClient(flags).metrics());
    },
  );

  addCtlFlags(show.command("interfaces").description("links and addresses as bgpctl sees them (rtnetlink)")).action((flags: CtlFlags) => showInterfaces(flags));

  // Declared in help order: the daemon form's flags, then the one-shot form's, then those of both.
  const rib = show
    .command("rib")
    .argument("[args...]", "PREFIX (or address) [longer|shorter], or summary")
    .description("the daemon's routes (Loc-RIB; with --neighbor its Adj-RIB-In/Out), or with --peer a one-shot session's table")
    .option("--neighbor <addr>", "routes learned from (or with --out, sent to) this neighbour")
    .option("--in", "with --neighbor: its Adj-RIB-In (before import policy)")
    .option("--out", "with --neighbor: its Adj-RIB-Out (what we send it)")
    .option("--community <c>", "routes carrying this community (A:B or a well-known name)", collect)
    .option("--large-community <a:b:c>", "routes carrying this large community", collect)
    .option("--as <asn>", "routes whose AS path contains this AS")
    .option("--best", "only the best path of each prefix")
    .option("--limit <n>", "stop after N entries (the output says when more matched)")
    .option("--ndjson", "print one JSON object per line instead of the -j array")
    .option("--mrt <file>", "write the whole Loc-RIB (optionally --family) to FILE as an MRT TABLE_DUMP_V2 snapshot (read by bgpctl mrt, bgpdump)");
  addCtlFlags(rib, false);
  rib.option("--peer <addr>", "open a session to this peer, collect its table until End-of-RIB, print it");
  addSessionFlags(rib, { group: RIB_ONESHOT.heading, requiredWhen: "with --peer", withoutAnnouncements: true });
  rib.option("--timeout <seconds>", "give up waiting for End-of-RIB after this long", "30").option("-j, --json", "print JSON");
  setFormsUsage(rib, "bgpctl", [RIB_DAEMON.usage, "summary [-s SOCKET]", "--mrt FILE [--family ipv4|ipv6] [-s SOCKET]", RIB_ONESHOT.usage]);
  groupOptions(rib, RIB_DAEMON.heading, ["--neighbor", "--in", "--out", "--community", "--large-community", "--as", "--best", "--limit", "--ndjson", "--mrt", "--socket"]);
  groupOptions(rib, RIB_ONESHOT.heading, ["--peer", "--timeout"]);
  groupOptions(rib, "Both forms:", ["--family", "--json"], {
    "--family": "daemon form: only this family (ipv4 or ipv6); one-shot form: the families to negotiate (default ipv4,ipv6)",
  });
  rib.action(async (args: string[], flags: ShowRibFlags & { peer?: string; timeout: string; mrt?: string }, cmd: Command) => {
    if (flags.mrt !== undefined) {
      if (flags.peer) throw new UsageError("show rib: --mrt writes the daemon's table; it does not apply with --peer");
      return showRibMrt(flags.mrt, args, flags, cmd);
    }
    if (!flags.peer) {
      rejectOtherForm(cmd, [...ONESHOT_SESSION_KEYS, "timeout"], RIB_ONESHOT, "without --peer, show rib asks the daemon");
      return showRib(args, flags, cmd);
    }
    if (args.length) throw new UsageError(`show rib --peer: unexpected argument "${args[0]}" (the one-shot session prints the peer's whole table)`);
    rejectOtherForm(cmd, SHOW_RIB_DAEMON_KEYS, RIB_DAEMON, "with --peer, show rib asks no daemon");
    const opts = sessionOptions(flags.peer, flags, "show rib");
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
