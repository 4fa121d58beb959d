/**
 * Pods across subnets: a VXLAN overlay to the nodes that are not on a
 * connected subnet (`kubernetes.overlay`, README "Pods across subnets").
 *
 * A node's pod CIDR is learned over iBGP with the node's address as next
 * hop. When that address is not on one of our interface subnets, the route
 * cannot be installed on-link, and resolving it recursively would send pod
 * traffic to the default router, which knows nothing of pod CIDRs. So, as
 * flannel's vxlan backend and Calico's VXLAN CrossSubnet do:
 *
 * - bgpctl owns one VXLAN device, `vxlan.bgpctl`: `id VNI dstport PORT local
 *   <node address> nolearning`, MTU the underlay device's minus 50 (IPv4
 *   underlay) or 70 (IPv6) unless set, up, with our VTEP addresses (the
 *   first address of each of our pod CIDRs, as /32 or /128: the source of
 *   what the node itself sends into the overlay) and our VTEP MAC.
 * - Every node's VTEP MAC is derived from its underlay address, so every
 *   node knows every other's without publishing anything: IPv4
 *   `02:b6:` + the four address bytes (192.0.2.10 → 02:b6:c0:00:02:0a);
 *   IPv6 `02:b6:` + the first four bytes of the SHA-256 of the 16 address
 *   bytes. Locally administered unicast; the `02:b6:` prefix also marks the
 *   device as ours.
 * - For a remote node N (underlay address U, pod CIDR P) carried by the
 *   overlay: the neighbour `first(P) lladdr MAC(N) dev vxlan.bgpctl nud
 *   permanent`, the FDB entry `MAC(N) dev vxlan.bgpctl dst U self
 *   permanent`, and in the FIB a next-hop override (lib/fib/fib.ts
 *   `setNextHopOverrides`): routes whose BGP next hop is N's address of P's
 *   family go `via first(P) dev vxlan.bgpctl onlink`.
 * - The rule for what is not carried: a route whose next hop is a cluster
 *   node's address is installed only on-link (the address is on a connected
 *   subnet) or through the overlay. A node not on a connected subnet that
 *   the overlay does not carry (mode none, no pod CIDR, device unavailable)
 *   gets a refusal in the override table: its routes are reported
 *   unreachable (`show fib`, `show k8s`) and never installed via the
 *   default router.
 *
 * Modes: crossSubnet (default) carries only nodes not on a connected subnet;
 * always carries every node; none creates nothing (and removes what was
 * there). The device exists only while some node needs it: a cluster on one
 * subnet gets none.
 *
 * Reconciled like the FIB: the desired state (`planOverlay`, pure) is
 * computed from the Node list, our interface addresses and links, and
 * applied through rtnetlink (`LinkKernel`): device created or fixed,
 * addresses, neighbour and FDB entries added, changed and removed (entries
 * of a node that left go). Repaired when removed: link and address events
 * start a reconcile, and a periodic compare is the safety net. A link named
 * `vxlan.bgpctl` that is not ours (another kind, or a MAC outside our
 * prefix) is reported and never touched. `stop({remove: true})` (`bgpctl
 * shutdown`) removes the device with everything on it; a graceful stop
 * leaves it for the next start, like the FIB's routes.
 */
import { createHash } from "node:crypto";
import { type Clock, type TimerHandle, realClock } from "../core/clock.ts";
import { nextTurn, runSliced } from "../core/slices.ts";
import { AFI, formatAddr, maskAddr, parseAddr, parsePrefix, prefixContains } from "../core/addr.ts";
import type { LogLevel } from "../core/log.ts";
import type { NextHopOverride } from "../fib/fib.ts";
import type { FibFamily, KernelAddress, KernelError, KernelEvent, KernelLink, KernelNeighbor, LinkKernel, LinkOp, NeighborOp } from "../fib/types.ts";
import type { Node } from "./types.ts";
import { nodeInternalIPs, nodePodCidrs } from "./derive.ts";

export type OverlayMode = "crossSubnet" | "always" | "none";

/** `kubernetes.overlay`. */
export interface OverlaySettings {
  mode: OverlayMode;
  vni: number;
  port: number;
  mtu: number | "auto";
}

