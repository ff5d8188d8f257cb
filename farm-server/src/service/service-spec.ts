/**
 * What a managed service runs, independent of the service manager: the files written for systemd
 * and launchd are drawn from one of these by pure functions (systemd-unit.ts, launchd-plist.ts).
 * It never holds a secret: tokens and keys are read by the service from files (--token-file, the
 * farm's home) or the secrets layer, so the written file can be world-readable like any unit.
 */

/** What the service is: the farm server or a worker agent. */
export type ServiceKind = "farm" | "worker";
/** A service for the user who installs it (runs while they are logged in, or always with lingering) or for the machine. */
export type ServiceScope = "user" | "system";

export interface ServiceSpec {
  kind: ServiceKind;
  scope: ServiceScope;
  /** the service's name: `<name>.service` for systemd, `local.<name>` as launchd's label */
  name: string;
  /** one line for people: what runs and on what */
  description: string;
  /** absolute: this node binary, this CLI's main.js, then the command and its options */
  programArguments: string[];
  /** absolute; exists before the service starts */
  workingDirectory: string;
  /** no secrets: the farm's home, PATH, and (launchd) where the log file is */
  environment: Record<string, string>;
  /** launchd only: the file stdout and stderr are appended to (systemd uses its journal) */
  logFile: string;
  /** --system only: the account the service runs as (default: the service manager's, root) */
  runAs?: string;
  /** how long a clean stop may take before the service manager kills it */
  stopTimeoutSec: number;
  /** the least time between two starts after a crash */
  restartDelaySec: number;
}

/** A service name: what systemd accepts in a unit name and launchd in a label, and a file name everywhere. */
export const SERVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** The launchd label for a service name (reverse-DNS style; `local.` marks one made on this machine). */
export const launchdLabel = (name: string) => `local.${name}`;
/** The systemd unit name for a service name. */
export const systemdUnitName = (name: string) => `${name}.service`;

/** Refuses text that no unit file or plist can carry faithfully (a newline ends a systemd line; XML 1.0 has no control characters). */
export function checkServiceText(what: string, value: string): void {
  if (/[\u0000-\u0008\u000b\u000c\u000e-\u001f\n\r\u007f]/.test(value))
    throw new Error(`${what} holds a control character or a line break, which a service file cannot carry: ${JSON.stringify(value)}`);
}
