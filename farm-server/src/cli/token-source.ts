import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { CliError } from "./errors.js";

/** Where a command's token may come from, most explicit first. */
export interface TokenSources {
  /** --token: works, but other users of the machine can read it in `ps` */
  token?: string;
  /** --token-file: a file holding the token (mode 0600) */
  tokenFile?: string;
}

const MAX_TOKEN_FILE_BYTES = 4096;

/** Reads a token file: one line, the token; refuses what cannot be one. */
export function readTokenFile(path: string, warn: (msg: string) => void = (m) => process.stderr.write(`optimus: warning: ${m}\n`)): string {
  const file = resolve(path);
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new CliError(`the token file ${file} is not a file; pass the file that holds the token`, 2);
    if (st.size > MAX_TOKEN_FILE_BYTES)
      throw new CliError(`the token file ${file} is ${st.size} bytes, too large for a token; pass the file that holds only the token`, 2);
    // Group or others can read it: the point of a token file is that they cannot.
    if (process.platform !== "win32" && (st.mode & 0o077) !== 0)
      warn(`the token file ${file} can be read by other users; make it private with: chmod 600 ${file}`);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      `cannot read the token file ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); check the path given to --token-file or OPTIMUS_TOKEN_FILE`,
      2,
    );
  }
  const token = text.trim();
  if (!token || /\s/.test(token)) throw new CliError(`the token file ${file} must hold exactly one token on one line`, 2);
  return token;
}

/**
 * The token a command uses, without the local farm's fallback: --token, --token-file,
 * OPTIMUS_TOKEN, OPTIMUS_TOKEN_FILE. The file and environment routes are preferred: a token on the
 * command line is visible to every user of the machine in `ps`.
 */
export function tokenFromSources(o: TokenSources, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (o.token && o.tokenFile) throw new CliError("pass --token or --token-file, not both", 2);
  if (o.token) return o.token;
  if (o.tokenFile) return readTokenFile(o.tokenFile);
  if (env.OPTIMUS_TOKEN) return env.OPTIMUS_TOKEN;
  if (env.OPTIMUS_TOKEN_FILE) return readTokenFile(env.OPTIMUS_TOKEN_FILE);
  return undefined;
}
