/**
 * lib/k8s/flags.ts: `bgpctl watch-k8s` configured by kube-router style flags,
 * with no config file (every default, as "kubernetes: {}") or on top of one.
 * Flag values land where the file's keys would; a flag that disagrees with a
 * key the file sets is an error naming the flag and the key's file:line;
 * equal values are fine; bad flag values are usage errors naming the flag.
 */
import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { UsageError } from "../../lib/cli/args.ts";
import { defaultKubernetesConfig, parseConfig } from "../../lib/config/load.ts";
import { EMPTY_K8S_CONFIG, type K8sFlags, NO_CONFIG_FILE, k8sConfig } from "../../lib/k8s/flags.ts";
import { tempDirs } from "../support/tmp.ts";

const dir = tempDirs("bgpctl-k8s-flags-")();
let n = 0;
function file(text: string): string {
  const p = join(dir, `f${++n}.yaml`);
  writeFileSync(p, text);
  return p;
}

/** The UsageError message of k8sConfig(f). */
function usageError(f: K8sFlags): string {
  try {
    k8sConfig(f);
  } catch (e) {
    expect(e).toBeInstanceOf(UsageError);
    return (e as Error).message;
  }
  throw new Error("k8sConfig accepted the flags");
}

describe("no config file", () => {
  test("no flags: the configuration of a file holding only `kubernetes: {}`", () => {
    const c = k8sConfig({});
    expect(c).toEqual(parseConfig(EMPTY_K8S_CONFIG, NO_CONFIG_FILE));
    expect(c.kubernetes).toEqual(defaultKubernetesConfig());
    expect(c.kernel.enabled).toBe(true);
    expect(c.health).toBeUndefined();
    expect(c.source).toBe(NO_CONFIG_FILE);
  });

  test("every flag lands on its key", () => {
    const pw = file("s3cret\n\nother\n");
    const c = k8sConfig({
      nodeName: " n7 ",
      kubeconfig: "/etc/kube/config",
      clusterAsn: "65010",
      peerRouterIps: "192.0.2.254, 2001:DB8::FE,198.51.100.1",
      peerRouterAsns: "65000,65001,65002",
      peerRouterPasswordsFile: pw,
      advertiseClusterIp: false,
      advertiseExternalIp: true,
      advertiseLoadbalancerIp: false,
      healthPort: "9180",
    });
    const k = c.kubernetes!;
    expect(k.nodeName).toBe("n7");
    expect(k.kubeconfig).toBe("/etc/kube/config");
    expect(k.asn).toBe(65010);
    expect(k.services).toMatchObject({ clusterIPs: false, externalIPs: true, loadBalancerIPs: false });
    expect(c.health).toEqual({ address: "::", port: 9180 });
    expect(k.peers.map((p) => [p.peer.address, p.peer.remoteAs, p.peer.localAs, p.peer.password])).toEqual([
      ["192.0.2.254", 65000, 65010, "s3cret"],
      ["2001:db8::fe", 65001, 65010, undefined],
      ["198.51.100.1", 65002, 65010, "other"],
    ]);
    // Safest default: the ToR's routes are not installed; every node, no selector.
    for (const p of k.peers) {
      expect(p.peer.import).toEqual({ kind: "none" });
      expect(p.nodeSelector).toEqual({});
    }
  });

  test("one AS number for every peer address", () => {
    const k = k8sConfig({ peerRouterIps: "192.0.2.1,192.0.2.2", peerRouterAsns: "65000" }).kubernetes!;
    expect(k.peers.map((p) => p.peer.remoteAs)).toEqual([65000, 65000]);
    expect(k.peers.every((p) => p.peer.password === undefined)).toBe(true);
  });
});

describe("Service range flags", () => {
  test("each lands on its list, canonical; equal to the file's list is fine, a different one is a conflict naming file:line", () => {
    const c = k8sConfig({ clusterIpRanges: "10.96.0.0/12, FD00:10:96::/112", externalIpRanges: "203.0.113.0/24", loadbalancerIpRanges: "198.51.100.0/24" });
    expect(c.kubernetes!.services.clusterIPRanges).toEqual(["10.96.0.0/12", "fd00:10:96::/112"]);
    expect(c.kubernetes!.services.externalIPRanges).toEqual(["203.0.113.0/24"]);
    expect(c.kubernetes!.services.loadBalancerIPRanges).toEqual(["198.51.100.0/24"]);
    const f = file("kubernetes:\n  services:\n    clusterIPRanges: [10.96.0.0/12]\n");
    expect(k8sConfig({ config: f, clusterIpRanges: "10.96.0.0/12" }).kubernetes!.services.clusterIPRanges).toEqual(["10.96.0.0/12"]);
    expect(usageError({ config: f, clusterIpRanges: "10.97.0.0/16" })).toBe(`--cluster-ip-ranges 10.97.0.0/16 disagrees with kubernetes.services.clusterIPRanges: 10.96.0.0/12 at ${f}:3 (give one of them, or the same value in both)`);
  });

  test("bad values name the flag", () => {
    expect(usageError({ clusterIpRanges: "10.96.0.0/12,,10.0.0.0/8" })).toContain("--cluster-ip-ranges: expected comma-separated CIDRs");
    expect(usageError({ externalIpRanges: "203.0.113.1/24" })).toBe('--external-ip-ranges: invalid prefix "203.0.113.1/24": host bits set (did you mean 203.0.113.0/24?)');
    expect(usageError({ loadbalancerIpRanges: "banana" })).toContain("--loadbalancer-ip-ranges: invalid prefix");
  });
});

