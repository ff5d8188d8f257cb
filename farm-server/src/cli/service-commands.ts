/**
 * `optimus service install | uninstall | status | logs`: writes the service's file (drawn by the
 * pure generators of ../service), loads it with the platform's service manager, and reports what
 * the manager says. Exit codes of `status`: 0 running, 3 not running, 4 not installed, 69 the
 * service manager cannot be reached (EX_UNAVAILABLE, also for install and uninstall).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { UnitRole } from "@optimus/shared";
import { ensureHome, farmHome } from "../home/farm-home.js";
import { LaunchdManager } from "../service/launchd-manager.js";
import { commandLine, runOn, ServiceManagerUnreachable, type ServiceManager, type ServiceStatus } from "../service/service-manager.js";
import { SERVICE_LOG_ENV } from "../service/service-log.js";
import { SERVICE_NAME, type ServiceKind, type ServiceScope, type ServiceSpec } from "../service/service-spec.js";
import { SystemdManager } from "../service/systemd-manager.js";
import { STOP_DEADLINE_MS } from "./shutdown.js";
import { resolveRepo, type GlobalOptions } from "./context.js";
import { gpuChoice } from "./gpu-option.js";
import { CliError } from "./errors.js";
import { FARM_OPTIONS, THREADS_OPTION, WORKER_OPTIONS, type PassedOption } from "./service-options.js";
import { readTokenFile } from "./token-source.js";
import { trustFromOptions } from "./farm-trust-options.js";

/** EX_UNAVAILABLE (sysexits.h): the service manager is not there to ask. */
export const EXIT_UNREACHABLE = 69;
const EXIT_NOT_RUNNING = 3;
const EXIT_NOT_INSTALLED = 4;

type Opts = GlobalOptions & Record<string, string | boolean | undefined>;

/** This CLI, as the service runs it: the same node binary and main.js, by absolute path. */
const CLI_MAIN = fileURLToPath(new URL("./main.js", import.meta.url));
const REMOTE = /^[a-z][a-z0-9+.-]*:\/\/|^[^/@:]+@[^/:]+:/i;

function kindOf(kind: string | undefined): ServiceKind {
  if (kind === undefined || kind === "farm" || kind === "worker") return kind ?? "farm";
  throw new CliError(`the service is the farm or a worker: \`optimus service … farm\` or \`… worker\`, not '${kind}'`, 2);
}

function scopeOf(o: Opts): ServiceScope {
  if (o.user && o.system) throw new CliError("pass --user or --system, not both", 2);
  return o.system ? "system" : "user";
}

function managerFor(o: Opts): ServiceManager {
  const dir =
    typeof o.unitDir === "string"
      ? resolve(o.unitDir)
      : process.env.OPTIMUS_SERVICE_DIR
        ? resolve(process.env.OPTIMUS_SERVICE_DIR)
        : undefined;
  const kind = o.manager ?? (process.platform === "darwin" ? "launchd" : process.platform === "linux" ? "systemd" : undefined);
  if (kind === "systemd") return new SystemdManager(dir);
  if (kind === "launchd") return new LaunchdManager(dir);
  if (kind === undefined)
    throw new CliError(`no service manager for ${process.platform}: services are systemd units (Linux) or launchd jobs (macOS)`);
  throw new CliError(`--manager must be systemd or launchd, got '${String(kind)}'`, 2);
}

/** The service's name: --name, else optimus-farm or optimus-worker-<role>. */
function nameOf(kind: ServiceKind, o: Opts): string {
  const name =
    typeof o.name === "string" ? o.name : kind === "farm" ? "optimus-farm" : o.role ? `optimus-worker-${String(o.role)}` : undefined;
  if (!name) throw new CliError("which worker service: pass --role codegen|review (or --name <name>)", 2);
  if (!SERVICE_NAME.test(name)) throw new CliError(`--name must be letters, digits, '.', '_' or '-' (up to 64), got '${name}'`, 2);
  return name;
}

const logFileOf = (name: string) => join(farmHome(), "logs", `${name}.log`);

