import { TRPCClientError } from "@trpc/client";

/** A failure the user can act on: printed as one line, exit code 1 (2 for usage errors). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** One clear line for any error: what went wrong and, where we know, how to fix it. */
export function describeError(err: unknown, farmUrl?: string): string {
  if (err instanceof CliError) return err.message;
  if (err instanceof TRPCClientError) {
    const code = (err.data as { code?: string } | undefined)?.code;
    const fields = (err.data as { fieldErrors?: Record<string, string[]> } | undefined)?.fieldErrors;
    if (code === "UNAUTHORIZED") return `the farm rejected the token (401): ${err.message}`;
    if (code === "FORBIDDEN") return `not allowed (403): ${err.message}`;
    if (code === "NOT_FOUND") return `${err.message} (404)`;
    if (code === "PAYLOAD_TOO_LARGE") return `the request is too large for the farm (413): ${err.message}`;
    if (code === "BAD_REQUEST")
      return fields && Object.keys(fields).length
        ? `invalid input (400): ${Object.entries(fields)
            .map(([k, v]) => `${k}: ${v?.join(", ")}`)
            .join("; ")}`
        : `invalid input (400): ${err.message}`;
    const stale = (err.data as { stale?: { attempt: number } } | undefined)?.stale;
    if (stale) return `${err.message}; look at attempt ${stale.attempt} and decide again (409)`;
    if (code) return `${err.message} (${code})`;
    const cause = (err.cause as { code?: string; message?: string } | undefined) ?? {};
    const why = /ECONNREFUSED|fetch failed/.test(`${cause.code ?? ""} ${cause.message ?? ""} ${err.message}`)
      ? "connection refused"
      : err.message;
    return `cannot reach the farm at ${farmUrl ?? "its URL"} (${why}); start it with \`optimus farm up\` or pass --farm`;
  }
  const e = err as NodeJS.ErrnoException;
  if (e?.code === "ENOENT" && e.path) return `no such file: ${e.path}`;
  return e?.message ?? String(err);
}
