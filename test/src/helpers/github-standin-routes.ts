/**
 * The operations the GitHub stand-in implements, by GitHub's operationId, with GitHub's rules:
 * who may do what, what is refused with which status and message, and which webhooks follow.
 */
import { checkHandlers } from "./github-standin-checks.js";
import {
  DOCS,
  HttpError,
  commit,
  forbidden,
  invalid,
  needWrite,
  notFound,
  page,
  pull,
  resolveRef,
  type Reply,
  type RequestCtx,
} from "./github-standin-http.js";
import { commentJson, iso, reviewJson, webhookReviewJson, type StandinPull, type StandinReview } from "./github-standin-shapes.js";

export { HttpError, type Reply, type RequestCtx } from "./github-standin-http.js";

/** The hunk text GitHub shows with a line comment: the hunk up to and including the line. */
function diffHunkFor(hunk: { start: number; header: string; lines: string[] }, line: number): string {
  const out = [hunk.header];
  let n = hunk.start - 1;
  for (const l of hunk.lines) {
    out.push(l);
    if (!l.startsWith("-") && !l.startsWith("\\")) n++;
    if (n >= line) break;
  }
  return out.join("\n");
}

/** GitHub's (deprecated) diff position of a new-side line: lines below the file's first hunk header. */
function positionFor(hunks: { start: number; lines: string[] }[], line: number): number {
  let pos = 0;
  for (const [i, h] of hunks.entries()) {
    if (i > 0) pos++; // a later hunk's header counts as a line
    let n = h.start - 1;
    for (const l of h.lines) {
      pos++;
      if (!l.startsWith("-") && !l.startsWith("\\")) n++;
      if (n === line && !l.startsWith("-")) return pos;
    }
  }
  return 1;
}

