/**
 * Text that came from a repository, a model or a worker (titles, check output, error messages) may
 * hold terminal escape sequences: they recolour, retitle or clear a terminal, and they cost a model
 * tokens for nothing. One rule strips them, wherever such text is printed or sent to a model.
 */

// ESC followed by: a CSI sequence (ESC [ … final byte), an OSC/DCS/SOS/PM/APC string (up to BEL or
// ESC \), or any single character (two-byte escapes such as ESC c, which resets the terminal); and
// the 8-bit C1 forms of CSI and the string introducers.
const ESCAPE_SEQUENCE =
  /\u001b(?:\[[0-?]*[ -/]*[@-~]?|[\]PX^_][^\u0007\u001b]*(?:\u0007|\u001b\\)?|[\s\S]?)|\u009b[0-?]*[ -/]*[@-~]?|[\u0090\u0098\u009d-\u009f][^\u0007\u009c]*[\u0007\u009c]?/g;
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/**
 * The text without terminal escape sequences or control characters. `multiline`: newlines and tabs
 * kept (a carriage return, as progress bars use it, becomes a newline); otherwise one line.
 */
export function stripTerminalEscapes(text: string, opts: { multiline?: boolean } = {}): string {
  let t = String(text).replace(ESCAPE_SEQUENCE, "");
  if (opts.multiline) t = t.replace(/\r\n?/g, "\n");
  t = t.replace(CONTROL, "");
  return opts.multiline ? t : t.replace(/[\n\t]+/g, " ");
}
