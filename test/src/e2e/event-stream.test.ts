import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { createFarmClient } from "@optimus/farm-server";
import type { FarmEvent } from "@optimus/shared";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

test("the event stream resumes across reconnects and farm restarts with no gap and no duplicate", async (t) => {
  const repo = makeRepo(t);
  const farm = await startTestFarm(t, { mode: "process", repo });
  const editorToken = await tokenFor(farm.url, farm.adminToken, "editor", "alice");
  const received: FarmEvent[] = [];
  const states: string[] = [];
  const ws = createFarmClient({ url: farm.url, token: editorToken, transport: "ws", onConnectionChange: (s) => states.push(s) });
  t.after(() => ws.close());
  const sub = ws.client.events.stream.subscribe({}, { onData: (env) => received.push(env.data as FarmEvent) });
  t.after(() => sub.unsubscribe());

  const create = async (n: number, tag: string) => {
    const c = httpClientFor(farm.url, farm.adminToken);
    for (let i = 0; i < n; i++) await c.tasks.create.mutate({ title: `${tag} ${i}` });
  };
  await create(5, "before");
  await waitFor(
    () => received.some((e) => e.type === "task_created" && (e.data as { title: string }).title === "before 4"),
    "the first events",
  );

  // Hard crash, events appended while the client is away, then a second restart.
  await farm.kill9();
  await farm.start();
  await create(5, "between");
  await farm.stop();
  await farm.start();
  await create(5, "after");
  await waitFor(
    () => received.some((e) => e.type === "task_created" && (e.data as { title: string }).title === "after 4"),
    "the last event",
  );
  await sleep(200);

  await farm.stop();
  const db = new Database(join(stateDirFor(repo), "journal.db"), { readonly: true });
  const journal = db.prepare("SELECT seq, hash FROM events ORDER BY seq").all() as Array<{ seq: number; hash: string }>;
  db.close();
  const seqs = received.map((e) => e.seq);
  assert.deepEqual(
    seqs,
    journal.map((r) => r.seq),
    "exactly the journal, in order: no gap, no duplicate",
  );
  assert.deepEqual(
    received.map((e) => e.hash),
    journal.map((r) => r.hash),
  );
  assert.ok(states.filter((s) => s === "closed").length >= 2, `the client saw the farm go away (${states.join(",")})`);
  assert.equal(received.filter((e) => e.type === "task_created").length, 15);
  assert.equal(received.filter((e) => e.type === "epoch_started").length, 3);
});

test("a subscription can start from a given event id and can follow one task", async (t) => {
  const repo = makeRepo(t);
  const farm = await startTestFarm(t, { mode: "process", repo });
  const c = httpClientFor(farm.url, farm.adminToken);
  const a = await c.tasks.create.mutate({ id: "aaa", title: "a" });
  await c.tasks.create.mutate({ id: "bbb", title: "b" });
  await c.tasks.cancel.mutate({ taskId: a.taskId });
  const ws = createFarmClient({ url: farm.url, token: farm.adminToken, transport: "ws" });
  t.after(() => ws.close());
  const got: FarmEvent[] = [];
  const sub = ws.client.events.stream.subscribe({ lastEventId: "2", taskId: "aaa" }, { onData: (env) => got.push(env.data as FarmEvent) });
  t.after(() => sub.unsubscribe());
  await waitFor(() => got.length >= 2, "aaa's events");
  await sleep(100);
  assert.deepEqual(
    got.map((e) => e.type),
    ["task_created", "task_cancelled"],
  );
  assert.ok(got.every((e) => e.seq > 2 && (e.data as { taskId: string }).taskId === "aaa"));
});
