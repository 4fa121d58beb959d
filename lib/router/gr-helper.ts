/**
 * The receiving speaker's side of graceful restart (RFC 4724 §4.2), of
 * notification GR (RFC 8538) and of long-lived GR (RFC 9494 §4), for one
 * neighbour: when its session ends in a way that counts as a restart, its
 * routes stay in the Adj-RIB-In, the Loc-RIB, the kernel and towards the
 * other peers, marked stale (`S` in `show rib`), for the peer's restart
 * time. A route the restarted peer sends again loses the mark (the
 * Adj-RIB-In replaces it); the rest are swept at the family's End-of-RIB, or
 * when a timer ends. With LLGR negotiated, when the restart time ends the
 * stale routes carry the LLGR_STALE community and lose to every other route
 * (lib/rib/decision.ts) for the long-lived stale time; routes with NO_LLGR
 * go at once.
 *
 * Sweeps and re-marking walk the Adj-RIB-In in slices (lib/core/slices.ts):
 * a full table is seconds of work.
 */
import { LLGR_STALE, NO_LLGR, type PathAttributes } from "../bgp/attributes.ts";
import type { Negotiated } from "../bgp/negotiate.ts";
import type { NotificationMessage } from "../bgp/notification.ts";
import { CEASE_SUB, ERR, SAFI, familyName } from "../bgp/types.ts";
import type { Afi } from "../core/addr.ts";
import { ChunkedQueue } from "../core/chunked.ts";
import { sliced } from "../core/slices.ts";
import type { AdjRibIn } from "../rib/adj-rib-in.ts";
import { type Route, type RouteSource, familyOfKey, sameAnnouncement, withFields } from "../rib/types.ts";

/** What the helper needs from its neighbour and the route engine. */
export interface GrHelperHost {
  readonly name: string;
  readonly adjIn: AdjRibIn;
  readonly source: RouteSource;
  log(level: "info" | "warn", msg: string): void;
  /** The Loc-RIB's candidate of this source for (key, path id), if any. */
  candidate(key: Route["key"], pathId: number): Route | null;
  /** Put a route into the Loc-RIB (replacing the source's route for its key and path id), or remove it (route null). */
  importRoute(key: Route["key"], pathId: number, route: Route | null): void;
  /** A route left the Adj-RIB-In (for `monitor`). */
  withdrawn(key: Route["key"]): void;
}

/** How a session ended, as graceful restart needs to know it. */
export interface SessionEnd {
  /** The NOTIFICATION sent or received on the way down, if any. */
  notification: NotificationMessage | null;
}

type Phase = "restart" | "eor" | "long-lived";

/**
 * Whether the end of a session counts as a restart of the peer: the peer
 * announced graceful restart, and the session ended without a NOTIFICATION
 * (a TCP failure, reset or close), or, with the N bit on both sides (RFC 8538
 * §4), with one other than Cease/Hard Reset.
 */
export function endIsRestart(n: Negotiated, end: SessionEnd): boolean {
  if (!n.peerGracefulRestart && !n.peerLongLivedGracefulRestart) return false;
  const note = endingNotification(end);
  if (note === null) return true;
  if (!n.gracefulNotification) return false;
  return !(note.code === ERR.CEASE && note.subcode === CEASE_SUB.HARD_RESET);
}

/**
 * The NOTIFICATION that ended the session, if any. Cease/Connection Collision
 * Resolution only ever closes the losing connection of a collision, never an
 * Established session: one seen after the session came up (on the peer's
 * second connection) is not how the session ended.
 */
function endingNotification(end: SessionEnd): NotificationMessage | null {
  const note = end.notification;
  return note !== null && note.code === ERR.CEASE && note.subcode === CEASE_SUB.CONNECTION_COLLISION ? null : note;
}

export class GrHelper {
  /** The families (AFI, unicast) whose routes are kept stale, with what happens next. */
  private readonly kept = new Map<Afi, { phase: Phase; llgrTime: number }>();
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerDue = 0;
  /** Bumped when walks under way must stop (the stale state was cleared or begun again). */
  private generation = 0;

  constructor(private readonly host: GrHelperHost) {}

  /** Routes are kept stale for some family. */
  get active(): boolean {
    return this.kept.size > 0;
  }

