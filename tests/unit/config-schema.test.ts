/**
 * The configuration schema as the one source (lib/config/schema.ts): every
 * key it knows is shown in examples/config.yaml (and the kubernetes keys in
 * the README), a runtime `peer add` gets exactly the defaults and checks of
 * a peer in the file (peerFromRequest), `advertise` requests validate like
 * file advertisements, the new enforceFirstAs key, the reload effects of
 * every peer key (diffPeer), and the defaults exported for lib/k8s.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { RESET_FIELDS, diffPeer } from "../../lib/config/diff.ts";
import { ConfigError, DEFAULTS, defaultKubernetesConfig, parseConfig, parsePeerList } from "../../lib/config/load.ts";
import { settingsGlobals } from "../../lib/config/resolve.ts";
import { advertiseFromRequest, checkPeerRequest, peerFromRequest, requestErrorText, withdrawFromRequest } from "../../lib/config/request.ts";
import { DocumentSchema, KubernetesSchema, PeerConfigSchema, PeerGroupSchema, PeerSchema, RequestPeerSchema, metaOf } from "../../lib/config/schema.ts";
import type { PeerConfig } from "../../lib/config/types.ts";

const ROOT = join(import.meta.dir, "..", "..");
const y = (...lines: string[]) => lines.join("\n") + "\n";
const HEAD = ["asn: 65001", "routerId: 192.0.2.1"];

/** Every mapping key a schema accepts, anywhere inside it (through lists, records, unions, defaults and pipes). */
function schemaKeys(s: z.ZodType, skip: readonly string[] = [], out = new Set<string>()): Set<string> {
  const d = s._zod.def as { type: string; innerType?: z.ZodType; in?: z.ZodType; out?: z.ZodType; shape?: Record<string, z.ZodType>; element?: z.ZodType; valueType?: z.ZodType; options?: z.ZodType[] };
  if (d.innerType) schemaKeys(d.innerType, skip, out);
  if (d.in) schemaKeys(d.in, skip, out);
  if (d.out) schemaKeys(d.out, skip, out);
  if (d.element) schemaKeys(d.element, skip, out);
  if (d.valueType) schemaKeys(d.valueType, skip, out);
  for (const o of d.options ?? []) schemaKeys(o, skip, out);
  for (const [k, v] of Object.entries(d.shape ?? {})) {
    if (skip.includes(k)) continue;
    out.add(k);
    schemaKeys(v, skip, out);
  }
  return out;
}

/** The keys of `keys` that `text` never shows as `key:` (commented or not). */
function undocumented(keys: Iterable<string>, text: string): string[] {
  return [...keys].filter((k) => !new RegExp(`(^|[\\s{,#-])${k}:`, "m").test(text)).sort();
}

function requestError(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return requestErrorText(e);
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("every key is documented", () => {
  const example = readFileSync(join(ROOT, "examples", "config.yaml"), "utf8");
  // The file keys of `bgpctl run` (kubernetes: is watch-k8s's, below); the
  // resolved-only keys (shutdownMessage) are not written in a file.
  const fileKeys = new Set([...schemaKeys(DocumentSchema, ["kubernetes"]), ...schemaKeys(PeerGroupSchema)]);

  test("examples/config.yaml shows every key of the schema", () => {
    expect(fileKeys.size).toBeGreaterThan(80);
    for (const k of ["enforceFirstAs", "inherit", "passwordFile", "addPath", "asPathPrepend", "startupDeadline", "restartAfter"]) expect(fileKeys.has(k)).toBe(true);
    expect(undocumented(fileKeys, example)).toEqual([]);
  });

  test("a key added to the schema without an example is caught", () => {
    const grown = DocumentSchema.extend({ brandNewKey: z.boolean().optional() });
    expect(undocumented(schemaKeys(grown, ["kubernetes"]), example)).toEqual(["brandNewKey"]);
  });

  test("the README's kubernetes block shows every kubernetes key; its peer key list names enforceFirstAs", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const block = readme.slice(readme.indexOf("kubernetes:\n  nodeName:"));
    const peerOnly = new Set(schemaKeys(PeerSchema));
    const kubeKeys = [...schemaKeys(KubernetesSchema)].filter((k) => !peerOnly.has(k) || k === "asn" || k === "routerId");
    expect(undocumented(kubeKeys, block.slice(0, block.indexOf("```")))).toEqual([]);
    expect(readme).toContain("enforceFirstAs");
  });

  test("the example loads, and sets the keys it shows uncommented", () => {
    const cfg = parseConfig(example, "config.yaml");
    expect(cfg.peers.map((p) => [p.group, p.connectRetry, p.enforceFirstAs, p.families])).toEqual([
      ["tor", 5, true, ["ipv4", "ipv6"]],
      ["tor", 5, true, ["ipv4", "ipv6"]],
    ]);
    expect(cfg.health).toEqual({ address: "::1", port: 9179 });
    expect(cfg.kernel.enabled).toBe(true);
    expect(cfg.advertise[2]!.asPathPrepend).toBe(2);
  });
});

