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
export interface StateLock {
  release(): void;
  /** records where the farm listens, so the CLI in the same repository finds it */
  setUrl(url: string): void;
}

export const lockFileOf = (stateDir: string) => join(stateDir, "farm.lock");

export function acquireStateLock(stateDir: string): StateLock {
  const file = lockFileOf(stateDir);
  const me = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, JSON.stringify(me), { flag: "wx", mode: 0o600 });
      return {
        release: () => rmSync(file, { force: true }),
        setUrl: (url) => writeFileSync(file, JSON.stringify({ ...me, url }), { mode: 0o600 }),
      };
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

/** The URL of the farm running on this state folder, if one is running on this host. */
export function runningFarmUrl(stateDir: string): string | undefined {
  try {
    const holder = JSON.parse(readFileSync(lockFileOf(stateDir), "utf8")) as { pid?: number; host?: string; url?: string };
    return holder.url && holder.pid && holder.host === hostname() && alive(holder.pid) ? holder.url : undefined;
  } catch {
    return undefined;
  }
}
