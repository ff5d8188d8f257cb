// Every hint names the right fix (issue 14, item 3), and a worker whose farm is down says so every
// few seconds and waits for it (item 4). Each message is asserted as the user sees it.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { adminTokenFile, loadConfig } from "@optimus/farm-server/dist/cli/context.js";
import { openModel } from "@optimus/farm-server/dist/cli/worker-command.js";
import { writeTinyGguf } from "../helpers/gguf.js";
import { runCli } from "../helpers/cli.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin } from "../helpers/openai-standin.js";
import { freePort } from "../helpers/ports.js";
import { freshSchema, TEST_PG_URL } from "../helpers/postgres.js";
import { CliProcess } from "../helpers/processes.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";

const lastLine = (s: string) => s.trim().split("\n").pop()!;

test("farm up's worker flags: --workers without a model names --worker-model; --worker-model without --workers is refused", async (t) => {
  const repo = makeRepo(t);
  let r = await runCli(["farm", "up", "--port", "0", "--workers", "2"], { cwd: repo });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [
      2,
      "optimus: --workers 2 needs a model for them: pass --worker-model <file.gguf> or --worker-model http://host:port/v1 (llama-server, Ollama, vLLM, LM Studio); download a GGUF with `optimus model pull <uri>`",
    ],
  );
  r = await runCli(["farm", "up", "--port", "0", "--worker-model", "http://127.0.0.1:1/v1"], { cwd: repo });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [
      2,
      "optimus: --worker-model is for the farm's own workers, and none run without --workers <n>: add --workers 2 (one codegen, one review), or run `optimus worker` on a node",
    ],
  );
  assert.ok(!existsSync(adminTokenFile(repo, loadConfig(repo))), "a refused start issued no token");
});

test("a bad farm URL is a usage error (exit 2) naming where it came from, before anything connects or loads a model", async (t) => {
  const repo = makeRepo(t);
  let r = await runCli(["status", "--farm", "nope", "--token", "x"], { cwd: repo });
  assert.deepEqual([r.code, lastLine(r.stderr)], [2, "optimus: not a farm URL: 'nope' (expected http(s)://host:port) in --farm"]);
  r = await runCli(["worker", "--role", "codegen", "--model", "http://127.0.0.1:1/v1", "--sandbox", "none"], {
    cwd: repo,
    env: { OPTIMUS_FARM: "http://127.0.0.1:1,ftp://elsewhere", OPTIMUS_TOKEN: "x" },
  });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [2, "optimus: not a farm URL: 'ftp://elsewhere' (expected http(s)://host:port) in $OPTIMUS_FARM"],
  );
});

test("a standby node whose port is taken names --port (not a raw EADDRINUSE)", { timeout: 60_000 }, async (t) => {
  const repo = makeRepo(t);
  const schema = await freshSchema(t, "hint");
  const pg = new URL(TEST_PG_URL);
  const PGPASSWORD = decodeURIComponent(pg.password);
  pg.password = "";
  writeFarmConfig(repo, `planner: { enabled: false }\nstore: { kind: postgres, url: "${pg}", schema: ${schema} }\n`);
  await startTestFarm(t, { mode: "process", repo, env: { PGPASSWORD } });
  const busy = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => busy.once("listening", r));
  t.after(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const homeB = mkdtempSync(join(tmpdir(), "optimus-node-b-"));
  t.after(() => rmSync(homeB, { recursive: true, force: true }));
  const r = await runCli(["farm", "up", "--port", String(port)], { cwd: repo, env: { PGPASSWORD, OPTIMUS_HOME: homeB } });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [
      1,
      `optimus: port ${port} on 127.0.0.1 is in use, so this node cannot stand by there (another farm node on this machine? each needs its own port): choose another with --port <n>`,
    ],
  );
});

