/**
 * Admission on its own (issue 15): which escalations reach the frontier model and when. The gate
 * (gateway/gate.ts) says whether a unit may escalate at all; admission (gateway/admission.ts) says
 * whether a queued call may be fired now — every money ceiling holding with the call's worst case
 * added, the rate buckets having room — and which refusals hold the whole queue. Each case names the
 * reason a person reads in `optimus spend` or the editor.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { GatePolicy, GatewayConfig, type EventBody, type FarmEvent } from "@optimus/shared";
import { admit, inputTokensUpperBound, neverFits, worstCaseUsd, type Candidate } from "@optimus/farm-server/dist/gateway/admission.js";
import { gateDecision } from "@optimus/farm-server/dist/gateway/gate.js";
import { RateLimits } from "@optimus/farm-server/dist/gateway/token-bucket.js";
import { Ledger } from "@optimus/farm-server/dist/store/ledger.js";
import type { UnitRecord } from "@optimus/farm-server/dist/store/projection.js";

const NOW = Date.UTC(2030, 0, 15, 12); // 2030-01-15
const DAY = 86_400_000;
const cfg = GatewayConfig.parse({ budgets: { perTaskUsd: 1, perDayUsd: 2, fleetUsd: 3 } });
const roomy = () => new RateLimits({ requestsPerMin: 100, inputTokensPerMin: 1e6, outputTokensPerMin: 1e6 }, () => NOW);
const call = (o: Partial<Candidate> = {}): Candidate => ({
  taskId: "t1",
  worker: "worker:w1",
  reservedUsd: 0.1,
  inputTokensMax: 1000,
  maxTokens: 100,
  ...o,
});

/** A ledger folded from escalations: each [request, task, reserved, spent (undefined: still in flight), day offset]. */
function ledgerOf(calls: Array<[string, string, number, number | undefined, number?]>, extra: EventBody[] = []): Ledger {
  const l = new Ledger();
  let seq = 0;
  const apply = (body: EventBody, ts: number) =>
    l.apply({ ...body, seq: ++seq, ts, epoch: 1, actor: "farm", prevHash: "", hash: "" } as FarmEvent);
  for (const [requestId, taskId, reservedUsd, spent, dayOffset = 0] of calls) {
    const ts = NOW + dayOffset * DAY;
    apply(
      {
        type: "escalation_queued",
        data: {
          requestId,
          taskId,
          unitId: "u",
          attempt: 1,
          worker: "worker:w1",
          priority: 0,
          model: "m",
          maxTokens: 100,
          inputTokensMax: 1000,
          reservedUsd,
          gate: "test",
          signals: {},
        },
      },
      ts,
    );
    apply({ type: "escalation_admitted", data: { requestId, reservedUsd } }, ts);
    if (spent !== undefined)
      apply(
        { type: "escalation_settled", data: { requestId, inputTokens: 10, outputTokens: 10, costUsd: spent, outcome: "answered" } },
        ts,
      );
  }
  for (const body of extra) apply(body, NOW);
  return l;
}

test("a call's reservation is its worst case: every input byte a token, every max token generated, at the configured prices", () => {
  const prices = GatewayConfig.parse({}).prices; // $3 in, $15 out per million tokens
  assert.equal(worstCaseUsd(prices, 10_000, 1_000), 0.045);
  // Bytes, not characters: 'é' is two bytes, so the bound never under-reserves; 16 and 8 cover the framing.
  assert.equal(inputTokensUpperBound("sys", [{ content: "héllo" }, { content: "ok" }], 100), 3 + 100 + 16 + (6 + 8) + (2 + 8));
});

test("admission: a call that fits every ceiling and bucket is admitted; one that fits exactly is admitted too", () => {
  assert.deepEqual(admit(cfg, ledgerOf([]), call(), roomy(), roomy(), NOW), { ok: true });
  // Task t1: $0.60 spent and $0.30 reserved; a $0.10 call makes exactly its $1.00.
  const l = ledgerOf([
    ["r1", "t1", 0.8, 0.6],
    ["r2", "t1", 0.3, undefined],
  ]);
  assert.deepEqual(admit(cfg, l, call({ reservedUsd: 0.1 }), roomy(), roomy(), NOW), { ok: true });
});

