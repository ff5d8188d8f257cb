// Baselines for the farm's job throughput: two off-the-shelf PostgreSQL job queues (pg-boss 10 and
// graphile-worker 0.16) on this machine's local PostgreSQL, each run in a throw-away database.
//
// Durability is comparable between the two (and with a journal that fsyncs every commit): the server
// keeps its default settings (synchronous_commit = on, fsync = on; we change nothing), both libraries
// keep jobs in ordinary logged tables, and every enqueue (in one-by-one mode) and every completion is
// its own committed transaction. Handlers do nothing but record their start time, so the figures are
// the queues' own cost: enqueue, claim (SELECT … FOR UPDATE SKIP LOCKED), complete.
import { EventEmitter } from "node:events";
import { userInfo } from "node:os";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import PgBoss from "pg-boss";
import { Logger, makeWorkerUtils, run, type WorkerEvents } from "graphile-worker";
import { fmt, percentile, withTimeout } from "./stats.js";

export interface QueueBaselineOptions {
  jobs: number;
  workers: number;
}
export interface QueueBaselineResult {
  queue: "pg-boss" | "graphile-worker";
  mode: "one-by-one" | "bulk";
  ok: boolean;
  error?: string;
  jobs: number;
  wallMs: number;
  jobsPerSec: number;
  /** enqueue call → handler start, ms */ startLatencyP50: number;
  startLatencyP99: number;
}

type Queue = QueueBaselineResult["queue"];
type Mode = QueueBaselineResult["mode"];

const SOCKET = "/var/run/postgresql";
// node-postgres does not fall back to the OS user when $USER is unset (as under some runners).
const USER = process.env.PGUSER ?? userInfo().username;
const RUN_TIMEOUT_MS = 60_000;
/**
 * A pg-boss worker loop's sleep after an empty fetch, its only wake-up source (pg-boss has no NOTIFY).
 * Measured on this 2-CPU machine (1000 jobs one by one, 10 workers): 2–10 ms was worse in both
 * throughput and start latency than 20 ms, because ten loops of empty fetches steal CPU from the
 * producer's inserts and from PostgreSQL; 50 ms raised throughput a little but doubled p50 latency.
 */
const PGBOSS_IDLE_MS = 20;
/** graphile-worker wakes idle workers by LISTEN/NOTIFY; the poll is only a fallback (its default is 2 s). */
const GW_POLL_MS = 100;

/** What one run records. Shared by the harness (timeout, teardown, figures) and the queue driver. */
class Run {
  /** Per job: when its enqueue call began; in bulk mode, when the workers were started (t0), since
   *  measuring from the bulk insert would add our own set-up to every job's latency. */
  readonly enqueuedAt: number[];
  readonly startedAt: number[];
  started = 0;
  completed = 0;
  t0 = NaN;
  tEnd = NaN;
  stopped = false;
  readonly allDone: Promise<void>;
  private resolve!: () => void;
  private reject!: (e: unknown) => void;
  private cleanups: Array<() => Promise<unknown>> = [];

  constructor(
    readonly jobs: number,
    readonly workers: number,
    readonly url: string,
  ) {
    this.enqueuedAt = new Array<number>(jobs).fill(NaN);
    this.startedAt = new Array<number>(jobs).fill(NaN);
    this.allDone = new Promise<void>((res, rej) => {
      this.resolve = res;
      this.reject = rej;
    });
    this.allDone.catch(() => {}); // a failure after the harness stopped waiting must not crash the process
  }

  /** The whole job handler: note when job `i` started (a second start of the same job is an error). */
  start(i: number): void {
    if (!Number.isNaN(this.startedAt[i]!)) return this.fail(new Error(`job ${i} started twice`));
    this.startedAt[i] = performance.now();
    this.started++;
  }

  /** Called once a completion has been written (committed) to the database. */
  complete(): void {
    if (++this.completed === this.jobs) {
      this.tEnd = performance.now();
      this.resolve();
    }
  }

  fail(e: unknown): void {
    if (!this.stopped) this.reject(e);
  }

  /** Registers a teardown step (run newest first); once the run is torn down, runs it at once. */
  own(f: () => Promise<unknown>): void {
    if (this.stopped) void f().catch(() => {});
    else this.cleanups.push(f);
  }

