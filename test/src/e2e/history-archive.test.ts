import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createFarmClient } from "@optimus/farm-server";
import { FarmViews, type ServerConfigInput, type ViewsMessage } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

/** Settings of a farm on a folder without git (a unit is done when its worker says so). */
const FOLDER: ServerConfigInput = {
  heartbeatIntervalMs: 500,
  planner: { enabled: false },
  prloop: { reviewEveryCodegenUnit: false },
  files: { mirror: false },
};

async function firstViews(url: string, token: string): Promise<Extract<ViewsMessage, { kind: "snapshot" }>> {
  const ws = createFarmClient({ url, token, transport: "ws" });
  try {
    return await new Promise((resolve, reject) => {
      const sub = ws.client.views.stream.subscribe(
        { lastEventId: null },
        {
          onData: (e) => (sub.unsubscribe(), resolve((e as { data: ViewsMessage }).data as Extract<ViewsMessage, { kind: "snapshot" }>)),
          onError: reject,
        },
      );
    });
  } finally {
    ws.close();
  }
}

test(
  "a finished task leaves the farm's live state after its retention; task show, the editor and the unit's history still answer for it, across restarts",
  { timeout: 120_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "optimus-archive-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const history = { retentionMs: 1_500, sweepEveryMs: 100 };
    const farm = await startTestFarm(t, { repo: dir, config: { ...FOLDER, history } });
    const admin = farm.adminToken;
    const client = httpClientFor(farm.url, admin);

    await client.tasks.create.mutate({
      id: "done-task",
      title: "Done soon",
      units: [
        { id: "u1", goal: "one" },
        { id: "u2", goal: "two", dependsOn: ["u1"] },
      ],
    });
    // Nobody reviews: this task stays live however long it waits.
    await client.tasks.create.mutate({ id: "waiting", title: "Waits for a reviewer", units: [{ id: "r1", goal: "look", role: "review" }] });
    const workerToken = await tokenFor(farm.url, admin, "worker", "w1");
    const agents = await startWorkers(farm.url, workerToken, [{ nodeId: "w1", role: "codegen", max: 1 }], newLedger());
    t.after(() => stopAll(agents));

    await waitFor(async () => (await client.tasks.get.query({ taskId: "done-task" })).task.state === "completed", "the task completes");
    // Within its retention it is live: listed, and in the projection.
    assert.ok((await client.tasks.list.query()).some((x) => x.taskId === "done-task"));
    assert.ok(farm.server.services.state.projection.tasks.has("done-task"));

    await waitFor(() => !farm.server.services.state.projection.tasks.has("done-task"), "the finished task leaves the live state", 10_000);
    assert.ok(!farm.server.services.state.projection.units.has("done-task/u1"), "its units leave with it");
    assert.ok(farm.server.services.state.projection.tasks.has("waiting"), "live work stays");
    assert.deepEqual(
      (await client.tasks.list.query()).map((x) => x.taskId),
      ["waiting"],
    );

    // `task show`, as a person types it.
    const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin };
    const shown = await runCli(["task", "show", "done-task"], { cwd: dir, env });
    assert.equal(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /^done-task\s+completed\s.*2\/2 done · Done soon$/m);
    assert.match(shown.stdout, /^ {2}u2\s+completed\s+1\s+w1\b/m);
    assert.match(shown.stdout, /archived/);
    const json = JSON.parse((await runCli(["task", "show", "done-task", "--json"], { cwd: dir, env })).stdout) as {
      archived: boolean;
      task: { state: string };
      units: Array<{ unitId: string; state: string; actions: string[] }>;
    };
    assert.equal(json.archived, true);
    assert.deepEqual(
      json.units.map((u) => [u.unitId, u.state, u.actions.length]),
      [
        ["u1", "completed", 0],
        ["u2", "completed", 0],
      ],
    );
    const missing = await runCli(["task", "show", "no-such-task"], { cwd: dir, env });
    assert.deepEqual([missing.code, missing.stderr.trim()], [3, "optimus: no task matches 'no-such-task'"]);
    // A prefix finds an archived task too, for `task show`, `status --task` and a unit's detail.
    const byPrefix = await runCli(["task", "show", "done-t", "--json"], { cwd: dir, env });
    assert.equal(byPrefix.code, 0, byPrefix.stderr);
    assert.deepEqual(JSON.parse(byPrefix.stdout), json);
    const status = await runCli(["status", "--once", "--task", "done-t"], { cwd: dir, env });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^done-task\s+completed\s.*2\/2 done · Done soon$/m);
    const unit = await runCli(["unit", "show", "done-t/u2", "--json"], { cwd: dir, env });
    assert.equal(unit.code, 0, unit.stderr);
    assert.deepEqual((JSON.parse(unit.stdout) as { unit: { unitId: string; state: string } }).unit.state, "completed");

    // The editor: in the first message's history, and a unit's detail with its journal history.
    const editor = await tokenFor(farm.url, admin, "editor", "ed");
    const snap = await firstViews(farm.url, editor);
    assert.deepEqual(
      snap.tasks.map((x) => [x.taskId, x.state]),
      [
        ["done-task", "completed"],
        ["waiting", "open"],
      ],
    );
    assert.ok(snap.units.some((u) => u.taskId === "done-task" && u.unitId === "u2" && u.state === "completed"));
    assert.equal(snap.history?.more, 0);
    const detail = await httpClientFor(farm.url, editor).units.detail.query({ taskId: "done-task", unitId: "u1" });
    assert.equal(detail.unit.state, "completed");
    assert.ok(
      detail.history.some((h) => h.type === "unit_completed"),
      "the unit's history is read from the journal",
    );

    // Its id stays taken: a manifest or a call with that id is refused, saying why.
    await assert.rejects(
      client.tasks.create.mutate({ id: "done-task", title: "Again", units: [{ id: "u1", goal: "x" }] }),
      /already exists \(finished and archived/,
    );

    // A restart starts from the snapshot, which holds live work only; the archive still answers.
    await stopAll(agents);
    await farm.stop();
    await farm.start();
    const snapshot = (await farm.server.services.state.journal.loadSnapshot())?.state as { tasks: Array<{ taskId: string }> } | undefined;
    assert.deepEqual(
      snapshot?.tasks.map((x) => x.taskId),
      ["waiting"],
      "the snapshot holds the hot state",
    );
    assert.ok(!farm.server.services.state.projection.tasks.has("done-task"));
    const again = await runCli(["task", "show", "done-task"], { cwd: dir, env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin } });
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^done-task\s+completed/m);
  },
);

