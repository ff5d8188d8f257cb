import type { Command } from "commander";
import { g, JSON_HELP } from "./globals.js";

const PIN = "decide only on this attempt (default: the change's current attempt, printed first); the farm refuses if the change moved on";

/** Decisions on changes (`approve`, `reject`, `request-changes`, `escalate`) and `unit …`. Ids: <task>/<unit>, each part a unique prefix. */
export function registerUnitCommands(program: Command): void {
  program
    .command("approve <ref>")
    .option("--attempt <n>", PIN)
    .description("merge a change held for approval (<task>/<unit>), or a task's held merge (<task>)")
    .action((ref: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.approve(ref, g(cmd))));
  program
    .command("reject <task/unit>")
    .requiredOption("--reason <text>", "why (recorded)")
    .option("--attempt <n>", PIN)
    .description("reject a held change; the unit is cancelled with your reason (it can be retried)")
    .action((ref: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.reject(ref, g(cmd) as never)));
  program
    .command("request-changes <task/unit>")
    .requiredOption("--comment <text...>", "what to change; 'path:line: text' places it on a line")
    .option("--attempt <n>", PIN)
    .description("send a change back; the comments reach the worker's next attempt")
    .action((ref: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.requestChanges(ref, g(cmd) as never)));
  program
    .command("escalate <task/unit>")
    .option("--reason <text>", "what the frontier model should know (recorded)")
    .description("ask the frontier model for the unit's next attempt (as the editor's Escalate; needs a frontier model on the farm)")
    .action((ref: string, _o, cmd: Command) => import("../unit-commands.js").then((m) => m.escalate(ref, g(cmd))));

  const unit = program.command("unit").description("work with units (<task>/<unit>; each part may be a unique prefix)");
  unit
    .command("show <task/unit>")
    .option("--json", JSON_HELP)
    .description("a unit: state, attempt, worker, its change and summary, evals, review, risk, transcript, history")
    .action((ref: string, _o, cmd: Command) => import("../unit-commands.js").then((m) => m.unitShow(ref, g(cmd))));
  unit
    .command("diff <task/unit>")
    .option("--attempt <n>", "this attempt's change (default: the latest evaluated one)")
    .option("--json", JSON_HELP)
    .description("the unit's change as a plain patch on stdout (coloured only on a terminal)")
    .action((ref: string, _o, cmd: Command) => import("../unit-commands.js").then((m) => m.unitDiff(ref, g(cmd))));
  unit
    .command("logs <task/unit>")
    .option("--json", JSON_HELP)
    .description("the eval output, the worker's check output and its transcript")
    .action((ref: string, _o, cmd: Command) => import("../unit-commands.js").then((m) => m.unitLogs(ref, g(cmd))));
  unit
    .command("retry <task/unit>")
    .description("run a dead, failed or cancelled unit again")
    .action((ref: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.retryUnit(ref, g(cmd))));
  unit
    .command("cancel <task/unit>")
    .option("--reason <text>", "why (recorded)")
    .description("cancel a unit (it can be retried)")
    .action((ref: string, _o, cmd: Command) => import("../unit-commands.js").then((m) => m.unitCancel(ref, g(cmd))));
}
