import type { Command } from "commander";
import { g, JSON_HELP } from "./globals.js";

/** Tokens, spend and the audit log: the farm's administration. */
export function registerAdminCommands(program: Command): void {
  const token = program.command("token").description("manage API tokens (admin)");
  token
    .command("create")
    .requiredOption("--role <role>", "admin, editor or worker")
    .option("--name <name>", "who or what holds it")
    .option("--approver", "editor tokens: may approve changes to protected paths (give it to a person, by name)")
    .option(
      "--ttl <duration>",
      "it expires when unused this long, e.g. 90s, 30m, 24h, 7d; each use renews it (default: 24h for a worker token; admin and editor tokens: never)",
    )
    .description("create a token; printed once")
    .action((_o, cmd: Command) => import("../admin-commands.js").then((m) => m.createToken(g(cmd) as never)));
  token
    .command("list")
    .option("--json", JSON_HELP)
    .description("list tokens (never their secrets)")
    .action((_o, cmd: Command) => import("../admin-commands.js").then((m) => m.listTokens(g(cmd))));
  token
    .command("revoke <tokenId>")
    .description("revoke a token")
    .action((id: string, _o, cmd: Command) => import("../admin-commands.js").then((m) => m.revokeToken(id, g(cmd))));

  program
    .command("spend")
    .option("--json", "the whole ledger as JSON")
    .option("--resume", "admin: let escalations be admitted again after a provider spend cap paused them")
    .description("frontier spend: totals, budgets, per day, task, unit, worker and model")
    .action((_o, cmd: Command) => import("../spend-commands.js").then((m) => m.spendReport(g(cmd) as never)));

  const audit = program.command("audit").description("the tamper-evident audit log");
  audit
    .command("verify")
    .option("--journal <file>", "journal file (default: the repository's farm journal)")
    .description("check the hash chain; names the first broken entry")
    .action((_o, cmd: Command) => import("../admin-commands.js").then((m) => m.auditVerify(g(cmd))));
}
