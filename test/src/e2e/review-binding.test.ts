/**
 * Issue 16, the farm's side: a person's decision binds to the version of the change they saw; the
 * farm offers and accepts only what the lifecycle table allows; a reviewer that keeps asking for
 * changes ends with a person, not a loop. Real farm, real git, real tRPC clients and the real CLI.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createFarmClient, errorCode, filesDirFor, type Lease } from "@optimus/farm-server";
import { availableActions, type FarmEvent, type ReviewVerdict, type ViewsMessage } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { seenVersion } from "../helpers/decisions.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { startOpenAiStandin } from "../helpers/openai-standin.js";
import { CliProcess } from "../helpers/processes.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { startTestFarm } from "../helpers/test-farm.js";

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
const FIX2 = "export function add(left, right) {\n  return left + right;\n}\n";
type Ctx = { base?: { branch: string } };

/** The refusal of a stale decision: 409, the sentence, and the current version in `data.stale`. */
function assertStale(err: unknown, current: { attempt: number; head: string }, message: RegExp): void {
  assert.equal(errorCode(err), "CONFLICT", String(err));
  assert.match((err as Error).message, message);
  assert.deepEqual((err as { data?: { stale?: unknown } }).data?.stale, { attempt: current.attempt, head: current.head });
}

const journal = async (farm: {
  services: { state: { settle(): Promise<void>; journal: { readAfter(seq: number, n: number): Promise<FarmEvent[]> } } };
}) => {
  await farm.services.state.settle();
  return farm.services.state.journal.readAfter(0, 100_000);
};

/** The first `views.stream` message (a snapshot), over a real WebSocket. */
async function viewsSnapshot(url: string, token: string): Promise<Extract<ViewsMessage, { kind: "snapshot" }>> {
  const ws = createFarmClient({ url, token, transport: "ws" });
  try {
    return await new Promise((resolve, reject) => {
      const sub = ws.client.views.stream.subscribe(undefined, {
        onData: (env) => {
          sub.unsubscribe();
          const m = env.data as ViewsMessage;
          if (m.kind === "snapshot") resolve(m);
          else reject(new Error(`first message was ${m.kind}`));
        },
        onError: reject,
      });
    });
  } finally {
    ws.close();
  }
}

