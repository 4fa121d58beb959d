/**
 * How much the daemon's heap may grow between collections, set before its
 * JavaScript engine starts. JSC reads its options from the environment once,
 * at process start, so `bgpctl run` finding `BUN_JSC_heapGrowthMaxIncrease`
 * unset runs itself again through execve (same process id, arguments and
 * open descriptors; the environment plus that variable, set to 0.75) before
 * it loads anything.
 *
 * Why: after a full collection JSC lets the heap grow to (1 + increase ×
 * e^(−heap/RAM)) times what survived it before collecting again; Bun's
 * increase is 2, so on a machine with 16 GB of RAM or more a daemon's heap
 * reaches about three times its live size (below 16 GB Bun uses a flat
 * factor of 2). With 0.75 it is about 1.75 times, on any machine. Measured
 * with a full table (560k routes, `npm run bench`, receive): peak RSS
 * 184–195 MB with Bun's setting, 168–180 MB with 1, 159–173 MB with 0.75
 * (three runs each, alternating; fanin-same and churn 5–10 MB lower too),
 * the same time within the noise; 0.5 (the documented floor before the
 * collector thrashes) measured no lower and slower. Not for `watch-k8s`: its
 * peak is the start-up burst of listing the cluster, and there the same
 * setting measured higher (`--only k8s`, 5,000 Nodes and 20,000 Services:
 * 388–390 MB against 354–371 MB).
 *
 * An operator who sets the variable (to anything: 2 is Bun's own value)
 * keeps it and nothing is re-run; a runtime without `process.execve`, or a
 * failing execve, leaves the process as it is.
 */
export const HEAP_GROWTH_ENV = "BUN_JSC_heapGrowthMaxIncrease";

/** The value the daemon runs with unless the environment names one. */
export const HEAP_GROWTH_DEFAULT = "0.75";

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;

/** Re-run this process with the daemon's heap growth (see the module comment); returns only when that is not needed or not possible. */
export function applyHeapPolicy(): void {
  if (process.env[HEAP_GROWTH_ENV] !== undefined) return;
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve !== "function") return;
  // A compiled binary sees ["bun", "/$bunfs/root/<name>", ...arguments]; `bun main.ts` sees [bun, main.ts, ...arguments] and its own flags in execArgv.
  const compiled = process.argv[1]?.startsWith("/$bunfs/") ?? false;
  const args = [...process.execArgv, ...process.argv.slice(compiled ? 2 : 1)];
  try {
    execve.call(process, process.execPath, [process.execPath, ...args], { ...process.env, [HEAP_GROWTH_ENV]: HEAP_GROWTH_DEFAULT });
  } catch {
    // Not re-run: the daemon works the same with the runtime's own heap growth.
  }
}
