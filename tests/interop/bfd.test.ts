/**
 * BFD against BIRD's (issue 10 §2): `bgpctl run` with the kernel on and BFD
 * at 300 ms × 3 on three BGP sessions (IPv4, IPv6, IPv6 multihop) with one
 * BIRD, through a bridge so that the path can be cut silently.
 *
 *   bfd-d (bgpctl, AS 65001) 192.0.2.1/24 2001:db8::1/64 ─┐
 *                                                      bfd-sw (bridge br0)
 *   bfd-a (BIRD, AS 65002)   192.0.2.2/24 2001:db8::2/64 ─┘
 *
 * A third session is eBGP multihop (TTL 2) between second IPv6 addresses on
 * the same link: BFD multihop (RFC 5883, UDP 4784).
 *
 * (a) the three BFD sessions Up on both sides, `show bfd` with the negotiated
 *     intervals, BIRD's `show bfd sessions` Up; 60,000 routes in and out
 *     while BFD runs (it stays Up; the longest gap between our packets is
 *     printed); a reload of new BFD timers is applied by a Poll Sequence
 *     (BFD and BGP stay up).
 * (b) silent failure (`ip link set PORT nomaster`): our BFD goes Down and
 *     the BGP sessions drop within 1.5 s (measured from the cut to our log
 *     line; printed), with Cease/BFD Down; BIRD's routes leave our RIB and
 *     kernel.
 * (c) the port back in the bridge: BFD and BGP come back, with the routes.
 * (d) bfd.graceful (applied by a reload): a second cut closes BGP without a
 *     NOTIFICATION.
 */
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { BfdInfo } from "../../lib/api/types.ts";
import { BgpctlDaemon, BirdInstance, type Lab, birdConfig, bgpctlDaemonConfig, type DaemonConfigSpec, useLab } from "./lab.ts";

let lab: Lab;
useLab("bfd", (l) => (lab = l));

const D4 = "192.0.2.1";
const A4 = "192.0.2.2";
const D6 = "2001:db8::1";
const A6 = "2001:db8::2";
/** A third session, eBGP multihop (TTL 2) on the same link: BFD multihop (RFC 5883, UDP 4784). */
const DM = "2001:db8:ffff::1";
const AM = "2001:db8:ffff::2";
const ROUTES = ["198.51.100.0/24", "203.0.113.0/24"];
const ROUTES6 = ["2001:db8:100::/48"];
/** Routes BIRD sends at once in (a), to keep the daemon busy (import, best path, kernel) while BFD runs. */
const BULK = 60_000;

async function topology() {
  const d = await lab.addNamespace("bfd-d");
  const a = await lab.addNamespace("bfd-a");
  const sw = await lab.addNamespace("bfd-sw");
  const da = await lab.connect(d, sw, { ifA: "veth-sw", ifB: "sw-d", a: { ipv4: `${D4}/24`, ipv6: `${D6}/64` }, b: {} });
  const aa = await lab.connect(a, sw, { ifA: "veth-sw", ifB: "sw-a", a: { ipv4: `${A4}/24`, ipv6: `${A6}/64` }, b: {} });
  for (const argv of [
    ["ip", "link", "add", "br0", "type", "bridge", "stp_state", "0", "forward_delay", "0"],
    ["ip", "link", "set", da.ifB, "master", "br0"],
    ["ip", "link", "set", aa.ifB, "master", "br0"],
    ["ip", "link", "set", "br0", "up"],
  ]) {
    await lab.exec(sw, argv, { check: true });
  }
  await lab.exec(d, ["ip", "-6", "addr", "add", `${DM}/64`, "dev", da.ifA, "nodad"], { check: true });
  await lab.exec(a, ["ip", "-6", "addr", "add", `${AM}/64`, "dev", aa.ifA, "nodad"], { check: true });
  return { d, a, sw, port: aa.ifB };
}

