/**
 * The forge layer on GitHub (issue 10, item 5), driven through the real `@octokit/rest` (with its
 * throttling and retry plugins) and `@octokit/webhooks` against the GitHub stand-in, which validates
 * every request, response and webhook against GitHub's official OpenAPI description and keeps its
 * branches in a real git repository. Secrets come through the farm's real secrets layer.
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Octokit } from "@octokit/rest";
import { ForgeConfig, ServerConfig } from "@optimus/shared";
import {
  createForge,
  isForgeError,
  renderPullRequestBody,
  renderReviewBody,
  reviewEventFor,
  type ForgeEvent,
  type ForgeLog,
  type ForgeWiring,
  type IgnoredActivity,
} from "@optimus/farm-server/dist/forge/index.js";
import { SecretResolver } from "@optimus/farm-server/dist/secrets/index.js";
import { GitHubStandin } from "../helpers/github-standin.js";
import { waitFor } from "../helpers/wait.js";
import { GITHUB } from "../helpers/team-fixture.js";

const { FARM_TOKEN, CI_TOKEN, ALICE_TOKEN, MALLORY_TOKEN, HOOK_SECRET, FARM_APP, CI_APP } = GITHUB;

// ---- a real bare git repository, written with plumbing (as the farm's push would leave it) ----

const origins: string[] = [];
process.once("exit", () => {
  for (const d of origins) rmSync(d, { recursive: true, force: true });
});

function bareRepo(): { dir: string; git: (args: string[], env?: Record<string, string>) => string } {
  const dir = mkdtempSync(join(tmpdir(), "optimus-forge-origin-"));
  origins.push(dir);
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_AUTHOR_NAME: "Dev",
    GIT_AUTHOR_EMAIL: "dev@example.com",
    GIT_COMMITTER_NAME: "Dev",
    GIT_COMMITTER_EMAIL: "dev@example.com",
  };
  const git = (args: string[], extra: Record<string, string> = {}) =>
    execFileSync("git", args, { cwd: dir, env: { ...env, ...extra }, stdio: ["pipe", "pipe", "pipe"] })
      .toString()
      .trim();
  git(["init", "-q", "--bare", "-b", "main"]);
  return { dir, git };
}

/** Commits `files` on top of `from` onto `branch` (created or moved with compare-and-swap). */
function commitOn(
  r: ReturnType<typeof bareRepo>,
  branch: string,
  from: string | null,
  files: Record<string, string>,
  message: string,
): string {
  const index = join(r.dir, `index-${process.hrtime.bigint()}`);
  const env = { GIT_INDEX_FILE: index };
  if (from) r.git(["read-tree", from], env);
  else r.git(["read-tree", "--empty"], env);
  for (const [path, text] of Object.entries(files)) {
    const blob = execFileSync("git", ["hash-object", "-w", "--stdin"], { cwd: r.dir, input: text }).toString().trim();
    r.git(["update-index", "--add", "--cacheinfo", `100644,${blob},${path}`], env);
  }
  const tree = r.git(["write-tree"], env);
  rmSync(index, { force: true });
  const sha = r.git(["commit-tree", tree, ...(from ? ["-p", from] : []), "-m", message]);
  const old = tryRev(r, branch);
  r.git(["update-ref", `refs/heads/${branch}`, sha, ...(old ? [old] : [])]);
  return sha;
}

const tryRev = (r: ReturnType<typeof bareRepo>, ref: string): string | undefined => {
  try {
    return r.git(["rev-parse", "--verify", "--quiet", `refs/heads/${ref}`]);
  } catch {
    return undefined;
  }
};

// ---- one world per test: origin, stand-in, the farm's forge, a webhook endpoint ----

interface World {
  origin: ReturnType<typeof bareRepo>;
  gh: GitHubStandin;
  wiring: ForgeWiring;
  events: ForgeEvent[];
  ignored: IgnoredActivity[];
  logs: { level: string; msg: string; obj: object }[];
  hookUrl: string;
  vault: string;
  mainSha: string;
  as: (token: string) => Octokit;
  /** a task's integration branch with one commit, as the farm pushed it */
  pushTask: (branch: string, files?: Record<string, string>) => string;
}

