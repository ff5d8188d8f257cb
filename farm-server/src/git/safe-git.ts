/**
 * Every git command of the farm and of a worker runs through here: hooks off, no fsmonitor, no
 * `ext::` transport, no system or global configuration, no inherited GIT_* variables, no prompts.
 *
 * Why: a repository is untrusted. Code run by an eval or a check may have written hooks or a
 * config into some `.git`, and a git command the farm runs later — outside any sandbox, with
 * network and the farm's secrets at hand — would execute them. The sandbox keeps untrusted code away
 * from every `.git` the farm reads; this configuration is the second wall: even a `.git` that were
 * written cannot run anything through the farm's git. Command-line configuration (`-c`, and its
 * environment form GIT_CONFIG_COUNT) outranks every repository's own config file.
 */
import { execFile } from "node:child_process";

/** Configuration forced on every git command. Values git itself documents as the safe ones. */
export const SAFE_GIT_CONFIG: ReadonlyArray<readonly [string, string]> = [
  // No hook of any repository runs: a path that cannot hold files.
  ["core.hooksPath", "/dev/null"],
  ["core.fsmonitor", "false"],
  ["protocol.ext.allow", "never"],
  // Paths that a case-insensitive or NTFS-style filesystem would read as `.git` are refused too.
  ["core.protectNTFS", "true"],
  ["core.protectHFS", "true"],
  // Programs a repository config could name: none of them from a repository.
  ["core.sshCommand", "ssh"],
  ["core.pager", "cat"],
  ["credential.helper", ""],
  ["gc.auto", "0"],
  ["maintenance.auto", "false"],
  // Refs and objects the farm writes survive a crash.
  ["core.fsync", "committed"],
  ["core.fsyncMethod", "batch"],
  ["commit.gpgsign", "false"],
  ["tag.gpgsign", "false"],
];

/** The `-c key=value` arguments for SAFE_GIT_CONFIG (for callers that pass argv). */
export const safeConfigArgs = (): string[] => SAFE_GIT_CONFIG.flatMap(([k, v]) => ["-c", `${k}=${v}`]);

/**
 * The environment of a git process: PATH and nothing of the parent's git or secrets, plus the safe
 * configuration in its environment form (which also reaches git's own sub-processes, such as
 * `upload-pack` started by `fetch`), then `extraConfig` (e.g. an HTTP header a worker needs).
 */
export function safeGitEnv(
  extraConfig: ReadonlyArray<readonly [string, string]> = [],
  extraEnv: Record<string, string> = {},
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    LANG: "C",
    LC_ALL: "C",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_TERMINAL_PROMPT: "0",
    GIT_ASKPASS: "",
    SSH_ASKPASS: "",
    GIT_OPTIONAL_LOCKS: "0",
  };
  if (process.env.HOME) env.HOME = process.env.HOME;
  const all = [...SAFE_GIT_CONFIG, ...extraConfig];
  env.GIT_CONFIG_COUNT = String(all.length);
  all.forEach(([k, v], i) => {
    env[`GIT_CONFIG_KEY_${i}`] = k;
    env[`GIT_CONFIG_VALUE_${i}`] = v;
  });
  return { ...env, ...extraEnv };
}

export interface RunGitOptions {
  cwd: string;
  /** written to git's stdin */
  input?: string | Buffer;
  /** more environment (GIT_INDEX_FILE, …); never secrets unless git must have them */
  env?: Record<string, string>;
  /** configuration added after the safe one */
  config?: ReadonlyArray<readonly [string, string]>;
  /** exit codes that are answers, not failures (e.g. 1 for `merge-base --is-ancestor`) */
  okCodes?: readonly number[];
  maxBuffer?: number;
  /** return stdout as bytes */
  binary?: boolean;
}

export interface GitResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class GitError extends Error {
  constructor(
    readonly args: readonly string[],
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(
      `git ${args.find((a) => !a.startsWith("-")) ?? args[0]} failed: ${stderr.trim().split("\n").slice(-3).join(" ") || `exit code ${code}`}`,
    );
  }
}

/**
 * Runs git directly (no library in between: no fixed waits, no output parsing we did not ask for)
 * and resolves with its exit code and output; rejects with a GitError for any other exit code.
 */
export function runGit(args: readonly string[], opts: RunGitOptions): Promise<GitResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      [...args],
      { cwd: opts.cwd, env: safeGitEnv(opts.config, opts.env), maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024, encoding: "utf8" },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === "number"
            ? (err as unknown as { code: number }).code
            : null
          : 0;
        if (code !== null && (code === 0 || opts.okCodes?.includes(code))) return resolve({ code, stdout, stderr });
        reject(new GitError(args, code, stderr || (err?.message ?? "")));
      },
    );
    child.stdin?.on("error", () => undefined); // git may exit before reading all of its input
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    else child.stdin!.end();
  });
}

/** Runs git and returns stdout as bytes (blobs). */
export function runGitBinary(args: readonly string[], opts: Omit<RunGitOptions, "binary">): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "git",
      [...args],
      { cwd: opts.cwd, env: safeGitEnv(opts.config, opts.env), maxBuffer: opts.maxBuffer ?? 64 * 1024 * 1024, encoding: "buffer" },
      (err, stdout, stderr) =>
        err
          ? reject(
              new GitError(
                args,
                typeof (err as { code?: unknown }).code === "number" ? (err as unknown as { code: number }).code : null,
                stderr.toString(),
              ),
            )
          : resolve(stdout),
    );
    child.stdin?.end();
  });
}

/**
 * One repository or worktree: `raw(args)` returns stdout, as simple-git's did, so callers read the
 * same; every call is hardened by runGit.
 */
export class Git {
  constructor(
    readonly dir: string,
    private readonly config: ReadonlyArray<readonly [string, string]> = [],
  ) {}

  async raw(args: readonly string[], opts: Omit<RunGitOptions, "cwd" | "config"> = {}): Promise<string> {
    return (await runGit(args, { ...opts, cwd: this.dir, config: this.config })).stdout;
  }

  run(args: readonly string[], opts: Omit<RunGitOptions, "cwd" | "config"> = {}): Promise<GitResult> {
    return runGit(args, { ...opts, cwd: this.dir, config: this.config });
  }

  bytes(args: readonly string[]): Promise<Buffer> {
    return runGitBinary(args, { cwd: this.dir, config: this.config });
  }

  async isRepo(): Promise<boolean> {
    return (await this.run(["rev-parse", "--git-dir"], { okCodes: [128] }).catch(() => ({ code: 128 }))).code === 0;
  }
}
