/**
 * watch-k8s at scale without holding the event loop: the derivation run in
 * slices of the shared slicer (a timer fires while it runs, the result is the
 * one-go derivation's), the cache between runs (a cached run after changes
 * gives exactly what a fresh one does; an unchanged advertisement is the
 * same object), the merge sort the derivation uses, and the reconfigurer's
 * sliced apply of tens of thousands of advertisements (timers fire in
 * between; an advertisement object seen before is still checked against a
 * local route the control API changed), and the controller against the API
 * emulator with thousands of Services.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseConfig } from "../../lib/config/load.ts";
import type { AdvertiseConfig, RouterConfig } from "../../lib/config/types.ts";
import { ManualClock } from "../../lib/core/clock.ts";
import { Log } from "../../lib/core/log.ts";
import { runSliced, slicer } from "../../lib/core/slices.ts";
import { DeriveCache, type DeriveInput, derive, deriveSliced, sortedBy } from "../../lib/k8s/derive.ts";
import type { EndpointSlice, Node, Service } from "../../lib/k8s/types.ts";
import { Router } from "../../lib/router/router.ts";
import { KubeController } from "../../lib/k8s/controller.ts";
import { BENCH_NODE, changes, clusterObjects, expectedPrefixes } from "../bench/k8s-cluster.ts";
import { KubeEmulator } from "../k8s/emulator.ts";
import { endpointSlice, service } from "../k8s/fixtures.ts";
import { tempDirs } from "../support/tmp.ts";

const dir = tempDirs("bgpctl-k8s-slices-")();
const running: Router[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

const BASE = parseConfig(`kubernetes:\n  nodeName: ${BENCH_NODE}\n  mesh: false\n`, "k8s-slices.yaml");

/** The bench's generated cluster (Services of every kind with EndpointSlices) as derive input. */
function cluster(nodes: number, services: number): DeriveInput & { nodes: Node[]; services: Service[]; slices: EndpointSlice[] } {
  const input = { nodeName: BENCH_NODE, nodes: [] as Node[], services: [] as Service[], slices: [] as EndpointSlice[], base: BASE, secrets: new Map<string, string>() };
  for (const { resource, object } of clusterObjects({ nodes, services }, "192.0.2.1")) {
    if (resource === "nodes") input.nodes.push(object as Node);
    else if (resource === "services") input.services.push(object as Service);
    else input.slices.push(object as EndpointSlice);
  }
  return input;
}

/** Counts timer firings while `p` runs (a 0 ms timer re-armed on every firing). */
async function timerFiringsDuring<T>(p: () => Promise<T>): Promise<{ value: T; firings: number }> {
  let firings = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    timer = setTimeout(() => {
      firings++;
      arm();
    }, 0);
  };
  arm();
  try {
    const value = await p();
    return { value, firings };
  } finally {
    clearTimeout(timer);
  }
}

describe("derivation in slices", () => {
  test("a cluster of 4,000 Services is derived over many turns of the shared slicer with timers firing in between, giving what derive gives in one go", async () => {
    const input = cluster(500, 4000);
    const turns = slicer.stats.turns;
    const { value: d, firings } = await timerFiringsDuring(() => deriveSliced(input));
    expect(slicer.stats.turns - turns).toBeGreaterThan(3);
    expect(firings).toBeGreaterThan(2);
    const one = derive(input);
    expect(d).toEqual(one);
    expect(d.config!.advertise.length).toBeGreaterThan(3000);
  });

  test("runSliced resolves with the generator's value and rejects with what it throws", async () => {
    function* ok(): Generator<void, number> {
      for (let i = 0; i < 3; i++) yield;
      return 42;
    }
    function* bad(): Generator<void, number> {
      yield;
      throw new Error("derivation failed: Service/x");
    }
    expect(await runSliced(ok())).toBe(42);
    await expect(runSliced(bad())).rejects.toThrow("derivation failed: Service/x");
  });
});

