import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { errorCode, type Lease } from "@optimus/farm-server";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { startTestFarm } from "../helpers/test-farm.js";

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
type Ctx = {
  base?: { branch: string };
  feedback?: string[];
  notes?: string;
  review?: { unitId: string; patch: string; evals: Array<{ name: string; exitCode: number | null }> };
};

/** A patch made by real git from whatever `change` does to a worktree of main (symlinks, big blobs). */
function patchWith(repo: string, change: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-patch-"));
  try {
    git(repo, "worktree", "add", "-q", "--detach", dir, "main");
    change(dir);
    git(dir, "add", "-A");
    return git(dir, "diff", "--cached", "--binary");
  } finally {
    git(repo, "worktree", "remove", "--force", dir);
  }
}

test("a green, approved, low-risk change merges on its own; a protected path waits for `optimus approve`", async (t) => {
  const repo = makeFixtureRepo(t);
  const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const token = await tokenFor(farm.url, admin, "worker", "pool");
  // A review counts only from another token than the author's: reviewers have their own.
  const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
  const seen: Array<{ lease: Lease; ctx: Ctx }> = [];
  const ledger = newLedger();
  const agents = await startWorkers(
    farm.url,
    token,
    [
      { nodeId: "coder", role: "codegen", max: 1 },
      { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
    ],
    ledger,
    async (lease) => {
      const ctx = (lease.context ?? {}) as Ctx;
      seen.push({ lease, ctx });
      if (lease.spec.role === "review") {
        assert.match(ctx.review!.patch, lease.taskId === "fix-add" ? /return a \+ b/ : /pull_request/);
        return {
          outcome: "succeeded",
          summary: "looks right",
          review: { verdict: "approve", risk: "low", summary: "fixes the sign", comments: [] },
        };
      }
      const files: Record<string, string> = lease.taskId.startsWith("fix")
        ? { "src/add.js": FIX }
        : { ".github/workflows/ci.yml": "on: [push, pull_request]\n" };
      return { outcome: "succeeded", summary: "done", patch: patchFor(repo, ctx.base!.branch, files) };
    },
  );
  t.after(() => stopAll(agents));

  const fix = await client.tasks.create.mutate({
    id: "fix-add",
    title: "Fix add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
  });
  assert.deepEqual(fix.units, ["fix", "fix-review"], "a review unit follows the codegen unit");
  const merged = await waitFor(async () => {
    const { task, units } = await client.tasks.get.query({ taskId: "fix-add" });
    return task.merge?.commit ? { task, units } : null;
  }, "the fix to be merged into main");
  const fixUnit = merged.units.find((u) => u.unitId === "fix")!;
  assert.deepEqual([fixUnit.state, fixUnit.attempt], ["merged", 1]);
  assert.equal(fixUnit.evaluation?.green, true);
  assert.equal(fixUnit.evaluation?.evals[0]?.exitCode, 0);
  assert.match(fixUnit.evaluation!.evals[0]!.output, /add works/);
  assert.equal(fixUnit.risk?.level, "low");
  assert.equal(merged.units.find((u) => u.unitId === "fix-review")!.state, "completed");
  assert.equal(merged.task.merge!.into, "main");
  // main now has the fix, and the eval passes there; the merge is recorded once.
  assert.equal(git(repo, "show", "main:src/add.js"), FIX);
  assert.match(git(repo, "log", "--format=%s", "main"), /Merge task fix-add/);
  assert.equal(git(repo, "log", "--format=%B", "main").match(/Optimus-Unit: fix-add\/fix#1/g)?.length, 1);
  assert.equal(git(repo, "branch", "--list", "optimus/fix-add--*").trim(), "", "the unit branch is cleaned up");
  assert.equal(git(repo, "worktree", "list").trim().split("\n").length, 1, "no farm worktree is left");

  // A change to a protected path is held, even green and approved.
  await client.tasks.create.mutate({
    id: "ci-tweak",
    title: "CI tweak",
    units: [{ id: "ci", goal: "run on PRs too", files: [".github/workflows/ci.yml"] }],
  });
  const held = await waitFor(async () => {
    const u = await client.units.get.query({ taskId: "ci-tweak", unitId: "ci" });
    return u.state === "awaiting_approval" ? u : null;
  }, "the protected change to be held");
  assert.match(held.reason ?? "", /protected path \.github\/workflows\/ci\.yml/);
  assert.equal(git(repo, "show", "main:.github/workflows/ci.yml"), "on: push\n", "not merged yet");
  // A protected path needs a person whose token has the approver right (the shared admin token has not).
  const alice = (await httpClientFor(farm.url, admin).admin.createToken.mutate({ role: "editor", name: "alice", approver: true })).token;
  const approved = await runCli(["approve", "ci-tweak/ci"], { cwd: repo, env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: alice } });
  assert.equal(approved.code, 0, approved.stderr);
  assert.match(approved.stderr, /unit ci-tweak\/ci approved and merged/);
  await waitFor(async () => (await client.tasks.get.query({ taskId: "ci-tweak" })).task.merge?.commit, "the approved task to reach main");
  assert.equal(git(repo, "show", "main:.github/workflows/ci.yml"), "on: [push, pull_request]\n");
  const events = await farm.services.state.journal.readAfter(0, 10_000);
  const approval = events.find((e) => e.type === "unit_approved")!;
  assert.equal(approval.actor, "editor:alice", "the approval is recorded with who gave it");
  assert.equal(events.filter((e) => e.type === "unit_merged").length, 2);
});

test("request changes: the comment reaches the next attempt; failing evals send the output back", async (t) => {
  const repo = makeFixtureRepo(t);
  const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const token = await tokenFor(farm.url, admin, "worker", "pool");
  const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
  const attempts: Ctx[] = [];
  let reviews = 0;
  const agents = await startWorkers(
    farm.url,
    token,
    [
      { nodeId: "coder", role: "codegen", max: 1 },
      { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
    ],
    newLedger(),
    async (lease) => {
      const ctx = (lease.context ?? {}) as Ctx;
      if (lease.spec.role === "review") {
        reviews++;
        return reviews === 1
          ? {
              outcome: "succeeded",
              summary: "",
              review: {
                verdict: "request_changes",
                risk: "low",
                summary: "name the parameters",
                comments: [{ path: "src/add.js", line: 1, body: "call them left and right" }],
              },
            }
          : { outcome: "succeeded", summary: "", review: { verdict: "approve", risk: "low", summary: "good", comments: [] } };
      }
      attempts.push(ctx);
      // Attempt 1 does not fix the bug (evals fail); attempt 2 fixes it; attempt 3 also renames.
      const content =
        attempts.length === 1
          ? "export function add(a, b) {\n  return a * b;\n}\n"
          : attempts.length === 2
            ? FIX
            : "export function add(left, right) {\n  return left + right;\n}\n";
      return { outcome: "succeeded", summary: "try", patch: patchFor(repo, ctx.base!.branch, { "src/add.js": content }) };
    },
  );
  t.after(() => stopAll(agents));
  await client.tasks.create.mutate({
    id: "fix-add",
    title: "Fix add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"], maxAttempts: 5 }],
  });
  await waitFor(async () => (await client.tasks.get.query({ taskId: "fix-add" })).task.merge?.commit, "the fix to land", 30_000);
  assert.equal(attempts.length, 3);
  assert.match(attempts[1]!.feedback!.join("\n"), /eval 'tests' exited 1:[\s\S]*AssertionError/);
  assert.match(attempts[2]!.feedback!.join("\n"), /src\/add\.js:1: call them left and right/);
  // Session notes of the earlier attempts travel with the lease, and are in the repository.
  assert.equal(attempts[0]!.notes, undefined);
  assert.match(
    attempts[2]!.notes!,
    /## Attempt 1[\s\S]*evals red \(tests: exit 1\)[\s\S]*## Attempt 2[\s\S]*review by fix-review: \*\*request_changes\*\*/,
  );
  await farm.services.prloop!.idle();
  // One folder per task: its units' notes, nothing of other tasks.
  assert.deepEqual(readdirSync(join(repo, ".optimus", "sessions", "fix-add")).sort(), ["fix-review.md", "fix.md"]);
  const notes = readFileSync(join(repo, ".optimus", "sessions", "fix-add", "fix.md"), "utf8");
  assert.match(notes, /^# Session notes: fix-add\/fix\n\n\*\*Goal:\*\* make add add/);
  assert.match(notes, /## Attempt 3[\s\S]*\*\*merged\*\* into optimus\/fix-add/);
  assert.match(git(repo, "show", "main:src/add.js"), /left \+ right/);

  // A human's request for changes reaches the worker the same way (checked on the journal).
  const events = await farm.services.state.journal.readAfter(0, 10_000);
  assert.deepEqual(
    events.filter((e) => e.type === "unit_evaluated").map((e) => (e.data as { green: boolean }).green),
    [false, true, true],
  );
  const cr = events.find((e) => e.type === "changes_requested")!;
  assert.equal(cr.actor, "farm");
});

test("hostile or broken patches are refused with a clear error and change nothing", async (t) => {
  const repo = makeFixtureRepo(t);
  const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const token = await tokenFor(farm.url, admin, "worker", "pool");
  await client.tasks.create.mutate({
    id: "fix-add",
    title: "Fix add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
  });
  // Made before the lease is taken: this worker sends no heartbeats, so its lease must not wait on them.
  const good = patchFor(repo, "main", { "src/add.js": FIX });
  const outOfScope = patchFor(repo, "main", { "README.md": "# pwned\n" });
  const bigBinary =
    patchFor(repo, "main", { "src/add.js": FIX }) +
    patchFor(repo, "main", { "src/blob.bin": "\0".repeat(10) }).replace(
      /^diff --git a\/src\/blob.bin b\/src\/blob.bin/m,
      "diff --git a/src/add.js b/src/add.js",
    );
  // Git reads each patch (on a throwaway index); what git refuses is refused with git's reason, what
  // git would apply is judged by the rules.
  const symlink = patchWith(repo, (dir) => {
    rmSync(join(dir, "src/add.js"));
    symlinkSync("/etc/passwd", join(dir, "src/add.js"));
  });
  const bigBlob = patchWith(repo, (dir) => writeFileSync(join(dir, "src/add.js"), Buffer.alloc(2 * 1024 * 1024, 0)));
  const { createFarmClient } = await import("@optimus/farm-server");
  const w = createFarmClient({ url: farm.url, token, transport: "ws" });
  t.after(() => w.close());
  await w.client.worker.register.mutate({ nodeId: "evil", role: "codegen" });
  const leases: Lease[] = [];
  const sub = w.client.worker.leases.subscribe({ nodeId: "evil" }, { onData: (env) => leases.push(env.data as Lease) });
  t.after(() => sub.unsubscribe());
  const lease = await waitFor(() => leases[0], "a lease");
  const ref = { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId };
  const cases: Array<[string, string, RegExp]> = [
    ["dot-dot", good.replaceAll("src/add.js", "../outside.js"), /\.\.\/outside\.js: does not exist in index/],
    [".git", good.replaceAll("src/add.js", ".git/hooks/pre-commit"), /\.git\/hooks\/pre-commit: does not exist in index/],
    ["out of scope", outOfScope, /outside the unit's files \(src\/add\.js\)/],
    ["symlink", symlink, /makes src\/add\.js a symbolic link, which is not allowed/],
    ["blob over the limit", bigBlob, /makes src\/add\.js 2097152 bytes; the limit is 1048576/],
    [
      "corrupt binary",
      "diff --git a/src/add.js b/src/add.js\nindex 1111111..2222222 100644\nGIT binary patch\nliteral 99999999\nzcmV?d00001\n\nliteral 0\nHcmV?d00001\n\n",
      /corrupt binary patch/,
    ],
    ["does not apply", good.replace("-  return a - b;", "-  return a / b;"), /does not apply to optimus\/fix-add/],
    ["not a patch", "please merge my changes", /not a git patch/],
  ];
  void bigBinary;
  for (const [name, patch, message] of cases) {
    // A worker heartbeats while it works: each refusal below must be about the patch, not a lapsed lease.
    await w.client.worker.heartbeat.mutate({ nodeId: "evil", leases: [ref] });
    const err = await w.client.worker.submit
      .mutate({ nodeId: "evil", lease: ref, result: { outcome: "succeeded", summary: name, patch } })
      .catch((e: unknown) => e);
    assert.equal(errorCode(err), "BAD_REQUEST", `${name}: ${String(err)}`);
    assert.match((err as Error).message, message, name);
    assert.match((err as Error).message, /^patch refused: /, name);
  }
  // Nothing changed: the unit is still leased to the same worker, main is untouched, every refusal is journaled.
  const u = await client.units.get.query({ taskId: "fix-add", unitId: "fix" });
  assert.deepEqual([u.state, u.worker, u.attempt], ["leased", "evil", 1]);
  assert.match(git(repo, "show", "main:src/add.js"), /a - b/);
  const events = await farm.services.state.journal.readAfter(0, 10_000);
  assert.equal(events.filter((e) => e.type === "report_rejected").length, cases.length);
  assert.equal(events.filter((e) => e.type === "unit_evaluating").length, 0);
  // And the honest patch still goes through afterwards.
  const ok = await w.client.worker.submit.mutate({
    nodeId: "evil",
    lease: ref,
    result: { outcome: "succeeded", summary: "fix", patch: good },
  });
  assert.equal(ok.accepted, true);
});
