import { z } from "zod";

/** The farm's own branches live under this prefix (`optimus/<task>`, `optimus/<task>--<unit>-<n>`). */
export const FARM_BRANCH_PREFIX = "optimus/";
export const MAX_BRANCH_NAME_LENGTH = 200;

/**
 * Why git would refuse `name` as a branch name, or undefined: the rules of
 * `git check-ref-format --branch` (refs/heads/<name> must be a valid ref, and a branch may not start
 * with '-' or be HEAD), checked here so that git never sees a bad name and nobody sees git's error.
 */
export function branchNameProblem(name: string): string | undefined {
  if (name.length === 0) return "must not be empty";
  if (name.length > MAX_BRANCH_NAME_LENGTH) return `must be at most ${MAX_BRANCH_NAME_LENGTH} characters`;
  if (name.startsWith("-")) return "must not start with '-' (git would read it as an option)";
  if (/[\u0000-\u001f\u007f]/.test(name)) return "must not contain control characters";
  const bad = /[ ~^:?*[\\]/.exec(name);
  if (bad) return `must not contain '${bad[0]}' (git forbids spaces and ~ ^ : ? * [ \\ in branch names)`;
  if (name.includes("..")) return "must not contain '..'";
  if (name.includes("@{")) return "must not contain '@{'";
  if (name === "@") return "must not be '@' (git's name for HEAD)";
  if (name === "HEAD") return "must not be 'HEAD'";
  if (name.startsWith("/") || name.endsWith("/")) return "must not start or end with '/'";
  if (name.includes("//")) return "must not contain '//'";
  if (name.endsWith(".")) return "must not end with '.'";
  for (const part of name.split("/")) {
    if (part.startsWith(".")) return `must not have a part starting with '.' ('${part}')`;
    if (part.endsWith(".lock")) return `must not have a part ending in '.lock' ('${part}')`;
  }
  return undefined;
}

/** Why `name` cannot be a task's target branch, or undefined: a valid branch outside the farm's own namespace. */
export function targetBranchProblem(name: string): string | undefined {
  const p = branchNameProblem(name);
  if (p) return `is not a valid git branch name: it ${p}`;
  // Case-insensitive: on macOS and Windows `Optimus/x` is the same ref file as `optimus/x`; and a
  // branch named `optimus` itself would block every `optimus/…` branch.
  const lower = name.toLowerCase();
  if (lower === FARM_BRANCH_PREFIX.slice(0, -1) || lower.startsWith(FARM_BRANCH_PREFIX)) {
    return `must not be under '${FARM_BRANCH_PREFIX}': those branches belong to the farm; merge into a branch of your own, such as main`;
  }
  return undefined;
}

/** A task's target branch: where its integration branch is merged when the task is done. */
export const TargetBranch = z.string().superRefine((b, ctx) => {
  const problem = targetBranchProblem(b);
  if (problem) ctx.addIssue({ code: "custom", message: problem, input: b });
});
