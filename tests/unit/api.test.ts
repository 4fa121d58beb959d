/**
 * The control API end to end against an in-memory RouterApi: the Unix-socket
 * server (every route, statuses, input validation, socket mode, stale-socket
 * handling, monitor streaming), the client (DaemonUnreachable, line
 * reassembly), the human formatters (exact text), and the CLI commands run as
 * a separate process (`bun main.ts`, or $BGPCTL_BIN) with `-s SOCKET`.
 * Streaming: a 200k-entry `show rib -j` keeps this process's event loop
 * turning (a lag probe), `--limit`, the text table written as it arrives,
 * and a monitor client that never reads cut at its queue bound.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Socket, createConnection } from "node:net";
import { ApiClient, DaemonUnreachable } from "../../lib/api/client.ts";
import { RibTextWriter, formatDuration, formatFib, formatInterfaces, formatMonitorEvent, formatNeighbors, formatRib, formatRibSummary, formatSummary } from "../../lib/api/format.ts";
import { LoopLagMonitor } from "../../lib/core/loop-lag.ts";
import { type ApiServer, startApiServer } from "../../lib/api/server.ts";
import { RouterError } from "../../lib/router/errors.ts";
import { waitFor } from "../support/wait.ts";
import {
  type AdvertiseRequest,
  ApiError,
  type FibEntry,
  type InterfacesInfo,
  type MonitorEvent,
  type NeighborInfo,
  type PeerAddRequest,
  type RibEntry,
  type RibQuery,
  type RibSummary,
  type RouterApi,
} from "../../lib/api/types.ts";

const ROOT = join(import.meta.dir, "..", "..");

// ---------------------------------------------------------------------------
// Fixtures: a small router state
// ---------------------------------------------------------------------------

function neighbor(over: Partial<NeighborInfo>): NeighborInfo {
  return {
    address: "192.0.2.2",
    remoteAs: 65002,
    localAs: 65001,
    state: "Established",
    uptimeSeconds: 312,
    received: 3,
    accepted: 2,
    advertised: 1,
    capabilities: ["4-octet AS", "ipv4-unicast"],
    lastError: null,
    messages: { received: 10, sent: 12 },
    outQueue: 0,
    holdTime: 90,
    keepaliveTime: 30,
    routerId: "192.0.2.2",
    localAddress: "192.0.2.1",
    adminDown: false,
    routeReflectorClient: false,
    ...over,
  };
}

const N1 = neighbor({ description: "upstream" });
const N2 = neighbor({
  address: "2001:db8::3",
  remoteAs: 65001,
  state: "Idle",
  uptimeSeconds: 93784,
  received: 0,
  accepted: 0,
  advertised: 0,
  capabilities: [],
  lastError: "hold timer expired",
  messages: { received: 1234567, sent: 7 },
  outQueue: 2,
  holdTime: null,
  keepaliveTime: null,
  routerId: null,
  localAddress: null,
  adminDown: true,
  routeReflectorClient: true,
});

function route(over: Partial<RibEntry>): RibEntry {
  return {
    prefix: "10.0.0.0/8",
    nextHop: "192.0.2.2",
    asPath: [65002, 65010],
    origin: "igp",
    med: 0,
    localPref: 100,
    communities: ["65002:1"],
    largeCommunities: ["65002:1:2"],
    peer: "192.0.2.2",
    best: true,
    multipath: false,
    ibgp: false,
    stale: false,
    ...over,
  };
}

const R1 = route({});
const R2 = route({ prefix: "10.1.0.0/16", asPath: [65002], origin: "incomplete", med: null, localPref: null, communities: [], largeCommunities: [], best: false, multipath: true, ibgp: true, stale: true });
const R3 = route({ prefix: "2001:db8:100::/48", nextHop: "2001:db8::3", asPath: [], origin: "egp", med: 20, localPref: 200, communities: [], largeCommunities: [], peer: "2001:db8::3" });

const RIB_SUMMARY: RibSummary = {
  families: [
    { family: "ipv4-unicast", prefixes: 2, paths: 2 },
    { family: "ipv6-unicast", prefixes: 1, paths: 1 },
  ],
  peers: [{ address: "192.0.2.2", family: "ipv4-unicast", received: 3, accepted: 2, advertised: 1 }],
};

const FIB: FibEntry[] = [
  { prefix: "198.51.100.0/24", state: "installed", nextHops: ["192.0.2.2", "192.0.2.3"] },
  { prefix: "203.0.113.0/24", state: "failed", nextHops: ["203.0.113.77"], reason: "ENETUNREACH: Nexthop has invalid gateway" },
];
const IFACES: InterfacesInfo = {
  links: [
    { index: 1, name: "lo", up: true },
    { index: 2, name: "eth0", up: true },
  ],
  addresses: [
    { family: 4, ifindex: 1, address: "127.0.0.1", prefixLength: 8 },
    { family: 4, ifindex: 2, address: "192.0.2.1", prefixLength: 24 },
    { family: 6, ifindex: 2, address: "2001:db8::1", prefixLength: 64 },
  ],
};

const T0 = "2024-05-01T12:00:00.000Z";

/** An in-memory RouterApi that records what it was asked. */
class FakeRouter implements RouterApi {
  neighborList: NeighborInfo[] = [N1, N2];
  routes: RibEntry[] = [R1, R2, R3];
  advertised = new Set<string>();
  calls: { method: string; args: unknown[] }[] = [];
  listeners = new Set<{ fn: (e: MonitorEvent) => void; neighbor?: string }>();
  reloadError: string | null = null;
  crash = false;

  private rec(method: string, ...args: unknown[]): void {
    this.calls.push({ method, args });
  }
  last(method: string): unknown[] | undefined {
    return this.calls.filter((c) => c.method === method).at(-1)?.args;
  }
  private known(address: string): NeighborInfo {
    const n = this.neighborList.find((x) => x.address === address);
    if (!n) throw new RouterError("not-found", `no neighbor ${address}`);
    return n;
  }

  summary() {
    this.rec("summary");
    return { routerId: "192.0.2.1", asn: 65001, uptimeSeconds: 1000, neighbors: this.neighborList, eventLoop: { maxLagMs: 12.5, p99LagMs: 3.25, samples: 4000 }, slices: { turns: 900, longestMs: 21.5, over20: 2 } };
  }
  neighbors(address?: string) {
    this.rec("neighbors", address);
    return address === undefined ? this.neighborList : this.neighborList.filter((n) => n.address === address);
  }
  rib(q: RibQuery): Iterable<RibEntry> {
    this.rec("rib", q);
    return this.routes.filter(
      (r) =>
        (q.neighbor === undefined || r.peer === q.neighbor) &&
        (!q.bestOnly || r.best) &&
        (q.family === undefined || r.prefix.includes(":") === (q.family === "ipv6")) &&
        (q.prefix === undefined || q.match !== undefined || r.prefix === q.prefix),
    );
  }
  ribSummary() {
    this.rec("ribSummary");
    if (this.crash) throw new Error("internal failure");
    return RIB_SUMMARY;
  }
  fibOff = false;
  fib(prefix?: string): FibEntry[] {
    this.rec("fib", prefix);
    if (this.fibOff) throw new RouterError("conflict", "kernel route programming is off (set kernel.enabled in the config)");
    return FIB.filter((e) => prefix === undefined || e.prefix === prefix);
  }
  async interfaces(): Promise<InterfacesInfo> {
    this.rec("interfaces");
    return IFACES;
  }
  async advertise(r: AdvertiseRequest) {
    this.rec("advertise", r);
    const added = r.prefixes.filter((p) => !this.advertised.has(p));
    for (const p of added) this.advertised.add(p);
    return { added };
  }
  async withdraw(prefixes: string[]) {
    this.rec("withdraw", prefixes);
    const removed = prefixes.filter((p) => this.advertised.delete(p));
    return { removed };
  }
  peerAdd(r: PeerAddRequest) {
    this.rec("peerAdd", r);
    if (this.neighborList.some((n) => n.address === r.address)) throw new RouterError("conflict", `neighbor ${r.address} already exists`);
    this.neighborList = [...this.neighborList, neighbor({ address: r.address, remoteAs: r.remoteAs, state: "Active" })];
  }
  peerDelete(address: string) {
    this.rec("peerDelete", address);
    this.known(address);
    this.neighborList = this.neighborList.filter((n) => n.address !== address);
  }
  peerUp(address: string) {
    this.rec("peerUp", address);
    this.known(address);
  }
  peerDown(address: string, message?: string) {
    this.rec("peerDown", address, message);
    this.known(address);
  }
  peerReset(address: string, soft?: "in" | "out") {
    this.rec("peerReset", address, soft);
    this.known(address);
  }
  async reload() {
    this.rec("reload");
    await Bun.sleep(1);
    if (this.reloadError) throw new RouterError("invalid", this.reloadError);
    return { changes: ["neighbor 192.0.2.7 added", "neighbor 192.0.2.2: hold time 90 -> 30"] };
  }
  shutdown() {
    this.rec("shutdown");
    return { ok: true as const };
  }
  monitor(fn: (e: MonitorEvent) => void, neighbor?: string) {
    this.rec("monitor", neighbor);
    const l = neighbor === undefined ? { fn } : { fn, neighbor };
    this.listeners.add(l);
    return () => {
      this.listeners.delete(l);
    };
  }
  emit(e: MonitorEvent): void {
    for (const l of this.listeners) if (l.neighbor === undefined || !("peer" in e) || e.peer === l.neighbor) l.fn(e);
  }
  reset(): void {
    this.neighborList = [N1, N2];
    this.advertised = new Set(["198.51.100.0/24"]);
    this.calls = [];
    this.reloadError = null;
    this.crash = false;
  }
}

