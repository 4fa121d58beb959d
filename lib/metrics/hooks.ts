/**
 * The few metrics that cannot be read from the daemon's state at scrape time
 * and are therefore recorded where they happen, on hot paths: each hook is
 * O(1) (a fixed-bucket histogram observation, no labels, no allocation).
 * Process-wide, as the daemon is one per process; lib/metrics/daemon.ts
 * writes them with the series it collects at scrape time.
 */
import { FixedHistogram } from "./exposition.ts";

/**
 * Time to process one received UPDATE: decode, then the neighbour's import
 * (Adj-RIB-In, policy, Loc-RIB, export queueing), observed by the session as
 * it hands the UPDATE on (lib/bgp/session.ts). Buckets from 10 µs to 1 s.
 */
export const updateProcessingSeconds = new FixedHistogram(
  "bgpctl_update_processing_seconds",
  "Time to process one received UPDATE (decode, import policy, RIB and export queueing), in seconds.",
  [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
);

/** Record one UPDATE's processing time, `ms` milliseconds (the caller has read the clock already: no second read per UPDATE). */
export function observeUpdate(ms: number): void {
  updateProcessingSeconds.observe(ms / 1000);
}
