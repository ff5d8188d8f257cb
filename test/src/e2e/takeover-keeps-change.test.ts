/**
 * A change evaluated by one farm node and waiting for its review when that node dies (issue 13): the
 * node that takes over merges it once its review comes, rather than sending the unit back to be done
 * again. With takeovers every few seconds under load, work redone at each one never finished (the
 * soak left units redone 16 times, then dead). Real parts: two farm processes on one PostgreSQL, a
 * bare origin, the sandboxed eval, worker agents over the API.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { patchForAsync } from "../helpers/fixture.js";
import { freshSchema, pgQuery, TEST_PG_URL } from "../helpers/postgres.js";
import { makeRepo } from "../helpers/repo.js";
import { faultAndTakeOver } from "../helpers/takeover.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";

const pgUrl = new URL(TEST_PG_URL);
const PGPASSWORD = decodeURIComponent(pgUrl.password);
pgUrl.password = "";

test(
  "a change evaluated by a node that then dies is merged by the node that takes over, not done again",
  { timeout: 300_000 },
  async (t) => {
    const seed = makeRepo(t);
    execFileSync(
      "sh",
      ["-c", "echo '# team' > README.md && git add README.md && git -c user.name=T -c user.email=t@l commit -q -m readme"],
      {
        cwd: seed,
      },
    );
    const dir = mkdtempSync(join(tmpdir(), "optimus-keeps-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const bare = join(dir, "team.git");
    execFileSync("git", ["clone", "-q", "--bare", seed, bare]);
    const schema = await freshSchema(t, "keeps");
    const config = {
      prloop: { reviewEveryCodegenUnit: true, eval: [{ name: "files", command: "test -f README.md", timeoutMs: 60_000 }] },
      planner: { enabled: false },
      heartbeatIntervalMs: 1_000,
      store: { kind: "postgres" as const, url: String(pgUrl), schema, leaseMs: 2_000 },
    };
    const homeB = mkdtempSync(join(tmpdir(), "optimus-node-b-"));
    const a = await startTestFarm(t, { mode: "process", repo: `file://${bare}`, config, env: { PGPASSWORD } });
    const b = await startTestFarm(t, { mode: "process", repo: `file://${bare}`, config, env: { PGPASSWORD, OPTIMUS_HOME: homeB } });
    // After the farms' own stops (hooks run in the order they were added).
    t.after(() => rmSync(homeB, { recursive: true, force: true }));
    assert.deepEqual([a.role, b.role], ["leader", "standby"]);
    const both = `${a.url},${b.url}`;
    const client = httpClientFor(both, a.adminToken);
    const coders = await tokenFor(a.url, a.adminToken, "worker", "coders");
    const reviewers = await tokenFor(a.url, a.adminToken, "worker", "reviewers");

    // A coder only: the change is evaluated on node a and waits there for a reviewer.
    const ledger = newLedger();
    const coder = await startWorkers(both, coders, [{ nodeId: "coder", role: "codegen", max: 1 }], ledger, async (lease) => ({
      outcome: "succeeded",
      summary: "notes",
      patch: await patchForAsync(seed, "main", { [`notes/${lease.taskId}.md`]: `notes of ${lease.taskId}\n` }),
    }));
    t.after(() => stopAll(coder));
    await client.tasks.create.mutate({ id: "kept", title: "kept", units: [{ id: "u", goal: "notes", files: ["notes/kept.md"] }] });
    const unit = async (id: string) => (await client.tasks.get.query({ taskId: "kept" })).units.find((u) => u.unitId === id)!;
    await waitFor(async () => (await unit("u")).state === "reviewing", "the change to be evaluated and wait for its review", 60_000);

    // Node a dies; node b leads. Then the reviewer comes and approves, on node b.
    await faultAndTakeOver(a, b, "kill");
    const reviewer = await startWorkers(both, reviewers, [{ nodeId: "reviewer", role: "review", max: 1 }], ledger, async () => ({
      outcome: "succeeded",
      summary: "",
      review: { verdict: "approve", risk: "low", summary: "fine", comments: [] },
    }));
    t.after(() => stopAll(reviewer));
    await waitFor(
      async () => !!(await client.tasks.get.query({ taskId: "kept" })).task.merge?.commit,
      "the task merged on the origin",
      90_000,
    ).catch((e: Error) => {
      throw Object.assign(e, { message: `${e.message}\n--- node b ---\n${b.log.slice(-4000)}` });
    });

    // The attempt node a evaluated is the one merged: no second attempt, nothing sent back.
    const u = await unit("u");
    assert.equal(u.state, "merged");
    assert.equal(u.attempt, 1, "the unit was not done again");
    const sentBack = await pgQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".events WHERE type = 'changes_requested'`);
    assert.equal(sentBack[0]!.n, 0, "no change sent back after the takeover");
    assert.equal(execFileSync("git", ["show", "main:notes/kept.md"], { cwd: bare }).toString(), "notes of kept\n");
    // The attempt's branch, published for the takeover, leaves the origin with the task's.
    await waitFor(
      () => execFileSync("git", ["for-each-ref", "refs/heads/optimus/"], { cwd: bare }).toString() === "",
      "the task's branches to leave the origin",
      20_000,
    );
  },
);
