import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { errorCode } from "@optimus/farm-server";
import { runCli } from "../helpers/cli.js";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";

// Hostile input from a repository, an editor or a worker: each gets one clear error (a skipped
// manifest with a warning, or a 400 with the field named), changes nothing, and the farm stays up.

const GOOD = (title: string) => `title: ${title}\nunits:\n  - id: a\n    goal: do a\n`;

/** Billion laughs: nine levels of ten aliases each expand to 10^9 strings. */
const ALIAS_BOMB = [
  'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
  ...["b", "c", "d", "e", "f", "g", "h", "i"].map((k, i) => {
    const prev = "abcdefgh"[i]!;
    return `${k}: &${k} [${Array(10).fill(`*${prev}`).join(",")}]`;
  }),
  "title: boom",
  "units:",
  "  - id: a",
  "    goal: *i",
  "",
].join("\n");

const writeIn = (repo: string, rel: string, text: string | Buffer) => {
  mkdirSync(dirname(join(repo, rel)), { recursive: true });
  writeFileSync(join(repo, rel), text);
};
const manifest = (taskId: string) => `.optimus/tasks/${taskId}/manifest.yaml`;
const commitAll = (repo: string) =>
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", "add", "-A"], { cwd: repo }) &&
  execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@localhost", "commit", "-q", "-m", "manifests"], { cwd: repo });

const taskIds = async (farm: ProcessTestFarm) =>
  (await httpClientFor(farm.url, farm.adminToken).tasks.list.query()).map((x) => x.taskId).sort();
const alive = async (farm: ProcessTestFarm) => assert.equal((await fetch(`${farm.url}/healthz`)).status, 200, "the farm is still up");
const count = (text: string, needle: string) => text.split(needle).length - 1;

test("a committed alias-bomb manifest is skipped with one warning; the farm starts and imports the good one; task scan likewise", async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  writeIn(repo, manifest("good"), GOOD("good one"));
  writeIn(repo, manifest("bomb"), ALIAS_BOMB);
  commitAll(repo);
  const farm = await startTestFarm(t, { mode: "process", repo });
  assert.deepEqual(await taskIds(farm), ["good"]);
  assert.equal(count(farm.log, `skipped ${manifest("bomb")}`), 1, farm.log);
  assert.match(farm.log, /skipped \.optimus\/tasks\/bomb\/manifest\.yaml:\d+:\d+: .*alias/i);
  assert.doesNotMatch(farm.log, /internal error|ReferenceError|resource exhaustion attack/i);

  // New manifests after start: `task scan` imports the good one and names the bad one.
  writeIn(repo, manifest("good2"), GOOD("good two"));
  writeIn(repo, manifest("bomb2"), ALIAS_BOMB);
  const r = await runCli(["task", "scan"], { cwd: repo, env: { OPTIMUS_FARM: farm.url } });
  assert.match(r.stdout, /^imported 1, rebuilt 0, rejected 2$/m, r.stdout + r.stderr);
  assert.match(r.stderr, /skipped \.optimus\/tasks\/bomb2\/manifest\.yaml:\d+:\d+: .*alias/i);
  assert.doesNotMatch(r.stderr, /internal error/i);
  assert.equal(r.code, 1, "rejected manifests make the scan exit 1");
  assert.deepEqual(await taskIds(farm), ["good", "good2"]);
  await alive(farm);
});

