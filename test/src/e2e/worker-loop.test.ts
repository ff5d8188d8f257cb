import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { git, makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { waitFor } from "../helpers/wait.js";
import { filesDirFor, stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

const isReview = (r: StandinRequest) => r.messages[0]!.content.startsWith("You review");
const proposal = (replace: string) =>
  JSON.stringify({
    summary: `return ${replace}`,
    edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: `return ${replace};` }],
    done: true,
  });

test(
  "end to end: CLI task → codegen worker (scripted local model) fixes a failing test in the sandbox → review worker approves → evals → auto-merge",
  { timeout: 180_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    // The "local model": an OpenAI-compatible loopback server replaying scripted completions. The
    // codegen model first gets it wrong (the check fails and its output is fed back), then right.
    const model = await startOpenAiStandin({
      script: Array.from({ length: 12 }, () => (req: StandinRequest) => {
        if (isReview(req)) {
          assert.match(req.messages[1]!.content, /\+ {2}return a \+ b;/);
          return JSON.stringify({ verdict: "approve", risk: "low", summary: "adds now", comments: [] });
        }
        const failedBefore = req.messages.some((m) => m.role === "user" && m.content.startsWith("The check failed"));
        return failedBefore
          ? JSON.stringify({
              summary: "add",
              edits: [{ kind: "replace", path: "src/add.js", search: "return a * b;", replace: "return a + b;" }],
              done: true,
            })
          : proposal("a * b");
      }),
    });
    t.after(() => model.close());
    const { env, workers, untilMerged } = await startTestFarm(t, {
      mode: "process",
      repo,
      args: ["--heartbeat-ms", "1000"],
      workers: { model: model.url },
    });

    const sent = await runCli(
      ["send", "Make add return the sum of its arguments", "--files", "src/add.js", "--check", "node test/add.test.js"],
      { cwd: repo, env },
    );
    assert.equal(sent.code, 0, sent.stderr);
    const taskId = sent.stdout.trim();
    const done = await untilMerged(taskId, "the task to be merged into main");

    const u1 = done.units.find((u) => u.unitId === "u1")!;
    assert.deepEqual([u1.state, u1.attempt, u1.evaluation?.green, u1.risk?.level], ["merged", 1, true, "low"]);
    assert.equal(done.units.find((u) => u.unitId === "u1-review")!.state, "completed");
    assert.match(git(repo, "show", "main:src/add.js"), /return a \+ b;/);
    assert.equal(
      git(repo, "log", "--format=%B", "main").match(new RegExp(`Optimus-Unit: ${taskId}/u1#1`, "g"))?.length,
      1,
      "merged exactly once",
    );
    // The check ran in the worker's sandbox, failed once, and its output went back to the model.
    const codegenRequests = model.requests.filter((r) => !isReview(r));
    assert.equal(codegenRequests.length, 2);
    assert.match(codegenRequests[1]!.messages.at(-1)!.content, /The check failed \(exit 1\):[\s\S]*AssertionError/);
    assert.ok(codegenRequests[0]!.body.response_format, "the edit format is requested as a JSON schema");
    assert.match(codegenRequests[0]!.messages[1]!.content, /return a - b;/, "the prompt carries the file in scope");
    assert.match(workers[0]!.log, new RegExp(`${taskId}/u1#1: accepted`));
    // The attempt's session notes (model, tokens, the check's output, the decision) arrived on main
    // with the task's merge (committed on its branch); no bookkeeping commit of their own on main.
    assert.doesNotMatch(git(repo, "log", "--first-parent", "--format=%s", "main"), /^optimus: /m);
    const notes = git(repo, "show", `main:.optimus/sessions/${taskId}/u1.md`);
    assert.match(notes, /codegen-1 reported \*\*succeeded\*\* \(model local, \d+ tokens, [\s\S]*2 iteration\(s\), 1 failed check\(s\)\)/);
    assert.match(notes, /add works/);
    assert.match(notes, /\*\*merged\*\* into optimus\//);
    // The task's outcome is in its manifest (the farm's copy in its home; the copy that went with the
    // change says it was on its way), and the agent's transcript is kept for the editor.
    assert.match(git(repo, "show", `main:.optimus/tasks/${taskId}/manifest.yaml`), /status:\n {2}state: merging\n/);
    const manifestFile = join(filesDirFor(repo), ".optimus", "tasks", taskId, "manifest.yaml");
    const manifest = await waitFor(() => {
      const m = readFileSync(manifestFile, "utf8");
      return m.includes("  merge:\n") ? m : null;
    }, "the outcome in the manifest");
    assert.doesNotMatch(manifest, /[&*]a1/, "plain YAML, no anchors");
    assert.match(
      manifest,
      new RegExp(
        `status:\\n  state: completed\\n  updatedAt: [^\\n]+\\n  merge:\\n    into: main\\n    commit: ${done.task.merge!.commit}`,
      ),
    );
    const transcript = JSON.parse(readFileSync(join(stateDirFor(repo), "patches", `${taskId}--u1-1.transcript.json`), "utf8")) as Array<{
      role: string;
      content: string;
    }>;
    assert.deepEqual(
      transcript.map((m) => m.role),
      ["system", "user", "assistant", "user", "assistant"],
    );
    // Nothing is left behind in the farm's or the workers' worktrees.
    assert.equal(git(repo, "worktree", "list").trim().split("\n").length, 1);
  },
);

test(
  "the planner: a task sent as text is planned into units by the worker's model, checked by the farm, with an ADR draft; a bad plan falls back to one unit",
  { timeout: 180_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const goodPlan = {
      units: [
        {
          id: "fix-add",
          goal: "Make add return a + b",
          files: ["src/add.js"],
          check: "node test/add.test.js",
          dependsOn: [],
          complexity: "small",
        },
      ],
      decision: {
        needed: true,
        title: "Addition stays a pure function",
        context: "add had a sign bug",
        decision: "Keep add pure; test it with node's assert",
        consequences: "No new dependencies",
      },
    };
    const badPlan = {
      units: [
        {
          id: "new-module",
          goal: "Write it",
          files: ["nowhere/module.js"],
          check: "node nowhere/module.test.js",
          dependsOn: [],
          complexity: "small",
        },
      ],
      decision: { needed: false, title: "", context: "", decision: "", consequences: "" },
    };
    const model = await startOpenAiStandin({
      script: Array.from({ length: 12 }, () => (req: StandinRequest) => {
        const system = req.messages[0]!.content;
        if (system.startsWith("You plan")) return JSON.stringify(req.messages[1]!.content.includes("new module") ? badPlan : goodPlan);
        if (isReview(req)) return JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] });
        return proposal("a + b");
      }),
    });
    t.after(() => model.close());
    const {
      env,
      client: admin,
      untilMerged,
    } = await startTestFarm(t, { mode: "process", repo, args: ["--heartbeat-ms", "1000"], workers: { model: model.url } });

    const taskId = (
      await runCli(["send", "Make add return the sum, keep its tests green", "--files", "src/add.js"], { cwd: repo, env })
    ).stdout.trim();
    const done = await untilMerged(taskId, "the planned task to be merged");
    assert.deepEqual(
      done.units.map((u) => [u.unitId, u.spec.kind, u.state]),
      [
        ["plan", "plan", "completed"],
        ["fix-add", "change", "merged"],
        ["fix-add-review", "change", "completed"],
      ],
    );
    assert.equal(done.units[1]!.spec.check, "node test/add.test.js");
    assert.match(git(repo, "show", "main:src/add.js"), /a \+ b/);
    const planRequest = model.requests.find((r) => r.messages[0]!.content.startsWith("You plan"))!;
    assert.match(planRequest.messages[1]!.content, /# Files in the repository\n[\s\S]*test\/add\.test\.js/);
    assert.equal(planRequest.body.response_format !== undefined, true);
    const adr = git(repo, "show", "main:docs/adr/0001-addition-stays-a-pure-function.md");
    assert.match(adr, /^# 1\. Addition stays a pure function\n\n- Status: proposed \(drafted by the planner for task /);

    // A plan naming files that do not exist is not used: the task becomes one unit, and the journal says why.
    const other = (await runCli(["send", "Write a new module", "--files", "src/add.js"], { cwd: repo, env })).stdout.trim();
    const planned = await waitFor(
      async () => {
        const r = await admin.tasks.get.query({ taskId: other });
        return r.units.some((u) => u.unitId === "u1") ? r : null;
      },
      "the fallback unit",
      60_000,
    );
    assert.deepEqual(
      planned.units.map((u) => u.unitId),
      ["plan", "u1", "u1-review"],
    );
    await admin.tasks.cancel.mutate({ taskId: other });
    const db = new (await import("better-sqlite3")).default(join(stateDirFor(repo), "journal.db"), { readonly: true });
    const fallback = db
      .prepare("SELECT json_extract(data, '$.fallback') FROM events WHERE type = 'units_planned' AND json_extract(data, '$.taskId') = ?")
      .pluck()
      .get(other) as string;
    db.close();
    assert.equal(fallback, "unit 'new-module' names nowhere/module.js, which does not exist (nor does its folder)");
    // The user sees it too: in the task's view (the editor's tree shows it) and under the task in `optimus status`.
    assert.equal((await admin.tasks.get.query({ taskId: other })).task.planFallback, fallback);
    // Wide enough for the reason on one line (at 80 columns, the default off a terminal, it wraps).
    const status = await runCli(["status", "--once", "--width", "200", "--task", other], { cwd: repo, env });
    assert.equal(status.code, 0, status.stderr);
    const lines = status.stdout.split("\n");
    const row = lines.findIndex((l) => l.startsWith(`${other} `));
    assert.equal(lines[row + 1], `  ↳ plan not used, one unit instead: ${fallback}`, status.stdout);
  },
);

