/**
 * Hooks and a hostile config in the farm's repository (written by anything that ever reached its
 * `.git`): the farm's own git commands — worktrees, commits, merges, ref updates — must run none of
 * them. Control first: plain git in the same repository does run them.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import type { Lease } from "@optimus/farm-server";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { seenVersion } from "../helpers/decisions.js";
import { waitFor } from "../helpers/wait.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const FIX = "export function add(a, b) {\n  return a + b;\n}\n";
const HOOKS = [
  "pre-commit",
  "post-commit",
  "commit-msg",
  "post-checkout",
  "post-merge",
  "reference-transaction",
  "post-rewrite",
  "pre-auto-gc",
];

test("hooks and an fsmonitor planted in the farm's repository never run through the farm's git", { timeout: 120_000 }, async (t) => {
  const repo = makeFixtureRepo(t, "  reviewEveryCodegenUnit: false\nplanner: { enabled: false }\n");
  // Made before the hooks are planted: the test's own plain git would run them.
  const patch = patchFor(repo, "main", { "src/add.js": FIX });
  const marker = join(repo, "..", `hook-ran-${process.pid}-${Date.now()}`);
  t.after(() => rmSync(marker, { force: true }));
  for (const h of HOOKS) {
    writeFileSync(join(repo, ".git", "hooks", h), `#!/bin/sh\necho ${h} >> ${JSON.stringify(marker)}\n`);
    chmodSync(join(repo, ".git", "hooks", h), 0o755);
  }
  execFileSync("git", ["config", "core.fsmonitor", `echo fsmonitor >> ${JSON.stringify(marker)}; false`], { cwd: repo });

  // Control: the user's plain git runs them (a commit, then undone, so main stays where the patch was made).
  git(repo, "commit", "-q", "--allow-empty", "-m", "control", "--only", "--");
  git(repo, "reset", "-q", "--soft", "HEAD~1");
  assert.match(readFileSync(marker, "utf8"), /pre-commit/, "plain git runs the planted hooks");
  rmSync(marker);

  const { server: farm, adminToken: admin } = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
  const token = await tokenFor(farm.url, admin, "worker", "coder");
  const agents = await startWorkers(
    farm.url,
    token,
    [{ nodeId: "coder", role: "codegen", max: 1 }],
    newLedger(),
    async (_lease: Lease) => ({ outcome: "succeeded", summary: "fix", patch }),
  );
  t.after(() => stopAll(agents));
  const client = httpClientFor(farm.url, admin);
  await client.tasks.create.mutate({
    id: "fix-add",
    title: "Fix add",
    units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
  });
  // Unreviewed (no review unit here), so it is held; a person approves it.
  await waitFor(
    async () => (await client.units.get.query({ taskId: "fix-add", unitId: "fix" })).state === "awaiting_approval",
    "the change to be held",
    60_000,
  );
  await client.reviews.approve.mutate(await seenVersion(client, "fix-add", "fix"));
  await waitFor(async () => (await client.tasks.get.query({ taskId: "fix-add" })).task.merge?.commit, "the fix to reach main", 60_000);
  await farm.services.prloop!.idle();
  assert.equal(git(repo, "show", "main:src/add.js"), FIX, "the farm did its git work: worktree, commit, merges, ref updates");
  assert.equal(existsSync(marker), false, `no hook ran: ${existsSync(marker) ? readFileSync(marker, "utf8") : ""}`);
});
