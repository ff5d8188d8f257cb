import type pg from "pg";
import type { ArchivedTask, EventBody, FarmEvent } from "@optimus/shared";
import {
  ChainCheck,
  ChainTail,
  FencedError,
  storedToEvent,
  type Journal,
  type Snapshot,
  type StoredEvent,
  type VerifyResult,
} from "./journal.js";
import type { LeaderLease } from "./leader-lease.js";
import { migratePg, quoteIdent } from "./pg-migrations.js";

/** What the history and archive queries look events up by, taken from the event when it is staged. */
interface LookupColumns {
  task_id: string | null;
  unit_id: string | null;
  review_unit_id: string | null;
  archive_order: number | null;
}

const lookupOf = (body: EventBody): LookupColumns => {
  const d = body.data as { taskId?: unknown; unitId?: unknown; reviewUnitId?: unknown; order?: unknown };
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  return {
    task_id: str(d.taskId),
    unit_id: str(d.unitId),
    review_unit_id: str(d.reviewUnitId),
    archive_order: body.type === "task_archived" && typeof d.order === "number" ? d.order : null,
  };
};

const PAGE = 5_000;

/**
 * The journal on PostgreSQL, for farms whose state must outlive one machine (a standby node takes
 * over from it). The same guarantees as the SQLite journal: an event is acknowledged only once its
 * group commit is durable (synchronous_commit as the server has it, `on` by default); the chain of
 * hashes is the same; fencing checks the leader row's epoch in the commit's own transaction, holding
 * it shared, so a leader that takes over (which updates that row) waits for a commit in flight and
 * every later commit of the old leader is refused.
 */
export class PostgresJournal implements Journal {
  private readonly S: string;
  private _epoch = 0;
  private readonly tail = new ChainTail();
  private lookups: LookupColumns[] = [];
  private committedSeq = 0;

  constructor(
    private readonly pool: pg.Pool,
    readonly schema = "optimus",
    /** the lead this journal writes under (taken only when free, else NotLeaderError); none: read-only use (verify) */
    private readonly lease?: LeaderLease,
  ) {
    this.S = quoteIdent(schema);
  }

  get epoch(): number {
    return this._epoch;
  }

  /** Creates or upgrades the schema (every store of the farm shares it). */
  migrate(): Promise<{ from: number; to: number }> {
    return migratePg(this.pool, this.schema);
  }

  async open(): Promise<{ epoch: number; lastSeq: number }> {
    await this.migrate();
    if (!this.lease) throw new Error("a PostgreSQL journal is opened for writing only under a leader lease");
    this._epoch = await this.lease.acquire(null);
    const last = (await this.pool.query(`SELECT seq, hash FROM ${this.S}.events ORDER BY seq DESC LIMIT 1`)).rows[0] as
      { seq: number; hash: string } | undefined;
    this.tail.resume(last);
    this.lookups = [];
    this.committedSeq = last?.seq ?? 0;
    return { epoch: this._epoch, lastSeq: this.committedSeq };
  }

  stage(body: EventBody, actor: string, ts = Date.now()): FarmEvent {
    const e = this.tail.stage(body, actor, this._epoch, ts);
    this.lookups.push(lookupOf(body));
    return e;
  }

  async flush(): Promise<number> {
    const rows = this.tail.take();
    const lookups = this.lookups;
    this.lookups = [];
    if (rows.length === 0) return this.committedSeq;
    const col = <K extends keyof StoredEvent>(k: K) => rows.map((r) => r[k]);
    const look = <K extends keyof LookupColumns>(k: K) => lookups.map((l) => l[k]);
    await this.transaction(async (c) => {
      const current = Number((await c.query(`SELECT epoch FROM ${this.S}.leader WHERE id = 1 FOR SHARE`)).rows[0]?.epoch ?? 0);
      if (current !== this._epoch) throw new FencedError(this._epoch, current);
      // One statement for the whole batch (arrays, not a parameter per value: no limit on batch size).
      await c.query(
        `INSERT INTO ${this.S}.events (seq, ts, epoch, actor, type, data, prev_hash, hash, v, task_id, unit_id, review_unit_id, archive_order)
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
                              $10::text[], $11::text[], $12::text[], $13::float8[])`,
        [
          col("seq"),
          col("ts"),
          col("epoch"),
          col("actor"),
          col("type"),
          col("data"),
          col("prev_hash"),
          col("hash"),
          col("v"),
          look("task_id"),
          look("unit_id"),
          look("review_unit_id"),
          look("archive_order"),
        ],
      );
    });
    this.committedSeq = rows[rows.length - 1]!.seq;
    return this.committedSeq;
  }

  lastCommittedSeq(): number {
    return this.committedSeq;
  }

