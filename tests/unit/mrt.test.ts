/**
 * Tests of the MRT reader (lib/mrt) and `bgpctl mrt` (runMrt) against the
 * BIRD reference dumps vendored in tests/testdata/mrt, cross-checked with small
 * independent walkers written here (record headers, TABLE_DUMP_V2 entry
 * counts, BGP message types read straight from the bytes), plus byte-for-byte
 * re-encoding of every canonical BGP message, truncation and corruption
 * handling, and synthetic records for the formats the dumps do not contain.
 */
import { asPathOf } from "../../lib/bgp/attributes.ts";
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { Command } from "commander";
import {
  AFI,
  KEEPALIVE,
  blockPrefixes,
  emptyAttributes,
  encodeAttributes,
  encodeNotification,
  encodeOpen,
  encodeRouteRefresh,
  encodeUpdate,
  frame,
  type PathAttributes,
  type Prefix,
  SEG,
  prefixToString,
} from "../../lib/bgp/mod.ts";
import {
  MrtError,
  MrtFramer,
  type MessageRecord,
  type MrtReadOptions,
  type MrtRecord,
  parseMrt,
  readMrt,
  recordLines,
  recordObjects,
  recordTime,
  type RibRecord,
} from "../../lib/mrt/mod.ts";
import { registerMrt, runMrt } from "../../commands/mrt.ts";
import { MRT_SAMPLE_DIR, MRT_SAMPLES, type MrtSampleName, loadMrtSample } from "../support/mrt-samples.ts";

// ---------------------------------------------------------------- data

const DATA_DIR = MRT_SAMPLE_DIR;
const FILES = MRT_SAMPLES;
type FileName = MrtSampleName;
/**
 * BIRD 1.x `mrtdump` files: the session negotiated ADD-PATH (see the OPEN) but
 * the messages were written with the plain MESSAGE_AS4 subtype (4) instead of
 * MESSAGE_AS4_ADDPATH (9), so by RFC 8050 their NLRI are malformed.
 */
const MISLABELLED_ADDPATH: readonly FileName[] = ["bird_bgp", "bird6_bgp"];

function load(name: FileName): Uint8Array {
  return loadMrtSample(name);
}

function decodeAll(name: FileName, opts: MrtReadOptions = {}): MrtRecord[] {
  return [...parseMrt(load(name), opts)];
}

/** The options under which every message of a file decodes. */
function cleanOpts(name: FileName): MrtReadOptions {
  return MISLABELLED_ADDPATH.includes(name) ? { assumeAddPath: true } : {};
}

const tmp = mkdtempSync(join(tmpdir(), "bgpctl-mrt-test-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function tmpFile(name: string, bytes: Uint8Array): string {
  const p = join(tmp, name);
  writeFileSync(p, bytes);
  return p;
}

async function run(file: string, opts: { json?: boolean; addPath?: boolean } = {}): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runMrt(
    file,
    opts,
    (s) => {
      out += s;
    },
    (s) => {
      err += s;
    },
  );
  return { code, out, err };
}

// ------------------------------------------------- independent walkers
// Written from RFC 6396 directly, sharing no code with lib/mrt.

interface HeaderInfo {
  offset: number;
  type: number;
  subtype: number;
  length: number;
  /** Offset of the record body (after microseconds for type 17). */
  body: number;
  end: number;
}

function walkHeaders(b: Uint8Array): HeaderInfo[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: HeaderInfo[] = [];
  let o = 0;
  while (o < b.length) {
    if (o + 12 > b.length) throw new Error(`truncated header at ${o}`);
    const type = dv.getUint16(o + 4);
    const length = dv.getUint32(o + 8);
    const end = o + 12 + length;
    if (end > b.length) throw new Error(`truncated record at ${o}`);
    out.push({ offset: o, type, subtype: dv.getUint16(o + 6), length, body: o + 12 + (type === 17 ? 4 : 0), end });
    o = end;
  }
  return out;
}

/** Type of the BGP message in a BGP4MP message record, read from the bytes. */
function bgpMessageAt(b: Uint8Array, h: HeaderInfo): { start: number; type: number } {
  const as4 = [4, 5, 7, 9, 11].includes(h.subtype);
  const asBytes = as4 ? 8 : 4;
  const afi = (b[h.body + asBytes + 2]! << 8) | b[h.body + asBytes + 3]!;
  const start = h.body + asBytes + 4 + (afi === 2 ? 32 : 8);
  return { start, type: b[start + 18]! };
}

/** Number of RIB entries in a TABLE_DUMP_V2 AFI/SAFI-specific RIB record, by skipping entries. */
function countRibEntries(b: Uint8Array, h: HeaderInfo): number {
  const addPath = h.subtype >= 8;
  let o = h.body + 4;
  const plen = b[o]!;
  o += 1 + Math.ceil(plen / 8);
  const count = (b[o]! << 8) | b[o + 1]!;
  o += 2;
  for (let i = 0; i < count; i++) {
    o += 2 + 4 + (addPath ? 4 : 0);
    const alen = (b[o]! << 8) | b[o + 1]!;
    o += 2 + alen;
  }
  if (o !== h.end) throw new Error(`entries of record at ${h.offset} end at ${o}, record ends at ${h.end}`);
  return count;
}

function independentCounts(b: Uint8Array) {
  const hs = walkHeaders(b);
  const messages: Record<string, number> = {};
  const names: Record<number, string> = { 1: "open", 2: "update", 3: "notification", 4: "keepalive", 5: "route-refresh" };
  let states = 0;
  let peerTables = 0;
  let ribRecords = 0;
  let ribEntries = 0;
  for (const h of hs) {
    if (h.type === 16 || h.type === 17) {
      if (h.subtype === 0 || h.subtype === 5) states++;
      else {
        const k = names[bgpMessageAt(b, h).type]!;
        messages[k] = (messages[k] ?? 0) + 1;
      }
    } else if (h.type === 13) {
      if (h.subtype === 1) peerTables++;
      else {
        ribRecords++;
        ribEntries += countRibEntries(b, h);
      }
    }
  }
  return { records: hs.length, states, messages, peerTables, ribRecords, ribEntries };
}

// ------------------------------------------------- expected (observed) counts

const EXPECTED: Record<FileName, { records: number; states: number; messages: Record<string, number>; peerTables: number; ribRecords: number; ribEntries: number; announced: number }> = {
  bird_bgp: { records: 29, states: 12, messages: { open: 2, keepalive: 5, update: 8, "route-refresh": 1, notification: 1 }, peerTables: 0, ribRecords: 0, ribEntries: 0, announced: 14 },
  bird6_bgp: { records: 29, states: 12, messages: { open: 2, keepalive: 5, update: 8, "route-refresh": 1, notification: 1 }, peerTables: 0, ribRecords: 0, ribEntries: 0, announced: 14 },
  "bird-mrtdump_bgp": { records: 27, states: 12, messages: { open: 2, keepalive: 5, update: 6, "route-refresh": 1, notification: 1 }, peerTables: 0, ribRecords: 0, ribEntries: 0, announced: 12 },
  "bird6-mrtdump_bgp": { records: 27, states: 12, messages: { open: 2, keepalive: 5, update: 6, "route-refresh": 1, notification: 1 }, peerTables: 0, ribRecords: 0, ribEntries: 0, announced: 12 },
  "bird-mrtdump_rib": { records: 14, states: 0, messages: {}, peerTables: 2, ribRecords: 12, ribEntries: 18, announced: 0 },
  "bird6-mrtdump_rib": { records: 9, states: 0, messages: {}, peerTables: 2, ribRecords: 7, ribEntries: 10, announced: 0 },
};

function ourCounts(recs: MrtRecord[]) {
  const messages: Record<string, number> = {};
  let states = 0;
  let peerTables = 0;
  let ribRecords = 0;
  let ribEntries = 0;
  let announced = 0;
  for (const r of recs) {
    if (r.kind === "state") states++;
    else if (r.kind === "peer-index") peerTables++;
    else if (r.kind === "rib") {
      ribRecords++;
      ribEntries += r.entries.length;
    } else if (r.kind === "message") {
      const k = r.message?.type ?? "malformed";
      messages[k] = (messages[k] ?? 0) + 1;
      if (r.message?.type === "update") {
        const u = r.message.update;
        announced += (u.nlri?.count ?? 0) + (u.mpReach?.nlri?.count ?? 0);
      }
    }
  }
  return { records: recs.length, states, messages, peerTables, ribRecords, ribEntries, announced };
}

