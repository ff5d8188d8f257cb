import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { safeGitEnv } from "../git/safe-git.js";
import type { FarmEndpoints } from "../client/farm-endpoints.js";
import { gitPinOf } from "../client/farm-trust.js";
import { acceptedCertificate } from "../client/trusted-transport.js";
import { DepsCache } from "../setup/index.js";

/**
 * A worker's copy of the repository, fetched read-only from the farm's git endpoint, with a pool
 * of worktrees (`units/slot-<n>`): one per unit running at once, reset to each unit's base rather
 * than created and removed. The token reaches git only through the environment of the git process
 * (an extra HTTP header), never through arguments or files.
 */
/** tries of a fetch the farm answered with 503 (busy), with growing waits (about 30 s in all) */
const FETCH_ATTEMPTS = 6;
const BUSY = /error: 503\b|returned error: 503/;
/** git's words for a farm it could not reach or that went away mid-fetch */
const UNREACHABLE =
  /Failed to connect|Connection refused|Connection reset|Empty reply from server|Recv failure|transfer closed|Could not resolve host|early EOF/i;

export class RepoMirror {
  private readonly gitDir: string;
  private chain: Promise<unknown> = Promise.resolve();
  /** pooled worktrees not in use, and the ones a unit holds */
  private readonly free: string[] = [];
  private readonly busy = new Set<string>();
  private slots = 0;

  constructor(
    /** the farm's URL, or its nodes (fetches go to the one that leads) */
    private readonly farm: string | FarmEndpoints,
    private readonly token: string,
    private readonly workDir: string,
  ) {
    mkdirSync(workDir, { recursive: true });
    this.gitDir = join(workDir, "mirror.git");
    this.deps = new DepsCache(join(workDir, "deps"));
  }

  /** Puts a unit's worktree back to its commit (after a set-up ran install scripts in it). */
  restore(dir: string): Promise<void> {
    return this.serial(async () => {
      await this.git(["reset", "-q", "--hard"], dir);
      await this.git(["clean", "-ffdxq", "-e", "/node_modules"], dir);
    });
  }

