// Measure 2: raw better-sqlite3 on the same disk with the journal's pragmas (WAL, synchronous=FULL),
// into a table shaped like the journal's `events` table. No hashing, no JSON, no projection: this is
// what the fsync alone costs, and the ceiling group commit works against.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { msSince } from "./stats.js";

export interface BaselineResult {
  batch: number;
  rows: number;
  txns: number;
  wallMs: number;
  rowsPerSec: number;
  txnsPerSec: number;
  /** mean time of one commit (transaction), ms */
  msPerTxn: number;
}

function open(dir: string, name: string): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE events (
    seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, epoch INTEGER NOT NULL, actor TEXT NOT NULL,
    type TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL)`);
  return db;
}

/**
 * Inserts rows `batch` per transaction for about `budgetMs` (at least `minTxns` transactions and at
 * most `maxRows` rows), after a short warm-up.
 */
export function sqliteBaseline(batch: number, budgetMs: number, maxRows: number, minTxns = 20): BaselineResult {
  const dir = mkdtempSync(join(tmpdir(), "optimus-bench-sqlite-"));
  try {
    const db = open(dir, `raw-${batch}.db`);
    const insert = db.prepare("INSERT INTO events (seq, ts, epoch, actor, type, data, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    // ~200 bytes of JSON, the size of a unit_leased / unit_submitted event's data.
    const data = JSON.stringify({
      taskId: "bench-task-0001",
      unitId: "u123",
      attempt: 1,
      worker: "bench-worker-07",
      leaseId: `bench-task-0001/u123#1.${randomBytes(4).toString("hex")}`,
      expiresAt: Date.now(),
      pad: "x".repeat(40),
    });
    const hashes = Array.from({ length: 64 }, () => randomBytes(32).toString("hex"));
    let seq = 0;
    const txn = db.transaction((n: number) => {
      for (let i = 0; i < n; i++) {
        seq++;
        insert.run(seq, Date.now(), 1, "worker:bench-worker-07", "unit_leased", data, hashes[seq % 64]!, hashes[(seq + 1) % 64]!);
      }
    });
    for (let i = 0; i < 5; i++) txn.immediate(batch); // warm-up (file growth, WAL creation)
    const warm = seq;
    const t0 = process.hrtime.bigint();
    let txns = 0;
    while ((txns < minTxns || msSince(t0) < budgetMs) && seq - warm + batch <= maxRows) {
      txn.immediate(batch);
      txns++;
    }
    const wallMs = msSince(t0);
    db.close();
    const rows = seq - warm;
    return { batch, rows, txns, wallMs, rowsPerSec: rows / (wallMs / 1000), txnsPerSec: txns / (wallMs / 1000), msPerTxn: wallMs / txns };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
