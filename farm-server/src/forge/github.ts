/**
 * The Forge on GitHub (github.com or GitHub Enterprise Server), through the real `@octokit/rest` with
 * GitHub's recommended throttling (`@octokit/plugin-throttling`: primary and secondary rate limits
 * waited out, `retry-after` honoured up to a cap, writes spaced) and retries of transient failures
 * (`@octokit/plugin-retry`: 5xx only — a 4xx answer is the forge's word and is never repeated).
 *
 * The token is never held: each request asks `token()` (the farm's secrets layer) for it, so a
 * rotated or revoked token takes effect on the next call.
 */
import { Octokit } from "@octokit/rest";
import { retry } from "@octokit/plugin-retry";
import { throttling } from "@octokit/plugin-throttling";
import Bottleneck from "bottleneck";
import {
  FARM_EXTERNAL_ID_PREFIX,
  FARM_MARKER,
  ForgeError,
  type CheckRef,
  type CheckReport,
  type Forge,
  type ForgeActivity,
  type ForgeEvent,
  type LineComment,
  type MergeMethod,
  type MergeReadiness,
  type MergeRequest,
  type MergeResult,
  type PullRequestContent,
  type PullRequestRef,
  type RequiredCheck,
  type ReviewPost,
  type ReviewRef,
} from "./forge.js";

/** The part of a pino logger the forge uses. */
export interface ForgeLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

const silentLog: ForgeLog = { info() {}, warn() {}, debug() {} };

export interface GitHubForgeOptions {
  /** `owner/name` */
  repo: string;
  /** resolves the token at each request (`secrets.resolve(config.forge.token)`) */
  token: () => Promise<string>;
  /** the REST API root; default GitHub's public API (GitHub Enterprise Server: `https://host/api/v3`) */
  baseUrl?: string;
  mergeMethod?: MergeMethod;
  log?: ForgeLog;
  /** the longest `retry-after` / rate-limit reset waited out; longer is a `rate_limited` error. Default 120 s */
  maxRetryAfterMs?: number;
  /** rate-limit retries of one request; default 3 */
  maxRateLimitRetries?: number;
  /** spacing of mutating requests (GitHub asks for at least 1 s); default 1000 */
  minWriteIntervalMs?: number;
  /** spacing of requests that notify people (pull requests, reviews, merges); default 3000 */
  minNotifyingWriteIntervalMs?: number;
  /** retries of a 5xx / network failure; default 3 */
  serverErrorRetries?: number;
  /** how long to wait for the forge to compute mergeability; default 12 polls, 100 ms apart doubling up to 500 ms */
  mergeabilityPolls?: { tries: number; delayMs: number };
  /** the prefix of the farm's check runs; default "optimus" */
  checkPrefix?: string;
  userAgent?: string;
}

type RestPull = {
  number: number;
  html_url: string;
  state: string;
  merged_at: string | null;
  merge_commit_sha?: string | null;
  title: string;
  head: { ref: string; sha: string };
  base: { ref: string };
};

/** A review in the shape both the REST API and the webhooks give it. */
export interface GitHubReviewLike {
  id: number;
  user: { login: string; type?: string } | null;
  state: string;
  body: string | null;
  commit_id: string | null;
  submitted_at?: string | null;
  author_association: string;
}

/** A check run in the shape both the REST API and the webhooks give it. */
export interface GitHubCheckRunLike {
  id: number;
  name: string;
  head_sha: string;
  status: string;
  conclusion: string | null;
  external_id: string | null;
  html_url: string | null;
  completed_at: string | null;
  app: { id: number } | null;
  output: { title: string | null; summary: string | null; text: string | null };
  pull_requests: { number: number; base: { ref: string } }[];
  check_suite?: { id: number } | null;
}

