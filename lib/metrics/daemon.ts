/**
 * The daemon's Prometheus metrics (`metrics:` in the config, GET /metrics;
 * `bgpctl show metrics`): text exposition format (./exposition.ts), names
 * prefixed `bgpctl_`. Almost everything is read at scrape time from state
 * the daemon keeps anyway (each neighbour's session counters and RIB
 * counts, the Loc-RIB's counts, the FIB, the event-loop lag monitor, the
 * Kubernetes reflectors' counters), so nothing is added to the hot paths;
 * the one exception, the UPDATE processing time histogram, is an O(1) hook
 * (./hooks.ts). Every series, its type and labels are listed in README.md
 * ("Metrics").
 *
 * A scrape runs in slices of the shared slicer: one pass over the
 * neighbours takes a snapshot of their numbers, then the text is written
 * family by family; the FIB's per-state counts (not kept by the FIB) come
 * from a walk. So thousands of peers or a full FIB never hold the event
 * loop; scrapes run one at a time.
 *
 * BFD: the sessions' state is exported from a status list handed to the
 * `bfd` option (entries with the BGP peer and the BFD state, as lib/bfd's
 * BfdSessionInfo has them); routerMetrics (./mod.ts) hands it the router's
 * `bfdSessions()`.
 */
import type { SessionState } from "../api/types.ts";
import { AFI, familyName } from "../bgp/types.ts";
import type { MessageCounts } from "../bgp/session.ts";
import { runSliced, slicer } from "../core/slices.ts";
import type { FibCounts, FibState } from "../fib/fib.ts";
import type { K8sStatus } from "../k8s/types.ts";
import { CHECK_STATES, type CheckInfo } from "../health/mod.ts";
import type { Router } from "../router/router.ts";
import { ExpositionWriter, type MetricType, blocksBody, labelText } from "./exposition.ts";
import { updateProcessingSeconds } from "./hooks.ts";

