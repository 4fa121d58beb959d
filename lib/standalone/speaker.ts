/**
 * A single BGP session run from the command line (`bgpctl peer`, the one-shot
 * `bgpctl show rib --peer`): announces a fixed set of prefixes, reports what
 * the peer sends as plain events, answers route refresh by re-announcing.
 * No RIB: this is the speaker core on its own, for testing and looking glass.
 */
import { EMPTY_AS_PATH, type PathAttributes, asSequence, emptyAttributes } from "../bgp/attributes.ts";
import { describeCapability, speakerCapabilities } from "../bgp/open.ts";
import { type Negotiated, addPathSend, hasFamily } from "../bgp/negotiate.ts";
import { type NotificationMessage, describeNotification } from "../bgp/notification.ts";
import { parseAddr, prefixToString } from "../core/addr.ts";
import { type RouteView, updateRoutes } from "../bgp/route.ts";
import { Listener } from "../bgp/listener.ts";
import type { RouteSource } from "../rib/types.ts";
import { type KernelFlags, StandaloneKernel } from "./kernel.ts";
import { siblingAddress } from "../bgp/local-address.ts";
import { Session } from "../bgp/session.ts";
import { AFI, type Prefix } from "../core/addr.ts";
import { BGP_MAX_EXT_MSG, BGP_MAX_MSG, CEASE_SUB, type Family, ORIGIN, familyName } from "../bgp/types.ts";
import { type EncodeContext, type UpdateMessage, buildAnnouncements, encodeEndOfRib } from "../bgp/update.ts";

export interface StandaloneOptions {
  peerAddress: string;
  port: number;
  localAddress?: string;
  passive: boolean;
  remoteAs: number;
  localAs: number;
  routerId?: string;
  holdTime: number;
  connectRetry?: number;
  families: Family[];
  advertise: Prefix[];
  /** Explicit next hops (at most one per address family). */
  nextHops: string[];
  communities: number[];
  largeCommunities: [number, number, number][];
  /** Install the peer's routes in the kernel (`--kernel`). */
  kernel?: KernelFlags;
  /** TCP-MD5 password (`--password`, `--password-file`). */
  password?: string;
  /** Outgoing TTL of the session (`--multihop`); eBGP default 1. */
  multihop?: number;
  /** GTSM hop count (`--ttl-security`). */
  ttlSecurity?: number;
}

export type PeerEvent =
  | { event: "state"; from: string; to: string; reason: string }
  | { event: "established"; peerAs: number; routerId: string; holdTime: number; families: string[]; capabilities: string[]; localAddress: string }
  | ({ event: "announce"; peer: string } & RouteView)
  | { event: "withdraw"; prefix: string; pathId?: number; peer: string }
  | { event: "eor"; family: string }
  | { event: "notification"; direction: "received" | "sent"; code: number; subcode: number; message: string | null; text: string }
  | { event: "route-refresh"; family: string; subtype: number }
  | { event: "update-error"; action: string; reason: string }
  | { event: "log"; level: string; msg: string };

