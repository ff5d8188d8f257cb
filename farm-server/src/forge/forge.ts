/**
 * The forge: where a task's change is delivered as a pull request, its evals shown as check runs, its
 * review posted, its merge done, and where people approve, request changes, or close. Written in the
 * farm's words and free of any one forge's API, so Gitea/Forgejo and GitLab can follow GitHub
 * (`github.ts`). Every method is one small, retry-safe step: nothing here leaves a half-done change
 * behind when it fails, and a failure is a `ForgeError` whose `code` says what to do next.
 */
import type { RiskAssessment } from "@optimus/shared";

/** How the forge merges a pull request. */
export type MergeMethod = "merge" | "squash" | "rebase";

/** A task's pull request as the forge sees it. */
export interface PullRequestRef {
  number: number;
  /** the page a person opens */
  url: string;
  /** `merged` is a closed pull request whose change reached the base branch */
  state: "open" | "closed" | "merged";
  /** the integration branch and the version of it the forge has */
  head: string;
  headSha: string;
  /** the target branch */
  base: string;
  title: string;
  /** with `merged`: the commit the merge put on the base branch (found again after a crash) */
  mergeCommitSha?: string;
}

/** What the pull request of a task says; `body` is usually `renderPullRequestBody(…)`. */
export interface PullRequestContent {
  /** the pushed integration branch */
  head: string;
  /** the target branch */
  base: string;
  title: string;
  body: string;
}

/** An eval reported as a check run on a commit. `id` set: update that check run instead of creating one. */
export interface CheckReport {
  id?: number;
  /** the commit evaluated (the head of the integration branch) */
  sha: string;
  /** the eval's name; the forge shows it with the farm's prefix (`optimus/<name>`) */
  name: string;
  status: "queued" | "in_progress" | "completed";
  /** required when completed */
  conclusion?: "success" | "failure" | "neutral" | "cancelled" | "timed_out" | "skipped" | "action_required";
  /** one line */
  title?: string;
  /** markdown, shown first */
  summary?: string;
  /** markdown, the details (e.g. the end of the eval's output) */
  text?: string;
  /** a link back to the farm */
  detailsUrl?: string;
  /** the farm's own key for it, e.g. `<task>/<unit>/<attempt>/<eval>` */
  externalId?: string;
}

export interface CheckRef {
  id: number;
  url: string;
}

/** A comment on one line of the change (the new side of the diff). */
export interface LineComment {
  path: string;
  line: number;
  body: string;
}

/** The review unit's verdict as a pull-request review. */
export interface ReviewPost {
  pullNumber: number;
  /** the version reviewed: the review is pinned to it */
  commitSha: string;
  event: "APPROVE" | "REQUEST_CHANGES" | "COMMENT";
  body: string;
  comments: LineComment[];
}

export interface ReviewRef {
  id: number;
  url: string;
  /**
   * The event the forge recorded. A forge refuses an approval or a change request from the author of
   * the pull request (the farm opened it): the verdict is then posted as a COMMENT that states it.
   */
  postedAs: ReviewPost["event"];
}

/** One required check and its state on the head commit. */
export interface RequiredCheck {
  name: string;
  /** `missing`: no run or status reported yet (the forge waits for it) */
  state: "success" | "failure" | "pending" | "missing";
  summary?: string;
}

/** Whether the forge would merge the pull request now, and why not. */
export interface MergeReadiness {
  pullNumber: number;
  state: PullRequestRef["state"];
  headSha: string;
  /** null: the forge has not computed it yet (it does so in the background) */
  mergeable: boolean | null;
  /** the forge's own word: clean, blocked, behind, dirty, unstable, draft, has_hooks, unknown */
  mergeableState: string;
  /** the checks branch protection requires on the base branch */
  requiredChecks: RequiredCheck[];
  requiredChecksState: "success" | "failure" | "pending";
  /** mergeable, open, and every required check passed */
  ready: boolean;
  /** why not, in words a person reads */
  why: string[];
}

export interface MergeRequest {
  pullNumber: number;
  /** the version that was evaluated and approved: the forge refuses to merge any other */
  expectedHeadSha: string;
  /** default: the configured merge method */
  method?: MergeMethod;
  commitTitle?: string;
  commitMessage?: string;
}

