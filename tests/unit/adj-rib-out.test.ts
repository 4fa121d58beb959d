/**
 * Unit tests of the per-peer Adj-RIB-Out (lib/rib/adj-rib-out.ts): every
 * outbound rule (source peer, iBGP split horizon and RFC 4456 reflection,
 * eBGP AS loop, export policy and RFC 8212, eBGP/iBGP rewrites, well-known
 * communities), change tracking (no duplicates, withdraw only what was
 * advertised), UPDATE packing checked by decoding the messages back, 2-octet
 * peers, ADD-PATH, End-of-RIB, route refresh and resync, pulled output
 * (take in batches, requeue and resync as walks).
 */
import { describe, expect, test } from "bun:test";
import { AttrCache, type AsPathSegment, type PathAttributes, emptyAttributes, exportSlot, holdAttributes, parseCommunity, releaseAttributes, splitAttributes, asPathOf, asPathSegments } from "../../lib/bgp/attributes.ts";
import { u16 } from "../../lib/bgp/bytes.ts";
import type { Negotiated } from "../../lib/bgp/negotiate.ts";
import { formatNextHop, parseAddr, parsePrefix, prefixToString } from "../../lib/core/addr.ts";
import { type Prefix } from "../../lib/core/addr.ts";
import { AS_TRANS, ATTR, SEG } from "../../lib/bgp/types.ts";
import { type UpdateContext, announcedBlocks, blockPrefixes, decodeUpdate, withdrawnBlocks } from "../../lib/bgp/update.ts";
import type { PeerConfig, Policy } from "../../lib/config/types.ts";
import { AdjRibOut, type AdjRibOutOptions } from "../../lib/rib/adj-rib-out.ts";
import { type CompiledPolicies, compilePolicies, policyUsesPrefix } from "../../lib/rib/policy.ts";
import { type PrefixKey, type Route, type RouteSource, prefixKey } from "../../lib/rib/types.ts";
import { BfdSchema, GracefulRestartSchema } from "../../lib/config/schema.ts";
import { LocRib } from "../../lib/rib/loc-rib.ts";
import { slicer } from "../../lib/core/slices.ts";
import type { PrefixMap } from "../../lib/rib/prefix-map.ts";

// ---------------------------------------------------------------- helpers

const LOCAL_AS = 65000;
const ROUTER_ID = "10.0.0.1";
const CLUSTER_ID = "10.0.0.100";
const seq = (...asns: number[]): AsPathSegment => ({ type: SEG.AS_SEQUENCE, asns });
const comm = (s: string) => parseCommunity(s);

function addr(s: string): Uint8Array {
  const a = parseAddr(s);
  if (!a) throw new Error(`bad address ${s}`);
  return a.addr;
}

function ipNum(s: string): number {
  const a = addr(s);
  return ((a[0]! << 24) | (a[1]! << 16) | (a[2]! << 8) | a[3]!) >>> 0;
}

function attrs(p: Partial<PathAttributes> = {}): PathAttributes {
  return { ...emptyAttributes(), origin: 0, asPath: asPathOf([seq(65010)]), ...p };
}

function ebgpSource(address = "198.51.100.1", asn = 65010, routerId = "10.9.9.9"): RouteSource {
  return { id: address, address, addressBytes: addr(address), asn, routerId: ipNum(routerId), ibgp: false, rrClient: false, local: false };
}
function ibgpSource(address: string, routerId: string, rrClient: boolean): RouteSource {
  return { id: address, address, addressBytes: addr(address), asn: LOCAL_AS, routerId: ipNum(routerId), ibgp: true, rrClient, local: false };
}
const LOCAL: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: LOCAL_AS, routerId: 0, ibgp: false, rrClient: false, local: true };

function route(prefix: string, o: { attrs?: PathAttributes; nextHop?: string | Uint8Array; source?: RouteSource } = {}): Route {
  const p = parsePrefix(prefix);
  const nh = o.nextHop === undefined ? (p.afi === 1 ? addr("198.51.100.1") : addr("2001:db8:ff::1")) : typeof o.nextHop === "string" ? addr(o.nextHop) : o.nextHop;
  return { prefix: p, key: prefixKey(p), pathId: 0, source: o.source ?? ebgpSource(), attrs: o.attrs ?? attrs(), nextHop: nh, learnedAt: 0, igpCost: 0, reachable: true, stale: false };
}

function neg(o: Partial<Negotiated> = {}): Negotiated {
  return {
    localAs: LOCAL_AS,
    peerAs: 65001,
    peerRouterId: "10.0.0.2",
    families: [
      { afi: 1, safi: 1 },
      { afi: 2, safi: 1 },
    ],
    fourOctetAs: true,
    holdTime: 90,
    keepaliveTime: 30,
    routeRefresh: true,
    enhancedRouteRefresh: false,
    extendedMessage: false,
    addPath: new Map(),
    extendedNextHop: [],
    peerGracefulRestart: null,
    gracefulNotification: false,
    peerLongLivedGracefulRestart: null,
    localRole: null,
    peerRole: null,
    peerCapabilities: [],
    ...o,
  };
}

function peerCfg(o: Partial<PeerConfig> = {}): PeerConfig {
  return {
    address: "192.0.2.2",
    remoteAs: 65001,
    localAs: LOCAL_AS,
    port: 179,
    gracefulRestart: GracefulRestartSchema.parse({}),
    bfd: BfdSchema.parse({}),
    passive: false,
    holdTime: 90,
    connectRetry: 5,
    families: ["ipv4", "ipv6"],
    nextHopSelf: false,
    routeReflectorClient: false,
    multihop: false,
    import: { kind: "all" },
    export: { kind: "all" },
    shutdown: false,
    allowOwnAs: 0,
    enforceFirstAs: true,
    ...o,
  };
}

const NO_POLICIES = compilePolicies({}, {});

function mk(peer: Partial<PeerConfig> = {}, n: Partial<Negotiated> = {}, o: Partial<AdjRibOutOptions> = {}): AdjRibOut {
  const p = peerCfg(peer);
  return new AdjRibOut({
    peer: p,
    localAs: LOCAL_AS,
    routerId: ROUTER_ID,
    clusterId: CLUSTER_ID,
    negotiated: neg({ peerAs: p.remoteAs, ...n }),
    localAddress: addr("192.0.2.1"),
    policies: NO_POLICIES,
    origin: (key) => exported.get(key) ?? null,
    ...o,
  });
}

/** The routes `exp` offered, by prefix: the "Loc-RIB" the Adj-RIB-Outs of these tests show their routes from. */
const exported = new Map<PrefixKey, Route>();
/** An iBGP peer (optionally a route-reflector client) with a router id. */
const ibgpPeer = (address: string, routerId: string, rrClient: boolean, o: Partial<PeerConfig> = {}) =>
  mk({ address, remoteAs: LOCAL_AS, routeReflectorClient: rrClient, ...o }, { peerRouterId: routerId });

function exp(out: AdjRibOut, r: Route) {
  exported.set(r.key, r);
  return out.exportRoute(r, r.key);
}

interface Decoded {
  announced: Map<string, { attrs: PathAttributes; nextHop: string }>;
  /** Announced prefixes in message order (duplicates visible). */
  order: string[];
  withdrawn: string[];
  eor: string[];
  /** Index of each message's first kind: "w" or "a". */
  kinds: string[];
}

function decodeAll(msgs: Uint8Array[], o: { fourOctetAs?: boolean; addPath?: boolean; maxLen?: number } = {}): Decoded {
  const ctx: UpdateContext = { fourOctetAs: o.fourOctetAs ?? true, ibgp: true, addPathReceive: () => o.addPath ?? false };
  const d: Decoded = { announced: new Map(), order: [], withdrawn: [], eor: [], kinds: [] };
  const name = (p: Prefix) => (p.pathId !== undefined ? `${prefixToString(p)}#${p.pathId}` : prefixToString(p));
  for (const m of msgs) {
    expect(m.length).toBeLessThanOrEqual(o.maxLen ?? 4096);
    expect(u16(m, 16)).toBe(m.length);
    expect(m[18]).toBe(2);
    const u = decodeUpdate(m.subarray(19), ctx);
    expect(u.treatAsWithdraw).toBe(false);
    if (u.endOfRib) {
      d.eor.push(`${u.endOfRib.afi}/${u.endOfRib.safi}`);
      continue;
    }
    const w = withdrawnBlocks(u).flatMap(blockPrefixes);
    const a = announcedBlocks(u);
    d.kinds.push(w.length ? "w" : "a");
    for (const p of w) d.withdrawn.push(name(p));
    for (const b of a) {
      const nh = b === u.nlri ? formatNextHop(u.attrs!.nextHop!) : formatNextHop(u.mpReach!.nextHop);
      for (const p of blockPrefixes(b)) {
        d.order.push(name(p));
        d.announced.set(name(p), { attrs: u.attrs!, nextHop: nh });
      }
    }
  }
  return d;
}

/** The messages of a joined buffer, by their header lengths. */
function splitMessages(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let at = 0; at < b.length; at += u16(b, at + 16)) out.push(b.subarray(at, at + u16(b, at + 16)));
  return out;
}

function only(out: AdjRibOut, o: Parameters<typeof decodeAll>[1] = {}) {
  const d = decodeAll(out.flush(), o);
  return d;
}

