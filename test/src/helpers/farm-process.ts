import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { CLI } from "./paths.js";
import { stateDirFor } from "@optimus/farm-server/dist/home/farm-home.js";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/**
 * The real farm server as a child process (`optimus farm up`), so tests can SIGKILL it and start
 * it again on the same repository and port.
 */
export class FarmProcess {
  private child: ChildProcess | null = null;
  log = "";
  exits = 0;

  constructor(readonly repo: string, readonly port: number, readonly extraArgs: string[] = [], readonly extraEnv: Record<string, string> = {}) {}

  /** the running farm's process id (to inspect its environment), if it runs */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get adminToken(): string {
    return readFileSync(join(stateDirFor(this.repo), "admin.token"), "utf8").trim();
  }

  async start(timeoutMs = 30_000): Promise<void> {
    // A URL is the team's origin (`--origin`); a folder is taken as the origin (`--repo`).
    const where = /^[a-z]+:\/\//i.test(this.repo) ? ["--origin", this.repo] : ["--repo", this.repo];
    const child = spawn(process.execPath, [CLI, "farm", "up", ...where, "--port", String(this.port), ...this.extraArgs], {
      env: { ...process.env, OPTIMUS_LOG_LEVEL: process.env.OPTIMUS_LOG_LEVEL ?? "warn", ...this.extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    child.once("exit", () => this.exits++);
    const from = this.log.length; // look for this start's banner only
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`farm did not start in ${timeoutMs} ms:\n${this.log}`)), timeoutMs);
      const onData = (b: Buffer) => {
        this.log += b.toString();
        if (this.log.includes("Optimus farm listening on", from)) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stderr!.on("data", onData);
      child.stdout!.on("data", (b: Buffer) => (this.log += b.toString()));
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`farm exited with ${code} before listening:\n${this.log}`));
      });
    });
  }

  /** SIGKILL: no shutdown code runs, as in a power cut or an OOM kill. */
  async kill9(): Promise<void> {
    await this.signal("SIGKILL");
  }

  /** SIGTERM: the graceful stop a service manager sends. */
  async stop(): Promise<void> {
    await this.signal("SIGTERM");
  }

  private async signal(sig: NodeJS.Signals): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once("exit", r));
    c.kill(sig);
    // A graceful stop that takes too long is a failure to report, not a test run that hangs.
    const timer = sig === "SIGKILL" ? null : setTimeout(() => {
      this.log += `\n[test] farm did not stop within 15 s of ${sig}; killed\n`;
      c.kill("SIGKILL");
    }, 15_000);
    await exited;
    if (timer) clearTimeout(timer);
    this.child = null;
  }
}
