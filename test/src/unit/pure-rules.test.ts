/**
 * The farm's pure rules on their own (issue 15): risk and auto-merge, a task's state from its
 * units' states, and the one path rule (checked against git's own). Each case is what a person would
 * check: which change merges alone, which task reads as failed, which path is refused and why.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { assessRisk, mayAutoMerge, type RiskInput } from "@optimus/farm-server/dist/prloop/risk.js";
import { taskState } from "@optimus/farm-server/dist/store/projection.js";
import { Policy, repoPathProblem, type ReviewVerdict } from "@optimus/shared";

const policy = Policy.parse({});
const approve: ReviewVerdict = { verdict: "approve", risk: "low", summary: "fine", comments: [] };
const change = (o: Partial<RiskInput> = {}): RiskInput => ({
  diff: { files: ["src/a.ts"], added: 3, removed: 1 },
  evals: [{ name: "tests", exitCode: 0, timedOut: false, durationMs: 1, output: "" }],
  green: true,
  review: approve,
  unreviewed: false,
  ...o,
});

test("risk: a small green reviewed change is low and merges alone; each reason raises it and is named", () => {
  const low = assessRisk(change(), policy, true);
  assert.deepEqual(low, { level: "low", reasons: [] });
  assert.deepEqual(mayAutoMerge(low, change(), policy), { auto: true, why: [] });

  const prot = assessRisk(change({ diff: { files: [".github/workflows/ci.yml", "yarn.lock"], added: 1, removed: 0 } }), policy, true);
  assert.equal(prot.level, "high");
  assert.deepEqual(prot.reasons, ["touches protected paths .github/workflows/ci.yml, yarn.lock"]);

  const big = assessRisk(
    change({ diff: { files: Array.from({ length: 11 }, (_, i) => `f${i}`), added: 150, removed: 60, executables: ["run.sh"] } }),
    policy,
    true,
  );
  assert.deepEqual(big, {
    level: "medium",
    reasons: ["210 changed lines (limit 200)", "11 files (limit 10)", "makes a file executable: run.sh"],
  });
  assert.deepEqual(assessRisk(change(), policy, false).reasons, ["no eval suite is configured"]);
  assert.equal(assessRisk(change({ review: { ...approve, risk: "high" } }), policy, true).level, "high");

  const red = change({ green: false, evals: [{ name: "tests", exitCode: 1, timedOut: false, durationMs: 1, output: "" }] });
  assert.deepEqual(mayAutoMerge(assessRisk(red, policy, true), red, policy).why, ["evals failed: tests"]);
  assert.deepEqual(mayAutoMerge(low, change({ unreviewed: true, review: undefined }), policy).why, ["no review"]);
  assert.deepEqual(mayAutoMerge(low, change({ review: { ...approve, verdict: "request_changes" } }), policy).why, [
    "the reviewer did not approve",
  ]);
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

test("the path rule (one for every path: unit files, plans, patches, edits) refuses, with its reason, every way out of the tree", () => {
  for (const ok of [
    "src/a.ts",
    "docs/adr/0001-x.md",
    ".gitignore",
    ".gitmodules",
    "a..b/c",
    "é/ü.ts",
    "src/",
    ".git~1/x",
    "git~2/x",
    ".gitx/a",
  ])
    assert.equal(repoPathProblem(ok), undefined, ok);
  const refused: Array<[string, RegExp]> = [
    ["", /must not be empty/],
    ["/etc/passwd", /not an absolute path/],
    ["C:/x", /not an absolute path/],
    ["a\\b", /must use '\/' between folders/],
    ["../x", /must not contain '\.\.'/],
    ["a/./b", /without empty or '\.' parts/],
    ["a//b", /without empty or '\.' parts/],
    [".git/config", /must not point into \.git/],
    [".GIT/hooks/x", /into \.git/],
    ["sub/.git. /x", /into \.git/],
    ["git~1/config", /into \.git/],
    [".git::$INDEX_ALLOCATION/x", /into \.git/],
    [".g\u200cit/hooks/x", /into \.git/],
    ["a\u0000b", /control characters \(found U\+0000 at position 2\)/],
    ["a\u009bb", /found U\+009B/],
    ["x".repeat(1025), /at most 1024 characters \(it has 1025\)/],
  ];
  for (const [p, why] of refused) assert.match(repoPathProblem(p) ?? "(accepted)", why, JSON.stringify(p.slice(0, 40)));
});

test("the path rule refuses every path git itself refuses (verify_path, with core.protectHFS and core.protectNTFS)", (t) => {
  const repo = mkdtempSync(join(tmpdir(), "optimus-path-rule-"));
  t.after(() => rmSync(repo, { recursive: true, force: true }));
  spawnSync("git", ["init", "-q", repo]);
  const blob = spawnSync("git", ["hash-object", "-w", "--stdin"], { cwd: repo, input: "x\n", encoding: "utf8" }).stdout.trim();
  const gitTakes = (p: string) =>
    spawnSync(
      "git",
      ["-c", "core.protectHFS=true", "-c", "core.protectNTFS=true", "update-index", "--add", "--cacheinfo", `100644,${blob},${p}`],
      { cwd: repo },
    ).status === 0;
  const paths = [
    "src/a.ts",
    ".gitignore",
    "a..b",
    ".git/x",
    ".GIT/x",
    "sub/.Git/x",
    "git~1/x",
    "GIT~1/x",
    "x/git~1",
    ".git. /x",
    ".git ",
    ".git:x",
    ".git::$INDEX_ALLOCATION/x",
    ".g\u200cit/x",
    ".git\ufeff/x",
    "\u200e.git/x",
    "a//b",
    "a/./b",
    "a/../b",
    "../b",
    "/a",
    "a/.git",
  ];
  const gitRefuses = paths.filter((p) => !gitTakes(p));
  for (const p of gitRefuses) assert.notEqual(repoPathProblem(p), undefined, `git refuses ${JSON.stringify(p)}, the rule takes it`);
  // The oracle answers: plain paths pass, and git's protections are on.
  assert.deepEqual(
    paths.filter((p) => !gitRefuses.includes(p)),
    ["src/a.ts", ".gitignore", "a..b"],
  );
  // Stricter than git on purpose: these git takes, the farm does not.
  for (const p of ["a\\b", "C:/x", "a\tb", "a\u0001b"]) {
    assert.equal(gitTakes(p), true, JSON.stringify(p));
    assert.notEqual(repoPathProblem(p), undefined, JSON.stringify(p));
  }
});
