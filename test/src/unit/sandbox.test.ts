import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { detectSandbox, OUTPUT_CAP_BYTES, runCheck } from "@optimus/farm-server/dist/sandbox/index.js";
import { ROOT } from "../helpers/paths.js";
import { processesWith } from "../helpers/processes.js";

const cwd = mkdtempSync(join(tmpdir(), "optimus-sandbox-"));
let server: Server;
let port = 0;

before(async () => {
  server = createServer((socket) => socket.end());
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as { port: number }).port;
});
after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(cwd, { recursive: true, force: true });
});

const opts = { cwd, timeoutMs: 20_000 };
/** exits 0 when it reaches the test's loopback server, 3 when it cannot */
const connect = (): string =>
  `node -e "require('net').connect(${port},'127.0.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(3))"`;

test("the sandbox kind is probed and reported; Linux has bubblewrap", async (t) => {
  const choice = await detectSandbox();
  t.diagnostic(`sandbox on this machine: ${choice.kind}${choice.why ? ` (${choice.why})` : ""}`);
  assert.ok(
    process.platform !== "linux" || choice.kind === "bwrap",
    `a Linux machine must have bubblewrap (.ci/run installs it): ${choice.why}`,
  );
  const r = await runCheck("true", opts);
  assert.equal(r.sandbox, choice.kind);
  assert.equal(r.sandboxNote, undefined);
});

test("exit codes and interleaved output are captured", async () => {
  const ok = await runCheck("echo out; echo err >&2; echo out2", opts);
  assert.equal(ok.exitCode, 0);
  assert.equal(ok.output, "out\nerr\nout2\n");
  assert.equal(ok.timedOut, false);
  const failed = await runCheck("echo failing; exit 7", opts);
  assert.equal(failed.exitCode, 7);
  assert.equal(failed.output, "failing\n");
  const missing = await runCheck("no-such-command-here", opts);
  assert.equal(missing.exitCode, 127);
  assert.match(missing.output, /not found/);
});

test("the command runs in cwd and can write there", async () => {
  const r = await runCheck("pwd; echo made > made.txt", opts);
  assert.equal(r.exitCode, 0, r.output);
  assert.equal(r.output.trim(), cwd);
  assert.equal(readFileSync(join(cwd, "made.txt"), "utf8"), "made\n");
});

test("a missing cwd is a clear error", async () => {
  await assert.rejects(runCheck("true", { ...opts, cwd: join(cwd, "missing") }), /its folder .*missing does not exist/);
});

test("under bwrap only the cwd, HOME and a private /tmp are writable", async (t) => {
  if ((await detectSandbox()).kind !== "bwrap") return t.skip("the sandbox is not bwrap");
  const outside = join(ROOT, "test", "dist", `bwrap-write-probe-${process.pid}`); // not under /tmp, which bwrap replaces
  try {
    const r = await runCheck(
      `touch ${JSON.stringify(outside)} 2>/dev/null && echo wrote-outside; touch "$HOME/h" /tmp/t && echo home-ok`,
      opts,
    );
    assert.equal(r.output, "home-ok\n");
    assert.equal(existsSync(outside), false);
  } finally {
    rmSync(outside, { force: true });
  }
});

test("output is capped to the last 64 KiB", async () => {
  const r = await runCheck(
    `i=0; while [ $i -lt 3000 ]; do echo "line $i ................................................"; i=$((i+1)); done; echo LAST`,
    opts,
  );
  assert.equal(r.exitCode, 0);
  assert.ok(Buffer.byteLength(r.output) <= OUTPUT_CAP_BYTES, `${Buffer.byteLength(r.output)} bytes`);
  assert.ok(r.output.endsWith("LAST\n"));
  assert.ok(r.output.startsWith("[… earlier output cut …]\n"));
  assert.ok(!r.output.includes("line 0 "));
});

test("a timeout kills the whole process group quickly, children too", async () => {
  const marker = "30.4242"; // a unique sleep length, to find any survivor in /proc
  const started = Date.now();
  const r = await runCheck(`sleep ${marker} & sleep ${marker}; echo never`, { ...opts, timeoutMs: 300 });
  const elapsed = Date.now() - started;
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, null);
  assert.ok(elapsed < 3000, `took ${elapsed} ms`);
  assert.match(r.output, /ran over 300 ms and was killed/);
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.deepEqual(processesWith(`sleep\0${marker}`), [], "no sleep survived");
});

test("the parent's environment does not leak; HOME is a fresh temp dir; given env passes", async () => {
  process.env.OPTIMUS_SECRET_TEST = "leaked-secret-value";
  try {
    const r = await runCheck("env", { ...opts, env: { GIVEN_VAR: "given" } });
    assert.equal(r.exitCode, 0, r.output);
    assert.ok(!r.output.includes("OPTIMUS_SECRET_TEST") && !r.output.includes("leaked-secret-value"));
    assert.match(r.output, /^GIVEN_VAR=given$/m);
    assert.match(r.output, /^PATH=/m);
    const home = /^HOME=(.*)$/m.exec(r.output)?.[1];
    assert.ok(home && home !== process.env.HOME && /optimus-check-[^/]+\/home$/.test(home), home);
    const names = r.output
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split("=")[0]);
    const allowed = new Set(["PATH", "HOME", "LANG", "GIVEN_VAR", "PWD", "SHLVL", "_", "OLDPWD"]);
    assert.deepEqual(
      names.filter((n) => !allowed.has(n!)),
      [],
    );
  } finally {
    delete process.env.OPTIMUS_SECRET_TEST;
  }
});

test("the network is blocked: the loopback server is unreachable inside the sandbox", async () => {
  const unsandboxed = await runCheck(connect(), { ...opts, sandbox: "none" });
  assert.equal(unsandboxed.exitCode, 0, `control: without a sandbox the server is reachable\n${unsandboxed.output}`);
  assert.match(unsandboxed.sandboxNote ?? "", /^WARNING: checks and evals run WITHOUT a sandbox \(sandbox: none\)/);
  const r = await runCheck(connect(), opts);
  assert.notEqual(r.sandbox, "none");
  assert.equal(r.exitCode, 3, r.output);
});

test("bwrap named explicitly blocks the network; a sandbox that does not work here is a clear error", async () => {
  const r = await runCheck(connect(), { ...opts, sandbox: "bwrap" });
  assert.equal(r.sandbox, "bwrap");
  assert.equal(r.exitCode, 3, r.output);
  if (process.platform !== "darwin") {
    await assert.rejects(
      runCheck("true", { ...opts, sandbox: "sandbox-exec" }),
      /cannot run checks and evals: the sandbox-exec sandbox does not work here: sandbox-exec is not installed/,
    );
  }
});

test("check output reaches its reader without terminal escapes (colours, cursor moves, titles); lines kept", async () => {
  const r = await runCheck(
    `printf '\\033[31mFAIL\\033[0m src/a.test.ts\\n\\033]0;title\\007progress 10%%\\rprogress 100%%\\n\\033[2Kdone\\n'`,
    opts,
  );
  assert.equal(r.exitCode, 0, r.output);
  assert.equal(r.output, "FAIL src/a.test.ts\nprogress 10%\nprogress 100%\ndone\n");
});
