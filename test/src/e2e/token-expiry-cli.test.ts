// Token expiry as the CLI shows it (issue 14, item 4): `token create --ttl` and its usage errors,
// `token list` with each token's expiry (human and --json), and an `optimus worker` whose token is
// refused (expired, or revoked while it runs) exiting with the farm's line instead of retrying.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { TokenListEntry } from "@optimus/shared";
import { runCli } from "../helpers/cli.js";
import { makeFixtureRepo } from "../helpers/fixture.js";
import { startOpenAiStandin } from "../helpers/openai-standin.js";
import { CliProcess } from "../helpers/processes.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";

const lastLine = (s: string) => s.trim().split("\n").pop()!;
const date = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d UTC`;
const DAY_MS = 86_400_000;

test("token create --ttl takes 90s/30m/24h/7d and refuses anything else (exit 2); token list shows each expiry", async (t) => {
  const farm = await startTestFarm(t);
  const env = { OPTIMUS_FARM: farm.url, OPTIMUS_TOKEN: farm.adminToken };
  const cli = (...args: string[]) => runCli(args, { cwd: farm.repo, env });

  for (const bad of ["bad", "0s", "10x", "-5m", "400d", "1.5h"]) {
    const r = await cli("token", "create", "--role", "worker", "--name", "w", "--ttl", bad);
    assert.deepEqual(
      [r.code, r.stdout, lastLine(r.stderr)],
      [2, "", `optimus: --ttl must be a duration such as 90s, 30m, 24h or 7d (from 1s to 365d), got '${bad}'`],
      `--ttl ${bad}`,
    );
  }
  const coders = await cli("token", "create", "--role", "worker", "--name", "coders");
  assert.equal(coders.code, 0, coders.stderr);
  assert.match(
    coders.stderr,
    new RegExp(`^created worker token 'coders' \\(id [0-9a-f]{12}\\); it expires when unused for 1d \\(first at ${date}\\);`),
  );
  assert.equal((await cli("token", "create", "--role", "worker", "--name", "nightly", "--ttl", "7d")).code, 0);
  assert.equal((await cli("token", "create", "--role", "editor", "--name", "alice", "--ttl", "90m")).code, 0);
  const bob = await cli("token", "create", "--role", "editor", "--name", "bob");
  assert.doesNotMatch(bob.stderr, /expires/, "an editor token made without --ttl does not expire");

  const json = await cli("token", "list", "--json");
  assert.equal(json.code, 0, json.stderr);
  const byName = new Map((JSON.parse(json.stdout) as TokenListEntry[]).map((x) => [x.name, x]));
  const ttls = ["coders", "nightly", "alice", "bob"].map((n) => [
    n,
    byName.get(n)!.ttlMs,
    byName.get(n)!.expiresAt! - byName.get(n)!.createdAt,
  ]);
  assert.deepEqual(ttls, [
    ["coders", DAY_MS, DAY_MS],
    ["nightly", 7 * DAY_MS, 7 * DAY_MS],
    ["alice", 90 * 60_000, 90 * 60_000],
    ["bob", undefined, NaN],
  ]);
  assert.equal(byName.get("admin")!.expiresAt, undefined, "the farm's admin token does not expire");

  const human = await cli("token", "list");
  const line = (name: string) => human.stdout.split("\n").find((l) => l.includes(`  ${name}  `))!;
  assert.match(line("coders"), new RegExp(`  created ${date}, not used since the farm started, expires ${date} unless used \\(ttl 1d\\)$`));
  assert.match(line("alice"), /, expires .* unless used \(ttl 90m\)$/);
  assert.match(line("bob"), /, not used since the farm started$/);
});

test(
  "an `optimus worker` whose token expired, or is revoked while it runs, exits with the farm's line (exit 4)",
  { timeout: 90_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const farm = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } });
    const model = await startOpenAiStandin({ script: [] });
    t.after(() => model.close());
    const dir = mkdtempSync(join(tmpdir(), "optimus-worker-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const worker = (name: string, token: string) => {
      writeFileSync(join(dir, `${name}.token`), token, { mode: 0o600 });
      const p = new CliProcess(
        [
          "worker",
          ...["--role", "codegen", "--model", model.url, "--node-id", name, "--work-dir", join(dir, name), "--sandbox", "none"],
          ...["--farm", farm.url, "--token-file", join(dir, `${name}.token`)],
        ],
        { cwd: repo },
      );
      t.after(() => p.stop());
      return p;
    };
    // The one line it ends with (stderr; its log lines go to stdout, interleaved in `log`).
    const exited = (p: CliProcess) =>
      waitFor(
        () =>
          p.child.exitCode !== null
            ? {
                code: p.child.exitCode,
                line: p.log
                  .split("\n")
                  .filter((l) => l.startsWith("optimus: "))
                  .join("\n"),
              }
            : null,
        "the worker to exit",
        30_000,
      );

    const stale = await farm.client.admin.createToken.mutate({ role: "worker", name: "stale", ttlMs: 1_000 });
    await waitFor(() => Date.now() > stale.expiresAt! + 100, "the token to expire");
    const late = await exited(worker("stale", stale.token));
    assert.equal(late.code, 4);
    assert.match(
      late.line,
      new RegExp(
        `^optimus: the farm rejected the token \\(401\\): the worker token 'stale' expired at ${date} \\(unused for 1s\\); make a new one on the farm with \`optimus token create --role worker --name stale\` and give it to the worker's --token-file$`,
      ),
    );

    const live = await farm.client.admin.createToken.mutate({ role: "worker", name: "live" });
    const running = worker("live", live.token);
    await waitFor(
      async () => (await farm.client.fleet.workers.query()).some((w) => w.nodeId === "live" && w.connected),
      "the worker to join",
    );
    await farm.client.admin.revokeToken.mutate({ tokenId: live.tokenId });
    const stopped = await exited(running);
    assert.deepEqual(
      [stopped.code, stopped.line],
      [
        4,
        "optimus: the farm rejected the token (401): missing, revoked or invalid token; an admin makes one with `optimus token create --role worker --name <who>`",
      ],
    );
  },
);
