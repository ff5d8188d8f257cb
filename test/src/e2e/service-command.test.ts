/**
 * `optimus service` as a user runs it, on this machine: the CLI as a real process writes real
 * unit files, checked by systemd's own `systemd-analyze verify` (the real node binary and main.js
 * in ExecStart, which verify requires to exist). This machine runs no systemd (no user bus in a
 * container), so loading cannot happen: install and uninstall write into OPTIMUS_SERVICE_DIR and
 * say, with exit 69, that the service manager cannot be reached; status says the same. No secret
 * ever reaches a file: neither the farm's admin token nor a worker's token.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parsePlist } from "plist";
import { runCli } from "../helpers/cli.js";
import { CLI } from "../helpers/paths.js";
import { makeRepo } from "../helpers/repo.js";
import { startTestFarm } from "../helpers/test-farm.js";

const tmp = (t: { after(fn: () => void): void }, prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

/** systemd's own checker on a unit file, as the system's manager and as a user's: no error, no warning. */
function verify(t: { after(fn: () => void): void }, file: string): void {
  const system = spawnSync("systemd-analyze", ["verify", file], { encoding: "utf8" });
  assert.equal(system.error, undefined, "systemd-analyze is installed (Debian package systemd; .ci/run installs it)");
  assert.deepEqual([system.status, system.stderr.trim()], [0, ""], `systemd-analyze verify ${file}`);
  // A user's manager needs a runtime folder of its own; verify needs no running manager.
  const runtime = tmp(t, "optimus-xdg-runtime-");
  const user = spawnSync("systemd-analyze", ["--user", "verify", file], {
    encoding: "utf8",
    env: { ...process.env, XDG_RUNTIME_DIR: runtime },
  });
  assert.deepEqual([user.status, user.stderr.trim()], [0, ""], `systemd-analyze --user verify ${file}`);
}

/** Whether this machine's user systemd answers (then the tests would load real services: they expect it not to). */
const userSystemdAnswers = () => spawnSync("systemctl", ["--user", "show", "-p", "Version"], { encoding: "utf8" }).status === 0;

test("`optimus service install` writes units systemd-analyze verify accepts, with no secret in them; status and uninstall say the manager is unreachable (69)", async (t) => {
  if (userSystemdAnswers()) return t.skip("a user systemd runs here: these tests are for a machine without one");
  const farm = await startTestFarm(t);
  const units = tmp(t, "optimus-units-");
  const env = { OPTIMUS_SERVICE_DIR: units };
  const cli = (...args: string[]) => runCli(args, { cwd: farm.repo, env });
  const home = process.env.OPTIMUS_HOME!;

  // The farm: its admin token stays in its home.
  const farmUnit = join(units, "optimus-farm.service");
  const installed = await cli("service", "install", "farm", "--origin", farm.repo, "--port", String(farm.port));
  assert.equal(installed.code, 69, installed.stderr);
  assert.match(installed.stdout, new RegExp(`wrote ${farmUnit}`));
  assert.match(
    installed.stderr,
    /the service manager \(systemd\) cannot be reached: .*; where systemd runs, load it with `systemctl --user daemon-reload && systemctl --user enable --now optimus-farm.service`/,
  );
  const farmText = readFileSync(farmUnit, "utf8");
  assert.ok(!farmText.includes(farm.adminToken), "the admin token is not in the unit");
  assert.ok(farmText.includes(`ExecStart=${process.execPath} ${CLI} --origin ${farm.repo} farm up --port ${farm.port}\n`), farmText);
  assert.ok(farmText.includes(`Environment=OPTIMUS_HOME=${home}\n`), "the farm's home");
  assert.ok(
    farmText.includes("Restart=on-failure\n") && farmText.includes("WantedBy=default.target\n"),
    "restarted on a crash and at boot",
  );
  verify(t, farmUnit);

  // A worker: its token is read from its file when it starts; only the file's path is written.
  const created = await runCli(["token", "create", "--role", "worker", "--name", "service-coder"], { cwd: farm.repo, env: farm.env });
  assert.equal(created.code, 0, created.stderr);
  const workerToken = created.stdout.trim();
  const tokenFile = join(tmp(t, "optimus-token-"), "coder.token");
  writeFileSync(tokenFile, `${workerToken}\n`, { mode: 0o600 });
  const worker = ["service", "install", "worker", "--role", "codegen", "--model", "http://127.0.0.1:9/v1", "--farm", farm.url];
  const refused = await cli(...worker, "--name", "with-token", "--token", workerToken);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /a service does not take --token: .*pass --token-file <file>/);
  assert.ok(!existsSync(join(units, "with-token.service")), "nothing written");
  const workerInstalled = await cli(...worker, "--token-file", tokenFile, "--threads", "1");
  assert.equal(workerInstalled.code, 69, workerInstalled.stderr);
  const workerUnit = join(units, "optimus-worker-codegen.service");
  const workerText = readFileSync(workerUnit, "utf8");
  assert.ok(!workerText.includes(workerToken) && !workerText.includes(farm.adminToken), "no token in the unit");
  assert.ok(workerText.includes(`--token-file ${tokenFile} worker --role codegen --model http://127.0.0.1:9/v1 --threads 1\n`), workerText);
  verify(t, workerUnit);

  // --dry-run prints the same file and the commands, and writes nothing.
  const dry = await cli("service", "install", "farm", "--origin", farm.repo, "--port", String(farm.port), "--dry-run");
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(
    dry.stdout,
    `# would write ${farmUnit}:\n${farmText}# then run:\nsystemctl --user daemon-reload\nsystemctl --user enable optimus-farm.service\nsystemctl --user restart optimus-farm.service\n`,
  );
  assert.deepEqual(readdirSync(units).sort(), ["optimus-farm.service", "optimus-worker-codegen.service"]);

  // status: installed, but whether it runs cannot be known here.
  const status = await cli("service", "status", "farm");
  assert.equal(status.code, 69);
  assert.match(
    status.stderr,
    /^optimus: optimus-farm is installed \(.*optimus-farm\.service\); whether it runs is unknown: the service manager \(systemd\) cannot be reached/,
  );
  const json = await cli("service", "status", "farm", "--json");
  assert.equal(json.code, 69);
  assert.deepEqual(
    { ...JSON.parse(json.stdout), error: undefined },
    {
      name: "optimus-farm",
      manager: "systemd",
      scope: "user",
      file: farmUnit,
      installed: true,
      running: null,
      reachable: false,
      error: undefined,
    },
  );
  const missing = await cli("service", "status", "worker", "--role", "review");
  assert.equal(missing.code, 4);
  assert.match(missing.stdout, /optimus-worker-review: not installed/);

  // uninstall removes the file and says it could not stop a service it cannot reach.
  const removed = await cli("service", "uninstall", "farm");
  assert.equal(removed.code, 69);
  assert.match(
    removed.stderr,
    /removed .*optimus-farm\.service, but the service manager \(systemd\) cannot be reached.*systemctl --user stop optimus-farm\.service/,
  );
  assert.ok(!existsSync(farmUnit));
  assert.equal((await cli("service", "status", "farm")).code, 4, "not installed any more");
  assert.equal((await cli("service", "uninstall", "farm")).code, 4, "nothing to uninstall");
});

