/**
 * Deterministic mutation fuzzer for the BGP codec.
 *
 * Seeds are valid messages of every type (built with the encoders) plus BGP
 * messages from the MRT test files when present. Each input is a mutated seed
 * (see mutate.ts). It goes through Framer.push — whole, and again split into
 * random chunks — and every frame through its decoder, UPDATEs under several
 * session contexts (2/4-octet AS, iBGP/eBGP, ADD-PATH on/off, a family
 * subset, an attribute cache). The fuzzer asserts:
 *   - only BgpError is ever thrown by framer and decoders;
 *   - each input finishes quickly (> 100 ms twice in a row is a hang);
 *   - results are internally consistent: whole and chunked framing agree,
 *     every NLRI block's count equals the prefixes walked, treat-as-withdraw
 *     announces nothing, an accepted route has its mandatory attributes, and
 *     re-encoding decoded OPENs/UPDATEs decodes back to the same values.
 *
 *   bun tests/fuzz/fuzz.ts --count N --seed S [--mrt DIR|none] [--max-failures N] [--out FILE.json]
 *
 * Failures are printed with the input in hex (cut at 8 KB of hex; --out writes
 * them all, in full, as JSON). Exit status 1 when anything failed.
 */
import { type PathAttributes, encodeAttributes, asPathSegments } from "../../lib/bgp/attributes.ts";
import { hex } from "../../lib/bgp/bytes.ts";
import { BgpError } from "../../lib/bgp/errors.ts";
import { type Frame, Framer } from "../../lib/bgp/framer.ts";
import { negotiate } from "../../lib/bgp/negotiate.ts";
import { decodeNotification, decodeRouteRefresh, describeNotification } from "../../lib/bgp/notification.ts";
import { type OpenMessage, decodeOpen, describeCapability, encodeOpen } from "../../lib/bgp/open.ts";
import { nlriToPrefixes } from "../../lib/bgp/prefix.ts";
import { updateRoutes } from "../../lib/bgp/route.ts";
import { MsgType } from "../../lib/bgp/types.ts";
import {
  type NlriBlock,
  type UpdateContext,
  type UpdateMessage,
  announcedBlocks,
  decodeUpdate,
  decodeUpdateIn,
  encodeUpdate,
  withdrawnBlocks,
} from "../../lib/bgp/update.ts";
import { AttrCache } from "../../lib/bgp/attributes.ts";
import { mutate } from "./mutate.ts";
import { Rng } from "./rng.ts";
import { DEFAULT_MRT_DIR, type Seed, encoderSeeds, mrtSeeds } from "./seeds.ts";

export interface FuzzFailure {
  kind: "exception" | "hang" | "inconsistent";
  /** Where it happened: framer, framer-chunks, open, update[ctx], ... */
  where: string;
  message: string;
  seed: string;
  ops: string[];
  /** The whole input, hex. */
  hex: string;
}

export interface FuzzOptions {
  count: number;
  seed: number;
  /** Directory of MRT files for extra seeds; null to skip. */
  mrtDir?: string | null;
  /** Stop after this many failures (default 20). */
  maxFailures?: number;
  /** Per-input limit on the time spent in the codec, in ms (default 100). */
  hangMs?: number;
  /** Progress callback, every `progressEvery` inputs. */
  onProgress?: (done: number) => void;
  progressEvery?: number;
}

export interface FuzzResult {
  inputs: number;
  /** Inputs on which the framer or a decoder threw BgpError at least once. */
  bgpErrors: number;
  failures: FuzzFailure[];
  seeds: number;
  ms: number;
  /** The longest time one input spent in the codec. */
  slowestMs: number;
  slowestInput: string;
  /** Frames decoded per message type, and UPDATE outcomes over all contexts. */
  stats: Record<string, number>;
}

class Inconsistent extends Error {}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new Inconsistent(msg);
}

// ---------------------------------------------------------------- contexts

interface NamedCtx {
  name: string;
  ctx: UpdateContext;
}

const V4V6 = [
  { afi: 1, safi: 1 },
  { afi: 2, safi: 1 },
];

