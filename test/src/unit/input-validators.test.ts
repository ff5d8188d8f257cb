import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  branchNameProblem,
  CreateTaskInput,
  MAX_MANIFEST_BYTES,
  multiLineTextProblem,
  parseManifestYaml,
  parseYamlWithLimits,
  PlanProposal,
  repoPathProblem,
  singleLineTextProblem,
  TargetBranch,
  targetBranchProblem,
  TaskId,
  TaskManifest,
  UnitId,
  UnitSpec,
} from "@optimus/shared";
import { loadConfig } from "@optimus/farm-server/dist/cli/context.js";
import { printable } from "@optimus/farm-server/dist/cli/printable.js";
import { renderStatus } from "@optimus/farm-server/dist/cli/status/rows.js";
import { filesInScope, readWorktreeFile } from "@optimus/farm-server/dist/worker/worktree-files.js";

const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const tempDir = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};

/** Billion laughs in YAML: each level repeats the one before ten times. */
const aliasBomb = (levels = 9) => {
  const lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < levels; i++)
    lines.push(
      `l${i}: &l${i} [${Array(10)
        .fill(`*l${i - 1}`)
        .join(",")}]`,
    );
  return lines.join("\n") + "\n";
};

test("branch names: the validator agrees with `git check-ref-format --branch`", () => {
  const names = [
    "main",
    "feature/login",
    "release-1.2",
    "a./b",
    "a/@",
    "é",
    "a@b",
    "lock",
    "a.lock.b",
    "refs/heads/x",
    "x.y",
    "a-",
    "UPPER/case",
    "-x",
    "-",
    "a..b",
    "x..",
    "x.lock",
    "a/b.lock/c",
    "a/b.lock",
    ".x",
    "a/.x",
    ".lock",
    "a/.lock",
    "a b",
    "a\tb",
    "a\u007fb",
    "a\u0001b",
    "a~b",
    "a~",
    "a^b",
    "a:b",
    "a?b",
    "a*b",
    "a[b",
    "a\\b",
    "a@{1}",
    "@{-1}",
    "x/",
    "/x",
    "a//b",
    "a.",
    "HEAD",
    "",
  ];
  const cwd = tempDir("optimus-refname-"); // not a repository: git judges the name alone
  for (const name of names) {
    const git = spawnSync("git", ["check-ref-format", "--branch", name], { cwd }).status === 0;
    const ours = branchNameProblem(name) === undefined;
    assert.equal(
      ours,
      git,
      `${JSON.stringify(name)}: git says ${git ? "valid" : "invalid"}, the validator ${ours ? "valid" : `invalid (${branchNameProblem(name)})`}`,
    );
  }
  // Stricter than git on purpose: '@' is git's shorthand for HEAD, never a target branch.
  assert.match(branchNameProblem("@")!, /'@'/);
});