// ---------------------------------------------------------------- tests

describe("reference data", () => {
  test("all six dumps are vendored, unaltered, next to the tests", () => {
    expect(FILES.length).toBe(6);
    for (const f of FILES) {
      expect(existsSync(join(DATA_DIR, f))).toBe(true);
      expect(load(f).length).toBeGreaterThan(0);
    }
  });
});

describe("every record of every file decodes", () => {
  for (const f of FILES) {
    test(f, () => {
      const recs = decodeAll(f, cleanOpts(f));
      expect(recs.length).toBeGreaterThan(0);
      for (const r of recs) {
        expect(r.kind).not.toBe("unknown");
        if (r.kind === "message") {
          expect(r.error).toBeNull();
          expect(r.message).not.toBeNull();
          if (r.message?.type === "update") expect(r.message.update.issues).toEqual([]);
        }
        if (r.kind === "rib") {
          for (const e of r.entries) {
            expect(e.error).toBeNull();
            expect(e.issues).toEqual([]);
          }
        }
      }
    });
  }

  test("the correctly labelled dumps decode without any option, with no fallback", () => {
    for (const f of FILES) {
      if (MISLABELLED_ADDPATH.includes(f)) continue;
      for (const r of decodeAll(f)) {
        if (r.kind !== "message") continue;
        expect(r.error).toBeNull();
        expect(r.fallback).toBeNull();
      }
    }
  });

  test("with no option, every vendored BIRD dump still decodes every record", () => {
    for (const f of FILES) {
      const recs = decodeAll(f);
      expect(recs.length).toBe(EXPECTED[f].records);
      for (const r of recs) {
        expect(r.kind).not.toBe("unknown");
        if (r.kind !== "message") continue;
        expect(r.error).toBeNull();
        if (r.message?.type === "update") expect(r.message.update.issues).toEqual([]);
      }
    }
  });

  // bird_bgp / bird6_bgp: ADD-PATH NLRI under MESSAGE_AS4 (BIRD does not use
  // the RFC 8050 ADDPATH subtypes). Read as the subtype says, those NLRI do
  // not parse; the peer's recorded OPEN offers ADD-PATH send, so the decoder
  // falls back to path identifiers and says so in `fallback`.
  test("bird_bgp: UPDATEs that only parse with path ids fall back to them (the peer's OPEN offered ADD-PATH)", () => {
    const msgs = decodeAll("bird_bgp").filter((r): r is MessageRecord => r.kind === "message");
    expect(msgs.filter((m) => m.error)).toEqual([]);
    const open = msgs.find((m) => m.message?.type === "open")!;
    const caps = open.message!.type === "open" ? open.message!.open.capabilities : [];
    expect(caps.some((c) => c.type === "add-path" && c.families.some((f) => f.afi === 1 && f.safi === 1 && f.send))).toBe(true);
    const withNlri = msgs.filter((m) => m.message?.type === "update" && m.message.update.nlri);
    expect(withNlri.length).toBe(6);
    for (const m of withNlri) {
      expect(m.header.subtype).toBe(4);
      expect(m.addPath).toBe(true);
      expect(m.fallback).toBe("BGP4MP_MESSAGE_AS4 (4) says no path identifiers, but the NLRI only parse with them (the sender's OPEN offered ADD-PATH)");
    }
    // End-of-RIB (no NLRI) parses as labelled: no fallback
    const eor = msgs.filter((m) => m.message?.type === "update" && m.message.update.endOfRib);
    expect(eor.length).toBe(2);
    for (const m of eor) expect([m.addPath, m.fallback]).toEqual([false, null]);
    // Independent check on the bytes: the first NLRI is path id 0,0,0,2 then a /24 of 172.17.0.0.
    const first = withNlri[0]!;
    const body = first.raw.subarray(19);
    const nlriStart = 4 + ((body[2]! << 8) | body[3]!);
    expect(Array.from(body.subarray(nlriStart, nlriStart + 8))).toEqual([0, 0, 0, 2, 24, 172, 17, 0]);
    const u = first.message!.type === "update" ? first.message!.update : null;
    const p = blockPrefixes(u!.nlri)[0]!;
    expect(prefixToString(p)).toBe("172.17.0.0/24");
    expect(p.pathId).toBe(2);
  });

  test("bird6_bgp: ADD-PATH MP_REACH_NLRI, a fallback from MESSAGE_AS4 (the peer's OPEN offered ADD-PATH)", () => {
    const msgs = decodeAll("bird6_bgp").filter((r): r is MessageRecord => r.kind === "message");
    expect(msgs.filter((m) => m.error)).toEqual([]);
    const withNlri = msgs.filter((m) => m.message?.type === "update" && m.message.update.mpReach?.nlri);
    expect(withNlri.length).toBe(6);
    for (const m of withNlri) {
      expect(m.header.subtype).toBe(4);
      expect(m.addPath).toBe(true);
      expect(m.fallback).toContain("only parse with them");
      const u = m.message!.type === "update" ? m.message!.update : null;
      for (const p of blockPrefixes(u!.mpReach!.nlri)) expect(p.pathId).toBeGreaterThan(0);
    }
  });

  test("runMrt decodes the mislabelled dumps with no option, and --add-path still works", async () => {
    const file = join(DATA_DIR, "bird_bgp");
    const plain = await run(file);
    expect(plain.err).toBe("");
    expect(plain.code).toBe(0);
    expect(plain.out.split("\n").filter((l) => l.includes("malformed")).length).toBe(0);
    expect(plain.out.split("\n").filter((l) => l.includes("(fallback: BGP4MP_MESSAGE_AS4 (4) says no path identifiers")).length).toBe(6);
    const json = (await run(file, { json: true })).out.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(json.filter((o) => typeof o.fallback === "string").length).toBe(6);
    const forced = await run(file, { addPath: true });
    expect(forced.code).toBe(0);
    expect(forced.err).toBe("");
    expect(forced.out).not.toContain("fallback");
  });
});

describe("counts, cross-checked with an independent walker", () => {
  for (const f of FILES) {
    test(f, () => {
      const bytes = load(f);
      const ind = independentCounts(bytes);
      const ours = ourCounts(decodeAll(f, cleanOpts(f)));
      const exp = EXPECTED[f];
      expect(ind).toEqual({ records: exp.records, states: exp.states, messages: exp.messages, peerTables: exp.peerTables, ribRecords: exp.ribRecords, ribEntries: exp.ribEntries });
      expect(ours).toEqual(exp);
      // record offsets agree with the independent header walk
      const offsets = [...parseMrt(bytes, cleanOpts(f))].map((r) => r.header.offset);
      expect(offsets).toEqual(walkHeaders(bytes).map((h) => h.offset));
    });
  }

  test("JSON and text output: one line per RIB entry, else one per record", async () => {
    for (const f of FILES) {
      const exp = EXPECTED[f];
      const lines = exp.records - exp.ribRecords + exp.ribEntries;
      const j = await run(join(DATA_DIR, f), { json: true, addPath: MISLABELLED_ADDPATH.includes(f) });
      expect(j.code).toBe(0);
      const objs = j.out.trimEnd().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(objs.length).toBe(lines);
      expect(objs.filter((o) => o.type === "rib").length).toBe(exp.ribEntries);
      expect(objs.filter((o) => o.type === "message").length).toBe(Object.values(exp.messages).reduce((a, b) => a + b, 0));
      expect(objs.filter((o) => o.type === "state").length).toBe(exp.states);
      const t = await run(join(DATA_DIR, f), { addPath: MISLABELLED_ADDPATH.includes(f) });
      expect(t.out.trimEnd().split("\n").length).toBe(lines);
    }
  });
});

// ---------------------------------------------------------------- re-encoding

