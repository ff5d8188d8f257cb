import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { git, makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { CliProcess } from "../helpers/processes.js";
import { sleep, waitFor } from "../helpers/wait.js";

const reply = (req: StandinRequest) =>
  req.messages[0]!.content.startsWith("You review")
    ? JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] })
    : JSON.stringify({
        summary: "fix",
        edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: "return a + b;" }],
        done: true,
      });

async function setup(t: { after(fn: () => unknown): void }, evalCommand: string, chunkDelayMs = 0) {
  const repo = makeFixtureRepo(t);
  // Replace the eval suite: the slow one gives the test time to kill the farm mid-eval.
  const { writeFarmConfig } = await import("../helpers/repo.js");
  writeFarmConfig(repo, `prloop:\n  eval:\n    - { name: tests, command: "${evalCommand}", timeoutMs: 60000 }\n`);
  const model = await startOpenAiStandin({ script: Array.from({ length: 20 }, () => reply), chunkDelayMs });
  t.after(() => model.close());
  const farm = await startTestFarm(t, { mode: "process", repo, args: ["--heartbeat-ms", "500"] });
  const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: farm.adminToken };
  // Coders and reviewers hold different tokens: a review counts only from another token than the author's.
  const tokens: Record<string, string> = {};
  for (const role of ["codegen", "review"])
    tokens[role] = (await runCli(["token", "create", "--role", "worker", "--name", `${role}-pool`], { cwd: repo, env })).stdout.trim();
  const workDir = mkdtempSync(join(tmpdir(), "optimus-workers-"));
  t.after(() => rmSync(workDir, { recursive: true, force: true }));
  const workers: CliProcess[] = [];
  const startWorker = (role: string, id: string) => {
    const w = new CliProcess(
      ["worker", "--role", role, "--model", model.url, "--node-id", id, "--work-dir", join(workDir, id), "--farm", farm.url],
      { cwd: repo, env: { OPTIMUS_TOKEN: tokens[role]! } },
    );
    workers.push(w);
    return w;
  };
  t.after(() => Promise.all(workers.map((w) => w.stop("SIGKILL"))));
  return { repo, farm, env, startWorker, admin: () => httpClientFor(farm.url, farm.adminToken) };
}

const mergedOnce = (repo: string, taskId: string) =>
  git(repo, "log", "--format=%B", "main").match(new RegExp(`Optimus-Unit: ${taskId}/u1#`, "g"))?.length ?? 0;

test("killing the farm mid-eval ends with the unit merged exactly once", { timeout: 180_000 }, async (t) => {
  const s = await setup(t, "sleep 2 && node test/add.test.js");
  const workers = [s.startWorker("codegen", "cg-1"), s.startWorker("review", "rv-1")];
  await waitFor(() => workers.every((w) => w.log.includes("waiting for units")), "workers", 30_000);
  const taskId = (
    await runCli(["send", "Make add add", "--files", "src/add.js", "--check", "node test/add.test.js"], { cwd: s.repo, env: s.env })
  ).stdout.trim();
  await waitFor(
    async () => (await s.admin().units.get.query({ taskId, unitId: "u1" })).state === "evaluating",
    "the unit to be in evaluation",
    60_000,
  );
  await sleep(500); // inside the 2 s eval
  await s.farm.kill9();
  await s.farm.start();
  const done = await waitFor(
    async () => {
      const r = await s.admin().tasks.get.query({ taskId });
      return r.task.merge?.commit ? r : null;
    },
    "the task to be merged after the restart",
    120_000,
  );
  assert.equal(done.units.find((u) => u.unitId === "u1")!.state, "merged");
  assert.equal(mergedOnce(s.repo, taskId), 1);
  assert.match(git(s.repo, "show", "main:src/add.js"), /a \+ b/);
  assert.equal(git(s.repo, "worktree", "list").trim().split("\n").length, 1, "the interrupted eval's worktree was cleaned up");
});

test(
  "killing a worker mid-unit: its lease expires, another worker finishes, the unit is merged exactly once",
  { timeout: 180_000 },
  async (t) => {
    // Slow streaming: the first codegen worker is still generating when it is killed.
    const s = await setup(t, "node test/add.test.js", 150);
    const doomed = s.startWorker("codegen", "cg-doomed");
    const reviewer = s.startWorker("review", "rv-1");
    await waitFor(() => doomed.log.includes("waiting for units") && reviewer.log.includes("waiting for units"), "workers", 30_000);
    const taskId = (
      await runCli(["send", "Make add add", "--files", "src/add.js", "--check", "node test/add.test.js"], { cwd: s.repo, env: s.env })
    ).stdout.trim();
    await waitFor(() => doomed.log.includes(`working on ${taskId}/u1`), "the first worker to start", 30_000);
    await doomed.stop("SIGKILL");
    const rescuer = s.startWorker("codegen", "cg-rescuer");
    const done = await waitFor(
      async () => {
        const r = await s.admin().tasks.get.query({ taskId });
        return r.task.merge?.commit ? r : null;
      },
      "the task to be merged by the second worker",
      120_000,
    );
    const u1 = done.units.find((u) => u.unitId === "u1")!;
    assert.deepEqual([u1.state, u1.attempt, u1.worker], ["merged", 2, "cg-rescuer"]);
    assert.equal(mergedOnce(s.repo, taskId), 1);
    assert.match(rescuer.log, new RegExp(`${taskId}/u1#2: accepted`));
  },
);
