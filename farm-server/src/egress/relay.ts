/**
 * The worker-side end of a sandboxed check's way to the egress proxy.
 *
 * It listens where the sandbox can reach it (a Unix socket bind-visible inside the sandbox, or, for an
 * unsandboxed check, loopback TCP), reads the first request head of each connection, drops any
 * Proxy-Authorization the check sent, adds the worker's own, and from then on pipes bytes to the proxy
 * unchanged. The credential lives only in this process: never in the check's environment or files.
 *
 * Only the first request of a connection gets the credential, so plain-HTTP requests are sent with
 * `Connection: close` (the proxy answers one request and closes); a second request pipelined on the same
 * connection arrives unauthenticated and gets 407. CONNECT tunnels are one request by nature.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { splice } from "./splice.js";

export interface EgressRelayOptions {
  /** the farm's egress proxy, http://host:port (user:password@ in it becomes Basic authorisation) */
  proxyUrl: string;
  /** the full Proxy-Authorization value, e.g. "Bearer …"; overrides credentials in proxyUrl */
  proxyAuthorization?: string;
  /** a Unix socket path, or a TCP host and port (0: ephemeral) */
  listen: { path: string } | { host: string; port: number };
}

export interface EgressRelay {
  /** the TCP port it listens on (TCP listen only) */
  port?: number;
  close(): Promise<void>;
}

const MAX_HEAD_BYTES = 64 * 1024;

export async function startEgressRelay(opts: EgressRelayOptions): Promise<EgressRelay> {
  const proxy = new URL(opts.proxyUrl);
  if (proxy.protocol !== "http:") throw new Error(`egress proxyUrl must be http://host:port, not ${proxy.protocol}`);
  const proxyHost = proxy.hostname.replace(/^\[(.*)\]$/, "$1");
  const proxyPort = Number(proxy.port || 80);
  let auth = opts.proxyAuthorization;
  if (auth === undefined && (proxy.username || proxy.password)) {
    auth = `Basic ${Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString("base64")}`;
  }
  if (auth !== undefined && /[\x00-\x1f\x7f]/.test(auth)) throw new Error("egress proxyAuthorization must be one line of printable text");

  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  };

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    client.on("error", () => client.destroy());
    let buf = Buffer.alloc(0);
    const onData = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) {
        if (buf.length > MAX_HEAD_BYTES) refuse(client, 431, "Request Header Fields Too Large", "request head too large");
        return;
      }
      client.off("data", onData);
      client.pause();
      const head = rewriteHead(buf.subarray(0, end).toString("latin1"), auth);
      if (typeof head !== "string") return refuse(client, 400, "Bad Request", head.error);
      const rest = buf.subarray(end + 4);
      const upstream = connect({ host: proxyHost, port: proxyPort, allowHalfOpen: true });
      track(upstream);
      upstream.once("error", (err: NodeJS.ErrnoException) => {
        refuse(client, 502, "Bad Gateway", `optimus: the egress proxy is unreachable (${err.code ?? err.message})`);
      });
      upstream.once("connect", () => {
        upstream.removeAllListeners("error");
        if (client.destroyed) return void upstream.destroy(); // gone while we connected: send nothing on its behalf
        upstream.write(Buffer.concat([Buffer.from(head, "latin1"), rest]));
        splice(client, upstream);
        client.resume();
      });
    };
    client.on("data", onData);
    client.on("end", () => {
      if (buf.indexOf("\r\n\r\n") < 0) client.destroy();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = (): void => {
      server.off("error", reject);
      resolve();
    };
    if ("path" in opts.listen) server.listen(opts.listen.path, done);
    else server.listen(opts.listen.port, opts.listen.host, done);
  });
  const address = server.address();
  return {
    ...(typeof address === "object" && address !== null ? { port: address.port } : {}),
    close: async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function refuse(client: Socket, status: number, text: string, reason: string): void {
  if (!client.writable) return void client.destroy();
  const body = `${reason}\n`;
  client.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * The head (request line and headers, without the final blank line) with the check's own
 * Proxy-Authorization dropped and the worker's added; plain-HTTP requests also get `Connection: close`.
 * Heads the proxy's parser might read differently from this one (bare CR or LF, folded lines) are refused.
 */
export function rewriteHead(head: string, auth: string | undefined): string | { error: string } {
  const lines = head.split("\r\n");
  if (lines.some((l) => /[\r\n]/.test(l))) return { error: "bare CR or LF in the request head" };
  if (lines.slice(1).some((l) => l === "" || /^[ \t]/.test(l) || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+:/.test(l))) {
    return { error: "malformed header line" };
  }
  const [requestLine, ...headers] = lines as [string, ...string[]];
  const connect = /^CONNECT /.test(requestLine);
  const kept = headers.filter((l) => !/^proxy-authorization:/i.test(l));
  const out = [requestLine];
  if (connect) out.push(...kept);
  else {
    const tokens: string[] = [];
    for (const l of kept) {
      if (/^connection:/i.test(l))
        tokens.push(
          ...l
            .slice(l.indexOf(":") + 1)
            .split(",")
            .map((t) => t.trim())
            .filter((t) => t && t.toLowerCase() !== "keep-alive"),
        );
      else if (!/^(proxy-connection|keep-alive):/i.test(l)) out.push(l);
    }
    out.push(`Connection: ${[...tokens.filter((t) => t.toLowerCase() !== "close"), "close"].join(", ")}`);
  }
  if (auth !== undefined) out.push(`Proxy-Authorization: ${auth}`);
  return `${out.join("\r\n")}\r\n\r\n`;
}
