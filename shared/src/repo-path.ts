import { z } from "zod";

/** Longest path a unit may name: far below any file system's limit, long enough for any real tree. */
export const MAX_REPO_PATH_LENGTH = 1024;

/** C0, DEL and C1 (U+0080–U+009F, 8-bit terminal escapes): no file the farm handles has them in its name. */
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
/** Code points HFS+ ignores in a name (git's `is_hfs_dotgit` skips them too): `.g\u200cit` is `.git` on a Mac. */
const HFS_IGNORED = /[\u200c-\u200f\u202a-\u202e\u206a-\u206f\ufeff]/g;

const codePoint = (c: string) => `U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}`;

/**
 * True when one part of a path names git's own folder on some file system, as git itself reads it
 * (`verify_path` with core.protectHFS and core.protectNTFS): any case (`.GIT`), HFS+'s ignored
 * code points (`.g\u200cit`), and NTFS's trailing dots and spaces (`.git. `), alternate data streams
 * (`.git::$INDEX_ALLOCATION`) and 8.3 short name (`git~1`).
 */
function namesGitFolder(segment: string): boolean {
  const s = segment
    .replace(HFS_IGNORED, "")
    .toLowerCase()
    .replace(/:.*$/s, "")
    .replace(/[. ]+$/, "");
  return s === ".git" || s === "git~1";
}

/**
 * The one rule for a path inside the repository: why `p` is not one, or undefined. Every path the
 * farm takes from a person, a model or a patch meets it — a unit's `files` (schemas), a plan's
 * files (planner/plan-check.ts), the paths a change touches as git reads them (prloop/patch-policy.ts),
 * a worker's edits (worker/edits.ts), the files read into a prompt (worker/worktree-files.ts), the
 * paths of review comments (delivery/forge-delivery.ts). A path must be relative to the repository
 * root, '/'-separated and normalized (no '..', '.' or empty parts), free of control characters,
 * and never name git's own files (`.git` at any depth, in every spelling git refuses). It is
 * stricter than git where git is lax ('\\', control characters, drive letters). A trailing '/'
 * names a folder (everything under it); git never reports one for a file.
 *
 * The answer completes "the path …" (it reads "must not contain '..'; …"); show the path itself
 * with `shownPath`.
 */
export function repoPathProblem(p: string): string | undefined {
  if (p.length === 0) return "must not be empty; name a file like src/app.ts";
  if (p.length > MAX_REPO_PATH_LENGTH) return `must be at most ${MAX_REPO_PATH_LENGTH} characters (it has ${p.length})`;
  const control = CONTROL.exec(p);
  if (control)
    return `must not contain control characters (found ${codePoint(control[0])} at position ${control.index + 1}); name the file by its plain path`;
  if (p.includes("\\")) return "must use '/' between folders, not '\\' (write src/app.ts)";
  if (p.startsWith("/") || /^[A-Za-z]:/.test(p))
    return "must be relative to the repository root (like src/app.ts), not an absolute path; only files inside the repository can be named";
  const segments = (p.endsWith("/") ? p.slice(0, -1) : p).split("/");
  if (segments.includes("..")) return "must not contain '..'; name the file by its path inside the repository (like src/app.ts)";
  if (segments.some((s) => s === "" || s === "."))
    return "must be a plain path inside the repository without empty or '.' parts (write src/app.ts, not ./src//app.ts)";
  if (segments.some(namesGitFolder))
    return "must not point into .git (nor a name file systems take for it, such as .GIT, .git. or git~1); a change touches the work tree, never git's own files";
  return undefined;
}

/** A path as a message shows it: quoted, control characters escaped, cut to 200 characters. */
export function shownPath(p: string): string {
  const cut = p.length > 200 ? `${p.slice(0, 200)}…` : p;
  return JSON.stringify(cut).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A file (or, with a trailing '/', a folder) inside the repository, relative to its root. */
export const RepoPath = z.string().superRefine((p, ctx) => {
  const problem = repoPathProblem(p);
  if (problem) ctx.addIssue({ code: "custom", message: problem, input: p });
});
