import type { Logger } from "pino";
import type { ChangeVersion, EventBody, FarmEvent, LeaseWorkContext, ServerConfig, UnitResult } from "@optimus/shared";
import type { FarmState } from "../core/farm-state.js";
import type { SubmissionHandler } from "../core/lease-commands.js";
import type { UnitRecord } from "../store/projection.js";
import type { EgressOptions } from "../sandbox/index.js";
import type { DepsCache } from "../setup/index.js";
import type { FarmRepo } from "../git/farm-repo.js";
import { AttemptFiles } from "./attempt-files.js";
import { ChangeEvaluation } from "./change-evaluation.js";
import { CheckedPlans } from "./checked-plans.js";
import { evaluatedChange, type ChangeView } from "./evaluated-change.js";
import { changePatch } from "./change-view.js";
import { HumanDecisions } from "./human-decisions.js";
import { leaseWorkContext, type LeaseContextDeps } from "./lease-context.js";
import { pickUpInterrupted, reactToCommitted, retryHeldMerges, type LoopParts } from "./loop-triggers.js";
import type { Approver } from "./separation.js";
import { Submissions } from "./submissions.js";
import type { ForgeChannel, TaskMerge } from "./task-merge.js";
import { TaskQueue } from "./task-queue.js";
import { UnitMerge } from "./unit-merge.js";

export type { ChangeView };

export interface PrLoopDeps {
  state: FarmState;
  config: ServerConfig;
  repo: FarmRepo;
  /** the way of finished tasks to the origin */
  taskMerge: TaskMerge;
  /** where tasks' integration branches are cut (an evaluation waits for its task's) */
  branches?: { whenCut(taskId: string): Promise<void> };
  /** where the farm's task files live before they are committed (ADR drafts are written there) */
  filesDir: string;
  patchesDir: string;
  log: Logger;
  /** earlier attempts' notes for a unit, if any */
  notesOf?(taskId: string, unitId: string): string | undefined;
  /** folders evals must never see even where a toolchain folder contains them (the farm's home) */
  hide?: string[];
  /** the retry-or-dead decision for a failed attempt (LeaseCommands owns the policy) */
  retryDecision(u: UnitRecord): { next: "retry"; notBefore: number } | { next: "dead" };
  /** the farm's dependency cache (`<repo's folder in the home>/deps`); without it evals get no set-up */
  deps?: DepsCache;
  /** how the farm's own set-ups reach the egress proxy, when it runs one */
  setupEgress?(): EgressOptions | undefined;
  /** aborted when the farm stops: running evals are killed, and their unit is evaluated again after the restart */
  signal?: AbortSignal;
  /** among farm nodes sharing a store: at start, carry on from the task branches the origin has (see TaskMerge.adoptPublished) */
  sharedStore?: boolean;
}

/** What a worker needs beyond the unit's spec: where to start, what to address, what to review. */
// (what a lease carries beyond the spec is a wire contract: shared/src/protocol.ts)
export type { LeaseWorkContext };

/**
 * The PR loop: a codegen unit's patch is checked (paths, scope, size, applies), applied on its own
 * branch in a worktree the farm owns, evaluated with the repository's eval suite, reviewed by its
 * review unit, scored for risk, and merged into the task's integration branch — on its own when
 * low-risk, green and approved, otherwise held for a human. A finished task's integration branch
 * is merged into its target branch. Every step is journaled; a restart picks up where it stopped.
 *
 * This class wires the loop's parts together: Submissions (what a worker sends), ChangeEvaluation,
 * UnitMerge (the policy's decision and the merge), HumanDecisions, and the triggers (restart,
 * committed events), every step queued per task by TaskQueue.
 */
export class PrLoop implements SubmissionHandler {
  private readonly queue: TaskQueue;
  private readonly files: AttemptFiles;
  private readonly submissions: Submissions;
  private readonly evaluation: ChangeEvaluation;
  private readonly unitMerge: UnitMerge;
  private readonly decisions: HumanDecisions;
  private readonly parts: LoopParts;
  private readonly leaseContext: LeaseContextDeps;
  private readonly listener = (events: FarmEvent[]) => reactToCommitted(events, this.parts);

  constructor(private readonly d: PrLoopDeps) {
    const { state, config, repo, log, taskMerge } = d;
    this.queue = new TaskQueue({ state, log });
    this.files = new AttemptFiles(d.patchesDir, log);
    const files = this.files;
    this.unitMerge = new UnitMerge({ state, config, repo, taskMerge, files, publishFirst: !!d.sharedStore });
    const decide = (taskId: string, unitId: string, attempt: number) => this.unitMerge.decide(taskId, unitId, attempt);
    this.evaluation = new ChangeEvaluation({
      state,
      config,
      repo,
      log,
      files,
      hide: d.hide ?? [],
      decide,
      retryDecision: (u) => d.retryDecision(u),
      branches: d.branches,
      ...(d.sharedStore ? { publish: (taskId: string, branch: string) => d.taskMerge.pushAttempt(taskId, branch) } : {}),
      deps: d.deps,
      setupEgress: d.setupEgress,
      signal: d.signal,
    });
    this.submissions = new Submissions({
      state,
      config,
      repo,
      log,
      files,
      decide,
      plans: new CheckedPlans({ state, config, repo, filesDir: d.filesDir }),
      later: (taskId, fn) => this.queue.later(taskId, fn),
      evaluate: (taskId, unitId, attempt) => this.evaluation.evaluate(taskId, unitId, attempt),
    });
    this.decisions = new HumanDecisions({ state, config, queue: this.queue, unitMerge: this.unitMerge, taskMerge });
    this.leaseContext = { state, config, files, notesOf: (taskId, unitId) => d.notesOf?.(taskId, unitId) };
    this.parts = { state, queue: this.queue, evaluation: this.evaluation, unitMerge: this.unitMerge, taskMerge };
  }

