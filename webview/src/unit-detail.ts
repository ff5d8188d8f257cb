/**
 * The unit detail page: everything the farm knows about one unit, and a button for each action the
 * host says makes sense now. It renders what the host sends (`unitDetail`), posts the user's intent
 * back (`action`), and keeps the last model in the webview state so a hidden panel comes back as it was.
 */
import "@vscode-elements/elements/dist/vscode-badge/index.js";
import "@vscode-elements/elements/dist/vscode-button/index.js";
import "@vscode-elements/elements/dist/vscode-collapsible/index.js";
import "@vscode-elements/elements/dist/vscode-progress-ring/index.js";
import "@vscode-elements/elements/dist/vscode-tab-header/index.js";
import "@vscode-elements/elements/dist/vscode-tab-panel/index.js";
import "@vscode-elements/elements/dist/vscode-tabs/index.js";
import { html, nothing, type TemplateResult } from "lit";
import { empty, errorBanner, fmtDuration, fmtInt, fmtTime, fmtUsd, connect, mountPoint, safeRender, stateTone } from "./page.js";
import type { EvalRow, HostMessage, UnitAction, UnitDetailModel } from "./protocol.js";

interface State {
  model?: UnitDetailModel;
  /** selected tab, so a restored panel opens where the user left it */
  tab?: number;
  /** names of evals whose output is expanded */
  openEvals?: string[];
}

const ACTION_LABELS: Record<UnitAction, string> = {
  approve: "Approve",
  reject: "Reject",
  requestChanges: "Request changes",
  escalate: "Escalate",
  retry: "Retry",
  cancel: "Cancel",
  openDiff: "Open diff",
};
/** Actions drawn as primary buttons; the rest are secondary. */
const PRIMARY: UnitAction[] = ["approve", "retry"];
const ACTIVE_STATES = new Set(["leased", "submitted", "evaluating", "reviewing"]);

let state: State = {};
let error: string | undefined;

const api = connect<State>(onMessage);
const root = mountPoint();

function onMessage(message: HostMessage): void {
  if (message.type === "unitDetail") {
    const sameUnit = state.model?.taskId === message.model.taskId && state.model?.unitId === message.model.unitId;
    state = sameUnit ? { ...state, model: message.model } : { model: message.model, tab: state.tab ?? 0 };
    error = undefined;
    save();
  } else if (message.type === "error") {
    error = message.message;
  } else {
    return;
  }
  draw();
}

function save(): void {
  api.setState(state);
}

function draw(): void {
  safeRender(view, root);
}

function view(): TemplateResult {
  const banner = errorBanner(error, () => {
    error = undefined;
    draw();
  });
  const m = state.model;
  if (!m) {
    return html`${banner}
      <div class="loading"><vscode-progress-ring aria-label="Loading unit"></vscode-progress-ring><span>Waiting for the unit…</span></div>`;
  }
  const evals = list(m.evals);
  const transcript = list(m.transcript);
  const history = list(m.history);
  const escalations = list(m.escalations);
  return html`${banner} ${header(m)}
    <vscode-tabs class="tabs" selected-index=${clampTab(state.tab)} @vsc-tabs-select=${onTab}>
      <vscode-tab-header slot="header" data-tab="overview">Overview</vscode-tab-header>
      <vscode-tab-panel data-tab="overview">${overview(m)}</vscode-tab-panel>
      <vscode-tab-header slot="header" data-tab="evals">Evals ${count(evals.length)}</vscode-tab-header>
      <vscode-tab-panel data-tab="evals">${evalsSection(evals)} ${evidenceSection(m.evidence)}</vscode-tab-panel>
      <vscode-tab-header slot="header" data-tab="transcript">Transcript ${count(transcript.length)}</vscode-tab-header>
      <vscode-tab-panel data-tab="transcript">${transcriptSection(transcript)}</vscode-tab-panel>
      <vscode-tab-header slot="header" data-tab="history">History ${count(history.length + escalations.length)}</vscode-tab-header>
      <vscode-tab-panel data-tab="history">${escalationSection(escalations)} ${historySection(history)}</vscode-tab-panel>
    </vscode-tabs>`;
}

