/**
 * Tests of the `bgpctl run` configuration (lib/config): every default of the
 * normalised RouterConfig, peer-group inheritance, each class of error with
 * the line and column it must point at (YAML snippets are written as arrays
 * of lines so that line N is element N-1), several errors reported at once,
 * YAML syntax errors, the reload diff, `bgpctl config check`, and the
 * shipped examples/config.yaml and examples/bgpctl.service.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runConfigCheck } from "../../commands/config.ts";
import { diffConfig } from "../../lib/config/diff.ts";
import { ConfigError, type ConfigIssue, loadConfig, parseConfig } from "../../lib/config/load.ts";
import type { PeerConfig, RouterConfig } from "../../lib/config/types.ts";
import { tempDirs } from "../support/tmp.ts";
import { BfdSchema, GracefulRestartSchema } from "../../lib/config/schema.ts";

const ROOT = join(import.meta.dir, "..", "..");
const FILE = "t.yaml";

/** YAML text from lines: line N of the file is lines[N-1]. */
function y(...lines: string[]): string {
  return lines.join("\n") + "\n";
}

/** The common first two lines of most snippets; snippets built on it start at line 3. */
const HEAD = ["asn: 65001", "routerId: 192.0.2.1"];

function parse(...lines: string[]): RouterConfig {
  return parseConfig(y(...lines), FILE);
}

function issues(text: string): ConfigIssue[] {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e.issues;
    throw e;
  }
  throw new Error("expected a ConfigError");
}

/** The single issue of a snippet. */
function one(...lines: string[]): ConfigIssue {
  const all = issues(y(...lines));
  if (all.length !== 1) throw new Error(`expected one issue, got:\n${all.map((i) => `${i.line}:${i.column} ${i.path}: ${i.message}`).join("\n")}`);
  return all[0]!;
}

function peer(overrides: Partial<PeerConfig> = {}): PeerConfig {
  return {
    address: "192.0.2.2",
    remoteAs: 65002,
    localAs: 65001,
    port: 179,
    gracefulRestart: GracefulRestartSchema.parse({}),
    bfd: BfdSchema.parse({}),
    passive: false,
    holdTime: 90,
    connectRetry: 120,
    families: ["ipv4", "ipv6"],
    nextHopSelf: false,
    routeReflectorClient: false,
    multihop: false,
    import: undefined,
    export: undefined,
    shutdown: false,
    allowOwnAs: 0,
    enforceFirstAs: true,
    asOverride: false,
    ...overrides,
  };
}

