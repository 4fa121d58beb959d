/**
 * The README's first command: `npm start` on the embedded default
 * (examples/loopback-a.yaml, examples/loopback-b.yaml) runs two daemons on
 * loopback that exchange their routes, shows them, and stops cleanly.
 * Loopback only; no root needed. The demo works in /tmp/bgpctl-demo (the
 * examples' control sockets); what this run leaves there (B's graceful-restart
 * marker, the directory itself when it was not there before) is removed.
 */
import { expect, test } from "bun:test";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";

const DEMO = "/tmp/bgpctl-demo";

test("npm start: two loopback daemons exchange routes; B stops gracefully (A keeps its route, stale), A shuts down", async () => {
  const root = join(import.meta.dir, "../..");
  const had = existsSync(DEMO) ? new Set(readdirSync(DEMO)) : null;
  try {
    await runDemo(root);
  } finally {
    if (had === null) rmSync(DEMO, { recursive: true, force: true });
    else if (existsSync(DEMO)) for (const f of readdirSync(DEMO)) if (!had.has(f)) rmSync(join(DEMO, f), { force: true });
  }
}, 90_000);

async function runDemo(root: string): Promise<void> {
  const p = Bun.spawn(["npm", "start"], {
    cwd: root,
    env: { ...process.env, BGPCTL_DEMO_SECONDS: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  clearTimeout(timer);
  expect(err + out).not.toContain("did not exchange");
  expect(code).toBe(0);
  // Router A's table has B's route learned over eBGP, and B's has A's, with communities.
  expect(out).toMatch(/\*>\s+203\.0\.113\.0\/24\s+127\.0\.0\.2\s.*65002\s+i\s+65002:200/);
  expect(out).toMatch(/\*>\s+198\.51\.100\.0\/24\s+127\.0\.0\.1\s.*65001\s+i\s+65001:100 65001:1:1/);
  expect(out).toMatch(/127\.0\.0\.2\s+65002\s.*\s1\s*$/m); // show summary: Established, 1 prefix
  expect(out).toContain("[B] "); // B's log lines reach the output
  expect(out).toMatch(/\[B\] .*stopping \(graceful restart\)/);
  expect(out).toMatch(/\[A\] .*graceful restart \(connection lost\): keeping its .* routes as stale/);
  expect(out).toMatch(/\*>S\s+203\.0\.113\.0\/24\s+127\.0\.0\.2/); // A's table: B's route kept, stale
  expect(out).toMatch(/\[A\] .*shutting down: closing sessions/);
  expect(out).toContain("demo done");
}
