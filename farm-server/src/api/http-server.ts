import type http from "node:http";
import { createHTTPHandler } from "@trpc/server/adapters/standalone";
import { applyWSSHandler } from "@trpc/server/adapters/ws";
import { WebSocketServer } from "ws";
import type { Registry } from "prom-client";
import type { ApiContext } from "./trpc.js";
import { appRouter } from "./router.js";
import { handleGitHttp } from "./git-http.js";
import { GitSlots } from "./git-slots.js";
import type { FarmServices } from "./services.js";
import { SocketGuard } from "./socket-guard.js";
import { farmHealth } from "./health.js";
import { createFarmPort } from "./farm-port.js";
import type { FarmTls } from "../tls/farm-tls.js";

export interface ApiServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

const bearer = (h: string | undefined) => (h?.startsWith("Bearer ") ? h.slice(7).trim() : undefined);

/**
 * One port: tRPC over HTTP at /trpc, over WebSocket at /ws, git at /git, plus /healthz and /metrics;
 * all of it over TLS (https, wss) when `tls` is given.
 */
export async function startApiServer(services: FarmServices, metrics: Registry, tls?: FarmTls): Promise<ApiServer> {
  const { config } = services;
  const startedAt = Date.now();
  const limits = config.limits;
  const context = (token: string | undefined): ApiContext => {
    const principal = services.tokens.authenticate(token);
    return { principal, refusal: principal ? null : services.tokens.whyRefused(token), services };
  };
  const gitSlots = new GitSlots(limits.maxGitProcesses, limits.maxGitQueue, limits.gitQueueWaitMs);
  const gitOptions = {
    slots: gitSlots,
    processTimeoutMs: limits.gitProcessTimeoutMs,
    retryAfterSeconds: Math.max(1, Math.ceil(limits.gitQueueWaitMs / 1000)),
  };
  const trpcHandler = createHTTPHandler({
    router: appRouter,
    basePath: "/trpc/",
    maxBodySize: config.maxBodyBytes,
    maxBatchSize: limits.maxBatchSize,
    createContext: ({ req }) => context(bearer(req.headers.authorization)),
  });
  const onRequest: http.RequestListener = (req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(farmHealth(services, startedAt)));
    } else if (path === "/metrics") {
      metrics.metrics().then(
        (text) => res.writeHead(200, { "content-type": metrics.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path.startsWith("/git/")) {
      const principal = services.tokens.authenticate(bearer(req.headers.authorization));
      handleGitHttp(req, res, services.gitDir, principal, gitOptions);
    } else if (path.startsWith("/trpc/")) {
      trpcHandler(req, res);
    } else if (path === "/forge/webhook" && services.forgeWebhook) {
      // Authenticated by the delivery's signature (the forge's shared secret), not by a farm token.
      services.forgeWebhook(req, res);
    } else {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found: the farm serves /trpc, /ws, /git, /healthz and /metrics\n");
    }
  };
  const farmPort = createFarmPort(onRequest, tls);
  const server = farmPort.server;
  const wss = new WebSocketServer({ server, path: "/ws", maxPayload: config.maxBodyBytes });
  wss.on("error", () => undefined); // it re-emits the server's errors (EADDRINUSE), which listen() reports below
  const guard = new SocketGuard(limits, services.tokens, services.log);
  // Registered before tRPC's own handler, so the guard sees every socket from its first frame.
  wss.on("connection", (socket) => guard.watch(socket));
  const ws = applyWSSHandler({
    wss,
    router: appRouter,
    maxBatchSize: limits.maxBatchSize,
    // The token comes in connectionParams (re-sent on every reconnect) or the upgrade request's header.
    createContext: ({ req, res, info }) => {
      const ctx = context((info.connectionParams?.token as string | undefined) ?? bearer(req.headers.authorization));
      return { ...ctx, socket: guard.authenticated(res, ctx.principal) };
    },
    keepAlive: { enabled: true, pingMs: 5_000, pongWaitMs: 5_000 },
  });
  try {
    await farmPort.listen(config.port, config.host);
  } catch (err) {
    ws.broadcastReconnectNotification();
    guard.dispose();
    wss.close();
    throw err;
  }
  const port = farmPort.port;
  return {
    url: `${farmPort.scheme}://${config.host.includes(":") ? `[${config.host}]` : config.host}:${port}`,
    port,
    async close() {
      guard.dispose();
      ws.broadcastReconnectNotification();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await farmPort.close();
    },
  };
}
