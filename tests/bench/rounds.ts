/**
 * The benchmark's rounds (tests/bench/run.ts `--rounds`): a daemon's row of
 * a scenario from the results of its rounds.
 */
import type { Result } from "./scenarios.ts";

/**
 * The round of median time among those that finished (the lower middle one
 * of an even count), its detail led by the range of their times and the
 * statuses of the rounds that did not finish. One round: that round as it
 * is. No round finished: the first (its status says why).
 */
export function medianRun(rs: readonly Result[]): Result {
  if (rs.length === 0) throw new Error("medianRun: no rounds");
  const ok = rs.filter((r) => r.status === "ok").sort((a, b) => a.ms! - b.ms!);
  if (ok.length === 0 || rs.length === 1) return rs[0]!;
  const failed = rs.filter((r) => r.status !== "ok");
  const mid = ok[(ok.length - 1) >> 1]!;
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const range = `median of ${ok.length} rounds${failed.length ? ` (${failed.length} more: ${failed.map((r) => r.status).join(", ")})` : ""}, ${s(ok[0]!.ms!)}–${s(ok[ok.length - 1]!.ms!)} s`;
  return { ...mid, detail: [range, mid.detail].filter(Boolean).join("; ") };
}
