/**
 * The Kubernetes-scale scenario's API server: the test emulator
 * (tests/k8s/emulator.ts) as its own process, loaded in-process with the
 * generated cluster (tests/bench/k8s-cluster.ts) before it answers anyone,
 * so that loading 45,000 objects does not cost 45,000 control requests.
 * Plain HTTP with one bearer token; the orchestrator makes its timed changes
 * over the unix-socket control listener (`EmulatorControl`).
 *
 * Prints `ready URL OBJECTS LOAD_MS` once listening and loaded; exits on
 * SIGTERM/SIGINT.
 *
 *   bun tests/bench/k8s-api.ts --listen ADDR:PORT --unix PATH --token T
 *     --nodes N --services N --daemon-addr ADDR
 */
import { KubeEmulator } from "../k8s/emulator.ts";
import { clusterObjects } from "./k8s-cluster.ts";

function fail(msg: string): never {
  process.stderr.write(`k8s-api: ${msg}\n`);
  process.exit(2);
}

const argv = process.argv.slice(2);
function opt(name: string): string {
  const i = argv.indexOf(`--${name}`);
  const v = i >= 0 ? argv[i + 1] : undefined;
  if (v === undefined) fail(`--${name} is required`);
  return v;
}
const m = /^([^:]+):(\d+)$/.exec(opt("listen"));
if (!m) fail(`--listen: expected ADDR:PORT, got ${opt("listen")}`);
const size = { nodes: Number(opt("nodes")), services: Number(opt("services")) };

const emu = await KubeEmulator.start({ hostname: m[1], port: Number(m[2]), unixSocket: opt("unix"), tokens: [opt("token")], compactionWindow: 10_000 });
// Loading happens before the client can connect (the daemon starts after `ready`),
// so one synchronous loop is fine here.
const t = performance.now();
let n = 0;
for (const { resource, object } of clusterObjects(size, opt("daemon-addr"), { dressed: true })) {
  emu.create(resource, object);
  n++;
}
process.stdout.write(`ready ${emu.url} ${n} ${Math.round(performance.now() - t)}\n`);

let stopping = false;
const stop = () => {
  if (stopping) return;
  stopping = true;
  const hard = setTimeout(() => process.exit(0), 3000);
  void emu.stop().finally(() => {
    clearTimeout(hard);
    process.exit(0);
  });
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
