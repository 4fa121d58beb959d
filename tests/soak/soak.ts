/**
 * The soak run (`npm run soak`, not part of `npm test`): one `bgpctl run`
 * daemon on loopback with an injecting peer and a receiving peer
 * (tests/support/bgp-peer.ts), the injector holding a generated table
 * (tests/bench/table.ts) and churning it for SOAK_SECONDS: every second the
 * next slice of the table is withdrawn and re-announced with new attributes
 * (a MED and a community that change every round, so attribute sets keep
 * being made and dropped). The daemon's RSS is sampled every 10 s and
 * printed as a table.
 *
 * Pass/fail: RSS is a sawtooth (garbage collections; bounded caches that
 * fill under churn and are cleared), so means over windows of a whole cycle
 * are compared: the mean RSS of the last window may exceed the mean of the
 * first window after the warm-up (SOAK_WARMUP seconds, default 300; windows
 * of min(600 s, half the time after the warm-up)) by at most SOAK_MAX_GROWTH
 * (default 0.10, i.e. 10%);
 * the daemon must be alive at the end, both sessions never reset, and the
 * receiving peer must hold exactly the injector's table with the latest
 * attributes. Exit 1 otherwise.
 *
 * Environment: SOAK_SECONDS (default 3600), SOAK_WARMUP (300), SOAK_PREFIXES
 * (IPv4, default 50000), SOAK_V6_PREFIXES (10000), SOAK_CHURN (prefixes per
 * round, default 2% of the table), SOAK_MAX_GROWTH (0.10), SOAK_PORT (17391), BGPCTL_BIN (the
 * binary; default: compiled from this tree into a temporary directory).
 * Ports 17391 (BGP) on 127.0.0.1; peers 127.0.0.2 and 127.0.0.3. No root.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { PathAttributes } from "../../lib/bgp/attributes.ts";
import { prefixToString } from "../../lib/core/addr.ts";
import { buildTable } from "../bench/table.ts";
import { TestPeer } from "../support/bgp-peer.ts";
import { Daemon } from "../support/daemon.ts";
import { sleep, waitFor } from "../support/wait.ts";

const env = (k: string, d: number): number => {
  const v = process.env[k];
  if (v === undefined || v === "") return d;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${k}=${v}: expected a non-negative number`);
  return n;
};

const SECONDS = env("SOAK_SECONDS", 3600);
const WARMUP = env("SOAK_WARMUP", Math.min(300, SECONDS / 2));
const V4 = env("SOAK_PREFIXES", 50_000);
const V6 = env("SOAK_V6_PREFIXES", 10_000);
const MAX_GROWTH = env("SOAK_MAX_GROWTH", 0.1);
const SAMPLE_MS = 10_000;
const PORT = env("SOAK_PORT", 17391);
const DAEMON_AS = 65000;
const INJ_AS = 65010;
const SINK_AS = 65020;
if (SECONDS - WARMUP < 60) throw new Error(`SOAK_SECONDS (${SECONDS}) must leave at least 60 s after SOAK_WARMUP (${WARMUP})`);

const dir = mkdtempSync(join(tmpdir(), "bgpctl-soak-"));
const cleanups: (() => Promise<void> | void)[] = [() => rmSync(dir, { recursive: true, force: true })];

async function binary(): Promise<string> {
  if (process.env.BGPCTL_BIN) return process.env.BGPCTL_BIN;
  const out = join(dir, "bgpctl");
  const p = Bun.spawnSync([process.execPath, "build", "--compile", join(import.meta.dir, "../../main.ts"), "--outfile", out], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`building bgpctl failed: ${p.stderr.toString()}`);
  return out;
}

const mb = (b: number) => (b / 1048576).toFixed(1);

async function main(): Promise<number> {
  const bin = await binary();
  const sock = Daemon.socketIn(dir);
  const peer = (addr: string, as: number, extra: string) => `  - {address: ${addr}, remoteAs: ${as}, passive: true, families: [ipv4, ipv6], ${extra}}`;
  const config = [
    `asn: ${DAEMON_AS}`,
    `routerId: 192.0.2.100`,
    `listen: {address: 127.0.0.1, port: ${PORT}}`,
    `controlSocket: ${sock}`,
    `log: {level: info}`,
    `peers:`,
    peer("127.0.0.2", INJ_AS, "import: all, export: none"),
    peer("127.0.0.3", SINK_AS, "import: none, export: all"),
    "",
  ].join("\n");
  const daemon = new Daemon(dir, config, "bgpctl", bin);
  cleanups.unshift(() => daemon.stop());
  await daemon.ready();

  const inj = new TestPeer({ local: "127.0.0.2", daemon: "127.0.0.1", port: PORT, localAs: INJ_AS, daemonAs: DAEMON_AS }).start();
  const sink = new TestPeer({ local: "127.0.0.3", daemon: "127.0.0.1", port: PORT, localAs: SINK_AS, daemonAs: DAEMON_AS }).start();
  cleanups.unshift(() => inj.stop(), () => sink.stop());
  await inj.waitEstablished();
  await sink.waitEstablished();

  // IPv6 next hop: ::1 resolves (loopback), so the daemon's next-hop tracking makes the routes eligible.
  const nh6 = new Uint8Array(16);
  nh6[15] = 1;
  const table = buildTable({ v4: V4, v6: V6, peerAs: INJ_AS, nextHop4: Uint8Array.of(127, 0, 0, 2), nextHop6: nh6, seed: 7 });
  const groups = table.groups;
  const total = table.prefixes;
  const CHURN = env("SOAK_CHURN", Math.max(1, Math.round(total * 0.02)));
  /** The attributes each group was last announced with (what the sink must hold at the end). */
  const current: PathAttributes[] = groups.map((g) => g.attrs);

  // Writes only while the session takes them (drain), like a real speaker.
  const queue: Uint8Array[][] = [];
  const pump = () => {
    while (queue.length && inj.session.writable) inj.send(queue.shift()!);
  };
  inj.session.on("drain", pump);
  const enqueue = (msgs: Uint8Array[]) => {
    queue.push(msgs);
    pump();
  };

  const t0 = Date.now();
  for (const grp of groups) enqueue(inj.announcement(grp.prefixes, grp.attrs, nh6));
  await waitFor(() => sink.received.size === total, { what: `the sink to hold the whole table (${total} prefixes)`, timeoutMs: 120_000, intervalMs: 200, detail: () => `sink holds ${sink.received.size}` });
  console.log(`table: ${total} prefixes (${table.v4} IPv4, ${table.v6} IPv6) in ${groups.length} attribute groups, through the daemon in ${((Date.now() - t0) / 1000).toFixed(1)} s; churn ${CHURN} prefixes per second`);

  // Churn: every second, the next slice of groups withdrawn and re-announced
  // with this round's attributes (MED and a community carrying the round number).
  const samples: { t: number; rss: number }[] = [];
  let round = 0;
  let g = 0;
  const start = Date.now();
  let nextSample = start;
  console.log("   t (s) |  RSS (MB) | Loc-RIB prefixes | sink holds | rounds");
  while (Date.now() - start < SECONDS * 1000) {
    if (!daemon.alive) throw new Error(`the daemon exited (code ${daemon.proc.exitCode}, signal ${daemon.proc.signalCode})\n${daemon.logTail()}`);
    round++;
    for (let n = 0; n < CHURN; ) {
      const i = g++ % groups.length;
      const grp = groups[i]!;
      const attrs: PathAttributes = { ...grp.attrs, med: round, communities: [...grp.attrs.communities, roundCommunity(round)] };
      enqueue(inj.withdrawal(grp.prefixes));
      enqueue(inj.announcement(grp.prefixes, attrs, nh6));
      current[i] = attrs;
      n += grp.prefixes.length;
    }
    if (Date.now() >= nextSample) {
      const rib = (await daemon.api.ribSummary()).families.reduce((s, f) => s + f.prefixes, 0);
      const row = { t: Math.round((Date.now() - start) / 1000), rss: daemon.rssBytes() };
      samples.push(row);
      console.log(`${String(row.t).padStart(8)} | ${mb(row.rss).padStart(9)} | ${String(rib).padStart(16)} | ${String(sink.received.size).padStart(10)} | ${round}`);
      nextSample += SAMPLE_MS;
    }
    await sleep(1000);
  }

  // Settle: the sink must end with exactly the table, each prefix with its last
  // attributes (the community of the round it was last announced in; MED is
  // not passed on to another AS).
  await waitFor(() => queue.length === 0, { what: "the injector's queue to empty", timeoutMs: 60_000, intervalMs: 100 });
  const lastCommunity = (a: PathAttributes) => a.communities[a.communities.length - 1];
  const stale = () => {
    let bad = 0;
    groups.forEach((grp, i) => {
      for (const p of grp.prefixes) {
        const got = sink.received.get(prefixToString(p));
        if (!got || lastCommunity(got) !== lastCommunity(current[i]!)) bad++;
      }
    });
    return bad;
  };
  let mismatch = -1;
  await waitFor(() => sink.received.size === total && (mismatch = stale()) === 0, {
    what: "the sink to hold the whole table with the last attributes",
    timeoutMs: 60_000,
    intervalMs: 500,
    detail: () => `sink holds ${sink.received.size} of ${total}; ${mismatch} prefixes without their last attributes`,
  }).catch((e: Error) => console.error(e.message));

  // The daemon's RSS is a sawtooth: garbage collections, and bounded caches
  // that fill under churn and are then cleared (the Adj-RIB-Out's table of
  // outgoing attribute sets: about ten minutes per cycle at the default
  // churn). Single samples and peaks say little; what must not grow is the
  // mean over a window of a whole cycle: the mean of the first window after
  // the warm-up against the mean of the last window, windows of
  // min(600 s, half the time after the warm-up).
  const window = Math.min(600, (SECONDS - WARMUP) / 2);
  const first = samples.filter((x) => x.t >= WARMUP && x.t < WARMUP + window).map((x) => x.rss);
  const lastW = samples.filter((x) => x.t >= SECONDS - window).map((x) => x.rss);
  const post = samples.filter((x) => x.t >= WARMUP).map((x) => x.rss);
  const mean = (xs: number[]) => xs.reduce((acc, x) => acc + x, 0) / xs.length;
  const base = mean(first);
  const end = mean(lastW);
  const growth = end / base - 1;
  console.log(
    `\nsoak ${SECONDS} s, ${round} rounds of ${CHURN} prefixes withdrawn and re-announced: mean RSS over the first ${window} s after the warm-up (${WARMUP} s) ${mb(base)} MB, over the last ${window} s ${mb(end)} MB (${growth >= 0 ? "+" : ""}${(growth * 100).toFixed(1)}%, bound +${(MAX_GROWTH * 100).toFixed(0)}%); after the warm-up RSS ranged ${mb(Math.min(...post))}–${mb(Math.max(...post))} MB; sessions reset: injector ${inj.downs}, sink ${sink.downs}`,
  );
  const failures: string[] = [];
  if (!(growth <= MAX_GROWTH)) failures.push(`RSS grew ${(growth * 100).toFixed(1)}% after the warm-up (bound ${(MAX_GROWTH * 100).toFixed(0)}%)`);
  if (inj.downs || sink.downs) failures.push(`sessions went down: injector ${inj.downs}, sink ${sink.downs} (${[...inj.history, ...sink.history].join("; ")})`);
  if (mismatch !== 0) failures.push(`the sink does not hold the injector's table with its last attributes (${sink.received.size} of ${total} prefixes, ${mismatch} stale)`);
  if (!daemon.alive) failures.push("the daemon is not running");
  for (const f of failures) console.error(`FAIL: ${f}`);
  if (!failures.length) console.log("PASS");
  return failures.length ? 1 : 0;
}

/** The community of churn round `r`: INJ_AS:r (mod 65536). */
function roundCommunity(r: number): number {
  return ((INJ_AS << 16) | (r % 65536)) >>> 0;
}

let code = 1;
try {
  code = await main();
} catch (e) {
  console.error(`FAIL: ${e instanceof Error ? e.message : String(e)}`);
} finally {
  for (const c of cleanups) await c();
}
process.exit(code);
