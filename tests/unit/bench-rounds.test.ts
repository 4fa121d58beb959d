import { describe, expect, test } from "bun:test";
import { medianRun } from "../bench/rounds.ts";
import type { Result } from "../bench/scenarios.ts";

const run = (ms: number | undefined, status: Result["status"] = "ok", detail?: string): Result => ({ scenario: "receive", daemon: "d", status, ms, cpuMs: ms === undefined ? undefined : ms * 2, detail });

describe("benchmark rounds (tests/bench/rounds.ts)", () => {
  test("the median round, whole (its CPU and detail too), with the range of the times first in its detail", () => {
    const r = medianRun([run(900, "ok", "a"), run(700, "ok", "b"), run(800, "ok", "c")]);
    expect(r.ms).toBe(800);
    expect(r.cpuMs).toBe(1600);
    expect(r.detail).toBe("median of 3 rounds, 0.70–0.90 s; c");
  });

  test("an even count takes the lower middle round", () => {
    expect(medianRun([run(400), run(100), run(300), run(200)]).ms).toBe(200);
  });

  test("rounds that did not finish are left out of the median and named", () => {
    const r = medianRun([run(undefined, "timeout"), run(500), run(300), run(undefined, "error")]);
    expect(r.ms).toBe(300);
    expect(r.detail).toBe("median of 2 rounds (2 more: timeout, error), 0.30–0.50 s");
  });

  test("one round is shown as it is; no finished round gives the first, whose status says why", () => {
    const one = run(500, "ok", "x");
    expect(medianRun([one])).toBe(one);
    const t = run(undefined, "timeout", "after 180 s");
    expect(medianRun([t, run(undefined, "error")])).toBe(t);
    expect(() => medianRun([])).toThrow("no rounds");
  });
});