export const handlers: Record<string, (ctx: RequestCtx) => Reply> = {
  ...checkHandlers,
  "pulls/list": (ctx) => {
    const { s, query } = ctx;
    const state = query.get("state") ?? "open";
    const head = query.get("head");
    const base = query.get("base");
    const items = s.pulls
      .filter((p) => state === "all" || p.state === state)
      .filter((p) => !head || `${s.repo.owner.login}:${p.head}` === head || (!head.includes(":") && p.head === head))
      .filter((p) => !base || p.base === base)
      .sort((a, b) => b.number - a.number);
    const pg = page(ctx, items);
    return { status: 200, body: pg.items.map((p) => s.pullJson(p, false, false)), headers: pg.headers };
  },

  "pulls/create": (ctx) => {
    const { s, body, user } = ctx;
    needWrite(ctx);
    const head = String(body.head).replace(new RegExp(`^${s.repo.owner.login}:`), "");
    const base = String(body.base);
    const headSha = s.git.branchSha(head);
    const baseSha = s.git.branchSha(base);
    if (!headSha) throw invalid("Validation Failed", [{ resource: "PullRequest", field: "head", code: "invalid" }]);
    if (!baseSha) throw invalid("Validation Failed", [{ resource: "PullRequest", field: "base", code: "invalid" }]);
    if (s.pulls.some((p) => p.state === "open" && p.head === head && p.base === base))
      throw invalid("Validation Failed", [
        { resource: "PullRequest", code: "custom", message: `A pull request already exists for ${s.repo.owner.login}:${head}.` },
      ]);
    if (s.git.isAncestor(headSha, baseSha))
      throw invalid("Validation Failed", [{ resource: "PullRequest", code: "custom", message: `No commits between ${base} and ${head}` }]);
    const now = Date.now();
    const p: StandinPull = {
      number: s.pulls.length + 1,
      id: s.id(),
      title: String(body.title ?? ""),
      body: typeof body.body === "string" ? body.body : null,
      head,
      base,
      user,
      state: "open",
      draft: Boolean(body.draft),
      createdAt: now,
      updatedAt: now,
      closedAt: null,
      closedBy: null,
      mergedAt: null,
      mergedBy: null,
      mergeCommitSha: null,
      frozenHeadSha: null,
      frozenBaseSha: null,
      maintainerCanModify: Boolean(body.maintainer_can_modify),
      mergeableFor: null,
    };
    s.pulls.push(p);
    // As on GitHub, a new pull request's mergeability is computed in the background after this answer.
    const json = s.pullJson(p, true, false);
    s.emit("pull_request", { action: "opened", number: p.number, pull_request: s.pullJson(p, true, false) }, user);
    return { status: 201, body: json, headers: { location: String(json.url) } };
  },

  "pulls/get": (ctx) => ({ status: 200, body: ctx.s.pullJson(pull(ctx), true) }),

  "pulls/update": (ctx) => {
    const { s, body, user } = ctx;
    const p = pull(ctx);
    if (!s.hasWrite(user) && p.user.login !== user.login) throw forbidden();
    if (typeof body.title === "string") p.title = body.title;
    if (typeof body.body === "string") p.body = body.body;
    if (typeof body.base === "string") {
      if (!s.git.branchSha(body.base)) throw invalid("Validation Failed", [{ resource: "PullRequest", field: "base", code: "invalid" }]);
      p.base = body.base;
    }
    let closed = false;
    if (body.state === "closed" && p.state === "open") {
      p.state = "closed";
      p.closedAt = Date.now();
      p.closedBy = user;
      p.frozenHeadSha = s.headSha(p);
      closed = true;
    } else if (body.state === "open" && p.state === "closed" && p.mergedAt === null) {
      p.state = "open";
      p.closedAt = null;
      p.closedBy = null;
      p.frozenHeadSha = null;
    }
    p.updatedAt = Date.now();
    if (closed) s.emit("pull_request", { action: "closed", number: p.number, pull_request: s.pullJson(p, true, false) }, user);
    return { status: 200, body: s.pullJson(p, true) };
  },

  "pulls/merge": (ctx) => {
    const { s, body, user } = ctx;
    const p = pull(ctx);
    needWrite(ctx);
    const head = s.headSha(p);
    if (p.state !== "open") throw new HttpError(405, { message: "Pull Request is not mergeable", documentation_url: DOCS });
    if (typeof body.sha === "string" && body.sha !== head)
      throw new HttpError(409, { message: "Head branch was modified. Review and try the merge again.", documentation_url: DOCS });
    const method = (body.merge_method ?? "merge") as "merge" | "squash" | "rebase";
    if (!s.repo.allow[method])
      throw new HttpError(405, {
        message: `${method === "merge" ? "Merge commits" : method === "squash" ? "Squash merges" : "Rebase merges"} are not allowed on this repository.`,
        documentation_url: DOCS,
      });
    const blocker = s.mergeBlocker(p);
    if (blocker) throw new HttpError(405, { message: blocker, documentation_url: DOCS });
    const base = s.baseSha(p);
    const title =
      typeof body.commit_title === "string"
        ? body.commit_title
        : method === "squash"
          ? `${p.title} (#${p.number})`
          : `Merge pull request #${p.number} from ${s.repo.owner.login}/${p.head}`;
    const message = typeof body.commit_message === "string" ? body.commit_message : method === "merge" ? p.title : "";
    const result = s.git.merge(method, base, head, title, message);
    if ("conflicts" in result) throw new HttpError(405, { message: "Pull Request is not mergeable", documentation_url: DOCS });
    s.git.updateBranch(p.base, result.sha, base, `merge pull request #${p.number}`);
    const now = Date.now();
    Object.assign(p, {
      state: "closed",
      closedAt: now,
      mergedAt: now,
      mergedBy: user,
      mergeCommitSha: result.sha,
      frozenHeadSha: head,
      frozenBaseSha: base,
      updatedAt: now,
    });
    s.emit("pull_request", { action: "closed", number: p.number, pull_request: s.pullJson(p, true, false) }, user);
    return { status: 200, body: { sha: result.sha, merged: true, message: "Pull Request successfully merged" } };
  },

  "pulls/create-review": (ctx) => {
    const { s, body, user } = ctx;
    const p = pull(ctx);
    if (user.permission === "none") throw forbidden();
    const event = body.event as string | undefined;
    if ((event === "APPROVE" || event === "REQUEST_CHANGES") && p.user.login === user.login)
      throw invalid("Unprocessable Entity", [`Can not ${event === "APPROVE" ? "approve" : "request changes on"} your own pull request`]);
    if ((event === "REQUEST_CHANGES" || event === "COMMENT") && !body.body && !(body.comments ?? []).length)
      throw invalid("Unprocessable Entity", ["Review body is required"]);
    const commitId = typeof body.commit_id === "string" ? body.commit_id : s.headSha(p);
    const hunks = s.git.diffHunks(s.baseSha(p), commitId);
    const comments = (body.comments ?? []) as { path: string; line?: number; body: string }[];
    const placed = comments.map((c) => {
      const h = (hunks.get(c.path) ?? []).find((x) => c.line !== undefined && c.line >= x.start && c.line <= x.end);
      if (!h) throw invalid("Unprocessable Entity", ["Line could not be resolved"]);
      return { ...c, hunk: diffHunkFor(h, c.line!), position: positionFor(hunks.get(c.path)!, c.line!) };
    });
    const state: StandinReview["state"] =
      event === "APPROVE" ? "APPROVED" : event === "REQUEST_CHANGES" ? "CHANGES_REQUESTED" : event === "COMMENT" ? "COMMENTED" : "PENDING";
    const review: StandinReview = {
      id: s.id(),
      pull: p.number,
      user,
      body: String(body.body ?? ""),
      state,
      commitId,
      submittedAt: Date.now(),
    };
    s.reviews.push(review);
    const made = placed.map((c) => ({
      id: s.id(),
      reviewId: review.id,
      pull: p.number,
      user,
      path: c.path,
      line: c.line!,
      position: c.position,
      body: c.body,
      commitId,
      diffHunk: c.hunk,
      createdAt: Date.now(),
    }));
    s.comments.push(...made);
    if (state !== "PENDING") {
      const assoc = s.association(user.login);
      for (const c of made)
        s.emit(
          "pull_request_review_comment",
          { action: "created", comment: commentJson(c, s.repoApi, s.repoWeb, s.urls, assoc), pull_request: s.pullJson(p, false, false) },
          user,
        );
      s.emit(
        "pull_request_review",
        {
          action: "submitted",
          review: webhookReviewJson(review, s.repoApi, s.repoWeb, s.urls, assoc),
          pull_request: s.pullJson(p, false, false),
        },
        user,
      );
    }
    return { status: 200, body: reviewJson(review, s.repoApi, s.repoWeb, s.urls, s.association(user.login)) };
  },

  "pulls/list-reviews": (ctx) => {
    const { s } = ctx;
    const p = pull(ctx);
    const pg = page(
      ctx,
      s.reviews.filter((r) => r.pull === p.number && r.state !== "PENDING"),
    );
    return {
      status: 200,
      body: pg.items.map((r) => reviewJson(r, s.repoApi, s.repoWeb, s.urls, s.association(r.user.login))),
      headers: pg.headers,
    };
  },

  "pulls/get-review": (ctx) => {
    const { s } = ctx;
    const p = pull(ctx);
    const r = s.reviews.find((x) => x.pull === p.number && x.id === Number(ctx.params.review_id));
    if (!r) throw notFound();
    return { status: 200, body: reviewJson(r, s.repoApi, s.repoWeb, s.urls, s.association(r.user.login)) };
  },

  "pulls/list-comments-for-review": (ctx) => {
    const { s } = ctx;
    const p = pull(ctx);
    const r = s.reviews.find((x) => x.pull === p.number && x.id === Number(ctx.params.review_id));
    if (!r) throw notFound();
    const pg = page(
      ctx,
      s.comments.filter((c) => c.reviewId === r.id),
    );
    return {
      status: 200,
      body: pg.items.map((c) => commentJson(c, s.repoApi, s.repoWeb, s.urls, s.association(c.user.login))),
      headers: pg.headers,
    };
  },

  "repos/get-branch": (ctx) => {
    const { s } = ctx;
    const branch = ctx.params.branch!;
    const sha = s.git.branchSha(branch);
    if (!sha) throw new HttpError(404, { message: "Branch not found", documentation_url: DOCS, status: "404" });
    const prot = s.protection.get(branch);
    const api = `${s.repoApi}/branches/${encodeURIComponent(branch)}`;
    return {
      status: 200,
      body: {
        name: branch,
        commit: commit(s, sha),
        _links: { self: api, html: `${s.repoWeb}/tree/${branch}` },
        protected: Boolean(prot),
        protection: prot
          ? {
              enabled: true,
              required_status_checks: {
                enforcement_level: "non_admins",
                contexts: prot.requiredChecks.map((c) => c.context),
                checks: prot.requiredChecks.map((c) => ({ context: c.context, app_id: c.appId })),
              },
            }
          : { enabled: false, required_status_checks: { enforcement_level: "off", contexts: [], checks: [] } },
        protection_url: `${api}/protection`,
        ...(prot?.requiredApprovals ? { required_approving_review_count: prot.requiredApprovals } : {}),
      },
    };
  },

  "repos/compare-commits": (ctx) => {
    const { s } = ctx;
    const m = /^(.+?)\.\.\.(.+)$/.exec(ctx.params.basehead!);
    if (!m) throw notFound();
    const a = resolveRef(s, m[1]!);
    const b = resolveRef(s, m[2]!);
    const mb = s.git.mergeBase(a, b);
    const ahead = s.git.commitsBetween(a, b);
    const behind = s.git.commitsBetween(b, a);
    const status = a === b ? "identical" : behind.length === 0 ? "ahead" : ahead.length === 0 ? "behind" : "diverged";
    const pg = page(ctx, ahead);
    return {
      status: 200,
      body: {
        url: `${s.repoApi}/compare/${m[1]}...${m[2]}`,
        html_url: `${s.repoWeb}/compare/${m[1]}...${m[2]}`,
        permalink_url: `${s.repoWeb}/compare/${s.repo.owner.login}:${a.slice(0, 7)}...${s.repo.owner.login}:${b.slice(0, 7)}`,
        diff_url: `${s.repoWeb}/compare/${m[1]}...${m[2]}.diff`,
        patch_url: `${s.repoWeb}/compare/${m[1]}...${m[2]}.patch`,
        base_commit: commit(s, a),
        merge_base_commit: commit(s, mb),
        status,
        ahead_by: ahead.length,
        behind_by: behind.length,
        total_commits: ahead.length,
        commits: pg.items.map((c) => commit(s, c)),
        files: [],
      },
      headers: pg.headers,
    };
  },

  "repos/get-collaborator-permission-level": (ctx) => {
    const { s } = ctx;
    const u = s.user(ctx.params.username!);
    if (!u || u.type === "Organization") throw notFound();
    const permission = u.permission === "maintain" ? "write" : u.permission === "triage" ? "read" : u.permission;
    return {
      status: 200,
      body: {
        permission,
        role_name: u.permission === "none" ? "none" : u.permission,
        user: {
          ...s.userJson(u),
          role_name: u.permission,
          permissions: {
            admin: u.permission === "admin",
            maintain: ["admin", "maintain"].includes(u.permission),
            push: s.hasWrite(u),
            triage: u.permission !== "read" && u.permission !== "none",
            pull: u.permission !== "none",
          },
        },
      },
    };
  },

  "issues/get": (ctx) => {
    const { s } = ctx;
    const p = s.pulls.find((x) => x.number === Number(ctx.params.issue_number));
    if (!p) throw notFound();
    const api = `${s.repoApi}/issues/${p.number}`;
    return {
      status: 200,
      body: {
        id: p.id + 1,
        node_id: Buffer.from(`05:Issue${p.id + 1}`).toString("base64"),
        url: api,
        repository_url: s.repoApi,
        labels_url: `${api}/labels{/name}`,
        comments_url: `${api}/comments`,
        events_url: `${api}/events`,
        html_url: `${s.repoWeb}/pull/${p.number}`,
        number: p.number,
        state: p.state,
        state_reason: p.state === "closed" && p.mergedAt === null ? "not_planned" : null,
        title: p.title,
        body: p.body,
        user: s.userJson(p.user),
        labels: [],
        assignee: null,
        assignees: [],
        milestone: null,
        locked: false,
        active_lock_reason: null,
        comments: 0,
        pull_request: {
          url: `${s.repoApi}/pulls/${p.number}`,
          html_url: `${s.repoWeb}/pull/${p.number}`,
          diff_url: `${s.repoWeb}/pull/${p.number}.diff`,
          patch_url: `${s.repoWeb}/pull/${p.number}.patch`,
          merged_at: p.mergedAt === null ? null : iso(p.mergedAt),
        },
        closed_at: p.closedAt === null ? null : iso(p.closedAt),
        created_at: iso(p.createdAt),
        updated_at: iso(p.updatedAt),
        closed_by: p.state === "closed" ? s.userJson(p.mergedBy ?? p.closedBy ?? p.user) : null,
        author_association: s.association(p.user.login),
      },
    };
  },

  "git/delete-ref": (ctx) => {
    const { s } = ctx;
    needWrite(ctx);
    const ref = ctx.params.ref!;
    const m = /^heads\/(.+)$/.exec(ref);
    const sha = m ? s.git.branchSha(m[1]!) : undefined;
    if (!m || !sha) throw invalid("Reference does not exist");
    s.git.deleteBranch(m[1]!, sha);
    return { status: 204 };
  },
};