let dir: string;
let sock: string;
let fake: FakeRouter;
let server: ApiServer;
let client: ApiClient;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "bgpctl-api-"));
  sock = join(dir, "run", "ctl.sock"); // the run/ directory does not exist yet
  fake = new FakeRouter();
  server = await startApiServer(fake, sock);
  client = new ApiClient(sock);
});

afterAll(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => fake.reset());

async function raw(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const init: RequestInit & { unix: string } = { method, unix: sock };
  if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
  const res = await fetch(`http://localhost${path}`, init);
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

// ---------------------------------------------------------------------------
// Server: socket handling
// ---------------------------------------------------------------------------

describe("control socket", () => {
  test("directory created 0755, socket 0660, path reported", () => {
    expect(server.path).toBe(sock);
    expect(statSync(join(dir, "run")).mode & 0o777).toBe(0o755);
    const st = statSync(sock);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o660);
  });

  test("mode option", async () => {
    const p = join(dir, "mode.sock");
    const s = await startApiServer(new FakeRouter(), p, { mode: 0o600 });
    expect(statSync(p).mode & 0o777).toBe(0o600);
    await s.close();
    expect(existsSync(p)).toBe(false);
  });

  test("refuses to start when a daemon answers on the socket, which keeps serving", async () => {
    await expect(startApiServer(new FakeRouter(), sock)).rejects.toThrow(`another bgpctl daemon is running on ${sock}`);
    expect((await client.summary()).asn).toBe(65001);
  });

  test("removes a stale socket nobody answers on", async () => {
    const p = join(dir, "stale.sock");
    const script = join(dir, "stale-child.ts");
    writeFileSync(script, `Bun.serve({ unix: process.argv[2]!, fetch: () => new Response("x") });\nconsole.log("ready");\n`);
    const child = Bun.spawn([process.execPath, script, p], { stdout: "pipe", stderr: "inherit" });
    await child.stdout.getReader().read();
    child.kill("SIGKILL"); // dies without removing its socket
    await child.exited;
    expect(statSync(p).isSocket()).toBe(true);
    await expect(new ApiClient(p).summary()).rejects.toBeInstanceOf(DaemonUnreachable);
    const s = await startApiServer(new FakeRouter(), p);
    expect((await new ApiClient(p).summary()).routerId).toBe("192.0.2.1");
    await s.close();
  });

  test("will not remove a file that is not a socket", async () => {
    const p = join(dir, "plain-file");
    writeFileSync(p, "keep me");
    await expect(startApiServer(new FakeRouter(), p)).rejects.toThrow("exists and is not a socket");
    expect(existsSync(p)).toBe(true);
  });

  test("close() is idempotent and removes the socket", async () => {
    const p = join(dir, "close.sock");
    const s = await startApiServer(new FakeRouter(), p);
    await Promise.all([s.close(), s.close()]);
    expect(existsSync(p)).toBe(false);
    await expect(new ApiClient(p).summary()).rejects.toBeInstanceOf(DaemonUnreachable);
  });

  test("serves with idleTimeout 0 (quiet monitor streams are not cut after 10 s)", async () => {
    const orig = Bun.serve;
    let seen: { idleTimeout?: number; unix?: string } | null = null;
    (Bun as unknown as { serve: unknown }).serve = (o: { idleTimeout?: number; unix?: string }) => {
      seen = o;
      return orig(o as Parameters<typeof Bun.serve>[0]);
    };
    try {
      const p = join(dir, "idle.sock");
      const s = await startApiServer(new FakeRouter(), p);
      await s.close();
    } finally {
      (Bun as unknown as { serve: unknown }).serve = orig;
    }
    expect(seen!.idleTimeout).toBe(0);
  });
});

// ---------------------------------------------------------------------------
// Server routes, through the client and raw
// ---------------------------------------------------------------------------

