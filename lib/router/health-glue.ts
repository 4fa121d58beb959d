/**
 * Health checks (lib/health) tied to the route engine: each check's prefixes
 * are local routes owned by "health", set to the form its state asks for —
 * while UP the normal attributes (plus the check's `communities`); while
 * not UP either nothing (`onDown: withdraw`) or the degraded attributes
 * (`onDown: {degrade: {med, prepend, communities}}`: MED, our AS prepended N
 * times, the degrade communities instead of the up ones). What INIT, RISING
 * and FALLING announce follows the state machine's `up` (the last decision;
 * at start the down form). A route is replaced in one step (no withdraw in
 * between) and only when its attributes change.
 *
 * `loopback: true` adds each prefix's address to `lo` while the check is UP
 * and removes it on any other decision (DOWN, DISABLED) and when the check
 * goes away or the daemon stops. Only addresses we added are ever removed:
 * one already on `lo` is left alone (logged once). Address changes run one
 * at a time, in order, through ffi/rtaddr.ts (tests pass their own).
 *
 * Ownership: a prefix of a check may not also be under `advertise:` (a
 * config error); the control API may not advertise or withdraw it (409);
 * a check added over a prefix the API originated takes it over (logged).
 * Reload (`apply`): checks are matched by name; a new one starts at INIT, a
 * removed one is stopped and its routes and addresses go, a changed one is
 * updated in place (state and counters kept, routes re-rendered, prefixes
 * no longer listed withdrawn); nothing else is touched.
 */
import { sameValue } from "../config/diff.ts";
import type { AdvertiseConfig, HealthCheckConfig } from "../config/types.ts";
import { parsePrefix } from "../core/addr.ts";
import { type CheckInfo, type CheckState, HealthCheck, type Probe } from "../health/mod.ts";
import type { RouteEngine } from "./engine.ts";
import { notFound } from "./errors.ts";

/** Adding and removing host addresses on the loopback interface. */
export interface LoopbackOps {
  add(address: string, prefixLength: number): Promise<"added" | "present">;
  remove(address: string, prefixLength: number): Promise<"removed" | "absent">;
  close(): void;
}

export interface HealthGlueOptions {
  /** Opens the loopback interface (default: rtnetlink on `lo`, ffi/rtaddr.ts). */
  openLoopback?: () => Promise<LoopbackOps>;
  /** The probe of a check (default: from its configuration); tests pass their own. */
  probe?: (c: HealthCheckConfig) => Probe;
  /** Whether a file exists (drain files; default node:fs). */
  exists?: (path: string) => boolean;
}

/** The default loopback: rtnetlink on `lo` of the daemon's network namespace. */
async function rtnetlinkLoopback(): Promise<LoopbackOps> {
  const { AddressNetlink } = await import("../../ffi/rtaddr.ts");
  const nl = await AddressNetlink.open();
  const lo = AddressNetlink.ifindex("lo");
  return {
    add: (a, len) => nl.add(lo, a, len),
    remove: (a, len) => nl.remove(lo, a, len),
    close: () => nl.close(),
  };
}

export class HealthGlue {
  private readonly checks = new Map<string, HealthCheck>();
  /** Prefix → the check that owns it. */
  private readonly owners = new Map<string, string>();
  /** Loopback addresses ("ADDR/LEN") we added, and those found there already (not ours). */
  private readonly added = new Set<string>();
  private readonly foreign = new Set<string>();
  /** Loopback address → whether some check wants it now. */
  private readonly wanted = new Map<string, boolean>();
  private loop: Promise<LoopbackOps> | null = null;
  /** Address changes, one at a time. */
  private addrOps: Promise<void> = Promise.resolve();

  constructor(
    private readonly e: RouteEngine,
    private readonly opts: HealthGlueOptions = {},
  ) {}

  /** The check owning a prefix (canonical text), if any. */
  ownerOf(prefix: string): string | undefined {
    return this.owners.size ? this.owners.get(prefix) : undefined;
  }

  get size(): number {
    return this.checks.size;
  }

  /** Make the running checks those of `list` (start and reload); returns the changes made, for the reload's log. */
  apply(list: readonly HealthCheckConfig[]): string[] {
    const changes: string[] = [];
    const next = new Map(list.map((c) => [c.name, c]));
    for (const [name, check] of [...this.checks]) {
      if (next.has(name)) continue;
      this.remove(check);
      changes.push(`health check ${name} removed`);
    }
    for (const c of list) {
      const cur = this.checks.get(c.name);
      if (!cur) {
        this.add(c);
        changes.push(`health check ${c.name} added`);
      } else if (!sameValue(cur.config, c)) {
        const gone = cur.config.prefixes.filter((p) => !c.prefixes.includes(p));
        for (const p of gone) this.release(p, cur.config);
        cur.update(c);
        this.claim(c);
        this.render(cur);
        changes.push(`health check ${c.name} updated`);
      }
    }
    return changes;
  }

  /** Stop every check and remove the loopback addresses we added (routes stay: the engine stops with them). */
  async stop(): Promise<void> {
    for (const c of this.checks.values()) {
      c.stop();
      if (c.config.loopback) for (const p of c.config.prefixes) this.want(p, false);
    }
    this.checks.clear();
    await this.addrOps;
    if (this.loop) {
      const l = await this.loop.catch(() => null);
      l?.close();
      this.loop = null;
    }
  }

  /** Every check, for `show checks`. */
  info(): CheckInfo[] {
    return [...this.checks.values()].map((c) => c.info(this.announced(c)));
  }

