#!/usr/bin/env node
import { resolve } from "node:path";
import { Command, CommanderError } from "commander";
import { describeError } from "./errors.js";
import { resolvedFarmUrl, type GlobalOptions } from "./context.js";
import { printable } from "./printable.js";
import { registerServiceCommands } from "./service-options.js";

// Each command's module is loaded when that command runs: `optimus worker` never loads the farm,
// and `--help` loads no command at all.
const program = new Command("optimus")
  .description("Optimus: a development orchestrator for an agent farm")
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
  .option("--token-file <file>", "a file holding the API token (mode 0600; preferred: --token shows in `ps`); default $OPTIMUS_TOKEN_FILE")
  .option(
    "--token <token>",
    "API token (default: $OPTIMUS_TOKEN, --token-file, or the local farm's admin token); visible to other users in `ps`",
  )
  .showHelpAfterError("(add --help for usage)")
  .exitOverride();

const g = (cmd: Command): GlobalOptions => cmd.optsWithGlobals();

const farm = program.command("farm").description("run the farm server");
farm
  .command("up")
  .description(
    "start the farm server for a repository (--origin <url|path>, or --repo / the work tree here as the origin) with embedded defaults: state and its own clone in the farm's home, SQLite journal, port 7420; changes are delivered by push (or pull requests with a forge)",
  )
  .option("--port <n>", "port for HTTP and WebSocket (default 7420)")
  .option("--host <addr>", "address to listen on (default 127.0.0.1)")
  .option("--heartbeat-ms <n>", "worker heartbeat interval; leases expire after 1.5 of them")
  .option("--max-attempts <n>", "attempts before a unit is dead-lettered")
  .option(
    "--config <file>",
    "the farm's settings (default: <home>/repos/<repo>/config.yaml if present, else the repository folder's .optimus/config.yaml)",
  )
  .option("--reset-admin-token", "issue a new admin token into the farm's home (when the old one is lost)")
  .option("--workers <n>", "also run N worker agents in this process (half codegen, half review)")
  .option("--worker-model <path|url>", "their model: a .gguf file or an OpenAI-compatible /v1 URL")
  .option("--worker-model-name <name>", "the model's name on an OpenAI-compatible server")
  .option("--threads <n>", "CPU threads for a GGUF worker model")
  .action((_o, cmd: Command) => import("./farm-up.js").then((m) => m.farmUp(g(cmd))));

program
  .command("send <instruction>")
  .description("send a task to the farm")
  .option("--files <paths...>", "files in scope")
  .option("--title <text>", "task title (default: the first line of the instruction)")
  .option("--priority <n>", "higher runs first (default 0)")
  .option("--check <command>", "the command whose success proves the change (run without network)")
  .option("--target <branch>", "the branch of the origin the change goes into (default: the origin's default branch)")
  .action((text: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.send(text, g(cmd))));

const task = program.command("task").description("work with tasks");
task
  .command("import <manifest>")
  .description("create a task from a manifest YAML file")
  .action((file: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.importTask(file, g(cmd))));
task
  .command("scan")
  .description("import every new manifest under .optimus/tasks/")
  .action((_o, cmd: Command) => import("./task-commands.js").then((m) => m.scanTasks(g(cmd))));
task
  .command("show <taskId>")
  .option("--json", "print the task and its units as JSON")
  .description("show a task and all its units, also once it is finished and archived")
  .action((id: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.showTask(id, g(cmd) as never)));
task
  .command("cancel <taskId>")
  .option("--reason <text>")
  .description("cancel a task and its unfinished units")
  .action((id: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.cancelTask(id, g(cmd))));

const PIN = "decide only on this attempt (default: the change's current attempt, printed first); the farm refuses if the change moved on";
program
  .command("approve <ref>")
  .option("--attempt <n>", PIN)
  .description("merge a change held for approval (<task>/<unit>), or a task's held merge (<task>)")
  .action((ref: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.approve(ref, g(cmd))));
program
  .command("reject <task/unit>")
  .requiredOption("--reason <text>", "why (recorded)")
  .option("--attempt <n>", PIN)
  .description("reject a held change; the unit is cancelled with your reason (it can be retried)")
  .action((ref: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.reject(ref, g(cmd) as never)));
