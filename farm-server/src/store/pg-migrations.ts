import type pg from "pg";
import { SchemaTooNewError } from "./migrations.js";

/** A schema name as PostgreSQL reads an unquoted identifier: safe to splice into SQL once quoted. */
export const PG_SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export const quoteIdent = (name: string): string => {
  if (!PG_SCHEMA_NAME.test(name)) throw new Error(`bad PostgreSQL schema name ${JSON.stringify(name)}: lower-case letters, digits and _`);
  return `"${name}"`;
};

/** One numbered step of the farm's PostgreSQL schema; like the SQLite steps, never edited once released. */
export interface PgMigration {
  version: number;
  name: string;
  /** SQL run in the step's transaction; `$S` stands for the quoted schema */
  sql: string;
}

/**
 * The farm's tables in PostgreSQL: the journal (events, the leader row, snapshots), tokens and
 * escalation bodies — everything a second farm node needs to take over. Event data is kept as the
 * exact JSON text its hash covers (jsonb would reorder keys); the columns beside it (task, unit,
 * archive order) are what the history and archive queries look up by.
 */
export const PG_MIGRATIONS: readonly PgMigration[] = [
  {
    version: 1,
    name: "events, leader, snapshots, tokens, escalations",
    sql: `
      CREATE TABLE $S.events (
        seq bigint PRIMARY KEY, ts bigint NOT NULL, epoch integer NOT NULL, actor text NOT NULL,
        type text NOT NULL, data text NOT NULL, prev_hash text NOT NULL, hash text NOT NULL, v integer NOT NULL,
        task_id text, unit_id text, review_unit_id text, archive_order double precision);
      CREATE INDEX events_task ON $S.events (task_id, seq) WHERE task_id IS NOT NULL;
      CREATE INDEX events_archived_task ON $S.events (task_id) WHERE type = 'task_archived';
      CREATE INDEX events_archived_order ON $S.events (archive_order) WHERE type = 'task_archived';
      CREATE TABLE $S.leader (
        id integer PRIMARY KEY CHECK (id = 1), epoch integer NOT NULL, holder text, url text,
        since bigint, renewed_at bigint, lease_until bigint);
      CREATE TABLE $S.snapshots (seq bigint PRIMARY KEY, state text NOT NULL, created_at bigint NOT NULL);
      CREATE TABLE $S.tokens (
        id text PRIMARY KEY, name text NOT NULL, role text NOT NULL, hash bytea NOT NULL,
        created_at bigint NOT NULL, revoked_at bigint, approver boolean NOT NULL DEFAULT false);
      CREATE TABLE $S.escalation_bodies (
        request_id text NOT NULL, kind text NOT NULL CHECK (kind IN ('call', 'answer')), body text NOT NULL,
        PRIMARY KEY (request_id, kind));`,
  },
  {
    version: 2,
    name: "token expiry",
    // As in the SQLite token database: worker tokens issued before expiry existed get the default
    // ttl (a day) counted from the upgrade, so none dies at the first start of the new version and
    // one nobody uses any more stops working a day later (ADR 0023).
    sql: `
      ALTER TABLE $S.tokens ADD COLUMN expires_at bigint, ADD COLUMN ttl_ms bigint;
      UPDATE $S.tokens SET ttl_ms = 86400000, expires_at = (extract(epoch from clock_timestamp()) * 1000)::bigint + 86400000
        WHERE role = 'worker';`,
  },
];

/**
 * Brings the schema to the newest version: every pending step and the versions it records in one
 * transaction (PostgreSQL's DDL is transactional, so a crash leaves the schema as it was), under an
 * advisory lock so two farm nodes starting together migrate once. A schema written by a newer
 * version is refused, never downgraded.
 */
export async function migratePg(
  pool: pg.Pool,
  schema: string,
  steps: readonly PgMigration[] = PG_MIGRATIONS,
): Promise<{ from: number; to: number }> {
  const S = quoteIdent(schema);
  const latest = steps[steps.length - 1]?.version ?? 0;
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    // One lock per schema, held to the end of this transaction (hashtext: a stable 32-bit key).
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`optimus-migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${S}`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS ${S}.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`,
    );
    const from = Number((await client.query(`SELECT coalesce(max(version), 0) AS v FROM ${S}.schema_migrations`)).rows[0].v);
    if (from > latest) throw new SchemaTooNewError(`the PostgreSQL schema ${schema}`, from, latest);
    for (const step of steps.slice(from)) {
      await client.query("SAVEPOINT step");
      await client.query(step.sql.replaceAll("$S", S));
      await client.query(`INSERT INTO ${S}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, [
        step.version,
        step.name,
        Date.now(),
      ]);
      await client.query("RELEASE SAVEPOINT step");
    }
    await client.query("COMMIT");
    return { from, to: latest };
  } catch (err) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}
