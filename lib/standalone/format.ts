/**
 * Human-readable lines for the events of a standalone session (`bgpctl peer`)
 * and the table printed by the one-shot `bgpctl show rib --peer`.
 */
import type { RouteView } from "../bgp/route.ts";
import type { PeerEvent } from "./speaker.ts";

function time(): string {
  return new Date().toISOString().slice(11, 19);
}

/** Attribute summary of a route, e.g. `as-path 65001 65002 origin igp med 10 communities 65001:1`. */
export function routeSummary(r: RouteView): string {
  const parts = [`via ${r.nextHop ?? "-"}`, `as-path ${r.asPath.length ? r.asPath.join(" ") : "(empty)"}`, `origin ${r.origin}`];
  if (r.med !== null) parts.push(`med ${r.med}`);
  if (r.localPref !== null) parts.push(`local-pref ${r.localPref}`);
  if (r.communities.length) parts.push(`communities ${r.communities.join(" ")}`);
  if (r.largeCommunities.length) parts.push(`large-communities ${r.largeCommunities.join(" ")}`);
  if (r.extCommunities?.length) parts.push(`ext-communities ${r.extCommunities.join(" ")}`);
  if (r.pathId !== undefined) parts.push(`path-id ${r.pathId}`);
  return parts.join(" ");
}

export function formatEvent(e: PeerEvent): string {
  const t = time();
  switch (e.event) {
    case "state":
      return `${t} state ${e.from} -> ${e.to}${e.reason ? ` (${e.reason})` : ""}`;
    case "established":
      return `${t} established: peer AS ${e.peerAs}, router id ${e.routerId}, hold time ${e.holdTime}s, families ${e.families.join(" ")}, local address ${e.localAddress}\n${t}   capabilities: ${e.capabilities.join("; ")}`;
    case "announce":
      return `${t} + ${e.prefix} ${routeSummary(e)}`;
    case "withdraw":
      return `${t} - ${e.prefix}${e.pathId !== undefined ? ` path-id ${e.pathId}` : ""}`;
    case "eor":
      return `${t} end-of-rib ${e.family}`;
    case "notification":
      return `${t} notification ${e.direction}: ${e.text}`;
    case "route-refresh":
      return `${t} route-refresh received for ${e.family}: re-announcing`;
    case "update-error":
      return `${t} malformed UPDATE (${e.action}): ${e.reason}`;
    case "log":
      return `${t} ${e.level}: ${e.msg}`;
  }
}

/** A routing table in columns, as `show rib` prints it. */
export function formatRibTable(routes: (RouteView & { peer: string })[]): string {
  const rows = [["Prefix", "Next hop", "AS path", "Origin", "MED", "LocPrf", "Communities"]];
  for (const r of routes) {
    rows.push([
      r.prefix,
      r.nextHop ?? "-",
      r.asPath.join(" ") || "-",
      r.origin,
      r.med === null ? "" : String(r.med),
      r.localPref === null ? "" : String(r.localPref),
      [...r.communities, ...r.largeCommunities].join(" "),
    ]);
  }
  const w = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join("  ").trimEnd()).join("\n") + "\n";
}