describe("routes", () => {
  test("GET /v1/summary", async () => {
    const s = await client.summary();
    expect(s).toEqual({ routerId: "192.0.2.1", asn: 65001, uptimeSeconds: 1000, neighbors: [N1, N2], eventLoop: { maxLagMs: 12.5, p99LagMs: 3.25, samples: 4000 }, slices: { turns: 900, longestMs: 21.5, over20: 2 } });
  });

  test("GET /v1/neighbors[?address=]", async () => {
    expect(await client.neighbors()).toEqual([N1, N2]);
    expect(await client.neighbors("2001:db8::3")).toEqual([N2]);
    expect(fake.last("neighbors")).toEqual(["2001:db8::3"]);
    const r = await raw("GET", "/v1/neighbors?address=300.1.1.1");
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("address");
  });

  test("GET /v1/rib passes every filter", async () => {
    await client.rib({ prefix: "10.0.0.0/8", match: "longer", neighbor: "192.0.2.2", table: "in", community: "65002:1", asn: 65010, bestOnly: true, family: "ipv4" });
    expect(fake.last("rib")).toEqual([
      { prefix: "10.0.0.0/8", match: "longer", neighbor: "192.0.2.2", table: "in", community: "65002:1", asn: 65010, bestOnly: true, family: "ipv4" },
    ]);
    expect(await client.rib({ bestOnly: true, family: "ipv4" })).toEqual([R1]);
    expect(await client.rib()).toEqual([R1, R2, R3]);
    expect(fake.last("rib")).toEqual([{}]);
    // a bare address (longest match), a large community, IPv6 canonicalised
    await client.rib({ prefix: "10.1.2.3", community: "65002:1:2" });
    expect(fake.last("rib")).toEqual([{ prefix: "10.1.2.3", community: "65002:1:2" }]);
    const r = await raw("GET", "/v1/rib?prefix=2001:DB8::/32&best=");
    expect(r.status).toBe(200);
    expect(fake.last("rib")).toEqual([{ prefix: "2001:db8::/32", bestOnly: true }]);
  });

  test("GET /v1/rib validation names the field", async () => {
    const cases: [string, string][] = [
      ["prefix=10.0.0.0/33", "prefix"],
      ["prefix=10.0.0.1/8", "host bits"],
      ["prefix=banana", "prefix"],
      ["match=longer", "match: needs a prefix"],
      ["prefix=10.0.0.0/8&match=wider", "match"],
      ["neighbor=1.2.3", "neighbor"],
      ["table=in", "table"],
      ["neighbor=192.0.2.2&table=sideways", "table"],
      ["community=65536:1", "community"],
      ["as=abc", "as:"],
      ["as=0", "as:"],
      ["as=4294967296", "as:"],
      ["best=maybe", "best"],
      ["family=ipv5", "family"],
      ["colour=red", "colour: unknown query parameter"],
    ];
    for (const [qs, want] of cases) {
      const r = await raw("GET", `/v1/rib?${qs}`);
      expect([qs, r.status]).toEqual([qs, 400]);
      expect(r.json.error).toContain(want);
    }
    expect(fake.calls.filter((c) => c.method === "rib")).toEqual([]);
  });

  test("GET /v1/rib/summary; a crashing implementation gives 500, not a dead server", async () => {
    expect(await client.ribSummary()).toEqual(RIB_SUMMARY);
    fake.crash = true;
    const r = await raw("GET", "/v1/rib/summary");
    expect(r).toEqual({ status: 500, json: { error: "internal failure" } });
    fake.crash = false;
    expect(await client.ribSummary()).toEqual(RIB_SUMMARY);
  });

  test("POST /v1/advertise", async () => {
    const req: AdvertiseRequest = {
      prefixes: ["203.0.113.0/24", "2001:DB8:1::/48"],
      nextHop: "192.0.2.1",
      communities: ["65001:100", "no-export"],
      largeCommunities: ["65001:1:2"],
      localPref: 200,
      med: 5,
    };
    expect(await client.advertise(req)).toEqual({ added: ["203.0.113.0/24", "2001:db8:1::/48"] });
    expect(fake.last("advertise")).toEqual([{ ...req, prefixes: ["203.0.113.0/24", "2001:db8:1::/48"] }]);
    expect(await client.advertise({ prefixes: ["203.0.113.0/24"] })).toEqual({ added: [] });
  });

  test("POST /v1/advertise validation", async () => {
    const cases: [unknown, string][] = [
      ["{not json", "not valid JSON"],
      ["[1,2]", "JSON object"],
      [{}, "prefixes: required"],
      [{ prefixes: [] }, "prefixes: must not be empty"],
      [{ prefixes: "10.0.0.0/8" }, "prefixes: expected an array"],
      [{ prefixes: ["10.0.0.0/8", "10.0.0.0/40"] }, "prefixes[1]"],
      [{ prefixes: [7] }, "prefixes[0]"],
      [{ prefixes: ["10.0.0.0/8"], nextHop: "nope" }, "nextHop"],
      [{ prefixes: ["10.0.0.0/8"], communities: ["1:2:3"] }, "communities[0]"],
      [{ prefixes: ["10.0.0.0/8"], largeCommunities: ["1:2"] }, "largeCommunities[0]"],
      [{ prefixes: ["10.0.0.0/8"], localPref: -1 }, "localPref"],
      [{ prefixes: ["10.0.0.0/8"], med: 1.5 }, "med"],
      [{ prefixes: ["10.0.0.0/8"], colour: "red" }, "colour: unknown field"],
    ];
    for (const [body, want] of cases) {
      const r = await raw("POST", "/v1/advertise", body);
      expect([body, r.status]).toEqual([body, 400]);
      expect(r.json.error).toContain(want);
    }
    expect(fake.last("advertise")).toBeUndefined();
  });

  test("POST /v1/withdraw", async () => {
    expect(await client.withdraw(["198.51.100.0/24", "192.0.2.0/24"])).toEqual({ removed: ["198.51.100.0/24"] });
    for (const body of [{}, { prefixes: [] }, { prefixes: ["x"] }]) expect((await raw("POST", "/v1/withdraw", body)).status).toBe(400);
  });

  test("POST /v1/peers, 409 on a duplicate, validation", async () => {
    const req: PeerAddRequest = {
      address: "192.0.2.9",
      remoteAs: 4200000000,
      localAs: 65001,
      port: 1179,
      localAddress: "192.0.2.1",
      passive: true,
      holdTime: 30,
      families: ["ipv4", "ipv6"],
      import: "from-upstream",
      export: "all",
      description: "lab",
      routeReflectorClient: true,
      nextHopSelf: false,
    };
    await client.peerAdd(req);
    expect(fake.last("peerAdd")).toEqual([req]);
    const dup = await raw("POST", "/v1/peers", { address: "192.0.2.9", remoteAs: 65009 });
    expect(dup).toEqual({ status: 409, json: { error: "neighbor 192.0.2.9 already exists" } });
    await expect(client.peerAdd({ address: "192.0.2.9", remoteAs: 65009 })).rejects.toMatchObject({ status: 409 });
    const cases: [unknown, string][] = [
      [{ remoteAs: 65009 }, "address: required"],
      [{ address: "192.0.2.10" }, "remoteAs: required"],
      [{ address: "192.0.2.256", remoteAs: 65009 }, "address"],
      [{ address: "192.0.2.10", remoteAs: 0 }, "remoteAs"],
      [{ address: "192.0.2.10", remoteAs: "65009" }, "remoteAs"],
      [{ address: "192.0.2.10", remoteAs: 65009, localAs: 4294967296 }, "localAs"],
      [{ address: "192.0.2.10", remoteAs: 65009, port: 0 }, "port"],
      [{ address: "192.0.2.10", remoteAs: 65009, holdTime: 2 }, "holdTime"],
      [{ address: "192.0.2.10", remoteAs: 65009, families: ["ipv5"] }, "families[0]"],
      [{ address: "192.0.2.10", remoteAs: 65009, passive: "yes" }, "passive"],
      [{ address: "192.0.2.10", remoteAs: 65009, localAddress: "here" }, "localAddress"],
    ];
    for (const [body, want] of cases) {
      const r = await raw("POST", "/v1/peers", body);
      expect([body, r.status]).toEqual([body, 400]);
      expect(r.json.error).toContain(want);
    }
  });

  test("DELETE /v1/peers/:address, and 404 for an unknown one", async () => {
    await client.peerDelete("2001:db8::3");
    expect(fake.last("peerDelete")).toEqual(["2001:db8::3"]);
    expect(await raw("DELETE", "/v1/peers/192.0.2.99")).toEqual({ status: 404, json: { error: "no neighbor 192.0.2.99" } });
    await expect(client.peerDelete("192.0.2.99")).rejects.toMatchObject({ status: 404, message: "no neighbor 192.0.2.99" });
    const r = await raw("DELETE", "/v1/peers/not-an-address");
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("address");
  });

  test("POST /v1/peers/:address/up|down|reset", async () => {
    await client.peerUp("192.0.2.2");
    expect(fake.last("peerUp")).toEqual(["192.0.2.2"]);
    await client.peerDown("192.0.2.2", "maintenance until 14:00");
    expect(fake.last("peerDown")).toEqual(["192.0.2.2", "maintenance until 14:00"]);
    await client.peerDown("192.0.2.2");
    expect(fake.last("peerDown")).toEqual(["192.0.2.2", undefined]);
    await client.peerReset("2001:db8::3", "in");
    expect(fake.last("peerReset")).toEqual(["2001:db8::3", "in"]);
    await client.peerReset("192.0.2.2");
    expect(fake.last("peerReset")).toEqual(["192.0.2.2", undefined]);
    expect((await raw("POST", "/v1/peers/192.0.2.2/up")).status).toBe(200); // no body at all
    expect((await raw("POST", "/v1/peers/192.0.2.99/up")).status).toBe(404);
    const soft = await raw("POST", "/v1/peers/192.0.2.2/reset", { soft: "both" });
    expect(soft.status).toBe(400);
    expect(soft.json.error).toContain("soft");
    const long = await raw("POST", "/v1/peers/192.0.2.2/down", { message: "x".repeat(256) });
    expect(long.status).toBe(400);
    expect(long.json.error).toContain("message");
    expect((await raw("POST", "/v1/peers/192.0.2.2/down", { message: 5 })).status).toBe(400);
    expect((await raw("POST", "/v1/peers/192.0.2.2/sideways")).status).toBe(404);
  });

  test("POST /v1/reload: changes, or the validation error with its status", async () => {
    expect(await client.reload()).toEqual({ changes: ["neighbor 192.0.2.7 added", "neighbor 192.0.2.2: hold time 90 -> 30"] });
    fake.reloadError = "config.yaml: neighbors[0].remoteAs: required";
    expect(await raw("POST", "/v1/reload")).toEqual({ status: 400, json: { error: "config.yaml: neighbors[0].remoteAs: required" } });
  });

  test("unknown routes 404, wrong methods 405", async () => {
    expect((await raw("GET", "/v1/nothing")).status).toBe(404);
    expect((await raw("GET", "/")).status).toBe(404);
    expect((await raw("GET", "/v2/summary")).status).toBe(404);
    const m = await raw("POST", "/v1/summary");
    expect(m.status).toBe(405);
    expect(m.json.error).toContain("GET");
    expect((await raw("GET", "/v1/advertise")).status).toBe(405);
    expect((await raw("GET", "/v1/peers/192.0.2.2")).status).toBe(405);
    expect((await raw("GET", "/v1/peers/%E0%A4%A/up")).status).toBe(400);
  });
});