/** The device bgpctl owns (at most 15 characters). */
export const OVERLAY_DEVICE = "vxlan.bgpctl";
/** The first two bytes of every VTEP MAC (locally administered, unicast): also how we recognise our device. */
export const VTEP_MAC_PREFIX = "02:b6:";
/** VXLAN encapsulation overhead: outer IP + UDP + VXLAN + inner Ethernet. */
export const VXLAN_OVERHEAD: Record<FibFamily, number> = { 4: 50, 6: 70 };
const NUD_PERMANENT = 0x80;
const NTF_SELF = 0x02;
const DEFAULT_PERIODIC_MS = 10_000;
const DEBOUNCE_MS = 20;

/** What the overlay needs to know of a Node. */
export interface OverlayNode {
  name: string;
  /** First IPv4 / IPv6 InternalIP. */
  v4?: string;
  v6?: string;
  /** Pod CIDRs, canonical. */
  podCidrs: string[];
}

const nodeCache = new WeakMap<Node, OverlayNode>();

/**
 * A Node as the overlay sees it: its first InternalIP per family and its pod
 * CIDRs (unparsable values skipped: derive reports them). Remembered per
 * Node object (the caches hand over the same object while it is unchanged).
 */
export function overlayNode(n: Node): OverlayNode {
  let out = nodeCache.get(n);
  if (out === undefined) {
    out = readNode(n);
    nodeCache.set(n, out);
  }
  return out;
}

function readNode(n: Node): OverlayNode {
  // Unparsable values are skipped here: derive reports them as problems of the Node.
  return { name: n.metadata.name, ...nodeInternalIPs(n), podCidrs: nodePodCidrs(n) };
}

const macCache = new Map<string, string>();

/** A VTEP MAC from an underlay address (see the module comment); remembered (bounded): every plan asks for every node's. */
export function vtepMac(underlay: string): string {
  let mac = macCache.get(underlay);
  if (mac !== undefined) return mac;
  const a = parseAddr(underlay);
  if (!a) throw new Error(`overlay: invalid underlay address "${underlay}"`);
  const tail = a.afi === AFI.IPV4 ? a.addr : new Uint8Array(createHash("sha256").update(a.addr).digest().subarray(0, 4));
  mac = VTEP_MAC_PREFIX + [...tail].map((b) => b.toString(16).padStart(2, "0")).join(":");
  if (macCache.size >= 65536) macCache.clear();
  macCache.set(underlay, mac);
  return mac;
}

/** The first address of a prefix ("10.244.2.0/24" → "10.244.2.0"): a node's VTEP address in that family. */
export function firstAddress(prefix: string): string {
  const p = parsePrefix(prefix);
  return formatAddr(p.afi, p.addr);
}

/** The family of an address or prefix text, by its form (inputs are canonical: `overlayNode`, the kernel). */
function familyOfText(text: string): FibFamily {
  return text.includes(":") ? 6 : 4;
}

/** The first pod CIDR of a family; OverlayNode pod CIDRs are canonical, so its first address is the text before the slash. */
function podCidrOf(n: OverlayNode, f: FibFamily): { cidr: string; first: string } | null {
  for (const c of n.podCidrs) if (familyOfText(c) === f) return { cidr: c, first: c.slice(0, c.indexOf("/")) };
  return null;
}

/** Our interface subnets, parsed once per plan. */
type Subnets = { afi: number; len: number; addr: Uint8Array }[];

function subnetsOf(addresses: readonly KernelAddress[]): Subnets {
  const out: Subnets = [];
  for (const x of addresses) {
    const p = parseAddr(x.address);
    if (!p) continue;
    const max = p.afi === AFI.IPV4 ? 32 : 128;
    if (x.prefixLength >= max) continue;
    out.push({ afi: p.afi, len: x.prefixLength, addr: maskAddr(p.addr, x.prefixLength) });
  }
  return out;
}

function inSubnets(addr: string, subnets: Subnets): boolean {
  const a = parseAddr(addr);
  if (!a) return false;
  const host = { afi: a.afi, len: a.afi === AFI.IPV4 ? 32 : 128, addr: a.addr };
  for (const s of subnets) if (s.afi === a.afi && prefixContains(s as Parameters<typeof prefixContains>[0], host)) return true;
  return false;
}

