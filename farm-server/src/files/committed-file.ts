import { lstat, open, realpath, stat } from "node:fs/promises";
import { isAbsolute, join, relative, sep } from "node:path";
import { yamlSizeProblem } from "@optimus/shared";

/** A file of the repository read as text, or why it cannot be (`missing`: there is no such file). */
export type CommittedText = { ok: true; text: string } | { ok: false; missing: boolean; problem: string };

const inside = (root: string, p: string) => {
  const rel = relative(root, p);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
};

/**
 * Reads a file somebody committed (a task manifest), trusting nothing about it: a symbolic link
 * (of the file or a folder on its way) that leads outside the repository is not followed, a folder
 * or a device in its place is refused, a file over `maxBytes` is not read, bytes that are not UTF-8
 * are refused. Never throws: every failure is one sentence for a warning.
 */
export async function readCommittedText(repo: string, rel: string, maxBytes: number, what: string): Promise<CommittedText> {
  const fail = (problem: string, missing = false): CommittedText => ({ ok: false, missing, problem });
  const abs = join(repo, rel);
  try {
    await lstat(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" || code === "ENOTDIR" ? fail(`there is no ${rel}`, true) : fail(cannotRead(err));
  }
  try {
    const root = await realpath(repo);
    const real = await realpath(abs).catch(() => null);
    if (real === null) return fail("is a symbolic link that leads nowhere; remove it or point it at a file in the repository");
    if (!inside(root, real))
      return fail("is reached through a symbolic link that leads outside the repository; the farm does not follow it");
    const st = await stat(real);
    if (st.isDirectory()) return fail("is a folder, not a file; put the task's manifest.yaml inside its task folder");
    if (!st.isFile()) return fail("is not a regular file; commit the manifest as a plain file");
    if (st.size > maxBytes) return fail(yamlSizeProblem(st.size, maxBytes, what)!);
    // Read at most one byte past the limit: the file may grow between stat and read.
    const fh = await open(real, "r");
    let bytes: Buffer;
    try {
      const buf = Buffer.alloc(maxBytes + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      bytes = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
    if (bytes.length > maxBytes) return fail(yamlSizeProblem(bytes.length, maxBytes, what)!);
    try {
      return { ok: true, text: new TextDecoder("utf-8", { fatal: true }).decode(bytes) };
    } catch {
      return fail("is not valid UTF-8 text; save it as UTF-8");
    }
  } catch (err) {
    return fail(cannotRead(err));
  }
}

/** Why a folder entry (a task folder) must not be used: it leads outside the repository, or undefined. */
export async function outsideRepoProblem(repo: string, rel: string): Promise<string | undefined> {
  try {
    const [root, real] = await Promise.all([realpath(repo), realpath(join(repo, rel))]);
    return inside(root, real) ? undefined : "is a symbolic link that leads outside the repository; the farm does not follow it";
  } catch {
    return "is a symbolic link that leads nowhere; remove it";
  }
}

function cannotRead(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e.code === "EACCES" || e.code === "EPERM") return "cannot be read (permission denied); make it readable by the farm's user";
  if (e.code === "EISDIR") return "is a folder, not a file; put the task's manifest.yaml inside its task folder";
  if (e.code === "ELOOP") return "is a loop of symbolic links; remove it";
  return `cannot be read (${e.code ?? e.message}); check the file`;
}