async function world(
  t: { after(fn: () => unknown): void },
  opts: { protect?: boolean; requiredApprovals?: number; pollers?: boolean } = {},
): Promise<World> {
  const origin = bareRepo();
  const mainSha = commitOn(
    origin,
    "main",
    null,
    { "README.md": "# widgets\n", "src/price.ts": "export const price = (n: number) => n * 2;\n".repeat(1) },
    "initial",
  );
  const gh = await new GitHubStandin({
    repoDir: origin.dir,
    owner: "acme",
    name: "widgets",
    users: [
      { login: "acme", type: "Organization", permission: "none" },
      { login: "optimus-farm[bot]", type: "Bot", permission: "write", app: FARM_APP, token: FARM_TOKEN },
      { login: "team-ci[bot]", type: "Bot", permission: "write", app: CI_APP, token: CI_TOKEN },
      { login: "alice", type: "User", permission: "write", token: ALICE_TOKEN, email: "alice@example.com" },
      { login: "mallory", type: "User", permission: "read", token: MALLORY_TOKEN },
    ],
  }).start();
  // Cleanups run in reverse order, each whatever the others did; then, whatever else a test
  // checked, nothing it did may have strayed from GitHub's description.
  const cleanups: (() => unknown)[] = [() => gh.stop()];
  t.after(async () => {
    for (const c of cleanups.reverse())
      await Promise.resolve()
        .then(c)
        .catch((err: unknown) => console.error("cleanup failed:", err));
    if (gh.violations.length) console.error(`GitHub stand-in violations:\n${gh.violations.join("\n")}`);
    gh.assertNoViolations();
  });
  if (opts.protect !== false)
    gh.protect("main", { requiredChecks: [{ context: "ci/test", appId: CI_APP.id }], requiredApprovals: opts.requiredApprovals ?? 0 });

  // The farm's secrets: a file vault outside any repository, read at each use.
  const vault = mkdtempSync(join(tmpdir(), "optimus-forge-vault-"));
  cleanups.push(() => rmSync(vault, { recursive: true, force: true }));
  chmodSync(vault, 0o700);
  mkdirSync(join(vault, "github"), { mode: 0o700 });
  writeFileSync(join(vault, "github", "token"), FARM_TOKEN, { mode: 0o600 });
  writeFileSync(join(vault, "github", "webhook"), HOOK_SECRET, { mode: 0o600 });
  const secrets = new SecretResolver({ vaults: { dev: { provider: "file", dir: vault } } });

  // The configuration as the farm reads it.
  const config = ServerConfig.parse({
    forge: {
      kind: "github",
      repo: "acme/widgets",
      token: "secrets-manager://dev/github/token",
      baseUrl: gh.url,
      mergeMethod: "merge",
      webhookSecret: "secrets-manager://dev/github/webhook",
      pollIntervalMs: 1000,
      maxRetryAfterMs: 3000,
    },
  });
  assert.ok(config.forge);
  const events: ForgeEvent[] = [];
  const ignored: IgnoredActivity[] = [];
  const logs: World["logs"] = [];
  const log: ForgeLog = {
    info: (obj, msg) => logs.push({ level: "info", msg, obj }),
    warn: (obj, msg) => logs.push({ level: "warn", msg, obj }),
    debug: (obj, msg) => logs.push({ level: "debug", msg, obj }),
  };
  const wiring = createForge(
    config.forge,
    secrets,
    { onEvent: (e) => void events.push(e), onIgnored: (i) => void ignored.push(i), pullRequests: () => gh.pulls.map((p) => p.number), log },
    // GitHub's spacing of writes (1 s, 3 s for notifying ones) is the default; the test keeps it short.
    // The stand-in answers a violation of GitHub's description with a 500: fail at once, no retries.
    { minWriteIntervalMs: 10, minNotifyingWriteIntervalMs: 10, mergeabilityPolls: { tries: 10, delayMs: 50 }, serverErrorRetries: 0 },
  );
  assert.ok(wiring.receiver, "a webhook secret is configured, so there is a receiver");
  const server: Server = createServer(wiring.receiver.handler);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    const closed = new Promise<void>((r) => server.close(() => r()));
    server.closeAllConnections();
    return closed;
  });
  const hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/forge/github/webhook`;
  gh.addWebhook(hookUrl, HOOK_SECRET);
  cleanups.push(() => wiring.poller.stop());

  const as = (token: string) => new Octokit({ auth: token, baseUrl: gh.url, userAgent: "optimus-test-person" });
  const pushTask = (branch: string, files: Record<string, string> = { "src/price.ts": "export const price = (n: number) => n * 3;\n" }) =>
    commitOn(origin, branch, mainSha, files, `task: ${branch}`);
  return { origin, gh, wiring, events, ignored, logs, hookUrl, vault, mainSha, as, pushTask };
}

const body = (taskId: string, held?: string[]) =>
  renderPullRequestBody({
    task: { id: taskId, title: "Triple the price", description: "Prices are tripled, not doubled." },
    units: [
      { id: "u1", role: "codegen", state: "merged", goal: "change price()", commit: "abc1234def5678" },
      { id: "u1-review", role: "review", state: "succeeded", goal: "review u1" },
    ],
    evidence: [{ name: "npm test", ok: true, detail: "12 passed" }],
    risk: { level: held ? "high" : "low", reasons: held ?? [] },
    ...(held ? { held } : {}),
    link: `http://127.0.0.1:7420/tasks/${taskId}`,
  });

