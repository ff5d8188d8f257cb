/**
 * Patches are judged by what git applies, not by what a text reader sees. Each case here is a patch
 * whose effect a line-by-line reader of the patch text misjudged (the hand-written checker this
 * replaced let every one of them through): git's own reading, on a throwaway index, catches it.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { ServerConfig } from "@optimus/shared";
import { FarmRepo } from "@optimus/farm-server/dist/git/farm-repo.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";
import { checkChange } from "@optimus/farm-server/dist/prloop/patch-policy.js";
import { assessRisk } from "@optimus/farm-server/dist/prloop/risk.js";
import { git, makeFixtureRepo, patchFor } from "../helpers/fixture.js";

const limits = { maxFileBytes: 1024 * 1024, maxFilesPerPatch: 200 };

async function judge(repo: string, patch: string, scope: string[]) {
  const farmRepo = new FarmRepo(repo, `${stateDirFor(repo)}/worktrees`);
  const base = (await farmRepo.revParse("main"))!;
  const reading = await farmRepo.readPatch(base, patch);
  if (!reading.ok) return { applies: false as const, error: reading.error };
  return { applies: true as const, entries: reading.entries, verdict: checkChange(reading.entries, scope, limits) };
}

/** A binary hunk, a blank line, then a plain unified diff: git applies both; a reader that skips binary sections sees only the first. */
function hiddenBehindBinary(repo: string, hiddenPath: string, from: string, to: string): string {
  const binary = patchFor(repo, "main", { "src/logo.bin": Buffer.from([0, 1, 2, 3, 0, 255]).toString("latin1") });
  assert.match(binary, /GIT binary patch/);
  const fromLines = from.split("\n").filter(Boolean);
  const toLines = to.split("\n").filter(Boolean);
  const hidden = [
    `--- a/${hiddenPath}`,
    `+++ b/${hiddenPath}`,
    `@@ -1,${fromLines.length} +1,${toLines.length} @@`,
    ...fromLines.map((l) => `-${l}`),
    ...toLines.map((l) => `+${l}`),
    "",
  ].join("\n");
  return `${binary.trimEnd()}\n\n${hidden}`;
}

test("a change hidden after a binary hunk is seen by git and refused as out of scope", async (t) => {
  const repo = makeFixtureRepo(t);
  git(repo, "add", ".optimus/config.yaml");
  git(repo, "commit", "-q", "-m", "the farm's configuration, committed");
  const config = git(repo, "show", "main:.optimus/config.yaml");
  const patch = hiddenBehindBinary(repo, ".optimus/config.yaml", config, "prloop: { eval: [] }\npolicy: { protectedPaths: [] }\n");
  const r = await judge(repo, patch, ["src/"]);
  assert.ok(r.applies, `git applies it: ${!r.applies && r.error}`);
  assert.deepEqual(r.entries.map((e) => e.path).sort(), [".optimus/config.yaml", "src/logo.bin"], "git changes both files");
  assert.equal(r.verdict.ok, false);
  assert.match(!r.verdict.ok ? r.verdict.error : "", /touches \.optimus\/config\.yaml, which is outside the unit's files \(src\/\)/);
});

test("odd symlink and gitlink modes are what git says they are: refused", async (t) => {
  const repo = makeFixtureRepo(t);
  // 120777 is not the text "120000", but git reads any 12xxxx mode as a symbolic link.
  const symlink = [
    "diff --git a/src/token b/src/token",
    "new file mode 120777",
    "index 0000000..1111111",
    "--- /dev/null",
    "+++ b/src/token",
    "@@ -0,0 +1 @@",
    "+../.optimus/state/admin.token",
    "\\ No newline at end of file",
    "",
  ].join("\n");
  const s = await judge(repo, symlink, ["src/"]);
  assert.ok(s.applies, `git applies it: ${!s.applies && s.error}`);
  assert.equal(s.entries[0]!.newMode, "120000", "git records a symlink");
  assert.match(!s.verdict.ok ? s.verdict.error : "", /makes src\/token a symbolic link, which is not allowed/);

  const gitlink = [
    "diff --git a/src/vendor b/src/vendor",
    "new file mode 160644",
    "index 0000000..2222222",
    "--- /dev/null",
    "+++ b/src/vendor",
    "@@ -0,0 +1 @@",
    "+Subproject commit 2222222222222222222222222222222222222222",
    "",
  ].join("\n");
  const g = await judge(repo, gitlink, ["src/"]);
  if (g.applies) {
    assert.equal(g.entries[0]!.newMode, "160000", "git records a gitlink");
    assert.match(!g.verdict.ok ? g.verdict.error : "", /submodule \(gitlink\) at src\/vendor, which is not allowed/);
  } else {
    assert.match(g.error, /./, "git itself refuses it");
  }
});

test("a plain symlink in scope and a path git reads as .git are refused; a file made executable is a risk reason", async (t) => {
  const repo = makeFixtureRepo(t);
  const link = [
    "diff --git a/src/l b/src/l",
    "new file mode 120000",
    "index 0000000..3333333",
    "--- /dev/null",
    "+++ b/src/l",
    "@@ -0,0 +1 @@",
    "+/etc/passwd",
    "\\ No newline at end of file",
    "",
  ].join("\n");
  const l = await judge(repo, link, []);
  assert.ok(l.applies);
  assert.equal(l.verdict.ok, false);

  const exe = ["diff --git a/src/add.js b/src/add.js", "old mode 100644", "new mode 100755", ""].join("\n");
  const e = await judge(repo, exe, ["src/"]);
  assert.ok(e.applies, `git applies it: ${!e.applies && e.error}`);
  assert.ok(e.verdict.ok);
  const facts = e.verdict.ok ? e.verdict.facts : null;
  assert.deepEqual(facts?.executables, ["src/add.js"]);
  const risk = assessRisk({ diff: facts!, evals: [], green: true, unreviewed: false }, ServerConfig.parse({}).policy, true);
  assert.match(risk.reasons.join("; "), /makes a file executable: src\/add\.js/);
  assert.equal(risk.level, "medium");
});

test("a patch git cannot apply is refused with git's reason, and the repository is untouched", async (t) => {
  const repo = makeFixtureRepo(t);
  const before = git(repo, "for-each-ref");
  const status = git(repo, "status", "--porcelain");
  const r = await judge(repo, "diff --git a/src/none.js b/src/none.js\n--- a/src/none.js\n+++ b/src/none.js\n@@ -1 +1 @@\n-x\n+y\n", [
    "src/",
  ]);
  assert.equal(r.applies, false);
  assert.match(!r.applies ? r.error : "", /src\/none\.js/);
  assert.equal(git(repo, "for-each-ref"), before);
  assert.equal(git(repo, "status", "--porcelain"), status);
});
