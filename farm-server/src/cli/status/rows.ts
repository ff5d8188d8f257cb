/**
 * What `optimus status` (and `task show`) prints: live work first, then what waits, then what is
 * finished (collapsed to a count when the screen is short); on each unit, why it does not run
 * ("waiting: no review worker connected") and, where a person must act, the exact command.
 */
import {
  FINISHED_TASK_STATES,
  STATE_LABELS,
  capacityByRole,
  unitWait,
  type RoleCapacity,
  type TaskView,
  type UnitState,
  type UnitView,
  type WorkerView,
} from "@optimus/shared";
import { cut, fitColumns, headerLine, oneLine, pack, renderRow, wrap, type Columns, type TableRow } from "./layout.js";

export type UnitRow = UnitView & { progress?: { phase: string; step?: string } };

/** What the screen shows: the farm's tasks, their units, and (when known) its workers. */
export interface StatusInput {
  tasks: TaskView[];
  units: Map<string, UnitRow[]>;
  /** the fleet: without it, nothing is said about workers */
  workers?: WorkerView[];
  /** finished tasks the farm has but did not send (counted in the collapsed line) */
  finishedNotSent?: number;
  /** the farm's clock now (ages are measured on it) */
  now?: number;
}

export interface StatusOptions {
  /** characters per line (default 80) */
  width?: number;
  /** lines the screen has: finished work is collapsed, then the rest cut, to fit (default: no limit) */
  height?: number;
  /** units shown per task before "… N more" (default 15) */
  maxUnits?: number;
  /** finished tasks shown when there is no height limit (default 10) */
  maxFinished?: number;
}

/** The hint when a person should look at finished tasks (another command lists them all). */
export const FINISHED_HINT = "optimus task list --state done";

const LIVE_UNIT: ReadonlySet<UnitState> = new Set(["leased", "submitted", "evaluating", "reviewing", "awaiting_approval", "dead"]);
const FINISHED_UNIT: ReadonlySet<UnitState> = new Set(["completed", "merged", "cancelled"]);
/** 0 live, 1 waiting, 2 finished: the order of the screen, for tasks and for the units inside one */
const unitRank = (s: UnitState) => (LIVE_UNIT.has(s) ? 0 : FINISHED_UNIT.has(s) ? 2 : 1);

export const ago = (ms: number, now: number): string => {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : s < 86_400 ? `${Math.floor(s / 3600)}h` : `${Math.floor(s / 86_400)}d`;
};

/** One line of the screen; `row` lines are laid out in the table's columns once all are known. */
type Line = { row: TableRow; note?: string } | { text: (c: Columns) => string[] };

const needsYouUnit = (u: UnitRow) => u.state === "awaiting_approval" || u.state === "dead";
const needsYouTask = (t: TaskView, us: UnitRow[]) => t.merge?.heldReason !== undefined || us.some(needsYouUnit);

function taskRank(t: TaskView, us: UnitRow[]): number {
  if (FINISHED_TASK_STATES.has(t.state)) return 2;
  if (t.state === "held" || t.state === "merging" || us.some((u) => LIVE_UNIT.has(u.state))) return 0;
  return 1;
}

/** Words of free text, and commands kept whole (in backticks), packed into lines that never break a command. */
const words = (...parts: Array<string | { cmd: string }>) =>
  parts.flatMap((p) => (typeof p === "string" ? oneLine(p).split(/ +/).filter(Boolean) : [`\`${oneLine(p.cmd)}\``]));

/** The lines under a unit a person must act on: what to run. */
function unitCommands(taskId: string, u: UnitRow): string[] | undefined {
  const ref = `${taskId}/${u.unitId}`;
  if (u.state === "awaiting_approval")
    return words("needs you: review", { cmd: `optimus unit diff ${ref}` }, "then", { cmd: `optimus approve ${ref}` }, "or", {
      cmd: `optimus reject ${ref} --reason "…"`,
    });
  if (u.state === "dead") return words("needs you: out of attempts; look at its reason, then", { cmd: `optimus unit retry ${ref}` });
  return undefined;
}

/** Why a unit does not move, when something outside it holds it (no worker of its role, a busy fleet, a backoff). */
function unitNote(u: UnitRow, siblings: UnitRow[], capacity: RoleCapacity | undefined, now: number): string | undefined {
  if (!capacity) return undefined;
  const w = unitWait(u, capacity, now);
  if (w) return w.blocked ? `waiting: ${w.text}` : w.text;
  // A change in review waits on its review unit: say what that one waits for.
  if (u.state === "reviewing") {
    const review = siblings.find((s) => s.spec.reviews === u.unitId && s.state === "ready");
    const rw = review && unitWait(review, capacity, now);
    if (rw?.blocked) return `waiting: ${rw.text}`;
  }
  return undefined;
}

