/**
 * The sliced LIST parser (lib/k8s/list-json.ts) against JSON.parse as the
 * model: the same value for lists with awkward strings, any layout and key
 * order, other shapes and random lists; the same failure for malformed
 * text; and a 10 MB page parsed across many event-loop turns (counted, not
 * timed).
 */
import { describe, expect, test } from "bun:test";
import { parseListJson } from "../../lib/k8s/list-json.ts";
import { turnCounter } from "../support/turns.ts";

function rng(seed: number): () => number {
  return () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
}

const awkward = ['he said "hi"', "back\\slash\\", "braces {[}] and ]}", 'a "\\"" mix', "\u2603 snow \ud83d\ude00", "items", '"items": [', "\n\t\r", ""];

function item(i: number, name = `svc-${i}`): unknown {
  return {
    metadata: { name, namespace: "default", resourceVersion: String(1000 + i), labels: { app: awkward[i % awkward.length], items: [i, { items: "x" }] } },
    spec: { clusterIP: `10.96.${(i >> 8) & 255}.${i & 255}`, ports: [{ port: 80, name: awkward[(i + 3) % awkward.length] }], empty: {}, none: [], nothing: null, yes: true, n: -1.5e3 },
  };
}

async function same(text: string): Promise<void> {
  expect(await parseListJson(text)).toEqual(JSON.parse(text));
}

describe("LIST answers parsed in slices", () => {
  test("the same value as JSON.parse: awkward strings, compact and indented text, metadata before or after the items, no items", async () => {
    const items = Array.from({ length: 40 }, (_, i) => item(i));
    const lists = [
      { apiVersion: "v1", kind: "ServiceList", metadata: { resourceVersion: "77", continue: "abc" }, items },
      { kind: "ServiceList", items, metadata: { resourceVersion: "78", note: "items" } },
      { kind: "ServiceList", metadata: { resourceVersion: "79" }, items: [] },
    ];
    for (const l of lists) {
      await same(JSON.stringify(l));
      await same(JSON.stringify(l, null, 2));
      await same(` \n${JSON.stringify(l, null, "\t")}\r\n `);
    }
  });

  test("other shapes are parsed whole, as JSON.parse does: a Status, items null or not objects, two items keys, a top-level array or string", async () => {
    for (const text of [
      JSON.stringify({ kind: "Status", status: "Failure", reason: "Expired", code: 410 }),
      '{"kind":"List","items":null,"metadata":{}}',
      '{"kind":"List","items":[1,{"a":1}],"metadata":{}}',
      '{"kind":"List","items":[{"a":1},"x"],"metadata":{}}',
      '{"kind":"List","items":[{"a":1}, [2]],"metadata":{}}',
      '{"items":[{"a":1}],"metadata":{},"items":[{"b":2}]}',
      '{"items":[{"a":1}],"items":[]}',
      '[{"a":1}]',
      '"items"',
      "{}",
    ]) {
      await same(text);
    }
  });

  test("malformed answers fail as JSON.parse fails: truncated, trailing garbage, a bad item, a bad envelope", async () => {
    const good = JSON.stringify({ kind: "List", metadata: { resourceVersion: "1" }, items: [item(1), item(2)] });
    for (const text of [good.slice(0, good.length - 1), good.slice(0, 60), `${good} x`, `${good}}`, good.replace('"spec":{', '"spec":{,'), good.replace('"kind":"List"', '"kind":List'), good.replace('"items":[', '"items":[,'), good.replace('}},{"metadata"', '}},,{"metadata"'), good.replace("}}]}", "}},]}")]) {
      expect(() => JSON.parse(text)).toThrow();
      await expect(parseListJson(text)).rejects.toThrow();
    }
  });

  test("random lists with random strings: the same value as JSON.parse", async () => {
    const r = rng(7);
    const chars = ['"', "\\", "{", "}", "[", "]", ",", ":", " ", "\n", "a", "é", "\u0001", "\ud83d\ude00"];
    const str = () => Array.from({ length: Math.floor(r() * 12) }, () => chars[Math.floor(r() * chars.length)]).join("");
    const value = (d: number): unknown => {
      const x = r();
      if (d > 3 || x < 0.3) return str();
      if (x < 0.4) return Math.floor(r() * 1e6) - 5e5;
      if (x < 0.45) return [null, true, false][Math.floor(r() * 3)];
      if (x < 0.7) return Array.from({ length: Math.floor(r() * 4) }, () => value(d + 1));
      return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [str(), value(d + 1)]));
    };
    for (let n = 0; n < 200; n++) {
      const items = Array.from({ length: Math.floor(r() * 6) }, () => ({ metadata: { name: str() }, data: value(0) }));
      const l = r() < 0.5 ? { kind: str(), items, metadata: { resourceVersion: str() } } : { metadata: { continue: str() }, [str()]: value(1), items };
      await same(JSON.stringify(l, null, r() < 0.5 ? 0 : 1));
    }
  });

  test("a 10 MB page is parsed across many turns, item by item, to the same value", async () => {
    const pad = "x".repeat(1800);
    const items = Array.from({ length: 5000 }, (_, i) => ({ ...(item(i) as object), pad }));
    const text = JSON.stringify({ kind: "EndpointSliceList", metadata: { resourceVersion: "9" }, items });
    expect(text.length).toBeGreaterThan(10_000_000);
    const turns = turnCounter();
    const got = (await parseListJson(text)) as { items: unknown[]; metadata: unknown };
    expect(turns.stop()).toBeGreaterThan(5);
    expect(got.metadata).toEqual({ resourceVersion: "9" });
    expect(got.items.length).toBe(5000);
    expect(got).toEqual(JSON.parse(text));
  }, 60_000);
});