  /** Refuses hostile or broken output before anything is recorded: the worker gets the reason. */
  validate(u: UnitRecord, result: UnitResult): Promise<void> {
    return this.submissions.validate(u, result);
  }

  accept(u: UnitRecord, result: UnitResult): EventBody[] {
    return this.submissions.accept(u, result);
  }

  resume(u: UnitRecord): EventBody[] {
    return this.submissions.resume(u);
  }

  contextFor(u: UnitRecord): LeaseWorkContext {
    return leaseWorkContext(u, this.leaseContext);
  }

  /** The transcript a worker sent with an attempt, or null when none was kept. */
  transcriptOf(taskId: string, unitId: string, attempt: number): UnitResult["transcript"] | null {
    return this.files.transcriptOf(taskId, unitId, attempt);
  }

  /** An attempt's change as a patch: from its evaluated commit, else as submitted (null: nothing kept). */
  async attemptPatch(taskId: string, unitId: string, attempt: number, commit?: string): Promise<{ patch: string; commit?: string } | null> {
    if (commit) return { patch: await changePatch(this.d.repo, commit), commit };
    const submitted = this.files.submittedPatch(taskId, unitId, attempt);
    return submitted === null ? null : { patch: submitted };
  }

  /** The evaluated change of a unit's latest evaluated attempt, file by file, for the editor's diff. */
  change(taskId: string, unitId: string): Promise<ChangeView> {
    return evaluatedChange(this.d.state, this.d.repo, taskId, unitId);
  }

  /** Picks up whatever a crash interrupted; removes worktrees nobody owns any more. */
  async start(): Promise<void> {
    this.d.state.on("committed", this.listener);
    await this.d.taskMerge.sweep().catch((err: Error) => this.d.log.warn({ err: err.message }, "could not sweep stray branches"));
    const adopted = await (this.d.sharedStore ? this.d.taskMerge.adoptPublished() : Promise.resolve(0)).catch(
      (err: Error) => void this.d.log.warn({ err: err.message }, "could not read the tasks' branches on the origin"),
    );
    if (adopted) this.d.log.info(`carried on from the origin's copy of ${adopted} task branch(es) (another farm node published them)`);
    pickUpInterrupted(this.parts);
  }

  stop(): void {
    this.d.state.off("committed", this.listener);
  }

  /** Waits for every queued step (tests, shutdown). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** The farm's dependency cache and how its set-ups reach the egress proxy (wired by the farm once its proxy runs). */
  useSetup(deps: DepsCache, egress: () => EgressOptions | undefined): void {
    this.evaluation.useSetup(deps, egress);
  }

  /**
   * The eval suite on a task's merge commit (the target moved since the task's branch was cut):
   * null when green, else why not.
   */
  evaluateMerge(taskId: string, commit: string): Promise<string | null> {
    return this.evaluation.evaluateMerge(taskId, commit);
  }

  /**
   * A person merges a held change; one touching protected paths needs their token's approver right.
   * `seen` is the version the person reviewed: a decision binds to it, never to a newer attempt.
   */
  approve(taskId: string, unitId: string, by: Approver, seen: ChangeVersion): Promise<void> {
    return this.decisions.approve(taskId, unitId, by, seen);
  }

  /**
   * A person asks for a held task's merge; refused with the reason when it still cannot merge. With
   * a forge it approves the changes waiting in the pull request: those touching protected paths need
   * the approver right (a bare actor name is taken to have none).
   */
  approveTaskMerge(taskId: string, by: string | Approver): Promise<void> {
    return this.decisions.approveTaskMerge(taskId, by);
  }

  /** A person rejects the change they saw: the unit is cancelled with their reason (it may be retried). */
  reject(taskId: string, unitId: string, reason: string, actor: string, seen: ChangeVersion): Promise<void> {
    return this.decisions.reject(taskId, unitId, reason, actor, seen);
  }

  /** A person sends the change they saw back: one more attempt, with their comments. */
  requestChanges(taskId: string, unitId: string, feedback: string, actor: string, seen: ChangeVersion): Promise<void> {
    return this.decisions.requestChanges(taskId, unitId, feedback, actor, seen);
  }

  /** Delivery through the forge from now on (pull requests; merges through its API; held changes approved on the pull request). */
  useForge(channel: ForgeChannel): void {
    this.unitMerge.useForge();
    this.d.taskMerge.useForge(channel);
  }

  /** Tries the merge of every task whose merge is held (e.g. the forge's checks went green). */
  retryHeldMerges(): void {
    retryHeldMerges(this.parts);
  }

  /** The task's integration branch, pushed to the origin (after the farm committed its files on it). */
  publish(taskId: string): Promise<void> {
    return this.d.taskMerge.publish(taskId);
  }
}
