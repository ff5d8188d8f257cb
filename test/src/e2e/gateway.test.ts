import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { errorCode, type Lease, type LeaseContext } from "@optimus/farm-server";
import type { EscalationAnswer, FarmEvent, ServerConfigInput } from "@optimus/shared";
import { startAnthropicStandin, type AnthropicStandin } from "../helpers/anthropic-standin.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const PRICES = { inputPerMTok: 3, outputPerMTok: 15 };

/**
 * A farm whose gateway calls the Anthropic stand-in with a key from a development vault (env), and
 * a worker that holds one lease per unit and hands its context to the test, so the test can ask the
 * gateway exactly what a worker would.
 */
async function gatewayFarm(t: { after(fn: () => unknown): void }, standin: AnthropicStandin, extra: ServerConfigInput = {}) {
  const varName = `OPTIMUS_TEST_SECRET_${randomBytes(4).toString("hex").toUpperCase()}`;
  process.env[`${varName}_ANTHROPIC_KEY`] = standin.apiKey;
  t.after(() => delete process.env[`${varName}_ANTHROPIC_KEY`]);
  const farm = await startTestFarm(t, {
    config: {
      heartbeatIntervalMs: 500,
      secrets: { vaults: { dev: { provider: "env", prefix: `${varName}_` } } },
      gateway: {
        apiKey: "secrets-manager://dev/anthropic/key",
        baseUrl: standin.url,
        model: "claude-sonnet-5-5",
        prices: PRICES,
        retry: { maxAttempts: 4, maxRetryAfterMs: 400, overloadBaseMs: 20 },
        ...(extra.gateway ?? {}),
      },
      ...(extra.gate ? { gate: extra.gate } : {}),
    },
  });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const workerToken = await tokenFor(farm.url, farm.adminToken, "worker", "w");
  const held = new Map<string, { lease: Lease; ctx: LeaseContext; release: () => void }>();
  const agents = await startWorkers(
    farm.url,
    workerToken,
    [{ nodeId: "w1", role: "codegen", max: 20 }],
    newLedger(),
    (lease, ctx) =>
      new Promise((resolve) => held.set(lease.unitId, { lease, ctx, release: () => resolve({ outcome: "succeeded", summary: "done" }) })),
  );
  t.after(async () => {
    for (const h of held.values()) h.release();
    await stopAll(agents);
  });
  const leaseOn = async (unitId: string) => waitFor(() => held.get(unitId), `a lease on ${unitId}`);
  const events = async (): Promise<FarmEvent[]> => farm.server.services.state.journal.readAfter(0, 1_000_000);
  return { farm, admin, leaseOn, events };
}

const ask = (ctx: LeaseContext, text = "Fix the bug", maxTokens = 256) =>
  ctx.escalate({
    system: "You fix code.",
    messages: [{ role: "user", content: text }],
    maxTokens,
    editTool: false,
    signals: { confidence: 0.1 },
  });

