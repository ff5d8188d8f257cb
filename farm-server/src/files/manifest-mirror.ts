import type { FarmEvent, TaskView } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import { GitMilestones } from "./git-milestones.js";
import { manifestOf, manifestRelPath, writeManifest } from "./task-files.js";

export interface MirrorOptions {
  repo: string;
  commit: boolean;
  debounceMs: number;
  log: (msg: string, err?: unknown) => void;
  /** more files of a task to commit at its milestones (session notes) */
  extraPaths?: (taskId: string) => Promise<string[]>;
  /** shared with the PR loop's git operations on the same repository */
  serial?: <T>(fn: () => Promise<T>) => Promise<T>;
}

const FINAL: ReadonlyArray<TaskView["state"]> = ["completed", "failed", "cancelled"];

/**
 * Keeps `.optimus/tasks/<id>/manifest.yaml` in step with the journal: each committed change marks
 * its task dirty, dirty tasks are rewritten after a short debounce, and the files are committed to
 * git when a task is created and when it reaches a final state (the milestones).
 */
export class ManifestMirror {
  private dirty = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly lastState = new Map<string, TaskView["state"]>();
  private readonly milestones: GitMilestones;
  private readonly listener = (events: FarmEvent[]) => this.onCommitted(events);

  constructor(private readonly state: FarmState, private readonly opts: MirrorOptions) {
    this.milestones = new GitMilestones(opts.repo, opts.log, opts.serial);
  }

  start(): void {
    for (const t of this.state.projection.tasks.values()) this.lastState.set(t.taskId, this.state.projection.taskView(t).state);
    this.state.on("committed", this.listener);
  }

  private onCommitted(events: FarmEvent[]): void {
    for (const e of events) {
      const taskId = (e.data as { taskId?: string }).taskId;
      if (taskId && this.state.projection.tasks.has(taskId)) this.dirty.add(taskId);
    }
    if (this.dirty.size > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.writing = this.writing.then(() => this.writeDirty());
      }, this.opts.debounceMs);
    }
  }

  /** Writes every dirty task now (used on shutdown and by tests). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.writing = this.writing.then(() => this.writeDirty());
    await this.writing;
    await this.milestones.idle();
  }

  stop(): void {
    this.state.off("committed", this.listener);
  }

  private async writeDirty(): Promise<void> {
    const ids = [...this.dirty];
    this.dirty.clear();
    const toCommit: Array<{ taskId: string; what: string }> = [];
    for (const taskId of ids) {
      const t = this.state.projection.tasks.get(taskId);
      if (!t) continue;
      try {
        await writeManifest(this.opts.repo, manifestOf(this.state.projection, t));
      } catch (err) {
        this.opts.log(`could not write the manifest of task ${taskId}`, err);
        this.dirty.add(taskId);
        continue;
      }
      const now = this.state.projection.taskView(t).state;
      const before = this.lastState.get(taskId);
      this.lastState.set(taskId, now);
      if (before === undefined) toCommit.push({ taskId, what: "created" });
      else if (before !== now && FINAL.includes(now)) toCommit.push({ taskId, what: now });
    }
    if (this.opts.commit && toCommit.length > 0) {
      const msg = toCommit.length === 1
        ? `optimus: task ${toCommit[0]!.taskId} ${toCommit[0]!.what}`
        : `optimus: ${toCommit.length} tasks (${toCommit.map((c) => `${c.taskId} ${c.what}`).join(", ").slice(0, 200)})`;
      const paths = toCommit.map((c) => manifestRelPath(c.taskId));
      for (const c of toCommit) paths.push(...((await this.opts.extraPaths?.(c.taskId)) ?? []));
      void this.milestones.commit(paths, msg);
    }
  }
}
