/**
 * `bgpctl check NAME disable|enable`: hold a health check DISABLED (its
 * prefixes get the down form, as when its drain file exists) or let it run
 * again, over the control socket (POST /v1/checks/NAME). Prints the check's
 * state after the change (`-j`: the JSON of `show checks` for it).
 */
import type { Command } from "commander";
import { formatChecks } from "../lib/api/format.ts";
import { UsageError } from "../lib/cli/args.ts";
import { flush, writeLine } from "../lib/cli/output.ts";
import { type CtlFlags, addCtlFlags, ctlClient } from "./ctl.ts";

export function registerCheck(program: Command): void {
  addCtlFlags(
    program
      .command("check")
      .argument("<name>", "the health check's name (show checks lists them)")
      .argument("<action>", "disable (withdraw or degrade, as the drain file does) or enable")
      .description("disable or enable a health check from the CLI (as its drain file does)"),
  ).action(async (name: string, action: string, flags: CtlFlags) => {
    if (action !== "disable" && action !== "enable") throw new UsageError(`check: "${action}" must be disable or enable`);
    const info = await ctlClient(flags).checkSetEnabled(name, action === "enable");
    if (flags.json) writeLine(JSON.stringify(info));
    else process.stdout.write(formatChecks([info]));
    flush();
  });
}
