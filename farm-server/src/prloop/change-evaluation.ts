import { existsSync } from "node:fs";
import { redoAfterTakeover } from "./redo-after-takeover.js";
import type { Logger } from "pino";
import type { EventBody, ServerConfig } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { UnitRecord } from "../store/projection.js";
import type { EgressOptions } from "../sandbox/index.js";
import type { DepsCache } from "../setup/index.js";
import { integrationBranch, unitBranch, type FarmRepo } from "../git/farm-repo.js";
import { NOT_LEADING } from "../delivery/git-delivery.js";
import type { AttemptFiles } from "./attempt-files.js";
import { commitIfCurrent, currentAttempt } from "./current-attempt.js";
import { failedEvals, runEvalSuite, type EvalSuiteDeps } from "./eval-suite.js";
import { checkChange } from "./patch-policy.js";
import { changeLimits } from "./submissions.js";

export interface ChangeEvaluationDeps {
  state: FarmState;
  config: ServerConfig;
  repo: FarmRepo;
  log: Logger;
  files: AttemptFiles;
  /** where tasks' integration branches are cut (an evaluation waits for its task's) */
  branches?: { whenCut(taskId: string): Promise<void> };
  /** folders evals must never see even where a toolchain folder contains them (the farm's home) */
  hide: string[];
  /** the retry-or-dead decision for a failed attempt */
  retryDecision(u: UnitRecord): { next: "retry"; notBefore: number } | { next: "dead" };
  /** the farm's dependency cache; without it evals get no set-up */
  deps?: DepsCache;
  setupEgress?(): EgressOptions | undefined;
  signal?: AbortSignal;
  /**
   * Among farm nodes sharing a store: publishes a green attempt's branch before it is journaled, so
   * a node that takes over merges it rather than having the unit done again (why not, or null).
   */
  publish?(taskId: string, branch: string): Promise<string | null>;
  /** what comes of a green change that needs no reviewer's word first (the policy's decision) */
  decide(taskId: string, unitId: string, attempt: number): Promise<void>;
}

/**
 * The eval suite on a unit's change, applied and committed on its own branch in a pooled tree the
 * farm owns (the change's rules checked again on the commit first), and on a task's merge commit.
 */
export class ChangeEvaluation {
  constructor(private readonly d: ChangeEvaluationDeps) {}

  /** The farm's dependency cache and how its set-ups reach the egress proxy (wired once its proxy runs). */
  useSetup(deps: DepsCache, egress: () => EgressOptions | undefined): void {
    this.d.deps = deps;
    this.d.setupEgress = egress;
  }

  /** The task's integration branch exists (cut off the hot path by the branch cutter; after a restart it may still be on its way). */
  private ensureBranch(taskId: string): Promise<void> {
    return this.d.branches?.whenCut(taskId) ?? Promise.resolve();
  }

