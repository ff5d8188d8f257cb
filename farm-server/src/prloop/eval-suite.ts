import type { Logger } from "pino";
import type { EvalOutcome, ServerConfig } from "@optimus/shared";
import { runCheck, type EgressOptions, type SandboxBind } from "../sandbox/index.js";
import { prepareDeps, type DepsCache } from "../setup/index.js";
import type { EvalTree, FarmRepo } from "../git/farm-repo.js";

export interface EvalSuiteDeps {
  repo: FarmRepo;
  config: ServerConfig;
  log: Logger;
  /** folders evals must never see (the farm's home) */
  hide: string[];
  /** the dependency cache; without it, no set-up */
  deps?: DepsCache;
  setupEgress?(): EgressOptions | undefined;
  signal?: AbortSignal;
}

/** The suite's outcome; `stopped`: the farm is stopping, there is no verdict. */
export interface EvalSuiteRun {
  evals: EvalOutcome[];
  green: boolean;
  stopped: boolean;
}

/**
 * The repository's eval suite on one commit in a pooled tree already at that commit: the
 * dependency set-up first (a `set-up` entry; its failure skips the evals), then each eval in the
 * sandbox, seeing the tree, the toolchains and the cached dependencies read-only. Used for a unit's
 * change and for a task's merge onto a target that moved (the same rules, one place).
 */
export async function runEvalSuite(
  d: EvalSuiteDeps,
  tree: EvalTree,
  commit: string,
  logRef: Record<string, unknown>,
): Promise<EvalSuiteRun> {
  const evals: EvalOutcome[] = [];
  let binds: SandboxBind[] = [];
  if (d.config.prloop.eval.length > 0 && d.deps) {
    const setup = await setUp(d, tree.dir, logRef);
    if (d.signal?.aborted) return { evals, green: false, stopped: true };
    if (setup) {
      evals.push(setup.outcome);
      binds = setup.binds;
      // The set-up ran the repository's install scripts here: back to exactly the commit.
      if (setup.ranInWorktree) await d.repo.resetTree(tree, commit);
    }
  }
  for (const e of evals.some((e) => e.exitCode !== 0) ? [] : d.config.prloop.eval) {
    const r = await runCheck(e.command, {
      cwd: tree.dir,
      timeoutMs: e.timeoutMs,
      sandbox: d.config.sandbox,
      hide: d.hide,
      binds,
      ...(d.signal ? { signal: d.signal } : {}),
    });
    if (d.signal?.aborted) return { evals, green: false, stopped: true };
    if (r.sandboxNote) d.log.warn({ ...logRef, eval: e.name }, r.sandboxNote);
    evals.push({ name: e.name, exitCode: r.exitCode, timedOut: r.timedOut, durationMs: r.durationMs, output: r.output.slice(-8_000) });
  }
  return { evals, green: evals.every((e) => e.exitCode === 0), stopped: false };
}

/**
 * The dependency set-up of an eval tree, as an eval entry (`set-up`: a cache hit or an install,
 * with its duration; a failure fails the evaluation with its log's tail), or null when the
 * repository has none. Logged with its duration and whether it was a cache hit.
 */
async function setUp(
  d: EvalSuiteDeps,
  wt: string,
  logRef: Record<string, unknown>,
): Promise<{ outcome: EvalOutcome; binds: SandboxBind[]; ranInWorktree: boolean } | null> {
  const egress = d.setupEgress?.();
  let prepared;
  try {
    prepared = await prepareDeps(d.deps!, d.config.setup, {
      worktree: wt,
      sandbox: d.config.sandbox,
      hide: d.hide,
      ...(egress ? { egress } : {}),
      ...(d.signal ? { signal: d.signal } : {}),
    });
  } catch (err) {
    const output = `the set-up could not run: ${(err as Error).message}`;
    d.log.warn({ ...logRef }, output);
    return { outcome: { name: "set-up", exitCode: null, timedOut: false, durationMs: 0, output }, binds: [], ranInWorktree: true };
  }
  if (prepared.kind === "unsupported") d.log.warn({ ...logRef }, `no dependency set-up: ${prepared.reason}`);
  if (prepared.kind !== "ready") return null;
  const o = prepared.outcome;
  if (o.sandboxNote) d.log.warn({ ...logRef }, o.sandboxNote);
  d.log.info({ ...logRef, hash: o.hash, hit: o.hit, durationMs: o.durationMs, ok: o.ok, log: o.logFile }, o.summary);
  const output = o.ok ? `${o.summary}\n${o.hit ? "" : o.output.slice(-2_000)}`.trimEnd() : `${o.summary}\n${o.output}`;
  return {
    outcome: { name: "set-up", exitCode: o.exitCode, timedOut: false, durationMs: o.durationMs, output: output.slice(-8_000) },
    binds: o.binds,
    ranInWorktree: o.ranInWorktree,
  };
}

/** A one-line account of a failed run, for a hold's reason. */
export const failedEvals = (run: EvalSuiteRun): string =>
  run.evals
    .filter((e) => e.exitCode !== 0)
    .map((e) => `${e.name} ${e.timedOut ? "timed out" : `exited ${e.exitCode}`}`)
    .join(", ");
