/**
 * The farm dashboard: connection, spend against the daily budget, the workers and their load, and
 * units per state. Charts are plain SVG (no chart library) coloured by theme variables through CSS
 * classes. It renders what the host sends (`dashboard`) and posts `refresh` when asked.
 */
import "@vscode-elements/elements/dist/vscode-badge/index.js";
import "@vscode-elements/elements/dist/vscode-button/index.js";
import "@vscode-elements/elements/dist/vscode-progress-ring/index.js";
import { html, nothing, svg, type TemplateResult } from "lit";
import { connect, empty, errorBanner, fmtAgo, fmtInt, fmtTime, fmtUsd, meter, mountPoint, safeRender, stateTone } from "./page.js";
import type { DashboardModel, HostMessage } from "./protocol.js";

interface State {
  model?: DashboardModel;
}

/** Unit states in lifecycle order (shared/src/unit.ts); states the page doesn't know follow, sorted. */
const STATE_ORDER = [
  "planned",
  "ready",
  "leased",
  "submitted",
  "evaluating",
  "reviewing",
  "awaiting_approval",
  "completed",
  "merged",
  "dead",
  "cancelled",
];

let state: State = {};
let error: string | undefined;
/** true between a Refresh click and the next model, to show the request is in flight */
let refreshing = false;

const api = connect<State>(onMessage);
const root = mountPoint();

function onMessage(message: HostMessage): void {
  if (message.type === "dashboard") {
    state = { model: message.model };
    error = undefined;
    refreshing = false;
    api.setState(state);
  } else if (message.type === "error") {
    error = message.message;
    refreshing = false;
  } else {
    return;
  }
  draw();
}

function refresh(): void {
  refreshing = true;
  api.postMessage({ type: "refresh" });
  draw();
}

function draw(): void {
  safeRender(view, root);
}

function list<T>(xs: T[] | undefined): T[] {
  return Array.isArray(xs) ? xs : [];
}

function view(): TemplateResult {
  const banner = errorBanner(error, () => {
    error = undefined;
    draw();
  });
  const m = state.model;
  const toolbar = html`<div class="toolbar">
    ${refreshing ? html`<vscode-progress-ring class="busy" aria-label="Refreshing"></vscode-progress-ring>` : nothing}
    <vscode-button class="refresh" @click=${refresh}>Refresh</vscode-button>
  </div>`;
  if (!m) {
    return html`${banner}
      <header class="head">
        <h1 class="title">Optimus farm</h1>
        ${toolbar}
      </header>
      <div class="loading">
        <vscode-progress-ring aria-label="Loading dashboard"></vscode-progress-ring><span>Waiting for the farm…</span>
      </div>`;
  }
  return html`${banner}
    <header class="head">
      <h1 class="title">Optimus farm</h1>
      ${connection(m)} ${toolbar}
    </header>
    <div class="grid">
      ${card("Today's spend", todaySpend(m))} ${card("Connected workers", workerSummary(m))} ${card("Fleet load now", loadNow(m))}
      ${card("Spend per day", spendChart(m), "wide")} ${card("Fleet load over time", loadChart(m), "wide")}
      ${card("Workers", workerTable(m), "wide workers-card")} ${card("Units per state", unitCounts(m), "wide")}
    </div>`;
}

function card(title: string, body: unknown, cls = ""): TemplateResult {
  return html`<section class=${`card ${cls}`}>
    <h2>${title}</h2>
    ${body}
  </section>`;
}

function connection(m: DashboardModel): TemplateResult {
  const tone = m.connection === "connected" ? "good" : m.connection === "connecting" ? "warn" : "bad";
  return html`<span class="connection">
    <vscode-badge class=${`conn tone-${tone}`} data-connection=${m.connection}>${m.connection}</vscode-badge>
    ${m.farmUrl ? html`<code class="farm-url">${m.farmUrl}</code>` : nothing}
    ${m.connection !== "connected" ? html`<span class="hint stale-note">Last known state: the farm is not connected.</span>` : nothing}
  </span>`;
}

function todaySpend(m: DashboardModel): TemplateResult {
  const budget = m.dailyBudgetUsd;
  if (budget === undefined || !(budget > 0)) {
    return html`<p class="big today">${fmtUsd(m.todayUsd)}</p>
      <p class="hint">No daily budget configured</p>`;
  }
  const pct = Math.round((m.todayUsd / budget) * 100);
  return html`<p class="big today">${fmtUsd(m.todayUsd)} <span class="of">of ${fmtUsd(budget)}</span></p>
    ${meter(m.todayUsd, budget, "Today's spend against the daily budget")}
    <p class=${`hint ${m.todayUsd > budget ? "tone-text-bad" : ""}`}>
      ${pct}% of the daily budget${m.todayUsd > budget ? " — over budget" : ""}
    </p>`;
}

