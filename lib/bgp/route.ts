/**
 * The plain, printable view of a route: what `bgpctl peer`, `show rib` and
 * `mrt` print, one object per prefix. Built from decoded UPDATEs; not used on
 * the hot path.
 */
import { asPathNumbers, asPathSegments, communityPair, largeCommunityString, extCommunityString, originName, type PathAttributes } from "./attributes.ts";
import { formatNextHop, formatIPv4, prefixToString } from "../core/addr.ts";
import { familyName, type Prefix } from "./types.ts";
import { announcedBlocks, blockPrefixes, withdrawnBlocks, type UpdateMessage } from "./update.ts";

export interface RouteView {
  prefix: string;
  pathId?: number;
  nextHop: string | null;
  asPath: number[];
  asPathSegments?: { type: string; asns: number[] }[];
  origin: string;
  med: number | null;
  localPref: number | null;
  communities: string[];
  largeCommunities: string[];
  extCommunities?: string[];
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  originatorId?: string;
  clusterList?: string[];
  otc?: number;
}

const SEG_NAMES: Record<number, string> = { 1: "set", 2: "sequence", 3: "confed-sequence", 4: "confed-set" };

/** Attribute fields of the view (everything but prefix and next hop). */
export function attributesView(a: PathAttributes | null): Omit<RouteView, "prefix" | "nextHop"> {
  const v: Omit<RouteView, "prefix" | "nextHop"> = {
    asPath: asPathNumbers(a?.asPath ?? null),
    origin: originName(a?.origin ?? null),
    med: a?.med ?? null,
    localPref: a?.localPref ?? null,
    communities: (a?.communities ?? []).map(communityPair),
    largeCommunities: (a?.largeCommunities ?? []).map(largeCommunityString),
  };
  if (!a) return v;
  const segs = asPathSegments(a.asPath);
  if (segs.some((s) => s.type !== 2)) {
    v.asPathSegments = segs.map((s) => ({ type: SEG_NAMES[s.type] ?? String(s.type), asns: s.asns }));
  }
  if (a.extCommunities.length) v.extCommunities = a.extCommunities.map(extCommunityString);
  if (a.atomicAggregate) v.atomicAggregate = true;
  if (a.aggregator) v.aggregator = a.aggregator;
  if (a.originatorId) v.originatorId = a.originatorId;
  if (a.clusterList.length) v.clusterList = a.clusterList;
  if (a.otc !== null) v.otc = a.otc;
  return v;
}

export function routeView(p: Prefix, a: PathAttributes | null, nextHop: string | null): RouteView {
  const r: RouteView = { prefix: prefixToString(p), nextHop, ...attributesView(a) };
  if (p.pathId !== undefined) r.pathId = p.pathId;
  return r;
}

/** Announced routes and withdrawn prefixes of one UPDATE, as views. */
export function updateRoutes(u: UpdateMessage): { announced: RouteView[]; withdrawn: { prefix: string; pathId?: number }[] } {
  const announced: RouteView[] = [];
  for (const b of announcedBlocks(u)) {
    const nh = b === u.nlri ? (u.attrs?.nextHop ? formatIPv4(u.attrs.nextHop) : null) : u.mpReach ? formatNextHop(u.mpReach.nextHop) : null;
    for (const p of blockPrefixes(b)) announced.push(routeView(p, u.attrs, nh));
  }
  const withdrawn: { prefix: string; pathId?: number }[] = [];
  for (const b of withdrawnBlocks(u)) {
    for (const p of blockPrefixes(b)) withdrawn.push(p.pathId !== undefined ? { prefix: prefixToString(p), pathId: p.pathId } : { prefix: prefixToString(p) });
  }
  return { announced, withdrawn };
}

export function endOfRibName(u: UpdateMessage): string | null {
  return u.endOfRib ? familyName(u.endOfRib.afi, u.endOfRib.safi) : null;
}
