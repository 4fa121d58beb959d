/**
 * The shared slicer's accounting (lib/core/slices.ts): every turn counted,
 * the longest kept, and turns past 20 ms counted apart (what `show summary`
 * and the metrics report as the daemon's turns of work). A task's share
 * ends at its deadline; a step that overruns it shows as a long turn.
 */
import { expect, test } from "bun:test";
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