/** Our kernel routes (protocol 186) in bfd-d, both families. */
async function kernelRoutes(ns: string): Promise<string[]> {
  const out: string[] = [];
  for (const fam of ["-4", "-6"]) {
    const r = await lab.exec(ns, ["ip", fam, "-j", "route", "show", "proto", "186"], { check: true });
    if (r.stdout.trim()) out.push(...(JSON.parse(r.stdout) as { dst: string }[]).map((x) => x.dst));
  }
  return out.sort();
}

function daemonConfig(graceful: boolean, minRx = 300): DaemonConfigSpec {
  return {
    asn: 65001,
    routerId: D4,
    listen: { address: "::", port: 179 },
    log: { level: "debug" },
    kernel: { enabled: true, startupDeadline: 5 },
    bfd: { minTx: 300, minRx, multiplier: 3, graceful },
    peers: [
      { address: A4, remoteAs: 65002, localAddress: D4, connectRetry: 1, families: ["ipv4"], import: "all", export: "none", bfd: { enabled: true } },
      { address: A6, remoteAs: 65002, localAddress: D6, connectRetry: 1, families: ["ipv6"], import: "all", export: "none", bfd: { enabled: true } },
      { address: AM, remoteAs: 65002, localAddress: DM, connectRetry: 1, multihop: 2, families: ["ipv6"], import: "none", export: "none", bfd: { enabled: true } },
    ],
  };
}