/** The team's CI reports a check on a commit (as its own GitHub App). */
async function ciReports(w: World, sha: string, conclusion: "success" | "failure", summary: string) {
  const { data } = await w.as(CI_TOKEN).rest.checks.create({
    owner: "acme",
    repo: "widgets",
    name: "ci/test",
    head_sha: sha,
    status: "completed",
    conclusion,
    output: {
      title: conclusion === "success" ? "tests passed" : "2 tests failed",
      summary,
      text: "FAIL src/price.test.ts\n  expected 6, got 9",
    },
  });
  return data;
}

test("the schema: forge settings take secret references, never secrets, and are optional", () => {
  assert.equal(ServerConfig.parse({}).forge, undefined);
  const f = ForgeConfig.parse({ kind: "github", repo: "acme/widgets", token: "secrets-manager://vault/github/token" });
  assert.deepEqual([f.mergeMethod, f.pollIntervalMs], ["merge", 60_000]);
  assert.throws(() => ForgeConfig.parse({ kind: "github", repo: "acme/widgets", token: "ghp_literalToken" }), /secrets-manager/);
  assert.throws(() => ForgeConfig.parse({ kind: "github", repo: "widgets", token: "secrets-manager://v/i/f" }), /owner\/name/);
  assert.throws(() => ForgeConfig.parse({ kind: "gitlab", repo: "acme/widgets", token: "secrets-manager://v/i/f" }));
});

test("a pull request is opened from the integration branch with the task's body, then updated in place", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-100");
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-100", base: "main", title: "Triple the price", body: body("t-100") });
  assert.equal(pr.number, 1);
  assert.equal(pr.state, "open");
  assert.equal(pr.headSha, head);
  assert.equal(pr.base, "main");
  assert.match(pr.url, /\/acme\/widgets\/pull\/1$/);
  const stored = w.gh.pulls[0]!;
  assert.equal(stored.user.login, "optimus-farm[bot]");
  for (const part of [
    "t-100",
    "Triple the price",
    "`u1`",
    "codegen",
    "`u1-review`",
    "npm test",
    "12 passed",
    "Risk: low",
    "http://127.0.0.1:7420/tasks/t-100",
  ])
    assert.ok(stored.body?.includes(part), `the body names ${part}`);

  // Units merge: the same pull request is updated, no second one.
  const again = await forge.openOrUpdatePullRequest({
    head: "optimus/t-100",
    base: "main",
    title: "Triple the price (2 units)",
    body: body("t-100", ["touches protected path .github/workflows/ci.yml"]),
  });
  assert.equal(again.number, 1);
  assert.equal(w.gh.pulls.length, 1);
  assert.equal(w.gh.pulls[0]!.title, "Triple the price (2 units)");
  assert.ok(w.gh.pulls[0]!.body?.includes("Held for a person"));
  assert.deepEqual(await forge.getPullRequest(1), { ...again });
  const ops = w.gh.requests.map((r) => `${r.operationId} ${r.status}`);
  assert.deepEqual(ops, ["pulls/list 200", "pulls/create 201", "pulls/list 200", "pulls/update 200", "pulls/get 200"]);
  w.gh.assertNoViolations();
});

test("each eval is a check run on the evaluated commit: queued, in progress, completed with its summary", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-101");
  const { forge } = w.wiring;
  await forge.openOrUpdatePullRequest({ head: "optimus/t-101", base: "main", title: "t-101", body: body("t-101") });
  const tests = await forge.reportCheck({ sha: head, name: "npm test", status: "queued", externalId: "t-101/u1/1/npm test" });
  await forge.reportCheck({ id: tests.id, sha: head, name: "npm test", status: "in_progress", title: "running", summary: "started" });
  await forge.reportCheck({
    id: tests.id,
    sha: head,
    name: "npm test",
    status: "completed",
    conclusion: "success",
    title: "12 passed",
    summary: "All 12 tests passed.",
    text: "ok 1 - price\nok 2 - tax",
  });
  const lint = await forge.reportCheck({
    sha: head,
    name: "lint",
    status: "completed",
    conclusion: "failure",
    title: "1 problem",
    summary: "src/price.ts:1 no-magic-numbers",
    detailsUrl: "http://127.0.0.1:7420/tasks/t-101",
  });
  assert.notEqual(tests.id, lint.id);
  assert.match(tests.url, /\/runs\/\d+$/);
  const runs = w.gh.checkRuns.filter((c) => c.app.id === FARM_APP.id);
  assert.deepEqual(
    runs.map((c) => [c.name, c.headSha, c.status, c.conclusion, c.output.summary, c.externalId]),
    [
      ["optimus/npm test", head, "completed", "success", "All 12 tests passed.", "optimus:t-101/u1/1/npm test"],
      ["optimus/lint", head, "completed", "failure", "src/price.ts:1 no-magic-numbers", "optimus:lint"],
    ],
  );
  assert.equal(runs[0]!.output.text, "ok 1 - price\nok 2 - tax");
  await assert.rejects(forge.reportCheck({ sha: head, name: "x", status: "completed" }), (e) => isForgeError(e, "invalid"));
  w.gh.assertNoViolations();
});

