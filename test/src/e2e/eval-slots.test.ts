import assert from "node:assert/strict";
import { test } from "node:test";
import { tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

/** One gauge's value in the farm's /metrics, as a scraper reads it. */
async function gauge(url: string, name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^${name} (\\d+)$`, "m").exec(text);
  if (!m) throw new Error(`${name} missing from /metrics`);
  return Number(m[1]);
}

test(
  "evaluations of different tasks run side by side, never more than the configured eval slots; the rest wait their turn",
  { timeout: 240_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    // Each evaluation takes a second and a half: long enough to see them overlap on a busy machine.
    const {
      server: farm,
      adminToken: admin,
      client,
    } = await startTestFarm(t, {
      repo,
      config: {
        heartbeatIntervalMs: 500,
        prloop: { reviewEveryCodegenUnit: false, evalSlots: 2, eval: [{ name: "slow", command: "sleep 1.5", timeoutMs: 60_000 }] },
        planner: { enabled: false },
      },
    });
    const token = await tokenFor(farm.url, admin, "worker", "pool");
    const agents = await startWorkers(
      farm.url,
      token,
      [1, 2, 3].map((i) => ({ nodeId: `coder-${i}`, role: "codegen" as const, max: 2 })),
      newLedger(),
      async (lease) => {
        const ctx = lease.context as { base: { branch: string } };
        return {
          outcome: "succeeded",
          summary: "done",
          patch: patchFor(repo, ctx.base.branch, { [`notes/${lease.taskId}.md`]: `# ${lease.taskId}\n` }),
        };
      },
    );
    t.after(() => stopAll(agents));

    const ids = ["one", "two", "three", "four", "five"];
    for (const id of ids)
      await client.tasks.create.mutate({
        id,
        title: `Note ${id}`,
        units: [{ id: "u1", goal: `write notes/${id}.md`, files: [`notes/${id}.md`] }],
      });

    let peak = 0;
    let waited = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, await gauge(farm.url, "optimus_evals_running"));
        waited = Math.max(waited, await gauge(farm.url, "optimus_evals_waiting"));
        await sleep(25);
      }
    })();
    try {
      // Without a review unit each green change is then held for a person: evaluated is what counts here.
      await waitFor(
        async () =>
          (await client.units.list.query()).filter((u) => u.evaluation?.green && u.state === "awaiting_approval").length === ids.length,
        "every change evaluated",
        200_000,
      );
    } finally {
      sampling = false;
      await sampler;
    }

    assert.equal(peak, 2, "two evaluations ran at once, and never more");
    assert.ok(waited >= 1, "with five changes in at once, some waited for a slot");
    assert.equal(await gauge(farm.url, "optimus_evals_running"), 0);
    const units = await Promise.all(ids.map((id) => client.units.get.query({ taskId: id, unitId: "u1" })));
    assert.deepEqual(
      units.map((u) => [u.taskId, u.evaluation?.evals.map((e) => [e.name, e.exitCode])]),
      ids.map((id) => [id, [["slow", 0]]]),
    );
  },
);
