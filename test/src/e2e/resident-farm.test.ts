/**
 * The resident farm (issue 10): the farm follows the team's repository — served here by git's own
 * smart HTTP behind Basic auth — through its own clone in its home, delivers by push, and never
 * touches a developer's clone. A push by someone else during a task is merged on, or holds the task
 * with the conflicting files named; the origin's reflog shows no forced update.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { promisify } from "node:util";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cloneDirFor, filesDirFor, type Farm } from "@optimus/farm-server";
import type { ServerConfigInput } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { seenVersion } from "../helpers/decisions.js";
import { patchForAsync } from "../helpers/fixture.js";
import { GitHttpOrigin } from "../helpers/git-http-origin.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { FIX, teamFiles } from "../helpers/team-fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";

const execFileAsync = promisify(execFile);
const FARM_PASS = "farm-push-secret-0001";
const DEV_PASS = "dev-secret-0002";
const BASIC = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString("base64")}`;
const FILES = teamFiles("team");
type Ctx = { base?: { branch: string } };

async function teamOrigin(t: { after(fn: () => unknown): void }) {
  const o = new GitHttpOrigin({ farm: FARM_PASS, dev: DEV_PASS });
  await o.start();
  t.after(() => o.close());
  o.create("team", FILES);
  return o;
}

/**
 * A developer's clone of the origin (credentials in the environment only, as a credential helper
 * would give them). `net` runs git asynchronously: the origin's server lives in this process.
 */
async function devClone(
  t: { after(fn: () => unknown): void },
  url: string,
): Promise<{ dir: string; git: (...args: string[]) => string; net: (...args: string[]) => Promise<string> }> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-dev-clone-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_CONFIG_GLOBAL: "/dev/null",
    GIT_CONFIG_COUNT: "1",
    GIT_CONFIG_KEY_0: "http.extraHeader",
    GIT_CONFIG_VALUE_0: `Authorization: ${BASIC("dev", DEV_PASS)}`,
  };
  const args = (a: string[]) => ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", ...a];
  const git = (...a: string[]) => execFileSync("git", args(a), { cwd: dir, env, stdio: "pipe" }).toString();
  const net = async (...a: string[]) => (await execFileAsync("git", args(a), { cwd: dir, env })).stdout;
  await execFileAsync("git", ["clone", "-q", url, dir], { env });
  return { dir, git, net };
}

/** Everything a developer would notice about their clone. */
function lookOf(dev: { git: (...a: string[]) => string }) {
  return {
    status: dev.git("status", "--porcelain", "--untracked-files=all"),
    head: dev.git("rev-parse", "HEAD"),
    symbolic: dev.git("symbolic-ref", "HEAD"),
    refs: dev.git("for-each-ref", "--format=%(refname) %(objectname)"),
    files: dev.git("ls-files", "-s"),
    stash: dev.git("stash", "list"),
  };
}

function vaultWith(t: { after(fn: () => unknown): void }, item: string, field: string, value: string): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-vault-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, item), { mode: 0o700 });
  writeFileSync(join(dir, item, field), value, { mode: 0o600 });
  chmodSync(dir, 0o700);
  return dir;
}

/** Settings of a farm that pushes to the team's origin with the farm's password, read from a vault. */
function residentConfig(t: { after(fn: () => unknown): void }, extra: ServerConfigInput = {}): ServerConfigInput {
  const vault = vaultWith(t, "origin", "auth", BASIC("farm", FARM_PASS));
  return {
    heartbeatIntervalMs: 500,
    planner: { enabled: false },
    prloop: { reviewEveryCodegenUnit: false, eval: [{ name: "tests", command: "node test/add.test.js", timeoutMs: 30_000 }] },
    origin: { auth: "secrets-manager://dev/origin/auth" },
    secrets: { vaults: { dev: { provider: "file", dir: vault } } },
    ...extra,
  };
}

