/**
 * Without a working sandbox, untrusted code does not run: the farm refuses to start with an eval
 * suite configured and says how to fix it; a check refuses likewise. `sandbox: none` is the
 * operator's explicit choice, and then every run says it ran unsandboxed.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { spawn } from "node:child_process";
import { runCli } from "../helpers/cli.js";
import { CLI } from "../helpers/paths.js";
import { waitFor } from "../helpers/wait.js";
import { freePort } from "../helpers/farm-process.js";
import { writeFarmConfig } from "../helpers/repo.js";

/** A PATH with node, git and sh but no bubblewrap: a machine where the sandbox is missing. */
function pathWithoutBwrap(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-nobwrap-"));
  for (const tool of ["git", "sh", "env"]) symlinkSync(`/usr/bin/${tool}`, join(dir, tool));
  symlinkSync(process.execPath, join(dir, "node"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("no sandbox: the farm refuses to run evals and names the fix; `sandbox: none` starts with a warning", { timeout: 120_000 }, async (t) => {
  const repo = makeFixtureRepo(t);
  const PATH = pathWithoutBwrap(t);
  const port = await freePort();
  const refused = await runCli(["farm", "up", "--port", String(port)], { cwd: repo, env: { PATH } });
  assert.equal(refused.code, 1, refused.stderr);
  assert.match(refused.stderr, /cannot run evals: no sandbox works on this machine \(bwrap: bwrap is not installed\)\. Fix: install bubblewrap/);
  assert.match(refused.stderr, /set `sandbox: none`/);

  writeFarmConfig(repo, `sandbox: none\nprloop:\n  eval:\n    - { name: tests, command: "node test/add.test.js" }\n`);
  const farm = spawn(process.execPath, [CLI, "farm", "up", "--port", String(port)], { cwd: repo, env: { ...process.env, PATH }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  farm.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  farm.stdout.on("data", (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((r) => farm.on("exit", (code) => r(code)));
  t.after(() => farm.kill("SIGKILL"));
  await waitFor(async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null))?.ok, "the farm to start with sandbox: none", 30_000);
  await waitFor(() => /WITHOUT a sandbox/.test(stderr), "the warning", 5_000).catch(() => undefined);
  assert.match(stderr, /WARNING: evals run WITHOUT a sandbox \(sandbox: none\)/);
  farm.kill("SIGINT");
  assert.equal(await exited, 0);
});
