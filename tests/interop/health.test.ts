/**
 * Health-checked anycast against a real peer: the compiled bgpctl
 * (BGPCTL_BIN) in namespace "a" with two health checks, BIRD in "b" (one
 * veth, IPv4 and IPv6 sessions). The exec check is `test -e FILE`, which the
 * test flips by creating and removing FILE; checks run every 0.2 s (fast)
 * and 0.5 s, with rise 2 and fall 2, so every transition takes about a
 * second.
 *
 * Asserted at BIRD (what the fabric would see) and in bgpctl's namespace:
 * - withdraw mode: the prefixes (IPv4 and IPv6) appear after rise
 *   successes, with the check's community; the addresses are on lo (in
 *   bgpctl's namespace) while up; failing the check withdraws the routes and
 *   removes the addresses; the drain file withdraws them whatever the check
 *   says and its removal brings them back; `bgpctl check NAME
 *   disable|enable` does the same from the CLI; `show checks` tells;
 * - degrade mode: a failing check keeps its route at BIRD with MED 1000,
 *   our AS prepended three times and the degrade community, and the normal
 *   attributes return when it passes;
 * - an address that was on lo before bgpctl started is left there;
 * - reload removes a check (its routes and addresses go) and leaves the
 *   other check and the session alone.
 */