test(
  "a decision binds to the attempt and commit the person saw: a stale one is refused (409) and journals nothing",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
    const coder = await tokenFor(farm.url, admin, "worker", "coders");
    const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
    // The reviewer approves but rates the change medium risk: the farm holds it for a person.
    const held: ReviewVerdict = { verdict: "approve", risk: "medium", summary: "fine, but look", comments: [] };
    const attempts = new Map<string, number>();
    const agents = await startWorkers(
      farm.url,
      coder,
      [
        { nodeId: "coder", role: "codegen", max: 1 },
        { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
      ],
      newLedger(),
      async (lease: Lease) => {
        if (lease.spec.role === "review") return { outcome: "succeeded", summary: "reviewed", review: held };
        const n = (attempts.get(lease.taskId) ?? 0) + 1;
        attempts.set(lease.taskId, n);
        const base = (lease.context as Ctx).base!.branch;
        const files: Record<string, string> =
          lease.taskId === "drop" ? { ".github/workflows/ci.yml": "on: [push, pull_request]\n" } : { "src/add.js": n === 1 ? FIX : FIX2 };
        return { outcome: "succeeded", summary: `attempt ${n}`, patch: patchFor(repo, base, files) };
      },
    );
    t.after(() => stopAll(agents));
    const alice = httpClientFor(farm.url, (await client.admin.createToken.mutate({ role: "editor", name: "alice", approver: true })).token);
    const bob = httpClientFor(farm.url, await tokenFor(farm.url, admin, "editor", "bob"));
    assert.equal((await alice.me.query()).approver, true, "`me` says whether the caller may approve protected paths");
    assert.equal((await bob.me.query()).approver, false);

    const heldAt = (taskId: string, unitId: string, attempt: number) =>
      waitFor(
        async () => {
          const u = await client.units.get.query({ taskId, unitId });
          return u.state === "awaiting_approval" && u.attempt === attempt ? u : null;
        },
        `${taskId}/${unitId} attempt ${attempt} to be held`,
        60_000,
      );

    await client.tasks.create.mutate({
      id: "fix-add",
      title: "Fix add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"], maxAttempts: 5 }],
    });
    const first = await heldAt("fix-add", "fix", 1);
    assert.deepEqual(
      first.actions,
      ["approve", "reject", "request_changes", "cancel"],
      "held, on a farm without a frontier model: no escalate",
    );
    assert.equal(first.needsApprover, undefined, "src/add.js is not a protected path");
    // Alice opens attempt 1's diff; meanwhile Bob sends it back and attempt 2 arrives.
    const aliceSaw = await seenVersion(alice, "fix-add", "fix");
    assert.deepEqual([aliceSaw.attempt, aliceSaw.head], [1, first.evaluation!.commit]);
    await bob.reviews.requestChanges.mutate({
      ...(await seenVersion(bob, "fix-add", "fix")),
      comments: [{ path: "src/add.js", line: 1, body: "name the parameters" }],
    });
    const second = await heldAt("fix-add", "fix", 2);
    const current = { attempt: 2, head: second.evaluation!.commit };
    assert.notEqual(current.head, aliceSaw.head);
    // The manifest (the farm's copy in its home) is open in someone's editor with local edits: the farm must not rewrite it.
    const manifest = join(filesDirFor(repo), ".optimus", "tasks", "fix-add", "manifest.yaml");
    await waitFor(() => {
      try {
        return /state: awaiting_approval\n\s+attempt: 2\n/.test(readFileSync(manifest, "utf8"));
      } catch {
        return false;
      }
    }, "the manifest to mirror attempt 2");
    await sleep(300); // past the mirror's debounce: the farm's last write is on disk
    const edited = readFileSync(manifest, "utf8") + "# my local note, not saved to git yet\n";
    writeFileSync(manifest, edited);

    const before = (await journal(farm)).length;
    const stale = /^this change was updated to attempt 2 since you opened it \(you reviewed attempt 1\)$/;
    assertStale(await alice.reviews.approve.mutate(aliceSaw).catch((e: unknown) => e), current, stale);
    assertStale(await alice.reviews.reject.mutate({ ...aliceSaw, reason: "no" }).catch((e: unknown) => e), current, stale);
    assertStale(
      await alice.reviews.requestChanges.mutate({ ...aliceSaw, comments: [{ body: "again" }] }).catch((e: unknown) => e),
      current,
      stale,
    );
    // The right attempt with another commit is stale too.
    const wrongHead = { ...current, taskId: "fix-add", unitId: "fix", head: aliceSaw.head };
    assertStale(
      await alice.reviews.approve.mutate(wrongHead).catch((e: unknown) => e),
      current,
      new RegExp(`^this change was updated to attempt 2 since you opened it \\(you reviewed commit ${aliceSaw.head.slice(0, 10)}\\)$`),
    );
    // A version that is not a commit is refused by the input rules.
    assert.equal(errorCode(await alice.reviews.approve.mutate({ ...aliceSaw, head: "HEAD" }).catch((e: unknown) => e)), "BAD_REQUEST");
    assert.equal((await journal(farm)).length, before, "nothing journaled by the refused decisions");
    assert.equal((await client.units.get.query({ taskId: "fix-add", unitId: "fix" })).state, "awaiting_approval");
    assert.match(git(repo, "show", "main:src/add.js"), /a - b/, "nothing merged");

    // Approving the version she now sees merges exactly that commit.
    const approved = await alice.reviews.approve.mutate({ taskId: "fix-add", unitId: "fix", ...current });
    assert.equal(approved.state, "merged");
    assert.deepEqual(approved.actions, []);
    await waitFor(async () => (await client.tasks.get.query({ taskId: "fix-add" })).task.merge?.commit, "the task to reach main");
    assert.equal(git(repo, "show", "main:src/add.js"), FIX2);
    assert.equal(git(repo, "log", "--format=%B", "main").match(/Optimus-Unit: fix-add\/fix#2/g)?.length, 1);
    const events = await journal(farm);
    const approval = events.find((e) => e.type === "unit_approved")!;
    assert.deepEqual(
      [approval.actor, (approval.data as { attempt: number }).attempt, (approval.data as { head?: string }).head],
      ["editor:alice", 2, current.head],
    );
    const bobs = events.find((e) => e.type === "changes_requested" && e.actor === "editor:bob")!;
    assert.equal((bobs.data as { head?: string }).head, aliceSaw.head, "a person's request for changes records the commit they saw");

    // Rejecting: the unit reads as rejected (cancelled, by whom, why), never as failed; it may be retried.
    await client.tasks.create.mutate({
      id: "drop",
      title: "CI tweak",
      units: [{ id: "ci", goal: "run on PRs too", files: [".github/workflows/ci.yml"] }],
    });
    const ci = await heldAt("drop", "ci", 1);
    assert.equal(ci.needsApprover, true, "a protected path: approving needs the approver right");
    const rejected = await bob.reviews.reject.mutate({ ...(await seenVersion(bob, "drop", "ci")), reason: "we keep CI on push only" });
    assert.deepEqual(
      [rejected.state, rejected.reason, rejected.actions],
      ["cancelled", "rejected by editor:bob: we keep CI on push only", ["retry"]],
    );
    assert.equal((await client.tasks.get.query({ taskId: "drop" })).task.state, "cancelled");
    const rejection = (await journal(farm)).find((e) => e.type === "unit_rejected")!;
    assert.equal((rejection.data as { head?: string }).head, ci.evaluation!.commit);
    // Wide enough for the whole reason on the unit's row (at 80 columns, the default off a terminal, it is cut).
    const status = await runCli(["status", "--once", "--width", "200"], {
      cwd: repo,
      env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin },
    });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^ {2}ci\s+cancelled\s+1\s.*rejected by editor:bob: we keep CI on push only$/m);
    assert.doesNotMatch(status.stdout, /\b(failed|dead)\b/);

    // Actions for units in several states, as the table says (no frontier model on this farm).
    await stopAll(agents);
    await client.tasks.create.mutate({ id: "later", title: "Later", units: [{ id: "p", goal: "later", files: ["src/add.js"] }] });
    const snap = await viewsSnapshot(farm.url, admin);
    assert.ok(Math.abs(snap.serverTime - Date.now()) < 5_000, "the snapshot carries the farm's clock");
    assert.equal(snap.spend.frontierConfigured, false);
    const actionsOf = (k: string) => snap.units.find((u) => `${u.taskId}/${u.unitId}` === k)!.actions;
    assert.deepEqual(actionsOf("fix-add/fix"), []);
    assert.deepEqual(actionsOf("fix-add/fix-review"), []);
    assert.deepEqual(actionsOf("drop/ci"), ["retry"]);
    assert.deepEqual(actionsOf("later/p"), ["cancel"], "ready, no frontier: only cancel");
    assert.deepEqual(actionsOf("later/p-review"), ["cancel"], "planned");
    for (const u of snap.units)
      assert.deepEqual(
        u.actions,
        availableActions({ state: u.state, role: u.spec.role, frontierConfigured: false, escalationQueued: false }),
        `${u.taskId}/${u.unitId} (${u.state})`,
      );

    // The manifest someone edited was left alone, even through the farm's shutdown flush.
    await farm.close();
    assert.equal(readFileSync(manifest, "utf8"), edited, "the farm did not overwrite the edited manifest");
  },
);

