import type { GatePolicy } from "@optimus/shared";
import type { UnitRecord } from "../store/projection.js";

const ORDER = ["trivial", "small", "medium", "large"] as const;

/**
 * The gate: whether a unit may use the frontier model, from the policy and the unit's journaled
 * history (failures, complexity, a person's request) plus what the worker reports (confidence,
 * failed checks). The decision and every signal are journaled by the caller.
 */
export function gateDecision(
  p: GatePolicy,
  u: UnitRecord,
  reported: { confidence?: number; checksFailed?: number },
): { escalate: boolean; reason: string; signals: Record<string, number | string | boolean> } {
  const failures = Math.max(u.failures, reported.checksFailed ?? 0);
  const signals: Record<string, number | string | boolean> = {
    failures,
    complexity: u.spec.complexity,
    humanRequest: u.escalation?.state === "queued",
  };
  if (reported.confidence !== undefined) signals.confidence = reported.confidence;
  if (!p.enabled) return { escalate: false, reason: "the gate is off: this farm is local-only", signals };
  if (u.escalation?.state === "queued") return { escalate: true, reason: `a person asked for it (${u.escalation.requestedBy})`, signals };
  if (reported.confidence !== undefined && reported.confidence < p.confidenceBelow)
    return { escalate: true, reason: `local confidence ${reported.confidence.toFixed(2)} is below ${p.confidenceBelow}`, signals };
  if (failures >= p.failuresAtLeast)
    return { escalate: true, reason: `checks or evals failed ${failures} times (threshold ${p.failuresAtLeast})`, signals };
  if (ORDER.indexOf(u.spec.complexity) >= ORDER.indexOf(p.complexityAtLeast))
    return { escalate: true, reason: `complexity ${u.spec.complexity} is at least ${p.complexityAtLeast}`, signals };
  return {
    escalate: false,
    reason: `no gate condition holds (confidence ${reported.confidence?.toFixed(2) ?? "not reported"} ≥ ${p.confidenceBelow}, ${failures} failures < ${p.failuresAtLeast}, complexity ${u.spec.complexity} < ${p.complexityAtLeast}, no person asked)`,
    signals,
  };
}
