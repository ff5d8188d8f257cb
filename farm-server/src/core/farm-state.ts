import { EventEmitter } from "node:events";
import type { EventBody, FarmEvent } from "@optimus/shared";
import type { Journal } from "../store/journal.js";
import { Projection, type Touched, type UnitMove } from "../store/projection.js";

export interface FarmStateEvents {
  /** events that are durable, in order */
  committed: [FarmEvent[]];
  /**
   * Right after `committed`, while someone listens: the unit moves those events made (recorded as
   * they were folded, so nothing is folded twice) with the events themselves.
   */
  moved: [UnitMove[], FarmEvent[]];
  /** the journal could not be written: memory is ahead of disk, the process must stop */
  fatal: [Error];
}

/**
 * The journal and its projection, kept in step with group commit.
 *
 * `commit` folds events into the projection at once (so the next command sees them; Node runs one
 * command at a time, so validation and staging never interleave) and resolves when the batch they
 * joined is on disk. Nobody outside learns of an event before that: acknowledgements, pushes to
 * workers, the event stream and the files all wait for `committed`. If a flush fails the state in
 * memory is ahead of the journal, so the farm stops (fail-stop) rather than act on it.
 */
export class FarmState extends EventEmitter<FarmStateEvents> {
  projection = new Projection();
  private pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private batch: FarmEvent[] = [];
  private batchMoves: UnitMove[] = [];
  private flushScheduled = false;
  private flushing: Promise<void> | null = null;
  private sinceSnapshot = 0;
  private failed: Error | null = null;
  /** called synchronously with what each staged event touched (the dispatcher's ready queue) */
  onTouched: ((t: Touched) => void) | null = null;
  /** called with each flush's duration in seconds (metrics) */
  onFlush: ((seconds: number) => void) | null = null;

  constructor(
    readonly journal: Journal,
    private readonly snapshotEvery: number,
  ) {
    super();
  }

  /** Opens the journal, restores the last snapshot and replays the rest. */
  async load(onProgress?: (done: number) => void): Promise<{ epoch: number; replayed: number; snapshotDiscarded: boolean }> {
    const { epoch } = await this.journal.open();
    const snap = await this.journal.loadSnapshot();
    // A snapshot of another format (an older or newer version wrote it) is not trusted: replayed instead.
    const restored = snap ? Projection.fromSnapshot(snap.state) : null;
    if (restored) this.projection = restored;
    let replayed = 0;
    for (;;) {
      const page = await this.journal.readAfter(this.projection.lastSeq, 5_000);
      if (page.length === 0) break;
      for (const e of page) this.projection.apply(e);
      replayed += page.length;
      onProgress?.(replayed);
    }
    return { epoch, replayed, snapshotDiscarded: !!snap && !restored };
  }

  get epoch(): number {
    return this.journal.epoch;
  }

  /** Stages events (applied to the projection now) and resolves once they are durable. */
  commit(bodies: EventBody[], actor: string): Promise<FarmEvent[]> {
    if (this.failed) return Promise.reject(this.failed);
    const touched: Touched = { tasks: new Set(), readyUnits: new Set() };
    // Moves are recorded only while someone listens for them (a farm logging at info does).
    this.projection.moves = this.listenerCount("moved") > 0 ? this.batchMoves : null;
    let events: FarmEvent[];
    try {
      events = bodies.map((b) => {
        const e = this.journal.stage(b, actor);
        this.projection.apply(e, touched);
        this.batch.push(e);
        return e;
      });
    } finally {
      this.projection.moves = null;
    }
    this.onTouched?.(touched);
    return new Promise<FarmEvent[]>((resolve, reject) => {
      this.pending.push({ resolve: () => resolve(events), reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate lets every command of this turn of the event loop join one transaction.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flushNow();
    });
  }

  private async flushNow(): Promise<void> {
    if (this.flushing) await this.flushing;
    if (this.pending.length === 0) return;
    const waiters = this.pending;
    const events = this.batch;
    const moves = this.batchMoves;
    this.pending = [];
    this.batch = [];
    this.batchMoves = [];
    const run = (async () => {
      try {
        const t0 = performance.now();
        await this.journal.flush();
        this.onFlush?.((performance.now() - t0) / 1000);
      } catch (err) {
        this.failed = err as Error;
        for (const w of waiters) w.reject(this.failed);
        this.emit("fatal", this.failed);
        return;
      }
      this.emit("committed", events);
      if (this.listenerCount("moved") > 0) this.emit("moved", moves, events);
      for (const w of waiters) w.resolve();
      this.sinceSnapshot += events.length;
    })();
    this.flushing = run;
    await run;
    this.flushing = null;
    // Outside the flush: a snapshot waits for flushes to settle, so taking it inside one would wait on itself.
    if (this.sinceSnapshot >= this.snapshotEvery && !this.failed) {
      this.snapshot().catch((err) => this.emit("fatal", err as Error));
    }
  }

  /** Waits until everything staged so far is durable. */
  async settle(): Promise<void> {
    while (this.pending.length > 0 || this.flushing) {
      if (this.flushing) await this.flushing;
      else await this.flushNow();
    }
  }

  /** Saves the projection; skipped (tried again later) while events are staged but not yet durable. */
  async snapshot(): Promise<boolean> {
    await this.settle();
    if (this.batch.length > 0 || this.projection.lastSeq !== this.journal.lastCommittedSeq()) return false;
    this.sinceSnapshot = 0;
    await this.journal.saveSnapshot({ seq: this.projection.lastSeq, state: this.projection.toSnapshot() });
    return true;
  }
}