const FAILING = new Set(["failure", "timed_out", "cancelled", "action_required", "startup_failure", "stale"]);
const PASSING = new Set(["success", "neutral", "skipped"]);
const MAX_OUTPUT = 65_000;
const clip = (s: string | undefined, n = MAX_OUTPUT): string | undefined =>
  s === undefined ? undefined : s.length > n ? `${s.slice(0, n - 20)}\n…(truncated)` : s;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A token auth strategy that asks for the token at every request (retries included). */
function resolvedTokenAuth(getToken: () => Promise<string>) {
  const read = async (): Promise<string> => {
    try {
      const t = await getToken();
      if (!t) throw new Error("the token is empty");
      return t;
    } catch (err) {
      throw new ForgeError("unauthorized", `the forge token could not be read: ${(err as Error).message}`);
    }
  };
  const auth = async () => ({ type: "token", tokenType: "oauth", token: await read() });
  // Octokit's auth-strategy hook contract (request, route, parameters); its types live in a package the farm does not depend on.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  auth.hook = async (request: any, route: any, parameters?: any) => {
    const endpoint = request.endpoint.merge(route, parameters);
    endpoint.headers.authorization = `token ${await read()}`;
    return request(endpoint);
  };
  return () => auth;
}

const RestOctokit: typeof Octokit = Octokit.plugin(retry, throttling) as unknown as typeof Octokit;

export class GitHubForge implements Forge {
  readonly kind = "github";
  readonly repo: string;
  readonly owner: string;
  readonly name: string;
  readonly octokit: Octokit;
  private readonly log: ForgeLog;
  private readonly mergeMethod: MergeMethod;
  private readonly polls: { tries: number; delayMs: number };
  private readonly prefix: string;
  /** the app the farm's check runs are created by (learned from the first one) */
  private ownAppId: number | undefined;
  private readonly writeCache = new Map<string, { write: boolean; until: number }>();

  constructor(opts: GitHubForgeOptions) {
    const m = /^([^/\s]+)\/([^/\s]+)$/.exec(opts.repo);
    if (!m) throw new ForgeError("invalid", `forge.repo must be owner/name, not '${opts.repo}'`);
    this.repo = opts.repo;
    this.owner = m[1]!;
    this.name = m[2]!;
    this.log = opts.log ?? silentLog;
    this.mergeMethod = opts.mergeMethod ?? "merge";
    this.polls = opts.mergeabilityPolls ?? { tries: 12, delayMs: 500 };
    this.prefix = opts.checkPrefix ?? "optimus";
    const capMs = opts.maxRetryAfterMs ?? 120_000;
    const maxRetries = opts.maxRateLimitRetries ?? 3;
    const log = this.log;
    const id = `optimus-forge-${opts.baseUrl ?? "github"}-${opts.repo}`;
    const waitOut =
      (kind: string) =>
      (retryAfter: number, options: { method?: string; url?: string }, _o: unknown, retryCount: number): boolean => {
        const ms = retryAfter * 1000;
        const detail = { kind, method: options.method, url: options.url, retryAfterMs: ms, retryCount };
        if (retryCount >= maxRetries || ms > capMs) {
          log.warn(
            { ...detail, capMs, maxRetries },
            `forge ${kind} rate limit: not waiting (${retryCount >= maxRetries ? "retries exhausted" : "retry-after over the cap"})`,
          );
          return false;
        }
        log.warn(detail, `forge ${kind} rate limit: waiting ${ms} ms before retrying`);
        return true;
      };
    this.octokit = new RestOctokit({
      authStrategy: resolvedTokenAuth(opts.token),
      ...(opts.baseUrl ? { baseUrl: opts.baseUrl.replace(/\/+$/, "") } : {}),
      userAgent: opts.userAgent ?? "optimus-farm",
      log: { debug: () => {}, info: () => {}, warn: (m: string) => log.warn({}, m), error: (m: string) => log.warn({}, m) },
      throttle: {
        id,
        onRateLimit: waitOut("primary"),
        onSecondaryRateLimit: waitOut("secondary"),
        write: new Bottleneck.Group({ maxConcurrent: 1, minTime: opts.minWriteIntervalMs ?? 1000 }),
        notifications: new Bottleneck.Group({ maxConcurrent: 1, minTime: opts.minNotifyingWriteIntervalMs ?? 3000 }),
      },
      // 4xx answers are final (403/429 rate limits belong to the throttling plugin); 5xx are retried.
      retry: { doNotRetry: [400, 401, 403, 404, 405, 409, 410, 422, 429, 451], retries: opts.serverErrorRetries ?? 3 },
    });
  }

