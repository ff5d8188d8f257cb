/**
 * Issue 14, the status screen's layout: at 80 and 120 columns no line is wider than the screen, ids
 * are whole (a person copies them), live work comes first and finished work last (collapsed to a
 * count when the screen is short), a unit nobody can take says why, a held change names the
 * commands that act on it; the live screen rewrites only the lines that changed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { statusLines, type StatusInput, type UnitRow } from "@optimus/farm-server/dist/cli/status/rows.js";
import { frameUpdate } from "@optimus/farm-server/dist/cli/status/frame.js";
import type { TaskView, UnitSpec, UnitState, WorkerView } from "@optimus/shared";

const NOW = 1_800_000_000_000;
const LONG = "make-the-add-function-add-and-not-subtract-now1"; // 47 characters, as the planner's slugs are

const spec = (id: string, s: Partial<UnitSpec> = {}): UnitSpec => ({
  id,
  goal: `${id}: a goal long enough that a narrow screen has to cut it somewhere along the way`,
  role: "codegen",
  files: [],
  dependsOn: [],
  priority: 0,
  complexity: "small",
  kind: "change",
  ...s,
});
const task = (taskId: string, state: TaskView["state"], units: string[], at: number, extra: Partial<TaskView> = {}): TaskView => ({
  taskId,
  title: `The title of ${taskId}, long enough to be cut on a narrow screen`,
  priority: 0,
  state,
  createdAt: NOW - at,
  updatedAt: NOW - at,
  units,
  counts: {},
  ...extra,
});
const unit = (taskId: string, unitId: string, state: UnitState, extra: Partial<UnitRow> & { s?: Partial<UnitSpec> } = {}): UnitRow => ({
  taskId,
  unitId,
  state,
  attempt: 1,
  failures: 0,
  updatedAt: NOW - 5_000,
  ...extra,
  spec: spec(unitId, extra.s),
});
const worker = (nodeId: string, role: WorkerView["role"], active = 0): WorkerView => ({
  nodeId,
  role,
  maxConcurrentTasks: 1,
  model: { primary: "m" },
  connected: true,
  active,
  lastSeenAt: NOW,
});

/** A farm with one codegen worker and no reviewer: finished work first in time, live work after it. */
function farm(finished = 2): StatusInput {
  const tasks: TaskView[] = [];
  const units = new Map<string, UnitRow[]>();
  for (let i = 0; i < finished; i++) {
    tasks.push(task(`done-${i}`, "completed", ["a"], 7_200_000 - i));
    units.set(`done-${i}`, [unit(`done-${i}`, "a", "completed", { worker: "codegen-node-in-the-basement" })]);
  }
  tasks.push(task(LONG, "running", ["fix", "fix-review"], 3_600_000));
  units.set(LONG, [
    unit(LONG, "fix", "reviewing", { worker: "codegen-node-in-the-basement" }),
    unit(LONG, "fix-review", "ready", { s: { role: "review", reviews: "fix" } }),
  ]);
  tasks.push(task("held", "running", ["h", "done"], 1_800_000));
  units.set("held", [
    unit("held", "done", "completed", { worker: "codegen-node-in-the-basement" }),
    unit("held", "h", "awaiting_approval", { worker: "codegen-node-in-the-basement", reason: "held for approval: medium risk" }),
  ]);
  tasks.push(task("plan-it", "open", ["plan"], 60_000));
  units.set("plan-it", [unit("plan-it", "plan", "ready", { s: { kind: "plan" } })]);
  return { tasks, units, workers: [worker("codegen-node-in-the-basement", "codegen", 1)], now: NOW };
}

const index = (lines: string[], re: RegExp) => {
  const i = lines.findIndex((l) => re.test(l));
  assert.ok(i >= 0, `no line matches ${re}:\n${lines.join("\n")}`);
  return i;
};

