/**
 * The one way tests start a farm: in this process (`startFarm`: for tests that look inside it) or
 * as a process (`optimus farm up`: for tests that read its output, signal or kill it), on a
 * repository folder or an origin URL, optionally with `optimus worker` processes.
 *
 * Either way it is configured as `farm up` configures it: the repository folder's
 * `.optimus/config.yaml` over the embedded defaults, read by the farm's own loader, then the test's
 * settings over it (shallow, as `farm up`'s flags are) — a process gets them in a `--config` file —
 * and its first admin token is written where `farm up` writes it. `stop()` and `start()` restart it
 * on the same repository and port; it is stopped after the test.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { startFarm, type Farm, type FarmClient, type FarmTrust } from "@optimus/farm-server";
import { adminTokenFile, loadConfig } from "@optimus/farm-server/dist/cli/context.js";
import type { ServerConfig, ServerConfigInput } from "@optimus/shared";
import { runCli } from "./cli.js";
import { httpClientFor } from "./clients.js";
import { CLI } from "./paths.js";
import { freePort } from "./ports.js";
import { CliProcess } from "./processes.js";
import { makeRepo, writeFarmConfig } from "./repo.js";
import { waitFor } from "./wait.js";

/** What cleans up after a test (`t` of node:test); a benchmark without one stops its farm itself. */
export type Cleanup = { after(fn: () => unknown): void } | undefined;

export interface TestFarmOptions {
  /** `in-process` (default) or `process` (`optimus farm up`) */
  mode?: "in-process" | "process";
  /**
   * The origin: a repository folder or a git URL. Default: a fresh repository with the foundation's
   * `.optimus/config.yaml` (no automatic review units, no planner: see `writeFarmConfig`).
   */
  repo?: string;
  /** settings over the repository's `.optimus/config.yaml` (each top-level key replaces the file's) */
  config?: ServerConfigInput;
  /** `optimus worker` processes, one codegen (`codegen-1`) and one review (`review-1`) on this model, connected before the farm is returned */
  workers?: { model: string; maxIterations?: number };
  /**
   * with `config.tls`: the pin of its certificate (`optimus farm cert` prints it), which the test's
   * clients, the CLI (OPTIMUS_FARM_PIN) and its `optimus worker` processes (--farm-pin) check
   */
  farmPin?: string;
  /** in process: the farm's logger (default: silent, or OPTIMUS_LOG_LEVEL) */
  log?: Logger;
  /** as a process: more `farm up` flags (`--heartbeat-ms`, `--workers` …) and environment */
  args?: string[];
  env?: Record<string, string>;
  /** as a process: how long a start may take before it fails */
  startTimeoutMs?: number;
  /** as a process: on a pseudo-terminal (`script`), as a person at a terminal runs it (its output is then the terminal's) */
  terminal?: boolean;
}

const isUrl = (repo: string) => /^[a-z][a-z0-9+.-]*:\/\//i.test(repo);

/** What every test farm offers, in process or as a process. */
abstract class TestFarmBase {
  /** its port, kept across restarts (in process: chosen by the first start) */
  port = 0;
  /** the `optimus worker` processes of `workers`, if any */
  workers: CliProcess[] = [];
  /** their work folder */
  workDir?: string;

  private tokenFile?: string;

  constructor(
    readonly repo: string,
    protected readonly options: TestFarmOptions,
    protected readonly t: Cleanup,
  ) {}

  get url(): string {
    return `${this.options.config?.tls ? "https" : "http"}://127.0.0.1:${this.port}`;
  }

  /** what clients trust in its certificate (its pin), when it serves TLS */
  get trust(): FarmTrust | undefined {
    return this.options.farmPin ? { pins: [this.options.farmPin], pinFrom: "the test's farmPin" } : undefined;
  }

  /** The farm's settings as `farm up` reads them (the repository's file, then the test's settings), on this port. */
  settings(): ServerConfig {
    // The test's settings are input (defaults not yet applied): the loader validates the merge with the shared schema.
    return loadConfig(isUrl(this.repo) ? null : this.repo, { ...this.options.config, port: this.port } as Partial<ServerConfig>);
  }

  /** the admin token, from the file `farm up` writes it to (the farm issues one on its first start only) */
  get adminToken(): string {
    this.tokenFile ??= adminTokenFile(this.repo, this.settings());
    return readFileSync(this.tokenFile, "utf8").trim();
  }

  /** an HTTP client with the admin token */
  get client(): FarmClient {
    return httpClientFor(this.url, this.adminToken, this.trust);
  }

  /** the environment that points the CLI at this farm with the admin token (and its pin, over TLS) */
  get env(): { OPTIMUS_FARM: string; OPTIMUS_TOKEN: string; OPTIMUS_FARM_PIN?: string } {
    return {
      OPTIMUS_FARM: this.url,
      OPTIMUS_TOKEN: this.adminToken,
      ...(this.options.farmPin ? { OPTIMUS_FARM_PIN: this.options.farmPin } : {}),
    };
  }