const TAB_COUNT = 4;
const clampTab = (tab: number | undefined): number => (tab !== undefined && Number.isInteger(tab) && tab >= 0 && tab < TAB_COUNT ? tab : 0);

function onTab(event: CustomEvent<{ selectedIndex: number }>): void {
  state = { ...state, tab: event.detail.selectedIndex };
  save();
}

const count = (n: number): TemplateResult | typeof nothing =>
  n > 0 ? html`<vscode-badge slot="content-after" variant="counter">${n}</vscode-badge>` : nothing;

/** Model arrays come from the host; tolerate a missing one rather than blank the page. */
function list<T>(xs: T[] | undefined): T[] {
  return Array.isArray(xs) ? xs : [];
}

function header(m: UnitDetailModel): TemplateResult {
  const actions = list(m.actions).filter((a): a is UnitAction => Object.hasOwn(ACTION_LABELS, a));
  return html`<header class="head">
    <div class="crumbs"><span class="task-id">${m.taskId}</span><span class="sep">/</span><span class="unit-id">${m.unitId}</span></div>
    <h1 class="title">${m.title}</h1>
    <div class="meta">
      <vscode-badge class=${`state tone-${m.live === false ? "neutral" : stateTone(m.state)}`} data-state=${m.state}
        >${m.live === false ? "last known: " : ""}${m.stateLabel ?? m.state.replaceAll("_", " ")}</vscode-badge
      >
      ${ACTIVE_STATES.has(m.state) && m.live !== false ? html`<vscode-progress-ring class="busy" aria-label="Working"></vscode-progress-ring>` : nothing}
      <span class="fact"><span class="label">Worker</span> <span class="worker">${m.worker ?? "unassigned"}</span></span>
      <span class="fact"
        ><span class="label">Attempt</span>
        <span class="attempt">${m.attempt}</span
        >${m.change && m.change.attempt !== m.attempt ? html` <span class="hint">(change shown: attempt ${m.change.attempt})</span>` : nothing}</span
      >
      <span class="fact"><span class="label">Role</span> <span class="role">${m.role}</span></span>
    </div>
    ${
      actions.length
        ? html`<div class="actions" role="toolbar" aria-label="Unit actions">
            ${actions.map(
              (a) =>
                html`<vscode-button ?secondary=${!PRIMARY.includes(a)} data-action=${a} @click=${() => act(m, a)}
                  >${ACTION_LABELS[a]}</vscode-button
                >`,
            )}
          </div>`
        : nothing
    }
  </header>`;
}

function act(m: UnitDetailModel, action: UnitAction): void {
  // The decision names the change this page showed, so the farm can refuse it if a newer one arrived.
  api.postMessage({ type: "action", action, taskId: m.taskId, unitId: m.unitId, attempt: m.change?.attempt, head: m.change?.head });
}

function section(title: string, body: unknown, cls = ""): TemplateResult {
  return html`<section class=${`card ${cls}`}>
    <h2>${title}</h2>
    ${body}
  </section>`;
}

function overview(m: UnitDetailModel): TemplateResult {
  const files = list(m.files);
  return html`<div class="grid">
    ${section("Instruction", m.instruction ? html`<pre class="text instruction">${m.instruction}</pre>` : empty("No instruction"), "wide")}
    ${section(
      "Files",
      files.length
        ? html`<ul class="files">
            ${files.map((f) => html`<li><code>${f}</code></li>`)}
          </ul>`
        : empty("No files named"),
    )}
    ${section("Check", m.check ? html`<pre class="text check">${m.check}</pre>` : empty("No check command"))}
    ${section("Progress", progress(m))} ${section("Signals", signals(m))}
    ${section(
      "Cost",
      html`<p class="big cost">${fmtUsd(m.costUsd)}</p>
        <p class="hint">${m.costUsd > 0 ? "spent at the frontier after escalation" : "never escalated"}</p>`,
    )}
    ${section("Risk", risk(m))} ${section("Review", review(m), "wide")}
  </div>`;
}

