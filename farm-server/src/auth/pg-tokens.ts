import { EventEmitter } from "node:events";
import type pg from "pg";
import type { TokenRole } from "@optimus/shared";
import { quoteIdent } from "../store/pg-migrations.js";
import {
  mintToken,
  parsePresented,
  secretMatches,
  type IssuedToken,
  type Principal,
  type TokenListing,
  type TokenStore,
  TokenUse,
} from "./tokens.js";

interface Cached {
  row: { name: string; role: TokenRole; hash: Buffer; createdAt: number; approver: boolean };
  revoked: boolean;
}

/**
 * Tokens in the farm's PostgreSQL schema, so a standby that takes over knows every token the
 * leader issued. Requests are authenticated from memory (loaded when this node starts leading, kept
 * in step by this node's own writes: only the leader serves the API); every write is durable in
 * PostgreSQL before it is acknowledged.
 */
export class PgTokenStore implements TokenStore {
  private readonly S: string;
  private readonly tokens = new Map<string, Cached>();
  private readonly use = new TokenUse();
  readonly events = new EventEmitter<{ revoked: [string] }>();

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    this.S = quoteIdent(schema);
  }

  /** Reads every token (the schema must exist: the journal's migrations create it). */
  async load(): Promise<this> {
    const rows = (await this.pool.query(`SELECT id, name, role, hash, created_at, revoked_at, approver FROM ${this.S}.tokens`))
      .rows as Array<{
      id: string;
      name: string;
      role: TokenRole;
      hash: Buffer;
      created_at: number;
      revoked_at: number | null;
      approver: boolean;
    }>;
    this.tokens.clear();
    for (const r of rows)
      this.tokens.set(r.id, {
        row: { name: r.name, role: r.role, hash: r.hash, createdAt: r.created_at, approver: r.approver },
        revoked: r.revoked_at !== null,
      });
    return this;
  }

  async create(role: TokenRole, name: string, opts: { approver?: boolean } = {}): Promise<IssuedToken> {
    const { row, issued } = mintToken(role, name, opts);
    await this.pool.query(`INSERT INTO ${this.S}.tokens (id, name, role, hash, created_at, approver) VALUES ($1, $2, $3, $4, $5, $6)`, [
      row.id,
      row.name,
      row.role,
      row.hash,
      row.createdAt,
      row.approver,
    ]);
    this.tokens.set(row.id, { row, revoked: false });
    return issued;
  }

  authenticate(presented: string | null | undefined): Principal | null {
    const p = parsePresented(presented);
    const t = p ? this.tokens.get(p.id) : undefined;
    if (!p || !t || t.revoked || !secretMatches(t.row.hash, p.secret)) return null;
    this.use.note(p.id);
    return { tokenId: p.id, name: t.row.name, role: t.row.role, approver: t.row.approver };
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

  isRevoked(tokenId: string): boolean {
    return this.tokens.get(tokenId)?.revoked === true;
  }

  async list(): Promise<TokenListing[]> {
    return [...this.tokens.entries()]
      .map(([tokenId, t]) => ({
        tokenId,
        name: t.row.name,
        role: t.row.role,
        approver: t.row.approver,
        createdAt: t.row.createdAt,
        revoked: t.revoked,
        ...this.use.of(tokenId),
      }))
      .sort((a, b) => a.createdAt - b.createdAt);
  }

  async count(): Promise<number> {
    return this.tokens.size;
  }

  /** The pool belongs to the farm's stores together. */
  close(): void {}
}
