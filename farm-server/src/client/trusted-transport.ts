import type { X509Certificate } from "node:crypto";
import https from "node:https";
import { isIP } from "node:net";
import { Readable } from "node:stream";
import tls from "node:tls";
import WebSocket from "ws";
import { FarmTrustError, refusal, type FarmTrust } from "./farm-trust.js";

/**
 * The farm's https:// and wss:// transports, with the client's trust (pins or a CA file) checked on
 * each connection before it is handed to HTTP or WebSocket — so no request, and no token in its
 * headers, is ever written to a farm whose certificate is refused. Plain http:// goes on as before.
 */

type Connector = (
  opts: { host?: string | null; hostname?: string | null; port?: number | string | null },
  done: (err: Error | null, socket?: tls.TLSSocket) => void,
) => void;

const presented = new WeakMap<tls.TLSSocket, X509Certificate>();

/**
 * Opens a TLS connection and lets `refusal` decide on the certificate. Node's own verdict is not
 * enforced (`rejectUnauthorized: false`) because a pinned self-signed certificate has no chain to
 * verify: the verdict is read (`socket.authorized`) and enforced by `refusal` instead, in every mode.
 */
export function trustedConnector(trust: FarmTrust): Connector {
  return (opts, done) => {
    const host = String(opts.hostname ?? opts.host ?? "localhost").replace(/^\[|\]$/g, "");
    const port = Number(opts.port ?? 443);
    let settled = false;
    const finish = (err: Error | null, socket?: tls.TLSSocket) => {
      if (settled) return;
      settled = true;
      done(err, socket);
    };
    const socket = tls.connect({
      host,
      port,
      // SNI names a host, never an address.
      ...(isIP(host) ? {} : { servername: host }),
      ...(trust.ca ? { ca: trust.ca.pem } : {}),
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
    });
    socket.once("secureConnect", () => {
      // Node hands out a socket's X509Certificate only once: it is kept for `acceptedCertificate`.
      const cert = socket.getPeerX509Certificate();
      if (cert) presented.set(socket, cert);
      const why = refusal(socket, cert, host, port, trust);
      if (!why) return finish(null, socket);
      socket.destroy();
      finish(new FarmTrustError(why));
    });
    socket.once("error", (err) => finish(err));
  };
}

const bodyOf = (body: RequestInit["body"]): string | Uint8Array | undefined => {
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string" || body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError("the farm's client sends only string or byte bodies");
};

/**
 * `fetch` for a farm: https:// through `trustedConnector` (node:https, one connection per request),
 * anything else through the global fetch. Network failures reject as fetch's do (`TypeError("fetch
 * failed")` with the cause), so callers tell "not sent" and "refused certificate" apart the same way.
 */
export function trustedFetch(trust: FarmTrust): typeof fetch {
  const createConnection = trustedConnector(trust);
  return ((input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol !== "https:") return fetch(input, init);
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(
        url,
        {
          method: init?.method ?? "GET",
          headers: Object.fromEntries(new Headers(init?.headers).entries()),
          createConnection: createConnection as never,
          ...(init?.signal ? { signal: init.signal } : {}),
        },
        (res) => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) for (const x of [v ?? []].flat()) headers.append(k, x);
          const status = res.statusCode ?? 502;
          const empty = status === 204 || status === 304 || init?.method === "HEAD";
          if (empty) res.resume();
          resolve(
            new Response(empty ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>), {
              status,
              statusText: res.statusMessage ?? "",
              headers,
            }),
          );
        },
      );
      req.on("error", (err) =>
        reject(err.name === "AbortError" && init?.signal?.aborted ? init.signal.reason : new TypeError("fetch failed", { cause: err })),
      );
      req.end(bodyOf(init?.body));
    });
  }) as typeof fetch;
}

/** The `ws` WebSocket class, with wss:// connections made by `trustedConnector`. */
export function trustedWebSocket(trust: FarmTrust): typeof WebSocket {
  const createConnection = trustedConnector(trust);
  return class TrustedWebSocket extends WebSocket {
    constructor(address: string | URL, protocols?: string | string[] | WebSocket.ClientOptions, options?: WebSocket.ClientOptions) {
      // ws takes the options in place of the protocols too: moved back, so none is lost.
      if (protocols && typeof protocols === "object" && !Array.isArray(protocols)) [protocols, options] = [undefined, protocols];
      const secure = /^wss:/i.test(String(address));
      super(address, protocols, secure ? ({ ...options, createConnection } as unknown as WebSocket.ClientOptions) : options);
    }
  } as typeof WebSocket;
}

/**
 * The certificate an https:// farm presents, as PEM, once `trust` accepted it: what a worker hands
 * git as the one CA it trusts for that farm when it was given only a pin (git checks the pin too).
 */
export function acceptedCertificate(url: string, trust: FarmTrust, timeoutMs = 10_000): Promise<string> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new Error(`no TLS answer from ${u.origin} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    trustedConnector(trust)({ host: u.hostname, port: u.port || 443 }, (err, socket) => {
      clearTimeout(timer);
      if (late) return void socket?.destroy();
      if (err || !socket) return reject(err ?? new Error("no socket"));
      const pem = presented.get(socket)!.toString();
      socket.end();
      resolve(pem);
    });
  });
}
