import type { Lease, UnitResultInput } from "@optimus/shared";
import { runCodegen, type AgentLoopOptions } from "./agent-loop.js";
import { FrontierProvider, needsEscalation } from "./models/frontier-provider.js";
import type { LeaseContext } from "./worker-agent.js";

/**
 * A codegen attempt with the local model first; when it ends asking for escalation, the same loop
 * runs again with the frontier model through the farm's gateway. The farm's gate decides: when it
 * keeps the unit local, the local result is submitted as it was, with the gate's reason.
 */
export async function runCodegenWithEscalation(lease: Lease, ctx: LeaseContext, loop: AgentLoopOptions): Promise<UnitResultInput> {
  const local = await runCodegen(lease, ctx, loop);
  if (!needsEscalation(local) || ctx.signal.aborted) return local;
  const frontier = new FrontierProvider(ctx, { confidence: local.signals?.confidence, checksFailed: local.signals?.checksFailed });
  loop.log(`${lease.taskId}/${lease.unitId}: local attempt gave up (${local.summary}); asking the farm's gateway`);
  ctx.progress({ phase: "escalating", step: "waiting for the gateway" });
  try {
    // The frontier starts from the same base, told what the local model tried and how it failed.
    const work = lease.context ?? {};
    const told = `The local model tried this unit and failed (${local.summary}).${local.evidence ? ` Its last check:\n${local.evidence.slice(-3_000)}` : ""}`;
    const withHistory: Lease = { ...lease, context: { ...work, feedback: [...(work.feedback ?? []), told] } };
    const r = await runCodegen(withHistory, ctx, { ...loop, model: frontier, maxIterations: Math.min(loop.maxIterations, 2) });
    return {
      ...r,
      summary: `escalated ($${frontier.costUsd.toFixed(4)}): ${r.summary}`.slice(0, 2_000),
      signals: { ...r.signals, model: frontier.name },
    };
  } catch (err) {
    const why = (err as Error).message;
    loop.log(`${lease.taskId}/${lease.unitId}: no escalation: ${why}`);
    return { ...local, summary: `${local.summary} (not escalated: ${why})`.slice(0, 2_000) };
  }
}
