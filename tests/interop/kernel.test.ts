/**
 * Interop: kernel route programming (the FIB) of `bgpctl run` with a
 * `kernel:` section, against real BIRD 2 and GoBGP peers in network
 * namespaces. The daemon programs the routing table of its own namespace;
 * the kernel state is read with `ip -j route show table T proto P` there and
 * the daemon's view with `bgpctl show fib|interfaces -j`.
 *
 * One lab per file; every test builds its own namespaces (buildNetwork) and
 * starts its own daemons, which `afterEach` stops. Only documentation
 * addresses are used, and only inside the lab's namespaces.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import type { FibEntry, InterfacesInfo } from "../../lib/api/types.ts";
import { BgpctlDaemon, BirdInstance, GobgpInstance, Lab, buildNetwork, which, useLab } from "./lab.ts";
import { sleep } from "../support/wait.ts";
import type { DaemonConfigSpec, DaemonPeerSpec, Family, LabProcess } from "./lab.ts";

const X_AS = 65001;
const PEER_AS = 65010;
const TEST_TIMEOUT = 90_000;
const RTPROT_BGP = 186;
const MAIN = 254;

let lab: Lab;
let IP = "ip";

useLab("kernel", (l) => {
  lab = l;
  IP = which("ip") ?? "ip";
});

// ---------------------------------------------------------------------------
// kernel state helpers
// ---------------------------------------------------------------------------

interface IpNextHop {
  gateway?: string;
  /** RFC 8950 style: an IPv6 gateway for an IPv4 route */
  via?: { family: string; host: string };
  dev?: string;
  weight?: number;
  flags?: string[];
}

interface IpRoute extends IpNextHop {
  dst: string;
  type?: string;
  protocol?: string;
  metric?: number;
  table?: string;
  nexthops?: IpNextHop[];
}

/** `ip -j route` prints host routes without a length and "default" for /0. */
function normDst(dst: string, fam: 4 | 6): string {
  if (dst === "default") return fam === 4 ? "0.0.0.0/0" : "::/0";
  return dst.includes("/") ? dst : `${dst}/${fam === 4 ? 32 : 128}`;
}

/** Routes of one family in `ns`, optionally filtered by table and protocol (ip's own filters). */
async function kernelRoutes(ns: string, fam: 4 | 6, table: number | "all" = MAIN, proto?: number): Promise<IpRoute[]> {
  const argv = [IP, "-j", `-${fam}`, "route", "show", "table", String(table)];
  if (proto !== undefined) argv.push("proto", String(proto));
  const r = await lab.exec(ns, argv, { timeoutMs: 5000 });
  if (r.code !== 0) throw new Error(`${argv.join(" ")} failed (exit ${r.code}): ${r.stderr}`);
  const t = r.stdout.trim();
  const arr = (t === "" ? [] : JSON.parse(t)) as IpRoute[];
  return arr.map((x) => ({ ...x, dst: normDst(x.dst, fam) }));
}

function famOf(prefix: string): 4 | 6 {
  return prefix.includes(":") ? 6 : 4;
}

/** Every route for `prefix` in table/protocol (normally zero or one). */
async function kroutes(ns: string, prefix: string, table = MAIN, proto = RTPROT_BGP): Promise<IpRoute[]> {
  return (await kernelRoutes(ns, famOf(prefix), table, proto)).filter((r) => r.dst === prefix);
}

/** Next hops of a kernel route as "gateway" / "gateway%dev" strings, sorted. */
function hops(r: IpRoute, withDev = false): string[] {
  const list = r.nexthops && r.nexthops.length > 0 ? r.nexthops : [r];
  return list
    .map((h) => {
      const gw = h.gateway ?? h.via?.host ?? "";
      return withDev ? `${gw}%${h.dev ?? ""}` : gw;
    })
    .sort();
}

function describeRoutes(rs: IpRoute[]): string {
  return JSON.stringify(rs);
}

/** Wait (bounded) until the kernel's routes for `prefix` (our table/protocol) satisfy `pred`. */
async function waitKernel(
  ns: string,
  prefix: string,
  pred: (rs: IpRoute[]) => boolean,
  what: string,
  opts: { table?: number; proto?: number; timeoutMs?: number; procs?: LabProcess[] } = {},
): Promise<IpRoute[]> {
  const table = opts.table ?? MAIN;
  const proto = opts.proto ?? RTPROT_BGP;
  let last: IpRoute[] = [];
  try {
    return await lab.waitFor(
      async () => {
        last = await kroutes(ns, prefix, table, proto);
        return pred(last) ? last : null;
      },
      { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 100, what: `kernel (table ${table} proto ${proto}): ${prefix} ${what}`, ...(opts.procs ? { procs: opts.procs } : {}) },
    );
  } catch (e) {
    const all4 = await kernelRoutes(ns, 4, "all").catch(() => []);
    const all6 = await kernelRoutes(ns, 6, "all").catch(() => []);
    throw new Error(`${(e as Error).message}\nlast matching: ${describeRoutes(last)}\nall IPv4 routes: ${describeRoutes(all4)}\nall IPv6 routes: ${describeRoutes(all6)}`);
  }
}

/**
 * The protocol (and metric) `ip` shows for `prefix` in `table`, read without a
 * protocol filter (ip leaves the field out when it filters on it).
 */
async function kernelProto(ns: string, prefix: string, table = MAIN): Promise<{ protocol: string | undefined; metric: number | undefined }[]> {
  return (await kernelRoutes(ns, famOf(prefix), table)).filter((r) => r.dst === prefix).map((r) => ({ protocol: r.protocol, metric: r.metric }));
}

const one = (rs: IpRoute[]): boolean => rs.length === 1;
const none = (rs: IpRoute[]): boolean => rs.length === 0;

