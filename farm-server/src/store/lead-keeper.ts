import type { LeaderLease } from "./leader-lease.js";

/** The farm no longer leads: another node took over, or its lease could not be renewed in time. */
export class LeadLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LeadLostError";
  }
}

/**
 * Keeps a leader's lease alive: renews it every third of its length, and gives up the lead (calls
 * `onLost`) as soon as a renewal finds another epoch in the row, or when no renewal has succeeded
 * for a whole lease (the database unreachable: a standby may be taking over right now).
 *
 * Stepping down is for liveness only: safety does not depend on this timer. A node paused past its
 * lease can wake up before its timer fires, but every commit it tries checks the epoch and is refused.
 */
export class LeadKeeper {
  private timer: NodeJS.Timeout | null = null;
  /** When the last successful renewal was *asked* (monotonic ms): the row's lease runs at least leaseMs from then. */
  private lastRenewed = performance.now();
  private lost = false;
  /** the renewal under way, shared by whoever waits on it */
  private beating: Promise<void> | null = null;

  constructor(
    private readonly lease: LeaderLease,
    readonly epoch: number,
    private readonly onLost: (err: LeadLostError) => void,
  ) {}

  /** false once the lead is lost (the farm is stopping to stand by) */
  get held(): boolean {
    return !this.lost;
  }

  /** Starts the heartbeat (as soon as the lead is taken: a long start must not let it lapse). */
  start(): void {
    this.lastRenewed = performance.now();
    const every = Math.max(100, Math.floor(this.lease.leaseMs / 3));
    this.timer = setInterval(() => void this.renewal(), every);
    this.timer.unref();
  }

  /** Records where the leader serves, for standbys to name to their clients. */
  async publish(url: string): Promise<void> {
    const asked = performance.now();
    if (!(await this.lease.renew(this.epoch, url))) throw this.lose("another farm node took the lead while this one was starting");
    this.lastRenewed = asked;
  }

  /**
   * Whether this node surely leads right now, without asking the store: its lead not lost and its
   * last renewal asked less than a lease ago. The renewal's update ran after it was asked, so the
   * row's lease outlasts this answer; a node waking from a pause answers false until a beat renews.
   */
  fresh(): boolean {
    return !this.lost && performance.now() - this.lastRenewed < this.lease.leaseMs;
  }

  /**
   * Whether this node leads, sure enough to move the origin: fresh, or else once a renewal (the one
   * under way, or one asked now) has said so. A node whose event loop was merely busy past its lease
   * is not turned away while nobody took over; a node that was deposed learns it here.
   */
  async confirm(): Promise<boolean> {
    if (this.fresh()) return true;
    if (this.lost) return false;
    await this.renewal();
    return this.fresh();
  }

  /** One renewal at a time: a beat due while one is under way waits for it rather than racing it. */
  private renewal(): Promise<void> {
    return (this.beating ??= this.beat().finally(() => (this.beating = null)));
  }

  private async beat(): Promise<void> {
    try {
      // Renewed only while the row still carries this epoch: after a pause past the lease, the
      // renewal succeeds if nobody took over meanwhile, and fails if somebody did.
      const asked = performance.now();
      if (await this.lease.renew(this.epoch)) this.lastRenewed = asked;
      else this.lose("another farm node took the lead");
    } catch (err) {
      const late = Math.round(performance.now() - this.lastRenewed);
      if (late > this.lease.leaseMs) this.lose(`the lead could not be renewed for ${late} ms: ${(err as Error).message}`);
    }
  }

  private lose(message: string): LeadLostError {
    const err = new LeadLostError(message);
    if (!this.lost) {
      this.lost = true;
      this.stop();
      this.onLost(err);
    }
    return err;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** A clean stop hands the lead over at once. */
  async release(): Promise<void> {
    this.stop();
    if (!this.lost) await this.lease.release(this.epoch);
  }
}
