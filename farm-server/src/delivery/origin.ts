/**
 * The origin: the team's repository the farm follows (a path, `file://`, `https://` or ssh URL).
 * The farm keeps its own bare clone of it in its home and talks to it with fetch, push and
 * ls-remote only; it never opens a working tree of the origin or of anybody's checkout.
 */
import { existsSync, mkdirSync, realpathSync } from "node:fs";
import { basename, isAbsolute, resolve } from "node:path";
import { runGit, type GitResult } from "../git/safe-git.js";

export interface OriginSpec {
  /** what git is given (a URL, or an absolute path) — never with credentials in it */
  url: string;
  /** how the farm's home names this repository: a canonical path, or the URL */
  identity: string;
  /** a short name for folders and messages */
  name: string;
  /** true when the origin is a folder on this machine */
  local: boolean;
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i;
const SCP_LIKE = /^[^/@:]+@[^/:]+:/; // git@host:owner/name.git

const canonical = (p: string): string => {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
};

/** A refusal of an origin the user gave, in one sentence (the CLI prints it). */
export class OriginError extends Error {}

/**
 * Reads an origin as the user wrote it. Credentials in a URL are refused: they would be written
 * into the clone's config and show in `ps` and logs; `origin.auth` (a secret reference) is the way.
 */
export function parseOrigin(input: string, cwd = process.cwd()): OriginSpec {
  const s = input.trim();
  if (!s) throw new OriginError("the origin is empty; give a git URL or the path of a repository");
  if (/[\u0000-\u001f\u007f]/.test(s)) throw new OriginError("the origin holds a control character");
  if (SCHEME.test(s)) {
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new OriginError(`'${s}' is not a URL git can use`);
    }
    if (u.protocol === "file:") return local(decodeURIComponent(u.pathname));
    if (u.password || (u.username && u.protocol !== "ssh:")) {
      throw new OriginError(
        "the origin URL carries credentials; remove them and set origin.auth to a secrets-manager:// reference (the farm never writes a secret into git's config)",
      );
    }
    if (!["http:", "https:", "ssh:", "git:"].includes(u.protocol))
      throw new OriginError(`the origin's scheme ${u.protocol} is not one the farm uses (https, http, ssh, git, file)`);
    const url = u.toString().replace(/\/+$/, "");
    return { url, identity: url, name: nameOf(u.pathname), local: false };
  }
  if (SCP_LIKE.test(s)) return { url: s, identity: s, name: nameOf(s.slice(s.indexOf(":") + 1)), local: false };
  return local(isAbsolute(s) ? s : resolve(cwd, s));
}

function local(path: string): OriginSpec {
  if (!existsSync(path)) throw new OriginError(`the origin ${path} does not exist`);
  const real = canonical(path);
  return { url: real, identity: real, name: nameOf(real), local: true };
}

const nameOf = (path: string) => basename(path.replace(/\/+$/, "")).replace(/\.git$/, "") || "repo";

export type PushOutcome =
  /** `confirmed`: the origin reported every ref updated (or already there) */
  | { ok: true; confirmed: boolean }
  /** the remote ref moved since the farm read it (non-fast-forward, stale expectation): read it again */
  | { ok: false; moved: true; reason: string }
  /** refused for another reason (hooks, protection, a checked-out branch, no access): a person must act */
  | { ok: false; moved: false; reason: string };

/**
 * The farm's clone: `<slot>/origin.git`, bare, with the origin's branches under
 * `refs/remotes/origin/*` and the farm's own branches (`optimus/*`) under `refs/heads/*`.
 */
export class OriginClone {
  private running: Promise<void> | null = null;
  private next: Promise<void> | null = null;
  private fetchedAt = 0;
  /** the origin's branches as last fetched (name → commit), read once per fetch: task creation asks no git */
  private branches = new Map<string, string>();
  private defaultName = "main";

  /**
   * @param authHeader resolved at each network call (a secret is never kept): an HTTP
   * `Authorization` value for the origin, or undefined
   */
  constructor(
    readonly dir: string,
    readonly origin: OriginSpec,
    private readonly authHeader?: () => Promise<string | undefined>,
  ) {}

