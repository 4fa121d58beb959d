/**
 * Unit tests of the policy engine (lib/rib/policy.ts): compilation errors,
 * every match condition (prefix ranges for IPv4 and IPv6, prefix lists,
 * communities, large communities, AS path regex, next hop, neighbour,
 * family), actions and chain semantics, every `set`, the RFC 8212 defaults,
 * "all"/"none", copy-on-write of the shared attribute sets, and speed.
 */
import { describe, expect, test } from "bun:test";
import { AttrCache, type AsPathSegment, type PathAttributes, asPathOf, asPathSegments, emptyAttributes, holdAttributes, parseCommunity, prependAs } from "../../lib/bgp/attributes.ts";
import { parseAddr, parsePrefix } from "../../lib/core/addr.ts";
import { SEG } from "../../lib/bgp/types.ts";
import type { Policy, PolicyRef, PolicyTerm, PrefixMatch } from "../../lib/config/types.ts";
import {
  type CompiledPolicies,
  type PolicyContext,
  type PolicyResult,
  applyPolicy,
  checkPolicyRef,
  compilePolicies,
  compilePrefixMatch,
  PrefixSet,
  prefixMatches,
} from "../../lib/rib/policy.ts";
import { type Route, type RouteSource, prefixKey } from "../../lib/rib/types.ts";

// ---------------------------------------------------------------- helpers

const seq = (...asns: number[]): AsPathSegment => ({ type: SEG.AS_SEQUENCE, asns });
const set = (...asns: number[]): AsPathSegment => ({ type: SEG.AS_SET, asns });

function attrs(p: Partial<PathAttributes> = {}): PathAttributes {
  return { ...emptyAttributes(), origin: 0, asPath: asPathOf([seq(65001)]), ...p };
}

function addr(s: string): Uint8Array {
  const a = parseAddr(s);
  if (!a) throw new Error(`bad address ${s}`);
  return a.addr;
}

function peerSource(address: string, o: Partial<RouteSource> = {}): RouteSource {
  return { id: address, address, addressBytes: addr(address), asn: 65001, routerId: 0x0a000001, ibgp: false, rrClient: false, local: false, ...o };
}

const LOCAL: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: 65000, routerId: 0, ibgp: false, rrClient: false, local: true };

function route(prefix: string, o: { attrs?: PathAttributes; nextHop?: string | Uint8Array; source?: RouteSource } = {}): Route {
  const p = parsePrefix(prefix);
  const nh = o.nextHop === undefined ? (p.afi === 1 ? addr("192.0.2.1") : addr("2001:db8::1")) : typeof o.nextHop === "string" ? addr(o.nextHop) : o.nextHop;
  return {
    prefix: p,
    key: prefixKey(p),
    pathId: 0,
    source: o.source ?? peerSource("192.0.2.1"),
    attrs: o.attrs ?? attrs(),
    nextHop: nh,
    learnedAt: 0,
    igpCost: 0,
    reachable: true,
    stale: false,
  };
}

const CTX: PolicyContext = { direction: "import", localAs: 65000, peerAddress: "192.0.2.1", localAddress: addr("192.0.2.254") };

function compile(policies: Record<string, Omit<Policy, "name"> & { name?: string }>, lists: Record<string, PrefixMatch[]> = {}): CompiledPolicies {
  const ps: Record<string, Policy> = {};
  for (const [k, v] of Object.entries(policies)) ps[k] = { name: k, ...v } as Policy;
  return compilePolicies(ps, lists);
}

const chain = (...names: string[]): PolicyRef => ({ kind: "chain", names });

/** Run one policy made of `terms` (default reject) on a route. */
function run(terms: PolicyTerm[], r: Route, o: { default?: "accept" | "reject"; lists?: Record<string, PrefixMatch[]>; ctx?: PolicyContext } = {}): PolicyResult {
  const c = compile({ p: { terms, default: o.default ?? "reject" } }, o.lists ?? {});
  return applyPolicy(chain("p"), "ebgp", r, o.ctx ?? CTX, c);
}

/** Whether a single match-only accept term accepts the route. */
function matches(match: PolicyTerm["match"], r: Route, lists: Record<string, PrefixMatch[]> = {}): boolean {
  return run([{ match, action: "accept" }], r, { lists }).accept;
}

const comm = (s: string) => parseCommunity(s);

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object" && !Object.isFrozen(o)) {
    if (!ArrayBuffer.isView(o)) Object.freeze(o);
    for (const v of Object.values(o as object)) deepFreeze(v);
  }
  return o;
}

// ---------------------------------------------------------------- compile