test("gateway: each provider error class gets its own behaviour; the ledger charges real usage once", { timeout: 60_000 }, async (t) => {
  const standin = await startAnthropicStandin();
  t.after(() => standin.close());
  const { admin, leaseOn, events, farm } = await gatewayFarm(t, standin);
  await admin.tasks.create.mutate({
    id: "hard",
    title: "Hard",
    units: Array.from({ length: 6 }, (_, i) => ({ id: `u${i}`, goal: "hard", complexity: "large" as const })),
  });

  // Success: one call, streamed, charged at its real usage.
  standin.push({ kind: "text", text: "Here is the fix.", inputTokens: 1000, outputTokens: 100 });
  const ok = await ask((await leaseOn("u0")).ctx);
  assert.equal(ok.text, "Here is the fix.");
  assert.deepEqual(ok.usage, { inputTokens: 1000, outputTokens: 100 });
  assert.equal(ok.costUsd, (1000 * 3 + 100 * 15) / 1e6);
  assert.equal(standin.answered().length, 1);
  assert.equal(standin.answered()[0]!.body?.stream, true, "streamed");
  assert.equal(standin.answered()[0]!.auth, "bearer");

  // 429 with retry-after: waits (capped), then succeeds; two calls, one charge.
  standin.push({ kind: "rate_limit", retryAfterSeconds: 30 }, { kind: "text", text: "after the wait" });
  const t429 = performance.now();
  const afterWait = await ask((await leaseOn("u1")).ctx);
  assert.equal(afterWait.text, "after the wait");
  assert.ok(performance.now() - t429 >= 350, "waited for retry-after, capped at 400 ms (not 30 s)");
  // 529 overloaded: backoff with jitter, then succeeds.
  standin.push({ kind: "overloaded" }, { kind: "overloaded" }, { kind: "text", text: "after backoff" });
  assert.equal((await ask((await leaseOn("u2")).ctx)).text, "after backoff");
  // A dropped connection (network error) is retried too.
  standin.push({ kind: "drop" }, { kind: "text", text: "after the drop" });
  assert.equal((await ask((await leaseOn("u3")).ctx)).text, "after the drop");

  // Mid-stream error: not retried; charged what it used (the input it read).
  standin.push({ kind: "mid_stream_error", afterChars: 10, text: "a long answer that breaks" });
  const before = standin.requests.length;
  await assert.rejects(ask((await leaseOn("u4")).ctx), (err: unknown) => {
    assert.equal(errorCode(err), "CONFLICT");
    assert.match((err as Error).message, /mid_stream/);
    return true;
  });
  assert.equal(standin.requests.length - before, 1, "a mid-stream error is not retried");

  // Spend cap: never retried; escalations pause, and the reason is visible; a person resumes them.
  standin.push({ kind: "spend_cap" });
  const beforeCap = standin.requests.length;
  const capped = ask((await leaseOn("u5")).ctx);
  await assert.rejects(capped, (err: unknown) => /spend cap/.test((err as Error).message));
  assert.equal(standin.requests.length - beforeCap, 1, "a spend cap is never retried");
  const spend = await admin.gateway.spend.query();
  assert.match(spend.paused ?? "", /frontier spend cap reached/);
  const waiting = ask((await leaseOn("u0")).ctx, "while paused");
  await waitFor(async () => (await admin.gateway.queue.query()).length === 1, "the escalation to wait in the queue");
  const [queued] = await admin.gateway.queue.query();
  assert.equal(queued!.position, 1);
  assert.match(queued!.reason ?? "", /paused/);
  assert.equal(standin.requests.length - beforeCap, 1, "nothing is called while paused");
  standin.push({ kind: "text", text: "resumed" });
  await admin.gateway.resume.mutate();
  assert.equal((await waiting).text, "resumed");

  // The ledger: every request settled once; only answered calls and the broken stream were charged.
  const ev = await events();
  const settled = ev.filter((e) => e.type === "escalation_settled");
  const ids = settled.map((e) => (e.data as { requestId: string }).requestId);
  assert.equal(new Set(ids).size, ids.length, "settled at most once each");
  const report = await admin.gateway.spend.query();
  const charged = settled.reduce((n, e) => n + (e.data as { costUsd: number }).costUsd, 0);
  assert.ok(Math.abs(report.totalUsd - charged) < 1e-12);
  assert.equal(report.reservedUsd, 0, "nothing stays reserved");
  const midStream = settled.find((e) => (e.data as { errorClass?: string }).errorClass === "mid_stream")!.data as {
    costUsd: number;
    inputTokens: number;
  };
  assert.ok(midStream.inputTokens > 0 && midStream.costUsd > 0, "the broken stream is charged for what it read");
  assert.ok(report.byTask.hard! > 0 && report.byWorker["worker:w1"]! > 0 && report.byModel["claude-sonnet-5-5"]! > 0);
  void farm;
});

test("gateway: the gate keeps a unit local — the frontier never sees it — and journals why", { timeout: 30_000 }, async (t) => {
  const standin = await startAnthropicStandin();
  t.after(() => standin.close());
  const { admin, leaseOn, events } = await gatewayFarm(t, standin);
  await admin.tasks.create.mutate({ id: "easy", title: "Easy", units: [{ id: "small", goal: "small", complexity: "small" }] });
  const { ctx } = await leaseOn("small");
  await assert.rejects(
    ctx.escalate({
      messages: [{ role: "user", content: "please" }],
      maxTokens: 100,
      editTool: false,
      signals: { confidence: 0.9, checksFailed: 0 },
    }),
    (err: unknown) => {
      assert.equal(errorCode(err), "FORBIDDEN");
      assert.match(
        (err as Error).message,
        /^local only: no gate condition holds \(confidence 0\.90 ≥ 0\.35, 0 failures < 2, complexity small < large, no person asked\)/,
      );
      return true;
    },
  );
  assert.equal(standin.requests.length, 0, "the frontier server never received a request");
  const denied = (await events()).filter((e) => e.type === "escalation_denied");
  assert.equal(denied.length, 1);
  assert.deepEqual((denied[0]!.data as { signals: unknown }).signals, {
    failures: 0,
    complexity: "small",
    humanRequest: false,
    confidence: 0.9,
  });

  // A person's "escalate" opens the gate for that unit.
  await admin.units.escalate.mutate({ taskId: "easy", unitId: "small", reason: "stuck" });
  standin.push({ kind: "text", text: "frontier answer" });
  const a: EscalationAnswer = await ctx.escalate({
    messages: [{ role: "user", content: "please" }],
    maxTokens: 100,
    editTool: false,
    signals: { confidence: 0.9 },
  });
  assert.equal(a.text, "frontier answer");
  const queued = (await events()).find((e) => e.type === "escalation_queued")!.data as { gate: string };
  assert.match(queued.gate, /a person asked for it \(admin:admin\)/);
});

