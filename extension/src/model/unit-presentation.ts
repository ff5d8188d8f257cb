import {
  availableActions,
  escalationQueued,
  STATE_LABELS,
  type TaskView,
  type UnitAction,
  type UnitLiveView,
  type UnitState,
} from "@optimus/shared";

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

/** Keyed by every state of the lifecycle table: a new state does not compile without its icon. */
const ICONS: Readonly<Record<UnitState, [string, string?]>> = {
  planned: ["circle-outline", "disabledForeground"],
  ready: ["clock", "charts.blue"],
  leased: ["sync~spin", "charts.blue"],
  submitted: ["cloud-upload", "charts.blue"],
  evaluating: ["beaker", "charts.purple"],
  reviewing: ["eye", "charts.purple"],
  awaiting_approval: ["bell-dot", "charts.yellow"],
  completed: ["pass", "charts.green"],
  merged: ["git-merge", "charts.green"],
  dead: ["error", "charts.red"],
  cancelled: ["circle-slash", "disabledForeground"],
};

/** The one set of state names (the farm's lifecycle table), shared with the panel, dashboard and CLI. */
export const stateLabel = (state: string): string => (STATE_LABELS as Record<string, string>)[state] ?? state.replaceAll("_", " ");

/** What a view knows besides the unit: the farm's clock, whether the stream is live, who is looking. */
export interface ViewContext {
  /** the farm's clock now (FarmConnection.farmNow) */
  now: number;
  /** the views stream is connected: what is shown is the farm's latest answer and buttons can act */
  live: boolean;
  /** the token may approve changes that touch protected paths */
  approver: boolean;
  /** the farm has a frontier model (used only when the farm did not send `actions`) */
  frontierConfigured?: boolean;
}

/**
 * The actions to offer on a unit now: what the farm says it accepts (`actions`, from the lifecycle
 * table), none while disconnected, and no Approve for a token without the approver right when the
 * change touches protected paths.
 */
export function offeredActions(u: UnitLiveView, c: ViewContext): UnitAction[] {
  if (!c.live) return [];
  const farm =
    (u as Partial<UnitLiveView>).actions ??
    availableActions({
      state: u.state,
      role: u.spec.role,
      frontierConfigured: c.frontierConfigured === true,
      escalationQueued: escalationQueued(u),
    });
  return farm.filter((a) => !(a === "approve" && u.needsApprover && !c.approver));
}

/** The tree item flag (see package.json menus) for each action. */
export const ACTION_FLAGS: Record<UnitAction, string> = {
  approve: "approvable",
  reject: "rejectable",
  request_changes: "changesRequestable",
  escalate: "escalatable",
  retry: "retryable",
  cancel: "cancellable",
};

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

