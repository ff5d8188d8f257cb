import { z } from "zod";
import { TargetBranch } from "./git-names.js";
import { TaskId } from "./ids.js";
import { RepoPath } from "./repo-path.js";
import { multiLineText, singleLineText } from "./text.js";
import { UnitSpec } from "./unit.js";

/**
 * A new task as the API takes it (`tasks.create`: `optimus send`, `optimus task import`, the
 * editor). The same field rules as a manifest, so a task is refused alike whichever way it comes.
 */
export const CreateTaskInput = z.strictObject({
  id: TaskId.optional(),
  title: z.string().trim().pipe(singleLineText(1, 200)),
  description: multiLineText(0, 50_000).optional(),
  priority: z.number().int().min(-1000).max(1000).optional(),
  targetBranch: TargetBranch.optional(),
  /** files in scope of the task's single or planning unit */
  files: z.array(RepoPath).max(500).optional(),
  units: z.array(UnitSpec).min(1).max(2_000).optional(),
});
export type CreateTaskInput = z.infer<typeof CreateTaskInput>;