test("a model URL that is down: the URL cannot be reached, why, and which flag to check (not 'fetch failed')", async (t) => {
  const repo = makeRepo(t);
  const url = `http://127.0.0.1:${await freePort()}/v1`;
  let r = await runCli(["farm", "up", "--port", "0", "--workers", "2", "--worker-model", url], { cwd: repo });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [
      1,
      `optimus: cannot reach the model server at ${url}: connection refused (nothing listens there); start it, or check the URL given with --worker-model (an OpenAI-compatible server's /v1 URL, e.g. http://127.0.0.1:11434/v1)`,
    ],
  );
  const dir = mkdtempSync(join(tmpdir(), "optimus-hint-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "w.token"), `opt_000000000000_${"x".repeat(43)}\n`, { mode: 0o600 });
  r = await runCli(
    [
      "worker",
      "--role",
      "codegen",
      "--model",
      url,
      "--farm",
      "http://127.0.0.1:1",
      "--token-file",
      join(dir, "w.token"),
      "--sandbox",
      "none",
    ],
    { cwd: repo },
  );
  assert.equal(r.code, 1);
  assert.equal(
    lastLine(r.stderr),
    `optimus: cannot reach the model server at ${url}: connection refused (nothing listens there); start it, or check the URL given with --model (an OpenAI-compatible server's /v1 URL, e.g. http://127.0.0.1:11434/v1)`,
  );
  assert.doesNotMatch(r.stderr, /fetch failed/);
});

test("the context size has a flag to raise it: `worker --context-size`, `farm up --worker-context-size`, localWorkers.contextSize", async (t) => {
  const repo = makeRepo(t);
  const help = await runCli(["worker", "--help"], { cwd: repo });
  assert.match(help.stdout, /--context-size <n> +tokens a GGUF model's context holds/);
  const up = await runCli(["farm", "up", "--help"], { cwd: repo });
  assert.match(up.stdout, /--worker-context-size <n> +tokens their GGUF model's context holds/);
  // The settings key is read by the farm's own loader.
  writeFarmConfig(repo, "localWorkers: { contextSize: 100 }\n");
  const r = await runCli(["farm", "up", "--port", "0"], { cwd: repo });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [1, "optimus: .optimus/config.yaml: localWorkers.contextSize: Too small: expected number to be >=256"],
  );
});

test("the first start on a busy port keeps its admin token and names --port and --reset-admin-token", { timeout: 60_000 }, async (t) => {
  const repo = makeRepo(t);
  writeFarmConfig(repo);
  const busy = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => busy.once("listening", r));
  t.after(() => busy.close());
  const port = (busy.address() as { port: number }).port;
  const r = await runCli(["farm", "up", "--port", String(port)], { cwd: repo });
  const file = adminTokenFile(repo, loadConfig(repo));
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [
      1,
      `optimus: port ${port} on 127.0.0.1 is in use (is a farm already running? \`optimus status\` asks it); choose another with --port <n>; the admin token it issued is kept in ${file} (were it lost, \`optimus farm up --reset-admin-token\` issues a new one and revokes the old)`,
    ],
  );
  const kept = readFileSync(file, "utf8").trim();
  // The next start on a free port issues none: the kept token is the farm's admin token.
  const farm = await startTestFarm(t, { mode: "process", repo });
  assert.equal(farm.adminToken, kept);
  assert.deepEqual(await httpClientFor(farm.url, kept).tasks.list.query(), []);
});