/** The device we want. */
export interface DesiredDevice {
  name: string;
  vni: number;
  port: number;
  /** Our underlay address (VXLAN local) and its family. */
  local: string;
  family: FibFamily;
  mac: string;
  mtu: number;
  /** Our VTEP addresses, one per pod CIDR family: "10.244.1.0". */
  vteps: string[];
}

export type OverlayPath = "connected" | "overlay" | "unreachable";

/** One remote node in the plan. */
export interface OverlayPeerPlan {
  node: string;
  /** Its underlay address (of our underlay family), if it has one. */
  underlay?: string;
  mac?: string;
  /** Per next-hop address of the node (its v4 / v6 InternalIP): how routes via it are installed. */
  hops: { nextHop: string; family: FibFamily; path: OverlayPath; vtep?: string; reason?: string }[];
}

export interface OverlayPlan {
  settings: OverlaySettings;
  device: DesiredDevice | null;
  /** Why there is no device although the mode wants one, or why its MTU is a guess. */
  problems: string[];
  peers: OverlayPeerPlan[];
}

export interface PlanInput {
  settings: OverlaySettings;
  me: OverlayNode;
  /** Every Node (ours included: skipped by name). */
  nodes: OverlayNode[];
  links: KernelLink[];
  addresses: KernelAddress[];
}

/** Whether `addr` lies in the subnet of one of our interface addresses (not our own address itself). */
export function onConnectedSubnet(addr: string, addresses: readonly KernelAddress[]): boolean {
  return inSubnets(addr, subnetsOf(addresses));
}

