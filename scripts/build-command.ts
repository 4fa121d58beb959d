/**
 * The command that builds dist/bgpctl, as package.json's `build` script has
 * it (`npm run build`), for the programs that build the binary themselves
 * (`npm start`, `npm test`): one definition, so what they run is what ships.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

/** argv of the build, run with the Bun at `bun` (package.json's script starts with `bun`). */
export function buildCommand(root: string, bun: string): string[] {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: { build: string } };
  const args = pkg.scripts.build.trim().split(/\s+/);
  if (args[0] !== "bun") throw new Error(`package.json's build script should start with bun: ${pkg.scripts.build}`);
  return [bun, ...args.slice(1)];
}
