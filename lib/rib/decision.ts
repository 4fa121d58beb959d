/**
 * The BGP decision process (RFC 4271 §9.1.2.2) with the usual tie-breakers:
 * which of the candidate routes to one prefix is the best, which routes form
 * the multipath (ECMP) set, and — for `show` — which tie-breaker decided.
 *
 * Order of the steps (each one exported as a comparator, negative = `a` is
 * better):
 *
 *  0. `reachable`      a route whose next hop is unreachable never wins
 *  0b. `llgr-stale`    a route with LLGR_STALE loses to any without (RFC 9494)
 *  1. `local-pref`     highest LOCAL_PREF (absent = 100)
 *  1b. `local-origin`  a locally originated route beats a learned one
 *  2. `as-path`        shortest AS_PATH (AS_SET counts 1, confederation segments 0)
 *  3. `origin`         lowest ORIGIN (IGP < EGP < INCOMPLETE; absent = INCOMPLETE)
 *  4. `med`            lowest MED (absent = 0), only between routes from the
 *                      same neighbouring AS unless `alwaysCompareMed`
 *  5. `ebgp`           eBGP over iBGP
 *  6. `igp-cost`       lowest IGP cost to the next hop
 *  7. `oldest`         with `preferOldest`: the oldest of two eBGP routes (RFC 5004)
 *  8. `router-id`      lowest ORIGINATOR_ID, else the peer's router id (RFC 4456)
 *  9. `cluster-list`   shortest CLUSTER_LIST
 * 10. `peer-address`   lowest peer address (IPv4 before IPv6; local routes first)
 * 11. `path-id`        lowest ADD-PATH path identifier
 * 12. `source`         source id (text order): only separates two sources that
 *                      are otherwise indistinguishable (e.g. two local sources),
 *                      so that the result never depends on arrival order
 *
 * MED is not transitive across neighbour ASes, so `selectBest` uses the
 * "deterministic MED" procedure: candidates are grouped by neighbour AS, the
 * best of each group is found with every step, and the group winners are then
 * compared (MED skipped between different ASes unless `alwaysCompareMed`).
 * The result does not depend on the order of the input.
 */
import { LLGR_STALE, asPathLength, asPathNeighbor } from "../bgp/attributes.ts";
import type { Route } from "./types.ts";

/** Decision options: `RouterConfig.decision` plus `RouterConfig.multipath`. */
export interface DecisionOptions {
  /** Compare MED between routes from different neighbouring ASes. */
  alwaysCompareMed?: boolean;
  /** Prefer the oldest of two eBGP routes before the router id step (RFC 5004). */
  preferOldest?: boolean;
  /** ECMP: up to maxPaths equal routes (see `multipathSet`). Disabled when absent. */
  multipath?: { enabled: boolean; maxPaths: number };
  /** Multipath across different neighbouring ASes (default: same AS only). */
  multipathRelax?: boolean;
}

/** A comparator step: negative when `a` is better, positive when `b` is, 0 when the step cannot tell. */
export type DecisionStep = (a: Route, b: Route, opts: DecisionOptions) => number;

/** Names of the steps, as reported in `compareRoutes().step` and `selectBest().reason`. */
export const STEP = {
  REACHABLE: "reachable",
  LLGR_STALE: "llgr-stale",
  LOCAL_PREF: "local-pref",
  LOCAL_ORIGIN: "local-origin",
  AS_PATH: "as-path",
  ORIGIN: "origin",
  MED: "med",
  EBGP: "ebgp",
  IGP_COST: "igp-cost",
  OLDEST: "oldest",
  ROUTER_ID: "router-id",
  CLUSTER_LIST: "cluster-list",
  PEER_ADDRESS: "peer-address",
  PATH_ID: "path-id",
  SOURCE: "source",
  /** compareRoutes: no step tells the two apart (same source and path id). */
  EQUAL: "equal",
} as const;

/** The default LOCAL_PREF of a route without one. */
export const DEFAULT_LOCAL_PREF = 100;

