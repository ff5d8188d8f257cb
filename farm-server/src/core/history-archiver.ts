import { FINISHED_TASK_STATES, type EventBody } from "@optimus/shared";
import type { TaskRecord } from "../store/projection.js";
import type { FarmState } from "./farm-state.js";

/** events per commit: a sweep of a long-idle farm does not stall the farm's thread in one go */
const BATCH = 200;

export interface ArchiverOptions {
  retentionMs: number;
  sweepEveryMs: number;
  log: (msg: string, err?: unknown) => void;
}

/**
 * Moves finished tasks out of the hot state once their retention has passed: one `task_archived`
 * event each, carrying the task's last views. The projection then forgets them, so memory, the
 * snapshot and the editor's first message follow live work, while the journal still answers for
 * them (`task show`, the editor's older tasks, a unit's history).
 */
export class HistoryArchiver {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<number> | null = null;

  constructor(
    private readonly state: FarmState,
    private readonly opts: ArchiverOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => void this.sweep(), this.opts.sweepEveryMs);
    this.timer.unref();
    void this.sweep();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  /** Archives every task finished longer than the retention ago; returns how many. */
  sweep(now = Date.now()): Promise<number> {
    this.running ??= this.archiveDue(now)
      .catch((err) => {
        this.opts.log("could not archive finished tasks", err);
        return 0;
      })
      .finally(() => (this.running = null));
    return this.running;
  }

  private async archiveDue(now: number): Promise<number> {
    const p = this.state.projection;
    const isDue = (t: TaskRecord) => now - t.updatedAt >= this.opts.retentionMs && FINISHED_TASK_STATES.has(p.taskView(t).state);
    const due = [...p.tasks.values()].filter(isDue).map((t) => t.taskId);
    let done = 0;
    for (let i = 0; i < due.length; i += BATCH) {
      const events: EventBody[] = [];
      for (const id of due.slice(i, i + BATCH)) {
        // Asked again: a person may have retried a unit while an earlier batch was committed.
        const t = p.tasks.get(id);
        if (t && isDue(t)) events.push({ type: "task_archived", data: p.archiveOf(t) });
      }
      if (events.length) await this.state.commit(events, "farm");
      done += events.length;
    }
    return done;
  }
}
