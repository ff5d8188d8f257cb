// Separation of duties, tried as an attacker would: one worker token that writes a change and then
// reviews it itself, and a protected-path change approved with the shared admin token. A review
// counts only from another token and node than the change's author; protected paths need a person
// whose token carries the approver right, and the journal names that person.
import assert from "node:assert/strict";
import { test } from "node:test";
import { createFarmClient, errorCode, type Lease } from "@optimus/farm-server";
import type { FarmEvent } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { seenVersion } from "../helpers/decisions.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { startTestFarm } from "../helpers/test-farm.js";

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
const APPROVE = { verdict: "approve" as const, risk: "low" as const, summary: "looks right", comments: [] };

/** A worker node driven by hand over the real API: register, watch its lease stream, submit. */
async function handWorker(t: { after(fn: () => unknown): void }, url: string, token: string, nodeId: string, role: "codegen" | "review") {
  const { client, close } = createFarmClient({ url, token, transport: "ws" });
  t.after(close);
  await client.worker.register.mutate({ nodeId, role, maxConcurrentTasks: 1, model: { primary: "manual" } });
  const leases: Lease[] = [];
  let sub = client.worker.leases.subscribe({ nodeId }, { onData: (env) => leases.push(env.data as Lease) });
  t.after(() => sub.unsubscribe());
  // Heartbeats as a real worker sends them: on a loaded machine a submission (the farm reads the
  // patch with git) can outlast a lease's time, and the attempt would be lost for that, not for the
  // rule under test.
  const beat = setInterval(() => {
    const held = leases.map((l) => ({ taskId: l.taskId, unitId: l.unitId, attempt: l.attempt, leaseId: l.leaseId }));
    client.worker.heartbeat.mutate({ nodeId, leases: held.slice(-100) }).catch(() => undefined);
  }, 200);
  t.after(() => clearInterval(beat));
  return {
    client,
    leases,
    /** reopens the lease stream (what a worker does after a reconnect: it is handed what it holds) */
    reopen() {
      sub.unsubscribe();
      sub = client.worker.leases.subscribe({ nodeId }, { onData: (env) => leases.push(env.data as Lease) });
    },
    submit: (lease: Lease, result: Parameters<typeof client.worker.submit.mutate>[0]["result"]) =>
      client.worker.submit.mutate({
        nodeId,
        lease: { taskId: lease.taskId, unitId: lease.unitId, attempt: lease.attempt, leaseId: lease.leaseId },
        result,
      }),
  };
}

test("one worker token with a codegen and a review node cannot approve its own change: it is held for a person", async (t) => {
  const repo = makeFixtureRepo(t);
  const {
    server: farm,
    adminToken: admin,
    client,
  } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500, planner: { enabled: false } } });
  const mallory = await tokenFor(farm.url, admin, "worker", "mallory");
  const coder = await handWorker(t, farm.url, mallory, "mallory-coder", "codegen");
  const reviewer = await handWorker(t, farm.url, mallory, "mallory-reviewer", "review");

  // Made before the lease (the task's branch starts at main), so the lease is not held while git works.
  const patch = patchFor(repo, "main", { "src/add.js": FIX });
  await client.tasks.create.mutate({
    id: "fix-add",
    title: "Fix add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
  });
  const lease = await waitFor(() => coder.leases[0], "the codegen lease");
  assert.equal((lease.context as { base: { branch: string } }).base.branch, "optimus/fix-add");
  await coder.submit(lease, { outcome: "succeeded", summary: "fixed", patch });
  await waitFor(
    async () => (await client.units.get.query({ taskId: "fix-add", unitId: "fix" })).state === "reviewing",
    "the change to be evaluated and wait for review",
  );

  // The dispatcher does not hand the review to the author's token: it waits for another reviewer.
  await sleep(1_500);
  assert.deepEqual(
    reviewer.leases.map((l) => l.unitId),
    [],
    "the author's own review node got the review",
  );
  assert.equal((await client.units.get.query({ taskId: "fix-add", unitId: "fix-review" })).state, "ready");

  // Defence in depth: a review lease handed out before this rule existed (an older farm's journal)
  // still cannot approve: the verdict is recorded as not counting and the change waits for a person.
  const ru = farm.services.state.projection.units.get("fix-add/fix-review")!;
  await farm.services.state.commit(
    [
      {
        type: "unit_leased",
        data: {
          taskId: "fix-add",
          unitId: "fix-review",
          attempt: ru.attempt + 1,
          worker: "mallory-reviewer",
          leaseId: `fix-add/fix-review#${ru.attempt + 1}.older-farm`,
          expiresAt: Date.now() + 60_000,
        },
      },
    ],
    "worker:mallory-reviewer",
  );
  reviewer.reopen();
  const reviewLease = await waitFor(() => reviewer.leases.find((l) => l.unitId === "fix-review"), "the old review lease");
  await reviewer.submit(reviewLease, { outcome: "succeeded", summary: "lgtm", review: APPROVE });
  const held = await waitFor(async () => {
    const u = await client.units.get.query({ taskId: "fix-add", unitId: "fix" });
    return u.state === "awaiting_approval" ? u : null;
  }, "the change to be held");
  assert.match(held.reason ?? "", /its review came from its own author/);
  assert.equal(git(repo, "show", "main:src/add.js"), "export function add(a, b) {\n  return a - b;\n}\n", "not merged");
  const events: FarmEvent[] = await farm.services.state.journal.readAfter(0, 10_000);
  assert.equal(events.filter((e) => e.type === "unit_merged").length, 0);
  const submitted = events.find((e) => e.type === "unit_submitted" && e.data.unitId === "fix")!;
  assert.equal((submitted.data as { tokenId?: string }).tokenId, mallory.split("_")[1], "the author's token is journaled with the change");

  // A person can still approve it (an ordinary path: an editor's approval is enough).
  const alice = await tokenFor(farm.url, admin, "editor", "alice");
  const approved = await httpClientFor(farm.url, alice).reviews.approve.mutate(await seenVersion(client, "fix-add", "fix"));
  assert.equal(approved.state, "merged");
  assert.equal((await client.health.query()).ok, true);
});

