// A farm that says what it does (issue 14, items 2 and 3; issue 13, item 5): each task and unit
// transition is one log line (JSON off a terminal, pretty on one), /healthz answers with the
// FarmHealth contract, and /metrics names carry the optimus_ prefix once.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { FarmHealth } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";

const isReview = (r: StandinRequest) => r.messages[0]!.content.startsWith("You review");
const VERSION = (JSON.parse(readFileSync(new URL("../../../farm-server/package.json", import.meta.url), "utf8")) as { version: string })
  .version;

interface LogLine {
  level: number;
  msg: string;
  unit?: string;
  task?: string;
  from?: string;
  to?: string;
  attempt?: number;
  worker?: string;
  reason?: string;
}

/** Every line of a JSON log, parsed: a line that is not JSON fails the test (no human line beside raw JSON). */
function jsonLines(text: string): LogLine[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      try {
        return JSON.parse(l) as LogLine;
      } catch {
        throw new Error(`a line of the farm's output is not JSON: ${l}`);
      }
    });
}

test(
  "farm up off a terminal: JSON lines only, one per unit and task transition (from → to, attempt, worker), the same in --log-file; /healthz and /metrics",
  { timeout: 180_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const model = await startOpenAiStandin({
      script: Array.from(
        { length: 8 },
        () => (req: StandinRequest) =>
          isReview(req)
            ? JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] })
            : JSON.stringify({
                summary: "sum",
                edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: "return a + b;" }],
                done: true,
              }),
      ),
    });
    t.after(() => model.close());
    const dir = mkdtempSync(join(tmpdir(), "optimus-log-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const logFile = join(dir, "logs", "farm.log");
    const farm = await startTestFarm(t, {
      mode: "process",
      repo,
      args: ["--heartbeat-ms", "1000", "--log-level", "info", "--log-file", logFile],
      workers: { model: model.url },
    });

    // /healthz: the contract, with both workers connected and nothing queued yet.
    const health = FarmHealth.parse(await (await fetch(`${farm.url}/healthz`)).json());
    assert.deepEqual(
      { ...health, uptimeMs: 0 },
      {
        ok: true,
        version: VERSION,
        role: "leader",
        epoch: 1,
        journalLag: 0,
        uptimeMs: 0,
        workers: { codegen: 1, review: 1 },
        queue: { codegen: {}, review: {} },
      },
    );
    assert.ok(health.uptimeMs > 0);

    const sent = await runCli(["send", "Make add add", "--files", "src/add.js", "--check", "node test/add.test.js"], {
      cwd: repo,
      env: farm.env,
    });
    assert.equal(sent.code, 0, sent.stderr);
    const taskId = sent.stdout.trim();
    await farm.untilMerged(taskId, "the task to reach main");
    await waitFor(
      () => jsonLines(farm.log).some((l) => l.task === taskId && l.to === "completed"),
      "the task's last transition in the log",
      10_000,
    );

    const lines = jsonLines(farm.log);
    assert.ok(
      lines.some((l) => l.msg.startsWith("Optimus farm listening on ")),
      "the listening line is a JSON line with the text the helpers wait for",
    );
    // The codegen unit's moves, in order, each from where the one before went.
    const u1 = lines.filter((l) => l.unit === `${taskId}/u1`);
    for (let i = 1; i < u1.length; i++) assert.equal(u1[i]!.from, u1[i - 1]!.to, `moves chain: ${JSON.stringify(u1)}`);
    assert.deepEqual(
      u1.map((l) => `${l.from}→${l.to}`),
      ["planned→ready", "ready→leased", "leased→submitted", "submitted→evaluating", "evaluating→reviewing", "reviewing→merged"],
    );
    const leased = u1[1]!;
    assert.deepEqual([leased.level, leased.attempt, leased.worker], [30, 1, "codegen-1"]);
    assert.equal(leased.msg, `unit ${taskId}/u1: ready → leased (attempt 1, worker codegen-1)`);
    const review = lines.filter((l) => l.unit === `${taskId}/u1-review`).map((l) => `${l.from}→${l.to}`);
    assert.deepEqual(review, ["planned→ready", "ready→leased", "leased→submitted", "submitted→completed"]);
    const task = lines.filter((l) => l.task === taskId).map((l) => l.msg);
    assert.deepEqual(task, [
      `task ${taskId}: new → open`,
      `task ${taskId}: open → running`,
      `task ${taskId}: running → merging`,
      `task ${taskId}: merging → completed`,
    ]);
    // No secret in the log: not the admin token, nor the workers' tokens.
    for (const token of [
      farm.adminToken,
      ...["codegen", "review"].map((r) => readFileSync(join(farm.workDir, `${r}.token`), "utf8").trim()),
    ])
      assert.ok(!farm.log.includes(token) && !readFileSync(logFile, "utf8").includes(token), "a token in the log");

    // The log file holds the same lines (JSON).
    const inFile = jsonLines(readFileSync(logFile, "utf8"));
    assert.deepEqual(
      inFile.filter((l) => l.unit === `${taskId}/u1`).map((l) => l.msg),
      u1.map((l) => l.msg),
    );

    // /metrics: prom-client's process metrics named once with the prefix; leadership and failovers.
    const metrics = await (await fetch(`${farm.url}/metrics`)).text();
    assert.doesNotMatch(metrics, /process_process|optimus_process_process/);
    assert.match(metrics, /^optimus_process_cpu_seconds_total \d/m);
    assert.match(metrics, /^optimus_nodejs_eventloop_lag_seconds \d/m);
    assert.match(metrics, /^optimus_leader 1$/m);
    assert.match(metrics, /^optimus_failovers_total 0$/m);
    assert.match(metrics, /^optimus_units\{state="merged"\} 1$/m);
  },
);

test("/healthz counts unfinished units by role and state (a farm without workers)", async (t) => {
  const farm = await startTestFarm(t);
  await farm.client.tasks.create.mutate({
    id: "queued",
    title: "queued",
    units: [
      { id: "a", goal: "one" },
      { id: "b", goal: "two", dependsOn: ["a"] },
    ],
  });
  const health = FarmHealth.parse(await (await fetch(`${farm.url}/healthz`)).json());
  assert.deepEqual(
    [health.workers, health.queue],
    [
      { codegen: 0, review: 0 },
      { codegen: { ready: 1, planned: 1 }, review: {} },
    ],
  );
});

test("farm up on a terminal: pretty lines (no raw JSON), the listening line among them", { timeout: 60_000 }, async (t) => {
  const farm = await startTestFarm(t, { mode: "process", terminal: true, args: ["--log-level", "info"] });
  await farm.client.tasks.create.mutate({ id: "shown", title: "shown", units: [{ id: "u", goal: "g" }] });
  await waitFor(() => /task shown: open → running|unit shown\/u: planned → ready/.test(farm.log), "a transition on the terminal", 10_000);
  const text = farm.log.replace(/\x1b\[[0-9;]*m/g, ""); // colours
  assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: Optimus farm listening on http:\/\/127\.0\.0\.1:\d+ \(origin /m);
  assert.match(text, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: unit shown\/u: planned → ready \(attempt 0\)\r?$/m);
  assert.doesNotMatch(text, /\{"level":/, "no raw JSON line on a terminal");
});
