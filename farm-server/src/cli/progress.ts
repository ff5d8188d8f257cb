/** A single status line that rewrites itself on a terminal and prints sparingly elsewhere. */
export function progressLine(out: NodeJS.WriteStream) {
  let last = 0;
  let shown = false;
  return {
    update(text: string) {
      const now = Date.now();
      if (now - last < (out.isTTY ? 100 : 2_000)) return;
      last = now;
      shown = true;
      if (out.isTTY) out.write(`\r\x1b[2K${text}`);
      else out.write(`${text}\n`);
    },
    done() {
      if (shown && out.isTTY) out.write("\r\x1b[2K");
      shown = false;
    },
  };
}