describe("compilePolicies", () => {
  const bad: [string, PolicyTerm, RegExp][] = [
    ["bad prefix", { match: { prefix: [{ prefix: "10.0.0.0/33" }] } }, /length/],
    ["host bits", { match: { prefix: [{ prefix: "10.0.0.1/8" }] } }, /host bits/],
    ["ge shorter than length", { match: { prefix: [{ prefix: "10.0.0.0/16", ge: 8 }] } }, /ge 8/],
    ["le below ge", { match: { prefix: [{ prefix: "10.0.0.0/8", ge: 24, le: 16 }] } }, /le 16/],
    ["le over 32", { match: { prefix: [{ prefix: "10.0.0.0/8", le: 33 }] } }, /0\.\.32/],
    ["le over 128", { match: { prefix: [{ prefix: "2001:db8::/32", le: 129 }] } }, /0\.\.128/],
    ["community", { match: { community: ["65536:1"] } }, /invalid community/],
    ["large community", { match: { largeCommunity: ["1:2"] } }, /invalid large community/],
    ["regex", { match: { asPath: "(65001" } }, /regular expression/],
    ["unknown prefix list", { match: { prefixList: ["nope"] } }, /unknown prefix list "nope"/],
    ["next hop", { match: { nextHop: ["300.1.1.1"] } }, /not an IP address/],
    ["neighbor", { match: { neighbor: ["peer-a"] } }, /not an IP address/],
    ["family", { match: { family: "ipv5" as never } }, /family/],
    ["action", { action: "permit" as never }, /action/],
    ["local pref", { set: { localPref: -1 } }, /localPref/],
    ["med", { set: { med: 2 ** 32 } }, /med/],
    ["set community", { set: { community: { add: ["x"] } } }, /set\.community\.add/],
    ["set large community", { set: { largeCommunity: { remove: ["1:2:x"] } } }, /set\.largeCommunity\.remove/],
    ["set next hop", { set: { nextHop: "me" } }, /set\.nextHop/],
    ["prepend 0", { set: { asPathPrepend: 0 } }, /asPathPrepend/],
    ["prepend 33", { set: { asPathPrepend: 33 } }, /asPathPrepend/],
  ];
  for (const [what, term, re] of bad) {
    test(`rejects ${what}, naming policy and term`, () => {
      const named = { ...term, name: "t1" };
      expect(() => compile({ pol: { terms: [{}, named], default: "reject" } })).toThrow(re);
      expect(() => compile({ pol: { terms: [{}, named], default: "reject" } })).toThrow(/policy "pol" term "t1"/);
      expect(() => compile({ pol: { terms: [{}, term], default: "reject" } })).toThrow(/policy "pol" term #2/);
    });
  }
  test("rejects a bad default and a bad prefix list entry", () => {
    expect(() => compile({ pol: { terms: [], default: "maybe" as never } })).toThrow(/policy "pol": default/);
    expect(() => compile({}, { l: [{ prefix: "10.0.0.0/8" }, { prefix: "nonsense" }] })).toThrow(/prefix list "l" entry 2/);
  });
  test("checkPolicyRef finds unknown policies", () => {
    const c = compile({ a: { terms: [], default: "accept" } });
    expect(() => checkPolicyRef(chain("a"), c, "peer x import")).not.toThrow();
    expect(() => checkPolicyRef({ kind: "all" }, c, "x")).not.toThrow();
    expect(() => checkPolicyRef(undefined, c, "x")).not.toThrow();
    expect(() => checkPolicyRef(chain("a", "b"), c, "peer x import")).toThrow(/peer x import: unknown policy "b"/);
  });
});

// ---------------------------------------------------------------- matching

describe("prefix matching", () => {
  const m = (pm: PrefixMatch, p: string) => prefixMatches(compilePrefixMatch(pm, "t"), parsePrefix(p));
  test("IPv4 exact (no ge/le)", () => {
    expect(m({ prefix: "10.0.0.0/8" }, "10.0.0.0/8")).toBe(true);
    expect(m({ prefix: "10.0.0.0/8" }, "10.1.0.0/16")).toBe(false);
    expect(m({ prefix: "10.0.0.0/8" }, "11.0.0.0/8")).toBe(false);
    expect(m({ prefix: "10.0.0.0/8" }, "0.0.0.0/0")).toBe(false);
    expect(m({ prefix: "192.0.2.128/25" }, "192.0.2.128/25")).toBe(true);
    expect(m({ prefix: "192.0.2.128/25" }, "192.0.2.0/25")).toBe(false);
  });
  test("IPv4 ge (le defaults to /32, as in Cisco/FRR prefix lists)", () => {
    const pm = { prefix: "10.0.0.0/8", ge: 16 };
    expect(m(pm, "10.1.0.0/16")).toBe(true);
    expect(m(pm, "10.0.0.0/8")).toBe(false);
    expect(m(pm, "10.1.2.0/24")).toBe(true);
    expect(m(pm, "10.1.2.3/32")).toBe(true);
    expect(m(pm, "11.1.0.0/16")).toBe(false);
  });
  test("IPv4 le (ge defaults to the prefix length) and ge+le", () => {
    expect(m({ prefix: "10.0.0.0/8", le: 24 }, "10.0.0.0/8")).toBe(true);
    expect(m({ prefix: "10.0.0.0/8", le: 24 }, "10.1.2.0/24")).toBe(true);
    expect(m({ prefix: "10.0.0.0/8", le: 24 }, "10.1.2.0/25")).toBe(false);
    expect(m({ prefix: "10.0.0.0/8", ge: 16, le: 24 }, "10.1.0.0/16")).toBe(true);
    expect(m({ prefix: "10.0.0.0/8", ge: 16, le: 24 }, "10.1.2.0/24")).toBe(true);
    expect(m({ prefix: "10.0.0.0/8", ge: 16, le: 24 }, "10.0.0.0/8")).toBe(false);
    expect(m({ prefix: "10.0.0.0/8", ge: 16, le: 24 }, "10.1.2.128/25")).toBe(false);
    expect(m({ prefix: "0.0.0.0/0", le: 32 }, "203.0.113.7/32")).toBe(true);
  });
  test("IPv6 exact, ge, le, bits beyond the first word", () => {
    expect(m({ prefix: "2001:db8::/32" }, "2001:db8::/32")).toBe(true);
    expect(m({ prefix: "2001:db8::/32" }, "2001:db8::/33")).toBe(false);
    expect(m({ prefix: "2001:db8::/32", le: 48 }, "2001:db8:1::/48")).toBe(true);
    expect(m({ prefix: "2001:db8::/32", le: 48 }, "2001:db9::/48")).toBe(false);
    expect(m({ prefix: "2001:db8::/32", le: 48 }, "2001:db8:1::/64")).toBe(false);
    expect(m({ prefix: "2001:db8:ab00::/40", ge: 48, le: 56 }, "2001:db8:abcd::/48")).toBe(true);
    expect(m({ prefix: "2001:db8:ab00::/40", ge: 48, le: 56 }, "2001:db8:ac00::/48")).toBe(false);
    expect(m({ prefix: "2001:db8::1/128" }, "2001:db8::1/128")).toBe(true);
    expect(m({ prefix: "2001:db8::1/128" }, "2001:db8::2/128")).toBe(false);
    expect(m({ prefix: "2001:db8:0:0:1::/80", le: 128 }, "2001:db8::1:0:0:5/128")).toBe(true);
    expect(m({ prefix: "2001:db8:0:0:1::/80", le: 128 }, "2001:db8::2:0:0:5/128")).toBe(false);
  });
  test("family-aware: ::/0 and 0.0.0.0/0 never cross families", () => {
    expect(m({ prefix: "0.0.0.0/0", le: 32 }, "::/0")).toBe(false);
    expect(m({ prefix: "0.0.0.0/0", le: 32 }, "2001:db8::/32")).toBe(false);
    expect(m({ prefix: "::/0", le: 128 }, "2001:db8::/32")).toBe(true);
    expect(m({ prefix: "::/0", le: 128 }, "10.0.0.0/8")).toBe(false);
    // an IPv4 prefix with the same leading bytes as an IPv6 one
    expect(m({ prefix: "32.1.0.0/16", le: 32 }, "2001::/16")).toBe(false);
  });
  test("inline prefix condition (any entry)", () => {
    const prefix = [{ prefix: "10.0.0.0/8", le: 16 }, { prefix: "2001:db8::/32", le: 48 }];
    expect(matches({ prefix }, route("10.2.0.0/16"))).toBe(true);
    expect(matches({ prefix }, route("2001:db8:5::/48"))).toBe(true);
    expect(matches({ prefix }, route("10.2.3.0/24"))).toBe(false);
  });
  test("prefix lists: any named list, any entry", () => {
    const lists = { a: [{ prefix: "10.0.0.0/8", le: 24 }], b: [{ prefix: "192.0.2.0/24" }, { prefix: "2001:db8::/32", le: 64 }] };
    expect(matches({ prefixList: ["a", "b"] }, route("10.9.9.0/24"), lists)).toBe(true);
    expect(matches({ prefixList: ["a", "b"] }, route("192.0.2.0/24"), lists)).toBe(true);
    expect(matches({ prefixList: ["a", "b"] }, route("2001:db8:1:2::/64"), lists)).toBe(true);
    expect(matches({ prefixList: ["a"] }, route("192.0.2.0/24"), lists)).toBe(false);
    expect(matches({ prefixList: ["a", "b"] }, route("198.51.100.0/24"), lists)).toBe(false);
  });
  test("prefix and prefixList are separate conditions (both must hold)", () => {
    const lists = { a: [{ prefix: "10.0.0.0/8", le: 24 }] };
    expect(matches({ prefix: [{ prefix: "10.1.0.0/16", le: 24 }], prefixList: ["a"] }, route("10.1.2.0/24"), lists)).toBe(true);
    expect(matches({ prefix: [{ prefix: "10.1.0.0/16", le: 24 }], prefixList: ["a"] }, route("10.2.2.0/24"), lists)).toBe(false);
  });
});

describe("large prefix sets (trie) agree with a plain scan", () => {
  // small deterministic PRNG
  let seed = 12345;
  const rnd = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  function randomPrefix(afi: 1 | 2, maxLen: number, base?: Uint8Array): { afi: 1 | 2; len: number; addr: Uint8Array } {
    const bytes = afi === 1 ? 4 : 16;
    const len = rnd(maxLen + 1);
    const a = new Uint8Array(bytes);
    for (let i = 0; i < bytes; i++) a[i] = base && rnd(4) !== 0 ? base[i]! : rnd(256);
    for (let bit = len; bit < bytes * 8; bit++) a[bit >> 3]! &= ~(0x80 >> (bit & 7));
    return { afi, len, addr: a };
  }
  const text = (p: { afi: 1 | 2; len: number; addr: Uint8Array }) => `${p.afi === 1 ? Array.from(p.addr).join(".") : Array.from({ length: 8 }, (_, i) => ((p.addr[i * 2]! << 8) | p.addr[i * 2 + 1]!).toString(16)).join(":")}/${p.len}`;
  test("IPv4 and IPv6, random entries and ranges", () => {
    const base4 = Uint8Array.of(10, 20, 30, 40);
    const base6 = parseAddr("2001:db8:1234:5678::")!.addr;
    const entries: PrefixMatch[] = [];
    for (let i = 0; i < 300; i++) {
      const afi = i % 2 === 0 ? 1 : 2;
      const max = afi === 1 ? 32 : 128;
      const p = randomPrefix(afi, afi === 1 ? 24 : 64, afi === 1 ? base4 : base6);
      const ge = p.len + rnd(Math.min(8, max - p.len) + 1);
      const le = ge + rnd(Math.min(8, max - ge) + 1);
      entries.push(rnd(3) === 0 ? { prefix: text(p) } : { prefix: text(p), ge, le });
    }
    const compiled = entries.map((e) => compilePrefixMatch(e, "t"));
    const setT = new PrefixSet(compiled);
    let hits = 0;
    for (let i = 0; i < 20000; i++) {
      const afi = i % 2 === 0 ? 1 : 2;
      const p = randomPrefix(afi, afi === 1 ? 32 : 128, afi === 1 ? base4 : base6);
      const want = compiled.some((m) => prefixMatches(m, p));
      expect(setT.matches(p)).toBe(want);
      if (want) hits++;
    }
    expect(hits).toBeGreaterThan(100);
    // every entry's own prefix at its ge length is matched
    for (const m of compiled) {
      const p = { afi: m.afi, len: m.ge, addr: parsePrefix(m.text.split(" ")[0]!).addr };
      expect(setT.matches(p)).toBe(true);
    }
  });
});

describe("other match conditions", () => {
  test("community (any of the list, well-known names)", () => {
    const r = route("10.0.0.0/8", { attrs: attrs({ communities: [comm("65001:1"), comm("no-export")] }) });
    expect(matches({ community: ["65001:1"] }, r)).toBe(true);
    expect(matches({ community: ["65001:2", "no-export"] }, r)).toBe(true);
    expect(matches({ community: ["65001:2"] }, r)).toBe(false);
    expect(matches({ community: ["65001:1"] }, route("10.0.0.0/8"))).toBe(false);
  });
  test("large community", () => {
    const r = route("10.0.0.0/8", { attrs: attrs({ largeCommunities: [[65001, 1, 2], [4200000000, 7, 8]] }) });
    expect(matches({ largeCommunity: ["4200000000:7:8"] }, r)).toBe(true);
    expect(matches({ largeCommunity: ["65001:1:3", "65001:1:2"] }, r)).toBe(true);
    expect(matches({ largeCommunity: ["65001:2:1"] }, r)).toBe(false);
  });
  test("AS path regex over the text form, ^$ for an empty path", () => {
    const r = route("10.0.0.0/8", { attrs: attrs({ asPath: asPathOf([seq(65001, 65002), set(65003, 65004)]) }) });
    expect(matches({ asPath: "^65001 " }, r)).toBe(true);
    expect(matches({ asPath: "^65002" }, r)).toBe(false);
    expect(matches({ asPath: "\\{65003,65004\\}$" }, r)).toBe(true);
    expect(matches({ asPath: "(^| )65002( |$)" }, r)).toBe(true);
    expect(matches({ asPath: "^$" }, r)).toBe(false);
    expect(matches({ asPath: "^$" }, route("10.0.0.0/8", { attrs: attrs({ asPath: asPathOf([]) }) }))).toBe(true);
    expect(matches({ asPath: "^$" }, route("10.0.0.0/8", { attrs: attrs({ asPath: null }) }))).toBe(true);
  });
  test("next hop (IPv4, IPv6, global or link-local of a 32-byte next hop)", () => {
    expect(matches({ nextHop: ["192.0.2.1"] }, route("10.0.0.0/8"))).toBe(true);
    expect(matches({ nextHop: ["192.0.2.9", "192.0.2.1"] }, route("10.0.0.0/8"))).toBe(true);
    expect(matches({ nextHop: ["192.0.2.9"] }, route("10.0.0.0/8"))).toBe(false);
    expect(matches({ nextHop: ["2001:DB8::1"] }, route("2001:db8:1::/48"))).toBe(true);
    const nh32 = new Uint8Array(32);
    nh32.set(addr("2001:db8::7"), 0);
    nh32.set(addr("fe80::7"), 16);
    expect(matches({ nextHop: ["2001:db8::7"] }, route("2001:db8:1::/48", { nextHop: nh32 }))).toBe(true);
    expect(matches({ nextHop: ["fe80::7"] }, route("2001:db8:1::/48", { nextHop: nh32 }))).toBe(true);
    expect(matches({ nextHop: ["fe80::8"] }, route("2001:db8:1::/48", { nextHop: nh32 }))).toBe(false);
    expect(matches({ nextHop: ["192.0.2.1"] }, route("2001:db8:1::/48"))).toBe(false);
  });
  test("neighbor: address (any text form), local", () => {
    const v6src = peerSource("2001:db8::5");
    expect(matches({ neighbor: ["192.0.2.1"] }, route("10.0.0.0/8"))).toBe(true);
    expect(matches({ neighbor: ["192.0.2.2"] }, route("10.0.0.0/8"))).toBe(false);
    expect(matches({ neighbor: ["2001:DB8:0::0005"] }, route("10.0.0.0/8", { source: v6src }))).toBe(true);
    expect(matches({ neighbor: ["local"] }, route("10.0.0.0/8"))).toBe(false);
    expect(matches({ neighbor: ["local"] }, route("10.0.0.0/8", { source: LOCAL }))).toBe(true);
    expect(matches({ neighbor: ["192.0.2.1"] }, route("10.0.0.0/8", { source: LOCAL }))).toBe(false);
    expect(matches({ neighbor: ["192.0.2.9", "local"] }, route("10.0.0.0/8", { source: LOCAL }))).toBe(true);
  });
  test("family", () => {
    expect(matches({ family: "ipv4" }, route("10.0.0.0/8"))).toBe(true);
    expect(matches({ family: "ipv4" }, route("2001:db8::/32"))).toBe(false);
    expect(matches({ family: "ipv6" }, route("2001:db8::/32"))).toBe(true);
  });
  test("all present conditions must hold; an empty match matches everything", () => {
    const r = route("10.0.0.0/8", { attrs: attrs({ communities: [comm("65001:1")] }) });
    expect(matches({ community: ["65001:1"], family: "ipv4" }, r)).toBe(true);
    expect(matches({ community: ["65001:1"], family: "ipv6" }, r)).toBe(false);
    expect(matches({ community: ["65001:1"], asPath: "^65009" }, r)).toBe(false);
    expect(matches({}, r)).toBe(true);
    expect(matches(undefined, r)).toBe(true);
  });
});

// ---------------------------------------------------------------- actions

describe("actions and chains", () => {
  const r = route("10.0.0.0/8", { attrs: attrs({ communities: [comm("65001:1")] }) });
  test("accept, reject, default accept, default reject", () => {
    expect(run([{ action: "accept" }], r)).toMatchObject({ accept: true, reason: 'policy "p" term #1: accept' });
    expect(run([{ name: "deny", action: "reject" }], r)).toMatchObject({ accept: false, reason: 'policy "p" term "deny": reject' });
    expect(run([{ match: { family: "ipv6" }, action: "reject" }], r, { default: "accept" })).toMatchObject({ accept: true, reason: 'policy "p": default accept' });
    expect(run([{ match: { family: "ipv6" }, action: "accept" }], r)).toMatchObject({ accept: false, reason: 'policy "p": default reject' });
    expect(run([], r, { default: "accept" }).accept).toBe(true);
  });
  test("first matching term with an action decides", () => {
    expect(run([{ match: { family: "ipv4" }, action: "reject" }, { action: "accept" }], r).accept).toBe(false);
    expect(run([{ match: { family: "ipv6" }, action: "reject" }, { action: "accept" }], r).accept).toBe(true);
  });
  test("a term without action applies its set and falls through; later terms see the change", () => {
    const res = run(
      [
        { set: { community: { add: ["65000:7"] }, localPref: 200 } },
        { match: { community: ["65000:7"] }, set: { med: 5 } },
        { match: { community: ["65000:8"] }, action: "reject" },
      ],
      r,
      { default: "accept" },
    );
    expect(res.accept).toBe(true);
    expect(res.attrs.localPref).toBe(200);
    expect(res.attrs.med).toBe(5);
    expect(res.attrs.communities).toEqual([comm("65001:1"), comm("65000:7")]);
    // fall-through to the default reject after sets
    expect(run([{ set: { localPref: 200 } }], r).accept).toBe(false);
  });
  test("next hop match sees a next hop set by an earlier term", () => {
    const res = run([{ set: { nextHop: "198.51.100.1" } }, { match: { nextHop: ["198.51.100.1"] }, action: "accept" }], r);
    expect(res.accept).toBe(true);
  });
  test("chain: next policy after no verdict; the last policy's default applies; accept/reject end the chain", () => {
    const c = compile({
      a: { terms: [{ match: { family: "ipv6" }, action: "accept" }, { set: { localPref: 50 } }], default: "reject" },
      b: { terms: [{ match: { community: ["65001:1"] }, set: { med: 9 } }], default: "accept" },
      c: { terms: [{ match: { community: ["65001:1"] }, action: "reject" }], default: "accept" },
      d: { terms: [{ action: "accept" }], default: "reject" },
      e: { terms: [], default: "reject" },
    });
    const ab = applyPolicy(chain("a", "b"), "ebgp", r, CTX, c);
    expect(ab).toMatchObject({ accept: true, reason: 'policy "b": default accept' });
    expect(ab.attrs.localPref).toBe(50);
    expect(ab.attrs.med).toBe(9);
    // a's default (reject) is not applied in the middle of a chain; e's default is
    expect(applyPolicy(chain("b", "e"), "ebgp", r, CTX, c)).toMatchObject({ accept: false, reason: 'policy "e": default reject' });
    expect(applyPolicy(chain("c", "d"), "ebgp", r, CTX, c)).toMatchObject({ accept: false, reason: 'policy "c" term #1: reject' });
    expect(applyPolicy(chain("d", "c"), "ebgp", r, CTX, c)).toMatchObject({ accept: true, reason: 'policy "d" term #1: accept' });
    expect(applyPolicy(chain("a", "zz"), "ebgp", r, CTX, c)).toMatchObject({ accept: false, reason: 'unknown policy "zz"' });
    expect(applyPolicy(chain(), "ebgp", r, CTX, c).accept).toBe(false);
  });
  test("RFC 8212 defaults, all, none", () => {
    const c = compile({});
    const imp = { ...CTX, direction: "import" as const };
    const exp = { ...CTX, direction: "export" as const };
    expect(applyPolicy(undefined, "ebgp", r, imp, c)).toMatchObject({ accept: false, reason: "no import policy (RFC 8212)" });
    expect(applyPolicy(undefined, "ebgp", r, exp, c)).toMatchObject({ accept: false, reason: "no export policy (RFC 8212)" });
    for (const ctx of [imp, exp]) {
      const ib = applyPolicy(undefined, "ibgp", r, ctx, c);
      expect(ib.accept).toBe(true);
      expect(ib.attrs).toBe(r.attrs);
      expect(ib.nextHop).toBe(r.nextHop);
      for (const d of ["ibgp", "ebgp"] as const) {
        const all = applyPolicy({ kind: "all" }, d, r, ctx, c);
        expect(all).toMatchObject({ accept: true, reason: "all" });
        expect(all.attrs).toBe(r.attrs);
        expect(applyPolicy({ kind: "none" }, d, r, ctx, c)).toMatchObject({ accept: false, reason: "none" });
      }
    }
  });
});

// ---------------------------------------------------------------- sets

describe("set", () => {
  const base = attrs({ communities: [comm("65001:1"), comm("65001:2")], largeCommunities: [[65001, 1, 1], [65001, 1, 2]], med: 3, localPref: 100 });
  const r = route("10.0.0.0/8", { attrs: base });
  const acc = (s: PolicyTerm["set"], rr: Route = r, ctx: PolicyContext = CTX) => run([{ set: s, action: "accept" }], rr, { ctx });
  test("local pref and MED", () => {
    const res = acc({ localPref: 300, med: 0 });
    expect(res.attrs.localPref).toBe(300);
    expect(res.attrs.med).toBe(0);
    expect(res.medSet).toBe(true);
    expect(acc({ localPref: 300 }).medSet).toBe(false);
  });
  test("community: replace, then remove, then add; no duplicates", () => {
    const res = acc({ community: { replace: ["65002:1", "65002:2", "65002:3"], remove: ["65002:2"], add: ["65002:3", "65002:4", "65002:4"] } });
    expect(res.attrs.communities).toEqual(["65002:1", "65002:3", "65002:4"].map(comm));
    expect(acc({ community: { remove: ["65001:1"] } }).attrs.communities).toEqual([comm("65001:2")]);
    expect(acc({ community: { add: ["65001:2", "no-export"] } }).attrs.communities).toEqual([comm("65001:1"), comm("65001:2"), comm("no-export")]);
    // remove then add of the same value: it stays (add is last)
    expect(acc({ community: { remove: ["65001:1"], add: ["65001:1"] } }).attrs.communities).toEqual([comm("65001:2"), comm("65001:1")]);
    expect(acc({ community: { replace: [] } }).attrs.communities).toEqual([]);
    // duplicates in the input are removed when the list is edited
    const dup = route("10.0.0.0/8", { attrs: attrs({ communities: [comm("1:1"), comm("1:1")] }) });
    expect(acc({ community: { add: ["1:2"] } }, dup).attrs.communities).toEqual([comm("1:1"), comm("1:2")]);
  });
  test("large community likewise", () => {
    const res = acc({ largeCommunity: { replace: ["1:2:3", "4:5:6"], remove: ["4:5:6"], add: ["1:2:3", "7:8:9"] } });
    expect(res.attrs.largeCommunities).toEqual([[1, 2, 3], [7, 8, 9]]);
    expect(acc({ largeCommunity: { remove: ["65001:1:1"] } }).attrs.largeCommunities).toEqual([[65001, 1, 2]]);
    expect(acc({ largeCommunity: { add: ["65001:1:2", "65001:1:3"] } }).attrs.largeCommunities).toEqual([[65001, 1, 1], [65001, 1, 2], [65001, 1, 3]]);
  });
  test("next hop self and address", () => {
    const self = acc({ nextHop: "self" });
    expect(self.nextHop).toBe(CTX.localAddress!);
    expect(self.nextHopSet).toBe(true);
    expect(self.attrs).toBe(base); // the next hop is not an attribute change
    const noLocal = acc({ nextHop: "self" }, r, { ...CTX, localAddress: null });
    expect(noLocal.nextHop).toBe(r.nextHop);
    expect(noLocal.nextHopSet).toBe(false);
    const a = acc({ nextHop: "198.51.100.7" });
    expect(Array.from(a.nextHop)).toEqual([198, 51, 100, 7]);
    expect(a.nextHopSet).toBe(true);
    const v6 = acc({ nextHop: "2001:db8::99" }, route("2001:db8:1::/48"));
    expect(v6.nextHop).toEqual(addr("2001:db8::99"));
    expect(acc({ localPref: 7 }).nextHopSet).toBe(false);
  });
  test("AS path prepend: extends a leading sequence, starts one otherwise", () => {
    expect(acc({ asPathPrepend: 2 }).attrs.asPath).toEqual(asPathOf([seq(65000, 65000, 65001)]));
    expect(acc({ asPathPrepend: 1 }, route("10.0.0.0/8", { attrs: attrs({ asPath: asPathOf([]) }) })).attrs.asPath).toEqual(asPathOf([seq(65000)]));
    expect(acc({ asPathPrepend: 1 }, route("10.0.0.0/8", { attrs: attrs({ asPath: null }) })).attrs.asPath).toEqual(asPathOf([seq(65000)]));
    expect(acc({ asPathPrepend: 2 }, route("10.0.0.0/8", { attrs: attrs({ asPath: asPathOf([set(1, 2), seq(3)]) }) })).attrs.asPath).toEqual(asPathOf([
      seq(65000, 65000),
      set(1, 2),
      seq(3),
    ]));
    const big = acc({ asPathPrepend: 4 }, route("10.0.0.0/8", { attrs: attrs({ asPath: asPathOf([seq(...new Array<number>(70).fill(7))]) }) }), {
      ...CTX,
      localAs: 4_200_000_000,
    });
    const segs = asPathSegments(big.attrs.asPath);
    expect(segs.length).toBe(1);
    expect(segs[0]!.asns.length).toBe(74);
    expect(segs[0]!.asns.slice(0, 5)).toEqual([4_200_000_000, 4_200_000_000, 4_200_000_000, 4_200_000_000, 7]);
  });
  test("AS path prepend splits at 255 ASes per segment", () => {
    const long = route("10.0.0.0/8", { attrs: attrs({ asPath: asPathOf([seq(...new Array<number>(250).fill(65010)), seq(1)]) }) });
    const res = acc({ asPathPrepend: 10 }, long);
    const p = asPathSegments(res.attrs.asPath);
    expect(p.map((s) => s.asns.length)).toEqual([255, 5, 1]);
    expect(p.every((s) => s.type === SEG.AS_SEQUENCE)).toBe(true);
    expect(p[0]!.asns.slice(0, 10)).toEqual(new Array<number>(10).fill(65000));
    expect(p[0]!.asns[10]).toBe(65010);
    expect(asPathSegments(prependAs(asPathOf([seq(...new Array<number>(255).fill(1))]), 9, 1)).map((s) => s.asns.length)).toEqual([255, 1]);
    expect(prependAs(null, 9, 3)).toEqual(asPathOf([seq(9, 9, 9)]));
    // A path that does not start with a sequence: a new one in front, the rest as it was.
    expect(asPathSegments(prependAs(asPathOf([{ type: SEG.AS_SET, asns: [5, 6] }, seq(7)]), 9, 2))).toEqual([seq(9, 9), { type: SEG.AS_SET, asns: [5, 6] }, seq(7)]);
  });
});

// ---------------------------------------------------------------- copy-on-write

describe("copy-on-write of shared attributes", () => {
  test("input attributes are never modified (deep-frozen input, every set)", () => {
    const a = deepFreeze(attrs({ communities: [comm("1:1")], largeCommunities: [[1, 1, 1]], asPath: asPathOf([seq(65001, 65002)]), med: 1, localPref: 100 }));
    const snapshot = structuredClone(a);
    const r = route("10.0.0.0/8", { attrs: a });
    const res = run(
      [
        {
          set: {
            localPref: 1,
            med: 2,
            community: { replace: ["2:2"], add: ["3:3"] },
            largeCommunity: { add: ["2:2:2"] },
            nextHop: "self",
            asPathPrepend: 3,
          },
        },
        { set: { community: { remove: ["2:2"] } }, action: "accept" },
      ],
      r,
    );
    expect(res.accept).toBe(true);
    expect(res.attrs).not.toBe(a);
    expect(res.attrs.communities).toEqual([comm("3:3")]);
    expect(res.attrs.asPath).toEqual(asPathOf([seq(65000, 65000, 65000, 65001, 65002)]));
    expect(a).toEqual(snapshot);
  });
  test("the same object comes back when nothing is set or a set changes nothing", () => {
    const a = attrs({ communities: [comm("1:1")], localPref: 100 });
    const r = route("10.0.0.0/8", { attrs: a });
    expect(run([{ action: "accept" }], r).attrs).toBe(a);
    expect(run([{ match: { family: "ipv6" }, set: { localPref: 5 } }, { action: "accept" }], r).attrs).toBe(a);
    expect(run([{ set: { localPref: 100, community: { add: ["1:1"], remove: ["9:9"] } }, action: "accept" }], r).attrs).toBe(a);
    expect(run([{ set: { nextHop: "self" }, action: "accept" }], r).attrs).toBe(a);
  });
  test("a set yields one shared output object per input attribute set", () => {
    const c = compile({ p: { terms: [{ set: { localPref: 300, asPathPrepend: 1 }, action: "accept" }], default: "reject" } });
    const a = attrs();
    const r1 = applyPolicy(chain("p"), "ebgp", route("10.0.0.0/8", { attrs: a }), CTX, c);
    const r2 = applyPolicy(chain("p"), "ebgp", route("10.1.0.0/16", { attrs: a }), CTX, c);
    expect(r1.attrs).not.toBe(a);
    expect(r2.attrs).toBe(r1.attrs);
    // prepend depends on the local AS: a different AS gives a different result
    const r3 = applyPolicy(chain("p"), "ebgp", route("10.1.0.0/16", { attrs: a }), { ...CTX, localAs: 65099 }, c);
    expect(r3.attrs.asPath).toEqual(asPathOf([seq(65099, 65001)]));
  });
  test("the memo over a table's worth of interned sets: one shared output per input, spread over many weak maps, each output what the set makes", () => {
    const c = compile({ p: { terms: [{ set: { community: { add: ["65000:9"] } }, action: "accept" }], default: "reject" } });
    const cache = new AttrCache(Infinity, true);
    const sets: PathAttributes[] = [];
    for (let i = 0; i < 20_000; i++) {
      const a = Object.assign(emptyAttributes(), { origin: 0, asPath: asPathOf([seq(65010, 1 + (i % 60000))]), med: i });
      cache.set(new Uint8Array([i >> 16, (i >> 8) & 255, i & 255]), { attrs: a, issues: [] });
      holdAttributes(a);
      sets.push(a);
    }
    const first = sets.map((a, i) => applyPolicy(chain("p"), "ebgp", route(`10.${i >> 8}.${i & 255}.0/24`, { attrs: a }), CTX, c).attrs);
    const again = sets.map((a, i) => applyPolicy(chain("p"), "ebgp", route(`11.${i >> 8}.${i & 255}.0/24`, { attrs: a }), CTX, c).attrs);
    expect(again.every((x, i) => x === first[i])).toBe(true);
    expect(first.every((x, i) => x !== sets[i] && x.med === i && x.communities?.length === 1 && x.communities[0] === comm("65000:9"))).toBe(true);
    const memo = (c.policies.get("p") as unknown as { terms: { set: { memo: { maps: (WeakMap<object, object> | undefined)[] } } }[] }).terms[0]!.set.memo;
    expect(memo.maps.filter((m) => m !== undefined).length).toBe(64);
  });
  test("a result object can be reused", () => {
    const c = compile({ p: { terms: [{ match: { family: "ipv4" }, action: "accept" }], default: "reject" } });
    const out: PolicyResult = { accept: false, attrs: attrs(), nextHop: new Uint8Array(0), reason: "", nextHopSet: true, medSet: true };
    const r = route("10.0.0.0/8");
    expect(applyPolicy(chain("p"), "ebgp", r, CTX, c, out)).toBe(out);
    expect(out).toMatchObject({ accept: true, nextHopSet: false, medSet: false });
    expect(out.attrs).toBe(r.attrs);
  });
});

// ---------------------------------------------------------------- speed

describe("speed", () => {
  test("one prefix-list term over 1M routes", () => {
    const lists = { customers: Array.from({ length: 20 }, (_, i) => ({ prefix: `10.${i}.0.0/16`, le: 24 })) };
    const c = compile({ p: { terms: [{ match: { prefixList: ["customers"] }, action: "accept" }], default: "reject" } }, lists);
    const shared = attrs();
    const src = peerSource("192.0.2.1");
    const nh = addr("192.0.2.1");
    const N = 1_000_000;
    const routes: Route[] = new Array(N);
    for (let i = 0; i < N; i++) {
      const p = { afi: 1 as const, len: 24, addr: Uint8Array.of(10, (i >> 8) & 63, i & 255, 0) };
      routes[i] = { prefix: p, key: prefixKey(p), pathId: 0, source: src, attrs: shared, nextHop: nh, learnedAt: 0, igpCost: 0, reachable: true, stale: false };
    }
    const out: PolicyResult = { accept: false, attrs: shared, nextHop: nh, reason: "", nextHopSet: false, medSet: false };
    const ref = chain("p");
    let accepted = 0;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) if (applyPolicy(ref, "ebgp", routes[i]!, CTX, c, out).accept) accepted++;
    const ms = performance.now() - t0;
    let want = 0;
    for (let i = 0; i < N; i++) if (((i >> 8) & 63) < 20) want++;
    expect(accepted).toBe(want);
    expect(ms).toBeLessThan(2000);
    console.log(`policy: 1M evaluations (20-entry prefix list) in ${ms.toFixed(0)} ms`);
  });
  test("a 10,000-entry prefix list over 1M routes", () => {
    const entries: PrefixMatch[] = [];
    for (let i = 0; i < 10_000; i++) entries.push({ prefix: `${100 + (i >> 8)}.${i & 255}.0.0/16`, le: 24 });
    const c = compile({ p: { terms: [{ match: { prefixList: ["big"] }, action: "accept" }], default: "reject" } }, { big: entries });
    const shared = attrs();
    const src = peerSource("192.0.2.1");
    const nh = addr("192.0.2.1");
    const out: PolicyResult = { accept: false, attrs: shared, nextHop: nh, reason: "", nextHopSet: false, medSet: false };
    const ref = chain("p");
    const N = 1_000_000;
    const r: Route = { prefix: { afi: 1, len: 24, addr: new Uint8Array(4) }, key: 0, pathId: 0, source: src, attrs: shared, nextHop: nh, learnedAt: 0, igpCost: 0, reachable: true, stale: false };
    let accepted = 0;
    let want = 0;
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const a = r.prefix.addr;
      a[0] = 100 + ((i >> 10) % 60);
      a[1] = (i >> 2) & 255;
      a[2] = i & 3;
      if (applyPolicy(ref, "ebgp", r, CTX, c, out).accept) accepted++;
    }
    const ms = performance.now() - t0;
    for (let i = 0; i < N; i++) if ((((i >> 10) % 60) << 8) + ((i >> 2) & 255) < 10_000) want++;
    expect(accepted).toBe(want);
    expect(ms).toBeLessThan(3000);
    console.log(`policy: 1M evaluations (10,000-entry prefix list) in ${ms.toFixed(0)} ms`);
  });
});
