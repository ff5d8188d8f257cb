import Database from "better-sqlite3";
import type { ArchivedTask, EventBody, FarmEvent } from "@optimus/shared";
import {
  ChainCheck,
  ChainTail,
  storedToEvent as toEvent,
  FencedError,
  type Journal,
  type Snapshot,
  type StoredEvent,
  type VerifyResult,
} from "./journal.js";
import { JOURNAL_MIGRATIONS, migrate } from "./migrations.js";

type Row = StoredEvent;

/** Opens a farm database with the settings every part of it relies on. */
export function openFarmDatabase(file: string): Database.Database {
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  // FULL: a commit is on disk (WAL fsynced) before the farm acknowledges it.
  db.pragma("synchronous = FULL");
  db.pragma("busy_timeout = 5000");
  migrate(db, `the journal ${file}`, JOURNAL_MIGRATIONS);
  return db;
}

/** The embedded journal: SQLite in WAL mode with synchronous commits. */
export class SqliteJournal implements Journal {
  private readonly db: Database.Database;
  private _epoch = 0;
  private readonly tail = new ChainTail();
  private committedSeq = 0;
  private readonly insert;
  private readonly readEpoch;

  constructor(file: string, db?: Database.Database) {
    this.db = db ?? openFarmDatabase(file);
    this.insert = this.db.prepare(
      "INSERT INTO events (seq, ts, epoch, actor, type, data, prev_hash, hash, v) VALUES (@seq, @ts, @epoch, @actor, @type, @data, @prev_hash, @hash, @v)",
    );
    this.readEpoch = this.db.prepare("SELECT epoch FROM leader WHERE id = 1").pluck();
  }

  get epoch(): number {
    return this._epoch;
  }

  async open(): Promise<{ epoch: number; lastSeq: number }> {
    const take = this.db.transaction(() => {
      const prev = (this.readEpoch.get() as number | undefined) ?? 0;
      const maxEventEpoch = (this.db.prepare("SELECT max(epoch) FROM events").pluck().get() as number | null) ?? 0;
      const epoch = Math.max(prev, maxEventEpoch) + 1;
      this.db
        .prepare(
          "INSERT INTO leader (id, epoch, pid, since) VALUES (1, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET epoch = excluded.epoch, pid = excluded.pid, since = excluded.since",
        )
        .run(epoch, process.pid, Date.now());
      return epoch;
    });
    this._epoch = take.immediate();
    const last = this.db.prepare("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").get() as
      { seq: number; hash: string } | undefined;
    this.tail.resume(last);
    this.committedSeq = last?.seq ?? 0;
    return { epoch: this._epoch, lastSeq: this.committedSeq };
  }

  stage(body: EventBody, actor: string, ts = Date.now()): FarmEvent {
    return this.tail.stage(body, actor, this._epoch, ts);
  }

  async flush(): Promise<number> {
    const rows = this.tail.take();
    if (rows.length === 0) return this.committedSeq;
    const write = this.db.transaction(() => {
      // Fencing: a newer leader bumped the epoch; our staged events must never land.
      const current = this.readEpoch.get() as number;
      if (current !== this._epoch) throw new FencedError(this._epoch, current);
      for (const r of rows) this.insert.run(r);
    });
    write.immediate();
    this.committedSeq = rows[rows.length - 1]!.seq;
    return this.committedSeq;
  }

  lastCommittedSeq(): number {
    return this.committedSeq;
  }

  async readAfter(seq: number, limit: number): Promise<FarmEvent[]> {
    const rows = this.db.prepare("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?").all(seq, limit) as Row[];
    return rows.map(toEvent);
  }

  async readForTask(taskId: string, unitId: string | undefined, limit: number): Promise<FarmEvent[]> {
    // A scan with json_extract: history is read when a person opens a unit, not on any hot path.
    const rows = this.db
      .prepare(
        `SELECT * FROM events WHERE seq <= ? AND json_extract(data, '$.taskId') = ?
           AND (? IS NULL OR json_extract(data, '$.unitId') = ? OR json_extract(data, '$.reviewUnitId') = ?)
         ORDER BY seq DESC LIMIT ?`,
      )
      .all(this.committedSeq, taskId, unitId ?? null, unitId ?? null, unitId ?? null, limit) as Row[];
    return rows.reverse().map(toEvent);
  }