  private rows(sql: string, params: unknown[]): Promise<StoredEvent[]> {
    return this.pool.query(sql, params).then((r) => r.rows as StoredEvent[]);
  }

  private readonly cols = "seq, ts, epoch, actor, type, data, prev_hash, hash, v";

  async readAfter(seq: number, limit: number): Promise<FarmEvent[]> {
    const rows = await this.rows(`SELECT ${this.cols} FROM ${this.S}.events WHERE seq > $1 ORDER BY seq LIMIT $2`, [seq, limit]);
    return rows.map(storedToEvent);
  }

  async readForTask(taskId: string, unitId: string | undefined, limit: number): Promise<FarmEvent[]> {
    const rows = await this.rows(
      `SELECT ${this.cols} FROM ${this.S}.events WHERE task_id = $1 AND seq <= $2
         AND ($3::text IS NULL OR unit_id = $3 OR review_unit_id = $3)
       ORDER BY seq DESC LIMIT $4`,
      [taskId, this.committedSeq, unitId ?? null, limit],
    );
    return rows.reverse().map(storedToEvent);
  }

  private async archivedData(taskId: string): Promise<string | undefined> {
    const r = await this.pool.query(`SELECT data FROM ${this.S}.events WHERE type = 'task_archived' AND task_id = $1`, [taskId]);
    return r.rows[0]?.data as string | undefined;
  }

  async isArchived(taskId: string): Promise<boolean> {
    return (await this.archivedData(taskId)) !== undefined;
  }

  async archivedTask(taskId: string): Promise<ArchivedTask | null> {
    const data = await this.archivedData(taskId);
    return data ? (JSON.parse(data) as ArchivedTask) : null;
  }

  async archivedTaskIds(prefix: string, limit: number): Promise<string[]> {
    // starts_with, not LIKE: a prefix is matched as written ('_' and '%' are no wildcards), whatever the collation.
    const r = await this.pool.query<{ task_id: string }>(
      `SELECT task_id FROM ${this.S}.events WHERE type = 'task_archived' AND starts_with(task_id, $1) ORDER BY task_id COLLATE "C" LIMIT $2`,
      [prefix, limit],
    );
    return r.rows.map((x) => x.task_id);
  }

  async archivedPage(before: number, limit: number): Promise<{ tasks: ArchivedTask[]; total: number }> {
    const where = `type = 'task_archived' AND archive_order < $1`;
    const [page, count] = await Promise.all([
      this.pool.query(`SELECT data FROM ${this.S}.events WHERE ${where} ORDER BY archive_order DESC LIMIT $2`, [before, limit]),
      this.pool.query(`SELECT count(*)::int AS n FROM ${this.S}.events WHERE ${where}`, [before]),
    ]);
    return { tasks: page.rows.map((r: { data: string }) => JSON.parse(r.data) as ArchivedTask), total: Number(count.rows[0].n) };
  }

  async saveSnapshot(s: Snapshot): Promise<void> {
    await this.transaction(async (c) => {
      await c.query(
        `INSERT INTO ${this.S}.snapshots (seq, state, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (seq) DO UPDATE SET state = excluded.state, created_at = excluded.created_at`,
        [s.seq, JSON.stringify(s.state), Date.now()],
      );
      await c.query(`DELETE FROM ${this.S}.snapshots WHERE seq < $1`, [s.seq]);
    });
  }

  async loadSnapshot(): Promise<Snapshot | null> {
    const r = (await this.pool.query(`SELECT seq, state FROM ${this.S}.snapshots ORDER BY seq DESC LIMIT 1`)).rows[0] as
      { seq: number; state: string } | undefined;
    return r ? { seq: r.seq, state: JSON.parse(r.state) } : null;
  }

  /** Pages through the whole chain in order (keyset, so memory stays flat however long it is). */
  async verify(onProgress?: (checked: number) => void): Promise<VerifyResult & { head?: string }> {
    const check = new ChainCheck(onProgress);
    let after = 0;
    let head: string | undefined;
    for (;;) {
      const rows = await this.rows(`SELECT ${this.cols} FROM ${this.S}.events WHERE seq > $1 ORDER BY seq LIMIT $2`, [after, PAGE]);
      for (const r of rows) {
        const broken = check.next(r);
        if (broken) return broken;
        head = r.hash;
      }
      if (rows.length < PAGE) return { ...check.result(), ...(head ? { head } : {}) };
      after = rows[rows.length - 1]!.seq;
    }
  }

  /** The pool is the caller's (tokens and escalations share it): closing the journal leaves it open. */
  async close(): Promise<void> {}

  private async transaction<T>(work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      const out = await work(c);
      await c.query("COMMIT");
      return out;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }
}
