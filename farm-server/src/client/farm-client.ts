import { createTRPCClient, createWSClient, httpBatchLink, TRPCClientError, wsLink, type TRPCClient } from "@trpc/client";
import type { AppRouter } from "../api/router.js";
import { FarmEndpoints, leaderFetch } from "./farm-endpoints.js";
import type { FarmTrust } from "./farm-trust.js";
import { trustedWebSocket } from "./trusted-transport.js";

export type FarmClient = TRPCClient<AppRouter>;

export interface FarmClientOptions {
  /**
   * http://host:port (the farm's base URL; ws:// is derived for the WebSocket transport), or several
   * farm nodes comma-separated (or their endpoints): the client follows the one that leads
   */
  url: string | FarmEndpoints;
  token: string;
  /**
   * what an https:// farm's certificate must satisfy (pins, a CA file; default: this machine's CAs);
   * with endpoints given as `url`, theirs is used
   */
  trust?: FarmTrust;
  /** "ws" keeps one WebSocket (subscriptions, workers); "http" suits one-shot CLI calls */
  transport?: "ws" | "http";
  onConnectionChange?: (state: "open" | "closed") => void;
  /** the longest wait between reconnect attempts */
  maxRetryDelayMs?: number;
  /** "http" only: give up on a call after this long (a farm that accepts but never answers) */
  timeoutMs?: number;
}

/** How long an HTTP call follows a leader change before it reports the failure (a lease and a start). */
const FOLLOW_MS = 10_000;

/** http://h:p → ws://h:p/ws, https://h:p → wss://h:p/ws */
export const wsUrlOf = (url: string) => url.replace(/^http/, "ws").replace(/\/+$/, "") + "/ws";

/** A typed client of the farm's API. Call `close()` when done (it holds a socket for "ws"). */
export function createFarmClient(opts: FarmClientOptions): { client: FarmClient; close: () => void } {
  const endpoints = typeof opts.url === "string" ? new FarmEndpoints(opts.url, opts.trust) : opts.url;
  if (opts.transport === "http") {
    const client = createTRPCClient<AppRouter>({
      links: [
        httpBatchLink({
          url: `${endpoints.current}/trpc`,
          headers: () => ({ authorization: `Bearer ${opts.token}` }),
          // Sent to the leader; followed to another node while a takeover runs (about a lease and a start).
          fetch: leaderFetch(endpoints, FOLLOW_MS, opts.timeoutMs) as never,
        }),
      ],
    });
    return { client, close: () => undefined };
  }
  const maxDelay = opts.maxRetryDelayMs ?? 2_000;
  const wsClient = createWSClient({
    // Asked before each (re)connection: after a takeover the socket reconnects to the new leader.
    url: async () => wsUrlOf(await endpoints.find()),
    connectionParams: () => ({ token: opts.token }),
    // wss:// connections are made only to a farm whose certificate the trust accepts (ws:// as before).
    WebSocket: trustedWebSocket(endpoints.trust) as unknown as typeof globalThis.WebSocket,
    retryDelayMs: (i) => Math.min(maxDelay, 100 * 2 ** i),
    keepAlive: { enabled: true, intervalMs: 2_000, pongTimeoutMs: 2_000 },
    onOpen: () => opts.onConnectionChange?.("open"),
    onClose: () => opts.onConnectionChange?.("closed"),
  });
  const client = createTRPCClient<AppRouter>({ links: [wsLink({ client: wsClient })] });
  return { client, close: () => void wsClient.close() };
}

/** The tRPC error code of a failed call, or undefined when the farm was not reached at all. */
export function errorCode(err: unknown): string | undefined {
  if (err instanceof TRPCClientError) return (err.data as { code?: string } | undefined)?.code;
  return undefined;
}

/** Errors the farm answered with: retrying the same call cannot help. */
export const isFinalError = (err: unknown): boolean => {
  const c = errorCode(err);
  return c !== undefined && c !== "INTERNAL_SERVER_ERROR" && c !== "SERVICE_UNAVAILABLE" && c !== "TIMEOUT";
};
