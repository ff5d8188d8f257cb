/**
 * The launchd property list for a service (launchd.plist(5)): a LaunchAgent for the user (in
 * ~/Library/LaunchAgents) or a LaunchDaemon for the machine (/Library/LaunchDaemons), started at
 * load and at boot (RunAtLoad), started again when it exits with a failure (KeepAlive
 * SuccessfulExit false), at most every ThrottleInterval seconds; stdout and stderr appended to one
 * log file in the farm's home. A pure function of the spec; `plutil -lint` does not run here, so a
 * unit test parses the XML and checks every key against launchd's documented keys.
 */
import { checkServiceText, launchdLabel, type ServiceSpec } from "./service-spec.js";

/** Text in an XML element: `&` and `<` must be escaped, `>` is, so `]]>` can never appear. */
export const xmlText = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

type PlistValue = string | number | boolean | PlistValue[] | { [key: string]: PlistValue };

function render(value: PlistValue, indent: string): string[] {
  if (typeof value === "string") {
    checkServiceText("a value of the service", value);
    return [`${indent}<string>${xmlText(value)}</string>`];
  }
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`a launchd integer must be whole, got ${value}`);
    return [`${indent}<integer>${value}</integer>`];
  }
  if (typeof value === "boolean") return [`${indent}<${value}/>`];
  if (Array.isArray(value)) return [`${indent}<array>`, ...value.flatMap((v) => render(v, `${indent}\t`)), `${indent}</array>`];
  return [
    `${indent}<dict>`,
    ...Object.entries(value).flatMap(([k, v]) => {
      checkServiceText("a key of the service", k);
      return [`${indent}\t<key>${xmlText(k)}</key>`, ...render(v, `${indent}\t`)];
    }),
    `${indent}</dict>`,
  ];
}

export function launchdPlist(spec: ServiceSpec): string {
  if (!spec.programArguments[0]?.startsWith("/")) throw new Error("a service's program is an absolute path");
  const dict: Record<string, PlistValue> = {
    Label: launchdLabel(spec.name),
    ProgramArguments: spec.programArguments,
    WorkingDirectory: spec.workingDirectory,
    EnvironmentVariables: spec.environment,
    ...(spec.scope === "system" && spec.runAs ? { UserName: spec.runAs } : {}),
    RunAtLoad: true,
    // Started again after a crash or a failing exit; a clean stop (exit 0, e.g. SIGTERM handled) stays stopped.
    KeepAlive: { SuccessfulExit: false },
    ThrottleInterval: spec.restartDelaySec,
    ExitTimeOut: spec.stopTimeoutSec,
    StandardOutPath: spec.logFile,
    StandardErrorPath: spec.logFile,
  };
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
    "<!-- Written by `optimus service install`; removed by `optimus service uninstall`. No secrets here. -->",
    '<plist version="1.0">',
    ...render(dict, ""),
    "</plist>",
    "",
  ].join("\n");
}
