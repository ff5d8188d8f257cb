/**
 * Cuts tasks' integration branches off the hot path: a task is recorded at once (its target checked
 * against the origin's branches held in memory, so creating it runs no git), and its branch is cut
 * here, in batches: one `update-ref --stdin` transaction for every task waiting (in one git process
 * kept for them all: `RefSession`), from the target's
 * tip as the farm knows it (the last fetch, plus its own pushes). A fetch older than FRESH_MS is
 * renewed beside it, not before it: the branch is a starting point, and a task's merge is evaluated
 * again on the target's tip whenever the target moved. The farm's own branches are listed once (at
 * the start, and after a failed batch); after that the cutter knows which it made. Until its branch
 * exists a task's units are not leased (`blocked`): a worker never gets a lease whose base does not exist.
 */
import type { Logger } from "pino";
import { FarmError } from "../errors/farm-error.js";
import type { OriginClone } from "../delivery/origin.js";
import { RefSession } from "../git/ref-session.js";
import { runGit } from "../git/safe-git.js";
import { integrationBranch } from "../git/farm-repo.js";

/** How old a fetch of the origin may be when a task's branch is cut from it. */
export const FRESH_MS = 2_000;
const MAX_BACKOFF_MS = 30_000;

export interface BranchCutterOptions {
  /** the farm's clone (bare): branches are cut in it */
  gitDir: string;
  origin: OriginClone;
  log: Logger;
  /** these tasks wait no more (their branch exists, or they were cancelled): their units may be dispatched */
  onReady: (taskIds: string[]) => void;
  /** whether the task still wants its branch (not cancelled, not merged) */
  live: (taskId: string) => boolean;
}

export class BranchCutter {
  /** task → the target branch its branch is cut from */
  private readonly pending = new Map<string, string>();
  private readonly waiters = new Map<string, Array<() => void>>();
  private draining: Promise<void> | null = null;
  private backoffMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** the farm's branches (`optimus/…`) known to exist; null: list them again before the next batch */
  private own: Set<string> | null = null;
  /** one git process for every batch's ref transaction */
  private readonly refs: RefSession;

  constructor(private readonly o: BranchCutterOptions) {
    this.refs = new RefSession(o.gitDir);
  }

  /**
   * The target a new task's branch is cut from: the one named (it must exist on the origin) or the
   * origin's default branch. Answered from memory; only a branch the farm has not seen yet costs a fetch.
   */
  async resolveTarget(target: string | undefined): Promise<string> {
    const { origin } = this.o;
    if (!target) return origin.knownDefaultBranch;
    if (origin.knownBranch(target)) return target;
    await origin.fetch();
    if (!origin.knownBranch(target)) throw new FarmError("invalid", `the target branch '${target}' does not exist on the origin`);
    return target;
  }

  /** Whether a task still waits for its branch (its units are not leased meanwhile). */
  blocked(taskId: string): boolean {
    return this.pending.has(taskId);
  }

  /** Cut this task's branch (soon, with the others waiting). */
  add(taskId: string, target: string): void {
    this.pending.set(taskId, target);
    // A new task does not wait out the backoff of another one whose target is gone.
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.kick();
  }

  /** Resolves once the task's branch is cut (at once when it is not waiting), or the task no longer wants it. */
  whenCut(taskId: string): Promise<void> {
    if (!this.pending.has(taskId) || this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const list = this.waiters.get(taskId);
      if (list) list.push(resolve);
      else this.waiters.set(taskId, [resolve]);
    });
  }

  stop(): void {
    this.stopped = true;
    this.refs.close();
    if (this.timer) clearTimeout(this.timer);
    for (const list of this.waiters.values()) for (const resolve of list) resolve();
    this.waiters.clear();
  }

  /** These tasks wait no more (cut, or dropped): their units may go on. */
  private settled(taskIds: string[]): void {
    for (const taskId of taskIds) {
      this.pending.delete(taskId);
      for (const resolve of this.waiters.get(taskId) ?? []) resolve();
      this.waiters.delete(taskId);
    }
    if (taskIds.length > 0) this.o.onReady(taskIds);
  }

  private kick(): void {
    if (this.draining || this.timer || this.stopped) return;
    this.draining = this.drain().finally(() => {
      this.draining = null;
      if (this.pending.size > 0 && !this.stopped) {
        // Failed (the origin unreachable): tried again later, less often each time.
        this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(500, this.backoffMs * 2));
        this.timer = setTimeout(() => {
          this.timer = null;
          this.kick();
        }, this.backoffMs);
        this.timer.unref();
      }
    });
  }

  private async drain(): Promise<void> {
    // Not in the caller's turn: a task asks for its branch just before it is recorded (so its units
    // are held back from the first dispatch), and every task created in this turn joins the batch.
    await new Promise((r) => setImmediate(r));
    while (this.pending.size > 0 && !this.stopped) {
      const batch = [...this.pending];
      try {
        // Renewed beside this batch (the next one cuts from it), never waited for here.
        void this.o.origin.fetchIfOlder(FRESH_MS).catch(() => undefined);
        const own = (this.own ??= await this.listOwn());
        const originBranch = (name: string) => this.o.origin.knownBranch(name);
        const lines: string[] = [];
        const cut: string[] = [];
        const missing: string[] = [];
        const dropped: string[] = [];
        for (const [taskId, target] of batch) {
          if (!this.o.live(taskId)) {
            dropped.push(taskId); // cancelled or merged meanwhile: its parked units are let go (they are stale)
            continue;
          }
          const ref = `refs/heads/${integrationBranch(taskId)}`;
          // A task the farm knew before it lost its home: its branch is on the origin.
          const base = own.has(ref) ? "exists" : (originBranch(integrationBranch(taskId)) ?? originBranch(target));
          if (!base) {
            missing.push(`${taskId} (its target '${target}' is gone from the origin)`);
            continue;
          }
          if (base !== "exists") lines.push(`create ${ref} ${base}`); // else: a restart, or an earlier batch
          cut.push(taskId);
        }
        if (lines.length > 0) await this.refs.apply(lines);
        for (const l of lines) own.add(l.split(" ")[1]!);
        this.settled([...cut, ...dropped]);
        if (missing.length > 0) {
          // Waits (tried again later) rather than fails: the branch may come back, or a person cancels the task.
          this.o.log.warn({ tasks: missing }, "cannot cut the tasks' branches: their target branch is gone from the origin");
          return;
        }
        this.backoffMs = 0;
      } catch (err) {
        this.own = null; // (a branch may exist that the cutter did not make: listed again)
        this.o.log.warn(
          { tasks: batch.map(([t]) => t), err: (err as Error).message.split("\n")[0] },
          "could not cut the tasks' branches yet; trying again",
        );
        return;
      }
    }
  }

  /** The farm's branches as its clone holds them now: one git call. */
  private async listOwn(): Promise<Set<string>> {
    const out = (await runGit(["for-each-ref", "--format=%(refname)", "refs/heads/optimus/"], { cwd: this.o.gitDir })).stdout;
    return new Set(out.split("\n").filter(Boolean));
  }
}
