/**
 * The configuration schema, written once (zod 4): every key of the YAML file
 * and of the control API's peer/advertise requests, with its type, range,
 * error text ("expected X, got Y"), default (`.default()`), and metadata
 * (`.meta()`): what a reload does when it changes (`reload`), the line the
 * docs show (`doc`), names it refers to (`ref`), the explanation of a
 * missing key (`required`), what a mapping or list is called (`what`), hints
 * for specific unknown keys (`hints`), and sections where an empty value
 * means "none" (`emptyOk`).
 *
 * Everything else derives from it: the types (types.ts, via z.output), the
 * validation with positions (walk.ts + load.ts), the defaults (DEFAULTS,
 * defaultKubernetesConfig), the reload diff (diff.ts), the runtime
 * `peer add` / `advertise` requests (request.ts). Cross-field and
 * cross-section rules (peer groups, references, duplicates) are in resolve.ts.
 */
import { z } from "zod";
import type { PolicyRef, PrefixMatch } from "../rib/policy-types.ts";
import { parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { AFI, type Prefix, formatAddr, parseAddr, parseIPv4, parsePrefix, prefixContains, prefixToString } from "../core/addr.ts";
import { type PathSegment, describe, suggest } from "./reader.ts";
import { splitCommand } from "../health/command.ts";

// ---------------------------------------------------------------------------
// Metadata

/** What a reload that changes a key does: a new session, re-running import or export, a global change, or nothing. */
export type ReloadEffect = "reset" | "reimport" | "reexport" | "none" | "global";

/** The `.meta()` keys this schema uses. */
export interface KeyMeta {
  /** How a mapping, list or alternative is named in "expected X". */
  what?: string;
  /** Why a required key is needed: `missing required key "asn" (our AS number)`. */
  required?: string;
  /** Explanations for particular unknown keys of a mapping (instead of a did-you-mean). */
  hints?: Record<string, string>;
  /** The value names a policy, prefix list or peer group that must be defined. */
  ref?: RefKind;
  /** An empty value (`peers:` with every entry commented out) means the default. */
  emptyOk?: boolean;
  reload?: ReloadEffect;
  /** One line of documentation. */
  doc?: string;
}

export type RefKind = "policy" | "prefix list" | "peer group";

const metaCache = new WeakMap<z.ZodType, KeyMeta>();

/** The metadata of a schema (merged over its wrappers: optional, default, prefault). */
export function metaOf(s: z.ZodType): KeyMeta {
  let m = metaCache.get(s);
  if (m) return m;
  const own = (z.globalRegistry.get(s) ?? {}) as KeyMeta;
  const def = s._zod.def as { type: string; innerType?: z.ZodType };
  const inner = def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable" ? def.innerType : undefined;
  m = inner ? { ...metaOf(inner), ...own } : own;
  metaCache.set(s, m);
  return m;
}

// ---------------------------------------------------------------------------
// Value schemas with their error texts

const U32 = 0xffffffff;
const ASN_WHAT = "an AS number 1..4294967295";

/** "expected WHAT, got VALUE (DETAIL)": how every value problem reads. */
export function expectedText(what: string, input: unknown, detail?: string): string {
  return `expected ${what}, got ${describe(input)}${detail ? ` (${detail})` : ""}`;
}

/** zod's error option: "expected WHAT, got VALUE (DETAIL)". */
function expected(what: string, detail?: (v: unknown) => string | undefined) {
  return { error: (iss: { input?: unknown }) => expectedText(what, iss.input, detail?.(iss.input)) };
}

/** Record an issue with its whole message, from a check or transform (at `path` below the value). */
function report(ctx: { issues: unknown[] }, input: unknown, message: string, path?: PathSegment[]): void {
  (ctx.issues as { code: string; input: unknown; message: string; path?: PathSegment[] }[]).push({ code: "custom", input, message, ...(path ? { path } : {}) });
}

/** A failed value inside a transform. */
function fail(ctx: { issues: unknown[] }, input: unknown, message: string): never {
  report(ctx, input, message);
  return z.NEVER;
}

/** A string parsed by `parse`, which returns the value, or an Error whose message is the detail, or throws (no detail). */
function text<T>(what: string, parse: (s: string) => T | Error) {
  return z.string(expected(what)).transform((s, ctx): T => {
    let r: T | Error;
    try {
      r = parse(s);
    } catch {
      r = new Error("");
    }
    if (r instanceof Error) return fail(ctx, s, expectedText(what, s, r.message));
    return r;
  });
}

const int = (min: number, max: number, what = `an integer ${min}..${max}`) => z.number(expected(what)).int().min(min).max(max);
const bool = () => z.boolean(expected("true or false"));
const str = (what = "a string") => z.string(expected(what)).min(1);

function words(values: readonly string[]): string {
  return values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(", ")}`;
}

/** One of a few words, with a did-you-mean. */
function choice<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, expected(words(values), (v) => (typeof v === "string" ? maybe(suggest(v, values)) : undefined)));
}
const maybe = (s: string | undefined) => (s !== undefined ? `did you mean ${s}?` : undefined);

/** A scalar or a list of them (`community: 65001:1` or `community: [..]`); errors name the scalar itself. */
function oneOrMany<T extends z.ZodType>(item: T) {
  return z.preprocess((v) => (Array.isArray(v) ? v : [v]), z.array(item));
}

const asn = () =>
  int(1, U32, ASN_WHAT).refine((v) => v !== 23456, { error: `expected ${ASN_WHAT}, got 23456 (AS_TRANS, reserved by RFC 6793)` });

/** An IPv4/IPv6 address in canonical text (RFC 5952); `zone`: a `%zone` suffix is kept on IPv6. */
function address(opts: { zone?: boolean; what?: string } = {}) {
  const what = opts.what ?? "an IPv4 or IPv6 address";
  return text(what, (s) => {
    const pct = s.indexOf("%");
    const zone = pct >= 0 ? s.slice(pct) : "";
    const a = parseAddr(pct >= 0 ? s.slice(0, pct) : s);
    if (a && (zone === "" || (opts.zone && a.afi === AFI.IPV6 && zone.length > 1))) return formatAddr(a.afi, a.addr) + zone;
    return new Error("");
  });
}

/** The reason parsePrefix gives, without its own "invalid prefix" frame. */
function prefixReason(e: unknown): string {
  return (e as Error).message.replace(/^invalid prefix "[^"]*": /, "").replace(/ \((did you mean [^)]*)\)$/, "; $1");
}

/** A prefix in canonical text ("10.0.0.0/8", compressed IPv6). */
const prefix = () =>
  text("a prefix ADDRESS/LENGTH", (s) => {
    try {
      return prefixToString(parsePrefix(s.trim()));
    } catch (e) {
      return new Error(prefixReason(e));
    }
  });

/** A dotted-quad identifier (router id, cluster id). */
const dottedQuad = (what: string, nonZero: boolean) =>
  text(what, (s) => {
    const b = parseIPv4(s);
    return b && (!nonZero || b.some((x) => x !== 0)) ? formatAddr(AFI.IPV4, b) : new Error("");
  });

const ROUTER_ID_WHAT = "a router id: a non-zero dotted quad such as 192.0.2.1";

/** A community "A:B" or well-known name; numbers re-formatted without leading zeros. */
const community = () =>
  text("a community A:B (each 0..65535) or a well-known name such as no-export", (s) => {
    parseCommunity(s);
    const m = /^(\d+):(\d+)$/.exec(s);
    return m ? `${Number(m[1])}:${Number(m[2])}` : s;
  });
const largeCommunity = () => text("a large community A:B:C (each 0..4294967295)", (s) => parseLargeCommunity(s).join(":"));

const communityList = () => oneOrMany(community());
const largeCommunityList = () => oneOrMany(largeCommunity());

export const FAMILIES = ["ipv4", "ipv6"] as const;
export type FamilyName = (typeof FAMILIES)[number];

/** Families in canonical order, at least one, none twice. */
const families = () =>
  oneOrMany(choice(FAMILIES))
    .check((ctx) => {
      const v = ctx.value;
      const dup = v.find((x, i) => v.indexOf(x) !== i);
      if (v.length === 0) report(ctx, v, expectedText("a list of families (ipv4, ipv6)", v, "the list is empty"));
      else if (dup) report(ctx, v, expectedText("a list of distinct families", v, `${dup} is listed twice`));
    })
    .transform((v): FamilyName[] => FAMILIES.filter((x) => v.includes(x)));

const port = (min = 1) => int(min, 65535, `a port ${min}..65535`);
const HOLD_WHAT = "a hold time of 0 or 3..65535 seconds";
const holdTime = () => int(0, 65535, HOLD_WHAT).refine((v) => v !== 1 && v !== 2, expected(HOLD_WHAT, () => "RFC 4271 forbids 1 and 2"));

const utf8Bytes = (s: string) => new TextEncoder().encode(s).length;

// ---------------------------------------------------------------------------
// Policies

const POLICY_REF_WHAT = 'a policy name, a list of policy names, "all" or "none"';
const policyName = (what = "a policy name") => str(what).meta({ ref: "policy" });

/** A peer's import or export (the RIB's PolicyRef): "all", "none", a policy name or a list of them. */
const policyRef = () =>
  z
    .union([
      choice(["all", "none"]).transform((kind): PolicyRef => ({ kind })),
      policyName(POLICY_REF_WHAT).transform((name): PolicyRef => ({ kind: "chain", names: [name] })),
      z
        .array(
          z.string(expected("a policy name")).check((ctx) => {
            const s = ctx.value;
            if (s === "all" || s === "none") report(ctx, s, `"${s}" cannot be part of a policy chain; use it alone, or a policy with default accept/reject`);
            else if (s === "") report(ctx, s, expectedText("a policy name", s));
          }).meta({ ref: "policy" }),
        )
        .check((ctx) => {
          if (ctx.value.length === 0) report(ctx, ctx.value, expectedText(POLICY_REF_WHAT, ctx.value, 'an empty list; use "none" to send or accept nothing'));
        })
        .transform((names): PolicyRef => ({ kind: "chain", names })),
    ])
    .meta({ what: POLICY_REF_WHAT });

const PREFIX_ENTRY = '"PREFIX [ge N] [le N]" or {prefix, ge, le}';

/** The family maximum and the length of a canonical prefix. */
function lengths(p: string): { len: number; max: number } {
  const x = parsePrefix(p);
  return { len: x.len, max: x.afi === AFI.IPV6 ? 128 : 32 };
}

function entry(prefix: string, ge: number | undefined, le: number | undefined): PrefixMatch {
  const m: PrefixMatch = { prefix };
  if (ge !== undefined) m.ge = ge;
  if (le !== undefined) m.le = le;
  return m;
}


/** "10.0.0.0/8 ge 16 le 24": ge/le within prefix length..family maximum, ge ≤ le. */
const prefixEntryText = z.string().transform((raw, ctx): PrefixMatch => {
  const s = raw.trim();
  const bad = (detail?: string) => fail(ctx, raw, expectedText(`a prefix entry ${PREFIX_ENTRY}`, raw, detail));
  const tokens = s.split(/\s+/);
  let p: string;
  try {
    p = prefixToString(parsePrefix(tokens[0]!));
  } catch (e) {
    return bad(prefixReason(e));
  }
  const { len, max } = lengths(p);
  let ge: number | undefined;
  let le: number | undefined;
  for (let i = 1; i < tokens.length; i += 2) {
    const word = tokens[i]!.toLowerCase();
    const num = tokens[i + 1];
    if ((word !== "ge" && word !== "le") || num === undefined || !/^\d{1,3}$/.test(num) || (word === "ge" ? ge : le) !== undefined) return bad();
    if (word === "ge") ge = Number(num);
    else le = Number(num);
  }
  if (ge !== undefined && (ge < len || ge > max)) return fail(ctx, raw, `expected ge ${len}..${max} (prefix length..${max}), got ge ${ge} in "${s}"`);
  const lo = ge ?? len;
  if (le !== undefined && (le < lo || le > max)) {
    return fail(ctx, raw, `expected le ${lo}..${max} (${ge !== undefined ? "ge" : "prefix length"}..${max}), got le ${le} in "${s}"`);
  }
  return entry(p, ge, le);
});

const prefixEntryMap = z
  .strictObject({ prefix: prefix(), ge: z.unknown().optional(), le: z.unknown().optional() })
  .meta({ what: PREFIX_ENTRY })
  .check((ctx) => {
    const { prefix: p, ge, le } = ctx.value;
    const { len, max } = lengths(p);
    const range = (v: unknown, min: number, name: string, what: string) => Number.isInteger(v) && (v as number) >= min && (v as number) <= max
      ? undefined
      : report(ctx, v, expectedText(what, v), [name]);
    if (ge !== undefined) range(ge, len, "ge", `ge ${len}..${max} (prefix length..${max})`);
    const lo = typeof ge === "number" ? ge : len;
    if (le !== undefined) range(le, lo, "le", `le ${lo}..${max} (${ge !== undefined ? "ge" : "prefix length"}..${max})`);
  })
  .transform((m): PrefixMatch => entry(m.prefix, m.ge as number | undefined, m.le as number | undefined));

const prefixEntry = () => z.union([prefixEntryText, prefixEntryMap]).meta({ what: `a prefix entry ${PREFIX_ENTRY}` });

const SOURCES = ["local", "ibgp", "ebgp"] as const;

/** Conditions of a policy term; all present conditions must hold (AND); inside a list any entry may match (OR). */
export const PolicyMatchSchema = z
  .strictObject({
    prefix: oneOrMany(prefixEntry()).optional().meta({ doc: "inline prefix entries" }),
    prefixList: oneOrMany(str("a prefix-list name").meta({ ref: "prefix list" })).optional().meta({ doc: "names of prefix lists (top-level prefixLists)" }),
    community: communityList().optional().meta({ doc: 'route carries any of these communities ("A:B" or well-known names)' }),
    largeCommunity: largeCommunityList().optional().meta({ doc: 'route carries any of these large communities ("A:B:C")' }),
    asPath: z
      .string(expected("a regular expression over the AS path (a string)"))
      .check((ctx) => {
        try {
          new RegExp(ctx.value);
        } catch (e) {
          report(ctx, ctx.value, expectedText("a valid regular expression", ctx.value, (e as Error).message));
        }
      })
      .optional()
      .meta({ doc: 'regular expression over the AS path text "65001 65002 {65003,65004}"' }),
    nextHop: oneOrMany(address()).optional().meta({ doc: "next hop is one of these addresses" }),
    neighbor: oneOrMany(z.union([z.literal("local"), address({ what: 'a neighbour address or "local"' })]).meta({ what: 'a neighbour address or "local"' }))
      .optional()
      .meta({ doc: 'route was learned from one of these neighbours ("local": originated here)' }),
    family: choice(FAMILIES).optional().meta({ doc: "route is of this family" }),
    source: oneOrMany(choice(SOURCES)).optional().meta({ doc: "route came from: local, ibgp or ebgp" }),
  })
  .meta({ what: "a mapping of match conditions" });

export const CommunitySetSchema = (item: () => z.ZodType<string>) =>
  z
    .strictObject({
      add: oneOrMany(item()).optional(),
      remove: oneOrMany(item()).optional(),
      /** Replace all communities with this list (applied before add/remove). */
      replace: oneOrMany(item()).optional(),
    })
    .meta({ what: "a mapping with add, remove and/or replace" });

export const PolicySetSchema = z
  .strictObject({
    localPref: int(0, U32, "a local preference 0..4294967295").optional(),
    med: int(0, U32, "a MED 0..4294967295").optional(),
    community: CommunitySetSchema(community).optional(),
    largeCommunity: CommunitySetSchema(largeCommunity).optional(),
    nextHop: z.union([z.literal("self"), address({ what: '"self" or an IPv4 or IPv6 address' })]).meta({ what: '"self" or an IPv4 or IPv6 address' }).optional().meta({ doc: '"self" (the session\'s local address) or an address' }),
    asPathPrepend: int(1, 32, "a prepend count 1..32").optional().meta({ doc: "prepend our own AS this many times" }),
  })
  .meta({ what: "a mapping of attribute changes" });

export const PolicyTermSchema = z
  .strictObject({
    name: str("a term name").optional().meta({ doc: "shown in logs and show" }),
    match: PolicyMatchSchema.optional(),
    set: PolicySetSchema.optional(),
    action: choice(["accept", "reject"]).optional().meta({ doc: "accept/reject end evaluation; absent: apply set and go on" }),
  })
  .meta({ what: "a policy term: a mapping with match, set and action" });

const termList = () => z.array(PolicyTermSchema).meta({ what: "a list of policy terms" });

/** A policy: a list of terms (default reject), or {terms, default}. */
export const PolicySchema = z
  .union([
    termList().transform((terms) => ({ terms, default: "reject" as "accept" | "reject" })),
    z
      .strictObject({
        terms: termList().default([]),
        default: choice(["accept", "reject"]).default("reject").meta({ doc: "verdict when no term decided" }),
      })
      .meta({ what: "a list of terms or a mapping with terms and default" }),
  ])
  .meta({ what: "a list of terms or a mapping with terms and default" });

// ---------------------------------------------------------------------------
// Peers

const MAX_PREFIX_LIMIT = "a prefix limit 1..4294967295";
const maxPrefixMap = z
  .strictObject({
    limit: int(1, U32, MAX_PREFIX_LIMIT),
    action: choice(["warn", "restart"]).default("warn"),
    restartAfter: int(1, 65535, "a delay 1..65535 seconds").default(60).meta({ doc: "seconds before reconnecting after a max-prefix teardown" }),
  })
  .meta({ what: "a prefix limit or a mapping with limit, action and restartAfter" });

/** Per family; the same limit for every family when given once. */
export const maxPrefix = () =>
  z
    .union([int(1, U32, MAX_PREFIX_LIMIT).transform((limit) => maxPrefixMap.parse({ limit })), maxPrefixMap])
    .meta({ what: "a prefix limit or a mapping with limit, action and restartAfter" });

const PASSWORD_WHAT = "a TCP-MD5 password (1..80 bytes)";
const password = () =>
  str(PASSWORD_WHAT).check((ctx) => {
    const bytes = utf8Bytes(ctx.value);
    if (bytes > 80) report(ctx, ctx.value, expectedText("a TCP-MD5 password of at most 80 bytes (RFC 2385, Linux TCP_MD5SIG_MAXKEYLEN)", ctx.value, `${bytes} bytes`));
  });

const SHUTDOWN_WHAT = "true, false or a shutdown message";
/** `shutdown: true|false|"message"` → administratively down, with the message (RFC 9003: at most 255 bytes). */
const shutdownInput = () =>
  z
    .union([
      z.boolean().transform((down) => ({ down, message: undefined as string | undefined })),
      z
        .string()
        .check((ctx) => {
          const bytes = utf8Bytes(ctx.value);
          if (bytes > 255) report(ctx, ctx.value, expectedText("a shutdown message of at most 255 bytes (RFC 9003)", ctx.value, `${bytes} bytes`));
        })
        .transform((m) => ({ down: true, message: m || undefined })),
    ])
    .meta({ what: SHUTDOWN_WHAT });

const MULTIHOP_WHAT = "true, false or a TTL 1..255";

/**
 * Graceful restart (RFC 4724), notification GR (RFC 8538) and long-lived GR
 * (RFC 9494), as the daemon runs them for one peer: the top-level
 * `gracefulRestart:` mapping, then a peer group's, then the peer's own,
 * merged key by key (resolve.ts), over these defaults.
 */
export const GracefulRestartSchema = z
  .strictObject({
    enabled: bool().default(true).meta({ doc: "advertise the capability; keep a restarting peer's routes (helper) and restart gracefully ourselves" }),
    restartTime: int(0, 4095, "a restart time 0..4095 seconds").default(120).meta({ doc: "seconds a peer may keep our routes while we restart" }),
    notification: bool().default(true).meta({ doc: "RFC 8538: a NOTIFICATION (other than Hard Reset) is a restart too" }),
    longLivedStaleTime: int(0, 16777215, "a stale time 0..16777215 seconds").default(0).meta({ doc: "RFC 9494 long-lived stale time; 0: no LLGR" }),
    selectionDeferral: int(1, 3600, "a deferral 1..3600 seconds").default(360).meta({ doc: "the longest wait for End-of-RIB: after our restart before sending initial tables, and after a restarted peer is back before removing its stale routes" }),
  })
  .meta({ what: "a mapping with enabled, restartTime, notification, longLivedStaleTime and selectionDeferral" });

/**
 * BFD (RFC 5880/5881/5883) for one peer, merged like gracefulRestart. Times
 * are milliseconds.
 */
export const BfdSchema = z
  .strictObject({
    enabled: bool().default(false).meta({ doc: "run a BFD session with the peer; its failure takes the BGP session down" }),
    minTx: int(10, 60000, "an interval 10..60000 milliseconds").default(300).meta({ doc: "desired minimum transmit interval, ms" }),
    minRx: int(10, 60000, "an interval 10..60000 milliseconds").default(300).meta({ doc: "required minimum receive interval, ms" }),
    multiplier: int(1, 255, "a detection multiplier 1..255").default(3).meta({ doc: "detection time multiplier" }),
    multihop: bool().optional().meta({ doc: "RFC 5883 (UDP 4784) instead of single hop (3784); default: the peer's multihop" }),
    graceful: bool().default(false).meta({ doc: "BFD down is a restart of a graceful-restart peer (keep its routes stale), as BIRD's bfd graceful" }),
  })
  .meta({ what: "a mapping with enabled, minTx, minRx, multiplier, multihop and graceful" });

/**
 * A peer after its peer groups are merged and defaults applied (what the
 * daemon runs). Each key's schema parses the file's (or request's) value; the
 * defaults and reload effects live here.
 */
export const PeerConfigSchema = z.strictObject({
  address: address({ zone: true }).meta({ required: "the peer's IPv4 or IPv6 address", reload: "none", doc: "the peer's address (IPv6 link-local with %zone)" }),
  remoteAs: asn().meta({ required: "the peer's AS number", reload: "reset", doc: "the peer's AS number" }),
  localAs: asn().meta({ reload: "reset", doc: "our AS towards this peer (default: asn)" }),
  port: port().default(179).meta({ reload: "reset", doc: "the peer's TCP port" }),
  localAddress: address({ zone: true }).optional().meta({ reload: "reset", doc: "connect from (and accept on) this address" }),
  passive: bool().default(false).meta({ reload: "reset", doc: "never connect, wait for the peer" }),
  holdTime: holdTime().default(90).meta({ reload: "reset", doc: "0 or 3..65535 s; the session uses the smaller of both sides'" }),
  keepalive: int(1, 65535, "a keepalive interval 1..65535 seconds").optional().meta({ reload: "reset", doc: "seconds between KEEPALIVEs (default: holdTime / 3)" }),
  connectRetry: int(1, 65535, "a connect retry interval 1..65535 seconds").default(120).meta({ reload: "none", doc: "seconds between connection attempts" }),
  families: families().default(["ipv4", "ipv6"]).meta({ reload: "reset", doc: "address families negotiated (ipv4, ipv6)" }),
  nextHopSelf: bool().default(false).meta({ reload: "reexport", doc: "set our address as next hop on routes sent (also iBGP)" }),
  routeReflectorClient: bool().default(false).meta({ reload: "reexport", doc: "an iBGP route-reflector client (RFC 4456)" }),
  multihop: z
    .union([z.boolean().transform((v): number | false => (v ? 255 : false)), int(1, 255, MULTIHOP_WHAT)])
    .meta({ what: MULTIHOP_WHAT })
    .default(false)
    .meta({ reload: "reset", doc: "eBGP multihop: true, false or a TTL 1..255" }),
  import: policyRef().optional().meta({ reload: "reimport", doc: "import policy: a name, a chain, all or none" }),
  export: policyRef().optional().meta({ reload: "reexport", doc: "export policy: a name, a chain, all or none" }),
  maxPrefix: maxPrefix().optional().meta({ reload: "none", doc: "a limit, or {limit, action warn|restart, restartAfter}" }),
  description: str("a description (a string)").optional().meta({ reload: "none", doc: "free text shown by show neighbors" }),
  shutdown: z.boolean().default(false).meta({ reload: "none", doc: 'administratively down: true, or a shutdown message (RFC 9003)' }),
  shutdownMessage: z.string().optional().meta({ reload: "none" }),
  allowOwnAs: int(0, 10, "a count 0..10").default(0).meta({ reload: "reimport", doc: "accept our own AS in received AS paths up to this many times" }),
  enforceFirstAs: bool()
    .default(true)
    .meta({
      reload: "reimport",
      doc: "eBGP: the first AS in a received AS_PATH must be the peer's AS (RFC 4271 §6.3; BIRD/FRR enforce it by default); set false for route servers",
    }),
  asOverride: bool().default(false).meta({ reload: "reexport", doc: "send routes back to the AS they came from (eBGP), normally suppressed" }),
  addPath: z
    .strictObject({ send: bool().default(false), receive: bool().default(false) })
    .meta({ what: "a mapping with send and receive" })
    .optional()
    .meta({ reload: "reset", doc: "ADD-PATH (RFC 7911): {send, receive}" }),
  group: str("a peer group name").meta({ ref: "peer group" }).optional().meta({ reload: "none", doc: "the peer group it is based on" }),
  password: password().optional().meta({ reload: "reset", doc: "TCP-MD5 (RFC 2385) key; never shown" }),
  ttlSecurity: int(1, 254, "a hop count 1..254").optional().meta({ reload: "reset", doc: "GTSM (RFC 5082): send with TTL 255, accept only TTL >= 256 - hops" }),
  gracefulRestart: GracefulRestartSchema.prefault({}).meta({ reload: "reset", doc: "graceful restart settings (over the top-level gracefulRestart)" }),
  bfd: BfdSchema.prefault({}).meta({ reload: "none", doc: "BFD settings (over the top-level bfd)" }),
});

/** The keys of a peer's configuration that a peer and a peer group share (everything but address and group). */
const shared = PeerConfigSchema.omit({ address: true, group: true, shutdownMessage: true }).shape;

/** The schema of a key as written (no default: a peer group's value must win over a default). */
function asWritten<T extends z.ZodType>(s: T) {
  const def = s._zod.def as { type: string; innerType?: z.ZodType };
  const inner = def.type === "default" || def.type === "optional" ? def.innerType! : s;
  return inner.optional().meta({ ...metaOf(s), required: undefined }) as z.ZodOptional<T extends z.ZodDefault<infer I> ? I : T extends z.ZodOptional<infer I> ? I : T>;
}

function writtenShape<S extends Record<string, z.ZodType>>(shape: S) {
  const out = {} as { [K in keyof S]: z.ZodOptional<S[K] extends z.ZodDefault<infer I> ? I : S[K] extends z.ZodOptional<infer I> ? I : S[K]> };
  for (const k of Object.keys(shape) as (keyof S)[]) (out as Record<keyof S, z.ZodType>)[k] = asWritten(shape[k]);
  return out;
}

/** A settings mapping as written: every key optional, no defaults (layers merge key by key before the defaults apply). */
function writtenObject<S extends Record<string, z.ZodType>>(schema: z.ZodObject<S>) {
  return z.strictObject(writtenShape(schema.shape)).meta({ what: metaOf(schema).what });
}
/** `gracefulRestart:` as written (top level, peer group or peer). */
export const GracefulRestartWritten = writtenObject(GracefulRestartSchema);
/** `bfd:` as written (top level, peer group or peer). */
export const BfdWritten = writtenObject(BfdSchema);

/** The peer keys of the file, shared by peers, peer groups and Kubernetes peers. */
const commonPeerKeys = {
  ...writtenShape(shared),
  gracefulRestart: GracefulRestartWritten.optional().meta({ ...metaOf(PeerConfigSchema.shape.gracefulRestart) }),
  bfd: BfdWritten.optional().meta({ ...metaOf(PeerConfigSchema.shape.bfd) }),
  shutdown: shutdownInput().optional().meta({ reload: "none", doc: "administratively down: true, or a shutdown message (RFC 9003)" }),
  passwordFile: str("the path of a file holding the TCP-MD5 password").optional().meta({ reload: "reset", doc: "a file holding the password (one line), relative to the config file" }),
};

const PEER_WHAT = "a peer: a mapping with address, remoteAs, ...";

/** A peer as written under `peers:`. */
export const PeerSchema = z
  .strictObject({ address: PeerConfigSchema.shape.address, group: asWritten(PeerConfigSchema.shape.group), ...commonPeerKeys })
  .meta({ what: PEER_WHAT, hints: { inherit: 'use "group" to base a peer on a peer group' } });

/** A peer group: the peer keys, and `inherit` (another group it is based on). */
export const PeerGroupSchema = z
  .strictObject({ inherit: str("a peer group name").meta({ ref: "peer group", doc: "the peer group this one is based on" }).optional(), ...commonPeerKeys })
  .meta({
    what: "a mapping of peer settings",
    hints: { address: "a peer group cannot set the address; list peers under peers", group: 'use "inherit" to base a peer group on another' },
  });

/** A Kubernetes Secret key holding a TCP-MD5 password. */
export const SecretRefSchema = z
  .strictObject({
    name: str("a Secret name").meta({ required: "the Secret's name" }),
    key: str("a key of the Secret").meta({ required: "the key in the Secret's data" }),
    namespace: str("a namespace").default("kube-system"),
  })
  .meta({ what: "a mapping with name, key and namespace" });

/** An external peer of `kubernetes.peers`: a peer plus the nodes it applies to and a password Secret. */
export const KubePeerSchema = z
  .strictObject({
    ...PeerSchema.shape,
    nodeSelector: z
      .record(z.string(), z.union([z.string(), z.number(), z.boolean()]).meta({ what: "a label value (a string)" }).transform(String))
      .meta({ what: "a mapping of node labels to values (matchLabels)", doc: "matchLabels; absent: every node" })
      .default({}),
    passwordSecret: SecretRefSchema.optional().meta({ doc: "password from a Secret: {name, key, namespace}" }),
  })
  .meta({ what: PEER_WHAT });

const annotationHints = {
  password: "use passwordSecret: annotations are readable by anyone who can read Nodes",
  passwordFile: "use passwordSecret: annotations are readable by anyone who can read Nodes",
  nodeSelector: "the peers of a node's annotation are that node's own",
};

/** A peer of a node's `bgpctl.io/peers` annotation: a Kubernetes peer without selector, group or plain-text password. */
export const AnnotationPeerSchema = KubePeerSchema.omit({ nodeSelector: true, group: true, password: true, passwordFile: true }).meta({
  what: PEER_WHAT,
  hints: annotationHints,
});

/** A peer of the control API's `POST /v1/peers`: every peer key but group and passwordFile. */
export const RequestPeerSchema = PeerSchema.omit({ group: true, passwordFile: true }).extend({ remoteAs: PeerConfigSchema.shape.remoteAs }).meta({
  what: "a JSON object with address, remoteAs, ...",
  hints: { group: "peer groups exist only in the configuration file", passwordFile: "give the password itself" },
});

// ---------------------------------------------------------------------------
// Advertisements

const ADVERTISE_WHAT = "a prefix or a mapping with prefix, nextHop, communities, ...";

/** The attributes of an originated route (the file's `advertise` entries and `bgpctl advertise`). */
const advertiseAttributes = {
  nextHop: address().optional().meta({ doc: "next hop (default: the session's local address)" }),
  communities: communityList().default([]),
  largeCommunities: largeCommunityList().default([]),
  localPref: int(0, U32, "a local preference 0..4294967295").optional(),
  med: int(0, U32, "a MED 0..4294967295").optional(),
  asPathPrepend: int(1, 32, "a prepend count 1..32").optional(),
};

/** An `advertise` entry as a mapping. */
export const AdvertiseEntrySchema = z.strictObject({ prefix: prefix().meta({ doc: "the prefix to originate" }), ...advertiseAttributes }).meta({ what: ADVERTISE_WHAT });

/** An `advertise` entry: a prefix alone, or a mapping. */
export const AdvertiseSchema = z
  .union([prefix().transform((p): z.output<typeof AdvertiseEntrySchema> => ({ prefix: p, communities: [], largeCommunities: [] })), AdvertiseEntrySchema])
  .meta({ what: ADVERTISE_WHAT });

/** `POST /v1/advertise`: prefixes with the attributes of a file advertisement. */
export const AdvertiseRequestSchema = z
  .strictObject({
    prefixes: z
      .array(prefix())
      .meta({ what: "an array of prefixes", required: "a non-empty array of prefixes" })
      .check((ctx) => {
        if (ctx.value.length === 0) report(ctx, ctx.value, "must not be empty (a non-empty array of prefixes)");
      }),
    ...advertiseAttributes,
  })
  .meta({ what: "a JSON object with prefixes, nextHop, communities, ..." });

/** `POST /v1/withdraw`: the prefixes of an advertisement. */
export const WithdrawRequestSchema = z.strictObject({ prefixes: AdvertiseRequestSchema.shape.prefixes }).meta({ what: "a JSON object with prefixes" });

// ---------------------------------------------------------------------------
// Kernel, health, Kubernetes, top level

export const KernelSchema = z
  .strictObject({
    enabled: bool().optional().meta({ doc: "program best routes into the kernel (default: false; true under kubernetes:)" }),
    table: int(1, U32, "a routing table id 1..4294967295 (254 is main)").default(254),
    protocol: int(1, 255, "a route protocol number 1..255 (186 is bgp)").default(186),
    metric: int(0, U32, "a metric 0..4294967295").default(20),
    ecmp: bool().default(true).meta({ doc: "install multipath sets as one ECMP route" }),
    families: families().default(["ipv4", "ipv6"]),
    exclude: oneOrMany(prefix()).default([]).meta({ doc: "prefixes never installed, nor anything inside" }),
    retainOnExit: bool().default(false).meta({ doc: "keep our routes also on bgpctl shutdown (SIGTERM, a graceful restart, keeps them anyway)" }),
    startupDeadline: int(0, 3600, "a deadline 0..3600 seconds").default(60),
  })
  .meta({ what: "a mapping of kernel route settings" });

export const HealthSchema = z
  .strictObject({ address: address().default("::"), port: port().default(9179) })
  .meta({ what: "a mapping with address and port" });

const listenEntry = z.strictObject({ address: address({ zone: true }).default("::"), port: port(0).default(179) }).meta({ what: "a mapping with address and port" });

const SERVICE_RANGE_LISTS = ["clusterIPRanges", "externalIPRanges", "loadBalancerIPRanges"] as const;

/**
 * The Service range lists (`kubernetes.services.*IPRanges`): no range is the
 * default route, no two overlap (within a list or across lists: every
 * address has at most one range, so a Service IP's form is never
 * ambiguous), and with allowedRanges set each lies inside one of them (of
 * its family).
 */
function checkServiceRanges(ctx: {
  value: { allowedRanges: string[] } & Record<(typeof SERVICE_RANGE_LISTS)[number], string[]>;
  issues: unknown[];
}): void {
  const v = ctx.value;
  const allowed = v.allowedRanges.map((a) => parsePrefix(a));
  const seen: { list: string; i: number; text: string; p: Prefix }[] = [];
  for (const list of SERVICE_RANGE_LISTS) {
    v[list].forEach((text, i) => {
      const p = parsePrefix(text);
      const at = [list, i];
      if (p.len === 0) return report(ctx, text, expectedText("a Service range", text, "a default route would attract all traffic to every node"), at);
      const other = seen.find((o) => prefixContains(o.p, p) || prefixContains(p, o.p));
      if (other) {
        const where = other.list === list ? `${list}[${other.i}]` : `${other.list}[${other.i}]; an address may be in one range only`;
        return report(ctx, text, expectedText("a Service range overlapping no other", text, `overlaps ${other.text} of ${where}`), at);
      }
      if (allowed.length > 0 && !allowed.some((a) => prefixContains(a, p))) {
        const fam = p.afi === AFI.IPV6 ? "IPv6" : "IPv4";
        const why = allowed.some((a) => a.afi === p.afi) ? "outside kubernetes.services.allowedRanges" : `allowedRanges has no ${fam} prefix`;
        return report(ctx, text, expectedText("a Service range inside kubernetes.services.allowedRanges", text, why), at);
      }
      seen.push({ list, i, text, p });
    });
  }
}

export const KubernetesSchema = z
  .strictObject({
    nodeName: str("a Node name").optional().meta({ doc: "else --node-name, $NODE_NAME, the hostname" }),
    kubeconfig: str("the path of a kubeconfig file").optional(),
    asn: asn().default(64512).meta({ doc: "the cluster's AS; a node annotation may override it" }),
    routerId: dottedQuad(ROUTER_ID_WHAT, true).optional(),
    mesh: bool().default(true).meta({ doc: "iBGP sessions between the nodes" }),
    advertisePodCidrs: bool().default(true),
    advertisePodCidrsExternal: bool().default(true),
    meshHoldTime: holdTime().default(90),
    meshPort: port().default(179),
    peers: z.array(KubePeerSchema).meta({ what: "a list of external peers", emptyOk: true }).default([]),
    services: z
      .strictObject({
        clusterIPs: bool().default(true),
        externalIPs: bool().default(true),
        loadBalancerIPs: bool().default(true),
        allowedRanges: oneOrMany(prefix()).default([]).meta({ doc: "only Service IPs inside these prefixes; empty: any" }),
        clusterIPRanges: oneOrMany(prefix()).default([]).meta({ doc: "Service CIDRs every node advertises as aggregates (cluster IPs)" }),
        externalIPRanges: oneOrMany(prefix()).default([]).meta({ doc: "external IP ranges every node advertises as aggregates" }),
        loadBalancerIPRanges: oneOrMany(prefix()).default([]).meta({ doc: "load balancer IP ranges every node advertises as aggregates" }),
        communities: communityList().default([]),
        largeCommunities: largeCommunityList().default([]),
        withdrawWhenCordoned: bool().default(true),
        withdrawWhenExcluded: bool().default(true),
        requireEndpoints: bool().default(true),
      })
      .meta({ what: "a mapping of Service advertisement settings" })
      .check(checkServiceRanges)
      .prefault({}),
    overlay: z
      .strictObject({
        mode: choice(["crossSubnet", "always", "none"])
          .default("crossSubnet")
          .meta({ doc: "VXLAN to nodes not on a connected subnet (crossSubnet), to every node (always), or never (none: such pod CIDRs are unreachable)" }),
        vni: int(1, 16777215, "a VXLAN id 1..16777215").default(4096),
        port: port().default(4789).meta({ doc: "VXLAN UDP port" }),
        mtu: z
          .union([z.literal("auto"), int(68, 65535)])
          .meta({ what: 'an MTU 68..65535 or "auto"' })
          .default("auto")
          .meta({ doc: "the VXLAN device's MTU; auto: the underlay device's minus 50 (IPv4) or 70 (IPv6)" }),
      })
      .meta({ what: "a mapping with mode, vni, port and mtu (README \"Pods across subnets\")" })
      .prefault({}),
    api: z
      .strictObject({
        pageSize: int(1, 10000, "a page size 1..10000").default(500),
        watchTimeoutSeconds: int(10, 289, "a watch timeout 10..289 seconds (Bun's HTTP idle timeout is 300 s)").default(240),
      })
      .meta({ what: "a mapping with pageSize and watchTimeoutSeconds" })
      .prefault({}),
  })
  .meta({ what: "a mapping of Kubernetes settings (asn, mesh, peers, services, ...)", emptyOk: true });

// ---------------------------------------------------------------------------
// Health checks (lib/health): anycast prefixes announced while a local check passes

/** Seconds, fractions allowed (a lab may check every 0.2 s). */
const seconds = (min: number, max: number) => z.number(expected(`a number of seconds ${min}..${max}`)).min(min).max(max);
const PROBES = ["exec", "http", "tcp"] as const;

/** One entry of `healthChecks:` (README "Health-checked anycast"). */
export const HealthCheckSchema = z
  .strictObject({
    name: str("a check name").regex(/^[A-Za-z0-9_.-]+$/, expected("a check name of letters, digits, _ . -")).meta({ required: "the check's name (show checks, bgpctl check NAME)" }),
    prefixes: oneOrMany(prefix())
      .check((ctx) => {
        if (ctx.value.length === 0) report(ctx, ctx.value, expectedText("a list of prefixes", ctx.value, "the list is empty"));
      })
      .meta({ required: "the prefixes announced while the check passes", doc: "announced while up (IPv4 and IPv6)" }),
    exec: z
      .union([str("a command line"), z.array(str("an argument")).min(1, expected("a non-empty list of arguments"))])
      .meta({ what: "a command line or a list of arguments" })
      .optional()
      .meta({ doc: "command; exit status 0 passes (split into arguments without a shell: quotes '...' and \"...\", backslash escapes)" }),
    shell: bool().default(false).meta({ doc: "run exec with /bin/sh -c" }),
    http: z
      .strictObject({
        url: text("an http:// or https:// URL", (s) => (/^https?:\/\/[^/]/.test(s) && URL.canParse(s) ? s : new Error(""))).meta({ required: "the URL to GET" }),
        expectStatus: int(100, 599, "an HTTP status 100..599").default(200),
      })
      .meta({ what: "a mapping with url and expectStatus" })
      .optional()
      .meta({ doc: "GET url passes on status expectStatus" }),
    tcp: z
      .strictObject({ address: address().meta({ required: "the address to connect to" }), port: port().meta({ required: "the port to connect to" }) })
      .meta({ what: "a mapping with address and port" })
      .optional()
      .meta({ doc: "a TCP connect passes" }),
    interval: seconds(0.05, 86400).default(5).meta({ doc: "seconds between checks while up or down" }),
    fastInterval: seconds(0.05, 86400).default(1).meta({ doc: "seconds between checks while rising or falling" }),
    timeout: seconds(0.05, 3600).default(2).meta({ doc: "a check running longer fails (an exec is killed)" }),
    rise: int(1, 1000, "a count 1..1000").default(3).meta({ doc: "consecutive successes to go up" }),
    fall: int(1, 1000, "a count 1..1000").default(3).meta({ doc: "consecutive failures to go down" }),
    drainFile: str("a file path").optional().meta({ doc: "while this file exists the check is disabled (down)" }),
    onDown: z
      .union([
        z.literal("withdraw", expected('"withdraw" or {degrade: {med, prepend, communities}}')),
        z
          .strictObject({
            degrade: z
              .strictObject({
                med: int(0, U32, "a MED 0..4294967295").optional(),
                prepend: int(1, 32, "a prepend count 1..32").optional(),
                communities: communityList().default([]),
              })
              .meta({ what: "a mapping with med, prepend and communities" }),
          })
          .meta({ what: '"withdraw" or {degrade: {med, prepend, communities}}' }),
      ])
      .meta({ what: '"withdraw" or {degrade: {med, prepend, communities}}' })
      .default("withdraw")
      .meta({ doc: "while not up: withdraw, or keep announcing with worse attributes" }),
    communities: communityList().default([]).meta({ doc: "attached while up" }),
    loopback: bool().default(false).meta({ doc: "add the (host) prefixes' addresses to lo while up" }),
  })
  .meta({ what: "a health check: a mapping with name, prefixes, exec|http|tcp, ..." })
  .check((ctx) => {
    const v = ctx.value;
    const probes = PROBES.filter((k) => v[k] !== undefined);
    if (probes.length !== 1) report(ctx, v, `expected exactly one of exec, http or tcp, got ${probes.length ? probes.join(" and ") : "none"}`);
    if (v.shell && v.exec === undefined) report(ctx, v.shell, "shell: true needs exec", ["shell"]);
    if (v.shell && Array.isArray(v.exec)) report(ctx, v.exec, "expected a command line (a string) with shell: true, got a list", ["exec"]);
    if (typeof v.exec === "string" && !v.shell) {
      try {
        if (splitCommand(v.exec).length === 0) report(ctx, v.exec, expectedText("a command line", v.exec, "no arguments"), ["exec"]);
      } catch (e) {
        report(ctx, v.exec, expectedText("a command line", v.exec, (e as Error).message), ["exec"]);
      }
    }
    if (v.loopback) {
      const wide = v.prefixes.find((p) => !/\/(32|128)$/.test(p) || (p.endsWith("/32") && p.includes(":")));
      if (wide) report(ctx, wide, `loopback: true needs host prefixes (/32, /128), got ${wide}`, ["prefixes"]);
    }
  });

/** The file as written: sections before peer groups are merged and names resolved (resolve.ts does that). */
export const DocumentSchema = z
  .strictObject({
    asn: asn().optional().meta({ required: "our AS number", reload: "global", doc: "our AS number" }),
    routerId: dottedQuad(ROUTER_ID_WHAT, true).optional().meta({ required: "a dotted quad such as 192.0.2.1", reload: "global" }),
    listen: z
      .union([listenEntry.transform((l) => [l]), z.array(listenEntry)])
      .meta({ what: "{address, port} or a list of them" })
      .default([{ address: "::", port: 179 }])
      .meta({ reload: "global", doc: "where to accept BGP connections" }),
    controlSocket: str("a socket path such as /run/bgpctl/bgpctl.sock").default("/run/bgpctl/bgpctl.sock").meta({ reload: "global" }),
    peers: z.array(PeerSchema).meta({ what: "a list of peers", emptyOk: true }).default([]),
    peerGroups: z.record(z.string(), PeerGroupSchema).meta({ what: "a mapping of group names to peer settings", emptyOk: true }).default({}),
    advertise: z.array(AdvertiseSchema).meta({ what: "a list of prefixes to advertise", emptyOk: true }).default([]),
    healthChecks: z.array(HealthCheckSchema).meta({ what: "a list of health checks", emptyOk: true }).default([]).meta({ reload: "none", doc: "prefixes announced while a local check passes (lib/health)" }),
    policies: z.record(z.string(), PolicySchema).meta({ what: "a mapping of policy names to policies", emptyOk: true }).default({}),
    prefixLists: z
      .record(z.string(), z.array(prefixEntry()).meta({ what: "a list of prefix entries" }))
      .meta({ what: "a mapping of prefix-list names to lists of prefix entries", emptyOk: true })
      .default({}),
    multipath: z
      .strictObject({ enabled: bool().default(false), maxPaths: int(1, 64, "a number of paths 1..64").optional().meta({ doc: "default 8 when enabled" }) })
      .meta({ what: "a mapping with enabled and maxPaths" })
      .prefault({})
      .meta({ reload: "global" }),
    decision: z
      .strictObject({
        alwaysCompareMed: bool().default(false).meta({ doc: "compare MED between routes from different neighbour ASes" }),
        preferOldest: bool().default(false).meta({ doc: "prefer the oldest eBGP route before router id (RFC 5004)" }),
      })
      .meta({ what: "a mapping with alwaysCompareMed and preferOldest" })
      .prefault({})
      .meta({ reload: "global" }),
    clusterId: dottedQuad("a cluster id: a dotted quad such as 192.0.2.1", false).optional().meta({ reload: "global", doc: "route-reflector cluster id (default: router id)" }),
    mrai: int(0, 65535, "an interval 0..65535 seconds").default(0).meta({ reload: "global", doc: "minimum route advertisement interval" }),
    kernel: KernelSchema.prefault({}).meta({ reload: "global" }),
    health: HealthSchema.optional().meta({ reload: "global", doc: "HTTP health endpoint (/healthz, /readyz), off when absent" }),
    kubernetes: KubernetesSchema.optional().meta({ doc: "what bgpctl watch-k8s derives peers and routes from" }),
    gracefulRestart: GracefulRestartWritten.optional().meta({ reload: "none", doc: "graceful restart defaults of every peer (a peer group or peer overrides keys)" }),
    bfd: BfdWritten.optional().meta({ reload: "none", doc: "BFD defaults of every peer (a peer group or peer overrides keys)" }),
    metrics: z
      .strictObject({
        address: address().default("::").meta({ doc: "listen address" }),
        port: port().default(9180).meta({ doc: "listen port" }),
        path: z.string(expected("a URL path such as /metrics")).regex(/^\/[\x21-\x7e]*$/, expected("a URL path such as /metrics")).default("/metrics"),
      })
      .meta({ what: "a mapping with address, port and path" })
      .optional()
      .meta({ reload: "global", doc: "Prometheus metrics over HTTP, off when absent" }),
    mrtDump: z
      .strictObject({
        file: str("a file path (strftime %Y %m %d %H %M %S allowed)").meta({ required: "the file to write BGP4MP records to", doc: "path; strftime conversions name rotated files" }),
        rotate: int(0, 604800, "a rotation interval 0..604800 seconds").default(0).meta({ doc: "start a new file every N seconds; 0: never" }),
      })
      .meta({ what: "a mapping with file and rotate" })
      .optional()
      .meta({ reload: "global", doc: "record every session's BGP messages as MRT BGP4MP, off when absent" }),
    log: z
      .strictObject({ level: choice(["debug", "info", "warn", "error"]).default("info"), format: choice(["text", "json"]).default("text") })
      .meta({ what: "a mapping with level and format" })
      .prefault({})
      .meta({ reload: "global" }),
  })
  .meta({ what: "a mapping at the top level (asn, routerId, peers, ...)" });