test("oversized, unreadable and out-of-repository manifests are skipped one by one; the good one is imported", async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  writeIn(repo, manifest("good"), GOOD("good one"));
  // Valid YAML, but 300 KiB of it (a comment): over the per-manifest limit.
  writeIn(repo, manifest("huge"), GOOD("huge") + `# ${"x".repeat(300 * 1024)}\n`);
  mkdirSync(join(repo, manifest("folder")), { recursive: true }); // a folder named manifest.yaml
  writeFileSync(join(repo, manifest("folder"), "keep"), "");
  writeIn(
    repo,
    manifest("latin1"),
    Buffer.concat([Buffer.from("title: caf"), Buffer.from([0xe9, 0xff]), Buffer.from("\nunits:\n  - id: a\n    goal: g\n")]),
  );
  // A symlink to a perfectly good manifest outside the repository: never followed.
  const outside = mkdtempSync(join(tmpdir(), "optimus-outside-"));
  writeFileSync(join(outside, "manifest.yaml"), GOOD("from outside"));
  mkdirSync(join(repo, ".optimus/tasks/escape"), { recursive: true });
  symlinkSync(join(outside, "manifest.yaml"), join(repo, manifest("escape")));
  symlinkSync(outside, join(repo, ".optimus/tasks/escapedir"));
  commitAll(repo);
  const root = process.getuid?.() === 0;
  if (!root) {
    writeIn(repo, manifest("secret"), GOOD("secret"));
    chmodSync(join(repo, manifest("secret")), 0o000);
  }
  const farm = await startTestFarm(t, { mode: "process", repo });
  assert.deepEqual(await taskIds(farm), ["good"]);
  const expect: Array<[string, RegExp]> = [
    ["huge", /larger than the limit of 256 KiB/],
    ["folder", /is a folder, not a file/],
    ["latin1", /not valid UTF-8/],
    ["escape", /symbolic link .*outside the repository/],
    ...(root ? [] : ([["secret", /cannot be read/]] as Array<[string, RegExp]>)),
  ];
  for (const [id, why] of expect) {
    assert.equal(count(farm.log, `skipped ${manifest(id)}`), 1, `one warning for ${id}:\n${farm.log}`);
    assert.match(
      farm.log.split("\n").find((l) => l.includes(`skipped ${manifest(id)}`))!,
      why,
    );
  }
  assert.match(farm.log, /skipped \.optimus\/tasks\/escapedir\/manifest\.yaml:1:1: .*symbolic link .*outside the repository/);
  await alive(farm);
});

