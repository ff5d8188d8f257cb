// Measure: a unit's dependency set-up, cache miss vs cache hit (DepsCache.ensure). The project has a
// package-lock.json with one dependency (a package packed with `npm pack`, served by the loopback
// npm registry stand-in); a miss is `npm ci` in the real sandbox (bwrap) through a real egress proxy
// into a fresh cache folder, a hit finds the entry for the same lockfile. Median of `runs` each.
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { startEgressProxy } from "@optimus/farm-server/dist/egress/egress-proxy.js";
import { DepsCache, resolveSetup, type SetupPlan } from "@optimus/farm-server/dist/setup/index.js";
import { isolatedNpmEnv, packPackage, startNpmRegistryStandin } from "../helpers/npm-registry-standin.js";
import { median } from "./stats.js";

export interface SetupBenchResult {
  runs: number;
  missMs: number;
  hitMs: number;
  missRuns: number[];
  hitRuns: number[];
  /** tarballs the registry served: one per miss */
  tarballs: number;
}

export async function benchSetupCache(runs = 3): Promise<SetupBenchResult> {
  const root = mkdtempSync(join(tmpdir(), "optimus-setup-bench-"));
  const registry = await startNpmRegistryStandin([
    packPackage({
      "package.json": JSON.stringify({ name: "tiny-dep", version: "1.0.0", main: "index.js" }),
      "index.js": "exports.twice = (x) => x * 2;\n",
    }),
  ]);
  const proxy = await startEgressProxy({
    allow: [`localhost:${registry.port}`],
    authorize: (h) => (h === "Bearer bench" ? "worker:bench" : null),
    audit: () => undefined,
  });
  try {
    const project = join(root, "project");
    const files: Record<string, string> = {
      "package.json": JSON.stringify({ name: "bench-project", version: "1.0.0", private: true, dependencies: { "tiny-dep": "1.0.0" } }),
      ".npmrc": `registry=${registry.url}\n`,
    };
    for (const [p, c] of Object.entries(files)) {
      mkdirSync(dirname(join(project, p)), { recursive: true });
      writeFileSync(join(project, p), c);
    }
    await new Promise<void>((resolve, reject) =>
      execFile("npm", ["install", "--package-lock-only", "--ignore-scripts"], { cwd: project, env: isolatedNpmEnv(root) }, (err, _o, e) =>
        err ? reject(new Error(e)) : resolve(),
      ),
    );
    const plan = (resolveSetup(undefined, project) as { plan: SetupPlan }).plan;
    const egress = { proxyUrl: proxy.url, proxyAuthorization: "Bearer bench" };
    const missRuns: number[] = [];
    const hitRuns: number[] = [];
    let cache: DepsCache | undefined;
    for (let i = 0; i < runs; i++) {
      const dir = join(root, `cache-${i}`);
      cache = new DepsCache(dir);
      const t0 = performance.now();
      const r = await cache.ensure({ plan, worktree: project, egress });
      missRuns.push(performance.now() - t0);
      if (!r.ok || r.hit) throw new Error(`the set-up did not install: ${r.summary}\n${r.output}`);
      rmSync(join(project, "node_modules"), { recursive: true, force: true });
    }
    for (let i = 0; i < Math.max(5, runs); i++) {
      const t0 = performance.now();
      const r = await cache!.ensure({ plan, worktree: project, egress });
      hitRuns.push(performance.now() - t0);
      if (!r.hit) throw new Error("expected a cache hit");
    }
    return { runs, missMs: median(missRuns), hitMs: median(hitRuns), missRuns, hitRuns, tarballs: registry.tarballs() };
  } finally {
    await proxy.close();
    await registry.close();
    rmSync(root, { recursive: true, force: true });
  }
}