test("the review unit's verdict is a pull-request review with line comments", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-102", {
    "src/price.ts": "export const price = (n: number) => n * 3;\nexport const tax = (n: number) => n * 0.2;\n",
  });
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-102", base: "main", title: "t-102", body: body("t-102") });
  const verdict = { verdict: "request_changes" as const, risk: "medium", summary: "tax() needs a named rate." };
  const posted = await forge.postReview({
    pullNumber: pr.number,
    commitSha: head,
    event: reviewEventFor(verdict.verdict),
    body: renderReviewBody(verdict),
    comments: [
      { path: "src/price.ts", line: 2, body: "Name the rate: TAX_RATE." },
      { path: "src/price.ts", line: 1, body: "3 deserves a name too." },
    ],
  });
  // The farm opened the pull request, and GitHub lets no author request changes on their own:
  // the verdict is posted as a comment review that states it, with its line comments.
  assert.equal(posted.postedAs, "COMMENT");
  const review = w.gh.reviews.find((r) => r.id === posted.id)!;
  assert.equal(review.state, "COMMENTED");
  assert.equal(review.user.login, "optimus-farm[bot]");
  assert.equal(review.commitId, head);
  assert.match(review.body, /changes requested \(risk medium\)[\s\S]*tax\(\) needs a named rate[\s\S]*Verdict: request changes/);
  const comments = w.gh.comments.filter((c) => c.reviewId === posted.id);
  assert.deepEqual(
    comments.map((c) => [c.path, c.line, c.body]),
    [
      ["src/price.ts", 2, "Name the rate: TAX_RATE."],
      ["src/price.ts", 1, "3 deserves a name too."],
    ],
  );
  assert.match(comments[0]!.diffHunk, /^@@ .* @@\n[\s\S]*\+export const tax/);
  assert.equal(
    w.gh.requests
      .filter((r) => r.operationId === "pulls/create-review")
      .map((r) => r.status)
      .join(","),
    "422,200",
  );

  // A comment on a line outside the change is kept, in the review's body.
  const outside = await forge.postReview({
    pullNumber: pr.number,
    commitSha: head,
    event: "COMMENT",
    body: renderReviewBody({ verdict: "approve", risk: "low", summary: "fine" }),
    comments: [{ path: "README.md", line: 1, body: "typo in the title" }],
  });
  const r2 = w.gh.reviews.find((r) => r.id === outside.id)!;
  assert.match(r2.body, /`README.md:1`: typo in the title/);
  assert.equal(w.gh.comments.filter((c) => c.reviewId === outside.id).length, 0);
  w.gh.assertNoViolations();
});

test("a low-risk green pull request is merged through the API: the base branch advances by exactly that merge", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-103");
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-103", base: "main", title: "t-103", body: body("t-103") });
  await forge.reportCheck({ sha: head, name: "npm test", status: "completed", conclusion: "success", title: "ok", summary: "12 passed" });
  let ready = await forge.mergeReadiness(pr.number);
  assert.equal(ready.ready, false);
  assert.deepEqual(ready.requiredChecks, [{ name: "ci/test", state: "missing" }]);
  assert.match(ready.why.join("; "), /required check 'ci\/test' has not reported/);
  await ciReports(w, head, "success", "all green");
  ready = await forge.mergeReadiness(pr.number);
  assert.deepEqual(
    [ready.ready, ready.mergeable, ready.mergeableState, ready.requiredChecksState, ready.headSha],
    [true, true, "clean", "success", head],
  );
  // GitHub computes mergeability in the background: the first read after the change saw null.
  const gets = w.gh.requests.filter((r) => r.operationId === "pulls/get").length;
  assert.ok(gets >= 3, `mergeability was polled until computed (${gets} reads)`);

  const before = w.origin.git(["rev-parse", "refs/heads/main"]);
  assert.equal(before, w.mainSha);
  const merged = await forge.merge({ pullNumber: pr.number, expectedHeadSha: head });
  const after = w.origin.git(["rev-parse", "refs/heads/main"]);
  assert.equal(merged.sha, after);
  assert.equal(merged.method, "merge");
  // Exactly that merge: one merge commit whose parents are the old tip and the evaluated head.
  assert.equal(w.origin.git(["rev-parse", `${after}^1`]), before);
  assert.equal(w.origin.git(["rev-parse", `${after}^2`]), head);
  assert.deepEqual(w.origin.git(["rev-list", `${before}..${after}`]).split("\n"), [after, head]);
  assert.match(w.origin.git(["log", "-1", "--format=%s", after]), /^Merge pull request #1 from acme\/optimus\/t-103$/);
  assert.equal(w.origin.git(["show", `${after}:src/price.ts`]), "export const price = (n: number) => n * 3;");
  assert.equal((await forge.getPullRequest(pr.number)).state, "merged");
  assert.equal(w.gh.requests.filter((r) => r.operationId === "pulls/merge").length, 1);

  // The integration branch is deleted once merged; deleting it again is not an error.
  await forge.deleteBranch("optimus/t-103");
  assert.equal(tryRev(w.origin, "optimus/t-103"), undefined);
  await forge.deleteBranch("optimus/t-103");
  w.gh.assertNoViolations();
});