// ---------------------------------------------------------------------------
// Monitor streaming
// ---------------------------------------------------------------------------

const ev = (n: number, peer = "192.0.2.2"): MonitorEvent => ({ type: "withdraw", time: T0, peer, prefix: `10.${n}.0.0/16` });

describe("monitor", () => {
  test("headers and the first line come at once; events in order; unsubscribed when the client aborts", async () => {
    const res = await fetch("http://localhost/v1/monitor", { unix: sock } as RequestInit);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    const reader = res.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    const line = JSON.parse(first.trim()) as MonitorEvent;
    expect(line).toMatchObject({ type: "log", level: "info", msg: "monitoring" });
    await reader.cancel();

    const got: MonitorEvent[] = [];
    const ac = new AbortController();
    const done = client.monitor(undefined, (e) => got.push(e), ac.signal);
    await waitFor(() => fake.listeners.size === 1 && got.length === 1, { timeoutMs: 3000, what: "subscription" });
    for (let i = 0; i < 50; i++) fake.emit(ev(i));
    await waitFor(() => got.length === 51, { timeoutMs: 3000, what: "50 events" });
    expect(got.slice(1)).toEqual(Array.from({ length: 50 }, (_, i) => ev(i)));
    ac.abort();
    await done;
    await waitFor(() => fake.listeners.size === 0, { timeoutMs: 3000, what: "unsubscribe" });
  });

  test("?neighbor= filters and is validated", async () => {
    const got: MonitorEvent[] = [];
    const ac = new AbortController();
    const done = client.monitor("2001:db8::3", (e) => got.push(e), ac.signal);
    await waitFor(() => got.length === 1, { timeoutMs: 3000, what: "subscription" });
    expect(got[0]).toMatchObject({ type: "log", msg: "monitoring 2001:db8::3" });
    expect(fake.last("monitor")).toEqual(["2001:db8::3"]);
    fake.emit(ev(1));
    fake.emit(ev(2, "2001:db8::3"));
    await waitFor(() => got.length === 2, { timeoutMs: 3000, what: "event" });
    expect(got[1]).toEqual(ev(2, "2001:db8::3"));
    ac.abort();
    await done;
    const bad = await raw("GET", "/v1/monitor?neighbor=nope");
    expect(bad.status).toBe(400);
    expect(bad.json.error).toContain("neighbor");
  });

  test("a quiet stream stays open", async () => {
    const got: MonitorEvent[] = [];
    const ac = new AbortController();
    const done = client.monitor(undefined, (e) => got.push(e), ac.signal);
    await waitFor(() => got.length === 1, { timeoutMs: 3000, what: "subscription" });
    await Bun.sleep(1200);
    fake.emit(ev(7));
    await waitFor(() => got.length === 2, { timeoutMs: 3000, what: "event after idle" });
    ac.abort();
    await done;
  });

  test("server close ends the stream: monitor() resolves without abort", async () => {
    const p = join(dir, "mon-close.sock");
    const f = new FakeRouter();
    const s = await startApiServer(f, p);
    const got: MonitorEvent[] = [];
    const ac = new AbortController();
    const done = new ApiClient(p).monitor(undefined, (e) => got.push(e), ac.signal);
    await waitFor(() => got.length === 1, { timeoutMs: 3000, what: "subscription" });
    await s.close();
    await done;
    expect(ac.signal.aborted).toBe(false);
    expect(f.listeners.size).toBe(0);
  });

  test("the client reassembles lines split across chunks", async () => {
    const p = join(dir, "chunks.sock");
    const lines = [ev(1), ev(2), ev(3)].map((e) => JSON.stringify(e) + "\n").join("");
    const pieces = [lines.slice(0, 10), lines.slice(10, 90), lines.slice(90, lines.length - 3), lines.slice(lines.length - 3)];
    const enc = new TextEncoder();
    const srv = Bun.serve({
      unix: p,
      fetch: () =>
        new Response(
          new ReadableStream<Uint8Array>({
            async start(c) {
              for (const piece of pieces) {
                c.enqueue(enc.encode(piece));
                await Bun.sleep(20);
              }
              c.enqueue(enc.encode('{"type":"log","time":"x","level":"info","msg":"é 多"}\n'.slice(0, 5)));
              await Bun.sleep(20);
              c.enqueue(enc.encode('{"type":"log","time":"x","level":"info","msg":"é 多"}\n'.slice(5)));
              c.close();
            },
          }),
        ),
    });
    try {
      const got: MonitorEvent[] = [];
      await new ApiClient(p).monitor(undefined, (e) => got.push(e));
      expect(got).toEqual([ev(1), ev(2), ev(3), { type: "log", time: "x", level: "info", msg: "é 多" }]);
    } finally {
      await srv.stop(true);
    }
  });
});

// ---------------------------------------------------------------------------
// Client errors
// ---------------------------------------------------------------------------

describe("client", () => {
  test("DaemonUnreachable names the socket", async () => {
    const p = join(dir, "nobody-here.sock");
    const err = await new ApiClient(p).summary().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DaemonUnreachable);
    expect((err as Error).message).toBe(`no bgpctl daemon answers on ${p} (is \`bgpctl run\` running? use -s/--socket to pick another socket)`);
    const ac = new AbortController();
    await expect(new ApiClient(p).monitor(undefined, () => {}, ac.signal)).rejects.toBeInstanceOf(DaemonUnreachable);
  });

  test("daemon errors come back as ApiError with status and message", async () => {
    const e = await client.peerUp("192.0.2.77").catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 404, message: "no neighbor 192.0.2.77" });
  });
});

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

