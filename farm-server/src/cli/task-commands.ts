import { readFileSync } from "node:fs";
import { formatDiagnostic, parseManifestYaml, STATE_LABELS } from "@optimus/shared";
import type { FarmClient } from "../client/farm-client.js";
import { httpClient, type GlobalOptions } from "./context.js";
import { CliError, EXIT } from "./errors.js";
import { printable } from "./printable.js";
import { resolveTask, resolveTaskId, resolveUnit } from "./refs.js";
import { renderStatus } from "./status/rows.js";
import { waitHint } from "./worker-hint.js";

/** `optimus send "<text>" [--files …]`: a task from a sentence. */
export async function send(
  text: string,
  o: GlobalOptions & { files?: string[]; priority?: string; title?: string; check?: string; target?: string },
): Promise<void> {
  if (!text.trim()) throw new CliError('say what to do: optimus send "<instruction>"', 2);
  const { client } = httpClient(o);
  const firstLine = text.trim().split("\n")[0]!;
  const title = o.title ?? (firstLine.length > 200 ? firstLine.slice(0, 197) + "…" : firstLine);
  const priority = o.priority === undefined ? undefined : Number(o.priority);
  if (priority !== undefined && !Number.isInteger(priority))
    throw new CliError(`--priority must be a whole number, got '${o.priority}'`, 2);
  const description = text.trim() === title ? undefined : text.trim();
  // With a check, the task is one codegen unit proven by that command (planning comes with the planner).
  const units = o.check ? [{ id: "u1", goal: text.trim(), files: o.files ?? [], check: o.check }] : undefined;
  // The target is the origin's default branch unless named: never the branch this checkout has out.
  const task = await client.tasks.create.mutate({
    title,
    description,
    files: o.files,
    priority,
    ...(o.target ? { targetBranch: o.target } : {}),
    ...(units ? { units } : {}),
  });
  console.log(printable(task.taskId));
  console.error(`task ${printable(task.taskId)} created with ${task.units.length} unit(s); watch it with \`optimus status\``);
  const hint = await waitHint(client, task.taskId);
  if (hint) console.error(hint);
}

/** `optimus task import <manifest>`: checks the file here (file, line, field) before the farm sees it. */
export async function importTask(file: string, o: GlobalOptions): Promise<void> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    throw new CliError(`cannot read the manifest ${file}`, EXIT.usage);
  }
  const parsed = parseManifestYaml(text, file);
  if (!parsed.ok) {
    for (const p of parsed.problems.slice(1)) console.error(printable(formatDiagnostic(p)));
    throw new CliError(
      `${formatDiagnostic(parsed.problems[0]!)}${parsed.problems.length > 1 ? ` (and ${parsed.problems.length - 1} more above)` : ""}`,
      EXIT.usage,
    );
  }
  const m = parsed.manifest;
  const { client } = httpClient(o);
  const task = await client.tasks.create.mutate({
    id: m.id,
    title: m.title,
    description: m.description,
    priority: m.priority,
    targetBranch: m.targetBranch,
    units: m.units.map(({ status: _s, ...u }) => u),
  });
  console.log(printable(task.taskId));
  console.error(`task ${printable(task.taskId)} imported with ${task.units.length} unit(s)`);
}

export async function scanTasks(o: GlobalOptions): Promise<void> {
  const { client } = httpClient(o);
  const r = await client.tasks.importFiles.mutate();
  console.log(`imported ${r.imported.length}, rebuilt ${r.restored.length}, rejected ${r.rejected.length}`);
  // One warning per skipped manifest; its file and the problem come from the repository, so no escapes.
  for (const x of r.rejected) console.error(`skipped ${printable(x.problems[0] ?? x.file)}`);
  if (r.rejected.length) process.exitCode = 1;
}

