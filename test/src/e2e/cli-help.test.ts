/**
 * Issue 14, part 1: the CLI describes itself as users of gh, kubectl and docker expect — its
 * version, the global options in every command's help, the exit codes, and completion scripts for
 * bash, zsh and fish generated from its own commands. The CLI runs as a real process.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../helpers/cli.js";
import { CLI } from "../helpers/paths.js";

const cwd = tmpdir();
const hasShell = (sh: string) => spawnSync(sh, ["-c", "exit 0"]).status === 0;

test("--version prints the package's version; every command's help lists the global options; --help ends with the exit codes", async () => {
  const pkg = JSON.parse(readFileSync(new URL("../../../farm-server/package.json", import.meta.url), "utf8")) as { version: string };
  for (const flag of ["--version", "-V"]) {
    const r = await runCli([flag], { cwd });
    assert.deepEqual([r.code, r.stdout], [0, `${pkg.version}\n`]);
  }
  for (const cmd of [["unit", "show"], ["task", "list"], ["worker", "list"], ["farm", "up"], ["approve"], ["status"], ["token", "list"]]) {
    const r = await runCli([...cmd, "--help"], { cwd });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Global Options:$/m, cmd.join(" "));
    for (const o of ["--repo <dir>", "--farm <url>", "--token <token>", "--token-file <file>", "--home <dir>", "--origin <url|path>"])
      assert.ok(r.stdout.includes(o), `${cmd.join(" ")} --help shows ${o}`);
  }
  const help = await runCli(["--help"], { cwd });
  assert.match(
    help.stdout,
    /\nExit codes:\n {2}0 {2}ok\n {2}1 {2}failure .*\n {2}2 {2}usage or bad input .*\n {2}3 {2}not found .*\n {2}4 {2}refused or conflict .*\n$/,
  );
  // Reading commands take --json; a usage error exits 2.
  for (const cmd of [
    ["task", "list"],
    ["task", "show", "x"],
    ["unit", "show", "x/y"],
    ["unit", "diff", "x/y"],
    ["unit", "logs", "x/y"],
    ["worker", "list"],
    ["token", "list"],
    ["status"],
    ["spend"],
  ])
    assert.match((await runCli([...cmd, "--help"], { cwd })).stdout, /--json/, cmd.join(" "));
  const unknown = await runCli(["task", "list", "--colour"], { cwd });
  assert.equal(unknown.code, 2);
  const noRole = await runCli(["worker"], { cwd });
  assert.deepEqual(
    [noRole.code, noRole.stderr.trim()],
    [2, "optimus: --role is required: codegen or review (`optimus worker list` shows the fleet)"],
  );
});

test("completion: a bash script that completes commands, subcommands and options; zsh and fish scripts from the same tree", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), "optimus-completion-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const script = (shell: string) => {
    const r = spawnSync(process.execPath, [CLI, "completion", shell], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const file = join(dir, `optimus.${shell}`);
    writeFileSync(file, r.stdout);
    return { text: r.stdout, file };
  };

  const bash = script("bash");
  execFileSync("bash", ["-n", bash.file]);
  // What `complete -F` does on Tab: the words so far, the cursor's word last.
  const complete = (...words: string[]) =>
    execFileSync(
      "bash",
      [
        "-c",
        `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$((\${#COMP_WORDS[@]} - 1)); _optimus; printf '%s\\n' "\${COMPREPLY[@]}"`,
        "_",
        bash.file,
        ...words,
      ],
      { encoding: "utf8", cwd: dir },
    )
      .split("\n")
      .filter(Boolean)
      .sort();
  assert.deepEqual(complete("optimus", "un"), ["unit"]);
  assert.deepEqual(complete("optimus", "unit", ""), ["cancel", "diff", "logs", "retry", "show"]);
  assert.deepEqual(complete("optimus", "unit", "d"), ["diff"]);
  assert.deepEqual(complete("optimus", "worker", "l"), ["list"]);
  assert.deepEqual(complete("optimus", "task", "list", "--st"), ["--state"]);
  assert.deepEqual(complete("optimus", "unit", "diff", "--a"), ["--attempt"]);
  assert.deepEqual(complete("optimus", "--farm", "http://farm:7420", "ta"), ["task"], "an option's value is no command");
  assert.deepEqual(complete("optimus", "status", "--to"), ["--token", "--token-file"], "global options after the command");
  assert.ok(complete("optimus", "").includes("completion"));
  assert.match(bash.text, /^complete -o default -F _optimus optimus$/m);

  const zsh = script("zsh");
  assert.match(zsh.text, /^#compdef optimus$/m);
  assert.match(zsh.text, /'diff:the unit.*s change as a plain patch on stdout \(coloured only on a terminal\)'/);
  assert.match(zsh.text, /compdef _optimus optimus/);
  if (hasShell("zsh")) execFileSync("zsh", ["-n", zsh.file]);
  else execFileSync("bash", ["-n", zsh.file]); // its shared helpers are plain sh; zsh itself is not installed here

  const fish = script("fish");
  assert.match(fish.text, /^complete -c optimus -f -n 'test \(__optimus_path\) = "unit"' -a 'diff' -d /m);
  assert.match(fish.text, /^complete -c optimus -n 'test \(__optimus_path\) = "task list"' -l state -r -d /m);
  assert.match(fish.text, /^complete -c optimus -n 'test \(__optimus_path\) = "task list"' -l json -d /m);
  if (hasShell("fish")) execFileSync("fish", ["--no-execute", fish.file]);

  const other = await runCli(["completion", "tcsh"], { cwd });
  assert.deepEqual([other.code, other.stderr.trim()], [2, "optimus: no completion for 'tcsh': choose bash, zsh or fish"]);
});
