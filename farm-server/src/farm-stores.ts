import { hostname } from "node:os";
import { join } from "node:path";
import type { ServerConfig, StoreConfig } from "@optimus/shared";
import type pg from "pg";
import { PgTokenStore } from "./auth/pg-tokens.js";
import { SqliteTokenStore } from "./auth/sqlite-tokens.js";
import type { TokenStore } from "./auth/tokens.js";
import { FarmError } from "./errors/farm-error.js";
import { FileEscalationStore, type EscalationStore } from "./gateway/escalation-store.js";
import { PgEscalationStore } from "./gateway/pg-escalation-store.js";
import type { SecretResolver } from "./secrets/index.js";
import type { Journal } from "./store/journal.js";
import { openPgPool, redactPgUrl, stallMsOf } from "./store/pg-pool.js";
import { PostgresJournal } from "./store/postgres-journal.js";
import { LeaderLease } from "./store/leader-lease.js";
import { SqliteJournal } from "./store/sqlite-journal.js";

/** The farm's durable state: its journal, its tokens and its escalation bodies, in one kind of store. */
export interface FarmStores {
  kind: StoreConfig["kind"];
  journal: Journal;
  tokens: TokenStore;
  escalations: EscalationStore;
  /** where they are, for the start-up line (no password) */
  where: string;
  /** PostgreSQL: the lead this node holds among the farm nodes sharing the store (taken when the journal opens) */
  lease?: LeaderLease;
  close(): Promise<void>;
}

/** The connection string with its password from the secrets layer (the config holds only references). */
async function pgUrl(store: Extract<StoreConfig, { kind: "postgres" }>, secrets: SecretResolver): Promise<string> {
  const url = store.url.startsWith("secrets-manager://") ? await secrets.resolve(store.url) : store.url;
  if (!store.password) return url;
  const u = new URL(url);
  u.password = await secrets.resolve(store.password);
  return u.toString();
}

export async function openFarmStores(
  config: ServerConfig,
  stateDir: string,
  journalFile: string,
  secrets: SecretResolver,
  onPoolError: (err: Error) => void,
): Promise<FarmStores> {
  const store = config.store;
  if (store.kind === "sqlite") {
    const journal = new SqliteJournal(journalFile);
    const tokens = new SqliteTokenStore(join(stateDir, "tokens.db"));
    return {
      kind: "sqlite",
      journal,
      tokens,
      escalations: new FileEscalationStore(join(stateDir, "escalations")),
      where: journalFile,
      close: async () => {
        await journal.close();
        tokens.close();
      },
    };
  }
  const url = await pgUrl(store, secrets);
  const where = `${redactPgUrl(url)} (schema ${store.schema})`;
  let pool: pg.Pool | undefined;
  try {
    pool = openPgPool(url, onPoolError, 4, stallMsOf(store.leaseMs));
    const lease = new LeaderLease(pool, store.schema, nodeIdOf(stateDir), store.leaseMs);
    const journal = new PostgresJournal(pool, store.schema, lease);
    // The schema first (tokens are read from it before the journal is opened).
    await journal.migrate();
    const tokens = await new PgTokenStore(pool, store.schema).load();
    const p = pool;
    return {
      kind: "postgres",
      journal,
      tokens,
      escalations: new PgEscalationStore(pool, store.schema),
      where,
      lease,
      close: () => p.end(),
    };
  } catch (err) {
    await pool?.end().catch(() => undefined);
    if ((err as Error).name === "SchemaTooNewError") throw new FarmError("invalid", (err as Error).message);
    throw new FarmError("unavailable", `the farm's PostgreSQL ${where} cannot be used: ${(err as Error).message}`);
  }
}

/** A farm node among those sharing a store: its host and its state folder (one farm per home on a host). */
export const nodeIdOf = (stateDir: string): string => `${hostname()}:${stateDir}`;

/**
 * A standby's view of the lead: the same lease, read without taking it (no migration, no journal),
 * to learn who leads and when the lease runs out.
 */
export async function watchLead(
  store: Extract<StoreConfig, { kind: "postgres" }>,
  stateDir: string,
  secrets: SecretResolver,
  onPoolError: (err: Error) => void,
): Promise<{ lease: LeaderLease; where: string; close: () => Promise<void> }> {
  const url = await pgUrl(store, secrets);
  const where = `${redactPgUrl(url)} (schema ${store.schema})`;
  const pool = openPgPool(url, onPoolError, 2);
  return { lease: new LeaderLease(pool, store.schema, nodeIdOf(stateDir), store.leaseMs), where, close: () => pool.end() };
}

/** Walks a PostgreSQL journal's chain without taking the lead (beside a running farm, from any node). */
export async function verifyPgJournal(
  store: Extract<StoreConfig, { kind: "postgres" }>,
  secrets: SecretResolver,
  onProgress?: (checked: number) => void,
): Promise<Awaited<ReturnType<PostgresJournal["verify"]>> & { where: string }> {
  const url = await pgUrl(store, secrets);
  const where = `${redactPgUrl(url)} (schema ${store.schema})`;
  const pool = openPgPool(url, undefined, 1);
  try {
    return { ...(await new PostgresJournal(pool, store.schema).verify(onProgress)), where };
  } catch (err) {
    throw new FarmError("unavailable", `the farm's PostgreSQL ${where} cannot be read: ${(err as Error).message}`);
  } finally {
    await pool.end();
  }
}