test("target branches: valid git names outside the farm's optimus/ namespace", () => {
  assert.equal(targetBranchProblem("main"), undefined);
  assert.equal(targetBranchProblem("release/2.0"), undefined);
  for (const b of ["optimus/foo", "optimus", "Optimus/x", "OPTIMUS"]) assert.match(targetBranchProblem(b)!, /optimus\//, b);
  for (const b of ["-x", "a..b", "x.lock", "x/"]) assert.match(targetBranchProblem(b)!, /^is not a valid git branch name: it /, b);
  assert.equal(TargetBranch.safeParse("x".repeat(201)).success, false);
});

test("task and unit ids: nothing git or the farm's branch names cannot take", () => {
  for (const id of ["a", "fix-login-3f2a1b", "v1.2", "a_b", "u1"]) {
    assert.ok(TaskId.safeParse(id).success, id);
    assert.ok(UnitId.safeParse(id).success, id);
  }
  for (const id of ["x.lock", "x.", "-x", ".x", "a..b", "A", "a/b", "a b", "", "x".repeat(65), "a\u0000"]) {
    assert.equal(TaskId.safeParse(id).success, false, id);
    assert.equal(UnitId.safeParse(id).success, false, id);
  }
  // "--" separates task and unit in `optimus/<task>--<unit>-<n>`: task a--b/unit c would meet task a/unit b--c.
  assert.equal(TaskId.safeParse("a--b").success, false);
  assert.equal(UnitId.safeParse("b--c").success, true);
  assert.match(TaskId.safeParse("x.lock").error!.issues[0]!.message, /\.lock/);
});

test("unit files: repository-relative paths inside the repository, one validator for every schema", () => {
  for (const p of [
    "src/app.ts",
    "README.md",
    "src/",
    "docs/adr/0001-x.md",
    ".github/workflows/ci.yml",
    "a..b/c",
    "...",
    ".gitignore",
    "src/.gitkeep",
    "é/ü.ts",
  ]) {
    assert.equal(repoPathProblem(p), undefined, p);
  }
  const refused: Array<[string, RegExp]> = [
    ["../../etc/passwd", /'\.\.'/],
    ["src/../../x", /'\.\.'/],
    ["..", /'\.\.'/],
    ["/etc/passwd", /absolute/],
    ["C:/Windows/win.ini", /absolute/],
    ["c:x", /absolute/],
    ["src\\app.ts", /'\/'/],
    ["./src/a.ts", /'\.'/],
    ["src//a.ts", /empty/],
    ["src/./a.ts", /'\.'/],
    ["", /empty/],
    ["/", /absolute/],
    ["//", /absolute/],
    [".git/config", /\.git/],
    ["sub/.GIT/hooks/pre-commit", /\.git/],
    [".git", /\.git/],
    [".git./x", /\.git/],
    [".git /x", /\.git/],
    ["a\u0000b", /control/],
    ["a\nb", /control/],
    ["a\u001b[31m", /control/],
    ["a\u009bb", /control/],
    ["x".repeat(1025), /at most 1024/],
  ];
  for (const [p, why] of refused) assert.match(repoPathProblem(p) ?? "(accepted)", why, JSON.stringify(p));
  // The same rule in every schema that carries unit files.
  const unit = (files: string[]) => UnitSpec.safeParse({ id: "a", goal: "g", files }).success;
  const task = (files: string[]) => CreateTaskInput.safeParse({ title: "t", files }).success;
  const plan = (files: string[]) => PlanProposal.safeParse({ units: [{ id: "a", goal: "g", files }] }).success;
  const manifest = (files: string[]) => TaskManifest.safeParse({ title: "t", units: [{ id: "a", goal: "g", files }] }).success;
  for (const check of [unit, task, plan, manifest]) {
    assert.equal(check(["src/a.ts", "src/"]), true, check.name);
    for (const bad of ["../../etc/passwd", "/etc/passwd", ".git/config"]) assert.equal(check([bad]), false, `${check.name} ${bad}`);
  }
});

test("titles and goals: no control characters; goals keep newlines and tabs", () => {
  assert.equal(singleLineTextProblem("Fix the login bug"), undefined);
  for (const s of ["a\u0000", "\u001b[31mred", "a\nb", "a\tb", "bell\u0007", "a\u007f", "csi\u009b"])
    assert.match(singleLineTextProblem(s)!, /control characters/, JSON.stringify(s));
  assert.equal(multiLineTextProblem("line one\n\tline two\r\nthree"), undefined);
  for (const s of ["a\u0000", "\u001b]0;title\u0007", "a\rb", "a\u000bb", "a\u009b"])
    assert.match(multiLineTextProblem(s)!, /control characters/, JSON.stringify(s));
  assert.equal(CreateTaskInput.safeParse({ title: "\u001b[31mred\u001b[0m\u0000" }).success, false);
  assert.equal(CreateTaskInput.safeParse({ title: "  padded  " }).data?.title, "padded");
  assert.equal(UnitSpec.safeParse({ id: "a", goal: "g\u0000" }).success, false);
  assert.equal(TaskManifest.safeParse({ title: "t\u001b[2J", units: [{ id: "a", goal: "g" }] }).success, false);
});

test("YAML limits: an alias bomb, an oversized text and a too-deep document are problems, never exceptions", () => {
  const bomb = parseManifestYaml(aliasBomb() + "title: boom\nunits:\n  - id: a\n    goal: *l8\n", "bomb.yaml");
  assert.equal(bomb.ok, false);
  assert.match(
    bomb.ok ? "" : `${bomb.problems[0]!.file}:${bomb.problems[0]!.line}:${bomb.problems[0]!.column}: ${bomb.problems[0]!.message}`,
    /^bomb\.yaml:2:\d+: .*alias bomb/,
  );
  const big = parseManifestYaml("title: t\nunits:\n  - id: a\n    goal: g\n# " + "x".repeat(MAX_MANIFEST_BYTES) + "\n", "big.yaml");
  assert.equal(big.ok, false);
  assert.match(big.ok ? "" : big.problems[0]!.message, /larger than the limit of 256 KiB/);
  // Multi-byte text counts in bytes: 100,000 'é' are 200,000 bytes (fits), 150,000 are 300,000 (does not).
  assert.equal(parseYamlWithLimits(`x: "${"é".repeat(100_000)}"`, { maxBytes: MAX_MANIFEST_BYTES, what: "t" }).ok, true);
  assert.equal(parseYamlWithLimits(`x: "${"é".repeat(150_000)}"`, { maxBytes: MAX_MANIFEST_BYTES, what: "t" }).ok, false);
  const deep = parseManifestYaml("[".repeat(100_000), "deep.yaml");
  assert.equal(deep.ok, false);
  // A few aliases are fine.
  assert.equal(
    parseManifestYaml("title: t\nunits:\n  - id: a\n    goal: &g do it\n  - id: b\n    goal: *g\n  - id: c\n    goal: *g\n").ok,
    true,
  );
});

test("config.yaml is read under the same limits: an alias bomb is one clear error", () => {
  const repo = tempDir("optimus-config-");
  mkdirSync(join(repo, ".optimus"));
  writeFileSync(join(repo, ".optimus", "config.yaml"), aliasBomb() + "port: 7420\n");
  assert.throws(
    () => loadConfig(repo),
    (err: Error) => err.name === "CliError" && /^\.optimus\/config\.yaml:2:\d+: .*alias bomb/.test(err.message),
  );
  writeFileSync(join(repo, ".optimus", "config.yaml"), "port: 1\n# " + "x".repeat(300 * 1024) + "\n");
  assert.throws(
    () => loadConfig(repo),
    (err: Error) => err.name === "CliError" && /larger than the limit of 256 KiB/.test(err.message),
  );
  writeFileSync(join(repo, ".optimus", "config.yaml"), "- a list\n");
  assert.throws(
    () => loadConfig(repo),
    (err: Error) => err.name === "CliError" && /must be a mapping/.test(err.message),
  );
  writeFileSync(join(repo, ".optimus", "config.yaml"), "port: 7421\n");
  assert.equal(loadConfig(repo).port, 7421);
});

test("the worker reads unit files only inside its worktree, after symbolic links", () => {
  const outside = tempDir("optimus-outside-");
  writeFileSync(join(outside, "secret"), "TOKEN=opt_secret\n");
  const wt = tempDir("optimus-wt-");
  mkdirSync(join(wt, "src"));
  writeFileSync(join(wt, "src", "a.ts"), "export const a = 1;\n");
  symlinkSync(join(outside, "secret"), join(wt, "src", "notes.md"));
  symlinkSync(outside, join(wt, "linked"));
  symlinkSync("a.ts", join(wt, "src", "alias.ts")); // inside the worktree: fine
  assert.deepEqual(readWorktreeFile(wt, "src/a.ts"), { kind: "file", content: "export const a = 1;\n" });
  assert.deepEqual(readWorktreeFile(wt, "src/alias.ts"), { kind: "file", content: "export const a = 1;\n" });
  assert.equal(readWorktreeFile(wt, "src/notes.md").kind, "refused");
  assert.equal(readWorktreeFile(wt, "linked/secret").kind, "refused");
  assert.equal(readWorktreeFile(wt, "linked/").kind, "refused");
  assert.equal(readWorktreeFile(wt, "../" + outside.split("/").pop() + "/secret").kind, "refused");
  assert.equal(readWorktreeFile(wt, join(outside, "secret")).kind, "refused");
  const shown = filesInScope(wt, ["src/", "linked/secret", "/etc/passwd", "../../etc/passwd"]);
  const text = JSON.stringify(shown);
  assert.doesNotMatch(text, /opt_secret|root:/);
  assert.match(text, /export const a = 1/);
  assert.deepEqual(shown.map((f) => f.path).sort(), [
    "../../etc/passwd",
    "/etc/passwd",
    "linked/secret",
    "src/a.ts",
    "src/alias.ts",
    "src/notes.md",
  ]);
});

test("the CLI prints text from the farm without escape sequences or control characters", () => {
  assert.equal(printable("\u001b[31mred\u001b[0m"), "red");
  assert.equal(printable("\u001b]0;pwned\u0007title"), "title");
  assert.equal(printable("\u001b]8;;http://x\u001b\\link\u001b]8;;\u001b\\"), "link");
  assert.equal(printable("a\u0000b\u0007c\rd\u009b2Je"), "abcde");
  assert.equal(printable("\u001bcreset"), "reset");
  assert.equal(printable("one\ntwo\tthree"), "one two three");
  assert.equal(printable("one\ntwo", { multiline: true }), "one\ntwo");
  const now = Date.now();
  const out = renderStatus(
    [{ taskId: "t", title: "\u001b[2J\u001b[Hfake\u0000 title", state: "running", units: ["u"], counts: {}, createdAt: now } as never],
    new Map([
      [
        "t",
        [
          {
            unitId: "u",
            state: "dead",
            attempt: 1,
            worker: "w\u001b[5m",
            updatedAt: now,
            reason: "\u001b]0;x\u0007boom\nsecond line",
            spec: { goal: "g" },
          } as never,
        ],
      ],
    ]),
  );
  assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, JSON.stringify(out));
  assert.match(out, /fake title/);
  assert.match(out, /boom second line/);
});
