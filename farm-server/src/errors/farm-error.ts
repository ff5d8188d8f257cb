/** Domain errors: the API maps each kind to a status code; the message is for the user as is. */
export type FarmErrorKind = "not_found" | "conflict" | "forbidden" | "invalid" | "lease_lost" | "unavailable";

export class FarmError extends Error {
  constructor(
    readonly kind: FarmErrorKind,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "FarmError";
  }
}

/**
 * A person's decision named a version of a change that is no longer the current one. The API sends
 * `stale` (the current attempt and head commit) as `error.data.stale`, so the editor can offer it.
 */
export class StaleChangeError extends FarmError {
  constructor(
    readonly stale: { attempt: number; head: string },
    seen: { attempt: number; head: string },
  ) {
    super(
      "conflict",
      `this change was updated to attempt ${stale.attempt} since you opened it (you reviewed ${seen.attempt !== stale.attempt ? `attempt ${seen.attempt}` : `commit ${seen.head.slice(0, 10)}`})`,
    );
    this.name = "StaleChangeError";
  }
}

export const notFound = (what: string) => new FarmError("not_found", `${what} not found`);
