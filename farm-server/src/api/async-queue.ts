/** A push-to-pull bridge: producers push, one consumer awaits items; ends when the signal aborts. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private wake: (() => void) | null = null;

  constructor(private readonly signal?: AbortSignal) {
    signal?.addEventListener("abort", () => this.wake?.(), { once: true });
  }

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    while (!this.signal?.aborted) {
      if (this.items.length > 0) {
        yield this.items.shift()!;
        continue;
      }
      await new Promise<void>((r) => (this.wake = r));
      this.wake = null;
    }
  }
}
