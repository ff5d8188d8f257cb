import { TRPCClientError } from "@trpc/client";
import { trustErrorIn } from "../client/farm-trust.js";

/**
 * The CLI's exit codes, one meaning each, so a script can tell them apart (README "Exit codes",
 * `optimus --help`): 1 any other failure (the farm unreachable, an eval broke, a merge still held).
 */
export const EXIT = { ok: 0, failure: 1, usage: 2, notFound: 3, refused: 4 } as const;

/** The `optimus --help` footer: the exit codes, as the README's table says them. */
export const EXIT_CODES_HELP = `Exit codes:
  0  ok
  1  failure (the farm unreachable, a check or merge that failed, anything else)
  2  usage or bad input (an unknown option, an invalid value or manifest, an ambiguous id prefix)
  3  not found (no task, unit, attempt or token with that id)
  4  refused or conflict (a wrong token or role, an action the unit's state does not allow, a stale decision)`;

/** A failure the user can act on: printed as one line, exit code 1 (see `EXIT` for the others). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.failure,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** One clear line for any error: what went wrong and, where we know, how to fix it. */
export function describeError(err: unknown, farmUrl?: string): string {
  if (err instanceof CliError) return err.message;
  // A refused certificate (or http:// to a TLS farm): its own line says which farm, what and why.
  const trust = trustErrorIn(err);
  if (trust) return trust.message;
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
  // better-sqlite3 unbuilt: a worker-only node installed with --ignore-scripts (README "Installing a worker node")
  const unbuilt = /^Could not locate the bindings file\. Tried:\s+→ (\S+?)\/node_modules\/better-sqlite3\//.exec(e?.message ?? "");
  if (unbuilt)
    return `the SQLite binding (better-sqlite3) is not built here, as on a node installed with --ignore-scripts for workers only: run \`npm rebuild better-sqlite3\` in ${unbuilt[1]} (it needs python3, make and g++), or install again without --ignore-scripts`;
  return e?.message ?? String(err);
}

/** The farm's answer codes, as exit codes: bad input 2, not found 3, refused or conflict 4. */
const EXIT_OF_CODE: Record<string, number> = {
  BAD_REQUEST: EXIT.usage,
  PAYLOAD_TOO_LARGE: EXIT.usage,
  NOT_FOUND: EXIT.notFound,
  UNAUTHORIZED: EXIT.refused,
  FORBIDDEN: EXIT.refused,
  CONFLICT: EXIT.refused,
};

/** The exit code for a failure: the CLI's own choice, else from the farm's answer, else 1. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliError) return err.exitCode;
  if (err instanceof TRPCClientError) {
    const code = (err.data as { code?: string } | undefined)?.code;
    return (code && EXIT_OF_CODE[code]) || EXIT.failure;
  }
  const own = (err as { exitCode?: unknown } | undefined)?.exitCode;
  return typeof own === "number" ? own : EXIT.failure;
}