  async teardown(): Promise<void> {
    this.stopped = true;
    for (const f of this.cleanups.reverse()) await f().catch(() => {});
  }
}

const indices = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

async function pgBoss(r: Run, mode: Mode): Promise<void> {
  const Q = "bench";
  // One connection per worker loop, one for the producer, one for pg-boss's own maintenance.
  const boss = new PgBoss({ connectionString: r.url, max: r.workers + 2 });
  boss.on("error", (e) => r.fail(e)); // pg-boss logs nothing itself; it only emits errors
  r.own(() => boss.stop({ graceful: false, wait: true, timeout: 5_000 }));
  await boss.start();
  await boss.createQueue(Q);

  // Each worker is a loop of fetch(batchSize 1) + awaited complete, not boss.work(): in pg-boss 10,
  // work() polls no faster than every 500 ms (its enforced minimum) and after each fetch sleeps the
  // rest of that interval even when it got jobs, so a worker would take at most batchSize jobs per
  // 0.5 s and start latency would be ~250 ms of timer; it also fires complete() without awaiting it,
  // so completions could not be counted. The fetch/complete loop is pg-boss's documented manual API
  // and measures the queue's SQL rather than its poll timer. batchSize 1 makes `workers` mean the same
  // as graphile-worker's concurrency: jobs in flight.
  const loops: Promise<void>[] = [];
  const loop = async (): Promise<void> => {
    while (!r.stopped && r.completed < r.jobs) {
      const [job] = await boss.fetch<{ i: number }>(Q, { batchSize: 1 });
      if (!job) {
        await sleep(PGBOSS_IDLE_MS);
        continue;
      }
      r.start(job.data.i);
      await boss.complete(Q, job.id);
      r.complete();
    }
  };
  const startWorkers = () => {
    for (let w = 0; w < r.workers; w++) loops.push(loop().catch((e) => r.fail(e)));
  };
  r.own(() => Promise.allSettled(loops)); // loops end before boss.stop() closes their pool

  if (mode === "bulk") {
    await boss.insert(indices(r.jobs).map((i) => ({ name: Q, data: { i } })));
    r.t0 = performance.now();
    r.enqueuedAt.fill(r.t0);
    startWorkers();
  } else {
    startWorkers();
    r.t0 = performance.now();
    for (let i = 0; i < r.jobs && !r.stopped; i++) {
      r.enqueuedAt[i] = performance.now();
      await boss.send(Q, { i });
    }
  }
  await r.allDone;
  // Cross-check in the database: nothing left before the `completed` state.
  const left = await boss.getQueueSize(Q, { before: "completed" });
  if (left !== 0) throw new Error(`${left} pg-boss jobs not completed in the database`);
}

async function graphileWorker(r: Run, mode: Mode): Promise<void> {
  const logger = new Logger(() => () => {}); // drop every log line
  // Our own pools, so teardown can await their end (run()'s stop() leaves its pool closing in the
  // background, and the DROP … WITH (FORCE) then hits clients whose error handler is gone). The
  // producer gets its own small pool, as a separate API process would.
  const pool = (max: number) => {
    const p = new pg.Pool({ connectionString: r.url, max });
    p.on("error", (e) => r.fail(e));
    r.own(() => p.end());
    return p;
  };
  const utils = await makeWorkerUtils({ pgPool: pool(2), logger });
  r.own(async () => utils.release());
  await utils.migrate();

  // Listen before run() so no completion can be missed (in bulk mode workers start at once).
  const events = new EventEmitter() as WorkerEvents;
  events.on("job:complete", ({ error }) => (error == null ? r.complete() : r.fail(error)));
  const startWorkers = async () => {
    const runner = await run({
      pgPool: pool(r.workers + 2), // one per worker, the LISTEN connection, one spare
      logger,
      events,
      noHandleSignals: true,
      concurrency: r.workers,
      pollInterval: GW_POLL_MS,
      taskList: { bench: async (payload) => r.start((payload as { i: number }).i) },
    });
    r.own(() => runner.stop());
  };

  if (mode === "bulk") {
    // graphile-worker 0.16 has no addJobs() helper; its SQL add_jobs() through the utils' client is
    // the documented bulk path: one statement, one transaction, one NOTIFY.
    const specs = JSON.stringify(indices(r.jobs).map((i) => ({ identifier: "bench", payload: { i } })));
    await utils.withPgClient((c) =>
      c.query(
        `select count(*) from graphile_worker.add_jobs(array(
         select s from json_populate_recordset(null::graphile_worker.job_spec, $1::json) s))`,
        [specs],
      ),
    );
    // Timing includes run()'s own start-up (pool, LISTEN, schema check): that is "starting the workers".
    r.t0 = performance.now();
    r.enqueuedAt.fill(r.t0);
    await startWorkers();
  } else {
    await startWorkers();
    r.t0 = performance.now();
    for (let i = 0; i < r.jobs && !r.stopped; i++) {
      r.enqueuedAt[i] = performance.now();
      await utils.addJob("bench", { i });
    }
  }
  await r.allDone;
  // Cross-check in the database: graphile-worker deletes a job when it completes.
  const left = await utils.withPgClient((c) => c.query<{ n: number }>("select count(*)::int as n from graphile_worker._private_jobs"));
  if (left.rows[0]!.n !== 0) throw new Error(`${left.rows[0]!.n} graphile-worker jobs left in the database`);
}

