// The farm server's public surface: what the tests, the worker agent and (as types only) the
// editor extension use.
export { startFarm, journalPathOf, stateDirOf, type Farm, type FarmOptions } from "./farm.js";
export { createFarmClient, errorCode, isFinalError, wsUrlOf, type FarmClient } from "./client/farm-client.js";
export { FarmTrustError, parsePins, readCaFile, trustErrorIn, type FarmTrust } from "./client/farm-trust.js";
export { WorkerAgent, type ExecuteUnit, type LeaseContext, type WorkerAgentOptions } from "./worker/worker-agent.js";
export type { AppRouter } from "./api/router.js";
export type { Lease, LeaseRef } from "./core/lease-commands.js";
export { SqliteJournal, verifyJournalFile, openFarmDatabase } from "./store/sqlite-journal.js";
export { FencedError, GENESIS_HASH, eventHash, type Journal } from "./store/journal.js";
export { PostgresJournal } from "./store/postgres-journal.js";
export { LeaderLease, NotLeaderError } from "./store/leader-lease.js";
export { openPgPool } from "./store/pg-pool.js";
export { migratePg, PG_MIGRATIONS } from "./store/pg-migrations.js";
export { Projection } from "./store/projection.js";
export { SNAPSHOT_FORMAT } from "./store/projection.js";
export { EVENT_FORMAT } from "./store/event-format.js";
export { FarmState } from "./core/farm-state.js";
export { SqliteTokenStore } from "./auth/sqlite-tokens.js";
export { PgTokenStore } from "./auth/pg-tokens.js";
export type { TokenStore } from "./auth/tokens.js";
export { cloneDirFor, filesDirFor, repoSlot } from "./home/farm-home.js";
export { RefSession } from "./git/ref-session.js";
