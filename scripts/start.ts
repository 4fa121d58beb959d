/**
 * `npm start`: the main job on an embedded default. Builds dist/bgpctl if
 * needed, then runs two speakers on loopback (127.0.0.1 passive on an
 * unprivileged port, 127.0.0.2 connecting to it), each announcing a prefix
 * with communities; shows the routes crossing, then stops one side so the
 * other prints the Cease with its shutdown message. No root, no external router.
 */
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const bin = join(root, "dist/bgpctl");
const port = process.env.BGPCTL_DEMO_PORT ?? "17179";

{
  console.log("building dist/bgpctl ...");
  const b = Bun.spawnSync([process.execPath, "build", "--compile", "main.ts", "--outfile", "dist/bgpctl"], { cwd: root, stdout: "inherit", stderr: "inherit" });
  if (b.exitCode !== 0) process.exit(1);
}

const a = ["peer", "127.0.0.2", "--passive", "--local-address", "127.0.0.1", "--port", port, "--local-as", "65001", "--remote-as", "65002",
  "--family", "ipv4", "--advertise", "198.51.100.0/24", "--community", "65001:100", "--large-community", "65001:1:1"];
const b = ["peer", "127.0.0.1", "--local-address", "127.0.0.2", "--port", port, "--local-as", "65002", "--remote-as", "65001",
  "--family", "ipv4", "--advertise", "203.0.113.0/24", "--community", "65002:200", "--shutdown-message", "demo finished"];

console.log(`$ bgpctl ${a.join(" ")}`);
console.log(`$ bgpctl ${b.join(" ")}\n`);

let sawA = false;
let sawB = false;
let sawCease = false;
async function pump(name: string, p: Bun.Subprocess<"ignore", "pipe", "pipe">, onLine: (l: string) => void) {
  const dec = new TextDecoder();
  let rest = "";
  for await (const chunk of p.stdout) {
    rest += dec.decode(chunk);
    let i: number;
    while ((i = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, i);
      rest = rest.slice(i + 1);
      console.log(`[${name}] ${line}`);
      onLine(line);
    }
  }
}
const pa = Bun.spawn([bin, ...a], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
await Bun.sleep(300);
const pb = Bun.spawn([bin, ...b], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
void pump("A", pa, (l) => {
  if (l.includes("+ 203.0.113.0/24")) sawA = true;
  if (l.includes("notification received") && l.includes("demo finished")) sawCease = true;
});
void pump("B", pb, (l) => {
  if (l.includes("+ 198.51.100.0/24")) sawB = true;
});

const deadline = Date.now() + 20_000;
while (!(sawA && sawB) && Date.now() < deadline) await Bun.sleep(100);
if (sawA && sawB) {
  console.log("\nboth routes crossed; stopping B (SIGTERM) ...\n");
  pb.kill("SIGTERM");
  await pb.exited;
  const d2 = Date.now() + 5_000;
  while (!sawCease && Date.now() < d2) await Bun.sleep(100);
}
pa.kill("SIGTERM");
pb.kill("SIGTERM");
await Promise.all([pa.exited, pb.exited]);
const ok = sawA && sawB && sawCease;
if (!ok) {
  console.error(`\ndemo failed: A got B's route: ${sawA}, B got A's route: ${sawB}, A saw B's shutdown: ${sawCease}`);
  console.error(await new Response(pa.stderr).text(), await new Response(pb.stderr).text());
}
console.log(ok ? "\ndemo done. Next: peer with BIRD (README, 'Peer with BIRD, step by step')." : "");
process.exit(ok ? 0 : 1);
