/**
 * An in-memory `Kernel` (see ./types.ts) for tests of the FIB reconciler and
 * of anything built on it. It models what matters of rtnetlink:
 * - route identity (table, prefix, metric): a REPLACE overwrites whatever
 *   route holds the key, whatever its protocol, and emits only route-added
 *   (as the kernel does for NLM_F_REPLACE); a delete naming a protocol only
 *   matches a route of that protocol (ESRCH otherwise);
 * - gateway validation: per-gateway injected errors (`failGateway`), and
 *   with `strictGateways` the kernel's rule that a gateway must lie in a
 *   connected subnet of an up link (ENETUNREACH, "Nexthop has invalid
 *   gateway"); an IPv6 link-local gateway needs an existing, up ifindex;
 *   accepted gateways get their output ifindex filled in, as dumps show it;
 * - dumps filtered by family, table and protocol;
 * - events for every change made through `apply` and through the helpers
 *   that play "someone else" (`ipRouteAdd/Replace/Del`, addresses, links),
 *   and `overrun()` to lose events and report ENOBUFS; with
 *   `echoOwnChanges = false`, as ffi/rtnetlink.ts does (a socket filter on
 *   its own port id), `apply`'s changes are not reported one by one but as
 *   one `{type: "applied"}` per call;
 * - `apply` resolves asynchronously (after `applyDelayTurns` turns; calls
 *   are applied in order); counters for calls, ops and the largest number
 *   of concurrent calls;
 * - `lookupRoute` as `ip route get ADDR fibmatch` answers it: the local
 *   table (our addresses), then main (with the connected subnets of up
 *   links), then default; longest prefix, then lowest metric; blackhole /
 *   unreachable / prohibit routes and no match give the kernel's errors.
 *   The answer is the matching route as stored: its gateways with their
 *   output ifindex (filled in when installed), or only the ifindex for a
 *   connected route, as RTM_NEWROUTE carries RTA_GATEWAY/RTA_OIF/RTA_MULTIPATH.
 * Deletes match by key and protocol only (not by next hops).
 *
 * It is also a `LinkKernel` (the overlay's contract): links with their
 * details (kind, VXLAN settings, MAC), VXLAN devices created, changed and
 * deleted (EEXIST for a taken name, ENODEV for a missing index), neighbour
 * and FDB entries per link, addresses added and removed. Deleting a link
 * takes its addresses, neighbours and the routes through it with it (the
 * routes silently, as the kernel does for IPv4). An onlink next hop needs
 * only its link; for IPv6, no route of another device may cover its gateway
 * (EINVAL, as the kernel's onlink check). These changes are reported like `apply`'s (not at all with
 * `echoOwnChanges = false`).
 */
import { type Prefix, formatIPv4, formatIPv6, maskAddr, parseAddr, parsePrefix, prefixContains, prefixToString } from "../../lib/core/addr.ts";
import type {
  AddressOp,
  FibFamily,
  Kernel,
  KernelAddress,
  KernelError,
  KernelEvent,
  KernelLink,
  KernelLookup,
  KernelNeighbor,
  KernelNextHop,
  KernelOp,
  KernelRoute,
  LinkKernel,
  LinkOp,
  NeighborOp,
} from "../../lib/fib/types.ts";

const ERRNO: Record<string, number> = { ESRCH: 3, ENOENT: 2, EACCES: 13, EEXIST: 17, EINVAL: 22, ENODEV: 19, ENETUNREACH: 101, EHOSTUNREACH: 113, ENOBUFS: 105, EADDRNOTAVAIL: 99 };

/** The error a lookup matching a route of this rtm_type fails with (blackhole, unreachable, prohibit). */
const LOOKUP_ERROR: Record<number, string> = { 6: "EINVAL", 7: "EHOSTUNREACH", 8: "EACCES" };

export function kernelError(code: string, message = ""): KernelError {
  return { errno: ERRNO[code] ?? 0, code, message };
}