function policies(ps: Record<string, Omit<Policy, "name">>): CompiledPolicies {
  const all: Record<string, Policy> = {};
  for (const [k, v] of Object.entries(ps)) all[k] = { name: k, ...v };
  return compilePolicies(all, {});
}

// ---------------------------------------------------------------- (a) source

describe("(a) not back to the source peer", () => {
  test("a route is not sent to the peer it came from, but to others", () => {
    const r = route("203.0.113.0/24", { source: ebgpSource("192.0.2.2", 65001) });
    expect(exp(mk(), r)).toEqual({ change: "none", reason: "learned from this peer" });
    expect(exp(mk({ address: "192.0.2.3", remoteAs: 65002 }), r).change).toBe("announce");
  });
  test("IPv6 peer address in another text form", () => {
    const r = route("2001:db8:1::/48", { source: ebgpSource("2001:db8::2", 65001) });
    expect(exp(mk({ address: "2001:DB8:0::2" }, {}, { localAddress: addr("2001:db8::1") }), r).change).toBe("none");
  });
});

// ---------------------------------------------------------------- (b) iBGP and route reflection

describe("(b) iBGP split horizon and route reflection (RFC 4456)", () => {
  const C1 = ibgpSource("192.0.2.11", "10.0.0.11", true);
  const N1 = ibgpSource("192.0.2.21", "10.0.0.21", false);
  const toC2 = () => ibgpPeer("192.0.2.12", "10.0.0.12", true);
  const toN2 = () => ibgpPeer("192.0.2.22", "10.0.0.22", false);
  const fromC1 = route("203.0.113.0/24", { source: C1, nextHop: "192.0.2.11", attrs: attrs({ asPath: asPathOf([seq(65010)]), localPref: 150 }) });
  const fromN1 = route("203.0.113.0/24", { source: N1, nextHop: "192.0.2.21", attrs: attrs({ asPath: asPathOf([seq(65010)]), localPref: 150 }) });

  function reflected(out: AdjRibOut, r: Route) {
    expect(exp(out, r).change).toBe("announce");
    const d = only(out);
    const a = d.announced.get("203.0.113.0/24")!;
    return a;
  }
  test("client → client: reflected with ORIGINATOR_ID and CLUSTER_LIST, next hop and path unchanged", () => {
    const a = reflected(toC2(), fromC1);
    expect(a.attrs.originatorId).toBe("10.0.0.11");
    expect(a.attrs.clusterList).toEqual([CLUSTER_ID]);
    expect(a.nextHop).toBe("192.0.2.11");
    expect(a.attrs.asPath).toEqual(asPathOf([seq(65010)]));
    expect(a.attrs.localPref).toBe(150);
  });
  test("client → non-client: reflected", () => {
    const a = reflected(toN2(), fromC1);
    expect(a.attrs.originatorId).toBe("10.0.0.11");
    expect(a.attrs.clusterList).toEqual([CLUSTER_ID]);
  });
  test("non-client → client: reflected", () => {
    const a = reflected(toC2(), fromN1);
    expect(a.attrs.originatorId).toBe("10.0.0.21");
    expect(a.attrs.clusterList).toEqual([CLUSTER_ID]);
  });
  test("non-client → non-client: blocked (split horizon)", () => {
    expect(exp(toN2(), fromN1)).toEqual({ change: "none", reason: "iBGP split horizon" });
  });
  test("plain iBGP (no clients anywhere): iBGP routes go to no iBGP peer", () => {
    const r = route("203.0.113.0/24", { source: ibgpSource("192.0.2.31", "10.0.0.31", false) });
    expect(exp(ibgpPeer("192.0.2.32", "10.0.0.32", false), r).change).toBe("none");
  });
  test("an existing ORIGINATOR_ID is kept; our cluster id is prepended to CLUSTER_LIST", () => {
    const r = route("203.0.113.0/24", { source: C1, attrs: attrs({ originatorId: "10.7.7.7", clusterList: ["10.8.8.8"] }) });
    const a = reflected(toN2(), r);
    expect(a.attrs.originatorId).toBe("10.7.7.7");
    expect(a.attrs.clusterList).toEqual([CLUSTER_ID, "10.8.8.8"]);
  });
  test("never reflected to the originator", () => {
    const r = route("203.0.113.0/24", { source: C1, attrs: attrs({ originatorId: "10.0.0.12" }) });
    expect(exp(toC2(), r)).toEqual({ change: "none", reason: "not reflected to the originator" });
    // no ORIGINATOR_ID yet: the source's router id is the originator
    const sameRouter = ibgpPeer("192.0.2.99", "10.0.0.11", true); // C1's router, another address
    expect(exp(sameRouter, fromC1).change).toBe("none");
  });
  test("eBGP and local routes go to every iBGP peer, not reflected (no ORIGINATOR_ID/CLUSTER_LIST)", () => {
    for (const out of [toC2(), toN2()]) {
      exp(out, route("203.0.113.0/24"));
      exp(out, route("198.18.0.0/15", { source: LOCAL, nextHop: new Uint8Array(0), attrs: attrs({ asPath: asPathOf([]) }) }));
      const d = only(out);
      expect(d.announced.size).toBe(2);
      for (const a of d.announced.values()) {
        expect(a.attrs.originatorId).toBeNull();
        expect(a.attrs.clusterList).toEqual([]);
      }
    }
  });
  test("reflected attribute sets are shared per input set and originator", () => {
    const out = toN2();
    const shared = attrs({ localPref: 120 });
    exp(out, route("203.0.113.0/24", { source: C1, attrs: shared }));
    exp(out, route("203.0.114.0/24", { source: C1, attrs: shared }));
    const rs = [...out.routes()];
    expect(rs.length).toBe(2);
    expect(rs[0]!.attrs).toBe(rs[1]!.attrs);
    expect(decodeAll(out.flush()).kinds.length).toBe(1);
  });
});

// ---------------------------------------------------------------- (c) eBGP AS loop

describe("(c) eBGP sender-side loop prevention", () => {
  const r = route("203.0.113.0/24", { attrs: attrs({ asPath: asPathOf([seq(65010, 65001, 65020)]) }) });
  test("not sent to a peer whose AS is in the path (any position, sets too)", () => {
    expect(exp(mk(), r)).toEqual({ change: "none", reason: "peer AS 65001 in the AS path" });
    const inSet = route("203.0.113.0/24", { attrs: attrs({ asPath: asPathOf([seq(65010), { type: SEG.AS_SET, asns: [65030, 65001] }]) }) });
    expect(exp(mk(), inSet).change).toBe("none");
    expect(exp(mk({ remoteAs: 65002 }), r).change).toBe("announce");
  });
  test("asOverride: sent, with the peer's AS replaced by ours", () => {
    const out = mk({ asOverride: true });
    expect(exp(out, r).change).toBe("announce");
    expect(only(out).announced.get("203.0.113.0/24")!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 65010, LOCAL_AS, 65020)]));
  });
  test("iBGP peers get the route whatever the path", () => {
    const r2 = route("203.0.113.0/24", { attrs: attrs({ asPath: asPathOf([seq(65010, LOCAL_AS)]) }) });
    expect(exp(ibgpPeer("192.0.2.22", "10.0.0.22", false), r2).change).toBe("announce");
  });
});

// ---------------------------------------------------------------- (d) export policy

