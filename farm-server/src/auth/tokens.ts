import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { EventEmitter } from "node:events";
import { DEFAULT_WORKER_TOKEN_TTL_MS, type TokenListEntry, type TokenRole } from "@optimus/shared";

export interface Principal {
  tokenId: string;
  name: string;
  role: TokenRole;
  /** a person's editor token that may approve changes to protected paths */
  approver: boolean;
}

export interface IssuedToken extends Principal {
  /** the secret itself: shown once, never stored */
  token: string;
  /** when it expires unless used, and the ttl each use slides it by (absent: it does not expire) */
  expiresAt?: number;
  ttlMs?: number;
}

/** One token as `optimus token list` shows it: the wire shape (`shared/`). */
export type TokenListing = TokenListEntry;

/** Why a token whose secret is right is refused now: told only to whoever presents that secret. */
export type TokenRefusal =
  { kind: "revoked"; name: string; role: TokenRole } | { kind: "expired"; name: string; role: TokenRole; expiredAt: number; ttlMs: number };

/**
 * API tokens: `opt_<id>_<secret>`. Only a SHA-256 of the secret is stored (the secret is 256 random
 * bits, so a slow hash adds nothing); lookups go by id and compare in constant time.
 *
 * `authenticate`, `refusal` and `used` are synchronous (every request and socket message asks
 * them); what writes is asynchronous and resolves once it is durable, so a token is never handed
 * out, nor a revocation acknowledged, before the store holds it. The one write on the hot path, a
 * token's sliding expiry, is never waited for (see `TokenGate`).
 */
export interface TokenStore {
  /** tells the API which token was just revoked, so it can close that token's sockets at once */
  readonly events: EventEmitter<{ revoked: [string] }>;
  /** `ttlMs`: the token expires unless used within it (a worker token always does: default a day) */
  create(role: TokenRole, name: string, opts?: { approver?: boolean; ttlMs?: number }): Promise<IssuedToken>;
  /**
   * The principal a presented token stands for, or null when it is unknown, malformed, revoked or
   * expired. A token with a ttl that authenticates is in use: its expiry slides to now + ttl.
   */
  authenticate(presented: string | null | undefined): Principal | null;
  /**
   * Why `authenticate` refuses a presented token whose secret is right (revoked, expired), for the
   * 401's message; null for anything else (unknown, malformed, a wrong secret: a guesser learns nothing).
   */
  whyRefused(presented: string | null | undefined): TokenRefusal | null;
  revoke(tokenId: string): Promise<boolean>;
  /**
   * A WebSocket authenticates once, when it opens; every call asks this too, so a revoked or
   * expired token stops working at once, not at its next reconnect. Null while the token is good.
   */
  refusal(tokenId: string): TokenRefusal | null;
  /** A call on an open socket authenticated by this token: it is in use (last use noted, expiry slid on). */
  used(tokenId: string): void;
  /**
   * A token the farm holds itself (its in-process workers'): its expiry is set to now + ttl and
   * written before this resolves, even when it had lapsed while the farm was stopped. Null when the
   * secret is wrong or the token revoked.
   */
  renewHeld(presented: string): Promise<Principal | null>;
  list(): Promise<TokenListing[]>;
  /** Tokens ever issued (revoked ones too): the first admin token is made only on a fresh farm. */
  count(): Promise<number>;
  close(): void;
}

/** What a store keeps of a token: never its secret. */
export interface TokenRow {
  id: string;
  name: string;
  role: TokenRole;
  hash: Buffer;
  createdAt: number;
  approver: boolean;
  /** null: it does not expire (an admin or editor token made without a ttl) */
  expiresAt: number | null;
  ttlMs: number | null;
}

const PREFIX = "opt";
const hash = (secret: string) => createHash("sha256").update(secret).digest();

/**
 * A new token and the row a store keeps of it. The approver right belongs to a person's editor
 * token only. A worker token always expires (no long-lived worker credentials): without a ttl it
 * gets the default; admin and editor tokens expire only when given one.
 */
export function mintToken(
  role: TokenRole,
  name: string,
  opts: { approver?: boolean; ttlMs?: number } = {},
): { row: TokenRow; issued: IssuedToken } {
  const approver = opts.approver === true;
  if (approver && role !== "editor")
    throw new Error(`the approver right is for a person's editor token, not a ${role} token: use --role editor --name <you> --approver`);
  const tokenId = randomBytes(6).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  const ttlMs = opts.ttlMs ?? (role === "worker" ? DEFAULT_WORKER_TOKEN_TTL_MS : null);
  const createdAt = Date.now();
  return {
    row: { id: tokenId, name, role, hash: hash(secret), createdAt, approver, ttlMs, expiresAt: ttlMs === null ? null : createdAt + ttlMs },
    issued: {
      tokenId,
      name,
      role,
      approver,
      token: `${PREFIX}_${tokenId}_${secret}`,
      ...(ttlMs === null ? {} : { ttlMs, expiresAt: createdAt + ttlMs }),
    },
  };
}

/** A presented token's id and secret, or null when it is not shaped like one of ours. */
export function parsePresented(presented: string | null | undefined): { id: string; secret: string } | null {
  if (!presented || presented.length > 200) return null;
  const m = /^opt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(presented);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

/** Whether a presented secret is the one whose hash a row keeps (constant time). */
export const secretMatches = (stored: Buffer, secret: string): boolean => timingSafeEqual(stored, hash(secret));

export const actorOf = (p: Principal): string => `${p.role}:${p.name}`;
