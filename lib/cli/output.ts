/**
 * Buffered stdout for commands that print many lines: one write per batch
 * instead of one per line, flushed on the next tick and before exit.
 */
let buf: string[] = [];
let scheduled = false;

export function flush(): void {
  scheduled = false;
  if (!buf.length) return;
  const s = buf.join("");
  buf = [];
  process.stdout.write(s);
}

export function writeLine(s: string): void {
  buf.push(s + "\n");
  if (buf.length > 512) flush();
  else if (!scheduled) {
    scheduled = true;
    setImmediate(flush);
  }
}
