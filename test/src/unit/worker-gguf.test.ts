import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { ReviewVerdict } from "@optimus/shared";
import type { Lease } from "@optimus/farm-server";
import { runReview } from "@optimus/farm-server/dist/worker/agent-loop.js";
import { LlamaProvider } from "@optimus/farm-server/dist/worker/models/llama-provider.js";
import type { RepoMirror } from "@optimus/farm-server/dist/worker/repo-mirror.js";
import { writeTinyGguf } from "../helpers/gguf.js";

test("a review worker on a GGUF model the tests generate: the real node-llama-cpp path yields a schema-valid verdict and token confidence", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-gguf-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "tiny.gguf");
  writeTinyGguf(file, { seed: 7 });
  const model = await LlamaProvider.open({ modelPath: file, threads: 1 });
  t.after(() => model.close());
  const lease = {
    taskId: "t",
    unitId: "u1-review",
    attempt: 1,
    leaseId: "t/u1-review#1.x",
    expiresAt: Date.now() + 60_000,
    spec: {
      id: "u1-review",
      goal: "Review the fix of add",
      role: "review",
      files: ["src/add.js"],
      dependsOn: [],
      priority: 0,
      complexity: "small",
      kind: "change",
      reviews: "u1",
    },
    context: {
      review: {
        unitId: "u1",
        attempt: 1,
        patch: "diff --git a/src/add.js b/src/add.js\n-  return a - b;\n+  return a + b;\n",
        evals: [{ name: "tests", exitCode: 0, output: "ok" }],
      },
    },
  } as Lease;
  const progress: string[] = [];
  const noGateway = () => Promise.reject(new Error("no gateway in this test"));
  const result = await runReview(
    lease,
    { signal: new AbortController().signal, progress: (p) => progress.push(p.phase), escalate: noGateway },
    {
      model,
      mirror: {} as RepoMirror,
      maxIterations: 3,
      checkTimeoutMs: 1_000,
      maxTokens: 4_000,
      log: () => undefined,
    },
  );
  // Random weights write nonsense, but the grammar keeps it inside the verdict's schema.
  assert.equal(result.outcome, "succeeded", result.summary);
  assert.ok(ReviewVerdict.safeParse(result.review).success);
  assert.ok(["approve", "request_changes"].includes(result.review!.verdict));
  assert.ok(result.signals!.tokens! > 0);
  assert.ok(result.signals!.confidence! > 0 && result.signals!.confidence! <= 1, `confidence ${result.signals!.confidence}`);
  assert.equal(result.signals!.model, "tiny");
  assert.deepEqual(progress.slice(0, 1), ["reviewing"]);
});