test(
  "--reset-admin-token revokes the old admin token; token list shows when each was made and last used",
  { timeout: 60_000 },
  async (t) => {
    const repo = makeRepo(t);
    writeFarmConfig(repo);
    const first = await startTestFarm(t, { mode: "process", repo });
    const old = first.adminToken;
    const person = await tokenFor(first.url, old, "admin", "admin-ops"); // a person's admin token stays
    await first.stop();
    const farm = await startTestFarm(t, { mode: "process", repo, args: ["--reset-admin-token"] });
    assert.notEqual(farm.adminToken, old);
    assert.match(farm.log, /created a new admin token and revoked the farm's old one; it is in /);
    const env = { OPTIMUS_FARM: farm.url };
    const refused = await runCli(["status", "--once"], { cwd: repo, env: { ...env, OPTIMUS_TOKEN: old } });
    assert.deepEqual(
      [refused.code, lastLine(refused.stderr)],
      [
        4, // refused: a wrong or revoked token (see the README's exit codes)
        "optimus: the farm rejected the token (401): missing, revoked or invalid token; an admin makes one with `optimus token create --role editor --name <who>`",
      ],
    );
    assert.equal((await runCli(["status", "--once"], { cwd: repo, env: { ...env, OPTIMUS_TOKEN: person } })).code, 0);
    const list = await runCli(["token", "list"], { cwd: repo, env: { ...env, OPTIMUS_TOKEN: farm.adminToken } });
    assert.equal(list.code, 0, list.stderr);
    const lines = list.stdout.trim().split("\n");
    const date = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d UTC`;
    assert.equal(lines.length, 3, list.stdout);
    assert.match(lines[0]!, new RegExp(`^[0-9a-f]{12}  admin   admin  \\(revoked\\)  created ${date}, not used since the farm started$`));
    assert.match(lines[1]!, new RegExp(`^[0-9a-f]{12}  admin   admin-ops  created ${date}, last used ${date}$`));
    assert.match(lines[2]!, new RegExp(`^[0-9a-f]{12}  admin   admin-\\S+  created ${date}, last used ${date}$`));
  },
);

test("a worker whose farm is down says so every few seconds, waits, and joins when the farm is back", { timeout: 90_000 }, async (t) => {
  const repo = makeFixtureRepo(t);
  const model = await startOpenAiStandin({ script: [] });
  t.after(() => model.close());
  const farm = await startTestFarm(t, { mode: "process", repo, args: ["--heartbeat-ms", "1000"] });
  const dir = mkdtempSync(join(tmpdir(), "optimus-worker-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, "w.token"), await tokenFor(farm.url, farm.adminToken, "worker", "w1"), { mode: 0o600 });
  await farm.stop();
  const started = Date.now();
  const worker = new CliProcess(
    [
      "worker",
      ...["--role", "codegen", "--model", model.url, "--node-id", "w1", "--work-dir", join(dir, "work")],
      ...["--farm", farm.url, "--token-file", join(dir, "w.token"), "--sandbox", "none"],
    ],
    { cwd: repo },
  );
  t.after(() => worker.stop());
  const said = () =>
    worker.log
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => (JSON.parse(l) as { msg: string }).msg);
  const down = new RegExp(
    `^w1: cannot reach the farm at ${farm.url.replace(/\./g, "\\.")}: connection refused \\(nothing listens there\\); retrying \\(since (\\d+)s\\)$`,
  );
  await waitFor(() => said().some((m) => down.test(m)), "the worker to say the farm is down", 6_000);
  const firstMs = Date.now() - started;
  t.diagnostic(`first 'cannot reach' line ${firstMs} ms after the worker started`);
  await waitFor(() => said().filter((m) => down.test(m)).length >= 2, "it to say so again", 8_000);
  assert.equal(worker.child.exitCode, null, "the worker waits for its farm");
  await farm.start();
  await waitFor(() => said().some((m) => m.includes("waiting for units")), "the worker to join the farm", 20_000);
  assert.ok(said().some((m) => new RegExp(`^w1: reached the farm at ${farm.url.replace(/\./g, "\\.")} again after \\d+s$`).test(m)));
  const fleet = await farm.client.fleet.workers.query();
  assert.deepEqual(
    fleet.map((w) => [w.nodeId, w.connected]),
    [["w1", true]],
  );
});

test("a prompt larger than a GGUF model's context names the flag that raises it (`optimus worker --context-size`)", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-ctx-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, "tiny.gguf");
  writeTinyGguf(path, { seed: 3, layers: 1, width: 32 });
  // The model as `optimus worker --model <file> --context-size 256` opens it.
  const model = await openModel(path, undefined, { threads: 1, contextSize: 256 });
  t.after(() => model.close());
  await assert.rejects(model.generate([{ role: "user", content: "word ".repeat(400) }]), (e: Error) => {
    assert.match(
      e.message,
      /^the prompt is \d+ tokens but tiny's context holds 256: raise it with --context-size <n> \(the model was trained on 4096\), or give the unit fewer files$/,
    );
    return true;
  });
});
