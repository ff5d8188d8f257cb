// Small numeric and formatting helpers for the benchmark.

export const median = (xs: number[]): number => percentile(xs, 50);

/** Nearest-rank percentile (p in 0..100) of a non-empty sample. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((a, b) => a + b, 0) / xs.length);

/** Milliseconds elapsed since a `process.hrtime.bigint()` reading. */
export const msSince = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e6;

export function fmt(n: number, digits?: number): string {
  if (!Number.isFinite(n)) return String(n);
  const d = digits ?? (Math.abs(n) >= 100 ? 0 : Math.abs(n) >= 10 ? 1 : 2);
  return n.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

export interface Row {
  measure: string;
  value: string;
  unit: string;
  note: string;
}

/** A plain-text table with `|` separators and a header rule. */
export function table(rows: Row[]): string {
  const cols: Array<keyof Row> = ["measure", "value", "unit", "note"];
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(c.length, ...rows.map((r) => r[c].length))])) as Record<keyof Row, number>;
  const line = (r: Row) =>
    cols
      .map((c) => (c === "value" ? r[c].padStart(width[c]) : r[c].padEnd(width[c])))
      .join(" | ")
      .trimEnd();
  const header = line({ measure: "measure", value: "value", unit: "unit", note: "note" });
  const rule = cols.map((c) => "-".repeat(width[c])).join("-|-");
  return [header, rule, ...rows.map(line)].join("\n");
}

/** Rejects after `ms` with a message naming what was being waited for. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}
