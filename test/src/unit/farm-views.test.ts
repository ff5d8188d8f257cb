import assert from "node:assert/strict";
import { test } from "node:test";
import { FarmViews, type TaskView, type UnitLiveView, type ViewsMessage } from "@optimus/shared";

const unit = (unitId: string, state: UnitLiveView["state"], updatedAt: number, attempt = 1): UnitLiveView => ({
  taskId: "t",
  unitId,
  state,
  attempt,
  failures: 0,
  updatedAt,
  actions: [],
  spec: { id: unitId, goal: "g", role: "codegen", files: [], dependsOn: [], priority: 0, complexity: "small", kind: "change" },
});
const task: TaskView = {
  taskId: "t",
  title: "T",
  priority: 0,
  state: "running",
  createdAt: 1,
  updatedAt: 1,
  units: ["a", "b"],
  counts: {},
};
const snapshot = (epoch: number, seq: number, units: UnitLiveView[]): ViewsMessage => ({
  kind: "snapshot",
  epoch,
  seq,
  serverTime: 1_000,
  tasks: [task],
  units,
  workers: [],
  spend: { todayUsd: 0, days: [], frontierConfigured: false },
});

test("a snapshot replaces the model; deltas update it; units come back in manifest order", () => {
  const v = new FarmViews();
  const c0 = v.apply(snapshot(1, 10, [unit("b", "ready", 5), unit("a", "leased", 5)]));
  assert.equal(c0.reset, true);
  assert.deepEqual(
    v.unitsOf("t").map((u) => u.unitId),
    ["a", "b"],
  );
  const c1 = v.apply({ kind: "delta", epoch: 1, seq: 12, serverTime: 1_000, tasks: [], units: [unit("a", "awaiting_approval", 6)] });
  assert.deepEqual([...c1.units], ["t/a"]);
  assert.deepEqual(
    c1.nowAwaitingApproval.map((u) => u.unitId),
    ["a"],
  );
  assert.equal(v.unit("t", "a")?.state, "awaiting_approval");
  // The same state again (a redelivered delta) is not a new approval request.
  assert.deepEqual(
    v.apply({ kind: "delta", epoch: 1, seq: 12, serverTime: 1_000, tasks: [], units: [unit("a", "awaiting_approval", 6)] })
      .nowAwaitingApproval,
    [],
  );
});

test("stale and foreign messages change nothing: an older delta, an older unit view, another epoch", () => {
  const v = new FarmViews();
  v.apply(snapshot(2, 20, [unit("a", "merged", 9)]));
  assert.equal(v.apply({ kind: "delta", epoch: 2, seq: 19, serverTime: 1_000, tasks: [], units: [unit("a", "leased", 3)] }).units.size, 0);
  assert.equal(v.apply({ kind: "delta", epoch: 2, seq: 21, serverTime: 1_000, tasks: [], units: [unit("a", "leased", 3)] }).units.size, 0);
  assert.equal(v.apply({ kind: "delta", epoch: 1, seq: 99, serverTime: 1_000, tasks: [], units: [unit("a", "dead", 99)] }).units.size, 0);
  assert.equal(v.unit("t", "a")?.state, "merged");
  // A new epoch's snapshot (the farm restarted) wins whatever the seq.
  v.apply(snapshot(3, 5, [unit("a", "ready", 1)]));
  assert.equal(v.unit("t", "a")?.state, "ready");
});

test("progress applies only to the attempt it was reported for", () => {
  const v = new FarmViews();
  v.apply(snapshot(1, 1, [unit("a", "leased", 1, 2)]));
  v.apply({
    kind: "progress",
    epoch: 1,
    seq: 1,
    serverTime: 1_000,
    units: [{ taskId: "t", unitId: "a", progress: { phase: "generating", attempt: 1, at: 5 } }],
  });
  assert.equal(v.unit("t", "a")?.progress, undefined, "an old attempt's progress is ignored");
  v.apply({
    kind: "progress",
    epoch: 1,
    seq: 1,
    serverTime: 1_000,
    units: [{ taskId: "t", unitId: "a", progress: { phase: "checking", step: "npm test", attempt: 2, at: 6 } }],
  });
  assert.equal(v.unit("t", "a")?.progress?.step, "npm test");
  v.apply({ kind: "progress", epoch: 1, seq: 1, serverTime: 1_000, units: [{ taskId: "t", unitId: "a", progress: null }] });
  assert.equal(v.unit("t", "a")?.progress, undefined);
});

test("ages are measured on the farm's clock: farmNow follows its last message, not this process's clock", () => {
  const v = new FarmViews();
  assert.equal(v.farmNow(42), 42, "before any message, the local clock");
  v.apply(snapshot(1, 1, []));
  const at = v.receivedAt;
  assert.equal(v.serverTime, 1_000);
  assert.equal(v.farmNow(at + 5_000), 6_000);
  // Another farm run's late message does not move the clock.
  v.apply({ kind: "fleet", epoch: 9, seq: 1, serverTime: 99_999, workers: [] });
  assert.equal(v.serverTime, 1_000);
});
