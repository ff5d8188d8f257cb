/**
 * The farm's pure rules on their own (issue 15): risk and auto-merge, a task's state from its
 * units' states, and the path rule for what a change touches. Each case is what a person would
 * check: which change merges alone, which task reads as failed, which path is refused and why.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { assessRisk, mayAutoMerge, type RiskInput } from "@optimus/farm-server/dist/prloop/risk.js";
import { taskState } from "@optimus/farm-server/dist/store/projection.js";
import { Policy, unsafePathReason, type ReviewVerdict } from "@optimus/shared";

const policy = Policy.parse({});
const approve: ReviewVerdict = { verdict: "approve", risk: "low", summary: "fine", comments: [] };
const change = (o: Partial<RiskInput> = {}): RiskInput => ({ diff: { files: ["src/a.ts"], added: 3, removed: 1 }, evals: [{ name: "tests", exitCode: 0, timedOut: false, durationMs: 1, output: "" }], green: true, review: approve, unreviewed: false, ...o });

test("risk: a small green reviewed change is low and merges alone; each reason raises it and is named", () => {
  const low = assessRisk(change(), policy, true);
  assert.deepEqual(low, { level: "low", reasons: [] });
  assert.deepEqual(mayAutoMerge(low, change(), policy), { auto: true, why: [] });

  const prot = assessRisk(change({ diff: { files: [".github/workflows/ci.yml", "yarn.lock"], added: 1, removed: 0 } }), policy, true);
  assert.equal(prot.level, "high");
  assert.deepEqual(prot.reasons, ["touches protected paths .github/workflows/ci.yml, yarn.lock"]);

  const big = assessRisk(change({ diff: { files: Array.from({ length: 11 }, (_, i) => `f${i}`), added: 150, removed: 60, executables: ["run.sh"] } }), policy, true);
  assert.deepEqual(big, { level: "medium", reasons: ["210 changed lines (limit 200)", "11 files (limit 10)", "makes a file executable: run.sh"] });
  assert.deepEqual(assessRisk(change(), policy, false).reasons, ["no eval suite is configured"]);
  assert.equal(assessRisk(change({ review: { ...approve, risk: "high" } }), policy, true).level, "high");

  const red = change({ green: false, evals: [{ name: "tests", exitCode: 1, timedOut: false, durationMs: 1, output: "" }] });
  assert.deepEqual(mayAutoMerge(assessRisk(red, policy, true), red, policy).why, ["evals failed: tests"]);
  assert.deepEqual(mayAutoMerge(low, change({ unreviewed: true, review: undefined }), policy).why, ["no review"]);
  assert.deepEqual(mayAutoMerge(low, change({ review: { ...approve, verdict: "request_changes" } }), policy).why, ["the reviewer did not approve"]);
  assert.deepEqual(mayAutoMerge(low, change(), Policy.parse({ autoMerge: { enabled: false } })).why, ["auto-merge is off"]);
});

test("a task's state follows its units: done only once its change is merged; failed only when nothing can run", () => {
  const t = { cancelled: false };
  assert.equal(taskState(t, { planned: 1, ready: 1 }), "open");
  assert.equal(taskState(t, { leased: 1, planned: 1 }), "running");
  assert.equal(taskState(t, { completed: 2 }), "completed", "no change to merge: done at once");
  assert.equal(taskState(t, { merged: 1, completed: 1 }), "merging", "merged into its branch, not yet into the target");
  assert.equal(taskState({ cancelled: false, merge: { into: "main", commit: "abc" } }, { merged: 1, completed: 1 }), "completed");
  assert.equal(taskState({ cancelled: false, merge: { into: "main", heldReason: "conflicts" } }, { merged: 1 }), "held");
  assert.equal(taskState(t, { dead: 1, completed: 1 }), "failed");
  assert.equal(taskState(t, { dead: 1, ready: 1 }), "running", "another unit can still run");
  assert.equal(taskState(t, { cancelled: 1, completed: 1 }), "cancelled");
  assert.equal(taskState({ cancelled: true }, { leased: 1 }), "cancelled");
});

test("the path rule for what a change touches refuses, with its reason, every way out of the tree", () => {
  for (const ok of ["src/a.ts", "docs/adr/0001-x.md", ".gitignore", "a..b/c", "é/ü.ts"]) assert.equal(unsafePathReason(ok), null, ok);
  const refused: Array<[string, RegExp]> = [
    ["", /empty/], ["/etc/passwd", /absolute/], ["C:/x", /absolute/], ["a\\b", /non-POSIX/], ["../x", /leaves or bends/],
    ["a/./b", /leaves or bends/], ["a//b", /leaves or bends/], [".git/config", /git's own/], [".GIT/hooks/x", /git's own/],
    ["sub/.git. /x", /git's own/], ["a\u0000b", /control characters/], ["x".repeat(1025), /overlong/],
  ];
  for (const [p, why] of refused) assert.match(unsafePathReason(p) ?? "(accepted)", why, JSON.stringify(p.slice(0, 40)));
});
