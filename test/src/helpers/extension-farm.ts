import type { Lease } from "@optimus/farm-server";
import { tokenFor } from "./clients.js";
import { makeFixtureRepo, patchForAsync } from "./fixture.js";
import { startTestFarm } from "./test-farm.js";
import { sleep } from "./wait.js";
import { newLedger, startWorkers, stopAll } from "./workers.js";

export const BASE = "export function add(a, b) {\n  return a - b;\n}\n";
export const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
export const MUL = "export function mul(a, b) {\n  return a * b;\n}\n";
export const SUB = "export function sub(a, b) {\n  return a - b;\n}\n";
type Ctx = { base?: { branch: string } };

/**
 * A real farm on a fixture repository where every change waits for a human (auto-merge off), with
 * scripted workers standing in for a model that writes sensible code: the coder fixes `add` (and
 * says which task and attempt it worked for), reporting live progress; the reviewer approves with
 * a line comment. The farm can be stopped and started again on the same port.
 *
 * Scripted variations, chosen by the task: files `src/mul.js` → a three-file change (add.js
 * modified, mul.js and sub.js added); a title containing `[loop]` → a reviewer that requests changes
 * every time (with a comment naming the attempt it saw).
 */
export async function extensionFarm(t: { after(fn: () => unknown): void }) {
  const repo = makeFixtureRepo(t, "planner: { enabled: false }\npolicy: { autoMerge: { enabled: false } }\n");
  const farm = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const loops = new Map<string, number>();
  const { url, adminToken: admin } = farm;
  const editor = await tokenFor(url, admin, "editor", "vscode-test");
  const workerToken = await tokenFor(url, admin, "worker", "pool");
  // Reviewers hold another token than the coders: a review counts only from another token than the author's.
  const reviewerToken = await tokenFor(url, admin, "worker", "reviewers");
  const agents = await startWorkers(
    url,
    workerToken,
    [
      { nodeId: "coder", role: "codegen", max: 2 },
      { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
    ],
    newLedger(),
    async (lease: Lease, ctx) => {
      const c = (lease.context ?? {}) as Ctx;
      if (lease.spec.role === "review") {
        await sleep(300);
        if (farm.running && farm.server.services.state.projection.tasks.get(lease.taskId)?.title.includes("[loop]")) {
          const n = (loops.get(lease.taskId) ?? 0) + 1;
          loops.set(lease.taskId, n);
          return {
            outcome: "succeeded",
            summary: "not yet",
            review: {
              verdict: "request_changes",
              risk: "medium",
              summary: `still not right (review ${n})`,
              comments: [{ path: "src/add.js", line: 2, body: `Still not right (review ${n}).` }],
            },
          };
        }
        return {
          outcome: "succeeded",
          summary: "looks right",
          review: {
            verdict: "approve",
            risk: "low",
            summary: "fixes the sign",
            comments: [{ path: "src/add.js", line: 2, body: "This is the actual fix." }],
          },
        };
      }
      for (const [phase, step] of [
        ["reading", "src/add.js"],
        ["generating", "turn 1"],
        ["checking", "node test/add.test.js"],
      ] as const) {
        ctx.progress({ phase, step, tokens: 120, elapsedMs: 0 });
        await sleep(700);
      }
      const files: Record<string, string> = lease.spec.files.includes("README.md")
        ? { "README.md": `# fixture\n\n${lease.taskId}\n` }
        : lease.spec.files.includes("src/mul.js")
          ? { "src/add.js": `${FIX}// for ${lease.taskId} attempt ${lease.attempt}\n`, "src/mul.js": MUL, "src/sub.js": SUB }
          : { "src/add.js": `${FIX}// for ${lease.taskId} attempt ${lease.attempt}\n` };
      return {
        outcome: "succeeded",
        summary: "fixed add",
        patch: await patchForAsync(repo, c.base!.branch, files),
        signals: { model: "scripted", tokens: 360, confidence: 0.9, iterations: 1 },
      };
    },
  );
  t.after(() => stopAll(agents));
  return Object.assign(farm, { editor });
}
