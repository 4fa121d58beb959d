/**
 * The contract between the FIB reconciler (lib/fib) and the kernel (ffi/
 * rtnetlink): kernel routes, links and addresses as plain data, and the
 * operations the reconciler asks the kernel for. The real implementation is
 * ffi/rtnetlink.ts; unit tests use a fake.
 */

export type FibFamily = 4 | 6;

export interface KernelNextHop {
  /** Gateway address text; absent for a device route. */
  gateway?: string;
  /** Output interface index (required for an IPv6 link-local gateway). */
  ifindex?: number;
  /** RFC 8950: an IPv6 gateway for an IPv4 route (RTA_VIA). */
  via6?: boolean;
  weight?: number;
}

export interface KernelRoute {
  family: FibFamily;
  /** "203.0.113.0/24", "2001:db8::/32". */
  prefix: string;
  table: number;
  /** rtm_protocol (186 = RTPROT_BGP). */
  protocol: number;
  /** RTA_PRIORITY (metric). */
  metric: number;
  /** One entry, or several for an ECMP route (RTA_MULTIPATH). */
  nextHops: KernelNextHop[];
  /** rtm_type: 1 unicast (others: blackhole 6, unreachable 7, ...). */
  type: number;
  /** rtm_scope. */
  scope?: number;
}

export interface KernelLink {
  index: number;
  name: string;
  up: boolean;
  mtu?: number;
}

export interface KernelAddress {
  family: FibFamily;
  ifindex: number;
  /** "192.0.2.1" */
  address: string;
  prefixLength: number;
  scope?: number;
}

/** A failed kernel operation: errno name and the kernel's extended-ack text when given. */
export interface KernelError {
  errno: number;
  /** "ENETUNREACH", "EEXIST", ... */
  code: string;
  /** NETLINK_EXT_ACK message, e.g. "Nexthop has invalid gateway". */
  message: string;
}

/**
 * The answer of a route lookup for one address (`ip route get ADDR
 * fibmatch`): the FIB entry that matched, or the kernel's error when the
 * lookup failed — ENETUNREACH (no route), EHOSTUNREACH / EINVAL / EACCES
 * (an unreachable, blackhole or prohibit route matched).
 */
export type KernelLookup = { route: KernelRoute; error?: undefined } | { route?: undefined; error: KernelError };

export type KernelOp = { op: "replace"; route: KernelRoute } | { op: "delete"; route: KernelRoute };

export type KernelEvent =
  | { type: "route-added"; route: KernelRoute }
  | { type: "route-deleted"; route: KernelRoute }
  | { type: "link"; link: KernelLink; removed: boolean }
  | { type: "address"; address: KernelAddress; removed: boolean }
  /** The multicast socket overflowed (ENOBUFS): events were lost, resync with a dump. */
  | { type: "overrun" }
  /**
   * An apply() through this handle changed routes. Those changes are not
   * reported one by one (RtNetlink filters them out in the kernel; apply()'s
   * results are their outcome); this tells watchers that care about any
   * change (next-hop resolution) that the table moved.
   */
  | { type: "applied" };

/** What the reconciler needs from the kernel. */
export interface Kernel {
  /** Dump routes of a family, filtered by table and protocol when given. */
  dumpRoutes(family: FibFamily, filter?: { table?: number; protocol?: number }): Promise<KernelRoute[]>;
  dumpLinks(): Promise<KernelLink[]>;
  dumpAddresses(): Promise<KernelAddress[]>;
  /**
   * Apply operations, batched (many per sendmsg). Resolves with one result
   * per operation, in order: null on success or the kernel's error. Never
   * rejects for a per-route error.
   */
  apply(ops: KernelOp[]): Promise<(KernelError | null)[]>;
  /** Look up one address (4 or 16 bytes) in the kernel's FIB; never rejects for a failed lookup. */
  lookupRoute(family: FibFamily, addr: Uint8Array): Promise<KernelLookup>;
  /**
   * Subscribe to route/link/address changes (multicast groups); returns the
   * unsubscribe function. Changes made by this handle's own apply() may be
   * reported as one `applied` event instead of route events.
   */
  watch(fn: (e: KernelEvent) => void): () => void;
  close(): void;
}