import { describe, expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import type { CheckInfo } from "../../lib/api/types.ts";
import { BgpctlDaemon, BirdInstance, type BirdRoute, type PairTopology, usePair } from "./lab.ts";

let t: PairTopology;
usePair("health", (x) => (t = x));

const AS_A = 65001;
const AS_B = 65002;
const DNS4 = "203.0.113.53/32";
const DNS6 = "2001:db8:53::53/128";
const WWW = "203.0.113.80/32";
const OLD = "203.0.113.99/32";

function daemonConfig(checks: string): string {
  return `asn: ${AS_A}
routerId: 192.0.2.1
listen: {address: "::", port: 179}
peers:
  - {address: ${t.addr.b4}, remoteAs: ${AS_B}, families: [ipv4], holdTime: 9, connectRetry: 1, import: none, export: all}
  - {address: ${t.addr.b6}, remoteAs: ${AS_B}, families: [ipv6], holdTime: 9, connectRetry: 1, import: none, export: all}
healthChecks:
${checks}`;
}

function checksYaml(up: string, drain: string, www: string): { dns: string; www: string } {
  return {
    dns: `  - name: dns
    prefixes: [${DNS4}, ${DNS6}, ${OLD}]
    exec: "test -e ${up}"
    interval: 0.5
    fastInterval: 0.2
    timeout: 1
    rise: 2
    fall: 2
    drainFile: ${drain}
    communities: ["65001:53"]
    loopback: true
`,
    www: `  - name: www
    prefixes: [${WWW}]
    exec: ["test", "-e", "${www}"]
    interval: 0.5
    fastInterval: 0.2
    rise: 2
    fall: 2
    onDown: {degrade: {med: 1000, prepend: 3, communities: ["65001:666"]}}
    communities: ["65001:80"]
`,
  };
}

async function startBird(): Promise<BirdInstance> {
  return BirdInstance.start(t.lab, t.b, {
    routerId: t.addr.b4,
    localAs: AS_B,
    peers: [
      { name: "x4", neighbor: t.addr.a4, localAddress: t.addr.b4, remoteAs: AS_A, passive: true, families: ["ipv4"] },
      { name: "x6", neighbor: t.addr.a6, localAddress: t.addr.b6, remoteAs: AS_A, passive: true, families: ["ipv6"] },
    ],
  });
}

describe("health-checked anycast with BIRD", () => {
  test(
    "routes follow the check, the drain file and the CLI; degrade keeps a worse route; loopback addresses follow; reload removes a check",
    async () => {
      const lab = t.lab;
      const up = lab.path("dns-up");
      const drain = lab.path("drain-dns");
      const wwwUp = lab.path("www-up");
      // An address on lo before bgpctl starts: not ours, never removed.
      await lab.exec(t.a, ["ip", "addr", "add", OLD, "dev", "lo"], { check: true });
      const checks = checksYaml(up, drain, wwwUp);
      const bird = await startBird();
      const d = await BgpctlDaemon.start(lab, t.a, daemonConfig(checks.dns + checks.www));
      const procs = [d.proc, bird.proc];
      await bird.waitEstablished("x4", 20_000, procs);
      await bird.waitEstablished("x6", 20_000, procs);

      const birdRoute = async (prefix: string): Promise<BirdRoute | null> => {
        const table = prefix.includes(":") ? "master6" : "master4";
        return (await bird.routes({ table })).find((r) => r.prefix === prefix) ?? null;
      };
      /** Wait until BIRD has `prefix` satisfying `pred`; returns the route. */
      const waitBird = (prefix: string, what: string, pred: (r: BirdRoute) => boolean = () => true) =>
        lab.waitFor(
          async () => {
            const r = await birdRoute(prefix);
            return r && pred(r) ? r : null;
          },
          { timeoutMs: 10_000, intervalMs: 100, what: `BIRD: ${prefix} ${what}`, procs },
        );
      /** Wait until BIRD has no route for `prefix`. */
      const waitGone = (prefix: string, what: string) =>
        lab.waitFor(async () => (await birdRoute(prefix)) === null, { timeoutMs: 10_000, intervalMs: 100, what: `BIRD: ${prefix} ${what}`, procs });
      const onLo = async (addr: string) => {
        const r = await lab.exec(t.a, ["ip", "-o", "addr", "show", "dev", "lo"], { check: true });
        return r.stdout.includes(` ${addr} `) || r.stdout.includes(` ${addr}\n`) || r.stdout.split(/\s+/).includes(addr);
      };
      const check = async (name: string) => (await d.json<CheckInfo[]>("show", "checks")).find((c) => c.name === name)!;

      // Nothing is announced before the check has passed `rise` times; www (degrade) is announced degraded from the start.
      const deg = await waitBird(WWW, "degraded");
      expect([deg.med, deg.asPath, deg.communities]).toEqual([1000, [AS_A, AS_A, AS_A, AS_A], ["65001:666"]]);
      expect(await birdRoute(DNS4)).toBeNull();
      expect((await check("dns")).state).toMatch(/FALLING|DOWN/);

      // The check passes: announced (both families) with its community, addresses on lo.
      writeFileSync(up, "");
      const r4 = await waitBird(DNS4, "announced");
      expect([r4.asPath, r4.communities, r4.med]).toEqual([[AS_A], ["65001:53"], null]);
      await waitBird(DNS6, "announced");
      expect((await check("dns")).state).toBe("UP");
      await lab.waitFor(async () => (await onLo("203.0.113.53/32")) && (await onLo("2001:db8:53::53/128")), { timeoutMs: 5000, what: "service addresses on lo", procs });

      // It fails: withdrawn, addresses gone, the one that was there before stays.
      rmSync(up);
      await waitGone(DNS4, "withdrawn");
      await waitGone(DNS6, "withdrawn");
      expect((await check("dns")).state).toBe("DOWN");
      await lab.waitFor(async () => !(await onLo("203.0.113.53/32")) && !(await onLo("2001:db8:53::53/128")), { timeoutMs: 5000, what: "service addresses off lo", procs });
      expect(await onLo(OLD)).toBe(true);

      // Back, then the drain file (maintenance) withdraws it although the check passes.
      writeFileSync(up, "");
      await waitBird(DNS4, "announced again");
      writeFileSync(drain, "");
      await waitGone(DNS4, "withdrawn by the drain file");
      const drained = await check("dns");
      expect([drained.state, drained.drained, drained.announced]).toEqual(["DISABLED", true, "withdrawn"]);
      rmSync(drain);
      await waitBird(DNS4, "back after the drain file");

      // The CLI does what the drain file does.
      const off = await d.command("check", "dns", "disable");
      expect(off).toContain("DISABLED");
      await waitGone(DNS4, "withdrawn by check disable");
      await d.command("check", "dns", "enable");
      await waitBird(DNS4, "back after check enable");
      const unknown = await d.cli(["check", "nope", "disable"]);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toContain("no health check named nope");

      // www passes: normal attributes; fails: degraded again (never withdrawn).
      writeFileSync(wwwUp, "");
      const good = await waitBird(WWW, "with normal attributes", (r) => r.med === null);
      expect([good.asPath, good.communities]).toEqual([[AS_A], ["65001:80"]]);
      rmSync(wwwUp);
      const worse = await waitBird(WWW, "degraded again", (r) => r.med === 1000);
      expect([worse.asPath, worse.communities]).toEqual([[AS_A, AS_A, AS_A, AS_A], ["65001:666"]]);

      // show checks (text) and the metrics name both.
      const text = await d.command("show", "checks");
      expect(text).toMatch(/^dns\s+UP\s+up\s/m);
      expect(text).toMatch(/^www\s+DOWN\s+degraded\s/m);
      const metrics = await d.command("show", "metrics");
      expect(metrics).toContain('bgpctl_health_check_up{check="dns"} 1');
      expect(metrics).toContain('bgpctl_health_check_state{check="www",state="DOWN"} 1');

      // Reload without dns: its routes and addresses go, www and the sessions stay.
      const before = await d.neighbor(t.addr.b4);
      d.writeConfig(daemonConfig(checks.www));
      const rl = await d.reload();
      expect(rl.code).toBe(0);
      expect(rl.stdout).toContain("health check dns removed");
      await waitGone(DNS4, "withdrawn by the reload");
      await waitGone(DNS6, "withdrawn by the reload");
      await lab.waitFor(async () => !(await onLo("203.0.113.53/32")), { timeoutMs: 5000, what: "dns address off lo after reload", procs });
      expect(await onLo(OLD)).toBe(true);
      expect((await birdRoute(WWW))?.med).toBe(1000);
      const after = await d.neighbor(t.addr.b4);
      expect(after.state).toBe("Established");
      expect(after.uptimeSeconds).toBeGreaterThanOrEqual(before.uptimeSeconds);
      expect((await d.json<CheckInfo[]>("show", "checks")).map((c) => c.name)).toEqual(["www"]);

      await d.shutdown();
      expect(await onLo(OLD)).toBe(true);
    },
    120_000,
  );
});