  private git(args: string[], cwd?: string, extraConfig: Array<[string, string]> = []): Promise<string> {
    // Hooks off and the safe configuration (a unit's check could have written into a worktree; the
    // sandbox keeps it away from mirror.git, this keeps any .git from running code in this process).
    const env = safeGitEnv([["http.extraHeader", `Authorization: Bearer ${this.token}`], ...extraConfig], { HOME: this.workDir });
    return new Promise((resolve, reject) =>
      execFile("git", args, { cwd: cwd ?? this.workDir, env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
        err
          ? reject(new Error(`git ${args[0]} failed: ${(stderr || err.message).trim().split("\n").slice(-2).join(" ")}`))
          : resolve(stdout),
      ),
    );
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** the worker's dependency cache (`<work dir>/deps`), shared by its units */
  readonly deps: DepsCache;

  /**
   * Sweeps what a crash or an older version left behind (called when the worker starts): per-unit
   * worktrees are removed; pooled slots stay, to be reset by the next unit that takes them.
   */
  cleanup(): Promise<void> {
    return this.serial(async () => {
      const units = join(this.workDir, "units");
      if (existsSync(units))
        for (const f of readdirSync(units)) if (!/^slot-\d+$/.test(f)) rmSync(join(units, f), { recursive: true, force: true });
      if (existsSync(this.gitDir)) await this.git(["--git-dir", this.gitDir, "worktree", "prune"]).catch(() => undefined);
    });
  }

  /**
   * git's TLS settings for an https:// farm, from the worker's trust (never `http.sslVerify=false`):
   * a CA file as `http.sslCAInfo`; pins as `http.pinnedPubkey`, and — with a pin but no CA file — the
   * certificate the farm presented once its pin matched as the one CA git trusts for it (git then
   * checks both the chain to it and the pin). No trust given: this machine's CAs, git's default.
   */
  private async tlsConfig(base: string): Promise<Array<[string, string]>> {
    if (!/^https:/i.test(base) || typeof this.farm === "string") return [];
    const trust = this.farm.trust;
    const out: Array<[string, string]> = [];
    if (trust.ca) out.push(["http.sslCAInfo", trust.ca.file]);
    if (trust.pins?.length) {
      out.push(["http.pinnedPubkey", trust.pins.map(gitPinOf).join(";")]);
      if (!trust.ca) {
        const file = join(this.workDir, "farm-cert.pem");
        writeFileSync(file, await acceptedCertificate(base, trust), { mode: 0o600 });
        out.push(["http.sslCAInfo", file]);
      }
    }
    return out;
  }

  /** Brings the mirror up to date with the farm's branches. */
  sync(): Promise<void> {
    return this.serial(async () => {
      if (!existsSync(this.gitDir)) await this.git(["init", "-q", "--bare", this.gitDir]);
      // The farm caps its git processes and answers 503 when they are busy: wait and try again.
      for (let attempt = 1; ; attempt++) {
        try {
          const base = (typeof this.farm === "string" ? this.farm : this.farm.current).replace(/\/+$/, "");
          await this.git(
            [
              "--git-dir",
              this.gitDir,
              "fetch",
              "-q",
              "--prune",
              `${base}/git`,
              "+refs/heads/*:refs/remotes/farm/*",
              "+refs/remotes/origin/*:refs/remotes/farm/*",
            ],
            undefined,
            await this.tlsConfig(base),
          );
          return;
        } catch (err) {
          // Busy (503), or not reachable for a moment (a farm restarting, a standby taking over): a fetch
          // changes nothing on the farm, so it is tried again — at the leader, when the farm has several nodes.
          const msg = (err as Error).message;
          if (attempt >= FETCH_ATTEMPTS || !(BUSY.test(msg) || UNREACHABLE.test(msg))) throw err;
          if (typeof this.farm !== "string") await this.farm.find();
          await new Promise((r) => setTimeout(r, Math.min(8_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2)));
        }
      }
    });
  }

  /**
   * A worktree at `branch` (as the farm has it now) for one unit attempt: a pooled slot no other
   * unit holds, reset to the branch (`checkout --detach -f`, then `clean -ffdx` keeping only the
   * dependencies' mount point), or a new slot. `name` is kept for callers; slots are named by number.
   * Give it back with `remove`.
   */
  async prepare(_name: string, branch: string): Promise<string> {
    await this.sync();
    return this.serial(async () => {
      const dir = this.free.pop() ?? join(this.workDir, "units", `slot-${this.nextSlot()}`);
      this.busy.add(dir);
      try {
        await this.reset(dir, `refs/remotes/farm/${branch}`);
      } catch (err) {
        this.busy.delete(dir);
        throw err;
      }
      return dir;
    });
  }

  private nextSlot(): number {
    for (;;) {
      const dir = join(this.workDir, "units", `slot-${this.slots}`);
      if (!this.busy.has(dir) && !this.free.includes(dir)) return this.slots++;
      this.slots++;
    }
  }

  /**
   * Resets a slot to `ref`; a slot that is missing, or whose `.git` file is not the one git wrote (a
   * check cannot write it, but an unsandboxed run could), is made again with `worktree add`.
   */
  private async reset(dir: string, ref: string): Promise<void> {
    const slot = dir.slice(dir.lastIndexOf("/") + 1);
    const expected = `gitdir: ${join(this.gitDir, "worktrees", slot)}`;
    let dotGit = "";
    try {
      dotGit = readFileSync(join(dir, ".git"), "utf8").trim();
    } catch {
      // not a worktree (yet)
    }
    if (dotGit === expected && existsSync(join(this.gitDir, "worktrees", slot))) {
      try {
        await this.git(["checkout", "-q", "--detach", "-f", ref], dir);
        await this.git(["clean", "-ffdxq", "-e", "/node_modules"], dir);
        return;
      } catch {
        // fall through: make it again
      }
    }
    await this.git(["--git-dir", this.gitDir, "worktree", "remove", "--force", dir]).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    await this.git(["--git-dir", this.gitDir, "worktree", "prune"]);
    mkdirSync(join(this.workDir, "units"), { recursive: true });
    await this.git(["--git-dir", this.gitDir, "worktree", "add", "-q", "--detach", dir, ref]);
  }

  /** The change made in a worktree, as the patch the farm expects (`git diff --binary`). */
  async patchOf(dir: string): Promise<string> {
    // Never the dependencies' mount point (or, where nothing can be mounted, the link to the cache):
    // an ignore rule of the worker's own, so a repository that does not ignore node_modules is no different.
    const exclude = join(this.workDir, "add-exclude");
    if (!existsSync(exclude)) writeFileSync(exclude, "/node_modules\n");
    await this.git(["-c", `core.excludesFile=${exclude}`, "add", "-A"], dir);
    return this.git(["diff", "--cached", "--binary"], dir);
  }

  async listFiles(dir: string): Promise<string[]> {
    return (await this.git(["ls-files"], dir)).split("\n").filter(Boolean);
  }

  /**
   * Gives a unit's worktree back to the pool (its files stay until the next unit resets it; the
   * dependencies' mount point is never touched). A worktree that is not a pooled slot is removed.
   */
  remove(dir: string): Promise<void> {
    return this.serial(async () => {
      if (this.busy.delete(dir)) {
        if (!this.free.includes(dir)) this.free.push(dir);
        return;
      }
      await this.git(["--git-dir", this.gitDir, "worktree", "remove", "--force", dir]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
  }
}