function dl(rows: [string, unknown][]): TemplateResult {
  return html`<dl class="facts">
    ${rows.map(
      ([k, v]) =>
        html`<dt>${k}</dt>
          <dd>${v}</dd>`,
    )}
  </dl>`;
}

function progress(m: UnitDetailModel): TemplateResult {
  const p = m.progress;
  if (!p) return empty("No progress reported");
  return dl([
    ["Phase", p.phase],
    ["Step", p.step ?? "—"],
    ["Tokens", fmtInt(p.tokens)],
    ["Elapsed", fmtDuration(p.elapsedMs)],
  ]);
}

function signals(m: UnitDetailModel): TemplateResult {
  const s = m.signals;
  if (!s) return empty("No signals yet");
  return dl([
    ["Model", s.model ?? "—"],
    ["Tokens", fmtInt(s.tokens)],
    ["Lowest confidence", s.confidence === undefined ? "—" : fmtConfidence(s.confidence)],
    ["Checks failed", fmtInt(s.checksFailed)],
    ["Iterations", fmtInt(s.iterations)],
  ]);
}

/** Confidence arrives as a probability (0–1); show it as a percentage. */
function fmtConfidence(c: number): string {
  if (!Number.isFinite(c)) return "—";
  return c <= 1 ? `${(c * 100).toFixed(0)}%` : c.toFixed(2);
}

function riskTone(level: string): string {
  const l = level.toLowerCase();
  return l === "high" || l === "critical" ? "bad" : l === "medium" ? "warn" : l === "low" ? "good" : "neutral";
}

function risk(m: UnitDetailModel): TemplateResult {
  const r = m.risk;
  if (!r) return empty("No risk assessment");
  const reasons = list(r.reasons);
  return html`<p><vscode-badge class=${`risk tone-${riskTone(r.level)}`}>${r.level}</vscode-badge></p>
    ${
      reasons.length
        ? html`<ul class="reasons">
            ${reasons.map((x) => html`<li>${x}</li>`)}
          </ul>`
        : empty("No reasons given")
    }`;
}

function verdictTone(verdict: string): string {
  const v = verdict.toLowerCase();
  return v.startsWith("approve") || v === "accept" || v === "pass" ? "good" : v.startsWith("reject") || v === "fail" ? "bad" : "warn";
}

function review(m: UnitDetailModel): TemplateResult {
  const r = m.review;
  if (!r) return empty("Not reviewed yet");
  const comments = list(r.comments);
  return html`<p class="verdict-line">
      <vscode-badge class=${`verdict tone-${verdictTone(r.verdict)}`}>${r.verdict}</vscode-badge>
      <span class="label">risk</span> <span class="review-risk">${r.risk}</span>
    </p>
    ${r.summary ? html`<p class="summary">${r.summary}</p>` : nothing}
    ${
      comments.length
        ? html`<ul class="comments">
            ${comments.map(
              (c) =>
                html`<li class="comment">
                  ${c.path ? html`<code class="where">${c.path}${c.line !== undefined ? `:${c.line}` : ""}</code>` : nothing}
                  <div class="body">${c.body}</div>
                </li>`,
            )}
          </ul>`
        : empty("No comments")
    }`;
}

function exitText(e: EvalRow): string {
  if (e.timedOut) return "timed out";
  return e.exitCode === null ? "—" : String(e.exitCode);
}