// ------------------------------------------------------------ attribute views

/** LOCAL_PREF with the default applied. */
export function localPrefOf(r: Route): number {
  const lp = r.attrs.localPref;
  return lp === null ? DEFAULT_LOCAL_PREF : lp >>> 0;
}

/** MED with RFC 4271's default for a missing MED (0). */
export function medOf(r: Route): number {
  const m = r.attrs.med;
  return m === null ? 0 : m >>> 0;
}

/** ORIGIN value, absent counting as INCOMPLETE (2). */
export function originOf(r: Route): number {
  const o = r.attrs.origin;
  return o === null ? 2 : o;
}

/** AS_PATH length for the decision: AS_SET counts 1, confederation segments 0. */
export function pathLengthOf(r: Route): number {
  const p = r.attrs.asPath;
  return p === null || p.length === 0 ? 0 : asPathLength(p);
}

/**
 * The neighbouring AS for MED comparison: the first AS of the leading
 * AS_SEQUENCE (confederation segments skipped). Routes with an empty path
 * (local and iBGP-internal routes) or one starting with an AS_SET count as
 * coming from `source.asn` (our own AS for those).
 */
export function neighborAs(r: Route): number {
  const n = asPathNeighbor(r.attrs.asPath);
  return n >= 0 ? n : r.source.asn;
}

/** eBGP-learned (not iBGP, not local). */
export function isEbgp(r: Route): boolean {
  return !r.source.ibgp && !r.source.local;
}

/** Dotted-quad text to an unsigned 32-bit number (0 when malformed). */
export function ipv4ToNumber(s: string): number {
  let n = 0;
  let part = 0;
  let parts = 0;
  let digits = 0;
  for (let i = 0; i <= s.length; i++) {
    const c = i < s.length ? s.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 255) return 0;
      n = n * 256 + part;
      parts++;
      part = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      digits++;
    } else return 0;
  }
  return parts === 4 ? n : 0;
}

/** The identifier of step 8: ORIGINATOR_ID when present, else the peer's router id (unsigned). */
export function routerIdOf(r: Route): number {
  const o = r.attrs.originatorId;
  return o !== null ? ipv4ToNumber(o) : r.source.routerId >>> 0;
}

// ------------------------------------------------------------------ the steps

/** Step 0: a reachable next hop beats an unreachable one. */
export function cmpReachable(a: Route, b: Route): number {
  return a.reachable === b.reachable ? 0 : a.reachable ? -1 : 1;
}

/** Whether a route carries LLGR_STALE (RFC 9494): kept only until better ones exist. */
function llgrStale(r: Route): boolean {
  const c = r.attrs.communities;
  return c.length !== 0 && c.includes(LLGR_STALE);
}

/** Step 0b: a route without LLGR_STALE beats one with it (RFC 9494 §4.3: least preferred). */
export function cmpLlgrStale(a: Route, b: Route): number {
  const x = llgrStale(a);
  return x === llgrStale(b) ? 0 : x ? 1 : -1;
}

/** Step 1: highest LOCAL_PREF. */
export function cmpLocalPref(a: Route, b: Route): number {
  return localPrefOf(b) - localPrefOf(a);
}

/** Step 1b: a locally originated route beats a learned one. */
export function cmpLocalOrigin(a: Route, b: Route): number {
  return a.source.local === b.source.local ? 0 : a.source.local ? -1 : 1;
}

/** Step 2: shortest AS_PATH. */
export function cmpAsPath(a: Route, b: Route): number {
  return pathLengthOf(a) - pathLengthOf(b);
}

/** Step 3: lowest ORIGIN. */
export function cmpOrigin(a: Route, b: Route): number {
  return originOf(a) - originOf(b);
}

/** Step 4: lowest MED, only between routes from the same neighbouring AS unless `alwaysCompareMed`. */
export function cmpMed(a: Route, b: Route, opts: DecisionOptions): number {
  if (!opts.alwaysCompareMed && neighborAs(a) !== neighborAs(b)) return 0;
  return medOf(a) - medOf(b);
}

