/**
 * The request plumbing of the GitHub stand-in's operations: the request context, GitHub's error
 * answers, pagination with GitHub's Link header, refs and commits.
 */
import type { GitHubStandin } from "./github-standin.js";
import { commitJson, type StandinPull, type StandinUser } from "./github-standin-shapes.js";

export interface RequestCtx {
  s: GitHubStandin;
  params: Record<string, string>;
  query: URLSearchParams;
  body: Record<string, any>;
  user: StandinUser;
  url: URL;
}

export interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

export const DOCS = "https://docs.github.com/rest";
export const notFound = () => new HttpError(404, { message: "Not Found", documentation_url: DOCS, status: "404" });
export const forbidden = (message = "Resource not accessible by integration") =>
  new HttpError(403, { message, documentation_url: DOCS, status: "403" });
export const invalid = (message: string, errors: (Record<string, unknown> | string)[] = []) =>
  new HttpError(422, { message, ...(errors.length ? { errors } : {}), documentation_url: DOCS, status: "422" });

export function needWrite(ctx: RequestCtx): void {
  if (!ctx.s.hasWrite(ctx.user))
    throw forbidden(ctx.user.app ? "Resource not accessible by integration" : "Resource not accessible by personal access token");
}

export function pull(ctx: RequestCtx): StandinPull {
  const p = ctx.s.pulls.find((x) => x.number === Number(ctx.params.pull_number));
  if (!p) throw notFound();
  return p;
}

/** A page of `items` and GitHub's Link header. */
export function page<T>(ctx: RequestCtx, items: T[]): { items: T[]; headers: Record<string, string> } {
  const per = Math.min(100, Number(ctx.query.get("per_page") ?? 30));
  const n = Math.max(1, Number(ctx.query.get("page") ?? 1));
  const last = Math.max(1, Math.ceil(items.length / per));
  const headers: Record<string, string> = {};
  if (last > 1) {
    const at = (k: number) => {
      const u = new URL(ctx.url);
      u.searchParams.set("page", String(k));
      return `<${u.toString()}>`;
    };
    const links: string[] = [];
    if (n < last) links.push(`${at(n + 1)}; rel="next"`, `${at(last)}; rel="last"`);
    if (n > 1) links.push(`${at(1)}; rel="first"`, `${at(n - 1)}; rel="prev"`);
    if (links.length) headers.link = links.join(", ");
  }
  return { items: items.slice((n - 1) * per, n * per), headers };
}

export function resolveRef(s: GitHubStandin, ref: string): string {
  if (/^[0-9a-f]{40}$/.test(ref)) return ref;
  const sha = s.git.branchSha(ref.replace(/^refs\/heads\/|^heads\//, ""));
  if (!sha) throw new HttpError(422, { message: `No commit found for SHA: ${ref}`, documentation_url: DOCS, status: "422" });
  return sha;
}

export function commit(s: GitHubStandin, sha: string) {
  return commitJson(s.git.commit(sha), s.repoApi, s.repoWeb, s.urls, (email) => s.emails.get(email));
}
