/**
 * Health checks (lib/health) on their own: the state machine (first result,
 * rise, fall, flapping, disable/enable, what is announced), one check on a
 * manual clock with a scripted probe (intervals, drain file, CLI disable, a
 * result arriving after a disable), the real probes against local things
 * (a command killed at its timeout with its process group, 10 MB of output
 * read but not kept, HTTP and TCP servers on 127.0.0.1), splitting commands
 * without a shell, and the configuration's errors.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { ConfigError, loadConfig, parseConfig } from "../../lib/config/load.ts";
import type { HealthCheckConfig } from "../../lib/config/types.ts";
import { ManualClock, realClock } from "../../lib/core/clock.ts";
import { Log } from "../../lib/core/log.ts";
import { encodeAddressOp } from "../../ffi/rtaddr.ts";
import { CheckFsm, HealthCheck, OUTPUT_MAX, type ProbeResult, execArgv, execProbe, httpProbe, splitCommand, tcpProbe } from "../../lib/health/mod.ts";

const ROOT = join(import.meta.dir, "..", "..");
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Let promise callbacks (a scripted probe's answer) run. */
const settle = () => new Promise<void>((r) => setTimeout(r, 0));

/** The process runs (a zombie waiting for its reaper does not count: it was killed). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

describe("state machine", () => {
  const run = (f: CheckFsm, results: string) => [...results].map((c) => (f.feed(c === "+"), `${f.state}${f.transient ? f.count : ""}`));

  test("the first result makes it RISING or FALLING, neither up nor down; rise successes make it UP", () => {
    const f = new CheckFsm(3, 3);
    expect(f.state).toBe("INIT");
    expect(run(f, "+++")).toEqual(["RISING1", "RISING2", "UP"]);
    expect(f.up).toBe(true);
    const g = new CheckFsm(3, 2);
    expect(run(g, "--")).toEqual(["FALLING1", "DOWN"]);
    expect(g.up).toBe(false);
  });

  test("a result the other way restarts the count; UP stays announced while FALLING (the last decision holds)", () => {
    const f = new CheckFsm(2, 3);
    expect(run(f, "++--+--")).toEqual(["RISING1", "UP", "FALLING1", "FALLING2", "RISING1", "FALLING1", "FALLING2"]);
    expect(f.up).toBe(true);
    run(f, "-");
    expect([f.state, f.up]).toEqual(["DOWN", false]);
    expect(run(f, "+-+")).toEqual(["RISING1", "FALLING1", "RISING1"]);
    expect(f.up).toBe(false);
  });

  test("rise 1 and fall 1 decide at once, also from INIT", () => {
    const f = new CheckFsm(1, 1);
    expect(run(f, "+-+")).toEqual(["UP", "DOWN", "UP"]);
    expect(run(new CheckFsm(1, 1), "-")).toEqual(["DOWN"]);
  });

  test("DISABLED ignores results and is the down form; enabling starts over at INIT", () => {
    const f = new CheckFsm(1, 3);
    f.feed(true);
    expect(f.up).toBe(true);
    expect(f.disable()).toBe("UP");
    expect(f.disable()).toBeNull();
    expect([f.state, f.up]).toEqual(["DISABLED", false]);
    expect(f.feed(true)).toBeNull();
    expect(f.state).toBe("DISABLED");
    expect(f.enable()).toBe("DISABLED");
    expect(f.state).toBe("INIT");
    expect(f.enable()).toBeNull();
    f.feed(false);
    expect(f.state).toBe("FALLING");
  });
});

/** A check whose probe answers from a script; `exists` says whether the drain file is there. */
function scripted(over: Partial<HealthCheckConfig> = {}) {
  const clock = new ManualClock();
  const lines: string[] = [];
  const results: boolean[] = [];
  let runs = 0;
  let drain = false;
  let hold: ((r: ProbeResult) => void) | null = null;
  let holdNext = false;
  const changes: string[] = [];
  const config: HealthCheckConfig = {
    name: "svc",
    prefixes: ["203.0.113.53/32"],
    exec: "true",
    shell: false,
    interval: 5,
    fastInterval: 1,
    timeout: 2,
    rise: 2,
    fall: 2,
    drainFile: "/drain",
    onDown: "withdraw",
    communities: [],
    loopback: false,
    ...over,
  };
  const check = new HealthCheck(config, {
    clock,
    log: new Log("debug", "text", (l) => lines.push(l)),
    onChange: (c, from) => changes.push(`${from}->${c.state}`),
    exists: () => drain,
    probe: () => async () => {
      runs++;
      if (holdNext) return new Promise<ProbeResult>((r) => (hold = r));
      const ok = results.shift() ?? true;
      return { ok, output: ok ? "fine" : "broken", ms: 1, timedOut: false };
    },
  });
  return {
    clock,
    check,
    lines,
    changes,
    results,
    get runs() {
      return runs;
    },
    setDrain: (v: boolean) => (drain = v),
    holdNextRun: () => (holdNext = true),
    release: (ok: boolean) => {
      holdNext = false;
      hold?.({ ok, output: "late", ms: 1, timedOut: false });
    },
    /** Advance the clock by `ms` and let the probe's answer land. */
    async step(ms: number) {
      clock.advance(ms);
      await settle();
    },
  };
}

