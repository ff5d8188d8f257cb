import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { runCli } from "../helpers/cli.js";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

test("tampering with one journal entry makes `optimus audit verify` fail and name that entry", async (t) => {
  const repo = makeRepo(t);
  const farm = await startTestFarm(t, { mode: "process", repo });
  const env = { OPTIMUS_FARM: farm.url };
  for (const text of ["Add a cache", "Remove dead code", "Fix the flaky test"])
    assert.equal((await runCli(["send", text], { cwd: repo, env })).code, 0);
  const ok = await runCli(["audit", "verify"], { cwd: repo });
  assert.equal(ok.code, 0, ok.stderr);
  const intact = await httpClientFor(farm.url, farm.adminToken).admin.verifyAudit.query();
  assert.equal(intact.ok, true);
  await farm.stop();

  // Someone rewrites history: the second task was "created by" somebody else.
  const file = join(stateDirFor(repo), "journal.db");
  const db = new Database(file);
  const victim = db.prepare("SELECT seq FROM events WHERE type = 'task_created' ORDER BY seq LIMIT 1 OFFSET 1").pluck().get() as number;
  db.prepare("UPDATE events SET actor = 'editor:mallory' WHERE seq = ?").run(victim);
  db.close();
  const bad = await runCli(["audit", "verify"], { cwd: repo });
  assert.equal(bad.code, 1);
  assert.equal(bad.stdout, "");
  assert.match(
    bad.stderr.trim(),
    new RegExp(
      `^optimus: audit chain broken at entry #${victim}: its contents do not match its hash \\(type task_created, epoch 1\\) \\(${victim - 1} entries before it verified\\)$`,
    ),
  );

  // The running farm reports the same through its API.
  await farm.start();
  const viaApi = await httpClientFor(farm.url, farm.adminToken).admin.verifyAudit.query();
  assert.equal(viaApi.ok, false);
  assert.equal(viaApi.firstBroken?.seq, victim);
  const missing = await runCli(["audit", "verify", "--journal", join(repo, "nope.db")], { cwd: repo });
  assert.deepEqual([missing.code, missing.stderr.trim()], [1, `optimus: no journal at ${join(repo, "nope.db")}; pass --journal <file>`]);
});
