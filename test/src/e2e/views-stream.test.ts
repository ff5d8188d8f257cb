import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createFarmClient, errorCode } from "@optimus/farm-server";
import { FarmViews, type ViewsMessage } from "@optimus/shared";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

type Envelope = { id: string; data: ViewsMessage };

/** Subscribes to `views.stream` from a cursor and collects what arrives. */
function follow(url: string, token: string, lastEventId: string | null) {
  const got: Envelope[] = [];
  const errors: unknown[] = [];
  const ws = createFarmClient({ url, token, transport: "ws" });
  const sub = ws.client.views.stream.subscribe({ lastEventId }, { onData: (e) => got.push(e as Envelope), onError: (e) => errors.push(e) });
  return { got, errors, close: () => (sub.unsubscribe(), ws.close()) };
}

test("views.stream: snapshot, then deltas per commit; resuming from a cursor sends only what changed since", async (t) => {
  const farm = await startTestFarm(t);
  const admin = httpClientFor(farm.url, farm.adminToken);
  const editor = await tokenFor(farm.url, farm.adminToken, "editor", "ed");
  await admin.tasks.create.mutate({
    id: "first",
    title: "First",
    units: [
      { id: "a", goal: "a" },
      { id: "b", goal: "b", dependsOn: ["a"] },
    ],
  });

  const live = follow(farm.url, editor, null);
  t.after(live.close);
  await waitFor(() => live.got.length >= 1, "the snapshot");
  const snap = live.got[0]!;
  assert.equal(snap.data.kind, "snapshot");
  assert.equal(snap.id, `${farm.server.epoch}:${snap.data.seq}`, "the tracked id is epoch:seq");
  const model = new FarmViews();
  model.apply(snap.data);
  assert.deepEqual(
    model.unitsOf("first").map((u) => [u.unitId, u.state]),
    [
      ["a", "ready"],
      ["b", "planned"],
    ],
  );

  await admin.tasks.create.mutate({ id: "second", title: "Second", units: [{ id: "x", goal: "x" }] });
  await admin.units.cancel.mutate({ taskId: "first", unitId: "b" });
  await waitFor(() => live.got.filter((m) => m.data.kind === "delta").length >= 2, "two deltas");
  for (const m of live.got.slice(1)) model.apply(m.data);
  assert.equal(model.unit("second", "x")?.state, "ready");
  assert.equal(model.unit("first", "b")?.state, "cancelled");
  const deltas = live.got.filter((m) => m.data.kind === "delta").map((m) => m.data) as Array<Extract<ViewsMessage, { kind: "delta" }>>;
  assert.deepEqual(
    deltas[0]!.units.map((u) => u.unitId),
    ["x"],
    "a delta carries only the units that changed",
  );

  // Resume from the snapshot's cursor: one delta with exactly what changed since, not a snapshot.
  const resumed = follow(farm.url, editor, snap.id);
  t.after(resumed.close);
  await waitFor(() => resumed.got.length >= 1, "the catch-up");
  const catchUp = resumed.got[0]!.data;
  assert.equal(catchUp.kind, "delta");
  assert.deepEqual(
    (catchUp as Extract<ViewsMessage, { kind: "delta" }>).units.map((u) => `${u.taskId}/${u.unitId}`).sort(),
    ["first/b", "second/x"],
    "first/a did not change, so it is not sent again",
  );
  assert.equal(
    (catchUp as Extract<ViewsMessage, { kind: "delta" }>).tasks
      .map((x) => x.taskId)
      .sort()
      .join(),
    "first,second",
  );

  // A cursor from another farm run, or garbage, gets a fresh snapshot.
  for (const cursor of [`${farm.server.epoch + 7}:1`, "not-a-cursor", `${farm.server.epoch}:999999999`]) {
    const other = follow(farm.url, editor, cursor);
    await waitFor(() => other.got.length >= 1, `the answer to ${cursor}`);
    assert.equal(other.got[0]!.data.kind, "snapshot", cursor);
    other.close();
  }
});

