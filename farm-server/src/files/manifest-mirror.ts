import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { stringifyManifest, type FarmEvent, type TaskView } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import { manifestOf, manifestPath, manifestRelPath, writeManifest } from "./task-files.js";

export interface MirrorOptions {
  /** the farm's task files folder (in its home): `.optimus/tasks/<id>/manifest.yaml` under it */
  repo: string;
  commit: boolean;
  debounceMs: number;
  log: (msg: string, err?: unknown) => void;
  /** more files of a task to commit at its milestones (session notes, ADR drafts) */
  extraPaths?: (taskId: string) => Promise<string[]>;
  /** commits a task's files (paths relative to `repo`) onto its integration branch, and publishes it */
  commitFiles?: (taskId: string, paths: string[], message: string) => Promise<void>;
}

const FINAL: ReadonlyArray<TaskView["state"]> = ["completed", "failed", "cancelled", "held"];

/**
 * Keeps `.optimus/tasks/<id>/manifest.yaml` (in the farm's files folder) in step with the journal:
 * each committed change marks its task dirty, dirty tasks are rewritten after a short debounce, and
 * the task's files are committed onto its own integration branch when it is created and when it is
 * about to be delivered (they arrive with its change; nothing is committed on a target branch).
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
  private milestones: Promise<unknown> = Promise.resolve();
  /** per task: what its files said when they were last committed (without timestamps) */
  private readonly committedKey = new Map<string, string>();
  private readonly listener = (events: FarmEvent[]) => this.onCommitted(events);

  constructor(
    private readonly state: FarmState,
    private readonly opts: MirrorOptions,
  ) {}

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

  /** The session notes' total length: new notes are something new to commit. */
  private async notesSize(taskId: string): Promise<string> {
    const paths = (await this.opts.extraPaths?.(taskId)) ?? [];
    const sizes = await Promise.all(
      paths.map((p) =>
        stat(join(this.opts.repo, p)).then(
          (s) => s.size,
          () => 0,
        ),
      ),
    );
    return `|${sizes.join(",")}`;
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
      if (e.type === "task_archived") this.forget(e.data.taskId);
      else if (taskId && this.state.projection.tasks.has(taskId)) this.dirty.add(taskId);
    }
    if (this.dirty.size > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.writing = this.writing.then(() => this.writeDirty());
      }, this.opts.debounceMs);
    }
  }

  /** An archived task is written no more: what was kept about it goes (memory follows live work). */
  private forget(taskId: string): void {
    this.dirty.delete(taskId);
    this.lastState.delete(taskId);
    this.lastWritten.delete(taskId);
    this.edited.delete(taskId);
    this.committedKey.delete(taskId);
  }

  /** Writes every dirty task now (used on shutdown and by tests). */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.writing = this.writing.then(() => this.writeDirty());
    await this.writing;
    await this.milestones;
  }

  /**
   * The task's files as they are now, committed onto its integration branch (before its delivery):
   * its manifest is written first, whatever the debounce.
   */
  async commitTask(taskId: string, what = "ready to merge"): Promise<void> {
    if (!this.state.projection.tasks.has(taskId)) return;
    this.dirty.add(taskId);
    await this.flush();
    await this.commitMilestone(taskId, `optimus: task ${taskId} ${what}`);
  }

  private commitMilestone(taskId: string, message: string): Promise<void> {
    const run = this.milestones.then(async () => {
      if (!this.opts.commit || !this.opts.commitFiles) return;
      // Only when the task's files say something new: timestamps alone are no reason for a commit
      // (each one is a new head of the pull request, and the team's CI runs again).
      const t = this.state.projection.tasks.get(taskId);
      const key = t
        ? stringifyManifest(manifestOf(this.state.projection, t)).replace(/^\s*updatedAt: .*$/gm, "") + (await this.notesSize(taskId))
        : "";
      if (key && this.committedKey.get(taskId) === key) return;
      const paths = [manifestRelPath(taskId), ...((await this.opts.extraPaths?.(taskId)) ?? [])];
      await this.opts.commitFiles(taskId, paths, message);
      if (key) this.committedKey.set(taskId, key);
    });
    this.milestones = run.catch((err) => this.opts.log(`could not commit the files of task ${taskId}`, err));
    return run;
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
      // Read now: after an await the task may have been archived (its units out of the projection).
      const now = this.state.projection.taskView(t).state;
      try {
        const m = manifestOf(this.state.projection, t);
        const before = this.lastWritten.get(taskId);
        const onDisk = before === undefined ? null : await this.readManifest(taskId);
        if (before !== undefined && onDisk !== null && onDisk !== before) {
          if (!this.edited.has(taskId)) {
            this.edited.add(taskId);
            this.opts.log(
              `the manifest of task ${taskId} (${manifestRelPath(taskId)}) was edited since the farm wrote it; the farm leaves it as it is and keeps the task's state in its journal`,
            );
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
      if (!this.state.projection.tasks.has(taskId)) continue; // archived meanwhile: nothing more to keep about it
      const before = this.lastState.get(taskId);
      this.lastState.set(taskId, now);
      if (before === undefined) toCommit.push({ taskId, what: "created" });
      else if (before !== now && FINAL.includes(now)) toCommit.push({ taskId, what: now });
    }
    // A failed task's files go onto its branch (a person finds why there). Others are committed when
    // the branch is published (each unit merged) and before delivery, by the PR loop — not at
    // creation: creating a task stays free of git commits and pushes.
    for (const c of toCommit)
      if (c.what === "failed") void this.commitMilestone(c.taskId, `optimus: task ${c.taskId} failed`).catch(() => undefined);
  }
}
