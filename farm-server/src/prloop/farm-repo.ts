import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { Git, runGit, type GitResult, type RunGitOptions } from "../git/safe-git.js";
import { readPatchWithGit, type PatchReading } from "./patch-reading.js";

export const integrationBranch = (taskId: string) => `optimus/${taskId}`;
/** Not under `optimus/<task>/`: git cannot have a branch and a folder of branches with one name. */
export const unitBranch = (taskId: string, unitId: string, attempt: number) => `optimus/${taskId}--${unitId}-${attempt}`;
export const unitTrailer = (taskId: string, unitId: string, attempt: number) => `Optimus-Unit: ${taskId}/${unitId}#${attempt}`;

const AUTHOR = ["-c", "user.name=Optimus", "-c", "user.email=optimus@localhost"];

/**
 * One pooled eval worktree: a folder and an index file of its own beside it (never inside it), on
 * the repository's objects and refs through GIT_DIR/GIT_WORK_TREE/GIT_INDEX_FILE. It is not a
 * registered `git worktree` (nothing in the user's `git worktree list`, no branch checked out, no
 * `.git` in the folder for an eval to read or rewrite); the farm resets it to each unit's commit.
 */
export interface EvalTree {
  slot: number;
  dir: string;
  index: string;
}

/** Configuration for git in a pooled tree: the user's sparse checkout or bare flag must not shape it. */
const TREE_CONFIG: ReadonlyArray<readonly [string, string]> = [["core.sparseCheckout", "false"], ["core.bare", "false"]];

/**
 * The farm's hands on the repository: integration and unit branches, worktrees it owns under the
 * state folder, and merges. Worktree add/remove and ref updates run one at a time (concurrent
 * `git worktree add` on one repository fails in git 2.39).
 */
export class FarmRepo {
  readonly git: Git;
  private chain: Promise<unknown> = Promise.resolve();
  /** pooled eval trees not in use (slot numbers), and how many exist */
  private readonly freeTrees: number[] = [];
  private treeCount = 0;
  private commonDir: string | null = null;

  constructor(readonly root: string, readonly worktreesDir: string) {
    this.git = new Git(root);
    mkdirSync(worktreesDir, { recursive: true });
  }

  /** Where pooled eval trees live: `<worktrees>/.pool/eval-<n>` (+ `eval-<n>.index`). */
  get poolDir(): string {
    return join(this.worktreesDir, ".pool");
  }

  private async gitDir(): Promise<string> {
    if (this.commonDir) return this.commonDir;
    const out = (await this.git.raw(["rev-parse", "--git-common-dir"])).trim();
    this.commonDir = isAbsolute(out) ? out : resolve(this.root, out);
    return this.commonDir;
  }

  /** git in a pooled tree: its own index and work tree, the repository's objects and refs. */
  private async inTree(t: EvalTree, args: readonly string[], opts: Omit<RunGitOptions, "cwd" | "env" | "config"> = {}): Promise<GitResult> {
    return runGit(args, { ...opts, cwd: t.dir, config: TREE_CONFIG, env: { GIT_DIR: await this.gitDir(), GIT_WORK_TREE: t.dir, GIT_INDEX_FILE: t.index } });
  }

  /**
   * A pooled tree at `commit`, for one evaluation at a time: a free one reset to the commit, or a
   * new slot. Release it with `releaseTree` (it stays on disk for the next unit).
   */
  async acquireTree(commit: string): Promise<EvalTree> {
    const slot = this.freeTrees.pop() ?? this.treeCount++;
    const t: EvalTree = { slot, dir: join(this.poolDir, `eval-${slot}`), index: join(this.poolDir, `eval-${slot}.index`) };
    try {
      await this.resetTree(t, commit);
    } catch (err) {
      this.freeTrees.push(slot);
      throw err;
    }
    return t;
  }

  releaseTree(t: EvalTree): void {
    if (!this.freeTrees.includes(t.slot)) this.freeTrees.push(t.slot);
  }

  /**
   * Makes a pooled tree exactly `commit`: tracked files rewritten where they differ (read-tree -u
   * --reset, as `reset --hard` does), everything untracked removed but the cached dependencies' mount
   * point (`/node_modules` at the root). A tree without its index (a crash, a first use) is rebuilt
   * from nothing; so is one git cannot reset.
   */
  async resetTree(t: EvalTree, commit: string): Promise<void> {
    mkdirSync(this.poolDir, { recursive: true });
    const fresh = async () => {
      rmSync(t.dir, { recursive: true, force: true });
      rmSync(t.index, { force: true });
      mkdirSync(t.dir, { recursive: true });
      await this.inTree(t, ["read-tree", "-u", "--reset", commit]);
    };
    if (!existsSync(t.index) || !existsSync(t.dir)) await fresh();
    else {
      try {
        await this.inTree(t, ["read-tree", "-u", "--reset", commit]);
      } catch {
        await fresh();
      }
    }
    await this.inTree(t, ["clean", "-ffdxq", "-e", "/node_modules"]);
    // A `.git` file as a linked worktree has, naming no real git folder: the sandbox mounts it
    // read-only, so an eval can neither write one that some git would later read nor find a repository.
    rmSync(join(t.dir, ".git"), { recursive: true, force: true });
    writeFileSync(join(t.dir, ".git"), "gitdir: /nonexistent/optimus-eval-tree (the farm's git folder is not mounted)\n", { mode: 0o444 });
  }

  /** Applies a patch file to a pooled tree and its index; returns the problem, or null. */
  async applyInTree(t: EvalTree, patchFile: string): Promise<string | null> {
    try {
      await this.inTree(t, ["apply", "--index", "--binary", patchFile]);
      return null;
    } catch (err) {
      return (err as Error).message.split("\n").slice(0, 3).join(" ");
    }
  }

  /**
   * Commits a pooled tree's index on `base` and points `branch` at the commit (write-tree,
   * commit-tree, update-ref: the branch is never checked out anywhere).
   */
  async commitTree(t: EvalTree, base: string, message: string, branch: string): Promise<string> {
    const tree = (await this.inTree(t, ["write-tree"])).stdout.trim();
    const commit = (await this.inTree(t, [...AUTHOR, "commit-tree", tree, "-p", base, "-m", message])).stdout.trim();
    await this.git.raw(["update-ref", `refs/heads/${branch}`, commit]);
    return commit;
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