describe("one check on a manual clock", () => {
  test("runs at once, then every fastInterval while rising, every interval once up; the change is logged once", async () => {
    const s = scripted();
    s.results.push(true, true, true);
    s.check.start();
    await s.step(0);
    expect(s.check.state).toBe("RISING");
    expect(s.clock.pendingDelays()).toEqual([1000]);
    await s.step(1000);
    expect(s.check.state).toBe("UP");
    expect(s.clock.pendingDelays()).toEqual([5000]);
    await s.step(5000);
    expect(s.check.state).toBe("UP");
    expect(s.changes).toEqual(["INIT->RISING", "RISING->UP"]);
    expect(s.lines.filter((l) => l.includes("RISING -> UP"))).toHaveLength(1);
    expect(s.check.counters).toEqual({ success: 3, failure: 0, timeout: 0, transitions: 2 });
    s.check.stop();
    expect(s.clock.pending).toBe(0);
  });

  test("the drain file disables it at the next run (down, whatever the probe says), its removal starts over at INIT", async () => {
    const s = scripted({ rise: 1 });
    s.check.start();
    await s.step(0);
    expect(s.check.up).toBe(true);
    s.setDrain(true);
    const runs = s.runs;
    await s.step(5000);
    expect([s.check.state, s.check.up]).toEqual(["DISABLED", false]);
    expect(s.runs).toBe(runs); // the probe does not run while disabled
    expect(s.check.info("withdrawn").drained).toBe(true);
    await s.step(5000);
    expect(s.check.state).toBe("DISABLED");
    s.setDrain(false);
    await s.step(5000);
    expect(s.changes.slice(-2)).toEqual(["DISABLED->INIT", "INIT->UP"]);
    expect(s.lines.some((l) => l.includes("drain file /drain exists"))).toBe(true);
  });

  test("CLI disable acts at once and drops a result already on its way; enable runs at once", async () => {
    const s = scripted({ rise: 1 });
    s.check.start();
    await s.step(0);
    expect(s.check.state).toBe("UP");
    s.holdNextRun();
    await s.step(5000); // a run is in flight
    s.check.setEnabled(false);
    expect(s.check.state).toBe("DISABLED");
    s.release(true); // the late answer must not count
    await settle();
    expect(s.check.state).toBe("DISABLED");
    expect(s.check.counters.success).toBe(1);
    s.check.setEnabled(true);
    expect(s.check.state).toBe("INIT");
    await s.step(0);
    expect(s.check.state).toBe("UP");
  });

  test("an update keeps state and counters and applies the new thresholds and intervals", async () => {
    const s = scripted();
    s.check.start();
    await s.step(0);
    expect([s.check.state, s.check.fsm.count]).toEqual(["RISING", 1]);
    s.check.update({ ...s.check.config, rise: 5, fastInterval: 0.25 });
    await s.step(0);
    expect([s.check.state, s.check.fsm.count]).toEqual(["RISING", 2]);
    expect(s.clock.pendingDelays()).toEqual([250]);
  });
});

