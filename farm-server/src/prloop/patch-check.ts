import type { PrLoopConfig } from "@optimus/shared";

export interface PatchFacts {
  files: string[];
  added: number;
  removed: number;
}

export type PatchCheck = { ok: true; facts: PatchFacts } | { ok: false; error: string };

/** A repository-relative path a patch may touch: plain, inside the tree, never git's own files. */
export function unsafePathReason(path: string): string | null {
  if (path.length === 0 || path.length > 1024) return "an empty or overlong path";
  if (path.startsWith("/") || /^[A-Za-z]:/.test(path)) return `an absolute path (${path})`;
  if (path.split("/").some((seg) => seg === ".." || seg === "." || seg === "")) return `a path that leaves or bends the tree (${path})`;
  if (path === ".git" || path.startsWith(".git/") || path.split("/").includes(".git")) return `git's own files (${path})`;
  return null;
}

/** True when `path` is one of the unit's files or inside one of its folders (`dir/`). Empty scope: anything. */
export function inScope(path: string, scope: readonly string[]): boolean {
  if (scope.length === 0) return true;
  return scope.some((s) => (s.endsWith("/") ? path.startsWith(s) : path === s || path.startsWith(`${s}/`)));
}

/**
 * Checks a worker's `git diff --binary` before it goes anywhere near a worktree: every path (both
 * sides, renames and copies too) is safe and in scope, no symlink is created, sizes are within
 * limits. Paths git had to quote (unusual characters) are refused rather than decoded.
 */
export function checkPatch(patch: string, scope: readonly string[], limits: Pick<PrLoopConfig, "maxPatchBytes" | "maxFileBytes" | "maxFilesPerPatch">): PatchCheck {
  const bytes = Buffer.byteLength(patch);
  if (bytes > limits.maxPatchBytes) return { ok: false, error: `the patch is ${bytes} bytes; the limit is ${limits.maxPatchBytes}` };
  if (!patch.trim()) return { ok: false, error: "the patch is empty" };
  const files = new Set<string>();
  let added = 0;
  let removed = 0;
  let sawHeader = false;
  let inBinary = false;
  const lines = patch.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const touch = (p: string): string | null => {
      const why = unsafePathReason(p);
      if (why) return `the patch touches ${why}`;
      if (!inScope(p, scope)) return `the patch touches ${p}, which is outside the unit's files (${scope.join(", ")})`;
      files.add(p);
      return null;
    };
    if (line.startsWith("diff --git ")) {
      sawHeader = true;
      inBinary = false;
      if (line.includes('"')) return { ok: false, error: `the patch names a path git had to quote: ${line.slice(11, 200)}` };
      const m = /^diff --git a\/(.+) b\/(.+)$/.exec(line);
      if (!m) return { ok: false, error: `unreadable patch header: ${line.slice(0, 200)}` };
      for (const p of [m[1]!, m[2]!]) {
        const err = touch(p);
        if (err) return { ok: false, error: err };
      }
      continue;
    }
    if (!sawHeader) continue;
    if (/^(new file mode|new mode|old mode|deleted file mode) 120000/.test(line)) return { ok: false, error: "the patch creates or changes a symbolic link, which is not allowed" };
    if (/^(new file mode|new mode) 160000/.test(line)) return { ok: false, error: "the patch adds a submodule, which is not allowed" };
    const renamed = /^(rename|copy) (from|to) (.+)$/.exec(line);
    if (renamed) {
      if (renamed[3]!.includes('"')) return { ok: false, error: `the patch names a path git had to quote: ${renamed[3]}` };
      const err = touch(renamed[3]!);
      if (err) return { ok: false, error: err };
      continue;
    }
    const plusMinus = /^(---|\+\+\+) (.+)$/.exec(line);
    if (plusMinus && !inBinary) {
      const p = plusMinus[2]!;
      if (p !== "/dev/null") {
        if (p.includes('"')) return { ok: false, error: `the patch names a path git had to quote: ${p}` };
        const m = /^[ab]\/(.+)$/.exec(p);
        if (!m) return { ok: false, error: `unreadable file line in the patch: ${line.slice(0, 200)}` };
        const err = touch(m[1]!);
        if (err) return { ok: false, error: err };
      }
      continue;
    }
    if (line === "GIT binary patch") {
      inBinary = true;
      continue;
    }
    const blob = inBinary ? /^(literal|delta) (\d+)$/.exec(line) : null;
    if (blob && Number(blob[2]) > limits.maxFileBytes) {
      return { ok: false, error: `the patch carries a binary file of ${blob[2]} bytes; the limit is ${limits.maxFileBytes}` };
    }
    if (!inBinary && line.startsWith("+") && !line.startsWith("+++")) added++;
    if (!inBinary && line.startsWith("-") && !line.startsWith("---")) removed++;
  }
  if (!sawHeader) return { ok: false, error: "not a git patch: no `diff --git` header (send the output of `git diff --binary`)" };
  if (files.size > limits.maxFilesPerPatch) return { ok: false, error: `the patch touches ${files.size} files; the limit is ${limits.maxFilesPerPatch}` };
  return { ok: true, facts: { files: [...files].sort(), added, removed } };
}