  /** `bgpctl check NAME disable|enable`. */
  setEnabled(name: string, enabled: boolean): CheckInfo {
    const c = this.checks.get(name) ?? notFound(`no health check named ${name}${this.checks.size ? ` (there are: ${[...this.checks.keys()].join(", ")})` : ""}`);
    if (c.enabled !== enabled) this.e.log.info(`health check ${name}: ${enabled ? "enabled" : "disabled"} from the CLI`);
    c.setEnabled(enabled);
    return c.info(this.announced(c));
  }

  /** Resolves when the address changes asked for so far are done (tests). */
  settled(): Promise<void> {
    return this.addrOps;
  }

  // ------------------------------------------------------------ checks

  private add(c: HealthCheckConfig): void {
    const check = new HealthCheck(c, {
      clock: this.e.clock,
      log: this.e.log,
      onChange: (x, from) => this.changed(x, from),
      ...(this.opts.probe ? { probe: this.opts.probe } : {}),
      ...(this.opts.exists ? { exists: this.opts.exists } : {}),
    });
    this.checks.set(c.name, check);
    this.claim(c);
    this.render(check);
    check.start();
  }

  private remove(check: HealthCheck): void {
    check.stop();
    this.checks.delete(check.name);
    for (const p of check.config.prefixes) this.release(p, check.config);
  }

  private changed(check: HealthCheck, _from: CheckState): void {
    if (this.checks.get(check.name) !== check) return;
    this.render(check);
  }

  /**
   * Take a check's prefixes: a local route of another owner (the API's) is
   * replaced by the check's; without `loopback`, an address we added for the
   * prefix (the check had it, or the check that had the prefix) goes.
   */
  private claim(c: HealthCheckConfig): void {
    for (const p of c.prefixes) {
      this.owners.set(p, c.name);
      if (!c.loopback) this.want(p, false);
      const cur = this.e.localRoutes.get(p);
      if (cur && cur.owner !== "health") {
        this.e.log.info(`health check ${c.name}: takes over ${p} (was originated by the ${cur.owner === "api" ? "control API" : "config file"})`);
        this.e.removeLocal(p);
      }
    }
  }

  /** A prefix leaves its check: its route and loopback address go (unless another check took it over in the same reload). */
  private release(p: string, c: HealthCheckConfig): void {
    if (this.owners.get(p) !== c.name) return;
    this.owners.delete(p);
    if (this.e.localRoutes.get(p)?.owner === "health") this.e.removeLocal(p);
    if (c.loopback) this.want(p, false);
  }

  private announced(c: HealthCheck): CheckInfo["announced"] {
    if (c.up) return "up";
    return c.config.onDown === "withdraw" ? "withdrawn" : "degraded";
  }

  /** The route of a prefix in the check's current form, or null (withdrawn). */
  private form(c: HealthCheck, prefix: string): AdvertiseConfig | null {
    const cfg = c.config;
    if (c.up) return { prefix, communities: cfg.communities, largeCommunities: [] };
    if (cfg.onDown === "withdraw") return null;
    const d = cfg.onDown.degrade;
    return {
      prefix,
      communities: d.communities,
      largeCommunities: [],
      ...(d.med !== undefined ? { med: d.med } : {}),
      ...(d.prepend !== undefined ? { asPathPrepend: d.prepend } : {}),
    };
  }

  /** Set the check's routes (and loopback addresses) to its current form. */
  private render(c: HealthCheck): void {
    for (const p of c.config.prefixes) {
      const want = this.form(c, p);
      const cur = this.e.localRoutes.get(p);
      if (want === null) {
        if (cur?.owner === "health") this.e.removeLocal(p);
      } else if (!cur || cur.owner !== "health" || !cur.matches(want)) {
        this.e.setLocal(want, "health");
      }
      if (c.config.loopback) this.want(p, c.up);
    }
  }

  // ------------------------------------------------------------ loopback

  private loopback(): Promise<LoopbackOps> {
    this.loop ??= (this.opts.openLoopback ?? rtnetlinkLoopback)();
    return this.loop;
  }

  /** Ask for a host prefix's address on lo (or not); changes run in order. */
  private want(prefix: string, on: boolean): void {
    if ((this.wanted.get(prefix) ?? false) === on) return;
    this.wanted.set(prefix, on);
    if (!on && !this.added.has(prefix)) {
      this.foreign.delete(prefix);
      return;
    }
    this.addrOps = this.addrOps.then(() => this.syncAddress(prefix));
  }

  private async syncAddress(prefix: string): Promise<void> {
    const on = this.wanted.get(prefix) ?? false;
    const p = parsePrefix(prefix);
    const [addr] = prefix.split("/") as [string];
    try {
      const lo = await this.loopback();
      if (on && !this.added.has(prefix) && !this.foreign.has(prefix)) {
        const r = await lo.add(addr, p.len);
        if (r === "added") {
          this.added.add(prefix);
          this.e.log.info(`health: added ${prefix} to lo`);
        } else {
          this.foreign.add(prefix);
          this.e.log.info(`health: ${prefix} is already on lo (not added by bgpctl): left alone`);
        }
      } else if (!on && this.added.has(prefix)) {
        this.added.delete(prefix);
        const r = await lo.remove(addr, p.len);
        this.e.log.info(`health: removed ${prefix} from lo${r === "absent" ? " (it was gone already)" : ""}`);
      }
    } catch (err) {
      this.e.log.error(`health: cannot ${on ? "add" : "remove"} ${prefix} ${on ? "to" : "from"} lo: ${(err as Error).message}`);
    }
  }
}
