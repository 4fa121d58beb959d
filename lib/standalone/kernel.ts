/**
 * Kernel routes for the single-session speaker (`bgpctl peer --kernel`): the
 * peer's routes go into a one-source Loc-RIB whose changes drive the same FIB
 * reconciler the daemon uses (lib/fib), so ownership, start-up hold and
 * repair behave exactly as in `bgpctl run`.
 */
import { RtNetlink } from "../../ffi/rtnetlink.ts";
import type { UpdateMessage } from "../bgp/update.ts";
import { announcedBlocks, blockPrefixes, withdrawnBlocks } from "../bgp/update.ts";
import { Fib } from "../fib/fib.ts";
import { LocRib } from "../rib/loc-rib.ts";
import { type RouteSource, makeRoute, prefixKey } from "../rib/types.ts";

export interface KernelFlags {
  table: number;
  protocol: number;
  metric: number;
}

export class StandaloneKernel {
  private readonly locRib = new LocRib({});
  private constructor(
    private readonly kernel: RtNetlink,
    private readonly fib: Fib,
    private readonly source: RouteSource,
  ) {
    this.locRib.subscribe((ev) => fib.onLocRibChange(ev));
  }

  /** Open rtnetlink and start the reconciler (reads our existing routes first). */
  static async open(flags: KernelFlags, source: RouteSource, log: (level: string, msg: string) => void): Promise<StandaloneKernel> {
    const kernel = await RtNetlink.open({ groups: true });
    const fib = new Fib(kernel, { table: flags.table, protocol: flags.protocol, metric: flags.metric, ecmp: false }, (l, m) => log(l, `kernel: ${m}`));
    fib.expectSources([source.id]);
    try {
      await fib.start();
    } catch (e) {
      kernel.close();
      throw e;
    }
    return new StandaloneKernel(kernel, fib, source);
  }

  /** Apply one received UPDATE (treat-as-withdraw already folded in by the codec). */
  update(u: UpdateMessage): void {
    for (const b of withdrawnBlocks(u)) for (const p of blockPrefixes(b)) this.locRib.remove(this.source.id, prefixKey(p), p.pathId ?? 0);
    const attrs = u.attrs;
    if (attrs) {
      // One arrival time for the UPDATE's routes: they then share everything but their prefix (makeRoute).
      const at = performance.now();
      for (const b of announcedBlocks(u)) {
        const nh = b === u.nlri ? attrs.nextHop! : u.mpReach!.nextHop;
        for (const p of blockPrefixes(b)) this.locRib.upsert(makeRoute(p, p.pathId ?? 0, this.source, attrs, nh, at));
      }
    }
  }

  /** The peer's initial table is complete: stale routes of an earlier run may go. */
  synced(): void {
    this.fib.endOfRib(this.source.id);
  }

  /** The session went down: its routes leave the kernel. */
  sessionDown(): void {
    this.locRib.removeSource(this.source.id);
  }

  async stop(): Promise<void> {
    await this.fib.stop();
    this.kernel.close();
  }
}
