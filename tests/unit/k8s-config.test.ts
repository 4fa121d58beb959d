/**
 * The configuration pieces watch-k8s adds to lib/config: the `kubernetes:`
 * section (defaults, every key, errors with line and column), `health:`,
 * per-peer `password` / `passwordFile`, the `match.source` policy condition
 * (compiled and applied), and `bgpctl run` refusing a file meant for
 * watch-k8s. Also Router.apply replacing an advertisement in place.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, DEFAULTS, loadConfig, parseConfig } from "../../lib/config/load.ts";
import { diffConfig } from "../../lib/config/diff.ts";
import { applyPolicy, compilePolicies } from "../../lib/rib/policy.ts";
import { makeRoute } from "../../lib/rib/types.ts";
import { emptyAttributes } from "../../lib/bgp/attributes.ts";
import { tempDirs } from "../support/tmp.ts";

const tmp = tempDirs("bgpctl-k8s-cfg-");

const y = (...lines: string[]) => lines.join("\n") + "\n";

function errors(text: string): string[] {
  try {
    parseConfig(text, "t.yaml");
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("expected a ConfigError");
}

describe("kubernetes: section", () => {
  test("an empty section takes every default; asn and routerId come from the cluster; kernel routes on", () => {
    const c = parseConfig(y("kubernetes: {}"), "t.yaml");
    expect(c.asn).toBe(64512);
    expect(c.routerId).toBe("0.0.0.0");
    expect(c.kernel.enabled).toBe(true);
    const k = c.kubernetes!;
    expect(k.asn).toBe(DEFAULTS.kubernetes.asn);
    expect(k.mesh).toBe(true);
    expect(k.peers).toEqual([]);
    expect(k.services).toEqual({
      clusterIPs: true,
      externalIPs: true,
      loadBalancerIPs: true,
      allowedRanges: [],
      clusterIPRanges: [],
      externalIPRanges: [],
      loadBalancerIPRanges: [],
      communities: [],
      largeCommunities: [],
      withdrawWhenCordoned: true,
      withdrawWhenExcluded: true,
      requireEndpoints: true,
    });
    expect(k.api).toEqual({ pageSize: 500, watchTimeoutSeconds: 240 });
    // `kubernetes:` with nothing under it is the same.
    expect(parseConfig(y("kubernetes:"), "t.yaml").kubernetes).toEqual(k);
  });

  test("kernel.enabled false is respected; the top-level asn wins; peers default their localAs to the cluster AS", () => {
    const c = parseConfig(
      y(
        "kernel: {enabled: false}",
        "kubernetes:",
        "  asn: 64600",
        "  nodeName: n1",
        "  peers:",
        "    - address: 192.0.2.254",
        "      remoteAs: 65000",
        "      nodeSelector: {rack: r1, zone: 2}",
        "      passwordSecret: {name: s, key: k}",
      ),
      "t.yaml",
    );
    expect(c.kernel.enabled).toBe(false);
    expect(c.asn).toBe(64600);
    const p = c.kubernetes!.peers[0]!;
    expect(p.peer.localAs).toBe(64600);
    expect(p.peer.remoteAs).toBe(65000);
    expect(p.nodeSelector).toEqual({ rack: "r1", zone: "2" });
    expect(p.passwordSecret).toEqual({ namespace: "kube-system", name: "s", key: "k" });
    expect(c.kubernetes!.nodeName).toBe("n1");
    expect(parseConfig(y("asn: 65001", "kubernetes: {asn: 64600}"), "t.yaml").asn).toBe(65001);
  });

  test("every error names the key with line and column, several at once", () => {
    const e = errors(
      y(
        "kubernetes:",
        "  asn: x",
        "  mesh: maybe",
        "  services: {clusterIP: true, allowedRanges: [10.0.0.0/33]}",
        "  api: {watchTimeoutSeconds: 300}",
        "  peers:",
        "    - address: 192.0.2.1",
        "      remoteAs: 65000",
        "      password: a",
        "      passwordSecret: {name: s, key: k}",
        "    - address: 192.0.2.2",
      ),
    );
    const text = e.join("\n");
    expect(text).toContain("t.yaml:2:8: kubernetes.asn: expected an AS number");
    expect(text).toContain("t.yaml:3:9: kubernetes.mesh:");
    expect(text).toMatch(/t\.yaml:4:\d+: kubernetes\.services\.clusterIP: unknown key "clusterIP" \(did you mean "clusterIPs"\?\)/);
    expect(text).toMatch(/t\.yaml:4:\d+: kubernetes\.services\.allowedRanges\[0\]: expected a prefix/);
    expect(text).toMatch(/t\.yaml:5:\d+: kubernetes\.api\.watchTimeoutSeconds: expected a watch timeout 10\.\.289 seconds/);
    expect(text).toMatch(/t\.yaml:10:\d+: kubernetes\.peers\[0\]\.passwordSecret: passwordSecret and password\/passwordFile are both set/);
    expect(text).toMatch(/t\.yaml:11:\d+: kubernetes\.peers\[1\]\.remoteAs: missing required key "remoteAs"/);
  });

  test("without a kubernetes section asn and routerId stay required", () => {
    const text = errors(y("peers: []")).join("\n");
    expect(text).toContain('missing required key "asn"');
    expect(text).toContain('missing required key "routerId"');
  });

  test("bgpctl run refuses a watch-k8s file, naming the command to use", () => {
    const dir = tmp();
    const file = join(dir, "k.yaml");
    writeFileSync(file, y("controlSocket: " + join(dir, "s.sock"), "kubernetes: {}"));
    const bin = process.env.BGPCTL_BIN ?? join(import.meta.dir, "..", "..", "dist", "bgpctl");
    const r = Bun.spawnSync([bin, "run", "--config", file], { stdout: "pipe", stderr: "pipe", timeout: 10_000 });
    expect(r.exitCode).toBe(1);
    expect(r.stderr.toString()).toContain("bgpctl watch-k8s --config");
  });
});

describe("health, passwords, match.source", () => {
  test("health: defaults and errors", () => {
    const c = parseConfig(y("asn: 65001", "routerId: 192.0.2.1", "health: {}"), "t.yaml");
    expect(c.health).toEqual({ address: "::", port: 9179 });
    expect(parseConfig(y("asn: 65001", "routerId: 192.0.2.1"), "t.yaml").health).toBeUndefined();
    expect(errors(y("asn: 65001", "routerId: 192.0.2.1", "health: {port: 0}")).join("\n")).toContain("t.yaml:3:16: health.port: expected a port 1..65535, got 0");
  });

  test("password and passwordFile (relative to the config file), length limits, both set is an error", () => {
    const dir = tmp();
    writeFileSync(join(dir, "tor.pw"), "s3cret\n");
    const file = join(dir, "c.yaml");
    writeFileSync(
      file,
      y("asn: 65001", "routerId: 192.0.2.1", "peers:", "  - {address: 192.0.2.2, remoteAs: 65002, passwordFile: tor.pw}", "  - {address: 192.0.2.3, remoteAs: 65003, password: plain}"),
    );
    const c = loadConfig(file);
    expect(c.peers[0]!.password).toBe("s3cret");
    expect(c.peers[1]!.password).toBe("plain");
    const long = "x".repeat(81);
    const text = errors(
      y(
        "asn: 65001",
        "routerId: 192.0.2.1",
        "peers:",
        `  - {address: 192.0.2.2, remoteAs: 65002, password: ${long}}`,
        "  - {address: 192.0.2.3, remoteAs: 65003, password: a, passwordFile: /nonexistent/pw}",
      ),
    ).join("\n");
    expect(text).toContain("peers[0].password: expected a TCP-MD5 password of at most 80 bytes");
    expect(text).toContain("peers[1].passwordFile: expected a readable password file, got");
    expect(text).toContain("no such file");
    // A password change needs a new session (the key is set on the socket).
    const a = parseConfig(y("asn: 65001", "routerId: 192.0.2.1", "peers: [{address: 192.0.2.2, remoteAs: 65002, password: a}]"), "t.yaml");
    const b = parseConfig(y("asn: 65001", "routerId: 192.0.2.1", "peers: [{address: 192.0.2.2, remoteAs: 65002, password: b}]"), "t.yaml");
    const d = diffConfig(a, b);
    expect(d.peersChanged[0]!.fields).toEqual(["password"]);
    expect(d.peersChanged[0]!.needsReset).toBe(true);
  });

  test("match.source: local / ibgp / ebgp routes, compiled and applied", () => {
    const c = parseConfig(
      y(
        "asn: 65001",
        "routerId: 192.0.2.1",
        "policies:",
        "  p:",
        "    terms:",
        "      - match: {source: [local, ibgp]}",
        "        action: accept",
        "    default: reject",
      ),
      "t.yaml",
    );
    expect(c.policies.p!.terms[0]!.match!.source).toEqual(["local", "ibgp"]);
    const compiled = compilePolicies(c.policies, c.prefixLists);
    const src = (kind: "local" | "ibgp" | "ebgp") => ({
      id: kind,
      address: kind === "local" ? "" : "192.0.2.9",
      addressBytes: kind === "local" ? new Uint8Array(0) : new Uint8Array([192, 0, 2, 9]),
      asn: kind === "ebgp" ? 65009 : 65001,
      routerId: 0,
      ibgp: kind !== "ebgp",
      rrClient: false,
      local: kind === "local",
    });
    const verdict = (kind: "local" | "ibgp" | "ebgp") => {
      const r = makeRoute({ afi: 1, len: 24, addr: new Uint8Array([198, 51, 100, 0]) }, 0, src(kind), emptyAttributes(), new Uint8Array([192, 0, 2, 9]));
      const ctx = { direction: "export" as const, localAs: 65001, peerAddress: "192.0.2.2", localAddress: null };
      return applyPolicy({ kind: "chain", names: ["p"] }, "ebgp", r, ctx, compiled).accept;
    };
    expect([verdict("local"), verdict("ibgp"), verdict("ebgp")]).toEqual([true, true, false]);
    expect(errors(y("asn: 65001", "routerId: 192.0.2.1", "policies:", "  p:", "    terms:", "      - match: {source: [igp]}")).join("\n")).toContain(
      "policies.p.terms[0].match.source[0]",
    );
  });
});
