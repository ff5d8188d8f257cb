import { spawn, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { CLI } from "./paths.js";

/** A long-running `optimus …` process (a worker) whose output is kept for assertions. */
export class CliProcess {
  readonly child: ChildProcess;
  log = "";

  constructor(args: string[], opts: { cwd: string; env?: Record<string, string> }) {
    this.child = spawn(process.execPath, [CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, OPTIMUS_LOG_LEVEL: "warn", ...opts.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout!.on("data", (b: Buffer) => (this.log += b.toString()));
    this.child.stderr!.on("data", (b: Buffer) => (this.log += b.toString()));
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((r) => this.child.once("exit", r));
    this.child.kill(signal);
    await exited;
  }
}

/** pids whose command line contains `needle` (NUL-separated argv), seen from outside any namespace. */
export function processesWith(needle: string): string[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(needle);
      } catch {
        return false;
      }
    });
}
