import { EventEmitter } from "node:events";
import Database from "better-sqlite3";
import type { TokenRole } from "@optimus/shared";
import { migrate, TOKEN_MIGRATIONS } from "../store/migrations.js";
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

/** Tokens in their own SQLite file: losing or rebuilding the journal must not lock everyone out. */
export class SqliteTokenStore implements TokenStore {
  private readonly db: Database.Database;
  private readonly revoked = new Set<string>();
  private readonly use = new TokenUse();
  readonly events = new EventEmitter<{ revoked: [string] }>();

  constructor(file: string) {
    const db = (this.db = new Database(file));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    migrate(db, `the token database ${file}`, TOKEN_MIGRATIONS);
    for (const id of db.prepare("SELECT id FROM tokens WHERE revoked_at IS NOT NULL").pluck().all() as string[]) this.revoked.add(id);
  }

  async create(role: TokenRole, name: string, opts: { approver?: boolean } = {}): Promise<IssuedToken> {
    const { row, issued } = mintToken(role, name, opts);
    this.db
      .prepare("INSERT INTO tokens (id, name, role, hash, created_at, approver) VALUES (?, ?, ?, ?, ?, ?)")
      .run(row.id, row.name, row.role, row.hash, row.createdAt, row.approver ? 1 : 0);
    return issued;
  }

  authenticate(presented: string | null | undefined): Principal | null {
    const p = parsePresented(presented);
    if (!p) return null;
    const row = this.db.prepare("SELECT id, name, role, hash, revoked_at, approver FROM tokens WHERE id = ?").get(p.id) as
      { id: string; name: string; role: TokenRole; hash: Buffer; revoked_at: number | null; approver: number } | undefined;
    if (!row || row.revoked_at !== null || !secretMatches(row.hash, p.secret)) return null;
    this.use.note(row.id);
    return { tokenId: row.id, name: row.name, role: row.role, approver: row.approver === 1 };
  }

  async revoke(tokenId: string): Promise<boolean> {
    const done =
      this.db.prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(Date.now(), tokenId).changes > 0;
    if (done) {
      this.revoked.add(tokenId);
      this.events.emit("revoked", tokenId);
    }
    return done;
  }

  isRevoked(tokenId: string): boolean {
    return this.revoked.has(tokenId);
  }

  async list(): Promise<TokenListing[]> {
    return (
      this.db.prepare("SELECT id, name, role, created_at, revoked_at, approver FROM tokens ORDER BY created_at").all() as Array<{
        id: string;
        name: string;
        role: TokenRole;
        created_at: number;
        revoked_at: number | null;
        approver: number;
      }>
    ).map((r) => ({
      tokenId: r.id,
      name: r.name,
      role: r.role,
      approver: r.approver === 1,
      createdAt: r.created_at,
      revoked: r.revoked_at !== null,
      ...this.use.of(r.id),
    }));
  }

  async count(): Promise<number> {
    return this.db.prepare("SELECT count(*) FROM tokens").pluck().get() as number;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
