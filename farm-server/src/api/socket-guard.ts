import type { ApiLimits } from "@optimus/shared";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import type { Principal, TokenStore } from "../auth/tokens.js";

/** Close codes the farm uses when it ends a WebSocket itself (the reason text says the fix). */
export const CLOSE_UNAUTHENTICATED = 4401;
export const CLOSE_REVOKED = 4403;
export const CLOSE_EXPIRED = 4419;
export const CLOSE_SLOW_READER = 4408;
/** after a close frame, how long a peer that does not answer keeps its socket */
const CLOSE_GRACE_MS = 1_000;
/** how often the tokens of open sockets are looked at: a socket that stays silent past its token's expiry is closed within this */
const EXPIRY_SWEEP_MS = 1_000;

/** What the API knows about one WebSocket: who it is, and how many subscriptions it holds. */
export interface SocketSession {
  tokenId: string | null;
  subscriptions: number;
  readonly maxSubscriptions: number;
}

/**
 * Bounds each WebSocket of the API: it must present a valid token within `unauthenticatedSocketMs`;
 * it is closed as soon as its token is revoked, and within a second of its token expiring (a
 * socket that sends nothing does not renew it: only calls do); and a peer that does not read is cut off once the
 * farm buffers `maxBufferedBytesPerSocket` for it (tRPC pushes subscription data without
 * backpressure, so without this a client that never reads grows the farm's memory without end).
 */
export class SocketGuard {
  private readonly sessions = new WeakMap<WebSocket, SocketSession>();
  private readonly byToken = new Map<string, Set<WebSocket>>();
  private readonly onRevoked = (tokenId: string) => this.closeToken(tokenId, CLOSE_REVOKED, "this token was revoked");
  private readonly sweep: NodeJS.Timeout;

  constructor(
    private readonly limits: ApiLimits,
    private readonly tokens: TokenStore,
    private readonly log: Logger,
  ) {
    tokens.events.on("revoked", this.onRevoked);
    this.sweep = setInterval(() => {
      for (const tokenId of [...this.byToken.keys()]) this.closeIfRefused(tokenId);
    }, EXPIRY_SWEEP_MS);
    this.sweep.unref();
  }

  /** A socket just connected: start its authentication clock and watch what it buffers. */
  watch(ws: WebSocket): void {
    const session: SocketSession = { tokenId: null, subscriptions: 0, maxSubscriptions: this.limits.maxSubscriptionsPerSocket };
    this.sessions.set(ws, session);
    const timer = setTimeout(() => {
      if (session.tokenId === null) {
        this.cutOff(
          ws,
          CLOSE_UNAUTHENTICATED,
          `no valid token within ${this.limits.unauthenticatedSocketMs} ms: send a token in connectionParams when connecting`,
        );
      }
    }, this.limits.unauthenticatedSocketMs);
    timer.unref();
    const send = ws.send.bind(ws) as (...args: unknown[]) => void;
    // Checked after every frame the farm queues: the one place all subscription data passes.
    ws.send = ((...args: unknown[]) => {
      send(...args);
      if (ws.bufferedAmount > this.limits.maxBufferedBytesPerSocket && ws.readyState === ws.OPEN) {
        this.log.warn(
          { tokenId: session.tokenId, bufferedBytes: ws.bufferedAmount, limit: this.limits.maxBufferedBytesPerSocket },
          "a WebSocket subscriber that does not read was cut off",
        );
        this.cutOff(
          ws,
          CLOSE_SLOW_READER,
          `more than ${this.limits.maxBufferedBytesPerSocket} bytes waiting for this client: read what you subscribe to, then reconnect`,
        );
      }
    }) as WebSocket["send"];
    ws.once("close", () => {
      clearTimeout(timer);
      if (session.tokenId) this.byToken.get(session.tokenId)?.delete(ws);
    });
  }

  /** The socket presented a token (tRPC's createContext): a valid one stops its clock. */
  authenticated(ws: WebSocket, principal: Principal | null): SocketSession | undefined {
    const session = this.sessions.get(ws);
    if (!session || !principal) return session;
    session.tokenId = principal.tokenId;
    let set = this.byToken.get(principal.tokenId);
    if (!set) this.byToken.set(principal.tokenId, (set = new Set()));
    set.add(ws);
    // Revoked (or expired) between the lookup and now: close at once rather than serve it.
    this.closeIfRefused(principal.tokenId);
    return session;
  }

  /** Every socket of a revoked or expired token is closed; tRPC then ends its subscriptions. */
  closeToken(tokenId: string, code: number, reason: string): void {
    const set = this.byToken.get(tokenId);
    if (!set) return;
    this.byToken.delete(tokenId);
    for (const ws of set) this.cutOff(ws, code, reason);
    if (set.size) this.log.info({ tokenId, sockets: set.size, reason }, "closed the sockets of a refused token");
  }

  dispose(): void {
    clearInterval(this.sweep);
    this.tokens.events.off("revoked", this.onRevoked);
  }

  private closeIfRefused(tokenId: string): void {
    const r = this.tokens.refusal(tokenId);
    if (r?.kind === "revoked") this.closeToken(tokenId, CLOSE_REVOKED, "this token was revoked");
    else if (r?.kind === "expired") this.closeToken(tokenId, CLOSE_EXPIRED, "this token expired: make a new one on the farm");
  }

  /** A close frame with the reason, then the socket is destroyed if the peer does not answer. */
  private cutOff(ws: WebSocket, code: number, reason: string): void {
    if (ws.readyState === ws.CLOSED) return;
    if (ws.readyState === ws.OPEN) ws.close(code, reason.slice(0, 120));
    setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
  }
}
