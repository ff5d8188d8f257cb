import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

// Clean feedback (issue 11, item 5): a check's colour codes never reach the model or the transcript.

const isReview = (r: StandinRequest) => r.messages[0]!.content.startsWith("You review");
const proposal = (replace: string) =>
  JSON.stringify({
    summary: `return ${replace}`,
    edits: [
      {
        kind: "replace",
        path: "src/add.js",
        search: replace === "a * b" ? "return a - b;" : "return a * b;",
        replace: `return ${replace};`,
      },
    ],
    done: true,
  });

test("a check's coloured failure reaches the model and the transcript as plain text", { timeout: 180_000 }, async (t) => {
  const repo = makeFixtureRepo(t);
  const model = await startOpenAiStandin({
    script: Array.from({ length: 8 }, () => (req: StandinRequest) => {
      if (isReview(req)) return JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] });
      return req.messages.some((m) => m.content.startsWith("The check failed")) ? proposal("a + b") : proposal("a * b");
    }),
  });
  t.after(() => model.close());
  const { env, untilMerged } = await startTestFarm(t, {
    mode: "process",
    repo,
    args: ["--heartbeat-ms", "1000"],
    workers: { model: model.url },
  });
  // The check colours its verdict and moves the cursor, as test runners do on a terminal.
  const check = "node test/add.test.js 2>/dev/null || { printf '\\033[1;31mFAILED\\033[0m \\033[2K\\033[1Gadd is wrong\\n'; exit 1; }";
  const taskId = (await runCli(["send", "Make add add", "--files", "src/add.js", "--check", check], { cwd: repo, env })).stdout.trim();
  await untilMerged(taskId, "the task to be merged");
  const fed = model.requests.filter((r) => !isReview(r))[1]!.messages.at(-1)!.content;
  assert.match(fed, /^The check failed \(exit 1\):\nFAILED add is wrong\n/);
  assert.doesNotMatch(fed, /\x1b/);
  const transcript = readFileSync(join(stateDirFor(repo), "patches", `${taskId}--u1-1.transcript.json`), "utf8");
  assert.match(transcript, /FAILED add is wrong/);
  assert.doesNotMatch(transcript, /\\u001b|\x1b/);
});
