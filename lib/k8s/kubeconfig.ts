/**
 * Where the Kubernetes API is and how to authenticate to it: resolves a
 * `KubeConnection` from an explicit kubeconfig file, the `KUBECONFIG`
 * environment variable, the in-cluster service account, or `~/.kube/config`
 * (in that order). Only static credentials are supported (CA, client
 * certificate, bearer token or token file); exec plugins, auth providers and
 * basic auth are reported as `KubeConfigError`s naming the file and the user.
 *
 * `KUBECONFIG` is a ':'-separated list merged the way kubectl merges it: the
 * files that exist are read in order, the first definition of a cluster,
 * context or user name wins, and so does the first `current-context`; missing
 * files are skipped. Relative paths in an entry resolve against the directory
 * of the file that defined that entry.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

/** A resolved connection to an API server. PEM material is inline text. */
export interface KubeConnection {
  /** Base URL, e.g. "https://10.96.0.1:443" (may carry a path prefix). */
  server: string;
  /** PEM CA bundle; when set, the server is verified against it only. */
  ca?: string;
  /** PEM client certificate (mTLS). */
  cert?: string;
  /** PEM client key (mTLS). */
  key?: string;
  /** Static bearer token. */
  token?: string;
  /** Bearer token file, re-read by the client when it changes (bound service account tokens rotate). */
  tokenFile?: string;
  /** Skip server certificate verification (insecure-skip-tls-verify). */
  insecure: boolean;
  /** Default namespace of the context / service account. */
  namespace?: string;
  /** Human description: "in-cluster", "kubeconfig /path (context x)". */
  source: string;
}

/** The connection could not be resolved; the message names the file and what is missing or wrong. */
export class KubeConfigError extends Error {
  override readonly name = "KubeConfigError";
}

/** Options of `resolveConnection`; every default comes from the process. */
export interface ResolveOptions {
  /** Explicit kubeconfig path (flag or config file): used alone when set, and must exist. */
  kubeconfig?: string;
  /** Context to use instead of the file's current-context. */
  context?: string;
  /** Environment (default `process.env`): KUBECONFIG, KUBERNETES_SERVICE_HOST/PORT. */
  env?: Record<string, string | undefined>;
  /** Home directory for `~/.kube/config` (default `os.homedir()`). */
  home?: string;
  /** Service account directory (default /var/run/secrets/kubernetes.io/serviceaccount). */
  serviceAccountDir?: string;
}

const SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Resolution order: explicit kubeconfig path → KUBECONFIG (merged, missing
 * files skipped) → in-cluster (KUBERNETES_SERVICE_HOST/PORT and the service
 * account token, ca.crt and namespace) → ~/.kube/config.
 */
export function resolveConnection(opts: ResolveOptions = {}): KubeConnection {
  const env = opts.env ?? process.env;
  const tried: string[] = [];
  if (opts.kubeconfig) {
    const path = resolve(opts.kubeconfig);
    if (!existsSync(path)) throw new KubeConfigError(`kubeconfig ${path}: file not found`);
    return fromKubeconfig([path], opts.context);
  }
  const list = env.KUBECONFIG;
  if (list && list.trim()) {
    const files = list.split(":").filter((f) => f.trim() !== "").map((f) => resolve(f));
    const present = files.filter((f) => existsSync(f));
    if (present.length) return fromKubeconfig(present, opts.context);
    tried.push(`KUBECONFIG=${list} (no such file)`);
  } else {
    tried.push("KUBECONFIG unset");
  }
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (host && port) return inCluster(host, port, opts.serviceAccountDir ?? SA_DIR);
  tried.push("not in a cluster (KUBERNETES_SERVICE_HOST/PORT unset)");
  const home = opts.home ?? homedir();
  const def = join(home, ".kube", "config");
  if (existsSync(def)) return fromKubeconfig([def], opts.context);
  tried.push(`${def} not found`);
  throw new KubeConfigError(`no Kubernetes connection: no kubeconfig given, ${tried.join(", ")}`);
}