/** Standard optional/transitive flag bits of the attributes the codec knows. */
const STD_FLAGS: Record<number, number> = {
  1: 0x40, 2: 0x40, 3: 0x40, 4: 0x80, 5: 0x40, 6: 0x40, 7: 0xc0, 8: 0xc0, 9: 0x80, 10: 0x80,
  14: 0x80, 15: 0x80, 16: 0xc0, 17: 0xc0, 18: 0xc0, 32: 0xc0, 35: 0xc0,
};

/** Every prefix of an NLRI field has its host bits clear. */
function hostBitsClear(b: Uint8Array, start: number, end: number, addPath: boolean): boolean {
  let o = start;
  while (o < end) {
    if (addPath) o += 4;
    const len = b[o]!;
    const n = (len + 7) >> 3;
    if (len & 7 && b[o + n]! & (0xff >> (len & 7))) return false;
    o += 1 + n;
  }
  return true;
}

/**
 * Canonical UPDATE (what the encoder produces, so a lossless codec must
 * reproduce it byte for byte):
 *   1. path attributes in strictly ascending type order (so no duplicates);
 *   2. the extended-length flag set exactly on attributes longer than 255 bytes;
 *   3. only attribute types the codec knows (no unknown attributes);
 *   4. each attribute's optional/transitive bits the standard ones for its type,
 *      the Partial bit only on optional transitive attributes (where RFC 4271 §5
 *      says it must be kept), the four unused low bits clear;
 *   5. MP_REACH_NLRI reserved byte 0;
 *   6. no host bits set in any prefix (withdrawn, NLRI, MP_REACH, MP_UNREACH);
 *   7. the decoder reported no issue (nothing discarded or treated as withdrawn).
 * Returns null when canonical, else the first rule broken.
 */
function nonCanonicalUpdate(raw: Uint8Array, m: MessageRecord): string | null {
  const b = raw.subarray(19);
  const wl = (b[0]! << 8) | b[1]!;
  const tal = (b[2 + wl]! << 8) | b[3 + wl]!;
  const as = 4 + wl;
  const ae = as + tal;
  if (!hostBitsClear(b, 2, 2 + wl, m.addPath) || !hostBitsClear(b, ae, b.length, m.addPath)) return "host bits";
  let prev = -1;
  for (let o = as; o < ae; ) {
    const flags = b[o]!;
    const type = b[o + 1]!;
    const ext = (flags & 0x10) !== 0;
    const len = ext ? (b[o + 2]! << 8) | b[o + 3]! : b[o + 2]!;
    const v = o + (ext ? 4 : 3);
    if (type <= prev) return "attribute order";
    prev = type;
    if (ext !== len > 255) return "extended length";
    if (STD_FLAGS[type] === undefined) return "unknown attribute";
    if ((flags & 0xcf) !== STD_FLAGS[type] || (flags & 0x20 && STD_FLAGS[type] !== 0xc0)) return "flags";
    if (type === 14) {
      const afi = (b[v]! << 8) | b[v + 1]!;
      const nhl = b[v + 3]!;
      if (b[v + 4 + nhl] !== 0) return "MP_REACH reserved byte";
      if (!hostBitsClear(b, v + 5 + nhl, v + len, m.addPath) || (afi !== 1 && afi !== 2)) return "host bits";
    }
    if (type === 15 && !hostBitsClear(b, v + 3, v + len, m.addPath)) return "host bits";
    o = v + len;
  }
  if (m.message?.type === "update" && m.message.update.issues.length) return "decoder issues";
  return null;
}

/**
 * Canonical OPEN: every optional parameter is a Capabilities parameter holding
 * exactly one capability, the parameters fit the 1-byte length (no RFC 9072
 * format), the multiprotocol reserved byte is 0, and graceful restart uses no
 * reserved flag bits.
 */
function nonCanonicalOpen(raw: Uint8Array): string | null {
  const b = raw.subarray(19);
  const optLen = b[9]!;
  if (optLen === 255 && b[10] === 255) return "extended parameters";
  for (let o = 10; o < 10 + optLen; ) {
    const type = b[o]!;
    const len = b[o + 1]!;
    if (type !== 2) return "non-capability parameter";
    const code = b[o + 2]!;
    const clen = b[o + 3]!;
    if (clen + 2 !== len) return "several capabilities in one parameter";
    const v = o + 4;
    if (code === 1 && b[v + 2] !== 0) return "multiprotocol reserved byte";
    if (code === 64) {
      if (b[v]! & 0x30) return "graceful restart reserved bits";
      for (let f = v + 2; f < v + clen; f += 4) if (b[f + 3]! & 0x7f) return "graceful restart family flags";
    }
    o += 2 + len;
  }
  return null;
}

/**
 * The canonical form of an UPDATE as an independent rewrite of its bytes:
 * attributes sorted by type, extended-length flag only when needed, the
 * Partial bit dropped where RFC 4271 §5 does not ask to keep it and the low
 * flag bits cleared. Everything else (values, NLRI) is kept as is.
 */
