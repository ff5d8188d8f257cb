import assert from "node:assert/strict";
import { test } from "node:test";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

test("periodic snapshots never stall the farm, and a restart from a snapshot has the same state", async (t) => {
  const repo = makeRepo(t);
  const farm = await startTestFarm(t, {
    repo,
    config: { snapshotEvery: 10, heartbeatIntervalMs: 500, prloop: { reviewEveryCodegenUnit: false } },
  });
  const admin = farm.adminToken;
  const token = await tokenFor(farm.url, admin, "worker", "w");
  const ledger = newLedger();
  const agents = await startWorkers(farm.url, token, [{ nodeId: "w1", role: "codegen", max: 4 }], ledger);
  // Well past several snapshot points (10 events each): a stalled commit would hang here.
  for (let i = 0; i < 30; i++)
    await httpClientFor(farm.url, admin).tasks.create.mutate({
      title: `t${i}`,
      units: [
        { id: "a", goal: "g" },
        { id: "b", goal: "g", dependsOn: ["a"] },
      ],
    });
  await waitFor(
    async () => (await httpClientFor(farm.url, admin).tasks.list.query()).every((x) => x.state === "completed"),
    "all 30 tasks",
    30_000,
  );
  await stopAll(agents);
  const before = JSON.stringify(
    (await httpClientFor(farm.url, admin).units.list.query()).map((u) => [u.taskId, u.unitId, u.state, u.attempt]),
  );
  const seq = farm.server.services.state.journal.lastCommittedSeq();
  await farm.stop();

  await farm.start();
  const snap = await farm.server.services.state.journal.loadSnapshot();
  assert.ok(snap && snap.seq >= seq - 10, `a recent snapshot was saved (at ${snap?.seq}, journal at ${seq})`);
  assert.ok(farm.server.startup.replayed <= 10, `only the tail after the snapshot is replayed (${farm.server.startup.replayed} events)`);
  const after = JSON.stringify(
    (await httpClientFor(farm.url, admin).units.list.query()).map((u) => [u.taskId, u.unitId, u.state, u.attempt]),
  );
  assert.equal(after, before);
});