test("views.stream: live worker progress and fleet changes; worker tokens may not follow it", async (t) => {
  const farm = await startTestFarm(t);
  const admin = httpClientFor(farm.url, farm.adminToken);
  const editor = await tokenFor(farm.url, farm.adminToken, "editor", "ed");
  const workerToken = await tokenFor(farm.url, farm.adminToken, "worker", "w");
  const live = follow(farm.url, editor, null);
  t.after(live.close);
  await waitFor(() => live.got.length >= 1, "the snapshot");

  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const agents = await startWorkers(
    farm.url,
    workerToken,
    [{ nodeId: "w1", role: "codegen", max: 1 }],
    newLedger(),
    async (_lease, ctx) => {
      ctx.progress({ phase: "generating", step: "turn 1", tokens: 42 });
      await held;
      return { outcome: "succeeded", summary: "ok" };
    },
  );
  t.after(() => stopAll(agents));
  await waitFor(
    () => live.got.some((m) => m.data.kind === "fleet" && m.data.workers.some((w) => w.nodeId === "w1" && w.connected)),
    "the worker in a fleet message",
  );

  await admin.tasks.create.mutate({ id: "p", title: "P", units: [{ id: "u", goal: "u" }] });
  const progress = await waitFor(() => live.got.find((m) => m.data.kind === "progress"), "a progress message");
  assert.deepEqual(
    (progress.data as Extract<ViewsMessage, { kind: "progress" }>).units.map((u) => [
      u.unitId,
      u.progress?.phase,
      u.progress?.step,
      u.progress?.tokens,
    ]),
    [["u", "generating", "turn 1", 42]],
  );
  release();
  await waitFor(
    () => live.got.some((m) => m.data.kind === "delta" && m.data.units.some((u) => u.unitId === "u" && u.state === "completed")),
    "the unit completed",
  );

  const denied = follow(farm.url, workerToken, null);
  await waitFor(() => denied.errors.length >= 1, "the refusal");
  assert.equal(errorCode(denied.errors[0]), "FORBIDDEN");
  denied.close();
});

test(
  "the first views message holds live work and one page of history, whatever the history; older finished tasks come a page at a time",
  { timeout: 120_000 },
  async (t) => {
    // A farm on a folder without git (units complete as they are): 1,000 finished tasks of 10 units each.
    const dir = mkdtempSync(join(tmpdir(), "optimus-history-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const farm = await startTestFarm(t, {
      repo: dir,
      config: { planner: { enabled: false }, prloop: { reviewEveryCodegenUnit: false }, files: { mirror: false } },
    });
    const units = Array.from({ length: 10 }, (_, i) => ({ id: `u${i}`, goal: `part ${i} of a task that was done long ago` }));
    for (let i = 0; i < 1_000; i++) {
      await farm.server.services.tasks.create(
        { id: `old-${String(i).padStart(4, "0")}`, title: `Old task ${i}`, units, source: "api" },
        "test",
      );
      await farm.server.services.tasks.cancel(`old-${String(i).padStart(4, "0")}`, "done with", "test");
    }
    await farm.server.services.tasks.create({ id: "live", title: "Live", units: [{ id: "a", goal: "a" }], source: "api" }, "test");
    const editor = await tokenFor(farm.url, farm.adminToken, "editor", "ed");

    const live = follow(farm.url, editor, null);
    t.after(live.close);
    await waitFor(() => live.got.length >= 1, "the snapshot");
    const snap = live.got[0]!.data as Extract<ViewsMessage, { kind: "snapshot" }>;
    const bytes = Buffer.byteLength(JSON.stringify(snap));
    assert.ok(bytes < 200_000, `the first message is ${bytes} bytes with 10,000 finished units`);
    assert.ok(
      snap.tasks.some((x) => x.taskId === "live"),
      "live work is always in it",
    );
    assert.equal(snap.tasks.length, 51);
    assert.deepEqual(
      snap.tasks
        .filter((x) => x.taskId !== "live")
        .map((x) => x.taskId)
        .sort()
        .slice(0, 2),
      ["old-0950", "old-0951"],
      "the most recent finished tasks",
    );
    assert.equal(snap.history?.more, 950);

    // "Show more", page by page: every finished task exactly once, newest first, with its units.
    const model = new FarmViews();
    model.apply(snap);
    const client = httpClientFor(farm.url, editor);
    let pages = 0;
    while (model.history.more > 0) {
      const page = await client.views.history.query({ before: model.history.before!, limit: 200 });
      assert.ok(page.tasks.length <= 200);
      model.addHistory(page);
      pages++;
    }
    assert.equal(pages, 5);
    assert.equal(model.tasks.size, 1_001);
    assert.equal(model.unitsOf("old-0000").length, 10);
    assert.equal(model.unit("old-0000", "u9")?.state, "cancelled");
    await assert.rejects(httpClientFor(farm.url, "not-a-token").views.history.query({ before: 10 }), /UNAUTHORIZED|401|token/i);
  },
);
