/**
 * ffi/rtnetlink.ts against the real kernel, in a network namespace created
 * for this run (`bgpctl-k-<pid>`): two veth pairs (veth0a 192.0.2.1/24,
 * 2001:db8::1/64; veth1a 198.51.100.1/24, 2001:db8:1::1/64), and
 * tests/kernel/rtnetlink-agent.ts running inside it under `ip netns exec`,
 * driven over stdin/stdout. Every result is cross-checked with
 * `ip -j route show table 1000 proto 200` in the namespace.
 *
 * Covers: replace via a gateway, replace in place, delete; ECMP; IPv6
 * (global and link-local gateways); an IPv4 route via an IPv6 next hop
 * (RTA_VIA); table 1000 / protocol 200 and a table < 256; an unreachable
 * gateway (ENETUNREACH with the ext-ack text); per-operation error mapping
 * inside one batch; filtered dumps that leave out (and never touch) a
 * `proto static` route; multicast events (a route removed with `ip route
 * del`, an address added) and an overrun on a tiny buffer; 10,000 routes in
 * one apply(); single-address lookups (`ip route get ADDR fibmatch`) for
 * gateway, connected, local, blackhole/unreachable/prohibit and missing
 * routes of both families, also from an unprivileged agent. Needs root: fails (does not skip) otherwise. The namespace
 * and the agent are removed in afterAll, and namespaces left by dead runs
 * are swept first.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { waitFor } from "../support/wait.ts";
import type { KernelError, KernelEvent, KernelLink, KernelAddress, KernelLookup, KernelOp, KernelRoute } from "../../lib/fib/types.ts";

const ROOT = resolve(import.meta.dir, "../..");
const NS = `bgpctl-k-${process.pid}`;
const IS_ROOT = process.getuid?.() === 0;
const TABLE = 1000;
const PROTO = 200;

// ---------------------------------------------------------------------------
// Shell helpers (bounded in time)
// ---------------------------------------------------------------------------

function run(argv: string[], check = true): { code: number; stdout: string; stderr: string } {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
  const out = { code: r.exitCode ?? -1, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
  if (check && out.code !== 0) throw new Error(`${argv.join(" ")} failed (${out.code}): ${out.stderr.trim()}`);
  return out;
}

/** `ip -n NS ...` */
function ip(...args: string[]): string {
  return run(["ip", "-n", NS, ...args]).stdout;
}

interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
  via?: { family: string; host: string };
  nexthops?: { gateway?: string; dev?: string; weight?: number; via?: { family: string; host: string } }[];
}

function ipRoutes(family: 4 | 6, ...selector: string[]): IpRoute[] {
  const out = ip(`-${family}`, "-j", "route", "show", ...selector).trim();
  return out ? (JSON.parse(out) as IpRoute[]) : [];
}

const ours = (family: 4 | 6 = 4) => ipRoutes(family, "table", String(TABLE), "proto", String(PROTO));

function sweepStaleNamespaces(): void {
  const list = run(["ip", "netns", "list"], false).stdout;
  for (const m of list.matchAll(/^bgpctl-k-(\d+)\b/gm)) {
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
    if (!alive) run(["ip", "netns", "del", `bgpctl-k-${pid}`], false);
  }
}

// ---------------------------------------------------------------------------
// The agent inside the namespace
// ---------------------------------------------------------------------------

class Agent {
  private proc: Subprocess<"pipe", "pipe", "pipe">;
  private nextId = 1;
  private pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private stderr = "";
  readonly ready: Promise<unknown>;

  /** `asUser`: run the agent as that uid/gid (no capabilities) instead of root. */
  constructor(asUser?: number) {
    const drop = asUser === undefined ? [] : ["setpriv", `--reuid=${asUser}`, `--regid=${asUser}`, "--clear-groups"];
    this.proc = Bun.spawn(["ip", "netns", "exec", NS, ...drop, process.execPath, join(ROOT, "tests/kernel/rtnetlink-agent.ts")], {
      stdin: "pipe",
      stdout: "pipe",
      stderr: "pipe",
      cwd: ROOT,
    });
    this.ready = new Promise((resolve, reject) => this.pending.set(0, { resolve, reject }));
    void this.readLines();
    void this.readStderr();
    void this.proc.exited.then((code) => {
      for (const p of this.pending.values()) p.reject(new Error(`agent exited (${code}): ${this.stderr}`));
      this.pending.clear();
    });
  }