describe("probes", () => {
  test("splitCommand: whitespace, single and double quotes, backslashes; no shell", () => {
    expect(splitCommand(`dig +time=1 @127.0.0.1  example.org`)).toEqual(["dig", "+time=1", "@127.0.0.1", "example.org"]);
    expect(splitCommand(`sh -c 'echo "$HOME" | cat' "a \\"b\\" c" d\\ e ''`)).toEqual(["sh", "-c", 'echo "$HOME" | cat', 'a "b" c', "d e", ""]);
    expect(() => splitCommand(`echo 'open`)).toThrow("unterminated ' quote");
    expect(execArgv("echo hi", true)).toEqual(["/bin/sh", "-c", "echo hi"]);
    expect(execArgv(["a b", "c"], false)).toEqual(["a b", "c"]);
  });

  test("exec: exit status decides; output is kept; no shell means no expansion", async () => {
    expect(await execProbe(["true"], realClock)(2000)).toMatchObject({ ok: true, timedOut: false });
    const bad = await execProbe(["sh", "-c", "echo oops >&2; exit 3"], realClock)(2000);
    expect(bad).toMatchObject({ ok: false, output: "exit 3: oops" });
    const lit = await execProbe(execArgv("echo $HOME '*'", false), realClock)(2000);
    expect(lit.output).toBe("$HOME *");
    const missing = await execProbe(["/nonexistent/cmd"], realClock)(2000);
    expect(missing.ok).toBe(false);
  });

  test("exec: a command that hangs is killed at its timeout with its process group (sleep 30, timeout 1 s)", async () => {
    const pidFile = join(ROOT, "node_modules", `.health-test-${process.pid}.pid`);
    cleanups.push(() => rmSync(pidFile, { force: true }));
    const t0 = performance.now();
    // The shell starts sleep in the background and waits: sleep is in the group, not the direct child.
    const r = await execProbe(execArgv(`sleep 30 & echo $! > ${pidFile}; wait`, true), realClock)(1000);
    const took = performance.now() - t0;
    expect(r).toMatchObject({ ok: false, timedOut: true });
    expect(r.output).toStartWith("timeout after 1 s, killed");
    expect(took).toBeGreaterThanOrEqual(950);
    expect(took).toBeLessThan(3000);
    const sleepPid = Number((await Bun.file(pidFile).text()).trim());
    expect(sleepPid).toBeGreaterThan(1);
    for (let i = 0; i < 50 && alive(sleepPid); i++) await Bun.sleep(20);
    expect(alive(sleepPid)).toBe(false);
  });

  test("exec: a process that left the group and holds the output pipe open does not hold the check", async () => {
    const t0 = performance.now();
    const r = await execProbe(["sh", "-c", "setsid sleep 3 & echo started; exit 0"], realClock)(2000);
    expect(r).toMatchObject({ ok: true, output: "started", timedOut: false });
    expect(performance.now() - t0).toBeLessThan(1500);
  });

  test("exec: 10 MB of output is read to the end (the command is not blocked) and only 4 KiB kept", async () => {
    const r = await execProbe(["sh", "-c", "head -c 10485760 /dev/zero | tr '\\0' x; exit 0"], realClock)(10_000);
    expect(r.ok).toBe(true);
    expect(r.output.startsWith("x".repeat(OUTPUT_MAX))).toBe(true);
    expect(r.output).toEndWith(`[... ${10485760 - OUTPUT_MAX} more bytes]`);
    expect(r.output.length).toBeLessThan(OUTPUT_MAX + 100);
  });

  test("http: the expected status passes, another fails, a hanging server times out", async () => {
    const server = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: async (req) => {
        const p = new URL(req.url).pathname;
        if (p === "/ok") return new Response("ok");
        if (p === "/hang") return new Promise<Response>(() => {});
        return new Response("no", { status: 503 });
      },
    });
    cleanups.push(() => server.stop(true));
    const base = `http://127.0.0.1:${server.port}`;
    expect(await httpProbe(`${base}/ok`, 200, realClock)(2000)).toMatchObject({ ok: true, output: "HTTP 200" });
    expect(await httpProbe(`${base}/bad`, 200, realClock)(2000)).toMatchObject({ ok: false, output: "HTTP 503 (expected 200)" });
    expect(await httpProbe(`${base}/bad`, 503, realClock)(2000)).toMatchObject({ ok: true });
    const t0 = performance.now();
    expect(await httpProbe(`${base}/hang`, 200, realClock)(300)).toMatchObject({ ok: false, timedOut: true });
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  test("tcp: a listening port passes, a closed one fails", async () => {
    const srv: Server = createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => srv.close(r)));
    const port = (srv.address() as { port: number }).port;
    expect(await tcpProbe("127.0.0.1", port, realClock)(2000)).toMatchObject({ ok: true });
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const freePort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));
    const r = await tcpProbe("127.0.0.1", freePort, realClock)(2000);
    expect(r.ok).toBe(false);
    expect(r.output).toMatch(/ECONNREFUSED|refused/i);
  });
});