function updateContexts(): NamedCtx[] {
  const out: NamedCtx[] = [];
  for (const four of [true, false]) {
    for (const ibgp of [false, true]) {
      for (const ap of [false, true]) {
        out.push({
          name: `${four ? "as4" : "as2"}/${ibgp ? "ibgp" : "ebgp"}/${ap ? "addpath" : "plain"}`,
          ctx: { fourOctetAs: four, ibgp, addPathReceive: () => ap, families: V4V6 },
        });
      }
    }
  }
  out.push({ name: "as4/ebgp/v6-addpath/default-families", ctx: { fourOctetAs: true, ibgp: false, addPathReceive: (afi) => afi === 2 } });
  out.push({ name: "as4/ebgp/v4-only", ctx: { fourOctetAs: true, ibgp: false, addPathReceive: () => false, families: [{ afi: 1, safi: 1 }] } });
  return out;
}

const LOCAL_OPENS: OpenMessage[] = [
  { version: 4, myAs: 65001, holdTime: 90, routerId: "10.0.0.1", capabilities: [] },
  {
    version: 4,
    myAs: 23456,
    holdTime: 30,
    routerId: "10.0.0.1",
    capabilities: [
      { type: "multiprotocol", afi: 1, safi: 1 },
      { type: "multiprotocol", afi: 2, safi: 1 },
      { type: "four-octet-as", asn: 4_200_000_000 },
      { type: "add-path", families: [{ afi: 1, safi: 1, send: true, receive: true }] },
      { type: "role", role: 4 },
      { type: "extended-next-hop", entries: [{ afi: 1, safi: 1, nextHopAfi: 2 }] },
    ],
  },
];

// ---------------------------------------------------------------- checks

/** Walk an NLRI block independently of the codec's walker and compare (`deep`: also materialise the prefixes). */
function checkBlock(b: NlriBlock, what: string, deep: boolean): void {
  check(b.start >= 0 && b.start <= b.end && b.end <= b.buf.length, `${what}: block bounds ${b.start}..${b.end} of ${b.buf.length}`);
  const max = b.afi === 2 ? 128 : 32;
  let o = b.start;
  let n = 0;
  while (o < b.end) {
    if (b.addPath) o += 4;
    check(o < b.end, `${what}: truncated path id`);
    const len = b.buf[o]!;
    check(len <= max, `${what}: prefix length ${len} > ${max}`);
    o += 1 + ((len + 7) >> 3);
    check(o <= b.end, `${what}: prefix overruns block`);
    n++;
  }
  check(n === b.count, `${what}: count ${b.count} but ${n} prefixes walked`);
  check(n > 0, `${what}: empty block should be null`);
  if (!deep) return;
  const ps = nlriToPrefixes(b.buf, b.start, b.end, b.afi, b.addPath);
  check(ps.length === b.count, `${what}: nlriToPrefixes gave ${ps.length}, count ${b.count}`);
  for (const p of ps) {
    check(p.len <= max && p.addr.length === max / 8, `${what}: bad prefix object`);
    for (let bit = p.len; bit < max; bit++) check((p.addr[bit >> 3]! & (0x80 >> (bit & 7))) === 0, `${what}: host bits in ${p.len}`);
  }
}

/** A next hop no route may be accepted with (the codec's own martian list may be wider). */
function martian(nh: Uint8Array): boolean {
  return nh[0] === 0 || nh[0]! >= 224;
}

/** Same prefixes (path ids, lengths, masked address bits) in the same order? No allocation. */
function sameBlock(x: NlriBlock, y: NlriBlock): boolean {
  if (x.count !== y.count || x.addPath !== y.addPath || x.afi !== y.afi) return false;
  let i = x.start;
  let j = y.start;
  while (i < x.end && j < y.end) {
    if (x.addPath) {
      for (let k = 0; k < 4; k++) if (x.buf[i + k] !== y.buf[j + k]) return false;
      i += 4;
      j += 4;
    }
    const len = x.buf[i]!;
    if (y.buf[j] !== len) return false;
    const n = (len + 7) >> 3;
    for (let k = 0; k < n; k++) {
      const mask = k === n - 1 && len & 7 ? (0xff << (8 - (len & 7))) & 0xff : 0xff;
      if ((x.buf[i + 1 + k]! & mask) !== (y.buf[j + 1 + k]! & mask)) return false;
    }
    i += 1 + n;
    j += 1 + n;
  }
  return i === x.end && j === y.end;
}