describe("peer add gets what a file peer gets", () => {
  const ctx = { asn: 65001, policies: ["imp", "exp"] };
  const filePeer = (keys: string): PeerConfig =>
    parseConfig(y(...HEAD, "policies: {imp: [], exp: []}", "peers:", `  - {address: 192.0.2.2, ${keys}}`), "t.yaml").peers[0]!;

  test("the same defaults, from the same schema", () => {
    const runtime = peerFromRequest({ address: "192.0.2.2", remoteAs: 65002 }, ctx);
    expect(runtime).toEqual(filePeer("remoteAs: 65002"));
    expect(runtime.enforceFirstAs).toBe(true);
    expect(runtime.connectRetry).toBe(DEFAULTS.peer.connectRetry);
    expect(runtime.localAs).toBe(65001);
  });

  test("every file key but group and passwordFile, normalised alike", () => {
    // One peer, written once: as a line of the file, and (parsed) as the JSON body of a request.
    const flow =
      "{address: '2001:DB8::2', remoteAs: 65002, localAs: 65010, port: 1179, localAddress: '2001:db8::1', passive: true, holdTime: 30, keepalive: 10, " +
      "connectRetry: 5, families: [ipv6], nextHopSelf: true, routeReflectorClient: false, multihop: false, import: [imp, exp], export: all, " +
      "maxPrefix: {limit: 10, action: restart}, description: lab, shutdown: maintenance, allowOwnAs: 1, enforceFirstAs: false, asOverride: true, " +
      "addPath: {receive: true}, password: s3cret, ttlSecurity: 2, gracefulRestart: {restartTime: 30}, bfd: {enabled: true, minTx: 100}}";
    const body = parseYaml(flow) as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(Object.keys(RequestPeerSchema.shape).sort());
    const file = parseConfig(y(...HEAD, "policies: {imp: [], exp: []}", "peers:", `  - ${flow}`), "t.yaml").peers[0]!;
    const runtime = peerFromRequest(body, ctx);
    expect(runtime).toEqual(file);
    expect(runtime).toMatchObject({ address: "2001:db8::2", import: { kind: "chain", names: ["imp", "exp"] }, shutdown: true, shutdownMessage: "maintenance" });
    expect(runtime.maxPrefix).toEqual({ limit: 10, action: "restart", restartAfter: 60 });
    expect(runtime.addPath).toEqual({ send: false, receive: true });
  });

  test("errors name the key, without a file or line; unknown keys get a did-you-mean", () => {
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: "abc" }, ctx))).toBe('remoteAs: expected an AS number 1..4294967295, got "abc"');
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, remoteAS: 1 }, ctx))).toBe('remoteAS: unknown field (did you mean "remoteAs"?)');
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, enforceFirstAS: false }, ctx))).toBe(
      'enforceFirstAS: unknown field (did you mean "enforceFirstAs"?)',
    );
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, group: "g" }, ctx))).toBe("group: unknown field (peer groups exist only in the configuration file)");
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, passwordFile: "/x" }, ctx))).toBe("passwordFile: unknown field (give the password itself)");
    expect(requestError(() => peerFromRequest({ remoteAs: 65002 }, ctx))).toBe("address: required (the peer's IPv4 or IPv6 address)");
    expect(requestError(() => peerFromRequest([1], ctx))).toBe("expected a JSON object with address, remoteAs, ..., got a list");
    // several at once, each with its key; a scalar given for a list is named by its key
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, holdTime: 2, families: "ipv5", enforceFirstAs: "no" }, ctx))).toBe(
      [
        "holdTime: expected a hold time of 0 or 3..65535 seconds, got 2 (RFC 4271 forbids 1 and 2)",
        'families: expected ipv4 or ipv6, got "ipv5" (did you mean ipv4?)',
        'enforceFirstAs: expected true or false, got "no"',
      ].join("\n"),
    );
    let err: ConfigError | undefined;
    try {
      peerFromRequest({ address: "192.0.2.2", remoteAs: 0 }, ctx);
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err!.issues).toEqual([{ file: "", line: 0, column: 0, path: "remoteAs", message: "expected an AS number 1..4294967295, got 0" }]);
  });

  test("policies must exist; the file's cross-checks apply", () => {
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, import: "im", export: ["exp", "nope"] }, ctx))).toBe(
      ['import: policy "im" is not defined (did you mean "imp"?)', 'export[1]: policy "nope" is not defined'].join("\n"),
    );
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, holdTime: 30, keepalive: 30 }, ctx))).toBe(
      "keepalive: expected a keepalive interval less than holdTime 30, got 30",
    );
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, routeReflectorClient: true }, ctx))).toBe(
      "routeReflectorClient: routeReflectorClient requires an iBGP peer (remoteAs equal to localAs 65001), got remoteAs 65002",
    );
    expect(requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, localAddress: "2001:db8::1" }, ctx))).toBe(
      'localAddress: expected an IPv4 local address for IPv4 peer 192.0.2.2, got "2001:db8::1"',
    );
    expect(peerFromRequest({ address: "192.0.2.2", remoteAs: 65001, routeReflectorClient: true, import: "none" }, ctx).routeReflectorClient).toBe(true);
  });

  test("the control socket's own check: keys and types, the body passed on unchanged", () => {
    const body = { address: "192.0.2.9", remoteAs: 65009, import: "not-yet-known", enforceFirstAs: false };
    expect(checkPeerRequest(body)).toBe(body);
    expect(requestError(() => checkPeerRequest({ address: "192.0.2.9" }))).toBe("remoteAs: required (the peer's AS number)");
  });
});