test(
  "BFD with BIRD: Up at 300 ms × 3 (IPv4, IPv6, IPv6 multihop), steady under a 60k-route load, new timers by reload without a reset, silent failure drops BGP in under 1.5 s, recovery, bfd.graceful closes without NOTIFICATION",
  async () => {
    const t = await topology();
    const conf = lab.path("bird-bfd.conf");
    writeFileSync(
      conf,
      birdConfig({
        routerId: A4,
        localAs: 65002,
        peers: [
          { name: "bgp4", neighbor: D4, localAddress: A4, remoteAs: 65001, families: ["ipv4"], export: "static", extra: ["bfd on;", "graceful restart off;"] },
          { name: "bgp6", neighbor: D6, localAddress: A6, remoteAs: 65001, families: ["ipv6"], export: "static", extra: ["bfd on;", "graceful restart off;"] },
          { name: "bgpmh", neighbor: DM, localAddress: AM, remoteAs: 65001, families: ["ipv6"], export: "none", extra: ["multihop 2;", "bfd on;", "graceful restart off;"] },
        ],
        routes: [...ROUTES, ...ROUTES6].map((prefix) => ({ prefix })),
      }) +
        // A table to load the daemon with while BFD runs (enabled in (a)).
        `protocol static bulk { ipv6; disabled; ${Array.from({ length: BULK }, (_, i) => `route 2001:db8:1000:${i.toString(16)}::/64 blackhole;`).join(" ")} }\n` +
        `protocol bfd {\n  interface "*" { min rx interval 300 ms; min tx interval 300 ms; idle tx interval 1000 ms; multiplier 3; };\n  multihop { min rx interval 300 ms; min tx interval 300 ms; idle tx interval 1000 ms; multiplier 3; };\n}\n`,
    );
    const bird = await BirdInstance.startWithConfig(lab, t.a, conf, "bird");
    const daemon = await BgpctlDaemon.start(lab, t.d, daemonConfig(false));
    const procs = [daemon.proc, bird.proc];
    const bfd = () => daemon.json<BfdInfo[]>("show", "bfd");
    const allRoutes = [...ROUTES, ...ROUTES6].sort();

    // (a) Up on both sides, with the negotiated intervals.
    await daemon.waitEstablished(A4, 15_000, [bird.proc]);
    await daemon.waitEstablished(A6, 15_000, [bird.proc]);
    await daemon.waitEstablished(AM, 15_000, [bird.proc]);
    const up = await lab.waitFor(
      async () => {
        const s = await bfd();
        return s.length === 3 && s.every((x) => x.state === "Up" && x.remoteState === "Up" && !x.polling && x.txInterval === 300 && x.rxInterval === 300) ? s : null;
      },
      { what: "the three BFD sessions Up at 300 ms", timeoutMs: 10_000, procs },
    );
    for (const s of up) {
      expect(s).toMatchObject({ multihop: s.peer === AM, diag: "No Diagnostic", detectionTime: 900, remoteMultiplier: 3, bgpState: "Established" });
      expect(s.remoteDiscriminator).not.toBe(0);
    }
    expect(up.map((s) => s.local).sort()).toEqual([D4, D6, DM].sort());
    const text = await daemon.command("show", "bfd");
    expect(text).toMatch(new RegExp(`^${A4.replace(/\./g, "\\.")}\\s+${D4.replace(/\./g, "\\.")}\\s+single hop\\s+Up\\s+Up\\s+No Diagnostic\\s+300\\s+300\\s+900`, "m"));
    expect(await daemon.command("show", "neighbors", A4)).toContain("BFD state = Up");
    const metrics = await daemon.command("show", "metrics");
    expect(metrics).toContain(`bgpctl_bfd_session_state{peer="${A4}",state="Up"} 1`);
    expect(metrics).toContain(`bgpctl_bfd_session_state{peer="${AM}",state="Down"} 0`);
    const birdBfd = await bird.command("show", "bfd", "sessions");
    expect(await daemon.command("show", "bfd")).toMatch(new RegExp(`^${AM}\\s+${DM}\\s+multihop\\s+Up\\s+Up`, "m"));
    for (const peer of [D4, D6, DM]) expect(birdBfd).toMatch(new RegExp(`${peer.replace(/\./g, "\\.")}\\s+\\S+\\s+Up\\s+\\S+\\s+0\\.300\\s+0\\.900`));
    await lab.waitFor(async () => (await kernelRoutes(t.d)).join() === allRoutes.join(), { what: "BIRD's routes in our kernel", timeoutMs: 10_000, procs });

    // Under load: BULK routes arrive at once (import, kernel install); BFD stays Up, our packets keep their pace.
    await bird.command("enable", "bulk");
    await lab.waitFor(async () => (await kernelRoutes(t.d)).length === allRoutes.length + BULK, { what: `${BULK} more routes in our kernel`, timeoutMs: 30_000, intervalMs: 250, procs });
    await bird.command("disable", "bulk");
    await lab.waitFor(async () => (await kernelRoutes(t.d)).join() === allRoutes.join(), { what: "the bulk routes gone again", timeoutMs: 30_000, intervalMs: 250, procs });
    const loaded = await bfd();
    const lag = (await daemon.json<{ eventLoop: { maxLagMs: number } }>("show", "summary")).eventLoop.maxLagMs;
    console.log(`BFD under load (${BULK} routes in and out): longest gap between our packets ${Math.max(...loaded.map((s) => s.maxTxGap))} ms at 300 ms, event loop max lag ${lag} ms`);
    for (const s of loaded) {
      expect(s.state).toBe("Up");
      expect(s.maxTxGap).toBeLessThan(900); // the peer's detection time: a longer gap and BIRD would have gone down
    }
    expect(daemon.proc.text()).not.toMatch(/BFD went down/);

    // A reload with a longer RequiredMinRx: a Poll Sequence, BIRD now sends every 500 ms; nothing resets.
    const before = await daemon.neighbor(A4);
    writeFileSync(daemon.configPath, bgpctlDaemonConfig(daemonConfig(false, 500)));
    await daemon.command("reload");
    await lab.waitFor(
      async () => {
        const s = await bfd();
        return s.every((x) => x.state === "Up" && !x.polling && x.rxInterval === 500 && x.detectionTime === 1500);
      },
      { what: "the new RequiredMinRx in force (poll done)", timeoutMs: 5000, procs },
    );
    expect(await bird.command("show", "bfd", "sessions")).toMatch(/Up\s+\S+\s+0\.500\s+0\.900/); // BIRD sends every 500 ms now; its own detection time is unchanged
    const after = await daemon.neighbor(A4);
    expect(after.state).toBe("Established");
    expect(after.uptimeSeconds).toBeGreaterThanOrEqual(before.uptimeSeconds);
    expect(daemon.proc.text()).not.toMatch(/BFD went down/);
    writeFileSync(daemon.configPath, bgpctlDaemonConfig(daemonConfig(false)));
    await daemon.command("reload");
    await lab.waitFor(async () => (await bfd()).every((x) => x.state === "Up" && !x.polling && x.rxInterval === 300), { what: "300 ms again", timeoutMs: 5000, procs });

    /** Cut the path silently; returns ms from the cut to our "BFD went down" log line for `peer`, once BGP is down. */
    const cut = async (peer: string, what: string): Promise<number> => {
      const from = daemon.proc.lines.length;
      const t0 = Date.now();
      await lab.exec(t.sw, ["ip", "link", "set", t.port, "nomaster"], { check: true });
      const line = await lab.waitFor(
        () => daemon.proc.lines.slice(from).find((l) => l.text.includes(`neighbor ${peer} `) && l.text.includes("BFD went down")),
        { what: `${what}: our BFD for ${peer} to go down`, timeoutMs: 5000, intervalMs: 10, procs },
      );
      const ms = daemon.proc.startedAt + line.t - t0;
      await lab.waitFor(async () => (await daemon.neighbor(peer)).state !== "Established", { what: `${what}: BGP with ${peer} down`, timeoutMs: 2000, intervalMs: 20, procs });
      return ms;
    };

    // (b) Silent failure.
    const from = daemon.proc.lines.length;
    const ms = await cut(A4, "cut");
    console.log(`BFD: silent failure to BGP session down in ${ms} ms (BFD 300 ms × 3)`);
    expect(ms).toBeLessThan(1500);
    for (const p of [A6, AM]) await lab.waitFor(async () => (await daemon.neighbor(p)).state !== "Established", { what: `the session with ${p} down too`, timeoutMs: 2000, procs });
    const down = await bfd();
    for (const s of down) expect(s).toMatchObject({ state: "Down", diag: "Control Detection Time Expired", lastDown: "detection-timeout: Control Detection Time Expired" });
    await lab.waitFor(async () => (await kernelRoutes(t.d)).length === 0 && (await daemon.rib()).length === 0, { what: "BIRD's routes out of our kernel and RIB", timeoutMs: 3000, procs });
    const log = daemon.proc.lines.slice(from).map((l) => l.text).join("\n");
    expect(log).toMatch(new RegExp(`neighbor ${A4.replace(/\./g, "\\.")} .*sent NOTIFICATION Cease/.*BFD Down`));

    // (c) Back in the bridge: BFD Up, BGP Established, routes back.
    await lab.exec(t.sw, ["ip", "link", "set", t.port, "master", "br0"], { check: true });
    await lab.waitFor(async () => (await bfd()).every((x) => x.state === "Up"), { what: "BFD Up again", timeoutMs: 10_000, procs });
    await daemon.waitEstablished(A4, 15_000, procs);
    await daemon.waitEstablished(A6, 15_000, procs);
    await daemon.waitEstablished(AM, 15_000, procs);
    await lab.waitFor(async () => (await kernelRoutes(t.d)).join() === allRoutes.join(), { what: "the routes back in our kernel", timeoutMs: 10_000, procs });

    // (d) bfd.graceful by reload (no reset), then a cut: no NOTIFICATION.
    writeFileSync(daemon.configPath, bgpctlDaemonConfig(daemonConfig(true)));
    await daemon.command("reload");
    await lab.waitFor(async () => (await bfd()).every((x) => x.graceful && x.state === "Up"), { what: "bfd.graceful in force", timeoutMs: 5000, procs });
    const from2 = daemon.proc.lines.length;
    const ms2 = await cut(A4, "graceful cut");
    console.log(`BFD graceful: silent failure to BGP session down in ${ms2} ms`);
    const log2 = daemon.proc.lines.slice(from2).map((l) => l.text).join("\n");
    expect(log2).toContain("closing the BGP connection without a NOTIFICATION (bfd.graceful)");
    expect(log2).not.toMatch(/sent NOTIFICATION/);
    await lab.exec(t.sw, ["ip", "link", "set", t.port, "master", "br0"], { check: true });
    await daemon.waitEstablished(A4, 15_000, procs);
  },
  90_000,
);