function cloneRoute(r: KernelRoute): KernelRoute {
  const c: KernelRoute = { ...r, nextHops: r.nextHops.map((h) => ({ ...h })) };
  return c;
}

function canonPrefix(text: string): string {
  return prefixToString(parsePrefix(text));
}

function canonAddr(text: string): string | null {
  const a = parseAddr(text);
  return a ? (a.afi === 1 ? formatIPv4(a.addr) : formatIPv6(a.addr)) : null;
}

function neighborId(n: KernelNeighbor): string {
  return `${n.family}|${n.ifindex}|${n.family === "bridge" ? n.mac : canonAddr(n.ip ?? "")}`;
}

function isLinkLocal(text: string): boolean {
  const a = parseAddr(text);
  return !!a && a.afi === 2 && a.addr[0] === 0xfe && (a.addr[1]! & 0xc0) === 0x80;
}

export class FakeKernel implements Kernel, LinkKernel {
  /** Routes by identity "table|prefix|metric" (canonical prefix text). */
  readonly routes = new Map<string, KernelRoute>();
  readonly links = new Map<number, KernelLink>();
  addresses: KernelAddress[] = [];
  /** Every op applied through `apply`, in order, with its result code (null: ok). */
  readonly opLog: { op: KernelOp["op"]; prefix: string; error: string | null }[] = [];
  applyCalls = 0;
  opsApplied = 0;
  dumpCalls = 0;
  /** Addresses passed to lookupRoute, in order ("203.0.113.1"). */
  readonly lookups: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  batchSizes: number[] = [];
  /** Require gateways to be in a connected subnet of an up link. */
  strictGateways = false;
  /** While true, changes emit no events (they are lost). */
  dropEvents = false;
  closed = false;
  /** Deliver events on a later tick (after `apply` has resolved), as a separate multicast socket may. */
  asyncEvents = false;
  /** Report `apply`'s changes route by route (true) or as one `applied` event per call (false, as RtNetlink). */
  echoOwnChanges = true;
  /** Inside `apply`'s loop: its route events are ours. */
  private applying = false;
  private pendingEvents: KernelEvent[] = [];
  /** Rewrite events before delivery (e.g. a kernel that notifies multipath routes one hop at a time). */
  mangleEvents: ((e: KernelEvent) => KernelEvent) | null = null;
  /** Event-loop turns an `apply` takes before the kernel works on it (a busy kernel or a slow socket). */
  applyDelayTurns = 1;
  /** Make `apply` itself reject (a broken socket) while set. */
  applyReject: Error | null = null;
  private readonly failing = new Map<string, string>();
  private readonly listeners = new Set<(e: KernelEvent) => void>();

  // ---------------------------------------------------------------- Kernel

  async dumpRoutes(family: FibFamily, filter?: { table?: number; protocol?: number }): Promise<KernelRoute[]> {
    this.dumpCalls++;
    await new Promise((r) => setImmediate(r));
    const out: KernelRoute[] = [];
    for (const r of this.routes.values()) {
      if (r.family !== family) continue;
      if (filter?.table !== undefined && r.table !== filter.table) continue;
      if (filter?.protocol !== undefined && r.protocol !== filter.protocol) continue;
      out.push(cloneRoute(r));
    }
    return out;
  }

  async dumpLinks(): Promise<KernelLink[]> {
    return [...this.links.values()].map((l) => ({ ...l }));
  }

  async dumpAddresses(): Promise<KernelAddress[]> {
    return this.addresses.map((a) => ({ ...a }));
  }

  // ---------------------------------------------------------------- LinkKernel

  /** Neighbour and FDB entries by `neighborId`. */
  readonly neighbors = new Map<string, KernelNeighbor>();
  /** Every link, neighbour and address operation, in order, with its result code (null: ok). */
  readonly linkLog: { what: string; error: string | null }[] = [];
  private nextIndex = 100;

  async dumpLinkDetails(): Promise<KernelLink[]> {
    return this.dumpLinks();
  }

