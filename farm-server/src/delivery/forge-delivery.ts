/**
 * Delivery through a forge (issue 10, item 5): a task's pushed integration branch becomes a pull
 * request; each merged unit's evals become check runs and its review unit's verdict a pull-request
 * review; the task merges through the forge's API once the forge says it may; and what people do on
 * the pull request comes back to the farm — an approval (recorded with who, as of the version they
 * saw), review comments and failing required checks as a new unit with them as feedback, a close as a
 * cancelled task. Events arrive by signed webhook, with polling as the fallback, each acted on once.
 */
import { repoPathProblem, unitKey, type RiskAssessment, type UnitSpecInput } from "@optimus/shared";
import {
  createForge,
  EventGate,
  ForgePoller,
  isForgeError,
  renderPullRequestBody,
  renderReviewBody,
  reviewEventFor,
  type Forge,
  type ForgeEvent,
  type ForgeLog,
  type GitHubWebhookReceiver,
  type LineComment,
  type PullRequestRef,
} from "../forge/index.js";
import { integrationBranch } from "../git/farm-repo.js";
import { unapprovedChanges } from "./held-changes.js";
import type { TaskRecord, UnitRecord } from "../store/projection.js";
import type { ForgeDeliveryDeps, ForgeDeliveryHandle } from "./forge-contract.js";
import type { Delivery } from "./git-delivery.js";

type Event<K extends ForgeEvent["kind"]> = Extract<ForgeEvent, { kind: K }>;

const firstLine = (s: string, n = 120) => s.split("\n")[0]!.slice(0, n);
const tail = (s: string, n: number) => (s.length > n ? `…${s.slice(-n)}` : s);
const message = (err: unknown) => ((err as Error)?.message ?? String(err)).split("\n")[0]!;

export function createForgeDelivery(deps: ForgeDeliveryDeps): ForgeDeliveryHandle {
  const d = new ForgeDelivery(deps);
  return {
    published: (taskId) => d.published(taskId),
    deliver: (taskId, into) => d.deliver(taskId, into),
    ...(d.receiver ? { webhook: d.receiver.handler } : {}),
    start: () => d.start(),
    stop: () => d.stop(),
  };
}

class ForgeDelivery {
  readonly forge: Forge;
  readonly receiver: GitHubWebhookReceiver | undefined;
  private readonly poller: ForgePoller;
  /** what is on the forge already: `<task>/<unit>/<attempt>/check/<eval>` and `…/review` */
  private readonly reported = new Set<string>();
  private readonly chains = new Map<string, Promise<unknown>>();
  private retryTimer: NodeJS.Timeout | undefined;
  private retrying = false;

  constructor(private readonly d: ForgeDeliveryDeps) {
    const hooks = {
      onEvent: (e: ForgeEvent) => this.onEvent(e),
      onIgnored: (i: { id: string; pullNumber?: number; why: string }) => d.log.debug({ ...i }, "forge activity not acted on"),
      pullRequests: () => this.openPullRequests(),
      log: d.log as ForgeLog,
      seen: this.seenEvents(),
    };
    if (d.forge) {
      // Another forge (tests): polled only; webhooks are GitHub's.
      this.forge = d.forge;
      this.receiver = undefined;
      this.poller = new ForgePoller({
        forge: d.forge,
        pullRequests: hooks.pullRequests,
        onEvent: hooks.onEvent,
        onIgnored: hooks.onIgnored,
        gate: new EventGate(hooks.seen),
        intervalMs: d.config.forge.pollIntervalMs,
        log: hooks.log,
      });
    } else {
      const wiring = createForge(d.config.forge, d.secrets, hooks);
      this.forge = wiring.forge;
      this.receiver = wiring.receiver;
      this.poller = wiring.poller;
    }
    // Nothing is done twice after a restart: forge events acted on are known by the ids the journal
    // keeps (seenEvents); a merged unit of a task that has its pull request had its checks and
    // review posted (a crash between a unit's merge and that post loses the post, never doubles it).
    for (const t of this.p.tasks.values()) {
      if (!t.pullRequest) continue;
      for (const k of t.units) {
        const u = this.p.units.get(k)!;
        if (u.state !== "merged" || !u.evaluation) continue;
        const key = `${t.taskId}/${u.unitId}/${u.evaluation.attempt}`;
        for (const e of u.evaluation.evals) this.reported.add(`${key}/check/${e.name}`);
        this.reported.add(`${key}/review`);
      }
    }
  }

  private get p() {
    return this.d.state.projection;
  }

