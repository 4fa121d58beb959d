/**
 * The Kubernetes API emulator (tests/k8s/emulator.ts) in a network namespace
 * of the test's own, for e2e tests that run `bgpctl watch-k8s` inside it:
 * plain HTTP on 127.0.0.1:6443 in the namespace, its control socket, and a
 * kubeconfig for it. Whatever happens, every process put in `procs` is
 * killed and the namespace deleted afterwards.
 */
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { EmulatorControl } from "../k8s/emulator.ts";
import { waitFor } from "./wait.ts";

const EMULATOR = join(import.meta.dir, "..", "k8s", "emulator.ts");

export interface EmulatorNs {
  ns: string;
  ctl: EmulatorControl;
  kubeconfig: string;
  /** Processes to kill at the end (the emulator is one). */
  procs: Bun.Subprocess[];
  /** Run a command to completion; its stdout, or an Error naming the command, exit code and stderr. */
  sh(argv: string[]): string;
}

function sh(argv: string[]): string {
  const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${argv.join(" ")}: exit ${r.exitCode}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** Run `fn` with the emulator up in namespace `ns` (files in `dir`); clean up after. */
export async function withEmulatorNamespace<T>(ns: string, dir: string, fn: (e: EmulatorNs) => Promise<T>): Promise<T> {
  const procs: Bun.Subprocess[] = [];
  sh(["ip", "netns", "add", ns]);
  try {
    sh(["ip", "-n", ns, "link", "set", "lo", "up"]);
    const emuSock = join(dir, "emu.sock");
    procs.push(
      Bun.spawn(["ip", "netns", "exec", ns, process.execPath, EMULATOR, "--listen", "127.0.0.1:6443", "--unix", emuSock], {
        stdout: "ignore",
        stderr: Bun.file(join(dir, "emu.log")),
      }),
    );
    await waitFor(() => existsSync(emuSock), { timeoutMs: 15_000, what: "the emulator's control socket", intervalMs: 50 });
    const kubeconfig = join(dir, "kubeconfig");
    writeFileSync(
      kubeconfig,
      "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'http://127.0.0.1:6443'}}]\nusers: [{name: u, user: {}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    );
    return await fn({ ns, ctl: new EmulatorControl(emuSock), kubeconfig, procs, sh });
  } finally {
    for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
    await Promise.all(procs.map((p) => Promise.race([p.exited, Bun.sleep(5000)])));
    Bun.spawnSync(["ip", "netns", "del", ns]);
  }
}
