import { z } from "zod";

/** Longest path a unit may name: far below any file system's limit, long enough for any real tree. */
export const MAX_REPO_PATH_LENGTH = 1024;

/**
 * Why `p` is not a repository-relative path inside the repository, or undefined. A unit's `files`
 * are read into prompts and bound what a change may touch, so each must name a place in the work
 * tree: relative, normalized, '/'-separated, never into git's own files. A trailing '/' names a
 * folder (everything under it).
 */
export function repoPathProblem(p: string): string | undefined {
  if (p.length === 0) return "must not be empty; name a file like src/app.ts";
  if (p.length > MAX_REPO_PATH_LENGTH) return `must be at most ${MAX_REPO_PATH_LENGTH} characters`;
  if (/[\u0000-\u001f\u007f-\u009f]/.test(p)) return "must not contain control characters; name the file by its plain path";
  if (p.includes("\\")) return "must use '/' between folders, not '\\' (write src/app.ts)";
  if (p.startsWith("/") || /^[A-Za-z]:/.test(p)) return "must be relative to the repository root (like src/app.ts), not an absolute path; only files inside the repository can be named";
  const segments = (p.endsWith("/") ? p.slice(0, -1) : p).split("/");
  if (segments.includes("..")) return "must not contain '..'; name the file by its path inside the repository (like src/app.ts)";
  if (segments.some((s) => s === "" || s === ".")) return "must be a plain path inside the repository without empty or '.' parts (write src/app.ts, not ./src//app.ts)";
  // Case-insensitive, and with the trailing dots and spaces Windows ignores: `.GIT`, `.git.` are git's folder too.
  if (segments.some((s) => s.replace(/[. ]+$/, "").toLowerCase() === ".git")) return "must not point into .git; units change the work tree, never git's own files";
  return undefined;
}

/** A file (or, with a trailing '/', a folder) inside the repository, relative to its root. */
export const RepoPath = z.string().superRefine((p, ctx) => {
  const problem = repoPathProblem(p);
  if (problem) ctx.addIssue({ code: "custom", message: problem, input: p });
});

const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The same rule for a path a change (a patch, a plan) touches, as git reads it: worded as a refusal
 * of the change rather than a hint to a person writing a unit's `files`.
 */
export function unsafePathReason(path: string): string | null {
  if (path.length === 0 || path.length > 1024) return "an empty or overlong path";
  if (CONTROL.test(path)) return `a path with control characters (${JSON.stringify(path).slice(0, 200)})`;
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path) || path.includes("\\")) return `an absolute or non-POSIX path (${path})`;
  const segments = path.split("/");
  if (segments.some((seg) => seg === ".." || seg === "." || seg === "")) return `a path that leaves or bends the tree (${path})`;
  // Case-insensitive: on macOS and Windows `.GIT` is `.git` (git's protectHFS/protectNTFS refuse it too).
  if (segments.some((seg) => seg.toLowerCase().replace(/[. ]+$/, "") === ".git")) return `git's own files (${path})`;
  return null;
}

