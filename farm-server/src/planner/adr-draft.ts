import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { slugify, type PlanProposal } from "@optimus/shared";

/**
 * Writes a planner's design decision as a proposed ADR (MADR style) into the farm's task files
 * (`dir`, committed later onto the task's branch) and returns its repository-relative path.
 * `existing`: the ADR file names the task's branch already has (numbers continue them).
 */
export function writeAdrDraft(repo: string, taskId: string, d: NonNullable<PlanProposal["decision"]>, existing: string[] = []): string {
  const dir = join(repo, "docs", "adr");
  mkdirSync(dir, { recursive: true });
  const numbers = [...existing, ...(existsSync(dir) ? readdirSync(dir) : [])].map((f) => Number(/^(\d{4})-/.exec(f)?.[1] ?? 0));
  const n = String(Math.max(0, ...numbers) + 1).padStart(4, "0");
  const rel = `docs/adr/${n}-${slugify(d.title || "planner-decision", 50)}.md`;
  writeFileSync(
    join(repo, rel),
    [
      `# ${Number(n)}. ${d.title || "Planner decision"}`,
      "",
      `- Status: proposed (drafted by the planner for task ${taskId}; review before accepting)`,
      `- Date: ${new Date().toISOString().slice(0, 10)}`,
      "",
      "## Context",
      "",
      d.context || "(not given)",
      "",
      "## Decision",
      "",
      d.decision || "(not given)",
      "",
      "## Consequences",
      "",
      d.consequences || "(not given)",
      "",
    ].join("\n"),
  );
  return rel;
}
