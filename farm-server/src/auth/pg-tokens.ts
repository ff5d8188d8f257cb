import { EventEmitter } from "node:events";
import type pg from "pg";
import type { TokenRole } from "@optimus/shared";
import { quoteIdent } from "../store/pg-migrations.js";
import { GatedTokenStore, storedToken, TOKEN_COLUMNS, TokenGate, type StoredToken, type TokenTableRow } from "./token-gate.js";
import { mintToken, type IssuedToken, type TokenListing, type TokenStore } from "./tokens.js";

/**
 * Tokens in the farm's PostgreSQL schema, so a standby that takes over knows every token the
 * leader issued. Requests are authenticated from memory (loaded when this node starts leading, kept
 * in step by this node's own writes: only the leader serves the API); every write is durable in
 * PostgreSQL before it is acknowledged, but for a sliding expiry, which is not waited for (see
 * `TokenGate`): a node that takes over reads expiries at most a quarter of a ttl behind.
 */
export class PgTokenStore extends GatedTokenStore implements TokenStore {
  private readonly S: string;
  private readonly tokens = new Map<string, StoredToken>();
  protected readonly gate: TokenGate;
  readonly events = new EventEmitter<{ revoked: [string] }>();

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    super();
    this.S = quoteIdent(schema);
    this.gate = new TokenGate({
      find: (id) => this.tokens.get(id),
      writeExpiry: async (id, at) => {
        // The larger expiry wins: renewals may land out of order, and a revoked token stays as it was.
        await this.pool.query(`UPDATE ${this.S}.tokens SET expires_at = $1 WHERE id = $2 AND revoked_at IS NULL AND expires_at < $1`, [
          at,
          id,
        ]);
        const t = this.tokens.get(id);
        if (t && t.expiresAt !== null && t.expiresAt < at) t.expiresAt = at;
      },
    });
  }

  /** Reads every token (the schema must exist: the journal's migrations create it). */
  async load(): Promise<this> {
    const rows = (await this.pool.query(`SELECT ${TOKEN_COLUMNS} FROM ${this.S}.tokens`)).rows as TokenTableRow[];
    this.tokens.clear();
    for (const r of rows) this.tokens.set(r.id, storedToken(r));
    return this;
  }

  async create(role: TokenRole, name: string, opts: { approver?: boolean; ttlMs?: number } = {}): Promise<IssuedToken> {
    const { row, issued } = mintToken(role, name, opts);
    await this.pool.query(
      `INSERT INTO ${this.S}.tokens (id, name, role, hash, created_at, approver, expires_at, ttl_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
      [row.id, row.name, row.role, row.hash, row.createdAt, row.approver, row.expiresAt, row.ttlMs],
    );
    this.tokens.set(row.id, { ...row, revoked: false });
    return issued;
  }

  async revoke(tokenId: string): Promise<boolean> {
    const r = await this.pool.query(`UPDATE ${this.S}.tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL`, [
      Date.now(),
      tokenId,
    ]);
    const t = this.tokens.get(tokenId);
    if (t) t.revoked = true;
    if ((r.rowCount ?? 0) > 0) this.events.emit("revoked", tokenId);
    return (r.rowCount ?? 0) > 0;
  }

  async list(): Promise<TokenListing[]> {
    return [...this.tokens.values()].map((t) => this.gate.listed(t)).sort((a, b) => a.createdAt - b.createdAt);
  }

  async count(): Promise<number> {
    return this.tokens.size;
  }

  /** The pool belongs to the farm's stores together. */
  close(): void {}
}
