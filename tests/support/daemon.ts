/**
 * A `bgpctl run` daemon for the e2e tests and the soak run: the compiled
 * binary (BGPCTL_BIN, else dist/bgpctl) started on a YAML config written to a
 * directory of the caller's, its log in that directory, the control API
 * (lib/api/client.ts, what the CLI uses) on its socket, its RSS from /proc,
 * SIGHUP for reloads, and a stop that ends only this process (by its PID).
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ApiClient } from "../../lib/api/client.ts";
import type { NeighborInfo, RibEntry } from "../../lib/api/types.ts";
import { waitFor } from "./wait.ts";

/** The binary under test: BGPCTL_BIN, else dist/bgpctl of this tree. */
export function bgpctlBin(): string {
  const bin = process.env.BGPCTL_BIN ?? join(import.meta.dir, "../../dist/bgpctl");
  if (!existsSync(bin)) throw new Error(`bgpctl binary ${bin} not found: run \`npm run build\` or set BGPCTL_BIN`);
  return bin;
}

export class Daemon {
  readonly proc: Bun.Subprocess;
  readonly api: ApiClient;
  readonly configFile: string;
  readonly logFile: string;
  readonly socket: string;

  /** Writes `config` (YAML; its controlSocket must be `socket`) to DIR/NAME.yaml and starts the daemon on it. */
  constructor(
    readonly dir: string,
    config: string,
    readonly name = "bgpctl",
    bin = bgpctlBin(),
  ) {
    this.configFile = join(dir, `${name}.yaml`);
    this.logFile = join(dir, `${name}.log`);
    this.socket = Daemon.socketIn(dir, name);
    if (!config.includes(this.socket)) throw new Error(`daemon config must set controlSocket: ${this.socket}`);
    writeFileSync(this.configFile, config);
    this.proc = Bun.spawn([bin, "run", "--config", this.configFile], { stdout: "ignore", stderr: Bun.file(this.logFile) });
    this.api = new ApiClient(this.socket);
  }

  /** The control socket path a daemon named NAME in DIR uses. */
  static socketIn(dir: string, name = "bgpctl"): string {
    return join(dir, `${name}.sock`);
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Waits until the control socket answers. */
  async ready(timeoutMs = 15_000): Promise<void> {
    const exited = this.proc.exited.then((code) => {
      throw new Error(`${this.name} exited (code ${code}) before its control socket answered\n${this.logTail()}`);
    });
    const up = waitFor(async () => this.alive && (await this.api.summary()), { what: `${this.name}'s control socket`, timeoutMs, intervalMs: 100, retryErrors: true, detail: () => this.logTail() });
    await Promise.race([up, exited]);
    exited.catch(() => {}); // the race is over: a later exit is someone else's to report
  }

  /** Rewrite the config file (a reload picks it up). */
  writeConfig(config: string): void {
    writeFileSync(this.configFile, config);
  }

  reload(): void {
    this.proc.kill("SIGHUP");
  }

  neighbors(): Promise<NeighborInfo[]> {
    return this.api.neighbors();
  }

  async neighbor(address: string): Promise<NeighborInfo> {
    const n = (await this.api.neighbors()).find((x) => x.address === address);
    if (!n) throw new Error(`${this.name} has no neighbour ${address}`);
    return n;
  }

  rib(q: Parameters<ApiClient["rib"]>[0] = {}): Promise<RibEntry[]> {
    return this.api.rib(q);
  }

  /** Resident set size in bytes (/proc/PID/status VmRSS). */
  rssBytes(): number {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${this.proc.pid}/status`, "utf8"));
    if (!m) throw new Error(`no VmRSS for pid ${this.proc.pid}`);
    return Number(m[1]) * 1024;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }

  logTail(lines = 30): string {
    return `--- ${this.name} log (last ${lines} lines) ---\n${this.log().trim().split("\n").slice(-lines).join("\n")}`;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5000): Promise<void> {
    if (!this.alive) return;
    this.proc.kill("SIGTERM");
    await Promise.race([this.proc.exited, Bun.sleep(graceMs)]);
    if (this.alive) {
      this.proc.kill("SIGKILL");
      await this.proc.exited;
    }
  }
}
