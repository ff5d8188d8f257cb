import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Git } from "../git/safe-git.js";
import { readPatchWithGit, type PatchReading } from "./patch-reading.js";

export const integrationBranch = (taskId: string) => `optimus/${taskId}`;
/** Not under `optimus/<task>/`: git cannot have a branch and a folder of branches with one name. */
export const unitBranch = (taskId: string, unitId: string, attempt: number) => `optimus/${taskId}--${unitId}-${attempt}`;
export const unitTrailer = (taskId: string, unitId: string, attempt: number) => `Optimus-Unit: ${taskId}/${unitId}#${attempt}`;

const AUTHOR = ["-c", "user.name=Optimus", "-c", "user.email=optimus@localhost"];

/**
 * The farm's hands on the repository: integration and unit branches, worktrees it owns under the
 * state folder, and merges. Worktree add/remove and ref updates run one at a time (concurrent
 * `git worktree add` on one repository fails in git 2.39).
 */
export class FarmRepo {
  readonly git: Git;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly root: string, readonly worktreesDir: string) {
    this.git = new Git(root);
    mkdirSync(worktreesDir, { recursive: true });
  }

  /** Runs `fn` after every earlier serialized operation. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  async currentBranch(): Promise<string> {
    return (await this.git.raw(["symbolic-ref", "--short", "-q", "HEAD"]).catch(() => "")).trim() || "main";
  }

  async revParse(ref: string): Promise<string | null> {
    const out = await this.git.raw(["rev-parse", "-q", "--verify", `${ref}^{commit}`]).catch(() => "");
    return out.trim() || null;
  }

  /**
   * Creates `optimus/<task>` from the target branch unless it exists. Outside the serial queue: it
   * touches no index or worktree, and `update-ref` with an all-zero old value creates the ref only
   * if nobody else did (so task creation never waits behind a merge or a milestone commit).
   */
  async ensureIntegrationBranch(taskId: string, target: string): Promise<void> {
    const name = integrationBranch(taskId);
    // Always the target's current head: a task starts from what its target holds now.
    const base = await this.revParse(target);
    if (!base) throw new Error(`the target branch '${target}' does not exist`);
    await this.git.raw(["update-ref", `refs/heads/${name}`, base, "0".repeat(base.length)]).catch(async (err: Error) => {
      if (!(await this.revParse(`refs/heads/${name}`))) throw err; // it exists already (a restart, a race): fine
    });
  }

  /** A fresh worktree on a new branch at `base`; an older one of the same name (a crash) is replaced. */
  addWorktree(name: string, branch: string, base: string): Promise<string> {
    return this.serial(async () => {
      const dir = join(this.worktreesDir, name);
      await this.removeNow(dir, branch);
      await this.git.raw(["worktree", "add", "-q", "-B", branch, dir, base]);
      return dir;
    });
  }

  removeWorktree(dir: string, branchToDelete?: string): Promise<void> {
    return this.serial(() => this.removeNow(dir, branchToDelete));
  }

  private async removeNow(dir: string, branch?: string): Promise<void> {
    await this.git.raw(["worktree", "remove", "--force", dir]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    await this.git.raw(["worktree", "prune"]).catch(() => undefined);
    if (branch) await this.git.raw(["branch", "-D", branch]).catch(() => undefined);
  }

  /** Worktrees under the farm's folder: what a crash may have left behind. */
  async ownWorktrees(): Promise<string[]> {
    const out = await this.git.raw(["worktree", "list", "--porcelain"]);
    return out.split("\n").filter((l) => l.startsWith("worktree ")).map((l) => l.slice(9)).filter((d) => d.startsWith(this.worktreesDir));
  }

  /** Commits everything staged in a worktree. */
  async commitIn(dir: string, message: string): Promise<string> {
    const g = new Git(dir);
    await g.raw([...AUTHOR, "commit", "-q", "--no-verify", "-m", message]);
    return (await g.raw(["rev-parse", "HEAD"])).trim();
  }

  /** The merge commit on `into` that carries this trailer, if the unit was merged already. */
  async findMerge(into: string, trailer: string): Promise<string | null> {
    const out = await this.git.raw(["log", "--format=%H", "-F", `--grep=${trailer}`, "-n", "1", `refs/heads/${into}`]).catch(() => "");
    return out.trim() || null;
  }

  /**
   * Merges `branch` into `into` without checking `into` out anywhere: merge-tree writes the tree,
   * commit-tree the merge commit, update-ref moves the branch only if nobody else did meanwhile.
   */
  mergeInto(into: string, branch: string, message: string): Promise<{ ok: true; commit: string } | { ok: false; conflict: string }> {
    return this.serial(async () => {
      const ours = await this.revParse(`refs/heads/${into}`);
      const theirs = await this.revParse(`refs/heads/${branch}`);
      if (!ours || !theirs) throw new Error(`cannot merge ${branch} into ${into}: a branch is missing`);
      // Exit 1 with the conflicted files listed after the tree: an answer, not a failure.
      const res = await this.git.run(["merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs], { okCodes: [1] }).catch((err: Error) => err);
      if (res instanceof Error) return { ok: false, conflict: res.message.split("\n").slice(0, 5).join(" ") };
      const [tree, ...conflicted] = res.stdout.trim().split("\n");
      if (res.code !== 0) return { ok: false, conflict: `conflicts in ${conflicted.filter(Boolean).slice(0, 10).join(", ") || "the merge"}` };
      const commit = (await this.git.raw([...AUTHOR, "commit-tree", tree!, "-p", ours, "-p", theirs, "-m", message])).trim();
      await this.git.raw(["update-ref", `refs/heads/${into}`, commit, ours]);
      return { ok: true, commit };
    });
  }

  /** The worktree where `branch` is checked out, if any. */
  async checkedOutAt(branch: string): Promise<string | null> {
    const out = await this.git.raw(["worktree", "list", "--porcelain"]);
    let dir: string | null = null;
    for (const l of out.split("\n")) {
      if (l.startsWith("worktree ")) dir = l.slice(9);
      if (l === `branch refs/heads/${branch}`) return dir;
    }
    return null;
  }

  /** Merges in a checked-out worktree (the user's), only when it is clean apart from `.optimus/`. */
  mergeInWorktree(dir: string, branch: string, message: string): Promise<{ ok: true; commit: string } | { ok: false; reason: string }> {
    return this.serial(async () => {
      const g = new Git(dir);
      const changed = (await g.raw(["status", "--porcelain", "--untracked-files=no"])).split("\n").filter(Boolean).map((l) => l.slice(3));
      const dirty = changed.filter((p) => !p.startsWith(".optimus/"));
      if (dirty.length) return { ok: false, reason: `the target branch's worktree ${dir} has uncommitted changes (${dirty.slice(0, 3).join(", ")})` };
      // The farm's own files (manifests, session notes) change all the time; commit them first so the
      // merge never trips over them. Nothing of the user's is touched.
      const own = changed.filter((p) => p.startsWith(".optimus/"));
      if (own.length) await g.raw([...AUTHOR, "commit", "--no-verify", "--quiet", "--only", "-m", "optimus: bookkeeping before a merge", "--", ...own]);
      try {
        await g.raw([...AUTHOR, "merge", "--no-ff", "--no-verify", "-m", message, branch]);
      } catch (err) {
        await g.raw(["merge", "--abort"]).catch(() => undefined);
        return { ok: false, reason: `merge conflict: ${(err as Error).message.split("\n").map((l) => l.trim()).filter(Boolean).slice(0, 4).join(" ")}` };
      }
      return { ok: true, commit: (await g.raw(["rev-parse", "HEAD"])).trim() };
    });
  }

  /**
   * What a patch changes, as git reads it: applied to a throwaway index read from `base` (no
   * worktree, no ref moves), then listed with modes and object ids. A patch git cannot apply is the
   * problem it reports.
   */
  readPatch(base: string, patch: string): Promise<PatchReading> {
    return readPatchWithGit(this.root, base, patch);
  }

  /** What a commit changed against `base`, as git reads the two trees (modes, types, sizes). */
  changeBetween(base: string, commit: string): Promise<PatchReading> {
    return readPatchWithGit(this.root, base, null, commit);
  }

  /** Applies a patch file to a worktree and stages it; returns the problem, or null. */
  async applyIn(dir: string, patchFile: string): Promise<string | null> {
    try {
      await new Git(dir).raw(["apply", "--index", "--binary", patchFile]);
      return null;
    } catch (err) {
      return (err as Error).message.split("\n").slice(0, 3).join(" ");
    }
  }

  deleteBranch(branch: string): Promise<void> {
    return this.serial(async () => {
      await this.git.raw(["branch", "-D", branch]).catch(() => undefined);
    });
  }

  async diff(base: string, head: string): Promise<string> {
    return this.git.raw(["diff", "--binary", `${base}...${head}`]);
  }
}
