// Extension measure: the time from a unit's state change on the farm to an editor's tree showing it,
// with 1,000 units and 50 editors connected. Each editor is the extension's own client stack outside
// VS Code: a WebSocket `views.stream` subscription applied to `FarmViews`, then the tree item's
// presentation (the same `unitPresentation` the Units tree renders, bundled from extension/src).
// Baseline, side by side: 50 clients on the farm's raw journal stream (`events.stream`), which does
// no view work, seeing the same change.
import { rmSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { build } from "esbuild";
import { createFarmClient } from "@optimus/farm-server";
import { FarmViews, type FarmEvent, type UnitLiveView, type ViewsMessage } from "@optimus/shared";
import { tokenFor } from "../helpers/clients.js";
import { startTestFarm, type ProcessTestFarm } from "../helpers/test-farm.js";
import { ROOT } from "../helpers/paths.js";
import { makeRepo, writeFarmConfig } from "../helpers/repo.js";
import { waitFor } from "../helpers/wait.js";
import { mean, percentile } from "./stats.js";

export interface TreeLatencyOptions {
  clients: number;
  tasks: number;
  unitsPerTask: number;
  changes: number;
}
export interface Dist {
  n: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}
export interface TreeLatencyResult {
  ok: boolean;
  error?: string;
  units: number;
  clients: number;
  tree: Dist;
  rawEvents: Dist;
  /** ms for one client to receive and apply the 1,000-unit snapshot */
  snapshotMs: number;
}

const dist = (xs: number[]): Dist => ({
  n: xs.length,
  p50: percentile(xs, 50),
  p99: percentile(xs, 99),
  max: Math.max(...xs),
  mean: mean(xs),
});

type Presentation = { description: string };
async function loadPresentation(): Promise<(u: UnitLiveView, now: number) => Presentation> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-bench-presentation-"));
  const out = join(dir, "presentation.mjs");
  await build({
    entryPoints: [join(ROOT, "extension", "src", "model", "unit-presentation.ts")],
    bundle: true,
    format: "esm",
    platform: "node",
    outfile: out,
    logLevel: "silent",
    // The model imports shared code whose dependencies are CommonJS (yaml): give the ESM bundle a require.
    banner: {
      js: 'import { createRequire as __optimusCreateRequire } from "node:module"; const require = __optimusCreateRequire(import.meta.url);',
    },
  });
  const mod = (await import(pathToFileURL(out).href)) as { unitPresentation: (u: UnitLiveView, now: number) => Presentation };
  rmSync(dir, { recursive: true, force: true });
  return mod.unitPresentation;
}

export async function treeLatency(o: TreeLatencyOptions): Promise<TreeLatencyResult> {
  const present = await loadPresentation();
  const repo = makeRepo(undefined, "optimus-bench-tree-");
  writeFarmConfig(repo);
  let farm: ProcessTestFarm | undefined;
  const closers: Array<() => void> = [];
  try {
    farm = await startTestFarm(undefined, { mode: "process", repo });
    const { url } = farm;
    const admin = farm.client;
    const editorToken = await tokenFor(url, farm.adminToken, "editor", "bench");
    for (let t = 0; t < o.tasks; t++) {
      await admin.tasks.create.mutate({
        id: `t${t}`,
        title: `Task ${t}`,
        units: Array.from({ length: o.unitsPerTask }, (_, i) => ({ id: `u${i}`, goal: `unit ${i}` })),
      });
    }
    const units = o.tasks * o.unitsPerTask;

    // The editors: each waits for one unit to show as cancelled, and says when.
    let waiting: { key: string; t0: number } | null = null;
    const tree: number[] = [];
    const raw: number[] = [];
    const snapshotMs: number[] = [];
    let treeSeen = 0;
    let rawSeen = 0;
    for (let c = 0; c < o.clients; c++) {
      const views = new FarmViews();
      const ws = createFarmClient({ url: url, token: editorToken, transport: "ws" });
      const t0 = performance.now();
      const sub = ws.client.views.stream.subscribe(
        { lastEventId: null },
        {
          onData: (env) => {
            const m = env.data as ViewsMessage;
            const change = views.apply(m);
            if (m.kind === "snapshot") snapshotMs.push(performance.now() - t0);
            if (!waiting || !change.units.has(waiting.key)) return;
            const u = views.units.get(waiting.key)!;
            if (/cancelled/.test(present(u, Date.now()).description)) {
              tree.push(performance.now() - waiting.t0);
              treeSeen++;
            }
          },
        },
      );
      closers.push(() => (sub.unsubscribe(), ws.close()));
    }
    for (let c = 0; c < o.clients; c++) {
      const ws = createFarmClient({ url: url, token: editorToken, transport: "ws" });
      let started = false;
      const sub = ws.client.events.stream.subscribe(
        {},
        {
          onData: (env) => {
            const e = env.data as FarmEvent;
            started = true;
            if (waiting && e.type === "unit_cancelled" && `${e.data.taskId}/${e.data.unitId}` === waiting.key) {
              raw.push(performance.now() - waiting.t0);
              rawSeen++;
            }
          },
        },
      );
      await waitFor(() => started, "the raw stream's backlog");
      closers.push(() => (sub.unsubscribe(), ws.close()));
    }
    await waitFor(() => snapshotMs.length === o.clients, "every editor's snapshot", 60_000);

    for (let i = 0; i < o.changes; i++) {
      const taskId = `t${i % o.tasks}`;
      const unitId = `u${Math.floor(i / o.tasks) % o.unitsPerTask}`;
      treeSeen = rawSeen = 0;
      waiting = { key: `${taskId}/${unitId}`, t0: performance.now() };
      await admin.units.cancel.mutate({ taskId, unitId });
      await waitFor(() => treeSeen === o.clients && rawSeen === o.clients, `all clients to see ${taskId}/${unitId} cancelled`, 10_000, 1);
    }
    waiting = null;
    return { ok: true, units, clients: o.clients, tree: dist(tree), rawEvents: dist(raw), snapshotMs: percentile(snapshotMs, 50) };
  } catch (err) {
    return {
      ok: false,
      error: (err as Error).message,
      units: o.tasks * o.unitsPerTask,
      clients: o.clients,
      tree: dist([]),
      rawEvents: dist([]),
      snapshotMs: NaN,
    };
  } finally {
    for (const c of closers) c();
    await farm?.stop();
    rmSync(repo, { recursive: true, force: true });
  }
}
