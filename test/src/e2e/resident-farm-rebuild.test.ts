/**
 * The farm's whole home lost (journal, files, its clone): started again on the same origin, it
 * rebuilds its tasks from what travelled with the work — the manifests on the origin's task
 * branches and, for merged tasks, on the target branch — and carries on without merging anything twice.
 */
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { test } from "node:test";
import { cloneDirFor, repoSlot } from "@optimus/farm-server";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { seenVersion } from "../helpers/decisions.js";
import { patchForAsync } from "../helpers/fixture.js";
import { GitHttpOrigin } from "../helpers/git-http-origin.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

test(
  "with the farm's home deleted, a restart rebuilds merged and running tasks from the origin and merges nothing twice",
  { timeout: 180_000 },
  async (t) => {
    const origin = new GitHttpOrigin({ farm: "pw" });
    await origin.start();
    t.after(() => origin.close());
    origin.create("team", { "README.md": "# team\n" });
    const url = origin.url("team");
    process.env.OPTIMUS_SECRET_ORIGIN_AUTH_VALUE = `Basic ${Buffer.from("farm:pw").toString("base64")}`;
    const farm = await startTestFarm(t, {
      repo: url,
      config: {
        heartbeatIntervalMs: 500,
        planner: { enabled: false },
        prloop: { reviewEveryCodegenUnit: false, eval: [{ name: "files", command: "test -f README.md", timeoutMs: 30_000 }] },
        origin: { auth: "secrets-manager://env/ORIGIN_AUTH/value" },
        secrets: { vaults: { env: { provider: "env" } } },
      },
    });
    let admin = farm.adminToken;
    let client = httpClientFor(farm.url, admin);
    const agents = await startWorkers(
      farm.url,
      await tokenFor(farm.url, admin, "worker", "coders"),
      [{ nodeId: "coder", role: "codegen", max: 1 }],
      newLedger(),
      async (lease) => ({
        outcome: "succeeded",
        summary: "done",
        patch: await patchForAsync(cloneDirFor(url), (lease.context as { base: { branch: string } }).base.branch, {
          [`${lease.taskId}/${lease.unitId}.md`]: `${lease.unitId}\n`,
        }),
      }),
    );
    const approveWhenHeld = async (taskId: string, unitId: string) => {
      await waitFor(
        async () => (await client.units.get.query({ taskId, unitId })).state === "awaiting_approval",
        `${taskId}/${unitId} held`,
        60_000,
      );
      await client.reviews.approve.mutate(await seenVersion(client, taskId, unitId));
    };
    // "done": merged into main. "half": one unit merged into its branch (pushed), one still held.
    await client.tasks.create.mutate({ id: "done", title: "done", units: [{ id: "u1", goal: "g", files: ["done/u1.md"] }] });
    await approveWhenHeld("done", "u1");
    const merged = await waitFor(async () => (await client.tasks.get.query({ taskId: "done" })).task.merge?.commit, "done merged", 60_000);
    await client.tasks.create.mutate({
      id: "half",
      title: "half",
      units: [
        { id: "u1", goal: "g", files: ["half/u1.md"] },
        { id: "u2", goal: "g", files: ["half/u2.md"], dependsOn: ["u1"] },
      ],
    });
    await approveWhenHeld("half", "u1");
    await waitFor(
      async () => (await client.units.get.query({ taskId: "half", unitId: "u2" })).state === "awaiting_approval",
      "half/u2 held",
      60_000,
    );
    await stopAll(agents);
    await farm.stop();

    // The whole home of this repository goes: journal, tokens, files, the farm's clone.
    rmSync(repoSlot(url), { recursive: true, force: true });
    await farm.start();
    assert.deepEqual(farm.server.startup.imports.restored.sort(), ["done", "half"]);
    admin = farm.adminToken; // a new one: the tokens went with the home
    client = httpClientFor(farm.url, admin);
    const half = await client.tasks.get.query({ taskId: "half" });
    assert.equal(half.units.find((u) => u.unitId === "u1")!.state, "merged", "restored from the manifest on the origin's optimus/half");
    await waitFor(async () => (await client.tasks.get.query({ taskId: "done" })).task.merge?.commit, "done recorded as merged", 30_000);
    assert.equal(origin.git("team", ["rev-parse", "main"]).trim(), merged, "nothing merged again");
    assert.equal(
      origin
        .git("team", ["log", "--first-parent", "--format=%B", "main"])
        .split("\n")
        .filter((l) => l === "Optimus-Task: done").length,
      1,
    );
    assert.ok(origin.neverForced("team"));
  },
);
