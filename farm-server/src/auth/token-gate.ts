import type { TokenRole } from "@optimus/shared";
import { parsePresented, secretMatches, type Principal, type TokenListing, type TokenRefusal, type TokenRow } from "./tokens.js";

/** A token as its store holds it now. */
export type StoredToken = TokenRow & { revoked: boolean };

/** A row of the `tokens` table, as SQLite (approver 0/1) and PostgreSQL (a boolean) read it. */
export interface TokenTableRow {
  id: string;
  name: string;
  role: TokenRole;
  hash: Buffer;
  created_at: number;
  revoked_at: number | null;
  approver: number | boolean;
  expires_at: number | null;
  ttl_ms: number | null;
}

/** The columns `TokenTableRow` reads, in both stores. */
export const TOKEN_COLUMNS = "id, name, role, hash, created_at, revoked_at, approver, expires_at, ttl_ms";

export const storedToken = (r: TokenTableRow): StoredToken => ({
  id: r.id,
  name: r.name,
  role: r.role,
  hash: r.hash,
  createdAt: r.created_at,
  approver: r.approver === true || r.approver === 1,
  revoked: r.revoked_at !== null,
  expiresAt: r.expires_at,
  ttlMs: r.ttl_ms,
});

/** What the gate needs of a token store: a synchronous lookup, and a durable write of a later expiry. */
export interface GateStore {
  find(tokenId: string): StoredToken | undefined;
  /** Resolves once `expiresAt` is durable. Only ever moves an expiry later (writes may land out of order). */
  writeExpiry(tokenId: string, expiresAt: number): Promise<unknown>;
}

/**
 * The synchronous side of a token store, the same for SQLite and PostgreSQL: who a presented token
 * is, why one is refused, and its sliding expiry.
 *
 * A token with a ttl stays valid while it is used: each use moves its expiry to now + ttl. The check
 * runs on every request and socket message, so the expiry this farm slid on is kept in memory and
 * written to the store without being waited for, and at most once per ttl/4 per token (only when
 * less than three quarters of the ttl is left). A write that fails is forgotten here, so the next
 * use tries again; meanwhile the stored expiry still has at least three quarters of the ttl to run.
 */
export class TokenGate {
  /** when each token last authenticated something since this farm server started (memory only) */
  private readonly lastUsed = new Map<string, number>();
  /** expiries this farm slid on: ahead of the store until their write lands */
  private readonly slid = new Map<string, number>();

  constructor(
    private readonly store: GateStore,
    private readonly now: () => number = Date.now,
  ) {}

  authenticate(presented: string | null | undefined): Principal | null {
    const t = this.matching(presented);
    if (!t || this.refusalOf(t)) return null;
    this.note(t);
    return principalOf(t);
  }

  whyRefused(presented: string | null | undefined): TokenRefusal | null {
    const t = this.matching(presented);
    return t ? this.refusalOf(t) : null;
  }

  refusal(tokenId: string): TokenRefusal | null {
    const t = this.store.find(tokenId);
    return t ? this.refusalOf(t) : null;
  }

  used(tokenId: string): void {
    const t = this.store.find(tokenId);
    if (t && !this.refusalOf(t)) this.note(t);
  }

  /** Renews a token the farm holds itself, waiting for the write (a start, not the hot path). */
  async renewHeld(presented: string): Promise<Principal | null> {
    const t = this.matching(presented);
    if (!t || t.revoked) return null;
    if (t.ttlMs !== null) {
      const next = this.now() + t.ttlMs;
      await this.store.writeExpiry(t.id, next);
      this.slid.set(t.id, Math.max(next, this.slid.get(t.id) ?? 0));
    }
    return principalOf(t);
  }

  /** The token's expiry as this farm knows it: the store's, or a later one it slid on (null: never). */
  expiresAt(t: StoredToken): number | null {
    if (t.expiresAt === null) return null;
    return Math.max(t.expiresAt, this.slid.get(t.id) ?? 0);
  }

  /** A stored token as `token list` shows it: with its last use, and its expiry as this farm knows it. */
  listed(t: StoredToken): TokenListing {
    const lastUsedAt = this.lastUsed.get(t.id);
    const expiresAt = this.expiresAt(t);
    return {
      tokenId: t.id,
      name: t.name,
      role: t.role,
      approver: t.approver,
      createdAt: t.createdAt,
      revoked: t.revoked,
      ...(lastUsedAt === undefined ? {} : { lastUsedAt }),
      ...(expiresAt === null ? {} : { expiresAt }),
      ...(t.ttlMs === null ? {} : { ttlMs: t.ttlMs }),
    };
  }

  /** The stored token a presented one names, when its secret is right. */
  private matching(presented: string | null | undefined): StoredToken | undefined {
    const p = parsePresented(presented);
    const t = p ? this.store.find(p.id) : undefined;
    return t && secretMatches(t.hash, p!.secret) ? t : undefined;
  }

  private refusalOf(t: StoredToken): TokenRefusal | null {
    if (t.revoked) return { kind: "revoked", name: t.name, role: t.role };
    const expiresAt = this.expiresAt(t);
    if (expiresAt !== null && t.ttlMs !== null && this.now() >= expiresAt)
      return { kind: "expired", name: t.name, role: t.role, expiredAt: expiresAt, ttlMs: t.ttlMs };
    return null;
  }

  private note(t: StoredToken): void {
    const now = this.now();
    this.lastUsed.set(t.id, now);
    if (t.ttlMs === null) return;
    const next = now + t.ttlMs;
    if (next - this.expiresAt(t)! < t.ttlMs / 4) return;
    this.slid.set(t.id, next);
    this.store.writeExpiry(t.id, next).catch(() => {
      if (this.slid.get(t.id) === next) this.slid.delete(t.id);
    });
  }
}

/** What both token stores answer from their gate: the synchronous checks, and renewing the farm's own tokens. */
export abstract class GatedTokenStore {
  protected abstract readonly gate: TokenGate;

  authenticate(presented: string | null | undefined): Principal | null {
    return this.gate.authenticate(presented);
  }

  whyRefused(presented: string | null | undefined): TokenRefusal | null {
    return this.gate.whyRefused(presented);
  }

  refusal(tokenId: string): TokenRefusal | null {
    return this.gate.refusal(tokenId);
  }

  used(tokenId: string): void {
    this.gate.used(tokenId);
  }

  renewHeld(presented: string): Promise<Principal | null> {
    return this.gate.renewHeld(presented);
  }
}

const principalOf = (t: StoredToken): Principal => ({ tokenId: t.id, name: t.name, role: t.role, approver: t.approver });
