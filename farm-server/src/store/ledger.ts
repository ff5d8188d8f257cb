import type { EscalationView, FarmEvent } from "@optimus/shared";

/** The UTC day an amount counts against (`YYYY-MM-DD`). */
export const utcDay = (ts: number): string => new Date(ts).toISOString().slice(0, 10);

interface Entry extends EscalationView {
  day: string;
  seq: number;
  /** the answer's real token counts, once settled */
  inputTokens?: number;
  outputTokens?: number;
}

/**
 * Frontier money as a fold of the journal: what is reserved (admitted calls in flight, at their
 * worst-case cost) and what is spent (settled calls, at their real usage), per task, day, worker,
 * model and in all. Admission checks `spent + reserved + worst case ≤ ceiling` against these, and
 * because events apply when staged (before the flush), two admissions in one turn see each other.
 */
export class Ledger {
  readonly entries = new Map<string, Entry>();
  /** the latest escalation of each unit (unit key → request id), for the editor's tree */
  readonly latestByUnit = new Map<string, string>();
  paused: string | undefined;
  /** request ids by state, so the queue and the calls in flight are found without scanning history */
  private readonly waiting = new Set<string>();
  private readonly flying = new Set<string>();
  private readonly spent = new Map<string, number>();
  private readonly reserved = new Map<string, number>();

  apply(e: FarmEvent): void {
    switch (e.type) {
      case "escalation_queued": {
        const d = e.data;
        this.entries.set(d.requestId, {
          requestId: d.requestId,
          taskId: d.taskId,
          unitId: d.unitId,
          worker: d.worker,
          priority: d.priority,
          state: "queued",
          model: d.model,
          maxTokens: d.maxTokens,
          inputTokensMax: d.inputTokensMax,
          reservedUsd: d.reservedUsd,
          spentUsd: 0,
          queuedAt: e.ts,
          day: utcDay(e.ts),
          seq: e.seq,
        });
        this.latestByUnit.set(`${d.taskId}/${d.unitId}`, d.requestId);
        this.waiting.add(d.requestId);
        break;
      }
      case "escalation_denied":
        this.entries.set(e.data.requestId, {
          requestId: e.data.requestId,
          taskId: e.data.taskId,
          unitId: e.data.unitId,
          worker: e.data.worker,
          priority: 0,
          state: "denied",
          model: "",
          maxTokens: 0,
          inputTokensMax: 0,
          reservedUsd: 0,
          spentUsd: 0,
          queuedAt: e.ts,
          day: utcDay(e.ts),
          seq: e.seq,
          reason: e.data.reason,
        });
        break;
      case "escalation_admitted": {
        const x = this.entries.get(e.data.requestId);
        if (!x || x.state !== "queued") break;
        x.state = "admitted";
        this.waiting.delete(x.requestId);
        this.flying.add(x.requestId);
        x.reservedUsd = e.data.reservedUsd;
        // The day the money counts against is the day it was committed to, for reservation and spend alike.
        x.day = utcDay(e.ts);
        this.add(this.reserved, x, x.reservedUsd);
        break;
      }
      case "escalation_settled": {
        const x = this.entries.get(e.data.requestId);
        if (!x || x.state !== "admitted") break;
        this.add(this.reserved, x, -x.reservedUsd);
        this.flying.delete(x.requestId);
        x.state = e.data.outcome === "answered" ? "settled" : "failed";
        x.spentUsd = e.data.costUsd;
        x.inputTokens = e.data.inputTokens;
        x.outputTokens = e.data.outputTokens;
        x.reason = e.data.message;
        this.add(this.spent, x, x.spentUsd);
        break;
      }
      case "escalation_failed": {
        const x = this.entries.get(e.data.requestId);
        if (!x || (x.state !== "queued" && x.state !== "admitted")) break;
        if (x.state === "admitted") this.add(this.reserved, x, -x.reservedUsd);
        this.waiting.delete(x.requestId);
        this.flying.delete(x.requestId);
        x.state = "failed";
        x.reason = `${e.data.errorClass}: ${e.data.message}`;
        break;
      }
      case "escalations_paused":
        this.paused = e.data.reason;
        break;
      case "escalations_resumed":
        this.paused = undefined;
        break;
      default:
        break;
    }
  }

  private add(m: Map<string, number>, x: Entry, usd: number): void {
    for (const k of [`task:${x.taskId}`, `day:${x.day}`, "all", `worker:${x.worker}`, `model:${x.model}`]) {
      const v = (m.get(k) ?? 0) + usd;
      // Sums of floats drift; a settled-to-zero reservation should read as zero.
      m.set(k, Math.abs(v) < 1e-9 ? 0 : v);
    }
  }

  spentOn(key: string): number {
    return this.spent.get(key) ?? 0;
  }
  reservedOn(key: string): number {
    return this.reserved.get(key) ?? 0;
  }

  /** Escalations waiting for admission, in admission order: priority, then arrival. */
  queue(): Entry[] {
    return [...this.waiting].map((id) => this.entries.get(id)!).sort((a, b) => b.priority - a.priority || a.seq - b.seq);
  }

  inFlight(): Entry[] {
    return [...this.flying].map((id) => this.entries.get(id)!);
  }

  /** Spend grouped for reports: per day, task, worker and model. */
  report(): {
    totalUsd: number;
    reservedUsd: number;
    byDay: Record<string, number>;
    byTask: Record<string, number>;
    byWorker: Record<string, number>;
    byModel: Record<string, number>;
    byUnit: Record<string, number>;
  } {
    const group = (prefix: string) =>
      Object.fromEntries([...this.spent].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
    const byUnit: Record<string, number> = {};
    for (const x of this.entries.values())
      if (x.spentUsd) byUnit[`${x.taskId}/${x.unitId}`] = (byUnit[`${x.taskId}/${x.unitId}`] ?? 0) + x.spentUsd;
    return {
      totalUsd: this.spentOn("all"),
      reservedUsd: this.reservedOn("all"),
      byDay: group("day:"),
      byTask: group("task:"),
      byWorker: group("worker:"),
      byModel: group("model:"),
      byUnit,
    };
  }

  toSnapshot(): unknown {
    return { entries: [...this.entries.values()], paused: this.paused };
  }

  static fromSnapshot(s: unknown): Ledger {
    const l = new Ledger();
    const o = (s ?? { entries: [] }) as { entries: Entry[]; paused?: string };
    l.paused = o.paused;
    for (const x of o.entries) {
      l.entries.set(x.requestId, x);
      if (x.state !== "denied") l.latestByUnit.set(`${x.taskId}/${x.unitId}`, x.requestId);
      if (x.state === "queued") l.waiting.add(x.requestId);
      if (x.state === "admitted") {
        l.flying.add(x.requestId);
        l.add(l.reserved, x, x.reservedUsd);
      }
      if (x.spentUsd) l.add(l.spent, x, x.spentUsd);
    }
    return l;
  }
}
