/**
 * The patch check on its own (issue 15): the rules a change meets before it goes near a branch
 * (prloop/patch-policy.ts), first on the entries git reports, then on patches read by git itself.
 * Each refusal is named as a worker's author would read it: which file, which rule, which limit.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { readPatchWithGit, type ChangedEntry } from "@optimus/farm-server/dist/git/patch-reading.js";
import { checkChange, inScope, type ChangeLimits } from "@optimus/farm-server/dist/prloop/patch-policy.js";
import { makeRepo } from "../helpers/repo.js";

const limits: ChangeLimits = { maxFileBytes: 1000, maxFilesPerPatch: 3 };
const OID = "1".repeat(40);
const ZERO = "0".repeat(40);
/** A file the patch adds or modifies, as git's raw listing reports it. */
const entry = (path: string, o: Partial<ChangedEntry> = {}): ChangedEntry => ({
  path,
  status: "M",
  oldMode: "100644",
  newMode: "100644",
  newOid: OID,
  added: 1,
  removed: 0,
  size: 10,
  ...o,
});
const refusal = (entries: ChangedEntry[], scope: string[] = [], l: ChangeLimits = limits): string => {
  const r = checkChange(entries, scope, l);
  return r.ok ? "(accepted)" : r.error;
};

test("a change within every rule is accepted, and its facts are what the risk score reads", () => {
  const r = checkChange(
    [
      entry("src/b.ts", { added: 5, removed: 2 }),
      entry("src/a.ts", { status: "A", oldMode: "000000", added: 3 }),
      entry("old.txt", { status: "D", newMode: "000000", newOid: ZERO, added: 0, removed: 7, size: null }),
    ],
    [],
    limits,
  );
  assert.deepEqual(r, { ok: true, facts: { files: ["old.txt", "src/a.ts", "src/b.ts"], added: 8, removed: 9 } });
});

test("a patch that changes nothing is refused", () => {
  assert.equal(refusal([]), "the patch changes nothing");
});

test("file count: at the limit is accepted; one more is refused, naming both numbers", () => {
  const files = (n: number) => Array.from({ length: n }, (_, i) => entry(`src/f${i}.ts`));
  assert.equal(refusal(files(3)), "(accepted)");
  assert.equal(refusal(files(4)), "the patch touches 4 files; the limit is 3");
});

test("file size: a new blob at the limit is accepted; one byte more is refused with the file and both sizes; a deletion has no size", () => {
  assert.equal(refusal([entry("src/a.ts", { size: 1000 })]), "(accepted)");
  assert.equal(refusal([entry("src/a.ts", { size: 1001 })]), "the patch makes src/a.ts 1001 bytes; the limit is 1000");
  assert.equal(
    refusal([entry("big.bin", { status: "D", newMode: "000000", newOid: ZERO, size: null })]),
    "(accepted)",
    "deleting a big file is fine",
  );
});

test("a binary file: no line counts, judged by its blob's size", () => {
  const bin = entry("assets/logo.png", { status: "A", oldMode: "000000", added: null, removed: null, size: 400 });
  const ok = checkChange([bin, entry("src/a.ts", { added: 2, removed: 1 })], [], limits);
  assert.deepEqual(ok.ok && ok.facts, { files: ["assets/logo.png", "src/a.ts"], added: 2, removed: 1 }, "a binary file counts no lines");
  assert.equal(refusal([{ ...bin, size: 5000 }]), "the patch makes assets/logo.png 5000 bytes; the limit is 1000");
});

