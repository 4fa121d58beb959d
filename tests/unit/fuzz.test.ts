/**
 * The codec fuzzer (tests/fuzz/fuzz.ts) as a unit test: 20000 mutated inputs
 * with a fixed seed must produce no failure — no exception other than
 * BgpError, no hang, no inconsistent result. `npm run fuzz` runs 500000.
 */
import { expect, test } from "bun:test";
import { loadSeeds, runFuzz } from "../fuzz/fuzz.ts";
import { mrtSeeds } from "../fuzz/seeds.ts";
import { MRT_SAMPLES } from "../support/mrt-samples.ts";

test("fuzz: 20000 inputs, seed 20240601, no failures", () => {
  const r = runFuzz({ count: 20_000, seed: 20240601, maxFailures: 5 });
  for (const f of r.failures) {
    console.error(`FAILURE ${f.kind} in ${f.where} (seed ${f.seed}, mutations ${f.ops.join(",")})\n${f.message}\ninput: ${f.hex}`);
  }
  expect(r.failures.map((f) => `${f.kind} in ${f.where}: ${f.message.split("\n")[0]}`)).toEqual([]);
  expect(r.inputs).toBe(20_000);
  // the corpus reaches every decoder, and most inputs are rejected somewhere
  expect(r.bgpErrors).toBeGreaterThan(1000);
  expect(r.bgpErrors).toBeLessThan(r.inputs);
  for (const k of ["open", "update", "notification", "route-refresh", "keepalive", "update-clean", "update-treat-as-withdraw", "update-attribute-discard", "update-reset"]) {
    expect(r.stats[k] ?? 0).toBeGreaterThan(100);
  }
}, 60_000);

test("fuzz: deterministic for a seed", () => {
  const a = runFuzz({ count: 500, seed: 7 });
  const b = runFuzz({ count: 500, seed: 7 });
  expect(b.bgpErrors).toBe(a.bgpErrors);
  expect(b.stats).toEqual(a.stats);
});

test("fuzz seeds: every vendored MRT dump contributes, the corpus never shrinks silently", () => {
  const mrt = mrtSeeds();
  for (const f of MRT_SAMPLES) expect(mrt.filter((s) => s.name.split("#")[0]!.endsWith(`:${f}`)).length).toBeGreaterThan(0);
  expect(mrt.length).toBe(70);
  expect(loadSeeds().length).toBe(30 + 70);
  expect(() => mrtSeeds("/nonexistent/bgpctl-mrt")).toThrow("MRT directory /nonexistent/bgpctl-mrt does not exist");
});
