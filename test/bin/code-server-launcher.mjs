#!/usr/bin/env node
// A stand-in for the VS Code executable, for `runTests({ vscodeExecutablePath })` of @vscode/test-electron.
// It takes the arguments VS Code would get (--extensionDevelopmentPath, --extensionTestsPath,
// --user-data-dir, --extensions-dir, --disable-extensions, a workspace folder, …), runs the same extension
// tests in code-server (a real VS Code server with a real Node extension host) driven by headless Chromium,
// and exits with the suite's code (0 = every test passed). scripts/install-vscode-test-deps.sh installs
// code-server and Chromium; ADR 0008 says why code-server rather than desktop VS Code.
//
// Environment:
//   OPTIMUS_CODE_SERVER            path of the code-server executable (default: the cache folder that
//                                  scripts/install-vscode-test-deps.sh installs into)
//   OPTIMUS_VSCODE_TEST_TIMEOUT_MS overall limit for the suite (default 600000)
//   OPTIMUS_TEST_ARTIFACTS         folder for a screenshot (and the workbench logs) when the suite fails
//   OPTIMUS_CHROMIUM               browser executable (default /usr/bin/chromium)
// Everything else in the environment (e.g. runTests' extensionTestsEnv) reaches the extension host.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { format } from "node:util";

// The harness's own constants (compiled with the tests, which always build before they run), so the
// launcher and the workbench driver install, find and start the same things.
import {
  CHROMIUM,
  CHROMIUM_ARGS,
  CODE_SERVER_VERSION,
  INSTALL_HINT,
  QUIET_SETTINGS,
  codeServerPath,
} from "../dist/helpers/vscode/code-server.js";

const TAG = "[code-server-launcher]";

// VS Code flags that take a value; `--flag value` is read as a pair only for these (others are switches).
const VALUE_FLAGS = new Set([
  "extensionDevelopmentPath",
  "extensionTestsPath",
  "user-data-dir",
  "extensions-dir",
  "locale",
  "log",
  "profile",
  "folder-uri",
  "file-uri",
  "crash-reporter-directory",
  "sync",
  "enable-proposed-api",
  "disable-extension",
  "inspect-extensions",
  "inspect-brk-extensions",
]);