  /** For `show neighbors`: what is kept, and until when. */
  status(): { families: string[]; phase: Phase; secondsLeft: number } | null {
    if (!this.kept.size) return null;
    const phases = [...this.kept.values()].map((k) => k.phase);
    return {
      families: [...this.kept.keys()].map((afi) => familyName(afi, SAFI.UNICAST)),
      phase: phases.includes("restart") ? "restart" : phases.includes("eor") ? "eor" : "long-lived",
      secondsLeft: this.timer ? Math.max(0, Math.round((this.timerDue - Date.now()) / 1000)) : 0,
    };
  }

  /**
   * The session ended. When it counts as a restart, keep the routes of the
   * families the peer's last OPEN listed (marked stale) and return true;
   * else return false (the caller removes them).
   */
  sessionDown(n: Negotiated, end: SessionEnd): boolean {
    if (!endIsRestart(n, end)) {
      this.clear();
      return false;
    }
    const gr = n.peerGracefulRestart;
    const llgr = n.peerLongLivedGracefulRestart;
    const restartTime = gr?.restartTime ?? 0;
    this.kept.clear();
    this.generation++;
    for (const f of n.families) {
      if (f.safi !== SAFI.UNICAST) continue;
      const inGr = gr?.families.some((x) => x.afi === f.afi && x.safi === f.safi) ?? false;
      const llgrTime = llgr?.find((x) => x.afi === f.afi && x.safi === f.safi)?.staleTime ?? 0;
      if (!(inGr && restartTime > 0) && llgrTime === 0) continue;
      this.kept.set(f.afi as Afi, { phase: inGr && restartTime > 0 ? "restart" : "long-lived", llgrTime });
    }
    if (!this.kept.size) return false;
    const why = endingNotification(end) ? "NOTIFICATION (RFC 8538)" : "connection lost";
    const fams = [...this.kept.keys()].map((a) => familyName(a, SAFI.UNICAST)).join(", ");
    if (restartTime > 0 && gr) {
      this.host.log("info", `${this.host.name}: graceful restart (${why}): keeping its ${fams} routes as stale for its restart time of ${restartTime}s`);
      this.arm(restartTime, () => this.restartTimeEnded());
    } else this.startLongLived();
    // Families the peer did not list leave now; the kept ones are marked stale.
    void this.sweepAndMark((afi) => (!this.kept.has(afi) ? "all" : this.kept.get(afi)!.phase === "restart" ? "mark" : null));
    if ([...this.kept.values()].some((k) => k.phase === "long-lived")) void this.applyLongLived();
    return true;
  }

  /**
   * The peer is back (a new session Established). Families its new OPEN does
   * not list for graceful restart, or lists without the Forwarding State bit,
   * lose their stale routes now (RFC 4724 §4.2); the others wait for their
   * End-of-RIB, at most `deferral` seconds.
   */
  sessionUp(n: Negotiated, deferral: number): void {
    if (!this.kept.size) return;
    const gr = n.peerGracefulRestart;
    const gone: Afi[] = [];
    for (const afi of this.kept.keys()) {
      const f = gr?.families.find((x) => x.afi === afi && x.safi === SAFI.UNICAST);
      if (!f || !f.forwardingPreserved) gone.push(afi);
    }
    for (const afi of gone) {
      this.kept.delete(afi);
      this.host.log("info", `${this.host.name}: back without forwarding state for ${familyName(afi, SAFI.UNICAST)}: its stale routes are removed`);
    }
    for (const k of this.kept.values()) k.phase = "eor";
    if (gone.length) void this.sweepAndMark((afi) => (gone.includes(afi) ? "stale" : null));
    if (this.kept.size) this.arm(deferral, () => this.sweepAll(`no End-of-RIB within ${deferral}s`));
    else this.disarm();
  }

  /** End-of-RIB for a family on the new session: its routes still stale are removed. */
  endOfRib(afi: Afi): void {
    const k = this.kept.get(afi);
    if (!k || k.phase !== "eor") return;
    this.kept.delete(afi);
    if (!this.kept.size) this.disarm();
    void this.sweepAndMark((a) => (a === afi ? "stale" : null), `End-of-RIB for ${familyName(afi, SAFI.UNICAST)}`);
  }

  /** Forget the stale state (peer removed, or its routes removed by the caller). */
  clear(): void {
    this.kept.clear();
    this.disarm();
    this.generation++;
  }

  private arm(seconds: number, fn: () => void): void {
    this.disarm();
    this.timerDue = Date.now() + seconds * 1000;
    this.timer = setTimeout(() => {
      this.timer = null;
      fn();
    }, seconds * 1000);
    this.timer.unref?.(); // never what keeps the process alive
  }

