import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { unitKey, type ChangeFile, type ChangeVersion, type EvalOutcome, type EventBody, type FarmEvent, type LeaseWorkContext, type PlanProposal, type ServerConfig, type UnitResult, type UnitSpec } from "@optimus/shared";
import { withReviewUnits } from "../core/task-commands.js";
import { writeAdrDraft } from "../planner/adr-draft.js";
import { checkPlan } from "../planner/plan-check.js";
import { FarmError, StaleChangeError } from "../errors/farm-error.js";
import { assertAction } from "../core/unit-actions.js";
import type { FarmState } from "../core/farm-state.js";
import type { SubmissionHandler } from "../core/lease-commands.js";
import type { UnitRecord } from "../store/projection.js";
import type { EgressOptions } from "../sandbox/index.js";
import type { DepsCache } from "../setup/index.js";
import { failedEvals, runEvalSuite, type EvalSuiteDeps } from "./eval-suite.js";
import { FarmRepo, integrationBranch, unitBranch, unitTrailer } from "../git/farm-repo.js";
import type { ForgeChannel, TaskMerge } from "./task-merge.js";
import { changeFiles } from "./change-view.js";
import { checkChange, type ChangeLimits } from "./patch-policy.js";
import { assessRisk, mayAutoMerge } from "./risk.js";
import { approverNeeded, isSelfReview, protectedPathsIn, SELF_REVIEW_REASON, type Approver } from "./separation.js";

export interface ChangeView {
  taskId: string;
  unitId: string;
  attempt: number;
  state: UnitRecord["state"];
  base: string;
  head: string;
  files: ChangeFile[];
  truncated: boolean;
  evals: EvalOutcome[];
  green: boolean;
  review?: UnitRecord["review"];
  risk?: UnitRecord["risk"];
}

type UnitHeld = Extract<EventBody, { type: "unit_held" }>;

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
 */
export class PrLoop implements SubmissionHandler {
  private readonly taskQueues = new Map<string, Promise<unknown>>();
  /** checked plans between validate and accept, by lease id */
  private readonly plans = new Map<string, { units: UnitSpec[]; plan: PlanProposal; adrNames: string[] } | { fallback: string }>();
  private readonly listener = (events: FarmEvent[]) => this.onCommitted(events);
  /** set when the farm delivers through a forge (see `hold`) */
  private forge: ForgeChannel | undefined;

  constructor(private readonly d: PrLoopDeps) {
    mkdirSync(d.patchesDir, { recursive: true });
  }

  private get p() {
    return this.d.state.projection;
  }

  private patchFile(u: UnitRecord, attempt = u.attempt): string {
    return join(this.d.patchesDir, `${u.taskId}--${u.unitId}-${attempt}.patch`);
  }

  /** Refuses hostile or broken output before anything is recorded: the worker gets the reason. */
  async validate(u: UnitRecord, result: UnitResult): Promise<void> {
    if (result.outcome !== "succeeded") return;
    if (u.spec.kind === "plan") {
      // A bad plan is not refused: the task falls back to one unit (and says why).
      const taken = new Set(this.p.tasks.get(u.taskId)!.units.map((k) => k.slice(u.taskId.length + 1)));
      const check = result.plan
        ? await checkPlan(result.plan, this.d.repo, integrationBranch(u.taskId), taken)
        : { ok: false as const, reason: "the worker returned no plan" };
      // ADR numbers continue those on the task's branch (its tree, read by git: nothing is checked out).
      const adrNames = check.ok && result.plan?.decision?.needed ? await this.d.repo.namesIn(integrationBranch(u.taskId), "docs/adr") : [];
      this.plans.set(u.leaseId!, check.ok ? { units: check.units, plan: result.plan!, adrNames } : { fallback: check.reason });
      return;
    }
    if (u.spec.role === "review") {
      // A review of a change must say what it thinks; a free-standing review unit just reports.
      if (u.spec.reviews && !result.review) throw new FarmError("invalid", `review unit ${u.taskId}/${u.unitId} must submit a review verdict (approve or request_changes) for '${u.spec.reviews}'`);
      return;
    }
    const patch = result.patch ?? "";
    if (!patch.trim()) return; // nothing to change: the unit completes as is
    const bytes = Buffer.byteLength(patch);
    if (bytes > this.d.config.prloop.maxPatchBytes) throw new FarmError("invalid", `patch refused: it is ${bytes} bytes; the limit is ${this.d.config.prloop.maxPatchBytes}`);
    const base = await this.d.repo.revParse(`refs/heads/${integrationBranch(u.taskId)}`) ?? await this.d.repo.revParse("HEAD");
    // What git would apply, read by git itself: the rules below judge exactly that.
    const reading = await this.d.repo.readPatch(base!, patch);
    if (!reading.ok) throw new FarmError("invalid", `patch refused: it does not apply to ${integrationBranch(u.taskId)}: ${reading.error}`);
    const check = checkChange(reading.entries, u.spec.files, this.limits);
    if (!check.ok) throw new FarmError("invalid", `patch refused: ${check.error}`);
  }