  /** Evaluates the attempt's patch, unless the attempt is no longer the one in evaluation; journals the verdict. */
  async evaluate(taskId: string, unitId: string, attempt: number): Promise<void> {
    const ref = { taskId, unitId, attempt };
    const u = currentAttempt(this.d.state, ref, "evaluating");
    if (!u) return; // cancelled or superseded meanwhile
    await this.ensureBranch(taskId);
    const patchPath = this.d.files.patchPath(u);
    // Submitted to the farm node that led before a takeover: the patch is in that node's home, not this one's.
    if (!existsSync(patchPath)) {
      await commitIfCurrent(this.d.state, ref, "evaluating", [redoAfterTakeover(u, attempt)]);
      return;
    }
    const branch = unitBranch(taskId, unitId, attempt);
    const base = await this.d.repo.revParse(`refs/heads/${integrationBranch(taskId)}`);
    if (!base) {
      // Only a task that is over (merged, its branch deleted) or a home changed by hand gets here.
      const reason = `the task's branch ${integrationBranch(taskId)} is missing from the farm's clone`;
      await commitIfCurrent(this.d.state, ref, "evaluating", [
        { type: "unit_failed", data: { taskId, unitId, attempt, reason, feedback: reason, ...this.d.retryDecision(u) } },
      ]);
      return;
    }
    // A pooled tree (one per concurrent evaluation, reused): reset to the base, not created anew.
    const tree = await this.d.repo.acquireTree(base);
    try {
      const fail = async (reason: string) => {
        await commitIfCurrent(this.d.state, ref, "evaluating", [
          { type: "unit_failed", data: { ...ref, reason, feedback: reason, ...this.d.retryDecision(u) } },
        ]);
        await this.d.repo.deleteBranch(branch);
      };
      const applied = await this.d.repo.applyInTree(tree, patchPath);
      if (applied) return await fail(`patch no longer applies: ${applied}`);
      // The merge commit carries the Optimus-Unit trailer (the at-most-once key); the change names its attempt.
      const commit = await this.d.repo.commitTree(
        tree,
        base,
        `optimus(${taskId}/${unitId}#${attempt}): ${u.spec.goal.split("\n")[0]!.slice(0, 72)}\n\nOptimus-Attempt: ${taskId}/${unitId}#${attempt}`,
        branch,
      );
      // The rules again, on the commit itself (what a merge would take), before any eval runs it.
      const reading = await this.d.repo.changeBetween(base, commit);
      const facts = reading.ok
        ? checkChange(reading.entries, u.spec.files, changeLimits(this.d.config))
        : { ok: false as const, error: reading.error };
      if (!facts.ok) return await fail(`patch refused: ${facts.error}`);
      const run = await runEvalSuite(this.suiteDeps, tree, commit, ref);
      // The farm is stopping mid set-up or mid eval: no verdict; the unit stays in evaluation and is evaluated again on restart.
      if (run.stopped) return;
      const { evals, green } = run;
      // A node that no longer leads journals nothing (its writes would be refused); an origin out
      // of reach only costs the redo a takeover would need.
      if (green && this.d.publish && (await this.d.publish(taskId, branch)) === NOT_LEADING) return;
      const evaluated: EventBody = { type: "unit_evaluated", data: { ...ref, green, evals, diff: facts.facts, branch, commit } };
      const failed = evals.filter((e) => e.exitCode !== 0);
      const feedback = failed
        .map((e) => `eval '${e.name}' ${e.timedOut ? "timed out" : `exited ${e.exitCode}`}:\n${e.output.slice(-3_000)}`)
        .join("\n\n");
      await commitIfCurrent(
        this.d.state,
        ref,
        "evaluating",
        green
          ? [evaluated]
          : [
              evaluated,
              {
                type: "unit_failed",
                data: { ...ref, reason: `evals failed: ${failed.map((e) => e.name).join(", ")}`, feedback, ...this.d.retryDecision(u) },
              },
            ],
      );
    } finally {
      this.d.repo.releaseTree(tree);
    }
    const now = currentAttempt(this.d.state, ref, "evaluating") ?? currentAttempt(this.d.state, ref, "reviewing");
    if (now && (now.state === "evaluating" || this.d.state.projection.reviewersOf(now).length === 0))
      await this.d.decide(taskId, unitId, attempt);
  }

  private get suiteDeps(): EvalSuiteDeps {
    return {
      repo: this.d.repo,
      config: this.d.config,
      log: this.d.log,
      hide: this.d.hide,
      ...(this.d.deps ? { deps: this.d.deps } : {}),
      ...(this.d.setupEgress ? { setupEgress: this.d.setupEgress } : {}),
      ...(this.d.signal ? { signal: this.d.signal } : {}),
    };
  }

  /**
   * The eval suite on a task's merge commit (the target moved since the task's branch was cut):
   * null when green, else why not. The farm stopping meanwhile is a failure of this try (the merge
   * is tried again after the restart).
   */
  async evaluateMerge(taskId: string, commit: string): Promise<string | null> {
    const tree = await this.d.repo.acquireTree(commit);
    try {
      const run = await runEvalSuite(this.suiteDeps, tree, commit, { taskId, merge: commit });
      if (run.stopped) return "the farm stopped while the evals ran";
      return run.green ? null : failedEvals(run);
    } finally {
      this.d.repo.releaseTree(tree);
    }
  }
}
