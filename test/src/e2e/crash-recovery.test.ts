import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { isTerminal } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

const UNITS_PER_ROUND = 200;
const MIN_KILLS = 20;

test(
  `kill -9 of the farm at random points (≥${MIN_KILLS} times) loses no unit and completes none twice`,
  { timeout: 600_000 },
  async (t) => {
    const repo = makeRepo(t);
    writeFarmConfig(repo);
    const farm = await startTestFarm(t, { mode: "process", repo, args: ["--heartbeat-ms", "400", "--max-attempts", "50"] });
    const workerToken = await tokenFor(farm.url, farm.adminToken, "worker", "chaos-pool");
    const ledger = newLedger();
    // 10 workers: 7 codegen and 3 review, two slots each.
    const agents = await startWorkers(
      farm.url,
      workerToken,
      Array.from({ length: 10 }, (_, i) => ({
        nodeId: `worker-${String(i + 1).padStart(2, "0")}`,
        role: i < 7 ? ("codegen" as const) : ("review" as const),
        max: 2,
      })),
      ledger,
      async () => {
        await sleep(40 + Math.random() * 160);
        return { outcome: "succeeded", summary: "ok" };
      },
    );
    t.after(() => stopAll(agents));

    let kills = 0;
    const reconnectMs: number[] = [];
    let round = 0;
    const allTasks: string[] = [];
    while (kills < MIN_KILLS) {
      round++;
      // 200 units in 4 tasks of 50; every fifth unit is a review of the one before, some chains.
      const admin = httpClientFor(farm.url, farm.adminToken);
      const taskIds: string[] = [];
      for (let k = 0; k < 4; k++) {
        const units = Array.from({ length: UNITS_PER_ROUND / 4 }, (_, i) => ({
          id: `u${i}`,
          goal: `unit ${i}`,
          role: i % 5 === 4 ? ("review" as const) : ("codegen" as const),
          dependsOn: i % 5 === 4 ? [`u${i - 1}`] : i >= 10 && i % 7 === 0 ? [`u${i - 10}`] : [],
        }));
        const task = await admin.tasks.create.mutate({ id: `round${round}-t${k}`, title: `chaos round ${round} task ${k}`, units });
        taskIds.push(task.taskId);
      }
      allTasks.push(...taskIds);

      // Kill at random points while the round runs (once the workers are back, so each life of the
      // farm does some work), then let it finish.
      for (;;) {
        const c = httpClientFor(farm.url, farm.adminToken);
        const t0 = Date.now();
        await waitFor(async () => (await c.fleet.workers.query()).filter((w) => w.connected).length === 10, "all 10 workers to reconnect");
        reconnectMs.push(Date.now() - t0);
        await sleep(20 + Math.random() * 400);
        const tasks = await c.tasks.list.query();
        if (process.env.CHAOS_DEBUG)
          console.error(kills, JSON.stringify(tasks.filter((x) => taskIds.includes(x.taskId)).map((x) => x.counts)));
        if (taskIds.every((id) => tasks.find((x) => x.taskId === id)?.state === "completed")) break;
        await farm.kill9();
        kills++;
        await farm.start();
      }
      t.diagnostic(`round ${round}: ${UNITS_PER_ROUND} units completed; kills so far: ${kills}`);
    }

    // Every unit of every round: exactly one terminal state, and it is `completed`.
    const client = httpClientFor(farm.url, farm.adminToken);
    let total = 0;
    for (const taskId of allTasks) {
      const { units } = await client.tasks.get.query({ taskId });
      for (const u of units) {
        assert.ok(isTerminal(u.state), `${taskId}/${u.unitId} is ${u.state}`);
        assert.equal(u.state, "completed", `${taskId}/${u.unitId}`);
        total++;
      }
    }
    assert.equal(total, round * UNITS_PER_ROUND);
    await farm.stop();

    // The journal agrees: one accepted submission and one completion per unit, across every epoch.
    const db = new Database(join(stateDirFor(repo), "journal.db"), { readonly: true });
    const perUnit = (type: string, extra = "") =>
      db
        .prepare(
          `SELECT json_extract(data,'$.taskId') || '/' || json_extract(data,'$.unitId') AS k, count(*) AS n FROM events WHERE type = ? ${extra} GROUP BY k`,
        )
        .all(type) as Array<{ k: string; n: number }>;
    const completions = perUnit("unit_completed");
    assert.equal(completions.length, total, "every unit completed");
    assert.deepEqual(
      completions.filter((r) => r.n !== 1),
      [],
      "no unit completed twice",
    );
    const accepted = perUnit("unit_submitted", "AND json_extract(data,'$.outcome') = 'succeeded'");
    assert.deepEqual(
      accepted.filter((r) => r.n !== 1),
      [],
      "one accepted submission per unit",
    );
    const epochs = db.prepare("SELECT count(*) FROM events WHERE type = 'epoch_started'").pluck().get() as number;
    const rejected = db.prepare("SELECT count(*) FROM events WHERE type = 'report_rejected'").pluck().get() as number;
    const expired = db.prepare("SELECT count(*) FROM events WHERE type = 'lease_expired'").pluck().get() as number;
    db.close();
    assert.equal(epochs, kills + 1, "one epoch per start");

    // Workers' view: each unit acknowledged (first-time or as a repeat after a restart), none lost.
    const ackedUnits = new Set(ledger.accepted.map((a) => a.key));
    assert.equal(ackedUnits.size, total);
    const firstTime = new Map<string, number>();
    for (const a of ledger.accepted) if (!a.duplicate) firstTime.set(a.key, (firstTime.get(a.key) ?? 0) + 1);
    assert.deepEqual(
      [...firstTime].filter(([, n]) => n > 1),
      [],
      "the farm said 'accepted, new' once per unit",
    );

    const audit = await runCli(["audit", "verify"], { cwd: repo });
    assert.equal(audit.code, 0, audit.stderr);
    const duplicates = ledger.accepted.filter((a) => a.duplicate).length;
    t.diagnostic(
      `kill -9 count: ${kills} over ${round} round(s) of ${UNITS_PER_ROUND} units with 10 workers; ${total} units completed exactly once; ` +
        `${duplicates} repeated submissions answered as duplicates; ${rejected} late reports rejected; ${expired} leases expired; ${ledger.started.length} unit runs started; ` +
        `workers all back ${reconnectMs.sort((a, b) => a - b)[Math.floor(reconnectMs.length / 2)]} ms (median) after the farm listened again`,
    );
    assert.ok(kills >= MIN_KILLS);
  },
);