  private disarm(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** The restart time ended before the peer came back: LLGR families go long-lived, the rest are removed. */
  private restartTimeEnded(): void {
    const gone: Afi[] = [];
    for (const [afi, k] of this.kept) {
      if (k.phase !== "restart") continue;
      if (k.llgrTime > 0) k.phase = "long-lived";
      else gone.push(afi);
    }
    for (const afi of gone) this.kept.delete(afi);
    if (gone.length) {
      this.host.log("info", `${this.host.name}: restart time over, not back: its stale ${gone.map((a) => familyName(a, SAFI.UNICAST)).join(", ")} routes are removed`);
      void this.sweepAndMark((afi) => (gone.includes(afi) ? "stale" : null));
    }
    if (this.kept.size) {
      this.startLongLived();
      void this.applyLongLived();
    } else this.disarm();
  }

  private startLongLived(): void {
    const time = Math.min(...[...this.kept.values()].map((k) => k.llgrTime));
    this.host.log("info", `${this.host.name}: long-lived graceful restart: its stale routes carry LLGR_STALE, least preferred, for ${time}s`);
    this.arm(time, () => this.sweepAll(`long-lived stale time of ${time}s over`));
  }

  private sweepAll(why: string): void {
    if (!this.kept.size) return;
    this.kept.clear();
    this.disarm();
    void this.sweepAndMark(() => "stale", why);
  }

  /**
   * One walk over the Adj-RIB-In, in slices, per route by its family:
   * "all" removes it, "stale" removes it when stale, "mark" marks it stale.
   * Walks run side by side (End-of-RIB of two families); clear() and a new
   * session end stop the ones under way.
   */
  private async sweepAndMark(what: (afi: Afi) => "all" | "stale" | "mark" | null, why?: string): Promise<void> {
    const gen = this.generation;
    const h = this.host;
    const gone = new ChunkedQueue<Route>();
    await sliced(h.adjIn.routes(), (r) => {
      if (gen !== this.generation) return;
      const w = what(familyOfKey(r.key));
      if (w === "all" || (w === "stale" && r.stale)) gone.push(r);
      else if (w === "mark" && !r.stale) {
        r.stale = true;
        const c = h.candidate(r.key, r.pathId);
        if (c) c.stale = true;
      }
    });
    const removed = await this.removeRoutes(gone, gen);
    if (why && removed) h.log("info", `${h.name}: ${why}: ${removed} stale routes removed`);
  }

  /**
   * Remove routes collected by a walk, in slices, after it (the walk reads
   * the table live); one replaced meanwhile by a fresh route stays. Returns
   * how many went.
   */
  private async removeRoutes(gone: ChunkedQueue<Route>, gen: number): Promise<number> {
    const h = this.host;
    let removed = 0;
    await sliced(gone.drain(), (r) => {
      if (gen !== this.generation) return;
      const cur = h.adjIn.get(r.key, r.pathId);
      // Still the stale route the walk collected (routes read from the Loc-RIB are made per read: not identity).
      if (cur === null || !sameAnnouncement(cur, r) || cur.stale !== r.stale) return;
      h.adjIn.drop(r.key, r.pathId);
      h.withdrawn(r.key);
      h.importRoute(r.key, r.pathId, null);
      removed++;
    });
    return removed;
  }

  /** Move the kept long-lived families' stale routes to LLGR_STALE (those with NO_LLGR are removed), in slices. */
  private async applyLongLived(): Promise<void> {
    const h = this.host;
    const gen = this.generation;
    const gone = new ChunkedQueue<Route>();
    await sliced(h.adjIn.routes(), (r) => {
      if (gen !== this.generation || !r.stale || this.kept.get(familyOfKey(r.key))?.phase !== "long-lived") return;
      if (r.attrs.communities.includes(NO_LLGR)) {
        gone.push(r);
        return;
      }
      const c = h.candidate(r.key, r.pathId);
      if (c && !c.attrs.communities.includes(LLGR_STALE)) h.importRoute(r.key, r.pathId, withFields(c, { attrs: withLlgrStale(c.attrs), stale: true }));
    });
    await this.removeRoutes(gone, gen);
  }
}

/** Attributes with the LLGR_STALE community added (RFC 9494 §4.3). */
export function withLlgrStale(a: PathAttributes): PathAttributes {
  return { ...a, communities: [...a.communities, LLGR_STALE] };
}
