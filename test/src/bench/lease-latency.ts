// Measure 3: create → lease-received latency over loopback, with the real farm as a child process
// (`optimus farm up`) and 50 real WorkerAgents (tRPC over WebSocket) in this process.
import { rmSync } from "node:fs";
import { WorkerAgent } from "@optimus/farm-server";
import { tokenFor } from "../helpers/clients.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { waitFor } from "../helpers/wait.js";
import { mean, percentile, withTimeout } from "./stats.js";

export interface LatencyOptions {
  workers: number;
  warmup: number;
  samples: number;
  heartbeatMs: number;
  /** give up on one sample after this long */
  sampleTimeoutMs: number;
  /** stop sampling (keeping what was measured) after this long */
  budgetMs: number;
}

export interface Dist {
  n: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

export interface LatencyResult {
  ok: boolean;
  error?: string;
  workers: number;
  /** before tasks.create → the worker's execute() receives the lease */
  createToLease: Dist;
  /** before tasks.create → the create call's HTTP answer */
  createAck: Dist;
  /** before tasks.create → the worker's submission accepted (unit done, durable) */
  createToResult: Dist;
  distinctWorkersUsed: number;
  farmFlushes: number;
  farmFlushMeanMs: number;
  farmEvents: number;
}

const dist = (xs: number[]): Dist => ({
  n: xs.length,
  p50: percentile(xs, 50),
  p90: percentile(xs, 90),
  p99: percentile(xs, 99),
  max: Math.max(...xs),
  mean: mean(xs),
});

/** Reads one sample (sum over label sets) from the farm's Prometheus text. */
function metric(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && m[1] === name) sum += Number(m[3]);
  }
  return sum;
}

const scrape = async (url: string) => (await fetch(`${url}/metrics`)).text();

interface Waiter {
  leased?: (at: number, nodeId: string) => void;
  result?: (at: number) => void;
}

export async function leaseLatency(o: LatencyOptions): Promise<LatencyResult> {
  const repo = makeRepo(undefined, "optimus-bench-latency-");
  let farm: ProcessTestFarm | undefined;
  const agents: WorkerAgent[] = [];
  const toLease: number[] = [];
  const ack: number[] = [];
  const toResult: number[] = [];
  const used = new Set<string>();
  let error: string | undefined;
  let before = "";
  let after = "";
  try {
    farm = await startTestFarm(undefined, { mode: "process", repo, args: ["--heartbeat-ms", String(o.heartbeatMs)] });
    const { url } = farm;
    const workerToken = await tokenFor(url, farm.adminToken, "worker", "bench-workers");
    const waiters = new Map<string, Waiter>(); // by unit goal, unique per sample (known before the create returns)
    const start = async (i: number) => {
      const nodeId = `bench-${i}`;
      const agent = new WorkerAgent({
        farmUrl: url,
        token: workerToken,
        registration: { nodeId, role: "codegen", maxConcurrentTasks: 1, model: { primary: "bench" } },
        execute: async (lease) => {
          const at = performance.now();
          waiters.get(lease.spec.goal)?.leased?.(at, nodeId);
          return { outcome: "succeeded", summary: "" };
        },
        onOutcome: (lease, out) => {
          const at = performance.now();
          if (out.accepted) waiters.get(lease.spec.goal)?.result?.(at);
        },
      });
      agents.push(agent);
      await agent.start();
    };
    for (let i = 0; i < o.workers; i += 10) await Promise.all(Array.from({ length: Math.min(10, o.workers - i) }, (_, j) => start(i + j)));
    await waitFor(
      async () => metric(await scrape(url), "optimus_workers_connected") >= o.workers,
      `${o.workers} lease streams open`,
      15_000,
      50,
    );

    const admin = farm.client;
    const one = async (i: number, record: boolean) => {
      const goal = `latency sample ${i}`;
      const w: Waiter = {};
      const leased = new Promise<{ at: number; nodeId: string }>((r) => (w.leased = (at, nodeId) => r({ at, nodeId })));
      const result = new Promise<number>((r) => (w.result = r));
      waiters.set(goal, w);
      const t0 = performance.now();
      const created = admin.tasks.create
        .mutate({ id: `lat-${i}`, title: `latency ${i}`, units: [{ id: "u1", goal }] })
        .then(() => performance.now());
      const [l, a, r] = await withTimeout(
        Promise.all([leased, created, result]),
        o.sampleTimeoutMs,
        () => `sample ${i} (lease, create answer and result)`,
      );
      waiters.delete(goal);
      if (!record) return;
      toLease.push(l.at - t0);
      ack.push(a - t0);
      toResult.push(r - t0);
      used.add(l.nodeId);
    };
    for (let i = 0; i < o.warmup; i++) await one(i, false);
    before = await scrape(url);
    const end = performance.now() + o.budgetMs;
    for (let i = 0; i < o.samples && performance.now() < end; i++) await one(o.warmup + i, true);
    after = await scrape(url);
    if (toLease.length < o.samples) error = `time budget of ${o.budgetMs} ms ran out after ${toLease.length}/${o.samples} samples`;
  } catch (err) {
    error = (err as Error).message;
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
    await farm?.stop();
    rmSync(repo, { recursive: true, force: true });
  }
  const d = (name: string) => (after && before ? metric(after, name) - metric(before, name) : NaN);
  const flushes = d("optimus_journal_flush_seconds_count");
  return {
    ok: !error && toLease.length > 0,
    ...(error ? { error } : {}),
    workers: o.workers,
    createToLease: dist(toLease),
    createAck: dist(ack),
    createToResult: dist(toResult),
    distinctWorkersUsed: used.size,
    farmFlushes: flushes,
    farmFlushMeanMs: (d("optimus_journal_flush_seconds_sum") / flushes) * 1000,
    farmEvents: d("optimus_events_total"),
  };
}
