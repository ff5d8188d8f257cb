import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runCli } from "./cli.js";
import { httpClientFor } from "./clients.js";
import { FarmProcess, freePort } from "./farm-process.js";
import { CliProcess } from "./processes.js";
import { waitFor } from "./wait.js";

/**
 * The real farm process and two `optimus worker` processes (codegen, review, node ids `<role>-1`)
 * on one model URL, connected and waiting for units; all stopped after the test.
 */
export async function farmWithCliWorkers(t: { after(fn: () => unknown): void }, repo: string, modelUrl: string, opts: { maxIterations?: number } = {}) {
  const farm = new FarmProcess(repo, await freePort(), ["--heartbeat-ms", "1000"]);
  await farm.start();
  t.after(() => farm.stop());
  const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: farm.adminToken };
  const workDir = mkdtempSync(join(tmpdir(), "optimus-workers-"));
  t.after(() => rmSync(workDir, { recursive: true, force: true }));
  const extra = opts.maxIterations ? ["--max-iterations", String(opts.maxIterations)] : [];
  // Each worker its own token (a review counts only from another token than the author's), handed
  // over in a 0600 file, never on the command line where `ps` shows it.
  const workers: CliProcess[] = [];
  for (const role of ["codegen", "review"]) {
    const tokenFile = join(workDir, `${role}.token`);
    writeFileSync(tokenFile, (await runCli(["token", "create", "--role", "worker", "--name", role === "codegen" ? "node-1" : "node-1-review"], { cwd: repo, env })).stdout, { mode: 0o600 });
    workers.push(new CliProcess(["worker", "--role", role, "--model", modelUrl, ...extra, "--node-id", `${role}-1`, "--work-dir", join(workDir, role), "--farm", farm.url, "--token-file", tokenFile], { cwd: repo }));
  }
  t.after(() => Promise.all(workers.map((w) => w.stop())));
  await waitFor(() => workers.every((w) => w.log.includes("waiting for units")), "both workers to connect", 30_000);
  const admin = httpClientFor(farm.url, farm.adminToken);
  /** Waits for a task's integration branch to reach its target; on a timeout, the farm's and workers' logs. */
  const untilMerged = (taskId: string, what: string, timeoutMs = 120_000) =>
    waitFor(async () => {
      const r = await admin.tasks.get.query({ taskId });
      return r.task.merge?.commit ? r : null;
    }, what, timeoutMs).catch(async (e) => {
      const got = await admin.tasks.get.query({ taskId }).catch(() => null);
      const units = got?.units.map((u) => [u.unitId, u.state, u.reason]) ?? [];
      throw new Error(`${(e as Error).message}\ntask merge: ${JSON.stringify(got?.task.merge ?? null)}\nunits: ${JSON.stringify(units)}\n--- farm ---\n${farm.log.slice(-3000)}\n--- workers ---\n${workers.map((w) => w.log.slice(-3000)).join("\n")}`);
    });
  return { farm, env, workers, workDir, admin, untilMerged };
}
