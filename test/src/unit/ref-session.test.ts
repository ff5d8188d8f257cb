import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RefSession } from "@optimus/farm-server";

const git = (dir: string, ...args: string[]) => execFileSync("git", args, { cwd: dir }).toString().trim();

test("ref transactions share one git process; a refused one changes nothing, says why, and the next one works", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-refs-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  git(dir, "init", "-q", "--bare");
  const c = git(dir, "-c", "user.name=t", "-c", "user.email=t@x", "commit-tree", git(dir, "mktree"), "-m", "first");
  const refs = new RefSession(dir);
  t.after(() => refs.close());

  await refs.apply([`create refs/heads/optimus/a ${c}`, `create refs/heads/optimus/b ${c}`]);
  await refs.apply([`create refs/heads/optimus/c ${c}`]);
  assert.deepEqual(git(dir, "for-each-ref", "--format=%(refname)").split("\n"), [
    "refs/heads/optimus/a",
    "refs/heads/optimus/b",
    "refs/heads/optimus/c",
  ]);

  // All or nothing: d is not created because a exists.
  await assert.rejects(
    refs.apply([`create refs/heads/optimus/d ${c}`, `create refs/heads/optimus/a ${c}`]),
    /refs\/heads\/optimus\/a.*(exists|already)/,
  );
  assert.equal(git(dir, "for-each-ref", "--format=%(refname)", "refs/heads/optimus/d"), "");
  await refs.apply([`create refs/heads/optimus/d ${c}`]);
  assert.equal(git(dir, "rev-parse", "refs/heads/optimus/d"), c);
  await assert.rejects(refs.apply(["create refs/heads/x\ncreate refs/heads/y " + c]), /line break/);
  refs.close();
  await assert.rejects(refs.apply([`create refs/heads/optimus/e ${c}`]), /closed/);
});
