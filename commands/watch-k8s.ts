/**
 * `bgpctl watch-k8s [--config FILE] [flags]`: the Kubernetes node daemon (one
 * per node, a DaemonSet with host networking). Reads the file (its
 * `kubernetes:` section and any ordinary router settings), or takes every
 * default without one, and applies the kube-router style flags of
 * lib/k8s/flags.ts; watches Nodes, Services and EndpointSlices, and runs the
 * router with the peers and routes derived from them: the node mesh (or route
 * reflectors), external peers, pod CIDRs and Service IPs, installing learned
 * routes in the kernel. Serves the control socket (`bgpctl show k8s`, `show
 * summary`, ...), the health endpoint and the metrics endpoint when
 * configured; SIGHUP re-reads the file and applies the flags again;
 * SIGINT/SIGTERM close every session and exit 0. Under systemd (Type=notify):
 * STATUS= while it waits for its caches and Node, READY=1 once the router
 * runs, RELOADING=1/READY=1 around a reload, STOPPING=1, watchdog pings
 * (lib/router/systemd.ts).
 */
import type { Command } from "commander";
import type { HealthServer } from "../lib/api/health.ts";
import type { ApiServer } from "../lib/api/server.ts";
import type { K8sFlags } from "../lib/k8s/flags.ts";
import { addK8sFlags } from "../lib/k8s/flag-options.ts";
import type { MetricsEndpoint } from "../lib/metrics/mod.ts";

export function registerWatchK8s(program: Command): void {
  addK8sFlags(
    program
      .command("watch-k8s")
      .description("run as a Kubernetes node: peers and routes from Nodes, Services and EndpointSlices (pod CIDRs, Service IPs, node mesh)"),
  )
    .option("-s, --socket <path>", "control socket (overrides controlSocket in the config)")
    .action(async (flags: K8sFlags & { socket?: string }) => {
      // The daemon's modules, loaded when it starts: the other commands (show, peer, ...) start without them.
      const [{ startHealthServer }, { startApiServer }, { KubeController }, { k8sConfig }, { Log }, { routerMetrics }, { SystemdSupervision }] = await Promise.all([
        import("../lib/api/health.ts"),
        import("../lib/api/server.ts"),
        import("../lib/k8s/controller.ts"),
        import("../lib/k8s/flags.ts"),
        import("../lib/core/log.ts"),
        import("../lib/metrics/mod.ts"),
        import("../lib/router/systemd.ts"),
      ]);
      // -s wins over the file's controlSocket, also for what derives from it (the graceful-restart marker) and on reload.
      const load = () => {
        const c = k8sConfig(flags);
        return flags.socket ? { ...c, controlSocket: flags.socket } : c;
      };
      const base = load();
      const log = new Log(base.log.level, base.log.format);
      let api: ApiServer | null = null;
      let health: HealthServer | null = null;
      let metricsEndpoint: MetricsEndpoint | null = null;
      let shutdownRequest = (): void => {};
      const controller = new KubeController({
        base,
        // SIGHUP / bgpctl reload: the file read again, the same flags applied (and checked) again.
        reloadBase: load,
        configPath: base.source,
        log,
        // The control socket before any session: a second daemon on the same socket stops here.
        beforeStart: async (router) => {
          router.onShutdownRequest = () => shutdownRequest();
          router.aroundReload = (fn) => systemd.reload(fn); // SIGHUP and `bgpctl reload` alike
          const { metrics, endpoint } = routerMetrics(router, { bfd: () => router.bfdSessions() });
          api = await startApiServer(router, flags.socket ?? base.controlSocket, { metrics: () => metrics.body() });
          log.info(`control socket ${api.path}`);
          await endpoint.start(router.config.metrics);
          metricsEndpoint = endpoint;
        },
      });
      const systemd = SystemdSupervision.fromEnv(log, () => controller.current);
      systemd.status("waiting for the Kubernetes caches and this node's Node object");
      if (base.health) {
        health = await startHealthServer(base.health, { ready: () => controller.ready() });
        log.info(`health endpoint ${health.url}/healthz, /readyz`);
      }
      let stopping = false;
      const done = new Promise<void>((resolve) => {
        // SIGTERM/SIGINT (a DaemonSet rolling update): a graceful restart; `bgpctl shutdown`: for good.
        const stop = (graceful: boolean) => {
          if (stopping) return;
          stopping = true;
          systemd.stopping();
          log.info(graceful ? "stopping (graceful restart): closing sessions" : "shutting down: closing sessions");
          const router = controller.current;
          void (async () => {
            try {
              await controller.stop({ graceful }); // bgpctl shutdown also removes the overlay device
              if (router) await router.stop({ graceful });
              await (api as ApiServer | null)?.close();
              await health?.close();
              await (metricsEndpoint as MetricsEndpoint | null)?.close();
            } finally {
              systemd.close();
              resolve();
            }
          })();
        };
        shutdownRequest = () => stop(false);
        process.on("SIGINT", () => stop(true));
        process.on("SIGTERM", () => stop(true));
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
        if (!stopping) systemd.ready();
      } catch (e) {
        if (!stopping) {
          await controller.stop();
          await (api as ApiServer | null)?.close();
          await health?.close();
          await (metricsEndpoint as MetricsEndpoint | null)?.close();
          systemd.close();
          throw e;
        }
      }
      await done;
    });
}
