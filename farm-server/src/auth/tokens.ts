import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { EventEmitter } from "node:events";
import Database from "better-sqlite3";
import type { TokenRole } from "@optimus/shared";
import { migrate, TOKEN_MIGRATIONS } from "../store/migrations.js";

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

const PREFIX = "opt";
const hash = (secret: string) => createHash("sha256").update(secret).digest();

/**
 * API tokens: `opt_<id>_<secret>`. Only a SHA-256 of the secret is stored (the secret is 256 random
 * bits, so a slow hash adds nothing); lookups go by id and compare in constant time.
 */
export class TokenStore {
  private readonly db: Database.Database;
  private readonly revoked = new Set<string>();
  /** tells the API which token was just revoked, so it can close that token's sockets at once */
  readonly events = new EventEmitter<{ revoked: [string] }>();

  /** Tokens live in their own file: losing or rebuilding the journal must not lock everyone out. */
  constructor(file: string) {
    const db = (this.db = new Database(file));
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = FULL");
    db.pragma("busy_timeout = 5000");
    migrate(db, `the token database ${file}`, TOKEN_MIGRATIONS);
    for (const id of db.prepare("SELECT id FROM tokens WHERE revoked_at IS NOT NULL").pluck().all() as string[]) this.revoked.add(id);
  }

  /** The approver right belongs to a person's editor token only (never a shared admin or a worker token). */
  create(role: TokenRole, name: string, opts: { approver?: boolean } = {}): IssuedToken {
    const approver = opts.approver === true;
    if (approver && role !== "editor")
      throw new Error(`the approver right is for a person's editor token, not a ${role} token: use --role editor --name <you> --approver`);
    const tokenId = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    this.db
      .prepare("INSERT INTO tokens (id, name, role, hash, created_at, approver) VALUES (?, ?, ?, ?, ?, ?)")
      .run(tokenId, name, role, hash(secret), Date.now(), approver ? 1 : 0);
    return { tokenId, name, role, approver, token: `${PREFIX}_${tokenId}_${secret}` };
  }

  /** The principal a presented token stands for, or null when it is unknown, malformed or revoked. */
  authenticate(presented: string | null | undefined): Principal | null {
    if (!presented || presented.length > 200) return null;
    const m = /^opt_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/.exec(presented);
    if (!m) return null;
    const row = this.db.prepare("SELECT id, name, role, hash, revoked_at, approver FROM tokens WHERE id = ?").get(m[1]) as
      { id: string; name: string; role: TokenRole; hash: Buffer; revoked_at: number | null; approver: number } | undefined;
    if (!row || row.revoked_at !== null) return null;
    if (!timingSafeEqual(row.hash, hash(m[2]!))) return null;
    return { tokenId: row.id, name: row.name, role: row.role, approver: row.approver === 1 };
  }

  revoke(tokenId: string): boolean {
    const done =
      this.db.prepare("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL").run(Date.now(), tokenId).changes > 0;
    if (done) {
      this.revoked.add(tokenId);
      this.events.emit("revoked", tokenId);
    }
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
    }));
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
