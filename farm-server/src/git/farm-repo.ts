import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { Git, runGit, type GitResult, type RunGitOptions } from "./safe-git.js";
import { readPatchWithGit, type PatchReading } from "./patch-reading.js";

export const integrationBranch = (taskId: string) => `optimus/${taskId}`;
/** Not under `optimus/<task>/`: git cannot have a branch and a folder of branches with one name. */
export const unitBranch = (taskId: string, unitId: string, attempt: number) => `optimus/${taskId}--${unitId}-${attempt}`;
export const unitTrailer = (taskId: string, unitId: string, attempt: number) => `Optimus-Unit: ${taskId}/${unitId}#${attempt}`;
/** The trailer of a task's merge into its target branch. */
export const taskTrailer = (taskId: string) => `Optimus-Task: ${taskId}`;

/** The farm's commits: an address in the reserved `.invalid` domain (valid as an email, reaches no one). */
const AUTHOR = ["-c", "user.name=Optimus", "-c", "user.email=optimus@farm.invalid"];

/**
 * One pooled eval worktree: a folder and an index file of its own beside it (never inside it), on
 * the repository's objects and refs through GIT_DIR/GIT_WORK_TREE/GIT_INDEX_FILE. It is not a
 * registered `git worktree` (nothing in the user's `git worktree list`, no branch checked out, no
 * `.git` in the folder for an eval to read or rewrite); the farm resets it to each unit's commit.
 */
/** A unit's branch merged, in conflict with its target, or no longer in this clone. */
export type MergeResult = { ok: true; commit: string } | { ok: false; conflict: string } | { ok: false; missing: string };

export interface EvalTree {
  slot: number;
  dir: string;
  index: string;
}

/** Configuration for git in a pooled tree: the user's sparse checkout or bare flag must not shape it. */
const TREE_CONFIG: ReadonlyArray<readonly [string, string]> = [
  ["core.sparseCheckout", "false"],
  ["core.bare", "false"],
];

/**
 * The farm's hands on its own clone of the origin (bare, in its home): integration and unit
 * branches, pooled eval trees, merges and the commits of its own files — all with plumbing on refs
 * it owns, never in anybody's working tree. Ref-moving steps run one at a time.
 */
export class FarmRepo {
  readonly git: Git;
  /** ref-moving steps in order, per branch they move (different tasks' steps run side by side) */
  private readonly chains = new Map<string, Promise<unknown>>();
  /** pooled eval trees not in use (slot numbers), and how many exist */
  private readonly freeTrees: number[] = [];
  private treeCount = 0;
  /** evaluations waiting for a slot, first come first served */
  private readonly slotWaiters: Array<(slot: number) => void> = [];
  private commonDir: string | null = null;
  private filesIndexes = 0;

  /**
   * @param root the farm's clone (a bare repository)
   * @param checkout a developer's checkout of the same repository on this machine (`--repo`), where
   * the planner may look up installed tools; never written
   */
  constructor(
    readonly root: string,
    readonly worktreesDir: string,
    readonly checkout?: string,
    readonly evalSlots = Number.POSITIVE_INFINITY,
  ) {
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
    return runGit(args, {
      ...opts,
      cwd: t.dir,
      config: TREE_CONFIG,
      env: { GIT_DIR: await this.gitDir(), GIT_WORK_TREE: t.dir, GIT_INDEX_FILE: t.index },
    });
  }

  /**
   * A pooled tree at `commit`, for one evaluation at a time: a free one reset to the commit, a new
   * slot while there are fewer than `evalSlots`, else the next one released (evaluations of
   * different tasks run side by side up to that many; the rest wait their turn). Release it with
   * `releaseTree` (it stays on disk for the next unit).
   */
  async acquireTree(commit: string): Promise<EvalTree> {
    const slot =
      this.freeTrees.pop() ??
      (this.treeCount < this.evalSlots ? this.treeCount++ : await new Promise<number>((r) => this.slotWaiters.push(r)));
    const t: EvalTree = { slot, dir: join(this.poolDir, `eval-${slot}`), index: join(this.poolDir, `eval-${slot}.index`) };
    try {
      await this.resetTree(t, commit);
    } catch (err) {
      this.releaseTree(t);
      throw err;
    }
    return t;
  }

