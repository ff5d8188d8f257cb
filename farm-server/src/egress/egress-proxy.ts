/**
 * The farm's egress proxy: the only way out for a sandboxed check that needs packages.
 *
 * HTTP CONNECT (for TLS) and absolute-form plain-HTTP requests, to hosts on a domain allowlist only.
 * Every attempt, allowed or not, produces exactly one audit record: denied ones (400, 403, 407) when
 * they are answered, allowed ones when the tunnel or the forwarded exchange ends (so the record carries
 * the byte counts), and upstream failures with the reason. The Proxy-Authorization value is handed to
 * `authorize` and never written anywhere else.
 */
import { createServer, request as httpRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import { connect, isIP, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { checkAllowed, normalizeHost, parseAllowList, parseHostPort, type AllowRule } from "./allowlist.js";
import { splice } from "./splice.js";

export interface EgressDecision {
  /** ms since the epoch when the request arrived */
  at: number;
  /** who asked, as `authorize` named it; null when unauthorised or when there is no `authorize` */
  principal: string | null;
  /** the client's address:port as the proxy saw it */
  client: string;
  /** CONNECT, GET, …; "-" when the request could not be parsed */
  method: string;
  /** the requested host, canonical (lowercase, no trailing dot); "" when unknown */
  host: string;
  /** 0 when unknown */
  port: number;
  /** the allowlist (and authorisation) let it through; true even when the upstream then failed (see reason) */
  allowed: boolean;
  reason: string;
  /** allowed ones: bytes sent upstream / received from upstream (tunnel: raw; plain HTTP: bodies) */
  bytesUp?: number;
  bytesDown?: number;
}

export interface EgressProxyOptions {
  /** default 127.0.0.1 */
  host?: string;
  /** 0 (default): an ephemeral port */
  port?: number;
  /** see allowlist.ts; an invalid pattern throws */
  allow: string[];
  /** returns the principal (e.g. "worker:w1") or null for 407; absent: no authorisation needed */
  authorize?: (proxyAuthorizationHeader: string | undefined) => string | null;
  audit: (d: EgressDecision) => void;
  log?: { warn(o: object, msg: string): void };
  /** default 10 s */
  connectTimeoutMs?: number;
}

export interface EgressProxy {
  /** http://host:port */
  url: string;
  port: number;
  /** stops listening and ends every open tunnel (each is audited as it ends) */
  close(): Promise<void>;
}

const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const REALM = 'Basic realm="optimus-egress"';
/** RFC 7230 hop-by-hop headers; every Proxy-* header is dropped as well */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "host"]);

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  408: "Request Timeout",
  502: "Bad Gateway",
  504: "Gateway Timeout",
};

/** One printable line: reasons may quote client-supplied text and end up in responses and logs. */
function oneLine(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, " ").slice(0, 300);
}

