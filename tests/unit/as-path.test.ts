/**
 * The compact AS path (lib/bgp/attributes.ts: one Uint32Array of type,
 * count, ASes per segment): parsing from the wire and back through the
 * segment form, and each reader the RIB, the export path and the session
 * use (RFC 4271 path length and neighbouring AS, loop counts, the first-AS
 * check, as-override's replacement, prepending across the 255-AS segment
 * limit).
 */
import { describe, expect, test } from "bun:test";
import {
  EMPTY_AS_PATH,
  asPathCount,
  asPathHas,
  asPathLeadingAs,
  asPathLength,
  asPathNeighbor,
  asPathNumbers,
  asPathOf,
  asPathReplace,
  asPathSegments,
  asPathString,
  asSequence,
  parseAsPath,
  prependAs,
} from "../../lib/bgp/attributes.ts";
import { SEG } from "../../lib/bgp/types.ts";

const seq = (...asns: number[]) => ({ type: SEG.AS_SEQUENCE, asns });
const set = (...asns: number[]) => ({ type: SEG.AS_SET, asns });
const cseq = (...asns: number[]) => ({ type: SEG.AS_CONFED_SEQUENCE, asns });

/** A path's wire value (4-octet ASes). */
function wire(segs: { type: number; asns: number[] }[], asLen: 2 | 4 = 4): Uint8Array {
  const out: number[] = [];
  for (const s of segs) {
    out.push(s.type, s.asns.length);
    for (const a of s.asns) out.push(...(asLen === 4 ? [a >>> 24, (a >>> 16) & 255, (a >>> 8) & 255, a & 255] : [(a >>> 8) & 255, a & 255]));
  }
  return Uint8Array.from(out);
}

describe("compact AS path", () => {
  const segs = [cseq(64512), seq(65001, 4_200_000_001), set(65010, 65011), seq(65020)];

  test("parsed from the wire (2- and 4-octet) into one array, and read back as the same segments", () => {
    for (const asLen of [2, 4] as const) {
      const small = segs.map((s) => ({ type: s.type, asns: s.asns.map((a) => (asLen === 2 ? a & 0xffff : a)) }));
      const p = parseAsPath(wire(small, asLen), asLen)!;
      expect(p).toBeInstanceOf(Uint32Array);
      expect(asPathSegments(p)).toEqual(small);
      expect(p).toEqual(asPathOf(small));
    }
    // Malformed: a zero count, an unknown type, a segment past the end.
    expect(parseAsPath(Uint8Array.of(2, 0), 4)).toBe(null);
    expect(parseAsPath(Uint8Array.of(9, 1, 0, 0, 0, 1), 4)).toBe(null);
    expect(parseAsPath(Uint8Array.of(2, 2, 0, 0, 0, 1), 4)).toBe(null);
    expect(parseAsPath(new Uint8Array(0), 4)).toEqual(EMPTY_AS_PATH);
  });

  test("readers: RFC 4271 length, neighbouring AS past confederation segments, counts, the leading AS", () => {
    const p = asPathOf(segs);
    expect(asPathLength(p)).toBe(2 + 1 + 1); // the confederation segment counts 0, the set 1
    expect(asPathNeighbor(p)).toBe(65001);
    expect(asPathNeighbor(asPathOf([set(1, 2), seq(3)]))).toBe(-1);
    expect(asPathNeighbor(EMPTY_AS_PATH)).toBe(-1);
    expect(asPathLeadingAs(p)).toBe(-1); // starts with a confederation segment
    expect(asPathLeadingAs(asPathOf([seq(65001, 65002)]))).toBe(65001);
    expect(asPathLeadingAs(asPathOf([set(65001)]))).toBe(-1);
    expect(asPathLeadingAs(null)).toBe(-1);
    expect(asPathCount(asPathOf([seq(65001, 7, 65001), set(65001)]), 65001)).toBe(3);
    expect(asPathHas(p, 65011)).toBe(true);
    expect(asPathHas(p, 65012)).toBe(false);
    expect(asPathNumbers(p)).toEqual([64512, 65001, 4_200_000_001, 65010, 65011, 65020]);
    expect(asPathString(p)).toBe("(64512) 65001 4200000001 {65010,65011} 65020");
    expect(asSequence([])).toBe(EMPTY_AS_PATH);
    expect(asPathSegments(asSequence([1, 2]))).toEqual([seq(1, 2)]);
  });

  test("replacing an AS makes a new path (the shared one is not touched); prepending extends a leading sequence up to 255 per segment", () => {
    const p = asPathOf([seq(65001, 65002, 65001), set(65001)]);
    const q = asPathReplace(p, 65001, 65000)!;
    expect(asPathSegments(q)).toEqual([seq(65000, 65002, 65000), set(65000)]);
    expect(asPathSegments(p)).toEqual([seq(65001, 65002, 65001), set(65001)]);
    expect(asPathReplace(p, 7, 8)).toBe(p);
    expect(asPathSegments(prependAs(p, 9, 2))).toEqual([seq(9, 9, 65001, 65002, 65001), set(65001)]);
    const long = prependAs(asPathOf([seq(...new Array<number>(254).fill(1)), seq(2)]), 9, 3);
    expect(asPathSegments(long).map((s) => s.asns.length)).toEqual([255, 2, 1]);
    expect(asPathSegments(long)[0]!.asns.slice(0, 4)).toEqual([9, 9, 9, 1]);
    expect(asPathSegments(prependAs(EMPTY_AS_PATH, 9, 1))).toEqual([seq(9)]);
  });
});
