/**
 * The files `optimus service install` writes, checked without the service managers: the launchd
 * plist parsed as XML (strictly: any malformed byte fails) and as a property list, every key one of
 * launchd.plist(5)'s and of the type launchd reads, values with &, <, > escaped and read back
 * exactly; the systemd unit's escaping (checked by systemd's own parser in
 * e2e/service-command.test.ts); and the launchd log's rotation at start.
 */
import assert from "node:assert/strict";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DOMParser } from "@xmldom/xmldom";
import { parse as parsePlist } from "plist";
import { launchdPlist } from "@optimus/farm-server/dist/service/launchd-plist.js";
import { rotateServiceLog } from "@optimus/farm-server/dist/service/service-log.js";
import type { ServiceSpec } from "@optimus/farm-server/dist/service/service-spec.js";
import { systemdUnit } from "@optimus/farm-server/dist/service/systemd-unit.js";

/** The keys launchd.plist(5) documents, with the type launchd reads each one as (those a service of ours may use). */
const LAUNCHD_KEYS: Record<
  string,
  "string" | "boolean" | "integer" | "array of strings" | "dictionary of strings" | "boolean or dictionary"
> = {
  Label: "string",
  Disabled: "boolean",
  UserName: "string",
  GroupName: "string",
  Program: "string",
  ProgramArguments: "array of strings",
  EnableGlobbing: "boolean",
  EnableTransactions: "boolean",
  KeepAlive: "boolean or dictionary",
  RunAtLoad: "boolean",
  RootDirectory: "string",
  WorkingDirectory: "string",
  EnvironmentVariables: "dictionary of strings",
  Umask: "integer",
  TimeOut: "integer",
  ExitTimeOut: "integer",
  ThrottleInterval: "integer",
  InitGroups: "boolean",
  StartInterval: "integer",
  StandardInPath: "string",
  StandardOutPath: "string",
  StandardErrorPath: "string",
  Debug: "boolean",
  Nice: "integer",
  ProcessType: "string",
  AbandonProcessGroup: "boolean",
  LowPriorityIO: "boolean",
  LaunchOnlyOnce: "boolean",
};
/** KeepAlive's documented sub-keys. */
const KEEP_ALIVE_KEYS = ["SuccessfulExit", "NetworkState", "PathState", "OtherJobEnabled", "Crashed"];

const NASTY = `a&b <c> "d" 'e' ]]> %h $HOME; f`;

function spec(over: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    kind: "worker",
    scope: "user",
    name: "optimus-worker-codegen",
    description: `Optimus codegen worker for http://farm:7420/?x=1&y=<2>`,
    programArguments: ["/usr/bin/node", `/opt/${NASTY}/main.js`, "--farm", "http://farm:7420/?x=1&y=<2>", "worker", "--role", "codegen"],
    workingDirectory: `/home/me/${NASTY}`,
    environment: {
      OPTIMUS_HOME: `/home/me/${NASTY}`,
      PATH: "/usr/local/bin:/usr/bin:/bin",
      OPTIMUS_SERVICE_LOG: `/home/me/${NASTY}/logs/w.log`,
    },
    logFile: `/home/me/${NASTY}/logs/w.log`,
    stopTimeoutSec: 10,
    restartDelaySec: 5,
    ...over,
  };
}

/** Parses XML and fails on any error or warning, which plist's own parser only prints. */
function strictXml(text: string): void {
  new DOMParser({
    onError: (level: string, msg: string) => {
      throw new Error(`${level}: ${msg}`);
    },
  }).parseFromString(text, "text/xml");
}

const typeOf = (v: unknown): string => {
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "boolean";
  if (typeof v === "number" && Number.isInteger(v)) return "integer";
  if (Array.isArray(v)) return v.every((x) => typeof x === "string") ? "array of strings" : "array";
  if (v && typeof v === "object") return Object.values(v).every((x) => typeof x === "string") ? "dictionary of strings" : "dictionary";
  return typeof v;
};