function unitDetail(u: UnitRow, siblings: UnitRow[]): string {
  if (u.progress) return `${u.progress.phase}${u.progress.step ? `: ${u.progress.step}` : ""}`;
  if (u.reason) return u.reason;
  if (u.state === "planned") {
    const pending = u.spec.dependsOn.filter((d) => !FINISHED_UNIT.has(siblings.find((s) => s.unitId === d)?.state ?? "planned"));
    if (pending.length) return `after ${pending.join(", ")}`;
  }
  return u.spec.goal.split("\n")[0]!;
}

interface Level {
  /** finished tasks shown (the rest are counted) */
  finished: number;
  /** finished units shown inside a task */
  finishedUnits: number;
  /** units shown per task */
  units: number;
}

function taskLines(t: TaskView, us: UnitRow[], level: Level, capacity: RoleCapacity | undefined, now: number): Line[] {
  const out: Line[] = [];
  const done = (t.counts.completed ?? 0) + (t.counts.merged ?? 0);
  out.push({
    row: {
      id: oneLine(t.taskId),
      unit: false,
      state: t.state,
      attempt: "",
      worker: "",
      age: ago(t.createdAt, now),
      detail: oneLine(`${done}/${t.units.length} done · ${t.title}`),
    },
  });
  const note = (text: string) => out.push({ text: (c) => wrap(text, c.width, "  ↳ ", "    ") });
  const act = (parts: string[]) => out.push({ text: (c) => pack(parts, c.width, "    ", "      ", false) });
  // The planner's plan was refused: the task runs as one unit, and the user sees why.
  if (t.planFallback) note(`plan not used, one unit instead: ${t.planFallback}`);
  // Where the change is: its pull request, its merge, or why it waits and what to do.
  if (t.pullRequest) note(`pull request #${t.pullRequest.number} (${t.pullRequest.state}): ${t.pullRequest.url}`);
  if (t.merge?.commit) note(`merged into ${t.merge.into} on the origin as ${t.merge.commit.slice(0, 10)}`);
  else if (t.merge?.heldReason) {
    note(`merge into ${t.merge.into} held: ${t.merge.heldReason}`);
    act(
      t.merge.conflicts?.length
        ? words(
            `needs you: resolve the conflicts on optimus/${t.taskId} (push it), then`,
            { cmd: `optimus approve ${t.taskId}` },
            "; or cancel and send the task again",
          )
        : words("needs you: when the cause is fixed,", { cmd: `optimus approve ${t.taskId}` }, "tries the merge again"),
    );
  }
  // Units the same way as tasks: live first, then waiting, then finished; manifest order inside each.
  const ordered = us.map((u, i) => ({ u, i })).sort((a, b) => unitRank(a.u.state) - unitRank(b.u.state) || a.i - b.i);
  let shown = 0;
  let finishedShown = 0;
  let hidden = 0;
  let finishedHidden = 0;
  for (const { u } of ordered) {
    const finished = FINISHED_UNIT.has(u.state);
    if (shown >= level.units) {
      hidden++;
      continue;
    }
    if (finished && finishedShown >= level.finishedUnits) {
      finishedHidden++;
      continue;
    }
    shown++;
    if (finished) finishedShown++;
    out.push({
      row: {
        id: oneLine(u.unitId),
        unit: true,
        state: STATE_LABELS[u.state],
        attempt: String(u.attempt),
        worker: oneLine(u.worker ?? ""),
        age: ago(u.updatedAt, now),
        detail: oneLine(unitDetail(u, us)),
      },
      note: unitNote(u, us, capacity, now),
    });
    const cmds = unitCommands(t.taskId, u);
    if (cmds) act(cmds);
  }
  if (hidden) out.push({ text: () => [`  … ${hidden} more unit(s) (optimus task show ${oneLine(t.taskId)})`] });
  if (finishedHidden) out.push({ text: () => [`  … ${finishedHidden} finished unit(s)`] });
  return out;
}

/** The first line (two on a narrow screen): the fleet and the work at a glance. */
function summary(input: StatusInput, ranks: number[], needsYou: number, capacity: RoleCapacity, width: number): string[] {
  const n = (r: number) => ranks.filter((x) => x === r).length;
  const fleet = Object.entries(capacity)
    .map(([role, c]) => `${c.connected} ${role}`)
    .join(", ");
  const parts = [
    `workers connected: ${fleet}`,
    `tasks: ${n(0)} live, ${n(1)} waiting, ${n(2) + (input.finishedNotSent ?? 0)} finished`,
    ...(needsYou ? [`${needsYou} ${needsYou === 1 ? "needs" : "need"} you`] : []),
  ];
  const lines: string[] = [];
  for (const p of parts) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last]!.length + 3 + p.length <= width) lines[last] += ` · ${p}`;
    else lines.push(cut(p, width));
  }
  return lines;
}