function normalizeUpdate(raw: Uint8Array): Uint8Array {
  const b = raw.subarray(19);
  const wl = (b[0]! << 8) | b[1]!;
  const tal = (b[2 + wl]! << 8) | b[3 + wl]!;
  const list: { flags: number; type: number; value: Uint8Array }[] = [];
  for (let o = 4 + wl; o < 4 + wl + tal; ) {
    const flags = b[o]!;
    const ext = (flags & 0x10) !== 0;
    const len = ext ? (b[o + 2]! << 8) | b[o + 3]! : b[o + 2]!;
    const v = o + (ext ? 4 : 3);
    list.push({ flags, type: b[o + 1]!, value: b.subarray(v, v + len) });
    o = v + len;
  }
  list.sort((x, y) => x.type - y.type);
  const attrs = new W();
  for (const a of list) {
    let f = a.flags & 0xe0;
    if ((f & 0xc0) !== 0xc0) f &= ~0x20;
    if (a.value.length > 255) attrs.u8(f | 0x10, a.type).u16(a.value.length);
    else attrs.u8(f, a.type, a.value.length);
    attrs.bytes(a.value);
  }
  const ab = attrs.get();
  const body = cat(b.subarray(0, 2 + wl), new W().u16(ab.length).get(), ab, b.subarray(4 + wl + tal));
  return frame(2, body);
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

describe("re-encoding decoded messages reproduces the original bytes", () => {
  const results = { update: { ok: 0, failed: [] as string[], nonCanonical: 0, why: [] as string[], normalizedOk: 0, normalizedFailed: [] as string[] }, open: { ok: 0, failed: [] as string[], nonCanonical: 0 }, keepalive: 0, notification: 0, refresh: 0 };
  for (const f of FILES) {
    for (const r of decodeAll(f, cleanOpts(f))) {
      if (r.kind !== "message" || !r.message) continue;
      const m = r.message;
      const where = `${f}@${r.header.offset}`;
      switch (m.type) {
        case "update": {
          const why = nonCanonicalUpdate(r.raw, r);
          const u = m.update;
          const enc = encodeUpdate(
            {
              withdrawn: blockPrefixes(u.withdrawn),
              attrs: u.attrs,
              mpReach: u.mpReach ? { afi: u.mpReach.afi, safi: u.mpReach.safi, nextHop: u.mpReach.nextHop, nlri: blockPrefixes(u.mpReach.nlri) } : null,
              mpUnreach: u.mpUnreach ? { afi: u.mpUnreach.afi, safi: u.mpUnreach.safi, withdrawn: blockPrefixes(u.mpUnreach.withdrawn) } : null,
              nlri: blockPrefixes(u.nlri),
            },
            { fourOctetAs: r.fourOctetAs, addPathSend: () => r.addPath },
            false,
          );
          if (why) {
            results.update.nonCanonical++;
            results.update.why.push(`${where}: ${why}`);
          } else if (eq(enc, r.raw)) results.update.ok++;
          else results.update.failed.push(where);
          if (eq(enc, normalizeUpdate(r.raw))) results.update.normalizedOk++;
          else results.update.normalizedFailed.push(where);
          break;
        }
        case "open":
          if (nonCanonicalOpen(r.raw)) results.open.nonCanonical++;
          else if (eq(encodeOpen(m.open), r.raw)) results.open.ok++;
          else results.open.failed.push(where);
          break;
        case "keepalive":
          expect(eq(KEEPALIVE, r.raw)).toBe(true);
          results.keepalive++;
          break;
        case "notification":
          expect(eq(encodeNotification(m.notification.code, m.notification.subcode, m.notification.data), r.raw)).toBe(true);
          results.notification++;
          break;
        case "route-refresh":
          expect(eq(encodeRouteRefresh(m.refresh), r.raw)).toBe(true);
          results.refresh++;
          break;
      }
    }
  }

  test("UPDATE: every canonical message round-trips", () => {
    expect(results.update.failed).toEqual([]);
    expect(results.update.ok).toBeGreaterThanOrEqual(14);
    // BIRD sets the extended-length flag on every MP_REACH/MP_UNREACH_NLRI and
    // puts MP_REACH_NLRI last: all its IPv6 UPDATEs are non-canonical.
    expect(results.update.nonCanonical).toBe(14);
    expect(results.update.why.every((w) => w.startsWith("bird6") && /: (extended length|attribute order)$/.test(w))).toBe(true);
  });
  test("UPDATE: every message re-encodes to its independently normalized bytes", () => {
    expect(results.update.normalizedFailed).toEqual([]);
    expect(results.update.normalizedOk).toBe(28);
  });
  test("OPEN: every canonical message round-trips", () => {
    expect(results.open.failed).toEqual([]);
    expect(results.open.ok).toBeGreaterThanOrEqual(8);
    expect(results.open.nonCanonical).toBe(0);
  });
  test("KEEPALIVE, NOTIFICATION, ROUTE-REFRESH round-trip", () => {
    expect(results.keepalive).toBe(20);
    expect(results.notification).toBe(4);
    expect(results.refresh).toBe(4);
  });
  test("a recognised optional transitive attribute keeps its Partial bit (RFC 4271 §5)", () => {
    // bird_bgp@769: LARGE_COMMUNITY arrives with flags 0xe0 (optional, transitive, partial).
    const r = decodeAll("bird_bgp", { assumeAddPath: true }).find((x) => x.header.offset === 769) as MessageRecord;
    const u = r.message!.type === "update" ? r.message!.update : null;
    expect(u!.attrs!.partial).toEqual([32]);
    const enc = encodeUpdate({ attrs: u!.attrs, nlri: blockPrefixes(u!.nlri) }, { fourOctetAs: true, addPathSend: () => true }, false);
    expect(eq(enc, r.raw)).toBe(true);
    expect(enc[enc.length - 8 - 36 - 3]).toBe(0xe0);
  });

  test("the canonical check rejects what it should", () => {
    const recs = decodeAll("bird-mrtdump_bgp").filter((r): r is MessageRecord => r.kind === "message" && r.message?.type === "update");
    const m = recs[0]!;
    expect(nonCanonicalUpdate(m.raw, m)).toBeNull();
    // attributes start at 19 + 4: ORIGIN (flags, type, length 1, value) then AS_PATH.
    expect(m.raw[23]).toBe(0x40);
    const partial = m.raw.slice();
    partial[23] = 0x60; // Partial bit on a well-known attribute
    expect(nonCanonicalUpdate(partial, m)).toBe("flags");
    const swapped = m.raw.slice();
    swapped[24] = 5; // ORIGIN's type byte -> 5 (same flags), now out of order before AS_PATH (2)
    expect(nonCanonicalUpdate(swapped, m)).toBe("attribute order");
    // ORIGIN rewritten with a needless extended length: 0x50 1 0x0001 value
    const extended = cat(m.raw.subarray(0, 23), Uint8Array.of(0x50, 1, 0, 1, m.raw[26]!), m.raw.subarray(27));
    extended[17] = extended[17]! + 1; // message length
    extended[22] = extended[22]! + 1; // total path attribute length
    expect(nonCanonicalUpdate(extended, m)).toBe("extended length");
    expect(normalizeUpdate(extended)).toEqual(m.raw);
  });
});

// ---------------------------------------------------------------- JSON shape

describe("JSON objects", () => {
  test("first RIB entries of bird-mrtdump_rib, checked against the bytes", () => {
    const bytes = load("bird-mrtdump_rib");
    const hs = walkHeaders(bytes);
    const objs = decodeAll("bird-mrtdump_rib").flatMap(recordObjects);
    // First RIB record: RIB_IPV4_UNICAST, prefix length 0, one entry from peer 0, no attributes.
    expect(hs[1]!.subtype).toBe(2);
    expect(bytes[hs[1]!.body + 4]).toBe(0);
    expect(objs[1]).toEqual({
      type: "rib",
      timestamp: 1486801684,
      prefix: "0.0.0.0/0",
      peer: "0.0.0.0",
      peerAs: 0,
      family: "ipv4-unicast",
      originated: 1486801674,
      nextHop: null,
      asPath: [],
      origin: "?",
      med: null,
      localPref: null,
      communities: [],
      largeCommunities: [],
    });
    // First entry with attributes: record 4 (RIB_IPV4_UNICAST_ADDPATH), 172.17.0.0/24.
    const h = hs[4]!;
    expect(h.subtype).toBe(8);
    const dv = new DataView(bytes.buffer, bytes.byteOffset);
    const prefixOff = h.body + 4;
    expect(Array.from(bytes.subarray(prefixOff, prefixOff + 4))).toEqual([24, 172, 17, 0]);
    const entry = prefixOff + 4 + 2; // after prefix and entry count
    const pathId = dv.getUint32(entry + 6);
    const attrs = entry + 12;
    // ORIGIN (4 bytes), then AS_PATH header (3) and segment header (2): first 4-byte ASN
    expect(bytes[attrs + 5]).toBe(2); // AS_PATH type code
    const firstAsn = dv.getUint32(attrs + 4 + 3 + 2);
    const segLen = bytes[attrs + 4 + 3 + 1]!;
    const o = objs.find((x) => x.prefix === "172.17.0.0/24")!;
    expect(o).toMatchObject({
      type: "rib",
      timestamp: dv.getUint32(h.offset),
      prefix: "172.17.0.0/24",
      peer: "192.168.0.10",
      peerAs: 65000,
      pathId,
      nextHop: "192.168.0.10",
      origin: "igp",
      med: 10,
      localPref: 100,
      communities: ["65000:100", "65000:200", "65000:300"],
      largeCommunities: [],
      originatorId: "172.16.0.1",
      clusterList: ["172.16.0.10"],
    });
    expect(pathId).toBe(2);
    expect(firstAsn).toBe(4200000000);
    expect((o.asPath as number[]).length).toBe(segLen);
    expect((o.asPath as number[])[0]).toBe(firstAsn);
    expect(o.asPath).toEqual([4200000000, 4200000000, 4200000000, 64512, 64512, 64512]);
  });

  test("IPv6 RIB entries (bird6-mrtdump_rib) carry no MP_REACH_NLRI, so no next hop", () => {
    const objs = decodeAll("bird6-mrtdump_rib").flatMap(recordObjects);
    const o = objs.find((x) => x.prefix === "fd01:1::/64" && x.pathId === 1)!;
    expect(o).toMatchObject({ type: "rib", peer: "fd02::10", peerAs: 65000, nextHop: null, med: 10, localPref: 100, family: "ipv6-unicast" });
  });

  test("an UPDATE from bird-mrtdump_bgp", () => {
    const bytes = load("bird-mrtdump_bgp");
    const h = walkHeaders(bytes).find((x) => x.offset === 390)!;
    const msg = bgpMessageAt(bytes, h);
    expect(msg.type).toBe(2);
    const rec = [...parseMrt(bytes)].find((r) => r.header.offset === 390)!;
    const [o] = recordObjects(rec);
    expect(o).toEqual({
      type: "message",
      kind: "update",
      timestamp: 1486801678,
      peer: "192.168.0.10",
      peerAs: 65000,
      localAs: 65000,
      localAddress: "192.168.0.17",
      direction: "received",
      announced: ["172.17.0.0/24", "172.17.1.0/24", "172.17.2.0/24"],
      withdrawn: [],
      announcedPathIds: [2, 2, 2],
      withdrawnPathIds: [],
      asPath: [4200000000, 4200000000, 4200000000, 64512, 64512, 64512],
      origin: "igp",
      med: 10,
      localPref: 100,
      communities: ["65000:100", "65000:200", "65000:300"],
      largeCommunities: [],
      originatorId: "172.16.0.1",
      clusterList: ["172.16.0.10"],
      nextHop: "192.168.0.10",
    });
    // NEXT_HOP bytes in the message are 192.168.0.10
    const raw = bytes.subarray(msg.start, h.end);
    const s = raw.findIndex((_, i) => raw[i] === 0x40 && raw[i + 1] === 3 && raw[i + 2] === 4);
    expect(Array.from(raw.subarray(s + 3, s + 7))).toEqual([192, 168, 0, 10]);
  });

  test("an IPv6 UPDATE uses the MP_REACH next hop", () => {
    const recs = decodeAll("bird6-mrtdump_bgp");
    const o = recs.flatMap(recordObjects).find((x) => x.kind === "update" && (x.announced as string[]).length > 0)!;
    expect(o).toMatchObject({ peer: "fd02::10", nextHop: "fd02::10", announced: ["fd01:1::/64", "fd01:1:1::/64", "fd01:1:2::/64"], announcedPathIds: [1, 1, 1] });
  });

  test("OPEN, NOTIFICATION, state change, End-of-RIB, ROUTE-REFRESH", () => {
    const objs = decodeAll("bird-mrtdump_bgp").flatMap(recordObjects);
    expect(objs[0]).toEqual({
      type: "state",
      timestamp: 1486801674,
      peer: "0.0.0.0",
      peerAs: 65000,
      localAs: 65000,
      localAddress: "0.0.0.0",
      oldState: "Idle",
      newState: "Active",
    });
    const open = objs.find((o) => o.kind === "open")!;
    expect(open).toMatchObject({ type: "message", peer: "192.168.0.10", peerAs: 65000, localAs: 65000, asn: 65000, holdTime: 90, routerId: "172.16.0.10" });
    expect(open.capabilities).toContain("4-octet AS 65000");
    expect(open.capabilities).toContain("add-path ipv4-unicast:send/receive ipv6-unicast:send/receive");
    expect(objs.find((o) => o.kind === "notification")).toMatchObject({ code: 6, subcode: 4, text: "Cease/Administrative Reset (6/4)" });
    expect(objs.find((o) => o.endOfRib)).toMatchObject({ kind: "update", announced: [], withdrawn: [], endOfRib: "ipv4-unicast" });
    expect(objs.find((o) => o.kind === "route-refresh")).toMatchObject({ family: "ipv4-unicast", subtype: 0 });
    expect(objs.filter((o) => o.type === "state").map((o) => o.newState)).toEqual([
      "Active", "Connect", "OpenSent", "OpenConfirm", "Established", "Idle", "Idle", "Active", "Connect", "OpenSent", "OpenConfirm", "Established",
    ]);
  });

  test("human lines", async () => {
    const { code, out } = await run(join(DATA_DIR, "bird-mrtdump_rib"));
    expect(code).toBe(0);
    const lines = out.trimEnd().split("\n");
    expect(lines[0]).toBe('2017-02-11T08:28:04Z PEER_INDEX_TABLE collector 192.168.0.16 view "master" 2 peers: #0 0.0.0.0 AS0, #1 192.168.0.10 AS65000');
    expect(lines[4]).toBe(
      "2017-02-11T08:28:07Z RIB 172.17.0.0/24 id 2 from 192.168.0.10 AS65000 nh 192.168.0.10 path 4200000000 4200000000 4200000000 64512 64512 64512 origin igp med 10 lp 100 comm 65000:100,65000:200,65000:300 originator 172.16.0.1 cluster 172.16.0.10",
    );
    const bgp = (await run(join(DATA_DIR, "bird-mrtdump_bgp"))).out.split("\n");
    expect(bgp).toContain("2017-02-11T08:28:57Z NOTIFICATION from 192.168.0.10 AS65000 Cease/Administrative Reset (6/4)");
    expect(bgp).toContain("2017-02-11T08:27:58Z UPDATE from 192.168.0.10 AS65000 end-of-rib ipv4-unicast");
  });
});

// ---------------------------------------------------------------- truncation / corruption

describe("truncated and corrupt files", () => {
  const bgp = load("bird-mrtdump_bgp");
  const hs = walkHeaders(bgp);
  const cutRec = hs.find((h) => h.offset === 390)!; // an UPDATE, 150-byte body
  const validBefore = hs.filter((h) => h.offset < cutRec.offset).length;

  test("cut in the middle of a record", async () => {
    const file = tmpFile("cut-mid", bgp.subarray(0, cutRec.offset + 12 + 50));
    const { code, out, err } = await run(file, { json: true });
    expect(code).toBe(1);
    expect(out.trimEnd().split("\n").length).toBe(validBefore);
    expect(JSON.parse(out.trimEnd().split("\n").at(-1)!)).toMatchObject({ type: "state", newState: "Established" });
    expect(err).toBe(`bgpctl: ${file}: truncated record: length 150 but only 50 bytes follow the header at byte offset 390\n`);
  });

  test("cut inside a record header", async () => {
    const file = tmpFile("cut-header", bgp.subarray(0, cutRec.offset + 5));
    const { code, out, err } = await run(file);
    expect(code).toBe(1);
    expect(out.trimEnd().split("\n").length).toBe(validBefore);
    expect(err).toBe(`bgpctl: ${file}: truncated record header (5 of 12 bytes) at byte offset 390\n`);
  });

  test("cut in a RIB dump", async () => {
    const rib = load("bird-mrtdump_rib");
    const h = walkHeaders(rib)[5]!;
    const file = tmpFile("cut-rib", rib.subarray(0, h.offset + 100));
    const { code, out, err } = await run(file, { json: true });
    expect(code).toBe(1);
    // peer table + RIB records 1..4 (entries 1 + 1 + 1 + 2)
    expect(out.trimEnd().split("\n").length).toBe(1 + 5);
    expect(err).toBe(`bgpctl: ${file}: truncated record: length ${h.length} but only 88 bytes follow the header at byte offset ${h.offset}\n`);
  });

  test("length field too large", async () => {
    const b = bgp.slice();
    new DataView(b.buffer).setUint32(cutRec.offset + 8, 150 + 5000);
    const file = tmpFile("len-large", b);
    const { code, out, err } = await run(file);
    expect(code).toBe(1);
    expect(out.trimEnd().split("\n").length).toBe(validBefore);
    expect(err).toBe(`bgpctl: ${file}: truncated record: length 5150 but only ${bgp.length - cutRec.offset - 12} bytes follow the header at byte offset 390\n`);
  });

  test("absurd length field: rejected at once, nothing allocated for it", async () => {
    const b = bgp.slice();
    new DataView(b.buffer).setUint32(cutRec.offset + 8, 0xfffffff0);
    const file = tmpFile("len-huge", b);
    const { code, err } = await run(file);
    expect(code).toBe(1);
    expect(err).toBe(`bgpctl: ${file}: record length 4294967280 exceeds the limit of 67108864 bytes at byte offset 390\n`);
    const f = new MrtFramer(1000);
    f.push(b.subarray(cutRec.offset, cutRec.offset + 12));
    expect(() => f.next()).toThrow(MrtError);
  });

  test("length field too small", async () => {
    const b = bgp.slice();
    new DataView(b.buffer).setUint32(cutRec.offset + 8, 100);
    const file = tmpFile("len-small", b);
    const { code, out, err } = await run(file);
    expect(code).toBe(1);
    expect(out.trimEnd().split("\n").length).toBe(validBefore);
    expect(err).toBe(`bgpctl: ${file}: BGP message length 130 does not match the 80 bytes left in the record at byte offset 390\n`);
  });

  test("the readers yield every valid record, then throw MrtError with the offset", async () => {
    const cut = bgp.subarray(0, cutRec.offset + 20);
    const got: number[] = [];
    let error: unknown;
    try {
      for (const r of parseMrt(cut)) got.push(r.header.offset);
    } catch (e) {
      error = e;
    }
    expect(got).toEqual(hs.slice(0, validBefore).map((h) => h.offset));
    expect(error).toBeInstanceOf(MrtError);
    expect((error as MrtError).offset).toBe(390);

    const chunks = Array.from({ length: Math.ceil(cut.length / 7) }, (_, i) => cut.slice(i * 7, i * 7 + 7));
    const got2: number[] = [];
    error = undefined;
    try {
      for await (const r of readMrt(chunks)) got2.push(r.header.offset);
    } catch (e) {
      error = e;
    }
    expect(got2).toEqual(got);
    expect((error as MrtError).offset).toBe(390);
  });

  test("missing file", async () => {
    const file = join(tmp, "does-not-exist");
    const { code, out, err } = await run(file);
    expect(code).toBe(1);
    expect(out).toBe("");
    expect(err).toBe(`bgpctl: ${file}: no such file\n`);
  });
});

// ---------------------------------------------------------------- streaming

describe("streaming", () => {
  test("any chunking gives the same records as the whole buffer", async () => {
    for (const f of FILES) {
      const bytes = load(f);
      const opts = cleanOpts(f);
      const whole = JSON.stringify([...parseMrt(bytes, opts)].flatMap(recordObjects));
      for (const size of [1, 5, 13, 64, 4096]) {
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < bytes.length; i += size) chunks.push(bytes.slice(i, i + size));
        const got: MrtRecord[] = [];
        for await (const r of readMrt(chunks, opts)) got.push(r);
        expect(JSON.stringify(got.flatMap(recordObjects))).toBe(whole);
      }
    }
  });

  test("gzip-compressed files are read", async () => {
    const gz = gzipSync(load("bird-mrtdump_rib"));
    const file = tmpFile("rib.gz", gz);
    const a = await run(file, { json: true });
    const b = await run(join(DATA_DIR, "bird-mrtdump_rib"), { json: true });
    expect(a.code).toBe(0);
    expect(a.out).toBe(b.out);
  });
});

