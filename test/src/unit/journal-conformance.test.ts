import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import Database from "better-sqlite3";
import type pg from "pg";
import { FencedError, LeaderLease, openPgPool, PostgresJournal, Projection, SqliteJournal, type Journal } from "@optimus/farm-server";
import type { ArchivedTask, EventBody } from "@optimus/shared";
import { freshSchema, pgQuery, TEST_PG_URL } from "../helpers/postgres.js";

/**
 * One suite for every journal store: what the farm relies on (chain, fencing, durability, group
 * commit, history and archive queries, snapshots, formats) holds the same on SQLite and PostgreSQL.
 * Each store supplies how to open it again and how an attacker or an older/newer version would
 * change what it holds.
 */
interface StoreUnderTest {
  /** a new journal object on the same store (another process or node, as far as the store can tell) */
  open(): Journal;
  /** runs SQL on the store's event table `events` (with `?`-free statements: the store adapts them) */
  exec(sql: string): Promise<void>;
  /** the schema's recorded version is set to 99 (written by a newer Optimus) */
  markSchemaNewer(): Promise<void>;
  /** opening a journal on a store marked newer: the error it gives */
  openNewer(): Promise<unknown>;
}

const stores: Record<string, (t: TestContext) => Promise<StoreUnderTest>> = {
  sqlite: async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "optimus-journal-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "journal.db");
    const opened: SqliteJournal[] = [];
    t.after(async () => {
      for (const j of opened) await j.close();
    });
    const raw = async (fn: (db: Database.Database) => void) => {
      const db = new Database(file);
      try {
        fn(db);
      } finally {
        db.close();
      }
    };
    return {
      open: () => {
        const j = new SqliteJournal(file);
        opened.push(j);
        return j;
      },
      exec: (sql) => raw((db) => db.exec(sql)),
      markSchemaNewer: () => raw((db) => db.pragma("user_version = 99")),
      openNewer: async () => {
        try {
          new SqliteJournal(file);
        } catch (err) {
          return err;
        }
        return null;
      },
    };
  },
  postgres: async (t) => {
    const schema = await freshSchema(t, "journal");
    const pools: pg.Pool[] = [];
    t.after(async () => {
      for (const p of pools) await p.end();
    });
    const pool = () => {
      const p = openPgPool(TEST_PG_URL);
      pools.push(p);
      return p;
    };
    return {
      // Every open is the same node restarting: it takes its lease back at once, under a new epoch.
      open: () => {
        const p = pool();
        return new PostgresJournal(p, schema, new LeaderLease(p, schema, "conformance-node", 3_000));
      },
      exec: async (sql) => void (await pgQuery(sql.replaceAll("events", `"${schema}".events`))),
      markSchemaNewer: async () =>
        void (await pgQuery(`INSERT INTO "${schema}".schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 0)`)),
      openNewer: () =>
        new PostgresJournal(pool(), schema, new LeaderLease(pool(), schema, "conformance-node", 3_000)).open().then(
          () => null,
          (err: unknown) => err,
        ),
    };
  },
};

type TestContext = { after(fn: () => Promise<void> | void): void };

const created = (taskId: string, n: number): EventBody => ({
  type: "task_created",
  data: {
    taskId,
    title: taskId,
    priority: 0,
    source: "api",
    createdBy: "editor:alice",
    units: Array.from({ length: n }, (_, i) => ({
      id: `u${i}`,
      goal: "g",
      role: "codegen" as const,
      files: [],
      dependsOn: i > 0 ? [`u${i - 1}`] : [],
      priority: 0,
      complexity: "small" as const,
      kind: "change" as const,
    })),
  },
});

const archived = (taskId: string, order: number): EventBody => ({
  type: "task_archived",
  data: { taskId, order, task: { taskId, title: taskId } as ArchivedTask["task"], units: [] },
});

const taskIds = (events: Array<{ data: unknown }>) => events.map((e) => (e.data as { taskId: string }).taskId);

