import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { unitKey, type ChangeFile, type ChangeVersion, type EvalOutcome, type EventBody, type FarmEvent, type PlanProposal, type ServerConfig, type UnitResult, type UnitSpec } from "@optimus/shared";
import { withReviewUnits } from "../core/task-commands.js";
import { writeAdrDraft } from "../planner/adr-draft.js";
import { checkPlan } from "../planner/plan-check.js";
import { FarmError, StaleChangeError } from "../core/errors.js";
import { assertAction } from "../core/unit-actions.js";
import type { FarmState } from "../core/farm-state.js";
import type { SubmissionHandler } from "../core/lease-commands.js";
import type { UnitRecord } from "../store/projection.js";
import { runCheck, type EgressOptions, type SandboxBind } from "../sandbox/index.js";
import { prepareDeps, type DepsCache } from "../setup/index.js";
import { FarmRepo, integrationBranch, unitBranch, unitTrailer } from "./farm-repo.js";
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

export interface PrLoopDeps {
  state: FarmState;
  config: ServerConfig;
  repo: FarmRepo;
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
export interface LeaseWorkContext {
  base?: { branch: string };
  feedback?: string[];
  /** the unit's session notes so far (earlier attempts) */
  notes?: string;
  review?: { unitId: string; attempt: number; patch: string; evals: Array<{ name: string; exitCode: number | null; output: string }> };
  /** the farm's egress proxy (its port on the farm's host), when it offers one to checks */
  egress?: { port: number };
  /** the repository's `setup:` (absent: the worker detects it from the lockfile) */
  setup?: ServerConfig["setup"];
}

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
  private readonly plans = new Map<string, { units: UnitSpec[]; plan: PlanProposal } | { fallback: string }>();
  private readonly listener = (events: FarmEvent[]) => this.onCommitted(events);

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
      this.plans.set(u.leaseId!, check.ok ? { units: check.units, plan: result.plan! } : { fallback: check.reason });
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
      if (d?.needed && d.title) adr = writeAdrDraft(this.d.repo.root, u.taskId, d);
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
    for (const dir of await this.d.repo.ownWorktrees()) await this.d.repo.removeWorktree(dir);
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
  private heldForSelfReview(target: UnitRecord): EventBody {
    const ev = target.evaluation!;
    const risk = assessRisk({ diff: ev.diff, evals: ev.evals, green: ev.green, unreviewed: false }, this.d.config.policy, this.d.config.prloop.eval.length > 0);
    return {
      type: "unit_held",
      data: { taskId: target.taskId, unitId: target.unitId, attempt: target.attempt, risk: { level: risk.level === "high" ? "high" : "medium", reasons: [SELF_REVIEW_REASON, ...risk.reasons] } },
    };
  }