  releaseTree(t: EvalTree): void {
    const next = this.slotWaiters.shift();
    if (next) next(t.slot);
    else if (!this.freeTrees.includes(t.slot)) this.freeTrees.push(t.slot);
  }

  /** Evaluations running and waiting for a slot (metrics, benches). */
  get evalLoad(): { running: number; waiting: number } {
    return { running: this.treeCount - this.freeTrees.length, waiting: this.slotWaiters.length };
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

  /**
   * Runs `fn` after every earlier step that moves the same branch. Steps on different branches
   * (different tasks) do not wait for each other: each moves its ref with `update-ref <new> <old>`,
   * which fails rather than lose a concurrent move, and git's object writes are safe side by side.
   */
  serial<T>(branch: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(branch) ?? Promise.resolve()).then(fn);
    const tail = run.catch(() => undefined);
    this.chains.set(branch, tail);
    void tail.then(() => this.chains.get(branch) === tail && this.chains.delete(branch));
    return run;
  }

  async revParse(ref: string): Promise<string | null> {
    const out = await this.git.raw(["rev-parse", "-q", "--verify", `${ref}^{commit}`]).catch(() => "");
    return out.trim() || null;
  }

  /**
   * Creates `optimus/<task>` at `base` unless it exists. Outside the serial queue: it touches no
   * index, and `update-ref` with an all-zero old value creates the ref only if nobody else did.
   */
  async ensureIntegrationBranch(taskId: string, base: string): Promise<void> {
    const name = integrationBranch(taskId);
    await this.git.raw(["update-ref", `refs/heads/${name}`, base, "0".repeat(base.length)]).catch(async (err: Error) => {
      if (!(await this.revParse(`refs/heads/${name}`))) throw err; // it exists already (a restart, a race): fine
    });
  }

  async isAncestor(a: string, b: string): Promise<boolean> {
    return (await this.git.run(["merge-base", "--is-ancestor", a, b], { okCodes: [1] })).code === 0;
  }

