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
  /** RTNH_F_ONLINK: the gateway is on the link of `ifindex` even though no subnet says so (an overlay's VTEP). */
  onlink?: boolean;
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
  /** IFF_UP and IFF_RUNNING. */
  up: boolean;
  mtu?: number;
  /** IFF_UP alone (administratively up). Set, as the three below, by `LinkKernel.dumpLinkDetails`. */
  adminUp?: boolean;
  /** IFLA_ADDRESS as "02:b6:c0:00:02:0a" (links with a hardware address). */
  mac?: string;
  /** IFLA_INFO_KIND ("vxlan", "veth", "bridge", ...); absent for links without one (loopback, physical). */
  kind?: string;
  /** The VXLAN settings of a `kind: "vxlan"` link. */
  vxlan?: KernelVxlan;
}

/** A VXLAN device's settings (IFLA_INFO_DATA of kind "vxlan"). */
export interface KernelVxlan {
  /** VNI, IFLA_VXLAN_ID. */
  id: number;
  /** Local underlay address (IFLA_VXLAN_LOCAL / IFLA_VXLAN_LOCAL6). */
  local?: string;
  /** UDP destination port (IFLA_VXLAN_PORT). */
  port: number;
  /** IFLA_VXLAN_LEARNING. */
  learning: boolean;
}

/**
 * A neighbour entry (`ip neigh`: family 4 or 6, `ip` the neighbour's address)
 * or a bridge FDB entry (`bridge fdb`: family "bridge", `ip` the remote VTEP
 * of a VXLAN device, NDA_DST).
 */
export interface KernelNeighbor {
  family: FibFamily | "bridge";
  ifindex: number;
  ip?: string;
  /** NDA_LLADDR, "02:b6:c0:00:02:0a". */
  mac?: string;
  /** ndm_state (NUD_PERMANENT 0x80, ...). */
  state: number;
  /** ndm_flags (NTF_SELF 0x02, ...). */
  flags: number;
}

/** A link change: create a VXLAN device, set a link's MTU / address / up state, or delete one. */
export type LinkOp =
  | { op: "create-vxlan"; name: string; vxlan: KernelVxlan; mtu: number; mac: string; up: boolean }
  | { op: "set"; index: number; mtu?: number; mac?: string; up?: boolean }
  | { op: "delete"; index: number };

export type NeighborOp = { op: "replace" | "delete"; neighbor: KernelNeighbor };

/** An address change; `exclusive`: an add fails (EEXIST) when the address is there already, instead of replacing it. */
export type AddressOp = { op: "add" | "delete"; address: KernelAddress; exclusive?: boolean };

/**
 * What an overlay (lib/k8s/overlay.ts) needs from the kernel besides the
 * FIB's contract: links with their kind, neighbour and FDB entries, and
 * addresses of a device it owns.
 */
export interface LinkKernel {
  /** Links with their details (adminUp, mac, kind, vxlan). */
  dumpLinkDetails(): Promise<KernelLink[]>;
  dumpAddresses(): Promise<KernelAddress[]>;
  /** Neighbour (4, 6) or FDB ("bridge") entries of one link. */
  dumpNeighbors(family: FibFamily | "bridge", ifindex: number): Promise<KernelNeighbor[]>;
  /** null on success or the kernel's error. */
  linkOp(op: LinkOp): Promise<KernelError | null>;
  /** One result per operation, in order (null: done). */
  neighborOps(ops: NeighborOp[]): Promise<(KernelError | null)[]>;
  addressOp(op: AddressOp): Promise<KernelError | null>;
  /** Link and address events (as Kernel.watch); returns the unsubscribe function. */
  watch(fn: (e: KernelEvent) => void): () => void;
  close(): void;
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