function inCluster(host: string, port: string, saDir: string): KubeConnection {
  const tokenFile = join(saDir, "token");
  const where = `in-cluster (KUBERNETES_SERVICE_HOST=${host})`;
  if (!/^\d+$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
    throw new KubeConfigError(`${where}: KUBERNETES_SERVICE_PORT=${port} is not a port number`);
  }
  try {
    readFileSync(tokenFile);
  } catch (e) {
    throw new KubeConfigError(`${where}: service account token ${tokenFile} unreadable: ${errText(e)}`);
  }
  const conn: KubeConnection = {
    server: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    tokenFile,
    insecure: false,
    source: "in-cluster",
  };
  const caFile = join(saDir, "ca.crt");
  if (existsSync(caFile)) conn.ca = readText(caFile, `${where}: CA`);
  const nsFile = join(saDir, "namespace");
  if (existsSync(nsFile)) {
    const ns = readText(nsFile, `${where}: namespace`).trim();
    if (ns) conn.namespace = ns;
  }
  return conn;
}

// ---------------------------------------------------------------------------
// kubeconfig

interface Entry {
  /** The file that defined it (for errors and relative paths). */
  file: string;
  value: Record<string, unknown>;
}

interface Merged {
  clusters: Map<string, Entry>;
  contexts: Map<string, Entry>;
  users: Map<string, Entry>;
  currentContext?: { name: string; file: string };
}

function fromKubeconfig(files: string[], contextOpt: string | undefined): KubeConnection {
  const m: Merged = { clusters: new Map(), contexts: new Map(), users: new Map() };
  for (const f of files) loadFile(f, m);
  const fileDesc = files.length === 1 ? files[0]! : files.join(":");
  const ctxName = contextOpt ?? m.currentContext?.name;
  if (!ctxName) throw new KubeConfigError(`kubeconfig ${fileDesc}: no current-context set and no context given`);
  const ctx = m.contexts.get(ctxName);
  if (!ctx) {
    const from = contextOpt ? "" : ` (current-context in ${m.currentContext!.file})`;
    throw new KubeConfigError(`kubeconfig ${fileDesc}: context "${ctxName}"${from} not found`);
  }
  const cw = `kubeconfig ${ctx.file}: context "${ctxName}"`;
  const clusterName = str(ctx.value.cluster, `${cw}: cluster`);
  const userName = ctx.value.user === undefined ? undefined : str(ctx.value.user, `${cw}: user`);
  const namespace = ctx.value.namespace === undefined ? undefined : str(ctx.value.namespace, `${cw}: namespace`);
  if (!clusterName) throw new KubeConfigError(`${cw}: no cluster named`);
  const cl = m.clusters.get(clusterName);
  if (!cl) throw new KubeConfigError(`${cw}: cluster "${clusterName}" not found in ${fileDesc}`);

  const w = `kubeconfig ${cl.file}: cluster "${clusterName}"`;
  const c = cl.value;
  const server = str(c.server, `${w}: server`);
  if (!server) throw new KubeConfigError(`${w}: no server URL`);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeConfigError(`${w}: server "${server}" is not a URL`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") {
    throw new KubeConfigError(`${w}: server "${server}" must be an https:// (or http://) URL`);
  }
  const insecure = bool(c["insecure-skip-tls-verify"], `${w}: insecure-skip-tls-verify`);
  const conn: KubeConnection = {
    server: server.replace(/\/+$/, ""),
    insecure,
    source: `kubeconfig ${fileDesc} (context ${ctxName})`,
  };
  if (namespace) conn.namespace = namespace;
  const ca = pem(cl, "certificate-authority", w);
  if (ca !== undefined) {
    if (insecure) {
      throw new KubeConfigError(`${w}: certificate-authority and insecure-skip-tls-verify are both set (a CA is not allowed with the insecure flag)`);
    }
    conn.ca = ca;
  }

  if (userName) {
    const u = m.users.get(userName);
    if (!u) throw new KubeConfigError(`${cw}: user "${userName}" not found in ${fileDesc}`);
    const uw = `kubeconfig ${u.file}: user "${userName}"`;
    const v = u.value;
    if (v.exec !== undefined && v.exec !== null) {
      const cmd = isObj(v.exec) && typeof v.exec.command === "string" ? ` (command "${v.exec.command}")` : "";
      throw new KubeConfigError(`${uw}: exec credential plugins${cmd} are not supported; use a token, token file or client certificate`);
    }
    if (v["auth-provider"] !== undefined && v["auth-provider"] !== null) {
      const ap = v["auth-provider"];
      const n = isObj(ap) && typeof ap.name === "string" ? ` "${ap.name}"` : "";
      throw new KubeConfigError(`${uw}: auth-provider${n} is not supported; use a token, token file or client certificate`);
    }
    if (v.username !== undefined || v.password !== undefined) {
      throw new KubeConfigError(`${uw}: basic auth (username/password) is not supported; use a token, token file or client certificate`);
    }
    const cert = pem(u, "client-certificate", uw);
    const key = pem(u, "client-key", uw);
    if ((cert === undefined) !== (key === undefined)) {
      throw new KubeConfigError(`${uw}: ${cert === undefined ? "client-key without client-certificate" : "client-certificate without client-key"}`);
    }
    if (cert !== undefined) {
      conn.cert = cert;
      conn.key = key;
    }
    const token = v.token === undefined ? undefined : str(v.token, `${uw}: token`);
    if (token) conn.token = token.trim();
    const tokenFile = v.tokenFile === undefined ? undefined : str(v.tokenFile, `${uw}: tokenFile`);
    if (tokenFile) {
      const p = rel(u.file, tokenFile);
      try {
        if (!statSync(p).isFile()) throw new Error("not a file");
        readFileSync(p);
      } catch (e) {
        throw new KubeConfigError(`${uw}: tokenFile ${p}: ${errText(e)}`);
      }
      conn.tokenFile = p;
    }
  }
  return conn;
}

