// Measure: delivery through the GitHub stand-in (every request and response validated against
// GitHub's OpenAPI description, driven by the farm's real @octokit/rest), its repository the bare
// origin behind git's own smart HTTP that the farm pushes to. Timed from a person's approval of the
// held task (its change already in the pull request) to the journal's `task_merged`: the branch
// pushed, the pull request's merge readiness asked, the merge through the API. Beside it, in the
// same run, the same merge by hand in a clone: fetch, merge --no-ff, push. Interleaved, median of RUNS.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { GitHttpOrigin } from "../helpers/git-http-origin.js";
import { GitHubStandin } from "../helpers/github-standin.js";
import { GITHUB } from "../helpers/team-fixture.js";
import { deliverByHand, deliveryFarm, mergedOnce } from "./delivery-common.js";
import { median, msSince } from "./stats.js";

const run = promisify(execFile);

export interface ForgeDeliveryBenchResult {
  runs: number;
  farmMs: number;
  byHandMs: number;
  /** GitHub API calls the farm made per delivery (median), from the stand-in's request log */
  apiCalls: number;
}

export async function benchForgeDelivery(runs = 5): Promise<ForgeDeliveryBenchResult> {
  const origin = new GitHttpOrigin({ farm: "pw" });
  await origin.start();
  const basic = `Basic ${Buffer.from("farm:pw").toString("base64")}`;
  const gh = await new GitHubStandin({
    repoDir: origin.create("bench", { "README.md": "# bench\n" }),
    name: "bench",
    users: [
      { login: "acme", type: "Organization", permission: "none" },
      { login: "optimus-farm[bot]", type: "Bot", permission: "write", app: GITHUB.FARM_APP, token: GITHUB.FARM_TOKEN },
    ],
  }).start();
  process.env.OPTIMUS_SECRET_BENCH_ORIGIN_AUTH = basic;
  process.env.OPTIMUS_SECRET_BENCH_GITHUB_TOKEN = GITHUB.FARM_TOKEN;
  const originUrl = origin.url("bench");
  const {
    server: farm,
    client,
    stop,
  } = await deliveryFarm(originUrl, {
    // Polling is the webhook's fallback; a long interval keeps it out of the measured path.
    forge: {
      kind: "github",
      repo: "acme/bench",
      token: "secrets-manager://env/bench github/token",
      baseUrl: gh.url,
      pollIntervalMs: 600_000,
    },
  });
  const dir = mkdtempSync(join(tmpdir(), "optimus-bench-hand-"));
  const gitEnv = {
    ...process.env,
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: "http.extraHeader",
    GIT_CONFIG_VALUE_0: `Authorization: ${basic}`,
  };
  const git = (...args: string[]) =>
    run("git", ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", ...args], { cwd: dir, env: gitEnv });
  await run("git", ["clone", "-q", originUrl, dir], { env: gitEnv });
  const farmMs: number[] = [];
  const byHandMs: number[] = [];
  const apiCalls: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      // The farm: a one-unit task with no review unit, so its green change goes into the pull
      // request and the task waits for a person's approval; timed from that approval.
      const taskId = `bench-${i}`;
      await client.tasks.create.mutate({ id: taskId, title: taskId, units: [{ id: "u1", goal: "notes", files: [`notes/${taskId}.md`] }] });
      await until(async () => (await client.tasks.get.query({ taskId })).task.state === "held", taskId);
      // A person approves a pull request seconds to hours after it opened; GitHub asks writes that
      // notify people (opening it, merging it) to be 3 s apart, which the farm honours. Approving
      // sooner would time that spacing, not the delivery, so the approval comes once it has passed.
      const opened = gh.pulls.find((p) => p.head === `optimus/${taskId}`)!.createdAt;
      await new Promise((r) => setTimeout(r, Math.max(0, opened + 3_100 - Date.now())));
      const merged = mergedOnce(farm, taskId);
      const calls0 = gh.requests.length;
      const w0 = Date.now();
      const t0 = process.hrtime.bigint();
      await client.reviews.approveTaskMerge.mutate({ taskId });
      await merged;
      farmMs.push(msSince(t0));
      apiCalls.push(gh.requests.length - calls0);
      // BENCH_TRACE=1: each API call of the delivery with its time after the approval.
      if (process.env.BENCH_TRACE)
        for (const r of gh.requests.slice(calls0)) console.error(`  +${(r.at - w0).toFixed(0)}ms ${r.method} ${r.path} ${r.status}`);
      byHandMs.push(await deliverByHand(git, i));
    }
    gh.assertNoViolations();
  } finally {
    await stop();
    await gh.stop();
    await origin.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return { runs, farmMs: median(farmMs), byHandMs: median(byHandMs), apiCalls: median(apiCalls) };
}

async function until(ok: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} to be held`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