/** Parses VS Code's command line: `--x=y`, `--x y` (value flags), `--switch`, and positional paths. */
function parseArgs(argv) {
  const flags = new Map(); // name -> string[]
  const positional = [];
  const add = (k, v) => flags.set(k, [...(flags.get(k) ?? []), v]);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      if (eq > 0) add(a.slice(2, eq), a.slice(eq + 1));
      else if (VALUE_FLAGS.has(a.slice(2)) && i + 1 < argv.length && !argv[i + 1].startsWith("--")) add(a.slice(2), argv[++i]);
      else add(a.slice(2), "true");
    } else positional.push(a);
  }
  return { flags, positional };
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  // Output to a parent that is gone must not crash us before the cleanup.
  process.stdout.on("error", () => {});
  process.stderr.on("error", () => {});
  const { flags, positional } = parseArgs(process.argv.slice(2));
  const bin = codeServerPath();
  if (!existsSync(bin)) {
    console.error(`${TAG} code-server not found at ${bin}: ${INSTALL_HINT} (or set OPTIMUS_CODE_SERVER)`);
    return 1;
  }
  const devPaths = (flags.get("extensionDevelopmentPath") ?? []).map((p) => resolve(p));
  const testsPath = flags.get("extensionTestsPath")?.[0];
  const timeoutMs = Number(process.env.OPTIMUS_VSCODE_TEST_TIMEOUT_MS) || 600_000;
  const artifacts = process.env.OPTIMUS_TEST_ARTIFACTS;

  const scratch = mkdtempSync(join(tmpdir(), "optimus-code-server-"));
  const userDataDir = resolve(flags.get("user-data-dir")?.[0] ?? join(scratch, "user-data"));
  const extensionsDir = resolve(flags.get("extensions-dir")?.[0] ?? join(scratch, "extensions"));
  const home = join(scratch, "home");
  for (const d of [userDataDir, join(userDataDir, "User"), extensionsDir, join(home, "tmp")]) mkdirSync(d, { recursive: true });
  const settings = join(userDataDir, "User", "settings.json");
  if (!existsSync(settings)) writeFileSync(settings, JSON.stringify(QUIET_SETTINGS, null, 2));

  let server = null;
  let context = null;
  let serverLog = "";
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    cleaned = true;
    if (server?.pid) {
      try {
        process.kill(-server.pid, "SIGKILL");
      } catch {}
    }
    try {
      rmSync(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {}
  };
  process.on("exit", cleanupSync);
  // Interrupted, or orphaned: close the browser (so its profile can go), then the server, then exit.
  let stopping = false;
  const shutdown = (code, why) => {
    if (stopping) return;
    stopping = true;
    console.error(`${TAG} ${why}: stopping code-server and the browser`);
    const closing = context ? context.close().catch(() => {}) : Promise.resolve();
    Promise.race([closing, sleep(3000)]).finally(() => {
      cleanupSync();
      process.exit(code);
    });
  };
  for (const [sig, num] of [
    ["SIGINT", 2],
    ["SIGTERM", 15],
    ["SIGHUP", 1],
  ])
    process.on(sig, () => shutdown(128 + num, sig));
  // If whoever started us dies without telling us (SIGKILL), do not outlive it.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) shutdown(1, "the parent process is gone");
  }, 1000).unref();

  const port = await freePort();
  const origin = `http://127.0.0.1:${port}`;
  // HOME and TMPDIR of its own: code-server writes ~/.config, and its IPC and git sockets go to TMPDIR.
  const serverEnv = {
    ...process.env,
    HOME: home,
    TMPDIR: join(home, "tmp"),
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
  };
  delete serverEnv.NODE_TEST_CONTEXT; // set by `node --test`; must not leak into the extension host's Node
  delete serverEnv.NODE_OPTIONS;
  delete serverEnv.ELECTRON_RUN_AS_NODE;
  delete serverEnv.VSCODE_IPC_HOOK_CLI;
  server = spawn(
    bin,
    [
      "--auth",
      "none",
      "--bind-addr",
      `127.0.0.1:${port}`,
      "--user-data-dir",
      userDataDir,
      "--extensions-dir",
      extensionsDir,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
    ],
    {
      env: serverEnv,
      cwd: home,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let serverExited = null;
  server.on("exit", (code, signal) => (serverExited = `code-server exited (${code ?? signal})`));
  const onServerOutput = (b) => {
    const s = b.toString();
    serverLog += s;
    // The extension host's stdout/stderr lands here as well; the suite's own output comes via codeAutomationLog.
    if (process.env.OPTIMUS_VSCODE_VERBOSE) process.stderr.write(s.replace(/^/gm, "[code-server] "));
  };
  server.stdout.on("data", onServerOutput);
  server.stderr.on("data", onServerOutput);

  const started = Date.now();
  for (;;) {
    if (serverExited) {
      console.error(`${TAG} ${serverExited} before listening:\n${serverLog}`);
      return 1;
    }
    try {
      const r = await fetch(`${origin}/healthz`);
      if (r.ok) break;
    } catch {}
    if (Date.now() - started > 60_000) {
      console.error(`${TAG} code-server did not listen on ${origin} within 60 s:\n${serverLog}`);
      return 1;
    }
    await sleep(100);
  }

  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (err) {
    console.error(`${TAG} cannot load playwright-core (a devDependency of the test workspace): ${err.message}`);
    return 1;
  }
  // "": a fresh profile folder that playwright removes itself once the browser is dead (also on exit).
  // TMPDIR: Chromium's own temporary folders go into our scratch folder too.
  context = await chromium.launchPersistentContext("", {
    executablePath: CHROMIUM,
    args: CHROMIUM_ARGS,
    env: { ...process.env, TMPDIR: join(home, "tmp") },
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] ?? (await context.newPage());

  let settle;
  const done = new Promise((r) => (settle = r));
  await page.exposeFunction("codeAutomationExit", (code, logs) => {
    settle({ code: typeof code === "number" ? code : 1, logs });
  });
  await page.exposeFunction("codeAutomationLog", (type, args) => {
    // The workbench hands over console-style arguments (a format string first, e.g. mocha's reporter).
    const text = Array.isArray(args) ? format(...args) : String(args);
    if (NOISE.some((re) => re.test(text))) return;
    const line = text.replace(/^/gm, `[vscode ${type}] `);
    if (type === "error" || type === "warn") process.stderr.write(line + "\n");
    else process.stdout.write(line + "\n");
  });
  page.on("crash", () => settle({ code: 1, reason: "the workbench page crashed" }));
  page.on("close", () => settle({ code: 1, reason: "the workbench page closed" }));
  server.on("exit", () => settle({ code: 1, reason: `${serverExited}:\n${serverLog}` }));
  const timer = setTimeout(
    () => settle({ code: 1, reason: `the suite did not finish within ${timeoutMs} ms (OPTIMUS_VSCODE_TEST_TIMEOUT_MS)`, timedOut: true }),
    timeoutMs,
  );

  const remote = (p) => `vscode-remote://127.0.0.1:${port}${p}`;
  const payload = devPaths.map((p) => ["extensionDevelopmentPath", remote(p)]);
  if (testsPath) payload.push(["extensionTestsPath", remote(resolve(testsPath))]);
  if (flags.has("disable-extensions")) payload.push(["disableExtensions", "true"]);
  let query;
  const ws = positional[0] ? resolve(positional[0]) : null;
  if (ws && existsSync(ws) && statSync(ws).isFile()) {
    query = ws.endsWith(".code-workspace") ? `workspace=${encodeURIComponent(ws)}` : `folder=${encodeURIComponent(dirname(ws))}`;
  } else if (ws) query = `folder=${encodeURIComponent(ws)}`;
  else query = "ew=true";
  const url = `${origin}/?${query}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
  console.log(`${TAG} code-server ${CODE_SERVER_VERSION} at ${origin}; running ${testsPath ?? "(no tests)"}`);
  await page
    .goto(url, { waitUntil: "domcontentloaded" })
    .catch((err) => settle({ code: 1, reason: `cannot open the workbench: ${err.message}` }));

  const result = await done;
  clearTimeout(timer);
  if (result.reason) console.error(`${TAG} ${result.reason}`);
  if (result.code !== 0 && artifacts) {
    try {
      mkdirSync(artifacts, { recursive: true });
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      const shot = join(artifacts, `vscode-suite-${result.timedOut ? "timeout" : `exit-${result.code}`}-${stamp}.png`);
      await page.screenshot({ path: shot, timeout: 10_000 });
      console.error(`${TAG} screenshot: ${shot}`);
      writeFileSync(join(artifacts, `vscode-suite-${stamp}-code-server.log`), serverLog);
      if (Array.isArray(result.logs))
        writeFileSync(join(artifacts, `vscode-suite-${stamp}-workbench-logs.json`), JSON.stringify(result.logs, null, 1));
    } catch (err) {
      console.error(`${TAG} could not save artifacts: ${err.message}`);
    }
  }
  await Promise.race([context.close().catch(() => {}), sleep(5000)]);
  context = null;
  return result.code;
}

// Harmless workbench noise on a machine without internet access: the extension gallery (open-vsx),
// the signing module only Microsoft's builds carry (vsda), telemetry lookups, connection chatter.
const NOISE = [
  /open-vsx\.org/,
  /\bvsda\b/,
  /ENOTFOUND .*(telemetry|microsoft|visualstudio)/,
  /^Creating a socket|^Resolv(ing|ed) connection token/,
];

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`${TAG} ${err?.stack ?? err}`);
    process.exit(1);
  },
);
