/**
 * Git off the hot path (issue 12): recording a task runs no git process. The farm's git is blocked
 * (a `git` on PATH that waits while a gate file exists, then runs the real one): the task is still
 * recorded and answered at once, its unit is not leased while its branch cannot be cut, and once git
 * returns the branch is cut and the unit leased on it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cloneDirFor, type Lease } from "@optimus/farm-server";
import { tokenFor } from "../helpers/clients.js";
import { patchForAsync } from "../helpers/fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

/** A `git` first on PATH that waits while `gate` exists (noting that it was called), then execs the real git. */
function blockableGit(t: { after(fn: () => unknown): void }): { realGit: string; called: string; block(): void; unblock(): void } {
  const dir = mkdtempSync(join(tmpdir(), "optimus-blocked-git-"));
  const realGit = execFileSync("sh", ["-c", "command -v git"]).toString().trim();
  const gate = join(dir, "gate");
  const called = join(dir, "called");
  writeFileSync(
    join(dir, "git"),
    `#!/bin/sh\nif [ -e '${gate}' ]; then : > '${called}'; while [ -e '${gate}' ]; do sleep 0.02; done; fi\nexec '${realGit}' "$@"\n`,
  );
  chmodSync(join(dir, "git"), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path}`;
  t.after(() => {
    process.env.PATH = path;
    rmSync(dir, { recursive: true, force: true });
  });
  return { realGit, called, block: () => writeFileSync(gate, ""), unblock: () => rmSync(gate, { force: true }) };
}

test(
  "creating a task does not wait for git: recorded and answered while git is blocked, leased on its branch once git returns",
  { timeout: 60_000 },
  async (t) => {
    const repo = makeRepo(t);
    const git = blockableGit(t);
    const {
      server: farm,
      adminToken: admin,
      client,
    } = await startTestFarm(t, {
      repo,
      config: { heartbeatIntervalMs: 500, planner: { enabled: false }, prloop: { reviewEveryCodegenUnit: false } },
    });
    const leases: Lease[] = [];
    const agents = await startWorkers(
      farm.url,
      await tokenFor(farm.url, admin, "worker", "coders"),
      [{ nodeId: "coder", role: "codegen", max: 1 }],
      newLedger(),
      async (lease) => {
        leases.push(lease);
        return {
          outcome: "succeeded",
          summary: "done",
          patch: await patchForAsync(cloneDirFor(repo), (lease.context as { base: { branch: string } }).base.branch, {
            "notes.md": "notes\n",
          }),
        };
      },
    );
    t.after(() => stopAll(agents));

    git.block();
    // Recorded and answered while every git process of the farm would wait: nothing of it asks git.
    const created = await Promise.race([
      client.tasks.create.mutate({ id: "t-hot", title: "Notes", units: [{ id: "u1", goal: "write notes", files: ["notes.md"] }] }),
      sleep(10_000).then(() => null),
    ]);
    assert.ok(created, "the task was answered while git was blocked");
    assert.equal(created.taskId, "t-hot");
    assert.equal(farm.services.state.projection.tasks.get("t-hot")!.targetBranch, "main");
    assert.equal((await client.tasks.get.query({ taskId: "t-hot" })).task.taskId, "t-hot");
    // The branch is being cut (its git waits at the gate); the unit is not leased without it.
    await waitFor(() => existsSync(git.called), "the farm's git called to cut the branch");
    await sleep(500);
    assert.equal((await client.units.get.query({ taskId: "t-hot", unitId: "u1" })).state, "ready");
    assert.equal(leases.length, 0);
    assert.throws(
      () =>
        execFileSync(git.realGit, ["rev-parse", "--verify", "-q", "refs/heads/optimus/t-hot"], { cwd: cloneDirFor(repo), stdio: "pipe" }),
      "no branch yet",
    );

    // Git returns: the branch is cut from main and the unit leased on it.
    git.unblock();
    await waitFor(() => leases.length > 0, "the unit leased once its branch exists", 20_000);
    assert.equal((leases[0]!.context as { base: { branch: string } }).base.branch, "optimus/t-hot");
    const main = execFileSync("git", ["rev-parse", "main"], { cwd: repo }).toString().trim();
    assert.equal(
      execFileSync("git", ["merge-base", "optimus/t-hot", main], { cwd: cloneDirFor(repo) })
        .toString()
        .trim(),
      main,
    );
    await waitFor(
      async () => (await client.units.get.query({ taskId: "t-hot", unitId: "u1" })).state === "awaiting_approval",
      "the unit's change evaluated",
      30_000,
    );
  },
);

test("a target branch the origin does not have is refused at once, with its name; nothing is recorded", { timeout: 60_000 }, async (t) => {
  const repo = makeRepo(t);
  const { server: farm, client } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500, planner: { enabled: false } } });
  await assert.rejects(
    client.tasks.create.mutate({ id: "t-nowhere", title: "x", targetBranch: "release/9", units: [{ id: "u1", goal: "x" }] }),
    /the target branch 'release\/9' does not exist on the origin/,
  );
  await assert.rejects(client.tasks.get.query({ taskId: "t-nowhere" }), /not found/);
  // A branch pushed to the origin after the farm's last fetch: found (the farm fetches once for it).
  execFileSync("git", ["branch", "release/10"], { cwd: repo });
  await client.tasks.create.mutate({ id: "t-later", title: "x", targetBranch: "release/10", units: [{ id: "u1", goal: "x" }] });
  assert.equal(farm.services.state.projection.tasks.get("t-later")!.targetBranch, "release/10");
});
