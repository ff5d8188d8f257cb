import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { cloneDirFor } from "@optimus/farm-server";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

test("higher priority runs first, and work spreads to the least-busy worker", async (t) => {
  const farm = await startTestFarm(t, { config: { heartbeatIntervalMs: 1000 } });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const token = await tokenFor(farm.url, farm.adminToken, "worker", "pool");
  // Queue first, then connect: the order the single slot is filled in is the priority order.
  await admin.tasks.create.mutate({
    id: "low",
    title: "low",
    priority: 0,
    units: [
      { id: "a", goal: "g" },
      { id: "b", goal: "g", priority: 5 },
    ],
  });
  await admin.tasks.create.mutate({ id: "high", title: "high", priority: 10, units: [{ id: "a", goal: "g" }] });
  await admin.tasks.create.mutate({
    id: "urgent",
    title: "urgent",
    priority: 20,
    units: [
      { id: "a", goal: "g", priority: -3 },
      { id: "b", goal: "g" },
    ],
  });
  // Leasable once their branches are cut (off the hot path, just after each task is recorded).
  await waitFor(
    () =>
      ["low", "high", "urgent"].every(
        (id) => spawnSync("git", ["rev-parse", "-q", "--verify", `refs/heads/optimus/${id}`], { cwd: cloneDirFor(farm.repo) }).status === 0,
      ),
    "the tasks' branches",
  );
  const ledger = newLedger();
  const solo = await startWorkers(farm.url, token, [{ nodeId: "solo", role: "codegen", max: 1 }], ledger);
  await waitFor(() => ledger.accepted.length === 5, "all five units");
  await stopAll(solo);
  assert.deepEqual(
    ledger.started.map((s) => s.key),
    ["urgent/b", "urgent/a", "high/a", "low/b", "low/a"],
  );

  // Three workers with two slots each, six slow units: each worker gets two, none gets three.
  const ledger2 = newLedger();
  const pool = await startWorkers(
    farm.url,
    token,
    ["p1", "p2", "p3"].map((nodeId) => ({ nodeId, role: "codegen" as const, max: 2 })),
    ledger2,
    async () => {
      await sleep(300);
      return { outcome: "succeeded", summary: "" };
    },
  );
  t.after(() => stopAll(pool));
  await waitFor(
    async () => (await admin.fleet.workers.query()).filter((w) => w.connected && w.nodeId.startsWith("p")).length === 3,
    "the pool to connect",
  );
  await admin.tasks.create.mutate({
    id: "spread",
    title: "spread",
    units: Array.from({ length: 6 }, (_, i) => ({ id: `u${i}`, goal: "g" })),
  });
  await waitFor(() => ledger2.accepted.length === 6, "the six units");
  const perWorker = new Map<string, number>();
  for (const s of ledger2.started) perWorker.set(s.worker, (perWorker.get(s.worker) ?? 0) + 1);
  assert.deepEqual([...perWorker.values()], [2, 2, 2], JSON.stringify([...perWorker]));
  // In the journal's order, the first three leases went to three different workers (least busy first).
  const leased = (await farm.server.services.state.journal.readAfter(0, 10_000))
    .filter((e) => e.type === "unit_leased" && (e.data as { taskId: string }).taskId === "spread")
    .map((e) => (e.data as { worker: string }).worker);
  assert.equal(new Set(leased.slice(0, 3)).size, 3, leased.join(","));
});
