/**
 * The JSON representations the GitHub stand-in answers with, in GitHub's own shapes (every field
 * the OpenAPI description requires, with GitHub's URL conventions). Built from the stand-in's state
 * and the real git repository behind it.
 */
import type { CommitInfo } from "./github-standin-git.js";

export interface StandinUser {
  login: string;
  id: number;
  type: "User" | "Bot" | "Organization";
  /** repository permission: what `collaborators/{u}/permission` says */
  permission: "admin" | "maintain" | "write" | "triage" | "read" | "none";
  /** a GitHub App installation: check runs created with its token belong to the app */
  app?: { id: number; slug: string; name: string };
}

export interface Urls {
  /** e.g. http://127.0.0.1:1234 (the API root) */
  api: string;
  /** the web root used in html_url */
  web: string;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
export const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");

export function userJson(u: { login: string; id: number; type: string }, urls: Urls): Record<string, unknown> {
  const api = `${urls.api}/users/${encodeURIComponent(u.login)}`;
  return {
    login: u.login,
    id: u.id,
    node_id: b64(`04:User${u.id}`),
    avatar_url: `${urls.web}/avatars/u/${u.id}?v=4`,
    gravatar_id: "",
    url: api,
    html_url: `${urls.web}/${encodeURIComponent(u.login)}`,
    followers_url: `${api}/followers`,
    following_url: `${api}/following{/other_user}`,
    gists_url: `${api}/gists{/gist_id}`,
    starred_url: `${api}/starred{/owner}{/repo}`,
    subscriptions_url: `${api}/subscriptions`,
    organizations_url: `${api}/orgs`,
    repos_url: `${api}/repos`,
    events_url: `${api}/events{/privacy}`,
    received_events_url: `${api}/received_events`,
    type: u.type,
    user_view_type: "public",
    site_admin: false,
  };
}

export interface RepoInfo {
  id: number;
  owner: { login: string; id: number; type: string };
  name: string;
  defaultBranch: string;
  createdAt: number;
  allow: { merge: boolean; squash: boolean; rebase: boolean };
}

export function repoJson(r: RepoInfo, urls: Urls, pushedAt: number): Record<string, unknown> {
  const full = `${r.owner.login}/${r.name}`;
  const api = `${urls.api}/repos/${full}`;
  return {
    id: r.id,
    node_id: b64(`010:Repository${r.id}`),
    name: r.name,
    full_name: full,
    owner: userJson(r.owner, urls),
    private: true,
    html_url: `${urls.web}/${full}`,
    description: null,
    fork: false,
    url: api,
    archive_url: `${api}/{archive_format}{/ref}`,
    assignees_url: `${api}/assignees{/user}`,
    blobs_url: `${api}/git/blobs{/sha}`,
    branches_url: `${api}/branches{/branch}`,
    collaborators_url: `${api}/collaborators{/collaborator}`,
    comments_url: `${api}/comments{/number}`,
    commits_url: `${api}/commits{/sha}`,
    compare_url: `${api}/compare/{base}...{head}`,
    contents_url: `${api}/contents/{+path}`,
    contributors_url: `${api}/contributors`,
    deployments_url: `${api}/deployments`,
    downloads_url: `${api}/downloads`,
    events_url: `${api}/events`,
    forks_url: `${api}/forks`,
    git_commits_url: `${api}/git/commits{/sha}`,
    git_refs_url: `${api}/git/refs{/sha}`,
    git_tags_url: `${api}/git/tags{/sha}`,
    git_url: `git://${new URL(urls.web).host}/${full}.git`,
    issue_comment_url: `${api}/issues/comments{/number}`,
    issue_events_url: `${api}/issues/events{/number}`,
    issues_url: `${api}/issues{/number}`,
    keys_url: `${api}/keys{/key_id}`,
    labels_url: `${api}/labels{/name}`,
    languages_url: `${api}/languages`,
    merges_url: `${api}/merges`,
    milestones_url: `${api}/milestones{/number}`,
    notifications_url: `${api}/notifications{?since,all,participating}`,
    pulls_url: `${api}/pulls{/number}`,
    releases_url: `${api}/releases{/id}`,
    ssh_url: `git@${new URL(urls.web).hostname}:${full}.git`,
    stargazers_url: `${api}/stargazers`,
    statuses_url: `${api}/statuses/{sha}`,
    subscribers_url: `${api}/subscribers`,
    subscription_url: `${api}/subscription`,
    tags_url: `${api}/tags`,
    teams_url: `${api}/teams`,
    trees_url: `${api}/git/trees{/sha}`,
    clone_url: `${urls.web}/${full}.git`,
    mirror_url: null,
    hooks_url: `${api}/hooks`,
    svn_url: `${urls.web}/${full}`,
    homepage: null,
    language: "TypeScript",
    forks_count: 0,
    stargazers_count: 0,
    watchers_count: 0,
    size: 1,
    default_branch: r.defaultBranch,
    open_issues_count: 0,
    is_template: false,
    topics: [],
    has_issues: true,
    has_projects: true,
    has_wiki: false,
    has_pages: false,
    has_downloads: true,
    has_discussions: false,
    archived: false,
    disabled: false,
    visibility: "private",
    pushed_at: iso(pushedAt),
    created_at: iso(r.createdAt),
    updated_at: iso(pushedAt),
    allow_forking: false,
    web_commit_signoff_required: false,
    license: null,
    forks: 0,
    open_issues: 0,
    watchers: 0,
  };
}

function gitUser(name: string, email: string, date: string) {
  return { name, email, date: iso(Date.parse(date)) };
}

export function commitJson(
  c: CommitInfo,
  repoApi: string,
  repoWeb: string,
  urls: Urls,
  users: (email: string) => StandinUser | undefined,
): Record<string, unknown> {
  const author = users(c.authorEmail);
  const committer = users(c.committerEmail);
  return {
    url: `${repoApi}/commits/${c.sha}`,
    sha: c.sha,
    node_id: b64(`06:Commit${c.sha}`),
    html_url: `${repoWeb}/commit/${c.sha}`,
    comments_url: `${repoApi}/commits/${c.sha}/comments`,
    commit: {
      url: `${repoApi}/git/commits/${c.sha}`,
      author: gitUser(c.authorName, c.authorEmail, c.authorDate),
      committer: gitUser(c.committerName, c.committerEmail, c.committerDate),
      message: c.message,
      comment_count: 0,
      tree: { sha: c.tree, url: `${repoApi}/git/trees/${c.tree}` },
      verification: { verified: false, reason: "unsigned", signature: null, payload: null, verified_at: null },
    },
    author: author ? userJson(author, urls) : null,
    committer: committer ? userJson(committer, urls) : null,
    parents: c.parents.map((p) => ({ sha: p, url: `${repoApi}/commits/${p}`, html_url: `${repoWeb}/commit/${p}` })),
  };
}

export interface StandinPull {
  number: number;
  id: number;
  title: string;
  body: string | null;
  head: string;
  base: string;
  user: StandinUser;
  state: "open" | "closed";
  draft: boolean;
  createdAt: number;
  updatedAt: number;
  closedAt: number | null;
  closedBy: StandinUser | null;
  mergedAt: number | null;
  mergedBy: StandinUser | null;
  mergeCommitSha: string | null;
  /** the head sha at the time it was merged or closed (a deleted branch keeps its PR's head) */
  frozenHeadSha: string | null;
  /** the base sha the PR is compared with (frozen at merge) */
  frozenBaseSha: string | null;
  maintainerCanModify: boolean;
  /** mergeability is computed lazily, as on GitHub: the first read after a change gets null */
  mergeableFor: string | null;
}

export interface PullExtras {
  headSha: string;
  baseSha: string;
  mergeable: boolean | null;
  mergeableState: string;
  comments: number;
  reviewComments: number;
  commits: number;
  additions: number;
  deletions: number;
  changedFiles: number;
  /** `author_association` of the PR's author */
  association: string;
}

export function pullJson(p: StandinPull, x: PullExtras, repo: Record<string, unknown>, urls: Urls, full: boolean): Record<string, unknown> {
  const repoApi = String(repo.url);
  const repoWeb = String(repo.html_url);
  const api = `${repoApi}/pulls/${p.number}`;
  const owner = (repo.owner as { login: string }).login;
  const side = (ref: string, sha: string) => ({ label: `${owner}:${ref}`, ref, sha, user: repo.owner, repo });
  const out: Record<string, unknown> = {
    url: api,
    id: p.id,
    node_id: b64(`011:PullRequest${p.id}`),
    html_url: `${repoWeb}/pull/${p.number}`,
    diff_url: `${repoWeb}/pull/${p.number}.diff`,
    patch_url: `${repoWeb}/pull/${p.number}.patch`,
    issue_url: `${repoApi}/issues/${p.number}`,
    commits_url: `${api}/commits`,
    review_comments_url: `${api}/comments`,
    review_comment_url: `${repoApi}/pulls/comments{/number}`,
    comments_url: `${repoApi}/issues/${p.number}/comments`,
    statuses_url: `${repoApi}/statuses/${x.headSha}`,
    number: p.number,
    state: p.state,
    locked: false,
    title: p.title,
    user: userJson(p.user, urls),
    body: p.body,
    labels: [],
    milestone: null,
    active_lock_reason: null,
    created_at: iso(p.createdAt),
    updated_at: iso(p.updatedAt),
    closed_at: p.closedAt === null ? null : iso(p.closedAt),
    merged_at: p.mergedAt === null ? null : iso(p.mergedAt),
    merge_commit_sha: p.mergeCommitSha,
    assignee: null,
    assignees: [],
    requested_reviewers: [],
    requested_teams: [],
    head: side(p.head, x.headSha),
    base: side(p.base, x.baseSha),
    _links: {
      self: { href: api },
      html: { href: `${repoWeb}/pull/${p.number}` },
      issue: { href: `${repoApi}/issues/${p.number}` },
      comments: { href: `${repoApi}/issues/${p.number}/comments` },
      review_comments: { href: `${api}/comments` },
      review_comment: { href: `${repoApi}/pulls/comments{/number}` },
      commits: { href: `${api}/commits` },
      statuses: { href: `${repoApi}/statuses/${x.headSha}` },
    },
    author_association: x.association,
    auto_merge: null,
    draft: p.draft,
  };
  if (full) {
    Object.assign(out, {
      merged: p.mergedAt !== null,
      mergeable: x.mergeable,
      rebaseable: x.mergeable,
      mergeable_state: x.mergeableState,
      merged_by: p.mergedBy ? userJson(p.mergedBy, urls) : null,
      comments: x.comments,
      review_comments: x.reviewComments,
      maintainer_can_modify: p.maintainerCanModify,
      commits: x.commits,
      additions: x.additions,
      deletions: x.deletions,
      changed_files: x.changedFiles,
    });
  }
  return out;
}

export interface StandinReview {
  id: number;
  pull: number;
  user: StandinUser;
  body: string;
  state: "APPROVED" | "CHANGES_REQUESTED" | "COMMENTED" | "DISMISSED" | "PENDING";
  commitId: string;
  submittedAt: number;
}

export function reviewJson(r: StandinReview, repoApi: string, repoWeb: string, urls: Urls, association: string): Record<string, unknown> {
  return {
    id: r.id,
    node_id: b64(`017:PullRequestReview${r.id}`),
    user: userJson(r.user, urls),
    body: r.body,
    state: r.state,
    html_url: `${repoWeb}/pull/${r.pull}#pullrequestreview-${r.id}`,
    pull_request_url: `${repoApi}/pulls/${r.pull}`,
    _links: { html: { href: `${repoWeb}/pull/${r.pull}#pullrequestreview-${r.id}` }, pull_request: { href: `${repoApi}/pulls/${r.pull}` } },
    submitted_at: iso(r.submittedAt),
    commit_id: r.commitId,
    author_association: association,
  };
}

/** The review as the `pull_request_review` webhook carries it (state in lower case). */
export function webhookReviewJson(
  r: StandinReview,
  repoApi: string,
  repoWeb: string,
  urls: Urls,
  association: string,
): Record<string, unknown> {
  return { ...reviewJson(r, repoApi, repoWeb, urls, association), state: r.state.toLowerCase() };
}

export interface StandinComment {
  id: number;
  reviewId: number;
  pull: number;
  user: StandinUser;
  path: string;
  line: number;
  /** GitHub's diff position of the line */
  position: number;
  body: string;
  commitId: string;
  diffHunk: string;
  createdAt: number;
}

export function commentJson(c: StandinComment, repoApi: string, repoWeb: string, urls: Urls, association: string): Record<string, unknown> {
  return {
    url: `${repoApi}/pulls/comments/${c.id}`,
    pull_request_review_id: c.reviewId,
    id: c.id,
    node_id: b64(`024:PullRequestReviewComment${c.id}`),
    diff_hunk: c.diffHunk,
    path: c.path,
    position: c.position,
    original_position: c.position,
    commit_id: c.commitId,
    original_commit_id: c.commitId,
    user: userJson(c.user, urls),
    body: c.body,
    created_at: iso(c.createdAt),
    updated_at: iso(c.createdAt),
    html_url: `${repoWeb}/pull/${c.pull}#discussion_r${c.id}`,
    pull_request_url: `${repoApi}/pulls/${c.pull}`,
    author_association: association,
    _links: {
      self: { href: `${repoApi}/pulls/comments/${c.id}` },
      html: { href: `${repoWeb}/pull/${c.pull}#discussion_r${c.id}` },
      pull_request: { href: `${repoApi}/pulls/${c.pull}` },
    },
    start_line: null,
    original_start_line: null,
    start_side: null,
    line: c.line,
    original_line: c.line,
    side: "RIGHT",
    subject_type: "line",
    reactions: {
      url: `${repoApi}/pulls/comments/${c.id}/reactions`,
      total_count: 0,
      "+1": 0,
      "-1": 0,
      laugh: 0,
      hooray: 0,
      confused: 0,
      heart: 0,
      rocket: 0,
      eyes: 0,
    },
  };
}

export interface StandinCheckRun {
  id: number;
  suiteId: number;
  app: NonNullable<StandinUser["app"]>;
  appOwner: StandinUser;
  name: string;
  headSha: string;
  status: "queued" | "in_progress" | "completed";
  conclusion: string | null;
  startedAt: number;
  completedAt: number | null;
  externalId: string;
  detailsUrl: string;
  output: { title: string | null; summary: string | null; text: string | null };
}

export function appJson(app: NonNullable<StandinUser["app"]>, owner: StandinUser, urls: Urls): Record<string, unknown> {
  return {
    id: app.id,
    slug: app.slug,
    node_id: b64(`03:Integration${app.id}`),
    client_id: `Iv1.${app.id.toString(16).padStart(16, "0")}`,
    owner: userJson(owner, urls),
    name: app.name,
    description: null,
    external_url: `${urls.web}/apps/${app.slug}`,
    html_url: `${urls.web}/apps/${app.slug}`,
    created_at: "2024-01-01T00:00:00Z",
    updated_at: "2024-01-01T00:00:00Z",
    permissions: { checks: "write", contents: "write", metadata: "read", pull_requests: "write", statuses: "write" },
    events: ["check_run", "check_suite", "pull_request", "pull_request_review", "pull_request_review_comment"],
  };
}

export function checkRunJson(
  c: StandinCheckRun,
  repoApi: string,
  repoWeb: string,
  urls: Urls,
  pulls: { number: number; id: number; head: string; headSha: string; base: string; baseSha: string }[],
  repoId: number,
): Record<string, unknown> {
  return {
    id: c.id,
    head_sha: c.headSha,
    node_id: b64(`08:CheckRun${c.id}`),
    external_id: c.externalId,
    url: `${repoApi}/check-runs/${c.id}`,
    html_url: `${repoWeb}/runs/${c.id}`,
    details_url: c.detailsUrl,
    status: c.status,
    conclusion: c.conclusion,
    started_at: iso(c.startedAt),
    completed_at: c.completedAt === null ? null : iso(c.completedAt),
    output: { ...c.output, annotations_count: 0, annotations_url: `${repoApi}/check-runs/${c.id}/annotations` },
    name: c.name,
    check_suite: { id: c.suiteId },
    app: appJson(c.app, c.appOwner, urls),
    pull_requests: pulls.map((p) => ({
      url: `${repoApi}/pulls/${p.number}`,
      id: p.id,
      number: p.number,
      head: { ref: p.head, sha: p.headSha, repo: { id: repoId, url: repoApi, name: repoApi.split("/").pop() } },
      base: { ref: p.base, sha: p.baseSha, repo: { id: repoId, url: repoApi, name: repoApi.split("/").pop() } },
    })),
  };
}