describe("DeriveCache", () => {
  test("a cached run after each change equals a fresh derivation; unchanged advertisements are handed over as the same objects", () => {
    const input = cluster(50, 400);
    const cache = new DeriveCache();
    const step = (what: string, next: DeriveInput) => {
      const cached = derive(next, cache);
      expect({ what, d: cached }).toEqual({ what, d: derive(next) });
      return cached;
    };
    const first = step("first run", input);
    const again = step("same input", input);
    // Nothing changed: every advertisement is last run's object.
    expect(again.config!.advertise.every((a, i) => a === first.config!.advertise[i])).toBe(true);

    // A Service's load balancer IP moves (the watch cache holds a new object).
    const lbIdx = input.services.findIndex((s) => s.spec?.type === "LoadBalancer" && s.spec.externalTrafficPolicy === "Cluster");
    const lb = input.services[lbIdx]!;
    const moved: Service = { ...lb, status: { loadBalancer: { ingress: [{ ip: "10.88.0.1" }] } } };
    const services2 = input.services.map((s, i) => (i === lbIdx ? moved : s));
    const d2 = step("ingress moved", { ...input, services: services2 });
    const prefixes2 = d2.config!.advertise.map((a) => a.prefix);
    expect(prefixes2).toContain("10.88.0.1/32");
    expect(prefixes2).not.toContain(`${lb.status!.loadBalancer!.ingress![0]!.ip}/32`);
    const byPrefix = new Map(again.config!.advertise.map((a) => [a.prefix, a]));
    const same = d2.config!.advertise.filter((a) => byPrefix.get(a.prefix) === a).length;
    expect(same).toBe(d2.config!.advertise.length - 1);

    // A Service sharing that IP, with a community: one advertisement, merged, a new object.
    const sharing = service("ns-0", "sharing", { type: "LoadBalancer", clusterIPs: ["10.96.200.1"], ingress: ["10.88.0.1"], externalTrafficPolicy: "Cluster" });
    sharing.metadata.annotations = { "bgpctl.io/communities": "65000:7" };
    const sharingSlice = endpointSlice("ns-0", "sharing-abcde", "sharing", "IPv4", [{ address: "10.128.0.9", nodeName: BENCH_NODE, ready: true }]);
    const d3 = step("sharing Service added", { ...input, services: [...services2, sharing], slices: [...input.slices, sharingSlice] });
    const shared = d3.config!.advertise.find((a) => a.prefix === "10.88.0.1/32")!;
    expect(shared.communities).toEqual(["65000:7"]);
    expect(shared).not.toBe(d2.config!.advertise.find((a) => a.prefix === "10.88.0.1/32"));

    // Its endpoint stops being ready (a new EndpointSlice object): the cached Service result is not used.
    const notReady = endpointSlice("ns-0", "sharing-abcde", "sharing", "IPv4", [{ address: "10.128.0.9", nodeName: BENCH_NODE, ready: false }]);
    const d4 = step("endpoint not ready", { ...input, services: [...services2, sharing], slices: [...input.slices, notReady] });
    expect(d4.status.services.find((s) => s.name === "ns-0/sharing")!.readyTotal).toBe(0);

    // The node is cordoned: every Service IP withdrawn, only the pod CIDR left.
    const nodes5 = input.nodes.map((n) => (n.metadata.name === BENCH_NODE ? { ...n, spec: { ...n.spec, unschedulable: true } } : n));
    const d5 = step("cordoned", { ...input, nodes: nodes5, services: services2 });
    expect(d5.config!.advertise.map((a) => a.prefix)).toEqual(d5.status.podCidrs);
    step("uncordoned", { ...input, services: services2 });

    // Services deleted: their prefixes go.
    const d7 = step("half the Services deleted", { ...input, services: services2.slice(0, 200), slices: input.slices.slice(0, 200) });
    expect(d7.status.services.length).toBe(200);
    // Another config file: a fresh start (same result as without a cache).
    step("other base", { ...input, base: parseConfig(`kubernetes:\n  nodeName: ${BENCH_NODE}\n  mesh: false\n  services: {communities: ["65000:1"]}\n`, "other.yaml") });
  });
});

describe("sortedBy", () => {
  test("orders by key like a stable sort, for random, sorted, reversed and nearly sorted input with equal keys", () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
    const run = <T>(items: T[], key: (t: T) => string) => {
      const g = sortedBy(items, key);
      for (;;) {
        const r = g.next();
        if (r.done) return r.value;
      }
    };
    const cases: { k: string; i: number }[][] = [
      [],
      [{ k: "a", i: 0 }],
      Array.from({ length: 5000 }, (_, i) => ({ k: String(Math.floor(rnd() * 300)), i })),
      Array.from({ length: 3000 }, (_, i) => ({ k: String(i).padStart(5, "0"), i })),
      Array.from({ length: 3000 }, (_, i) => ({ k: String(3000 - i).padStart(5, "0"), i })),
      [...Array.from({ length: 4000 }, (_, i) => ({ k: String(i * 2).padStart(5, "0"), i })), ...Array.from({ length: 7 }, (_, j) => ({ k: String(Math.floor(rnd() * 8000)).padStart(5, "0"), i: 4000 + j }))],
    ];
    for (const c of cases) {
      const want = [...c].sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.i - b.i));
      expect(run(c, (x) => x.k)).toEqual(want);
    }
  });
});

