/**
 * The whole test suite, as `npm test` runs it: type check, build the compiled
 * binary (tests run what ships), then every test file under tests/ with
 * `bun test`. Ends with the line `N passed, N failed` that CI reads; exits
 * non-zero when anything failed. Extra arguments are passed to `bun test`
 * (e.g. `npm test -- tests/unit`).
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildCommand } from "../scripts/build-command.ts";

const root = join(import.meta.dir, "..");
const bun = process.execPath;
let passed = 0;
let failed = 0;
let skipped = 0;

function step(name: string, argv: string[]): boolean {
  process.stdout.write(`== ${name}: ${argv.join(" ")}\n`);
  const r = Bun.spawnSync(argv, { cwd: root, stdout: "inherit", stderr: "inherit", env: process.env });
  if (r.exitCode === 0) {
    passed++;
    return true;
  }
  process.stdout.write(`== ${name} FAILED (exit ${r.exitCode})\n`);
  failed++;
  return false;
}

step("typecheck", [bun, join(root, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json", "--noEmit"]);
// The binary as `npm run build` makes it.
const built = step("build", buildCommand(root, bun));

const dir = mkdtempSync(join(tmpdir(), "bgpctl-test-"));
const junit = join(dir, "junit.xml");
const args = process.argv.slice(2);
const targets = args.length ? args : ["./tests/"];
if (built) {
  process.stdout.write(`== bun test ${targets.join(" ")}\n`);
  const r = Bun.spawnSync([bun, "test", "--timeout", "120000", "--reporter=junit", `--reporter-outfile=${junit}`, ...targets], {
    cwd: root,
    stdout: "inherit",
    stderr: "inherit",
    env: { ...process.env, BGPCTL_BIN: join(root, "dist/bgpctl") },
  });
  let xml = "";
  try {
    xml = readFileSync(junit, "utf8");
  } catch {
    /* no report: counted below */
  }
  const m = /<testsuites[^>]*\btests="(\d+)"[^>]*\bfailures="(\d+)"[^>]*\bskipped="(\d+)"/.exec(xml);
  if (m) {
    const tests = Number(m[1]);
    const f = Number(m[2]);
    const s = Number(m[3]);
    passed += tests - f - s;
    failed += f;
    skipped += s;
    // A file that failed to load, or an error outside any test, shows only in the exit code.
    if (r.exitCode !== 0 && f === 0) failed++;
  } else {
    process.stdout.write(`== bun test produced no report (exit ${r.exitCode})\n`);
    failed++;
  }
} else {
  process.stdout.write("== tests not run: the binary did not build\n");
}
rmSync(dir, { recursive: true, force: true });
// Skipped tests are not passes: they are shown and they fail the run.
if (skipped) {
  process.stdout.write(`== ${skipped} test(s) skipped: a skipped test fails the suite\n`);
  failed += skipped;
}
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