export class StandaloneSpeaker {
  readonly session: Session;
  private listener: Listener | null = null;
  private kernel: StandaloneKernel | null = null;
  /** Families whose End-of-RIB arrived on the current session (for the kernel's start-up hold). */
  private eor = new Set<string>();
  private stopped = false;
  constructor(
    readonly opts: StandaloneOptions,
    private readonly emit: (e: PeerEvent) => void,
  ) {
    this.session = new Session({
      peerAddress: opts.peerAddress,
      peerPort: opts.port,
      localAddress: opts.localAddress,
      localAs: opts.localAs,
      remoteAs: opts.remoteAs,
      routerId: opts.routerId,
      holdTime: opts.holdTime,
      connectRetry: opts.connectRetry ?? 5,
      passive: opts.passive,
      password: opts.password,
      multihop: opts.multihop ?? false,
      ...(opts.ttlSecurity !== undefined ? { ttlSecurity: opts.ttlSecurity } : {}),
      families: opts.families,
      capabilities: speakerCapabilities(opts.families, { restartTime: 120, notification: false, restarting: false, forwarding: () => false, longLivedStaleTime: 0 }),
    });
    const s = this.session;
    s.on("state", (e: { from: string; to: string; reason?: string }) => this.emit({ event: "state", from: e.from, to: e.to, reason: e.reason ?? "" }));
    s.on("established", (n: Negotiated) => this.onEstablished(n));
    s.on("update", (u: UpdateMessage) => this.onUpdate(u));
    s.on("notificationReceived", (n: NotificationMessage) => this.onNotification("received", n));
    s.on("notificationSent", (n: NotificationMessage) => this.onNotification("sent", n));
    s.on("routeRefresh", (r: { afi: number; safi: number; subtype: number }) => this.onRouteRefresh(r));
    s.on("log", (l: { level: string; msg: string }) => this.emit({ event: "log", level: l.level, msg: l.msg }));
  }

  /** Start the session; with `passive`, listen first (rejects when the port cannot be bound). */
  async start(): Promise<void> {
    if (this.opts.kernel) {
      const addr = parseAddr(this.opts.peerAddress);
      const source: RouteSource = {
        id: this.opts.peerAddress,
        address: this.opts.peerAddress,
        addressBytes: addr ? addr.addr : new Uint8Array(0),
        asn: this.opts.remoteAs,
        routerId: 0,
        ibgp: this.opts.remoteAs === this.opts.localAs,
        rrClient: false,
        local: false,
      };
      try {
        this.kernel = await StandaloneKernel.open(this.opts.kernel, source, (level, msg) => this.emit({ event: "log", level, msg }));
      } catch (e) {
        throw new Error(`--kernel: ${(e as Error).message}`);
      }
      this.session.on("state", (e) => {
        if (e.from === "Established") {
          this.eor.clear();
          this.kernel?.sessionDown();
        }
      });
    }
    if (this.opts.passive) {
      const l = new Listener([this.session]);
      l.on("log", (e: { level: string; msg: string }) => this.emit({ event: "log", level: e.level, msg: e.msg }));
      const address = this.opts.localAddress ?? (this.opts.peerAddress.includes(":") ? "::" : "0.0.0.0");
      this.listener = l;
      try {
        await l.listen({ address, port: this.opts.port });
      } catch (e) {
        throw new Error(`cannot listen on ${address.includes(":") ? `[${address}]` : address}:${this.opts.port}: ${(e as Error).message}`);
      }
    }
    this.session.start();
  }