export interface MergeResult {
  pullNumber: number;
  /** the commit now on the base branch (the merge commit, the squash commit or the last rebased one) */
  sha: string;
  method: MergeMethod;
  base: string;
}

/**
 * What happened on the forge that the farm acts on. The same event has the same `id` whether it
 * came by webhook or by polling, so a consumer that remembers ids acts on each once.
 */
export type ForgeEvent =
  /** a review approval by a user with write access: approves a held change, recorded with who */
  | { kind: "approved"; id: string; pullNumber: number; by: string; reviewId: number; commitSha: string; at: string }
  /** a change request by a user with write access: a new attempt with these comments as feedback */
  | {
      kind: "changes_requested";
      id: string;
      pullNumber: number;
      by: string;
      reviewId: number;
      commitSha: string;
      body: string;
      comments: LineComment[];
      at: string;
    }
  /** review comments (no verdict) by a user with write access: feedback for the next attempt */
  | {
      kind: "commented";
      id: string;
      pullNumber: number;
      by: string;
      reviewId: number;
      commitSha: string;
      body: string;
      comments: LineComment[];
      at: string;
    }
  /**
   * A check of the team's own CI (not one of the farm's) that failed on the head of a pull request.
   * `required`: branch protection requires it, so it blocks the merge.
   */
  | {
      kind: "check_failed";
      id: string;
      pullNumbers: number[];
      sha: string;
      name: string;
      checkRunId: number;
      conclusion: string;
      required: boolean;
      title: string;
      summary: string;
      text: string;
      url: string;
      at: string;
    }
  /** the pull request was closed without a merge (by a person, unless `byBot`) */
  | { kind: "closed"; id: string; pullNumber: number; by: string; byBot: boolean; at: string };

export type ForgeEventKind = ForgeEvent["kind"];

/** Something seen but not acted on (for the log): e.g. an approval by a user without write access. */
export interface IgnoredActivity {
  id: string;
  pullNumber?: number;
  why: string;
}

export interface ForgeActivity {
  events: ForgeEvent[];
  ignored: IgnoredActivity[];
}

/** The forge, in the farm's words. One instance serves one repository. */
export interface Forge {
  readonly kind: string;
  /** `owner/name` */
  readonly repo: string;
  /** Opens the pull request of an integration branch, or updates the open one (title, body, base). */
  openOrUpdatePullRequest(content: PullRequestContent): Promise<PullRequestRef>;
  getPullRequest(pullNumber: number): Promise<PullRequestRef>;
  /** Creates a check run, or updates `report.id`. */
  reportCheck(report: CheckReport): Promise<CheckRef>;
  postReview(review: ReviewPost): Promise<ReviewRef>;
  /** Mergeability and required checks, as the forge's branch protection sees them. */
  mergeReadiness(pullNumber: number): Promise<MergeReadiness>;
  /**
   * Merges through the forge, only the expected head, and reports only once the base branch contains
   * the result. A refusal is a ForgeError (`merge_refused`, `head_moved`, `invalid`) and changes nothing.
   */
  merge(request: MergeRequest): Promise<MergeResult>;
  /** Reviews, review comments, failing checks of the team's CI, and a close, as events. */
  readActivity(pullNumber: number): Promise<ForgeActivity>;
  /** Whether `login` may approve: write access to the repository. */
  hasWriteAccess(login: string): Promise<boolean>;
  /** Deletes a branch; a branch already gone is not an error. */
  deleteBranch(branch: string): Promise<void>;
}

export type ForgeErrorCode =
  /** the forge will not merge (not mergeable, a required check failing, a review missing): 405 */
  | "merge_refused"
  /** the head is not the version that was evaluated: 409 */
  | "head_moved"
  /** the forge refused the request's content: 422 */
  | "invalid"
  | "not_found"
  /** the token is missing, wrong, expired or revoked: 401 */
  | "unauthorized"
  /** the token may not do this: 403 */
  | "forbidden"
  /** a rate limit that lasts longer than the farm is configured to wait */
  | "rate_limited"
  /** the merge call succeeded but the base branch does not contain it */
  | "merge_unverified"
  /** the forge could not be reached or failed (5xx after retries) */
  | "unavailable";

