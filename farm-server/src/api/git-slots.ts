/**
 * A counting semaphore with a short, bounded queue: at most `max` git processes for the /git
 * endpoint at once, at most `maxQueue` requests waiting for one, each for at most `waitMs`. A request
 * that finds the queue full, or waits too long, is told to come back later (503) rather than adding
 * one more process or buffering without bound.
 */
export class GitSlots {
  private running = 0;
  private readonly waiting: Array<(granted: boolean) => void> = [];

  constructor(
    private readonly max: number,
    private readonly maxQueue: number,
    private readonly waitMs: number,
  ) {}

  /** Resolves a release function once a slot is free, or null when the farm is too busy. */
  acquire(signal?: AbortSignal): Promise<(() => void) | null> {
    if (this.running < this.max) return Promise.resolve(this.grant());
    if (this.waiting.length >= this.maxQueue || this.waitMs === 0 || signal?.aborted) return Promise.resolve(null);
    return new Promise((resolve) => {
      const done = (granted: boolean) => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abandon);
        resolve(granted ? this.grant() : null);
      };
      const leave = () => {
        const i = this.waiting.indexOf(done);
        if (i >= 0) this.waiting.splice(i, 1);
        done(false);
      };
      const abandon = () => leave();
      const timer = setTimeout(leave, this.waitMs);
      signal?.addEventListener("abort", abandon, { once: true });
      this.waiting.push(done);
    });
  }

  get busy(): number {
    return this.running;
  }

  private grant(): () => void {
    this.running++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.running--;
      // Hand the slot straight to the longest waiter.
      this.waiting.shift()?.(true);
    };
  }
}
