import { execFile } from "node:child_process";
import { findCycle, Slug, type PlanProposal, type UnitSpec } from "@optimus/shared";
import type { FarmRepo } from "../prloop/farm-repo.js";
import { unsafePathReason } from "../prloop/patch-policy.js";

export type PlanCheck = { ok: true; units: UnitSpec[] } | { ok: false; reason: string };

const onPath = (cmd: string) =>
  new Promise<boolean>((resolve) => execFile("sh", ["-c", 'command -v -- "$1" >/dev/null 2>&1', "sh", cmd], (err) => resolve(!err)));

/**
 * Checks a model's plan against the repository before it becomes units: ids usable, dependencies
 * known and acyclic, files present (or new files in existing folders), checks runnable (the
 * command is on PATH or a file in the repository). Any failure makes the farm fall back to one unit.
 */
export async function checkPlan(plan: PlanProposal, repo: FarmRepo, baseRef: string, taken: ReadonlySet<string>): Promise<PlanCheck> {
  const tree = new Set((await repo.git.raw(["ls-tree", "-r", "--name-only", baseRef])).split("\n").filter(Boolean));
  const dirs = new Set<string>([""]);
  for (const f of tree) for (let i = f.indexOf("/"); i > 0; i = f.indexOf("/", i + 1)) dirs.add(f.slice(0, i));
  const ids = new Set<string>();
  for (const u of plan.units) {
    if (!Slug.safeParse(u.id).success) return { ok: false, reason: `unit id '${u.id}' is not a usable id` };
    if (ids.has(u.id) || taken.has(u.id)) return { ok: false, reason: `unit id '${u.id}' is used twice` };
    ids.add(u.id);
  }
  for (const u of plan.units) {
    for (const d of u.dependsOn) if (!ids.has(d)) return { ok: false, reason: `unit '${u.id}' depends on unknown unit '${d}'` };
    for (const f of u.files) {
      const why = unsafePathReason(f.replace(/\/$/, ""));
      if (why) return { ok: false, reason: `unit '${u.id}' names ${why}` };
      const parent = f.replace(/\/$/, "").split("/").slice(0, -1).join("/");
      if (!tree.has(f) && !dirs.has(f.replace(/\/$/, "")) && !dirs.has(parent)) return { ok: false, reason: `unit '${u.id}' names ${f}, which does not exist (nor does its folder)` };
    }
    const cmd = u.check.trim().split(/\s+/)[0];
    if (cmd && !(cmd.includes("/") ? tree.has(cmd.replace(/^\.\//, "")) : await onPath(cmd))) {
      return { ok: false, reason: `unit '${u.id}' has a check that cannot run here ('${cmd}' is not a command or a file of the repository)` };
    }
  }
  const cycle = findCycle(plan.units);
  if (cycle) return { ok: false, reason: `dependency cycle: ${cycle.join(" → ")}` };
  return {
    ok: true,
    units: plan.units.map((u) => ({
      id: u.id, goal: u.goal, role: "codegen", files: u.files, dependsOn: u.dependsOn, priority: 0, complexity: u.complexity, kind: "change",
      ...(u.check.trim() ? { check: u.check.trim() } : {}),
    })),
  };
}