/** The link-local address of `ifname` in `ns`. */
async function linkLocalOf(ns: string, ifname: string): Promise<string> {
  const r = await lab.exec(ns, [IP, "-j", "-6", "addr", "show", "dev", ifname, "scope", "link"], { check: true });
  const arr = JSON.parse(r.stdout) as { addr_info?: { local?: string }[] }[];
  const a = arr[0]?.addr_info?.find((x) => x.local?.startsWith("fe80:"))?.local;
  if (!a) throw new Error(`no link-local address on ${ifname}: ${r.stdout}`);
  return a;
}

// ---------------------------------------------------------------------------
// daemon helpers
// ---------------------------------------------------------------------------

interface KernelSection {
  enabled: boolean;
  table: number;
  protocol: number;
  metric: number;
  ecmp: boolean;
  families: Family[];
  exclude: string[];
  retainOnExit: boolean;
  startupDeadline: number;
}

function dPeer(address: string, remoteAs = PEER_AS, extra: Partial<DaemonPeerSpec> = {}): DaemonPeerSpec {
  return { address, remoteAs, families: ["ipv4"], holdTime: 9, connectRetry: 1, import: "all", ...extra };
}

function kConfig(routerId: string, peers: DaemonPeerSpec[], kernel: Partial<KernelSection> = {}, extra: Partial<DaemonConfigSpec> = {}): DaemonConfigSpec {
  const k: KernelSection = {
    enabled: true,
    table: MAIN,
    protocol: RTPROT_BGP,
    metric: 20,
    ecmp: true,
    families: ["ipv4", "ipv6"],
    exclude: [],
    retainOnExit: false,
    startupDeadline: 60,
    ...kernel,
  };
  return { asn: X_AS, routerId, listen: { address: "::", port: 179 }, peers, kernel: k, ...extra };
}

async function fib(d: BgpctlDaemon, prefix?: string): Promise<FibEntry[]> {
  return d.json<FibEntry[]>("show", "fib", ...(prefix ? [prefix] : []));
}

async function waitFib(d: BgpctlDaemon, prefix: string, pred: (e: FibEntry) => boolean, what: string, timeoutMs = 15_000, procs: LabProcess[] = []): Promise<FibEntry> {
  return lab.waitFor(
    async () => {
      const e = (await fib(d, prefix)).find((x) => x.prefix === prefix);
      if (!e) throw new Error(`show fib ${prefix}: no entry`);
      if (!pred(e)) throw new Error(`show fib ${prefix}: ${JSON.stringify(e)}`);
      return e;
    },
    { timeoutMs, intervalMs: 200, what: `${d.name}: show fib ${prefix} ${what}`, procs: [d.proc, ...procs] },
  );
}

// ---------------------------------------------------------------------------
// BIRD configs written here (per-prefix next hops in the export filter,
// static protocols that can be disabled one by one, extended next hop)
// ---------------------------------------------------------------------------

interface KBirdChannel {
  family: Family;
  /** prefix -> next hop set in the export filter (`bgp_next_hop = NH`) */
  nextHops?: Record<string, string>;
  extendedNextHop?: boolean;
}

interface KBirdPeer {
  name: string;
  neighbor: string;
  local: string;
  remoteAs?: number;
  channels: KBirdChannel[];
}

interface KBirdSpec {
  routerId: string;
  localAs?: number;
  /** static protocol name -> prefixes (blackhole routes); the family comes from the prefixes */
  statics: Record<string, string[]>;
  peers: KBirdPeer[];
}

function kBirdConf(spec: KBirdSpec): string {
  const out: string[] = ["# generated by tests/interop/kernel.test.ts", "log stderr all;", `router id ${spec.routerId};`, "protocol device { scan time 1; }"];
  for (const [name, prefixes] of Object.entries(spec.statics)) {
    if (prefixes.length === 0) continue;
    out.push(`protocol static ${name} {`, `  ${famOf(prefixes[0] ?? "") === 6 ? "ipv6" : "ipv4"};`);
    for (const p of prefixes) out.push(`  route ${p} blackhole;`);
    out.push("}");
  }
  for (const p of spec.peers) {
    out.push(`protocol bgp ${p.name} {`);
    out.push("  debug { states, events };");
    out.push(`  local ${p.local} as ${spec.localAs ?? PEER_AS};`);
    out.push(`  neighbor ${p.neighbor} as ${p.remoteAs ?? X_AS};`);
    out.push("  hold time 9;", "  keepalive time 3;", "  startup hold time 5;", "  connect retry time 1;", "  connect delay time 1;");
    out.push("  error wait time 1, 2;", "  error forget time 5;", "  passive on;");
    for (const c of p.channels) {
      const f = Object.entries(c.nextHops ?? {}).map(([pfx, nh]) => `if net = ${pfx} then bgp_next_hop = ${nh};`);
      const exp = f.length > 0 ? `export filter { ${f.join(" ")} accept; };` : "export all;";
      out.push(`  ${c.family} { import none; ${exp}${c.extendedNextHop ? " extended next hop on;" : ""} };`);
    }
    out.push("}");
  }
  return out.join("\n") + "\n";
}

let birdSeq = 0;
async function startKBird(ns: string, spec: KBirdSpec, name = "bird"): Promise<BirdInstance> {
  const path = lab.path(`kbird-${++birdSeq}.conf`);
  writeFileSync(path, kBirdConf(spec));
  return BirdInstance.startWithConfig(lab, ns, path, name, true);
}

/** Rewrite a running BIRD's config and `birdc configure` it (sessions stay up when only filters change). */
async function reconfigureBird(bird: BirdInstance, spec: KBirdSpec): Promise<void> {
  writeFileSync(bird.confPath, kBirdConf(spec));
  const out = await bird.command("configure");
  if (!/Reconfigured|Reconfiguration in progress/i.test(out)) throw new Error(`birdc configure: ${out}`);
}

