import assert from "node:assert/strict";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { PlanProposal } from "@optimus/shared";
import { checkPlan } from "@optimus/farm-server/dist/planner/plan-check.js";
import { FarmRepo } from "@optimus/farm-server/dist/git/farm-repo.js";
import { planRepoWith } from "../helpers/plan-repo.js";

// Plan checks accept the commands the repository itself provides (issue 11, item 5): its
// package.json dependencies' bins and its node_modules/.bin, and `npx <bin>` only for those.

const repoWith = (t: { after(fn: () => void): void }, files: Record<string, string>) => planRepoWith(t, files, "optimus-plan-check-");

const planWith = (check: string) =>
  PlanProposal.parse({
    units: [{ id: "u-x", goal: "g", files: ["src/x.ts"], check, dependsOn: [], complexity: "small" }],
    decision: { needed: false, title: "", context: "", decision: "", consequences: "" },
  });

const verdict = async (repo: FarmRepo, check: string) => {
  const r = await checkPlan(planWith(check), repo, "HEAD", new Set());
  return r.ok ? "ok" : r.reason;
};

const pkg = (deps: Record<string, Record<string, string>>) =>
  JSON.stringify({ name: "p", private: true, scripts: { test: "vitest run" }, ...deps }, null, 2);

test("a check run by a dependency's bin (not on PATH) is accepted: vitest, tsc from typescript, with env assignments and node_modules/.bin paths", async (t) => {
  const repo = repoWith(t, {
    "package.json": pkg({ devDependencies: { vitest: "^2.0.0", typescript: "^5.0.0" } }),
    "src/x.ts": "export {}\n",
  });
  for (const check of [
    "vitest run src/x.test.ts",
    "tsc --noEmit",
    "CI=1 vitest run",
    "./node_modules/.bin/vitest run",
    "npx vitest run src/x.test.ts",
    "npx --no-install tsc -p .",
  ]) {
    assert.equal(await verdict(repo, check), "ok", check);
  }
  // Still what it was before: PATH commands and files of the repository.
  assert.equal(await verdict(repo, "node --version"), "ok");
  assert.equal(await verdict(repo, "npm test"), "ok");
});

test("bins in node_modules/.bin of the farm's checkout (untracked) are accepted, with the names their packages declare", async (t) => {
  const repo = repoWith(t, {
    "package.json": pkg({ devDependencies: { "@scope/runner": "1.0.0" } }),
    "src/x.ts": "export {}\n",
    ".gitignore": "node_modules/\n",
  });
  mkdirSync(join(repo.root, "node_modules", ".bin"), { recursive: true });
  writeFileSync(join(repo.root, "node_modules", ".bin", "jest"), "#!/bin/sh\n");
  chmodSync(join(repo.root, "node_modules", ".bin", "jest"), 0o755);
  mkdirSync(join(repo.root, "node_modules", "@scope", "runner"), { recursive: true });
  writeFileSync(
    join(repo.root, "node_modules", "@scope", "runner", "package.json"),
    JSON.stringify({ name: "@scope/runner", bin: { "run-specs": "cli.js" } }),
  );
  assert.equal(await verdict(repo, "jest src"), "ok");
  assert.equal(await verdict(repo, "run-specs --all"), "ok");
  assert.equal(await verdict(repo, "runner"), "ok", "a scoped package's own name stands for its bin too");
});

test("a workspace's package.json counts: its dependencies' bins are hoisted to the root", async (t) => {
  const repo = repoWith(t, {
    "package.json": JSON.stringify({ name: "root", private: true, workspaces: ["packages/*"] }),
    "packages/a/package.json": pkg({ devDependencies: { mocha: "10.0.0" } }),
    "src/x.ts": "",
  });
  assert.equal(await verdict(repo, "mocha packages/a/test"), "ok");
});

test("an unknown command still falls back, and so does `npx` of a package the repository does not depend on (it would download it)", async (t) => {
  const repo = repoWith(t, { "package.json": pkg({ devDependencies: { vitest: "^2.0.0" } }), "src/x.ts": "export {}\n" });
  assert.equal(
    await verdict(repo, "frobnicate --all"),
    "unit 'u-x' has a check that cannot run here ('frobnicate' is not a command, a file of the repository, or a bin of its package.json dependencies)",
  );
  assert.equal(
    await verdict(repo, "npx left-pad"),
    "unit 'u-x' has a check that cannot run here ('npx left-pad' would download 'left-pad' (checks run offline): it is not a dependency in the repository's package.json)",
  );
  assert.equal(
    await verdict(repo, "node_modules/.bin/jest"),
    "unit 'u-x' has a check that cannot run here ('node_modules/.bin/jest' is not a bin of the repository's dependencies)",
  );
  assert.equal(
    await verdict(repo, "scripts/missing.sh"),
    "unit 'u-x' has a check that cannot run here ('scripts/missing.sh' is not a file of the repository)",
  );
  // Without any package.json nothing is provided: vitest is unknown there.
  const bare = repoWith(t, { "src/x.ts": "" });
  assert.match(await verdict(bare, "vitest run"), /'vitest' is not a command/);
});