/** The desired overlay state (pure): the device, and per remote node how routes via each of its addresses go. */
export function planOverlay(input: PlanInput): OverlayPlan {
  const steps = planOverlaySteps(input);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** `planOverlay` as steps, a yield every few hundred nodes (run in slices: `runSliced`). */
export function* planOverlaySteps(input: PlanInput): Generator<void, OverlayPlan> {
  const { settings, me, links, addresses } = input;
  const problems: string[] = [];
  const wantOverlay = settings.mode !== "none";
  const family: FibFamily | null = me.v4 ? 4 : me.v6 ? 6 : null;
  const local = family === 4 ? me.v4 : me.v6;
  let device: DesiredDevice | null = null;
  /** Why there can be no device; reported only when a node needs one. */
  let noDevice: string | null = null;
  let mtuGuess: string | null = null;
  if (wantOverlay) {
    if (!local || family === null) noDevice = `Node ${me.name} has no InternalIP: no overlay device`;
    else if (me.podCidrs.length === 0) noDevice = `Node ${me.name} has no pod CIDR: no VTEP address, no overlay device`;
    else {
      let mtu: number;
      if (settings.mtu === "auto") {
        const holder = addresses.find((a) => a.address === local);
        const link = holder ? links.find((l) => l.index === holder.ifindex) : undefined;
        if (link?.mtu) mtu = link.mtu - VXLAN_OVERHEAD[family];
        else {
          mtu = 1500 - VXLAN_OVERHEAD[family];
          mtuGuess = `no interface holds ${local} (or its MTU is unknown): overlay MTU ${mtu} assumed`;
        }
      } else mtu = settings.mtu;
      const vteps: string[] = [];
      for (const f of [4, 6] as FibFamily[]) {
        const c = podCidrOf(me, f);
        if (c) vteps.push(c.first);
      }
      device = { name: OVERLAY_DEVICE, vni: settings.vni, port: settings.port, local, family, mac: vtepMac(local), mtu, vteps };
    }
  }
  const peers: OverlayPeerPlan[] = [];
  const subnets = subnetsOf(addresses);
  const vtepFamilies = new Set((device?.vteps ?? []).map(familyOfText));
  let count = 0;
  for (const n of input.nodes) {
    if ((++count & 255) === 0) yield;
    if (n.name === me.name) continue;
    const underlay = family === 4 ? n.v4 : family === 6 ? n.v6 : undefined;
    const peer: OverlayPeerPlan = { node: n.name, hops: [] };
    if (underlay) {
      peer.underlay = underlay;
      peer.mac = vtepMac(underlay);
    }
    for (const [f, nextHop] of [[4, n.v4], [6, n.v6]] as [FibFamily, string | undefined][]) {
      if (!nextHop || nextHop === (f === 4 ? me.v4 : me.v6)) continue;
      const connected = inSubnets(nextHop, subnets);
      if (connected && settings.mode !== "always") {
        peer.hops.push({ nextHop, family: f, path: "connected" });
        continue;
      }
      const cidr = podCidrOf(n, f);
      const where = connected ? "" : " is not on a connected subnet and";
      let reason: string | null = null;
      if (settings.mode === "none") reason = `node ${n.name} (${nextHop}) is not on a connected subnet and kubernetes.overlay.mode is none`;
      else if (!device) reason = `node ${n.name} (${nextHop})${where} the overlay has no device (${noDevice ?? "unavailable"})`;
      else if (!underlay) reason = `node ${n.name} (${nextHop})${where} has no IPv${family} address for the overlay's underlay`;
      else if (!cidr) reason = `node ${n.name} (${nextHop})${where} has no IPv${f} pod CIDR for a VTEP address`;
      else if (!vtepFamilies.has(f)) reason = `node ${n.name} (${nextHop})${where} this node has no IPv${f} pod CIDR (no local VTEP address)`;
      if (reason !== null) {
        if (connected) peer.hops.push({ nextHop, family: f, path: "connected" });
        else peer.hops.push({ nextHop, family: f, path: "unreachable", reason: `unreachable: ${reason}` });
        continue;
      }
      peer.hops.push({ nextHop, family: f, path: "overlay", vtep: cidr!.first });
    }
    peers.push(peer);
  }
  peers.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  // The device exists only while a node rides it (a cluster on one subnet has none).
  if (!peers.some((p) => p.hops.some((h) => h.path === "overlay"))) device = null;
  if (noDevice !== null && peers.some((p) => p.hops.some((h) => h.path === "unreachable"))) problems.push(noDevice);
  else if (device !== null && mtuGuess !== null) problems.push(mtuGuess);
  return { settings, device, problems, peers };
}

/** The FIB override table of a plan, with the device's ifindex (null: the device is not usable, with why). */
export function overridesOf(plan: OverlayPlan, device: { ifindex: number } | { problem: string }): Map<string, NextHopOverride> {
  const m = new Map<string, NextHopOverride>();
  for (const p of plan.peers) {
    for (const h of p.hops) {
      if (h.path === "unreachable") m.set(h.nextHop, { refuse: h.reason! });
      else if (h.path === "overlay") {
        if ("ifindex" in device) m.set(h.nextHop, { gateway: h.vtep!, ifindex: device.ifindex, onlink: true });
        else m.set(h.nextHop, { refuse: `unreachable: node ${p.node} (${h.nextHop}) needs the overlay: ${device.problem}` });
      }
    }
  }
  return m;
}

/**
 * The override table to start with, before the overlay's first reconcile,
 * from the links and addresses at hand, so that no route via a node needing
 * the overlay is installed through the default router meanwhile: our device
 * found in line (links with details) carries its nodes at once; otherwise
 * (also with the FIB's plain view of links) they are refused until the
 * reconcile has set it up. Routes kept from before a restart of ours stay
 * meanwhile: the FIB removes none before its start-up sync.
 */
export function initialOverrides(input: PlanInput): Map<string, NextHopOverride> {
  const plan = planOverlay(input);
  const link = input.links.find((l) => l.name === OVERLAY_DEVICE);
  const ready = plan.device && link && isOurs(link) && sameVxlan(link, plan.device);
  return overridesOf(plan, ready ? { ifindex: link.index } : { problem: "the overlay device is being set up" });
}

/** Neighbour and FDB entries the plan wants on the device. */
export function neighborsOf(plan: OverlayPlan, ifindex: number): KernelNeighbor[] {
  const out: KernelNeighbor[] = [];
  for (const p of plan.peers) {
    const overlay = p.hops.filter((h) => h.path === "overlay");
    if (overlay.length === 0 || !p.mac || !p.underlay) continue;
    out.push({ family: "bridge", ifindex, ip: p.underlay, mac: p.mac, state: NUD_PERMANENT, flags: NTF_SELF });
    for (const h of overlay) out.push({ family: h.family, ifindex, ip: h.vtep!, mac: p.mac, state: NUD_PERMANENT, flags: 0 });
  }
  return out;
}

/** `show k8s`'s overlay section. */
export interface OverlayStatus {
  mode: OverlayMode;
  device: string;
  /** up: ours and in line; absent: not wanted (mode none) or not created; error: unusable (see problems). */
  state: "up" | "absent" | "error";
  ifindex?: number;
  vni: number;
  port: number;
  mtu?: number;
  local?: string;
  mac?: string;
  vteps: string[];
  nodes: {
    node: string;
    underlay?: string;
    mac?: string;
    nextHop: string;
    path: OverlayPath;
    vtep?: string;
    /** Overlay: its neighbour and FDB entries are in the kernel. */
    installed: boolean;
    reason?: string;
  }[];
  problems: string[];
  /** Reconciles run, kernel operations made, and their failures. */
  reconciles: number;
  ops: number;
  errors: number;
}

export type OverlayLog = (level: LogLevel, msg: string) => void;

export interface OverlayOptions {
  kernel: LinkKernel;
  /** Where the override table goes (the FIB's setNextHopOverrides); called after every reconcile. */
  setOverrides: (table: ReadonlyMap<string, NextHopOverride>) => void;
  log: OverlayLog;
  clock?: Clock;
  /** Periodic compare interval, ms (default 10 s; 0: none). */
  periodicMs?: number;
}

function errText(e: KernelError): string {
  return e.message ? `${e.code} (${e.message})` : e.code;
}

function neighKey(n: KernelNeighbor): string {
  return `${n.family}|${n.family === "bridge" ? n.mac : n.ip}`;
}

/**
 * The overlay's reconciler: `update()` with the settings and Nodes after
 * every derivation; it computes the plan, brings the kernel in line (one
 * reconcile at a time, coalesced) and hands the FIB its override table.
 */
export class Overlay {
  private readonly kernel: LinkKernel;
  private readonly opts: OverlayOptions;
  private readonly clock: Clock;
  private input: { settings: OverlaySettings; me: OverlayNode; nodes: OverlayNode[] } | null = null;
  private plan: OverlayPlan | null = null;
  /** The override table last handed over. */
  private table: ReadonlyMap<string, NextHopOverride> = new Map();
  /** Links and addresses of the last reconcile (for `preview`). */
  private seen: { links: KernelLink[]; addresses: KernelAddress[] } | null = null;
  private deviceIndex: number | null = null;
  private deviceProblem: string | null = null;
  private installed = new Set<string>();
  private problems: string[] = [];
  private readonly logged = new Set<string>();
  private running: Promise<void> | null = null;
  private again = false;
  private timer: TimerHandle | null = null;
  private periodic: TimerHandle | null = null;
  private unwatch: (() => void) | null = null;
  private stopped = false;
  private counters = { reconciles: 0, ops: 0, errors: 0 };

  constructor(opts: OverlayOptions) {
    this.opts = opts;
    this.kernel = opts.kernel;
    this.clock = opts.clock ?? realClock;
  }

  /**
   * Before new Nodes reach the router (their sessions, their routes): hand
   * the FIB the override table they will need, from what the last
   * reconcile saw, so that none of their routes goes in through the default
   * router meanwhile (a route installed so would also block the onlink one
   * for IPv6: the kernel refuses an onlink gateway that another device's
   * route covers). Nodes the device does not carry yet are refused until
   * `update` has set it up. Nothing before the first reconcile (see
   * `initialOverrides`).
   */
  preview(settings: OverlaySettings, me: OverlayNode, nodes: OverlayNode[]): void {
    if (this.stopped || !this.seen || !this.input) return;
    // Only the Nodes the last plan did not have (a handful), not the whole cluster in one turn.
    const known = new Set((this.plan?.peers ?? []).map((p) => p.node));
    const fresh = nodes.filter((n) => !known.has(n.name) && n.name !== me.name);
    if (fresh.length === 0) return;
    const plan = planOverlay({ settings, me, nodes: fresh, ...this.seen });
    const same = this.plan?.device && plan.device && this.plan.device.vni === plan.device.vni && this.plan.device.port === plan.device.port && this.plan.device.local === plan.device.local;
    const table = overridesOf(plan, same && this.deviceIndex !== null ? { ifindex: this.deviceIndex } : { problem: "the overlay device is being set up" });
    // Only additions: a Node that left keeps its entry until its sessions are gone (the reconcile after the router's apply).
    for (const [k, v] of this.table) if (!table.has(k)) table.set(k, v);
    this.handOver(table);
  }

  /** The override table of the last completed reconcile; null before one completed. */
  overrides(): ReadonlyMap<string, NextHopOverride> | null {
    return this.seen ? this.table : null;
  }

  /** New settings or Nodes: reconcile (now if it is the first input, else after a short debounce). */
  update(settings: OverlaySettings, me: OverlayNode, nodes: OverlayNode[]): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const first = this.input === null;
    this.input = { settings, me, nodes };
    if (first) {
      this.unwatch = this.kernel.watch((e) => this.onEvent(e));
      this.armPeriodic();
    }
    return this.reconcileNow();
  }

  /** Reconcile now (or once more after the one running); resolves when the kernel is in line with the latest input. */
  reconcileNow(): Promise<void> {
    if (this.stopped || !this.input) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.reconcile();
        } while (this.again && !this.stopped);
      } catch (e) {
        this.say("error", `overlay: reconcile failed: ${(e as Error).message}`);
      }
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Resolves once no reconcile is running or scheduled. */
  async whenIdle(): Promise<void> {
    while (this.running || this.timer) {
      if (this.running) await this.running;
      else await new Promise((r) => setTimeout(r, DEBOUNCE_MS));
    }
  }

  private schedule(): void {
    if (this.stopped || this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void this.reconcileNow();
    }, DEBOUNCE_MS);
  }

  private armPeriodic(): void {
    const ms = this.opts.periodicMs ?? DEFAULT_PERIODIC_MS;
    if (!(ms > 0) || this.stopped) return;
    this.periodic = this.clock.setTimeout(() => {
      this.periodic = null;
      void this.reconcileNow().finally(() => this.armPeriodic());
    }, ms);
  }

  private onEvent(e: KernelEvent): void {
    if (this.stopped) return;
    // Our device gone or changed, an underlay MTU or address changed, events lost: compare again.
    if (e.type === "link" || e.type === "address" || e.type === "overrun") this.schedule();
  }

  private handOver(table: ReadonlyMap<string, NextHopOverride>): void {
    this.table = table;
    this.opts.setOverrides(table);
  }

  /** Log a line once per distinct text (until it is gone from a reconcile and comes back). */
  private say(level: LogLevel, msg: string): void {
    if (this.logged.has(msg)) return;
    this.logged.add(msg);
    this.opts.log(level, msg);
  }

  private async op(what: string, run: () => Promise<KernelError | null>): Promise<boolean> {
    this.counters.ops++;
    const err = await run();
    if (!err) return true;
    this.counters.errors++;
    this.problems.push(`${what}: ${errText(err)}`);
    return false;
  }

  private async reconcile(): Promise<void> {
    const input = this.input;
    if (!input) return;
    this.counters.reconciles++;
    const problemsBefore = new Set(this.problems);
    this.problems = [];
    const [links, addresses] = await Promise.all([this.kernel.dumpLinkDetails(), this.kernel.dumpAddresses()]);
    if (this.stopped) return;
    const plan = await runSliced(planOverlaySteps({ ...input, links, addresses }));
    this.problems.push(...plan.problems);
    const want = plan.device;
    let link = links.find((l) => l.name === OVERLAY_DEVICE);
    let ifindex: number | null = null;
    let deviceProblem: string | null = null;
    if (link && !isOurs(link)) {
      deviceProblem = `a link named ${OVERLAY_DEVICE} exists and is not bgpctl's (${link.kind ? `kind ${link.kind}` : "no kind"}${link.vxlan ? `, vxlan id ${link.vxlan.id}` : ""}, MAC ${link.mac ?? "none"}); not touched`;
      this.problems.push(deviceProblem);
      link = undefined;
    } else if (!want) {
      if (link) {
        if (await this.op(`delete ${OVERLAY_DEVICE}`, () => this.kernel.linkOp({ op: "delete", index: link!.index }))) {
          this.opts.log("info", `overlay: ${OVERLAY_DEVICE} removed (mode ${input.settings.mode})`);
        }
      }
    } else {
      if (link && !sameVxlan(link, want)) {
        this.opts.log("info", `overlay: ${OVERLAY_DEVICE} has other VXLAN settings (id ${link.vxlan?.id}, port ${link.vxlan?.port}, local ${link.vxlan?.local ?? "none"}): recreating it`);
        if (await this.op(`delete ${OVERLAY_DEVICE}`, () => this.kernel.linkOp({ op: "delete", index: link!.index }))) link = undefined;
      }
      if (!link) {
        const create: LinkOp = { op: "create-vxlan", name: want.name, vxlan: { id: want.vni, local: want.local, port: want.port, learning: false }, mtu: want.mtu, mac: want.mac, up: true };
        if (await this.op(`create ${OVERLAY_DEVICE}`, () => this.kernel.linkOp(create))) {
          link = (await this.kernel.dumpLinkDetails()).find((l) => l.name === OVERLAY_DEVICE);
          this.opts.log("info", `overlay: ${OVERLAY_DEVICE} created (vni ${want.vni}, port ${want.port}, local ${want.local}, mtu ${want.mtu}, mac ${want.mac})`);
        }
      } else if (link.mtu !== want.mtu || link.mac !== want.mac || !link.adminUp) {
        const l = link;
        const set: LinkOp = { op: "set", index: l.index, up: true };
        if (l.mtu !== want.mtu) set.mtu = want.mtu;
        if (l.mac !== want.mac) set.mac = want.mac;
        await this.op(`set ${OVERLAY_DEVICE}`, () => this.kernel.linkOp(set));
      }
      if (link) {
        ifindex = link.index;
        await this.syncAddresses(ifindex, want, addresses);
        await this.syncNeighbors(ifindex, plan);
      } else deviceProblem = this.problems[this.problems.length - 1] ?? `${OVERLAY_DEVICE} could not be created`;
    }
    if (this.stopped) return;
    this.plan = plan;
    this.seen = { links, addresses };
    this.deviceIndex = ifindex;
    this.deviceProblem = deviceProblem;
    await nextTurn(); // a cluster's table is built and compared by the FIB in a turn of its own
    if (this.stopped) return;
    this.handOver(overridesOf(plan, ifindex !== null ? { ifindex } : { problem: deviceProblem ?? "no overlay device" }));
    for (const p of this.problems) if (!problemsBefore.has(p)) this.say("warn", `overlay: ${p}`);
    for (const p of problemsBefore) if (!this.problems.includes(p)) this.logged.delete(`overlay: ${p}`);
  }

  private async syncAddresses(ifindex: number, want: DesiredDevice, all: KernelAddress[]): Promise<void> {
    const have = all.filter((a) => a.ifindex === ifindex && !a.address.startsWith("fe80:"));
    for (const v of want.vteps) {
      const f = familyOfText(v);
      const len = f === 4 ? 32 : 128;
      if (have.some((a) => a.address === v && a.prefixLength === len)) continue;
      await this.op(`add ${v}/${len} to ${OVERLAY_DEVICE}`, () => this.kernel.addressOp({ op: "add", address: { family: f, ifindex, address: v, prefixLength: len } }));
    }
    for (const a of have) {
      if (want.vteps.includes(a.address) && a.prefixLength === (a.family === 4 ? 32 : 128)) continue;
      await this.op(`remove ${a.address}/${a.prefixLength} from ${OVERLAY_DEVICE}`, () => this.kernel.addressOp({ op: "delete", address: a }));
    }
  }

  private async syncNeighbors(ifindex: number, plan: OverlayPlan): Promise<void> {
    const want = new Map(neighborsOf(plan, ifindex).map((n) => [neighKey(n), n]));
    const have = new Map<string, KernelNeighbor>();
    for (const f of ["bridge", 4, 6] as const) {
      for (const n of await this.kernel.dumpNeighbors(f, ifindex)) {
        // Ours are permanent; the kernel's own (dynamic, e.g. IPv6 link-local neighbours) stay.
        if (n.state & NUD_PERMANENT && (n.ip !== undefined || n.family === "bridge")) have.set(neighKey(n), n);
      }
    }
    const ops: NeighborOp[] = [];
    for (const [k, n] of want) {
      const h = have.get(k);
      if (!h || h.mac !== n.mac || h.ip !== n.ip || (n.family === "bridge" && !(h.flags & NTF_SELF))) ops.push({ op: "replace", neighbor: n });
    }
    for (const [k, h] of have) if (!want.has(k)) ops.push({ op: "delete", neighbor: h });
    this.installed = new Set(want.keys());
    if (ops.length === 0) return;
    this.counters.ops += ops.length;
    const res = await this.kernel.neighborOps(ops);
    res.forEach((r, i) => {
      const o = ops[i]!;
      if (r === null || (o.op === "delete" && (r.code === "ENOENT" || r.code === "ESRCH"))) return;
      this.counters.errors++;
      this.installed.delete(neighKey(o.neighbor));
      const n = o.neighbor;
      this.problems.push(`${o.op} ${n.family === "bridge" ? `FDB ${n.mac} dst ${n.ip}` : `neighbour ${n.ip} lladdr ${n.mac}`}: ${errText(r)}`);
    });
  }

  status(): OverlayStatus | null {
    const input = this.input;
    if (!input) return null;
    const s = input.settings;
    const plan = this.plan;
    const dev = plan?.device ?? null;
    const out: OverlayStatus = {
      mode: s.mode,
      device: OVERLAY_DEVICE,
      state: this.deviceIndex !== null ? "up" : this.deviceProblem !== null ? "error" : "absent",
      vni: s.vni,
      port: s.port,
      vteps: dev?.vteps ?? [],
      nodes: [],
      problems: [...this.problems],
      ...this.counters,
    };
    if (this.deviceIndex !== null) out.ifindex = this.deviceIndex;
    if (dev) {
      out.mtu = dev.mtu;
      out.local = dev.local;
      out.mac = dev.mac;
    }
    for (const p of plan?.peers ?? []) {
      for (const h of p.hops) {
        const row: OverlayStatus["nodes"][number] = { node: p.node, nextHop: h.nextHop, path: h.path, installed: false };
        if (p.underlay) row.underlay = p.underlay;
        if (p.mac) row.mac = p.mac;
        if (h.vtep) row.vtep = h.vtep;
        if (h.reason) row.reason = h.reason;
        row.installed =
          h.path === "overlay" && this.deviceIndex !== null && this.installed.has(`bridge|${p.mac}`) && this.installed.has(`${h.family}|${h.vtep}`);
        out.nodes.push(row);
      }
    }
    return out;
  }

  /**
   * Stop reconciling. `remove` (`bgpctl shutdown`): routes via the overlay
   * are refused in the FIB first (so none falls back to the default router),
   * then our device goes with its addresses, neighbours and FDB entries.
   * Otherwise (a graceful restart) the kernel state stays for the next start.
   */
  async stop(opts: { remove?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unwatch?.();
    this.unwatch = null;
    for (const t of [this.timer, this.periodic]) if (t) this.clock.clearTimeout(t);
    this.timer = this.periodic = null;
    if (this.running) await this.running;
    if (!opts.remove || !this.input) return;
    if (this.plan) this.handOver(overridesOf(this.plan, { problem: "overlay removed (bgpctl shutdown)" }));
    const link = (await this.kernel.dumpLinkDetails()).find((l) => l.name === OVERLAY_DEVICE);
    if (!link || !isOurs(link)) return;
    const err = await this.kernel.linkOp({ op: "delete", index: link.index });
    if (err) this.opts.log("warn", `overlay: removing ${OVERLAY_DEVICE} on shutdown: ${errText(err)}`);
    else this.opts.log("info", `overlay: ${OVERLAY_DEVICE} removed`);
  }
}

/** A link named like ours is ours when it is a VXLAN device with a VTEP MAC of our prefix. */
function isOurs(l: KernelLink): boolean {
  return l.kind === "vxlan" && l.mac !== undefined && l.mac.startsWith(VTEP_MAC_PREFIX);
}

function sameVxlan(l: KernelLink, d: DesiredDevice): boolean {
  const x = l.vxlan;
  return !!x && x.id === d.vni && x.port === d.port && x.local === d.local && !x.learning;
}
