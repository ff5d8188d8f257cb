/**
 * Code that a model wrote runs in two places: the farm's eval suite and a worker's unit check. Here
 * that code is an attacker: it tries to read the farm's tokens, journal and secrets, HOME and
 * another repository, to write outside its worktree and into any `.git` (hooks that the farm's or
 * the worker's own git would later run outside the sandbox), and to reach a host Unix socket. Each
 * attack is first run without the sandbox (`sandbox: none`) to show it works there, then for real.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Lease } from "@optimus/farm-server";
import { runCheck } from "@optimus/farm-server/dist/sandbox/index.js";
import { RepoMirror } from "@optimus/farm-server/dist/worker/repo-mirror.js";
import { httpClientFor, tokenFor } from "../helpers/clients.js";
import { makeFixtureRepo, patchFor } from "../helpers/fixture.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { newLedger, startWorkers, stopAll } from "../helpers/workers.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

interface Targets {
  readFiles: Record<string, string>;
  listDirs: Record<string, string>;
  writeFiles: Record<string, string>;
  socket: string;
}

/** The attack, as a node ESM script: prints `ESCAPE {json}` with what each attempt got, then fails. */
const attack = (t: Targets) => `import fs from "node:fs";
import net from "node:net";
const T = ${JSON.stringify(t)};
const out = {};
for (const [k, p] of Object.entries(T.readFiles)) { try { out[k] = "READ:" + fs.readFileSync(p, "latin1").slice(0, 300); } catch (e) { out[k] = "blocked:" + e.code; } }
for (const [k, p] of Object.entries(T.listDirs)) { try { out[k] = "LISTED:" + fs.readdirSync(p).join(","); } catch (e) { out[k] = "blocked:" + e.code; } }
for (const [k, p] of Object.entries(T.writeFiles)) { try { fs.writeFileSync(p, "#!/bin/sh\\ntouch " + JSON.stringify(p + ".ran") + "\\n", { mode: 0o755 }); out[k] = "WROTE"; } catch (e) { out[k] = "blocked:" + e.code; } }
out.socket = await new Promise((r) => { const s = net.connect(T.socket); s.on("connect", () => { s.destroy(); r("CONNECTED"); }); s.on("error", (e) => r("blocked:" + e.code)); });
console.log("ESCAPE " + JSON.stringify(out));
process.exit(1);
`;

const resultsOf = (output: string): Record<string, string> => {
  const m = /ESCAPE (\{.*\})/.exec(output);
  assert.ok(m, `the attack reported: ${output.slice(-500)}`);
  return JSON.parse(m[1]!) as Record<string, string>;
};

async function hostSocket(t: { after(fn: () => unknown): void }): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-host-sock-"));
  const path = join(dir, "s.sock");
  const server = createServer((c) => c.end());
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