// ---------------------------------------------------------------- synthetic records

class W {
  b: number[] = [];
  u8(...v: number[]): this {
    for (const x of v) this.b.push(x & 0xff);
    return this;
  }
  u16(v: number): this {
    return this.u8(v >> 8, v);
  }
  u32(v: number): this {
    return this.u8(v >>> 24, v >>> 16, v >>> 8, v);
  }
  bytes(a: ArrayLike<number>): this {
    for (let i = 0; i < a.length; i++) this.b.push(a[i]!);
    return this;
  }
  get(): Uint8Array {
    return Uint8Array.from(this.b);
  }
}

function mrt(type: number, subtype: number, body: Uint8Array, ts = 1700000000, micro?: number): Uint8Array {
  const w = new W().u32(ts).u16(type).u16(subtype).u32(body.length + (micro === undefined ? 0 : 4));
  if (micro !== undefined) w.u32(micro);
  return w.bytes(body).get();
}

function cat(...parts: Uint8Array[]): Uint8Array {
  const w = new W();
  for (const p of parts) w.bytes(p);
  return w.get();
}

function attrs(a: Partial<PathAttributes>): PathAttributes {
  return { ...emptyAttributes(), ...a };
}

const V4 = (s: string) => Uint8Array.from(s.split(".").map(Number));
function p4(s: string, len: number, pathId?: number): Prefix {
  const p: Prefix = { afi: AFI.IPV4, len, addr: V4(s) };
  if (pathId !== undefined) p.pathId = pathId;
  return p;
}
const FD02_1 = Uint8Array.from([0xfd, 0x02, ...new Array<number>(13).fill(0), 1]);

