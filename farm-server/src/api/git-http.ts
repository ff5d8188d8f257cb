import { spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createGunzip } from "node:zlib";
import type { Principal } from "../auth/tokens.js";
import { safeGitEnv } from "../git/safe-git.js";
import type { GitSlots } from "./git-slots.js";

const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, "0") + s;

/**
 * A read-only git endpoint for workers (smart HTTP, upload-pack only): workers keep a mirror of the
 * repository fetched from the farm, never from the internet. Pushing (receive-pack) is refused: a
 * change reaches the repository only as a patch the farm checks.
 */
export interface GitHttpOptions {
  slots: GitSlots;
  /** a git process serving one request is killed after this long */
  processTimeoutMs: number;
  /** seconds a refused client is told to wait (Retry-After) */
  retryAfterSeconds: number;
}

const WORKER_VIEW: ReadonlyArray<readonly [string, string]> = [
  ["uploadpack.hideRefs", "refs/remotes/origin/optimus/"],
  ["uploadpack.hideRefs", "refs/remotes/origin/HEAD"],
];

export function handleGitHttp(
  req: IncomingMessage,
  res: ServerResponse,
  repo: string,
  principal: Principal | null,
  opts: GitHttpOptions,
): void {
  const url = new URL(req.url ?? "/", "http://farm");
  const deny = (status: number, text: string): void => {
    res.writeHead(status, { "content-type": "text/plain" }).end(text + "\n");
  };
  if (!principal) {
    res.setHeader("www-authenticate", 'Basic realm="optimus"');
    return deny(401, "a worker, editor or admin token is needed (Authorization: Bearer <token>)");
  }
  const service = url.searchParams.get("service");
  const advertise = url.pathname === "/git/info/refs" && req.method === "GET";
  const pack = url.pathname === "/git/git-upload-pack" && req.method === "POST";
  if (advertise && service !== "git-upload-pack") return deny(403, "this endpoint only serves fetches (git-upload-pack)");
  if (!advertise && !pack) {
    if (url.pathname.endsWith("git-receive-pack") || service === "git-receive-pack")
      return deny(403, "pushing to the farm is not allowed: submit a patch");
    return deny(404, "not found");
  }
  // Each request runs a git process: a slot first, so a flood cannot fork the farm to death.
  const gone = new AbortController();
  res.once("close", () => gone.abort());
  void opts.slots.acquire(gone.signal).then((release) => {
    if (gone.signal.aborted) return release?.();
    if (!release) {
      res.setHeader("retry-after", String(opts.retryAfterSeconds));
      return deny(503, "the farm's git endpoint is busy (too many fetches at once); retry in a moment");
    }
    // Workers see the farm's branches (refs/heads/optimus/*) and the origin's as the farm last
    // fetched them (refs/remotes/origin/*) — not the origin's copies of the farm's own branches.
    const env = safeGitEnv(WORKER_VIEW);
    const git = advertise
      ? spawn("git", ["upload-pack", "--stateless-rpc", "--advertise-refs", repo], { stdio: ["ignore", "pipe", "ignore"], env })
      : spawn("git", ["upload-pack", "--stateless-rpc", repo], { stdio: ["pipe", "pipe", "ignore"], env });
    // A client that never finishes its request (or stops reading) must not hold the slot for ever.
    const timer = setTimeout(() => git.kill("SIGKILL"), opts.processTimeoutMs);
    git.once("close", () => {
      clearTimeout(timer);
      release();
    });
    git.on("error", () => {
      release();
      res.end();
    });
    res.once("close", () => git.exitCode === null && git.kill("SIGKILL"));
    if (advertise) {
      res.writeHead(200, { "content-type": "application/x-git-upload-pack-advertisement", "cache-control": "no-cache" });
      res.write(pkt("# service=git-upload-pack\n") + "0000");
    } else {
      res.writeHead(200, { "content-type": "application/x-git-upload-pack-result", "cache-control": "no-cache" });
      const body = req.headers["content-encoding"] === "gzip" ? req.pipe(createGunzip()) : req;
      body.on("error", () => git.kill());
      git.stdin!.on("error", () => undefined);
      body.pipe(git.stdin!);
    }
    git.stdout!.pipe(res);
  });
}
