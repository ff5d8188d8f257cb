import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { runGit } from "../git/safe-git.js";
import { TASKS_DIR } from "./task-files.js";

/**
 * The task manifests the farm's clone holds, each source written out as files so the manifest
 * reader (with all its checks: size, links, UTF-8) reads them as it reads any folder: the farm's
 * local branches `optimus/<task>`, the origin's `optimus/<task>` branches, and the origin's default
 * branch (merged tasks, and manifests people committed) — in that order of precedence.
 *
 * Only tasks the journal does not know are extracted from their own branch (`known` says which),
 * so a start with an intact journal reads one tree, not one per task.
 */
export async function manifestSources(
  clone: string,
  scratch: string,
  defaultBranch: string,
  known: (taskId: string) => boolean | Promise<boolean>,
  since?: string,
): Promise<{
  dirs: string[];
  /** task branches written out (their tasks unknown to the journal, hot or archived) */
  branches: number;
  /** the default branch's commit read (to pass as `since` next time), or null when it has none */
  defaultTip: string | null;
  /** for a task read from the default branch: the merge that delivered it (its manifest got there only with it) */
  delivered: (taskId: string, dir: string) => Promise<{ into: string; commit: string } | null>;
  done: () => void;
}> {
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  const refs = (
    await runGit(["for-each-ref", "--format=%(refname)", "refs/heads/optimus/", "refs/remotes/origin/optimus/"], { cwd: clone })
  ).stdout
    .split("\n")
    .filter(Boolean);
  // A task's branch carries the manifests of every task merged before it was cut: only its own counts.
  const pick: Array<{ ref: string; taskId?: string }> = [];
  const taken = new Set<string>();
  for (const ref of refs) {
    const taskId = ref.replace(/^refs\/(heads|remotes\/origin)\/optimus\//, "");
    if (taskId.includes("--") || taskId.includes("/") || taken.has(taskId) || (await known(taskId))) continue; // unit branches; known tasks
    taken.add(taskId);
    pick.push({ ref, taskId });
  }
  // The default branch: only what changed in its tasks folder since the commit imported last.
  const defaultRef = `refs/remotes/origin/${defaultBranch}`;
  const tasksPath = TASKS_DIR.split("\\").join("/");
  const defaultTip =
    (await runGit(["rev-parse", "-q", "--verify", `${defaultRef}^{commit}`], { cwd: clone, okCodes: [1, 128] })).stdout.trim() || null;
  let only: string[] | undefined; // manifests to write out of the default branch (undefined: all)
  if (defaultTip && since && since !== defaultTip) {
    const diff = await runGit(["diff-tree", "-r", "--name-only", "--no-renames", "-z", since, defaultTip, "--", `${tasksPath}/`], {
      cwd: clone,
    }).catch(() => null);
    if (diff) {
      const changed = new Set(
        diff.stdout
          .split("\0")
          .filter(Boolean)
          .map((p) => p.slice(tasksPath.length + 1).split("/")[0]!)
          .filter(Boolean),
      );
      const ids: string[] = [];
      for (const id of changed) if (!(await known(id))) ids.push(id);
      only = ids.map((id) => `${id}/manifest.yaml`);
    } // (an unknown `since`: the branch was rewritten, everything is read)
  }
  if (defaultTip && since !== defaultTip && (only === undefined || only.length > 0)) pick.push({ ref: defaultRef });
  const dirs: string[] = [];
  let defaultDir = "";
  for (const { ref, taskId } of pick) {
    const dir = mkdtempSync(join(scratch, "src-"));
    const index = `${dir}.index`;
    // read-tree of just the tasks folder into a throwaway index, written out under `dir`.
    const tasks = TASKS_DIR.split("\\").join("/");
    const args = taskId ? ["read-tree", `--prefix=${taskId}/`, `${ref}:${tasks}/${taskId}`] : ["read-tree", `${ref}:${tasks}`];
    // (--prefix wants a work tree even though it only writes the index: `dir` is one)
    const ok = await runGit(args, {
      cwd: dir,
      config: [["core.bare", "false"]],
      env: { GIT_INDEX_FILE: index, GIT_DIR: clone, GIT_WORK_TREE: dir },
    }).then(
      () => true,
      () => false,
    );
    if (!ok) continue;
    // The clone is bare: checkout-index needs a work tree, so `dir` is made one for this command.
    const partial = !taskId && only !== undefined;
    await runGit(["checkout-index", ...(partial ? ["--stdin", "-z"] : ["-a"]), `--prefix=${tasksPath}/`], {
      cwd: dir,
      config: [["core.bare", "false"]],
      env: { GIT_INDEX_FILE: index, GIT_DIR: clone, GIT_WORK_TREE: dir },
      ...(partial ? { input: only!.map((p) => `${p}\0`).join(""), okCodes: [1] } : {}),
    }).catch(() => undefined); // nothing usable: the reader finds no manifests there
    rmSync(index, { force: true });
    dirs.push(dir);
    if (ref === defaultRef) defaultDir = dir;
  }
  const delivered = async (taskId: string, dir: string) => {
    if (!defaultDir || dir !== defaultDir) return null;
    const out = await runGit(
      ["log", "--first-parent", "-F", `--grep=Optimus-Task: ${taskId}`, "-n", "1", "--format=%H", `refs/remotes/origin/${defaultBranch}`],
      { cwd: clone },
    ).catch(() => null);
    const commit = out?.stdout.trim();
    return commit ? { into: defaultBranch, commit } : null;
  };
  return {
    dirs,
    branches: pick.filter((p) => p.taskId).length,
    defaultTip,
    delivered,
    done: () => rmSync(scratch, { recursive: true, force: true }),
  };
}
