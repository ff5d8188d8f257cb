/**
 * Restarts that do not depend on history (issue 12): a start reads only the task manifests the
 * journal does not know — those committed on the origin's default branch since the commit it
 * imported last — and none at all when nothing changed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { cloneDirFor } from "@optimus/farm-server";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { waitFor } from "../helpers/wait.js";

/** A person commits a hand-written task manifest on the origin's main. */
function commitManifest(repo: string, taskId: string): void {
  mkdirSync(join(repo, ".optimus", "tasks", taskId), { recursive: true });
  writeFileSync(
    join(repo, ".optimus", "tasks", taskId, "manifest.yaml"),
    `title: Task ${taskId}\nunits:\n  - id: u1\n    goal: do ${taskId}\n`,
  );
  execFileSync("git", ["add", "-f", `.optimus/tasks/${taskId}/manifest.yaml`], { cwd: repo });
  execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@l", "commit", "-q", "-m", `task ${taskId}`], { cwd: repo });
}

test("a restart with an unchanged history reads no manifest; one committed since is the only one read", { timeout: 90_000 }, async (t) => {
  const repo = makeRepo(t);
  for (let i = 1; i <= 30; i++) commitManifest(repo, `t-${i}`);
  const config = { planner: { enabled: false }, files: { debounceMs: 50 } };
  const farm = await startTestFarm(t, { repo, config });
  const restart = async () => {
    await farm.stop();
    await farm.start();
    return farm.server;
  };

  const first = farm.server;
  assert.equal(first.startup.imports.imported.length, 30, "the first start imports every committed manifest");
  // A task sent to the farm as well: the farm writes its manifest into its own files.
  await farm.client.tasks.create.mutate({ id: "t-sent", title: "Sent", units: [{ id: "u1", goal: "x" }] });

  const second = await restart();
  assert.deepEqual(
    [second.startup.imports.read, second.startup.imports.imported, second.startup.imports.restored],
    [0, [], []],
    "nothing changed: no manifest read",
  );
  assert.equal(second.services.state.projection.tasks.size, 31);

  commitManifest(repo, "t-new");
  const third = await restart();
  assert.deepEqual(third.startup.imports.imported, ["t-new"]);
  // Read once from the default branch (and once more from the origin's folder, which is read as files too).
  assert.ok(third.startup.imports.read >= 1 && third.startup.imports.read <= 2, `read ${third.startup.imports.read}`);
  assert.equal(third.services.state.projection.tasks.size, 32);

  const fourth = await restart();
  assert.equal(fourth.startup.imports.read, 0);
  assert.equal(fourth.startup.imports.branches, 0);
  await farm.stop();

  // Finished without a merge (its unit needed no change, or it was cancelled), then archived: its
  // branch stays in the farm's clone, and a restart still treats the task as known — it neither
  // extracts the branch nor reads its manifest.
  const archiving = await startTestFarm(t, {
    repo,
    config: { ...config, prloop: { reviewEveryCodegenUnit: false }, history: { retentionMs: 0, sweepEveryMs: 50 } },
  });
  // (a restart issues no admin token: the worker's comes from the farm's token store, as `token create` would)
  const agents = await startWorkers(
    archiving.url,
    (await archiving.server.services.tokens.create("worker", "w")).token,
    [{ nodeId: "w", role: "codegen", max: 4 }],
    newLedger(),
    async () => ({ outcome: "succeeded", summary: "nothing to change" }),
  );
  t.after(() => stopAll(agents));
  // Every task (the 32 above) is worked on and needs no change.
  await waitFor(() => archiving.server.services.state.projection.tasks.size === 0, "every finished task to be archived", 60_000);
  assert.equal(archiving.server.services.state.projection.archived, 32);
  assert.ok(
    execFileSync("git", ["for-each-ref", "refs/heads/optimus/t-1"], { cwd: cloneDirFor(repo) })
      .toString()
      .includes("optimus/t-1"),
    "the branch of a task finished without a merge is still there",
  );
  await stopAll(agents);
  await archiving.stop();
  const fifth = await restart();
  assert.deepEqual([fifth.startup.imports.read, fifth.startup.imports.branches, fifth.startup.imports.imported], [0, 0, []]);
  assert.equal(fifth.services.state.projection.tasks.size, 0, "archived tasks stay cold");
});