test("paths with spaces, quotes, `%` and `$` are written so that systemd reads them literally", async (t) => {
  if (userSystemdAnswers()) return t.skip("a user systemd runs here");
  const nasty = `a b "c" 'd' %Z %h $HOME;`;
  const repo = makeRepo(t);
  const origin = join(tmp(t, "optimus-origin-"), nasty);
  mkdirSync(origin);
  spawnSync("git", ["clone", "-q", "--bare", repo, join(origin, "team.git")]);
  const home = join(tmp(t, "optimus-home-"), nasty);
  const units = tmp(t, "optimus-units-");
  const r = await runCli(["service", "install", "farm", "--origin", join(origin, "team.git"), "--home", home], {
    cwd: repo,
    env: { OPTIMUS_SERVICE_DIR: units },
  });
  assert.equal(r.code, 69, r.stderr);
  assert.ok(existsSync(home), "the farm's home is made, the service's working directory");
  // %Z is no specifier systemd knows: written as it is, verify would fail on it.
  verify(t, join(units, "optimus-farm.service"));
});

test("on launchd's side (its plist written here, launchctl absent): the plist carries the service and its log file, rotated when the service starts; status says 69", async (t) => {
  const units = tmp(t, "optimus-agents-");
  const home = tmp(t, "optimus-home-");
  const repo = makeRepo(t);
  const env = { OPTIMUS_SERVICE_DIR: units, OPTIMUS_HOME: home };
  const r = await runCli(["service", "install", "farm", "--manager", "launchd", "--origin", repo], { cwd: repo, env });
  assert.equal(r.code, 69, r.stderr);
  assert.match(r.stderr, /the service manager \(launchd\) cannot be reached: launchctl is not installed on this machine/);
  const p = parsePlist(readFileSync(join(units, "local.optimus-farm.plist"), "utf8")) as Record<string, unknown>;
  assert.deepEqual(p.ProgramArguments, [process.execPath, CLI, "--origin", repo, "farm", "up"]);
  assert.equal(p.StandardOutPath, join(home, "logs", "optimus-farm.log"));
  assert.deepEqual(p.EnvironmentVariables, {
    OPTIMUS_HOME: home,
    PATH: process.env.PATH,
    OPTIMUS_SERVICE_LOG: join(home, "logs", "optimus-farm.log"),
  });
  assert.ok(existsSync(join(home, "logs")), "launchd does not make the log's folder: install does");
  const status = await runCli(["service", "status", "--manager", "launchd"], { cwd: repo, env });
  assert.equal(status.code, 69);
  assert.match(status.stderr, /launchctl is not installed on this machine/);

  // What launchd starts rotates its log first: a worker (stopping at once: no model server) as the plist runs it.
  const log = join(home, "logs", "optimus-worker-review.log");
  writeFileSync(log, "old run\n".repeat(1_400_000));
  const tokenFile = join(home, "w.token");
  writeFileSync(tokenFile, "opt_000000000000_" + "x".repeat(43) + "\n", { mode: 0o600 });
  const started = await runCli(
    [
      "--farm",
      "http://127.0.0.1:9",
      "--token-file",
      tokenFile,
      "worker",
      "--role",
      "review",
      "--model",
      "http://127.0.0.1:9/v1",
      "--sandbox",
      "none",
    ],
    { cwd: home, env: { OPTIMUS_HOME: home, OPTIMUS_SERVICE_LOG: log } },
  );
  assert.equal(started.code, 1, started.stderr);
  assert.equal(readFileSync(log, "utf8"), "", "emptied in place");
  assert.equal(readFileSync(`${log}.1`, "utf8").length, 8 * 1_400_000, "the old run kept beside it");
});
