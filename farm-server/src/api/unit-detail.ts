import type { FarmEvent, UnitDetail } from "@optimus/shared";
import { FarmError } from "../errors/farm-error.js";
import type { FarmServices } from "./services.js";
import { taskWithUnits } from "./views.js";

const HISTORY_LIMIT = 300;

/** One line a person can read for a journal entry about a unit. */
export function describeEvent(e: FarmEvent): string {
  switch (e.type) {
    case "task_created":
      return `task created (${e.data.units.length} units) from ${e.data.source}`;
    case "unit_leased":
      return `attempt ${e.data.attempt} leased to ${e.data.worker}`;
    case "lease_expired":
      return `lease of ${e.data.worker} ${e.data.cause === "token_revoked" ? "ended (its token was revoked)" : "expired"}; ${e.data.next === "retry" ? "will retry" : "no attempts left"}`;
    case "unit_submitted":
      return `${e.data.worker} submitted attempt ${e.data.attempt}: ${e.data.outcome} — ${e.data.summary}`;
    case "unit_completed":
      return `attempt ${e.data.attempt} completed`;
    case "unit_failed":
      return `attempt ${e.data.attempt} failed: ${e.data.reason}; ${e.data.next === "retry" ? "will retry" : "no attempts left"}`;
    case "unit_retried":
      return "retried";
    case "unit_evaluating":
      return `evaluating attempt ${e.data.attempt}`;
    case "unit_evaluated":
      return `evals ${e.data.green ? "green" : "red"} (${e.data.evals.map((x) => `${x.name}: ${x.exitCode}`).join(", ") || "none"}); ${e.data.diff.files.length} files, +${e.data.diff.added} −${e.data.diff.removed}`;
    case "unit_reviewed":
      return `review by ${e.data.reviewUnitId}: ${e.data.verdict.verdict}, risk ${e.data.verdict.risk}${e.data.selfReview ? " (from the change's own author: does not count)" : ""}`;
    case "unit_held":
      return `held for approval: ${e.data.risk.level} risk (${e.data.risk.reasons.join("; ")})`;
    case "unit_approved":
      return `attempt ${e.data.attempt}${e.data.head ? ` (${e.data.head.slice(0, 10)})` : ""} approved${e.data.by ? ` by ${e.data.by.name}${e.data.protectedPaths?.length ? " (approver right: protected paths)" : ""}` : ""}`;
    case "unit_merged":
      return `merged into ${e.data.into} (${e.data.heldForTask ? "into the pull request; the task waits for approval" : e.data.auto ? "automatically" : "after approval"}) as ${e.data.commit.slice(0, 10)}`;
    case "unit_rejected":
      return `attempt ${e.data.attempt}${e.data.head ? ` (${e.data.head.slice(0, 10)})` : ""} rejected: ${e.data.reason}`;
    case "changes_requested":
      return `changes requested: ${e.data.feedback.slice(0, 300)}`;
    case "unit_cancelled":
      return `cancelled${e.data.reason ? `: ${e.data.reason}` : ""}`;
    case "escalation_requested":
      return `escalation to the frontier model requested${e.data.reason ? `: ${e.data.reason}` : ""}`;
    case "report_rejected":
      return `${e.data.worker}'s ${e.data.kind} refused: ${e.data.reason}`;
    case "units_planned":
      return `planned ${e.data.units.length} units${e.data.fallback ? ` (fallback: ${e.data.fallback})` : ""}`;
    case "task_cancelled":
      return `task cancelled${e.data.reason ? `: ${e.data.reason}` : ""}`;
    case "task_merged":
      return `task merged into ${e.data.into}`;
    case "task_merge_held":
      return `task merge held: ${e.data.reason}`;
    default:
      return e.type.replace(/_/g, " ");
  }
}

export async function unitDetail(s: FarmServices, taskId: string, unitId: string): Promise<UnitDetail> {
  const found = await taskWithUnits(s, taskId);
  if (!found) throw new FarmError("not_found", `task '${taskId}' not found`);
  const { task } = found;
  const unit = found.units.find((u) => u.unitId === unitId);
  if (!unit) throw new FarmError("not_found", `unit ${taskId}/${unitId} not found`);
  const events = await s.state.journal.readForTask(taskId, unitId, HISTORY_LIMIT);
  // The newest attempt that kept a transcript (a failed attempt's may be the one worth reading).
  let transcript: UnitDetail["transcript"] = [];
  let transcriptAttempt: number | undefined;
  for (let a = unit.attempt; a >= 1 && s.prloop; a--) {
    const t = s.prloop.transcriptOf(taskId, unitId, a);
    if (t) {
      transcript = t;
      transcriptAttempt = a;
      break;
    }
  }
  const submitted = events.filter((e) => e.type === "unit_submitted").pop();
  const sub = submitted?.type === "unit_submitted" ? submitted.data : undefined;
  const ledger = s.state.projection.ledger;
  const queue = ledger.queue().map((x) => x.requestId);
  const escalations = [...ledger.entries.values()]
    .filter((x) => x.taskId === taskId && x.unitId === unitId)
    .sort((a, b) => a.queuedAt - b.queuedAt)
    .map((x) => ({
      at: x.queuedAt,
      state: x.state,
      by: x.worker,
      reason: x.reason,
      costUsd: x.spentUsd,
      ...(x.state === "queued" ? { position: queue.indexOf(x.requestId) + 1 } : {}),
    }));
  return {
    unit,
    task,
    transcript,
    transcriptAttempt,
    escalations,
    costUsd: escalations.reduce((n, x) => n + x.costUsd, 0),
    signals: sub?.signals,
    evidence: sub?.evidence,
    summary: sub?.summary,
    submittedAttempt: sub?.attempt,
    history: events.map((e) => ({ seq: e.seq, at: e.ts, type: e.type, actor: e.actor, summary: describeEvent(e) })),
  };
}
