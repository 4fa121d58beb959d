/**
 * The locally originated routes (config `advertise`, `bgpctl advertise`,
 * Kubernetes), by prefix, with who owns each (file or API), built so that an
 * originated prefix costs about what a received one does: the settings of
 * an advertisement minus its prefix, the attribute set made from them and
 * the next hop are one shared `LocalSpec` for every prefix advertised with
 * the same settings (a 200k-prefix `advertise` call makes one), held weakly
 * by the interner and dropped when no route uses it any more; per prefix
 * only the Route, a small record and a table entry remain.
 */
import { EMPTY_AS_PATH, type PathAttributes, asSequence, emptyAttributes, parseCommunity, parseLargeCommunity } from "../bgp/attributes.ts";
import { ORIGIN } from "../bgp/types.ts";
import type { AdvertiseConfig } from "../config/types.ts";
import { parseAddr, parsePrefix, prefixToString } from "../core/addr.ts";
import { PrefixMap } from "../rib/prefix-map.ts";
import { type PrefixKey, type Route, type RouteSource, makeRoute, prefixKey } from "../rib/types.ts";

/**
 * Who added a neighbour or a local route: the config file (reload manages
 * it), the control API (reload leaves it), or a health check of the file
 * (lib/router/health-glue.ts; local routes only: the API may not change them).
 */
export type Owner = "config" | "api" | "health";

/** What all prefixes advertised with the same settings share. */
interface LocalSpec {
  /** The advertisement's settings, without its prefix. */
  readonly settings: Omit<AdvertiseConfig, "prefix">;
  readonly attrs: PathAttributes;
  /** Empty: "self" (each Adj-RIB-Out puts the session's local address). */
  readonly nextHop: Uint8Array;
}

/** One originated prefix. */
export class LocalRoute {
  constructor(
    readonly route: Route,
    public owner: Owner,
    private readonly spec: LocalSpec,
  ) {}

  /** The advertisement as configured (made when asked: reloads compare it). */
  get config(): AdvertiseConfig {
    return { prefix: prefixToString(this.route.prefix), ...this.spec.settings };
  }
}

const SELF: Uint8Array = new Uint8Array(0);

/** A key for settings: the same settings give the same text, whatever the order of their fields. */
function settingsKey(s: Omit<AdvertiseConfig, "prefix">): string {
  const o = s as Record<string, unknown>;
  return JSON.stringify(Object.keys(o).sort().map((k) => [k, o[k]]));
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

  /** The shared spec for these settings. */
  private spec(a: AdvertiseConfig): LocalSpec {
    const { prefix: _, ...settings } = a;
    const k = settingsKey(settings);
    const have = this.specs.get(k)?.deref();
    if (have !== undefined) return have;
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
    const spec: LocalSpec = { settings, attrs, nextHop: a.nextHop ? parseAddr(a.nextHop)!.addr : SELF };
    this.specs.set(k, new WeakRef(spec));
    this.registry.register(spec, k);
    return spec;
  }

  /** Make (and store) the route for an advertisement; returns it. Replaces the prefix's earlier one. */
  set(a: AdvertiseConfig, owner: Owner): Route {
    const spec = this.spec(a);
    const route = makeRoute(parsePrefix(a.prefix), 0, this.source, spec.attrs, spec.nextHop);
    this.table.set(route.key, new LocalRoute(route, owner, spec));
    this.writes++;
    return route;
  }

  /** The originated route of a prefix (canonical text), if any. */
  get(prefixText: string): LocalRoute | undefined {
    return this.table.get(prefixKey(parsePrefix(prefixText)));
  }

  has(prefixText: string): boolean {
    return this.get(prefixText) !== undefined;
  }

  /** Forget a prefix; returns what was stored. */
  delete(prefixText: string): LocalRoute | undefined {
    const k = prefixKey(parsePrefix(prefixText));
    const e = this.table.get(k);
    if (e !== undefined) {
      this.table.delete(k);
      this.writes++;
    }
    return e;
  }

  /** Every originated prefix (canonical text) with its record. */
  *[Symbol.iterator](): IterableIterator<[string, LocalRoute]> {
    for (const e of this.table.values()) yield [prefixToString(e.route.prefix), e];
  }
}
