/**
 * Text from the farm or a repository (titles, goals, reasons, worker summaries, file names, error
 * messages) is printed to a terminal, where an escape sequence can recolour, retitle, clear the
 * screen or rewrite what was printed before it. Everything the CLI prints that it did not write
 * itself goes through `printable` first.
 */

// ESC followed by: a CSI sequence (ESC [ … final byte), an OSC/DCS/SOS/PM/APC string (up to BEL or
// ESC \), or any single character (two-byte escapes such as ESC c, which resets the terminal).
const ESCAPE_SEQUENCE = /\u001b(?:\[[0-?]*[ -/]*[@-~]?|[\]PX^_][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[\s\S]?)|\u009b[0-?]*[ -/]*[@-~]?|[\u0090\u0098\u009d-\u009f][^\u0007\u009c]*[\u0007\u009c]?/g;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** The text without terminal escape sequences or control characters; newlines (and tabs) kept only when `multiline`. */
export function printable(text: string, opts: { multiline?: boolean } = {}): string {
  const stripped = String(text).replace(ESCAPE_SEQUENCE, "").replace(CONTROL, "");
  return opts.multiline ? stripped : stripped.replace(/[\n\t]+/g, " ");
}
