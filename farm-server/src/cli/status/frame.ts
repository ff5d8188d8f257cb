/**
 * Redrawing a terminal screen by difference: the lines that changed since the last frame are
 * rewritten in place (cursor moved to each), the rest left alone, so a live screen does not
 * flicker. Only the first frame (and the one after a resize, when the terminal has re-wrapped
 * what it showed) clears the screen.
 */

const CSI = "\x1b[";
/** the alternate screen (the shell's screen comes back on exit) and a hidden cursor */
export const ENTER_SCREEN = `${CSI}?1049h${CSI}?25l`;
export const LEAVE_SCREEN = `${CSI}?25h${CSI}?1049l`;

/**
 * What to write to turn a screen showing `prev` (null: unknown, e.g. after a resize) into `next`.
 * Each line is at most `width` characters; a line that fills the width is not followed by an
 * erase, which a terminal would apply to its last character (the cursor waits there to wrap).
 */
export function frameUpdate(prev: readonly string[] | null, next: readonly string[], width: number): string {
  const line = (i: number, text: string) => `${CSI}${i + 1};1H${text}${text.length < width ? `${CSI}K` : ""}`;
  if (!prev) return `${CSI}H${CSI}2J` + next.map((l, i) => (l ? line(i, l) : "")).join("");
  let out = "";
  for (let i = 0; i < Math.max(prev.length, next.length); i++) {
    if (prev[i] !== next[i]) out += line(i, next[i] ?? "");
  }
  return out;
}
