/**
 * MRT output of a real daemon, read back by `bgpctl mrt` and by bgpdump
 * (the Debian package; installed when missing and root, else the test fails
 * saying so). Two `bgpctl run` daemons on loopback: A records every session
 * (`mrtDump` with a 2-second rotation), B announces routes to it, then more
 * at run time. Checked: the rotation makes several files named by the
 * pattern at 2-second boundaries; every dump file parses with both readers,
 * and together they hold the OPENs, the state changes up to Established and
 * the UPDATEs both ways with their AS paths; `show rib --mrt` writes a
 * TABLE_DUMP_V2 snapshot whose prefixes, peers and AS paths are exactly
 * what `show rib` says A holds; a reload moves the dump to another file,
 * and one without mrtDump stops it.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { waitFor } from "../support/wait.ts";

const root = join(import.meta.dir, "../..");
const BIN = process.env.BGPCTL_BIN ?? join(root, "dist/bgpctl");
const dir = mkdtempSync(join(tmpdir(), "bgpctl-mrt-e2e-"));
const dumps = join(dir, "dumps");
const sockA = join(dir, "a.sock");
const sockB = join(dir, "b.sock");
const A = "127.0.0.41";
const B = "127.0.0.42";
const PORT_A = 17441;
const PORT_B = 17442;
const procs: Bun.Subprocess[] = [];
const PATTERN = /^updates\.(\d{4})(\d{2})(\d{2})-(\d{2})(\d{2})(\d{2})\.mrt$/;

function conf(o: { asn: number; rid: string; me: string; port: number; peer: string; peerAs: number; peerPort: number; sock: string; extra: string }): string {
  return `asn: ${o.asn}
routerId: ${o.rid}
listen: {address: ${o.me}, port: ${o.port}}
controlSocket: ${o.sock}
log: {level: debug}
peers:
  - {address: ${o.peer}, remoteAs: ${o.peerAs}, port: ${o.peerPort}, localAddress: ${o.me}, connectRetry: 1, import: all, export: all}
${o.extra}`;
}

const confA = (mrt: string) =>
  conf({
    asn: 65001,
    rid: "192.0.2.1",
    me: A,
    port: PORT_A,
    peer: B,
    peerAs: 65002,
    peerPort: PORT_B,
    sock: sockA,
    extra: `advertise:
  - {prefix: 198.51.100.0/25}
  - {prefix: "2001:db8:1::/48"}
${mrt}`,
  });

function cli(args: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync([BIN, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

function ok(args: string[]): string {
  const r = cli(args);
  if (r.code !== 0) throw new Error(`bgpctl ${args.join(" ")}: exit ${r.code}: ${r.err}`);
  return r.out;
}

function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** `bgpctl mrt FILE --json`, one object per line. */
function mrtJson(file: string): Record<string, unknown>[] {
  return lines(ok(["mrt", file, "--json"])).map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** `bgpdump -m FILE`, split into fields; fails when bgpdump says anything on stderr or exits non-zero. */
function bgpdump(file: string): string[][] {
  const r = Bun.spawnSync(["bgpdump", "-q", "-m", file], { stdout: "pipe", stderr: "pipe" });
  const err = r.stderr.toString().trim();
  if (r.exitCode !== 0 || err) throw new Error(`bgpdump -m ${file}: exit ${r.exitCode}: ${err}`);
  return lines(r.stdout.toString()).map((l) => l.split("|"));
}

/** bgpdump on the PATH: installed with apt-get when missing (as root), else a clear failure. */
function ensureBgpdump(): void {
  if (Bun.which("bgpdump")) return;
  if (process.getuid?.() !== 0) throw new Error("bgpdump is not installed and this test is not running as root to install it: apt-get install bgpdump");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () => Bun.spawnSync(["apt-get", "install", "-y", "bgpdump"], { stdout: "pipe", stderr: "pipe", env, timeout: 300_000 });
  let r = install();
  if (r.exitCode !== 0) {
    // Package lists may be missing or stale: refresh them once.
    Bun.spawnSync(["apt-get", "update"], { stdout: "pipe", stderr: "pipe", env, timeout: 300_000 });
    r = install();
  }
  if (r.exitCode !== 0 || !Bun.which("bgpdump")) throw new Error(`cannot install bgpdump (apt-get install -y bgpdump: exit ${r.exitCode}): ${r.stderr.toString().slice(-500)}`);
}

type RibRow = { prefix: string; asPath: number[]; peer: string; best: boolean; communities: string[] };
const ribA = () => JSON.parse(ok(["show", "rib", "-j", "-s", sockA])) as RibRow[];
type Nb = { address: string; state: string };
const established = (sock: string) => (JSON.parse(ok(["show", "neighbors", "-s", sock, "-j"])) as Nb[]).every((n) => n.state === "Established");
const dumpFiles = () => (existsSync(dumps) ? readdirSync(dumps).filter((f) => PATTERN.test(f)).sort() : []);

beforeAll(async () => {
  ensureBgpdump();
  writeFileSync(join(dir, "a.yaml"), confA(`mrtDump: {file: "${dumps}/updates.%Y%m%d-%H%M%S.mrt", rotate: 2}\n`));
  writeFileSync(
    join(dir, "b.yaml"),
    conf({
      asn: 65002,
      rid: "192.0.2.2",
      me: B,
      port: PORT_B,
      peer: A,
      peerAs: 65001,
      peerPort: PORT_A,
      sock: sockB,
      extra: `advertise:
  - {prefix: 203.0.113.0/24, communities: ["65002:7"]}
  - {prefix: 198.51.100.128/25, asPathPrepend: 2}
`,
    }),
  );
  for (const n of ["a", "b"]) {
    procs.push(Bun.spawn([BIN, "run", "--config", join(dir, `${n}.yaml`)], { stdout: "ignore", stderr: Bun.file(join(dir, `${n}.log`)) }));
  }
  await waitFor(() => established(sockA) && established(sockB) && ribA().length === 4, { timeoutMs: 15_000, what: "the session up and A holding 4 prefixes", intervalMs: 100, retryErrors: true });
}, 660_000);

afterAll(async () => {
  for (const p of procs) p.kill("SIGTERM");
  await Promise.all(procs.map((p) => Promise.race([p.exited, Bun.sleep(5000)])));
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  await Promise.all(procs.map((p) => Promise.race([p.exited, Bun.sleep(2000)])));
  rmSync(dir, { recursive: true, force: true });
}, 15_000);

test("mrtDump: BGP4MP files rotated every 2 s, named by the pattern, read by bgpctl mrt and bgpdump", async () => {
  // More traffic after a rotation or two: an announcement made at run time.
  await Bun.sleep(2200);
  ok(["advertise", "192.0.2.128/25", "-s", sockB]);
  await waitFor(() => ribA().some((r) => r.prefix === "192.0.2.128/25"), { timeoutMs: 10_000, what: "the new route in A", intervalMs: 100, retryErrors: true });
  const files = await waitFor(() => (dumpFiles().length >= 2 ? dumpFiles() : null), { timeoutMs: 10_000, what: "at least two dump files", intervalMs: 200 });
  for (const f of files) {
    const m = PATTERN.exec(f)!;
    // Rotation is aligned to the wall clock: each name is a 2-second boundary.
    expect(Number(m[6]) % 2).toBe(0);
  }

  // bgpctl mrt reads each file; together they hold the session's whole story.
  const recs = files.flatMap((f) => mrtJson(join(dumps, f)));
  const states = recs.filter((r) => r.type === "state");
  expect(states.some((s) => s.newState === "Established" && s.peer === B && s.peerAs === 65002 && s.localAs === 65001)).toBe(true);
  const msgs = recs.filter((r) => r.type === "message");
  expect(msgs.some((m) => m.kind === "open" && m.direction === "received" && m.asn === 65002)).toBe(true);
  expect(msgs.some((m) => m.kind === "open" && m.direction === "sent" && m.asn === 65001)).toBe(true);
  for (const m of msgs) expect(m).toMatchObject({ peer: B, peerAs: 65002, localAs: 65001, localAddress: A });
  const received = new Map<string, unknown>();
  const sent = new Map<string, unknown>();
  for (const m of msgs) {
    if (m.kind !== "update") continue;
    for (const p of (m.announced as string[]) ?? []) (m.direction === "received" ? received : sent).set(p, m.asPath);
  }
  expect(Object.fromEntries(received)).toEqual({ "203.0.113.0/24": [65002], "198.51.100.128/25": [65002, 65002, 65002], "192.0.2.128/25": [65002] });
  expect(sent.get("198.51.100.0/25")).toEqual([65001]);

  // bgpdump reads the same files: the same announcements, state changes, no complaint.
  const rows = files.flatMap((f) => bgpdump(join(dumps, f)));
  const ann = rows.filter((r) => r[0] === "BGP4MP" && r[2] === "A").map((r) => [r[3], r[4], r[5], r[6]]);
  expect(ann).toContainEqual([B, "65002", "203.0.113.0/24", "65002"]);
  expect(ann).toContainEqual([B, "65002", "198.51.100.128/25", "65002 65002 65002"]);
  expect(ann).toContainEqual([B, "65002", "192.0.2.128/25", "65002"]);
  const sentRows = rows.filter((r) => r[0] === "BGP4MP_LOCAL" && r[2] === "A").map((r) => [r[5], r[6]]);
  expect(sentRows).toContainEqual(["198.51.100.0/25", "65001"]);
  expect(rows.some((r) => r[0] === "BGP4MP" && r[2] === "STATE" && r[3] === B && r[6] === "6")).toBe(true);
}, 40_000);

test("show rib --mrt: a TABLE_DUMP_V2 snapshot of what A holds, read by bgpctl mrt and bgpdump", () => {
  const file = join(dir, "snapshot.mrt");
  const r = cli(["show", "rib", "--mrt", file, "-s", sockA]);
  expect(r.code).toBe(0);
  const rib = ribA();
  expect(r.err).toContain(`wrote ${rib.length} prefixes, ${rib.length} routes`);
  const want = rib.map((x) => `${x.prefix} ${x.peer === "local" ? "local" : x.peer} ${x.asPath.join(" ")}`).sort();

  const recs = mrtJson(file);
  const pit = recs[0]!;
  expect(pit.type).toBe("peer-index");
  expect(pit.collectorId).toBe("192.0.2.1");
  expect(pit.peers).toEqual([
    { index: 0, peer: B, peerAs: 65002, bgpId: "192.0.2.2" },
    { index: 1, peer: "0.0.0.0", peerAs: 65001, bgpId: "192.0.2.1" },
  ]);
  const entries = recs.filter((x) => x.type === "rib");
  const got = entries.map((x) => `${x.prefix} ${x.peer === "0.0.0.0" ? "local" : x.peer} ${(x.asPath as number[]).join(" ")}`).sort();
  expect(got).toEqual(want);
  expect(entries.find((x) => x.prefix === "203.0.113.0/24")).toMatchObject({ communities: ["65002:7"], nextHop: B });

  const rows = bgpdump(file);
  expect(rows.every((x) => x[0] === "TABLE_DUMP2" && x[2] === "B")).toBe(true);
  const fromBgpdump = rows.map((x) => `${x[5]} ${x[3] === "0.0.0.0" ? "local" : x[3]} ${x[6]}`.trimEnd()).sort();
  expect(fromBgpdump).toEqual(want.map((s) => s.trimEnd()));
  // The IPv6 local route's next hop comes from the abbreviated MP_REACH_NLRI.
  expect(rows.find((x) => x[5] === "2001:db8:1::/48")).toBeDefined();

  // One family only; a bad family and a missing directory are clear errors.
  const v6 = join(dir, "v6.mrt");
  expect(cli(["show", "rib", "--mrt", v6, "--family", "ipv6", "-s", sockA]).code).toBe(0);
  expect(mrtJson(v6).filter((x) => x.type === "rib").map((x) => x.prefix)).toEqual(["2001:db8:1::/48"]);
  const bad = cli(["show", "rib", "--mrt", v6, "--family", "ipv5", "-s", sockA]);
  expect(bad.code).not.toBe(0);
  expect(bad.err).toContain("ipv4 or ipv6");
  const missing = cli(["show", "rib", "--mrt", join(dir, "no/such/dir/x.mrt"), "-s", sockA]);
  expect(missing.code).not.toBe(0);
  expect(missing.err).toContain("no/such/dir/x.mrt");
});

test("reload: mrtDump moved to another file, then stopped", async () => {
  const other = join(dir, "other.mrt");
  writeFileSync(join(dir, "a.yaml"), confA(`mrtDump: {file: "${other}", rotate: 0}\n`));
  const out = ok(["reload", "-s", sockA]);
  expect(out).toContain(`mrtDump to ${other}`);
  ok(["advertise", "192.0.2.192/26", "-s", sockB]);
  await waitFor(() => existsSync(other) && mrtJson(other).some((m) => m.kind === "update" && (m.announced as string[]).includes("192.0.2.192/26")), {
    timeoutMs: 10_000,
    what: "the UPDATE in the new dump file",
    intervalMs: 200,
    retryErrors: true,
  });
  const rotatedBefore = dumpFiles().length;

  writeFileSync(join(dir, "a.yaml"), confA(""));
  expect(ok(["reload", "-s", sockA])).toContain("mrtDump stopped");
  const size = statSync(other).size;
  ok(["withdraw", "192.0.2.192/26", "-s", sockB]);
  await waitFor(() => !ribA().some((r) => r.prefix === "192.0.2.192/26"), { timeoutMs: 10_000, what: "the withdrawal in A", intervalMs: 100, retryErrors: true });
  await Bun.sleep(2500);
  expect(statSync(other).size).toBe(size);
  expect(dumpFiles().length).toBe(rotatedBefore);
}, 40_000);
