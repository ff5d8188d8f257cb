import type { Command } from "commander";
import { g, JSON_HELP } from "./globals.js";

/** `send`, `task …` and `status`: tasks in, and what became of them. */
export function registerTaskCommands(program: Command): void {
  program
    .command("send <instruction>")
    .description("send a task to the farm")
    .option("--files <paths...>", "files in scope")
    .option("--title <text>", "task title (default: the first line of the instruction)")
    .option("--priority <n>", "higher runs first (default 0)")
    .option("--check <command>", "the command whose success proves the change (run without network)")
    .option("--target <branch>", "the branch of the origin the change goes into (default: the origin's default branch)")
    .action((text: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.send(text, g(cmd))));

  const task = program.command("task").description("work with tasks (a task id may be shortened to any prefix that names one task)");
  task
    .command("import <manifest>")
    .description("create a task from a manifest YAML file")
    .action((file: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.importTask(file, g(cmd))));
  task
    .command("scan")
    .description("import every new manifest under .optimus/tasks/")
    .action((_o, cmd: Command) => import("../task-commands.js").then((m) => m.scanTasks(g(cmd))));
  task
    .command("list")
    .option("--state <state>", "only tasks in this state: open, running, merging, held, completed, failed or cancelled")
    .option("--limit <n>", "only the newest n")
    .option("--json", JSON_HELP)
    .description("the farm's tasks, oldest first (finished ones until they are archived; `task show` finds those too)")
    .action((_o, cmd: Command) => import("../task-list.js").then((m) => m.taskList(g(cmd))));
  task
    .command("show <taskId>")
    .option("--json", "print the task and its units as JSON")
    .description("show a task and all its units, also once it is finished and archived")
    .action((id: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.showTask(id, g(cmd) as never)));
  task
    .command("cancel <taskId>")
    .option("--reason <text>")
    .description("cancel a task and its unfinished units")
    .action((id: string, _o, cmd: Command) => import("../task-commands.js").then((m) => m.cancelTask(id, g(cmd))));

  program
    .command("status")
    .description(
      "tasks and units at a glance: live work first, why waiting units wait, and the command where a person must act; a live screen on a terminal (printed once otherwise)",
    )
    .option("--once", "print once and exit")
    .option("--watch", "the live screen, redrawn as the farm changes (the default on a terminal)")
    .option("--width <columns>", "lay the table out for this many columns (default: the terminal's, or 80)")
    .option("--task <id>", "only this task (an id or a unique prefix)")
    .option("--json", "print the tasks and their units once, as JSON")
    .action(async (_o, cmd: Command) => {
      const o = g(cmd) as ReturnType<typeof g> & { task?: string; json?: boolean };
      if (o.task) {
        // An unknown task is an error (exit 3), not an empty table; an archived one shows as `task show` does.
        const [{ httpClient }, { resolveTask }] = await Promise.all([import("../context.js"), import("../refs.js")]);
        const found = await resolveTask(httpClient(o).client, o.task);
        o.task = found.taskId;
        if (found.archived && !o.json) return import("../task-commands.js").then((m) => m.showTask(found.taskId, o));
      }
      if (o.json) return import("../status-json.js").then((m) => m.statusJson(o));
      return import("../status.js").then((m) => m.status(o));
    });
}
