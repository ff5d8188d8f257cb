// Gateway measures for `npm run bench`:
//   1. the gateway's overhead per frontier call on loopback: a worker's `ctx.escalate` through the real
//      farm (a child process: tRPC over WebSocket, gate, journaled queue/admit/settle, secret read,
//      SDK stream) beside the same streamed call made straight to the Anthropic stand-in with the SDK;
//   2. admission decisions/s with the real ledger and admission rule, with a queue that fits at once
//      and with one under a tight budget (every decision a check of every ceiling).
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Anthropic from "@anthropic-ai/sdk";
import { WorkerAgent } from "@optimus/farm-server";
import { admit, worstCaseUsd } from "@optimus/farm-server/dist/gateway/admission.js";
import { Ledger } from "@optimus/farm-server/dist/store/ledger.js";
import { RateLimits } from "@optimus/farm-server/dist/gateway/token-bucket.js";
import { GatewayConfig, type FarmEvent } from "@optimus/shared";
import { startAnthropicStandin } from "../helpers/anthropic-standin.js";
import { tokenFor } from "../helpers/clients.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { mean, percentile } from "./stats.js";

export interface Dist {
  n: number;
  p50: number;
  p99: number;
  mean: number;
}
const dist = (xs: number[]): Dist => ({ n: xs.length, p50: percentile(xs, 50), p99: percentile(xs, 99), mean: mean(xs) });

export interface GatewayOverhead {
  ok: boolean;
  error?: string;
  direct: Dist;
  viaGateway: Dist;
}

