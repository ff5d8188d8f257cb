/**
 * Runs a unit's check command (tests, build, lint) with no network and a minimal environment.
 * The code being checked was written by a model: it must not reach the network (exfiltration,
 * downloads that make checks non-reproducible) nor read the worker's secrets from its environment.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { startEgressRelay, type EgressRelay } from "../egress/relay.js";
import { BRIDGE_SCRIPT, EGRESS_BRIDGE_PORT } from "../egress/sandbox-bridge.js";

export type SandboxKind = "unshare-net" | "bwrap" | "none";

export interface RunCheckOptions {
  cwd: string;
  timeoutMs: number;
  env?: Record<string, string>;
  /** force one method (tests, or an operator's setting); default: the best one that works here */
  sandbox?: SandboxKind | "auto";
  /**
   * Lets the check reach the farm's egress proxy, and nothing else: the command still runs with no
   * route out, gets HTTP(S)_PROXY=http://127.0.0.1:3128, and that port is bridged (through a Unix
   * socket) to a relay in this process, which adds `proxyAuthorization` before passing the bytes on to
   * `proxyUrl`. The credential is never in the check's environment or files.
   */
  egress?: EgressOptions;
}

export interface EgressOptions {
  /** http://host:port of the egress proxy, as this worker reaches it */
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
  /** set when the command ran without a network sandbox: the caller should log it */
  sandboxNote?: string;
}

export const OUTPUT_CAP_BYTES = 64 * 1024;
/** after SIGTERM, how long the group gets before SIGKILL */
const KILL_GRACE_MS = 1000;

interface SandboxChoice {
  kind: SandboxKind;
  note?: string;
}

let choice: Promise<SandboxChoice> | undefined;

/** The network sandbox this machine supports, probed once (by really running `true` under it) and cached. */
export function detectSandbox(): Promise<SandboxChoice> {
  choice ??= probeAll();
  return choice;
}

async function probeAll(): Promise<SandboxChoice> {
  if (process.platform !== "linux") return { kind: "none", note: `no network sandbox could be made: ${process.platform} is not Linux` };
  const failures: string[] = [];
  for (const kind of ["bwrap", "unshare-net"] as const) {
    const why = await probe(kind);
    if (why === undefined) return { kind };
    failures.push(`${kind}: ${why}`);
  }
  return { kind: "none", note: `no network sandbox could be made: ${failures.join("; ")}; check commands run with network access` };
}

/** Runs `true` under the method; returns why it failed, or undefined when it works. */
async function probe(kind: Exclude<SandboxKind, "none">): Promise<string | undefined> {
  const dir = tmpdir();
  const [cmd, ...args] = wrap(kind, ["true"], dir, dir);
  return new Promise((resolve) => {
    let stderr = "";
    const child = spawn(cmd!, args, { stdio: ["ignore", "ignore", "pipe"], env: { PATH: childPath() } });
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ENOENT" ? `${cmd} is not installed` : err.message));
    child.on("close", (code) => resolve(code === 0 ? undefined : stderr.trim().split("\n")[0] || `exit code ${code}`));
  });
}

/** The argv that runs `argv` under the sandbox method; `extraRoBinds`: more folders to show (read-only) under bwrap. */
function wrap(kind: SandboxKind, argv: string[], cwd: string, home: string, extraRoBinds: string[] = []): string[] {
  if (kind === "bwrap") {
    const extra = extraRoBinds.flatMap((d) => ["--ro-bind", d, d]);
    // Read-only root so the command cannot change the worker or other worktrees; the worktree and the
    // throwaway HOME writable; a fresh /tmp. Binds after --tmpfs /tmp so worktrees under /tmp still show.
    // --unshare-pid: when bwrap dies, the kernel kills everything left in the sandbox.
    return [
      "bwrap", "--unshare-net", "--unshare-pid", "--die-with-parent",
      "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
      "--bind", cwd, cwd, "--bind", home, home, ...extra, "--chdir", cwd, "--", ...argv,
    ];
  }
  if (kind === "unshare-net") {
    // As root a plain new net namespace works; otherwise it needs a user namespace to be allowed.
    // Its own pid namespace and /proc too: the check must not see the worker's processes, whose
    // command lines and environments hold the worker's token.
    const user = process.getuid?.() === 0 ? [] : ["--map-root-user"];
    return ["unshare", "--net", "--pid", "--fork", "--mount-proc", ...user, "--", ...argv];
  }
  return argv;
}

