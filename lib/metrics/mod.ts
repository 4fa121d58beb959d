/**
 * Metrics for a daemon (`bgpctl run`, `bgpctl watch-k8s`): the collector
 * (./daemon.ts) and the HTTP endpoint (./server.ts), the endpoint handed to
 * the router's reconfigurer so a reload starts, moves or stops it.
 */
import type { Router } from "../router/router.ts";
import { DaemonMetrics, type DaemonMetricsOptions } from "./daemon.ts";
import { MetricsEndpoint } from "./server.ts";

export { DaemonMetrics, METRICS_CONTENT_TYPE, type BfdSessionMetric } from "./daemon.ts";
export { MetricsEndpoint } from "./server.ts";

export interface RouterMetrics {
  readonly metrics: DaemonMetrics;
  /** Not started: `endpoint.start(config.metrics)` once the router runs. */
  readonly endpoint: MetricsEndpoint;
}

/** The metrics of `router` (its BFD sessions by default), with an endpoint its reloads keep in step with `metrics:`. */
export function routerMetrics(router: Router, opts: DaemonMetricsOptions = {}): RouterMetrics {
  const metrics = new DaemonMetrics(router, { bfd: () => router.bfdSessions(), ...opts });
  const endpoint = new MetricsEndpoint(
    () => metrics.body(),
    (level, msg) => router.log.at(level, msg),
  );
  router.reconf.metrics = endpoint;
  return { metrics, endpoint };
}
