/**
 * systemd (Linux): a user unit in ~/.config/systemd/user (`systemctl --user`), or a system unit in
 * /etc/systemd/system. Loaded by `daemon-reload`, enabled for boot and (re)started; the service's
 * output goes to the journal (`journalctl -u`). A user's units run at boot, before they log in, only
 * with lingering on (`loginctl enable-linger`), which the CLI suggests.
 */
import { constants, homedir } from "node:os";
import { join } from "node:path";
import type { CommandResult, ManagerCommand, ServiceManager, ServiceStatus } from "./service-manager.js";
import { runOn } from "./service-manager.js";
import { systemdUnit } from "./systemd-unit.js";
import { systemdUnitName, type ServiceScope, type ServiceSpec } from "./service-spec.js";

const scopeArgs = (scope: ServiceScope) => (scope === "user" ? ["--user"] : []);
const systemctl = (scope: ServiceScope, ...args: string[]): ManagerCommand => ({ file: "systemctl", args: [...scopeArgs(scope), ...args] });

/** What systemctl says when there is no manager to talk to (a container, a session without a user bus). */
const NO_BUS =
  /Failed to connect to bus|Failed to get D-Bus connection|System has not been booted with systemd|Host is down|No medium found/i;

/** systemd's ExecMainCode: how the main process ended (CLD_* of waitid). */
const CLD_EXITED = 1;

export class SystemdManager implements ServiceManager {
  readonly kind = "systemd";

  /** `dir`: write unit files there instead of the manager's folder (tests, packaging). */
  constructor(private readonly dir?: string) {}

  filePath(name: string, scope: ServiceScope): string {
    const dir =
      this.dir ??
      (scope === "system" ? "/etc/systemd/system" : join(process.env.XDG_CONFIG_HOME || join(homedir(), ".config"), "systemd", "user"));
    return join(dir, systemdUnitName(name));
  }

  render(spec: ServiceSpec): string {
    return systemdUnit(spec);
  }

  loadCommands(name: string, scope: ServiceScope): ManagerCommand[] {
    const unit = systemdUnitName(name);
    // restart, not start: a service installed again runs the new file.
    return [systemctl(scope, "daemon-reload"), systemctl(scope, "enable", unit), systemctl(scope, "restart", unit)];
  }

  unloadCommands(name: string, scope: ServiceScope): ManagerCommand[] {
    const unit = systemdUnitName(name);
    return [
      { ...systemctl(scope, "stop", unit), mayFail: true },
      { ...systemctl(scope, "disable", unit), mayFail: true },
    ];
  }

  forgetCommands(scope: ServiceScope): ManagerCommand[] {
    return [systemctl(scope, "daemon-reload")];
  }

  unreachable(r: CommandResult): string | null {
    if (r.code === 0) return null;
    const line = `${r.stderr}\n${r.stdout}`.split("\n").find((l) => NO_BUS.test(l));
    return line ? line.trim() : null;
  }

  async status(name: string, scope: ServiceScope): Promise<ServiceStatus> {
    const props = "LoadState,ActiveState,SubState,ExecMainStartTimestamp,ExecMainPID,ExecMainStatus,ExecMainCode,Result";
    const r = await runOn(this, systemctl(scope, "show", "-p", props, systemdUnitName(name)));
    const p = Object.fromEntries(
      r.stdout
        .split("\n")
        .filter((l) => l.includes("="))
        .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
    );
    const running = p.ActiveState === "active" || p.ActiveState === "reloading" || p.ActiveState === "activating";
    const pid = Number(p.ExecMainPID);
    const status = Number(p.ExecMainStatus);
    const code = Number(p.ExecMainCode);
    const signal = Object.entries(constants.signals).find(([, n]) => n === status)?.[0];
    // A process that has not exited yet (or never ran) has ExecMainCode 0.
    const lastExit =
      code > 0
        ? code === CLD_EXITED
          ? { code: status, result: p.Result }
          : { signal: signal ?? `signal ${status}`, result: p.Result }
        : undefined;
    return {
      loaded: p.LoadState === "loaded",
      running,
      state: `${p.ActiveState ?? "unknown"} (${p.SubState ?? "unknown"})`,
      ...(running && p.ExecMainStartTimestamp && p.ExecMainStartTimestamp !== "n/a" ? { since: p.ExecMainStartTimestamp } : {}),
      ...(pid > 0 ? { pid } : {}),
      ...(lastExit ? { lastExit } : {}),
    };
  }

  logsCommand(spec: { name: string; scope: ServiceScope }, lines: number, follow: boolean): ManagerCommand {
    return {
      file: "journalctl",
      args: [...scopeArgs(spec.scope), "-u", systemdUnitName(spec.name), "-n", String(lines), "--no-pager", ...(follow ? ["-f"] : [])],
    };
  }

  hint(name: string, scope: ServiceScope): string {
    const s = scope === "user" ? "systemctl --user" : "systemctl";
    return `where systemd runs, load it with \`${s} daemon-reload && ${s} enable --now ${systemdUnitName(name)}\``;
  }
}
