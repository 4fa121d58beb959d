/**
 * The kernel's FIB as a `NextHopResolver` (lib/rib/nexthop.ts): each next
 * hop is looked up like `ip route get ADDR fibmatch` (Kernel.lookupRoute, no
 * privilege needed), and every route, link or address notification (or a
 * lost-events overrun) tells the tracker to re-resolve. A match that is one
 * of our own routes (our table and protocol) is flagged `own`, so the tracker
 * resolves through the Loc-RIB route behind it and can refuse a route that
 * would resolve through itself. The answer carries the matching route's
 * immediate hops (its gateways with their interfaces; the address itself on
 * a connected route), which the FIB installs for a next hop that is not
 * on-link (RFC 4271 §5.1.3).
 */
import { type Afi, parseAddr, parsePrefix } from "../core/addr.ts";
import type { NextHopAnswer, NextHopResolver } from "../rib/nexthop.ts";
import type { ForwardingHop } from "../rib/types.ts";
import type { Kernel, KernelRoute } from "./types.ts";

/** rtm_type of a local route (one of our addresses, loopback). */
const RTN_LOCAL = 2;

/** Our routes in the kernel, to recognise them in lookup answers; null when we install none. */
export interface OwnRoutes {
  table: number;
  protocol: number;
}

function describe(r: KernelRoute): string {
  const hops = r.nextHops.map((h) => (h.gateway !== undefined ? `via ${h.gateway}` : h.ifindex !== undefined ? `dev #${h.ifindex}` : "")).filter((x) => x);
  const kind = r.type === RTN_LOCAL ? " (local)" : "";
  return `${r.prefix}${hops.length ? ` ${hops.join(", ")}` : ""}${kind} metric ${r.metric} proto ${r.protocol}`;
}

/**
 * The immediate hops of a kernel route matching `addr`: each gateway with
 * its interface, `addr` itself for a next hop without gateway (a connected
 * or device route); duplicates dropped. Throws on a gateway the kernel
 * would not have sent (not an address).
 */
export function immediateHops(r: KernelRoute, addr: Uint8Array): ForwardingHop[] {
  const out: ForwardingHop[] = [];
  const seen = new Set<string>();
  for (const h of r.nextHops) {
    let a = addr;
    if (h.gateway !== undefined) {
      const g = parseAddr(h.gateway);
      if (!g) throw new Error(`route ${r.prefix}: gateway ${JSON.stringify(h.gateway)} is not an address`);
      a = g.addr;
    }
    const id = `${a.join(".")}%${h.ifindex ?? ""}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(h.ifindex === undefined ? { addr: a } : { addr: a, ifindex: h.ifindex });
  }
  return out;
}

export function kernelResolver(kernel: Pick<Kernel, "lookupRoute" | "watch">, own: OwnRoutes | null): NextHopResolver {
  return {
    async resolve(afi: Afi, addr: Uint8Array): Promise<NextHopAnswer> {
      const a = await kernel.lookupRoute(afi === 1 ? 4 : 6, addr);
      if (a.error) return { reachable: false, metric: 0, prefix: null, own: false, via: `kernel: ${a.error.code}${a.error.message ? ` (${a.error.message})` : ""}` };
      const r = a.route;
      const isOwn = own !== null && r.protocol === own.protocol && r.table === own.table;
      return { reachable: true, metric: r.metric, prefix: parsePrefix(r.prefix), own: isOwn, via: describe(r), hops: immediateHops(r, addr) };
    },
    onChange(fn: () => void): () => void {
      return kernel.watch(() => fn());
    },
  };
}
