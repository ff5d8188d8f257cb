/**
 * Delivery through a forge (issue 10, item 5), end to end with real parts: the farm (in process) with
 * scripted workers, its origin served by git's own smart HTTP (the farm pushes there), and the GitHub
 * stand-in reading that same repository — every request and response validated against GitHub's
 * OpenAPI description, driven by the farm's real @octokit/rest. The team's CI is a GitHub App that
 * reports `ci/test` (required by branch protection) on each new head; people review as themselves.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Octokit } from "@octokit/rest";
import { cloneDirFor, type Farm } from "@optimus/farm-server";
import type { FarmEvent, ReviewVerdict, TaskView } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { patchFor } from "../helpers/fixture.js";
import { GitHttpOrigin } from "../helpers/git-http-origin.js";
import { GitHubStandin } from "../helpers/github-standin.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { FIX, GITHUB, teamFiles } from "../helpers/team-fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";

const FARM_PASS = "farm-push-secret-0001";
const { FARM_TOKEN, CI_TOKEN, ALICE_TOKEN, MALLORY_TOKEN, HOOK_SECRET, CI_APP } = GITHUB;
const FILES = teamFiles("widgets");
const APPROVE: ReviewVerdict = { verdict: "approve", risk: "low", summary: "add adds now", comments: [] };
type Ctx = { base?: { branch: string }; feedback?: string[] };
type CiVerdict = { conclusion: "success" | "failure"; title: string; summary: string } | null;

interface World {
  origin: GitHttpOrigin;
  gh: GitHubStandin;
  farm: Farm;
  client: ReturnType<typeof httpClientFor>;
  admin: string;
  /** every lease the workers ran, with the feedback the farm gave it (what goes into the prompt) */
  leases: { taskId: string; unitId: string; attempt: number; feedback: string[] }[];
  /** the farm's journal from its start on */
  journal: FarmEvent[];
  main: () => string;
  as: (token: string) => Octokit;
  /** what the team's CI says about a head (null: it has not run yet) */
  ci: { judge: (head: string) => CiVerdict };
}

/** Changes per unit: `fix` fixes add; units added from the pull request make what their feedback asks for. */
type Script = { files?: (unitId: string, feedback: string[]) => Record<string, string>; review?: (unitId: string) => ReviewVerdict };

