/**
 * A farm node that woke from a pause past its lease must not move the origin's branches under the
 * node that took over (issue 13): the journal refuses its writes, and its delivery asks whether it
 * still leads right before each push. Real git: a bare origin, the farm's clone of it.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import pino from "pino";
import { GitDelivery } from "@optimus/farm-server/dist/delivery/git-delivery.js";
import { OriginClone, parseOrigin } from "@optimus/farm-server/dist/delivery/origin.js";
import { FarmRepo, integrationBranch } from "@optimus/farm-server/dist/git/farm-repo.js";
import { makeRepo } from "../helpers/repo.js";

const git = (cwd: string, ...args: string[]) =>
  execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...args], { cwd })
    .toString()
    .trim();

async function farmClone(t: { after(fn: () => void): void }) {
  const seed = makeRepo(t);
  git(seed, "commit", "-q", "--allow-empty", "-m", "base");
  const dir = mkdtempSync(join(tmpdir(), "optimus-deposed-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const bare = join(dir, "origin.git");
  execFileSync("git", ["clone", "-q", "--bare", seed, bare]);
  const clone = new OriginClone(join(dir, "clone"), parseOrigin(`file://${bare}`));
  await clone.ensure();
  const repo = new FarmRepo(clone.dir, join(dir, "worktrees"));
  // A task's branch with one commit of its own, as a unit's merge leaves it.
  const main = git(clone.dir, "rev-parse", "refs/remotes/origin/main");
  const tree = git(clone.dir, "rev-parse", `${main}^{tree}`);
  const change = git(clone.dir, "commit-tree", tree, "-p", main, "-m", "unit merge");
  git(clone.dir, "update-ref", `refs/heads/${integrationBranch("t1")}`, change);
  return { bare, clone, repo };
}

const delivery = (o: { repo: FarmRepo; clone: OriginClone; leads: boolean | undefined }) =>
  new GitDelivery({
    repo: o.repo,
    origin: o.clone,
    log: pino({ level: "silent" }),
    movedTargetRetries: 1,
    keepBranches: false,
    ...(o.leads === undefined ? {} : { stillLeads: async () => o.leads! }),
  });

const branchOn = (bare: string, b: string) => {
  try {
    return git(bare, "rev-parse", "-q", "--verify", `refs/heads/${b}`);
  } catch {
    return null;
  }
};

test("without the check, a node that no longer leads still pushes its task branch and merges into main", async (t) => {
  const { bare, clone, repo } = await farmClone(t);
  const before = branchOn(bare, "main");
  const d = delivery({ repo, clone, leads: undefined });
  assert.equal(await d.pushBranch("t1"), null);
  const res = await d.deliver("t1", "main", "Merge task t1\n\nOptimus-Task: t1");
  assert.equal(res.ok, true);
  assert.notEqual(branchOn(bare, "main"), before, "the origin's main moved");
});

test("a node that no longer leads pushes nothing: not its task branch, not the target", async (t) => {
  const { bare, clone, repo } = await farmClone(t);
  const before = branchOn(bare, "main");
  const d = delivery({ repo, clone, leads: false });
  assert.equal(await d.pushBranch("t1"), "this farm node no longer leads (another took over): it pushes nothing");
  assert.equal(branchOn(bare, integrationBranch("t1")), null, "the task branch was not pushed");
  const res = await d.deliver("t1", "main", "Merge task t1\n\nOptimus-Task: t1");
  assert.deepEqual(res, { ok: false, into: "main", reason: "this farm node no longer leads (another took over): it pushes nothing" });
  assert.equal(branchOn(bare, "main"), before, "the origin's main did not move");
  // The node that leads pushes as before.
  const leader = delivery({ repo, clone, leads: true });
  assert.equal((await leader.deliver("t1", "main", "Merge task t1\n\nOptimus-Task: t1")).ok, true);
  assert.notEqual(branchOn(bare, "main"), before);
});
