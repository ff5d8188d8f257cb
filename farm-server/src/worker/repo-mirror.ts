import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { safeGitEnv } from "../git/safe-git.js";

/**
 * A worker's copy of the repository, fetched read-only from the farm's git endpoint, with one
 * worktree per unit. The token reaches git only through the environment of the git process
 * (an extra HTTP header), never through arguments or files.
 */
/** tries of a fetch the farm answered with 503 (busy), with growing waits (about 30 s in all) */
const FETCH_ATTEMPTS = 6;

export class RepoMirror {
  private readonly gitDir: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly farmUrl: string, private readonly token: string, private readonly workDir: string) {
    mkdirSync(workDir, { recursive: true });
    this.gitDir = join(workDir, "mirror.git");
  }

  private git(args: string[], cwd?: string): Promise<string> {
    // Hooks off and the safe configuration (a unit's check could have written into a worktree; the
    // sandbox keeps it away from mirror.git, this keeps any .git from running code in this process).
    const env = safeGitEnv([["http.extraHeader", `Authorization: Bearer ${this.token}`]], { HOME: this.workDir });
    return new Promise((resolve, reject) =>
      execFile("git", args, { cwd: cwd ?? this.workDir, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
        err ? reject(new Error(`git ${args[0]} failed: ${(stderr || err.message).trim().split("\n").slice(-2).join(" ")}`)) : resolve(stdout)));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Removes unit worktrees a crash left behind (called when the worker starts). */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      rmSync(join(this.workDir, "units"), { recursive: true, force: true });
      if (existsSync(this.gitDir)) await this.git(["--git-dir", this.gitDir, "worktree", "prune"]).catch(() => undefined);
    });
  }

  /** Brings the mirror up to date with the farm's branches. */
  sync(): Promise<void> {
    return this.serial(async () => {
      if (!existsSync(this.gitDir)) await this.git(["init", "-q", "--bare", this.gitDir]);
      // The farm caps its git processes and answers 503 when they are busy: wait and try again.
      for (let attempt = 1; ; attempt++) {
        try {
          await this.git(["--git-dir", this.gitDir, "fetch", "-q", "--prune", `${this.farmUrl.replace(/\/+$/, "")}/git`, "+refs/heads/*:refs/remotes/farm/*"]);
          return;
        } catch (err) {
          if (attempt >= FETCH_ATTEMPTS || !/error: 503\b|returned error: 503/.test((err as Error).message)) throw err;
          await new Promise((r) => setTimeout(r, Math.min(8_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2)));
        }
      }
    });
  }

  /** A fresh worktree of `branch` (as the farm has it now) for one unit attempt. */
  async prepare(name: string, branch: string): Promise<string> {
    await this.sync();
    return this.serial(async () => {
      const dir = join(this.workDir, "units", name);
      await this.git(["--git-dir", this.gitDir, "worktree", "remove", "--force", dir]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
      await this.git(["--git-dir", this.gitDir, "worktree", "prune"]);
      mkdirSync(join(this.workDir, "units"), { recursive: true });
      await this.git(["--git-dir", this.gitDir, "worktree", "add", "-q", "--detach", dir, `refs/remotes/farm/${branch}`]);
      return dir;
    });
  }

  /** The change made in a worktree, as the patch the farm expects (`git diff --binary`). */
  async patchOf(dir: string): Promise<string> {
    await this.git(["add", "-A"], dir);
    return this.git(["diff", "--cached", "--binary"], dir);
  }

  async listFiles(dir: string): Promise<string[]> {
    return (await this.git(["ls-files"], dir)).split("\n").filter(Boolean);
  }

  remove(dir: string): Promise<void> {
    return this.serial(async () => {
      await this.git(["--git-dir", this.gitDir, "worktree", "remove", "--force", dir]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
  }
}