/** Step 5: eBGP over iBGP (local routes count as neither: they were decided at step 1b). */
export function cmpEbgp(a: Route, b: Route): number {
  const ea = isEbgp(a);
  return ea === isEbgp(b) ? 0 : ea ? -1 : 1;
}

/** Step 6: lowest IGP cost to the next hop. */
export function cmpIgpCost(a: Route, b: Route): number {
  return a.igpCost - b.igpCost;
}

/** Step 7: with `preferOldest`, the route learned first when both are eBGP (RFC 5004). */
export function cmpOldest(a: Route, b: Route, opts: DecisionOptions): number {
  if (!opts.preferOldest || !isEbgp(a) || !isEbgp(b)) return 0;
  return a.learnedAt - b.learnedAt;
}

/** Step 8: lowest ORIGINATOR_ID, else router id. */
export function cmpRouterId(a: Route, b: Route): number {
  return routerIdOf(a) - routerIdOf(b);
}

/** Step 9: shortest CLUSTER_LIST. */
export function cmpClusterList(a: Route, b: Route): number {
  return a.attrs.clusterList.length - b.attrs.clusterList.length;
}

/** Step 10: lowest peer address; shorter addresses first (local, then IPv4, then IPv6). */
export function cmpPeerAddress(a: Route, b: Route): number {
  const x = a.source.addressBytes;
  const y = b.source.addressBytes;
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return x[i]! - y[i]!;
  return 0;
}

/** Step 11: lowest path identifier. */
export function cmpPathId(a: Route, b: Route): number {
  return (a.pathId >>> 0) - (b.pathId >>> 0);
}

/** Step 12: source id order, a last resort for indistinguishable sources. */
export function cmpSource(a: Route, b: Route): number {
  const x = a.source.id;
  const y = b.source.id;
  return x === y ? 0 : x < y ? -1 : 1;
}

/** The steps in order. */
export const DECISION_STEPS: readonly { readonly name: string; readonly compare: DecisionStep }[] = [
  { name: STEP.REACHABLE, compare: cmpReachable },
  { name: STEP.LLGR_STALE, compare: cmpLlgrStale },
  { name: STEP.LOCAL_PREF, compare: cmpLocalPref },
  { name: STEP.LOCAL_ORIGIN, compare: cmpLocalOrigin },
  { name: STEP.AS_PATH, compare: cmpAsPath },
  { name: STEP.ORIGIN, compare: cmpOrigin },
  { name: STEP.MED, compare: cmpMed },
  { name: STEP.EBGP, compare: cmpEbgp },
  { name: STEP.IGP_COST, compare: cmpIgpCost },
  { name: STEP.OLDEST, compare: cmpOldest },
  { name: STEP.ROUTER_ID, compare: cmpRouterId },
  { name: STEP.CLUSTER_LIST, compare: cmpClusterList },
  { name: STEP.PEER_ADDRESS, compare: cmpPeerAddress },
  { name: STEP.PATH_ID, compare: cmpPathId },
  { name: STEP.SOURCE, compare: cmpSource },
];

/**
 * Allocation-free comparison: 0 when equal, else ±(index of the deciding
 * step + 1), negative when `a` is better. The steps of DECISION_STEPS, in
 * its order, called directly (the compiler inlines them; a loop over the
 * table made one indirect call per step, and a full table from four peers
 * spent a fifth of its time here): a unit test checks the two agree.
 */
