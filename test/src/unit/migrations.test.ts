import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { EVENT_FORMAT, eventHash, FarmState, GENESIS_HASH, SNAPSHOT_FORMAT, SqliteJournal, SqliteTokenStore } from "@optimus/farm-server";

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-migrate-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A journal as versions before numbered schemas wrote it (user_version 0, no event format column),
 * holding one format-1 task_created that does not name its creator.
 */
function oldJournal(file: string): void {
  const db = new Database(file);
  db.exec(`
    CREATE TABLE events (
      seq INTEGER PRIMARY KEY, ts INTEGER NOT NULL, epoch INTEGER NOT NULL, actor TEXT NOT NULL,
      type TEXT NOT NULL, data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TABLE leader (id INTEGER PRIMARY KEY CHECK (id = 1), epoch INTEGER NOT NULL, pid INTEGER, since INTEGER);
    CREATE TABLE snapshots (seq INTEGER PRIMARY KEY, state TEXT NOT NULL, created_at INTEGER NOT NULL);`);
  const units = [{ id: "u1", goal: "g", role: "codegen", files: [], dependsOn: [], priority: 0, complexity: "small", kind: "change" }];
  const rows = [
    { type: "epoch_started", actor: "farm", data: { epoch: 1, pid: 1, host: "h" } },
    { type: "task_created", actor: "editor:alice", data: { taskId: "old-task", title: "Old", priority: 0, source: "api", units } },
  ];
  let prev = GENESIS_HASH;
  rows.forEach((r, i) => {
    const head = { seq: i + 1, ts: 1_700_000_000_000 + i, epoch: 1, actor: r.actor, type: r.type };
    const data = JSON.stringify(r.data);
    const hash = eventHash(prev, head, data);
    db.prepare("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)").run(
      head.seq,
      head.ts,
      head.epoch,
      head.actor,
      head.type,
      data,
      prev,
      hash,
    );
    prev = hash;
  });
  db.prepare("INSERT INTO leader VALUES (1, 1, 1, 1)").run();
  db.close();
}

test("a journal from before numbered schemas opens after its migration; its older events are upcast and its chain still holds", async (t) => {
  const file = join(tempDir(t), "journal.db");
  oldJournal(file);
  const state = new FarmState(new SqliteJournal(file), 1_000);
  const loaded = await state.load();
  t.after(() => state.journal.close());
  assert.equal(loaded.replayed, 2);
  assert.equal(new Database(file, { readonly: true }).pragma("user_version", { simple: true }), 3, "migrated to the newest schema");
  // Format 1 left the creator to the event's actor; read as today's format, it names it.
  const [, created] = await state.journal.readAfter(0, 10);
  assert.equal(created?.type, "task_created");
  assert.equal((created!.data as { createdBy?: string }).createdBy, "editor:alice");
  assert.equal(state.projection.tasks.get("old-task")?.createdBy, "editor:alice");
  assert.deepEqual(
    await state.journal.verify(),
    { ok: true, checked: 2, lastSeq: 2 },
    "the stored events are untouched: the hash chain holds",
  );
  // New events are written in today's format, beside the old ones.
  await state.commit([{ type: "task_cancelled", data: { taskId: "old-task" } }], "editor:alice");
  const formats = new Database(file, { readonly: true }).prepare("SELECT v FROM events ORDER BY seq").pluck().all();
  assert.deepEqual(formats.slice(0, 2), [1, 1]);
  assert.equal(formats[formats.length - 1], EVENT_FORMAT);
});

test("a snapshot of another format is discarded and the journal replayed; a newer schema or event format is refused with a clear error", async (t) => {
  const dir = tempDir(t);
  const file = join(dir, "journal.db");
  const first = new FarmState(new SqliteJournal(file), 1_000);
  await first.load();
  await first.commit(
    [
      {
        type: "task_created",
        data: {
          taskId: "t1",
          title: "T",
          priority: 0,
          source: "api",
          createdBy: "editor:bob",
          units: [{ id: "u1", goal: "g", role: "codegen", files: [], dependsOn: [], priority: 0, complexity: "small", kind: "change" }],
        },
      },
    ],
    "editor:bob",
  );
  assert.ok(await first.snapshot());
  await first.journal.close();

  // A snapshot an unknown version wrote, at the journal's head: not read.
  const db = new Database(file);
  const head = db.prepare("SELECT max(seq) FROM events").pluck().get() as number;
  db.prepare("INSERT OR REPLACE INTO snapshots (seq, state, created_at) VALUES (?, ?, ?)").run(
    head,
    JSON.stringify({ format: SNAPSHOT_FORMAT + 1, lastSeq: head, tasks: [], units: [] }),
    Date.now(),
  );
  db.close();
  const second = new FarmState(new SqliteJournal(file), 1_000);
  const loaded = await second.load();
  assert.equal(loaded.snapshotDiscarded, true);
  assert.equal(loaded.replayed, head, "replayed from the start");
  assert.equal(second.projection.tasks.get("t1")?.createdBy, "editor:bob");
  await second.journal.close();

  // An event of a newer format: reading it fails, naming what to do.
  const db2 = new Database(file);
  db2.prepare("UPDATE events SET v = ? WHERE seq = ?").run(EVENT_FORMAT + 1, head);
  db2.close();
  const third = new FarmState(new SqliteJournal(file), 1_000);
  await assert.rejects(
    third.journal.open().then(() => third.journal.readAfter(0, 10)),
    /format \d+, newer than this Optimus reads .*upgrade Optimus/,
  );
  await third.journal.close();

  // A schema from a newer version: refused before anything is read or written.
  const db3 = new Database(file);
  db3.pragma("user_version = 99");
  db3.close();
  assert.throws(() => new SqliteJournal(file), /schema version 99, newer than this Optimus knows \(3\).*upgrade Optimus/);
});

test("a token database from before the approver right opens after its migration; its tokens still work", async (t) => {
  const file = join(tempDir(t), "tokens.db");
  const old = new SqliteTokenStore(file);
  const issued = await old.create("editor", "alice");
  old.close();
  const db = new Database(file);
  db.exec("ALTER TABLE tokens DROP COLUMN approver");
  db.pragma("user_version = 0");
  db.close();
  const store = new SqliteTokenStore(file);
  t.after(() => store.close());
  assert.deepEqual(store.authenticate(issued.token), { tokenId: issued.tokenId, name: "alice", role: "editor", approver: false });
  assert.equal(new Database(file, { readonly: true }).pragma("user_version", { simple: true }), 3);
});
