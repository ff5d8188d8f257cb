/**
 * What the editor's Units tree shows for a task on its way to the origin (issue 10): a held merge as
 * held, with its reason, the conflicting files and what to do; a merge in progress; the pull request.
 * The tree's own presentation module (extension/src/model), bundled as the bench does.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { test } from "node:test";
import { build } from "esbuild";
import type { TaskView } from "@optimus/shared";
import { ROOT } from "../helpers/paths.js";

type Presentation = { description: string; icon: string; tooltip: string; contextValue: string };

async function load(): Promise<(t: TaskView, live?: boolean) => Presentation> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-presentation-"));
  try {
    const out = join(dir, "presentation.mjs");
    await build({
      entryPoints: [join(ROOT, "extension", "src", "model", "unit-presentation.ts")],
      bundle: true,
      format: "esm",
      platform: "node",
      outfile: out,
      logLevel: "silent",
      banner: { js: 'import { createRequire as __r } from "node:module"; const require = __r(import.meta.url);' },
    });
    return ((await import(pathToFileURL(out).href)) as { taskPresentation: (t: TaskView, live?: boolean) => Presentation })
      .taskPresentation;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const base: TaskView = {
  taskId: "fix-add",
  title: "Fix add",
  priority: 0,
  state: "running",
  createdAt: 0,
  updatedAt: 0,
  units: ["u1"],
  counts: { merged: 1 },
};

test("the Units tree shows a held task merge as held, with the conflicting files, the reason and what to do; merging and the pull request too", async () => {
  const present = await load();
  const held = present({
    ...base,
    state: "held",
    merge: {
      into: "main",
      heldReason: "conflicts in src/add.js (the task's branch optimus/fix-add against main at 1234567890)",
      conflicts: ["src/add.js"],
    },
    pullRequest: { number: 12, url: "https://github.example/team/app/pull/12", state: "open" },
  });
  assert.equal(held.icon, "warning");
  assert.match(held.description, /merge held: conflicts in src\/add\.js/);
  assert.match(held.description, /PR #12 open/);
  assert.match(held.tooltip, /Merge into main held: conflicts in src\/add\.js/);
  assert.match(held.tooltip, /Resolve the conflicts on `optimus\/fix-add` and push it, then `optimus approve fix-add`/);
  assert.match(held.tooltip, /Pull request \[#12\]\(https:\/\/github\.example\/team\/app\/pull\/12\) \(open\)/);
  assert.match(held.contextValue, /\bheld\b/);

  const refused = present({
    ...base,
    state: "held",
    merge: { into: "main", heldReason: "the origin refused the merge: protected branch" },
  });
  assert.match(refused.tooltip, /When the cause is fixed, `optimus approve fix-add` tries the merge again/);

  const merging = present({ ...base, state: "merging", merge: undefined });
  assert.equal(merging.icon, "git-merge");
  assert.match(merging.description, /merging into its target/);

  const done = present({
    ...base,
    state: "completed",
    merge: { into: "main", commit: "abcdef0123456789" },
    pullRequest: { number: 12, url: "javascript:alert(1)", state: "merged" },
  });
  assert.match(done.tooltip, /Merged into main on the origin \(abcdef0123\)/);
  assert.doesNotMatch(done.tooltip, /javascript:/, "only http(s) links from the forge are shown");
});