  async dumpNeighbors(family: FibFamily | "bridge", ifindex: number): Promise<KernelNeighbor[]> {
    await new Promise((r) => setImmediate(r));
    return [...this.neighbors.values()].filter((n) => n.family === family && n.ifindex === ifindex).map((n) => ({ ...n }));
  }

  private async own<T>(fn: () => T): Promise<T> {
    await new Promise((r) => setImmediate(r));
    this.applying = true;
    try {
      return fn();
    } finally {
      this.applying = false;
    }
  }

  linkOp(op: LinkOp): Promise<KernelError | null> {
    return this.own(() => {
      let r: KernelError | null = null;
      if (op.op === "create-vxlan") {
        if ([...this.links.values()].some((l) => l.name === op.name)) r = kernelError("EEXIST", "File exists");
        else {
          const index = ++this.nextIndex;
          this.setLink({ index, name: op.name, up: op.up, adminUp: op.up, mtu: op.mtu, mac: op.mac, kind: "vxlan", vxlan: { ...op.vxlan } });
        }
      } else {
        const l = this.links.get(op.index);
        if (!l) r = kernelError("ENODEV", "No such device");
        else if (op.op === "delete") this.removeLink(op.index);
        else {
          const up = op.up ?? l.adminUp ?? l.up;
          this.setLink({ ...l, ...(op.mtu !== undefined ? { mtu: op.mtu } : {}), ...(op.mac !== undefined ? { mac: op.mac } : {}), up, adminUp: up });
        }
      }
      this.linkLog.push({ what: `${op.op} ${"name" in op ? op.name : op.index}`, error: r?.code ?? null });
      return r;
    });
  }

  neighborOps(ops: NeighborOp[]): Promise<(KernelError | null)[]> {
    return this.own(() =>
      ops.map((op) => {
        const n = op.neighbor;
        const id = neighborId(n);
        let r: KernelError | null = null;
        if (!this.links.has(n.ifindex)) r = kernelError("ENODEV", "No such device");
        else if (op.op === "replace") this.neighbors.set(id, { ...n });
        else if (!this.neighbors.delete(id)) r = kernelError("ENOENT", "No such file or directory");
        this.linkLog.push({ what: `${op.op} neighbor ${id}`, error: r?.code ?? null });
        return r;
      }),
    );
  }

  addressOp(op: AddressOp): Promise<KernelError | null> {
    return this.own(() => {
      const a = op.address;
      const have = this.addresses.some((x) => x.ifindex === a.ifindex && x.address === a.address && x.prefixLength === a.prefixLength);
      let r: KernelError | null = null;
      if (!this.links.has(a.ifindex)) r = kernelError("ENODEV", "No such device");
      else if (op.op === "add") {
        if (!have) this.addAddress(a);
      } else if (!have) r = kernelError("EADDRNOTAVAIL", "Cannot assign requested address");
      else this.removeAddress(a);
      this.linkLog.push({ what: `${op.op} address ${a.address}/${a.prefixLength} on ${a.ifindex}`, error: r?.code ?? null });
      return r;
    });
  }

