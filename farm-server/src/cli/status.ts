import { STATE_LABELS, type TaskView, type UnitView } from "@optimus/shared";
import { createFarmClient } from "../client/farm-client.js";
import { connection, httpClient, type GlobalOptions } from "./context.js";
import { printable } from "./printable.js";

type UnitRow = UnitView & { progress?: { phase: string; step?: string } };

/** A table cell: text from the farm, without escapes or line breaks, cut to its column. */
const pad = (raw: string, n: number) => {
  const s = printable(raw);
  return s.length > n ? s.slice(0, n - 1) + "…" : s.padEnd(n);
};
const ago = (ms: number) => {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m` : `${Math.floor(s / 3600)}h`;
};

/** The table `optimus status` prints: each task, then its units. */
export function renderStatus(tasks: TaskView[], units: Map<string, UnitRow[]>, maxUnits = 15): string {
  if (tasks.length === 0) return 'no tasks yet: send one with `optimus send "<instruction>"`\n';
  const lines: string[] = [
    `${pad("TASK / UNIT", 44)} ${pad("STATE", 18)} ${pad("ATTEMPT", 8)} ${pad("WORKER", 14)} ${pad("AGE", 5)} DETAIL`,
  ];
  for (const t of tasks) {
    const done = (t.counts.completed ?? 0) + (t.counts.merged ?? 0);
    lines.push(
      `${pad(t.taskId, 44)} ${pad(t.state, 18)} ${pad("", 8)} ${pad("", 14)} ${pad(ago(t.createdAt), 5)} ${done}/${t.units.length} done · ${printable(t.title)}`,
    );
    // The planner's plan was refused: the task runs as one unit, and the user sees why.
    if (t.planFallback) lines.push(`  ↳ plan not used, one unit instead: ${printable(t.planFallback)}`);
    // Where the change is: its pull request, its merge, or why it waits and what to do.
    if (t.pullRequest) lines.push(`  ↳ pull request #${t.pullRequest.number} (${t.pullRequest.state}): ${printable(t.pullRequest.url)}`);
    if (t.merge?.commit) lines.push(`  ↳ merged into ${printable(t.merge.into)} on the origin as ${t.merge.commit.slice(0, 10)}`);
    else if (t.merge?.heldReason) {
      lines.push(`  ↳ merge into ${printable(t.merge.into)} held: ${printable(t.merge.heldReason)}`);
      lines.push(
        t.merge.conflicts?.length
          ? `    resolve the conflicts on optimus/${printable(t.taskId)} (push it), then \`optimus approve ${printable(t.taskId)}\`; or cancel and send the task again`
          : `    when the cause is fixed: \`optimus approve ${printable(t.taskId)}\` tries the merge again`,
      );
    }
    const us = units.get(t.taskId) ?? [];
    for (const u of us.slice(0, maxUnits)) {
      const detail = u.progress
        ? `${u.progress.phase}${u.progress.step ? `: ${u.progress.step}` : ""}`
        : (u.reason ?? u.spec.goal.split("\n")[0]!);
      lines.push(
        `  ${pad(u.unitId, 42)} ${pad(STATE_LABELS[u.state], 18)} ${pad(String(u.attempt), 8)} ${pad(u.worker ?? "", 14)} ${pad(ago(u.updatedAt), 5)} ${printable(detail)}`,
      );
    }
    if (us.length > maxUnits) lines.push(`  … ${us.length - maxUnits} more unit(s)`);
  }
  return lines.join("\n") + "\n";
}

/** `optimus status`: a live table on a terminal (redrawn as events arrive), one print otherwise. */
export async function status(o: GlobalOptions & { once?: boolean; task?: string }): Promise<void> {
  const { client } = httpClient(o);
  const load = async () => {
    const all = await client.tasks.list.query();
    const tasks = o.task ? all.filter((t) => t.taskId === o.task) : all;
    const units = new Map<string, UnitRow[]>();
    for (const t of tasks.slice(-20)) units.set(t.taskId, (await client.units.list.query({ taskId: t.taskId, limit: 200 })) as UnitRow[]);
    return renderStatus(tasks.slice(-20), units);
  };
  const live = !o.once && process.stdout.isTTY;
  if (!live) {
    process.stdout.write(await load());
    return;
  }
  const c = connection(o);
  const ws = createFarmClient({ url: c.url, token: c.token, transport: "ws" });
  let timer: NodeJS.Timeout | null = null;
  const redraw = () => {
    timer ??= setTimeout(async () => {
      timer = null;
      try {
        const text = await load();
        process.stdout.write(`\x1b[H\x1b[2J${text}\n(live — Ctrl-C to quit)\n`);
      } catch {
        process.stdout.write(`\x1b[H\x1b[2Jfarm unreachable at ${c.url}; retrying…\n`);
      }
    }, 150);
  };
  redraw();
  await new Promise<void>((resolve) => {
    const sub = ws.client.events.stream.subscribe({}, { onData: redraw, onError: () => redraw() });
    const tick = setInterval(redraw, 1_000);
    process.once("SIGINT", () => {
      sub.unsubscribe();
      clearInterval(tick);
      ws.close();
      resolve();
    });
  });
}
