import { CliError, EXIT } from "./errors.js";
import { printable } from "./printable.js";

/**
 * A plain table for the CLI's lists: every column as wide as its widest cell, so an id is never cut
 * and can be copied from the table as is; the last column (a title, a detail) runs free.
 */
export function table(header: string[], rows: string[][]): string {
  const cells = [header, ...rows].map((r) => r.map((c) => printable(c)));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return (
    cells
      .map((r) =>
        r
          .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
          .join("  ")
          .trimEnd(),
      )
      .join("\n") + "\n"
  );
}

/** How long ago `ms` was, in one short unit (12s, 5m, 3h, 2d). */
export function ago(ms: number, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

/** A whole number ≥ 1 from an option, or a usage error naming the option. */
export function positiveInt(name: string, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new CliError(`${name} must be a whole number ≥ 1, got '${value}'`, EXIT.usage);
  return Number(value);
}

export const printJson = (value: unknown): void => {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
};
