import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { isAbsolute, join, relative, sep } from "node:path";
import { repoPathProblem } from "@optimus/shared";

/** Most files (of the unit's files and folders) put into one prompt. */
const MAX_CONTEXT_FILES = 200;
/** Largest file shown to the model in full. */
export const MAX_CONTEXT_FILE = 64 * 1024;

/**
 * What a file of the worktree says, for a prompt — or why it is not shown. Defence in depth behind
 * the farm's own check of unit files: the path must be a plain repository path, and its real path
 * (after symbolic links) must stay inside the worktree, so a committed link such as
 * `docs/notes.md -> ~/.optimus/worker/token` never puts a file of this machine into a prompt
 * (and from there into a transcript every editor can read).
 */
export function readWorktreeFile(
  root: string,
  rel: string,
): { kind: "file"; content: string } | { kind: "folder"; entries: string[] } | { kind: "refused" | "missing"; note: string } {
  const lexical = repoPathProblem(rel);
  if (lexical) return { kind: "refused", note: `(not shown: the path ${lexical})` };
  let real: string;
  try {
    real = realpathSync(join(root, rel));
  } catch {
    return { kind: "missing", note: "(does not exist yet)" };
  }
  const realRoot = realpathSync(root);
  const r = relative(realRoot, real);
  if (r.startsWith(`..${sep}`) || r === ".." || isAbsolute(r))
    return { kind: "refused", note: "(not shown: a symbolic link that leads outside the worktree)" };
  const st = statSync(real);
  if (st.isDirectory()) return { kind: "folder", entries: readdirSync(real) };
  if (!st.isFile()) return { kind: "refused", note: "(not shown: not a regular file)" };
  return { kind: "file", content: st.size > MAX_CONTEXT_FILE ? "(too large to show)" : readFileSync(real, "utf8") };
}

/** Reads the unit's files (and the folders it names) from the worktree, for the prompt. */
export function filesInScope(dir: string, scope: string[]): Array<{ path: string; content: string }> {
  const out: Array<{ path: string; content: string }> = [];
  const add = (rel: string) => {
    if (out.length >= MAX_CONTEXT_FILES) return; // a folder of links to itself must not go on forever
    const f = readWorktreeFile(dir, rel);
    if (f.kind === "folder") {
      for (const e of f.entries.slice(0, 50)) add(`${rel.replace(/\/$/, "")}/${e}`);
      return;
    }
    out.push({ path: rel, content: f.kind === "file" ? f.content : f.note });
  };
  for (const s of scope.slice(0, 100)) add(s);
  return out;
}