  abstract get running(): boolean;
  protected abstract launch(): Promise<void>;
  abstract stop(): Promise<void>;

  /** Starts the farm (again) on its repository and port; nothing if it runs. */
  async start(): Promise<void> {
    if (!this.running) await this.launch();
  }

  /** The output worth reading when a wait failed (the farm's, as a process, and its workers'). */
  protected logs(): string {
    return this.workers.length ? `\n--- workers ---\n${this.workers.map((w) => w.log.slice(-3000)).join("\n")}` : "";
  }

  /** Waits for a task's integration branch to reach its target; on a timeout, says where its units are, with the logs. */
  untilMerged = (taskId: string, what: string, timeoutMs = 120_000) => {
    const client = this.client;
    return waitFor(
      async () => {
        const r = await client.tasks.get.query({ taskId });
        return r.task.merge?.commit ? r : null;
      },
      what,
      timeoutMs,
    ).catch(async (e) => {
      const got = await client.tasks.get.query({ taskId }).catch(() => null);
      const units = got?.units.map((u) => [u.unitId, u.state, u.reason]) ?? [];
      throw new Error(
        `${(e as Error).message}\ntask merge: ${JSON.stringify(got?.task.merge ?? null)}\nunits: ${JSON.stringify(units)}${this.logs()}`,
      );
    });
  };
}

/** A real farm server (HTTP + WebSocket on a loopback port) in this process. */
export class InProcessTestFarm extends TestFarmBase {
  private current: Farm | null = null;

  /** the running farm server, to look inside it */
  get server(): Farm {
    if (!this.current) throw new Error("the test farm is stopped");
    return this.current;
  }

  get running(): boolean {
    return this.current !== null;
  }

  protected async launch(): Promise<void> {
    const config = this.settings();
    const server = await startFarm({
      repo: this.repo,
      config,
      log: this.options.log ?? pino({ level: process.env.OPTIMUS_LOG_LEVEL ?? "silent" }),
    });
    this.current = server;
    this.port = server.port;
    // As `farm up` does: the first admin token goes to a file of the farm's state only its user reads.
    if (server.startup.adminToken) {
      const file = adminTokenFile(this.repo, config);
      writeFileSync(file, server.startup.adminToken.token + "\n", { mode: 0o600 });
      chmodSync(file, 0o600);
    }
  }

  /** `close()`: the farm's own graceful stop. */
  async stop(): Promise<void> {
    const s = this.current;
    this.current = null;
    await s?.close();
  }
}

/** The real farm server as a child process (`optimus farm up`): its output is kept; it can be signalled and SIGKILLed. */
export class ProcessTestFarm extends TestFarmBase {
  private child: ChildProcess | null = null;
  private configDir?: string;
  /** everything it wrote to stdout and stderr, over all its starts */
  log = "";
  /** how many of its processes exited, and the last one's exit code */
  exits = 0;
  exitCode: number | null = null;
  /** what its last start became: the leader (listening), or a standby of another farm node */
  role: "leader" | "standby" | null = null;

  /** the running process's id (to inspect or signal it), if it runs */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== null;
  }

  /** The test's settings go to `farm up` as a `--config` file, written at each start as the loader resolves them. */
  private configArgs(): string[] {
    if (!this.options.config) return [];
    if (!this.configDir) {
      const dir = mkdtempSync(join(tmpdir(), "optimus-farm-config-"));
      this.configDir = dir;
      this.t?.after(() => rmSync(dir, { recursive: true, force: true }));
    }
    const file = join(this.configDir, "config.yaml");
    writeFileSync(file, JSON.stringify(this.settings()) + "\n"); // JSON is YAML
    return ["--config", file];
  }

  protected async launch(): Promise<void> {
    const o = this.options;
    // A URL is the team's origin (`--origin`); a folder is taken as the origin (`--repo`).
    const where = isUrl(this.repo) ? ["--origin", this.repo] : ["--repo", this.repo];
    const argv = [process.execPath, CLI, "farm", "up", ...where, "--port", String(this.port), ...this.configArgs(), ...(o.args ?? [])];
    // On a terminal: util-linux `script` gives the farm a pseudo-terminal and copies what it shows to
    // our pipe; `exec` makes the farm the shell's own process, so a signal to the session reaches it.
    const [file, args] = o.terminal
      ? ["script", ["-qefc", `exec ${argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ")}`, "/dev/null"]]
      : [argv[0]!, argv.slice(1)];
    const child = spawn(file, args, {
      env: { ...process.env, OPTIMUS_LOG_LEVEL: process.env.OPTIMUS_LOG_LEVEL ?? "warn", ...o.env },
      stdio: [o.terminal ? "pipe" : "ignore", "pipe", "pipe"],
    });
    this.child = child;
    child.once("exit", (code) => {
      this.exits++;
      this.exitCode = code;
      if (this.child === child) this.child = null;
    });
    const from = this.log.length; // look for this start's banner only
    const timeoutMs = o.startTimeoutMs ?? 30_000;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`farm did not start in ${timeoutMs} ms:\n${this.log}`)), timeoutMs);
      child.stderr!.on("data", (b: Buffer) => {
        this.log += b.toString();
        // A farm node that finds another leading its PostgreSQL store stands by (and answers on its port).
        const ready = /Optimus farm (listening|standing by) on/.exec(this.log.slice(from));
        if (ready) {
          this.role = ready[1] === "listening" ? "leader" : "standby";
          clearTimeout(timer);
          resolve();
        }
      });
      child.stdout!.on("data", (b: Buffer) => {
        this.log += b.toString();
        // On a terminal, everything comes through stdout.
        if (o.terminal && this.log.includes("Optimus farm listening on", from)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`farm exited with ${code} before listening:\n${this.log}`));
      });
    });
  }

  /** SIGTERM (the graceful stop a service manager sends), or SIGINT (Ctrl-C); waits for the exit. */
  async stop(signal: "SIGTERM" | "SIGINT" = "SIGTERM"): Promise<void> {
    await this.signal(signal);
  }

  /** SIGKILL: no shutdown code runs, as in a power cut or an OOM kill. */
  async kill9(): Promise<void> {
    await this.signal("SIGKILL");
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill(sig);
    // A graceful stop that takes too long is a failure to report, not a test run that hangs.
    const timer =
      sig === "SIGKILL"
        ? null
        : setTimeout(() => {
            this.log += `\n[test] farm did not stop within 15 s of ${sig}; killed\n`;
            c.kill("SIGKILL");
          }, 15_000);
    await exited;
    if (timer) clearTimeout(timer);
    this.child = null;
  }

  protected override logs(): string {
    return `\n--- farm ---\n${this.log.slice(-3000)}${super.logs()}`;
  }
}

