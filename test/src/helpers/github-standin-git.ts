/**
 * The real git repository behind the GitHub stand-in: branch tips, commits, diffs and merges are
 * git's own (plumbing only: `merge-tree --write-tree`, `commit-tree`, `update-ref` with the expected
 * old value), so a merge through the stand-in's API really moves the base branch of that repository.
 */
import { execFileSync, spawnSync } from "node:child_process";

export interface CommitInfo {
  sha: string;
  tree: string;
  parents: string[];
  authorName: string;
  authorEmail: string;
  authorDate: string;
  committerName: string;
  committerEmail: string;
  committerDate: string;
  message: string;
}

const ENV = { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", LANG: "C", LC_ALL: "C" };
const MERGER = {
  GIT_AUTHOR_NAME: "GitHub",
  GIT_AUTHOR_EMAIL: "noreply@github.com",
  GIT_COMMITTER_NAME: "GitHub",
  GIT_COMMITTER_EMAIL: "noreply@github.com",
};

export class StandinGit {
  constructor(readonly dir: string) {}

  git(args: string[], env: Record<string, string> = {}): string {
    return execFileSync("git", ["-c", "core.hooksPath=/dev/null", ...args], {
      cwd: this.dir,
      env: { ...ENV, ...env },
      stdio: ["ignore", "pipe", "pipe"],
      maxBuffer: 64 * 1024 * 1024,
    }).toString();
  }

  /** The tip of a branch, undefined when it does not exist. */
  branchSha(branch: string): string | undefined {
    const r = spawnSync("git", ["rev-parse", "--verify", "--quiet", `refs/heads/${branch}^{commit}`], { cwd: this.dir, env: ENV });
    return r.status === 0 ? r.stdout.toString().trim() : undefined;
  }

  branches(): string[] {
    return this.git(["for-each-ref", "--format=%(refname:short)", "refs/heads/"]).split("\n").filter(Boolean);
  }

  commit(sha: string): CommitInfo {
    const out = this.git(["show", "-s", "--format=%H%x00%T%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B", sha]);
    const [h, t, p, an, ae, ad, cn, ce, cd, ...msg] = out.split("\0");
    return {
      sha: h!,
      tree: t!,
      parents: p!.split(" ").filter(Boolean),
      authorName: an!,
      authorEmail: ae!,
      authorDate: ad!,
      committerName: cn!,
      committerEmail: ce!,
      committerDate: cd!,
      message: msg.join("\0").replace(/\n+$/, ""),
    };
  }

  isAncestor(a: string, b: string): boolean {
    return spawnSync("git", ["merge-base", "--is-ancestor", a, b], { cwd: this.dir, env: ENV }).status === 0;
  }

  mergeBase(a: string, b: string): string {
    return this.git(["merge-base", a, b]).trim();
  }

  /** Commits reachable from `head` and not from `base`, oldest first. */
  commitsBetween(base: string, head: string): string[] {
    return this.git(["rev-list", "--reverse", `${base}..${head}`])
      .split("\n")
      .filter(Boolean);
  }

  /** The tree of merging `theirs` into `ours`, or the conflicting files. */
  mergeTree(ours: string, theirs: string, mergeBase?: string): { tree: string } | { conflicts: string[] } {
    const args = [
      "merge-tree",
      "--write-tree",
      "--name-only",
      "--no-messages",
      ...(mergeBase ? [`--merge-base=${mergeBase}`] : []),
      ours,
      theirs,
    ];
    const r = spawnSync("git", args, { cwd: this.dir, env: ENV });
    const lines = r.stdout.toString().split("\n").filter(Boolean);
    if (r.status === 0) return { tree: lines[0]! };
    if (r.status === 1) return { conflicts: lines.slice(1) };
    throw new Error(`git merge-tree failed: ${r.stderr.toString()}`);
  }

  commitTree(tree: string, parents: string[], message: string, author?: { name: string; email: string; date: string }): string {
    const env: Record<string, string> = { ...MERGER };
    if (author) Object.assign(env, { GIT_AUTHOR_NAME: author.name, GIT_AUTHOR_EMAIL: author.email, GIT_AUTHOR_DATE: author.date });
    return this.git(["commit-tree", tree, ...parents.flatMap((p) => ["-p", p]), "-m", message], env).trim();
  }

  /** Moves a branch from `expected` to `next`, refusing if it is no longer at `expected`. */
  updateBranch(branch: string, next: string, expected: string, why: string): void {
    this.git(["update-ref", "-m", why, `refs/heads/${branch}`, next, expected]);
  }

  deleteBranch(branch: string, expected: string): void {
    this.git(["update-ref", "-d", `refs/heads/${branch}`, expected]);
  }

  /**
   * Merges `head` into `base` as GitHub would with `method`; returns the new tip of base (not yet
   * written) or the conflicting files.
   */
  merge(
    method: "merge" | "squash" | "rebase",
    baseSha: string,
    headSha: string,
    title: string,
    message: string,
  ): { sha: string } | { conflicts: string[] } {
    if (method === "rebase") {
      let tip = baseSha;
      for (const c of this.commitsBetween(baseSha, headSha)) {
        const info = this.commit(c);
        const parent = info.parents[0];
        const t = this.mergeTree(tip, c, parent);
        if ("conflicts" in t) return t;
        tip = this.commitTree(t.tree, [tip], info.message, { name: info.authorName, email: info.authorEmail, date: info.authorDate });
      }
      return { sha: tip };
    }
    const t = this.mergeTree(baseSha, headSha);
    if ("conflicts" in t) return t;
    const text = message ? `${title}\n\n${message}` : title;
    return { sha: this.commitTree(t.tree, method === "merge" ? [baseSha, headSha] : [baseSha], text) };
  }

  /** Per file, the hunks of the change (new side) between the merge base of base and head, and head. */
  diffHunks(baseSha: string, headSha: string): Map<string, { start: number; end: number; header: string; lines: string[] }[]> {
    const mb = this.mergeBase(baseSha, headSha);
    const out = new Map<string, { start: number; end: number; header: string; lines: string[] }[]>();
    const text = this.git(["diff", "--no-color", "--no-ext-diff", "-U3", mb, headSha]);
    let file: string | undefined;
    let cur: { start: number; end: number; header: string; lines: string[] } | undefined;
    for (const line of text.split("\n")) {
      if (line.startsWith("diff --git ")) {
        file = undefined;
        cur = undefined;
      } else if (line.startsWith("+++ ")) {
        file = line === "+++ /dev/null" ? undefined : line.slice(6);
        if (file && !out.has(file)) out.set(file, []);
      } else if (line.startsWith("@@") && file) {
        const m = /^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@/.exec(line);
        const start = Number(m?.[1] ?? 1);
        const count = m?.[2] === undefined ? 1 : Number(m[2]);
        cur = { start, end: start + Math.max(count, 1) - 1, header: line, lines: [] };
        out.get(file)!.push(cur);
      } else if (cur && file && (line.startsWith(" ") || line.startsWith("+") || line.startsWith("-") || line.startsWith("\\"))) {
        cur.lines.push(line);
      }
    }
    return out;
  }

  /** Lines added and removed, and files changed, between the merge base and head. */
  diffStat(baseSha: string, headSha: string): { additions: number; deletions: number; files: number } {
    const mb = this.mergeBase(baseSha, headSha);
    let additions = 0;
    let deletions = 0;
    let files = 0;
    for (const line of this.git(["diff", "--numstat", mb, headSha]).split("\n").filter(Boolean)) {
      const [a, d] = line.split("\t");
      additions += Number(a) || 0;
      deletions += Number(d) || 0;
      files++;
    }
    return { additions, deletions, files };
  }
}