describe("reconfigurer: tens of thousands of advertisements in slices", () => {
  const adv = (i: number, communities: string[] = []): AdvertiseConfig => ({ prefix: `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`, communities, largeCommunities: [] });

  async function router(): Promise<{ router: Router; lines: string[]; base: RouterConfig }> {
    const lines: string[] = [];
    const base = parseConfig(`asn: 65001\nrouterId: 192.0.2.1\nlisten: {address: 127.0.0.1, port: 0}\ncontrolSocket: ${join(dir, "s.sock")}\n`, "slices.yaml");
    const r = new Router(base, null, new Log("info", "text", (l) => lines.push(l)), { clock: new ManualClock() });
    await r.start();
    running.push(r);
    return { router: r, lines, base };
  }

  test("applying 30,000 advertisements spans many turns with timers firing in between; a second apply with a few changed changes only those; the log line is bounded", async () => {
    const { router: r, lines, base } = await router();
    const list = Array.from({ length: 30_000 }, (_, i) => adv(i));
    const { value: changes, firings } = await timerFiringsDuring(() => r.apply({ ...base, advertise: list }, "test"));
    expect(changes.length).toBe(30_000);
    expect(firings).toBeGreaterThan(2);
    expect(r.engine.localRoutes.size).toBe(30_000);
    const logged = lines.find((l) => l.includes("test: "))!;
    expect(logged).toContain("(30000 changes)");
    expect(logged.length).toBeLessThan(2000);

    // The same objects except three: one changed, one gone, one new.
    const next = list.filter((_, i) => i !== 5);
    next[10] = adv(11, ["65001:7"]);
    next.push(adv(40_000));
    const second = await r.apply({ ...base, advertise: next }, "test");
    expect(second.sort()).toEqual([`advertised ${adv(40_000).prefix}`, `updated ${adv(11).prefix}`, `withdrew ${adv(5).prefix}`].sort());
    expect(r.engine.localRoutes.get(adv(11).prefix)!.settings.communities).toEqual(["65001:7"]);
    expect(r.engine.localRoutes.has(adv(5).prefix)).toBe(false);
    expect(await r.apply({ ...base, advertise: next }, "test")).toEqual([]);
  });

  test("an advertisement object applied before is compared again when the control API replaced its route, and a prefix the API took over is not withdrawn", async () => {
    const { router: r, base } = await router();
    const list = Array.from({ length: 100 }, (_, i) => adv(i));
    await r.apply({ ...base, advertise: list }, "test");
    // The API re-advertises a file prefix with other settings, and one more of its own.
    await r.advertise({ prefixes: [adv(3).prefix, adv(500).prefix], communities: ["65001:9"] });
    expect(r.engine.localRoutes.get(adv(3).prefix)!.settings.communities).toEqual(["65001:9"]);
    // The same (identical) objects again: the file's settings come back for the prefix the API changed.
    const changes = await r.apply({ ...base, advertise: list }, "test");
    expect(changes).toEqual([`updated ${adv(3).prefix}`]);
    expect(r.engine.localRoutes.get(adv(3).prefix)!.settings.communities).toEqual([]);
    expect(r.engine.localRoutes.get(adv(3).prefix)!.owner).toBe("config");
    // The API's own prefix stays when the file drops prefixes.
    const fewer = await r.apply({ ...base, advertise: list.slice(0, 50) }, "test");
    expect(fewer.length).toBe(50);
    expect(r.engine.localRoutes.has(adv(500).prefix)).toBe(true);
    expect(r.engine.localRoutes.size).toBe(51);
  });

  test("an apply with an advertisement delta against the running configuration changes just what it names; against another configuration, or after the control API wrote a route, the whole list is compared", async () => {
    const { router: r, base } = await router();
    const list = Array.from({ length: 1000 }, (_, i) => adv(i));
    const first: RouterConfig = { ...base, advertise: list };
    await r.apply(first, "test");
    // A delta: one changed, one gone, one new.
    const next = list.filter((_, i) => i !== 5);
    next[10] = adv(11, ["65001:7"]);
    next.push(adv(40_000));
    const second: RouterConfig = { ...base, advertise: next };
    const changes = await r.apply(second, "test", { from: first, set: [next[10]!, adv(40_000)].map((a) => next.find((x) => x.prefix === a.prefix)!), remove: [adv(5).prefix], drop: [list[5]!, list[11]!] });
    expect(changes.sort()).toEqual([`advertised ${adv(40_000).prefix}`, `updated ${adv(11).prefix}`, `withdrew ${adv(5).prefix}`].sort());
    expect(r.engine.config).toBe(second);
    // The delta is believed: what it leaves out is not looked at (a change it does not name stays unapplied)...
    const third: RouterConfig = { ...base, advertise: next.map((a, i) => (i === 20 ? adv(21, ["65001:8"]) : a)) };
    expect(await r.apply(third, "test", { from: second, set: [], remove: [], drop: [] })).toEqual([]);
    expect(r.engine.localRoutes.get(adv(21).prefix)!.settings.communities).toEqual([]);
    // ... but only against the configuration it was made after: against another one, the whole list is compared.
    expect(await r.apply(third, "test", { from: first, set: [], remove: [], drop: [] })).toEqual([`updated ${adv(21).prefix}`]);
    expect(r.engine.localRoutes.get(adv(21).prefix)!.settings.communities).toEqual(["65001:8"]);
    // And after the control API wrote a local route: compared in full (the file's settings come back).
    await r.advertise({ prefixes: [adv(3).prefix], communities: ["65001:9"] });
    const fourth: RouterConfig = { ...third };
    expect(await r.apply(fourth, "test", { from: third, set: [], remove: [], drop: [] })).toEqual([`updated ${adv(3).prefix}`]);
    // A delta's stamps keep the next complete apply exact: the same list again changes nothing, a prefix dropped by a delta is not taken for running.
    const fifth: RouterConfig = { ...base, advertise: fourth.advertise.filter((a) => a.prefix !== adv(7).prefix) };
    expect(await r.apply(fifth, "test", { from: fourth, set: [], remove: [adv(7).prefix], drop: [fourth.advertise.find((a) => a.prefix === adv(7).prefix)!] })).toEqual([`withdrew ${adv(7).prefix}`]);
    expect(await r.apply({ ...fifth }, "test")).toEqual([]);
    expect(await r.apply({ ...base, advertise: fourth.advertise }, "test")).toEqual([`advertised ${adv(7).prefix}`]);
    expect(r.engine.localRoutes.size).toBe(1000);
  });
});