describe("(d) export policy", () => {
  test("RFC 8212: no export policy → nothing to eBGP, everything to iBGP", () => {
    const r = route("203.0.113.0/24");
    expect(exp(mk({ export: undefined }), r)).toEqual({ change: "none", reason: "no export policy (RFC 8212)" });
    expect(exp(ibgpPeer("192.0.2.22", "10.0.0.22", false, { export: undefined }), r).change).toBe("announce");
    expect(exp(mk({ export: { kind: "none" } }), r)).toEqual({ change: "none", reason: "none" });
  });
  test("a policy filters and sets; the policy sees the attributes before eBGP rewrites", () => {
    const ps = policies({
      out: {
        terms: [
          { match: { prefix: [{ prefix: "203.0.113.0/24" }] }, set: { med: 42, community: { add: ["65000:1"] } }, action: "accept" },
          { match: { asPath: "^65010$" }, set: { asPathPrepend: 2 }, action: "accept" },
        ],
        default: "reject",
      },
    });
    const out = mk({ export: { kind: "chain", names: ["out"] } }, {}, { policies: ps });
    expect(exp(out, route("203.0.113.0/24", { attrs: attrs({ med: 7 }) })).change).toBe("announce");
    expect(exp(out, route("198.51.100.0/24")).change).toBe("announce");
    expect(exp(out, route("192.0.2.0/24", { attrs: attrs({ asPath: asPathOf([seq(65011)]) }) }))).toEqual({ change: "none", reason: 'policy "out": default reject' });
    const d = only(out);
    const a = d.announced.get("203.0.113.0/24")!;
    expect(a.attrs.med).toBe(42); // set by policy: survives eBGP
    expect(a.attrs.communities).toEqual([comm("65000:1")]);
    expect(d.announced.get("198.51.100.0/24")!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, LOCAL_AS, LOCAL_AS, 65010)]));
  });
  test("routes sharing one attribute set, next hop and source get one decision, unless the policy looks at the prefix", () => {
    const shared = attrs({ asPath: asPathOf([seq(65010, 65020)]) });
    const src = ebgpSource();
    const nh = addr("198.51.100.1");
    const r1 = route("203.0.113.0/24", { attrs: shared, source: src, nextHop: nh });
    const r2 = route("198.51.100.0/24", { attrs: shared, source: src, nextHop: nh });
    // A prefix condition: each prefix decided on its own.
    const byPrefix = policies({ out: { terms: [{ match: { prefix: [{ prefix: "203.0.113.0/24" }] }, action: "accept" }], default: "reject" } });
    const a = mk({ export: { kind: "chain", names: ["out"] } }, {}, { policies: byPrefix });
    expect(exp(a, r1).change).toBe("announce");
    expect(exp(a, r2)).toEqual({ change: "none", reason: 'policy "out": default reject' });
    // No prefix condition: the same outcome for both, one output set.
    const byPath = policies({ out: { terms: [{ match: { asPath: "65020$" }, set: { med: 9 }, action: "accept" }], default: "reject" } });
    const b = mk({ export: { kind: "chain", names: ["out"] } }, {}, { policies: byPath });
    expect(exp(b, r1).change).toBe("announce");
    expect(exp(b, r2).change).toBe("announce");
    expect(b.internedSets).toBe(1);
    expect(b.get(r1.key)!.attrs).toEqual(b.get(r2.key)!.attrs);
    expect(b.get(r1.key)!.attrs.med).toBe(9);
    // The same set from another source, or one now a route-reflector client, is decided again.
    const back = route("192.0.2.0/24", { attrs: shared, source: ebgpSource("192.0.2.2", 65001), nextHop: nh });
    expect(exp(b, back)).toEqual({ change: "none", reason: "learned from this peer" });
    const rr = ibgpPeer("192.0.2.22", "10.0.0.22", false);
    const ib = ibgpSource("192.0.2.21", "10.0.0.21", false);
    const inh = addr("192.0.2.21");
    const i1 = route("203.0.113.0/24", { attrs: shared, source: ib, nextHop: inh });
    const i2 = route("198.51.100.0/24", { attrs: shared, source: ib, nextHop: inh });
    expect(exp(rr, i1)).toEqual({ change: "none", reason: "iBGP split horizon" });
    ib.rrClient = true;
    expect(exp(rr, i2).change).toBe("announce");
    // policyUsesPrefix itself.
    expect([undefined, { kind: "all" as const }, { kind: "none" as const }].map((r) => policyUsesPrefix(r, byPrefix))).toEqual([false, false, false]);
    expect(policyUsesPrefix({ kind: "chain", names: ["out"] }, byPrefix)).toBe(true);
    expect(policyUsesPrefix({ kind: "chain", names: ["out"] }, byPath)).toBe(false);
    expect(policyUsesPrefix({ kind: "chain", names: ["missing"] }, byPath)).toBe(true);
    const byList = compilePolicies({ l: { name: "l", terms: [{ match: { prefixList: ["pl"] }, action: "accept" }], default: "reject" } }, { pl: [{ prefix: "192.0.2.0/24" }] });
    expect(policyUsesPrefix({ kind: "chain", names: ["l"] }, byList)).toBe(true);
  });
  test("givesNothing: export none, or no export policy on eBGP (RFC 8212), with nothing sent or queued; not while withdrawals are owed", () => {
    expect(mk({ export: { kind: "none" } }).givesNothing).toBe(true);
    expect(mk({ export: undefined }).givesNothing).toBe(true); // eBGP: RFC 8212
    expect(mk({ remoteAs: LOCAL_AS, export: undefined }).givesNothing).toBe(false); // iBGP: everything by default
    expect(mk({ export: { kind: "all" } }).givesNothing).toBe(false);
    expect(mk({ export: { kind: "chain", names: [] } }).givesNothing).toBe(false); // (decided route by route)
    const none = mk({ export: { kind: "none" } });
    expect(exp(none, route("203.0.113.0/24")).change).toBe("none");
    expect(none.givesNothing).toBe(true);
    // Sent routes, then the policy becomes none: withdrawals are owed until they are taken.
    const out = mk();
    const rs = [route("203.0.113.0/24"), route("198.51.100.0/24")];
    for (const r of rs) exp(out, r);
    expect(out.givesNothing).toBe(false);
    expect(decodeAll(out.take(10)).order.length).toBe(2);
    out.reconfigure(peerCfg({ export: { kind: "none" } }), NO_POLICIES, CLUSTER_ID);
    expect(out.givesNothing).toBe(false);
    for (const r of rs) expect(exp(out, r).change).toBe("withdraw");
    expect(out.givesNothing).toBe(false);
    expect(decodeAll(out.take(10)).withdrawn.sort()).toEqual(["198.51.100.0/24", "203.0.113.0/24"]);
    expect(out.givesNothing).toBe(true);
  });

  test("setPolicies: a re-export applies the new policy (and withdraws what it rejects)", () => {
    const out = mk({ export: { kind: "chain", names: ["p"] } }, {}, { policies: policies({ p: { terms: [], default: "accept" } }) });
    const r = route("203.0.113.0/24");
    exp(out, r);
    out.flush();
    out.setPolicies(policies({ p: { terms: [], default: "reject" } }));
    expect(exp(out, r)).toEqual({ change: "withdraw", reason: 'policy "p": default reject' });
  });
});

// ---------------------------------------------------------------- (e) eBGP rewrites

describe("(e) eBGP rewrites", () => {
  test("prepend our AS, next hop self, LOCAL_PREF/ORIGINATOR_ID/CLUSTER_LIST and received MED removed", () => {
    const out = mk({ remoteAs: 65002 });
    const r = route("203.0.113.0/24", {
      source: ibgpSource("192.0.2.21", "10.0.0.21", false),
      nextHop: "192.0.2.21",
      attrs: attrs({ asPath: asPathOf([seq(65010, 65011)]), localPref: 300, med: 50, originatorId: "10.0.0.5", clusterList: ["10.0.0.6"], communities: [comm("65010:1")] }),
    });
    expect(exp(out, r).change).toBe("announce");
    const a = only(out).announced.get("203.0.113.0/24")!;
    expect(a.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 65010, 65011)]));
    expect(a.nextHop).toBe("192.0.2.1");
    expect(a.attrs.localPref).toBeNull();
    expect(a.attrs.med).toBeNull();
    expect(a.attrs.originatorId).toBeNull();
    expect(a.attrs.clusterList).toEqual([]);
    expect(a.attrs.communities).toEqual([comm("65010:1")]);
    expect(a.attrs.origin).toBe(0);
  });
  test("a local route keeps its MED; an empty path becomes our AS", () => {
    const out = mk();
    exp(out, route("198.18.0.0/15", { source: LOCAL, nextHop: new Uint8Array(0), attrs: attrs({ asPath: asPathOf([]), med: 10, localPref: 200 }) }));
    const a = only(out).announced.get("198.18.0.0/15")!;
    expect(a.attrs.med).toBe(10);
    expect(a.attrs.localPref).toBeNull();
    expect(a.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS)]));
    expect(a.nextHop).toBe("192.0.2.1");
  });
  test("a next hop set by policy replaces next-hop-self", () => {
    const ps = policies({ nh: { terms: [{ set: { nextHop: "192.0.2.77" }, action: "accept" }], default: "reject" } });
    const out = mk({ export: { kind: "chain", names: ["nh"] } }, {}, { policies: ps });
    exp(out, route("203.0.113.0/24"));
    expect(only(out).announced.get("203.0.113.0/24")!.nextHop).toBe("192.0.2.77");
  });
  test("IPv6 routes: the session's IPv6 address, or the other-family address given, else not sent", () => {
    const r = route("2001:db8:1::/48");
    const v4only = mk();
    expect(exp(v4only, r)).toEqual({ change: "none", reason: "no IPv6 next hop on this session" });
    const both = mk({}, {}, { otherLocalAddress: addr("2001:db8::1") });
    expect(exp(both, r).change).toBe("announce");
    expect(only(both).announced.get("2001:db8:1::/48")!.nextHop).toBe("2001:db8::1");
    const v6 = mk({ address: "2001:db8::2" }, {}, { localAddress: addr("2001:db8::1") });
    exp(v6, r);
    expect(exp(v6, route("203.0.113.0/24")).reason).toBe("no IPv4 next hop on this session");
    // RFC 8950: IPv4 over an IPv6 next hop when negotiated
    const enh = mk({ address: "2001:db8::2" }, { extendedNextHop: [{ afi: 1, safi: 1 }] }, { localAddress: addr("2001:db8::1") });
    expect(exp(enh, route("203.0.113.0/24")).change).toBe("announce");
    expect(only(enh).announced.get("203.0.113.0/24")!.nextHop).toBe("2001:db8::1");
    // One outgoing entry for both families (IPv4 over the IPv6 next hop): interleaved, each family still gets its own UPDATEs with all of its prefixes.
    const mixed = mk({ address: "2001:db8::2" }, { extendedNextHop: [{ afi: 1, safi: 1 }] }, { localAddress: addr("2001:db8::1") });
    const v6r = route("2001:db8:1::/48", { nextHop: "2001:db8::9" });
    for (const p of ["203.0.113.0/24", "2001:db8:1::/48", "203.0.114.0/24", "2001:db8:2::/48"]) exp(mixed, p.includes(":") ? { ...v6r, ...route(p, { nextHop: "2001:db8::9" }) } : route(p));
    const msgs = mixed.flush();
    const d = decodeAll(msgs);
    expect([...d.announced.keys()].sort()).toEqual(["2001:db8:1::/48", "2001:db8:2::/48", "203.0.113.0/24", "203.0.114.0/24"]);
    expect(msgs).toHaveLength(2);
  });
});

