// Measure 1: units enqueued + leased + completed per second through the real farm core, in-process,
// with the real durable journal (SQLite WAL, synchronous=FULL, group commit).
import { rmSync } from "node:fs";
import type { FarmEvent, UnitSpecInput } from "@optimus/shared";
import type { Lease } from "@optimus/farm-server";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm, type InProcessTestFarm } from "../helpers/test-farm.js";
import { msSince, withTimeout } from "./stats.js";

export interface StoreRunOptions {
  tasks: number;
  unitsPerTask: number;
  /** fake workers attached to the dispatcher (default one; `npm run bench` measures one and four) */
  workers?: number;
  /** maxConcurrentTasks of each fake worker (the schema allows at most 64) */
  capacity: number;
  /** override of config.snapshotEvery (undefined: the default) */
  snapshotEvery?: number;
  /** give up when no unit completes for this long */
  stallMs: number;
}

export interface StoreRunResult {
  ok: boolean;
  error?: string;
  units: number;
  completed: number;
  wallMs: number;
  unitsPerSec: number;
  events: number;
  eventsPerSec: number;
  flushes: number;
  eventsPerFlush: number;
  flushMsTotal: number;
  flushMsMax: number;
  /** share of the wall time spent inside journal.flush (the fsyncs), 0..1 */
  flushShare: number;
  snapshots: number;
  snapshotMsTotal: number;
  snapshotMsMax: number;
  createMsTotal: number;
  snapshotEvery: number;
  /** the snapshot close() takes of the final projection (all units), ms: what each periodic one costs at that size */
  closeSnapshotMs: number;
  rejectedSubmits: number;
}

const UNIT_GOAL = "Benchmark unit: do nothing useful, quickly. ".repeat(2).trim();

