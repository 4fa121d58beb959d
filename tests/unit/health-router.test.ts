/**
 * Health checks inside the router (lib/router/health-glue.ts): a Router on
 * 127.0.0.1 with a manual clock, scripted probes, a fake drain file and a
 * fake loopback. Covers what each state announces (withdraw and degrade
 * modes: MED, prepended path, communities), loopback addresses added while
 * up and removed when down (never one that was there before), the control
 * API (show checks, check disable/enable, advertise/withdraw of a checked
 * prefix refused), the metrics, and reload: checks added, removed and
 * changed, an unchanged check keeping its state and counters, unrelated
 * routes untouched, a prefix moving between advertise and a check.
 */
import { asPathNumbers } from "../../lib/bgp/attributes.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiClient } from "../../lib/api/client.ts";
import { startApiServer } from "../../lib/api/server.ts";
import { ApiError } from "../../lib/api/types.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { ManualClock } from "../../lib/core/clock.ts";
import { Log } from "../../lib/core/log.ts";
import { DaemonMetrics } from "../../lib/metrics/daemon.ts";
import { RouterError } from "../../lib/router/errors.ts";
import type { LoopbackOps } from "../../lib/router/health-glue.ts";
import { Router } from "../../lib/router/router.ts";
import { tempDirs } from "../support/tmp.ts";

