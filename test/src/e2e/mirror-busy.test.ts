/**
 * The farm caps its /git processes and answers 503 when they are all busy; workers' mirrors wait and
 * try again rather than failing the unit.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { RepoMirror } from "@optimus/farm-server/dist/worker/repo-mirror.js";
import { tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startTestFarm } from "../helpers/test-farm.js";

test(
  "eight workers fetching at once from a farm with one git slot and no queue: every fetch succeeds after waiting",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const farm = await startTestFarm(t, { repo, config: { limits: { maxGitProcesses: 1, maxGitQueue: 0 } } });
    const token = await tokenFor(farm.url, farm.adminToken, "worker", "w");
    const dirs = Array.from({ length: 8 }, () => mkdtempSync(join(tmpdir(), "optimus-mirror-")));
    t.after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
    // Control: plain fetches at once, without the mirror's waits, meet 503s (so the waits are real).
    const plain = await Promise.all(
      dirs.map(
        (d, i) =>
          new Promise<string>((resolve) => {
            execFile(
              "git",
              [
                "-c",
                `http.extraHeader=Authorization: Bearer ${token}`,
                "clone",
                "-q",
                "--bare",
                `${farm.url}/git`,
                join(d, `plain-${i}.git`),
              ],
              (err, _o, stderr) => resolve(err ? stderr : "ok"),
            );
          }),
      ),
    );
    assert.ok(
      plain.some((r) => /503/.test(r)),
      `some plain fetches were refused as busy: ${plain.join(" | ")}`,
    );
    const results = await Promise.allSettled(dirs.map((d) => new RepoMirror(farm.url, token, d).sync()));
    const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
    assert.deepEqual(failed, [], "every mirror got the repository");
    const wt = await new RepoMirror(farm.url, token, dirs[0]!).prepare("u1", "main");
    assert.match(readFileSync(join(wt, "src", "add.js"), "utf8"), /export function add/, "a worktree of main from the fetched mirror");
  },
);