  private async net(args: string[], okCodes: number[] = []): Promise<GitResult> {
    const header = await this.authHeader?.();
    // The header travels in git's environment (GIT_CONFIG_*), never on its command line or in a file.
    return runGit(args, {
      cwd: this.dir,
      okCodes,
      config: header ? [["http.extraHeader", `Authorization: ${header}`]] : [],
      maxBuffer: 16 * 1024 * 1024,
    });
  }

  private git(args: string[], okCodes: number[] = []): Promise<GitResult> {
    return runGit(args, { cwd: this.dir, okCodes });
  }

  /** Creates the clone on first use (init + fetch); an existing one is checked to follow this origin. */
  async ensure(): Promise<{ created: boolean }> {
    const exists = existsSync(resolve(this.dir, "HEAD"));
    if (!exists) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      await runGit(["init", "-q", "--bare", this.dir], { cwd: resolve(this.dir, "..") });
      await this.git(["remote", "add", "origin", this.origin.url]);
    } else {
      const url = (await this.git(["remote", "get-url", "origin"], [2, 128])).stdout.trim();
      if (url !== this.origin.url) await this.git(["remote", "set-url", "origin", this.origin.url]);
    }
    if (this.origin.local) {
      // A folder origin's git runs on this machine, as the farm's user: none of its hooks or
      // fsmonitor runs for the farm's fetches and pushes (a server would run its own; this is no server).
      const safe = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false";
      await this.git(["config", "remote.origin.uploadpack", `${safe} upload-pack`]);
      await this.git(["config", "remote.origin.receivepack", `${safe} receive-pack`]);
    }
    await this.fetch();
    // The origin's default branch, as it says now (once per start: it rarely changes).
    await this.net(["remote", "set-head", "origin", "--auto"], [1, 128]).catch(() => undefined);
    this.defaultName = await this.defaultBranch();
    return { created: !exists };
  }

  /**
   * Brings the origin's branches up to date (`refs/remotes/origin/*`, pruned). Calls that arrive
   * while a fetch runs share the next one, so no caller reads refs older than its call.
   */
  fetch(): Promise<void> {
    if (!this.running) return this.startFetch();
    this.next ??= this.running
      .catch(() => undefined)
      .then(() => {
        this.next = null;
        return this.startFetch();
      });
    return this.next;
  }

  /** A fetch unless one finished less than `maxAgeMs` ago (or one is running: it is awaited). */
  async fetchIfOlder(maxAgeMs: number): Promise<void> {
    if (this.running) return this.running.catch(() => this.fetch());
    if (Date.now() - this.fetchedAt < maxAgeMs) return;
    return this.fetch();
  }

  private startFetch(): Promise<void> {
    const run = (async () => {
      await this.net(["fetch", "-q", "--prune", "--no-tags", "origin", "+refs/heads/*:refs/remotes/origin/*"]);
      await this.readBranches();
      this.fetchedAt = Date.now();
    })().finally(() => {
      if (this.running === run) this.running = null;
    });
    this.running = run;
    return run;
  }

  private async readBranches(): Promise<void> {
    const out = (await this.git(["for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/origin/"])).stdout;
    const next = new Map<string, string>();
    for (const line of out.split("\n")) {
      const m = /^([0-9a-f]+) refs\/remotes\/origin\/(.+)$/.exec(line);
      if (m && m[2] !== "HEAD") next.set(m[2]!, m[1]!);
    }
    this.branches = next;
  }

  /** A branch of the origin as last fetched, from memory (no git process), or undefined. */
  knownBranch(branch: string): string | undefined {
    return this.branches.get(branch);
  }

  /** The origin's default branch as read at the start, from memory. */
  get knownDefaultBranch(): string {
    return this.defaultName;
  }

  /** The origin's default branch (its HEAD), else `main`. */
  async defaultBranch(): Promise<string> {
    const r = await this.git(["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"], [1, 128]);
    const name = r.stdout.trim().replace(/^origin\//, "");
    return name || "main";
  }

  /** A branch of the origin as last fetched, or null. */
  async tracked(branch: string): Promise<string | null> {
    const r = await this.git(["rev-parse", "-q", "--verify", `refs/remotes/origin/${branch}^{commit}`], [1, 128]);
    return r.stdout.trim() || null;
  }

  /** A branch of the origin as it is now (ls-remote), or null when it does not exist. */
  async remoteTip(branch: string): Promise<string | null> {
    const r = await this.net(["ls-remote", "--heads", "origin", `refs/heads/${branch}`]);
    const line = r.stdout.split("\n").find((l) => l.endsWith(`\trefs/heads/${branch}`));
    return line ? line.split("\t")[0]! : null;
  }

  /**
   * Pushes refspecs, never forced: the origin accepts only fast-forwards, so a push made on a tip
   * the farm read cannot overwrite anybody's later work (it is refused, and reported as `moved`).
   * `--atomic`: all refs move, or none does.
   */
  async push(refspecs: string[]): Promise<PushOutcome> {
    if (refspecs.some((r) => r.startsWith("+"))) throw new Error("the farm never force-pushes");
    const r = await this.net(["push", "--porcelain", "--atomic", "origin", ...refspecs], [1, 128]);
    if (r.code === 0) {
      // Each ref's line is the origin's own report (receive-pack's status) that it now holds the value.
      const updated = new Set(
        r.stdout
          .split("\n")
          .filter((l) => /^[ *=]\t/.test(l))
          .map((l) => l.split("\t")[1]!.split(":")[1]),
      );
      // What the farm pushed is what the origin holds now (git moved the tracking refs too): known
      // in memory at once, so a task cut next starts from the farm's own latest merge.
      for (const spec of refspecs) {
        const [src, dst] = spec.split(":");
        const name = dst?.startsWith("refs/heads/") ? dst.slice("refs/heads/".length) : undefined;
        if (name && /^[0-9a-f]{40,64}$/.test(src ?? "") && updated.has(dst)) this.branches.set(name, src!);
      }
      return { ok: true, confirmed: refspecs.every((spec) => updated.has(spec.split(":")[1])) };
    }
    const lines = `${r.stdout}\n${r.stderr}`.split("\n");
    const rejected = lines.filter((l) => l.startsWith("!\t")).map((l) => l.split("\t").slice(1).join(" "));
    const text =
      (rejected.length
        ? rejected.join("; ")
        : lines
            .map((l) => l.trim())
            .filter(Boolean)
            .slice(-3)
            .join(" ")) || `git push exited ${r.code}`;
    const moved =
      rejected.some((l) => /\[rejected\]|non-fast-forward|fetch first|stale info/.test(l)) &&
      !rejected.some((l) => /\[remote rejected\]/.test(l));
    return { ok: false, moved, reason: explainRefusal(text) };
  }

  /**
   * Deletes a branch of the farm's on the origin, only while it is still at `expected` (what the
   * farm pushed): a commit somebody added to it since is never thrown away. Gone already: fine.
   */
  async deleteRemote(branch: string, expected?: string): Promise<void> {
    const lease = expected ? [`--force-with-lease=refs/heads/${branch}:${expected}`] : [];
    const r = await this.net(["push", "--porcelain", ...lease, "origin", `:refs/heads/${branch}`], [1, 128]);
    if (r.code !== 0 && !/remote ref does not exist|unable to delete .*: remote ref does not exist/.test(r.stderr + r.stdout)) {
      throw new Error(
        explainRefusal(
          `${r.stdout}\n${r.stderr}`
            .split("\n")
            .map((l) => l.trim())
            .filter(Boolean)
            .slice(-2)
            .join(" "),
        ),
      );
    }
  }
}

/** git's refusal, with what a person can do about the usual ones. */
function explainRefusal(text: string): string {
  if (/checked out|denyCurrentBranch/i.test(text)) {
    return `${text} — the origin has this branch checked out in a working tree, and git never updates a checked-out branch by push; point the farm at a bare repository or the team's forge (--origin), or merge the task's branch yourself`;
  }
  if (/protected branch|GH006|pre-receive hook declined/i.test(text))
    return `${text} — the origin's rules refused the push; merge through a pull request or ask an administrator`;
  return text;
}
