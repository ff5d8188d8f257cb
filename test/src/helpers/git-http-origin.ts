/**
 * The team's repository as a real git server: bare repositories served by git's own
 * `http-backend` (smart HTTP, CGI) behind a loopback server that demands HTTP Basic auth — the
 * way a forge or a self-hosted git server serves them. Tests may hold or intercept a push (to kill
 * the farm mid-push, or to move the target branch just before the farm's push lands).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ENV = { PATH: process.env.PATH ?? "/usr/bin:/bin", GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null", LANG: "C", LC_ALL: "C" };
const DEV = {
  GIT_AUTHOR_NAME: "Dev",
  GIT_AUTHOR_EMAIL: "dev@example.com",
  GIT_COMMITTER_NAME: "Dev",
  GIT_COMMITTER_EMAIL: "dev@example.com",
};

export interface PushSeen {
  user: string;
  /** the ref updates the client sent (old, new, ref), read from the request's pkt-lines */
  updates: Array<{ old: string; new: string; ref: string }>;
}

export class GitHttpOrigin {
  readonly root: string;
  private server!: Server;
  port = 0;
  readonly pushes: PushSeen[] = [];
  readonly refused: Array<{ path: string; why: string }> = [];
  /**
   * called with a push before git sees it; resolve to let it through (the test may move refs
   * meanwhile), or to `"drop"` to cut the connection without git ever seeing the push
   */
  beforePush: ((p: PushSeen) => Promise<void | "drop"> | void | "drop") | null = null;
  /** called once git applied a push, before the client gets git's answer */
  afterPush: ((p: PushSeen) => Promise<void> | void) | null = null;

  constructor(private readonly users: Record<string, string>) {
    this.root = mkdtempSync(join(tmpdir(), "optimus-git-origin-"));
  }

  /** A bare repository `<name>.git` with one commit of `files` on main; its reflogs record every update. */
  create(name: string, files: Record<string, string>): string {
    const dir = join(this.root, `${name}.git`);
    execFileSync("git", ["init", "-q", "--bare", "-b", "main", dir], { env: ENV });
    this.git(name, ["config", "core.logAllRefUpdates", "always"]);
    this.git(name, ["config", "http.receivepack", "true"]);
    const index = join(this.root, `${name}.index`);
    const env = { GIT_INDEX_FILE: index, ...DEV };
    for (const [path, content] of Object.entries(files)) {
      const blob = this.git(name, ["hash-object", "-w", "--stdin"], env, content).trim();
      this.git(name, ["update-index", "--add", "--cacheinfo", `100644,${blob},${path}`], env);
    }
    const tree = this.git(name, ["write-tree"], env).trim();
    const commit = this.git(name, ["commit-tree", tree, "-m", "initial"], env).trim();
    this.git(name, ["update-ref", "refs/heads/main", commit, "0".repeat(40)]);
    rmSync(index, { force: true });
    return dir;
  }

  git(name: string, args: string[], env: Record<string, string> = {}, input?: string): string {
    return execFileSync("git", args, {
      cwd: join(this.root, `${name}.git`),
      env: { ...ENV, ...DEV, ...env },
      input,
      stdio: ["pipe", "pipe", "pipe"],
    }).toString();
  }

  url(name: string): string {
    return `http://127.0.0.1:${this.port}/${name}.git`;
  }

  /** Every value `ref` took, oldest first, from the origin's reflog. */
  history(name: string, ref = "refs/heads/main"): string[] {
    return this.git(name, ["reflog", "show", "--format=%H", ref]).split("\n").filter(Boolean).reverse();
  }

