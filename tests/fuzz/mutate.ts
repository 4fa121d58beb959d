/**
 * Mutations for the BGP fuzzer. Each takes a whole message (header included)
 * and returns a new byte string: bit flips, bytes set to 0x00/0xff/random,
 * tweaks of the length fields the codec reads (found by a tolerant walk of the
 * message), truncation, extension, splices with another seed, repeated and
 * injected path attributes, and a changed message type. Most mutations then
 * re-stamp the header length so the input reaches the body decoders.
 */
import type { Rng } from "./rng.ts";

/** A length-like field: its offset and width in bytes. */
interface Field {
  at: number;
  size: 1 | 2;
}

const rd16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

function wr16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

/** Set the header length to the real length (when it fits). */
export function stampLength(b: Uint8Array): Uint8Array {
  if (b.length >= 18 && b.length <= 0xffff) wr16(b, 16, b.length);
  return b;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Attribute boundaries of an UPDATE: [start, end) of each attribute, plus the section. */
interface AttrLayout {
  talAt: number;
  start: number;
  end: number;
  attrs: { at: number; end: number; type: number; lenAt: number; lenSize: 1 | 2 }[];
}

function updateLayout(b: Uint8Array): AttrLayout | null {
  if (b.length < 23 || b[18] !== 2) return null;
  const wl = rd16(b, 19);
  const talAt = 21 + wl;
  if (talAt + 2 > b.length) return null;
  const tal = rd16(b, talAt);
  const start = talAt + 2;
  const end = Math.min(start + tal, b.length);
  const attrs: AttrLayout["attrs"] = [];
  let o = start;
  while (o + 3 <= end) {
    const ext = (b[o]! & 0x10) !== 0;
    if (ext && o + 4 > end) break;
    const len = ext ? rd16(b, o + 2) : b[o + 2]!;
    const vs = o + (ext ? 4 : 3);
    if (vs + len > end) break;
    attrs.push({ at: o, end: vs + len, type: b[o + 1]!, lenAt: o + 2, lenSize: ext ? 2 : 1 });
    o = vs + len;
  }
  return { talAt, start, end, attrs };
}

/** Prefix-length bytes of an NLRI-like field (no ADD-PATH assumed). */
function nlriFields(b: Uint8Array, start: number, end: number, out: Field[]): void {
  let o = start;
  let n = 0;
  while (o < end && n < 64) {
    out.push({ at: o, size: 1 });
    o += 1 + ((b[o]! + 7) >> 3);
    n++;
  }
}

/** Every length-like field found in a message. */
export function lengthFields(b: Uint8Array): Field[] {
  const f: Field[] = [];
  if (b.length >= 18) f.push({ at: 16, size: 2 });
  if (b.length < 19) return f;
  const type = b[18];
  if (type === 2 && b.length >= 21) {
    f.push({ at: 19, size: 2 });
    const wl = rd16(b, 19);
    nlriFields(b, 21, Math.min(21 + wl, b.length), f);
    const lay = updateLayout(b);
    if (!lay) return f;
    f.push({ at: lay.talAt, size: 2 });
    for (const a of lay.attrs) {
      f.push({ at: a.lenAt, size: a.lenSize });
      const vs = a.lenAt + a.lenSize;
      if (a.type === 2 || a.type === 17) {
        // AS_PATH / AS4_PATH segment counts (4-octet walk is good enough)
        let o = vs;
        while (o + 2 <= a.end) {
          f.push({ at: o + 1, size: 1 });
          o += 2 + b[o + 1]! * 4;
        }
      } else if (a.type === 14 && vs + 4 <= a.end) {
        f.push({ at: vs + 3, size: 1 }); // next hop length
        nlriFields(b, vs + 5 + b[vs + 3]!, a.end, f);
      } else if (a.type === 15 && vs + 3 <= a.end) {
        nlriFields(b, vs + 3, a.end, f);
      }
    }
    nlriFields(b, lay.end, b.length, f);
  } else if (type === 1 && b.length >= 29) {
    f.push({ at: 28, size: 1 });
    let o = 29;
    const ext = b[28] === 255 && b[29] === 255;
    if (ext) {
      f.push({ at: 30, size: 2 });
      o = 32;
    }
    while (o + (ext ? 3 : 2) <= b.length) {
      f.push({ at: o + 1, size: ext ? 2 : 1 });
      const plen = ext ? rd16(b, o + 1) : b[o + 1]!;
      const ps = o + (ext ? 3 : 2);
      let c = ps;
      while (c + 2 <= Math.min(ps + plen, b.length)) {
        f.push({ at: c + 1, size: 1 });
        c += 2 + b[c + 1]!;
      }
      o = ps + plen;
    }
  } else if (type === 3 && b.length >= 22) {
    f.push({ at: 21, size: 1 }); // shutdown communication length
  }
  return f.filter((x) => x.at + x.size <= b.length);
}

function tweakValue(rng: Rng, v: number, max: number): number {
  switch (rng.int(8)) {
    case 0:
      return v + 1;
    case 1:
      return v - 1;
    case 2:
      return v + rng.range(2, 16);
    case 3:
      return v - rng.range(2, 16);
    case 4:
      return 0;
    case 5:
      return max;
    case 6:
      return rng.int(max + 1);
    default:
      return v ^ (1 << rng.int(max > 255 ? 16 : 8));
  }
}

export type Mutator = (b: Uint8Array, rng: Rng, seeds: readonly Uint8Array[]) => Uint8Array;

const KNOWN_TYPES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 35];
const FLAG_CHOICES = [0x40, 0x80, 0xc0, 0xe0, 0x50, 0x90, 0xd0, 0x00, 0x10];