function bgp4mpBody(as4: boolean, peerAs: number, localAs: number, msg: Uint8Array): Uint8Array {
  const w = new W();
  if (as4) w.u32(peerAs).u32(localAs);
  else w.u16(peerAs).u16(localAs);
  return w.u16(3).u16(1).bytes(V4("10.0.0.1")).bytes(V4("10.0.0.2")).bytes(msg).get();
}

function peerTable(peers: { ip: Uint8Array; asn: number }[]): Uint8Array {
  const w = new W().bytes(V4("192.0.2.254")).u16(0).u16(peers.length);
  for (const p of peers) w.u8((p.ip.length === 16 ? 1 : 0) | 2).bytes(V4("1.1.1.1")).bytes(p.ip).u32(p.asn);
  return mrt(13, 1, w.get());
}

describe("synthetic records", () => {
  test("BGP4MP_ET: microseconds are part of the length, times print with them", () => {
    const rec = mrt(17, 4, bgp4mpBody(true, 4200000001, 65002, KEEPALIVE), 1700000000, 123456);
    const [r] = [...parseMrt(rec)];
    expect(r!.kind).toBe("message");
    const m = r as MessageRecord;
    expect(m.header.microseconds).toBe(123456);
    expect(m.header.length).toBe(4 + 8 + 4 + 8 + 19);
    expect(m.peer).toEqual({ peerAs: 4200000001, localAs: 65002, ifIndex: 3, afi: 1, peerAddress: "10.0.0.1", localAddress: "10.0.0.2" });
    expect(m.message).toEqual({ type: "keepalive" });
    expect(recordTime(m.header)).toBe("2023-11-14T22:13:20.123456Z");
    expect(recordObjects(m)[0]).toMatchObject({ kind: "keepalive", timestamp: 1700000000, microseconds: 123456 });
    expect(() => [...parseMrt(mrt(17, 4, new Uint8Array(2)))]).toThrow("shorter than its 4-byte microseconds field at byte offset 0");
  });

  test("BGP4MP_ET state change", () => {
    const body = cat(bgp4mpBody(false, 65001, 65002, new Uint8Array(0)), new W().u16(6).u16(1).get());
    const [r] = [...parseMrt(mrt(17, 0, body, 1700000000, 5))];
    expect(recordObjects(r!)[0]).toMatchObject({ type: "state", peer: "10.0.0.1", peerAs: 65001, oldState: "Established", newState: "Idle", microseconds: 5 });
  });

  test("UpdateContext from the subtype: 2-octet AS, ADD-PATH, local, iBGP", () => {
    const a = attrs({ origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001, 65010] }]), nextHop: V4("10.0.0.1"), localPref: 200 });
    // MESSAGE_ADDPATH (8): 2-octet AS, path identifiers, eBGP (65001 != 65002): LOCAL_PREF discarded
    const upd = encodeUpdate({ attrs: a, nlri: [p4("10.9.0.0", 16, 7)] }, { fourOctetAs: false, addPathSend: () => true }, false);
    const [r8] = [...parseMrt(mrt(16, 8, bgp4mpBody(false, 65001, 65002, upd)))] as MessageRecord[];
    expect(r8!.fourOctetAs).toBe(false);
    expect(r8!.addPath).toBe(true);
    expect(r8!.local).toBe(false);
    expect(recordObjects(r8!)[0]).toMatchObject({ announced: ["10.9.0.0/16"], announcedPathIds: [7], asPath: [65001, 65010], localPref: null, issues: ["LOCAL_PREF from an external peer ignored"] });
    // MESSAGE_AS4_LOCAL_ADDPATH (11): 4-octet, sent by us, iBGP keeps LOCAL_PREF
    const upd4 = encodeUpdate({ attrs: a, nlri: [p4("10.9.0.0", 16, 9)] }, { fourOctetAs: true, addPathSend: () => true }, false);
    const [r11] = [...parseMrt(mrt(16, 11, bgp4mpBody(true, 65002, 65002, upd4)))] as MessageRecord[];
    expect(r11!.local).toBe(true);
    expect(recordObjects(r11!)[0]).toMatchObject({ direction: "sent", announcedPathIds: [9], localPref: 200 });
    expect(recordLines(r11!)[0]).toContain("UPDATE to 10.0.0.1 AS65002 + 10.9.0.0/16#9");
    // MESSAGE_LOCAL (6): no path identifiers
    const plain = encodeUpdate({ attrs: a, nlri: [p4("10.9.0.0", 16)] }, { fourOctetAs: false, addPathSend: () => false }, false);
    const [r6] = [...parseMrt(mrt(16, 6, bgp4mpBody(false, 65001, 65002, plain)))] as MessageRecord[];
    expect(r6!.addPath).toBe(false);
    expect(recordObjects(r6!)[0]).toMatchObject({ direction: "sent", announced: ["10.9.0.0/16"] });
    expect(recordObjects(r6!)[0]!.announcedPathIds).toBeUndefined();
  });

  test("a bad BGP marker is a message error, not a fatal one", () => {
    const bad = KEEPALIVE.slice();
    bad[0] = 0;
    const recs = [...parseMrt(cat(mrt(16, 1, bgp4mpBody(false, 1, 2, bad)), mrt(16, 1, bgp4mpBody(false, 1, 2, KEEPALIVE))))] as MessageRecord[];
    expect(recs.length).toBe(2);
    expect(recs[0]!.error?.message).toBe("marker is not all ones");
    expect(recs[1]!.message).toEqual({ type: "keepalive" });
  });

  test("TABLE_DUMP (v1): 2-octet AS attributes, AS4_PATH merged", () => {
    const a = attrs({ origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [64500, 4200000000] }]), nextHop: V4("192.0.2.1") });
    const raw = encodeAttributes(a, false); // AS_PATH 64500 23456 + AS4_PATH
    const body = new W().u16(0).u16(5).bytes(V4("10.1.0.0")).u8(16).u8(1).u32(1600000000).bytes(V4("192.0.2.1")).u16(64500).u16(raw.length).bytes(raw).get();
    const [r] = [...parseMrt(mrt(12, 1, body))] as RibRecord[];
    expect(r!.kind).toBe("rib");
    expect(r!.view).toBe(0);
    expect(r!.sequence).toBe(5);
    expect(recordObjects(r!)[0]).toMatchObject({ type: "rib", prefix: "10.1.0.0/16", peer: "192.0.2.1", peerAs: 64500, nextHop: "192.0.2.1", asPath: [64500, 4200000000], originated: 1600000000 });
  });

  test("TABLE_DUMP_V2 IPv6 entry with the abbreviated MP_REACH_NLRI (RFC 6396 §4.3.4), and the full form", () => {
    const base = encodeAttributes(attrs({ origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [4200000000] }]) }), true);
    const abbreviated = cat(base, new W().u8(0x80, 14, 17, 16).bytes(FD02_1).get());
    const full = cat(base, new W().u8(0x80, 14, 21).u16(2).u8(1, 16).bytes(FD02_1).u8(0).get());
    const rib = (a: Uint8Array, seq: number) =>
      mrt(13, 4, new W().u32(seq).u8(32, 0x20, 0x01, 0x0d, 0xb8).u16(1).u16(0).u32(1600000000).u16(a.length).bytes(a).get());
    const recs = [...parseMrt(cat(peerTable([{ ip: FD02_1, asn: 65010 }]), rib(abbreviated, 0), rib(full, 1)))];
    const objs = recs.flatMap(recordObjects);
    expect(objs[0]).toMatchObject({ type: "peer-index", collectorId: "192.0.2.254", peers: [{ index: 0, peer: "fd02::1", peerAs: 65010, bgpId: "1.1.1.1" }] });
    for (const o of objs.slice(1)) {
      expect(o).toMatchObject({ type: "rib", prefix: "2001:db8::/32", peer: "fd02::1", peerAs: 65010, nextHop: "fd02::1", asPath: [4200000000], family: "ipv6-unicast" });
      expect(o.issues).toBeUndefined();
    }
  });

  test("RIB_GENERIC and RIB_GENERIC_ADDPATH", () => {
    const a = encodeAttributes(attrs({ origin: 2, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65010] }]), nextHop: V4("192.0.2.9") }), true);
    const generic = mrt(13, 6, new W().u32(0).u16(1).u8(2).u8(8, 224).u16(1).u16(0).u32(1).u16(a.length).bytes(a).get());
    const genericAp = mrt(13, 12, new W().u32(1).u16(1).u8(1).u8(24, 10, 0, 0).u16(2).u16(0).u32(1).u32(11).u16(a.length).bytes(a).u16(0).u32(1).u32(12).u16(0).get());
    const vpn = mrt(13, 6, new W().u32(2).u16(1).u8(128).u8(0).u16(0).get());
    const recs = [...parseMrt(cat(peerTable([{ ip: V4("192.0.2.9"), asn: 65010 }]), generic, genericAp, vpn))];
    const objs = recs.flatMap(recordObjects);
    expect(objs[1]).toMatchObject({ prefix: "224.0.0.0/8", family: "ipv4-multicast", origin: "incomplete", nextHop: "192.0.2.9" });
    expect(objs[1]!.pathId).toBeUndefined();
    expect(objs[2]).toMatchObject({ prefix: "10.0.0.0/24", pathId: 11, family: "ipv4-unicast" });
    expect(objs[3]).toMatchObject({ prefix: "10.0.0.0/24", pathId: 12, nextHop: null });
    expect(objs[4]).toMatchObject({ type: "unknown", mrtType: 13, subtype: 6, reason: "RIB_GENERIC for unsupported AFI 1 SAFI 128" });
  });

  test("structural errors name the record's offset", () => {
    const pt = peerTable([{ ip: V4("192.0.2.9"), asn: 65010 }]);
    const badPeer = mrt(13, 2, new W().u32(0).u8(8, 10).u16(1).u16(5).u32(0).u16(0).get());
    expect(() => [...parseMrt(cat(pt, badPeer))]).toThrow(`entry 0 refers to peer index 5 but the peer table has 1 peers at byte offset ${pt.length}`);
    expect(() => [...parseMrt(badPeer)]).toThrow("RIB record before any PEER_INDEX_TABLE at byte offset 0");
    // a huge entry count in a short record: fails on bounds, allocates nothing for it
    const manyEntries = mrt(13, 2, new W().u32(0).u8(8, 10).u16(65535).u16(0).get());
    expect(() => [...parseMrt(cat(pt, manyEntries))]).toThrow(`record too short: entry 0 originated time needs 4 bytes at body offset 10, 0 left at byte offset ${pt.length}`);
    const manyPeers = mrt(13, 1, new W().bytes(V4("1.2.3.4")).u16(0).u16(65535).get());
    expect(() => [...parseMrt(manyPeers)]).toThrow("record too short: peer 0 type needs 1 bytes at body offset 8, 0 left at byte offset 0");
    const badPrefix = mrt(13, 2, new W().u32(0).u8(33).get());
    expect(() => [...parseMrt(cat(pt, badPrefix))]).toThrow(`prefix length 33 exceeds 32 at byte offset ${pt.length}`);
    const trailing = mrt(16, 5, cat(bgp4mpBody(true, 1, 2, new Uint8Array(0)), new W().u16(1).u16(2).u8(0).get()));
    expect(() => [...parseMrt(trailing)]).toThrow("1 unexpected bytes after the new state at byte offset 0");
    const badAfi = mrt(16, 1, new W().u16(1).u16(2).u16(0).u16(7).get());
    expect(() => [...parseMrt(badAfi)]).toThrow("unknown address family 7 at byte offset 0");
  });

  test("unknown types and subtypes are skipped, not fatal", () => {
    const recs = [...parseMrt(cat(mrt(11, 0, new Uint8Array(10)), mrt(16, 3, new Uint8Array(4)), mrt(13, 7, new Uint8Array(3))))];
    expect(recs.map((r) => (r.kind === "unknown" ? r.reason : r.kind))).toEqual(["unsupported MRT type 11", "unsupported BGP4MP subtype 3", "unsupported TABLE_DUMP_V2 subtype 7"]);
  });

  test("frame() builds what checkHeader-based decoding accepts (ROUTE-REFRESH)", () => {
    const rr = encodeRouteRefresh({ afi: 2, safi: 1, subtype: 0 });
    expect(eq(rr, frame(5, Uint8Array.of(0, 2, 0, 1)))).toBe(true);
    const [r] = [...parseMrt(mrt(16, 4, bgp4mpBody(true, 1, 2, rr)))];
    expect(recordObjects(r!)[0]).toMatchObject({ kind: "route-refresh", family: "ipv6-unicast" });
  });
});