for (const [kind, make] of Object.entries(stores)) {
  describe(`journal conformance: ${kind}`, () => {
    test("events are hash-chained; editing, re-hashing or deleting an entry is caught and named", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      for (let i = 0; i < 10; i++) j.stage(created(`t${i}`, 1), "editor:alice");
      await j.flush();
      const intact = await j.verify();
      assert.deepEqual([intact.ok, intact.checked, intact.lastSeq], [true, 10, 10]);

      await store.exec("UPDATE events SET data = replace(data, 't6', 't6x') WHERE seq = 7");
      let r = await j.verify();
      assert.equal(r.ok, false);
      assert.equal(r.firstBroken?.seq, 7);
      assert.match(r.firstBroken!.reason, /contents do not match/);
      // An attacker who also recomputes entry 7's hash breaks the link of entry 8 instead: either way 7 is named.
      await store.exec(`UPDATE events SET hash = '${"f".repeat(64)}' WHERE seq = 7`);
      r = await j.verify();
      assert.equal(r.firstBroken?.seq, 7);
      await store.exec("DELETE FROM events WHERE seq = 4");
      r = await j.verify();
      assert.equal(r.firstBroken?.seq, 4);
      assert.match(r.firstBroken!.reason, /missing/);
    });

    test("a second leader fences the first: its staged events never land, the chain stays whole", async (t) => {
      const store = await make(t);
      const a = store.open();
      const { epoch: ea } = await a.open();
      a.stage(created("from-a", 1), "farm");
      await a.flush();
      const b = store.open();
      const { epoch: eb, lastSeq } = await b.open();
      assert.equal(eb, ea + 1);
      assert.equal(lastSeq, 1);
      a.stage(created("late-a", 1), "farm");
      await assert.rejects(
        a.flush(),
        (e: unknown) => e instanceof FencedError && new RegExp(`epoch ${eb} has taken over`).test((e as Error).message),
      );
      b.stage(created("from-b", 1), "farm");
      await b.flush();
      const events = await b.readAfter(0, 100);
      assert.deepEqual(taskIds(events), ["from-a", "from-b"]);
      assert.deepEqual(
        events.map((e) => e.epoch),
        [ea, eb],
      );
      assert.equal((await b.verify()).ok, true);
    });

    test("durable before acknowledged: staged events are seen by nobody until flushed, and lost if never flushed", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      j.stage(created("kept", 1), "farm");
      await j.flush();
      const staged = j.stage(created("never-flushed", 1), "farm");
      assert.equal(staged.seq, 2);
      assert.equal(j.lastCommittedSeq(), 1);
      const reader = store.open();
      assert.deepEqual(taskIds(await reader.readAfter(0, 10)), ["kept"]);
      // The process dies here; the next leader continues the chain after the last durable entry.
      const next = store.open();
      const { lastSeq } = await next.open();
      assert.equal(lastSeq, 1);
      const e = next.stage(created("after-restart", 1), "farm");
      assert.equal(e.seq, 2);
      await next.flush();
      assert.deepEqual(taskIds(await next.readAfter(0, 10)), ["kept", "after-restart"]);
      assert.equal((await next.verify()).ok, true);
    });

    test("group commit: a thousand events staged in one turn land in one flush, in order", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      for (let i = 0; i < 1_000; i++) j.stage(created(`g${i}`, 2), "farm");
      assert.equal(await j.flush(), 1_000);
      assert.equal(j.lastCommittedSeq(), 1_000);
      assert.equal(await j.flush(), 1_000, "an empty flush changes nothing");
      const page = await j.readAfter(990, 100);
      assert.deepEqual(
        page.map((e) => e.seq),
        [991, 992, 993, 994, 995, 996, 997, 998, 999, 1000],
      );
      const verified = await j.verify();
      assert.equal(verified.ok, true);
      assert.equal(verified.checked, 1_000);
    });

    test("a unit's history: its task's newest events, the unit's and its review's, oldest first", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      j.stage(created("a", 2), "farm");
      j.stage(created("b", 1), "farm");
      j.stage(
        { type: "unit_leased", data: { taskId: "a", unitId: "u0", attempt: 1, worker: "w1", leaseId: "a/u0#1", expiresAt: 1 } },
        "farm",
      );
      j.stage(
        { type: "unit_leased", data: { taskId: "a", unitId: "u1", attempt: 1, worker: "w2", leaseId: "a/u1#1", expiresAt: 1 } },
        "farm",
      );
      j.stage(
        { type: "unit_leased", data: { taskId: "b", unitId: "u0", attempt: 1, worker: "w2", leaseId: "b/u0#1", expiresAt: 1 } },
        "farm",
      );
      j.stage(
        { type: "unit_submitted", data: { taskId: "a", unitId: "u0", attempt: 1, worker: "w1", outcome: "succeeded", summary: "" } },
        "farm",
      );
      await j.flush();
      j.stage({ type: "unit_completed", data: { taskId: "a", unitId: "u0", attempt: 1 } }, "farm"); // staged only: not history yet
      const all = await j.readForTask("a", undefined, 100);
      assert.deepEqual(
        all.map((e) => e.seq),
        [1, 3, 4, 6],
      );
      const u0 = await j.readForTask("a", "u0", 100);
      assert.deepEqual(
        u0.map((e) => e.type),
        ["unit_leased", "unit_submitted"],
      );
      const newest = await j.readForTask("a", undefined, 2);
      assert.deepEqual(
        newest.map((e) => e.seq),
        [4, 6],
      );
      assert.deepEqual(await j.readForTask("nobody", undefined, 10), []);
    });

    test("archived tasks: found by id, paged newest first by creation order, counted", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      for (let i = 1; i <= 5; i++) j.stage(archived(`old-${i}`, i), "farm");
      j.stage(created("live", 1), "farm");
      await j.flush();
      assert.equal(await j.isArchived("old-3"), true);
      assert.equal(await j.isArchived("live"), false);
      assert.equal((await j.archivedTask("old-2"))?.order, 2);
      assert.equal(await j.archivedTask("live"), null);
      const page = await j.archivedPage(5, 2);
      assert.deepEqual(
        page.tasks.map((a) => a.taskId),
        ["old-4", "old-3"],
      );
      assert.equal(page.total, 4);
      assert.equal((await j.archivedPage(Number.MAX_SAFE_INTEGER, 10)).total, 5);
    });

    test("archived task ids by prefix: in id order, limited, a prefix matched as written", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      const ids = ["risky-change-10", "risky-change-1", "risky-change-2", "riskier", "other_1", "other-2"];
      ids.forEach((id, i) => j.stage(archived(id, i + 1), "farm"));
      j.stage(created("risky-change-live", 1), "farm");
      await j.flush();
      assert.deepEqual(await j.archivedTaskIds("risky-change-1", 10), ["risky-change-1", "risky-change-10"]);
      assert.deepEqual(await j.archivedTaskIds("risk", 10), ["riskier", "risky-change-1", "risky-change-10", "risky-change-2"]);
      assert.deepEqual(await j.archivedTaskIds("risk", 2), ["riskier", "risky-change-1"]);
      // '_' is no wildcard: "other_" names other_1 only, never other-2.
      assert.deepEqual(await j.archivedTaskIds("other_", 10), ["other_1"]);
      assert.deepEqual(await j.archivedTaskIds("nothing", 10), []);
      assert.deepEqual(await j.archivedTaskIds("risky-change-live", 10), [], "a live task is not in the archive");
    });

    test("snapshot plus the journal's tail folds to the same state as a full replay; a newer snapshot replaces it", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      const live = new Projection();
      const stage = (b: EventBody) => live.apply(j.stage(b, "farm"));
      stage(created("a", 3));
      stage({ type: "unit_leased", data: { taskId: "a", unitId: "u0", attempt: 1, worker: "w1", leaseId: "a/u0#1", expiresAt: 1 } });
      stage({ type: "unit_submitted", data: { taskId: "a", unitId: "u0", attempt: 1, worker: "w1", outcome: "succeeded", summary: "" } });
      await j.flush();
      await j.saveSnapshot({ seq: live.lastSeq, state: live.toSnapshot() });
      stage({ type: "unit_completed", data: { taskId: "a", unitId: "u0", attempt: 1 } });
      await j.flush();
      await j.saveSnapshot({ seq: live.lastSeq, state: live.toSnapshot() });
      stage({ type: "unit_leased", data: { taskId: "a", unitId: "u1", attempt: 1, worker: "w2", leaseId: "a/u1#1", expiresAt: 2 } });
      stage({ type: "lease_expired", data: { taskId: "a", unitId: "u1", attempt: 1, worker: "w2", next: "retry", notBefore: 5 } });
      await j.flush();

      const again = store.open();
      await again.open();
      const snap = (await again.loadSnapshot())!;
      assert.equal(snap.seq, 4, "the newest snapshot");
      const resumed = Projection.fromSnapshot(snap.state)!;
      for (const e of await again.readAfter(snap.seq, 1000)) resumed.apply(e);
      const full = new Projection();
      for (const e of await again.readAfter(0, 1000)) full.apply(e);
      const json = (p: Projection) => JSON.parse(JSON.stringify(p.toSnapshot()));
      assert.deepEqual(json(resumed), json(full));
      assert.deepEqual(json(full), json(live));
      assert.deepEqual([full.units.get("a/u1")!.state, full.units.get("a/u1")!.failures], ["ready", 1]);
    });

    test("event formats: an older entry is read in today's shape; a newer one is refused with the fix", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      j.stage(created("old", 1), "editor:bob");
      j.stage(created("new", 1), "farm");
      await j.flush();
      // Format 1 wrote no createdBy: the upcaster takes it from the event's actor.
      await store.exec(`UPDATE events SET v = 1, data = replace(data, '"createdBy":"editor:alice",', '') WHERE seq = 1`);
      const [old] = await j.readAfter(0, 1);
      assert.equal((old!.data as { createdBy: string }).createdBy, "editor:bob");
      await store.exec("UPDATE events SET v = 99 WHERE seq = 2");
      await assert.rejects(j.readAfter(1, 10), /format 99, newer than this Optimus reads .*upgrade Optimus/);
    });

    test("a store written by a newer version is refused before anything is read or written", async (t) => {
      const store = await make(t);
      const j = store.open();
      await j.open();
      j.stage(created("a", 1), "farm");
      await j.flush();
      await store.markSchemaNewer();
      const err = await store.openNewer();
      assert.match(String(err), /schema version 99, newer than this Optimus knows .*upgrade Optimus/);
    });
  });
}
