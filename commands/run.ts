/**
 * `bgpctl run --config FILE`: the daemon. Loads and validates the config,
 * starts every session, serves the control socket, the health endpoint and
 * the metrics endpoint when configured; SIGHUP reloads the file as a diff (a
 * bad file is rejected and the running config stays); SIGINT or SIGTERM
 * closes every session with Cease and exits 0. Under systemd (Type=notify)
 * it reports READY=1 once listening, RELOADING=1/READY=1 around a reload,
 * STOPPING=1, STATUS= lines and watchdog pings (lib/router/systemd.ts).
 */
import type { Command } from "commander";
import type { HealthServer } from "../lib/api/health.ts";
import { applyRuntimeOptions } from "../lib/core/runtime-options.ts";

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run the BGP daemon from a YAML config file")
    .requiredOption("-c, --config <file>", "configuration file (YAML)")
    .option("-s, --socket <path>", "control socket (overrides controlSocket in the config)")
    .action(async (flags: { config: string; socket?: string }) => {
      applyRuntimeOptions(); // (may run the process again, with its JavaScriptCore options set: lib/core/runtime-options.ts)
      // The daemon's modules, loaded when it starts: the other commands (show, peer, ...) start without them.
      const [{ startHealthServer }, { startApiServer }, { loadConfig }, { routerMetrics }, { Router }, { SystemdSupervision }] = await Promise.all([
        import("../lib/api/health.ts"),
        import("../lib/api/server.ts"),
        import("../lib/config/load.ts"),
        import("../lib/metrics/mod.ts"),
        import("../lib/router/router.ts"),
        import("../lib/router/systemd.ts"),
      ]);
      // -s wins over the file's controlSocket, also for what derives from it (the graceful-restart marker) and on reload.
      const load = () => {
        const c = loadConfig(flags.config);
        return flags.socket ? { ...c, controlSocket: flags.socket } : c;
      };
      const config = load();
      if (config.kubernetes) {
        throw new Error(`${flags.config} has a kubernetes: section: run it with "bgpctl watch-k8s --config ${flags.config}"`);
      }
      const router = new Router(config, flags.config, undefined, { load });
      const systemd = SystemdSupervision.fromEnv(router.log, () => router);
      const { metrics, endpoint } = routerMetrics(router, { bfd: () => router.bfdSessions() });
      // The control socket first: a second daemon on the same socket stops here,
      // before it opens a single session.
      const api = await startApiServer(router, flags.socket ?? config.controlSocket, { metrics: () => metrics.body() });
      try {
        await router.start();
      } catch (e) {
        await api.close();
        throw e;
      }
      router.log.info(`control socket ${api.path}`);
      let health: HealthServer | null = null;
      try {
        if (config.health) {
          health = await startHealthServer(config.health, { ready: () => ({ ready: true, reason: "sessions started" }) });
          router.log.info(`health endpoint ${health.url}/healthz, /readyz`);
        }
        await endpoint.start(config.metrics);
      } catch (e) {
        await router.stop();
        await api.close();
        await health?.close();
        throw e;
      }
      systemd.ready();
      router.aroundReload = (fn) => systemd.reload(fn); // SIGHUP and `bgpctl reload` alike
      process.on("SIGHUP", () => {
        router.log.info("SIGHUP: reloading the configuration");
        router.reload().catch(() => {
          /* already logged by reload; the running config stays */
        });
      });
      await new Promise<void>((resolve) => {
        let stopping = false;
        // SIGTERM/SIGINT: a graceful restart (peers keep our routes, the kernel keeps them); `bgpctl shutdown`: for good.
        const stop = (graceful: boolean) => {
          if (stopping) return;
          stopping = true;
          systemd.stopping();
          router.log.info(graceful ? "stopping (graceful restart): closing sessions" : "shutting down: closing sessions");
          void router
            .stop({ graceful })
            .then(() => api.close())
            .then(() => health?.close())
            .then(() => endpoint.close())
            .finally(() => {
              systemd.close();
              resolve();
            });
        };
        router.onShutdownRequest = () => stop(false);
        process.on("SIGINT", () => stop(true));
        process.on("SIGTERM", () => stop(true));
      });
    });
}
