/**
 * A reload storm (issue 10 §5): one `bgpctl run` on loopback with a source
 * peer streaming route changes (announce with new attributes, withdraw) and
 * two receiving peers, while the daemon gets 50 SIGHUPs in about 5 s: every
 * other one with a change for one peer only (its description, its export
 * policy), every tenth an invalid file (rejected, nothing touched), the rest
 * the same file again. At the end (one last valid reload through the control
 * socket) every route is where it should be — the Loc-RIB and both receivers
 * hold exactly the source's final table, the policy-bound receiver only what
 * its final policy lets through, each with its latest attributes — no
 * session was ever reset (the peers' own FSMs count it, and the daemon's
 * uptimes agree), and the daemon is alive and answers.
 * Loopback only (127.0.0.0/8), port 17430; no root needed.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { TestPeer, pathFrom } from "../support/bgp-peer.ts";
import { Daemon } from "../support/daemon.ts";
import { tempDirs } from "../support/tmp.ts";
import { waitFor } from "../support/wait.ts";

const PORT = 17430;
const HOST = "127.0.0.1";
const AS = 65000;
const SRC = { addr: "127.0.0.2", as: 65002 };
const DST1 = { addr: "127.0.0.3", as: 65003 };
/** The peer whose settings the storm changes. */
const DST2 = { addr: "127.0.0.4", as: 65004 };
const RELOADS = 50;
/** The source's prefixes: 203.0.113.0/32 … 203.0.113.255/32 and 198.51.100.0/32 … 198.51.100.255/32. */
const PREFIXES = [...Array.from({ length: 256 }, (_, i) => `203.0.113.${i}/32`), ...Array.from({ length: 256 }, (_, i) => `198.51.100.${i}/32`)];
/** Community marking the routes DST2's "odd" export policy lets through. */
const ODD = ((SRC.as << 16) | 1) >>> 0;

const tmp = tempDirs("bgpctl-storm-");
let daemon: Daemon;
let src: TestPeer;
let dst1: TestPeer;
let dst2: TestPeer;

interface Version {
  description: string;
  /** DST2's export: everything, or only routes with community 65002:1. */
  export: "all" | "odd";
  /** Write a file the daemon must reject. */
  invalid?: boolean;
}

function config(sock: string, v: Version): string {
  const peer = (p: { addr: string; as: number }, extra: string) => `  - {address: ${p.addr}, remoteAs: ${p.as}, passive: true, families: [ipv4], ${extra}}`;
  return [
    `asn: ${AS}`,
    `routerId: 192.0.2.100`,
    `listen: {address: ${HOST}, port: ${PORT}}`,
    `controlSocket: ${sock}`,
    `log: {level: info}`,
    `policies:`,
    `  odd:`,
    `    terms:`,
    `      - {name: odd, match: {community: ["${SRC.as}:1"]}, action: accept}`,
    `    default: reject`,
    `peers:`,
    peer(SRC, "import: all, export: none, description: source"),
    peer(DST1, "import: none, export: all, description: unaffected"),
    // The invalid file: a misspelt key in the changed peer (the whole file is rejected).
    peer(DST2, `import: none, export: ${v.export === "odd" ? "odd" : "all"}, ${v.invalid ? "remoteAS: 1, " : ""}description: "${v.description}"`),
    "",
  ].join("\n");
}

beforeAll(async () => {
  const dir = tmp();
  daemon = new Daemon(dir, config(Daemon.socketIn(dir), { description: "start", export: "all" }));
  await daemon.ready();
  const mk = (p: { addr: string; as: number }) => new TestPeer({ local: p.addr, daemon: HOST, port: PORT, localAs: p.as, daemonAs: AS, families: [{ afi: 1, safi: 1 }] }).start();
  src = mk(SRC);
  dst1 = mk(DST1);
  dst2 = mk(DST2);
  await Promise.all([src.waitEstablished(), dst1.waitEstablished(), dst2.waitEstablished()]);
}, 30_000);

afterAll(async () => {
  await Promise.all([src?.stop(), dst1?.stop(), dst2?.stop()]);
  await daemon?.stop();
});