export async function startEgressProxy(opts: EgressProxyOptions): Promise<EgressProxy> {
  const rules: AllowRule[] = parseAllowList(opts.allow);
  const connectTimeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  const sockets = new Set<Socket>();
  const pending = new Set<Promise<void>>();

  /** Wraps `audit` so a throwing sink cannot break the proxy and every attempt is recorded once. */
  const attempt = (base: Omit<EgressDecision, "allowed" | "reason">) => {
    let done = false;
    let resolveDone!: () => void;
    const p = new Promise<void>((r) => (resolveDone = r));
    pending.add(p);
    return (allowed: boolean, reason: string, bytes?: { bytesUp: number; bytesDown: number }): void => {
      if (done) return;
      done = true;
      pending.delete(p);
      resolveDone();
      try {
        opts.audit({ ...base, allowed, reason: oneLine(reason), ...bytes });
      } catch (err) {
        opts.log?.warn({ err: (err as Error).message }, "egress audit sink threw");
      }
    };
  };

  const principalOf = (header: string | undefined): { ok: true; principal: string | null } | { ok: false } => {
    if (!opts.authorize) return { ok: true, principal: null };
    try {
      const p = opts.authorize(header);
      return p === null ? { ok: false } : { ok: true, principal: p };
    } catch (err) {
      // never the header itself
      opts.log?.warn({ err: (err as Error).message }, "egress authorize threw; answering 407");
      return { ok: false };
    }
  };

  const clientOf = (s: Socket | Duplex): string => {
    const sock = s as Socket;
    return `${sock.remoteAddress ?? "?"}:${sock.remotePort ?? 0}`;
  };

  const rawReply = (socket: Duplex, status: number, reason: string, extra = ""): void => {
    if (!socket.writable) return void socket.destroy();
    const body = `${oneLine(reason)}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n${extra}\r\n${body}`,
    );
  };

  const reply = (res: ServerResponse, status: number, reason: string): void => {
    const body = `${oneLine(reason)}\n`;
    const headers: OutgoingHttpHeaders = { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) };
    if (status === 407) headers["proxy-authenticate"] = REALM;
    if (res.headersSent) return void res.destroy();
    res.writeHead(status, headers).end(body);
  };

  // requireHostHeader off: Node would otherwise answer 400 itself, unaudited (absolute-form carries the host anyway).
  const server = createServer({ requestTimeout: 60_000, requireHostHeader: false });

  server.on("connection", (s: Socket) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  // ---- CONNECT host:port ----
  server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const at = Date.now();
    const client = clientOf(socket);
    socket.on("error", () => undefined); // reported through close/audit below
    const target = parseHostPort(req.url ?? "", false);
    if ("error" in target) {
      attempt({ at, principal: null, client, method: "CONNECT", host: "", port: 0 })(false, `bad CONNECT target: ${target.error}`);
      return rawReply(socket, 400, `bad CONNECT target: ${target.error}`);
    }
    const { host } = target;
    const port = target.port!;
    const who = principalOf(req.headers["proxy-authorization"]);
    const principal = who.ok ? who.principal : null;
    const record = attempt({ at, principal, client, method: "CONNECT", host, port });
    if (!who.ok) {
      record(false, "proxy authorization missing or invalid");
      return rawReply(socket, 407, "proxy authorization missing or invalid", `Proxy-Authenticate: ${REALM}\r\n`);
    }
    const verdict = checkAllowed(rules, host, port);
    if (!verdict.allowed) {
      record(false, verdict.reason);
      return rawReply(socket, 403, verdict.reason);
    }
    const upstream = connect({ host, port, allowHalfOpen: true, autoSelectFamily: true });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    let connected = false;
    const timer = setTimeout(
      () => upstream.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })),
      connectTimeoutMs,
    );
    const beforeConnect = (err?: Error): void => {
      if (connected) return;
      clearTimeout(timer);
      const code = (err as NodeJS.ErrnoException | undefined)?.code ?? "closed";
      const why =
        socket.destroyed || !socket.writable ? "client went away before the upstream connected" : `upstream connect failed: ${code}`;
      record(true, `${verdict.reason}; ${why}`, { bytesUp: 0, bytesDown: 0 });
      upstream.destroy();
      rawReply(socket, code === "ETIMEDOUT" ? 504 : 502, why);
    };
    upstream.once("error", beforeConnect);
    socket.once("close", () => beforeConnect());
    upstream.once("connect", () => {
      connected = true;
      clearTimeout(timer);
      upstream.off("error", beforeConnect);
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      splice(socket as Socket, upstream, (err) => {
        const end = err ? `; ended by ${(err as NodeJS.ErrnoException).code ?? err.message}` : "";
        record(true, `${verdict.reason}${end}`, { bytesUp: upstream.bytesWritten, bytesDown: upstream.bytesRead });
      });
    });
  });

  // ---- plain HTTP: absolute-form only ----
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const at = Date.now();
    const client = clientOf(req.socket);
    const method = req.method ?? "-";
    const rawUrl = req.url ?? "";
    if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl)) {
      attempt({ at, principal: null, client, method, host: "", port: 0 })(false, "not a proxy request (origin-form)");
      return reply(res, 400, "not a proxy request: use CONNECT host:port, or an absolute http:// URL");
    }
    let url: URL;
    try {
      url = new URL(rawUrl);
    } catch {
      attempt({ at, principal: null, client, method, host: "", port: 0 })(false, "bad request URL");
      return reply(res, 400, "bad request URL");
    }
    const norm = normalizeHost(url.hostname);
    if (url.protocol !== "http:" || "error" in norm || url.username || url.password) {
      const why =
        url.protocol !== "http:"
          ? `only http:// URLs are forwarded (use CONNECT for ${url.protocol})`
          : "error" in norm
            ? `bad host: ${norm.error}`
            : "credentials in the URL are not forwarded";
      attempt({ at, principal: null, client, method, host: "error" in norm ? "" : norm.host, port: Number(url.port || 80) })(false, why);
      return reply(res, 400, why);
    }
    const host = norm.host;
    const port = Number(url.port || 80);
    const who = principalOf(req.headers["proxy-authorization"]);
    const record = attempt({ at, principal: who.ok ? who.principal : null, client, method, host, port });
    if (!who.ok) {
      record(false, "proxy authorization missing or invalid");
      return reply(res, 407, "proxy authorization missing or invalid");
    }
    const verdict = checkAllowed(rules, host, port);
    if (!verdict.allowed) {
      record(false, verdict.reason);
      return reply(res, 403, verdict.reason);
    }
    forward(req, res, url, host, port, verdict.reason, record);
  };
  server.on("request", onRequest);
  // An Expect other than 100-continue: Node would answer 417 itself, unaudited; treat it as any request.
  server.on("checkExpectation", onRequest);

  const forward = (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    host: string,
    port: number,
    allowedBy: string,
    record: (allowed: boolean, reason: string, bytes?: { bytesUp: number; bytesDown: number }) => void,
  ): void => {
    const listed = (req.headers.connection ?? "")
      .split(",")
      .map((t) => t.trim().toLowerCase())
      .filter(Boolean);
    const headers: OutgoingHttpHeaders = {};
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || lower.startsWith("proxy-") || listed.includes(lower)) continue;
      const prev = headers[lower];
      const value = req.rawHeaders[i + 1]!;
      headers[lower] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
    }
    // The upstream sees the host that was checked, never a client-chosen Host header.
    headers.host = isIP(host) === 6 ? `[${host}]${port === 80 ? "" : `:${port}`}` : `${host}${port === 80 ? "" : `:${port}`}`;
    let bytesUp = 0;
    let bytesDown = 0;
    const up = httpRequest({ host, port, method: req.method, path: `${url.pathname}${url.search}`, headers, agent: false });
    const timer = setTimeout(() => up.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), connectTimeoutMs);
    up.on("socket", (s: Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      if (s.connecting) s.once("connect", () => clearTimeout(timer));
      else clearTimeout(timer);
    });
    up.on("error", (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = err.code ?? err.message;
      if (!res.headersSent) {
        const why = `upstream connect failed: ${code}`;
        record(true, `${allowedBy}; ${why}`, { bytesUp, bytesDown });
        reply(res, code === "ETIMEDOUT" ? 504 : 502, why);
      } else {
        record(true, `${allowedBy}; upstream failed mid-response: ${code}`, { bytesUp, bytesDown });
        res.destroy();
      }
    });
    up.on("response", (upRes: IncomingMessage) => {
      const listedDown = (upRes.headers.connection ?? "")
        .split(",")
        .map((t) => t.trim().toLowerCase())
        .filter(Boolean);
      const out: OutgoingHttpHeaders = {};
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) {
        const lower = upRes.rawHeaders[i]!.toLowerCase();
        if (HOP_BY_HOP.has(lower) || lower.startsWith("proxy-") || listedDown.includes(lower)) continue;
        const prev = out[lower];
        const value = upRes.rawHeaders[i + 1]!;
        out[lower] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [String(prev), value];
      }
      res.writeHead(upRes.statusCode ?? 502, out);
      upRes.on("data", (b: Buffer) => (bytesDown += b.length));
      upRes.pipe(res);
      upRes.on("error", () => res.destroy());
    });
    req.on("data", (b: Buffer) => (bytesUp += b.length));
    req.pipe(up);
    res.on("close", () => {
      const complete = res.writableFinished;
      if (!complete) up.destroy();
      record(true, complete ? allowedBy : `${allowedBy}; client went away before the response ended`, { bytesUp, bytesDown });
    });
  };

  // Upgrades (WebSocket…) through a forward proxy: not supported; use CONNECT.
  server.on("upgrade", (req: IncomingMessage, socket: Duplex) => {
    socket.on("error", () => undefined);
    attempt({ at: Date.now(), principal: null, client: clientOf(socket), method: req.method ?? "-", host: "", port: 0 })(
      false,
      "upgrade requests are not proxied",
    );
    rawReply(socket, 400, "upgrade requests are not proxied: use CONNECT");
  });

  // Unparseable requests: Node's parser rejects them before any event above.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === "ECONNRESET" || err.code === "EPIPE" || !socket.writable) return void socket.destroy();
    const timeout = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
    const why = timeout ? "request timed out" : `bad request (${err.code ?? "parse error"})`;
    attempt({ at: Date.now(), principal: null, client: clientOf(socket), method: "-", host: "", port: 0 })(false, why);
    rawReply(socket, timeout ? 408 : 400, why);
  });

  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  server.on("error", (err) => opts.log?.warn({ err: err.message }, "egress proxy server error"));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
    port,
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await Promise.all([...pending]);
    },
  };
}
