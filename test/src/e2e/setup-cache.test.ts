/**
 * Issue 11, items 1 and 2: a repository's dependencies are installed once per lockfile content (in
 * the sandbox, through the farm's egress proxy only, from a loopback npm registry stand-in serving a
 * package the test packed with `npm pack`), shown read-only in every unit and eval worktree, and
 * the worktrees themselves are pooled and reset between units. No public registry is reached: the
 * project's `.npmrc` names the stand-in, and the proxy allows nothing else.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { startEgressProxy } from "@optimus/farm-server/dist/egress/egress-proxy.js";
import { FarmRepo } from "@optimus/farm-server/dist/git/farm-repo.js";
import { runCheck } from "@optimus/farm-server/dist/sandbox/index.js";
import { DepsCache, resolveSetup, type SetupPlan } from "@optimus/farm-server/dist/setup/index.js";
import { RepoMirror } from "@optimus/farm-server/dist/worker/repo-mirror.js";
import { repoSlot } from "@optimus/farm-server/dist/home/farm-home.js";
import { runCli } from "../helpers/cli.js";
import { git } from "../helpers/fixture.js";
import { tokenFor } from "../helpers/clients.js";
import { isolatedNpmEnv, packPackage, startNpmRegistryStandin, type NpmRegistryStandin } from "../helpers/npm-registry-standin.js";
import { startOpenAiStandin, type StandinRequest } from "../helpers/openai-standin.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { sleep } from "../helpers/wait.js";

/** tiny-dep: a library and a test runner (`tiny-test <files…>`), the way vitest is both. */
const tinyDep = (version: string) =>
  packPackage({
    "package.json": JSON.stringify({ name: "tiny-dep", version, main: "index.js", bin: { "tiny-test": "bin/tiny-test.js" } }, null, 2),
    "index.js": `exports.twice = (x) => x * 2;\nexports.version = ${JSON.stringify(version)};\n`,
    "bin/tiny-test.js": `#!/usr/bin/env node
const { resolve } = require("node:path");
const { pathToFileURL } = require("node:url");
(async () => {
  for (const f of process.argv.slice(2)) {
    await import(pathToFileURL(resolve(f)).href);
    console.log("tiny-test: ok " + f);
  }
})().catch((e) => { console.error(String(e && e.stack || e)); process.exit(1); });
`,
  });

/** The project's files: `add` subtracts (a bug for the model to fix); its tests `require` tiny-dep. */
const projectFiles = (registry: NpmRegistryStandin, depVersion = "1.0.0"): Record<string, string> => ({
  "package.json":
    JSON.stringify(
      {
        name: "proj",
        version: "1.0.0",
        private: true,
        type: "module",
        dependencies: { "tiny-dep": depVersion },
        scripts: { test: "tiny-test test/add.test.js" },
      },
      null,
      2,
    ) + "\n",
  // npm's own update check (a GET of the `npm` packument on each npx) off, as CI set-ups do: the
  // registry's log then shows installs only.
  ".npmrc": `registry=${registry.url}\nupdate-notifier=false\n`,
  ".gitignore": "node_modules/\n",
  "src/add.js": "export function add(a, b) {\n  return a - b;\n}\n",
  "src/mul.js": "export function mul(a, b) {\n  return a + b;\n}\n",
  "test/add.test.js":
    "import assert from 'node:assert/strict';\nimport { createRequire } from 'node:module';\nimport { add } from '../src/add.js';\nconst dep = createRequire(import.meta.url)('tiny-dep');\nassert.equal(add(2, 3), 5);\nassert.equal(dep.twice(add(1, 1)), 4);\nconsole.log('add works with tiny-dep ' + dep.version);\n",
  "test/mul.test.js":
    "import assert from 'node:assert/strict';\nimport { createRequire } from 'node:module';\nimport { mul } from '../src/mul.js';\nconst dep = createRequire(import.meta.url)('tiny-dep');\nassert.equal(mul(2, 3), 6);\nassert.equal(dep.twice(mul(1, 1)), 2);\nconsole.log('mul works with tiny-dep ' + dep.version);\n",
});

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [p, c] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    writeFileSync(join(dir, p), c);
  }
}

/** package-lock.json for the project, resolved against the stand-in (host side, loopback only). */
async function lock(dir: string): Promise<void> {
  // Asynchronously: the stand-in answers from this process.
  await new Promise<void>((resolve, reject) =>
    execFile("npm", ["install", "--package-lock-only", "--ignore-scripts"], { cwd: dir, env: isolatedNpmEnv(dir) }, (err, _o, stderr) =>
      err ? reject(new Error(`npm install --package-lock-only: ${stderr}`)) : resolve(),
    ),
  );
  rmSync(join(dir, ".npm-cache"), { recursive: true, force: true });
}