/** A random path attribute, usually of a known type with a plausible length. */
function randomAttr(rng: Rng): Uint8Array {
  const type = rng.chance(0.8) ? rng.pick(KNOWN_TYPES) : rng.byte();
  const flags = rng.chance(0.8) ? rng.pick(FLAG_CHOICES) : rng.byte();
  const len = rng.pick([0, 1, 2, 3, 4, 5, 6, 7, 8, 12, 13, 16, 24, rng.int(64)]);
  const v = rng.bytes(len);
  if (type === 14 && len >= 5) {
    v[0] = 0;
    v[1] = rng.pick([1, 2]);
    v[2] = 1;
    v[3] = rng.pick([4, 16, 32, len - 5, rng.byte()]);
  } else if ((type === 2 || type === 17) && len >= 2) {
    v[0] = rng.range(1, 4);
    v[1] = rng.range(0, 4);
  } else if (type === 1 && len >= 1) {
    v[0] = rng.range(0, 3);
  }
  const ext = (flags & 0x10) !== 0;
  const hdr = ext ? Uint8Array.of(flags, type, len >> 8, len & 0xff) : Uint8Array.of(flags, type, len);
  return concat(hdr, v);
}

/** Insert `a` at an attribute boundary of an UPDATE and fix the total attribute length. */
function insertAttr(b: Uint8Array, rng: Rng, a: Uint8Array): Uint8Array {
  const lay = updateLayout(b);
  if (!lay) return b;
  const points = [lay.start, ...lay.attrs.map((x) => x.end)];
  const at = rng.pick(points);
  const out = concat(b.subarray(0, at), a, b.subarray(at));
  wr16(out, lay.talAt, Math.min(0xffff, rd16(b, lay.talAt) + a.length));
  return out;
}

export const MUTATORS: { name: string; fn: Mutator }[] = [
  {
    name: "bitflip",
    fn: (b, rng) => {
      const o = b.slice();
      const n = rng.range(1, 8);
      for (let i = 0; i < n && o.length; i++) {
        const at = rng.int(o.length);
        o[at]! ^= 1 << rng.int(8);
      }
      return o;
    },
  },
  {
    name: "byteset",
    fn: (b, rng) => {
      const o = b.slice();
      const n = rng.range(1, 4);
      for (let i = 0; i < n && o.length; i++) {
        // the body is where the decoders look; avoid the marker most of the time
        const at = o.length > 19 && rng.chance(0.9) ? rng.range(16, o.length - 1) : rng.int(o.length);
        o[at] = rng.pick([0x00, 0xff, rng.byte(), 0x7f, 0x80]);
      }
      return o;
    },
  },
  {
    name: "length",
    fn: (b, rng) => {
      const fields = lengthFields(b);
      if (!fields.length) return b;
      const o = b.slice();
      const f = rng.pick(fields);
      if (f.size === 1) o[f.at] = tweakValue(rng, o[f.at]!, 255) & 0xff;
      else wr16(o, f.at, tweakValue(rng, rd16(o, f.at), 0xffff) & 0xffff);
      return o;
    },
  },
  {
    name: "truncate",
    fn: (b, rng) => b.slice(0, rng.chance(0.9) && b.length > 19 ? rng.range(19, b.length - 1) : rng.int(b.length)),
  },
  {
    name: "extend",
    fn: (b, rng) => {
      if (rng.chance(0.5) && b.length > 19) {
        const s = rng.range(19, b.length - 1);
        return concat(b, b.slice(s, Math.min(b.length, s + rng.range(1, 64))));
      }
      return concat(b, rng.bytes(rng.range(1, 64)));
    },
  },
  {
    name: "splice",
    fn: (b, rng, seeds) => {
      const other = rng.pick(seeds);
      const i = rng.int(b.length + 1);
      const j = rng.int(other.length + 1);
      return concat(b.subarray(0, i), other.subarray(j));
    },
  },
  {
    name: "repeat-attr",
    fn: (b, rng) => {
      const lay = updateLayout(b);
      if (!lay || !lay.attrs.length) return b;
      const a = rng.pick(lay.attrs);
      return insertAttr(b, rng, b.slice(a.at, a.end));
    },
  },
  {
    name: "inject-attr",
    fn: (b, rng) => insertAttr(b, rng, randomAttr(rng)),
  },
  {
    name: "drop-attr",
    fn: (b, rng) => {
      const lay = updateLayout(b);
      if (!lay || !lay.attrs.length) return b;
      const a = rng.pick(lay.attrs);
      const out = concat(b.subarray(0, a.at), b.subarray(a.end));
      wr16(out, lay.talAt, rd16(b, lay.talAt) - (a.end - a.at));
      return out;
    },
  },
  {
    name: "retype",
    fn: (b, rng) => {
      if (b.length < 19) return b;
      const o = b.slice();
      o[18] = rng.chance(0.9) ? rng.range(1, 5) : rng.byte();
      return o;
    },
  },
];

/** Apply 1–3 random mutations; the header length is usually re-stamped. */
export function mutate(seed: Uint8Array, rng: Rng, seeds: readonly Uint8Array[]): { msg: Uint8Array; ops: string[] } {
  let b = seed;
  const ops: string[] = [];
  const n = rng.chance(0.6) ? 1 : rng.range(2, 3);
  for (let i = 0; i < n; i++) {
    const m = rng.pick(MUTATORS);
    b = m.fn(b, rng, seeds);
    ops.push(m.name);
  }
  if (rng.chance(0.85)) {
    b = stampLength(b === seed ? b.slice() : b);
    ops.push("stamp");
  }
  return { msg: b, ops };
}

export { concat };
