import { STATE_LABELS, type UnitDetail } from "@optimus/shared";
import { httpClient, type GlobalOptions } from "./context.js";
import { printable } from "./printable.js";
import { resolveUnit } from "./refs.js";
import { ago, positiveInt, printJson } from "./table.js";

type ReadOptions = GlobalOptions & { json?: boolean };

const firstLine = (s: string) => s.split("\n").find((l) => l.trim()) ?? "";
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** The lines of `unit show`: everything a person looks at before deciding on a unit. */
export function renderUnit(d: UnitDetail, now = Date.now()): string {
  const u = d.unit;
  const rows: Array<[string, string]> = [
    ["unit", `${u.taskId}/${u.unitId} (${u.spec.role})`],
    ["task", `${d.task.taskId}: ${d.task.title} (${d.task.state})`],
    ["state", `${STATE_LABELS[u.state]}${u.reason ? ` — ${u.reason}` : ""} (${ago(u.updatedAt, now)} ago)`],
    ["attempt", `${u.attempt}${u.failures ? ` (${u.failures} failed)` : ""}`],
    ["worker", u.worker ?? "—"],
    ["goal", firstLine(u.spec.goal)],
  ];
  if (u.spec.files.length) rows.push(["files", u.spec.files.join(", ")]);
  if (u.progress) rows.push(["progress", `${u.progress.phase}${u.progress.step ? `: ${u.progress.step}` : ""}`]);
  if (d.summary !== undefined) rows.push(["summary", `${firstLine(d.summary)} (attempt ${d.submittedAttempt})`]);
  const ev = u.evaluation;
  if (ev) {
    rows.push([
      "change",
      `attempt ${ev.attempt}, commit ${ev.commit.slice(0, 10)}: ${ev.diff.files.length} file(s), +${ev.diff.added} −${ev.diff.removed} (${ev.diff.files.join(", ")})`,
    ]);
    rows.push([
      "evals",
      ev.evals.length
        ? `${ev.green ? "green" : "red"}: ` +
          ev.evals.map((e) => `${e.name} ${e.timedOut ? "timed out" : `exit ${e.exitCode}`} in ${seconds(e.durationMs)}`).join(", ")
        : "none configured",
    ]);
  }
  if (u.review)
    rows.push([
      "review",
      `${u.review.verdict.replace("_", " ")}, risk ${u.review.risk} (by ${u.review.reviewUnitId}${u.review.selfReview ? ", its own author: does not count" : ""}): ${firstLine(u.review.summary)}`,
    ]);
  for (const c of u.review?.comments ?? []) rows.push(["", `${c.path}:${c.line}: ${firstLine(c.body)}`]);
  if (u.risk) rows.push(["risk", `${u.risk.level}${u.risk.reasons.length ? `: ${u.risk.reasons.join("; ")}` : ""}`]);
  if (u.escalation)
    rows.push([
      "escalation",
      `${u.escalation.state} by ${u.escalation.requestedBy}${u.escalation.position ? ` (#${u.escalation.position} in the queue)` : ""}`,
    ]);
  const last = [...d.transcript].reverse().find((m) => m.role === "assistant");
  rows.push([
    "transcript",
    d.transcript.length
      ? `${d.transcript.length} message(s) on attempt ${d.transcriptAttempt}${last ? `; last answer: ${firstLine(last.content).slice(0, 200)}` : ""}`
      : "none kept",
  ]);
  if (d.costUsd) rows.push(["frontier", `$${d.costUsd.toFixed(4)}`]);
  rows.push(["actions", u.actions.length ? u.actions.join(", ") : "none (nothing can be done with it now)"]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const lines = rows.map(([k, v]) => `${k.padEnd(width)}  ${printable(v)}`);
  lines.push(
    "",
    "history:",
    ...d.history.slice(-10).map((h) => `  ${new Date(h.at).toISOString().slice(0, 19).replace("T", " ")}  ${printable(h.summary)}`),
  );
  return lines.join("\n") + "\n";
}

/** `optimus unit show <task/unit>`: state, attempt, worker, the change, evals, review, transcript. */
export async function unitShow(ref: string, o: ReadOptions): Promise<void> {
  const { client } = httpClient(o);
  const detail = await client.units.detail.query(await resolveUnit(client, ref));
  if (o.json) return printJson(detail);
  process.stdout.write(renderUnit(detail as UnitDetail));
}

const COLOURS: Array<[RegExp, string]> = [
  [/^(diff --git|index |--- |\+\+\+ |new file|deleted file|old mode|new mode|similarity|rename )/, "\x1b[1m"],
  [/^@@/, "\x1b[36m"],
  [/^\+/, "\x1b[32m"],
  [/^-/, "\x1b[31m"],
];

/**
 * `optimus unit diff <task/unit> [--attempt N]`: the change as a plain patch on stdout (what
 * `git apply` takes); coloured only on a terminal, where its text is also cleaned of escapes.
 */
export async function unitDiff(ref: string, o: ReadOptions & { attempt?: string }): Promise<void> {
  const attempt = o.attempt === undefined ? undefined : positiveInt("--attempt", o.attempt);
  const { client } = httpClient(o);
  const p = await client.units.patch.query({ ...(await resolveUnit(client, ref)), ...(attempt ? { attempt } : {}) });
  if (o.json) return printJson(p);
  console.error(
    printable(
      `${p.taskId}/${p.unitId} attempt ${p.attempt}${p.commit ? ` (commit ${p.commit.slice(0, 10)})` : " (as submitted, not evaluated yet)"}`,
    ),
  );
  if (!process.stdout.isTTY) {
    process.stdout.write(p.patch);
    return;
  }
  const colour = !process.env.NO_COLOR;
  const out = p.patch.split("\n").map((raw) => {
    const line = printable(raw, { multiline: true });
    const c = colour ? COLOURS.find(([re]) => re.test(line))?.[1] : undefined;
    return c ? `${c}${line}\x1b[0m` : line;
  });
  process.stdout.write(out.join("\n"));
}

/** `optimus unit logs <task/unit>`: the eval output, the worker's check output and its transcript. */
export async function unitLogs(ref: string, o: ReadOptions): Promise<void> {
  const { client } = httpClient(o);
  const d = (await client.units.detail.query(await resolveUnit(client, ref))) as UnitDetail;
  const ev = d.unit.evaluation;
  if (o.json)
    return printJson({
      taskId: d.unit.taskId,
      unitId: d.unit.unitId,
      evaluation: ev ? { attempt: ev.attempt, green: ev.green, evals: ev.evals } : null,
      evidence: d.evidence ?? null,
      submittedAttempt: d.submittedAttempt ?? null,
      transcriptAttempt: d.transcriptAttempt ?? null,
      transcript: d.transcript,
    });
  const out: string[] = [];
  const text = (s: string) => printable(s, { multiline: true }).replace(/\n?$/, "");
  if (ev) {
    out.push(`== evals of attempt ${ev.attempt}: ${ev.green ? "green" : "red"} ==`);
    for (const e of ev.evals)
      out.push(`-- ${e.name}: ${e.timedOut ? "timed out" : `exit ${e.exitCode}`} in ${seconds(e.durationMs)} --`, text(e.output));
    if (!ev.evals.length) out.push("(no eval suite configured)");
  } else out.push("== evals: none yet (no evaluated change) ==");
  out.push(d.evidence ? `== worker's check output, attempt ${d.submittedAttempt} ==` : "== worker's check output: none reported ==");
  if (d.evidence) out.push(text(d.evidence));
  out.push(
    d.transcript.length
      ? `== transcript of attempt ${d.transcriptAttempt} (${d.transcript.length} messages) ==`
      : "== transcript: none kept ==",
  );
  for (const m of d.transcript) out.push(`[${m.role}]`, text(m.content));
  console.log(out.join("\n"));
}

/** `optimus unit cancel <task/unit> [--reason]`: stop a unit (it can be retried). */
export async function unitCancel(ref: string, o: GlobalOptions & { reason?: string }): Promise<void> {
  const { client } = httpClient(o);
  const r = await resolveUnit(client, ref);
  const u = await client.units.cancel.mutate({ ...r, ...(o.reason ? { reason: o.reason } : {}) });
  console.error(printable(`unit ${r.taskId}/${r.unitId} is ${STATE_LABELS[u.state]}${u.reason ? `: ${u.reason}` : ""}`));
}

/** `optimus escalate <task/unit> [--reason]`: what the editor's Escalate does — the unit's next attempt goes to the frontier model. */
export async function escalate(ref: string, o: GlobalOptions & { reason?: string }): Promise<void> {
  const { client } = httpClient(o);
  const r = await resolveUnit(client, ref);
  const u = await client.units.escalate.mutate({ ...r, ...(o.reason ? { reason: o.reason } : {}) });
  console.error(printable(`unit ${r.taskId}/${r.unitId} escalated: ${u.escalation?.state ?? "requested"}; it is ${STATE_LABELS[u.state]}`));
}
