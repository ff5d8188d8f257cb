/**
 * Applies the edit format (shared/src/edits.ts: its schema and parser) to a worktree.
 * The model is untrusted: every path is checked before any file changes, and a proposal is applied
 * all-or-nothing, so a half-good answer never leaves a half-edited worktree behind.
 */
import { lstat, mkdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { repoPathProblem, type Edit, type EditProposal } from "@optimus/shared";

// The format and its parser are a wire contract: they live in shared (re-exported for this folder's callers).
export {
  EditProposalSchema,
  EditSchema,
  editProposalJsonSchema,
  parseEditProposal,
  type Edit,
  type EditProposal,
  type ParseResult,
} from "@optimus/shared";

export interface ApplyOptions {
  /** repo-relative files, or folder prefixes ending in '/', that may be changed; empty = any file */
  scope: string[];
  maxFileBytes: number;
}

export type ApplyResult = { ok: true; changed: string[] } | { ok: false; error: string };

/** Validates every edit, computes every new file, and only then writes: all or nothing. */
export async function applyEdits(worktreeDir: string, proposal: EditProposal, opts: ApplyOptions): Promise<ApplyResult> {
  const root = await realpath(worktreeDir);
  const pending = new Map<string, string>(); // path → new content, in first-edit order
  const original = new Map<string, string | null>(); // path → content before (null: did not exist)
  for (const [i, edit] of proposal.edits.entries()) {
    const where = `edit ${i + 1} (${JSON.stringify(edit.path)})`;
    const pathError = checkPath(edit.path, opts.scope) ?? (await checkRealPath(root, edit.path, opts.scope));
    if (pathError) return { ok: false, error: `${where}: ${pathError}` };
    if (!original.has(edit.path)) original.set(edit.path, await readIfFile(join(root, edit.path)));
    const current = pending.get(edit.path) ?? original.get(edit.path) ?? null;
    const next = nextContent(edit, current);
    if (typeof next !== "string") return { ok: false, error: `${where}: ${next.error}` };
    const bytes = Buffer.byteLength(next);
    if (bytes > opts.maxFileBytes)
      return { ok: false, error: `${where}: the file would be ${bytes} bytes, over the limit of ${opts.maxFileBytes}` };
    pending.set(edit.path, next);
  }
  const changed = [...pending].filter(([p, content]) => original.get(p) !== content).map(([p]) => p);
  const written: string[] = [];
  try {
    for (const p of changed) {
      await mkdir(join(root, p, ".."), { recursive: true });
      await writeFile(join(root, p), pending.get(p)!);
      written.push(p);
    }
  } catch (err) {
    await restore(root, written, original); // a disk error halfway must not leave half the proposal applied
    return { ok: false, error: `writing the edits failed, nothing was changed: ${(err as Error).message}` };
  }
  return { ok: true, changed };
}

/** The file after one edit, or why the edit cannot apply. */
function nextContent(edit: Edit, current: string | null): string | { error: string } {
  if (edit.kind === "write") return edit.content;
  if (current === null) return { error: "cannot replace text in a file that does not exist (use a write edit to create it)" };
  const count = countOccurrences(current, edit.search);
  if (count !== 1) {
    return {
      error: `the search text must occur exactly once in ${edit.path}, but it was found ${count} times (it must match exactly, including whitespace and line endings)`,
    };
  }
  const at = current.indexOf(edit.search);
  // Slicing, not String.replace: a replacement containing "$&" or "$1" must be taken literally.
  return current.slice(0, at) + edit.replace + current.slice(at + edit.search.length);
}

/** Counts overlapping occurrences too: "aa" in "aaa" is ambiguous, so it counts as 2. */
function countOccurrences(text: string, search: string): number {
  let count = 0;
  for (let at = text.indexOf(search); at >= 0; at = text.indexOf(search, at + 1)) count++;
  return count;
}

/** Lexical checks (the farm's one path rule, and a file, not a folder), before touching the file system. Returns why the path is refused, or undefined. */
function checkPath(p: string, scope: string[]): string | undefined {
  const problem = repoPathProblem(p);
  if (problem) return `the path ${problem}`;
  if (p.endsWith("/")) return "the path names a folder (it ends in '/'); an edit writes one file";
  return checkPlace(p, scope);
}

/** Where a (normalized, relative) path may be: never inside git's own files, and inside the unit's scope. */
function checkPlace(p: string, scope: string[]): string | undefined {
  // Any `.git` segment: the repository's own, a submodule's, or a nested repository's (case-insensitive file systems too).
  if (p.split("/").some((s) => s.toLowerCase() === ".git")) return "the path is inside .git, which edits must never touch";
  if (scope.length === 0) return undefined;
  const inScope = scope.map((s) => s.replace(/^\.\//, "")).some((s) => (s.endsWith("/") ? p.startsWith(s) : p === s));
  return inScope ? undefined : `the path is outside the unit's scope (${scope.join(", ")})`;
}

/**
 * Resolves symlinks of whatever part of the path exists: a symlinked folder (or file) pointing outside
 * the worktree is refused, and one pointing elsewhere inside it must land in scope too.
 */
async function checkRealPath(root: string, p: string, scope: string[]): Promise<string | undefined> {
  const segments = p.split("/");
  let existing = segments.length;
  while (existing > 0 && !(await exists(join(root, ...segments.slice(0, existing))))) existing--;
  const base = existing > 0 ? await realpath(join(root, ...segments.slice(0, existing))).catch(() => null) : root;
  if (base === null) return "the path goes through a broken symbolic link";
  const resolved = join(base, ...segments.slice(existing));
  const rel = relative(root, resolved);
  if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel))
    return "the path leads outside the worktree (through a symbolic link)";
  if (existing > 0 && existing < segments.length && !(await stat(base)).isDirectory()) {
    return `${segments.slice(0, existing).join("/")} is a file, not a folder`;
  }
  if (existing === segments.length && (await stat(resolved)).isDirectory()) return "the path is a folder, not a file";
  const relPosix = rel.split(sep).join("/");
  return relPosix === p ? undefined : checkPlace(relPosix, scope);
}

/** lstat, so a dangling symlink counts as existing (and is then refused by realpath, not written through). */
async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

async function readIfFile(path: string): Promise<string | null> {
  return readFile(path, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return null;
    throw err;
  });
}

async function restore(root: string, written: string[], original: Map<string, string | null>): Promise<void> {
  for (const p of written) {
    const before = original.get(p);
    await (before === null || before === undefined ? rm(join(root, p), { force: true }) : writeFile(join(root, p), before)).catch(
      () => undefined,
    );
  }
}
