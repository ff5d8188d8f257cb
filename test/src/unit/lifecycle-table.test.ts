/**
 * The lifecycle table itself (issue 15): the picture in docs/lifecycle.md is the table's, every state
 * can be reached and left as the table says, and the projection holds the farm to it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Projection } from "@optimus/farm-server";
import { ACTIONS_BY_STATE, isTerminal, lifecycleDoc, mayMove, UNIT_TRANSITIONS, UnitState, type FarmEvent } from "@optimus/shared";
import { ROOT } from "../helpers/paths.js";

test("docs/lifecycle.md is the diagram the lifecycle table draws (run `npm run docs:lifecycle` after changing the table)", () => {
  assert.equal(readFileSync(join(ROOT, "docs", "lifecycle.md"), "utf8"), lifecycleDoc());
});

test("every state is reached from planned, and only merged is final; a person's actions exist only where the unit can still move", () => {
  const seen = new Set<UnitState>(["planned"]);
  for (let grew = true; grew;) {
    grew = false;
    for (const from of [...seen]) {
      for (const to of Object.keys(UNIT_TRANSITIONS[from]) as UnitState[]) {
        if (seen.has(to)) continue;
        seen.add(to);
        grew = true;
      }
    }
  }
  assert.deepEqual([...seen].sort(), [...UnitState.options].sort(), "no state is out of reach");
  assert.deepEqual(
    UnitState.options.filter((s) => Object.keys(UNIT_TRANSITIONS[s]).length === 0),
    ["merged"],
  );
  for (const s of UnitState.options) {
    if (Object.keys(UNIT_TRANSITIONS[s]).length === 0) assert.deepEqual(ACTIONS_BY_STATE[s], [], `${s} is final: nothing to do`);
    if (ACTIONS_BY_STATE[s].includes("cancel")) assert.ok(mayMove(s, "cancelled"), `${s} offers cancel, so it can be cancelled`);
    if (ACTIONS_BY_STATE[s].includes("retry")) assert.ok(mayMove(s, "planned"), `${s} offers retry, so it can start over`);
    if (ACTIONS_BY_STATE[s].includes("approve")) assert.ok(mayMove(s, "merged"));
    if (ACTIONS_BY_STATE[s].includes("request_changes")) assert.ok(mayMove(s, "ready"));
    if (!isTerminal(s)) assert.ok(mayMove(s, "cancelled"), `${s} is live, so its task's cancel can end it`);
  }
});

test("the projection moves units only along the table: an event that would break it is reported (strict: refused)", () => {
  let seq = 0;
  const ev = (type: string, data: Record<string, unknown>) =>
    ({ type, data, seq: ++seq, ts: seq, epoch: 1, actor: "test", prevHash: "", hash: "" }) as unknown as FarmEvent;
  const p = new Projection();
  p.apply(
    ev("task_created", {
      taskId: "t",
      title: "t",
      priority: 0,
      units: [{ id: "u", goal: "g", role: "codegen", files: [], dependsOn: [], priority: 0, complexity: "small", kind: "change" }],
    }),
  );
  assert.equal(p.units.get("t/u")!.state, "ready");
  // A unit that was never leased cannot be evaluated: the journal claims what the farm never does.
  const strict = Projection.strict;
  try {
    Projection.strict = false;
    p.apply(ev("unit_evaluating", { taskId: "t", unitId: "u", attempt: 1 }));
    assert.deepEqual(p.lifecycleViolations, [
      "unit_evaluating (seq 2) moved t/u from ready to evaluating, which the lifecycle does not allow",
    ]);
    Projection.strict = true;
    // Retrying is for dead or cancelled units, never one under evaluation.
    assert.throws(
      () => p.apply(ev("unit_retried", { taskId: "t", unitId: "u" })),
      /^Error: unit_retried \(seq 3\) moved t\/u from evaluating to planned, which the lifecycle does not allow$/,
    );
  } finally {
    Projection.strict = strict;
  }
});