export async function gatewayOverhead(calls: number): Promise<GatewayOverhead> {
  const standin = await startAnthropicStandin({ fallback: { kind: "text", text: "ok" } });
  const vault = mkdtempSync(join(tmpdir(), "optimus-bench-vault-"));
  mkdirSync(join(vault, "anthropic"), { mode: 0o700 });
  writeFileSync(join(vault, "anthropic", "key"), standin.apiKey, { mode: 0o600 });
  chmodSync(vault, 0o700);
  const repo = makeRepo(undefined, "optimus-bench-gateway-");
  let farm: ProcessTestFarm | undefined;
  let agent: WorkerAgent | undefined;
  try {
    const limit = { requestsPerMin: 100000, inputTokensPerMin: 100000000, outputTokensPerMin: 100000000 };
    farm = await startTestFarm(undefined, {
      mode: "process",
      repo,
      config: {
        prloop: { reviewEveryCodegenUnit: false },
        planner: { enabled: false },
        secrets: { vaults: { dev: { provider: "file", dir: vault } } },
        gateway: {
          apiKey: "secrets-manager://dev/anthropic/key",
          baseUrl: standin.url,
          model: "claude-sonnet-5-5",
          limits: { perWorker: limit, fleet: limit },
          budgets: { perTaskUsd: 1000, perDayUsd: 1000 },
        },
      },
    });
    const { url } = farm;
    const admin = farm.client;
    const token = await tokenFor(url, farm.adminToken, "worker", "bench");
    const messages = [{ role: "user" as const, content: "Say ok." }];
    const direct: number[] = [];
    const sdk = new Anthropic({ apiKey: standin.apiKey, baseURL: standin.url, maxRetries: 0 });
    for (let i = 0; i < calls + 10; i++) {
      const t0 = performance.now();
      await sdk.messages.stream({ model: "claude-sonnet-5-5", max_tokens: 64, messages }).finalMessage();
      if (i >= 10) direct.push(performance.now() - t0);
    }
    const via: number[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    agent = new WorkerAgent({
      farmUrl: url,
      token,
      registration: { nodeId: "bench", role: "codegen", maxConcurrentTasks: 1, model: { primary: "bench" } },
      execute: async (_lease, ctx) => {
        for (let i = 0; i < calls + 10; i++) {
          const t0 = performance.now();
          await ctx.escalate({ messages, maxTokens: 64, editTool: false, signals: {} });
          if (i >= 10) via.push(performance.now() - t0);
        }
        done();
        return { outcome: "succeeded", summary: "bench" };
      },
    });
    await agent.start();
    await admin.tasks.create.mutate({ id: "bench", title: "bench", units: [{ id: "u", goal: "bench", complexity: "large" }] });
    await Promise.race([finished, waitFor(() => false, "the gateway calls", 120_000)]);
    return { ok: true, direct: dist(direct), viaGateway: dist(via) };
  } catch (err) {
    return { ok: false, error: (err as Error).message, direct: dist([]), viaGateway: dist([]) };
  } finally {
    await agent?.stop();
    await farm?.stop();
    await standin.close();
    rmSync(repo, { recursive: true, force: true });
    rmSync(vault, { recursive: true, force: true });
  }
}

export interface AdmissionRate {
  fitting: number;
  contended: number;
  decisions: number;
}

/**
 * Decisions/s of the admission rule over a queue of `n` requests with random max_tokens: "fitting"
 * with budgets that hold them all, "contended" with a daily budget that holds about 20 at a time, so
 * most decisions are refusals until earlier calls settle (settled at a thousandth of their reservation).
 */
export function admissionRate(n: number): AdmissionRate {
  const run = (perDayUsd: number): number => {
    const cfg = GatewayConfig.parse({
      apiKey: "secrets-manager://v/i/f",
      budgets: { perTaskUsd: 1e6, perDayUsd },
      limits: {
        perWorker: { requestsPerMin: 1e5, inputTokensPerMin: 1e9, outputTokensPerMin: 1e9 },
        fleet: { requestsPerMin: 1e5, inputTokensPerMin: 1e9, outputTokensPerMin: 1e9 },
      },
    });
    const ledger = new Ledger();
    const fleet = new RateLimits(cfg.limits.fleet);
    const workers = Array.from({ length: 50 }, () => new RateLimits(cfg.limits.perWorker));
    let seq = 0;
    const ev = (type: string, data: object): FarmEvent =>
      ({ type, data, seq: ++seq, ts: Date.now(), epoch: 1, actor: "bench", prevHash: "", hash: "" }) as unknown as FarmEvent;
    for (let i = 0; i < n; i++) {
      const maxTokens = 100 + Math.floor(Math.random() * 1_900);
      ledger.apply(
        ev("escalation_queued", {
          requestId: `r${i}`,
          taskId: `t${i % 50}`,
          unitId: "u",
          attempt: 1,
          worker: `worker:w${i % 50}`,
          priority: 0,
          model: "m",
          maxTokens,
          inputTokensMax: 100,
          reservedUsd: worstCaseUsd(cfg.prices, 100, maxTokens),
          gate: "",
          signals: {},
        }),
      );
    }
    const inFlight: string[] = [];
    let decisions = 0;
    const t0 = performance.now();
    for (let q = ledger.queue(); q.length > 0;) {
      const head = q[0]!;
      decisions++;
      const w = workers[Number(head.worker.slice(8))]!;
      const v = admit(
        cfg,
        ledger,
        {
          taskId: head.taskId,
          worker: head.worker,
          reservedUsd: head.reservedUsd,
          inputTokensMax: head.inputTokensMax,
          maxTokens: head.maxTokens,
        },
        w,
        fleet,
        Date.now(),
      );
      if (v.ok) {
        ledger.apply(ev("escalation_admitted", { requestId: head.requestId, reservedUsd: head.reservedUsd }));
        inFlight.push(head.requestId);
        q.shift();
      } else {
        // Refused: the oldest call in flight settles, freeing room.
        const id = inFlight.shift();
        if (!id) break; // the budget is spent: nothing more can ever be admitted
        const x = ledger.entries.get(id)!;
        ledger.apply(
          ev("escalation_settled", {
            requestId: id,
            inputTokens: 100,
            outputTokens: Math.round(x.maxTokens / 10),
            costUsd: x.reservedUsd / 1000,
            outcome: "answered",
          }),
        );
      }
    }
    return decisions / ((performance.now() - t0) / 1000);
  };
  run(1e6); // warm-up: both measured runs get optimised code
  const fitting = run(1e6);
  const contended = run(0.3);
  return { fitting, contended, decisions: n };
}