test("admission: the task's budget counts spent and reserved money, and holds only that task's calls", () => {
  const l = ledgerOf([
    ["r1", "t1", 0.8, 0.6],
    ["r2", "t1", 0.3, undefined],
  ]);
  assert.deepEqual(admit(cfg, l, call({ reservedUsd: 0.2 }), roomy(), roomy(), NOW), {
    ok: false,
    shared: false,
    reason: "task t1 budget: $0.9000 spent or reserved of $1.00",
  });
  assert.deepEqual(
    admit(cfg, l, call({ taskId: "t2", reservedUsd: 0.2 }), roomy(), roomy(), NOW),
    { ok: true },
    "another task's call is not held",
  );
});

test("admission: settling replaces the reservation with the real cost; a failed call frees its reservation", () => {
  const reservedOnly = ledgerOf([["r1", "t1", 0.95, undefined]]);
  assert.equal(admit(cfg, reservedOnly, call(), roomy(), roomy(), NOW).ok, false, "$0.95 reserved: $0.10 more does not fit");
  assert.equal(admit(cfg, ledgerOf([["r1", "t1", 0.95, 0.2]]), call(), roomy(), roomy(), NOW).ok, true, "it cost $0.20 in the end");
  const failed = ledgerOf(
    [["r1", "t1", 0.95, undefined]],
    [{ type: "escalation_failed", data: { requestId: "r1", errorClass: "timeout", message: "no answer" } }],
  );
  assert.equal(admit(cfg, failed, call(), roomy(), roomy(), NOW).ok, true);
});

test("admission: the day's and the fleet's budgets hold the whole queue (shared), naming the ceiling and the day", () => {
  const day = ledgerOf([
    ["r1", "t2", 1, 1],
    ["r2", "t3", 1, 1],
  ]);
  assert.deepEqual(admit(cfg, day, call(), roomy(), roomy(), NOW), {
    ok: false,
    shared: true,
    reason: "daily budget (2030-01-15): $2.0000 spent or reserved of $2.00",
  });
  assert.equal(admit(cfg, day, call(), roomy(), roomy(), NOW + DAY).ok, true, "the next UTC day starts afresh");
  const fleet = ledgerOf([
    ["r1", "t2", 1.5, 1.5, -2],
    ["r2", "t3", 1.5, 1.5, -1],
  ]);
  assert.deepEqual(admit(cfg, fleet, call(), roomy(), roomy(), NOW), {
    ok: false,
    shared: true,
    reason: "fleet budget: $3.0000 spent or reserved of $3.00",
  });
  assert.equal(
    admit(GatewayConfig.parse({ budgets: { perTaskUsd: 1, perDayUsd: 2 } }), fleet, call(), roomy(), roomy(), NOW).ok,
    true,
    "no fleet budget configured: no such ceiling",
  );
});

test("admission: a pause (the provider's spend cap) refuses everything until a person resumes", () => {
  const paused = ledgerOf([], [{ type: "escalations_paused", data: { reason: "the provider's spend cap is reached" } }]);
  assert.deepEqual(admit(cfg, paused, call({ reservedUsd: 0 }), roomy(), roomy(), NOW), {
    ok: false,
    shared: true,
    reason: "escalations are paused: the provider's spend cap is reached",
  });
  const resumed = ledgerOf(
    [],
    [
      { type: "escalations_paused", data: { reason: "cap" } },
      { type: "escalations_resumed", data: { by: "alice" } },
    ],
  );
  assert.deepEqual(admit(cfg, resumed, call(), roomy(), roomy(), NOW), { ok: true });
});

test("admission: rate limits make a call wait (with how long); the worker's bucket holds only its calls, the fleet's holds all", () => {
  let now = NOW;
  const clock = () => now;
  const worker = new RateLimits({ requestsPerMin: 2, inputTokensPerMin: 10_000, outputTokensPerMin: 10_000 }, clock);
  const fleet = new RateLimits({ requestsPerMin: 2, inputTokensPerMin: 10_000, outputTokensPerMin: 10_000 }, clock);
  worker.take(1000, 100);
  worker.take(1000, 100);
  assert.deepEqual(admit(cfg, ledgerOf([]), call(), worker, roomy(), now), {
    ok: false,
    shared: false,
    reason: "rate limits (requests or tokens per minute)",
    retryInMs: 30_000,
  });
  fleet.take(1000, 100);
  fleet.take(1000, 100);
  assert.deepEqual(admit(cfg, ledgerOf([]), call(), roomy(), fleet, now), {
    ok: false,
    shared: true,
    reason: "rate limits (requests or tokens per minute)",
    retryInMs: 30_000,
  });
  now += 30_000;
  assert.deepEqual(admit(cfg, ledgerOf([]), call(), worker, fleet, now), { ok: true }, "after the wait it names, it fits");
});

