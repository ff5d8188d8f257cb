/**
 * The GitHub stand-in's check runs and commit statuses: created only by GitHub Apps, updated only by
 * their app, listed per ref (latest per name), with `check_run` and `check_suite` webhooks.
 */
import type { GitHubStandin } from "./github-standin.js";
import { forbidden, invalid, notFound, page, resolveRef, type Reply, type RequestCtx, needWrite } from "./github-standin-http.js";
import { appJson, checkRunJson, iso, type StandinCheckRun } from "./github-standin-shapes.js";

function pullsOf(s: GitHubStandin, sha: string) {
  return s.pulls
    .filter((p) => p.state === "open" && s.headSha(p) === sha)
    .map((p) => ({ number: p.number, id: p.id, head: p.head, headSha: s.headSha(p), base: p.base, baseSha: s.baseSha(p) }));
}

function checkJson(s: GitHubStandin, c: StandinCheckRun) {
  return checkRunJson(c, s.repoApi, s.repoWeb, s.urls, pullsOf(s, c.headSha), s.repo.id);
}

function emitCheck(s: GitHubStandin, c: StandinCheckRun, action: "created" | "completed") {
  s.emit("check_run", { action, check_run: checkJson(s, c) }, c.appOwner);
  if (action !== "completed") return;
  const suite = s.checkRuns.filter((x) => x.suiteId === c.suiteId);
  if (suite.some((x) => x.status !== "completed")) return;
  const failing = suite.find((x) => !["success", "neutral", "skipped"].includes(x.conclusion ?? ""));
  const head = s.git.commit(c.headSha);
  const branch = s.pulls.find((p) => s.headSha(p) === c.headSha)?.head ?? null;
  s.emit(
    "check_suite",
    {
      action: "completed",
      check_suite: {
        id: c.suiteId,
        node_id: Buffer.from(`010:CheckSuite${c.suiteId}`).toString("base64"),
        head_branch: branch,
        head_sha: c.headSha,
        status: "completed",
        conclusion: failing ? failing.conclusion : "success",
        url: `${s.repoApi}/check-suites/${c.suiteId}`,
        before: head.parents[0] ?? null,
        after: c.headSha,
        pull_requests: pullsOf(s, c.headSha).map((p) => ({
          url: `${s.repoApi}/pulls/${p.number}`,
          id: p.id,
          number: p.number,
          head: { ref: p.head, sha: p.headSha, repo: { id: s.repo.id, url: s.repoApi, name: s.repo.name } },
          base: { ref: p.base, sha: p.baseSha, repo: { id: s.repo.id, url: s.repoApi, name: s.repo.name } },
        })),
        app: appJson(c.app, c.appOwner, s.urls),
        created_at: iso(c.startedAt),
        updated_at: iso(c.completedAt ?? Date.now()),
        rerequestable: true,
        runs_rerequestable: true,
        latest_check_runs_count: suite.length,
        check_runs_url: `${s.repoApi}/check-suites/${c.suiteId}/check-runs`,
        head_commit: {
          id: head.sha,
          tree_id: head.tree,
          message: head.message,
          timestamp: iso(Date.parse(head.committerDate)),
          author: { name: head.authorName, email: head.authorEmail },
          committer: { name: head.committerName, email: head.committerEmail },
        },
      },
    },
    c.appOwner,
  );
}

