/**
 * Tests of the Kubernetes client side of bgpctl (lib/k8s): the watch-stream
 * line splitter under random chunkings of a recorded stream (multi-byte
 * UTF-8 split mid-sequence, \r\n, several events per chunk), kubeconfig and
 * in-cluster resolution from temp files (every source, every error), and the
 * REST client against the API emulator (tests/k8s/emulator.ts) over TLS with
 * a throw-away PKI: bearer token rotation after a 401, a foreign CA, mTLS,
 * Status errors with Retry-After, pagination, a watch stream and its
 * watchdog.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KubeApiError, KubeClient } from "../../lib/k8s/client.ts";
import { type KubeConnection, KubeConfigError, resolveConnection } from "../../lib/k8s/kubeconfig.ts";
import type { Node, WatchEvent } from "../../lib/k8s/types.ts";
import { LineSplitter, WatchStreamError, parseWatchLine, readWatchEvents } from "../../lib/k8s/watch-stream.ts";
import { KubeEmulator } from "../k8s/emulator.ts";
import { type Pki, makePki } from "../k8s/pki.ts";
import { waitFor } from "../support/wait.ts";

const tmp = mkdtempSync(join(tmpdir(), "bgpctl-k8s-client-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Deterministic PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---------------------------------------------------------------------------
// Watch stream framing

/** A recorded watch stream: data events, a bookmark, an ERROR, multi-byte UTF-8 (2-, 3- and 4-byte), one \r\n line. */
const RECORDED: object[] = [
  { type: "ADDED", object: { kind: "Node", apiVersion: "v1", metadata: { name: "node-a", resourceVersion: "101", annotations: { note: "Grüße aus Köln" } } } },
  { type: "MODIFIED", object: { kind: "Node", apiVersion: "v1", metadata: { name: "node-a", resourceVersion: "102", labels: { zone: "東京-1" } } } },
  { type: "BOOKMARK", object: { kind: "Node", apiVersion: "v1", metadata: { resourceVersion: "150", annotations: { "k8s.io/initial-events-end": "true" } } } },
  { type: "ADDED", object: { kind: "Node", apiVersion: "v1", metadata: { name: "node-😀-b", resourceVersion: "151", annotations: { emoji: "🚀🛰️ ok", cjk: "日本語テキスト" } } } },
  { type: "DELETED", object: { kind: "Node", apiVersion: "v1", metadata: { name: "node-a", resourceVersion: "152" } } },
  { type: "ERROR", object: { kind: "Status", apiVersion: "v1", status: "Failure", message: "too old resource version: 1 (152)", reason: "Expired", code: 410 } },
];

