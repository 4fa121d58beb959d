/**
 * One-shot looking glass: open a session, collect the peer's routes until
 * End-of-RIB of every negotiated family (or a timeout), close with Cease and
 * return the table.
 */
import type { RouteView } from "../bgp/route.ts";
import { type PeerEvent, type StandaloneOptions, StandaloneSpeaker } from "./speaker.ts";

export type RibRow = RouteView & { peer: string };

export interface LookingGlassResult {
  routes: RibRow[];
  /** True when End-of-RIB arrived for every negotiated family. */
  complete: boolean;
  /** Why the session failed to establish, when it did. */
  error: string | null;
}

export async function collectRib(opts: StandaloneOptions, timeoutMs: number, onEvent?: (e: PeerEvent) => void): Promise<LookingGlassResult> {
  const table = new Map<string, RibRow>();
  const key = (prefix: string, pathId?: number) => (pathId === undefined ? prefix : `${prefix}#${pathId}`);
  let families: string[] | null = null;
  const eor = new Set<string>();
  let lastError: string | null = null;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  const speaker = new StandaloneSpeaker({ ...opts, advertise: [], kernel: undefined }, (e) => {
    onEvent?.(e);
    switch (e.event) {
      case "established":
        families = e.families;
        break;
      case "announce": {
        const { event: _e, ...row } = e;
        table.set(key(e.prefix, e.pathId), row);
        break;
      }
      case "withdraw":
        table.delete(key(e.prefix, e.pathId));
        break;
      case "eor":
        eor.add(e.family);
        break;
      case "notification":
        lastError = `notification ${e.direction}: ${e.text}`;
        break;
      case "log":
        if (e.level === "error" || e.level === "warn") lastError = e.msg;
        break;
    }
    if (families && families.every((f) => eor.has(f))) done();
  });
  await speaker.start();
  const timer = setTimeout(done, timeoutMs);
  await finished;
  clearTimeout(timer);
  const established = families !== null;
  const complete = established && families!.every((f) => eor.has(f));
  await speaker.stop("bgpctl show rib: done");
  const routes = [...table.values()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  return { routes, complete, error: established ? null : (lastError ?? "session did not reach Established") };
}