describe("advertise requests validate like file advertisements", () => {
  const fileIssue = (entry: string) => {
    try {
      parseConfig(y(...HEAD, "advertise:", `  - ${entry}`), "t.yaml");
    } catch (e) {
      return (e as ConfigError).issues.map((i) => `${i.path.replace(/^advertise\[0\]\./, "")}: ${i.message}`).join("\n");
    }
    throw new Error("expected a ConfigError");
  };

  test("the same keys, the same messages", () => {
    for (const [yaml, body] of [
      ["{prefix: 192.0.2.0/24, communities: ['70000:1']}", { prefixes: ["192.0.2.0/24"], communities: ["70000:1"] }],
      ["{prefix: 192.0.2.0/24, largeCommunities: ['1:2']}", { prefixes: ["192.0.2.0/24"], largeCommunities: ["1:2"] }],
      ["{prefix: 192.0.2.0/24, asPathPrepend: 33}", { prefixes: ["192.0.2.0/24"], asPathPrepend: 33 }],
      ["{prefix: 192.0.2.0/24, localPref: -1}", { prefixes: ["192.0.2.0/24"], localPref: -1 }],
      ["{prefix: 192.0.2.0/24, nextHop: nope}", { prefixes: ["192.0.2.0/24"], nextHop: "nope" }],
    ] as const) {
      expect(requestError(() => advertiseFromRequest(body))).toBe(fileIssue(yaml).replace("[0]", "[0]"));
    }
    expect(requestError(() => advertiseFromRequest({ prefixes: ["10.0.0.1/8"] }))).toBe(
      'prefixes[0]: expected a prefix ADDRESS/LENGTH, got "10.0.0.1/8" (host bits set; did you mean 10.0.0.0/8?)',
    );
    expect(requestError(() => advertiseFromRequest({ prefixes: ["10.0.0.0/8"], colour: "red" }))).toBe('colour: unknown field');
  });

  test("one advertisement per prefix, canonical, with every attribute", () => {
    expect(
      advertiseFromRequest({ prefixes: ["2001:DB8:1::/48", "203.0.113.0/24"], communities: ["65001:0100", "no-export"], largeCommunities: ["65001:1:2"], localPref: 5, med: 0, asPathPrepend: 2 }),
    ).toEqual([
      { prefix: "2001:db8:1::/48", communities: ["65001:100", "no-export"], largeCommunities: ["65001:1:2"], localPref: 5, med: 0, asPathPrepend: 2 },
      { prefix: "203.0.113.0/24", communities: ["65001:100", "no-export"], largeCommunities: ["65001:1:2"], localPref: 5, med: 0, asPathPrepend: 2 },
    ]);
    expect(withdrawFromRequest({ prefixes: ["2001:DB8:1::/48"] })).toEqual(["2001:db8:1::/48"]);
    expect(requestError(() => withdrawFromRequest({ prefixes: [] }))).toBe("prefixes: must not be empty (a non-empty array of prefixes)");
  });
});