  async stop(message?: string): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Kernel first, so closing the session does not remove routes twice.
    await this.kernel?.stop();
    await this.session.stop({ subcode: CEASE_SUB.ADMIN_SHUTDOWN, message });
    await this.listener?.close();
  }

  private onNotification(direction: "received" | "sent", n: NotificationMessage): void {
    this.emit({ event: "notification", direction, code: n.code, subcode: n.subcode, message: n.message ?? null, text: describeNotification(n) });
  }

  private onEstablished(n: Negotiated): void {
    const local = this.session.localAddress ?? "";
    this.emit({
      event: "established",
      peerAs: n.peerAs,
      routerId: n.peerRouterId,
      holdTime: n.holdTime,
      families: n.families.map((f) => familyName(f.afi, f.safi)),
      capabilities: n.peerCapabilities.map(describeCapability),
      localAddress: local,
    });
    this.announceAll(n);
  }

  private onUpdate(u: UpdateMessage): void {
    const peer = this.opts.peerAddress;
    for (const i of u.issues) this.emit({ event: "update-error", action: i.action, reason: i.reason });
    const { announced, withdrawn } = updateRoutes(u);
    for (const w of withdrawn) this.emit({ event: "withdraw", ...w, peer });
    for (const r of announced) this.emit({ event: "announce", ...r, peer });
    this.kernel?.update(u);
    if (u.endOfRib) {
      this.emit({ event: "eor", family: familyName(u.endOfRib.afi, u.endOfRib.safi) });
      const n = this.session.negotiated;
      this.eor.add(`${u.endOfRib.afi}/${u.endOfRib.safi}`);
      if (n && n.families.every((f) => this.eor.has(`${f.afi}/${f.safi}`))) this.kernel?.synced();
    }
  }

  private onRouteRefresh(r: { afi: number; safi: number; subtype: number }): void {
    if (r.subtype !== 0) return; // BoRR / EoRR from the peer: nothing to resend
    this.emit({ event: "route-refresh", family: familyName(r.afi, r.safi), subtype: r.subtype });
    const n = this.session.negotiated;
    if (!n || !hasFamily(n, r.afi, r.safi)) return;
    this.announceFamily(n, { afi: r.afi, safi: r.safi }, n.enhancedRouteRefresh);
  }

  /** The next hop to announce for a family: explicit, or the session's local address (or a sibling address on its interface). */
  nextHopFor(afi: number): Uint8Array | null {
    for (const nh of this.opts.nextHops) {
      const a = parseAddr(nh);
      if (a && a.afi === afi) return a.addr;
    }
    const local = (this.session.localAddress ?? "").replace(/^::ffff:/, "");
    const la = parseAddr(local);
    if (la && la.afi === afi) return la.addr;
    const sib = siblingAddress(local, afi);
    if (sib) return parseAddr(sib)?.addr ?? null;
    if (afi === AFI.IPV4 && la && this.session.negotiated?.extendedNextHop.some((f) => f.afi === AFI.IPV4)) return la.addr;
    return null;
  }

  private attributes(n: Negotiated): PathAttributes {
    const ibgp = n.peerAs === this.opts.localAs;
    const asPath = ibgp ? EMPTY_AS_PATH : asSequence([this.opts.localAs]);
    return {
      ...emptyAttributes(),
      origin: ORIGIN.IGP,
      asPath,
      localPref: ibgp ? 100 : null,
      communities: this.opts.communities,
      largeCommunities: this.opts.largeCommunities,
    };
  }

  private announceAll(n: Negotiated): void {
    for (const f of n.families) this.announceFamily(n, f, false);
  }

  private announceFamily(n: Negotiated, f: Family, refresh: boolean): void {
    const ctx: EncodeContext = {
      fourOctetAs: n.fourOctetAs,
      addPathSend: (afi, safi) => addPathSend(n, afi, safi),
      maxLen: n.extendedMessage ? BGP_MAX_EXT_MSG : BGP_MAX_MSG,
    };
    const prefixes = this.opts.advertise.filter((p) => p.afi === f.afi);
    if (refresh) this.session.sendRouteRefresh(f.afi, f.safi, 1);
    if (prefixes.length) {
      const nh = this.nextHopFor(f.afi);
      if (!nh) {
        this.emit({
          event: "log",
          level: "error",
          msg: `no ${f.afi === AFI.IPV6 ? "IPv6" : "IPv4"} next hop for ${prefixes.map(prefixToString).join(", ")}: give --next-hop`,
        });
      } else {
        for (const m of buildAnnouncements(f.afi, f.safi, prefixes, this.attributes(n), nh, ctx)) this.session.sendUpdate(m);
      }
    }
    if (refresh) this.session.sendRouteRefresh(f.afi, f.safi, 2);
    else this.session.sendUpdate(encodeEndOfRib(f.afi, f.safi));
  }
}

/** Validate that next hops are at most one per family. */
export function checkNextHops(nextHops: string[]): string | null {
  const seen = new Set<number>();
  for (const nh of nextHops) {
    const a = parseAddr(nh);
    if (!a) return `"${nh}" is not an address`;
    if (seen.has(a.afi)) return "give at most one IPv4 and one IPv6 --next-hop";
    seen.add(a.afi);
  }
  return null;
}

