import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { FarmError } from "../errors/farm-error.js";

/** Whether a process of this host is alive (EPERM: it is, under another user). */
export const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
};

/** When a process started (ms since the epoch), where the system says (Linux /proc); else undefined. */
function startedAt(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces and parentheses): field 22 is the start time in ticks since boot.
    const ticks = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
    const btime = Number(/^btime (\d+)$/m.exec(readFileSync("/proc/stat", "utf8"))?.[1]);
    const hz = 100; // USER_HZ: 100 on every Linux ABI Node runs on
    return Number.isFinite(ticks) && Number.isFinite(btime) ? btime * 1000 + (ticks / hz) * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The lock's holder still runs: its pid is alive on this host and is the same process (a pid
 * reused by a later process — common in containers — started after the lock was written).
 */
function holderRuns(holder: { pid?: number; host?: string; since?: string }): boolean {
  if (!holder.pid || holder.host !== hostname() || !alive(holder.pid)) return false;
  const since = holder.since ? Date.parse(holder.since) : NaN;
  const started = startedAt(holder.pid);
  return !(Number.isFinite(since) && started !== undefined && started > since + 2_000);
}

/**
 * One farm server per state folder. A second `farm up` on the same repository is refused here,
 * before it opens the journal — opening it would bump the epoch and fence the running farm off.
 * A lock left by a crashed farm (its process is gone) is taken over. Epoch fencing stays the
 * safety net for what a lock file cannot see (another host sharing the folder).
 */
export interface StateLock {
  /** set when the lock was left by a farm that is gone (it crashed or was killed) and this one took it over */
  takenOver?: { pid?: number; host?: string; since?: string };
  release(): void;
  /** records where the farm listens, so the CLI in the same repository finds it */
  /** where the farm listens, and with TLS the pin of its certificate (the local CLI trusts it from here) */
  setUrl(url: string, pin?: string): void;
}

export const lockFileOf = (stateDir: string) => join(stateDir, "farm.lock");

export function acquireStateLock(stateDir: string): StateLock {
  const file = lockFileOf(stateDir);
  const me = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
  let takenOver: StateLock["takenOver"];
  for (let i = 0; i < 2; i++) {
    try {
      writeFileSync(file, JSON.stringify(me), { flag: "wx", mode: 0o600 });
      return {
        ...(takenOver ? { takenOver } : {}),
        release: () => rmSync(file, { force: true }),
        setUrl: (url, pin) => writeFileSync(file, JSON.stringify({ ...me, url, ...(pin ? { pin } : {}) }), { mode: 0o600 }),
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      let holder: { pid?: number; host?: string; since?: string } = {};
      try {
        holder = JSON.parse(readFileSync(file, "utf8"));
      } catch {
        // unreadable or half-written: treat as stale
      }
      if (holder.pid !== process.pid && holderRuns(holder)) {
        throw new FarmError("conflict", `another farm server (pid ${holder.pid}) is already running on this repository (${file})`);
      }
      // Left by a farm that is gone (crashed, killed, power cut): nobody needs to remove it by hand.
      takenOver = {
        ...(holder.pid ? { pid: holder.pid } : {}),
        ...(holder.host ? { host: holder.host } : {}),
        ...(holder.since ? { since: holder.since } : {}),
      };
      rmSync(file, { force: true });
    }
  }
  throw new FarmError("conflict", `could not take the farm lock ${file}`);
}

/** The URL of the farm running on this state folder, if one is running on this host. */
export function runningFarmUrl(stateDir: string): string | undefined {
  return runningFarm(stateDir)?.url;
}

/** The farm running on this state folder: its URL and, served over TLS, its certificate's pin. */
export function runningFarm(stateDir: string): { url: string; pin?: string } | undefined {
  try {
    const holder = JSON.parse(readFileSync(lockFileOf(stateDir), "utf8")) as { pid?: number; host?: string; url?: string; pin?: string };
    if (!holder.url || !holderRuns(holder as { pid?: number; host?: string; since?: string })) return undefined;
    return { url: holder.url, ...(typeof holder.pin === "string" ? { pin: holder.pin } : {}) };
  } catch {
    return undefined;
  }
}
