/**
 * The control API between the daemon (`bgpctl run`) and the CLI: request and
 * response shapes, and the interface the daemon implements. Served as
 * HTTP/JSON on a Unix socket by lib/api/server.ts.
 */

import type { LoopLagStats } from "../core/loop-lag.ts";
import type { SlicerStats } from "../core/slices.ts";
import type { K8sStatus } from "../k8s/types.ts";
import type { BfdSessionInfo } from "../bfd/manager.ts";
import type { CheckInfo } from "../health/mod.ts";
export type { CheckInfo } from "../health/mod.ts";

export type SessionState = "Idle" | "Connect" | "Active" | "OpenSent" | "OpenConfirm" | "Established";

/** One BFD session of `show bfd` (GET /v1/bfd): the protocol's view and its BGP neighbour's state. */
export interface BfdInfo extends BfdSessionInfo {
  /** The BGP session's state now. */
  bgpState: string;
  /** bfd.graceful: BFD down closes BGP without a NOTIFICATION. */
  graceful: boolean;
}

export interface NeighborInfo {
  address: string;
  remoteAs: number;
  localAs: number;
  description?: string;
  state: SessionState;
  /** Seconds since the session reached Established (or since it went down when not Established). */
  uptimeSeconds: number;
  /** Prefixes received (Adj-RIB-In, before import policy). */
  received: number;
  /** Prefixes accepted by import policy. */
  accepted: number;
  /** Prefixes advertised (Adj-RIB-Out). */
  advertised: number;
  /** Negotiated capabilities, human text each ("4-octet AS", "ipv4-unicast", ...). */
  capabilities: string[];
  lastError: string | null;
  messages: { received: number; sent: number };
  /** Messages queued for sending. */
  outQueue: number;
  holdTime: number | null;
  keepaliveTime: number | null;
  routerId: string | null;
  localAddress: string | null;
  adminDown: boolean;
  routeReflectorClient: boolean;
  /** The BFD session's state (Up, Down, Init, AdminDown) when the peer has bfd.enabled. */
  bfd?: string;
  /** The session's TTL policy ("TTL security: 1 hop (min TTL 255)", "multihop: TTL 2", "directly connected: TTL 1", "system default TTL"). */
  ttl?: string;
  /** The other peers this one shares its update group with (one export and encoding for all: lib/router/export-group.ts); absent when alone. */
  updateGroup?: string[];
  /** Graceful restart (RFC 4724/8538/9494) with this peer. */
  gracefulRestart?: {
    enabled: boolean;
    /** The restart time the peer announced (null: no capability, or never established). */
    peerRestartTime: number | null;
    /** The N bit on both sides (RFC 8538). */
    notification: boolean;
    /** Long-lived graceful restart negotiated (RFC 9494). */
    longLived: boolean;
    /** Routes of the peer kept stale while it restarts: families, phase (restart: waiting for it; eor: back, waiting for End-of-RIB; long-lived: LLGR_STALE), seconds left. */
    stale: { families: string[]; phase: "restart" | "eor" | "long-lived"; secondsLeft: number } | null;
  };
}

export interface RibEntry {
  prefix: string;
  nextHop: string | null;
  asPath: number[];
  origin: string;
  med: number | null;
  localPref: number | null;
  communities: string[];
  largeCommunities: string[];
  /** The peer it was learned from ("local" for originated routes). */
  peer: string;
  best: boolean;
  multipath: boolean;
  ibgp: boolean;
  stale: boolean;
  /**
   * The next hop resolves (next-hop tracking); an unreachable route is never
   * best nor exported. The daemon always sets it and `igpCost`; absent (from
   * other producers of entries) means reachable.
   */
  reachable?: boolean;
  /** IGP cost to the next hop (metric of the route resolving it; 0 for local, self and link-local next hops). */
  igpCost?: number;
  /**
   * The immediate forwarding hops when the next hop is not on-link (RFC 4271
   * §5.1.3: resolved through a gateway route or another BGP route), as the
   * kernel route is installed: "192.0.2.66", "fe80::1%2" (interface index).
   * Absent when the next hop itself is the forwarding hop.
   */
  via?: string[];
  pathId?: number;
  originatorId?: string;
  clusterList?: string[];
}

export interface RibQuery {
  prefix?: string;
  /** With prefix: "longer" (more specifics), "shorter" (less specifics), default exact/longest match. */
  match?: "exact" | "longer" | "shorter";
  neighbor?: string;
  /** With neighbor: Adj-RIB-In (before policy) or Adj-RIB-Out; default Loc-RIB routes from that neighbour. */
  table?: "in" | "out" | "loc";
  community?: string;
  asn?: number;
  bestOnly?: boolean;
  family?: "ipv4" | "ipv6";
  /**
   * Stop after this many entries (applied by the control socket as it
   * streams; the router ignores it). The NDJSON answer's last line says
   * whether more were left.
   */
  limit?: number;
}

/** The last line of a `GET /v1/rib?format=ndjson` answer: how many entries were sent, and whether `limit` cut the answer short. */
export interface RibStreamEnd {
  end: { count: number; truncated: boolean };
}

/** `GET /v1/summary` (`bgpctl show summary -j`). */
export interface RouterSummary {
  routerId: string;
  asn: number;
  uptimeSeconds: number;
  neighbors: NeighborInfo[];
  /** Event-loop lag since the daemon started (lib/core/loop-lag.ts). */
  eventLoop: LoopLagStats;
  /**
   * The shared slicer's turns since the daemon started (lib/core/slices.ts):
   * how many, the longest (ms), and how many took longer than 20 ms; the
   * same two by the event loop's time on a core (`longestOnCoreMs`,
   * `over20OnCore`: without the time its thread waited for a core while
   * other threads or processes ran), and when that longest turn on a core
   * ended (`longestOnCoreAt`, Unix time in ms). Tells the daemon's own work
   * (cut into turns of a few milliseconds) from what held the loop besides
   * it.
   */
  slices?: SlicerStats;
}

