/**
 * `npm run bench`: the speaker core measured side by side with BIRD and GoBGP
 * in one run, reported as ratios. Not a test: nothing here asserts a time.
 *
 * 1. decode: a synthetic full table (default 560k IPv4 prefixes) framed and
 *    decoded in-process into a minimal Adj-RIB-In, best of 3.
 * 2. receive: the same table sent over TCP on loopback by one sender (our
 *    session, pre-encoded messages) to each receiver in turn: bgpctl
 *    (tests/bench/receiver.ts), BIRD, GoBGP. Time from Established to the
 *    receiver holding every prefix (polled with birdc / gobgp / bgpctl show
 *    every 20 ms; the speaker-core receiver reports End-of-RIB itself).
 *    "bgpctl" is the speaker core alone (session + decode + Adj-RIB-In);
 *    "bgpctl-run" is the whole daemon (plus import policy, Loc-RIB and best
 *    path), the one to compare with BIRD and GoBGP, which do the same.
 *
 * Usage: bun tests/bench/run.ts [--prefixes N] [--only decode|bgpctl|bgpctl-run|bird|gobgp]
 * Loopback only (127.0.0.1 / 127.0.0.2); every process is stopped by PID.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ApiClient } from "../../lib/api/client.ts";
import { Framer } from "../../lib/bgp/framer.ts";
import type { PathAttributes } from "../../lib/bgp/attributes.ts";
import { walkNlri } from "../../lib/bgp/prefix.ts";
import { Session } from "../../lib/bgp/session.ts";
import { AFI } from "../../lib/core/addr.ts";
import { MsgType, SAFI } from "../../lib/bgp/types.ts";
import { AttrCache } from "../../lib/bgp/attributes.ts";
import { announcedBlocks, decodeUpdate, encodeEndOfRib } from "../../lib/bgp/update.ts";
import { buildTable, toChunks, type Table } from "./table.ts";
import { waitFor } from "../support/wait.ts";

const args = process.argv.slice(2);
const argOf = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const N = Number(argOf("--prefixes") ?? 560_000);
const only = argOf("--only");
const SENDER = "127.0.0.2";
const RECEIVER = "127.0.0.1";
const SENDER_AS = 65002;
const RECEIVER_AS = 65001;
const root = join(import.meta.dir, "../..");
const dir = mkdtempSync(join(tmpdir(), "bgpctl-bench-"));
const procs: Bun.Subprocess[] = [];
const results: Record<string, number> = {};

function log(s: string) {
  process.stdout.write(s + "\n");
}

async function out(argv: string[]): Promise<string> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
  const [s] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  return s;
}

// ------------------------------------------------------------ 1. decode
function decodeBench(t: Table): number {
  const chunks = toChunks(t.messages);
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const framer = new Framer();
    const ctx = { fourOctetAs: true, ibgp: false, addPathReceive: () => false, cache: new AttrCache() };
    const rib = new Map<number, PathAttributes>();
    const t0 = performance.now();
    for (const c of chunks) {
      for (const f of framer.push(c)) {
        if (f.type !== MsgType.UPDATE) continue;
        const u = decodeUpdate(f.body, ctx);
        const attrs = u.attrs!;
        for (const b of announcedBlocks(u)) {
          walkNlri(b.buf, b.start, b.end, false, (buf, o, len) => {
            let a = 0;
            const n = (len + 7) >> 3;
            for (let i = 0; i < 4; i++) a = a * 256 + (i < n ? buf[o + i]! : 0);
            rib.set(a * 64 + len, attrs);
          });
        }
      }
    }
    const ms = performance.now() - t0;
    if (rib.size !== t.prefixes) throw new Error(`decode stored ${rib.size} of ${t.prefixes} prefixes`);
    best = Math.min(best, ms);
  }
  return best;
}

// ------------------------------------------------------------ 2. receive
/** Connect a sender session to RECEIVER:port, send the table, resolve when `done()` says the receiver has it all. */
async function feed(port: number, t: Table, done: () => Promise<boolean>): Promise<{ totalMs: number; sendMs: number }> {
  const s = new Session({
    peerAddress: RECEIVER,
    peerPort: port,
    localAddress: SENDER,
    localAs: SENDER_AS,
    remoteAs: RECEIVER_AS,
    routerId: SENDER,
    holdTime: 240,
    connectRetry: 1,
    families: [{ afi: AFI.IPV4, safi: SAFI.UNICAST }],
    capabilities: [],
  });
  const established = new Promise<void>((r) => s.on("established", () => r()));
  s.start();
  await Promise.race([established, Bun.sleep(30_000).then(() => Promise.reject(new Error("sender session did not establish")))]);
  const t0 = performance.now();
  for (const m of t.messages) s.sendUpdate(m);
  s.sendUpdate(encodeEndOfRib(AFI.IPV4, SAFI.UNICAST));
  await waitFor(() => s.outQueueBytes === 0, { timeoutMs: 120_000, what: "sender queue drained", intervalMs: 5 });
  const sendMs = performance.now() - t0;
  await waitFor(done, { timeoutMs: 300_000, what: "receiver to hold the table", intervalMs: 20 });
  const totalMs = performance.now() - t0;
  log(`    sender wrote the table in ${sendMs.toFixed(0)} ms; receiver done at ${totalMs.toFixed(0)} ms`);
  await s.stop({});
  return { totalMs, sendMs };
}