describe("enforceFirstAs", () => {
  test("default true; set per peer, per group (inherited), per Kubernetes peer and annotation peer", () => {
    const cfg = parseConfig(
      y(
        ...HEAD,
        "peerGroups:",
        "  rs: {enforceFirstAs: false}",
        "peers:",
        "  - {address: 192.0.2.2, remoteAs: 65002}",
        "  - {address: 192.0.2.3, remoteAs: 65003, enforceFirstAs: false}",
        "  - {address: 192.0.2.4, remoteAs: 65004, group: rs}",
        "  - {address: 192.0.2.5, remoteAs: 65005, group: rs, enforceFirstAs: true}",
      ),
      "t.yaml",
    );
    expect(cfg.peers.map((p) => p.enforceFirstAs)).toEqual([true, false, false, true]);
    const k = parseConfig(y("kubernetes:", "  peers:", "    - {address: 192.0.2.254, remoteAs: 65000, enforceFirstAs: false}"), "t.yaml");
    expect(k.kubernetes!.peers[0]!.peer.enforceFirstAs).toBe(false);
    expect(parsePeerList("- {address: 192.0.2.9, remoteAs: 65009, enforceFirstAs: false}", "ann", { asn: 64512, policies: [] })[0]!.peer.enforceFirstAs).toBe(false);
  });

  test("a value that is not a boolean, at its line and column", () => {
    let err: ConfigError | undefined;
    try {
      parseConfig(y(...HEAD, "peers:", "  - address: 192.0.2.2", "    remoteAs: 65002", "    enforceFirstAs: no"), "t.yaml");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err!.message).toBe('t.yaml:6:21: peers[0].enforceFirstAs: expected true or false, got "no"');
  });
});

