import type Database from "better-sqlite3";

/**
 * One numbered step of a database's schema. Steps are never edited once released: a change is a
 * new step. The first step of each database creates its tables with IF NOT EXISTS, so a file
 * written before schemas were numbered (user_version 0) is adopted as it is.
 */
export interface Migration {
  version: number;
  name: string;
  up: (db: Database.Database) => void;
}

export class SchemaTooNewError extends Error {
  constructor(what: string, found: number, known: number) {
    super(
      `${what} has schema version ${found}, newer than this Optimus knows (${known}): it was written by a newer version; upgrade Optimus rather than open it with this one`,
    );
    this.name = "SchemaTooNewError";
  }
}

/**
 * Brings a database to the newest schema: each pending step in its own transaction with the
 * version it reaches (`PRAGMA user_version`), so a crash mid-way resumes at the step that did not
 * finish. A file from a newer version is refused, never downgraded.
 */
export function migrate(db: Database.Database, what: string, steps: readonly Migration[]): { from: number; to: number } {
  const latest = steps[steps.length - 1]?.version ?? 0;
  steps.forEach((s, i) => {
    if (s.version !== i + 1) throw new Error(`${what}: migration ${s.name} is numbered ${s.version}, expected ${i + 1}`);
  });
  const from = db.pragma("user_version", { simple: true }) as number;
  if (from > latest) throw new SchemaTooNewError(what, from, latest);
  for (const step of steps.slice(from)) {
    db.transaction(() => {
      step.up(db);
      db.pragma(`user_version = ${step.version}`);
    }).immediate();
  }
  return { from, to: latest };
}

const hasColumn = (db: Database.Database, table: string, column: string) =>
  (db.prepare(`PRAGMA table_info(${table})`).all() as Array<{ name: string }>).some((c) => c.name === column);

/** The journal's database (events, the leader row, snapshots). */
export const JOURNAL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "events, leader, snapshots",
    up: (db) =>
      db.exec(`
        CREATE TABLE IF NOT EXISTS events (
          seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, epoch INTEGER NOT NULL, actor TEXT NOT NULL,
          type TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL, pid INTEGER, since INTEGER);
        CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, state TEXT NOT NULL, created_at INTEGER NOT NULL);`),
  },
  {
    version: 2,
    name: "archived tasks by id and by creation order",
    // Partial indexes over the archive's own events only; queries repeat these exact expressions.
    up: (db) =>
      db.exec(`
        CREATE INDEX IF NOT EXISTS events_archived_task ON events (json_extract(data, '$.taskId')) WHERE type = 'task_archived';
        CREATE INDEX IF NOT EXISTS events_archived_order ON events (json_extract(data, '$.order')) WHERE type = 'task_archived';`),
  },
  {
    version: 3,
    name: "event format version",
    // Every event written before formats were numbered is format 1 (not covered by the hash: the
    // chain of existing journals stays valid).
    up: (db) => {
      if (!hasColumn(db, "events", "v")) db.exec("ALTER TABLE events ADD COLUMN v INTEGER NOT NULL DEFAULT 1");
    },
  },
];

/** The token database (kept apart from the journal: losing the journal must not lock everyone out). */
export const TOKEN_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "tokens",
    up: (db) =>
      db.exec(`CREATE TABLE IF NOT EXISTS tokens (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash BLOB NOT NULL,
        created_at INTEGER NOT NULL, revoked_at INTEGER)`),
  },
  {
    version: 2,
    name: "the approver right",
    up: (db) => {
      if (!hasColumn(db, "tokens", "approver")) db.exec("ALTER TABLE tokens ADD COLUMN approver INTEGER NOT NULL DEFAULT 0");
    },
  },
  {
    version: 3,
    name: "token expiry",
    up: (db) => {
      if (!hasColumn(db, "tokens", "expires_at")) db.exec("ALTER TABLE tokens ADD COLUMN expires_at INTEGER");
      if (!hasColumn(db, "tokens", "ttl_ms")) db.exec("ALTER TABLE tokens ADD COLUMN ttl_ms INTEGER");
      // Worker tokens issued before expiry existed get the default ttl (a day, written out here: a
      // released step never changes) counted from the upgrade, not from their creation: none dies
      // at the first start of the new version, a worker that keeps running renews its token as it
      // works, and one nobody uses any more stops working a day later (ADR 0023).
      db.prepare("UPDATE tokens SET ttl_ms = ?, expires_at = ? WHERE role = 'worker' AND ttl_ms IS NULL").run(
        86_400_000,
        Date.now() + 86_400_000,
      );
    },
  },
];