function spawn(argv: string[], name: string): Bun.Subprocess<"ignore", "pipe", "pipe"> {
  const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  procs.push(p);
  log(`  started ${name} (pid ${p.pid})`);
  return p;
}

async function stop(p: Bun.Subprocess) {
  p.kill("SIGTERM");
  await Promise.race([p.exited, Bun.sleep(3000)]);
  if (p.exitCode === null) p.kill("SIGKILL");
}

async function benchBgpctl(t: Table, port: number): Promise<number> {
  const p = spawn([process.execPath, ...(process.env.BENCH_PROF ? ["--cpu-prof", "--cpu-prof-dir=/tmp/rprof"] : []), join(root, "tests/bench/receiver.ts"), RECEIVER, String(port), SENDER, String(RECEIVER_AS), String(SENDER_AS)], "bgpctl receiver");
  let buf = "";
  let have = 0;
  const dec = new TextDecoder();
  void (async () => {
    for await (const c of p.stdout) {
      buf += dec.decode(c);
      for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const e = JSON.parse(line) as { event: string; prefixes?: number };
        if (e.event === "ready") have = -1;
        if (e.event === "eor") have = e.prefixes!;
      }
    }
  })();
  await waitFor(() => have === -1, { timeoutMs: 10_000, what: "bgpctl receiver ready", intervalMs: 20 });
  const r = await feed(port, t, async () => have === t.prefixes);
  await stop(p);
  return r.totalMs;
}

/** The whole daemon: `bgpctl run` (Adj-RIB-In, import policy, Loc-RIB, best path). */
async function benchDaemon(t: Table, port: number): Promise<number> {
  const conf = join(dir, "bgpctl.yaml");
  const sock = join(dir, "bgpctl.sock");
  writeFileSync(
    conf,
    `asn: ${RECEIVER_AS}
routerId: ${RECEIVER}
listen: {address: ${RECEIVER}, port: ${port}}
controlSocket: ${sock}
log: {level: warn}
peers:
  - {address: ${SENDER}, remoteAs: ${SENDER_AS}, passive: true, holdTime: 240, families: [ipv4], import: all, export: none}
`,
  );
  const exe = process.env.BENCH_PROF ? [process.execPath, "--cpu-prof", "--cpu-prof-dir=/tmp/dprof", join(root, "main.ts")] : [join(root, "dist/bgpctl")];
  const p = spawn([...exe, "run", "--config", conf], "bgpctl run");
  // Poll the control socket in-process (a CLI process per poll would compete for the CPU).
  const api = new ApiClient(sock);
  await waitFor(async () => api.summary().then(() => true, () => false), { timeoutMs: 10_000, what: "bgpctl run control socket", intervalMs: 50 });
  const count = async () => (await api.neighbors())[0]?.accepted ?? 0;
  const r = await feed(port, t, async () => (await count()) >= t.prefixes);
  await stop(p);
  return r.totalMs;
}