test("the forge refuses: 405 while a required check fails, 409 for a stale head; each a clear error that changes nothing", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-104");
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-104", base: "main", title: "t-104", body: body("t-104") });
  await ciReports(w, head, "failure", "2 of 12 tests failed: price triples");
  const ready = await forge.mergeReadiness(pr.number);
  assert.equal(ready.ready, false);
  assert.equal(ready.requiredChecksState, "failure");
  assert.equal(ready.mergeableState, "blocked");
  assert.match(ready.why.join("; "), /required check 'ci\/test' failed: 2 tests failed/);

  const snapshot = () => [w.origin.git(["for-each-ref", "--format=%(refname) %(objectname)"]), JSON.stringify(w.gh.pulls)];
  const before = snapshot();
  await assert.rejects(forge.merge({ pullNumber: pr.number, expectedHeadSha: head }), (e: unknown) => {
    assert.ok(isForgeError(e, "merge_refused"), String(e));
    assert.equal(e.detail.status, 405);
    assert.match(e.message, /refused to merge pull request #1: Required status check "ci\/test" is failing/);
    assert.ok(e.detail.requestId, "the forge's request id is kept");
    return true;
  });
  assert.deepEqual(snapshot(), before, "nothing changed");

  // The team's CI goes green, but someone pushed to the branch after the evaluation: 409.
  await ciReports(w, head, "success", "green");
  const pushed = commitOn(w.origin, "optimus/t-104", head, { "src/other.ts": "export {};\n" }, "someone else's commit");
  const before2 = snapshot();
  await assert.rejects(forge.merge({ pullNumber: pr.number, expectedHeadSha: head }), (e: unknown) => {
    assert.ok(isForgeError(e, "head_moved"), String(e));
    assert.equal(e.detail.status, 409);
    assert.match(e.message, new RegExp(`its head is no longer ${head.slice(0, 12)}, the version evaluated`));
    return true;
  });
  assert.deepEqual(snapshot(), before2, "nothing changed");
  assert.equal(w.origin.git(["rev-parse", "refs/heads/main"]), w.mainSha);
  assert.equal(w.origin.git(["rev-parse", "refs/heads/optimus/t-104"]), pushed);
  assert.equal((await forge.getPullRequest(pr.number)).state, "open");
  // 405 and 409 are the forge's word: never retried.
  assert.equal(w.gh.requests.filter((r) => r.operationId === "pulls/merge").length, 2);
  w.gh.assertNoViolations();
});

test("a held pull request is approved by a signed webhook from a user with write access, not by one without", async (t) => {
  const w = await world(t, { requiredApprovals: 1 });
  const head = w.pushTask("optimus/t-105");
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({
    head: "optimus/t-105",
    base: "main",
    title: "t-105",
    body: body("t-105", ["the reviewer rates it high risk"]),
  });
  await ciReports(w, head, "success", "green");
  await assert.rejects(
    forge.merge({ pullNumber: pr.number, expectedHeadSha: head }),
    (e: unknown) => isForgeError(e, "merge_refused") && /approving review is required/.test(e.message),
  );

  // mallory (read access) approves: the delivery is verified, and not taken as an approval.
  await w
    .as(MALLORY_TOKEN)
    .rest.pulls.createReview({ owner: "acme", repo: "widgets", pull_number: pr.number, commit_id: head, event: "APPROVE", body: "lgtm" });
  await waitFor(() => w.ignored.some((i) => /mallory has no write access/.test(i.why)), "mallory's approval to be seen and not acted on");
  assert.equal(w.events.filter((e) => e.kind === "approved").length, 0);

  // alice (write access) approves: a domain approval naming her, on the evaluated version.
  const { data: review } = await w.as(ALICE_TOKEN).rest.pulls.createReview({
    owner: "acme",
    repo: "widgets",
    pull_number: pr.number,
    commit_id: head,
    event: "APPROVE",
    body: "Approved for release.",
  });
  const approval = await waitFor(() => w.events.find((e) => e.kind === "approved"), "alice's approval");
  assert.deepEqual(approval, {
    kind: "approved",
    id: `review:${review.id}`,
    pullNumber: pr.number,
    by: "alice",
    reviewId: review.id,
    commitSha: head,
    at: approval.at,
  });
  const delivery = w.gh.deliveries.find((d) => d.event === "pull_request_review" && d.status !== null && d.action === "submitted");
  assert.equal(delivery?.status, 202);

  // Approved: the held change merges.
  const merged = await forge.merge({ pullNumber: pr.number, expectedHeadSha: approval.commitSha });
  assert.equal(w.origin.git(["rev-parse", "refs/heads/main"]), merged.sha);
  w.gh.assertNoViolations();
});