test(
  "gateway: reservation-based admission — reserved + spent never exceeds the budget, over-budget calls wait and are admitted later",
  { timeout: 60_000 },
  async (t) => {
    const standin = await startAnthropicStandin({ latencyMs: 150, fallback: { kind: "text", text: "ok", outputTokens: 20 } });
    t.after(() => standin.close());
    // Each call reserves about 1,000 output tokens × $15/M = $0.015 plus its input; the day allows three at once.
    const { admin, leaseOn, events } = await gatewayFarm(t, standin, { gateway: { budgets: { perTaskUsd: 10, perDayUsd: 0.05 } } });
    await admin.tasks.create.mutate({
      id: "many",
      title: "Many",
      units: Array.from({ length: 8 }, (_, i) => ({ id: `m${i}`, goal: "x", complexity: "large" as const })),
    });
    const ctxs = await Promise.all(Array.from({ length: 8 }, (_, i) => leaseOn(`m${i}`)));
    const answers = await Promise.all(ctxs.map(({ ctx }) => ask(ctx, "small request", 1_000)));
    assert.equal(answers.length, 8);
    // Replay the journal: at every event, reserved + spent on the day stays within the budget.
    let reserved = 0,
      spent = 0,
      peakInFlight = 0,
      inFlight = 0;
    const reservations = new Map<string, number>();
    for (const e of await events()) {
      if (e.type === "escalation_admitted") {
        reserved += e.data.reservedUsd;
        reservations.set(e.data.requestId, e.data.reservedUsd);
        peakInFlight = Math.max(peakInFlight, ++inFlight);
      } else if (e.type === "escalation_settled") {
        reserved -= reservations.get(e.data.requestId)!;
        spent += e.data.costUsd;
        inFlight--;
      }
      assert.ok(reserved + spent <= 0.05 + 1e-12, `ceiling held at seq ${e.seq}: ${reserved + spent}`);
    }
    assert.ok(peakInFlight >= 2 && peakInFlight <= 3, `the budget limited concurrency (peak ${peakInFlight})`);
    assert.equal(standin.answered().length, 8, "each request called once");
    const users = standin.answered().map((r) => (r.body?.metadata as { user_id: string }).user_id);
    assert.equal(new Set(users).size, 8);
    // A call bigger than the whole budget is refused at once, with the reason.
    await assert.rejects(ask(ctxs[0]!.ctx, "huge", 5_000), (err: unknown) =>
      /can never be admitted: its worst-case cost .* is more than the daily budget/.test((err as Error).message),
    );
  },
);

test("gateway: a call held by its own task's budget does not hold up another task's call behind it", { timeout: 30_000 }, async (t) => {
  const standin = await startAnthropicStandin({ latencyMs: 600, fallback: { kind: "text", text: "ok", outputTokens: 5 } });
  t.after(() => standin.close());
  // About $0.015 reserved per call: a task holds one at a time.
  const { admin, leaseOn, events } = await gatewayFarm(t, standin, { gateway: { budgets: { perTaskUsd: 0.02, perDayUsd: 10 } } });
  await admin.tasks.create.mutate({
    id: "a",
    title: "A",
    priority: 10,
    units: [
      { id: "a1", goal: "x", complexity: "large" },
      { id: "a2", goal: "x", complexity: "large" },
    ],
  });
  await admin.tasks.create.mutate({ id: "b", title: "B", units: [{ id: "b1", goal: "x", complexity: "large" }] });
  const [a1, a2, b1] = await Promise.all([leaseOn("a1"), leaseOn("a2"), leaseOn("b1")]);
  const first = ask(a1.ctx, "first of A", 1_000);
  await waitFor(() => standin.requests.length === 1, "A's first call to be in flight");
  const second = ask(a2.ctx, "second of A", 1_000);
  await waitFor(async () => (await admin.gateway.queue.query()).length === 1, "A's second call to wait on its task budget");
  const other = ask(b1.ctx, "B", 1_000);
  await Promise.all([first, second, other]);
  const ev = await events();
  const seqOf = (type: string, match: (d: { requestId: string }) => boolean) =>
    ev.find((e) => e.type === type && match(e.data as { requestId: string }))!.seq;
  const idOf = (unitId: string) =>
    (ev.find((e) => e.type === "escalation_queued" && (e.data as { unitId: string }).unitId === unitId)!.data as { requestId: string })
      .requestId;
  const [ida1, ida2, idb1] = ["a1", "a2", "b1"].map(idOf);
  assert.ok(
    seqOf("escalation_admitted", (d) => d.requestId === idb1) < seqOf("escalation_settled", (d) => d.requestId === ida1),
    "B was admitted while A's first call still ran",
  );
  assert.ok(
    seqOf("escalation_admitted", (d) => d.requestId === ida2) > seqOf("escalation_settled", (d) => d.requestId === ida1),
    "A's second waited for A's first to settle",
  );
});