describe("gracefulRestart and bfd: top level, peer group, peer", () => {
  const ctx = { asn: 65001, policies: [] };
  const issues = (text: string) => {
    try {
      parseConfig(text, "t.yaml");
    } catch (e) {
      if (e instanceof ConfigError) return e.issues;
      throw e;
    }
    throw new Error("expected a ConfigError");
  };
  test("merged key by key, nearest first, over the defaults; peer add and mesh peers get the top level too", () => {
    const cfg = parseConfig(
      y(
        ...HEAD,
        "gracefulRestart: {restartTime: 60, longLivedStaleTime: 3600}",
        "bfd: {minTx: 100, multiplier: 5}",
        "peerGroups:",
        "  g: {bfd: {enabled: true, minTx: 200}, gracefulRestart: {notification: false}}",
        "peers:",
        "  - {address: 192.0.2.2, remoteAs: 65002, group: g, bfd: {minRx: 50}}",
        "  - {address: 192.0.2.3, remoteAs: 65003}",
      ),
      "t.yaml",
    );
    const [a, b] = cfg.peers;
    expect(a!.bfd).toEqual({ enabled: true, minTx: 200, minRx: 50, multiplier: 5, graceful: false });
    expect(a!.gracefulRestart).toEqual({ enabled: true, restartTime: 60, notification: false, longLivedStaleTime: 3600, selectionDeferral: 360 });
    expect(b!.bfd).toEqual({ enabled: false, minTx: 100, minRx: 300, multiplier: 5, graceful: false });
    expect(b!.gracefulRestart.restartTime).toBe(60);
    const added = peerFromRequest({ address: "192.0.2.9", remoteAs: 65009, bfd: { enabled: true } }, { ...ctx, globals: settingsGlobals(cfg) });
    expect(added.bfd).toEqual({ enabled: true, minTx: 100, minRx: 300, multiplier: 5, graceful: false });
  });

  test("bad values are named where written; ttlSecurity and multihop exclude each other", () => {
    const err = issues(y(...HEAD, "bfd: {minTx: 5}", "peers:", "  - {address: 192.0.2.2, remoteAs: 65002, gracefulRestart: {restartTime: 5000, foo: 1}}"));
    expect(err.map((i) => `${i.path}: ${i.message}`)).toEqual([
      "bfd.minTx: expected an interval 10..60000 milliseconds, got 5",
      "peers[0].gracefulRestart.restartTime: expected a restart time 0..4095 seconds, got 5000",
      expect.stringContaining("peers[0].gracefulRestart.foo: unknown"),
    ]);
    const both = issues(y(...HEAD, "peers:", "  - {address: 192.0.2.2, remoteAs: 65002, multihop: 2, ttlSecurity: 2}"));
    expect(both.map((i) => i.message)).toEqual(["ttlSecurity and multihop are both set; keep one (ttlSecurity: 2 already allows 2 hops)"]);
  });
});

describe("reload effects come from the schema", () => {
  const base = peerFromRequest({ address: "192.0.2.2", remoteAs: 65002 }, { asn: 65001, policies: ["p"] });
  const change = (o: Partial<PeerConfig>) => diffPeer(base, { ...base, ...o });

  test("every PeerConfig key has a reload effect", () => {
    for (const [k, s] of Object.entries(PeerConfigSchema.shape)) expect([k, metaOf(s).reload !== undefined]).toEqual([k, true]);
    expect([...RESET_FIELDS].sort()).toEqual(
      ["remoteAs", "localAs", "port", "localAddress", "families", "addPath", "holdTime", "keepalive", "passive", "multihop", "password", "ttlSecurity", "gracefulRestart"].sort(),
    );
  });

  test("diffPeer: reset, re-import, re-export, or nothing", () => {
    expect(change({})).toEqual({ fields: [], needsReset: false, reimport: false, reexport: false });
    expect(change({ description: "x" })).toEqual({ fields: ["description"], needsReset: false, reimport: false, reexport: false });
    expect(change({ enforceFirstAs: false })).toEqual({ fields: ["enforceFirstAs"], needsReset: false, reimport: true, reexport: false });
    expect(change({ routeReflectorClient: true })).toEqual({ fields: ["routeReflectorClient"], needsReset: false, reimport: false, reexport: true });
    expect(change({ keepalive: 5, import: { kind: "all" } })).toEqual({ fields: ["keepalive", "import"], needsReset: true, reimport: true, reexport: false });
    expect(change({ group: "g", connectRetry: 1, maxPrefix: { limit: 1, action: "warn", restartAfter: 60 } })).toMatchObject({ needsReset: false, reimport: false, reexport: false });
  });
});

