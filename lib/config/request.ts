/**
 * The control API's requests checked by the configuration schema itself:
 * `POST /v1/peers` (a peer added at run time gets exactly the keys, checks
 * and defaults of a peer in the file: resolve.ts's resolvePeer) and
 * `POST /v1/advertise` (the attributes of a file `advertise` entry). Errors
 * are ConfigErrors whose issues have no file and no line, only the key:
 * `remoteAs: expected an AS number 1..4294967295, got "abc"`.
 */
import type { z } from "zod";
import { ConfigError, type ConfigIssue, type PathSegment } from "./reader.ts";
import { resolveRequestPeer } from "./resolve.ts";
import { AdvertiseRequestSchema, RequestPeerSchema, WithdrawRequestSchema } from "./schema.ts";
import type { AdvertiseConfig, PeerConfig } from "./types.ts";
import { Findings, type PathIssue, placeIssue, walk } from "./walk.ts";

/** Whether `path` leads to a value inside `body` (issues below a scalar are shown at the scalar). */
function exists(body: unknown, path: PathSegment[]): boolean {
  let v = body;
  for (const seg of path) {
    if (typeof v !== "object" || v === null || !Object.hasOwn(v, seg)) return false;
    v = (v as Record<PathSegment, unknown>)[seg];
  }
  return true;
}

/** A request's issues as ConfigIssues without position; a missing key reads "required", an unknown one "unknown field". */
function throwIfIssues(body: unknown, issues: readonly PathIssue[]): void {
  if (!issues.length) return;
  const out: ConfigIssue[] = issues.map((i) => {
    const { shown } = placeIssue(i, (p) => exists(body, p));
    const message = i.kind?.key === "missing" ? `required${i.kind.detail}` : i.kind?.key === "unknown" ? `unknown field${i.kind.detail}` : i.message;
    return { file: "", line: 0, column: 0, path: shown, message };
  });
  throw new ConfigError(out);
}

/** The body of `POST /v1/peers` checked against the schema (keys, types, ranges), unchanged: what the control socket passes on. */
export function checkPeerRequest(body: unknown): z.input<typeof RequestPeerSchema> {
  const f = new Findings();
  walk(RequestPeerSchema, body, [], f);
  throwIfIssues(body, f.issues);
  return body as z.input<typeof RequestPeerSchema>;
}

/**
 * The peer of a `POST /v1/peers` body, built from the same schema and
 * defaults as a peer of the file: every peer key but `group` and
 * `passwordFile`; unknown keys rejected with a did-you-mean; import/export
 * may name only `policies` (or all/none); the cross-checks of the file
 * (keepalive < holdTime, routeReflectorClient only for iBGP, localAddress of
 * the peer's family). localAs defaults to `asn`. Throws ConfigError.
 */
export function peerFromRequest(body: unknown, ctx: Parameters<typeof resolveRequestPeer>[1]): PeerConfig {
  const f = new Findings();
  const value = walk(RequestPeerSchema, body, [], f);
  const peer = resolveRequestPeer(value, ctx, { f, line: () => 0 });
  throwIfIssues(body, f.issues);
  return peer!;
}

/**
 * The advertisements of a `POST /v1/advertise` body: one per prefix, each key
 * checked as in a file advertisement. (One request may carry prefixes of both
 * families with one next hop, so the file's "next hop of the prefix's family"
 * rule is not applied here.) Throws ConfigError.
 */
export function advertiseFromRequest(body: unknown): AdvertiseConfig[] {
  const f = new Findings();
  const value = walk(AdvertiseRequestSchema, body, [], f) as z.output<typeof AdvertiseRequestSchema>;
  throwIfIssues(body, f.issues);
  const { prefixes, ...attributes } = value;
  return prefixes.map((prefix) => ({ prefix, ...attributes }));
}

/** The prefixes of a `POST /v1/withdraw` body, in canonical form. Throws ConfigError. */
export function withdrawFromRequest(body: unknown): string[] {
  const f = new Findings();
  const value = walk(WithdrawRequestSchema, body, [], f) as z.output<typeof WithdrawRequestSchema>;
  throwIfIssues(body, f.issues);
  return value.prefixes;
}

/** The lines of a request's ConfigError, `PATH: message` each, without a file prefix. */
export function requestErrorText(e: ConfigError): string {
  return e.issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("\n");
}