test(
  "a reviewer that keeps requesting changes: the unit is held for a person at its attempt limit; the CLI decides on a named attempt",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
    const coder = await tokenFor(farm.url, admin, "worker", "coders");
    const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
    let reviews = 0;
    const agents = await startWorkers(
      farm.url,
      coder,
      [
        { nodeId: "coder", role: "codegen", max: 1 },
        { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
      ],
      newLedger(),
      async (lease: Lease) => {
        if (lease.spec.role === "review") {
          reviews++;
          return {
            outcome: "succeeded",
            summary: "",
            review: {
              verdict: "request_changes",
              risk: "low",
              summary: `not yet (round ${reviews})`,
              comments: [{ path: "src/add.js", line: 2, body: `still not right (round ${reviews})` }],
            },
          };
        }
        return {
          outcome: "succeeded",
          summary: "try",
          patch: patchFor(repo, (lease.context as Ctx).base!.branch, { "src/add.js": lease.attempt === 1 ? FIX : FIX2 }),
        };
      },
    );
    t.after(() => stopAll(agents));
    await client.tasks.create.mutate({
      id: "loop",
      title: "Loop",
      units: [{ id: "u", goal: "make add add", files: ["src/add.js"], maxAttempts: 2 }],
    });
    const held = await waitFor(
      async () => {
        const u = await client.units.get.query({ taskId: "loop", unitId: "u" });
        return u.state === "awaiting_approval" ? u : null;
      },
      "the unit to be held for a person",
      60_000,
    );
    assert.equal(held.attempt, 2);
    assert.match(
      held.reason ?? "",
      /^held for approval: the reviewer requested changes 2 times; last: not yet \(round 2\)\nsrc\/add\.js:2: still not right \(round 2\)/,
    );
    assert.deepEqual(held.actions, ["approve", "reject", "request_changes", "cancel"]);
    // It stays held: no third attempt, no third review, not dead-lettered.
    await sleep(1_500);
    const still = await client.units.get.query({ taskId: "loop", unitId: "u" });
    assert.deepEqual([still.state, still.attempt, reviews], ["awaiting_approval", 2, 2]);
    const events = await journal(farm);
    assert.equal(
      events.filter((e) => e.type === "changes_requested").length,
      1,
      "the first verdict sent it back; the second, at the limit, held it",
    );
    assert.equal(events.filter((e) => e.type === "unit_failed" || e.type === "lease_expired").length, 0);

    // Escalate on a farm without a frontier model: refused with a clear sentence, and not offered.
    const esc = await client.units.escalate.mutate({ taskId: "loop", unitId: "u", reason: "stuck" }).catch((e: unknown) => e);
    assert.equal(errorCode(esc), "CONFLICT");
    assert.match((esc as Error).message, /^cannot escalate unit loop\/u: no frontier model is configured on this farm/);
    assert.equal((await journal(farm)).filter((e) => e.type === "escalation_requested").length, 0);
    // Other actions the table does not allow are refused with its sentence too.
    const retry = await client.units.retry.mutate({ taskId: "loop", unitId: "u" }).catch((e: unknown) => e);
    assert.equal(errorCode(retry), "CONFLICT");
    assert.equal((retry as Error).message, "cannot retry unit loop/u: it is awaiting approval, where retry does not apply");

    // The CLI says which version it decides on; a pinned attempt that is no longer current fails cleanly.
    const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin };
    const pinned = await runCli(["approve", "loop/u", "--attempt", "1"], { cwd: repo, env });
    assert.equal(pinned.code, 4, pinned.stderr);
    assert.match(pinned.stderr, /^approving loop\/u attempt 1\n/);
    assert.match(
      pinned.stderr,
      /optimus: this change was updated to attempt 2 since you opened it \(you reviewed attempt 1\); look at attempt 2 and decide again \(409\)\n$/,
    );
    assert.equal((await journal(farm)).filter((e) => e.type === "unit_approved").length, 0, "the refused approval journaled nothing");
    const ok = await runCli(["approve", "loop/u", "--attempt", "2"], { cwd: repo, env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stderr,
      new RegExp(`^approving loop/u attempt 2 \\(commit ${held.evaluation!.commit.slice(0, 10)}\\)\\nunit loop/u approved and merged`),
    );
    await waitFor(async () => (await client.tasks.get.query({ taskId: "loop" })).task.merge?.commit, "the task to reach main").catch(
      async (e) => {
        const { task, units } = await client.tasks.get.query({ taskId: "loop" });
        throw new Error(
          `${(e as Error).message}; task: ${JSON.stringify(task)}; units: ${JSON.stringify(units.map((u) => [u.unitId, u.state, u.attempt, u.reason]))}`,
        );
      },
    );
    assert.equal(git(repo, "show", "main:src/add.js"), FIX2);
    const approval = (await journal(farm)).find((e) => e.type === "unit_approved")!;
    assert.equal((approval.data as { head?: string }).head, held.evaluation!.commit);
  },
);