describe("configuration", () => {
  const HEAD = "asn: 65001\nrouterId: 192.0.2.1\n";
  const errors = (body: string): string[] => {
    try {
      parseConfig(HEAD + body, "t.yaml");
    } catch (e) {
      if (e instanceof ConfigError) return e.message.split("\n");
      throw e;
    }
    throw new Error("expected a ConfigError");
  };

  test("defaults, both families, exec as a list", () => {
    const c = parseConfig(HEAD + "healthChecks:\n  - {name: dns, prefixes: [203.0.113.53/32, 2001:DB8:53::53/128], exec: [dig, '@127.0.0.1']}\n", "t.yaml");
    expect(c.healthChecks).toEqual([
      {
        name: "dns",
        prefixes: ["203.0.113.53/32", "2001:db8:53::53/128"],
        exec: ["dig", "@127.0.0.1"],
        shell: false,
        interval: 5,
        fastInterval: 1,
        timeout: 2,
        rise: 3,
        fall: 3,
        onDown: "withdraw",
        communities: [],
        loopback: false,
      },
    ]);
  });

  test("each error names the file, line and key", () => {
    expect(errors("healthChecks:\n  - {name: a, prefixes: [203.0.113.1/32], exec: x, tcp: {address: 127.0.0.1, port: 53}}\n")).toEqual([
      "t.yaml:4:5: healthChecks[0]: expected exactly one of exec, http or tcp, got exec and tcp",
    ]);
    expect(errors("healthChecks:\n  - {name: a, prefixes: [203.0.113.1/32]}\n")).toEqual(["t.yaml:4:5: healthChecks[0]: expected exactly one of exec, http or tcp, got none"]);
    expect(errors("healthChecks:\n  - name: a\n    prefixes: [203.0.113.0/24]\n    exec: \"echo 'x\"\n    loopback: true\n")).toEqual([
      "t.yaml:5:15: healthChecks[0].prefixes: loopback: true needs host prefixes (/32, /128), got 203.0.113.0/24",
      `t.yaml:6:11: healthChecks[0].exec: expected a command line, got "echo 'x" (unterminated ' quote in command "echo 'x")`,
    ]);
    expect(errors("healthChecks:\n  - {name: a, prefixes: [203.0.113.1/32], tcp: {address: 127.0.0.1, port: 1}, shell: true}\n")).toEqual([
      "t.yaml:4:86: healthChecks[0].shell: shell: true needs exec",
    ]);
    const dup = errors(
      "advertise: [203.0.113.1/32]\nhealthChecks:\n  - {name: a, prefixes: [203.0.113.1/32], exec: x}\n  - {name: a, prefixes: [203.0.113.2/32, 203.0.113.2/32], exec: x, onDown: {degrade: {med: -1}}}\n",
    );
    expect(dup).toEqual([
      "t.yaml:5:26: healthChecks[0].prefixes[0]: prefix 203.0.113.1/32 is also under advertise (line 3): a prefix is either advertised always or health-checked, not both",
      "t.yaml:6:12: healthChecks[1].name: duplicate health check name a (first at line 5)",
      "t.yaml:6:42: healthChecks[1].prefixes[1]: prefix 203.0.113.2/32 is in two health checks (first at line 6)",
      "t.yaml:6:92: healthChecks[1].onDown.degrade.med: expected a MED 0..4294967295, got -1",
    ]);
  });

  test("examples/anycast.yaml loads: one check per service, degrade and withdraw", () => {
    const c = loadConfig(join(ROOT, "examples", "anycast.yaml"));
    expect(c.healthChecks?.map((h) => [h.name, h.onDown === "withdraw" ? "withdraw" : "degrade", h.loopback])).toEqual([
      ["dns", "withdraw", true],
      ["www", "degrade", false],
    ]);
  });
});

describe("loopback addresses (ffi/rtaddr.ts)", () => {
  test("RTM_NEWADDR is create-exclusive with an ACK (an address already there is not taken for ours); RTM_DELADDR; IPv6 without DAD", () => {
    const add = encodeAddressOp("add", 1, "203.0.113.53", 32, 7);
    const dv = new DataView(add.buffer);
    expect(dv.getUint32(0, true)).toBe(add.byteLength);
    expect(dv.getUint16(4, true)).toBe(20); // RTM_NEWADDR
    expect(dv.getUint16(6, true)).toBe(0x01 | 0x04 | 0x400 | 0x200); // REQUEST | ACK | CREATE | EXCL
    expect(dv.getUint32(8, true)).toBe(7);
    expect([...add.subarray(16, 20)]).toEqual([2, 32, 0, 0]); // AF_INET, /32, flags, scope
    expect(dv.getUint32(20, true)).toBe(1); // ifindex
    // IFA_LOCAL then IFA_ADDRESS, both the address
    expect([dv.getUint16(24, true), dv.getUint16(26, true), ...add.subarray(28, 32)]).toEqual([8, 2, 203, 0, 113, 53]);
    expect([dv.getUint16(32, true), dv.getUint16(34, true), ...add.subarray(36, 40)]).toEqual([8, 1, 203, 0, 113, 53]);
    const del = encodeAddressOp("del", 1, "2001:db8:53::53", 128, 8);
    const dv6 = new DataView(del.buffer);
    expect(dv6.getUint16(4, true)).toBe(21); // RTM_DELADDR
    expect(dv6.getUint16(6, true)).toBe(0x01 | 0x04);
    expect([...del.subarray(16, 19)]).toEqual([10, 128, 0x02]); // AF_INET6, /128, IFA_F_NODAD
    expect(del.byteLength).toBe(16 + 8 + 20 + 20);
    expect(() => encodeAddressOp("add", 1, "203.0.113.53", 33, 1)).toThrow("invalid prefix length 33");
    expect(() => encodeAddressOp("add", 1, "nope", 32, 1)).toThrow('invalid address "nope"');
  });
});