/** The options passed on to the service's command, checked now so a typo does not become a crash loop. */
function passOn(options: PassedOption[], o: Opts): string[] {
  const out: string[] = [];
  for (const p of options) {
    const v = o[p.key];
    if (typeof v !== "string") continue;
    const flag = p.flag.split(" ")[0]!;
    if (p.kind === "int" && !/^\d+$/.test(v)) throw new CliError(`${flag} must be a whole number, got '${v}'`, 2);
    if (p.kind === "sandbox" && !["auto", "bwrap", "sandbox-exec", "none"].includes(v))
      throw new CliError(`--sandbox must be auto, bwrap, sandbox-exec or none, got '${v}'`, 2);
    if (p.kind === "gpu") gpuChoice(v, flag); // whether the machine can use it is checked when the service starts
    let value = v;
    if (p.kind === "path") value = resolve(v);
    if (p.kind === "model" && !/^https?:\/\//.test(v)) {
      value = resolve(v);
      if (!existsSync(value)) throw new CliError(`no model at ${value}: pass ${flag} <file.gguf> or an OpenAI-compatible /v1 URL`, 2);
    }
    out.push(flag, value);
  }
  return out;
}

/** What the service runs, from the install command's options; refuses what would put a secret in the file. */
export function serviceSpecFrom(kindArg: string | undefined, o: Opts, manager: ServiceManager): ServiceSpec {
  if (o.token)
    throw new CliError(
      "a service does not take --token: its file would hold the token for every user of the machine to read; pass --token-file <file> (mode 0600) instead",
      2,
    );
  const kind = kindOf(kindArg);
  const scope = scopeOf(o);
  const name = nameOf(kind, o);
  if (o.runAs !== undefined && (scope !== "system" || !/^[a-z_][a-z0-9_.-]*\$?$/i.test(String(o.runAs))))
    throw new CliError("--run-as <user> is for a --system service, and takes an account name", 2);
  const home = farmHome();
  const args = [process.execPath, CLI_MAIN];
  let description: string;
  let workingDirectory = home;
  if (kind === "farm") {
    const wrong = WORKER_OPTIONS.find((p) => o[p.key] !== undefined);
    if (wrong)
      throw new CliError(
        `${wrong.flag.split(" ")[0]} is a worker's option; a farm service takes ${FARM_OPTIONS.map((p) => p.flag.split(" ")[0]).join(", ")}`,
        2,
      );
    // The service starts in its home, not here: the repository is named by an absolute path or a URL.
    const origin = o.origin ? (REMOTE.test(o.origin.trim()) ? o.origin.trim() : resolve(o.origin.trim())) : undefined;
    const repo = origin ? undefined : resolveRepo(o.repo);
    if (o.workers && o.workers !== "0" && !o.workerModel) throw new CliError("--workers needs --worker-model <file.gguf|url>", 2);
    args.push(...(origin ? ["--origin", origin] : ["--repo", repo!]), "farm", "up", ...passOn([...FARM_OPTIONS, THREADS_OPTION], o));
    description = `Optimus farm following ${origin ?? repo}`;
  } else {
    const wrong = FARM_OPTIONS.find((p) => o[p.key] !== undefined);
    if (wrong)
      throw new CliError(
        `${wrong.flag.split(" ")[0]} is the farm's option; a worker service takes ${WORKER_OPTIONS.map((p) => p.flag.split(" ")[0]).join(", ")}`,
        2,
      );
    if (!UnitRole.safeParse(o.role).success)
      throw new CliError(`a worker service needs --role codegen or review${o.role ? `, got '${String(o.role)}'` : ""}`, 2);
    if (!o.model) throw new CliError("a worker service needs --model <file.gguf|http://host:port/v1>", 2);
    const farm = o.farm ?? process.env.OPTIMUS_FARM;
    if (!farm) throw new CliError("a worker service needs the farm's URL: --farm http://host:7420", 2);
    const tokenFile = o.tokenFile ?? process.env.OPTIMUS_TOKEN_FILE;
    if (!tokenFile)
      throw new CliError(
        `a worker service reads its token from a file: pass --token-file <file> (mode 0600; \`optimus token create --role worker > file\`)${process.env.OPTIMUS_TOKEN ? "; OPTIMUS_TOKEN is not passed to a service" : ""}`,
        2,
      );
    readTokenFile(tokenFile); // there and one token now, so the service does not fail at every start
    // The farm's pin and CA file go with it (public, not secrets); checked now, so the service does not fail at every start.
    const trust = trustFromOptions(o);
    const trustArgs = [...(trust.pins ? ["--farm-pin", trust.pins.join(",")] : []), ...(trust.ca ? ["--farm-ca", trust.ca.file] : [])];
    args.push(
      "--farm",
      farm,
      ...trustArgs,
      "--token-file",
      resolve(tokenFile),
      "worker",
      ...passOn([...WORKER_OPTIONS, THREADS_OPTION], o),
    );
    if (typeof o.workDir === "string") workingDirectory = resolve(o.workDir);
    description = `Optimus ${String(o.role)} worker for ${farm}`;
  }
  const logFile = logFileOf(name);
  return {
    kind,
    scope,
    name,
    description,
    programArguments: args,
    workingDirectory,
    // PATH as it is now: the service needs the same git, bubblewrap and tools the user has.
    environment: {
      OPTIMUS_HOME: home,
      PATH: process.env.PATH || "/usr/local/bin:/usr/bin:/bin",
      ...(manager.kind === "launchd" ? { [SERVICE_LOG_ENV]: logFile } : {}),
    },
    logFile,
    ...(typeof o.runAs === "string" ? { runAs: o.runAs } : {}),
    // The process's own clean stop, plus a margin for the manager.
    stopTimeoutSec: Math.ceil(STOP_DEADLINE_MS / 1000) + 6,
    restartDelaySec: 5,
  };
}

