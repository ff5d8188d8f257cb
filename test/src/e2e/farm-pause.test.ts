import assert from "node:assert/strict";
import { test } from "node:test";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

test(
  "a farm paused past the lease time (SIGSTOP) does not take their leases from healthy workers when it resumes",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeRepo(t);
    // Leases of 600 ms (heartbeats every 400 ms); the farm is then stopped for 2.5 s.
    const farm = await startTestFarm(t, { mode: "process", repo, args: ["--heartbeat-ms", "400"] });
    const admin = httpClientFor(farm.url, farm.adminToken);
    const token = await tokenFor(farm.url, farm.adminToken, "worker", "w");
    let release!: () => void;
    const working = new Promise<void>((r) => (release = r));
    const ledger = newLedger();
    const agents = await startWorkers(farm.url, token, [{ nodeId: "steady", role: "codegen", max: 1 }], ledger, async () => {
      await working;
      return { outcome: "succeeded", summary: "done" };
    });
    t.after(() => stopAll(agents));
    await admin.tasks.create.mutate({
      id: "paused",
      title: "Across a pause",
      units: [{ id: "u1", goal: "work through the farm's pause" }],
    });
    await waitFor(
      async () => (await admin.units.get.query({ taskId: "paused", unitId: "u1" })).state === "leased",
      "the unit to be leased",
    );

    process.kill(farm.pid!, "SIGSTOP");
    await sleep(2_500); // the worker keeps heartbeating into the stopped farm's socket
    process.kill(farm.pid!, "SIGCONT");
    await sleep(1_500); // the farm catches up with what waited, and scans its leases a few times

    const u = await admin.units.get.query({ taskId: "paused", unitId: "u1" });
    assert.deepEqual([u.state, u.attempt, u.worker], ["leased", 1, "steady"], `the healthy worker keeps its lease (${u.reason ?? ""})`);
    release();
    await waitFor(
      async () => (await admin.units.get.query({ taskId: "paused", unitId: "u1" })).state === "completed",
      "the unit to complete on attempt 1",
    );
    assert.deepEqual(
      ledger.started.map((s) => s.attempt),
      [1],
      "worked once, never leased again",
    );
  },
);