describe("format", () => {
  test("durations", () => {
    expect(formatDuration(0)).toBe("00:00:00");
    expect(formatDuration(312)).toBe("00:05:12");
    expect(formatDuration(86399)).toBe("23:59:59");
    expect(formatDuration(93784)).toBe("1d02h03m");
    expect(formatDuration(7 * 86400 + 3 * 86400 + 4 * 3600)).toBe("1w3d04h");
  });

  test("summary", () => {
    expect(formatSummary(new FakeRouter().summary())).toBe(
      [
        "BGP router id 192.0.2.1, local AS 65001",
        "Event loop lag: max 12.5 ms, p99 3.25 ms (4000 samples); longest turn of work 21.5 ms, 2 of 900 over 20 ms",
        "Neighbor        AS  MsgRcvd  MsgSent  OutQ  Up/Down   State/PfxRcvd",
        "192.0.2.2    65002       10       12     0  00:05:12  2",
        "2001:db8::3  65001  1234567        7     2  1d02h03m  Idle (Admin)",
        "",
      ].join("\n"),
    );
  });

  test("summary: the turns by time on a core, when the daemon reports them", () => {
    const s = new FakeRouter().summary();
    const text = formatSummary({ ...s, slices: { ...s.slices, longestOnCoreMs: 9.75, over20OnCore: 0 } });
    expect(text.split("\n")[1]).toBe("Event loop lag: max 12.5 ms, p99 3.25 ms (4000 samples); longest turn of work 21.5 ms (9.75 ms on a core), 2 of 900 over 20 ms (0 on a core)");
  });

  test("summary: when the longest turn on a core ended, in UTC", () => {
    const s = new FakeRouter().summary();
    const at = Date.UTC(2026, 11, 6, 15, 45, 49, 250);
    const text = formatSummary({ ...s, slices: { ...s.slices, longestOnCoreMs: 33.5, over20OnCore: 1, longestOnCoreAt: at } });
    expect(text.split("\n")[1]).toBe("Event loop lag: max 12.5 ms, p99 3.25 ms (4000 samples); longest turn of work 21.5 ms (33.5 ms on a core, 15:45:49 UTC), 2 of 900 over 20 ms (1 on a core)");
  });

  test("neighbors", () => {
    expect(formatNeighbors([N1, N2])).toBe(
      [
        "BGP neighbor is 192.0.2.2, remote AS 65002",
        "  Description: upstream",
        "  BGP state = Established, up for 00:05:12",
        "  Remote router id 192.0.2.2",
        "  Local address 192.0.2.1, local AS 65001",
        "  Hold time 90s, keepalive interval 30s",
        "  Negotiated capabilities:",
        "    4-octet AS",
        "    ipv4-unicast",
        "  Messages: 10 received, 12 sent, 0 queued",
        "  Prefixes: 3 received, 2 accepted, 1 advertised",
        "  Last error: none",
        "",
        "BGP neighbor is 2001:db8::3, remote AS 65001 (internal)",
        "  Administratively down, route reflector client",
        "  BGP state = Idle, down for 1d02h03m",
        "  Remote router id -",
        "  Local address -, local AS 65001",
        "  Hold time -, keepalive interval -",
        "  Negotiated capabilities: none",
        "  Messages: 1234567 received, 7 sent, 2 queued",
        "  Prefixes: 0 received, 0 accepted, 0 advertised",
        "  Last error: hold timer expired",
        "",
      ].join("\n"),
    );
    expect(formatNeighbors([])).toBe("no neighbors\n");
  });

  test("rib", () => {
    expect(formatRib([R1, R2, R3])).toBe(
      [
        "flags: * = Valid, > = Selected, = = Multipath, I = via IBGP, S = Stale",
        "origin: i = IGP, e = EGP, ? = Incomplete",
        "",
        "flags  prefix             nexthop      lpref  med  aspath       origin  communities",
        "*>     10.0.0.0/8         192.0.2.2      100    0  65002 65010  i       65002:1 65002:1:2",
        "*=IS   10.1.0.0/16        192.0.2.2        -    -  65002        ?",
        "*>     2001:db8:100::/48  2001:db8::3    200   20  -            e",
        "",
      ].join("\n"),
    );
  });

  test("rib summary", () => {
    expect(formatRibSummary(RIB_SUMMARY)).toBe(
      [
        "Family        Prefixes  Paths",
        "ipv4-unicast         2      2",
        "ipv6-unicast         1      1",
        "",
        "Neighbor   Family        Received  Accepted  Advertised",
        "192.0.2.2  ipv4-unicast         3         2           1",
        "",
      ].join("\n"),
    );
  });

  test("monitor events", () => {
    expect(formatMonitorEvent({ type: "state", time: T0, peer: "192.0.2.2", from: "OpenConfirm", to: "Established", reason: "KEEPALIVE received" })).toBe(
      "12:00:00 192.0.2.2 state OpenConfirm -> Established (KEEPALIVE received)",
    );
    expect(formatMonitorEvent({ type: "announce", time: T0, peer: "192.0.2.2", route: R1 })).toBe(
      "12:00:00 192.0.2.2 + 10.0.0.0/8 via 192.0.2.2 as-path 65002 65010 origin igp med 0 local-pref 100 communities 65002:1 large-communities 65002:1:2",
    );
    expect(formatMonitorEvent(ev(4))).toBe("12:00:00 192.0.2.2 - 10.4.0.0/16");
    expect(formatMonitorEvent({ type: "best", time: T0, prefix: "10.1.0.0/16", route: R2 })).toBe(
      "12:00:00 best 10.1.0.0/16 from 192.0.2.2 via 192.0.2.2 as-path 65002 origin incomplete",
    );
    expect(formatMonitorEvent({ type: "best", time: T0, prefix: "10.1.0.0/16", route: null })).toBe("12:00:00 best 10.1.0.0/16 none (no route left)");
    expect(formatMonitorEvent({ type: "log", time: T0, level: "warn", msg: "hello" })).toBe("12:00:00 warn: hello");
  });
});

// ---------------------------------------------------------------------------
// CLI, as a separate process against the fake daemon
// ---------------------------------------------------------------------------