describe("odd input", () => {
  test("user-named mappings may use any name, even __proto__", () => {
    const cfg = parseConfig(y(...HEAD, "policies:", '  "__proto__": [{action: accept}]', "prefixLists:", '  "constructor": [10.0.0.0/8]'), "t.yaml");
    expect(Object.keys(cfg.policies)).toEqual(["__proto__"]);
    expect(Object.getPrototypeOf(cfg.policies)).toBe(Object.prototype);
    expect(cfg.policies["__proto__"]!.terms).toEqual([{ action: "accept" }]);
    expect(Object.hasOwn(cfg.prefixLists, "constructor")).toBe(true);
    // ... but a key named like an Object property is no peer key.
    const err = requestError(() => peerFromRequest({ address: "192.0.2.2", remoteAs: 65002, constructor: 1, toString: "x" }, { asn: 65001, policies: [] }));
    expect(err).toBe("constructor: unknown field\ntoString: unknown field");
  });

  test("YAML-only problems: a key that is not text, a merge of something other than a mapping", () => {
    let err: ConfigError | undefined;
    try {
      parseConfig(y(...HEAD, "? [a]", ": 1", "peers:", "  - <<: 5", "    address: 192.0.2.2", "    remoteAs: 65002"), "x.yaml");
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err!.message).toBe(['x.yaml:3:3: expected a key name, got a list', 'x.yaml:6:9: peers[0]["<<"]: expected a mapping (or list of mappings) to merge, got 5'].join("\n"));
  });

  test("an alternative is reported as the kind of value written", () => {
    const msg = (line: string) => {
      try {
        parseConfig(y(...HEAD, "peers:", `  - {address: 192.0.2.2, remoteAs: 65002, ${line}}`), "t.yaml");
      } catch (e) {
        return (e as ConfigError).issues.map((i) => `${i.path}: ${i.message}`).join("\n");
      }
      return "";
    };
    expect(msg("multihop: 256")).toBe("peers[0].multihop: expected true, false or a TTL 1..255, got 256");
    expect(msg("multihop: x")).toBe('peers[0].multihop: expected true, false or a TTL 1..255, got "x"');
    expect(msg("maxPrefix: {limit: 5, action: stop}")).toBe('peers[0].maxPrefix.action: expected warn or restart, got "stop"');
    expect(msg("maxPrefix: 0")).toBe("peers[0].maxPrefix: expected a prefix limit 1..4294967295, got 0");
    expect(msg("import: ''")).toBe('peers[0].import: expected a policy name, a list of policy names, "all" or "none", got ""');
  });
});

describe("defaults for lib/k8s", () => {
  test("DEFAULTS and defaultKubernetesConfig are the schema's", () => {
    // The defaults of a peer are the schema's: exactly what a peer with no keys gets.
    const bare = peerFromRequest({ address: "192.0.2.2", remoteAs: 65002 }, { asn: 65001, policies: [] }) as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(DEFAULTS.peer)) expect([k, v as unknown]).toEqual([k, bare[k]]);
    expect(DEFAULTS.peer).toMatchObject({ holdTime: 90, connectRetry: 120, enforceFirstAs: true, multihop: false, families: ["ipv4", "ipv6"] });
    expect(DEFAULTS.kubernetes.asn).toBe(64512);
    expect(DEFAULTS.kubernetes.secretNamespace).toBe("kube-system");
    expect(defaultKubernetesConfig()).toEqual(parseConfig("kubernetes: {}\n", "t.yaml").kubernetes!);
    // Each call is a fresh object: callers may change it.
    const a = defaultKubernetesConfig();
    a.services.communities.push("1:1");
    expect(defaultKubernetesConfig().services.communities).toEqual([]);
  });
});
