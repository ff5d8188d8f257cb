/**
 * A loopback stand-in for GitHub's REST API (github.com cannot be reached from the test machines),
 * for exactly the endpoints the farm's forge layer uses, driven by the real `@octokit/rest`.
 *
 * - Every request it receives and every response it sends is validated against GitHub's official
 *   OpenAPI description (`@octokit/openapi`, api.github.com): an unknown operation, a parameter or
 *   body the description does not allow, or a response that does not match, is a *violation*. The
 *   request is answered 422 (request) or 500 (response) and `violations` lists it, so a test fails
 *   and the stand-in cannot drift from GitHub. Webhook payloads are validated against the
 *   description's `x-webhooks` too.
 * - State is in memory (pulls, reviews, comments, check runs, statuses, protection), except the
 *   branches: those are the real git repository it is pointed at. A merge through the API writes a
 *   real merge commit there with git plumbing (compare-and-swap on the base tip).
 * - GitHub's headers on every answer (`x-github-request-id`, `x-ratelimit-*`,
 *   `x-github-api-version-selected`), its error bodies, lazy mergeability (`mergeable: null` on
 *   the first read after a change), 405/409/422 on merges, and scripted primary/secondary rate
 *   limits (403/429 with `retry-after` and the documented message).
 * - Signed webhook deliveries (`x-hub-signature-256`, HMAC SHA-256) to registered URLs.
 */
