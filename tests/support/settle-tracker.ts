/**
 * Drive a next-hop tracker (lib/rib/nexthop.ts) on a ManualClock until it is
 * idle: its lookups answer on later ticks and its debounce and re-run slices
 * move with the clock. `alsoIdle` waits for whatever the tracker's changes
 * feed (e.g. a FIB, whose installs come back as kernel events the tracker
 * sees); the tracker must still be idle afterwards. Bounded: throws after
 * `rounds` rounds.
 */
import type { ManualClock } from "../../lib/core/clock.ts";
import type { NextHopTracker } from "../../lib/rib/nexthop.ts";

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

export async function settleTracker(tracker: NextHopTracker, clock: ManualClock, alsoIdle?: () => Promise<void>, rounds = 500): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    await tick();
    clock.advance(60);
    if (!tracker.idle) continue;
    if (alsoIdle) await alsoIdle();
    await tick();
    if (tracker.idle) return;
  }
  throw new Error(`the next-hop tracker did not settle in ${rounds} rounds`);
}
