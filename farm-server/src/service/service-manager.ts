/**
 * The service manager a service is installed into: systemd on Linux, launchd on macOS. Each one
 * says where its file goes, draws the file, and runs its own tool (systemctl, launchctl,
 * journalctl) through execFile, never a shell. A manager that cannot be reached (no user systemd
 * bus in a container, no launchctl on Linux) is a `ServiceManagerUnreachable`, which the CLI reports
 * with exit code 69 (EX_UNAVAILABLE).
 */
import { execFile } from "node:child_process";
import type { ServiceScope, ServiceSpec } from "./service-spec.js";

/** One run of a service manager's tool: shown by --dry-run, run by install and uninstall. */
export interface ManagerCommand {
  file: string;
  args: string[];
  /** a failure is expected and harmless (stopping a service that is not loaded) */
  mayFail?: boolean;
}

/** Whether a service runs, since when, its process and its last exit, as the service manager says. */
export interface ServiceStatus {
  /** the service manager knows the service (its file is loaded) */
  loaded: boolean;
  running: boolean;
  /** the manager's own word for the state (`active (running)`, `failed`, `running`, `not running`) */
  state: string;
  /** when the running process started, as the manager prints it */
  since?: string;
  pid?: number;
  /** the last exit of the service's process: its code, or the signal that ended it */
  lastExit?: { code?: number; signal?: string; result?: string };
}

export interface ServiceManager {
  readonly kind: "systemd" | "launchd";
  /** where the service's file is written */
  filePath(name: string, scope: ServiceScope): string;
  /** the file's text */
  render(spec: ServiceSpec): string;
  /** what loads, enables and starts a written file */
  loadCommands(name: string, scope: ServiceScope, file: string): ManagerCommand[];
  /** what stops and unloads it, before the file is removed */
  unloadCommands(name: string, scope: ServiceScope, file: string): ManagerCommand[];
  /** what tells the manager the file is gone, after it is removed */
  forgetCommands(scope: ServiceScope): ManagerCommand[];
  /** why a run of the manager's tool shows the manager cannot be reached, or null */
  unreachable(result: CommandResult): string | null;
  status(name: string, scope: ServiceScope): Promise<ServiceStatus>;
  /** the command that prints the service's log (the last `lines`, then follows it with `follow`) */
  logsCommand(spec: { name: string; scope: ServiceScope; logFile: string }, lines: number, follow: boolean): ManagerCommand;
  /** what to do by hand where this command could not reach the manager */
  hint(name: string, scope: ServiceScope): string;
}

/** The service manager could not be reached: nothing was loaded, stopped or asked. */
export class ServiceManagerUnreachable extends Error {
  constructor(
    readonly manager: string,
    readonly detail: string,
  ) {
    super(`the service manager (${manager}) cannot be reached: ${detail}`);
    this.name = "ServiceManagerUnreachable";
  }
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a manager's command: a manager that cannot be reached is `ServiceManagerUnreachable`, another
 * failure an Error with the tool's own message (unless the command may fail).
 */
export async function runOn(manager: ServiceManager, c: ManagerCommand): Promise<CommandResult> {
  const r = await runManagerCommand(c, manager.kind);
  const why = manager.unreachable(r);
  if (why) throw new ServiceManagerUnreachable(manager.kind, why);
  if (r.code !== 0 && !c.mayFail)
    throw new Error(`\`${commandLine(c)}\` failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().split("\n")[0] ?? ""}`);
  return r;
}

/** Runs a manager's tool without a shell; a missing tool is `ServiceManagerUnreachable`, any exit code is returned. */
export function runManagerCommand(c: ManagerCommand, manager: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(c.file, c.args, { timeout: 30_000, encoding: "utf8" }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: string | number }) | null;
      if (e && typeof e.code === "string") {
        reject(new ServiceManagerUnreachable(manager, e.code === "ENOENT" ? `${c.file} is not installed on this machine` : e.message));
        return;
      }
      resolve({ code: e ? (typeof e.code === "number" ? e.code : 1) : 0, stdout, stderr });
    });
  });
}

/** A command as a person would type it (for --dry-run and hints): arguments quoted for a POSIX shell where needed. */
export function commandLine(c: ManagerCommand): string {
  const q = (a: string) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  return [c.file, ...c.args].map(q).join(" ");
}