  private async readStderr(): Promise<void> {
    for await (const chunk of this.proc.stderr) this.stderr += new TextDecoder().decode(chunk);
  }

  private async readLines(): Promise<void> {
    let buf = "";
    for await (const chunk of this.proc.stdout) {
      buf += new TextDecoder().decode(chunk);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(line) as { id: number; ok: boolean; result?: unknown; error?: string };
        const p = this.pending.get(msg.id);
        if (!p) continue;
        this.pending.delete(msg.id);
        if (msg.ok) p.resolve(msg.result);
        else p.reject(new Error(`agent: ${msg.error}`));
      }
    }
  }

  call<T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 60_000): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`agent: ${cmd} timed out after ${timeoutMs} ms; stderr: ${this.stderr}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.proc.stdin.write(`${JSON.stringify({ id, cmd, ...args })}\n`);
      this.proc.stdin.flush();
    });
  }

  apply(ops: KernelOp[]): Promise<{ results: (KernelError | null)[]; ms: number; turns: number }> {
    return this.call("apply", { ops }, 120_000);
  }

  kill(): void {
    this.proc.kill("SIGKILL");
  }
}

let agent: Agent | null = null;
let setupError: Error | null = null;

function need(): Agent {
  if (!IS_ROOT) throw new Error("tests/kernel/rtnetlink.test.ts needs root (network namespaces, routes): run it as root");
  if (setupError) throw setupError;
  if (!agent) throw new Error("agent not started");
  return agent;
}

function route(p: Partial<KernelRoute> & { prefix: string }): KernelRoute {
  return { family: 4, table: TABLE, protocol: PROTO, metric: 0, nextHops: [], type: 1, ...p };
}
const replace = (r: KernelRoute): KernelOp => ({ op: "replace", route: r });
const del = (r: KernelRoute): KernelOp => ({ op: "delete", route: r });

let ifVeth0a = 0;
let ifVeth1a = 0;

beforeAll(async () => {
  if (!IS_ROOT) return;
  try {
    sweepStaleNamespaces();
    run(["ip", "netns", "add", NS]);
    ip("link", "set", "lo", "up");
    ip("link", "add", "veth0a", "type", "veth", "peer", "name", "veth0b");
    ip("link", "add", "veth1a", "type", "veth", "peer", "name", "veth1b");
    for (const l of ["veth0a", "veth0b", "veth1a", "veth1b"]) ip("link", "set", l, "up");
    ip("addr", "add", "192.0.2.1/24", "dev", "veth0a");
    ip("addr", "add", "2001:db8::1/64", "dev", "veth0a", "nodad");
    ip("addr", "add", "198.51.100.1/24", "dev", "veth1a");
    ip("addr", "add", "2001:db8:1::1/64", "dev", "veth1a", "nodad");
    // A route of someone else's in our table: filtered dumps must leave it out, and we must never touch it.
    ip("route", "add", "203.0.113.200/32", "via", "192.0.2.2", "table", String(TABLE), "proto", "static");
    const links = JSON.parse(ip("-j", "link", "show")) as { ifindex: number; ifname: string }[];
    ifVeth0a = links.find((l) => l.ifname === "veth0a")!.ifindex;
    ifVeth1a = links.find((l) => l.ifname === "veth1a")!.ifindex;
    agent = new Agent();
    await agent.ready;
  } catch (e) {
    setupError = e as Error;
  }
}, 60_000);

afterAll(() => {
  agent?.kill();
  agent = null;
  if (IS_ROOT) run(["ip", "netns", "del", NS], false);
});

// ---------------------------------------------------------------------------

describe("rtnetlink against the kernel", () => {
  test("dumpLinks and dumpAddresses see the veth pairs and their addresses", async () => {
    const a = need();
    const links = await a.call<KernelLink[]>("dumpLinks");
    expect(links).toContainEqual({ index: ifVeth0a, name: "veth0a", up: true, mtu: 1500 });
    expect(links.find((l) => l.name === "lo")).toMatchObject({ index: 1, up: true, mtu: 65536 });
    const addrs = await a.call<KernelAddress[]>("dumpAddresses");
    expect(addrs).toContainEqual({ family: 4, ifindex: ifVeth0a, address: "192.0.2.1", prefixLength: 24, scope: 0 });
    expect(addrs).toContainEqual({ family: 6, ifindex: ifVeth0a, address: "2001:db8::1", prefixLength: 64, scope: 0 });
    expect(addrs.some((x) => x.family === 6 && x.ifindex === ifVeth0a && x.address.startsWith("fe80:") && x.scope === 253)).toBe(true);
  });

  test("replace via a gateway; replace again in place; delete", async () => {
    const a = need();
    const r = route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "192.0.2.2" }] });
    expect((await a.apply([replace(r)])).results).toEqual([null]);
    expect(ours()).toMatchObject([{ dst: "203.0.113.0/24", gateway: "192.0.2.2", dev: "veth0a" }]);
    // (`ip -j` leaves out the field used as a selector: look at the protocol unfiltered.)
    expect(ipRoutes(4, "table", String(TABLE)).find((x) => x.dst === "203.0.113.0/24")).toMatchObject({ protocol: "200" });

    expect((await a.apply([replace({ ...r, nextHops: [{ gateway: "192.0.2.3" }] })])).results).toEqual([null]);
    const after = ours();
    expect(after.length).toBe(1);
    expect(after[0]).toMatchObject({ dst: "203.0.113.0/24", gateway: "192.0.2.3" });
    const dumped = await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: TABLE, protocol: PROTO } });
    expect(dumped).toEqual([{ ...r, nextHops: [{ gateway: "192.0.2.3", ifindex: ifVeth0a }], scope: 0 }]);

    expect((await a.apply([del(r)])).results).toEqual([null]);
    expect(ours()).toEqual([]);
    const again = (await a.apply([del(r)])).results;
    expect(again[0]).toMatchObject({ errno: 3, code: "ESRCH" });
  });

  test("ECMP route with two next hops on two links, with a weight", async () => {
    const a = need();
    const r = route({ prefix: "203.0.113.64/26", nextHops: [{ gateway: "192.0.2.2" }, { gateway: "198.51.100.2", weight: 3 }] });
    expect((await a.apply([replace(r)])).results).toEqual([null]);
    const got = ours().find((x) => x.dst === "203.0.113.64/26");
    expect(got?.nexthops).toMatchObject([
      { gateway: "192.0.2.2", dev: "veth0a", weight: 1 },
      { gateway: "198.51.100.2", dev: "veth1a", weight: 3 },
    ]);
    const dumped = await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: TABLE, protocol: PROTO } });
    expect(dumped.find((x) => x.prefix === "203.0.113.64/26")?.nextHops).toEqual([
      { gateway: "192.0.2.2", ifindex: ifVeth0a },
      { gateway: "198.51.100.2", ifindex: ifVeth1a, weight: 3 },
    ]);
    // Back to one next hop, in place.
    expect((await a.apply([replace({ ...r, nextHops: [{ gateway: "198.51.100.2" }] })])).results).toEqual([null]);
    expect(ours().filter((x) => x.dst === "203.0.113.64/26")).toMatchObject([{ gateway: "198.51.100.2", dev: "veth1a" }]);
    expect((await a.apply([del(r)])).results).toEqual([null]);
  });

  test("IPv6: global gateway, link-local gateway with ifindex, ECMP; delete removes every next hop", async () => {
    const a = need();
    const g = route({ family: 6, prefix: "2001:db8:100::/48", metric: 1024, nextHops: [{ gateway: "2001:db8::2" }] });
    const ll = route({ family: 6, prefix: "2001:db8:200::/48", metric: 1024, nextHops: [{ gateway: "fe80::1", ifindex: ifVeth0a }] });
    const mp = route({ family: 6, prefix: "2001:db8:300::/48", metric: 1024, nextHops: [{ gateway: "fe80::1", ifindex: ifVeth0a }, { gateway: "fe80::2", ifindex: ifVeth1a }] });
    expect((await a.apply([replace(g), replace(ll), replace(mp)])).results).toEqual([null, null, null]);
    const v6 = ours(6);
    expect(v6.find((x) => x.dst === "2001:db8:100::/48")).toMatchObject({ gateway: "2001:db8::2", dev: "veth0a", metric: 1024 });
    expect(v6.find((x) => x.dst === "2001:db8:200::/48")).toMatchObject({ gateway: "fe80::1", dev: "veth0a" });
    expect(v6.find((x) => x.dst === "2001:db8:300::/48")?.nexthops).toMatchObject([
      { gateway: "fe80::1", dev: "veth0a" },
      { gateway: "fe80::2", dev: "veth1a" },
    ]);
    const dumped = await a.call<KernelRoute[]>("dumpRoutes", { family: 6, filter: { table: TABLE, protocol: PROTO } });
    expect(dumped.find((x) => x.prefix === "2001:db8:300::/48")?.nextHops).toEqual(mp.nextHops);
    // A link-local gateway without an interface cannot be resolved.
    const noIf = (await a.apply([replace(route({ family: 6, prefix: "2001:db8:400::/48", metric: 1024, nextHops: [{ gateway: "fe80::1" }] }))])).results[0];
    console.log(`kernel: IPv6 link-local gateway without ifindex -> ${JSON.stringify(noIf)}`);
    expect(noIf).not.toBeNull();
    // IPv6 metric 0 is stored as 1024 by the kernel (IP6_RT_PRIO_USER).
    expect((await a.apply([replace(route({ family: 6, prefix: "2001:db8:500::/48", nextHops: [{ gateway: "2001:db8::2" }] }))])).results).toEqual([null]);
    expect(ours(6).find((x) => x.dst === "2001:db8:500::/48")?.metric).toBe(1024);
    expect((await a.apply([del(g), del(ll), del(mp), del(route({ family: 6, prefix: "2001:db8:500::/48", metric: 1024 }))])).results).toEqual([null, null, null, null]);
    expect(ours(6)).toEqual([]);
  });

  test("IPv4 route with an IPv6 next hop (RTA_VIA)", async () => {
    const a = need();
    const r = route({ prefix: "203.0.113.128/25", nextHops: [{ gateway: "2001:db8::2", via6: true }] });
    const rll = route({ prefix: "198.51.100.128/25", nextHops: [{ gateway: "fe80::1", via6: true, ifindex: ifVeth1a }] });
    const res = (await a.apply([replace(r), replace(rll)])).results;
    console.log(`kernel: IPv4 via inet6 global -> ${JSON.stringify(res[0])}, via inet6 link-local -> ${JSON.stringify(res[1])}`);
    if (res[0] === null) {
      expect(ours().find((x) => x.dst === "203.0.113.128/25")).toMatchObject({ via: { family: "inet6", host: "2001:db8::2" }, dev: "veth0a" });
      const dumped = await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: TABLE, protocol: PROTO } });
      expect(dumped.find((x) => x.prefix === "203.0.113.128/25")?.nextHops).toEqual([{ gateway: "2001:db8::2", via6: true, ifindex: ifVeth0a }]);
      expect(dumped.find((x) => x.prefix === "198.51.100.128/25")?.nextHops).toEqual([{ gateway: "fe80::1", via6: true, ifindex: ifVeth1a }]);
      // ECMP mixing an IPv4 and an IPv6 next hop.
      const mixed = route({ prefix: "203.0.113.128/25", nextHops: [{ gateway: "192.0.2.2" }, { gateway: "fe80::2", via6: true, ifindex: ifVeth1a }] });
      expect((await a.apply([replace(mixed)])).results).toEqual([null]);
      expect(ours().find((x) => x.dst === "203.0.113.128/25")?.nexthops).toMatchObject([
        { gateway: "192.0.2.2", dev: "veth0a" },
        { via: { family: "inet6", host: "fe80::2" }, dev: "veth1a" },
      ]);
    } else {
      // An older kernel may refuse: then the refusal must be a clean per-route error.
      expect(res[0]).toMatchObject({ code: expect.any(String) });
    }
    await a.apply([del(r), del(rll)]);
    expect(ours().filter((x) => x.dst === "203.0.113.128/25" || x.dst === "198.51.100.128/25")).toEqual([]);
  });

  test("a table below 256 (rtm_table) and the default route", async () => {
    const a = need();
    const r = route({ prefix: "0.0.0.0/0", table: 100, nextHops: [{ gateway: "192.0.2.2" }] });
    expect((await a.apply([replace(r)])).results).toEqual([null]);
    expect(ipRoutes(4, "table", "100")).toMatchObject([{ dst: "default", gateway: "192.0.2.2", protocol: "200" }]);
    expect(await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: 100 } })).toEqual([{ ...r, nextHops: [{ gateway: "192.0.2.2", ifindex: ifVeth0a }], scope: 0 }]);
    expect((await a.apply([del(r)])).results).toEqual([null]);
    expect(ipRoutes(4, "table", "100")).toEqual([]);
  });

  test("an unreachable gateway is ENETUNREACH with the kernel's ext-ack message", async () => {
    const a = need();
    const res = (await a.apply([replace(route({ prefix: "203.0.113.0/24", nextHops: [{ gateway: "203.0.113.99" }] }))])).results;
    console.log(`kernel: unreachable gateway -> ${JSON.stringify(res[0])}`);
    expect(res[0]).toMatchObject({ errno: 101, code: "ENETUNREACH" });
    expect(res[0]!.message).toMatch(/gateway/i);
  });

  test("one batch with errors in the middle: each result maps to its operation", async () => {
    const a = need();
    const ok1 = route({ prefix: "203.0.113.1/32", nextHops: [{ gateway: "192.0.2.2" }] });
    const bad = route({ prefix: "203.0.113.2/32", nextHops: [{ gateway: "203.0.113.99" }] });
    const ok2 = route({ prefix: "203.0.113.3/32", nextHops: [{ gateway: "192.0.2.2" }] });
    const missing = route({ prefix: "203.0.113.4/32" });
    const invalid = route({ prefix: "203.0.113.5/24", nextHops: [{ gateway: "192.0.2.2" }] });
    const ok3 = route({ prefix: "203.0.113.6/32", nextHops: [{ gateway: "192.0.2.2" }] });
    const res = (await a.apply([replace(ok1), replace(bad), replace(ok2), del(missing), replace(invalid), replace(ok3)])).results;
    expect(res[0]).toBeNull();
    expect(res[1]).toMatchObject({ code: "ENETUNREACH" });
    expect(res[2]).toBeNull();
    expect(res[3]).toMatchObject({ code: "ESRCH" });
    expect(res[4]).toMatchObject({ code: "EINVAL" });
    expect(res[4]!.message).toMatch(/host bits/);
    expect(res[5]).toBeNull();
    expect(ours().map((x) => x.dst).sort()).toEqual(["203.0.113.1", "203.0.113.3", "203.0.113.6"]);
    // The last operation failing ends the batch too.
    const last = (await a.apply([del(ok1), del(ok2), del(ok3), del(missing)])).results;
    expect(last).toEqual([null, null, null, expect.objectContaining({ code: "ESRCH" })]);
    expect(ours()).toEqual([]);
  });

  test("a batch where every operation fails fits a small receive buffer (no ENOBUFS)", async () => {
    const a = need();
    const ops = Array.from({ length: 3000 }, (_, i) => replace(route({ prefix: `198.18.200.${i & 255}/32`, metric: i, nextHops: [{ gateway: "203.0.113.99" }] })));
    const r = await a.call<{ results: (KernelError | null)[]; limits: { rcvbuf: number; maxBatchMessages: number } }>("applySmallRcvbuf", { rcvbuf: 65536, ops });
    expect(r.limits.maxBatchMessages).toBeLessThan(100);
    expect(r.results.length).toBe(3000);
    expect(r.results.every((x) => x?.code === "ENETUNREACH")).toBe(true);
    expect(ours()).toEqual([]);
  });

  test("filtered dumps return exactly our routes; the proto static route is left out and never touched", async () => {
    const a = need();
    const mine = [1, 2, 3].map((i) => route({ prefix: `198.51.100.${200 + i}/32`, nextHops: [{ gateway: "192.0.2.2" }] }));
    const main = route({ prefix: "198.51.100.210/32", table: 254, nextHops: [{ gateway: "192.0.2.2" }] });
    expect((await a.apply([...mine, main].map(replace))).results).toEqual([null, null, null, null]);
    const filtered = await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: TABLE, protocol: PROTO } });
    expect(filtered.map((r) => r.prefix).sort()).toEqual(mine.map((r) => r.prefix).sort());
    expect(filtered.map((r) => r.prefix).sort()).toEqual(ours().map((r) => `${r.dst}/32`).sort());
    const byTable = await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: TABLE } });
    expect(byTable.find((r) => r.prefix === "203.0.113.200/32")).toMatchObject({ protocol: 4 /* RTPROT_STATIC */ });
    expect(byTable.length).toBe(4);
    const byProto = await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { protocol: PROTO } });
    expect(byProto.map((r) => `${r.table} ${r.prefix}`).sort()).toEqual([...mine, main].map((r) => `${r.table} ${r.prefix}`).sort());
    const all = await a.call<KernelRoute[]>("dumpRoutes", { family: 4 });
    expect(all.some((r) => r.table === 255 && r.type === 2 /* local */)).toBe(true);
    expect(await a.call<KernelRoute[]>("dumpRoutes", { family: 4, filter: { table: 4242 } })).toEqual([]);
    expect(await a.call<KernelRoute[]>("dumpRoutes", { family: 6, filter: { table: 4242 } })).toEqual([]);
    // Deleting "our" route where only the static one exists fails and leaves it alone.
    const res = (await a.apply([del(route({ prefix: "203.0.113.200/32" }))])).results;
    expect(res[0]).toMatchObject({ code: "ESRCH" });
    expect(ipRoutes(4, "table", String(TABLE), "proto", "static")).toMatchObject([{ dst: "203.0.113.200", gateway: "192.0.2.2" }]);
    expect((await a.apply([...mine, main].map(del))).results).toEqual([null, null, null, null]);
  });

  test("multicast: route added by us (one `applied`, no echo of the route), deleted with `ip route del`, address added", async () => {
    const a = need();
    await a.call("watch");
    const r = route({ prefix: "203.0.113.32/27", nextHops: [{ gateway: "192.0.2.2" }] });
    expect((await a.apply([replace(r)])).results).toEqual([null]);
    ip("route", "del", "203.0.113.32/27", "table", String(TABLE));
    ip("addr", "add", "192.0.2.10/24", "dev", "veth0a");
    const seen: KernelEvent[] = [];
    await waitFor(async () => {
      seen.push(...(await a.call<KernelEvent[]>("events")));
      const gotDel = seen.some((e) => e.type === "route-deleted" && e.route.prefix === "203.0.113.32/27");
      const gotAddr = seen.some((e) => e.type === "address" && e.address.address === "192.0.2.10");
      return gotDel && gotAddr ? true : null;
    }, { timeoutMs: 5000, what: "route-deleted and address events", intervalMs: 20 });
    // Our own change is filtered out in the kernel (socket filter on our port id): apply() told us its outcome.
    expect(seen).toContainEqual({ type: "applied" });
    expect(seen.some((e) => e.type === "route-added" && e.route.prefix === "203.0.113.32/27")).toBe(false);
    expect(seen).toContainEqual({ type: "route-deleted", route: { ...r, nextHops: [{ gateway: "192.0.2.2", ifindex: ifVeth0a }], scope: 0 } });
    expect(seen).toContainEqual({ type: "address", address: { family: 4, ifindex: ifVeth0a, address: "192.0.2.10", prefixLength: 24, scope: 0 }, removed: false });
    ip("addr", "del", "192.0.2.10/24", "dev", "veth0a");
  });

  test("multicast overrun on a tiny receive buffer: {type: overrun}, then events flow again", async () => {
    const a = need();
    await a.call("watchSmall", { rcvbuf: 4096 });
    const burst = Array.from({ length: 3000 }, (_, i) => route({ prefix: `198.18.${100 + (i >> 8)}.${i & 255}/32`, nextHops: [{ gateway: "192.0.2.2" }] }));
    expect((await a.apply(burst.map(replace))).results.every((x) => x === null)).toBe(true);
    const seen: KernelEvent[] = [];
    await waitFor(async () => {
      seen.push(...(await a.call<KernelEvent[]>("smallEvents")));
      return seen.some((e) => e.type === "overrun") ? true : null;
    }, { timeoutMs: 5000, what: "overrun", intervalMs: 20 });
    await Bun.sleep(200);
    await a.call("smallEvents");
    ip("route", "add", "203.0.113.48/28", "via", "192.0.2.2", "table", String(TABLE), "proto", String(PROTO));
    await waitFor(async () => {
      const ev = await a.call<KernelEvent[]>("smallEvents");
      return ev.some((e) => e.type === "route-added" && e.route.prefix === "203.0.113.48/28") ? true : null;
    }, { timeoutMs: 5000, what: "an event after the overrun", intervalMs: 20 });
    expect((await a.apply([...burst, route({ prefix: "203.0.113.48/28" })].map(del))).results.every((x) => x === null)).toBe(true);
    await a.call("events"); // drop what the main watcher collected
  });

  test("lookupRoute: the matching FIB entry (prefix, metric, protocol, gateway, type) or the kernel's error", async () => {
    const a = need();
    ip("route", "add", "203.0.113.0/25", "via", "192.0.2.2", "metric", "7", "proto", "static");
    ip("route", "add", "blackhole", "203.0.113.64/26");
    ip("route", "add", "unreachable", "198.51.100.128/25");
    ip("route", "add", "prohibit", "198.51.100.64/26");
    ip("-6", "route", "add", "2001:db8:5::/48", "via", "2001:db8::2", "metric", "9");
    try {
      const look = (address: string) => a.call<KernelLookup>("lookup", { address });
      expect(await look("203.0.113.5")).toEqual({
        route: { family: 4, prefix: "203.0.113.0/25", table: 254, protocol: 4, metric: 7, nextHops: [{ gateway: "192.0.2.2", ifindex: ifVeth0a }], type: 1, scope: 0 },
      });
      // Connected subnet: a device route of scope link.
      expect(await look("198.51.100.9")).toMatchObject({ route: { prefix: "198.51.100.0/24", protocol: 2, nextHops: [{ ifindex: ifVeth1a }], type: 1, scope: 253 } });
      // Our own address and loopback: local routes (type 2).
      expect(await look("192.0.2.1")).toMatchObject({ route: { prefix: "192.0.2.1/32", type: 2 } });
      expect(await look("127.0.0.5")).toMatchObject({ route: { prefix: "127.0.0.0/8", type: 2 } });
      expect(await look("203.0.113.70")).toMatchObject({ error: { code: "EINVAL" } }); // blackhole
      expect(await look("198.51.100.130")).toMatchObject({ error: { code: "EHOSTUNREACH" } }); // unreachable
      expect(await look("198.51.100.70")).toMatchObject({ error: { code: "EACCES" } }); // prohibit
      expect(await look("203.0.113.200")).toMatchObject({ error: { code: "ENETUNREACH" } }); // only in table 1000
      expect(await look("2001:db8:5::1")).toMatchObject({ route: { family: 6, prefix: "2001:db8:5::/48", metric: 9, nextHops: [{ gateway: "2001:db8::2", ifindex: ifVeth0a }] } });
      expect(await look("2001:db8:9::1")).toMatchObject({ error: { code: "ENETUNREACH" } });
      // No privilege needed: the same lookups from an agent running as nobody.
      const nobody = new Agent(65534);
      try {
        await nobody.ready;
        expect(await nobody.call<KernelLookup>("lookup", { address: "203.0.113.5" })).toMatchObject({ route: { prefix: "203.0.113.0/25", metric: 7 } });
        expect(await nobody.call<KernelLookup>("lookup", { address: "198.51.100.130" })).toMatchObject({ error: { code: "EHOSTUNREACH" } });
      } finally {
        nobody.kill();
      }
      // A lookup follows route changes.
      ip("route", "del", "203.0.113.0/25", "via", "192.0.2.2", "metric", "7");
      expect(await look("203.0.113.5")).toMatchObject({ error: { code: "ENETUNREACH" } });
    } finally {
      ip("route", "flush", "proto", "static", "table", "main");
      ip("route", "del", "blackhole", "203.0.113.64/26");
      ip("route", "del", "unreachable", "198.51.100.128/25");
      ip("route", "del", "prohibit", "198.51.100.64/26");
      ip("-6", "route", "del", "2001:db8:5::/48");
      await a.call("events"); // drop what the main watcher collected
    }
  });

  test("10,000 routes in one apply(), in several short sends, all installed (counted by a dump), then removed", async () => {
    const a = need();
    const routes = Array.from({ length: 10_000 }, (_, i) => route({ prefix: `198.18.${i >> 8}.${i & 255}/32`, nextHops: [{ gateway: "192.0.2.2" }] }));
    const add = await a.apply(routes.map(replace));
    expect(add.results.length).toBe(10_000);
    expect(add.results.filter((x) => x !== null)).toEqual([]);
    // Not one long send: at most 4096 messages and 256 KiB each (10,000 routes are at least 3), the loop turning between them.
    expect(add.turns).toBeGreaterThanOrEqual(3);
    const count = await a.call<{ count: number; ms: number }>("countRoutes", { family: 4, filter: { table: TABLE, protocol: PROTO } });
    expect(count.count).toBe(10_000);
    expect(ours().length).toBe(10_000);
    const rm = await a.apply(routes.map(del));
    expect(rm.results.filter((x) => x !== null)).toEqual([]);
    expect(ours()).toEqual([]);
    const limits = await a.call<Record<string, number | boolean>>("limits");
    // The send calls (the kernel's work on the routes) ran on the sender thread, not on the event loop.
    expect(limits.senderThread).toBe(true);
    console.log(
      `10,000 routes: apply() ${add.ms.toFixed(1)} ms (${Math.round(10_000 / (add.ms / 1000))}/s), dump ${count.ms.toFixed(1)} ms, ` +
        `delete ${rm.ms.toFixed(1)} ms; limits ${JSON.stringify(limits)}`,
    );
  }, 30_000);

  test("the static route survived everything; close() makes apply() resolve with errors", async () => {
    const a = need();
    expect(ipRoutes(4, "table", String(TABLE), "proto", "static")).toMatchObject([{ dst: "203.0.113.200", gateway: "192.0.2.2" }]);
    expect(ipRoutes(4, "table", String(TABLE))).toMatchObject([{ dst: "203.0.113.200", gateway: "192.0.2.2", protocol: "static" }]);
    const r = await a.call<{ applyAfterClose: (KernelError | null)[] }>("close");
    expect(r.applyAfterClose).toEqual([expect.objectContaining({ code: "EBADF" })]);
  });
});
