/**
 * The dependency cache: a repository's set-up (e.g. `npm ci`) runs once per content hash of its key
 * files, in the sandbox (its network only through the egress proxy), and what it writes (its
 * outputs, e.g. `node_modules`) is kept in `<dir>/<hash>/` and shown read-only in every worktree
 * that needs the same hash. Layout:
 *
 *   <dir>/<hash>/node_modules      a finished entry (renamed into place whole: never half-written)
 *   <dir>/<hash>/setup.log         the set-up's log
 *   <dir>/<hash>.lock              held (pid inside) while one process installs that hash
 *   <dir>/<hash>.failed.log        the last failed set-up's log (a failure is never cached)
 *   <dir>/.tmp-<hash>-<random>/    an install in progress (swept by the next holder of the lock)
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { runCheck, type CheckResult, type EgressOptions, type SandboxBind, type SandboxSetting } from "../sandbox/index.js";
import { setupHash, type SetupPlan } from "./setup-plan.js";
import { alive } from "../store/state-lock.js";

export interface SetupRequest {
  plan: SetupPlan;
  /** a worktree at the tree whose key files count; on a miss the set-up runs here */
  worktree: string;
  sandbox?: SandboxSetting;
  /** the set-up's only way out: the farm's egress proxy (registries on its allowlist) */
  egress?: EgressOptions;
  hide?: string[];
  signal?: AbortSignal;
}

export interface SetupOutcome {
  ok: boolean;
  /** the entry existed: nothing was installed */
  hit: boolean;
  hash: string;
  command: string;
  durationMs: number;
  exitCode: number | null;
  /** for checks and evals: each output, read-only at its place in the worktree (empty on failure) */
  binds: SandboxBind[];
  /** where the set-up's log is kept */
  logFile: string;
  /** the log's tail on a miss or a failure, empty on a hit */
  output: string;
  /**
   * the command ran in the worktree: it may have changed files besides its outputs (root install
   * scripts), so the caller resets the worktree before anything is judged in it
   */
  ranInWorktree: boolean;
  /** one line for logs, evidence and the unit's detail */
  summary: string;
  sandboxNote?: string;
}