test("older tasks page through live and archived history alike: each finished task once, newest first", { timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-archive-pages-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const farm = await startTestFarm(t, { repo: dir, config: FOLDER });
  const { state, tasks } = farm.server.services;
  const id = (i: number) => `t-${String(i).padStart(3, "0")}`;
  for (let i = 0; i < 120; i++) {
    await tasks.create(
      {
        id: id(i),
        title: `Task ${i}`,
        units: [
          { id: "a", goal: "a" },
          { id: "b", goal: "b" },
        ],
        source: "api",
      },
      "test",
    );
    await tasks.cancel(id(i), "done with", "test");
  }
  // Every third one archived (as the sweep does after the retention): history is split between the two.
  const archived = [];
  for (let i = 0; i < 120; i += 3)
    archived.push({ type: "task_archived" as const, data: state.projection.archiveOf(state.projection.tasks.get(id(i))!) });
  await state.commit(archived, "farm");
  assert.equal(state.projection.tasks.size, 80);

  const editor = await tokenFor(farm.url, farm.adminToken, "editor", "ed");
  const snap = await firstViews(farm.url, editor);
  assert.deepEqual(
    snap.tasks.map((x) => x.taskId),
    Array.from({ length: 50 }, (_, k) => id(70 + k)),
    "the 50 newest, archived or not",
  );
  assert.equal(snap.history?.more, 70);
  const model = new FarmViews();
  model.apply(snap);
  const client = httpClientFor(farm.url, editor);
  const order: string[] = [];
  while (model.history.more > 0) {
    const page = await client.views.history.query({ before: model.history.before!, limit: 7 });
    order.push(...page.tasks.map((x) => x.taskId));
    model.addHistory(page);
  }
  assert.deepEqual(
    order,
    Array.from({ length: 70 }, (_, k) => id(69 - k)),
  );
  assert.equal(model.tasks.size, 120);
  assert.deepEqual(
    model.unitsOf(id(0)).map((u) => [u.unitId, u.state]),
    [
      ["a", "cancelled"],
      ["b", "cancelled"],
    ],
    "an archived task comes with its units",
  );
});