/** Workers that fix `src/add.js` (with `content`) from the task's branch, as a worker fetches it from the farm. */
async function fixers(
  t: { after(fn: () => unknown): void },
  farm: Farm,
  admin: string,
  url: string,
  files: (taskId: string) => Record<string, string> = () => ({ "src/add.js": FIX }),
  review = false,
) {
  const coder = await tokenFor(farm.url, admin, "worker", "coders");
  const reviewer = await tokenFor(farm.url, admin, "worker", "reviewers");
  const agents = await startWorkers(
    farm.url,
    coder,
    [
      { nodeId: "coder", role: "codegen", max: 1 },
      ...(review ? [{ nodeId: "reviewer", role: "review" as const, max: 1, token: reviewer }] : []),
    ],
    newLedger(),
    async (lease) => {
      if (lease.spec.role === "review")
        return { outcome: "succeeded", summary: "fine", review: { verdict: "approve", risk: "low", summary: "adds", comments: [] } };
      return {
        outcome: "succeeded",
        summary: "fixed",
        patch: await patchForAsync(cloneDirFor(url), (lease.context as Ctx).base!.branch, files(lease.taskId)),
      };
    },
  );
  t.after(() => stopAll(agents));
}

test(
  "a task sent from a developer's clone merges on the origin by exactly its merge; the clone, the origin's other refs and the developer's work are untouched",
  { timeout: 120_000 },
  async (t) => {
    const origin = await teamOrigin(t);
    const url = origin.url("team");
    const dev = await devClone(t, url);
    const before = lookOf(dev);
    const mainBefore = origin.git("team", ["rev-parse", "main"]).trim();
    const { server: farm, adminToken: admin } = await startTestFarm(t, {
      repo: url,
      config: residentConfig(t, {
        prloop: { reviewEveryCodegenUnit: true, eval: [{ name: "tests", command: "node test/add.test.js", timeoutMs: 30_000 }] },
      }),
    });
    assert.equal(origin.refused.filter((r) => r.why === "bad credentials").length, 0, "the farm authenticates with the secret it resolved");
    await fixers(t, farm, admin, url, () => ({ "src/add.js": FIX }), true);

    // The CLI inside the developer's clone finds the farm by the clone's origin URL.
    const sent = await runCli(["send", "Make add add", "--files", "src/add.js"], { cwd: dev.dir, env: { OPTIMUS_TOKEN: admin } });
    assert.equal(sent.code, 0, sent.stderr);
    const taskId = sent.stdout.trim();
    const client = httpClientFor(farm.url, admin);
    const done = await waitFor(
      async () => {
        const { task } = await client.tasks.get.query({ taskId });
        return task.merge?.commit ? task : null;
      },
      "the task merged on the origin",
      90_000,
    );
    assert.equal(done.state, "completed");
    assert.equal(done.merge!.into, "main", "the origin's default branch, whatever the developer has checked out");

    // The origin's main advanced by exactly the task's merge: one first-parent step, from the old tip.
    const mainAfter = origin.git("team", ["rev-parse", "main"]).trim();
    assert.equal(mainAfter, done.merge!.commit);
    assert.deepEqual(
      origin
        .git("team", ["rev-list", "--first-parent", `${mainBefore}..${mainAfter}`])
        .trim()
        .split("\n"),
      [mainAfter],
    );
    assert.equal(origin.git("team", ["rev-parse", `${mainAfter}^1`]).trim(), mainBefore);
    assert.equal(origin.git("team", ["show", "main:src/add.js"]), FIX);
    assert.ok(origin.neverForced("team"), "no forced update in the origin's reflog");
    // The task's files came with its change; no bookkeeping commit on main itself.
    const manifest = origin.git("team", ["show", `main:.optimus/tasks/${taskId}/manifest.yaml`]);
    assert.match(manifest, new RegExp(`id: ${taskId}`));
    assert.match(
      origin.git("team", ["log", "--format=%s", `${mainBefore}..${mainAfter}`]),
      new RegExp(`optimus: task ${taskId} (files|ready to merge)`),
    );
    assert.doesNotMatch(origin.git("team", ["log", "--first-parent", "--format=%s", `${mainBefore}..${mainAfter}`]), /^optimus: /m);
    // The task's branches are gone, on the origin and in the farm's clone.
    await waitFor(
      () => origin.git("team", ["for-each-ref", "refs/heads/optimus/"]).trim() === "",
      "the task's branch deleted on the origin",
    );
    await waitFor(
      () =>
        execFileSync("git", ["for-each-ref", "refs/heads/optimus/"], { cwd: cloneDirFor(url) })
          .toString()
          .trim() === "",
      "the farm's branches deleted",
    );
    // Every push was the farm's, authenticated, and none was forced.
    assert.ok(origin.pushes.length > 0 && origin.pushes.every((p) => p.user === "farm"));
    // The developer's clone: not one byte different.
    assert.deepEqual(lookOf(dev), before);
    // The farm's files live in its home, not in any checkout.
    assert.match(readFileSync(join(filesDirFor(url), ".optimus", "tasks", taskId, "manifest.yaml"), "utf8"), /state: completed/);
  },
);

