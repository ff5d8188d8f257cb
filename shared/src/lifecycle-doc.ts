import { ACTIONS_BY_STATE, STATE_LABELS, UNIT_TRANSITIONS } from "./lifecycle.js";
import { TERMINAL_UNIT_STATES, UnitState } from "./unit.js";

/**
 * docs/lifecycle.md, drawn from the lifecycle table (`npm run docs:lifecycle` writes it; a test
 * fails when the file and the table disagree), so the picture can never drift from the code.
 */
export function lifecycleDoc(): string {
  const lines = [
    "# The unit lifecycle",
    "",
    "<!-- Generated from shared/src/lifecycle.ts by `npm run docs:lifecycle`: edit the table, not this file. -->",
    "",
    "Every state a unit can be in, the events that move it, and what a person may do in each state. The farm",
    "moves a unit only along these arrows (the projection reports any other move as a bug:",
    "`optimus_lifecycle_violations`), refuses any action the table does not list, and the editor, the",
    "dashboard and the CLI offer exactly the listed ones.",
    "",
    "```mermaid",
    "stateDiagram-v2",
    "  [*] --> planned: task_created, units_added, units_planned",
  ];
  for (const from of UnitState.options) {
    for (const [to, events] of Object.entries(UNIT_TRANSITIONS[from])) lines.push(`  ${from} --> ${to}: ${events!.join(", ")}`);
  }
  for (const s of TERMINAL_UNIT_STATES) if (Object.keys(UNIT_TRANSITIONS[s]).length === 0) lines.push(`  ${s} --> [*]`);
  lines.push("```", "", "| state | shown as | a person may | moves on to |", "|---|---|---|---|");
  for (const s of UnitState.options) {
    const actions = ACTIONS_BY_STATE[s].map((a) => a.replace("_", " ")).join(", ") || "—";
    const next = Object.keys(UNIT_TRANSITIONS[s]).join(", ") || "— (final)";
    lines.push(`| \`${s}\` | ${STATE_LABELS[s]} | ${actions} | ${next} |`);
  }
  lines.push(
    "",
    "`submitted` is entered and left in one journal batch (a worker's result and what the farm makes of it",
    "commit together), so no view shows it; a journal that ends there after a crash is finished on restart.",
    "Escalate also needs a frontier model on the farm and no escalation already queued; retry and escalate",
    "are refused once the unit's task is cancelled. See `actionRefusal` in shared/src/lifecycle.ts.",
    "",
  );
  return lines.join("\n");
}