test("hostile input at the API, the CLI and in manifests: a clear error each, no state change, the farm alive", async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  const farm = await startTestFarm(t, { mode: "process", repo });
  const admin = httpClientFor(farm.url, farm.adminToken);
  const env = { OPTIMUS_FARM: farm.url };
  const cli = (...args: string[]) => runCli(args, { cwd: repo, env });
  /** A refused API call: 400 with the field named in its field errors, no internal error, no git output. */
  const refused = async (call: Promise<unknown>, field: string, why: RegExp) => {
    const err = (await call.then(
      () => null,
      (e: unknown) => e,
    )) as (Error & { data?: { fieldErrors?: Record<string, string[]> } }) | null;
    assert.ok(err, `expected a refusal for ${field}`);
    assert.equal(errorCode(err), "BAD_REQUEST", String(err));
    assert.match(err.message, new RegExp(`${field.replace(/[.[\]]/g, "\\$&")}: `), err.message);
    assert.match(err.message, why);
    // raw git output starts its lines with "fatal:" or "error:"; the farm's own messages never do
    assert.doesNotMatch(err.message, /internal error|fatal:|(^|\n)error:|usage: git/i);
  };

  await t.test("unit files outside the repository: refused at the API, `send`, `task import` and `task scan`", async () => {
    for (const f of ["../../etc/passwd", "/etc/passwd"]) {
      await refused(admin.tasks.create.mutate({ title: "read it", files: [f] }), "files.0", /inside the repository|relative/);
      await refused(
        admin.tasks.create.mutate({ title: "read it", units: [{ id: "a", goal: "g", files: [f] }] }),
        "units.0.files.0",
        /inside the repository|relative/,
      );
      const s = await cli("send", "read the password file", "--files", f);
      assert.equal(s.code, 2);
      assert.match(s.stderr, /^optimus: invalid input \(400\): files.*(inside the repository|relative)/m, s.stderr);
      writeIn(repo, "evil.yaml", `title: evil\nunits:\n  - id: a\n    goal: g\n    files: ["${f}"]\n`);
      const i = await cli("task", "import", "evil.yaml");
      assert.equal(i.code, 2);
      assert.match(i.stderr, /^optimus: evil\.yaml:5:\d+: units\[0\]\.files\[0\]: .*(inside the repository|relative)/m, i.stderr);
    }
    writeIn(repo, manifest("evil"), `title: evil\nunits:\n  - id: a\n    goal: g\n    files: [../../etc/passwd]\n`);
    const s = await cli("task", "scan");
    assert.match(s.stderr, /skipped \.optimus\/tasks\/evil\/manifest\.yaml:5:\d+: units\[0\]\.files\[0\]: /, s.stderr);
    for (const f of ["src/.git/hooks/pre-commit", ".GIT/config", "src\\a.ts", "C:/x", "./src//a.ts", "a\u0000b"]) {
      await refused(admin.tasks.create.mutate({ title: "t", files: [f] }), "files.0", /./);
    }
    assert.deepEqual(await taskIds(farm), []);
    await alive(farm);
  });

  await t.test("targetBranch must be a branch name git accepts, outside optimus/", async () => {
    for (const b of ["-x", "a..b", "x.lock", "optimus/foo", "a b", "refs/heads/../x", "@", "a@{1}", "x/", "/x", ".hidden"]) {
      await refused(admin.tasks.create.mutate({ title: "branch", targetBranch: b }), "targetBranch", /branch/);
    }
    writeIn(repo, "branch.yaml", "title: branch\ntargetBranch: optimus/foo\nunits:\n  - id: a\n    goal: g\n");
    const i = await cli("task", "import", "branch.yaml");
    assert.equal(i.code, 2);
    assert.match(i.stderr, /^optimus: branch\.yaml:2:\d+: targetBranch: .*optimus\//m, i.stderr);
    assert.deepEqual(await taskIds(farm), []);
    await alive(farm);
  });

  await t.test("task and unit ids that git or the farm's branch names cannot take", async () => {
    for (const id of ["x.lock", "x.", "a--b"]) {
      await refused(admin.tasks.create.mutate({ id, title: "ids" }), "id", /./);
    }
    for (const id of ["u.lock", "u."]) {
      await refused(admin.tasks.create.mutate({ title: "ids", units: [{ id, goal: "g" }] }), "units.0.id", /./);
    }
    writeIn(repo, manifest("y.lock"), GOOD("lock folder"));
    const s = await cli("task", "scan");
    assert.match(s.stderr, /skipped \.optimus\/tasks\/y\.lock\/manifest\.yaml:1:1: id: .*\.lock/, s.stderr);
    assert.doesNotMatch(s.stderr, /internal error|fatal:/);
    assert.deepEqual(await taskIds(farm), []);
    await alive(farm);
  });

  await t.test("control characters: refused in titles and goals, stripped from what the CLI prints", async () => {
    await refused(admin.tasks.create.mutate({ title: "\u001b[31mred\u001b[0m\u0000" }), "title", /control character/);
    await refused(admin.tasks.create.mutate({ title: "bell\u0007" }), "title", /control character/);
    await refused(admin.tasks.create.mutate({ title: "t", units: [{ id: "a", goal: "g\u0000" }] }), "units.0.goal", /control character/);
    await refused(admin.tasks.create.mutate({ title: "t", description: "d\u001b]0;pwned\u0007" }), "description", /control character/);
    assert.deepEqual(await taskIds(farm), []);
    // Multi-line text keeps its newlines and tabs.
    await admin.tasks.create.mutate({ id: "ok", title: "fine", units: [{ id: "a", goal: "line one\n\tline two\r\nthree" }] });
    // A reason is free text from an editor (or a worker's summary): printed without its escapes.
    await admin.units.cancel.mutate({
      taskId: "ok",
      unitId: "a",
      reason: "\u001b]0;pwned\u0007\u001b[2J\u001b[31mgone\u001b[0m\u0000 for good",
    });
    const s = await cli("status", "--once");
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /gone for good/);
    assert.doesNotMatch(s.stdout, /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/, JSON.stringify(s.stdout));
    await alive(farm);
  });
});
