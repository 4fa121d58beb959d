/**
 * The command line as users bring it from other tools, run through the
 * compiled binary:
 *  - OpenBGPD's `bgpctl [-j] [-s SOCKET] COMMAND`: the global flags before the
 *    command behave exactly as after it (two `bgpctl run` daemons on
 *    loopback), and a flag given on both sides with different values is an
 *    error naming both;
 *  - `show rib` and `advertise` help and errors per form (daemon vs one-shot
 *    --peer session), and the one-shot form against a daemon;
 *  - `watch-k8s` with no config file, configured by kube-router style flags,
 *    against the Kubernetes API emulator, inside a network namespace of its
 *    own (it programs its kernel); and a flag that disagrees with a file.
 * Loopback and the test's own namespace only; every wait bounded.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { K8sStatus } from "../../lib/k8s/types.ts";
import { endpointSlice, node, service } from "../k8s/fixtures.ts";
import { withEmulatorNamespace } from "../support/emulator-ns.ts";
import { waitFor } from "../support/wait.ts";

const root = join(import.meta.dir, "../..");
const BIN = process.env.BGPCTL_BIN ?? join(root, "dist/bgpctl");
const dir = mkdtempSync(join(tmpdir(), "bgpctl-cli-"));
const sockA = join(dir, "a.sock");
const sockB = join(dir, "b.sock");
// Loopback addresses and ports of this file only (tests/e2e/daemon.test.ts uses 127.0.0.1/.2 and 17279/17280).
const A = "127.0.0.3";
const B = "127.0.0.4";
const LG = "127.0.0.5"; // the one-shot looking glass's own address
const PORT_A = 17291;
const PORT_B = 17292;
const procs: Bun.Subprocess[] = [];

function conf(asn: number, me: string, port: number, peer: string, peerAs: number, peerPort: number, sock: string, prefix: string, extraPeer = ""): string {
  return `asn: ${asn}
routerId: ${me.replace(/^127\./, "192.")}
listen: {address: ${me}, port: ${port}}
controlSocket: ${sock}
peers:
  - {address: ${peer}, remoteAs: ${peerAs}, port: ${peerPort}, localAddress: ${me}, connectRetry: 1, import: all, export: all}
${extraPeer}advertise:
  - {prefix: ${prefix}}
`;
}

interface Run {
  code: number;
  out: string;
  err: string;
}

function cli(args: string[], env?: Record<string, string>): Run {
  const r = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, BGPCTL_SOCKET: join(dir, "env-default.sock"), ...env } });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function ok(args: string[], env?: Record<string, string>): string {
  const r = cli(args, env);
  if (r.code !== 0) throw new Error(`bgpctl ${args.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}

type Nb = { address: string; state: string; remoteAs: number };
const neighbors = (sock: string) => JSON.parse(ok(["show", "neighbors", "-s", sock, "-j"])) as Nb[];

beforeAll(async () => {
  // A also accepts the one-shot looking glass (passive, sends it everything).
  const lgPeer = `  - {address: ${LG}, remoteAs: 65003, passive: true, import: none, export: all}\n`;
  writeFileSync(join(dir, "a.yaml"), conf(65001, A, PORT_A, B, 65002, PORT_B, sockA, "198.51.100.0/24", lgPeer));
  writeFileSync(join(dir, "b.yaml"), conf(65002, B, PORT_B, A, 65001, PORT_A, sockB, "203.0.113.0/24"));
  for (const n of ["a", "b"]) {
    procs.push(Bun.spawn([BIN, "run", "--config", join(dir, `${n}.yaml`)], { stdout: "ignore", stderr: Bun.file(join(dir, `${n}.log`)) }));
  }
  await waitFor(
    () => {
      const ra = JSON.parse(ok(["show", "rib", "-s", sockA, "-j"])) as unknown[];
      const rb = JSON.parse(ok(["show", "rib", "-s", sockB, "-j"])) as unknown[];
      return ra.length === 2 && rb.length === 2;
    },
    { timeoutMs: 20_000, what: "both daemons to have both routes", intervalMs: 100, retryErrors: true },
  );
}, 40_000);

afterAll(async () => {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => Promise.race([p.exited, Bun.sleep(5000)])));
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("global flags before the command (bgpctl [-j] [-s SOCKET] COMMAND)", () => {
  test("every order and spelling gives the same output", () => {
    for (const cmd of [["show", "rib"], ["show", "rib", "203.0.113.0/24"], ["show", "rib", "summary"], ["show", "rib", "--neighbor", B, "--in"]]) {
      const after = ok([...cmd, "-j", "-s", sockA]);
      expect(JSON.parse(after)).not.toEqual([]);
      expect(ok(["-j", "-s", sockA, ...cmd])).toBe(after);
      expect(ok(["--json", "--socket", sockA, ...cmd])).toBe(after);
      expect(ok(["-s", sockA, ...cmd, "-j"])).toBe(after);
      expect(ok([`--socket=${sockA}`, ...cmd, "--json"])).toBe(after);
      // Text output too.
      expect(ok(["-s", sockA, ...cmd])).toBe(ok([...cmd, "-s", sockA]));
    }
    const before = JSON.parse(ok(["-j", "-s", sockB, "show", "neighbors"])) as Nb[];
    expect(before.map((n) => [n.address, n.state, n.remoteAs])).toEqual(neighbors(sockB).map((n) => [n.address, n.state, n.remoteAs]));
    expect(before.map((n) => [n.address, n.state])).toEqual([[A, "Established"]]);
  }, 30_000);

  test("the same value on both sides is fine; different values are an error naming both", () => {
    expect(ok(["-s", sockA, "show", "rib", "-s", sockA, "-j"])).toBe(ok(["show", "rib", "-s", sockA, "-j"]));
    // (show rib summary: counts only, no timers or message counters that move between two calls)
    expect(ok(["-j", "show", "rib", "summary", "-j", "-s", sockA])).toBe(ok(["show", "rib", "summary", "-j", "-s", sockA]));
    const r = cli(["-s", sockA, "show", "summary", "--socket", sockB]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`bgpctl: -s/--socket given twice with different values: ${JSON.stringify(sockA)} before the command and ${JSON.stringify(sockB)} after it; give it once\n`);
  });

  test("a flag before the command wins over $BGPCTL_SOCKET, as after it does", () => {
    const env = { BGPCTL_SOCKET: sockB };
    expect(ok(["-s", sockA, "-j", "show", "rib", "summary"], env)).toBe(ok(["show", "rib", "summary", "-s", sockA, "-j"], env));
    expect(ok(["-j", "show", "rib", "summary"], env)).toBe(ok(["show", "rib", "summary", "-s", sockB, "-j"]));
    expect(ok(["-j", "show", "rib", "summary"], env)).not.toBe(ok(["show", "rib", "summary", "-s", sockA, "-j"]));
  });

  test("advertise and withdraw with -s before the command reach the daemon", async () => {
    expect(ok(["-s", sockA, "advertise", "192.0.2.128/25", "--community", "65001:7"])).toBe("advertised 192.0.2.128/25\n");
    const got = await waitFor(
      () => (JSON.parse(ok(["-j", "-s", sockB, "show", "rib", "192.0.2.128/25"])) as { communities: string[] }[])[0] ?? null,
      { timeoutMs: 10_000, what: "B to learn 192.0.2.128/25", intervalMs: 100, retryErrors: true },
    );
    expect(got.communities).toEqual(["65001:7"]);
    expect(JSON.parse(ok(["--json", "--socket", sockA, "withdraw", "192.0.2.128/25"]))).toEqual({ removed: ["192.0.2.128/25"] });
    await waitFor(() => (JSON.parse(ok(["show", "rib", "192.0.2.128/25", "-s", sockB, "-j"])) as unknown[]).length === 0, {
      timeoutMs: 10_000,
      what: "B to drop 192.0.2.128/25",
      intervalMs: 100,
      retryErrors: true,
    });
  });

  test("a global flag a command does not take is refused by name, in either order", () => {
    const before = cli(["-s", sockA, "mrt", join(dir, "none.mrt")]);
    expect(before.code).toBe(2);
    expect(before.err).toBe(`bgpctl: -s/--socket ${sockA} (before the command) does not apply to mrt\n`);
    expect(cli(["mrt", join(dir, "none.mrt"), "-s", sockA]).code).toBe(2);
    const j = cli(["-j", "config", "check", join(dir, "a.yaml")]);
    expect(j.code).toBe(2);
    expect(j.err).toBe("bgpctl: -j/--json (before the command) does not apply to config check\n");
    // And the per-form checks see a flag before the command as one after it.
    const lg = ["show", "rib", "--peer", A, "--remote-as", "65001", "--local-as", "65003"];
    const e1 = cli(["-s", sockA, ...lg]);
    const e2 = cli([...lg, "-s", sockA]);
    expect(e1.code).toBe(2);
    expect(e1.err).toBe(e2.err);
    expect(e1.err).toContain("--socket does not apply to a one-shot session (show rib --peer); it belongs to the daemon form");
  });

  test("help shows the global flags and the usage line", () => {
    const h = ok(["--help"]);
    expect(h).toContain("Usage: bgpctl [-j] [-s SOCKET] COMMAND [...]");
    expect(h).toMatch(/-j, --json\s+print JSON/);
    expect(h).toMatch(/-s, --socket <path>\s+the daemon's control socket/);
    // Help for a command is the same whatever comes before it.
    expect(ok(["-j", "show", "summary", "--help"])).toBe(ok(["show", "summary", "--help"]));
  });
});

/** The help text's section under `heading`, up to the next blank line. */
function section(help: string, heading: string): string {
  const i = help.indexOf(`\n${heading}\n`);
  if (i < 0) throw new Error(`no section "${heading}" in:\n${help}`);
  const rest = help.slice(i + heading.length + 2);
  const end = rest.indexOf("\n\n");
  return end < 0 ? rest : rest.slice(0, end);
}