describe("bad flag values name the flag", () => {
  test.each([
    [{ clusterAsn: "abc" }, '--cluster-asn: "abc" is not an AS number'],
    [{ clusterAsn: "23456" }, "--cluster-asn: 23456 is AS_TRANS"],
    [{ peerRouterIps: "192.0.2.1,nope", peerRouterAsns: "1" }, '--peer-router-ips: "nope" is not an IPv4 or IPv6 address'],
        [{ peerRouterIps: "2001:db8::1,2001:DB8:0::1", peerRouterAsns: "1" }, "--peer-router-ips: 2001:db8::1 is given twice"],
    [{ peerRouterIps: "192.0.2.1" }, "--peer-router-ips needs --peer-router-asns"],
    [{ peerRouterAsns: "65000" }, "--peer-router-asns needs --peer-router-ips"],
    [{ peerRouterPasswordsFile: "/x" }, "--peer-router-passwords-file needs --peer-router-ips"],
    [{ peerRouterIps: "192.0.2.1,192.0.2.2,192.0.2.3", peerRouterAsns: "1,2" }, "--peer-router-asns: 2 AS numbers for 3 addresses of --peer-router-ips"],
    [{ peerRouterIps: "192.0.2.1", peerRouterAsns: "0" }, '--peer-router-asns: "0" is not an AS number'],
    [{ healthPort: "0" }, '--health-port: "0" must be an integer in 1..65535'],
    [{ nodeName: "  " }, "--node-name: empty value"],
  ] as [K8sFlags, string][])("%p", (f, msg) => {
    expect(usageError(f)).toContain(msg);
  });

  test("passwords file: one line per address, each a usable TCP-MD5 key", () => {
    const ips = { peerRouterIps: "192.0.2.1,192.0.2.2", peerRouterAsns: "65000" };
    const short = file("only-one\n");
    expect(usageError({ ...ips, peerRouterPasswordsFile: short })).toBe(
      `--peer-router-passwords-file: ${short} has 1 line for 2 addresses of --peer-router-ips (one password per line, in the same order; an empty line for none)`,
    );
    const long = file(`ok\n${"x".repeat(81)}\n`);
    expect(usageError({ ...ips, peerRouterPasswordsFile: long })).toContain(`--peer-router-passwords-file: ${long}:2: the password for 192.0.2.2: `);
    expect(usageError({ ...ips, peerRouterPasswordsFile: join(dir, "missing") })).toBe(`--peer-router-passwords-file: ${join(dir, "missing")}: no such file`);
    // CRLF files work too.
    const crlf = file("a\r\nb\r\n");
    expect(k8sConfig({ ...ips, peerRouterPasswordsFile: crlf }).kubernetes!.peers.map((p) => p.peer.password)).toEqual(["a", "b"]);
  });
});

