/**
 * The rules a change must meet before it goes near a branch, applied to git's own reading of it
 * (`patch-reading.ts`): every path plain and inside the tree, in the unit's scope, no symlinks or
 * submodules unless allowed, sizes within limits; files made executable are named for the risk score.
 */
// (the path rule is the one every path meets: shared/src/repo-path.ts)
import { repoPathProblem, shownPath, type DiffStat, type PrLoopConfig } from "@optimus/shared";
import type { ChangedEntry } from "../git/patch-reading.js";

export type ChangeCheck = { ok: true; facts: DiffStat } | { ok: false; error: string };

const SYMLINK = "120000";
const GITLINK = "160000";
const EXECUTABLE = "100755";
/** True when `path` is one of the unit's files or inside one of its folders (`dir/`). Empty scope: anything. */
export function inScope(path: string, scope: readonly string[]): boolean {
  if (scope.length === 0) return true;
  return scope.some((s) => (s.endsWith("/") ? path.startsWith(s) : path === s || path.startsWith(`${s}/`)));
}

export type ChangeLimits = Pick<PrLoopConfig, "maxFileBytes" | "maxFilesPerPatch"> & { allowSymlinks?: boolean; allowSubmodules?: boolean };

/** Applies the rules to what git says a change does; the first violation is the answer. */
export function checkChange(entries: readonly ChangedEntry[], scope: readonly string[], limits: ChangeLimits): ChangeCheck {
  if (entries.length === 0) return { ok: false, error: "the patch changes nothing" };
  if (entries.length > limits.maxFilesPerPatch)
    return { ok: false, error: `the patch touches ${entries.length} files; the limit is ${limits.maxFilesPerPatch}` };
  let added = 0;
  let removed = 0;
  const executables: string[] = [];
  for (const e of entries) {
    const why = repoPathProblem(e.path);
    if (why) return { ok: false, error: `the patch touches ${shownPath(e.path)}: the path ${why}` };
    if (!inScope(e.path, scope))
      return { ok: false, error: `the patch touches ${e.path}, which is outside the unit's files (${scope.join(", ")})` };
    if ((e.newMode === SYMLINK || (e.oldMode === SYMLINK && e.status !== "D")) && !limits.allowSymlinks) {
      return { ok: false, error: `the patch makes ${e.path} a symbolic link, which is not allowed` };
    }
    if ((e.newMode === GITLINK || e.oldMode === GITLINK) && !limits.allowSubmodules) {
      return { ok: false, error: `the patch adds or changes a submodule (gitlink) at ${e.path}, which is not allowed` };
    }
    if (e.size !== null && e.size > limits.maxFileBytes)
      return { ok: false, error: `the patch makes ${e.path} ${e.size} bytes; the limit is ${limits.maxFileBytes}` };
    if (e.newMode === EXECUTABLE && e.oldMode !== EXECUTABLE) executables.push(e.path);
    added += e.added ?? 0;
    removed += e.removed ?? 0;
  }
  const files = entries.map((e) => e.path).sort();
  return { ok: true, facts: { files, added, removed, ...(executables.length ? { executables } : {}) } };
}
