import { readFile } from "node:fs/promises";
import { stringifyManifest, type FarmEvent, type TaskView } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import { GitMilestones } from "./git-milestones.js";
import { manifestOf, manifestPath, manifestRelPath, writeManifest } from "./task-files.js";

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
 *
 * A manifest someone edited since the farm last wrote it (open in an editor with local changes) is
 * never overwritten: the farm says so once and keeps the journal as the truth; it writes again once
 * the file is back to what it wrote (the edits saved elsewhere, or undone).
 */
export class ManifestMirror {
  private dirty = new Set<string>();
  private timer: NodeJS.Timeout | null = null;
  private writing: Promise<void> = Promise.resolve();
  private readonly lastState = new Map<string, TaskView["state"]>();
  /** what the farm last wrote (or found at start) per task: the file is the farm's while it still reads so */
  private readonly lastWritten = new Map<string, string>();
  /** tasks whose manifest has someone's edits: said once, not written */
  private readonly edited = new Set<string>();
  private readonly milestones: GitMilestones;
  private readonly listener = (events: FarmEvent[]) => this.onCommitted(events);

  constructor(private readonly state: FarmState, private readonly opts: MirrorOptions) {
    this.milestones = new GitMilestones(opts.repo, opts.log, opts.serial);
  }

  start(): void {
    const ids = [...this.state.projection.tasks.values()].map((t) => {
      this.lastState.set(t.taskId, this.state.projection.taskView(t).state);
      return t.taskId;
    });
    // What is on disk at start is taken as the farm's own last write (it wrote the file before it
    // stopped); read before the first write, which waits for it.
    this.writing = (async () => {
      for (const id of ids) {
        const onDisk = await this.readManifest(id);
        if (onDisk !== null && !this.lastWritten.has(id)) this.lastWritten.set(id, onDisk);
      }
    })();
    this.state.on("committed", this.listener);
  }

  private async readManifest(taskId: string): Promise<string | null> {
    try {
      return await readFile(manifestPath(this.opts.repo, taskId), "utf8");
    } catch {
      return null;
    }
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
        const m = manifestOf(this.state.projection, t);
        const before = this.lastWritten.get(taskId);
        const onDisk = before === undefined ? null : await this.readManifest(taskId);
        if (before !== undefined && onDisk !== null && onDisk !== before) {
          if (!this.edited.has(taskId)) {
            this.edited.add(taskId);
            this.opts.log(`the manifest of task ${taskId} (${manifestRelPath(taskId)}) was edited since the farm wrote it; the farm leaves it as it is and keeps the task's state in its journal`);
          }
          continue;
        }
        this.edited.delete(taskId);
        await writeManifest(this.opts.repo, m);
        this.lastWritten.set(taskId, stringifyManifest(m));
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
