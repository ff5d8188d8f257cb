/**
 * A leader paused in the middle of a commit (issue 13: SIGSTOPped past its lease while workers keep
 * it busy) holds the leader row shared until it wakes. The standby must still take over once the
 * lease runs out: the server ends the paused node's session after half a lease (its locks go with
 * it), and whatever that node sends on waking is refused.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { LeaderLease, NotLeaderError, openPgPool, PostgresJournal } from "@optimus/farm-server";
import { stallMsOf } from "@optimus/farm-server/dist/store/pg-pool.js";
import { freshSchema, TEST_PG_URL } from "../helpers/postgres.js";
import { sleep } from "../helpers/wait.js";

const LEASE_MS = 1_000;

async function leaderPausedMidCommit(
  t: { after(fn: () => Promise<void> | void): void },
  stallMs: number | undefined,
): Promise<{ schema: string; paused: pg.PoolClient; epoch: number; standby: LeaderLease }> {
  const schema = await freshSchema(t, "stall");
  const pools: pg.Pool[] = [];
  t.after(async () => {
    for (const p of pools) await p.end().catch(() => undefined);
  });
  const a = openPgPool(TEST_PG_URL, () => undefined, 2, stallMs);
  const b = openPgPool(TEST_PG_URL, () => undefined, 2);
  pools.push(a, b);
  const journal = new PostgresJournal(a, schema, new LeaderLease(a, schema, "node-a", LEASE_MS));
  const { epoch } = await journal.open();
  // What a flush does first, then the process stops before its next statement.
  const paused = await a.connect();
  paused.on("error", () => undefined); // the server may end this session: that is the point
  await paused.query("BEGIN");
  await paused.query(`SELECT epoch FROM "${schema}".leader WHERE id = 1 FOR SHARE`);
  return { schema, paused, epoch, standby: new LeaderLease(b, schema, "node-b", LEASE_MS) };
}

test("without a stall limit on the leader's sessions, a leader paused mid-commit keeps the standby out", async (t) => {
  const { paused, standby } = await leaderPausedMidCommit(t, undefined);
  await sleep(LEASE_MS + 200); // its lease has run out
  // acquire gives up after a lease's wait on the row (it never hangs), but it cannot take over.
  await assert.rejects(standby.acquire("http://b"), (err: unknown) => err instanceof NotLeaderError);
  paused.release(true);
});

test("a leader paused mid-commit past its lease: the standby takes over, and the paused commit is refused", async (t) => {
  const { paused, epoch, standby } = await leaderPausedMidCommit(t, stallMsOf(LEASE_MS));
  await sleep(LEASE_MS + 200);
  let taken = 0;
  for (let i = 0; i < 5 && !taken; i++) taken = await standby.acquire("http://b").catch(() => 0);
  assert.ok(taken > epoch, `the standby leads with a later epoch (${taken} > ${epoch})`);
  // The paused node wakes up and finishes its commit: its session is gone, nothing of it lands.
  await assert.rejects(paused.query("COMMIT"));
  paused.release(true);
});