const drivers: Record<Queue, (r: Run, mode: Mode) => Promise<void>> = { "pg-boss": pgBoss, "graphile-worker": graphileWorker };

/** One queue × mode in a fresh database, which is dropped afterwards whatever happened. */
async function measure(queue: Queue, mode: Mode, o: QueueBaselineOptions): Promise<QueueBaselineResult> {
  const db = `optimus_bench_${queue.replace("-", "_")}_${mode === "bulk" ? "bulk" : "one"}_${process.pid}`;
  const r = new Run(o.jobs, o.workers, `postgresql://${USER}@/${db}?host=${encodeURIComponent(SOCKET)}`);
  const admin = new pg.Client({ host: SOCKET, user: USER, database: "postgres" });
  let error: string | undefined;
  let created = false;
  try {
    await admin.connect();
    await admin.query(`CREATE DATABASE ${db}`);
    created = true;
    await withTimeout(drivers[queue](r, mode), RUN_TIMEOUT_MS, () => `${r.completed}/${o.jobs} jobs completed`);
    if (r.started !== o.jobs) throw new Error(`${r.started}/${o.jobs} handlers started`);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    await r.teardown();
    // WITH (FORCE) ends any connection a stuck library still holds, so the drop cannot hang or fail.
    if (created)
      await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch((e) => {
        error ??= `drop failed: ${e}`;
      });
    await admin.end().catch(() => {});
  }
  // On failure the figures describe what did finish before the error or timeout.
  const wallMs = Number.isNaN(r.t0) ? 0 : (Number.isNaN(r.tEnd) ? performance.now() : r.tEnd) - r.t0;
  const lat = r.startedAt.map((s, i) => s - r.enqueuedAt[i]!).filter((x) => !Number.isNaN(x));
  return {
    queue,
    mode,
    ok: error === undefined,
    ...(error === undefined ? {} : { error }),
    jobs: o.jobs,
    wallMs,
    jobsPerSec: wallMs > 0 ? r.completed / (wallMs / 1000) : 0,
    startLatencyP50: percentile(lat, 50),
    startLatencyP99: percentile(lat, 99),
  };
}

export async function queueBaselines(o: QueueBaselineOptions, log: (msg: string) => void): Promise<QueueBaselineResult[]> {
  const results: QueueBaselineResult[] = [];
  for (const queue of ["pg-boss", "graphile-worker"] as const) {
    for (const mode of ["one-by-one", "bulk"] as const) {
      log(`queue baseline: ${queue} ${mode}, ${o.jobs} jobs, ${o.workers} workers…`);
      const res = await measure(queue, mode, o);
      log(
        res.ok
          ? `  ${fmt(res.jobsPerSec)} jobs/s in ${fmt(res.wallMs)} ms; start latency p50 ${fmt(res.startLatencyP50)} ms, p99 ${fmt(res.startLatencyP99)} ms`
          : `  FAILED: ${res.error}`,
      );
      results.push(res);
    }
  }
  return results;
}

if (process.argv[1]?.endsWith("queue-baselines.js")) {
  queueBaselines({ jobs: 2000, workers: 10 }, console.error).then(
    (results) => console.log(JSON.stringify(results, null, 2)),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