async function world(t: { after(fn: () => unknown): void }, script: Script = {}): Promise<World> {
  const cleanups: (() => unknown)[] = [];
  const origin = new GitHttpOrigin({ farm: FARM_PASS });
  await origin.start();
  cleanups.push(() => origin.close());
  // The stand-in serves the same bare repository the farm pushes to over smart HTTP.
  const gh = await new GitHubStandin({
    repoDir: origin.create("widgets", FILES),
    users: [
      { login: "acme", type: "Organization", permission: "none" },
      {
        login: "optimus-farm[bot]",
        type: "Bot",
        permission: "write",
        app: { id: 901, slug: "optimus-farm", name: "Optimus farm" },
        token: FARM_TOKEN,
      },
      { login: "team-ci[bot]", type: "Bot", permission: "write", app: CI_APP, token: CI_TOKEN },
      { login: "alice", type: "User", permission: "write", token: ALICE_TOKEN },
      { login: "mallory", type: "User", permission: "read", token: MALLORY_TOKEN },
    ],
  }).start();
  cleanups.push(() => gh.stop());
  t.after(async () => {
    for (const c of cleanups.reverse())
      await Promise.resolve()
        .then(c)
        .catch((err: unknown) => console.error("cleanup failed:", err));
    gh.assertNoViolations();
  });
  gh.protect("main", { requiredChecks: [{ context: "ci/test", appId: CI_APP.id }] });

  const vault = mkdtempSync(join(tmpdir(), "optimus-forge-vault-"));
  cleanups.push(() => rmSync(vault, { recursive: true, force: true }));
  chmodSync(vault, 0o700);
  for (const [item, field, value] of [
    ["origin", "auth", `Basic ${Buffer.from(`farm:${FARM_PASS}`).toString("base64")}`],
    ["github", "token", FARM_TOKEN],
    ["github", "webhook", HOOK_SECRET],
  ] as const) {
    mkdirSync(join(vault, item), { recursive: true, mode: 0o700 });
    writeFileSync(join(vault, item, field), value, { mode: 0o600 });
  }
  const url = origin.url("widgets");
  const { server: farm, adminToken: admin } = await startTestFarm(
    { after: (fn) => void cleanups.push(fn) },
    {
      repo: url,
      config: {
        heartbeatIntervalMs: 500,
        planner: { enabled: false },
        prloop: { reviewEveryCodegenUnit: true, eval: [{ name: "tests", command: "node test/add.test.js", timeoutMs: 30_000 }] },
        origin: { auth: "secrets-manager://dev/origin/auth" },
        secrets: { vaults: { dev: { provider: "file", dir: vault } } },
        forge: {
          kind: "github",
          repo: "acme/widgets",
          token: "secrets-manager://dev/github/token",
          baseUrl: gh.url,
          webhookSecret: "secrets-manager://dev/github/webhook",
          pollIntervalMs: 1000,
          maxRetryAfterMs: 5000,
        },
      },
    },
  );
  const journal: FarmEvent[] = [];
  farm.services.state.on("committed", (events: FarmEvent[]) => void journal.push(...events));
  // The hook sends what the farm acts on (a failing check arrives as check_run and check_suite; the
  // suite's payload carries the farm's commit author, validated as an email by GitHub's description).
  gh.addWebhook(`${farm.url}/forge/webhook`, HOOK_SECRET, [
    "pull_request",
    "pull_request_review",
    "pull_request_review_comment",
    "check_run",
    "check_suite",
  ]);

  const leases: World["leases"] = [];
  const coder = await tokenFor(farm.url, admin, "worker", "coders");
  const reviewer = await tokenFor(farm.url, admin, "worker", "reviewers");
  const agents = await startWorkers(
    farm.url,
    coder,
    [
      { nodeId: "coder", role: "codegen", max: 1 },
      { nodeId: "reviewer", role: "review", max: 1, token: reviewer },
    ],
    newLedger(),
    async (lease) => {
      const ctx = lease.context as Ctx;
      leases.push({ taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, feedback: ctx.feedback ?? [] });
      if (lease.spec.role === "review")
        return { outcome: "succeeded", summary: "reviewed", review: script.review?.(lease.unitId) ?? APPROVE };
      const files = script.files?.(lease.unitId, ctx.feedback ?? []) ?? { "src/add.js": FIX };
      return { outcome: "succeeded", summary: "changed", patch: patchFor(cloneDirFor(url), ctx.base!.branch, files) };
    },
  );
  cleanups.push(() => stopAll(agents));

  // The team's CI: its own app reports `ci/test` once on each new head of an open pull request.
  const as = (token: string) => new Octokit({ auth: token, baseUrl: gh.url, userAgent: "optimus-test-person" });
  const ci: World["ci"] = { judge: () => ({ conclusion: "success", title: "tests passed", summary: "12 of 12 passed" }) };
  let running = true;
  const judged = new Set<string>();
  const ciLoop = (async () => {
    while (running) {
      for (const p of gh.pulls.filter((x) => x.state === "open")) {
        const head = gh.headSha(p);
        const v = judged.has(head) ? null : ci.judge(head);
        if (!v) continue;
        judged.add(head);
        await as(CI_TOKEN).rest.checks.create({
          owner: "acme",
          repo: "widgets",
          name: "ci/test",
          head_sha: head,
          status: "completed",
          conclusion: v.conclusion,
          output: { title: v.title, summary: v.summary },
        });
      }
      await sleep(100);
    }
  })();
  cleanups.push(async () => {
    running = false;
    await ciLoop;
  });
  const main = () => origin.git("widgets", ["rev-parse", "refs/heads/main"]).trim();
  return { origin, gh, farm, client: httpClientFor(farm.url, admin), admin, leases, journal, main, as, ci };
}

