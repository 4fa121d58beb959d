/**
 * Temporary directories for a test file, removed when its tests are done:
 * `const tmp = tempDirs("bgpctl-x-")` at the top of the file registers the
 * clean-up (afterAll) and returns a function making one directory per call.
 */
import { afterAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export function tempDirs(prefix: string): () => string {
  const made: string[] = [];
  afterAll(() => {
    for (const d of made.splice(0)) rmSync(d, { recursive: true, force: true });
  });
  return () => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    made.push(d);
    return d;
  };
}