/** Attribute sets compared for the re-encoding round trip (unknown flags aside: the Partial bit is set on the way out). */
function attrsView(a: PathAttributes, withPath: boolean): unknown {
  // `partial` may name attributes that were discarded or merged away (it only
  // marks attributes the encoder writes), so it is not compared.
  const { partial: _partial, ...rest } = a;
  return {
    ...rest,
    asPath: withPath ? a.asPath : null,
    // the encoder writes attributes in type order
    unknown: a.unknown.map((u) => ({ type: u.type, value: hex(u.value) })).sort((x, y) => x.type - y.type),
    extCommunities: a.extCommunities.map(hex),
    nextHop: a.nextHop ? hex(a.nextHop) : null,
  };
}

/**
 * Check one decoded UPDATE. `deep` (once per frame, or when the UPDATE is
 * small) adds the allocation-heavy checks: materialised prefixes, the printable
 * view, and the re-encoding round trip.
 */
function checkUpdate(u: UpdateMessage, body: Uint8Array, nc: NamedCtx, deep: boolean): void {
  const w = nc.name;
  if (u.withdrawn) checkBlock(u.withdrawn, `${w} withdrawn`, deep);
  if (u.nlri) checkBlock(u.nlri, `${w} nlri`, deep);
  if (u.mpReach?.nlri) checkBlock(u.mpReach.nlri, `${w} mp_reach`, deep);
  if (u.mpUnreach?.withdrawn) checkBlock(u.mpUnreach.withdrawn, `${w} mp_unreach`, deep);
  for (const b of [u.withdrawn, u.nlri, u.mpReach?.nlri, u.mpUnreach?.withdrawn]) {
    if (b) check(b.buf === body, `${w}: block refers to another buffer`);
  }
  const ann = announcedBlocks(u);
  if (u.treatAsWithdraw) {
    check(ann.length === 0, `${w}: treat-as-withdraw but blocks announced`);
    check(
      u.issues.some((i) => i.action === "treat-as-withdraw"),
      `${w}: treat-as-withdraw without an issue`,
    );
    const wd = withdrawnBlocks(u);
    if (u.nlri) check(wd.includes(u.nlri), `${w}: t-a-w NLRI not withdrawn`);
    if (u.mpReach?.nlri) check(wd.includes(u.mpReach.nlri), `${w}: t-a-w MP NLRI not withdrawn`);
  } else {
    check(!u.issues.some((i) => i.action === "treat-as-withdraw"), `${w}: t-a-w issue but not treat-as-withdraw`);
    if (ann.length) {
      check(!!u.attrs && u.attrs.origin !== null && u.attrs.asPath !== null, `${w}: route accepted without ORIGIN/AS_PATH`);
      if (u.nlri) check(!!u.attrs!.nextHop && !martian(u.attrs!.nextHop), `${w}: IPv4 route accepted without a valid NEXT_HOP`);
    }
  }
  if (u.endOfRib) check(ann.length === 0 && withdrawnBlocks(u).length === 0, `${w}: End-of-RIB with routes`);
  const a = u.attrs;
  if (a) {
    if (a.origin !== null) check(a.origin >= 0 && a.origin <= 2, `${w}: origin ${a.origin}`);
    if (a.nextHop) check(a.nextHop.length === 4, `${w}: NEXT_HOP length`);
    for (const s of asPathSegments(a.asPath)) check(s.type >= 1 && s.type <= 4 && s.asns.length > 0, `${w}: bad AS_PATH segment kept`);
    if (!nc.ctx.ibgp) check(a.localPref === null && a.originatorId === null && a.clusterList.length === 0, `${w}: iBGP attribute kept from eBGP`);
    const lc = new Set(a.largeCommunities.map((l) => l.join(":")));
    check(lc.size === a.largeCommunities.length, `${w}: duplicate large communities kept`);
  }
  if (!deep) return;
  // the printable view must not throw
  updateRoutes(u);

  // Round trip: re-encode what was accepted and decode it again under the same context.
  if (!u.treatAsWithdraw && a && (u.nlri || u.mpReach?.nlri)) {
    const parts = {
      attrs: a,
      nlri: u.nlri ? nlriToPrefixes(u.nlri.buf, u.nlri.start, u.nlri.end, u.nlri.afi, u.nlri.addPath) : [],
      mpReach: u.mpReach?.nlri
        ? {
            afi: u.mpReach.afi,
            safi: u.mpReach.safi,
            nextHop: u.mpReach.nextHop,
            nlri: nlriToPrefixes(u.mpReach.nlri.buf, u.mpReach.nlri.start, u.mpReach.nlri.end, u.mpReach.nlri.afi, u.mpReach.nlri.addPath),
          }
        : null,
    };
    let re: Uint8Array;
    try {
      re = encodeUpdate(parts, { fourOctetAs: nc.ctx.fourOctetAs, addPathSend: nc.ctx.addPathReceive });
      encodeAttributes(a, nc.ctx.fourOctetAs);
    } catch (e) {
      throw new Inconsistent(`${w}: re-encoding a decoded UPDATE threw ${String(e)}`);
    }
    let v: UpdateMessage;
    try {
      v = decodeUpdate(re.subarray(19), { ...nc.ctx, cache: undefined });
    } catch (e) {
      throw new Inconsistent(`${w}: re-encoded UPDATE rejected: ${String(e)}`);
    }
    check(!v.treatAsWithdraw, `${w}: re-encoded UPDATE is treat-as-withdraw: ${v.issues.map((i) => i.reason).join("; ")}`);
    // 2-octet sessions rebuild the path from AS_TRANS + AS4_PATH; confederation
    // segments behind the first ordinary one cannot survive that, so compare
    // the path only when they are absent there.
    const confedInside = asPathSegments(a.asPath).some((s, i) => i > 0 && s.type >= 3);
    const withPath = nc.ctx.fourOctetAs || !confedInside;
    check(
      JSON.stringify(attrsView(v.attrs!, withPath)) === JSON.stringify(attrsView(a, withPath)),
      `${w}: attributes changed through re-encoding:\n  ${JSON.stringify(attrsView(a, withPath))}\n  ${JSON.stringify(attrsView(v.attrs!, withPath))}`,
    );
    if (u.nlri) check(!!v.nlri && sameBlock(v.nlri, u.nlri), `${w}: NLRI changed through re-encoding`);
    if (u.mpReach?.nlri) check(!!v.mpReach?.nlri && sameBlock(v.mpReach.nlri, u.mpReach.nlri), `${w}: MP NLRI changed through re-encoding`);
  }
}