describe("KubeController at scale", () => {
  test("against the emulator with 4,000 Services: the start (lists, derivation, router, advertisements) runs over many slicer turns with timers firing in between and originates every prefix; a LoadBalancer IP move is then reconciled", async () => {
    const size = { nodes: 300, services: 4000 };
    const emu = await KubeEmulator.start({ compactionWindow: 10_000 });
    let controller: KubeController | null = null;
    try {
      for (const { resource, object } of clusterObjects(size, "127.0.0.1")) emu.create(resource, object);
      const kubeconfig = join(dir, "kubeconfig");
      writeFileSync(kubeconfig, `apiVersion: v1\nkind: Config\nclusters:\n  - name: t\n    cluster: {server: "${emu.url}"}\nusers:\n  - name: t\n    user: {}\ncontexts:\n  - name: t\n    context: {cluster: t, user: t}\ncurrent-context: t\n`);
      const base = parseConfig(`listen: {address: 127.0.0.1, port: 0}\ncontrolSocket: ${join(dir, "c.sock")}\nlog: {level: warn}\nkubernetes:\n  nodeName: ${BENCH_NODE}\n  kubeconfig: ${kubeconfig}\n  mesh: false\n`, "ctl.yaml");
      const lines: string[] = [];
      const c = new KubeController({ base, reloadBase: () => base, configPath: "ctl.yaml", log: new Log("info", "text", (l) => lines.push(l)), env: {} });
      controller = c;
      const turns = slicer.stats.turns;
      const { value: r, firings } = await timerFiringsDuring(() => c.start());
      running.push(r);
      expect(slicer.stats.turns - turns).toBeGreaterThan(3);
      expect(firings).toBeGreaterThan(3);
      const expected = expectedPrefixes(size);
      expect(r.engine.localRoutes.size).toBe(expected.size);
      for (const p of [...expected].slice(0, 50)) expect(r.engine.localRoutes.has(p)).toBe(true);

      const move = changes(size, 2)[1]!;
      const w = move.writes[0]!;
      if (w.op !== "patch") throw new Error("the second change of the bench model is a patch");
      emu.patch(w.resource, w.namespace, w.name, w.patch);
      const until = Date.now() + 20_000;
      // The apply logs its changes once its last slice is done (after the routes moved).
      const logged = () => lines.some((l) => l.includes(`advertised ${move.announce}`) && l.includes(`withdrew ${move.withdraw}`));
      while (!(r.engine.localRoutes.has(move.announce) && !r.engine.localRoutes.has(move.withdraw!) && logged())) {
        if (Date.now() > until) throw new Error(`${move.what}: not reconciled and logged in one line within 20 s`);
        await Bun.sleep(5);
      }
      expect(r.engine.localRoutes.size).toBe(expected.size);
      // The move was applied to the last derivation, not derived again from every object; what runs is what a complete run gives.
      const runs = c.status().derivations!;
      expect(runs.delta).toBeGreaterThanOrEqual(1);
      const want = derive({ nodeName: BENCH_NODE, nodes: emu.list<Node>("nodes"), services: emu.list<Service>("services"), slices: emu.list<EndpointSlice>("endpointslices"), base, secrets: new Map() });
      expect(r.engine.config.advertise).toEqual(want.config!.advertise);
      expect(c.status().originated).toEqual(want.status.originated);
      expect(runs.complete).toBe(1);

      // A change and a reload at once: their derivations take turns over the one cache, and what runs after both is what a complete run gives.
      const more = changes(size, 4).slice(2);
      for (const c of more) for (const w of c.writes) w.op === "create" ? emu.create(w.resource, w.object) : emu.patch(w.resource, w.namespace, w.name, w.patch);
      const reloaded = r.reload();
      const until2 = Date.now() + 20_000;
      while (!more.every((c) => r.engine.localRoutes.has(c.announce) && (!c.withdraw || !r.engine.localRoutes.has(c.withdraw)))) {
        if (Date.now() > until2) throw new Error("the changes made with a reload were not reconciled within 20 s");
        await Bun.sleep(5);
      }
      await reloaded;
      await Bun.sleep(100);
      const want2 = derive({ nodeName: BENCH_NODE, nodes: emu.list<Node>("nodes"), services: emu.list<Service>("services"), slices: emu.list<EndpointSlice>("endpointslices"), base, secrets: new Map() });
      expect(r.engine.config.advertise).toEqual(want2.config!.advertise);
      expect(c.status().originated).toEqual(want2.status.originated);
      expect(c.status().derivations!.complete).toBe(2);

      // A relist (the watch too old to resume) bringing 2,500 changed Services in one batch: not kept event by event, one complete run.
      {
        const svcs = emu.list<Service>("services").slice(0, 2500);
        emu.failNext(/\/services$/, 1, 503); // keeps the watch down until the changes and the compaction are in
        emu.dropWatches();
        for (const svc of svcs) emu.patch("services", svc.metadata.namespace, svc.metadata.name, { metadata: { annotations: { "bgpctl.io/communities": "65000:77" } } });
        emu.compact();
        const until3 = Date.now() + 30_000;
        while (c.status().derivations!.complete < 3 || c.status().originated.filter((o) => o.communities.includes("65000:77")).length === 0) {
          if (Date.now() > until3) throw new Error(`the relist's 2,500 changes were not derived within 30 s (${JSON.stringify(c.status().derivations)})`);
          await Bun.sleep(20);
        }
        await Bun.sleep(200);
        const want3 = derive({ nodeName: BENCH_NODE, nodes: emu.list<Node>("nodes"), services: emu.list<Service>("services"), slices: emu.list<EndpointSlice>("endpointslices"), base, secrets: new Map() });
        expect(r.engine.config.advertise).toEqual(want3.config!.advertise);
        expect(c.status().derivations!.complete).toBe(3);
      }
    } finally {
      await controller?.stop();
      await emu.stop();
    }
  }, 60_000);
});
