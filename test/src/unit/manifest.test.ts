import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { backoffMs, findCycle, manifestJsonSchema, parseManifestYaml, slugify } from "@optimus/shared";
import { ROOT } from "../helpers/paths.js";

const good = `apiVersion: optimus/v1
kind: Task
title: Add rate limiting
units:
  - id: limiter
    goal: Write the token bucket
    files: [src/limiter.ts]
    check: npm test
  - id: review-limiter
    role: review
    goal: Review the limiter
    dependsOn: [limiter]
`;

test("a valid manifest parses with defaults filled in", () => {
  const r = parseManifestYaml(good, "m.yaml");
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.equal(r.manifest.units[0]!.role, "codegen");
  assert.equal(r.manifest.units[1]!.role, "review");
  assert.deepEqual(r.manifest.units[1]!.dependsOn, ["limiter"]);
  assert.equal(r.manifest.priority, 0);
});

test("YAML syntax errors point at the line", () => {
  const r = parseManifestYaml("title: x\nunits:\n  - id: a\n    goal: [unclosed\n", "bad.yaml");
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.problems[0]!.line >= 4, JSON.stringify(!r.ok && r.problems));
  assert.equal(!r.ok && r.problems[0]!.file, "bad.yaml");
});

test("schema errors name the file, the line and the field", () => {
  const text = good
    .replace("    role: review\n", "    role: reviewer\n")
    .replace("    check: npm test\n", "    check: npm test\n    colour: blue\n");
  const r = parseManifestYaml(text, "m.yaml");
  assert.equal(r.ok, false);
  if (r.ok) return;
  const role = r.problems.find((p) => p.field === "units[1].role");
  assert.ok(role, JSON.stringify(r.problems));
  assert.equal(role.line, 11);
  const unknown = r.problems.find((p) => p.message.includes("colour"));
  assert.ok(unknown, JSON.stringify(r.problems));
  assert.equal(unknown.field, "units[0]");
  assert.equal(unknown.line, 5);
});

test("a missing required field is reported as required at its parent's line", () => {
  const r = parseManifestYaml("title: t\nunits:\n  - id: a\n", "m.yaml");
  assert.equal(r.ok, false);
  if (r.ok) return;
  assert.deepEqual(
    r.problems.map((p) => [p.field, p.message, p.line]),
    [["units[0].goal", "is required", 3]],
  );
});

test("dependency cycles, unknown dependencies and duplicate ids are found", () => {
  const cyc = `title: t\nunits:\n  - id: a\n    goal: g\n    dependsOn: [c]\n  - id: b\n    goal: g\n    dependsOn: [a]\n  - id: c\n    goal: g\n    dependsOn: [b]\n`;
  const r = parseManifestYaml(cyc, "m.yaml");
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.problems[0]!.message : "", /dependency cycle: a → c → b → a/);
  assert.equal(!r.ok && r.problems[0]!.line, 5);
  const unk = parseManifestYaml(`title: t\nunits:\n  - id: a\n    goal: g\n    dependsOn: [zz]\n`, "m.yaml");
  assert.deepEqual(!unk.ok && unk.problems.map((p) => [p.field, p.message, p.line]), [["units[0].dependsOn[0]", "unknown unit 'zz'", 5]]);
  const dup = parseManifestYaml(`title: t\nunits:\n  - id: a\n    goal: g\n  - id: a\n    goal: h\n`, "m.yaml");
  assert.match(!dup.ok ? dup.problems[0]!.message : "", /duplicate unit id 'a'/);
  assert.equal(findCycle([{ id: "x", dependsOn: [] }]), null);
});

test("the checked-in JSON Schema is the one generated from the zod schema", () => {
  const onDisk = JSON.parse(readFileSync(join(ROOT, "shared", "schema", "manifest.schema.json"), "utf8"));
  assert.deepEqual(onDisk, manifestJsonSchema(), "run `npm run schema` and commit shared/schema/manifest.schema.json");
  assert.ok((onDisk.required as string[]).includes("units"));
});

test("slugs are path-safe and backoff grows and is capped", () => {
  assert.equal(slugify("Fix the Login bug!! (urgent)"), "fix-the-login-bug-urgent");
  assert.equal(slugify("../../etc"), "etc");
  assert.equal(slugify("!!!"), "task");
  const max = (n: number) => backoffMs(n, 1000, 8000, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5, 9].map(max), [1000, 2000, 4000, 8000, 8000, 8000]);
  assert.equal(
    backoffMs(3, 1000, 8000, () => 0),
    2000,
  );
});

test("every problem at once: a bad field and an unknown dependency in one answer, in line order", () => {
  const r = parseManifestYaml(
    "apiVersion: optimus/v1\nkind: Task\ntitle: T\nunits:\n  - id: a\n    goal: g\n    priority: high\n  - id: b\n    goal: g\n    dependsOn: [missing]\n",
    "m.yaml",
  );
  assert.equal(r.ok, false);
  const problems = r.ok ? [] : r.problems.map((p) => `${p.line}:${p.field}: ${p.message}`);
  assert.equal(problems.length, 2, problems.join("\n"));
  assert.match(problems[0]!, /^7:units\[0\]\.priority: /);
  assert.match(problems[1]!, /^10:units\[1\]\.dependsOn\[0\]: unknown unit 'missing'$/);
});
