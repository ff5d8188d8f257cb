/**
 * The farm's home: its state lives outside the repository (mode 0700), chosen by --home or
 * OPTIMUS_HOME; a farm that finds the old in-repository state moves it once and says so.
 */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { test } from "node:test";
import { pino } from "pino";
import { repoSlot, stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";
import { httpClientFor } from "../helpers/clients.js";
import { runCli } from "../helpers/cli.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";

test(
  "`farm up --home`: the state is in the home (0700), none in the repository; the CLI in the checkout finds the farm",
  { timeout: 60_000 },
  async (t) => {
    const repo = makeRepo(t);
    writeFarmConfig(repo);
    const home = mkdtempSync(join(tmpdir(), "optimus-home-"));
    t.after(() => rmSync(home, { recursive: true, force: true }));
    // --home alone chooses it (the run's OPTIMUS_HOME is cleared for this farm).
    await startTestFarm(t, { mode: "process", repo, args: ["--home", home], env: { OPTIMUS_HOME: "" } });
    const state = stateDirFor(repo, undefined, home);
    assert.ok(existsSync(join(state, "journal.db")), `the journal is in ${state}`);
    assert.ok(existsSync(join(state, "admin.token")));
    assert.equal(statSync(home).mode & 0o777, 0o700, "the home is private");
    assert.equal(statSync(state).mode & 0o777, 0o700);
    assert.equal(readFileSync(join(repoSlot(repo, home), "repo.json"), "utf8").includes(JSON.stringify(repo).slice(1, -1)), true);
    assert.equal(existsSync(join(repo, ".optimus", "state")), false, "nothing of the farm's state in the repository");
    const sent = await runCli(["--home", home, "send", "Say hello", "--files", "README.md"], { cwd: repo, env: { OPTIMUS_HOME: "" } });
    assert.equal(sent.code, 0, sent.stderr);
    const status = await runCli(["status", "--once"], { cwd: repo, env: { OPTIMUS_HOME: home } });
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /Say hello/);
  },
);

test(
  "a farm that finds its state in the repository (.optimus/state) moves it into the home once, says so, and carries on",
  { timeout: 60_000 },
  async (t) => {
    const repo = makeRepo(t);
    const legacy = join(repo, ".optimus", "state");
    const base = { prloop: { reviewEveryCodegenUnit: false }, planner: { enabled: false } };
    // A farm of before the home: its state folder inside the repository.
    const old = await startTestFarm(t, { repo, config: { ...base, stateDir: legacy } });
    await old.client.tasks.create.mutate({ id: "kept", title: "Kept across the move", units: [{ id: "u1", goal: "stay" }] });
    const admin = old.adminToken;
    await old.stop();
    assert.ok(existsSync(join(legacy, "journal.db")));

    const lines: string[] = [];
    const sink = new Writable({
      write: (chunk: Buffer, _e, cb) => {
        lines.push(chunk.toString());
        cb();
      },
    });
    const farm = (await startTestFarm(t, { repo, config: base, log: pino({ level: "warn" }, sink) })).server;
    assert.match(lines.join(""), /moved the farm's state out of the repository: .*\.optimus\/state → .*\/repos\/.*\/state/);
    assert.equal(existsSync(legacy), false, "the old folder is gone");
    assert.ok(existsSync(join(stateDirFor(repo), "journal.db")));
    const task = await httpClientFor(farm.url, admin).tasks.get.query({ taskId: "kept" });
    assert.equal(task.task.title, "Kept across the move", "the journal and the tokens came along");
    assert.equal(farm.startup.adminToken, undefined, "no new admin token: the old one still works");
  },
);
