import { Git } from "../git/safe-git.js";

/**
 * Commits the farm's own files (task manifests) to the repository at milestones, touching nothing
 * else: `git commit --only <paths>` commits just those paths and leaves whatever the user has staged
 * staged, and hooks are skipped because these are bookkeeping commits.
 */
export class GitMilestones {
  private readonly git: Git;
  private chain: Promise<unknown> = Promise.resolve();
  private isRepo: Promise<boolean>;
  private readonly unsaved = new Set<string>();

  /**
   * @param serial runs git work one at a time with the PR loop's own operations on this repository
   * (a merge in the user's worktree and a milestone commit would fight over the index lock)
   */
  constructor(readonly repo: string, private readonly log: (msg: string, err?: unknown) => void, private readonly serial: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn()) {
    this.git = new Git(repo);
    this.isRepo = this.git.isRepo();
  }

  /** Queues a commit of `paths`; commits run one at a time. Resolves to the new commit, or null. */
  commit(paths: string[], message: string): Promise<string | null> {
    const run = this.chain.then(() => this.serial(() => this.commitNow(paths, message)));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async commitNow(paths: string[], message: string): Promise<string | null> {
    if (!(await this.isRepo)) return null;
    // Paths whose commit failed earlier ride along with this one.
    paths = [...new Set([...this.unsaved, ...paths])];
    try {
      await this.git.raw(["add", "--", ...paths]);
      const staged = await this.git.raw(["diff", "--cached", "--name-only", "--", ...paths]);
      if (!staged.trim()) return null;
      await this.git.raw([
        "-c", "user.name=Optimus", "-c", "user.email=optimus@localhost",
        "commit", "--no-verify", "--quiet", "--only", "-m", message, "--", ...paths,
      ]);
      this.unsaved.clear();
      return (await this.git.raw(["rev-parse", "HEAD"])).trim();
    } catch (err) {
      // A busy index (the user's own git command) or a rebase in progress: unstage what we staged,
      // so the user's index is as it was, and let the next milestone try again.
      for (const p of paths) this.unsaved.add(p);
      await this.git.raw(["reset", "-q", "--", ...paths]).catch(() => undefined);
      this.log(`could not commit ${paths.join(", ")}: ${(err as Error).message.split("\n")[0]}`, err);
      return null;
    }
  }

  async idle(): Promise<void> {
    await this.chain;
  }
}
