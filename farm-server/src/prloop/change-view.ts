import type { ChangeFile } from "@optimus/shared";
import type { FarmRepo } from "../git/farm-repo.js";

/** Files bigger than this are listed but their content is not sent to the editor. */
const MAX_FILE_BYTES = 1_000_000;
const MAX_FILES = 300;

const STATUS: Record<string, ChangeFile["status"]> = { A: "added", M: "modified", D: "deleted", T: "modified" };

/**
 * The content of an evaluated change, per file, as base (the integration branch the change was made
 * on) and proposed (the unit's commit): what the editor shows as a read-only diff. The commit stays
 * reachable after its branch is deleted, through the merge that took it.
 */
export async function changeFiles(repo: FarmRepo, commit: string): Promise<{ base: string; files: ChangeFile[]; truncated: boolean }> {
  const base = (await repo.git.raw(["rev-parse", `${commit}^`])).trim();
  const raw = await repo.git.raw(["diff", "--name-status", "-z", "--no-renames", base, commit]);
  const parts = raw.split("\0").filter((p) => p.length > 0);
  const entries: Array<{ status: ChangeFile["status"]; path: string }> = [];
  for (let i = 0; i + 1 < parts.length; i += 2) entries.push({ status: STATUS[parts[i]![0]!] ?? "modified", path: parts[i + 1]! });
  const files: ChangeFile[] = [];
  for (const e of entries.slice(0, MAX_FILES)) {
    const [before, after] = await Promise.all([
      e.status === "added" ? EMPTY : blob(repo, base, e.path),
      e.status === "deleted" ? EMPTY : blob(repo, commit, e.path),
    ]);
    const binary = isBinary(before.data) || isBinary(after.data);
    const tooLarge = before.size > MAX_FILE_BYTES || after.size > MAX_FILE_BYTES;
    const show = !binary && !tooLarge;
    files.push({
      path: e.path,
      status: e.status,
      binary,
      tooLarge,
      base: show ? before.data.toString("utf8") : undefined,
      proposed: show ? after.data.toString("utf8") : undefined,
    });
  }
  return { base, files, truncated: entries.length > MAX_FILES };
}

/**
 * The change of a unit's commit as one unified patch against the commit it was made on: what
 * `optimus unit diff` prints (binary files included, so `git apply` takes it as is).
 */
export async function changePatch(repo: FarmRepo, commit: string): Promise<string> {
  return repo.git.raw(["diff", "--no-color", "--no-ext-diff", "--no-textconv", "--binary", "--no-renames", `${commit}^`, commit]);
}

interface Blob {
  size: number;
  data: Buffer;
}
const EMPTY: Blob = { size: 0, data: Buffer.alloc(0) };

async function blob(repo: FarmRepo, rev: string, path: string): Promise<Blob> {
  const size = Number((await repo.git.raw(["cat-file", "-s", `${rev}:${path}`]).catch(() => "0")).trim());
  if (size > MAX_FILE_BYTES) return { size, data: Buffer.alloc(0) };
  return { size, data: await repo.git.bytes(["cat-file", "blob", `${rev}:${path}`]) };
}

const isBinary = (b: Buffer): boolean => b.subarray(0, 8_000).includes(0);
