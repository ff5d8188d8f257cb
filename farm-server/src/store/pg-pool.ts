import pg from "pg";

/** int8 as a JS number: sequence numbers and epoch milliseconds stay far below 2^53. */
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === pg.types.builtins.INT8 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
};

/**
 * The farm's connections to its PostgreSQL. The password comes from the URL (resolved through the
 * secrets layer by the caller), PGPASSWORD or ~/.pgpass — never from a file in the repository.
 * Errors of idle connections (the server restarted) are reported, not thrown: the next query reconnects.
 * A farm node's own pool passes `stallMs` (see `stallMsOf`).
 */
export function openPgPool(url: string, onIdleError?: (err: Error) => void, max = 4, stallMs?: number): pg.Pool {
  const pool = new pg.Pool({
    connectionString: url,
    max,
    types,
    connectionTimeoutMillis: 10_000,
    application_name: "optimus-farm",
    // A node paused or stalled inside a transaction (mid-commit: it holds the leader row shared)
    // would keep every other node from taking over for as long as it sleeps; the server ends such a
    // session after `stallMs`, its locks go with it, and whatever it sends on waking is refused.
    ...(stallMs ? { idle_in_transaction_session_timeout: stallMs } : {}),
  });
  pool.on("error", (err) => onIdleError?.(err));
  // A connection the server ends while it is checked out (a session stalled in a transaction, a
  // restart) emits 'error' on its client: heard here, so it fails the query in flight, not the process.
  pool.on("connect", (client) => client.on("error", (err) => onIdleError?.(err)));
  return pool;
}

/** A connection string with its password masked, for messages and logs. */
export function redactPgUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(a PostgreSQL URL that does not parse)";
  }
}

/** How long a farm node's session may sit idle inside a transaction: half a lease (a healthy commit takes milliseconds). */
export const stallMsOf = (leaseMs: number): number => Math.max(250, Math.floor(leaseMs / 2));
