// Measure: the way of a finished task to the origin — from the moment its last unit is green and
// approved (the approval call) to the farm's journal saying `task_merged`, which it writes only
// after the origin's target branch was seen to contain the merge (ls-remote) — on a bare origin
// behind git's own smart HTTP (Basic auth) and on a bare origin folder. Beside it, in the same run,
// the same delivery done by hand with git in a clone: fetch, merge --no-ff of a branch, push.
// Median of RUNS each, interleaved farm/by hand so that drift hits both alike.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { seenVersion } from "../helpers/decisions.js";
import { GitHttpOrigin } from "../helpers/git-http-origin.js";
import { deliverByHand, deliveryFarm, mergedOnce } from "./delivery-common.js";
import { median, msSince } from "./stats.js";

const run = promisify(execFile);

export interface DeliveryBenchResult {
  runs: number;
  http: { farmMs: number; byHandMs: number };
  folder: { farmMs: number; byHandMs: number };
}

const BASIC = `Basic ${Buffer.from("farm:pw").toString("base64")}`;

/** One origin, one farm on it, `runs` tasks delivered and `runs` deliveries by hand. */
async function measure(originUrl: string, runs: number, gitEnv: Record<string, string>): Promise<{ farmMs: number[]; byHandMs: number[] }> {
  process.env.OPTIMUS_SECRET_BENCH_ORIGIN_AUTH = BASIC;
  const { server: farm, client, stop } = await deliveryFarm(originUrl);
  const dir = mkdtempSync(join(tmpdir(), "optimus-bench-hand-"));
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", ...args], { cwd: dir, env: { ...process.env, ...gitEnv } });
  await run("git", ["clone", "-q", originUrl, dir], { env: { ...process.env, ...gitEnv } });
  const farmMs: number[] = [];
  const byHandMs: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      // The farm: a one-unit task, held (no review), approved; timed from the approval to task_merged.
      const taskId = `bench-${i}`;
      await client.tasks.create.mutate({ id: taskId, title: taskId, units: [{ id: "u1", goal: "notes", files: [`notes/${taskId}.md`] }] });
      await until(async () => (await client.units.get.query({ taskId, unitId: "u1" })).state === "awaiting_approval");
      const seen = await seenVersion(client, taskId, "u1");
      const merged = mergedOnce(farm, taskId);
      const t0 = process.hrtime.bigint();
      await client.reviews.approve.mutate(seen);
      await merged;
      farmMs.push(msSince(t0));
      byHandMs.push(await deliverByHand(git, i));
    }
  } finally {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return { farmMs, byHandMs };
}

async function until(ok: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error("timed out waiting for the unit to be held");
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function benchDelivery(runs = 5): Promise<DeliveryBenchResult> {
  const origin = new GitHttpOrigin({ farm: "pw" });
  await origin.start();
  try {
    origin.create("team", { "README.md": "# team\n" });
    const folder = origin.create("plain", { "README.md": "# plain\n" });
    const header = { GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "http.extraHeader", GIT_CONFIG_VALUE_0: `Authorization: ${BASIC}` };
    const http = await measure(origin.url("team"), runs, header);
    const local = await measure(folder, runs, {});
    return {
      runs,
      http: { farmMs: median(http.farmMs), byHandMs: median(http.byHandMs) },
      folder: { farmMs: median(local.farmMs), byHandMs: median(local.byHandMs) },
    };
  } finally {
    await origin.close();
  }
}
