/**
 * The README's "Peer with BIRD, step by step", run as written: BIRD loads
 * examples/bird/bird.conf, bgpctl runs the `bgpctl peer ...` command copied
 * from the README, and what the README says appears on both sides does.
 *
 *   namespace a (bgpctl) 192.0.2.1/24  <-veth->  192.0.2.2/24 namespace b (BIRD)
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { BGPCTL_BIN, BirdInstance, REPO_ROOT, createPair, ensureBinary, type PairTopology } from "./lab.ts";

let t: PairTopology;

beforeAll(async () => {
  await ensureBinary();
  t = await createPair("readme");
}, 600_000);

afterAll(async () => {
  await t?.lab.stopAll();
  await t?.lab.cleanup();
});

/** The `bgpctl peer ...` command of the README's BIRD walkthrough, as argv. */
function readmeCommand(): string[] {
  const md = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
  const section = md.slice(md.indexOf("## Peer with BIRD, step by step"));
  const m = /```sh\n\s*(bgpctl peer [^`]*?)\n\s*```/.exec(section);
  if (!m) throw new Error("README: no `bgpctl peer` command in the BIRD walkthrough");
  return m[1]!.replace(/\\\n\s*/g, " ").trim().split(/\s+/);
}

test("README walkthrough: examples/bird/bird.conf + the README's bgpctl command exchange routes with communities", async () => {
  const conf = join(REPO_ROOT, "examples/bird/bird.conf");
  expect(readFileSync(conf, "utf8")).toContain("neighbor 192.0.2.1 as 65001");
  const bird = await BirdInstance.startWithConfig(t.lab, t.b, conf, "bird-readme");
  const argv = readmeCommand();
  expect(argv.slice(0, 3)).toEqual(["bgpctl", "peer", "192.0.2.2"]);
  const proc = t.lab.spawn(t.a, [BGPCTL_BIN, ...argv.slice(1)], { name: "bgpctl-readme" });
  // bgpctl side: the README's sample lines.
  await t.lab.waitFor(() => /\+ 198\.51\.100\.0\/24 via 192\.0\.2\.2 as-path 65002 origin igp/.test(proc.text("stdout")) && /end-of-rib ipv4-unicast/.test(proc.text("stdout")), {
    timeoutMs: 20_000,
    what: "bgpctl to print BIRD's route and End-of-RIB",
    procs: [proc, bird.proc],
  });
  expect(proc.text("stdout")).toMatch(/state OpenConfirm -> Established/);
  expect(proc.text("stdout")).toMatch(/end-of-rib ipv4-unicast/);
  // BIRD side: 203.0.113.0/24 with the community and large community.
  const routes = await t.lab.waitFor(
    async () => {
      const rs = await bird.routes({ protocol: "bgpctl" });
      return rs.some((r) => r.prefix === "203.0.113.0/24") ? rs : null;
    },
    { timeoutMs: 15_000, what: "BIRD to import 203.0.113.0/24" },
  );
  const r = routes.find((x) => x.prefix === "203.0.113.0/24")!;
  expect(r.communities).toEqual(["65001:100"]);
  expect(r.largeCommunities).toEqual(["65001:1:2"]);
  const show = await bird.command("show", "route", "protocol", "bgpctl", "all");
  expect(show).toContain("BGP.community: (65001,100)");
  expect(show).toContain("BGP.large_community: (65001, 1, 2)");
  // Ctrl-C: Cease/Administrative Shutdown with a message, shown by BIRD.
  proc.signal("SIGINT");
  expect(await proc.waitExit(10_000)).toBe(true);
  expect(proc.exitCode).toBe(0);
  const info = await t.lab.waitFor(
    async () => {
      const s = await bird.command("show", "protocols", "all", "bgpctl");
      return /Administrative shutdown/i.test(s) ? s : null;
    },
    { timeoutMs: 10_000, what: "BIRD to show the administrative shutdown" },
  );
  expect(info).toMatch(/bgpctl peer stopped/);
}, 60_000);
