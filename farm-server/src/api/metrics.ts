import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { UnitState, type FarmEvent } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { Dispatcher } from "../dispatch/dispatcher.js";
import type { Leadership } from "./services.js";

export interface FarmMetrics {
  registry: Registry;
  observeFlush: (s: number) => void;
  /** Counts one takeover: called by the election when this node becomes the leader after another. */
  countFailover: () => void;
}

/** Prometheus metrics of one farm (its own registry, so several farms can share a process in tests). */
export function createMetrics(
  state: FarmState,
  dispatcher: Dispatcher,
  evals?: () => { running: number; waiting: number },
  leadership?: () => Leadership | undefined,
): FarmMetrics {
  const registry = new Registry();
  // prom-client's own names already start with process_ or nodejs_: the prefix is ours, once.
  collectDefaultMetrics({ register: registry, prefix: "optimus_" });
  new Gauge({
    name: "optimus_leader",
    help: "1 while this farm node leads, 0 while it stands by",
    registers: [registry],
    collect() {
      this.set((leadership?.()?.role() ?? "leader") === "leader" ? 1 : 0);
    },
  });
  const failovers = new Counter({
    name: "optimus_failovers_total",
    help: "Times this farm node took over the lead from another",
    registers: [registry],
  });
  // A move the lifecycle table does not allow is a bug in the farm: counted, so an alert can find it.
  new Gauge({
    name: "optimus_lifecycle_violations",
    help: "Unit state moves the lifecycle table does not allow (a farm bug; see the log)",
    registers: [registry],
    collect() {
      this.set(state.projection.lifecycleViolations.length);
    },
  });
  new Gauge({
    name: "optimus_units",
    help: "Units by lifecycle state",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(UnitState.options.map((s) => [s, 0]));
      for (const u of state.projection.units.values()) counts.set(u.state, (counts.get(u.state) ?? 0) + 1);
      for (const [s, n] of counts) this.set({ state: s }, n);
    },
  });
  new Gauge({
    name: "optimus_workers_connected",
    help: "Workers with an open lease stream",
    registers: [registry],
    collect() {
      let n = 0;
      for (const w of state.projection.workers.keys()) if (dispatcher.isConnected(w)) n++;
      this.set(n);
    },
  });
  if (evals) {
    new Gauge({
      name: "optimus_evals_running",
      help: "Evaluations running (at most the eval slots)",
      registers: [registry],
      collect() {
        this.set(evals().running);
      },
    });
    new Gauge({
      name: "optimus_evals_waiting",
      help: "Evaluations waiting for a free eval slot",
      registers: [registry],
      collect() {
        this.set(evals().waiting);
      },
    });
  }
  new Gauge({
    name: "optimus_leader_epoch",
    help: "Epoch this farm server leads with",
    registers: [registry],
    collect() {
      this.set(state.epoch);
    },
  });
  const events = new Counter({
    name: "optimus_events_total",
    help: "Journal events committed, by type",
    labelNames: ["type"],
    registers: [registry],
  });
  const flush = new Histogram({
    name: "optimus_journal_flush_seconds",
    help: "Group-commit flush duration",
    registers: [registry],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
  });
  state.on("committed", (es: FarmEvent[]) => {
    for (const e of es) events.inc({ type: e.type });
  });
  return { registry, observeFlush: (s) => flush.observe(s), countFailover: () => failovers.inc() };
}
