/**
 * `optimus service install | uninstall | status | logs`: the farm or a worker as a managed service
 * (systemd on Linux, launchd on macOS). Registered by one call from main.ts; the commands' module
 * is loaded only when one of them runs, like every other command.
 */
import type { Command } from "commander";

/** An option `service install` passes on to the service's own command, checked before it is written. */
export interface PassedOption {
  flag: string;
  /** commander's attribute name for it */
  key: string;
  /** how it is checked and written: a whole number, a path made absolute, a model (URL or file), a choice, or text */
  kind: "int" | "path" | "model" | "sandbox" | "gpu" | "text";
  help: string;
}

/** The options of `optimus farm up` a farm service may carry (besides --origin / --repo and --home). */
export const FARM_OPTIONS: PassedOption[] = [
  { flag: "--port <n>", key: "port", kind: "int", help: "farm: port for HTTP and WebSocket" },
  { flag: "--host <addr>", key: "host", kind: "text", help: "farm: address to listen on" },
  { flag: "--heartbeat-ms <n>", key: "heartbeatMs", kind: "int", help: "farm: worker heartbeat interval" },
  { flag: "--max-attempts <n>", key: "maxAttempts", kind: "int", help: "farm: attempts before a unit is dead-lettered" },
  { flag: "--config <file>", key: "config", kind: "path", help: "farm: its settings file" },
  { flag: "--workers <n>", key: "workers", kind: "int", help: "farm: also run N worker agents in its process" },
  { flag: "--worker-model <path|url>", key: "workerModel", kind: "model", help: "farm: their model" },
  { flag: "--worker-model-name <name>", key: "workerModelName", kind: "text", help: "farm: their model's name on a server" },
  {
    flag: "--worker-gpu <kind>",
    key: "workerGpu",
    kind: "gpu",
    help: "farm: where their GGUF model runs (auto, metal, cuda, vulkan, cpu)",
  },
];

/** The options of `optimus worker` a worker service may carry (besides --farm and --token-file). */
export const WORKER_OPTIONS: PassedOption[] = [
  { flag: "--role <role>", key: "role", kind: "text", help: "worker: codegen or review (also names the service)" },
  { flag: "--model <path|url>", key: "model", kind: "model", help: "worker: a .gguf file or an OpenAI-compatible /v1 URL" },
  { flag: "--model-name <name>", key: "modelName", kind: "text", help: "worker: the model's name on a server" },
  { flag: "--max-concurrent <n>", key: "maxConcurrent", kind: "int", help: "worker: units at once" },
  { flag: "--node-id <id>", key: "nodeId", kind: "text", help: "worker: its name in the fleet" },
  {
    flag: "--work-dir <dir>",
    key: "workDir",
    kind: "path",
    help: "worker: its mirror and worktrees (also the service's working directory)",
  },
  { flag: "--max-iterations <n>", key: "maxIterations", kind: "int", help: "worker: model turns per attempt" },
  { flag: "--sandbox <kind>", key: "sandbox", kind: "sandbox", help: "worker: auto, bwrap, sandbox-exec or none" },
  { flag: "--gpu <kind>", key: "gpu", kind: "gpu", help: "worker: where a GGUF model runs (auto, metal, cuda, vulkan, cpu)" },
];

/** Both commands take --threads. */
export const THREADS_OPTION: PassedOption = { flag: "--threads <n>", key: "threads", kind: "int", help: "CPU threads for a GGUF model" };

const KIND = "[farm|worker]";
const commands = () => import("./service-commands.js");

/** Options that pick the service: which manager's scope, which name. */
function which(cmd: Command): Command {
  return cmd
    .option("--user", "the user's service (default)")
    .option("--system", "the machine's service (needs root)")
    .option("--name <name>", "the service's name (default optimus-farm, or optimus-worker-<role>)")
    .addOption(
      hiddenOption(cmd, "--unit-dir <dir>", "write and look for the file here (default: $OPTIMUS_SERVICE_DIR, else the manager's folder)"),
    )
    .addOption(hiddenOption(cmd, "--manager <kind>", "systemd or launchd (default: this platform's)"));
}

const hiddenOption = (cmd: Command, flags: string, help: string) => cmd.createOption(flags, help).hideHelp();

/** Adds `optimus service …` to the program. */
export function registerServiceCommands(program: Command): void {
  const service = program.command("service").description("run the farm or a worker as a service: restarted on a crash and at boot");
  const install = which(
    service
      .command(`install ${KIND}`)
      .description(
        "write and load a systemd unit (Linux) or launchd plist (macOS) for the farm (--origin/--repo, --home) or a worker (--role, --model, --farm, --token-file, and --farm-pin or --farm-ca for an https:// farm); no secret is ever written into it",
      )
      .option("--dry-run", "print the file and the commands, change nothing")
      .option("--run-as <user>", "--system: the account the service runs as (default root)"),
  );
  for (const o of [...FARM_OPTIONS, ...WORKER_OPTIONS, THREADS_OPTION]) install.option(o.flag, o.help);
  install.action((kind: string | undefined, _o, cmd: Command) => commands().then((m) => m.serviceInstall(kind, cmd.optsWithGlobals())));

  which(service.command(`uninstall ${KIND}`).description("stop and unload the service and remove its file"))
    .option("--role <role>", "worker: which worker service (by role)")
    .option("--dry-run", "print the commands, change nothing")
    .action((kind: string | undefined, _o, cmd: Command) => commands().then((m) => m.serviceUninstall(kind, cmd.optsWithGlobals())));

  which(
    service
      .command(`status ${KIND}`)
      .description(
        "whether it runs, since when, its PID and last exit; exit 0 running, 3 not running, 4 not installed, 69 no service manager",
      ),
  )
    .option("--role <role>", "worker: which worker service (by role)")
    .option("--json", "print the status as JSON")
    .action((kind: string | undefined, _o, cmd: Command) => commands().then((m) => m.serviceStatus(kind, cmd.optsWithGlobals())));

  which(
    service.command(`logs ${KIND}`).description("the service's log: the journal (systemd) or its log file in the farm's home (launchd)"),
  )
    .option("--role <role>", "worker: which worker service (by role)")
    .option("-n, --lines <n>", "how many of the last lines", "100")
    .option("-f, --follow", "keep printing new lines")
    .action((kind: string | undefined, _o, cmd: Command) => commands().then((m) => m.serviceLogs(kind, cmd.optsWithGlobals())));

  // A launchd service's log file is rotated when the service starts (launchd has no rotation of its own).
  program.hook("preAction", async (_program, action) => {
    const log = process.env.OPTIMUS_SERVICE_LOG;
    if (!log || !["up", "worker"].includes(action.name())) return;
    const { rotateServiceLog } = await import("../service/service-log.js");
    rotateServiceLog(log);
  });
}