describe("UPDATE packing", () => {
  test("prefixes queued in runs of two attribute sets, interleaved, go out as one UPDATE per set with all of its prefixes", () => {
    const out = mk();
    const a = attrs({ asPath: asPathOf([seq(65010)]) });
    const b = attrs({ asPath: asPathOf([seq(65010, 65020)]) });
    const order = ["203.0.113.0/26", "203.0.113.64/26", "198.51.100.0/26", "203.0.113.128/26", "198.51.100.64/26", "198.51.100.128/26", "203.0.113.192/26"];
    for (const p of order) exp(out, route(p, { attrs: p.startsWith("203.") ? a : b }));
    const msgs = out.flush();
    expect(msgs).toHaveLength(2);
    const d = decodeAll(msgs);
    expect(d.order).toEqual(["203.0.113.0/26", "203.0.113.64/26", "203.0.113.128/26", "203.0.113.192/26", "198.51.100.0/26", "198.51.100.64/26", "198.51.100.128/26"]);
    for (const p of order) expect(asPathSegments(d.announced.get(p)!.attrs.asPath)[0]!.asns.length).toBe(p.startsWith("203.") ? 2 : 3);
  });
});

// ---------------------------------------------------------------- (f) iBGP

describe("(f) iBGP", () => {
  test("LOCAL_PREF 100 when absent, kept when present; next hop and AS path unchanged; MED kept", () => {
    const out = ibgpPeer("192.0.2.22", "10.0.0.22", false);
    exp(out, route("203.0.113.0/24", { attrs: attrs({ asPath: asPathOf([seq(65010)]), med: 5 }) }));
    exp(out, route("203.0.114.0/24", { attrs: attrs({ asPath: asPathOf([seq(65010)]), localPref: 250 }) }));
    const d = only(out);
    const a = d.announced.get("203.0.113.0/24")!;
    expect(a.attrs.localPref).toBe(100);
    expect(a.attrs.med).toBe(5);
    expect(a.attrs.asPath).toEqual(asPathOf([seq(65010)]));
    expect(a.nextHop).toBe("198.51.100.1");
    expect(d.announced.get("203.0.114.0/24")!.attrs.localPref).toBe(250);
  });
  test("nextHopSelf; a local route without next hop gets ours; its AS path stays empty", () => {
    const nhs = ibgpPeer("192.0.2.22", "10.0.0.22", false, { nextHopSelf: true });
    exp(nhs, route("203.0.113.0/24"));
    expect(only(nhs).announced.get("203.0.113.0/24")!.nextHop).toBe("192.0.2.1");
    const plain = ibgpPeer("192.0.2.22", "10.0.0.22", false);
    exp(plain, route("198.18.0.0/15", { source: LOCAL, nextHop: new Uint8Array(0), attrs: attrs({ asPath: null }) }));
    exp(plain, route("198.20.0.0/16", { source: LOCAL, nextHop: "192.0.2.50", attrs: attrs({ asPath: asPathOf([]) }) }));
    const d = only(plain);
    expect(d.announced.get("198.18.0.0/15")!.nextHop).toBe("192.0.2.1");
    expect(d.announced.get("198.18.0.0/15")!.attrs.asPath).toEqual(asPathOf([]));
    expect(d.announced.get("198.20.0.0/16")!.nextHop).toBe("192.0.2.50");
  });
  test("an IPv6 next hop with a link-local part is passed on as the global address", () => {
    const out = ibgpPeer("192.0.2.22", "10.0.0.22", false);
    const nh = new Uint8Array(32);
    nh.set(addr("2001:db8:ff::9"), 0);
    nh.set(addr("fe80::9"), 16);
    exp(out, route("2001:db8:1::/48", { nextHop: nh }));
    expect(only(out).announced.get("2001:db8:1::/48")!.nextHop).toBe("2001:db8:ff::9");
  });
});

// ---------------------------------------------------------------- (g) communities

describe("(g) well-known communities", () => {
  const ebgp = () => mk();
  const ibgp = () => ibgpPeer("192.0.2.22", "10.0.0.22", false);
  const withC = (c: string) => route("203.0.113.0/24", { attrs: attrs({ communities: [comm("65010:1"), comm(c)] }) });
  test("NO_EXPORT: not to eBGP, to iBGP", () => {
    expect(exp(ebgp(), withC("no-export"))).toEqual({ change: "none", reason: "NO_EXPORT" });
    expect(exp(ibgp(), withC("no-export")).change).toBe("announce");
  });
  test("NO_EXPORT_SUBCONFED: like NO_EXPORT", () => {
    expect(exp(ebgp(), withC("no-export-subconfed")).change).toBe("none");
    expect(exp(ibgp(), withC("no-export-subconfed")).change).toBe("announce");
  });
  test("NO_ADVERTISE: to nobody", () => {
    expect(exp(ebgp(), withC("no-advertise"))).toEqual({ change: "none", reason: "NO_ADVERTISE" });
    expect(exp(ibgp(), withC("no-advertise")).change).toBe("none");
  });
  test("a route that gains NO_EXPORT is withdrawn from eBGP peers", () => {
    const out = ebgp();
    exp(out, route("203.0.113.0/24"));
    out.flush();
    expect(exp(out, withC("no-export")).change).toBe("withdraw");
    expect(only(out).withdrawn).toEqual(["203.0.113.0/24"]);
  });
});

// ---------------------------------------------------------------- change tracking

describe("change tracking", () => {
  test("re-exporting an identical result sends nothing (same or equal attribute objects)", () => {
    const out = mk();
    const r = route("203.0.113.0/24");
    expect(exp(out, r).change).toBe("announce");
    expect(exp(out, r)).toEqual({ change: "none", reason: "unchanged" });
    expect(decodeAll(out.flush()).order).toEqual(["203.0.113.0/24"]);
    expect(exp(out, r).change).toBe("none");
    expect(exp(out, route("203.0.113.0/24", { attrs: attrs() })).change).toBe("none"); // a new but equal attribute set
    expect(out.flush()).toEqual([]);
  });
  test("changed attributes are announced again", () => {
    const out = mk();
    exp(out, route("203.0.113.0/24"));
    out.flush();
    expect(exp(out, route("203.0.113.0/24", { attrs: attrs({ asPath: asPathOf([seq(65010, 65011)]) }) })).change).toBe("announce");
    expect(only(out).announced.get("203.0.113.0/24")!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 65010, 65011)]));
  });
  test("a withdrawal is sent only for an advertised prefix", () => {
    const out = mk();
    const r = route("203.0.113.0/24");
    expect(out.exportRoute(null, r.key)).toEqual({ change: "none", reason: "withdrawn" });
    expect(out.flush()).toEqual([]);
    exp(out, r);
    out.flush();
    expect(out.exportRoute(null, r.key).change).toBe("withdraw");
    expect(out.exportRoute(null, r.key).change).toBe("none");
    expect(only(out).withdrawn).toEqual(["203.0.113.0/24"]);
    // filtered route: also only withdrawn when it had been sent
    const filtered = route("203.0.114.0/24", { attrs: attrs({ communities: [comm("no-export")] }) });
    expect(exp(out, filtered).change).toBe("none");
    expect(out.flush()).toEqual([]);
  });
  test("changes that cancel out before a flush send nothing", () => {
    const out = mk();
    const r = route("203.0.113.0/24");
    exp(out, r);
    out.exportRoute(null, r.key);
    expect(out.flush()).toEqual([]);
    exp(out, r);
    out.flush();
    out.exportRoute(null, r.key);
    exp(out, r);
    expect(out.flush()).toEqual([]);
    // announce A, change to B, back to A: nothing
    exp(out, route("203.0.113.0/24", { attrs: attrs({ med: 1 }), source: LOCAL, nextHop: new Uint8Array(0) }));
    exp(out, r);
    expect(out.flush()).toEqual([]);
  });
  test("an unreachable route or an unnegotiated family is not exported", () => {
    const out = mk({}, { families: [{ afi: 1, safi: 1 }] }, { otherLocalAddress: addr("2001:db8::1") });
    expect(exp(out, { ...route("203.0.113.0/24"), reachable: false })).toEqual({ change: "none", reason: "next hop unreachable" });
    expect(exp(out, route("2001:db8:1::/48"))).toEqual({ change: "none", reason: "family not negotiated" });
  });
  test("withdrawals come before announcements in a flush", () => {
    const out = mk();
    exp(out, route("203.0.113.0/24"));
    out.flush();
    exp(out, route("198.51.100.0/24"));
    const r = route("203.0.113.0/24");
    out.exportRoute(null, r.key);
    const d = only(out);
    expect(d.kinds).toEqual(["w", "a"]);
    expect(d.withdrawn).toEqual(["203.0.113.0/24"]);
    expect(d.order).toEqual(["198.51.100.0/24"]);
  });
  test("advertisedCount, routes(), get(), pendingCount", () => {
    const out = mk({}, {}, { otherLocalAddress: addr("2001:db8::1") });
    exp(out, route("203.0.113.0/24"));
    exp(out, route("203.0.114.0/24"));
    exp(out, route("2001:db8:1::/48"));
    expect(out.pendingCount).toBe(3);
    expect(out.advertisedCount()).toBe(3);
    expect(out.advertisedCount(1)).toBe(2);
    expect(out.advertisedCount("ipv6")).toBe(1);
    out.flush();
    expect(out.pendingCount).toBe(0);
    const r = route("203.0.113.0/24");
    out.exportRoute(null, r.key);
    expect(out.advertisedCount("ipv4")).toBe(1);
    const rs = [...out.routes("ipv4")];
    expect(rs.map((x) => prefixToString(x.prefix))).toEqual(["203.0.114.0/24"]);
    expect(rs[0]!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 65010)]));
    expect(formatNextHop(rs[0]!.nextHop)).toBe("192.0.2.1");
    expect(rs[0]!.source.id).toBe("198.51.100.1");
    expect([...out.routes()].length).toBe(2);
    expect(out.get(r.key)).toBeNull();
    expect(out.get(route("2001:db8:1::/48").key)!.prefix.afi).toBe(2);
  });
  test("routes() over more distinct attribute sets than it keeps decoded at once: every route with its own attributes", () => {
    const out = mk();
    const n = 10_000;
    for (let i = 0; i < n; i++) exp(out, route(`10.${i >> 8}.${i & 255}.0/24`, { attrs: attrs({ communities: [comm(`65000:${i}`)] }) }));
    out.flush();
    const rs = [...out.routes()];
    expect(rs.length).toBe(n);
    const index = (r: Route) => {
      const [, b, c] = prefixToString(r.prefix).split(".");
      return Number(b) * 256 + Number(c);
    };
    expect(rs.filter((r) => r.attrs.communities?.[0] !== comm(`65000:${index(r)}`)).length).toBe(0);
  });
  test("resync withdraws what a full re-export no longer produced", () => {
    const out = mk();
    const a = route("203.0.113.0/24");
    const b = route("203.0.114.0/24");
    exp(out, a);
    exp(out, b);
    out.resync();
    out.flush();
    exp(out, a); // full re-export: b is gone from the Loc-RIB
    out.resync();
    const d = only(out);
    expect(d.withdrawn).toEqual(["203.0.114.0/24"]);
    expect(d.order).toEqual([]);
    expect(out.advertisedCount()).toBe(1);
  });
});

