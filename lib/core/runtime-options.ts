/**
 * The JavaScriptCore options `bgpctl run` runs with, set before its engine
 * starts. JSC reads its options from the environment once, at process
 * start, so a daemon finding one of them unset runs itself again through
 * execve (same process id, arguments and open descriptors; the environment
 * plus the missing variables) before it loads anything. An operator who
 * sets a variable (to anything) keeps that value; when every one is set,
 * nothing is re-run; a runtime without `process.execve`, or a failing
 * execve, leaves the process as it is (the daemon works the same with the
 * runtime's own settings, only slower or larger). JSC refuses to start on
 * an option name it does not know, so a runtime that dropped one of these
 * fails loudly (tests/unit/runtime-options.test.ts starts the daemon).
 *
 * - `BUN_JSC_heapGrowthMaxIncrease=0.75`: how much the heap may grow between
 *   collections. After a full collection JSC lets the heap grow to
 *   (1 + increase × e^(−heap/RAM)) times what survived it before collecting
 *   again; Bun's increase is 2, so on a machine with 16 GB of RAM or more a
 *   daemon's heap reaches about three times its live size (below 16 GB Bun
 *   uses a flat factor of 2). With 0.75 it is about 1.75 times, on any
 *   machine. Measured with a full table (560k routes, `npm run bench`,
 *   receive): peak RSS 184–195 MB with Bun's setting, 168–180 MB with 1,
 *   159–173 MB with 0.75 (three runs each, alternating; fanin-same and
 *   churn 5–10 MB lower too), the same time within the noise; 0.5 (the
 *   documented floor before the collector thrashes) measured no lower and
 *   slower.
 * - `BUN_JSC_thresholdForFTLOptimizeAfterWarmUp=400000` (64,000 in this
 *   Bun's JSC): how long a function runs in JSC's second optimising tier
 *   (DFG) before the third (FTL) compiles it. FTL compiles are the costly
 *   ones (the decoder's alone took 60–70 ms of compiler-thread time), and
 *   the compiler thread competes with the event loop for the CPU: on a
 *   2-core machine receiving a full table, JSC's compiler threads used
 *   400–530 ms of CPU next to the event loop's 550–640 ms, and the event
 *   loop waited 70–175 ms for a core (`/proc/PID/task/*` stat and
 *   schedstat). With 400,000 only the per-route functions reach FTL during
 *   a table (28 FTL compiles instead of 40): receive 0.74–0.79 s against
 *   0.75–0.82 s (three alternating rounds), 1.16–1.19 s of CPU against
 *   1.24–1.31 s, the event loop no slower; 1,000,000 left too much in DFG
 *   (0.78–0.85 s); transit, fan-out, churn and fan-in unchanged within
 *   the noise.
 *
 * Not for `watch-k8s`: its peak is the start-up burst of listing the
 * cluster, and there the lower heap growth measured higher (`--only k8s`,
 * 5,000 Nodes and 20,000 Services: 388–390 MB against 354–371 MB).
 */

/** The variables and the values the daemon runs with unless the environment names them. */
export const RUNTIME_OPTIONS: Readonly<Record<string, string>> = {
  BUN_JSC_heapGrowthMaxIncrease: "0.75",
  BUN_JSC_thresholdForFTLOptimizeAfterWarmUp: "400000",
};

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;

/** Re-run this process with the daemon's runtime options (see the module comment); returns only when that is not needed or not possible. */
export function applyRuntimeOptions(): void {
  const missing = Object.entries(RUNTIME_OPTIONS).filter(([name]) => process.env[name] === undefined);
  if (missing.length === 0) return;
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve !== "function") return;
  // A compiled binary sees ["bun", "/$bunfs/root/<name>", ...arguments]; `bun main.ts` sees [bun, main.ts, ...arguments] and its own flags in execArgv.
  const compiled = process.argv[1]?.startsWith("/$bunfs/") ?? false;
  // Flags that came from BUN_OPTIONS are in execArgv too: the environment hands them on, and given again as
  // arguments a compiled binary would take them for its own (`unknown option '--cpu-prof'`).
  const fromEnv = new Set((process.env.BUN_OPTIONS ?? "").split(/\s+/).filter(Boolean));
  const args = [...process.execArgv.filter((a) => !fromEnv.has(a)), ...process.argv.slice(compiled ? 2 : 1)];
  try {
    execve.call(process, process.execPath, [process.execPath, ...args], { ...process.env, ...Object.fromEntries(missing) });
  } catch {
    // Not re-run: the daemon works the same with the runtime's own settings.
  }
}
