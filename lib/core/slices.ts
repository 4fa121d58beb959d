/**
 * Cooperative time slicing for long work on the event loop (received UPDATEs,
 * Adj-RIB-Out output, table walks). A task does a bounded amount of work per
 * call and says whether more is left; the slicer runs the ready tasks round
 * robin within one time budget per turn, then yields with setImmediate, so
 * timers (keepalives, hold timers) and socket I/O run between slices however
 * much work is queued. One shared slicer (`slicer`) keeps the budget global:
 * ten busy neighbours still hold the loop for one budget per turn, not ten.
 */
import { threadCpuMs } from "../../ffi/monotonic.ts";

/** Time budget of one turn (ms). */
export const SLICE_MS = 8;

/** A unit of resumable work. */
export interface SlicedTask {
  /**
   * Do work until `deadline` (performance.now() milliseconds) or until none is
   * left; true when more remains (the task stays ready), false when done or
   * waiting for something else to wake it.
   */
  step(deadline: number): boolean;
}

export interface SlicerStats {
  turns: number;
  /** Longest turn, ms (wall clock: time the thread waited for a core counts). */
  longestMs: number;
  /**
   * Turns that took longer than 20 ms. Every task's share ends by the
   * budget (SLICE_MS), so a turn this long is the runtime pausing inside it
   * (a garbage collection, a compilation), a step that could not be cut, or
   * the thread waiting for a core while other threads or processes ran.
   */
  over20: number;
  /**
   * The same two by the event loop's own time on a core during a turn (its
   * thread's CPU time): what our work and the runtime took, without the
   * waits for a core. A turn far longer than this waited. Absent before
   * the first turn, and when the runtime cannot read a thread's CPU time.
   */
  longestOnCoreMs?: number;
  over20OnCore?: number;
  /**
   * When the turn of `longestOnCoreMs` ended (Date.now() milliseconds): to
   * set it beside the logs, or beside what else ran on the machine then.
   */
  longestOnCoreAt?: number;
}

/** The calling thread's CPU time in ms (ffi/monotonic.ts); null when it cannot be read here (no glibc); undefined until first asked (a CLI command never loads the clock). */
let threadCpu: (() => number) | null | undefined;

function threadClock(): (() => number) | null {
  if (threadCpu === undefined) {
    try {
      threadCpu = Number.isFinite(threadCpuMs()) ? threadCpuMs : null;
    } catch {
      threadCpu = null;
    }
  }
  return threadCpu;
}

export class Slicer {
  /** Ready tasks in round-robin order (a task that ran moves to the end). */
  private readonly ready = new Set<SlicedTask>();
  private scheduled = false;
  readonly stats: SlicerStats = { turns: 0, longestMs: 0, over20: 0 };

  constructor(
    readonly sliceMs = SLICE_MS,
    private readonly onError: (err: unknown) => void = (e) => console.error(`sliced task failed: ${(e as Error)?.stack ?? String(e)}`),
  ) {}

  /** Make `task` ready (idempotent): it runs in the coming turns until its step returns false. */
  wake(task: SlicedTask): void {
    if (this.ready.has(task)) return;
    this.ready.add(task);
    this.schedule();
  }

  /** Forget `task` (it will not run again unless woken). */
  cancel(task: SlicedTask): void {
    this.ready.delete(task);
  }

  /** Whether `task` is waiting for a turn. */
  isReady(task: SlicedTask): boolean {
    return this.ready.has(task);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.turn());
  }

  private turn(): void {
    this.scheduled = false;
    const start = performance.now();
    const clock = threadClock();
    const cpu0 = clock !== null ? clock() : 0;
    const end = start + this.sliceMs;
    const tasks = [...this.ready];
    // Each ready task gets an equal share of the budget (at least 1 ms); the rotation makes it fair over turns.
    const share = Math.max(1, this.sliceMs / tasks.length);
    for (const t of tasks) {
      if (!this.ready.has(t)) continue;
      const t0 = performance.now();
      if (t0 >= end && t !== tasks[0]) break;
      this.ready.delete(t);
      let more = false;
      try {
        more = t.step(Math.min(end, t0 + share));
      } catch (e) {
        this.onError(e);
      }
      if (more) this.ready.add(t);
    }
    const took = performance.now() - start;
    const st = this.stats;
    st.turns++;
    if (took > st.longestMs) st.longestMs = took;
    if (took > 20) st.over20++;
    if (clock !== null) {
      const onCore = clock() - cpu0;
      if (st.longestOnCoreMs === undefined || onCore > st.longestOnCoreMs) {
        st.longestOnCoreMs = onCore;
        st.longestOnCoreAt = Date.now();
      }
      st.over20OnCore = (st.over20OnCore ?? 0) + (onCore > 20 ? 1 : 0);
    }
    if (this.ready.size > 0) this.schedule();
  }
}

/** The process-wide slicer shared by sessions and neighbours. */
export const slicer = new Slicer();

/**
 * Give the event loop a turn (timers, I/O) before going on: the await
 * between two slices of long async work (control-plane requests), each at
 * most SLICE_MS. setImmediate, not a microtask, so pending timers and socket
 * events really run.
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Run a generator as a task of `on` (the shared slicer by default): it is
 * resumed until the slice's deadline, then waits for the next turn; the
 * generator yields wherever it may be cut (its values are ignored). Resolves
 * with its return value, rejects with what it throws. The way to run a long
 * computation (e.g. deriving a configuration) without holding the loop.
 */
export function runSliced<T>(steps: Iterator<unknown, T>, on: Slicer = slicer): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    on.wake({
      step(deadline: number): boolean {
        try {
          for (;;) {
            const r = steps.next();
            if (r.done) {
              resolve(r.value);
              return false;
            }
            if (performance.now() >= deadline) return true;
          }
        } catch (e) {
          reject(e);
          return false;
        }
      },
    });
  });
}

/**
 * Apply `fn` to every item as a task of the shared slicer, within the one
 * time budget per turn that every sliced task shares (so long work of
 * several kinds at once still holds the loop for one budget), with turns of
 * the event loop in between. Any iterable (a table's values walked in place,
 * without a copy).
 */
export function sliced<T>(items: Iterable<T>, fn: (x: T) => void, on: Slicer = slicer): Promise<void> {
  if (Array.isArray(items) && items.length === 0) return Promise.resolve();
  return runSliced(
    (function* () {
      for (const x of items) {
        fn(x);
        yield;
      }
    })(),
    on,
  );
}