  /**
   * The merge of `theirs` into `ours` as a commit object only (no ref moves): merge-tree writes the
   * tree, commit-tree the commit. A conflict is an answer, with the conflicting files.
   */
  async mergeCommit(
    ours: string,
    theirs: string,
    message: string,
  ): Promise<{ ok: true; commit: string } | { ok: false; conflicts: string[]; reason: string }> {
    const res = await this.git
      .run(["merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs], { okCodes: [1] })
      .catch((err: Error) => err);
    if (res instanceof Error) return { ok: false, conflicts: [], reason: res.message.split("\n").slice(0, 5).join(" ") };
    const [tree, ...conflicted] = res.stdout.trim().split("\n");
    if (res.code !== 0) {
      const files = [...new Set(conflicted.filter(Boolean))];
      return {
        ok: false,
        conflicts: files,
        reason: `conflicts in ${files.slice(0, 10).join(", ") || "the merge"}${files.length > 10 ? ` and ${files.length - 10} more` : ""}`,
      };
    }
    return { ok: true, commit: (await this.git.raw([...AUTHOR, "commit-tree", tree!, "-p", ours, "-p", theirs, "-m", message])).trim() };
  }

  /**
   * Commits files of the farm's own (manifests, session notes, ADR drafts), read from `dir` at
   * their repository-relative `paths`, onto `branch` — through a throwaway index, never a worktree —
   * and moves the branch only if nobody else did meanwhile. Nothing changed: no commit (null).
   */
  commitFiles(branch: string, dir: string, paths: string[], message: string): Promise<string | null> {
    return this.serial(branch, async () => {
      const tip = await this.revParse(`refs/heads/${branch}`);
      if (!tip) return null;
      // An index of its own: commits of other tasks' files run at the same time.
      const index = join(this.poolDir, `files-${process.pid}-${++this.filesIndexes}.index`);
      mkdirSync(this.poolDir, { recursive: true });
      const env = { GIT_INDEX_FILE: index };
      try {
        await this.git.raw(["read-tree", tip], { env });
        for (const rel of paths) {
          if (!existsSync(join(dir, rel))) continue;
          const blob = (await this.git.raw(["hash-object", "-w", "--", join(dir, rel)])).trim();
          await this.git.raw(["update-index", "--add", "--cacheinfo", `100644,${blob},${rel}`], { env });
        }
        const tree = (await this.git.raw(["write-tree"], { env })).trim();
        if (tree === (await this.git.raw(["rev-parse", `${tip}^{tree}`])).trim()) return null;
        const commit = (await this.git.raw([...AUTHOR, "commit-tree", tree, "-p", tip, "-m", message])).trim();
        await this.git.raw(["update-ref", `refs/heads/${branch}`, commit, tip]);
        return commit;
      } finally {
        rmSync(index, { force: true });
      }
    });
  }

  /** The names of the files in a folder of a branch's tree (empty when there is none). */
  async namesIn(branch: string, folder: string): Promise<string[]> {
    const out = await this.git.raw(["ls-tree", "--name-only", `refs/heads/${branch}:${folder}`]).catch(() => "");
    return out.split("\n").filter(Boolean);
  }

  /** The farm's own branches (`optimus/…`), by name. */
  async ownBranches(): Promise<string[]> {
    return (await this.git.raw(["for-each-ref", "--format=%(refname:lstrip=2)", "refs/heads/optimus/"])).split("\n").filter(Boolean);
  }

  /** The origin's branches starting with `prefix`, as this clone last fetched them (`refs/remotes/origin/`). */
  async trackedBranches(prefix: string): Promise<string[]> {
    const out = await this.git.raw(["for-each-ref", "--format=%(refname:lstrip=3)", `refs/remotes/origin/${prefix}*`]);
    return out.split("\n").filter(Boolean);
  }

  /** The merge commit on `into` that carries this trailer, if the unit was merged already. */
  async findMerge(into: string, trailer: string): Promise<string | null> {
    const out = await this.git.raw(["log", "--format=%H", "-F", `--grep=${trailer}`, "-n", "1", `refs/heads/${into}`]).catch(() => "");
    return out.trim() || null;
  }

  /**
   * Merges `branch` into `into` (both the farm's own branches) without checking anything out: merge-tree writes the tree,
   * commit-tree the merge commit, update-ref moves the branch only if nobody else did meanwhile.
   */
  mergeInto(into: string, branch: string, message: string): Promise<MergeResult> {
    return this.serial(into, async () => {
      const ours = await this.revParse(`refs/heads/${into}`);
      if (!ours) throw new Error(`cannot merge ${branch} into ${into}: ${into} is missing`);
      const theirs = await this.revParse(`refs/heads/${branch}`);
      // An answer, not a failure: the caller knows why a branch it evaluated can be gone (a takeover).
      if (!theirs) return { ok: false, missing: branch };
      // Exit 1 with the conflicted files listed after the tree: an answer, not a failure.
      const res = await this.git
        .run(["merge-tree", "--write-tree", "--name-only", "--no-messages", ours, theirs], { okCodes: [1] })
        .catch((err: Error) => err);
      if (res instanceof Error) return { ok: false, conflict: res.message.split("\n").slice(0, 5).join(" ") };
      const [tree, ...conflicted] = res.stdout.trim().split("\n");
      if (res.code !== 0)
        return { ok: false, conflict: `conflicts in ${conflicted.filter(Boolean).slice(0, 10).join(", ") || "the merge"}` };
      const commit = (await this.git.raw([...AUTHOR, "commit-tree", tree!, "-p", ours, "-p", theirs, "-m", message])).trim();
      await this.git.raw(["update-ref", `refs/heads/${into}`, commit, ours]);
      return { ok: true, commit };
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

  deleteBranch(branch: string): Promise<void> {
    // Deletions one at a time: deleting a packed ref rewrites packed-refs under one lock file.
    return this.serial(":deletions", async () => {
      await this.git.raw(["branch", "-D", branch]).catch(() => undefined);
    });
  }

  async diff(base: string, head: string): Promise<string> {
    return this.git.raw(["diff", "--binary", `${base}...${head}`]);
  }
}
