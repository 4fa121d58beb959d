/**
 * The shared slicer's accounting (lib/core/slices.ts): every turn counted,
 * the longest kept, and turns past 20 ms counted apart (what `show summary`
 * and the metrics report as the daemon's turns of work). A task's share
 * ends at its deadline; a step that overruns it shows as a long turn.
 * The same by the thread's time on a core tells a turn that worked from
 * one that waited (here: blocked in Atomics.wait, as a thread waiting for
 * a core would be, off the CPU).
 */
import { expect, test } from "bun:test";
import { threadCpuMs } from "../../ffi/monotonic.ts";
import { Slicer } from "../../lib/core/slices.ts";

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

test("turns are counted, the longest kept, and those past 20 ms counted apart", async () => {
  const s = new Slicer(5, (e) => {
    throw e;
  });
  let steps = 0;
  const done = Promise.withResolvers<void>();
  s.wake({
    step(deadline) {
      steps++;
      // The third turn overruns (a step that cannot be cut); the others keep to the deadline.
      if (steps === 3) busy(30);
      else while (performance.now() < deadline);
      if (steps === 6) {
        done.resolve();
        return false;
      }
      return true;
    },
  });
  await done.promise;
  expect(s.stats.turns).toBe(6);
  expect(s.stats.over20).toBe(1);
  expect(s.stats.longestMs).toBeGreaterThanOrEqual(30);
  expect(s.stats.longestMs).toBeLessThan(1000);
});

test("time on a core: a turn that waits counts in the wall-clock figures only, one that works in both", async () => {
  const s = new Slicer(5, (e) => {
    throw e;
  });
  expect(s.stats.longestOnCoreMs).toBeUndefined(); // no turn yet
  const cell = new Int32Array(new SharedArrayBuffer(4));
  let steps = 0;
  const done = Promise.withResolvers<void>();
  s.wake({
    step() {
      steps++;
      // Off the CPU for 40 ms (nothing wakes the cell): a long turn that took almost no CPU time.
      if (steps === 1) Atomics.wait(cell, 0, 0, 40);
      if (steps === 2) {
        done.resolve();
        return false;
      }
      return true;
    },
  });
  await done.promise;
  expect(s.stats.longestMs).toBeGreaterThanOrEqual(40);
  expect(s.stats.over20).toBe(1);
  expect(s.stats.longestOnCoreMs!).toBeLessThan(20);
  expect(s.stats.over20OnCore).toBe(0);

  const firstAt = s.stats.longestOnCoreAt!;
  expect(firstAt).toBeLessThanOrEqual(Date.now());
  const done2 = Promise.withResolvers<void>();
  const before = Date.now();
  s.wake({
    step() {
      // Works through its deadline: 30 ms on a core (counted by the thread's own clock, whatever else runs).
      const until = threadCpuMs() + 30;
      while (threadCpuMs() < until);
      done2.resolve();
      return false;
    },
  });
  await done2.promise;
  expect(s.stats.longestOnCoreMs!).toBeGreaterThanOrEqual(30);
  // When the longest turn on a core ended: the working turn's end, after it began.
  expect(s.stats.longestOnCoreAt!).toBeGreaterThanOrEqual(before + 30);
  expect(s.stats.longestOnCoreAt!).toBeLessThanOrEqual(Date.now());
  expect(s.stats.longestOnCoreMs!).toBeLessThanOrEqual(s.stats.longestMs);
  expect(s.stats.over20OnCore).toBe(1);
  expect(s.stats.over20).toBe(2);
});
