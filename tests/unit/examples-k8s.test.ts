/**
 * The Kubernetes deployment in examples/kubernetes/ checked against the code:
 * the DaemonSet's command line is accepted by the compiled binary (every flag
 * exists), its config file (from the ConfigMap) loads, the probes hit the
 * health endpoint's port and paths (served for real here), the RBAC rules
 * cover exactly what the controller lists and watches plus the Secret the
 * config refers to, the container gets only NET_ADMIN and NET_BIND_SERVICE,
 * and the image recipe copies the file `npm run build` writes.
 */
import { describe, expect, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import { startHealthServer } from "../../lib/api/health.ts";
import { loadConfig } from "../../lib/config/load.ts";
import { ANNOTATIONS } from "../../lib/k8s/annotations.ts";
import { RESOURCES } from "../../lib/k8s/controller.ts";
import { tempDirs } from "../support/tmp.ts";

const tmp = tempDirs("bgpctl-k8s-example-");

const ROOT = join(import.meta.dir, "..", "..");
const DIR = join(ROOT, "examples", "kubernetes");
const BIN = process.env.BGPCTL_BIN ?? join(ROOT, "dist", "bgpctl");

// biome-ignore lint: manifests are untyped YAML
type Any = any;

function docs(file: string): Any[] {
  const all = parseAllDocuments(readFileSync(join(DIR, file), "utf8"));
  for (const d of all) expect(d.errors).toEqual([]);
  return all.map((d) => d.toJS());
}

const daemonset = docs("daemonset.yaml").find((d) => d.kind === "DaemonSet");
const container = daemonset.spec.template.spec.containers[0];
const configMap = docs("configmap.yaml").find((d) => d.kind === "ConfigMap");
const rbac = docs("rbac.yaml");

function flagValue(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

describe("examples/kubernetes", () => {
  test("the DaemonSet's command line: watch-k8s with flags the binary accepts", () => {
    const args: string[] = container.args;
    expect(args[0]).toBe("watch-k8s");
    const help = Bun.spawnSync([BIN, "watch-k8s", "--help"], { stdout: "pipe", stderr: "pipe" });
    expect(help.exitCode).toBe(0);
    const text = help.stdout.toString();
    const flags = args.filter((a) => a.startsWith("-"));
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(text).toContain(f);
    // An unknown flag is refused by the same binary (the check above can fail).
    const bad = Bun.spawnSync([BIN, "watch-k8s", "--config", "x", "--no-such-flag"], { stdout: "pipe", stderr: "pipe" });
    expect(bad.exitCode).toBe(2);
  });

  test("the ConfigMap's config.yaml loads, at the path --config names, with a kubernetes section", () => {
    const args: string[] = container.args;
    const configPath = flagValue(args, "--config")!;
    const mount = container.volumeMounts.find((m: Any) => configPath.startsWith(`${m.mountPath}/`));
    expect(mount).toBeDefined();
    const vol = daemonset.spec.template.spec.volumes.find((v: Any) => v.name === mount.name);
    expect(vol.configMap.name).toBe(configMap.metadata.name);
    const key = configPath.slice(mount.mountPath.length + 1);
    const text = configMap.data[key];
    expect(typeof text).toBe("string");
    const dir = tmp();
    const file = join(dir, key);
    writeFileSync(file, text);
    const cfg = loadConfig(file);
    expect(cfg.kubernetes).toBeDefined();
    expect(cfg.kernel.enabled).toBe(true);
    // The control socket lives on the emptyDir mounted for it, and the flag agrees.
    const sock = flagValue(args, "--socket")!;
    expect(sock).toBe(cfg.controlSocket);
    expect(container.volumeMounts.some((m: Any) => sock.startsWith(`${m.mountPath}/`) && !m.readOnly)).toBe(true);
    // Probes on the health port, paths served by lib/api/health.ts.
    expect(cfg.health).toBeDefined();
    expect(container.livenessProbe.httpGet.port).toBe(cfg.health!.port);
    expect(container.readinessProbe.httpGet.port).toBe(cfg.health!.port);
  });

  test("the probe paths answer on a real health endpoint (/healthz 200; /readyz 503 then 200)", async () => {
    let ready = false;
    const h = await startHealthServer({ address: "127.0.0.1", port: 0 }, { ready: () => ({ ready, reason: ready ? "synced" : "waiting" }) });
    try {
      const live = await fetch(`${h.url}${container.livenessProbe.httpGet.path}`);
      expect(live.status).toBe(200);
      const notReady = await fetch(`${h.url}${container.readinessProbe.httpGet.path}`);
      expect(notReady.status).toBe(503);
      expect(await notReady.text()).toContain("waiting");
      ready = true;
      expect((await fetch(`${h.url}${container.readinessProbe.httpGet.path}`)).status).toBe(200);
      expect((await fetch(`${h.url}/nothing`)).status).toBe(404);
    } finally {
      await h.close();
    }
  });

  test("host network, NODE_NAME from the downward API, only NET_ADMIN and NET_BIND_SERVICE", () => {
    const spec = daemonset.spec.template.spec;
    expect(spec.hostNetwork).toBe(true);
    const env = container.env.find((e: Any) => e.name === "NODE_NAME");
    expect(env.valueFrom.fieldRef.fieldPath).toBe("spec.nodeName");
    expect(container.securityContext.capabilities.drop).toEqual(["ALL"]);
    expect([...container.securityContext.capabilities.add].sort()).toEqual(["NET_ADMIN", "NET_BIND_SERVICE"]);
    expect(container.securityContext.privileged).toBeUndefined();
  });

  test("RBAC: get/list/watch on every resource the controller watches, get on the referenced Secret, nothing more", () => {
    const sa = rbac.find((d) => d.kind === "ServiceAccount");
    expect(daemonset.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    const role = rbac.find((d) => d.kind === "ClusterRole");
    const binding = rbac.find((d) => d.kind === "ClusterRoleBinding");
    expect(binding.roleRef.name).toBe(role.metadata.name);
    expect(binding.subjects).toContainEqual({ kind: "ServiceAccount", name: sa.metadata.name, namespace: sa.metadata.namespace });
    const granted = new Set<string>();
    for (const rule of role.rules) {
      expect([...rule.verbs].sort()).toEqual(["get", "list", "watch"]);
      for (const g of rule.apiGroups) for (const r of rule.resources) granted.add(`${g}/${r}`);
    }
    const needed = Object.values(RESOURCES).map((r) => {
      const m = /^\/apis\/([^/]+)\/[^/]+\/([^/]+)$/.exec(r.path) ?? /^\/api\/v1\/([^/]+)$/.exec(r.path);
      return r.path.startsWith("/apis/") ? `${m![1]}/${m![2]}` : `/${m![1]}`;
    });
    expect([...granted].sort()).toEqual(needed.sort());
    // The Secret of kubernetes.peers[].passwordSecret is readable (get, by name) in its namespace.
    const dir = tmp();
    writeFileSync(join(dir, "c.yaml"), configMap.data["config.yaml"]);
    const refs = loadConfig(join(dir, "c.yaml")).kubernetes!.peers.flatMap((p) => (p.passwordSecret ? [p.passwordSecret] : []));
    expect(refs.length).toBeGreaterThan(0);
    const secretRole = rbac.find((d) => d.kind === "Role");
    for (const ref of refs) {
      expect(secretRole.metadata.namespace).toBe(ref.namespace);
      expect(secretRole.rules.some((r: Any) => r.resources.includes("secrets") && r.verbs.includes("get") && r.resourceNames.includes(ref.name))).toBe(true);
      const secret = docs("secret.yaml").find((d) => d.kind === "Secret");
      expect(secret.metadata.name).toBe(ref.name);
      expect(Object.keys(secret.stringData)).toContain(ref.key);
    }
  });

  test("the image recipe copies what npm run build writes and runs it as the entrypoint", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8"));
    const out = /--outfile\s+(\S+)/.exec(pkg.scripts.build)![1]!;
    const docker = readFileSync(join(DIR, "Dockerfile"), "utf8");
    expect(docker).toContain("RUN npm run build");
    const copy = /COPY --from=build \/src\/(\S+) (\S+)/.exec(docker)!;
    expect(copy[1]).toBe(out);
    expect(docker).toContain(`ENTRYPOINT ["${copy[2]}"]`);
  });

  test("README: the annotation table lists every annotation the code reads, and the kubernetes: example loads", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const section = readme.slice(readme.indexOf("## Kubernetes"), readme.indexOf("\n## ", readme.indexOf("## Kubernetes") + 5));
    const rows = section.split("\n").filter((l) => l.startsWith("| `bgpctl.io/"));
    expect(rows.length).toBe(ANNOTATIONS.length);
    for (const a of ANNOTATIONS) {
      const row = rows.find((r) => r.startsWith(`| \`${a.key}\` | ${a.on} |`));
      expect(row).toBeDefined();
      expect(row).toContain(`\`${a.example.replace(/\|/g, "\\|")}\``);
    }
    const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(section)![1]!;
    const dir = tmp();
    writeFileSync(join(dir, "c.yaml"), yamlBlock);
    const cfg = loadConfig(join(dir, "c.yaml"));
    expect(cfg.kubernetes!.peers[0]!.nodeSelector).toEqual({ rack: "r1" });
    expect(cfg.health!.port).toBe(9179);
  });
});