function workerSummary(m: DashboardModel): TemplateResult {
  const workers = list(m.workers);
  const connected = workers.filter((w) => w.connected).length;
  return html`<p class="big">${connected} <span class="of">of ${workers.length}</span></p>`;
}

function loadNow(m: DashboardModel): TemplateResult {
  const workers = list(m.workers).filter((w) => w.connected);
  const active = workers.reduce((n, w) => n + w.active, 0);
  const capacity = workers.reduce((n, w) => n + w.capacity, 0);
  if (capacity === 0) return empty("No capacity connected");
  return html`<p class="big">${active} <span class="of">of ${capacity} leases</span></p>
    ${meter(active, capacity, "Fleet load", "warn")}`;
}

// Chart geometry, in SVG user units. The width follows the page's (see the ResizeObserver at the
// bottom), so one unit is about one CSS pixel and labels keep their size in a narrow panel.
let W = 640;
const H = 200;
const PAD = { left: 56, right: 12, top: 12, bottom: 28 };
let plotW = W - PAD.left - PAD.right;
const plotH = H - PAD.top - PAD.bottom;

/** Card padding and border around a chart, in CSS px (dashboard.css). */
const CARD_INSET = 26;

function fitCharts(): boolean {
  const width = root.clientWidth;
  if (width === 0) return false; // hidden: keep the last size
  const w = Math.max(280, Math.round(width - CARD_INSET));
  if (Math.abs(w - W) < 8) return false;
  W = w;
  plotW = W - PAD.left - PAD.right;
  return true;
}

/** A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  for (const f of [1, 2, 5, 10]) if (f * p >= max) return f * p;
  return 10 * p;
}

function yAxis(top: number, fmt: (v: number) => string) {
  const ticks = [0, top / 2, top];
  return ticks.map((v) => {
    const y = PAD.top + plotH - (v / top) * plotH;
    return svg`<line class="grid-line" x1=${PAD.left} x2=${W - PAD.right} y1=${y} y2=${y}></line>
      <text class="axis-label" x=${PAD.left - 6} y=${y + 4} text-anchor="end">${fmt(v)}</text>`;
  });
}

function spendChart(m: DashboardModel): TemplateResult {
  const days = list(m.spend);
  if (!days.length) return empty("No spend recorded");
  const budget = m.dailyBudgetUsd !== undefined && m.dailyBudgetUsd > 0 ? m.dailyBudgetUsd : undefined;
  const top = niceMax(Math.max(...days.map((d) => d.usd), budget ?? 0) * 1.05);
  const slot = plotW / days.length;
  const barW = Math.max(2, Math.min(48, slot * 0.7));
  // Label only as many days as fit (about 48 units per label), so the labels don't overlap.
  const every = Math.ceil(days.length / Math.max(1, Math.floor(plotW / 48)));
  const y = (v: number) => PAD.top + plotH - (Math.max(0, v) / top) * plotH;
  const budgetY = budget !== undefined ? y(budget) : undefined;
  return html`<svg
      class="chart spend-chart"
      viewBox=${`0 0 ${W} ${H}`}
      role="img"
      aria-label=${`Spend per day over ${days.length} day(s)${budget !== undefined ? `, daily budget ${fmtUsd(budget)}` : ""}`}
    >
      ${yAxis(top, (v) => fmtUsd(v))}
      ${days.map((d, i) => {
        const x = PAD.left + i * slot + (slot - barW) / 2;
        const barTop = y(d.usd);
        const over = budget !== undefined && d.usd > budget;
        return svg`<g class="day">
          <rect class=${`bar${over ? " over" : ""}`} data-day=${d.day} x=${x.toFixed(1)} y=${barTop.toFixed(1)} width=${barW.toFixed(1)} height=${Math.max(0, PAD.top + plotH - barTop).toFixed(1)}>
            <title>${`${d.day}: ${fmtUsd(d.usd)}${over ? " (over budget)" : ""}`}</title>
          </rect>
          ${i % every === 0 || i === days.length - 1 ? svg`<text class="axis-label" x=${(x + barW / 2).toFixed(1)} y=${H - 8} text-anchor="middle">${shortDay(d.day)}</text>` : nothing}
        </g>`;
      })}
      ${
        budgetY !== undefined
          ? svg`<line class="budget" x1=${PAD.left} x2=${W - PAD.right} y1=${budgetY.toFixed(1)} y2=${budgetY.toFixed(1)}><title>${`Daily budget ${fmtUsd(budget ?? 0)}`}</title></line>
          <text class="budget-label" x=${W - PAD.right} y=${(budgetY - 4).toFixed(1)} text-anchor="end">${`budget ${fmtUsd(budget ?? 0)}`}</text>`
          : nothing
      }
    </svg>
    <p class="legend">
      <span class="swatch bar-swatch"></span> spend
      ${budget !== undefined ? html`<span class="swatch over-swatch"></span> over budget <span class="swatch budget-swatch"></span> daily budget` : nothing}
    </p>`;
}

/** "2026-11-25" → "11-25"; anything else is shown as given. */
function shortDay(day: string): string {
  const m = /^\d{4}-(\d{2}-\d{2})$/.exec(day);
  return m?.[1] ?? day;
}

