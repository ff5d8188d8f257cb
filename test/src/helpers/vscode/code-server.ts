import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../ports.js";
import { sleep } from "../wait.js";

export const CODE_SERVER_VERSION = "4.100.3";
export const INSTALL_HINT = "run scripts/install-vscode-test-deps.sh (installs code-server and Chromium)";
export const CHROMIUM = process.env.OPTIMUS_CHROMIUM || "/usr/bin/chromium";
/** Chromium flags that work headless as root in a container: no sandbox (Chromium's refuses root), no GPU, no QUIC, nothing fetched in the background. */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Settings that keep the workbench quiet and deterministic; written into each fresh user-data-dir. */
export const QUIET_SETTINGS: Record<string, unknown> = {
  "workbench.startupEditor": "none",
  "workbench.tips.enabled": false,
  "workbench.enableExperiments": false,
  "workbench.welcomePage.walkthroughs.openOnInstall": false,
  "extensions.autoUpdate": false,
  "extensions.autoCheckUpdates": false,
  "extensions.ignoreRecommendations": true,
  "telemetry.telemetryLevel": "off",
  "update.mode": "none",
  "security.workspace.trust.enabled": false,
  "git.openRepositoryInParentFolders": "never",
  "chat.disableAIFeatures": true,
};

/** Where scripts/install-vscode-test-deps.sh puts code-server (or $OPTIMUS_CODE_SERVER). */
export function codeServerPath(): string {
  if (process.env.OPTIMUS_CODE_SERVER) return process.env.OPTIMUS_CODE_SERVER;
  const cache = process.env.OPTIMUS_VSCODE_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "optimus-vscode-test");
  return join(cache, `code-server-${CODE_SERVER_VERSION}`, "node_modules", ".bin", "code-server");
}