async function benchBird(t: Table, port: number): Promise<number> {
  const conf = join(dir, "bird.conf");
  const sock = join(dir, "bird.ctl");
  writeFileSync(
    conf,
    // The feed's next hop (192.0.2.1) is not on a directly connected network:
    // a multihop session resolves it through a static route.
    `router id ${RECEIVER};
protocol device {}
protocol static nh { ipv4; route 192.0.2.0/24 via "lo"; }
protocol bgp feed {
  local ${RECEIVER} port ${port} as ${RECEIVER_AS};
  neighbor ${SENDER} as ${SENDER_AS};
  multihop;
  passive on;
  hold time 240;
  ipv4 { import all; export none; };
}
`,
  );
  const p = spawn(["bird", "-f", "-c", conf, "-s", sock], "BIRD");
  await waitFor(async () => (await out(["birdc", "-s", sock, "show", "status"])).includes("Daemon is up"), { timeoutMs: 10_000, what: "BIRD control socket", intervalMs: 50 });
  const count = async () => {
    const s = await out(["birdc", "-s", sock, "show", "route", "protocol", "feed", "count"]);
    const m = /(\d+) of (\d+) routes/.exec(s);
    return m ? Number(m[1]) : 0;
  };
  const r = await feed(port, t, async () => (await count()) >= t.prefixes);
  await stop(p);
  return r.totalMs;
}

async function benchGobgp(t: Table, port: number): Promise<number> {
  const conf = join(dir, "gobgpd.toml");
  const api = String(port + 1000);
  writeFileSync(
    conf,
    `[global.config]
  as = ${RECEIVER_AS}
  router-id = "${RECEIVER}"
  port = ${port}
  local-address-list = ["${RECEIVER}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${SENDER}"
    peer-as = ${SENDER_AS}
  [neighbors.timers.config]
    hold-time = 240
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`,
  );
  const p = spawn(["gobgpd", "-f", conf, "--api-hosts", `127.0.0.1:${api}`, "--disable-stdlog", "--pprof-disable"], "GoBGP");
  const cli = ["gobgp", "-u", "127.0.0.1", "-p", api];
  await waitFor(async () => (await out([...cli, "global"])).includes("AS"), { timeoutMs: 15_000, what: "gobgpd API", intervalMs: 100 });
  const count = async () => {
    const s = await out([...cli, "global", "rib", "summary", "-a", "ipv4"]);
    const m = /Destination:\s*(\d+)/.exec(s);
    return m ? Number(m[1]) : 0;
  };
  const r = await feed(port, t, async () => (await count()) >= t.prefixes);
  await stop(p);
  return r.totalMs;
}

try {
  log(`building a ${N}-prefix table ...`);
  // Next hop 192.0.2.1 (documentation range): only an attribute here, never a
  // destination. Loopback next hops are refused by GoBGP and BIRD alike.
  const table = buildTable(N, SENDER_AS, Uint8Array.of(192, 0, 2, 1));
  log(`  ${table.messages.length} UPDATEs, ${(table.bytes / 1e6).toFixed(1)} MB`);
  if (!only || only === "decode") {
    const ms = decodeBench(table);
    results.decode = ms;
    log(`decode (framer + UPDATE decode + Adj-RIB-In insert, in-process, best of 3): ${ms.toFixed(0)} ms, ${((N / ms) * 1000 / 1e6).toFixed(2)} M prefixes/s`);
  }
  const receivers: [string, (t: Table, port: number) => Promise<number>, string | null][] = [
    ["bgpctl", benchBgpctl, null],
    ["bgpctl-run", benchDaemon, null],
    ["bird", benchBird, "bird"],
    ["gobgp", benchGobgp, "gobgpd"],
  ];
  let port = 17900;
  for (const [name, fn, bin] of receivers) {
    if (only && only !== name) continue;
    if (bin && !Bun.which(bin)) {
      log(`receive ${name}: not installed (apt-get install ${bin === "bird" ? "bird2" : "gobgpd"}); skipped in this report`);
      continue;
    }
    log(`receive ${name}: ...`);
    const ms = await fn(table, port++);
    results[name] = ms;
    log(`receive ${name}: ${ms.toFixed(0)} ms for ${N} prefixes (${((N / ms) * 1000 / 1e3).toFixed(0)}k prefixes/s)`);
  }
  // BIRD and GoBGP keep a full RIB with best path: compare them with the whole
  // daemon when it ran, else with the speaker core.
  const ref = results["bgpctl-run"] !== undefined ? "bgpctl-run" : "bgpctl";
  log(`\nsummary (lower is better; ratio = other / ${ref}, >1 means bgpctl is faster)`);
  for (const [k, v] of Object.entries(results)) {
    const ratio = (k === "bird" || k === "gobgp") && results[ref] ? `  ratio ${(v / results[ref]!).toFixed(2)}` : "";
    log(`  ${k.padEnd(11)} ${v.toFixed(0).padStart(7)} ms${ratio}`);
  }
} finally {
  for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
