import { execFile } from "node:child_process";
import { CLI } from "./paths.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `optimus` CLI in a repository, as a user would. */
export function runCli(args: string[], opts: { cwd: string; env?: Record<string, string>; input?: string }): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, ...args],
      { cwd: opts.cwd, env: { ...process.env, OPTIMUS_LOG_LEVEL: "warn", ...opts.env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code: typeof code === "number" ? code : 1, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
