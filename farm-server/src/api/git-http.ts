import { spawn } from "node:child_process";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createGunzip } from "node:zlib";
import type { Principal } from "../auth/tokens.js";

const pkt = (s: string) => (s.length + 4).toString(16).padStart(4, "0") + s;

/**
 * A read-only git endpoint for workers (smart HTTP, upload-pack only): workers keep a mirror of the
 * repository fetched from the farm, never from the internet. Pushing (receive-pack) is refused: a
 * change reaches the repository only as a patch the farm checks.
 */
export function handleGitHttp(req: IncomingMessage, res: ServerResponse, repo: string, principal: Principal | null): void {
  const url = new URL(req.url ?? "/", "http://farm");
  const deny = (status: number, text: string): void => {
    res.writeHead(status, { "content-type": "text/plain" }).end(text + "\n");
  };
  if (!principal) {
    res.setHeader("www-authenticate", 'Basic realm="optimus"');
    return deny(401, "a worker, editor or admin token is needed (Authorization: Bearer <token>)");
  }
  const service = url.searchParams.get("service");
  if (url.pathname === "/git/info/refs" && req.method === "GET") {
    if (service !== "git-upload-pack") return deny(403, "this endpoint only serves fetches (git-upload-pack)");
    res.writeHead(200, { "content-type": "application/x-git-upload-pack-advertisement", "cache-control": "no-cache" });
    res.write(pkt("# service=git-upload-pack\n") + "0000");
    const git = spawn("git", ["upload-pack", "--stateless-rpc", "--advertise-refs", repo], { stdio: ["ignore", "pipe", "ignore"] });
    git.stdout.pipe(res);
    git.on("error", () => res.end());
    return;
  }
  if (url.pathname === "/git/git-upload-pack" && req.method === "POST") {
    res.writeHead(200, { "content-type": "application/x-git-upload-pack-result", "cache-control": "no-cache" });
    const git = spawn("git", ["upload-pack", "--stateless-rpc", repo], { stdio: ["pipe", "pipe", "ignore"] });
    const body = req.headers["content-encoding"] === "gzip" ? req.pipe(createGunzip()) : req;
    body.on("error", () => git.kill());
    body.pipe(git.stdin);
    git.stdout.pipe(res);
    git.on("error", () => res.end());
    return;
  }
  if (url.pathname.endsWith("git-receive-pack") || service === "git-receive-pack") return deny(403, "pushing to the farm is not allowed: submit a patch");
  deny(404, "not found");
}
