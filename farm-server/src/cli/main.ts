#!/usr/bin/env node
import { resolve } from "node:path";
import { Command, CommanderError } from "commander";
import { describeError, EXIT_CODES_HELP, exitCodeOf } from "./errors.js";
import { resolvedFarmUrl, type GlobalOptions } from "./context.js";
import { printable } from "./printable.js";
import { FARM_CA_HELP, FARM_PIN_HELP } from "./farm-trust-options.js";
import { packageVersion } from "./version.js";
import { registerAdminCommands } from "./commands/admin.js";
import { registerFarmCommands } from "./commands/farm.js";
import { registerTaskCommands } from "./commands/tasks.js";
import { registerUnitCommands } from "./commands/units.js";
import { registerServiceCommands } from "./service-options.js";

// Each command's module is loaded when that command runs: `optimus worker` never loads the farm,
// and `--help` loads no command at all.
const program = new Command("optimus")
  .description("Optimus: a development orchestrator for an agent farm")
  .version(packageVersion(), "-V, --version", "print the version of optimus")
  .option(
    "--repo <dir>",
    "a repository folder: the farm's origin for `farm up` (default: the git work tree here); other commands find its farm",
  )
  .option("--origin <url|path>", "the team's repository the farm follows (a git URL or path); other commands find the farm following it")
  .option(
    "--home <dir>",
    "the farm's home: its journal, tokens, worktrees and models, outside every repository (default: $OPTIMUS_HOME or ~/.optimus/farm)",
  )
  .option("--farm <url>", "the farm server's URL (default: $OPTIMUS_FARM, or the local farm's host:port)")
  .option("--farm-pin <sha256/…>", FARM_PIN_HELP)
  .option("--farm-ca <file>", FARM_CA_HELP)
  .option("--token-file <file>", "a file holding the API token (mode 0600; preferred: --token shows in `ps`); default $OPTIMUS_TOKEN_FILE")
  .option(
    "--token <token>",
    "API token (default: $OPTIMUS_TOKEN, --token-file, or the local farm's admin token); visible to other users in `ps`",
  )
  // Every subcommand's help lists these too (they are accepted after the subcommand as well);
  // set before the commands are added, which copy it.
  .configureHelp({ showGlobalOptions: true })
  .addHelpText("after", `\n${EXIT_CODES_HELP}`)
  .showHelpAfterError("(add --help for usage)")
  .exitOverride();

registerFarmCommands(program);
registerTaskCommands(program);
registerUnitCommands(program);
registerAdminCommands(program);
registerServiceCommands(program);
program
  .command("completion <shell>")
  .description('print a completion script for bash, zsh or fish (e.g. eval "$(optimus completion bash)" in ~/.bashrc)')
  .action((shell: string) =>
    import("./completion.js").then((m) => {
      process.stdout.write(m.completionScript(program, shell));
    }),
  );

// --home is read wherever the home is needed (farm, CLI finding the local farm, model pull): one place.
program.hook("preAction", (cmd) => {
  const home = cmd.optsWithGlobals<{ home?: string }>().home;
  if (home) process.env.OPTIMUS_HOME = resolve(home);
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const opts = program.opts<GlobalOptions>();
  // The message may quote the farm or a repository (a title, a file name): printed without escapes.
  process.stderr.write(`optimus: ${printable(describeError(err, opts.farm ?? process.env.OPTIMUS_FARM ?? resolvedFarmUrl()))}\n`);
  process.exit(exitCodeOf(err));
}