/** The code-server executable; throws with the install hint when it is not there. */
export function codeServerBinary(): string {
  const p = codeServerPath();
  if (!existsSync(p)) throw new Error(`code-server ${CODE_SERVER_VERSION} not found at ${p}: ${INSTALL_HINT}, or set OPTIMUS_CODE_SERVER`);
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: ${INSTALL_HINT}, or set OPTIMUS_CHROMIUM`);
  return p;
}

// ---- cleanup that also runs when the test process is interrupted ----------------------------------

const cleanups = new Set<() => void>(); // synchronous: kill a process group, remove a folder
const closers = new Set<() => Promise<void>>(); // asynchronous, run first on a signal: close browsers
let handlersInstalled = false;
let interrupted = false;
const SIGNALS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

function runCleanups(): void {
  for (const c of [...cleanups]) {
    try {
      c();
    } catch {
      // best effort: the process is going away
    }
  }
}

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on("exit", runCleanups);
  for (const [sig, num] of Object.entries(SIGNALS)) {
    process.on(sig, () => {
      if (interrupted) {
        // A second signal: no more waiting.
        runCleanups();
        process.exit(128 + num);
      }
      interrupted = true;
      // Browsers first (≤ 3 s), so their profile folders can be removed; then servers and folders; then
      // die as the signal would have made us (playwright may exit sooner: "exit" runs the rest).
      const closing = Promise.allSettled([...closers].map((c) => c()));
      void Promise.race([closing, sleep(3000)]).finally(() => {
        runCleanups();
        process.exit(128 + num);
      });
    });
  }
}

/**
 * Registers a synchronous cleanup (kill a process group, remove a folder) that runs on process exit and
 * on SIGINT/SIGTERM/SIGHUP; returns the function that runs it now (once) and unregisters it.
 */
export function registerCleanup(fn: () => void): () => void {
  installHandlers();
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    cleanups.delete(once);
    fn();
  };
  cleanups.add(once);
  return once;
}

/** Registers an asynchronous close (a browser) that runs before the cleanups when a signal arrives. */
export function registerCloser(fn: () => Promise<void>): () => void {
  installHandlers();
  closers.add(fn);
  return () => closers.delete(fn);
}

/** A scratch folder removed on cleanup (and on interruption). */
export function scratchDir(prefix: string): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  const remove = registerCleanup(() => {
    try {
      // A browser that has just exited may still be flushing its profile: retry a little.
      rmSync(path, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
    } catch {
      // a leftover folder in $TMPDIR is not worth failing a test for
    }
  });
  return { path, remove };
}

/**
 * The environment for code-server and its extension host: isolated HOME and TMPDIR (its IPC and git
 * sockets go there, not into /tmp), nothing from `node --test`.
 */
export function serverEnv(home: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const tmp = join(home, "tmp");
  mkdirSync(tmp, { recursive: true });
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...extra,
    HOME: home,
    TMPDIR: tmp,
    XDG_CONFIG_HOME: join(home, ".config"),
    XDG_DATA_HOME: join(home, ".local", "share"),
    XDG_CACHE_HOME: join(home, ".cache"),
  };
  for (const k of ["NODE_TEST_CONTEXT", "NODE_OPTIONS", "ELECTRON_RUN_AS_NODE", "VSCODE_IPC_HOOK_CLI"]) delete env[k];
  return env;
}

export interface CodeServerProfile {
  /** Scratch root holding home/, user-data/ and extensions/; removed by `remove()`. */
  root: string;
  home: string;
  userDataDir: string;
  extensionsDir: string;
  remove: () => void;
}

/** Fresh HOME, user-data-dir (with quiet settings) and extensions-dir. */
export function newProfile(settings: Record<string, unknown> = {}): CodeServerProfile {
  const { path: root, remove } = scratchDir("optimus-code-server-");
  const home = join(root, "home");
  const userDataDir = join(root, "user-data");
  const extensionsDir = join(root, "extensions");
  for (const d of [join(home, "tmp"), join(userDataDir, "User"), extensionsDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(userDataDir, "User", "settings.json"), JSON.stringify({ ...QUIET_SETTINGS, ...settings }, null, 2));
  return { root, home, userDataDir, extensionsDir, remove };
}

/** `code-server --install-extension X.vsix` into the profile (synchronous, ~0.5 s). */
export function installVsix(profile: CodeServerProfile, vsix: string): void {
  const bin = codeServerBinary();
  const r = spawnSync(
    bin,
    ["--user-data-dir", profile.userDataDir, "--extensions-dir", profile.extensionsDir, "--install-extension", vsix, "--force"],
    { env: serverEnv(profile.home), encoding: "utf8", timeout: 120_000 },
  );
  if (r.status !== 0)
    throw new Error(
      `code-server --install-extension ${vsix} failed (${r.status ?? r.signal ?? r.error?.message}):\n${r.stdout}${r.stderr}`,
    );
}

/** A running code-server in its own process group. */
export class CodeServer {
  log = "";
  private exited: string | null = null;
  private killGroup: () => void = () => {};

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** `vscode-remote://` URI of an absolute path on this server (for the workbench payload). */
  remote(absPath: string): string {
    return `vscode-remote://127.0.0.1:${this.port}${absPath}`;
  }

  static async start(profile: CodeServerProfile, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CodeServer> {
    const bin = codeServerBinary();
    const port = await freePort();
    const args = [
      "--auth",
      "none",
      "--bind-addr",
      `127.0.0.1:${port}`,
      "--user-data-dir",
      profile.userDataDir,
      "--extensions-dir",
      profile.extensionsDir,
      "--disable-telemetry",
      "--disable-update-check",
      "--disable-workspace-trust",
      "--disable-getting-started-override",
    ];
    const child = spawn(bin, args, {
      env: serverEnv(profile.home, env),
      cwd: profile.home,
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const server = new CodeServer(child, port);
    const kill = registerCleanup(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // already gone
      }
    });
    server.killGroup = kill;
    child.stdout!.on("data", (b: Buffer) => (server.log += b.toString()));
    child.stderr!.on("data", (b: Buffer) => (server.log += b.toString()));
    child.on("exit", (code, signal) => (server.exited = `code-server exited (${code ?? signal})`));
    child.on("error", (err) => (server.exited = `code-server failed to start: ${err.message}`));
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (server.exited) throw new Error(`${server.exited} before listening:\n${server.log}`);
      try {
        if ((await fetch(`${server.url}/healthz`)).ok) return server;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) {
        await server.stop();
        throw new Error(`code-server did not listen on ${server.url} within ${timeoutMs} ms:\n${server.log}`);
      }
      await sleep(100);
    }
  }

  get running(): boolean {
    return this.exited === null;
  }

  /** SIGKILL to the whole process group (server, extension host, watchers); waits for the exit. */
  async stop(): Promise<void> {
    const exited = this.running ? new Promise((r) => this.child.once("exit", r)) : Promise.resolve();
    this.killGroup();
    await Promise.race([exited, sleep(5000)]);
  }
}
