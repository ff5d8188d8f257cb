import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { parseManifestYaml } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { gitLog, makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { filesDirFor, stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

test("a task sent from the CLI is journaled, written as a manifest, committed, and leased by role, capacity and dependency", async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  const farm = await startTestFarm(t, { mode: "process", repo, args: ["--heartbeat-ms", "300"] });
  const env = { OPTIMUS_FARM: farm.url };

  // 1. `optimus send` from the repository: the CLI finds the local farm's admin token by itself.
  const sent = await runCli(["send", "Make the parser accept tabs", "--files", "src/parser.ts", "src/lexer.ts"], { cwd: repo, env });
  assert.equal(sent.code, 0, sent.stderr);
  const taskId = sent.stdout.trim();
  assert.match(taskId, /^make-the-parser-accept-tabs-[0-9a-f]{6}$/);

  // Journaled: the creation is in the journal, with who did it, and the hash chain holds.
  const admin = httpClientFor(farm.url, farm.adminToken);
  const db = new Database(join(stateDirFor(repo), "journal.db"), { readonly: true });
  const row = db.prepare("SELECT actor, data FROM events WHERE type = 'task_created'").get() as { actor: string; data: string };
  db.close();
  assert.equal(row.actor, "admin:admin");
  assert.equal(JSON.parse(row.data).taskId, taskId);
  const verify = await runCli(["audit", "verify"], { cwd: repo });
  assert.equal(verify.code, 0, verify.stderr);
  assert.match(verify.stdout, /audit chain intact: \d+ entries verified/);

  // Written to .optimus/tasks/<id>/manifest.yaml in the farm's home and committed on the task's own
  // branch (pushed to the origin): no bookkeeping commit on main, nothing in the repository's folder.
  const file = join(filesDirFor(repo), ".optimus", "tasks", taskId, "manifest.yaml");
  await waitFor(() => existsSync(file), "the manifest file");
  const parsed = parseManifestYaml(readFileSync(file, "utf8"), file);
  assert.ok(parsed.ok);
  assert.deepEqual(parsed.manifest.units[0]!.files, ["src/parser.ts", "src/lexer.ts"]);
  assert.equal(parsed.manifest.units[0]!.status?.state, "ready");
  // (committed onto the task's branch when the branch is published: see the resident-farm tests)
  assert.doesNotMatch(gitLog(repo).join("\n"), /^optimus: /m, "no bookkeeping commit on main");
  assert.equal(existsSync(join(repo, ".optimus", "tasks")), false, "no task files in the repository's folder");
  // The farm's state is in its home, not in the repository (nothing to keep out of git there).
  assert.equal(existsSync(join(repo, ".optimus", "state")), false, "no farm state in the repository");
  assert.ok(existsSync(join(stateDirFor(repo), "journal.db")), "the journal is in the farm's home");
  assert.equal(existsSync(join(repo, ".optimus", ".gitignore")), false, "no untracked .gitignore left in the repository");

  // 2. A manifest with a DAG: codegen a → review b (after a); codegen c, d, e (e after b).
  const manifest = join(repo, "dag.yaml");
  writeFileSync(
    manifest,
    `title: DAG\nid: dag\nunits:
  - { id: a, goal: write a }
  - { id: b, goal: review a, role: review, dependsOn: [a] }
  - { id: c, goal: write c }
  - { id: d, goal: write d }
  - { id: e, goal: write e, dependsOn: [b] }
`,
  );
  const imported = await runCli(["task", "import", manifest], { cwd: repo, env });
  assert.equal(imported.code, 0, imported.stderr);
  assert.equal(imported.stdout.trim(), "dag");

  // 3. Two workers over WebSocket: a codegen worker (capacity 2) and a review worker (capacity 1).
  const workerToken = (await runCli(["token", "create", "--role", "worker", "--name", "pool"], { cwd: repo, env })).stdout.trim();
  assert.match(workerToken, /^opt_[0-9a-f]{12}_/);
  const ledger = newLedger();
  const agents = await startWorkers(
    farm.url,
    workerToken,
    [
      { nodeId: "worker-01", role: "codegen", max: 2 },
      { nodeId: "worker-02", role: "review", max: 1 },
    ],
    ledger,
  );
  t.after(() => stopAll(agents));

  // Complete on the farm, and every worker has its answer (a worker records a submission once the
  // farm answered it, which can be a moment after the farm's state says completed).
  const all = await waitFor(async () => {
    const tasks = await admin.tasks.list.query();
    return tasks.length === 2 && tasks.every((x) => x.state === "completed") && ledger.accepted.length + ledger.rejected.length >= 6
      ? tasks
      : null;
  }, "both tasks to complete");
  assert.equal(all.length, 2);

  // Roles: review units only on the review worker, codegen units only on the codegen worker.
  const byUnit = new Map(ledger.started.map((s) => [s.key, s]));
  assert.equal(byUnit.get("dag/b")!.worker, "worker-02");
  for (const k of ["dag/a", "dag/c", "dag/d", "dag/e", `${taskId}/u1`]) assert.equal(byUnit.get(k)!.worker, "worker-01", k);
  // Capacity: never more than maxConcurrentTasks at once; the codegen worker did use its 2 slots.
  assert.equal(ledger.peak.get("worker-01"), 2);
  assert.equal(ledger.peak.get("worker-02"), 1);
  // Dependencies: in the journal's order, a unit is leased only after the units it depends on completed.
  const jdb = new Database(join(stateDirFor(repo), "journal.db"), { readonly: true });
  const seqOf = (type: string, unitId: string) =>
    jdb
      .prepare(
        "SELECT min(seq) FROM events WHERE type = ? AND json_extract(data, '$.taskId') = 'dag' AND json_extract(data, '$.unitId') = ?",
      )
      .pluck()
      .get(type, unitId) as number;
  assert.ok(seqOf("unit_leased", "b") > seqOf("unit_completed", "a"), "b leased after a completed");
  assert.ok(seqOf("unit_leased", "e") > seqOf("unit_completed", "b"), "e leased after b completed");
  jdb.close();
  assert.equal(ledger.accepted.length, 6);
  assert.equal(ledger.rejected.length, 0);

  // Fleet view and the manifest mirror reflect the outcome.
  const fleet = await admin.fleet.workers.query();
  assert.deepEqual(fleet.map((w) => [w.nodeId, w.role, w.connected]).sort(), [
    ["worker-01", "codegen", true],
    ["worker-02", "review", true],
  ]);
  const dagFile = join(filesDirFor(repo), ".optimus", "tasks", "dag", "manifest.yaml");
  await waitFor(
    () => /state: completed\n\s+updatedAt: [^\n]+\n(?![\s\S]*state: (ready|leased))/.test(readFileSync(dagFile, "utf8")),
    "the manifest mirror to show the task completed",
  );
  const dag = parseManifestYaml(readFileSync(dagFile, "utf8"));
  assert.ok(dag.ok);
  assert.deepEqual(
    dag.manifest.units.map((u) => u.status?.state),
    ["completed", "completed", "completed", "completed", "completed"],
  );
  assert.equal(dag.manifest.status?.state, "completed");

  // `optimus status` prints the table (not a TTY here, so once); inside the repository it finds the
  // running farm (any port) and its admin token by itself.
  const st = await runCli(["status"], { cwd: repo, env: { OPTIMUS_FARM: "", OPTIMUS_TOKEN: "" } });
  assert.equal(st.code, 0, st.stderr);
  assert.match(st.stdout, /dag\s+completed/);
  assert.match(st.stdout, /\n {2}b\s+completed\s+1\s+worker-02/);

  // Health and metrics on the same port.
  const health = (await (await fetch(`${farm.url}/healthz`)).json()) as { ok: boolean };
  assert.equal(health.ok, true);
  const metrics = await (await fetch(`${farm.url}/metrics`)).text();
  assert.match(metrics, /optimus_units\{state="completed"\} 6/);
  assert.match(metrics, /optimus_workers_connected 2/);
  assert.match(metrics, /optimus_events_total\{type="unit_leased"\} 6/);
});