// ---------------------------------------------------------------- wire

describe("outgoing attribute sets", () => {
  test("are counted by the prefixes using them: a set leaves as its last prefix does, none while used (flat memory under churn)", () => {
    const out = mk({ export: { kind: "all" } });
    const N = 5000;
    const p = (i: number) => `10.${i >> 8}.${i & 255}.0/24`;
    const set = (i: number) => attrs({ communities: [65000 * 65536 + i] });
    for (let i = 0; i < N; i++) exp(out, route(p(i), { attrs: set(i) }));
    out.take(N * 2);
    expect(out.internedSets).toBe(N);
    // Half withdrawn: their sets go at once; the others stay (still used).
    for (let i = 0; i < N / 2; i++) {
      const key = route(p(i)).key;
      exported.delete(key); // the "Loc-RIB" forgets it too
      out.exportRoute(null, key);
    }
    expect(out.internedSets).toBe(N / 2);
    out.take(N * 2);
    expect(out.internedSets).toBe(N / 2);
    // An equal set in a new object is found again, not re-created: nothing to send.
    expect(exp(out, route(p(N - 1), { attrs: set(N - 1) })).change).toBe("none");
    expect(out.internedSets).toBe(N / 2);
    // A set two prefixes share stays until both have left it.
    const shared = set(N + 1);
    exp(out, route("198.51.100.0/24", { attrs: shared }));
    exp(out, route("198.51.101.0/24", { attrs: shared }));
    expect(out.internedSets).toBe(N / 2 + 1);
    const moved = set(N + 2);
    exp(out, route("198.51.100.0/24", { attrs: moved }));
    expect(out.internedSets).toBe(N / 2 + 2);
    // A change replaced before it was sent drops its set at once.
    exp(out, route("198.51.101.0/24", { attrs: set(N + 3) }));
    expect(out.internedSets).toBe(N / 2 + 2);
    const d = only(out);
    expect(d.announced.get("198.51.101.0/24")!.attrs.communities).toEqual([65000 * 65536 + N + 3]);
    // A set that left, its input set still held by the memo, comes back when used again, and is sent.
    const key = route("198.51.100.0/24").key;
    exported.delete(key);
    out.exportRoute(null, key);
    out.take(10);
    expect(out.internedSets).toBe(N / 2 + 1);
    exp(out, route("198.51.100.0/24", { attrs: moved }));
    exp(out, route("198.51.102.0/24", { attrs: set(N + 2) }));
    expect(out.internedSets).toBe(N / 2 + 2);
    const d2 = only(out);
    expect(d2.order.sort()).toEqual(["198.51.100.0/24", "198.51.102.0/24"]);
    expect(d2.kinds.length).toBe(1); // one entry for both: one UPDATE
    expect(d2.announced.get("198.51.100.0/24")!.attrs.communities).toEqual([65000 * 65536 + N + 2]);
  });

  /** A set as a session's decoder leaves it: interned in a sharing cache (so it has an export slot), held by a route. */
  function internedSet(cache: AttrCache, id: number, p: Partial<PathAttributes> = {}): PathAttributes {
    const a = Object.assign(emptyAttributes(), { origin: 0, asPath: asPathOf([seq(65010)]) }, p);
    cache.set(new Uint8Array([id >> 8, id & 255]), { attrs: a, issues: [] });
    holdAttributes(a);
    return a;
  }

  test("the entry made from an interned set is kept in its export slot; a second Adj-RIB-Out keeps its own elsewhere; each sends its own attributes", () => {
    const cache = new AttrCache(Infinity, true);
    const s = internedSet(cache, 1, { communities: [1] });
    const t = internedSet(cache, 2, { communities: [2] });
    const props = Object.getOwnPropertyNames(s);
    const a = mk({ address: "192.0.2.2", remoteAs: 65001, export: { kind: "all" } });
    const b = mk({ address: "192.0.2.3", remoteAs: 65002, export: { kind: "all" } });
    // Interleaved, so that no decision is the last one's again.
    for (const [out, pfx, set] of [[a, "10.0.1.0/24", s], [b, "10.0.1.0/24", s], [a, "10.0.2.0/24", t], [b, "10.0.2.0/24", t], [a, "10.0.3.0/24", s], [b, "10.0.3.0/24", s]] as const) {
      exp(out, route(pfx, { attrs: set }));
    }
    const kept = exportSlot(s);
    expect(kept).toBeTruthy();
    expect(Object.getOwnPropertyNames(s)).toEqual(props); // nothing added to the set itself
    for (const out of [a, b]) {
      const d = only(out);
      expect(d.order.sort()).toEqual(["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24"]);
      for (const p of ["10.0.1.0/24", "10.0.3.0/24"]) {
        expect(d.announced.get(p)!.attrs.communities).toEqual([1]);
        expect(asPathSegments(d.announced.get(p)!.attrs.asPath)).toEqual([seq(LOCAL_AS, 65010)]);
      }
      expect(d.announced.get("10.0.2.0/24")!.attrs.communities).toEqual([2]);
      // One entry for the two prefixes of s: one UPDATE for them.
      expect(d.kinds.length).toBe(2);
    }
    // The slot still holds the first Adj-RIB-Out's entry (the second did not take it over), and a re-export is unchanged.
    expect(exportSlot(s)).toBe(kept);
    expect(exp(a, route("10.0.1.0/24", { attrs: s })).change).toBe("none");
    expect(exp(b, route("10.0.1.0/24", { attrs: s })).change).toBe("none");
    // A set in no cache has no slot (its entries are remembered in a WeakMap): the same output.
    const plain = attrs({ communities: [3] });
    expect(exportSlot(plain)).toBeUndefined();
    exp(a, route("10.0.4.0/24", { attrs: plain }));
    expect(only(a).announced.get("10.0.4.0/24")!.attrs.communities).toEqual([3]);
  });

  test("a slot's entry does not keep the closed Adj-RIB-Out that made it, the next one to export the set takes the slot, and it goes with the set", () => {
    const cache = new AttrCache(Infinity, true);
    const s = internedSet(cache, 7);
    const a = mk({ export: { kind: "all" } });
    exp(a, route("10.0.1.0/24", { attrs: s }));
    a.flush();
    const first = exportSlot(s) as object;
    expect(first).toBeTruthy();
    // What an entry refers to: bytes, a next hop, numbers and its memo, never an Adj-RIB-Out.
    expect(Object.values(first).some((v) => v instanceof AdjRibOut)).toBe(false);
    void a.close();
    const b = mk({ address: "192.0.2.3", remoteAs: 65002, export: { kind: "all" } });
    exp(b, route("10.0.1.0/24", { attrs: s }));
    const second = exportSlot(s);
    expect(second).toBeTruthy();
    expect(second).not.toBe(first);
    expect(only(b).order).toEqual(["10.0.1.0/24"]);
    expect(exp(b, route("10.0.1.0/24", { attrs: s })).change).toBe("none");
    expect(exportSlot(s)).toBe(second);
    // The set leaves its cache (its last holder goes): the slot, and the entry in it, go too.
    releaseAttributes(s);
    expect(exportSlot(s)).toBeUndefined();
    const again = internedSet(cache, 7);
    expect(exportSlot(again)).toBeNull();
  });

  test("a copy (adoptFrom) shares the entries without counting them: each side's withdrawals free only what it no longer uses", () => {
    const a = mk({ export: { kind: "all" } });
    for (let i = 0; i < 10; i++) exp(a, route(`10.0.${i}.0/24`, { attrs: attrs({ communities: [i] }) }));
    a.flush();
    const b = mk({ export: { kind: "all" } });
    b.adoptFrom(a);
    expect(b.internedSets).toBe(0);
    // b withdraws everything: a's sets stay, a still uses them.
    for (let i = 0; i < 10; i++) b.exportRoute(null, route(`10.0.${i}.0/24`).key);
    expect(decodeAll(b.flush()).withdrawn.length).toBe(10);
    expect(a.internedSets).toBe(10);
    // a re-exports the same routes: unchanged; b, given them again, announces them (and counts its own).
    for (let i = 0; i < 10; i++) {
      const r = route(`10.0.${i}.0/24`, { attrs: attrs({ communities: [i] }) });
      expect(a.exportRoute(r, r.key).change).toBe("none");
      expect(b.exportRoute(r, r.key).change).toBe("announce");
    }
    expect(b.internedSets).toBe(10);
    expect(decodeAll(b.flush()).order.length).toBe(10);
    expect(a.flush()).toEqual([]);
    for (let i = 0; i < 10; i++) a.exportRoute(null, route(`10.0.${i}.0/24`).key);
    expect(a.internedSets).toBe(0);
    expect(b.internedSets).toBe(10);
  });
});