  async apply(ops: KernelOp[]): Promise<(KernelError | null)[]> {
    this.applyCalls++;
    this.batchSizes.push(ops.length);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      for (let i = 0; i < this.applyDelayTurns; i++) await new Promise((r) => setImmediate(r));
      if (this.applyReject) throw this.applyReject;
      const res: (KernelError | null)[] = [];
      this.applying = true;
      try {
        for (const op of ops) {
          const r = op.op === "replace" ? this.replace(op.route) : this.del(op.route);
          this.opLog.push({ op: op.op, prefix: op.route.prefix, error: r?.code ?? null });
          this.opsApplied++;
          res.push(r);
        }
      } finally {
        this.applying = false;
      }
      if (!this.echoOwnChanges && res.some((r) => r === null)) this.emit({ type: "applied" });
      return res;
    } finally {
      this.inFlight--;
    }
  }

  async lookupRoute(family: FibFamily, addr: Uint8Array): Promise<KernelLookup> {
    await new Promise((r) => setImmediate(r));
    const afi = family === 4 ? 1 : 2;
    if (addr.length !== (family === 4 ? 4 : 16)) return { error: kernelError("EINVAL", "Invalid address length") };
    const text = afi === 1 ? formatIPv4(addr) : formatIPv6(addr);
    this.lookups.push(text);
    const host: Prefix = { afi, len: addr.length * 8, addr };
    for (const table of [255, 254, 253]) {
      let best: KernelRoute | null = null;
      let bestLen = -1;
      for (const r of this.candidates(family, table)) {
        const p = parsePrefix(r.prefix);
        if (!prefixContains(p, host)) continue;
        if (p.len > bestLen || (p.len === bestLen && r.metric < best!.metric)) {
          best = r;
          bestLen = p.len;
        }
      }
      if (best === null) continue;
      const err = LOOKUP_ERROR[best.type];
      return err ? { error: kernelError(err) } : { route: cloneRoute(best) };
    }
    return { error: kernelError("ENETUNREACH", "Network is unreachable") };
  }

  /** Routes of one table a lookup considers: the stored ones plus, as the kernel adds them, local and connected routes of our addresses. */
  private *candidates(family: FibFamily, table: number): Iterable<KernelRoute> {
    for (const r of this.routes.values()) if (r.family === family && r.table === table) yield r;
    if (table !== 255 && table !== 254) return;
    for (const a of this.addresses) {
      if (a.family !== family || !this.links.get(a.ifindex)?.up) continue;
      const x = parseAddr(a.address);
      if (!x) continue;
      if (table === 255) {
        yield { family, prefix: `${a.address}/${x.addr.length * 8}`, table, protocol: 2, metric: 0, nextHops: [{ ifindex: a.ifindex }], type: 2, scope: 254 };
      } else {
        const net = prefixToString(maskPrefix({ afi: x.afi, len: a.prefixLength, addr: x.addr }));
        yield { family, prefix: net, table, protocol: 2, metric: family === 4 ? 0 : 256, nextHops: [{ ifindex: a.ifindex }], type: 1, scope: 253 };
      }
    }
  }

  watch(fn: (e: KernelEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  close(): void {
    this.closed = true;
    this.listeners.clear();
  }

  // ---------------------------------------------------------------- model

  private id(table: number, prefix: string, metric: number): string {
    return `${table}|${canonPrefix(prefix)}|${metric}`;
  }

  private emit(e: KernelEvent): void {
    if (this.dropEvents) return;
    if (this.applying && !this.echoOwnChanges) return;
    const ev = this.mangleEvents ? this.mangleEvents(e) : e;
    if (!this.asyncEvents) {
      for (const fn of [...this.listeners]) fn(ev);
      return;
    }
    this.pendingEvents.push(ev);
    if (this.pendingEvents.length === 1) {
      setImmediate(() => {
        const evs = this.pendingEvents;
        this.pendingEvents = [];
        for (const x of evs) for (const fn of [...this.listeners]) fn(x);
      });
    }
  }

  /** Validate and complete a route as the kernel would store it, or the error. */
  private check(route: KernelRoute): KernelRoute | KernelError {
    let p: Prefix;
    try {
      p = parsePrefix(route.prefix);
    } catch {
      return kernelError("EINVAL", "Invalid prefix");
    }
    if ((p.afi === 1 ? 4 : 6) !== route.family) return kernelError("EINVAL", "Invalid prefix for family");
    const r = cloneRoute(route);
    r.prefix = prefixToString(p);
    if (r.type !== 1) return r;
    if (r.nextHops.length === 0) return kernelError("EINVAL", "Nexthop required");
    for (const h of r.nextHops) {
      const e = this.checkHop(route.family, h);
      if (e) return e;
      if (route.family === 6 && h.onlink && this.onlinkCovered(r.table, h)) return kernelError("EINVAL", "Nexthop has invalid gateway or device mismatch");
    }
    return r;
  }

  private checkHop(family: FibFamily, h: KernelNextHop): KernelError | null {
    if (h.gateway === undefined) {
      if (h.ifindex === undefined || !this.links.has(h.ifindex)) return kernelError("ENODEV", "Device for nexthop is not up");
      return null;
    }
    const a = parseAddr(h.gateway);
    if (!a) return kernelError("EINVAL", "Invalid gateway");
    const gwFam: FibFamily = a.afi === 1 ? 4 : 6;
    if (family === 4 && gwFam === 6 && !h.via6) return kernelError("EINVAL", "IPv6 gateway for an IPv4 route needs RTA_VIA");
    if (family === 6 && gwFam === 4) return kernelError("EINVAL", "Invalid gateway address family");
    h.gateway = canonAddr(h.gateway)!;
    const injected = this.failing.get(h.gateway);
    if (injected) return kernelError(injected, "Nexthop has invalid gateway");
    if (h.ifindex !== undefined) {
      const l = this.links.get(h.ifindex);
      if (!l) return kernelError("ENODEV", "Device for nexthop is not up");
      if (isLinkLocal(h.gateway) || h.onlink) return l.up ? null : kernelError("ENETUNREACH", "Nexthop device is not up");
    } else if (isLinkLocal(h.gateway)) {
      return kernelError("EINVAL", "Nexthop has invalid gateway");
    }
    const ifindex = this.connectedIfindex(a.afi, a.addr, h.ifindex);
    if (ifindex !== undefined) h.ifindex = ifindex;
    else if (this.strictGateways) return kernelError("ENETUNREACH", "Nexthop has invalid gateway");
    return null;
  }

  /** IPv6: an onlink gateway that a (non-default) unicast route of another device covers is refused, as the kernel does. */
  private onlinkCovered(table: number, h: KernelNextHop): boolean {
    const gw = parseAddr(h.gateway!)!;
    const host: Prefix = { afi: 2, len: 128, addr: gw.addr };
    let best: KernelRoute | null = null;
    let bestLen = -1;
    for (const r of this.routes.values()) {
      if (r.family !== 6 || r.table !== table) continue;
      const p = parsePrefix(r.prefix);
      if (p.len > bestLen && prefixContains(p, host)) {
        best = r;
        bestLen = p.len;
      }
    }
    return best !== null && bestLen > 0 && best.type === 1 && best.nextHops.some((x) => x.ifindex !== undefined && x.ifindex !== h.ifindex);
  }

  /** The up link whose connected subnet holds the address (restricted to `only` when given). */
  private connectedIfindex(afi: number, addr: Uint8Array, only?: number): number | undefined {
    const p: Prefix = { afi: afi as 1 | 2, len: afi === 1 ? 32 : 128, addr };
    for (const a of this.addresses) {
      if (only !== undefined && a.ifindex !== only) continue;
      if (!this.links.get(a.ifindex)?.up) continue;
      const x = parseAddr(a.address);
      if (!x || x.afi !== afi) continue;
      const net: Prefix = { afi: x.afi, len: a.prefixLength, addr: x.addr };
      if (prefixContains(maskPrefix(net), p)) return a.ifindex;
    }
    return undefined;
  }

  private replace(route: KernelRoute): KernelError | null {
    const r = this.check(route);
    if ("errno" in r) return r;
    this.routes.set(this.id(r.table, r.prefix, r.metric), r);
    this.emit({ type: "route-added", route: cloneRoute(r) });
    return null;
  }

  private del(route: KernelRoute): KernelError | null {
    let key: string;
    try {
      key = this.id(route.table, route.prefix, route.metric);
    } catch {
      return kernelError("EINVAL", "Invalid prefix");
    }
    const have = this.routes.get(key);
    if (!have || (route.protocol !== 0 && have.protocol !== route.protocol)) return kernelError("ESRCH", "");
    this.routes.delete(key);
    this.emit({ type: "route-deleted", route: cloneRoute(have) });
    return null;
  }

  // ------------------------------------------------- "someone else" (ip ...)

  /** `ip route add` (CREATE|EXCL): EEXIST when the key is taken. */
  ipRouteAdd(route: KernelRoute): KernelError | null {
    const r = this.check(route);
    if ("errno" in r) return r;
    const key = this.id(r.table, r.prefix, r.metric);
    if (this.routes.has(key)) return kernelError("EEXIST", "File exists");
    this.routes.set(key, r);
    this.emit({ type: "route-added", route: cloneRoute(r) });
    return null;
  }

  /** `ip route replace`: takes the key whatever holds it. */
  ipRouteReplace(route: KernelRoute): KernelError | null {
    return this.replace(route);
  }

  /** `ip route del PREFIX table T metric M [proto P]`. */
  ipRouteDel(prefix: string, table: number, metric: number, protocol = 0): KernelError | null {
    return this.del({ family: prefix.includes(":") ? 6 : 4, prefix, table, metric, protocol, nextHops: [], type: 1 });
  }

  /** The route holding a key, or undefined. */
  get(prefix: string, table = 254, metric = 20): KernelRoute | undefined {
    return this.routes.get(this.id(table, prefix, metric));
  }

  /** Routes matching a filter (for assertions). */
  list(filter: { table?: number; protocol?: number; family?: FibFamily } = {}): KernelRoute[] {
    return [...this.routes.values()].filter(
      (r) =>
        (filter.table === undefined || r.table === filter.table) &&
        (filter.protocol === undefined || r.protocol === filter.protocol) &&
        (filter.family === undefined || r.family === filter.family),
    );
  }

  setLink(link: KernelLink): void {
    this.links.set(link.index, { ...link });
    this.emit({ type: "link", link: { ...link }, removed: false });
  }

  removeLink(index: number): void {
    const l = this.links.get(index);
    if (!l) return;
    for (const a of this.addresses.filter((x) => x.ifindex === index)) this.removeAddress(a);
    for (const [id, n] of this.neighbors) if (n.ifindex === index) this.neighbors.delete(id);
    for (const [id, r] of this.routes) if (r.nextHops.some((h) => h.ifindex === index)) this.routes.delete(id);
    this.links.delete(index);
    this.emit({ type: "link", link: { ...l }, removed: true });
  }

  addAddress(a: KernelAddress): void {
    this.addresses.push({ ...a });
    this.emit({ type: "address", address: { ...a }, removed: false });
  }

  removeAddress(a: KernelAddress): void {
    const i = this.addresses.findIndex((x) => x.ifindex === a.ifindex && x.address === a.address && x.prefixLength === a.prefixLength);
    if (i < 0) return;
    const [gone] = this.addresses.splice(i, 1);
    this.emit({ type: "address", address: { ...gone! }, removed: true });
  }

  /** Make a gateway fail with `code` (ENETUNREACH by default) until `reachable(gw)`. */
  failGateway(gateway: string, code = "ENETUNREACH"): void {
    this.failing.set(canonAddr(gateway) ?? gateway, code);
  }

  reachable(gateway: string): void {
    this.failing.delete(canonAddr(gateway) ?? gateway);
  }

  /** Run `changes` with events lost, then report the overrun (ENOBUFS) to watchers. */
  overrun(changes?: () => void): void {
    this.dropEvents = true;
    try {
      changes?.();
    } finally {
      this.dropEvents = false;
    }
    this.emit({ type: "overrun" });
  }

  /** Change the table behind everyone's back (no event at all). */
  silently(changes: () => void): void {
    this.dropEvents = true;
    try {
      changes();
    } finally {
      this.dropEvents = false;
    }
  }
}

function maskPrefix(p: Prefix): Prefix {
  return { afi: p.afi, len: p.len, addr: maskAddr(p.addr, p.len) };
}