function checkOpen(o: OpenMessage): void {
  check(o.version === 4, "OPEN version accepted");
  check(o.holdTime !== 1 && o.holdTime !== 2, "OPEN hold time 1/2 accepted");
  check(o.routerId !== "0.0.0.0", "OPEN router id 0 accepted");
  for (const c of o.capabilities) describeCapability(c);
  let re: Uint8Array;
  try {
    re = encodeOpen(o);
  } catch (e) {
    throw new Inconsistent(`re-encoding a decoded OPEN threw ${String(e)}`);
  }
  let d: OpenMessage;
  try {
    d = decodeOpen(re.subarray(19));
  } catch (e) {
    throw new Inconsistent(`re-encoded OPEN rejected: ${String(e)}`);
  }
  const j = (x: OpenMessage) => JSON.stringify(x, (_k, v) => (v instanceof Uint8Array ? hex(v) : v));
  check(j(d) === j(o), `OPEN changed through re-encoding:\n  ${j(o)}\n  ${j(d)}`);
}

// ---------------------------------------------------------------- one input

interface InputOutcome {
  bgpError: boolean;
  /** Time spent inside the framer and the decoders (not in the fuzzer's own checks). */
  codecMs: number;
  failure: { kind: FuzzFailure["kind"]; where: string; message: string } | null;
}

/** Times the codec calls of one input. */
class Clock {
  ms = 0;
  run<T>(fn: () => T): T {
    const t = performance.now();
    try {
      return fn();
    } finally {
      this.ms += performance.now() - t;
    }
  }
}