test("money comes before rate: a call over its task's budget is refused for the budget even when the buckets are empty", () => {
  const empty = new RateLimits({ requestsPerMin: 1, inputTokensPerMin: 10_000, outputTokensPerMin: 10_000 }, () => NOW);
  empty.take(1, 1);
  const r = admit(cfg, ledgerOf([["r1", "t1", 1, 1]]), call(), empty, roomy(), NOW);
  assert.equal(r.ok ? "ok" : r.reason, "task t1 budget: $1.0000 spent or reserved of $1.00");
});

test("a call that can never be admitted is refused at once, naming the ceiling or the bucket it exceeds", () => {
  assert.equal(
    neverFits(cfg, call({ reservedUsd: 1.5 }), roomy(), roomy(), NOW),
    "its worst-case cost $1.5000 is more than the task t1 budget of $1.00",
  );
  const bigDay = GatewayConfig.parse({ budgets: { perTaskUsd: 10, perDayUsd: 2 } });
  assert.equal(
    neverFits(bigDay, call({ reservedUsd: 2.5 }), roomy(), roomy(), NOW),
    "its worst-case cost $2.5000 is more than the daily budget (2030-01-15) of $2.00",
  );
  const small = new RateLimits({ requestsPerMin: 5, inputTokensPerMin: 1000, outputTokensPerMin: 500 }, () => NOW);
  assert.equal(
    neverFits(cfg, call({ inputTokensMax: 1001 }), small, roomy(), NOW),
    "it asks for more tokens (1001 in, 100 out) than a minute of the rate limits allows",
  );
  assert.equal(
    neverFits(cfg, call({ maxTokens: 501 }), roomy(), small, NOW),
    "it asks for more tokens (1000 in, 501 out) than a minute of the rate limits allows",
    "the fleet's buckets too",
  );
  // At the limits exactly is possible (it waits for room, if need be).
  assert.equal(neverFits(cfg, call({ reservedUsd: 1, inputTokensMax: 1000, maxTokens: 500 }), small, small, NOW), undefined);
});

const unit = (o: { failures?: number; complexity?: "trivial" | "small" | "medium" | "large"; askedBy?: string } = {}) =>
  ({
    failures: o.failures ?? 0,
    spec: { complexity: o.complexity ?? "small" },
    ...(o.askedBy ? { escalation: { state: "queued", requestedBy: o.askedBy } } : {}),
  }) as unknown as UnitRecord;

test("the gate: a unit escalates only when a condition holds, and the reason names it", () => {
  const p = GatePolicy.parse({}); // confidence below 0.35, 2 failures, complexity large
  assert.deepEqual(
    gateDecision(GatePolicy.parse({ enabled: false }), unit({ askedBy: "alice" }), {}).reason,
    "the gate is off: this farm is local-only",
  );
  assert.equal(
    gateDecision(GatePolicy.parse({ enabled: false }), unit({ askedBy: "alice" }), {}).escalate,
    false,
    "not even a person's request passes a closed gate",
  );
  const asked = gateDecision(p, unit({ askedBy: "alice" }), {});
  assert.deepEqual([asked.escalate, asked.reason], [true, "a person asked for it (alice)"]);
  const unsure = gateDecision(p, unit(), { confidence: 0.2 });
  assert.deepEqual([unsure.escalate, unsure.reason], [true, "local confidence 0.20 is below 0.35"]);
  assert.equal(gateDecision(p, unit(), { confidence: 0.35 }).escalate, false, "at the threshold is not below it");
  const failing = gateDecision(p, unit({ failures: 1 }), { checksFailed: 2 });
  assert.deepEqual([failing.escalate, failing.reason], [true, "checks or evals failed 2 times (threshold 2)"]);
  assert.equal(
    gateDecision(p, unit({ failures: 2 }), { checksFailed: 0 }).escalate,
    true,
    "the journal's count stands when a worker reports fewer",
  );
  const large = gateDecision(p, unit({ complexity: "large" }), {});
  assert.deepEqual([large.escalate, large.reason], [true, "complexity large is at least large"]);
  const local = gateDecision(p, unit({ failures: 1, complexity: "medium" }), { confidence: 0.9 });
  assert.deepEqual(local, {
    escalate: false,
    reason: "no gate condition holds (confidence 0.90 ≥ 0.35, 1 failures < 2, complexity medium < large, no person asked)",
    signals: { failures: 1, complexity: "medium", humanRequest: false, confidence: 0.9 },
  });
});