test(
  "code run by the farm's evals cannot read the farm's state, secrets, HOME or other repositories, write outside its worktree or into .git, or reach host sockets",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t, "  reviewEveryCodegenUnit: false\nplanner: { enabled: false }\n");
    const other = makeRepo(t, "optimus-other-repo-");
    writeFileSync(join(other, "secret.txt"), "another team's secret\n");
    const vault = mkdtempSync(join(tmpdir(), "optimus-vault-"));
    mkdirSync(join(vault, "anthropic"));
    writeFileSync(join(vault, "anthropic", "key"), "sk-ant-VAULT-CANARY\n", { mode: 0o600 });
    t.after(() => rmSync(vault, { recursive: true, force: true }));
    const socket = await hostSocket(t);
    const state = stateDirFor(repo);
    const farm = await startTestFarm(t, { repo, config: { heartbeatIntervalMs: 500 } }); // its admin token in the state, as `optimus farm up` writes it
    const admin = farm.adminToken;
    const targets: Targets = {
      readFiles: {
        adminToken: join(state, "admin.token"),
        tokensDb: join(state, "tokens.db"),
        journal: join(state, "journal.db"),
        vault: join(vault, "anthropic", "key"),
        otherRepo: join(other, "secret.txt"),
        shadow: "/etc/shadow",
      },
      listDirs: { stateDir: state, home: process.env.HOME ?? "/root", repoRoot: repo },
      writeFiles: { outside: join(repo, "PWNED"), hook: join(repo, ".git", "hooks", "reference-transaction"), gitFile: ".git" },
      socket,
    };

    // Control: the same attack without the sandbox, where the farm's worktrees are, gets everything.
    mkdirSync(join(state, "worktrees"), { recursive: true });
    const bare = mkdtempSync(join(state, "worktrees", "control-"));
    writeFileSync(join(bare, "attack.mjs"), attack({ ...targets, writeFiles: { outside: join(bare, "x") } }));
    const control = resultsOf((await runCheck("node attack.mjs", { cwd: bare, timeoutMs: 20_000, sandbox: "none" })).output);
    rmSync(bare, { recursive: true, force: true });
    assert.match(control.adminToken!, /^READ:opt_/, "without a sandbox the admin token is readable");
    assert.match(control.vault!, /^READ:sk-ant-VAULT-CANARY/);
    assert.match(control.otherRepo!, /^READ:another team/);
    assert.equal(control.socket, "CONNECTED");

    // For real: a worker submits the attack as the repository's test; the farm's eval suite runs it.
    const token = await tokenFor(farm.url, admin, "worker", "coder");
    const feedback: string[][] = [];
    const agents = await startWorkers(
      farm.url,
      token,
      [{ nodeId: "coder", role: "codegen", max: 1 }],
      newLedger(),
      async (lease: Lease) => {
        const ctx = (lease.context ?? {}) as { base?: { branch: string }; feedback?: string[] };
        feedback.push(ctx.feedback ?? []);
        return {
          outcome: "succeeded",
          summary: "a test",
          patch: patchFor(repo, ctx.base!.branch, { "test/add.test.js": attack(targets) }),
        };
      },
    );
    t.after(() => stopAll(agents));
    const client = httpClientFor(farm.url, admin);
    await client.tasks.create.mutate({
      id: "attack",
      title: "A hostile test",
      units: [{ id: "u1", goal: "add a test", files: ["test/add.test.js"], maxAttempts: 2 }],
    });
    // The eval's output goes back to the worker in its next lease: the channel the attack used.
    await waitFor(() => feedback.length >= 2, "the second attempt, with the first eval's output as feedback", 60_000);
    const seen = feedback[1]!.join("\n");
    const results = resultsOf(seen);
    for (const k of ["adminToken", "tokensDb", "journal", "vault", "otherRepo", "shadow"])
      assert.match(results[k]!, /^blocked:/, `${k}: ${results[k]}`);
    // Folders above the worktree exist only as the empty path to it: none of their contents.
    assert.match(results.home!, /^blocked:/);
    assert.equal(results.stateDir, "LISTED:worktrees");
    assert.match(results.repoRoot!, /^blocked:/, "the developer's repository is not in the farm's home, nor in the sandbox");
    // The worktree's .git is read-only in the sandbox. The repository sits under /tmp in this test, and
    // the sandbox's /tmp is its own: a write there may "succeed" but never reaches the host (below).
    assert.match(results.gitFile!, /^blocked:/, `write .git: ${results.gitFile}`);
    assert.match(results.socket!, /^blocked:/);
    assert.doesNotMatch(seen, /opt_[0-9a-f]{12}_/, "no token reaches the worker");
    assert.doesNotMatch(seen, /VAULT-CANARY|another team/);
    assert.equal(existsSync(join(repo, "PWNED")), false);
    assert.equal(existsSync(join(repo, ".git", "hooks", "reference-transaction")), false);
    // The admin token from the control run was never usable by the worker: it never saw it.
    assert.equal((await client.units.get.query({ taskId: "attack", unitId: "u1" })).attempt >= 2, true);
  },
);

test(
  "a unit check on a worker cannot read or write the worker's mirror, plant hooks its next fetch would run, or see its token",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeFixtureRepo(t);
    const farm = await startTestFarm(t, { repo });
    const token = await tokenFor(farm.url, farm.adminToken, "worker", "w1");
    const workDir = mkdtempSync(join(tmpdir(), "optimus-worker-"));
    t.after(() => rmSync(workDir, { recursive: true, force: true }));
    const mirror = new RepoMirror(farm.url, token, workDir);
    const socket = await hostSocket(t);
    const hook = join(workDir, "mirror.git", "hooks", "post-checkout");
    const targets: Targets = {
      readFiles: { mirrorConfig: join(workDir, "mirror.git", "config"), farmTokens: join(stateDirFor(repo), "tokens.db") },
      listDirs: { workDir, home: process.env.HOME ?? "/root" },
      writeFiles: { hook, gitFile: ".git" },
      socket,
    };
    const script = "node attack.mjs";

    // Control: unsandboxed, the hook lands and the worker's own next checkout runs it.
    const wt0 = await mirror.prepare("control", "main");
    writeFileSync(join(wt0, "attack.mjs"), attack(targets));
    const control = resultsOf((await runCheck(script, { cwd: wt0, timeoutMs: 20_000, sandbox: "none" })).output);
    assert.equal(control.hook, "WROTE");
    assert.match(control.mirrorConfig!, /^READ:/);
    rmSync(hook, { force: true });
    writeFileSync(join(wt0, ".git"), `gitdir: ${join(workDir, "mirror.git", "worktrees", "control")}\n`);
    await mirror.remove(wt0);

    const wt = await mirror.prepare("u1", "main");
    writeFileSync(join(wt, "attack.mjs"), attack(targets)); // the model's edit
    const r = await runCheck(script, { cwd: wt, timeoutMs: 20_000 });
    assert.equal(r.sandbox, "bwrap");
    const results = resultsOf(r.output);
    for (const [k, v] of Object.entries(results)) if (k !== "workDir") assert.match(v, /^blocked:/, `${k}: ${v}`);
    assert.equal(results.workDir, "LISTED:units", "only the path to the worktree: no mirror.git");
    assert.doesNotMatch(r.output, new RegExp(token.slice(0, 20)));
    // The worker's git goes on working, and runs no hook.
    const again = await mirror.prepare("u2", "main");
    assert.equal(existsSync(`${hook}.ran`), false);
    assert.equal(readFileSync(join(again, "src", "add.js"), "utf8").includes("a - b"), true);
  },
);
