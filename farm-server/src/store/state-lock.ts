import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { FarmError } from "../core/errors.js";

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/**
 * One farm server per state folder. A second `farm up` on the same repository is refused here,
 * before it opens the journal — opening it would bump the epoch and fence the running farm off.
 * A lock left by a crashed farm (its process is gone) is taken over. Epoch fencing stays the
 * safety net for what a lock file cannot see (another host sharing the folder).
 */
export function acquireStateLock(stateDir: string): () => void {
  const file = join(stateDir, "farm.lock");
  const me = JSON.stringify({ pid: process.pid, host: hostname(), since: new Date().toISOString() });
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, me, { flag: "wx", mode: 0o600 });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let holder: { pid?: number; host?: string } = {};
      try {
        holder = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        // unreadable or half-written: treat as stale
      }
      if (holder.pid && holder.host === hostname() && holder.pid !== process.pid && alive(holder.pid)) {
        throw new FarmError("conflict", `another farm server (pid ${holder.pid}) is already running on this repository (${file})`);
      }
      rmSync(file, { force: true });
    }
  }
  throw new FarmError("conflict", `could not take the farm lock ${file}`);
}
