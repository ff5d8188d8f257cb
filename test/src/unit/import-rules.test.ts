import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { ROOT } from "../helpers/paths.js";

/** Runs the project's import check (its own config) over a tree of files laid out like the project. */
function check(t: { after(fn: () => void): void }, files: Record<string, string>): { code: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), "optimus-imports-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(ROOT, ".dependency-cruiser.cjs"), join(dir, ".dependency-cruiser.cjs"));
  copyFileSync(join(ROOT, "tsconfig.base.json"), join(dir, "tsconfig.base.json"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, "node_modules", "dependency-cruiser", "bin", "dependency-cruise.mjs"),
      "farm-server/src",
      "--config",
      ".dependency-cruiser.cjs",
      "--output-type",
      "err",
    ],
    { cwd: dir, encoding: "utf8" },
  );
  return { code: r.status, out: r.stdout + r.stderr };
}

test("the import rules catch a worker that reaches into farm internals, and folders that lean on each other", (t) => {
  const good = check(t, {
    "farm-server/src/worker/agent.ts": 'import { run } from "../sandbox/run.js";\nexport const go = run;\n',
    "farm-server/src/sandbox/run.ts": "export const run = () => 1;\n",
  });
  assert.equal(good.code, 0, good.out);

  const worker = check(t, {
    "farm-server/src/worker/agent.ts": 'import type { Projection } from "../store/projection.js";\nexport type P = Projection;\n',
    "farm-server/src/store/projection.ts": "export class Projection {}\n",
  });
  assert.notEqual(worker.code, 0);
  assert.match(worker.out, /worker-on-its-side: farm-server\/src\/worker\/agent\.ts → farm-server\/src\/store\/projection\.ts/);

  const cycle = check(t, {
    "farm-server/src/store/journal.ts": 'import { kinds } from "../core/errors.js";\nexport const j = kinds;\n',
    "farm-server/src/core/errors.ts": 'import type { } from "../store/journal.js";\nexport const kinds = 1;\n',
  });
  assert.notEqual(cycle.code, 0);
  assert.match(cycle.out, /no-folder-cycles/);
});