function evalsSection(evals: EvalRow[]): TemplateResult {
  if (!evals.length) return section("Evals", empty("No evals ran"));
  const open = new Set(state.openEvals ?? []);
  const toggle = (name: string) => {
    const next = new Set(open);
    if (next.has(name)) next.delete(name);
    else next.add(name);
    state = { ...state, openEvals: [...next] };
    save();
    draw();
  };
  // A native table: each eval's output opens in a row spanning the table (vscode-table has no colspan).
  return section(
    "Evals",
    html`<div class="table-scroll">
      <table class="grid-table evals">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Exit code</th>
            <th scope="col">Duration</th>
            <th scope="col"><span class="visually-hidden">Output</span></th>
          </tr>
        </thead>
        <tbody>
          ${evals.map((e, i) => {
            const ok = !e.timedOut && e.exitCode === 0;
            const isOpen = open.has(e.name);
            const id = `eval-output-${i}`;
            return html`<tr class=${`eval ${ok ? "pass" : "fail"}`}>
                <td class="name">${e.name}</td>
                <td class=${`exit tone-text-${ok ? "good" : "bad"}`}>${exitText(e)}</td>
                <td class="duration">${fmtDuration(e.durationMs)}</td>
                <td class="toggle">
                  <vscode-button
                    secondary
                    class="output-toggle"
                    aria-expanded=${isOpen ? "true" : "false"}
                    aria-controls=${id}
                    @click=${() => toggle(e.name)}
                    >${isOpen ? "Hide output" : "Show output"}</vscode-button
                  >
                </td>
              </tr>
              ${
                isOpen
                  ? html`<tr class="eval-output-row" id=${id}>
                      <td colspan="4">${e.output ? html`<pre class="output">${e.output}</pre>` : empty("No output")}</td>
                    </tr>`
                  : nothing
              }`;
          })}
        </tbody>
      </table>
    </div>`,
  );
}

function evidenceSection(evidence: string | undefined): TemplateResult {
  return section("Evidence", evidence ? html`<pre class="output evidence">${evidence}</pre>` : empty("No check output"));
}

function transcriptSection(steps: UnitDetailModel["transcript"]): TemplateResult {
  if (!steps.length) return section("Transcript", empty("No transcript yet"));
  return section(
    "Transcript",
    html`<ol class="transcript">
      ${steps.map(
        (s, i) =>
          html`<li class="step">
            <vscode-collapsible heading=${`${i + 1}. ${s.title}`} description=${s.at !== undefined ? fmtTime(s.at) : ""}>
              <vscode-badge slot="decorations" class="kind">${s.kind}</vscode-badge>
              ${s.text ? html`<pre class="text step-text">${s.text}</pre>` : empty("No text")}
            </vscode-collapsible>
          </li>`,
      )}
    </ol>`,
  );
}

/**
 * A native table styled like vscode-table: columns size to their content and long text wraps, which
 * vscode-table (fixed percentage columns, measured once while its tab may still be hidden) can't do.
 */
function simpleTable(cls: string, columns: string[], rows: unknown[][]): TemplateResult {
  return html`<div class="table-scroll">
    <table class=${`grid-table ${cls}`}>
      <thead>
        <tr>
          ${columns.map((c) => html`<th scope="col">${c}</th>`)}
        </tr>
      </thead>
      <tbody>
        ${rows.map(
          (r) =>
            html`<tr>
              ${r.map((cell) => html`<td>${cell}</td>`)}
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function escalationSection(rows: UnitDetailModel["escalations"]): TemplateResult {
  return section(
    "Escalations",
    rows.length
      ? simpleTable(
          "escalations",
          ["When", "State", "By", "Reason"],
          rows.map((e) => [fmtTime(e.at), e.state, e.by, e.reason ?? "—"]),
        )
      : empty("No escalations"),
  );
}

function historySection(rows: UnitDetailModel["history"]): TemplateResult {
  return section(
    "Journal",
    rows.length
      ? simpleTable(
          "history",
          ["#", "When", "Event", "Actor", "Summary"],
          rows.map((h) => [String(h.seq), fmtTime(h.at), h.type, h.actor, h.summary]),
        )
      : empty("No journal entries"),
  );
}

// Start last, once every const above is initialised: a restored state renders synchronously here.
const restored = api.getState();
if (restored && typeof restored === "object") state = restored;
draw();
api.postMessage({ type: "ready" });