test("a changes-requested review becomes 'changes requested' with its comments; a failing required check and a close by a person become events", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-106", {
    "src/price.ts": "export const price = (n: number) => n * 3;\nexport const tax = (n: number) => n * 0.2;\n",
  });
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-106", base: "main", title: "t-106", body: body("t-106") });

  // The farm's own failing check and its own review are never feedback.
  await forge.reportCheck({
    sha: head,
    name: "lint",
    status: "completed",
    conclusion: "failure",
    title: "1 problem",
    summary: "farm lint",
  });
  await forge.postReview({
    pullNumber: pr.number,
    commitSha: head,
    event: "COMMENT",
    body: renderReviewBody({ verdict: "approve", risk: "low", summary: "ok" }),
    comments: [],
  });

  const { data: review } = await w.as(ALICE_TOKEN).rest.pulls.createReview({
    owner: "acme",
    repo: "widgets",
    pull_number: pr.number,
    commit_id: head,
    event: "REQUEST_CHANGES",
    body: "Please name the tax rate.",
    comments: [{ path: "src/price.ts", line: 2, side: "RIGHT", body: "Use a TAX_RATE constant here." }],
  });
  const changes = await waitFor(() => w.events.find((e) => e.kind === "changes_requested"), "the change request");
  assert.deepEqual(changes, {
    kind: "changes_requested",
    id: `review:${review.id}`,
    pullNumber: pr.number,
    by: "alice",
    reviewId: review.id,
    commitSha: head,
    body: "Please name the tax rate.",
    comments: [{ path: "src/price.ts", line: 2, body: "Use a TAX_RATE constant here." }],
    at: changes.at,
  });

  const run = await ciReports(w, head, "failure", "2 of 12 tests failed: price triples");
  const failed = await waitFor(() => w.events.find((e) => e.kind === "check_failed"), "the failing required check");
  assert.deepEqual(failed, {
    kind: "check_failed",
    id: `check:${run.id}`,
    pullNumbers: [pr.number],
    sha: head,
    name: "ci/test",
    checkRunId: run.id,
    conclusion: "failure",
    required: true,
    title: "2 tests failed",
    summary: "2 of 12 tests failed: price triples",
    text: "FAIL src/price.test.ts\n  expected 6, got 9",
    url: run.html_url,
    at: failed.at,
  });

  await w.as(ALICE_TOKEN).rest.pulls.update({ owner: "acme", repo: "widgets", pull_number: pr.number, state: "closed" });
  const closed = await waitFor(() => w.events.find((e) => e.kind === "closed"), "the close");
  assert.deepEqual(closed, { kind: "closed", id: `closed:${pr.number}`, pullNumber: pr.number, by: "alice", byBot: false, at: closed.at });
  await w.gh.deliveriesIdle();
  await w.wiring.receiver!.idle();
  // Each once, whatever the number of deliveries (a review's line comment has its own delivery).
  assert.deepEqual(w.events.map((e) => e.kind).sort(), ["changes_requested", "check_failed", "closed"]);
  assert.ok(w.gh.deliveries.some((d) => d.event === "pull_request_review_comment"));
  assert.ok(w.gh.deliveries.some((d) => d.event === "check_suite"));
  assert.ok(
    w.gh.deliveries.every((d) => d.status === 202),
    JSON.stringify(w.gh.deliveries),
  );
  w.gh.assertNoViolations();
});

