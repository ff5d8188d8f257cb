import { join } from "node:path";
import type { Logger } from "pino";
import type { ServerConfig } from "@optimus/shared";
import type { FarmState } from "./core/farm-state.js";
import type { LeaseCommands } from "./core/lease-commands.js";
import { GitDelivery } from "./delivery/git-delivery.js";
import type { OriginClone } from "./delivery/origin.js";
import type { ManifestMirror } from "./files/manifest-mirror.js";
import type { SessionNotes } from "./files/session-notes.js";
import type { FarmRepo } from "./git/farm-repo.js";
import { farmHome, filesDirFor, stateDirOf } from "./home/farm-home.js";
import type { BranchCutter } from "./prloop/branch-cutter.js";
import { PrLoop } from "./prloop/pr-loop.js";
import { TaskMerge } from "./prloop/task-merge.js";

/** The PR loop on the farm's clone (without a git origin, accepted results simply complete). */
export function createPrLoop(o: {
  farmRepo: FarmRepo | null;
  clone: OriginClone | null;
  cutter: BranchCutter | null;
  repo: string;
  config: ServerConfig;
  state: FarmState;
  leases: LeaseCommands;
  log: Logger;
  notes: SessionNotes;
  signal: AbortSignal;
  mirror: ManifestMirror;
  /** among farm nodes sharing a store: asked before each push to the origin */
  stillLeads?: () => Promise<boolean>;
}): PrLoop | null {
  const { farmRepo, clone, cutter, repo, config, state, leases, log, notes, signal, mirror } = o;
  if (!farmRepo || !clone) {
    log.warn(`${repo} is not a git repository: changes cannot be evaluated or merged, results complete as they are`);
    return null;
  }
  let prloop: PrLoop | null = null;
  const reevaluate = config.delivery.reevaluateOnMovedTarget && config.prloop.eval.length > 0 && !config.forge;
  const delivery = new GitDelivery({
    repo: farmRepo,
    origin: clone,
    log,
    movedTargetRetries: config.delivery.movedTargetRetries,
    keepBranches: config.delivery.keepBranches,
    ...(o.stillLeads ? { stillLeads: o.stillLeads } : {}),
    ...(reevaluate ? { evaluate: (taskId: string, commit: string) => prloop!.evaluateMerge(taskId, commit) } : {}),
  });
  const taskMerge = new TaskMerge({
    state,
    repo: farmRepo,
    origin: clone,
    delivery,
    log,
    commitTaskFiles: config.files.mirror ? (taskId, what) => mirror.commitTask(taskId, what) : undefined,
  });
  // The farm's own state (tokens, journal, secrets' caches) is never mounted in an eval's sandbox;
  // `hide` also masks it should an operator put it under a toolchain folder.
  return (prloop = new PrLoop({
    state,
    config,
    repo: farmRepo,
    taskMerge,
    ...(cutter ? { branches: cutter } : {}),
    filesDir: filesDirFor(repo),
    patchesDir: join(stateDirOf(repo, config), "patches"),
    log,
    hide: [farmHome(), stateDirOf(repo, config)],
    notesOf: (t, u) => notes.read(t, u),
    retryDecision: (u) => leases.retryDecision(u, true),
    sharedStore: !!o.stillLeads,
    signal,
  }));
}
