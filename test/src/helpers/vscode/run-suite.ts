import { accessSync, constants } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runTests } from "@vscode/test-electron";
import { codeServerBinary, scratchDir } from "./code-server.js";

/** The stand-in for the VS Code executable that runs the suite in code-server (test/bin). */
export const LAUNCHER = fileURLToPath(new URL("../../../bin/code-server-launcher.mjs", import.meta.url));

export interface ExtensionSuiteOptions {
  /** The extension folder (its package.json), or several. */
  extensionDevelopmentPath: string | string[];
  /** The suite module whose `run()` VS Code's extension host calls (e.g. a Mocha runner). */
  extensionTestsPath: string;
  /** Folder (or .code-workspace) the window opens; none = an empty window. */
  workspace?: string;
  /** Extra environment for the extension host (runTests' extensionTestsEnv). */
  env?: Record<string, string>;
  /** Where a failing run leaves a screenshot and the server/workbench logs. */
  artifactsDir?: string;
  /** Overall limit for the suite (default 10 min; the launcher's OPTIMUS_VSCODE_TEST_TIMEOUT_MS). */
  timeoutMs?: number;
}

/**
 * Runs an extension's integration suite inside a real VS Code — code-server 4.100.3 driven by headless
 * Chromium — through @vscode/test-electron's `runTests`, with the launcher standing in for the VS Code
 * executable. Resolves when every test passed; rejects (with the tail of the output) otherwise.
 */
export async function runExtensionSuite(opts: ExtensionSuiteOptions): Promise<void> {
  codeServerBinary(); // fail with the install hint, not with "exit code 1"
  try {
    accessSync(LAUNCHER, constants.X_OK);
  } catch {
    throw new Error(`${LAUNCHER} is missing or not executable (chmod +x it)`);
  }
  const profile = scratchDir("optimus-vscode-suite-");
  const dev = (Array.isArray(opts.extensionDevelopmentPath) ? opts.extensionDevelopmentPath : [opts.extensionDevelopmentPath]).map((p) =>
    resolve(p),
  );
  const extensionTestsEnv: Record<string, string> = { ...opts.env };
  if (opts.artifactsDir) extensionTestsEnv.OPTIMUS_TEST_ARTIFACTS = resolve(opts.artifactsDir);
  if (opts.timeoutMs) extensionTestsEnv.OPTIMUS_VSCODE_TEST_TIMEOUT_MS = String(opts.timeoutMs);

  // runTests streams the launcher's output to our stdout/stderr; keep a copy for the error message.
  let output = "";
  const tee = (stream: NodeJS.WriteStream) => {
    const write = stream.write;
    stream.write = function (this: NodeJS.WriteStream, chunk: unknown, ...rest: unknown[]) {
      output = (output + (typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString())).slice(-20_000);
      return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
    } as typeof stream.write;
    return () => (stream.write = write);
  };
  const restore = [tee(process.stdout), tee(process.stderr)];
  try {
    await runTests({
      vscodeExecutablePath: LAUNCHER,
      extensionDevelopmentPath: dev.length === 1 ? dev[0]! : dev,
      extensionTestsPath: resolve(opts.extensionTestsPath),
      // Our own profile folders, so runTests does not create .vscode-test/ in the current directory.
      launchArgs: [
        ...(opts.workspace ? [resolve(opts.workspace)] : []),
        `--user-data-dir=${join(profile.path, "user-data")}`,
        `--extensions-dir=${join(profile.path, "extensions")}`,
      ],
      extensionTestsEnv,
    });
  } catch (err) {
    const tail = output
      .split("\n")
      .filter((l) => l.trim() !== "")
      .slice(-40)
      .join("\n");
    throw new Error(
      `extension suite ${opts.extensionTestsPath} failed in code-server: ${(err as Error).message}\n--- last output ---\n${tail}`,
      { cause: err },
    );
  } finally {
    for (const r of restore) r();
    profile.remove();
  }
}