const LOCK_POLL_MS = 200;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class DepsCache {
  /** installs in progress in this process, by hash: a second unit waits for the first */
  private readonly inflight = new Map<string, Promise<unknown>>();

  constructor(readonly dir: string) {}

  entryOf(hash: string): string {
    return join(this.dir, hash);
  }

  /** Returns the entry for the worktree's key files, installing it first when it is missing. */
  async ensure(req: SetupRequest): Promise<SetupOutcome> {
    const hash = setupHash(req.plan, req.worktree);
    const before = this.inflight.get(hash);
    const mine = (async () => {
      await before?.catch(() => undefined);
      return this.ensureLocked(hash, req);
    })();
    const settled = mine.catch(() => undefined);
    this.inflight.set(hash, settled);
    try {
      return await mine;
    } finally {
      if (this.inflight.get(hash) === settled) this.inflight.delete(hash);
    }
  }

  private hit(hash: string, req: SetupRequest, started: number): SetupOutcome {
    const entry = this.entryOf(hash);
    const durationMs = Math.round(performance.now() - started);
    return {
      ok: true,
      hit: true,
      hash,
      command: req.plan.command,
      durationMs,
      exitCode: 0,
      binds: this.bindsFor(entry, req),
      logFile: join(entry, "setup.log"),
      output: "",
      ranInWorktree: false,
      summary: `set-up: cache hit (deps ${hash.slice(0, 12)}, \`${req.plan.command}\`) in ${durationMs} ms`,
    };
  }

  private bindsFor(entry: string, req: SetupRequest): SandboxBind[] {
    return req.plan.outputs.map((o) => ({ src: join(entry, o), dest: join(req.worktree, o), readOnly: true }));
  }

  private async ensureLocked(hash: string, req: SetupRequest): Promise<SetupOutcome> {
    const started = performance.now();
    const entry = this.entryOf(hash);
    if (existsSync(entry)) return this.hit(hash, req, started);
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const release = await this.lock(hash, req.signal);
    try {
      if (existsSync(entry)) return this.hit(hash, req, started); // another process installed it meanwhile
      for (const f of readdirSync(this.dir)) if (f.startsWith(`.tmp-${hash}-`)) rmSync(join(this.dir, f), { recursive: true, force: true });
      const tmp = join(this.dir, `.tmp-${hash}-${randomBytes(4).toString("hex")}`);
      for (const o of req.plan.outputs) mkdirSync(join(tmp, o), { recursive: true });
      let r: CheckResult;
      try {
        r = await runCheck(req.plan.command, {
          cwd: req.worktree,
          timeoutMs: req.plan.timeoutMs,
          sandbox: req.sandbox ?? "auto",
          binds: req.plan.outputs.map((o) => ({ src: join(tmp, o), dest: join(req.worktree, o), readOnly: false })),
          ...(req.egress ? { egress: req.egress } : {}),
          ...(req.hide ? { hide: req.hide } : {}),
          ...(req.signal ? { signal: req.signal } : {}),
        });
      } catch (err) {
        rmSync(tmp, { recursive: true, force: true });
        throw err;
      }
      const durationMs = Math.round(performance.now() - started);
      const ok = r.exitCode === 0;
      const log = `$ ${req.plan.command}\n# deps ${hash} (${req.plan.source}; key files ${req.plan.cacheKeyFiles.join(", ")})\n# exit ${r.exitCode}${r.timedOut ? " (timed out)" : ""} after ${durationMs} ms, sandbox ${r.sandbox}${req.egress ? ", network through the egress proxy" : ", no network"}\n${r.output}`;
      const base = {
        hash,
        command: req.plan.command,
        durationMs,
        exitCode: r.exitCode,
        output: r.output.slice(-8_000),
        ranInWorktree: true,
        ...(r.sandboxNote ? { sandboxNote: r.sandboxNote } : {}),
      };
      if (!ok) {
        const logFile = join(this.dir, `${hash}.failed.log`);
        writeFileSync(logFile, log);
        rmSync(tmp, { recursive: true, force: true });
        return {
          ...base,
          ok: false,
          hit: false,
          binds: [],
          logFile,
          summary: `set-up failed: \`${req.plan.command}\` ${r.timedOut ? "timed out" : `exited ${r.exitCode}`} after ${durationMs} ms (log: ${logFile})`,
        };
      }
      writeFileSync(join(tmp, "setup.log"), log);
      writeFileSync(
        join(tmp, "meta.json"),
        JSON.stringify(
          {
            hash,
            command: req.plan.command,
            outputs: req.plan.outputs,
            keyFiles: req.plan.cacheKeyFiles,
            source: req.plan.source,
            durationMs,
            createdAt: new Date().toISOString(),
          },
          null,
          2,
        ) + "\n",
      );
      renameSync(tmp, entry); // whole, or not at all
      rmSync(join(this.dir, `${hash}.failed.log`), { force: true });
      return {
        ...base,
        ok: true,
        hit: false,
        binds: this.bindsFor(entry, req),
        logFile: join(entry, "setup.log"),
        summary: `set-up: installed deps ${hash.slice(0, 12)} with \`${req.plan.command}\` in ${durationMs} ms (cache miss)`,
      };
    } finally {
      release();
    }
  }

  /** A lock file per hash holding its owner's pid; a dead owner's lock is taken over. */
  private async lock(hash: string, signal?: AbortSignal): Promise<() => void> {
    const path = join(this.dir, `${hash}.lock`);
    for (;;) {
      if (signal?.aborted) throw new Error("the set-up was stopped while waiting for another install of the same dependencies");
      try {
        const fd = openSync(path, "wx", 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return () => rmSync(path, { force: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      const owner = Number.parseInt(
        (() => {
          try {
            return readFileSync(path, "utf8");
          } catch {
            return "";
          }
        })(),
        10,
      );
      if (Number.isFinite(owner) && owner > 0 && alive(owner)) {
        await sleep(LOCK_POLL_MS);
        continue;
      }
      if (!Number.isFinite(owner) || owner <= 0) {
        await sleep(LOCK_POLL_MS); // being written right now, or garbage: look again before taking it
        if (readFileSyncSafe(path) === "" || !Number.isFinite(Number.parseInt(readFileSyncSafe(path), 10))) unlinkSafe(path);
        continue;
      }
      unlinkSafe(path); // its owner died (a crash): the install it left is swept once the lock is ours
    }
  }
}

function readFileSyncSafe(p: string): string {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
}

function unlinkSafe(p: string): void {
  try {
    unlinkSync(p);
  } catch {
    // gone already
  }
}