test(
  "a person's request for changes on a held loop gives one more attempt; the next verdict holds it again",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
    const coder = await tokenFor(farm.url, admin, "worker", "coders");
    const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
    let reviews = 0;
    const agents = await startWorkers(
      farm.url,
      coder,
      [
        { nodeId: "coder", role: "codegen", max: 1 },
        { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
      ],
      newLedger(),
      async (lease: Lease) => {
        if (lease.spec.role === "review") {
          reviews++;
          return {
            outcome: "succeeded",
            summary: `round ${reviews}`,
            review: { verdict: "request_changes", risk: "low", summary: `round ${reviews}`, comments: [] },
          };
        }
        return {
          outcome: "succeeded",
          summary: "try",
          patch: patchFor(repo, (lease.context as Ctx).base!.branch, { "src/add.js": lease.attempt % 2 ? FIX : FIX2 }),
        };
      },
    );
    t.after(() => stopAll(agents));
    await client.tasks.create.mutate({
      id: "loop",
      title: "Loop",
      units: [{ id: "u", goal: "make add add", files: ["src/add.js"], maxAttempts: 1 }],
    });
    const heldAt = (attempt: number) =>
      waitFor(
        async () => {
          const u = await client.units.get.query({ taskId: "loop", unitId: "u" });
          return u.state === "awaiting_approval" && u.attempt === attempt ? u : null;
        },
        `attempt ${attempt} to be held`,
        60_000,
      );
    const first = await heldAt(1);
    assert.match(first.reason ?? "", /the reviewer requested changes 1 time; last: round 1/);
    const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin };
    const sent = await runCli(["request-changes", "loop/u", "--comment", "src/add.js:1: one more try"], { cwd: repo, env });
    assert.equal(sent.code, 0, sent.stderr);
    assert.match(
      sent.stderr,
      new RegExp(
        `^requesting changes on loop/u attempt 1 \\(commit ${first.evaluation!.commit.slice(0, 10)}\\)\\nchanges requested on loop/u; attempt 2 gets your comments \\(it is (ready|running) now\\)\\n$`,
      ),
    );
    const second = await heldAt(2);
    assert.match(second.reason ?? "", /the reviewer requested changes 2 times; last: round 2/);
    assert.equal(reviews, 2);
    const rejected = await runCli(["reject", "loop/u", "--reason", "give up"], { cwd: repo, env });
    assert.equal(rejected.code, 0, rejected.stderr);
    assert.match(rejected.stderr, /unit loop\/u rejected; it is cancelled/);
  },
);

