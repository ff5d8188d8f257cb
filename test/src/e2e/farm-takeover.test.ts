/**
 * Two farm nodes on one PostgreSQL (issue 13, item 3): one leads, the other stands by and answers
 * with where the leader is. The leader is SIGKILLed and SIGSTOPped past its lease at random points
 * while a client given both URLs keeps creating tasks: the standby takes over each time, a woken
 * leader's writes are refused and it steps down to stand by, and no task is lost or doubled.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { httpClientFor } from "../helpers/clients.js";
import { faultAndTakeOver, probeHealth } from "../helpers/takeover.js";
import { freshSchema, pgQuery, TEST_PG_URL } from "../helpers/postgres.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { sleep, waitFor } from "../helpers/wait.js";

const pgUrl = new URL(TEST_PG_URL);
const PGPASSWORD = decodeURIComponent(pgUrl.password);
pgUrl.password = "";

const KILLS = 4;
const STOPS = 2;
const LEASE_MS = 2_000;

test(
  "two farm nodes on one PostgreSQL: the leader killed and paused past its lease, the standby takes over; a woken leader steps down; nothing lost or doubled",
  { timeout: 600_000 },
  async (t) => {
    const repo = makeRepo(t);
    const schema = await freshSchema(t, "ha");
    writeFarmConfig(
      repo,
      `prloop: { reviewEveryCodegenUnit: false }\nplanner: { enabled: false }\nheartbeatIntervalMs: 500\n` +
        `store: { kind: postgres, url: "${pgUrl}", schema: ${schema}, leaseMs: ${LEASE_MS} }\n`,
    );
    const homeB = mkdtempSync(join(tmpdir(), "optimus-node-b-"));
    t.after(() => rmSync(homeB, { recursive: true, force: true }));
    const a = await startTestFarm(t, { mode: "process", repo, env: { PGPASSWORD } });
    const b = await startTestFarm(t, { mode: "process", repo, env: { PGPASSWORD, OPTIMUS_HOME: homeB } });
    assert.equal(a.role, "leader");
    assert.equal(b.role, "standby", b.log);
    assert.match(b.log, new RegExp(`Optimus farm standing by on ${b.url} .*: another farm node leads \\(.*, epoch \\d+, at ${a.url}\\)`));
    // The standby answers with where the leader is, and carries out nothing itself.
    const refused = await fetch(`${b.url}/trpc/tasks.list`, { headers: { authorization: `Bearer ${a.adminToken}` } });
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get("x-optimus-leader"), a.url);
    assert.match(await refused.text(), new RegExp(`not the leader, try ${a.url}`));
    assert.deepEqual(await probeHealth(b.url).then((h) => h?.role), "standby");

    // A client given both nodes (as `--farm a,b` gives them) follows the leader; tokens live in PostgreSQL.
    const client = httpClientFor(`${b.url},${a.url}`, a.adminToken);
    const created: string[] = [];
    const createOne = async () => {
      const id = `ha-task-${created.length}`;
      await client.tasks.create.mutate({ id, title: id, units: [{ id: "u", goal: "wait", role: "codegen" }] });
      created.push(id);
    };
    await createOne();

    let leader: ProcessTestFarm = a;
    let standby: ProcessTestFarm = b;
    const takeovers: number[] = [];
    const faults = [...Array<"kill">(KILLS).fill("kill"), ...Array<"stop">(STOPS).fill("stop")].sort(() => Math.random() - 0.5);
    const withLogs = (err: Error) =>
      Object.assign(err, { message: `${err.message}\n--- node a ---\n${a.log.slice(-3000)}\n--- node b ---\n${b.log.slice(-3000)}` });
    for (const fault of faults) {
      await sleep(200 + Math.random() * 800);
      await createOne();
      takeovers.push(await faultAndTakeOver(leader, standby, fault, { explain: withLogs }));
      // The client follows it, and finds every task created so far.
      await createOne();
      const ids = (await client.tasks.list.query()).map((x) => x.taskId);
      assert.deepEqual(
        created.filter((id) => !ids.includes(id)),
        [],
        `no task lost after a ${fault}`,
      );
      if (fault === "kill") {
        await leader.start();
        assert.equal(leader.role, "standby", "a node restarted beside a live leader stands by");
      } else {
        // Woken past its lease: its writes are refused, and it steps down by itself to stand by.
        const woken = leader;
        const stepped = woken.log.split("stepped down").length;
        process.kill(woken.pid!, "SIGCONT");
        await waitFor(() => woken.log.split("stepped down").length > stepped, "the woken leader to step down", 20_000).catch((e: Error) => {
          throw withLogs(e);
        });
        await waitFor(async () => (await probeHealth(woken.url))?.role === "standby", "the woken leader to stand by", 20_000).catch(
          (e: Error) => {
            throw withLogs(e);
          },
        );
      }
      [leader, standby] = [standby, leader];
    }
    const sorted = [...takeovers].sort((x, y) => x - y);
    console.log(
      `takeovers: ${takeovers.length}, p50 ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted.at(-1)} ms (lease ${LEASE_MS} ms)`,
    );

    // Each task once in the journal, and a new epoch for each takeover.
    const tasks = await pgQuery<{ id: string; n: number }>(
      `SELECT task_id AS id, count(*)::int AS n FROM "${schema}".events WHERE type = 'task_created' GROUP BY 1`,
    );
    assert.deepEqual(tasks.map((r) => r.id).sort(), [...created].sort());
    assert.deepEqual(
      tasks.filter((r) => r.n !== 1),
      [],
      "no task created twice",
    );
    const epochs = await pgQuery<{ n: number }>(`SELECT count(DISTINCT epoch)::int AS n FROM "${schema}".events`);
    assert.ok(epochs[0]!.n >= 1 + KILLS + STOPS, `a new epoch for each takeover (${epochs[0]!.n})`);
  },
);
