/**
 * How the daemon shows a route to the outside (control API, monitor
 * events): a Route of the RIB as a RibEntry.
 */
import type { RibEntry } from "../api/types.ts";
import { attributesView } from "../bgp/route.ts";
import { prefixToString } from "../core/addr.ts";
import { type Route, forwardingHopText, nextHopText } from "../rib/types.ts";

export function routeEntry(r: Route, best: boolean, multipath: boolean): RibEntry {
  const v = attributesView(r.attrs);
  const e: RibEntry = {
    prefix: prefixToString(r.prefix),
    nextHop: r.nextHop.length ? nextHopText(r.nextHop) : "self",
    asPath: v.asPath,
    origin: v.origin,
    med: v.med,
    localPref: v.localPref,
    communities: v.communities,
    largeCommunities: v.largeCommunities,
    peer: r.source.local ? "local" : r.source.address,
    best,
    multipath,
    ibgp: r.source.ibgp && !r.source.local,
    stale: r.stale,
    reachable: r.reachable,
    igpCost: r.igpCost,
  };
  if (r.via !== undefined) e.via = r.via.map(forwardingHopText);
  if (r.pathId) e.pathId = r.pathId;
  if (v.originatorId) e.originatorId = v.originatorId;
  if (v.clusterList) e.clusterList = v.clusterList;
  return e;
}