test("the poller derives the same events as the webhooks", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-107", {
    "src/price.ts": "export const price = (n: number) => n * 3;\nexport const tax = (n: number) => n * 0.2;\n",
  });
  const { forge } = w.wiring;
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-107", base: "main", title: "t-107", body: body("t-107") });
  await w
    .as(MALLORY_TOKEN)
    .rest.pulls.createReview({ owner: "acme", repo: "widgets", pull_number: pr.number, commit_id: head, event: "APPROVE", body: "lgtm" });
  await w.as(ALICE_TOKEN).rest.pulls.createReview({
    owner: "acme",
    repo: "widgets",
    pull_number: pr.number,
    commit_id: head,
    event: "REQUEST_CHANGES",
    body: "Name it.",
    comments: [{ path: "src/price.ts", line: 2, side: "RIGHT", body: "TAX_RATE" }],
  });
  await w.as(ALICE_TOKEN).rest.pulls.createReview({
    owner: "acme",
    repo: "widgets",
    pull_number: pr.number,
    commit_id: head,
    event: "COMMENT",
    body: "",
    comments: [{ path: "src/price.ts", line: 1, side: "RIGHT", body: "and this 3" }],
  });
  await w
    .as(ALICE_TOKEN)
    .rest.pulls.createReview({ owner: "acme", repo: "widgets", pull_number: pr.number, commit_id: head, event: "APPROVE", body: "ok now" });
  await ciReports(w, head, "failure", "tests failed");
  await w.as(ALICE_TOKEN).rest.pulls.update({ owner: "acme", repo: "widgets", pull_number: pr.number, state: "closed" });
  await waitFor(() => w.events.some((e) => e.kind === "closed"), "the webhooks' events");
  await w.gh.deliveriesIdle();
  await w.wiring.receiver!.idle();
  const byWebhook = [...w.events].sort((a, b) => a.id.localeCompare(b.id));
  assert.deepEqual(byWebhook.map((e) => e.kind).sort(), ["approved", "changes_requested", "check_failed", "closed", "commented"]);

  // A farm that missed every delivery: a poller with its own gate finds the same events.
  const polled: ForgeEvent[] = [];
  const { ForgePoller } = await import("@optimus/farm-server/dist/forge/index.js");
  const poller = new ForgePoller({ forge, pullRequests: () => [pr.number], onEvent: (e) => void polled.push(e), intervalMs: 1000 });
  const fresh = await poller.pollOnce();
  assert.deepEqual(fresh, polled);
  assert.deepEqual(
    [...polled].sort((a, b) => a.id.localeCompare(b.id)),
    byWebhook,
  );
  assert.deepEqual(await poller.pollOnce(), [], "each event once");

  // The farm's own poller shares the webhook receiver's gate: it acts on nothing twice.
  assert.deepEqual(await w.wiring.poller.pollOnce(), []);
  w.gh.assertNoViolations();
});

test("a webhook with a bad or missing signature is refused and changes nothing", async (t) => {
  const w = await world(t);
  const payload = JSON.stringify({
    action: "closed",
    number: 1,
    pull_request: { number: 1, merged: false, closed_at: null },
    repository: { full_name: "acme/widgets" },
    sender: { login: "alice", type: "User" },
  });
  const { createHmac } = await import("node:crypto");
  const sign = (secret: string, raw: string) => `sha256=${createHmac("sha256", secret).update(raw).digest("hex")}`;
  const headers = (sig?: string) => ({
    "content-type": "application/json",
    "user-agent": "GitHub-Hookshot/x",
    "x-github-event": "pull_request",
    "x-github-delivery": "d-1",
    ...(sig ? { "x-hub-signature-256": sig } : {}),
  });
  assert.equal(await w.gh.post(w.hookUrl, headers(sign("not-the-secret", payload)), payload), 401);
  assert.equal(await w.gh.post(w.hookUrl, headers(), payload), 401);
  assert.equal(
    await w.gh.post(w.hookUrl, headers(sign(HOOK_SECRET, payload)), payload.replace("alice", "mallo")),
    401,
    "a tampered payload",
  );
  assert.equal(await w.gh.post(w.hookUrl, headers("sha256=zz"), payload), 401);
  await assert.rejects(
    w.wiring.receiver!.receive({ id: "d-2", name: "pull_request", signature: sign("wrong", payload), payload }),
    /signature does not match/,
  );
  assert.deepEqual(w.events, []);
  assert.ok(w.logs.some((l) => l.level === "warn" && /webhook refused/.test(l.msg)));
  // The right signature is accepted (the same delivery, signed with the secret).
  assert.equal(await w.gh.post(w.hookUrl, { ...headers(sign(HOOK_SECRET, payload)), "x-github-event": "ping" }, payload), 202);
});

