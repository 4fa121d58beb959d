/**
 * `bgpctl peer ADDR ...`: run one BGP session in the foreground, print state
 * changes and every route received or withdrawn (JSON lines with --json),
 * announce the given prefixes; SIGINT/SIGTERM sends Cease/Administrative
 * Shutdown and exits 0.
 *
 * The same command word also manages the daemon's neighbours (commands/ctl.ts):
 * `peer add ADDR --remote-as N [...]`, `peer delete ADDR`, and
 * `peer ADDR up|down|reset` (an action word after the address).
 */
import type { Command } from "commander";
import { UsageError } from "../lib/cli/args.ts";
import { addPasswordFlags, addSessionFlags, type RawSessionFlags, sessionOptions } from "../lib/cli/session-flags.ts";
import { formatEvent } from "../lib/standalone/format.ts";
import { type PeerEvent, StandaloneSpeaker, type StandaloneOptions } from "../lib/standalone/speaker.ts";
import { writeLine } from "../lib/cli/output.ts";
import { rejectFlags } from "../lib/cli/forms.ts";
import { PEER_DAEMON_KEYS, type PeerAction, type PeerCtlFlags, addCtlFlags, peerCtl } from "./ctl.ts";

/** Runs one session in the foreground until SIGINT/SIGTERM, printing its events (also used by `advertise --peer`). */
export async function runForegroundSession(opts: StandaloneOptions, out: { json: boolean; verbose: boolean; shutdownMessage: string }): Promise<void> {
  const print = (e: PeerEvent) => {
    if (e.event === "log" && e.level === "debug" && !out.verbose) return;
    writeLine(out.json ? JSON.stringify(e) : formatEvent(e));
  };
  const speaker = new StandaloneSpeaker(opts, print);
  let stopping = false;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => {
      if (stopping) return;
      stopping = true;
      speaker.stop(out.shutdownMessage).finally(resolve);
    };
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
  await speaker.start();
  await stopped;
}

const ACTIONS = ["up", "down", "reset"];

export function registerPeer(program: Command): void {
  const cmd = addPasswordFlags(addSessionFlags(
    program
      .command("peer")
      .argument("<addr>", "the peer's address (or add/delete followed by the address)")
      .argument("[action]", "up, down or reset: ask the daemon to act on this neighbour")
      .usage("ADDR [options]  |  ADDR up|down|reset  |  add ADDR --remote-as N [options]  |  delete ADDR")
      .description(
        "run one BGP session in the foreground; or manage the daemon's neighbours: " +
          "peer add ADDR --remote-as N, peer delete ADDR, peer ADDR up|down [--message TEXT]|reset [--soft in|out]",
      ),
  ))
    .option("--shutdown-message <text>", "shutdown communication sent on exit (RFC 9003)", "bgpctl peer stopped")
    .option("-j, --json", "one JSON object per line")
    .option("-v, --verbose", "also print debug messages")
    .option("--message <text>", "peer ADDR down: shutdown communication sent to the peer (RFC 9003)")
    .option("--soft <dir>", "peer ADDR reset: soft reset, in (route refresh) or out (re-announce), instead of closing the session")
    .option("--description <text>", "peer add: description shown by show neighbors")
    .option("--import <policy>", "peer add: import policy (names from the config, or all/none)")
    .option("--export <policy>", "peer add: export policy (names from the config, or all/none)")
    .option("--route-reflector-client", "peer add: the neighbour is a route-reflector client")
    .option("--next-hop-self", "peer add: set the next hop to ourselves on routes sent to it");
  addCtlFlags(cmd, false).action(async (first: string, second: string | undefined, flags: RawSessionFlags & PeerCtlFlags & { shutdownMessage: string }, c: Command) => {
    let action: PeerAction | null = null;
    let addr: string | undefined = first;
    if (first === "add" || first === "delete") {
      action = first;
      addr = second;
    } else if (second !== undefined) {
      if (ACTIONS.includes(second)) action = second as PeerAction;
      else if (ACTIONS.includes(first)) {
        action = first as PeerAction; // "peer down ADDR" reads as well as "peer ADDR down"
        addr = second;
      } else throw new UsageError(`peer: unknown action "${second}" (expected ADDR up|down|reset, add ADDR or delete ADDR)`);
    }
    if (action) {
      rejectFlags(c, ["password", "passwordFile"], "applies to a foreground session (bgpctl peer ADDR ...); the daemon takes a neighbour's password from its config");
      return peerCtl(action, addr, flags, c);
    }
    rejectFlags(c, PEER_DAEMON_KEYS, "applies to the daemon forms (peer add/delete, peer ADDR up|down|reset), not to a foreground session");
    const opts = sessionOptions(first, flags);
    await runForegroundSession(opts, { json: !!flags.json, verbose: !!flags.verbose, shutdownMessage: flags.shutdownMessage });
  });
}
