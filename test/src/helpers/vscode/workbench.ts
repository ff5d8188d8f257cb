import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium, type BrowserContext, type Locator, type Page } from "playwright-core";
import { ROOT } from "../paths.js";
import { sleep } from "../wait.js";
import { CHROMIUM, CHROMIUM_ARGS, CodeServer, installVsix, newProfile, registerCloser } from "./code-server.js";

export interface WorkbenchOptions {
  /** Folder the window opens. */
  workspace: string;
  /** A packaged extension to install first (`code-server --install-extension`). */
  vsix?: string;
  /** An unpackaged extension folder to load as in "Run Extension" (payload extensionDevelopmentPath). */
  extensionDevelopmentPath?: string;
  /** Extra environment for code-server and so the extension host. */
  env?: Record<string, string>;
  /** Screenshots go here (default test-artifacts/vscode). */
  artifactsDir?: string;
  /** User settings on top of the harness's quiet defaults. */
  settings?: Record<string, unknown>;
  /** How long to wait for the workbench (default 60 s). */
  timeoutMs?: number;
}

export interface Workbench {
  page: Page;
  server: CodeServer;
  /** F1, type the command's title as the palette shows it (e.g. "Hello: Say Hi"), pick it. */
  runCommand(title: string, timeoutMs?: number): Promise<void>;
  /** Types into the open quick input (input box or quick pick) and presses Enter. */
  fillQuickInput(text: string, timeoutMs?: number): Promise<void>;
  /** PNG of the page into artifactsDir, numbered in order (01-name.png, …); returns its path. */
  screenshot(name: string): Promise<string>;
  /** Closes the browser, kills code-server's process group, removes the scratch folders. */
  close(): Promise<void>;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Starts code-server with the extension (a .vsix to install, or a development folder), opens the workspace
 * in headless Chromium and waits for the workbench. Everything it starts is stopped by `close()`, and also
 * when the test process exits or is interrupted.
 */
export async function openWorkbench(opts: WorkbenchOptions): Promise<Workbench> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const artifactsDir = resolve(opts.artifactsDir ?? join(ROOT, "test-artifacts", "vscode"));
  mkdirSync(artifactsDir, { recursive: true });
  const profile = newProfile(opts.settings);
  let server: CodeServer | null = null;
  let context: BrowserContext | null = null;
  let shots = 0;
  let closed = false;

  let launching: Promise<BrowserContext> | null = null;
  // On interruption the browser is closed first, then (registerCleanup, via CodeServer.start and the
  // scratch folders) the server's process group is killed and the folders removed. On a plain exit
  // playwright kills the browser itself.
  const unregisterCloser = registerCloser(async () => {
    const c = context ?? (await launching?.catch(() => null));
    await c?.close().catch(() => {});
  });
  const close = async () => {
    if (closed) return;
    closed = true;
    unregisterCloser();
    if (context) await Promise.race([context.close().catch(() => {}), sleep(10_000)]);
    if (server) await server.stop();
    profile.remove();
  };

  try {
    if (opts.vsix) installVsix(profile, resolve(opts.vsix));
    server = await CodeServer.start(profile, opts.env);
    // "": a fresh profile folder that playwright removes itself once the browser is dead (also on exit).
    // TMPDIR: Chromium's own temporary folders go into the profile's scratch folder too.
    launching = chromium.launchPersistentContext("", {
      executablePath: CHROMIUM,
      args: CHROMIUM_ARGS,
      env: { ...process.env, TMPDIR: join(profile.home, "tmp") },
      viewport: { width: 1400, height: 900 },
    });
    context = await launching;
    const page = context.pages()[0] ?? (await context.newPage());
    const payload: [string, string][] = [];
    if (opts.extensionDevelopmentPath) payload.push(["extensionDevelopmentPath", server.remote(resolve(opts.extensionDevelopmentPath))]);
    const url = `${server.url}/?folder=${encodeURIComponent(resolve(opts.workspace))}${payload.length ? `&payload=${encodeURIComponent(JSON.stringify(payload))}` : ""}`;
    await page.goto(url, { waitUntil: "domcontentloaded", timeout: timeoutMs });
    await page.locator(".monaco-workbench").waitFor({ state: "visible", timeout: timeoutMs });
    await page.locator(".monaco-workbench .part.activitybar").waitFor({ state: "visible", timeout: timeoutMs });

    const quickInput = page.locator(".quick-input-widget");
    const quickInputBox = quickInput.locator(".quick-input-box input");

    const screenshot = async (name: string) => {
      shots++;
      const file = join(artifactsDir, `${String(shots).padStart(2, "0")}-${name.replace(/[^\w.-]+/g, "-")}.png`);
      await page.screenshot({ path: file, animations: "disabled" }); // finished transitions: toasts fully in
      return file;
    };

    const runCommand = async (title: string, cmdTimeoutMs = 30_000) => {
      const end = Date.now() + cmdTimeoutMs;
      const row = quickInput
        .locator(".monaco-list-row")
        .filter({ has: page.locator(".label-name", { hasText: new RegExp(`^\\s*${escapeRe(title)}\\s*$`) }) });
      let attempt = 0;
      for (;;) {
        attempt++;
        // A contributed command shows up once the extension host has scanned the extension: retry.
        if (!(await quickInput.isVisible())) await page.keyboard.press("F1");
        await quickInputBox.waitFor({ state: "visible", timeout: Math.max(1000, end - Date.now()) });
        await quickInputBox.fill(`>${title}`);
        try {
          await row.first().waitFor({ state: "visible", timeout: Math.min(5000 * attempt, Math.max(500, end - Date.now())) });
          break;
        } catch (err) {
          if (Date.now() > end) {
            await screenshot(`command-not-found-${title}`).catch(() => {});
            throw new Error(`command "${title}" did not appear in the command palette within ${cmdTimeoutMs} ms`, { cause: err });
          }
          await page.keyboard.press("Escape");
          await sleep(250);
        }
      }
      await row.first().click();
      // Picked: the palette closes (or turns into the command's own input).
      const until = Date.now() + 5000;
      while (Date.now() < until && (await quickInput.isVisible()) && (await quickInputBox.inputValue().catch(() => "")) === `>${title}`)
        await sleep(50);
    };

    const fillQuickInput = async (text: string, inputTimeoutMs = 15_000) => {
      await quickInputBox.waitFor({ state: "visible", timeout: inputTimeoutMs });
      await quickInputBox.fill(text);
      await quickInputBox.press("Enter");
    };

    return { page, server, runCommand, fillQuickInput, screenshot, close };
  } catch (err) {
    const page = context?.pages()[0];
    if (page) await page.screenshot({ path: join(artifactsDir, "open-workbench-failed.png") }).catch(() => {});
    const log = server?.log.slice(-4000) ?? "";
    await close();
    throw new Error(`openWorkbench failed: ${(err as Error).message}${log ? `\n--- code-server log (tail) ---\n${log}` : ""}`, {
      cause: err,
    });
  }
}

/** A tree row of a view (by its visible label), for clicks and visibility assertions. */
export function treeRow(page: Page, label: string): Locator {
  return page.locator(".monaco-workbench .pane-body .monaco-list-row").filter({ hasText: label });
}
