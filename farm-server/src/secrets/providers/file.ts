import { constants } from "node:fs";
import { open, realpath } from "node:fs/promises";
import { isAbsolute, relative, resolve, sep } from "node:path";
import type { VaultConfig } from "../config.js";
import { SecretError } from "../secret-error.js";
import { formatSecretRef, type SecretRef } from "../secret-ref.js";
import { withoutTrailingNewline } from "./exec.js";
import type { ProviderOptions, SecretProvider } from "./types.js";

/** A key file is small; anything bigger was put there by mistake. */
const MAX_FILE_BYTES = 64 * 1024;

const inside = (root: string, p: string): boolean => {
  const rel = relative(root, p);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
};

/**
 * For development: the secret is the file <dir>/<item>/<field> (one trailing newline dropped, as
 * editors add one). The path must stay inside the folder after symbolic links are followed, and the
 * file must be readable by its owner only: a key file others can read has already leaked.
 */
export class FileProvider implements SecretProvider {
  constructor(
    private readonly cfg: Extract<VaultConfig, { provider: "file" }>,
    _opts: ProviderOptions = {},
  ) {}

  async read(ref: SecretRef): Promise<string> {
    const name = formatSecretRef(ref);
    const fail = (why: string) => new SecretError(name, why);
    let root: string;
    try {
      root = await realpath(resolve(this.cfg.dir));
    } catch {
      throw fail(`the secrets folder ${this.cfg.dir} does not exist`);
    }
    // parseSecretRef already refuses '/', '.' and '..'; checked again because providers can be
    // called with a reference that did not come through it.
    const target = resolve(root, ref.item, ref.field);
    if (
      !inside(root, target) ||
      [ref.item, ref.field].some((p) => p.length === 0 || p.includes("/") || p.includes("\\") || p === "." || p === "..")
    ) {
      throw fail(`the path ${ref.item}/${ref.field} leaves the secrets folder`);
    }
    let real: string;
    try {
      real = await realpath(target);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT" || code === "ENOTDIR") throw fail(`no file ${ref.item}/${ref.field} in the secrets folder ${this.cfg.dir}`);
      throw fail(`the file ${ref.item}/${ref.field} cannot be read (${code ?? "error"})`);
    }
    if (!inside(root, real)) throw fail(`${ref.item}/${ref.field} is a symbolic link that leads out of the secrets folder`);
    let fh;
    try {
      // O_NOFOLLOW: the resolved path was swapped for a link since realpath → refuse, don't follow.
      fh = await open(real, constants.O_RDONLY | (constants.O_NOFOLLOW ?? 0));
    } catch (err) {
      throw fail(`the file ${ref.item}/${ref.field} cannot be opened (${(err as NodeJS.ErrnoException).code ?? "error"})`);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw fail(`${ref.item}/${ref.field} is not a regular file`);
      // Windows has no such mode bits; there the folder's ACL is the protection.
      if (process.platform !== "win32" && (st.mode & 0o077) !== 0) {
        throw fail(`the file ${real} can be read or written by others (mode 0${(st.mode & 0o777).toString(8)}); run chmod 600 on it`);
      }
      if (st.size > MAX_FILE_BYTES) throw fail(`the file ${ref.item}/${ref.field} is larger than ${MAX_FILE_BYTES} bytes`);
      return withoutTrailingNewline(await fh.readFile({ encoding: "utf8" }));
    } finally {
      await fh.close();
    }
  }
}
