/**
 * A well-behaved BGP peer for the e2e tests and the soak run, in the test's
 * own process: lib/bgp's Session (the real FSM and codec) connecting to a
 * daemon, announcing and withdrawing prefixes with given attributes, and
 * keeping what the daemon sends it (prefix → decoded attributes), with
 * counters that tell whether the session ever went down (`established`
 * counts arrivals in Established, `downs` departures from it).
 */
import { type PathAttributes, emptyAttributes, asPathOf } from "../../lib/bgp/attributes.ts";
import { Session, State } from "../../lib/bgp/session.ts";
import { AFI, ORIGIN, SAFI, SEG } from "../../lib/bgp/types.ts";
import { type EncodeContext, announcedBlocks, blockPrefixes, buildAnnouncements, buildWithdrawals, withdrawnBlocks } from "../../lib/bgp/update.ts";
import { type Prefix, parseAddr, parsePrefix, prefixToString } from "../../lib/core/addr.ts";
import { waitFor } from "./wait.ts";

export interface TestPeerOptions {
  /** Our address (the daemon's configured peer address). */
  local: string;
  /** The daemon's listening address and port. */
  daemon: string;
  port: number;
  localAs: number;
  daemonAs: number;
  /** Seconds (default 90). */
  holdTime?: number;
  /** Default IPv4 and IPv6 unicast. */
  families?: { afi: number; safi: number }[];
}

const ENCODE: EncodeContext = { fourOctetAs: true, addPathSend: () => false, maxLen: 4096 };

/** Attributes for an announcement from AS `asn`: ORIGIN IGP, AS_PATH [asn], plus `extra`. */
export function pathFrom(asn: number, extra: Partial<PathAttributes> = {}): PathAttributes {
  return { ...emptyAttributes(), origin: ORIGIN.IGP, asPath: asPathOf([{ type: SEG.AS_SEQUENCE, asns: [asn] }]), ...extra };
}

export class TestPeer {
  readonly session: Session;
  /** What the daemon announced to us: prefix text → attributes. */
  readonly received = new Map<string, PathAttributes>();
  /** Sessions that reached Established / left it. */
  established = 0;
  downs = 0;
  /** Every state change with its reason, for failure messages. */
  readonly history: string[] = [];
  private readonly nextHop4: Uint8Array;

  constructor(readonly o: TestPeerOptions) {
    const nh = parseAddr(o.local);
    if (!nh || nh.afi !== AFI.IPV4) throw new Error(`TestPeer local address ${o.local}: expected IPv4`);
    this.nextHop4 = nh.addr;
    this.session = new Session({
      peerAddress: o.daemon,
      peerPort: o.port,
      localAddress: o.local,
      localAs: o.localAs,
      remoteAs: o.daemonAs,
      routerId: o.local,
      holdTime: o.holdTime ?? 90,
      connectRetry: 1,
      idleHoldTime: 1,
      families: o.families ?? [
        { afi: AFI.IPV4, safi: SAFI.UNICAST },
        { afi: AFI.IPV6, safi: SAFI.UNICAST },
      ],
    });
    this.session.on("state", (e) => {
      this.history.push(`${e.from} -> ${e.to} (${e.reason})`);
      if (e.to === State.Established) this.established++;
      if (e.from === State.Established) this.downs++;
    });
    this.session.on("update", (u) => {
      for (const b of withdrawnBlocks(u)) for (const p of blockPrefixes(b)) this.received.delete(prefixToString(p));
      for (const b of announcedBlocks(u)) for (const p of blockPrefixes(b)) this.received.set(prefixToString(p), u.attrs!);
    });
    this.session.on("log", () => {});
  }

  get isEstablished(): boolean {
    return this.session.state === State.Established;
  }

  start(): this {
    this.session.start();
    return this;
  }

  async waitEstablished(timeoutMs = 15_000): Promise<void> {
    await waitFor(() => this.isEstablished, { what: `test peer ${this.o.local} Established`, timeoutMs, intervalMs: 20, detail: () => this.history.join("\n") });
  }

  /** Announce prefixes (IPv4 with our address as NEXT_HOP, IPv6 with `nextHop6`, default ::ffff:LOCAL). */
  announce(prefixes: (string | Prefix)[], attrs: PathAttributes, nextHop6?: Uint8Array): boolean {
    return this.send(this.announcement(prefixes, attrs, nextHop6));
  }

  withdraw(prefixes: (string | Prefix)[]): boolean {
    return this.send(this.withdrawal(prefixes));
  }

  /** The packed UPDATEs announcing `prefixes` (not sent). */
  announcement(prefixes: (string | Prefix)[], attrs: PathAttributes, nextHop6?: Uint8Array): Uint8Array[] {
    const ps = prefixes.map((p) => (typeof p === "string" ? parsePrefix(p) : p));
    const msgs: Uint8Array[] = [];
    for (const afi of [AFI.IPV4, AFI.IPV6]) {
      const of = ps.filter((p) => p.afi === afi);
      if (!of.length) continue;
      const nh = afi === AFI.IPV4 ? this.nextHop4 : (nextHop6 ?? Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...this.nextHop4));
      msgs.push(...buildAnnouncements(afi, SAFI.UNICAST, of, attrs, nh, ENCODE));
    }
    return msgs;
  }

  /** The packed UPDATEs withdrawing `prefixes` (not sent). */
  withdrawal(prefixes: (string | Prefix)[]): Uint8Array[] {
    const ps = prefixes.map((p) => (typeof p === "string" ? parsePrefix(p) : p));
    const msgs: Uint8Array[] = [];
    for (const afi of [AFI.IPV4, AFI.IPV6]) {
      const of = ps.filter((p) => p.afi === afi);
      if (of.length) msgs.push(...buildWithdrawals(afi, SAFI.UNICAST, of, ENCODE));
    }
    return msgs;
  }

  /** Framed UPDATEs as they are; false when the session is not Established. */
  send(msgs: Uint8Array[]): boolean {
    if (!this.isEstablished) return false;
    return this.session.sendUpdates(msgs);
  }

  stop(): Promise<void> {
    return this.session.stop({ message: "test done" });
  }
}
