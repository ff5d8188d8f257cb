import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import Database from "better-sqlite3";
import type { TokenRole } from "@optimus/shared";

export interface Principal {
  tokenId: string;
  name: string;
  role: TokenRole;
}

export interface IssuedToken extends Principal {
  /** the secret itself: shown once, never stored */
  token: string;
}

const PREFIX = "opt";
const hash = (secret: string) => createHash("sha256").update(secret).digest();

/**
 * API tokens: `opt_<id>_<secret>`. Only a SHA-256 of the secret is stored (the secret is 256 random
 * bits, so a slow hash adds nothing); lookups go by id and compare in constant time.
 */
export class TokenStore {
  private readonly db: Database.Database;
  private readonly revoked = new Set<string>();

  /** Tokens live in their own file: losing or rebuilding the journal must not lock everyone out. */
  constructor(file: string) {
    const db = (this.db = new Database(file));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    db.exec(`CREATE TABLE IF NOT EXISTS tokens (
      id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, hash BLOB NOT NULL,
      created_at INTEGER NOT NULL, revoked_at INTEGER)`);
    for (const id of db.prepare("SELECT id FROM tokens WHERE revoked_at IS NOT NULL").pluck().all() as string[]) this.revoked.add(id);
  }

  create(role: TokenRole, name: string): IssuedToken {
    const tokenId = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    this.db.prepare("INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)").run(tokenId, name, role, hash(secret), Date.now());
    return { tokenId, name, role, token: `${PREFIX}_${tokenId}_${secret}` };
  }

  /** The principal a presented token stands for, or null when it is unknown, malformed or revoked. */
  authenticate(presented: string | null | undefined): Principal | null {
    if (!presented || presented.length > 200) return null;
    const m = /^opt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(presented);
    if (!m) return null;
    const row = this.db.prepare("SELECT id, name, role, hash, revoked_at FROM tokens WHERE id = ?").get(m[1]) as
      | { id: string; name: string; role: TokenRole; hash: Buffer; revoked_at: number | null }
      | undefined;
    if (!row || row.revoked_at !== null) return null;
    if (!timingSafeEqual(row.hash, hash(m[2]!))) return null;
    return { tokenId: row.id, name: row.name, role: row.role };
  }

  revoke(tokenId: string): boolean {
    const done = this.db.prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(Date.now(), tokenId).changes > 0;
    if (done) this.revoked.add(tokenId);
    return done;
  }

  /**
   * A WebSocket authenticates once, when it opens; every call checks this too, so a revoked
   * token stops working at once, not at its next reconnect.
   */
  isRevoked(tokenId: string): boolean {
    return this.revoked.has(tokenId);
  }

  list(): Array<Principal & { createdAt: number; revoked: boolean }> {
    return (this.db.prepare("SELECT id, name, role, created_at, revoked_at FROM tokens ORDER BY created_at").all() as Array<{ id: string; name: string; role: TokenRole; created_at: number; revoked_at: number | null }>).map(
      (r) => ({ tokenId: r.id, name: r.name, role: r.role, createdAt: r.created_at, revoked: r.revoked_at !== null }),
    );
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** Tokens ever issued (revoked ones too): the first admin token is made only on a fresh farm. */
  count(): number {
    return this.db.prepare("SELECT count(*) FROM tokens").pluck().get() as number;
  }
}

export const actorOf = (p: Principal): string => `${p.role}:${p.name}`;
