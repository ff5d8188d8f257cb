import assert from "node:assert/strict";
import { test } from "node:test";
import { createFarmClient, errorCode, type Lease } from "@optimus/farm-server";
import type { FarmEvent } from "@optimus/shared";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const journal = async (farm: { services: { state: { journal: { readAfter(s: number, n: number): Promise<FarmEvent[]> } } } }) =>
  farm.services.state.journal.readAfter(0, 100_000);

/** A worker that registers and takes leases but whose heartbeats we control by hand. */
async function manualWorker(url: string, token: string, nodeId: string) {
  const { client, close } = createFarmClient({ url, token, transport: "ws" });
  await client.worker.register.mutate({ nodeId, role: "codegen", maxConcurrentTasks: 1, model: { primary: "manual" } });
  const leases: Lease[] = [];
  const sub = client.worker.leases.subscribe({ nodeId }, { onData: (env) => leases.push(env.data as Lease) });
  return {
    client,
    leases,
    close: () => {
      sub.unsubscribe();
      close();
    },
  };
}

test("a worker that stops heartbeating loses its lease within two heartbeat intervals; its late submission is rejected and recorded", async (t) => {
  const H = 400;
  const farm = await startTestFarm(t, { config: { heartbeatIntervalMs: H } });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const token = await tokenFor(farm.url, farm.adminToken, "worker", "pool");
  const silent = await manualWorker(farm.url, token, "silent-1");
  t.after(() => silent.close());
  await admin.tasks.create.mutate({ id: "job", title: "job", units: [{ id: "u1", goal: "g" }] });
  const lease = await waitFor(() => silent.leases[0], "the silent worker's lease");
  assert.equal(lease.attempt, 1);
  const ref = { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId };
  // One heartbeat, then silence (a hung or partitioned worker).
  const hb = await silent.client.worker.heartbeat.mutate({ nodeId: "silent-1", leases: [ref] });
  assert.deepEqual(hb.lost, []);
  const lastBeat = Date.now();

  // A healthy worker joins; the unit must come to it once the silent lease expires.
  const ledger = newLedger();
  const agents = await startWorkers(farm.url, token, [{ nodeId: "healthy-1", role: "codegen", max: 1 }], ledger);
  t.after(() => stopAll(agents));
  await waitFor(() => ledger.accepted.length === 1, "the healthy worker to complete the unit");
  assert.equal(ledger.started[0]!.attempt, 2);
  const relasedAfter = ledger.started[0]!.at - lastBeat;
  assert.ok(relasedAfter <= 2 * H + 100, `re-leased ${relasedAfter} ms after the last heartbeat (limit: two intervals, ${2 * H} ms)`);
  t.diagnostic(`re-leased ${relasedAfter} ms after the dead worker's last heartbeat (heartbeat interval ${H} ms)`);

  // The silent worker wakes up and reports: rejected with a clear reason, and the journal records it.
  const late = await silent.client.worker.submit
    .mutate({ nodeId: "silent-1", lease: ref, result: { outcome: "succeeded", summary: "late" } })
    .catch((e: unknown) => e);
  assert.equal(errorCode(late), "CONFLICT");
  assert.match(
    (late as Error).message,
    /^lease lost: silent-1 no longer holds unit job\/u1 attempt 1: that lease expired; the unit is now completed at attempt 2$/,
  );
  const hb2 = await silent.client.worker.heartbeat.mutate({ nodeId: "silent-1", leases: [ref] });
  assert.equal(hb2.lost.length, 1);
  const events = await journal(farm.server);
  const rejected = events.filter((e) => e.type === "report_rejected");
  assert.equal(rejected.length, 1);
  assert.deepEqual([rejected[0]!.actor, (rejected[0]!.data as { worker: string }).worker], ["worker:silent-1", "silent-1"]);
  assert.deepEqual(events.filter((e) => e.type === "unit_completed").length, 1);
  const expired = events.find((e) => e.type === "lease_expired")!;
  const leased = events.filter((e) => e.type === "unit_leased");
  assert.ok(expired.ts - leased[0]!.ts <= 2 * H, `lease expired ${expired.ts - leased[0]!.ts} ms after it was granted`);
});