test("secondary and primary rate limits are waited out (retry-after honoured, logged), and one over the cap is a clear error", async (t) => {
  const w = await world(t);
  w.pushTask("optimus/t-108");
  const { forge } = w.wiring;
  w.gh.scriptLimit({ operationId: "pulls/create", kind: "secondary", status: 403, retryAfterSeconds: 1 });
  const t0 = Date.now();
  const pr = await forge.openOrUpdatePullRequest({ head: "optimus/t-108", base: "main", title: "t-108", body: body("t-108") });
  const took = Date.now() - t0;
  assert.equal(pr.number, 1);
  assert.ok(took >= 1000, `waited out retry-after: 1 (took ${took} ms)`);
  assert.deepEqual(
    w.gh.requests.filter((r) => r.operationId === "pulls/create").map((r) => r.status),
    [403, 201],
  );
  assert.equal(w.gh.pulls.length, 1, "the retried create made one pull request");
  assert.ok(w.logs.some((l) => l.level === "warn" && /secondary rate limit: waiting 1000 ms/.test(l.msg)));

  w.gh.scriptLimit({ operationId: "pulls/get", kind: "secondary", status: 429, retryAfterSeconds: 1 });
  assert.equal((await forge.getPullRequest(1)).number, 1);
  w.gh.scriptLimit({ operationId: "pulls/get", kind: "primary", retryAfterSeconds: 1 });
  assert.equal((await forge.getPullRequest(1)).number, 1);
  assert.ok(w.logs.some((l) => l.level === "warn" && /primary rate limit: waiting/.test(l.msg)));
  assert.deepEqual(
    w.gh.requests.filter((r) => r.operationId === "pulls/get").map((r) => r.status),
    [429, 200, 403, 200],
  );

  // A retry-after past the configured cap (3 s) is not waited out: a rate_limited error, at once.
  w.gh.scriptLimit({ operationId: "pulls/get", kind: "secondary", retryAfterSeconds: 30 });
  const t1 = Date.now();
  await assert.rejects(forge.getPullRequest(1), (e: unknown) => isForgeError(e, "rate_limited") && e.detail.retryAfterMs === 30_000);
  assert.ok(Date.now() - t1 < 2000);
  w.gh.assertNoViolations();
});

test("the token is resolved at each call: a rotated token takes effect on the next one, a revoked one fails clearly", async (t) => {
  const w = await world(t);
  w.pushTask("optimus/t-109");
  const { forge } = w.wiring;
  await forge.openOrUpdatePullRequest({ head: "optimus/t-109", base: "main", title: "t-109", body: body("t-109") });
  const rotated = "ghs_farmInstallationToken0000000000000002";
  w.gh.tokens.set(rotated, "optimus-farm[bot]");
  w.gh.tokens.delete(FARM_TOKEN);
  writeFileSync(join(w.vault, "github", "token"), rotated, { mode: 0o600 });
  assert.equal((await forge.getPullRequest(1)).number, 1);
  w.gh.tokens.delete(rotated);
  await assert.rejects(
    forge.getPullRequest(1),
    (e: unknown) => isForgeError(e, "unauthorized") && /Bad credentials/.test(e.message) && !e.message.includes(rotated),
  );
  rmSync(join(w.vault, "github", "token"));
  await assert.rejects(
    forge.getPullRequest(1),
    (e: unknown) => isForgeError(e, "unauthorized") && /token could not be read/.test(e.message),
  );
  w.gh.assertNoViolations();
});

test("the stand-in itself: what GitHub's description does not allow is a violation, in a request, a response or a webhook", async (t) => {
  const w = await world(t);
  const head = w.pushTask("optimus/t-110");
  const ci = w.as(CI_TOKEN);
  // A request the description refuses (an unknown status) is answered 422 and recorded.
  await assert.rejects(
    ci.request("POST /repos/{owner}/{repo}/check-runs", {
      owner: "acme",
      repo: "widgets",
      name: "ci/test",
      head_sha: head,
      status: "done" as never,
    }),
    (e: { status?: number }) => e.status === 422,
  );
  assert.equal(w.gh.violations.length, 1);
  assert.match(w.gh.violations[0]!, /checks\/create.*request body\/status must be equal to one of the allowed values/);
  // An operation GitHub does not have.
  await assert.rejects(
    ci.request("GET /repos/{owner}/{repo}/no-such-thing", { owner: "acme", repo: "widgets" }),
    (e: { status?: number }) => e.status === 404,
  );
  assert.match(w.gh.violations[1]!, /no operation of GitHub's description matches/);
  // A response or a webhook payload that strays from the description is caught by the same judge.
  const m = w.gh.judge.match("GET", "/repos/acme/widgets/pulls/1")!;
  assert.equal(m.op.operationId, "pulls/get");
  const headers = {
    "content-type": "application/json",
    "x-github-request-id": "1",
    "x-ratelimit-limit": "5000",
    "x-ratelimit-remaining": "4999",
    "x-ratelimit-reset": "1",
    "x-ratelimit-used": "1",
    "x-ratelimit-resource": "core",
    "x-github-api-version-selected": "2022-11-28",
  };
  assert.match(w.gh.judge.validateResponse(m, 200, headers, { number: "1" }).join("\n"), /must have required property '_links'/);
  assert.match(w.gh.judge.validateResponse(m, 418, headers, {}).join("\n"), /status 418 is not a response the description defines/);
  assert.match(
    w.gh.judge.validateWebhook("pull-request-closed", {}, { action: "closed" }).join("\n"),
    /header 'X-Hub-Signature-256' missing[\s\S]*required property 'pull_request'/i,
  );
  assert.match(w.gh.judge.version, /^3\.0\.3 /);
  w.gh.violations.length = 0;
});