export function compareCode(a: Route, b: Route, opts: DecisionOptions): number {
  let d: number;
  if ((d = cmpReachable(a, b)) !== 0) return code(d, 1);
  if ((d = cmpLlgrStale(a, b)) !== 0) return code(d, 2);
  if ((d = cmpLocalPref(a, b)) !== 0) return code(d, 3);
  if ((d = cmpLocalOrigin(a, b)) !== 0) return code(d, 4);
  if ((d = cmpAsPath(a, b)) !== 0) return code(d, 5);
  if ((d = cmpOrigin(a, b)) !== 0) return code(d, 6);
  if ((d = cmpMed(a, b, opts)) !== 0) return code(d, 7);
  if ((d = cmpEbgp(a, b)) !== 0) return code(d, 8);
  if ((d = cmpIgpCost(a, b)) !== 0) return code(d, 9);
  if ((d = cmpOldest(a, b, opts)) !== 0) return code(d, 10);
  if ((d = cmpRouterId(a, b)) !== 0) return code(d, 11);
  if ((d = cmpClusterList(a, b)) !== 0) return code(d, 12);
  if ((d = cmpPeerAddress(a, b)) !== 0) return code(d, 13);
  if ((d = cmpPathId(a, b)) !== 0) return code(d, 14);
  if ((d = cmpSource(a, b)) !== 0) return code(d, 15);
  return 0;
}

function code(d: number, step: number): number {
  return d < 0 ? -step : step;
}

function stepName(code: number): string {
  return code === 0 ? STEP.EQUAL : DECISION_STEPS[Math.abs(code) - 1]!.name;
}

/**
 * Compare two routes to the same prefix, step by step. `winner` is -1 when
 * `a` is better, 1 when `b` is, 0 when nothing tells them apart; `step` names
 * the deciding step (`STEP.EQUAL` for 0). MED is compared only when both come
 * from the same neighbouring AS (or with `alwaysCompareMed`), so this pairwise
 * order is not transitive across ASes: use `selectBest` to choose among many.
 */
export function compareRoutes(a: Route, b: Route, opts: DecisionOptions = {}): { winner: -1 | 1 | 0; step: string } {
  const c = compareCode(a, b, opts);
  return { winner: c < 0 ? -1 : c > 0 ? 1 : 0, step: stepName(c) };
}

/** Result of the decision process for one prefix. */
export interface Selection {
  /** The best route; null when there is no candidate with a reachable next hop. */
  best: Route | null;
  /** The multipath set, best first; empty when multipath is disabled or there is no best. */
  multipath: Route[];
  /**
   * Why: the step that decided between the best and the runner-up (a STEP
   * name; "reachable" when every other candidate has an unreachable next
   * hop), "only-path" for a single candidate, "no-routes" or "unreachable"
   * when best is null.
   */
  reason?: string;
}

export const REASON_ONLY_PATH = "only-path";
export const REASON_NO_ROUTES = "no-routes";
export const REASON_UNREACHABLE = "unreachable";

const EMPTY: Route[] = [];

/** Reused scratch space of the deterministic-MED grouping (selection is synchronous). */
const groupAs: number[] = [];
const groupBest: Route[] = [];

/**
 * The best of the reachable routes, deterministic-MED style; `skip` is left
 * out (used to find the runner-up). Null when none.
 */
function pickBest(routes: readonly Route[], opts: DecisionOptions, skip: Route | null): Route | null {
  if (opts.alwaysCompareMed) {
    // Every step is then a total preorder: a linear scan finds the maximum.
    let best: Route | null = null;
    for (let i = 0; i < routes.length; i++) {
      const r = routes[i]!;
      if (!r.reachable || r === skip) continue;
      if (best === null || compareCode(r, best, opts) < 0) best = r;
    }
    return best;
  }
  let n = 0;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (!r.reachable || r === skip) continue;
    const as = neighborAs(r);
    let g = 0;
    while (g < n && groupAs[g] !== as) g++;
    if (g === n) {
      groupAs[n] = as;
      groupBest[n] = r;
      n++;
    } else if (compareCode(r, groupBest[g]!, opts) < 0) {
      groupBest[g] = r;
    }
  }
  if (n === 0) return null;
  // Group winners come from different ASes: MED is skipped between them.
  let best = groupBest[0]!;
  for (let g = 1; g < n; g++) if (compareCode(groupBest[g]!, best, opts) < 0) best = groupBest[g]!;
  groupBest.length = 0;
  groupAs.length = 0;
  return best;
}

