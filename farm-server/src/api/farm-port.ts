import http from "node:http";
import https from "node:https";
import net, { type AddressInfo } from "node:net";
import { TLS_ONLY_HEADER } from "@optimus/shared";
import type { FarmTls } from "../tls/farm-tls.js";

/**
 * The farm's one port, plain HTTP or HTTPS. `server` emits `request` and `upgrade` either way (the
 * API and the WebSocket server attach to it); only the listening differs.
 */
export interface FarmPort {
  readonly server: http.Server;
  readonly scheme: "http" | "https";
  listen(port: number, host: string): Promise<void>;
  /** the port it listens on (after `listen`) */
  readonly port: number;
  /** ends every connection and stops listening */
  close(): Promise<void>;
}

/** A TLS record starts with its content type: 22 is a handshake (a ClientHello, first). */
const TLS_HANDSHAKE = 0x16;
/** How long a connection may stay silent before its first byte says which protocol it speaks. */
const FIRST_BYTE_MS = 10_000;

const bracketed = (h: string) => (h.includes(":") && !h.startsWith("[") ? `[${h}]` : h);

/**
 * The answer to plain HTTP on a TLS port: 400, with the https:// URL the request meant, so the
 * client's message can say "use https://" (a TLS server would just reset the connection).
 */
function refusePlain(socket: net.Socket, head: Buffer): void {
  const named = /\r\nhost:[ \t]*([^\r\n\s]{1,300})/i.exec(head.toString("latin1"))?.[1];
  const where = named ?? `${bracketed(socket.localAddress ?? "127.0.0.1")}:${socket.localPort ?? ""}`;
  const url = `https://${where.replace(/[^\w.:[\]-]/g, "")}`;
  const body = `this farm serves HTTPS only: use ${url}\n`;
  socket.end(
    `HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${TLS_ONLY_HEADER}: ${url}\r\n\r\n${body}`,
  );
}

/**
 * Opens the farm's port: plain HTTP without `tls`; with it, HTTPS (TLS 1.2 or later) for TLS
 * clients, and a one-line 400 for plain-HTTP ones, on the same port (the first byte tells them apart).
 */
export function createFarmPort(handler: http.RequestListener, tls?: FarmTls): FarmPort {
  if (!tls) {
    const server = http.createServer(handler);
    return portOn(server, "http", server, () => server.closeAllConnections());
  }
  const server = https.createServer({ cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" }, handler);
  // Handshakes that fail (a client that does not trust the certificate) are the client's to report.
  server.on("tlsClientError", (_err, socket) => socket.destroy());
  const sockets = new Set<net.Socket>();
  const front = net.createServer((socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    socket.setTimeout(FIRST_BYTE_MS, () => socket.destroy());
    socket.once("data", (head: Buffer) => {
      socket.setTimeout(0);
      socket.pause();
      if (head[0] !== TLS_HANDSHAKE && head[0]! >= 0x20 && head[0]! < 0x7f) return refusePlain(socket, head);
      // The TLS server reads what was already read off the socket first (node's TLSSocket does so for unshifted data).
      socket.unshift(head);
      server.emit("connection", socket);
    });
  });
  return portOn(server, "https", front, () => {
    server.closeAllConnections();
    for (const s of sockets) s.destroy();
  });
}

/** The port `listening` opens for `server`; `endAll` ends its open connections before it closes. */
function portOn(server: http.Server, scheme: FarmPort["scheme"], listening: net.Server, endAll: () => void): FarmPort {
  return {
    server,
    scheme,
    listen: (port, host) =>
      new Promise<void>((resolve, reject) => {
        listening.once("error", reject);
        listening.listen(port, host, () => resolve());
      }),
    get port() {
      return (listening.address() as AddressInfo).port;
    },
    close: async () => {
      endAll();
      await new Promise<void>((r) => listening.close(() => r()));
    },
  };
}
