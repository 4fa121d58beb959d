import { describe, expect, test } from "bun:test";
import { type Pass, Probe, probeSummary } from "../bench/probe.ts";

const pass = (at: number, cpu: number): Pass => ({ at, cpu, wall: cpu });

describe("machine probes (tests/bench/probe.ts)", () => {
  test("a window's passes: the usual (median), the slowest and when, those over 20 ms", () => {
    const ps = [pass(1000, 9), pass(1050, 1.2), pass(1100, 1.1), pass(1150, 31.5), pass(1200, 1.3), pass(1250, 24), pass(1300, 1.2), pass(1350, 50)];
    const s = probeSummary(ps, 1040, 1310)!;
    expect(s).toEqual({ pausesMeasured: false, pauses: 0, longestPauseMs: 0, passes: 6, usualMs: 1.3, maxMs: 31.5, maxAt: 1150, over20: 2 });
    expect(probeSummary(ps, 2000, 3000)).toBeUndefined(); // no pass in the window
  });

  test("at the daemon's longest turn: the slowest pass ending in it or within 60 ms after", () => {
    const ps = [pass(1000, 1.2), pass(1050, 33), pass(1110, 1.1), pass(1170, 45), pass(1230, 1.2)];
    // A 30 ms turn ending at 1045: passes ending in [1015, 1105] — the 33 ms one, not the 45 ms one after.
    expect(probeSummary(ps, 0, 2000, { at: 1045, ms: 30 })!.stallNear).toBe(33);
    // A turn with no pass near it: nothing said.
    expect(probeSummary(ps, 0, 2000, { at: 1500, ms: 30 })!.stallNear).toBeUndefined();
  });

  test("pauses: those in the window, the longest, and the longest overlapping the daemon's turn", () => {
    const ps = [pass(1000, 1), pass(1100, 1), pass(1200, 1)];
    const pauses = [
      { at: 990, ms: 40 }, // [950, 990]: before the window
      { at: 1060, ms: 33 }, // [1027, 1060]: in the window and in the turn [1030, 1070]
      { at: 1150, ms: 20.5 }, // in the window, after the turn
    ];
    const s = probeSummary(ps, 1000, 1300, { at: 1070, ms: 40 }, pauses)!;
    expect(s.pausesMeasured).toBe(true);
    expect(s.pauses).toBe(2);
    expect(s.longestPauseMs).toBe(33);
    expect(s.pauseInTurn).toBe(33);
    // A turn no pause overlaps: none said; measured, none in the window: zero.
    expect(probeSummary(ps, 1000, 1300, { at: 1120, ms: 10 }, pauses)!.pauseInTurn).toBeUndefined();
    expect(probeSummary(ps, 1170, 1300, undefined, pauses)).toMatchObject({ pausesMeasured: true, pauses: 0, longestPauseMs: 0 });
  });

  test("a pause sleeper reports the time its process was not run: stopped for 60 ms, a pause of about 60 ms", async () => {
    const proc = Bun.spawn([process.execPath, new URL("../bench/probe.ts", import.meta.url).pathname, "--pauses", "--every", "2", "--over", "20"], { stdout: "pipe", stderr: "pipe" });
    try {
      const reader = proc.stdout.getReader();
      const dec = new TextDecoder();
      expect(dec.decode((await reader.read()).value)).toBe('{"event":"ready"}\n');
      await Bun.sleep(100);
      // As a host not running the virtual processor: the sleeper's wake-up comes late by the time it was stopped.
      const t0 = Date.now();
      proc.kill("SIGSTOP");
      await Bun.sleep(60);
      proc.kill("SIGCONT");
      const line = await Promise.race([reader.read().then((r) => dec.decode(r.value)), Bun.sleep(5000).then(() => "")]);
      const e = JSON.parse(line.split("\n")[0]!) as { pause: number; at: number };
      expect(e.pause).toBeGreaterThanOrEqual(45);
      expect(e.pause).toBeLessThan(5000);
      expect(e.at).toBeGreaterThanOrEqual(t0 + 45);
    } finally {
      proc.kill("SIGKILL");
      await proc.exited;
    }
  });

  test("the process: ready once filled, then passes every `every` ms, each timed on a core", async () => {
    const p = new Probe({ mb: 8, everyMs: 20, pauses: false });
    try {
      const t0 = Date.now();
      while ((!p.ready || p.passes.length < 5) && Date.now() - t0 < 10_000) {
        p.check();
        await Bun.sleep(20);
      }
      expect(p.ready).toBe(true);
      expect(p.passes.length).toBeGreaterThanOrEqual(5);
      for (const x of p.passes) {
        expect(x.at).toBeGreaterThanOrEqual(t0);
        expect(x.cpu).toBeGreaterThan(0);
        // Time on a core never exceeds the clock's (a little slack for the two clocks' reads).
        expect(x.cpu).toBeLessThanOrEqual(x.wall + 0.5);
      }
      // Spaced by the sleep between them.
      expect(p.passes[4]!.at - p.passes[0]!.at).toBeGreaterThanOrEqual(4 * 20);
    } finally {
      await p.stop();
    }
  });

  test("bad arguments: the probe exits naming the option", async () => {
    const proc = Bun.spawn([process.execPath, new URL("../bench/probe.ts", import.meta.url).pathname, "--mb", "0"], { stdout: "pipe", stderr: "pipe" });
    const [err, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
    expect(code).not.toBe(0);
    expect(err).toContain("--mb must be a positive integer, got 0");
  });
});