/**
 * Whether `r` may share the multipath set with `best`: equal through step 5
 * (LOCAL_PREF, local origin, AS_PATH length, ORIGIN, MED value, eBGP/iBGP),
 * same IGP cost, and the same neighbouring AS unless `multipathRelax`.
 */
export function multipathEqual(best: Route, r: Route, opts: DecisionOptions): boolean {
  return (
    r.reachable &&
    llgrStale(r) === llgrStale(best) &&
    localPrefOf(r) === localPrefOf(best) &&
    r.source.local === best.source.local &&
    pathLengthOf(r) === pathLengthOf(best) &&
    originOf(r) === originOf(best) &&
    medOf(r) === medOf(best) &&
    isEbgp(r) === isEbgp(best) &&
    r.source.ibgp === best.source.ibgp &&
    r.igpCost === best.igpCost &&
    (opts.multipathRelax === true || neighborAs(r) === neighborAs(best))
  );
}

/** The multipath set for a chosen best: best first, then the equal routes by the remaining tie-breakers, capped at maxPaths. */
export function multipathSet(routes: readonly Route[], best: Route | null, opts: DecisionOptions): Route[] {
  const mp = opts.multipath;
  if (best === null || !mp || !mp.enabled) return EMPTY;
  const max = Math.max(1, Math.floor(mp.maxPaths) || 1);
  if (routes.length === 1 || max === 1) return [best];
  const others: Route[] = [];
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (r !== best && multipathEqual(best, r, opts)) others.push(r);
  }
  if (others.length === 0) return [best];
  others.sort((x, y) => compareCode(x, y, opts));
  others.length = Math.min(others.length, max - 1);
  others.unshift(best);
  return others;
}

/**
 * Run the decision process over all candidate routes to one prefix. Routes
 * with an unreachable next hop are never chosen. The result does not depend
 * on the order of `routes`.
 */
export function selectBest(routes: readonly Route[], opts: DecisionOptions = {}, explain = true): Selection {
  if (routes.length === 0) return { best: null, multipath: EMPTY, reason: REASON_NO_ROUTES };
  if (routes.length === 1) {
    const r = routes[0]!;
    if (!r.reachable) return { best: null, multipath: EMPTY, reason: REASON_UNREACHABLE };
    return { best: r, multipath: opts.multipath?.enabled ? [r] : EMPTY, reason: REASON_ONLY_PATH };
  }
  const best = pickBest(routes, opts, null);
  if (best === null) return { best: null, multipath: EMPTY, reason: REASON_UNREACHABLE };
  return { best, multipath: multipathSet(routes, best, opts), reason: explain ? explainBest(routes, best, opts) : undefined };
}

/**
 * Why `best` (chosen by selectBest from `routes`, more than one) won: the
 * step that decided it against the runner-up. A second selection, so the
 * Loc-RIB asks for it only when someone reads it (`show`), not on every
 * change (it doubled the decision's cost).
 */
export function explainBest(routes: readonly Route[], best: Route, opts: DecisionOptions = {}): string {
  const second = pickBest(routes, opts, best);
  // No reachable runner-up: the others lost at step 0.
  return second === null ? STEP.REACHABLE : stepName(compareCode(best, second, opts));
}

/**
 * All candidates in decision order (best first): repeated selection, so the
 * order honours deterministic MED; unreachable routes last. For `show`, not
 * the hot path (quadratic).
 */
export function rankRoutes(routes: readonly Route[], opts: DecisionOptions = {}): Route[] {
  const rest = routes.slice();
  const out: Route[] = [];
  while (rest.length > 0) {
    const b = pickBest(rest, opts, null);
    if (b === null) break;
    out.push(b);
    rest.splice(rest.indexOf(b), 1);
  }
  rest.sort((x, y) => compareCode(x, y, { ...opts, alwaysCompareMed: true }));
  for (const r of rest) out.push(r);
  return out;
}
