// Measure: one-unit tasks created, leased and completed over the API — the farm as its own process
// (`optimus farm up` on a git repository, so every task's branch is cut), N real WorkerAgents over
// WebSocket, tasks created over HTTP — in the two modes the queue baselines use (queue-baselines.ts):
// one by one (each create awaited while the workers drain), and bulk (all created, then drained).
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { WorkerAgent } from "@optimus/farm-server";
import { tokenFor } from "../helpers/clients.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { percentile, withTimeout } from "./stats.js";
import { pgQuery, TEST_PG_URL } from "../helpers/postgres.js";

/** The farm's store on this machine's PostgreSQL: a schema of its own, the password as an operator gives it (PGPASSWORD). */
function pgStore() {
  const u = new URL(TEST_PG_URL);
  const password = decodeURIComponent(u.password);
  u.password = "";
  const schema = `bench_${randomBytes(5).toString("hex")}`;
  return { password, store: { kind: "postgres" as const, url: u.toString(), schema } };
}

export interface ApiThroughputOptions {
  tasks: number;
  workers: number;
  /** give up on a run after this long */
  timeoutMs: number;
  /** where the farm keeps its journal and tokens (default sqlite): postgres uses this machine's PostgreSQL */
  store?: "sqlite" | "postgres";
}

export interface ApiThroughputResult {
  mode: "one-by-one" | "bulk";
  store: "sqlite" | "postgres";
  ok: boolean;
  error?: string;
  tasks: number;
  wallMs: number;
  unitsPerSec: number;
  /** create call → the worker starts the unit, ms */
  startLatencyP50: number;
  startLatencyP99: number;
}

async function run(mode: ApiThroughputResult["mode"], o: ApiThroughputOptions): Promise<ApiThroughputResult> {
  const repo = makeRepo(undefined, "optimus-bench-api-");
  const store = o.store ?? "sqlite";
  const pg = store === "postgres" ? pgStore() : null;
  let farm: ProcessTestFarm | undefined;
  const agents: WorkerAgent[] = [];
  const createdAt = new Map<string, number>();
  const startLatency: number[] = [];
  let done = 0;
  let allDone!: () => void;
  const finished = new Promise<void>((r) => (allDone = r));
  try {
    // Like for like with a job queue: one unit per task, no review unit, no planner.
    farm = await startTestFarm(undefined, {
      mode: "process",
      repo,
      config: {
        prloop: { reviewEveryCodegenUnit: false },
        planner: { enabled: false },
        files: { commit: false },
        ...(pg ? { store: pg.store } : {}),
      },
      args: ["--heartbeat-ms", "2000"],
      ...(pg ? { env: { PGPASSWORD: pg.password } } : {}),
    });
    const { url } = farm;
    const token = await tokenFor(url, farm.adminToken, "worker", "bench");
    const admin = farm.client;
    const startWorkers = () =>
      Promise.all(
        Array.from({ length: o.workers }, async (_, i) => {
          const agent = new WorkerAgent({
            farmUrl: url,
            token,
            registration: { nodeId: `api-${i}`, role: "codegen", maxConcurrentTasks: 1, model: { primary: "bench" } },
            execute: async (lease) => {
              const at = createdAt.get(lease.taskId);
              if (at !== undefined) startLatency.push(performance.now() - at);
              return { outcome: "succeeded", summary: "" };
            },
            onOutcome: (_l, out) => {
              if (out.accepted && ++done === o.tasks) allDone();
            },
          });
          agents.push(agent);
          await agent.start();
        }),
      );
    const create = async (i: number) => {
      const id = `api-${i}`;
      createdAt.set(id, performance.now());
      await admin.tasks.create.mutate({ id, title: `task ${i}`, units: [{ id: "u1", goal: `unit ${i}` }] });
    };
    let t0: number;
    if (mode === "one-by-one") {
      await startWorkers();
      t0 = performance.now();
      for (let i = 0; i < o.tasks; i++) await create(i);
    } else {
      // Ten at a time, as a script sending a batch would; then the workers drain the queue.
      for (let i = 0; i < o.tasks; i += 10) await Promise.all(Array.from({ length: Math.min(10, o.tasks - i) }, (_, j) => create(i + j)));
      startLatency.length = 0;
      createdAt.clear();
      t0 = performance.now();
      await startWorkers();
    }
    await withTimeout(finished, o.timeoutMs, () => `${mode}: ${done}/${o.tasks} units completed`);
    const wallMs = performance.now() - t0;
    return {
      mode,
      store,
      ok: true,
      tasks: o.tasks,
      wallMs,
      unitsPerSec: (o.tasks / wallMs) * 1000,
      startLatencyP50: percentile(startLatency, 50),
      startLatencyP99: percentile(startLatency, 99),
    };
  } catch (err) {
    return {
      mode,
      store,
      ok: false,
      error: (err as Error).message,
      tasks: o.tasks,
      wallMs: NaN,
      unitsPerSec: NaN,
      startLatencyP50: NaN,
      startLatencyP99: NaN,
    };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await farm?.stop();
    rmSync(repo, { recursive: true, force: true });
    if (pg) await pgQuery(`DROP SCHEMA IF EXISTS "${pg.store.schema}" CASCADE`).catch(() => undefined);
  }
}

export async function apiThroughput(o: ApiThroughputOptions): Promise<ApiThroughputResult[]> {
  return [await run("one-by-one", o), await run("bulk", o)];
}

if (process.argv[1]?.endsWith("api-throughput.js")) {
  console.log(JSON.stringify(await apiThroughput({ tasks: Number(process.env.TASKS ?? 1000), workers: 10, timeoutMs: 120_000 }), null, 1));
}
