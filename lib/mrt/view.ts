/**
 * Presentation of decoded MRT records: plain JSON-ready objects (one per RIB
 * entry, message, state change...) built from the codec's route views, and
 * one-line human summaries. Used by `bgpctl mrt`.
 */
import {
  type PathAttributes,
  type Prefix,
  asPathString,
  attributesView,
  communityString,
  describeCapability,
  describeNotification,
  extCommunityString,
  familyName,
  formatIPv4,
  formatNextHop,
  largeCommunityString,
  openAs,
  originName,
  prefixToString,
  routeView,
  updateRoutes,
} from "../bgp/mod.ts";
import { type MessageRecord, type MrtHeader, type MrtRecord, type RibEntry, type RibRecord, bgpStateName } from "./types.ts";

export type JsonObject = Record<string, unknown>;

const MSG_KINDS: Record<number, string> = { 1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh" };

/** "open", "update", ... for a BGP message type code. */
export function messageKind(type: number): string {
  return MSG_KINDS[type] ?? `type-${type}`;
}

function timeFields(h: MrtHeader): JsonObject {
  return h.microseconds === null ? { timestamp: h.timestamp } : { timestamp: h.timestamp, microseconds: h.microseconds };
}

let lastSecond = -1;
let lastIso = "";

/** ISO 8601 UTC time of a record (with microseconds for _ET records). */
export function recordTime(h: MrtHeader): string {
  if (h.timestamp !== lastSecond) {
    lastSecond = h.timestamp;
    lastIso = new Date(h.timestamp * 1000).toISOString().slice(0, 19);
  }
  return h.microseconds === null ? `${lastIso}Z` : `${lastIso}.${String(h.microseconds).padStart(6, "0")}Z`;
}

function entryPrefix(rec: RibRecord, e: RibEntry): Prefix {
  return e.pathId === undefined ? rec.prefix : { ...rec.prefix, pathId: e.pathId };
}

/** The JSON object of one RIB entry. */
export function ribEntryObject(rec: RibRecord, e: RibEntry): JsonObject {
  const { prefix, ...view } = routeView(entryPrefix(rec, e), e.attrs, e.nextHop ? formatNextHop(e.nextHop) : null);
  const o: JsonObject = {
    type: "rib",
    ...timeFields(rec.header),
    prefix,
    peer: e.peer.address,
    peerAs: e.peer.asn,
    family: familyName(rec.afi, rec.safi),
    originated: e.originated,
    ...view,
  };
  if (e.issues.length) o.issues = e.issues.map((i) => i.reason);
  if (e.error) o.error = e.error.message;
  return o;
}

function messageObject(rec: MessageRecord): JsonObject {
  const o: JsonObject = {
    type: "message",
    kind: messageKind(rec.msgType),
    ...timeFields(rec.header),
    peer: rec.peer.peerAddress,
    peerAs: rec.peer.peerAs,
    localAs: rec.peer.localAs,
    localAddress: rec.peer.localAddress,
    direction: rec.local ? "sent" : "received",
  };
  if (rec.error || !rec.message) {
    o.error = rec.error?.message ?? "undecoded";
    if (rec.error) {
      o.errorCode = rec.error.code;
      o.errorSubcode = rec.error.subcode;
    }
    return o;
  }
  const m = rec.message;
  switch (m.type) {
    case "open":
      o.asn = openAs(m.open);
      o.holdTime = m.open.holdTime;
      o.routerId = m.open.routerId;
      o.capabilities = m.open.capabilities.map(describeCapability);
      break;
    case "notification":
      o.code = m.notification.code;
      o.subcode = m.notification.subcode;
      o.text = describeNotification(m.notification);
      break;
    case "route-refresh":
      o.family = familyName(m.refresh.afi, m.refresh.safi);
      o.subtype = m.refresh.subtype;
      break;
    case "keepalive":
      break;
    case "update": {
      const u = m.update;
      const { announced, withdrawn } = updateRoutes(u);
      o.announced = announced.map((r) => r.prefix);
      o.withdrawn = withdrawn.map((r) => r.prefix);
      if (rec.addPath) {
        o.announcedPathIds = announced.map((r) => r.pathId ?? 0);
        o.withdrawnPathIds = withdrawn.map((r) => r.pathId ?? 0);
      }
      if (u.attrs) Object.assign(o, attributesView(u.attrs));
      const v4 = u.attrs?.nextHop ? formatIPv4(u.attrs.nextHop) : null;
      const mp = u.mpReach ? formatNextHop(u.mpReach.nextHop) : null;
      if (u.nlri) {
        o.nextHop = v4;
        if (mp !== null) o.mpNextHop = mp;
      } else {
        o.nextHop = mp ?? v4;
      }
      if (u.endOfRib) o.endOfRib = familyName(u.endOfRib.afi, u.endOfRib.safi);
      if (u.treatAsWithdraw) o.treatAsWithdraw = true;
      if (u.issues.length) o.issues = u.issues.map((i) => i.reason);
      if (rec.fallback) o.fallback = rec.fallback;
      break;
    }
  }
  return o;
}

/** JSON objects for a record: one per RIB entry, else one per record. */
export function recordObjects(rec: MrtRecord): JsonObject[] {
  switch (rec.kind) {
    case "rib":
      return rec.entries.map((e) => ribEntryObject(rec, e));
    case "message":
      return [messageObject(rec)];
    case "state":
      return [
        {
          type: "state",
          ...timeFields(rec.header),
          peer: rec.peer.peerAddress,
          peerAs: rec.peer.peerAs,
          localAs: rec.peer.localAs,
          localAddress: rec.peer.localAddress,
          oldState: bgpStateName(rec.oldState),
          newState: bgpStateName(rec.newState),
        },
      ];
    case "peer-index":
      return [
        {
          type: "peer-index",
          ...timeFields(rec.header),
          collectorId: rec.collectorId,
          viewName: rec.viewName,
          peers: rec.peers.map((p, index) => ({ index, peer: p.address, peerAs: p.asn, bgpId: p.bgpId })),
        },
      ];
    case "unknown":
      return [{ type: "unknown", ...timeFields(rec.header), mrtType: rec.header.type, subtype: rec.header.subtype, length: rec.header.length, reason: rec.reason }];
  }
}

// ------------------------------------------------------------------ text

/** Summaries of interned attribute sets (decoded sets are immutable). */
const summaries = new WeakMap<PathAttributes, string>();

/** Short attribute summary: "nh X path 1 2 3 origin igp med 10 lp 100 comm 1:2 ...". */
export function attributeSummary(a: PathAttributes | null, nextHop: string | null): string {
  const nh = nextHop ? `nh ${nextHop}` : "";
  if (!a) return nh;
  let s = summaries.get(a);
  if (s === undefined) {
    s = summarize(a);
    summaries.set(a, s);
  }
  return nh && s ? `${nh} ${s}` : nh || s;
}

function summarize(a: PathAttributes): string {
  const parts: string[] = [];
  if (a.asPath) parts.push(`path ${a.asPath.length ? asPathString(a.asPath) : "(empty)"}`);
  if (a.origin !== null) parts.push(`origin ${originName(a.origin)}`);
  if (a.med !== null) parts.push(`med ${a.med}`);
  if (a.localPref !== null) parts.push(`lp ${a.localPref}`);
  if (a.communities.length) parts.push(`comm ${a.communities.map(communityString).join(",")}`);
  if (a.largeCommunities.length) parts.push(`lcomm ${a.largeCommunities.map(largeCommunityString).join(",")}`);
  if (a.extCommunities.length) parts.push(`ext ${a.extCommunities.map(extCommunityString).join(",")}`);
  if (a.atomicAggregate) parts.push("atomic-aggregate");
  if (a.aggregator) parts.push(`aggregator ${a.aggregator.asn}@${a.aggregator.address}`);
  if (a.originatorId) parts.push(`originator ${a.originatorId}`);
  if (a.clusterList.length) parts.push(`cluster ${a.clusterList.join(",")}`);
  if (a.otc !== null) parts.push(`otc ${a.otc}`);
  if (a.unknown.length) parts.push(`unknown-attrs ${a.unknown.map((u) => u.type).join(",")}`);
  return parts.join(" ");
}

function join(...parts: (string | null | undefined | false)[]): string {
  let s = "";
  for (const p of parts) if (p) s = s ? `${s} ${p}` : p;
  return s;
}

function ribLine(rec: RibRecord, e: RibEntry): string {
  const p = prefixToString(rec.prefix) + (e.pathId !== undefined ? ` id ${e.pathId}` : "");
  const fam = rec.safi === 1 ? null : familyName(rec.afi, rec.safi);
  return join(
    recordTime(rec.header),
    "RIB",
    p,
    fam,
    `from ${e.peer.address} AS${e.peer.asn}`,
    e.error ? `error: ${e.error.message}` : attributeSummary(e.attrs, e.nextHop ? formatNextHop(e.nextHop) : null) || "no attributes",
    e.issues.length > 0 && `[${e.issues.map((i) => i.reason).join("; ")}]`,
  );
}

function list(prefixes: string[], max = 8): string {
  if (prefixes.length <= max) return prefixes.join(" ");
  return `${prefixes.slice(0, max).join(" ")} ... (${prefixes.length} total)`;
}

function messageLine(rec: MessageRecord): string {
  const who = `${rec.local ? "to" : "from"} ${rec.peer.peerAddress} AS${rec.peer.peerAs}`;
  const head = join(recordTime(rec.header), messageKind(rec.msgType).toUpperCase(), who);
  if (rec.error || !rec.message) return join(head, `malformed: ${rec.error?.message ?? "undecoded"}`);
  const m = rec.message;
  switch (m.type) {
    case "open":
      return join(
        head,
        `asn ${openAs(m.open)} hold ${m.open.holdTime} id ${m.open.routerId}`,
        m.open.capabilities.length > 0 && `caps: ${m.open.capabilities.map(describeCapability).join(", ")}`,
      );
    case "notification":
      return join(head, describeNotification(m.notification));
    case "keepalive":
      return head;
    case "route-refresh":
      return join(head, familyName(m.refresh.afi, m.refresh.safi), m.refresh.subtype ? `subtype ${m.refresh.subtype}` : null);
    case "update": {
      const u = m.update;
      if (u.endOfRib) return join(head, `end-of-rib ${familyName(u.endOfRib.afi, u.endOfRib.safi)}`);
      const { announced, withdrawn } = updateRoutes(u);
      const fmt = (r: { prefix: string; pathId?: number }) => (r.pathId !== undefined ? `${r.prefix}#${r.pathId}` : r.prefix);
      const v4 = u.attrs?.nextHop ? formatIPv4(u.attrs.nextHop) : null;
      const nh = u.mpReach && !u.nlri ? formatNextHop(u.mpReach.nextHop) : v4;
      return join(
        head,
        announced.length > 0 && `+ ${list(announced.map(fmt))}`,
        withdrawn.length > 0 && `- ${list(withdrawn.map(fmt))}`,
        announced.length > 0 && attributeSummary(u.attrs, nh),
        u.issues.length > 0 && `[${u.issues.map((i) => i.reason).join("; ")}]`,
        rec.fallback !== null && `(fallback: ${rec.fallback})`,
      );
    }
  }
}

/** Human-readable lines for a record: one per RIB entry, else one per record. */
export function recordLines(rec: MrtRecord): string[] {
  switch (rec.kind) {
    case "rib":
      return rec.entries.length ? rec.entries.map((e) => ribLine(rec, e)) : [join(recordTime(rec.header), "RIB", prefixToString(rec.prefix), "(no entries)")];
    case "message":
      return [messageLine(rec)];
    case "state":
      return [
        join(recordTime(rec.header), "STATE", `${rec.peer.peerAddress} AS${rec.peer.peerAs}`, `${bgpStateName(rec.oldState)} -> ${bgpStateName(rec.newState)}`),
      ];
    case "peer-index":
      return [
        join(
          recordTime(rec.header),
          "PEER_INDEX_TABLE",
          `collector ${rec.collectorId}`,
          rec.viewName && `view "${rec.viewName}"`,
          `${rec.peers.length} peers:`,
          rec.peers.map((p, i) => `#${i} ${p.address} AS${p.asn}`).join(", "),
        ),
      ];
    case "unknown":
      return [join(recordTime(rec.header), "SKIPPED", `type ${rec.header.type} subtype ${rec.header.subtype} (${rec.header.length} bytes): ${rec.reason}`)];
  }
}
