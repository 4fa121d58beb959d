/**
 * The Prometheus endpoint (config `metrics: {address, port, path}`): plain
 * HTTP (Bun.serve), GET or HEAD of `path` answers the exposition text of
 * lib/metrics/daemon.ts, every other path 404, other methods 405. No auth,
 * read only.
 *
 * `MetricsEndpoint` keeps it in step with the configuration: a reload that
 * adds, moves (address or port) or removes `metrics:` starts, rebinds or
 * stops the server and touches nothing else; a new path is taken at once
 * without rebinding. Two phases like the BGP listener's swap
 * (lib/router/reconfigure.ts): `prepare` binds the new address (closing the
 * old first, since the new one may reuse its port, and binding the old one
 * again when the new one fails, so a failed reload leaves the endpoint as it
 * was), `commit` makes it the one in force.
 */
import type { RouterConfig } from "../config/types.ts";
import { METRICS_CONTENT_TYPE } from "./daemon.ts";

export type MetricsConfig = NonNullable<RouterConfig["metrics"]>;

/** Produces the body of a scrape (the exposition text). */
export type MetricsBody = () => Promise<string | ReadableStream<Uint8Array>>;

interface Running {
  server: ReturnType<typeof Bun.serve>;
  config: MetricsConfig;
}

/** A bound metrics server; `path` may change while it runs. */
function serve(config: MetricsConfig, text: MetricsBody, log: (level: "warn" | "error", msg: string) => void, path: { value: string }): Running {
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: config.address,
      port: config.port,
      // A slow scrape of a large FIB walks it in slices: never cut off for idleness.
      idleTimeout: 0,
      async fetch(req) {
        const url = new URL(req.url);
        if (url.pathname !== path.value) return new Response(`not found (metrics are at ${path.value})\n`, { status: 404 });
        if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
        try {
          return new Response(await text(), { headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" } });
        } catch (e) {
          log("error", `metrics: scrape failed: ${(e as Error).stack ?? String(e)}`);
          return new Response(`scrape failed: ${(e as Error).message}\n`, { status: 500 });
        }
      },
    });
  } catch (e) {
    throw new Error(`metrics endpoint: cannot listen on ${hostPort(config)}: ${(e as Error).message}`);
  }
  return { server, config };
}

export function hostPort(c: { address: string; port: number }): string {
  return `${c.address.includes(":") ? `[${c.address}]` : c.address}:${c.port}`;
}

/** What a reload will do to the endpoint, prepared (already bound) and not yet in force. */
export interface MetricsChange {
  /** A log text for the reload's list of changes. */
  readonly what: string;
  commit(): void;
  /** The reload failed after this was prepared: back to how the endpoint was. */
  abort(): Promise<void>;
}

export class MetricsEndpoint {
  private running: Running | null = null;
  private readonly path = { value: "/metrics" };

  constructor(
    private readonly text: MetricsBody,
    private readonly log: (level: "info" | "warn" | "error", msg: string) => void,
  ) {}

  /** The URL scraped (null when off). */
  get url(): string | null {
    const r = this.running;
    return r ? `http://${hostPort({ address: r.config.address, port: r.server.port ?? r.config.port })}${this.path.value}` : null;
  }

  /** Start with the configuration's `metrics` (nothing when absent); throws when the address cannot be bound. */
  async start(config: MetricsConfig | undefined): Promise<void> {
    (await this.prepare(config))?.commit();
  }

  /**
   * Get ready to run `next` (undefined: off): null when nothing changes;
   * else the change, with any new address already bound. Throws (leaving the
   * endpoint as it was) when the new address cannot be bound.
   */
  async prepare(next: MetricsConfig | undefined): Promise<MetricsChange | null> {
    const cur = this.running;
    if (!next) {
      if (!cur) return null;
      return { what: "metrics endpoint stopped", commit: () => this.stopNow(), abort: async () => {} };
    }
    if (cur && cur.config.address === next.address && cur.config.port === next.port) {
      if (cur.config.path === next.path) return null;
      return {
        what: `metrics path ${next.path}`,
        commit: () => {
          cur.config = next;
          this.path.value = next.path;
        },
        abort: async () => {},
      };
    }
    // A new address or port: free the old one first (the new one may reuse its port).
    if (cur) await cur.server.stop(true);
    const restoreOld = () => {
      if (!cur) return;
      try {
        this.running = serve(cur.config, this.text, this.log, this.path);
      } catch (e) {
        this.running = null;
        this.log("error", `metrics endpoint: cannot listen on the old address ${hostPort(cur.config)} again: ${(e as Error).message}`);
      }
    };
    let fresh: Running;
    try {
      fresh = serve(next, this.text, this.log, this.path);
    } catch (e) {
      restoreOld();
      throw e;
    }
    this.running = null;
    return {
      what: `metrics endpoint ${cur ? "moved to" : "started on"} ${hostPort(next)}${next.path}`,
      commit: () => {
        this.running = fresh;
        this.path.value = next.path;
        this.log("info", `metrics endpoint http://${hostPort({ address: next.address, port: fresh.server.port ?? next.port })}${next.path}`);
      },
      abort: async () => {
        await fresh.server.stop(true);
        restoreOld();
      },
    };
  }

  private stopNow(): void {
    const r = this.running;
    this.running = null;
    if (r) void r.server.stop(true);
  }

  async close(): Promise<void> {
    const r = this.running;
    this.running = null;
    if (r) await r.server.stop(true);
  }
}