test(
  "50 SIGHUPs while routes flow (half change one peer, some invalid): no route lost, no session reset, the daemon answers",
  async () => {
    // What the source holds now: prefix -> [community (65002:0 or 65002:1), MED].
    const table = new Map<string, [number, number]>();
    let seq = 0;
    const announce = (ps: string[]) => {
      for (const p of ps) {
        const community = ((SRC.as << 16) | (seq & 1)) >>> 0;
        const med = seq++;
        table.set(p, [community, med]);
        expect(src.announce([p], pathFrom(SRC.as, { communities: [community], med }))).toBe(true);
      }
    };
    announce(PREFIXES);
    await waitFor(() => dst1.received.size === PREFIXES.length, { what: "DST1 to hold the whole initial table", timeoutMs: 10_000, intervalMs: 20, detail: () => daemon.logTail() });
    const since = Date.now();

    // The route stream: every 20 ms, 8 prefixes re-announced with new attributes or withdrawn.
    let streaming = true;
    let changes = 0;
    let rnd = 12345;
    const rand = (n: number) => ((rnd = (rnd * 1103515245 + 12345) & 0x7fffffff) % n);
    const stream = (async () => {
      while (streaming) {
        const ps = Array.from({ length: 8 }, () => PREFIXES[rand(PREFIXES.length)]!);
        const gone = ps.filter((_, i) => i % 3 === 0);
        const fresh = ps.filter((p, i) => i % 3 !== 0 && !gone.includes(p));
        for (const p of gone) table.delete(p);
        expect(src.withdraw(gone)).toBe(true);
        announce(fresh);
        changes += ps.length;
        await Bun.sleep(20);
      }
    })();

    // The storm: 50 SIGHUPs, 100 ms apart.
    let last: Version = { description: "start", export: "all" };
    let invalid = 0;
    for (let i = 0; i < RELOADS; i++) {
      let v: Version;
      if (i % 10 === 9) {
        v = { ...last, description: `broken ${i}`, invalid: true };
        invalid++;
      } else if (i % 2 === 0) {
        // A change for DST2 only: its description every time, its export policy every other time.
        v = { description: `storm ${i}`, export: i % 4 === 0 ? (last.export === "all" ? "odd" : "all") : last.export };
        last = v;
      } else v = last;
      daemon.writeConfig(config(daemon.socket, v));
      daemon.reload();
      await Bun.sleep(100);
      expect(daemon.alive, `the daemon runs after SIGHUP ${i + 1}`).toBe(true);
    }
    streaming = false;
    await stream;

    // One last valid reload through the control socket, so the final file is known to be in force.
    const final: Version = { description: "final", export: "odd" };
    daemon.writeConfig(config(daemon.socket, final));
    await waitFor(async () => (await daemon.api.reload()) && true, { what: "the final reload to be accepted", timeoutMs: 10_000, intervalMs: 100, retryErrors: true });

    // Every route where it should be, with its latest attributes.
    const want = (filter: (c: number) => boolean) => [...table].filter(([, [c]]) => filter(c)).map(([p, [c]]) => `${p} ${c}`).sort();
    const held = (peer: TestPeer) => [...peer.received].map(([p, a]) => `${p} ${a.communities.join(",")}`).sort();
    const all = want(() => true);
    const odd = want((c) => c === ODD);
    let ribNow: string[] = [];
    await waitFor(
      async () => {
        ribNow = (await daemon.rib()).filter((e) => e.peer === SRC.addr).map((e) => `${e.prefix} ${e.med}`).sort();
        return held(dst1).join() === all.join() && held(dst2).join() === odd.join() && ribNow.length === table.size;
      },
      {
        what: "the Loc-RIB, DST1 and DST2 to hold the source's final table",
        timeoutMs: 20_000,
        intervalMs: 100,
        detail: () => `table ${table.size}, Loc-RIB ${ribNow.length}, DST1 ${dst1.received.size} (want ${all.length}), DST2 ${dst2.received.size} (want ${odd.length})\n${daemon.logTail()}`,
      },
    );
    expect(ribNow).toEqual([...table].map(([p, [, med]]) => `${p} ${med}`).sort());
    expect(held(dst1)).toEqual(all);
    expect(held(dst2)).toEqual(odd);
    expect(odd.length).toBeGreaterThan(0);
    expect(odd.length).toBeLessThan(all.length);

    // No session was ever reset: the peers' own FSMs, and the daemon's uptimes.
    for (const p of [src, dst1, dst2]) expect({ peer: p.o.local, downs: p.downs, established: p.established }).toEqual({ peer: p.o.local, downs: 0, established: 1 });
    const ns = await daemon.neighbors();
    const up = Math.floor((Date.now() - since) / 1000);
    for (const n of ns) {
      expect(n.state).toBe("Established");
      expect(n.uptimeSeconds).toBeGreaterThanOrEqual(up - 1);
    }
    expect(ns.find((n) => n.address === DST2.addr)?.description).toBe("final");
    expect(ns.find((n) => n.address === DST1.addr)?.description).toBe("unaffected");
    // The invalid files were rejected with a log record each time one was read (reloads run one at a time, so some SIGHUPs may fold into one).
    const rejected = daemon.log().match(/reload rejected/g)?.length ?? 0;
    expect(rejected).toBeGreaterThanOrEqual(1);
    expect(rejected).toBeLessThanOrEqual(invalid);
    expect(daemon.alive).toBe(true);
    expect((await daemon.api.summary()).neighbors.length).toBe(3);
    console.log(`reload storm: ${RELOADS} SIGHUPs (${invalid} invalid, ${rejected} rejections logged) during ${changes} route changes; ${table.size} routes at the end, ${odd.length} through DST2's policy`);
  },
  60_000,
);
