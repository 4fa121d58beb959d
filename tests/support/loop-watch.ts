/**
 * Event-loop watch for tests: a short interval timer that records how many
 * times it fired and the largest gap between firings, i.e. the longest time
 * the loop was held by something else while the watch ran.
 */

export interface LoopWatch {
  /** Stop the timer; the figures so far (the gap up to now included). */
  stop(): { maxGapMs: number; ticks: number };
}

export function loopWatch(intervalMs = 1): LoopWatch {
  let last = performance.now();
  let maxGapMs = 0;
  let ticks = 0;
  const iv = setInterval(() => {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - last);
    last = now;
    ticks++;
  }, intervalMs);
  return {
    stop: () => {
      clearInterval(iv);
      return { maxGapMs: Math.max(maxGapMs, performance.now() - last), ticks };
    },
  };
}
