/**
 * Text from the farm or a repository (titles, goals, reasons, worker summaries, file names, error
 * messages) is printed to a terminal, where an escape sequence can recolour, retitle, clear the
 * screen or rewrite what was printed before it. Everything the CLI prints that it did not write
 * itself goes through `printable` first.
 */

import { stripTerminalEscapes } from "@optimus/shared";

/** The text without terminal escape sequences or control characters; newlines (and tabs) kept only when `multiline`. */
export function printable(text: string, opts: { multiline?: boolean } = {}): string {
  return stripTerminalEscapes(text, opts);
}
