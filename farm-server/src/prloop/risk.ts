import picomatch from "picomatch";
import type { DiffStat, EvalOutcome, Policy, ReviewVerdict, RiskAssessment } from "@optimus/shared";

export interface RiskInput {
  diff: DiffStat;
  evals: EvalOutcome[];
  green: boolean;
  review?: ReviewVerdict;
  /** true when the unit has no review unit (manifest opted out) */
  unreviewed: boolean;
}

/**
 * Scores a change for the merge decision. High: a protected path, or a reviewer calling it high
 * risk. Medium: a large diff, many files, a medium-risk review, or no eval suite at all to vouch
 * for it. The level alone never merges anything: `mayAutoMerge` also wants green evals and approval.
 */
export function assessRisk(input: RiskInput, policy: Policy, evalSuiteConfigured: boolean): RiskAssessment {
  const high: string[] = [];
  const medium: string[] = [];
  const isProtected = picomatch(policy.protectedPaths, { dot: true });
  const hit = input.diff.files.filter((f) => isProtected(f));
  if (hit.length) high.push(`touches protected path${hit.length > 1 ? "s" : ""} ${hit.slice(0, 5).join(", ")}`);
  if (input.review?.risk === "high") high.push("the reviewer rates it high risk");
  const lines = input.diff.added + input.diff.removed;
  if (lines > policy.autoMerge.maxChangedLines) medium.push(`${lines} changed lines (limit ${policy.autoMerge.maxChangedLines})`);
  if (input.diff.files.length > policy.autoMerge.maxFiles)
    medium.push(`${input.diff.files.length} files (limit ${policy.autoMerge.maxFiles})`);
  const exe = input.diff.executables ?? [];
  if (exe.length) medium.push(`makes ${exe.length > 1 ? "files" : "a file"} executable: ${exe.slice(0, 5).join(", ")}`);
  if (input.review?.risk === "medium") medium.push("the reviewer rates it medium risk");
  if (!evalSuiteConfigured) medium.push("no eval suite is configured");
  const level = high.length ? "high" : medium.length ? "medium" : "low";
  return { level, reasons: [...high, ...medium] };
}

export function mayAutoMerge(risk: RiskAssessment, input: RiskInput, policy: Policy): { auto: boolean; why: string[] } {
  const why: string[] = [];
  if (!policy.autoMerge.enabled) why.push("auto-merge is off");
  if (risk.level !== "low") why.push(...risk.reasons);
  if (!input.green)
    why.push(
      `evals failed: ${input.evals
        .filter((e) => e.exitCode !== 0)
        .map((e) => e.name)
        .join(", ")}`,
    );
  if (input.unreviewed) why.push("no review");
  else if (input.review?.verdict !== "approve") why.push("the reviewer did not approve");
  return { auto: why.length === 0, why };
}
