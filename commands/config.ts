/**
 * `bgpctl config check FILE`: validate a `bgpctl run` configuration file
 * without starting anything. Prints "FILE: OK (N peers, M policies, K
 * advertised prefixes)" and exits 0, or prints every problem found, one
 * `FILE:LINE:COLUMN: PATH: message` line each, on stderr and exits 1 (an
 * invalid file is a runtime failure, not a usage error).
 */
import type { Command } from "commander";

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Check `file`; `out` and `err` receive whole lines (without newline). Resolves with the exit code. */
export async function runConfigCheck(file: string, out: (line: string) => void, err: (line: string) => void): Promise<number> {
  // The config loader (YAML parser, schema), loaded for this command only: the others start without it.
  const { ConfigError, loadConfig } = await import("../lib/config/load.ts");
  try {
    const cfg = loadConfig(file);
    const summary: string[] = [
      count(cfg.peers.length, "peer", "peers"),
      count(Object.keys(cfg.policies).length, "policy", "policies"),
      count(cfg.advertise.length, "advertised prefix", "advertised prefixes"),
    ];
    if (cfg.kubernetes) summary.push(`kubernetes: AS ${cfg.kubernetes.asn}, ${count(cfg.kubernetes.peers.length, "external peer", "external peers")}`);
    out(`${file}: OK (${summary.join(", ")})`);
    return 0;
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const line of e.message.split("\n")) err(line);
    return 1;
  }
}

export function registerConfig(program: Command): void {
  const config = program.command("config").description("configuration file tools (bgpctl config check FILE)");
  config
    .command("check")
    .description("validate a bgpctl run configuration file and list every problem with its line and column")
    .argument("<file>", "YAML configuration file")
    .action(async (file: string) => {
      process.exitCode = await runConfigCheck(
        file,
        (l) => process.stdout.write(l + "\n"),
        (l) => process.stderr.write(l + "\n"),
      );
    });
}
