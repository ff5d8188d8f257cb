// The extension's part of `npm run bench` (also runnable alone: `node test/dist/bench/extension-section.js`):
// bundle size, activation time in code-server beside a minimal extension, and unit state change →
// tree latency with 1,000 units and 50 editors beside the raw journal stream.
import { pathToFileURL } from "node:url";
import { activationTimes, bundleSizes, type ActivationResult, type BundleSizes } from "./extension-bench.js";
import { fmt, table, type Row } from "./stats.js";
import { treeLatency, type TreeLatencyResult } from "./tree-latency.js";

export const TREE = { clients: 50, tasks: 20, unitsPerTask: 50, changes: 100 };
const ACTIVATION_RUNS = 3;
const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);
const kb = (n: number) => `${fmt(n / 1024, 0)} KiB`;

export interface ExtensionBench {
  sizes?: BundleSizes;
  activation?: ActivationResult;
  tree?: TreeLatencyResult;
  problems: string[];
}

export async function runExtensionBench(): Promise<ExtensionBench> {
  const r: ExtensionBench = { problems: [] };
  log("extension bundle sizes (esbuild, minified and development) …");
  r.sizes = await bundleSizes().catch((err) => (r.problems.push(`bundle size: ${(err as Error).message}`), undefined));
  log(`extension activation in code-server, ${ACTIVATION_RUNS} fresh extension hosts …`);
  r.activation = await activationTimes(ACTIVATION_RUNS).catch(
    (err) => (r.problems.push(`activation: ${(err as Error).message.slice(0, 300)}`), undefined),
  );
  log(
    `unit state change → tree, ${TREE.tasks * TREE.unitsPerTask} units, ${TREE.clients} editors + ${TREE.clients} raw-stream clients, ${TREE.changes} changes …`,
  );
  r.tree = await treeLatency(TREE);
  if (!r.tree.ok) r.problems.push(`tree latency: ${r.tree.error}`);
  return r;
}

export function extensionRows(r: ExtensionBench): Row[] {
  const rows: Row[] = [];
  const s = r.sizes;
  if (s) {
    rows.push(
      {
        measure: "extension bundle, minified (as packaged)",
        value: kb(s.minifiedBytes),
        unit: "",
        note: `${kb(s.minifiedGzipBytes)} gzipped; largest parts: ${s.top.map((p) => `${p.name} ${kb(p.bytes)}`).join(", ")}`,
      },
      {
        measure: "extension bundle, development build",
        value: kb(s.devBytes),
        unit: "",
        note: `unminified, what F5 loads; .vsix ${s.vsixBytes ? kb(s.vsixBytes) : "not built (npm run package)"}`,
      },
    );
  }
  const a = r.activation;
  if (a) {
    rows.push(
      {
        measure: "extension activation (load + activate)",
        value: fmt(a.optimusMs, 1),
        unit: "ms",
        note: `median of ${a.runs} fresh code-server extension hosts; ${fmt(a.optimusInsideMs, 1)} ms inside activate()`,
      },
      {
        measure: "baseline: minimal extension activation",
        value: fmt(a.baselineMs, 1),
        unit: "ms",
        note: `the harness's hello fixture in the same hosts; Optimus costs ${fmt(a.optimusMs / Math.max(0.01, a.baselineMs), 1)}× that`,
      },
    );
  } else
    rows.push({
      measure: "extension activation",
      value: "FAILED",
      unit: "ms",
      note: r.problems.find((p) => p.startsWith("activation"))?.slice(0, 200) ?? "",
    });
  const t = r.tree;
  if (t?.ok) {
    rows.push(
      {
        measure: `state change → tree p50 / p99 (${t.clients} editors)`,
        value: `${fmt(t.tree.p50, 2)} / ${fmt(t.tree.p99, 2)}`,
        unit: "ms",
        note: `${t.units} units; views.stream → FarmViews → tree item presentation; n=${t.tree.n}, max ${fmt(t.tree.max, 1)} ms`,
      },
      {
        measure: `baseline: raw journal stream p50 / p99`,
        value: `${fmt(t.rawEvents.p50, 2)} / ${fmt(t.rawEvents.p99, 2)}`,
        unit: "ms",
        note: `${t.clients} clients on events.stream seeing the same change (no view work); tree ÷ raw p50 = ${fmt(t.tree.p50 / t.rawEvents.p50, 2)}×`,
      },
      {
        measure: "editor snapshot of the farm",
        value: fmt(t.snapshotMs, 1),
        unit: "ms",
        note: `median over ${t.clients} editors connecting at once: ${t.units} units received and applied`,
      },
    );
  } else rows.push({ measure: "state change → tree", value: "FAILED", unit: "ms", note: (t?.error ?? "").slice(0, 200) });
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const r = await runExtensionBench();
  console.log(table(extensionRows(r)));
  if (r.problems.length) console.log(["", "PROBLEMS:", ...r.problems.map((p) => `  - ${p}`)].join("\n"));
  process.exit(0);
}