  private get limits(): ChangeLimits {
    const c = this.d.config.prloop;
    return { maxFileBytes: c.maxFileBytes, maxFilesPerPatch: c.maxFilesPerPatch, allowSymlinks: c.allowSymlinks, allowSubmodules: c.allowSubmodules };
  }

  accept(u: UnitRecord, result: UnitResult): EventBody[] {
    const ref = { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt };
    if (u.spec.kind === "plan") return [{ type: "unit_completed", data: ref }, this.planned(u)];
    if (u.spec.role === "review" && u.spec.reviews && result.review) {
      const target = this.p.units.get(unitKey(u.taskId, u.spec.reviews));
      const events: EventBody[] = [{ type: "unit_completed", data: ref }];
      if (target?.state === "reviewing") {
        const reviewed = { taskId: u.taskId, unitId: target.unitId, attempt: target.attempt, reviewUnitId: u.unitId, verdict: result.review };
        // u.worker is the node holding this review's lease; its token is the caller's (checked by the API).
        if (isSelfReview(this.p, { node: u.worker }, target)) {
          // Recorded for the audit trail, but it does not count: the change waits for a person.
          this.d.log.warn({ taskId: u.taskId, unitId: target.unitId, reviewer: u.worker }, "a review from the change's own author does not count");
          events.push({ type: "unit_reviewed", data: { ...reviewed, selfReview: true } }, this.heldForSelfReview(target));
        } else {
          events.push({ type: "unit_reviewed", data: reviewed });
          this.later(u.taskId, () => this.decide(target.taskId, target.unitId, target.attempt));
        }
      }
      return events;
    }
    if (result.transcript?.length) this.saveTranscript(u, result);
    if (u.spec.role !== "codegen" || !result.patch?.trim()) return [{ type: "unit_completed", data: ref }];
    // The patch is on disk (fsynced) before the journal says the unit is being evaluated.
    const fd = openSync(this.patchFile(u), "w", 0o600);
    writeSync(fd, result.patch);
    fsyncSync(fd);
    closeSync(fd);
    this.later(u.taskId, () => this.evaluate(u.taskId, u.unitId, u.attempt));
    return [{ type: "unit_evaluating", data: ref }];
  }

  /** The transcript a worker sent with an attempt, or null when none was kept. */
  transcriptOf(taskId: string, unitId: string, attempt: number): UnitResult["transcript"] | null {
    try {
      return JSON.parse(readFileSync(join(this.d.patchesDir, `${taskId}--${unitId}-${attempt}.transcript.json`), "utf8"));
    } catch {
      return null;
    }
  }

