/**
 * `npm start`: the main job on an embedded default. Builds dist/bgpctl, runs
 * two `bgpctl run` daemons on loopback (examples/loopback-a.yaml and -b.yaml:
 * unprivileged ports, no root, no external router), waits until each has the
 * other's route, shows `show summary` and `show rib`, then keeps running
 * until Ctrl-C (or BGPCTL_DEMO_SECONDS seconds). Then B stops as in a
 * graceful restart (SIGTERM): A keeps B's route, marked stale (`S`); and A
 * stops for good (`bgpctl shutdown`).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { buildCommand } from "./build-command.ts";

const root = join(import.meta.dir, "..");
const bin = join(root, "dist/bgpctl");
const confA = join(root, "examples/loopback-a.yaml");
const confB = join(root, "examples/loopback-b.yaml");
const sockA = "/tmp/bgpctl-demo/a.sock";
const sockB = "/tmp/bgpctl-demo/b.sock";

console.log("building dist/bgpctl ...");
if (Bun.spawnSync(buildCommand(root, process.execPath), { cwd: root, stdout: "ignore", stderr: "inherit" }).exitCode !== 0) process.exit(1);
mkdirSync("/tmp/bgpctl-demo", { recursive: true });

function daemon(name: string, conf: string) {
  console.log(`$ bgpctl run --config ${conf.slice(root.length + 1)}`);
  // A process group of its own: Ctrl-C reaches this script alone, which stops B and then A in its own way.
  const p = Bun.spawn([bin, "run", "--config", conf], { stdout: "inherit", stderr: "pipe", stdin: "ignore", detached: true });
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of p.stderr) for (const l of dec.decode(c).split("\n")) if (l) console.log(`[${name}] ${l}`);
  })();
  return p;
}
function ctl(args: string[]): { ok: boolean; out: string } {
  const r = Bun.spawnSync([bin, ...args], { stdout: "pipe", stderr: "pipe" });
  return { ok: r.exitCode === 0, out: r.stdout.toString() + r.stderr.toString() };
}
function show(args: string[]) {
  console.log(`\n$ bgpctl ${args.join(" ")}`);
  console.log(ctl(args).out.trimEnd());
}

const a = daemon("A", confA);
const b = daemon("B", confB);
const stopAll = async () => {
  if (b.exitCode === null) {
    b.kill("SIGTERM"); // a graceful restart: A keeps B's routes, stale
    await b.exited;
    for (let i = 0; i < 50 && !ctl(["show", "rib", "203.0.113.0/24", "-s", sockA, "-j"]).out.includes('"stale":true'); i++) await Bun.sleep(100);
    show(["show", "rib", "-s", sockA]);
  }
  if (a.exitCode === null && !ctl(["shutdown", "-s", sockA]).ok) a.kill("SIGKILL");
  await a.exited;
};
process.on("SIGINT", () => void stopAll().then(() => process.exit(0)));
process.on("SIGTERM", () => void stopAll().then(() => process.exit(0)));

const has = (sock: string, prefix: string) => {
  const r = ctl(["show", "rib", prefix, "-s", sock, "-j"]);
  return r.ok && r.out.includes(`"prefix":"${prefix}"`);
};
let ok = false;
for (let i = 0; i < 200 && !ok; i++) {
  await Bun.sleep(100);
  ok = has(sockA, "203.0.113.0/24") && has(sockB, "198.51.100.0/24");
}
if (!ok) {
  console.error("\nthe two routers did not exchange their routes within 20 s");
  await stopAll();
  process.exit(1);
}
show(["show", "summary", "-s", sockA]);
show(["show", "rib", "-s", sockA]);
show(["show", "rib", "-s", sockB]);
console.log(`
Both daemons are running. Try, in another terminal:
  dist/bgpctl show neighbors -s ${sockA}
  dist/bgpctl advertise 192.0.2.128/25 --community 65001:7 -s ${sockA}
  dist/bgpctl show rib -s ${sockB}
  dist/bgpctl monitor -s ${sockB}
Ctrl-C stops B as in a graceful restart (SIGTERM: A keeps its route, stale)
and A for good (bgpctl shutdown).`);
const secs = Number(process.env.BGPCTL_DEMO_SECONDS ?? 0);
if (secs > 0) {
  await Bun.sleep(secs * 1000);
  await stopAll();
  console.log("demo done");
  process.exit(0);
}
await Promise.all([a.exited, b.exited]);
