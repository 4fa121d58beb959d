/**
 * The HTTP health endpoint (config `health: {address, port}`), for kubelet
 * probes and load-balancer checks: `GET /healthz` answers 200 while the
 * process serves requests (liveness), `GET /readyz` answers 200 when the
 * daemon is ready (sessions started; under watch-k8s also every Kubernetes
 * cache synced) and 503 with the reason otherwise. Plain text, no auth, read
 * only; anything else is 404.
 */

export interface HealthChecks {
  /** Ready, or the reason it is not. */
  ready(): { ready: boolean; reason: string };
}

export interface HealthServer {
  readonly url: string;
  close(): Promise<void>;
}

export async function startHealthServer(listen: { address: string; port: number }, checks: HealthChecks): Promise<HealthServer> {
  let server: ReturnType<typeof Bun.serve>;
  try {
    server = Bun.serve({
      hostname: listen.address,
      port: listen.port,
      fetch(req) {
        const path = new URL(req.url).pathname;
        if (req.method !== "GET" && req.method !== "HEAD") return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
        if (path === "/healthz" || path === "/livez") return new Response("ok\n", { headers: { "content-type": "text/plain" } });
        if (path === "/readyz") {
          let r: { ready: boolean; reason: string };
          try {
            r = checks.ready();
          } catch (e) {
            r = { ready: false, reason: `readiness check failed: ${(e as Error).message}` };
          }
          return new Response(`${r.ready ? "ok" : "not ready"}: ${r.reason}\n`, { status: r.ready ? 200 : 503, headers: { "content-type": "text/plain" } });
        }
        return new Response("not found (try /healthz or /readyz)\n", { status: 404 });
      },
    });
  } catch (e) {
    throw new Error(`health endpoint: cannot listen on ${fmt(listen.address)}:${listen.port}: ${(e as Error).message}`);
  }
  return {
    url: `http://${fmt(listen.address)}:${server.port}`,
    close: async () => {
      await server.stop(true);
    },
  };
}

function fmt(a: string): string {
  return a.includes(":") ? `[${a}]` : a;
}