  /** The evaluated change of a unit's latest evaluated attempt, file by file, for the editor's diff. */
  async change(taskId: string, unitId: string): Promise<ChangeView> {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u) throw new FarmError("not_found", `unit ${taskId}/${unitId} not found`);
    const ev = u.evaluation;
    if (!ev) throw new FarmError("conflict", `unit ${taskId}/${unitId} has no evaluated change yet (it is ${u.state})`);
    const { base, files, truncated } = await changeFiles(this.d.repo, ev.commit);
    return { taskId, unitId, attempt: ev.attempt, state: u.state, base, head: ev.commit, files, truncated, evals: ev.evals, green: ev.green, review: u.review, risk: u.risk };
  }

  /** Kept beside the patch for the editor's unit detail (not journaled: it can be large). */
  private saveTranscript(u: UnitRecord, result: UnitResult): void {
    try {
      writeFileSync(join(this.d.patchesDir, `${u.taskId}--${u.unitId}-${u.attempt}.transcript.json`), JSON.stringify(result.transcript), { mode: 0o600 });
    } catch (err) {
      this.d.log.warn({ err }, "could not save a transcript");
    }
  }

  private planned(u: UnitRecord): EventBody {
    const checked = this.plans.get(u.leaseId!) ?? { fallback: "the plan was not checked" };
    this.plans.delete(u.leaseId!);
    let units: UnitSpec[];
    let adr: string | undefined;
    if ("units" in checked) {
      units = checked.units;
      const d = checked.plan.decision;
      if (d?.needed && d.title) adr = writeAdrDraft(this.d.filesDir, u.taskId, d, checked.adrNames);
    } else {
      units = [{ id: "u1", goal: u.spec.goal, role: "codegen", files: u.spec.files, dependsOn: [], priority: u.spec.priority, complexity: u.spec.complexity, kind: "change" }];
    }
    if (this.d.config.prloop.reviewEveryCodegenUnit) units = withReviewUnits(units);
    return { type: "units_planned", data: { taskId: u.taskId, planUnitId: u.unitId, units, ...("fallback" in checked ? { fallback: checked.fallback } : {}), ...(adr ? { adr } : {}) } };
  }

  resume(u: UnitRecord): EventBody[] {
    return [{ type: "unit_completed", data: { taskId: u.taskId, unitId: u.unitId, attempt: u.attempt } }];
  }

  /** Picks up whatever a crash interrupted; removes worktrees nobody owns any more. */
  async start(): Promise<void> {
    this.d.state.on("committed", this.listener);
    await this.d.taskMerge.sweep().catch((err: Error) => this.d.log.warn({ err: err.message }, "could not sweep stray branches"));
    for (const u of this.p.units.values()) {
      if (u.state === "evaluating") this.later(u.taskId, () => this.evaluate(u.taskId, u.unitId, u.attempt));
      else if (u.state === "reviewing" && u.review) this.later(u.taskId, () => this.decide(u.taskId, u.unitId, u.attempt));
      else if (u.state === "reviewing" && this.p.reviewersOf(u).length === 0) this.later(u.taskId, () => this.decide(u.taskId, u.unitId, u.attempt));
      else if (u.state === "awaiting_approval" && u.approvedAttempt === u.attempt) this.later(u.taskId, () => this.merge(u.taskId, u.unitId, u.attempt, false, "farm"));
    }
    for (const t of this.p.tasks.values()) if (!t.merge?.commit) this.later(t.taskId, () => this.maybeMergeTask(t.taskId));
  }

  stop(): void {
    this.d.state.off("committed", this.listener);
  }

  /** Waits for every queued step (tests, shutdown). */
  async idle(): Promise<void> {
    await Promise.all([...this.taskQueues.values()]);
  }

  /** The farm's dependency cache and how its set-ups reach the egress proxy (wired by the farm once its proxy runs). */
  useSetup(deps: DepsCache, egress: () => EgressOptions | undefined): void {
    this.d.deps = deps;
    this.d.setupEgress = egress;
  }

  contextFor(u: UnitRecord): LeaseWorkContext {
    const ctx: LeaseWorkContext = { base: { branch: integrationBranch(u.taskId) } };
    if (this.d.config.setup !== undefined) ctx.setup = this.d.config.setup;
    if (u.feedback?.length) ctx.feedback = u.feedback;
    const notes = u.attempt > 1 ? this.d.notesOf?.(u.taskId, u.unitId) : undefined;
    if (notes) ctx.notes = notes;
    if (u.spec.reviews) {
      const target = this.p.units.get(unitKey(u.taskId, u.spec.reviews));
      if (target?.evaluation) {
        let patch = "";
        try {
          patch = readFileSync(this.patchFile(target, target.evaluation.attempt), "utf8");
        } catch {
          // the change is still in its unit branch; the reviewer can fetch it
        }
        ctx.review = {
          unitId: target.unitId, attempt: target.evaluation.attempt, patch,
          evals: target.evaluation.evals.map((e) => ({ name: e.name, exitCode: e.exitCode, output: e.output.slice(-4_000) })),
        };
      }
    }
    return ctx;
  }

  /**
   * A person merges a held change; one touching protected paths needs their token's approver right.
   * `seen` is the version the person reviewed: a decision binds to it, never to a newer attempt.
   */
  async approve(taskId: string, unitId: string, by: Approver, seen: ChangeVersion): Promise<void> {
    const u = this.decisionTarget("approve", taskId, unitId, seen);
    const guarded = protectedPathsIn(u.evaluation?.diff.files ?? [], this.d.config.policy);
    if (guarded.length > 0 && !by.approver) throw new FarmError("forbidden", approverNeeded(taskId, unitId, guarded));
    const approval = { taskId, unitId, attempt: u.attempt, head: seen.head, by: { tokenId: by.tokenId, name: by.name, approver: by.approver }, ...(guarded.length ? { protectedPaths: guarded } : {}) };
    await this.d.state.commit([{ type: "unit_approved", data: approval }], by.actor);
    await this.queue(taskId, () => this.merge(taskId, unitId, u.attempt, false, by.actor));
  }

  /**
   * The unit a person's decision is about, once the decision is known to fit: the change they saw is
   * still the evaluated one (else 409 naming the current version, nothing journaled), and the
   * lifecycle table allows the action in the unit's state. Checked and committed in one turn of the
   * event loop, so no new attempt can slip in between.
   */
  private decisionTarget(action: "approve" | "reject" | "request_changes", taskId: string, unitId: string, seen: ChangeVersion): UnitRecord {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u) throw new FarmError("not_found", `unit '${unitId}' of task '${taskId}' not found`);
    const ev = u.evaluation;
    if (ev && (ev.attempt !== seen.attempt || ev.commit !== seen.head)) throw new StaleChangeError({ attempt: ev.attempt, head: ev.commit }, seen);
    assertAction(action, this.p, this.d.config, u);
    // The table allows these only in states that have an evaluated change of the current attempt.
    if (!ev || ev.attempt !== u.attempt) throw new FarmError("conflict", `cannot decide on unit ${taskId}/${unitId}: attempt ${u.attempt} has no evaluated change yet`);
    return u;
  }

  /** The hold of a change whose only review came from its author (same token or node). */
  private heldForSelfReview(target: UnitRecord): UnitHeld {
    const ev = target.evaluation!;
    const risk = assessRisk({ diff: ev.diff, evals: ev.evals, green: ev.green, unreviewed: false }, this.d.config.policy, this.d.config.prloop.eval.length > 0);
    return {
      type: "unit_held",
      data: { taskId: target.taskId, unitId: target.unitId, attempt: target.attempt, risk: { level: risk.level === "high" ? "high" : "medium", reasons: [SELF_REVIEW_REASON, ...risk.reasons] } },
    };
  }

  /** The hold of a change its reviewer kept sending back until the unit ran out of attempts. */
  private heldAfterReviews(target: UnitRecord, lastComments: string): UnitHeld {
    const ev = target.evaluation!;
    const risk = assessRisk({ diff: ev.diff, evals: ev.evals, green: ev.green, review: target.review, unreviewed: false }, this.d.config.policy, this.d.config.prloop.eval.length > 0);
    const times = Math.max(1, target.reviewRequests ?? 0);
    const last = lastComments.length > 1_000 ? `${lastComments.slice(0, 999)}…` : lastComments;
    const why = `the reviewer requested changes ${times} time${times === 1 ? "" : "s"}; last: ${last || "(no comments)"}`;
    return {
      type: "unit_held",
      data: { taskId: target.taskId, unitId: target.unitId, attempt: target.attempt, risk: { level: risk.level === "high" ? "high" : "medium", reasons: [why, ...risk.reasons.filter((r) => r !== why)] } },
    };
  }

  /** Delivery through the forge from now on (pull requests; merges through its API; held changes approved on the pull request). */
  useForge(channel: ForgeChannel): void {
    this.forge = channel;
    this.d.taskMerge.useForge(channel);
  }

  /** Tries the merge of every task whose merge is held (e.g. the forge's checks went green). */
  retryHeldMerges(): void {
    for (const t of this.p.tasks.values()) if (t.merge?.heldReason && !t.merge.commit && !t.cancelled) this.later(t.taskId, () => this.maybeMergeTask(t.taskId));
  }

  /** The task's integration branch, pushed to the origin (after the farm committed its files on it). */
  publish(taskId: string): Promise<void> {
    return this.d.taskMerge.publish(taskId);
  }

  /**
   * A person asks for a held task's merge; refused with the reason when it still cannot merge. With
   * a forge it approves the changes waiting in the pull request: those touching protected paths need
   * the approver right (a bare actor name is taken to have none).
   */
  async approveTaskMerge(taskId: string, by: string | Approver): Promise<void> {
    const who = typeof by === "string" ? { actor: by, approver: false } : by;
    const guard = (changes: { unitId: string }[]) => {
      const files = changes.flatMap((c) => this.p.units.get(unitKey(taskId, c.unitId))?.evaluation?.diff.files ?? []);
      const guarded = [...new Set(protectedPathsIn(files, this.d.config.policy))];
      if (guarded.length > 0 && !who.approver) throw new FarmError("forbidden", approverNeeded(taskId, changes.map((c) => c.unitId).join(","), guarded));
    };
    await this.d.taskMerge.approve(taskId, who.actor, (fn) => this.queue(taskId, fn), guard);
  }

  /** A person rejects the change they saw: the unit is cancelled with their reason (it may be retried). */
  async reject(taskId: string, unitId: string, reason: string, actor: string, seen: ChangeVersion): Promise<void> {
    const u = this.decisionTarget("reject", taskId, unitId, seen);
    await this.d.state.commit([{ type: "unit_rejected", data: { taskId, unitId, attempt: u.attempt, reason, head: seen.head } }], actor);
  }

  /** A person sends the change they saw back: one more attempt, with their comments. */
  async requestChanges(taskId: string, unitId: string, feedback: string, actor: string, seen: ChangeVersion): Promise<void> {
    const u = this.decisionTarget("request_changes", taskId, unitId, seen);
    await this.d.state.commit([{ type: "changes_requested", data: { taskId, unitId, attempt: u.attempt, feedback, head: seen.head } }], actor);
  }

  private onCommitted(events: FarmEvent[]): void {
    for (const e of events) {
      // A task merges once its last unit is done, whichever unit finished last: a review unit's
      // completion may land after the merge of the change it reviewed (they commit separately).
      if (e.type === "unit_rejected" || e.type === "unit_completed") this.later(e.data.taskId, () => this.maybeMergeTask(e.data.taskId));
      // A cancelled task leaves no branches behind (unless the configuration keeps them).
      if (e.type === "task_cancelled") this.later(e.data.taskId, () => this.d.taskMerge.cancelled(e.data.taskId));
      // A review unit that died leaves its change to a human rather than stuck in review.
      if ((e.type === "unit_failed" || e.type === "lease_expired") && e.data.next === "dead") {
        const r = this.p.units.get(unitKey(e.data.taskId, e.data.unitId));
        const target = r?.spec.reviews ? this.p.units.get(unitKey(r.taskId, r.spec.reviews)) : undefined;
        if (target?.state === "reviewing") {
          const { taskId, unitId, attempt } = target;
          this.later(taskId, () => this.commitIfCurrent({ taskId, unitId, attempt }, "reviewing", [
            { type: "unit_held", data: { taskId, unitId, attempt, risk: { level: "medium", reasons: [`its review unit '${r!.unitId}' failed: ${r!.reason ?? "no verdict"}`] } } },
          ]).then(() => undefined));
        }
      }
    }
  }

  /** The task's integration branch exists (cut off the hot path by the branch cutter; after a restart it may still be on its way). */
  private ensureBranch(taskId: string): Promise<void> {
    return this.d.branches?.whenCut(taskId) ?? Promise.resolve();
  }

  /** Runs steps of one task in order (merges into its integration branch must not interleave). */
  private queue<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.taskQueues.get(taskId) ?? Promise.resolve();
    const run = prev.then(async () => {
      await this.d.state.settle();
      return fn();
    });
    const tail = run.catch(() => undefined);
    this.taskQueues.set(taskId, tail);
    void tail.then(() => this.taskQueues.get(taskId) === tail && this.taskQueues.delete(taskId));
    return run;
  }

  private later(taskId: string, fn: () => Promise<unknown>): void {
    this.queue(taskId, fn).catch((err) => this.d.log.error({ err, taskId }, "PR loop step failed"));
  }

  private current(taskId: string, unitId: string, attempt: number, state: UnitRecord["state"]): UnitRecord | null {
    const u = this.p.units.get(unitKey(taskId, unitId));
    return u && u.attempt === attempt && u.state === state ? u : null;
  }

  private async evaluate(taskId: string, unitId: string, attempt: number): Promise<void> {
    const u = this.current(taskId, unitId, attempt, "evaluating");
    if (!u) return; // cancelled or superseded meanwhile
    await this.ensureBranch(taskId);
    const patchPath = this.patchFile(u);
    const branch = unitBranch(taskId, unitId, attempt);
    const base = await this.d.repo.revParse(`refs/heads/${integrationBranch(taskId)}`);
    if (!base) {
      // Only a task that is over (merged, its branch deleted) or a home changed by hand gets here.
      const reason = `the task's branch ${integrationBranch(taskId)} is missing from the farm's clone`;
      await this.commitIfCurrent({ taskId, unitId, attempt }, "evaluating", [{ type: "unit_failed", data: { taskId, unitId, attempt, reason, feedback: reason, ...this.d.retryDecision(u) } }]);
      return;
    }
    // A pooled tree (one per concurrent evaluation, reused): reset to the base, not created anew.
    const tree = await this.d.repo.acquireTree(base);
    const wt = tree.dir;
    const ref = { taskId, unitId, attempt };
    try {
      const fail = async (reason: string) => {
        await this.commitIfCurrent(ref, "evaluating", [{ type: "unit_failed", data: { ...ref, reason, feedback: reason, ...this.d.retryDecision(u) } }]);
        await this.d.repo.deleteBranch(branch);
      };
      const applied = await this.d.repo.applyInTree(tree, patchPath);
      if (applied) return await fail(`patch no longer applies: ${applied}`);
      // The merge commit carries the Optimus-Unit trailer (the at-most-once key); the change names its attempt.
      const commit = await this.d.repo.commitTree(tree, base, `optimus(${taskId}/${unitId}#${attempt}): ${u.spec.goal.split("\n")[0]!.slice(0, 72)}\n\nOptimus-Attempt: ${taskId}/${unitId}#${attempt}`, branch);
      // The rules again, on the commit itself (what a merge would take), before any eval runs it.
      const reading = await this.d.repo.changeBetween(base, commit);
      const facts = reading.ok ? checkChange(reading.entries, u.spec.files, this.limits) : { ok: false as const, error: reading.error };
      if (!facts.ok) return await fail(`patch refused: ${facts.error}`);
      const run = await runEvalSuite(this.suiteDeps, tree, commit, ref);
      // The farm is stopping mid set-up or mid eval: no verdict; the unit stays in evaluation and is evaluated again on restart.
      if (run.stopped) return;
      const { evals, green } = run;
      const evaluated: EventBody = { type: "unit_evaluated", data: { ...ref, green, evals, diff: facts.facts, branch, commit } };
      const failed = evals.filter((e) => e.exitCode !== 0);
      const feedback = failed.map((e) => `eval '${e.name}' ${e.timedOut ? "timed out" : `exited ${e.exitCode}`}:\n${e.output.slice(-3_000)}`).join("\n\n");
      await this.commitIfCurrent(ref, "evaluating", green
        ? [evaluated]
        : [evaluated, { type: "unit_failed", data: { ...ref, reason: `evals failed: ${failed.map((e) => e.name).join(", ")}`, feedback, ...this.d.retryDecision(u) } }]);
    } finally {
      this.d.repo.releaseTree(tree);
    }
    const now = this.current(taskId, unitId, attempt, "evaluating") ?? this.current(taskId, unitId, attempt, "reviewing");
    if (now && (now.state === "evaluating" || this.p.reviewersOf(now).length === 0)) await this.decide(taskId, unitId, attempt);
  }

  private get suiteDeps(): EvalSuiteDeps {
    return { repo: this.d.repo, config: this.d.config, log: this.d.log, hide: this.d.hide ?? [], ...(this.d.deps ? { deps: this.d.deps } : {}), ...(this.d.setupEgress ? { setupEgress: this.d.setupEgress } : {}), ...(this.d.signal ? { signal: this.d.signal } : {}) };
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

  private async commitIfCurrent(ref: { taskId: string; unitId: string; attempt: number }, state: UnitRecord["state"], events: EventBody[]): Promise<boolean> {
    if (!this.current(ref.taskId, ref.unitId, ref.attempt, state)) return false;
    await this.d.state.commit(events, "farm");
    return true;
  }

  private async decide(taskId: string, unitId: string, attempt: number): Promise<void> {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u || u.attempt !== attempt || !u.evaluation?.green || (u.state !== "reviewing" && u.state !== "evaluating")) return;
    const unreviewed = this.p.reviewersOf(u).length === 0;
    if (!unreviewed && !u.review) return; // its reviewer has not spoken yet
    if (u.review?.selfReview) {
      await this.hold(this.heldForSelfReview(u));
      return;
    }
    if (u.review?.verdict === "request_changes") {
      const text = [u.review.summary, ...u.review.comments.map((c) => `${c.path}:${c.line}: ${c.body}`)].filter(Boolean).join("\n");
      // A reviewer's "request changes" uses one of the unit's attempts; the last one goes to a person
      // (never another round, never dead-lettered in silence). A person's request gives one more.
      if (attempt >= (u.spec.maxAttempts ?? this.d.config.maxAttempts)) {
        await this.hold(this.heldAfterReviews(u, text));
        return;
      }
      await this.d.state.commit([{ type: "changes_requested", data: { taskId, unitId, attempt, feedback: `review by ${u.review.reviewUnitId}: ${text}`, reviewUnitId: u.review.reviewUnitId } }], "farm");
      return;
    }
    const input = { diff: u.evaluation.diff, evals: u.evaluation.evals, green: u.evaluation.green, review: u.review, unreviewed };
    const risk = assessRisk(input, this.d.config.policy, this.d.config.prloop.eval.length > 0);
    const verdict = mayAutoMerge(risk, input, this.d.config.policy);
    if (verdict.auto) await this.merge(taskId, unitId, attempt, true, "farm", risk);
    else await this.hold({ type: "unit_held", data: { taskId, unitId, attempt, risk: { level: risk.level, reasons: verdict.why } } });
  }

  /**
   * A change the policy holds. Without a forge it waits as a unit for a person (`unit_held`). With
   * one, a person approves on the pull request, and may only approve what it shows: the change is
   * merged into the integration branch (not automatically, its reasons kept) and the task's merge
   * waits for an approval of a version containing it (TaskMerge).
   */
  private async hold(held: UnitHeld): Promise<void> {
    if (!this.forge) {
      await this.d.state.commit([held], "farm");
      return;
    }
    const { taskId, unitId, attempt, risk } = held.data;
    await this.merge(taskId, unitId, attempt, false, "farm", risk, true);
  }

  private async merge(taskId: string, unitId: string, attempt: number, auto: boolean, actor: string, risk = this.p.units.get(unitKey(taskId, unitId))?.risk, heldForTask = false): Promise<void> {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u || u.attempt !== attempt || u.state === "merged" || !u.evaluation) return;
    const into = integrationBranch(taskId);
    const trailer = unitTrailer(taskId, unitId, attempt);
    const r = { level: risk?.level ?? "low", reasons: risk?.reasons ?? [] } as const;
    // At most once per unit attempt: a merge that landed before a crash is found by its trailer.
    let commit = await this.d.repo.findMerge(into, trailer);
    if (!commit) {
      const how = auto ? " (auto)" : heldForTask ? " (held: the task waits for approval)" : ` (approved by ${actor})`;
      const res = await this.d.repo.mergeInto(into, u.evaluation.branch, `Merge ${taskId}/${unitId} attempt ${attempt}${how}\n\n${trailer}`);
      if (!res.ok) {
        await this.d.state.commit([{ type: "changes_requested", data: { taskId, unitId, attempt, feedback: `the change no longer merges into ${into} (${res.conflict}); redo it on the current branch` } }], "farm");
        return;
      }
      commit = res.commit;
    }
    await this.d.state.commit([{ type: "unit_merged", data: { taskId, unitId, attempt, commit, into, auto, risk: r, ...(heldForTask ? { heldForTask: true as const } : {}) } }], actor);
    await this.d.repo.deleteBranch(u.evaluation.branch);
    // The change now lives in git; its patch file was only needed until the merge.
    rmSync(this.patchFile(u, attempt), { force: true });
    await this.d.taskMerge.publish(taskId);
    await this.maybeMergeTask(taskId);
  }

  private maybeMergeTask(taskId: string, actor = "farm"): Promise<void> {
    return this.d.taskMerge.maybeMergeTask(taskId, actor);
  }
}