function frameAll(input: Uint8Array, maxLen: number, cuts: number[] | null, clock: Clock): { frames: Frame[]; err: BgpError | null; buffered: number } {
  const f = new Framer();
  f.maxLen = maxLen;
  const frames: Frame[] = [];
  let err: BgpError | null = null;
  try {
    if (!cuts) frames.push(...clock.run(() => f.push(input)));
    else {
      let prev = 0;
      for (const c of [...cuts, input.length]) {
        const chunk = input.subarray(prev, c);
        frames.push(...clock.run(() => f.push(chunk)));
        prev = c;
      }
    }
  } catch (e) {
    if (!(e instanceof BgpError)) throw e;
    err = e;
  }
  return { frames, err, buffered: f.buffered };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function runInput(input: Uint8Array, rng: Rng, ctxs: NamedCtx[], stats: Record<string, number>): InputOutcome {
  let bgpError = false;
  let where = "framer";
  const clock = new Clock();
  const bump = (k: string) => (stats[k] = (stats[k] ?? 0) + 1);
  /** Run a codec call; a BgpError is an accepted outcome (returns null), anything else propagates. */
  const codec = <T>(fn: () => T): T | null => {
    try {
      return clock.run(fn);
    } catch (e) {
      if (!(e instanceof BgpError)) throw e;
      bgpError = true;
      return null;
    }
  };
  try {
    const maxLen = input.length > 4096 && rng.chance(0.8) ? 65535 : rng.chance(0.1) ? 65535 : 4096;
    const whole = frameAll(input, maxLen, null, clock);
    if (whole.err) bgpError = true;

    // The same bytes in random chunks (byte by byte for small inputs now and then:
    // the framer re-copies what it holds on every push, so that is quadratic).
    where = "framer-chunks";
    let cuts: number[];
    if (input.length <= 1024 && rng.chance(0.05)) cuts = Array.from({ length: Math.max(0, input.length - 1) }, (_, i) => i + 1);
    else {
      const n = rng.chance(0.1) ? rng.range(7, 64) : rng.range(1, 6);
      cuts = Array.from({ length: n }, () => rng.int(input.length + 1)).sort((x, y) => x - y);
    }
    const chunked = frameAll(input, maxLen, cuts, clock);
    if (whole.err) {
      check(!!chunked.err && chunked.err.code === whole.err.code && chunked.err.subcode === whole.err.subcode, "chunked framing did not raise the same error");
    } else {
      check(!chunked.err, `chunked framing raised ${chunked.err?.message} but whole did not`);
      check(chunked.frames.length === whole.frames.length, "chunked framing gave a different number of frames");
      check(chunked.buffered === whole.buffered, "chunked framing left a different amount buffered");
      for (let i = 0; i < whole.frames.length; i++) check(sameBytes(chunked.frames[i]!.raw, whole.frames[i]!.raw), `frame ${i} differs when chunked`);
    }
    for (const fr of whole.frames) {
      check(fr.raw.length >= 19 && fr.raw.length <= maxLen && fr.body.length === fr.raw.length - 19 && fr.type === fr.raw[18], "frame shape");
    }

    for (const fr of whole.frames) {
      switch (fr.type) {
        case MsgType.OPEN: {
          where = "open";
          bump("open");
          const o = codec(() => decodeOpen(fr.body));
          if (!o) break;
          checkOpen(o);
          where = "negotiate";
          for (const local of LOCAL_OPENS) {
            const expectedPeerAs = rng.chance(0.5) ? undefined : 65002;
            const n = codec(() => negotiate(local, o, { expectedPeerAs }));
            if (n) check(n.holdTime === Math.min(local.holdTime, o.holdTime) && n.keepaliveTime === Math.floor(n.holdTime / 3), "negotiated hold/keepalive");
          }
          break;
        }
        case MsgType.UPDATE: {
          bump("update");
          let deepDone = false;
          // One view of the body (a frame makes one each time it is asked): the blocks must point into it.
          const body = fr.body;
          for (const nc of ctxs) {
            where = `update[${nc.name}]`;
            const u = codec(() => decodeUpdate(body, nc.ctx));
            // The same body read where it lies in the received bytes (the daemon's way, no view): the same outcome.
            check(outcome(() => decodeUpdateIn(fr.buf, fr.off + 19, fr.off + fr.length, nc.ctx)) === outcome(() => decodeUpdate(body, nc.ctx)), "decodeUpdateIn and decodeUpdate differ");
            if (!u) {
              bump("update-reset");
              continue;
            }
            bump(u.treatAsWithdraw ? "update-treat-as-withdraw" : u.issues.length ? "update-attribute-discard" : "update-clean");
            const n = (u.nlri?.count ?? 0) + (u.withdrawn?.count ?? 0) + (u.mpReach?.nlri?.count ?? 0) + (u.mpUnreach?.withdrawn?.count ?? 0);
            checkUpdate(u, body, nc, !deepDone || n <= 64);
            deepDone = true;
          }
          break;
        }
        case MsgType.NOTIFICATION: {
          where = "notification";
          bump("notification");
          const n = codec(() => decodeNotification(fr.body))!;
          describeNotification(n);
          if (n.message !== undefined) check(new TextEncoder().encode(n.message).length <= 3 * n.data[0]!, "shutdown message longer than its length byte allows");
          break;
        }
        case MsgType.ROUTE_REFRESH: {
          where = "route-refresh";
          bump("route-refresh");
          const r = codec(() => decodeRouteRefresh(fr.body, fr.raw));
          if (r) check(fr.body.length === 4, "ROUTE-REFRESH of a wrong length accepted");
          break;
        }
        case MsgType.KEEPALIVE:
          bump("keepalive");
          check(fr.raw.length === 19, "KEEPALIVE with a body");
          break;
        default:
          throw new Inconsistent(`framer returned type ${fr.type}`);
      }
    }
    return { bgpError, codecMs: clock.ms, failure: null };
  } catch (e) {
    if (e instanceof Inconsistent) return { bgpError, codecMs: clock.ms, failure: { kind: "inconsistent", where, message: e.message } };
    const err = e as Error;
    return { bgpError, codecMs: clock.ms, failure: { kind: "exception", where, message: `${err?.name ?? "?"}: ${err?.message ?? String(e)}\n${err?.stack ?? ""}` } };
  }
}

/** What a decode came to, as text: the error, or everything it found (the prefixes, not where they lie). */
function outcome(f: () => UpdateMessage): string {
  let u: UpdateMessage;
  try {
    u = f();
  } catch (e) {
    if (e instanceof BgpError) return `error ${e.code}/${e.subcode} ${e.message} ${Buffer.from(e.data).toString("hex")}`;
    throw e;
  }
  const ps = (b: NlriBlock | null) => (b ? nlriToPrefixes(b.buf, b.start, b.end, b.afi, b.addPath).map((p) => `${p.pathId ?? ""}/${Buffer.from(p.addr).toString("hex")}/${p.len}`).join(",") : "-");
  const attrs = JSON.stringify(u.attrs, (_k, v) => (v instanceof Uint8Array || v instanceof Uint32Array ? Array.from(v) : v));
  return JSON.stringify([u.treatAsWithdraw, u.issues, u.endOfRib, ps(u.withdrawn), ps(u.nlri), u.mpReach && [u.mpReach.afi, u.mpReach.safi, Array.from(u.mpReach.nextHop), ps(u.mpReach.nlri)], u.mpUnreach && [u.mpUnreach.afi, u.mpUnreach.safi, ps(u.mpUnreach.withdrawn)], attrs]);
}

// ---------------------------------------------------------------- driver

export function loadSeeds(mrtDir: string | null = DEFAULT_MRT_DIR): Seed[] {
  return [...encoderSeeds(), ...(mrtDir ? mrtSeeds(mrtDir) : [])];
}

export function runFuzz(opts: FuzzOptions): FuzzResult {
  const t0 = performance.now();
  const seeds = loadSeeds(opts.mrtDir === undefined ? DEFAULT_MRT_DIR : opts.mrtDir);
  const seedBytes = seeds.map((s) => s.msg);
  const rng = new Rng(opts.seed);
  const ctxs = updateContexts();
  // A cached context too: decode results must not depend on the cache.
  const cache = new AttrCache(5000);
  ctxs.push({ name: "as4/ebgp/plain/cached", ctx: { ...ctxs[0]!.ctx, cache } });
  const maxFailures = opts.maxFailures ?? 20;
  const hangMs = opts.hangMs ?? 100;
  const every = opts.progressEvery ?? 50_000;
  const stats: Record<string, number> = {};
  const failures: FuzzFailure[] = [];
  let bgpErrors = 0;
  let inputs = 0;
  let slowest = 0;
  let slowestWhat = "";

  for (let i = 0; i < opts.count && failures.length < maxFailures; i++) {
    const seed = seeds[rng.int(seeds.length)]!;
    let input: Uint8Array;
    let ops: string[];
    if (rng.chance(0.03)) {
      input = seed.msg;
      ops = ["none"];
    } else {
      ({ msg: input, ops } = mutate(seed.msg, rng, seedBytes));
    }
    if (rng.chance(0.05)) {
      // several messages back to back
      const extra = mutate(seeds[rng.int(seeds.length)]!.msg, rng, seedBytes);
      const both = new Uint8Array(input.length + extra.msg.length);
      both.set(input, 0);
      both.set(extra.msg, input.length);
      input = both;
      ops = [...ops, "+", ...extra.ops];
    }
    // Each input gets its own generator, so a failure can be replayed alone.
    const sub = rng.u32();
    let out = runInput(input, new Rng(sub), ctxs, stats);
    if (!out.failure && out.codecMs > hangMs) {
      // one retry: a GC pause or a busy machine is not a hang
      out = runInput(input, new Rng(sub), ctxs, {});
      if (!out.failure && out.codecMs > hangMs) out.failure = { kind: "hang", where: "input", message: `codec took ${out.codecMs.toFixed(1)} ms (limit ${hangMs} ms)` };
    }
    if (out.codecMs > slowest) {
      slowest = out.codecMs;
      slowestWhat = `${seed.name} ${ops.join(",")} (${input.length} bytes)`;
    }
    inputs++;
    if (out.bgpError) bgpErrors++;
    if (out.failure) failures.push({ ...out.failure, seed: seed.name, ops, hex: hex(input) });
    if (opts.onProgress && inputs % every === 0) opts.onProgress(inputs);
  }
  return { inputs, bgpErrors, failures, seeds: seeds.length, ms: performance.now() - t0, slowestMs: slowest, slowestInput: slowestWhat, stats };
}

// ---------------------------------------------------------------- CLI

function arg(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i >= 0) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

if (import.meta.main) {
  const argv = process.argv.slice(2);
  const count = Number(arg(argv, "--count") ?? 100_000);
  const seed = Number(arg(argv, "--seed") ?? 1);
  const maxFailures = Number(arg(argv, "--max-failures") ?? 20);
  const mrt = arg(argv, "--mrt");
  const outFile = arg(argv, "--out");
  if (!Number.isInteger(count) || count < 0 || !Number.isInteger(seed)) {
    process.stderr.write("usage: bun tests/fuzz/fuzz.ts --count N --seed S [--mrt DIR|none] [--max-failures N] [--out FILE.json]\n");
    process.exit(2);
  }
  const started = performance.now();
  const r = runFuzz({
    count,
    seed,
    maxFailures,
    mrtDir: mrt === "none" ? null : (mrt ?? DEFAULT_MRT_DIR),
    onProgress: (n) => {
      const s = (performance.now() - started) / 1000;
      process.stdout.write(`  ${n} inputs, ${(n / s).toFixed(0)}/s\n`);
    },
  });
  const secs = r.ms / 1000;
  process.stdout.write(
    `fuzz: seed ${seed}, ${r.seeds} seed messages, ${r.inputs} inputs in ${secs.toFixed(1)} s (${(r.inputs / secs).toFixed(0)} inputs/s), ` +
      `${r.bgpErrors} with BgpError, ${r.failures.length} failures; slowest input ${r.slowestMs.toFixed(1)} ms in the codec: ${r.slowestInput}\n`,
  );
  process.stdout.write(
    `  frames: ${Object.entries(r.stats)
      .sort()
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")}\n`,
  );
  for (const f of r.failures) {
    const h = f.hex.length > 16384 ? `${f.hex.slice(0, 16384)}... (${f.hex.length / 2} bytes; --out has all)` : f.hex;
    process.stdout.write(`\nFAILURE ${f.kind} in ${f.where} (seed ${f.seed}, mutations ${f.ops.join(",")})\n${f.message}\ninput: ${h}\n`);
  }
  if (outFile) await Bun.write(outFile, JSON.stringify(r, null, 2));
  process.exit(r.failures.length ? 1 : 0);
}