  private get ctx() {
    return { owner: this.owner, repo: this.name };
  }

  /** Runs one forge call, turning its failure into a ForgeError. */
  private async call<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toForgeError(err, operation);
    }
  }

  private toRef(pr: RestPull): PullRequestRef {
    return {
      number: pr.number,
      url: pr.html_url,
      state: pr.merged_at ? "merged" : pr.state === "open" ? "open" : "closed",
      head: pr.head.ref,
      headSha: pr.head.sha,
      base: pr.base.ref,
      title: pr.title,
      ...(pr.merged_at && pr.merge_commit_sha ? { mergeCommitSha: pr.merge_commit_sha } : {}),
    };
  }

  async openOrUpdatePullRequest(content: PullRequestContent): Promise<PullRequestRef> {
    const findOpen = async () => {
      const { data } = await this.call("list pull requests", () =>
        this.octokit.rest.pulls.list({ ...this.ctx, state: "open", head: `${this.owner}:${content.head}`, per_page: 10 }),
      );
      return data[0];
    };
    const update = async (n: number, currentBase: string) => {
      const { data } = await this.call("update pull request", () =>
        this.octokit.rest.pulls.update({
          ...this.ctx,
          pull_number: n,
          title: content.title,
          body: content.body,
          ...(currentBase !== content.base ? { base: content.base } : {}),
        }),
      );
      return this.toRef(data);
    };
    const open = await findOpen();
    if (open) return update(open.number, open.base.ref);
    try {
      const { data } = await this.octokit.rest.pulls.create({
        ...this.ctx,
        head: content.head,
        base: content.base,
        title: content.title,
        body: content.body,
        maintainer_can_modify: false,
      });
      this.log.info({ pull: data.number, head: content.head, base: content.base }, "forge: pull request opened");
      return this.toRef(data);
    } catch (err) {
      // Opened meanwhile by another call: update that one.
      const e = toForgeError(err, "open pull request");
      if (e.code === "invalid" && /already exists/i.test(e.message)) {
        const again = await findOpen();
        if (again) return update(again.number, again.base.ref);
      }
      throw e;
    }
  }

  async getPullRequest(pullNumber: number): Promise<PullRequestRef> {
    const { data } = await this.call("get pull request", () => this.octokit.rest.pulls.get({ ...this.ctx, pull_number: pullNumber }));
    return this.toRef(data);
  }

  async reportCheck(report: CheckReport): Promise<CheckRef> {
    if (report.status === "completed" && !report.conclusion)
      throw new ForgeError("invalid", `check '${report.name}': a completed check needs a conclusion`);
    const output =
      report.summary !== undefined || report.title !== undefined
        ? {
            title: clip(report.title ?? report.name, 1000)!,
            summary: clip(report.summary ?? "")!,
            ...(report.text !== undefined ? { text: clip(report.text)! } : {}),
          }
        : undefined;
    const common = {
      ...this.ctx,
      name: `${this.prefix}/${report.name}`,
      status: report.status,
      ...(report.conclusion ? { conclusion: report.conclusion } : {}),
      ...(report.detailsUrl ? { details_url: report.detailsUrl } : {}),
      // The farm's mark on its check runs: set at creation, kept by updates that do not name another.
      ...(report.id === undefined || report.externalId !== undefined
        ? { external_id: `${FARM_EXTERNAL_ID_PREFIX}${report.externalId ?? report.name}` }
        : {}),
      ...(report.status === "completed" ? { completed_at: new Date().toISOString() } : {}),
      ...(output ? { output } : {}),
    };
    const { data } =
      report.id === undefined
        ? await this.call("create check run", () =>
            this.octokit.rest.checks.create({
              ...common,
              head_sha: report.sha,
              ...(report.status !== "queued" ? { started_at: new Date().toISOString() } : {}),
            }),
          )
        : await this.call("update check run", () => this.octokit.rest.checks.update({ ...common, check_run_id: report.id! }));
    if (data.app?.id !== undefined) this.ownAppId = data.app.id;
    return { id: data.id, url: data.html_url ?? data.url };
  }

  async postReview(review: ReviewPost): Promise<ReviewRef> {
    const attempt = async (event: ReviewPost["event"], body: string, comments: LineComment[]) => {
      const { data } = await this.octokit.rest.pulls.createReview({
        ...this.ctx,
        pull_number: review.pullNumber,
        commit_id: review.commitSha,
        event,
        body,
        ...(comments.length
          ? { comments: comments.map((c) => ({ path: c.path, line: c.line, side: "RIGHT" as const, body: c.body })) }
          : {}),
      });
      return { id: data.id, url: data.html_url, postedAs: event };
    };
    const body = review.body.includes(FARM_MARKER) ? review.body : `${FARM_MARKER}\n${review.body}`;
    let event = review.event;
    let text = body;
    let comments = review.comments;
    for (let i = 0; i < 3; i++) {
      try {
        return await attempt(event, text, comments);
      } catch (err) {
        const e = toForgeError(err, "post review");
        if (e.code !== "invalid") throw e;
        if (event !== "COMMENT" && /own pull request/i.test(e.message)) {
          // The farm opened the pull request, and GitHub lets no author approve or reject their own.
          this.log.info({ pull: review.pullNumber, event }, "forge: verdict posted as a comment (the farm is the pull request's author)");
          text = `${text}\n\n**Verdict: ${event === "APPROVE" ? "approve" : "request changes"}** (posted as a comment: GitHub lets no author approve or request changes on their own pull request)`;
          event = "COMMENT";
          continue;
        }
        if (comments.length && /line|position|diff|path/i.test(e.message)) {
          // A comment on a line outside the diff: keep it, in the body.
          this.log.info(
            { pull: review.pullNumber, comments: comments.length },
            "forge: line comments outside the diff moved into the review body",
          );
          text = `${text}\n\n${comments.map((c) => `- \`${c.path}:${c.line}\`: ${c.body}`).join("\n")}`;
          comments = [];
          continue;
        }
        throw e;
      }
    }
    throw new ForgeError("invalid", `the review of pull request #${review.pullNumber} could not be posted`);
  }

  /** The checks branch protection requires on `branch` (empty when it is not protected). */
  async requiredChecks(branch: string): Promise<{ context: string; appId: number | null }[]> {
    const { data } = await this.call("get branch", () => this.octokit.rest.repos.getBranch({ ...this.ctx, branch }));
    const rsc = data.protected ? data.protection?.required_status_checks : undefined;
    if (!rsc) return [];
    const out = new Map<string, { context: string; appId: number | null }>();
    for (const c of rsc.checks ?? []) out.set(c.context, { context: c.context, appId: c.app_id ?? null });
    for (const c of rsc.contexts ?? []) if (!out.has(c)) out.set(c, { context: c, appId: null });
    return [...out.values()];
  }

  private async checkRunsOn(sha: string): Promise<GitHubCheckRunLike[]> {
    return this.call("list check runs", () =>
      this.octokit.paginate(this.octokit.rest.checks.listForRef, { ...this.ctx, ref: sha, filter: "latest", per_page: 100 }),
    ) as Promise<GitHubCheckRunLike[]>;
  }

  async mergeReadiness(pullNumber: number): Promise<MergeReadiness> {
    let pr = (await this.call("get pull request", () => this.octokit.rest.pulls.get({ ...this.ctx, pull_number: pullNumber }))).data;
    // GitHub computes mergeability in the background: null until it has (usually well under a
    // second), so asked again soon, then less often.
    for (let i = 1; pr.state === "open" && pr.mergeable === null && i < this.polls.tries; i++) {
      await sleep(Math.min(this.polls.delayMs, 100 * 2 ** (i - 1)));
      pr = (await this.call("get pull request", () => this.octokit.rest.pulls.get({ ...this.ctx, pull_number: pullNumber }))).data;
    }
    const required = await this.requiredChecks(pr.base.ref);
    const runs = required.length ? await this.checkRunsOn(pr.head.sha) : [];
    const statuses = required.length
      ? (
          await this.call("get combined status", () =>
            this.octokit.rest.repos.getCombinedStatusForRef({ ...this.ctx, ref: pr.head.sha, per_page: 100 }),
          )
        ).data.statuses
      : [];
    const requiredChecks: RequiredCheck[] = required.map(({ context, appId }) => {
      const run = runs
        .filter((r) => r.name === context && (appId === null || appId === -1 || r.app?.id === appId))
        .sort((a, b) => b.id - a.id)[0];
      if (run) {
        const summary = run.output.title ?? run.output.summary ?? undefined;
        const state: RequiredCheck["state"] =
          run.status !== "completed" ? "pending" : PASSING.has(run.conclusion ?? "") ? "success" : "failure";
        return { name: context, state, ...(summary ? { summary } : {}) };
      }
      const st = statuses.find((s) => s.context === context);
      if (st)
        return {
          name: context,
          state: st.state === "success" ? "success" : st.state === "pending" ? "pending" : "failure",
          ...(st.description ? { summary: st.description } : {}),
        };
      return { name: context, state: "missing" };
    });
    const requiredChecksState = requiredChecks.some((c) => c.state === "failure")
      ? "failure"
      : requiredChecks.some((c) => c.state !== "success")
        ? "pending"
        : "success";
    const state = this.toRef(pr).state;
    const why: string[] = [];
    if (state !== "open") why.push(`the pull request is ${state}`);
    if (pr.draft) why.push("the pull request is a draft");
    if (pr.mergeable === null) why.push("the forge has not computed mergeability yet");
    else if (pr.mergeable === false)
      why.push(
        pr.mergeable_state === "dirty"
          ? "the change conflicts with the base branch"
          : `the forge says it is not mergeable (${pr.mergeable_state})`,
      );
    for (const c of requiredChecks)
      if (c.state !== "success")
        why.push(
          `required check '${c.name}' ${c.state === "missing" ? "has not reported" : c.state === "pending" ? "is still running" : "failed"}${c.summary ? `: ${c.summary}` : ""}`,
        );
    if (why.length === 0 && ["blocked", "behind", "dirty", "draft"].includes(pr.mergeable_state))
      why.push(`the forge's branch protection blocks it (${pr.mergeable_state})`);
    return {
      pullNumber,
      state,
      headSha: pr.head.sha,
      mergeable: pr.mergeable,
      mergeableState: pr.mergeable_state,
      requiredChecks,
      requiredChecksState,
      ready: why.length === 0,
      why,
    };
  }

  async merge(request: MergeRequest): Promise<MergeResult> {
    const method = request.method ?? this.mergeMethod;
    let sha: string;
    try {
      const { data } = await this.octokit.rest.pulls.merge({
        ...this.ctx,
        pull_number: request.pullNumber,
        sha: request.expectedHeadSha,
        merge_method: method,
        ...(request.commitTitle ? { commit_title: request.commitTitle } : {}),
        ...(request.commitMessage ? { commit_message: request.commitMessage } : {}),
      });
      if (!data.merged)
        throw new ForgeError("merge_refused", `the forge did not merge pull request #${request.pullNumber}: ${data.message}`, {
          forgeMessage: data.message,
        });
      sha = data.sha;
    } catch (err) {
      const e = toForgeError(err, "merge");
      if (e.detail.status === 405)
        throw new ForgeError(
          "merge_refused",
          `the forge refused to merge pull request #${request.pullNumber}: ${e.detail.forgeMessage ?? e.message}`,
          e.detail,
        );
      if (e.detail.status === 409)
        throw new ForgeError(
          "head_moved",
          `pull request #${request.pullNumber} was not merged: its head is no longer ${request.expectedHeadSha.slice(0, 12)}, the version evaluated (${e.detail.forgeMessage ?? e.message})`,
          e.detail,
        );
      if (e.detail.status === 422)
        throw new ForgeError(
          "invalid",
          `the forge rejected the merge of pull request #${request.pullNumber}: ${e.detail.forgeMessage ?? e.message}`,
          e.detail,
        );
      throw e;
    }
    // Reported only once the base branch contains it. The merge call succeeded: whatever fails from
    // here is `merge_unverified` with the sha, never an error that reads as "not merged".
    let base: string;
    try {
      base = (await this.getPullRequest(request.pullNumber)).base;
      const { data: branch } = await this.call("get branch", () => this.octokit.rest.repos.getBranch({ ...this.ctx, branch: base }));
      if (branch.commit.sha !== sha) {
        const { data: cmp } = await this.call("compare", () =>
          this.octokit.rest.repos.compareCommitsWithBasehead({ ...this.ctx, basehead: `${sha}...${branch.commit.sha}`, per_page: 1 }),
        );
        if (cmp.status !== "identical" && cmp.status !== "ahead")
          throw new ForgeError(
            "merge_unverified",
            `the forge reported pull request #${request.pullNumber} merged as ${sha.slice(0, 12)}, but ${base} (${branch.commit.sha.slice(0, 12)}) does not contain it`,
            { sha },
          );
      }
    } catch (err) {
      if (err instanceof ForgeError && err.code === "merge_unverified") throw err;
      throw new ForgeError(
        "merge_unverified",
        `the forge reported pull request #${request.pullNumber} merged as ${sha.slice(0, 12)}, but the base branch could not be checked: ${(err as Error).message}`,
        { sha },
      );
    }
    this.log.info({ pull: request.pullNumber, sha, method, base }, "forge: pull request merged");
    return { pullNumber: request.pullNumber, sha, method, base };
  }

  async hasWriteAccess(login: string, authorAssociation?: string): Promise<boolean> {
    if (authorAssociation === "OWNER") return true;
    const hit = this.writeCache.get(login);
    if (hit && hit.until > Date.now()) return hit.write;
    let write = false;
    try {
      const { data } = await this.octokit.rest.repos.getCollaboratorPermissionLevel({ ...this.ctx, username: login });
      write = data.permission === "admin" || data.permission === "write" || data.role_name === "maintain";
    } catch (err) {
      const e = toForgeError(err, "get collaborator permission");
      if (e.code !== "not_found") throw e;
    }
    this.writeCache.set(login, { write, until: Date.now() + 60_000 });
    return write;
  }

  /** The domain event of one review (null when it is not one the farm acts on). */
  async eventForReview(pullNumber: number, review: GitHubReviewLike): Promise<{ event?: ForgeEvent; ignored?: string }> {
    const state = review.state.toUpperCase();
    const by = review.user?.login ?? "ghost";
    if ((review.body ?? "").includes(FARM_MARKER)) return { ignored: "the farm's own review" };
    if (state !== "APPROVED" && state !== "CHANGES_REQUESTED" && state !== "COMMENTED")
      return { ignored: `a ${state.toLowerCase()} review` };
    if (!(await this.hasWriteAccess(by, review.author_association))) return { ignored: `${by} has no write access to ${this.repo}` };
    const base = {
      id: `review:${review.id}`,
      pullNumber,
      by,
      reviewId: review.id,
      commitSha: review.commit_id ?? "",
      at: review.submitted_at ?? new Date().toISOString(),
    };
    if (state === "APPROVED") return { event: { kind: "approved", ...base } };
    const comments = await this.call("list review comments", () =>
      this.octokit.paginate(this.octokit.rest.pulls.listCommentsForReview, {
        ...this.ctx,
        pull_number: pullNumber,
        review_id: review.id,
        per_page: 100,
      }),
    );
    const lines: LineComment[] = comments.map((c) => ({
      path: c.path,
      line: (c as { line?: number | null }).line ?? (c as { original_line?: number | null }).original_line ?? 0,
      body: c.body,
    }));
    if (state === "COMMENTED" && lines.length === 0 && !(review.body ?? "").trim()) return { ignored: "an empty comment review" };
    return {
      event: { kind: state === "CHANGES_REQUESTED" ? "changes_requested" : "commented", ...base, body: review.body ?? "", comments: lines },
    };
  }

  /** Whether a check run is the farm's own (never the team's CI). */
  isOwnCheck(run: Pick<GitHubCheckRunLike, "external_id" | "app" | "name">): boolean {
    if (run.external_id?.startsWith(FARM_EXTERNAL_ID_PREFIX) && run.name.startsWith(`${this.prefix}/`)) return true;
    return this.ownAppId !== undefined && run.app?.id === this.ownAppId;
  }

  /** The domain event of a failing check of the team's CI (none for a passing one or the farm's own). */
  async eventForCheckRun(
    run: GitHubCheckRunLike,
    pullNumbers?: number[],
    base?: string,
  ): Promise<{ event?: ForgeEvent; ignored?: string }> {
    if (this.isOwnCheck(run)) return { ignored: "the farm's own check" };
    if (run.status !== "completed" || !FAILING.has(run.conclusion ?? ""))
      return { ignored: `check '${run.name}' ${run.status} ${run.conclusion ?? ""}`.trim() };
    const pulls = pullNumbers ?? run.pull_requests.map((p) => p.number);
    const bases = base ? [base] : [...new Set(run.pull_requests.map((p) => p.base.ref))];
    let required = false;
    for (const b of bases) {
      const req = await this.requiredChecks(b);
      if (req.some((r) => r.context === run.name && (r.appId === null || r.appId === -1 || r.appId === run.app?.id))) required = true;
    }
    return {
      event: {
        kind: "check_failed",
        id: `check:${run.id}`,
        pullNumbers: pulls,
        sha: run.head_sha,
        name: run.name,
        checkRunId: run.id,
        conclusion: run.conclusion ?? "failure",
        required,
        title: run.output.title ?? "",
        summary: run.output.summary ?? "",
        text: run.output.text ?? "",
        url: run.html_url ?? "",
        at: run.completed_at ?? new Date().toISOString(),
      },
    };
  }

  /** The failing checks of the team's CI on a commit (optionally of one check suite). */
  async failingChecksOn(sha: string, pullNumbers: number[], base: string, suiteId?: number): Promise<ForgeActivity> {
    const out: ForgeActivity = { events: [], ignored: [] };
    for (const run of await this.checkRunsOn(sha)) {
      if (suiteId !== undefined && run.check_suite?.id !== suiteId) continue;
      const r = await this.eventForCheckRun(run, pullNumbers, base);
      if (r.event) out.events.push(r.event);
    }
    return out;
  }

  /** The close of a pull request without a merge, with who closed it. */
  closedEvent(pullNumber: number, by: { login: string; type?: string } | null | undefined, at: string | null | undefined): ForgeEvent {
    return {
      kind: "closed",
      id: `closed:${pullNumber}`,
      pullNumber,
      by: by?.login ?? "ghost",
      byBot: by?.type === "Bot",
      at: at ?? new Date().toISOString(),
    };
  }

  async readActivity(pullNumber: number): Promise<ForgeActivity> {
    const out: ForgeActivity = { events: [], ignored: [] };
    const { data: pr } = await this.call("get pull request", () => this.octokit.rest.pulls.get({ ...this.ctx, pull_number: pullNumber }));
    const reviews = await this.call("list reviews", () =>
      this.octokit.paginate(this.octokit.rest.pulls.listReviews, { ...this.ctx, pull_number: pullNumber, per_page: 100 }),
    );
    for (const review of reviews) {
      const r = await this.eventForReview(pullNumber, review as GitHubReviewLike);
      if (r.event) out.events.push(r.event);
      else if (r.ignored) out.ignored.push({ id: `review:${review.id}`, pullNumber, why: r.ignored });
    }
    const checks = await this.failingChecksOn(pr.head.sha, [pullNumber], pr.base.ref);
    out.events.push(...checks.events);
    if (pr.state === "closed" && !pr.merged) {
      const { data: issue } = await this.call("get issue", () => this.octokit.rest.issues.get({ ...this.ctx, issue_number: pullNumber }));
      out.events.push(this.closedEvent(pullNumber, issue.closed_by, pr.closed_at));
    }
    return out;
  }

  async deleteBranch(branch: string): Promise<void> {
    try {
      await this.octokit.rest.git.deleteRef({ ...this.ctx, ref: `heads/${branch}` });
    } catch (err) {
      const e = toForgeError(err, "delete branch");
      if (e.code === "not_found" || (e.code === "invalid" && /does not exist/i.test(e.message))) return;
      throw e;
    }
  }
}

