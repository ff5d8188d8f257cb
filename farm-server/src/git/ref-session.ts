/**
 * One long-lived `git update-ref --stdin` in transaction mode (`start` … `commit`, answered with
 * `start: ok` and `commit: ok`): batches of ref updates without a git process per batch.
 *
 * Why: starting a process costs the farm's only thread several milliseconds (a fork of a large
 * process), and a branch is cut for every task before its first lease. A transaction is all or
 * nothing as with one `update-ref --stdin` per batch; a refused one (a ref that exists already, a
 * stale old value) ends the process with git's own message, and the next batch starts a new one.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { GitError, safeGitEnv } from "./safe-git.js";

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export class RefSession {
  private child: ChildProcessWithoutNullStreams | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private waiter: Waiter | null = null;
  private out = "";
  private err = "";
  private closed = false;

  constructor(private readonly gitDir: string) {}

  /**
   * Applies `commands` (`create <ref> <new>`, `update <ref> <new> <old>`, `delete <ref> <old>`, one
   * per entry, no newlines) as one transaction; resolves once git has committed it.
   */
  apply(commands: readonly string[]): Promise<void> {
    if (commands.some((c) => /[\n\0]/.test(c))) return Promise.reject(new Error("a ref command holds a line break"));
    const run = this.chain.then(() => this.transaction(commands));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Ends the git process (the farm stops); a later `apply` is refused. */
  close(): void {
    this.closed = true;
    this.child?.stdin.end();
    this.child = null;
  }

  private transaction(commands: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the ref session is closed"));
    const child = this.child ?? this.start();
    return new Promise<void>((resolve, reject) => {
      this.waiter = { resolve, reject };
      child.stdin.write(`start\n${commands.map((c) => `${c}\n`).join("")}commit\n`);
    });
  }

  private start(): ChildProcessWithoutNullStreams {
    const args = ["update-ref", "--stdin"];
    const child = spawn("git", args, { cwd: this.gitDir, env: safeGitEnv() });
    this.child = child;
    this.out = "";
    this.err = "";
    child.stdin.on("error", () => undefined); // it may have exited: the exit handler says why
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      this.out += d;
      // One answer per transaction: `start: ok` then `commit: ok`.
      if (this.out.includes("commit: ok\n")) {
        this.out = this.out.slice(this.out.indexOf("commit: ok\n") + "commit: ok\n".length);
        const w = this.waiter;
        this.waiter = null;
        w?.resolve();
      }
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => (this.err = (this.err + d).slice(-4_000)));
    const ended = (code: number | null) => {
      if (this.child === child) this.child = null;
      const w = this.waiter;
      this.waiter = null;
      w?.reject(new GitError(args, code, this.err || "git update-ref ended without an answer"));
    };
    child.on("close", (code) => ended(code)); // (after its output is read: git's message is complete)
    child.on("error", () => ended(null));
    return child;
  }
}
