import { randomBytes } from "node:crypto";
import pg from "pg";

/**
 * The PostgreSQL the tests use: this machine's server (`.ci/run` and `npm run test:setup` start it
 * and create the database). Each test takes a schema of its own and drops it when it ends, so tests
 * never see each other's tables.
 */
export const TEST_PG_URL = process.env.OPTIMUS_TEST_PG_URL ?? "postgres://optimus_test:optimus_test@127.0.0.1:5432/optimus_test";

export async function freshSchema(t: { after(fn: () => Promise<void> | void): void }, prefix = "t"): Promise<string> {
  const schema = `${prefix}_${randomBytes(6).toString("hex")}`;
  t.after(async () => {
    const c = new pg.Client({ connectionString: TEST_PG_URL });
    await c.connect();
    try {
      // Never a hang at the end of a test: a farm node still running (or paused) may hold a lock.
      await c.query("SET lock_timeout = 20000");
      await c
        .query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
        .catch((err: Error) => console.warn(`schema ${schema} left: ${err.message}`));
    } finally {
      await c.end();
    }
  });
  return schema;
}

/** Runs one statement on the test database outside the farm (to tamper with or inspect what the farm wrote). */
export async function pgQuery<R = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<R[]> {
  const c = new pg.Client({ connectionString: TEST_PG_URL });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows as R[];
  } finally {
    await c.end();
  }
}
