/**
 * A LIST answer parsed without holding the event loop: one `JSON.parse` of
 * a whole page (500 EndpointSlices or Nodes can be 10 MB and more, and the
 * unpaginated fallback is the whole collection) would take tens to hundreds
 * of milliseconds in one turn. Instead the text is scanned for the top-level
 * `items` array and the bounds of each item in it, and each item is parsed on
 * its own; the scan and the parses run as a task of the shared slicer
 * (lib/core/slices.ts), cut wherever the deadline falls. The rest of the
 * answer (kind, metadata with resourceVersion and continue) is parsed with
 * the items left out.
 *
 * The scan only finds bounds (strings with their escapes, nesting of
 * objects and arrays); validity is JSON.parse's, per item and for the rest,
 * so a malformed answer fails as it would in one parse. An answer whose
 * shape is not an object with an `items` array of objects is parsed in one
 * piece (small by nature: a Status, an empty list).
 */
import { runSliced } from "../core/slices.ts";

/** Characters scanned per step (a plain loop between the slicer's deadline checks). */
const CHUNK = 1 << 16;

/** The scan's state between steps. */
interface Scan {
  i: number;
  depth: number;
  inString: boolean;
  /** Offset of the opening quote of the string being read. */
  stringStart: number;
  /** The items array's bounds (-1: not seen yet / not closed yet). */
  arrayStart: number;
  arrayEnd: number;
  /** Offset of the item being read (-1: between items). */
  itemStart: number;
  /** Each item's [start, end), flattened. */
  items: number[];
  /** "ok": scanned to the end in the expected shape; "other": parse in one piece. */
  result: "scanning" | "ok" | "other";
}

/** Parse a LIST answer (any JSON text) in slices of the shared slicer; rejects with JSON.parse's error when it is not valid JSON. */
export function parseListJson(text: string): Promise<unknown> {
  return runSliced(parseSteps(text));
}

function* parseSteps(text: string): Generator<void, unknown> {
  const st: Scan = { i: 0, depth: 0, inString: false, stringStart: -1, arrayStart: -1, arrayEnd: -1, itemStart: -1, items: [], result: "scanning" };
  while (st.result === "scanning") {
    scanSome(text, st, CHUNK);
    yield;
  }
  if (st.result === "other") return JSON.parse(text);
  const rest = JSON.parse(`${text.slice(0, st.arrayStart)}[]${text.slice(st.arrayEnd)}`) as { items: unknown[] };
  const items: unknown[] = new Array(st.items.length / 2);
  for (let i = 0; i < items.length; i++) {
    items[i] = JSON.parse(text.slice(st.items[2 * i]!, st.items[2 * i + 1]!));
    if ((i & 7) === 7) yield;
  }
  rest.items = items;
  return rest;
}

/** The first character at or after `i` that is not JSON white space, or -1. */
function nextToken(text: string, i: number): number {
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
    i++;
  }
  return -1;
}

/**
 * Scan up to `n` characters: string bounds (with escapes), nesting, the
 * top-level `items` key and its array, and each element of it (which must
 * be an object). Sets `result` when the text ends or turns out not to be
 * shaped so (a second top-level `items` key, a non-object element, anything
 * after the top-level object), leaving validity to JSON.parse.
 */
function scanSome(text: string, st: Scan, n: number): void {
  const end = Math.min(text.length, st.i + n);
  let i = st.i;
  let depth = st.depth;
  for (; i < end; i++) {
    const c = text.charCodeAt(i);
    if (st.inString) {
      if (c === 0x5c) i++; // an escape: skip the escaped character
      else if (c === 0x22) {
        st.inString = false;
        // A key of the top-level object named "items": its value must be the array of items.
        if (depth === 1 && i - st.stringStart === 6 && text.startsWith('"items"', st.stringStart)) {
          const colon = nextToken(text, i + 1);
          if (colon >= 0 && text.charCodeAt(colon) === 0x3a) {
            const v = nextToken(text, colon + 1);
            if (st.arrayStart >= 0 || v < 0 || text.charCodeAt(v) !== 0x5b) return fail(st);
            st.arrayStart = v;
            depth = 2;
            i = v;
          }
        }
      }
      continue;
    }
    if (c === 0x22) {
      st.inString = true;
      st.stringStart = i;
      if (depth === 2 && st.itemStart < 0 && st.arrayEnd < 0 && st.arrayStart >= 0) return fail(st);
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === 0 && (c !== 0x7b || i !== nextToken(text, 0))) return fail(st);
      if (depth === 2 && st.arrayStart >= 0 && st.arrayEnd < 0 && st.itemStart < 0) {
        if (c !== 0x7b) return fail(st);
        st.itemStart = i;
      }
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === 2 && st.itemStart >= 0 && st.arrayEnd < 0) {
        st.items.push(st.itemStart, i + 1);
        st.itemStart = -1;
      } else if (depth === 1 && st.arrayStart >= 0 && st.arrayEnd < 0) {
        st.arrayEnd = i + 1;
        if (!onlyItems(text, st.arrayStart, i, st.items)) return fail(st);
      } else if (depth === 0) {
        st.result = st.arrayEnd >= 0 && nextToken(text, i + 1) < 0 ? "ok" : "other";
        return;
      } else if (depth < 0) return fail(st);
    } else if (depth === 0 && c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return fail(st);
  }
  st.i = i;
  st.depth = depth;
  if (i >= text.length) st.result = "other";
}

function fail(st: Scan): void {
  st.result = "other";
}

/**
 * Between the brackets only the items the scan saw, separated by exactly one
 * comma, and white space: no bare values, no stray commas.
 */
function onlyItems(text: string, open: number, close: number, items: number[]): boolean {
  let from = open + 1;
  for (let k = 0; k <= items.length; k += 2) {
    const to = k < items.length ? items[k]! : close;
    // One comma between two items, none before the first or after the last.
    let commas = k > 0 && k < items.length ? -1 : 0;
    for (let j = from; j < to; j++) {
      const ch = text.charCodeAt(j);
      if (ch === 0x2c) commas++;
      else if (ch !== 0x20 && ch !== 0x0a && ch !== 0x0d && ch !== 0x09) return false;
    }
    if (commas !== 0) return false;
    if (k < items.length) from = items[k + 1]!;
  }
  return true;
}