  start(): void {
    this.poller.start();
    // A held merge may become possible without an event the farm acts on (the team's CI went
    // green, the base branch stopped conflicting): asked again at the polling interval.
    this.retryTimer = setInterval(() => {
      if (this.retrying) return; // a slow forge never piles up retries
      this.retrying = true;
      this.d.prloop.retryHeldMerges();
      void this.d.prloop.idle().finally(() => (this.retrying = false));
    }, this.d.config.forge.pollIntervalMs);
    this.retryTimer.unref?.();
  }

  async stop(): Promise<void> {
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = undefined;
    await this.poller.stop();
    await this.receiver?.idle();
    await Promise.allSettled([...this.chains.values()]);
  }

  /** One task's forge work at a time, in order (two updates of one pull request never interleave). */
  private serial<T>(taskId: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(taskId) ?? Promise.resolve()).then(fn);
    const settled = run.catch(() => undefined);
    this.chains.set(taskId, settled);
    void settled.then(() => this.chains.get(taskId) === settled && this.chains.delete(taskId));
    return run;
  }

  // ---- the pull request, its checks and reviews ----

  /** After the integration branch was pushed: the pull request opened or updated; new evals and reviews posted. */
  published(taskId: string): Promise<void> {
    return this.serial(taskId, async () => {
      const t = this.p.tasks.get(taskId);
      if (!t || t.cancelled || t.merge?.commit) return;
      const pr = await this.openOrUpdate(t);
      if (pr) await this.reportUnits(t, pr);
    });
  }

  private async openOrUpdate(t: TaskRecord): Promise<PullRequestRef | null> {
    const base = t.targetBranch ?? t.merge?.into;
    if (!base) {
      this.d.log.warn({ taskId: t.taskId }, "the task has no target branch: no pull request");
      return null;
    }
    const pr = await this.forge.openOrUpdatePullRequest({
      head: integrationBranch(t.taskId),
      base,
      title: t.title.slice(0, 256),
      body: await this.body(t),
    });
    const known = t.pullRequest;
    if (!known || known.number !== pr.number || known.state !== pr.state || known.url !== pr.url) {
      await this.d.state.commit(
        [{ type: "task_pull_request", data: { taskId: t.taskId, number: pr.number, url: pr.url, state: pr.state } }],
        "farm",
      );
    }
    return pr;
  }

  private link(taskId: string): string | undefined {
    const url = this.d.farmUrl();
    // The task as the farm's API serves it (a farm token is needed to read it).
    return url ? `${url.replace(/\/+$/, "")}/trpc/tasks.get?input=${encodeURIComponent(JSON.stringify({ taskId }))}` : undefined;
  }

  private unitsOf(t: TaskRecord): UnitRecord[] {
    return t.units.map((k) => this.p.units.get(k)!).filter(Boolean);
  }

  private async body(t: TaskRecord): Promise<string> {
    const units = this.unitsOf(t);
    const merged = units.filter((u) => u.state === "merged" && u.evaluation);
    const evidence = merged.flatMap((u) =>
      u.evaluation!.evals.map((e) => ({
        name: `${u.unitId}/${e.name}`,
        ok: e.exitCode === 0,
        detail: e.timedOut ? "timed out" : `exit ${e.exitCode} in ${(e.durationMs / 1000).toFixed(1)} s`,
      })),
    );
    const levels: RiskAssessment["level"][] = ["low", "medium", "high"];
    const risks = merged.map((u) => u.risk).filter((r): r is RiskAssessment => !!r);
    const risk = risks.length
      ? { level: levels[Math.max(...risks.map((r) => levels.indexOf(r.level)))]!, reasons: [...new Set(risks.flatMap((r) => r.reasons))] }
      : undefined;
    const held = [...new Set((await unapprovedChanges(t, this.d.repo)).flatMap((c) => c.reasons.map((r) => `${c.unitId}: ${r}`)))];
    const link = this.link(t.taskId);
    return renderPullRequestBody({
      task: { id: t.taskId, title: t.title, ...(t.description ? { description: t.description } : {}) },
      units: units.map((u) => ({
        id: u.unitId,
        role: u.spec.role,
        state: u.state,
        goal: firstLine(u.spec.goal),
        ...(u.mergedCommit ? { commit: u.mergedCommit } : {}),
      })),
      evidence,
      ...(risk ? { risk } : {}),
      ...(held.length ? { held } : {}),
      ...(link ? { link } : {}),
    });
  }

  /** Each merged unit's evals as check runs, and its review as a review, once per unit attempt, on the pushed head. */
  private async reportUnits(t: TaskRecord, pr: PullRequestRef): Promise<void> {
    const link = this.link(t.taskId);
    for (const u of this.unitsOf(t)) {
      if (u.state !== "merged" || !u.evaluation) continue;
      const key = `${t.taskId}/${u.unitId}/${u.evaluation.attempt}`;
      for (const e of u.evaluation.evals) {
        await this.once(`${key}/check/${e.name}`, () =>
          this.forge.reportCheck({
            sha: pr.headSha,
            name: `${u.unitId}/${e.name}`,
            status: "completed",
            conclusion: e.exitCode === 0 ? "success" : e.timedOut ? "timed_out" : "failure",
            title: e.exitCode === 0 ? `${e.name} passed` : e.timedOut ? `${e.name} timed out` : `${e.name} failed (exit ${e.exitCode})`,
            summary: `Eval \`${e.name}\` of unit \`${u.unitId}\` (attempt ${u.evaluation!.attempt}), run by the farm on the unit's change: ${e.timedOut ? "timed out" : `exit ${e.exitCode}`} after ${(e.durationMs / 1000).toFixed(1)} s.`,
            text: `The end of its output:\n\n\`\`\`\n${tail(e.output, 6_000).replace(/```/g, "ʼʼʼ")}\n\`\`\``,
            externalId: `${key}/${e.name}`,
            ...(link ? { detailsUrl: link } : {}),
          }),
        );
      }
      const review = u.review;
      if (review && !review.selfReview) await this.once(`${key}/review`, () => this.postReview(t, u, pr, review));
    }
  }

  private async once(key: string, post: () => Promise<unknown>): Promise<void> {
    if (this.reported.has(key)) return;
    this.reported.add(key);
    try {
      await post();
    } catch (err) {
      this.reported.delete(key); // tried again at the next publish
      throw err;
    }
  }

  private async postReview(t: TaskRecord, u: UnitRecord, pr: PullRequestRef, review: NonNullable<UnitRecord["review"]>): Promise<void> {
    // A comment the forge cannot place (its line is not in the pull request's diff) is kept, in the body.
    const lines = await this.diffLines(t, pr.headSha);
    const placeable = (c: LineComment) => !lines || (lines.get(c.path) ?? []).some(([a, b]) => c.line >= a && c.line <= b);
    const kept = review.comments.filter(placeable);
    const left = review.comments.filter((c) => !placeable(c));
    const body = [
      renderReviewBody({ verdict: review.verdict, risk: review.risk, summary: review.summary }),
      `\n_Review unit \`${review.reviewUnitId}\` on unit \`${u.unitId}\` (attempt ${u.evaluation?.attempt ?? u.attempt})._`,
      ...(left.length
        ? ["", "Comments on lines outside this pull request's change:", ...left.map((c) => `- \`${c.path}:${c.line}\`: ${c.body}`)]
        : []),
    ].join("\n");
    await this.forge.postReview({
      pullNumber: pr.number,
      commitSha: pr.headSha,
      event: reviewEventFor(review.verdict),
      body,
      comments: kept,
    });
  }

  /** The new-side line ranges of the pull request's diff, per file (null when the base is unknown here). */
  private async diffLines(t: TaskRecord, head: string): Promise<Map<string, [number, number][]> | null> {
    const base = t.targetBranch ?? t.merge?.into;
    const tip = base ? await this.d.repo.revParse(`refs/remotes/origin/${base}`) : null;
    if (!tip) return null;
    try {
      const mb = (await this.d.repo.git.raw(["merge-base", tip, head])).trim();
      const out = await this.d.repo.git.raw(["diff", "--no-color", "--no-ext-diff", "-U3", mb, head]);
      const ranges = new Map<string, [number, number][]>();
      let file: string | undefined;
      for (const line of out.split("\n")) {
        if (line.startsWith("+++ ")) file = line === "+++ /dev/null" ? undefined : line.slice(6);
        const m = file ? /^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@/.exec(line) : null;
        if (m && file) {
          const start = Number(m[1]);
          const count = m[2] === undefined ? 1 : Number(m[2]);
          if (count > 0) ranges.set(file, [...(ranges.get(file) ?? []), [start, start + count - 1]]);
        }
      }
      return ranges;
    } catch {
      return null;
    }
  }

  // ---- the merge ----

  /** Merges the task's pull request through the forge, only the farm's head; held with the forge's reason otherwise. */
  async deliver(taskId: string, into: string): Promise<Delivery> {
    const t = this.p.tasks.get(taskId);
    const head = await this.d.repo.revParse(`refs/heads/${integrationBranch(taskId)}`);
    if (!t || !head) return { ok: false, into, reason: `the farm has no branch ${integrationBranch(taskId)}` };
    try {
      const number = t.pullRequest?.number ?? (await this.serial(taskId, () => this.openOrUpdate(t)))?.number;
      if (!number) return { ok: false, into, reason: "the task has no pull request" };
      const r = await this.forge.mergeReadiness(number);
      if (r.state === "merged") {
        // Merged before a crash (or by a person): found, reported once.
        const pr = await this.forge.getPullRequest(number);
        if (pr.mergeCommitSha) return { ok: true, commit: pr.mergeCommitSha, into, already: true, retries: 0 };
        return { ok: false, into, reason: `pull request #${number} is merged on the forge, but the forge does not say as which commit` };
      }
      if (r.state === "closed")
        return { ok: false, into, reason: `pull request #${number} was closed without a merge; reopen it to deliver the task` };
      if (r.headSha !== head)
        return {
          ok: false,
          into,
          reason: `pull request #${number} shows ${r.headSha.slice(0, 10)}, not the farm's ${head.slice(0, 10)} (the forge has not caught up with the push yet)`,
        };
      if (!r.ready) return { ok: false, into, reason: `the forge does not merge pull request #${number} yet: ${r.why.join("; ")}` };
      const merged = await this.forge.merge({
        pullNumber: number,
        expectedHeadSha: head,
        commitMessage: `${t.title.slice(0, 200)}\n\nOptimus-Task: ${taskId}`,
      });
      return { ok: true, commit: merged.sha, into, already: false, retries: 0 };
    } catch (err) {
      // A refusal (405/409/422), a limit, an outage: nothing was merged (a merge the forge did but
      // could not show is found as merged at the next try).
      return { ok: false, into, reason: isForgeError(err) ? err.message : `the forge could not be asked: ${message(err)}` };
    }
  }

  // ---- what people do on the pull request ----

  /** Pull requests to poll: those of tasks in flight. */
  private openPullRequests(): number[] {
    return [...this.p.tasks.values()]
      .filter((t) => t.pullRequest?.state === "open" && !t.cancelled && !t.merge?.commit)
      .map((t) => t.pullRequest!.number);
  }

  private taskOf(pullNumber: number): TaskRecord | undefined {
    const t = [...this.p.tasks.values()].find((x) => x.pullRequest?.number === pullNumber);
    return t && !t.cancelled && !t.merge?.commit ? t : undefined;
  }

  /** Event ids already acted on, from the journal: the gate lets none of them through again. */
  private seenEvents(): string[] {
    const seen: string[] = [];
    for (const t of this.p.tasks.values()) {
      for (const a of t.approvals ?? []) if (a.forgeEvent) seen.push(a.forgeEvent);
      for (const k of t.units) {
        const m = /^(pr|ci)-(\d+)$/.exec(this.p.units.get(k)?.unitId ?? "");
        if (m) seen.push(`${m[1] === "pr" ? "review" : "check"}:${m[2]}`);
      }
      if (t.cancelled && t.pullRequest) seen.push(`closed:${t.pullRequest.number}`);
    }
    return seen;
  }

  private async onEvent(e: ForgeEvent): Promise<void> {
    try {
      if (e.kind === "approved") await this.approved(e);
      else if (e.kind === "changes_requested" || e.kind === "commented") await this.reviewed(e);
      else if (e.kind === "check_failed") await this.checkFailed(e);
      else if (e.kind === "closed") await this.closed(e);
    } catch (err) {
      this.d.log.warn({ event: e.id, kind: e.kind, err: message(err) }, "a forge event could not be acted on");
    }
  }

  /**
   * A review approval by a user with write access (the forge layer checked it), of a version the
   * farm pushed: recorded with who and that version, which covers the held changes it contains.
   */
  private async approved(e: Event<"approved">): Promise<void> {
    const t = this.taskOf(e.pullNumber);
    if (!t) return;
    const head = await this.d.repo.revParse(`refs/heads/${integrationBranch(t.taskId)}`);
    const pushedByFarm = !!head && (e.commitSha === head || (await this.d.repo.isAncestor(e.commitSha, head).catch(() => false)));
    if (!pushedByFarm) {
      this.d.log.warn(
        { taskId: t.taskId, pull: e.pullNumber, by: e.by, commit: e.commitSha },
        "an approval of a version the farm did not push: not counted",
      );
      return;
    }
    const by = `github:${e.by}`;
    await this.d.state.commit([{ type: "task_approved", data: { taskId: t.taskId, by, head: e.commitSha, forgeEvent: e.id } }], by);
    this.d.log.info({ taskId: t.taskId, pull: e.pullNumber, by, head: e.commitSha }, "the task's pull request was approved");
    this.d.prloop.retryHeldMerges();
  }

  /** The task's files (for a unit that addresses feedback on the whole pull request). */
  private filesOf(t: TaskRecord): string[] {
    return [
      ...new Set(
        this.unitsOf(t)
          .filter((u) => u.spec.role === "codegen")
          .flatMap((u) => u.spec.files),
      ),
    ];
  }

  private async addUnit(t: TaskRecord, unit: UnitSpecInput, reason: string, feedback: string, actor: string): Promise<void> {
    if (this.p.units.has(unitKey(t.taskId, unit.id))) return;
    await this.d.tasks.addUnits(t.taskId, [unit], reason, [feedback.slice(0, 20_000)], actor);
    this.d.log.info({ taskId: t.taskId, unitId: unit.id, reason }, "a unit was added from the pull request");
  }

  /** A change request or review comments by a user with write access: a new unit, with them as its feedback. */
  private async reviewed(e: Event<"changes_requested"> | Event<"commented">): Promise<void> {
    const t = this.taskOf(e.pullNumber);
    if (!t) return;
    const what = e.kind === "changes_requested" ? "changes requested" : "review comments";
    const feedback = [
      `${what} by ${e.by} on pull request #${e.pullNumber}${e.body.trim() ? `: ${e.body.trim()}` : ""}`,
      ...e.comments.map((c) => `${c.path}:${c.line}: ${c.body}`),
    ].join("\n");
    const paths = [...new Set(e.comments.map((c) => c.path))].filter((p) => !repoPathProblem(p));
    const unit = {
      id: `pr-${e.reviewId}`,
      goal: `Address the ${what} on the task's pull request:\n${feedback}`.slice(0, 20_000),
      role: "codegen" as const,
      files: paths.length ? paths : this.filesOf(t),
    };
    await this.addUnit(t, unit, `${what} by ${e.by} on pull request #${e.pullNumber} (review ${e.reviewId})`, feedback, `github:${e.by}`);
  }

  /** A required check of the team's CI failed on the pull request: a new unit with the check's summary; the merge stays held. */
  private async checkFailed(e: Event<"check_failed">): Promise<void> {
    if (!e.required)
      return void this.d.log.info({ check: e.name, pulls: e.pullNumbers }, "a check that is not required failed: not acted on");
    for (const n of e.pullNumbers) {
      const t = this.taskOf(n);
      if (!t) continue;
      const head = await this.d.repo.revParse(`refs/heads/${integrationBranch(t.taskId)}`);
      if (!head || (e.sha !== head && !(await this.d.repo.isAncestor(e.sha, head).catch(() => false)))) continue;
      const feedback = [
        `the team's required check '${e.name}' ${e.conclusion === "failure" ? "failed" : `ended ${e.conclusion}`} on ${e.sha.slice(0, 10)}: ${e.title}`,
        e.summary,
        e.text ? tail(e.text, 4_000) : "",
        e.url,
      ]
        .filter((s) => s.trim())
        .join("\n");
      const unit = {
        id: `ci-${e.checkRunId}`,
        goal: `Make the required check '${e.name}' pass: ${e.title || e.conclusion}\n${feedback}`.slice(0, 20_000),
        role: "codegen" as const,
        files: this.filesOf(t),
      };
      if (this.p.units.has(unitKey(t.taskId, unit.id))) continue;
      // A task that was only waiting for its merge says why it waits (the forge will not merge it).
      const into = t.targetBranch ?? t.merge?.into;
      const reason = `required check '${e.name}' failed on ${e.sha.slice(0, 10)}: ${e.title || e.conclusion} (unit ${unit.id} addresses it)`;
      if (into && this.unitsOf(t).every((u) => u.state === "merged" || u.state === "completed") && t.merge?.heldReason !== reason)
        await this.d.state.commit([{ type: "task_merge_held", data: { taskId: t.taskId, into, reason } }], "farm");
      await this.addUnit(
        t,
        unit,
        `required check '${e.name}' failed on pull request #${n}`,
        feedback,
        `github:check/${e.name}`.slice(0, 100),
      );
    }
  }

  /** A pull request closed by a person: the task is cancelled with who and why. */
  private async closed(e: Event<"closed">): Promise<void> {
    if (e.byBot) return;
    const t = this.taskOf(e.pullNumber);
    if (!t) return;
    const actor = `github:${e.by}`;
    await this.d.state.commit(
      [{ type: "task_pull_request", data: { taskId: t.taskId, number: e.pullNumber, url: t.pullRequest!.url, state: "closed" } }],
      actor,
    );
    await this.d.tasks.cancel(t.taskId, `pull request #${e.pullNumber} closed by ${e.by}`, actor);
  }
}
