import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

type Snapshot = Record<string, { state: string; units: Record<string, { state: string; attempt: number }> }>;

async function snapshot(url: string, token: string): Promise<Snapshot> {
  const c = httpClientFor(url, token);
  const out: Snapshot = {};
  for (const t of await c.tasks.list.query()) {
    const { units } = await c.tasks.get.query({ taskId: t.taskId });
    out[t.taskId] = { state: t.state, units: Object.fromEntries(units.map((u) => [u.unitId, { state: u.state, attempt: u.attempt }])) };
  }
  return out;
}

test("with the journal deleted, a restart rebuilds the same tasks and units from the repository files and carries on", async (t) => {
  const repo = makeRepo(t);
  mkdirSync(join(repo, ".optimus"), { recursive: true });
  writeFileSync(
    join(repo, ".optimus", "config.yaml"),
    "retryBackoff: { baseMs: 20, maxMs: 100 }\nmaxAttempts: 2\nheartbeatIntervalMs: 300\nprloop: { reviewEveryCodegenUnit: false }\nplanner: { enabled: false }\n",
  );
  const farm = await startTestFarm(t, { mode: "process", repo });
  const admin = httpClientFor(farm.url, farm.adminToken);

  // Only a codegen worker runs, so review units stay ready and what depends on them stays planned.
  await admin.tasks.create.mutate({
    id: "alpha",
    title: "alpha",
    units: [
      { id: "a1", goal: "g" },
      { id: "a2", goal: "g", dependsOn: ["a1"] },
      { id: "a3", goal: "review", role: "review", dependsOn: ["a2"] },
      { id: "a4", goal: "g" },
      { id: "a5", goal: "g", dependsOn: ["a3"] },
      { id: "a6", goal: "review", role: "review" },
    ],
  });
  await admin.tasks.create.mutate({
    id: "bravo",
    title: "bravo",
    units: [
      { id: "b1", goal: "review", role: "review" },
      { id: "b2", goal: "review", role: "review" },
    ],
  });
  await admin.tasks.cancel.mutate({ taskId: "bravo", reason: "changed my mind" });
  await admin.tasks.create.mutate({ id: "charlie", title: "charlie", units: [{ id: "c1", goal: "always fails" }] });

  const workerToken = await tokenFor(farm.url, farm.adminToken, "worker", "w");
  const ledger = newLedger();
  const codegen = await startWorkers(farm.url, workerToken, [{ nodeId: "cg-1", role: "codegen", max: 2 }], ledger, async (lease) =>
    lease.taskId === "charlie" ? { outcome: "failed", summary: "tests fail" } : { outcome: "succeeded", summary: "ok" },
  );
  await waitFor(async () => {
    const s = await snapshot(farm.url, farm.adminToken);
    return s.alpha?.units.a4?.state === "completed" && s.alpha.units.a2?.state === "completed" && s.charlie?.units.c1?.state === "dead";
  }, "alpha's codegen units to complete and charlie's unit to be dead-lettered");
  await stopAll(codegen);
  const before = await snapshot(farm.url, farm.adminToken);
  assert.deepEqual(before.alpha!.units, {
    a1: { state: "completed", attempt: 1 },
    a2: { state: "completed", attempt: 1 },
    a3: { state: "ready", attempt: 0 },
    a4: { state: "completed", attempt: 1 },
    a5: { state: "planned", attempt: 0 },
    a6: { state: "ready", attempt: 0 },
  });
  assert.deepEqual(
    [before.bravo!.state, before.charlie!.state, before.charlie!.units.c1],
    ["cancelled", "failed", { state: "dead", attempt: 2 }],
  );

  // Graceful stop (manifests flushed), then the journal is lost entirely.
  await farm.stop();
  // A person commits a hand-written manifest while the farm is down: the farm picks it up on its next start.
  mkdirSync(join(repo, ".optimus", "tasks", "delta"), { recursive: true });
  writeFileSync(join(repo, ".optimus", "tasks", "delta", "manifest.yaml"), "title: Hand written\nunits:\n  - id: d1\n    goal: do it\n");
  execFileSync("git", ["add", "-f", ".optimus/tasks/delta/manifest.yaml"], { cwd: repo });
  execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@l", "commit", "-q", "-m", "add delta"], { cwd: repo });

  for (const f of ["journal.db", "journal.db-wal", "journal.db-shm"]) rmSync(join(stateDirFor(repo), f), { force: true });
  await farm.start();
  assert.match(farm.log, /rebuilt 3 task\(s\) from their manifest files/);
  assert.match(farm.log, /imported 1 new task manifest\(s\): delta/);

  const after = await snapshot(farm.url, farm.adminToken);
  const { delta, ...rebuilt } = after;
  assert.deepEqual(rebuilt, before, "the same task and unit states as before the journal was lost");
  assert.deepEqual(delta, { state: "open", units: { d1: { state: "ready", attempt: 0 } } });
  // The rebuilt journal is a fresh, intact chain.
  const verify = await runCli(["audit", "verify"], { cwd: repo });
  assert.equal(verify.code, 0, verify.stderr);

  // And it carries on: with a review worker too, everything left runs, in dependency order.
  const ledger2 = newLedger();
  const agents = await startWorkers(
    farm.url,
    workerToken,
    [
      { nodeId: "cg-1", role: "codegen", max: 2 },
      { nodeId: "rv-1", role: "review", max: 1 },
    ],
    ledger2,
  );
  t.after(() => stopAll(agents));
  await waitFor(async () => {
    const s = await snapshot(farm.url, farm.adminToken);
    return s.alpha?.state === "completed" && s.delta?.state === "completed";
  }, "alpha and delta to complete after the rebuild");
  const order = ledger2.started.map((s) => s.key);
  assert.ok(order.indexOf("alpha/a5") > order.indexOf("alpha/a3"), "a5 waited for a3");
  assert.deepEqual(
    order.filter((k) => k.startsWith("alpha/")).sort(),
    ["alpha/a3", "alpha/a5", "alpha/a6"],
    "completed units are not redone",
  );
  const final = await snapshot(farm.url, farm.adminToken);
  assert.equal(final.bravo!.state, "cancelled");
  assert.equal(final.charlie!.units.c1!.state, "dead");
});
