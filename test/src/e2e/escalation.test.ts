import assert from "node:assert/strict";
import { test } from "node:test";
import { startAnthropicStandin } from "../helpers/anthropic-standin.js";
import { runCli } from "../helpers/cli.js";
import { git, makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { keyVault } from "../helpers/key-vault.js";

const isReview = (r: StandinRequest) => r.messages[0]!.content.startsWith("You review");
const wrong = JSON.stringify({
  summary: "multiply",
  edits: [{ kind: "write", path: "src/add.js", content: "export function add(a, b) {\n  return a * b;\n}\n" }],
  done: true,
});

test(
  "end to end: the local model fails twice, the worker escalates through the gateway, the frontier's patch passes the evals and merges",
  { timeout: 180_000 },
  async (t) => {
    const frontier = await startAnthropicStandin({
      script: [
        {
          kind: "tool_use",
          name: "propose_edits",
          input: {
            summary: "add, not subtract",
            edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: "return a + b;" }],
            done: true,
          },
        },
      ],
    });
    t.after(() => frontier.close());
    const vault = keyVault(t, frontier.apiKey);
    const repo = makeFixtureRepo(
      t,
      [
        "planner: { enabled: false }",
        `secrets: { vaults: { dev: { provider: file, dir: ${JSON.stringify(vault)} } } }`,
        `gateway: { apiKey: "secrets-manager://dev/anthropic/key", baseUrl: ${JSON.stringify(frontier.url)}, model: claude-sonnet-5-5 }`,
        "",
      ].join("\n"),
    );
    // The local model always proposes the same wrong fix; its reviews approve.
    const local = await startOpenAiStandin({
      script: Array.from(
        { length: 20 },
        () => (req: StandinRequest) =>
          isReview(req) ? JSON.stringify({ verdict: "approve", risk: "low", summary: "adds now", comments: [] }) : wrong,
      ),
    });
    t.after(() => local.close());

    const {
      env,
      client: admin,
      untilMerged,
    } = await startTestFarm(t, {
      mode: "process",
      repo,
      args: ["--heartbeat-ms", "1000"],
      workers: { model: local.url, maxIterations: 2 },
    });

    const sent = await runCli(
      ["send", "Make add return the sum of its arguments", "--files", "src/add.js", "--check", "node test/add.test.js"],
      { cwd: repo, env },
    );
    assert.equal(sent.code, 0, sent.stderr);
    const taskId = sent.stdout.trim();
    const done = await untilMerged(taskId, "the task to be merged into main");
    assert.match(git(repo, "show", "main:src/add.js"), /return a \+ b;/);
    const u1 = done.units.find((u) => u.unitId === "u1")!;
    assert.equal(u1.state, "merged");
    // The frontier was asked once, through the gateway, with the key from the vault, for the edit tool.
    assert.equal(frontier.answered().length, 1);
    const call = frontier.answered()[0]!;
    assert.equal(call.auth, "bearer");
    assert.deepEqual((call.body?.tool_choice as { name: string }).name, "propose_edits");
    assert.match(
      JSON.parse(JSON.stringify(call.body?.messages))[0].content,
      /The local model tried this unit and failed \(needs escalation: the check still fails after 2 iterations\)\. Its last check:[\s\S]*AssertionError/,
      "the frontier saw what the local attempts got wrong",
    );
    // The local model tried twice (its checks failed) before the gate let the unit escalate.
    assert.equal(local.requests.filter((r) => !isReview(r)).length, 2);
    const spend = await admin.gateway.spend.query();
    assert.ok(spend.byTask[taskId]! > 0, "the task's frontier spend is in the ledger");
    assert.equal(spend.reservedUsd, 0);
    const detail = await admin.units.detail.query({ taskId, unitId: "u1" });
    assert.ok(
      detail.history.some((h) => h.type === "unit_submitted" && /escalated \(\$0\.\d{4}\)/.test(h.summary)),
      JSON.stringify(detail.history.map((h) => h.summary)),
    );
    // The spend report in the CLI shows it.
    const report = await runCli(["spend"], { cwd: repo, env });
    assert.equal(report.code, 0, report.stderr);
    assert.match(report.stdout, new RegExp(`${taskId}\\s+\\$0\\.\\d{4}`));
  },
);
