import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { FencedError, Projection, SqliteJournal, verifyJournalFile } from "@optimus/farm-server";
import type { EventBody } from "@optimus/shared";

function tempFile(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-journal-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, "journal.db");
}

const created = (taskId: string, n: number): EventBody => ({
  type: "task_created",
  data: {
    taskId,
    title: taskId,
    priority: 0,
    source: "api",
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

test("events are hash-chained; editing, deleting or re-linking an entry is caught and named", async (t) => {
  const file = tempFile(t);
  const j = new SqliteJournal(file);
  await j.open();
  for (let i = 0; i < 10; i++) j.stage(created(`t${i}`, 1), "editor:alice");
  await j.flush();
  assert.deepEqual(await j.verify(), { ok: true, checked: 10, lastSeq: 10 });
  await j.close();

  const db = new Database(file);
  db.prepare("UPDATE events SET data = replace(data, 't6', 't6x') WHERE seq = 7").run();
  let r = verifyJournalFile(file);
  assert.equal(r.ok, false);
  assert.equal(r.firstBroken?.seq, 7);
  assert.match(r.firstBroken!.reason, /contents do not match/);

  // An attacker who also recomputes entry 7's hash breaks the link of entry 8 instead.
  const row = db.prepare("SELECT * FROM events WHERE seq = 7").get() as { hash: string };
  db.prepare("UPDATE events SET hash = ? WHERE seq = 7").run("f".repeat(64));
  r = verifyJournalFile(file);
  assert.equal(r.firstBroken?.seq, 7);
  db.prepare("UPDATE events SET hash = ?, data = replace(data, 't6x', 't6') WHERE seq = 7").run(row.hash);
  assert.equal(verifyJournalFile(file).ok, true); // put back exactly as it was: intact again
  db.prepare("DELETE FROM events WHERE seq = 4").run();
  r = verifyJournalFile(file);
  assert.equal(r.firstBroken?.seq, 4);
  assert.match(r.firstBroken!.reason, /missing/);
  db.close();
});

test("a second leader fences the first: its staged events never land", async (t) => {
  const file = tempFile(t);
  const a = new SqliteJournal(file);
  const { epoch: ea } = await a.open();
  a.stage(created("from-a", 1), "farm");
  await a.flush();
  const b = new SqliteJournal(file);
  const { epoch: eb } = await b.open();
  assert.equal(eb, ea + 1);
  a.stage(created("late-a", 1), "farm");
  await assert.rejects(a.flush(), (e: unknown) => e instanceof FencedError && /epoch 2 has taken over/.test((e as Error).message));
  b.stage(created("from-b", 1), "farm");
  await b.flush();
  const events = await b.readAfter(0, 100);
  assert.deepEqual(
    events.map((e) => (e.data as { taskId: string }).taskId),
    ["from-a", "from-b"],
  );
  assert.deepEqual(
    events.map((e) => e.epoch),
    [ea, eb],
  );
  assert.equal((await b.verify()).ok, true);
  await a.close();
  await b.close();
});

test("snapshot plus the journal's tail folds to the same state as a full replay", async (t) => {
  const file = tempFile(t);
  const j = new SqliteJournal(file);
  await j.open();
  const live = new Projection();
  const stage = (b: EventBody) => live.apply(j.stage(b, "farm"));
  stage(created("a", 3));
  stage({ type: "unit_leased", data: { taskId: "a", unitId: "u0", attempt: 1, worker: "w1", leaseId: "a/u0#1", expiresAt: 1 } });
  stage({ type: "unit_submitted", data: { taskId: "a", unitId: "u0", attempt: 1, worker: "w1", outcome: "succeeded", summary: "" } });
  stage({ type: "unit_completed", data: { taskId: "a", unitId: "u0", attempt: 1 } });
  await j.flush();
  await j.saveSnapshot({ seq: live.lastSeq, state: live.toSnapshot() });
  stage({ type: "unit_leased", data: { taskId: "a", unitId: "u1", attempt: 1, worker: "w2", leaseId: "a/u1#1", expiresAt: 2 } });
  stage({ type: "lease_expired", data: { taskId: "a", unitId: "u1", attempt: 1, worker: "w2", next: "retry", notBefore: 5 } });
  stage({ type: "unit_leased", data: { taskId: "a", unitId: "u1", attempt: 2, worker: "w1", leaseId: "a/u1#2", expiresAt: 9 } });
  await j.flush();

  const full = new Projection();
  for (const e of await j.readAfter(0, 1000)) full.apply(e);
  const snap = (await j.loadSnapshot())!;
  const resumed = Projection.fromSnapshot(snap.state)!;
  for (const e of await j.readAfter(snap.seq, 1000)) resumed.apply(e);
  // Compared as the JSON they are stored as (a snapshot has no `undefined` fields).
  const json = (p: Projection) => JSON.parse(JSON.stringify(p.toSnapshot()));
  assert.deepEqual(json(resumed), json(full));
  assert.deepEqual(json(full), json(live));
  const u1 = full.units.get("a/u1")!;
  assert.deepEqual([u1.state, u1.attempt, u1.worker, u1.failures], ["leased", 2, "w1", 1]);
  assert.equal(full.units.get("a/u2")!.state, "planned"); // waits for u1
  assert.deepEqual([...full.workerLeases.get("w1")!], ["a/u1"]);
  assert.deepEqual([...resumed.workerLeases.get("w1")!], ["a/u1"]);
  await j.close();
});
