import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, normalize, sep } from "node:path";
import { after, before, test } from "node:test";
import { chromium, type Browser, type Page } from "playwright-core";
import { ROOT } from "../helpers/paths.js";
import { waitFor } from "../helpers/wait.js";

// The two webview pages, loaded as the extension host loads them (README "HTML contract"): the built
// bundles from webview/dist, the strict CSP with a per-load nonce, and a stand-in for VS Code's
// acquireVsCodeApi that records what the page posts. Driven by a real Chromium.

const WEBVIEW = join(ROOT, "webview");
const DIST = join(WEBVIEW, "dist");
const ARTIFACTS = join(ROOT, "test-artifacts", "webview");
const XSS = `<img src=x onerror=alert(1)>`;

let browser: Browser;
let server: Server;
let origin: string;

/** Builds webview/dist when it is missing or older than a source file. */
function ensureBuilt(): void {
  const outputs = ["unit-detail.js", "unit-detail.css", "dashboard.js", "dashboard.css"].map((f) => join(DIST, f));
  const newestSource = Math.max(
    statSync(join(WEBVIEW, "build.mjs")).mtimeMs,
    ...readdirSync(join(WEBVIEW, "src")).map((f) => statSync(join(WEBVIEW, "src", f)).mtimeMs),
  );
  if (outputs.every((f) => existsSync(f) && statSync(f).mtimeMs >= newestSource)) return;
  execFileSync(process.execPath, [join(WEBVIEW, "build.mjs")], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
}

/** What VS Code's webview host provides, reduced to what a page can observe. */
const SHIM = `(() => {
  const key = "vscode-state:" + location.pathname;
  let acquired = false;
  window.__posted = [];
  window.__csp = [];
  document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sample || "")));
  // VS Code sets the theme's colours as custom properties on <html>; a few dark-theme ones.
  const theme = {
    "--vscode-foreground": "#cccccc", "--vscode-editor-background": "#1f1f1f", "--vscode-sideBar-background": "#181818",
    "--vscode-descriptionForeground": "#9d9d9d", "--vscode-panel-border": "#2b2b2b", "--vscode-font-family": "system-ui, sans-serif",
    "--vscode-font-size": "13px", "--vscode-editor-font-family": "monospace", "--vscode-charts-red": "#f14c4c",
    "--vscode-charts-green": "#89d185", "--vscode-charts-yellow": "#cca700", "--vscode-charts-blue": "#3794ff",
    "--vscode-button-background": "#0078d4", "--vscode-button-foreground": "#ffffff", "--vscode-badge-background": "#616161",
    "--vscode-badge-foreground": "#f8f8f8", "--vscode-textCodeBlock-background": "#2b2b2b",
  };
  for (const [k, v] of Object.entries(theme)) document.documentElement.style.setProperty(k, v);
  window.acquireVsCodeApi = () => {
    if (acquired) throw new Error("An instance of the VS Code API has already been acquired");
    acquired = true;
    return Object.freeze({
      postMessage: (m) => window.__posted.push(JSON.parse(JSON.stringify(m))),
      getState: () => { const s = sessionStorage.getItem(key); return s === null ? undefined : JSON.parse(s); },
      setState: (s) => { sessionStorage.setItem(key, JSON.stringify(s)); return s; },
    });
  };
})();`;

/** The page HTML exactly as the README's contract describes, with `origin` standing in for webview.cspSource. */
function pageHtml(pageName: string, nonce: string, cspSource: string): { html: string; csp: string } {
  const csp = `default-src 'none'; script-src 'nonce-${nonce}' ${cspSource}; style-src ${cspSource} 'nonce-${nonce}'; img-src ${cspSource} data:; font-src ${cspSource};`;
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Optimus</title>
<link rel="stylesheet" href="${cspSource}/dist/${pageName}.css" nonce="${nonce}">
</head>
<body>
<div id="root"></div>
<script nonce="${nonce}">${SHIM}</script>
<script nonce="${nonce}" src="${cspSource}/dist/${pageName}.js"></script>
</body>
</html>`;
  return { html, csp };
}

// The messages of webview/src/protocol.ts, restated loosely: that file is outside this workspace's rootDir.
type PageMessage = { type: string; action?: string; taskId?: string; unitId?: string };
type HostMessage =
  { type: "unitDetail"; model: UnitDetailModel } | { type: "dashboard"; model: DashboardModel } | { type: "error"; message: string };
interface UnitDetailModel {
  taskId: string;
  unitId: string;
  title: string;
  state: string;
  attempt: number;
  worker?: string;
  role: string;
  instruction: string;
  files: string[];
  check?: string;
  progress?: { phase: string; step?: string; tokens?: number; elapsedMs?: number };
  signals?: { model?: string; tokens?: number; confidence?: number; checksFailed?: number; iterations?: number };
  costUsd: number;
  evidence?: string;
  evals: { name: string; exitCode: number | null; timedOut: boolean; durationMs: number; output: string }[];
  review?: { verdict: string; risk: string; summary: string; comments: { path?: string; line?: number; body: string }[] };
  risk?: { level: string; reasons: string[] };
  transcript: { kind: string; at?: number; title: string; text: string }[];
  escalations: { at: number; state: string; by: string; reason?: string }[];
  history: { seq: number; at: number; type: string; actor: string; summary: string }[];
  actions: string[];
}
interface DashboardModel {
  connection: "connected" | "connecting" | "disconnected";
  farmUrl?: string;
  workers: { nodeId: string; role: string; model: string; connected: boolean; active: number; capacity: number; lastSeenAt: number }[];
  spend: { day: string; usd: number }[];
  dailyBudgetUsd?: number;
  todayUsd: number;
  unitCounts: Record<string, number>;
  load: { at: number; active: number; capacity: number }[];
}

const TYPES: Record<string, string> = { ".js": "text/javascript", ".css": "text/css", ".map": "application/json" };

before(async () => {
  ensureBuilt();
  mkdirSync(ARTIFACTS, { recursive: true });
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const page = /^\/(unit-detail|dashboard)\.html$/.exec(url.pathname)?.[1];
    if (page) {
      const { html, csp } = pageHtml(page, randomBytes(16).toString("base64"), origin);
      res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": csp, "cache-control": "no-store" });
      res.end(html);
      return;
    }
    if (url.pathname === "/favicon.ico") {
      // Chromium asks for it on its own; a VS Code webview doesn't.
      res.writeHead(204).end();
      return;
    }
    const file = normalize(join(DIST, decodeURIComponent(url.pathname.replace(/^\/dist\//, ""))));
    if (!url.pathname.startsWith("/dist/") || !file.startsWith(DIST + sep) || !existsSync(file)) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-store" });
    res.end(readFileSync(file));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

interface Opened {
  page: Page;
  /** console errors and warnings (CSP reports among them), page errors and failed requests so far */
  problems: string[];
  dialogs: string[];
}

async function open(pageName: "unit-detail" | "dashboard"): Promise<Opened> {
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const problems: string[] = [];
  const dialogs: string[] = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) problems.push(`http ${r.status()}: ${r.url()}`);
  });
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.dismiss();
  });
  await page.goto(`${origin}/${pageName}.html`);
  return { page, problems, dialogs };
}

// The test workspace compiles without the DOM library: page-side code reaches the page through `any`.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Win = any;

const posted = (page: Page): Promise<PageMessage[]> => page.evaluate(() => (globalThis as Win).__posted as PageMessage[]);
const cspViolations = (page: Page): Promise<string[]> => page.evaluate(() => (globalThis as Win).__csp as string[]);
const send = (page: Page, message: HostMessage): Promise<void> => page.evaluate((m) => (globalThis as Win).postMessage(m, "*"), message);

async function assertClean(o: Opened): Promise<void> {
  assert.deepEqual(await cspViolations(o.page), [], "no CSP violations");
  // Chromium also reports CSP violations on the console ("… violates the following Content Security Policy directive …").
  assert.deepEqual(o.problems, [], "no console errors or warnings, page errors or failed requests");
  assert.deepEqual(o.dialogs, [], "no dialog was opened");
}

async function visibleText(page: Page, selector: string): Promise<string> {
  const loc = page.locator(selector).first();
  await loc.waitFor({ state: "visible", timeout: 10_000 });
  return (await loc.textContent())?.trim() ?? "";
}

const unitModel = (overrides: Partial<UnitDetailModel> = {}): UnitDetailModel => ({ ...baseUnit(), ...overrides });

function baseUnit(): UnitDetailModel {
  return {
    taskId: "t-cache",
    unitId: "u-2",
    title: "Add an LRU cache in front of the resolver",
    state: "awaiting_approval",
    attempt: 2,
    worker: "gpu-box-1",
    role: "codegen",
    instruction: "Wrap resolve() in a 256-entry LRU cache.\nKeep the public API unchanged.",
    files: ["src/resolver.ts", "src/cache.ts"],
    check: "npm test -- resolver",
    progress: { phase: "reviewing", step: "waiting for approval", tokens: 18_432, elapsedMs: 154_000 },
    signals: { model: "qwen2.5-coder-14b", tokens: 18_432, confidence: 0.62, checksFailed: 1, iterations: 3 },
    costUsd: 0.42,
    evidence: "> npm test -- resolver\n  12 passing (210ms)",
    evals: [
      { name: "unit tests", exitCode: 0, timedOut: false, durationMs: 2_150, output: "12 passing (210ms)" },
      {
        name: "lint",
        exitCode: 1,
        timedOut: false,
        durationMs: 830,
        output: "src/cache.ts:14:7  'size' is assigned a value but never used",
      },
    ],
    review: {
      verdict: "approve",
      risk: "low",
      summary: "Small, contained change with tests.",
      comments: [
        { path: "src/cache.ts", line: 14, body: "Drop the unused size variable." },
        { body: "Consider making the capacity configurable." },
      ],
    },
    risk: { level: "medium", reasons: ["touches a hot path", "no benchmark"] },
    transcript: [
      { kind: "prompt", at: 1_764_000_000_000, title: "Task prompt", text: "Wrap resolve() in an LRU cache." },
      { kind: "edit", at: 1_764_000_060_000, title: "Edited src/cache.ts", text: "+export class Lru<K, V> { … }" },
      { kind: "check", at: 1_764_000_120_000, title: "Ran the check", text: "12 passing" },
    ],
    escalations: [{ at: 1_764_000_030_000, state: "escalated", by: "farm", reason: "confidence below 0.7" }],
    history: [
      { seq: 11, at: 1_764_000_000_000, type: "unit_leased", actor: "worker:gpu-box-1", summary: "leased by gpu-box-1 (attempt 2)" },
      { seq: 14, at: 1_764_000_100_000, type: "unit_submitted", actor: "worker:gpu-box-1", summary: "submitted a patch touching 2 files" },
      { seq: 17, at: 1_764_000_200_000, type: "unit_awaiting_approval", actor: "farm", summary: "held for a human" },
    ],
    actions: ["approve", "reject", "requestChanges", "openDiff"],
  };
}

test(
  "unit detail page: shows the unit, its evals, transcript and review, posts actions, escapes worker text, survives a reload",
  { timeout: 120_000 },
  async () => {
    const o = await open("unit-detail");
    const { page } = o;
    try {
      await waitFor(async () => (await posted(page)).some((m) => m.type === "ready"), "the page to post ready", 10_000);
      assert.deepEqual(await posted(page), [{ type: "ready" }]);

      const model = unitModel();
      await send(page, { type: "unitDetail", model });
      assert.equal(await visibleText(page, "h1.title"), model.title);
      assert.equal(await visibleText(page, "vscode-badge.state"), "awaiting approval");
      assert.equal(await visibleText(page, ".worker"), "gpu-box-1");
      assert.equal(await visibleText(page, ".attempt"), "2");
      assert.match(await visibleText(page, ".crumbs"), /t-cache\s*\/\s*u-2/);
      // One button per action, in the order the host gave.
      const labels = await page.locator(".actions vscode-button").allTextContents();
      assert.deepEqual(
        labels.map((l) => l.trim()),
        ["Approve", "Reject", "Request changes", "Open diff"],
      );
      // Review verdict and comments, on the first tab.
      assert.equal(await visibleText(page, "vscode-badge.verdict"), "approve");
      await page.getByText("Drop the unused size variable.").waitFor({ state: "visible" });
      await page.getByText("Consider making the capacity configurable.").waitFor({ state: "visible" });
      assert.equal(await visibleText(page, "li.comment code.where"), "src/cache.ts:14");
      await page.screenshot({ path: join(ARTIFACTS, "unit-detail-overview.png"), fullPage: true });

      // Evals: a row per eval; the output opens in a <pre> under its row.
      await page.locator("vscode-tab-header", { hasText: "Evals" }).click();
      const rows = page.locator("table.evals tbody tr.eval");
      assert.equal(await rows.count(), 2);
      assert.equal(await visibleText(page, "table.evals tr.eval:nth-child(1) td.name"), "unit tests");
      const lint = rows.filter({ hasText: "lint" });
      assert.equal((await lint.locator("td.exit").textContent())?.trim(), "1");
      await lint.locator("vscode-button.output-toggle").click();
      assert.equal(await visibleText(page, "tr.eval-output-row pre.output"), model.evals[1]!.output);
      assert.match(await visibleText(page, "pre.evidence"), /12 passing/);
      await page.screenshot({ path: join(ARTIFACTS, "unit-detail-evals.png"), fullPage: true });

      // Transcript: steps in order, each opens to its text.
      await page.locator("vscode-tab-header", { hasText: "Transcript" }).click();
      const steps = page.locator("ol.transcript vscode-collapsible");
      assert.equal(await steps.count(), 3);
      assert.deepEqual(await steps.evaluateAll((els) => els.map((e: Win) => e.heading)), [
        "1. Task prompt",
        "2. Edited src/cache.ts",
        "3. Ran the check",
      ]);
      await page.getByText("2. Edited src/cache.ts").waitFor({ state: "visible" });
      await steps.nth(1).locator(".collapsible-header").click();
      await page.getByText("+export class Lru<K, V> { … }").waitFor({ state: "visible" });
      await page.screenshot({ path: join(ARTIFACTS, "unit-detail-transcript.png"), fullPage: true });

      // History: escalations and the journal, a row each.
      await page.locator("vscode-tab-header", { hasText: "History" }).click();
      assert.equal(await page.locator("table.history tbody tr").count(), 3);
      assert.equal(await page.locator("table.escalations tbody tr").count(), 1);
      await page.getByText("held for a human").waitFor({ state: "visible" });
      await page.screenshot({ path: join(ARTIFACTS, "unit-detail-history.png"), fullPage: true });

      // Approve posts the action with the unit's ids.
      await page.locator('vscode-button[data-action="approve"]').click();
      await waitFor(async () => (await posted(page)).some((m) => m.type === "action"), "an action message", 5_000);
      assert.deepEqual(
        (await posted(page)).filter((m) => m.type === "action"),
        [{ type: "action", action: "approve", taskId: "t-cache", unitId: "u-2" }],
      );

      // A host error shows in a banner; the next model clears it.
      await send(page, { type: "error", message: "farm unreachable: connect ECONNREFUSED 127.0.0.1:7878" });
      assert.match(await visibleText(page, '.banner[role="alert"]'), /farm unreachable: connect ECONNREFUSED/);

      // Worker-supplied text is rendered as text, never as markup.
      const hostile = unitModel({
        title: XSS,
        state: "dead",
        instruction: `${XSS}</pre><script>alert(2)</script>`,
        evals: [{ name: XSS, exitCode: null, timedOut: true, durationMs: 60_000, output: `</pre>${XSS}` }],
        review: { verdict: XSS, risk: XSS, summary: XSS, comments: [{ path: XSS, body: XSS }] },
        transcript: [{ kind: XSS, title: XSS, text: XSS }],
        actions: ["retry"],
      });
      await send(page, { type: "unitDetail", model: hostile });
      assert.equal(await visibleText(page, "h1.title"), XSS);
      // Same unit, so the page stays on the tab the user chose; go back to the overview.
      assert.equal(await page.locator("vscode-tab-header", { hasText: "History" }).getAttribute("active"), "");
      await page.locator("vscode-tab-header", { hasText: "Overview" }).click();
      assert.equal(await page.locator('.banner[role="alert"]').count(), 0, "a new model clears the error banner");
      assert.equal(await visibleText(page, "pre.instruction"), `${XSS}</pre><script>alert(2)</script>`);
      const injected = await page.evaluate(() => {
        const d = (globalThis as Win).document;
        return { imgs: d.querySelectorAll("img").length, scripts: d.querySelectorAll("script").length };
      });
      assert.deepEqual(injected, { imgs: 0, scripts: 2 }, "no element was created from model text");
      await page.screenshot({ path: join(ARTIFACTS, "unit-detail-hostile.png"), fullPage: true });

      // A model the page can't render shows an error, not a blank page; the next good one recovers.
      await send(page, { type: "unitDetail", model: { taskId: "t-cache", unitId: "u-2" } as UnitDetailModel });
      assert.match(await visibleText(page, '.banner[role="alert"]'), /^This page could not show what it was sent: /);
      o.problems.splice(0, o.problems.length, ...o.problems.filter((p) => !p.startsWith("console.error: [optimus webview] render failed")));

      // A hidden panel that comes back re-renders from its saved state before the host says anything.
      await send(page, { type: "unitDetail", model });
      await visibleText(page, "h1.title");
      await page.reload();
      assert.equal(await visibleText(page, "h1.title"), model.title);
      await waitFor(async () => (await posted(page)).some((m) => m.type === "ready"), "ready after reload", 10_000);
      await page.setViewportSize({ width: 420, height: 900 });
      await page.screenshot({ path: join(ARTIFACTS, "unit-detail-narrow.png"), fullPage: true });
      await assertClean(o);
    } finally {
      await page.close();
    }
  },
);

function dashboardModel(): DashboardModel {
  const day0 = Date.UTC(2026, 10, 19);
  const spend = [0.8, 1.9, 3.2, 5.6, 2.4, 4.1, 1.3].map((usd, i) => ({
    day: new Date(day0 + i * 86_400_000).toISOString().slice(0, 10),
    usd,
  }));
  const now = Date.now();
  return {
    connection: "connected",
    farmUrl: "http://127.0.0.1:7878",
    workers: [
      {
        nodeId: "gpu-box-1",
        role: "codegen",
        model: "qwen2.5-coder-14b",
        connected: true,
        active: 3,
        capacity: 4,
        lastSeenAt: now - 4_000,
      },
      { nodeId: "gpu-box-2", role: "codegen", model: "qwen2.5-coder-7b", connected: true, active: 1, capacity: 4, lastSeenAt: now - 9_000 },
      { nodeId: XSS, role: "review", model: "frontier", connected: false, active: 0, capacity: 2, lastSeenAt: now - 600_000 },
    ],
    spend,
    dailyBudgetUsd: 5,
    todayUsd: 1.3,
    unitCounts: { ready: 4, leased: 4, awaiting_approval: 1, merged: 12, dead: 1 },
    load: Array.from({ length: 24 }, (_, i) => ({
      at: now - (23 - i) * 300_000,
      active: [1, 2, 4, 6, 7, 5, 4][i % 7]!,
      capacity: i < 12 ? 8 : 10,
    })),
  };
}

test(
  "dashboard page: one bar per spend day, one row per worker, refresh posts refresh, escapes worker text",
  { timeout: 120_000 },
  async () => {
    const o = await open("dashboard");
    const { page } = o;
    try {
      await waitFor(async () => (await posted(page)).some((m) => m.type === "ready"), "the page to post ready", 10_000);
      assert.deepEqual(await posted(page), [{ type: "ready" }]);
      const model = dashboardModel();
      await send(page, { type: "dashboard", model });

      assert.equal(await visibleText(page, "vscode-badge.conn"), "connected");
      assert.match(await visibleText(page, ".today"), /\$1\.30\s+of \$5\.00/);
      await page.locator("svg.spend-chart").waitFor({ state: "visible" });
      assert.equal(await page.locator("svg.spend-chart rect.bar").count(), model.spend.length, "one bar per day");
      assert.equal(await page.locator("svg.spend-chart rect.bar.over").count(), 1, "the day over budget is marked");
      assert.equal(await page.locator("svg.spend-chart line.budget").count(), 1, "the budget is drawn as a line");
      assert.equal(await page.locator("svg.load-chart polyline.load-line").count(), 1);

      const rows = page.locator("table.workers tbody tr");
      assert.equal(await rows.count(), 3, "one row per worker");
      assert.deepEqual(
        (await rows.locator("td.node").allTextContents()).map((t) => t.trim()),
        ["gpu-box-1", "gpu-box-2", XSS],
      );
      assert.match((await rows.nth(0).textContent()) ?? "", /connected[\s\S]*3\/4/);
      assert.match((await rows.nth(2).textContent()) ?? "", /disconnected/);
      assert.equal(
        await page.evaluate(() => (globalThis as Win).document.querySelectorAll("img").length),
        0,
        "no element was created from model text",
      );
      assert.deepEqual(
        (await page.locator("li.unit-count").allTextContents()).map((t) => t.replace(/\s+/g, " ").trim()),
        ["4 ready", "4 leased", "1 awaiting approval", "12 merged", "1 dead"],
      );
      await page.screenshot({ path: join(ARTIFACTS, "dashboard.png"), fullPage: true });
      await page.setViewportSize({ width: 420, height: 900 });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-narrow.png"), fullPage: true });
      await page.setViewportSize({ width: 1000, height: 900 });

      await page.locator("vscode-button.refresh").click();
      await waitFor(async () => (await posted(page)).some((m) => m.type === "refresh"), "a refresh message", 5_000);
      assert.deepEqual(await posted(page), [{ type: "ready" }, { type: "refresh" }]);

      await send(page, {
        type: "dashboard",
        model: {
          ...model,
          connection: "disconnected",
          workers: [],
          spend: [],
          load: [],
          unitCounts: {},
          dailyBudgetUsd: undefined,
          todayUsd: 0,
        },
      });
      await page.getByText("No spend recorded").waitFor({ state: "visible" });
      await page.getByText("No workers registered").waitFor({ state: "visible" });
      assert.equal(await visibleText(page, "vscode-badge.conn"), "disconnected");
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-empty.png"), fullPage: true });
      await assertClean(o);
    } finally {
      await page.close();
    }
  },
);