program
  .command("request-changes <task/unit>")
  .requiredOption("--comment <text...>", "what to change; 'path:line: text' places it on a line")
  .option("--attempt <n>", PIN)
  .description("send a change back; the comments reach the worker's next attempt")
  .action((ref: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.requestChanges(ref, g(cmd) as never)));

const unit = program.command("unit").description("work with units");
unit
  .command("retry <task/unit>")
  .description("run a dead, failed or cancelled unit again")
  .action((ref: string, _o, cmd: Command) => import("./task-commands.js").then((m) => m.retryUnit(ref, g(cmd))));

program
  .command("status")
  .description("a live table of tasks and units (printed once when not on a terminal)")
  .option("--once", "print once and exit")
  .option("--task <id>", "only this task")
  .action((_o, cmd: Command) => import("./status.js").then((m) => m.status(g(cmd))));

program
  .command("worker")
  .description("run a worker agent on this node: it leases units of its role and works on them with a local model")
  .requiredOption("--role <role>", "codegen or review")
  .option("--model <path|url>", "a .gguf file (in-process) or an OpenAI-compatible server's /v1 URL")
  .option("--model-name <name>", "the model's name on an OpenAI-compatible server (default 'local')")
  .option("--max-concurrent <n>", "units at once (default 1)")
  .option("--threads <n>", "CPU threads for a GGUF model (default: 1 on 2-core machines, else the physical cores)")
  .option("--node-id <id>", "this worker's name in the fleet (default <host>-<role>)")
  .option("--work-dir <dir>", "where the repository mirror and unit worktrees live (default ~/.optimus/worker/<node-id>)")
  .option("--max-iterations <n>", "model turns per attempt before asking for escalation (default 4)")
  .option(
    "--sandbox <kind>",
    "where unit checks run: auto (bubblewrap on Linux, sandbox-exec on macOS; refuse without one), bwrap, sandbox-exec, or none (unsandboxed, warned on every run)",
    "auto",
  )
  .action((_o, cmd: Command) => import("./worker-command.js").then((m) => m.workerCommand(g(cmd) as never)));

const model = program.command("model").description("local models");
model
  .command("pull <uri>")
  .option("--dir <dir>", "where to put it (default: the models folder of the farm's home, ~/.optimus/farm/models)")
  .description("download a GGUF model (hf:user/repo/file.gguf or https://…) with a progress bar")
  .action((uri: string, _o, cmd: Command) => import("./model-commands.js").then((m) => m.modelPull(uri, g(cmd))));

const token = program.command("token").description("manage API tokens (admin)");
token
  .command("create")
  .requiredOption("--role <role>", "admin, editor or worker")
  .option("--name <name>", "who or what holds it")
  .option("--approver", "editor tokens: may approve changes to protected paths (give it to a person, by name)")
  .description("create a token; printed once")
  .action((_o, cmd: Command) => import("./admin-commands.js").then((m) => m.createToken(g(cmd) as never)));
token
  .command("list")
  .description("list tokens (never their secrets)")
  .action((_o, cmd: Command) => import("./admin-commands.js").then((m) => m.listTokens(g(cmd))));
token
  .command("revoke <tokenId>")
  .description("revoke a token")
  .action((id: string, _o, cmd: Command) => import("./admin-commands.js").then((m) => m.revokeToken(id, g(cmd))));

program
  .command("spend")
  .option("--json", "the whole ledger as JSON")
  .option("--resume", "admin: let escalations be admitted again after a provider spend cap paused them")
  .description("frontier spend: totals, budgets, per day, task, unit, worker and model")
  .action((_o, cmd: Command) => import("./spend-commands.js").then((m) => m.spendReport(g(cmd) as never)));

const audit = program.command("audit").description("the tamper-evident audit log");
audit
  .command("verify")
  .option("--journal <file>", "journal file (default: the repository's farm journal)")
  .description("check the hash chain; names the first broken entry")
  .action((_o, cmd: Command) => import("./admin-commands.js").then((m) => m.auditVerify(g(cmd))));

registerServiceCommands(program);

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
  process.exit((err as { exitCode?: number }).exitCode ?? 1);
}
