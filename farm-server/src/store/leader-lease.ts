import type pg from "pg";
import { quoteIdent } from "./pg-migrations.js";

/** Who leads a farm on PostgreSQL, as the leader row says. */
export interface Leadership {
  epoch: number;
  /** the leading node (`<host>:<state folder>`) */
  holder: string | null;
  /** where it serves the API (what a standby tells clients to try) */
  url: string | null;
  /** how long its lease has left by the database's clock (≤ 0: expired, anyone may take over) */
  leftMs: number;
}

/** Thrown when another node holds a live lease: this one stands by. */
export class NotLeaderError extends Error {
  constructor(readonly leader: Leadership) {
    super(`another farm node leads (${leader.holder ?? "unknown"}, epoch ${leader.epoch}${leader.url ? `, at ${leader.url}` : ""})`);
    this.name = "NotLeaderError";
  }
}

/**
 * The lead of a farm whose state is in PostgreSQL: one row (the same one the journal's fencing
 * reads) carrying the epoch, the holder and a lease that the leader renews on a heartbeat. Time is
 * the database's clock, the one clock every node shares. Taking the lead bumps the epoch, so the
 * journal refuses every later commit of the node that held it before (fencing does not depend on the
 * lease: a node paused past its lease cannot write when it wakes, whatever its timers think).
 */
/** PostgreSQL's lock_not_available: a lock_timeout ran out */
const LOCK_NOT_AVAILABLE = "55P03";

export class LeaderLease {
  private readonly S: string;
  /** the node that held the lead before this one took it (another node: a failover), once acquired */
  previousHolder: string | null = null;

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
    /** this node: `<host>:<state folder>` (the same node after a restart may take its lease back at once) */
    readonly node: string,
    readonly leaseMs: number,
  ) {
    this.S = quoteIdent(schema);
  }

  private readonly nowMs = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

  /**
   * Takes the lead when nobody holds a live lease (or this node held it before a restart), bumping
   * the epoch past every epoch in the journal; else throws NotLeaderError naming the leader.
   */
  async acquire(url: string | null): Promise<number> {
    const c = await this.pool.connect();
    try {
      await c.query("BEGIN");
      // Never wait on the leader row for longer than a lease: a node stalled mid-commit holds it (its
      // session is ended by the server soon, see openPgPool), and this node stands by meanwhile.
      await c.query(`SET LOCAL lock_timeout = ${Math.max(100, this.leaseMs)}`);
      const row = (
        await c.query(
          `SELECT epoch, holder, url, coalesce(lease_until, 0) - ${this.nowMs} AS left_ms FROM ${this.S}.leader WHERE id = 1 FOR UPDATE`,
        )
      ).rows[0] as { epoch: number; holder: string | null; url: string | null; left_ms: number } | undefined;
      if (row && row.left_ms > 0 && row.holder !== this.node) {
        await c.query("ROLLBACK");
        throw new NotLeaderError({ epoch: row.epoch, holder: row.holder, url: row.url, leftMs: row.left_ms });
      }
      const maxEventEpoch = Number((await c.query(`SELECT coalesce(max(epoch), 0) AS e FROM ${this.S}.events`)).rows[0].e);
      const epoch = Math.max(row?.epoch ?? 0, maxEventEpoch) + 1;
      this.previousHolder = row?.holder ?? null;
      await c.query(
        `INSERT INTO ${this.S}.leader (id, epoch, holder, url, since, renewed_at, lease_until)
           VALUES (1, $1, $2, $3, ${this.nowMs}, ${this.nowMs}, ${this.nowMs} + $4)
         ON CONFLICT (id) DO UPDATE SET epoch = excluded.epoch, holder = excluded.holder, url = excluded.url,
           since = excluded.since, renewed_at = excluded.renewed_at, lease_until = excluded.lease_until`,
        [epoch, this.node, url, this.leaseMs],
      );
      await c.query("COMMIT");
      return epoch;
    } catch (err) {
      await c.query("ROLLBACK").catch(() => undefined);
      if ((err as { code?: string }).code === LOCK_NOT_AVAILABLE)
        throw new NotLeaderError({ epoch: 0, holder: "a farm node still committing", url: null, leftMs: this.leaseMs });
      throw err;
    } finally {
      c.release();
    }
  }

  /** Extends the lease while `epoch` still leads; false once another node has taken over. */
  async renew(epoch: number, url?: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE ${this.S}.leader SET renewed_at = ${this.nowMs}, lease_until = ${this.nowMs} + $2, url = coalesce($3, url)
       WHERE id = 1 AND epoch = $1`,
      [epoch, this.leaseMs, url ?? null],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** A clean stop hands the lead over at once instead of after the lease runs out. */
  async release(epoch: number): Promise<void> {
    await this.pool.query(`UPDATE ${this.S}.leader SET lease_until = 0 WHERE id = 1 AND epoch = $1`, [epoch]);
  }

  async current(): Promise<Leadership | null> {
    const row = (
      await this.pool.query(
        `SELECT epoch, holder, url, coalesce(lease_until, 0) - ${this.nowMs} AS left_ms FROM ${this.S}.leader WHERE id = 1`,
      )
    ).rows[0] as { epoch: number; holder: string | null; url: string | null; left_ms: number } | undefined;
    return row ? { epoch: row.epoch, holder: row.holder, url: row.url, leftMs: Number(row.left_ms) } : null;
  }

  /** The journal's newest entry (a standby's view of how far the leader has written). */
  async lastSeq(): Promise<number> {
    return Number((await this.pool.query(`SELECT coalesce(max(seq), 0) AS s FROM ${this.S}.events`)).rows[0].s);
  }
}
