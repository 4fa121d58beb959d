/**
 * The daemon's Prometheus metrics (`metrics:` in the config, GET /metrics;
 * `bgpctl show metrics`): text exposition format, names prefixed `bgpctl_`.
 * Almost everything is read at scrape time from state the daemon keeps
 * anyway (each neighbour's session counters and RIB counts, the Loc-RIB's
 * counts, the FIB, the event-loop lag monitor, the Kubernetes reflectors'
 * counters), so nothing is added to the hot paths; the one exception, the
 * UPDATE processing time histogram, is an O(1) hook (./hooks.ts). Every
 * series, its type and labels are listed in README.md ("Metrics").
 *
 * A scrape walks the FIB in slices (its per-state counts are not kept), so
 * a large table never holds the event loop; scrapes run one at a time.
 *
 * BFD: the sessions' state is exported from a status list handed to the
 * `bfd` option (entries with the BGP peer and the BFD state, as lib/bfd's
 * BfdSessionInfo has them): `routerMetrics(router, {bfd: () => list})`.
 */
import { Counter, Gauge, Registry } from "prom-client";
import { AFI, familyName } from "../bgp/types.ts";
import type { SessionState } from "../api/types.ts";
import type { MessageCounts } from "../bgp/session.ts";
import type { FibCounts, FibState } from "../fib/fib.ts";
import { sliced } from "../core/slices.ts";
import type { K8sStatus } from "../k8s/types.ts";
import type { Router } from "../router/router.ts";
import { updateProcessingSeconds } from "./hooks.ts";

/** Content type of the text exposition format served. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const SESSION_STATES: readonly SessionState[] = ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"];
const FIB_STATES: readonly FibState[] = ["installed", "pending", "failed", "conflict", "excluded"];
/** Message type label values, from the session's counter keys. */
const MESSAGE_TYPES: readonly [keyof Omit<MessageCounts, "total">, string][] = [
  ["open", "open"],
  ["update", "update"],
  ["notification", "notification"],
  ["keepalive", "keepalive"],
  ["routeRefresh", "route_refresh"],
];
const FAMILIES = [
  [AFI.IPV4, familyName(AFI.IPV4, 1)],
  [AFI.IPV6, familyName(AFI.IPV6, 1)],
] as const;
/** BFD states (RFC 5880 §4.1). */
export const BFD_STATES = ["AdminDown", "Down", "Init", "Up"] as const;

/** What the metrics need of a BFD session (lib/bfd's BfdSessionInfo has both). */
export interface BfdSessionMetric {
  /** The BGP peer address it protects. */
  peer: string;
  /** AdminDown, Down, Init or Up. */
  state: string;
}

export interface DaemonMetricsOptions {
  /** The BFD sessions' status list, when BFD runs (see the module doc). */
  bfd?: () => readonly BfdSessionMetric[];
}

export class DaemonMetrics {
  readonly registry = new Registry();
  private queue: Promise<unknown> = Promise.resolve();
  private readonly g: ReturnType<typeof defineMetrics>;

  constructor(
    private readonly router: Router,
    private readonly opts: DaemonMetricsOptions = {},
  ) {
    this.g = defineMetrics(this.registry);
    this.registry.registerMetric(updateProcessingSeconds);
  }