describe("ADD-PATH: the subtype decides, the other reading only as a visible fallback (RFC 8050 §3)", () => {
  const AS4 = 4; // BGP4MP_MESSAGE_AS4
  const AS4_ADDPATH = 9; // BGP4MP_MESSAGE_AS4_ADDPATH
  const a = attrs({ origin: 0, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [65001] }]), nextHop: V4("192.0.2.1") });
  /** An UPDATE with these raw NLRI bytes (the codec's attributes, NLRI written by hand). */
  const updateWith = (nlri: number[]) => {
    const pa = encodeAttributes(a, true);
    return frame(2, new W().u16(0).u16(pa.length).bytes(pa).u8(...nlri).get());
  };
  /** Plain: 192.0.2.0/24 and 198.51.100.0/24. With path ids: id 0x18c00002, then 198.51.100.0/24. */
  const AMBIGUOUS = [24, 192, 0, 2, 24, 198, 51, 100];
  /** With path ids: id 7, 203.0.113.0/24. Plain: 0/0, 0/0, 0/0, 24.0.0.0/7, then a length of 203 (invalid). */
  const ONLY_ADDPATH = [0, 0, 0, 7, 24, 203, 0, 113];
  /** The peer's OPEN offering ADD-PATH send+receive for IPv4 unicast. */
  const offerOpen = mrt(16, AS4, bgp4mpBody(true, 65001, 65002, encodeOpen({
    version: 4,
    myAs: 65001,
    holdTime: 90,
    routerId: "192.0.2.1",
    capabilities: [{ type: "four-octet-as", asn: 65001 }, { type: "add-path", families: [{ afi: 1, safi: 1, send: true, receive: true }] }],
  })));
  const msgs = (bytes: Uint8Array, opts: MrtReadOptions = {}) => [...parseMrt(bytes, opts)].filter((r): r is MessageRecord => r.kind === "message");
  const routes = (m: MessageRecord) => blockPrefixes((m.message as { type: "update"; update: { nlri: Parameters<typeof blockPrefixes>[0] } }).update.nlri).map((p) => [prefixToString(p), p.pathId]);

  test("an ambiguous MESSAGE_AS4 UPDATE after an ADD-PATH OPEN is decoded plainly, as its subtype says", () => {
    const file = cat(offerOpen, mrt(16, AS4, bgp4mpBody(true, 65001, 65002, updateWith(AMBIGUOUS))));
    const [open, upd] = msgs(file);
    expect(open!.message?.type).toBe("open");
    expect(upd!.error).toBeNull();
    expect([upd!.addPath, upd!.fallback]).toEqual([false, null]);
    expect(routes(upd!)).toEqual([["192.0.2.0/24", undefined], ["198.51.100.0/24", undefined]]);
    expect(recordObjects(upd!)[0]).toMatchObject({ announced: ["192.0.2.0/24", "198.51.100.0/24"] });
    expect(recordObjects(upd!)[0]!.fallback).toBeUndefined();
    expect(recordObjects(upd!)[0]!.announcedPathIds).toBeUndefined();
    // it really is ambiguous: the forced ADD-PATH reading parses too
    const forced = msgs(file, { assumeAddPath: true })[1]!;
    expect([forced.error, forced.fallback]).toEqual([null, null]);
    expect(routes(forced)).toEqual([["198.51.100.0/24", 0x18c00002]]);
  });

  test("a MESSAGE_AS4 UPDATE that only parses with path ids is decoded with them, and says so", async () => {
    const file = cat(offerOpen, mrt(16, AS4, bgp4mpBody(true, 65001, 65002, updateWith(ONLY_ADDPATH))));
    const upd = msgs(file)[1]!;
    expect(upd.error).toBeNull();
    expect(upd.addPath).toBe(true);
    expect(upd.fallback).toBe("BGP4MP_MESSAGE_AS4 (4) says no path identifiers, but the NLRI only parse with them (the sender's OPEN offered ADD-PATH)");
    expect(routes(upd)).toEqual([["203.0.113.0/24", 7]]);
    expect(recordObjects(upd)[0]).toMatchObject({ announced: ["203.0.113.0/24"], announcedPathIds: [7], fallback: upd.fallback });
    expect(recordLines(upd)[0]).toContain("+ 203.0.113.0/24#7");
    expect(recordLines(upd)[0]).toContain("(fallback: BGP4MP_MESSAGE_AS4 (4) says no path identifiers");
    const path = tmpFile("only-addpath.mrt", file);
    const j = await run(path, { json: true });
    expect([j.code, j.err]).toEqual([0, ""]);
    expect(JSON.parse(j.out.trimEnd().split("\n")[1]!)).toMatchObject({ announcedPathIds: [7], fallback: upd.fallback });
  });

  test("with no ADD-PATH OPEN in the file there is no fallback: the UPDATE is malformed, and the command hints --add-path", async () => {
    const file = mrt(16, AS4, bgp4mpBody(true, 65001, 65002, updateWith(ONLY_ADDPATH)));
    const [upd] = msgs(file);
    expect(upd!.error).not.toBeNull();
    expect([upd!.addPath, upd!.fallback]).toEqual([false, null]);
    const path = tmpFile("only-addpath-no-open.mrt", file);
    const r = await run(path);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`bgpctl: ${path}: 1 malformed BGP message, the first at byte offset 0 (if the session negotiated ADD-PATH, try --add-path)\n`);
    const forced = await run(path, { addPath: true });
    expect([forced.code, forced.err]).toEqual([0, ""]);
    expect(forced.out).toContain("+ 203.0.113.0/24#7");
  });

  test("an ADDPATH-subtype UPDATE that only parses plainly falls back to plain NLRI, and says so", () => {
    // Plain: 203.0.113.0/24. With path ids: id 0x18cb0071, then nothing: truncated.
    const [upd] = msgs(mrt(16, AS4_ADDPATH, bgp4mpBody(true, 65001, 65002, updateWith([24, 203, 0, 113]))));
    expect(upd!.error).toBeNull();
    expect(upd!.addPath).toBe(false);
    expect(upd!.fallback).toBe("BGP4MP_MESSAGE_AS4_ADDPATH (9) says path identifiers, but the NLRI only parse without them");
    expect(routes(upd!)).toEqual([["203.0.113.0/24", undefined]]);
    expect(recordObjects(upd!)[0]).toMatchObject({ announced: ["203.0.113.0/24"], fallback: upd!.fallback });
  });

  test("--add-path forces path ids: no fallback, even when only the plain reading parses", () => {
    const file = cat(offerOpen, mrt(16, AS4, bgp4mpBody(true, 65001, 65002, updateWith([24, 203, 0, 113]))));
    const upd = msgs(file, { assumeAddPath: true })[1]!;
    expect(upd.error).not.toBeNull();
    expect([upd.addPath, upd.fallback]).toEqual([true, null]);
    const plain = msgs(file)[1]!;
    expect([plain.error, plain.addPath, plain.fallback]).toEqual([null, false, null]);
  });

  test("the fallback uses only the families the OPEN offered", () => {
    // The OPEN offers ADD-PATH for IPv6 only: an IPv4 NLRI that needs path ids has no other reading.
    const v6only = mrt(16, AS4, bgp4mpBody(true, 65001, 65002, encodeOpen({
      version: 4,
      myAs: 65001,
      holdTime: 90,
      routerId: "192.0.2.1",
      capabilities: [{ type: "add-path", families: [{ afi: 2, safi: 1, send: true, receive: false }] }],
    })));
    const upd = msgs(cat(v6only, mrt(16, AS4, bgp4mpBody(true, 65001, 65002, updateWith(ONLY_ADDPATH)))))[1]!;
    expect(upd.error).not.toBeNull();
    expect(upd.fallback).toBeNull();
  });
});

describe("command registration", () => {
  test("registerMrt adds `mrt <file>` with --json and --add-path", () => {
    const program = new Command("bgpctl");
    registerMrt(program);
    const cmd = program.commands.find((c) => c.name() === "mrt")!;
    expect(cmd).toBeDefined();
    expect(cmd.registeredArguments.map((a) => a.name())).toEqual(["file"]);
    expect(cmd.options.map((o) => o.long)).toEqual(["--json", "--add-path"]);
  });
});