const count = (s: string, re: RegExp) => s.match(new RegExp(re.source, "g"))?.length ?? 0;

test(
  "end to end: the worker's check and the farm's eval run the project's test runner offline after one set-up each; the second unit reuses both caches",
  { timeout: 300_000 },
  async (t) => {
    const registry = await startNpmRegistryStandin([tinyDep("1.0.0")]);
    t.after(() => registry.close());
    const repo = makeRepo(t, "optimus-npm-project-");
    writeFiles(repo, projectFiles(registry));
    await lock(repo);
    assert.match(
      readFileSync(join(repo, "package-lock.json"), "utf8"),
      new RegExp(`"resolved": "http://localhost:${registry.port}/tiny-dep/-/tiny-dep-1.0.0.tgz"`),
    );
    git(repo, "add", "-A");
    git(repo, "commit", "-q", "-m", "a project with a dependency");
    const before = registry.requests.length;
    // The eval suite runs the dependency's test runner; the egress proxy allows the stand-in only.
    writeFarmConfig(
      repo,
      `prloop:\n  eval:\n    - { name: tests, command: "npx tiny-test test/add.test.js", timeoutMs: 60000 }\negress: { enabled: true, allow: ["localhost:${registry.port}"] }\n`,
    );
    const isReview = (r: StandinRequest) => r.messages[0]!.content.startsWith("You review");
    const model = await startOpenAiStandin({
      script: Array.from({ length: 12 }, () => (req: StandinRequest) => {
        if (isReview(req)) return JSON.stringify({ verdict: "approve", risk: "low", summary: "ok", comments: [] });
        return req.messages[1]!.content.includes("## src/mul.js")
          ? JSON.stringify({
              summary: "mul",
              edits: [{ kind: "replace", path: "src/mul.js", search: "return a + b;", replace: "return a * b;" }],
              done: true,
            })
          : JSON.stringify({
              summary: "add",
              edits: [{ kind: "replace", path: "src/add.js", search: "return a - b;", replace: "return a + b;" }],
              done: true,
            });
      }),
    });
    t.after(() => model.close());
    const { env, workers, untilMerged, workDir } = await startTestFarm(t, {
      mode: "process",
      repo,
      args: ["--heartbeat-ms", "1000"],
      workers: { model: model.url },
    });
    const codegen = workers[0]!;

    // Unit 1: the worker installs (a cache miss), its check runs `npx tiny-test` from the cached
    // node_modules; the farm installs once for its evals and runs them from its own cache.
    const sent = await runCli(["send", "Make add return the sum", "--files", "src/add.js", "--check", "npx tiny-test test/add.test.js"], {
      cwd: repo,
      env,
    });
    assert.equal(sent.code, 0, sent.stderr);
    const first = await untilMerged(sent.stdout.trim(), "the first task to be merged", 180_000);
    const u1 = first.units.find((u) => u.unitId === "u1")!;
    assert.equal(u1.state, "merged");
    assert.deepEqual(
      u1.evaluation!.evals.map((e) => [e.name, e.exitCode]),
      [
        ["set-up", 0],
        ["tests", 0],
      ],
    );
    assert.match(
      u1.evaluation!.evals[0]!.output,
      /set-up: installed deps [0-9a-f]{12} with `npm ci --no-audit --no-fund` in \d+ ms \(cache miss\)/,
    );
    assert.match(u1.evaluation!.evals[1]!.output, /add works with tiny-dep 1\.0\.0[\s\S]*tiny-test: ok test\/add\.test\.js/);
    assert.equal(count(codegen.log, /set-up: installed deps/), 1, codegen.log);
    assert.match(codegen.log, /u1#1: set-up: installed deps [0-9a-f]{12} with `npm ci --no-audit --no-fund`/);
    assert.equal(registry.tarballs(), 2, `one install on the worker, one on the farm: ${registry.requests.join(", ")}`);
    const afterFirst = registry.requests.length;
    assert.ok(afterFirst > before);
    // The worker's cache sits in its work dir; the farm's in the repository's folder of its home.
    assert.equal(readdirSync(join(workDir, "codegen", "deps")).filter((f) => /^[0-9a-f]{32}$/.test(f)).length, 1);

    // Unit 2 (another task, same lockfile): no install anywhere, no request to the registry at all —
    // the check and the eval ran the test runner from the cache (the eval has no network; the check
    // keeps the egress proxy the farm offers checks, and did not use it).
    const sent2 = await runCli(
      ["send", "Make mul return the product", "--files", "src/mul.js", "--check", "npx tiny-test test/mul.test.js"],
      { cwd: repo, env },
    );
    assert.equal(sent2.code, 0, sent2.stderr);
    const second = await untilMerged(sent2.stdout.trim(), "the second task to be merged", 180_000);
    const u2 = second.units.find((u) => u.unitId === "u1")!;
    assert.equal(u2.state, "merged");
    assert.match(u2.evaluation!.evals[0]!.output, /set-up: cache hit \(deps [0-9a-f]{12}/);
    assert.equal(u2.evaluation!.evals[1]!.exitCode, 0);
    assert.equal(count(codegen.log, /set-up: installed deps/), 1, "the log shows no second install");
    assert.equal(count(codegen.log, /set-up: cache hit/), 1);
    assert.equal(
      registry.requests.length,
      afterFirst,
      `no registry request for the second unit: ${registry.requests.slice(afterFirst).join(", ")}`,
    );
    assert.match(git(repo, "show", "main:src/mul.js"), /return a \* b;/);
    // The farm's cache: one entry, its install log kept beside it.
    const farmDeps = readdirSync(join(repoSlot(repo), "deps"));
    assert.deepEqual(farmDeps.filter((f) => /^[0-9a-f]{32}$/.test(f)).length, 1, farmDeps.join(", "));
    assert.match(
      readFileSync(
        join(
          repoSlot(repo),
          "deps",
          farmDeps.find((f) => /^[0-9a-f]{32}$/.test(f))!,
          "setup.log",
        ),
        "utf8",
      ),
      /\$ npm ci --no-audit --no-fund[\s\S]*network through the egress proxy/,
    );
    // Pooled worktrees are not registered in the user's repository.
    assert.equal(git(repo, "worktree", "list").trim().split("\n").length, 1);
  },
);

/** A project folder with its lockfile, outside git (the cache and the sandbox need no repository). */
async function projectDir(t: { after(fn: () => void): void }, registry: NpmRegistryStandin, depVersion = "1.0.0"): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-setup-project-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const files = projectFiles(registry, depVersion);
  files["src/add.js"] = "export function add(a, b) {\n  return a + b;\n}\n";
  writeFiles(dir, files);
  await lock(dir);
  return dir;
}

test(
  "the cache: installed once per lockfile through the egress proxy, shared by concurrent units, read-only to checks; a lockfile change is a new entry; a failure is not cached",
  { timeout: 180_000 },
  async (t) => {
    const registry = await startNpmRegistryStandin([tinyDep("1.0.0"), tinyDep("1.0.1")]);
    t.after(() => registry.close());
    const decisions: string[] = [];
    const proxy = await startEgressProxy({
      allow: [`localhost:${registry.port}`],
      authorize: (h) => (h === "Bearer w" ? "worker:w" : null),
      audit: (d) => decisions.push(`${d.principal} ${d.host}:${d.port} ${d.allowed}`),
    });
    t.after(() => proxy.close());
    const egress = { proxyUrl: proxy.url, proxyAuthorization: "Bearer w" };
    const cacheDir = mkdtempSync(join(tmpdir(), "optimus-deps-"));
    t.after(() => rmSync(cacheDir, { recursive: true, force: true }));
    const cache = new DepsCache(cacheDir);
    const a = await projectDir(t, registry);
    const b = await projectDir(t, registry);
    const decision = resolveSetup(undefined, a);
    assert.equal(decision.kind, "plan");
    const plan = (decision as { plan: SetupPlan }).plan;
    assert.deepEqual(
      [plan.command, plan.cacheKeyFiles, plan.outputs],
      ["npm ci --no-audit --no-fund", ["package-lock.json"], ["node_modules"]],
    );

    // Two units with the same lockfile at once: one install, both get the entry.
    const [ra, rb] = await Promise.all([cache.ensure({ plan, worktree: a, egress }), cache.ensure({ plan, worktree: b, egress })]);
    assert.equal(ra.ok, true, ra.output);
    assert.equal(rb.ok, true, rb.output);
    assert.deepEqual([ra.hit, rb.hit].sort(), [false, true]);
    assert.equal(ra.hash, rb.hash);
    assert.equal(registry.tarballs(), 1);
    assert.ok(
      decisions.some((d) => d.startsWith(`worker:w localhost:${registry.port} true`)),
      decisions.join("; "),
    );
    assert.deepEqual(readdirSync(cacheDir).sort(), [ra.hash], "an entry, no temp folder or lock left");
    assert.match(readFileSync(join(cacheDir, ra.hash, "setup.log"), "utf8"), /\$ npm ci --no-audit --no-fund[\s\S]*exit 0/);
    // Nothing of the install is left in the worktree but the (empty) mount point.
    assert.deepEqual(readdirSync(join(a, "node_modules")), []);

    // Checks run the test runner offline with the cache bound read-only at ./node_modules …
    const ok = await runCheck("npx tiny-test test/add.test.js && npm test", { cwd: a, timeoutMs: 30_000, binds: ra.binds });
    assert.equal(ok.sandbox, "bwrap");
    assert.equal(ok.exitCode, 0, ok.output);
    assert.match(ok.output, /add works with tiny-dep 1\.0\.0/);
    // … and cannot change it: not a file, not the folder, not the link.
    const index = join(cacheDir, ra.hash, "node_modules", "tiny-dep", "index.js");
    const original = readFileSync(index, "utf8");
    const write = await runCheck(
      "echo 'exports.twice = () => 5;' > node_modules/tiny-dep/index.js; echo w=$?; rm -rf node_modules/tiny-dep; echo r=$?; touch node_modules/new; echo t=$?; rm -rf node_modules; echo d=$?; ls node_modules",
      { cwd: a, timeoutMs: 30_000, binds: ra.binds },
    );
    assert.match(write.output, /w=[1-9]/);
    assert.match(write.output, /r=[1-9]/);
    assert.match(write.output, /t=[1-9]/);
    assert.match(write.output, /d=[1-9]/);
    assert.match(write.output, /tiny-dep/);
    assert.equal(readFileSync(index, "utf8"), original);
    const strict = await runCheck("node -e \"require('fs').writeFileSync('node_modules/tiny-dep/index.js', 'x')\"", {
      cwd: a,
      timeoutMs: 30_000,
      binds: ra.binds,
    });
    assert.notEqual(strict.exitCode, 0);
    assert.match(strict.output, /EROFS|read-only/i);

    // Again: a hit, no request.
    const requests = registry.requests.length;
    const again = await cache.ensure({ plan, worktree: a, egress });
    assert.equal(again.hit, true);
    assert.match(again.summary, /^set-up: cache hit/);
    assert.equal(registry.requests.length, requests);

    // A lockfile change (tiny-dep 1.0.1) is a new entry beside the old one.
    const c = await projectDir(t, registry, "1.0.1");
    const rc = await cache.ensure({ plan, worktree: c, egress });
    assert.equal(rc.ok, true, rc.output);
    assert.equal(rc.hit, false);
    assert.notEqual(rc.hash, ra.hash);
    assert.deepEqual(readdirSync(cacheDir).sort(), [ra.hash, rc.hash].sort());
    const v2 = await runCheck("npm test", { cwd: c, timeoutMs: 30_000, binds: rc.binds });
    assert.match(v2.output, /tiny-dep 1\.0\.1/);

    // Without a route to the registry (no egress) an install fails: not cached, its log kept.
    const d = await projectDir(t, registry);
    writeFileSync(
      join(d, "package-lock.json"),
      readFileSync(join(d, "package-lock.json"), "utf8").replace('"name": "proj"', '"name": "proj-offline"'),
    );
    const rd = await cache.ensure({ plan: { ...plan, timeoutMs: 10_000 }, worktree: d });
    assert.equal(rd.ok, false);
    assert.equal(existsSync(join(cacheDir, rd.hash)), false);
    assert.match(rd.logFile, /\.failed\.log$/);
    assert.match(readFileSync(rd.logFile, "utf8"), /no network/);
    assert.equal(readdirSync(cacheDir).filter((f) => f.startsWith(".tmp-") || f.endsWith(".lock")).length, 0);
  },
);

test(
  "pooled worktrees: reset between units (a file a unit left is gone, its edits undone, node_modules untouched), never shared by two running units, not registered in the user's repository",
  { timeout: 120_000 },
  async (t) => {
    const repo = makeRepo(t, "optimus-pool-");
    writeFiles(repo, { "src/a.js": "one\n", "README.md": "# pool\n" });
    git(repo, "add", "-A");
    git(repo, "commit", "-q", "-m", "one");
    const c1 = git(repo, "rev-parse", "HEAD").trim();
    writeFileSync(join(repo, "src", "a.js"), "two\n");
    git(repo, "commit", "-q", "-am", "two");
    const c2 = git(repo, "rev-parse", "HEAD").trim();

    // The farm's eval trees.
    const stateDir = mkdtempSync(join(tmpdir(), "optimus-pool-state-"));
    t.after(() => rmSync(stateDir, { recursive: true, force: true }));
    const farmRepo = new FarmRepo(repo, join(stateDir, "worktrees"));
    const t1 = await farmRepo.acquireTree(c1);
    assert.equal(readFileSync(join(t1.dir, "src", "a.js"), "utf8"), "one\n");
    writeFileSync(join(t1.dir, "left-behind.txt"), "x");
    writeFileSync(join(t1.dir, "src", "a.js"), "edited\n");
    mkdirSync(join(t1.dir, "node_modules", "dep"), { recursive: true });
    writeFileSync(join(t1.dir, "node_modules", "dep", "index.js"), "kept");
    mkdirSync(join(t1.dir, "src", "node_modules"), { recursive: true }); // only the root's is kept
    const busy = await farmRepo.acquireTree(c1);
    assert.notEqual(busy.dir, t1.dir, "a tree in use is never handed out twice");
    farmRepo.releaseTree(t1);
    const t2 = await farmRepo.acquireTree(c2);
    assert.equal(t2.dir, t1.dir, "the released tree is reused");
    assert.equal(readFileSync(join(t2.dir, "src", "a.js"), "utf8"), "two\n");
    assert.equal(existsSync(join(t2.dir, "left-behind.txt")), false);
    assert.equal(existsSync(join(t2.dir, "src", "node_modules")), false);
    assert.equal(readFileSync(join(t2.dir, "node_modules", "dep", "index.js"), "utf8"), "kept");
    assert.equal(git(repo, "worktree", "list").trim().split("\n").length, 1);
    assert.equal(git(repo, "status", "--porcelain").trim(), "", "the user's checkout and index are untouched");
    // A crash (the index lost) is recovered: the tree is rebuilt at the commit.
    rmSync(t2.index);
    farmRepo.releaseTree(t2);
    const t3 = await new FarmRepo(repo, join(stateDir, "worktrees")).acquireTree(c1);
    assert.equal(t3.dir, t2.dir);
    assert.equal(readFileSync(join(t3.dir, "src", "a.js"), "utf8"), "one\n");

    // The worker's slots, fetched from a real farm.
    const farm = await startTestFarm(t, { repo, config: { files: { mirror: false, commit: false, debounceMs: 0 } } });
    const token = await tokenFor(farm.url, farm.adminToken, "worker", "w1");
    const workDir = mkdtempSync(join(tmpdir(), "optimus-pool-worker-"));
    t.after(() => rmSync(workDir, { recursive: true, force: true }));
    const mirror = new RepoMirror(farm.url, token, workDir);
    const w1 = await mirror.prepare("t--u-1", "main");
    writeFileSync(join(w1, "left-behind.txt"), "x");
    writeFileSync(join(w1, "src", "a.js"), "edited\n");
    mkdirSync(join(w1, "node_modules"), { recursive: true });
    writeFileSync(join(w1, "node_modules", "marker"), "kept");
    const w2 = await mirror.prepare("t--u2-1", "main");
    assert.notEqual(w2, w1, "two running units never share a worktree");
    await mirror.remove(w1);
    const w3 = await mirror.prepare("t--u3-1", "main");
    assert.equal(w3, w1, "the slot is reused");
    assert.equal(existsSync(join(w3, "left-behind.txt")), false);
    assert.equal(readFileSync(join(w3, "src", "a.js"), "utf8"), "two\n");
    assert.equal(readFileSync(join(w3, "node_modules", "marker"), "utf8"), "kept");
    assert.equal(await mirror.patchOf(w3), "", "nothing of the earlier unit is in the next unit's patch");
    // A restart sweeps nothing it can reuse.
    await mirror.remove(w2);
    await mirror.remove(w3);
    await mirror.cleanup();
    const restarted = new RepoMirror(farm.url, token, workDir);
    const w4 = await restarted.prepare("t--u4-1", "main");
    assert.match(w4, /units\/slot-0$/);
    assert.equal(readFileSync(join(w4, "src", "a.js"), "utf8"), "two\n");
    await sleep(0);
  },
);
