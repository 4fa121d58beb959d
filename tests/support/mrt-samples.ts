/**
 * The vendored MRT sample dumps (tests/testdata/mrt, Apache-2.0 data from the
 * mrtparse project; origin and licence in that folder's README.md): their
 * names, their directory resolved from this file (never the cwd, never
 * ../shared), and `loadMrtSample`, which fails loudly when a file is missing
 * or differs from the vendored bytes (SHA-256) instead of letting a test or
 * a seed corpus shrink silently.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** tests/testdata/mrt, next to tests/support. */
export const MRT_SAMPLE_DIR = join(import.meta.dir, "..", "testdata", "mrt");

/** Every vendored dump with the SHA-256 of its bytes as copied from mrtparse/samples. */
export const MRT_SAMPLE_SHA256 = {
  bird_bgp: "a7edd864d34aa52f5c12ed69c14428194766d07112779fdaef7c5b276c1a61dd",
  bird6_bgp: "ebf487ee24f8b6b9b51570a3f0be2a29955fa974dd5ce6a3d0ba042585f15966",
  "bird-mrtdump_bgp": "e0bab6798c6c6dc5fd911a5c0dcbc456b553b11dcaa73462b06da2ffa9392d6b",
  "bird6-mrtdump_bgp": "35e1d08d9ce8cea1648e94804333a0e99b33c27e8d6c056eee06747adc096688",
  "bird-mrtdump_rib": "9343c8a46a5fb439fb66c546efc9fa22e1a233bb50c27c3189dd849927388bf1",
  "bird6-mrtdump_rib": "1ea9387843605cb6966867fac8f2ae9164fad6bd05631114e49c012ce035ce72",
} as const;

export type MrtSampleName = keyof typeof MRT_SAMPLE_SHA256;

export const MRT_SAMPLES = Object.keys(MRT_SAMPLE_SHA256) as MrtSampleName[];

/** Absolute path of a vendored dump. */
export function mrtSamplePath(name: MrtSampleName): string {
  return join(MRT_SAMPLE_DIR, name);
}

/** The bytes of a vendored dump; throws naming the file when it is missing or altered. */
export function loadMrtSample(name: MrtSampleName): Uint8Array {
  const path = mrtSamplePath(name);
  if (!existsSync(path)) {
    throw new Error(`vendored MRT sample missing: ${path} (tests/testdata/mrt must hold all of ${MRT_SAMPLES.join(", ")})`);
  }
  const bytes = new Uint8Array(readFileSync(path));
  const sum = createHash("sha256").update(bytes).digest("hex");
  if (sum !== MRT_SAMPLE_SHA256[name]) {
    throw new Error(`vendored MRT sample altered: ${path} has SHA-256 ${sum}, expected ${MRT_SAMPLE_SHA256[name]} (the samples are data: do not edit them)`);
  }
  return bytes;
}
