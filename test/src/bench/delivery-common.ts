// What both delivery benches share: the farm's `task_merged` awaited, and the same merge by hand.
import type { Farm } from "@optimus/farm-server";
import type { FarmEvent } from "@optimus/shared";
import { msSince } from "./stats.js";

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
