import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { freshSchema, pgQuery, TEST_PG_URL } from "../helpers/postgres.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

/** The test database's URL without its password (the farm takes that from PGPASSWORD, as an operator would give it). */
const pg = new URL(TEST_PG_URL);
const password = decodeURIComponent(pg.password);
pg.password = "";
const URL_NO_PASSWORD = pg.toString();

test(
  "a farm on PostgreSQL keeps its journal and tokens there: killed mid-run, it resumes with nothing lost or doubled",
  { timeout: 300_000 },
  async (t) => {
    const repo = makeRepo(t);
    const schema = await freshSchema(t, "farm");
    // In the repository's settings, where `farm up` and `audit verify` both read them.
    writeFarmConfig(
      repo,
      `prloop: { reviewEveryCodegenUnit: false }\nplanner: { enabled: false }\nstore: { kind: postgres, url: "${URL_NO_PASSWORD}", schema: ${schema} }\n`,
    );
    const farm = await startTestFarm(t, {
      mode: "process",
      repo,
      env: { PGPASSWORD: password },
      args: ["--heartbeat-ms", "400", "--max-attempts", "20"],
    });
    const workerToken = await tokenFor(farm.url, farm.adminToken, "worker", "pg-pool");
    const ledger = newLedger();
    const agents = await startWorkers(
      farm.url,
      workerToken,
      Array.from({ length: 4 }, (_, i) => ({ nodeId: `pg-worker-${i}`, role: "codegen" as const, max: 2 })),
      ledger,
      async () => {
        await sleep(30 + Math.random() * 60);
        return { outcome: "succeeded", summary: "ok" };
      },
    );
    t.after(() => stopAll(agents));

    const admin = httpClientFor(farm.url, farm.adminToken);
    const taskIds: string[] = [];
    for (let k = 0; k < 3; k++) {
      const units = Array.from({ length: 50 }, (_, i) => ({ id: `u${i}`, goal: `unit ${i}`, role: "codegen" as const }));
      taskIds.push((await admin.tasks.create.mutate({ id: `pg-task-${k}`, title: `on PostgreSQL ${k}`, units })).taskId);
    }
    // Killed twice while units are in flight: the PostgreSQL journal is all it restarts from.
    for (let kill = 0; kill < 2; kill++) {
      await waitFor(
        async () => (await httpClientFor(farm.url, farm.adminToken).fleet.workers.query()).filter((w) => w.connected).length === 4,
        "the workers to connect",
      );
      await sleep(300 + Math.random() * 300);
      const open = (await httpClientFor(farm.url, farm.adminToken).tasks.list.query())
        .filter((x) => taskIds.includes(x.taskId))
        .reduce((n, x) => n + (x.state === "completed" ? 0 : 1), 0);
      assert.ok(open > 0, `tasks still in flight at kill ${kill + 1}`);
      await farm.kill9();
      await farm.start();
    }
    const after = httpClientFor(farm.url, farm.adminToken);
    await waitFor(
      async () => {
        const tasks = await after.tasks.list.query();
        return taskIds.every((id) => tasks.find((x) => x.taskId === id)?.state === "completed");
      },
      "every task to complete after the restarts",
      120_000,
    );

    // The worker token issued before the kills still works (tokens live in PostgreSQL), and the farm
    // kept no SQLite journal or token file in its state folder.
    assert.ok(
      await httpClientFor(farm.url, workerToken)
        .fleet.workers.query()
        .then(
          () => false,
          () => true,
        ),
      "a worker token may not read the fleet (role-checked)",
    );
    const tokens = await pgQuery<{ name: string; role: string }>(`SELECT name, role FROM "${schema}".tokens ORDER BY created_at`);
    assert.deepEqual(
      tokens.map((r) => `${r.role}:${r.name}`),
      ["admin:admin", "worker:pg-pool"],
    );
    assert.equal(existsSync(join(stateDirFor(repo), "journal.db")), false, "no SQLite journal beside the PostgreSQL one");
    assert.equal(existsSync(join(stateDirFor(repo), "tokens.db")), false, "no token file beside the PostgreSQL table");

    // Every unit completed exactly once across the three epochs, and the chain verifies.
    const completions = await pgQuery<{ k: string; n: number }>(
      `SELECT task_id || '/' || unit_id AS k, count(*)::int AS n FROM "${schema}".events WHERE type = 'unit_completed' GROUP BY 1`,
    );
    assert.equal(completions.length, 150);
    assert.deepEqual(
      completions.filter((r) => r.n !== 1),
      [],
      "no unit completed twice",
    );
    const epochs = await pgQuery<{ n: number }>(`SELECT count(DISTINCT epoch)::int AS n FROM "${schema}".events`);
    assert.equal(epochs[0]!.n, 3, "three leaders wrote: the first start and two restarts");
    const verified = await after.admin.verifyAudit.query();
    assert.equal(verified.ok, true);
    assert.ok(verified.checked > 150);
    await stopAll(agents);

    // `optimus audit verify` reads the chain from PostgreSQL beside the running farm; a tampered entry is named.
    const ok = await runCli(["audit", "verify", "--repo", repo], { cwd: repo, env: { PGPASSWORD: password } });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /audit chain intact: \d+ entries verified, head [0-9a-f]{64}/);
    await pgQuery(
      `UPDATE "${schema}".events SET data = replace(data, 'unit 7', 'unit 8') WHERE seq = (SELECT min(seq) FROM "${schema}".events WHERE type = 'task_created')`,
    );
    const broken = await runCli(["audit", "verify", "--repo", repo], { cwd: repo, env: { PGPASSWORD: password } });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /audit chain broken at entry #\d+: its contents do not match its hash \(type task_created/);
  },
);

test("a PostgreSQL store refuses a password in the config file, and names the fix", async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  const config = join(repo, "..", `pg-config-${Date.now()}.yaml`);
  writeFileSync(config, `store: { kind: postgres, url: "${TEST_PG_URL}" }\n`);
  const r = await runCli(["farm", "up", "--repo", repo, "--config", config, "--port", "0"], { cwd: repo });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /store\.url holds a password: put it in the secrets layer .*PGPASSWORD or ~\/\.pgpass/);
  assert.doesNotMatch(r.stderr + r.stdout, new RegExp(password), "the password is not echoed back");
});

test("an unreachable PostgreSQL: the farm says which server (without its password) and exits", async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  const config = join(repo, "..", `pg-down-${Date.now()}.yaml`);
  writeFileSync(config, `store: { kind: postgres, url: "postgres://optimus_test@127.0.0.1:1/optimus_test" }\n`);
  const r = await runCli(["farm", "up", "--repo", repo, "--config", config, "--port", "0"], {
    cwd: repo,
    env: { PGPASSWORD: "not-shown-anywhere" },
  });
  assert.notEqual(r.code, 0);
  assert.match(
    r.stderr,
    /the farm's PostgreSQL postgres:\/\/optimus_test@127\.0\.0\.1:1\/optimus_test \(schema optimus\) cannot be used: .*ECONNREFUSED/,
  );
  assert.doesNotMatch(r.stderr, /not-shown-anywhere/);
});
