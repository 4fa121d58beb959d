/**
 * The locally originated routes (config `advertise`, `bgpctl advertise`,
 * Kubernetes), by prefix, with who owns each (file, API or health check),
 * built so that an originated prefix costs what a received one does: the
 * settings of an advertisement minus its prefix, the attribute set made from
 * them and the next hop are one shared `LocalSpec` for every prefix
 * advertised with the same settings (a 200k-prefix `advertise` call makes
 * one), held weakly by the interner and dropped when no prefix uses it any
 * more. Per prefix there is no object: this table's value is the record its
 * spec has for its owner (`LocalRoute`, shared), and the routes made for
 * the Loc-RIB share one head per spec (renewed each second, so that what a
 * route's arrival time is read for, the MRT table dump's "originated", stays
 * right to the second), which is all the Loc-RIB keeps of them.
 */
import { EMPTY_AS_PATH, type PathAttributes, asSequence, emptyAttributes, parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { ORIGIN } from "../bgp/types.ts";
import { sameValue } from "../config/diff.ts";
import type { AdvertiseConfig } from "../config/types.ts";
import { parseAddr } from "../core/addr.ts";
import { PrefixMap } from "../rib/prefix-map.ts";
import { type PrefixKey, type Route, type RouteSource, keyText, makeRoute, textKey, withKey } from "../rib/types.ts";

/**
 * Who added a neighbour or a local route: the config file (reload manages
 * it), the control API (reload leaves it), or a health check of the file
 * (lib/router/health-glue.ts; local routes only: the API may not change them).
 */
export type Owner = "config" | "api" | "health";

/** An advertisement's settings: everything but its prefix. */
export type LocalSettings = Omit<AdvertiseConfig, "prefix">;

/** How long the routes of one spec share a head (and so an arrival time), ms. */
const HEAD_MS = 1000;

/** What all prefixes advertised with the same settings share. */
interface LocalSpec {
  readonly settings: LocalSettings;
  readonly attrs: PathAttributes;
  /** Empty: "self" (each Adj-RIB-Out puts the session's local address). */
  readonly nextHop: Uint8Array;
  /** The route the last ones were made like (their shared head), and when it was made. */
  template: Route | null;
  madeAt: number;
  /** The table's value for a prefix of this spec, per owner. */
  readonly owned: Partial<Record<Owner, LocalRoute>>;
}

/**
 * What a table entry says of an originated prefix: its owner and its
 * settings. One object for every prefix with the same settings and owner
 * (compare with ===: the same object is the same settings and owner).
 */
export class LocalRoute {
  constructor(
    readonly owner: Owner,
    /** The shared spec (LocalRoutes's own). */
    readonly spec: LocalSpec,
  ) {}

  /** The advertisement's settings, without its prefix. */
  get settings(): LocalSettings {
    return this.spec.settings;
  }

  get attrs(): PathAttributes {
    return this.spec.attrs;
  }

  /** The advertisement of `prefix` as configured (made when asked: reloads compare it). */
  configOf(prefix: string): AdvertiseConfig {
    return { prefix, ...this.spec.settings };
  }

  /** Whether advertisement `a` is what this originates for its prefix. */
  matches(a: AdvertiseConfig): boolean {
    return sameValue(this.configOf(a.prefix), a);
  }
}

const SELF: Uint8Array = new Uint8Array(0);

/** A key for settings: the same settings give the same text, whatever the order of their fields. */
function settingsKey(s: LocalSettings): string {
  const o = s as Record<string, unknown>;
  return JSON.stringify(
    Object.keys(o)
      .filter((k) => o[k] !== undefined)
      .sort()
      .map((k) => [k, o[k]]),
  );
}

/** Whether advertisement `a` has exactly the fields of `s` (the same values; arrays of the same elements), its prefix aside: the last spec's quick check. */
function sameFields(a: AdvertiseConfig, s: LocalSettings): boolean {
  const ao = a as Record<string, unknown>;
  const so = s as Record<string, unknown>;
  let n = 0;
  for (const k in ao) {
    if (k === "prefix") continue;
    const x = ao[k];
    const y = so[k];
    if (x !== y && !(Array.isArray(x) && Array.isArray(y) && x.length === y.length && x.every((e, i) => e === y[i]))) return false;
    n++;
  }
  for (const _ in so) n--;
  return n === 0;
}

export class LocalRoutes {
  private readonly table = new PrefixMap<PrefixKey, LocalRoute>();
  private readonly specs = new Map<string, WeakRef<LocalSpec>>();
  private readonly registry = new FinalizationRegistry<string>((k) => {
    if (this.specs.get(k)?.deref() === undefined) this.specs.delete(k);
  });

  /** `asn`: our AS (for AS path prepends); `source`: the local route source. */
  constructor(
    private readonly asn: () => number,
    private readonly source: RouteSource,
  ) {}

  get size(): number {
    return this.table.size;
  }

  /** Counts every set and delete: unchanged means no local route changed (the reconfigurer's shortcut). */
  get version(): number {
    return this.writes;
  }
  private writes = 0;

  /** The spec the last advertisement had: the next one of a bulk request has the same fields. */
  private last: LocalSpec | null = null;

  /** The shared spec for these settings. */
  private spec(a: AdvertiseConfig): LocalSpec {
    const last = this.last;
    if (last !== null && sameFields(a, last.settings)) return last;
    const { prefix: _, ...settings } = a;
    const k = settingsKey(settings);
    const have = this.specs.get(k)?.deref();
    if (have !== undefined) return (this.last = have);
    const asn = this.asn();
    const attrs: PathAttributes = {
      ...emptyAttributes(),
      origin: ORIGIN.IGP,
      asPath: a.asPathPrepend ? asSequence(new Array<number>(a.asPathPrepend).fill(asn)) : EMPTY_AS_PATH,
      localPref: a.localPref ?? 100,
      med: a.med ?? null,
      communities: a.communities.map(parseCommunity),
      largeCommunities: a.largeCommunities.map(parseLargeCommunity),
    };
    const spec: LocalSpec = { settings, attrs, nextHop: a.nextHop ? parseAddr(a.nextHop)!.addr : SELF, template: null, madeAt: 0, owned: {} };
    this.specs.set(k, new WeakRef(spec));
    this.registry.register(spec, k);
    return (this.last = spec);
  }

  /** The route of prefix `key` for `spec`: the head of the spec's last ones, unless that is a second old. */
  private routeOf(spec: LocalSpec, key: PrefixKey): Route {
    const now = performance.now();
    if (spec.template === null || now - spec.madeAt >= HEAD_MS) {
      spec.template = makeRoute(key, 0, this.source, spec.attrs, spec.nextHop, now);
      spec.madeAt = now;
      return spec.template;
    }
    return withKey(spec.template, key);
  }

  /** Make (and store) the route for an advertisement; returns it. Replaces the prefix's earlier one. */
  set(a: AdvertiseConfig, owner: Owner): Route {
    const spec = this.spec(a);
    const key = textKey(a.prefix);
    this.table.set(key, (spec.owned[owner] ??= new LocalRoute(owner, spec)));
    this.writes++;
    return this.routeOf(spec, key);
  }

  /** What is stored for a prefix (canonical text), if it is originated. */
  get(prefixText: string): LocalRoute | undefined {
    return this.table.get(textKey(prefixText));
  }

  has(prefixText: string): boolean {
    return this.get(prefixText) !== undefined;
  }

  /** Forget a prefix; returns its key, or undefined when it was not originated. */
  delete(prefixText: string): PrefixKey | undefined {
    const k = textKey(prefixText);
    if (!this.table.delete(k)) return undefined;
    this.writes++;
    return k;
  }

  /** Give a prefix to another owner, keeping its route (false when it is not originated). */
  adopt(prefixText: string, owner: Owner): boolean {
    const k = textKey(prefixText);
    const cur = this.table.get(k);
    if (cur === undefined) return false;
    if (cur.owner !== owner) this.table.set(k, cur.spec.owned[owner] ??= new LocalRoute(owner, cur.spec));
    return true;
  }

  /** Every originated prefix (canonical text) with its record. */
  *[Symbol.iterator](): IterableIterator<[string, LocalRoute]> {
    for (const [k, e] of this.table.entries()) yield [keyText(k), e];
  }
}