/** Runs the manager's commands; an unreachable manager becomes exit 69 with what was done and what to do. */
async function runAll(
  manager: ServiceManager,
  cmds: ReturnType<ServiceManager["loadCommands"]>,
  done: string,
  hint: string,
): Promise<void> {
  try {
    for (const c of cmds) await runOn(manager, c);
  } catch (err) {
    if (err instanceof ServiceManagerUnreachable) throw new CliError(`${done}, but ${err.message}; ${hint}`, EXIT_UNREACHABLE);
    throw new CliError((err as Error).message);
  }
}

export async function serviceInstall(kindArg: string | undefined, o: Opts): Promise<void> {
  const manager = managerFor(o);
  const spec = serviceSpecFrom(kindArg, o, manager);
  const file = manager.filePath(spec.name, spec.scope);
  const text = manager.render(spec);
  const load = manager.loadCommands(spec.name, spec.scope, file);
  if (o.dryRun) {
    process.stdout.write(`# would write ${file}:\n${text}# then run:\n${load.map(commandLine).join("\n")}\n`);
    return;
  }
  ensureHome();
  if (spec.workingDirectory !== farmHome()) mkdirSync(spec.workingDirectory, { recursive: true, mode: 0o700 });
  if (manager.kind === "launchd") mkdirSync(dirname(spec.logFile), { recursive: true, mode: 0o700 });
  // Whole or not at all: a half-written unit must never be loaded.
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM")
      throw new CliError(
        `cannot write ${file} (${code}): ${spec.scope === "system" ? "a --system service is installed as root (sudo)" : "check that folder's owner"}`,
      );
    throw err;
  }
  console.log(`wrote ${file}`);
  await runAll(manager, load, `wrote ${file}`, manager.hint(spec.name, spec.scope));
  console.log(
    `${spec.name} is installed and started; see \`optimus service status ${spec.kind}\` and \`optimus service logs ${spec.kind}\``,
  );
  if (manager.kind === "systemd" && spec.scope === "user")
    console.log(`to start it at boot before you log in: loginctl enable-linger ${process.env.USER ?? "$USER"}`);
}

/** The service the uninstall, status and logs commands mean. */
function target(kindArg: string | undefined, o: Opts) {
  const manager = managerFor(o);
  const kind = kindOf(kindArg);
  const scope = scopeOf(o);
  const name = nameOf(kind, o);
  return { manager, kind, scope, name, file: manager.filePath(name, scope) };
}