  /** The exposition text of a scrape (scrapes run one at a time). */
  text(): Promise<string> {
    const run = this.queue.then(() => this.scrape());
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async scrape(): Promise<string> {
    const fib = this.router.engine.fib;
    let fibCounts: FibCounts | null = null;
    if (fib) {
      const c: FibCounts = { installed: 0, pending: 0, failed: 0, conflict: 0, excluded: 0, total: 0 };
      await sliced(fib.walk(), (s) => {
        c[s.state]++;
        c.total++;
      });
      fibCounts = c;
    }
    // From here on synchronous: one consistent snapshot.
    for (const m of Object.values(this.g)) m.reset();
    this.collectRouter();
    this.collectPeers();
    if (fib && fibCounts) {
      for (const s of FIB_STATES) this.g.fibRoutes.set({ state: s }, fibCounts[s]);
      this.g.fibOps.inc(fib.counters.ops);
      this.g.fibOpErrors.inc(fib.counters.opErrors);
      this.g.fibResyncs.inc(fib.counters.resyncs);
    }
    if (this.opts.bfd) this.collectBfd(this.opts.bfd());
    const k8s = this.router.k8s?.();
    if (k8s) this.collectK8s(k8s);
    return this.registry.metrics();
  }

  private collectRouter(): void {
    const { g, router } = this;
    const e = router.engine;
    g.routerInfo.set({ router_id: e.config.routerId, asn: String(e.config.asn) }, 1);
    g.startTime.set(e.started / 1000);
    for (const [afi, family] of FAMILIES) {
      g.ribPrefixes.set({ family }, e.locRib.count(afi));
      g.ribPaths.set({ family }, e.locRib.pathCount(afi));
    }
    const lag = e.loopLag.stats();
    g.loopLagMax.set(lag.maxLagMs / 1000);
    g.loopLagP99.set(lag.p99LagMs / 1000);
    const mem = process.memoryUsage();
    g.rss.set(mem.rss);
    g.heap.set(mem.heapUsed);
  }

  private collectPeers(): void {
    const g = this.g;
    for (const n of this.router.peers.values()) {
      const peer = n.config.address;
      const s = n.session;
      const c = s.counters;
      const state = s.state as SessionState;
      g.peerInfo.set({ peer, remote_as: String(n.config.remoteAs), local_as: String(n.config.localAs) }, 1);
      for (const st of SESSION_STATES) g.peerState.set({ peer, state: st }, st === state ? 1 : 0);
      const info = n.info();
      g.peerUptime.set({ peer }, state === "Established" ? info.uptimeSeconds : 0);
      for (const [key, type] of MESSAGE_TYPES) {
        g.msgIn.inc({ peer, type }, c.in[key]);
        g.msgOut.inc({ peer, type }, c.out[key]);
      }
      g.established.inc({ peer }, c.established);
      // Every establishment but the current one has ended.
      g.flaps.inc({ peer }, Math.max(0, c.established - (state === "Established" ? 1 : 0)));
      g.outQueue.set({ peer }, info.outQueue);
      g.accepted.set({ peer }, info.accepted);
      for (const [afi, family] of FAMILIES) {
        g.received.set({ peer, family }, n.adjIn.countOf(afi));
        g.advertised.set({ peer, family }, n.adjOut?.advertisedCount(afi) ?? 0);
      }
    }
  }

  /**
   * The BFD hook: export the BFD sessions' state from their status list
   * (bgpctl_bfd_session_state{peer,state}, 1 for the current state).
   */
  collectBfd(list: readonly BfdSessionMetric[]): void {
    for (const b of list) for (const st of BFD_STATES) this.g.bfdState.set({ peer: b.peer, state: st }, st === b.state ? 1 : 0);
  }

  private collectK8s(k: K8sStatus): void {
    const g = this.g;
    for (const r of k.resources) {
      const resource = r.resource;
      g.k8sObjects.set({ resource }, r.objects);
      g.k8sSynced.set({ resource }, r.synced ? 1 : 0);
      g.k8sLists.inc({ resource }, r.lists);
      g.k8sRelists.inc({ resource }, r.relists);
      g.k8sWatches.inc({ resource }, r.watches);
      g.k8sErrors.inc({ resource }, r.errors);
      for (const [type, v] of Object.entries(r.watchEvents ?? {})) g.k8sEvents.inc({ resource, type }, v);
    }
  }
}

/** Every series collected at scrape time (names, help, labels: README.md "Metrics"). */
function defineMetrics(registry: Registry) {
  const registers = [registry];
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Gauge<L>({ name, help, labelNames, registers });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Counter<L>({ name, help, labelNames, registers });
  return {
    routerInfo: gauge("bgpctl_router_info", "The router's identity: router id and local AS (value 1).", ["router_id", "asn"]),
    startTime: gauge("bgpctl_start_time_seconds", "When the daemon started, in seconds since the Unix epoch."),
    peerInfo: gauge("bgpctl_peer_info", "A configured BGP neighbour, with its remote and local AS (value 1).", ["peer", "remote_as", "local_as"]),
    peerState: gauge("bgpctl_peer_state", "BGP session state of a neighbour: 1 for its current state, 0 for the others.", ["peer", "state"]),
    peerUptime: gauge("bgpctl_peer_uptime_seconds", "Seconds since the session reached Established (0 when not Established).", ["peer"]),
    msgIn: counter("bgpctl_peer_messages_received_total", "BGP messages received from a neighbour, by type.", ["peer", "type"]),
    msgOut: counter("bgpctl_peer_messages_sent_total", "BGP messages sent to a neighbour, by type.", ["peer", "type"]),
    established: counter("bgpctl_peer_established_total", "Times the session with a neighbour reached Established.", ["peer"]),
    flaps: counter("bgpctl_peer_flaps_total", "Times an Established session with a neighbour went down.", ["peer"]),
    outQueue: gauge("bgpctl_peer_out_queue_messages", "Messages queued for sending to a neighbour.", ["peer"]),
    received: gauge("bgpctl_peer_prefixes_received", "Paths received from a neighbour (Adj-RIB-In, before import policy), by family.", ["peer", "family"]),
    accepted: gauge("bgpctl_peer_prefixes_accepted", "Prefixes from a neighbour accepted by import policy (in the Loc-RIB), all families.", ["peer"]),
    advertised: gauge("bgpctl_peer_prefixes_advertised", "Prefixes advertised to a neighbour (Adj-RIB-Out), by family.", ["peer", "family"]),
    ribPrefixes: gauge("bgpctl_rib_prefixes", "Prefixes in the Loc-RIB, by family.", ["family"]),
    ribPaths: gauge("bgpctl_rib_paths", "Candidate paths in the Loc-RIB, by family.", ["family"]),
    fibRoutes: gauge("bgpctl_fib_routes", "Prefixes bgpctl programs into the kernel, by state (installed, pending, failed, conflict, excluded); only with kernel.enabled.", ["state"]),
    fibOps: counter("bgpctl_fib_kernel_operations_total", "Route changes sent to the kernel (rtnetlink)."),
    fibOpErrors: counter("bgpctl_fib_kernel_errors_total", "Route changes the kernel refused."),
    fibResyncs: counter("bgpctl_fib_resyncs_total", "Full compares of the FIB against the kernel's table."),
    bfdState: gauge("bgpctl_bfd_session_state", "BFD session state for a neighbour: 1 for its current state, 0 for the others.", ["peer", "state"]),
    k8sEvents: counter("bgpctl_k8s_watch_events_total", "Kubernetes watch events received, by resource and type (ADDED, MODIFIED, DELETED, BOOKMARK).", ["resource", "type"]),
    k8sLists: counter("bgpctl_k8s_lists_total", "Full LISTs of a Kubernetes resource completed.", ["resource"]),
    k8sRelists: counter("bgpctl_k8s_relists_total", "LISTs after the first (a watch too old to resume: 410 Gone).", ["resource"]),
    k8sWatches: counter("bgpctl_k8s_watches_total", "WATCH requests made.", ["resource"]),
    k8sErrors: counter("bgpctl_k8s_errors_total", "Failed LIST or WATCH requests.", ["resource"]),
    k8sObjects: gauge("bgpctl_k8s_objects", "Objects in the cache of a Kubernetes resource.", ["resource"]),
    k8sSynced: gauge("bgpctl_k8s_synced", "1 once the first LIST of a Kubernetes resource completed.", ["resource"]),
    loopLagMax: gauge("bgpctl_event_loop_lag_max_seconds", "Worst event-loop lag since the daemon started."),
    loopLagP99: gauge("bgpctl_event_loop_lag_p99_seconds", "99th percentile of the event-loop lag since the daemon started."),
    rss: gauge("bgpctl_process_resident_memory_bytes", "Resident memory of the daemon process."),
    heap: gauge("bgpctl_process_heap_used_bytes", "JavaScript heap in use."),
  };
}