test("paths: every path git reports meets the one path rule, and the refusal names the path and the rule", () => {
  assert.equal(
    refusal([entry(".git/hooks/pre-commit")]),
    `the patch touches ".git/hooks/pre-commit": the path must not point into .git (nor a name file systems take for it, such as .GIT, .git. or git~1); a change touches the work tree, never git's own files`,
  );
  assert.match(refusal([entry("sub/.GIT/config")]), /^the patch touches "sub\/\.GIT\/config": the path must not point into \.git/);
  assert.match(refusal([entry("git~1/config")]), /"git~1\/config": the path must not point into \.git/, "Windows' short name for .git");
  assert.match(refusal([entry("../outside")]), /"\.\.\/outside": the path must not contain '\.\.'/);
  assert.match(refusal([entry("/etc/passwd")]), /"\/etc\/passwd": the path must be relative to the repository root/);
  assert.match(
    refusal([entry("a\u001b[2Jb")]),
    /"a\\u001b\[2Jb": the path must not contain control characters \(found U\+001B at position 2\)/,
    "the escape is shown escaped, never sent to a terminal",
  );
  assert.match(refusal([entry("csi\u009bx")]), /"csi\\u009bx": the path must not contain control characters \(found U\+009B/);
});

test("scope: only the unit's files and folders; the first file outside is named with the scope", () => {
  const scope = ["src/", "README.md", "docs"];
  assert.equal(refusal([entry("src/deep/a.ts"), entry("README.md"), entry("docs/x.md")], scope), "(accepted)");
  assert.equal(
    refusal([entry("src/a.ts"), entry("package.json")], scope),
    "the patch touches package.json, which is outside the unit's files (src/, README.md, docs)",
  );
  assert.match(refusal([entry("srcx/a.ts")], ["src/"]), /touches srcx\/a\.ts, which is outside/, "a folder is not a prefix of a name");
  assert.match(refusal([entry("docsx")], ["docs"]), /touches docsx, which is outside/);
  assert.match(refusal([entry("README.md.bak")], ["README.md"]), /outside/);
  assert.equal(refusal([entry("anything/at/all.ts")], []), "(accepted)", "a unit without files may touch any file");
  assert.equal(inScope("docs/a/b.md", ["docs"]), true, "a scope entry without '/' that is a folder covers what is under it");
});

test("the path rule comes before scope: a path into .git is refused as such, even outside the scope", () => {
  assert.match(refusal([entry(".git/config")], ["src/"]), /must not point into \.git/);
});

test("symbolic links: making, keeping or turning a link is refused unless allowed; deleting one is fine", () => {
  const made = entry("src/link", { status: "A", oldMode: "000000", newMode: "120000" });
  assert.equal(refusal([made]), "the patch makes src/link a symbolic link, which is not allowed");
  assert.equal(
    refusal([entry("src/link", { oldMode: "120000", newMode: "120000" })]),
    "the patch makes src/link a symbolic link, which is not allowed",
    "retargeting a link",
  );
  assert.match(
    refusal([entry("src/link", { status: "T", oldMode: "120000", newMode: "100644" })]),
    /src\/link a symbolic link, which is not allowed/,
    "a link turned into a file: git follows neither, the farm refuses both",
  );
  assert.equal(refusal([entry("src/link", { status: "D", oldMode: "120000", newMode: "000000", newOid: ZERO, size: null })]), "(accepted)");
  assert.equal(refusal([made], [], { ...limits, allowSymlinks: true }), "(accepted)");
});

test("submodules (gitlinks): adding, moving or removing one is refused unless allowed", () => {
  const added = entry("vendor/lib", { status: "A", oldMode: "000000", newMode: "160000", size: null });
  assert.equal(refusal([added]), "the patch adds or changes a submodule (gitlink) at vendor/lib, which is not allowed");
  assert.match(
    refusal([entry("vendor/lib", { status: "D", oldMode: "160000", newMode: "000000", newOid: ZERO, size: null })]),
    /submodule \(gitlink\) at vendor\/lib/,
  );
  assert.equal(refusal([added], [], { ...limits, allowSubmodules: true }), "(accepted)");
});

test("executables: a file made executable is accepted and named for the risk score; one already executable is not", () => {
  const r = checkChange(
    [
      entry("run.sh", { oldMode: "100644", newMode: "100755" }),
      entry("new.sh", { status: "A", oldMode: "000000", newMode: "100755" }),
      entry("old.sh", { oldMode: "100755", newMode: "100755" }),
    ],
    [],
    limits,
  );
  assert.deepEqual(r.ok && r.facts.executables, ["run.sh", "new.sh"]);
  const plain = checkChange([entry("a.ts")], [], limits);
  assert.equal(plain.ok && "executables" in plain.facts, false, "no executables: the field is absent");
});

test("the first broken rule is the answer: count before paths, paths before scope, scope before modes, modes before size", () => {
  assert.match(refusal([entry("../a"), entry("b"), entry("c"), entry("d")]), /touches 4 files/);
  assert.match(refusal([entry("out.ts", { newMode: "120000" })], ["src/"]), /outside the unit's files/);
  assert.match(refusal([entry("src/l", { newMode: "120000", size: 99_999 })], ["src/"]), /symbolic link/);
});

/** A repository with `files` committed on main; `change` edits its work tree, and the patch is what `git diff --binary` says. */
function gitPatch(
  t: { after(fn: () => void): void },
  files: Record<string, string>,
  change: (dir: string) => void,
): { repo: string; patch: string } {
  const repo = makeRepo(t, "optimus-patch-check-");
  const git = (...args: string[]) =>
    execFileSync("git", ["-c", "user.name=T", "-c", "user.email=t@localhost", ...args], { cwd: repo, stdio: "pipe" }).toString();
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(repo, p)), { recursive: true });
    writeFileSync(join(repo, p), c);
  }
  git("add", "-A");
  git("commit", "-q", "-m", "files");
  change(repo);
  git("add", "-A");
  const patch = git("diff", "--cached", "--binary");
  git("reset", "-q", "--hard", "HEAD");
  git("clean", "-fdq");
  return { repo, patch };
}