  /** an archived task's event data by id (one statement, prepared once: restarts ask it per manifest) */
  private archived?: Database.Statement<[string], string>;
  private archivedData(taskId: string): string | undefined {
    this.archived ??= this.db
      .prepare<[string], string>("SELECT data FROM events WHERE type = 'task_archived' AND json_extract(data, '$.taskId') = ?")
      .pluck();
    return this.archived.get(taskId);
  }

  async isArchived(taskId: string): Promise<boolean> {
    return this.archivedData(taskId) !== undefined;
  }

  async archivedTask(taskId: string): Promise<ArchivedTask | null> {
    const data = this.archivedData(taskId);
    return data ? (JSON.parse(data) as ArchivedTask) : null;
  }

  async archivedTaskIds(prefix: string, limit: number): Promise<string[]> {
    // A range on the archive's id index: every id starting with the prefix sorts between it and the
    // prefix followed by U+FFFF (ids are ASCII; SQLite compares text bytewise).
    return this.db
      .prepare(
        "SELECT json_extract(data, '$.taskId') FROM events WHERE type = 'task_archived' AND json_extract(data, '$.taskId') >= ? AND json_extract(data, '$.taskId') < ? ORDER BY 1 LIMIT ?",
      )
      .pluck()
      .all(prefix, `${prefix}\uffff`, limit) as string[];
  }

  async archivedPage(before: number, limit: number): Promise<{ tasks: ArchivedTask[]; total: number }> {
    const rows = this.db
      .prepare(
        "SELECT data FROM events WHERE type = 'task_archived' AND json_extract(data, '$.order') < ? ORDER BY json_extract(data, '$.order') DESC LIMIT ?",
      )
      .pluck()
      .all(before, limit) as string[];
    const total = this.db
      .prepare("SELECT count(*) FROM events WHERE type = 'task_archived' AND json_extract(data, '$.order') < ?")
      .pluck()
      .get(before) as number;
    return { tasks: rows.map((d) => JSON.parse(d) as ArchivedTask), total };
  }

  async saveSnapshot(s: Snapshot): Promise<void> {
    this.db.transaction(() => {
      this.db
        .prepare("INSERT OR REPLACE INTO snapshots (seq, state, created_at) VALUES (?, ?, ?)")
        .run(s.seq, JSON.stringify(s.state), Date.now());
      this.db.prepare("DELETE FROM snapshots WHERE seq < ?").run(s.seq);
    })();
  }

  async loadSnapshot(): Promise<Snapshot | null> {
    const r = this.db.prepare("SELECT seq, state FROM snapshots ORDER BY seq DESC LIMIT 1").get() as
      { seq: number; state: string } | undefined;
    return r ? { seq: r.seq, state: JSON.parse(r.state) } : null;
  }

  async verify(onProgress?: (checked: number) => void): Promise<VerifyResult> {
    return verifyRows(this.db.prepare("SELECT * FROM events ORDER BY seq").iterate() as Iterable<Row>, onProgress);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /** The underlying database, for stores that share the file (tokens). */
  get database(): Database.Database {
    return this.db;
  }
}

/** Checks a chain read in order (see ChainCheck). */
export function verifyRows(rows: Iterable<Row>, onProgress?: (checked: number) => void): VerifyResult {
  const check = new ChainCheck(onProgress);
  for (const r of rows) {
    const broken = check.next(r);
    if (broken) return broken;
  }
  return check.result();
}

/** Verifies a journal file without taking the lead (read-only; works beside a running farm). */
export function verifyJournalFile(file: string, onProgress?: (checked: number) => void): VerifyResult & { head?: string } {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const result = verifyRows(db.prepare("SELECT * FROM events ORDER BY seq").iterate() as Iterable<Row>, onProgress);
    const head = (db.prepare("SELECT hash FROM events ORDER BY seq DESC LIMIT 1").pluck().get() as string | undefined) ?? undefined;
    return { ...result, ...(head ? { head } : {}) };
  } finally {
    db.close();
  }
}