describe("defaults", () => {
  test("a minimal file gives every top-level default", () => {
    expect(parse(...HEAD)).toEqual({
      source: FILE,
      asn: 65001,
      routerId: "192.0.2.1",
      listen: [{ address: "::", port: 179 }],
      controlSocket: "/run/bgpctl/bgpctl.sock",
      kernel: { enabled: false, table: 254, protocol: 186, metric: 20, ecmp: true, families: ["ipv4", "ipv6"], exclude: [], retainOnExit: false, startupDeadline: 60 },
      peers: [],
      advertise: [],
      policies: {},
      prefixLists: {},
      multipath: { enabled: false, maxPaths: 1 },
      decision: { alwaysCompareMed: false, preferOldest: false },
      mrai: 0,
      log: { level: "info", format: "text" },
    });
    expect(parse(...HEAD).clusterId).toBeUndefined();
  });

  test("a minimal peer gets every peer default, localAs from asn", () => {
    const cfg = parse(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002");
    expect(cfg.peers).toEqual([peer()]);
    const p = cfg.peers[0]!;
    for (const k of ["localAddress", "keepalive", "maxPrefix", "description", "shutdownMessage", "addPath", "group"] as const) {
      expect(p[k]).toBeUndefined();
    }
    expect("import" in p && "export" in p).toBe(true);
  });

  test("every peer key given explicitly", () => {
    const cfg = parse(
      ...HEAD,
      "peers:",
      "  - address: 2001:DB8:0:0::2", // canonicalised
      "    remoteAs: 4200000000",
      "    localAs: 65010",
      "    port: 1179",
      "    localAddress: 2001:db8::1",
      "    passive: true",
      "    holdTime: 30",
      "    keepalive: 10",
      "    connectRetry: 5",
      "    families: ipv6",
      "    nextHopSelf: true",
      "    multihop: 3",
      "    import: all",
      "    export: none",
      "    maxPrefix: 1000",
      "    description: transit",
      "    shutdown: maintenance until 18:00",
      "    allowOwnAs: 2",
      "    enforceFirstAs: false",
      "    asOverride: true",
      "    addPath: {send: true}",
    );
    expect(cfg.peers[0]).toEqual({
      address: "2001:db8::2",
      remoteAs: 4200000000,
      localAs: 65010,
      port: 1179,
      localAddress: "2001:db8::1",
      passive: true,
      holdTime: 30,
      keepalive: 10,
      connectRetry: 5,
      families: ["ipv6"],
      nextHopSelf: true,
      routeReflectorClient: false,
      multihop: 3,
      import: { kind: "all" },
      export: { kind: "none" },
      maxPrefix: { limit: 1000, action: "warn", restartAfter: 60 },
      description: "transit",
      shutdown: true,
      shutdownMessage: "maintenance until 18:00",
      allowOwnAs: 2,
      enforceFirstAs: false,
      asOverride: true,
      addPath: { send: true, receive: false },
      gracefulRestart: GracefulRestartSchema.parse({}),
      bfd: BfdSchema.parse({}),
    });
  });

  test("peer value forms: multihop true, shutdown true, policy chains, maxPrefix mapping, families order", () => {
    const cfg = parse(
      ...HEAD,
      "peers:",
      "  - address: 192.0.2.2",
      "    remoteAs: 65002",
      "    multihop: true",
      "    shutdown: true",
      "    import: [a, b]",
      "    export: b",
      "    maxPrefix: {limit: 10, action: restart}",
      "    families: [ipv6, ipv4]",
      "  - address: 192.0.2.3",
      "    remoteAs: 65001",
      "    routeReflectorClient: true",
      "    multihop: false",
      "    holdTime: 0",
      "    shutdown: false",
      "    maxPrefix: {limit: 5, restartAfter: 10}",
      "policies:",
      "  a: []",
      "  b: []",
    );
    const [p1, p2] = cfg.peers;
    expect(p1!.multihop).toBe(255);
    expect(p1!.shutdown).toBe(true);
    expect(p1!.shutdownMessage).toBeUndefined();
    expect(p1!.import).toEqual({ kind: "chain", names: ["a", "b"] });
    expect(p1!.export).toEqual({ kind: "chain", names: ["b"] });
    expect(p1!.maxPrefix).toEqual({ limit: 10, action: "restart", restartAfter: 60 });
    expect(p1!.families).toEqual(["ipv4", "ipv6"]);
    expect(p2!.routeReflectorClient).toBe(true);
    expect(p2!.multihop).toBe(false);
    expect(p2!.holdTime).toBe(0);
    expect(p2!.shutdown).toBe(false);
    expect(p2!.maxPrefix).toEqual({ limit: 5, action: "warn", restartAfter: 10 });
  });

  test("top-level keys given explicitly", () => {
    const cfg = parse(
      ...HEAD,
      "listen:",
      "  - address: 0.0.0.0",
      "  - port: 1179",
      "  - {address: 2001:db8::1, port: 0}",
      "controlSocket: /tmp/b.sock",
      "multipath: {enabled: true}",
      "decision: {alwaysCompareMed: true, preferOldest: true}",
      "clusterId: 0.0.0.1",
      "mrai: 5",
      "log: {level: debug, format: json}",
    );
    expect(cfg.listen).toEqual([
      { address: "0.0.0.0", port: 179 },
      { address: "::", port: 1179 },
      { address: "2001:db8::1", port: 0 },
    ]);
    expect(cfg.controlSocket).toBe("/tmp/b.sock");
    expect(cfg.multipath).toEqual({ enabled: true, maxPaths: 8 });
    expect(cfg.decision).toEqual({ alwaysCompareMed: true, preferOldest: true });
    expect(cfg.clusterId).toBe("0.0.0.1");
    expect(cfg.mrai).toBe(5);
    expect(cfg.log).toEqual({ level: "debug", format: "json" });
  });

  test("empty sections are empty; link-local peers keep their zone", () => {
    const cfg = parse(...HEAD, "peers:", "peerGroups:", "advertise:", "policies:", "prefixLists:");
    expect([cfg.peers, cfg.advertise, cfg.policies, cfg.prefixLists]).toEqual([[], [], {}, {}]);
    const ll = parse(...HEAD, "peers:", "  - {address: 'FE80::1%eth0', remoteAs: 65002, localAddress: 'fe80::2%eth0'}").peers[0]!;
    expect([ll.address, ll.localAddress]).toEqual(["fe80::1%eth0", "fe80::2%eth0"]);
    const i = one(...HEAD, "advertise: [{prefix: 2001:db8::/32, nextHop: 'fe80::1%eth0'}]");
    expect([i.line, i.column, i.path, i.message]).toEqual([3, 46, "advertise[0].nextHop", 'expected an IPv4 or IPv6 address, got "fe80::1%eth0"']);
  });

  test("listen as a single mapping; multipath maxPaths; empty listen list", () => {
    expect(parse(...HEAD, "listen: {address: 192.0.2.1, port: 1790}").listen).toEqual([{ address: "192.0.2.1", port: 1790 }]);
    expect(parse(...HEAD, "listen: []").listen).toEqual([]);
    expect(parse(...HEAD, "multipath: {enabled: true, maxPaths: 64}").multipath).toEqual({ enabled: true, maxPaths: 64 });
    expect(parse(...HEAD, "multipath: {enabled: false}").multipath).toEqual({ enabled: false, maxPaths: 1 });
  });

  test("advertise: defaults, all keys, the bare-prefix form, canonical communities", () => {
    const cfg = parse(
      ...HEAD,
      "advertise:",
      "  - prefix: 203.0.113.0/24",
      "  - 2001:DB8:1::/48",
      "  - prefix: 198.51.100.0/24",
      "    nextHop: 192.0.2.1",
      '    communities: ["65001:0100", no-export]',
      "    largeCommunities: 65001:1:2",
      "    localPref: 200",
      "    med: 0",
      "    asPathPrepend: 3",
    );
    expect(cfg.advertise).toEqual([
      { prefix: "203.0.113.0/24", communities: [], largeCommunities: [] },
      { prefix: "2001:db8:1::/48", communities: [], largeCommunities: [] },
      {
        prefix: "198.51.100.0/24",
        nextHop: "192.0.2.1",
        communities: ["65001:100", "no-export"],
        largeCommunities: ["65001:1:2"],
        localPref: 200,
        med: 0,
        asPathPrepend: 3,
      },
    ]);
  });

  test("policies: list form (default reject), mapping form, every match and set key, prefix entry forms", () => {
    const cfg = parse(
      ...HEAD,
      "prefixLists:",
      "  pl:",
      "    - 10.0.0.0/8",
      "    - 10.0.0.0/8 le 24",
      "    - 10.0.0.0/8 ge 16 le 24",
      "    - {prefix: 2001:db8::/32, ge: 48}",
      "    - {prefix: 2001:db8::/32, le: 64}",
      "policies:",
      "  p1:",
      "    - action: accept",
      "  p2:",
      "    default: accept",
      "    terms:",
      "      - name: t",
      "        match:",
      "          prefix: 192.0.2.0/24 ge 25",
      "          prefixList: pl",
      "          community: 65001:1",
      "          largeCommunity: [65001:1:1, 65001:1:2]",
      '          asPath: "^65002( |$)"',
      "          nextHop: 192.0.2.9",
      "          neighbor: [local, 2001:db8::9]",
      "          family: ipv4",
      "        set:",
      "          localPref: 50",
      "          med: 7",
      '          community: {add: ["65001:2"], remove: [no-export], replace: []}',
      "          largeCommunity: {add: 65001:9:9}",
      "          nextHop: self",
      "          asPathPrepend: 2",
      "        action: reject",
      "      - set: {nextHop: 2001:db8::1}",
      "  p3: {default: accept}",
    );
    expect(cfg.prefixLists).toEqual({
      pl: [
        { prefix: "10.0.0.0/8" },
        { prefix: "10.0.0.0/8", le: 24 },
        { prefix: "10.0.0.0/8", ge: 16, le: 24 },
        { prefix: "2001:db8::/32", ge: 48 },
        { prefix: "2001:db8::/32", le: 64 },
      ],
    });
    expect(cfg.policies.p1).toEqual({ name: "p1", terms: [{ action: "accept" }], default: "reject" });
    expect(cfg.policies.p3).toEqual({ name: "p3", terms: [], default: "accept" });
    expect(cfg.policies.p2).toEqual({
      name: "p2",
      default: "accept",
      terms: [
        {
          name: "t",
          match: {
            prefix: [{ prefix: "192.0.2.0/24", ge: 25 }],
            prefixList: ["pl"],
            community: ["65001:1"],
            largeCommunity: ["65001:1:1", "65001:1:2"],
            asPath: "^65002( |$)",
            nextHop: ["192.0.2.9"],
            neighbor: ["local", "2001:db8::9"],
            family: "ipv4",
          },
          set: {
            localPref: 50,
            med: 7,
            community: { add: ["65001:2"], remove: ["no-export"], replace: [] },
            largeCommunity: { add: ["65001:9:9"] },
            nextHop: "self",
            asPathPrepend: 2,
          },
          action: "reject",
        },
        { set: { nextHop: "2001:db8::1" } },
      ],
    });
  });

  test("YAML anchors and merge keys work", () => {
    const text = [
      ...HEAD,
      "peers:", // 3
      "  - &base {address: 192.0.2.2, remoteAs: 65002, holdTime: 30, keepalive: 10}", // 4
      "  - <<: *base", // 5
      "    address: 192.0.2.3", // 6
      "    keepalive: 5", // 7
    ];
    const cfg = parse(...text);
    expect(cfg.peers.map((p) => [p.address, p.remoteAs, p.holdTime, p.keepalive])).toEqual([
      ["192.0.2.2", 65002, 30, 10],
      ["192.0.2.3", 65002, 30, 5],
    ]);
    // An alias of the whole peer is the same peer again; positions point at the anchored node.
    const dup = one(...text, "  - *base");
    expect([dup.line, dup.column, dup.path, dup.message]).toEqual([4, 21, "peers[2].address", "duplicate peer 192.0.2.2 (first defined at line 4)"]);
  });
});

describe("peer groups", () => {
  test("a peer takes its group's values; its own keys override", () => {
    const cfg = parse(
      ...HEAD,
      "peerGroups:",
      "  tor:",
      "    remoteAs: 65100",
      "    holdTime: 9",
      "    keepalive: 3",
      "    families: [ipv4]",
      "    maxPrefix: {limit: 100, action: restart}",
      "    addPath: {send: true, receive: true}",
      "peers:",
      "  - address: 192.0.2.2",
      "    group: tor",
      "  - address: 192.0.2.3",
      "    group: tor",
      "    remoteAs: 65200",
      "    holdTime: 30",
      "    maxPrefix: 5",
    );
    expect(cfg.peers[0]).toEqual(
      peer({
        remoteAs: 65100,
        holdTime: 9,
        keepalive: 3,
        families: ["ipv4"],
        maxPrefix: { limit: 100, action: "restart", restartAfter: 60 },
        addPath: { send: true, receive: true },
        group: "tor",
      }),
    );
    expect(cfg.peers[1]).toEqual(
      peer({
        address: "192.0.2.3",
        remoteAs: 65200,
        holdTime: 30,
        keepalive: 3,
        families: ["ipv4"],
        // a key present in the peer replaces the group's whole value
        maxPrefix: { limit: 5, action: "warn", restartAfter: 60 },
        addPath: { send: true, receive: true },
        group: "tor",
      }),
    );
  });

  test("inheritance chains: the nearest group wins", () => {
    const cfg = parse(
      ...HEAD,
      "peerGroups:",
      "  leaf:",
      "    inherit: rack",
      "    description: leaf",
      "  rack:",
      "    inherit: base",
      "    holdTime: 30",
      "    description: rack",
      "  base:",
      "    remoteAs: 65100",
      "    holdTime: 60",
      "    connectRetry: 7",
      "    description: base",
      "peers:",
      "  - {address: 192.0.2.2, group: leaf}",
      "  - {address: 192.0.2.3, group: rack}",
      "  - {address: 192.0.2.4, group: base, connectRetry: 1}",
    );
    expect(cfg.peers.map((p) => [p.remoteAs, p.holdTime, p.connectRetry, p.description, p.group])).toEqual([
      [65100, 30, 7, "leaf", "leaf"],
      [65100, 30, 7, "rack", "rack"],
      [65100, 60, 1, "base", "base"],
    ]);
  });

  test("an inheritance cycle is an error, reported once at the first group's inherit", () => {
    const all = issues(
      y(
        ...HEAD,
        "peerGroups:", // 3
        "  a:", // 4
        "    inherit: b", // 5
        "  b:", // 6
        "    inherit: c", // 7
        "  c:", // 8
        "    inherit: a", // 9
        "  self: {inherit: self}", // 10
        "peers:", // 11
        "  - {address: 192.0.2.2, remoteAs: 65002, group: b}", // 12: a peer of a cyclic group still resolves
      ),
    );
    expect(all).toEqual([
      { file: FILE, line: 5, column: 14, path: "peerGroups.a.inherit", message: "peer group inheritance cycle: a -> b -> c -> a" },
      { file: FILE, line: 10, column: 19, path: "peerGroups.self.inherit", message: "peer group inheritance cycle: self -> self" },
    ]);
  });

  test("remoteAs missing from the peer and its group", () => {
    const i = one(...HEAD, "peerGroups:", "  g: {holdTime: 30}", "peers:", "  - address: 192.0.2.2", "    group: g");
    expect(i).toEqual({
      file: FILE,
      line: 6,
      column: 5,
      path: "peers[0].remoteAs",
      message: 'missing required key "remoteAs" (not set in the peer or its peer group "g")',
    });
  });

  test("group-only and peer-only keys are explained", () => {
    const i = one(...HEAD, "peerGroups:", "  g:", "    address: 192.0.2.2");
    expect([i.line, i.column, i.path]).toEqual([5, 5, "peerGroups.g.address"]);
    expect(i.message).toBe('unknown key "address" (a peer group cannot set the address; list peers under peers)');
    const j = one(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", "    inherit: g");
    expect([j.line, j.column, j.path]).toEqual([6, 5, "peers[0].inherit"]);
    expect(j.message).toBe('unknown key "inherit" (use "group" to base a peer on a peer group)');
  });
});

describe("errors point at the offending node", () => {
  test("an AS number that is not one", () => {
    expect(one(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: abc")).toEqual({
      file: FILE,
      line: 5,
      column: 15,
      path: "peers[0].remoteAs",
      message: 'expected an AS number 1..4294967295, got "abc"',
    });
    const i = one("asn: 4294967296", "routerId: 192.0.2.1");
    expect([i.line, i.column, i.path, i.message]).toEqual([1, 6, "asn", "expected an AS number 1..4294967295, got 4294967296"]);
    const q = one("asn: '65001'", "routerId: 192.0.2.1");
    expect(q.message).toBe('expected an AS number 1..4294967295, got "65001"');
    const t = one("asn: 23456", "routerId: 192.0.2.1");
    expect(t.message).toContain("AS_TRANS");
  });

  test("an unknown key, with did-you-mean", () => {
    expect(one(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", "    remoteAS: 65003")).toEqual({
      file: FILE,
      line: 6,
      column: 5,
      path: "peers[0].remoteAS",
      message: 'unknown key "remoteAS" (did you mean "remoteAs"?)',
    });
    const k = one(...HEAD, "hold_time: 9");
    expect([k.line, k.column, k.path, k.message]).toEqual([3, 1, "hold_time", 'unknown key "hold_time"']);
    const s = one(...HEAD, "router_id: 192.0.2.2");
    expect(s.message).toBe('unknown key "router_id" (did you mean "routerId"?)');
    const deep = one(...HEAD, "policies:", "  p:", "    - match:", "        comunity: 65001:1");
    expect([deep.line, deep.column, deep.path, deep.message]).toEqual([
      6,
      9,
      "policies.p[0].match.comunity",
      'unknown key "comunity" (did you mean "community"?)',
    ]);
  });

  test("a missing required key points at the mapping", () => {
    const all = issues(y("# bgpctl", "peers:", "  - remoteAs: 65002", "    port: 1179"));
    expect(all).toEqual([
      { file: FILE, line: 2, column: 1, path: "asn", message: 'missing required key "asn" (our AS number)' },
      { file: FILE, line: 2, column: 1, path: "routerId", message: 'missing required key "routerId" (a dotted quad such as 192.0.2.1)' },
      { file: FILE, line: 3, column: 5, path: "peers[0].address", message: "missing required key \"address\" (the peer's IPv4 or IPv6 address)" },
    ]);
  });

  test("an undefined peer group", () => {
    expect(one(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", "    group: core")).toEqual({
      file: FILE,
      line: 6,
      column: 12,
      path: "peers[0].group",
      message: 'peer group "core" is not defined',
    });
    const inh = one(...HEAD, "peerGroups:", "  g: {inherit: core}");
    expect([inh.line, inh.column, inh.path, inh.message]).toEqual([4, 16, "peerGroups.g.inherit", 'peer group "core" is not defined']);
  });

  test("an undefined policy, in a peer, a chain and a group", () => {
    const all = issues(
      y(
        ...HEAD,
        "policies:", // 3
        "  import-a: []", // 4
        "peerGroups:", // 5
        "  g: {export: export-x}", // 6
        "peers:", // 7
        "  - address: 192.0.2.2", // 8
        "    remoteAs: 65002", // 9
        "    import: import-x", // 10
        "  - address: 192.0.2.3", // 11
        "    remoteAs: 65002", // 12
        "    import: [import-a, import-b]", // 13
      ),
    );
    expect(all).toEqual([
      { file: FILE, line: 6, column: 15, path: "peerGroups.g.export", message: 'policy "export-x" is not defined' },
      { file: FILE, line: 10, column: 13, path: "peers[0].import", message: 'policy "import-x" is not defined (did you mean "import-a"?)' },
      { file: FILE, line: 13, column: 24, path: "peers[1].import[1]", message: 'policy "import-b" is not defined (did you mean "import-a"?)' },
    ]);
  });

  test("an undefined prefix list", () => {
    expect(one(...HEAD, "policies:", "  p:", "    - match: {prefixList: [nope]}")).toEqual({
      file: FILE,
      line: 5,
      column: 28,
      path: "policies.p[0].match.prefixList[0]",
      message: 'prefix list "nope" is not defined',
    });
  });

  test("a duplicate peer, also when written differently", () => {
    const all = issues(
      y(
        ...HEAD,
        "peers:", // 3
        "  - {address: 192.0.2.2, remoteAs: 65002}", // 4
        "  - {address: 192.0.2.2, remoteAs: 65003}", // 5
        "  - {address: 2001:db8::1, remoteAs: 65002}", // 6
        "  - {address: '2001:DB8:0::1', remoteAs: 65002}", // 7
      ),
    );
    expect(all).toEqual([
      { file: FILE, line: 5, column: 15, path: "peers[1].address", message: "duplicate peer 192.0.2.2 (first defined at line 4)" },
      { file: FILE, line: 7, column: 15, path: "peers[3].address", message: "duplicate peer 2001:db8::1 (first defined at line 6)" },
    ]);
  });

  test("routeReflectorClient only on iBGP peers", () => {
    expect(one(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", "    routeReflectorClient: true")).toEqual({
      file: FILE,
      line: 6,
      column: 27,
      path: "peers[0].routeReflectorClient",
      message: "routeReflectorClient requires an iBGP peer (remoteAs equal to localAs 65001), got remoteAs 65002",
    });
    // inherited from a group: reported at the peer's remoteAs
    const g = one(...HEAD, "peerGroups:", "  rr: {routeReflectorClient: true}", "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", "    group: rr");
    expect([g.line, g.column, g.path]).toEqual([7, 15, "peers[0].routeReflectorClient"]);
    expect(g.message).toContain('(set in peer group "rr")');
    // iBGP by localAs is fine
    expect(parse(...HEAD, "peers:", "  - {address: 192.0.2.2, remoteAs: 65002, localAs: 65002, routeReflectorClient: true}").peers[0]!.routeReflectorClient).toBe(true);
  });

  test("communities and large communities", () => {
    const all = issues(
      y(
        ...HEAD,
        "advertise:", // 3
        "  - prefix: 192.0.2.0/24", // 4
        '    communities: ["65001:1", "70000:1"]', // 5
        "    largeCommunities: [1:2]", // 6
        "policies:", // 7
        "  p:", // 8
        "    - match: {community: [no-exprot]}", // 9
        "      set: {largeCommunity: {remove: [1:2:4294967296]}}", // 10
      ),
    );
    expect(all.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [5, 30, "advertise[0].communities[1]", 'expected a community A:B (each 0..65535) or a well-known name such as no-export, got "70000:1"'],
      [6, 24, "advertise[0].largeCommunities[0]", 'expected a large community A:B:C (each 0..4294967295), got "1:2"'],
      [9, 27, "policies.p[0].match.community[0]", 'expected a community A:B (each 0..65535) or a well-known name such as no-export, got "no-exprot"'],
      [10, 39, "policies.p[0].set.largeCommunity.remove[0]", 'expected a large community A:B:C (each 0..4294967295), got "1:2:4294967296"'],
    ]);
  });

  test("prefixes: host bits, syntax, ge/le against the prefix length and family maximum", () => {
    const all = issues(
      y(
        ...HEAD,
        "advertise:", // 3
        "  - 10.0.0.1/8", // 4
        "  - prefix: 2001:db8::/129", // 5
        "prefixLists:", // 6
        "  pl:", // 7
        "    - 10.0.0.0/8 ge 4", // 8
        "    - 10.0.0.0/8 le 33", // 9
        "    - 10.0.0.0/8 ge 24 le 16", // 10
        "    - 10.0.0.0/8 lt 9", // 11
        "    - {prefix: 2001:db8::/32, ge: 129}", // 12
        "    - {prefix: 2001:db8::/32, ge: 64, le: 48}", // 13
        "    - {ge: 24}", // 14
      ),
    );
    expect(all.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [4, 5, "advertise[0]", 'expected a prefix ADDRESS/LENGTH, got "10.0.0.1/8" (host bits set; did you mean 10.0.0.0/8?)'],
      [5, 13, "advertise[1].prefix", 'expected a prefix ADDRESS/LENGTH, got "2001:db8::/129" (length must be 0..128)'],
      [8, 7, "prefixLists.pl[0]", 'expected ge 8..32 (prefix length..32), got ge 4 in "10.0.0.0/8 ge 4"'],
      [9, 7, "prefixLists.pl[1]", 'expected le 8..32 (prefix length..32), got le 33 in "10.0.0.0/8 le 33"'],
      [10, 7, "prefixLists.pl[2]", 'expected le 24..32 (ge..32), got le 16 in "10.0.0.0/8 ge 24 le 16"'],
      [11, 7, "prefixLists.pl[3]", 'expected a prefix entry "PREFIX [ge N] [le N]" or {prefix, ge, le}, got "10.0.0.0/8 lt 9"'],
      [12, 35, "prefixLists.pl[4].ge", "expected ge 32..128 (prefix length..128), got 129"],
      [13, 43, "prefixLists.pl[5].le", "expected le 64..128 (ge..128), got 48"],
      [14, 7, "prefixLists.pl[6].prefix", 'missing required key "prefix"'],
    ]);
  });

  test("an AS path regular expression must compile", () => {
    const i = one(...HEAD, "policies:", "  p:", '    - match: {asPath: "65001 (65002"}');
    expect([i.line, i.column, i.path]).toEqual([5, 23, "policies.p[0].match.asPath"]);
    expect(i.message).toStartWith('expected a valid regular expression, got "65001 (65002" (');
  });

  test("timers, ports, booleans, enums, addresses", () => {
    const all = issues(
      y(
        ...HEAD,
        "listen: {port: 70000}", // 3
        "log: {level: verbose}", // 4
        "clusterId: 1", // 5
        "peers:", // 6
        "  - address: 192.0.2.300", // 7
        "    remoteAs: 65002", // 8
        "    holdTime: 2", // 9
        "    passive: yes", // 10
        "    families: [ipv4, ipv5]", // 11
        "    multihop: 256", // 12
        "  - address: 192.0.2.3", // 13
        "    remoteAs: 65002", // 14
        "    holdTime: 30", // 15
        "    keepalive: 30", // 16
        "    localAddress: 2001:db8::1", // 17
        "    connectRetry: 0", // 18
        "    allowOwnAs: 11", // 19
      ),
    );
    expect(all.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [3, 16, "listen.port", "expected a port 0..65535, got 70000"],
      [4, 14, "log.level", 'expected one of debug, info, warn, error, got "verbose"'],
      [5, 12, "clusterId", "expected a cluster id: a dotted quad such as 192.0.2.1, got 1"],
      [7, 14, "peers[0].address", 'expected an IPv4 or IPv6 address, got "192.0.2.300"'],
      [9, 15, "peers[0].holdTime", "expected a hold time of 0 or 3..65535 seconds, got 2 (RFC 4271 forbids 1 and 2)"],
      [10, 14, "peers[0].passive", 'expected true or false, got "yes"'],
      [11, 22, "peers[0].families[1]", 'expected ipv4 or ipv6, got "ipv5" (did you mean ipv4?)'],
      [12, 15, "peers[0].multihop", "expected true, false or a TTL 1..255, got 256"],
      [16, 16, "peers[1].keepalive", "expected a keepalive interval less than holdTime 30, got 30"],
      [17, 19, "peers[1].localAddress", 'expected an IPv4 local address for IPv4 peer 192.0.2.3, got "2001:db8::1"'],
      [18, 19, "peers[1].connectRetry", "expected a connect retry interval 1..65535 seconds, got 0"],
      [19, 17, "peers[1].allowOwnAs", "expected a count 0..10, got 11"],
    ]);
  });

  test("routerId must be a non-zero dotted quad", () => {
    const i = one("asn: 65001", "routerId: 0.0.0.0");
    expect([i.line, i.column, i.path, i.message]).toEqual([2, 11, "routerId", 'expected a router id: a non-zero dotted quad such as 192.0.2.1, got "0.0.0.0"']);
    expect(one("asn: 65001", "routerId: 2001:db8::1").message).toContain("dotted quad");
  });

  test("wrong shapes: a mapping where a list belongs, an empty value", () => {
    const all = issues(y(...HEAD, "peers:", "  address: 192.0.2.2", "mrai:"));
    expect(all.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [4, 3, "peers", "expected a list of peers, got a mapping"],
      [5, 6, "mrai", "expected an interval 0..65535 seconds, got an empty value"],
    ]);
  });

  test("duplicate keys, reserved policy names, all/none inside a chain, empty chains", () => {
    const all = issues(
      y(
        ...HEAD,
        "policies:", // 3
        "  all: []", // 4
        "  p: []", // 5
        "peers:", // 6
        "  - address: 192.0.2.2", // 7
        "    remoteAs: 65002", // 8
        "    remoteAs: 65003", // 9
        "    import: [p, none]", // 10
        "    export: []", // 11
      ),
    );
    expect(all.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [4, 3, "policies.all", 'policy name "all" is reserved (import/export "all" needs no policy)'],
      [9, 5, "peers[0].remoteAs", 'duplicate key "remoteAs" (first at line 8)'],
      [10, 17, "peers[0].import[1]", '"none" cannot be part of a policy chain; use it alone, or a policy with default accept/reject'],
      [11, 13, "peers[0].export", 'expected a policy name, a list of policy names, "all" or "none", got a list (an empty list; use "none" to send or accept nothing)'],
    ]);
  });

  test("advertise: duplicates and a next hop of the wrong family", () => {
    const all = issues(y(...HEAD, "advertise:", "  - 192.0.2.0/24", "  - prefix: 192.0.2.0/24", "  - {prefix: 2001:db8::/32, nextHop: 192.0.2.1}"));
    expect(all.map((i) => [i.line, i.column, i.path, i.message])).toEqual([
      [5, 13, "advertise[1].prefix", "duplicate advertised prefix 192.0.2.0/24 (first at line 4)"],
      [6, 38, "advertise[2].nextHop", 'expected an IPv6 next hop for IPv6 prefix 2001:db8::/32, got "192.0.2.1"'],
    ]);
  });

  test("a shutdown message longer than 255 bytes", () => {
    const i = one(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", `    shutdown: "${"é".repeat(128)}"`);
    expect([i.line, i.column, i.path]).toEqual([6, 15, "peers[0].shutdown"]);
    expect(i.message).toContain("at most 255 bytes");
    expect(i.message).toContain("(256 bytes)");
  });

  test("an empty file and a scalar file", () => {
    expect(issues("")).toEqual([
      { file: FILE, line: 1, column: 1, path: "", message: 'the configuration is empty: expected a mapping with at least "asn" and "routerId"' },
    ]);
    expect(issues("# nothing\n")[0]!.message).toContain("empty");
    const s = issues("just text\n");
    expect(s.map((i) => [i.line, i.column, i.message])).toEqual([[1, 1, 'expected a mapping at the top level (asn, routerId, peers, ...), got "just text"']]);
  });
});