test(
  "one machine runs the whole farm: `farm up --workers 2` starts a codegen and a review worker that take a task to main",
  { timeout: 180_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const model = await startOpenAiStandin({
      script: Array.from(
        { length: 8 },
        () => (req: StandinRequest) =>
          isReview(req) ? JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] }) : proposal("a + b"),
      ),
    });
    t.after(() => model.close());
    const farm = await startTestFarm(t, {
      mode: "process",
      repo,
      args: ["--heartbeat-ms", "1000", "--workers", "2", "--worker-model", model.url],
    });
    await waitFor(() => /2 local worker\(s\) joined \(1 codegen, 1 review\)/.test(farm.log), "the local workers to join");
    const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: farm.adminToken };
    const taskId = (
      await runCli(["send", "Make add add", "--files", "src/add.js", "--check", "node test/add.test.js"], { cwd: repo, env })
    ).stdout.trim();
    const admin = httpClientFor(farm.url, farm.adminToken);
    await waitFor(async () => (await admin.tasks.get.query({ taskId })).task.merge?.commit, "the task to reach main", 120_000);
    assert.match(git(repo, "show", "main:src/add.js"), /a \+ b/);
    const fleet = await admin.fleet.workers.query();
    assert.deepEqual(fleet.map((w) => [w.nodeId, w.role, w.connected]).sort(), [
      ["local-codegen-1", "codegen", true],
      ["local-review-2", "review", true],
    ]);
    // Without a model, `--workers` refuses to start, with the command that fixes it.
    const r = await runCli(["farm", "up", "--port", "0", "--workers", "1"], { cwd: makeFixtureRepo(t) });
    assert.equal(r.code, 2);
    assert.match(
      r.stderr.trim(),
      /^optimus: --workers 1 needs a model for them: pass --worker-model <file\.gguf> .*optimus model pull <uri>`$/,
    );
  },
);
