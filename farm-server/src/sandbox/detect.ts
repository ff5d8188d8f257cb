/**
 * Which sandbox this machine can make, probed once by really running `true` under it. No sandbox
 * is an answer, never a silent downgrade: callers refuse to run untrusted commands then, unless the
 * operator configured `sandbox: none`.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bwrapArgs, sandboxExecProfile } from "./profile.js";

export type SandboxKind = "bwrap" | "sandbox-exec" | "none";
export type SandboxSetting = SandboxKind | "auto";

export interface SandboxChoice {
  kind: SandboxKind;
  /** set for `none`: said with every run */
  note?: string;
}

/** Thrown when a command must be sandboxed and no sandbox works here. */
export class SandboxUnavailableError extends Error {}

const INSTALL_HINT: Record<string, string> = {
  linux: "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap)",
  darwin: "sandbox-exec ships with macOS; check that /usr/bin/sandbox-exec runs",
};

let probed: Promise<{ kind: SandboxKind; why?: string }> | undefined;
const named = new Map<Exclude<SandboxKind, "none">, Promise<string | undefined>>();

/** The sandbox this platform uses, if it works here (cached). */
export function detectSandbox(): Promise<{ kind: SandboxKind; why?: string }> {
  probed ??= (async () => {
    const kind: SandboxKind | null = process.platform === "linux" ? "bwrap" : process.platform === "darwin" ? "sandbox-exec" : null;
    if (!kind) return { kind: "none" as const, why: `${process.platform} has no supported sandbox` };
    const why = await probe(kind);
    return why === undefined ? { kind } : { kind: "none" as const, why: `${kind}: ${why}` };
  })();
  return probed;
}

/** Runs `true` under the sandbox; returns why it failed, or undefined when it works. */
export async function probe(kind: Exclude<SandboxKind, "none">): Promise<string | undefined> {
  const dir = mkdtempSync(join(tmpdir(), "optimus-probe-"));
  const view = { cwd: dir, home: dir, readOnly: [], readWrite: [], hide: [] };
  const argv =
    kind === "bwrap"
      ? ["bwrap", ...bwrapArgs(view), "--", "true"]
      : ["sandbox-exec", "-p", sandboxExecProfile({ ...view, tmp: dir }), "true"];
  try {
    return await new Promise((resolve) => {
      let stderr = "";
      const child = spawn(argv[0]!, argv.slice(1), {
        stdio: ["ignore", "ignore", "pipe"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
      });
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      child.on("error", (err: NodeJS.ErrnoException) => resolve(err.code === "ENOENT" ? `${argv[0]} is not installed` : err.message));
      child.on("close", (code) => resolve(code === 0 ? undefined : stderr.trim().split("\n")[0] || `exit code ${code}`));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The sandbox to use for a setting, or a SandboxUnavailableError that says how to fix it. `none`
 * is allowed only when configured, and carries a warning for every run.
 */
export async function resolveSandbox(setting: SandboxSetting | undefined, what = "checks and evals"): Promise<SandboxChoice> {
  if (setting === "none") {
    return {
      kind: "none",
      note: `WARNING: ${what} run WITHOUT a sandbox (sandbox: none): the code they run can read and write anything this process can, and reach the network`,
    };
  }
  if (setting === undefined || setting === "auto") {
    const found = await detectSandbox();
    if (found.kind !== "none") return { kind: found.kind };
    throw new SandboxUnavailableError(
      `cannot run ${what}: no sandbox works on this machine (${found.why}). Fix: ${INSTALL_HINT[process.platform] ?? "run on Linux or macOS"}; ` +
        "or, only on a machine you trust with this code, set `sandbox: none` (farm: .optimus/config.yaml; worker: --sandbox none)",
    );
  }
  // Probed once per process, like `auto`: not a bwrap start before every check.
  let p = named.get(setting);
  if (!p) named.set(setting, (p = probe(setting)));
  const why = await p;
  if (why !== undefined) throw new SandboxUnavailableError(`cannot run ${what}: the ${setting} sandbox does not work here: ${why}`);
  return { kind: setting };
}