export type TestFarm = InProcessTestFarm | ProcessTestFarm;
/** with `workers`, their work folder is there */
type WithWorkers<O> = O extends { workers: object } ? { workDir: string } : unknown;

/**
 * Starts a farm (see the top of this file); stopped after the test (`t`), with its workers.
 * Without `t` (a benchmark), the caller stops it.
 */
export async function startTestFarm<O extends TestFarmOptions & { mode: "process" }>(
  t: Cleanup,
  options: O,
): Promise<ProcessTestFarm & WithWorkers<O>>;
export async function startTestFarm<O extends TestFarmOptions & { mode?: "in-process" }>(
  t: Cleanup,
  options?: O,
): Promise<InProcessTestFarm & WithWorkers<O>>;
export async function startTestFarm(t: Cleanup, options: TestFarmOptions = {}): Promise<TestFarm> {
  let repo = options.repo;
  if (repo === undefined) {
    repo = makeRepo(t);
    writeFarmConfig(repo);
  }
  const farm = options.mode === "process" ? new ProcessTestFarm(repo, options, t) : new InProcessTestFarm(repo, options, t);
  // In process, port 0 lets the first start choose one; `farm up` is told a free one.
  farm.port = options.config?.port || (options.mode === "process" ? await freePort() : 0);
  t?.after(() => farm.stop());
  try {
    await farm.start();
  } catch (err) {
    await farm.stop(); // a start that failed half-way (a process that never said it listens) leaves nothing running
    throw err;
  }
  if (options.workers) await startCliWorkers(t, farm, options.workers);
  return farm;
}

/**
 * `optimus worker` processes for codegen and review (node ids `<role>-1`) on one model URL, each with
 * a token of its own (a review counts only from another token than the author's) handed over in a
 * 0600 file, never on the command line where `ps` shows it; waits until both wait for units.
 */
async function startCliWorkers(t: Cleanup, farm: TestFarm, o: { model: string; maxIterations?: number }): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), "optimus-workers-"));
  t?.after(() => rmSync(workDir, { recursive: true, force: true }));
  farm.workDir = workDir;
  const extra = o.maxIterations ? ["--max-iterations", String(o.maxIterations)] : [];
  for (const role of ["codegen", "review"]) {
    const tokenFile = join(workDir, `${role}.token`);
    writeFileSync(
      tokenFile,
      (
        await runCli(["token", "create", "--role", "worker", "--name", role === "codegen" ? "node-1" : "node-1-review"], {
          cwd: farm.repo,
          env: farm.env,
        })
      ).stdout,
      { mode: 0o600 },
    );
    farm.workers.push(
      new CliProcess(
        [
          "worker",
          "--role",
          role,
          "--model",
          o.model,
          ...extra,
          "--node-id",
          `${role}-1`,
          "--work-dir",
          join(workDir, role),
          "--farm",
          farm.url,
          ...(farm.trust?.pins ? ["--farm-pin", farm.trust.pins.join(",")] : []),
          "--token-file",
          tokenFile,
        ],
        { cwd: farm.repo },
      ),
    );
  }
  t?.after(() => Promise.all(farm.workers.map((w) => w.stop())));
  await waitFor(() => farm.workers.every((w) => w.log.includes("waiting for units")), "both workers to connect", 30_000);
}