/** The parent's PATH (not a secret, and the check needs node/npm), with this node's folder first. */
function childPath(): string {
  const parts = (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter);
  const nodeDir = dirname(process.execPath);
  return (parts.includes(nodeDir) ? parts : [nodeDir, ...parts]).join(delimiter);
}

async function resolveChoice(wanted: RunCheckOptions["sandbox"]): Promise<SandboxChoice> {
  if (wanted === undefined || wanted === "auto") return detectSandbox();
  if (wanted === "none") return { kind: "none", note: "no network sandbox: turned off by configuration" };
  const why = await probe(wanted);
  if (why !== undefined) throw new Error(`the ${wanted} sandbox does not work here: ${why}`);
  return { kind: wanted };
}

/** Runs `sh -c command` in the sandbox, killing its whole process group on timeout. */
export async function runCheck(command: string, opts: RunCheckOptions): Promise<CheckResult> {
  // Otherwise spawn reports a missing cwd as "spawn bwrap ENOENT", which points at the wrong thing.
  const dir = await stat(opts.cwd).catch(() => null);
  if (!dir?.isDirectory()) throw new Error(`cannot run the check: its folder ${opts.cwd} does not exist`);
  const sandbox = await resolveChoice(opts.sandbox);
  const home = await mkdtemp(join(tmpdir(), "optimus-check-home-"));
  let egress: EgressSetup | undefined;
  try {
    if (opts.egress) egress = await setUpEgress(opts.egress, sandbox.kind);
    const result = await runIn(sandbox.kind, command, opts, home, egress);
    return sandbox.note ? { ...result, sandboxNote: sandbox.note } : result;
  } finally {
    await egress?.close().catch(() => undefined);
    await rm(home, { recursive: true, force: true }).catch(() => undefined);
  }
}

interface EgressSetup {
  /** what HTTP(S)_PROXY points the check at */
  proxyEnv: string;
  /** the relay's Unix socket, to bridge from inside the namespace; undefined: no namespace, no bridge */
  socketPath?: string;
  close(): Promise<void>;
}

/**
 * Starts this check's relay to the egress proxy. In a network sandbox: on a Unix socket in a private
 * temp folder (the in-sandbox bridge connects to it). Without one (kind "none": the check has the
 * network anyway): on an ephemeral loopback port the check is pointed at directly.
 */
