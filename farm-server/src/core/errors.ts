/** Domain errors: the API maps each kind to a status code; the message is for the user as is. */
export type FarmErrorKind = "not_found" | "conflict" | "forbidden" | "invalid" | "lease_lost" | "unavailable";

export class FarmError extends Error {
  constructor(readonly kind: FarmErrorKind, message: string, readonly details?: Record<string, unknown>) {
    super(message);
    this.name = "FarmError";
  }
}

export const notFound = (what: string) => new FarmError("not_found", `${what} not found`);