describe("show rib and advertise: one usage line and one flag group per form", () => {
  test("show rib --help", () => {
    const h = ok(["show", "rib", "--help"]);
    const usage = h.slice(0, h.indexOf("\n\n")).split("\n");
    expect(usage).toEqual([
      "Usage: bgpctl show rib [PREFIX [longer|shorter]] [--neighbor ADDR [--in|--out]] [--community C] [--as N] [--best] [--family ipv4|ipv6] [-s SOCKET]",
      "       bgpctl show rib summary [-s SOCKET]",
      "       bgpctl show rib --mrt FILE [--family ipv4|ipv6] [-s SOCKET]",
      "       bgpctl show rib --peer ADDR --remote-as N --local-as N [--router-id ID] [--port P] [--local-address A] [--passive] [--family ipv4,ipv6] [--timeout S]",
    ]);
    const daemon = section(h, "Daemon form (asks bgpctl run over its control socket):");
    const oneShot = section(h, "One-shot form (no daemon: a session of its own to --peer):");
    for (const f of ["--neighbor", "--in", "--out", "--community", "--as", "--best", "--mrt", "--socket"]) expect(daemon).toContain(f);
    for (const f of ["--peer", "--remote-as", "--local-as", "--router-id", "--port", "--passive", "--hold-time", "--timeout"]) expect(oneShot).toContain(f);
    expect(daemon).not.toContain("--remote-as");
    expect(oneShot).not.toContain("--neighbor");
    expect(oneShot).toMatch(/--remote-as <asn>\s+the peer's AS number \(required with --peer\)/);
    // The looking glass announces nothing: no announcement flags in this command.
    expect(h).not.toContain("--advertise");
    expect(h).not.toContain("--next-hop");
    expect(section(h, "Both forms:")).toContain("--family");
  });

  test("advertise --help", () => {
    const h = ok(["advertise", "--help"]);
    const usage = h.slice(0, h.indexOf("\n\n")).split("\n");
    expect(usage[0]).toBe("Usage: bgpctl advertise PREFIX... [--next-hop NH]... [--community C]... [--large-community L]... [--local-pref N] [--med N] [-s SOCKET]");
    expect(usage[1]).toStartWith("       bgpctl advertise PREFIX... --peer ADDR --remote-as N --local-as N ");
    const daemon = section(h, "Daemon form (the daemon announces them to its peers):");
    const oneShot = section(h, "One-shot form (no daemon: a session of its own to --peer, until interrupted):");
    const both = section(h, "Both forms:");
    for (const f of ["--local-pref", "--med", "--socket"]) expect(daemon).toContain(f);
    for (const f of ["--peer", "--remote-as", "--local-as", "--shutdown-message", "--verbose"]) expect(oneShot).toContain(f);
    for (const f of ["--next-hop", "--community", "--large-community", "--json"]) expect(both).toContain(f);
    expect(oneShot).toMatch(/--local-as <asn>\s+our AS number \(required with --peer\)/);
    expect(daemon + both).not.toContain("--remote-as");
  });

  test.each([
    [["show", "rib", "--remote-as", "65001"], "bgpctl: show rib: --remote-as only applies with --peer (the one-shot form: show rib --peer ADDR --remote-as N --local-as N ...); without --peer, show rib asks the daemon"],
    [["show", "rib", "--timeout", "5"], "bgpctl: show rib: --timeout only applies with --peer (the one-shot form: show rib --peer ADDR --remote-as N --local-as N ...); without --peer, show rib asks the daemon"],
    [["show", "rib", "--peer", A, "--local-as", "65003"], "bgpctl: --remote-as is required with --peer (bgpctl show rib --peer ADDR --remote-as N --local-as N ...)"],
    [["show", "rib", "--peer", A, "--remote-as", "65001"], "bgpctl: --local-as is required with --peer (bgpctl show rib --peer ADDR --remote-as N --local-as N ...)"],
    [
      ["show", "rib", "--peer", A, "--remote-as", "65001", "--local-as", "65003", "--neighbor", B],
      "bgpctl: show rib: --neighbor does not apply to a one-shot session (show rib --peer); it belongs to the daemon form (show rib [PREFIX] [filters] [-s SOCKET]); with --peer, show rib asks no daemon",
    ],
    [
      ["show", "rib", "--peer", A, "--remote-as", "65001", "--local-as", "65003", "--community", "65001:1"],
      "bgpctl: show rib: --community does not apply to a one-shot session (show rib --peer); it belongs to the daemon form (show rib [PREFIX] [filters] [-s SOCKET]); with --peer, show rib asks no daemon",
    ],
    [
      ["advertise", "192.0.2.0/24", "--remote-as", "65001"],
      "bgpctl: advertise: --remote-as only applies with --peer (the one-shot form: advertise PREFIX... --peer ADDR --remote-as N --local-as N ...); without --peer the prefixes go to the daemon",
    ],
    [
      ["advertise", "192.0.2.0/24", "--peer", A, "--remote-as", "65001", "--local-as", "65003", "--med", "5"],
      "bgpctl: advertise: --med does not apply to a one-shot session (advertise --peer); it belongs to the daemon form (advertise PREFIX... [-s SOCKET]); with --peer the prefixes go to a session of its own",
    ],
    [["advertise", "192.0.2.0/24", "--peer", A, "--local-as", "65003"], "bgpctl: --remote-as is required with --peer (bgpctl advertise PREFIX... --peer ADDR --remote-as N --local-as N ...)"],
  ] as [string[], string][])("%p", (args, msg) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expect(r.err).toBe(`${msg}\n`);
  });

  test("the one-shot form still works: show rib --peer collects the daemon's table", () => {
    const r = cli(["show", "rib", "--peer", A, "--port", String(PORT_A), "--local-address", LG, "--remote-as", "65001", "--local-as", "65003", "--timeout", "10", "-j"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const routes = JSON.parse(r.out) as { prefix: string; asPath: number[] }[];
    expect(routes.map((x) => [x.prefix, x.asPath]).sort()).toEqual([
      ["198.51.100.0/24", [65001]],
      ["203.0.113.0/24", [65001, 65002]],
    ]);
  }, 20_000);
});

describe("watch-k8s with no config file", () => {
  test("a flag that disagrees with the file is refused, naming the flag and the key's file:line", () => {
    const f = join(dir, "k8s.yaml");
    writeFileSync(f, "kubernetes:\n  asn: 64513\n  services: {clusterIPs: true}\n");
    const r = cli(["watch-k8s", "--config", f, "--cluster-asn", "65010", "--no-advertise-cluster-ip", "--kubeconfig", join(dir, "none")]);
    expect(r.code).toBe(2);
    expect(r.err).toBe(
      [
        `bgpctl: 2 flags disagree with ${f} (give each setting once, or the same value in both):`,
        `  --cluster-asn 65010 disagrees with kubernetes.asn: 64513 at ${f}:2`,
        `  --no-advertise-cluster-ip disagrees with kubernetes.services.clusterIPs: true at ${f}:3`,
        "",
      ].join("\n"),
    );
    const h = ok(["watch-k8s", "--help"]);
    for (const flag of [
      "--config",
      "--node-name",
      "--kubeconfig",
      "--cluster-asn",
      "--peer-router-ips",
      "--peer-router-asns",
      "--peer-router-passwords-file",
      "--advertise-cluster-ip",
      "--no-advertise-cluster-ip",
      "--advertise-external-ip",
      "--no-advertise-external-ip",
      "--advertise-loadbalancer-ip",
      "--no-advertise-loadbalancer-ip",
      "--health-port",
    ]) {
      expect(h).toContain(`${flag} `);
    }
  });

  test(
    "flags only, against the API emulator in a namespace: cluster AS, ToR peer with its password, Service IP kinds, health port",
    async () => {
      if (process.getuid?.() !== 0) throw new Error("this test needs root: it runs watch-k8s (which programs its kernel) in a network namespace of its own");
      await withEmulatorNamespace(`h3cli${process.pid}`, dir, async ({ ns, ctl, kubeconfig, procs: local, sh }) => {
        await ctl.create("nodes", node("n1", { ipv4: "192.0.2.11", podCIDRs: ["10.244.1.0/24"] }));
        await ctl.create("services", service("default", "web", { clusterIPs: ["10.96.0.10"], externalIPs: ["203.0.113.10"] }));
        await ctl.create("endpointslices", endpointSlice("default", "web-1", "web", "IPv4", [{ address: "10.244.1.5", nodeName: "n1" }]));
        const passwords = join(dir, "passwords");
        writeFileSync(passwords, "tor-secret\n");
        const sock = join(dir, "k8s.sock");
        // The DaemonSet way: NODE_NAME from the downward API, everything else by flags.
        const daemon = Bun.spawn(
          [
            ...["ip", "netns", "exec", ns, BIN, "watch-k8s", "--kubeconfig", kubeconfig, "--cluster-asn", "65010"],
            ...["--peer-router-ips", "192.0.2.254", "--peer-router-asns", "65000", "--peer-router-passwords-file", passwords],
            ...["--no-advertise-cluster-ip", "--advertise-external-ip", "--health-port", "19179", "-s", sock],
          ],
          { stdout: "ignore", stderr: Bun.file(join(dir, "watch-k8s.log")), env: { ...process.env, NODE_NAME: "n1" } },
        );
        local.push(daemon);
        const st = await waitFor(
          () => {
            const s = JSON.parse(ok(["-j", "-s", sock, "show", "k8s"])) as K8sStatus;
            return s.synced && s.nodeFound && s.services.length ? s : null;
          },
          { timeoutMs: 20_000, what: "watch-k8s to sync", intervalMs: 200, retryErrors: true, detail: () => Bun.spawnSync(["tail", "-20", join(dir, "watch-k8s.log")]).stdout.toString() },
        );
        expect(st.node).toBe("n1");
        expect(st.asn).toBe(65010);
        expect(st.peers).toEqual([{ address: "192.0.2.254", asn: 65000, kind: "external", source: "config", families: ["ipv4", "ipv6"] }]);
        const ips = st.services.find((s) => s.name === "default/web")!.ips;
        expect(ips.find((i) => i.ip === "10.96.0.10")).toMatchObject({ kind: "clusterIP", advertised: false });
        expect(ips.find((i) => i.ip === "10.96.0.10")!.reason).toContain("kubernetes.services.clusterIPs false");
        expect(ips.find((i) => i.ip === "203.0.113.10")).toMatchObject({ kind: "externalIP", advertised: true });
        // The ToR peer is configured (it cannot answer: nothing routes to it in the namespace).
        const nb = JSON.parse(ok(["show", "neighbors", "-s", sock, "-j"])) as Nb[];
        expect(nb.map((n) => [n.address, n.remoteAs])).toEqual([["192.0.2.254", 65000]]);
        // --health-port: the endpoint answers inside the namespace.
        const code = 'const r = await fetch("http://127.0.0.1:19179/readyz"); console.log(r.status + " " + (await r.text()).trim());';
        expect(sh(["ip", "netns", "exec", ns, process.execPath, "-e", code])).toStartWith("200 ");
        // Reload with no file: the same flags again, nothing changes.
        expect(ok(["reload", "-s", sock])).toBe("reloaded: no changes\n");
        daemon.kill("SIGTERM");
        expect(await Promise.race([daemon.exited, Bun.sleep(10_000).then(() => "timeout")])).toBe(0);
      });
    },
    60_000,
  );
});