test(
  "someone pushes to main during a task: the farm merges on the new tip; a conflicting push holds the task with its files named, and approve refuses — nothing lost, nothing forced",
  { timeout: 120_000 },
  async (t) => {
    const origin = await teamOrigin(t);
    const url = origin.url("team");
    const alice = await devClone(t, url);
    const { server: farm, adminToken: admin } = await startTestFarm(t, { repo: url, config: residentConfig(t) });
    const MUL = "export const mul = (a, b) => a * b;\n";
    const MINE = "export function add(a, b) {\n  return a + b + 0;\n}\n";
    await fixers(t, farm, admin, url, (taskId): Record<string, string> =>
      taskId === "t-race" ? { "src/mul.js": MUL } : taskId === "t-conflict" ? { "src/add.js": MINE } : { "src/add.js": FIX },
    );
    const client = httpClientFor(farm.url, admin);
    const held = async (taskId: string) =>
      waitFor(async () => {
        const u = await client.units.get.query({ taskId, unitId: "fix" });
        return u.state === "awaiting_approval" ? u : null;
      }, `${taskId}/fix held (it has no review)`);

    // 1. A push to another file while the change waits: merged on the new tip.
    await client.tasks.create.mutate({
      id: "t-moved",
      title: "Fix add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    await held("t-moved");
    writeFileSync(join(alice.dir, "README.md"), "# team\n\nAlice was here.\n");
    alice.git("commit", "-qam", "readme by alice");
    await alice.net("push", "-q", "origin", "main");
    const aliceTip = alice.git("rev-parse", "HEAD").trim();
    await client.reviews.approve.mutate(await seenVersion(client, "t-moved", "fix"));
    const moved = await waitFor(async () => (await client.tasks.get.query({ taskId: "t-moved" })).task.merge?.commit, "t-moved merged");
    assert.equal(origin.git("team", ["rev-parse", `${moved}^1`]).trim(), aliceTip, "merged onto alice's push, not over it");
    assert.equal(origin.git("team", ["show", "main:README.md"]), "# team\n\nAlice was here.\n");
    assert.equal(origin.git("team", ["show", "main:src/add.js"]), FIX);

    // 2. The target moves between the farm's fetch and its push (a race): git refuses the
    // fast-forward, the farm fetches and merges again.
    await client.tasks.create.mutate({ id: "t-race", title: "Add mul", units: [{ id: "fix", goal: "add mul", files: ["src/mul.js"] }] });
    await held("t-race");
    let bob = "";
    origin.beforePush = (p) => {
      if (!p.updates.some((u) => u.ref === "refs/heads/main")) return;
      origin.beforePush = null;
      // Bob's commit lands on main while the farm's push is on its way.
      const tip = origin.git("team", ["rev-parse", "main"]).trim();
      const env = { GIT_INDEX_FILE: join(origin.root, "bob.index") };
      origin.git("team", ["read-tree", tip], env);
      const blob = origin.git("team", ["hash-object", "-w", "--stdin"], {}, "bob's notes\n").trim();
      origin.git("team", ["update-index", "--add", "--cacheinfo", `100644,${blob},BOB.md`], env);
      const tree = origin.git("team", ["write-tree"], env).trim();
      bob = origin.git("team", ["commit-tree", tree, "-p", tip, "-m", "bob's notes"]).trim();
      origin.git("team", ["update-ref", "refs/heads/main", bob, tip]);
    };
    const pushesBefore = origin.pushes.length;
    await client.reviews.approve.mutate(await seenVersion(client, "t-race", "fix"));
    const raced = await waitFor(async () => (await client.tasks.get.query({ taskId: "t-race" })).task.merge?.commit, "t-race merged");
    assert.ok(bob, "bob's push happened during the farm's");
    assert.equal(origin.git("team", ["rev-parse", `${raced}^1`]).trim(), bob, "merged again onto bob's commit");
    assert.equal(origin.git("team", ["show", "main:BOB.md"]), "bob's notes\n");
    assert.equal(origin.git("team", ["show", "main:src/mul.js"]), MUL);
    const mainPushes = origin.pushes.slice(pushesBefore).filter((p) => p.updates.some((u) => u.ref === "refs/heads/main"));
    assert.equal(mainPushes.length, 2, "one refused push, one that landed");

    // 3. A conflicting push while the change waits: held, named, and approve refuses.
    await client.tasks.create.mutate({
      id: "t-conflict",
      title: "Fix add again",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    await held("t-conflict");
    await alice.net("pull", "-q", "--ff-only");
    writeFileSync(join(alice.dir, "src/add.js"), "export function add(a, b) {\n  return b + a; // alice\n}\n");
    alice.git("commit", "-qam", "add by alice");
    await alice.net("push", "-q", "origin", "main");
    const aliceAdd = alice.git("rev-parse", "HEAD").trim();
    await client.reviews.approve.mutate(await seenVersion(client, "t-conflict", "fix"));
    const task = await waitFor(async () => {
      const { task } = await client.tasks.get.query({ taskId: "t-conflict" });
      return task.state === "held" ? task : null;
    }, "t-conflict held");
    assert.match(task.merge!.heldReason!, /conflicts in src\/add\.js/);
    assert.deepEqual(task.merge!.conflicts, ["src/add.js"]);
    const cli = await runCli(["approve", "t-conflict"], { cwd: alice.dir, env: { OPTIMUS_TOKEN: admin } });
    assert.notEqual(cli.code, 0, "approve must not report a merge that did not happen");
    assert.match(cli.stderr, /cannot be merged: .*conflicts in src\/add\.js/);
    assert.doesNotMatch(cli.stdout + cli.stderr, /merged into/);
    const status = await runCli(["status"], { cwd: alice.dir, env: { OPTIMUS_TOKEN: admin } });
    assert.match(status.stdout, /t-conflict.*held/);
    // Nothing half-done anywhere: the origin's main is alice's commit, her clone is clean.
    assert.equal(origin.git("team", ["rev-parse", "main"]).trim(), aliceAdd);
    assert.equal(alice.git("status", "--porcelain"), "");
    assert.ok(origin.neverForced("team"), "no forced update in the origin's reflog");
  },
);

test(
  "the target moved with commits the change was never evaluated with: the merge is evaluated again, and held when it fails — nothing pushed",
  { timeout: 120_000 },
  async (t) => {
    const origin = await teamOrigin(t);
    const url = origin.url("team");
    const alice = await devClone(t, url);
    const { server: farm, adminToken: admin } = await startTestFarm(t, {
      repo: url,
      config: residentConfig(t, {
        prloop: {
          reviewEveryCodegenUnit: false,
          eval: [{ name: "tests", command: 'for f in test/*.test.js; do node "$f" || exit 1; done', timeoutMs: 30_000 }],
        },
      }),
    });
    await fixers(t, farm, admin, url);
    const client = httpClientFor(farm.url, admin);
    await client.tasks.create.mutate({
      id: "t-semantic",
      title: "Fix add",
      units: [{ id: "fix", goal: "make add add", files: ["src/add.js"] }],
    });
    await waitFor(
      async () => (await client.units.get.query({ taskId: "t-semantic", unitId: "fix" })).state === "awaiting_approval",
      "the change held (no review)",
    );
    // Alice's test passes on main as it is (add subtracts) and conflicts with no file of the change;
    // with the change it fails.
    writeFileSync(
      join(alice.dir, "test/double.test.js"),
      "import assert from 'node:assert/strict';\nimport { add } from '../src/add.js';\nassert.equal(add(2, 2), 0);\n",
    );
    alice.git("add", "test/double.test.js");
    alice.git("commit", "-qm", "a test by alice");
    await alice.net("push", "-q", "origin", "main");
    const aliceTip = alice.git("rev-parse", "HEAD").trim();
    await client.reviews.approve.mutate(await seenVersion(client, "t-semantic", "fix"));
    const task = await waitFor(async () => {
      const { task } = await client.tasks.get.query({ taskId: "t-semantic" });
      return task.state === "held" ? task : null;
    }, "the task held");
    assert.match(task.merge!.heldReason!, /the evals fail on the merge with main's newer commits \(tests exited 1\)/);
    assert.equal(origin.git("team", ["rev-parse", "main"]).trim(), aliceTip, "nothing pushed");
    assert.ok(origin.neverForced("team"));
  },
);
