/**
 * Helper process for tests/kernel/rtnetlink.test.ts: runs INSIDE the test's
 * network namespace (`ip netns exec NS bun tests/kernel/rtnetlink-agent.ts`)
 * and drives ffi/rtnetlink.ts on request. One JSON request per stdin line
 * ({id, cmd, ...}), one JSON reply per stdout line ({id, ok, result} or
 * {id, ok: false, error}). Events from watch() are collected and handed out
 * by the "events" command. Not a test file itself.
 */
import type { KernelEvent } from "../../lib/fib/types.ts";
import { RtNetlink } from "../../ffi/rtnetlink.ts";
import { parseAddr } from "../../lib/core/addr.ts";
import { turnCounter } from "../support/turns.ts";

interface Req {
  id: number;
  cmd: string;
  [k: string]: unknown;
}

const k = await RtNetlink.open();
let small: RtNetlink | null = null;
const events: KernelEvent[] = [];
const smallEvents: KernelEvent[] = [];

async function handle(r: Req): Promise<unknown> {
  switch (r.cmd) {
    case "apply": {
      const t = performance.now();
      // Event-loop turns while apply() runs: a big apply is many short sends, each answered in a turn of its own.
      const counter = turnCounter();
      const results = await k.apply(r.ops as Parameters<RtNetlink["apply"]>[0]);
      return { results, ms: performance.now() - t, turns: counter.stop() };
    }
    case "dumpRoutes":
      return k.dumpRoutes(r.family as 4 | 6, r.filter as { table?: number; protocol?: number } | undefined);
    case "countRoutes": {
      const t = performance.now();
      const routes = await k.dumpRoutes(r.family as 4 | 6, r.filter as { table?: number; protocol?: number } | undefined);
      return { count: routes.length, ms: performance.now() - t };
    }
    case "lookup": {
      const a = parseAddr(String(r.address));
      if (!a) throw new Error(`lookup: bad address ${String(r.address)}`);
      return k.lookupRoute(a.afi === 1 ? 4 : 6, a.addr);
    }
    case "dumpLinks":
      return k.dumpLinks();
    case "dumpAddresses":
      return k.dumpAddresses();
    case "limits":
      return k.limits;
    case "watch":
      k.watch((e) => events.push(e));
      return true;
    case "events":
      return events.splice(0);
    case "watchSmall":
      // A second instance whose multicast socket has a tiny receive buffer, to provoke ENOBUFS.
      small = await RtNetlink.open({ groups: true, rcvbuf: Number(r.rcvbuf ?? 4096) });
      small.watch((e) => smallEvents.push(e));
      return small.limits;
    case "applySmallRcvbuf": {
      // A request socket with a small receive buffer: batches must shrink so every error reply fits.
      const t = await RtNetlink.open({ requestRcvbuf: Number(r.rcvbuf) });
      try {
        return { results: await t.apply(r.ops as Parameters<RtNetlink["apply"]>[0]), limits: t.limits };
      } finally {
        t.close();
      }
    }
    case "smallEvents":
      return smallEvents.splice(0);
    case "close": {
      k.close();
      small?.close();
      const after = await k.apply([{ op: "delete", route: { family: 4, prefix: "203.0.113.0/24", table: 1000, protocol: 200, metric: 0, nextHops: [], type: 1 } }]);
      return { applyAfterClose: after };
    }
    default:
      throw new Error(`unknown command ${r.cmd}`);
  }
}

function reply(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

reply({ id: 0, ok: true, result: "ready" });
for await (const line of console) {
  if (!line.trim()) continue;
  let r: Req;
  try {
    r = JSON.parse(line) as Req;
  } catch (e) {
    reply({ id: -1, ok: false, error: `bad request: ${(e as Error).message}` });
    continue;
  }
  try {
    reply({ id: r.id, ok: true, result: await handle(r) });
  } catch (e) {
    reply({ id: r.id, ok: false, error: (e as Error).stack ?? String(e) });
  }
  if (r.cmd === "close") break;
}
process.exit(0);