import { createHmac, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { StandinGit } from "./github-standin-git.js";
import { openApiJudge, type MatchedRoute } from "./github-standin-openapi.js";
import { handlers, HttpError, type Reply, type RequestCtx } from "./github-standin-routes.js";
import {
  userJson,
  repoJson,
  pullJson,
  type RepoInfo,
  type StandinCheckRun,
  type StandinComment,
  type StandinPull,
  type StandinReview,
  type StandinUser,
  type Urls,
} from "./github-standin-shapes.js";

export type { StandinUser } from "./github-standin-shapes.js";

/** A rate limit scripted for the next matching request. */
export interface ScriptedLimit {
  /** the operation it hits (e.g. "pulls/create"); any when absent */
  operationId?: string;
  kind: "secondary" | "primary";
  /** 403 (GitHub's usual) or 429 */
  status?: 403 | 429;
  /** secondary: the `retry-after` header; primary: seconds until `x-ratelimit-reset` */
  retryAfterSeconds: number;
}

export interface StandinRecord {
  at: number;
  method: string;
  path: string;
  operationId: string | undefined;
  login: string | undefined;
  status: number;
  body: unknown;
}

export interface Delivery {
  id: string;
  event: string;
  action: string | undefined;
  url: string;
  status: number | null;
  error?: string;
}

export interface Protection {
  requiredChecks: { context: string; appId: number | null }[];
  requiredApprovals: number;
}

export interface GitHubStandinOptions {
  /** the real git repository whose branches the stand-in serves */
  repoDir: string;
  owner?: string;
  name?: string;
  defaultBranch?: string;
  /** users and apps, with their tokens */
  users: (Omit<StandinUser, "id"> & { token?: string; email?: string })[];
}

const DOCS = "https://docs.github.com/rest";

export class GitHubStandin {
  readonly git: StandinGit;
  readonly judge = openApiJudge();
  readonly violations: string[] = [];
  readonly requests: StandinRecord[] = [];
  readonly deliveries: Delivery[] = [];
  readonly users = new Map<string, StandinUser>();
  readonly emails = new Map<string, StandinUser>();
  readonly tokens = new Map<string, string>();
  readonly repo: RepoInfo;
  readonly pulls: StandinPull[] = [];
  readonly reviews: StandinReview[] = [];
  readonly comments: StandinComment[] = [];
  readonly checkRuns: StandinCheckRun[] = [];
  readonly statuses: {
    sha: string;
    context: string;
    state: "error" | "failure" | "pending" | "success";
    description: string;
    id: number;
    at: number;
  }[] = [];
  readonly protection = new Map<string, Protection>();
  readonly hooks: { url: string; secret: string; events: string[] }[] = [];
  readonly limits: ScriptedLimit[] = [];
  private readonly rate = new Map<string, { used: number; reset: number; blockedUntil: number }>();
  private nextId = 1000;
  private server: Server | undefined;
  private pendingDeliveries = new Set<Promise<void>>();
  url = "";
  urls: Urls = { api: "", web: "" };

  constructor(opts: GitHubStandinOptions) {
    this.git = new StandinGit(opts.repoDir);
    for (const u of opts.users) {
      const user: StandinUser = { login: u.login, type: u.type, permission: u.permission, id: this.id(), ...(u.app ? { app: u.app } : {}) };
      this.users.set(u.login, user);
      if (u.email) this.emails.set(u.email, user);
      if (u.token) this.tokens.set(u.token, u.login);
    }
    const ownerLogin = opts.owner ?? "acme";
    const owner = this.users.get(ownerLogin) ?? {
      login: ownerLogin,
      id: this.id(),
      type: "Organization" as const,
      permission: "none" as const,
    };
    this.repo = {
      id: this.id(),
      owner,
      name: opts.name ?? "widgets",
      defaultBranch: opts.defaultBranch ?? "main",
      createdAt: Date.now() - 86_400_000,
      allow: { merge: true, squash: true, rebase: true },
    };
  }

  id(): number {
    return this.nextId++;
  }

  get fullName(): string {
    return `${this.repo.owner.login}/${this.repo.name}`;
  }
  get repoApi(): string {
    return `${this.urls.api}/repos/${this.fullName}`;
  }
  get repoWeb(): string {
    return `${this.urls.web}/${this.fullName}`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve));
    const port = (this.server.address() as AddressInfo).port;
    this.url = `http://127.0.0.1:${port}`;
    this.urls = { api: this.url, web: `http://127.0.0.1:${port}` };
    return this;
  }

  async stop(): Promise<void> {
    await this.deliveriesIdle();
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    // Octokit's fetch keeps connections alive: end them, or close() would wait for them.
    server.closeAllConnections();
    await closed;
  }

  // ---- test-side controls (what a person, the team's CI or GitHub's settings would do) ----

  protect(branch: string, p: Partial<Protection>): void {
    this.protection.set(branch, { requiredChecks: p.requiredChecks ?? [], requiredApprovals: p.requiredApprovals ?? 0 });
  }

  addWebhook(
    url: string,
    secret: string,
    events = ["pull_request", "pull_request_review", "pull_request_review_comment", "check_run", "check_suite"],
  ): void {
    this.hooks.push({ url, secret, events });
  }

  scriptLimit(limit: ScriptedLimit): void {
    this.limits.push(limit);
  }

  /** Fails the calling test when a request or response did not match GitHub's description. */
  assertNoViolations(): void {
    if (this.violations.length)
      throw new Error(
        `the GitHub stand-in saw ${this.violations.length} violation(s) of GitHub's OpenAPI description:\n- ${this.violations.join("\n- ")}`,
      );
  }

  async deliveriesIdle(): Promise<void> {
    while (this.pendingDeliveries.size) await Promise.allSettled([...this.pendingDeliveries]);
  }

  // ---- state views used by the routes ----

  user(login: string): StandinUser | undefined {
    return this.users.get(login);
  }

  association(login: string): string {
    if (login === this.repo.owner.login) return "OWNER";
    const u = this.users.get(login);
    if (!u || u.permission === "none") return "NONE";
    return this.repo.owner.type === "Organization" && u.type === "User" && u.permission !== "read" ? "MEMBER" : "COLLABORATOR";
  }

  hasWrite(u: StandinUser): boolean {
    return u.permission === "admin" || u.permission === "maintain" || u.permission === "write";
  }

  repoJson(): Record<string, unknown> {
    const tip = this.git.branchSha(this.repo.defaultBranch);
    const pushed = tip ? Date.parse(this.git.commit(tip).committerDate) : this.repo.createdAt;
    return repoJson(this.repo, this.urls, pushed);
  }

  userJson(u: StandinUser): Record<string, unknown> {
    return userJson(u, this.urls);
  }

  headSha(p: StandinPull): string {
    return p.frozenHeadSha ?? this.git.branchSha(p.head) ?? "0".repeat(40);
  }

  baseSha(p: StandinPull): string {
    return p.frozenBaseSha ?? this.git.branchSha(p.base) ?? "0".repeat(40);
  }

  /** The required checks of `branch` on `sha`: each with its state. */
  requiredCheckStates(branch: string, sha: string): { context: string; state: "success" | "failure" | "pending" | "expected" }[] {
    const prot = this.protection.get(branch);
    if (!prot) return [];
    return prot.requiredChecks.map(({ context, appId }) => {
      const run = this.checkRuns
        .filter((c) => c.headSha === sha && c.name === context && (appId === null || c.app.id === appId))
        .sort((a, b) => b.id - a.id)[0];
      if (run)
        return {
          context,
          state:
            run.status !== "completed"
              ? "pending"
              : ["success", "neutral", "skipped"].includes(run.conclusion ?? "")
                ? "success"
                : "failure",
        };
      const st = this.statuses.filter((s) => s.sha === sha && s.context === context).sort((a, b) => b.id - a.id)[0];
      if (st) return { context, state: st.state === "success" ? "success" : st.state === "pending" ? "pending" : "failure" };
      return { context, state: "expected" };
    });
  }

  /** Approvals that count for branch protection: the latest review of each user with write access, on the head. */
  approvals(p: StandinPull): number {
    const latest = new Map<string, StandinReview>();
    for (const r of this.reviews.filter((r) => r.pull === p.number && r.state !== "PENDING" && r.state !== "COMMENTED"))
      latest.set(r.user.login, r);
    return [...latest.values()].filter((r) => r.state === "APPROVED" && this.hasWrite(r.user) && r.commitId === this.headSha(p)).length;
  }

  /** Why GitHub would refuse to merge now (405 message), or undefined. */
  mergeBlocker(p: StandinPull): string | undefined {
    const head = this.headSha(p);
    const base = this.baseSha(p);
    if (p.state !== "open") return "Pull Request is not mergeable";
    if (p.draft) return "Pull Request is still a draft";
    if ("conflicts" in this.git.mergeTree(base, head)) return "Pull Request is not mergeable";
    const bad = this.requiredCheckStates(p.base, head).filter((c) => c.state !== "success");
    if (bad.length === 1) return `Required status check "${bad[0]!.context}" is ${bad[0]!.state === "failure" ? "failing" : "expected"}.`;
    if (bad.length > 1)
      return `${bad.length} of ${this.protection.get(p.base)!.requiredChecks.length} required status checks are ${bad.some((b) => b.state === "failure") ? "failing" : "expected"}.`;
    const need = this.protection.get(p.base)?.requiredApprovals ?? 0;
    if (this.approvals(p) < need)
      return `At least ${need} approving review${need > 1 ? "s are" : " is"} required by reviewers with write access.`;
    return undefined;
  }

  /** mergeable and mergeable_state, computed lazily as GitHub does (null on the first read after a change). */
  mergeability(p: StandinPull, reading: boolean): { mergeable: boolean | null; state: string } {
    if (p.state !== "open") return { mergeable: null, state: "unknown" };
    const head = this.headSha(p);
    const base = this.baseSha(p);
    const key = `${head}:${base}`;
    if (p.mergeableFor !== key) {
      if (reading) p.mergeableFor = key;
      return { mergeable: null, state: "unknown" };
    }
    if ("conflicts" in this.git.mergeTree(base, head)) return { mergeable: false, state: "dirty" };
    if (p.draft) return { mergeable: true, state: "draft" };
    if (this.mergeBlocker(p)) return { mergeable: true, state: "blocked" };
    const failing = this.checkRuns.some(
      (c) => c.headSha === head && c.status === "completed" && !["success", "neutral", "skipped"].includes(c.conclusion ?? ""),
    );
    return { mergeable: true, state: failing ? "unstable" : "clean" };
  }

  pullJson(p: StandinPull, full: boolean, reading = true): Record<string, unknown> {
    const headSha = this.headSha(p);
    const baseSha = this.baseSha(p);
    const m = this.mergeability(p, reading);
    let stat = { additions: 0, deletions: 0, files: 0 };
    let commits = 0;
    try {
      stat = this.git.diffStat(baseSha, headSha);
      commits = this.git.commitsBetween(this.git.mergeBase(baseSha, headSha), headSha).length;
    } catch {
      // a branch gone: no diff
    }
    return pullJson(
      p,
      {
        headSha,
        baseSha,
        mergeable: m.mergeable,
        mergeableState: m.state,
        comments: 0,
        reviewComments: this.comments.filter((c) => c.pull === p.number).length,
        commits,
        additions: stat.additions,
        deletions: stat.deletions,
        changedFiles: stat.files,
        association: this.association(p.user.login),
      },
      this.repoJson(),
      this.urls,
      full,
    );
  }

  // ---- webhooks ----

  /** Sends `event` to every hook subscribed to it, signed with the hook's secret, after validating it. */
  emit(event: string, payload: Record<string, unknown>, sender: StandinUser): void {
    const body: Record<string, unknown> = { ...payload, repository: this.repoJson(), sender: this.userJson(sender) };
    const key = `${event.replace(/_/g, "-")}${typeof body.action === "string" ? `-${body.action.replace(/_/g, "-")}` : ""}`;
    for (const hook of this.hooks.filter((h) => h.events.includes(event))) {
      const id = randomUUID();
      const raw = JSON.stringify(body);
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "GitHub-Hookshot/standin",
        "x-github-event": event,
        "x-github-delivery": id,
        "x-github-hook-id": "1",
        "x-github-hook-installation-target-id": String(this.repo.id),
        "x-github-hook-installation-target-type": "repository",
        "x-hub-signature-256": `sha256=${createHmac("sha256", hook.secret).update(raw).digest("hex")}`,
        "x-hub-signature": `sha1=${createHmac("sha1", hook.secret).update(raw).digest("hex")}`,
      };
      const bad = this.judge.validateWebhook(key, headers, body);
      if (bad.length) {
        this.violations.push(...bad);
        continue;
      }
      const d: Delivery = { id, event, action: typeof body.action === "string" ? body.action : undefined, url: hook.url, status: null };
      this.deliveries.push(d);
      const p = this.post(hook.url, headers, raw).then(
        (status) => void (d.status = status),
        (err: Error) => void (d.error = err.message),
      );
      this.pendingDeliveries.add(p);
      void p.finally(() => this.pendingDeliveries.delete(p));
    }
  }

  /** Posts a delivery as GitHub does; returns the HTTP status. Tests use it for forged deliveries too. */
  async post(url: string, headers: Record<string, string>, raw: string): Promise<number> {
    const res = await fetch(url, { method: "POST", headers, body: raw });
    await res.arrayBuffer();
    return res.status;
  }

  // ---- HTTP ----

  private rateFor(login: string) {
    let r = this.rate.get(login);
    const now = Math.floor(Date.now() / 1000);
    if (!r || r.reset <= now) {
      r = { used: 0, reset: now + 3600, blockedUntil: 0 };
      this.rate.set(login, r);
    }
    return r;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", this.url);
    const method = req.method ?? "GET";
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = undefined;
    }
    const match = this.judge.match(method, url.pathname);
    const auth = String(req.headers.authorization ?? "");
    const token = /^(?:token|bearer)\s+(.+)$/i.exec(auth)?.[1];
    const login = token ? this.tokens.get(token) : undefined;
    const rate = this.rateFor(login ?? `ip:${req.socket.remoteAddress}`);
    const reqId = `${randomUUID().slice(0, 4).toUpperCase()}:${randomUUID().slice(0, 5).toUpperCase()}:${this.nextId.toString(16).toUpperCase()}:${Date.now().toString(16).toUpperCase()}`;
    // `judged: false`: the stand-in's own refusal of a request that strays from the description
    // (already a violation), not an answer of GitHub's to validate.
    const send = (reply: Reply, judged = true) => {
      rate.used++;
      const headers: Record<string, string> = {
        "content-type": "application/json; charset=utf-8",
        "x-github-request-id": reqId,
        "x-github-api-version-selected": "2022-11-28",
        "x-github-media-type": "github.v3; format=json",
        "x-ratelimit-limit": "5000",
        "x-ratelimit-remaining": String(Math.max(0, 5000 - rate.used)),
        "x-ratelimit-reset": String(rate.reset),
        "x-ratelimit-used": String(rate.used),
        "x-ratelimit-resource": "core",
        ...(reply.headers ?? {}),
      };
      if (match && judged) {
        const bad = this.judge.validateResponse(match, reply.status, headers, reply.body);
        if (bad.length) {
          this.violations.push(...bad);
          reply = { status: 500, body: { message: `the stand-in's response violates GitHub's OpenAPI description: ${bad.join("; ")}` } };
        }
      }
      this.requests.push({
        at: Date.now(),
        method,
        path: url.pathname,
        operationId: match?.op.operationId,
        login,
        status: reply.status,
        body,
      });
      if (reply.status === 204 || reply.body === undefined) {
        delete headers["content-type"];
        res.writeHead(reply.status, headers);
        res.end();
      } else {
        res.writeHead(reply.status, headers);
        res.end(JSON.stringify(reply.body));
      }
    };
    if (!match) {
      this.violations.push(`${method} ${url.pathname}: no operation of GitHub's description matches`);
      return send({ status: 404, body: { message: "Not Found", documentation_url: DOCS, status: "404" } }, false);
    }
    const badRequest = this.judge.validateRequest(match, url.searchParams, req.headers, body, raw);
    if (badRequest.length) {
      this.violations.push(...badRequest);
      return send(
        {
          status: 422,
          body: {
            message: `Invalid request: the stand-in found it strays from GitHub's description: ${badRequest.join("; ")}`,
            documentation_url: DOCS,
            status: "422",
          },
        },
        false,
      );
    }
    if (!login)
      return send({
        status: 401,
        body: { message: token ? "Bad credentials" : "Requires authentication", documentation_url: DOCS, status: "401" },
      });
    // Rate limits, as GitHub answers them.
    const limit = this.limits.findIndex((l) => !l.operationId || l.operationId === match.op.operationId);
    if (limit >= 0) {
      const l = this.limits.splice(limit, 1)[0]!;
      const status = l.status ?? 403;
      if (l.kind === "secondary") {
        return send({
          status,
          headers: { "retry-after": String(l.retryAfterSeconds) },
          body: {
            message: `You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID ${reqId}.`,
            documentation_url:
              "https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            status: String(status),
          },
        });
      }
      rate.blockedUntil = Math.floor(Date.now() / 1000) + l.retryAfterSeconds;
    }
    if (rate.blockedUntil * 1000 > Date.now()) {
      rate.reset = rate.blockedUntil;
      rate.used = 5000;
      return send({
        status: 403,
        body: {
          message: `API rate limit exceeded for user ID ${this.users.get(login)!.id}.`,
          documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
          status: "403",
        },
      });
    }
    const handler = handlers[match.op.operationId];
    if (!handler) {
      this.violations.push(`${match.op.operationId}: the stand-in does not implement it (the forge layer should not call it)`);
      return send({ status: 404, body: { message: "Not Found", documentation_url: DOCS, status: "404" } });
    }
    if (
      match.params.owner?.toLowerCase() !== this.repo.owner.login.toLowerCase() ||
      match.params.repo?.toLowerCase() !== this.repo.name.toLowerCase()
    )
      return send({ status: 404, body: { message: "Not Found", documentation_url: DOCS, status: "404" } });
    const ctx: RequestCtx = {
      s: this,
      params: match.params,
      query: url.searchParams,
      body: (body ?? {}) as Record<string, any>,
      user: this.users.get(login)!,
      url,
    };
    try {
      send(handler(ctx));
    } catch (err) {
      if (err instanceof HttpError) send({ status: err.status, body: err.body });
      else {
        this.violations.push(`${match.op.operationId}: the stand-in failed: ${(err as Error).stack ?? String(err)}`);
        send({ status: 500, body: { message: `the stand-in failed: ${(err as Error).message}`, documentation_url: DOCS } }, false);
      }
    }
  }
}

export type { MatchedRoute };