test("a protected-path change: the admin token gets 403, an editor with the approver right merges it, and the journal names her", async (t) => {
  const repo = makeFixtureRepo(t);
  const {
    server: farm,
    adminToken: admin,
    client,
  } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500, planner: { enabled: false } } });
  // Separate tokens for writers and reviewers, as a fleet should have.
  const coderToken = await tokenFor(farm.url, admin, "worker", "coders");
  const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
  const work = async (lease: Lease) => {
    if (lease.spec.role === "review") return { outcome: "succeeded" as const, summary: "ok", review: APPROVE };
    const base = (lease.context as { base: { branch: string } }).base.branch;
    return {
      outcome: "succeeded" as const,
      summary: "done",
      patch: patchFor(repo, base, { ".github/workflows/ci.yml": "on: [push, pull_request]\n", "src/add.js": FIX }),
    };
  };
  const agents = [
    ...(await startWorkers(farm.url, coderToken, [{ nodeId: "coder", role: "codegen", max: 1 }], newLedger(), work)),
    ...(await startWorkers(farm.url, reviewerToken, [{ nodeId: "reviewer", role: "review", max: 1 }], newLedger(), work)),
  ];
  t.after(() => stopAll(agents));
  await client.tasks.create.mutate({
    id: "ci-tweak",
    title: "CI tweak",
    units: [{ id: "ci", goal: "run on PRs too and fix add", files: [".github/workflows/ci.yml", "src/add.js"] }],
  });
  await waitFor(
    async () => (await client.units.get.query({ taskId: "ci-tweak", unitId: "ci" })).state === "awaiting_approval",
    "the protected change to be held",
  ).catch(async (e) => {
    const units = (await client.tasks.get.query({ taskId: "ci-tweak" })).units.map((u) => [u.unitId, u.state, u.reason]);
    throw new Error(`${(e as Error).message}; units: ${JSON.stringify(units)}`);
  });
  const bob = await tokenFor(farm.url, admin, "editor", "bob");
  await farm.services.state.settle();
  const journalLength = (await farm.services.state.journal.readAfter(0, 10_000)).length;

  const fix =
    /touches protected paths \(\.github\/workflows\/ci\.yml\); approval needs a token with the approver right: optimus token create --role editor --name <you> --approver/;
  const seen = await seenVersion(client, "ci-tweak", "ci");
  const byAdmin = await client.reviews.approve.mutate(seen).catch((e: unknown) => e);
  assert.equal(errorCode(byAdmin), "FORBIDDEN");
  assert.match((byAdmin as Error).message, fix);
  const byEditor = await httpClientFor(farm.url, bob)
    .reviews.approve.mutate(seen)
    .catch((e: unknown) => e);
  assert.equal(errorCode(byEditor), "FORBIDDEN");
  assert.match((byEditor as Error).message, fix);
  assert.equal((await client.units.get.query({ taskId: "ci-tweak", unitId: "ci" })).state, "awaiting_approval", "no state change");
  assert.equal((await farm.services.state.journal.readAfter(0, 10_000)).length, journalLength, "nothing journaled by the refusals");
  assert.equal(git(repo, "show", "main:.github/workflows/ci.yml"), "on: push\n");

  // A person's token with the approver right, made and used with the CLI.
  const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin };
  const created = await runCli(["token", "create", "--role", "editor", "--name", "alice", "--approver"], { cwd: repo, env });
  assert.equal(created.code, 0, created.stderr);
  const alice = created.stdout.trim();
  const list = await runCli(["token", "list"], { cwd: repo, env });
  assert.match(list.stdout, /editor\s+alice\s+approver/);
  const approved = await runCli(["approve", "ci-tweak/ci"], { cwd: repo, env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: alice } });
  assert.equal(approved.code, 0, approved.stderr);
  assert.match(approved.stderr, /unit ci-tweak\/ci approved and merged/);
  await waitFor(async () => (await client.tasks.get.query({ taskId: "ci-tweak" })).task.merge?.commit, "the approved task to reach main");
  assert.equal(git(repo, "show", "main:.github/workflows/ci.yml"), "on: [push, pull_request]\n");
  const events: FarmEvent[] = await farm.services.state.journal.readAfter(0, 10_000);
  const approval = events.find((e) => e.type === "unit_approved")!;
  assert.equal(approval.actor, "editor:alice");
  assert.deepEqual((approval.data as { by?: unknown }).by, { tokenId: alice.split("_")[1], name: "alice", approver: true });
  assert.equal(events.filter((e) => e.type === "unit_approved").length, 1, "the refused approvals left no trace but their 403");
  const createdEvent = events.find((e) => e.type === "token_created" && e.data.name === "alice")!;
  assert.equal((createdEvent.data as { approver?: boolean }).approver, true);
});
