/**
 * Fitting the status table into a terminal's width. Ids are never cut (a person copies them into
 * the next command); free text (detail, title, worker) is cut first, then the columns that matter
 * least (AGE, then ATTEMPT) are dropped. Every function here is pure, so the layout is tested
 * without a terminal.
 */
import { stripTerminalEscapes } from "@optimus/shared";

/** Text from the farm on one line, without escapes or control characters (see cli/printable.ts). */
export const oneLine = (raw: string): string => stripTerminalEscapes(raw);

/** Cut to `n` characters, the last one an ellipsis when something was cut. */
export function cut(s: string, n: number): string {
  if (n <= 0) return "";
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

const pad = (s: string, n: number) => s.padEnd(n);

/**
 * Words packed into lines of at most `width` (the first line after `first`, the next ones after
 * `rest`); a word longer than a line is cut only when `cutLong` (ids and commands never are).
 */
export function pack(parts: string[], width: number, first: string, rest = first, cutLong = true): string[] {
  const lines: string[] = [];
  let line = first;
  let empty = true;
  for (const part of parts) {
    const sep = empty ? "" : " ";
    if (!empty && line.length + sep.length + part.length > width) {
      lines.push(line);
      line = rest;
      empty = true;
    }
    const room = width - line.length;
    line += (empty ? "" : " ") + (cutLong && part.length > room ? cut(part, room) : part);
    empty = false;
  }
  if (!empty || lines.length === 0) lines.push(line);
  return lines;
}

/** Free text wrapped at spaces into lines of at most `width`, each starting with `indent` (after `first` on the first). */
export const wrap = (text: string, width: number, first: string, indent: string): string[] =>
  pack(oneLine(text).split(/ +/).filter(Boolean), width, first, indent);

/** One row of the table: its cells, and whether its id is a task's (at the left) or a unit's (indented). */
export interface TableRow {
  id: string;
  unit: boolean;
  state: string;
  attempt: string;
  worker: string;
  age: string;
  /** free text: cut to what is left of the line */
  detail: string;
}

/** Which columns a width leaves, and how wide each is. */
export interface Columns {
  width: number;
  id: number;
  state: number;
  attempt: number;
  worker: number;
  age: number;
  /** what is left for the detail on a row whose id fits its column */
  detail: number;
}

/** the detail a row should have room for before columns are dropped for it */
const DETAIL_WANTED = 24;
const INDENT = "  ";

/**
 * Column widths for these rows in `width` characters: each as wide as its widest cell; then, while
 * the detail has less than DETAIL_WANTED, the worker is cut to 8, AGE dropped, ATTEMPT dropped.
 * The id column fits every unit id, and task ids up to a third of the width: a longer task id
 * shifts its own row (whole), so long ids do not squeeze every unit's detail.
 */
export function fitColumns(rows: TableRow[], width: number): Columns {
  const max = (f: (r: TableRow) => string, header: string) => Math.max(header.length, ...rows.map((r) => f(r).length));
  const unitIds = rows.filter((r) => r.unit).map((r) => INDENT.length + r.id.length);
  const taskIds = rows.filter((r) => !r.unit).map((r) => r.id.length);
  const id = Math.max("TASK / UNIT".length, ...unitIds, ...taskIds.filter((n) => n <= Math.floor(width / 3)));
  const c: Columns = {
    width,
    id,
    state: max((r) => r.state, "STATE"),
    attempt: max((r) => r.attempt, "ATTEMPT"),
    worker: rows.some((r) => r.worker) ? max((r) => r.worker, "WORKER") : 0,
    age: max((r) => r.age, "AGE"),
    detail: 0,
  };
  const detailLeft = () => width - [c.id, c.state, c.attempt, c.worker, c.age].reduce((n, w) => n + (w > 0 ? w + 1 : 0), 0);
  const longest = Math.max(0, ...rows.map((r) => r.detail.length));
  const wanted = Math.min(longest, DETAIL_WANTED);
  if (detailLeft() < wanted && c.worker > 8) c.worker = Math.max(8, c.worker - (wanted - detailLeft()));
  if (detailLeft() < wanted) c.age = 0;
  if (detailLeft() < wanted) c.attempt = 0;
  c.detail = Math.max(0, detailLeft());
  return c;
}

/** The header line of these columns. */
export function headerLine(c: Columns): string {
  return renderRow(c, {
    id: "TASK / UNIT",
    unit: false,
    state: "STATE",
    attempt: "ATTEMPT",
    worker: "WORKER",
    age: "AGE",
    detail: "DETAIL",
  });
}

/**
 * One row in these columns: the id whole (a longer one pushes the rest of its row to the right),
 * the other cells cut to their column, the detail to what is left of the width.
 */
export function renderRow(c: Columns, r: TableRow): string {
  const id = (r.unit ? INDENT : "") + r.id;
  // A row pushed right by its id is out of line anyway: its empty cells take no room.
  const shifted = id.length > c.id;
  let line = shifted ? id : pad(id, c.id);
  const cells: Array<[string, number]> = [
    [r.state, c.state],
    [r.attempt, c.attempt],
    [r.worker, c.worker],
    [r.age, c.age],
  ];
  for (const [text, w] of cells) if (w > 0 && !(shifted && !text)) line += " " + pad(cut(text, w), w);
  const room = c.width - line.length - 1;
  if (r.detail && room > 0) line += " " + cut(r.detail, room);
  return line.trimEnd();
}