const taskOf = async (w: World, taskId: string): Promise<TaskView> => (await w.client.tasks.get.query({ taskId })).task;
const merged = (w: World, taskId: string, timeoutMs = 120_000) =>
  waitFor(
    async () => {
      const t = await taskOf(w, taskId);
      return t.merge?.commit ? t : null;
    },
    `task ${taskId} merged`,
    timeoutMs,
    100,
  );
const show = (w: World, rev: string, path: string) => w.origin.git("widgets", ["show", `${rev}:${path}`]);

test(
  "a low-risk green task: its pull request opened (after a secondary rate limit), a check run per eval, the review with line comments, merged through the API",
  { timeout: 180_000 },
  async (t) => {
    const w = await world(t, {
      review: () => ({
        ...APPROVE,
        comments: [
          { path: "src/add.js", line: 2, body: "Good: a + b." },
          { path: "README.md", line: 1, body: "Mention add() here." },
        ],
      }),
    });
    w.gh.scriptLimit({ operationId: "pulls/create", kind: "secondary", status: 403, retryAfterSeconds: 1 });
    const before = w.main();
    await w.client.tasks.create.mutate({
      id: "t-green",
      title: "Make add add",
      description: "add(2, 3) must be 5.",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    const task = await merged(w, "t-green");

    // The secondary rate limit was waited out: one refused create, one pull request.
    assert.deepEqual(
      w.gh.requests.filter((r) => r.operationId === "pulls/create").map((r) => r.status),
      [403, 201],
    );
    assert.equal(w.gh.pulls.length, 1);
    const pr = w.gh.pulls[0]!;
    assert.deepEqual([pr.head, pr.base, pr.user.login, pr.title], ["optimus/t-green", "main", "optimus-farm[bot]", "Make add add"]);
    for (const part of [
      "`t-green`",
      "Make add add",
      "add(2, 3) must be 5.",
      "`fix`",
      "`fix-review`",
      "fix/tests",
      "Risk: low",
      `${w.farm.url}/trpc/tasks.get`,
    ])
      assert.ok(pr.body?.includes(part), `the body names ${part}:\n${pr.body}`);
    assert.doesNotMatch(pr.body ?? "", /Held for a person/);

    // Merged through the API: main advanced by exactly the pull request's merge commit.
    assert.equal(task.state, "completed");
    assert.deepEqual(task.pullRequest, { number: 1, url: `${w.gh.url}/acme/widgets/pull/1`, state: "merged" });
    assert.equal(w.main(), task.merge!.commit);
    assert.equal(pr.mergeCommitSha, task.merge!.commit);
    assert.ok(pr.mergedAt && pr.mergedBy?.login === "optimus-farm[bot]");
    assert.equal(w.origin.git("widgets", ["rev-parse", `${task.merge!.commit}^1`]).trim(), before);
    assert.equal(w.origin.git("widgets", ["rev-parse", `${task.merge!.commit}^2`]).trim(), pr.frozenHeadSha);
    assert.equal(show(w, "main", "src/add.js"), FIX);
    assert.ok(w.origin.neverForced("widgets"));
    assert.deepEqual(
      w.gh.requests.filter((r) => r.operationId === "pulls/merge").map((r) => r.status),
      [200],
    );
    // The team's required check had passed on the head that was merged.
    assert.ok(w.gh.checkRuns.some((c) => c.name === "ci/test" && c.headSha === pr.frozenHeadSha && c.conclusion === "success"));

    // One check run per eval, once, on a head the pull request had; its summary and output's tail.
    const farmRuns = w.gh.checkRuns.filter((c) => c.app.id === 901);
    assert.deepEqual(
      farmRuns.map((c) => [c.name, c.status, c.conclusion, c.externalId, c.output.title]),
      [["optimus/fix/tests", "completed", "success", "optimus:t-green/fix/1/tests", "tests passed"]],
    );
    assert.match(farmRuns[0]!.output.summary ?? "", /Eval `tests` of unit `fix` \(attempt 1\).*exit 0/);
    assert.match(farmRuns[0]!.output.text ?? "", /add works/);
    assert.ok(w.gh.git.isAncestor(farmRuns[0]!.headSha, pr.frozenHeadSha!));

    // The review unit's verdict, as a review with its line comment; the one outside the diff kept in the body.
    const reviews = w.gh.reviews.filter((r) => r.user.login === "optimus-farm[bot]");
    assert.equal(reviews.length, 1);
    assert.equal(reviews[0]!.state, "COMMENTED", "the farm authored the pull request: its verdict is a comment that states it");
    assert.match(
      reviews[0]!.body,
      /Optimus review\*\*: approve \(risk low\)[\s\S]*add adds now[\s\S]*`README.md:1`: Mention add\(\) here\./,
    );
    assert.deepEqual(
      w.gh.comments.filter((c) => c.reviewId === reviews[0]!.id).map((c) => [c.path, c.line, c.body]),
      [["src/add.js", 2, "Good: a + b."]],
    );

    // `optimus status` shows the pull request.
    const status = await runCli(["status"], { cwd: tmpdir(), env: { OPTIMUS_FARM: w.farm.url, OPTIMUS_TOKEN: w.admin } });
    assert.match(status.stdout, /pull request #1 \(merged\): http:\/\/127\.0\.0\.1:\d+\/acme\/widgets\/pull\/1/);
  },
);

test(
  "a held change is merged into the pull request and the task waits: a forged webhook and a read-only approval change nothing; a signed approval by a user with write access merges it",
  { timeout: 180_000 },
  async (t) => {
    const w = await world(t, { review: () => ({ ...APPROVE, risk: "medium", summary: "fine, but it changes arithmetic" }) });
    const before = w.main();
    await w.client.tasks.create.mutate({
      id: "t-held",
      title: "Make add add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    const held = await waitFor(
      async () => {
        const t = await taskOf(w, "t-held");
        return t.state === "held" ? t : null;
      },
      "t-held held",
      90_000,
      100,
    );
    assert.match(held.merge!.heldReason!, /^waiting for approval: the reviewer rates it medium risk/);
    // The change is in the pull request (never approve what one cannot see); main has not moved.
    const unit = await w.client.units.get.query({ taskId: "t-held", unitId: "fix" });
    assert.equal(unit.state, "merged");
    assert.ok(w.journal.some((e) => e.type === "unit_merged" && e.data.unitId === "fix" && !e.data.auto && e.data.heldForTask));
    const pr = w.gh.pulls[0]!;
    const head = w.gh.headSha(pr);
    assert.equal(show(w, head, "src/add.js"), FIX);
    assert.match(pr.body ?? "", /Held for a person[\s\S]*fix: the reviewer rates it medium risk/);
    await waitFor(() => w.gh.checkRuns.some((c) => c.name === "ci/test" && c.headSha === w.gh.headSha(pr)), "the team's CI on the head");

    // A delivery signed with another secret, claiming alice's approval: refused, and nothing happens.
    const payload = JSON.stringify({
      action: "submitted",
      review: {
        id: 424242,
        user: { login: "alice", type: "User" },
        body: "ok",
        state: "approved",
        commit_id: head,
        submitted_at: new Date().toISOString(),
        author_association: "MEMBER",
      },
      pull_request: { number: pr.number },
      repository: { full_name: "acme/widgets" },
      sender: { login: "alice", type: "User" },
    });
    const headers = (sig: string | null) => ({
      "content-type": "application/json",
      "x-github-event": "pull_request_review",
      "x-github-delivery": `forged-${Date.now()}`,
      ...(sig ? { "x-hub-signature-256": sig } : {}),
    });
    const forged = `sha256=${createHmac("sha256", "not-the-secret").update(payload).digest("hex")}`;
    assert.equal(await w.gh.post(`${w.farm.url}/forge/webhook`, headers(forged), payload), 401);
    assert.equal(await w.gh.post(`${w.farm.url}/forge/webhook`, headers(null), payload), 401);
    // mallory (read access) approves, signed by the forge: seen, and not an approval.
    await w
      .as(MALLORY_TOKEN)
      .rest.pulls.createReview({ owner: "acme", repo: "widgets", pull_number: pr.number, commit_id: head, event: "APPROVE", body: "lgtm" });
    await w.gh.deliveriesIdle();
    await sleep(2_500); // two polling rounds and held-merge retries
    assert.equal(w.farm.services.state.projection.tasks.get("t-held")!.approvals, undefined);
    assert.equal((await taskOf(w, "t-held")).state, "held");
    assert.equal(w.main(), before);
    assert.ok(!w.gh.requests.some((r) => r.operationId === "pulls/merge"), "no merge was even tried");

    // alice (write access) approves the head: the signed delivery brings it, and the task merges.
    const { data: review } = await w.as(ALICE_TOKEN).rest.pulls.createReview({
      owner: "acme",
      repo: "widgets",
      pull_number: pr.number,
      commit_id: head,
      event: "APPROVE",
      body: "Approved.",
    });
    const task = await merged(w, "t-held", 60_000);
    assert.equal(task.state, "completed");
    assert.deepEqual(
      w.farm.services.state.projection.tasks.get("t-held")!.approvals!.map((a) => [a.by, a.head, a.forgeEvent]),
      [["github:alice", head, `review:${review.id}`]],
    );
    assert.ok(w.journal.some((e) => e.type === "task_approved" && e.actor === "github:alice"));
    assert.ok(w.gh.deliveries.some((d) => d.event === "pull_request_review" && d.status === 202));
    assert.equal(w.main(), task.merge!.commit);
    assert.equal(w.origin.git("widgets", ["rev-parse", `${task.merge!.commit}^1`]).trim(), before);
    assert.ok(w.gh.git.isAncestor(head, task.merge!.commit!));
    assert.equal(w.gh.pulls[0]!.mergeCommitSha, task.merge!.commit);
  },
);

test(
  "a changes-requested review on the pull request becomes a new unit whose prompt carries the comments; the task merges with it",
  { timeout: 180_000 },
  async (t) => {
    const NAMED = "export function add(a, b) {\n  const sum = a + b;\n  return sum;\n}\n";
    const w = await world(t, { files: (unitId) => ({ "src/add.js": unitId.startsWith("pr-") ? NAMED : FIX }) });
    let ciOpen = false;
    w.ci.judge = () => (ciOpen ? { conclusion: "success", title: "tests passed", summary: "all passed" } : null);
    await w.client.tasks.create.mutate({
      id: "t-review",
      title: "Make add add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    // Green and approved by its review unit, but the required check has not reported: held by the forge.
    const held = await waitFor(
      async () => {
        const t = await taskOf(w, "t-review");
        return t.state === "held" ? t : null;
      },
      "t-review held",
      90_000,
      100,
    );
    assert.match(held.merge!.heldReason!, /required check 'ci\/test' has not reported/);
    const pr = w.gh.pulls[0]!;
    const { data: review } = await w.as(ALICE_TOKEN).rest.pulls.createReview({
      owner: "acme",
      repo: "widgets",
      pull_number: pr.number,
      commit_id: w.gh.headSha(pr),
      event: "REQUEST_CHANGES",
      body: "Please name the result.",
      comments: [{ path: "src/add.js", line: 2, side: "RIGHT", body: "Name the sum." }],
    });
    const lease = await waitFor(
      () => w.leases.find((l) => l.taskId === "t-review" && l.unitId === `pr-${review.id}`),
      "the new unit leased",
      60_000,
    );
    const prompt = lease.feedback.join("\n");
    assert.match(prompt, /changes requested by alice on pull request #1: Please name the result\./);
    assert.match(prompt, /src\/add\.js:2: Name the sum\./);
    const added = await w.client.units.get.query({ taskId: "t-review", unitId: `pr-${review.id}` });
    assert.deepEqual(added.spec.files, ["src/add.js"]);
    assert.ok(w.journal.some((e) => e.type === "units_added" && e.actor === "github:alice"));

    await waitFor(
      async () => (await w.client.units.get.query({ taskId: "t-review", unitId: `pr-${review.id}` })).state === "merged",
      "the new unit merged",
      60_000,
    );
    ciOpen = true;
    const task = await merged(w, "t-review");
    assert.equal(show(w, "main", "src/add.js"), NAMED);
    assert.equal(w.main(), task.merge!.commit);
    assert.equal(w.gh.pulls.length, 1, "the same pull request, updated");
  },
);

test(
  "a failing required check of the team's CI blocks the merge and feeds the next unit; green again, the task merges",
  { timeout: 180_000 },
  async (t) => {
    // The team's CI is stricter than the farm's evals: add must also take numbers given as text.
    const COERCE = "export function add(a, b) {\n  return Number(a) + Number(b);\n}\n";
    const w = await world(t, { files: (unitId) => ({ "src/add.js": unitId.startsWith("ci-") ? COERCE : FIX }) });
    w.ci.judge = (head) =>
      show(w, head, "src/add.js").includes("Number(")
        ? { conclusion: "success", title: "tests passed", summary: "add('2', 3) is 5" }
        : { conclusion: "failure", title: "1 test failed", summary: "add('2', 3) returned '23', expected 5" };
    const before = w.main();
    await w.client.tasks.create.mutate({
      id: "t-ci",
      title: "Make add add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    const lease = await waitFor(
      () => w.leases.find((l) => l.taskId === "t-ci" && l.unitId.startsWith("ci-")),
      "a unit for the failing check",
      90_000,
    );
    const run = w.gh.checkRuns.find((c) => c.name === "ci/test" && c.conclusion === "failure")!;
    assert.equal(lease.unitId, `ci-${run.id}`);
    const prompt = lease.feedback.join("\n");
    assert.match(prompt, /required check 'ci\/test' failed on [0-9a-f]{10}: 1 test failed/);
    assert.match(prompt, /add\('2', 3\) returned '23', expected 5/);
    // Blocked meanwhile: held with the check's failure, and main did not move.
    assert.ok(
      w.journal.some((e) => e.type === "task_merge_held" && /required check 'ci\/test' failed/.test(e.data.reason)),
      "held while the check failed",
    );
    assert.equal(w.main(), before);

    const task = await merged(w, "t-ci");
    assert.equal(show(w, "main", "src/add.js"), COERCE);
    const mergedHead = w.gh.pulls[0]!.frozenHeadSha!;
    assert.ok(w.gh.checkRuns.some((c) => c.name === "ci/test" && c.headSha === mergedHead && c.conclusion === "success"));
    assert.deepEqual(
      w.gh.requests.filter((r) => r.operationId === "pulls/merge").map((r) => r.status),
      [200],
      "the farm never asked to merge a failing change",
    );
    assert.equal(task.merge!.commit, w.main());
  },
);

test("a pull request closed by a person cancels its task, with who closed it", { timeout: 120_000 }, async (t) => {
  const w = await world(t);
  w.ci.judge = () => null; // the merge waits for the team's CI, which does not report
  await w.client.tasks.create.mutate({
    id: "t-close",
    title: "Make add add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
  });
  await waitFor(async () => (await taskOf(w, "t-close")).state === "held", "t-close held", 90_000, 100);
  const before = w.main();
  await w.as(ALICE_TOKEN).rest.pulls.update({ owner: "acme", repo: "widgets", pull_number: 1, state: "closed" });
  const task = await waitFor(
    async () => {
      const t = await taskOf(w, "t-close");
      return t.state === "cancelled" ? t : null;
    },
    "t-close cancelled",
    30_000,
    100,
  );
  assert.equal(task.pullRequest?.state, "closed");
  const cancelled = w.journal.find((e) => e.type === "task_cancelled");
  assert.equal(cancelled?.actor, "github:alice");
  assert.equal(cancelled?.type === "task_cancelled" && cancelled.data.reason, "pull request #1 closed by alice");
  assert.equal(w.main(), before);
});

test(
  "`optimus approve <task>` approves the held change in the pull request, recorded with who; a protected path needs the approver right, which a forge approval gives",
  { timeout: 240_000 },
  async (t) => {
    const WORKFLOW = "name: ci\non: [push]\n";
    const w = await world(t, {
      review: () => ({ ...APPROVE, risk: "medium", summary: "worth a look" }),
      files: (unitId): Record<string, string> =>
        unitId === "guard" ? { "src/add.js": FIX, ".github/workflows/ci.yml": WORKFLOW } : { "src/add.js": FIX },
    });
    const bob = await tokenFor(w.farm.url, w.admin, "editor", "bob");
    const cli = (...args: string[]) => runCli(args, { cwd: tmpdir(), env: { OPTIMUS_FARM: w.farm.url, OPTIMUS_TOKEN: bob } });
    const heldTask = (taskId: string) =>
      waitFor(
        async () => {
          const t = await taskOf(w, taskId);
          return t.state === "held" && /^waiting for approval/.test(t.merge?.heldReason ?? "") ? t : null;
        },
        `${taskId} waiting for approval`,
        90_000,
        100,
      );

    await w.client.tasks.create.mutate({
      id: "t-cli",
      title: "Make add add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    await heldTask("t-cli");
    const approved = await cli("approve", "t-cli");
    assert.equal(approved.code, 0, approved.stderr);
    const first = await merged(w, "t-cli", 60_000);
    const approvals = w.farm.services.state.projection.tasks.get("t-cli")!.approvals!;
    assert.deepEqual(
      approvals.map((a) => a.by),
      ["editor:bob"],
    );
    assert.ok(w.gh.git.isAncestor(approvals[0]!.head, first.merge!.commit!), "approved as of a head the pull request had");
    assert.equal(w.main(), first.merge!.commit);

    // A change to a protected path: bob's token has no approver right, so his approval is refused.
    await w.client.tasks.create.mutate({
      id: "t-guard",
      title: "Run CI on push",
      units: [{ id: "guard", goal: "ci workflow", files: ["src/add.js", ".github/workflows/ci.yml"] }],
    });
    const held = await heldTask("t-guard");
    assert.match(held.merge!.heldReason!, /touches protected path \.github\/workflows\/ci\.yml/);
    const refused = await cli("approve", "t-guard");
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /protected paths \(\.github\/workflows\/ci\.yml\).*approver right/);
    assert.equal(w.farm.services.state.projection.tasks.get("t-guard")!.approvals, undefined);
    const before = w.main();
    assert.equal(before, first.merge!.commit, "nothing merged");
    // alice, with write access on the forge, approves the pull request's head.
    const pr = w.gh.pulls.find((p) => p.head === "optimus/t-guard")!;
    await w.as(ALICE_TOKEN).rest.pulls.createReview({
      owner: "acme",
      repo: "widgets",
      pull_number: pr.number,
      commit_id: w.gh.headSha(pr),
      event: "APPROVE",
      body: "CI on push is fine.",
    });
    const second = await merged(w, "t-guard", 60_000);
    assert.equal(show(w, "main", ".github/workflows/ci.yml"), WORKFLOW);
    assert.equal(w.origin.git("widgets", ["rev-parse", `${second.merge!.commit}^1`]).trim(), before);
  },
);
