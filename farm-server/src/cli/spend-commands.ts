import { httpClient, type GlobalOptions } from "./context.js";
import { printable } from "./printable.js";

const usd = (n: number) => `$${n.toFixed(4)}`;

/** Rows of a spend group, largest first, as aligned text. */
function rows(title: string, group: Record<string, number>, limit = 20): string[] {
  const entries = Object.entries(group).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return [];
  const width = Math.max(...entries.slice(0, limit).map(([k]) => k.length));
  const out = [`${title}:`, ...entries.slice(0, limit).map(([k, v]) => `  ${printable(k).padEnd(width)}  ${usd(v)}`)];
  if (entries.length > limit) out.push(`  … and ${entries.length - limit} more`);
  return out;
}

/** `optimus spend`: the frontier cost ledger — totals, budgets, and spend per day, task, unit, worker and model. */
export async function spendReport(o: GlobalOptions & { json?: boolean; resume?: boolean }): Promise<void> {
  const { client } = httpClient(o);
  if (o.resume) {
    await client.gateway.resume.mutate();
    console.error("escalations resumed: queued ones are admitted as the budgets allow");
  }
  const r = await client.gateway.spend.query();
  if (o.json) {
    console.log(JSON.stringify(r, null, 2));
    return;
  }
  const today = new Date().toISOString().slice(0, 10);
  const lines = [
    r.configured
      ? `frontier model ${printable(r.model)}`
      : "no frontier model configured (gateway.apiKey in .optimus/config.yaml): everything runs locally",
    `spent ${usd(r.totalUsd)} in all, ${usd(r.byDay[today] ?? 0)} today; ${usd(r.reservedUsd)} reserved by ${r.inFlight} call(s) in flight; ${r.queued} escalation(s) queued`,
    `budgets: ${usd(r.budgets.perTaskUsd)} per task, ${usd(r.budgets.perDayUsd)} per day${r.budgets.fleetUsd !== undefined ? `, ${usd(r.budgets.fleetUsd)} for the fleet` : ""}`,
    ...(r.paused ? [`ESCALATIONS PAUSED: ${printable(r.paused)} (an admin resumes them with \`optimus spend --resume\`)`] : []),
    ...rows("by day", r.byDay),
    ...rows("by task", r.byTask),
    ...rows("by unit", r.byUnit),
    ...rows("by worker", r.byWorker),
    ...rows("by model", r.byModel),
  ];
  console.log(lines.join("\n"));
}
