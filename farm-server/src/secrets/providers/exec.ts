import { execFile } from "node:child_process";
import { SecretError } from "../secret-error.js";
import { DEFAULT_TIMEOUT_MS, type ProviderOptions } from "./types.js";

/** Enough for any key; a tool printing more is not printing a key. */
const MAX_OUTPUT = 1024 * 1024;

/** Always passed to a secrets tool: finding programs, its config folder, its language. */
const BASE_ENV = ["PATH", "HOME", "USER", "LANG"];

/**
 * The environment a secrets tool runs with: the few variables it needs and nothing else, so a tool
 * (or whatever sits on PATH under its name) never sees the farm's other secrets. `prefixes` adds
 * variable families a tool needs (OP_* for 1Password's session and service-account token).
 */
export function childEnv(source: NodeJS.ProcessEnv, prefixes: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(source)) {
    if (v === undefined) continue;
    if (BASE_ENV.includes(k) || prefixes.some((p) => k.startsWith(p))) env[k] = v;
  }
  return env;
}

export interface ToolRun {
  /** the exit code; null when the tool was killed */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface ToolSpec {
  /** the reference being read, for messages */
  ref: string;
  /** how the tool is named to the user: "1Password CLI `op`" */
  label: string;
  file: string;
  args: string[];
  env: Record<string, string>;
  signal?: AbortSignal;
  opts: ProviderOptions;
}

/**
 * Runs a secrets tool without a shell (arguments are never parsed again), with a time limit and an
 * empty stdin (a tool that wants to prompt, such as `op` when signed out, fails at once instead of
 * waiting for the time limit). A non-zero exit is returned for the provider to explain; failures
 * to run at all become a SecretError. The child's output is never put into an error.
 */
export function runTool(t: ToolSpec): Promise<ToolRun> {
  const timeout = t.opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise<ToolRun>((resolve, reject) => {
    if (t.signal?.aborted) return reject(new SecretError(t.ref, "the read was cancelled"));
    const child = execFile(
      t.file,
      t.args,
      {
        env: t.env,
        timeout,
        killSignal: "SIGKILL",
        maxBuffer: MAX_OUTPUT,
        encoding: "utf8",
        windowsHide: true,
        shell: false,
        ...(t.signal ? { signal: t.signal } : {}),
      },
      (err, stdout, stderr) => {
        if (!err) return resolve({ code: 0, stdout, stderr });
        const e = err as NodeJS.ErrnoException & { code?: string | number | null; killed?: boolean; signal?: string | null };
        if (e.name === "AbortError" || t.signal?.aborted) return reject(new SecretError(t.ref, "the read was cancelled"));
        if (e.code === "ENOENT")
          return reject(
            new SecretError(t.ref, `${t.label} is not installed (not found${t.file.includes("/") ? ` at ${t.file}` : " on PATH"})`),
          );
        if (e.code === "EACCES") return reject(new SecretError(t.ref, `${t.label} cannot be run (permission denied on ${t.file})`));
        if (e.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER")
          return reject(new SecretError(t.ref, `${t.label} printed more than ${MAX_OUTPUT} bytes`));
        if (e.killed && e.code === null)
          return reject(new SecretError(t.ref, `${t.label} did not answer within ${Math.round(timeout / 100) / 10} s`));
        if (typeof e.code === "number") return resolve({ code: e.code, stdout, stderr });
        if (e.signal) return reject(new SecretError(t.ref, `${t.label} was killed by ${e.signal}`));
        // Spawn errors carry only a code; never e.message, which may hold the command line.
        reject(new SecretError(t.ref, `${t.label} could not be run (${typeof e.code === "string" ? e.code : "unknown error"})`));
      },
    );
    child.stdin?.end();
  });
}

/** A tool's stdout without the one line ending it adds. */
export const withoutTrailingNewline = (s: string): string => s.replace(/\r?\n$/, "");
