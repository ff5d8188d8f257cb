// `npm run bench` loads this in VS Code's extension host (through the same launcher as the tests):
// it activates the extension named by $OPTIMUS_BENCH_EXTENSION (Optimus, or the harness's minimal
// hello fixture as the baseline, each in its own fresh extension host) and writes how long that took
// (module load + activate) to $OPTIMUS_BENCH_OUT.
import { writeFileSync } from "node:fs";
import * as vscode from "vscode";

async function timeActivation(id: string): Promise<{ totalMs: number; insideMs?: number }> {
  const ext = vscode.extensions.getExtension(id);
  if (!ext) throw new Error(`${id} is not loaded`);
  const t0 = performance.now();
  const api = (await ext.activate()) as { activationMs?: number } | undefined;
  return { totalMs: performance.now() - t0, insideMs: api?.activationMs };
}

export async function run(): Promise<void> {
  const out = process.env.OPTIMUS_BENCH_OUT;
  if (!out) throw new Error("OPTIMUS_BENCH_OUT is not set");
  writeFileSync(out, JSON.stringify(await timeActivation(process.env.OPTIMUS_BENCH_EXTENSION ?? "optimus.optimus-vscode")));
}