/** A forge call that failed, in the farm's words, with the forge's own message kept. */
export class ForgeError extends Error {
  override readonly name = "ForgeError";
  constructor(
    readonly code: ForgeErrorCode,
    message: string,
    /** `sha`: with `merge_unverified`, the commit the forge said it merged */
    readonly detail: {
      status?: number;
      requestId?: string;
      retryAfterMs?: number;
      forgeMessage?: string;
      operation?: string;
      sha?: string;
    } = {},
  ) {
    super(message);
  }
}

export const isForgeError = (err: unknown, code?: ForgeErrorCode): err is ForgeError =>
  err instanceof ForgeError && (code === undefined || err.code === code);

/** A marker the farm puts in what it writes on the forge, so its own reviews are never read as feedback. */
export const FARM_MARKER = "<!-- optimus:farm -->";
/** The prefix of the farm's own check runs' external id (its check runs are never the team's CI). */
export const FARM_EXTERNAL_ID_PREFIX = "optimus:";

export interface PullRequestBodyInput {
  task: { id: string; title: string; description?: string };
  units: { id: string; role: string; state: string; goal?: string; commit?: string }[];
  /** eval results and other evidence, one line each */
  evidence: { name: string; ok: boolean; detail?: string }[];
  risk?: RiskAssessment;
  /** why the change is held, when it is */
  held?: string[];
  /** the task in the farm (editor or web) */
  link?: string;
}

const esc = (s: string): string =>
  s
    .replace(/[\r\n]+/g, " ")
    .replace(/\|/g, "\\|")
    .slice(0, 300);

/** The pull request's body: the task, its units, evidence, risk and a link back (markdown). */
export function renderPullRequestBody(input: PullRequestBodyInput): string {
  const lines: string[] = [FARM_MARKER, `<!-- optimus:task ${input.task.id} -->`, ""];
  lines.push(`**Task** \`${input.task.id}\`: ${esc(input.task.title)}`, "");
  if (input.task.description) lines.push(input.task.description.slice(0, 20_000), "");
  lines.push("### Units", "", "| unit | role | state | goal |", "| --- | --- | --- | --- |");
  for (const u of input.units)
    lines.push(`| \`${u.id}\` | ${u.role} | ${u.state}${u.commit ? ` (${u.commit.slice(0, 10)})` : ""} | ${esc(u.goal ?? "")} |`);
  lines.push("", "### Evidence", "");
  if (input.evidence.length === 0) lines.push("- no evals yet");
  for (const e of input.evidence) lines.push(`- ${e.ok ? "✅" : "❌"} ${esc(e.name)}${e.detail ? `: ${esc(e.detail)}` : ""}`);
  if (input.risk) {
    lines.push("", `### Risk: ${input.risk.level}`, "");
    if (input.risk.reasons.length === 0) lines.push("- nothing raises it");
    for (const r of input.risk.reasons) lines.push(`- ${esc(r)}`);
  }
  if (input.held && input.held.length > 0) {
    lines.push("", "### Held for a person", "");
    for (const h of input.held) lines.push(`- ${esc(h)}`);
    lines.push("", "Approve with a review (write access needed), or from the editor or `optimus approve`.");
  }
  if (input.link) lines.push("", `[The task in the farm](${input.link})`);
  return lines.join("\n");
}

/** The review body the farm posts for the review unit's verdict (`postReview` adds the line comments). */
export function renderReviewBody(verdict: { verdict: "approve" | "request_changes"; risk: string; summary: string }): string {
  return `${FARM_MARKER}\n**Optimus review**: ${verdict.verdict === "approve" ? "approve" : "changes requested"} (risk ${verdict.risk})\n\n${verdict.summary}`;
}

/** The review event for a verdict. */
export const reviewEventFor = (verdict: "approve" | "request_changes"): ReviewPost["event"] =>
  verdict === "approve" ? "APPROVE" : "REQUEST_CHANGES";
