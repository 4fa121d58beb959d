/**
 * systemd's side of sd_notify for tests: a Unix datagram socket (bound by a
 * small python3 process, as Bun has no unix datagram sockets) that records
 * every datagram with its CLOCK_MONOTONIC arrival time in microseconds.
 * `messages` holds them parsed (KEY=VALUE lines); `next` waits for the next
 * one matching a predicate. Abstract names ("@x") work too.
 */
import { existsSync } from "node:fs";
import { waitFor } from "./wait.ts";

export interface NotifyMessage {
  /** CLOCK_MONOTONIC at arrival, microseconds. */
  at: number;
  fields: Record<string, string>;
  raw: string;
}

const RECEIVER = `
import json, os, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + path[1:] if path.startswith("@") else path)
print(json.dumps({"ready": True}), flush=True)
while True:
    data = s.recv(65536)
    print(json.dumps({"at": int(time.monotonic() * 1e6), "raw": data.decode()}), flush=True)
`;

export class NotifySocket {
  readonly messages: NotifyMessage[] = [];
  private readonly proc: ReturnType<typeof Bun.spawn>;
  private ready = false;
  private stderr = "";

  private constructor(readonly path: string) {
    this.proc = Bun.spawn(["python3", "-c", RECEIVER, path], { stdout: "pipe", stderr: "pipe" });
    void this.read();
    void new Response(this.proc.stderr as ReadableStream).text().then((t) => (this.stderr = t));
  }

  /** Bind `path` (a file path, or "@name" abstract) and wait until it receives. */
  static async open(path: string): Promise<NotifySocket> {
    const s = new NotifySocket(path);
    await waitFor(() => s.ready && (path.startsWith("@") || existsSync(path)), { timeoutMs: 10_000, what: `notify socket ${path} bound`, detail: () => s.stderr });
    return s;
  }

  private async read(): Promise<void> {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of this.proc.stdout as ReadableStream<Uint8Array>) {
      buf += dec.decode(chunk, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const j = JSON.parse(line) as { ready?: boolean; at?: number; raw?: string };
        if (j.ready) {
          this.ready = true;
          continue;
        }
        const fields: Record<string, string> = {};
        for (const l of j.raw!.split("\n")) {
          if (l === "") continue;
          const eq = l.indexOf("=");
          if (eq <= 0) throw new Error(`notify message line without KEY=: ${JSON.stringify(l)} in ${JSON.stringify(j.raw)}`);
          fields[l.slice(0, eq)] = l.slice(eq + 1);
        }
        this.messages.push({ at: j.at!, fields, raw: j.raw! });
      }
    }
  }

  /** The first message from index `from` on that matches; waits up to `timeoutMs`. */
  async next(match: (m: NotifyMessage) => boolean, what: string, from = 0, timeoutMs = 10_000): Promise<{ msg: NotifyMessage; index: number }> {
    let found: { msg: NotifyMessage; index: number } | null = null;
    await waitFor(
      () => {
        for (let i = from; i < this.messages.length; i++) {
          if (match(this.messages[i]!)) {
            found = { msg: this.messages[i]!, index: i };
            return true;
          }
        }
        return false;
      },
      { timeoutMs, what, detail: () => `messages so far: ${JSON.stringify(this.messages.map((m) => m.raw))}` },
    );
    return found!;
  }

  close(): void {
    this.proc.kill();
  }
}