function recordedBytes(): Uint8Array {
  const lines = RECORDED.map((e, i) => JSON.stringify(e) + (i === 3 ? "\r\n" : "\n"));
  return new TextEncoder().encode(lines.join(""));
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...cuts, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

function splitAll(chunks: Uint8Array[]): string[] {
  const s = new LineSplitter();
  const lines = chunks.flatMap((c) => s.push(c));
  return [...lines, ...s.end()];
}

describe("LineSplitter", () => {
  const bytes = recordedBytes();
  const expected = RECORDED.map((e) => JSON.stringify(e));

  test("the recorded stream really has multi-byte sequences", () => {
    expect(bytes.length).toBeGreaterThan(expected.join("\n").length); // bytes > UTF-16 units
    expect(bytes.some((b) => b === 0xf0)).toBe(true); // a 4-byte sequence
  });

  test("one chunk, one byte per chunk", () => {
    expect(splitAll([bytes])).toEqual(expected);
    expect(splitAll(splitAt(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)))).toEqual(expected);
  });

  test("every single cut position (mid-line, mid-UTF-8, between \\r and \\n)", () => {
    for (let c = 1; c < bytes.length; c++) expect(splitAll(splitAt(bytes, [c]))).toEqual(expected);
  });

  test("2000 random chunkings", () => {
    const r = rng(42);
    for (let i = 0; i < 2000; i++) {
      const n = 1 + Math.floor(r() * 12);
      const cuts = [...new Set(Array.from({ length: n }, () => 1 + Math.floor(r() * (bytes.length - 1))))].sort((a, b) => a - b);
      const got = splitAll(splitAt(bytes, cuts));
      if (JSON.stringify(got) !== JSON.stringify(expected)) throw new Error(`chunking at ${cuts.join(",")} broke the stream`);
    }
  });

  test("blank lines are skipped; a final complete event without newline is accepted", () => {
    const s = new LineSplitter();
    expect(s.push(new TextEncoder().encode('\n\r\n{"a":1}\n\n{"b":'))).toEqual(['{"a":1}']);
    expect(s.push(new TextEncoder().encode("2}"))).toEqual([]);
    expect(s.end()).toEqual(['{"b":2}']);
  });

  test("a partial line at the end is 'watch stream ended mid-event'", () => {
    for (const cut of [10, bytes.lastIndexOf(0x0a, bytes.length - 2) + 5]) {
      const s = new LineSplitter();
      s.push(bytes.subarray(0, cut));
      expect(() => s.end()).toThrow(/watch stream ended mid-event/);
    }
  });

  test("ending inside a UTF-8 sequence is an error", () => {
    const s = new LineSplitter();
    s.push(new Uint8Array([0x7b, 0x22, 0xe6, 0x97])); // {"  + 2 of 3 bytes of 日
    expect(() => s.end()).toThrow(WatchStreamError);
  });

  test("invalid UTF-8 is an error", () => {
    const s = new LineSplitter();
    expect(() => s.push(new Uint8Array([0x7b, 0xff, 0x0a]))).toThrow(/not valid UTF-8/);
  });

  test("parseWatchLine: malformed JSON and non-events name the line start", () => {
    expect(() => parseWatchLine('{"type":"ADDED","object":{"metadata":')).toThrow(/malformed watch event "\{"type":"ADDED"/);
    expect(() => parseWatchLine('{"kind":"Status"}')).toThrow(/no "type"/);
    expect(() => parseWatchLine('{"type":"ADDED"}')).toThrow(/no "object"/);
    expect(() => parseWatchLine("x".repeat(500))).toThrow(/"x{80}…"/);
    const ev = parseWatchLine<Node>(JSON.stringify(RECORDED[0]));
    expect(ev.type).toBe("ADDED");
  });

  test("readWatchEvents over a ReadableStream, with heartbeats per chunk", async () => {
    const chunks = splitAt(bytes, [3, 50, 51, 300, 301, 302]);
    let beats = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (const ch of chunks) c.enqueue(ch);
        c.close();
      },
    });
    const events: WatchEvent<Node>[] = [];
    for await (const e of readWatchEvents<Node>(stream, () => beats++)) events.push(e);
    expect(events.map((e) => e.type)).toEqual(["ADDED", "MODIFIED", "BOOKMARK", "ADDED", "DELETED", "ERROR"]);
    expect(beats).toBe(chunks.length);
    const truncated = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes.subarray(0, 200));
        c.close();
      },
    });
    const got: string[] = [];
    await expect(
      (async () => {
        for await (const e of readWatchEvents<Node>(truncated)) got.push(e.type);
      })(),
    ).rejects.toThrow(/ended mid-event/);
    expect(got).toEqual(["ADDED"]);
  });
});

// ---------------------------------------------------------------------------
// kubeconfig resolution

const b64 = (s: string) => Buffer.from(s).toString("base64");
const FAKE_CA = "-----BEGIN CERTIFICATE-----\nMIIBfakeCA\n-----END CERTIFICATE-----\n";
const FAKE_CERT = "-----BEGIN CERTIFICATE-----\nMIIBfakeCERT\n-----END CERTIFICATE-----\n";
const FAKE_KEY = "-----BEGIN EC PRIVATE KEY-----\nMHcfakeKEY\n-----END EC PRIVATE KEY-----\n";

let kcCount = 0;
/** A fresh directory with a kubeconfig `config` of this text; returns its path. */
function kubeconfig(text: string, extra: Record<string, string> = {}): string {
  const dir = join(tmp, `kc-${kcCount++}`);
  mkdirSync(dir, { recursive: true });
  for (const [f, t] of Object.entries(extra)) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    writeFileSync(join(dir, f), t);
  }
  writeFileSync(join(dir, "config"), text);
  return join(dir, "config");
}

function kc(opts: { server?: string; cluster?: string; user?: string; context?: string; current?: string | null; extraContexts?: string } = {}): string {
  const current = opts.current === null ? "" : `current-context: ${opts.current ?? "main"}\n`;
  return `apiVersion: v1
kind: Config
${current}clusters:
- name: c1
  cluster:
${opts.cluster ?? `    server: ${opts.server ?? "https://10.0.0.1:6443"}\n    certificate-authority-data: ${b64(FAKE_CA)}`}
contexts:
- name: main
  context:
    cluster: c1
    user: u1
    namespace: kube-system
${opts.extraContexts ?? ""}users:
- name: u1
  user:
${opts.user ?? "    token: abc123"}
`;
}

const noEnv = {} as Record<string, string | undefined>;
const emptyHome = () => mkdtempSync(join(tmp, "home-"));