/** An Octokit failure as a ForgeError, keeping the forge's message, status and request id. */
export function toForgeError(err: unknown, operation: string): ForgeError {
  if (err instanceof ForgeError) return err;
  const e = err as { status?: number; message?: string; response?: { headers?: Record<string, string | undefined>; data?: unknown } };
  const status = typeof e?.status === "number" ? e.status : undefined;
  const headers = e?.response?.headers ?? {};
  const data = e?.response?.data as
    { message?: string; errors?: ({ message?: string; code?: string; field?: string } | string)[] } | undefined;
  const details = (data?.errors ?? [])
    .map((x) => (typeof x === "string" ? x : (x.message ?? [x.code, x.field].filter(Boolean).join(" "))))
    .filter(Boolean);
  const forgeMessage = [typeof data?.message === "string" ? data.message : (e?.message ?? String(err)), ...details].join(": ");
  const requestId = headers["x-github-request-id"];
  const detail = { ...(status !== undefined ? { status } : {}), ...(requestId ? { requestId } : {}), forgeMessage, operation };
  const say = (what: string) => `forge ${operation}: ${what}${requestId ? ` (request ${requestId})` : ""}`;
  if (status === undefined || status >= 500)
    return new ForgeError("unavailable", say(`the forge could not be reached or failed: ${forgeMessage}`), detail);
  if (status === 401) return new ForgeError("unauthorized", say(`the token was refused: ${forgeMessage}`), detail);
  if (status === 429 || (status === 403 && (/rate limit/i.test(forgeMessage) || headers["x-ratelimit-remaining"] === "0"))) {
    const ra = Number(headers["retry-after"]);
    const reset = Number(headers["x-ratelimit-reset"]);
    const retryAfterMs =
      Number.isFinite(ra) && ra > 0 ? ra * 1000 : Number.isFinite(reset) && reset > 0 ? Math.max(0, reset * 1000 - Date.now()) : 60_000;
    return new ForgeError(
      "rate_limited",
      say(`rate limited for ${Math.ceil(retryAfterMs / 1000)} s more than the farm waits: ${forgeMessage}`),
      { ...detail, retryAfterMs },
    );
  }
  if (status === 403) return new ForgeError("forbidden", say(`the token may not do this: ${forgeMessage}`), detail);
  if (status === 404) return new ForgeError("not_found", say(`not found: ${forgeMessage}`), detail);
  if (status === 405) return new ForgeError("merge_refused", say(forgeMessage), detail);
  if (status === 409) return new ForgeError("head_moved", say(forgeMessage), detail);
  return new ForgeError("invalid", say(forgeMessage), detail);
}