describe("with a config file", () => {
  const FILE = [
    "# a node's config", //                      1
    "log: {level: debug}", //                    2
    "kubernetes:", //                            3
    "  asn: 64513", //                           4
    "  nodeName: n1", //                         5
    "  services:", //                            6
    "    clusterIPs: false", //                  7
    "  peers:", //                               8
    "    - address: 192.0.2.254", //             9
    "      remoteAs: 65000", //                  10
    "      password: abc", //                    11
    "      import: all", //                      12
    "health:", //                                13
    "  port: 9180", //                           14
    "",
  ].join("\n");

  test("flags equal to the file's keys are fine, and the file's settings stay", () => {
    const p = file(FILE);
    const pw = file("abc\n");
    const c = k8sConfig({
      config: p,
      clusterAsn: "64513",
      nodeName: "n1",
      advertiseClusterIp: false,
      healthPort: "9180",
      peerRouterIps: "192.0.2.254",
      peerRouterAsns: "65000",
      peerRouterPasswordsFile: pw,
    });
    expect(c.source).toBe(p);
    expect(c.log.level).toBe("debug");
    expect(c.kubernetes!.peers.length).toBe(1);
    expect(c.kubernetes!.peers[0]!.peer.import).toEqual({ kind: "all" }); // the file's, not the flags' default
  });

  test("flags for keys the file does not set fill them in", () => {
    const p = file(FILE);
    const c = k8sConfig({ config: p, advertiseExternalIp: false, kubeconfig: "/k" });
    expect(c.kubernetes!.services).toMatchObject({ clusterIPs: false, externalIPs: false, loadBalancerIPs: true });
    expect(c.kubernetes!.kubeconfig).toBe("/k");
    expect(c.kubernetes!.asn).toBe(64513);
    expect(c.health!.port).toBe(9180);
  });

  test("one disagreement: the flag, the key, its value and file:line", () => {
    const p = file(FILE);
    expect(usageError({ config: p, clusterAsn: "65001" })).toBe(
      `--cluster-asn 65001 disagrees with kubernetes.asn: 64513 at ${p}:4 (give one of them, or the same value in both)`,
    );
    expect(usageError({ config: p, advertiseClusterIp: true })).toBe(
      `--advertise-cluster-ip disagrees with kubernetes.services.clusterIPs: false at ${p}:7 (give one of them, or the same value in both)`,
    );
    expect(usageError({ config: p, nodeName: "n2" })).toContain(`--node-name n2 disagrees with kubernetes.nodeName: "n1" at ${p}:5`);
  });

  test("several disagreements are listed together", () => {
    const p = file(FILE);
    const msg = usageError({ config: p, clusterAsn: "65001", healthPort: "9181", peerRouterIps: "192.0.2.1", peerRouterAsns: "65000" });
    expect(msg.split("\n")).toEqual([
      `3 flags disagree with ${p} (give each setting once, or the same value in both):`,
      `  --cluster-asn 65001 disagrees with kubernetes.asn: 64513 at ${p}:4`,
      `  --health-port 9181 disagrees with health.port: 9180 at ${p}:14`,
      `  --peer-router-ips 192.0.2.1 disagrees with kubernetes.peers at ${p}:8 (192.0.2.254)`,
    ]);
  });

  test("peers: AS numbers and passwords are compared per address, passwords never shown", () => {
    const p = file(FILE);
    expect(usageError({ config: p, peerRouterIps: "192.0.2.254", peerRouterAsns: "65009" })).toContain(
      `--peer-router-asns gives 192.0.2.254 AS 65009; kubernetes.peers[0].remoteAs is 65000 at ${p}:10`,
    );
    const msg = usageError({ config: p, peerRouterIps: "192.0.2.254", peerRouterAsns: "65000", peerRouterPasswordsFile: file("xyz\n") });
    expect(msg).toContain(`--peer-router-passwords-file gives a different password for 192.0.2.254 than kubernetes.peers[0].password at ${p}:11`);
    expect(msg).not.toContain("abc");
    expect(msg).not.toContain("xyz");
    const secret = file("kubernetes:\n  peers:\n    - address: 192.0.2.254\n      remoteAs: 65000\n      passwordSecret: {name: s, key: k}\n");
    expect(usageError({ config: secret, peerRouterIps: "192.0.2.254", peerRouterAsns: "65000", peerRouterPasswordsFile: file("abc\n") })).toContain(
      `kubernetes.peers[0] takes it from passwordSecret at ${secret}:5`,
    );
    // `peers: []` is set too: the file says "no peers".
    const none = file("kubernetes:\n  peers: []\n");
    expect(usageError({ config: none, peerRouterIps: "192.0.2.1", peerRouterAsns: "65000" })).toContain(`disagrees with kubernetes.peers at ${none}:2 (no peers)`);
  });

  test("`kubernetes:` with nothing after it takes flags; defaults that follow from the cluster AS follow the flag", () => {
    const p = file("peers:\n  - {address: 198.51.100.9, remoteAs: 65100, import: none, export: none}\nkubernetes:\n");
    const c = k8sConfig({ config: p, clusterAsn: "65010", healthPort: "9999" });
    expect(c.kubernetes!.asn).toBe(65010);
    expect(c.peers[0]!.localAs).toBe(65010);
    expect(c.health).toEqual({ address: "::", port: 9999 });
  });

  test("a file without a kubernetes section, and a bad file, are refused as before", () => {
    const p = file("asn: 65001\nrouterId: 192.0.2.1\n");
    expect(() => k8sConfig({ config: p, clusterAsn: "65001" })).toThrow(`${p}: no kubernetes: section`);
    const bad = file("kubernetes:\n  asn: abc\n");
    expect(() => k8sConfig({ config: bad })).toThrow(`${bad}:2`);
  });
});
