#!/usr/bin/env bun
/**
 * bgpctl entry point: builds the command line and dispatches to commands/.
 * Usage errors print one line on stderr and exit 2; runtime failures exit 1.
 */
import { Command, CommanderError } from "commander";
import { registerCheck } from "./commands/check.ts";
import { registerConfig } from "./commands/config.ts";
import { registerCtl } from "./commands/ctl.ts";
import { registerMrt } from "./commands/mrt.ts";
import { registerPeer } from "./commands/peer.ts";
import { registerRun } from "./commands/run.ts";
import { registerShow } from "./commands/show.ts";
import { registerWatchK8s } from "./commands/watch-k8s.ts";
import { UsageError } from "./lib/cli/args.ts";
import { addGlobalFlags } from "./lib/cli/global-flags.ts";
import { flush } from "./lib/cli/output.ts";
import { BgpError } from "./lib/bgp/errors.ts";
import pkg from "./package.json" with { type: "json" };

function fail(msg: string, code: number): never {
  flush();
  process.stderr.write(`bgpctl: ${msg}\n`);
  process.exit(code);
}

const program = new Command("bgpctl")
  .usage("[-j] [-s SOCKET] COMMAND [...]")
  .description("BGP router: speaker, looking glass and MRT reader (bgpctl help <command> for details)")
  .version(pkg.version, "-V, --version")
  .showHelpAfterError(false)
  .exitOverride()
  .configureOutput({ outputError: () => {} });
// -j and -s before the command as well as after it (lib/cli/global-flags.ts).
addGlobalFlags(program);

registerRun(program);
registerWatchK8s(program);
registerConfig(program);
registerPeer(program);
registerShow(program);
registerMrt(program);
registerCtl(program);
registerCheck(program);
// Commander's own error text is replaced by ours (one line, "bgpctl: ...");
// help still goes out, on stdout when asked for, on stderr for a bare group.
const quiet = { outputError: () => {} };
for (const c of program.commands) {
  c.exitOverride().configureOutput(quiet);
  for (const s of c.commands) s.exitOverride().configureOutput(quiet);
}

try {
  await program.parseAsync(process.argv);
  flush();
} catch (e) {
  if (e instanceof CommanderError) {
    if (e.code === "commander.helpDisplayed" || e.code === "commander.version") process.exit(0);
    if (e.code === "commander.help" || e.code === "commander.executeSubCommandAsync") process.exit(2); // a group without its subcommand
    fail(e.message.replace(/^error: /, ""), 2);
  }
  if (e instanceof UsageError) fail(e.message, 2);
  if (e instanceof BgpError) fail(`protocol error: ${e.message}`, 1);
  fail(e instanceof Error ? e.message : String(e), 1);
}