export const checkHandlers: Record<string, (ctx: RequestCtx) => Reply> = {
  "checks/create": (ctx) => {
    const { s, body, user } = ctx;
    if (!user.app) throw forbidden("You must authenticate via a GitHub App.");
    needWrite(ctx);
    const now = Date.now();
    const sha = String(body.head_sha);
    try {
      s.git.commit(sha);
    } catch {
      throw invalid("Validation Failed", [{ resource: "CheckRun", field: "head_sha", code: "invalid" }]);
    }
    const suite = s.checkRuns.find((c) => c.headSha === sha && c.app.id === user.app!.id)?.suiteId ?? s.id();
    const conclusion = typeof body.conclusion === "string" ? body.conclusion : null;
    const status = conclusion ? "completed" : ((body.status ?? "queued") as StandinCheckRun["status"]);
    if (status === "completed" && !conclusion) throw invalid("Invalid request.\n\nconclusion is required when status is completed.");
    const run: StandinCheckRun = {
      id: s.id(),
      suiteId: suite,
      app: user.app,
      appOwner: user,
      name: String(body.name),
      headSha: sha,
      status,
      conclusion,
      startedAt: body.started_at ? Date.parse(body.started_at) : now,
      completedAt: status === "completed" ? (body.completed_at ? Date.parse(body.completed_at) : now) : null,
      externalId: String(body.external_id ?? ""),
      detailsUrl: String(body.details_url ?? `${s.repoWeb}/runs/0`),
      output: { title: body.output?.title ?? null, summary: body.output?.summary ?? null, text: body.output?.text ?? null },
    };
    run.detailsUrl = body.details_url ?? `${s.repoWeb}/runs/${run.id}`;
    s.checkRuns.push(run);
    emitCheck(s, run, "created");
    if (status === "completed") emitCheck(s, run, "completed");
    return { status: 201, body: checkJson(s, run) };
  },

  "checks/update": (ctx) => {
    const { s, body, user } = ctx;
    const run = s.checkRuns.find((c) => c.id === Number(ctx.params.check_run_id));
    if (!run) throw notFound();
    if (!user.app || user.app.id !== run.app.id) throw forbidden();
    const wasDone = run.status === "completed";
    if (typeof body.name === "string") run.name = body.name;
    if (typeof body.status === "string") run.status = body.status as StandinCheckRun["status"];
    if (typeof body.conclusion === "string") {
      run.conclusion = body.conclusion;
      run.status = "completed";
    }
    if (run.status === "completed" && !run.conclusion)
      throw invalid("Invalid request.\n\nconclusion is required when status is completed.");
    if (run.status === "completed" && run.completedAt === null)
      run.completedAt = body.completed_at ? Date.parse(body.completed_at) : Date.now();
    if (body.output)
      run.output = {
        title: body.output.title ?? run.output.title,
        summary: body.output.summary ?? run.output.summary,
        text: body.output.text ?? run.output.text,
      };
    if (typeof body.details_url === "string") run.detailsUrl = body.details_url;
    if (typeof body.external_id === "string") run.externalId = body.external_id;
    if (!wasDone && run.status === "completed") emitCheck(s, run, "completed");
    return { status: 200, body: checkJson(s, run) };
  },

  "checks/list-for-ref": (ctx) => {
    const { s, query } = ctx;
    const sha = resolveRef(s, ctx.params.ref!);
    let runs = s.checkRuns.filter((c) => c.headSha === sha);
    if (query.get("check_name")) runs = runs.filter((c) => c.name === query.get("check_name"));
    if (query.get("status")) runs = runs.filter((c) => c.status === query.get("status"));
    if (query.get("app_id")) runs = runs.filter((c) => c.app.id === Number(query.get("app_id")));
    if ((query.get("filter") ?? "latest") === "latest") {
      const latest = new Map<string, StandinCheckRun>();
      for (const c of runs) if ((latest.get(`${c.app.id}:${c.name}`)?.id ?? 0) < c.id) latest.set(`${c.app.id}:${c.name}`, c);
      runs = [...latest.values()];
    }
    runs.sort((a, b) => b.id - a.id);
    const pg = page(ctx, runs);
    return { status: 200, body: { total_count: runs.length, check_runs: pg.items.map((c) => checkJson(s, c)) }, headers: pg.headers };
  },

  "repos/get-combined-status-for-ref": (ctx) => {
    const { s } = ctx;
    const sha = resolveRef(s, ctx.params.ref!);
    const latest = new Map<string, (typeof s.statuses)[number]>();
    for (const st of s.statuses.filter((x) => x.sha === sha)) if ((latest.get(st.context)?.id ?? 0) < st.id) latest.set(st.context, st);
    const list = [...latest.values()];
    const state = list.some((x) => x.state === "error" || x.state === "failure")
      ? "failure"
      : list.length && list.every((x) => x.state === "success")
        ? "success"
        : "pending";
    return {
      status: 200,
      body: {
        state,
        sha,
        total_count: list.length,
        statuses: list.map((x) => ({
          url: `${s.repoApi}/statuses/${sha}`,
          avatar_url: null,
          id: x.id,
          node_id: Buffer.from(`012:StatusContext${x.id}`).toString("base64"),
          state: x.state,
          description: x.description,
          target_url: null,
          context: x.context,
          created_at: iso(x.at),
          updated_at: iso(x.at),
        })),
        repository: s.repoJson(),
        commit_url: `${s.repoApi}/commits/${sha}`,
        url: `${s.repoApi}/commits/${sha}/status`,
      },
    };
  },
};