function loadChart(m: DashboardModel): TemplateResult {
  const samples = list(m.load).filter((s) => Number.isFinite(s.at));
  if (!samples.length) return empty("No load samples yet");
  const top = niceMax(Math.max(1, ...samples.map((s) => Math.max(s.capacity, s.active))));
  const t0 = samples[0]!.at;
  const t1 = samples[samples.length - 1]!.at;
  const span = t1 - t0 || 1;
  const x = (at: number) => PAD.left + (samples.length === 1 ? plotW / 2 : ((at - t0) / span) * plotW);
  const y = (v: number) => PAD.top + plotH - (Math.max(0, v) / top) * plotH;
  const points = (pick: (s: (typeof samples)[number]) => number) =>
    samples.map((s) => `${x(s.at).toFixed(1)},${y(pick(s)).toFixed(1)}`).join(" ");
  const last = samples[samples.length - 1]!;
  return html`<svg
      class="chart load-chart"
      viewBox=${`0 0 ${W} ${H}`}
      role="img"
      aria-label=${`Fleet load over time: now ${last.active} of ${last.capacity} leases`}
    >
      ${yAxis(top, (v) => fmtInt(v))}
      <polyline class="capacity-line" points=${points((s) => s.capacity)}></polyline>
      <polyline class="load-line" points=${points((s) => s.active)}></polyline>
      ${samples.length === 1 ? svg`<circle class="load-dot" cx=${x(last.at)} cy=${y(last.active)} r="3"></circle>` : nothing}
      <text class="axis-label" x=${PAD.left} y=${H - 8} text-anchor="start">${fmtClock(t0)}</text>
      ${samples.length > 1 ? svg`<text class="axis-label" x=${W - PAD.right} y=${H - 8} text-anchor="end">${fmtClock(t1)}</text>` : nothing}
    </svg>
    <p class="legend"><span class="swatch load-swatch"></span> active leases <span class="swatch capacity-swatch"></span> capacity</p>`;
}

function fmtClock(at: number): string {
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

// A native table styled like vscode-table: columns size to their content and wrap in a narrow panel.
function workerTable(m: DashboardModel): TemplateResult {
  const workers = list(m.workers);
  if (!workers.length) return empty("No workers registered");
  // Ages on the farm's clock (the model's `now`), not this machine's.
  const now = typeof m.now === "number" ? m.now : Date.now();
  const live = m.connection === "connected";
  return html`<div class="table-scroll">
    <table class="grid-table workers">
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Role</th>
          <th scope="col">Model</th>
          <th scope="col">Health</th>
          <th scope="col">Load</th>
        </tr>
      </thead>
      <tbody>
        ${workers.map(
          (w) =>
            html`<tr class="worker" data-node=${w.nodeId}>
              <td class="node">${w.nodeId}</td>
              <td class="role">${w.role}</td>
              <td class="model">${w.model}</td>
              <td class="health">
                <vscode-badge class=${`tone-${!live ? "neutral" : w.connected ? "good" : "bad"}`}
                  >${w.health ?? (w.connected ? "connected" : "disconnected")}</vscode-badge
                >
                <span class="hint" title=${fmtTime(w.lastSeenAt)}>seen ${fmtAgo(w.lastSeenAt, now)}</span>
              </td>
              <td class="load">
                <span class="load-cell"
                  >${meter(w.active, w.capacity, `Load of ${w.nodeId}`, "warn")}<span class="load-text"
                    >${w.active}/${w.capacity}</span
                  ></span
                >
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

function unitCounts(m: DashboardModel): TemplateResult {
  const counts = Object.entries(m.unitCounts ?? {}).filter(([, n]) => typeof n === "number" && n > 0);
  if (!counts.length) return empty("No units");
  const rank = (s: string) => {
    const i = STATE_ORDER.indexOf(s);
    return i === -1 ? STATE_ORDER.length : i;
  };
  counts.sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
  const total = counts.reduce((n, [, c]) => n + c, 0);
  return html`<ul class="unit-counts">
      ${counts.map(
        ([s, n]) =>
          html`<li class="unit-count" data-state=${s}>
            <vscode-badge class=${`tone-${stateTone(s)}`}>${n}</vscode-badge>
            <span class="state-name">${m.stateLabels?.[s] ?? s.replaceAll("_", " ")}</span>
          </li>`,
      )}
    </ul>
    <p class="hint">${total} unit(s) in all</p>`;
}

// Start last, once every const above is initialised: a restored state renders synchronously here.
const restored = api.getState();
if (restored && typeof restored === "object") state = restored;
fitCharts();
draw();
new ResizeObserver(() => {
  if (fitCharts() && state.model) draw();
}).observe(root);
api.postMessage({ type: "ready" });
