/**
 * The plan check's other rules (issue 15; plan-check.test.ts covers which check commands can run):
 * a model's plan becomes units only with usable, unique ids, known and acyclic dependencies, and
 * files that are plain repository paths which exist (or are new files in existing folders). Each
 * refusal is the reason the task shows when the farm falls back to one unit.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { PlanProposal } from "@optimus/shared";
import { checkPlan } from "@optimus/farm-server/dist/planner/plan-check.js";
import { FarmRepo } from "@optimus/farm-server/dist/git/farm-repo.js";
import { planRepoWith } from "../helpers/plan-repo.js";

type PlannedUnit = {
  id: string;
  goal?: string;
  files?: string[];
  check?: string;
  dependsOn?: string[];
  complexity?: "trivial" | "small" | "medium" | "large";
};

const repoWith = (t: { after(fn: () => void): void }, files: Record<string, string>) => planRepoWith(t, files, "optimus-plan-rules-");

/** A plan as the model's answer holds it after parsing; `raw` skips the schema, as a plan from elsewhere would. */
const planOf = (units: PlannedUnit[], raw = false): PlanProposal => {
  const full = units.map((u) => ({ goal: "g", files: [], check: "", dependsOn: [], complexity: "small" as const, ...u }));
  return raw ? ({ units: full } as PlanProposal) : PlanProposal.parse({ units: full });
};

const verdict = async (repo: FarmRepo, units: PlannedUnit[], o: { taken?: string[]; raw?: boolean } = {}) => {
  const r = await checkPlan(planOf(units, o.raw), repo, "HEAD", new Set(o.taken ?? []));
  return r.ok ? "ok" : r.reason;
};

const tree = { "src/app.ts": "export {}\n", "src/util/strings.ts": "export {}\n", "README.md": "# r\n" };

test("an accepted plan becomes codegen change units: files and dependencies kept, the check trimmed (left out when blank), priority 0", async (t) => {
  const repo = repoWith(t, tree);
  const r = await checkPlan(
    planOf([
      { id: "u-a", goal: "add the parser", files: ["src/app.ts", "src/util/"], check: "  node --version  ", complexity: "medium" },
      { id: "u-b", goal: "use it", files: ["src/util/parse.ts"], dependsOn: ["u-a"] },
    ]),
    repo,
    "HEAD",
    new Set(),
  );
  assert.deepEqual(r, {
    ok: true,
    units: [
      {
        id: "u-a",
        goal: "add the parser",
        role: "codegen",
        files: ["src/app.ts", "src/util/"],
        dependsOn: [],
        priority: 0,
        complexity: "medium",
        kind: "change",
        check: "node --version",
      },
      {
        id: "u-b",
        goal: "use it",
        role: "codegen",
        files: ["src/util/parse.ts"],
        dependsOn: ["u-a"],
        priority: 0,
        complexity: "small",
        kind: "change",
      },
    ],
  });
});

test("unit ids: each must be a usable id (a branch name part), once in the plan, and not taken by the task's units", async (t) => {
  const repo = repoWith(t, tree);
  assert.equal(await verdict(repo, [{ id: "Parse Step" }]), "unit id 'Parse Step' is not a usable id");
  assert.equal(await verdict(repo, [{ id: "a..b" }]), "unit id 'a..b' is not a usable id");
  assert.equal(await verdict(repo, [{ id: "x.lock" }]), "unit id 'x.lock' is not a usable id");
  assert.equal(await verdict(repo, [{ id: "u-a" }, { id: "u-a" }]), "unit id 'u-a' is used twice");
  assert.equal(
    await verdict(repo, [{ id: "plan" }], { taken: ["plan"] }),
    "unit id 'plan' is used twice",
    "the planning unit's own id is taken",
  );
  assert.equal(await verdict(repo, [{ id: "u-a" }], { taken: ["plan"] }), "ok");
});

