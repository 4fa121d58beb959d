/**
 * FIB programming benchmark (root; not part of the test suite, no timed
 * assertions): install N /32 routes (default 500,000; `--routes N`) with
 * ffi/rtnetlink.ts `apply()` and with `ip -batch`, each in a fresh network
 * namespace, then remove them the same way, and print both times and the
 * ratio (target: apply() at least 3× faster).
 *
 *   bun tests/bench/fib.ts [--routes N] [--chunk N] [--batch-bytes N]
 *
 * apply() is called with `--chunk` operations at a time (default: all in one
 * call; it batches internally into sends of `--batch-bytes`). Times cover
 * encoding and the kernel's work, not building the operation objects. The
 * /32 destinations come from 10.0.0.0/8 (the documentation ranges hold too
 * few addresses for 500k /32s); they live only in a namespace made for the
 * run, whose only link is a veth pair with 192.0.2.1/24, and the gateway
 * is 192.0.2.2. Each install is checked by counting the table afterwards.
 * The bench re-runs itself as `--child` inside the namespace for the
 * apply() half.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KernelOp, KernelRoute } from "../../lib/fib/types.ts";

const TABLE = 1000;
const PROTO = 200;
const GATEWAY = "192.0.2.2";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name}: expected a positive integer, got ${process.argv[i + 1]}`);
  return v;
}

const N = arg("--routes", 500_000);
const CHUNK = arg("--chunk", N);
const BATCH_BYTES = arg("--batch-bytes", 256 * 1024);
if (N > 1 << 24) throw new Error("--routes: at most 16777216 (10.0.0.0/8)");

const dst = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`;

// ---------------------------------------------------------------------------
// Child: inside the namespace, drive RtNetlink
// ---------------------------------------------------------------------------

async function child(): Promise<void> {
  const { RtNetlink } = await import("../../ffi/rtnetlink.ts");
  const k = await RtNetlink.open({ batchBytes: BATCH_BYTES });
  const routes: KernelRoute[] = [];
  for (let i = 0; i < N; i++) routes.push({ family: 4, prefix: dst(i), table: TABLE, protocol: PROTO, metric: 0, type: 1, nextHops: [{ gateway: GATEWAY }] });
  const run = async (ops: KernelOp[]): Promise<{ ms: number; errors: number; first?: unknown }> => {
    const t = performance.now();
    let errors = 0;
    let first: unknown;
    for (let i = 0; i < ops.length; i += CHUNK) {
      const res = await k.apply(ops.slice(i, i + CHUNK));
      for (const r of res) {
        if (r) {
          errors++;
          first ??= r;
        }
      }
    }
    return { ms: performance.now() - t, errors, first };
  };
  const add = await run(routes.map((route) => ({ op: "replace", route })));
  let t = performance.now();
  const installed = (await k.dumpRoutes(4, { table: TABLE, protocol: PROTO })).length;
  const dumpMs = performance.now() - t;
  const del = await run(routes.map((route) => ({ op: "delete", route })));
  t = performance.now();
  const left = (await k.dumpRoutes(4, { table: TABLE, protocol: PROTO })).length;
  const limits = k.limits;
  k.close();
  process.stdout.write(`${JSON.stringify({ add, installed, dumpMs, del, left, limits })}\n`);
}

// ---------------------------------------------------------------------------
// Parent: namespaces, ip -batch, report
// ---------------------------------------------------------------------------

const created: string[] = [];

function sh(argv: string[], timeoutMs = 600_000): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

function freshNamespace(tag: string): string {
  const ns = `bgpctl-bench-${process.pid}-${tag}`;
  sh(["ip", "netns", "add", ns]);
  created.push(ns);
  const ip = (...a: string[]) => sh(["ip", "-n", ns, ...a]);
  ip("link", "set", "lo", "up");
  ip("link", "add", "veth0a", "type", "veth", "peer", "name", "veth0b");
  ip("link", "set", "veth0a", "up");
  ip("link", "set", "veth0b", "up");
  ip("addr", "add", "192.0.2.1/24", "dev", "veth0a");
  return ns;
}

function cleanup(): void {
  for (const ns of created.splice(0)) Bun.spawnSync(["ip", "netns", "del", ns], { stdout: "ignore", stderr: "ignore" });
}

function countRoutes(ns: string): number {
  const out = sh(["ip", "-n", ns, "route", "show", "table", String(TABLE), "proto", String(PROTO)]);
  let n = 0;
  for (let i = out.indexOf("\n"); i >= 0; i = out.indexOf("\n", i + 1)) n++;
  return n;
}

function timeIpBatch(ns: string, lines: string[], dir: string, name: string): number {
  const file = join(dir, name);
  writeFileSync(file, lines.join("\n") + "\n");
  const t = performance.now();
  sh(["ip", "-n", ns, "-batch", file]);
  return performance.now() - t;
}

const rate = (n: number, ms: number) => `${Math.round(n / (ms / 1000)).toLocaleString("en-US")}/s`;

async function parent(): Promise<void> {
  if (process.getuid?.() !== 0) {
    console.error("tests/bench/fib.ts needs root (network namespaces, routes)");
    process.exit(2);
  }
  process.on("SIGINT", () => {
    cleanup();
    process.exit(130);
  });
  const dir = mkdtempSync(join(tmpdir(), "bgpctl-fib-bench-"));
  try {
    console.log(`FIB bench: ${N.toLocaleString("en-US")} /32 routes via ${GATEWAY}, table ${TABLE}, proto ${PROTO}; apply() chunk ${CHUNK.toLocaleString("en-US")}, batch ${BATCH_BYTES} bytes`);

    // ours
    const nsA = freshNamespace("ffi");
    const r = Bun.spawnSync(
      ["ip", "netns", "exec", nsA, process.execPath, import.meta.path, "--child", "--routes", String(N), "--chunk", String(CHUNK), "--batch-bytes", String(BATCH_BYTES)],
      { stdout: "pipe", stderr: "pipe", timeout: 1_800_000 },
    );
    if (r.exitCode !== 0) throw new Error(`child failed (${r.exitCode}): ${r.stderr.toString()}`);
    const lines = r.stdout.toString().trim().split("\n");
    const res = JSON.parse(lines[lines.length - 1]!) as {
      add: { ms: number; errors: number; first?: unknown };
      installed: number;
      dumpMs: number;
      del: { ms: number; errors: number; first?: unknown };
      left: number;
      limits: unknown;
    };
    if (res.add.errors || res.installed !== N) throw new Error(`apply() install: ${res.add.errors} errors (first ${JSON.stringify(res.add.first)}), ${res.installed} installed of ${N}`);
    if (res.del.errors || res.left !== 0) throw new Error(`apply() removal: ${res.del.errors} errors (first ${JSON.stringify(res.del.first)}), ${res.left} left`);
    cleanup();

    // ip -batch
    const nsB = freshNamespace("ip");
    const adds: string[] = [];
    const dels: string[] = [];
    for (let i = 0; i < N; i++) {
      adds.push(`route replace ${dst(i)} via ${GATEWAY} table ${TABLE} proto ${PROTO}`);
      dels.push(`route del ${dst(i)} table ${TABLE} proto ${PROTO}`);
    }
    const ipAdd = timeIpBatch(nsB, adds, dir, "add.batch");
    const ipInstalled = countRoutes(nsB);
    if (ipInstalled !== N) throw new Error(`ip -batch installed ${ipInstalled} of ${N}`);
    const ipDel = timeIpBatch(nsB, dels, dir, "del.batch");
    const ipLeft = countRoutes(nsB);
    if (ipLeft !== 0) throw new Error(`ip -batch left ${ipLeft} routes`);
    cleanup();

    const row = (what: string, ms: number) => `  ${what.padEnd(28)} ${(ms / 1000).toFixed(2).padStart(7)} s  ${rate(N, ms).padStart(12)}`;
    console.log("install:");
    console.log(row("apply() (rtnetlink, batched)", res.add.ms));
    console.log(row("ip -batch (route replace)", ipAdd));
    console.log(`  ratio: ${(ipAdd / res.add.ms).toFixed(2)}x faster`);
    console.log("remove:");
    console.log(row("apply() (rtnetlink, batched)", res.del.ms));
    console.log(row("ip -batch (route del)", ipDel));
    console.log(`  ratio: ${(ipDel / res.del.ms).toFixed(2)}x faster`);
    console.log(`dump of ${N.toLocaleString("en-US")} routes (dumpRoutes, table+proto filter): ${(res.dumpMs / 1000).toFixed(2)} s`);
    console.log(`socket limits: ${JSON.stringify(res.limits)}`);
  } finally {
    cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv.includes("--child")) await child();
else await parent();