/** One run on a fresh repository and journal. */
export async function storeThroughputOnce(o: StoreRunOptions): Promise<StoreRunResult> {
  const repo = makeRepo(undefined, "optimus-bench-store-");
  const farm = await startTestFarm(undefined, {
    repo,
    config: {
      files: { mirror: false, commit: false, debounceMs: 0 },
      // The store is measured with exactly the units it is given (no automatic review units).
      prloop: { reviewEveryCodegenUnit: false },
      ...(o.snapshotEvery !== undefined ? { snapshotEvery: o.snapshotEvery } : {}),
    },
  });
  const config = farm.settings();
  const { state, tasks, leases, dispatcher } = farm.server.services;
  const total = o.tasks * o.unitsPerTask;

  // Instrumentation (observers only; the farm's own behaviour is unchanged).
  let measuring = false;
  let flushes = 0;
  let flushMsTotal = 0;
  let flushMsMax = 0;
  const prevOnFlush = state.onFlush;
  state.onFlush = (s) => {
    prevOnFlush?.(s);
    if (!measuring) return;
    flushes++;
    flushMsTotal += s * 1000;
    flushMsMax = Math.max(flushMsMax, s * 1000);
  };
  let snapshots = 0;
  let snapshotMsTotal = 0;
  let snapshotMsMax = 0;
  let closeSnapshotMs = NaN;
  const journal = state.journal;
  const saveSnapshot = journal.saveSnapshot.bind(journal);
  journal.saveSnapshot = async (s) => {
    const t = process.hrtime.bigint();
    await saveSnapshot(s);
    const ms = msSince(t);
    if (!measuring) {
      closeSnapshotMs = ms; // the one taken by close() is not part of the run
      return;
    }
    snapshots++;
    snapshotMsTotal += ms;
    snapshotMsMax = Math.max(snapshotMsMax, ms);
  };

  let events = 0;
  let completed = 0;
  let lastProgress = Date.now();
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  state.on("committed", (es: FarmEvent[]) => {
    if (!measuring) return;
    events += es.length;
    for (const e of es) if (e.type === "unit_completed") completed++;
    lastProgress = Date.now();
    if (completed >= total) resolveDone();
  });

  // Fake workers: registered in the core, attached to the dispatcher like a lease stream; every
  // lease one is pushed (once durable) is submitted as succeeded at once.
  let rejectedSubmits = 0;
  const detachers: Array<() => void> = [];
  for (let w = 0; w < (o.workers ?? 1); w++) {
    const nodeId = `bench-worker-${w}`;
    await leases.register({ nodeId, role: "codegen", maxConcurrentTasks: o.capacity, model: { primary: "bench" } }, "tok", "bench");
    detachers.push(
      dispatcher.attach(nodeId, {
        push(lease: Lease) {
          leases
            .submit(
              nodeId,
              { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId },
              { outcome: "succeeded", summary: "" },
            )
            .catch(() => rejectedSubmits++);
        },
      }),
    );
  }
  await state.settle();

  const unitsOf = (t: number): UnitSpecInput[] =>
    Array.from({ length: o.unitsPerTask }, (_, i) => ({ id: `u${i}`, goal: `${UNIT_GOAL} #${t}.${i}` }));
  const specs = Array.from({ length: o.tasks }, (_, t) => unitsOf(t)); // built before the clock starts

  measuring = true;
  const t0 = process.hrtime.bigint();
  let createMsTotal = 0;
  let error: string | undefined;
  // Stall watchdog: the run fails if no event is committed for `stallMs`.
  const stalled = new Promise<never>((_, reject) => {
    const iv = setInterval(() => {
      if (completed >= total) clearInterval(iv);
      else if (Date.now() - lastProgress > o.stallMs) {
        clearInterval(iv);
        const s = state as unknown as { pending: unknown[]; batch: unknown[]; flushing: unknown };
        reject(
          new Error(
            `stalled: no event committed for ${o.stallMs} ms; ${completed}/${total} units completed, ${events} events committed, ` +
              `${flushes} flushes, ${snapshots} snapshots saved; FarmState has ${s.pending.length} waiters and ${s.batch.length} staged events pending, ` +
              `flush in progress: ${s.flushing ? "yes (never finished)" : "no"}; projection.lastSeq=${state.projection.lastSeq}, journal committed seq=${journal.lastCommittedSeq()}`,
          ),
        );
      }
    }, 250);
    iv.unref();
  });
  stalled.catch(() => undefined);
  try {
    await Promise.race([
      (async () => {
        for (let t = 0; t < o.tasks; t++) {
          const c0 = process.hrtime.bigint();
          await tasks.create({ id: `bench-${t}`, title: `bench task ${t}`, units: specs[t]!, source: "api" }, "bench");
          createMsTotal += msSince(c0);
        }
        await done;
      })(),
      stalled,
    ]);
  } catch (err) {
    error = (err as Error).message;
  }
  const wallMs = msSince(t0);
  measuring = false;

  let ok = !error;
  if (ok) {
    // Cross-check against the projection, not just the event count.
    let notDone = 0;
    for (let t = 0; t < o.tasks; t++)
      for (const k of state.projection.tasks.get(`bench-${t}`)!.units) if (state.projection.units.get(k)!.state !== "completed") notDone++;
    if (notDone > 0) {
      ok = false;
      error = `${notDone} units not completed in the projection`;
    }
  }
  for (const d of detachers) d();
  await closeFarm(farm, ok);
  rmSync(repo, { recursive: true, force: true });
  const sec = wallMs / 1000;
  return {
    ok,
    ...(error ? { error } : {}),
    units: total,
    completed,
    wallMs,
    unitsPerSec: completed / sec,
    events,
    eventsPerSec: events / sec,
    flushes,
    eventsPerFlush: flushes ? events / flushes : 0,
    flushMsTotal,
    flushMsMax,
    flushShare: flushMsTotal / wallMs,
    snapshots,
    snapshotMsTotal,
    snapshotMsMax,
    createMsTotal,
    snapshotEvery: config.snapshotEvery,
    closeSnapshotMs,
    rejectedSubmits,
  };
}

/** Closes a farm; a farm whose flush pipeline is wedged never settles, so don't wait for it forever. */
async function closeFarm(farm: InProcessTestFarm, healthy: boolean): Promise<void> {
  await withTimeout(farm.stop(), healthy ? 15_000 : 1_000, () => "farm.close()").catch(() => {
    // Wedged: the API server is closed by now; the journal is left to process exit.
  });
}
