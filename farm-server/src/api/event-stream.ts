import { on } from "node:events";
import type { FarmEvent } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";

/**
 * Every committed event after `afterSeq`, then live ones, with no gap and no duplicate: live events
 * are buffered from before the backlog is read, and anything at or below the last sent seq is
 * skipped.
 */
export async function* eventsAfter(state: FarmState, afterSeq: number, signal: AbortSignal | undefined): AsyncGenerator<FarmEvent> {
  const live = on(state, "committed", { signal }) as AsyncIterableIterator<[FarmEvent[]]>;
  let last = afterSeq;
  try {
    for (;;) {
      const page = await state.journal.readAfter(last, 1_000);
      for (const e of page) {
        yield e;
        last = e.seq;
      }
      if (page.length < 1_000) break;
    }
    for await (const [events] of live) {
      for (const e of events) {
        if (e.seq <= last) continue;
        yield e;
        last = e.seq;
      }
    }
  } catch (err) {
    if ((err as Error).name !== "AbortError") throw err;
  } finally {
    await live.return?.();
  }
}
