/**
 * Two `bgpctl run` daemons on loopback, driven through the CLI as an operator
 * would: `peer ADDR down --message`, `peer ADDR up`, `peer ADDR reset --soft
 * out`, `peer delete`, `peer add`, `monitor`, and `show` against the real
 * daemon (the API's unit tests use a fake). Loopback only; no root needed.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../support/wait.ts";

const root = join(import.meta.dir, "../..");
const BIN = process.env.BGPCTL_BIN ?? join(root, "dist/bgpctl");
const dir = mkdtempSync(join(tmpdir(), "bgpctl-e2e-"));
const sockA = join(dir, "a.sock");
const sockB = join(dir, "b.sock");
const PORT_A = 17279;
const PORT_B = 17280;
const procs: Bun.Subprocess[] = [];

function conf(asn: number, rid: string, me: string, port: number, peer: string, peerAs: number, peerPort: number, sock: string, prefix: string): string {
  return `asn: ${asn}
routerId: ${rid}
listen: {address: ${me}, port: ${port}}
controlSocket: ${sock}
log: {level: debug}
peers:
  - {address: ${peer}, remoteAs: ${peerAs}, port: ${peerPort}, localAddress: ${me}, connectRetry: 1, import: all, export: all}
advertise:
  - {prefix: ${prefix}}
`;
}

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function json<T>(args: string[]): T {
  const r = cli([...args, "-j"]);
  if (r.code !== 0) throw new Error(`bgpctl ${args.join(" ")}: exit ${r.code}: ${r.err}`);
  return JSON.parse(r.out) as T;
}

type Nb = { address: string; state: string; lastError: string | null; uptimeSeconds: number; adminDown: boolean; received: number; accepted: number };
const stateOf = (sock: string, addr: string) => json<Nb[]>(["show", "neighbors", "-s", sock]).find((n) => n.address === addr);

beforeAll(async () => {
  writeFileSync(join(dir, "a.yaml"), conf(65001, "192.0.2.1", "127.0.0.1", PORT_A, "127.0.0.2", 65002, PORT_B, sockA, "198.51.100.0/24"));
  writeFileSync(join(dir, "b.yaml"), conf(65002, "192.0.2.2", "127.0.0.2", PORT_B, "127.0.0.1", 65001, PORT_A, sockB, "203.0.113.0/24"));
  for (const n of ["a", "b"]) {
    procs.push(Bun.spawn([BIN, "run", "--config", join(dir, `${n}.yaml`)], { stdout: "ignore", stderr: Bun.file(join(dir, `${n}.log`)) }));
  }
  await waitFor(() => stateOf(sockA, "127.0.0.2")?.state === "Established" && stateOf(sockB, "127.0.0.1")?.state === "Established", { timeoutMs: 15_000, what: "both sessions Established", intervalMs: 100, retryErrors: true });
}, 30_000);

afterAll(async () => {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => Promise.race([p.exited, Bun.sleep(5000)])));
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

test("peer down with a message: the other daemon records the shutdown communication; peer up restores the session and routes", async () => {
  const r = cli(["peer", "127.0.0.2", "down", "--message", "maintenance 42", "-s", sockA]);
  expect(r.code).toBe(0);
  const b = await waitFor(() => {
    const n = stateOf(sockB, "127.0.0.1");
    return n && n.state !== "Established" && n.lastError?.includes("maintenance 42") ? n : null;
  }, { timeoutMs: 15_000, what: "B to see the shutdown", intervalMs: 100, retryErrors: true });
  expect(b.lastError).toContain("Administrative Shutdown");
  expect(stateOf(sockA, "127.0.0.2")!.adminDown).toBe(true);
  expect(json<unknown[]>(["show", "rib", "203.0.113.0/24", "-s", sockA])).toEqual([]);
  // Stays down while administratively down (B keeps trying to connect).
  await Bun.sleep(1500);
  expect(stateOf(sockA, "127.0.0.2")!.state).not.toBe("Established");
  expect(cli(["peer", "127.0.0.2", "up", "-s", sockA]).code).toBe(0);
  await waitFor(() => stateOf(sockA, "127.0.0.2")?.state === "Established", { timeoutMs: 15_000, what: "the session back up", intervalMs: 100, retryErrors: true });
  const rib = await waitFor(() => {
    const rs = json<{ prefix: string; asPath: number[]; best: boolean }[]>(["show", "rib", "203.0.113.0/24", "-s", sockA]);
    return rs.length ? rs : null;
  }, { timeoutMs: 15_000, what: "B's route back in A", intervalMs: 100, retryErrors: true });
  expect(rib[0]).toMatchObject({ prefix: "203.0.113.0/24", asPath: [65002], best: true });
  // Counters start again from the new session's table (no leftovers from the first one).
  expect(stateOf(sockA, "127.0.0.2")).toMatchObject({ received: 1, accepted: 1 });
}, 40_000);

test("reset --soft out keeps the session; a hard reset re-establishes it", async () => {
  const before = stateOf(sockA, "127.0.0.2")!;
  await Bun.sleep(1100);
  expect(cli(["peer", "127.0.0.2", "reset", "--soft", "out", "-s", sockA]).code).toBe(0);
  await Bun.sleep(300);
  const after = stateOf(sockA, "127.0.0.2")!;
  expect(after.state).toBe("Established");
  expect(after.uptimeSeconds).toBeGreaterThan(before.uptimeSeconds);
  // B's monitor records why its session went down.
  const mon = Bun.spawn([BIN, "monitor", "-s", sockB, "-j"], { stdout: "pipe", stderr: "pipe" });
  procs.push(mon);
  await Bun.sleep(300);
  expect(cli(["peer", "127.0.0.2", "reset", "-s", sockA]).code).toBe(0);
  await Bun.sleep(500);
  await waitFor(() => stateOf(sockA, "127.0.0.2")?.state === "Established" && stateOf(sockB, "127.0.0.1")?.state === "Established", { timeoutMs: 15_000, what: "re-established after the hard reset", intervalMs: 100, retryErrors: true });
  mon.kill("SIGTERM");
  const events = (await new Response(mon.stdout).text()).trim().split("\n").map((l) => JSON.parse(l) as { type: string; from?: string; to?: string; reason?: string });
  const down = events.find((e) => e.type === "state" && e.from === "Established");
  expect(down?.reason).toContain("Administrative Reset");
  expect(down?.reason).toContain("reset by operator");
  expect(events.some((e) => e.type === "state" && e.to === "Established")).toBe(true);
}, 40_000);

test("peer delete and peer add at run time; monitor streams the state changes", async () => {
  const mon = Bun.spawn([BIN, "monitor", "-s", sockB, "-j"], { stdout: "pipe", stderr: "pipe" });
  procs.push(mon);
  await Bun.sleep(300);
  expect(cli(["peer", "delete", "127.0.0.2", "-s", sockA]).code).toBe(0);
  expect(json<Nb[]>(["show", "neighbors", "-s", sockA]).length).toBe(0);
  expect(cli(["show", "neighbors", "127.0.0.2", "-s", sockA]).code).toBe(1);
  await waitFor(() => stateOf(sockB, "127.0.0.1")?.lastError?.includes("Peer De-configured"), { timeoutMs: 15_000, what: "B to see the de-configuration", intervalMs: 100, retryErrors: true });
  const add = cli(["peer", "add", "127.0.0.2", "--remote-as", "65002", "--port", String(PORT_B), "--local-address", "127.0.0.1", "--import", "all", "--export", "all", "-s", sockA]);
  expect(add.err).toBe("");
  expect(add.code).toBe(0);
  await waitFor(() => stateOf(sockA, "127.0.0.2")?.state === "Established", { timeoutMs: 20_000, what: "the added peer to establish", intervalMs: 100, retryErrors: true });
  mon.kill("SIGTERM");
  const events = (await new Response(mon.stdout).text()).trim().split("\n").map((l) => JSON.parse(l) as { type: string; to?: string });
  expect(events.some((e) => e.type === "state" && e.to === "Established")).toBe(true);
  expect(events.some((e) => e.type === "state" && e.to === "Idle")).toBe(true);
}, 40_000);

test("an unreachable daemon: one line naming the socket, exit 1", () => {
  const r = cli(["show", "summary", "-s", join(dir, "nobody.sock")]);
  expect(r.code).toBe(1);
  expect(r.err.trim().split("\n").length).toBe(1);
  expect(r.err).toContain(join(dir, "nobody.sock"));
});