async function judged(repo: string, patch: string, scope: string[] = [], l: ChangeLimits = limits) {
  const reading = await readPatchWithGit(repo, "HEAD", patch);
  assert.ok(reading.ok, `git applies it: ${!reading.ok && reading.error}`);
  return { entries: reading.entries, verdict: checkChange(reading.entries, scope, l) };
}

test("through git's reading: modes are git's (0775 reads as 100755), and the size is the blob's, not the patch's", async (t) => {
  const { repo, patch } = gitPatch(t, { "tool.sh": "echo hi\n", "src/a.ts": "x\n" }, (dir) => {
    chmodSync(join(dir, "tool.sh"), 0o775);
    writeFileSync(join(dir, "src/a.ts"), "y\n".repeat(600)); // 1200 bytes; the patch text is larger still
  });
  const { entries, verdict } = await judged(repo, patch, [], { ...limits, maxFileBytes: 2000 });
  assert.deepEqual(
    entries.map((e) => [e.path, e.newMode, e.size]),
    [
      ["src/a.ts", "100644", 1200],
      ["tool.sh", "100755", 8],
    ],
  );
  assert.deepEqual(verdict.ok && verdict.facts, { files: ["src/a.ts", "tool.sh"], added: 600, removed: 1, executables: ["tool.sh"] });
  const strict = await judged(repo, patch);
  assert.equal(strict.verdict.ok ? "(accepted)" : strict.verdict.error, "the patch makes src/a.ts 1200 bytes; the limit is 1000");
});

test("through git's reading: a binary file's size is counted, its lines are not; a symlink is a symlink", async (t) => {
  const { repo, patch } = gitPatch(t, { "README.md": "# r\n" }, (dir) => {
    writeFileSync(join(dir, "logo.bin"), Buffer.from([0, 1, 2, 255, 0, 7]));
    symlinkSync("/etc/passwd", join(dir, "pw"));
  });
  const { entries, verdict } = await judged(repo, patch);
  const bin = entries.find((e) => e.path === "logo.bin")!;
  assert.deepEqual([bin.added, bin.removed, bin.size], [null, null, 6]);
  assert.equal(entries.find((e) => e.path === "pw")!.newMode, "120000");
  assert.equal(verdict.ok ? "(accepted)" : verdict.error, "the patch makes pw a symbolic link, which is not allowed");
});