/** `optimus task show <id>`: a task and every unit, live or archived (finished tasks leave the live state after their retention). */
export async function showTask(ref: string, o: GlobalOptions & { json?: boolean }): Promise<void> {
  const { client } = httpClient(o);
  const r = await client.tasks.get.query({ taskId: (await resolveTask(client, ref)).taskId });
  if (o.json) {
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  process.stdout.write(
    renderStatus([r.task], new Map([[r.task.taskId, r.units]]), {
      maxUnits: Number.POSITIVE_INFINITY,
      width: process.stdout.isTTY ? process.stdout.columns : 80,
    }),
  );
  if (r.archived) console.log("archived: finished, kept in the farm's journal and no longer in its live state");
}

export async function cancelTask(ref: string, o: GlobalOptions & { reason?: string }): Promise<void> {
  const { client } = httpClient(o);
  const t = await client.tasks.cancel.mutate({ taskId: await resolveTaskId(client, ref), reason: o.reason });
  console.error(printable(`task ${t.taskId} is ${t.state}`));
}

export async function retryUnit(ref: string, o: GlobalOptions): Promise<void> {
  const { client } = httpClient(o);
  const { taskId, unitId } = await resolveUnit(client, ref);
  const u = await client.units.retry.mutate({ taskId, unitId });
  console.error(printable(`unit ${taskId}/${unitId} is ${u.state} again`));
}

/** `--attempt N` of a decision: a script pins the attempt it reviewed. */
type DecisionOptions = GlobalOptions & { attempt?: string };

/**
 * The version a decision binds to: the change as the farm has it now (its attempt and head commit),
 * or, with `--attempt N`, that attempt only — the farm refuses the decision if the change moved on.
 * Says on one line which version it decides on.
 */
async function decisionVersion(
  client: FarmClient,
  ref: string,
  o: DecisionOptions,
  verb: string,
): Promise<{ taskId: string; unitId: string; attempt: number; head: string }> {
  const { taskId, unitId } = await resolveUnit(client, ref);
  ref = `${taskId}/${unitId}`;
  let pinned: number | undefined;
  if (o.attempt !== undefined) {
    if (!/^\d+$/.test(o.attempt) || Number(o.attempt) < 1)
      throw new CliError(`--attempt must be a whole number ≥ 1, got '${o.attempt}'`, 2);
    pinned = Number(o.attempt);
  }
  const change = await client.reviews.change.query({ taskId, unitId });
  // With a pinned attempt, the farm's current head is only sent when it is that attempt's commit;
  // otherwise the decision names the attempt the script saw and the farm says which one is current.
  const attempt = pinned ?? change.attempt;
  const head = change.head;
  console.error(printable(`${verb} ${ref} attempt ${attempt}${attempt === change.attempt ? ` (commit ${head.slice(0, 10)})` : ""}`));
  return { taskId, unitId, attempt, head };
}

/** `optimus approve <task>/<unit>` merges a held change; `optimus approve <task>` a held task merge. */
export async function approve(ref: string, o: DecisionOptions): Promise<void> {
  const { client } = httpClient(o);
  if (!ref.includes("/")) {
    ref = await resolveTaskId(client, ref);
    const t = await client.reviews.approveTaskMerge.mutate({ taskId: ref });
    console.error(
      printable(
        t.merge?.commit
          ? `task ${ref} merged into ${t.merge.into} (${t.merge.commit.slice(0, 10)})`
          : `task ${ref}: ${t.merge?.heldReason ?? t.state}`,
      ),
    );
    return;
  }
  const v = await decisionVersion(client, ref, o, "approving");
  ref = `${v.taskId}/${v.unitId}`;
  const u = await client.reviews.approve.mutate(v);
  console.error(
    printable(
      u.state === "merged"
        ? `unit ${ref} approved and merged (${u.mergedCommit?.slice(0, 10)})`
        : `unit ${ref} approved; it is ${u.state}${u.reason ? `: ${u.reason}` : ""}`,
    ),
  );
}

export async function reject(ref: string, o: DecisionOptions & { reason: string }): Promise<void> {
  const { client } = httpClient(o);
  const v = await decisionVersion(client, ref, o, "rejecting");
  ref = `${v.taskId}/${v.unitId}`;
  const u = await client.reviews.reject.mutate({ ...v, reason: o.reason });
  console.error(printable(`unit ${ref} rejected; it is ${STATE_LABELS[u.state]}`));
}

export async function requestChanges(ref: string, o: DecisionOptions & { comment: string[] }): Promise<void> {
  const { client } = httpClient(o);
  const comments = o.comment.map((c) => {
    const m = /^([^:\s]+):(\d+):\s*(.+)$/s.exec(c);
    return m ? { path: m[1]!, line: Number(m[2]), body: m[3]! } : { body: c };
  });
  const v = await decisionVersion(client, ref, o, "requesting changes on");
  ref = `${v.taskId}/${v.unitId}`;
  const u = await client.reviews.requestChanges.mutate({ ...v, comments });
  // The next attempt may already be running when the answer comes: named from the decided one.
  console.error(printable(`changes requested on ${ref}; attempt ${v.attempt + 1} gets your comments (it is ${STATE_LABELS[u.state]} now)`));
}
