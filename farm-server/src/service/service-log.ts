/**
 * The log file of a launchd service, rotated by size when the service starts. launchd opens
 * StandardOutPath and StandardErrorPath itself, in append mode, before the program runs, so the
 * file cannot be renamed under it (the service would go on writing to the renamed file): it is
 * copied to `<file>.1` (older copies shifted to `.2`, `.3`) and truncated in place, and the next
 * append lands at its new end. Only at start, when nothing else writes to it.
 */
import { copyFileSync, existsSync, renameSync, statSync, truncateSync } from "node:fs";

/** The environment variable a launchd service's plist sets to its log file. */
export const SERVICE_LOG_ENV = "OPTIMUS_SERVICE_LOG";
/** Rotated above this size. */
export const SERVICE_LOG_MAX_BYTES = 10 * 1024 * 1024;
/** Rotated copies kept beside the log. */
export const SERVICE_LOG_KEEP = 3;

/** Rotates `file` if it is larger than `maxBytes`; says whether it did. */
export function rotateServiceLog(file: string, maxBytes = SERVICE_LOG_MAX_BYTES, keep = SERVICE_LOG_KEEP): boolean {
  if (!existsSync(file) || statSync(file).size <= maxBytes) return false;
  for (let i = keep - 1; i >= 1; i--) if (existsSync(`${file}.${i}`)) renameSync(`${file}.${i}`, `${file}.${i + 1}`);
  copyFileSync(file, `${file}.1`);
  truncateSync(file, 0);
  return true;
}