export function unitPresentation(u: UnitLiveView, c: ViewContext): Presentation {
  const now = c.now;
  let [icon, color] = ICONS[u.state] ?? ["circle-outline"];
  let status = stateLabel(u.state);
  if (escalationQueued(u) && u.state !== "merged") {
    [icon, color] = ["sparkle", "charts.purple"];
    status = `escalation queued${u.escalation?.position ? ` #${u.escalation.position}` : ""} · ${status}`;
  } else if (u.escalation?.state === "escalated") {
    status = `escalated · ${status}`;
  }
  const parts = [status];
  if (u.state === "leased" && u.worker) {
    parts.push(u.worker);
    // A running time only while live: a frozen copy must not look like it is still counting.
    const started = u.progress?.elapsedMs !== undefined ? now - (u.progress.at - u.progress.elapsedMs) : now - u.updatedAt;
    if (c.live) parts.push(formatElapsed(started));
  }
  if (u.progress && u.state === "leased")
    parts.push(u.progress.step ? `${u.progress.phase}: ${oneLine(u.progress.step, 40)}` : u.progress.phase);
  if (u.attempt > 1) parts.push(`attempt ${u.attempt}`);
  if (u.state === "awaiting_approval" && u.risk) parts.push(`${u.risk.level} risk`);
  if (u.state === "awaiting_approval" && u.needsApprover && !c.approver) parts.push("needs an approver");
  if (!c.live) {
    parts[0] = `last known: ${parts[0]}`;
    color = "disabledForeground";
  }

  const flags = ["unit", u.state, c.live ? "live" : "stale"];
  if (u.evaluation && c.live) flags.push("hasChange");
  for (const a of offeredActions(u, c)) flags.push(ACTION_FLAGS[a]);

  const tip: string[] = [
    `**${u.taskId} / ${u.unitId}** — ${status}${c.live ? "" : " (last known: not connected to the farm)"}`,
    "",
    oneLine(u.spec.goal, 400),
  ];
  if (u.spec.files.length)
    tip.push(
      "",
      `Files: ${u.spec.files
        .slice(0, 10)
        .map((f) => `\`${f}\``)
        .join(", ")}${u.spec.files.length > 10 ? " …" : ""}`,
    );
  if (u.worker) tip.push(`Worker: ${u.worker}`);
  tip.push(`Attempt ${u.attempt}${u.failures ? `, ${u.failures} failed` : ""}`);
  if (u.progress)
    tip.push(
      `Progress: ${u.progress.phase}${u.progress.step ? ` — ${oneLine(u.progress.step, 200)}` : ""}${u.progress.tokens ? ` (${u.progress.tokens} tokens)` : ""}`,
    );
  if (u.evaluation)
    tip.push(
      `Evals: ${u.evaluation.green ? "green" : "red"} — ${u.evaluation.diff.files.length} files, +${u.evaluation.diff.added} −${u.evaluation.diff.removed}`,
    );
  if (u.review) tip.push(`Review: ${u.review.verdict.replace("_", " ")}, ${u.review.risk} risk — ${oneLine(u.review.summary, 200)}`);
  if (u.risk) tip.push(`Risk: ${u.risk.level}${u.risk.reasons.length ? ` (${u.risk.reasons.join("; ")})` : ""}`);
  if (u.needsApprover)
    tip.push(
      c.approver
        ? "Touches protected paths: your token may approve it."
        : "Touches protected paths: only a token with the approver right may approve it.",
    );
  if (u.reason) tip.push(`Reason: ${oneLine(u.reason, 300)}`);
  if (u.escalation)
    tip.push(
      `Escalation: ${u.escalation.state}${u.escalation.position ? ` (#${u.escalation.position} in the gateway's queue)` : ""}, asked by ${u.escalation.requestedBy}${u.escalation.reason ? ` — waiting: ${u.escalation.reason}` : ""}`,
    );
  return { label: u.unitId, description: parts.join(" · "), icon, color, tooltip: tip.join("  \n"), contextValue: flags.join(" ") };
}

export function taskPresentation(t: TaskView, live = true): Presentation {
  const total = t.units.length;
  const done = (t.counts.merged ?? 0) + (t.counts.completed ?? 0);
  const waiting = t.counts.awaiting_approval ?? 0;
  const held = t.state === "held";
  const icon =
    t.state === "completed"
      ? "pass-filled"
      : t.state === "failed"
        ? "error"
        : t.state === "cancelled"
          ? "circle-slash"
          : held
            ? "warning"
            : waiting
              ? "bell-dot"
              : t.state === "merging"
                ? "git-merge"
                : t.state === "running"
                  ? "loading~spin"
                  : "tasklist";
  const color =
    t.state === "completed" ? "charts.green" : t.state === "failed" ? "charts.red" : held || waiting ? "charts.yellow" : undefined;
  const parts = [`${live ? "" : "last known: "}${done}/${total} done`];
  if (waiting) parts.push(`${waiting} awaiting approval`);
  if (t.merge?.heldReason && !t.merge.commit)
    parts.push(t.merge.conflicts?.length ? `merge held: conflicts in ${t.merge.conflicts.slice(0, 3).join(", ")}` : "merge held");
  else if (t.state === "merging") parts.push(`merging into ${t.merge?.into ?? "its target"}`);
  if (t.pullRequest) parts.push(`PR #${t.pullRequest.number} ${t.pullRequest.state}`);
  if (t.planFallback) parts.push("plan not used");
  const flags = ["task", t.state];
  if (live && (t.state === "open" || t.state === "running")) flags.push("cancellable");
  const tip = [
    `**${t.title}** (${t.taskId}) — ${t.state}`,
    t.description ? oneLine(t.description, 400) : "",
    `Created by ${t.createdBy ?? "unknown"}`,
  ];
  if (t.merge?.commit) tip.push(`Merged into ${t.merge.into} on the origin (${t.merge.commit.slice(0, 10)})`);
  else if (t.merge?.heldReason) {
    tip.push(`Merge into ${t.merge.into} held: ${oneLine(t.merge.heldReason, 400)}`);
    // What the person can do about it, in the same words the CLI uses.
    tip.push(
      t.merge.conflicts?.length
        ? `Resolve the conflicts on \`optimus/${t.taskId}\` and push it, then \`optimus approve ${t.taskId}\`; or cancel the task and send it again.`
        : `When the cause is fixed, \`optimus approve ${t.taskId}\` tries the merge again.`,
    );
  }
  if (t.pullRequest && /^https?:\/\//.test(t.pullRequest.url))
    tip.push(`Pull request [#${t.pullRequest.number}](${t.pullRequest.url}) (${t.pullRequest.state})`);
  if (t.planFallback) tip.push(`Plan not used (the task runs as one unit): ${oneLine(t.planFallback, 400)}`);
  return {
    label: t.title,
    description: parts.join(" · "),
    icon,
    color: live ? color : "disabledForeground",
    tooltip: tip.filter(Boolean).join("  \n"),
    contextValue: flags.join(" "),
  };
}