const CLI = process.env.BGPCTL_BIN ? [process.env.BGPCTL_BIN] : [process.execPath, join(ROOT, "main.ts")];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const p = Bun.spawn([...CLI, ...args], {
    cwd: ROOT,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, BGPCTL_SOCKET: "", ...env },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** Run against the fake daemon's socket. */
const ctl = (...args: string[]) => cli([...args, "-s", sock]);

describe("cli", () => {
  test(
    "show summary / neighbors, human and JSON",
    async () => {
      const s = await ctl("show", "summary");
      expect(s).toEqual({ code: 0, stdout: formatSummary(fake.summary()), stderr: "" });
      const j = await ctl("show", "summary", "-j");
      expect(j.code).toBe(0);
      expect(JSON.parse(j.stdout)).toEqual(fake.summary());
      const n = await ctl("show", "neighbors", "2001:db8::3");
      expect(n).toEqual({ code: 0, stdout: formatNeighbors([N2]), stderr: "" });
      const nj = await ctl("show", "neighbor", "--json");
      expect(JSON.parse(nj.stdout)).toEqual([N1, N2]);
      const missing = await ctl("show", "neighbors", "192.0.2.99");
      expect(missing.code).toBe(1);
      expect(missing.stderr).toBe("bgpctl: no neighbor 192.0.2.99\n");
      const bad = await ctl("show", "neighbors", "192.0.2.999");
      expect(bad.code).toBe(2);
    },
    30_000,
  );

  test(
    "show rib with filters, show rib summary",
    async () => {
      const r = await ctl("show", "rib", "10.0.0.0/8", "longer", "--neighbor", "192.0.2.2", "--in", "--community", "65002:1", "--as", "65010", "--best", "--family", "ipv4", "-j");
      expect(r.code).toBe(0);
      expect(fake.last("rib")).toEqual([
        { prefix: "10.0.0.0/8", match: "longer", neighbor: "192.0.2.2", table: "in", community: "65002:1", asn: 65010, bestOnly: true, family: "ipv4" },
      ]);
      expect(JSON.parse(r.stdout)).toEqual([R1]);
      const h = await ctl("show", "rib");
      expect(h).toEqual({ code: 0, stdout: formatRib([R1, R2, R3]), stderr: "" });
      expect(fake.last("rib")).toEqual([{}]);
      await ctl("show", "rib", "2001:db8::5", "--neighbor", "2001:db8::3", "--out", "--large-community", "1:2:3");
      expect(fake.last("rib")).toEqual([{ prefix: "2001:db8::5", neighbor: "2001:db8::3", table: "out", community: "1:2:3" }]);
      const sum = await ctl("show", "rib", "summary");
      expect(sum).toEqual({ code: 0, stdout: formatRibSummary(RIB_SUMMARY), stderr: "" });
      expect(JSON.parse((await ctl("show", "rib", "summary", "-j")).stdout)).toEqual(RIB_SUMMARY);
    },
    30_000,
  );

  test(
    "show rib usage errors exit 2 before asking the daemon",
    async () => {
      const cases: [string[], string][] = [
        [["show", "rib", "10.0.0.0/33"], "PREFIX"],
        [["show", "rib", "10.0.0.0/8", "wider"], "longer, shorter"],
        [["show", "rib", "--in"], "--in needs --neighbor"],
        [["show", "rib", "--neighbor", "x"], "--neighbor"],
        [["show", "rib", "--as", "0"], "--as"],
        [["show", "rib", "--community", "65536:1"], "--community"],
        [["show", "rib", "--family", "ipv4,ipv6"], "--family"],
        [["show", "rib", "--remote-as", "65002"], "--remote-as only applies with --peer"],
        [["show", "rib", "summary", "--best"], "--best does not apply"],
      ];
      fake.calls = [];
      for (const [args, want] of cases) {
        const r = await ctl(...args);
        expect([args, r.code]).toEqual([args, 2]);
        expect(r.stderr).toContain(want);
        expect(r.stderr.split("\n").length).toBe(2); // one line
      }
      expect(fake.calls).toEqual([]);
      // --peer one-shot flags are kept apart from the daemon filters
      const mixed = await cli(["show", "rib", "--peer", "192.0.2.2", "--remote-as", "65002", "--local-as", "65001", "--best"]);
      expect(mixed.code).toBe(2);
      expect(mixed.stderr).toContain("--best");
    },
    30_000,
  );

  test(
    "advertise and withdraw",
    async () => {
      const a = await ctl("advertise", "203.0.113.0/24", "198.51.100.0/24", "--next-hop", "192.0.2.1", "--community", "65001:100", "--community", "no-export", "--large-community", "65001:1:2", "--local-pref", "200", "--med", "5");
      expect(a).toEqual({ code: 0, stdout: "advertised 203.0.113.0/24\nunchanged 198.51.100.0/24 (already advertised)\n", stderr: "" });
      expect(fake.last("advertise")).toEqual([
        {
          prefixes: ["203.0.113.0/24", "198.51.100.0/24"],
          nextHop: "192.0.2.1",
          communities: ["65001:100", "no-export"],
          largeCommunities: ["65001:1:2"],
          localPref: 200,
          med: 5,
        },
      ]);
      // one next hop per family: one request each
      fake.calls = [];
      const two = await ctl("advertise", "203.0.112.0/24", "2001:db8:5::/48", "--next-hop", "192.0.2.1", "--next-hop", "2001:db8::1", "-j");
      expect(two.code).toBe(0);
      expect(JSON.parse(two.stdout)).toEqual({ added: ["203.0.112.0/24", "2001:db8:5::/48"] });
      expect(fake.calls.map((c) => c.args[0])).toEqual([
        { prefixes: ["203.0.112.0/24"], nextHop: "192.0.2.1" },
        { prefixes: ["2001:db8:5::/48"], nextHop: "2001:db8::1" },
      ]);
      const w = await ctl("withdraw", "203.0.113.0/24", "192.0.2.0/24");
      expect(w).toEqual({ code: 0, stdout: "withdrawn 203.0.113.0/24\nnot advertised 192.0.2.0/24 (nothing to withdraw)\n", stderr: "" });
      const wj = await ctl("withdraw", "2001:db8:5::/48", "-j");
      expect(JSON.parse(wj.stdout)).toEqual({ removed: ["2001:db8:5::/48"] });

      fake.calls = [];
      const bad: [string[], string][] = [
        [["advertise", "203.0.113.1/24"], "host bits"],
        [["advertise"], "give at least one prefix"],
        [["advertise", "203.0.113.0/24", "--next-hop", "nope"], "--next-hop"],
        [["advertise", "203.0.113.0/24", "--next-hop", "192.0.2.1", "--next-hop", "192.0.2.2"], "at most one IPv4"],
        [["advertise", "203.0.113.0/24", "--community", "1:2:3"], "--community"],
        [["advertise", "203.0.113.0/24", "--local-pref", "-1"], "--local-pref"],
        [["advertise", "203.0.113.0/24", "--remote-as", "65002"], "--remote-as only applies with --peer"],
        [["withdraw", "banana"], "PREFIX"],
      ];
      for (const [args, want] of bad) {
        const r = await ctl(...args);
        expect([args, r.code]).toEqual([args, 2]);
        expect(r.stderr).toContain(want);
      }
      expect(fake.calls).toEqual([]);
      const oneShot = await cli(["advertise", "203.0.113.0/24", "--peer", "192.0.2.2", "--remote-as", "65002", "--local-as", "65001", "--med", "5"]);
      expect(oneShot.code).toBe(2);
      expect(oneShot.stderr).toContain("--med does not apply to a one-shot session");
    },
    60_000,
  );

  test(
    "peer add / delete / up / down / reset",
    async () => {
      const add = await ctl("peer", "add", "192.0.2.9", "--remote-as", "65009", "--port", "1179", "--description", "lab peer", "--family", "ipv6", "--passive", "--route-reflector-client");
      expect(add).toEqual({ code: 0, stdout: "192.0.2.9: peer added\n", stderr: "" });
      expect(fake.last("peerAdd")).toEqual([{ address: "192.0.2.9", remoteAs: 65009, port: 1179, passive: true, families: ["ipv6"], description: "lab peer", routeReflectorClient: true }]);
      const dup = await ctl("peer", "add", "192.0.2.9", "--remote-as", "65009", "--local-as", "65001", "--hold-time", "30", "-j");
      expect(dup.code).toBe(1);
      expect(dup.stderr).toBe("bgpctl: neighbor 192.0.2.9 already exists\n");
      expect(fake.last("peerAdd")).toEqual([{ address: "192.0.2.9", remoteAs: 65009, localAs: 65001, holdTime: 30 }]);
      const del = await ctl("peer", "delete", "192.0.2.9", "-j");
      expect(del.code).toBe(0);
      expect(JSON.parse(del.stdout)).toEqual({ ok: true, action: "delete", address: "192.0.2.9" });
      expect((await ctl("peer", "delete", "192.0.2.9")).code).toBe(1);

      expect(await ctl("peer", "192.0.2.2", "down", "--message", "maintenance")).toEqual({ code: 0, stdout: "192.0.2.2: session shut down\n", stderr: "" });
      expect(fake.last("peerDown")).toEqual(["192.0.2.2", "maintenance"]);
      expect((await ctl("peer", "2001:db8::3", "reset", "--soft", "in")).stdout).toBe("2001:db8::3: soft reset (in)\n");
      expect(fake.last("peerReset")).toEqual(["2001:db8::3", "in"]);
      expect((await ctl("peer", "192.0.2.2", "reset")).stdout).toBe("192.0.2.2: session reset\n");
      expect(fake.last("peerReset")).toEqual(["192.0.2.2", undefined]);
      expect((await ctl("peer", "up", "192.0.2.2")).stdout).toBe("192.0.2.2: session enabled\n");
      expect(fake.last("peerUp")).toEqual(["192.0.2.2"]);

      fake.calls = [];
      const bad: [string[], string][] = [
        [["peer", "192.0.2.2", "sideways"], 'unknown action "sideways"'],
        [["peer", "192.0.2.2", "reset", "--soft", "both"], "--soft"],
        [["peer", "192.0.2.2", "up", "--message", "x"], "--message does not apply"],
        [["peer", "192.0.2.2", "down", "--remote-as", "65002"], "--remote-as does not apply"],
        [["peer", "add", "192.0.2.9"], "--remote-as is required"],
        [["peer", "add"], "ADDR is required"],
        [["peer", "add", "192.0.2.9", "--remote-as", "65009", "--advertise", "10.0.0.0/8"], "--advertise does not apply"],
        [["peer", "delete", "not-an-ip"], "ADDR"],
        [["peer", "192.0.2.2", "--remote-as", "65002", "--local-as", "65001", "--message", "hi"], "--message applies to the daemon forms"],
      ];
      for (const [args, want] of bad) {
        const r = await ctl(...args);
        expect([args, r.code]).toEqual([args, 2]);
        expect(r.stderr).toContain(want);
      }
      expect(fake.calls).toEqual([]);
      // the foreground session keeps its own checks
      const fg = await cli(["peer", "192.0.2.2", "--local-as", "65001"]);
      expect(fg).toEqual({ code: 2, stdout: "", stderr: "bgpctl: --remote-as is required\n" });
    },
    60_000,
  );

  test(
    "reload",
    async () => {
      expect(await ctl("reload")).toEqual({ code: 0, stdout: "neighbor 192.0.2.7 added\nneighbor 192.0.2.2: hold time 90 -> 30\n", stderr: "" });
      fake.reloadError = "config.yaml: neighbors[0].remoteAs: required";
      expect(await ctl("reload", "-j")).toEqual({ code: 1, stdout: "", stderr: "bgpctl: config.yaml: neighbors[0].remoteAs: required\n" });
    },
    30_000,
  );

  test(
    "shutdown",
    async () => {
      fake.calls.length = 0;
      expect(await ctl("shutdown")).toEqual({ code: 0, stdout: "shutting down\n", stderr: "" });
      expect(fake.calls).toEqual([{ method: "shutdown", args: [] }]);
    },
    30_000,
  );

  test(
    "monitor streams JSON lines until SIGINT",
    async () => {
      const p = Bun.spawn([...CLI, "monitor", "--neighbor", "192.0.2.2", "-j", "-s", sock], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      const reader = p.stdout.getReader();
      const dec = new TextDecoder();
      let buf = "";
      const nextLine = async (): Promise<string> => {
        for (;;) {
          const nl = buf.indexOf("\n");
          if (nl >= 0) {
            const l = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            return l;
          }
          const r = await reader.read();
          if (r.done) throw new Error(`monitor ended early; stdout so far: ${buf}`);
          buf += dec.decode(r.value, { stream: true });
        }
      };
      expect(JSON.parse(await nextLine())).toMatchObject({ type: "log", msg: "monitoring 192.0.2.2" });
      await waitFor(() => fake.listeners.size === 1, { timeoutMs: 3000, what: "subscription" });
      fake.emit(ev(1));
      fake.emit(ev(2, "2001:db8::3"));
      fake.emit(ev(3));
      expect(JSON.parse(await nextLine())).toEqual(ev(1));
      expect(JSON.parse(await nextLine())).toEqual(ev(3));
      p.kill("SIGINT");
      expect(await p.exited).toBe(0);
      await waitFor(() => fake.listeners.size === 0, { timeoutMs: 3000, what: "unsubscribe" });
    },
    30_000,
  );

  test(
    "monitor, human lines; the daemon going away exits 1",
    async () => {
      const p2 = join(dir, "cli-mon.sock");
      const f = new FakeRouter();
      const s = await startApiServer(f, p2);
      const proc = Bun.spawn([...CLI, "monitor", "-s", p2], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
      await waitFor(() => f.listeners.size === 1, { timeoutMs: 10_000, what: "subscription" });
      f.emit({ type: "log", time: T0, level: "warn", msg: "hello" });
      await Bun.sleep(100);
      await s.close();
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      expect(code).toBe(1);
      expect(out.split("\n").slice(1)).toEqual(["12:00:00 warn: hello", ""]);
      expect(out.split("\n")[0]).toMatch(/^\d\d:\d\d:\d\d info: monitoring$/);
      expect(err).toBe("bgpctl: monitor: the daemon closed the stream\n");
    },
    30_000,
  );

  test(
    "an unreachable daemon is one line naming the socket, exit 1; BGPCTL_SOCKET picks the socket",
    async () => {
      const nowhere = join(dir, "nowhere.sock");
      const msg = `bgpctl: no bgpctl daemon answers on ${nowhere} (is \`bgpctl run\` running? use -s/--socket to pick another socket)\n`;
      for (const args of [["show", "summary"], ["withdraw", "10.0.0.0/8"], ["peer", "192.0.2.2", "up"], ["monitor"], ["reload", "-j"]]) {
        expect(await cli([...args, "-s", nowhere])).toEqual({ code: 1, stdout: "", stderr: msg });
      }
      const viaEnv = await cli(["show", "summary", "-j"], { BGPCTL_SOCKET: sock });
      expect(viaEnv.code).toBe(0);
      expect(JSON.parse(viaEnv.stdout).asn).toBe(65001);
      expect((await cli(["show", "summary"], { BGPCTL_SOCKET: nowhere })).stderr).toBe(msg);
    },
    30_000,
  );
});

test("formatRib: the best path of a multipath set shows both > and =", () => {
  const best = route({ prefix: "203.0.113.0/24", best: true, multipath: true, ibgp: false, stale: false });
  const other = route({ prefix: "203.0.113.0/24", nextHop: "192.0.2.3", best: false, multipath: true, ibgp: false, stale: false });
  const lines = formatRib([best, other]).split("\n").filter((l) => l.includes("203.0.113.0/24"));
  expect(lines.map((l) => l.split(/\s+/)[0])).toEqual(["*>=", "*="]);
});

describe("fib and interfaces", () => {
  test("GET /v1/fib (all, one prefix) and 409 when kernel programming is off", async () => {
    expect(await client.fib()).toEqual(FIB);
    expect(await client.fib("203.0.113.0/24")).toEqual([FIB[1]!]);
    expect(fake.last("fib")).toEqual(["203.0.113.0/24"]);
    fake.fibOff = true;
    const r = await raw("GET", "/v1/fib");
    fake.fibOff = false;
    expect(r.status).toBe(409);
    expect(r.json.error).toContain("kernel.enabled");
    expect((await raw("GET", "/v1/fib?bogus=1")).status).toBe(400);
  });

  test("GET /v1/interfaces", async () => {
    expect(await client.interfaces()).toEqual(IFACES);
  });

  test("formatFib and formatInterfaces", () => {
    expect(formatFib(FIB)).toBe(
      "1 installed, 1 failed\n\n" +
        "Prefix           State      Next hops             Reason\n" +
        "198.51.100.0/24  installed  192.0.2.2, 192.0.2.3\n" +
        "203.0.113.0/24   failed     203.0.113.77          ENETUNREACH: Nexthop has invalid gateway\n",
    );
    expect(formatFib([])).toBe("no routes\n");
    expect(formatInterfaces(IFACES)).toBe(
      "Index  Name  State  Addresses\n" + "    1  lo    up     127.0.0.1/8\n" + "    2  eth0  up     192.0.2.1/24 2001:db8::1/64\n",
    );
  });
});

// ---------------------------------------------------------------------------
// Streaming: large answers, --limit, slow monitor clients
// ---------------------------------------------------------------------------

/** A raw client of the socket that sends `GET target` and never reads the answer. */
async function neverReading(path: string, target: string): Promise<Socket> {
  const c = createConnection({ path });
  await new Promise<void>((res, rej) => {
    c.once("connect", () => res());
    c.once("error", rej);
  });
  c.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
  c.pause();
  return c;
}

/** A router whose rib() produces `n` entries lazily, as the real one walks its table. */
class BigRouter extends FakeRouter {
  constructor(readonly n: number) {
    super();
  }
  override rib(q: RibQuery): Iterable<RibEntry> {
    this.calls.push({ method: "rib", args: [q] });
    const n = this.n;
    return (function* () {
      for (let i = 0; i < n; i++) yield route({ prefix: `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`, best: i % 2 === 0 });
    })();
  }
}

describe("streamed show rib", () => {
  const N = 200_000;
  let big: ApiServer;
  let bigSock: string;

  beforeAll(async () => {
    bigSock = join(dir, "big.sock");
    big = await startApiServer(new BigRouter(N), bigSock);
  });
  afterAll(() => big.close());

  test(
    "show rib -j of 200k entries: the daemon's loop keeps turning while it streams; the CLI prints a complete, valid array",
    async () => {
      const { result: r, lag, ms: tookMs } = await LoopLagMonitor.measure(() => cli(["show", "rib", "-j", "-s", bigSock]));
      expect(r.code).toBe(0);
      const arr = JSON.parse(r.stdout) as RibEntry[];
      expect(arr).toHaveLength(N);
      expect(arr[0]!.prefix).toBe("10.0.0.0/24");
      expect(arr[N - 1]!.prefix).toBe(`${10 + ((N - 1) >> 16)}.${((N - 1) >> 8) & 255}.${(N - 1) & 255}.0/24`);
      // The server's timer fired all along (a firing every 5 ms: on average at least one per 100 ms of the
      // run, which a count fixed in advance would not say of a fast run), and turns stayed short.
      const s = lag.stats();
      expect(s.samples).toBeGreaterThan(tookMs / 100);
      expect(lag.percentile(95)).toBeLessThan(50);
      expect(s.maxLagMs).toBeLessThan(1000); // a whole-table turn took seconds
    },
    120_000,
  );

  test("the JSON array arrives in many slices and parses; NDJSON ends with its end line", async () => {
    const { result: chunks, lag } = await LoopLagMonitor.measure(async () => {
      const res = await fetch("http://localhost/v1/rib", { unix: bigSock } as RequestInit);
      expect(res.headers.get("content-type")).toBe("application/json");
      const out: Uint8Array[] = [];
      for await (const c of res.body!) out.push(c);
      return out;
    });
    expect(chunks.length).toBeGreaterThan(50);
    expect(lag.percentile(95)).toBeLessThan(50);
    expect(JSON.parse(Buffer.concat(chunks).toString())).toHaveLength(N);
    const nd = await fetch("http://localhost/v1/rib?format=ndjson&limit=3", { unix: bigSock } as RequestInit);
    expect(nd.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await nd.text()).trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(4);
    expect(lines[3]).toEqual({ end: { count: 3, truncated: true } });
    expect((await raw("GET", "/v1/rib?format=xml")).json.error).toContain("format");
    expect((await raw("GET", "/v1/rib?limit=0")).json.error).toContain("limit");
  });

  test(
    "--limit: text says it was truncated; -j and --ndjson say it on stderr; a limit above the count is no truncation",
    async () => {
      const t = await cli(["show", "rib", "--limit", "2", "-s", bigSock]);
      expect(t.code).toBe(0);
      const two = [...new BigRouter(2).rib({})];
      expect(t.stdout).toBe(formatRib(two) + "\ntruncated: the first 2 entries shown (--limit); more match\n");
      const j = await cli(["show", "rib", "--limit", "2", "-j", "-s", bigSock]);
      expect(JSON.parse(j.stdout)).toEqual(two);
      expect(j.stderr).toBe("bgpctl: show rib: truncated: the first 2 entries shown (--limit); more match\n");
      const nd = await cli(["show", "rib", "--limit", "2", "--ndjson", "-s", bigSock]);
      expect(nd.stdout.trim().split("\n").map((l) => JSON.parse(l))).toEqual(two);
      expect(nd.stderr).toContain("truncated");
      // the fake daemon: 3 routes, limit 5
      const all = await ctl("show", "rib", "--limit", "5");
      expect(all).toEqual({ code: 0, stdout: formatRib([R1, R2, R3]), stderr: "" });
      expect(fake.last("rib")).toEqual([{}]); // the limit is the server's, not the router's
      const bad = await ctl("show", "rib", "--limit", "0");
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain("--limit");
      expect((await ctl("show", "rib", "-j", "--ndjson")).code).toBe(2);
    },
    60_000,
  );

  test("backpressure: for a client that does not read, the walk stops (a bounded part of the table is produced) and is released when it goes", async () => {
    const p = join(dir, "stuck-rib.sock");
    const f = new FakeRouter();
    let produced = 0;
    let released = false;
    f.rib = () =>
      (function* () {
        try {
          for (let i = 0; i < N; i++) {
            produced++;
            yield route({ prefix: `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24` });
          }
        } finally {
          released = true;
        }
      })();
    const s = await startApiServer(f, p);
    const stuck = await neverReading(p, "/v1/rib?format=ndjson");
    try {
      await waitFor(() => produced > 0, { timeoutMs: 3000, what: "the walk to start" });
      await Bun.sleep(500);
      const after = produced;
      await Bun.sleep(500);
      expect(produced).toBe(after); // stopped: waiting for the socket
      expect(produced).toBeLessThan(N / 4); // what the socket buffers took, not the table
      stuck.destroy();
      await waitFor(() => released, { timeoutMs: 5000, what: "the walk released after the client went" });
    } finally {
      stuck.destroy();
      await s.close();
    }
  });

  test("a walk that fails half-way is an error, never a complete-looking answer", async () => {
    const p = join(dir, "failing.sock");
    const f = new FakeRouter();
    f.rib = () =>
      (function* () {
        yield R1;
        throw new Error("table gone");
      })();
    const s = await startApiServer(f, p);
    try {
      await expect(new ApiClient(p).ribStream({}, () => {})).rejects.toThrow("the daemon failed half-way: table gone");
      await expect(new ApiClient(p).rib({})).rejects.toThrow();
    } finally {
      await s.close();
    }
  });

  test("a stream cut before its end line is reported as such", async () => {
    const p = join(dir, "cut.sock");
    const srv = Bun.serve({ unix: p, fetch: () => new Response(JSON.stringify(R1) + "\n") });
    try {
      await expect(new ApiClient(p).ribStream({}, () => {})).rejects.toThrow("ended early");
    } finally {
      await srv.stop(true);
    }
  });
});

describe("large advertise/withdraw requests", () => {
  test("checked slice by slice: a bad prefix far down the list is named by its index in the whole list; a good one is passed on whole", async () => {
    const list = Array.from({ length: 2500 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const badOne = [...list];
    badOne[2100] = "10.8.52.1/24";
    const r = await raw("POST", "/v1/advertise", { prefixes: badOne, communities: ["65001:1"] });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("prefixes[2100]");
    expect(r.json.error).toContain("host bits");
    expect(fake.last("advertise")).toBeUndefined();
    expect(await client.advertise({ prefixes: list, communities: ["65001:1"] })).toEqual({ added: list });
    expect(fake.last("advertise")).toEqual([{ prefixes: list, communities: ["65001:1"] }]);
    const w = await raw("POST", "/v1/withdraw", { prefixes: [...list.slice(0, 1500), "nope"] });
    expect(w.status).toBe(400);
    expect(w.json.error).toContain("prefixes[1500]");
    expect((await client.withdraw(list)).removed).toHaveLength(2500);
  });

  test("a long list mixing canonical IPv4 prefixes (taken as they are) with others (checked and put in canonical form) keeps every prefix in its place", async () => {
    const list = Array.from({ length: 2500 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
    const sent = [...list];
    sent[0] = "2001:DB8:0::/48";
    sent[1700] = " 10.6.164.0/24";
    sent[2499] = "2001:db8:0:0:1::/80";
    const want = [...list];
    want[0] = "2001:db8::/48";
    want[1700] = "10.6.164.0/24";
    want[2499] = "2001:db8:0:0:1::/80";
    expect(await client.advertise({ prefixes: sent, med: 5 })).toEqual({ added: want });
    expect(fake.last("advertise")).toEqual([{ prefixes: want, med: 5 }]);
    // The rest of the body is checked even when every prefix is canonical.
    const r = await raw("POST", "/v1/advertise", { prefixes: list, med: -1 });
    expect(r.status).toBe(400);
    expect(r.json.error).toContain("med");
    // A prefix that is not one, after canonical ones, is named by its index.
    const w = await raw("POST", "/v1/withdraw", { prefixes: [...list, 7] });
    expect(w.status).toBe(400);
    expect(w.json.error).toContain("prefixes[2500]");
  });
});

describe("RibTextWriter", () => {
  test("columns from the first rows; a wider cell later pushes its line; the u legend after the table when it shows up late", () => {
    let out = "";
    const w = new RibTextWriter((t) => (out += t), 2);
    w.add([R1, R2]);
    expect(out).toBe(formatRib([R1, R2])); // header and the first rows as soon as the sample is in
    const late = route({ prefix: "203.0.113.128/25", reachable: false, best: false, communities: [], largeCommunities: [] });
    w.add([late]);
    w.end(true, 3);
    const tail = out.slice(formatRib([R1, R2]).length).split("\n");
    expect(tail[0]).toBe("u      203.0.113.128/25  192.0.2.2    100    0  65002 65010  i");
    expect(tail.slice(1)).toEqual(["", "u = Next hop unreachable (not a candidate for best)", "", "truncated: the first 3 entries shown (--limit); more match", ""]);
  });
});

describe("monitor queue bound", () => {
  test(
    "a client that never reads is cut at its bound with a log line naming it; a reading client gets every event",
    async () => {
      const p = join(dir, "slow-mon.sock");
      const f = new FakeRouter();
      const logs: string[] = [];
      const s = await startApiServer(f, p, { monitorLimits: { maxEvents: 2000, maxBytes: 1024 * 1024 }, log: (level, msg) => logs.push(`${level}: ${msg}`) });
      const slow = await neverReading(p, "/v1/monitor");
      try {
        await waitFor(() => f.listeners.size === 1, { timeoutMs: 3000, what: "slow subscription" });
        const got: MonitorEvent[] = [];
        const ac = new AbortController();
        const done = new ApiClient(p).monitor(undefined, (e) => got.push(e), ac.signal);
        await waitFor(() => f.listeners.size === 2 && got.length === 1, { timeoutMs: 3000, what: "reading subscription" });
        // 40,000 events of ~100 bytes (4 MB: more than the socket buffers and the bound), in bursts with turns between.
        const total = 40_000;
        for (let i = 0; i < total; i += 250) {
          for (let j = i; j < i + 250; j++) f.emit(ev(j));
          await Bun.sleep(1);
        }
        await waitFor(() => got.length === total + 1, { timeoutMs: 20_000, what: "every event at the reading client", detail: () => `${got.length - 1} of ${total}` });
        expect(got.slice(1, 4)).toEqual([ev(0), ev(1), ev(2)]);
        const cut = logs.filter((l) => l.includes("disconnected"));
        expect(cut).toHaveLength(1);
        expect(cut[0]).toMatch(/^warn: monitor client #1 \(connected \S+\) disconnected: not reading, its queue is full \(2000 events, \d+ bytes unsent; limit 2000 events \/ 1048576 bytes\)$/);
        expect(f.listeners.size).toBe(1); // the slow one unsubscribed, the reader still there
        ac.abort();
        await done;
      } finally {
        slow.destroy();
        await s.close();
      }
    },
    60_000,
  );
});