test("a worker on an OpenAI-compatible server shows its model's name, not the URL's last part", { timeout: 60_000 }, async (t) => {
  const repo = makeFixtureRepo(t);
  const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const model = await startOpenAiStandin({ script: [] });
  t.after(() => model.close());
  assert.match(model.url, /\/v1$/);
  const token = await tokenFor(farm.url, admin, "worker", "pool");
  const workDir = mkdtempSync(join(tmpdir(), "optimus-worker-"));
  t.after(() => rmSync(workDir, { recursive: true, force: true }));
  const w = new CliProcess(
    [
      "worker",
      "--role",
      "review",
      "--model",
      model.url,
      "--model-name",
      "qwen2.5-coder-7b",
      "--node-id",
      "rv-1",
      "--work-dir",
      workDir,
      "--farm",
      farm.url,
    ],
    { cwd: repo, env: { OPTIMUS_TOKEN: token } },
  );
  t.after(() => w.stop("SIGKILL"));
  const worker = await waitFor(
    async () => (await client.fleet.workers.query()).find((x) => x.nodeId === "rv-1"),
    "the worker to register",
    30_000,
  ).catch((e) => {
    throw new Error(`${(e as Error).message}; worker log: ${w.log}`);
  });
  assert.equal(worker.model.primary, "qwen2.5-coder-7b");
  assert.ok(Math.abs(worker.lastSeenAt - Date.now()) < 10_000, "last seen on the farm's clock");
});
