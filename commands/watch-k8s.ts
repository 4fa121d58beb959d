/**
 * `bgpctl watch-k8s --config FILE`: the Kubernetes node daemon (one per node,
 * a DaemonSet with host networking). Reads the file (its `kubernetes:`
 * section and any ordinary router settings), watches Nodes, Services and
 * EndpointSlices, and runs the router with the peers and routes derived from
 * them: the node mesh (or route reflectors), external peers, pod CIDRs and
 * Service IPs, installing learned routes in the kernel. Serves the control
 * socket (`bgpctl show k8s`, `show summary`, ...) and the health endpoint;
 * SIGHUP re-reads the file; SIGINT/SIGTERM close every session and exit 0.
 */
import type { Command } from "commander";
import { type HealthServer, startHealthServer } from "../lib/api/health.ts";
import { type ApiServer, startApiServer } from "../lib/api/server.ts";
import { loadConfig } from "../lib/config/load.ts";
import type { RouterConfig } from "../lib/config/types.ts";
import { KubeController } from "../lib/k8s/controller.ts";
import { Log } from "../lib/core/log.ts";

/** The file's configuration for watch-k8s: a missing kubernetes section means all its defaults. */
function loadK8sConfig(path: string): RouterConfig {
  const c = loadConfig(path);
  if (!c.kubernetes) {
    throw new Error(`${path}: no kubernetes: section; watch-k8s derives its peers and routes from it (an empty "kubernetes: {}" takes every default)`);
  }
  return c;
}

export function registerWatchK8s(program: Command): void {
  program
    .command("watch-k8s")
    .description("run as a Kubernetes node: peers and routes from Nodes, Services and EndpointSlices (pod CIDRs, Service IPs, node mesh)")
    .requiredOption("-c, --config <file>", "configuration file (YAML) with a kubernetes: section")
    .option("-s, --socket <path>", "control socket (overrides controlSocket in the config)")
    .option("--node-name <name>", "this node's Node name (default: kubernetes.nodeName, $NODE_NAME, the hostname)")
    .option("--kubeconfig <file>", "kubeconfig file (default: kubernetes.kubeconfig, $KUBECONFIG, in-cluster, ~/.kube/config)")
    .action(async (flags: { config: string; socket?: string; nodeName?: string; kubeconfig?: string }) => {
      const base = loadK8sConfig(flags.config);
      const log = new Log(base.log.level, base.log.format);
      let api: ApiServer | null = null;
      let health: HealthServer | null = null;
      const controller = new KubeController({
        base,
        reloadBase: () => loadK8sConfig(flags.config),
        configPath: flags.config,
        nodeName: flags.nodeName,
        kubeconfig: flags.kubeconfig,
        log,
        // The control socket before any session: a second daemon on the same socket stops here.
        beforeStart: async (router) => {
          api = await startApiServer(router, flags.socket ?? base.controlSocket);
          log.info(`control socket ${api.path}`);
        },
      });
      if (base.health) {
        health = await startHealthServer(base.health, { ready: () => controller.ready() });
        log.info(`health endpoint ${health.url}/healthz, /readyz`);
      }
      let stopping = false;
      const done = new Promise<void>((resolve) => {
        const stop = () => {
          if (stopping) return;
          stopping = true;
          log.info("stopping: closing sessions");
          const router = controller.current;
          void (async () => {
            try {
              await controller.stop();
              if (router) await router.stop();
              await (api as ApiServer | null)?.close();
              await health?.close();
            } finally {
              resolve();
            }
          })();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      process.on("SIGHUP", () => {
        const router = controller.current;
        if (!router) return log.warn("SIGHUP: not running yet, nothing to reload");
        log.info("SIGHUP: reloading the configuration");
        router.reload().catch(() => {
          /* logged by reload; the running config stays */
        });
      });
      try {
        await controller.start();
      } catch (e) {
        if (!stopping) {
          await controller.stop();
          await (api as ApiServer | null)?.close();
          await health?.close();
          throw e;
        }
      }
      await done;
    });
}
