/**
 * Errors the daemon's operations throw when a request cannot be carried out:
 * invalid input, something that does not exist, or a conflict with the
 * running state. Transport-neutral: the control API (lib/api/server.ts)
 * turns them into HTTP statuses, the K8s controller into log lines.
 */

export type RouterErrorKind = "invalid" | "not-found" | "conflict";

export class RouterError extends Error {
  override readonly name = "RouterError";
  constructor(
    readonly kind: RouterErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export function invalid(message: string): never {
  throw new RouterError("invalid", message);
}

export function notFound(message: string): never {
  throw new RouterError("not-found", message);
}

export function conflict(message: string): never {
  throw new RouterError("conflict", message);
}