test("the launchd plist is well-formed XML of launchd's documented keys, of the right types, its values read back exactly", () => {
  const s = spec();
  const text = launchdPlist(s);
  assert.ok(
    text.startsWith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"'),
    "the plist prolog",
  );
  strictXml(text);
  // The test itself: a parser this strict refuses an unescaped & or <.
  assert.throws(() => strictXml("<plist><string>a&b</string></plist>"));
  assert.throws(() => strictXml("<plist><string>a<b</string></plist>"));

  const p = parsePlist(text) as Record<string, unknown>;
  for (const [key, value] of Object.entries(p)) {
    assert.ok(key in LAUNCHD_KEYS, `${key} is one of launchd's keys`);
    const want = LAUNCHD_KEYS[key]!;
    const got = typeOf(value);
    assert.ok(
      want === got || (want === "boolean or dictionary" && (got === "boolean" || got.startsWith("dictionary"))),
      `${key}: ${want}, got ${got}`,
    );
  }
  for (const k of [
    "Label",
    "ProgramArguments",
    "WorkingDirectory",
    "EnvironmentVariables",
    "KeepAlive",
    "RunAtLoad",
    "StandardOutPath",
    "StandardErrorPath",
    "ThrottleInterval",
  ])
    assert.ok(k in p, `${k} is there`);

  assert.equal(p.Label, "local.optimus-worker-codegen");
  assert.deepEqual(p.ProgramArguments, s.programArguments, "every argument as given: & < > and quotes survive");
  assert.equal(p.WorkingDirectory, s.workingDirectory);
  assert.deepEqual(p.EnvironmentVariables, s.environment);
  assert.equal(p.RunAtLoad, true, "started when loaded, so at boot");
  // Restarted when it fails or crashes, not after a clean stop.
  assert.deepEqual(p.KeepAlive, { SuccessfulExit: false });
  for (const k of Object.keys(p.KeepAlive as object)) assert.ok(KEEP_ALIVE_KEYS.includes(k), `KeepAlive.${k} is documented`);
  assert.equal(p.ThrottleInterval, 5);
  assert.equal(p.StandardOutPath, s.logFile);
  assert.equal(p.StandardErrorPath, s.logFile);
  assert.equal("UserName" in p, false, "a user's agent runs as that user");

  // In the text, the nasty characters only ever appear escaped.
  assert.ok(text.includes("a&amp;b &lt;c&gt;"), "& < > escaped");
  assert.ok(!text.includes("]]>"), "no CDATA end");
});

test("a daemon for the machine runs as the account given; a value no file can carry is refused", () => {
  const p = parsePlist(launchdPlist(spec({ scope: "system", runAs: "optimus" }))) as Record<string, unknown>;
  assert.equal(p.UserName, "optimus");
  assert.throws(() => launchdPlist(spec({ description: "x", workingDirectory: "/a\nb" })), /line break/);
  assert.throws(() => launchdPlist(spec({ programArguments: ["node", "x"] })), /absolute/);
  assert.throws(() => systemdUnit(spec({ programArguments: ["/usr/bin/node", "a\u0001b"] })), /control character/);
});

test("the systemd unit: restarted on failure, started at boot, values quoted and % and $ kept literal", () => {
  const s = spec();
  const unit = systemdUnit(s);
  const line = (key: string) => unit.split("\n").filter((l) => l.startsWith(`${key}=`));
  assert.deepEqual(line("Restart"), ["Restart=on-failure"]);
  assert.deepEqual(line("WantedBy"), ["WantedBy=default.target"], "a user's unit starts with the user's manager");
  assert.deepEqual(
    systemdUnit(spec({ scope: "system" }))
      .split("\n")
      .filter((l) => l.startsWith("WantedBy=")),
    ["WantedBy=multi-user.target"],
  );
  assert.deepEqual(line("ExecStart"), [
    `ExecStart=/usr/bin/node "/opt/a&b <c> \\"d\\" 'e' ]]> %%h $$HOME; f/main.js" --farm http://farm:7420/?x=1&y=<2> worker --role codegen`,
  ]);
  assert.deepEqual(line("WorkingDirectory"), [`WorkingDirectory=/home/me/a&b <c> "d" 'e' ]]> %%h $HOME; f`]);
  assert.ok(line("Environment").includes(`Environment="OPTIMUS_HOME=/home/me/a&b <c> \\"d\\" 'e' ]]> %%h $HOME; f"`), unit);
  assert.equal(line("User").length, 0);
  assert.deepEqual(
    systemdUnit(spec({ scope: "system", runAs: "optimus" }))
      .split("\n")
      .filter((l) => l.startsWith("User=")),
    ["User=optimus"],
  );
});

test("a launchd service's log is rotated by size when the service starts: copied aside, then emptied in place under launchd's open file", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-service-log-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, "farm.log");
  // launchd holds the file open in append mode, as this descriptor does.
  const fd = openSync(log, "a");
  writeSync(fd, "x".repeat(100) + "\n");
  assert.equal(rotateServiceLog(log, 1000), false, "small: left alone");
  writeSync(fd, "old run\n".repeat(200));
  writeFileSync(`${log}.1`, "older\n");
  assert.equal(rotateServiceLog(log, 1000, 3), true);
  writeSync(fd, "new run\n");
  closeSync(fd);
  assert.equal(readFileSync(log, "utf8"), "new run\n", "the next write lands at the start of the emptied file");
  assert.match(readFileSync(`${log}.1`, "utf8"), /old run\n$/);
  assert.equal(readFileSync(`${log}.2`, "utf8"), "older\n", "older copies shifted");
});