test("failures retry with exponential backoff, dead-letter after the last attempt, and a human can retry", async (t) => {
  const farm = await startTestFarm(t, {
    config: { heartbeatIntervalMs: 1000, maxAttempts: 3, retryBackoff: { baseMs: 150, maxMs: 5000 } },
  });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const token = await tokenFor(farm.url, farm.adminToken, "worker", "pool");
  let failUntil = 3;
  const ledger = newLedger();
  const agents = await startWorkers(farm.url, token, [{ nodeId: "w1", role: "codegen", max: 1 }], ledger, async () =>
    --failUntil >= 0 ? { outcome: "failed", summary: `check failed (${failUntil} left)` } : { outcome: "succeeded", summary: "fixed" },
  );
  t.after(() => stopAll(agents));
  await admin.tasks.create.mutate({
    id: "flaky",
    title: "flaky",
    units: [
      { id: "u1", goal: "g" },
      { id: "u2", goal: "after u1", dependsOn: ["u1"] },
    ],
  });
  const dead = await waitFor(async () => {
    const u = await admin.units.get.query({ taskId: "flaky", unitId: "u1" });
    return u.state === "dead" ? u : null;
  }, "u1 to be dead-lettered");
  assert.equal(dead.attempt, 3);
  assert.match(dead.reason ?? "", /check failed/);
  assert.equal((await admin.tasks.get.query({ taskId: "flaky" })).task.state, "failed");
  assert.equal((await admin.units.get.query({ taskId: "flaky", unitId: "u2" })).state, "planned", "its dependent waits");

  const events = await journal(farm.server);
  const fails = events.filter((e) => e.type === "unit_failed").map((e) => e.data as { next: string; notBefore?: number; attempt: number });
  const leases = events.filter((e) => e.type === "unit_leased");
  assert.deepEqual(
    fails.map((f) => f.next),
    ["retry", "retry", "dead"],
  );
  const failTs = events.filter((e) => e.type === "unit_failed").map((e) => e.ts);
  const waits = [0, 1].map((i) => fails[i]!.notBefore! - failTs[i]!);
  // Full jitter in [ceiling/2, ceiling], ceiling doubling: 150 then 300 ms.
  assert.ok(waits[0]! >= 75 && waits[0]! <= 150, `first backoff ${waits[0]} ms`);
  assert.ok(waits[1]! >= 150 && waits[1]! <= 300, `second backoff ${waits[1]} ms`);
  for (const i of [0, 1]) assert.ok(leases[i + 1]!.ts >= fails[i]!.notBefore!, "not leased again before its backoff ran out");

  await assert.rejects(
    admin.units.retry.mutate({ taskId: "flaky", unitId: "u2" }),
    /cannot retry unit flaky\/u2: it is planned, where retry does not apply$/,
  );
  await admin.units.retry.mutate({ taskId: "flaky", unitId: "u1" });
  await waitFor(async () => (await admin.tasks.get.query({ taskId: "flaky" })).task.state === "completed", "the retried task to complete");
  const retried = (await journal(farm.server)).find((e) => e.type === "unit_retried")!;
  assert.equal(retried.actor, "admin:admin");
});

test("cancelling a task ends its units and tells the worker holding a lease to stop", async (t) => {
  const farm = await startTestFarm(t, { config: { heartbeatIntervalMs: 200 } });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const token = await tokenFor(farm.url, farm.adminToken, "worker", "pool");
  let aborted = false;
  const ledger = newLedger();
  const agents = await startWorkers(farm.url, token, [{ nodeId: "w1", role: "codegen", max: 1 }], ledger, async (_lease, ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve(), { once: true }));
    aborted = true;
    return { outcome: "succeeded", summary: "too late" };
  });
  t.after(() => stopAll(agents));
  await admin.tasks.create.mutate({
    id: "long",
    title: "long",
    units: [
      { id: "u1", goal: "g" },
      { id: "u2", goal: "g" },
    ],
  });
  await waitFor(() => ledger.started.length === 1, "the first unit to start");
  const cancelled = await admin.tasks.cancel.mutate({ taskId: "long", reason: "not needed" });
  assert.equal(cancelled.state, "cancelled");
  await waitFor(() => aborted, "the worker to be told its lease is gone");
  await sleep(300);
  const { units } = await admin.tasks.get.query({ taskId: "long" });
  assert.deepEqual(
    units.map((u) => [u.unitId, u.state, u.reason]),
    [
      ["u1", "cancelled", "not needed"],
      ["u2", "cancelled", "not needed"],
    ],
  );
  assert.equal(ledger.accepted.length, 0, "nothing of a cancelled task is accepted");
  assert.equal(ledger.started.length, 1, "no new lease for a cancelled task");
});
