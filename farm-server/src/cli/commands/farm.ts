import type { Command } from "commander";
import { CliError, EXIT } from "../errors.js";
import { g, JSON_HELP } from "./globals.js";
import { GPU_HELP } from "../gpu-option.js";

const LOG_LEVEL = "fatal, error, warn, info (default; transitions), debug, trace or silent; default $OPTIMUS_LOG_LEVEL";
const collect = (v: string, all: string[]) => [...all, v];
const LOG_FILE = "also write the log to this file, as JSON lines (the terminal shows it as before)";

/** `farm up`, `worker` (run one, or `worker list` the fleet) and `model pull`: the commands that run or feed the farm. */
export function registerFarmCommands(program: Command): void {
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
    .option("--worker-context-size <n>", "tokens their GGUF model's context holds (default: its training context, at most 8192)")
    .option("--worker-gpu <kind>", GPU_HELP)
    .option("--log-level <level>", LOG_LEVEL)
    .option("--log-file <path>", LOG_FILE)
    .action((_o, cmd: Command) => import("../farm-up.js").then((m) => m.farmUp(g(cmd))));

  farm
    .command("cert")
    .description(
      "make a self-signed TLS certificate and key for the farm's port (this node's host name, localhost, 127.0.0.1, its LAN addresses and --san names), written 0600 into <home>/tls; prints its pin (what clients pass as --farm-pin) and the config lines to add",
    )
    .option("--san <name>", "another host name or address the farm is reached by (repeat, or comma-separate)", collect, [])
    .option("--host <name>", "the same as --san", collect, [])
    .option("--out <dir>", "write farm.crt and farm.key here instead of <home>/tls")
    .option("--days <n>", "how long it is valid (default 397)")
    .option("--force", "replace an existing pair (every client then needs the new pin)")
    .action((_o, cmd: Command) => import("../cert-command.js").then((m) => m.farmCert(g(cmd) as never)));

  // `--role` is checked here rather than required by commander: commander checks a parent's
  // required options for its subcommands too, which would make `worker list` ask for a role.
  const worker = program
    .command("worker")
    .description("run a worker agent on this node: it leases units of its role and works on them with a local model")
    .option("--role <role>", "codegen or review (required)")
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
    .option("--context-size <n>", "tokens a GGUF model's context holds (default: its training context, at most 8192)")
    .option("--gpu <kind>", GPU_HELP)
    .option("--log-level <level>", LOG_LEVEL)
    .option("--log-file <path>", LOG_FILE)
    .action((o: { role?: string }, cmd: Command) => {
      if (!o.role) throw new CliError("--role is required: codegen or review (`optimus worker list` shows the fleet)", EXIT.usage);
      return import("../worker-command.js").then((m) => m.workerCommand(g(cmd) as never));
    });
  worker
    .command("list")
    .option("--json", JSON_HELP)
    .description("the connected and known workers: node id, role, leases held, connected since, last heartbeat")
    .action((_o, cmd: Command) => import("../fleet-commands.js").then((m) => m.workerList(g(cmd))));

  const model = program.command("model").description("local models");
  model
    .command("pull <uri>")
    .option("--dir <dir>", "where to put it (default: the models folder of the farm's home, ~/.optimus/farm/models)")
    .description("download a GGUF model (hf:user/repo/file.gguf or https://…) with a progress bar")
    .action((uri: string, _o, cmd: Command) => import("../model-commands.js").then((m) => m.modelPull(uri, g(cmd))));
}
