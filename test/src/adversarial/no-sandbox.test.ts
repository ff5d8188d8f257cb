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
import { runCli } from "../helpers/cli.js";
import { waitFor } from "../helpers/wait.js";
import { freePort } from "../helpers/ports.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { writeFarmConfig } from "../helpers/repo.js";

/** A PATH with node, git and sh but no bubblewrap: a machine where the sandbox is missing. */
function pathWithoutBwrap(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-nobwrap-"));
  for (const tool of ["git", "sh", "env"]) symlinkSync(`/usr/bin/${tool}`, join(dir, tool));
  symlinkSync(process.execPath, join(dir, "node"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test(
  "no sandbox: the farm refuses to run evals and names the fix; `sandbox: none` starts with a warning",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const PATH = pathWithoutBwrap(t);
    const refused = await runCli(["farm", "up", "--port", String(await freePort())], { cwd: repo, env: { PATH } });
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(
      refused.stderr,
      /cannot run evals: no sandbox works on this machine \(bwrap: bwrap is not installed\)\. Fix: install bubblewrap/,
    );
    assert.match(refused.stderr, /set `sandbox: none`/);

    writeFarmConfig(repo, `sandbox: none\nprloop:\n  eval:\n    - { name: tests, command: "node test/add.test.js" }\n`);
    const farm = await startTestFarm(t, { mode: "process", repo, env: { PATH } });
    await waitFor(() => /WITHOUT a sandbox/.test(farm.log), "the warning", 5_000).catch(() => undefined);
    assert.match(farm.log, /WARNING: evals run WITHOUT a sandbox \(sandbox: none\)/);
    await farm.stop("SIGINT");
    assert.equal(farm.exitCode, 0);
  },
);
