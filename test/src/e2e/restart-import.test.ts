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
import { pino } from "pino";
import { cloneDirFor, startFarm } from "@optimus/farm-server";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { ServerConfig } from "@optimus/shared";
import { farmOnRepo } from "../helpers/in-process-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { waitFor } from "../helpers/wait.js";

/** A person commits a hand-written task manifest on the origin's main. */
function commitManifest(repo: string, taskId: string): void {
  mkdirSync(join(repo, ".optimus", "tasks", taskId), { recursive: true });
  writeFileSync(join(repo, ".optimus", "tasks", taskId, "manifest.yaml"), `title: Task ${taskId}\nunits:\n  - id: u1\n    goal: do ${taskId}\n`);
  execFileSync("git", ["add", "-f", `.optimus/tasks/${taskId}/manifest.yaml`], { cwd: repo });
  execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@l", "commit", "-q", "-m", `task ${taskId}`], { cwd: repo });
}

test("a restart with an unchanged history reads no manifest; one committed since is the only one read", { timeout: 90_000 }, async (t) => {
  const repo = makeRepo(t);
  for (let i = 1; i <= 30; i++) commitManifest(repo, `t-${i}`);
  const config = { planner: { enabled: false }, files: { debounceMs: 50 } };
  const restart = async () => {
    const farm = await startFarm({ repo, config: ServerConfig.parse({ port: 0, ...config }), log: pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "silent" }) });
    t.after(() => farm.close());
    return { farm };
  };

  const first = await farmOnRepo(t, repo, config);
  assert.equal(first.farm.startup.imports.imported.length, 30, "the first start imports every committed manifest");
  // A task sent to the farm as well: the farm writes its manifest into its own files.
  await first.client.tasks.create.mutate({ id: "t-sent", title: "Sent", units: [{ id: "u1", goal: "x" }] });
  await first.farm.close();

  const second = await restart();
  assert.deepEqual([second.farm.startup.imports.read, second.farm.startup.imports.imported, second.farm.startup.imports.restored], [0, [], []], "nothing changed: no manifest read");
  assert.equal(second.farm.services.state.projection.tasks.size, 31);
  await second.farm.close();

  commitManifest(repo, "t-new");
  const third = await restart();
  assert.deepEqual(third.farm.startup.imports.imported, ["t-new"]);
  // Read once from the default branch (and once more from the origin's folder, which is read as files too).
  assert.ok(third.farm.startup.imports.read >= 1 && third.farm.startup.imports.read <= 2, `read ${third.farm.startup.imports.read}`);
  assert.equal(third.farm.services.state.projection.tasks.size, 32);
  await third.farm.close();

  const fourth = await restart();
  assert.equal(fourth.farm.startup.imports.read, 0);
  assert.equal(fourth.farm.startup.imports.branches, 0);
  await fourth.farm.close();

  // Finished without a merge (its unit needed no change, or it was cancelled), then archived: its
  // branch stays in the farm's clone, and a restart still treats the task as known — it neither
  // extracts the branch nor reads its manifest.
  const archiving = await startFarm({ repo, config: ServerConfig.parse({ port: 0, ...config, prloop: { reviewEveryCodegenUnit: false }, history: { retentionMs: 0, sweepEveryMs: 50 } }), log: pino({ level: "silent" }) });
  t.after(() => archiving.close());
  // (a restart issues no admin token: the worker's comes from the farm's token store, as `token create` would)
  const agents = await startWorkers(archiving.url, archiving.services.tokens.create("worker", "w").token, [{ nodeId: "w", role: "codegen", max: 4 }], newLedger(), async () => ({ outcome: "succeeded", summary: "nothing to change" }));
  t.after(() => stopAll(agents));
  // Every task (the 32 above) is worked on and needs no change.
  await waitFor(() => archiving.services.state.projection.tasks.size === 0, "every finished task to be archived", 60_000);
  assert.equal(archiving.services.state.projection.archived, 32);
  assert.ok(execFileSync("git", ["for-each-ref", "refs/heads/optimus/t-1"], { cwd: cloneDirFor(repo) }).toString().includes("optimus/t-1"), "the branch of a task finished without a merge is still there");
  await stopAll(agents);
  await archiving.close();
  const fifth = await restart();
  assert.deepEqual([fifth.farm.startup.imports.read, fifth.farm.startup.imports.branches, fifth.farm.startup.imports.imported], [0, 0, []]);
  assert.equal(fifth.farm.services.state.projection.tasks.size, 0, "archived tasks stay cold");
});
