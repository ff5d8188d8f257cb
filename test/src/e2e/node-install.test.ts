// Issue 14, item 5: a worker node installs in one command. `npm run pack:node` packs
// @optimus/farm-server (with @optimus/shared bundled) into pack/; `npm i -g` of that one tarball, with
// the README's flags for a worker-only Linux x64 CPU node, into an empty prefix, from the registry
// (the npm cache lives in a tmp folder kept between runs, so a second run does not download again);
// then the installed `optimus` prints its version and help, holds no GPU build of llama.cpp, and its
// worker loads the test GGUF model and joins a real farm started here.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { tokenFor } from "../helpers/clients.js";
import { writeTinyGguf } from "../helpers/gguf.js";
import { ROOT } from "../helpers/paths.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";
import { spawn } from "node:child_process";

const run = promisify(execFile);
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const pkg = JSON.parse(readFileSync(join(ROOT, "farm-server", "package.json"), "utf8")) as {
  version: string;
  dependencies: Record<string, string>;
};
const linuxX64 = process.platform === "linux" && process.arch === "x64";

/** every folder under an `@node-llama-cpp` scope in the prefix: the llama.cpp builds installed */
function llamaBuilds(dir: string, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    if (e.name === "@node-llama-cpp") out.push(...readdirSync(join(dir, e.name)));
    else llamaBuilds(join(dir, e.name), out);
  }
  return out;
}

function bytesIn(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    n += e.isDirectory() ? bytesIn(join(dir, e.name)) : e.isFile() ? statSync(join(dir, e.name)).size : 0;
  return n;
}

test(
  "npm run pack:node, then one `npm i -g` into an empty prefix: the installed optimus runs, has no GPU builds, and its worker joins a farm",
  { skip: !linuxX64 && "the install line under test is Linux x64's", timeout: 900_000 },
  async (t) => {
    const packed = await run(npm, ["run", "--silent", "pack:node"], { cwd: ROOT, maxBuffer: 1 << 24 });
    const tarball = join(ROOT, "pack", `optimus-farm-server-${pkg.version}.tgz`);
    assert.ok(packed.stdout.startsWith(tarball), packed.stdout);
    const files = (await run("tar", ["-tzf", tarball], { maxBuffer: 1 << 24 })).stdout.trim().split("\n");
    assert.ok(files.includes("package/dist/cli/main.js") && files.includes("package/node_modules/@optimus/shared/dist/index.js"));
    const ours = files.filter((f) => !/^package\/node_modules\/(zod|yaml)\//.test(f));
    assert.deepEqual(
      ours.filter((f) => /\.map$|\.test\.|\/src\/|tsbuildinfo|\.optimus\//.test(f)),
      [],
      "no source maps, tests, sources or state",
    );

    const prefix = mkdtempSync(join(tmpdir(), "optimus-node-prefix-"));
    t.after(() => rmSync(prefix, { recursive: true, force: true }));
    const cache = join(tmpdir(), "optimus-test-npm-cache"); // kept: later runs install from it
    const cpuBuild = `@node-llama-cpp/linux-x64@${pkg.dependencies["node-llama-cpp"]}`;
    // the README's line for a worker-only Linux x64 node without a GPU
    const args = ["i", "-g", "--os=none", "--ignore-scripts", tarball, cpuBuild];
    await run(npm, [...args, "--prefix", prefix, "--cache", cache, "--no-audit", "--no-fund", "--no-update-notifier"], {
      cwd: prefix,
      maxBuffer: 1 << 24,
    });
    const installed = join(prefix, "lib", "node_modules");
    t.diagnostic(`installed prefix: ${(bytesIn(prefix) / 2 ** 20).toFixed(0)} MiB of files (du counts blocks: more)`);
    assert.deepEqual(llamaBuilds(installed), ["linux-x64"], "only the CPU build of llama.cpp, no CUDA or Vulkan build");

    const optimus = join(prefix, "bin", "optimus");
    assert.equal((await run(optimus, ["--version"])).stdout, `${pkg.version}\n`);
    const help = await run(optimus, ["worker", "--help"]);
    assert.match(help.stdout, /--gpu <kind>/);
    // a worker-only install has no SQLite binding: a farm started there says so in one line
    const farmHere = await run(optimus, ["farm", "up", "--port", "0", "--repo", makeRepo(t)], {
      env: { ...process.env, OPTIMUS_LOG_LEVEL: "warn" },
    }).then(
      () => ({ code: 0, stderr: "" }),
      (e: { code: number; stderr: string }) => e,
    );
    assert.equal(farmHere.code, 1);
    assert.match(
      farmHere.stderr.trim().split("\n").pop()!,
      /^optimus: the SQLite binding \(better-sqlite3\) is not built here, .*: run `npm rebuild better-sqlite3` in /,
    );

    // the installed worker (no SQLite binding was built: a worker does not use it) joins a real farm
    const dir = mkdtempSync(join(tmpdir(), "optimus-node-work-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const model = join(dir, "tiny.gguf");
    writeTinyGguf(model, { seed: 5 });
    const farm = await startTestFarm(t);
    const tokenFile = join(dir, "worker.token");
    writeFileSync(tokenFile, (await tokenFor(farm.url, farm.adminToken, "worker", "installed")) + "\n", { mode: 0o600 });
    const workerArgs = ["worker", "--role", "review", "--model", model, "--sandbox", "none", "--threads", "1"];
    const worker = spawn(
      optimus,
      [
        ...workerArgs,
        "--farm",
        farm.url,
        "--token-file",
        tokenFile,
        "--node-id",
        "installed-1",
        "--work-dir",
        join(dir, "w"),
        "--log-level",
        "info",
      ],
      { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
    );
    let log = "";
    worker.stdout.on("data", (b: Buffer) => (log += b.toString()));
    worker.stderr.on("data", (b: Buffer) => (log += b.toString()));
    t.after(() => {
      if (worker.exitCode === null) worker.kill("SIGKILL");
    });
    await waitFor(() => /worker connected to/.test(log), "the installed worker connects", 60_000).catch((e: Error) => {
      throw new Error(`${e.message}\n${log}`);
    });
    assert.match(log, /installed-1: review worker connected to .* with model tiny on CPU/);
    const list = await run(optimus, ["worker", "list", "--json", "--farm", farm.url, "--token", farm.adminToken]);
    const seen = (JSON.parse(list.stdout) as { nodeId: string; connected: boolean }[]).find((w) => w.nodeId === "installed-1");
    assert.equal(seen?.connected, true, list.stdout);
  },
);
