import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import Database from "better-sqlite3";
import { errorCode } from "@optimus/farm-server";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { freePort } from "../helpers/ports.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { makeRepo } from "../helpers/repo.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

test("bad input gets one clear error and changes nothing", async (t) => {
  const repo = makeRepo(t);
  mkdirSync(join(repo, ".optimus"), { recursive: true });
  writeFileSync(join(repo, ".optimus", "config.yaml"), "maxBodyBytes: 65536\n");
  const farm = await startTestFarm(t, { mode: "process", repo });
  const env = { OPTIMUS_FARM: farm.url };
  const cli = (...args: string[]) => runCli(args, { cwd: repo, env });
  const write = (name: string, text: string) => {
    writeFileSync(join(repo, name), text);
    return name;
  };

  await t.test("malformed YAML: file and line", async () => {
    const r = await cli("task", "import", write("broken.yaml", "title: x\nunits:\n  - id: a\n    goal: [unclosed\n"));
    assert.equal(r.code, 2, "bad input: exit 2");
    assert.match(r.stderr, /^optimus: broken\.yaml:\d+:\d+: \(syntax\): /m);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  });

  await t.test("schema-invalid manifest: file, line and field for each problem", async () => {
    const r = await cli(
      "task",
      "import",
      write("invalid.yaml", "title: x\nunits:\n  - id: a\n    goal: g\n    role: tester\n  - id: B!\n    goal: g\n    colour: red\n"),
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid\.yaml:5:5: units\[0\]\.role: Invalid option: expected one of "codegen"\|"review"/);
    assert.match(r.stderr, /invalid\.yaml:6:5: units\[1\]\.id: use lower-case letters/);
    assert.match(r.stderr, /invalid\.yaml:6:\d+: units\[1\]: unknown field: colour/);
  });

  await t.test("dependency cycle: named, with its line", async () => {
    const r = await cli(
      "task",
      "import",
      write("cycle.yaml", "title: x\nunits:\n  - id: a\n    goal: g\n    dependsOn: [b]\n  - id: b\n    goal: g\n    dependsOn: [a]\n"),
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^optimus: cycle\.yaml:5:5: units\[0\]\.dependsOn: dependency cycle: a → b → a$/m);
  });

  await t.test("a cycle sent straight to the API is refused as well", async () => {
    const err = await httpClientFor(farm.url, farm.adminToken)
      .tasks.create.mutate({
        title: "x",
        units: [
          { id: "a", goal: "g", dependsOn: ["b"] },
          { id: "b", goal: "g", dependsOn: ["a"] },
        ],
      })
      .catch((e: unknown) => e);
    assert.equal(errorCode(err), "BAD_REQUEST");
    assert.match((err as Error).message, /dependency cycle: a → b → a/);
  });

  await t.test("a missing file", async () => {
    const r = await cli("task", "import", "nope.yaml");
    assert.deepEqual([r.code, r.stderr.trim()], [2, "optimus: cannot read the manifest nope.yaml"]);
  });

  await t.test("unknown ids: not found (exit 3) with the id named; 404 from the API", async () => {
    let r = await cli("task", "cancel", "no-such-task");
    assert.deepEqual([r.code, r.stderr.trim()], [3, "optimus: no task matches 'no-such-task'"]);
    r = await cli("unit", "retry", "no-such-task/u1");
    assert.deepEqual([r.code, r.stderr.trim()], [3, "optimus: no task matches 'no-such-task'"]);
    r = await cli("unit", "retry", "no-such-task");
    assert.deepEqual([r.code, r.stderr.trim()], [2, "optimus: name the unit as <task>/<unit>, got 'no-such-task'"]);
    const res = await fetch(`${farm.url}/trpc/units.get?input=${encodeURIComponent(JSON.stringify({ taskId: "ghost", unitId: "u9" }))}`, {
      headers: { authorization: `Bearer ${farm.adminToken}` },
    });
    assert.equal(res.status, 404);
    const body = await res.text();
    assert.match(body, /task 'ghost' not found/);
    assert.doesNotMatch(body, /stack|\.js:\d+/);
  });

  await t.test("wrong token: 401; wrong role: 403", async () => {
    const r = await runCli(["status", "--token", "opt_000000000000_" + "x".repeat(43)], { cwd: repo, env });
    assert.equal(r.code, 4, "refused: exit 4");
    // The hint names the role the refused call needs (status reads tasks: an editor token).
    assert.equal(
      r.stderr.trim().split("\n").pop(),
      "optimus: the farm rejected the token (401): missing, revoked or invalid token; an admin makes one with `optimus token create --role editor --name <who>`",
    );
    const res = await fetch(`${farm.url}/trpc/tasks.list`, { headers: { authorization: "Bearer nonsense" } });
    assert.equal(res.status, 401);
    assert.doesNotMatch(await res.text(), /stack/);

    const editor = httpClientFor(farm.url, await tokenFor(farm.url, farm.adminToken, "editor", "alice"));
    const worker = httpClientFor(farm.url, await tokenFor(farm.url, farm.adminToken, "worker", "w"));
    const forbidden = async (p: Promise<unknown>, re: RegExp) => {
      const e = await p.catch((x: unknown) => x);
      assert.equal(errorCode(e), "FORBIDDEN", String(e));
      assert.match((e as Error).message, re);
    };
    await forbidden(
      editor.admin.createToken.mutate({ role: "admin", name: "escalate" }),
      /an editor token may not do this \(needs admin\)/,
    );
    await forbidden(worker.tasks.create.mutate({ title: "sneaky" }), /a worker token may not do this/);
    await forbidden(editor.worker.register.mutate({ nodeId: "w9", role: "codegen" }), /an editor token may not do this \(needs worker\)/);
    // A second worker token cannot act for a node registered by the first.
    await worker.worker.register.mutate({ nodeId: "node-a", role: "codegen" });
    const other = httpClientFor(farm.url, await tokenFor(farm.url, farm.adminToken, "worker", "w2"));
    await forbidden(other.worker.heartbeat.mutate({ nodeId: "node-a", leases: [] }), /worker 'node-a' belongs to another token/);
    await forbidden(other.worker.register.mutate({ nodeId: "node-a", role: "codegen" }), /registered with another worker token/);
  });

  await t.test("field messages for invalid calls, no stack traces", async () => {
    const res = await fetch(`${farm.url}/trpc/tasks.create`, {
      method: "POST",
      headers: { authorization: `Bearer ${farm.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "", priority: 1.5, extra: true }),
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as {
      error: { message: string; data: { fieldErrors: Record<string, string[]>; formErrors: string[]; stack?: string } };
    };
    assert.deepEqual(Object.keys(body.error.data.fieldErrors).sort(), ["priority", "title"]);
    assert.match(body.error.data.fieldErrors.title![0]!, /must not be empty/);
    assert.match(body.error.data.formErrors.join(), /extra/);
    assert.equal(body.error.data.stack, undefined);
  });

  await t.test("oversized payload: 413, and the farm carries on", async () => {
    const res = await fetch(`${farm.url}/trpc/tasks.create`, {
      method: "POST",
      headers: { authorization: `Bearer ${farm.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ title: "big", description: "x".repeat(100_000) }),
    });
    assert.equal(res.status, 413);
    const r = await runCli(["send", "x".repeat(70_000)], { cwd: repo, env });
    assert.equal(r.code, 2, "bad input: exit 2");
    assert.match(r.stderr, /^optimus: the request is too large for the farm \(413\)/);
    assert.equal((await fetch(`${farm.url}/healthz`)).status, 200);
  });

  await t.test("nothing above changed the farm's state", async () => {
    assert.deepEqual(await httpClientFor(farm.url, farm.adminToken).tasks.list.query(), []);
    assert.equal(existsSync(join(repo, ".optimus", "tasks")) ? readdirSync(join(repo, ".optimus", "tasks")).length : 0, 0);
    const db = new Database(join(stateDirFor(repo), "journal.db"), { readonly: true });
    const types = db.prepare("SELECT DISTINCT type FROM events ORDER BY type").pluck().all();
    db.close();
    // What the start wrote (its epoch, the admin token, the origin commit whose manifests it read) and the worker's registration.
    assert.deepEqual(types, ["epoch_started", "manifests_imported", "token_created", "worker_registered"]);
  });

  await t.test("unreachable farm, bad config, busy port: one line each", async () => {
    let r = await runCli(["status", "--farm", "http://127.0.0.1:1"], { cwd: repo });
    assert.deepEqual(
      [r.code, r.stderr.trim()],
      [1, "optimus: cannot reach the farm at http://127.0.0.1:1 (connection refused); start it with `optimus farm up` or pass --farm"],
    );
    // A second farm on the same repository is refused before it touches the journal.
    r = await runCli(["farm", "up", "--port", String(await freePort())], { cwd: repo });
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^optimus: another farm server \(pid \d+\) is already running on this repository/);
    assert.equal((await httpClientFor(farm.url, farm.adminToken).health.query()).epoch, 1, "the running farm was not fenced off");
    const other = makeRepo(t);
    r = await runCli(["farm", "up", "--port", String(farm.port)], { cwd: other });
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim().split("\n").pop()!, new RegExp(`^optimus: port ${farm.port} on 127.0.0.1 is in use`));
    mkdirSync(join(other, ".optimus"), { recursive: true });
    writeFileSync(join(other, ".optimus", "config.yaml"), "heartbeatIntervalMs: soon\n");
    r = await runCli(["farm", "up", "--port", "0"], { cwd: other });
    assert.deepEqual(
      [r.code, r.stderr.trim()],
      [1, "optimus: .optimus/config.yaml: heartbeatIntervalMs: Invalid input: expected number, received string"],
    );
    r = await runCli(["farm", "up", "--port", "http"], { cwd: other });
    assert.deepEqual([r.code, r.stderr.trim()], [2, "optimus: --port must be a whole number, got 'http'"]);
    r = await runCli(["bogus"], { cwd: other });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command 'bogus'/);
  });
});