function loadFile(file: string, m: Merged): void {
  const text = readText(file, "kubeconfig");
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new KubeConfigError(`kubeconfig ${file}: not valid YAML: ${errText(e)}`);
  }
  if (doc === null || doc === undefined) return; // empty file: contributes nothing
  if (!isObj(doc)) throw new KubeConfigError(`kubeconfig ${file}: not a kubeconfig (expected a mapping at the top)`);
  const cc = doc["current-context"];
  if (typeof cc === "string" && cc && !m.currentContext) m.currentContext = { name: cc, file };
  collect(file, doc, "clusters", "cluster", m.clusters);
  collect(file, doc, "contexts", "context", m.contexts);
  collect(file, doc, "users", "user", m.users);
}

function collect(file: string, doc: Record<string, unknown>, list: string, field: string, into: Map<string, Entry>): void {
  const arr = doc[list];
  if (arr === undefined || arr === null) return;
  if (!Array.isArray(arr)) throw new KubeConfigError(`kubeconfig ${file}: ${list} must be a list`);
  arr.forEach((item, i) => {
    if (!isObj(item) || typeof item.name !== "string" || !item.name) {
      throw new KubeConfigError(`kubeconfig ${file}: ${list}[${i}] has no name`);
    }
    const value = item[field] ?? {};
    if (!isObj(value)) throw new KubeConfigError(`kubeconfig ${file}: ${list}[${i}] ("${item.name}"): ${field} must be a mapping`);
    if (!into.has(item.name)) into.set(item.name, { file, value });
  });
}

/** `<name>-data` (base64 PEM) or `<name>` (a file, relative to the kubeconfig); undefined when neither. */
function pem(e: Entry, name: string, where: string): string | undefined {
  const data = e.value[`${name}-data`];
  if (data !== undefined && data !== null && data !== "") {
    if (typeof data !== "string") throw new KubeConfigError(`${where}: ${name}-data must be a base64 string`);
    const text = Buffer.from(data.replace(/\s+/g, ""), "base64").toString("utf8");
    if (!text.includes("-----BEGIN ")) throw new KubeConfigError(`${where}: ${name}-data is not base64-encoded PEM`);
    return text;
  }
  const file = e.value[name];
  if (file !== undefined && file !== null && file !== "") {
    if (typeof file !== "string") throw new KubeConfigError(`${where}: ${name} must be a file path`);
    const p = rel(e.file, file);
    const text = readText(p, `${where}: ${name}`);
    if (!text.includes("-----BEGIN ")) throw new KubeConfigError(`${where}: ${name} ${p} is not a PEM file`);
    return text;
  }
  return undefined;
}

function rel(kubeconfig: string, p: string): string {
  return isAbsolute(p) ? p : join(dirname(kubeconfig), p);
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    throw new KubeConfigError(`${what} ${path}: ${errText(e)}`);
  }
}

function str(v: unknown, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new KubeConfigError(`${where} must be a string`);
  return v;
}

function bool(v: unknown, where: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== "boolean") throw new KubeConfigError(`${where} must be true or false`);
  return v;
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function errText(e: unknown): string {
  const code = (e as { code?: string }).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES") return "permission denied";
  return e instanceof Error ? e.message : String(e);
}
