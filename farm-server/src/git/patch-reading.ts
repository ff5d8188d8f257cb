/**
 * What a patch changes, decided by git's own reading of it — never by a parser of ours. A patch
 * is applied to a throwaway index (read from the base commit; no worktree, no ref moves) and the
 * result is listed with git's plumbing: paths, modes (regular, executable, symlink, gitlink),
 * object ids, line counts and blob sizes. Whatever git would apply is exactly what the policy sees.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GitError, runGit } from "./safe-git.js";

export interface ChangedEntry {
  path: string;
  /** A added, M modified, D deleted, T type changed (e.g. file → symlink) */
  status: "A" | "M" | "D" | "T";
  /** git's modes: 100644, 100755, 120000 (symlink), 160000 (gitlink/submodule), 000000 (absent) */
  oldMode: string;
  newMode: string;
  newOid: string;
  /** changed lines; null for binary content */
  added: number | null;
  removed: number | null;
  /** bytes of the new blob; null when deleted or a gitlink */
  size: number | null;
}

export type PatchReading = { ok: true; entries: ChangedEntry[] } | { ok: false; error: string };

const ZERO = /^0+$/;

/**
 * With `patch`: applies it onto `base` in a temporary index and lists the result against `base`.
 * With `commit` (and patch null): lists what `commit` changed against `base`.
 */
export async function readPatchWithGit(repo: string, base: string, patch: string | null, commit?: string): Promise<PatchReading> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-patch-"));
  const env = { GIT_INDEX_FILE: join(dir, "index") };
  const git = (args: string[], input?: string) => runGit(args, { cwd: repo, env, ...(input !== undefined ? { input } : {}) });
  try {
    let raw: string;
    let numstat: string;
    if (patch !== null) {
      await git(["read-tree", base]);
      try {
        await git(["apply", "--cached", "--binary", "-"], patch);
      } catch (err) {
        const why = oneLine(err);
        if (/failed: error: No valid patches in input/.test(why))
          return { ok: false, error: "not a git patch: git found nothing to apply in it (send the output of `git diff --binary`)" };
        return { ok: false, error: why };
      }
      raw = (await git(["diff-index", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev", base])).stdout;
      numstat = (await git(["diff-index", "--cached", "--numstat", "-z", "--no-renames", base])).stdout;
    } else {
      raw = (await git(["diff-tree", "-r", "--raw", "-z", "--no-renames", "--no-abbrev", base, commit!])).stdout;
      numstat = (await git(["diff-tree", "-r", "--numstat", "-z", "--no-renames", base, commit!])).stdout;
    }
    const entries = parseRaw(raw);
    const counts = parseNumstat(numstat);
    for (const e of entries) {
      const c = counts.get(e.path);
      if (c) [e.added, e.removed] = c;
    }
    await addSizes(repo, entries);
    return { ok: true, entries };
  } catch (err) {
    if (err instanceof GitError) return { ok: false, error: oneLine(err) };
    throw err;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const oneLine = (err: unknown) =>
  (err as Error).message
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, 3)
    .join(" ");

/** `:old new oldOid newOid S\0path\0` records, as `--raw -z` prints them. */
function parseRaw(raw: string): ChangedEntry[] {
  const parts = raw.split("\0");
  const out: ChangedEntry[] = [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const head = parts[i]!;
    if (!head.startsWith(":")) break;
    const [oldMode, newMode, , newOid, status] = head.slice(1).split(" ");
    out.push({
      path: parts[i + 1]!,
      status: status!.charAt(0) as ChangedEntry["status"],
      oldMode: oldMode!,
      newMode: newMode!,
      newOid: newOid!,
      added: null,
      removed: null,
      size: null,
    });
  }
  return out;
}

/** `added\tremoved\tpath\0` (`-\t-` for binary). */
function parseNumstat(text: string): Map<string, [number | null, number | null]> {
  const m = new Map<string, [number | null, number | null]>();
  for (const rec of text.split("\0")) {
    const t1 = rec.indexOf("\t");
    const t2 = rec.indexOf("\t", t1 + 1);
    if (t1 < 0 || t2 < 0) continue;
    const n = (s: string) => (s === "-" ? null : Number(s));
    m.set(rec.slice(t2 + 1), [n(rec.slice(0, t1)), n(rec.slice(t1 + 1, t2))]);
  }
  return m;
}

async function addSizes(repo: string, entries: ChangedEntry[]): Promise<void> {
  const blobs = entries.filter((e) => !ZERO.test(e.newOid) && e.newMode !== "160000");
  if (blobs.length === 0) return;
  const out = (
    await runGit(["cat-file", "--batch-check=%(objectname) %(objectsize)"], {
      cwd: repo,
      input: blobs.map((e) => e.newOid).join("\n") + "\n",
    })
  ).stdout;
  const sizes = new Map(
    out
      .split("\n")
      .filter(Boolean)
      .map((l) => l.split(" ") as [string, string]),
  );
  for (const e of blobs) {
    const s = sizes.get(e.newOid);
    if (s !== undefined && /^\d+$/.test(s)) e.size = Number(s);
  }
}