function procsOf(...xs: { proc: LabProcess }[]): LabProcess[] {
  return xs.map((x) => x.proc);
}

/** Ask `ns` (root of the daemon) to run `ip ...`, throwing on failure. */
async function ipIn(ns: string, ...args: string[]): Promise<string> {
  return (await lab.exec(ns, [IP, ...args], { check: true, timeoutMs: 5000 })).stdout;
}

// ---------------------------------------------------------------------------
// Presence watcher (restart safety): polls `ip route` every 50 ms
// ---------------------------------------------------------------------------

interface Sample {
  t: number;
  present: Set<string>;
}

class PresenceWatch {
  readonly samples: Sample[] = [];
  private stopped = false;
  private readonly loop: Promise<void>;

  constructor(
    readonly ns: string,
    readonly fam: 4 | 6,
    readonly table: number,
    readonly proto: number,
    maxMs: number,
  ) {
    const deadline = Date.now() + maxMs;
    this.loop = (async () => {
      const maxIter = Math.ceil(maxMs / 50) + 10;
      for (let i = 0; i < maxIter && !this.stopped && Date.now() < deadline; i++) {
        try {
          const rs = await kernelRoutes(ns, fam, table, proto);
          this.samples.push({ t: Date.now(), present: new Set(rs.map((r) => r.dst)) });
        } catch {
          /* a failed ip call is not a sample */
        }
        await sleep(50);
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }

  /** Samples where `prefix` was missing, between t0 and t1 (ms timestamps). */
  missing(prefix: string, t0 = 0, t1 = Number.MAX_SAFE_INTEGER): Sample[] {
    return this.samples.filter((s) => s.t >= t0 && s.t <= t1 && !s.present.has(prefix));
  }

  /** First sample time at or after t0 where `prefix` is absent. */
  firstAbsent(prefix: string, t0: number): number | null {
    return this.samples.find((s) => s.t >= t0 && !s.present.has(prefix))?.t ?? null;
  }
}

// ---------------------------------------------------------------------------
// tests
// ---------------------------------------------------------------------------

describe("bgpctl daemon programs the kernel (FIB)", () => {
  test(
    "1. routes from BIRD and GoBGP are installed (proto bgp, main table); a withdraw removes, a next-hop change replaces in place; exit removes ours",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b", "g"],
        segments: [
          { members: { x: { ipv4: "192.0.2.1/25" }, b: { ipv4: "192.0.2.2/25" } } },
          { members: { x: { ipv4: "192.0.2.129/25" }, g: { ipv4: "192.0.2.130/25" } } },
        ],
      });
      const x = net.ns.x!;
      const P_KEEP = "198.51.100.0/26";
      const P_GONE = "198.51.100.64/26";
      const P_MOVE = "198.51.100.128/26";
      const P_GOBGP = "203.0.113.0/25";
      const birdSpec = (moveNh?: string): KBirdSpec => ({
        routerId: "192.0.2.2",
        // `birdc configure` re-enables a protocol disabled with `birdc disable`: the reconfigured file drops s_gone
        statics: { s_keep: [P_KEEP, P_MOVE], s_gone: moveNh ? [] : [P_GONE] },
        peers: [{ name: "x", neighbor: "192.0.2.1", local: "192.0.2.2", channels: [{ family: "ipv4", ...(moveNh ? { nextHops: { [P_MOVE]: moveNh } } : {}) }] }],
      });
      const bird = await startKBird(net.ns.b!, birdSpec());
      const gobgp = await GobgpInstance.start(lab, net.ns.g!, {
        as: 65020,
        routerId: "192.0.2.130",
        neighbors: [{ address: "192.0.2.129", remoteAs: X_AS, localAddress: "192.0.2.130", passive: true, families: ["ipv4"] }],
      });
      const d = await BgpctlDaemon.start(
        lab,
        x,
        kConfig("192.0.2.1", [dPeer("192.0.2.2"), dPeer("192.0.2.130", 65020)], {}, { advertise: [{ prefix: "203.0.113.128/25" }] }),
      );
      const procs = procsOf(bird, gobgp, d);
      await d.waitEstablished("192.0.2.2", 15_000, procs);
      await d.waitEstablished("192.0.2.130", 15_000, procs);
      await gobgp.addRoute({ prefix: P_GOBGP });

      for (const p of [P_KEEP, P_GONE, P_MOVE]) {
        const [r] = await waitKernel(x, p, one, "installed via BIRD", { procs });
        expect(hops(r!, true)).toEqual(["192.0.2.2%eth0"]);
        expect(await kernelProto(x, p)).toEqual([{ protocol: "bgp", metric: 20 }]);
      }
      const [rg] = await waitKernel(x, P_GOBGP, one, "installed via GoBGP", { procs });
      expect(hops(rg!, true)).toEqual(["192.0.2.130%eth1"]);
      // it is in the main table: `ip route show` (no table) lists it too
      expect(await ipIn(x, "route", "show", P_GOBGP)).toMatch(/proto bgp/);

      const fe = await waitFib(d, P_KEEP, (e) => e.state === "installed", "installed", 10_000, procs);
      expect(fe.nextHops).toEqual(["192.0.2.2"]);
      // without a prefix: every route, the GoBGP one with its next hop
      const all = await fib(d);
      expect(all.find((e) => e.prefix === P_GOBGP)).toEqual(expect.objectContaining({ state: "installed", nextHops: ["192.0.2.130"] }));
      for (const p of [P_KEEP, P_GONE, P_MOVE]) expect(all.find((e) => e.prefix === p)?.state).toBe("installed");

      // withdraw: BIRD's static protocol s_gone off; GoBGP deletes its route
      await bird.command("disable", "s_gone");
      await waitKernel(x, P_GONE, none, "removed after BIRD's withdraw", { procs });
      await gobgp.delRoute(P_GOBGP);
      await waitKernel(x, P_GOBGP, none, "removed after GoBGP's withdraw", { procs });
      expect(await kroutes(x, P_KEEP)).toHaveLength(1);

      // next hop change (BIRD re-announces P_MOVE via 192.0.2.3): replaced in place
      const upBefore = (await d.neighbor("192.0.2.2")).uptimeSeconds;
      const watch = new PresenceWatch(x, 4, MAIN, RTPROT_BGP, 20_000);
      let moved: IpRoute[];
      try {
        await sleep(200);
        await reconfigureBird(bird, birdSpec("192.0.2.3"));
        moved = await waitKernel(x, P_MOVE, (rs) => rs.length === 1 && hops(rs[0]!).join() === "192.0.2.3", "to move to 192.0.2.3", { procs });
        await sleep(300);
      } finally {
        await watch.stop();
      }
      // replaced, not deleted and re-added: never missing while it moved
      expect(watch.samples.length).toBeGreaterThan(3);
      expect(watch.missing(P_MOVE)).toEqual([]);
      expect(moved).toHaveLength(1);
      expect(hops(moved[0]!, true)).toEqual(["192.0.2.3%eth0"]);
      // not a session reset
      const n = await d.neighbor("192.0.2.2");
      expect(n.state).toBe("Established");
      expect(n.uptimeSeconds).toBeGreaterThanOrEqual(upBefore);
      // no other route of this prefix in any table (no stale copy with another metric/protocol)
      expect((await kernelRoutes(x, 4, "all")).filter((r) => r.dst === P_MOVE)).toHaveLength(1);

      // local routes (advertise) are never installed: none besides BIRD's remains
      const ours = await kernelRoutes(x, 4, MAIN, RTPROT_BGP);
      expect(ours.map((r) => r.dst).sort()).toEqual([P_KEEP, P_MOVE]);

      // bgpctl shutdown with retainOnExit: false removes our routes (SIGTERM would be a graceful restart: kept)
      await d.shutdown();
      await waitKernel(x, P_KEEP, none, "removed when the daemon shuts down (retainOnExit: false)", { timeoutMs: 5000 });
      expect(await kernelRoutes(x, 4, MAIN, RTPROT_BGP)).toEqual([]);
    },
    TEST_TIMEOUT,
  );

  test(
    "2. ECMP: two eBGP peers in one AS with equal routes -> one kernel route with two next hops; one peer down -> single path",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b1", "b2"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24" }, b1: { ipv4: "192.0.2.2/24" }, b2: { ipv4: "192.0.2.3/24" } } }],
      });
      const x = net.ns.x!;
      const P = "198.51.100.0/24";
      const spec = (addr: string): KBirdSpec => ({
        routerId: addr,
        statics: { s4: [P] },
        peers: [{ name: "x", neighbor: "192.0.2.1", local: addr, channels: [{ family: "ipv4" }] }],
      });
      const b1 = await startKBird(net.ns.b1!, spec("192.0.2.2"), "bird1");
      const b2 = await startKBird(net.ns.b2!, spec("192.0.2.3"), "bird2");
      const d = await BgpctlDaemon.start(lab, x, kConfig("192.0.2.1", [dPeer("192.0.2.2"), dPeer("192.0.2.3")], {}, { multipath: { enabled: true, maxPaths: 4 } }));
      const procs = procsOf(b1, b2, d);
      await d.waitEstablished("192.0.2.2", 15_000, procs);
      await d.waitEstablished("192.0.2.3", 15_000, procs);
      await d.waitRib(P, (r) => r.length === 2 && r.every((e) => e.multipath), 15_000, procs);

      const [r] = await waitKernel(x, P, (rs) => rs.length === 1 && (rs[0]?.nexthops?.length ?? 0) === 2, "one route with two next hops", { procs });
      expect(hops(r!, true)).toEqual(["192.0.2.2%eth0", "192.0.2.3%eth0"]);
      const fe = await waitFib(d, P, (e) => e.state === "installed", "installed", 10_000, procs);
      expect([...fe.nextHops].sort()).toEqual(["192.0.2.2", "192.0.2.3"]);

      await b1.command("disable", "x");
      const [r1] = await waitKernel(x, P, (rs) => rs.length === 1 && hops(rs[0]!).join() === "192.0.2.3", "single path via 192.0.2.3", { procs });
      expect(r1!.nexthops ?? []).toHaveLength(0);
      expect(r1!.gateway).toBe("192.0.2.3");
      expect((await kernelRoutes(x, 4, "all")).filter((k) => k.dst === P)).toHaveLength(1);

      // and back to ECMP
      await b1.command("enable", "x");
      await waitKernel(x, P, (rs) => rs.length === 1 && hops(rs[0]!).length === 2, "ECMP again after the peer returns", { procs, timeoutMs: 20_000 });
    },
    TEST_TIMEOUT,
  );

  test(
    "3. IPv6: over an IPv6 session (link-local + global next hop -> via fe80:: dev; a global-only next hop), and over an IPv4 session",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b1", "b2"],
        segments: [
          { members: { x: { ipv6: "2001:db8:1::1/64" }, b1: { ipv6: "2001:db8:1::2/64" } } },
          { members: { x: { ipv4: "192.0.2.1/24", ipv6: "2001:db8:2::1/64" }, b2: { ipv4: "192.0.2.2/24", ipv6: "2001:db8:2::2/64" } } },
        ],
      });
      const x = net.ns.x!;
      const P_LL = "2001:db8:100::/48";
      const P_GLOBAL = "2001:db8:101::/48";
      const P_V4SESSION = "2001:db8:102::/48";
      // A /64 and a /56: prefixes of 51 to 64 bits have keys of their own form (lib/rib/types.ts, v6Wide).
      const P_64 = "2001:db8:103:7::/64";
      const P_56 = "2001:db8:104:200::/56";
      const b1 = await startKBird(
        net.ns.b1!,
        {
          routerId: "192.0.2.11",
          statics: { s6: [P_LL, P_GLOBAL, P_64, P_56] },
          peers: [{ name: "x", neighbor: "2001:db8:1::1", local: "2001:db8:1::2", channels: [{ family: "ipv6", nextHops: { [P_GLOBAL]: "2001:db8:1::3" } }] }],
        },
        "bird1",
      );
      const b2 = await startKBird(
        net.ns.b2!,
        {
          routerId: "192.0.2.2",
          statics: { s6: [P_V4SESSION] },
          peers: [{ name: "x", neighbor: "192.0.2.1", local: "192.0.2.2", channels: [{ family: "ipv6" }] }],
        },
        "bird2",
      );
      const d = await BgpctlDaemon.start(
        lab,
        x,
        kConfig("192.0.2.1", [dPeer("2001:db8:1::2", PEER_AS, { families: ["ipv6"] }), dPeer("192.0.2.2", PEER_AS, { families: ["ipv6"] })]),
      );
      const procs = procsOf(b1, b2, d);
      await d.waitEstablished("2001:db8:1::2", 15_000, procs);
      await d.waitEstablished("192.0.2.2", 15_000, procs);

      // BIRD's eBGP direct session sends global + link-local: installed via the link-local with the interface
      const ll1 = await linkLocalOf(net.ns.b1!, "eth0");
      const [rl] = await waitKernel(x, P_LL, one, "installed", { procs });
      expect(hops(rl!, true)).toEqual([`${ll1}%eth0`]);
      expect(await kernelProto(x, P_LL)).toEqual([{ protocol: "bgp", metric: 20 }]);
      expect(await ipIn(x, "-6", "route", "show", P_LL)).toMatch(new RegExp(`via ${ll1.replace(/[.:]/g, "\\$&")} dev eth0 proto bgp`));

      for (const p of [P_64, P_56]) {
        const [r] = await waitKernel(x, p, one, `${p} installed`, { procs });
        expect(hops(r!, true)).toEqual([`${ll1}%eth0`]);
      }

      // a global-only next hop set by BIRD's export filter
      const [rgl] = await waitKernel(x, P_GLOBAL, one, "installed", { procs });
      expect(hops(rgl!, true)).toEqual(["2001:db8:1::3%eth0"]);

      // IPv6 NLRI over the IPv4 session: an IPv6 gateway (BIRD's global or link-local on that link)
      const ll2 = await linkLocalOf(net.ns.b2!, "eth0");
      const [rv] = await waitKernel(x, P_V4SESSION, one, "installed", { procs });
      const h = hops(rv!, true);
      expect(h).toHaveLength(1);
      expect([`${ll2}%eth1`, "2001:db8:2::2%eth1"]).toContain(h[0]!);

      const fe = await waitFib(d, P_LL, (e) => e.state === "installed", "installed", 10_000, procs);
      expect(fe.nextHops.length).toBe(1);
      for (const p of [P_64, P_56]) expect((await waitFib(d, p, (e) => e.state === "installed", "installed", 10_000, procs)).nextHops.length).toBe(1);
    },
    TEST_TIMEOUT,
  );

  test(
    "3b. RFC 8950: an IPv4 route with an IPv6 next hop (extended next hop negotiated with BIRD) is installed via inet6",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24", ipv6: "2001:db8:1::1/64" }, b: { ipv4: "192.0.2.2/24", ipv6: "2001:db8:1::2/64" } } }],
      });
      const x = net.ns.x!;
      const P = "198.51.100.0/24";
      const b = await startKBird(net.ns.b!, {
        routerId: "192.0.2.2",
        statics: { s4: [P] },
        peers: [{ name: "x", neighbor: "2001:db8:1::1", local: "2001:db8:1::2", channels: [{ family: "ipv4", extendedNextHop: true }] }],
      });
      const d = await BgpctlDaemon.start(lab, x, kConfig("192.0.2.1", [dPeer("2001:db8:1::2", PEER_AS, { families: ["ipv4"] })]));
      const procs = procsOf(b, d);
      await d.waitEstablished("2001:db8:1::2", 15_000, procs);
      const info = await b.waitEstablished("x", 15_000, procs);
      // BIRD lists what bgpctl offered in its OPEN
      if (!info.neighborCapabilities.some((c) => /extended next hop/i.test(c))) {
        throw new Error(
          `bgpctl run does not offer the extended next hop capability (RFC 8950) in its OPEN, so BIRD cannot send an IPv6 next hop for IPv4. ` +
            `BIRD sees neighbor capabilities: ${JSON.stringify(info.neighborCapabilities)}`,
        );
      }
      const ll = await linkLocalOf(net.ns.b!, "eth0");
      const [r] = await waitKernel(x, P, one, "installed with an IPv6 gateway", { procs });
      const nh = r!.nexthops?.[0] ?? r!;
      expect(nh.via?.family).toBe("inet6");
      expect([ll, "2001:db8:1::2"]).toContain(nh.via?.host ?? "");
      expect(nh.dev).toBe("eth0");
    },
    TEST_TIMEOUT,
  );

  test(
    "4. a custom table (1000) and protocol number (200): routes go there, not into main",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24", ipv6: "2001:db8:1::1/64" }, b: { ipv4: "192.0.2.2/24", ipv6: "2001:db8:1::2/64" } } }],
      });
      const x = net.ns.x!;
      const P4 = "198.51.100.0/24";
      const P6 = "2001:db8:100::/48";
      const b = await startKBird(net.ns.b!, {
        routerId: "192.0.2.2",
        statics: { s4: [P4], s6: [P6] },
        peers: [
          { name: "x", neighbor: "192.0.2.1", local: "192.0.2.2", channels: [{ family: "ipv4" }] },
          { name: "x6", neighbor: "2001:db8:1::1", local: "2001:db8:1::2", channels: [{ family: "ipv6" }] },
        ],
      });
      const d = await BgpctlDaemon.start(
        lab,
        x,
        kConfig("192.0.2.1", [dPeer("192.0.2.2"), dPeer("2001:db8:1::2", PEER_AS, { families: ["ipv6"] })], { table: 1000, protocol: 200 }),
      );
      const procs = procsOf(b, d);
      await d.waitEstablished("192.0.2.2", 15_000, procs);
      await d.waitEstablished("2001:db8:1::2", 15_000, procs);
      const [r4] = await waitKernel(x, P4, one, "installed", { table: 1000, proto: 200, procs });
      expect(hops(r4!)).toEqual(["192.0.2.2"]);
      expect(await kernelProto(x, P4, 1000)).toEqual([{ protocol: "200", metric: 20 }]);
      const [r6] = await waitKernel(x, P6, one, "installed", { table: 1000, proto: 200, procs });
      expect(await kernelProto(x, P6, 1000)).toEqual([{ protocol: "200", metric: 20 }]);
      expect(hops(r6!)[0]).toMatch(/^(fe80:|2001:db8:1::2)/);
      // nothing in main, nothing with proto bgp anywhere
      expect((await kernelRoutes(x, 4, MAIN)).map((r) => r.dst)).not.toContain(P4);
      expect((await kernelRoutes(x, 6, MAIN)).map((r) => r.dst)).not.toContain(P6);
      expect(await kernelRoutes(x, 4, "all", RTPROT_BGP)).toEqual([]);
      expect(await kernelRoutes(x, 6, "all", RTPROT_BGP)).toEqual([]);
      expect(await ipIn(x, "route", "show", "table", "1000", P4)).toMatch(/proto 200/);
      await waitFib(d, P4, (e) => e.state === "installed", "installed", 10_000, procs);

      // a route in table 1000 with another protocol (static) is not ours: never touched
      await ipIn(x, "route", "add", "203.0.113.0/25", "via", "192.0.2.2", "table", "1000", "proto", "static");
      await sleep(2000);
      expect((await kernelRoutes(x, 4, 1000)).map((r) => r.dst)).toContain("203.0.113.0/25");
      await d.shutdown(); // for good (SIGTERM, a graceful restart, would keep them)
      await waitKernel(x, P4, none, "removed on shutdown", { table: 1000, proto: 200, timeoutMs: 5000 });
      expect((await kernelRoutes(x, 4, 1000)).map((r) => r.dst)).toEqual(["203.0.113.0/25"]);
    },
    TEST_TIMEOUT,
  );

  test(
    "5a. restart safety (BIRD, End-of-RIB): SIGKILL and restart; no route disappears; a route withdrawn meanwhile is removed after End-of-RIB",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24" }, b: { ipv4: "192.0.2.2/24" } } }],
      });
      const x = net.ns.x!;
      const P_KEEP = "198.51.100.0/25";
      const P_GONE = "198.51.100.128/25";
      const b = await startKBird(net.ns.b!, {
        routerId: "192.0.2.2",
        statics: { s_keep: [P_KEEP], s_gone: [P_GONE] },
        peers: [{ name: "x", neighbor: "192.0.2.1", local: "192.0.2.2", channels: [{ family: "ipv4" }] }],
      });
      // a deadline far beyond the test's bounds: removal must come from End-of-RIB
      const cfg = kConfig("192.0.2.1", [dPeer("192.0.2.2")], { startupDeadline: 60 });
      const d1 = await BgpctlDaemon.start(lab, x, cfg, "bgpctld-first");
      let procs = procsOf(b, d1);
      await d1.waitEstablished("192.0.2.2", 15_000, procs);
      await waitKernel(x, P_KEEP, one, "installed", { procs });
      await waitKernel(x, P_GONE, one, "installed", { procs });

      const watch = new PresenceWatch(x, 4, MAIN, RTPROT_BGP, 40_000);
      try {
        await sleep(300);
        d1.proc.signal("SIGKILL");
        expect(await d1.proc.waitExit(5000)).toBe(true);
        const tKill = Date.now();
        await b.command("disable", "s_gone");
        await sleep(1500); // the gap
        expect(await kroutes(x, P_GONE)).toHaveLength(1); // nobody removed it while we were down
        const tStart = Date.now();
        const d2 = await BgpctlDaemon.start(lab, x, cfg, "bgpctld-second");
        procs = procsOf(b, d2);
        await d2.waitEstablished("192.0.2.2", 15_000, procs);
        await waitKernel(x, P_GONE, none, "removed after the new session's End-of-RIB (deadline is 60 s)", { timeoutMs: 10_000, procs });
        const gone = Date.now();
        await sleep(1000);
        await watch.stop();
        const firstSample = watch.samples[0]?.t ?? 0;
        expect(watch.samples.length).toBeGreaterThan(20);
        const miss = watch.missing(P_KEEP, firstSample, Date.now());
        if (miss.length > 0) {
          throw new Error(
            `${P_KEEP} vanished from the kernel in ${miss.length} samples (times after SIGKILL: ${miss.map((s) => s.t - tKill).join(", ")} ms; restart at ${tStart - tKill} ms)`,
          );
        }
        // P_GONE stayed through the gap and the start-up
        expect(watch.missing(P_GONE, firstSample, tStart)).toEqual([]);
        const goneAt = watch.firstAbsent(P_GONE, tStart);
        expect(goneAt).not.toBeNull();
        expect((goneAt ?? 0) - tStart).toBeLessThan(gone - tStart + 200);
        const fe = await waitFib(d2, P_KEEP, (e) => e.state === "installed", "installed", 5000, procs);
        expect(fe.nextHops).toEqual(["192.0.2.2"]);
      } finally {
        await watch.stop();
      }
    },
    TEST_TIMEOUT,
  );

  test(
    "5b. restart safety (GoBGP, no End-of-RIB without graceful restart): a stale route is held until startupDeadline (5 s), then removed",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "g"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24" }, g: { ipv4: "192.0.2.2/24" } } }],
      });
      const x = net.ns.x!;
      const P_KEEP = "198.51.100.0/25";
      const P_GONE = "198.51.100.128/25";
      const g = await GobgpInstance.start(lab, net.ns.g!, {
        as: 65020,
        routerId: "192.0.2.2",
        neighbors: [{ address: "192.0.2.1", remoteAs: X_AS, localAddress: "192.0.2.2", passive: true, families: ["ipv4"] }],
      });
      const cfg = kConfig("192.0.2.1", [dPeer("192.0.2.2", 65020)], { startupDeadline: 5 });
      const d1 = await BgpctlDaemon.start(lab, x, cfg, "bgpctld-first");
      let procs = procsOf(g, d1);
      await d1.waitEstablished("192.0.2.2", 15_000, procs);
      await g.addRoute({ prefix: P_KEEP });
      await g.addRoute({ prefix: P_GONE });
      await waitKernel(x, P_KEEP, one, "installed", { procs });
      await waitKernel(x, P_GONE, one, "installed", { procs });

      const watch = new PresenceWatch(x, 4, MAIN, RTPROT_BGP, 40_000);
      try {
        await sleep(300);
        d1.proc.signal("SIGKILL");
        expect(await d1.proc.waitExit(5000)).toBe(true);
        await g.delRoute(P_GONE);
        await sleep(1500);
        const tStart = Date.now();
        const d2 = await BgpctlDaemon.start(lab, x, cfg, "bgpctld-second");
        procs = procsOf(g, d2);
        await d2.waitEstablished("192.0.2.2", 15_000, procs);
        await waitFib(d2, P_KEEP, (e) => e.state === "installed", "installed", 10_000, procs);
        await waitKernel(x, P_GONE, none, "removed at the start-up deadline", { timeoutMs: 15_000, procs });
        await sleep(1000);
        await watch.stop();
        const first = watch.samples[0]?.t ?? 0;
        const miss = watch.missing(P_KEEP, first, Date.now());
        if (miss.length > 0) throw new Error(`${P_KEEP} vanished in ${miss.length} samples (ms after restart: ${miss.map((s) => s.t - tStart).join(", ")})`);
        const goneAt = watch.firstAbsent(P_GONE, first);
        expect(goneAt).not.toBeNull();
        const after = (goneAt ?? 0) - tStart;
        // held for the deadline (counted from the daemon's start, which is after tStart), removed soon after
        if (after < 4500 || after > 9000) {
          throw new Error(`${P_GONE} was removed ${after} ms after the restart; expected about startupDeadline (5000 ms)`);
        }
      } finally {
        await watch.stop();
      }
    },
    TEST_TIMEOUT,
  );

  test(
    "6. repair: a route deleted by hand comes back; a static route for another prefix is never touched; a static route on our key is a conflict, not a fight",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24" }, b: { ipv4: "192.0.2.2/24" } } }],
      });
      const x = net.ns.x!;
      const P1 = "198.51.100.0/25";
      const P2 = "198.51.100.128/25";
      const P_STATIC = "203.0.113.0/25";
      const b = await startKBird(net.ns.b!, {
        routerId: "192.0.2.2",
        statics: { s4: [P1, P2] },
        peers: [{ name: "x", neighbor: "192.0.2.1", local: "192.0.2.2", channels: [{ family: "ipv4" }] }],
      });
      const d = await BgpctlDaemon.start(lab, x, kConfig("192.0.2.1", [dPeer("192.0.2.2")]));
      const procs = procsOf(b, d);
      await d.waitEstablished("192.0.2.2", 15_000, procs);
      await waitKernel(x, P1, one, "installed", { procs });
      await waitKernel(x, P2, one, "installed", { procs });

      // deleted by hand -> back within a few seconds
      const t0 = Date.now();
      await ipIn(x, "route", "del", P1, "proto", "bgp");
      await waitKernel(x, P1, one, "re-installed after a manual delete", { timeoutMs: 5000, procs });
      const repairMs = Date.now() - t0;
      expect(repairMs).toBeLessThan(5000);

      // a static route for another prefix: never touched
      await ipIn(x, "route", "add", P_STATIC, "via", "192.0.2.2", "proto", "static");
      // a static route for our prefix with another metric is another kernel route: both stay
      await ipIn(x, "route", "replace", P2, "via", "192.0.2.3", "proto", "static");
      await sleep(2500);
      expect((await kernelRoutes(x, 4, MAIN, 4)).map((r) => r.dst).sort()).toEqual([P_STATIC, P2].sort());
      expect(await kroutes(x, P2)).toHaveLength(1);
      // the static route takes our key (same metric): conflict; bgpctl leaves it alone
      await ipIn(x, "route", "del", P2, "proto", "static");
      await ipIn(x, "route", "replace", P2, "via", "192.0.2.3", "proto", "static", "metric", "20");
      const fe = await waitFib(d, P2, (e) => e.state === "conflict", "conflict", 10_000, procs);
      expect(fe.state).toBe("conflict");
      await sleep(3000);
      const statics = (await kernelRoutes(x, 4, MAIN, 4)).filter((r) => r.dst === P2);
      expect(statics).toHaveLength(1);
      expect(statics[0]!.gateway).toBe("192.0.2.3");
      expect(statics[0]!.metric).toBe(20);
      expect(await kroutes(x, P2)).toHaveLength(0);
      expect((await fib(d, P2)).find((e) => e.prefix === P2)?.state).toBe("conflict");
      expect((await kernelRoutes(x, 4, MAIN, 4)).map((r) => r.dst)).toContain(P_STATIC);
      // P1 unaffected
      expect(await kroutes(x, P1)).toHaveLength(1);

      // the conflicting route is removed by hand -> ours comes back
      await ipIn(x, "route", "del", P2, "proto", "static", "metric", "20");
      await waitKernel(x, P2, one, "installed again once the conflicting static route is gone", { timeoutMs: 10_000, procs });
      await waitFib(d, P2, (e) => e.state === "installed", "installed", 10_000, procs);
      // the static route for the other prefix survived everything
      expect((await kernelRoutes(x, 4, MAIN, 4)).map((r) => r.dst)).toEqual([P_STATIC]);
      await d.stop();
      expect((await kernelRoutes(x, 4, MAIN, 4)).map((r) => r.dst)).toEqual([P_STATIC]);
    },
    TEST_TIMEOUT,
  );

  test(
    "7. an unreachable next hop: the route is ineligible (next-hop tracking) and not installed; an address on that network makes it install",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24" }, b: { ipv4: "192.0.2.2/24" } } }],
      });
      const x = net.ns.x!;
      const P_BAD = "198.51.100.0/25";
      const P_OK = "198.51.100.128/25";
      const b = await startKBird(net.ns.b!, {
        routerId: "192.0.2.2",
        statics: { s4: [P_BAD, P_OK] },
        peers: [{ name: "x", neighbor: "192.0.2.1", local: "192.0.2.2", channels: [{ family: "ipv4", nextHops: { [P_BAD]: "203.0.113.77" } }] }],
      });
      const d = await BgpctlDaemon.start(lab, x, kConfig("192.0.2.1", [dPeer("192.0.2.2")]));
      const procs = procsOf(b, d);
      await d.waitEstablished("192.0.2.2", 15_000, procs);
      const rib = await d.waitRib(P_BAD, (r) => r.length === 1, 15_000, procs);
      expect(rib[0]?.nextHop).toBe("203.0.113.77");
      // the good route is not held up by the bad one
      await waitKernel(x, P_OK, one, "installed", { procs });
      // Next-hop tracking: a next hop the kernel cannot resolve makes the route ineligible, so it never reaches the FIB.
      const [u] = await d.waitRib(P_BAD, (r) => r.length === 1 && r[0]!.reachable === false, 10_000, procs);
      expect(u!.best).toBe(false);
      expect(await kroutes(x, P_BAD)).toHaveLength(0);

      await ipIn(x, "addr", "add", "203.0.113.1/24", "dev", "eth0");
      const [r] = await waitKernel(x, P_BAD, one, "installed once 203.0.113.0/24 is connected", { timeoutMs: 10_000, procs });
      expect(hops(r!, true)).toEqual(["203.0.113.77%eth0"]);
      await waitFib(d, P_BAD, (e) => e.state === "installed", "installed", 10_000, procs);
    },
    TEST_TIMEOUT,
  );

  test(
    "8. show interfaces -j lists the veth with its index, state and addresses",
    async () => {
      const net = await buildNetwork(lab, {
        nodes: ["x", "b"],
        segments: [{ members: { x: { ipv4: "192.0.2.1/24", ipv6: "2001:db8:1::1/64" }, b: { ipv4: "192.0.2.2/24", ipv6: "2001:db8:1::2/64" } } }],
      });
      const x = net.ns.x!;
      const d = await BgpctlDaemon.start(lab, x, kConfig("192.0.2.1", [dPeer("192.0.2.2")]));
      const link = JSON.parse(await ipIn(x, "-j", "link", "show", "dev", "eth0")) as { ifindex: number }[];
      const ifindex = link[0]!.ifindex;
      const info = await lab.waitFor(
        async () => {
          const i = await d.json<InterfacesInfo>("show", "interfaces");
          return i.addresses.some((a) => a.address === "2001:db8:1::1") ? i : null;
        },
        { timeoutMs: 10_000, what: "show interfaces to list the veth's addresses", procs: [d.proc] },
      );
      const eth0 = info.links.find((l) => l.name === "eth0");
      expect(eth0).toBeDefined();
      expect(eth0!.index).toBe(ifindex);
      expect(eth0!.up).toBe(true);
      expect(info.links.find((l) => l.name === "lo")?.up).toBe(true);
      const mine = info.addresses.filter((a) => a.ifindex === ifindex);
      expect(mine).toContainEqual(expect.objectContaining({ family: 4, address: "192.0.2.1", prefixLength: 24 }));
      expect(mine).toContainEqual(expect.objectContaining({ family: 6, address: "2001:db8:1::1", prefixLength: 64 }));
      expect(mine.some((a) => a.family === 6 && a.address.startsWith("fe80:") && a.prefixLength === 64)).toBe(true);

      // a change is seen (from rtnetlink events or a fresh dump)
      await ipIn(x, "addr", "add", "198.51.100.1/24", "dev", "eth0");
      await lab.waitFor(
        async () => (await d.json<InterfacesInfo>("show", "interfaces")).addresses.some((a) => a.address === "198.51.100.1" && a.ifindex === ifindex),
        { timeoutMs: 5000, what: "show interfaces to list a new address", procs: [d.proc] },
      );
    },
    TEST_TIMEOUT,
  );
});