  /** The hold of a change its reviewer kept sending back until the unit ran out of attempts. */
  private heldAfterReviews(target: UnitRecord, lastComments: string): EventBody {
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

  async approveTaskMerge(taskId: string, actor: string): Promise<void> {
    const t = this.p.tasks.get(taskId);
    if (!t) throw new FarmError("not_found", `task '${taskId}' not found`);
    if (!t.merge?.heldReason) throw new FarmError("conflict", `task ${taskId} has no merge waiting for approval`);
    await this.queue(taskId, () => this.maybeMergeTask(taskId, actor));
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

  /** Before a task is recorded: its integration branch exists, cut from its target branch. */
  async prepareTask(taskId: string, targetBranch: string | undefined): Promise<string> {
    const target = targetBranch ?? (await this.d.repo.currentBranch());
    await this.d.repo.ensureIntegrationBranch(taskId, target);
    return target;
  }

  private async ensureBranch(taskId: string): Promise<void> {
    const t = this.p.tasks.get(taskId);
    if (!t) return;
    await this.prepareTask(taskId, t.targetBranch);
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
    const base = (await this.d.repo.revParse(`refs/heads/${integrationBranch(taskId)}`))!;
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
      const evals: EvalOutcome[] = [];
      let binds: SandboxBind[] = [];
      if (this.d.config.prloop.eval.length > 0 && this.d.deps) {
        // The change's dependencies (its own lockfile), installed once per lockfile content and shown
        // read-only: the evals themselves run offline.
        const setup = await this.setUp(ref, wt);
        if (this.d.signal?.aborted) return; // the farm is stopping mid set-up: no verdict, evaluated again on restart
        if (setup) {
          evals.push(setup.outcome);
          binds = setup.binds;
          // The set-up ran the repository's install scripts here: back to exactly the commit.
          if (setup.ranInWorktree) await this.d.repo.resetTree(tree, commit);
        }
      }
      for (const e of evals.some((e) => e.exitCode !== 0) ? [] : this.d.config.prloop.eval) {
        // The eval runs the change's code: in the sandbox, seeing the worktree, toolchains and the cached dependencies (read-only) only.
        const r = await runCheck(e.command, { cwd: wt, timeoutMs: e.timeoutMs, sandbox: this.d.config.sandbox, hide: this.d.hide ?? [], binds, ...(this.d.signal ? { signal: this.d.signal } : {}) });
        if (this.d.signal?.aborted) return; // the farm is stopping: no verdict; the unit stays in evaluation and is evaluated again on restart
        if (r.sandboxNote) this.d.log.warn({ taskId, unitId, eval: e.name }, r.sandboxNote);
        evals.push({ name: e.name, exitCode: r.exitCode, timedOut: r.timedOut, durationMs: r.durationMs, output: r.output.slice(-8_000) });
      }
      const green = evals.every((e) => e.exitCode === 0);
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

  /**
   * The dependency set-up of an eval tree, as an eval entry (`set-up`: a cache hit or an install,
   * with its duration; a failure fails the evaluation with its log's tail), or null when the
   * repository has none. Logged with its duration and whether it was a cache hit.
   */
  private async setUp(ref: { taskId: string; unitId: string; attempt: number }, wt: string): Promise<{ outcome: EvalOutcome; binds: SandboxBind[]; ranInWorktree: boolean } | null> {
    const egress = this.d.setupEgress?.();
    let prepared;
    try {
      prepared = await prepareDeps(this.d.deps!, this.d.config.setup, { worktree: wt, sandbox: this.d.config.sandbox, hide: this.d.hide ?? [], ...(egress ? { egress } : {}), ...(this.d.signal ? { signal: this.d.signal } : {}) });
    } catch (err) {
      const output = `the set-up could not run: ${(err as Error).message}`;
      this.d.log.warn({ ...ref }, output);
      return { outcome: { name: "set-up", exitCode: null, timedOut: false, durationMs: 0, output }, binds: [], ranInWorktree: true };
    }
    if (prepared.kind === "unsupported") this.d.log.warn({ ...ref }, `no dependency set-up: ${prepared.reason}`);
    if (prepared.kind !== "ready") return null;
    const o = prepared.outcome;
    if (o.sandboxNote) this.d.log.warn({ ...ref }, o.sandboxNote);
    this.d.log.info({ ...ref, hash: o.hash, hit: o.hit, durationMs: o.durationMs, ok: o.ok, log: o.logFile }, o.summary);
    const output = o.ok ? `${o.summary}\n${o.hit ? "" : o.output.slice(-2_000)}`.trimEnd() : `${o.summary}\n${o.output}`;
    return { outcome: { name: "set-up", exitCode: o.exitCode, timedOut: false, durationMs: o.durationMs, output: output.slice(-8_000) }, binds: o.binds, ranInWorktree: o.ranInWorktree };
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
      await this.d.state.commit([this.heldForSelfReview(u)], "farm");
      return;
    }
    if (u.review?.verdict === "request_changes") {
      const text = [u.review.summary, ...u.review.comments.map((c) => `${c.path}:${c.line}: ${c.body}`)].filter(Boolean).join("\n");
      // A reviewer's "request changes" uses one of the unit's attempts; the last one goes to a person
      // (never another round, never dead-lettered in silence). A person's request gives one more.
      if (attempt >= (u.spec.maxAttempts ?? this.d.config.maxAttempts)) {
        await this.d.state.commit([this.heldAfterReviews(u, text)], "farm");
        return;
      }
      await this.d.state.commit([{ type: "changes_requested", data: { taskId, unitId, attempt, feedback: `review by ${u.review.reviewUnitId}: ${text}`, reviewUnitId: u.review.reviewUnitId } }], "farm");
      return;
    }
    const input = { diff: u.evaluation.diff, evals: u.evaluation.evals, green: u.evaluation.green, review: u.review, unreviewed };
    const risk = assessRisk(input, this.d.config.policy, this.d.config.prloop.eval.length > 0);
    const verdict = mayAutoMerge(risk, input, this.d.config.policy);
    if (verdict.auto) await this.merge(taskId, unitId, attempt, true, "farm", risk);
    else await this.d.state.commit([{ type: "unit_held", data: { taskId, unitId, attempt, risk: { level: risk.level, reasons: verdict.why } } }], "farm");
  }

  private async merge(taskId: string, unitId: string, attempt: number, auto: boolean, actor: string, risk = this.p.units.get(unitKey(taskId, unitId))?.risk): Promise<void> {
    const u = this.p.units.get(unitKey(taskId, unitId));
    if (!u || u.attempt !== attempt || u.state === "merged" || !u.evaluation) return;
    const into = integrationBranch(taskId);
    const trailer = unitTrailer(taskId, unitId, attempt);
    const r = { level: risk?.level ?? "low", reasons: risk?.reasons ?? [] } as const;
    // At most once per unit attempt: a merge that landed before a crash is found by its trailer.
    let commit = await this.d.repo.findMerge(into, trailer);
    if (!commit) {
      const res = await this.d.repo.mergeInto(into, u.evaluation.branch, `Merge ${taskId}/${unitId} attempt ${attempt}${auto ? " (auto)" : ` (approved by ${actor})`}\n\n${trailer}`);
      if (!res.ok) {
        await this.d.state.commit([{ type: "changes_requested", data: { taskId, unitId, attempt, feedback: `the change no longer merges into ${into} (${res.conflict}); redo it on the current branch` } }], "farm");
        return;
      }
      commit = res.commit;
    }
    await this.d.state.commit([{ type: "unit_merged", data: { taskId, unitId, attempt, commit, into, auto, risk: r } }], actor);
    await this.d.repo.deleteBranch(u.evaluation.branch);
    // The change now lives in git; its patch file was only needed until the merge.
    rmSync(this.patchFile(u, attempt), { force: true });
    await this.maybeMergeTask(taskId);
  }

  /** Once every unit is done, the integration branch goes into the target branch. */
  private async maybeMergeTask(taskId: string, actor = "farm"): Promise<void> {
    const t = this.p.tasks.get(taskId);
    if (!t || t.cancelled || t.merge?.commit) return;
    const units = t.units.map((k) => this.p.units.get(k)!);
    if (!units.every((u) => u.state === "merged" || u.state === "completed") || !units.some((u) => u.state === "merged")) return;
    const into = t.targetBranch ?? (await this.d.repo.currentBranch());
    const branch = integrationBranch(taskId);
    const message = `Merge task ${taskId}: ${t.title.slice(0, 60)}\n\nOptimus-Task: ${taskId}`;
    const at = await this.d.repo.checkedOutAt(into);
    const res = at ? await this.d.repo.mergeInWorktree(at, branch, message) : await this.d.repo.mergeInto(into, branch, message);
    if (res.ok) await this.d.state.commit([{ type: "task_merged", data: { taskId, into, commit: res.commit } }], actor);
    else if (t.merge?.heldReason !== ("reason" in res ? res.reason : res.conflict)) {
      await this.d.state.commit([{ type: "task_merge_held", data: { taskId, into, reason: "reason" in res ? res.reason : res.conflict } }], actor);
    }
  }
}
