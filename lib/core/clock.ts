/**
 * Time source for the BGP state machine and sessions. Everything that waits
 * (ConnectRetry, Hold, Keepalive, DelayOpen, IdleHold timers) goes through a
 * `Clock`, so production code uses `realClock` and tests drive time by hand
 * with `ManualClock` — deterministic, and no test ever sleeps for a timer.
 * Pure: no Bun or Node APIs beyond the global setTimeout/clearTimeout.
 */

declare const timerBrand: unique symbol;
/** Opaque handle of a scheduled timer; only the clock that made it can clear it. */
export type TimerHandle = { readonly [timerBrand]: true };

export interface Clock {
  /** Milliseconds since some fixed origin (monotonic for ManualClock). */
  now(): number;
  /** Run `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancel a timer; unknown or already fired handles are ignored. */
  clearTimeout(h: TimerHandle): void;
}

/** The wall clock, backed by the runtime's timers. */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, Math.max(0, ms)) as unknown as TimerHandle,
  clearTimeout: (h) => globalThis.clearTimeout(h as unknown as ReturnType<typeof globalThis.setTimeout>),
};

interface ManualTimer {
  id: number;
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that only moves when told to. `advance(ms)` fires every timer due
 * within the interval in order of due time (ties in the order they were set),
 * including timers that callbacks set while advancing, with the clock showing
 * each timer's due time while its callback runs.
 */
export class ManualClock implements Clock {
  private t: number;
  private seq = 0;
  private timers = new Map<number, ManualTimer>();
  /** Upper bound on callbacks run by one advance() (guards against timer loops). */
  maxFiresPerAdvance = 100_000;

  constructor(start = 0) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), seq: id, fn });
    return { id } as unknown as TimerHandle;
  }

  clearTimeout(h: TimerHandle): void {
    const id = (h as unknown as { id?: unknown }).id;
    if (typeof id === "number") this.timers.delete(id);
  }

  /** Number of timers waiting to fire. */
  get pending(): number {
    return this.timers.size;
  }

  /** Due time of the earliest pending timer, or null. */
  nextDue(): number | null {
    const n = this.earliest(Infinity);
    return n ? n.at : null;
  }

  /** Milliseconds until each pending timer is due, sorted (handy in assertions). */
  pendingDelays(): number[] {
    return [...this.timers.values()].map((x) => x.at - this.t).sort((a, b) => a - b);
  }

  private earliest(limit: number): ManualTimer | null {
    let best: ManualTimer | null = null;
    for (const x of this.timers.values()) {
      if (x.at > limit) continue;
      if (!best || x.at < best.at || (x.at === best.at && x.seq < best.seq)) best = x;
    }
    return best;
  }

  /** Move time forward by `ms`, firing due timers in order. Returns how many fired. */
  advance(ms: number): number {
    if (!(ms >= 0)) throw new RangeError(`advance(${ms}): need a non-negative duration`);
    const target = this.t + ms;
    let fired = 0;
    for (;;) {
      const next = this.earliest(target);
      if (!next) break;
      if (++fired > this.maxFiresPerAdvance) {
        throw new Error(`ManualClock.advance: more than ${this.maxFiresPerAdvance} timers fired (timer loop?)`);
      }
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
    }
    this.t = target;
    return fired;
  }

  /** Advance to the next pending timer and fire it (and any due at the same time). */
  runNext(): boolean {
    const at = this.nextDue();
    if (at === null) return false;
    this.advance(at - this.t);
    return true;
  }
}
