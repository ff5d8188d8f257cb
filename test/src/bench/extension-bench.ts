// Extension measures for `npm run bench`: the bundle's size (as shipped, minified, and as built for
// development) beside the .vsix, and activation time in a real VS Code (code-server) beside a minimal
// extension activated in the same extension host.
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { ROOT } from "../helpers/paths.js";
import { makeRepo } from "../helpers/repo.js";
import { runExtensionSuite } from "../helpers/vscode/index.js";
import { median } from "./stats.js";

export interface BundleSizes {
  minifiedBytes: number;
  minifiedGzipBytes: number;
  devBytes: number;
  vsixBytes?: number;
  /** the largest packages inside the minified bundle */
  top: Array<{ name: string; bytes: number }>;
}

export async function bundleSizes(): Promise<BundleSizes> {
  const common = {
    entryPoints: [join(ROOT, "extension", "src", "extension.ts")],
    bundle: true,
    platform: "node" as const,
    format: "cjs" as const,
    target: "node20",
    external: ["vscode", "bufferutil", "utf-8-validate"],
    write: false,
    metafile: true,
  };
  const min = await build({ ...common, minify: true });
  const dev = await build({ ...common, minify: false });
  const code = min.outputFiles![0]!.contents;
  const byPkg = new Map<string, number>();
  for (const [file, i] of Object.entries(Object.values(min.metafile!.outputs)[0]!.inputs)) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
    const name = m ? m[1]! : file.startsWith("../shared") || file.includes("shared/dist") ? "@optimus/shared" : "extension's own code";
    byPkg.set(name, (byPkg.get(name) ?? 0) + i.bytesInOutput);
  }
  const vsix = join(ROOT, "extension", "dist", "optimus.vsix");
  return {
    minifiedBytes: code.length,
    minifiedGzipBytes: gzipSync(code).length,
    devBytes: dev.outputFiles![0]!.contents.length,
    vsixBytes: existsSync(vsix) ? statSync(vsix).size : undefined,
    top: [...byPkg]
      .map(([name, bytes]) => ({ name, bytes }))
      .sort((a, b) => b.bytes - a.bytes)
      .slice(0, 5),
  };
}

export interface ActivationResult {
  runs: number;
  optimusMs: number;
  optimusInsideMs: number;
  baselineMs: number;
}

/** Activation in code-server: `runs` fresh extension hosts each for Optimus and the baseline; medians. */
export async function activationTimes(runs: number): Promise<ActivationResult> {
  const optimus: number[] = [],
    inside: number[] = [],
    baseline: number[] = [];
  const ws = makeRepo(undefined, "optimus-bench-activation-");
  try {
    const once = async (devPath: string, id: string) => {
      const dir = mkdtempSync(join(tmpdir(), "optimus-bench-out-"));
      const out = join(dir, "activation.json");
      try {
        await runExtensionSuite({
          extensionDevelopmentPath: devPath,
          extensionTestsPath: join(ROOT, "extension", "dist", "test", "bench-activation.js"),
          workspace: ws,
          env: { OPTIMUS_BENCH_OUT: out, OPTIMUS_BENCH_EXTENSION: id },
        });
        return JSON.parse(readFileSync(out, "utf8")) as { totalMs: number; insideMs?: number };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    };
    // Alternating, each in a fresh extension host, so drift on a shared machine hits both alike.
    for (let i = 0; i < runs; i++) {
      const o = await once(join(ROOT, "extension"), "optimus.optimus-vscode");
      optimus.push(o.totalMs);
      inside.push(o.insideMs ?? NaN);
      baseline.push((await once(join(ROOT, "test", "fixtures", "hello-extension"), "optimus-test.hello-extension")).totalMs);
    }
  } finally {
    rmSync(ws, { recursive: true, force: true });
  }
  return { runs, optimusMs: median(optimus), optimusInsideMs: median(inside), baselineMs: median(baseline) };
}