/** Content type of the text exposition format served. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const SESSION_STATES: readonly SessionState[] = ["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"];
const FIB_STATES: readonly FibState[] = ["installed", "pending", "failed", "conflict", "excluded"];
/** Message type label values, from the session's counter keys. */
const MESSAGE_TYPES: readonly [Exclude<keyof MessageCounts, "total">, string][] = [
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
/** Steps (neighbours or lines) between deadline checks of the sliced scrape. */
const STEP = 64;

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

/** One neighbour's numbers, taken in the snapshot pass. */
interface PeerSnapshot {
  /** `peer="ADDR"`, escaped once. */
  label: string;
  address: string;
  remoteAs: number;
  localAs: number;
  state: SessionState;
  uptime: number;
  in: MessageCounts;
  out: MessageCounts;
  established: number;
  outQueue: number;
  accepted: number;
  received: [number, number];
  advertised: [number, number];
}

export class DaemonMetrics {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly router: Router,
    private readonly opts: DaemonMetricsOptions = {},
  ) {}

  /** The exposition text of a scrape, in blocks (scrapes run one at a time, each in slices). */
  blocks(): Promise<string[]> {
    const run = this.queue.then(() => runSliced(this.scrape()));
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** A scrape as an HTTP response body, sent block by block. */
  async body(): Promise<ReadableStream<Uint8Array>> {
    return blocksBody(await this.blocks());
  }

  /** A scrape as one string (small daemons, tests). */
  async text(): Promise<string> {
    return (await this.blocks()).join("");
  }

  private *scrape(): Generator<void, string[]> {
    const r = this.router;
    const e = r.engine;
    // Snapshot of the neighbours, a few per step.
    const peers: PeerSnapshot[] = [];
    let i = 0;
    for (const n of r.peers.values()) {
      const info = n.info();
      const c = n.session.counters;
      peers.push({
        label: labelText([["peer", info.address]]).slice(1, -1),
        address: info.address,
        remoteAs: info.remoteAs,
        localAs: info.localAs,
        state: info.state,
        uptime: info.state === "Established" ? info.uptimeSeconds : 0,
        in: c.in,
        out: c.out,
        established: c.established,
        outQueue: info.outQueue,
        accepted: info.accepted,
        received: [n.adjIn.countOf(AFI.IPV4), n.adjIn.countOf(AFI.IPV6)],
        advertised: [n.adjOut?.advertisedCount(AFI.IPV4) ?? 0, n.adjOut?.advertisedCount(AFI.IPV6) ?? 0],
      });
      if (++i % STEP === 0) yield;
    }
    // The FIB's routes by state: a walk.
    const fib = e.fib;
    let fibCounts: FibCounts | null = null;
    if (fib) {
      fibCounts = { installed: 0, pending: 0, failed: 0, conflict: 0, excluded: 0, total: 0 };
      yield* fib.tally(fibCounts, STEP * 16);
    }

    const w = new ExpositionWriter();
    const fam = (name: string, type: MetricType, help: string) => w.family(name, type, help);
    const one = (name: string, type: MetricType, help: string, value: number, labels = "") => {
      fam(name, type, help);
      w.sample(name, labels, value);
    };
    /** A per-peer family: `each` writes a peer's samples; yields every STEP peers. */
    const perPeer = function* (name: string, type: MetricType, help: string, each: (p: PeerSnapshot) => void): Generator<void> {
      fam(name, type, help);
      let k = 0;
      for (const p of peers) {
        each(p);
        if (++k % STEP === 0) yield;
      }
    };

    one("bgpctl_router_info", "gauge", "The router's identity: router id and local AS (value 1).", 1, labelText([["router_id", e.config.routerId], ["asn", String(e.config.asn)]]));
    one("bgpctl_start_time_seconds", "gauge", "When the daemon started, in seconds since the Unix epoch.", e.started / 1000);

    yield* perPeer("bgpctl_peer_info", "gauge", "A configured BGP neighbour, with its remote and local AS (value 1).", (p) =>
      w.sample("bgpctl_peer_info", `{${p.label},remote_as="${p.remoteAs}",local_as="${p.localAs}"}`, 1),
    );
    yield* perPeer("bgpctl_peer_state", "gauge", "BGP session state of a neighbour: 1 for its current state, 0 for the others.", (p) => {
      for (const st of SESSION_STATES) w.sample("bgpctl_peer_state", `{${p.label},state="${st}"}`, st === p.state ? 1 : 0);
    });
    yield* perPeer("bgpctl_peer_uptime_seconds", "gauge", "Seconds since the session reached Established (0 when not Established).", (p) =>
      w.sample("bgpctl_peer_uptime_seconds", `{${p.label}}`, p.uptime),
    );
    for (const [dir, verb] of [
      ["in", "received from"],
      ["out", "sent to"],
    ] as const) {
      const name = `bgpctl_peer_messages_${dir === "in" ? "received" : "sent"}_total`;
      yield* perPeer(name, "counter", `BGP messages ${verb} a neighbour, by type.`, (p) => {
        for (const [key, type] of MESSAGE_TYPES) w.sample(name, `{${p.label},type="${type}"}`, p[dir][key]);
      });
    }
    yield* perPeer("bgpctl_peer_established_total", "counter", "Times the session with a neighbour reached Established.", (p) =>
      w.sample("bgpctl_peer_established_total", `{${p.label}}`, p.established),
    );
    // Every establishment but the current one has ended.
    yield* perPeer("bgpctl_peer_flaps_total", "counter", "Times an Established session with a neighbour went down.", (p) =>
      w.sample("bgpctl_peer_flaps_total", `{${p.label}}`, Math.max(0, p.established - (p.state === "Established" ? 1 : 0))),
    );
    yield* perPeer("bgpctl_peer_out_queue_messages", "gauge", "Messages queued for sending to a neighbour.", (p) => w.sample("bgpctl_peer_out_queue_messages", `{${p.label}}`, p.outQueue));
    yield* perPeer("bgpctl_peer_prefixes_received", "gauge", "Paths received from a neighbour (Adj-RIB-In, before import policy), by family.", (p) => {
      FAMILIES.forEach(([, family], k) => w.sample("bgpctl_peer_prefixes_received", `{${p.label},family="${family}"}`, p.received[k]!));
    });
    yield* perPeer("bgpctl_peer_prefixes_accepted", "gauge", "Prefixes from a neighbour accepted by import policy (in the Loc-RIB), all families.", (p) =>
      w.sample("bgpctl_peer_prefixes_accepted", `{${p.label}}`, p.accepted),
    );
    yield* perPeer("bgpctl_peer_prefixes_advertised", "gauge", "Prefixes advertised to a neighbour (Adj-RIB-Out), by family.", (p) => {
      FAMILIES.forEach(([, family], k) => w.sample("bgpctl_peer_prefixes_advertised", `{${p.label},family="${family}"}`, p.advertised[k]!));
    });

    fam("bgpctl_rib_prefixes", "gauge", "Prefixes in the Loc-RIB, by family.");
    for (const [afi, family] of FAMILIES) w.sample("bgpctl_rib_prefixes", `{family="${family}"}`, e.locRib.count(afi));
    fam("bgpctl_rib_paths", "gauge", "Candidate paths in the Loc-RIB, by family.");
    for (const [afi, family] of FAMILIES) w.sample("bgpctl_rib_paths", `{family="${family}"}`, e.locRib.pathCount(afi));

    fam("bgpctl_fib_routes", "gauge", "Prefixes bgpctl programs into the kernel, by state (installed, pending, failed, conflict, excluded); only with kernel.enabled.");
    if (fibCounts) for (const s of FIB_STATES) w.sample("bgpctl_fib_routes", `{state="${s}"}`, fibCounts[s]);
    const fc = fib?.counters;
    fam("bgpctl_fib_kernel_operations_total", "counter", "Route changes sent to the kernel (rtnetlink).");
    if (fc) w.sample("bgpctl_fib_kernel_operations_total", "", fc.ops);
    fam("bgpctl_fib_kernel_errors_total", "counter", "Route changes the kernel refused.");
    if (fc) w.sample("bgpctl_fib_kernel_errors_total", "", fc.opErrors);
    fam("bgpctl_fib_resyncs_total", "counter", "Full compares of the FIB against the kernel's table.");
    if (fc) w.sample("bgpctl_fib_resyncs_total", "", fc.resyncs);

    fam("bgpctl_bfd_session_state", "gauge", "BFD session state for a neighbour: 1 for its current state, 0 for the others.");
    if (this.opts.bfd) writeBfd(w, this.opts.bfd());
    writeHealth(w, r.checks());
    yield;

    writeK8s(w, r.k8s?.() ?? null);

    updateProcessingSeconds.write(w);
    const lag = e.loopLag.stats();
    one("bgpctl_event_loop_lag_max_seconds", "gauge", "Worst event-loop lag since the daemon started.", lag.maxLagMs / 1000);
    one("bgpctl_event_loop_lag_p99_seconds", "gauge", "99th percentile of the event-loop lag since the daemon started.", lag.p99LagMs / 1000);
    one("bgpctl_event_loop_turn_max_seconds", "gauge", "Longest turn of sliced work (received UPDATEs, output, walks) since the daemon started.", slicer.stats.longestMs / 1000);
    one("bgpctl_event_loop_turns_over_20ms_total", "counter", "Turns of sliced work that took longer than 20 ms (the runtime pausing inside one, a step that could not be cut, or the thread waiting for a core).", slicer.stats.over20);
    if (slicer.stats.longestOnCoreMs !== undefined) {
      one("bgpctl_event_loop_turn_max_cpu_seconds", "gauge", "Most CPU time the event loop's thread spent in one turn of sliced work since the daemon started (the turn's time without waits for a core).", slicer.stats.longestOnCoreMs / 1000);
      one("bgpctl_event_loop_turns_over_20ms_cpu_total", "counter", "Turns of sliced work in which the event loop's thread spent more than 20 ms of CPU time.", slicer.stats.over20OnCore ?? 0);
    }
    const mem = process.memoryUsage();
    one("bgpctl_process_resident_memory_bytes", "gauge", "Resident memory of the daemon process.", mem.rss);
    one("bgpctl_process_heap_used_bytes", "gauge", "JavaScript heap in use.", mem.heapUsed);
    return w.finish();
  }
}

/**
 * The BFD hook: the BFD sessions' state from their status list
 * (bgpctl_bfd_session_state{peer,state}, 1 for the current state); the
 * family's HELP/TYPE lines are the caller's.
 */
export function writeBfd(w: ExpositionWriter, list: readonly BfdSessionMetric[]): void {
  for (const b of list) {
    const peer = labelText([["peer", b.peer]]).slice(1, -1);
    for (const st of BFD_STATES) w.sample("bgpctl_bfd_session_state", `{${peer},state="${st}"}`, st === b.state ? 1 : 0);
  }
}

/**
 * The health checks (lib/health): whether each announces its normal form
 * (bgpctl_health_check_up{check}), its state (1 for the current one) and
 * its runs by result (success, failure, timeout).
 */
function writeHealth(w: ExpositionWriter, list: readonly CheckInfo[]): void {
  const label = (c: CheckInfo) => labelText([["check", c.name]]).slice(1, -1);
  w.family("bgpctl_health_check_up", "gauge", "1 while a health check is up (its prefixes announced with their normal attributes), else 0.");
  for (const c of list) w.sample("bgpctl_health_check_up", `{${label(c)}}`, c.announced === "up" ? 1 : 0);
  w.family("bgpctl_health_check_state", "gauge", "Health check state (INIT, RISING, FALLING, UP, DOWN, DISABLED): 1 for the current one, 0 for the others.");
  for (const c of list) for (const st of CHECK_STATES) w.sample("bgpctl_health_check_state", `{${label(c)},state="${st}"}`, st === c.state ? 1 : 0);
  w.family("bgpctl_health_checks_total", "counter", "Health check runs by result (success, failure, timeout).");
  for (const c of list) {
    for (const k of ["success", "failure", "timeout"] as const) w.sample("bgpctl_health_checks_total", `{${label(c)},result="${k}"}`, c.counters[k]);
  }
}

/** The Kubernetes reflectors' counters (watch-k8s); families without samples otherwise. */
function writeK8s(w: ExpositionWriter, k: K8sStatus | null): void {
  const res = k?.resources ?? [];
  const per = (name: string, type: MetricType, help: string, value: (r: K8sStatus["resources"][number]) => number) => {
    w.family(name, type, help);
    for (const r of res) w.sample(name, labelText([["resource", r.resource]]), value(r));
  };
  w.family("bgpctl_k8s_watch_events_total", "counter", "Kubernetes watch events received, by resource and type (ADDED, MODIFIED, DELETED, BOOKMARK).");
  for (const r of res) for (const [type, v] of Object.entries(r.watchEvents ?? {})) w.sample("bgpctl_k8s_watch_events_total", labelText([["resource", r.resource], ["type", type]]), v);
  per("bgpctl_k8s_lists_total", "counter", "Full LISTs of a Kubernetes resource completed.", (r) => r.lists);
  per("bgpctl_k8s_relists_total", "counter", "LISTs after the first (a watch too old to resume: 410 Gone).", (r) => r.relists);
  per("bgpctl_k8s_watches_total", "counter", "WATCH requests made.", (r) => r.watches);
  per("bgpctl_k8s_errors_total", "counter", "Failed LIST or WATCH requests.", (r) => r.errors);
  per("bgpctl_k8s_unchanged_total", "counter", "Watch updates that changed nothing bgpctl reads (a kubelet's status report): kept out of the cache.", (r) => r.unchanged ?? 0);
  per("bgpctl_k8s_objects", "gauge", "Objects in the cache of a Kubernetes resource.", (r) => r.objects);
  per("bgpctl_k8s_synced", "gauge", "1 once the first LIST of a Kubernetes resource completed.", (r) => (r.synced ? 1 : 0));
  w.family("bgpctl_k8s_derivations_total", "counter", "Derivations of the router configuration from the cluster: complete (every object walked) or delta (the watch events since the last one applied to it).");
  if (k?.derivations) for (const kind of ["complete", "delta"] as const) w.sample("bgpctl_k8s_derivations_total", labelText([["kind", kind]]), k.derivations[kind]);
}