describe("resolveConnection", () => {
  test("explicit kubeconfig: server, CA data, token, namespace, source", () => {
    const p = kubeconfig(kc());
    const c = resolveConnection({ kubeconfig: p, env: noEnv, home: emptyHome() });
    expect(c).toEqual({ server: "https://10.0.0.1:6443", ca: FAKE_CA, token: "abc123", insecure: false, namespace: "kube-system", source: `kubeconfig ${p} (context main)` });
  });

  test("certificate-authority and client cert/key files resolve relative to the kubeconfig's directory; tokenFile too", () => {
    const p = kubeconfig(
      kc({
        cluster: "    server: https://api.example:6443\n    certificate-authority: pki/ca.crt",
        user: "    client-certificate: pki/client.crt\n    client-key: pki/client.key\n    tokenFile: tok",
      }),
      { "pki/ca.crt": FAKE_CA, "pki/client.crt": FAKE_CERT, "pki/client.key": FAKE_KEY, tok: "t0\n" },
    );
    const dir = join(p, "..");
    const c = resolveConnection({ kubeconfig: p, env: noEnv });
    expect(c.ca).toBe(FAKE_CA);
    expect(c.cert).toBe(FAKE_CERT);
    expect(c.key).toBe(FAKE_KEY);
    expect(c.tokenFile).toBe(join(dir, "tok"));
    expect(c.token).toBeUndefined();
  });

  test("client-certificate-data / client-key-data, insecure-skip-tls-verify", () => {
    const p = kubeconfig(
      kc({
        cluster: "    server: https://10.0.0.1:6443/\n    insecure-skip-tls-verify: true",
        user: `    client-certificate-data: ${b64(FAKE_CERT)}\n    client-key-data: ${b64(FAKE_KEY)}`,
      }),
    );
    const c = resolveConnection({ kubeconfig: p, env: noEnv });
    expect(c.insecure).toBe(true);
    expect(c.ca).toBeUndefined();
    expect(c.cert).toBe(FAKE_CERT);
    expect(c.key).toBe(FAKE_KEY);
    expect(c.server).toBe("https://10.0.0.1:6443"); // trailing slash dropped
  });

  test("a context option wins over current-context", () => {
    const p = kubeconfig(kc({ extraContexts: "- name: other\n  context:\n    cluster: c1\n    user: u1\n    namespace: other-ns\n" }));
    const c = resolveConnection({ kubeconfig: p, context: "other", env: noEnv });
    expect(c.namespace).toBe("other-ns");
    expect(c.source).toContain("(context other)");
  });

  test("explicit path wins over KUBECONFIG and in-cluster", () => {
    const p = kubeconfig(kc({ server: "https://explicit:1" }));
    const q = kubeconfig(kc({ server: "https://fromenv:1" }));
    const c = resolveConnection({ kubeconfig: p, env: { KUBECONFIG: q, KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" } });
    expect(c.server).toBe("https://explicit:1");
  });

  test("KUBECONFIG: missing files skipped, several files merged (first wins)", () => {
    const a = kubeconfig(`current-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\nclusters:\n- name: c\n  cluster: {server: "https://first:1"}\n`);
    const b = kubeconfig(
      `current-context: ignored\nclusters:\n- name: c\n  cluster: {server: "https://second:1"}\nusers:\n- name: u\n  user: {tokenFile: tok}\n`,
      { tok: "secret" },
    );
    const c = resolveConnection({ env: { KUBECONFIG: `${join(tmp, "nope")}:${a}::${b}` }, home: emptyHome() });
    expect(c.server).toBe("https://first:1");
    expect(c.tokenFile).toBe(join(b, "..", "tok")); // relative to the file that defined the user
    expect(c.source).toContain(a);
    expect(c.source).toContain(b);
  });

  test("KUBECONFIG wins over in-cluster; in-cluster wins over ~/.kube/config", () => {
    const home = emptyHome();
    mkdirSync(join(home, ".kube"));
    writeFileSync(join(home, ".kube", "config"), kc({ server: "https://home:1" }));
    const sa = join(tmp, "sa-order");
    mkdirSync(sa);
    writeFileSync(join(sa, "token"), "satoken");
    const q = kubeconfig(kc({ server: "https://fromenv:1" }));
    const env = { KUBECONFIG: q, KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
    expect(resolveConnection({ env, home, serviceAccountDir: sa }).server).toBe("https://fromenv:1");
    expect(resolveConnection({ env: { ...env, KUBECONFIG: undefined }, home, serviceAccountDir: sa }).server).toBe("https://10.96.0.1:443");
    expect(resolveConnection({ env: noEnv, home, serviceAccountDir: sa }).server).toBe("https://home:1");
    expect(resolveConnection({ env: { KUBECONFIG: join(tmp, "missing") }, home, serviceAccountDir: sa }).server).toBe("https://home:1");
  });

  test("in-cluster: token file path, CA, namespace; IPv6 host bracketed", () => {
    const sa = join(tmp, "sa");
    mkdirSync(sa);
    writeFileSync(join(sa, "token"), "satoken\n");
    writeFileSync(join(sa, "ca.crt"), FAKE_CA);
    writeFileSync(join(sa, "namespace"), "bgp-system\n");
    const c = resolveConnection({ env: { KUBERNETES_SERVICE_HOST: "fd00:10:96::1", KUBERNETES_SERVICE_PORT: "443" }, serviceAccountDir: sa, home: emptyHome() });
    expect(c).toEqual({ server: "https://[fd00:10:96::1]:443", tokenFile: join(sa, "token"), ca: FAKE_CA, namespace: "bgp-system", insecure: false, source: "in-cluster" });
    const v4 = resolveConnection({ env: { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "6443" }, serviceAccountDir: sa });
    expect(v4.server).toBe("https://10.96.0.1:6443");
  });

  const err = (f: () => unknown): string => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(KubeConfigError);
      return (e as Error).message;
    }
    throw new Error("no error");
  };

  test("errors: nothing found names every source tried", () => {
    const home = emptyHome();
    const m = err(() => resolveConnection({ env: { KUBECONFIG: "/nonexistent/kc" }, home, serviceAccountDir: join(tmp, "nosa") }));
    expect(m).toContain("KUBECONFIG=/nonexistent/kc");
    expect(m).toContain("KUBERNETES_SERVICE_HOST");
    expect(m).toContain(join(home, ".kube", "config"));
  });

  test("errors: explicit file missing, bad YAML, not a mapping", () => {
    expect(err(() => resolveConnection({ kubeconfig: join(tmp, "none.yaml"), env: noEnv }))).toBe(`kubeconfig ${join(tmp, "none.yaml")}: file not found`);
    const bad = kubeconfig("clusters: [\n  - {name: x");
    expect(err(() => resolveConnection({ kubeconfig: bad, env: noEnv }))).toMatch(new RegExp(`^kubeconfig ${bad}: not valid YAML`));
    const list = kubeconfig("- a\n- b\n");
    expect(err(() => resolveConnection({ kubeconfig: list, env: noEnv }))).toContain("expected a mapping");
  });

  test("errors: contexts, clusters, users missing", () => {
    const noCur = kubeconfig(kc({ current: null }));
    expect(err(() => resolveConnection({ kubeconfig: noCur, env: noEnv }))).toBe(`kubeconfig ${noCur}: no current-context set and no context given`);
    const wrongCur = kubeconfig(kc({ current: "ghost" }));
    expect(err(() => resolveConnection({ kubeconfig: wrongCur, env: noEnv }))).toContain(`context "ghost" (current-context in ${wrongCur}) not found`);
    expect(err(() => resolveConnection({ kubeconfig: wrongCur, context: "nope", env: noEnv }))).toContain(`context "nope" not found`);
    const noCluster = kubeconfig(`current-context: x\ncontexts:\n- name: x\n  context: {cluster: gone, user: u}\n`);
    expect(err(() => resolveConnection({ kubeconfig: noCluster, env: noEnv }))).toContain(`cluster "gone" not found`);
    const noUser = kubeconfig(`current-context: x\ncontexts:\n- name: x\n  context: {cluster: c, user: gone}\nclusters:\n- name: c\n  cluster: {server: "https://a:1"}\n`);
    expect(err(() => resolveConnection({ kubeconfig: noUser, env: noEnv }))).toBe(`kubeconfig ${noUser}: context "x": user "gone" not found in ${noUser}`);
  });

  test("errors: server missing or not a URL", () => {
    const noServer = kubeconfig(kc({ cluster: "    insecure-skip-tls-verify: false" }));
    expect(err(() => resolveConnection({ kubeconfig: noServer, env: noEnv }))).toBe(`kubeconfig ${noServer}: cluster "c1": no server URL`);
    const badServer = kubeconfig(kc({ server: "not a url" }));
    expect(err(() => resolveConnection({ kubeconfig: badServer, env: noEnv }))).toContain(`server "not a url" is not a URL`);
    const ftp = kubeconfig(kc({ server: "ftp://x" }));
    expect(err(() => resolveConnection({ kubeconfig: ftp, env: noEnv }))).toContain("must be an https://");
  });

  test("errors: CA file missing, CA data not PEM, CA with insecure", () => {
    const missing = kubeconfig(kc({ cluster: "    server: https://a:1\n    certificate-authority: ca.pem" }));
    expect(err(() => resolveConnection({ kubeconfig: missing, env: noEnv }))).toBe(
      `kubeconfig ${missing}: cluster "c1": certificate-authority ${join(missing, "..", "ca.pem")}: no such file`,
    );
    const garbage = kubeconfig(kc({ cluster: `    server: https://a:1\n    certificate-authority-data: ${b64("hello")}` }));
    expect(err(() => resolveConnection({ kubeconfig: garbage, env: noEnv }))).toContain("certificate-authority-data is not base64-encoded PEM");
    const both = kubeconfig(kc({ cluster: `    server: https://a:1\n    certificate-authority-data: ${b64(FAKE_CA)}\n    insecure-skip-tls-verify: true` }));
    expect(err(() => resolveConnection({ kubeconfig: both, env: noEnv }))).toContain("insecure-skip-tls-verify are both set");
  });

  test("errors: exec, auth-provider, basic auth name the user and what is unsupported", () => {
    const exec = kubeconfig(kc({ user: "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws" }));
    expect(err(() => resolveConnection({ kubeconfig: exec, env: noEnv }))).toBe(
      `kubeconfig ${exec}: user "u1": exec credential plugins (command "aws") are not supported; use a token, token file or client certificate`,
    );
    const ap = kubeconfig(kc({ user: "    auth-provider:\n      name: oidc" }));
    expect(err(() => resolveConnection({ kubeconfig: ap, env: noEnv }))).toContain(`user "u1": auth-provider "oidc" is not supported`);
    const basic = kubeconfig(kc({ user: "    username: admin\n    password: pw" }));
    expect(err(() => resolveConnection({ kubeconfig: basic, env: noEnv }))).toContain(`user "u1": basic auth`);
  });

  test("errors: cert without key, missing token file", () => {
    const half = kubeconfig(kc({ user: `    client-certificate-data: ${b64(FAKE_CERT)}` }));
    expect(err(() => resolveConnection({ kubeconfig: half, env: noEnv }))).toBe(`kubeconfig ${half}: user "u1": client-certificate without client-key`);
    const noTok = kubeconfig(kc({ user: "    tokenFile: /nonexistent/token" }));
    expect(err(() => resolveConnection({ kubeconfig: noTok, env: noEnv }))).toBe(`kubeconfig ${noTok}: user "u1": tokenFile /nonexistent/token: no such file`);
  });

  test("errors: in-cluster without a token, bad port", () => {
    const sa = join(tmp, "sa-empty");
    mkdirSync(sa);
    const env = { KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" };
    expect(err(() => resolveConnection({ env, serviceAccountDir: sa }))).toBe(
      `in-cluster (KUBERNETES_SERVICE_HOST=10.96.0.1): service account token ${join(sa, "token")} unreadable: no such file`,
    );
    expect(err(() => resolveConnection({ env: { ...env, KUBERNETES_SERVICE_PORT: "https" }, serviceAccountDir: sa }))).toContain("is not a port number");
  });
});

// ---------------------------------------------------------------------------
// The REST client against the emulator (TLS, 127.0.0.1)

const mkNode = (name: string, labels?: Record<string, string>): Node => ({ apiVersion: "v1", kind: "Node", metadata: { name, ...(labels ? { labels } : {}) } });

describe("KubeClient against the emulator", () => {
  let pki: Pki;
  let foreign: Pki;
  let emu: KubeEmulator;
  let tokenFile: string;
  let base: KubeConnection;
  const logs: string[] = [];
  const log = (level: string, msg: string) => {
    logs.push(`${level} ${msg}`);
  };

  beforeAll(async () => {
    pki = makePki(join(tmp, "pki"), { serverIPs: ["127.0.0.1"] });
    foreign = makePki(join(tmp, "pki-foreign"), { serverIPs: ["127.0.0.1"] });
    tokenFile = join(tmp, "token");
    writeFileSync(tokenFile, "good-token\n");
    emu = await KubeEmulator.start({ hostname: "127.0.0.1", tls: { cert: pki.serverCert, key: pki.serverKey, clientCa: pki.caCert }, tokens: ["good-token", "rotated-token"] });
    for (const n of ["n1", "n2", "n3", "n4", "n5"]) emu.create("nodes", mkNode(n, { role: n === "n5" ? "edge" : "worker" }));
    base = { server: emu.url, ca: pki.caCert, tokenFile, insecure: false, source: "test kubeconfig" };
  });
  afterAll(async () => {
    await emu?.stop();
  });

  test("get and list with a token file over TLS verified against the CA", async () => {
    const c = new KubeClient(base);
    const n = await c.get<Node>("/api/v1/nodes/n1");
    expect(n.metadata.name).toBe("n1");
    const l = await c.list<Node>("/api/v1/nodes", { labelSelector: "role=worker" });
    expect(l.items.map((i) => i.metadata.name)).toEqual(["n1", "n2", "n3", "n4"]);
    expect(l.metadata.resourceVersion).toBe(emu.resourceVersion);
  });

  test("pagination: limit 2 over 5 objects is 3 pages from one snapshot", async () => {
    const c = new KubeClient(base);
    const names: string[] = [];
    const rvs = new Set<string>();
    let cont = "";
    let pages = 0;
    do {
      const page = await c.list<Node>("/api/v1/nodes", { limit: "2", ...(cont ? { continue: cont } : {}) });
      pages++;
      names.push(...page.items.map((i) => i.metadata.name));
      rvs.add(page.metadata.resourceVersion!);
      cont = page.metadata.continue ?? "";
      if (pages === 1) emu.create("nodes", mkNode("n6")); // not in the snapshot
    } while (cont && pages < 10);
    expect(pages).toBe(3);
    expect(names).toEqual(["n1", "n2", "n3", "n4", "n5"]);
    expect(rvs.size).toBe(1);
    emu.delete("nodes", undefined, "n6");
  });

  test("401 → the rotated token file is re-read at once and the request retried", async () => {
    const file = join(tmp, "rotating-token");
    writeFileSync(file, "stale-token");
    const c = new KubeClient({ ...base, tokenFile: file }, { log, tokenRecheckMs: 3_600_000 });
    const before = emu.stats.unauthorized;
    const e = await rejection(c.get("/api/v1/nodes/n1"));
    expect(e).toBeInstanceOf(KubeApiError);
    expect(e.status).toBe(401);
    expect(e.reason).toBe("Unauthorized");
    expect(e.message).toBe("GET /api/v1/nodes/n1: 401 Unauthorized: Unauthorized");
    writeFileSync(file, "rotated-token\n"); // the kubelet rotates the projected token
    const n = await c.get<Node>("/api/v1/nodes/n1"); // still sends the stale token first: 401, re-read, retry
    expect(n.metadata.name).toBe("n1");
    expect(emu.stats.unauthorized - before).toBe(2); // one per call: the first re-read found the same token (no retry), the second a new one (retried)
    expect(logs.some((l) => l.includes("token file changed, retrying"))).toBe(true);
    // Later requests use the new token without a 401.
    const u = emu.stats.unauthorized;
    await c.get("/api/v1/nodes/n2");
    expect(emu.stats.unauthorized).toBe(u);
  });

  test("the token file is re-checked after tokenRecheckMs, not before", async () => {
    const file = join(tmp, "recheck-token");
    writeFileSync(file, "good-token");
    const c = new KubeClient({ ...base, tokenFile: file }, { tokenRecheckMs: 300 });
    await c.get("/api/v1/nodes/n1");
    writeFileSync(file, "revoked-token"); // a token the server does not accept: shows which one is sent
    const u = emu.stats.unauthorized;
    await c.get("/api/v1/nodes/n1"); // within tokenRecheckMs: the cached token, accepted
    expect(emu.stats.unauthorized).toBe(u);
    await Bun.sleep(350);
    await expect(c.get("/api/v1/nodes/n1")).rejects.toMatchObject({ status: 401 });
    expect(emu.stats.unauthorized).toBe(u + 1); // re-read before sending (the forced re-read after the 401 found the same token)
  });

  test("a static token; no token → 401 with the Status", async () => {
    const ok = new KubeClient({ server: emu.url, ca: pki.caCert, token: "good-token", insecure: false, source: "t" });
    expect((await ok.get<Node>("/api/v1/nodes/n2")).metadata.name).toBe("n2");
    const none = new KubeClient({ server: emu.url, ca: pki.caCert, insecure: false, source: "t" });
    await expect(none.get("/api/v1/nodes/n2")).rejects.toMatchObject({ status: 401 });
  });

  test("mTLS: a client certificate signed by the cluster CA authenticates without a token", async () => {
    const c = new KubeClient({ server: emu.url, ca: pki.caCert, cert: pki.clientCert, key: pki.clientKey, insecure: false, source: "t" });
    expect((await c.get<Node>("/api/v1/nodes/n3")).metadata.name).toBe("n3");
    const wrong = new KubeClient({ server: emu.url, ca: pki.caCert, cert: foreign.clientCert, key: foreign.clientKey, insecure: false, source: "t" });
    await expect(wrong.get("/api/v1/nodes/n3")).rejects.toMatchObject({ status: 401 });
  });

  test("TLS verification against an unrelated CA fails with a clear error; insecure skips it", async () => {
    const c = new KubeClient({ ...base, ca: foreign.caCert, source: "kubeconfig /x (context y)" });
    const e = await rejection(c.get("/api/v1/nodes/n1"));
    expect(e).toBeInstanceOf(Error);
    expect(e).not.toBeInstanceOf(KubeApiError);
    expect(e.message).toContain(`GET ${emu.url}/api/v1/nodes/n1: TLS verification failed: the server certificate is not trusted by the configured CA`);
    expect(e.message).toContain("check the CA of kubeconfig /x (context y)");
    const insecure = new KubeClient({ ...base, ca: undefined, insecure: true });
    expect((await insecure.get<Node>("/api/v1/nodes/n1")).metadata.name).toBe("n1");
  });

  test("connection refused names the URL", async () => {
    const c = new KubeClient({ server: "https://127.0.0.1:1", insecure: false, source: "t" });
    await expect(c.get("/api/v1/nodes")).rejects.toThrow(/^GET https:\/\/127\.0\.0\.1:1\/api\/v1\/nodes: .*(ECONNREFUSED|Unable to connect)/);
  });

  test("Status errors: 404 reason and message; 503 and 429 with Retry-After", async () => {
    const c = new KubeClient(base);
    const nf = await rejection(c.get("/api/v1/nodes/ghost"));
    expect(nf).toBeInstanceOf(KubeApiError);
    expect(nf).toMatchObject({ status: 404, reason: "NotFound", message: 'GET /api/v1/nodes/ghost: 404 NotFound: nodes "ghost" not found' });
    expect(nf.retryAfterSeconds).toBeUndefined();
    emu.failNext(/^\/api\/v1\/nodes$/, 1, 503, 7);
    await expect(c.list("/api/v1/nodes")).rejects.toMatchObject({ status: 503, retryAfterSeconds: 7, reason: "ServiceUnavailable" });
    emu.failNext(/^\/api\/v1\/nodes$/, 1, 429, 2);
    await expect(c.list("/api/v1/nodes")).rejects.toMatchObject({ status: 429, retryAfterSeconds: 2, reason: "TooManyRequests" });
    emu.failNext(/^\/api\/v1\/nodes$/, 1, 500);
    const e500 = await rejection(c.list("/api/v1/nodes"));
    expect(e500).toMatchObject({ status: 500 });
    expect(e500.retryAfterSeconds).toBeUndefined();
  });

  test("request(): POST an Event, JSON in and out", async () => {
    const c = new KubeClient(base);
    const created = (await c.request("POST", "/api/v1/namespaces/default/events", {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: "bgpctl.1", namespace: "default" },
      reason: "Test",
      message: "hello ✓",
    })) as { metadata: { resourceVersion: string }; message: string };
    expect(created.message).toBe("hello ✓");
    expect(emu.get("events", "default", "bgpctl.1")).toBeDefined();
    await expect(c.request("POST", "/api/v1/namespaces/default/events", { metadata: { name: "bgpctl.1" } })).rejects.toMatchObject({ status: 409, reason: "AlreadyExists" });
  });

  test("watch: events from a resourceVersion, bookmarks, a clean end at timeoutSeconds", async () => {
    const c = new KubeClient(base);
    const rv = emu.resourceVersion;
    const got: string[] = [];
    const t0 = performance.now();
    const stream = c.watch<Node>("/api/v1/nodes", { resourceVersion: rv, timeoutSeconds: "1", allowWatchBookmarks: "true" });
    setTimeout(() => {
      emu.patch("nodes", undefined, "n1", { metadata: { labels: { role: "changed" } } });
      emu.create("nodes", mkNode("w1"));
      emu.delete("nodes", undefined, "w1");
    }, 100);
    for await (const ev of stream) got.push(ev.type === "BOOKMARK" ? "BOOKMARK" : `${ev.type} ${(ev.object as Node).metadata.name}`);
    const elapsed = performance.now() - t0;
    expect(got.filter((g) => g !== "BOOKMARK")).toEqual(["MODIFIED n1", "ADDED w1", "DELETED w1"]);
    expect(elapsed).toBeGreaterThan(900);
    expect(elapsed).toBeLessThan(5000);
    const q = emu.stats.watchRequests.at(-1)!.query;
    expect(q).toMatchObject({ watch: "true", resourceVersion: rv, timeoutSeconds: "1" });
  });

  test("watch: too old a resourceVersion gives an ERROR 410 event", async () => {
    const c = new KubeClient(base);
    const old = emu.resourceVersion;
    emu.create("nodes", mkNode("gone1"));
    emu.compact();
    const evs: WatchEvent<Node>[] = [];
    for await (const ev of c.watch<Node>("/api/v1/nodes", { resourceVersion: old, timeoutSeconds: "5" })) evs.push(ev);
    expect(evs.length).toBe(1);
    expect(evs[0]).toMatchObject({ type: "ERROR", object: { code: 410, reason: "Expired" } });
    emu.delete("nodes", undefined, "gone1");
  });

  test("watch: dropped connection throws; aborting the signal ends quietly; HTTP errors are KubeApiErrors", async () => {
    const c = new KubeClient(base);
    const drop = (async () => {
      for await (const _ of c.watch<Node>("/api/v1/nodes", { resourceVersion: emu.resourceVersion, timeoutSeconds: "30" })) {
        // nothing
      }
    })();
    await waitFor(() => emu.stats.activeWatches === 1, { timeoutMs: 5000, what: "the watch" });
    emu.dropWatches();
    await expect(drop).rejects.toThrow(/^watch https:\/\/127\.0\.0\.1:\d+\/api\/v1\/nodes\?.*: /);

    const ac = new AbortController();
    const aborted = (async () => {
      let n = 0;
      for await (const _ of c.watch<Node>("/api/v1/nodes", { resourceVersion: emu.resourceVersion, timeoutSeconds: "30" }, ac.signal)) n++;
      return n;
    })();
    await waitFor(() => emu.stats.activeWatches === 1, { timeoutMs: 5000, what: "the second watch" });
    const t = performance.now();
    ac.abort();
    expect(await aborted).toBe(0);
    expect(performance.now() - t).toBeLessThan(500);
    await waitFor(() => emu.stats.activeWatches === 0, { timeoutMs: 5000, what: "the server to see the watch closed" });

    emu.failNext(/^\/api\/v1\/nodes$/, 1, 503, 3);
    const failing = (async () => {
      for await (const _ of c.watch<Node>("/api/v1/nodes", { resourceVersion: emu.resourceVersion })) {
        // nothing
      }
    })();
    await expect(failing).rejects.toMatchObject({ status: 503, retryAfterSeconds: 3 });
  });
});

describe("KubeClient watchdog", () => {
  test("a watch on which nothing arrives is aborted after timeoutSeconds + grace", async () => {
    // A server that answers a watch with headers and then silence (node:http flushes headers at once).
    const http = await import("node:http");
    const open = new Set<import("node:http").ServerResponse>();
    const srv = http.createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.flushHeaders();
      open.add(res);
      res.on("close", () => open.delete(res));
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as { port: number }).port;
    try {
      const c = new KubeClient({ server: `http://127.0.0.1:${port}`, insecure: false, source: "t" }, { watchGraceMs: 300 });
      const t0 = performance.now();
      const p = (async () => {
        for await (const _ of c.watch<Node>("/api/v1/nodes", { resourceVersion: "1", timeoutSeconds: "1" })) {
          // nothing
        }
      })();
      await expect(p).rejects.toThrow(/nothing received for 1 s \(not even a bookmark\); connection presumed dead/);
      const elapsed = performance.now() - t0;
      expect(elapsed).toBeGreaterThanOrEqual(1250);
      expect(elapsed).toBeLessThan(3000);
      await waitFor(() => open.size === 0, { timeoutMs: 5000, what: "the server to see the connection closed" });
    } finally {
      for (const r of open) r.destroy();
      srv.close();
    }
  });

  test("a default timeoutSeconds of 240 is added when the query has none", async () => {
    const seen: string[] = [];
    const srv = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        seen.push(new URL(req.url).search);
        return new Response("");
      },
    });
    try {
      const c = new KubeClient({ server: `http://127.0.0.1:${srv.port}`, insecure: false, source: "t" });
      for await (const _ of c.watch<Node>("/api/v1/nodes", { resourceVersion: "5" })) {
        // nothing
      }
      expect(seen).toEqual(["?resourceVersion=5&watch=true&timeoutSeconds=240"]);
    } finally {
      srv.stop(true);
    }
  });
});

/** The error a promise rejects with (fails when it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error & { status?: number; reason?: string; retryAfterSeconds?: number }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof Error) return e;
    throw new Error(`rejected with a non-Error: ${String(e)}`);
  }
  throw new Error("expected a rejection");
}
