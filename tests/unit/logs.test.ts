/**
 * Logging fixes of issue 10 §4, each with a captured logger:
 * - one call is one record (a multi-line message is one text line), so a
 *   rejected reload listing several config errors is one log record;
 * - repetitive lines are rate-limited and summarised (LogRateLimiter), and
 *   3,000 refused connections from an unconfigured address give a handful
 *   of lines and one summary, not 3,000 lines;
 * - a received NOTIFICATION is logged once (in Established: the state-change
 *   line; before: one warning);
 * - `show neighbors` Last error: set when the session goes down, cleared
 *   when it is Established again.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import * as net from "node:net";
import { join } from "node:path";
import { Listener } from "../../lib/bgp/listener.ts";
import { parseConfig } from "../../lib/config/load.ts";
import { Log, LogRateLimiter, oneLine } from "../../lib/core/log.ts";
import { Router } from "../../lib/router/router.ts";
import { tempDirs } from "../support/tmp.ts";
import { sleep, waitFor } from "../support/wait.ts";

const A = "127.0.0.1";
const B = "127.0.0.2";
const dir = tempDirs("bgpctl-ops-logs-")();
const cleanup: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

describe("log: one call, one record", () => {
  test("text: a multi-line message is one line, its breaks shown as ' | '; JSON keeps the text", () => {
    const out: string[] = [];
    const log = new Log("info", "text", (l) => out.push(l));
    log.error("reload rejected:\n  a.yaml:1:1: first\n  a.yaml:2:1: second\n");
    expect(out).toHaveLength(1);
    expect(out[0]!.endsWith(" error reload rejected: | a.yaml:1:1: first | a.yaml:2:1: second\n")).toBe(true);
    expect(out[0]!.split("\n")).toHaveLength(2);
    const json: string[] = [];
    new Log("info", "json", (l) => json.push(l)).warn("a\nb");
    expect(JSON.parse(json[0]!).msg).toBe("a\nb");
    expect(oneLine("plain")).toBe("plain");
  });
});

describe("log: rate limiting of repetitive lines", () => {
  test("per key: the first lines of a window, then one summary with the count; other keys unaffected", async () => {
    const out: string[] = [];
    const rl = new LogRateLimiter((level, msg) => out.push(`${level} ${msg}`), 5, 200);
    for (let i = 0; i < 3000; i++) rl.line("x", "warn", `line ${i}`, "lines about x");
    rl.line("y", "info", "y once", "lines about y");
    expect(out).toEqual(["warn line 0", "warn line 1", "warn line 2", "warn line 3", "warn line 4", "info y once"]);
    await waitFor(() => out.length === 7, { timeoutMs: 2000, what: "the summary" });
    expect(out[6]).toBe("warn … 2995 more lines about x in the last 0.2 s");
    // A new window: lines pass again.
    rl.line("x", "warn", "again", "lines about x");
    expect(out[7]).toBe("warn again");
    rl.flush();
    expect(out).toHaveLength(8); // nothing was left out of that window
  });

  test("bounded keys: past maxKeys, further sources share one key", () => {
    const out: string[] = [];
    const rl = new LogRateLimiter((_l, msg) => out.push(msg), 1, 60_000, 3);
    for (let i = 0; i < 100; i++) rl.line(`k${i}`, "warn", `from k${i}`, `lines from k${i}`);
    expect(out).toEqual(["from k0", "from k1", "from k2", "from k3"]);
    rl.flush();
    expect(out.at(-1)).toMatch(/^… 96 more rate-limited lines \(too many distinct sources to track each\) in the last [\d.]+ s$/);
  });

  test("3,000 refused connections from 127.0.0.2: five lines and one summary", async () => {
    const lines: string[] = [];
    const l = new Listener();
    l.on("log", (e) => lines.push(`${e.level} ${e.msg}`));
    await l.listen({ address: A, port: 0 });
    cleanup.push(() => l.close());
    const port = l.port();
    const rejected: string[] = [];
    l.on("rejected", (e) => rejected.push(e.remoteAddress));
    const connectOnce = () =>
      new Promise<void>((resolve) => {
        const c = net.connect({ host: A, port, localAddress: B });
        c.on("error", () => resolve());
        c.on("close", () => resolve());
      });
    for (let i = 0; i < 3000; i += 100) await Promise.all(Array.from({ length: 100 }, connectOnce));
    await waitFor(() => rejected.length === 3000, { timeoutMs: 20_000, what: "3000 rejections", detail: () => `${rejected.length}` });
    const refused = lines.filter((x) => x.includes("127.0.0.2"));
    expect(refused).toHaveLength(5);
    expect(refused.every((x) => /^warn connection from unconfigured address 127\.0\.0\.2 \(port \d+\) refused$/.test(x))).toBe(true);
    await l.close(); // closing summarises what is pending
    const summary = lines.filter((x) => x.includes("more refused connections"));
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatch(/^warn … 2995 more refused connections from 127\.0\.0\.2 in the last [\d.]+ s$/);
    expect(lines.length).toBeLessThan(10);
  }, 60_000);
});

interface Node {
  router: Router;
  lines: string[];
  file: string;
  port: number;
  write(body: string): void;
}

let seq = 0;
async function node(address: string, asn: number, body: string): Promise<Node> {
  const file = join(dir, `l${++seq}.yaml`);
  const head = `asn: ${asn}\nrouterId: 192.0.2.${seq}\nlisten: {address: ${address}, port: 0}\ncontrolSocket: ${join(dir, `l${seq}.sock`)}\n`;
  const write = (b: string) => writeFileSync(file, head + b);
  write(body);
  const lines: string[] = [];
  const router = new Router(parseConfig(head + body, file), file, new Log("debug", "text", (l) => lines.push(l)));
  await router.start();
  cleanup.push(() => router.stop());
  return { router, lines, file, port: router.engine.listener.endpoints[0]!.port, write };
}

const stateOf = (r: Router, peer: string) => r.neighbors(peer)[0]!.state;

async function pair(aRemoteAs = 65002): Promise<{ a: Node; b: Node }> {
  const b = await node(B, 65002, `peers:\n  - {address: ${A}, remoteAs: 65001, passive: true, localAddress: ${B}, import: all, export: all}\n`);
  const a = await node(A, 65001, `peers:\n  - {address: ${B}, remoteAs: ${aRemoteAs}, port: ${b.port}, localAddress: ${A}, import: all, export: all, connectRetry: 1}\n`);
  return { a, b };
}

describe("log: a received NOTIFICATION is logged once", () => {
  test("Established: one line, the state change naming the NOTIFICATION", async () => {
    const { a, b } = await pair();
    await waitFor(() => stateOf(a.router, B) === "Established", { timeoutMs: 10_000, what: "A-B Established" });
    const from = a.lines.length;
    b.router.peerDown(A, "maintenance");
    await waitFor(() => stateOf(a.router, B) !== "Established", { timeoutMs: 5000, what: "A's session down" });
    await sleep(100);
    const about = a.lines.slice(from).filter((l) => l.includes("NOTIFICATION"));
    expect(about).toHaveLength(1);
    expect(about[0]).toMatch(/neighbor 127\.0\.0\.2 \(AS 65002\): Established -> \w+ \(received NOTIFICATION Cease\//);
  }, 20_000);

  test("before Established (a wrong AS in our OPEN): one warning per NOTIFICATION", async () => {
    const { a, b } = await pair(65009); // A expects AS 65009: it refuses B's OPEN (AS 65002) with a NOTIFICATION, which B receives in OpenConfirm
    await waitFor(() => a.lines.some((l) => l.includes("NOTIFICATION")), { timeoutMs: 10_000, what: "a NOTIFICATION in A's log" });
    await sleep(200);
    // A sends the NOTIFICATION (Bad Peer AS): "sent" once per attempt, no second line for the same message.
    const sent = a.lines.filter((l) => l.includes("sent NOTIFICATION"));
    const recvB = b.lines.filter((l) => l.includes("received NOTIFICATION"));
    expect(sent.length).toBeGreaterThanOrEqual(1);
    expect(recvB.length).toBeGreaterThanOrEqual(1);
    // Each received NOTIFICATION is one line at B (no FSM line repeating it).
    const attempts = b.router.peers.get(A)!.session.counters.in.notification;
    expect(recvB).toHaveLength(attempts);
    expect(recvB.every((l) => / warn neighbor 127\.0\.0\.1 \(AS 65001\): received NOTIFICATION OPEN Message Error\/Bad Peer AS/.test(l))).toBe(true);
  }, 20_000);
});

describe("log: a rejected reload is one record", () => {
  test("a file with two errors: one error line naming both, the running configuration unchanged", async () => {
    const { a } = await pair();
    const from = a.lines.length;
    a.write(`peers:\n  - {address: ${B}, remoteAs: 65002, port: 1}\nmrai: -1\nbogus: 1\n`);
    await expect(a.router.reload()).rejects.toThrow();
    const added = a.lines.slice(from);
    expect(added).toHaveLength(1);
    expect(added[0]).toMatch(/ error reload rejected, the running configuration stays in force: \| .*mrai.* \| .*bogus/);
    expect(a.router.config.peers[0]!.port).not.toBe(1);
  }, 20_000);
});

describe("show neighbors: Last error", () => {
  test("set when the session goes down, cleared when it is Established again", async () => {
    const { a, b } = await pair();
    await waitFor(() => stateOf(a.router, B) === "Established", { timeoutMs: 10_000, what: "A-B Established" });
    expect(a.router.neighbors(B)[0]!.lastError).toBeNull();
    b.router.peerDown(A, "maintenance");
    await waitFor(() => stateOf(a.router, B) !== "Established", { timeoutMs: 5000, what: "A's session down" });
    expect(a.router.neighbors(B)[0]!.lastError).toMatch(/^received Cease\//);
    b.router.peerUp(A);
    await waitFor(() => stateOf(a.router, B) === "Established", { timeoutMs: 15_000, what: "A-B Established again" });
    expect(a.router.neighbors(B)[0]!.lastError).toBeNull();
  }, 30_000);
});
