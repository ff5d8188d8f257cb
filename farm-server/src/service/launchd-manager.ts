/**
 * launchd (macOS): a LaunchAgent in ~/Library/LaunchAgents (the user's `gui/<uid>` domain) or a
 * LaunchDaemon in /Library/LaunchDaemons (the `system` domain), loaded with `launchctl bootstrap`
 * and asked with `launchctl print`. launchd appends the service's output to its log file in the
 * farm's home, which is rotated by size when the service starts (service-log.ts).
 */
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { launchdPlist } from "./launchd-plist.js";
import type { CommandResult, ManagerCommand, ServiceManager, ServiceStatus } from "./service-manager.js";
import { runManagerCommand, runOn, ServiceManagerUnreachable } from "./service-manager.js";
import { launchdLabel, type ServiceScope, type ServiceSpec } from "./service-spec.js";

const domain = (scope: ServiceScope) => (scope === "system" ? "system" : `gui/${userInfo().uid}`);
const target = (name: string, scope: ServiceScope) => `${domain(scope)}/${launchdLabel(name)}`;
const launchctl = (...args: string[]): ManagerCommand => ({ file: "launchctl", args });

/** What launchctl says when the domain is not there (a user's `gui` domain over ssh without a login session). */
const NO_DOMAIN = /Could not find domain|Domain does not support specified action/i;
/** launchctl print's exit code for a service it does not know. */
const NO_SUCH_SERVICE = 113;

export class LaunchdManager implements ServiceManager {
  readonly kind = "launchd";

  /** `dir`: write plists there instead of the manager's folder (tests, packaging). */
  constructor(private readonly dir?: string) {}

  filePath(name: string, scope: ServiceScope): string {
    const dir = this.dir ?? (scope === "system" ? "/Library/LaunchDaemons" : join(homedir(), "Library", "LaunchAgents"));
    return join(dir, `${launchdLabel(name)}.plist`);
  }

  render(spec: ServiceSpec): string {
    return launchdPlist(spec);
  }

  loadCommands(name: string, scope: ServiceScope, file: string): ManagerCommand[] {
    // Out first, so a service installed again runs the new file; enabled, since a disabled label cannot be bootstrapped.
    return [
      { ...launchctl("bootout", target(name, scope)), mayFail: true },
      launchctl("enable", target(name, scope)),
      launchctl("bootstrap", domain(scope), file),
    ];
  }

  unloadCommands(name: string, scope: ServiceScope): ManagerCommand[] {
    return [{ ...launchctl("bootout", target(name, scope)), mayFail: true }];
  }

  forgetCommands(): ManagerCommand[] {
    return [];
  }

  unreachable(r: CommandResult): string | null {
    if (r.code === 0) return null;
    const line = `${r.stderr}\n${r.stdout}`.split("\n").find((l) => NO_DOMAIN.test(l));
    return line ? line.trim() : null;
  }

  async status(name: string, scope: ServiceScope): Promise<ServiceStatus> {
    const r = await runOn(this, { ...launchctl("print", target(name, scope)), mayFail: true });
    if (r.code === NO_SUCH_SERVICE) return { loaded: false, running: false, state: "not loaded" };
    if (r.code !== 0) throw new ServiceManagerUnreachable("launchd", (r.stderr || r.stdout).trim().split("\n")[0] ?? `exit ${r.code}`);
    // `launchctl print` is meant for people; these lines have kept their form across macOS releases.
    const field = (key: string) => new RegExp(`^\\s*${key} = (.*)$`, "m").exec(r.stdout)?.[1]?.trim();
    const state = field("state") ?? "unknown";
    const pid = Number(field("pid"));
    const code = /^-?\d+/.exec(field("last exit code") ?? "")?.[0];
    const signal = field("last terminating signal");
    const running = state === "running";
    let since: string | undefined;
    if (running && pid > 0) {
      // launchd does not say when it started the process; ps does.
      const ps = await runManagerCommand({ file: "ps", args: ["-o", "lstart=", "-p", String(pid)] }, "ps").catch(() => null);
      since = ps?.code === 0 ? ps.stdout.trim() || undefined : undefined;
    }
    return {
      loaded: true,
      running,
      state,
      ...(since ? { since } : {}),
      ...(pid > 0 ? { pid } : {}),
      ...(code !== undefined || signal
        ? { lastExit: { ...(code !== undefined ? { code: Number(code) } : {}), ...(signal ? { signal } : {}) } }
        : {}),
    };
  }

  logsCommand(spec: { logFile: string }, lines: number, follow: boolean): ManagerCommand {
    // -F follows the file across a rotation.
    return { file: "tail", args: ["-n", String(lines), ...(follow ? ["-F"] : []), spec.logFile] };
  }

  hint(name: string, scope: ServiceScope): string {
    return `on macOS, load it with \`launchctl bootstrap ${domain(scope)} ${this.filePath(name, scope)}\``;
  }
}
