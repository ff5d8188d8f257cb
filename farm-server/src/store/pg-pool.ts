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
 */
export function openPgPool(url: string, onIdleError?: (err: Error) => void, max = 4): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max, types, connectionTimeoutMillis: 10_000, application_name: "optimus-farm" });
  pool.on("error", (err) => onIdleError?.(err));
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
