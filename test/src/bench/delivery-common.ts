// What both delivery benches share: the farm with its coder, the farm's `task_merged` awaited, and
// the same merge by hand.
import { cloneDirFor, type Farm, type Lease } from "@optimus/farm-server";
import type { FarmEvent, ServerConfigInput } from "@optimus/shared";
import { tokenFor } from "../helpers/clients.js";
import { patchForAsync } from "../helpers/fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { msSince } from "./stats.js";

/**
 * The farm a delivery bench measures, in this process on the origin (its credentials in
 * OPTIMUS_SECRET_BENCH_ORIGIN_AUTH): an eval that passes, no review unit, no planner, `extra` settings
 * over that; and one scripted coder that writes `notes/<task>.md`. `stop()` ends both.
 */
export async function deliveryFarm(originUrl: string, extra: ServerConfigInput = {}) {
  const farm = await startTestFarm(undefined, {
    repo: originUrl,
    config: {
      heartbeatIntervalMs: 1_000,
      planner: { enabled: false },
      sandbox: "auto",
      prloop: { reviewEveryCodegenUnit: false, eval: [{ name: "files", command: "test -f README.md", timeoutMs: 30_000 }] },
      origin: { auth: "secrets-manager://env/bench origin/auth" },
      secrets: { vaults: { env: { provider: "env", prefix: "OPTIMUS_SECRET_" } } },
      ...extra,
    },
  });
  const agents = await startWorkers(
    farm.url,
    await tokenFor(farm.url, farm.adminToken, "worker", "bench"),
    [{ nodeId: "bench-coder", role: "codegen", max: 1 }],
    newLedger(),
    async (lease: Lease) => ({
      outcome: "succeeded",
      summary: "done",
      patch: await patchForAsync(cloneDirFor(originUrl), (lease.context as { base: { branch: string } }).base.branch, {
        [`notes/${lease.taskId}.md`]: "notes\n",
      }),
    }),
  );
  const stop = async () => {
    await stopAll(agents);
    await farm.stop();
  };
  return { server: farm.server, client: farm.client, stop };
}

/** Resolves when the farm journals the task's `task_merged` (set up before the step that causes it). */
export function mergedOnce(farm: Farm, taskId: string): Promise<void> {
  return new Promise<void>((resolve) => {
    const on = (events: FarmEvent[]) => {
      if (events.some((e) => e.type === "task_merged" && e.data.taskId === taskId)) {
        farm.services.state.off("committed", on);
        resolve();
      }
    };
    farm.services.state.on("committed", on);
  });
}

/**
 * By hand, in a developer's clone: a branch with one commit, then what the farm does — fetch, merge
 * --no-ff onto the fetched tip, push the branch and the target at once. Returns the ms of the last part.
 */
export async function deliverByHand(git: (...args: string[]) => Promise<unknown>, i: number): Promise<number> {
  await git("fetch", "-q", "origin");
  await git("checkout", "-q", "-B", `hand-${i}`, "origin/main");
  await git("commit", "-q", "--allow-empty", "-m", `hand ${i}`);
  const h0 = process.hrtime.bigint();
  await git("fetch", "-q", "origin");
  await git("checkout", "-q", "-B", "main", "origin/main");
  await git("merge", "-q", "--no-ff", "-m", `merge hand ${i}`, `hand-${i}`);
  await git("push", "-q", "--atomic", "origin", `hand-${i}`, "main");
  return msSince(h0);
}
