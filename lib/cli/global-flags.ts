/**
 * The global flags of `bgpctl [-j] [-s SOCKET] COMMAND ...`: `-j/--json` and
 * `-s/--socket PATH` may come before the command, as OpenBGPD's bgpctl takes
 * them, as well as after it (`bgpctl show rib -j -s X`). Both orders behave
 * the same: a flag given before the command is handed to the command as if
 * it had been typed after it, so every per-command check (a flag that does
 * not apply to a form, an environment default it overrides) sees it the same
 * way. Given on both sides with different values, it is a usage error naming
 * both; a command without that flag refuses it by name.
 */
import type { Command } from "commander";
import { UsageError } from "./args.ts";
import { commandPath } from "./forms.ts";

interface GlobalFlag {
  /** Attribute name on the program and on the commands. */
  key: "json" | "socket";
  /** How help and errors name it. */
  label: string;
}

const GLOBAL_FLAGS: readonly GlobalFlag[] = [
  { key: "json", label: "-j/--json" },
  { key: "socket", label: "-s/--socket" },
];

/** Declares the global flags on the program; options before the command belong to the program from then on. */
export function addGlobalFlags(program: Command): Command {
  return program
    .enablePositionalOptions()
    .option("-j, --json", "print JSON (the same as -j after the command)")
    .option("-s, --socket <path>", "the daemon's control socket, for commands that talk to it (the same as -s after the command)")
    .hook("preAction", (prog, action) => applyGlobalFlags(prog, action));
}

/**
 * Hands the global flags given before the command to the command that runs.
 * UsageError when the command has no such flag, or got it after the command
 * too with another value.
 */
export function applyGlobalFlags(program: Command, action: Command): void {
  for (const { key, label } of GLOBAL_FLAGS) {
    if (program.getOptionValueSource(key) !== "cli") continue;
    const value: unknown = program.getOptionValue(key);
    const shown = typeof value === "string" ? `${label} ${value}` : label;
    if (!action.options.some((o) => o.attributeName() === key)) {
      throw new UsageError(`${shown} (before the command) does not apply to ${commandPath(action)}`);
    }
    if (action.getOptionValueSource(key) === "cli") {
      const after: unknown = action.getOptionValue(key);
      if (after !== value) {
        throw new UsageError(`${label} given twice with different values: ${JSON.stringify(value)} before the command and ${JSON.stringify(after)} after it; give it once`);
      }
      continue;
    }
    action.setOptionValueWithSource(key, value, "cli");
  }
}
