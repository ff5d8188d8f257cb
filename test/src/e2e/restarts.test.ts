import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { httpClientFor } from "../helpers/clients.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { git, makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { waitFor } from "../helpers/wait.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

// Restarts that just work (issue 11, item 4): `farm up --workers N` again and again on one farm.

const reply = (req: StandinRequest) =>
  req.messages[0]!.content.startsWith("You review")
    ? JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] })
    : JSON.stringify({
        summary: "fix",
        edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: "return a + b;" }],
        done: true,
      });

const joined = (log: string) => log.match(/2 local worker\(s\) joined \(1 codegen, 1 review\)/g)?.length ?? 0;

test(
  "`farm up --workers 2` stopped and started three times, then SIGKILLed and started again: every start works, one token per local worker role",
  { timeout: 240_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const model = await startOpenAiStandin({ script: Array.from({ length: 20 }, () => reply) });
    t.after(() => model.close());
    const farm = await startTestFarm(t, {
      mode: "process",
      repo,
      args: ["--heartbeat-ms", "1000", "--workers", "2", "--worker-model", model.url],
    });
    const tokenList = async () => {
      const r = await runCli(["token", "list"], { cwd: repo, env: { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: farm.adminToken } });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout
        .trim()
        .split("\n")
        .filter((l) => / worker /.test(l));
    };
    let first: string[] | undefined;
    for (let i = 1; i <= 3; i++) {
      await farm.start(); // nothing the first time: it runs already
      await waitFor(() => joined(farm.log) === i, `the local workers to join (start ${i})`, 30_000);
      const workers = await tokenList();
      t.diagnostic(`start ${i}: ${workers.join(" | ")}`);
      assert.deepEqual(
        workers.map((l) => l.replace(/^[0-9a-f]{12}\s+/, "").replace(/ {2}created .*$/, "")),
        ["worker  local-codegen", "worker  local-review"],
        "one live token per local worker role, none revoked",
      );
      // Their ids and creation dates (the last use changes with each start).
      const made = workers.map((l) => l.replace(/, (last used|not used) .*$/, ""));
      first ??= made;
      assert.deepEqual(made, first, "the same tokens as at the first start");
      const stopped = Date.now();
      await farm.stop();
      const ms = Date.now() - stopped;
      t.diagnostic(`start ${i}: stopped ${ms} ms after SIGTERM`);
      assert.ok(ms < 5_000, `the farm took ${ms} ms to stop`);
      assert.doesNotMatch(farm.log, /refus|registered with another worker token|did not stop within/);
    }
    assert.equal(farm.exits, 3);
    // The tokens are kept in the farm's state, in its home, readable by the user only.
    const file = join(stateDirFor(repo), "local-workers.tokens.json");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(Object.keys(JSON.parse(readFileSync(file, "utf8"))), ["codegen", "review"]);

    // A farm killed outright leaves its lock: the next start takes it over, says so, and works.
    await farm.start();
    await waitFor(() => joined(farm.log) === 4, "the local workers to join (start 4)", 30_000);
    const killedPid = farm.pid!;
    await farm.kill9();
    const from = farm.log.length;
    await farm.start();
    await waitFor(() => joined(farm.log) === 5, "the local workers to join after the SIGKILL", 30_000);
    assert.match(farm.log.slice(from), new RegExp(`took over the farm lock left by a farm that is gone \\(pid ${killedPid}`));
    assert.deepEqual(
      (await tokenList()).map((l) => l.replace(/, (last used|not used) .*$/, "")),
      first,
      "still the same two tokens",
    );

    // And the restarted workers still do their work with the kept tokens.
    const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: farm.adminToken };
    const taskId = (
      await runCli(["send", "Make add add", "--files", "src/add.js", "--check", "node test/add.test.js"], { cwd: repo, env })
    ).stdout.trim();
    const admin = httpClientFor(farm.url, farm.adminToken);
    await waitFor(async () => (await admin.tasks.get.query({ taskId })).task.merge?.commit, "the task to reach main", 120_000);
    assert.match(git(repo, "show", "main:src/add.js"), /a \+ b/);
  },
);
