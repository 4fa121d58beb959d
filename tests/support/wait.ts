/**
 * The one bounded poll of the test suite, and `sleep`. Every test that waits
 * for something outside its control (a socket, a daemon, a kernel, another
 * process) polls with `waitFor`: bounded in time and in iterations, and on
 * timeout it throws naming what was awaited, how long it waited, the last
 * value or error seen and any extra detail the caller supplies (e.g. recent
 * process output in the interop labs). Code that takes a Clock is tested with
 * lib/core/clock.ts ManualClock instead of waiting at all.
 */

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

export interface WaitForOptions {
  /** What is awaited, for the timeout message ("BIRD to import 203.0.113.0/24"). */
  what: string;
  /** Give up after this many milliseconds. */
  timeoutMs: number;
  /** Poll interval (default 10 ms). */
  intervalMs?: number;
  /** Extra text for the timeout message, computed only on timeout. */
  detail?: () => string;
  /**
   * A predicate that throws counts as "not yet" (the last error goes into the
   * timeout message). Off by default: the error fails the wait at once.
   */
  retryErrors?: boolean;
}

export class WaitTimeoutError extends Error {
  override name = "WaitTimeoutError";
}

/**
 * Poll `predicate` until it returns a truthy value, which is returned. Throws
 * WaitTimeoutError after `timeoutMs` (and after at most timeoutMs/intervalMs+5
 * polls) naming `what`.
 */
export async function waitFor<T>(predicate: () => T | Promise<T>, opts: WaitForOptions): Promise<NonNullable<T>> {
  const interval = Math.max(1, opts.intervalMs ?? 10);
  const start = performance.now();
  const deadline = start + opts.timeoutMs;
  const maxPolls = Math.ceil(opts.timeoutMs / interval) + 5;
  let lastError: unknown = undefined;
  let lastValue: unknown = undefined;
  for (let i = 0; i < maxPolls; i++) {
    try {
      const v = await predicate();
      if (v) return v as NonNullable<T>;
      lastValue = v;
      lastError = undefined;
    } catch (e) {
      if (!opts.retryErrors) throw e;
      lastError = e;
    }
    const left = deadline - performance.now();
    if (left <= 0) break;
    await sleep(Math.min(interval, left));
  }
  let msg = `timed out after ${Math.round(performance.now() - start)} ms waiting for ${opts.what}`;
  if (lastError !== undefined) msg += `\nlast error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
  else if (lastValue !== undefined && lastValue !== false && lastValue !== null) msg += `\nlast value: ${JSON.stringify(lastValue)}`;
  const extra = opts.detail?.();
  if (extra) msg += `\n${extra}`;
  throw new WaitTimeoutError(msg);
}
