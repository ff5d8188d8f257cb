import { EventEmitter } from "node:events";
import Database from "better-sqlite3";
import type { TokenRole } from "@optimus/shared";
import { migrate, TOKEN_MIGRATIONS } from "../store/migrations.js";
import { GatedTokenStore, storedToken, TOKEN_COLUMNS, TokenGate, type TokenTableRow } from "./token-gate.js";
import { mintToken, type IssuedToken, type TokenListing, type TokenStore } from "./tokens.js";

/** Tokens in their own SQLite file: losing or rebuilding the journal must not lock everyone out. */
export class SqliteTokenStore extends GatedTokenStore implements TokenStore {
  private readonly db: Database.Database;
  private readonly byId: Database.Statement;
  private readonly slide: Database.Statement;
  protected readonly gate: TokenGate;
  readonly events = new EventEmitter<{ revoked: [string] }>();

  constructor(file: string) {
    super();
    const db = (this.db = new Database(file));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    migrate(db, `the token database ${file}`, TOKEN_MIGRATIONS);
    this.byId = db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE id = ?`);
    // The larger expiry wins: renewals may land out of order, and a revoked token stays as it was.
    this.slide = db.prepare("UPDATE tokens SET expires_at = ? WHERE id = ? AND revoked_at IS NULL AND expires_at < ?");
    this.gate = new TokenGate({
      find: (id) => {
        const r = this.byId.get(id) as TokenTableRow | undefined;
        return r && storedToken(r);
      },
      // better-sqlite3 writes synchronously (and syncs to disk): done after the request that asked for it.
      writeExpiry: (id, at) =>
        new Promise<void>((resolve, reject) =>
          setImmediate(() => {
            try {
              if (this.db.open) this.slide.run(at, id, at);
              resolve();
            } catch (err) {
              reject(err as Error);
            }
          }),
        ),
    });
  }

  async create(role: TokenRole, name: string, opts: { approver?: boolean; ttlMs?: number } = {}): Promise<IssuedToken> {
    const { row, issued } = mintToken(role, name, opts);
    this.db
      .prepare("INSERT INTO tokens (id, name, role, hash, created_at, approver, expires_at, ttl_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
      .run(row.id, row.name, row.role, row.hash, row.createdAt, row.approver ? 1 : 0, row.expiresAt, row.ttlMs);
    return issued;
  }

  async revoke(tokenId: string): Promise<boolean> {
    const done =
      this.db.prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(Date.now(), tokenId).changes > 0;
    if (done) this.events.emit("revoked", tokenId);
    return done;
  }

  async list(): Promise<TokenListing[]> {
    return (this.db.prepare(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_at`).all() as TokenTableRow[]).map((r) =>
      this.gate.listed(storedToken(r)),
    );
  }

  async count(): Promise<number> {
    return this.db.prepare("SELECT count(*) FROM tokens").pluck().get() as number;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