async function setUpEgress(o: EgressOptions, kind: SandboxKind): Promise<EgressSetup> {
  const relayOpts = { proxyUrl: o.proxyUrl, ...(o.proxyAuthorization !== undefined ? { proxyAuthorization: o.proxyAuthorization } : {}) };
  if (kind === "none") {
    const relay = await startEgressRelay({ ...relayOpts, listen: { host: "127.0.0.1", port: 0 } });
    return { proxyEnv: `http://127.0.0.1:${relay.port}`, close: () => relay.close() };
  }
  const dir = await mkdtemp(join(tmpdir(), "optimus-check-egress-")); // 0700
  const socketPath = join(dir, "proxy.sock");
  if (Buffer.byteLength(socketPath) > 100) {
    await rm(dir, { recursive: true, force: true });
    throw new Error(`cannot set up the check's egress: the socket path ${socketPath} is too long for a Unix socket (set TMPDIR to a shorter folder)`);
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

/**
 * The argv (before wrap) that runs the command behind the egress bridge: bring the namespace's
 * loopback up (unshare; bwrap already does), then exec node with the bridge script, which listens on
 * 127.0.0.1:3128 and only then runs `sh -c` with the command.
 */
function bridgedArgv(kind: SandboxKind, shellScript: string, socketPath: string): string[] {
  const loUp =
    kind === "unshare-net"
      ? `if ! PATH="$PATH:/usr/sbin:/sbin" ip link set lo up; then echo "optimus: cannot bring up loopback in the check's network namespace (ip link set lo up failed)"; exit 125; fi\n`
      : "";
  return ["sh", "-c", `exec 2>&1\n${loUp}exec "$1" -e "$2" "$3" "$4" "$5"`, "sh", process.execPath, BRIDGE_SCRIPT, String(EGRESS_BRIDGE_PORT), socketPath, shellScript];
}

function runIn(kind: SandboxKind, command: string, opts: RunCheckOptions, home: string, egress?: EgressSetup): Promise<CheckResult> {
  const started = performance.now();
  // Never the parent's environment: only what a build needs, plus what the caller passes on purpose.
  const env: Record<string, string> = { PATH: childPath(), HOME: home, LANG: process.env.LANG ?? "C.UTF-8", ...opts.env };
  if (egress) {
    for (const name of ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"]) env[name] = egress.proxyEnv;
    env.NO_PROXY = "";
    env.no_proxy = "";
  }
  // `exec 2>&1` first: one pipe for both streams keeps their true interleaving.
  const script = `exec 2>&1\n${command}`;
  const argv = egress?.socketPath !== undefined ? bridgedArgv(kind, script, egress.socketPath) : ["sh", "-c", script];
  const [cmd, ...args] = wrap(kind, argv, opts.cwd, home, egress?.socketPath !== undefined ? [dirname(egress.socketPath)] : []);
  const output = new TailBuffer(OUTPUT_CAP_BYTES);
  return new Promise((resolve) => {
    // detached: the child leads a new process group, so one kill reaches everything it started.
    const child = spawn(cmd!, args, { cwd: opts.cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let timedOut = false;
    let settled = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (exitCode: number | null): void => {
      if (settled) return;
      settled = true;
      timers.forEach(clearTimeout);
      resolve({ exitCode: timedOut ? null : exitCode, output: output.text(), timedOut, durationMs: Math.round(performance.now() - started), sandbox: kind });
    };
    child.stdout.on("data", (b: Buffer) => output.push(b));
    child.stderr.on("data", (b: Buffer) => output.push(b));
    child.on("error", (err) => {
      output.push(Buffer.from(`cannot start the check: ${err.message}\n`));
      finish(null);
    });
    child.on("close", (code) => finish(code));
    timers.push(
      setTimeout(() => {
        timedOut = true;
        output.push(Buffer.from(`\n[optimus: the check ran over ${opts.timeoutMs} ms and was killed]\n`));
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

/** Keeps only the last `cap` bytes of a stream, trimming in batches so a chatty check stays cheap. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private dropped = 0;

  constructor(private readonly cap: number) {}

  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    if (this.size > this.cap * 2) this.trim();
  }

  text(): string {
    this.trim();
    if (this.dropped === 0) return Buffer.concat(this.chunks).toString("utf8");
    const marker = Buffer.from("[… earlier output cut …]\n");
    let tail = Buffer.concat(this.chunks).subarray(marker.length);
    // Do not start in the middle of a UTF-8 character.
    let skip = 0;
    while (skip < tail.length && skip < 4 && (tail[skip]! & 0xc0) === 0x80) skip++;
    tail = tail.subarray(skip);
    return Buffer.concat([marker, tail]).toString("utf8");
  }

  private trim(): void {
    if (this.size <= this.cap) return;
    const all = Buffer.concat(this.chunks);
    this.dropped += all.length - this.cap;
    this.chunks = [all.subarray(all.length - this.cap)];
    this.size = this.cap;
  }
}