export interface RibSummary {
  families: { family: string; prefixes: number; paths: number }[];
  peers: { address: string; family: string; received: number; accepted: number; advertised: number }[];
}

/**
 * `POST /v1/advertise`: prefixes with the attributes of a file `advertise`
 * entry, checked by lib/config/schema.ts before the daemon sees them
 * (prefixes and communities in canonical text).
 */
export interface AdvertiseRequest {
  prefixes: string[];
  nextHop?: string;
  communities?: string[];
  largeCommunities?: string[];
  localPref?: number;
  med?: number;
  asPathPrepend?: number;
}

/**
 * `POST /v1/peers`: a peer as in the file's `peers:` (every key but group and
 * passwordFile is accepted, checked by lib/config/schema.ts; the router builds
 * it with peerFromRequest, with the file's defaults). The keys the CLI sets:
 */
export interface PeerAddRequest {
  address: string;
  remoteAs: number;
  localAs?: number;
  port?: number;
  localAddress?: string;
  passive?: boolean;
  holdTime?: number;
  families?: ("ipv4" | "ipv6")[];
  import?: string;
  export?: string;
  description?: string;
  routeReflectorClient?: boolean;
  nextHopSelf?: boolean;
}

/** One prefix as `bgpctl show fib` shows it (kernel sync state). */
export interface FibEntry {
  prefix: string;
  state: "installed" | "pending" | "failed" | "conflict" | "excluded";
  nextHops: string[];
  reason?: string;
}

export interface InterfacesInfo {
  links: { index: number; name: string; up: boolean; mtu?: number }[];
  addresses: { family: 4 | 6; ifindex: number; address: string; prefixLength: number }[];
}

/** One event of `bgpctl monitor`. */
export type MonitorEvent =
  | { type: "state"; time: string; peer: string; from: SessionState; to: SessionState; reason: string }
  | { type: "announce"; time: string; peer: string; route: RibEntry }
  | { type: "withdraw"; time: string; peer: string; prefix: string }
  | { type: "best"; time: string; prefix: string; route: RibEntry | null }
  | { type: "log"; time: string; level: string; msg: string };

/** An error answer of the control socket: the server's own request checks throw it, the client rethrows the daemon's answers as it. (The daemon itself throws RouterError.) */
export class ApiError extends Error {
  constructor(
    /** HTTP status: 400 bad request, 404 unknown peer/prefix, 409 conflict. */
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What the daemon implements and the control socket serves. */
export interface RouterApi {
  summary(): RouterSummary;
  neighbors(address?: string): NeighborInfo[];
  /**
   * The routes of a query, produced lazily (the server pulls them in slices
   * as the client reads). Checks the query before returning: a bad one
   * throws (RouterError) rather than failing in the middle of the stream.
   */
  rib(q: RibQuery): Iterable<RibEntry>;
  ribSummary(): RibSummary;
  /** `show rib --mrt`: the Loc-RIB as TABLE_DUMP_V2 records (RFC 6396), produced lazily, one record per step. */
  ribMrt?(family?: "ipv4" | "ipv6"): Iterable<Uint8Array>;
  /** Applied in slices with event-loop turns between them; resolves when all are in. The request is already checked (canonical prefixes). */
  advertise(r: AdvertiseRequest): Promise<{ added: string[] }>;
  /** As advertise; `prefixes` are checked and canonical. */
  withdraw(prefixes: string[]): Promise<{ removed: string[] }>;
  peerAdd(r: PeerAddRequest): void | Promise<void>;
  peerDelete(address: string): void | Promise<void>;
  peerUp(address: string): void;
  peerDown(address: string, message?: string): void;
  peerReset(address: string, soft?: "in" | "out"): void;
  /** Re-read the config file; rejects with the validation error, keeping the running config. */
  reload(): Promise<{ changes: string[] }>;
  /** Stop the daemon for good (not a graceful restart): answered, then it exits. */
  shutdown(): { ok: true } | Promise<{ ok: true }>;
  /** Kernel routes and their sync state; RouterError "conflict" when kernel programming is off. */
  /** Every prefix (a walk, streamed; table order) or one. */
  fib(prefix?: string): Iterable<FibEntry>;
  /** Links and addresses as the daemon sees them (from rtnetlink when kernel programming is on). */
  interfaces(): Promise<InterfacesInfo>;
  /** What the Kubernetes controller derived (`bgpctl show k8s`); absent unless running under `bgpctl watch-k8s`. */
  k8s?(): K8sStatus;
  /** `bgpctl show bfd`: every BFD session (GET /v1/bfd). */
  bfdSessions?(): BfdInfo[];
  /** `bgpctl show checks`: every health check (GET /v1/checks). */
  checks?(): CheckInfo[];
  /** `bgpctl check NAME disable|enable` (POST /v1/checks/NAME {enabled}); RouterError not-found for an unknown name. */
  checkSetEnabled?(name: string, enabled: boolean): CheckInfo;
  /** Write a line to the daemon's log (the control socket's own events, such as a monitor client cut for falling behind). */
  note?(level: string, msg: string): void;
  /** Subscribe to events; returns the unsubscribe function. */
  monitor(fn: (e: MonitorEvent) => void, neighbor?: string): () => void;
}