const dir = tempDirs("bgpctl-health-")();
const running: { stop(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

const settle = () => new Promise<void>((r) => setTimeout(r, 0));

const CHECKS = `healthChecks:
  - name: dns
    prefixes: [203.0.113.53/32, 2001:db8:53::53/128]
    exec: "probe dns"
    interval: 5
    fastInterval: 1
    rise: 2
    fall: 2
    drainFile: /drain-dns
    communities: ["65001:53"]
    loopback: true
  - name: www
    prefixes: [203.0.113.80/32]
    tcp: {address: 127.0.0.1, port: 80}
    rise: 1
    fall: 1
    onDown: {degrade: {med: 1000, prepend: 3, communities: ["65001:666"]}}
    communities: ["65001:80"]
`;

let seq = 0;
async function daemon(body: string) {
  const file = join(dir, `h${++seq}.yaml`);
  const head = `asn: 65001\nrouterId: 192.0.2.1\nlisten: {address: 127.0.0.1, port: 0}\ncontrolSocket: ${join(dir, `h${seq}.sock`)}\n`;
  const write = (yaml: string) => writeFileSync(file, head + yaml);
  write(body);
  const clock = new ManualClock();
  const lines: string[] = [];
  const ok = new Map<string, boolean>();
  const files = new Set<string>();
  const lo = new Set<string>(["203.0.113.99/32"]); // there before us
  const loOps: string[] = [];
  const loopback: LoopbackOps = {
    add: async (a, len) => {
      loOps.push(`add ${a}/${len}`);
      if (lo.has(`${a}/${len}`)) return "present";
      lo.add(`${a}/${len}`);
      return "added";
    },
    remove: async (a, len) => {
      loOps.push(`del ${a}/${len}`);
      return lo.delete(`${a}/${len}`) ? "removed" : "absent";
    },
    close: () => {},
  };
  const router = new Router(parseConfig(head + body, file), file, new Log("debug", "text", (l) => lines.push(l)), {
    clock,
    health: {
      openLoopback: async () => loopback,
      exists: (f) => files.has(f),
      probe: (c) => async () => {
        const r = ok.get(c.name) ?? false;
        return { ok: r, output: r ? "fine" : "no answer", ms: 1, timedOut: false };
      },
    },
  });
  await router.start();
  running.push(router);
  const step = async (ms: number) => {
    clock.advance(ms);
    await settle();
    await router.health.settled();
  };
  const route = (p: string) => {
    const r = router.engine.localRoutes.get(p);
    if (!r) return null;
    const a = r.attrs;
    return { owner: r.owner, communities: r.settings.communities, med: a.med, path: asPathNumbers(a.asPath) };
  };
  const state = (name: string) => router.checks().find((c) => c.name === name)?.state;
  return { router, clock, lines, ok, files, lo, loOps, step, route, state, write };
}

describe("health checks in the router", () => {
  test("withdraw mode: nothing until rise successes, then announced with its communities and on lo; withdrawn and off lo after fall failures", async () => {
    const d = await daemon(CHECKS);
    await d.step(0);
    expect(d.state("dns")).toBe("FALLING");
    expect(d.route("203.0.113.53/32")).toBeNull();
    d.ok.set("dns", true);
    await d.step(1000);
    expect(d.state("dns")).toBe("RISING");
    expect(d.route("203.0.113.53/32")).toBeNull();
    await d.step(1000);
    expect(d.state("dns")).toBe("UP");
    expect(d.route("203.0.113.53/32")).toEqual({ owner: "health", communities: ["65001:53"], med: null, path: [] });
    expect(d.route("2001:db8:53::53/128")?.owner).toBe("health");
    expect([...d.router.rib({ prefix: "203.0.113.53/32" })].map((e) => e.best)).toEqual([true]);
    expect(d.lo.has("203.0.113.53/32") && d.lo.has("2001:db8:53::53/128")).toBe(true);
    d.ok.set("dns", false);
    await d.step(5000);
    expect(d.state("dns")).toBe("FALLING");
    expect(d.route("203.0.113.53/32")).not.toBeNull(); // still up until decided
    await d.step(1000);
    expect(d.state("dns")).toBe("DOWN");
    expect(d.route("203.0.113.53/32")).toBeNull();
    expect(d.lo.has("203.0.113.53/32")).toBe(false);
    expect(d.lines.filter((l) => l.includes("health check dns: FALLING -> DOWN"))).toHaveLength(1);
  });

  test("degrade mode: announced degraded (MED, our AS prepended 3 times, the degrade communities) until up, and again when down", async () => {
    const d = await daemon(CHECKS);
    expect(d.route("203.0.113.80/32")).toEqual({ owner: "health", communities: ["65001:666"], med: 1000, path: [65001, 65001, 65001] });
    d.ok.set("www", true);
    await d.step(0);
    expect(d.state("www")).toBe("UP");
    const up = d.router.engine.localRoutes.get("203.0.113.80/32");
    const writes = d.router.engine.localRoutes.version;
    expect(d.route("203.0.113.80/32")).toEqual({ owner: "health", communities: ["65001:80"], med: null, path: [] });
    await d.step(5000);
    expect(d.router.engine.localRoutes.get("203.0.113.80/32")).toBe(up);
    expect(d.router.engine.localRoutes.version).toBe(writes); // not rewritten while nothing changes
    d.ok.set("www", false);
    await d.step(5000);
    expect(d.state("www")).toBe("DOWN");
    expect(d.route("203.0.113.80/32")?.med).toBe(1000);
  });

  test("the drain file and the CLI disable withdraw at once; enable starts over; the control API shows and drives it", async () => {
    const d = await daemon(CHECKS);
    const sock = join(dir, `api${seq}.sock`);
    const api = await startApiServer(d.router, sock);
    running.push({ stop: () => api.close() });
    const client = new ApiClient(sock);
    d.ok.set("dns", true);
    await d.step(0);
    await d.step(1000);
    expect(d.state("dns")).toBe("UP");
    d.files.add("/drain-dns");
    await d.step(5000);
    expect(d.state("dns")).toBe("DISABLED");
    expect(d.route("203.0.113.53/32")).toBeNull();
    expect(d.lo.has("203.0.113.53/32")).toBe(false);
    d.files.delete("/drain-dns");
    await d.step(5000);
    expect(d.state("dns")).toBe("RISING");
    await d.step(1000);
    expect(d.state("dns")).toBe("UP");

    const off = await client.checkSetEnabled("dns", false);
    expect([off.state, off.enabled, off.announced]).toEqual(["DISABLED", false, "withdrawn"]);
    expect(d.route("203.0.113.53/32")).toBeNull();
    const list = await client.checks();
    expect(list.map((c) => [c.name, c.state, c.announced])).toEqual([
      ["dns", "DISABLED", "withdrawn"],
      ["www", "DOWN", "degraded"],
    ]);
    expect(list[0]!.last).toMatchObject({ ok: true, output: "fine" });
    expect(list[0]!.counters.success).toBe(4);
    const on = await client.checkSetEnabled("dns", true);
    expect(on.state).toBe("INIT");
    await d.step(0);
    await d.step(1000);
    expect(d.state("dns")).toBe("UP");
    await expect(client.checkSetEnabled("nope", false)).rejects.toThrow(/no health check named nope/);
    const e = await client.checkSetEnabled("nope", false).catch((x: ApiError) => x);
    expect((e as ApiError).status).toBe(404);
    const raw = (method: string, path: string, body?: string) =>
      fetch(`http://localhost${path}`, { unix: sock, method, ...(body !== undefined ? { body } : {}) } as RequestInit).then(async (r) => [r.status, (await r.text()).trim()]);
    expect(await raw("POST", "/v1/checks/dns", '{"enabled": 1}')).toEqual([400, '{"error":"enabled: 1 must be true or false"}']);
    expect(await raw("POST", "/v1/checks/dns", '{"enabled": true, "x": 1}')).toEqual([400, '{"error":"x: unknown field (expected enabled)"}']);
    expect((await raw("GET", "/v1/checks/dns"))[0]).toBe(405);
    expect((await raw("POST", "/v1/checks"))[0]).toBe(405);

    // A checked prefix belongs to its check.
    await expect(client.advertise({ prefixes: ["203.0.113.53/32"] })).rejects.toThrow("203.0.113.53/32 belongs to health check dns");
    await expect(d.router.withdraw(["203.0.113.80/32"])).rejects.toBeInstanceOf(RouterError);
    expect(d.route("203.0.113.53/32")?.owner).toBe("health");

    const text = await new DaemonMetrics(d.router).text();
    expect(text).toContain('bgpctl_health_check_up{check="dns"} 1');
    expect(text).toContain('bgpctl_health_check_up{check="www"} 0');
    expect(text).toContain('bgpctl_health_check_state{check="www",state="DOWN"} 1');
    expect(text).toContain('bgpctl_health_check_state{check="www",state="UP"} 0');
    expect(text).toMatch(/bgpctl_health_checks_total\{check="dns",result="success"\} \d+/);
    expect(text).toContain('bgpctl_health_checks_total{check="www",result="failure"}');
  });

  test("an address already on lo is left alone: never removed", async () => {
    const d = await daemon(CHECKS.replace("[203.0.113.53/32, 2001:db8:53::53/128]", "[203.0.113.99/32]"));
    d.ok.set("dns", true);
    await d.step(0);
    await d.step(1000);
    expect(d.state("dns")).toBe("UP");
    d.ok.set("dns", false);
    await d.step(5000);
    await d.step(1000);
    expect(d.state("dns")).toBe("DOWN");
    expect(d.loOps).toEqual(["add 203.0.113.99/32"]);
    expect(d.lo.has("203.0.113.99/32")).toBe(true);
    expect(d.lines.some((l) => l.includes("203.0.113.99/32 is already on lo (not added by bgpctl): left alone"))).toBe(true);
  });

  test("reload: an unchanged check keeps state and counters, a changed one is updated in place, a removed one goes with its routes and addresses, unrelated routes stay", async () => {
    const d = await daemon(`advertise: [198.51.100.0/24]\n${CHECKS}`);
    d.ok.set("dns", true);
    d.ok.set("www", true);
    await d.step(0);
    await d.step(1000);
    expect([d.state("dns"), d.state("www")]).toEqual(["UP", "UP"]);
    const plain = d.router.engine.localRoutes.get("198.51.100.0/24");
    const www = d.router.checks().find((c) => c.name === "www")!;

    // www: new communities (state kept, route re-rendered); dns: removed; tcp: new.
    d.write(
      `advertise: [198.51.100.0/24]\nhealthChecks:\n${CHECKS.slice(CHECKS.indexOf("  - name: www")).replace('communities: ["65001:80"]', 'communities: ["65001:81"]')}  - {name: ntp, prefixes: [203.0.113.123/32], exec: probe, rise: 1}\n`,
    );
    const { changes } = await d.router.reload();
    expect(changes).toEqual(["health check dns removed", "health check www updated", "health check ntp added"]);
    expect(d.route("203.0.113.53/32")).toBeNull();
    expect(d.lo.size).toBe(1); // only the address that was there before us
    expect(d.router.engine.localRoutes.get("198.51.100.0/24")).toBe(plain);
    const www2 = d.router.checks().find((c) => c.name === "www")!;
    expect([www2.state, www2.counters.success, www2.since]).toEqual(["UP", www.counters.success, www.since]);
    expect(d.route("203.0.113.80/32")?.communities).toEqual(["65001:81"]);
    expect(d.state("ntp")).toBe("INIT");

    // The same file again: nothing changes.
    expect((await d.router.reload()).changes).toEqual([]);

    // A prefix moves from a check to advertise, and one from advertise into a check.
    d.write(`advertise: [203.0.113.80/32]\nhealthChecks:\n  - {name: web2, prefixes: [198.51.100.0/24], exec: probe, rise: 1}\n`);
    await d.router.reload();
    expect(d.route("203.0.113.80/32")).toEqual({ owner: "config", communities: [], med: null, path: [] });
    expect(d.route("198.51.100.0/24")).toBeNull(); // web2 has not passed yet
    d.ok.set("web2", true);
    await d.step(0);
    expect(d.route("198.51.100.0/24")?.owner).toBe("health");
  });

  test("reload: a prefix moves from one check to another; loopback turned off removes the addresses we added", async () => {
    const d = await daemon(CHECKS);
    d.ok.set("dns", true);
    d.ok.set("www", true);
    await d.step(0);
    await d.step(1000);
    expect(d.lo.has("203.0.113.53/32")).toBe(true);
    // 2001:db8:53::53/128 moves from dns to a new check "dns6" (listed first); dns loses loopback.
    d.write(
      `healthChecks:\n  - {name: dns6, prefixes: [2001:db8:53::53/128], exec: probe, rise: 1, onDown: {degrade: {med: 7}}}\n` +
        CHECKS.slice(CHECKS.indexOf("  - name: dns")).replace("[203.0.113.53/32, 2001:db8:53::53/128]", "[203.0.113.53/32]").replace("loopback: true", "loopback: false"),
    );
    const { changes } = await d.router.reload();
    expect(changes).toEqual(["health check dns6 added", "health check dns updated"]);
    await d.router.health.settled();
    expect(d.route("2001:db8:53::53/128")).toMatchObject({ owner: "health", med: 7 }); // dns6's down form, not removed by dns's update
    expect(d.route("203.0.113.53/32")).toMatchObject({ owner: "health", communities: ["65001:53"] });
    expect([...d.lo].sort()).toEqual(["203.0.113.99/32"]);
    d.ok.set("dns6", true);
    await d.step(0);
    expect(d.route("2001:db8:53::53/128")).toMatchObject({ med: null });
  });

  test("a check over a prefix the control API advertised takes it over", async () => {
    const d = await daemon("");
    await d.router.advertise({ prefixes: ["203.0.113.53/32"] });
    expect(d.route("203.0.113.53/32")?.owner).toBe("api");
    d.write(CHECKS);
    await d.router.reload();
    expect(d.route("203.0.113.53/32")).toBeNull();
    expect(d.lines.some((l) => l.includes("health check dns: takes over 203.0.113.53/32 (was originated by the control API)"))).toBe(true);
  });

  test("a derived configuration (watch-k8s) advertising a checked prefix: the check decides, the advertisement is left out and reported once", async () => {
    const d = await daemon(CHECKS);
    const base = d.router.engine.config;
    // What watch-k8s applies: the file's settings plus derived advertisements, one of them a checked prefix.
    const adv = parseConfig("asn: 65001\nrouterId: 192.0.2.1\nadvertise: [{prefix: 203.0.113.53/32}, {prefix: 198.51.100.0/24}]\n", "derived.yaml").advertise;
    const derived = { ...base, advertise: [...base.advertise, ...adv] };
    const first = await d.router.apply(derived, "kubernetes");
    expect(first).toContain("advertise 203.0.113.53/32 left out: health check dns decides that prefix");
    expect(d.route("198.51.100.0/24")?.owner).toBe("config");
    // Not up yet: the check keeps it withdrawn, whatever the derived configuration says.
    expect(d.route("203.0.113.53/32")).toBeNull();
    d.ok.set("dns", true);
    await d.step(1000);
    await d.step(1000);
    expect(d.state("dns")).toBe("UP");
    expect(d.route("203.0.113.53/32")?.owner).toBe("health");
    const again = await d.router.apply(derived, "kubernetes");
    expect(again.some((c) => c.includes("left out"))).toBe(false);
    expect(d.route("203.0.113.53/32")?.owner).toBe("health");
  });
});
