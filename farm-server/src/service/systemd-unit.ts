/**
 * The systemd unit for a service (systemd.unit(5), systemd.service(5), systemd.exec(5)): restarted
 * on a crash, started at boot (`default.target` of the user's manager, `multi-user.target` of the
 * machine's), its output in the journal. A pure function of the spec: `optimus service install`
 * writes what this returns, and `systemd-analyze verify` checks it in the tests.
 */
import { checkServiceText, type ServiceSpec } from "./service-spec.js";

/** `%` starts a specifier in every value systemd reads here (`%h`, `%n`): a literal one is `%%`. */
const specifiersOff = (s: string) => s.replace(/%/g, "%%");

/**
 * One word of a command line or an assignment: double-quoted with C escapes when it has anything
 * systemd would split on or read (space, quote, backslash, `;` which separates commands), else as
 * it is. `$` is doubled in command lines, where `$NAME` is expanded.
 */
function word(s: string, dollars: boolean): string {
  let out = specifiersOff(s);
  if (dollars) out = out.replace(/\$/g, "$$$$");
  if (out !== "" && !/[\s"'\\;]/.test(out)) return out;
  return `"${out.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function systemdUnit(spec: ServiceSpec): string {
  const all = [spec.description, spec.workingDirectory, ...spec.programArguments, ...Object.entries(spec.environment).flat()];
  for (const v of all) checkServiceText("a value of the service", v);
  if (!spec.programArguments[0]?.startsWith("/")) throw new Error("a service's program is an absolute path");
  for (const k of Object.keys(spec.environment)) if (!ENV_NAME.test(k)) throw new Error(`not an environment variable's name: ${k}`);
  const system = spec.scope === "system";
  const lines = [
    "# Written by `optimus service install`; removed by `optimus service uninstall`.",
    "# No secrets here: tokens and keys are read from files (--token-file, the farm's home) or the secrets layer.",
    "[Unit]",
    `Description=${specifiersOff(spec.description)}`,
    // The machine's manager knows when the network is up; a user's manager has no such target.
    ...(system ? ["Wants=network-online.target", "After=network-online.target"] : []),
    // A service that keeps crashing at start stops being restarted after 10 starts in 5 minutes.
    "StartLimitIntervalSec=300",
    "StartLimitBurst=10",
    "",
    "[Service]",
    "Type=simple",
    ...(system && spec.runAs ? [`User=${spec.runAs}`] : []),
    `WorkingDirectory=${specifiersOff(spec.workingDirectory)}`,
    ...Object.entries(spec.environment).map(([k, v]) => `Environment=${word(`${k}=${v}`, false)}`),
    `ExecStart=${spec.programArguments.map((a) => word(a, true)).join(" ")}`,
    "Restart=on-failure",
    `RestartSec=${spec.restartDelaySec}`,
    // SIGTERM to the main process, which stops its checks and evals itself; then the rest of the group.
    "KillMode=mixed",
    `TimeoutStopSec=${spec.stopTimeoutSec}`,
    "",
    "[Install]",
    `WantedBy=${system ? "multi-user.target" : "default.target"}`,
    "",
  ];
  return lines.join("\n");
}
