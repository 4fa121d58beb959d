/**
 * The daemon's JavaScriptCore options (lib/core/runtime-options.ts):
 * `bgpctl run` runs itself again with BUN_JSC_heapGrowthMaxIncrease=0.75
 * and BUN_JSC_thresholdForFTLOptimizeAfterWarmUp=400000 before it loads
 * anything, keeping its process id and arguments; a value the operator set
 * is kept, the others are still added; other commands are not re-run. (JSC
 * refuses to start on an option it does not know: a daemon that answers
 * runs with both.) Checked on the compiled binary
 * ($BGPCTL_BIN, or dist/bgpctl as `npm test` builds it) and on `bun main.ts`
 * (whose own flags must survive the re-run), through /proc/PID/environ;
 * flags set in BUN_OPTIONS go on through the environment alone.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME_OPTIONS } from "../../lib/core/runtime-options.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = join(import.meta.dir, "..", "..");
const BIN = process.env.BGPCTL_BIN ?? join(ROOT, "dist", "bgpctl");
const cleanups: (() => unknown)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** `cmd run` on an unprivileged loopback config with no peers; once its control socket is up: its pid, environment and command line. */
async function daemon(cmd: string[], env: Record<string, string | undefined>): Promise<{ pid: number; env: Map<string, string>; cmdline: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), "bgpctl-heap-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, "ctl.sock");
  const conf = join(dir, "c.yaml");
  writeFileSync(conf, `asn: 65001\nrouterId: 192.0.2.1\nlisten: {address: 127.0.0.1, port: 0}\ncontrolSocket: ${sock}\npeers: []\n`);
  const p = Bun.spawn([...cmd, "run", "--config", conf], { env, stdout: "pipe", stderr: "pipe" });
  cleanups.push(async () => {
    p.kill("SIGTERM");
    await p.exited;
  });
  await waitFor(() => existsSync(sock) || p.exitCode !== null, { timeoutMs: 15_000, what: "the daemon's control socket" });
  expect(p.exitCode).toBeNull();
  const entries = readFileSync(`/proc/${p.pid}/environ`, "latin1").split("\0").filter(Boolean);
  const map = new Map(entries.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
  const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, "latin1").split("\0").filter(Boolean);
  return { pid: p.pid, env: map, cmdline };
}

const HEAP_GROWTH_ENV = "BUN_JSC_heapGrowthMaxIncrease";
const FTL_ENV = "BUN_JSC_thresholdForFTLOptimizeAfterWarmUp";

/** The test runner's environment without the variables (so that the daemon decides). */
function baseEnv(): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...process.env };
  for (const name of Object.keys(RUNTIME_OPTIONS)) delete env[name];
  return env;
}

describe("the daemon's runtime options", () => {
  test("the options are the two documented ones", () => {
    expect(RUNTIME_OPTIONS).toEqual({ [HEAP_GROWTH_ENV]: "0.75", [FTL_ENV]: "400000" });
  });

  test("the compiled binary's run re-runs itself with the variables set, same process and arguments", async () => {
    const d = await daemon([BIN], baseEnv());
    expect(d.env.get(HEAP_GROWTH_ENV)).toBe("0.75");
    expect(d.env.get(FTL_ENV)).toBe("400000");
    expect(d.cmdline[0]).toBe(BIN);
    expect(d.cmdline.slice(1, 3)).toEqual(["run", "--config"]);
  });

  test("an operator's value is kept; the other option is still added", async () => {
    const d = await daemon([BIN], { ...baseEnv(), [HEAP_GROWTH_ENV]: "2" });
    expect(d.env.get(HEAP_GROWTH_ENV)).toBe("2");
    expect(d.env.get(FTL_ENV)).toBe("400000");
  });

  test("with every variable set by the operator, every value stays the operator's", async () => {
    const d = await daemon([BIN], { ...baseEnv(), [HEAP_GROWTH_ENV]: "1", [FTL_ENV]: "100000" });
    expect(d.env.get(HEAP_GROWTH_ENV)).toBe("1");
    expect(d.env.get(FTL_ENV)).toBe("100000");
  });

  test("flags given in BUN_OPTIONS reach the re-run through the environment, not as arguments the daemon would refuse", async () => {
    // Bun lists BUN_OPTIONS' flags in execArgv; handed on as arguments too, `run` failed with "unknown option '--smol'".
    const d = await daemon([BIN], { ...baseEnv(), BUN_OPTIONS: "--smol" });
    expect(d.env.get(HEAP_GROWTH_ENV)).toBe("0.75");
    expect(d.env.get("BUN_OPTIONS")).toBe("--smol");
    expect(d.cmdline[0]).toBe(BIN);
    expect(d.cmdline.slice(1, 3)).toEqual(["run", "--config"]);
  });

  test("bun main.ts run keeps bun's own flags across the re-run", async () => {
    const d = await daemon([process.execPath, "--smol", join(ROOT, "main.ts")], baseEnv());
    expect(d.env.get(HEAP_GROWTH_ENV)).toBe("0.75");
    expect(d.env.get(FTL_ENV)).toBe("400000");
    expect(d.cmdline.slice(1, 3)).toEqual(["--smol", join(ROOT, "main.ts")]);
  });

  test("a command that is not a daemon is not re-run: a monitor client keeps the environment it was given", async () => {
    const d = await daemon([BIN], baseEnv());
    const sock = d.cmdline[d.cmdline.length - 1]!.replace(/c\.yaml$/, "ctl.sock");
    const m = Bun.spawn([BIN, "monitor", "-s", sock], { env: baseEnv(), stdout: "pipe", stderr: "pipe" });
    cleanups.push(async () => {
      m.kill("SIGTERM");
      await m.exited;
    });
    // A re-run would come first thing, long before a second has passed.
    await Bun.sleep(1_000);
    expect(m.exitCode).toBeNull();
    const env = readFileSync(`/proc/${m.pid}/environ`, "latin1").split("\0");
    for (const name of Object.keys(RUNTIME_OPTIONS)) expect(env.some((e) => e.startsWith(`${name}=`))).toBe(false);
  });
});
