/**
 * Issue 14, part 1: the CLI does what the editor does, scriptably — lists and details with human
 * and `--json` output, the change as a patch, logs, cancel and escalate, the fleet, unique-prefix
 * ids with clear errors and exit codes. A real farm, real git, real workers over WebSocket, and the
 * CLI as a real process.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { TaskView, UnitDetail, UnitLiveView, UnitPatch, WorkerListEntry } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { CLI } from "../helpers/paths.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
const CI = "on: [push, pull_request]\n";
const RISKY = "risky-change-1-3f2a9c";
const ESC = /\x1b\[/;

test("the CLI reads and acts like the editor: lists, details, diff, logs, cancel, escalate, the fleet; ids by unique prefix", async (t) => {
  const repo = makeFixtureRepo(t);
  const { server: farm, adminToken: admin, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: admin };
  const cli = (...args: string[]) => runCli(args, { cwd: repo, env });
  const json = <T>(r: { code: number; stdout: string; stderr: string }): T => {
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as T;
  };

  // Three tasks before any worker: a protected change (held for a person), a fix, and one to cancel.
  // (The fixture's test fails until add is fixed, and every change is evaluated on its own task's branch: the risky one fixes add too.)
  const initial = git(repo, "rev-parse", "main").trim();
  await client.tasks.create.mutate({
    id: RISKY,
    title: "Run CI on pull requests",
    units: [{ id: "ci", goal: "run on PRs too", files: [".github/workflows/ci.yml", "src/add.js"] }],
  });
  await client.tasks.create.mutate({
    id: "fix-add-0b1c2d",
    title: "Fix add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
  });
  await client.tasks.create.mutate({
    id: "fix-docs-aa11bb",
    title: "Fix the docs",
    units: [{ id: "docs", goal: "say what add does", files: ["README.md"] }],
  });

  await t.test("no workers yet: worker list says so, and how to start one", async () => {
    const r = await cli("worker", "list");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^no workers have registered: start one with `optimus worker --role codegen\|review/);
    assert.deepEqual(json<WorkerListEntry[]>(await cli("worker", "list", "--json")), []);
  });

  await t.test("unique prefixes: one match resolves; several are listed (exit 2); none is not found (exit 3)", async () => {
    const shown = json<{ task: TaskView }>(await cli("task", "show", "risky", "--json"));
    assert.equal(shown.task.taskId, RISKY);
    const several = await cli("task", "show", "fix");
    assert.deepEqual(
      [several.code, several.stderr.trim()],
      [2, "optimus: 'fix' matches 2 tasks: fix-add-0b1c2d, fix-docs-aa11bb; give more of the id"],
    );
    const none = await cli("task", "cancel", "nope");
    assert.deepEqual([none.code, none.stderr.trim()], [3, "optimus: no task matches 'nope'"]);
    const noUnit = await cli("unit", "show", "fix-add/zzz");
    assert.deepEqual(
      [noUnit.code, noUnit.stderr.trim()],
      [3, "optimus: no unit of task fix-add-0b1c2d matches 'zzz' (its units: fix, fix-review)"],
    );
    // "fix" is a unit's whole id and the start of "fix-review": the whole id wins; "fix-r" names the review.
    assert.equal(json<UnitDetail>(await cli("unit", "show", "fix-add/fix", "--json")).unit.unitId, "fix");
    assert.equal(json<UnitDetail>(await cli("unit", "show", "fix-add/fix-r", "--json")).unit.unitId, "fix-review");
    const twoUnits = await cli("unit", "show", "risky/c");
    assert.deepEqual(
      [twoUnits.code, twoUnits.stderr.trim()],
      [2, `optimus: 'risky/c' matches 2 units: ${RISKY}/ci, ${RISKY}/ci-review; give more of the id`],
    );
    const status = await cli("status", "--once", "--task", "nope");
    assert.deepEqual([status.code, status.stderr.trim(), status.stdout], [3, "optimus: no task matches 'nope'", ""]);
    const one = await cli("status", "--once", "--task", "risky");
    assert.equal(one.code, 0, one.stderr);
    assert.match(one.stdout, new RegExp(`^${RISKY} `, "m"), "the whole id, uncut");
    assert.doesNotMatch(one.stdout, /fix-add/);
  });

  await t.test("unit cancel and escalate act as the editor's buttons; a refusal exits 4", async () => {
    const cancelled = await cli("unit", "cancel", "fix-docs/docs", "--reason", "not needed");
    assert.equal(cancelled.code, 0, cancelled.stderr);
    assert.equal(cancelled.stderr.trim(), "unit fix-docs-aa11bb/docs is cancelled: not needed");
    assert.equal((await client.units.get.query({ taskId: "fix-docs-aa11bb", unitId: "docs" })).state, "cancelled");
    const again = await cli("unit", "cancel", "fix-docs/docs");
    assert.equal(again.code, 4, again.stderr);
    assert.match(again.stderr, /^optimus: cannot cancel unit fix-docs-aa11bb\/docs: it is cancelled, where cancel does not apply/);
    const esc = await cli("escalate", "fix-docs/docs", "--reason", "stuck");
    assert.equal(esc.code, 4, esc.stderr);
    assert.match(esc.stderr, /^optimus: cannot escalate unit fix-docs-aa11bb\/docs: /);
  });

  // Workers: a coder that changes the unit's file (with a transcript and check output), a reviewer that approves.
  const token = await tokenFor(farm.url, admin, "worker", "pool");
  const reviewerToken = await tokenFor(farm.url, admin, "worker", "reviewers");
  const agents = await startWorkers(
    farm.url,
    token,
    [
      { nodeId: "coder", role: "codegen", max: 1 },
      { nodeId: "reviewer", role: "review", max: 1, token: reviewerToken },
    ],
    newLedger(),
    async (lease) => {
      if (lease.spec.role === "review")
        return { outcome: "succeeded", summary: "ok", review: { verdict: "approve", risk: "low", summary: "fine by me", comments: [] } };
      const base = (lease.context as { base: { branch: string } }).base.branch;
      const files: Record<string, string> =
        lease.taskId === RISKY ? { ".github/workflows/ci.yml": CI, "src/add.js": FIX } : { "src/add.js": FIX };
      return {
        outcome: "succeeded",
        summary: `changed ${Object.keys(files)[0]}`,
        patch: patchFor(repo, base, files),
        evidence: "check: 1 passing",
        transcript: [
          { role: "user", content: lease.spec.goal },
          { role: "assistant", content: "I changed the file as asked." },
        ],
      };
    },
  );
  t.after(() => stopAll(agents));
  const states = async () =>
    (await client.units.list.query()).map((u) => `${u.taskId}/${u.unitId}: ${u.state} ${u.reason ?? ""}`).join("; ");
  await waitFor(
    async () => (await client.units.get.query({ taskId: RISKY, unitId: "ci" })).state === "awaiting_approval",
    "the protected change to be held",
    60_000,
  ).catch(async (err: Error) => assert.fail(`${err.message}: ${await states()}`));
  await waitFor(async () => (await client.tasks.get.query({ taskId: "fix-add-0b1c2d" })).task.merge?.commit, "the fix to reach main");

  await t.test("worker list: node, role, leases held, connected since, last heartbeat", async () => {
    const r = await cli("worker", "list");
    assert.equal(r.code, 0, r.stderr);
    const [header, ...rows] = r.stdout.trimEnd().split("\n");
    assert.match(header!, /^NODE\s+ROLE\s+CONNECTED\s+LEASES\s+LAST HEARTBEAT\s+MODEL/);
    assert.match(
      rows.find((l) => l.startsWith("coder "))!,
      /^coder\s+codegen\s+\d+s ago\s+0\/1\s+\d+s ago\s+test/,
    );
    assert.match(
      rows.find((l) => l.startsWith("reviewer "))!,
      /^reviewer\s+review\s+/,
    );
    const list = json<WorkerListEntry[]>(await cli("worker", "list", "--json"));
    assert.deepEqual(
      list.map((w) => [w.nodeId, w.role, w.connected, w.leases]),
      [
        ["coder", "codegen", true, []],
        ["reviewer", "review", true, []],
      ],
    );
    for (const w of list) assert.ok(w.connectedSince! <= w.lastHeartbeatAt && w.lastHeartbeatAt <= Date.now());
    // The fleet is for people (editor and admin tokens): a worker token is refused, exit 4.
    const asWorker = await runCli(["worker", "list"], { cwd: repo, env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: token } });
    assert.deepEqual(
      [asWorker.code, asWorker.stderr.trim()],
      [4, "optimus: not allowed (403): a worker token may not do this (needs editor or admin)"],
    );
  });

  await t.test("task list: whole ids, states, filters, JSON", async () => {
    const r = await cli("task", "list");
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(lines[0]!, /^TASK\s+STATE\s+UNITS\s+AGE\s+TITLE$/);
    assert.match(lines[1]!, new RegExp(`^${RISKY}\\s+running\\s+1/2 done, 1 held\\s+\\d+[sm]\\s+Run CI on pull requests$`));
    assert.match(lines[2]!, /^fix-add-0b1c2d\s+completed\s+2\/2 done\s+/);
    // Its one codegen unit cancelled, its review unit still waiting: the task is open (a retry brings it back).
    assert.match(lines[3]!, /^fix-docs-aa11bb\s+open\s+0\/2 done\s+/);
    const all = json<TaskView[]>(await cli("task", "list", "--json"));
    assert.deepEqual(
      all.map((x) => x.taskId),
      [RISKY, "fix-add-0b1c2d", "fix-docs-aa11bb"],
    );
    assert.deepEqual(
      json<TaskView[]>(await cli("task", "list", "--state", "completed", "--json")).map((x) => x.taskId),
      ["fix-add-0b1c2d"],
    );
    assert.deepEqual(
      json<TaskView[]>(await cli("task", "list", "--limit", "1", "--json")).map((x) => x.taskId),
      ["fix-docs-aa11bb"],
    );
    const bad = await cli("task", "list", "--state", "sleeping");
    assert.deepEqual(
      [bad.code, bad.stderr.trim()],
      [2, "optimus: --state must be one of open, running, merging, held, completed, failed, cancelled, got 'sleeping'"],
    );
  });

  await t.test("unit show: state, attempt, worker, the change's summary, evals, review, transcript", async () => {
    const r = await cli("unit", "show", "risky/ci");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^unit\\s+${RISKY}/ci \\(codegen\\)$`, "m"));
    assert.match(r.stdout, /^state\s+awaiting approval — .*protected path \.github\/workflows\/ci\.yml/m);
    assert.match(r.stdout, /^attempt\s+1$/m);
    assert.match(r.stdout, /^worker\s+coder$/m);
    assert.match(r.stdout, /^summary\s+changed \.github\/workflows\/ci\.yml \(attempt 1\)$/m);
    assert.match(
      r.stdout,
      /^change\s+attempt 1, commit [0-9a-f]{10}: 2 file\(s\), \+2 −2 \(\.github\/workflows\/ci\.yml, src\/add\.js\)$/m,
    );
    assert.match(r.stdout, /^evals\s+green: tests exit 0 in \d+\.\ds$/m);
    assert.match(r.stdout, /^review\s+approve, risk low \(by ci-review\): fine by me$/m);
    assert.match(r.stdout, /^transcript\s+2 message\(s\) on attempt 1; last answer: I changed the file as asked\.$/m);
    assert.match(r.stdout, /^actions\s+.*approve/m);
    const d = json<UnitDetail>(await cli("unit", "show", "risky/ci", "--json"));
    assert.equal(d.unit.state, "awaiting_approval");
    assert.equal(d.summary, "changed .github/workflows/ci.yml");
    assert.equal(d.transcript.length, 2);
    assert.equal(d.unit.review?.verdict, "approve");
  });

  await t.test("unit diff: a plain patch git applies, no colour off a terminal; --attempt; --json", async () => {
    const r = await cli("unit", "diff", "risky/ci");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^diff --git a\/\.github\/workflows\/ci\.yml b\/\.github\/workflows\/ci\.yml$/m);
    assert.match(r.stdout, /^\+on: \[push, pull_request\]$/m);
    assert.doesNotMatch(r.stdout, ESC);
    assert.match(r.stderr, new RegExp(`^${RISKY}/ci attempt 1 \\(commit [0-9a-f]{10}\\)`));
    assert.match(r.stdout, /^\+ {2}return a \+ b;$/m);
    // A patch git takes as is: it applies to where the task started.
    const tree = mkdtempSync(join(tmpdir(), "optimus-apply-"));
    git(repo, "worktree", "add", "-q", "--detach", tree, initial);
    try {
      execFileSync("git", ["apply", "--check", "-"], { cwd: tree, input: r.stdout });
    } finally {
      git(repo, "worktree", "remove", "--force", tree);
    }
    const p = json<UnitPatch>(await cli("unit", "diff", "risky/ci", "--json"));
    assert.deepEqual([p.taskId, p.unitId, p.attempt, p.source, p.patch], [RISKY, "ci", 1, "evaluated", r.stdout]);
    assert.equal(p.commit, (await client.units.get.query({ taskId: RISKY, unitId: "ci" })).evaluation?.commit);
    assert.equal((await cli("unit", "diff", "risky/ci", "--attempt", "1")).stdout, r.stdout);
    const none = await cli("unit", "diff", "risky/ci", "--attempt", "2");
    assert.deepEqual([none.code, none.stderr.trim()], [3, `optimus: unit ${RISKY}/ci has no attempt 2 (its latest is 1) (404)`]);
    // On a terminal (a pseudo-terminal from util-linux `script`): coloured, the same lines.
    // (asynchronously: the farm runs in this process and must answer meanwhile)
    const onTty = (
      await promisify(execFile)("script", ["-qec", `${process.execPath} ${CLI} unit diff risky/ci`, "/dev/null"], {
        cwd: repo,
        env: { ...process.env, ...env, NO_COLOR: "" },
        encoding: "utf8",
      })
    ).stdout.replace(/\r\n/g, "\n");
    assert.match(onTty, /\x1b\[32m\+on: \[push, pull_request\]\x1b\[0m/);
    assert.match(onTty, /\x1b\[31m-on: push\x1b\[0m/);
    assert.equal(onTty.replace(/\x1b\[[0-9;]*m/g, "").endsWith(r.stdout), true, "only colour added");
    const bad = await cli("unit", "diff", "risky/ci", "--attempt", "two");
    assert.deepEqual([bad.code, bad.stderr.trim()], [2, "optimus: --attempt must be a whole number ≥ 1, got 'two'"]);
  });

  await t.test("unit logs: the eval output, the worker's check output, the transcript", async () => {
    const r = await cli("unit", "logs", "risky/ci");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^== evals of attempt 1: green ==\n-- tests: exit 0 in \d+\.\ds --\nadd works$/m);
    assert.match(r.stdout, /^== worker's check output, attempt 1 ==\ncheck: 1 passing$/m);
    assert.match(
      r.stdout,
      /^== transcript of attempt 1 \(2 messages\) ==\n\[user\]\nrun on PRs too\n\[assistant\]\nI changed the file as asked\.$/m,
    );
    const j = json<{ evaluation: { green: boolean; evals: Array<{ output: string }> }; evidence: string; transcript: unknown[] }>(
      await cli("unit", "logs", "risky/ci", "--json"),
    );
    assert.equal(j.evaluation.green, true);
    assert.match(j.evaluation.evals[0]!.output, /add works/);
    assert.equal(j.evidence, "check: 1 passing");
    assert.equal(j.transcript.length, 2);
  });

  await t.test("approve by prefix, with the approver's own token; status --json; token list --json", async () => {
    const alice = (await httpClientFor(farm.url, admin).admin.createToken.mutate({ role: "editor", name: "alice", approver: true })).token;
    const plain = await runCli(["approve", "risky-change-1/ci"], {
      cwd: repo,
      env: {
        OPTIMUS_FARM: farm.url,
        OPTIMUS_TOKEN: (await httpClientFor(farm.url, admin).admin.createToken.mutate({ role: "editor", name: "bob" })).token,
      },
    });
    assert.equal(plain.code, 4, "refused without the approver right: exit 4");
    const ok = await runCli(["approve", "risky-change-1/ci"], { cwd: repo, env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: alice } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, new RegExp(`unit ${RISKY}/ci approved and merged`));
    await waitFor(async () => (await client.tasks.get.query({ taskId: RISKY })).task.merge?.commit, "the approved task to reach main");
    assert.equal(git(repo, "show", "main:.github/workflows/ci.yml"), CI);

    const s = json<{ tasks: TaskView[]; units: UnitLiveView[] }>(await cli("status", "--once", "--json"));
    assert.deepEqual(
      s.tasks.map((x) => [x.taskId, x.state]),
      [
        [RISKY, "completed"],
        ["fix-add-0b1c2d", "completed"],
        ["fix-docs-aa11bb", "open"],
      ],
    );
    assert.equal(s.units.length, 6);
    const one = json<{ tasks: TaskView[]; units: UnitLiveView[] }>(await cli("status", "--json", "--task", "fix-a"));
    assert.deepEqual([one.tasks.map((x) => x.taskId), one.units.map((u) => u.unitId)], [["fix-add-0b1c2d"], ["fix", "fix-review"]]);

    const tokens = json<Array<{ tokenId: string; role: string; name: string }>>(await cli("token", "list", "--json"));
    assert.deepEqual(
      tokens
        .filter((x) => ["alice", "bob", "pool"].includes(x.name))
        .map((x) => [x.name, x.role])
        .sort(),
      [
        ["alice", "editor"],
        ["bob", "editor"],
        ["pool", "worker"],
      ],
    );
  });
});