test("dependencies: only on units of the same plan, and never in a circle (the circle is named)", async (t) => {
  const repo = repoWith(t, tree);
  assert.equal(await verdict(repo, [{ id: "u-a", dependsOn: ["u-z"] }]), "unit 'u-a' depends on unknown unit 'u-z'");
  assert.equal(
    await verdict(repo, [{ id: "u-a", dependsOn: ["plan"] }], { taken: ["plan"] }),
    "unit 'u-a' depends on unknown unit 'plan'",
    "not on a unit outside the plan",
  );
  assert.equal(
    await verdict(repo, [
      { id: "u-a", dependsOn: ["u-c"] },
      { id: "u-b", dependsOn: ["u-a"] },
      { id: "u-c", dependsOn: ["u-b"] },
    ]),
    "dependency cycle: u-a → u-c → u-b → u-a",
  );
  assert.equal(await verdict(repo, [{ id: "u-a", dependsOn: ["u-a"] }]), "dependency cycle: u-a → u-a");
  assert.equal(
    await verdict(repo, [{ id: "u-a" }, { id: "u-b", dependsOn: ["u-a"] }, { id: "u-c", dependsOn: ["u-a", "u-b"] }]),
    "ok",
    "a diamond is no circle",
  );
});

test("files: existing files and folders, and new files in existing folders, are accepted; a file in a folder that does not exist is refused", async (t) => {
  const repo = repoWith(t, tree);
  assert.equal(
    await verdict(repo, [{ id: "u-a", files: ["src/app.ts", "src/util/", "src/util", "src/new.ts", "CHANGELOG.md", "README.md"] }]),
    "ok",
  );
  assert.equal(
    await verdict(repo, [{ id: "u-a", files: ["src/app.ts", "lib/new.ts"] }]),
    "unit 'u-a' names lib/new.ts, which does not exist (nor does its folder)",
  );
  assert.equal(
    await verdict(repo, [{ id: "u-a", files: ["src/missing/deep/x.ts"] }]),
    "unit 'u-a' names src/missing/deep/x.ts, which does not exist (nor does its folder)",
  );
});

test("files: the one path rule refuses a path out of the tree, in the schema and again in the check itself, naming the path and the rule", async (t) => {
  const repo = repoWith(t, tree);
  for (const bad of ["../secrets.txt", "/etc/passwd", ".git/config", "src/.GIT/hooks/x", "git~1/config", "src//app.ts"]) {
    assert.equal(PlanProposal.safeParse({ units: [{ id: "u-a", goal: "g", files: [bad] }] }).success, false, `the schema refuses ${bad}`);
  }
  assert.equal(
    await verdict(repo, [{ id: "u-a", files: ["../secrets.txt"] }], { raw: true }),
    `unit 'u-a' names "../secrets.txt": the path must not contain '..'; name the file by its path inside the repository (like src/app.ts)`,
  );
  assert.match(
    await verdict(repo, [{ id: "u-a", files: ["src/.GIT/hooks/x"] }], { raw: true }),
    /^unit 'u-a' names "src\/\.GIT\/hooks\/x": the path must not point into \.git/,
  );
  assert.match(
    await verdict(repo, [{ id: "u-a", files: ["/etc/passwd"] }], { raw: true }),
    /names "\/etc\/passwd": the path must be relative to the repository root/,
  );
  assert.match(
    await verdict(repo, [{ id: "u-a", files: ["src/a\u001bb"] }], { raw: true }),
    /names "src\/a\\u001bb": the path must not contain control characters/,
  );
});

test("the first problem is the answer: ids before dependencies, a unit's dependencies before its files, its files before its check, circles last", async (t) => {
  const repo = repoWith(t, tree);
  assert.match(await verdict(repo, [{ id: "u-a", dependsOn: ["u-z"] }, { id: "Bad" }]), /unit id 'Bad'/);
  assert.match(await verdict(repo, [{ id: "u-a", dependsOn: ["u-z"], files: ["lib/x.ts"] }]), /unknown unit 'u-z'/);
  assert.match(await verdict(repo, [{ id: "u-a", files: ["lib/x.ts"], check: "frobnicate" }]), /lib\/x\.ts, which does not exist/);
  assert.match(
    await verdict(repo, [
      { id: "u-a", dependsOn: ["u-b"] },
      { id: "u-b", dependsOn: ["u-a"], check: "frobnicate" },
    ]),
    /check that cannot run here/,
  );
});
