/**
 * Update groups: peers that would be sent exactly the same UPDATEs share one
 * Adj-RIB-Out, so each Loc-RIB change is exported, and each UPDATE encoded,
 * once for all of them (issue 9 §1: "encoding once per group of peers that
 * share the same outbound policy"), as FRR's update groups and BIRD's shared
 * export do.
 *
 * Who may share (`exportSignature`): eBGP peers of the same AS, with the
 * same export policy, our same addresses on the session (next hop self) and
 * the same negotiated encoding (families, 4-octet AS, ADD-PATH, extended
 * messages and next hops, long-lived GR). Only peers whose accepted routes
 * always carry their own AS first (`enforceFirstAs`, no `asOverride`): then
 * a route learned from one member is refused to every member by the AS-path
 * loop rule, so "not back to the peer it came from" never tells members
 * apart. iBGP peers (reflection depends on each peer's router id) are not
 * grouped.
 *
 * Life of a member:
 * - A peer always starts alone, with its own Adj-RIB-Out and its own
 *   initial table and End-of-RIB. Once it has nothing queued it joins the
 *   group of its signature if that group has nothing queued either (both
 *   then hold the export of the same Loc-RIB, so they are interchangeable),
 *   or founds it; a peer that finds the group busy waits, and joins when
 *   the group is next idle.
 * - The group produces UPDATEs only while every member's session is below
 *   its high watermark, and hands the same messages to each: memory stays
 *   bounded. A member that holds the others up for SLOW_MS while one of them
 *   could take more is split off with a copy of the group's state (what it
 *   has been given, and what is queued), so a slow peer delays the others
 *   for at most that long.
 * - Whatever only one member needs (a route refresh, a soft reset out, a
 *   policy change re-export) splits it off first; the session going down
 *   just removes it.
 */
import type { Route } from "../rib/types.ts";
import type { AdjRibOut } from "../rib/adj-rib-out.ts";
import { type SlicedTask, slicer } from "../core/slices.ts";

/** How long one member may hold up the others before it is split off (ms). */
export const SLOW_MS = 3000;
/** Prefixes per take (as a lone neighbour's pump). */
const BATCH = 1000;

/** What the group needs of a member. */
export interface GroupMember {
  readonly name: string;
  /** Below the high watermark (its 'drain' calls `drained`). */
  readonly writable: boolean;
  /** Send `count` UPDATEs joined into one buffer (the same buffer goes to every member). */
  send(batch: Uint8Array, count: number): void;
  /** Leave the group with a copy of its state (a slow member). */
  splitOff(why: string): void;
}

export interface GroupHost {
  /** MRAI in ms. */
  mrai(): number;
  /** The group has nothing queued: peers waiting to join may. */
  idle(g: ExportGroup): void;
}

export class ExportGroup<M extends GroupMember = GroupMember> {
  readonly members: M[] = [];
  private pumping = false;
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  private slowTimer: ReturnType<typeof setTimeout> | null = null;
  private readonly task: SlicedTask = { step: (d) => this.step(d) };
  /** Exports done and messages produced (for tests and `show`). */
  readonly stats = { exports: 0, messages: 0 };

  constructor(
    readonly signature: string,
    /** The shared Adj-RIB-Out (the founder's). */
    readonly out: AdjRibOut,
    private readonly host: GroupHost,
  ) {}

  /** Nothing queued, nothing being sent. */
  get idle(): boolean {
    return !this.pumping && this.flushTimer === null && this.out.pendingCount === 0;
  }

  add(m: M): void {
    this.members.push(m);
  }

  /** Remove a member; true when the group is empty now. */
  remove(m: M): boolean {
    const i = this.members.indexOf(m);
    if (i >= 0) this.members.splice(i, 1);
    if (this.members.length === 0) this.close();
    else if (this.pumping) slicer.wake(this.task); // it may have been the one holding the others up
    return this.members.length === 0;
  }

  /**
   * A Loc-RIB change, offered by every member in turn (the engine tells
   * each neighbour): exported once, on the first member's call.
   */
  exportChange(route: Route | null, key: Route["key"], from: M): void {
    if (from !== this.members[0] || this.out.givesNothing) return;
    this.stats.exports++;
    const r = this.out.exportRoute(route, key);
    if (r.change === "none" || this.flushTimer || this.pumping) return;
    this.armFlush();
  }

  /** Wake after the MRAI (a method of its own: a closure in exportChange would cost a scope object per change). */
  private armFlush(): void {
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null;
      this.wake();
    }, this.host.mrai());
  }

  wake(): void {
    this.pumping = true;
    slicer.wake(this.task);
  }

  /** A member's output fell below its low watermark. */
  drained(): void {
    if (this.pumping) slicer.wake(this.task);
  }

  private step(deadline: number): boolean {
    for (;;) {
      const blocked = this.members.find((m) => !m.writable);
      if (blocked) {
        this.watchSlow(blocked);
        return false; // its 'drain' wakes us
      }
      if (this.out.pendingCount === 0) {
        this.pumping = false;
        this.clearSlow();
        this.host.idle(this);
        return false;
      }
      const b = this.out.takeBatch(BATCH);
      if (b !== null) {
        this.stats.messages += b.count;
        // One buffer for every member.
        for (const m of this.members) m.send(b.bytes, b.count);
      }
      if (performance.now() >= deadline) return true;
    }
  }

  /** Split `m` off if it still holds the others up after SLOW_MS (else watch whoever blocks then). */
  private watchSlow(m: M): void {
    if (this.slowTimer || this.members.length < 2) return;
    this.slowTimer = setTimeout(() => {
      this.slowTimer = null;
      if (!this.pumping) return;
      if (this.members.includes(m) && !m.writable && this.members.some((x) => x !== m && x.writable)) {
        m.splitOff(`it read too slowly for ${SLOW_MS / 1000} s`);
        slicer.wake(this.task);
        return;
      }
      const blocked = this.members.find((x) => !x.writable);
      if (blocked) this.watchSlow(blocked);
    }, SLOW_MS);
  }

  private clearSlow(): void {
    if (this.slowTimer) clearTimeout(this.slowTimer);
    this.slowTimer = null;
  }

  private close(): void {
    slicer.cancel(this.task);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    this.clearSlow();
    this.pumping = false;
  }
}