describe("UPDATE packing and encoding", () => {
  test("5000 prefixes with 3 attribute sets: ≤ 4096-byte messages that decode to exactly those routes", () => {
    const out = mk({}, {}, { otherLocalAddress: addr("2001:db8::1") });
    const sets = [
      attrs({ asPath: asPathOf([seq(65010)]), communities: [comm("65010:1")] }),
      attrs({ asPath: asPathOf([seq(65011, 65012)]), largeCommunities: [[65011, 1, 2]] }),
      attrs({ asPath: asPathOf([seq(65013)]), origin: 2, communities: [comm("65013:7"), comm("65013:8")] }),
    ];
    const want = new Map<string, number>();
    for (let i = 0; i < 5000; i++) {
      const s = i % 3;
      const pfx = prefixToString(parsePrefix(i < 4000 ? `10.${i >> 8}.${i & 255}.0/24` : `2001:db8:${(i - 4000).toString(16)}::/48`));
      want.set(pfx, s);
      expect(exp(out, route(pfx, { attrs: sets[s] })).change).toBe("announce");
    }
    const msgs = out.flush();
    const d = decodeAll(msgs);
    expect(d.order.length).toBe(5000);
    expect(new Set(d.order).size).toBe(5000);
    for (const [pfx, s] of want) {
      const a = d.announced.get(pfx);
      expect(a).toBeDefined();
      expect(a!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, ...asPathSegments(sets[s]!.asPath)[0]!.asns)]));
      expect(a!.attrs.communities).toEqual(sets[s]!.communities);
      expect(a!.attrs.largeCommunities).toEqual(sets[s]!.largeCommunities);
      expect(a!.attrs.origin).toBe(sets[s]!.origin);
      expect(a!.nextHop).toBe(pfx.includes(":") ? "2001:db8::1" : "192.0.2.1");
    }
    // as few messages as fit: 4000 /24s at 4 bytes each, 1000 /48s at 7 bytes, 3 groups per family
    const bytes = 4000 * 4 + 1000 * 7;
    expect(msgs.length).toBeLessThanOrEqual(Math.ceil(bytes / 3900) + 6);
    expect(msgs.filter((m) => m.length > 3500).length).toBeGreaterThanOrEqual(msgs.length - 6);
  });
  test("extended message: up to 65535 bytes", () => {
    const out = mk({}, { extendedMessage: true });
    for (let i = 0; i < 5000; i++) exp(out, route(`10.${i >> 8}.${i & 255}.0/24`));
    const msgs = out.flush();
    expect(msgs.length).toBe(1);
    expect(msgs[0]!.length).toBeGreaterThan(4096);
    expect(decodeAll(msgs, { maxLen: 65535 }).order.length).toBe(5000);
  });
  test("withdrawals are packed too", () => {
    const out = mk();
    const rs = Array.from({ length: 3000 }, (_, i) => route(`10.${i >> 8}.${i & 255}.0/24`));
    for (const r of rs) exp(out, r);
    out.flush();
    for (const r of rs) out.exportRoute(null, r.key);
    const msgs = out.flush();
    expect(msgs.length).toBe(Math.ceil((3000 * 4) / (4096 - 23)));
    expect(decodeAll(msgs).withdrawn.length).toBe(3000);
  });
  test("2-octet peer: AS_TRANS in AS_PATH, the real path in AS4_PATH", () => {
    const out = mk({ remoteAs: 65002 }, { fourOctetAs: false });
    exp(out, route("203.0.113.0/24", { attrs: attrs({ asPath: asPathOf([seq(4200000001, 65010)]) }) }));
    const msgs = out.flush();
    expect(msgs.length).toBe(1);
    const body = msgs[0]!.subarray(19);
    const wl = u16(body, 0);
    const tal = u16(body, 2 + wl);
    const raw = splitAttributes(body, 4 + wl, 4 + wl + tal).attrs;
    const asPath = raw.find((a) => a.type === ATTR.AS_PATH)!.value;
    // one AS_SEQUENCE of 3 two-octet ASes: 65000, AS_TRANS, 65010
    expect(Array.from(asPath)).toEqual([2, 3, 65000 >> 8, 65000 & 255, AS_TRANS >> 8, AS_TRANS & 255, 65010 >> 8, 65010 & 255]);
    expect(raw.some((a) => a.type === ATTR.AS4_PATH)).toBe(true);
    const d = decodeAll(msgs, { fourOctetAs: false });
    expect(d.announced.get("203.0.113.0/24")!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 4200000001, 65010)]));
    // What show gives is what the peer reads.
    expect(out.get(route("203.0.113.0/24").key)!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 4200000001, 65010)]));
  });
  test("the advertised routes (show … --out) carry the attributes exactly as the peer decodes them, every kind", () => {
    const rich = attrs({
      origin: 2,
      asPath: asPathOf([seq(65010, 65020), { type: SEG.AS_SET, asns: [65030, 65040] }]),
      med: 5,
      atomicAggregate: true,
      aggregator: { asn: 65020, address: "192.0.2.9" },
      communities: [comm("65010:1"), comm("65010:2")],
      extCommunities: [Uint8Array.of(0, 2, 0xfd, 0xe8, 0, 0, 0, 7)],
      largeCommunities: [[65010, 1, 2]],
      unknown: [{ flags: 0xc0, type: 99, value: Uint8Array.of(1, 2, 3) }],
    });
    const kinds: [AdjRibOut, boolean][] = [
      [mk(), true],
      [mk({ remoteAs: LOCAL_AS, nextHopSelf: true }), true],
      [mk({ remoteAs: 65002 }, { fourOctetAs: false }), false],
    ];
    for (const [out, fourOctetAs] of kinds) {
      exp(out, route("203.0.113.0/24", { attrs: rich, source: LOCAL }));
      const shown = [...out.routes()];
      expect(shown.length).toBe(1);
      const wire = decodeAll(out.flush(), { fourOctetAs }).announced.get("203.0.113.0/24")!;
      expect({ ...shown[0]!.attrs, nextHop: null }).toEqual({ ...wire.attrs, nextHop: null });
      expect(formatNextHop(shown[0]!.nextHop)).toBe(wire.nextHop);
      expect(shown[0]!.attrs.communities).toEqual(rich.communities);
      expect(shown[0]!.attrs.aggregator).toEqual(rich.aggregator);
    }
  });
  test("End-of-RIB for every negotiated family", () => {
    expect(decodeAll(mk().endOfRib()).eor).toEqual(["1/1", "2/1"]);
    expect(decodeAll(mk({}, { families: [{ afi: 1, safi: 1 }] }).endOfRib()).eor).toEqual(["1/1"]);
  });
  test("ADD-PATH send: the best path with path id 1, announced and withdrawn", () => {
    const out = mk({}, { addPath: new Map([["1/1", { send: true, receive: false }]]) });
    const r = route("203.0.113.0/24");
    exp(out, r);
    expect(decodeAll(out.flush(), { addPath: true }).order).toEqual(["203.0.113.0/24#1"]);
    expect([...out.routes()][0]!.pathId).toBe(1);
    out.exportRoute(null, r.key);
    expect(decodeAll(out.flush(), { addPath: true }).withdrawn).toEqual(["203.0.113.0/24#1"]);
  });
  test("route refresh re-sends the family's advertised routes", () => {
    const out = mk({}, {}, { otherLocalAddress: addr("2001:db8::1") });
    exp(out, route("203.0.113.0/24"));
    exp(out, route("2001:db8:1::/48"));
    out.flush();
    expect(out.flush()).toEqual([]);
    expect(decodeAll(out.refresh(1, 1)).order).toEqual(["203.0.113.0/24"]);
    expect(decodeAll(out.refresh(2)).order).toEqual(["2001:db8:1::/48"]);
    expect(decodeAll(out.refresh()).order.sort()).toEqual(["2001:db8:1::/48", "203.0.113.0/24"]);
    // a pending withdrawal is kept through a refresh
    const r = route("203.0.113.0/24");
    out.exportRoute(null, r.key);
    const d = decodeAll(out.refresh());
    expect(d.withdrawn).toEqual(["203.0.113.0/24"]);
    expect(d.order).toEqual(["2001:db8:1::/48"]);
  });
});

