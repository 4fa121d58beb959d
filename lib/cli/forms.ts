/**
 * Commands with more than one form (`show rib` and `advertise`: ask the
 * daemon, or run a one-shot session of their own with --peer): one usage line
 * per form, the flags grouped in help under the form they belong to, and
 * errors that say which form a stray flag belongs to.
 */
import type { Command } from "commander";
import { UsageError } from "./args.ts";

export interface CommandForm {
  /** Usage after the command's name, e.g. "--peer ADDR --remote-as N --local-as N [...]". */
  usage: string;
  /** Help heading of the flags only this form takes. */
  heading: string;
  /**
   * How an error describes a flag of this form given in the other one, after
   * the flag's name: "only applies with --peer (the one-shot form: ...)".
   */
  refuse: string;
}

/**
 * The two forms of a command that asks the daemon, or with --peer runs a
 * one-shot session of its own. `short` texts are how errors quote each form
 * after the command's name.
 */
export function daemonAndOneShot(
  command: string,
  daemon: { usage: string; heading: string; short: string },
  oneShot: { usage: string; heading: string; short: string },
): { daemon: CommandForm; oneShot: CommandForm } {
  return {
    daemon: {
      usage: daemon.usage,
      heading: daemon.heading,
      refuse: `does not apply to a one-shot session (${command} --peer); it belongs to the daemon form (${command} ${daemon.short})`,
    },
    oneShot: { usage: oneShot.usage, heading: oneShot.heading, refuse: `only applies with --peer (the one-shot form: ${command} ${oneShot.short})` },
  };
}

/** The command's path without the program name ("show rib"). */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c?.parent; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** One usage line per form, aligned under "Usage: ". */
export function setFormsUsage(cmd: Command, program: string, usages: readonly string[]): Command {
  const full = `${program} ${commandPath(cmd)}`;
  return cmd.usage(usages.map((u, i) => (i === 0 ? u : `       ${full} ${u}`)).join("\n"));
}

/** Puts the options with these long names under `heading` in help, optionally with a new description. */
export function groupOptions(cmd: Command, heading: string, longs: readonly string[], descriptions: Record<string, string> = {}): void {
  for (const long of longs) {
    const o = cmd.options.find((x) => x.long === long);
    if (!o) throw new Error(`groupOptions: ${commandPath(cmd)} has no option ${long}`);
    o.helpGroup(heading);
    if (descriptions[long] !== undefined) o.description = descriptions[long];
  }
}

/** Long names of the options among `keys` (attribute names) that were given on the command line. */
export function givenOnCli(cmd: Command, keys: readonly string[]): string[] {
  const out: string[] = [];
  for (const k of keys) {
    if (cmd.getOptionValueSource(k) !== "cli") continue;
    const o = cmd.options.find((x) => x.attributeName() === k);
    out.push(o?.long ?? `--${k}`);
  }
  return out;
}

/** UsageError when any of `keys` was given on the command line. */
export function rejectFlags(cmd: Command, keys: readonly string[], why: string): void {
  const given = givenOnCli(cmd, keys);
  if (given.length) throw new UsageError(`${given[0]} ${why}`);
}

/**
 * UsageError when a flag of the form `other` (attribute names `keys`) was
 * given while another form runs: "show rib: --remote-as only applies with
 * --peer (the one-shot form: ...); without --peer, show rib asks the daemon".
 */
export function rejectOtherForm(cmd: Command, keys: readonly string[], other: CommandForm, why: string): void {
  const given = givenOnCli(cmd, keys);
  if (given.length) throw new UsageError(`${commandPath(cmd)}: ${given[0]} ${other.refuse}; ${why}`);
}
