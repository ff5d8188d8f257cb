/**
 * What both pages share: the one VS Code API handle, the message plumbing, the error banner and
 * the formatting helpers. Everything here renders text through Lit templates, which escape it; model
 * strings come from workers and are never parsed as HTML.
 */
import { html, nothing, render, svg, type TemplateResult } from "lit";
import type { HostMessage, PageMessage } from "./protocol.js";

/** The API VS Code injects into a webview (`acquireVsCodeApi`, callable once per page load). */
export interface VsCodeApi<S> {
  postMessage(message: PageMessage): void;
  getState(): S | undefined;
  setState(state: S): S;
}

declare global {
  // Provided by VS Code's webview host script; absent when a page is opened in a plain browser.
  var acquireVsCodeApi: (<S = unknown>() => VsCodeApi<S>) | undefined;
}

/**
 * Acquires the VS Code API (once: a second call throws in VS Code), posts `ready` once the page
 * listens, and hands every well-formed host message to `onMessage`. Messages that are not objects
 * with a known `type` are ignored. Outside VS Code a stand-in keeps state in memory so the page still
 * renders.
 */
export function connect<S>(onMessage: (message: HostMessage) => void): VsCodeApi<S> {
  const api: VsCodeApi<S> =
    typeof globalThis.acquireVsCodeApi === "function"
      ? globalThis.acquireVsCodeApi<S>()
      : (() => {
          let state: S | undefined;
          return {
            postMessage: (m: PageMessage) => console.info("[optimus webview] would post", m),
            getState: () => state,
            setState: (s: S) => (state = s),
          };
        })();
  window.addEventListener("message", (event: MessageEvent<unknown>) => {
    const data = event.data;
    if (!isHostMessage(data)) return;
    onMessage(data);
  });
  return api;
}

function isHostMessage(data: unknown): data is HostMessage {
  if (typeof data !== "object" || data === null) return false;
  const m = data as { type?: unknown; model?: unknown; message?: unknown };
  switch (m.type) {
    case "unitDetail":
    case "dashboard":
      return typeof m.model === "object" && m.model !== null;
    case "error":
      return typeof m.message === "string";
    default:
      return false;
  }
}

/** The element a page renders into: the host's `#root` (or `#app`), else a new `<main id="root">`. */
export function mountPoint(): HTMLElement {
  const existing = document.getElementById("root") ?? document.getElementById("app");
  if (existing) return existing;
  const main = document.createElement("main");
  main.id = "root";
  document.body.append(main);
  return main;
}

/** A dismissible banner for `{type:"error"}` messages; role=alert so screen readers announce it. */
export function errorBanner(message: string | undefined, dismiss: () => void): TemplateResult | typeof nothing {
  if (!message) return nothing;
  return html`<div class="banner error" role="alert">
    <span class="banner-text">${message}</span>
    <vscode-button secondary class="banner-dismiss" @click=${dismiss}>Dismiss</vscode-button>
  </div>`;
}

const containers = new WeakMap<HTMLElement, HTMLElement>();

/**
 * Renders `view()` into `root`. A model the page can't render (a field of the wrong type, say) leaves
 * a visible error instead of a blank or half-drawn page; the next render starts from a fresh
 * container, so a failure part-way through Lit's render leaves nothing behind.
 */
export function safeRender(view: () => TemplateResult, root: HTMLElement): void {
  let container = containers.get(root);
  if (!container) {
    container = document.createElement("div");
    container.className = "page";
    root.replaceChildren(container);
    containers.set(root, container);
  }
  try {
    render(view(), container);
  } catch (err) {
    console.error("[optimus webview] render failed", err);
    containers.delete(root);
    const banner = document.createElement("div");
    banner.className = "banner error";
    banner.setAttribute("role", "alert");
    banner.textContent = `This page could not show what it was sent: ${err instanceof Error ? err.message : String(err)}`;
    root.replaceChildren(banner);
  }
}

export const empty = (text: string): TemplateResult => html`<p class="empty">${text}</p>`;

/** Colour family for a unit state, used as a class on its badge. */
export function stateTone(state: string): "good" | "bad" | "warn" | "active" | "neutral" {
  switch (state) {
    case "completed":
    case "merged":
      return "good";
    case "failed":
    case "dead":
      return "bad";
    case "awaiting_approval":
      return "warn";
    case "leased":
    case "submitted":
    case "evaluating":
    case "reviewing":
      return "active";
    default:
      return "neutral";
  }
}

const usdFormat = new Intl.NumberFormat("en-US", {
  style: "currency",
  currency: "USD",
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
});
const intFormat = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export const fmtUsd = (usd: number): string => (Number.isFinite(usd) ? usdFormat.format(usd) : "—");
export const fmtInt = (n: number | undefined): string => (n === undefined || !Number.isFinite(n) ? "—" : intFormat.format(n));

/** 950 → "950 ms", 12_300 → "12.3 s", 83_000 → "1m 23s", 4_000_000 → "1h 6m". */
export function fmtDuration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function fmtTime(at: number | undefined): string {
  if (at === undefined || !Number.isFinite(at)) return "—";
  const d = new Date(at);
  return Number.isNaN(d.getTime()) ? "—" : d.toLocaleString();
}

/** "12 s ago", "3 min ago", "2 h ago", or the date for anything older than a day. */
export function fmtAgo(at: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - at) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${Math.floor(s / 3600)} h ago`;
  return fmtTime(at);
}

/**
 * A horizontal meter drawn in SVG (sized by attributes, coloured by classes), so no inline style
 * attribute is needed under the webview's CSP. `value` is clamped to [0, max]. `full` is the tone
 * at or past max: "bad" for a budget, "warn" for load (a full worker is busy, not broken).
 */
export function meter(value: number, max: number, label: string, full: "warn" | "bad" = "bad"): TemplateResult {
  const ratio = max > 0 ? Math.min(1, Math.max(0, value / max)) : 0;
  const t = ratio >= 1 ? full : ratio >= 0.8 ? "warn" : "good";
  return html`<svg
    class="meter"
    viewBox="0 0 100 8"
    preserveAspectRatio="none"
    role="meter"
    aria-label=${label}
    aria-valuemin="0"
    aria-valuemax=${max}
    aria-valuenow=${value}
  >
    <rect class="meter-track" x="0" y="0" width="100" height="8" rx="2"></rect>
    ${ratio > 0 ? svg`<rect class=${`meter-fill tone-${t}`} x="0" y="0" width=${(ratio * 100).toFixed(2)} height="8" rx="2"></rect>` : nothing}
  </svg>`;
}
