import type { Logger } from "pino";
import type { FarmState } from "../core/farm-state.js";

/**
 * The PR loop's steps, one queue per task: a task's steps run in order (merges into its integration
 * branch must not interleave), each once the journal has settled; tasks do not wait for each other.
 */
export class TaskQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  constructor(private readonly d: { state: Pick<FarmState, "settle">; log: Logger }) {}

  /** Runs `fn` after the task's earlier steps; its result (or error) is the caller's. */
  queue<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(taskId) ?? Promise.resolve();
    const run = prev.then(async () => {
      await this.d.state.settle();
      return fn();
    });
    const tail = run.catch(() => undefined);
    this.tails.set(taskId, tail);
    void tail.then(() => this.tails.get(taskId) === tail && this.tails.delete(taskId));
    return run;
  }

  /** Queues a step nobody waits for: its failure is logged. */
  later(taskId: string, fn: () => Promise<unknown>): void {
    this.queue(taskId, fn).catch((err) => this.d.log.error({ err, taskId }, "PR loop step failed"));
  }

  /** Waits for every queued step (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.tails.values()]);
  }
}