describe("rewriting a set for the peer", () => {
  test("the rewrite starts from a copy of every attribute field (a field added to PathAttributes must be copied there too)", () => {
    const out = mk();
    const keys = [...Object.keys(emptyAttributes()), "partial"];
    const src: Record<string, unknown> = {};
    for (const k of keys) src[k] = Symbol(k);
    const c = (out as unknown as { copyOf(a: unknown): Record<string, unknown> }).copyOf(src);
    for (const k of keys) expect([k, c[k]]).toEqual([k, src[k]]);
  });
});

describe("speed", () => {
  test("export + flush of 200k routes sharing a few attribute sets", () => {
    const out = mk();
    const sets = [attrs(), attrs({ asPath: asPathOf([seq(65011)]) }), attrs({ communities: [comm("1:1")] })];
    const src = ebgpSource();
    const nh = addr("198.51.100.1");
    const N = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const p: Prefix = { afi: 1, len: 24, addr: Uint8Array.of(10 + (i >> 16), (i >> 8) & 255, i & 255, 0) };
      const r: Route = { prefix: p, key: prefixKey(p), pathId: 0, source: src, attrs: sets[i % 3]!, nextHop: nh, learnedAt: 0, igpCost: 0, reachable: true, stale: false };
      out.exportRoute(r, r.key);
    }
    const t1 = performance.now();
    const msgs = out.flush();
    const t2 = performance.now();
    expect(out.advertisedCount()).toBe(N);
    expect(msgs.length).toBeLessThan(220);
    // Once sent, nothing is kept for the queue: its per-position chunks are all gone.
    const chunks = (out as unknown as { prevs: { chunks: unknown[] }[] }).prevs[0]!.chunks;
    expect(chunks.length).toBeGreaterThan(40);
    expect(chunks.every((c) => c === undefined)).toBe(true);
    console.log(`adj-rib-out: export ${N} in ${(t1 - t0).toFixed(0)} ms, flush into ${msgs.length} UPDATEs in ${(t2 - t1).toFixed(0)} ms`);
    expect(t2 - t0).toBeLessThan(5000);
  });
});

// ---------------------------------------------------------------- pulled output

