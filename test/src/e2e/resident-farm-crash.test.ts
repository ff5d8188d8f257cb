/**
 * The resident farm killed mid-delivery (issue 10): SIGKILL while its push of the target branch is
 * on its way (the origin never got it), and SIGKILL after the origin applied it but before the
 * farm heard back. Restarted, it resumes from its home and the origin, and each task merges
 * exactly once — never twice, never forced, never lost.
 */
import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { cloneDirFor } from "@optimus/farm-server";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { seenVersion } from "../helpers/decisions.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { patchForAsync } from "../helpers/fixture.js";
import { GitHttpOrigin } from "../helpers/git-http-origin.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const PASS = "farm-push-secret-0003";
const BASIC = `Basic ${Buffer.from(`farm:${PASS}`).toString("base64")}`;

test(
  "killed mid-push and mid-merge, the farm restarts from its home and the origin and each task merges exactly once",
  { timeout: 180_000 },
  async (t) => {
    const origin = new GitHttpOrigin({ farm: PASS });
    await origin.start();
    t.after(() => origin.close());
    origin.create("team", { "README.md": "# team\n", "package.json": '{"type":"module"}\n' });
    const url = origin.url("team");
    const dir = mkdtempSync(join(tmpdir(), "optimus-crash-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, "vault", "origin"), { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, "vault", "origin", "auth"), BASIC, { mode: 0o600 });
    chmodSync(join(dir, "vault"), 0o700);
    const farm = await startTestFarm(t, {
      mode: "process",
      repo: url,
      config: {
        planner: { enabled: false },
        prloop: { reviewEveryCodegenUnit: false, eval: [{ name: "files", command: "test -f README.md", timeoutMs: 30_000 }] },
        origin: { auth: "secrets-manager://dev/origin/auth" },
        secrets: { vaults: { dev: { provider: "file", dir: join(dir, "vault") } } },
        heartbeatIntervalMs: 500,
      },
    });
    const admin = farm.adminToken;
    const token = await tokenFor(farm.url, admin, "worker", "coders");
    const agents = await startWorkers(farm.url, token, [{ nodeId: "coder", role: "codegen", max: 1 }], newLedger(), async (lease) => ({
      outcome: "succeeded",
      summary: "notes",
      patch: await patchForAsync(cloneDirFor(url), (lease.context as { base: { branch: string } }).base.branch, {
        [`notes/${lease.taskId}.md`]: `notes of ${lease.taskId}\n`,
      }),
    }));
    t.after(() => stopAll(agents));
    const mergesOf = (taskId: string) =>
      origin
        .git("team", ["log", "--first-parent", "--format=%H %B", "main"])
        .split("\n")
        .filter((l) => l === `Optimus-Task: ${taskId}`).length;
    const runUntilDeliveryPush = async (taskId: string) => {
      const client = httpClientFor(farm.url, admin);
      await client.tasks.create.mutate({
        id: taskId,
        title: `notes ${taskId}`,
        units: [{ id: "u1", goal: "write notes", files: [`notes/${taskId}.md`] }],
      });
      await waitFor(
        async () => (await client.units.get.query({ taskId, unitId: "u1" })).state === "awaiting_approval",
        `${taskId} held (unreviewed)`,
        60_000,
      );
      // The approval's answer may never come: the farm is killed while it merges (that is the point).
      await client.reviews.approve.mutate(await seenVersion(client, taskId, "u1")).catch(() => undefined);
    };
    const killOnMainPush = (mode: "before" | "after") =>
      new Promise<void>((resolve) => {
        const hook = async (p: { updates: Array<{ ref: string }> }) => {
          if (!p.updates.some((u) => u.ref === "refs/heads/main")) return;
          origin.beforePush = null;
          origin.afterPush = null;
          await farm.kill9();
          resolve();
          return mode === "before" ? ("drop" as const) : undefined;
        };
        if (mode === "before") origin.beforePush = hook;
        else origin.afterPush = async (p) => void (await hook(p));
      });

    // 1. Killed while its push of main is on its way: the origin never sees it.
    const mainBefore = origin.git("team", ["rev-parse", "main"]).trim();
    const killed1 = killOnMainPush("before");
    await runUntilDeliveryPush("t-push");
    await killed1;
    assert.equal(origin.git("team", ["rev-parse", "main"]).trim(), mainBefore, "the dropped push changed nothing");
    await farm.start();
    const c1 = httpClientFor(farm.url, admin);
    const m1 = await waitFor(
      async () => (await c1.tasks.get.query({ taskId: "t-push" })).task.merge?.commit,
      "t-push merged after the restart",
      60_000,
    );
    assert.equal(origin.git("team", ["rev-parse", "main"]).trim(), m1);
    assert.equal(mergesOf("t-push"), 1);

    // 2. Killed after the origin applied the push, before the farm heard back: found, not redone.
    const killed2 = killOnMainPush("after");
    await runUntilDeliveryPush("t-merge");
    await killed2;
    const landed = origin.git("team", ["rev-parse", "main"]).trim();
    assert.notEqual(landed, m1, "the push landed before the farm died");
    await farm.start();
    const c2 = httpClientFor(farm.url, admin);
    const m2 = await waitFor(
      async () => (await c2.tasks.get.query({ taskId: "t-merge" })).task.merge?.commit,
      "t-merge recorded after the restart",
      60_000,
    );
    assert.equal(m2, landed, "the merge that landed is the one recorded");
    assert.equal(origin.git("team", ["rev-parse", "main"]).trim(), landed, "no second merge");
    assert.equal(mergesOf("t-merge"), 1);
    assert.ok(origin.neverForced("team"), "no forced update in the origin's reflog");
    assert.equal(origin.git("team", ["show", "main:notes/t-push.md"]), "notes of t-push\n");
    assert.equal(origin.git("team", ["show", "main:notes/t-merge.md"]), "notes of t-merge\n");
  },
);
