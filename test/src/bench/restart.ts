// Measure: a start of the farm on a repository whose default branch holds N task manifests (two
// units each): the first start, which reads and imports every one (the baseline: what every start
// cost while each start re-read all history), beside the restarts that follow, which read none of
// them (the journal knows them, and the default branch has not moved since the commit imported last).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestFarm, type InProcessTestFarm } from "../helpers/test-farm.js";
import { median } from "./stats.js";

export interface RestartBenchResult {
  tasks: number;
  units: number;
  firstStartMs: number;
  restartMs: number;
  /** manifests the restarts read (0 when nothing changed) */
  restartRead: number;
}

export async function benchRestart(tasks: number, restarts = 3): Promise<RestartBenchResult> {
  const repo = mkdtempSync(join(tmpdir(), "optimus-bench-restart-"));
  try {
    const git = (...a: string[]) =>
      execFileSync("git", ["-c", "user.name=Bench", "-c", "user.email=bench@localhost", ...a], { cwd: repo, stdio: "pipe" });
    git("init", "-q", "-b", "main");
    for (let i = 0; i < tasks; i++) {
      const d = join(repo, ".optimus", "tasks", `t-${i}`);
      mkdirSync(d, { recursive: true });
      writeFileSync(
        join(d, "manifest.yaml"),
        `title: Task ${i}\nunits:\n  - id: u1\n    goal: do ${i}\n  - id: u2\n    goal: more of ${i}\n`,
      );
    }
    git("add", "-f", "-A");
    git("commit", "-q", "-m", "task manifests");
    let farm: InProcessTestFarm | undefined;
    const start = async () => {
      const t0 = performance.now();
      if (farm) await farm.start();
      else farm = await startTestFarm(undefined, { repo, config: { planner: { enabled: false } } });
      const ms = performance.now() - t0;
      const read = farm.server.startup.imports.read;
      await farm.stop();
      return { ms, read };
    };
    const first = await start();
    const again: number[] = [];
    let read = 0;
    for (let k = 0; k < restarts; k++) {
      const r = await start();
      again.push(r.ms);
      read = Math.max(read, r.read);
    }
    return { tasks, units: tasks * 2, firstStartMs: first.ms, restartMs: median(again), restartRead: read };
  } finally {
    rmSync(repo, { recursive: true, force: true });
  }
}
