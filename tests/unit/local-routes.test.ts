/**
 * Locally originated routes (lib/router/local-routes.ts): what a prefix
 * costs (no object of its own: the table's value and the routes' head are
 * shared by every prefix advertised with the same settings and owner), the
 * records' meaning (owner, settings, adoption, deletion), and `textKey`,
 * the prefix reader they use, against parsePrefix.
 */
import { describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { parsePrefix } from "../../lib/core/addr.ts";
import type { AdvertiseConfig } from "../../lib/config/types.ts";
import { LocRib } from "../../lib/rib/loc-rib.ts";
import { type RouteSource, headOf, ipv4TextKey, keyText, prefixKey, textKey } from "../../lib/rib/types.ts";
import { LocalRoutes } from "../../lib/router/local-routes.ts";

const SOURCE: RouteSource = { id: "local", address: "", addressBytes: new Uint8Array(0), asn: 65001, routerId: 0, ibgp: true, rrClient: false, local: true };

const ad = (prefix: string, extra: Partial<AdvertiseConfig> = {}): AdvertiseConfig => ({ prefix, communities: [], largeCommunities: [], ...extra });
const v4 = (i: number) => `${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;

describe("local routes", () => {
  test("prefixes advertised alike share the table's record and one head; other settings or owners do not", () => {
    const t = new LocalRoutes(() => 65001, SOURCE);
    const r1 = t.set(ad("192.0.2.0/25", { communities: ["65001:7"] }), "api");
    // The same settings in new arrays (a request's, a derivation's) are the same spec.
    const r2 = t.set(ad("192.0.2.128/25", { communities: ["65001:7"] }), "api");
    const r3 = t.set(ad("198.51.100.0/24", { communities: ["65001:8"] }), "api");
    const r4 = t.set(ad("203.0.113.0/24", { communities: ["65001:7"] }), "config");
    expect(headOf(r1)).not.toBeNull();
    expect(headOf(r2)).toBe(headOf(r1)!);
    expect(headOf(r3)).not.toBe(headOf(r1)!);
    expect(r2.attrs).toBe(r1.attrs);
    expect(r4.attrs).toBe(r1.attrs); // the spec is the settings', whoever owns the prefix
    expect(t.get("192.0.2.128/25")).toBe(t.get("192.0.2.0/25")!);
    expect(t.get("198.51.100.0/24")).not.toBe(t.get("192.0.2.0/25")!);
    expect(t.get("203.0.113.0/24")).not.toBe(t.get("192.0.2.0/25")!);
    expect(t.get("203.0.113.0/24")!.owner).toBe("config");
    expect(t.get("192.0.2.0/25")!.settings).toEqual({ communities: ["65001:7"], largeCommunities: [] });
    expect(t.get("192.0.2.0/25")!.configOf("192.0.2.0/25")).toEqual(ad("192.0.2.0/25", { communities: ["65001:7"] }));
    // Field order does not matter; a different value does.
    expect(t.get("192.0.2.0/25")!.matches({ largeCommunities: [], prefix: "192.0.2.0/25", communities: ["65001:7"] })).toBe(true);
    expect(t.get("192.0.2.0/25")!.matches(ad("192.0.2.0/25", { communities: ["65001:7"], med: 5 }))).toBe(false);
    expect(t.get("192.0.2.0/25")!.matches(ad("192.0.2.0/25"))).toBe(false);
    expect(t.size).toBe(4);
  });

  test("a spec's routes take a new head (and arrival time) once its head is a second old", async () => {
    const t = new LocalRoutes(() => 65001, SOURCE);
    const a = t.set(ad("192.0.2.0/24"), "api");
    const b = t.set(ad("198.51.100.0/24"), "api");
    expect(headOf(b)).toBe(headOf(a)!);
    await Bun.sleep(1010);
    const c = t.set(ad("203.0.113.0/24"), "api");
    expect(headOf(c)).not.toBe(headOf(a)!);
    expect(c.learnedAt - a.learnedAt).toBeGreaterThanOrEqual(1000);
    expect(c.attrs).toBe(a.attrs);
  });

  test("the settings that differ only in a field's presence are different specs", () => {
    const t = new LocalRoutes(() => 65001, SOURCE);
    const a = t.set(ad("192.0.2.0/24"), "api");
    const b = t.set(ad("198.51.100.0/24", { med: 0 }), "api");
    const c = t.set(ad("203.0.113.0/24"), "api");
    expect(b.attrs).not.toBe(a.attrs);
    expect(b.attrs.med).toBe(0);
    expect(a.attrs.med).toBeNull();
    expect(c.attrs).toBe(a.attrs);
  });

  test("adopt gives a prefix to another owner, delete forgets it and names its key; the version counts writes", () => {
    const t = new LocalRoutes(() => 65001, SOURCE);
    t.set(ad("192.0.2.0/24"), "api");
    t.set(ad("198.51.100.0/24"), "api");
    const v = t.version;
    expect(t.adopt("192.0.2.0/24", "config")).toBe(true);
    expect(t.get("192.0.2.0/24")!.owner).toBe("config");
    expect(t.get("198.51.100.0/24")!.owner).toBe("api");
    expect(t.get("192.0.2.0/24")!.settings).toBe(t.get("198.51.100.0/24")!.settings);
    expect(t.adopt("203.0.113.0/24", "config")).toBe(false);
    expect(t.version).toBe(v); // the route did not change
    expect(t.delete("192.0.2.0/24")).toBe(prefixKey(parsePrefix("192.0.2.0/24")));
    expect(t.delete("192.0.2.0/24")).toBeUndefined();
    expect(t.version).toBe(v + 1);
    expect([...t].map(([p, r]) => [p, r.owner])).toEqual([["198.51.100.0/24", "api"]]);
  });

  test("200,000 originated prefixes in a Loc-RIB cost their table entries, no object each", () => {
    const N = 200_000;
    const t = new LocalRoutes(() => 65001, SOURCE);
    const rib = new LocRib();
    const prefixes = Array.from({ length: N }, (_, i) => v4(i));
    const attrs = { communities: ["65001:1"], largeCommunities: [] };
    Bun.gc(true);
    const h0 = heapStats();
    for (const p of prefixes) rib.upsert(t.set({ prefix: p, ...attrs }, "api"));
    Bun.gc(true);
    const h1 = heapStats();
    expect(rib.count()).toBe(N);
    // Before: a Route, its own head and a record per prefix: 185 bytes a prefix here. Now two table
    // entries (this table's and the Loc-RIB's): 25-95 bytes by this measure (the heap's own slack varies).
    const bytes = h1.heapSize - h0.heapSize + (h1.extraMemorySize - h0.extraMemorySize);
    expect(bytes / N).toBeLessThan(130);
  });
});

describe("textKey", () => {
  const slow = (s: string): string | number => {
    try {
      return prefixKey(parsePrefix(s));
    } catch (e) {
      return `error: ${(e as Error).message}`;
    }
  };
  const fast = (s: string): string | number => {
    try {
      return textKey(s);
    } catch (e) {
      return `error: ${(e as Error).message}`;
    }
  };

  test("is prefixKey(parsePrefix(s)) on edge cases, errors included", () => {
    const cases = ["0.0.0.0/0", "1.0.0.0/0", "10.0.0.0/8", "255.255.255.255/32", "256.0.0.0/8", "01.0.0.0/8", "00.0.0.0/0", "0.0.0.0/00", "1.2.3.4/024", "1.2.3.4/33", "1.2.3.4/", "1.2.3./24", "1.2.3.4", "10.1.0.0/15", "10.2.0.0/15", "2001:db8::/32", "::/0", "1.2.3.0/24 ", " 1.2.3.0/24", "1.2.3.0//24", "1.2.3.0/2a", "1.2.3.4.5/32", "1..2.3/8", "", "/", "1.2.3.0/-1", "1000.0.0.0/8"];
    for (const s of cases) expect([s, fast(s)]).toEqual([s, slow(s)]);
    expect(keyText(textKey("198.51.100.0/24") as number)).toBe("198.51.100.0/24");
  });

  test("ipv4TextKey masks host bits when asked (kernel route texts), and reads nothing but canonical IPv4", () => {
    expect(ipv4TextKey("192.0.2.77/24", true)).toBe(prefixKey(parsePrefix("192.0.2.0/24")) as number);
    expect(ipv4TextKey("192.0.2.77/24", false)).toBeNull();
    expect(ipv4TextKey("192.0.2.77/32", false)).toBe(prefixKey(parsePrefix("192.0.2.77/32")) as number);
    expect(ipv4TextKey("0.0.0.0/0", false)).toBe(0);
    for (const s of ["2001:db8::/32", "192.0.2.0", "192.0.2.0/", "192.0.02.0/24", "192.0.2.0/024", "192.0.2.0/33", "192.0.2/24", "192.0.2.0.0/24"]) expect([s, ipv4TextKey(s, true)]).toEqual([s, null]);
  });

  test("is prefixKey(parsePrefix(s)) on 100,000 random texts", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const chars = "0123456789./:a ";
    for (let i = 0; i < 100_000; i++) {
      let s = "";
      if (i % 3 === 0) s = `${[0, 1, 2, 3].map(() => (rnd(10) === 0 ? rnd(300) : rnd(256))).join(".")}/${rnd(36)}`;
      else if (i % 3 === 1) {
        const len = rnd(33);
        const v = rnd(2 ** 31) * 2 + rnd(2);
        const m = len === 0 ? 0 : Math.floor(v / 2 ** (32 - len)) * 2 ** (32 - len);
        s = `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}/${len}`;
      } else for (let j = rnd(18); j > 0; j--) s += chars[rnd(chars.length)];
      const a = fast(s);
      const b = slow(s);
      if (a !== b) expect([s, a]).toEqual([s, b]);
    }
  });
});
