import type { Logger } from "pino";
import type { FarmServices } from "./api/services.js";
import { FencedError } from "./store/journal.js";
import { LeadKeeper, LeadLostError } from "./store/lead-keeper.js";
import type { LeaderLease } from "./store/leader-lease.js";

/**
 * This node's lead among farm nodes sharing a PostgreSQL store, from the moment the journal took it
 * to the farm's stop: renewed from the start (a long start must not let it lapse), reported on
 * `/healthz` and `/metrics`, and, once the farm serves, a lost lead stops the farm (`farm up` then
 * stands by). A single farm (SQLite) has none: it always leads.
 */
export class FarmLeadership {
  private lostEarly: Error | undefined;
  private onLost: (err: Error) => void = (err) => void (this.lostEarly ??= err);
  private readonly keeper: LeadKeeper;

  private constructor(
    private readonly lease: LeaderLease,
    private readonly epoch: number,
  ) {
    this.keeper = new LeadKeeper(lease, epoch, (err) => this.onLost(err));
  }

  /** Starts renewing the lead taken under `epoch`; null without a lease (a single farm). */
  static start(lease: LeaderLease | undefined, epoch: number): FarmLeadership | null {
    if (!lease) return null;
    const leadership = new FarmLeadership(lease, epoch);
    leadership.keeper.start();
    return leadership;
  }

  /**
   * What a failed journal write means for a node among several: it no longer leads. Another node's
   * epoch refused the write (this one slept through its lease), or the write failed otherwise (the
   * server ended a session this node left stalled mid-commit, or the database went away): its
   * state in memory is ahead of the journal, so it stops leading and stands by, and takes the lead
   * again from the journal when it is free.
   */
  async lostBy(err: Error): Promise<LeadLostError> {
    if (err instanceof FencedError)
      return new LeadLostError(`another farm node leads now (epoch ${err.currentEpoch}); this one's writes are refused`);
    const now = await this.lease.current().catch(() => null);
    if (now && now.epoch !== this.epoch)
      return new LeadLostError(`another farm node leads now (epoch ${now.epoch}); this one's write failed`);
    return new LeadLostError(`a journal write failed (${err.message}); this node stops leading until the lead is free`);
  }

  /** Reports the role to `/healthz` and `/metrics`; taking the lead from another node is a failover. */
  report(services: FarmServices, metrics: { countFailover(): void }): void {
    services.leadership = { role: () => (this.keeper.held ? "leader" : "standby") };
    const before = this.lease.previousHolder;
    if (before && before !== this.lease.node) metrics.countFailover();
  }

  /**
   * Serving from now on: publishes where (standbys name it to their clients), and a lost lead calls
   * `close`. Throws when the lead was lost while the farm started.
   */
  async serveAt(url: string, close: (err: Error) => void): Promise<void> {
    this.onLost = close;
    if (this.lostEarly) throw this.lostEarly;
    await this.keeper.publish(url);
  }

  /**
   * Whether this node leads now: asked before git moves the origin. Derived from the heartbeat (a
   * renewal succeeds only while the row carries this epoch), so a push costs no query while the
   * beats are on time; after a pause it waits for a renewal to say.
   */
  stillLeads(): Promise<boolean> {
    return this.keeper.confirm();
  }

  stop(): void {
    this.keeper.stop();
  }

  /** On a clean stop, gives the lead up at once (else a standby takes it when the lease runs out). */
  async handOver(log: Logger): Promise<void> {
    this.keeper.stop();
    await this.keeper
      .release()
      .catch((err) => log.warn({ err }, "could not hand over the lead (a standby takes it when the lease runs out)"));
  }
}
