import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { EventEmitter } from "node:events";
import type { TokenRole } from "@optimus/shared";

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
}

/** `lastUsedAt`: the last request it authenticated since this farm server started (kept in memory only). */
export type TokenListing = Principal & { createdAt: number; revoked: boolean; lastUsedAt?: number };

/**
 * When each token last authenticated a request, since the farm server started: noted on the hot
 * path (one map write), so it is kept in memory, not written to the store at every request.
 */
export class TokenUse {
  private readonly last = new Map<string, number>();
  note(tokenId: string): void {
    this.last.set(tokenId, Date.now());
  }
  of(tokenId: string): { lastUsedAt?: number } {
    const at = this.last.get(tokenId);
    return at === undefined ? {} : { lastUsedAt: at };
  }
}

/**
 * API tokens: `opt_<id>_<secret>`. Only a SHA-256 of the secret is stored (the secret is 256 random
 * bits, so a slow hash adds nothing); lookups go by id and compare in constant time.
 *
 * `authenticate` and `isRevoked` are synchronous (every request and socket message asks them);
 * what writes is asynchronous and resolves once it is durable, so a token is never handed out,
 * nor a revocation acknowledged, before the store holds it.
 */
export interface TokenStore {
  /** tells the API which token was just revoked, so it can close that token's sockets at once */
  readonly events: EventEmitter<{ revoked: [string] }>;
  create(role: TokenRole, name: string, opts?: { approver?: boolean }): Promise<IssuedToken>;
  /** The principal a presented token stands for, or null when it is unknown, malformed or revoked. */
  authenticate(presented: string | null | undefined): Principal | null;
  revoke(tokenId: string): Promise<boolean>;
  /**
   * A WebSocket authenticates once, when it opens; every call checks this too, so a revoked
   * token stops working at once, not at its next reconnect.
   */
  isRevoked(tokenId: string): boolean;
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
}

const PREFIX = "opt";
const hash = (secret: string) => createHash("sha256").update(secret).digest();

/** A new token and the row a store keeps of it. The approver right belongs to a person's editor token only. */
export function mintToken(role: TokenRole, name: string, opts: { approver?: boolean } = {}): { row: TokenRow; issued: IssuedToken } {
  const approver = opts.approver === true;
  if (approver && role !== "editor")
    throw new Error(`the approver right is for a person's editor token, not a ${role} token: use --role editor --name <you> --approver`);
  const tokenId = randomBytes(6).toString("hex");
  const secret = randomBytes(32).toString("base64url");
  return {
    row: { id: tokenId, name, role, hash: hash(secret), createdAt: Date.now(), approver },
    issued: { tokenId, name, role, approver, token: `${PREFIX}_${tokenId}_${secret}` },
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
