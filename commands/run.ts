/**
 * `bgpctl run --config FILE`: the daemon. Loads and validates the config,
 * starts every session, serves the control socket; SIGHUP reloads the file as
 * a diff (a bad file is rejected and the running config stays); SIGINT or
 * SIGTERM closes every session with Cease and exits 0.
 */
import type { Command } from "commander";
import { type HealthServer, startHealthServer } from "../lib/api/health.ts";
import { startApiServer } from "../lib/api/server.ts";
import { loadConfig } from "../lib/config/load.ts";
import { Router } from "../lib/router/router.ts";

export function registerRun(program: Command): void {
  program
    .command("run")
    .description("run the BGP daemon from a YAML config file")
    .requiredOption("-c, --config <file>", "configuration file (YAML)")
    .option("-s, --socket <path>", "control socket (overrides controlSocket in the config)")
    .action(async (flags: { config: string; socket?: string }) => {
      const config = loadConfig(flags.config);
      if (config.kubernetes) {
        throw new Error(`${flags.config} has a kubernetes: section: run it with "bgpctl watch-k8s --config ${flags.config}"`);
      }
      const router = new Router(config, flags.config);
      // The control socket first: a second daemon on the same socket stops
      // here, before it opens a single session.
      const api = await startApiServer(router, flags.socket ?? config.controlSocket);
      try {
        await router.start();
      } catch (e) {
        await api.close();
        throw e;
      }
      router.log.info(`control socket ${api.path}`);
      let health: HealthServer | null = null;
      if (config.health) {
        try {
          health = await startHealthServer(config.health, { ready: () => ({ ready: true, reason: "sessions started" }) });
          router.log.info(`health endpoint ${health.url}/healthz, /readyz`);
        } catch (e) {
          await router.stop();
          await api.close();
          throw e;
        }
      }
      process.on("SIGHUP", () => {
        router.log.info("SIGHUP: reloading the configuration");
        router.reload().catch(() => {
          /* already logged by reload; the running config stays */
        });
      });
      await new Promise<void>((resolve) => {
        let stopping = false;
        const stop = () => {
          if (stopping) return;
          stopping = true;
          router.log.info("stopping: closing sessions");
          void router
            .stop()
            .then(() => api.close())
            .then(() => health?.close())
            .finally(resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
}