describe("pulled output: take(n), requeue and resync in steps", () => {
  const p24 = (i: number) => `203.0.${i}.0/24`;

  test("take(n) packs at most n queued prefixes (a change that cancelled out counts), oldest queued first; changes made between takes are not lost", () => {
    const out = mk();
    for (let i = 0; i < 10; i++) exp(out, route(p24(i)));
    const first = decodeAll(out.take(4));
    expect(first.order).toEqual([0, 1, 2, 3].map(p24));
    expect(out.pendingCount).toBe(6);
    // A change to a prefix already taken queues it again (at the end); one not yet taken keeps its place.
    expect(exp(out, route(p24(1), { attrs: attrs({ asPath: asPathOf([seq(65010, 65011)]) }) })).change).toBe("announce");
    out.exportRoute(null, route(p24(5)).key);
    const second = decodeAll(out.take(4));
    expect(second.withdrawn).toEqual([]); // 5 was never sent: nothing to withdraw
    expect(second.order).toEqual([4, 6, 7].map(p24));
    const rest = decodeAll(out.take(100));
    expect(rest.order).toEqual([8, 9, 1].map(p24));
    expect(rest.announced.get(p24(1))!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 65010, 65011)]));
    expect(out.take(100)).toEqual([]);
    expect(out.pendingCount).toBe(0);
  });

  test("adoptFrom: the copy has what the peer was given and what is queued, and the two go on independently", () => {
    const a = mk();
    for (let i = 0; i < 4; i++) exp(a, route(p24(i)));
    a.take(2); // 0 and 1 sent; 2 and 3 queued
    exp(a, route(p24(0), { attrs: attrs({ asPath: asPathOf([seq(65010, 65012)]) }) })); // 0 queued again, changed
    a.exportRoute(null, route(p24(1)).key); // 1 queued for withdrawal
    const b = mk();
    b.adoptFrom(a);
    expect([a.pendingCount, b.pendingCount]).toEqual([4, 4]);
    // A change after the copy reaches only the one it was made to.
    a.exportRoute(null, route(p24(2)).key);
    const da = decodeAll(a.take(100));
    const db = decodeAll(b.take(100));
    expect(da.withdrawn).toEqual([p24(1)]);
    expect(da.order).toEqual([3, 0].map(p24));
    expect(db.withdrawn).toEqual([p24(1)]);
    expect(db.order).toEqual([2, 3, 0].map(p24));
    expect(db.announced.get(p24(0))!.attrs.asPath).toEqual(asPathOf([seq(LOCAL_AS, 65010, 65012)]));
    expect([a.advertisedCount(), b.advertisedCount()]).toEqual([2, 3]);
    expect([a.take(100), b.take(100)]).toEqual([[], []]);
  });

  test("queues emptied and filled again, cycle after cycle (their chunks reused by two peers in turn): each take sends exactly its cycle's changes", () => {
    // 10,000 prefixes span three chunks of the queue and of the per-position values; taken in steps of 700, chunks empty
    // (and go back to the shared pools) at different moments for the two peers, and the next cycle takes them again.
    const N = 10_000;
    const pfx = (i: number) => `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
    const x = attrs({ asPath: asPathOf([seq(65010, 65020)]) });
    const y = attrs({ asPath: asPathOf([seq(65010, 65030)]) });
    const a = mk();
    const b = mk({ address: "192.0.2.3" });
    const drain = (o: AdjRibOut): Decoded => {
      const all: Uint8Array[] = [];
      for (let k = 0; k < 100; k++) {
        const m = o.take(700);
        if (m.length === 0) break;
        all.push(...m);
      }
      expect(o.pendingCount).toBe(0);
      return decodeAll(all);
    };
    const path = (d: Decoded, i: number) => asPathSegments(d.announced.get(pfx(i))!.attrs.asPath)[0]!.asns;
    const cycle = (label: string, change: (o: AdjRibOut) => void, check: (d: Decoded) => void) => {
      change(a);
      const da = drain(a);
      change(b);
      const db = drain(b);
      for (const d of [da, db]) {
        check(d);
        expect(new Set(d.order).size, label).toBe(d.order.length); // nothing sent twice
      }
    };
    cycle("all announced", (o) => {
      for (let i = 0; i < N; i++) exp(o, route(pfx(i), { attrs: x }));
    }, (d) => {
      expect(d.withdrawn).toEqual([]);
      expect(d.order.length).toBe(N);
      expect(path(d, N - 1)).toEqual([LOCAL_AS, 65010, 65020]);
    });
    cycle("evens withdrawn", (o) => {
      for (let i = 0; i < N; i += 2) o.exportRoute(null, route(pfx(i)).key);
    }, (d) => {
      expect(d.order).toEqual([]);
      expect(d.withdrawn).toEqual(Array.from({ length: N / 2 }, (_, i) => pfx(2 * i)));
    });
    cycle("all announced with new attributes", (o) => {
      for (let i = 0; i < N; i++) exp(o, route(pfx(i), { attrs: y }));
    }, (d) => {
      expect(d.withdrawn).toEqual([]);
      expect(d.order).toEqual(Array.from({ length: N }, (_, i) => pfx(i)));
      for (const i of [0, 1, 4095, 4096, 8191, 8192, N - 1]) expect(path(d, i)).toEqual([LOCAL_AS, 65010, 65030]);
    });
    cycle("one in three withdrawn, the rest unchanged", (o) => {
      for (let i = 0; i < N; i++) if (i % 3 === 0) o.exportRoute(null, route(pfx(i)).key);
      else exp(o, route(pfx(i), { attrs: y }));
    }, (d) => {
      expect(d.order).toEqual([]);
      expect(d.withdrawn.length).toBe(Math.ceil(N / 3));
    });
    expect([a.advertisedCount(), b.advertisedCount()]).toEqual([N - Math.ceil(N / 3), N - Math.ceil(N / 3)]);
    expect([a.take(100), b.take(100)]).toEqual([[], []]);
  });

  test("takeBatch: the same UPDATEs as take, joined in one buffer of their own (its sink grows and is reused; an earlier batch never changes); null when nothing is queued", () => {
    // 3,000 prefixes with an attribute set each: one UPDATE each, far more than the sink's first 64 KB.
    const N = 3000;
    const pfx = (i: number) => `10.${i >> 8}.${i & 255}.0/24`;
    const a = mk();
    const b = mk();
    for (let i = 0; i < N; i++) {
      const r = route(pfx(i), { attrs: attrs({ communities: [0x10000 + i] }) });
      exp(a, r);
      exp(b, r);
    }
    a.exportRoute(null, route(pfx(7)).key); // queued, never sent: nothing to send for it
    b.exportRoute(null, route(pfx(7)).key);
    const batches: { bytes: Uint8Array; count: number }[] = [];
    const copies: Uint8Array[] = [];
    for (let k = 0; k < 10; k++) {
      const x = a.takeBatch(1000);
      if (x === null) break;
      batches.push(x);
      copies.push(x.bytes.slice());
    }
    expect(a.takeBatch(1000)).toBeNull();
    const msgs: Uint8Array[] = [];
    for (let k = 0; k < 10; k++) msgs.push(...b.take(1000));
    const joined = Buffer.concat(msgs);
    expect(batches.length).toBe(3);
    expect(batches.reduce((n, x) => n + x.count, 0)).toBe(msgs.length);
    expect(msgs.length).toBe(N - 1);
    expect(Buffer.concat(batches.map((x) => x.bytes)).equals(joined)).toBe(true);
    batches.forEach((x, i) => expect(Buffer.from(x.bytes).equals(copies[i]!)).toBe(true));
    expect(new Set(batches.map((x) => x.bytes.buffer)).size).toBe(3);
    const d = decodeAll(batches.flatMap((x) => splitMessages(x.bytes)));
    expect(d.order.length).toBe(N - 1);
    expect(d.announced.get(pfx(N - 1))!.attrs.communities).toEqual([0x10000 + N - 1]);
  });

  test("within one take, withdrawals come first", () => {
    const out = mk();
    exp(out, route(p24(1)));
    out.flush();
    exp(out, route(p24(2)));
    out.exportRoute(null, route(p24(1)).key);
    const d = decodeAll(out.take(10));
    expect(d.kinds).toEqual(["w", "a"]);
    expect(d.withdrawn).toEqual([p24(1)]);
  });

  test("requeue re-sends every advertised prefix one step at a time; resyncSteps withdraws what was not re-exported", () => {
    const out = mk();
    for (let i = 0; i < 5; i++) exp(out, route(p24(i)));
    out.flush();
    let steps = 0;
    for (const _ of out.requeue(1)) steps++;
    expect(steps).toBe(5);
    expect(decodeAll(out.flush()).order).toEqual([0, 1, 2, 3, 4].map(p24));
    // A soft reset out (a generation started by a resync) that no longer exports 3 and 4: the walk withdraws them.
    out.resync();
    for (let i = 0; i < 3; i++) exp(out, route(p24(i)));
    const walk = out.resyncSteps();
    walk.next();
    expect(out.pendingCount).toBe(0); // nothing decided before the walk reaches a prefix
    for (let s = walk.next(); !s.done; s = walk.next());
    expect(decodeAll(out.flush()).withdrawn).toEqual([3, 4].map(p24));
    expect(out.advertisedCount()).toBe(3);
  });
});

// ---------------------------------------------------------------- state by the Loc-RIB's positions

describe("state kept by the Loc-RIB's table positions (AdjRibOutOptions.positions)", () => {
  const p24 = (i: number) => `203.0.${i}.0/24`;
  // Routes as the Loc-RIB holds them: from one eBGP source, offered to a peer of another AS.
  const src = ebgpSource("192.0.2.2", 65001);
  const r24 = (i: number, med?: number) => route(p24(i), { source: src, attrs: attrs({ asPath: asPathOf([seq(65001)]), med: med ?? null }) });

  test("a prefix the Loc-RIB drops stays a ghost until its withdrawal is taken; one that comes back takes its position again; close lets go of everything", async () => {
    const loc = new LocRib();
    const [v4] = loc.positionTables as unknown as [PrefixMap<number, unknown>];
    const out = mk({ address: "192.0.2.3", remoteAs: 65002 }, {}, { positions: loc.positionTables });
    for (let i = 0; i < 10; i++) {
      loc.upsert(r24(i));
      exp(out, loc.best(r24(i).key)!);
    }
    expect(v4.pinCount).toBe(10);
    expect(decodeAll(out.flush()).order).toEqual([...Array(10).keys()].map(p24));
    // Two prefixes leave the Loc-RIB: ghosts (no reader sees them) until their withdrawals are sent.
    for (const i of [3, 7]) {
      loc.remove(src.id, r24(i).key, 0);
      expect(out.exportRoute(null, r24(i).key).change).toBe("withdraw");
    }
    expect(loc.count()).toBe(8);
    expect(loc.best(r24(3).key)).toBe(null);
    expect([...loc.bests()].map((r) => prefixToString(r.prefix))).not.toContain(p24(3));
    expect(v4.ghostCount).toBe(2);
    // One comes back before the withdrawal went out: the same position, the peer is sent nothing new for it.
    const pos7 = v4.positionOf(r24(7).key as number);
    loc.upsert(r24(7));
    expect(v4.positionOf(r24(7).key as number)).toBe(pos7);
    expect(v4.ghostCount).toBe(1);
    expect(exp(out, loc.best(r24(7).key)!).change).toBe("announce");
    const d = decodeAll(out.flush());
    expect(d.withdrawn).toEqual([p24(3)]);
    expect(d.order).toEqual([]); // 7: withdrawn and announced again before anything was sent: the peer has it as it was
    expect(v4.ghostCount).toBe(0);
    expect(v4.positionOf(r24(3).key as number)).toBe(-1);
    expect(v4.pinCount).toBe(9);
    expect(out.advertisedCount()).toBe(9);
    expect(out.get(r24(5).key)).not.toBe(null);
    // A copy pins what it holds too; closing both lets go of every position.
    const copy = mk({ address: "192.0.2.4", remoteAs: 65002 }, {}, { positions: loc.positionTables });
    copy.adoptFrom(out);
    expect(v4.pinCount).toBe(18);
    loc.remove(src.id, r24(0).key, 0);
    out.exportRoute(null, r24(0).key);
    copy.exportRoute(null, r24(0).key);
    expect(v4.ghostCount).toBe(1);
    await out.close();
    expect(v4.ghostCount).toBe(1); // the copy still has a withdrawal of it queued
    expect(decodeAll(copy.take(100)).withdrawn).toEqual([p24(0)]);
    await copy.close();
    expect(v4.pinCount).toBe(0);
    expect(v4.ghostCount).toBe(0);
    expect(out.advertisedCount()).toBe(0);
    expect(out.pendingCount).toBe(0);
    expect(loc.count()).toBe(8);
  });

  test("requeue, resync and routes() walk the positions held, IPv4 and IPv6 apart", async () => {
    const loc = new LocRib();
    const out = mk({ address: "192.0.2.3", remoteAs: 65002 }, {}, { positions: loc.positionTables, otherLocalAddress: addr("2001:db8::1") });
    const v6 = (i: number) => route(`2001:db8:${i}::/48`, { source: src, attrs: attrs({ asPath: asPathOf([seq(65001)]) }), nextHop: "2001:db8:ff::1" });
    for (let i = 0; i < 4; i++) {
      for (const r of [r24(i), v6(i)]) {
        loc.upsert(r);
        exp(out, loc.best(r.key)!);
      }
    }
    out.flush();
    expect([...out.routes("ipv6")].map((r) => prefixToString(r.prefix))).toEqual([0, 1, 2, 3].map((i) => prefixToString(parsePrefix(`2001:db8:${i}::/48`))));
    out.refresh(2);
    expect(decodeAll(out.flush()).order).toEqual([]); // (refresh flushed them itself)
    for (const _ of out.requeue(1));
    expect(decodeAll(out.flush()).order).toEqual([0, 1, 2, 3].map(p24));
    // Soft reset out: only two prefixes exported again, the rest withdrawn by the resync.
    out.reconfigure(peerCfg({ address: "192.0.2.3", remoteAs: 65002 }), NO_POLICIES, CLUSTER_ID);
    for (const _ of out.resyncSteps());
    for (const r of [r24(1), v6(2)]) exp(out, loc.best(r.key)!);
    out.resync();
    const d = decodeAll(out.flush());
    expect(d.withdrawn.sort()).toEqual([p24(0), p24(2), p24(3), "2001:db8:0::/48", "2001:db8:1::/48", "2001:db8:3::/48"].map((p) => prefixToString(parsePrefix(p))).sort());
    expect(out.advertisedCount()).toBe(2);
    await out.close();
    const [t4, t6] = loc.positionTables as unknown as PrefixMap<PrefixKey, unknown>[];
    expect(t4!.pinCount + t6!.pinCount).toBe(0);
  });

  test("close empties the Adj-RIB-Out at once and lets go of a whole table of ghosts in the shared slicer's turns", async () => {
    const loc = new LocRib();
    const [v4] = loc.positionTables as unknown as [PrefixMap<number, unknown>];
    const out = mk({ address: "192.0.2.3", remoteAs: 65002 }, {}, { positions: loc.positionTables });
    const N = 100_000;
    const rs: Route[] = [];
    for (let i = 0; i < N; i++) {
      const p: Prefix = { afi: 1, len: 24, addr: Uint8Array.of(10 + (i >> 16), (i >> 8) & 255, i & 255, 0) };
      const r: Route = { prefix: p, key: prefixKey(p), pathId: 0, source: src, attrs: r24(0).attrs, nextHop: addr("198.51.100.1"), learnedAt: 0, igpCost: 0, reachable: true, stale: false };
      loc.upsert(r);
      out.exportRoute(loc.best(r.key), r.key);
      rs.push(r);
    }
    // Every prefix leaves the Loc-RIB before its withdrawal is sent: all ghosts.
    for (const r of rs) {
      loc.remove(src.id, r.key, 0);
      out.exportRoute(null, r.key);
    }
    expect(loc.count()).toBe(0);
    expect(v4.ghostCount).toBe(N);
    const turns = slicer.stats.turns;
    const released = out.close();
    // Empty at once; the positions are let go by the shared slicer, in its turns (none has run yet).
    expect(out.pendingCount).toBe(0);
    expect(out.advertisedCount()).toBe(0);
    expect(v4.ghostCount).toBe(N);
    await released;
    expect(slicer.stats.turns).toBeGreaterThan(turns);
    expect(v4.ghostCount).toBe(0);
    expect(v4.pinCount).toBe(0);
  });
});
