/**
 * Counting event-loop turns in tests: how many times a setImmediate callback
 * got to run while some work was going on (work done in slices lets the loop
 * turn in between; work done in one go does not).
 */

/** Counts event-loop turns (setImmediate ticks) from now until `stop()`. */
export function turnCounter(): { stop(): number } {
  let turns = 0;
  let running = true;
  const spin = () => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  return {
    stop() {
      running = false;
      return turns;
    },
  };
}
