/**
 * Runs an untrusted command (a unit's check on a worker, an eval on the farm) in the sandbox:
 * a minimal environment, a private HOME and /tmp, the worktree the only writable place, no network
 * but the egress bridge, and the whole process tree killed on timeout or when the caller aborts.
 */
import { spawn } from "node:child_process";
import { lstat, mkdir, mkdtemp, readlink, rm, rmdir, stat, symlink, unlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { startEgressRelay, type EgressRelay } from "../egress/relay.js";
import { BRIDGE_SCRIPT, EGRESS_BRIDGE_PORT } from "../egress/sandbox-bridge.js";
import { resolveSandbox, type SandboxKind, type SandboxSetting } from "./detect.js";
import { bwrapArgs, checkBind, sandboxExecProfile, type SandboxBind } from "./profile.js";
import { TailBuffer } from "./tail-buffer.js";
import { stripTerminalEscapes } from "@optimus/shared";

export interface RunCheckOptions {
  cwd: string;
  timeoutMs: number;
  env?: Record<string, string>;
  /** the operator's setting; default `auto` (the platform's sandbox, or refuse) */
  sandbox?: SandboxSetting;
  /** more read-only folders (dependency caches, toolchains outside the system folders) */
  readOnly?: string[];
  /** folders that must stay invisible even inside a read-only folder (the farm's home) */
  hide?: string[];
  /**
   * host folders seen at another place inside the worktree: the cached dependencies, read-only at
   * `<worktree>/node_modules` (under bwrap a bind mount; elsewhere a symlink in the worktree)
   */
  binds?: SandboxBind[];
  /** ends the command (its whole tree) early: a cancelled or lost lease */
  signal?: AbortSignal;
  /**
   * Lets the command reach the farm's egress proxy, and nothing else: it runs with no route out,
   * gets HTTP(S)_PROXY=http://127.0.0.1:3128, and that port is bridged (through a Unix socket) to a
   * relay in this process, which adds `proxyAuthorization` before passing the bytes on to `proxyUrl`.
   * The credential is never in the command's environment or files.
   */
  egress?: EgressOptions;
}

export interface EgressOptions {
  /** http://host:port of the egress proxy, as this process reaches it */
  proxyUrl: string;
  /** the Proxy-Authorization header value naming this worker to the proxy */
  proxyAuthorization?: string;
}

export interface CheckResult {
  exitCode: number | null;
  /** stdout and stderr interleaved, capped to the last 64 KiB */
  output: string;
  timedOut: boolean;
  durationMs: number;
  sandbox: SandboxKind;
  /** set when the command ran without a sandbox: the caller must log it */
  sandboxNote?: string;
}

export const OUTPUT_CAP_BYTES = 64 * 1024;
/** after SIGTERM, how long the group gets before SIGKILL */
const KILL_GRACE_MS = 1000;

/** The parent's PATH (not a secret, and the command needs node/npm), with this node's folder first. */
function childPath(): string {
  const parts = (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter);
  const nodeDir = dirname(process.execPath);
  return (parts.includes(nodeDir) ? parts : [nodeDir, ...parts]).join(delimiter);
}

/**
 * Runs `sh -c command` in the sandbox. Rejects (SandboxUnavailableError) when no sandbox works and
 * the setting is not `none`: an untrusted command never runs unsandboxed by accident.
 */
export async function runCheck(command: string, opts: RunCheckOptions): Promise<CheckResult> {
  // Otherwise spawn reports a missing cwd as "spawn bwrap ENOENT", which points at the wrong thing.
  const dir = await stat(opts.cwd).catch(() => null);
  if (!dir?.isDirectory()) throw new Error(`cannot run the check: its folder ${opts.cwd} does not exist`);
  const sandbox = await resolveSandbox(opts.sandbox);
  const scratch = await mkdtemp(join(tmpdir(), "optimus-check-")); // 0700: HOME and, on macOS, TMPDIR
  const home = join(scratch, "home");
  const tmp = join(scratch, "tmp");
  await mkdir(home);
  await mkdir(tmp);
  let egress: EgressSetup | undefined;
  try {
    for (const b of opts.binds ?? []) await placeBind(b, opts.cwd, sandbox.kind);
    if (opts.egress) egress = await setUpEgress(opts.egress, sandbox.kind);
    const result = await runIn(sandbox.kind, command, opts, home, tmp, egress);
    return sandbox.note ? { ...result, sandboxNote: sandbox.note } : result;
  } finally {
    await egress?.close().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * Makes a bind's destination ready in the worktree: an empty folder as bwrap's mount point, or,
 * where nothing can be mounted (sandbox-exec, none), a symlink to the source. A destination the
 * repository itself holds (a file, a folder with content) is refused rather than covered silently.
 */
async function placeBind(b: SandboxBind, cwd: string, kind: SandboxKind): Promise<void> {
  checkBind({ cwd }, b);
  await mkdir(dirname(b.dest), { recursive: true });
  const st = await lstat(b.dest).catch(() => null);
  if (kind === "bwrap") {
    if (st?.isSymbolicLink() && (await readlink(b.dest).catch(() => "")) === b.src)
      await unlink(b.dest); // left by a non-bwrap run
    else if (st && !st.isDirectory()) throw new Error(`cannot show the cached dependencies at ${b.dest}: the worktree has a file there`);
    await mkdir(b.dest, { recursive: true });
    return;
  }
  if (st?.isSymbolicLink()) {
    if ((await readlink(b.dest)) === b.src) return;
    await unlink(b.dest);
  } else if (st?.isDirectory()) {
    await rmdir(b.dest).catch(() => {
      throw new Error(`cannot show the cached dependencies at ${b.dest}: the worktree has a folder with content there`);
    });
  } else if (st) {
    throw new Error(`cannot show the cached dependencies at ${b.dest}: the worktree has a file there`);
  }
  await symlink(b.src, b.dest, "dir");
}

interface EgressSetup {
  /** what HTTP(S)_PROXY points the command at */
  proxyEnv: string;
  /** the relay's Unix socket, bridged from inside bwrap's network namespace */
  socketPath?: string;
  /** the relay's loopback port (macOS and `none`: no namespace, so no bridge) */
  port?: number;
  close(): Promise<void>;
}

/**
 * Starts this command's relay to the egress proxy. Under bwrap: on a Unix socket in a private temp
 * folder (the in-sandbox bridge connects to it). Elsewhere: on an ephemeral loopback port the
 * command is pointed at directly (sandbox-exec's profile allows that one port and nothing else).
 */
async function setUpEgress(o: EgressOptions, kind: SandboxKind): Promise<EgressSetup> {
  const relayOpts = { proxyUrl: o.proxyUrl, ...(o.proxyAuthorization !== undefined ? { proxyAuthorization: o.proxyAuthorization } : {}) };
  if (kind !== "bwrap") {
    const relay = await startEgressRelay({ ...relayOpts, listen: { host: "127.0.0.1", port: 0 } });
    return { proxyEnv: `http://127.0.0.1:${relay.port}`, port: relay.port, close: () => relay.close() };
  }
  const dir = await mkdtemp(join(tmpdir(), "optimus-check-egress-")); // 0700
  const socketPath = join(dir, "proxy.sock");
  if (Buffer.byteLength(socketPath) > 100) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(
      `cannot set up the check's egress: the socket path ${socketPath} is too long for a Unix socket (set TMPDIR to a shorter folder)`,
    );
  }
  let relay: EgressRelay;
  try {
    relay = await startEgressRelay({ ...relayOpts, listen: { path: socketPath } });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    proxyEnv: `http://127.0.0.1:${EGRESS_BRIDGE_PORT}`,
    socketPath,
    close: async () => {
      await relay.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The argv (before the sandbox) that runs the command behind the egress bridge (bwrap brings loopback up). */
function bridgedArgv(shellScript: string, socketPath: string): string[] {
  return [
    "sh",
    "-c",
    `exec 2>&1\nexec "$1" -e "$2" "$3" "$4" "$5"`,
    "sh",
    process.execPath,
    BRIDGE_SCRIPT,
    String(EGRESS_BRIDGE_PORT),
    socketPath,
    shellScript,
  ];
}

function sandboxed(kind: SandboxKind, argv: string[], opts: RunCheckOptions, home: string, tmp: string, egress?: EgressSetup): string[] {
  const view = {
    cwd: opts.cwd,
    home,
    readOnly: opts.readOnly ?? [],
    hide: opts.hide ?? [],
    binds: opts.binds ?? [],
    readWrite: egress?.socketPath !== undefined ? [dirname(egress.socketPath)] : [],
  };
  if (kind === "bwrap") return ["bwrap", ...bwrapArgs(view), "--", ...argv];
  if (kind === "sandbox-exec")
    return [
      "sandbox-exec",
      "-p",
      sandboxExecProfile({ ...view, tmp, ...(egress?.port !== undefined ? { egressPort: egress.port } : {}) }),
      ...argv,
    ];
  return argv;
}

function runIn(
  kind: SandboxKind,
  command: string,
  opts: RunCheckOptions,
  home: string,
  tmp: string,
  egress?: EgressSetup,
): Promise<CheckResult> {
  const started = performance.now();
  // Never the parent's environment: only what a build needs, plus what the caller passes on purpose.
  const env: Record<string, string> = {
    PATH: childPath(),
    HOME: home,
    LANG: process.env.LANG ?? "C.UTF-8",
    ...(kind === "bwrap" ? {} : { TMPDIR: tmp }),
    ...opts.env,
  };
  if (egress) {
    for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) env[name] = egress.proxyEnv;
    env.NO_PROXY = "";
    env.no_proxy = "";
  }
  // `exec 2>&1` first: one pipe for both streams keeps their true interleaving.
  const script = `exec 2>&1\n${command}`;
  const inner = egress?.socketPath !== undefined ? bridgedArgv(script, egress.socketPath) : ["sh", "-c", script];
  const [cmd, ...args] = sandboxed(kind, inner, opts, home, tmp, egress);
  const output = new TailBuffer(OUTPUT_CAP_BYTES);
  return new Promise((resolve) => {
    // detached: the child leads a new process group, so one kill reaches everything it started
    // (and under bwrap, --die-with-parent plus its own pid namespace end the rest with it).
    const child = spawn(cmd!, args, { cwd: opts.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let timedOut = false;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (exitCode: number | null): void => {
      if (settled) return;
      settled = true;
      timers.forEach(clearTimeout);
      opts.signal?.removeEventListener("abort", onAbort);
      // Colour codes and cursor moves are noise to a model and a hazard in a terminal: plain text only.
      resolve({
        exitCode: timedOut || opts.signal?.aborted ? null : exitCode,
        output: stripTerminalEscapes(output.text(), { multiline: true }),
        timedOut,
        durationMs: Math.round(performance.now() - started),
        sandbox: kind,
      });
    };
    const stop = (why: string): void => {
      output.push(Buffer.from(`\n[optimus: ${why}]\n`));
      killGroup(child.pid, "SIGTERM");
      timers.push(setTimeout(() => killGroup(child.pid, "SIGKILL"), KILL_GRACE_MS));
      // A process that left the group (setsid) could hold the pipes open forever: stop waiting for them.
      timers.push(
        setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finish(null);
        }, KILL_GRACE_MS * 2),
      );
    };
    const onAbort = () => stop("the check was stopped (its lease ended)");
    child.stdout.on("data", (b: Buffer) => output.push(b));
    child.stderr.on("data", (b: Buffer) => output.push(b));
    child.on("error", (err) => {
      output.push(Buffer.from(`cannot start the check: ${err.message}\n`));
      finish(null);
    });
    child.on("close", (code) => finish(code));
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener("abort", onAbort, { once: true });
    timers.push(
      setTimeout(() => {
        timedOut = true;
        stop(`the check ran over ${opts.timeoutMs} ms and was killed`);
      }, opts.timeoutMs),
    );
  });
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}