describe("reporting", () => {
  test("every problem is reported at once, in file order, and formatted FILE:LINE:COLUMN: PATH: message", () => {
    let err: ConfigError | undefined;
    try {
      parseConfig(
        y(
          "asn: abc", // 1
          "routerId: 192.0.2.1", // 2
          "peers:", // 3
          "  - address: 192.0.2.2", // 4
          "    remoteAS: 65002", // 5
          "    group: core", // 6
          "  - address: 192.0.2.2", // 7
          "    remoteAs: 65002", // 8
          "    import: import-x", // 9
        ),
        "/etc/bgpctl/config.yaml",
      );
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toBe(
      [
        '/etc/bgpctl/config.yaml:1:6: asn: expected an AS number 1..4294967295, got "abc"',
        '/etc/bgpctl/config.yaml:4:5: peers[0].remoteAs: missing required key "remoteAs" (not set in the peer or its peer group "core")',
        '/etc/bgpctl/config.yaml:5:5: peers[0].remoteAS: unknown key "remoteAS" (did you mean "remoteAs"?)',
        '/etc/bgpctl/config.yaml:6:12: peers[0].group: peer group "core" is not defined',
        "/etc/bgpctl/config.yaml:7:14: peers[1].address: duplicate peer 192.0.2.2 (first defined at line 4)",
        '/etc/bgpctl/config.yaml:9:13: peers[1].import: policy "import-x" is not defined',
      ].join("\n"),
    );
    expect(err!.issues).toHaveLength(6);
    expect(err!.issues.every((i) => i.file === "/etc/bgpctl/config.yaml")).toBe(true);
  });

  test("a YAML syntax error gives its position", () => {
    const all = issues(y(...HEAD, "peers: [", "  - address: 192.0.2.2"));
    expect(all.length).toBeGreaterThanOrEqual(1);
    expect(all[0]!.path).toBe("");
    expect(all[0]!.message).toStartWith("YAML syntax error: ");
    expect([all[0]!.line, all[0]!.column]).toEqual([4, 3]);

    const tab = issues("asn: 65001\nrouterId: 192.0.2.1\npeers:\n\t- address: 192.0.2.2\n");
    expect([tab[0]!.line, tab[0]!.column]).toEqual([4, 1]);
    expect(tab[0]!.message).toContain("YAML syntax error");

    const quote = issues(y(...HEAD, 'log: {level: "info}'));
    expect(quote[0]!.line).toBe(4);
    expect(quote[0]!.message).toContain("YAML syntax error");

    let err: ConfigError | undefined;
    try {
      parseConfig(y(...HEAD, "peers: [", "  - address: 192.0.2.2"), "x.yaml");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err!.message.split("\n")[0]).toMatch(/^x\.yaml:4:3: YAML syntax error: /);
  });

  test("an unreadable file", () => {
    let err: ConfigError | undefined;
    try {
      loadConfig("/nonexistent/bgpctl.yaml");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.message).toBe("/nonexistent/bgpctl.yaml: cannot read the configuration: no such file");
  });
});

describe("diffConfig", () => {
  const base = [
    ...HEAD,
    "prefixLists:",
    "  pl: [10.0.0.0/8 le 24]",
    "  other: [192.0.2.0/24]",
    "policies:",
    "  imp: [{match: {prefixList: pl}, action: accept}]",
    "  exp: [{action: accept}]",
    "  unused: [{match: {prefixList: other}, action: reject}]",
    "advertise:",
    "  - 203.0.113.0/24",
    "  - {prefix: 198.51.100.0/24, communities: ['65001:1']}",
    "peers:",
    "  - {address: 192.0.2.2, remoteAs: 65002, import: imp, export: exp}",
    "  - {address: 192.0.2.3, remoteAs: 65003, export: exp}",
    "  - {address: 192.0.2.4, remoteAs: 65004}",
  ];
  const old = parse(...base);
  const edit = (from: string, to: string) => parse(...base.map((l) => (l === from ? to : l)));

  test("identical configurations differ in nothing", () => {
    expect(diffConfig(old, parse(...base))).toEqual({
      peersAdded: [],
      peersRemoved: [],
      peersChanged: [],
      advertiseAdded: [],
      advertiseRemoved: [],
      policiesChanged: [],
      globalChanged: [],
      peersAffectedByPolicy: [],
    });
  });

  test("advertisements are matched by prefix: 30,000 of them (a Kubernetes node's Services), a few changed", () => {
    const adv = (i: number, c = "65001:1") => ({ prefix: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32`, communities: [c], largeCommunities: [] });
    const a = { ...old, advertise: Array.from({ length: 30_000 }, (_, i) => adv(i)) };
    const b = { ...old, advertise: Array.from({ length: 30_000 }, (_, i) => (i === 7 ? adv(i, "65001:2") : adv(i + (i >= 29_990 ? 100 : 0)))) };
    const d = diffConfig(a, b);
    expect(d.advertiseAdded.map((x) => x.prefix)).toEqual([adv(7).prefix, ...Array.from({ length: 10 }, (_, k) => adv(30_090 + k).prefix)]);
    expect(d.advertiseAdded[0]!.communities).toEqual(["65001:2"]);
    expect(d.advertiseRemoved.map((x) => x.prefix)).toEqual([adv(7).prefix, ...Array.from({ length: 10 }, (_, k) => adv(29_990 + k).prefix)]);
  });

  test("peers added and removed", () => {
    const next = edit("  - {address: 192.0.2.4, remoteAs: 65004}", "  - {address: 192.0.2.5, remoteAs: 65005}");
    const d = diffConfig(old, next);
    expect(d.peersAdded.map((p) => p.address)).toEqual(["192.0.2.5"]);
    expect(d.peersRemoved.map((p) => p.address)).toEqual(["192.0.2.4"]);
    expect(d.peersChanged).toEqual([]);
  });

  test("a session parameter change needs a reset", () => {
    const next = edit("  - {address: 192.0.2.4, remoteAs: 65004}", "  - {address: 192.0.2.4, remoteAs: 65004, holdTime: 30, description: x}");
    const d = diffConfig(old, next);
    expect(d.peersChanged).toHaveLength(1);
    const c = d.peersChanged[0]!;
    expect(c.address).toBe("192.0.2.4");
    expect(c.fields).toEqual(["holdTime", "description"]);
    expect(c.needsReset).toBe(true);
    expect([c.reimport, c.reexport]).toEqual([false, false]);
    expect(c.before.holdTime).toBe(90);
    expect(c.after.holdTime).toBe(30);
    for (const [k, line] of [
      ["remoteAs", "  - {address: 192.0.2.4, remoteAs: 65044}"],
      ["localAs", "  - {address: 192.0.2.4, remoteAs: 65004, localAs: 65010}"],
      ["port", "  - {address: 192.0.2.4, remoteAs: 65004, port: 1179}"],
      ["localAddress", "  - {address: 192.0.2.4, remoteAs: 65004, localAddress: 192.0.2.1}"],
      ["families", "  - {address: 192.0.2.4, remoteAs: 65004, families: [ipv4]}"],
      ["addPath", "  - {address: 192.0.2.4, remoteAs: 65004, addPath: {send: true}}"],
      ["passive", "  - {address: 192.0.2.4, remoteAs: 65004, passive: true}"],
      ["multihop", "  - {address: 192.0.2.4, remoteAs: 65004, multihop: 2}"],
      ["keepalive", "  - {address: 192.0.2.4, remoteAs: 65004, keepalive: 10}"],
      ["password", "  - {address: 192.0.2.4, remoteAs: 65004, password: s3cret}"],
    ] as const) {
      const ch = diffConfig(old, edit("  - {address: 192.0.2.4, remoteAs: 65004}", line)).peersChanged[0]!;
      expect(ch.fields).toEqual([k]);
      expect([ch.needsReset, ch.reimport, ch.reexport]).toEqual([true, false, false]);
    }
  });

  test("import-affecting changes re-import, export-affecting ones re-export, the rest change nothing on the session", () => {
    const peerLine = "  - {address: 192.0.2.4, remoteAs: 65004}";
    const change = (extra: string) => diffConfig(old, edit(peerLine, `  - {address: 192.0.2.4, remoteAs: 65004, ${extra}}`)).peersChanged[0]!;
    const d = diffConfig(old, edit(peerLine, "  - {address: 192.0.2.4, remoteAs: 65004, import: imp, export: none}"));
    expect(d.peersChanged.map((c) => [c.address, c.fields, c.needsReset, c.reimport, c.reexport])).toEqual([["192.0.2.4", ["import", "export"], false, true, true]]);
    for (const v of ["import: all", "allowOwnAs: 1", "enforceFirstAs: false"]) {
      const c = change(v);
      expect([v, c.needsReset, c.reimport, c.reexport]).toEqual([v, false, true, false]);
    }
    for (const v of ["export: all", "nextHopSelf: true", "asOverride: true"]) {
      const c = change(v);
      expect([v, c.needsReset, c.reimport, c.reexport]).toEqual([v, false, false, true]);
    }
    // A description (or timer, limit, admin state) change must not cause a ROUTE-REFRESH or a reset.
    for (const v of ["description: x", "maxPrefix: 10", "connectRetry: 5", "shutdown: true"]) {
      const c = change(v);
      expect([v, c.needsReset, c.reimport, c.reexport]).toEqual([v, false, false, false]);
    }
    const s = change("shutdown: bye");
    expect(s.fields).toEqual(["shutdown", "shutdownMessage"]);
    expect([s.needsReset, s.reimport, s.reexport]).toEqual([false, false, false]);
  });

  test("advertisements added, removed and changed", () => {
    const next = parse(
      ...base.map((l) =>
        l === "  - 203.0.113.0/24" ? "  - 203.0.113.128/25" : l === "  - {prefix: 198.51.100.0/24, communities: ['65001:1']}" ? "  - {prefix: 198.51.100.0/24, communities: ['65001:2']}" : l,
      ),
    );
    const d = diffConfig(old, next);
    expect(d.advertiseAdded).toEqual([
      { prefix: "203.0.113.128/25", communities: [], largeCommunities: [] },
      { prefix: "198.51.100.0/24", communities: ["65001:2"], largeCommunities: [] },
    ]);
    expect(d.advertiseRemoved).toEqual([
      { prefix: "203.0.113.0/24", communities: [], largeCommunities: [] },
      { prefix: "198.51.100.0/24", communities: ["65001:1"], largeCommunities: [] },
    ]);
  });

  test("a changed policy and the peers whose chains use it", () => {
    const d = diffConfig(old, edit("  exp: [{action: accept}]", "  exp: [{action: reject}]"));
    expect(d.policiesChanged).toEqual(["exp"]);
    expect(d.peersAffectedByPolicy).toEqual(["192.0.2.2", "192.0.2.3"]);
    expect(d.peersChanged).toEqual([]);
  });

  test("a changed prefix list changes the policies that reference it", () => {
    const d = diffConfig(old, edit("  pl: [10.0.0.0/8 le 24]", "  pl: [10.0.0.0/8 le 32]"));
    expect(d.policiesChanged).toEqual(["imp"]);
    expect(d.peersAffectedByPolicy).toEqual(["192.0.2.2"]);
    const o = diffConfig(old, edit("  other: [192.0.2.0/24]", "  other: [192.0.2.0/25]"));
    expect(o.policiesChanged).toEqual(["unused"]);
    expect(o.peersAffectedByPolicy).toEqual([]);
  });

  test("policies added and removed count as changed", () => {
    const d = diffConfig(old, parse(...base.filter((l) => !l.startsWith("  unused:")), "  # end"));
    expect(d.policiesChanged).toEqual(["unused"]);
    const a = diffConfig(old, parse(...base.map((l) => (l === "policies:" ? "policies:\n  fresh: []" : l))));
    expect(a.policiesChanged).toEqual(["fresh"]);
  });

  test("global settings", () => {
    const next = parse(
      ...base.map((l) => (l === "routerId: 192.0.2.1" ? "routerId: 192.0.2.9" : l)),
      "listen: {port: 1179}",
      "multipath: {enabled: true}",
      "mrai: 5",
      "clusterId: 192.0.2.1",
    );
    expect(diffConfig(old, next).globalChanged).toEqual(["routerId", "listen", "multipath", "clusterId", "mrai"]);
    // A new asn changes every peer's default localAs: a reset for each.
    const asn = diffConfig(old, parse(...base.map((l) => (l === "asn: 65001" ? "asn: 65009" : l))));
    expect(asn.globalChanged).toEqual(["asn"]);
    expect(asn.peersChanged.map((c) => [c.fields, c.needsReset])).toEqual([
      [["localAs"], true],
      [["localAs"], true],
      [["localAs"], true],
    ]);
  });
});

describe("bgpctl config check", () => {
  const dir = tempDirs("bgpctl-config-")();

  test("a valid file: one OK line, exit 0", async () => {
    const file = join(dir, "ok.yaml");
    writeFileSync(file, y(...HEAD, "peers:", "  - {address: 192.0.2.2, remoteAs: 65002}", "advertise: [192.0.2.0/24]", "policies: {p: []}"));
    const out: string[] = [];
    const err: string[] = [];
    expect(await runConfigCheck(file, (l) => out.push(l), (l) => err.push(l))).toBe(0);
    expect(out).toEqual([`${file}: OK (1 peer, 1 policy, 1 advertised prefix)`]);
    expect(err).toEqual([]);
  });

  test("an invalid file: every issue on stderr, exit 1", async () => {
    const file = join(dir, "bad.yaml");
    writeFileSync(file, y("asn: 65001", "routerId: 192.0.2.1", "peers:", "  - address: 192.0.2.2", "    remoteAs: abc", "    holdTime: 1"));
    const out: string[] = [];
    const err: string[] = [];
    expect(await runConfigCheck(file, (l) => out.push(l), (l) => err.push(l))).toBe(1);
    expect(out).toEqual([]);
    expect(err).toEqual([
      `${file}:5:15: peers[0].remoteAs: expected an AS number 1..4294967295, got "abc"`,
      `${file}:6:15: peers[0].holdTime: expected a hold time of 0 or 3..65535 seconds, got 1 (RFC 4271 forbids 1 and 2)`,
    ]);
  });

  test("a missing file: exit 1", async () => {
    const err: string[] = [];
    expect(await runConfigCheck(join(dir, "missing.yaml"), () => {}, (l) => err.push(l))).toBe(1);
    expect(err[0]).toContain("no such file");
  });

  test("the shipped example", async () => {
    const out: string[] = [];
    expect(await runConfigCheck(join(ROOT, "examples", "config.yaml"), (l) => out.push(l), () => {})).toBe(0);
    expect(out[0]).toEndWith("config.yaml: OK (2 peers, 2 policies, 3 advertised prefixes)");
  });
});

describe("examples", () => {
  test("examples/config.yaml loads, with the derived values", () => {
    const cfg = loadConfig(join(ROOT, "examples", "config.yaml"));
    expect(cfg.asn).toBe(65101);
    expect(cfg.routerId).toBe("192.0.2.11");
    expect(cfg.multipath).toEqual({ enabled: true, maxPaths: 2 });
    expect(cfg.peers.map((p) => [p.address, p.remoteAs, p.localAs, p.group])).toEqual([
      ["192.0.2.10", 65001, 65101, "tor"],
      ["192.0.2.12", 65002, 65101, "tor"],
    ]);
    for (const p of cfg.peers) {
      // from the peer group
      expect(p.holdTime).toBe(9);
      expect(p.keepalive).toBe(3);
      expect(p.import).toEqual({ kind: "chain", names: ["from-tor"] });
      expect(p.export).toEqual({ kind: "chain", names: ["to-tor"] });
      expect(p.maxPrefix).toEqual({ limit: 100, action: "restart", restartAfter: 300 });
      // defaults
      expect(p.port).toBe(179);
      expect(p.families).toEqual(["ipv4", "ipv6"]);
      // eBGP only, private ASNs
      expect(p.remoteAs).not.toBe(p.localAs);
      expect(p.remoteAs >= 64512 && p.remoteAs <= 65534).toBe(true);
    }
    expect(cfg.peers[0]!.description).toBe("tor-a.rack12 eth0");
    expect(cfg.advertise.map((a) => a.prefix)).toEqual(["203.0.113.53/32", "2001:db8:53::53/128", "203.0.113.123/32"]);
    expect(cfg.advertise[0]!.communities).toEqual(["65101:53"]);
    expect(cfg.prefixLists["anycast-services"]).toEqual([
      { prefix: "203.0.113.0/24", ge: 32 },
      { prefix: "2001:db8:53::/48", ge: 128 },
    ]);
    expect(Object.keys(cfg.policies).sort()).toEqual(["from-tor", "to-tor"]);
    expect(cfg.policies["from-tor"]!.default).toBe("reject");
    expect(cfg.controlSocket).toBe("/run/bgpctl/bgpctl.sock");
  });

  test("examples/bgpctl.service runs bgpctl run --config with reload, capabilities and hardening", () => {
    const unit = readFileSync(join(ROOT, "examples", "bgpctl.service"), "utf8");
    const directives = new Map<string, string[]>();
    for (const line of unit.split("\n")) {
      const m = /^([A-Za-z]+)=(.*)$/.exec(line);
      if (m) directives.set(m[1]!, [...(directives.get(m[1]!) ?? []), m[2]!]);
    }
    const one = (k: string) => directives.get(k)?.[0];
    const exec = one("ExecStart")!.split(/\s+/);
    expect(exec[0]).toBe("/usr/local/bin/bgpctl");
    expect(exec[1]).toBe("run");
    expect(exec[exec.indexOf("--config") + 1]).toBe("/etc/bgpctl/config.yaml");
    expect(one("ExecReload")).toBe("/bin/kill -HUP $MAINPID");
    expect(one("RuntimeDirectory")).toBe("bgpctl");
    expect(one("Restart")).toBe("on-failure");
    expect(one("ProtectSystem")).toBe("strict");
    for (const k of ["AmbientCapabilities", "CapabilityBoundingSet"]) {
      expect(one(k)!.split(/\s+/).sort()).toEqual(["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"]);
    }
    expect(one("NoNewPrivileges")).toBe("yes");
    expect(unit).toContain("[Install]");
  });
});

describe("kernel section", () => {
  test("values, families and exclude prefixes", () => {
    const c = parseConfig(
      `asn: 65001
routerId: 192.0.2.1
kernel:
  enabled: true
  table: 1000
  protocol: 200
  metric: 50
  ecmp: false
  families: [ipv4]
  exclude: [10.244.1.0/24, "2001:db8:1::/48"]
  retainOnExit: true
  startupDeadline: 30
`,
      "k.yaml",
    );
    expect(c.kernel).toEqual({ enabled: true, table: 1000, protocol: 200, metric: 50, ecmp: false, families: ["ipv4"], exclude: ["10.244.1.0/24", "2001:db8:1::/48"], retainOnExit: true, startupDeadline: 30 });
  });

  test("errors name line and column", () => {
    let err: unknown;
    try {
      parseConfig("asn: 65001\nrouterId: 192.0.2.1\nkernel:\n  protocol: 300\n  exclude: [10.0.0.1/8]\n  tabel: 5\n", "k.yaml");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toContain("k.yaml:4:13: kernel.protocol: expected a route protocol number 1..255");
    expect(msg).toMatch(/k\.yaml:5:13: kernel\.exclude\[0\]: expected a prefix ADDRESS\/LENGTH.*host bits/);
    expect(msg).toMatch(/k\.yaml:6:3: kernel\.tabel: unknown key "tabel" \(did you mean "table"\?\)/);
  });
});
