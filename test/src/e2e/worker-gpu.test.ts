// Issue 14, item 5: `optimus worker --gpu <auto|metal|cuda|vulkan|cpu>` (and `farm up --worker-gpu`).
// On this machine (no GPU): cpu and auto load the test GGUF model on llama.cpp's prebuilt CPU build
// and the worker joins a real farm, saying where its model runs; an explicit GPU the machine cannot
// use is refused with one line naming the flag and what is usable here; a bad value is a usage error.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { tokenFor } from "../helpers/clients.js";
import { writeTinyGguf } from "../helpers/gguf.js";
import { CliProcess } from "../helpers/processes.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";
import { waitFor } from "../helpers/wait.js";

const lastLine = (s: string) => s.trim().split("\n").pop()!;
/** what node-llama-cpp finds here besides the CPU, as the refusal lists it (none on the test machines) */
const USABLE = /usable here: ((cuda|vulkan), )*cpu \(--gpu auto takes the best of them\)$/;

function tinyModel(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), "optimus-gpu-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "tiny.gguf");
  writeTinyGguf(file, { seed: 3 });
  return file;
}

test(
  "--gpu cpu and --gpu auto load the GGUF model on the CPU build and join the farm, naming the backend",
  { timeout: 180_000 },
  async (t) => {
    const model = tinyModel(t);
    const farm = await startTestFarm(t);
    const token = await tokenFor(farm.url, farm.adminToken, "worker", "gpu-test");
    const tokenFile = join(mkdtempSync(join(tmpdir(), "optimus-gpu-token-")), "worker.token");
    writeFileSync(tokenFile, token + "\n", { mode: 0o600 });
    t.after(() => rmSync(join(tokenFile, ".."), { recursive: true, force: true }));
    for (const gpu of ["cpu", "auto"]) {
      const workDir = mkdtempSync(join(tmpdir(), "optimus-gpu-work-"));
      t.after(() => rmSync(workDir, { recursive: true, force: true }));
      const w = new CliProcess(
        ["worker", "--role", "codegen", "--model", model, "--gpu", gpu, "--threads", "1", "--sandbox", "none"].concat([
          "--farm",
          farm.url,
          "--token-file",
          tokenFile,
          "--node-id",
          `gpu-${gpu}`,
          "--work-dir",
          workDir,
          "--log-level",
          "info",
        ]),
        { cwd: workDir },
      );
      t.after(() => w.stop());
      await waitFor(() => /worker connected to/.test(w.log), `the --gpu ${gpu} worker connects`, 60_000).catch((e: Error) => {
        throw new Error(`${e.message}\n${w.log}`);
      });
      assert.match(w.log, new RegExp(`model tiny runs on CPU \\(--gpu ${gpu}\\)`));
      assert.match(w.log, new RegExp(`gpu-${gpu}: codegen worker connected to ${farm.url} with model tiny on CPU, 1 slot\\(s\\)`));
    }
    const list = await runCli(["worker", "list", "--json"], { cwd: tmpdir(), env: farm.env });
    const workers = JSON.parse(list.stdout) as { nodeId: string; connected: boolean }[];
    assert.deepEqual(
      workers.filter((w) => w.nodeId.startsWith("gpu-")).map((w) => [w.nodeId, w.connected]),
      [
        ["gpu-auto", true],
        ["gpu-cpu", true],
      ].sort(),
    );
  },
);

test("an explicit GPU this machine cannot use is refused in one line naming the flag and what is usable (exit 2); a bad value is a usage error", async (t) => {
  const model = tinyModel(t);
  const cwd = tmpdir();
  const worker = (gpu: string) =>
    runCli(
      ["worker", "--role", "codegen", "--model", model, "--gpu", gpu, "--sandbox", "none", "--farm", "http://127.0.0.1:9", "--token", "x"],
      {
        cwd,
      },
    );
  let r = await worker("metal");
  assert.equal(r.code, 2, r.stderr);
  assert.match(lastLine(r.stderr), new RegExp(`^optimus: --gpu metal: Metal is not available on ${process.platform}-${process.arch}; `));
  assert.match(lastLine(r.stderr), USABLE);
  r = await worker("cuda");
  assert.equal(r.code, 2, r.stderr);
  assert.match(lastLine(r.stderr), /^optimus: --gpu cuda: no CUDA driver or runtime was found on this machine; /);
  assert.match(lastLine(r.stderr), USABLE);
  r = await worker("gpu0");
  assert.deepEqual([r.code, lastLine(r.stderr)], [2, "optimus: --gpu must be auto, metal, cuda, vulkan or cpu, got 'gpu0'"]);

  // the farm's own workers: --worker-gpu, refused before the farm starts, and only with --workers
  const repo = makeRepo(t);
  r = await runCli(["farm", "up", "--port", "0", "--workers", "2", "--worker-model", model, "--worker-gpu", "cuda"], { cwd: repo });
  assert.equal(r.code, 2, r.stderr);
  assert.match(lastLine(r.stderr), /^optimus: --worker-gpu cuda: no CUDA driver or runtime was found on this machine; /);
  r = await runCli(["farm", "up", "--port", "0", "--workers", "2", "--worker-model", model, "--worker-gpu", "npu"], { cwd: repo });
  assert.deepEqual([r.code, lastLine(r.stderr)], [2, "optimus: --worker-gpu must be auto, metal, cuda, vulkan or cpu, got 'npu'"]);
  r = await runCli(["farm", "up", "--port", "0", "--worker-gpu", "cpu"], { cwd: repo });
  assert.deepEqual(
    [r.code, lastLine(r.stderr)],
    [
      2,
      "optimus: --worker-gpu is for the farm's own workers, and none run without --workers <n>: add --workers 2 (one codegen, one review), or run `optimus worker` on a node",
    ],
  );
});