export async function serviceUninstall(kindArg: string | undefined, o: Opts): Promise<void> {
  const { manager, name, scope, file } = target(kindArg, o);
  const unload = manager.unloadCommands(name, scope, file);
  const forget = manager.forgetCommands(scope);
  if (o.dryRun) {
    process.stdout.write(
      `# would run:\n${[...unload.map(commandLine), commandLine({ file: "rm", args: [file] }), ...forget.map(commandLine)].join("\n")}\n`,
    );
    return;
  }
  if (!existsSync(file)) throw new CliError(`${name} is not installed (no ${file})`, EXIT_NOT_INSTALLED);
  let unreachable: ServiceManagerUnreachable | null = null;
  try {
    for (const c of unload) await runOn(manager, c);
  } catch (err) {
    if (!(err instanceof ServiceManagerUnreachable)) throw new CliError((err as Error).message);
    unreachable = err;
  }
  rmSync(file, { force: true });
  if (unreachable)
    throw new CliError(
      `removed ${file}, but ${unreachable.message}; if it still runs, stop it where the manager runs: ${unload.map(commandLine).join(" && ")}`,
      EXIT_UNREACHABLE,
    );
  await runAll(manager, forget, `removed ${file}`, "");
  console.log(`${name} is stopped and uninstalled (removed ${file})`);
}

const describe = (s: ServiceStatus) => {
  const exit = s.lastExit
    ? `; last exit: ${s.lastExit.signal ? `signal ${s.lastExit.signal}` : `code ${s.lastExit.code}`}${s.lastExit.result ? ` (${s.lastExit.result})` : ""}`
    : "";
  if (s.running) return `running since ${s.since ?? "an unknown time"}, pid ${s.pid ?? "unknown"}${exit}`;
  return `not running (${s.state})${exit}`;
};

export async function serviceStatus(kindArg: string | undefined, o: Opts): Promise<void> {
  const { manager, name, scope, file } = target(kindArg, o);
  const base = { name, manager: manager.kind, scope, file };
  const answer = (code: number, json: object, line: string, toStderr = false) => {
    if (o.json) console.log(JSON.stringify({ ...base, ...json }, null, 2));
    else (toStderr ? console.error : console.log)(line);
    process.exitCode = code;
  };
  if (!existsSync(file))
    return answer(
      EXIT_NOT_INSTALLED,
      { installed: false, running: false },
      `${name}: not installed (no ${file}); install it with \`optimus service install ${kindOf(kindArg)}\``,
    );
  let status: ServiceStatus;
  try {
    status = await manager.status(name, scope);
  } catch (err) {
    if (!(err instanceof ServiceManagerUnreachable)) throw new CliError((err as Error).message);
    return answer(
      EXIT_UNREACHABLE,
      { installed: true, running: null, reachable: false, error: err.message },
      `optimus: ${name} is installed (${file}); whether it runs is unknown: ${err.message}`,
      true,
    );
  }
  if (!status.loaded)
    return answer(
      EXIT_NOT_RUNNING,
      { installed: true, reachable: true, ...status },
      `${name}: installed (${file}) but not loaded by ${manager.kind}; install it again to load it`,
    );
  return answer(
    status.running ? 0 : EXIT_NOT_RUNNING,
    { installed: true, reachable: true, ...status },
    `${name} (${manager.kind}, ${scope}): ${describe(status)}`,
  );
}

export async function serviceLogs(kindArg: string | undefined, o: Opts): Promise<void> {
  const { manager, name, scope } = target(kindArg, o);
  const lines = String(o.lines ?? "100");
  if (!/^\d+$/.test(lines)) throw new CliError(`--lines must be a whole number, got '${lines}'`, 2);
  const c = manager.logsCommand({ name, scope, logFile: logFileOf(name) }, Number(lines), Boolean(o.follow));
  // The log goes straight to this terminal (and -f keeps following it): no shell, no buffering.
  const code = await new Promise<number>((res, rej) => {
    const child = spawn(c.file, c.args, { stdio: "inherit" });
    child.on("error", (err: NodeJS.ErrnoException) =>
      rej(
        err.code === "ENOENT"
          ? new CliError(`${c.file} is not installed on this machine: no ${manager.kind} log to read`, EXIT_UNREACHABLE)
          : err,
      ),
    );
    child.on("exit", (n, sig) => res(n ?? (sig ? 128 : 1)));
  });
  process.exitCode = code;
}