/**
 * The screen as lines of at most `width` characters (an id or a command longer than a whole line is
 * the only exception: it is never cut). With a `height`, finished tasks, then finished units, then
 * waiting units collapse to counts, and what still does not fit is cut at the bottom.
 */
export function statusLines(input: StatusInput, o: StatusOptions = {}): string[] {
  const width = Math.max(20, o.width ?? 80);
  const now = input.now ?? Date.now();
  if (input.tasks.length === 0 && !input.finishedNotSent) return ['no tasks yet: send one with `optimus send "<instruction>"`'];
  const capacity = input.workers ? capacityByRole(input.workers) : undefined;
  const withUnits = input.tasks.map((t) => ({ t, us: input.units.get(t.taskId) ?? [] }));
  const ranked = withUnits
    .map((x) => ({ ...x, rank: taskRank(x.t, x.us), you: needsYouTask(x.t, x.us) }))
    .sort(
      (a, b) =>
        a.rank - b.rank ||
        // a person's part first among live work; the newest first among finished work
        (a.rank === 0 ? Number(b.you) - Number(a.you) : 0) ||
        (a.rank === 2 ? b.t.updatedAt - a.t.updatedAt : a.t.createdAt - b.t.createdAt),
    );
  const needsYou = ranked.reduce((n, x) => n + (x.t.merge?.heldReason ? 1 : 0) + x.us.filter(needsYouUnit).length, 0);
  const head = capacity
    ? summary(
        input,
        ranked.map((x) => x.rank),
        needsYou,
        capacity,
        width,
      )
    : [];

  const build = (level: Level): string[] => {
    const lines: Line[] = [];
    let finishedHidden = input.finishedNotSent ?? 0;
    let finishedShown = 0;
    for (const x of ranked) {
      if (x.rank === 2 && finishedShown >= level.finished) {
        finishedHidden++;
        continue;
      }
      if (x.rank === 2) finishedShown++;
      lines.push(...taskLines(x.t, x.us, level, capacity, now));
    }
    if (finishedHidden) lines.push({ text: () => [`… ${finishedHidden} finished task(s) (${FINISHED_HINT})`] });
    const c = fitColumns(
      lines.flatMap((l) => ("row" in l ? [l.row] : [])),
      width,
    );
    // The fleet line only when the fleet is known (`task show` has none to show).
    const out = [...head, headerLine(c)];
    for (const l of lines) {
      if (!("row" in l)) {
        out.push(...l.text(c));
        continue;
      }
      // A note (why it waits) is never cut: in the detail column when it fits, else on a line of its own.
      if (l.note && l.note.length <= c.detail) out.push(renderRow(c, { ...l.row, detail: l.note }));
      else {
        out.push(renderRow(c, l.row));
        if (l.note) out.push(...pack(l.note.split(" "), width, "    ↳ ", "      ", false));
      }
    }
    return out;
  };

  const maxUnits = o.maxUnits ?? 15;
  if (o.height === undefined) return build({ finished: o.maxFinished ?? 10, finishedUnits: Infinity, units: maxUnits });
  // Collapse what matters least until the screen fits: finished tasks, finished units, then waiting units.
  const levels: Level[] = [
    { finished: Infinity, finishedUnits: Infinity, units: maxUnits },
    { finished: 0, finishedUnits: Infinity, units: maxUnits },
    { finished: 0, finishedUnits: 0, units: maxUnits },
    { finished: 0, finishedUnits: 0, units: 3 },
  ];
  let out: string[] = [];
  for (const level of levels) {
    out = build(level);
    if (out.length <= o.height) return out;
  }
  const keep = Math.max(1, o.height - 1);
  return [...out.slice(0, keep), `… ${out.length - keep} more line(s): a taller terminal, or \`optimus status --once\``];
}

/**
 * The status as text (what `status --once` and `task show` print). The older form — tasks, their
 * units and a unit limit — is kept for callers that have no fleet to show.
 */
export function renderStatus(
  tasks: TaskView[],
  units: Map<string, UnitRow[]>,
  o: StatusOptions & Omit<StatusInput, "tasks" | "units"> = {},
): string {
  return statusLines({ tasks, units, workers: o.workers, finishedNotSent: o.finishedNotSent, now: o.now }, o).join("\n") + "\n";
}