  /** True when every update of `ref` was a fast-forward (nobody's work overwritten). */
  neverForced(name: string, ref = "refs/heads/main"): boolean {
    const h = this.history(name, ref);
    for (let i = 1; i < h.length; i++) {
      try {
        this.git(name, ["merge-base", "--is-ancestor", h[i - 1]!, h[i]!]);
      } catch {
        return false;
      }
    }
    return true;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections?.();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.root, { recursive: true, force: true });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://x");
    const auth = /^Basic (.+)$/.exec(req.headers.authorization ?? "")?.[1];
    const [user, pass] = auth ? Buffer.from(auth, "base64").toString().split(":") : [];
    if (!user || this.users[user] === undefined || this.users[user] !== pass) {
      this.refused.push({ path: url.pathname, why: auth ? "bad credentials" : "no credentials" });
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="team git"', "Content-Type": "text/plain" }).end("authentication required\n");
      return;
    }
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    let body = Buffer.concat(chunks);
    const isPush = url.pathname.endsWith("/git-receive-pack");
    let seen: PushSeen | null = null;
    if (isPush) {
      const plain = req.headers["content-encoding"] === "gzip" ? (await import("node:zlib")).gunzipSync(body) : body;
      seen = { user, updates: readUpdates(plain) };
      this.pushes.push(seen);
      if ((await this.beforePush?.(seen)) === "drop") {
        res.destroy();
        return;
      }
    }
    const env: Record<string, string> = {
      ...ENV,
      GIT_PROJECT_ROOT: this.root,
      GIT_HTTP_EXPORT_ALL: "1",
      REQUEST_METHOD: req.method ?? "GET",
      PATH_INFO: decodeURIComponent(url.pathname),
      QUERY_STRING: url.search.slice(1),
      CONTENT_TYPE: req.headers["content-type"] ?? "",
      REMOTE_USER: user,
      REMOTE_ADDR: "127.0.0.1",
      GIT_HTTP_MAX_REQUEST_BUFFER: "100M",
    };
    if (req.headers["content-encoding"]) env.HTTP_CONTENT_ENCODING = String(req.headers["content-encoding"]);
    if (req.headers["git-protocol"]) env.GIT_PROTOCOL = String(req.headers["git-protocol"]);
    env.CONTENT_LENGTH = String(body.length);
    const cgi = spawn("git", ["http-backend"], { env, stdio: ["pipe", "pipe", "pipe"] });
    cgi.stdin.on("error", () => undefined); // http-backend may exit before reading the whole body (its answer says why)
    cgi.stdin.end(body);
    // eslint-disable-next-line no-useless-assignment -- lets a large push body be collected while git answers
    body = Buffer.alloc(0);
    const out: Buffer[] = [];
    for await (const c of cgi.stdout) out.push(c as Buffer);
    await new Promise((r) => cgi.once("close", r));
    if (seen) await this.afterPush?.(seen);
    const all = Buffer.concat(out);
    const split = all.indexOf("\r\n\r\n") >= 0 ? all.indexOf("\r\n\r\n") : all.indexOf("\n\n");
    const sepLen = all.indexOf("\r\n\r\n") >= 0 ? 4 : 2;
    const head = all.subarray(0, split).toString();
    let status = 200;
    const headers: Record<string, string> = {};
    for (const line of head.split(/\r?\n/)) {
      const i = line.indexOf(":");
      if (i < 0) continue;
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
      else headers[k] = v;
    }
    if (!res.destroyed) res.writeHead(status, headers).end(all.subarray(split + sepLen));
  }
}

/** The ref updates at the start of a receive-pack request: pkt-lines `<old> <new> <ref>\0caps`. */
function readUpdates(body: Buffer): PushSeen["updates"] {
  const updates: PushSeen["updates"] = [];
  let at = 0;
  while (at + 4 <= body.length) {
    const len = parseInt(body.subarray(at, at + 4).toString(), 16);
    if (!len) break;
    const line = body
      .subarray(at + 4, at + len)
      .toString()
      .split("\0")[0]!
      .trim();
    const [o, n, ref] = line.split(" ");
    if (o && n && ref) updates.push({ old: o, new: n, ref });
    at += len;
  }
  return updates;
}