for (const width of [80, 120]) {
  test(`at ${width} columns: no line is wider, ids are whole, live work first, why units wait, what a person runs`, () => {
    const lines = statusLines(farm(), { width });
    const screen = lines.join("\n");
    for (const l of lines) assert.ok(l.length <= width, `${l.length} > ${width}: ${l}\n${screen}`);
    // Ids whole, each starting its row.
    assert.match(screen, new RegExp(`^${LONG} +running\\b`, "m"));
    for (const id of ["fix", "fix-review", "h", "plan"]) assert.match(screen, new RegExp(`^ {2}${id} +`, "m"), id);
    // Live first (the held task, the one in review), then the waiting plan, then finished tasks.
    const order = ["held", LONG, "plan-it", "done-1", "done-0"].map((id) => index(lines, new RegExp(`^${id} `)));
    assert.deepEqual(
      order,
      [...order].sort((a, b) => a - b),
      screen,
    );
    // Inside a task too: the held unit before its finished sibling.
    assert.ok(index(lines, /^ {2}h /) < index(lines, /^ {2}done /), screen);
    // Why nothing moves, whole: the review unit and the change it reviews; the plan queues behind a busy worker.
    assert.equal(lines.filter((l) => l.includes("waiting: no review worker connected")).length, 2, screen);
    assert.match(screen, /queued: the codegen worker is busy/);
    assert.match(screen, /^workers connected: 1 codegen, 0 review · tasks: 2 live, 1 waiting, 2 finished/m);
    // The held change: the commands that act on it, each whole.
    for (const cmd of ["`optimus unit diff held/h`", "`optimus approve held/h`", '`optimus reject held/h --reason "…"`'])
      assert.ok(screen.includes(cmd), `${cmd}\n${screen}`);
    assert.match(screen, /needs you: review/);
  });
}

test("worker names in full when there is room; at 80 columns free text is cut before ids", () => {
  const wide = statusLines(farm(), { width: 120 }).join("\n");
  assert.match(wide, /^ {2}fix +in review +1 +codegen-node-in-the-basement +5s +waiting: no review worker connected$/m);
  const narrow = statusLines(farm(), { width: 80 });
  assert.ok(
    narrow.some((l) => /^ {2}fix +in review /.test(l) && l.includes("…")),
    narrow.join("\n"),
  );
});

test("a short screen collapses finished tasks to a count line, then finished units, and never cuts live work first", () => {
  const input = farm(12);
  const tall = statusLines(input, { width: 100, height: 100 });
  assert.equal(tall.filter((l) => /^done-\d+ /.test(l)).length, 12, tall.join("\n"));
  const short = statusLines(input, { width: 100, height: 20 });
  assert.ok(short.length <= 20, short.join("\n"));
  assert.equal(short.filter((l) => /^done-\d+ /.test(l)).length, 0, short.join("\n"));
  assert.match(short.join("\n"), /^… 12 finished task\(s\) \(optimus task list --state done\)$/m);
  assert.match(short.join("\n"), /^held /m);
  assert.match(short.join("\n"), /^plan-it /m);
  // Not on a terminal (no height): the ten most recent finished tasks, the rest counted.
  const once = statusLines(input, { width: 100 });
  assert.equal(once.filter((l) => /^done-\d+ /.test(l)).length, 10);
  assert.match(once.join("\n"), /^… 2 finished task\(s\)/m);
});

test("with no worker at all, every ready unit says which role is missing", () => {
  const input = { ...farm(0), workers: [] };
  const screen = statusLines(input, { width: 80 }).join("\n");
  // At 80 columns the note does not fit the detail column: it gets a line of its own, whole, under its unit.
  assert.match(screen, /^ {2}plan +ready +1 .*\n {4}↳ waiting: no codegen worker connected$/m);
  assert.match(statusLines(input, { width: 120 }).join("\n"), /^ {2}plan +ready +1 +5s +waiting: no codegen worker connected$/m);
  assert.match(screen, /^workers connected: 0 codegen, 0 review/m);
});

test("the live screen rewrites only the lines that changed, and clears only on its first frame", () => {
  const a = ["header", "task 1s", "unit running", "", "footer"];
  const b = ["header", "task 2s", "unit running", "", "footer"];
  const first = frameUpdate(null, a, 80);
  assert.ok(first.startsWith("\x1b[H\x1b[2J"), JSON.stringify(first));
  assert.equal(frameUpdate(a, b, 80), "\x1b[2;1Htask 2s\x1b[K");
  assert.equal(frameUpdate(a, a, 80), "", "nothing changed: nothing written");
  // A shorter frame blanks the lines it no longer has; a line filling the width gets no erase (it would eat its last character).
  assert.equal(frameUpdate(a, a.slice(0, 3), 80), "\x1b[4;1H\x1b[K\x1b[5;1H\x1b[K");
  assert.equal(frameUpdate(["x"], ["y".repeat(10)], 10), `\x1b[1;1H${"y".repeat(10)}`);
});
