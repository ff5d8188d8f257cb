import type { TaskView, UnitLiveView } from "@optimus/shared";

/** How a unit or task looks in the tree: computed from the model, free of any vscode type. */
export interface Presentation {
  label: string;
  description: string;
  /** a codicon id, and a theme color id for it */
  icon: string;
  color?: string;
  tooltip: string;
  /** space-separated flags that drive the tree's inline buttons (see package.json menus) */
  contextValue: string;
}

const ICONS: Record<string, [string, string?]> = {
  planned: ["circle-outline", "disabledForeground"],
  ready: ["clock", "charts.blue"],
  leased: ["sync~spin", "charts.blue"],
  submitted: ["cloud-upload", "charts.blue"],
  evaluating: ["beaker", "charts.purple"],
  reviewing: ["eye", "charts.purple"],
  awaiting_approval: ["bell-dot", "charts.yellow"],
  changes_requested: ["comment-discussion", "charts.orange"],
  failed: ["warning", "charts.orange"],
  completed: ["pass", "charts.green"],
  merged: ["git-merge", "charts.green"],
  dead: ["error", "charts.red"],
  cancelled: ["circle-slash", "disabledForeground"],
};

const LABELS: Record<string, string> = {
  planned: "waiting for dependencies",
  ready: "queued",
  leased: "running",
  submitted: "submitted",
  evaluating: "evaluating",
  reviewing: "in review",
  awaiting_approval: "awaiting approval",
  changes_requested: "changes requested",
  failed: "failed, will retry",
  completed: "completed",
  merged: "merged",
  dead: "failed",
  cancelled: "cancelled",
};

export const stateLabel = (state: string): string => LABELS[state] ?? state;

export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

const oneLine = (s: string, max = 80) => {
  const l = s.replace(/\s+/g, " ").trim();
  return l.length > max ? l.slice(0, max - 1) + "…" : l;
};

export function unitPresentation(u: UnitLiveView, now: number): Presentation {
  let [icon, color] = ICONS[u.state] ?? ["circle-outline"];
  let status = stateLabel(u.state);
  if (u.escalation?.state === "queued" && u.escalation.attempt >= u.attempt - 1 && u.state !== "merged") {
    [icon, color] = ["sparkle", "charts.purple"];
    status = `escalation queued${u.escalation.position ? ` #${u.escalation.position}` : ""} · ${status}`;
  } else if (u.escalation?.state === "escalated") {
    status = `escalated · ${status}`;
  }
  const parts = [status];
  if (u.state === "leased" && u.worker) {
    parts.push(u.worker);
    const started = u.progress?.elapsedMs !== undefined ? now - (u.progress.at - u.progress.elapsedMs) : now - u.updatedAt;
    parts.push(formatElapsed(started));
  }
  if (u.progress && u.state === "leased") parts.push(u.progress.step ? `${u.progress.phase}: ${oneLine(u.progress.step, 40)}` : u.progress.phase);
  if (u.attempt > 1) parts.push(`attempt ${u.attempt}`);
  if (u.state === "awaiting_approval" && u.risk) parts.push(`${u.risk.level} risk`);

  const flags = ["unit", u.state];
  if (u.evaluation) flags.push("hasChange");
  if (u.state === "awaiting_approval") flags.push("approvable");
  if (u.state === "dead" || u.state === "failed" || u.state === "cancelled") flags.push("retryable");
  if (!["merged", "completed", "cancelled"].includes(u.state) && u.escalation?.state !== "queued" && u.spec.role === "codegen") flags.push("escalatable");
  if (!["merged", "completed", "cancelled", "dead"].includes(u.state)) flags.push("cancellable");

  const tip: string[] = [`**${u.taskId} / ${u.unitId}** — ${status}`, "", oneLine(u.spec.goal, 400)];
  if (u.spec.files.length) tip.push("", `Files: ${u.spec.files.slice(0, 10).map((f) => `\`${f}\``).join(", ")}${u.spec.files.length > 10 ? " …" : ""}`);
  if (u.worker) tip.push(`Worker: ${u.worker}`);
  tip.push(`Attempt ${u.attempt}${u.failures ? `, ${u.failures} failed` : ""}`);
  if (u.progress) tip.push(`Progress: ${u.progress.phase}${u.progress.step ? ` — ${oneLine(u.progress.step, 200)}` : ""}${u.progress.tokens ? ` (${u.progress.tokens} tokens)` : ""}`);
  if (u.evaluation) tip.push(`Evals: ${u.evaluation.green ? "green" : "red"} — ${u.evaluation.diff.files.length} files, +${u.evaluation.diff.added} −${u.evaluation.diff.removed}`);
  if (u.review) tip.push(`Review: ${u.review.verdict.replace("_", " ")}, ${u.review.risk} risk — ${oneLine(u.review.summary, 200)}`);
  if (u.risk) tip.push(`Risk: ${u.risk.level}${u.risk.reasons.length ? ` (${u.risk.reasons.join("; ")})` : ""}`);
  if (u.reason) tip.push(`Reason: ${oneLine(u.reason, 300)}`);
  if (u.escalation) tip.push(`Escalation: ${u.escalation.state}${u.escalation.position ? ` (#${u.escalation.position} in the gateway's queue)` : ""}, asked by ${u.escalation.requestedBy}${u.escalation.reason ? ` — waiting: ${u.escalation.reason}` : ""}`);
  return { label: u.unitId, description: parts.join(" · "), icon, color, tooltip: tip.join("  \n"), contextValue: flags.join(" ") };
}

export function taskPresentation(t: TaskView): Presentation {
  const total = t.units.length;
  const done = (t.counts.merged ?? 0) + (t.counts.completed ?? 0);
  const waiting = t.counts.awaiting_approval ?? 0;
  const icon = t.state === "completed" ? "pass-filled" : t.state === "failed" ? "error" : t.state === "cancelled" ? "circle-slash" : waiting ? "bell-dot" : t.state === "running" ? "loading~spin" : "tasklist";
  const color = t.state === "completed" ? "charts.green" : t.state === "failed" ? "charts.red" : waiting ? "charts.yellow" : undefined;
  const parts = [`${done}/${total} done`];
  if (waiting) parts.push(`${waiting} awaiting approval`);
  if (t.merge?.heldReason) parts.push("merge held");
  const flags = ["task", t.state];
  if (t.state === "open" || t.state === "running") flags.push("cancellable");
  const tip = [`**${t.title}** (${t.taskId}) — ${t.state}`, t.description ? oneLine(t.description, 400) : "", `Created by ${t.createdBy ?? "unknown"}`];
  if (t.merge) tip.push(t.merge.heldReason ? `Merge into ${t.merge.into} held: ${t.merge.heldReason}` : `Merged into ${t.merge.into}`);
  return { label: t.title, description: parts.join(" · "), icon, color, tooltip: tip.filter(Boolean).join("  \n"), contextValue: flags.join(" ") };
}
