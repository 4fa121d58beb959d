/**
 * tests/support/wait.ts, the one bounded poll every test uses: it returns the
 * predicate's first truthy value, gives up naming what it waited for (with
 * the last value or error and the caller's detail), is bounded in polls, and
 * either fails at once on a throwing predicate or, with retryErrors, treats
 * it as "not yet".
 */
import { expect, test } from "bun:test";
import { WaitTimeoutError, sleep, waitFor } from "../support/wait.ts";

test("returns the first truthy value, polling until it comes", async () => {
  let n = 0;
  const v = await waitFor(() => (++n >= 3 ? { n } : null), { what: "three polls", timeoutMs: 1000, intervalMs: 1 });
  expect(v).toEqual({ n: 3 });
});

test("on timeout it names what was awaited, the last value and the detail", async () => {
  const t0 = performance.now();
  const err = await waitFor(() => 0, { what: "a counter above zero", timeoutMs: 60, intervalMs: 5, detail: () => "counter log: 0 0 0" }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WaitTimeoutError);
  const msg = (err as Error).message;
  expect(msg).toMatch(/^timed out after \d+ ms waiting for a counter above zero\nlast value: 0\ncounter log: 0 0 0$/);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(55);
  expect(performance.now() - t0).toBeLessThan(1000);
});

test("bounded in polls as well as in time", async () => {
  let polls = 0;
  await expect(waitFor(() => (polls++, false), { what: "never", timeoutMs: 50, intervalMs: 10 })).rejects.toThrow("waiting for never");
  expect(polls).toBeGreaterThanOrEqual(3);
  expect(polls).toBeLessThanOrEqual(50 / 10 + 5);
});

test("a throwing predicate fails the wait at once, unless retryErrors", async () => {
  const t0 = performance.now();
  await expect(waitFor(() => { throw new Error("boom"); }, { what: "x", timeoutMs: 5000 })).rejects.toThrow("boom");
  expect(performance.now() - t0).toBeLessThan(1000);
  let n = 0;
  const v = await waitFor(() => {
    if (++n < 3) throw new Error(`not yet ${n}`);
    return "ok";
  }, { what: "x", timeoutMs: 1000, intervalMs: 1, retryErrors: true });
  expect(v).toBe("ok");
  const err = await waitFor(() => { throw new Error("socket refused"); }, { what: "the daemon", timeoutMs: 30, intervalMs: 5, retryErrors: true }).catch((e: unknown) => e as Error);
  expect(err.message).toContain("waiting for the daemon\nlast error: socket refused");
});

test("sleep waits at least the given time", async () => {
  const t0 = performance.now();
  await sleep(20);
  expect(performance.now() - t0).toBeGreaterThanOrEqual(18);
});
